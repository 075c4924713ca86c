"""Independent tools the stack tests check the product with: oathtool for codes, zbarimg for QR codes."""

import base64
import shutil
import subprocess
import tempfile
import time

import pytest

TOTP_PERIOD = 30


def _require(command: str) -> str:
    path = shutil.which(command)
    if path is None:
        pytest.fail(f"{command} not found: run `make system-deps`")
    return path


def totp_now(secret: str, offset_steps: int = 0) -> str:
    """The code for `secret`, from oathtool: a generator independent of the one under test."""
    command = [_require("oathtool"), "--totp", "-b"]
    if offset_steps:
        command += ["-N", f"@{int(time.time()) + offset_steps * TOTP_PERIOD}"]
    secret = secret.replace(" ", "").upper()
    return subprocess.run([*command, secret], capture_output=True, text=True, check=True).stdout.strip()


def decode_qr(png: bytes | str) -> str:
    """The text of the QR code in a PNG, given as bytes or as a data: URI, read by zbarimg."""
    if isinstance(png, str):
        png = base64.b64decode(png.split(",", 1)[1] if png.startswith("data:") else png)
    with tempfile.NamedTemporaryFile(suffix=".png") as image:
        image.write(png)
        image.flush()
        result = subprocess.run(
            [_require("zbarimg"), "--raw", "-q", image.name], capture_output=True, text=True
        )
    if result.returncode != 0:
        raise AssertionError(f"no QR code found (zbarimg exit {result.returncode})")
    return result.stdout.rstrip("\n")
