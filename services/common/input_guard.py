"""Refuses input no customer or peer ever sends, before any handler, database or key sees it.

A NUL byte or bytes that are not UTF-8 in a query string, a form or a JSON body are answered
with a calm 400 here: Postgres refuses NUL in text (a 500 deep inside a handler otherwise), and
a form decoder would quietly turn bad bytes into other characters. A body of any other type
(multipart, say, which FastAPI's Form fields would also read) gets a 415: no form of ours and
no peer sends one, and a body this guard cannot check never reaches a handler.
"""

import logging
from urllib.parse import unquote_to_bytes

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import Responder
from .i18n import _

log = logging.getLogger(__name__)

MESSAGE = _("Some of the information sent was not valid.")
# Bodies are small (the gateway allows 64 KiB); a peer sending more gets a 413, never a buffer.
MAX_CHECKED_BODY = 1024 * 1024


def _clean_text(raw: bytes) -> bool:
    """Whether these bytes are UTF-8 without NUL."""
    if b"\x00" in raw:
        return False
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def clean_urlencoded(raw: bytes) -> bool:
    """Whether a query string or form body decodes, field by field, to UTF-8 without NUL."""
    if not _clean_text(raw):
        return False
    for pair in raw.split(b"&"):
        for part in pair.split(b"=", 1):
            if not _clean_text(unquote_to_bytes(part.replace(b"+", b" "))):
                return False
    return True


def clean_json(raw: bytes) -> bool:
    """Whether a JSON body is UTF-8 and holds no NUL, raw or escaped."""
    return _clean_text(raw) and b"\\u0000" not in raw.lower()


def _media_type(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            media_type: str = value.decode("latin-1").split(";")[0].strip().lower()
            return media_type
    return ""


class InputGuard:
    """ASGI middleware; respond(request, status, code, message) renders the refusal."""

    def __init__(self, app: ASGIApp, respond: Responder) -> None:
        self.app = app
        self.respond = respond

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, what: str) -> None:
        log.info("refused %s %s: %s", scope.get("method"), scope.get("path"), what)
        response = self.respond(Request(scope), 400, "invalid_input", MESSAGE)
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query_string = scope.get("query_string", b"")
        if query_string and not clean_urlencoded(query_string):
            await self._refuse(scope, receive, send, "query string not UTF-8 or with NUL")
            return
        media_type = _media_type(scope)
        if media_type == "application/x-www-form-urlencoded":
            check = clean_urlencoded
        elif media_type == "application/json":
            check = clean_json
        elif media_type:
            log.info("refused %s %s: a %s body", scope.get("method"), scope.get("path"), media_type)
            response = self.respond(Request(scope), 415, "unsupported_media_type", MESSAGE)
            await response(scope, receive, send)
            return
        else:
            await self.app(scope, receive, send)
            return

        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away: nothing to answer.
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_CHECKED_BODY:
                response = self.respond(Request(scope), 413, "too_large", _("What you sent is too large."))
                await response(scope, receive, send)
                return
        if not check(body):
            await self._refuse(scope, receive, send, f"{media_type} body not UTF-8 or with NUL")
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
