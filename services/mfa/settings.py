import base64
import binascii
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from services.common.settings import AdminApiSettings, FileSettings, ServiceSettings, read_secret

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/sso"
ENCRYPTION_KEY_BYTES = 32


class DatabaseSettings(FileSettings):
    """Just the database: what `migrate` and the admin CLI need, without the service's keys."""

    model_config = SettingsConfigDict(env_prefix="MFA_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL


class Settings(ServiceSettings, AdminApiSettings):
    model_config = SettingsConfigDict(env_prefix="MFA_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    totp_issuer: str = "Orange Business"
    # base64 of 32 random bytes: the AES-256-GCM key that seals TOTP secrets at rest.
    encryption_key: SecretStr | None = None
    encryption_key_file: Path | None = None
    enrollment_ttl_seconds: int = 600
    step_token_ttl_seconds: int = 600
    # How many 30 s steps either side of now a code may come from (phone clocks drift).
    totp_window_steps: int = 1
    # A code from up to this many steps either side, but outside the window, is refused with
    # a hint that the phone's clock is off (and by how much). Wrong codes are counted by auth.
    clock_skew_hint_steps: int = 10

    def encryption_key_bytes(self) -> bytes:
        """The decoded secret-box key; refuses anything that is not exactly 32 bytes of base64."""
        encoded = read_secret(self.encryption_key, self.encryption_key_file, "MFA_ENCRYPTION_KEY")
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error as error:
            raise ValueError("MFA_ENCRYPTION_KEY is not valid base64") from error
        if len(key) != ENCRYPTION_KEY_BYTES:
            raise ValueError(
                f"MFA_ENCRYPTION_KEY must decode to {ENCRYPTION_KEY_BYTES} bytes, not {len(key)}"
            )
        return key
