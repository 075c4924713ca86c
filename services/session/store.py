"""All Redis access of the session service: SSO sessions, their portal sessions and indexes.

Session ids never reach Redis: keys and links hold their SHA-256 ("ref"). Keys, under the
prefix as one hash tag ("{sso:}", one Cluster slot, so every transaction below stays atomic):
sso:<ref> (hash), sid:<sid> -> <ref>, user:<user_id> (set of SSO refs),
children:<ref> (set of portal refs), portal:<ref> (hash), live-sso (sorted set).
"""

import hashlib
import json
import logging
import math
from dataclasses import dataclass

from redis.exceptions import WatchError

from services.common.redis_client import RedisClient, key_prefix_for

log = logging.getLogger(__name__)

# Optimistic transactions retry when a watched key changes under them (e.g. a touch).
MAX_ATTEMPTS = 5

# Only touches a session that still exists: a plain HSET would bring an ended one back,
# without a TTL.
TOUCH_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'last_used', ARGV[1])
  return 1
end
return 0
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _optional_text(value: bytes | str | None) -> str | None:
    return None if value is None else _text(value)


def _hash(fields: dict[bytes | str, bytes | str]) -> dict[str, str]:
    return {_text(name): _text(value) for name, value in fields.items()}


def ref_of(session_id: str) -> str:
    """What Redis holds instead of a session id."""
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class SsoRecord:
    ref: str
    user_id: str
    username: str
    sid: str
    amr: list[str]
    auth_time: int
    expires_at: int
    last_used: int


@dataclass(frozen=True)
class PortalRecord:
    parent_ref: str
    user_id: str
    username: str
    sid: str
    id_token: str
    expires_at: int


