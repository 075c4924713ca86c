"""JSON calls between services, each carrying a short-lived JWT signed with the caller's key."""

import logging
from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fastapi import Request

from .clock import Clock
from .errors import DependencyUnavailable, Unauthorized
from .http_client import PeerClient, PeerResponse, PeerUnreachable, json_body, once_more_if_unanswered
from .keys import public_jwk_from_pem_file
from .logging import request_id_var
from .metrics import dependency_failed
from .tokens import InvalidToken, KeySource, PeerKeys, StaticKeys, TokenIssuer, TokenVerifier

log = logging.getLogger(__name__)

SERVICE_TOKEN_TTL_SECONDS = 60
# Each phase of a service call (a connection, each read), as PeerClient's timeout.
SERVICE_CALL_TIMEOUT_SECONDS = 10.0
# A caller reuses its token for the same callee until this long before it expires, so none
# expires on its way; signing one per call cost more than the call's JSON.
SERVICE_TOKEN_RENEW_SECONDS = 15
# Verified tokens a callee remembers (one per caller replica and minute in normal use): a bound,
# so a flood of distinct valid tokens cannot grow it without end.
VERIFIED_TOKENS_MAX = 1024
# Explicit typing (RFC 8725 3.11): a step token from a customer's cookie, signed by the same
# service key, must never pass as a service call, nor the other way round.
SERVICE_TOKEN_TYPE = "service+jwt"  # noqa: S105 (a token type, not a secret)
# The caller name of the admin command line (ssoctl): its own key, accepted only under
# /internal/admin/ (docs/architecture.md, "Admin API").
ADMIN_CALLER = "admin"


class ServiceClient:
    def __init__(self, http: PeerClient, issuer: TokenIssuer, base_url: str, audience: str) -> None:
        self.http = http
        self.issuer = issuer
        self.base_url = base_url.rstrip("/")
        self.audience = audience
        self._token = ""
        self._token_expires = 0
        # The headers every call carries, rebuilt only with a new token: one dict per call is
        # left, for the request id.
        self._headers: dict[str, str] = {}

    def service_token(self) -> str:
        """This caller's token for the callee: signed once, reused until shortly before its exp."""
        now = int(self.issuer.clock.now())
        if now >= self._token_expires - SERVICE_TOKEN_RENEW_SECONDS:
            self._token = self.issuer.issue(
                self.audience, SERVICE_TOKEN_TTL_SECONDS, token_type=SERVICE_TOKEN_TYPE
            )
            self._token_expires = now + SERVICE_TOKEN_TTL_SECONDS
            self._headers = {"authorization": f"Bearer {self._token}", "content-type": "application/json"}
        return self._token

    async def call(
        self, path: str, payload: dict[str, Any] | bytes, idempotent: bool = False
    ) -> PeerResponse:
        """POST payload (a JSON object, or one already encoded: the contracts' model_dump_json);
        returns the response for 2xx and 404, raises DependencyUnavailable otherwise.

        An idempotent call is sent once more when the first try never got the callee's answer: a
        connection error, or a 502 from the proxy in front of the replicas (one of them went away
        with the request). Any other call is sent once: the callee may have acted on it.
        """

        url = f"{self.base_url}{path}"
        body = payload if isinstance(payload, bytes) else json_body(payload)

        def send() -> Awaitable[PeerResponse]:
            return self._post(url, body)

        try:
            if idempotent:
                response = await once_more_if_unanswered(send, f"call to {self.audience}{path}")
            else:
                response = await send()
        except PeerUnreachable as error:
            log.error("call to %s%s failed: %s", self.audience, path, error)
            dependency_failed(self.audience)
            raise DependencyUnavailable(detail=f"{self.audience} unreachable") from error
        if response.status_code >= 300 and response.status_code != 404:
            log.error("call to %s%s answered %s", self.audience, path, response.status_code)
            dependency_failed(self.audience)
            raise DependencyUnavailable(detail=f"{self.audience} answered {response.status_code}")
        return response

    async def _post(self, url: str, body: bytes) -> PeerResponse:
        # The token is looked at on each try: a resend after a long timeout may need a new one.
        self.service_token()
        headers = {**self._headers, "x-request-id": request_id_var.get()}
        return await self.http.send("POST", url, body, headers, SERVICE_CALL_TIMEOUT_SECONDS)


class CallerCheck:
    """A FastAPI dependency: the request must carry a service token from one of the allowed callers.

    A token that passed is remembered with its exp, so the caller's reused token is verified once
    (signature, typ, iss, aud, exp), not on every call; it passes again only until its exp, by
    the verifier's own rule. Each check remembers its own: the admin check's never pass here.
    """

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier
        self._verified: dict[str, tuple[str, int]] = {}

    async def __call__(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("Service token required.", detail="no bearer token")
        known = self._verified.get(token)
        if known is not None and not self.verifier.expired(known[1]):
            return known[0]
        try:
            # typ checked on the header the verification reads anyway, not parsed a second time.
            claims = await self.verifier.verify(token, token_type=SERVICE_TOKEN_TYPE)
        except InvalidToken as error:
            self._verified.pop(token, None)
            raise Unauthorized("Service token refused.", detail=str(error)) from error
        caller: str = claims["iss"]
        self._remember(token, caller, claims["exp"])
        return caller

    def _remember(self, token: str, caller: str, exp: int) -> None:
        if len(self._verified) >= VERIFIED_TOKENS_MAX:
            self._verified = {
                t: seen for t, seen in self._verified.items() if not self.verifier.expired(seen[1])
            }
            if len(self._verified) >= VERIFIED_TOKENS_MAX:
                self._verified.clear()
        self._verified[token] = (caller, exp)


def admin_caller_check(
    audience: str,
    admin_public_key_files: Sequence[Path],
    clock: Clock,
    other_callers: Mapping[str, KeySource] | None = None,
) -> CallerCheck:
    """The check in front of /internal/admin/: tokens from `admin` (its public keys from files)
    or from the few services given in other_callers; no other service's token passes."""
    admin_keys = StaticKeys({"keys": [public_jwk_from_pem_file(path) for path in admin_public_key_files]})
    if not admin_public_key_files:
        log.warning("no admin public key configured: the admin API refuses every admin token")
    sources: dict[str, KeySource] = {ADMIN_CALLER: admin_keys, **(other_callers or {})}
    return CallerCheck(TokenVerifier(PeerKeys(sources), issuers=set(sources), audience=audience, clock=clock))
