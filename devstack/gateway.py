"""Render gateway/nginx.conf.template for a local nginx."""

import re
import shutil
from pathlib import Path
from string import Template

PLACEHOLDERS = (
    "GATEWAY_LISTEN",
    "GATEWAY_REAL_IP",
    "AUTH_SERVERS",
    "MFA_SERVERS",
    "PORTAL_SERVERS",
    "GATEWAY_RUNTIME_DIR",
)


def server_lines(addresses: list[str]) -> str:
    """An upstream's `server` lines, one per replica: "server 127.0.0.1:8102; server 127.0.0.1:8112;"."""
    if not addresses:
        raise ValueError("an upstream needs at least one server")
    return " ".join(f"server {address};" for address in addresses)


def render(template: str, values: dict[str, str]) -> str:
    """Fill in our ${NAME}s only: nginx's own $variables stay as they are."""
    missing = set(PLACEHOLDERS) - values.keys()
    if missing:
        raise ValueError(f"no value for {sorted(missing)}")
    rendered = Template(template).safe_substitute({name: values[name] for name in PLACEHOLDERS})
    leftover = re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", rendered)
    if leftover:
        raise ValueError(f"unknown placeholders in the gateway template: {sorted(set(leftover))}")
    return rendered


def nginx_binary() -> str:
    # /usr/sbin is not on every user's PATH.
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise FileNotFoundError("nginx not found: run `make system-deps`")
    return found


def write_config(template_path: Path, runtime_dir: Path, values: dict[str, str]) -> Path:
    runtime_dir.mkdir(parents=True, exist_ok=True)
    config = runtime_dir / "nginx.conf"
    config.write_text(render(template_path.read_text(), values))
    return config
