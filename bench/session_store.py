"""The session store at scale, on a throwaway redis-server: bytes per session and check latency.

Filling 1M sessions one create at a time would take many minutes, so the store's own create
code runs once for a template session against the real server while the Redis commands it
sends are recorded; the bench then replays those commands with each session's own ids
substituted (same lengths, so the wire format stays valid) through `redis-cli --pipe`. Whatever
key layout the store has, the filled sessions have it too; a spot check through the store's own
lookups proves the replayed sessions are real ones.
"""

import os
import random
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Connection, ConnectionPool, Redis

from devstack import datastores
from services.auth.device_label import device_label
from services.common.clock import SystemClock
from services.session.sessions import Sessions
from services.session.store import CREATE_PORTAL_SCRIPT, CREATE_SSO_SCRIPT, SessionStore, ref_of

from .load import percentile

PREFIX = "bench:"
SSO_LIFETIME = 43200
# What every SSO session keeps for the Security page, at about its longest: the label auth makes
# of a Samsung phone's User-Agent ("Samsung Internet on Android", 27 of at most 32 characters) and
# a 15-character IPv4 address. (An IPv6 address is up to 39: docs/performance.md gives both.)
DEVICE = device_label(
    "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36"
)
ADDRESS = "203.113.254.254"
# Commands that read or frame a transaction: a replay needs only what a create writes.
NOT_WRITES = {
    b"WATCH", b"UNWATCH", b"MULTI", b"EXEC", b"DISCARD", b"PTTL", b"TTL", b"GET", b"MGET", b"HGET",
    b"HGETALL", b"HMGET", b"EXISTS", b"SMEMBERS", b"SISMEMBER", b"SCARD", b"ZCARD", b"ZSCORE",
    b"PING", b"HELLO", b"CLIENT", b"SELECT", b"INFO", b"SCRIPT", b"TYPE",
}  # fmt: skip
# Sums MEMORY USAGE over one SCAN batch of the keys under a prefix, inside the server.
MEMORY_OF_BATCH = """
local reply = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', 1000)
local total = 0
for _, key in ipairs(reply[2]) do
  total = total + redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')
end
return {reply[1], total, #reply[2]}
"""


class StoreBenchError(RuntimeError):
    pass


class _Recorder:
    """Collects the wire bytes of every command a recording connection sends."""

    def __init__(self) -> None:
        self.commands: list[tuple[bytes, bytes]] = []
        self.on = False


def _recording_connection(recorder: _Recorder) -> type[Connection]:
    class RecordingConnection(Connection):
        def pack_command(self, *args: Any) -> list[bytes]:
            packed = super().pack_command(*args)
            if recorder.on:
                name = args[0].split()[0] if isinstance(args[0], bytes) else str(args[0]).split()[0].encode()
                recorder.commands.append((name.upper(), b"".join(packed)))
            return packed

    return RecordingConnection


@dataclass(frozen=True)
class Template:
    """A session's write commands, cut where its own ids go: pieces[0] id pieces[1] id ... pieces[-1]."""

    pieces: list[bytes]
    slots: list[str]
    commands: int

    @classmethod
    def cut(cls, wire: bytes, values: dict[str, str], commands: int) -> "Template":
        for name, value in values.items():
            if value.encode() not in wire:
                raise StoreBenchError(
                    f"the store's commands do not hold the session's {name}: layout not understood"
                )
        by_value = {value.encode(): name for name, value in values.items()}
        pattern = re.compile(b"|".join(re.escape(value) for value in sorted(by_value, key=len, reverse=True)))
        pieces, slots, start = [], [], 0
        for match in pattern.finditer(wire):
            pieces.append(wire[start : match.start()])
            slots.append(by_value[match.group(0)])
            start = match.end()
        pieces.append(wire[start:])
        return cls(pieces, slots, commands)

    def fill(self, values: dict[str, bytes]) -> bytes:
        out = [self.pieces[0]]
        for slot, piece in zip(self.slots, self.pieces[1:], strict=True):
            out.append(values[slot])
            out.append(piece)
        return b"".join(out)


