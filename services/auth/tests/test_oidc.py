import base64
import hashlib
import hmac
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from services.auth.clients import Clients
from services.auth.oidc import (
    AuthorizeError,
    Provider,
    TokenError,
    access_token_jwks,
    access_token_key,
    id_token_es256_key,
    oidc_jwks,
)
from services.auth.settings import Settings
from services.auth.sso_sessions import SsoSession
from services.auth.store import Client, User
from services.common.clock import FrozenClock
from services.common.errors import BadRequest
from services.common.keys import SigningKey, generate_private_pem
from services.common.tokens import InvalidToken, StaticKeys, TokenVerifier

from .fakes import FakeAuthStore

REDIRECT = "https://app.example/callback"
VERIFIER = "v" * 50
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()


@pytest.fixture
def oidc_key() -> SigningKey:
    return SigningKey.from_pem(generate_private_pem("rsa"))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def store() -> FakeAuthStore:
    fake = FakeAuthStore()
    fake.clients["app"] = Client("app", "hash", [REDIRECT], ["https://app.example/"])
    fake.users["alice"] = User(SESSION.user_id, "alice", "hash", disabled=False)
    return fake


class EndedSessions:
    """What the provider asked the session service to end."""

    def __init__(self) -> None:
        self.sids: list[str] = []

    async def end(self, *, session_id: str | None = None, sid: str | None = None) -> None:
        assert session_id is None and sid is not None
        self.sids.append(sid)


@pytest.fixture
def ended() -> EndedSessions:
    return EndedSessions()


@pytest.fixture
def provider(
    store: FakeAuthStore, oidc_key: SigningKey, clock: FrozenClock, tmp_path: Path, ended: EndedSessions
) -> Provider:
    settings = Settings(
        signing_key_file=tmp_path / "unused.pem",
        oidc_key_file=tmp_path / "unused-oidc.pem",
        issuer_url="https://sso.example/auth",
    )
    clients = Clients(store, clock, settings.client_uris_cache_seconds)  # type: ignore[arg-type]
    return Provider(settings, store, clients, oidc_key, clock, ended)  # type: ignore[arg-type]


