"""The browser's pages at /mfa/: parse, call the domain, render."""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from markupsafe import Markup

from services.common.errors import Forbidden, NotFound, ServiceError
from services.common.i18n import Text, ngettext_now
from services.common.step_tokens import StepExpired
from services.common.web import (
    SETUP_EXPIRED,
    STEP_COOKIE,
    _,
    browser_binding,
    check_csrf,
    client_ip,
    lock_message,
    retry_after,
    set_cookie,
    user_agent,
)
from services.contracts.admin import MfaStatus, UserRef
from services.contracts.auth import account_key
from services.contracts.mfa import (
    OWN_MFA_STATUS,
    RENEW_RECOVERY_CODES,
    RecoveryCodesRenewed,
    RenewRecoveryCodes,
)

from .audit import SIGN_IN_OTP, Origin
from .enrollment import ClockSkew, Locked, Outcome, PendingSetup, User
from .login_step import OtpStep, StepReplayed
from .qr import qr_data_uri
from .state import MfaState, State

router = APIRouter(prefix="/mfa")

WRONG_CODE = _("That code didn't work. Enter the code your app shows now.")
CODE_ALREADY_USED = _("That code has already been used. Wait for the next code in your app.")
WRONG_RECOVERY_CODE = _("That recovery code didn't work. Check it and try again.")
TICK_SAVED = _("Tick “I have saved these codes” to go on.")


class SetupExpired(ServiceError):
    status_code = 400
    code = SETUP_EXPIRED
    message = _(
        "Your set-up has expired: the QR code you scanned no longer works. "
        "Delete that entry from your authenticator app, then start again."
    )


class AlreadyEnrolled(Forbidden):
    code = "already_enrolled"
    message = _(
        "An authenticator is already set up for this account. "
        "Please start again from the customer portal and enter a code from it."
    )


def clock_skew_hint(skew: ClockSkew) -> str:
    if skew.ahead:
        template = ngettext_now(
            "Your phone's clock seems to be about %(n)d minute ahead. Correct it and try again.",
            "Your phone's clock seems to be about %(n)d minutes ahead. Correct it and try again.",
            skew.minutes,
        )
    else:
        template = ngettext_now(
            "Your phone's clock seems to be about %(n)d minute behind. Correct it and try again.",
            "Your phone's clock seems to be about %(n)d minutes behind. Correct it and try again.",
            skew.minutes,
        )
    return template % {"n": skew.minutes}


# Generous limits: a calm 400 for junk, while "123 456" still reaches the check.
CodeField = Annotated[str, Form(max_length=32)]
RecoveryCodeField = Annotated[str, Form(max_length=64)]
CsrfField = Annotated[str, Form(max_length=128)]
TickField = Annotated[str, Form(max_length=16)]


def origin_of(request: Request) -> Origin:
    return Origin(client_ip(request), user_agent(request))


async def read_step(request: Request, state: MfaState) -> OtpStep:
    try:
        return await state.login_steps.read(request.cookies.get(STEP_COOKIE), browser_binding(request))
    except StepReplayed as replay:
        if await state.login_steps.consumed.first_replay(replay.jti):
            await state.audit.record(
                SIGN_IN_OTP,
                "replayed",
                user_id=replay.user.id,
                username=replay.user.username,
                origin=origin_of(request),
            )
        raise


def typed_code(code: str) -> str:
    """Apps show codes as '123 456'; spaces pasted along are not part of the code."""
    return "".join(code.split())


def setup_page(
    request: Request, state: MfaState, setup: PendingSetup, status_code: int = 200, error: Text | None = None
) -> HTMLResponse:
    return state.pages.render(
        request,
        "setup.html",
        status_code=status_code,
        # In groups of four for typing; Copy copies it without the spaces.
        secret_groups=[setup.secret[i : i + 4] for i in range(0, len(setup.secret), 4)],
        otpauth_uri=setup.provisioning_uri,
        qr_code=qr_data_uri(setup.provisioning_uri),
        error=error,
    )


def code_page(
    request: Request, state: MfaState, status_code: int = 200, error: Text | None = None
) -> HTMLResponse:
    # A lock's message holds a <time>, which local-time.js shows in the browser's time zone.
    local_time = isinstance(error, Markup)
    return state.pages.render(
        request, "code.html", status_code=status_code, error=error, local_time=local_time
    )


def recovery_codes_page(
    request: Request, state: MfaState, codes: list[str], status_code: int = 200, error: Text | None = None
) -> HTMLResponse:
    return state.pages.render(
        request,
        "recovery_codes.html",
        status_code=status_code,
        codes=codes,
        download_action="/mfa/recovery-codes/download",
        error=error,
    )


def recovery_page(
    request: Request, state: MfaState, status_code: int = 200, error: Text | None = None
) -> HTMLResponse:
    return state.pages.render(
        request,
        "recovery.html",
        status_code=status_code,
        error=error,
        local_time=isinstance(error, Markup),
    )


