"""Recovery codes: how they are made, typed and stored, their one display, and signing in with one."""

import logging
import math
import re
from itertools import cycle

import httpx
import jwt
import pytest

from services.contracts.admin import ResetMfa
from services.mfa.admin import MfaAdmin
from services.mfa.recovery_codes import (
    ALPHABET,
    CODES_PER_SET,
    RecoveryCodeHasher,
    new_code,
    normalised,
    recovery_code_key,
    shown,
)

from .test_routes import CSRF, EXPIRED, Harness, harness, shown_secret

__all__ = ["harness"]  # the fixture, shared with the route tests

CODE = re.compile(r"^[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}$")
WRONG_RECOVERY = "That recovery code didn&#39;t work. Check it and try again."


# the codes themselves


def test_a_code_carries_at_least_50_bits_in_symbols_that_cannot_be_mistaken() -> None:
    assert len(set(ALPHABET)) == len(ALPHABET) == 31
    assert not set("0O1IL") & set(ALPHABET)
    code = new_code()
    assert len(code) == 12 and set(code) <= set(ALPHABET)
    assert math.log2(len(ALPHABET)) * len(code) >= 50
    assert CODE.match(shown(code))


def test_codes_come_from_the_random_source_symbol_by_symbol() -> None:
    drawn = cycle("ABC")
    assert new_code(lambda alphabet: next(drawn)) == "ABCABCABCABC"
    assert len({new_code() for _ in range(1000)}) == 1000


@pytest.mark.parametrize(
    "typed", ["ABCD-EFGH-JKMN", "abcd-efgh-jkmn", " abcd efgh jkmn ", "ABCDEFGHJKMN", "aBcD-eFgH jKmN"]
)
def test_a_code_is_accepted_with_or_without_dashes_and_spaces_in_any_case(typed: str) -> None:
    assert normalised(typed) == "ABCDEFGHJKMN"


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "ABCD-EFGH-JKM",
        "ABCD-EFGH-JKMNP",
        "ABCD-EFGH-JKM0",
        "ABCD-EFGH-JKMO",
        "ABCD_EFGH_JKMN",
        "ÄBCD-EFGH-JKMN",
    ],
)
def test_what_cannot_be_a_code_is_no_code(typed: str) -> None:
    assert normalised(typed) is None


def test_the_stored_hash_is_a_keyed_hmac_bound_to_the_user() -> None:
    key = recovery_code_key(b"k" * 32)
    assert key != b"k" * 32 and len(key) == 32 and key == recovery_code_key(b"k" * 32)
    hasher = RecoveryCodeHasher(key)
    digest = hasher.digest("user-alice", "ABCDEFGHJKMN")
    assert len(digest) == 32 and digest == hasher.digest("user-alice", "ABCDEFGHJKMN")
    assert b"ABCDEFGHJKMN" not in digest
    assert digest != hasher.digest("user-bob", "ABCDEFGHJKMN")
    assert digest != RecoveryCodeHasher(recovery_code_key(b"x" * 32)).digest("user-alice", "ABCDEFGHJKMN")
    with pytest.raises(ValueError):
        RecoveryCodeHasher(b"short")


# the one display after the first set-up


async def set_up(harness: Harness) -> tuple[str, str]:
    """A first set-up confirmed: the step token and the TOTP secret; the codes wait for their display."""
    step = harness.otp_step()
    secret = shown_secret(await harness.get(step))
    confirmed = await harness.post("/mfa/setup", step, code=harness.code(secret))
    assert (confirmed.status_code, confirmed.headers["location"]) == (303, "/mfa/recovery-codes")
    return step, secret


def codes_on(page: httpx.Response) -> list[str]:
    return re.findall(r"<li><code>([^<]+)</code></li>", page.text)


async def test_the_first_set_up_shows_ten_codes_with_download_print_and_the_tick(harness: Harness) -> None:
    step, _secret = await set_up(harness)
    harness.set_step(step)
    page = await harness.client.get("/mfa/recovery-codes")
    assert page.status_code == 200
    codes = codes_on(page)
    assert len(codes) == CODES_PER_SET == len(set(codes))
    assert all(CODE.match(code) for code in codes)
    assert 'action="/mfa/recovery-codes/download"' in page.text
    assert '<button type="button" id="print-codes" class="secondary" hidden>Print</button>' in page.text
    assert '<script src="/mfa/static/print.js"></script>' in page.text
    assert '<input id="saved" name="saved" type="checkbox" value="yes" required' in page.text
    assert '<label for="saved" class="inline">I have saved these codes</label>' in page.text
    assert page.text.count(f'name="csrf_token" value="{CSRF}"') == 2
    # Only keyed hashes are stored, and the display is sealed: no code in the clear.
    stored = b"".join(harness.store.recovery_codes["user-alice"]) + b"".join(
        sealed for sealed, _until in harness.store.displays.values()
    )
    assert not any(code.replace("-", "").encode() in stored or code.encode() in stored for code in codes)
    assert harness.store.outcomes("recovery_codes_created") == ["enrollment"]


