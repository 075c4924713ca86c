"""Device cookies: issued for one account, unforgeable, and only for their lifetime."""

from services.auth.device_cookies import DeviceCookies
from services.common.clock import FrozenClock


def make(clock: FrozenClock, secret: bytes = b"k" * 32) -> DeviceCookies:
    return DeviceCookies(secret, clock, lifetime_seconds=100)


def test_a_cookie_names_its_device_for_its_own_account_only() -> None:
    clock = FrozenClock()
    cookies = make(clock)
    cookie = cookies.issue("alice")
    device = cookies.device_for(cookie, "alice")
    assert device is not None and len(device) == 22 and device in cookie
    assert cookies.device_for(cookie, "bob") is None
    assert cookies.issue("alice") != cookie, "each sign-in gets a device id of its own"


def test_a_forged_altered_or_foreign_cookie_is_no_device() -> None:
    clock = FrozenClock()
    cookie = make(clock).issue("alice")
    device, issued, mac = cookie.split(".")
    for forged in (
        f"{device}.{issued}.{'0' * 64}",
        f"{'x' * 22}.{issued}.{mac}",
        f"{device}.{int(issued) + 1}.{mac}",
        "",
        "junk",
        "a.b.c.d",
        cookie + "é",
    ):
        assert make(clock).device_for(forged, "alice") is None, forged
    assert make(clock, secret=b"o" * 32).device_for(cookie, "alice") is None


def test_a_cookie_lasts_its_lifetime() -> None:
    clock = FrozenClock()
    cookies = make(clock)
    cookie = cookies.issue("alice")
    clock.advance(100)
    assert cookies.device_for(cookie, "alice") is not None
    clock.advance(1)
    assert cookies.device_for(cookie, "alice") is None
