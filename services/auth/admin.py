"""What administrators (ssoctl, the support desk) do to accounts and clients; each action audited."""

import logging
from datetime import UTC, datetime, timedelta
from uuid import UUID

from services.common.clock import Clock
from services.common.errors import NotFound
from services.contracts.admin import (
    AddClient,
    AddUser,
    AuditEvent,
    AuditEvents,
    AuditQuery,
    ClientCredentials,
    FindUsers,
    Origin,
    SetRole,
    Unlocked,
    UserAction,
    UserList,
    UserView,
)

from .accounts import Accounts, username_key
from .audit import Actor, AuditLog
from .clients import Clients
from .store import Account, AuthStore
from .throttle import Throttle

log = logging.getLogger(__name__)


def _actor(origin: Origin) -> Actor:
    return Actor(ip=origin.ip, user_agent=origin.user_agent)


class UserAdmin:
    def __init__(
        self,
        store: AuthStore,
        accounts: Accounts,
        clients: Clients,
        throttle: Throttle,
        audit: AuditLog,
        clock: Clock,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.clients = clients
        self.throttle = throttle
        self.audit = audit
        self.clock = clock

    async def _view(self, account: Account) -> UserView:
        left = await self.throttle.lock_seconds_left(account.username_key)
        until = None
        if left is not None and left >= 0:
            until = datetime.fromtimestamp(self.clock.now(), UTC) + timedelta(seconds=left)
        return UserView(
            user_id=str(account.id),
            username=account.username,
            role="support" if account.role == "support" else "customer",
            disabled=account.disabled,
            created_at=account.created_at,
            locked=left is not None,
            locked_until=until,
        )

    async def _account(self, name: str) -> Account:
        found = await self.store.accounts(username_key(name), prefix=False, limit=1)
        if not found:
            raise NotFound(f"No user named {name!r}")
        return found[0]

    async def _record(self, event: str, outcome: str, origin: Origin, user_id: UUID, name: str) -> None:
        await self.audit.record(
            event,
            outcome,
            _actor(origin),
            user_id=user_id,
            username=name,
            operator=origin.operator,
            reason=origin.reason,
        )

    async def find(self, query: FindUsers) -> UserList:
        accounts = await self.store.accounts(username_key(query.query), query.prefix, query.limit)
        return UserList(users=[await self._view(account) for account in accounts])

    async def add(self, request: AddUser) -> UserView:
        user_id = await self.accounts.add(request.username, request.password, request.role)
        account = await self._account(request.username)
        await self._record("user.added", request.role, request, user_id, account.username)
        return await self._view(account)

    async def set_disabled(self, request: UserAction, disabled: bool) -> UserView:
        """Ending the user's sessions is the caller's next call (the session service's admin API)."""
        user_id = await self.accounts.set_disabled(request.username, disabled)
        account = await self._account(request.username)
        await self._record(
            "user.disabled" if disabled else "user.enabled", "ok", request, user_id, account.username
        )
        return await self._view(account)

    async def unlock(self, request: UserAction) -> Unlocked:
        account = await self._account(request.username)
        was_locked = await self.throttle.unlock(account.username_key)
        await self._record("unlock", "ok", request, account.id, account.username)
        log.info("unlock user_id=%s was_locked=%s", account.id, was_locked)
        return Unlocked(user=await self._view(account), was_locked=was_locked)

    async def set_role(self, request: SetRole) -> UserView:
        user_id = await self.accounts.set_role(request.username, request.role)
        account = await self._account(request.username)
        await self._record("user.role", request.role, request, user_id, account.username)
        return await self._view(account)

    async def add_client(self, request: AddClient) -> ClientCredentials:
        secret = await self.clients.register(
            request.client_id,
            request.redirect_uris,
            request.post_logout_redirect_uris,
            request.replace,
            request.id_token_signed_response_alg,
        )
        await self.audit.record(
            "client.added",
            "replaced" if request.replace else "ok",
            _actor(request),
            operator=request.operator,
            # The audit row has no column for a client: its id leads the reason.
            reason=f"client {request.client_id}" + (f": {request.reason}" if request.reason else ""),
        )
        return ClientCredentials(client_id=request.client_id, client_secret=secret)

    async def audit_events(self, query: AuditQuery) -> AuditEvents:
        rows = await self.store.audit_rows(query.user_id, query.limit)
        return AuditEvents(events=[AuditEvent.model_validate(row) for row in rows])
