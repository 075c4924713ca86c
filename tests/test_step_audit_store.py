"""auth's step consumption and its audit row in one statement, on the real Postgres: the first
use consumes and writes, a replay writes nothing (or, for the password, the attempt's row only)."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from services.auth.app import MIGRATIONS_DIR
from services.auth.store import AuthStore
from services.common.step_tokens import StepConsumption

from .schemas import migrated_pool

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
async def store() -> AsyncIterator[AuthStore]:
    async with migrated_pool("step_audit_test", MIGRATIONS_DIR, max_size=2) as pool:
        yield AuthStore(pool)


def step(jti: str, now: datetime = NOW) -> StepConsumption:
    return StepConsumption(jti, NOW + timedelta(seconds=605), now)


async def rows(store: AuthStore) -> list[tuple[str, str, str | None, str | None]]:
    found = await store.pool.fetch("SELECT event, outcome, user_id, username FROM audit_event ORDER BY id")
    return [(row["event"], row["outcome"], row["user_id"], row["username"]) for row in found]


async def test_a_step_is_consumed_and_audited_once_and_its_replay_writes_nothing(store: AuthStore) -> None:
    user_id = await store.add_user("Alice", "alice", "hash")
    first = await store.consume_step_and_record_audit(
        step("j1"), "sign_in.username", "submitted", "10.0.0.1", "ua", username_key="alice"
    )
    replay = await store.consume_step_and_record_audit(
        step("j1"), "sign_in.username", "submitted", "10.0.0.1", "ua", username_key="alice"
    )
    unknown = await store.consume_step_and_record_audit(
        step("j2"), "sign_in.username", "submitted", "10.0.0.1", "ua", username_key="nobody"
    )
    assert (first, replay, unknown) == (True, False, True)
    assert await rows(store) == [
        ("sign_in.username", "submitted", str(user_id), "Alice"),
        ("sign_in.username", "submitted", None, None),
    ]
    assert await store.pool.fetchval("SELECT count(*) FROM consumed_step_token") == 2


async def test_an_attempt_audited_even_if_replayed_is_written_both_times(store: AuthStore) -> None:
    for expected in (True, False):
        consumed = await store.consume_step_and_record_audit(
            step("j1"),
            "sign_in.password",
            "ok",
            "10.0.0.1",
            "ua",
            user_id="u-1",
            username="Alice",
            even_if_replayed=True,
        )
        assert consumed is expected
    assert await rows(store) == [("sign_in.password", "ok", "u-1", "Alice")] * 2


async def test_the_consumption_still_sweeps_expired_rows(store: AuthStore) -> None:
    await store.pool.execute(
        "INSERT INTO consumed_step_token (jti, expires_at) VALUES ('old', $1)", NOW - timedelta(seconds=1)
    )
    assert await store.consume_step_and_record_audit(step("new"), "sign_in.complete", "ok", "ip", "ua")
    kept = await store.pool.fetch("SELECT jti FROM consumed_step_token")
    assert [row["jti"] for row in kept] == ["new"]
