"""The admin API through the real stack: ssoctl with only the admin key and the services' URLs;
every service refuses an admin token that is forged, for another audience or from another caller;
the audit trail names the operator and the reason."""

import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import Stack
from services.common.keys import SigningKey, generate_private_pem
from services.common.service_client import SERVICE_TOKEN_TYPE
from services.common.tokens import TokenIssuer

from .flows import add_user, first_login, sign_in_to_code_page

# One read-only admin call per service, with a body that fits.
READS: dict[str, tuple[str, dict[str, Any]]] = {
    "auth": ("/internal/admin/users/find", {"query": "nobody-here"}),
    "mfa": ("/internal/admin/mfa/status", {"user_id": "no-such-user"}),
    "session": ("/internal/admin/sessions", {"user_id": "no-such-user"}),
}


def admin_key(stack: Stack) -> SigningKey:
    return SigningKey.from_file(stack.secrets_dir / "admin.pem")


def token(key: SigningKey, issuer: str, audience: str, token_type: str = SERVICE_TOKEN_TYPE) -> str:
    return TokenIssuer(key, issuer).issue(audience, 60, token_type=token_type)


def call(stack: Stack, service: str, bearer: str, path: str | None = None) -> httpx.Response:
    read_path, body = READS[service]
    return httpx.post(
        f"{stack.service_url(service)}{path or read_path}",
        json=body,
        headers={"authorization": f"Bearer {bearer}"} if bearer else {},
        timeout=10,
    )


def ssoctl_ok(stack: Stack, *args: str, input: str | None = None) -> str:
    result = stack.ssoctl(*args, input=input)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_ssoctl_needs_only_the_admin_key_and_the_urls(stack: Stack, tmp_path: Path) -> None:
    settings = dict(line.split("=", 1) for line in stack.admin_env_file.read_text().splitlines())
    assert set(settings) == {"SSO_ADMIN_KEY_FILE", "SSO_AUTH_URL", "SSO_MFA_URL", "SSO_SESSION_URL"}
    env = stack.ssoctl_env()
    assert not [name for name in env if "DATABASE" in name or "REDIS" in name]
    assert b"PRIVATE KEY" not in (stack.secrets_dir / "admin.pub.pem").read_bytes()

    name = f"cust{secrets.token_hex(4)}"
    assert "added" in ssoctl_ok(stack, "user", "add", name, "--password-stdin", input="a long password\n")
    shown = json.loads(ssoctl_ok(stack, "user", "show", name))
    assert (shown["username"], shown["role"], shown["disabled"], shown["locked"]) == (
        name,
        "customer",
        False,
        False,
    )
    assert shown["mfa"]["enrolled"] is False and shown["sessions"] == []
    assert json.loads(ssoctl_ok(stack, "session", "list", name)) == []
    assert "role support" in ssoctl_ok(stack, "user", "role", name, "support")
    assert json.loads(ssoctl_ok(stack, "user", "show", name))["role"] == "support"

    # Another admin key than the one the services know: every command is refused.
    wrong_key = tmp_path / "wrong-admin.pem"
    wrong_key.write_bytes(generate_private_pem("ec"))
    other_env = tmp_path / "admin.env"
    other_env.write_text(
        "".join(f"{k}={wrong_key if k == 'SSO_ADMIN_KEY_FILE' else v}\n" for k, v in settings.items())
    )
    refused = stack.ssoctl("user", "show", name, env={**env, "SSO_ENV_FILE": str(other_env)})
    assert refused.returncode == 1
    assert "refused the admin token" in refused.stderr


def test_ssoctl_says_calmly_when_a_service_is_not_there(stack: Stack, tmp_path: Path) -> None:
    env_file = tmp_path / "admin.env"
    env_file.write_text(
        stack.admin_env_file.read_text().replace(stack.service_url("auth"), "http://127.0.0.1:9")
    )
    result = stack.ssoctl("user", "show", "anyone", env={**stack.ssoctl_env(), "SSO_ENV_FILE": str(env_file)})
    assert result.returncode == 1
    assert result.stderr.startswith("ssoctl: cannot reach auth at http://127.0.0.1:9"), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("service", sorted(READS))
