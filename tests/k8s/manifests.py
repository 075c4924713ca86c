"""Build the kustomize overlays and judge what they make: the rules the k8s tests enforce.

Each check is a plain function over the built objects, returning what it found wrong, so
tests/k8s/test_policy.py can show that each one catches a deliberately broken manifest.
"""

import functools
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.30"
# Custom resources: kubernetes-validate ships only the built-in kinds' schemas.
CRD_KINDS = frozenset({"ServiceMonitor", "PrometheusRule"})
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"})
SERVICES = ("auth", "mfa", "session", "portal")
# A toolbox kept at 0 replicas; serves nothing, so it needs no PDB or HPA.
ADMIN_COMPONENT = "admin"


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        raise AssertionError("kubectl is not installed: the k8s tests need `kubectl kustomize`")
    return found


@functools.cache
def build_text(overlay: str) -> str:
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {overlay} failed:\n{result.stderr}")
    return result.stdout


def build(overlay: str) -> list[dict[str, Any]]:
    """A fresh copy each time: tests may mutate what they get."""
    return [doc for doc in yaml.safe_load_all(build_text(overlay)) if doc]


def name_of(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise KeyError(f"{kind}/{name}")


def find_prefixed(objects: list[dict[str, Any]], kind: str, prefix: str) -> dict[str, Any]:
    """A generated object, whose name kustomize suffixed with a hash."""
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(f"{prefix}-")]
    assert len(matches) == 1, f"expected one {kind} {prefix}-<hash>, found {[name_of(m) for m in matches]}"
    return matches[0]


