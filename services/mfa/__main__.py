"""python -m services.mfa migrate"""

import asyncio
import sys

from .admin import migrate

USAGE = "usage: python -m services.mfa migrate"


def main(argv: list[str]) -> int:
    if argv != ["migrate"]:
        print(USAGE, file=sys.stderr)
        return 2
    applied = asyncio.run(migrate())
    print(f"mfa: applied {', '.join(applied)}" if applied else "mfa: schema up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
