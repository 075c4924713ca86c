"""The audit trail: who did what, when, from where, and how it went. Never a secret."""

import logging
from dataclasses import dataclass
from uuid import UUID

from services.common.metrics import count_audit_event

from .store import AuthStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    ip: str
    user_agent: str


ADMIN = Actor(ip="ssoctl", user_agent="ssoctl")


class AuditLog:
    def __init__(self, store: AuthStore) -> None:
        self.store = store

    async def record(
        self,
        event: str,
        outcome: str,
        actor: Actor,
        user_id: UUID | str | None = None,
        username: str | None = None,
    ) -> None:
        await self.store.record_audit(
            event, outcome, str(user_id) if user_id else None, username, actor.ip, actor.user_agent
        )
        log.info("audit %s %s user_id=%s", event, outcome, user_id)
        count_audit_event(event, outcome)
