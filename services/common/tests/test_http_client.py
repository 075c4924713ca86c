"""The HTTP client of every internal call (aiohttp), against a real server on a loopback port."""

import asyncio
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

import pytest
from httpcore._synchronization import current_async_library

from services.common.errors import DependencyUnavailable
from services.common.http_client import PeerUnreachable, peer_http_client
from services.common.keys import SigningKey, generate_private_pem
from services.common.service_client import ServiceClient
from services.common.tokens import TokenIssuer


class ImportsSeen(importlib.abc.MetaPathFinder):
    """Records every module the import system is asked to look for on sys.path."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        self.names.append(fullname)
        return None


async def test_httpcore_learns_the_event_loop_without_searching_for_a_module() -> None:
    # ssoctl and the tests' fake networks still go through httpx. httpcore runs `import sniffio` several times per request it sends; without sniffio
    # installed each is a failed import, a search of every sys.path entry, every time.
    seen = ImportsSeen()
    sys.meta_path.insert(0, seen)
    try:
        assert current_async_library() == "asyncio"
    finally:
        sys.meta_path.remove(seen)
    assert seen.names == []


class Peer:
    """A real HTTP/1.1 server on a loopback port, counting the connections it was opened."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[bytes, bytes, bytes]] = []
        self.server: asyncio.Server | None = None
        self.url = ""
        self.released = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ")[1]
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.requests.append((path, head, body))
                if path == b"/hang":
                    await self.released.wait()
                    return
                if path == b"/drop" or (path == b"/drop-first" and self.connections == 1):
                    # Gone with the request: no answer at all (a replica that died mid-call).
                    writer.close()
                    return
                elif path == b"/redirect":
                    writer.write(b"HTTP/1.1 302 Found\r\nlocation: /call\r\ncontent-length: 0\r\n\r\n")
                elif path == b"/chunked":
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                    )
                else:
                    answer = b'{"echo": ' + (body or b"null") + b"}"
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"content-length: " + str(len(answer)).encode() + b"\r\n\r\n" + answer
                    )
                await writer.drain()
                if path == b"/then-close":
                    # An idle keep-alive connection the server ends, as uvicorn does after its timeout.
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def __aenter__(self) -> "Peer":
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.released.set()
        self.server.close()
        await self.server.wait_closed()


async def test_calls_to_a_peer_share_one_kept_alive_connection() -> None:
    async with Peer() as peer, peer_http_client() as http:
        answers = [await http.post(f"{peer.url}/call", json={"n": n}) for n in range(3)]
        chunked = await http.get(f"{peer.url}/chunked")
    assert [answer.json() for answer in answers] == [{"echo": {"n": n}} for n in range(3)]
    assert chunked.text == "hello world"
    assert peer.connections == 1


async def test_a_connection_the_peer_closed_while_idle_is_not_reused() -> None:
    async with Peer() as peer, peer_http_client() as http:
        first = await http.post(f"{peer.url}/then-close", json={"n": 1})
        await asyncio.sleep(0.1)  # the close reaches this side
        second = await http.post(f"{peer.url}/call", json={"n": 2})
    assert (first.json(), second.json()) == ({"echo": {"n": 1}}, {"echo": {"n": 2}})
    assert peer.connections == 2


async def test_failures_are_one_error_the_service_client_expects() -> None:
    async with Peer() as peer, peer_http_client() as http:
        with pytest.raises(PeerUnreachable, match="Timeout"):
            await http.post(f"{peer.url}/hang", json={}, timeout=0.2)
        with pytest.raises(PeerUnreachable, match="ServerDisconnected"):
            await http.post(f"{peer.url}/drop", json={})
    free_port = peer.url  # the server is closed now: nothing listens on its port
    async with peer_http_client() as http:
        with pytest.raises(PeerUnreachable, match="ClientConnectorError"):
            await http.post(f"{free_port}/call", json={}, timeout=2.0)


async def test_a_redirect_is_an_answer_not_followed() -> None:
    async with Peer() as peer, peer_http_client() as http:
        answer = await http.get(f"{peer.url}/redirect")
    assert answer.status_code == 302
    assert [path for path, _, _ in peer.requests] == [b"/redirect"]


async def test_a_proxy_from_the_environment_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    async with Peer() as peer, peer_http_client() as http:
        assert (await http.post(f"{peer.url}/call", json=[1])).json() == {"echo": [1]}


async def test_a_json_body_is_sent_compact_with_its_content_type() -> None:
    async with Peer() as peer, peer_http_client() as http:
        await http.post(f"{peer.url}/call", json={"name": "zoë", "n": 1}, headers={"x-request-id": "r1"})
    [(_, head, body)] = peer.requests
    assert body == '{"name":"zoë","n":1}'.encode()
    assert b"content-type: application/json" in head.lower()
    assert b"x-request-id: r1" in head.lower()


def service_client(http: object, url: str) -> ServiceClient:
    issuer = TokenIssuer(SigningKey.from_pem(generate_private_pem("ec")), "portal")
    return ServiceClient(http, issuer, url, "session")  # type: ignore[arg-type]


async def test_an_idempotent_call_whose_callee_went_away_is_sent_once_more_with_its_token() -> None:
    async with Peer() as peer, peer_http_client() as http:
        answer = await service_client(http, peer.url).call("/drop-first", {"n": 1}, idempotent=True)
    assert answer.json() == {"echo": {"n": 1}}
    assert peer.connections == 2
    assert [path for path, _, _ in peer.requests] == [b"/drop-first"] * 2
    assert all(b"authorization: bearer ey" in head.lower() for _, head, _ in peer.requests)


async def test_any_other_call_whose_callee_went_away_is_unavailable_not_resent() -> None:
    async with Peer() as peer, peer_http_client() as http:
        with pytest.raises(DependencyUnavailable):
            await service_client(http, peer.url).call("/drop-first", {"n": 1})
    assert [path for path, _, _ in peer.requests] == [b"/drop-first"]
