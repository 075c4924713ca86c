"""auth's HTTP surface: thin handlers that parse, call the domain, and render."""

import base64
import binascii
import logging
from typing import Annotated, Any
from urllib.parse import unquote, urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from markupsafe import Markup

from services.common.errors import BadRequest, Forbidden
from services.common.i18n import Text, language_links
from services.common.step_tokens import StepExpired
from services.common.tokens import InvalidToken
from services.common.web import (
    STEP_COOKIE,
    _,
    browser_binding,
    check_csrf,
    client_ip,
    delete_cookie,
    lock_message,
    retry_after,
    rotate_browser_id,
    set_cookie,
    user_agent,
)
from services.contracts.auth import (
    ATTEMPT_BEGIN,
    ATTEMPT_SUCCEEDED,
    AUDIT_EVENTS_BY_CALLER,
    AUDIT_RECORD,
    PASSWORD_CHANGE,
    Acknowledged,
    AttemptDecision,
    AuditEntry,
    ChangePassword,
    CodeAttempt,
    PasswordChanged,
)

from .accounts import username_key
from .audit import Actor
from .device_cookies import DEVICE_COOKIE
from .device_label import device_label
from .login_flow import Step, replayed
from .oidc import AuthorizeError, AuthorizeRequest, TokenError
from .sign_in import Locked
from .sso_sessions import SsoSession
from .state import AuthState, State

log = logging.getLogger(__name__)

SSO_COOKIE = "sso"
INVALID_CREDENTIALS = _("Invalid username or password.")

router = APIRouter(prefix="/auth")


CsrfToken = Annotated[str, Form(max_length=128)]


def _actor(request: Request) -> Actor:
    return Actor(ip=client_ip(request), user_agent=user_agent(request))


def _secure(state: AuthState) -> bool:
    return state.settings.peers.secure_cookies


def _with_step(state: AuthState, response: Response, token: str) -> None:
    set_cookie(
        response,
        STEP_COOKIE,
        token,
        secure=_secure(state),
        max_age=state.settings.step_token_ttl_seconds,
    )


