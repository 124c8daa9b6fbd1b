#!/usr/bin/python3
"""Checks deploy/k8s/ offline: the kustomization lists every manifest, each parses with the
fields its kind requires, selectors match their pods, Service ports name container ports,
probes point at ports or programs that exist, workers request one GPU each with requests
and limits, a Spark variant selects arm64 nodes, the disruption budget covers the workers,
and Prometheus scrape annotations name the coordinator's metrics port.
Usage: k8s_test.py SOURCE_DIR"""
import os
import re
import shutil
import subprocess
import sys

import yaml

SRC = sys.argv[1]
K8S = os.path.join(SRC, "deploy/k8s")
errors = []


def fail(where, message):
    errors.append(f"{where}: {message}")


with open(os.path.join(K8S, "kustomization.yaml")) as f:
    kustomization = yaml.safe_load(f)
namespace = kustomization.get("namespace")
listed = kustomization.get("resources", [])
on_disk = sorted(n for n in os.listdir(K8S) if n.endswith((".yaml", ".yml")) and n != "kustomization.yaml")
for name in sorted(set(on_disk) - set(listed)):
    fail(name, "not listed in kustomization.yaml resources")
objects = []
for name in listed:
    path = os.path.join(K8S, name)
    if not os.path.exists(path):
        fail("kustomization.yaml", f"lists {name}, which does not exist")
        continue
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if doc:
                objects.append((name, doc))

by_kind = {}
for name, obj in objects:
    where = f"{name}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    for field in ("apiVersion", "kind", "metadata"):
        if field not in obj:
            fail(where, f"no {field}")
    if not obj.get("metadata", {}).get("name"):
        fail(where, "no metadata.name")
    if obj.get("kind") != "Namespace" and obj["metadata"].get("namespace") not in (None, namespace):
        fail(where, f"namespace {obj['metadata']['namespace']} differs from the kustomization's {namespace}")
    by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = (where, obj)

# Programs the images install (cmake/install.cmake), which commands and probes may run.
with open(os.path.join(SRC, "cmake/install.cmake")) as f:
    install = f.read()
programs = set(re.findall(r"\bspriteforge[\w-]*", install))
images = {"spriteforge:cpu", "spriteforge:cuda", "spriteforge:spark"}  # what deploy/docker/ builds
config_maps = by_kind.get("ConfigMap", {})


def subset(small, big):
    return all(big.get(k) == v for k, v in (small or {}).items())


def check_pod(where, spec, template_labels):
    containers = spec.get("containers", [])
    if not containers:
        fail(where, "no containers")
    ports = {}
    for c in containers:
        cw = f"{where} container {c.get('name')}"
        if c.get("image") not in images:
            fail(cw, f"image {c.get('image')} is none of the images deploy/docker/ builds ({sorted(images)})")
        command = c.get("command", [])
        if command and command[0] not in programs:
            fail(cw, f"runs {command[0]}, which the images do not install")
        for p in c.get("ports", []):
            ports[p.get("name")] = p["containerPort"]
        resources = c.get("resources", {})
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in resources.get(kind, {}):
                    fail(cw, f"no {kind}.{r}")
        for probe in ("readinessProbe", "livenessProbe"):
            p = c.get(probe)
            if not p:
                fail(cw, f"no {probe}")
                continue
            for handler in ("httpGet", "tcpSocket", "grpc"):
                if handler in p:
                    port = p[handler].get("port")
                    if port not in ports and port not in ports.values():
                        fail(cw, f"{probe} {handler} port {port} is not a container port ({sorted(ports)})")
            if "exec" in p and p["exec"]["command"][0] not in programs:
                fail(cw, f"{probe} runs {p['exec']['command'][0]}, which the images do not install")
        for source in c.get("envFrom", []):
            ref = source.get("configMapRef", {}).get("name")
            if ref and ref not in config_maps:
                fail(cw, f"envFrom names ConfigMap {ref}, which is not in the manifests")
        volumes = {v["name"] for v in spec.get("volumes", [])}
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes and m["name"] not in template_labels.get("claims", set()):
                fail(cw, f"mounts volume {m['name']}, which the pod does not define")
    if not spec.get("securityContext", {}).get("runAsNonRoot"):
        fail(where, "pods do not run as non-root")
    return ports, containers


def check_workload(where, obj):
    spec = obj.get("spec", {})
    template = spec.get("template", {})
    labels = template.get("metadata", {}).get("labels", {})
    if not spec.get("selector", {}).get("matchLabels") or not subset(spec["selector"]["matchLabels"], labels):
        fail(where, "selector.matchLabels does not match the pod template's labels")
    claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
    ports, containers = check_pod(where, template.get("spec", {}), {"claims": claims})
    return labels, ports, containers, template


services = by_kind.get("Service", {})
coordinators = by_kind.get("StatefulSet", {})
if "coordinator" not in coordinators:
    fail("manifests", "no coordinator StatefulSet")
