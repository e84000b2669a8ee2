"""The Kubernetes manifests of ``deploy/kubernetes/``, checked without a cluster:

* every manifest validates against the API schemas of Kubernetes 1.30, strictly (unknown
  fields refused), with PyPI's ``kubernetes-validate``;
* the manifests agree with each other and with wasp's flags (ports, probe paths, the
  secret's mount, the Service's name, the grace period against ``--drain-timeout``);
* the node's container runs as its pod would: ``wasp node`` with exactly the container's
  command and args, as its user, without capabilities, on a read-only root, with its
  volumes mounted where the manifest says, and alone in its network namespace with a
  pod IP. There its probes answer on the pod IP, the client Job's ``wasp map`` (again
  exactly its args, with its Secret and ConfigMap volumes, the Service's name resolving to
  the pod, its module pulled from a registry by the reference the ConfigMap holds) gets its
  results, and SIGTERM to the node, PID 1 of its PID namespace as in a
  container, turns ``/readyz`` to 503 while a running job finishes, then the node exits
  within ``terminationGracePeriodSeconds``.

The pods are made with ``unshare`` (network, mount and PID namespaces, as root) and
``setpriv``; their ``/var`` and ``/etc`` are a tmpfs and an overlay, so nothing is left on
the host. Without root, those tools or ``kubernetes-validate``, the tests skip, except under
``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import math
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest
from conftest import (
    GUESTS,
    SECRET,
    TIMEOUT,
    WASP,
    _built,
    _read_line,
    sum_primes_reference,
    unavailable,
    under_ci,
)

try:
    import yaml
except ImportError:
    if under_ci():
        raise
    pytest.skip(
        "PyYAML is missing: pip install -r python/requirements-dev.txt", allow_module_level=True
    )

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
MANIFESTS = [
    "secret.yaml",
    "node-service.yaml",
    "node-statefulset.yaml",
    "node-pdb.yaml",
    "client-job.yaml",
]
KUBERNETES_VERSION = "1.30.0"
#: The address the node's pod gets, on the loopback interface of its network namespace.
POD_IP = "10.244.0.10"
#: What the ConfigMap wasp-job holds for the client Job: sum_primes over a few bounds.
BOUNDS = [100, 1000, 10000, 100000]
#: The monitor's bearer token, as ``wasp secret new > metrics.token`` makes one.
METRICS_TOKEN = "b9" * 32
#: The namespace the pods run in here: not ``default``, so that a name hard-coded to it
#: would show.
NAMESPACE = "batch"


def _load(name: str) -> list[dict]:
    with open(DEPLOY / name) as file:
        return [document for document in yaml.safe_load_all(file) if document]


def _one(name: str, kind: str) -> dict:
    [resource] = [r for r in _load(name) if r["kind"] == kind]
    return resource


def _container(workload: dict) -> dict:
    [container] = workload["spec"]["template"]["spec"]["containers"]
    return container


def _flags(arguments: list[str]) -> dict[str, Optional[str]]:
    """``--flag value`` pairs (a flag followed by another flag, or by nothing, is a switch)."""
    flags: dict[str, Optional[str]] = {}
    for i, word in enumerate(arguments):
        if word.startswith("--"):
            following = arguments[i + 1] if i + 1 < len(arguments) else None
            is_value = following is not None and not following.startswith("--")
            flags[word] = following if is_value else None
    return flags


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    assert match, f"a duration wasp reads: {duration!r}"
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[match.group(2)]


def _named_port(container: dict, name: str) -> dict:
    [port] = [p for p in container["ports"] if p["name"] == name]
    return port


def _mount_of(container: dict, pod: dict, path: str) -> tuple[dict, dict]:
    """The volume mount (and its volume) that holds ``path``."""
    mounts = [
        m
        for m in container["volumeMounts"]
        if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")
    ]
    assert mounts, f"{path} lies on a volume"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    return mount, volume


def _secrets() -> dict[str, dict[str, bytes]]:
    """The Secrets as secret.yaml's comment makes them from a real key and a real token
    (``kubectl create secret generic ... --from-file``): its keys, the tests' values."""
    values = {"wasp-cluster": SECRET, "wasp-metrics-token": METRICS_TOKEN}
    return {
        secret["metadata"]["name"]: {
            key: (values[secret["metadata"]["name"]] + "\n").encode()
            for key in secret["stringData"]
        }
        for secret in _load("secret.yaml")
    }


