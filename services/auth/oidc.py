"""The OpenID Connect provider: authorize requests, codes, tokens, discovery and logout checks."""

import base64
import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from services.common.clock import Clock, random_token
from services.common.keys import SigningKey, derived_secret, jwks, public_jwk, thumbprint
from services.common.tokens import InvalidToken, TokenVerifier

from .clients import Clients
from .settings import Settings
from .sso_sessions import SsoSession
from .store import AuthorizationCode, AuthStore, Client, CodeRedeemer

log = logging.getLogger(__name__)

PKCE_PATTERN = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
MAX_AGE_PATTERN = re.compile(r"^[0-9]{1,9}$")
MAX_PARAM_LENGTH = 512


class AuthorizeError(Exception):
    """A bad authorize request. Redirectable only once client and redirect_uri are known good."""

    def __init__(self, error: str, description: str, redirect: "AuthorizeRequest | None" = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect = redirect


class TokenError(Exception):
    def __init__(self, error: str, description: str, status_code: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status_code = status_code


@dataclass(frozen=True)
class AuthorizeRequest:
    client_id: str
    redirect_uri: str
    state: str
    nonce: str
    code_challenge: str
    scope: str
    prompt: str = ""
    # Seconds (as given); "" when not asked. Not part of query(): the sign-in it asks for has
    # just happened when the browser comes back to authorize.
    max_age: str = ""

    def as_claims(self) -> dict[str, str]:
        return asdict(self)

    def accepts_sign_in_at(self, auth_time: int, now: float) -> bool:
        """Whether a sign-in at `auth_time` is recent enough for this request (OIDC max_age)."""
        return not self.max_age or now - auth_time <= int(self.max_age)

    @classmethod
    def from_claims(cls, claims: Mapping[str, str]) -> "AuthorizeRequest":
        return cls(**{name: str(claims.get(name, "")) for name in cls.__dataclass_fields__})

    def query(self) -> str:
        """The request again as a query string, to re-enter /auth/authorize once signed in."""
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": self.state,
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
        }
        if self.nonce:
            params["nonce"] = self.nonce
        return urlencode(params)


def _b64url_sha256(value: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(value.encode()).digest()).rstrip(b"=").decode()


def _hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


# The order of P-256's group (FIPS 186-4, D.1.2.3).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def access_token_key(oidc_key: SigningKey) -> SigningKey:
    """The ES256 key that signs access tokens, derived from the OIDC key.

    Only auth verifies access tokens (its /userinfo; OIDC clients treat them as opaque), so they
    need not be RS256, which costs ten times the CPU of ES256 to sign. Derived like the device
    cookie's secret (services.common.keys.derived_secret): nothing more to mount, every replica
    derives the same key, and a new OIDC key brings a new one. Its public half is in auth's JWKS.
    """
    return _derived_p256_key(oidc_key, "access-token-es256")


def id_token_es256_key(oidc_key: SigningKey) -> SigningKey:
    """The ES256 key that signs the id_tokens of a client registered with ES256 (the portal).

    Derived like the access-token key, but another key (RFC 8725 §3.12: one key per kind of
    token): /userinfo accepts only access-token keys, so an id_token is never taken for one.
    """
    return _derived_p256_key(oidc_key, "id-token-es256")


def _derived_p256_key(oidc_key: SigningKey, purpose: str) -> SigningKey:
    """A P-256 key for one purpose: 320 bits reduced mod n-1, plus 1 (FIPS 186-4, B.4.1), a
    uniform private scalar."""
    extra_bits = derived_secret(oidc_key, f"{purpose}/1") + derived_secret(oidc_key, f"{purpose}/2")[:8]
    scalar = int.from_bytes(extra_bits, "big") % (P256_ORDER - 1) + 1
    private_key = ec.derive_private_key(scalar, ec.SECP256R1())
    return SigningKey(private_key, thumbprint(public_jwk(private_key.public_key())), "ES256")


def _oidc_private_keys(
    oidc_key: SigningKey, published_key_files: list[Path] | tuple[Path, ...]
) -> list[SigningKey]:
    """The OIDC key and each published key given as a private key (the previous key during a
    rotation: docs/operations.md): the keys whose derived keys are published."""
    keys = [oidc_key]
    for path in published_key_files:
        data = path.read_bytes()
        if b"PRIVATE KEY" in data:
            keys.append(SigningKey.from_pem(data))
    return keys


def oidc_jwks(
    oidc_key: SigningKey, published_key_files: list[Path] | tuple[Path, ...] = ()
) -> dict[str, Any]:
    """auth's public JWKS: the OIDC key, the published keys, and the keys derived from the OIDC
    key and from each published private key (access tokens, ES256 id_tokens), so that what the
    previous key signed stays good to its end."""
    keys: list[dict[str, Any]] = jwks(oidc_key, published_key_files)["keys"]
    for key in _oidc_private_keys(oidc_key, published_key_files):
        keys += [access_token_key(key).public_jwk(), id_token_es256_key(key).public_jwk()]
    return {"keys": keys}


def access_token_jwks(
    oidc_key: SigningKey, published_key_files: list[Path] | tuple[Path, ...] = ()
) -> dict[str, Any]:
    """The access-token keys of oidc_jwks only: what /userinfo verifies with."""
    return {
        "keys": [
            access_token_key(key).public_jwk() for key in _oidc_private_keys(oidc_key, published_key_files)
        ]
    }


def _sign(claims: dict[str, Any], key: SigningKey, algorithm: str, *, typ: str) -> str:
    return jwt.encode(claims, key.private_key, algorithm=algorithm, headers={"kid": key.kid, "typ": typ})


class SessionEnder(Protocol):
    async def end(self, *, session_id: str | None = None, sid: str | None = None) -> None: ...


class Provider:
    def __init__(
        self,
        settings: Settings,
        store: AuthStore,
        clients: Clients,
        oidc_key: SigningKey,
        clock: Clock,
        sso_sessions: SessionEnder,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clients = clients
        self.oidc_key = oidc_key
        self.access_key = access_token_key(oidc_key)
        # By each algorithm a client may register (its id_token_signed_response_alg).
        self.id_token_keys = {"RS256": oidc_key, "ES256": id_token_es256_key(oidc_key)}
        self.clock = clock
        self.sso_sessions = sso_sessions
        self.issuer = settings.issuer

    # authorize

    async def validate_authorize(self, params: Mapping[str, str]) -> AuthorizeRequest:
        if any(len(value) > MAX_PARAM_LENGTH for value in params.values()):
            raise AuthorizeError("invalid_request", "a parameter is too long")
        # The registered URIs, at most settings.client_uris_cache_seconds old (docs/security.md).
        client = await self.clients.registered_uris(params.get("client_id", ""))
        if client is None:
            raise AuthorizeError("invalid_client", "unknown client")
        redirect_uri = params.get("redirect_uri", "")
        # Exact string comparison only: no prefix, no normalisation, no wildcard.
        if redirect_uri not in client.redirect_uris:
            raise AuthorizeError("invalid_request", "redirect_uri is not registered for this client")
        request = AuthorizeRequest(
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            state=params.get("state", ""),
            nonce=params.get("nonce", ""),
            code_challenge=params.get("code_challenge", ""),
            scope=params.get("scope", ""),
            prompt=params.get("prompt", ""),
            max_age=params.get("max_age", ""),
        )
        if params.get("response_type") != "code":
            raise AuthorizeError("unsupported_response_type", "only response_type=code", request)
        if "openid" not in request.scope.split():
            raise AuthorizeError("invalid_scope", "the openid scope is required", request)
        if params.get("code_challenge_method") != "S256" or not PKCE_PATTERN.match(request.code_challenge):
            raise AuthorizeError(
                "invalid_request", "PKCE with code_challenge_method=S256 is required", request
            )
        if request.prompt not in ("", "none", "login", "consent", "select_account"):
            raise AuthorizeError("invalid_request", "unsupported prompt", request)
        if request.max_age and not MAX_AGE_PATTERN.match(request.max_age):
            raise AuthorizeError("invalid_request", "max_age must be a number of seconds", request)
        return request

    def error_redirect(self, error: AuthorizeError) -> str:
        assert error.redirect is not None
        params = {"error": error.error, "error_description": error.description, "iss": self.issuer}
        if error.redirect.state:
            params["state"] = error.redirect.state
        return _with_query(error.redirect.redirect_uri, params)

    async def issue_code(self, request: AuthorizeRequest, session: SsoSession) -> str | None:
        """A one-time code for the client; returns the redirect URI that carries it. None when
        the session's account is disabled or removed: its session counts for nothing, and the
        code's own insert is what checks the account (no code is saved then)."""
        code = random_token()
        saved = await self.store.save_code(
            _hash_code(code),
            AuthorizationCode(
                client_id=request.client_id,
                redirect_uri=request.redirect_uri,
                user_id=session.user_id,
                username=session.username,
                sid=session.sid,
                nonce=request.nonce or None,
                scope=request.scope,
                code_challenge=request.code_challenge,
                auth_time=session.auth_time,
                amr=session.amr,
                expires_at=datetime.fromtimestamp(
                    self.clock.now() + self.settings.authorization_code_ttl_seconds, UTC
                ),
                access_token_jti=None,
            ),
        )
        if not saved:
            return None
        params = {"code": code, "iss": self.issuer}
        if request.state:
            params["state"] = request.state
        return _with_query(request.redirect_uri, params)

    # token

    async def exchange_code(self, client: Client, form: Mapping[str, str]) -> dict[str, Any]:
        if form.get("grant_type") != "authorization_code":
            raise TokenError("unsupported_grant_type", "only authorization_code is supported")
        code_value = form.get("code", "")
        if not code_value or len(code_value) > MAX_PARAM_LENGTH:
            raise TokenError("invalid_request", "code is missing")
        verifier = form.get("code_verifier", "")
        access_jti = random_token(16)
        at = self.clock.now()
        # One statement redeems the code only if everything below holds, so a request that fails
        # any check changes nothing: someone holding a leaked code, without the client's
        # redirect_uri and PKCE verifier, cannot burn it (nor end the session it came from).
        found = await self.store.redeem_code(
            _hash_code(code_value),
            CodeRedeemer(
                client_id=client.client_id,
                redirect_uri=form.get("redirect_uri"),
                code_challenge=_b64url_sha256(verifier) if PKCE_PATTERN.match(verifier) else None,
                now=datetime.fromtimestamp(at, UTC),
            ),
            access_jti,
        )
        if found is None:
            raise TokenError("invalid_grant", "unknown code")
        code = found.code
        # The same checks again, in this order, on the code as it was: why it was not redeemed.
        if code.client_id != client.client_id:
            raise TokenError("invalid_grant", "code was issued to another client")
        if form.get("redirect_uri") != code.redirect_uri:
            raise TokenError("invalid_grant", "redirect_uri does not match")
        if not PKCE_PATTERN.match(verifier) or not hmac.compare_digest(
            _b64url_sha256(verifier), code.code_challenge
        ):
            raise TokenError("invalid_grant", "PKCE verification failed")
        if found.used:
            await self._code_reused(client, code)
            raise TokenError("invalid_grant", "code already used")
        if not found.redeemed:
            if code.expires_at.timestamp() < at:
                raise TokenError("invalid_grant", "code expired")
            # Another exchange of the same code won the race: a reuse all the same.
            await self._code_reused(client, code)
            raise TokenError("invalid_grant", "code already used")

        now = int(self.clock.now())
        common = {"iss": self.issuer, "sub": str(code.user_id), "iat": now}
        # Profile claims only for clients that asked for the profile scope.
        profile = {"preferred_username": code.username} if "profile" in code.scope.split() else {}
        id_token = self._sign_id_token(
            client.id_token_signed_response_alg,
            {
                **common,
                "aud": client.client_id,
                "azp": client.client_id,
                "exp": now + self.settings.id_token_ttl_seconds,
                "auth_time": code.auth_time,
                "sid": code.sid,
                "amr": code.amr,
                "acr": "urn:orange-business:2fa" if "otp" in code.amr else "urn:orange-business:1fa",
                **profile,
                **({"nonce": code.nonce} if code.nonce else {}),
            },
        )
        access_token = self._sign_access_token(
            {
                **common,
                "aud": f"{self.issuer}/userinfo",
                "client_id": client.client_id,
                "exp": now + self.settings.access_token_ttl_seconds,
                "jti": access_jti,
                "scope": code.scope,
                **profile,
            }
        )
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.settings.access_token_ttl_seconds,
            "id_token": id_token,
            "scope": code.scope,
        }

    async def _code_reused(self, client: Client, code: AuthorizationCode) -> None:
        """A code used twice has leaked (RFC 6749 §4.1.2): revoke what its first exchange issued
        (ASVS 10.4.2), and end the SSO session it came from, which a thief may be riding too."""
        log.warning(
            "authorization code replayed for client %s: tokens revoked, SSO session ended", client.client_id
        )
        if code.access_token_jti:
            await self.store.revoke_token(
                code.access_token_jti, self.clock.now() + self.settings.access_token_ttl_seconds
            )
        await self.sso_sessions.end(sid=code.sid)

    def _sign_id_token(self, algorithm: str, claims: dict[str, Any]) -> str:
        # The client's registered algorithm, never another: RS256 unless it registered ES256
        # (a client checks the alg it expects, and a standard one expects RS256).
        return _sign(claims, self.id_token_keys[algorithm], algorithm, typ="JWT")

    def _sign_access_token(self, claims: dict[str, Any]) -> str:
        # ES256: only auth's /userinfo reads it (RFC 9068 allows any asymmetric algorithm).
        return _sign(claims, self.access_key, "ES256", typ="at+jwt")

    # userinfo and logout

    async def userinfo(self, verifier: TokenVerifier, access_token: str) -> dict[str, Any]:
        claims = await verifier.verify(access_token)
        if await self.store.token_revoked(claims["jti"]):
            raise InvalidToken("access token revoked")
        return {name: claims[name] for name in ("sub", "preferred_username") if name in claims}

    def read_id_token_hint(self, token: str) -> dict[str, Any] | None:
        """Our own id_token, even expired (a logout hint may be old); None if not ours."""
        try:
            # The key by the hint's kid, and only that key's algorithm: never the header's alg.
            kid = jwt.get_unverified_header(token).get("kid")
            key = next((key for key in self.id_token_keys.values() if key.kid == kid), None)
            if key is None:
                raise jwt.InvalidKeyError("not one of our id_token keys")
            claims: dict[str, Any] = jwt.decode(
                token,
                key.private_key.public_key(),
                algorithms=[key.algorithm],
                issuer=self.issuer,
                options={
                    "verify_exp": False,
                    "verify_aud": False,
                    "require": ["iss", "sub", "aud"],
                },
            )
        except jwt.PyJWTError as error:
            log.info("id_token_hint refused: %s", type(error).__name__)
            return None
        return claims

    def discovery(self) -> dict[str, Any]:
        issuer = self.issuer
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "jwks_uri": f"{issuer}/jwks",
            "end_session_endpoint": f"{issuer}/logout",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            # RS256 by default; ES256 for a client registered with it (ssoctl client add).
            "id_token_signing_alg_values_supported": list(self.id_token_keys),
            "scopes_supported": ["openid", "profile"],
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "sid",
                "amr",
                "acr",
                "preferred_username",
            ],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            "frontchannel_logout_supported": False,
            "backchannel_logout_supported": False,
        }


def _with_query(uri: str, params: Mapping[str, str]) -> str:
    separator = "&" if "?" in uri else "?"
    return f"{uri}{separator}{urlencode(params)}"
