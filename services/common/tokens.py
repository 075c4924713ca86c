"""Signed JWTs: one issuer per service, verifiers that pin algorithms and find keys by kid."""

import asyncio
import base64
import binascii
import json
import logging
import uuid
from typing import Any, NoReturn, Protocol

import jwt

from .clock import Clock, SystemClock
from .errors import DependencyUnavailable
from .http_client import PeerClient, PeerResponse, PeerUnreachable, once_more_if_unanswered
from .keys import SigningKey

log = logging.getLogger(__name__)

LEEWAY_SECONDS = 5
# Tokens each verifier remembers having verified (a step token is read by its page and again by
# its form's POST): a few hundred bytes each, only genuine tokens, dropped at exp.
VERIFIED_TOKENS_MAX = 4096
# Tokens a verifier remembers this very process has just signed (auth's own step tokens, read
# back by the next page and its form): the exact string, the oldest dropped first, none past exp.
SIGNED_HERE_MAX = 1024


class InvalidToken(Exception):
    """The token is malformed, unsigned, mis-signed, expired or meant for someone else."""


def _unverified_header_and_claims(token: str) -> tuple[dict[str, Any], Any]:
    """A compact JWS's header and payload, decoded and nothing else checked: only to pick its key.

    Plain base64 and JSON, not PyJWT's strict parse: jwt.decode parses and checks the whole
    token again with its key (each segment's alphabet and padding, the signature, the claims),
    and PyJWT's parse, a Python loop over every character, was half of a verification's CPU.
    """
    try:
        header_segment, payload_segment, _signature = token.split(".")
        header = json.loads(_base64url_decode(header_segment))
        payload = json.loads(_base64url_decode(payload_segment))
    # ValueError: not three segments, not base64, not UTF-8, not JSON; TypeError: not a str.
    except (ValueError, TypeError, binascii.Error, RecursionError) as error:
        raise InvalidToken("malformed token") from error
    if not isinstance(header, dict):
        raise InvalidToken("malformed token")
    return header, payload


def _of_type(claims: dict[str, Any], typ: Any, token_type: str | None) -> dict[str, Any]:
    """The claims, if the token's typ is the one wanted (any, when none is)."""
    if token_type is not None and typ != token_type:
        raise InvalidToken(f"not a {token_type} token")
    return claims


def _base64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class TokenIssuer:
    def __init__(self, key: SigningKey, issuer: str, clock: Clock | None = None) -> None:
        self.key = key
        self.issuer = issuer
        self.clock = clock or SystemClock()

    def issue(
        self,
        audience: str,
        ttl_seconds: int,
        claims: dict[str, Any] | None = None,
        token_type: str = "JWT",  # noqa: S107 (a token type, not a secret)
    ) -> str:
        now = int(self.clock.now())
        payload = {
            **(claims or {}),
            "iss": self.issuer,
            "aud": audience,
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            payload,
            self.key.private_key,
            algorithm=self.key.algorithm,
            headers={"kid": self.key.kid, "typ": token_type},
        )


class KeySource(Protocol):
    async def key_for(self, kid: str, issuer: str) -> jwt.PyJWK | None: ...


