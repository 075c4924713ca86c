"""The support desk at /support/: sign-in (fresh, both factors), search, a customer's file, actions."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Cookie, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.common.errors import BadRequest, Forbidden
from services.common.i18n import Text
from services.common.web import _, check_csrf, client_ip, delete_cookie, set_cookie, user_agent
from services.contracts.admin import Origin

from .oidc_login import LoginFailed
from .routes import SESSION_COOKIE, live_session
from .state import PortalState, State, SupportState
from .store import PortalSession
from .support import AUDIT_EVENTS_SHOWN, Action, SupportSessionOver

SUPPORT_COOKIE = "support_session"
ACTIVITY_COOKIE = "support_activity"
LOGIN_COOKIE = "support_login"
COOKIE_PATH = "/support"

support_router = APIRouter(prefix="/support")

SupportCookie = Annotated[str | None, Cookie(alias=SUPPORT_COOKIE)]
ActivityCookie = Annotated[str | None, Cookie(alias=ACTIVITY_COOKIE)]
LoginCookie = Annotated[str | None, Cookie(alias=LOGIN_COOKIE)]
PortalCookie = Annotated[str | None, Cookie(alias=SESSION_COOKIE)]
Name = Annotated[str, Query(min_length=1, max_length=256)]


def desk_of(state: PortalState) -> SupportState:
    if state.support is None:
        raise Forbidden(
            _("This page is for support staff only."), detail="this portal serves no support desk"
        )
    return state.support


@dataclass(frozen=True)
class SignedInStaff:
    """A live support session of support staff, and the renewed activity cookie to send back."""

    session: PortalSession
    session_id: str
    activity: str


def action_labels() -> list[tuple[str, Text, Text]]:
    """Each action, its button, and the question the support user must confirm (asked per request)."""
    return [
        (Action.RESET_MFA.value, _("Reset two-factor authentication"),
         _("Yes, remove this customer's authenticator and end their sessions.")),
        (Action.UNLOCK.value, _("Unlock"), _("Yes, lift the sign-in lock and clear the failure counters.")),
        (Action.DISABLE.value, _("Disable the account"), _("Yes, disable this account and end its sessions.")),
        (Action.ENABLE.value, _("Enable the account"), _("Yes, enable this account again.")),
        (Action.END_SESSIONS.value, _("End all sessions"), _("Yes, end every session of this customer.")),
    ]  # fmt: skip


def done_notice(action: str) -> Text | None:
    notices = {
        Action.RESET_MFA.value: _("Two-factor authentication reset: the next sign-in shows the set-up page."),
        Action.UNLOCK.value: _("The account is unlocked."),
        Action.DISABLE.value: _("The account is disabled and its sessions have ended."),
        Action.ENABLE.value: _("The account is enabled."),
        Action.END_SESSIONS.value: _("Every session of this customer has ended."),
    }
    return notices.get(action)


def when(value: datetime | int | None) -> str:
    if value is None:
        return ""
    moment = datetime.fromtimestamp(value, UTC) if isinstance(value, int) else value.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def leave_desk(state: PortalState, target: str) -> RedirectResponse:
    """A redirect that also forgets the support session's cookies."""
    response = RedirectResponse(target, status_code=303)
    for name in (SUPPORT_COOKIE, ACTIVITY_COOKIE):
        delete_cookie(response, name, secure=state.secure_cookies, path=COOKIE_PATH)
    return response


def to_login(state: PortalState) -> RedirectResponse:
    return leave_desk(state, "/support/login")


async def signed_in_staff(
    state: State, session_id: SupportCookie = None, activity: ActivityCookie = None
) -> SignedInStaff | None:
    """The support session, if it is live, within its limits and its user still support staff."""
    desk = desk_of(state)
    session = await live_session(state, session_id)
    if session is None or session_id is None:
        return None
    try:
        renewed = await desk.activity.renew(session_id, activity)
    except SupportSessionOver:
        await state.sessions.end(session_id)
        return None
    await desk.desk.staff(session.username)
    return SignedInStaff(session, session_id, renewed)


Staff = Annotated[SignedInStaff | None, Depends(signed_in_staff)]


def keep_alive(state: PortalState, response: Response, staff: SignedInStaff) -> Response:
    desk = desk_of(state)
    set_cookie(
        response,
        ACTIVITY_COOKIE,
        staff.activity,
        secure=state.secure_cookies,
        path=COOKIE_PATH,
        max_age=desk.activity.max_seconds,
    )
    return response


