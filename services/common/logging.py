"""JSON-line logs that carry the gateway's request id, and an access log without query strings."""

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

access_log = logging.getLogger("access")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, service, logger, request_id, msg, the record's fields.

    The line is the one json.dumps(entry, default=str) writes for that dict, byte for byte, built
    from parts: what stays the same for a level and a logger is encoded once, the fields are
    encoded by the C encoder json.dumps itself calls. A record whose fields are not a plain dict,
    or name one of the six keys, or that carries an exception, is formatted from the dict.
    """

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self._middles: dict[tuple[str, str], str] = {}

    def entry(self, record: logging.LogRecord) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "request_id": request_id_var.get(),
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return entry

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if record.exc_info or not (
            fields is None or (type(fields) is dict and _ENTRY_KEYS.isdisjoint(fields))
        ):
            return _ENCODER.encode(self.entry(record))
        middle = self._middles.get((record.levelname, record.name))
        if middle is None:
            middle = self._middle(record.levelname, record.name)
        rest = ", " + _encode_object(fields)[1:] if fields else "}"
        return (
            f'{{"ts": {_timestamp(record.created)}{middle}{_json_string(request_id_var.get())}'
            f', "msg": {_json_string(record.getMessage())}{rest}'
        )

    def _middle(self, levelname: str, name: str) -> str:
        """What comes between the timestamp and the request id: the level, service and logger."""
        middle = (
            f', "level": {_json_string(levelname.lower())}, "service": {_json_string(self.service)}'
            f', "logger": {_json_string(name)}, "request_id": '
        )
        if len(self._middles) < 1024:
            self._middles[(levelname, name)] = middle
        return middle


# What json.dumps(entry, default=str) builds on every call, built once.
_ENCODER = json.JSONEncoder(default=str)
_ENTRY_KEYS = frozenset(("ts", "level", "service", "logger", "request_id", "msg"))
_C_MAKE_ENCODER: Callable[..., Callable[[object, int], list[str]]] | None = getattr(
    json.encoder, "c_make_encoder", None
)


def _encode_object(value: dict[Any, Any]) -> str:
    """_ENCODER.encode(value): the C encoder it makes for each call (with its own circular check),
    without its Python frames around it."""
    if _C_MAKE_ENCODER is None:
        return _ENCODER.encode(value)
    encode = _C_MAKE_ENCODER({}, str, _json_string, None, ": ", ", ", False, False, True)
    return "".join(encode(value, 0))


def _timestamp(created: float) -> str:
    """round(created, 3) as the encoder writes it (repr), in one correctly rounded conversion.

    Below 10**11 the rounded value has at most 14 significant digits, so the shortest repr of the
    float nearest to it is those digits, less trailing zeros (keeping one after the point).
    """
    if type(created) is not float or not 0.0 <= created < 1e11:
        return _ENCODER.encode(round(created, 3))
    text = format(created, ".3f").rstrip("0")
    return text + "0" if text[-1] == "." else text


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log prints query strings, which carry OIDC codes: ours does not.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # No field of JsonFormatter's needs the caller's file and line, the thread or the process:
    # not looking them up on every record is the logging HOWTO's "Optimization".
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def _request_id_header(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The last X-Request-ID of the request (as dict(headers) would keep it), or ""."""
    incoming = b""
    for name, value in headers:
        if name == b"x-request-id":
            incoming = value
    return incoming.decode("latin-1")


class RequestContextMiddleware:
    """Takes X-Request-ID from the gateway (or makes one), and logs one line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _request_id_header(scope["headers"])
        request_id = incoming if REQUEST_ID_PATTERN.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            access_log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "fields": {
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    }
                },
            )
            request_id_var.reset(token)