class StaticKeys:
    """Keys known up front, e.g. a service's own JWKS."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.keys = {jwk["kid"]: jwt.PyJWK(jwk) for jwk in jwks["keys"]}

    async def key_for(self, kid: str, issuer: str) -> jwt.PyJWK | None:
        return self.keys.get(kid)


class RemoteKeys:
    """A peer's JWKS, cached by kid and fetched again when an unknown kid shows up."""

    def __init__(
        self,
        http: PeerClient,
        url: str,
        clock: Clock | None = None,
        min_refetch_seconds: float = 10.0,
        retry_after_failure_seconds: float = 1.0,
    ) -> None:
        self.http = http
        self.url = url
        self.clock = clock or SystemClock()
        self.min_refetch_seconds = min_refetch_seconds
        self.retry_after_failure_seconds = retry_after_failure_seconds
        self.keys: dict[str, jwt.PyJWK] = {}
        self.fetched_at: float | None = None
        self.failed_at: float | None = None
        self.fetching = asyncio.Lock()

    async def key_for(self, kid: str, issuer: str) -> jwt.PyJWK | None:
        """The key, or None for a kid the peer does not have.

        Raises DependencyUnavailable when the peer cannot be asked (down, or restarting): the
        token may well be genuine, so the customer is told to try again, not that it expired.
        """
        if kid in self.keys:
            return self.keys[kid]
        # One fetch at a time: requests that arrive together with a new kid wait for it.
        async with self.fetching:
            if kid in self.keys:
                return self.keys[kid]
            now = self.clock.now()
            if self.failed_at is not None and now - self.failed_at < self.retry_after_failure_seconds:
                raise DependencyUnavailable(detail=f"JWKS of {issuer} unreachable a moment ago")
            # An unknown kid may be a freshly rotated key, but a flood of made-up kids
            # must not turn into a flood of fetches.
            if self.fetched_at is not None and now - self.fetched_at < self.min_refetch_seconds:
                return None
            response = await self._fetch(now, issuer)
            self.failed_at = None
            self.fetched_at = now
            if not 200 <= response.status_code < 300:
                log.warning("could not fetch JWKS from %s: status %s", self.url, response.status_code)
                return None
            try:
                self.keys = {jwk["kid"]: jwt.PyJWK(jwk) for jwk in response.json()["keys"]}
            # TypeError: a JWKS of the wrong shape (a list, "keys" a string): no keys, never a 500.
            except (ValueError, KeyError, TypeError, jwt.PyJWKError) as error:
                log.warning("could not fetch JWKS from %s: %s", self.url, type(error).__name__)
                return None
            return self.keys.get(kid)

    async def _fetch(self, now: float, issuer: str) -> PeerResponse:
        try:
            response = await once_more_if_unanswered(
                lambda: self.http.get(self.url, timeout=5.0), f"JWKS fetch from {self.url}"
            )
        except PeerUnreachable as error:
            self._unreachable(now, issuer, str(error))
        if response.status_code >= 500:
            self._unreachable(now, issuer, f"status {response.status_code}")
        return response

    def _unreachable(self, now: float, issuer: str, why: str) -> NoReturn:
        # Not counted as a fetch: once the peer is back, the very next token is checked.
        self.failed_at = now
        log.warning("could not fetch JWKS from %s: %s", self.url, why)
        raise DependencyUnavailable(detail=f"JWKS of {issuer} unreachable")


class PeerKeys:
    """Each peer service's own JWKS: a token claiming to be from a peer must use that peer's key."""

    def __init__(self, sources: dict[str, KeySource]) -> None:
        self.sources = sources

    async def key_for(self, kid: str, issuer: str) -> jwt.PyJWK | None:
        source = self.sources.get(issuer)
        return None if source is None else await source.key_for(kid, issuer)