def recovery_codes_file(codes: list[str]) -> PlainTextResponse:
    """One code per line, as a download: no script runs, nothing for the CSP to block."""
    return PlainTextResponse(
        "".join(f"{code}\n" for code in codes),
        headers={"content-disposition": 'attachment; filename="recovery-codes.txt"'},
    )


async def complete_login(
    request: Request,
    state: MfaState,
    step: OtpStep,
    enrolled: bool,
    recovery_codes_left: int | None = None,
    *,
    counted_code: bool,
) -> RedirectResponse:
    """counted_code: a code auth counted was right, so auth clears its failure counts when it
    consumes the complete step; False for the set-up's code, which is never counted."""
    token = await state.login_steps.complete(
        step,
        browser_binding(request),
        enrolled,
        recovery_codes_left,
        code_accepted_from=client_ip(request) if counted_code else None,
    )
    return complete_step_response(state, token)


def complete_step_response(state: MfaState, token: str) -> RedirectResponse:
    """On to auth's Continue page with the `complete` step."""
    response = RedirectResponse("/auth/login/complete", status_code=303)
    set_cookie(
        response,
        STEP_COOKIE,
        token,
        secure=state.settings.peers.secure_cookies,
        max_age=state.settings.step_token_ttl_seconds,
    )
    return response


@router.get("/", response_class=HTMLResponse)
async def mfa_start(request: Request, state: State) -> Response:
    step = await read_step(request, state)
    # One SELECT read all this page decides on (LoginSteps.read): enrolled, set-up, codes shown.
    setup = await state.enrollment.start_or_resume(
        step.user, origin_of(request), browser_binding(request), step.records
    )
    if isinstance(setup, PendingSetup):
        return setup_page(request, state, setup)
    if state.recovery.displayed(step.user, step.jti, step.records.recovery_display) is not None:
        # Back from the recovery codes of this very set-up: they still wait for the tick.
        return RedirectResponse("/mfa/recovery-codes", status_code=303)
    return code_page(request, state)


@router.post("/setup")
async def mfa_setup_confirm(
    request: Request, state: State, code: CodeField = "", csrf_token: CsrfField = ""
) -> Response:
    check_csrf(request, csrf_token)
    step = await read_step(request, state)
    origin, browser = origin_of(request), browser_binding(request)
    outcome = await state.enrollment.confirm(step.user, typed_code(code), origin, browser)
    if outcome is Outcome.OK:
        # The first set-up: its recovery codes are shown once before the Continue page.
        codes = await state.recovery.issue(step.user, origin, why="enrollment")
        await state.recovery.hold_for_display(step.user, step.jti, codes, step.expires_at)
        return RedirectResponse("/mfa/recovery-codes", status_code=303)
    if outcome is Outcome.ALREADY_ENROLLED:
        raise AlreadyEnrolled(detail=f"set-up posted by enrolled user_id={step.user.id}")
    if outcome is Outcome.SETUP_EXPIRED:
        raise SetupExpired(detail=f"set-up expired for user_id={step.user.id}")
    setup = await state.enrollment.start_or_resume(step.user, origin, browser)
    if not isinstance(setup, PendingSetup):
        raise AlreadyEnrolled(detail=f"enrolled meanwhile: user_id={step.user.id}")
    error = clock_skew_hint(outcome) if isinstance(outcome, ClockSkew) else WRONG_CODE
    return setup_page(request, state, setup, status_code=401, error=error)


@router.post("/verify")
async def mfa_verify(
    request: Request, state: State, code: CodeField = "", csrf_token: CsrfField = ""
) -> Response:
    check_csrf(request, csrf_token)
    step = await read_step(request, state)
    if step.account is None:
        # auth throttles by account: without one, no code is checked (see the contract).
        raise StepExpired(detail=f"otp step token without account for user_id={step.user.id}")
    # auth clears the failure counts when it consumes the complete step, not at a call now. A
    # right code consumes the step in the statement that records its TOTP step.
    outcome = await state.enrollment.verify(
        step.user,
        step.account,
        typed_code(code),
        origin_of(request),
        step.device,
        clear_now=False,
        sign_in=step.code_step(),
    )
    if outcome is Outcome.OK:
        token = state.login_steps.complete_consumed(step, browser_binding(request), client_ip(request))
        return complete_step_response(state, token)
    if outcome is Outcome.STEP_REPLAYED:
        raise StepReplayed(step.user, step.jti, detail="step token consumed during its code check")
    if outcome is Outcome.NOT_ENROLLED:
        return RedirectResponse("/mfa/", status_code=303)
    if isinstance(outcome, Locked):
        # After the password: telling of the lock gives away nothing its holder does not know.
        page = code_page(
            request, state, status_code=429, error=lock_message(outcome.seconds, state.enrollment.clock.now())
        )
        page.headers.update(retry_after(outcome.seconds))
        return page
    error: Text
    if isinstance(outcome, ClockSkew):
        error = clock_skew_hint(outcome)
    elif outcome is Outcome.CODE_ALREADY_USED:
        error = CODE_ALREADY_USED
    else:
        error = WRONG_CODE
    return code_page(request, state, status_code=401, error=error)


