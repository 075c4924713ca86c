"""The browser id cookie: issued by auth only, genuine or replaced, `__Host-` over https."""

import httpx
from fastapi import FastAPI, Request

from services.common.web import BrowserIds, BrowserMiddleware, browser_id, csrf_token

ISSUER = BrowserIds(b"k" * 32)


def app(secure: bool, issuer: BrowserIds | None) -> FastAPI:
    application = FastAPI()

    @application.get("/page")
    async def page(request: Request) -> dict[str, str]:
        return {"browser": browser_id(request), "csrf": csrf_token(request)}

    application.add_middleware(BrowserMiddleware, csrf_secret=b"c" * 32, secure_cookies=secure, issuer=issuer)
    return application


async def get(application: FastAPI, cookies: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://sso.test", cookies=cookies) as client:
        return await client.get("/page")


async def test_the_issuer_replaces_a_made_up_id_and_keeps_its_own() -> None:
    made_up = await get(app(False, ISSUER), {"browser": "A" * 43})
    issued = made_up.json()["browser"]
    assert issued != "A" * 43 and ISSUER.genuine(issued)
    assert made_up.headers["set-cookie"].startswith(f"browser={issued}; Path=/;")
    kept = await get(app(False, ISSUER), {"browser": issued})
    assert kept.json()["browser"] == issued and "set-cookie" not in kept.headers
    assert not BrowserIds(b"o" * 32).genuine(issued), "another key's id is not genuine"


async def test_over_https_the_cookie_is_host_prefixed_and_secure() -> None:
    response = await get(app(True, ISSUER))
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-browser=") and "; Path=/;" in cookie and "Secure" in cookie
    assert "domain" not in cookie.lower()
    # A plain `browser` cookie (one a sibling domain or plain http could set) is not read.
    planted = await get(app(True, ISSUER), {"browser": ISSUER.issue()})
    assert "set-cookie" in planted.headers


async def test_services_that_do_not_issue_read_the_id_and_set_no_cookie() -> None:
    response = await get(app(False, None), {"browser": "from-auth"})
    assert response.json()["browser"] == "from-auth" and "set-cookie" not in response.headers
    assert (await get(app(False, None))).json() == {"browser": "", "csrf": ""}, "no id, no CSRF token"
