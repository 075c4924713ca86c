"""Postgres and Redis for the stack: the configured ones, the local ones, or throwaway ones."""

import asyncio
import glob
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis

from .ports import free_port, port_answers, port_in_use

LOCAL_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

T = TypeVar("T")


class DatastoreError(RuntimeError):
    pass


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, even when the caller is inside an event loop (async tests)."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(asyncio.run, coroutine).result()


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def database_of(url: str) -> str | None:
    return urlsplit(url).path.lstrip("/") or None


def _checked_name(database: str) -> str:
    # It goes into CREATE/DROP DATABASE, which take no parameters.
    if not DATABASE_NAME.match(database):
        raise DatastoreError(f"not a plain database name: {database!r}")
    return database


# Postgres


async def _postgres_answers(url: str) -> bool:
    try:
        connection = await asyncpg.connect(url, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await connection.close()
    return True


def local_postgres_answers() -> bool:
    return port_answers("127.0.0.1", 5432) and run_async(_postgres_answers(LOCAL_POSTGRES_URL))


async def _ensure_database(url: str) -> bool:
    database = _checked_name(database_of(url) or "")
    try:
        connection = await asyncpg.connect(url, timeout=10)
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(with_database(url, "postgres"), timeout=10)
        try:
            await admin.execute(f'CREATE DATABASE "{database}"')
        except asyncpg.DuplicateDatabaseError:
            return False  # made by someone else in the meantime: just as good
        finally:
            await admin.close()
        return True
    await connection.close()
    return False


def ensure_database(url: str) -> bool:
    """Create the database `url` names when it does not exist yet; True when this call made it."""
    return run_async(_ensure_database(url))


async def _drop_database(url: str) -> None:
    database = _checked_name(database_of(url) or "")
    admin = await asyncpg.connect(with_database(url, "postgres"), timeout=10)
    try:
        # FORCE: a pool of a service that has not quite exited must not keep it alive.
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await admin.close()


def drop_database(url: str) -> None:
    run_async(_drop_database(url))


def _postgres_bin_dir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(Path(path).parent.name))
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise DatastoreError(
            f"{' and '.join(packages)} not found: install them, or set DATABASE_URL and REDIS_URL"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", *packages], check=True, env=env)


def _as_user(user: str | None, command: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *command] if user else command


def start_throwaway_postgres(state_dir: Path) -> dict[str, Any]:
    """A private Postgres on a free port; returns what stop_throwaway_postgres needs."""
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        _apt_install("postgresql", "redis-server")
        bin_dir = _postgres_bin_dir()
        if bin_dir is None:
            raise DatastoreError("initdb not found even after installing postgresql")
    # Postgres refuses to run as root: run it as the postgres user, in a directory of its own
    # outside state_dir, whose parents (a pytest temp dir, say) it may not be allowed to enter.
    run_as = "postgres" if os.geteuid() == 0 else None
    data_dir = Path(tempfile.mkdtemp(prefix="sso-postgres-", dir=None if run_as else state_dir))
    if run_as:
        shutil.chown(data_dir, run_as, run_as)
    port = free_port()
    initialized = subprocess.run(
        _as_user(
            run_as,
            [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-sync"],
        ),
        check=False, cwd="/", capture_output=True, text=True,
    )  # fmt: skip
    if initialized.returncode != 0:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise DatastoreError(f"initdb failed\n{initialized.stdout}{initialized.stderr}")
    server_options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={data_dir} -c fsync=off"
    )
    record = {
        "url": f"postgresql://postgres@127.0.0.1:{port}/postgres",
        "bin_dir": str(bin_dir),
        "data_dir": str(data_dir),
        "run_as": run_as,
        "options": server_options,
    }
    try:
        resume_postgres(record)
    except DatastoreError:
        stop_throwaway_postgres(record)
        raise
    return record


def _pg_ctl(record: dict[str, Any], *args: str) -> subprocess.CompletedProcess[bytes]:
    command = [str(Path(record["bin_dir"]) / "pg_ctl"), "-D", record["data_dir"], *args]
    return subprocess.run(
        _as_user(record["run_as"], command), check=False, cwd="/", stdout=subprocess.DEVNULL
    )


def pause_postgres(record: dict[str, Any]) -> None:
    """Stop a throwaway Postgres but keep its data, as an outage would (fast: clients are cut off)."""
    _pg_ctl(record, "-m", "fast", "-w", "stop")


def resume_postgres(record: dict[str, Any]) -> None:
    """Start a throwaway Postgres (again) on its port, with the data it had."""
    data_dir = Path(record["data_dir"])
    if _pg_ctl(record, "-l", str(data_dir / "server.log"), "-o", record["options"], "-w", "start").returncode:
        try:
            log = (data_dir / "server.log").read_text(errors="replace")
        except OSError:
            log = ""
        raise DatastoreError(f"throwaway postgres did not start\n{log}")


def stop_throwaway_postgres(record: dict[str, Any]) -> None:
    pause_postgres(record)
    shutil.rmtree(record["data_dir"], ignore_errors=True)


# Redis


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping())
    except (redis.RedisError, OSError):
        return False


def local_redis_answers() -> bool:
    return port_answers("127.0.0.1", 6379) and redis_answers(LOCAL_REDIS_URL)