def _uuid_text(hex32: str) -> str:
    """32 hex digits written as a UUID is (as auth's user ids are), without building one."""
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


def _fixed(prefix: str, n: int, width: int) -> str:
    return f"{prefix}{n:0{width - len(prefix)}d}"


@dataclass(frozen=True)
class SessionIds:
    """The ids of the n-th bench session; each as long as the real one, so templates stay valid."""

    sso_id: str
    portal_id: str
    user_id: str
    username: str

    @classmethod
    def of(cls, run: str, n: int) -> "SessionIds":
        return cls(
            sso_id=_fixed(f"s{run}", n, 43),
            portal_id=_fixed(f"p{run}", n, 43),
            user_id=_uuid_text(f"{run}{n:024x}"),
            username=f"cust{n:08x}",
        )

    def wire_slots(self) -> dict[str, bytes]:
        return {name: value.encode() for name, value in self.slots().items()}

    def slots(self) -> dict[str, str]:
        # An SSO session's sid is its ref (services.session.store.ref_of).
        return {
            "sso_ref": ref_of(self.sso_id),
            "portal_ref": ref_of(self.portal_id),
            "user_id": self.user_id,
            "username": self.username,
        }


class StoreBench:
    def __init__(self, state_dir: Path, name: str, max_memory: str) -> None:
        """Starts a throwaway redis-server of its own on a free loopback port, bounded in memory."""
        self.server = datastores.start_throwaway_redis(
            state_dir, name=name, extra_args=("--maxmemory", max_memory, "--maxmemory-policy", "noeviction")
        )
        self.recorder = _Recorder()
        # As the session service opens it (services.session.admin.open_redis), but recording.
        self.redis = Redis(
            connection_pool=ConnectionPool(
                host="127.0.0.1",
                port=self.server["port"],
                decode_responses=True,
                connection_class=_recording_connection(self.recorder),
            )
        )
        self.store = SessionStore(self.redis, PREFIX)
        self.run_id = os.urandom(4).hex()
        self.filled = 0  # sessions 0..filled-1 of this run exist
        self.sso_template: Template | None = None
        self.portal_template: Template | None = None

    def _sessions(self, ids: Iterator[str]) -> Sessions:
        return Sessions(
            self.store,
            SystemClock(),
            sso_lifetime_seconds=SSO_LIFETIME,
            portal_lifetime_seconds=SSO_LIFETIME,
            new_id=lambda: next(ids),
        )

    def _recorded_writes(self) -> tuple[bytes, int]:
        writes = [wire for name, wire in self.recorder.commands if name not in NOT_WRITES]
        self.recorder.commands.clear()
        return b"".join(writes), len(writes)

    async def record_templates(self) -> None:
        """Runs the store's own creates once, recording what they send."""
        template = SessionIds.of(os.urandom(4).hex(), 0)
        sessions = self._sessions(iter([template.sso_id, template.portal_id]))
        # Loaded first, so the recording holds each create's one EVALSHA, not a NOSCRIPT try and
        # its retry.
        for script in (CREATE_SSO_SCRIPT, CREATE_PORTAL_SCRIPT):
            await self.redis.script_load(script)
        self.recorder.on = True
        try:
            sso = await sessions.start_sso(
                template.user_id, template.username, ["pwd", "otp"], device=DEVICE, address=ADDRESS
            )
            sso_wire, sso_count = self._recorded_writes()
            portal = await sessions.start_portal(sso.sid, template.user_id)
            portal_wire, portal_count = self._recorded_writes()
        finally:
            self.recorder.on = False
        if portal is None or sso.sid != template.slots()["sso_ref"]:
            raise StoreBenchError("the template portal session was refused, or the sid is not the ref")
        slots = template.slots()
        self.sso_template = Template.cut(
            sso_wire, {k: slots[k] for k in ("sso_ref", "user_id", "username")}, sso_count
        )
        # A portal session names its own ref and whatever of its parent's the layout keeps with it.
        portal_slots = {k: v for k, v in slots.items() if k == "portal_ref" or v.encode() in portal_wire}
        self.portal_template = Template.cut(portal_wire, portal_slots, portal_count)
        await self.redis.flushall()

    def _pipe(self, chunks: Iterator[bytes]) -> int:
        """Sends the wire bytes through redis-cli --pipe; returns the number of replies."""
        redis_cli = shutil.which("redis-cli")
        if redis_cli is None:
            raise StoreBenchError("redis-cli not found")
        process = subprocess.Popen(
            [redis_cli, "-h", "127.0.0.1", "-p", str(self.server["port"]), "--pipe", "--pipe-timeout", "60"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        assert process.stdin is not None and process.stdout is not None
        for chunk in chunks:
            process.stdin.write(chunk)
        process.stdin.close()
        output = process.stdout.read().decode(errors="replace")
        process.wait(timeout=120)
        summary = re.search(r"errors: (\d+), replies: (\d+)", output)
        if process.returncode != 0 or summary is None or summary.group(1) != "0":
            raise StoreBenchError(f"redis-cli --pipe failed: {output[-1000:]}")
        return int(summary.group(2))

    def _wire(self, templates: list[Template], first: int, last: int, batch: int = 5000) -> Iterator[bytes]:
        for start in range(first, last, batch):
            pieces: list[bytes] = []
            for n in range(start, min(start + batch, last)):
                slots = SessionIds.of(self.run_id, n).wire_slots()
                pieces.extend(template.fill(slots) for template in templates)
            yield b"".join(pieces)

    def fill(self, templates: list[Template], first: int, last: int) -> None:
        """Sessions first..last-1 of this run, made by replaying the templates."""
        replies = self._pipe(self._wire(templates, first, last))
        expected = (last - first) * sum(template.commands for template in templates)
        if replies != expected:
            raise StoreBenchError(f"{replies} replies where {expected} were due")

    def fill_sso(self, first: int, last: int) -> None:
        assert self.sso_template is not None
        self.fill([self.sso_template], first, last)

    def fill_portal(self, first: int, last: int) -> None:
        assert self.portal_template is not None
        self.fill([self.portal_template], first, last)

    async def fill_to(self, count: int) -> None:
        """Both an SSO session and a portal session under it for sessions filled..count-1."""
        assert self.sso_template is not None and self.portal_template is not None
        self.fill([self.sso_template, self.portal_template], self.filled, count)
        self.filled = count
        await self.spot_check()

    async def spot_check(self, samples: int = 20) -> None:
        sessions = self._sessions(iter(()))
        for n in random.sample(range(self.filled), min(samples, self.filled)):  # noqa: S311 (a sample)
            ids = SessionIds.of(self.run_id, n)
            sso = await sessions.find_sso(ids.sso_id)
            portal = await sessions.find_portal(ids.portal_id)
            if sso is None or portal is None or (sso.username, portal.username) != (ids.username,) * 2:
                raise StoreBenchError(f"replayed session {n} is not found by the store's own lookups")
            record = await self.store.get_sso_by_sid(sso.sid)
            if record is None or (record.device, record.address) != (DEVICE, ADDRESS):
                raise StoreBenchError(f"replayed session {n} lacks the Security page's device and address")

    async def memory_bytes(self) -> tuple[int, int]:
        """MEMORY USAGE summed over every key under the prefix, and how many keys there are."""
        script = self.redis.register_script(MEMORY_OF_BATCH)
        cursor, total, keys = "0", 0, 0
        # The store's own prefix, as it writes it (a hash tag, say).
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self.store.prefix) + "*"
        while True:
            cursor, used, found = await script(args=[cursor, pattern])
            total, keys = total + int(used), keys + int(found)
            if str(cursor) == "0":
                return total, keys

    async def used_memory(self) -> int:
        return int((await self.redis.info("memory"))["used_memory"])

    async def check_samples(self, checks: int, check: Callable[[Sessions, SessionIds], Any]) -> list[float]:
        """Milliseconds each of `checks` calls of `check` took, on random live sessions, one at a time."""
        sessions = self._sessions(iter(()))
        samples = []
        for n in random.choices(range(self.filled), k=checks):  # noqa: S311 (a sample, not a secret)
            ids = SessionIds.of(self.run_id, n)
            started = time.perf_counter()
            found = await check(sessions, ids)
            samples.append(1000 * (time.perf_counter() - started))
            if found is None:
                raise StoreBenchError(f"session {n} not found during the latency run")
        return samples

    async def aclose(self) -> None:
        await self.redis.aclose()


async def portal_check(sessions: Sessions, ids: SessionIds) -> object:
    """What every portal page asks: the portal session, and that its SSO session still lives."""
    return await sessions.find_portal(ids.portal_id)


async def sso_check(sessions: Sessions, ids: SessionIds) -> object:
    """What a Login with a live SSO session asks."""
    return await sessions.find_sso(ids.sso_id)


def _summary(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": percentile(samples, 50), "p99_ms": percentile(samples, 99), "checks": len(samples)}


async def _memory_per_session(bench: StoreBench, sessions: int) -> dict[str, float]:
    """MEMORY USAGE over all keys: SSO sessions alone, then with a portal session under each."""
    empty = await bench.used_memory()
    bench.fill_sso(0, sessions)
    sso_bytes, sso_keys = await bench.memory_bytes()
    after_sso = await bench.used_memory()
    bench.fill_portal(0, sessions)
    bench.filled = sessions
    await bench.spot_check()
    both_bytes, both_keys = await bench.memory_bytes()
    after_both = await bench.used_memory()
    return {
        "sessions": sessions,
        "sso_bytes_per_session": sso_bytes / sessions,
        "portal_bytes_per_session": (both_bytes - sso_bytes) / sessions,
        "sso_keys_per_session": sso_keys / sessions,
        "portal_keys_per_session": (both_keys - sso_keys) / sessions,
        # INFO's used_memory, allocator and keyspace overhead included, for comparison
        "sso_used_memory_per_session": (after_sso - empty) / sessions,
        "portal_used_memory_per_session": (after_both - after_sso) / sessions,
    }


async def measure(
    state_dir: Path,
    *,
    memory_sessions: int,
    small: int,
    large: int,
    checks: int,
    max_memory: str,
) -> dict[str, Any]:
    """Bytes per session at `memory_sessions` (<= large); check latency with `small` and `large` sessions.

    The two sizes live in two servers side by side and are checked in alternating rounds, so
    a load spike from anything else on the machine falls on both alike.
    """
    benches: list[StoreBench] = []
    try:
        for name in ("redis-small", "redis-large"):
            benches.append(StoreBench(state_dir, name, max_memory))
            await benches[-1].record_templates()
        small_bench, large_bench = benches
        assert small_bench.sso_template is not None and small_bench.portal_template is not None
        result: dict[str, Any] = {
            "commands_per_sso_session": small_bench.sso_template.commands,
            "commands_per_portal_session": small_bench.portal_template.commands,
            # on the way to the large size: its first sessions are these
            "memory": await _memory_per_session(large_bench, memory_sessions),
        }
        fill_seconds = {}
        for bench, size in ((small_bench, small), (large_bench, large)):
            started = time.perf_counter()
            await bench.fill_to(size)
            fill_seconds[size] = time.perf_counter() - started
        rounds = 10
        samples: dict[tuple[int, str], list[float]] = {}
        for _ in range(rounds):
            for bench, size in ((small_bench, small), (large_bench, large)):
                for name, check in (("portal_check", portal_check), ("sso_check", sso_check)):
                    done = await bench.check_samples(max(1, checks // rounds), check)
                    samples.setdefault((size, name), []).extend(done)
        result["latency"] = {
            str(size): {
                "sessions": size,
                "fill_seconds": fill_seconds[size],
                "portal_check": _summary(samples[(size, "portal_check")]),
                "sso_check": _summary(samples[(size, "sso_check")]),
            }
            for size in (small, large)
        }
        return result
    finally:
        for bench in benches:
            await bench.aclose()
            datastores.stop_throwaway_redis(bench.server)
