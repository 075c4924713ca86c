"""CPU time per process, read from /proc: what each part of the stack spent between two readings."""

import os
import resource
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ")".
    return stat.rsplit(")", 1)[1].split()


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def tree_cpu_seconds(root: int, children: Mapping[int, list[int]]) -> float:
    """CPU of a process and all its descendants, the exited ones too (reaped into cutime/cstime)."""
    ticks = 0
    pending = [root]
    while pending:
        pid = pending.pop()
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # utime, stime, cutime, cstime: fields 14-17 of stat, 12-15 after the name.
        ticks += sum(int(value) for value in fields[11:15])
        pending.extend(children.get(pid, []))
    return ticks / TICKS_PER_SECOND


def load_generator_cpu_seconds() -> float:
    """This process and the tools it ran and waited for (oathtool, ab)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    tools = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + tools.ru_utime + tools.ru_stime


def _minus(later: Mapping[str, float], earlier: Mapping[str, float]) -> dict[str, float]:
    return {name: later[name] - earlier.get(name, 0.0) for name in later}


@dataclass(frozen=True)
class Reading:
    seconds: dict[str, float]
    # requests each service has answered so far, by "service route"
    answered: dict[str, float]

    def minus(self, earlier: "Reading") -> "Reading":
        return Reading(_minus(self.seconds, earlier.seconds), _minus(self.answered, earlier.answered))


class CpuMeter:
    """Reads the CPU of named process trees (a service, nginx with its workers, Postgres...) and,
    when given a way to, how many requests each service has answered."""

    LOAD_GENERATOR = "load generator"

    def __init__(
        self,
        roots: Mapping[str, list[int]],
        answered: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        self.roots = {name: list(pids) for name, pids in roots.items()}
        self.answered = answered

    def read(self) -> Reading:
        # Requests first and CPU last on the way in (and the other way round on the way out, see
        # `since`), so the cost of asking the services for their counts stays outside the window.
        answered = self.answered() if self.answered else {}
        return Reading(self._cpu(), answered)

    def since(self, earlier: Reading) -> Reading:
        cpu = self._cpu()
        answered = self.answered() if self.answered else {}
        return Reading(cpu, answered).minus(earlier)

    def _cpu(self) -> dict[str, float]:
        children = _children_by_parent()
        seconds = {
            name: sum(tree_cpu_seconds(pid, children) for pid in pids) for name, pids in self.roots.items()
        }
        seconds[self.LOAD_GENERATOR] = load_generator_cpu_seconds()
        return seconds