@support_router.get("/")
async def support_home(
    request: Request,
    state: State,
    staff: Staff,
    portal_session: PortalCookie = None,
    q: Annotated[str, Query(max_length=256)] = "",
) -> Response:
    desk = desk_of(state)
    if staff is None:
        # A customer already signed in to the portal learns at once that this is not for them.
        customer = await live_session(state, portal_session)
        if customer is not None:
            await desk.desk.staff(customer.username)
        return to_login(state)
    query = q.strip()
    users = await desk.desk.find(query) if query else []
    page = state.pages.render(
        request, "support_search.html", staff=staff.session.username, query=query, users=users
    )
    return keep_alive(state, page, staff)


@support_router.get("/login")
async def support_login(state: State) -> Response:
    """A fresh sign-in with both factors (prompt=login), whatever SSO session the browser has."""
    desk = desk_of(state)
    authorize_url, sealed = desk.oidc.begin(prompt="login")
    response = RedirectResponse(authorize_url, status_code=302)
    set_cookie(response, LOGIN_COOKIE, sealed, secure=state.secure_cookies, path=COOKIE_PATH, max_age=600)
    return response


@support_router.get("/callback")
async def support_callback(
    state: State,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    login_state: Annotated[str | None, Query(alias="state", max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
    sealed: LoginCookie = None,
    old_session: SupportCookie = None,
) -> Response:
    desk = desk_of(state)
    if error is not None:
        raise desk.oidc.refused(error)
    signed_in = await desk.oidc.complete(sealed, code, login_state)
    # Staff or not, the answer comes before any session exists.
    await desk.desk.staff(signed_in.username)
    if old_session is not None:
        await state.sessions.end(old_session)
    session = await state.sessions.create(signed_in)
    if session is None:
        raise LoginFailed(detail="the SSO session ended before the support session was made")
    response = RedirectResponse("/support/", status_code=303)
    set_cookie(
        response,
        SUPPORT_COOKIE,
        session.session_id,
        secure=state.secure_cookies,
        path=COOKIE_PATH,
        max_age=min(desk.activity.max_seconds, max(0, session.expires_at - int(state.clock.now()))),
    )
    set_cookie(
        response,
        ACTIVITY_COOKIE,
        desk.activity.start(session.session_id),
        secure=state.secure_cookies,
        path=COOKIE_PATH,
        max_age=desk.activity.max_seconds,
    )
    delete_cookie(response, LOGIN_COOKIE, secure=state.secure_cookies, path=COOKIE_PATH)
    return response


@support_router.get("/customer")
async def support_customer(
    request: Request,
    state: State,
    staff: Staff,
    name: Name,
    done: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    if staff is None:
        return to_login(state)
    return keep_alive(state, await customer_page(request, state, name, notice=done_notice(done)), staff)


async def customer_page(
    request: Request,
    state: PortalState,
    name: str,
    *,
    notice: Text | None = None,
    error: Text | None = None,
    status_code: int = 200,
) -> Response:
    desk = desk_of(state)
    return state.pages.render(
        request,
        "support_customer.html",
        status_code,
        file=await desk.desk.customer(name),
        actions=action_labels(),
        events_shown=AUDIT_EVENTS_SHOWN,
        when=when,
        notice=notice,
        error=error,
    )


@support_router.post("/customer/action")
async def support_action(
    request: Request,
    state: State,
    staff: Staff,
    name: Annotated[str, Form(min_length=1, max_length=256)],
    action: Annotated[str, Form(max_length=32)],
    csrf_token: Annotated[str | None, Form(max_length=128)] = None,
    reason: Annotated[str, Form(max_length=500)] = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    check_csrf(request, csrf_token)
    if staff is None:
        return to_login(state)
    try:
        chosen = Action(action)
    except ValueError as error:
        raise BadRequest(detail=f"unknown support action {action!r}") from error
    if confirm != "yes" or not reason.strip():
        page = await customer_page(
            request,
            state,
            name,
            error=_("Nothing was changed: give a reason and tick the box to confirm."),
            status_code=400,
        )
        return keep_alive(state, page, staff)
    origin = Origin(
        operator=staff.session.username,
        reason=reason.strip(),
        ip=client_ip(request),
        user_agent=user_agent(request),
    )
    user = await desk_of(state).desk.act(chosen, name, origin)
    # Reset, disable and end sessions end the customer's sessions: this process's portal pages
    # know at once (the others within PORTAL_SESSION_CHECK_SECONDS).
    state.sessions.forget(user.user_id)
    target = f"/support/customer?{urlencode({'name': user.username, 'done': chosen.value})}"
    return keep_alive(state, RedirectResponse(target, status_code=303), staff)


@support_router.post("/logout")
async def support_logout(
    request: Request,
    state: State,
    csrf_token: Annotated[str | None, Form(max_length=128)] = None,
    session_id: SupportCookie = None,
) -> Response:
    check_csrf(request, csrf_token)
    if session_id is not None:
        await state.sessions.end(session_id)
    return leave_desk(state, "/")
