"""Main-thread CPU per route, for `make bench-routes` only (bench/routes.py).

This directory is on PYTHONPATH only for the services of bench-routes' own stack, so Python
imports this file at start-up in each of them (and in the launcher, where it measures nothing).
It wraps `RequestContextMiddleware.__call__`, the outermost of the services' own middlewares,
adding `time.thread_time()` per request by method and path, and rewrites
BENCH_ROUTES_DIR/<pid>.json after each request. Without BENCH_ROUTES_DIR it does nothing.
"""

import json
import os
import time
from pathlib import Path

_counts_dir = os.environ.get("BENCH_ROUTES_DIR")

if _counts_dir:
    from starlette.types import Receive, Scope, Send

    from services.common import logging as _service_logging

    _middleware = _service_logging.RequestContextMiddleware
    _unwrapped = _middleware.__call__
    _counts_file = Path(_counts_dir) / f"{os.getpid()}.json"
    # "METHOD path" -> [requests, main-thread CPU seconds]
    _by_route: dict[str, list[float]] = {}

    async def _timed_call(
        self: _service_logging.RequestContextMiddleware, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if scope["type"] != "http":
            await _unwrapped(self, scope, receive, send)
            return
        started = time.thread_time()
        try:
            await _unwrapped(self, scope, receive, send)
        finally:
            # thread_time counts this thread only: argon2's worker threads stay out of it.
            spent = time.thread_time() - started
            count = _by_route.setdefault(f"{scope['method']} {scope['path']}", [0, 0.0])
            count[0] += 1
            count[1] += spent
            # Written after the reading, so the write is not in the figure; replaced whole,
            # so the bench never reads half a file.
            partial = _counts_file.with_suffix(".tmp")
            partial.write_text(json.dumps(_by_route))
            partial.replace(_counts_file)

    _middleware.__call__ = _timed_call  # type: ignore[method-assign]
