"""The internal API as peers see it: service tokens, allow lists, input limits, real Redis."""

from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.common.clock import FrozenClock
from services.common.keys import SigningKey, generate_private_pem, jwks
from services.common.service_client import SERVICE_TOKEN_TYPE
from services.common.tokens import PeerKeys, StaticKeys, TokenIssuer
from services.session.app import create_app, open_state
from services.session.settings import Settings

from .conftest import REDIS_URL, TWELVE_HOURS

PEERS = ("auth", "mfa", "portal")

Call = Callable[..., Any]


@pytest.fixture
def peer_keys() -> dict[str, SigningKey]:
    return {name: SigningKey.from_pem(generate_private_pem("ec")) for name in PEERS}


@pytest.fixture
async def app(
    tmp_path: Path, key_prefix: str, clock: FrozenClock, peer_keys: dict[str, SigningKey]
) -> AsyncIterator[FastAPI]:
    key_file = tmp_path / "session.pem"
    key_file.write_bytes(generate_private_pem("ec"))
    settings = Settings(signing_key_file=key_file, redis_url=REDIS_URL, key_prefix=key_prefix)
    application = create_app(
        settings,
        state_opener=partial(
            open_state,
            clock=clock,
            peer_keys=PeerKeys({name: StaticKeys(jwks(key)) for name, key in peer_keys.items()}),
        ),
    )
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://session") as http:
        yield http


@pytest.fixture
def call(client: httpx.AsyncClient, peer_keys: dict[str, SigningKey], clock: FrozenClock) -> Call:
    async def post(caller: str, path: str, body: Any, audience: str = "session") -> httpx.Response:
        token = TokenIssuer(peer_keys[caller], caller, clock).issue(
            audience, 60, token_type=SERVICE_TOKEN_TYPE
        )
        return await client.post(path, json=body, headers={"authorization": f"Bearer {token}"})

    return post


async def start_sso(call: Call) -> dict[str, Any]:
    response = await call(
        "auth", "/internal/sso-sessions", {"user_id": "u1", "username": "alice", "amr": ["pwd", "otp"]}
    )
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    return body


async def test_sign_in_then_portal_session_then_sign_out_everywhere(call: Call, clock: FrozenClock) -> None:
    sso = await start_sso(call)
    assert set(sso) == {"session_id", "sid", "auth_time", "expires_at"}
    assert sso["auth_time"] == int(clock.now())
    assert sso["expires_at"] == int(clock.now()) + TWELVE_HOURS

    looked_up = await call("auth", "/internal/sso-sessions/lookup", {"session_id": sso["session_id"]})
    assert looked_up.status_code == 200
    assert looked_up.json() == {
        "user_id": "u1",
        "username": "alice",
        "sid": sso["sid"],
        "amr": ["pwd", "otp"],
        "auth_time": sso["auth_time"],
        "expires_at": sso["expires_at"],
    }

    # As a portal of the release before issue 11 asks: its id_token is ignored, never stored.
    portal = await call(
        "portal",
        "/internal/portal-sessions",
        {"sid": sso["sid"], "user_id": "u1", "username": "alice", "id_token": "a.b.c"},
    )
    assert portal.status_code == 201
    portal_id = portal.json()["session_id"]
    found = await call("portal", "/internal/portal-sessions/lookup", {"session_id": portal_id})
    assert found.status_code == 200
    assert found.json() == {
        "user_id": "u1",
        "username": "alice",
        "sid": sso["sid"],
        "expires_at": sso["expires_at"],
    }

    ended = await call("auth", "/internal/sso-sessions/end", {"sid": sso["sid"]})
    assert ended.json() == {"ended": True}

    gone = await call("portal", "/internal/portal-sessions/lookup", {"session_id": portal_id})
    assert gone.status_code == 404
    assert gone.json()["error"] == "not_found"
    again = await call(
        "portal",
        "/internal/portal-sessions",
        {"sid": sso["sid"], "user_id": "u1", "username": "alice"},
    )
    assert again.status_code == 404


