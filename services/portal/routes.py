"""The portal's pages: landing, sign-in round trip through auth, the portal, and sign-out."""

from typing import Annotated

from fastapi import APIRouter, Cookie, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.common.web import check_csrf, delete_cookie, set_cookie

from .oidc_login import LoginFailed
from .state import PortalState, State
from .store import PortalSession

LOGIN_COOKIE = "portal_login"
LOGIN_COOKIE_PATH = "/portal"
SESSION_COOKIE = "portal_session"
# Set by "Sign out everywhere" for the landing page it comes back to, which says so once. A
# cookie, not a query parameter: no link from elsewhere can show the notice.
SIGNED_OUT_COOKIE = "portal_signed_out"

router = APIRouter()


SessionCookie = Annotated[str | None, Cookie(alias=SESSION_COOKIE)]
LoginCookie = Annotated[str | None, Cookie(alias=LOGIN_COOKIE)]
CsrfToken = Annotated[str | None, Form()]


async def live_session(state: PortalState, session_id: str | None) -> PortalSession | None:
    return None if session_id is None else await state.sessions.find(session_id)


def redirect(url: str, status_code: int = 303) -> RedirectResponse:
    return RedirectResponse(url, status_code=status_code)


def forget_session(state: PortalState, response: Response) -> Response:
    delete_cookie(response, SESSION_COOKIE, secure=state.secure_cookies)
    return response


@router.get("/")
async def landing(
    request: Request,
    state: State,
    session_id: SessionCookie = None,
    signed_out: Annotated[str | None, Cookie(alias=SIGNED_OUT_COOKIE)] = None,
) -> Response:
    if await live_session(state, session_id) is not None:
        return redirect("/portal/")
    everywhere = signed_out == "everywhere"
    response = state.pages.render(request, "landing.html", signed_out_everywhere=everywhere)
    if signed_out is not None:
        delete_cookie(response, SIGNED_OUT_COOKIE, secure=state.secure_cookies)
    return response


@router.get("/portal/login")
async def login_start(state: State) -> Response:
    authorize_url, sealed = state.oidc.begin()
    response = redirect(authorize_url, 302)
    set_cookie(
        response, LOGIN_COOKIE, sealed, secure=state.secure_cookies, path=LOGIN_COOKIE_PATH, max_age=600
    )
    return response


@router.get("/portal/callback")
async def login_callback(
    request: Request,
    state: State,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    login_state: Annotated[str | None, Query(alias="state", max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
    sealed: LoginCookie = None,
    session_id: SessionCookie = None,
) -> Response:
    # Back or reload after signing in: the transaction is spent, the session is live.
    if sealed is None and await live_session(state, session_id) is not None:
        return redirect("/portal/")
    if error is not None:
        raise state.oidc.refused(error)
    signed_in = await state.oidc.complete(sealed, code, login_state)
    if session_id is not None:
        # A new sign-in replaces the browser's old portal session; it must not linger.
        await state.sessions.end(session_id)
    session = await state.sessions.create(signed_in)
    if session is None:
        raise LoginFailed(detail="the SSO session ended before the portal session was made")
    response = redirect("/portal/")
    set_cookie(
        response,
        SESSION_COOKIE,
        session.session_id,
        secure=state.secure_cookies,
        max_age=max(0, session.expires_at - int(state.clock.now())),
    )
    delete_cookie(response, LOGIN_COOKIE, secure=state.secure_cookies, path=LOGIN_COOKIE_PATH)
    return response


@router.get("/portal/")
async def portal_home(request: Request, state: State, session_id: SessionCookie = None) -> Response:
    # The one page that may show a session checked up to 1 s ago (PORTAL_SESSION_CHECK_SECONDS).
    session = None if session_id is None else await state.sessions.find_recent(session_id)
    if session is None:
        response = redirect("/")
        return forget_session(state, response) if session_id is not None else response
    return state.pages.render(request, "home.html", username=session.username)


async def end_portal_session(
    request: Request, state: PortalState, csrf_token: str | None, session_id: str | None, outcome: str
) -> PortalSession | None:
    """What both log-out buttons do first: end the portal session and audit it; returns what it was."""
    check_csrf(request, csrf_token)
    session = await live_session(state, session_id)
    if session_id is not None:
        await state.sessions.end(session_id)
    await state.logout_audit.record(request, session, outcome)
    return session


@router.post("/portal/logout")
async def logout(
    request: Request, state: State, csrf_token: CsrfToken = None, session_id: SessionCookie = None
) -> Response:
    await end_portal_session(request, state, csrf_token, session_id, "portal")
    return forget_session(state, redirect("/"))


@router.post("/portal/logout-everywhere")
async def logout_everywhere(
    request: Request, state: State, csrf_token: CsrfToken = None, session_id: SessionCookie = None
) -> Response:
    session = await end_portal_session(request, state, csrf_token, session_id, "everywhere")
    if session is None:
        return forget_session(state, redirect("/"))
    # Every device: all the customer's SSO and portal sessions, not only this browser's. auth's
    # logout then clears this browser's SSO cookie and comes back to the landing page.
    await state.sessions.end_every_session_of(session.user_id)
    response = forget_session(state, redirect(state.oidc.logout_url()))
    set_cookie(response, SIGNED_OUT_COOKIE, "everywhere", secure=state.secure_cookies, max_age=300)
    return response
