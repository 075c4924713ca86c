"""schemathesis against each service's own OpenAPI, on the real running services: no 5xx, ever.

Every operation of auth, mfa, session and portal gets up to 200 generated requests that fit its
schema and up to 200 that do not (hypothesis stops early when an operation has fewer distinct
inputs, e.g. a GET without parameters). Derandomized, so a run is reproducible. The session
service's internal API gets a valid service token from the caller each path allows, signed with
the stack's real keys, so generated bodies get past authentication to the code behind it.
The run gets a stack of its own: the thousands of sessions and rows it makes must not show up
in the other tests' Redis keys and audit trails.
"""

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from devstack import Stack
from services.common.keys import SigningKey
from services.common.service_client import SERVICE_TOKEN_TYPE
from services.common.tokens import TokenIssuer
from services.contracts.tests.test_architecture_doc import all_endpoints

MAX_EXAMPLES = 200
SERVICES = ("auth", "mfa", "session", "portal")


@pytest.fixture(scope="module")
def fuzz_stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack()


def service_token(stack: Stack, caller: str, audience: str = "session") -> str:
    key_file = (
        stack.secrets_dir / "admin.pem"
        if caller == "admin"
        else stack.env[f"{caller.upper()}_SIGNING_KEY_FILE"]
    )
    key = SigningKey.from_file(Path(key_file))
    return TokenIssuer(key, caller).issue(audience, 3600, token_type=SERVICE_TOKEN_TYPE)


def auth_headers(stack: Stack, service: str, path: str) -> dict[str, str]:
    """A service token from a caller the path allows, for the internal APIs."""
    if not path.startswith("/internal/"):
        return {}
    if path.startswith("/internal/admin/"):
        caller = "admin"
    else:
        # The first of the callers its contract allows (services/contracts).
        callers = [sorted(endpoint.callers)[0] for endpoint in all_endpoints() if endpoint.path == path]
        if not callers:  # GET /internal/jwks: public keys, no token
            return {}
        caller = callers[0]
    return {"authorization": f"Bearer {service_token(stack, caller, service)}"}


def fuzz(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    http: requests.Session,
    headers: dict[str, str],
    statuses: Counter[int],
) -> None:
    """Up to MAX_EXAMPLES generated requests; raises (after shrinking) on the first 5xx."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        # Real services over real sockets: slow data generation is not a bug here.
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def run(case: Any) -> None:
        response = case.call_and_validate(
            base_url=base_url, session=http, headers=headers, checks=[not_a_server_error]
        )
        statuses[response.status_code] += 1

    run()


@pytest.mark.parametrize("service", SERVICES)
def test_no_generated_request_gets_a_server_error(fuzz_stack: Stack, service: str) -> None:
    stack = fuzz_stack
    base_url = stack.service_url(service)
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    http = requests.Session()
    failures: list[str] = []
    counts: dict[str, Counter[int]] = {}
    started = time.monotonic()

    for result in schema.get_all_operations():
        operation = result.ok()
        headers = auth_headers(stack, service, operation.path)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            label = f"{operation.label} ({mode.value})"
            counts[label] = Counter()
            try:
                fuzz(operation, mode, base_url, http, headers, counts[label])
            except Unsatisfiable:
                # No input can break this schema (a GET without parameters): nothing negative to send.
                assert mode is GenerationMode.NEGATIVE, label
            except Exception as error:  # noqa: BLE001 - every operation runs; all failures reported
                failures.append(f"{label}: {error}")

    elapsed = time.monotonic() - started
    summary = "\n".join(
        f"  {label}: {sum(c.values())} calls {dict(sorted(c.items()))}" for label, c in counts.items()
    )
    print(f"\nschemathesis {service}: {len(counts)} runs in {elapsed:.1f} s\n{summary}")
    assert not failures, "server errors:\n" + "\n\n".join(failures)
    assert counts, f"{service} published no operations"
    # The internal APIs' bodies got past authentication: there, most answers are not 401.
    for label, statuses in counts.items():
        if "/internal/" in label and "(positive)" in label:
            assert statuses[401] < sum(statuses.values()) / 2, f"{label} stuck at authentication: {statuses}"


def test_the_session_service_token_is_genuine(fuzz_stack: Stack) -> None:
    stack = fuzz_stack
    """The control for the token above: signed by the caller's real key, for the session service."""
    token = service_token(stack, "portal")
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    response = requests.post(
        f"{stack.service_url('session')}/internal/portal-sessions/lookup",
        json={"session_id": "no-such-session"},
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 404
