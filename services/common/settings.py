"""The settings every service shares; each service adds its own with an env prefix."""

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

PLACEHOLDERS = {"", "change-me", "changeme", "secret", "dev"}


class Peers(BaseSettings):
    """Where the services find each other, and where the customer finds the gateway."""

    model_config = SettingsConfigDict(env_prefix="SSO_", extra="ignore")

    public_url: str = "http://127.0.0.1:8080"
    auth_url: str = "http://127.0.0.1:8101"
    mfa_url: str = "http://127.0.0.1:8102"
    session_url: str = "http://127.0.0.1:8103"
    portal_url: str = "http://127.0.0.1:8104"
    # The name customers know the sign-on by, on every page (SSO_BRAND_NAME).
    brand_name: str = "Orange Business"

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")


class FileValues(PydanticBaseSettingsSource):
    """`<PREFIX><FIELD>_FILE` names a file holding a text setting, e.g. AUTH_DATABASE_URL_FILE: a
    mounted Kubernetes Secret, as a database URL carries its password. Preferred over the
    variable itself. A field with its own `<field>_file` (a key, a client secret) reads it itself."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        prefix = str(self.config.get("env_prefix") or "")
        fields = self.settings_cls.model_fields
        values: dict[str, Any] = {}
        for name, info in fields.items():
            if info.annotation is not str or f"{name}_file" in fields:
                continue
            variable = f"{prefix}{name}_FILE".upper()
            path = os.environ.get(variable)
            if path:
                values[name] = read_setting_file(variable, path)
        return values


def read_setting_file(variable: str, path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as error:
        raise ValueError(f"{variable}: cannot read {path}: {error.strerror}") from error


def setting_from_env(name: str, default: str) -> str:
    """For the few entry points that read a variable without a settings class: NAME_FILE, NAME, default."""
    path = os.environ.get(f"{name}_FILE")
    return read_setting_file(f"{name}_FILE", path) if path else os.environ.get(name, default)


class FileSettings(BaseSettings):
    """Settings whose text values may also come from `*_FILE` variables (FileValues)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, FileValues(settings_cls), env_settings, dotenv_settings, file_secret_settings)


class ServiceSettings(FileSettings):
    model_config = SettingsConfigDict(extra="ignore")

    signing_key_file: Path
    # Public (or private) PEM files published in the JWKS but never used to sign: the next
    # key before it signs, and the previous one until its tokens have expired.
    published_key_files: list[Path] = Field(default_factory=list)
    log_level: str = "INFO"
    peers: Peers = Field(default_factory=Peers)


class AdminApiSettings(BaseSettings):
    """For the services that serve /internal/admin/: whose admin tokens they accept.

    `<PREFIX>ADMIN_PUBLIC_KEY_FILES` is a JSON list of PEM files with the admin key's public half
    (two during a rotation). The admin caller (ssoctl) has no JWKS to fetch: it is a command
    line, not a service. Empty: the admin API refuses every token.
    """

    admin_public_key_files: list[Path] = Field(default_factory=list)


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


__all__ = [
    "AdminApiSettings",
    "FileSettings",
    "Peers",
    "ServiceSettings",
    "read_secret",
    "setting_from_env",
    "model_validator",
    "SecretStr",
]