for name, (where, sts) in coordinators.items():
    labels, ports, containers, template = check_workload(where, sts)
    if sts["spec"].get("replicas", 1) != 1:
        fail(where, "the coordinator must be a single replica (SQLite has one writer)")
    if not sts["spec"].get("volumeClaimTemplates"):
        fail(where, "no PersistentVolumeClaim for the database")
    args = " ".join(containers[0].get("args", []))
    mounts = [m["mountPath"] for m in containers[0].get("volumeMounts", [])]
    db = re.search(r"--db (\S+)", args)
    if not db or not any(db.group(1).startswith(m + "/") for m in mounts):
        fail(where, "the database (--db) is not on the claimed volume")
    http = re.search(r"--http \S+:(\d+)", args)
    if not http or ports.get("http") != int(http.group(1)):
        fail(where, "the container port named http is not the port --http listens on")
    service_name = sts["spec"].get("serviceName")
    if service_name not in services:
        fail(where, f"serviceName {service_name} is not a Service in the manifests")
    else:
        swhere, svc = services[service_name]
        if not subset(svc["spec"].get("selector"), labels):
            fail(swhere, "selector does not match the coordinator's pods")
        for p in svc["spec"].get("ports", []):
            target = p.get("targetPort", p["port"])
            if p.get("name") not in ports:
                fail(swhere, f"port name {p.get('name')} is not a container port name ({sorted(ports)})")
            if target not in ports and target not in ports.values():
                fail(swhere, f"targetPort {target} is not a container port")
            elif ports.get(target, target) != ports.get(p.get("name")):
                fail(swhere, f"port {p.get('name')} targets {target}, a different container port")
    annotations = template.get("metadata", {}).get("annotations", {})
    if annotations.get("prometheus.io/scrape") != "true" or annotations.get("prometheus.io/path") != "/metrics" \
            or int(annotations.get("prometheus.io/port", 0)) != ports.get("http"):
        fail(where, "pods lack Prometheus scrape annotations for the http port's /metrics")

workers = by_kind.get("Deployment", {})
if not workers:
    fail("manifests", "no worker Deployment")
arches = set()
worker_labels = []
for name, (where, deployment) in workers.items():
    labels, _, containers, template = check_workload(where, deployment)
    worker_labels.append(labels)
    for c in containers:
        for kind in ("requests", "limits"):
            gpus = c.get("resources", {}).get(kind, {}).get("nvidia.com/gpu")
            if str(gpus) != "1":
                fail(where, f"{kind} nvidia.com/gpu is {gpus}, expected 1 (one worker per GPU)")
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        if not mounts.get("/models", {}).get("readOnly"):
            fail(where, "models are not mounted read-only at /models")
    arches.add(template["spec"].get("nodeSelector", {}).get("kubernetes.io/arch"))
if "arm64" not in arches:
    fail("manifests", "no worker variant selects arm64 (DGX Spark) nodes")
for entry in kustomization.get("replicas", []):
    if entry["name"] not in workers and entry["name"] not in coordinators:
        fail("kustomization.yaml", f"replicas names {entry['name']}, which is no workload")
for entry in kustomization.get("images", []):
    if entry["name"] not in images:
        fail("kustomization.yaml", f"images names {entry['name']}, which no manifest uses")

budgets = by_kind.get("PodDisruptionBudget", {})
if not budgets:
    fail("manifests", "no PodDisruptionBudget")
for name, (where, pdb) in budgets.items():
    selector = pdb["spec"].get("selector", {}).get("matchLabels")
    if not any(subset(selector, labels) for labels in worker_labels):
        fail(where, "selects no worker pods")
    if ("minAvailable" in pdb["spec"]) == ("maxUnavailable" in pdb["spec"]):
        fail(where, "needs exactly one of minAvailable and maxUnavailable")

# Where kubectl is at hand, kustomize must build the same objects (offline).
kubectl = shutil.which("kubectl")
if kubectl:
    built = subprocess.run([kubectl, "kustomize", K8S], capture_output=True, text=True)
    if built.returncode != 0:
        fail("kubectl kustomize", built.stderr.strip())
    elif len([d for d in yaml.safe_load_all(built.stdout) if d]) != len(objects):
        fail("kubectl kustomize", "built a different number of objects than the manifests hold")