async def test_download_is_a_text_file_of_the_shown_codes(harness: Harness) -> None:
    step, _secret = await set_up(harness)
    harness.set_step(step)
    codes = codes_on(await harness.client.get("/mfa/recovery-codes"))
    download = await harness.post("/mfa/recovery-codes/download", step)
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/plain")
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.text.splitlines() == codes
    refused = await harness.client.post("/mfa/recovery-codes/download", data={"csrf_token": "wrong"})
    assert refused.status_code == 403 and "XXXX" not in refused.text
    assert not any(code in refused.text for code in codes)


async def test_without_the_tick_the_codes_stay_and_the_sign_in_does_not_go_on(harness: Harness) -> None:
    step, _secret = await set_up(harness)
    harness.set_step(step)
    codes = codes_on(await harness.client.get("/mfa/recovery-codes"))
    for tick in ({}, {"saved": "no"}, {"saved": ""}):
        refused = await harness.post("/mfa/recovery-codes/saved", step, **tick)
        assert refused.status_code == 400
        assert "Tick “I have saved these codes” to go on." in refused.text
        assert codes_on(refused) == codes
        assert "set-cookie" not in refused.headers


async def test_once_saved_the_codes_are_never_shown_again(harness: Harness) -> None:
    step, _secret = await set_up(harness)
    harness.set_step(step)
    assert len(codes_on(await harness.client.get("/mfa/recovery-codes"))) == CODES_PER_SET
    # Back to /mfa/ before the tick: the codes still wait.
    back = await harness.get(step)
    assert (back.status_code, back.headers["location"]) == (303, "/mfa/recovery-codes")
    saved = await harness.post("/mfa/recovery-codes/saved", step, saved="yes")
    assert (saved.status_code, saved.headers["location"]) == (303, "/auth/login/complete")
    assert harness.store.displays == {}
    harness.set_step(step)
    for again in (
        await harness.client.get("/mfa/recovery-codes"),
        await harness.post("/mfa/recovery-codes/download", step),
        await harness.post("/mfa/recovery-codes/saved", step, saved="yes"),
    ):
        assert again.status_code == 400 and EXPIRED in again.text
        assert codes_on(again) == []
    # A later sign-in has no display: straight to the code page.
    harness.set_step(harness.otp_step())
    later = await harness.client.get("/mfa/recovery-codes")
    assert (later.status_code, later.headers["location"]) == (303, "/mfa/")


async def test_the_display_ends_with_its_step(harness: Harness) -> None:
    step, _secret = await set_up(harness)
    harness.clock.advance(601)
    # The display ends with the step's exp, even within the token's 5 s leeway.
    gone = await harness.post("/mfa/recovery-codes/download", step)
    assert (gone.status_code, gone.headers["location"]) == (303, "/mfa/")
    harness.clock.advance(100)
    expired = await harness.post("/mfa/recovery-codes/download", step)
    assert expired.status_code == 400 and EXPIRED in expired.text
    assert harness.store.displays != {}, "deleted when the next display is held, never shown again"


# signing in with a code


async def enrolled_with_codes(harness: Harness) -> list[str]:
    step, _secret = await set_up(harness)
    harness.set_step(step)
    codes = codes_on(await harness.client.get("/mfa/recovery-codes"))
    assert (await harness.post("/mfa/recovery-codes/saved", step, saved="yes")).status_code == 303
    harness.throttle.calls.clear()
    return codes


async def test_the_code_page_offers_a_recovery_code_form(harness: Harness) -> None:
    await enrolled_with_codes(harness)
    page = await harness.get(harness.otp_step())
    assert '<a href="/mfa/recovery" id="use-recovery-code">Use a recovery code</a>' in page.text
    harness.set_step(harness.otp_step())
    form = await harness.client.get("/mfa/recovery")
    assert form.status_code == 200
    assert 'action="/mfa/recovery"' in form.text
    assert '<label for="recovery_code">Recovery code</label>' in form.text
    assert 'name="recovery_code" type="text" autocomplete="one-time-code"' in form.text
    assert f'name="csrf_token" value="{CSRF}"' in form.text


async def test_a_set_up_page_user_has_no_recovery_form(harness: Harness) -> None:
    harness.set_step(harness.otp_step())
    response = await harness.client.get("/mfa/recovery")
    assert (response.status_code, response.headers["location"]) == (303, "/mfa/")


