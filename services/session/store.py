"""All Redis access of the session service: SSO sessions, their portal sessions and indexes.

Session ids never reach Redis: keys and links hold their "ref", the first 128 bits of their
SHA-256 in base64url (22 characters). A session id is 256 random bits, so its ref can be
neither guessed nor turned back into it; 128 bits keep refs apart among any number of sessions
(a collision among a billion is about 1 in 10^21). An SSO session's ref is also its public
name, the `sid` of its id_tokens: one name, so no index from sid to session is needed.

Keys, under the prefix as one hash tag ("{sso:}", one Cluster slot, so every transaction and
script below stays atomic), each small enough for Redis's compact encodings (docs/performance.md):
- s:<sid>      hash: the SSO session (one-letter fields, below) and one field p<ref> per
               portal session made from it (its creation time, microseconds). TTL: the
               session's lifetime, never extended.
- p:<ref>      string "<sid> <expires_at>": a portal session, by its parent. TTL: its own
               lifetime, never past the parent's key. It counts only while its parent's hash
               lists it, so ending the parent (or deleting its field) ends it.
- u:<user_id>  sorted set of the user's SSO sids by expiry (a listpack up to 128 members).
- live         hash: minute of expiry -> how many SSO sessions end in that minute, for the
               gauge of live sessions (count_live_sso).
The layout before issue 11 (sso:, sid:, user:, children:, portal:, live-sso) is never read: a
session made before the upgrade is as good as gone (docs/operations.md, "Upgrade").
"""

import base64
import hashlib
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any

from redis.exceptions import WatchError

from services.common.redis_client import RedisClient, key_prefix_for

log = logging.getLogger(__name__)

# Optimistic transactions retry when a watched key changes under them (e.g. a touch).
MAX_ATTEMPTS = 5

# The SSO hash's fields. A portal session's field is CHILD + its ref (23 characters, so it
# never collides with a record field).
USER_ID, USERNAME, AMR, AUTH_TIME, EXPIRES_AT, LAST_USED = "u", "n", "a", "t", "e", "l"
# For the customer's Security page, kept only when known: the browser's short label (at most 32
# characters, derived by auth at sign-in) and the client address.
DEVICE, ADDRESS = "d", "i"
CHILD = "p"
REF_LENGTH = 22
# The live count's buckets: sessions are counted to the minute of their expiry.
LIVE_BUCKET_SECONDS = 60

# One session fewer in its minute of the live count; a minute at zero goes, so no key is left
# behind once every session has ended.
UNCOUNT_SCRIPT = """
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
"""


# An SSO session, in one script where a MULTI/EXEC of six commands took eight replies to read.
# The user's index forgets the sessions that have expired, then takes this one; the newest
# session lives longest, so the index lives as long as any member.
# KEYS: the session's hash, the user's index, the live count. ARGV: sid, TTL seconds,
# auth_time, expires_at, the live count's minute, then the hash's fields and values.
CREATE_SSO_SCRIPT = """
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('HINCRBY', KEYS[3], ARGV[5], 1)
return 1
"""

# A field's integer, as Python's int() reads the stored ones (digits, maybe a sign), else nil:
# what the scripts accept is what store._sso_record and get_portal accept.
_LUA_INT = """
local function int(value)
  if value and string.match(value, '^[-+]?%d+$') then return tonumber(value) end
end
"""

# The fields of an SSO session every script checks, for its HMGET, in the order sso_times reads
# them; the portal lookup asks for one more after them (its own child field).
_SSO_CHECKED_FIELDS = ", ".join(
    f"'{name}'" for name in (USER_ID, USERNAME, AMR, AUTH_TIME, EXPIRES_AT, LAST_USED)
)

# An SSO session's expires_at and last_used, when its checked fields (as HMGET read them) make a
# record store._sso_record reads; nil when one is missing or not an integer: the session is gone.
# One function for the three scripts below, so that what counts as a session cannot drift apart.
_LUA_SSO_TIMES = (
    _LUA_INT
    + """
local function sso_times(fields)
  local expires_at, last_used = int(fields[5]), int(fields[6])
  if fields[1] and fields[2] and fields[3] and int(fields[4]) and expires_at and last_used then
    return expires_at, last_used
  end
end
"""
)

