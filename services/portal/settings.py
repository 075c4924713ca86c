"""Settings of the portal, read once from PORTAL_* (and the shared SSO_*) variables."""

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings, read_secret
from services.contracts.admin import IdTokenAlg


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PORTAL_", extra="ignore")

    client_id: str = "portal"
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    # The issuer as the browser sees it, and the id_token's `iss`; default <public>/auth.
    issuer: str | None = None
    # The algorithms the portal accepts its id_tokens in (JSON list): both asymmetric ones auth
    # signs with, each verified only with the key of auth's JWKS that the kid names and whose
    # type is that alg's. Both by default, so that an upgrade needs no step: a portal client
    # registered before id_token_signed_response_alg is RS256, one registered with
    # `--id-token-signed-response-alg ES256` (a sixth of RS256's CPU for auth to sign) ES256.
    # Narrow it to ["ES256"] once the client is registered ES256. Never none or HS*.
    id_token_signed_response_algs: tuple[IdTokenAlg, ...] = Field(default=("ES256", "RS256"), min_length=1)
    # The support desk (/support/): a support session lasts this long from its sign-in at most,
    # and needs a fresh sign-in after this long without a request.
    support_max_seconds: int = Field(default=8 * 3600, gt=0)
    support_idle_seconds: int = Field(default=15 * 60, gt=0)
    # The portal page may show a session checked this long ago (issue 11: never more than 1 s,
    # so a session ended elsewhere is refused within 1 s); 0 asks the session service every time.
    # Per process, at most this many sessions (services/portal/store.py).
    session_check_seconds: float = Field(default=1.0, ge=0, le=1)
    session_check_entries: int = Field(default=10_000, ge=1)

    @property
    def oidc_issuer(self) -> str:
        return (self.issuer or f"{self.peers.public_url}/auth").rstrip("/")

    def read_client_secret(self) -> str:
        return read_secret(self.client_secret, self.client_secret_file, "PORTAL_CLIENT_SECRET")
