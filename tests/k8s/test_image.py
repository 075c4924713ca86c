"""The one service image, on paper: the Dockerfile's rules, what goes in, and what the manifests run."""

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

from .images import dockerfile_problems, final_uid
from .manifests import ROOT, SERVICES, build, containers, find, pod_template

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_the_dockerfile_follows_the_rules() -> None:
    assert dockerfile_problems(DOCKERFILE) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.replace("3.11.13-slim-bookworm", "3.11-slim"), "not an exactly pinned"),
        (lambda d: d.replace("python:3.11.13-slim-bookworm\n", "python:latest\n"), "not an exactly pinned"),
        (lambda d: d.replace("USER 10001:10001", "USER sso"), "numeric non-root USER"),
        (lambda d: d.replace("USER 10001:10001\n", ""), "numeric non-root USER"),
        (lambda d: d + "RUN apt-get install -y gcc\n", "installs packages"),
        (lambda d: d + "COPY services /srv\n", "copies from the build context"),
        (lambda d: d + "ENV API_TOKEN=abc\n", "a secret in the image"),
        (lambda d: re.sub(r"(?s)^.*?# Stage 2.*?\n(?=FROM)", "", d), "not multi-stage"),
    ],
)
def test_each_rule_catches_a_broken_dockerfile(change, problem: str) -> None:  # type: ignore[no-untyped-def]
    broken = change(DOCKERFILE)
    assert broken != DOCKERFILE
    assert any(problem in found for found in dockerfile_problems(broken)), dockerfile_problems(broken)


def test_the_manifests_run_the_image_user_and_every_service_from_the_one_image() -> None:
    objects = build("prod")
    images = set()
    for name in (*SERVICES, "sso-admin"):
        spec = pod_template(find(objects, "Deployment", name))["spec"]
        assert spec["securityContext"]["runAsUser"] == final_uid(DOCKERFILE)
        images |= {container["image"] for _field, container in containers(spec)}
    assert len(images) == 1, images


def test_the_build_context_lets_in_only_what_the_image_needs() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "**", "start from nothing, then allow"
    allowed = {line[1:] for line in rules if line.startswith("!")}
    assert allowed == {"pyproject.toml", "services", "devstack"}
    copied = re.findall(r"^COPY (?!--from)(\S+)", DOCKERFILE, re.MULTILINE)
    assert set(copied) <= allowed


def _packaged(relative: Path, patterns: list[str]) -> bool:
    parts = relative.parts
    return any(
        len(pattern.split("/")) == len(parts)
        and all(fnmatch.fnmatchcase(part, glob) for part, glob in zip(parts, pattern.split("/"), strict=True))
        for pattern in patterns
    )


def test_every_file_a_service_reads_is_installed_into_the_image() -> None:
    """The image installs the project (`pip install .`): files outside package-data never reach it."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    missing = []
    for path in sorted((ROOT / "services").rglob("*")):
        if (
            not path.is_file()
            or path.suffix in (".py", ".pyc")
            or "tests" in path.parts
            or "__pycache__" in path.parts
        ):
            continue
        package = path.parent
        while not (package / "__init__.py").exists():
            package = package.parent
        if not _packaged(path.relative_to(package), patterns):
            missing.append(str(path.relative_to(ROOT)))
    assert missing == [], "add these to [tool.setuptools.package-data] in pyproject.toml"
