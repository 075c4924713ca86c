"""OIDC client registration and client authentication."""

import hashlib
import hmac
from urllib.parse import urlsplit

from services.common.clock import random_token
from services.common.errors import BadRequest, Conflict

from .store import AuthStore, Client


def hash_client_secret(secret: str) -> str:
    # Client secrets are 256-bit random, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        raise BadRequest(f"not an absolute http(s) URI without fragment: {uri!r}")
    return uri


class Clients:
    def __init__(self, store: AuthStore) -> None:
        self.store = store

    async def register(
        self,
        client_id: str,
        redirect_uris: list[str],
        post_logout_redirect_uris: list[str],
        replace: bool,
    ) -> str:
        """Saves the client and returns its new secret, shown this once only."""
        if not redirect_uris:
            raise BadRequest("at least one redirect URI is needed")
        secret = random_token()
        client = Client(
            client_id=client_id,
            secret_hash=hash_client_secret(secret),
            redirect_uris=[_check_uri(uri) for uri in redirect_uris],
            post_logout_redirect_uris=[_check_uri(uri) for uri in post_logout_redirect_uris],
        )
        if not await self.store.save_client(client, replace):
            raise Conflict(f"a client named {client_id!r} already exists (use --replace)")
        return secret

    async def authenticate(self, client_id: str, secret: str) -> Client | None:
        client = await self.store.client(client_id)
        expected = client.secret_hash if client else hash_client_secret(random_token())
        matched = hmac.compare_digest(expected, hash_client_secret(secret))
        return client if client and matched else None
