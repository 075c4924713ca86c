"""deploy/k8s on paper: both overlays build, validate against Kubernetes 1.30 and follow the rules."""

import socket
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from services.portal.settings import Settings as PortalSettings

from .manifests import (
    CRD_KINDS,
    KUBERNETES_VERSION,
    OVERLAYS,
    ROOT,
    SERVICES,
    build,
    connection_allowed,
    container_port,
    find,
    find_prefixed,
    leaked_secrets,
    name_of,
    pod_template,
    pods_of,
    policy_violations,
)

OPERATIONS = ROOT / "docs" / "operations.md"

# Who calls whom (docs/architecture.md): every other pod-to-pod connection must be refused.
EXPECTED_CALLS = {
    ("gateway", "auth"),
    ("gateway", "mfa"),
    ("gateway", "portal"),
    ("auth", "session"),
    ("auth", "mfa"),
    # the portal's JWKS: auth checks the portal's service tokens (audit)
    ("auth", "portal"),
    ("mfa", "auth"),
    ("portal", "session"),
    ("portal", "auth"),
    # the support desk: mfa's admin API, and mfa fetching the portal's JWKS
    ("portal", "mfa"),
    ("mfa", "portal"),
    ("session", "auth"),
    ("session", "mfa"),
    ("session", "portal"),
    # ssoctl, through the services' admin API
    ("sso-admin", "auth"),
    ("sso-admin", "mfa"),
    ("sso-admin", "session"),
}


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def test_both_overlays_build_with_the_objects_sres_expect(overlay: str) -> None:
    objects = build(overlay)
    kinds = {obj["kind"] for obj in objects}
    assert {
        "Namespace",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "Ingress",
        "ConfigMap",
    } <= kinds
    deployments = {o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"}
    assert deployments == {*SERVICES, "gateway", "sso-admin"}
    assert all(o["metadata"].get("namespace") == f"sso{'-dev' if overlay == 'dev' else ''}"
               for o in objects if o["kind"] != "Namespace")  # fmt: skip
    if overlay == "dev":
        assert {o["metadata"]["name"] for o in objects if o["kind"] == "StatefulSet"} == {"postgres", "redis"}
    else:
        assert not [o for o in objects if o["kind"] == "StatefulSet"], "prod uses HA datastores outside"
        assert {"ServiceMonitor", "PrometheusRule"} <= kinds


def test_every_object_validates_against_kubernetes_1_30_strictly(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The schemas ship with kubernetes-validate: no network is needed, and none is used.
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("schema validation tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    validated, skipped = 0, []
    for obj in build(overlay):
        if obj["kind"] in CRD_KINDS:
            skipped.append(obj["kind"])
            continue
        try:
            version = kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            raise AssertionError(f"{name_of(obj)}: {error.message} at {list(error.path)}") from error
        assert version == KUBERNETES_VERSION
        validated += 1
    assert validated >= 30
    assert set(skipped) == (CRD_KINDS if overlay == "prod" else set())


def test_strict_validation_would_catch_a_misspelt_field() -> None:
    deployment = find(build("prod"), "Deployment", "auth")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"tcpSocket": {"port": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_every_workload_follows_the_policy(overlay: str) -> None:
    assert policy_violations(build(overlay), production=overlay == "prod") == []


def test_production_runs_two_replicas_of_everything_with_pdb_and_hpa() -> None:
    objects = build("prod")
    for name in (*SERVICES, "gateway"):
        assert find(objects, "Deployment", name)["spec"]["replicas"] >= 2
        assert find(objects, "HorizontalPodAutoscaler", name)["spec"]["minReplicas"] >= 2
        assert find(objects, "PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"] == {
            "app.kubernetes.io/name": name
        }


def test_no_secret_in_a_configmap_an_env_literal_or_a_shipped_secret(overlay: str) -> None:
    assert leaked_secrets(build(overlay)) == []


def test_services_read_their_secrets_from_mounted_files(overlay: str) -> None:
    objects = build(overlay)
    expected = {
        "auth": {
            "AUTH_SIGNING_KEY_FILE",
            "AUTH_OIDC_KEY_FILE",
            "AUTH_DATABASE_URL_FILE",
            "AUTH_REDIS_URL_FILE",
        },
        "mfa": {"MFA_SIGNING_KEY_FILE", "MFA_ENCRYPTION_KEY_FILE", "MFA_DATABASE_URL_FILE"},
        "session": {"SESSION_SIGNING_KEY_FILE", "SESSION_REDIS_URL_FILE"},
        "portal": {"PORTAL_SIGNING_KEY_FILE", "PORTAL_CLIENT_SECRET_FILE"},
    }
    for name, variables in expected.items():
        spec = pod_template(find(objects, "Deployment", name))["spec"]
        container = spec["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert variables <= env.keys()
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        secret_volumes = {v["name"] for v in spec["volumes"] if "secret" in v}
        for variable in variables:
            directory = str(Path(env[variable]).parent)
            assert mounts.get(directory) in secret_volumes, f"{name} {variable}: not on a Secret volume"


def test_every_secret_the_manifests_mount_is_documented_with_its_create_command(overlay: str) -> None:
    docs = OPERATIONS.read_text()
    for obj in build(overlay):
        if obj["kind"] in ("Deployment", "StatefulSet"):
            for volume in pod_template(obj)["spec"].get("volumes") or []:
                if "secret" in volume:
                    name = volume["secret"]["secretName"]
                    assert f"create secret generic {name} " in docs, f"{name} is not in docs/operations.md"


def test_the_base_configmap_carries_the_peers_as_cluster_service_names(overlay: str) -> None:
    data = find_prefixed(build(overlay), "ConfigMap", "sso-config")["data"]
    assert data["SSO_AUTH_URL"] == "http://auth:8101"
    assert data["SSO_SESSION_URL"] == "http://session:8103"
    assert data["SSO_PUBLIC_URL"].startswith("https://"), "Secure cookies behind TLS"


def test_the_base_configmap_lets_an_upgraded_portal_take_its_clients_rs256_id_tokens(
    overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A portal client registered before id_token_signed_response_alg is RS256: no upgrade step.
    data = find_prefixed(build(overlay), "ConfigMap", "sso-config")["data"]
    monkeypatch.setenv("PORTAL_ID_TOKEN_SIGNED_RESPONSE_ALGS", data["PORTAL_ID_TOKEN_SIGNED_RESPONSE_ALGS"])
    algs = PortalSettings(signing_key_file=tmp_path / "portal.pem").id_token_signed_response_algs
    assert set(algs) == {"ES256", "RS256"}


def test_migrations_run_before_auth_and_mfa_serve(overlay: str) -> None:
    objects = build(overlay)
    for name in ("auth", "mfa"):
        init = pod_template(find(objects, "Deployment", name))["spec"]["initContainers"]
        assert [c["command"] for c in init] == [["python", "-m", f"services.{name}", "migrate"]]


# NetworkPolicies


def test_a_default_deny_policy_covers_every_pod(overlay: str) -> None:
    policies = [o for o in build(overlay) if o["kind"] == "NetworkPolicy"]
    default_deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert default_deny, "no default-deny NetworkPolicy"


def test_pods_reach_exactly_the_peers_they_call(overlay: str) -> None:
    objects = build(overlay)
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    pods = pods_of(objects)
    apps = [*SERVICES, "gateway", "sso-admin"]
    allowed = {
        (source, target)
        for source in apps
        for target in (*SERVICES, "gateway")
        if source != target
        and connection_allowed(policies, pods[source], pods[target], container_port(objects, target))
    }
    assert allowed == EXPECTED_CALLS


def test_only_the_ingress_controller_reaches_the_gateway_from_outside(overlay: str) -> None:
    objects = build(overlay)
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    pods = pods_of(objects)

    def outsider(namespace: str) -> dict[str, Any]:
        return {
            "namespace": namespace,
            "namespace_labels": {"kubernetes.io/metadata.name": namespace},
            "labels": {},
        }

    assert connection_allowed(policies, outsider("ingress-nginx"), pods["gateway"], 8080)
    assert not connection_allowed(policies, outsider("somewhere-else"), pods["gateway"], 8080)
    for name in SERVICES:
        port = container_port(objects, name)
        assert not connection_allowed(policies, outsider("ingress-nginx"), pods[name], port)
        # Prometheus scrapes each pod directly.
        assert connection_allowed(policies, outsider("monitoring"), pods[name], port)
    assert not connection_allowed(policies, outsider("monitoring"), pods["gateway"], 8080)


def test_only_auth_and_mfa_reach_postgres_only_auth_and_session_reach_redis_not_the_admin_pod(
    overlay: str,
) -> None:
    objects = build(overlay)
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    pods = pods_of(objects)
    if overlay == "dev":
        targets = {"postgres": (pods["postgres"], 5432), "redis": (pods["redis"], 6379)}
    else:  # the managed services' addresses in overlays/prod/datastore-networkpolicies.yaml
        targets = {"postgres": ({"ip": "192.0.2.10"}, 5432), "redis": ({"ip": "198.51.100.10"}, 6379)}
    reach = {
        store: {name for name, pod in pods.items() if connection_allowed(policies, pod, target, port)}
        for store, (target, port) in targets.items()
    }
    assert reach == {"postgres": {"auth", "mfa"}, "redis": {"auth", "session"}}


def test_every_pod_resolves_names_through_kube_dns_only(overlay: str) -> None:
    objects = build(overlay)
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    kube_dns = {
        "namespace": "kube-system",
        "namespace_labels": {"kubernetes.io/metadata.name": "kube-system"},
        "labels": {"k8s-app": "kube-dns"},
    }
    for name, pod in pods_of(objects).items():
        assert connection_allowed(policies, pod, kube_dns, 53), name
        assert not connection_allowed(policies, pod, {"ip": "8.8.8.8"}, 53), name


# The way in


def test_the_ingress_terminates_tls_with_cert_manager_in_front_of_the_gateway(overlay: str) -> None:
    objects = build(overlay)
    ingresses = [o for o in objects if o["kind"] == "Ingress"]
    assert len(ingresses) == 1
    ingress = ingresses[0]
    assert "cert-manager.io/cluster-issuer" in ingress["metadata"]["annotations"]
    host = ingress["spec"]["rules"][0]["host"]
    assert ingress["spec"]["tls"][0]["hosts"] == [host]
    backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {"gateway"}
    public_url = find_prefixed(objects, "ConfigMap", "sso-config")["data"]["SSO_PUBLIC_URL"]
    assert public_url == f"https://{host}"


def test_no_service_is_exposed_but_through_the_ingress(overlay: str) -> None:
    for obj in build(overlay):
        if obj["kind"] == "Service":
            assert obj["spec"].get("type", "ClusterIP") == "ClusterIP", name_of(obj)


def test_prometheus_scrapes_the_four_services(overlay: str) -> None:
    objects = build(overlay)
    for name in SERVICES:
        annotations = pod_template(find(objects, "Deployment", name))["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert annotations["prometheus.io/port"] == str(container_port(objects, name))
    if overlay == "prod":
        monitor = find(objects, "ServiceMonitor", "sso-services")
        selected = {
            o["metadata"]["name"]
            for o in objects
            if o["kind"] == "Service"
            and all(
                o["metadata"]["labels"].get(k) == v
                for k, v in monitor["spec"]["selector"]["matchLabels"].items()
            )
        }
        assert selected == set(SERVICES)
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