def test_every_service_takes_a_genuine_admin_token_and_refuses_every_other(
    stack: Stack, service: str
) -> None:
    key = admin_key(stack)
    assert call(stack, service, token(key, "admin", service)).status_code == 200

    forged_key = SigningKey.from_pem(generate_private_pem("ec"))
    # Same kid as the real key, another key's signature.
    same_kid = SigningKey(forged_key.private_key, key.kid, key.algorithm)
    other_service = "portal" if service != "portal" else "auth"
    own_key = SigningKey.from_file(Path(stack.env[f"{service.upper()}_SIGNING_KEY_FILE"]))
    peer = "mfa" if service != "mfa" else "auth"
    peer_key = SigningKey.from_file(Path(stack.env[f"{peer.upper()}_SIGNING_KEY_FILE"]))
    refused = {
        "forged, unknown kid": token(forged_key, "admin", service),
        "forged, the admin kid": token(same_kid, "admin", service),
        "for another audience": token(key, "admin", other_service),
        "not a service token": token(key, "admin", service, token_type="JWT"),
        "from a peer service": token(peer_key, peer, service),
        "the service's own key": token(own_key, service, service),
        "a peer's key claiming to be admin": token(peer_key, "admin", service),
        "no token": "",
    }
    answers = {what: call(stack, service, bearer).status_code for what, bearer in refused.items()}
    assert answers == {what: 401 for what in refused}


def test_the_admin_token_opens_nothing_but_the_admin_api(stack: Stack) -> None:
    key = admin_key(stack)
    revoke = httpx.post(
        f"{stack.service_url('session')}/internal/users/revoke",
        json={"user_id": "anyone"},
        headers={"authorization": f"Bearer {token(key, 'admin', 'session')}"},
        timeout=10,
    )
    assert revoke.status_code == 401
    audit = httpx.post(
        f"{stack.service_url('auth')}/internal/audit",
        json={"event": "logout", "outcome": "portal", "ip": "1.2.3.4"},
        headers={"authorization": f"Bearer {token(key, 'admin', 'auth')}"},
        timeout=10,
    )
    assert audit.status_code == 401
    # And the gateway routes no admin path at all.
    through_gateway = httpx.post(f"{stack.gateway_url}/internal/admin/users/find", json=READS["auth"][1])
    assert through_gateway.status_code == 404


def test_the_audit_trail_names_the_operator_and_the_reason(stack: Stack, customers) -> None:  # type: ignore[no-untyped-def]
    account = add_user(stack)
    first_login(customers(), account)
    (live,) = json.loads(ssoctl_ok(stack, "session", "list", account.name))
    assert (live["amr"], live["portal_sessions"]) == (["pwd", "otp"], 1)
    why = "ticket 4711: lost phone"
    ssoctl_ok(stack, "mfa", "reset", account.name, "--operator", "alice", "--reason", why)
    ssoctl_ok(stack, "user", "disable", account.name, "--operator", "bob", "--reason", "fraud check")
    ssoctl_ok(stack, "user", "enable", account.name)  # the operator is $USER
    assert sign_in_to_code_page(customers(), account).soup.find(id="totp-secret") is not None

    lines = ssoctl_ok(stack, "audit", account.name).splitlines()

    def row(event: str, operator: str) -> str:
        found = [line for line in lines if line.split()[1] == event and f"operator={operator} " in line]
        assert found, (event, operator, lines)
        return found[-1]

    assert f"reason={json.dumps(why)}" in row("mfa.reset", "alice")
    assert f"reason={json.dumps(why)}" in row("session.revoked", "alice")
    assert 'reason="fraud check"' in row("user.disabled", "bob")
    assert 'reason="fraud check"' in row("session.revoked", "bob")
    assert row("user.enabled", stack.ssoctl_env()["USER"])
    assert row("user.added", stack.ssoctl_env()["USER"])
    # A customer's own steps name no operator.
    assert all("operator=" not in line for line in lines if line.split()[1].startswith("sign_in."))
