"""python -m devstack run|up|down|status: the local stack behind `make run`, `make up`, `make down`."""

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from . import processes
from .stack import Stack, StackError

ROOT = Path(__file__).resolve().parent.parent


def _print_welcome(stack: Stack) -> None:
    print(
        f"""
The customer portal runs at {stack.gateway_url}/

Add a user (the password is read from stdin):
    echo 'a long password' | .venv/bin/ssoctl user add NAME --password-stdin
Logs: {stack.state / "logs"} and {stack.gateway_dir}
""",
        flush=True,
    )


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(stack: Stack) -> int:
    """Start, then stay in the foreground until Ctrl-C, SIGTERM or a process dying."""
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # Started in the background by a script, SIGINT may arrive ignored: Ctrl-C must still stop.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        stack.start()
        _print_welcome(stack)
        print("Ctrl-C stops everything.", flush=True)
        while True:
            time.sleep(1)
            dead = [name for name, _, alive in stack.running_processes() if not alive]
            if dead:
                for name in dead:
                    print(f"\n{name} stopped; last lines of its log:", file=sys.stderr)
                    print(processes.log_tail(stack.log_path(name)), file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
        return 0
    finally:
        stack.stop()


def up(stack: Stack) -> int:
    stack.start()
    _print_welcome(stack)
    print("`make down` stops it.")
    return 0


def down(stack: Stack) -> int:
    if not stack.running_processes():
        print("Nothing is running.")
    stack.stop()
    return 0


def status(stack: Stack) -> int:
    recorded = stack.running_processes()
    if not recorded:
        print("Nothing is running.")
        return 1
    for name, pid, alive in recorded:
        print(f"{name:8} pid {pid:<8} {'running' if alive else 'STOPPED'}")
    return 0 if all(alive for _, _, alive in recorded) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("command", choices=["run", "up", "down", "status"])
    parser.add_argument("--state-dir", type=Path, help="default: .run/dev in the repository")
    args = parser.parse_args(argv)
    stack = Stack(root=ROOT, state_dir=args.state_dir)
    commands = {"run": run, "up": up, "down": down, "status": status}
    try:
        return commands[args.command](stack)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
