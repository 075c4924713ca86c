"""Postgres pools and versioned SQL migrations, one schema per service."""

import logging
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)


# A Postgres that is down answers the customer with the calm 503 page within seconds: connecting
# and each query are bounded, never a request that hangs.
CONNECT_TIMEOUT_SECONDS = 5.0
COMMAND_TIMEOUT_SECONDS = 10.0


async def keep_session(connection: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool, beyond asyncpg's own rollback of a
    transaction left open: nothing. Our pooled connections never SET, LISTEN, DECLARE ... WITH
    HOLD or take advisory locks (the migrator's lock is on a connection of its own), so asyncpg's
    default reset (`SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`) would be
    one more round trip after every query for nothing."""


async def create_pool(dsn: str, schema: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool that outlives a Postgres restart: a connection the server closed is replaced on acquire."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        timeout=CONNECT_TIMEOUT_SECONDS,
        command_timeout=COMMAND_TIMEOUT_SECONDS,
        server_settings={"search_path": schema, "application_name": f"sso-{schema}"},
        reset=keep_session,
    )
    assert pool is not None
    return pool


async def migrate(dsn: str, schema: str, migrations_dir: Path) -> list[str]:
    """Apply the numbered *.sql files not yet applied, each in its own transaction."""
    applied_now: list[str] = []
    connection = await asyncpg.connect(dsn)
    try:
        # One migrator at a time per schema, even with many replicas starting together.
        await connection.execute("SELECT pg_advisory_lock(hashtext($1))", f"migrate:{schema}")
        await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await connection.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations '
            "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            row["version"]
            for row in await connection.fetch(f'SELECT version FROM "{schema}".schema_migrations')  # noqa: S608
        }
        for path in sorted(migrations_dir.glob("*.sql")):  # noqa: ASYNC240 (start-up only)
            if path.stem in done:
                continue
            async with connection.transaction():
                await connection.execute(f'SET LOCAL search_path TO "{schema}"')
                await connection.execute(path.read_text())
                await connection.execute(
                    f'INSERT INTO "{schema}".schema_migrations (version) VALUES ($1)',  # noqa: S608
                    path.stem,
                )
            log.info("applied migration %s.%s", schema, path.stem)
            applied_now.append(path.stem)
        await connection.execute("SELECT pg_advisory_unlock(hashtext($1))", f"migrate:{schema}")
    finally:
        await connection.close()
    return applied_now
