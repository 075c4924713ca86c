"""Starts one stack with the devstack of the tree on PYTHONPATH, and stops it when stdin closes.

Run by the bench as a child process, so a baseline tree's own launcher decides its command lines
and gateway config; prints one line "STACK <json>" with what the bench needs once it is up.
"""

import json
import sys
from pathlib import Path

from devstack import Stack

SERVICES = ("auth", "mfa", "session", "portal")


def main() -> None:
    options = json.loads(sys.argv[1])
    stack = Stack(
        root=Path(options["root"]),
        state_dir=Path(options["state_dir"]),
        gateway_port=options["gateway_port"],
        ports=options["ports"],
        database=options["database"],
        redis_prefix=options["redis_prefix"],
        postgres_server_url=options["postgres_server_url"],
        redis_server_url=options["redis_server_url"],
    )
    try:
        stack.start()
        running = {
            "gateway_url": stack.gateway_url,
            "service_urls": {name: stack.service_url(name) for name in SERVICES},
            "peer_urls": {name: stack.peer_url(name) for name in SERVICES},
            "admin_key_file": str(stack.secrets_dir / "admin.pem"),
            "env": {key: value for key, value in stack.env.items() if key.startswith("AUTH_ARGON2_")},
            "pids": {name: pid for name, pid, _alive in stack.running_processes()},
        }
        print("STACK " + json.dumps(running), flush=True)
        sys.stdin.read()
    finally:
        stack.stop(drop_database=True)


if __name__ == "__main__":
    main()