def _redirect_with_step(state: AuthState, url: str, token: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    _with_step(state, response, token)
    return response


async def _sso_session(request: Request, state: AuthState) -> SsoSession | None:
    """The browser's SSO session, its account not checked (the caller checks it)."""
    session_id = request.cookies.get(SSO_COOKIE)
    if not session_id:
        return None
    # A cookie that is no session id (services.contracts.session) is no session; nobody is asked.
    return await state.sso_sessions.lookup(session_id)


async def _live_sso_session(request: Request, state: AuthState) -> SsoSession | None:
    session = await _sso_session(request, state)
    # A session outlives nothing about its user: a disabled account's session counts for nothing.
    if session is None or await state.accounts.active_user(session.user_id) is None:
        return None
    return session


# OIDC discovery and keys


@router.get("/.well-known/openid-configuration")
async def openid_configuration(state: State) -> dict[str, Any]:
    return state.provider.discovery()


@router.get("/jwks")
async def public_jwks(state: State) -> dict[str, Any]:
    return state.public_jwks


# authorize and the login pages


@router.get("/authorize")
async def authorize(request: Request, state: State) -> Response:
    if len(request.query_params.multi_items()) != len(request.query_params):
        raise BadRequest(_("This sign-in link is not valid."), detail="repeated authorize parameter")
    try:
        authz = await state.provider.validate_authorize(dict(request.query_params))
    except AuthorizeError as error:
        if error.redirect is None:
            raise BadRequest(_("This sign-in link is not valid."), detail=error.description) from error
        return RedirectResponse(state.provider.error_redirect(error), status_code=302)
    session = None if authz.prompt == "login" else await _sso_session(request, state)
    if session is not None and not authz.accepts_sign_in_at(session.auth_time, state.clock.now()):
        log.info("SSO session older than the max_age asked: signing in again")
        session = None
    if session is not None:
        # A disabled account's session counts for nothing: the code's own insert checks the
        # account, and saves no code for one that may not sign in.
        with_code = await state.provider.issue_code(authz, session)
        if with_code is not None:
            return RedirectResponse(with_code, status_code=302)
    if authz.prompt == "none":
        login_required = AuthorizeError("login_required", "the user is not signed in", authz)
        return RedirectResponse(state.provider.error_redirect(login_required), status_code=302)
    token = state.flow.issue("username", browser_binding(request), authz.as_claims())
    # The username page in this answer, as Keycloak does, not a redirect to /auth/login: one
    # request less per sign-in. Asking this address again (a refresh) begins again, a new step.
    page = _username_page(request, state)
    _with_step(state, page, token)
    return page


@router.get("/login")
async def login_page(request: Request, state: State) -> HTMLResponse:
    step = await state.flow.read(
        request.cookies.get(STEP_COOKIE), browser_binding(request), {"username", "password"}
    )
    return _render_step(request, state, step)


def _render_step(
    request: Request, state: AuthState, step: Step, error: Text | None = None, status_code: int = 200
) -> HTMLResponse:
    pages = state.pages
    if step.stage == "username":
        return _username_page(request, state, error, status_code)
    restart_url = "/auth/authorize?" + AuthorizeRequest.from_claims(step.authz).query()
    return pages.render(
        request,
        "password.html",
        status_code,
        error=error,
        # A lock's message holds a <time>, which local-time.js shows in the browser's time zone.
        local_time=isinstance(error, Markup),
        login_name=step.claims["login_name"],
        restart_url=restart_url,
    )


def _username_page(
    request: Request, state: AuthState, error: Text | None = None, status_code: int = 200
) -> HTMLResponse:
    # The language switch leads to /auth/login (home_url), which shows the cookie's step again in
    # the language chosen, whether this page answered /auth/authorize or /auth/login: a link back
    # to /auth/authorize would begin a new sign-in at each switch.
    return state.pages.render(
        request,
        "username.html",
        status_code,
        error=error,
        language_links=language_links(request, state.pages.home_url, here=False),
    )


@router.post("/login/username")
async def sign_in_username(
    request: Request,
    state: State,
    csrf_token: CsrfToken,
    username: Annotated[str, Form(min_length=1, max_length=256)],
) -> Response:
    check_csrf(request, csrf_token)
    binding = browser_binding(request)
    step = await state.flow.read(request.cookies.get(STEP_COOKIE), binding, {"username"})
    await state.sign_in.username_given(username, _actor(request), state.flow.consumption(step))
    # Every name gets the password page, known or not: nothing here tells which names exist.
    token = state.flow.issue("password", binding, step.authz, login_name=username.strip())
    return _redirect_with_step(state, "/auth/login", token)


@router.post("/login/password")
async def sign_in_password(
    request: Request,
    state: State,
    csrf_token: CsrfToken,
    password: Annotated[str, Form(min_length=1, max_length=1024)],
) -> Response:
    check_csrf(request, csrf_token)
    binding = browser_binding(request)
    step = await state.flow.read(request.cookies.get(STEP_COOKIE), binding, {"password"})
    login_name = step.claims["login_name"]
    account = username_key(login_name)
    device = state.device_cookies.device_for(request.cookies.get(DEVICE_COOKIE), account)
    user = await state.sign_in.check_password(
        login_name, password, _actor(request), state.flow.consumption(step), device
    )
    if isinstance(user, Locked):
        # Only a known browser (its device cookie) learns of a lock; to any other it is a wrong password.
        log.info("sign-in refused at the password step: a known browser is locked out")
        page = _render_step(
            request, state, step, error=lock_message(user.seconds, state.clock.now()), status_code=429
        )
        page.headers.update(retry_after(user.seconds))
        return page
    if user is None:
        log.info("sign-in refused at the password step")
        return _render_step(request, state, step, error=INVALID_CREDENTIALS, status_code=401)
    log.info("password accepted user_id=%s", user.id)
    token = state.flow.issue(
        "otp",
        binding,
        step.authz,
        audience="mfa",
        sub=str(user.id),
        preferred_username=user.username,
        account=account,
        # mfa hands it back with each code attempt: a known browser's codes count on their own.
        device=device,
        amr=["pwd"],
    )
    return _redirect_with_step(state, "/mfa/", token)


@router.get("/login/complete")
async def sign_in_complete(request: Request, state: State) -> HTMLResponse:
    step = await state.flow.read(request.cookies.get(STEP_COOKIE), browser_binding(request), {"complete"})
    user = await state.accounts.active_user(_user_id(step))
    if user is None:
        raise BadRequest(INVALID_CREDENTIALS, detail="user disabled or removed during sign-in")
    # The step's own claim, signed by mfa, says whose counts to clear; nothing the request says.
    accepted = step.accepted_code()
    if accepted is not None and accepted.account != username_key(user.username):
        raise StepExpired(detail="complete step clearing another account's failure counts")
    # The session first, then the step is used up (and the sign-in audited, in the same
    # statement): when the session service is briefly away (a 503), the customer's try again
    # still finds the step unused. A second use of the step loses the race to consume, audits
    # nothing and ends the session it made.
    session_id, session = await state.sso_sessions.create(
        user.id,
        user.username,
        ["pwd", "otp"],
        device=device_label(request.headers.get("user-agent", "")),
        address=client_ip(request),
    )
    if not await state.audit.record_consuming(
        state.flow.consumption(step),
        "sign_in.complete",
        "ok",
        _actor(request),
        user_id=user.id,
        username=user.username,
    ):
        await state.sso_sessions.end(session_id=session_id)
        raise replayed()
    if accepted is not None:
        # Only now, once: a replayed step lost the race to consume, and clears nothing.
        await state.sign_in.code_step_completed(accepted)
    previous = request.cookies.get(SSO_COOKIE)
    if previous:
        # A fresh id at every sign-in: an id planted before sign-in is worth nothing after it.
        await state.sso_sessions.end(session_id=previous)
    log.info("sign-in complete user_id=%s enrolled=%s", user.id, bool(step.claims.get("enrolled")))
    continue_url = "/auth/authorize?" + AuthorizeRequest.from_claims(step.authz).query()
    # No language switch here: this page consumed its step, so showing it again would say expired.
    # Set by mfa when a recovery code signed in: the Continue page says how many remain.
    codes_left = step.claims.get("recovery_codes_left")
    response = state.pages.render(
        request,
        "continue.html",
        continue_url=continue_url,
        recovery_codes_left=codes_left if isinstance(codes_left, int) and codes_left >= 0 else None,
        language_links=[],
    )
    set_cookie(
        response,
        SSO_COOKIE,
        session_id,
        secure=_secure(state),
        path="/auth",
        max_age=max(0, session.expires_at - int(state.clock.now())),
    )
    # This browser is now known to the account: its failures no longer share the unknown browsers' lock.
    set_cookie(
        response,
        DEVICE_COOKIE,
        state.device_cookies.issue(username_key(user.username)),
        secure=_secure(state),
        path="/auth/login",
        max_age=state.settings.device_cookie_lifetime_seconds,
    )
    delete_cookie(response, STEP_COOKIE, secure=_secure(state))
    rotate_browser_id(request, response, _secure(state))
    return response


def _user_id(step: Step) -> UUID:
    try:
        return UUID(step.claims["sub"])
    except (KeyError, ValueError) as error:
        raise BadRequest(detail="step token without a valid subject") from error


# token and userinfo (OAuth JSON endpoints)


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _sep, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, sep, secret = decoded.partition(":")
        return (unquote(client_id), unquote(secret)) if sep else None
    if "client_id" in form and "client_secret" in form:
        return form["client_id"], form["client_secret"]
    return None


def _token_error(error: TokenError) -> JSONResponse:
    headers = {"cache-control": "no-store"}
    if error.status_code == 401:
        headers["www-authenticate"] = 'Basic realm="token"'
    return JSONResponse(
        {"error": error.error, "error_description": error.description},
        status_code=error.status_code,
        headers=headers,
    )


@router.post("/token")
async def token(request: Request, state: State) -> JSONResponse:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return _token_error(TokenError("invalid_request", "use application/x-www-form-urlencoded"))
    raw_form = await request.form(max_files=0, max_fields=20)
    form = {key: value for key, value in raw_form.items() if isinstance(value, str)}
    credentials = _client_credentials(request, form)
    client = await state.clients.authenticate(*credentials) if credentials else None
    if client is None:
        log.info("token request refused: client authentication failed")
        return _token_error(TokenError("invalid_client", "client authentication failed", 401))
    try:
        tokens = await state.provider.exchange_code(client, form)
    except TokenError as error:
        log.info("token request refused for client %s: %s", client.client_id, error.description)
        return _token_error(error)
    return JSONResponse(tokens, headers={"cache-control": "no-store", "pragma": "no-cache"})


@router.api_route("/userinfo", methods=["GET", "POST"])
async def userinfo(request: Request, state: State) -> JSONResponse:
    scheme, _sep, access_token = request.headers.get("authorization", "").partition(" ")
    try:
        if scheme.lower() != "bearer" or not access_token:
            raise InvalidToken("no bearer token")
        claims = await state.provider.userinfo(state.access_tokens, access_token)
    except InvalidToken as error:
        log.info("userinfo refused: %s", error)
        return JSONResponse(
            {"error": "invalid_token"},
            status_code=401,
            headers={"www-authenticate": 'Bearer error="invalid_token"'},
        )
    return JSONResponse(claims, headers={"cache-control": "no-store"})


# logout (RP-initiated, OIDC end_session_endpoint)


@router.get("/logout")
async def logout(request: Request, state: State) -> Response:
    params = request.query_params
    hint = state.provider.read_id_token_hint(params["id_token_hint"]) if "id_token_hint" in params else None
    client_id = params.get("client_id") or (hint or {}).get("aud")
    target = await _post_logout_target(
        state, client_id, params.get("post_logout_redirect_uri"), params.get("state")
    )
    session = await _live_sso_session(request, state)
    # Only an id_token of this very session proves the request comes from its client; a link
    # from anywhere else, or another session's token, gets a question, not a logout.
    if session is not None and (hint is None or hint.get("sid") != session.sid):
        return state.pages.render(
            request,
            "logout_confirm.html",
            client_id=client_id or "",
            target=params.get("post_logout_redirect_uri", ""),
            logout_state=params.get("state", ""),
        )
    return await _signed_out(request, state, target, session)


@router.post("/logout")
async def logout_confirmed(
    request: Request,
    state: State,
    csrf_token: CsrfToken,
    client_id: Annotated[str, Form(max_length=256)] = "",
    target: Annotated[str, Form(max_length=1024)] = "",
    logout_state: Annotated[str, Form(max_length=512)] = "",
) -> Response:
    check_csrf(request, csrf_token)
    redirect = await _post_logout_target(state, client_id or None, target or None, logout_state or None)
    return await _signed_out(request, state, redirect, await _live_sso_session(request, state))


async def _post_logout_target(
    state: AuthState, client_id: str | None, uri: str | None, logout_state: str | None
) -> str | None:
    """The allow-listed place to send the browser after logout; never an open redirect."""
    if not uri:
        return None
    client = await state.clients.registered_uris(client_id) if client_id else None
    if client is None or uri not in client.post_logout_redirect_uris:
        raise BadRequest(_("This sign-out link is not valid."), detail="post_logout_redirect_uri not allowed")
    if not logout_state:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}{urlencode({'state': logout_state})}"


