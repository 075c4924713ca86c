"""The one pooled HTTP client each service keeps for its calls to its peers.

httpx over httpcore, as everywhere, with one change: httpcore's connections run on plain
asyncio streams instead of its anyio backend, which wraps every read and write of every call
in cancel scopes of its own (a third of a call's client CPU, measured in docs/performance.md).
httpcore still parses HTTP, pools and keeps connections alive, and drops an idle connection the
peer has closed before reusing it; httpx still maps every failure to its own exceptions, on
which the service client's retry of idempotent calls relies.
"""

import asyncio
import contextlib
import ssl
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx
from httpcore._utils import is_socket_readable

SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


@contextlib.contextmanager
def _raising(timeout_error: type[Exception], io_error: type[Exception]) -> Iterator[None]:
    """asyncio's TimeoutError and OSError (ssl.SSLError too) as httpcore's own, as its backends do."""
    try:
        yield
    except TimeoutError as error:
        raise timeout_error(str(error)) from error
    except OSError as error:
        raise io_error(str(error)) from error


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    # The timeout parameters are httpcore's interface (ASYNC109).
    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        with _raising(httpcore.ReadTimeout, httpcore.ReadError):
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        with _raising(httpcore.WriteTimeout, httpcore.WriteError):
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        with _raising(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # Readable while idle: the peer closed the connection (or broke the protocol).
            return is_socket_readable(self._writer.get_extra_info("socket"))
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info in ("ssl_object", "socket"):
            return self._writer.get_extra_info(info)
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        with _raising(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(local_address, 0) if local_address else None
                )
        socket = writer.get_extra_info("socket")
        for option in socket_options or ():
            socket.setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def peer_transport() -> httpx.AsyncHTTPTransport:
    """httpx's transport with its default limits, on AsyncioBackend."""
    transport = httpx.AsyncHTTPTransport()
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
    # httpx has no public way to choose httpcore's network backend: its pool is replaced by an
    # equal one on this backend (tests/test_http_client.py runs it against a real server).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=AsyncioBackend(),
    )
    return transport


def peer_http_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """transport replaces the network (tests: httpx.MockTransport)."""
    return httpx.AsyncClient(transport=transport or peer_transport())