async def test_portal_logout_ends_only_the_portal_session(call: Call) -> None:
    sso = await start_sso(call)
    portal = await call(
        "portal", "/internal/portal-sessions", {"sid": sso["sid"], "user_id": "u1", "username": "alice"}
    )
    portal_id = portal.json()["session_id"]

    ended = await call("portal", "/internal/portal-sessions/end", {"session_id": portal_id})

    assert ended.json() == {"ended": True}
    lookup = await call("portal", "/internal/portal-sessions/lookup", {"session_id": portal_id})
    assert lookup.status_code == 404
    sso_lookup = await call("auth", "/internal/sso-sessions/lookup", {"session_id": sso["session_id"]})
    assert sso_lookup.status_code == 200


async def test_revoke_by_auth_mfa_and_the_portal(call: Call) -> None:
    sso = await start_sso(call)

    revoked = await call("mfa", "/internal/users/revoke", {"user_id": "u1"})

    assert revoked.status_code == 200 and revoked.json() == {"ended": 1}
    lookup = await call("auth", "/internal/sso-sessions/lookup", {"session_id": sso["session_id"]})
    assert lookup.status_code == 404
    assert (await call("auth", "/internal/users/revoke", {"user_id": "u1"})).json() == {"ended": 0}
    # The portal's "Sign out everywhere".
    await start_sso(call)
    assert (await call("portal", "/internal/users/revoke", {"user_id": "u1"})).json() == {"ended": 1}


async def test_the_portal_lists_a_users_sessions_and_ends_one_only_for_its_owner(
    call: Call, clock: FrozenClock
) -> None:
    laptop = await call(
        "auth",
        "/internal/sso-sessions",
        {
            "user_id": "u1",
            "username": "alice",
            "amr": ["pwd", "otp"],
            "device": "Chrome on Windows",
            "address": "203.0.113.7",
        },
    )
    assert laptop.status_code == 201
    clock.advance(60)
    phone = await start_sso(call)

    listed = (await call("portal", "/internal/users/sessions", {"user_id": "u1"})).json()["sessions"]
    assert [(s["sid"], s["device"], s["address"]) for s in listed] == [
        (laptop.json()["sid"], "Chrome on Windows", "203.0.113.7"),
        (phone["sid"], "", ""),
    ]
    assert set(listed[0]) == {"sid", "auth_time", "expires_at", "device", "address"}
    assert (await call("portal", "/internal/users/sessions", {"user_id": "u2"})).json() == {"sessions": []}

    # Oldest sign-in first. Another user's id with alice's sid ends nothing.
    end = "/internal/users/sessions/end"
    assert (await call("portal", end, {"user_id": "u2", "sid": phone["sid"]})).json() == {"ended": False}
    lookup = await call("auth", "/internal/sso-sessions/lookup", {"session_id": phone["session_id"]})
    assert lookup.status_code == 200
    assert (await call("portal", end, {"user_id": "u1", "sid": phone["sid"]})).json() == {"ended": True}
    lookup = await call("auth", "/internal/sso-sessions/lookup", {"session_id": phone["session_id"]})
    assert lookup.status_code == 404
    assert (await call("portal", end, {"user_id": "u1", "sid": phone["sid"]})).json() == {"ended": False}


@pytest.mark.parametrize(
    ("caller", "path"),
    [
        ("portal", "/internal/sso-sessions"),
        ("mfa", "/internal/sso-sessions/lookup"),
        ("portal", "/internal/sso-sessions/end"),
        ("auth", "/internal/portal-sessions"),
        ("auth", "/internal/portal-sessions/lookup"),
        ("mfa", "/internal/portal-sessions/end"),
        ("auth", "/internal/users/sessions"),
        ("auth", "/internal/users/sessions/end"),
        ("mfa", "/internal/users/sessions/end"),
    ],
)
async def test_a_peer_outside_the_allow_list_is_refused(call: Call, caller: str, path: str) -> None:
    sso = await start_sso(call)
    body = {
        "session_id": sso["session_id"],
        "user_id": "u1",
        "username": "alice",
        "amr": ["pwd"],
        "sid": sso["sid"],
    }
    if path == "/internal/sso-sessions/end":
        body.pop("sid")

    response = await call(caller, path, body)

    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    # The refused call changed nothing.
    lookup = await call("auth", "/internal/sso-sessions/lookup", {"session_id": sso["session_id"]})
    assert lookup.status_code == 200