def authorize_params(**overrides: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": "app",
        "redirect_uri": REDIRECT,
        "scope": "openid profile",
        "state": "st",
        "nonce": "no",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    return {**params, **overrides}


SESSION = SsoSession(uuid4(), "alice", "sid-1", ["pwd", "otp"], 1_700_000_000, 1_700_043_200)


@pytest.mark.parametrize(
    "redirect_uri",
    [
        REDIRECT + "?x=1",
        REDIRECT + "/extra",
        "https://app.example/other/../callback",
        "https://evil.example/callback",
        "https://APP.example/callback",
        REDIRECT + "#frag",
        "",
    ],
)
async def test_a_redirect_uri_must_match_exactly_and_is_never_redirected_to(
    provider: Provider, redirect_uri: str
) -> None:
    with pytest.raises(AuthorizeError) as refused:
        await provider.validate_authorize(authorize_params(redirect_uri=redirect_uri))
    assert refused.value.redirect is None


async def test_an_unknown_client_is_refused_without_redirect(provider: Provider) -> None:
    with pytest.raises(AuthorizeError) as refused:
        await provider.validate_authorize(authorize_params(client_id="nobody"))
    assert refused.value.redirect is None


@pytest.mark.parametrize(
    "overrides",
    [
        {"code_challenge_method": "plain"},
        {"code_challenge": ""},
        {"code_challenge_method": ""},
        {"response_type": "token"},
        {"scope": "profile"},
        {"max_age": "-1"},
        {"max_age": "soon"},
    ],
)
async def test_bad_requests_from_a_known_client_go_back_with_an_error(
    provider: Provider, overrides: dict[str, str]
) -> None:
    with pytest.raises(AuthorizeError) as refused:
        await provider.validate_authorize(authorize_params(**overrides))
    assert refused.value.redirect is not None
    query = parse_qs(urlsplit(provider.error_redirect(refused.value)).query)
    assert query["state"] == ["st"]
    assert query["error"][0] in {"invalid_request", "unsupported_response_type", "invalid_scope"}


async def _code(provider: Provider) -> str:
    request = await provider.validate_authorize(authorize_params())
    location = await provider.issue_code(request, SESSION)
    assert location is not None
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(REDIRECT + "?")
    assert query["state"] == ["st"]
    assert query["iss"] == ["https://sso.example/auth"]
    return query["code"][0]


def code_in(location: str | None) -> str:
    assert location is not None, "no code issued"
    return parse_qs(urlsplit(location).query)["code"][0]


def token_form(code: str, **overrides: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER,
        **overrides,
    }


async def test_a_code_exchanges_for_a_signed_id_token(
    provider: Provider, store: FakeAuthStore, oidc_key: SigningKey
) -> None:
    tokens = await provider.exchange_code(store.clients["app"], token_form(await _code(provider)))
    claims = jwt.decode(
        tokens["id_token"],
        oidc_key.private_key.public_key(),
        algorithms=["RS256"],
        audience="app",
        issuer="https://sso.example/auth",
        options={"verify_exp": False},
    )
    assert claims["sub"] == str(SESSION.user_id)
    assert claims["nonce"] == "no"
    assert claims["sid"] == "sid-1"
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["preferred_username"] == "alice"
    assert jwt.get_unverified_header(tokens["id_token"])["kid"] == oidc_key.kid


async def test_profile_claims_need_the_profile_scope(
    provider: Provider, store: FakeAuthStore, oidc_key: SigningKey
) -> None:
    request = await provider.validate_authorize(authorize_params(scope="openid"))
    code = code_in(await provider.issue_code(request, SESSION))
    tokens = await provider.exchange_code(store.clients["app"], token_form(code))
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert "preferred_username" not in claims
    assert claims["sub"] == str(SESSION.user_id)


async def test_userinfo_without_the_profile_scope_tells_only_the_subject(
    provider: Provider, store: FakeAuthStore, oidc_key: SigningKey, clock: FrozenClock
) -> None:
    verifier = TokenVerifier(
        StaticKeys(oidc_jwks(oidc_key)),
        issuers={"https://sso.example/auth"},
        audience="https://sso.example/auth/userinfo",
        algorithms=("ES256",),
        clock=clock,
    )
    answers = {}
    for scope in ("openid", "openid profile"):
        request = await provider.validate_authorize(authorize_params(scope=scope))
        code = code_in(await provider.issue_code(request, SESSION))
        tokens = await provider.exchange_code(store.clients["app"], token_form(code))
        answers[scope] = await provider.userinfo(verifier, tokens["access_token"])
    assert answers["openid"] == {"sub": str(SESSION.user_id)}
    assert answers["openid profile"] == {"sub": str(SESSION.user_id), "preferred_username": "alice"}


async def test_a_reused_code_is_refused_and_revokes_the_first_access_token(
    provider: Provider, store: FakeAuthStore, ended: EndedSessions
) -> None:
    code = await _code(provider)
    first = await provider.exchange_code(store.clients["app"], token_form(code))
    with pytest.raises(TokenError) as refused:
        await provider.exchange_code(store.clients["app"], token_form(code))
    assert refused.value.error == "invalid_grant"
    jti = jwt.decode(first["access_token"], options={"verify_signature": False})["jti"]
    assert jti in store.revoked
    assert ended.sids == [SESSION.sid], "the SSO session the code came from ends too"


async def test_an_exchange_with_wrong_details_burns_nothing(
    provider: Provider, store: FakeAuthStore, ended: EndedSessions
) -> None:
    code = await _code(provider)
    for wrong in ({"code_verifier": "w" * 50}, {"redirect_uri": REDIRECT + "?x"}):
        with pytest.raises(TokenError):
            await provider.exchange_code(store.clients["app"], token_form(code, **wrong))
    assert "access_token" in await provider.exchange_code(store.clients["app"], token_form(code))
    assert ended.sids == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"code_verifier": "w" * 50},
        {"code_verifier": ""},
        {"redirect_uri": REDIRECT + "?x"},
        {"grant_type": "password"},
    ],
)
async def test_an_exchange_with_wrong_details_is_refused(
    provider: Provider, store: FakeAuthStore, overrides: dict[str, str]
) -> None:
    with pytest.raises(TokenError):
        await provider.exchange_code(store.clients["app"], token_form(await _code(provider), **overrides))