@router.get("/recovery-codes", response_class=HTMLResponse)
async def mfa_recovery_codes_show(request: Request, state: State) -> Response:
    step = await read_step(request, state)
    codes = state.recovery.displayed(step.user, step.jti, step.records.recovery_display)
    if codes is None:
        return RedirectResponse("/mfa/", status_code=303)
    return recovery_codes_page(request, state, codes)


@router.post("/recovery-codes/download")
async def mfa_recovery_codes_download(request: Request, state: State, csrf_token: CsrfField = "") -> Response:
    check_csrf(request, csrf_token)
    step = await read_step(request, state)
    codes = state.recovery.displayed(step.user, step.jti, step.records.recovery_display)
    if codes is None:
        return RedirectResponse("/mfa/", status_code=303)
    return recovery_codes_file(codes)


@router.post("/recovery-codes/saved")
async def mfa_recovery_codes_saved(
    request: Request, state: State, saved: TickField = "", csrf_token: CsrfField = ""
) -> Response:
    check_csrf(request, csrf_token)
    step = await read_step(request, state)
    if saved != "yes":
        codes = state.recovery.displayed(step.user, step.jti, step.records.recovery_display)
        if codes is None:
            return RedirectResponse("/mfa/", status_code=303)
        return recovery_codes_page(request, state, codes, status_code=400, error=TICK_SAVED)
    if not await state.recovery.end_display(step.user, step.jti):
        return RedirectResponse("/mfa/", status_code=303)
    return await complete_login(request, state, step, enrolled=True, counted_code=False)


@router.get("/recovery", response_class=HTMLResponse)
async def mfa_recovery_start(request: Request, state: State) -> Response:
    step = await read_step(request, state)
    if not step.enrolled:
        return RedirectResponse("/mfa/", status_code=303)
    return recovery_page(request, state)


@router.post("/recovery")
async def mfa_recovery_verify(
    request: Request, state: State, recovery_code: RecoveryCodeField = "", csrf_token: CsrfField = ""
) -> Response:
    check_csrf(request, csrf_token)
    step = await read_step(request, state)
    if step.account is None:
        raise StepExpired(detail=f"otp step token without account for user_id={step.user.id}")
    if not step.enrolled:
        return RedirectResponse("/mfa/", status_code=303)
    outcome = await state.recovery.sign_in(
        step.user, step.account, recovery_code, origin_of(request), step.device
    )
    if outcome.locked_seconds is not None:
        # The same lock, and the same answer, as for codes from the app.
        page = recovery_page(
            request,
            state,
            status_code=429,
            error=lock_message(outcome.locked_seconds, state.enrollment.clock.now()),
        )
        page.headers.update(retry_after(outcome.locked_seconds))
        return page
    if not outcome.ok:
        return recovery_page(request, state, status_code=401, error=WRONG_RECOVERY_CODE)
    return await complete_login(
        request, state, step, enrolled=False, recovery_codes_left=outcome.left, counted_code=True
    )


# internal: what the portal asks of mfa for the customer's own Security page (services.contracts.mfa)

internal = APIRouter()


async def calling_service(request: Request, state: State) -> str:
    if state.callers is None:
        raise NotFound(detail="this app serves no internal API")
    return await state.callers(request)


@internal.post(OWN_MFA_STATUS.path)
async def own_mfa_status(
    body: UserRef, state: State, caller: Annotated[str, Depends(calling_service)]
) -> MfaStatus:
    OWN_MFA_STATUS.allow(caller)
    if state.admin is None:
        raise NotFound(detail="this app serves no authenticator status")
    # The support desk's rules, so the customer and the desk read the authenticator alike.
    return await state.admin.status(body.user_id)


@internal.post(RENEW_RECOVERY_CODES.path)
async def own_recovery_codes_renew(
    body: RenewRecoveryCodes, state: State, caller: Annotated[str, Depends(calling_service)]
) -> RecoveryCodesRenewed:
    """New recovery codes for the Security page, after a current code checked as at sign-in."""
    RENEW_RECOVERY_CODES.allow(caller)
    user, origin = User(body.user_id, body.username), Origin(body.ip, body.user_agent)
    # No device: the portal's browser carries no device cookie of auth's (Path=/auth/login).
    # No complete step follows: auth is told of a right code now (/internal/attempts/succeeded).
    outcome = await state.enrollment.verify(
        user, account_key(body.username), typed_code(body.code), origin, clear_now=True
    )
    if outcome is Outcome.OK:
        return RecoveryCodesRenewed(
            outcome="renewed", codes=await state.recovery.issue(user, origin, why="renewed")
        )
    if isinstance(outcome, Locked):
        return RecoveryCodesRenewed(outcome="locked", locked_seconds=outcome.seconds)
    if isinstance(outcome, ClockSkew):
        return RecoveryCodesRenewed(outcome="clock_skew", skew_seconds=outcome.seconds)
    if outcome is Outcome.NOT_ENROLLED:
        return RecoveryCodesRenewed(outcome="not_enrolled")
    if outcome is Outcome.CODE_ALREADY_USED:
        return RecoveryCodesRenewed(outcome="code_already_used")
    return RecoveryCodesRenewed(outcome="wrong_code")