class TokenVerifier:
    def __init__(
        self,
        keys: KeySource,
        issuers: set[str] | frozenset[str],
        audience: str,
        algorithms: tuple[str, ...] = ("ES256",),
        clock: Clock | None = None,
        required: tuple[str, ...] = ("exp", "iat", "iss", "aud", "jti"),
    ) -> None:
        self.keys = keys
        self.issuers = frozenset(issuers)
        self.audience = audience
        self.algorithms = algorithms
        self.clock = clock or SystemClock()
        self.required = required
        # token -> (kid, issuer, the key that verified it, its claims, its header's typ)
        self._verified: dict[str, tuple[str, str, jwt.PyJWK, dict[str, Any], Any]] = {}
        # token -> (header, claims) of the tokens this process signed itself, oldest first
        self._signed_here: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    async def verify(self, token: str, token_type: str | None = None) -> dict[str, Any]:
        """The claims of a genuine, live token meant for this audience; InvalidToken otherwise.

        token_type: the `typ` its header must carry (RFC 8725 3.11), read from the header this
        verification parses anyway and checked on every use, remembered or not.

        A token verified before (the very same string) is not decoded again: it passes while it
        is live by this verifier's clock and its kid still finds the same key (a key the issuer
        withdrew stops it, as it would stop a fresh check). A token this process signed itself
        (remember_signed_here) skips only the signature's arithmetic: every other check runs on
        each use. The caller's own checks (stage, browser binding, single use) run on every use
        either way.
        """
        signed_here = self._signed_here.get(token)
        if signed_here is not None:
            claims = await self._signed_here_claims(token, *signed_here)
            if claims is not None:
                return _of_type(claims, signed_here[0].get("typ"), token_type)
        known = self._verified.get(token)
        if known is not None:
            kid, issuer, key, claims, typ = known
            if not self.expired(claims["exp"]) and await self.keys.key_for(kid, issuer) is key:
                return _of_type(dict(claims), typ, token_type)
            del self._verified[token]
        claims, typ = await self._verify_signed(token)
        return _of_type(claims, typ, token_type)

    def remember_signed_here(self, token: str) -> None:
        """Remember a token that this process has just signed with its own key, so that its next
        reads here skip the signature check (~270 µs for ES256) and only that.

        Only for the very string the caller's own TokenIssuer returned, never one a request
        brought: what is kept is read from that string, and only that exact string finds it again.
        A token this verifier would refuse anyway (another audience, an issuer it does not
        accept) is not kept. At most SIGNED_HERE_MAX, the oldest dropped first; one past its exp
        is dropped when next read or when a newer one comes in.
        """
        header, claims = _unverified_header_and_claims(token)
        if not isinstance(claims, dict) or self._claims_refused(claims) is not None:
            return
        self._forget_expired_signed_here()
        while len(self._signed_here) >= SIGNED_HERE_MAX:
            del self._signed_here[next(iter(self._signed_here))]
        self._signed_here[token] = (header, claims)

    async def _signed_here_claims(
        self, token: str, header: dict[str, Any], claims: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A token signed here: its claims if it passes every check of a full verification but
        the signature's arithmetic; else None, and it is forgotten (the full verification that
        follows says why it is refused, exactly as for any other token)."""
        # Not a moment past exp, leeway or not: this process's own clock signed it.
        if self._claims_refused(claims) is None and self.clock.now() < claims["exp"]:
            try:
                await self._key_for(header, claims)
            except InvalidToken:
                pass
            else:
                return dict(claims)
        del self._signed_here[token]
        return None

    def _claims_refused(self, claims: dict[str, Any]) -> str | None:
        """Why a full verification would refuse these claims (what jwt.decode and _verify_signed
        check of them), or None: required claims, issuer, audience, a live integer exp."""
        missing = [name for name in self.required if name not in claims]
        if missing:
            return f"missing {missing}"
        if claims.get("iss") not in self.issuers:
            return "issuer not accepted"
        audience = claims.get("aud")
        if audience != self.audience and not (isinstance(audience, list) and self.audience in audience):
            return "audience not accepted"
        if not isinstance(claims.get("exp"), int) or self.expired(claims["exp"]):
            return "token expired"
        return None

    def _forget_expired_signed_here(self) -> None:
        # Oldest first: with one step-token lifetime, the expired ones are all at the front.
        while self._signed_here:
            oldest = next(iter(self._signed_here))
            if self.clock.now() < self._signed_here[oldest][1]["exp"]:
                return
            del self._signed_here[oldest]

    async def _key_for(self, header: dict[str, Any], payload: Any) -> tuple[str, str, jwt.PyJWK]:
        """The kid, issuer and key a token's header and claims name, if this verifier accepts them."""
        algorithm = header.get("alg")
        kid = header.get("kid")
        if algorithm not in self.algorithms:
            raise InvalidToken(f"algorithm {algorithm!r} not accepted")
        if not isinstance(kid, str):
            raise InvalidToken("token has no kid")
        claimed_issuer = payload.get("iss") if isinstance(payload, dict) else None
        if claimed_issuer not in self.issuers:
            raise InvalidToken("issuer not accepted")
        key = await self.keys.key_for(kid, claimed_issuer)
        if key is None:
            raise InvalidToken("unknown kid")
        if key.algorithm_name != algorithm:
            raise InvalidToken("kid and algorithm disagree")
        return kid, claimed_issuer, key

    async def _verify_signed(self, token: str) -> tuple[dict[str, Any], Any]:
        """The claims and the header's typ of a token whose signature and claims pass."""
        # Header and claims read once, unverified, only to pick the key: the decode below
        # checks the signature and the claims.
        header, payload = _unverified_header_and_claims(token)
        kid, claimed_issuer, key = await self._key_for(header, payload)
        algorithm = header["alg"]
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.audience,
                leeway=LEEWAY_SECONDS,
                options={"require": list(self.required), "verify_iss": False, "verify_exp": False},
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(type(error).__name__) from error
        if claims.get("iss") != claimed_issuer:
            raise InvalidToken("issuer not accepted")
        # exp is checked against the injected clock, not the wall clock, so tests can freeze time.
        if not isinstance(claims.get("exp"), int) or self.expired(claims["exp"]):
            raise InvalidToken("token expired")
        # The header read above is the one the signature just covered.
        typ = header.get("typ")
        self._remember(token, (kid, claimed_issuer, key, claims, typ))
        return dict(claims), typ

    def _remember(self, token: str, verified: tuple[str, str, jwt.PyJWK, dict[str, Any], Any]) -> None:
        if len(self._verified) >= VERIFIED_TOKENS_MAX:
            self._verified = {
                t: seen for t, seen in self._verified.items() if not self.expired(seen[3]["exp"])
            }
            if len(self._verified) >= VERIFIED_TOKENS_MAX:
                self._verified.clear()
        self._verified[token] = verified

    def expired(self, exp: int) -> bool:
        """Whether a token with this exp is past it (by more than the leeway) on this verifier's clock."""
        return exp + LEEWAY_SECONDS < self.clock.now()