# A portal session, made in one round trip where a read of the parent (and, with an idle
# timeout, a touch of it) and this script took two or three: the parent's checks are those of
# Sessions.find_sso and start_portal, made here on the parent's own fields (sso_times: a record
# missing one, or not an integer where one is stored, is gone), in the same order: gone, expired, idle, then
# another user's (refused with nothing written: a request naming the wrong user is no use of
# the session). With an idle timeout, the use is recorded (last_used = now), as find_sso does. The
# TTL is min(portal lifetime, the parent's remaining lifetime by its expires_at), and the key's
# never past the parent key's own PTTL. Then, with a limit, the parent's oldest portal sessions
# end so that at most that many stay, the new one always among them (oldest by creation time,
# then field). Scripts run atomically, so no WATCH is needed. Every key it touches is under the
# store's hash tag (the ended sessions' keys are the prefix ARGV[9] + their ref): one Cluster slot.
# KEYS: the parent's hash, the new portal key. ARGV: parent sid, ref, user id, now (seconds),
# portal lifetime (seconds), idle timeout (seconds, 0: none), creation time (microseconds), how
# many to keep (0: no limit), the portal keys' prefix.
# Returns the new session's expires_at, or one of PortalRefusal's codes:
# -1 the parent is gone, -2 it has expired, -3 it was idle too long (the caller ends it),
# -4 it is another user's.
CREATE_PORTAL_SCRIPT = f"""
{_LUA_SSO_TIMES}
local parent_ttl_ms = redis.call('PTTL', KEYS[1])
if parent_ttl_ms <= 0 then return -1 end
local parent = redis.call('HMGET', KEYS[1], {_SSO_CHECKED_FIELDS})
local expires_at, last_used = sso_times(parent)
if not expires_at then return -1 end
local now, idle_timeout = tonumber(ARGV[4]), tonumber(ARGV[6])
if expires_at <= now then return -2 end
if idle_timeout > 0 and now - last_used >= idle_timeout then return -3 end
if parent[1] ~= ARGV[3] then return -4 end
if idle_timeout > 0 then redis.call('HSET', KEYS[1], '{LAST_USED}', ARGV[4]) end
local ttl = math.min(tonumber(ARGV[5]), expires_at - now)
local portal_expires_at = now + ttl
redis.call('SET', KEYS[2], ARGV[1] .. ' ' .. string.format('%d', portal_expires_at),
  'EX', math.min(ttl, math.ceil(parent_ttl_ms / 1000)))
local own = '{CHILD}' .. ARGV[2]
redis.call('HSET', KEYS[1], own, ARGV[7])
local keep = tonumber(ARGV[8])
if keep <= 0 then return portal_expires_at end
local fields = redis.call('HGETALL', KEYS[1])
local others = {{}}
for i = 1, #fields, 2 do
  local name = fields[i]
  if #name == {len(CHILD) + REF_LENGTH} and string.sub(name, 1, {len(CHILD)}) == '{CHILD}' and name ~= own then
    others[#others + 1] = {{tonumber(fields[i + 1]) or 0, name}}
  end
end
if #others < keep then return portal_expires_at end
table.sort(others, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end)
for i = 1, #others - keep + 1 do
  local name = others[i][2]
  redis.call('DEL', ARGV[9] .. string.sub(name, {len(CHILD) + 1}))
  redis.call('HDEL', KEYS[1], name)
end
return portal_expires_at
"""


