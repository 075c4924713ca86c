"""The one pooled HTTP client each service keeps for its calls to its peers.

aiohttp's ClientSession: its HTTP parser is C, and a kept-alive call of a small JSON body costs
about a third of the client CPU httpx over httpcore did (docs/architecture.md, "Calls between
services"). The services see only PeerClient: post and get, an answer read whole
(PeerResponse), and one exception for every call that got no answer (PeerUnreachable), on which
the service client's retry of idempotent calls and the calm 503s rely.

The same PeerClient runs over an httpx transport where a test fakes the network
(httpx.MockTransport) and for ssoctl, which is no service.
"""

import functools
import json as jsonlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode

import aiohttp
import httpx

log = logging.getLogger(__name__)

# What every call waits for at most, each of: a connection (from the pool, or a new one) and
# each read of the answer, as httpx's per-phase timeouts did; no bound on the whole call.
DEFAULT_TIMEOUT_SECONDS = 5.0
# The pool, as httpx's defaults were: at most this many connections at once, an idle one kept
# this long (the peers, uvicorn, close theirs after 5 s).
MAX_CONNECTIONS = 100
KEEPALIVE_SECONDS = 5.0
# What nginx (the peers proxy, a Kubernetes ingress) answers when the replica it passed a call
# to dropped the connection before answering: worth one more try for a call that may be repeated.
PROXY_LOST_THE_CALLEE = 502


class PeerUnreachable(Exception):
    """The peer gave no answer: connection refused or reset, a timeout, a broken HTTP answer.

    str() is the name of the underlying error (ClientConnectorError, ServerDisconnectedError,
    SocketTimeoutError...): what the logs say, never a URL or a body.
    """


class PeerResponse:
    """A peer's answer, read whole."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, content: bytes, headers: Mapping[str, str]) -> None:
        self.status_code = status_code
        self.content = content
        # Case-insensitive, as both aiohttp's and httpx's headers are.
        self.headers = headers

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return jsonlib.loads(self.content)


async def once_more_if_unanswered(send: Callable[[], Awaitable[PeerResponse]], what: str) -> PeerResponse:
    """The answer to a call that may be repeated, sent once more when the first try got no answer
    (PeerUnreachable, or the proxy's 502 for a replica that went away with it): one replica
    restarting is not an outage. Raises PeerUnreachable when the second try gets none either."""
    try:
        response = await send()
    except PeerUnreachable as error:
        log.warning("%s got no answer (%s): once more", what, error)
    else:
        if response.status_code != PROXY_LOST_THE_CALLEE:
            return response
        log.warning("%s answered %s: once more", what, response.status_code)
    return await send()


def json_body(value: Any) -> bytes:
    # As httpx encoded its json= bodies: compact, UTF-8, no NaN.
    return jsonlib.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class PeerClient(ABC):
    """POST and GET to the peers, over one pool for the life of the process."""

    async def post(
        self,
        url: str,
        *,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,  # noqa: ASYNC109 (each phase's, not the call's)
    ) -> PeerResponse:
        """One of json (sent as application/json), data (a form) or content (as it is)."""
        sent = dict(headers or {})
        if json is not None:
            body = json_body(json)
            sent.setdefault("content-type", "application/json")
        elif data is not None:
            body = urlencode(data).encode()
            sent.setdefault("content-type", "application/x-www-form-urlencoded")
        elif isinstance(content, str):
            body = content.encode()
        else:
            body = content or b""
        return await self.send("POST", url, body, sent, timeout)

    async def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,  # noqa: ASYNC109
    ) -> PeerResponse:
        return await self.send("GET", url, None, dict(headers or {}), timeout)

    @abstractmethod
    async def send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float,  # noqa: ASYNC109
    ) -> PeerResponse:
        """The answer, never following a redirect; PeerUnreachable when there is none."""

    @abstractmethod
    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()


@functools.lru_cache(maxsize=16)
def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    # connect: waiting for a pooled connection plus opening one; sock_read: each read.
    return aiohttp.ClientTimeout(total=None, connect=seconds, sock_connect=seconds, sock_read=seconds)


class AiohttpPeerClient(PeerClient):
    """The services' client: aiohttp, kept-alive connections, nothing taken from the environment."""

    def __init__(self) -> None:
        # Made inside the running event loop (each service's lifespan), as aiohttp requires.
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_SECONDS),
            # No proxy, no .netrc from the environment: calls go straight to the peers.
            trust_env=False,
            # A peer's cookie is never sent to another peer, nor back on a later call.
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=_timeout(DEFAULT_TIMEOUT_SECONDS),
        )

    async def send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float,  # noqa: ASYNC109
    ) -> PeerResponse:
        try:
            async with self.session.request(
                method, url, data=body, headers=headers, timeout=_timeout(timeout), allow_redirects=False
            ) as response:
                return PeerResponse(response.status, await response.read(), response.headers)
        # TimeoutError: aiohttp's own timeouts are TimeoutErrors too (SocketTimeoutError...).
        except (aiohttp.ClientError, TimeoutError) as error:
            raise PeerUnreachable(type(error).__name__) from error

    async def aclose(self) -> None:
        await self.session.close()


class HttpxPeerClient(PeerClient):
    """The same client over httpx: tests' fake networks (httpx.MockTransport), and ssoctl."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float,  # noqa: ASYNC109
    ) -> PeerResponse:
        try:
            response = await self.http.request(method, url, content=body, headers=headers, timeout=timeout)
        except httpx.HTTPError as error:
            raise PeerUnreachable(type(error).__name__) from error
        return PeerResponse(response.status_code, response.content, response.headers)

    async def aclose(self) -> None:
        await self.http.aclose()


def peer_http_client(transport: httpx.AsyncBaseTransport | None = None) -> PeerClient:
    """The process's pooled client; transport replaces the network (tests: httpx.MockTransport)."""
    if transport is not None:
        return HttpxPeerClient(httpx.AsyncClient(transport=transport))
    return AiohttpPeerClient()
