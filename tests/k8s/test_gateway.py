"""The gateway in Kubernetes runs gateway/nginx.conf.template itself, rendered by its own start script."""

import ipaddress
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devstack import free_ports
from devstack.gateway import PLACEHOLDERS, nginx_binary, readable_pages

from .manifests import OVERLAYS, ROOT, build, find, find_prefixed, image_pinned, pod_template

TEMPLATE = ROOT / "gateway" / "nginx.conf.template"
PAGES = ROOT / "gateway" / "pages"
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return build(request.param)


def gateway_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = pod_template(find(objects, "Deployment", "gateway"))["spec"]["containers"][0]
    return container


def test_the_configmap_is_the_template_in_gateway_byte_for_byte(objects: list[dict[str, Any]]) -> None:
    shipped = find_prefixed(objects, "ConfigMap", "gateway-nginx")["data"]["nginx.conf.template"]
    assert shipped.encode() == TEMPLATE.read_bytes()


def test_the_pages_configmap_is_gateway_pages_file_for_file(objects: list[dict[str, Any]]) -> None:
    shipped = find_prefixed(objects, "ConfigMap", "gateway-pages")["data"]
    on_disk = {path.name: path.read_text() for path in PAGES.iterdir()}
    assert shipped == on_disk
    spec = pod_template(find(objects, "Deployment", "gateway"))["spec"]
    name = find_prefixed(objects, "ConfigMap", "gateway-pages")["metadata"]["name"]
    volume = next(v for v in spec["volumes"] if v.get("configMap", {}).get("name") == name)
    container = gateway_container(objects)
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["GATEWAY_PAGES_DIR"] == mount["mountPath"] and mount["readOnly"] is True


