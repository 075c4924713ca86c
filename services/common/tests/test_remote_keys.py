import asyncio
from typing import Any

import httpx
import pytest

from services.common.clock import FrozenClock
from services.common.errors import DependencyUnavailable
from services.common.http_client import peer_http_client
from services.common.keys import SigningKey, generate_private_pem, jwks
from services.common.tokens import RemoteKeys


async def test_requests_that_meet_a_new_kid_together_share_one_fetch() -> None:
    key = SigningKey.from_pem(generate_private_pem("ec"))
    fetches = 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal fetches
        fetches += 1
        await asyncio.sleep(0.05)  # a fetch slow enough for the others to arrive meanwhile
        return httpx.Response(200, json=jwks(key))

    async with peer_http_client(httpx.MockTransport(answer)) as http:
        keys = RemoteKeys(http, "http://peer/internal/jwks", FrozenClock())
        found = await asyncio.gather(*(keys.key_for(key.kid, "peer") for _ in range(5)))
    assert all(jwk is not None for jwk in found)
    assert fetches == 1


async def test_made_up_kids_do_not_cause_a_fetch_each() -> None:
    key = SigningKey.from_pem(generate_private_pem("ec"))
    fetches = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal fetches
        fetches += 1
        return httpx.Response(200, json=jwks(key))

    clock = FrozenClock()
    async with peer_http_client(httpx.MockTransport(answer)) as http:
        keys = RemoteKeys(http, "http://peer/internal/jwks", clock)
        for n in range(20):
            assert await keys.key_for(f"made-up-{n}", "peer") is None
        assert fetches == 1
        assert await keys.key_for(key.kid, "peer") is not None
        assert fetches == 1, "a known kid needs no fetch"
        clock.advance(11)
        assert await keys.key_for("made-up-again", "peer") is None
    assert fetches == 2, "after the interval, one more fetch for an unknown kid"


@pytest.mark.parametrize(
    "body",
    [
        ["not", "a", "jwks"],
        {"keys": "not-a-list"},
        {"keys": [{"kty": "EC"}]},
        {"keys": [["x"]]},
        {"nokeys": []},
    ],
)
async def test_a_jwks_of_the_wrong_shape_is_no_keys_not_a_crash(body: Any) -> None:
    async with peer_http_client(httpx.MockTransport(lambda request: httpx.Response(200, json=body))) as http:
        keys = RemoteKeys(http, "http://peer/internal/jwks", FrozenClock())
        assert await keys.key_for("some-kid", "peer") is None


def answers_then_keys(key: SigningKey, answers: list[httpx.HTTPError | int]) -> Any:
    """A peer that gives these answers in turn (an error raised, or a status), then its JWKS."""

    def answer(request: httpx.Request) -> httpx.Response:
        first = answers.pop(0) if answers else 200
        if isinstance(first, httpx.HTTPError):
            raise first
        return httpx.Response(first, json=jwks(key) if first == 200 else {"error": "down"})

    return answer


@pytest.mark.parametrize("down", [httpx.ConnectError("Connection refused"), 502])
async def test_one_unanswered_fetch_is_sent_once_more(down: httpx.HTTPError | int) -> None:
    # One replica of the peer restarting (refused, or the proxy's 502 for the one that went away
    # with the request) is not an outage: the second try reaches another and the token is checked.
    key = SigningKey.from_pem(generate_private_pem("ec"))
    answers: list[httpx.HTTPError | int] = [down]
    async with peer_http_client(httpx.MockTransport(answers_then_keys(key, answers))) as http:
        keys = RemoteKeys(http, "http://peer/internal/jwks", FrozenClock())
        assert await keys.key_for(key.kid, "peer") is not None
    assert answers == [], "the failed answer was used up"


async def test_a_503_is_the_peer_answering_and_is_not_sent_again() -> None:
    key = SigningKey.from_pem(generate_private_pem("ec"))
    answers: list[httpx.HTTPError | int] = [503, 200]
    async with peer_http_client(httpx.MockTransport(answers_then_keys(key, answers))) as http:
        keys = RemoteKeys(http, "http://peer/internal/jwks", FrozenClock())
        with pytest.raises(DependencyUnavailable):
            await keys.key_for(key.kid, "peer")
    assert answers == [200], "one fetch only"


@pytest.mark.parametrize(
    "down",
    [[httpx.ConnectError("Connection refused")] * 2, [502, 502], [502, httpx.ConnectError("refused")], [503]],
)
async def test_a_peer_that_cannot_be_asked_is_an_outage_and_is_asked_again_once_back(
    down: list[httpx.HTTPError | int],
) -> None:
    # A genuine step token of a peer that is down must not read as "expired" (a 400),
    # and once the peer answers again, the next token is checked at once.
    key = SigningKey.from_pem(generate_private_pem("ec"))
    answers = list(down)
    clock = FrozenClock()
    async with peer_http_client(httpx.MockTransport(answers_then_keys(key, answers))) as http:
        keys = RemoteKeys(http, "http://peer/internal/jwks", clock)
        with pytest.raises(DependencyUnavailable):
            await keys.key_for(key.kid, "peer")
        assert answers == []
        answers.extend(down)
        with pytest.raises(DependencyUnavailable):
            await keys.key_for(key.kid, "peer")  # within a second: not asked again
        assert answers == down
        answers.clear()
        clock.advance(1.5)
        assert await keys.key_for(key.kid, "peer") is not None
