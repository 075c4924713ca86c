"""Throwaway Secrets for the dev overlay: print them, pipe them to kubectl, commit nothing.

    .venv/bin/python deploy/k8s/dev_secrets.py --namespace sso-dev | kubectl create -f -

`create`, not `apply`: run twice, it refuses instead of replacing the keys and the datastore
passwords under a running Postgres. The portal's client secret is not here: `ssoctl client add`
issues it (docs/operations.md, "First deploy").
"""

import argparse
import base64
import json
import secrets
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from services.common.keys import generate_private_pem, public_pem  # noqa: E402


def secret(name: str, namespace: str, data: dict[str, bytes]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "customer-portal-sso"},
        },
        "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
    }


def dev_secrets(namespace: str) -> dict[str, Any]:
    """Every Secret the dev overlay mounts, but sso-portal-client, as one kubectl List."""
    postgres_password = secrets.token_urlsafe(24)
    redis_password = secrets.token_urlsafe(24)
    postgres_url = f"postgresql://postgres:{postgres_password}@postgres:5432/sso"
    admin_key = generate_private_pem("ec")
    items = [
        secret(
            "sso-auth-keys",
            namespace,
            {"signing.pem": generate_private_pem("ec"), "oidc.pem": generate_private_pem("rsa")},
        ),
        secret(
            "sso-mfa-keys",
            namespace,
            {
                "signing.pem": generate_private_pem("ec"),
                "encryption.key": base64.b64encode(secrets.token_bytes(32)) + b"\n",
            },
        ),
        secret("sso-session-keys", namespace, {"signing.pem": generate_private_pem("ec")}),
        secret("sso-portal-keys", namespace, {"signing.pem": generate_private_pem("ec")}),
        # ssoctl's key, for the admin pod only; the services get its public half.
        secret("sso-admin-key", namespace, {"admin.pem": admin_key}),
        secret("sso-admin-public-key", namespace, {"admin.pub.pem": public_pem(admin_key)}),
        secret(
            "sso-postgres",
            namespace,
            {
                "password": postgres_password.encode(),
                "auth-url": postgres_url.encode(),
                "mfa-url": postgres_url.encode(),
            },
        ),
        secret(
            "sso-redis",
            namespace,
            {
                "password": redis_password.encode(),
                "url": f"redis://:{redis_password}@redis:6379/0".encode(),
            },
        ),
    ]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--namespace", default="sso-dev")
    args = parser.parse_args(argv)
    json.dump(dev_secrets(args.namespace), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