def test_the_gateway_mounts_that_configmap_and_reads_the_template_from_it(
    objects: list[dict[str, Any]],
) -> None:
    spec = pod_template(find(objects, "Deployment", "gateway"))["spec"]
    configmap = find_prefixed(objects, "ConfigMap", "gateway-nginx")["metadata"]["name"]
    volume = next(v for v in spec["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == configmap
    container = gateway_container(objects)
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["GATEWAY_TEMPLATE"] == f"{mount['mountPath']}/nginx.conf.template"


def test_the_gateway_is_an_unprivileged_nginx_on_8080(objects: list[dict[str, Any]]) -> None:
    container = gateway_container(objects)
    assert re.fullmatch(r"nginxinc/nginx-unprivileged:\d+\.\d+\.\d+-alpine[0-9.]*", container["image"])
    assert image_pinned(container["image"])
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["GATEWAY_LISTEN"] == "8080"
    assert {
        "AUTH_SERVERS": "server auth:8101;",
        "MFA_SERVERS": "server mfa:8102;",
        "PORTAL_SERVERS": "server portal:8104;",
    }.items() <= env.items()
    security = pod_template(find(objects, "Deployment", "gateway"))["spec"]["securityContext"]
    assert security["runAsUser"] != 0 and security["runAsNonRoot"] is True


def test_the_start_script_substitutes_exactly_our_placeholders(objects: list[dict[str, Any]]) -> None:
    script = gateway_container(objects)["args"][0]
    names = re.search(r"envsubst '([^']*)'", script)
    assert names is not None, "envsubst must be limited to our variables, or nginx's $uri etc. are lost"
    assert sorted(re.findall(r"\$\{([A-Z_]+)\}", names.group(1))) == sorted(PLACEHOLDERS)
    placeholders_in_template = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", TEMPLATE.read_text()))
    assert placeholders_in_template == set(PLACEHOLDERS)


def _run_start_script(
    objects: list[dict[str, Any]], tmp_path: Path, *, listen: str | None, nginx_args: str
) -> tuple[subprocess.Popen[str], Path]:
    """The container's own script, on this machine: the ConfigMap's text as the template, the
    cluster's service names resolved to loopback (same ports), and nginx from PATH."""
    container = gateway_container(objects)
    env = {e["name"]: e["value"] for e in container["env"]}
    template = tmp_path / "template" / "nginx.conf.template"
    template.parent.mkdir()
    template.write_text(find_prefixed(objects, "ConfigMap", "gateway-nginx")["data"]["nginx.conf.template"])
    pages = tmp_path / "pages"
    pages.mkdir()
    for name, content in find_prefixed(objects, "ConfigMap", "gateway-pages")["data"].items():
        (pages / name).write_text(content)
    runtime = tmp_path / "runtime"
    for name in ("AUTH_SERVERS", "MFA_SERVERS", "PORTAL_SERVERS"):
        hosts = re.findall(r"server ([a-z-]+):(\d+);", env[name])
        assert [host for host, _port in hosts] == [name.split("_")[0].lower()], env[name]
        env[name] = re.sub(r"server [a-z-]+:", "server 127.0.0.1:", env[name])
    env.update(
        GATEWAY_TEMPLATE=str(template),
        GATEWAY_RUNTIME_DIR=str(runtime),
        GATEWAY_PAGES_DIR=str(readable_pages(pages)),  # nginx's workers run as nobody here
    )
    if listen is not None:
        env["GATEWAY_LISTEN"] = listen
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "nginx").write_text(f'#!/bin/sh\nexec {nginx_binary()} {nginx_args} "$@"\n')
    (shim / "nginx").chmod(0o755)
    process = subprocess.Popen(
        [*container["command"], container["args"][0]],
        env={"PATH": f"{shim}:{os.environ['PATH']}:/usr/sbin", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, runtime


def test_the_rendered_config_passes_nginx_t(objects: list[dict[str, Any]], tmp_path: Path) -> None:
    process, runtime = _run_start_script(objects, tmp_path, listen=None, nginx_args="-t")
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "test is successful" in stderr
    rendered = (runtime / "nginx.conf").read_text()
    assert "listen 8080;" in rendered
    assert "$uri" in rendered and "$request_id" in rendered, "nginx's own variables must survive envsubst"
    assert not re.search(r"\$\{[A-Z_]+\}", rendered)
    assert os.readlink(runtime / "access.log") == "/dev/stdout"
    assert os.readlink(runtime / "error.log") == "/dev/stderr"


def test_the_running_gateway_exposes_no_probe_or_metrics_path(
    objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    process, _runtime = _run_start_script(objects, tmp_path, listen=f"127.0.0.1:{port}", nginx_args="")
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                _direct.open(f"http://127.0.0.1:{port}/metrics", timeout=2)
            except urllib.error.HTTPError as error:
                assert error.code == 404
                break
            except OSError as error:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"gateway did not start: {process.stderr.read() if process.stderr else ''}"
                    ) from error
                time.sleep(0.1)
            else:
                raise AssertionError("/metrics answered through the gateway")
        for path in (
            "/metrics",
            "/readyz",
            "/healthz",
            "/internal/jwks",
            "/session/",
            "/auth/../internal/jwks",
        ):
            with pytest.raises(urllib.error.HTTPError) as refused:
                _direct.open(f"http://127.0.0.1:{port}{path}", timeout=5)
            assert refused.value.code == 404, path
        # nginx's own page, from the ConfigMap gateway-pages, in the customer's language.
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Cookie": "lang=fr"})
        with pytest.raises(urllib.error.HTTPError) as french:
            _direct.open(request, timeout=5)
        body = french.value.read().decode()
        assert '<html lang="fr">' in body and "Page introuvable" in body and "Orange Business" in body
        assert "@SSO_BRAND_NAME@" not in body
        with _direct.open(f"http://127.0.0.1:{port}/.gateway/style.css", timeout=5) as css:
            assert css.headers["content-type"].startswith("text/css") and b".card" in css.read()
    finally:
        process.send_signal(signal.SIGQUIT)  # the nginx image's stop signal: graceful
        process.communicate(timeout=15)


def test_the_gateway_believes_x_forwarded_for_only_from_a_narrow_range(objects: list[dict[str, Any]]) -> None:
    """Trusting all of 10.0.0.0/8 would let any pod, or a client behind a careless proxy, name
    its own address, and so dodge or aim the per-address counts."""
    env = {e["name"]: e["value"] for e in gateway_container(objects)["env"]}
    directives = [d.strip() for d in env["GATEWAY_REAL_IP"].split(";") if d.strip()]
    trusted = [d.split()[1] for d in directives if d.startswith("set_real_ip_from ")]
    assert trusted, directives
    for cidr in trusted:
        network = ipaddress.ip_network(cidr)
        assert network.is_private and network.prefixlen >= 16, cidr
    assert "real_ip_header X-Forwarded-For" in directives
    # With the chain walked back, the client's own X-Forwarded-For entries are never taken.
    assert "real_ip_recursive on" in directives


def test_production_sets_its_own_ingress_range() -> None:
    base = {e["name"]: e["value"] for e in gateway_container(build("dev"))["env"]}
    prod = {e["name"]: e["value"] for e in gateway_container(build("prod"))["env"]}
    assert prod["GATEWAY_REAL_IP"] != base["GATEWAY_REAL_IP"]
