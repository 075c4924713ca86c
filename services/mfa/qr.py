"""The otpauth URI as a PNG QR code, inline as a data: URI (the CSP allows img-src data:)."""

import base64
import io

import qrcode
from qrcode.constants import ERROR_CORRECT_M


def qr_data_uri(text: str) -> str:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=8, border=4)
    code.add_data(text)
    code.make(fit=True)
    buffer = io.BytesIO()
    code.make_image().save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
