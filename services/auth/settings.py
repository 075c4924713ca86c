from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.redis_client import RedisSettings
from services.common.settings import AdminApiSettings, ServiceSettings


class Settings(ServiceSettings, RedisSettings, AdminApiSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/sso"
    # The RS256 key that signs id_tokens (RS256 is the one algorithm every OIDC client must support,
    # and the default of a client's id_token_signed_response_alg); the ES256 keys of the access
    # tokens and of an ES256 client's id_tokens are derived from it (services/auth/oidc.py).
    oidc_key_file: Path
    oidc_published_key_files: list[Path] = Field(default_factory=list)
    issuer_url: str | None = None

    argon2_memory_kib: int = 19456
    argon2_iterations: int = 2
    argon2_parallelism: int = 1
    # Hashes run in worker threads; more at once than this only queue for the two cores.
    hashing_concurrency: int = 4

    redis_key_prefix: str = "sso:auth:"

    lockout_password_failures: int = Field(default=10, ge=1)
    lockout_otp_failures: int = Field(default=5, ge=1)
    lockout_window_seconds: int = Field(default=900, ge=1)
    lockout_base_seconds: int = Field(default=60, ge=1)
    lockout_max_seconds: int = Field(default=3600, ge=1)
    # NIST SP 800-63B 5.2.2: never more than 100 consecutive failed attempts on one account.
    lockout_max_consecutive_failures: int = Field(default=100, ge=1, le=100)
    lockout_ip_failures: int = Field(default=50, ge=1)
    # How long a browser stays known to an account after a completed sign-in (device cookie).
    device_cookie_lifetime_seconds: int = Field(default=180 * 24 * 3600, ge=1)

    authorization_code_ttl_seconds: int = Field(default=60, le=60)
    step_token_ttl_seconds: int = 600
    id_token_ttl_seconds: int = 300
    access_token_ttl_seconds: int = 300
    # How long a process remembers a client's registered redirect URIs (authorize, logout) before
    # asking Postgres again: a URI removed from a client stops being accepted within this bound.
    # Never the client's secret, which the token endpoint checks against Postgres every time.
    client_uris_cache_seconds: float = Field(default=5, ge=0, le=60)
    # How often expired codes, revoked tokens and consumed step tokens are deleted.
    cleanup_interval_seconds: int = Field(default=60, ge=1)

    @property
    def issuer(self) -> str:
        return self.issuer_url or f"{self.peers.public_url}/auth"
