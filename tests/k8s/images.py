"""What the Dockerfile must be: multi-stage, a slim pinned base, a numeric non-root user, no compiler."""

import re
from dataclasses import dataclass, field

PINNED_PYTHON = re.compile(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?")
COMPILERS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|cc|libc6-dev|python3-dev)\b")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def stages(dockerfile: str) -> list[Stage]:
    """FROM-separated stages; continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile)
    found: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            found.append(Stage(parts[0], name))
        elif found:
            found[-1].instructions.append((keyword, rest.strip()))
    return found


def dockerfile_problems(dockerfile: str) -> list[str]:
    problems: list[str] = []
    all_stages = stages(dockerfile)
    if len(all_stages) < 2:
        problems.append("not multi-stage")
    for stage in all_stages:
        if not PINNED_PYTHON.fullmatch(stage.base):
            problems.append(f"base {stage.base!r} is not an exactly pinned python:3.11.N-slim-bookworm")
    if not all_stages:
        return problems
    final = all_stages[-1]
    users = [rest for keyword, rest in final.instructions if keyword == "USER"]
    if not users or not re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]):
        problems.append("the final stage does not end as a numeric non-root USER")
    for keyword, rest in final.instructions:
        if keyword == "RUN" and ("apt-get install" in rest or "apk add" in rest or "pip install" in rest):
            problems.append(f"the final stage installs packages: {rest[:60]}")
        if keyword == "RUN" and COMPILERS.search(rest):
            problems.append(f"the final stage mentions a compiler: {rest[:60]}")
        if keyword in ("COPY", "ADD") and "--from=" not in rest:
            problems.append(f"the final stage copies from the build context: {rest}")
        if keyword in ("ENV", "ARG") and re.search(r"(PASSWORD|SECRET|TOKEN|_KEY)\s*=", rest, re.IGNORECASE):
            problems.append(f"a secret in the image: {rest}")
    return problems


def final_uid(dockerfile: str) -> int:
    users = [rest for keyword, rest in stages(dockerfile)[-1].instructions if keyword == "USER"]
    return int(users[-1].split(":")[0])
