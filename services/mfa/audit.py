"""mfa's audit trail: one row in mfa.audit_event per sign-in code, set-up and reset.

A row never holds a code, secret or token (docs/architecture.md, "Audit").
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from services.common.clock import Clock
from services.common.metrics import count_audit_event

from .store import AuditEvent

SIGN_IN_OTP = "sign_in.otp"
ENROLLMENT = "enrollment"
MFA_RESET = "mfa.reset"
# Recovery codes: a set made (outcome: enrollment, renewed), one spent (ok), one refused
# (invalid, locked). Never the code itself.
RECOVERY_CODES_CREATED = "recovery_codes_created"
RECOVERY_CODE_USED = "recovery_code_used"
RECOVERY_CODE_FAILED = "recovery_code_failed"


@dataclass(frozen=True)
class Origin:
    """Where a request came from, as the gateway saw it."""

    ip: str
    user_agent: str = ""


class AuditStore(Protocol):
    async def add_audit_event(self, event: AuditEvent) -> None: ...


class AuditTrail:
    def __init__(self, store: AuditStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def record(
        self,
        event: str,
        outcome: str,
        *,
        user_id: str | None,
        username: str | None,
        origin: Origin,
        operator: str | None = None,
        reason: str | None = None,
    ) -> None:
        """operator and reason: who did an admin action (ssoctl, the support desk), and why."""
        await self.store.add_audit_event(
            self.row(
                event,
                outcome,
                user_id=user_id,
                username=username,
                origin=origin,
                operator=operator,
                reason=reason,
            )
        )
        count_audit_event(event, outcome)

    def row(
        self,
        event: str,
        outcome: str,
        *,
        user_id: str | None,
        username: str | None,
        origin: Origin,
        operator: str | None = None,
        reason: str | None = None,
    ) -> AuditEvent:
        """The row `record` writes, for a store statement that writes it along with its own
        change (MfaStore.record_used_step); `counted` then counts the outcome it wrote."""
        return AuditEvent(
            at=datetime.fromtimestamp(self.clock.now(), UTC),
            user_id=user_id,
            username=username,
            event=event,
            outcome=outcome,
            ip=origin.ip,
            user_agent=origin.user_agent[:256],
            operator=operator,
            reason=reason or None,
        )

    @staticmethod
    def counted(event: str, outcome: str) -> None:
        count_audit_event(event, outcome)
