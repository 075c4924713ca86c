"""The Security page at /portal/security: 2FA status, the password, sessions, sign out everywhere."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.common.i18n import Text, current_language

from .routes import SessionCookie, forget_session, live_session, redirect
from .security import AccountSecurity, moment
from .state import PortalState, State
from .store import PortalSession

security_router = APIRouter()

LOGIN = "/portal/login"


def security_of(state: PortalState) -> AccountSecurity:
    if state.security is None:
        raise RuntimeError("this portal was made without its Security page's services")
    return state.security


@security_router.get("/portal/security")
async def security_page(request: Request, state: State, session_id: SessionCookie = None) -> Response:
    # Read again on every request: a session ended elsewhere, or a change made on another
    # device, shows at the next load.
    session = await live_session(state, session_id)
    if session is None:
        response = redirect(LOGIN)
        return forget_session(state, response) if session_id is not None else response
    return await security_view(request, state, session)


async def security_view(
    request: Request,
    state: PortalState,
    session: PortalSession,
    *,
    status_code: int = 200,
    notice: Text | None = None,
) -> HTMLResponse:
    """The page as it is now: every part read from its owner at each request."""
    mfa = await security_of(state).mfa_status(session.user_id)
    language = current_language.get()
    return state.pages.render(
        request,
        "security.html",
        status_code=status_code,
        username=session.username,
        notice=notice,
        mfa=mfa,
        mfa_since=moment(mfa.enrolled_since, language) if mfa.enrolled_since else None,
    )
