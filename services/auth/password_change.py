"""A signed-in customer changes their own password: the current one first, counted like a sign-in.

Whoever holds a stolen portal session must get no free password oracle: each try of the current
password is an attempt on the account's password throttle (the unknown browsers' count, as the
portal holds no device cookie), so wrong ones lock the account's sign-in as wrong sign-ins do.
"""

import logging
from uuid import UUID

from services.common.metrics import LOCKOUTS
from services.contracts.auth import ChangePassword, PasswordChanged, PasswordChangeOutcome

from .accounts import Accounts, username_key
from .audit import Actor, AuditLog
from .password_policy import refusal_of
from .sso_sessions import SsoSessions
from .throttle import AttemptKind, Throttle

log = logging.getLogger(__name__)

PASSWORD_CHANGED = "password_changed"  # noqa: S105 (an audit event, not a password)


class PasswordChanges:
    def __init__(
        self, accounts: Accounts, throttle: Throttle, audit: AuditLog, sso_sessions: SsoSessions
    ) -> None:
        self.accounts = accounts
        self.throttle = throttle
        self.audit = audit
        self.sso_sessions = sso_sessions

    async def change(self, request: ChangePassword) -> PasswordChanged:
        actor = Actor(ip=request.ip, user_agent=request.user_agent)
        try:
            user = await self.accounts.active_user(UUID(request.user_id))
        except ValueError:
            user = None
        if user is None:
            # The portal's session names a user that is gone or disabled: nothing to change.
            await self.audit.record(PASSWORD_CHANGED, "no_account", actor, user_id=None)
            return PasswordChanged(outcome="wrong_current")
        account = username_key(user.username)
        verdict = await self.throttle.begin(AttemptKind.PASSWORD, account, actor.ip)
        if not verdict.allowed:
            if verdict.locked_now:
                LOCKOUTS.labels(reason=verdict.reason).inc()
                await self.audit.record(
                    "lockout", verdict.reason, actor, user_id=user.id, username=user.username
                )
            await self.audit.record(
                PASSWORD_CHANGED, "locked", actor, user_id=user.id, username=user.username
            )
            return PasswordChanged(outcome="locked")
        if not await self.accounts.passwords.verify(user.password_hash, request.current_password):
            await self.audit.record(
                PASSWORD_CHANGED, "wrong_current", actor, user_id=user.id, username=user.username
            )
            return PasswordChanged(outcome="wrong_current")
        await self.throttle.succeeded(AttemptKind.PASSWORD, account, actor.ip)
        refusal: PasswordChangeOutcome | None = (
            "same_as_current"
            if request.new_password == request.current_password
            else await refusal_of(request.new_password, user.username)
        )
        if refusal is not None:
            await self.audit.record(
                PASSWORD_CHANGED, f"refused_{refusal}", actor, user_id=user.id, username=user.username
            )
            return PasswordChanged(outcome=refusal)
        await self.accounts.store.set_password_hash(
            user.id, await self.accounts.passwords.hash(request.new_password)
        )
        await self.audit.record(PASSWORD_CHANGED, "ok", actor, user_id=user.id, username=user.username)
        # Whoever knew the old password is signed out everywhere but on the device that changed it.
        ended = await self.sso_sessions.revoke_user(user.id, keep_sid=request.keep_sid)
        log.info("password changed for user_id=%s; %d other SSO sessions ended", user.id, ended)
        return PasswordChanged(outcome="changed", sessions_ended=ended)
