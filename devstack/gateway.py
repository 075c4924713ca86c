"""Render gateway/nginx.conf.template for a local nginx."""

import hashlib
import html
import os
import re
import shutil
import tempfile
from pathlib import Path
from string import Template

PLACEHOLDERS = (
    "GATEWAY_LISTEN",
    "GATEWAY_REAL_IP",
    "AUTH_SERVERS",
    "MFA_SERVERS",
    "PORTAL_SERVERS",
    "GATEWAY_RUNTIME_DIR",
    "GATEWAY_PAGES_DIR",
    "GATEWAY_BRAND_NAME",
)


def server_lines(addresses: list[str]) -> str:
    """An upstream's `server` lines, one per replica: "server 127.0.0.1:8102 max_fails=0; ...".

    max_fails=0: nginx never counts a replica out. A stopped replica refuses at once and the
    request goes to the other (proxy_next_upstream); counting it out for fail_timeout would
    outlive its restart, and when the other replica restarts next, nginx would see no live one.
    """
    if not addresses:
        raise ValueError("an upstream needs at least one server")
    return " ".join(f"server {address} max_fails=0;" for address in addresses)


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


def brand_for_nginx(brand: str) -> str:
    """The brand as nginx's sub_filter puts it into the gateway's pages: HTML-escaped, and
    nothing that would end the config's quoted string."""
    escaped = html.escape(brand)
    if "'" in escaped or "\\" in escaped or "\n" in escaped:
        raise ValueError(f"the brand name cannot go into the gateway's pages: {brand!r}")
    return escaped


# Where a local nginx reads the gateway's pages from: its workers run as nobody, who may not be
# able to reach a checkout (or a test's temporary directory) at all.
READABLE_PAGES_ROOT = Path(tempfile.gettempdir()) / "sso-gateway-pages"


def readable_pages(source: Path) -> Path:
    """A copy of the pages in `source` that every user can read, named by its content (so
    stacks share it and a changed page is a new copy)."""
    files = sorted(path for path in source.iterdir() if path.is_file())
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    target = READABLE_PAGES_ROOT / digest.hexdigest()[:16]
    if target.is_dir():
        return target
    READABLE_PAGES_ROOT.mkdir(exist_ok=True)
    if READABLE_PAGES_ROOT.stat().st_uid == os.getuid():
        READABLE_PAGES_ROOT.chmod(0o755)
    staging = Path(tempfile.mkdtemp(dir=READABLE_PAGES_ROOT))
    for path in files:
        shutil.copyfile(path, staging / path.name)
        (staging / path.name).chmod(0o644)
    staging.chmod(0o755)
    try:
        staging.rename(target)
    except OSError:  # another stack made the same copy meanwhile
        shutil.rmtree(staging)
    return target


def nginx_binary() -> str:
    # /usr/sbin is not on every user's PATH.
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise FileNotFoundError("nginx not found: run `make system-deps`")
    return found


PEERS_CONFIG = """\
# The peers proxy: devstack's stand-in for Kubernetes Services between the services. Each
# service with replicas gets a port here, balanced over its replicas like the gateway does.
worker_processes 1;
pid {runtime}/nginx.pid;
error_log {runtime}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {runtime}/client_body_temp;
    proxy_temp_path {runtime}/proxy_temp;
    fastcgi_temp_path {runtime}/fastcgi_temp;
    uwsgi_temp_path {runtime}/uwsgi_temp;
    scgi_temp_path {runtime}/scgi_temp;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    # Service calls are POSTs: nginx passes one to the other replica only when the first never
    # got it (refused, as from a stopped or killed replica), as at the gateway.
    proxy_next_upstream error timeout;
    proxy_next_upstream_tries 2;
    proxy_connect_timeout 2s;
{servers}
}}
"""


def write_peers_config(runtime_dir: Path, services: dict[str, tuple[int, list[str]]]) -> Path:
    """services: name -> (the proxy's port for it, its replicas' addresses)."""
    blocks = [
        f"    upstream {name} {{ {server_lines(addresses)} keepalive 8; }}\n"
        f"    server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{name}; }} }}"
        for name, (port, addresses) in services.items()
    ]
    runtime_dir.mkdir(parents=True, exist_ok=True)
    config = runtime_dir / "nginx.conf"
    config.write_text(PEERS_CONFIG.format(runtime=runtime_dir, servers="\n".join(blocks)))
    return config


def write_config(template_path: Path, runtime_dir: Path, values: dict[str, str]) -> Path:
    runtime_dir.mkdir(parents=True, exist_ok=True)
    config = runtime_dir / "nginx.conf"
    config.write_text(render(template_path.read_text(), values))
    return config