def start_throwaway_redis(
    state_dir: Path, *, name: str = "redis", extra_args: tuple[str, ...] = (), port: int | None = None
) -> dict[str, Any]:
    """A private Redis on a free port; extra_args e.g. ("--appendonly", "yes") to survive restarts."""
    if not shutil.which("redis-server"):
        _apt_install("postgresql", "redis-server")
    redis_dir = state_dir / name
    redis_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    record = {
        "url": f"redis://127.0.0.1:{port}/0",
        "port": port,
        "dir": str(redis_dir),
        "pid_file": str(redis_dir / "redis.pid"),
        "args": ["--save", "", "--appendonly", "no", *extra_args],
    }
    resume_redis(record)
    return record


def resume_redis(record: dict[str, Any], *, mode: tuple[str, ...] = ()) -> None:
    """Start a throwaway Redis (again) on its port; mode ("--sentinel",) makes it a sentinel."""
    redis_dir = Path(record["dir"])
    # Options later on the command line win, so extra_args can override the defaults.
    subprocess.run(
        ["redis-server", *mode, "--bind", "127.0.0.1", "--port", str(record["port"]),
         "--daemonize", "yes", "--dir", str(redis_dir), "--pidfile", record["pid_file"],
         "--logfile", str(redis_dir / "redis.log"), *record["args"]],
        check=True,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not redis_answers(record["url"]):
        if time.monotonic() > deadline:
            stop_throwaway_redis(record)
            raise DatastoreError(f"throwaway redis did not answer; see {redis_dir / 'redis.log'}")
        time.sleep(0.05)


def stop_throwaway_redis(record: dict[str, Any], sig: signal.Signals = signal.SIGTERM) -> None:
    """Stop a throwaway Redis (SIGKILL: as a crash, without saving); its directory stays."""
    try:
        pid = int(Path(record["pid_file"]).read_text())
        os.kill(pid, sig)
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    # A killed server leaves its pid file behind; the next start must not read a stale one.
    Path(record["pid_file"]).unlink(missing_ok=True)


def start_throwaway_sentinel(
    state_dir: Path, name: str, master_name: str, master_port: int
) -> dict[str, Any]:
    """A Redis Sentinel on a free port watching the master; quorum 2, so run three of them."""
    sentinel_dir = state_dir / name
    sentinel_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = sentinel_dir / "sentinel.conf"  # Sentinel rewrites its config file: its own, here
    config.write_text(
        f"sentinel monitor {master_name} 127.0.0.1 {master_port} 2\n"
        f"sentinel down-after-milliseconds {master_name} 1000\n"
        f"sentinel failover-timeout {master_name} 10000\n"
        f"sentinel parallel-syncs {master_name} 1\n"
    )
    record = {
        "url": f"redis://127.0.0.1:{port}/0",
        "port": port,
        "dir": str(sentinel_dir),
        "pid_file": str(sentinel_dir / "redis.pid"),
        "args": [],
    }
    resume_redis(record, mode=(str(config), "--sentinel"))
    return record


def start_throwaway_cluster(state_dir: Path, masters: int = 3) -> list[dict[str, Any]]:
    """A Redis Cluster of `masters` masters (no replicas) on free ports; returns one record each."""
    cluster_args = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "2000")  # fmt: skip
    nodes: list[dict[str, Any]] = []
    try:
        for n, port in enumerate(_cluster_ports(masters)):
            nodes.append(
                start_throwaway_redis(state_dir, name=f"cluster-{n}", extra_args=cluster_args, port=port)
            )
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{node['port']}" for node in nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not all(_cluster_ok(node["url"]) for node in nodes):
            if time.monotonic() > deadline:
                raise DatastoreError("the throwaway Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)
    except BaseException:
        for node in nodes:
            stop_throwaway_redis(node)
        raise
    return nodes


def _cluster_ports(count: int) -> list[int]:
    """Free ports whose cluster bus port (the port + 10000, as Redis insists) is free too."""
    chosen: list[int] = []
    for port in random.sample(range(20000, 55000), 2000):
        if len(chosen) == count:
            break
        if not port_in_use(port) and not port_in_use(port + 10000):
            chosen.append(port)
    if len(chosen) < count:
        raise DatastoreError("no free ports for a throwaway Redis Cluster")
    return chosen


def _cluster_ok(url: str) -> bool:
    with redis.Redis.from_url(url, socket_timeout=2, decode_responses=True) as client:
        return client.cluster("INFO").get("cluster_state") == "ok"  # type: ignore[no-any-return]


def delete_redis_keys(url: str, prefix: str) -> int:
    """Delete every key under the stack's prefix; other stacks sharing the server keep theirs."""
    client = redis.Redis.from_url(url)
    escaped = re.sub(r"([*?\[\]\\])", r"\\\1", prefix)
    deleted = 0
    # The stores put their prefix in a hash tag ("{sso:}...", auth's "{sso:auth:}..."), but
    # keys written before that, or by anyone else, start with the bare prefix.
    # One key per DEL, pipelined: on a Redis Cluster node the stack's two stores (two hash tags,
    # so two slots) may share the node, and a DEL of keys from two slots is refused (CROSSSLOT).
    for pattern in (f"{escaped}*", f"{{{escaped}*"):
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=500):
            batch.append(key)
            if len(batch) >= 500:
                deleted += _delete_each(client, batch)
                batch = []
        if batch:
            deleted += _delete_each(client, batch)
    return deleted


def _delete_each(client: redis.Redis, keys: list[bytes]) -> int:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.delete(key)
    return sum(int(count) for count in pipe.execute())
