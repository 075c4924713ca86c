"""The audit trail: who did what, when, from where, and how it went. Never a secret."""

import logging
from dataclasses import dataclass
from uuid import UUID

from services.common.metrics import count_audit_event
from services.common.step_tokens import StepConsumption

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

    async def record_consuming(
        self,
        step: StepConsumption,
        event: str,
        outcome: str,
        actor: Actor,
        *,
        user_id: UUID | str | None = None,
        username: str | None = None,
        username_key: str | None = None,
        even_if_replayed: bool = False,
    ) -> bool:
        """Uses up a step and writes its row in one statement (one round trip, not two): True the
        first time; False on a replay, which writes no row unless `even_if_replayed`.
        `username_key`: the row names that account if there is one, else no user (people type
        passwords into name fields: an unknown name is never written down)."""
        consumed = await self.store.consume_step_and_record_audit(
            step,
            event,
            outcome,
            actor.ip,
            actor.user_agent,
            user_id=str(user_id) if user_id else None,
            username=username,
            username_key=username_key,
            even_if_replayed=even_if_replayed,
        )
        if consumed or even_if_replayed:
            log.info("audit %s %s user_id=%s operator=%s", event, outcome, user_id, None)
            count_audit_event(event, outcome)
        return consumed
