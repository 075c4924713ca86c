"""What administrators (ssoctl, the support desk) do to authenticators, and `python -m services.mfa migrate`."""

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from services.common import db
from services.common.clock import Clock
from services.contracts.admin import AuditEvent, AuditEvents, AuditQuery, MfaReset, MfaStatus, ResetMfa

from .audit import MFA_RESET, AuditStore, AuditTrail, Origin
from .settings import DatabaseSettings, Settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


async def migrate(settings: DatabaseSettings | Settings | None = None) -> list[str]:
    """Applies mfa's migrations not yet applied; returns their names."""
    database_url = (settings or DatabaseSettings()).database_url
    return await db.migrate(database_url, "mfa", MIGRATIONS_DIR)


class AdminStore(AuditStore, Protocol):
    async def delete_user(self, user_id: str) -> bool: ...

    async def audit_rows(self, user_id: str, limit: int = 1000) -> list[dict[str, Any]]: ...

    async def credential_status(self, user_id: str, now: datetime) -> tuple[datetime | None, bool, int]: ...


class MfaAdmin:
    def __init__(self, store: AdminStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.audit = AuditTrail(store, clock)

    async def status(self, user_id: str) -> MfaStatus:
        since, pending, codes_left = await self.store.credential_status(
            user_id, datetime.fromtimestamp(self.clock.now(), UTC)
        )
        return MfaStatus(
            enrolled=since is not None,
            enrolled_since=since,
            setup_pending=pending,
            recovery_codes_left=codes_left,
        )

    async def reset(self, request: ResetMfa) -> MfaReset:
        """Forgets the user's authenticator, its recovery codes and any set-up in progress; the next
        sign-in sets up anew.

        Ending the user's sessions is the caller's next call (the session service's admin API).
        """
        removed = await self.store.delete_user(request.user_id)
        log.info(
            "totp reset for user_id=%s: %s", request.user_id, "removed" if removed else "nothing to remove"
        )
        await self.audit.record(
            MFA_RESET,
            "removed" if removed else "nothing_to_remove",
            user_id=request.user_id,
            username=request.username,
            origin=Origin(request.ip, request.user_agent),
            operator=request.operator,
            reason=request.reason,
        )
        return MfaReset(removed=removed)

    async def audit_events(self, query: AuditQuery) -> AuditEvents:
        rows = await self.store.audit_rows(query.user_id, query.limit)
        return AuditEvents(events=[AuditEvent.model_validate(row) for row in rows])
