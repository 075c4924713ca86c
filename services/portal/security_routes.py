"""The Security page at /portal/security: 2FA status, the password, sessions, sign out everywhere."""

from typing import Annotated

from fastapi import APIRouter, Cookie, Form, Request
from fastapi.responses import HTMLResponse, Response

from services.common.i18n import Text, current_language
from services.common.web import _, check_csrf, client_ip, delete_cookie, set_cookie, user_agent
from services.contracts.auth import ChangePassword, PasswordChangeOutcome

from .routes import CsrfToken, SessionCookie, forget_session, live_session, redirect
from .security import AccountSecurity, device_text, moment
from .state import PortalState, State
from .store import PortalSession

security_router = APIRouter()

LOGIN = "/portal/login"
PAGE = "/portal/security"
# What the page says once after a change made by the form (a cookie: no link can show it).
NOTICE_COOKIE = "portal_security_notice"
NOTICES: dict[str, Text] = {
    "password_changed": _(
        "Your password has been changed. Your other devices have been signed out: "
        "sign in there with your new password."
    ),
    "session_ended": _("That device has been signed out."),
}

# Each refusal of a new password, calm, with its status; auth decides all but the two fields' match.
PASSWORD_REFUSALS: dict[PasswordChangeOutcome, tuple[int, Text]] = {
    "wrong_current": (401, _("That is not your current password.")),
    "locked": (
        429,
        _("Too many wrong passwords: signing in with a password is paused for a while. Try again later."),
    ),
    "same_as_current": (400, _("The new password is your current one. Choose a different one.")),
    "too_short": (400, _("A password needs at least 12 characters.")),
    "too_long": (400, _("A password can have at most 1024 characters.")),
    "contains_username": (400, _("The new password must not contain your username.")),
    "common": (
        400,
        _("That password is too common or too easy to guess. Try a few unrelated words, or a longer phrase."),
    ),
}
NOT_THE_SAME = _("The two new passwords are not the same.")
FILL_IN_ALL = _("Enter your current password, then the new one twice.")

PasswordField = Annotated[str, Form(max_length=2048)]
HandleField = Annotated[str, Form(max_length=64)]
NO_SUCH_SESSION = _("That session has already ended.")


def security_of(state: PortalState) -> AccountSecurity:
    if state.security is None:
        raise RuntimeError("this portal was made without its Security page's services")
    return state.security


def to_login(state: PortalState, session_id: str | None) -> Response:
    response = redirect(LOGIN)
    return forget_session(state, response) if session_id is not None else response


@security_router.get(PAGE)
async def security_page(
    request: Request,
    state: State,
    session_id: SessionCookie = None,
    notice: Annotated[str | None, Cookie(alias=NOTICE_COOKIE)] = None,
) -> Response:
    # Read again on every request: a session ended elsewhere, or a change made on another
    # device, shows at the next load.
    session = await live_session(state, session_id)
    if session is None:
        return to_login(state, session_id)
    response = await security_view(request, state, session, notice=NOTICES.get(notice or ""))
    if notice is not None:
        delete_cookie(response, NOTICE_COOKIE, secure=state.secure_cookies, path=PAGE)
    return response


@security_router.post(f"{PAGE}/password")
async def security_change_password(
    request: Request,
    state: State,
    csrf_token: CsrfToken = None,
    session_id: SessionCookie = None,
    current_password: PasswordField = "",
    new_password: PasswordField = "",
    new_password_again: PasswordField = "",
) -> Response:
    check_csrf(request, csrf_token)
    session = await live_session(state, session_id)
    if session is None:
        return to_login(state, session_id)
    if not (current_password and new_password and new_password_again):
        return await security_view(request, state, session, status_code=400, password_error=FILL_IN_ALL)
    if new_password != new_password_again:
        return await security_view(request, state, session, status_code=400, password_error=NOT_THE_SAME)
    changed = await security_of(state).change_password(
        ChangePassword(
            user_id=session.user_id,
            keep_sid=session.sid,
            current_password=current_password,
            new_password=new_password[:1025],
            ip=client_ip(request),
            user_agent=user_agent(request),
        )
    )
    if changed.outcome != "changed":
        status_code, message = PASSWORD_REFUSALS[changed.outcome]
        return await security_view(request, state, session, status_code=status_code, password_error=message)
    # The customer's other sessions have ended: this process's portal pages know at once.
    state.sessions.forget(session.user_id)
    return with_notice(state, "password_changed")


def with_notice(state: PortalState, notice: str) -> Response:
    """Back to the page, which says `notice` once."""
    response = redirect(PAGE)
    set_cookie(response, NOTICE_COOKIE, notice, secure=state.secure_cookies, path=PAGE, max_age=60)
    return response


@security_router.post(f"{PAGE}/sessions/end")
async def security_end_session(
    request: Request,
    state: State,
    csrf_token: CsrfToken = None,
    session_id: SessionCookie = None,
    session: HandleField = "",
) -> Response:
    check_csrf(request, csrf_token)
    current = await live_session(state, session_id)
    if current is None:
        return to_login(state, session_id)
    security = security_of(state)
    # Only a handle of this customer's own sessions names anything; the session service checks
    # again that the sid is theirs.
    chosen = state.session_handles.find(session, await security.sessions_of(current.user_id))
    if chosen is None or chosen.sid == current.sid:
        return await security_view(request, state, current, status_code=400, sessions_error=NO_SUCH_SESSION)
    if not await security.end_session_of(current.user_id, chosen.sid):
        return await security_view(request, state, current, status_code=400, sessions_error=NO_SUCH_SESSION)
    # That device's portal sessions have ended: this process's portal pages know at once.
    state.sessions.forget(current.user_id)
    return with_notice(state, "session_ended")


async def security_view(
    request: Request,
    state: PortalState,
    session: PortalSession,
    *,
    status_code: int = 200,
    notice: Text | None = None,
    password_error: Text | None = None,
    sessions_error: Text | None = None,
    recovery_error: Text | None = None,
) -> HTMLResponse:
    """The page as it is now: every part read from its owner at each request."""
    security = security_of(state)
    mfa = await security.mfa_status(session.user_id)
    language = current_language.get()
    sessions = [
        {
            "handle": state.session_handles.handle(live.sid),
            "device": device_text(live.device),
            "address": live.address,
            "signed_in": moment(live.auth_time, language),
            "this_device": live.sid == session.sid,
        }
        for live in await security.sessions_of(session.user_id)
    ]
    return state.pages.render(
        request,
        "security.html",
        status_code=status_code,
        username=session.username,
        notice=notice,
        password_error=password_error,
        sessions_error=sessions_error,
        sessions=sessions,
        recovery_error=recovery_error,
        local_time=True,
        mfa=mfa,
        mfa_since=moment(mfa.enrolled_since, language) if mfa.enrolled_since else None,
    )