async def _signed_out(
    request: Request, state: AuthState, target: str | None, session: SsoSession | None
) -> Response:
    if session is not None:
        await state.sso_sessions.end(sid=session.sid)
        await state.audit.record(
            "logout", "sso", _actor(request), user_id=session.user_id, username=session.username
        )
    response: Response = (
        RedirectResponse(target, status_code=303)
        if target
        else state.pages.render(request, "signed_out.html")
    )
    delete_cookie(response, SSO_COOKIE, secure=_secure(state), path="/auth")
    log.info("SSO session ended by logout")
    return response


# internal: what mfa and the portal ask of auth (service token required; services.contracts.auth)

internal = APIRouter()


async def calling_service(request: Request, state: State) -> str:
    return await state.callers(request)


Caller = Annotated[str, Depends(calling_service)]


@internal.post(ATTEMPT_BEGIN.path, status_code=ATTEMPT_BEGIN.status_code)
async def code_attempt_begin(body: CodeAttempt, state: State, caller: Caller) -> AttemptDecision:
    ATTEMPT_BEGIN.allow(caller)
    verdict = await state.sign_in.begin_code_attempt(
        body.account, Actor(ip=body.ip, user_agent=""), body.device
    )
    if verdict.allowed:
        return AttemptDecision(allowed=True)
    return AttemptDecision(allowed=False, locked_seconds=max(-1, verdict.lock_seconds))