def _secret(name: str) -> dict:
    [secret] = [s for s in _load("secret.yaml") if s["metadata"]["name"] == name]
    return secret


def _init(workload: dict, name: str) -> dict:
    [init] = [
        c for c in workload["spec"]["template"]["spec"]["initContainers"] if c["name"] == name
    ]
    return init


def _env_source(container: dict, name: str) -> dict:
    [variable] = [v for v in container["env"] if v["name"] == name]
    return variable["valueFrom"]


# -- The manifests on paper ------------------------------------------------------------------


def test_every_manifest_validates_against_the_kubernetes_schemas():
    try:
        import kubernetes_validate
    except ImportError:
        unavailable("kubernetes-validate is missing: pip install -r python/requirements-dev.txt")
    found = sorted(path.name for path in DEPLOY.glob("*.yaml"))
    assert found == sorted(MANIFESTS), "every manifest is checked here"
    for name in MANIFESTS:
        resources = _load(name)
        assert resources, f"{name} holds a resource"
        for resource in resources:
            try:
                kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path)
                pytest.fail(f"{name}: {resource['kind']}: {path}: {error.message}")
    # The validator refuses what it should: an unknown field, strictly.
    broken = _one("node-statefulset.yaml", "StatefulSet")
    _container(broken)["readinesProbe"] = {"httpGet": {"path": "/readyz", "port": "metrics"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def _private_secret(workload: dict, container: dict, secret_file: str) -> None:
    """The secret file a container reads is the init container's private copy of the
    Secret wasp-cluster's key: on an in-memory volume, mounted read-only; the Secret itself
    is mounted in the init container only."""
    pod = workload["spec"]["template"]["spec"]
    secret = _secret("wasp-cluster")
    init = _init(workload, "secret")
    assert init["command"] == ["/wasp", "secret", "copy"]
    source, copy = init["args"]
    assert copy == secret_file
    mount, volume = _mount_of(init, pod, source)
    assert mount.get("readOnly") is True
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert volume["secret"]["defaultMode"] == 0o400
    assert os.path.relpath(source, mount["mountPath"]) in secret["stringData"]
    mount, volume = _mount_of(container, pod, secret_file)
    assert mount.get("readOnly") is True and volume["emptyDir"]["medium"] == "Memory"
    assert _mount_of(init, pod, copy)[1] is volume
    assert not any(m["name"] == "cluster-secret" for m in container["volumeMounts"])
    assert init["securityContext"] == container["securityContext"], "as hardened"


def test_the_manifests_agree_with_each_other_and_with_the_flags():
    service = _one("node-service.yaml", "Service")
    statefulset = _one("node-statefulset.yaml", "StatefulSet")
    job = _one("client-job.yaml", "Job")
    pod = statefulset["spec"]["template"]["spec"]
    node = _container(statefulset)
    assert node["command"][1:2] == ["node"]
    flags = _flags(node["command"][2:] + node["args"])

    # The Service: headless, in front of the StatefulSet's pods, ready ones only.
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is False
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"] == "wasp-node"
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert statefulset["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"

    # Ports: --listen (UDP) and --metrics (TCP), in the container and in the Service.
    quic = _named_port(node, "quic")
    metrics = _named_port(node, "metrics")
    assert (quic["containerPort"], quic["protocol"]) == (_port(flags["--listen"]), "UDP")
    assert (metrics["containerPort"], metrics.get("protocol", "TCP")) == (
        _port(flags["--metrics"]),
        "TCP",
    )
    assert flags["--listen"].startswith("0.0.0.0:"), "QUIC on the pod's IP"
    assert flags["--metrics"].startswith("0.0.0.0:"), "the kubelet probes the pod's IP"
    assert "--metrics-public" in flags, "a monitor off loopback needs --metrics-public"
    for port in service["spec"]["ports"]:
        target = _named_port(node, port["targetPort"])
        assert (port["port"], port["protocol"]) == (
            target["containerPort"],
            target.get("protocol", "TCP"),
        )

    # The probes: wasp's paths, on the monitor's port, without a token (httpGet sends none).
    assert node["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert node["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}

    # Probes that a busy node answers in time: 5 s each, three misses before anything.
    for probe in ("readinessProbe", "livenessProbe"):
        assert node[probe]["timeoutSeconds"] >= 5, probe
        assert node[probe]["failureThreshold"] >= 3, probe

    # The secret: the init container's private copy of the Secret's key.
    _private_secret(statefulset, node, flags["--secret-file"])

    # The monitor's token: a Secret of its own, not derived from the cluster secret.
    mount, volume = _mount_of(node, pod, flags["--metrics-token-file"])
    token = _secret("wasp-metrics-token")
    assert volume["secret"]["secretName"] == token["metadata"]["name"]
    assert os.path.relpath(flags["--metrics-token-file"], mount["mountPath"]) in token["stringData"]

    # Voluntary evictions one pod at a time, and pods spread over the machines.
    budget = _one("node-pdb.yaml", "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    [spread] = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname" and spread["maxSkew"] == 1
    assert spread["labelSelector"]["matchLabels"].items() <= labels.items()

    # State on the writable volume (the root filesystem is read-only).
    for flag in ("--identity-dir", "--cache-dir"):
        _, volume = _mount_of(node, pod, flags[flag])
        assert "emptyDir" in volume
    context = node["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["runAsNonRoot"] is True and context["runAsUser"] != 0
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert context["seccompProfile"]["type"] == "RuntimeDefault"

    # Draining: the kubelet waits longer than running jobs may take.
    drain = _seconds(flags["--drain-timeout"])
    assert pod["terminationGracePeriodSeconds"] >= drain + 10

    # Sized by its resources, through the Downward API: a worker per CPU requested, and the
    # memory limit as the node's budget; the CPU limit leaves room for the node's own
    # threads (its monitor answers the probes).
    resources = node["resources"]
    assert flags["--workers"] == "$(WORKERS)"
    assert _env_source(node, "WORKERS")["resourceFieldRef"] == {
        "resource": "requests.cpu",
        "divisor": "1",
    }
    assert flags["--memory-limit"] == "$(MEMORY_LIMIT)"
    assert _env_source(node, "MEMORY_LIMIT")["resourceFieldRef"] == {"resource": "limits.memory"}
    assert resources["requests"]["memory"] == resources["limits"]["memory"]
    requested, limit = (_quantity(resources[kind]["cpu"]) for kind in ("requests", "limits"))
    assert limit >= requested + 0.5, "half a CPU above the workers"

    # The client Job: the Service's name and QUIC port, the same secret, its own inputs.
    job_pod = job["spec"]["template"]["spec"]
    client = _container(job)
    assert client["command"][1:2] == ["map"]
    assert job_pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 1
    client_flags = _flags(client["command"][2:] + client["args"])
    # The Service's name in the Job's own namespace, from the Downward API: no namespace
    # written in.
    assert "namespace" not in service["metadata"] and "namespace" not in job["metadata"]
    assert client_flags["--peer"] == (
        f"{service['metadata']['name']}.$(NAMESPACE).svc.cluster.local:{quic['containerPort']}"
    )
    assert _env_source(client, "NAMESPACE") == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert client_flags["--workers"] == "0"
    _private_secret(job, client, client_flags["--secret-file"])
    _, volume = _mount_of(client, job_pod, client_flags["--input"])
    assert volume["configMap"]["name"] == "wasp-job"
    # The module: a registry reference from the ConfigMap (no module fits in one).
    assert client["args"][-2:] == ["$(MODULE)", "$(FUNCTION)"]
    for variable in client["env"]:
        if "configMapKeyRef" in variable.get("valueFrom", {}):
            assert variable["valueFrom"]["configMapKeyRef"]["name"] == "wasp-job"


def test_the_placeholder_secrets_are_refused(tmp_path, secret_file):
    """Applied as it is, secret.yaml gives no usable secret and no usable token: the nodes
    stop at start."""
    placeholder = tmp_path / "placeholder.key"
    placeholder.write_text(_secret("wasp-cluster")["stringData"]["cluster.key"])
    placeholder.chmod(0o600)
    refused = subprocess.run(
        [str(_built(WASP)), "secret", "token", "--secret-file", str(placeholder)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert refused.returncode != 0 and "too short" in refused.stderr, refused.stderr
    token = tmp_path / "token"
    token.write_text(_secret("wasp-metrics-token")["stringData"]["token"])
    node = [str(_built(WASP)), "node", "--listen", "127.0.0.1:0", "--secret-file"]
    monitor = ["--metrics", "127.0.0.1:0", "--metrics-public", "--metrics-token-file"]
    refused = subprocess.run(
        [*node, str(secret_file), *monitor, str(token)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert refused.returncode != 0 and "16" in refused.stderr, refused.stderr


# -- The manifests run: pods made of namespaces ----------------------------------------------


def _pod_command(
    pod: dict,
    container: dict,
    objects: dict[str, dict[str, bytes]],
    staging: Path,
    hosts: dict[str, str],
    own_network: bool,
    namespace: str = "default",
) -> tuple[list[str], dict[str, str]]:
    """The command (after ``unshare``) and environment that run ``container`` as the kubelet
    would, after its pod's init containers: each its command and args as they are
    (``/wasp`` being the binary built here), its env (the Downward API's fields and
    resources included, the pod being in ``namespace``), its volumes (from ``objects``: the
    Secrets' and ConfigMaps' data by name) mounted where it says with the modes the
    kubelet gives them, its user, no capabilities, a read-only root. Volumes only the init
    containers mount are gone when the container starts."""
    fs_group = pod["securityContext"]["fsGroup"]
    lines = ["set -eu"]
    if own_network:
        lines += ["ip link set lo up", f"ip addr add {POD_IP}/32 dev lo"]
    # A /var of its own, and an /etc over the host's: the mounts below leave no trace.
    lines += [
        "mount -t tmpfs -o mode=0755 tmpfs /var",
        "mkdir -p /var/.etc/upper /var/.etc/work",
        "mount -t overlay overlay"
        " -o lowerdir=/etc,upperdir=/var/.etc/upper,workdir=/var/.etc/work /etc",
    ]
    for name, address in hosts.items():
        lines.append(f"echo {shlex.quote(f'{address} {name}')} >> /etc/hosts")
    inits = pod.get("initContainers", [])
    mounted: dict[str, dict] = {}
    for each in [*inits, container]:
        for mount in each["volumeMounts"]:
            if mount["mountPath"] not in mounted:
                mounted[mount["mountPath"]] = mount
                lines += _mount_volume(pod, mount, objects, staging, fs_group)
    for init in inits:
        env = _environment(init, objects, namespace)
        assignments = [f"{name}={value}" for name, value in env.items()]
        lines.append(shlex.join(["env", "-i", *assignments, *_as_user(pod, init, env)]))
    kept = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    for path in mounted:
        if path not in kept:
            lines.append(f"umount {shlex.quote(path)}")
        elif kept[path].get("readOnly"):
            lines.append(f"mount -o remount,ro,bind {shlex.quote(path)}")
    security = {**pod.get("securityContext", {}), **container["securityContext"]}
    if security.get("readOnlyRootFilesystem"):
        lines += [
            "mount -o remount,ro,bind /",
            "mount -o remount,ro,bind /etc",
            "mount -o remount,ro,bind /var",
        ]
    env = _environment(container, objects, namespace)
    lines.append("exec " + shlex.join(_as_user(pod, container, env)))
    # PID namespace: the container's first process (here wasp, after `exec`) is its PID 1.
    unshare = ["unshare", "--mount", "--pid", "--mount-proc", "--fork", "--kill-child"]
    if own_network:
        unshare.insert(1, "--net")
    return [*unshare, "sh", "-c", "\n".join(lines)], env


def _mount_volume(
    pod: dict, mount: dict, objects: dict[str, dict[str, bytes]], staging: Path, fs_group: int
) -> list[str]:
    """Mounts ``mount``'s volume as the kubelet does."""
    path = mount["mountPath"]
    assert path.startswith(("/var/", "/etc/")), f"{path}: a place this test can mount"
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    target = shlex.quote(path)
    if "emptyDir" in volume:
        # 0777, and the fsGroup's with its set-group-ID bit (in memory or not: a tmpfs).
        return [f"mkdir -p {target}", f"mount -t tmpfs -o mode=2777,gid={fs_group} tmpfs {target}"]
    source = volume.get("secret") or volume["configMap"]
    default_mode = source.get("defaultMode", 0o644)
    # With an fsGroup, the kubelet gives the files to that group and adds its read bit.
    mode = default_mode | 0o440
    lines = [f"mkdir -p {target}", f"mount -t tmpfs -o mode=2755,gid={fs_group} tmpfs {target}"]
    directory = staging / mount["name"]
    directory.mkdir(parents=True)
    data = objects[source.get("secretName") or source["name"]]
    for item in source.get("items") or [{"key": key, "path": key} for key in data]:
        (directory / item["key"]).write_bytes(data[item["key"]])
        file = shlex.quote(f"{path}/{item['path']}")
        lines += [
            f"cp {shlex.quote(str(directory / item['key']))} {file}",
            f"chown 0:{fs_group} {file}",
            f"chmod {mode:o} {file}",
        ]
    # Secret and ConfigMap volumes are read-only whatever the mount says.
    return [*lines, f"mount -o remount,ro,bind {target}"]


def _quantity(text: str) -> float:
    """A Kubernetes quantity (``2``, ``2500m``, ``3Gi``) as a number."""
    suffixes = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for suffix, factor in suffixes.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def _environment(
    container: dict, objects: dict[str, dict[str, bytes]], namespace: str
) -> dict[str, str]:
    """The container's environment as the kubelet makes it, the Downward API included."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/"}
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
            continue
        source = variable["valueFrom"]
        if "configMapKeyRef" in source:
            reference = source["configMapKeyRef"]
            env[variable["name"]] = objects[reference["name"]][reference["key"]].decode()
        elif "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.namespace"
            env[variable["name"]] = namespace
        else:
            reference = source["resourceFieldRef"]
            kind, resource = reference["resource"].split(".")
            quantity = _quantity(container["resources"][kind][resource])
            divisor = _quantity(reference.get("divisor", "1"))
            env[variable["name"]] = str(math.ceil(quantity / divisor))
    return env


def _as_user(pod: dict, container: dict, env: dict[str, str]) -> list[str]:
    """The container's command, its ``$(VAR)`` expanded as the kubelet does, run as its
    user, without capabilities."""
    security = {**pod.get("securityContext", {}), **container["securityContext"]}
    arguments = [
        re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), word)
        for word in container["command"][1:] + container["args"]
    ]
    assert container["command"][0] == "/wasp", "the image's binary"
    setpriv = [
        "setpriv",
        f"--reuid={security['runAsUser']}",
        f"--regid={security.get('runAsGroup', security['runAsUser'])}",
        f"--groups={pod['securityContext']['fsGroup']}",
    ]
    if security.get("allowPrivilegeEscalation") is False:
        setpriv.append("--no-new-privs")
    if security.get("capabilities", {}).get("drop") == ["ALL"]:
        setpriv += ["--bounding-set=-all", "--inh-caps=-all"]
    return [*setpriv, "--", str(_built(WASP)), *arguments]


def _tools() -> None:
    if os.geteuid() != 0:
        unavailable("the pods are made with namespaces and mounts: root is needed")
    for tool in ("unshare", "nsenter", "setpriv", "ip", "mount"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is missing (Debian's util-linux, mount, iproute2)")


#: Runs in the pod's network namespace: HTTP requests, as JSON lines on stdin; the answers
#: as JSON lines on stdout. No proxy: the environment's is not the pod's.
PROBER = r"""
import json, sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
for line in sys.stdin:
    ask = json.loads(line)
    request = urllib.request.Request(ask["url"], headers=ask["headers"])
    try:
        with opener.open(request, timeout=5) as response:
            answer = {"status": response.status, "body": response.read().decode()}
    except urllib.error.HTTPError as error:
        answer = {"status": error.code, "body": error.read().decode()}
    except OSError as error:
        answer = {"status": None, "body": str(error)}
    print(json.dumps(answer), flush=True)
"""


class Prober:
    """An HTTP client in a network namespace, as the kubelet probing a pod's IP."""

    def __init__(self, pid: int):
        self.process = subprocess.Popen(
            ["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-u", "-c", PROBER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.answers: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: [self.answers.put(line) for line in self.process.stdout],
            daemon=True,
        ).start()

    def get(self, url: str, token: Optional[str] = None) -> tuple[Optional[int], str]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.process.stdin.write(json.dumps({"url": url, "headers": headers}) + "\n")
        self.process.stdin.flush()
        try:
            answer = json.loads(self.answers.get(timeout=15))
        except queue.Empty:
            pytest.fail(f"no answer to GET {url} within 15 s")
        return answer["status"], answer["body"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(TIMEOUT)


class NodePod:
    """The StatefulSet's container, running: ``wasp node`` in a pod of its own."""

    def __init__(self, directory: Path):
        self.statefulset = _one("node-statefulset.yaml", "StatefulSet")
        self.pod = self.statefulset["spec"]["template"]["spec"]
        self.container = _container(self.statefulset)
        self.flags = _flags(self.container["command"][2:] + self.container["args"])
        self.secret_file = directory / "cluster.key"
        self.secret_file.write_text(SECRET + "\n")
        self.secret_file.chmod(0o600)
        command, env = _pod_command(
            self.pod,
            self.container,
            _secrets(),
            directory / "volumes",
            hosts={},
            own_network=True,
            namespace=NAMESPACE,
        )
        self.env = env
        self.log = directory / "node.log"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env
            )
        self.prober: Optional[Prober] = None
        try:
            line = _read_line(self.process, TIMEOUT)
            if "listening on" not in line:
                pytest.fail(f"wasp node printed {line!r}; its log:\n{self.log.read_text()}")
            assert line.split()[-1] == self.flags["--listen"]
            # unshare -> (fork) sh -> (exec) setpriv -> (exec) wasp: unshare's one child.
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            [self.pid] = [int(pid) for pid in children.read_text().split()]
            self.prober = Prober(self.pid)
            # The monitor's token is the Secret wasp-metrics-token's.
            self.token = METRICS_TOKEN
            self.derived_token = subprocess.run(
                [str(_built(WASP)), "secret", "token", "--secret-file", str(self.secret_file)],
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=True,
            ).stdout.strip()
        except BaseException:
            self.kill()
            raise

    def url(self, path: str) -> str:
        return f"http://{POD_IP}:{_port(self.flags['--metrics'])}{path}"

    def get(self, path: str, token: Optional[str] = None) -> tuple[Optional[int], str]:
        return self.prober.get(self.url(path), token)

    def status(self) -> dict[str, Any]:
        code, body = self.get("/api/v1/status", self.token)
        assert code == 200, body
        return json.loads(body)

    def in_network(self, *command: str, **popen: Any) -> subprocess.Popen:
        return subprocess.Popen(["nsenter", f"--net=/proc/{self.pid}/ns/net", *command], **popen)

    def kill(self) -> None:
        if self.prober is not None:
            self.prober.close()
        if self.process.poll() is None:
            self.process.kill()  # --kill-child: the node goes with it
        self.process.wait(TIMEOUT)


@pytest.fixture(scope="module")
def node_pod(tmp_path_factory: pytest.TempPathFactory):
    _tools()
    pod = NodePod(tmp_path_factory.mktemp("node-pod"))
    yield pod
    pod.kill()


def test_the_node_pod_runs_confined_and_answers_its_probes(node_pod):
    status = Path(f"/proc/{node_pod.pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines())
    assert fields["Name"].strip() == "wasp"
    user = node_pod.container["securityContext"]["runAsUser"]
    assert fields["Uid"].split() == [str(user)] * 4
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["NSpid"].split()[-1] == "1", "wasp is its container's PID 1"

    for probe in ("readinessProbe", "livenessProbe"):
        path = node_pod.container[probe]["httpGet"]["path"]
        code, body = node_pod.get(path)
        assert code == 200, f"{probe} {path}: {code} {body}"
    # --metrics-public: the rest needs the token of its own Secret; the one derived from
    # the cluster secret is not it (so each can be revoked alone).
    assert node_pod.get("/metrics")[0] == 401
    assert node_pod.get("/metrics", node_pod.derived_token)[0] == 401
    code, body = node_pod.get("/metrics", node_pod.token)
    assert code == 200 and "wasp_draining 0" in body
    state = node_pod.status()
    assert state["role"] == "node" and state["ready"] is True
    # Its size from the pod's resources: a worker per CPU requested, the memory limit as
    # its budget, within which it fitted its maxima.
    resources = node_pod.container["resources"]
    workers = int(_quantity(resources["requests"]["cpu"]))
    assert state["workers"]["total"] == workers
    log = node_pod.log.read_text()
    limit = int(_quantity(resources["limits"]["memory"]))
    maxima = next(line for line in log.splitlines() if "node maxima" in line)
    assert f"memory_limit={limit}" in maxima, maxima
    needed = int(re.search(r"needed=(\d+)", maxima).group(1))
    assert needed <= limit, maxima
    # The secret it read was its own, mode 0400: nothing to warn about.
    assert "other users" not in log, log


@pytest.fixture
def registry_in_pod(node_pod, tmp_path):
    """A registry (``scripts/registry.sh``) in the node pod's network namespace: its
    address, on that namespace's loopback."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "registry.sh"
    state = tmp_path / "registry"
    start = node_pod.in_network(str(script), "start", str(state), stdout=subprocess.PIPE, text=True)
    address, _ = start.communicate(timeout=600)
    if start.returncode != 0:
        unavailable("scripts/registry.sh could not start a registry")
    yield address.strip().splitlines()[-1]
    subprocess.run([str(script), "stop", str(state)], timeout=TIMEOUT, check=False)


def test_the_client_job_runs_its_batch_on_the_node_behind_the_service_name(
    node_pod, tmp_path, sum_primes_path, registry_in_pod
):
    job = _one("client-job.yaml", "Job")
    pod = job["spec"]["template"]["spec"]
    container = _container(job)
    peer = _flags(container["args"])["--peer"].replace("$(NAMESPACE)", NAMESPACE)
    # The module in a registry the pod reaches (on its network namespace's loopback), as
    # the Job's comment puts it there; the ConfigMap as the comment makes it.
    reference = f"oci://{registry_in_pod}/jobs/sum-primes:1"
    pushed = node_pod.in_network(
        str(_built(WASP)),
        "push",
        str(sum_primes_path),
        reference,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, pushing = pushed.communicate(timeout=TIMEOUT)
    assert pushed.returncode == 0, pushing
    configmap = {
        "module": reference.encode(),
        "function": b"sum_primes",
        "input.jsonl": "".join(f"[{n}]\n" for n in BOUNDS).encode(),
    }
    command, env = _pod_command(
        pod,
        container,
        {**_secrets(), "wasp-job": configmap},
        tmp_path / "volumes",
        # The cluster's DNS: the headless Service's name, resolving to the ready pod.
        hosts={peer.rsplit(":", 1)[0]: POD_IP},
        own_network=False,
        namespace=NAMESPACE,
    )
    run = node_pod.in_network(
        *command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        stdout, stderr = run.communicate(timeout=TIMEOUT)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(TIMEOUT)
    assert run.returncode == 0, f"wasp map failed:\n{stderr}"
    assert [int(line) for line in stdout.split()] == [sum_primes_reference(n) for n in BOUNDS]
    assert f"{POD_IP}:7878" in stderr, f"--stats names the node found by name:\n{stderr}"
    assert node_pod.status()["jobs"]["finished"] >= len(BOUNDS)


def test_sigterm_drains_the_node_within_its_grace_period(node_pod, testjobs):
    grace = node_pod.pod["terminationGracePeriodSeconds"]
    testjobs_path = _built(GUESTS / "wasp_testjobs.wasm")
    # A job of 4 s running on the node when the kubelet sends SIGTERM.
    client = node_pod.in_network(
        str(_built(WASP)),
        "run",
        str(testjobs_path),
        "busy_ms",
        "4000",
        "--workers",
        "0",
        "--peer",
        f"{POD_IP}:{_port(node_pod.flags['--listen'])}",
        "--secret-file",
        str(node_pod.secret_file),
        "--no-cache",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while node_pod.status()["workers"]["busy"] == 0:
            assert client.poll() is None, f"the client ended early: {client.communicate()}"
            assert time.monotonic() < deadline, "the job started on the node"
            time.sleep(0.1)

        sent = time.monotonic()
        os.kill(node_pod.pid, signal.SIGTERM)
        readiness = node_pod.container["readinessProbe"]["httpGet"]["path"]
        liveness = node_pod.container["livenessProbe"]["httpGet"]["path"]
        while (code := node_pod.get(readiness)[0]) == 200:
            assert time.monotonic() < sent + 3, "/readyz turned 503 within 3 s of SIGTERM"
            time.sleep(0.05)
        assert code == 503
        assert node_pod.get(liveness)[0] == 200, "a draining node is alive"
        state = node_pod.status()
        assert state["ready"] is False and state["node"]["draining"] is True
        assert state["workers"]["busy"] == 1, "the running job goes on"

        try:
            returncode = node_pod.process.wait(grace - (time.monotonic() - sent))
        except subprocess.TimeoutExpired:
            pytest.fail(f"the node outlived terminationGracePeriodSeconds ({grace} s)")
        assert returncode == 0, node_pod.log.read_text()
        stdout, stderr = client.communicate(timeout=TIMEOUT)
        assert client.returncode == 0 and stdout.strip() == "4000", stderr
        assert "draining" in node_pod.log.read_text().lower()
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(TIMEOUT)