# An SSO session's lookup (POST /internal/sso-sessions/lookup), in one round trip where a read
# and, with an idle timeout, a touch took two: the checks Sessions._live made in Python, on the
# session's own fields, in its order: gone (no key, or a record missing a field, as store._sso_record reads
# it), expired (by its expires_at), idle too long (the caller then ends it). With
# an idle timeout, a live session's use is recorded (last_used = now); without one there is
# nothing to write and SessionStore.find_live_sso reads the hash with a plain HGETALL instead.
# A lookup, a read, waits for no replica either way.
# KEYS: the session's hash. ARGV: now (seconds), idle timeout (seconds, 0: none).
# Returns the hash's fields and values as HGETALL read them (before the touch), or one of
# SsoRefusal's codes: -1 gone, -2 expired, -3 idle too long.
FIND_SSO_SCRIPT = f"""
{_LUA_SSO_TIMES}
local fields = redis.call('HGETALL', KEYS[1])
local record = {{}}
for i = 1, #fields, 2 do record[fields[i]] = fields[i + 1] end
local expires_at, last_used = sso_times({{record['{USER_ID}'], record['{USERNAME}'], record['{AMR}'],
  record['{AUTH_TIME}'], record['{EXPIRES_AT}'], record['{LAST_USED}']}})
if not expires_at then return -1 end
local now, idle_timeout = tonumber(ARGV[1]), tonumber(ARGV[2])
if expires_at <= now then return -2 end
if idle_timeout > 0 then
  if now - last_used >= idle_timeout then return -3 end
  redis.call('HSET', KEYS[1], '{LAST_USED}', ARGV[1])
end
return fields
"""

# A portal session's lookup (POST /internal/portal-sessions/lookup, the portal's session check),
# in one round trip where a GET of the portal key, a read of its parent and, with an idle
# timeout, a touch of the parent took two or three. The checks of Sessions.find_portal, in its
# order: the portal session gone (no key, or a value not "<sid> <expires_at>"), expired (by its
# expires_at), its parent gone (as FIND_SSO_SCRIPT's), no longer listing it (its field p<ref>:
# ending either ends it), then find_sso's on the parent: expired, idle too long (the caller ends
# the parent). With an idle timeout, the parent's use is recorded (last_used = now). The
# parent's key is the prefix ARGV[4] + its sid, under the store's hash tag: one Cluster slot.
# KEYS: the portal key. ARGV: the portal session's ref, now (seconds), idle timeout (seconds,
# 0: none), the SSO keys' prefix.
# Returns {{0, parent sid, user id, username, the portal session's expires_at}} when live, else
# {{code, parent sid ('' when unread)}} with one of PortalLookupRefusal's codes: -1 gone,
# -2 expired, -3 the parent gone, -4 not listed by it, -5 the parent expired, -6 it was idle
# too long.
FIND_PORTAL_SCRIPT = f"""
{_LUA_SSO_TIMES}
local link = redis.call('GET', KEYS[1])
if not link then return {{-1, ''}} end
local parent_sid, link_expires_at = string.match(link, '^([^ ]*) ([^ ]*)$')
local expires_at = int(link_expires_at)
if not expires_at then return {{-1, ''}} end
local now, idle_timeout = tonumber(ARGV[2]), tonumber(ARGV[3])
if expires_at <= now then return {{-2, parent_sid}} end
local parent_key = ARGV[4] .. parent_sid
local parent = redis.call('HMGET', parent_key, {_SSO_CHECKED_FIELDS}, '{CHILD}' .. ARGV[1])
local parent_expires_at, last_used = sso_times(parent)
if not parent_expires_at then return {{-3, parent_sid}} end
if not parent[7] then return {{-4, parent_sid}} end
if parent_expires_at <= now then return {{-5, parent_sid}} end
if idle_timeout > 0 then
  if now - last_used >= idle_timeout then return {{-6, parent_sid}} end
  redis.call('HSET', parent_key, '{LAST_USED}', ARGV[2])
end
return {{0, parent_sid, parent[1], parent[2], link_expires_at}}
"""


class SsoRefusal(Enum):
    """Why FIND_SSO_SCRIPT found no live SSO session: its return codes."""

    GONE = -1
    EXPIRED = -2
    # The caller ends it (Sessions.find_sso).
    IDLE = -3