async def test_a_code_is_valid_for_60_seconds_only(
    provider: Provider, store: FakeAuthStore, clock: FrozenClock
) -> None:
    code = await _code(provider)
    clock.advance(61)
    with pytest.raises(TokenError) as refused:
        await provider.exchange_code(store.clients["app"], token_form(code))
    assert refused.value.description == "code expired"


async def test_a_code_issued_to_one_client_cannot_be_used_by_another(
    provider: Provider, store: FakeAuthStore
) -> None:
    other = Client("other", "hash", [REDIRECT], [])
    with pytest.raises(TokenError):
        await provider.exchange_code(other, token_form(await _code(provider)))


async def test_no_code_for_a_disabled_or_removed_account(provider: Provider, store: FakeAuthStore) -> None:
    request = await provider.validate_authorize(authorize_params())
    await store.set_disabled("alice", True)
    assert await provider.issue_code(request, SESSION) is None
    del store.users["alice"]
    assert await provider.issue_code(request, SESSION) is None
    assert store.codes == {}


def test_discovery_announces_pkce_s256_and_both_client_auth_methods(provider: Provider) -> None:
    discovery = provider.discovery()
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert set(discovery["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert discovery["issuer"] == "https://sso.example/auth"
    # RS256 first: the default, what a client registered without the setting gets.
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256", "ES256"]


async def test_max_age_asks_for_a_sign_in_no_older_than_it(provider: Provider) -> None:
    fresh = await provider.validate_authorize(authorize_params(max_age="60"))
    assert fresh.accepts_sign_in_at(1000, now=1060) and not fresh.accepts_sign_in_at(1000, now=1061)
    assert not (await provider.validate_authorize(authorize_params(max_age="0"))).accepts_sign_in_at(
        1000, 1001
    )
    assert (await provider.validate_authorize(authorize_params())).accepts_sign_in_at(0, now=10**9)
    assert "max_age" not in fresh.query(), "coming back signed in must not ask again"


async def test_the_access_token_is_es256_with_its_own_published_key_and_the_id_token_stays_rs256(
    provider: Provider, store: FakeAuthStore, oidc_key: SigningKey
) -> None:
    tokens = await provider.exchange_code(store.clients["app"], token_form(await _code(provider)))
    published = {jwk["kid"]: jwk for jwk in oidc_jwks(oidc_key)["keys"]}
    id_header = jwt.get_unverified_header(tokens["id_token"])
    access_header = jwt.get_unverified_header(tokens["access_token"])
    assert (id_header["alg"], id_header["kid"]) == ("RS256", oidc_key.kid)
    assert (access_header["alg"], access_header["typ"]) == ("ES256", "at+jwt")
    assert access_header["kid"] != oidc_key.kid
    assert published[access_header["kid"]]["alg"] == "ES256"
    claims = jwt.decode(
        tokens["access_token"],
        jwt.PyJWK(published[access_header["kid"]]).key,
        algorithms=["ES256"],
        audience="https://sso.example/auth/userinfo",
        options={"verify_exp": False},
    )
    assert claims["client_id"] == "app"
    # An access token is no id_token: signed by another key, for another audience.
    with pytest.raises(jwt.PyJWTError):
        jwt.decode(tokens["access_token"], oidc_key.private_key.public_key(), algorithms=["RS256"])


def test_the_access_token_key_is_the_same_on_every_replica_and_new_with_a_new_oidc_key(
    oidc_key: SigningKey, tmp_path: Path
) -> None:
    again = SigningKey.from_pem(
        oidc_key.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    assert access_token_key(again).public_jwk() == access_token_key(oidc_key).public_jwk()
    other = SigningKey.from_pem(generate_private_pem("rsa"))
    assert access_token_key(other).kid != access_token_key(oidc_key).kid
    # During a rotation the previous key, published as a private key, keeps its access tokens good.
    previous = tmp_path / "previous.pem"
    previous.write_bytes(generate_private_pem("rsa"))
    kids = {jwk["kid"] for jwk in oidc_jwks(oidc_key, [previous])["keys"]}
    assert access_token_key(SigningKey.from_pem(previous.read_bytes())).kid in kids
    assert id_token_es256_key(SigningKey.from_pem(previous.read_bytes())).kid in kids
    # Each of the two: its RSA key, access-token key and ES256 id_token key.
    assert len(kids) == 6


async def test_a_clients_redirect_uris_are_remembered_a_few_seconds_only(
    provider: Provider, store: FakeAuthStore, clock: FrozenClock
) -> None:
    await provider.validate_authorize(authorize_params())
    store.clients["app"] = Client("app", "hash", ["https://app.example/other"], [])
    # Within the bound the URIs read a moment ago still count ...
    assert (await provider.validate_authorize(authorize_params())).redirect_uri == REDIRECT
    clock.advance(provider.settings.client_uris_cache_seconds)
    # ... past it, the client as it is now.
    with pytest.raises(AuthorizeError) as refused:
        await provider.validate_authorize(authorize_params())
    assert refused.value.redirect is None
    assert (
        await provider.validate_authorize(authorize_params(redirect_uri="https://app.example/other"))
    ).state


async def test_a_client_registered_again_counts_at_once_in_this_process(
    provider: Provider, store: FakeAuthStore
) -> None:
    await provider.validate_authorize(authorize_params())
    await provider.clients.register("app", ["https://app.example/new"], [], replace=True)
    with pytest.raises(AuthorizeError):
        await provider.validate_authorize(authorize_params())
    assert await provider.validate_authorize(authorize_params(redirect_uri="https://app.example/new"))


async def test_the_secret_check_never_uses_remembered_uris(provider: Provider, store: FakeAuthStore) -> None:
    await provider.validate_authorize(authorize_params())
    secret = await provider.clients.register("app", [REDIRECT], [], replace=True)
    assert await provider.clients.authenticate("app", secret) is not None
    await provider.clients.register("app", [REDIRECT], [], replace=True)
    assert await provider.clients.authenticate("app", secret) is None


async def test_a_client_registered_with_es256_gets_es256_id_tokens_verifiable_with_the_published_key(
    provider: Provider, store: FakeAuthStore, oidc_key: SigningKey, clock: FrozenClock
) -> None:
    await provider.clients.register("app", [REDIRECT], [], replace=True, id_token_signed_response_alg="ES256")
    client = store.clients["app"]
    tokens = await provider.exchange_code(client, token_form(await _code(provider)))

    header = jwt.get_unverified_header(tokens["id_token"])
    published = {jwk["kid"]: jwk for jwk in oidc_jwks(oidc_key)["keys"]}
    assert header["alg"] == "ES256"
    assert header["kid"] == id_token_es256_key(oidc_key).kid
    # Its own key: neither the RSA key nor the access tokens' (RFC 8725 §3.12).
    assert header["kid"] not in (oidc_key.kid, jwt.get_unverified_header(tokens["access_token"])["kid"])
    verifier = TokenVerifier(
        StaticKeys(oidc_jwks(oidc_key)),
        issuers={"https://sso.example/auth"},
        audience="app",
        algorithms=("ES256",),
        clock=clock,
        required=("exp", "iat", "iss", "aud", "sub"),
    )
    claims = await verifier.verify(tokens["id_token"])
    assert published[header["kid"]]["alg"] == "ES256"
    assert (claims["sub"], claims["nonce"], claims["sid"]) == (str(SESSION.user_id), "no", "sid-1")
    # Not with the RSA key, whatever the alg a verifier would allow.
    with pytest.raises(jwt.PyJWTError):
        jwt.decode(tokens["id_token"], oidc_key.private_key.public_key(), algorithms=["RS256"])


async def test_the_rs256_client_still_gets_rs256_once_another_registers_es256(
    provider: Provider, store: FakeAuthStore, oidc_key: SigningKey
) -> None:
    await provider.clients.register(
        "es-app", [REDIRECT], [], replace=False, id_token_signed_response_alg="ES256"
    )
    tokens = await provider.exchange_code(store.clients["app"], token_form(await _code(provider)))
    assert jwt.get_unverified_header(tokens["id_token"])["alg"] == "RS256"
    assert store.clients["app"].id_token_signed_response_alg == "RS256"


async def test_registering_another_id_token_alg_is_refused(provider: Provider) -> None:
    for algorithm in ("HS256", "none", "RS512", "es256"):
        with pytest.raises(BadRequest):
            await provider.clients.register(
                "app", [REDIRECT], [], replace=True, id_token_signed_response_alg=algorithm
            )


async def test_an_es256_id_token_is_no_access_token_at_userinfo(
    provider: Provider, store: FakeAuthStore, oidc_key: SigningKey, clock: FrozenClock
) -> None:
    await provider.clients.register("app", [REDIRECT], [], replace=True, id_token_signed_response_alg="ES256")
    tokens = await provider.exchange_code(store.clients["app"], token_form(await _code(provider)))
    userinfo_verifier = TokenVerifier(
        StaticKeys(access_token_jwks(oidc_key)),
        issuers={"https://sso.example/auth"},
        audience="https://sso.example/auth/userinfo",
        algorithms=("ES256",),
        clock=clock,
    )
    assert (await provider.userinfo(userinfo_verifier, tokens["access_token"]))["sub"]
    with pytest.raises(InvalidToken, match="unknown kid"):
        await provider.userinfo(userinfo_verifier, tokens["id_token"])


async def test_a_logout_hint_is_read_with_the_key_of_its_kid_in_that_keys_alg_only(
    provider: Provider, store: FakeAuthStore, oidc_key: SigningKey
) -> None:
    rs256 = (await provider.exchange_code(store.clients["app"], token_form(await _code(provider))))[
        "id_token"
    ]
    await provider.clients.register("app", [REDIRECT], [], replace=True, id_token_signed_response_alg="ES256")
    es256 = (await provider.exchange_code(store.clients["app"], token_form(await _code(provider))))[
        "id_token"
    ]
    assert (provider.read_id_token_hint(rs256) or {})["sid"] == "sid-1"
    assert (provider.read_id_token_hint(es256) or {})["sid"] == "sid-1"
    claims = jwt.decode(rs256, options={"verify_signature": False})
    public_pem = oidc_key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = [
        # HS256 keyed with the published RSA key, under its kid: the classic alg confusion.
        _hs256_with(public_pem, claims, oidc_key.kid),
        # alg none, no signature.
        f"{_b64(json.dumps({'alg': 'none', 'kid': oidc_key.kid}).encode())}.{_b64(json.dumps(claims).encode())}.",
        # ES256 under the RSA key's kid, by some other P-256 key.
        jwt.encode(
            claims,
            SigningKey.from_pem(generate_private_pem("ec")).private_key,
            algorithm="ES256",
            headers={"kid": oidc_key.kid},
        ),
    ]
    for token in forged:
        assert provider.read_id_token_hint(token) is None


def _hs256_with(secret: bytes, claims: dict[str, object], kid: str) -> str:
    """What PyJWT refuses to build with a PEM as an HMAC secret: header, payload, HMAC by hand."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
