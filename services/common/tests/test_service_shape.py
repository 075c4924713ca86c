"""The four services keep one shape: a typed state module, routes that never import the app,
and one test seam in create_app (docs/architecture.md, "Service shape")."""

import ast
import inspect
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI

from services.auth.app import create_app as auth_app
from services.mfa.app import create_app as mfa_app
from services.portal.app import create_app as portal_app
from services.session.app import create_app as session_app

SERVICES = Path(__file__).resolve().parents[2]
CREATE_APPS: dict[str, Callable[..., FastAPI]] = {
    "auth": auth_app,
    "mfa": mfa_app,
    "session": session_app,
    "portal": portal_app,
}


def imported_modules(path: Path) -> set[str]:
    """The modules a file imports, relative ones as written (`.app`, `.state`)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("service", sorted(CREATE_APPS))
def test_routes_and_state_never_import_the_app(service: str) -> None:
    for module in ("routes.py", "state.py"):
        imports = imported_modules(SERVICES / service / module)
        assert ".app" not in imports and f"services.{service}.app" not in imports, f"{service}/{module}"


@pytest.mark.parametrize("service", sorted(CREATE_APPS))
def test_routes_reach_the_state_through_its_typed_dependency(service: str) -> None:
    routes = (SERVICES / service / "routes.py").read_text()
    assert "request.app.state" not in routes, f"{service}/routes.py reads app.state by hand"
    assert ".state" in imported_modules(SERVICES / service / "routes.py")


@pytest.mark.parametrize("service", sorted(CREATE_APPS))
def test_create_app_takes_the_one_test_seam(service: str) -> None:
    parameters = inspect.signature(CREATE_APPS[service]).parameters
    assert list(parameters) == ["settings", "state_opener"]
    assert parameters["state_opener"].kind is inspect.Parameter.KEYWORD_ONLY
