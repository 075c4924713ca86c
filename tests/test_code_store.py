"""auth's authorization codes on the real Postgres: a code's insert checks its account, and its
redemption is one statement that redeems once, and only for the request that matches it."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from services.auth.app import MIGRATIONS_DIR
from services.auth.store import AuthorizationCode, AuthStore, Client, CodeRedeemer

from .schemas import migrated_pool

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
RIGHT = CodeRedeemer(client_id="app", redirect_uri="https://app/cb", code_challenge="c" * 43, now=NOW)


@pytest.fixture
async def store() -> AsyncIterator[AuthStore]:
    async with migrated_pool("code_test", MIGRATIONS_DIR, max_size=6) as pool:
        auth_store = AuthStore(pool)
        await auth_store.save_client(Client("app", "hash", ["https://app/cb"], []), replace=False)
        yield auth_store


def a_code(user_id: UUID) -> AuthorizationCode:
    return AuthorizationCode(
        client_id="app",
        redirect_uri="https://app/cb",
        user_id=user_id,
        username="alice",
        sid="sid-1",
        nonce="n",
        scope="openid",
        code_challenge="c" * 43,
        auth_time=1_700_000_000,
        amr=["pwd", "otp"],
        expires_at=NOW + timedelta(seconds=60),
        access_token_jti=None,
    )


async def alice(store: AuthStore) -> UUID:
    user_id = await store.add_user("alice", "alice", "hash")
    assert user_id is not None
    return user_id


async def test_a_code_is_saved_only_for_an_account_that_may_sign_in(store: AuthStore) -> None:
    user_id = await alice(store)
    assert await store.save_code("live", a_code(user_id))
    assert not await store.save_code("nobody", a_code(uuid4()))
    await store.set_disabled("alice", True)
    assert not await store.save_code("disabled", a_code(user_id))
    saved = await store.pool.fetch("SELECT code_hash, user_id, amr FROM authorization_code")
    assert [(row["code_hash"], row["user_id"], row["amr"]) for row in saved] == [
        ("live", user_id, ["pwd", "otp"])
    ]


async def test_of_two_redeems_of_one_code_at_once_exactly_one_wins(store: AuthStore) -> None:
    user_id = await alice(store)
    for round_ in range(10):
        await store.save_code(f"code-{round_}", a_code(user_id))
        found = await asyncio.gather(
            *(store.redeem_code(f"code-{round_}", RIGHT, f"jti-{round_}-{n}") for n in range(5))
        )
        assert sum(1 for each in found if each is not None and each.redeemed) == 1
        jti = await store.pool.fetchval(
            "SELECT access_token_jti FROM authorization_code WHERE code_hash = $1", f"code-{round_}"
        )
        winner = next(n for n, each in enumerate(found) if each is not None and each.redeemed)
        assert jti == f"jti-{round_}-{winner}"
    again = await store.redeem_code("code-0", RIGHT, "jti-late")
    assert again is not None and (again.used, again.redeemed) == (True, False)
    assert again.code.access_token_jti is not None, "a replay finds the first exchange's jti to revoke"


@pytest.mark.parametrize(
    "wrong",
    [
        CodeRedeemer("other", RIGHT.redirect_uri, RIGHT.code_challenge, NOW),
        CodeRedeemer(RIGHT.client_id, "https://app/cb?x", RIGHT.code_challenge, NOW),
        CodeRedeemer(RIGHT.client_id, None, RIGHT.code_challenge, NOW),
        CodeRedeemer(RIGHT.client_id, RIGHT.redirect_uri, "d" * 43, NOW),
        CodeRedeemer(RIGHT.client_id, RIGHT.redirect_uri, None, NOW),
        CodeRedeemer(RIGHT.client_id, RIGHT.redirect_uri, RIGHT.code_challenge, NOW + timedelta(seconds=61)),
    ],
)
async def test_a_redeem_that_does_not_match_changes_nothing(store: AuthStore, wrong: CodeRedeemer) -> None:
    await store.save_code("code", a_code(await alice(store)))
    refused = await store.redeem_code("code", wrong, "jti-wrong")
    assert refused is not None and (refused.used, refused.redeemed) == (False, False)
    assert refused.code == a_code(refused.code.user_id)
    right = await store.redeem_code("code", RIGHT, "jti-right")
    assert right is not None and right.redeemed
    assert await store.redeem_code("unknown", RIGHT, "jti") is None