@internal.post(ATTEMPT_SUCCEEDED.path, status_code=ATTEMPT_SUCCEEDED.status_code)
async def code_attempt_succeeded(body: CodeAttempt, state: State, caller: Caller) -> Acknowledged:
    ATTEMPT_SUCCEEDED.allow(caller)
    await state.sign_in.code_accepted(body.account, Actor(ip=body.ip, user_agent=""), body.device)
    return Acknowledged()


@internal.post(AUDIT_RECORD.path, status_code=AUDIT_RECORD.status_code)
async def audit_entry(body: AuditEntry, state: State, caller: Caller) -> Acknowledged:
    AUDIT_RECORD.allow(caller)
    if body.event not in AUDIT_EVENTS_BY_CALLER[caller]:
        raise Forbidden(detail=f"{caller} may not record {body.event}")
    actor = Actor(ip=body.ip, user_agent=body.user_agent)
    await state.audit.record(
        body.event,
        body.outcome,
        actor,
        user_id=body.user_id,
        username=body.username,
        operator=body.operator,
        reason=body.reason,
    )
    return Acknowledged()


@internal.post(PASSWORD_CHANGE.path, status_code=PASSWORD_CHANGE.status_code)
async def password_change(body: ChangePassword, state: State, caller: Caller) -> PasswordChanged:
    PASSWORD_CHANGE.allow(caller)
    return await state.password_changes.change(body)
