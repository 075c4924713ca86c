"""The Security page's recovery codes: new ones after a current code, shown once, with Download."""

import re
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import PlainTextResponse, Response

from services.common.errors import BadRequest
from services.common.i18n import Text
from services.common.web import _, check_csrf, client_ip, lock_message, retry_after, user_agent
from services.contracts.mfa import (
    RECOVERY_CODE_PATTERN,
    RECOVERY_CODES_PER_SET,
    RenewOutcome,
    RenewRecoveryCodes,
)

from .routes import CsrfToken, SessionCookie, live_session
from .security_routes import PAGE, security_of, security_view, to_login
from .state import State

recovery_router = APIRouter()

ENTER_A_CODE = _("Enter the 6-digit code from your app.")
# What the page says when mfa made no new codes; `locked` has the lock's own message.
REFUSALS: dict[RenewOutcome, tuple[int, Text]] = {
    "wrong_code": (401, _("That code didn't work. Enter the code your app shows now.")),
    "code_already_used": (
        401,
        _("That code has already been used. Wait for the next code in your app."),
    ),
    "clock_skew": (
        401,
        _("That code didn't work: your phone's clock seems to be off. Correct it and try again."),
    ),
    "not_enrolled": (
        400,
        _("Your authenticator app is not set up: your next sign-in sets it up, with recovery codes."),
    ),
}
NOT_THESE_CODES = _("These are not the recovery codes this page showed. Make new ones on the Security page.")

CODE = re.compile(RECOVERY_CODE_PATTERN)
CodeField = Annotated[str, Form(max_length=32)]
# The codes the page showed, sent back for the download (the portal keeps none).
CodesField = Annotated[list[str], Form(max_length=RECOVERY_CODES_PER_SET)]


@recovery_router.post(f"{PAGE}/recovery-codes")
async def security_new_recovery_codes(
    request: Request,
    state: State,
    csrf_token: CsrfToken = None,
    session_id: SessionCookie = None,
    code: CodeField = "",
) -> Response:
    check_csrf(request, csrf_token)
    session = await live_session(state, session_id)
    if session is None:
        return to_login(state, session_id)
    typed = "".join(code.split())
    if not typed:
        return await security_view(request, state, session, status_code=400, recovery_error=ENTER_A_CODE)
    renewed = await security_of(state).renew_recovery_codes(
        RenewRecoveryCodes(
            user_id=session.user_id,
            username=session.username,
            code=typed,
            ip=client_ip(request),
            user_agent=user_agent(request),
        )
    )
    if renewed.outcome == "locked":
        seconds = renewed.locked_seconds or 0
        page = await security_view(
            request, state, session, status_code=429, recovery_error=lock_message(seconds, state.clock.now())
        )
        page.headers.update(retry_after(seconds))
        return page
    if renewed.outcome != "renewed":
        status_code, message = REFUSALS[renewed.outcome]
        return await security_view(request, state, session, status_code=status_code, recovery_error=message)
    # Shown in this answer only: a reload sends the used code again, and mfa refuses it.
    # No language switch: its link would GET this page, which only answers the form.
    return state.pages.render(
        request,
        "security_recovery_codes.html",
        codes=renewed.codes,
        download_action=f"{PAGE}/recovery-codes/download",
        download_fields=[("codes", shown) for shown in renewed.codes],
        language_links=[],
    )


@recovery_router.post(f"{PAGE}/recovery-codes/download")
async def security_recovery_codes_download(
    request: Request,
    state: State,
    csrf_token: CsrfToken = None,
    session_id: SessionCookie = None,
    codes: CodesField = [],  # noqa: B006 - FastAPI copies a form default
) -> Response:
    check_csrf(request, csrf_token)
    session = await live_session(state, session_id)
    if session is None:
        return to_login(state, session_id)
    if len(codes) != RECOVERY_CODES_PER_SET or not all(CODE.fullmatch(shown) for shown in codes):
        raise BadRequest(
            NOT_THESE_CODES, detail=f"download of {len(codes)} values that are not recovery codes"
        )
    return PlainTextResponse(
        "".join(f"{shown}\n" for shown in codes),
        headers={"content-disposition": 'attachment; filename="recovery-codes.txt"'},
    )
