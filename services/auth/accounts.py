"""Customer accounts: adding, disabling and checking a name and password."""

import logging
import re
import unicodedata
from dataclasses import dataclass
from uuid import UUID

from services.common.errors import BadRequest, Conflict, NotFound
from services.contracts.auth import account_key

from .passwords import Passwords
from .store import AuthStore, User

log = logging.getLogger(__name__)

USERNAME_PATTERN = re.compile(r"^[\w.@+-]{1,64}$")
MAX_PASSWORD_LENGTH = 1024
MIN_PASSWORD_LENGTH = 8


@dataclass(frozen=True)
class SignIn:
    """How a name and password check went: `user` only when it succeeded; `known` for the audit."""

    user: User | None
    known: User | None
    outcome: str


def username_key(name: str) -> str:
    """The form names are compared in: NFKC, trimmed, case-folded (the throttle's account, too)."""
    return account_key(name)


class Accounts:
    def __init__(self, store: AuthStore, passwords: Passwords) -> None:
        self.store = store
        self.passwords = passwords

    async def authenticate(self, login_name: str, password: str) -> SignIn:
        """Checks name and password with the same work whether or not the name exists."""
        user = await self.store.user_by_key(username_key(login_name))
        matched = await self.passwords.verify(user.password_hash if user else None, password)
        if user is None or not matched:
            return SignIn(None, user, "invalid")
        if user.disabled:
            return SignIn(None, user, "disabled")
        if self.passwords.needs_rehash(user.password_hash):
            await self.store.set_password_hash(user.id, await self.passwords.hash(password))
        return SignIn(user, user, "ok")

    async def lookup(self, login_name: str) -> User | None:
        return await self.store.user_by_key(username_key(login_name))

    async def add(self, name: str, password: str, role: str = "customer") -> UUID:
        name = unicodedata.normalize("NFKC", name).strip()
        if not USERNAME_PATTERN.match(name):
            raise BadRequest("A username is 1 to 64 letters, digits or . _ @ + -")
        if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
            raise BadRequest(f"A password is {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters")
        user_id = await self.store.add_user(
            name, username_key(name), await self.passwords.hash(password), role
        )
        if user_id is None:
            raise Conflict(f"A user named {name!r} already exists")
        return user_id

    async def find(self, name: str) -> User:
        user = await self.store.user_by_key(username_key(name))
        if user is None:
            raise NotFound(f"No user named {name!r}")
        return user

    async def set_disabled(self, name: str, disabled: bool) -> UUID:
        user_id = await self.store.set_disabled(username_key(name), disabled)
        if user_id is None:
            raise NotFound(f"No user named {name!r}")
        return user_id

    async def set_role(self, name: str, role: str) -> UUID:
        user_id = await self.store.set_role(username_key(name), role)
        if user_id is None:
            raise NotFound(f"No user named {name!r}")
        return user_id

    async def active_user(self, user_id: UUID) -> User | None:
        user = await self.store.user_by_id(user_id)
        return user if user and not user.disabled else None
