"""What the admin CLI (`ssoctl`) and `python -m services.mfa migrate` use."""

import logging
from pathlib import Path
from typing import Any

import asyncpg

from services.common import db
from services.common.clock import Clock, SystemClock

from .audit import MFA_RESET, AuditTrail, Origin
from .settings import DatabaseSettings, Settings
from .store import MfaStore

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


async def migrate(settings: DatabaseSettings | Settings | None = None) -> list[str]:
    """Applies mfa's migrations not yet applied; returns their names."""
    database_url = (settings or DatabaseSettings()).database_url
    return await db.migrate(database_url, "mfa", MIGRATIONS_DIR)


async def open_pool(settings: DatabaseSettings | Settings | None = None) -> asyncpg.Pool:
    """A small pool on the mfa schema, for one-off admin work."""
    database_url = (settings or DatabaseSettings()).database_url
    return await db.create_pool(database_url, "mfa", min_size=1, max_size=2)


async def reset_user(
    pool: asyncpg.Pool,
    user_id: str,
    *,
    username: str | None = None,
    actor: str = "ssoctl",
    ip: str = "local",
    clock: Clock | None = None,
) -> bool:
    """Forgets the user's authenticator (and any set-up in progress); the next login sets up anew.

    True if there was anything to forget. Ending the user's live sessions is the caller's
    choice (session service, /internal/users/revoke). Recorded as `mfa.reset` (outcome
    `removed` or `nothing_to_remove`) with `actor` (who ran it, e.g. "ssoctl:alice") in the
    user_agent column and `ip` where it was run from.
    """
    store = MfaStore(pool)
    removed = await store.delete_user(user_id)
    log.info("totp reset for user_id=%s: %s", user_id, "removed" if removed else "nothing to remove")
    await AuditTrail(store, clock or SystemClock()).record(
        MFA_RESET,
        "removed" if removed else "nothing_to_remove",
        user_id=user_id,
        username=username,
        origin=Origin(ip, actor),
    )
    return removed


async def audit_rows(pool: asyncpg.Pool, user_id: str) -> list[dict[str, Any]]:
    """The user's mfa.audit_event rows, oldest first, as dicts of the columns (for `ssoctl audit`)."""
    return await MfaStore(pool).audit_rows(user_id)
