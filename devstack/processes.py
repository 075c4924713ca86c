"""Start the stack's processes in sessions of their own, and stop them by pid later."""

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

# Our own children, so we reap them (a zombie still has a /proc entry) and Popen does not warn.
_children: dict[int, subprocess.Popen[bytes]] = {}


def spawn(command: list[str], *, env: Mapping[str, str], log_path: Path, cwd: Path) -> int:
    """Start `command` detached from our terminal: Ctrl-C reaches only the launcher, which stops it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh log per start, so its tail tells about this start, not the one before.
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[process.pid] = process
    return process.pid


def is_running(pid: int, marker: str) -> bool:
    """Whether `pid` is alive and still the process we started (its command line holds `marker`)."""
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state != "Z" and marker in cmdline


def terminate(pid: int, marker: str, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it is still there after `timeout` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not is_running(pid, marker):
            break
        try:
            # Each process leads its own session, so its group is its pid: workers go too.
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout
        while is_running(pid, marker) and time.monotonic() < deadline:
            time.sleep(0.05)
    child = _children.pop(pid, None)
    if child is not None:
        child.wait(timeout=timeout)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
