"""auth's sign-in failure counters in Redis: one Lua script per decision, so replicas agree.

Two kinds of browser are counted apart (OWASP's "device cookies"): a browser whose device
cookie shows it completed a sign-in for the account counts on its own keys; every other
browser counts on the account's keys for unknown browsers. A known browser whose own keys
are locked is just another unknown browser.
"""

import hashlib

from services.common.redis_client import RedisClient, key_prefix_for

# A device's "until unlock" lock needs no operator: the device is then merely unknown, so it
# may expire with the longest-lived device cookie.
DEVICE_KEY_TTL_SECONDS = 400 * 24 * 3600

# Counts the attempt before the guess is checked. Returns {allowed, reason, lock_seconds, browser}:
# lock_seconds is the wait of a refused attempt (-1: until an unlock), 0 for an allowed one.
# The address is counted too, but never refuses: past its limit it is only marked noisy.
BEGIN_ATTEMPT = """
local limit, window, base, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local max_consecutive, ip_limit = tonumber(ARGV[5]), tonumber(ARGV[6])
local known, device_ttl = ARGV[7] == '1', tonumber(ARGV[8])
local first, browser = 1, 'unknown'
if known and redis.call('EXISTS', KEYS[5]) == 0 then first, browser = 5, 'known' end
local lock, fails, consecutive, level = KEYS[first], KEYS[first + 1], KEYS[first + 2], KEYS[first + 3]
if redis.call('EXISTS', lock) == 1 then
  -- The seconds the lock has left; -1: until an unlock (a device's has an expiry all the same).
  local left = redis.call('TTL', lock)
  if redis.call('GET', lock) == 'until-unlock' then left = -1 end
  return {0, 'locked', left, browser}
end
local reason = 'ok'
local ip_count = redis.call('INCR', KEYS[9])
if ip_count == 1 then redis.call('EXPIRE', KEYS[9], window) end
if ip_count > ip_limit and redis.call('SET', KEYS[10], '1', 'NX', 'EX', window) then reason = 'ip_noisy' end
local in_a_row = redis.call('INCR', consecutive)
redis.call('EXPIRE', consecutive, 2592000)
if in_a_row > max_consecutive then
  if browser == 'known' then
    redis.call('SET', lock, 'until-unlock', 'EX', device_ttl)
  else
    redis.call('SET', lock, 'until-unlock')
  end
  return {0, 'locked_until_unlock', -1, browser}
end
local count = redis.call('INCR', fails)
if count == 1 then redis.call('EXPIRE', fails, window) end
if count > limit then
  local times = redis.call('INCR', level)
  redis.call('EXPIRE', level, 86400)
  local wait = math.min(base * 2 ^ (times - 1), max_wait)
  redis.call('SET', lock, 'temporary', 'EX', wait)
  redis.call('DEL', fails)
  return {0, 'locked_now', wait, browser}
end
return {1, reason, 0, browser}
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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


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

    def _device_keys(self, account: str, kind: str, device: str | None) -> list[str]:
        who = f"{_digest(account)}:{_digest(device or '')}"
        return [
            f"{self.prefix}device-lock:{who}",
            f"{self.prefix}device-fails:{kind}:{who}",
            f"{self.prefix}device-consecutive:{who}",
            f"{self.prefix}device-level:{who}",
        ]

    def _browser_keys(self, account: str, kind: str, device: str | None) -> list[str]:
        return self._device_keys(account, kind, device) if device else self._account_keys(account, kind)

    def _ip_keys(self, ip: str) -> list[str]:
        return [f"{self.prefix}ip-fails:{_digest(ip)}", f"{self.prefix}ip-noisy:{_digest(ip)}"]

    async def begin(
        self, account: str, kind: str, ip: str, device: str | None, args: list[int]
    ) -> tuple[bool, str, int, bool]:
        """(allowed, reason, lock seconds, counted as the known browser `device`)."""
        keys = [
            *self._account_keys(account, kind),
            *self._device_keys(account, kind, device),
            *self._ip_keys(ip),
        ]
        allowed, reason, wait, browser = await self._begin(
            keys=keys, args=[*args, 1 if device else 0, DEVICE_KEY_TTL_SECONDS]
        )
        return bool(allowed), _text(reason), int(wait), _text(browser) == "known"

    async def succeeded(self, account: str, kind: str, ip: str, device: str | None) -> None:
        """Forgives the counters of the browser the attempt came from: a known browser's right
        code leaves the unknown browsers' lock alone, for that is where an attacker is."""
        lock, password_fails, consecutive, level = self._browser_keys(account, "password", device)
        otp_fails = self._browser_keys(account, "otp", device)[1]
        # A right password alone forgives only wrong passwords: someone who has stolen it must
        # not be able to reset the code counters, the growing waits or the 100-in-a-row cap.
        forgiven = [password_fails] if kind == "password" else [password_fails, otp_fails, consecutive, level]
        if device and kind != "password":
            forgiven.append(lock)  # a device locked by wrong guesses is known again once it signs in
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
