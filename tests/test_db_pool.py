"""The asyncpg pool every service queries through (services.common.db), on the real Postgres."""

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from devstack.datastores import LOCAL_POSTGRES_URL
from services.common import db


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    # One connection, so each acquire gets back the very connection the last one released.
    pool = await db.create_pool(LOCAL_POSTGRES_URL, f"pool_test_{secrets.token_hex(4)}", max_size=1)
    try:
        yield pool
    finally:
        await pool.close()


def log_queries(connection: asyncpg.Connection, into: list[str]) -> None:
    connection.add_query_logger(lambda record: into.append(record.query))


async def test_a_connection_goes_back_to_the_pool_without_a_reset_query(pool: asyncpg.Pool) -> None:
    sent: list[str] = []
    async with pool.acquire() as connection:
        log_queries(connection, sent)
        assert await connection.fetchval("SELECT 1") == 1
    async with pool.acquire() as connection:
        assert await connection.fetchval("SELECT 2") == 2
    # asyncpg's default reset would add "SELECT pg_advisory_unlock_all(); ... RESET ALL;" after each.
    assert sent == ["SELECT 1", "SELECT 2"]


async def test_a_transaction_left_open_is_rolled_back_before_the_next_use(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as connection:
        await connection.execute("CREATE TEMP TABLE left_open (n int)")
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute("INSERT INTO left_open VALUES (1)")
        # released without commit or rollback, as a handler that raised half-way would leave it
    async with pool.acquire() as connection:
        assert not connection.is_in_transaction()
        assert await connection.fetchval("SELECT count(*) FROM left_open") == 0


async def test_the_pool_keeps_its_schema_on_every_connection(pool: asyncpg.Pool) -> None:
    first = await pool.fetchval("SHOW search_path")
    async with pool.acquire() as connection:
        await connection.fetchval("SELECT 1")
    assert await pool.fetchval("SHOW search_path") == first
    assert first.startswith("pool_test_")
