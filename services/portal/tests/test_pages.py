"""The landing page, the portal and the two ways out, as a browser sees them."""

from functools import partial
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from services.common.clock import FrozenClock
from services.portal.app import create_app, open_state
from services.portal.settings import Settings

from .conftest import (
    ISSUER,
    PUBLIC_URL,
    SESSION_URL,
    FakeAuth,
    FakeSessions,
    csrf_from,
    set_cookie_headers,
    sign_in,
)


async def test_landing_page_offers_login(browser: AsyncClient) -> None:
    response = await browser.get("/")

    assert response.status_code == 200
    assert "<title>Customer Portal</title>" in response.text
    assert '<a class="button" href="/portal/login">Login</a>' in response.text


async def test_landing_page_sends_a_signed_in_customer_to_the_portal(
    browser: AsyncClient, fake_auth: FakeAuth
) -> None:
    await sign_in(browser, fake_auth)

    response = await browser.get("/")

    assert response.status_code == 303
    assert response.headers["location"] == "/portal/"


async def test_the_portal_needs_a_live_session(browser: AsyncClient) -> None:
    response = await browser.get("/portal/")

    assert response.status_code == 303
    assert response.headers["location"] == "/"


async def test_an_unknown_session_cookie_is_dropped(browser: AsyncClient) -> None:
    browser.cookies.set("portal_session", "A" * 43)

    response = await browser.get("/portal/")

    assert response.status_code == 303 and response.headers["location"] == "/"
    (cleared,) = set_cookie_headers(response, "portal_session")
    assert "max-age=0" in cleared.lower()


async def test_the_portal_ends_with_the_sso_session(
    browser: AsyncClient, fake_auth: FakeAuth, fake_sessions: FakeSessions
) -> None:
    await sign_in(browser, fake_auth)
    fake_sessions.live_sids.clear()

    assert (await browser.get("/portal/")).headers["location"] == "/"
    assert (await browser.get("/")).status_code == 200


async def test_the_username_is_shown_escaped(browser: AsyncClient, fake_auth: FakeAuth) -> None:
    await sign_in(browser, fake_auth, username="<script>alert(1)</script>")

    page = await browser.get("/portal/")

    assert page.status_code == 200
    assert "Welcome, &lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert(1)" not in page.text


async def test_the_portal_offers_both_ways_out_with_csrf_tokens(
    browser: AsyncClient, fake_auth: FakeAuth
) -> None:
    await sign_in(browser, fake_auth)

    page = (await browser.get("/portal/")).text

    assert 'action="/portal/logout"' in page and 'action="/portal/logout-everywhere"' in page
    assert ">Log out<" in page and ">Sign out everywhere<" in page
    assert page.count('name="csrf_token"') == 2
    assert len(csrf_from(page)) == 64


@pytest.mark.parametrize("path", ["/portal/logout", "/portal/logout-everywhere"])
@pytest.mark.parametrize("token", [None, "0" * 64])
async def test_logging_out_needs_the_csrf_token(
    browser: AsyncClient,
    fake_auth: FakeAuth,
    fake_sessions: FakeSessions,
    path: str,
    token: str | None,
) -> None:
    await sign_in(browser, fake_auth)

    response = await browser.post(path, data={} if token is None else {"csrf_token": token})

    assert response.status_code == 403
    assert fake_sessions.ended == []
    assert (await browser.get("/portal/")).status_code == 200