# Every workload lands on nodes of its image's architecture (a single-arch image elsewhere
# fails with "exec format error").
def arch_constraint(pod_spec):
    if pod_spec.get("nodeSelector", {}).get("kubernetes.io/arch"):
        return True
    terms = pod_spec.get("affinity", {}).get("nodeAffinity", {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", [])
    return bool(terms) and all(any(e.get("key") == "kubernetes.io/arch" and e.get("operator") == "In"
                                   for e in t.get("matchExpressions", [])) for t in terms)


for kind in ("Deployment", "StatefulSet"):
    for name, (where, obj) in by_kind.get(kind, {}).items():
        if not arch_constraint(obj["spec"]["template"]["spec"]):
            fail(where, "does not select nodes by kubernetes.io/arch")
# The StatefulSet's governing Service is headless.
for name, (where, sts) in coordinators.items():
    governing = services.get(sts["spec"].get("serviceName"), (None, {}))[1]
    if governing.get("spec", {}).get("clusterIP") != "None":
        fail(where, f"serviceName {sts['spec'].get('serviceName')} is not a headless Service (clusterIP: None)")

# Workers' probes ask the worker's own health endpoint, on the pod's loopback.
worker_http = config_maps.get("worker-config", (None, {}))[1].get("data", {}).get("SPRITEFORGE_WORKER_HTTP", "")
if not worker_http or ":" in worker_http and not worker_http.startswith("127.0.0.1:"):
    fail("config.yaml", f"SPRITEFORGE_WORKER_HTTP is {worker_http!r}: the probes need the worker's endpoint on loopback")
for name, (where, deployment) in workers.items():
    for c in deployment["spec"]["template"]["spec"]["containers"]:
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if c.get(probe, {}).get("exec", {}).get("command", [""])[0] != "spriteforge-worker-health":
                fail(where, f"{probe} does not ask the worker's health endpoint (spriteforge-worker-health)")

# The Prometheus Operator's objects: the same alerts as compose's Prometheus, a ServiceMonitor
# on the coordinator Service's metrics port.
OPERATOR = os.path.join(K8S, "prometheus-operator")
with open(os.path.join(SRC, "deploy/compose/prometheus/alerts.yml")) as f:
    compose_groups = yaml.safe_load(f)["groups"]
with open(os.path.join(OPERATOR, "prometheusrule.yaml")) as f:
    rule = yaml.safe_load(f)
if rule.get("kind") != "PrometheusRule" or rule.get("spec", {}).get("groups") != compose_groups:
    fail("prometheus-operator/prometheusrule.yaml", "its groups differ from deploy/compose/prometheus/alerts.yml")
with open(os.path.join(OPERATOR, "servicemonitor.yaml")) as f:
    monitor = yaml.safe_load(f)
coordinator_svc = services.get("coordinator", (None, {"metadata": {}, "spec": {}}))[1]
if not subset(monitor["spec"]["selector"]["matchLabels"], coordinator_svc["metadata"].get("labels", {})):
    fail("prometheus-operator/servicemonitor.yaml", "selects no label set of the coordinator Service")
if {e.get("port") for e in monitor["spec"]["endpoints"]} - {p.get("name") for p in coordinator_svc["spec"].get("ports", [])}:
    fail("prometheus-operator/servicemonitor.yaml", "scrapes a port the coordinator Service does not name")


# The TLS overlay, rendered with secrets made by make-secrets.sh: TLS and tokens on the
# coordinator, every path it and the workers name inside a mounted Secret.
def check_tls_overlay(rendered):
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "worker-config")["data"]
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet"):
            continue
        where = f"k8s-tls: {d['kind']}/{d['metadata']['name']}"
        pod = d["spec"]["template"]["spec"]
        secret_volumes = {v["name"]: v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
        for name in secret_volumes.values():
            if name not in secrets:
                fail(where, f"mounts Secret {name}, which the overlay does not make")
        container = pod["containers"][0]
        mounted = [m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in secret_volumes]
        if d["kind"] == "StatefulSet":
            args = container.get("args", [])
            for flag in ("--listen", "--worker-listen", "--tls-cert", "--tls-key", "--tls-client-ca",
                         "--worker-cert-match", "--auth"):
                if flag not in args:
                    fail(where, f"the coordinator runs without {flag}")
            if "--insecure-listen" in args:
                fail(where, "the coordinator still serves plaintext")
            files = [a for a in args if a.startswith("/run/secrets/")]
        else:
            files = [v for k, v in config.items() if k.startswith(("SPRITEFORGE_TLS_", "SPRITEFORGE_TOKEN_FILE"))]
            if not config.get("SPRITEFORGE_COORDINATOR_HTTP", "").startswith("https://"):
                fail(where, "the worker's health check asks the coordinator over plain HTTP")
        for path in files:
            if not any(path.startswith(m + "/") for m in mounted):
                fail(where, f"{path} is in no mounted Secret")


TLS = os.path.join(SRC, "deploy/k8s-tls")
if kubectl:
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(K8S, os.path.join(tmp, "k8s"))
        shutil.copytree(TLS, os.path.join(tmp, "k8s-tls"), ignore=shutil.ignore_patterns("secrets"))
        subprocess.run(["bash", os.path.join(SRC, "deploy/compose/make-secrets.sh"), "coordinator.spriteforge.svc"],
                       check=True, capture_output=True, env=dict(os.environ, SECRETS_DIR=os.path.join(tmp, "k8s-tls/secrets")))
        for overlay in ("k8s-tls", "k8s/prometheus-operator"):
            built = subprocess.run([kubectl, "kustomize", os.path.join(tmp, overlay)], capture_output=True, text=True)
            if built.returncode != 0:
                fail(f"kubectl kustomize deploy/{overlay}", built.stderr.strip())
            elif overlay == "k8s-tls":
                check_tls_overlay(built.stdout)

for e in errors:
    print("k8s:", e)
print(f"k8s: {len(objects)} objects in {len(listed)} manifests checked"
      f"{', kustomize build too' if kubectl else ''}, {len(errors)} problems")
sys.exit(1 if errors else 0)
