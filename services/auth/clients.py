"""OIDC client registration and client authentication."""

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.common.clock import Clock, random_token
from services.common.errors import BadRequest, Conflict
from services.contracts.admin import ID_TOKEN_ALGS

from .store import AuthStore, Client


def hash_client_secret(secret: str) -> str:
    # Client secrets are 256-bit random, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        raise BadRequest(f"not an absolute http(s) URI without fragment: {uri!r}")
    return uri


# Clients whose registered URIs a process remembers at once; past it, the oldest is forgotten.
REMEMBERED_CLIENTS_MAX = 256


@dataclass(frozen=True)
class RegisteredUris:
    """What a client registered for the browser's redirects: public, no secret."""

    client_id: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]


class Clients:
    """uris_ttl_seconds: how long a process may answer a client's registered URIs without asking
    Postgres again (authorize and logout); the secret check always asks (docs/security.md)."""

    def __init__(self, store: AuthStore, clock: Clock, uris_ttl_seconds: float) -> None:
        self.store = store
        self.clock = clock
        self.uris_ttl_seconds = uris_ttl_seconds
        # client_id -> (until when, its URIs); only clients that exist
        self._recent: dict[str, tuple[float, RegisteredUris]] = {}

    async def registered_uris(self, client_id: str) -> RegisteredUris | None:
        """The client's redirect URIs, at most uris_ttl_seconds old; None for no such client."""
        now = self.clock.now()
        recent = self._recent.get(client_id)
        if recent is not None and now < recent[0]:
            return recent[1]
        client = await self.store.client(client_id)
        if client is None:
            self._recent.pop(client_id, None)
            return None
        uris = RegisteredUris(
            client.client_id, tuple(client.redirect_uris), tuple(client.post_logout_redirect_uris)
        )
        if self.uris_ttl_seconds > 0:
            self._recent.pop(client_id, None)
            if len(self._recent) >= REMEMBERED_CLIENTS_MAX:
                del self._recent[next(iter(self._recent))]
            self._recent[client_id] = (now + self.uris_ttl_seconds, uris)
        return uris

    async def register(
        self,
        client_id: str,
        redirect_uris: list[str],
        post_logout_redirect_uris: list[str],
        replace: bool,
        id_token_signed_response_alg: str = "RS256",  # noqa: S107 (an algorithm, not a secret)
    ) -> str:
        """Saves the client and returns its new secret, shown this once only.

        id_token_signed_response_alg: RS256 (the OIDC default, what a standard client expects)
        or ES256 (a client that says so, like the portal); a replaced client gets what is given.
        """
        if not redirect_uris:
            raise BadRequest("at least one redirect URI is needed")
        if id_token_signed_response_alg not in ID_TOKEN_ALGS:
            raise BadRequest(f"id_token_signed_response_alg must be one of {', '.join(ID_TOKEN_ALGS)}")
        secret = random_token()
        client = Client(
            client_id=client_id,
            secret_hash=hash_client_secret(secret),
            redirect_uris=[_check_uri(uri) for uri in redirect_uris],
            post_logout_redirect_uris=[_check_uri(uri) for uri in post_logout_redirect_uris],
            id_token_signed_response_alg=id_token_signed_response_alg,
        )
        if not await self.store.save_client(client, replace):
            raise Conflict(f"a client named {client_id!r} already exists (use --replace)")
        # This process answers the new URIs at once; other replicas within uris_ttl_seconds.
        self._recent.pop(client_id, None)
        return secret

    async def authenticate(self, client_id: str, secret: str) -> Client | None:
        # Never remembered: a replaced secret stops working at once, on every replica.
        client = await self.store.client(client_id)
        expected = client.secret_hash if client else hash_client_secret(random_token())
        matched = hmac.compare_digest(expected, hash_client_secret(secret))
        return client if client and matched else None