class SessionStore:
    def __init__(
        self, redis: RedisClient, key_prefix: str, *, wait_replicas: int = 0, wait_timeout_ms: int = 500
    ) -> None:
        self.redis = redis
        self.prefix = key_prefix_for(key_prefix)
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._touch = redis.register_script(TOUCH_SCRIPT)

    def _sso_key(self, ref: str) -> str:
        return f"{self.prefix}sso:{ref}"

    def _sid_key(self, sid: str) -> str:
        return f"{self.prefix}sid:{sid}"

    def _user_key(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"

    def _children_key(self, ref: str) -> str:
        return f"{self.prefix}children:{ref}"

    def _portal_key(self, ref: str) -> str:
        return f"{self.prefix}portal:{ref}"

    def _replication_mark_key(self) -> str:
        return f"{self.prefix}replication-mark"

    async def _replicated(self) -> None:
        """Returns once wait_replicas replicas have every write made so far (or the timeout passed).

        WAIT counts the writes of its own connection: a write just before it, on the same
        connection, follows every earlier write in the replication stream, so once the replicas
        have it they have all of them.
        """
        if not self.wait_replicas:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self._replication_mark_key(), "1", ex=60)
            pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
            _mark, acknowledged = await pipe.execute()
        if int(acknowledged) < self.wait_replicas:
            log.warning(
                "a session write reached %s of %s replicas in %s ms",
                acknowledged,
                self.wait_replicas,
                self.wait_timeout_ms,
                extra={"fields": {"replicas_acknowledged": int(acknowledged)}},
            )

    def _live_key(self) -> str:
        # Every SSO ref by its expiry: counting live sessions is then one ZCOUNT, not a SCAN.
        return f"{self.prefix}live-sso"

    # SSO sessions

    async def create_sso(
        self,
        session_id: str,
        *,
        user_id: str,
        username: str,
        sid: str,
        amr: list[str],
        auth_time: int,
        expires_at: int,
        ttl_seconds: int,
    ) -> None:
        ref = ref_of(session_id)
        sso_key, user_key = self._sso_key(ref), self._user_key(user_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                sso_key,
                mapping={
                    "user_id": user_id,
                    "username": username,
                    "sid": sid,
                    "amr": json.dumps(amr),
                    "auth_time": auth_time,
                    "expires_at": expires_at,
                    "last_used": auth_time,
                },
            )
            pipe.expire(sso_key, ttl_seconds)
            pipe.set(self._sid_key(sid), ref, ex=ttl_seconds)
            pipe.sadd(user_key, ref)
            # The newest session lives longest, so the index lives as long as any member.
            pipe.expire(user_key, ttl_seconds)
            pipe.zadd(self._live_key(), {ref: expires_at})
            await pipe.execute()
        await self._replicated()

    async def get_sso(self, session_id: str) -> SsoRecord | None:
        return await self.get_sso_by_ref(ref_of(session_id))

    async def get_sso_by_ref(self, ref: str) -> SsoRecord | None:
        fields = _hash(await self.redis.hgetall(self._sso_key(ref)))
        try:
            return SsoRecord(
                ref=ref,
                user_id=fields["user_id"],
                username=fields["username"],
                sid=fields["sid"],
                amr=list(json.loads(fields["amr"])),
                auth_time=int(fields["auth_time"]),
                expires_at=int(fields["expires_at"]),
                last_used=int(fields["last_used"]),
            )
        except (KeyError, ValueError, TypeError):
            return None

    async def _ref_of_sid(self, sid: str) -> str | None:
        return _optional_text(await self.redis.get(self._sid_key(sid)))

    async def get_sso_by_sid(self, sid: str) -> SsoRecord | None:
        ref = await self._ref_of_sid(sid)
        return None if ref is None else await self.get_sso_by_ref(ref)

    async def touch_sso(self, ref: str, now: int) -> None:
        await self._touch(keys=[self._sso_key(ref)], args=[now])

    async def end_sso(self, session_id: str) -> bool:
        return await self.end_sso_by_ref(ref_of(session_id))

    async def end_sso_by_sid(self, sid: str) -> bool:
        ref = await self._ref_of_sid(sid)
        return False if ref is None else await self.end_sso_by_ref(ref)

    async def end_sso_by_ref(self, ref: str, user_id: str | None = None) -> bool:
        """Ends the SSO session and every portal session made from it; True if it was live."""
        sso_key, children_key = self._sso_key(ref), self._children_key(ref)
        async with self.redis.pipeline(transaction=True) as pipe:
            for _ in range(MAX_ATTEMPTS):
                try:
                    # Watching the children too: a portal session made meanwhile ends as well.
                    await pipe.watch(sso_key, children_key)
                    sid, owner = map(_optional_text, await pipe.hmget(sso_key, ["sid", "user_id"]))
                    children = map(_text, await pipe.smembers(children_key))
                    pipe.multi()
                    pipe.delete(sso_key, children_key, *(self._portal_key(c) for c in children))
                    pipe.zrem(self._live_key(), ref)
                    if sid is not None:
                        pipe.delete(self._sid_key(sid))
                    for member_of in {owner, user_id}:
                        if member_of is not None:
                            pipe.srem(self._user_key(member_of), ref)
                    await pipe.execute()
                except WatchError:
                    continue
                await self._replicated()
                return owner is not None
        raise RuntimeError("SSO session kept changing while being ended")

    async def count_live_sso(self, now: int) -> int:
        """How many SSO sessions have not expired: forgets the expired ones, then counts the rest."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(self._live_key(), "-inf", now)
            pipe.zcard(self._live_key())
            _removed, live = await pipe.execute()
        return int(live)

    async def user_sso_sessions(self, user_id: str) -> list[tuple[SsoRecord, int]]:
        """The user's SSO sessions still in Redis, each with how many portal sessions it has."""
        found = []
        for ref in sorted(_text(ref) for ref in await self.redis.smembers(self._user_key(user_id))):
            record = await self.get_sso_by_ref(ref)
            if record is not None and record.user_id == user_id:
                found.append((record, int(await self.redis.scard(self._children_key(ref)))))
        return found

    async def end_user_sessions(self, user_id: str) -> int:
        """Ends every SSO session of the user (and so their portal sessions); returns how many."""
        user_key = self._user_key(user_id)
        ended = 0
        # Each end removes its ref from the set, so a session made meanwhile is caught too.
        for _ in range(MAX_ATTEMPTS):
            refs = {_text(ref) for ref in await self.redis.smembers(user_key)}
            if not refs:
                break
            for ref in refs:
                ended += await self.end_sso_by_ref(ref, user_id=user_id)
        return ended

    # Portal sessions

    async def create_portal(
        self,
        session_id: str,
        *,
        parent_ref: str,
        user_id: str,
        username: str,
        sid: str,
        id_token: str,
        expires_at: int,
        ttl_seconds: int,
        created_at: float = 0,
    ) -> bool:
        """Stores the portal session under its live parent; False when the parent is gone."""
        ref = ref_of(session_id)
        parent_key = self._sso_key(parent_ref)
        portal_key, children_key = self._portal_key(ref), self._children_key(parent_ref)
        async with self.redis.pipeline(transaction=True) as pipe:
            for _ in range(MAX_ATTEMPTS):
                try:
                    await pipe.watch(parent_key)
                    parent_ttl_ms = await pipe.pttl(parent_key)
                    if parent_ttl_ms <= 0:
                        return False
                    # Never outlive the parent's key, whatever the caller computed.
                    ttl = min(ttl_seconds, math.ceil(parent_ttl_ms / 1000))
                    pipe.multi()
                    pipe.hset(
                        portal_key,
                        mapping={
                            "parent_ref": parent_ref,
                            "user_id": user_id,
                            "username": username,
                            "sid": sid,
                            "id_token": id_token,
                            "expires_at": expires_at,
                            "created_at": created_at,
                        },
                    )
                    pipe.expire(portal_key, ttl)
                    pipe.sadd(children_key, ref)
                    pipe.pexpire(children_key, parent_ttl_ms)
                    await pipe.execute()
                except WatchError:
                    continue
                await self._replicated()
                return True
        raise RuntimeError("SSO session kept changing while a portal session was made")

    async def get_portal(self, session_id: str) -> PortalRecord | None:
        fields = _hash(await self.redis.hgetall(self._portal_key(ref_of(session_id))))
        try:
            return PortalRecord(
                parent_ref=fields["parent_ref"],
                user_id=fields["user_id"],
                username=fields["username"],
                sid=fields["sid"],
                id_token=fields["id_token"],
                expires_at=int(fields["expires_at"]),
            )
        except (KeyError, ValueError):
            return None

    async def end_oldest_portals(self, parent_ref: str, keep: int, newest: str) -> int:
        """Ends the SSO session's portal sessions but the `keep` newest (`newest`, the session id
        just made, always stays); returns how many ended."""
        children_key = self._children_key(parent_ref)
        kept = ref_of(newest)
        children = sorted(_text(ref) for ref in await self.redis.smembers(children_key) if _text(ref) != kept)
        if len(children) < keep:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for ref in children:
                pipe.hget(self._portal_key(ref), "created_at")
            created = await pipe.execute()
        # Expired ones (no hash left) go first, then the oldest.
        by_age = sorted(zip(children, created, strict=True), key=lambda pair: float(pair[1] or -1))
        ending = [ref for ref, _created in by_age[: len(children) - keep + 1]]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(*(self._portal_key(ref) for ref in ending))
            pipe.srem(children_key, *ending)
            await pipe.execute()
        return len(ending)

    async def end_portal(self, session_id: str) -> bool:
        ref = ref_of(session_id)
        portal_key = self._portal_key(ref)
        parent_ref = _optional_text(await self.redis.hget(portal_key, "parent_ref"))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(portal_key)
            if parent_ref is not None:
                pipe.srem(self._children_key(parent_ref), ref)
            deleted, *_ = await pipe.execute()
        await self._replicated()
        return bool(deleted)
