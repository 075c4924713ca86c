"""The portal as an OIDC client of auth: authorization code flow with PKCE and a checked id_token."""

import base64
import hashlib
import hmac
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from services.common.clock import random_token
from services.common.errors import DependencyUnavailable, ServiceError
from services.common.http_client import PeerClient, PeerUnreachable
from services.common.keys import b64url
from services.common.tokens import InvalidToken, TokenIssuer, TokenVerifier
from services.common.web import _

log = logging.getLogger(__name__)

LOGIN_TRANSACTION_AUDIENCE = "portal-login"
LOGIN_TRANSACTION_TTL_SECONDS = 600
SCOPE = "openid profile"
# Error codes from auth are echoed into our log only when they look like error codes.
ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


class LoginFailed(ServiceError):
    status_code = 400
    code = "login_failed"
    message = _("We could not sign you in. Please try again.")


@dataclass(frozen=True)
class LoginTransaction:
    """What the browser carries between leaving for auth and coming back with a code."""

    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class SignedIn:
    user_id: str
    username: str
    sid: str


def pkce_challenge(code_verifier: str) -> str:
    """RFC 7636 S256: base64url(SHA-256(verifier)), unpadded."""
    return b64url(hashlib.sha256(code_verifier.encode("ascii")).digest())


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _error_code(value: Any) -> str:
    return value if isinstance(value, str) and ERROR_CODE.match(value) else "unrecognised"


class TokenEndpoint:
    """auth's token endpoint, reached server to server with client_secret_basic."""

    def __init__(self, http: PeerClient, url: str, client_id: str, client_secret: str) -> None:
        self.http = http
        self.url = url
        # RFC 6749 2.3.1: both parts form-encoded before they are joined and base64'd.
        credentials = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
        self.authorization = "Basic " + base64.b64encode(credentials.encode()).decode()

    async def exchange(self, code: str, redirect_uri: str, code_verifier: str) -> str:
        """The id_token the code is worth."""
        try:
            response = await self.http.post(
                self.url,
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "code_verifier": code_verifier,
                },
                headers={"authorization": self.authorization, "accept": "application/json"},
                timeout=10.0,
            )
        except PeerUnreachable as error:
            raise DependencyUnavailable(detail=f"token endpoint unreachable: {error}") from error
        if response.status_code >= 500:
            raise DependencyUnavailable(detail=f"token endpoint answered {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise LoginFailed(detail=f"token endpoint answered {response.status_code}, not JSON")
        if response.status_code != 200:
            raise LoginFailed(
                detail=f"token endpoint answered {response.status_code} {_error_code(body.get('error'))}"
            )
        id_token = body.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise LoginFailed(detail="token endpoint gave no id_token")
        return id_token


class OidcLogin:
    def __init__(
        self,
        *,
        client_id: str,
        issuer_url: str,
        redirect_uri: str,
        post_logout_redirect_uri: str,
        token_endpoint: TokenEndpoint,
        id_token_verifier: TokenVerifier,
        transaction_issuer: TokenIssuer,
        transaction_verifier: TokenVerifier,
        new_token: Callable[[], str] = random_token,
    ) -> None:
        self.client_id = client_id
        self.issuer_url = issuer_url
        self.redirect_uri = redirect_uri
        self.post_logout_redirect_uri = post_logout_redirect_uri
        self.token_endpoint = token_endpoint
        self.id_token_verifier = id_token_verifier
        self.transaction_issuer = transaction_issuer
        self.transaction_verifier = transaction_verifier
        self.new_token = new_token

    def begin(self, prompt: str | None = None) -> tuple[str, str]:
        """The authorize URL to send the browser to, and the sealed transaction it must keep.

        prompt="login": a fresh sign-in with both factors, even with a live SSO session.
        """
        transaction = LoginTransaction(
            state=self.new_token(), nonce=self.new_token(), code_verifier=self.new_token()
        )
        sealed = self.transaction_issuer.issue(
            LOGIN_TRANSACTION_AUDIENCE,
            LOGIN_TRANSACTION_TTL_SECONDS,
            {
                "state": transaction.state,
                "nonce": transaction.nonce,
                "code_verifier": transaction.code_verifier,
            },
        )
        # The callback most often comes back to this process: there it skips the signature check.
        self.transaction_verifier.remember_signed_here(sealed)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": SCOPE,
                "state": transaction.state,
                "nonce": transaction.nonce,
                "code_challenge": pkce_challenge(transaction.code_verifier),
                "code_challenge_method": "S256",
                **({"prompt": prompt} if prompt else {}),
            },
            quote_via=quote,
        )
        return f"{self.issuer_url}/authorize?{query}", sealed

    async def _open(self, sealed: str | None) -> LoginTransaction:
        if not sealed:
            raise LoginFailed(detail="no login in progress")
        try:
            claims = await self.transaction_verifier.verify(sealed)
            return LoginTransaction(
                state=str(claims["state"]),
                nonce=str(claims["nonce"]),
                code_verifier=str(claims["code_verifier"]),
            )
        except (InvalidToken, KeyError) as error:
            raise LoginFailed(detail=f"login cookie refused: {error}") from error

    async def complete(self, sealed: str | None, code: str | None, state: str | None) -> SignedIn:
        """Checks the browser's answer against its transaction and trades the code for who it is."""
        transaction = await self._open(sealed)
        if not state or not _same(state, transaction.state):
            raise LoginFailed(detail="state does not match the login in progress")
        if not code:
            raise LoginFailed(detail="no code")
        id_token = await self.token_endpoint.exchange(code, self.redirect_uri, transaction.code_verifier)
        try:
            claims = await self.id_token_verifier.verify(id_token)
        except InvalidToken as error:
            raise LoginFailed(detail=f"id_token refused: {error}") from error
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not _same(nonce, transaction.nonce):
            raise LoginFailed(detail="id_token nonce does not match")
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != self.client_id:
            raise LoginFailed(detail="id_token for several audiences without our azp")
        identity = [claims.get(name) for name in ("sub", "preferred_username", "sid")]
        if not all(isinstance(value, str) and value for value in identity):
            raise LoginFailed(detail="id_token lacks sub, preferred_username or sid")
        # The portal is for customers who passed both factors, whatever else the provider allows.
        amr = claims.get("amr")
        if not isinstance(amr, list) or not {"pwd", "otp"} <= set(amr):
            raise LoginFailed(detail=f"id_token amr {amr!r} is not password plus code")
        return SignedIn(
            user_id=claims["sub"],
            username=claims["preferred_username"],
            sid=claims["sid"],
        )

    def refused(self, error: str | None) -> LoginFailed:
        """auth sent the browser back with error= instead of a code."""
        return LoginFailed(detail=f"authorization refused: {_error_code(error)}")

    def logout_url(self) -> str:
        """auth's RP-initiated logout, which clears the browser's SSO cookie and comes back to the portal.

        Without an id_token_hint: the portal keeps no id_token (docs/security.md, 10.1.1). It sends
        the browser here only after ending every session of the customer, so auth finds no live
        SSO session to end; had the browser another one (another customer's), auth asks first.
        """
        params = {
            "post_logout_redirect_uri": self.post_logout_redirect_uri,
            "client_id": self.client_id,
        }
        return f"{self.issuer_url}/logout?{urlencode(params, quote_via=quote)}"
