"""auth's sign-in failure counters in Redis: one Lua script per decision, so replicas agree."""

import hashlib

from services.common.redis_client import RedisClient, key_prefix_for

# Counts the attempt before the guess is checked. Returns {allowed, reason, lock_seconds}.
BEGIN_ATTEMPT = """
local lock, fails, consecutive, level, ip_fails, ip_block = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local limit, window, base, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local max_consecutive, ip_limit = tonumber(ARGV[5]), tonumber(ARGV[6])
if redis.call('EXISTS', lock) == 1 then return {0, 'locked', 0} end
if redis.call('EXISTS', ip_block) == 1 then return {0, 'ip_blocked', 0} end
local ip_count = redis.call('INCR', ip_fails)
if ip_count == 1 then redis.call('EXPIRE', ip_fails, window) end
if ip_count > ip_limit then
  redis.call('SET', ip_block, '1', 'EX', window)
  return {0, 'ip_blocked', window}
end
local in_a_row = redis.call('INCR', consecutive)
redis.call('EXPIRE', consecutive, 2592000)
if in_a_row > max_consecutive then
  redis.call('SET', lock, 'until-unlock')
  return {0, 'locked_until_unlock', -1}
end
local count = redis.call('INCR', fails)
if count == 1 then redis.call('EXPIRE', fails, window) end
if count > limit then
  local times = redis.call('INCR', level)
  redis.call('EXPIRE', level, 86400)
  local wait = math.min(base * 2 ^ (times - 1), max_wait)
  redis.call('SET', lock, 'temporary', 'EX', wait)
  redis.call('DEL', fails)
  return {0, 'locked_now', wait}
end
return {1, 'ok', 0}
"""

# A right guess: the IP's attempt is not held against it, and the given counters are forgiven.
SUCCEEDED = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
"""


def _digest(value: str) -> str:
    # Names in keys are hashed: keys stay short and clean whatever a customer types.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class ThrottleStore:
    def __init__(self, client: RedisClient, prefix: str) -> None:
        self.client = client
        # One hash tag for all: BEGIN_ATTEMPT spans an account's and an address's keys.
        self.prefix = key_prefix_for(prefix)
        self._begin = client.register_script(BEGIN_ATTEMPT)
        self._succeeded = client.register_script(SUCCEEDED)

    def _account_keys(self, account: str, kind: str) -> list[str]:
        who = _digest(account)
        return [
            f"{self.prefix}lock:{who}",
            f"{self.prefix}fails:{kind}:{who}",
            f"{self.prefix}consecutive:{who}",
            f"{self.prefix}level:{who}",
        ]

    def _ip_keys(self, ip: str) -> list[str]:
        return [f"{self.prefix}ip-fails:{_digest(ip)}", f"{self.prefix}ip-block:{_digest(ip)}"]

    async def begin(self, account: str, kind: str, ip: str, args: list[int]) -> tuple[bool, str, int]:
        allowed, reason, wait = await self._begin(
            keys=[*self._account_keys(account, kind), *self._ip_keys(ip)], args=args
        )
        return bool(allowed), reason.decode() if isinstance(reason, bytes) else reason, int(wait)

    async def succeeded(self, account: str, kind: str, ip: str) -> None:
        _lock, password_fails, consecutive, level = self._account_keys(account, "password")
        otp_fails = self._account_keys(account, "otp")[1]
        # A right password alone forgives only wrong passwords: someone who has stolen it must
        # not be able to reset the code counters, the growing waits or the 100-in-a-row cap.
        forgiven = [password_fails] if kind == "password" else [password_fails, otp_fails, consecutive, level]
        await self._succeeded(keys=[self._ip_keys(ip)[0], *forgiven])

    async def unlock(self, account: str) -> bool:
        keys = [*self._account_keys(account, "password"), self._account_keys(account, "otp")[1]]
        was_locked = bool(await self.client.exists(keys[0]))
        await self.client.delete(*keys)
        return was_locked

    async def is_locked(self, account: str) -> bool:
        return bool(await self.client.exists(self._account_keys(account, "password")[0]))

    async def lock_seconds_left(self, account: str) -> int | None:
        """None: not locked; -1: locked until an unlock; else the seconds the lock has left."""
        ttl = int(await self.client.ttl(self._account_keys(account, "password")[0]))
        return None if ttl == -2 else ttl
