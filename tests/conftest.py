"""Fixtures for the tests over the whole stack: real Postgres, Redis, services and nginx gateway."""

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from devstack import Stack, free_ports

from .browsers import launch_chromium
from .customer import Customer
from .external_tools import decode_qr, totp_now
from .flows import customer_pool

ROOT = Path(__file__).resolve().parent.parent


def _new_test_stack(state_dir: Path, extra_env: dict[str, object], **options: Any) -> Stack:
    """A stack of its own: free ports, its own database and Redis prefix, so runs never collide.

    options go to Stack as they are: replicas, postgres_server_url, redis_server_url.
    """
    gateway_port, *service_ports = free_ports(5)
    suffix = secrets.token_hex(4)
    return Stack(
        root=ROOT,
        state_dir=state_dir,
        gateway_port=gateway_port,
        ports=dict(zip(("auth", "mfa", "session", "portal"), service_ports, strict=True)),
        database=f"sso_test_{suffix}",
        redis_prefix=f"ssotest-{suffix}:",
        extra_env={key: str(value) for key, value in extra_env.items()},
        **options,
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack most tests share, started once per test run."""
    running = _new_test_stack(tmp_path_factory.mktemp("stack"), {})
    running.start()
    try:
        yield running
    finally:
        running.stop(drop_database=True)


@pytest.fixture(scope="module")
def make_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Stack]]:
    """Start a stack with its own settings, e.g. make_stack(SESSION_SSO_LIFETIME_SECONDS=4).

    stack_options go to Stack: make_stack(stack_options={"replicas": {"auth": 2}}).
    """
    started: list[Stack] = []

    def make(stack_options: dict[str, Any] | None = None, **extra_env: object) -> Stack:
        new = _new_test_stack(tmp_path_factory.mktemp("stack"), extra_env, **(stack_options or {}))
        new.start()
        started.append(new)
        return new

    yield make
    for running in reversed(started):
        running.stop(drop_database=True)


@pytest.fixture
def customers(stack: Stack) -> Iterator[Callable[[], Customer]]:
    with customer_pool(stack.gateway_url) as make:
        yield make


@pytest.fixture(name="totp_now")
def totp_now_fixture() -> Callable[..., str]:
    return totp_now


@pytest.fixture(name="decode_qr")
def decode_qr_fixture() -> Callable[[bytes | str], str]:
    return decode_qr


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A Chromium per test module (each test opens contexts of its own); module-scoped so the
    sync Playwright loop never outlives the module, whose neighbours may be asyncio tests."""
    yield from launch_chromium()
