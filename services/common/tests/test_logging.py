"""JsonFormatter writes exactly the line json.dumps writes for the record's dict, whatever the record."""

import json
import logging
import math
import random
import sys
from typing import Any

import pytest

from services.common.logging import JsonFormatter, _timestamp, request_id_var


def line_from_the_dict(record: logging.LogRecord, service: str) -> str:
    """How the formatter built every line before it built them from parts."""
    entry: dict[str, Any] = {
        "ts": round(record.created, 3),
        "level": record.levelname.lower(),
        "service": service,
        "logger": record.name,
        "request_id": request_id_var.get(),
        "msg": record.getMessage(),
    }
    entry.update(getattr(record, "fields", {}))
    if record.exc_info:
        entry["exc"] = logging.Formatter().formatException(record.exc_info)
    return json.dumps(entry, default=str)


def record(name: str, level: int, msg: object, *args: object, **extra: Any) -> logging.LogRecord:
    return logging.getLogger(name).makeRecord(
        name, level, "(unknown file)", 0, msg, args, None, extra=extra or None
    )


class Opaque:
    def __str__(self) -> str:
        return "an object without JSON \u00e9"


ACCESS = {"method": "POST", "path": "/auth/login/password", "status": 303, "duration_ms": 2.57}
RECORDS = [
    record("access", logging.INFO, "%s %s %s", "POST", "/auth/login/password", 303, fields=ACCESS),
    record(
        "services.auth.audit",
        logging.INFO,
        "audit %s %s user_id=%s operator=%s",
        "sign_in",
        "ok",
        12345,
        None,
    ),
    record("services.common.errors", logging.ERROR, "failed %s", "GET /x", fields={}),
    record(
        "services.mfa.routes", logging.WARNING, 'r\u00e9sum\u00e9 "quoted" \\ \n\t\x00 \U0001f600 </script>'
    ),
    record('weird \u00e9 "name"', 5, "a level without a name"),
    record(
        "services.common.health",
        logging.INFO,
        "%(a)s",
        {"a": "a mapping"},
        fields={"ready": False, "reason": None},
    ),
    record(
        "x",
        logging.INFO,
        12345,
        fields={"nested": {"a": [1, 2.5, None, True]}, "object": Opaque(), 3: "int key"},
    ),
    record(
        "x", logging.INFO, "floats", fields={"nan": math.nan, "inf": -math.inf, "big": 1e300, "tiny": 5e-324}
    ),
    record("x", logging.INFO, "big int", fields={"n": 10**40, "negative": -1, "true": True}),
    # Fields that replace one of the six keys keep its place; fields that are no dict are merged as before.
    record("x", logging.INFO, "shadowed", fields={"msg": "the field's", "extra": 1, "ts": "now"}),
    record("x", logging.INFO, "pairs", fields=[("a", 1), ("b", "two")]),
]


def with_exception() -> logging.LogRecord:
    try:
        raise ValueError("boom \u00e9")
    except ValueError:
        return logging.getLogger("x").makeRecord(
            "x",
            logging.ERROR,
            "(unknown file)",
            0,
            "failed",
            (),
            sys.exc_info(),
            extra={"fields": {"exc": "theirs"}},
        )


@pytest.mark.parametrize("request_id", ["-", "3f2a9c0d1e2b4a5f8c7d6e5f4a3b2c1d", "gw-1.2_3"])
@pytest.mark.parametrize("index", range(len(RECORDS) + 1))
def test_a_line_is_the_one_json_dumps_writes_for_the_dict(index: int, request_id: str) -> None:
    formatter = JsonFormatter("auth")
    token = request_id_var.set(request_id)
    try:
        entry = RECORDS[index] if index < len(RECORDS) else with_exception()
        for _ in range(2):  # the second time from what the formatter keeps per level and logger
            assert formatter.format(entry) == line_from_the_dict(entry, "auth")
    finally:
        request_id_var.reset(token)


@pytest.mark.parametrize(
    "created",
    [0.0, 5e-324, 0.0004, 0.0005, 0.00051, 0.5, 1.0, 1.1, 10.12, 1764768362.0, 1764768362.1, 1764768362.12,
     1764768362.1234999, 1764768362.9995, 1764768362.99951, 99999999999.9999, 1e11, 1e17, -0.0001, -12.3456,
     math.inf, math.nan, 1764768362],
)  # fmt: skip
def test_a_timestamp_is_written_as_round_to_the_millisecond(created: float) -> None:
    assert _timestamp(created) == json.dumps(round(created, 3))


def test_timestamps_of_this_century_and_the_next_are_written_as_round_to_the_millisecond() -> None:
    draw = random.Random(11)
    for _ in range(200_000):
        created = draw.uniform(1.7e9, 4.2e9)
        assert _timestamp(created) == repr(round(created, 3)), created
    for millisecond in range(1_764_768_362_000, 1_764_768_363_001):
        created = millisecond / 1000
        for near in (created, math.nextafter(created, 0), math.nextafter(created, math.inf)):
            assert _timestamp(near) == repr(round(near, 3)), near