async def test_log_out_ends_only_the_portal_session(
    browser: AsyncClient, fake_auth: FakeAuth, fake_sessions: FakeSessions
) -> None:
    await sign_in(browser, fake_auth)
    csrf = csrf_from((await browser.get("/portal/")).text)
    (session_id,) = fake_sessions.sessions

    response = await browser.post("/portal/logout", data={"csrf_token": csrf})

    assert response.status_code == 303 and response.headers["location"] == "/"
    assert fake_sessions.ended == [session_id] and fake_sessions.sessions == {}
    assert "sid-1" in fake_sessions.live_sids
    assert [(e["event"], e["outcome"], e["username"]) for e in fake_auth.audit_entries] == [
        ("logout", "portal", "alice")
    ]
    (cleared,) = set_cookie_headers(response, "portal_session")
    assert "max-age=0" in cleared.lower()
    assert (await browser.get("/portal/")).headers["location"] == "/"
    # Login again: the SSO session still lives, so auth answers at once with a code.
    again = await sign_in(browser, fake_auth)
    assert again.status_code == 303 and again.headers["location"] == "/portal/"


async def test_sign_out_everywhere_hands_over_to_auth_logout(
    browser: AsyncClient, fake_auth: FakeAuth, fake_sessions: FakeSessions
) -> None:
    await sign_in(browser, fake_auth)
    csrf = csrf_from((await browser.get("/portal/")).text)
    (session_id,) = fake_sessions.sessions
    user_id = fake_sessions.sessions[session_id].user_id

    response = await browser.post("/portal/logout-everywhere", data={"csrf_token": csrf})

    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(f"{ISSUER}/logout?")
    query = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
    # No id_token_hint: the portal keeps no id_token, and has ended the SSO sessions already.
    assert query == {
        "post_logout_redirect_uri": f"{PUBLIC_URL}/",
        "client_id": "portal",
    }
    assert fake_sessions.ended == [session_id] and fake_sessions.sessions == {}
    # Every session of the customer, on every device, not only this browser's.
    assert fake_sessions.revoked_users == [user_id]
    (cleared,) = set_cookie_headers(response, "portal_session")
    assert "max-age=0" in cleared.lower()

    # The landing page it comes back to says so, once.
    landing = await browser.get("/")
    assert "signed out on every device" in landing.text
    assert "signed out on every device" not in (await browser.get("/")).text


async def test_the_signed_out_notice_needs_the_portals_own_cookie(browser: AsyncClient) -> None:
    landing = await browser.get("/?state=everywhere&signed_out=everywhere")
    assert landing.status_code == 200 and "signed out on every device" not in landing.text


async def test_an_outage_of_the_session_service_never_shows_the_portal(
    browser: AsyncClient, fake_auth: FakeAuth, fake_sessions: FakeSessions
) -> None:
    await sign_in(browser, fake_auth)
    fake_sessions.down = True

    portal = await browser.get("/portal/")
    landing = await browser.get("/")

    assert portal.status_code == 503 and landing.status_code == 503
    assert "Welcome" not in portal.text
    assert "Sign-in is unavailable right now" in portal.text


async def test_an_unreachable_session_service_fails_closed(
    settings: Settings, clock: FrozenClock, fake_auth: FakeAuth
) -> None:
    def network(request: httpx.Request) -> httpx.Response:
        if str(request.url).startswith(SESSION_URL):
            raise httpx.ConnectError("refused", request=request)
        return fake_auth.handle(request)

    app: FastAPI = create_app(
        settings, state_opener=partial(open_state, clock=clock, transport=httpx.MockTransport(network))
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url=PUBLIC_URL) as browser:
            browser.cookies.set("portal_session", "A" * 43)
            portal = await browser.get("/portal/")
            signing_in = await sign_in(browser, fake_auth)

    assert portal.status_code == 503 and "Welcome" not in portal.text
    assert signing_in.status_code == 503
    assert set_cookie_headers(signing_in, "portal_session") == []


@pytest.mark.parametrize("secret", [None, "changeme"])
def test_the_portal_will_not_start_without_a_real_client_secret(
    settings: Settings, secret: str | None
) -> None:
    from pydantic import SecretStr

    settings.client_secret = None if secret is None else SecretStr(secret)

    with pytest.raises(ValueError, match="PORTAL_CLIENT_SECRET"):
        create_app(settings)
