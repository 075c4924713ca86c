"""Settings of the session service, read once from SESSION_* (and the shared SSO_*) variables."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.redis_client import RedisSettings
from services.common.settings import AdminApiSettings, ServiceSettings


class Settings(ServiceSettings, RedisSettings, AdminApiSettings):
    model_config = SettingsConfigDict(env_prefix="SESSION_", extra="ignore")

    key_prefix: str = "sso:"
    # With replicas (Sentinel): a sign-in or logout is answered only once this many replicas
    # have it (WAIT), so a failover loses no session and brings back no ended one. When fewer
    # answer within the timeout (a replica down), the write stands, with a warning in the log.
    redis_wait_replicas: int = Field(default=0, ge=0)
    redis_wait_timeout_ms: int = Field(default=500, ge=1)
    # Absolute: an SSO session ends this long after sign-in, however busy it has been.
    sso_lifetime_seconds: int = Field(default=43200, gt=0)
    # A portal session also ends with its SSO session, whichever comes first.
    portal_lifetime_seconds: int = Field(default=43200, gt=0)
    # 0 turns it off; otherwise an SSO session unused for this long ends.
    idle_timeout_seconds: int = Field(default=0, ge=0)
    # Live portal sessions per SSO session; a new one past this ends the oldest. Each Login
    # with a live SSO session makes one, so without a cap a plain GET would fill Redis.
    max_portal_sessions_per_sso: int = Field(default=5, ge=1)
