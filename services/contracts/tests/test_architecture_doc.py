"""docs/architecture.md's internal-API tables, the contracts and the served routes say the same.

Every table in the doc with the columns `path` and `callers` is read: each row must be an
endpoint of services.contracts (same callers, same request and answer fields, same status), each
endpoint must have its row, and each callee must serve exactly its endpoints under /internal/,
with the contract's models.
"""

import base64
import importlib
import os
import pkgutil
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import SecretStr

import services.contracts
from services.common.keys import generate_private_pem
from services.contracts.endpoint import Endpoint

DOC = Path(__file__).resolve().parents[3] / "docs" / "architecture.md"


@dataclass(frozen=True)
class Row:
    path: str
    callers: frozenset[str]
    request_fields: frozenset[str]
    answer_fields: frozenset[str] | None  # None: the doc names no answer body
    status_code: int
    line: int


def all_endpoints() -> list[Endpoint[Any, Any]]:
    found: dict[str, Endpoint[Any, Any]] = {}
    for module_info in pkgutil.iter_modules(services.contracts.__path__):
        module = importlib.import_module(f"services.contracts.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, Endpoint):
                found[value.path] = value
    return list(found.values())


def brace_fields(text: str) -> frozenset[str]:
    """`{kind: "otp", account, ip}` or `{session_id}` or `{sid}`: the field names, `?` dropped."""
    names: set[str] = set()
    for inner in re.findall(r"\{([^{}]*)\}", text):
        for part in inner.split(","):
            name = part.split(":")[0].strip().rstrip("?")
            if name:
                names.add(name)
    return frozenset(names)


def doc_rows() -> Iterator[Row]:
    header: list[str] | None = None
    for number, line in enumerate(DOC.read_text().splitlines(), start=1):
        if not line.startswith("|"):
            header = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if header is None:
            header = [cell.lower() for cell in cells]
            continue
        if set(cells) <= {"---", ""} or not {"path", "callers"} <= set(header):
            continue
        row = dict(zip(header, cells, strict=False))
        path = row["path"].strip("`").removeprefix("POST ").strip()
        request, _arrow, answer = row.get("body → answer", "").partition("→")
        status = re.match(r"\s*(\d{3})\b", answer)
        yield Row(
            path=path,
            callers=frozenset(name.strip() for name in row["callers"].split(",")),
            request_fields=brace_fields(request),
            answer_fields=brace_fields(answer) if "{" in answer else None,
            status_code=int(status.group(1)) if status else 200,
            line=number,
        )


def test_the_doc_has_internal_api_tables() -> None:
    paths = [row.path for row in doc_rows()]
    assert "/internal/sso-sessions" in paths and "/internal/attempts/begin" in paths
    assert len(paths) == len(set(paths)), "a path documented twice"


@pytest.mark.parametrize("row", list(doc_rows()), ids=lambda row: row.path)
def test_each_documented_call_is_a_contract(row: Row) -> None:
    endpoints = {endpoint.path: endpoint for endpoint in all_endpoints()}
    where = f"docs/architecture.md line {row.line}"
    assert row.path in endpoints, f"{where}: {row.path} has no Endpoint in services/contracts"
    endpoint = endpoints[row.path]
    assert row.callers == endpoint.callers, f"{where}: callers differ from the contract"
    assert row.request_fields == frozenset(endpoint.request.model_fields), f"{where}: request fields"
    if row.answer_fields is not None:
        assert row.answer_fields == frozenset(endpoint.answer.model_fields), f"{where}: answer fields"
    assert row.status_code == endpoint.status_code, f"{where}: status code"


def test_each_contract_is_documented() -> None:
    documented = {row.path for row in doc_rows()}
    missing = sorted(endpoint.path for endpoint in all_endpoints() if endpoint.path not in documented)
    assert missing == [], f"add these to a `| path | callers | body → answer |` table: {missing}"


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FastAPI]:
    """The four apps as built (their routes), without starting them."""
    from services.auth.app import create_app as auth_app
    from services.auth.settings import Settings as AuthSettings
    from services.mfa.app import create_app as mfa_app
    from services.mfa.settings import Settings as MfaSettings
    from services.portal.app import create_app as portal_app
    from services.portal.settings import Settings as PortalSettings
    from services.session.app import create_app as session_app
    from services.session.settings import Settings as SessionSettings

    keys = tmp_path_factory.mktemp("keys")
    (keys / "ec.pem").write_bytes(generate_private_pem("ec"))
    (keys / "rsa.pem").write_bytes(generate_private_pem("rsa"))
    ec, rsa = keys / "ec.pem", keys / "rsa.pem"
    return {
        "auth": auth_app(AuthSettings(signing_key_file=ec, oidc_key_file=rsa)),
        "mfa": mfa_app(
            MfaSettings(
                signing_key_file=ec,
                encryption_key=base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
            )
        ),
        "session": session_app(SessionSettings(signing_key_file=ec)),
        "portal": portal_app(PortalSettings(signing_key_file=ec, client_secret=SecretStr("a-long-secret"))),
    }


def schema_name(reference: dict[str, Any]) -> str:
    return str(reference["$ref"]).rsplit("/", 1)[-1]


def same_model(reference: dict[str, Any], model: type[Any]) -> bool:
    # FastAPI names a schema after its class, prefixed with the module when two classes share a name.
    name = schema_name(reference)
    return name == model.__name__ or name.endswith(f"__{model.__name__}")


@pytest.mark.parametrize("callee", ["auth", "mfa", "session", "portal"])
def test_each_callee_serves_its_contracts_with_their_models(callee: str, apps: dict[str, FastAPI]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # auth's userinfo answers GET and POST under one operation id
        paths: dict[str, Any] = apps[callee].openapi()["paths"]
    served = {path: operations for path, operations in paths.items() if path.startswith("/internal/")}
    contracts = {endpoint.path: endpoint for endpoint in all_endpoints() if endpoint.callee == callee}
    assert set(served) == set(contracts), f"{callee} serves other /internal/ paths than its contracts"
    for path, endpoint in contracts.items():
        assert set(served[path]) == {"post"}, path
        operation = served[path]["post"]
        request = operation["requestBody"]["content"]["application/json"]["schema"]
        assert same_model(request, endpoint.request), f"{path}: request {schema_name(request)}"
        answer = operation["responses"][str(endpoint.status_code)]["content"]["application/json"]["schema"]
        assert same_model(answer, endpoint.answer), f"{path}: answer {schema_name(answer)}"