class PortalLookupRefusal(Enum):
    """Why FIND_PORTAL_SCRIPT found no live portal session: its return codes."""

    GONE = -1
    EXPIRED = -2
    PARENT_GONE = -3
    NOT_LISTED = -4
    PARENT_EXPIRED = -5
    # The caller ends the parent (Sessions.find_portal).
    PARENT_IDLE = -6


class PortalRefusal(Enum):
    """Why CREATE_PORTAL_SCRIPT made no portal session: its negative return codes."""

    PARENT_GONE = -1
    PARENT_EXPIRED = -2
    # The caller ends the parent, as find_sso ends an idle session it meets (Sessions.start_portal).
    PARENT_IDLE = -3
    OTHER_USER = -4


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _optional_text(value: bytes | str | None) -> str | None:
    return None if value is None else _text(value)


def _members(values: Any) -> list[str]:
    return [_text(value) for value in values]


def _hash(fields: dict[bytes | str, bytes | str]) -> dict[str, str]:
    return {_text(name): _text(value) for name, value in fields.items()}


def ref_of(session_id: str) -> str:
    """What Redis holds instead of a session id; for an SSO session, also its sid."""
    digest = hashlib.sha256(session_id.encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _is_child(field: str) -> bool:
    return field.startswith(CHILD) and len(field) == len(CHILD) + REF_LENGTH


def _live_bucket(expires_at: int) -> int:
    return expires_at // LIVE_BUCKET_SECONDS


@dataclass(frozen=True)
class SsoRecord:
    sid: str
    user_id: str
    username: str
    amr: list[str]
    auth_time: int
    expires_at: int
    last_used: int
    # The refs of the portal sessions made from it (some may have expired already).
    children: tuple[str, ...] = ()
    device: str = ""
    address: str = ""

    @property
    def ref(self) -> str:
        """Where it is kept: its sid."""
        return self.sid


@dataclass(frozen=True)
class PortalLink:
    """A portal session as stored: the SSO session it was made from, and when it ends."""

    ref: str
    parent_sid: str
    expires_at: int


@dataclass(frozen=True)
class PortalLookup:
    """What FIND_PORTAL_SCRIPT answered: the live portal session's parent and who it is for, or
    why there is none (with the parent's sid, for the caller to end an idle one)."""

    refusal: PortalLookupRefusal | None
    parent_sid: str
    user_id: str = ""
    username: str = ""
    expires_at: int = 0


def _sso_record(sid: str, fields: dict[str, str]) -> SsoRecord | None:
    try:
        return SsoRecord(
            sid=sid,
            user_id=fields[USER_ID],
            username=fields[USERNAME],
            amr=fields[AMR].split(),
            auth_time=int(fields[AUTH_TIME]),
            expires_at=int(fields[EXPIRES_AT]),
            last_used=int(fields[LAST_USED]),
            children=tuple(sorted(field[len(CHILD) :] for field in fields if _is_child(field))),
            device=fields.get(DEVICE, ""),
            address=fields.get(ADDRESS, ""),
        )
    except (KeyError, ValueError):
        return None


class SessionStore:
    def __init__(
        self, redis: RedisClient, key_prefix: str, *, wait_replicas: int = 0, wait_timeout_ms: int = 500
    ) -> None:
        self.redis = redis
        self.prefix = key_prefix_for(key_prefix)
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._find_sso = redis.register_script(FIND_SSO_SCRIPT)
        self._find_portal = redis.register_script(FIND_PORTAL_SCRIPT)
        self._create_sso = redis.register_script(CREATE_SSO_SCRIPT)
        self._create_portal = redis.register_script(CREATE_PORTAL_SCRIPT)

    def sso_key(self, sid: str) -> str:
        return f"{self.prefix}s:{sid}"

    def portal_key(self, ref: str) -> str:
        return f"{self.prefix}p:{ref}"

    def user_key(self, user_id: str) -> str:
        return f"{self.prefix}u:{user_id}"

    def _live_key(self) -> str:
        return f"{self.prefix}live"

    def _legacy_live_key(self) -> str:
        # The sorted set of the layout before issue 11; emptied by count_live_sso, then gone.
        return f"{self.prefix}live-sso"

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

    # SSO sessions

    async def create_sso(
        self,
        session_id: str,
        *,
        user_id: str,
        username: str,
        amr: list[str],
        auth_time: int,
        expires_at: int,
        ttl_seconds: int,
        device: str = "",
        address: str = "",
    ) -> str:
        """Stores the SSO session; returns its sid."""
        sid = ref_of(session_id)
        fields: dict[str, str | int] = {
            USER_ID: user_id,
            USERNAME: username,
            AMR: " ".join(amr),
            AUTH_TIME: auth_time,
            EXPIRES_AT: expires_at,
            LAST_USED: auth_time,
            **({DEVICE: device} if device else {}),
            **({ADDRESS: address} if address else {}),
        }
        await self._create_sso(
            keys=[self.sso_key(sid), self.user_key(user_id), self._live_key()],
            args=[
                sid,
                ttl_seconds,
                auth_time,
                expires_at,
                _live_bucket(expires_at),
                *(item for field in fields.items() for item in field),
            ],
        )
        await self._replicated()
        return sid

    async def get_sso(self, session_id: str) -> SsoRecord | None:
        return await self.get_sso_by_sid(ref_of(session_id))

    async def get_sso_by_sid(self, sid: str) -> SsoRecord | None:
        return _sso_record(sid, _hash(await self.redis.hgetall(self.sso_key(sid))))

    async def find_live_sso(
        self, session_id: str, *, now: int, idle_timeout_seconds: int = 0
    ) -> SsoRecord | SsoRefusal:
        """The SSO session if it may still be used, its use recorded with an idle timeout; or why
        not (FIND_SSO_SCRIPT). A read: waits for no replica."""
        sid = ref_of(session_id)
        if not idle_timeout_seconds:
            # Nothing to write, so the one round trip is a plain HGETALL, cheaper for Redis than
            # the script (bench/session_store.py's sso_check: 80 -> 100 us through it), with the
            # script's other checks here.
            record = await self.get_sso_by_sid(sid)
            if record is None:
                return SsoRefusal.GONE
            return SsoRefusal.EXPIRED if record.expires_at <= now else record
        reply = await self._find_sso(keys=[self.sso_key(sid)], args=[now, idle_timeout_seconds])
        if isinstance(reply, int):
            return SsoRefusal(reply)
        record = _sso_record(sid, _hash(dict(zip(reply[::2], reply[1::2], strict=True))))
        return SsoRefusal.GONE if record is None else record

    async def end_sso(self, session_id: str) -> bool:
        return await self.end_sso_by_sid(ref_of(session_id))

    async def end_sso_by_sid(self, sid: str, user_id: str | None = None) -> bool:
        """Ends the SSO session and every portal session made from it; True if it was live."""
        sso_key = self.sso_key(sid)
        async with self.redis.pipeline(transaction=True) as pipe:
            for _ in range(MAX_ATTEMPTS):
                try:
                    # Watching the hash, which lists the children: a portal session made
                    # meanwhile makes this try again, and ends as well.
                    await pipe.watch(sso_key)
                    record = _sso_record(sid, _hash(await pipe.hgetall(sso_key)))
                    pipe.multi()
                    children = record.children if record is not None else ()
                    pipe.delete(sso_key, *(self.portal_key(child) for child in children))
                    owners = {user_id, record.user_id if record is not None else None}
                    for owner in owners - {None}:
                        pipe.zrem(self.user_key(str(owner)), sid)
                    if record is not None:
                        pipe.eval(UNCOUNT_SCRIPT, 1, self._live_key(), str(_live_bucket(record.expires_at)))
                    await pipe.execute()
                except WatchError:
                    continue
                await self._replicated()
                return record is not None
        raise RuntimeError("SSO session kept changing while being ended")

    async def count_live_sso(self, now: int) -> int:
        """How many SSO sessions have not expired (to the minute): forgets past minutes, counts the rest."""
        current = _live_bucket(now)
        buckets = _hash(await self.redis.hgetall(self._live_key()))
        past = [bucket for bucket in buckets if int(bucket) < current]
        async with self.redis.pipeline(transaction=False) as pipe:
            if past:
                pipe.hdel(self._live_key(), *past)
            pipe.zremrangebyscore(self._legacy_live_key(), "-inf", now)
            await pipe.execute()
        return max(0, sum(int(count) for bucket, count in buckets.items() if int(bucket) >= current))

    async def user_sso_sessions(self, user_id: str) -> list[tuple[SsoRecord, int]]:
        """The user's SSO sessions still in Redis, each with how many portal sessions it has."""
        found = []
        for sid in sorted(_members(await self.redis.zrange(self.user_key(user_id), 0, -1))):
            record = await self.get_sso_by_sid(sid)
            if record is not None and record.user_id == user_id:
                found.append((record, len(record.children)))
        return found

    async def end_user_sessions(self, user_id: str, keep_sid: str | None = None) -> int:
        """Ends every SSO session of the user (and so their portal sessions) but `keep_sid`;
        returns how many."""
        user_key = self.user_key(user_id)
        ended = 0
        # Each end removes its sid from the index, so a session made meanwhile is caught too.
        for _ in range(MAX_ATTEMPTS):
            sids = set(_members(await self.redis.zrange(user_key, 0, -1)))
            sids.discard(keep_sid or "")
            if not sids:
                break
            for sid in sids:
                ended += await self.end_sso_by_sid(sid, user_id=user_id)
        return ended

    # Portal sessions

    async def create_portal(
        self,
        session_id: str,
        *,
        parent_sid: str,
        user_id: str,
        now: int,
        lifetime_seconds: int,
        idle_timeout_seconds: int = 0,
        created_at: float = 0,
        keep: int | None = None,
    ) -> int | PortalRefusal:
        """Stores the portal session under its parent, if that is live and `user_id`'s; returns
        its expires_at, or why there is none (CREATE_PORTAL_SCRIPT).

        With `keep`, the parent's other portal sessions but the `keep` - 1 newest end in the same
        script: at most `keep` live, this one among them.
        """
        ref = ref_of(session_id)
        outcome = int(
            await self._create_portal(
                keys=[self.sso_key(parent_sid), self.portal_key(ref)],
                args=[
                    parent_sid,
                    ref,
                    user_id,
                    now,
                    lifetime_seconds,
                    idle_timeout_seconds,
                    round(created_at * 1_000_000),
                    0 if keep is None else keep,
                    self.portal_key(""),
                ],
            )
        )
        if outcome < 0:
            return PortalRefusal(outcome)
        await self._replicated()
        return outcome

    async def find_live_portal(
        self, session_id: str, *, now: int, idle_timeout_seconds: int = 0
    ) -> PortalLookup:
        """The portal session's parent and who it is for if it may still be used, the parent's
        use recorded with an idle timeout; or why not (FIND_PORTAL_SCRIPT). A read: waits for no
        replica."""
        ref = ref_of(session_id)
        code, parent_sid, *found = await self._find_portal(
            keys=[self.portal_key(ref)], args=[ref, now, idle_timeout_seconds, self.sso_key("")]
        )
        if int(code) < 0:
            return PortalLookup(PortalLookupRefusal(int(code)), _text(parent_sid))
        user_id, username, expires_at = (_text(value) for value in found)
        return PortalLookup(None, _text(parent_sid), user_id, username, int(expires_at))

    async def get_portal(self, session_id: str) -> PortalLink | None:
        ref = ref_of(session_id)
        value = _optional_text(await self.redis.get(self.portal_key(ref)))
        try:
            parent_sid, expires_at = (value or "").split(" ")
            return PortalLink(ref, parent_sid, int(expires_at))
        except ValueError:
            return None

    async def end_portal(self, session_id: str) -> bool:
        link = await self.get_portal(session_id)
        ref = ref_of(session_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.portal_key(ref))
            if link is not None:
                pipe.hdel(self.sso_key(link.parent_sid), f"{CHILD}{ref}")
            deleted, *_ = await pipe.execute()
        await self._replicated()
        return bool(deleted)
