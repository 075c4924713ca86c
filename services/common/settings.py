"""The settings every service shares; each service adds its own with an env prefix."""

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDERS = {"", "change-me", "changeme", "secret", "dev"}


class Peers(BaseSettings):
    """Where the services find each other, and where the customer finds the gateway."""

    model_config = SettingsConfigDict(env_prefix="SSO_", extra="ignore")

    public_url: str = "http://127.0.0.1:8080"
    auth_url: str = "http://127.0.0.1:8101"
    mfa_url: str = "http://127.0.0.1:8102"
    session_url: str = "http://127.0.0.1:8103"
    portal_url: str = "http://127.0.0.1:8104"

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    signing_key_file: Path
    # Public (or private) PEM files published in the JWKS but never used to sign: the next
    # key before it signs, and the previous one until its tokens have expired.
    published_key_files: list[Path] = Field(default_factory=list)
    log_level: str = "INFO"
    peers: Peers = Field(default_factory=Peers)


def read_secret(value: SecretStr | None, file: Path | None, name: str) -> str:
    """A secret from its *_FILE (preferred, as Kubernetes mounts it) or its variable; never a placeholder."""
    if file is not None:
        secret = file.read_text().strip()
    elif value is not None:
        secret = value.get_secret_value().strip()
    else:
        raise ValueError(f"{name} is not set: give {name}_FILE or {name}")
    if secret.lower() in PLACEHOLDERS:
        raise ValueError(f"{name} is a placeholder")
    return secret


__all__ = ["Peers", "ServiceSettings", "read_secret", "model_validator", "SecretStr"]
