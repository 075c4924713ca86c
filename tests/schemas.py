"""A Postgres schema of a test's own on the local Postgres: migrated, queried through the pool the
services use (services.common.db), then dropped, so that runs never see each other's rows."""

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from devstack.datastores import LOCAL_POSTGRES_URL
from services.common import db


@asynccontextmanager
async def migrated_pool(
    name: str, migrations_dir: Path, *, min_size: int = 1, max_size: int
) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a new schema `<name>_<random>` with these migrations; afterwards the pool is
    closed and the schema dropped."""
    schema = f"{name}_{secrets.token_hex(4)}"
    await db.migrate(LOCAL_POSTGRES_URL, schema, migrations_dir)
    try:
        pool = await db.create_pool(LOCAL_POSTGRES_URL, schema, min_size=min_size, max_size=max_size)
        try:
            yield pool
        finally:
            await pool.close()
    finally:
        connection = await asyncpg.connect(LOCAL_POSTGRES_URL)
        try:
            await connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            await connection.close()
