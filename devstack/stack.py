"""One running stack: datastores, secrets, migrations, the four services and the gateway."""

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common.keys import generate_private_pem, public_pem
from services.common.settings import Peers

from . import datastores, gateway, processes
from .ports import free_ports, port_in_use

SERVICES = ("auth", "mfa", "session", "portal")
# The services that serve the admin API (/internal/admin/) and so know the admin public key.
ADMIN_API_SERVICES = ("auth", "mfa", "session")
# The services the gateway routes to.
ROUTED_SERVICES = ("auth", "mfa", "portal")
DEFAULT_PORTS = {"auth": 8101, "mfa": 8102, "session": 8103, "portal": 8104}
START_TIMEOUT = 30.0


class StackError(RuntimeError):
    pass


def _default_gateway_port() -> int:
    return int(os.environ.get("GATEWAY_PORT", "8080"))


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret readable by its owner only, replacing any older one atomically."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    temporary.replace(path)


# Our processes listen on loopback: an http_proxy from the environment must not get in between.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The status `url` answers with, or None when nothing answers."""
    try:
        with _direct.open(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


@dataclass
class Stack:
    root: Path
    state_dir: Path | None = None  # default <root>/.run/dev
    gateway_port: int = field(default_factory=_default_gateway_port)
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    # None: the database DATABASE_URL names, else "sso".
    database: str | None = None
    redis_prefix: str = "sso:"
    extra_env: dict[str, str] = field(default_factory=dict)
    # e.g. {"mfa": 2}: replicas behind the gateway, the first on ports[name], the others on free
    # ports. Calls between services to a service with replicas go through the peers proxy (an
    # nginx of its own, as a Kubernetes Service would balance them), else straight to it.
    replicas: dict[str, int] = field(default_factory=dict)
    # Servers chosen by the caller (a fault test's throwaway ones), before DATABASE_URL / REDIS_URL.
    postgres_server_url: str | None = None
    redis_server_url: str | None = None

    env: dict[str, str] = field(init=False, default_factory=dict)
    database_url: str = field(init=False, default="")
    redis_url: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.state_dir = Path(self.state_dir or self.root / ".run" / "dev").resolve()
        missing = set(SERVICES) - self.ports.keys()
        if missing:
            raise ValueError(f"no port for {sorted(missing)}")
        for name, count in self.replicas.items():
            if name not in SERVICES or count < 1:
                raise ValueError(f"replicas: {name}={count}; only {SERVICES}, at least 1 each")
        self._replica_ports = {
            name: [self.ports[name], *free_ports(self.replicas.get(name, 1) - 1)] for name in SERVICES
        }
        replicated = [name for name in SERVICES if len(self._replica_ports[name]) > 1]
        self._peer_proxy_ports = dict(zip(replicated, free_ports(len(replicated)), strict=True))
        self._record: dict[str, Any] = {"processes": [], "postgres": None, "redis": None}

    # Where things are

    @property
    def state(self) -> Path:
        assert self.state_dir is not None  # set in __post_init__
        return self.state_dir

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def service_url(self, name: str) -> str:
        """The service's first replica, where tests reach /healthz and /readyz."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def peer_url(self, name: str) -> str:
        """Where the other services call this one (SSO_<NAME>_URL): the peers proxy, with replicas."""
        port = self._peer_proxy_ports.get(name)
        return self.service_url(name) if port is None else f"http://127.0.0.1:{port}"

    def replica_url(self, name: str, replica: str) -> str:
        """A replica by its process name ("auth-2")."""
        port = self.replica_ports(name)[self.replica_names(name).index(replica)]
        return f"http://127.0.0.1:{port}"

    def replica_ports(self, name: str) -> list[int]:
        """The ports of a service's replicas; the first is ports[name]."""
        return list(self._replica_ports[name])

    def replica_names(self, name: str) -> list[str]:
        """Process (and log) names of a service's replicas: "mfa", then "mfa-2", "mfa-3"..."""
        return [name if n == 1 else f"{name}-{n}" for n in range(1, len(self._replica_ports[name]) + 1)]

    @property
    def secrets_dir(self) -> Path:
        return self.state / "secrets"

    @property
    def env_file(self) -> Path:
        return self.state / "stack.env"

    @property
    def admin_env_file(self) -> Path:
        """What ssoctl needs, and all it gets: the admin key and the services' addresses."""
        return self.state / "admin.env"

    @property
    def gateway_dir(self) -> Path:
        return self.state / "nginx"

    @property
    def gateway_access_log(self) -> Path:
        return self.gateway_dir / "access.log"

    def log_path(self, name: str) -> Path:
        return self.state / "logs" / f"{name}.log"

    @property
    def _record_file(self) -> Path:
        return self.state / "stack.json"

    @property
    def _python(self) -> str:
        venv_python = self.root / ".venv" / "bin" / "python"
        return str(venv_python) if venv_python.exists() else sys.executable

    # Start

    def start(self) -> "Stack":
        """Start everything and return once the gateway answers; on any failure stop what started."""
        if self.is_running():
            raise StackError(f"a stack is already running from {self.state}: stop it first")
        self.stop()  # what a crashed run left behind: a throwaway Postgres, say
        self._check_ports_free()
        self.state.mkdir(parents=True, exist_ok=True)
        self._record = {"processes": [], "postgres": None, "redis": None}
        try:
            self._prepare_datastores()
            self._ensure_secrets()
            self._write_env()
            self._migrate()
            # auth registers the portal's client (ssoctl, through its admin API) before the
            # portal starts with the secret it got.
            self._start_services([name for name in SERVICES if name != "portal"])
            self._register_portal_client()
            self._start_services(["portal"])
            self._start_gateway()
        except BaseException:
            # Leave no trace: a database this start made goes too (a test's unique one, say).
            self.stop(drop_database=self._record.get("created_database", False))
            raise
        return self

    def _check_ports_free(self) -> None:
        wanted = {"gateway": self.gateway_port, **self.ports}
        for name in SERVICES:
            wanted.update(zip(self.replica_names(name)[1:], self.replica_ports(name)[1:], strict=True))
        busy = [f"{name} ({port})" for name, port in wanted.items() if port_in_use(port)]
        if busy:
            raise StackError(f"ports in use: {', '.join(busy)}; is another stack up? (`make down`)")

    def _save_record(self) -> None:
        self._record_file.write_text(json.dumps(self._record, indent=2))

    def _prepare_datastores(self) -> None:
        configured_database = self.postgres_server_url or os.environ.get("DATABASE_URL")
        if configured_database:
            server_url = configured_database
        elif datastores.local_postgres_answers():
            server_url = datastores.LOCAL_POSTGRES_URL
        else:
            self._record["postgres"] = datastores.start_throwaway_postgres(self.state)
            self._save_record()
            server_url = self._record["postgres"]["url"]
        database = self.database or datastores.database_of(configured_database or "") or "sso"
        self.database_url = datastores.with_database(server_url, database)
        self._record["created_database"] = datastores.ensure_database(self.database_url)
        self._record["database_url"] = self.database_url
        self._save_record()

        configured_redis = self.redis_server_url or os.environ.get("REDIS_URL")
        if configured_redis:
            self.redis_url = configured_redis
        elif datastores.local_redis_answers():
            self.redis_url = datastores.LOCAL_REDIS_URL
        else:
            self._record["redis"] = datastores.start_throwaway_redis(self.state)
            self.redis_url = self._record["redis"]["url"]
        self._record.update(redis_url=self.redis_url, redis_prefix=self.redis_prefix)
        self._save_record()

    def _ensure_secrets(self) -> None:
        """Keys made once per state dir, so a restarted stack keeps its users' sessions valid."""
        self.secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.secrets_dir.chmod(0o700)
        wanted: dict[str, Callable[[], bytes]] = {
            f"{name}.pem": lambda: generate_private_pem("ec") for name in SERVICES
        }
        wanted["auth-oidc.pem"] = lambda: generate_private_pem("rsa")
        wanted["mfa-encryption.key"] = lambda: base64.b64encode(secrets.token_bytes(32)) + b"\n"
        wanted["admin.pem"] = lambda: generate_private_pem("ec")
        for filename, make in wanted.items():
            if not (self.secrets_dir / filename).exists():
                _write_private(self.secrets_dir / filename, make())
        # The services get the admin key's public half only.
        admin_public = public_pem((self.secrets_dir / "admin.pem").read_bytes())
        (self.secrets_dir / "admin.pub.pem").write_bytes(admin_public)

    def _write_env(self) -> None:
        secret = self.secrets_dir
        self.env = {
            "SSO_PUBLIC_URL": self.gateway_url,
            **{f"SSO_{name.upper()}_URL": self.peer_url(name) for name in SERVICES},
            "AUTH_SIGNING_KEY_FILE": str(secret / "auth.pem"),
            "AUTH_OIDC_KEY_FILE": str(secret / "auth-oidc.pem"),
            "AUTH_DATABASE_URL": self.database_url,
            "MFA_SIGNING_KEY_FILE": str(secret / "mfa.pem"),
            "MFA_DATABASE_URL": self.database_url,
            "MFA_ENCRYPTION_KEY_FILE": str(secret / "mfa-encryption.key"),
            "SESSION_SIGNING_KEY_FILE": str(secret / "session.pem"),
            "SESSION_REDIS_URL": self.redis_url,
            "SESSION_KEY_PREFIX": self.redis_prefix,
            # auth keeps its sign-in failure counters in Redis too, under its own prefix.
            "AUTH_REDIS_URL": self.redis_url,
            "AUTH_REDIS_KEY_PREFIX": f"{self.redis_prefix}auth:",
            "PORTAL_SIGNING_KEY_FILE": str(secret / "portal.pem"),
            "PORTAL_CLIENT_ID": "portal",
            # Narrowed to the alg _register_portal_client registers (the default also takes
            # RS256, for a client registered before): a portal client left RS256 fails here.
            "PORTAL_ID_TOKEN_SIGNED_RESPONSE_ALGS": json.dumps(["ES256"]),
            "PORTAL_CLIENT_SECRET_FILE": str(secret / "portal-client-secret"),
            **{
                f"{name.upper()}_ADMIN_PUBLIC_KEY_FILES": json.dumps([str(secret / "admin.pub.pem")])
                for name in ADMIN_API_SERVICES
            },
            **{key: str(value) for key, value in self.extra_env.items()},
        }
        lines = [f"{key}={value}" for key, value in self.env.items()]
        # Private: a DATABASE_URL or REDIS_URL from the environment may carry a password.
        _write_private(self.env_file, ("\n".join(lines) + "\n").encode())
        self._write_admin_env(self.admin_env_file, self.peer_url)

    def _write_admin_env(self, path: Path, url_of: Callable[[str], str]) -> None:
        admin_env = {
            "SSO_ADMIN_KEY_FILE": str(self.secrets_dir / "admin.pem"),
            **{f"SSO_{name.upper()}_URL": url_of(name) for name in ADMIN_API_SERVICES},
        }
        _write_private(path, "".join(f"{key}={value}\n" for key, value in admin_env.items()).encode())

    def _process_env(self) -> dict[str, str]:
        # Logs must reach the files as they happen, not when a buffer fills.
        return {
            **os.environ,
            **self.env,
            "SSO_ENV_FILE": str(self.env_file),
            "PYTHONUNBUFFERED": "1",
        }

    def _run_step(self, what: str, command: list[str]) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            command,
            cwd=self.root,
            env=self._process_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"{what} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        return result

    def _migrate(self) -> None:
        for name in ("auth", "mfa"):
            self._run_step(f"{name} migrate", [self._python, "-m", f"services.{name}", "migrate"])

    def _ssoctl_command(self) -> list[str]:
        script = self.root / ".venv" / "bin" / "ssoctl"
        if script.exists():
            return [str(script)]
        return [self._python, "-c", "from services.ssoctl import main; raise SystemExit(main())"]

    def _register_portal_client(self) -> None:
        public = self.gateway_url
        # The peers proxy starts with the gateway, later: auth's first replica answers directly.
        direct = self.state / "admin-direct.env"
        self._write_admin_env(direct, self.service_url)
        result = self.ssoctl(
            "client", "add", "portal", "--operator", "devstack",
            "--redirect-uri", f"{public}/portal/callback", "--redirect-uri", f"{public}/support/callback",
            "--post-logout-redirect-uri", f"{public}/", "--replace",
            # ES256 id_tokens, a sixth of RS256's signing CPU (PORTAL_ID_TOKEN_SIGNED_RESPONSE_ALGS).
            "--id-token-signed-response-alg", "ES256",
            env=self.ssoctl_env(direct),
        )  # fmt: skip
        direct.unlink()
        if result.returncode != 0:
            raise StackError(f"registering the portal client failed:\n{result.stdout}{result.stderr}")
        try:
            client_secret = json.loads(result.stdout)["client_secret"]
        except (ValueError, KeyError, TypeError) as error:
            raise StackError(f"ssoctl client add printed no client_secret: {result.stdout!r}") from error
        _write_private(self.secrets_dir / "portal-client-secret", f"{client_secret}\n".encode())

    def _spawn(self, name: str, command: list[str], marker: str) -> int:
        pid = processes.spawn(command, env=self._process_env(), log_path=self.log_path(name), cwd=self.root)
        self._record["processes"].append({"name": name, "pid": pid, "marker": marker})
        self._save_record()
        return pid

    def _wait_until(self, name: str, pid: int, marker: str, url: str, ready: Callable[[int], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if not processes.is_running(pid, marker):
                raise StackError(
                    f"{name} exited while starting; last lines of {self.log_path(name)}:\n"
                    + processes.log_tail(self.log_path(name))
                )
            status = http_status(url)
            if status is not None and ready(status):
                return
            if time.monotonic() > deadline:
                raise StackError(f"{name} did not answer {url} within {START_TIMEOUT:.0f} s")
            time.sleep(0.1)

    def _service_command(self, service: str, port: int) -> list[str]:
        # As in Kubernetes (deploy/k8s/base): in-flight requests get 20 s to finish on SIGTERM,
        # and uvicorn keeps idle connections longer than nginx does (60 s), so nginx never
        # sends a request down a connection uvicorn has just closed.
        return [self._python, "-m", "uvicorn", f"services.{service}.app:create_app", "--factory",
                "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                "--timeout-graceful-shutdown", "20", "--timeout-keep-alive", "75",
                # uvicorn's "auto" picks these when installed; named, a missing one fails the start.
                "--loop", "uvloop", "--http", "httptools"]  # fmt: skip

    def _start_services(self, services: list[str]) -> None:
        started = []
        for service in services:
            marker = f"services.{service}.app"
            for name, port in zip(self.replica_names(service), self.replica_ports(service), strict=True):
                started.append(
                    (name, self._spawn(name, self._service_command(service, port), marker), marker, port)
                )
        # All start together; each only needs the others once requests arrive.
        for name, pid, marker, port in started:
            self._wait_until(name, pid, marker, f"http://127.0.0.1:{port}/healthz", lambda s: s == 200)

    def _start_gateway(self) -> None:
        nginx = gateway.nginx_binary()
        config = gateway.write_config(
            self.root / "gateway" / "nginx.conf.template",
            self.gateway_dir,
            {
                # Loopback only: a developer's stack is not for the network.
                "GATEWAY_LISTEN": f"127.0.0.1:{self.gateway_port}",
                # No proxy in front: nobody's X-Forwarded-For is trusted.
                "GATEWAY_REAL_IP": "",
                **{
                    f"{name.upper()}_SERVERS": gateway.server_lines(
                        [f"127.0.0.1:{port}" for port in self.replica_ports(name)]
                    )
                    for name in ROUTED_SERVICES
                },
                "GATEWAY_RUNTIME_DIR": str(self.gateway_dir),
                # The gateway's own error pages, with the brand the services show.
                "GATEWAY_PAGES_DIR": str(gateway.readable_pages(self.root / "gateway" / "pages")),
                "GATEWAY_BRAND_NAME": gateway.brand_for_nginx(
                    self._process_env().get("SSO_BRAND_NAME") or Peers().brand_name
                ),
            },
        )
        command = [nginx, "-p", str(self.gateway_dir), "-c", str(config)]
        self._run_step("nginx -t", [*command, "-t", "-q"])
        pid = self._spawn("gateway", [*command, "-g", "daemon off;"], "nginx")
        # Any answer but nginx's own "upstream unavailable" means the way through works.
        self._wait_until("gateway", pid, "nginx", f"{self.gateway_url}/", lambda s: s < 500)
        if self._peer_proxy_ports:
            self._start_peers_proxy(nginx)

    def _start_peers_proxy(self, nginx: str) -> None:
        runtime_dir = self.state / "peers-proxy"
        config = gateway.write_peers_config(
            runtime_dir,
            {
                name: (port, [f"127.0.0.1:{replica}" for replica in self.replica_ports(name)])
                for name, port in self._peer_proxy_ports.items()
            },
        )
        command = [nginx, "-p", str(runtime_dir), "-c", str(config)]
        self._run_step("nginx -t (peers proxy)", [*command, "-t", "-q"])
        pid = self._spawn("peers-proxy", [*command, "-g", "daemon off;"], "nginx")
        for name in self._peer_proxy_ports:
            self._wait_until(
                "peers-proxy", pid, "nginx", f"{self.peer_url(name)}/healthz", lambda s: s == 200
            )

    # Stop and inspect

    def _read_record(self) -> dict[str, Any] | None:
        try:
            record: dict[str, Any] = json.loads(self._record_file.read_text())
        except (OSError, ValueError):
            return None
        return record

    def running_processes(self) -> list[tuple[str, int, bool]]:
        """(name, pid, alive) for every process the last start recorded."""
        record = self._read_record() or {"processes": []}
        return [
            (entry["name"], entry["pid"], processes.is_running(entry["pid"], entry["marker"]))
            for entry in record["processes"]
        ]

    def is_running(self) -> bool:
        return any(alive for _, _, alive in self.running_processes())

    def stop(self, drop_database: bool = False) -> None:
        """Stop what start() recorded; drop_database also drops the database and the Redis keys."""
        record = self._read_record()
        if record is None:
            return
        # The gateway first, so no request arrives at a service that is going away.
        for entry in reversed(record["processes"]):
            processes.terminate(entry["pid"], entry["marker"])
        if drop_database:
            if record.get("database_url"):
                datastores.drop_database(record["database_url"])
            if record.get("redis_url") and datastores.redis_answers(record["redis_url"]):
                datastores.delete_redis_keys(record["redis_url"], record["redis_prefix"])
        if record.get("redis"):
            datastores.stop_throwaway_redis(record["redis"])
        if record.get("postgres"):
            datastores.stop_throwaway_postgres(record["postgres"])
        self._record_file.unlink(missing_ok=True)

    # For tests and the admin CLI

    def stop_service(self, name: str) -> None:
        """Stop one recorded process (a service or "gateway"), e.g. to see the others fail closed."""
        record = self._read_record() or {"processes": []}
        entries = [entry for entry in record["processes"] if entry["name"] == name]
        if not entries:
            raise StackError(f"no process named {name!r} in this stack")
        for entry in entries:
            processes.terminate(entry["pid"], entry["marker"])

    def kill_replica(self, replica: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send one replica ("auth-2") a signal, as a crash (SIGKILL) or a stop (SIGTERM) would."""
        entry = self._entry(replica)
        if processes.is_running(entry["pid"], entry["marker"]):
            os.killpg(entry["pid"], sig)

    def wait_exited(self, replica: str, timeout: float = 30.0) -> None:
        entry = self._entry(replica)
        deadline = time.monotonic() + timeout
        while processes.is_running(entry["pid"], entry["marker"]):
            if time.monotonic() > deadline:
                raise StackError(f"{replica} still runs {timeout:.0f} s after it was told to stop")
            time.sleep(0.05)

    def restart_replica(self, *replicas: str) -> None:
        """Start replicas that were stopped or killed again, on their ports; returns once all are ready."""
        started = []
        for replica in replicas:
            entry = self._entry(replica)
            self.wait_exited(replica)
            service = replica.split("-")[0]
            port = self.replica_ports(service)[self.replica_names(service).index(replica)]
            self._record = self._read_record() or {"processes": []}
            self._record["processes"] = [e for e in self._record["processes"] if e["pid"] != entry["pid"]]
            pid = self._spawn(replica, self._service_command(service, port), entry["marker"])
            started.append((replica, pid, entry["marker"], port))
        for replica, pid, marker, port in started:
            self._wait_until(replica, pid, marker, f"http://127.0.0.1:{port}/readyz", lambda s: s == 200)

    def _entry(self, name: str) -> dict[str, Any]:
        record = self._read_record() or {"processes": []}
        entries = [entry for entry in record["processes"] if entry["name"] == name]
        if not entries:
            raise StackError(f"no process named {name!r} in this stack")
        return dict(entries[-1])

    def ssoctl_env(self, env_file: Path | None = None) -> dict[str, str]:
        """All ssoctl gets: admin.env (the admin key and the services' addresses), no datastore URL."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/"),
            "USER": os.environ.get("USER") or "devstack",
            "SSO_ENV_FILE": str(env_file or self.admin_env_file),
        }

    def ssoctl(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the admin CLI against this stack, with ssoctl_env() (or env) as its whole environment."""
        return subprocess.run(
            [*self._ssoctl_command(), *args],
            cwd=self.root,
            env=env if env is not None else self.ssoctl_env(),
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
