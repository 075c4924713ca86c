"""Page rates through the gateway with ApacheBench (Debian's apache2-utils): a C load generator
that costs far less than the pages it asks for, bounded in time and in count."""

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .cpu import CpuMeter


class PageRunError(RuntimeError):
    pass


@dataclass(frozen=True)
class PageRun:
    path: str
    requests: int
    per_second: float
    p50_ms: float
    p99_ms: float
    cpu_seconds: dict[str, float]

    def cpu_ms_per_page(self) -> dict[str, float]:
        return {name: 1000 * seconds / self.requests for name, seconds in self.cpu_seconds.items()}


def _ab() -> str:
    found = shutil.which("ab")
    if found is None:
        raise PageRunError("ab not found: run `make system-deps` (Debian package apache2-utils)")
    return found


def _number(pattern: str, output: str) -> float:
    match = re.search(pattern, output, re.MULTILINE)
    if match is None:
        raise PageRunError(f"ab printed no {pattern!r}:\n{output[-2000:]}")
    return float(match.group(1))


def _percentiles(csv: Path) -> dict[int, float]:
    """ab -e: one line per percent, "percent,milliseconds"."""
    values = {}
    for line in csv.read_text().splitlines()[1:]:
        percent, _, milliseconds = line.partition(",")
        values[int(percent)] = float(milliseconds)
    return values


def page_rate(
    meter: CpuMeter,
    gateway_url: str,
    path: str,
    *,
    seconds: float,
    max_requests: int,
    concurrency: int,
    cookie: str | None = None,
) -> PageRun:
    """GETs `path` with keep-alive, `concurrency` at a time, for `seconds` or `max_requests`."""
    url = f"{gateway_url}{path}"
    if not url.startswith("http://127."):
        raise PageRunError(f"page rates are measured on loopback only, not {url}")
    headers = ["-H", f"Cookie: {cookie}"] if cookie else []
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as scratch:
        csv = Path(scratch) / "percentiles.csv"
        # -t before -n: -t alone would cap the count at 50000; -s bounds each response.
        command = [_ab(), "-q", "-k", "-c", str(concurrency), "-t", str(seconds), "-n", str(max_requests),
                   "-s", "10", "-e", str(csv), *headers, url]  # fmt: skip
        before = meter.read()
        result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
        cpu = meter.since(before).seconds
        if result.returncode != 0:
            raise PageRunError(f"ab exited {result.returncode}: {result.stderr[-2000:]}")
        output = result.stdout
        done = int(_number(r"^Complete requests:\s+(\d+)", output))
        failed = int(_number(r"^Failed requests:\s+(\d+)", output))
        non_2xx = re.search(r"^Non-2xx responses:\s+(\d+)", output, re.MULTILINE)
        if failed or non_2xx is not None or done == 0:
            raise PageRunError(
                f"{url}: {done} done, {failed} failed, non-2xx: {non_2xx and non_2xx.group(1)}"
            )
        percentiles = _percentiles(csv)
    return PageRun(
        path=path,
        requests=done,
        per_second=_number(r"^Requests per second:\s+([\d.]+)", output),
        p50_ms=percentiles[50],
        # ab rounds the index up: with under 100 requests its 99 % line can read past the end
        # (a 0). The percentiles only grow, so the largest up to 99 % is the 99th.
        p99_ms=max(value for percent, value in percentiles.items() if percent <= 99),
        cpu_seconds=cpu,
    )
