import base64
from itertools import count

import pyotp
import pytest

from services.common.clock import FrozenClock
from services.mfa import totp
from services.mfa.totp import TotpVerifier, hotp, secret_key

# RFC 6238 appendix B: the ASCII key "12345678901234567890", SHA1, truncated to 6 digits.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()

clock = FrozenClock()
verifier = TotpVerifier("Orange Business", window_steps=1)
SECRET = verifier.generate_secret()


def code_at_offset(steps: int) -> str:
    return pyotp.TOTP(SECRET).at(clock.now() + steps * 30)


def test_provisioning_uri_is_exactly_what_authenticator_apps_expect() -> None:
    uri = verifier.provisioning_uri("JBSWY3DPEHPK3PXP", "USERNAME")
    assert uri == (
        "otpauth://totp/Orange%20Business:USERNAME?secret=JBSWY3DPEHPK3PXP"
        "&issuer=Orange%20Business&algorithm=SHA1&digits=6&period=30"
    )


def test_provisioning_uri_escapes_the_username_so_it_cannot_add_parameters() -> None:
    uri = verifier.provisioning_uri("JBSWY3DPEHPK3PXP", "eve?secret=AAAA&x=1/é")
    assert uri.startswith("otpauth://totp/Orange%20Business:eve%3Fsecret%3DAAAA%26x%3D1%2F%C3%A9?")
    assert uri.count("secret=") == 1


def test_secret_has_160_random_bits() -> None:
    secret = verifier.generate_secret()
    assert len(secret) == 32
    assert len(base64.b32decode(secret)) * 8 >= 160
    assert secret != verifier.generate_secret()


def test_secret_comes_from_the_injected_random_source() -> None:
    counter = count()
    fixed = TotpVerifier("Orange Business", random_bytes=lambda n: bytes(next(counter) for _ in range(n)))
    assert base64.b32decode(fixed.generate_secret()) == bytes(range(20))


@pytest.mark.parametrize(("now", "code"), [(59, "287082"), (1111111109, "081804"), (1234567890, "005924")])
def test_rfc_6238_vectors(now: int, code: str) -> None:
    assert verifier.validate(RFC_SECRET, code, now) == now // 30


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_accepts_codes_from_one_step_either_side(offset: int) -> None:
    current_step = int(clock.now() // 30)
    assert verifier.validate(SECRET, code_at_offset(offset), clock.now()) == current_step + offset


@pytest.mark.parametrize("offset", [-2, 2, 10])
def test_refuses_codes_outside_the_window(offset: int) -> None:
    assert verifier.validate(SECRET, code_at_offset(offset), clock.now()) is None


def test_a_wider_window_accepts_further_steps() -> None:
    wide = TotpVerifier("Orange Business", window_steps=2)
    assert wide.validate(SECRET, code_at_offset(2), clock.now()) is not None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda code: code[:5],
        lambda code: code + "0",
        lambda code: " " + code,
        lambda code: code + "\n",
        lambda code: "".join(chr(ord("٠") + int(digit)) for digit in code),  # Arabic-Indic digits
        lambda code: "",
        lambda code: "abcdef",
    ],
)
def test_refuses_anything_but_exactly_six_ascii_digits(mangle) -> None:  # type: ignore[no-untyped-def]
    right = code_at_offset(0)
    assert verifier.validate(SECRET, right, clock.now()) is not None
    assert verifier.validate(SECRET, mangle(right), clock.now()) is None


def test_options_are_those_of_google_authenticator() -> None:
    assert (verifier.options.algorithm, verifier.options.digits, verifier.options.period) == ("SHA1", 6, 30)


@pytest.mark.parametrize(
    ("offset", "skew"), [(2, 2), (-2, -2), (10, 10), (-10, -10), (11, None), (-11, None)]
)
def test_check_tells_how_far_off_a_code_outside_the_window_is(offset: int, skew: int | None) -> None:
    check = verifier.check(SECRET, code_at_offset(offset), clock.now())
    assert (check.step, check.skew_steps) == (None, skew)


def test_check_accepts_only_within_the_window() -> None:
    check = verifier.check(SECRET, code_at_offset(1), clock.now())
    assert (check.step, check.skew_steps) == (int(clock.now() // 30) + 1, None)


def test_check_does_the_same_work_for_any_code(monkeypatch: pytest.MonkeyPatch) -> None:
    computed: list[int] = []
    decoded: list[str] = []
    real_hotp, real_key = totp.hotp, totp.secret_key

    def counting_hotp(key: bytes, step: int) -> str:
        computed.append(step)
        return real_hotp(key, step)

    def counting_key(secret: str) -> bytes:
        decoded.append(secret)
        return real_key(secret)

    monkeypatch.setattr(totp, "hotp", counting_hotp)
    monkeypatch.setattr(totp, "secret_key", counting_key)
    counts = []
    for code in (
        code_at_offset(0),
        code_at_offset(5),
        "000000" if code_at_offset(0) != "000000" else "111111",
    ):
        computed.clear()
        decoded.clear()
        verifier.check(SECRET, code, clock.now())
        counts.append((len(computed), len(decoded)))
    # 21 steps, out to the skew hint's reach either side, and the secret decoded once for them all.
    assert counts == [(21, 1), (21, 1), (21, 1)]


# RFC 4226 appendix D: HOTP of the ASCII key "12345678901234567890" for counters 0 to 9.
RFC_4226_CODES = [
    "755224",
    "287082",
    "359152",
    "969429",
    "338314",
    "254676",
    "287922",
    "162583",
    "399871",
    "520489",
]


def test_hotp_gives_the_rfc_4226_vectors() -> None:
    key = secret_key(RFC_SECRET)
    assert key == b"12345678901234567890"
    assert [hotp(key, counter) for counter in range(10)] == RFC_4226_CODES


@pytest.mark.parametrize(("now", "code"), [(59, "287082"), (1111111109, "081804"), (2000000000, "279037")])
def test_oathtool_and_rfc_6238_codes_check_at_their_step(now: int, code: str) -> None:
    # `oathtool --totp -b -N @2000000000 GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ` says 279037.
    assert verifier.check(RFC_SECRET, code, now).step == now // 30


def test_the_secret_is_read_as_the_apps_read_it() -> None:
    # Lower case and without padding alike, as pyotp (and the apps) read a base32 secret.
    unpadded = base64.b32encode(b"0123456789abcdef").decode().rstrip("=")
    assert secret_key(unpadded.lower()) == secret_key(unpadded) == b"0123456789abcdef"
    step = int(clock.now() // 30)
    assert [hotp(secret_key(SECRET), step + n) for n in range(-3, 4)] == [
        pyotp.HOTP(SECRET).at(step + n) for n in range(-3, 4)
    ]


def test_no_skew_hint_when_the_window_reaches_as_far() -> None:
    wide = TotpVerifier("Orange Business", window_steps=3, skew_steps=3)
    assert wide.check(SECRET, code_at_offset(4), clock.now()).skew_steps is None
