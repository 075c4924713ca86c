"""In-memory stand-ins: MfaStore with the same rules as its SQL, auth's throttle API."""

from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from services.contracts.auth import AttemptDecision
from services.mfa.store import AuditEvent, StepRecords, TotpCredential, UsedStep


class InMemoryStore:
    def __init__(self) -> None:
        self.credentials: dict[str, TotpCredential] = {}
        self.audit: list[AuditEvent] = []
        self.pending: dict[tuple[str, str], tuple[bytes, datetime]] = {}
        self.consumed: dict[str, datetime] = {}
        self.replays_reported: set[str] = set()
        # user_id -> {code hash: used_at or None}
        self.recovery_codes: dict[str, dict[bytes, datetime | None]] = {}
        self.displays: dict[tuple[str, str], tuple[bytes, datetime]] = {}

    async def get_credential(self, user_id: str) -> TotpCredential | None:
        return self.credentials.get(user_id)

    async def get_or_create_pending(
        self, user_id: str, browser: str, candidate_ciphertext: bytes, expires_at: datetime, now: datetime
    ) -> bytes:
        existing = self.pending.get((user_id, browser))
        if existing is not None and existing[1] > now:
            return existing[0]
        self.pending[(user_id, browser)] = (candidate_ciphertext, expires_at)
        return candidate_ciphertext

    async def live_pending(self, user_id: str, browser: str, now: datetime) -> bytes | None:
        existing = self.pending.get((user_id, browser))
        return existing[0] if existing is not None and existing[1] > now else None

    def pending_of(self, user_id: str) -> list[tuple[bytes, datetime]]:
        return [setup for (owner, _browser), setup in self.pending.items() if owner == user_id]

    async def confirm_enrollment(self, user_id: str, secret_ciphertext: bytes, used_step: int) -> bool:
        if user_id in self.credentials:
            return False
        self.credentials[user_id] = TotpCredential(user_id, secret_ciphertext, used_step)
        self.pending = {key: setup for key, setup in self.pending.items() if key[0] != user_id}
        return True

    async def step_records(self, user_id: str, step_jti: str, browser: str, now: datetime) -> StepRecords:
        return StepRecords(
            consumed=step_jti in self.consumed,
            credential=self.credentials.get(user_id),
            pending_setup=await self.live_pending(user_id, browser, now),
            recovery_display=await self.recovery_display(user_id, step_jti, now),
        )

    async def record_used_step(
        self,
        user_id: str,
        step: int,
        audit: AuditEvent,
        *,
        refused_outcome: str,
        step_token: tuple[str, datetime] | None,
        now: datetime,
    ) -> UsedStep:
        """One statement on Postgres: the guard, the step token's consumption, the audit row."""
        credential = self.credentials.get(user_id)
        if (
            credential is None
            or (credential.last_used_step is not None and credential.last_used_step >= step)
            or step in credential.hinted_steps
        ):
            used = UsedStep.STEP_USED
        else:
            self.credentials[user_id] = replace(credential, last_used_step=step)
            used = UsedStep.ACCEPTED
            if step_token is not None and not await self.consume_step_token(*step_token, now):
                used = UsedStep.STEP_CONSUMED
        self.audit.append(audit if used is UsedStep.ACCEPTED else replace(audit, outcome=refused_outcome))
        return used

    async def refuse_step(self, user_id: str, step: int, oldest_kept: int) -> None:
        credential = self.credentials.get(user_id)
        if credential is not None and step not in credential.hinted_steps:
            kept = tuple(hinted for hinted in credential.hinted_steps if hinted >= oldest_kept)
            self.credentials[user_id] = replace(credential, hinted_steps=(*kept, step))

    async def consume_step_token(self, jti: str, expires_at: datetime, now: datetime) -> bool:
        if jti in self.consumed:
            return False
        self.consumed[jti] = expires_at
        return True

    async def report_replay(self, jti: str) -> bool:
        if jti in self.replays_reported:
            return False
        self.replays_reported.add(jti)
        return True

    async def delete_user(self, user_id: str) -> bool:
        self.recovery_codes.pop(user_id, None)
        self.displays = {key: shown for key, shown in self.displays.items() if key[0] != user_id}
        removed = self.credentials.pop(user_id, None) is not None
        pending = len(self.pending)
        self.pending = {key: setup for key, setup in self.pending.items() if key[0] != user_id}
        return len(self.pending) < pending or removed

    async def replace_recovery_codes(self, user_id: str, digests: list[bytes], now: datetime) -> None:
        self.recovery_codes[user_id] = dict.fromkeys(digests)

    async def use_recovery_code(self, user_id: str, digest: bytes, now: datetime) -> int | None:
        codes = self.recovery_codes.get(user_id, {})
        if digest not in codes or codes[digest] is not None:
            return None
        codes[digest] = now
        return await self.recovery_codes_left(user_id)

    async def recovery_codes_left(self, user_id: str) -> int:
        return sum(1 for used in self.recovery_codes.get(user_id, {}).values() if used is None)

    async def hold_recovery_display(
        self, user_id: str, step_jti: str, sealed: bytes, expires_at: datetime, now: datetime
    ) -> None:
        self.displays = {key: shown for key, shown in self.displays.items() if shown[1] > now}
        self.displays[(user_id, step_jti)] = (sealed, expires_at)

    async def recovery_display(self, user_id: str, step_jti: str, now: datetime) -> bytes | None:
        shown = self.displays.get((user_id, step_jti))
        return shown[0] if shown is not None and shown[1] > now else None

    async def end_recovery_display(self, user_id: str, step_jti: str, now: datetime) -> bool:
        shown = self.displays.pop((user_id, step_jti), None)
        return shown is not None and shown[1] > now

    async def credential_status(self, user_id: str, now: datetime) -> tuple[datetime | None, bool, int]:
        pending = any(until > now for until in (setup[1] for setup in self.pending_of(user_id)))
        since = now if user_id in self.credentials else None
        return since, pending, await self.recovery_codes_left(user_id)

    async def add_audit_event(self, event: AuditEvent) -> None:
        self.audit.append(event)

    async def audit_rows(self, user_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        return [asdict(event) for event in self.audit if event.user_id == user_id][-limit:]

    def outcomes(self, event: str) -> list[str]:
        return [row.outcome for row in self.audit if row.event == event]


class FakeThrottle:
    """auth's /internal/attempts: counts each attempt up front, refuses after max_failures."""

    def __init__(self, max_failures: int = 5, lock_seconds: int = 840) -> None:
        self.max_failures = max_failures
        self.lock_seconds = lock_seconds
        self.failures: dict[str, int] = {}
        self.calls: list[tuple[str, str, str]] = []

    async def admit(self, account: str, ip: str, device: str | None = None) -> AttemptDecision:
        self.calls.append(("begin", account, ip))
        if self.failures.get(account, 0) >= self.max_failures:
            return AttemptDecision(allowed=False, locked_seconds=self.lock_seconds)
        self.failures[account] = self.failures.get(account, 0) + 1
        return AttemptDecision(allowed=True)

    async def succeeded(self, account: str, ip: str, device: str | None = None) -> None:
        self.calls.append(("succeeded", account, ip))
        self.failures[account] = 0

    def unlock(self, account: str) -> None:
        self.failures.pop(account, None)