async def test_a_recovery_code_signs_in_once_and_says_how_many_are_left(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    codes = await enrolled_with_codes(harness)
    typed = codes[3].replace("-", " ").lower()
    response = await harness.post("/mfa/recovery", harness.otp_step(), recovery_code=typed)
    assert (response.status_code, response.headers["location"]) == (303, "/auth/login/complete")
    token = response.headers["set-cookie"].split(";")[0].removeprefix("login_step=")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["stage"], claims["amr"], claims["enrolled"]) == ("complete", ["pwd", "otp"], False)
    assert claims["recovery_codes_left"] == 9
    # Counted like a code; its success is for auth to clear when it consumes the complete step.
    assert [call[0] for call in harness.throttle.calls] == ["begin"]
    assert claims["clear_throttle"] == {"kind": "otp", "account": "alice", "ip": "127.0.0.1", "device": None}

    again = await harness.post("/mfa/recovery", harness.otp_step(), recovery_code=codes[3])
    assert again.status_code == 401 and WRONG_RECOVERY in again.text
    assert "set-cookie" not in again.headers
    second = await harness.post("/mfa/recovery", harness.otp_step(), recovery_code=codes[0])
    token = second.headers["set-cookie"].split(";")[0].removeprefix("login_step=")
    assert jwt.decode(token, options={"verify_signature": False})["recovery_codes_left"] == 8
    assert harness.store.outcomes("recovery_code_used") == ["ok", "ok"]
    assert harness.store.outcomes("recovery_code_failed") == ["invalid"]
    logged = caplog.text + repr(harness.store.audit)
    assert not any(code in logged or code.replace("-", "") in logged for code in codes)


async def test_wrong_recovery_codes_count_against_the_code_lockout(harness: Harness) -> None:
    codes = await enrolled_with_codes(harness)
    for attempt in range(5):
        wrong = await harness.post(
            "/mfa/recovery", harness.otp_step(), recovery_code=f"2222-2222-222{attempt + 2}"
        )
        assert wrong.status_code == 401
    assert harness.throttle.failures["alice"] == 5
    locked = await harness.post("/mfa/recovery", harness.otp_step(), recovery_code=codes[0])
    # The lock's own message, as on the code page: how long to wait.
    assert (locked.status_code, locked.headers["retry-after"]) == (429, "840")
    assert "Too many attempts: sign-in to this account is paused. Try again in 14 minutes" in locked.text
    assert WRONG_RECOVERY not in locked.text and "set-cookie" not in locked.headers
    assert '<script src="/mfa/static/local-time.js"></script>' in locked.text
    assert harness.store.outcomes("recovery_code_failed") == ["invalid"] * 5 + ["locked"]
    # Refused while locked, so the code was not spent.
    assert await harness.store.recovery_codes_left("user-alice") == CODES_PER_SET
    harness.throttle.unlock("alice")
    assert (
        await harness.post("/mfa/recovery", harness.otp_step(), recovery_code=codes[0])
    ).status_code == 303


async def test_the_recovery_form_keeps_csrf_and_the_step_binding(harness: Harness) -> None:
    codes = await enrolled_with_codes(harness)
    harness.set_step(harness.otp_step())
    no_csrf = await harness.client.post("/mfa/recovery", data={"recovery_code": codes[0]})
    assert no_csrf.status_code == 403
    other_browser = harness.otp_step(bnd="0" * 64)
    stolen = await harness.post("/mfa/recovery", other_browser, recovery_code=codes[0])
    assert stolen.status_code == 400 and EXPIRED in stolen.text
    used_step = harness.otp_step()
    assert (await harness.post("/mfa/recovery", used_step, recovery_code=codes[0])).status_code == 303
    replay = await harness.post("/mfa/recovery", used_step, recovery_code=codes[1])
    assert replay.status_code == 400 and EXPIRED in replay.text
    assert await harness.store.recovery_codes_left("user-alice") == CODES_PER_SET - 1


# support and ssoctl: the admin API


async def test_the_status_counts_the_codes_left_and_a_reset_deletes_them(harness: Harness) -> None:
    codes = await enrolled_with_codes(harness)
    assert (
        await harness.post("/mfa/recovery", harness.otp_step(), recovery_code=codes[0])
    ).status_code == 303
    admin = MfaAdmin(harness.store, harness.clock)
    assert (await admin.status("user-alice")).recovery_codes_left == CODES_PER_SET - 1
    await admin.reset(ResetMfa(operator="ops", reason="lost phone", user_id="user-alice", username="alice"))
    assert harness.store.recovery_codes == {} and harness.store.credentials == {}
    assert (await admin.status("user-alice")).recovery_codes_left == 0
