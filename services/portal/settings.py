"""Settings of the portal, read once from PORTAL_* (and the shared SSO_*) variables."""

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings, read_secret


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PORTAL_", extra="ignore")

    client_id: str = "portal"
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    # The issuer as the browser sees it, and the id_token's `iss`; default <public>/auth.
    issuer: str | None = None
    # The support desk (/support/): a support session lasts this long from its sign-in at most,
    # and needs a fresh sign-in after this long without a request.
    support_max_seconds: int = Field(default=8 * 3600, gt=0)
    support_idle_seconds: int = Field(default=15 * 60, gt=0)

    @property
    def oidc_issuer(self) -> str:
        return (self.issuer or f"{self.peers.public_url}/auth").rstrip("/")

    def read_client_secret(self) -> str:
        return read_secret(self.client_secret, self.client_secret_file, "PORTAL_CLIENT_SECRET")
