"""A short name for the browser a customer signed in with ("Chrome on Windows"), from its User-Agent.

Derived once, at sign-in, and kept with the SSO session instead of the User-Agent itself (at most
32 characters: the session store stays small). A hand-written classifier of the few browsers and
systems customers use, not a full parser: the label is for a person to recognise a device, never
for a decision. Order matters: Edge and Opera say "Chrome" too, Chrome says "Safari", and
iPhones and Android phones say "like Mac OS X" and "Linux".
"""

MAX_LENGTH = 32

# (token in the User-Agent, the name shown), the first that matches wins.
BROWSERS = (
    ("Edg/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("EdgA/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Macintosh", "Mac"),
    ("Mac OS X", "Mac"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def _first(user_agent: str, table: tuple[tuple[str, str], ...]) -> str | None:
    return next((name for token, name in table if token in user_agent), None)


def device_label(user_agent: str) -> str:
    """ "Chrome on Windows", "Safari on iPhone", "Firefox", "Android device", or "Unknown device"."""
    browser, system = _first(user_agent, BROWSERS), _first(user_agent, SYSTEMS)
    if browser and system:
        label = f"{browser} on {system}"
    elif browser:
        label = browser
    elif system:
        label = f"{system} device"
    else:
        label = "Unknown device"
    return label[:MAX_LENGTH]
