import base64
import os
from pathlib import Path

import pytest

from services.mfa.settings import Settings


def settings(**values: object) -> Settings:
    return Settings(signing_key_file=Path("/nonexistent.pem"), **values)  # type: ignore[arg-type]


def test_key_from_file_is_decoded_to_32_bytes(tmp_path: Path) -> None:
    key = os.urandom(32)
    key_file = tmp_path / "key"
    key_file.write_text(base64.b64encode(key).decode() + "\n")
    assert settings(encryption_key_file=key_file).encryption_key_bytes() == key


def test_env_variables_use_the_mfa_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    key = os.urandom(32)
    monkeypatch.setenv("MFA_ENCRYPTION_KEY", base64.b64encode(key).decode())
    monkeypatch.setenv("MFA_TOTP_WINDOW_STEPS", "2")
    loaded = settings()
    assert loaded.encryption_key_bytes() == key
    assert loaded.totp_window_steps == 2


@pytest.mark.parametrize(
    "value",
    [base64.b64encode(os.urandom(16)).decode(), "not base64!", "change-me", ""],
)
def test_refuses_a_key_that_is_not_32_bytes_of_base64(value: str) -> None:
    with pytest.raises(ValueError, match="MFA_ENCRYPTION_KEY"):
        settings(encryption_key=value).encryption_key_bytes()


def test_refuses_a_missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MFA_ENCRYPTION_KEY", raising=False)
    with pytest.raises(ValueError, match="MFA_ENCRYPTION_KEY"):
        settings().encryption_key_bytes()


def test_no_lockout_settings_and_a_clock_skew_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MFA_CLOCK_SKEW_HINT_STEPS", "6")
    loaded = settings()
    assert loaded.clock_skew_hint_steps == 6
    assert not hasattr(loaded, "max_failed_attempts") and not hasattr(loaded, "lockout_seconds")