async def test_calls_without_a_valid_service_token_are_refused(
    client: httpx.AsyncClient, call: Call, clock: FrozenClock
) -> None:
    body = {"user_id": "u1", "username": "alice", "amr": ["pwd", "otp"]}
    stranger = SigningKey.from_pem(generate_private_pem("ec"))
    forged = TokenIssuer(stranger, "auth", clock).issue("session", 60, token_type=SERVICE_TOKEN_TYPE)

    no_token = await client.post("/internal/sso-sessions", json=body)
    wrong_key = await client.post(
        "/internal/sso-sessions", json=body, headers={"authorization": f"Bearer {forged}"}
    )
    wrong_audience = await call("auth", "/internal/sso-sessions", body, audience="mfa")

    assert [no_token.status_code, wrong_key.status_code, wrong_audience.status_code] == [401] * 3


async def test_a_step_token_signed_by_a_peer_is_not_a_service_token(
    client: httpx.AsyncClient, peer_keys: dict[str, SigningKey], clock: FrozenClock
) -> None:
    # What sits in a customer's login_step cookie: signed with mfa's own key, aud and iss right.
    step_token = TokenIssuer(peer_keys["mfa"], "mfa", clock).issue("session", 60, {"stage": "complete"})
    service_token = TokenIssuer(peer_keys["mfa"], "mfa", clock).issue(
        "session", 60, token_type=SERVICE_TOKEN_TYPE
    )
    body = {"user_id": "u1"}
    refused = await client.post(
        "/internal/users/revoke", json=body, headers={"authorization": f"Bearer {step_token}"}
    )
    accepted = await client.post(
        "/internal/users/revoke", json=body, headers={"authorization": f"Bearer {service_token}"}
    )
    assert (refused.status_code, accepted.status_code) == (401, 200)


async def test_expired_service_token_is_refused(
    client: httpx.AsyncClient, peer_keys: dict[str, SigningKey], clock: FrozenClock
) -> None:
    token = TokenIssuer(peer_keys["auth"], "auth", clock).issue("session", 60, token_type=SERVICE_TOKEN_TYPE)
    clock.advance(120)

    response = await client.post(
        "/internal/users/revoke", json={"user_id": "u1"}, headers={"authorization": f"Bearer {token}"}
    )

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/internal/sso-sessions/lookup", {"session_id": "x" * 129}),
        ("/internal/sso-sessions/lookup", {"session_id": ""}),
        ("/internal/sso-sessions/lookup", {"session_id": "has spaces"}),
        ("/internal/sso-sessions/lookup", {}),
        ("/internal/sso-sessions/lookup", ["not", "an", "object"]),
        ("/internal/sso-sessions", {"user_id": "u" * 129, "username": "a", "amr": ["pwd"]}),
        ("/internal/sso-sessions", {"user_id": "u1", "username": "a", "amr": "pwd"}),
        ("/internal/sso-sessions", {"user_id": "u1", "username": "a", "amr": ["x"] * 9}),
        ("/internal/sso-sessions/end", {}),
        ("/internal/sso-sessions/end", {"session_id": "abc", "sid": "def"}),
        ("/internal/users/revoke", {"user_id": None}),
    ],
)
async def test_bad_input_is_a_400_never_a_500(call: Call, path: str, body: Any) -> None:
    response = await call("auth", path, body)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_input"


async def test_body_that_is_not_json_is_a_400(
    client: httpx.AsyncClient, peer_keys: dict[str, SigningKey], clock: FrozenClock
) -> None:
    token = TokenIssuer(peer_keys["auth"], "auth", clock).issue("session", 60, token_type=SERVICE_TOKEN_TYPE)

    response = await client.post(
        "/internal/sso-sessions/lookup",
        content=b"{not json",
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )

    assert response.status_code == 400


async def test_unknown_session_is_a_404(call: Call) -> None:
    response = await call("auth", "/internal/sso-sessions/lookup", {"session_id": "A" * 43})

    assert response.status_code == 404
    assert (await call("auth", "/internal/sso-sessions/end", {"session_id": "A" * 43})).json() == {
        "ended": False
    }


async def test_session_ids_stay_out_of_the_logs(call: Call, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    sso = await start_sso(call)
    await call("auth", "/internal/sso-sessions/lookup", {"session_id": sso["session_id"]})
    await call("auth", "/internal/sso-sessions/lookup", {"session_id": "B" * 129})

    logs = "\n".join(f"{record.getMessage()} {getattr(record, 'fields', '')}" for record in caplog.records)

    assert "/internal/sso-sessions/lookup" in logs
    assert sso["session_id"] not in logs
    assert "B" * 129 not in logs
