"""python -m services.auth migrate: apply auth's migrations."""

import asyncio
import sys

from services.common import db
from services.common.settings import setting_from_env

from .app import MIGRATIONS_DIR


def main() -> int:
    if sys.argv[1:] != ["migrate"]:
        print("usage: python -m services.auth migrate", file=sys.stderr)
        return 2
    dsn = setting_from_env("AUTH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/sso")
    applied = asyncio.run(db.migrate(dsn, "auth", MIGRATIONS_DIR))
    print(f"auth: {len(applied)} migration(s) applied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
