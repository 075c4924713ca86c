"""Secrets reach the services as mounted files: every URL with a password has its *_FILE."""

import base64
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import kubernetes_validate
import pytest

from services.auth.settings import Settings as AuthSettings
from services.common.keys import SigningKey, public_pem
from services.common.settings import setting_from_env
from services.mfa.settings import DatabaseSettings as MfaDatabaseSettings
from services.mfa.settings import Settings as MfaSettings
from services.session.settings import Settings as SessionSettings

from .manifests import K8S, KUBERNETES_VERSION, build, pod_template


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "url"
    path.write_text("postgresql://auth:s3cret@db.internal:5432/sso\n")
    return path


def test_a_database_url_file_wins_over_the_variable(
    monkeypatch: pytest.MonkeyPatch, secret_file: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("AUTH_DATABASE_URL", "postgresql://ignored@elsewhere/sso")
    monkeypatch.setenv("AUTH_DATABASE_URL_FILE", str(secret_file))
    settings = AuthSettings(signing_key_file=tmp_path / "k", oidc_key_file=tmp_path / "o")  # type: ignore[call-arg]
    assert settings.database_url == "postgresql://auth:s3cret@db.internal:5432/sso"
    assert setting_from_env("AUTH_DATABASE_URL", "default") == settings.database_url


@pytest.mark.parametrize(
    ("variable", "read"),
    [
        ("AUTH_REDIS_URL", lambda p: AuthSettings(signing_key_file=p, oidc_key_file=p).redis_url),
        ("MFA_DATABASE_URL", lambda p: MfaSettings(signing_key_file=p).database_url),
        ("MFA_DATABASE_URL", lambda p: MfaDatabaseSettings().database_url),
        ("SESSION_REDIS_URL", lambda p: SessionSettings(signing_key_file=p).redis_url),
    ],
)
def test_every_url_the_manifests_give_as_a_file_is_read_from_it(
    monkeypatch: pytest.MonkeyPatch, secret_file: Path, variable: str, read
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv(f"{variable}_FILE", str(secret_file))
    assert read(secret_file) == "postgresql://auth:s3cret@db.internal:5432/sso"


def test_a_missing_file_stops_the_start_with_its_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SESSION_REDIS_URL_FILE", str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="SESSION_REDIS_URL_FILE"):
        SessionSettings(signing_key_file=tmp_path / "k")  # type: ignore[call-arg]


def test_every_file_variable_in_the_manifests_is_one_the_code_reads() -> None:
    """A typo in a *_FILE name would silently fall back to a default: catch it here."""
    known = {
        "AUTH_SIGNING_KEY_FILE",
        "AUTH_OIDC_KEY_FILE",
        "MFA_SIGNING_KEY_FILE",
        "MFA_ENCRYPTION_KEY_FILE",
        "SESSION_SIGNING_KEY_FILE",
        "PORTAL_SIGNING_KEY_FILE",
        "PORTAL_CLIENT_SECRET_FILE",
        "SSO_ADMIN_KEY_FILE",
        # FileValues: <PREFIX><FIELD>_FILE for the text settings
        "AUTH_DATABASE_URL_FILE",
        "AUTH_REDIS_URL_FILE",
        "MFA_DATABASE_URL_FILE",
        "SESSION_REDIS_URL_FILE",
    }
    fields = {
        "AUTH": AuthSettings.model_fields,
        "MFA": MfaSettings.model_fields,
        "SESSION": SessionSettings.model_fields,
        "PORTAL": {},
    }
    for variable in known:
        prefix, _, rest = variable.partition("_")
        field = rest.removesuffix("_FILE").lower()
        if prefix in fields and fields[prefix]:
            assert field in fields[prefix] or f"{field}_file" in fields[prefix], variable
    for overlay in ("dev", "prod"):
        for obj in build(overlay):
            if obj["kind"] != "Deployment":
                continue
            for field in ("initContainers", "containers"):
                for container in pod_template(obj)["spec"].get(field) or []:
                    for env in container.get("env") or []:
                        if env["name"].endswith("_FILE"):
                            assert env["name"] in known, f"{obj['metadata']['name']}: {env['name']}"


def _dev_secrets_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dev_secrets", K8S / "dev_secrets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("dev_secrets", module)
    spec.loader.exec_module(module)
    return module


def test_the_dev_secrets_script_makes_every_secret_the_dev_overlay_mounts() -> None:
    listing = _dev_secrets_module().dev_secrets("sso-dev")
    made = {}
    for item in listing["items"]:
        assert kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)
        assert item["metadata"]["namespace"] == "sso-dev"
        made[item["metadata"]["name"]] = {k: base64.b64decode(v) for k, v in item["data"].items()}
    for obj in build("dev"):
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for volume in pod_template(obj)["spec"].get("volumes") or []:
            if "secret" not in volume:
                continue
            name = volume["secret"]["secretName"]
            if name == "sso-portal-client":  # issued by `ssoctl client add` (docs/operations.md)
                continue
            assert name in made, name
            for item in volume["secret"].get("items") or []:
                assert item["key"] in made[name], f"{name}: {item['key']}"
    for name in ("sso-auth-keys", "sso-mfa-keys", "sso-session-keys", "sso-portal-keys"):
        SigningKey.from_pem(made[name]["signing.pem"])
    assert public_pem(made["sso-admin-key"]["admin.pem"]) == made["sso-admin-public-key"]["admin.pub.pem"]
    SigningKey.from_pem(made["sso-auth-keys"]["oidc.pem"])
    assert len(base64.b64decode(made["sso-mfa-keys"]["encryption.key"])) == 32
    password = made["sso-postgres"]["password"].decode()
    assert f":{password}@postgres:5432/" in made["sso-postgres"]["auth-url"].decode()
    assert f":{made['sso-redis']['password'].decode()}@redis:6379/" in made["sso-redis"]["url"].decode()


def test_the_dev_secrets_are_new_every_time() -> None:
    module = _dev_secrets_module()
    first, second = module.dev_secrets("sso-dev"), module.dev_secrets("sso-dev")
    assert first["items"][0]["data"] != second["items"][0]["data"]
