"""An in-memory AuthStore for unit tests, with its audit trail."""

from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID, uuid4

from services.auth.store import AuthorizationCode, Client, CodeRedeemer, FoundCode, User
from services.common.step_tokens import StepConsumption


@dataclass(frozen=True)
class AuditRow:
    event: str
    outcome: str
    user_id: str | None
    username: str | None
    ip: str
    user_agent: str
    operator: str | None = None
    reason: str | None = None


class FakeAuthStore:
    def __init__(self) -> None:
        self.audit: list[AuditRow] = []
        self.users: dict[str, User] = {}
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, tuple[AuthorizationCode, bool]] = {}
        self.revoked: set[str] = set()
        self.consumed: set[str] = set()

    async def user_by_key(self, username_key: str) -> User | None:
        return self.users.get(username_key)

    async def user_by_id(self, user_id: UUID) -> User | None:
        return next((user for user in self.users.values() if user.id == user_id), None)

    async def add_user(
        self, username: str, username_key: str, password_hash: str, role: str = "customer"
    ) -> UUID | None:
        if username_key in self.users:
            return None
        self.users[username_key] = User(uuid4(), username, password_hash, False)
        return self.users[username_key].id

    async def set_disabled(self, username_key: str, disabled: bool) -> UUID | None:
        user = self.users.get(username_key)
        if user is None:
            return None
        self.users[username_key] = replace(user, disabled=disabled)
        return user.id

    async def set_password_hash(self, user_id: UUID, password_hash: str) -> None:
        for key, user in self.users.items():
            if user.id == user_id:
                self.users[key] = replace(user, password_hash=password_hash)

    async def client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    async def save_client(self, client: Client, replace_existing: bool) -> bool:
        if client.client_id in self.clients and not replace_existing:
            return False
        self.clients[client.client_id] = client
        return True

    async def save_code(self, code_hash: str, code: AuthorizationCode) -> bool:
        user = await self.user_by_id(code.user_id)
        if user is None or user.disabled:
            return False
        self.codes[code_hash] = (code, False)
        return True

    async def redeem_code(
        self, code_hash: str, redeemer: CodeRedeemer, access_token_jti: str
    ) -> FoundCode | None:
        if code_hash not in self.codes:
            return None
        code, used = self.codes[code_hash]
        redeemed = (
            not used
            and code.client_id == redeemer.client_id
            and code.redirect_uri == redeemer.redirect_uri
            and code.code_challenge == redeemer.code_challenge
            and code.expires_at >= redeemer.now
        )
        if redeemed:
            self.codes[code_hash] = (replace(code, access_token_jti=access_token_jti), True)
        return FoundCode(code, used, redeemed)

    async def revoke_token(self, jti: str, expires_at: float) -> None:
        self.revoked.add(jti)

    async def token_revoked(self, jti: str) -> bool:
        return jti in self.revoked

    async def consume_step_token(self, jti: str, expires_at: datetime, now: datetime) -> bool:
        if jti in self.consumed:
            return False
        self.consumed.add(jti)
        return True

    async def record_audit(
        self,
        event: str,
        outcome: str,
        user_id: str | None,
        username: str | None,
        ip: str,
        user_agent: str,
        operator: str | None = None,
        reason: str | None = None,
    ) -> None:
        self.audit.append(AuditRow(event, outcome, user_id, username, ip, user_agent, operator, reason))

    async def consume_step_and_record_audit(
        self,
        step: StepConsumption,
        event: str,
        outcome: str,
        ip: str,
        user_agent: str,
        *,
        user_id: str | None = None,
        username: str | None = None,
        username_key: str | None = None,
        even_if_replayed: bool = False,
    ) -> bool:
        consumed = await self.consume_step_token(step.jti, step.expires_at, step.now)
        if consumed or even_if_replayed:
            user = self.users.get(username_key) if username_key is not None else None
            if user is not None:
                user_id, username = str(user.id), user.username
            await self.record_audit(event, outcome, user_id, username, ip, user_agent)
        return consumed

    def outcomes(self, event: str) -> list[str]:
        return [row.outcome for row in self.audit if row.event == event]

    async def report_replay(self, jti: str) -> bool:
        return False
