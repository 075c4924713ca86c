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
        operator: str | None = None,
        reason: str | None = None,
    ) -> None:
        """operator and reason: who did an admin action (ssoctl, the support desk), and why."""
        await self.store.record_audit(
            event,
            outcome,
            str(user_id) if user_id else None,
            username,
            actor.ip,
            actor.user_agent,
            operator=operator,
            reason=reason or None,
        )
        log.info("audit %s %s user_id=%s operator=%s", event, outcome, user_id, operator)
        count_audit_event(event, outcome)

    async def record_for_account(self, event: str, outcome: str, actor: Actor, username_key: str) -> None:
        """A row naming the account with this key if there is one, else no user (people type
        passwords into name fields: an unknown name is never written down)."""
        user_id = await self.store.record_audit_for_account(
            event, outcome, username_key, actor.ip, actor.user_agent
        )
        log.info("audit %s %s user_id=%s operator=%s", event, outcome, user_id, None)
        count_audit_event(event, outcome)