def pod_template(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "CronJob":
        template: dict[str, Any] = obj["spec"]["jobTemplate"]["spec"]["template"]
    else:
        template = obj["spec"]["template"]
    return template


def containers(pod_spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in ("initContainers", "containers"):
        for container in pod_spec.get(field) or []:
            yield field, container


# The policy: restricted Pod Security, probes, limits, pinned images, graceful stop, HA in prod


def image_pinned(image: str) -> bool:
    """A tag that is not `latest`, or a digest."""
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    return last.rsplit(":", 1)[1] not in ("", "latest")


def _flag_value(command: list[str], flag: str) -> int | None:
    for index, arg in enumerate(command):
        if arg.startswith(f"{flag}="):
            return int(arg.split("=", 1)[1])
        if arg == flag and index + 1 < len(command):
            return int(command[index + 1])
    return None


def _prestop_seconds(container: dict[str, Any]) -> int | None:
    pre_stop = (container.get("lifecycle") or {}).get("preStop")
    if not pre_stop:
        return None
    if "sleep" in pre_stop:
        return int(pre_stop["sleep"]["seconds"])
    command = " ".join(pre_stop.get("exec", {}).get("command", []))
    found = re.search(r"\bsleep\s+(\d+)", command)
    return int(found.group(1)) if found else 0


def _workload_violations(obj: dict[str, Any]) -> list[str]:
    where = name_of(obj)
    problems: list[str] = []
    template = pod_template(obj)
    spec = template["spec"]
    pod_security = spec.get("securityContext") or {}
    for forbidden in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(forbidden):
            problems.append(f"{where}: {forbidden}")
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            problems.append(f"{where}: hostPath volume {volume['name']}")
    if pod_security.get("runAsUser") == 0:
        problems.append(f"{where}: runAsUser 0")
    long_running = obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet")
    for field, container in containers(spec):
        at = f"{where}: {field[:-1]} {container['name']}"
        security = container.get("securityContext") or {}
        if security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is not True:
            problems.append(f"{at}: runAsNonRoot is not true")
        if security.get("runAsUser", pod_security.get("runAsUser")) == 0:
            problems.append(f"{at}: runs as uid 0")
        if security.get("privileged"):
            problems.append(f"{at}: privileged")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{at}: allowPrivilegeEscalation is not false")
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{at}: readOnlyRootFilesystem is not true")
        capabilities = security.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{at}: capabilities do not drop ALL")
        if capabilities.get("add"):
            problems.append(f"{at}: adds capabilities {capabilities['add']}")
        seccomp = (security.get("seccompProfile") or pod_security.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{at}: seccompProfile is not RuntimeDefault")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{at}: hostPort {port['hostPort']}")
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (resources.get(kind) or {}):
                    problems.append(f"{at}: no {resource} {kind[:-1] if kind == 'limits' else 'request'}")
        if not image_pinned(container.get("image", "")):
            problems.append(f"{at}: image {container.get('image')!r} is not pinned (no tag, or latest)")
        if long_running and field == "containers":
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe not in container:
                    problems.append(f"{at}: no {probe}")
    if obj["kind"] == "Deployment" and template["metadata"].get("labels", {}).get(
        "app.kubernetes.io/component"
    ) in ("service", "gateway"):
        if not spec.get("topologySpreadConstraints"):
            problems.append(f"{where}: no topologySpreadConstraints")
        grace = spec.get("terminationGracePeriodSeconds", 30)
        for container in spec["containers"]:
            pre_stop = _prestop_seconds(container)
            if pre_stop is None:
                problems.append(f"{where}: container {container['name']} has no preStop hook")
                continue
            command = [*container.get("command", []), *container.get("args", [])]
            drain = _flag_value(command, "--timeout-graceful-shutdown")
            if command and command[0] == "uvicorn" and drain is None:
                problems.append(f"{where}: uvicorn without --timeout-graceful-shutdown")
            if grace <= pre_stop + (drain or 0):
                problems.append(
                    f"{where}: terminationGracePeriodSeconds {grace} is not longer than "
                    f"preStop {pre_stop} s + graceful shutdown {drain or 0} s"
                )
    return problems


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        value = labels.get(expression["key"])
        operator = expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if operator == "Exists" and value is None:
            return False
        if operator == "DoesNotExist" and value is not None:
            return False
    return True


def policy_violations(objects: list[dict[str, Any]], *, production: bool) -> list[str]:
    """Everything in the built overlay that breaks the rules; empty when all is well."""
    problems: list[str] = []
    workloads = [o for o in objects if o["kind"] in WORKLOAD_KINDS]
    for obj in workloads:
        problems += _workload_violations(obj)
    if not production:
        return problems
    pdbs = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    hpas = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    for obj in workloads:
        labels = pod_template(obj)["metadata"].get("labels", {})
        if labels.get("app.kubernetes.io/component") == ADMIN_COMPONENT or obj["kind"] not in (
            "Deployment",
            "StatefulSet",
        ):
            continue
        where = name_of(obj)
        if obj["spec"].get("replicas", 1) < 2:
            problems.append(f"{where}: fewer than 2 replicas in production")
        if not any(_selects(pdb["spec"]["selector"], labels) for pdb in pdbs):
            problems.append(f"{where}: no PodDisruptionBudget")
        targeting = [
            hpa
            for hpa in hpas
            if hpa["spec"]["scaleTargetRef"]["kind"] == obj["kind"]
            and hpa["spec"]["scaleTargetRef"]["name"] == obj["metadata"]["name"]
        ]
        if not targeting:
            problems.append(f"{where}: no HorizontalPodAutoscaler")
        for hpa in targeting:
            if hpa["spec"].get("minReplicas", 1) < 2:
                problems.append(f"{where}: HorizontalPodAutoscaler minReplicas below 2")
    return problems


# Secrets never in a ConfigMap or an env literal

PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@", re.IGNORECASE)
PASSWORD_ASSIGNMENT = re.compile(
    r"(password|passwd|secret|token)\s*[=:]\s*['\"]?[^\s'\"$]{6,}", re.IGNORECASE
)
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|PRIVATE|_KEY)$")


DATASTORE_SECRETS = frozenset({"sso-postgres", "sso-redis"})
ADMIN_KEY_SECRET = "sso-admin-key"


def mounted_secrets(obj: dict[str, Any]) -> set[str]:
    """Every Secret a workload's pods can read: volumes (projected too), env and envFrom."""
    spec = pod_template(obj)["spec"]
    names: set[str] = set()
    for volume in spec.get("volumes") or []:
        if "secret" in volume:
            names.add(volume["secret"]["secretName"])
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "secret" in source:
                names.add(source["secret"]["name"])
    for _, container in containers(spec):
        for env in container.get("env") or []:
            reference = (env.get("valueFrom") or {}).get("secretKeyRef")
            if reference:
                names.add(reference["name"])
        for source in container.get("envFrom") or []:
            if "secretRef" in source:
                names.add(source["secretRef"]["name"])
    return names


def admin_key_violations(objects: list[dict[str, Any]]) -> list[str]:
    """The admin workload holds the admin key and nothing else; no other workload holds that key."""
    problems = []
    for obj in objects:
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        secrets = mounted_secrets(obj)
        if obj["metadata"].get("labels", {}).get("app.kubernetes.io/component") == ADMIN_COMPONENT:
            if secrets != {ADMIN_KEY_SECRET}:
                problems.append(
                    f"{name_of(obj)}: admin workload holds {sorted(secrets)}, not the admin key only"
                )
        elif ADMIN_KEY_SECRET in secrets:
            problems.append(f"{name_of(obj)}: holds the admin key")
    return problems


def leaked_secrets(objects: list[dict[str, Any]]) -> list[str]:
    """Private keys, passwords and credentials in ConfigMaps, env literals or shipped Secrets."""
    found: list[str] = []

    def check_text(where: str, text: str) -> None:
        for pattern, what in (
            (PRIVATE_KEY, "a private key"),
            (URL_WITH_PASSWORD, "a URL with a password"),
            (PASSWORD_ASSIGNMENT, "a password"),
        ):
            if pattern.search(text):
                found.append(f"{where}: {what}")

    for obj in objects:
        if obj["kind"] == "Secret":
            found.append(f"{name_of(obj)}: a Secret is shipped (the SRE creates them)")
        if obj["kind"] == "ConfigMap":
            for key, value in (obj.get("data") or {}).items():
                check_text(f"{name_of(obj)} {key}", str(value))
                if SECRET_NAME.search(key.upper()) and not key.upper().endswith("_FILE"):
                    found.append(f"{name_of(obj)} {key}: a secret-looking setting in a ConfigMap")
        if obj["kind"] in WORKLOAD_KINDS:
            for _field, container in containers(pod_template(obj)["spec"]):
                for env in container.get("env") or []:
                    if "value" not in env:
                        continue
                    where = f"{name_of(obj)} {container['name']} env {env['name']}"
                    check_text(where, str(env["value"]))
                    if SECRET_NAME.search(env["name"]) and not env["name"].endswith("_FILE"):
                        found.append(f"{where}: a secret given as a literal, not a *_FILE")
                check_text(
                    f"{name_of(obj)} {container['name']} command",
                    shlex.join([*container.get("command", []), *container.get("args", [])]),
                )
    return found


# NetworkPolicies: who may talk to whom, as the API server would decide it


def _peer_allows(peer: dict[str, Any], source: dict[str, Any], namespace: str) -> bool:
    if "ipBlock" in peer:
        return source.get("ip") is not None and _in_cidr(source["ip"], peer["ipBlock"]["cidr"])
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], source.get("namespace_labels", {})):
            return False
    elif source.get("namespace") != namespace:
        return False
    return "podSelector" not in peer or _selects(peer["podSelector"], source.get("labels", {}))


