"""The checks of tests/k8s/manifests.py catch what they are for: each deliberately broken manifest fails."""

from collections.abc import Callable
from typing import Any

import pytest

from .manifests import (
    DATASTORE_SECRETS,
    OVERLAYS,
    admin_key_violations,
    build,
    connection_allowed,
    containers,
    find,
    leaked_secrets,
    mounted_secrets,
    pod_template,
    pods_of,
    policy_violations,
)

Objects = list[dict[str, Any]]


def _auth(objects: Objects) -> dict[str, Any]:
    return find(objects, "Deployment", "auth")


def _auth_pod(objects: Objects) -> dict[str, Any]:
    spec: dict[str, Any] = pod_template(_auth(objects))["spec"]
    return spec


def _auth_container(objects: Objects) -> dict[str, Any]:
    container: dict[str, Any] = _auth_pod(objects)["containers"][0]
    return container


def _security(objects: Objects) -> dict[str, Any]:
    security: dict[str, Any] = _auth_container(objects)["securityContext"]
    return security


def _drop(objects: Objects, kind: str, name: str) -> None:
    objects.remove(find(objects, kind, name))


BREAKAGES: dict[str, tuple[Callable[[Objects], None], str]] = {
    "root user": (lambda o: _auth_pod(o)["securityContext"].update(runAsUser=0), "uid 0"),
    "runAsNonRoot false": (lambda o: _security(o).update(runAsNonRoot=False), "runAsNonRoot is not true"),
    "privilege escalation": (
        lambda o: _security(o).update(allowPrivilegeEscalation=True),
        "allowPrivilegeEscalation is not false",
    ),
    "writable root": (lambda o: _security(o).pop("readOnlyRootFilesystem"), "readOnlyRootFilesystem"),
    "capabilities kept": (lambda o: _security(o).update(capabilities={}), "do not drop ALL"),
    "capability added": (
        lambda o: _security(o).update(capabilities={"drop": ["ALL"], "add": ["NET_ADMIN"]}),
        "adds capabilities",
    ),
    "no seccomp": (lambda o: _auth_pod(o)["securityContext"].pop("seccompProfile"), "seccompProfile"),
    "privileged": (lambda o: _security(o).update(privileged=True), "privileged"),
    "host network": (lambda o: _auth_pod(o).update(hostNetwork=True), "hostNetwork"),
    "hostPath": (
        lambda o: _auth_pod(o)["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
        "hostPath",
    ),
    "no readiness probe": (lambda o: _auth_container(o).pop("readinessProbe"), "no readinessProbe"),
    "no liveness probe": (lambda o: _auth_container(o).pop("livenessProbe"), "no livenessProbe"),
    "no startup probe": (lambda o: _auth_container(o).pop("startupProbe"), "no startupProbe"),
    "no cpu limit": (lambda o: _auth_container(o)["resources"]["limits"].pop("cpu"), "no cpu limit"),
    "no memory request": (
        lambda o: _auth_pod(o)["initContainers"][0]["resources"]["requests"].pop("memory"),
        "no memory request",
    ),
    "untagged image": (lambda o: _auth_container(o).update(image="registry.example.com/sso"), "not pinned"),
    "latest image": (
        lambda o: _auth_container(o).update(image="registry.example.com/sso:latest"),
        "not pinned",
    ),
    "gateway latest": (
        lambda o: pod_template(find(o, "Deployment", "gateway"))["spec"]["containers"][0].update(
            image="nginxinc/nginx-unprivileged:latest"
        ),
        "not pinned",
    ),
    "no spread": (lambda o: _auth_pod(o).pop("topologySpreadConstraints"), "topologySpreadConstraints"),
    "no preStop": (lambda o: _auth_container(o).pop("lifecycle"), "no preStop hook"),
    "short grace period": (
        lambda o: _auth_pod(o).update(terminationGracePeriodSeconds=20),
        "terminationGracePeriodSeconds 20 is not longer",
    ),
    "no uvicorn drain time": (
        lambda o: _auth_container(o).update(
            command=[a for a in _auth_container(o)["command"] if "graceful" not in a]
        ),
        "without --timeout-graceful-shutdown",
    ),
    "one replica in prod": (lambda o: _auth(o)["spec"].update(replicas=1), "fewer than 2 replicas"),
    "no PDB in prod": (lambda o: _drop(o, "PodDisruptionBudget", "auth"), "no PodDisruptionBudget"),
    "no HPA in prod": (lambda o: _drop(o, "HorizontalPodAutoscaler", "auth"), "no HorizontalPodAutoscaler"),
    "HPA down to 1 in prod": (
        lambda o: find(o, "HorizontalPodAutoscaler", "auth")["spec"].update(minReplicas=1),
        "minReplicas below 2",
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_the_policy_catches(breakage: str) -> None:
    objects = build("prod")
    assert policy_violations(objects, production=True) == []
    breaking, expected = BREAKAGES[breakage]
    breaking(objects)
    problems = policy_violations(objects, production=True)
    assert any(expected in problem for problem in problems), problems


def test_dev_needs_no_second_replica_but_keeps_every_other_rule() -> None:
    objects = build("dev")
    assert _auth(objects)["spec"]["replicas"] == 1
    assert policy_violations(objects, production=False) == []
    _security(objects).update(readOnlyRootFilesystem=False)
    assert policy_violations(objects, production=False)


SECRET_LEAKS: dict[str, Callable[[Objects], None]] = {
    "private key in a ConfigMap": lambda o: o.append(
        {
            "kind": "ConfigMap",
            "metadata": {"name": "oops"},
            "data": {"key.pem": "-----BEGIN PRIVATE KEY-----\nMIGH...\n-----END PRIVATE KEY-----\n"},
        }
    ),
    "database URL with its password in a ConfigMap": lambda o: o.append(
        {
            "kind": "ConfigMap",
            "metadata": {"name": "oops"},
            "data": {"DB": "postgresql://sso:hunter22@db/sso"},
        }
    ),
    "a password setting in a ConfigMap": lambda o: o.append(
        {"kind": "ConfigMap", "metadata": {"name": "oops"}, "data": {"REDIS_PASSWORD": "x"}}
    ),
    "an env literal secret": lambda o: _auth_container(o)["env"].append(
        {"name": "PORTAL_CLIENT_SECRET", "value": "s3cr3t-value"}
    ),
    "an env literal URL with a password": lambda o: _auth_container(o)["env"].append(
        {"name": "AUTH_DATABASE_URL", "value": "postgresql://auth:pw123456@postgres/sso"}
    ),
    "a password on a command line": lambda o: _auth_container(o)["command"].append(
        "--password=hunter2hunter2"
    ),
    "a shipped Secret": lambda o: o.append({"kind": "Secret", "metadata": {"name": "sso-auth-keys"}}),
}


@pytest.mark.parametrize("leak", sorted(SECRET_LEAKS))
def test_the_secret_check_catches(leak: str) -> None:
    objects = build("dev")
    assert leaked_secrets(objects) == []
    SECRET_LEAKS[leak](objects)
    assert leaked_secrets(objects)


def test_the_network_check_notices_a_policy_that_lets_everyone_in() -> None:
    objects = build("prod")
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    pods = pods_of(objects)
    assert not connection_allowed(policies, pods["gateway"], pods["session"], 8103)
    allow_all = {
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-all", "namespace": "sso"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": [{}]},
    }
    assert connection_allowed([*policies, allow_all], pods["gateway"], pods["session"], 8103)


def test_the_network_check_notices_a_missing_default_deny() -> None:
    objects = build("prod")
    policies = [
        o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] != "default-deny"
    ]
    pods = pods_of(objects)
    # Without default-deny, a pod no other policy names takes traffic from anywhere.
    stranger = {**pods["gateway"], "labels": {"app.kubernetes.io/name": "stranger"}}
    outsider = {"namespace": "elsewhere", "namespace_labels": {}, "labels": {"any": "pod"}}
    assert connection_allowed(policies, outsider, stranger, 8080)
    with_deny = [o for o in objects if o["kind"] == "NetworkPolicy"]
    assert not connection_allowed(with_deny, outsider, stranger, 8080)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_admin_workload_mounts_no_database_or_redis_secret(overlay: str) -> None:
    objects = build(overlay)
    admin = find(objects, "Deployment", "sso-admin")
    assert mounted_secrets(admin) == {"sso-admin-key"}
    assert not mounted_secrets(admin) & DATASTORE_SECRETS
    env = {e["name"] for _, c in containers(pod_template(admin)["spec"]) for e in c.get("env") or []}
    assert env == {"SSO_ADMIN_KEY_FILE"}
    assert admin_key_violations(objects) == []


def _admin_pod(objects: Objects) -> dict[str, Any]:
    spec: dict[str, Any] = pod_template(find(objects, "Deployment", "sso-admin"))["spec"]
    return spec


ADMIN_BREAKAGES: dict[str, Callable[[Objects], None]] = {
    "the Postgres secret as a volume": lambda o: _admin_pod(o)["volumes"].append(
        {"name": "postgres", "secret": {"secretName": "sso-postgres"}}
    ),
    "the Redis URL from a secretKeyRef": lambda o: _admin_pod(o)["containers"][0]["env"].append(
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "sso-redis", "key": "url"}}}
    ),
    "a service's keys through envFrom": lambda o: (
        _admin_pod(o)["containers"][0]
        .setdefault("envFrom", [])
        .append({"secretRef": {"name": "sso-auth-keys"}})
    ),
    "the admin key in a service pod": lambda o: _auth_pod(o)["volumes"].append(
        {"name": "admin", "projected": {"sources": [{"secret": {"name": "sso-admin-key"}}]}}
    ),
}


@pytest.mark.parametrize("breakage", sorted(ADMIN_BREAKAGES))
def test_the_admin_key_check_catches(breakage: str) -> None:
    objects = build("prod")
    assert admin_key_violations(objects) == []
    ADMIN_BREAKAGES[breakage](objects)
    assert admin_key_violations(objects)