def _in_cidr(ip: str, cidr: str) -> bool:
    import ipaddress

    return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)


def _port_allowed(rule: dict[str, Any], port: int) -> bool:
    ports = rule.get("ports")
    return not ports or any(p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in ports)


def _direction_allows(
    policies: list[dict[str, Any]],
    direction: str,
    subject: dict[str, Any],
    other: dict[str, Any],
    port: int,
) -> bool:
    policy_type = "Ingress" if direction == "ingress" else "Egress"
    peer_field = "from" if direction == "ingress" else "to"
    selecting = [
        p
        for p in policies
        if policy_type in p["spec"].get("policyTypes", ["Ingress"])
        and p["metadata"].get("namespace") == subject.get("namespace")
        and _selects(p["spec"]["podSelector"], subject.get("labels", {}))
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(direction) or []:
            peers = rule.get(peer_field)
            if not _port_allowed(rule, port):
                continue
            if not peers or any(_peer_allows(peer, other, subject["namespace"]) for peer in peers):
                return True
    return False


def connection_allowed(
    policies: list[dict[str, Any]], source: dict[str, Any], target: dict[str, Any], port: int
) -> bool:
    """source and target: {namespace, namespace_labels, labels} for a pod, {ip} for an address.

    A connection needs the source's egress and the target's ingress, each allowed by some
    policy that selects the pod, or no policy selecting it in that direction at all.
    """
    egress_ok = "labels" not in source or _direction_allows(policies, "egress", source, target, port)
    ingress_ok = "labels" not in target or _direction_allows(policies, "ingress", target, source, port)
    return egress_ok and ingress_ok


def pods_of(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every workload's pod as connection_allowed sees it, by app.kubernetes.io/name."""
    namespaces = {
        o["metadata"]["name"]: o["metadata"].get("labels", {}) for o in objects if o["kind"] == "Namespace"
    }
    pods = {}
    for obj in objects:
        if obj["kind"] in WORKLOAD_KINDS:
            labels = pod_template(obj)["metadata"]["labels"]
            namespace = obj["metadata"].get("namespace", "default")
            pods[labels["app.kubernetes.io/name"]] = {
                "namespace": namespace,
                "namespace_labels": {
                    "kubernetes.io/metadata.name": namespace,
                    **namespaces.get(namespace, {}),
                },
                "labels": labels,
            }
    return pods


def container_port(objects: list[dict[str, Any]], app: str) -> int:
    for obj in objects:
        if (
            obj["kind"] in WORKLOAD_KINDS
            and pod_template(obj)["metadata"]["labels"]["app.kubernetes.io/name"] == app
        ):
            port: int = pod_template(obj)["spec"]["containers"][0]["ports"][0]["containerPort"]
            return port
    raise KeyError(app)
