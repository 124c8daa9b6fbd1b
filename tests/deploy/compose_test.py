#!/usr/bin/python3
"""Checks deploy/compose/ offline: the compose file parses and every file it mounts or builds
from exists; promtool accepts the Prometheus config and alert rules and the rules' unit
tests pass; Grafana's provisioning points at the compose Prometheus and the dashboard; and
every metric the dashboard and the alerts name is one a real coordinator exports, read from
the /metrics of a coordinator started here.
Usage: compose_test.py SOURCE_DIR COORDINATOR_BINARY"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

SRC, COORDINATOR = sys.argv[1], sys.argv[2]
COMPOSE_DIR = os.path.join(SRC, "deploy/compose")
errors = []

# ------------------------------------------------------------------ compose file
with open(os.path.join(COMPOSE_DIR, "compose.yaml")) as f:
    compose = yaml.safe_load(f)
services = compose.get("services", {})
for name in ("coordinator", "worker", "worker-gpu", "prometheus", "grafana"):
    if name not in services:
        errors.append(f"compose: no '{name}' service")


def default_of(text):
    """${VAR:-default} -> default (what compose uses when VAR is unset)."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", text)


def mounts(service):
    for v in service.get("volumes", []):
        parts = default_of(v).split(":")
        yield parts[0], parts[1], parts[2:] if len(parts) > 2 else []


declared_volumes = set((compose.get("volumes") or {}).keys())
for name, service in services.items():
    build = service.get("build")
    if build:
        context = os.path.normpath(os.path.join(COMPOSE_DIR, build["context"]))
        dockerfile = default_of(build.get("dockerfile", "Dockerfile"))
        if not os.path.isfile(os.path.join(context, dockerfile)):
            errors.append(f"compose: {name}: build file {dockerfile} not in {context}")
    for source, target, options in mounts(service):
        if source.startswith("/"):
            # A host folder the operator names (weights): must be read-only at /models.
            if target != "/models" or "ro" not in options:
                errors.append(f"compose: {name}: {source} should be mounted read-only at /models")
        elif source.startswith("."):
            if not os.path.exists(os.path.join(COMPOSE_DIR, source)):
                errors.append(f"compose: {name}: mounts {source}, which does not exist")
        elif source not in declared_volumes:
            errors.append(f"compose: {name}: volume '{source}' is not declared under volumes:")
    for dep in service.get("depends_on", []):
        if dep not in services:
            errors.append(f"compose: {name}: depends on unknown service '{dep}'")

coordinator = services.get("coordinator", {})
command = coordinator.get("command", [])
db = command[command.index("--db") + 1] if "--db" in command else ""
data_mounts = {t: s for s, t, _ in mounts(coordinator)}
if not any(db.startswith(t + "/") and s in declared_volumes for t, s in data_mounts.items()):
    errors.append(f"compose: the coordinator's database ({db or 'no --db'}) is not on a named volume")
http_port = command[command.index("--http") + 1].rsplit(":", 1)[1] if "--http" in command else None
gpu = services.get("worker-gpu", {})
if "gpu" not in gpu.get("profiles", []) or gpu.get("runtime") != "nvidia":
    errors.append("compose: worker-gpu should be in the 'gpu' profile with the nvidia runtime")
if services.get("worker", {}).get("profiles"):
    errors.append("compose: the CPU worker should run by default (no profile)")

# ------------------------------------------------------------------ Prometheus
prometheus_yml = os.path.join(COMPOSE_DIR, "prometheus/prometheus.yml")
for args in (["check", "config", prometheus_yml], ["check", "rules", os.path.join(COMPOSE_DIR, "prometheus/alerts.yml")],
             ["test", "rules", os.path.join(COMPOSE_DIR, "prometheus/alerts_test.yml")]):
    run = subprocess.run(["promtool"] + args, capture_output=True, text=True)
    if run.returncode != 0:
        errors.append(f"promtool {' '.join(args[:2])}: {(run.stdout + run.stderr).strip()}")
with open(prometheus_yml) as f:
    scrape = yaml.safe_load(f)["scrape_configs"]
targets = [t for job in scrape for sc in job.get("static_configs", []) for t in sc["targets"]]
if f"coordinator:{http_port}" not in targets:
    errors.append(f"prometheus: scrapes {targets}, not the coordinator's HTTP port coordinator:{http_port}")
prometheus_mounts = {t: s for s, t, _ in mounts(services.get("prometheus", {}))}
if prometheus_mounts.get("/etc/prometheus/alerts.yml") != "./prometheus/alerts.yml":
    errors.append("compose: prometheus does not mount the alert rules beside its config")

# ------------------------------------------------------------------ Grafana
grafana_mounts = {t: s for s, t, _ in mounts(services.get("grafana", {}))}
with open(os.path.join(COMPOSE_DIR, "grafana/provisioning/datasources/prometheus.yml")) as f:
    datasource = yaml.safe_load(f)["datasources"][0]
prometheus_port = services.get("prometheus", {}).get("ports", ["?:?"])[0].split(":")[-1]
if datasource["url"] != f"http://prometheus:{prometheus_port}":
    errors.append(f"grafana: datasource url {datasource['url']} is not the compose Prometheus")
with open(os.path.join(COMPOSE_DIR, "grafana/provisioning/dashboards/spriteforge.yml")) as f:
    provider_path = yaml.safe_load(f)["providers"][0]["options"]["path"]
if grafana_mounts.get(provider_path) != "./grafana/dashboards":
    errors.append(f"grafana: the dashboard provider reads {provider_path}, where compose mounts no dashboards")
if grafana_mounts.get("/etc/grafana/provisioning") != "./grafana/provisioning":
    errors.append("grafana: provisioning folder not mounted at /etc/grafana/provisioning")
with open(os.path.join(COMPOSE_DIR, "grafana/dashboards/spriteforge.json")) as f:
    dashboard = json.load(f)

# Every PromQL expression to check, with where it came from.
expressions = []
for panel in dashboard["panels"]:
    if panel.get("datasource", {}).get("uid") != datasource["uid"]:
        errors.append(f"dashboard: panel '{panel['title']}' does not use the provisioned datasource")
    if not panel.get("targets"):
        errors.append(f"dashboard: panel '{panel['title']}' has no query")
    for target in panel.get("targets", []):
        expressions.append((f"panel '{panel['title']}'", target["expr"]))
with open(os.path.join(COMPOSE_DIR, "prometheus/alerts.yml")) as f:
    for group in yaml.safe_load(f)["groups"]:
        for rule in group["rules"]:
            expressions.append((f"alert {rule['alert']}", rule["expr"]))

KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right",
            "inf", "nan", "atan2"}


def metric_names(expr):
    """The metric names a PromQL expression selects (functions, labels, ranges dropped)."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', "", expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for m in re.finditer(r"(?<![\w$.])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?", expr):
        if not m.group(2) and m.group(1) not in KEYWORDS:
            names.add(m.group(1))
    return names


# ------------------------------------------------------------------ exposure and secrets
class ComposeLoader(yaml.SafeLoader):
    """Reads compose's !override and !reset tags as the plain values they carry."""


for tag in ("!override", "!reset"):
    ComposeLoader.add_constructor(tag, lambda loader, node: loader.construct_sequence(node)
                                  if isinstance(node, yaml.SequenceNode) else loader.construct_mapping(node))


def load_compose(name):
    with open(os.path.join(COMPOSE_DIR, name)) as f:
        return yaml.load(f, Loader=ComposeLoader)


def published_on_all_interfaces(service):
    """The ports a service publishes beyond the host's loopback."""
    return [p for p in service.get("ports", []) if not str(p).startswith("127.0.0.1:")]


# On one machine nothing is published beyond loopback, and Grafana has no default password.
for name, service in services.items():
    if published_on_all_interfaces(service):
        errors.append(f"compose: {name} publishes {published_on_all_interfaces(service)} on every interface")
grafana_env = services.get("grafana", {}).get("environment", {})
if "GF_SECURITY_ADMIN_PASSWORD" in grafana_env or "/run/secrets/" not in str(
        grafana_env.get("GF_SECURITY_ADMIN_PASSWORD__FILE", "")):
    errors.append("compose: Grafana's admin password should come from a secret (GF_SECURITY_ADMIN_PASSWORD__FILE)")

# Every secret the files name is one make-secrets.sh makes.
with tempfile.TemporaryDirectory() as made:
    subprocess.run(["bash", os.path.join(COMPOSE_DIR, "make-secrets.sh"), "spark-1.local"], check=True,
                   capture_output=True, env=dict(os.environ, SECRETS_DIR=made))
    made_files = set(os.listdir(made))
    for name, doc in (("compose.yaml", compose), ("compose.tls.yaml", load_compose("compose.tls.yaml")),
                      ("worker.yaml", load_compose("worker.yaml"))):
        for secret, spec in (doc.get("secrets") or {}).items():
            if os.path.basename(spec["file"]) not in made_files or not spec["file"].startswith("./secrets/"):
                errors.append(f"{name}: secret {secret} ({spec['file']}) is not one make-secrets.sh makes")
        for service_name, service in doc.get("services", {}).items():
            for secret in service.get("secrets", []):
                if secret not in (doc.get("secrets") or {}):
                    errors.append(f"{name}: {service_name} uses secret {secret}, which the file does not declare")
    # The server certificate holds the names workers dial.
    sans = subprocess.run(["openssl", "x509", "-in", os.path.join(made, "coordinator.crt"), "-noout", "-ext",
                           "subjectAltName"], capture_output=True, text=True).stdout
    for want in ("DNS:coordinator", "DNS:spark-1.local", "IP Address:127.0.0.1"):
        if want not in sans:
            errors.append(f"make-secrets.sh: the coordinator's certificate lacks {want}: {sans.strip()}")

# Across machines (compose.tls.yaml): the coordinator publishes beyond loopback only with TLS,
# client certificates and tokens; its workers present all three; Prometheus and Grafana
# stay on loopback.
tls = load_compose("compose.tls.yaml")["services"]
tls_command = tls.get("coordinator", {}).get("command", [])
for flag in ("--listen", "--tls-cert", "--tls-key", "--tls-client-ca", "--worker-cert-match", "--auth"):
    if flag not in tls_command:
        errors.append(f"compose.tls.yaml: the coordinator runs without {flag}")
if "--insecure-listen" in tls_command:
    errors.append("compose.tls.yaml: the coordinator still serves plaintext (--insecure-listen)")
for name in ("prometheus", "grafana"):
    if published_on_all_interfaces(tls.get(name, {})):
        errors.append(f"compose.tls.yaml: {name} is published beyond loopback")
worker_only = load_compose("worker.yaml")["services"]
for where, env in [("compose.tls.yaml " + n, tls.get(n, {}).get("environment", {})) for n in ("worker", "worker-gpu")] \
        + [("worker.yaml " + n, s.get("environment", {})) for n, s in worker_only.items()]:
    for var in ("SPRITEFORGE_TLS_CA", "SPRITEFORGE_TLS_CERT", "SPRITEFORGE_TLS_KEY", "SPRITEFORGE_TOKEN_FILE"):
        if var not in env:
            errors.append(f"{where}: the worker has no {var}")
    if not str(env.get("SPRITEFORGE_COORDINATOR_HTTP", "")).startswith("https://"):
        errors.append(f"{where}: the worker's health check asks the coordinator over plain HTTP")

# ------------------------------------------------------------------ a live coordinator
with tempfile.TemporaryDirectory() as tmp:
    ready = os.path.join(tmp, "ready.json")
    log = open(os.path.join(tmp, "coordinator.log"), "w+")
    proc = subprocess.Popen([COORDINATOR, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--db",
                             os.path.join(tmp, "jobs.db"), "--output", os.path.join(tmp, "results"),
                             "--ready-file", ready], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while not os.path.exists(ready) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        if not os.path.exists(ready):
            log.seek(0)
            sys.exit(f"compose: the coordinator did not start: {log.read()}")
        with open(ready) as f:
            http = json.load(f)["http"]
        metrics = urllib.request.urlopen(f"http://{http}/metrics", timeout=10).read().decode()
        healthz = urllib.request.urlopen(f"http://{http}/healthz", timeout=10)
        if healthz.status != 200:
            errors.append(f"coordinator: /healthz answered {healthz.status} (the image's HEALTHCHECK asks it)")
        # A worker that is not connected is unhealthy, with a one-line reason.
        health = subprocess.run(["bash", os.path.join(SRC, "deploy/docker/worker-health.sh"),
                                 f"http://{http}/metrics", "spark-1-gpu0"], capture_output=True, text=True)
        if health.returncode != 1 or "spark-1-gpu0 is not connected" not in health.stdout:
            errors.append(f"worker-health: expected 'not connected' for an unknown worker, got {health.stdout!r}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)

exported = set()
for line in metrics.splitlines():
    m = re.match(r"# TYPE (\S+) (\S+)", line)
    if m:
        exported.add(m.group(1))
        if m.group(2) == "histogram":
            exported.update(m.group(1) + s for s in ("_bucket", "_sum", "_count"))
if "spriteforge_images_total" not in exported:
    errors.append(f"coordinator: /metrics lacks spriteforge_images_total: {metrics[:200]}")

named = set()
for where, expr in expressions:
    names = metric_names(expr)
    if not names:
        errors.append(f"{where}: names no metric: {expr}")
    for name in sorted(names - exported):
        errors.append(f"{where}: '{name}' is not exported by the coordinator ({expr})")
    named |= names
# The dashboard covers what an operator asks first.
for wanted in ("spriteforge_images_total", "spriteforge_queue_depth", "spriteforge_worker_images_total",
               "spriteforge_worker_memory_peak_bytes", "spriteforge_worker_memory_budget_bytes",
               "spriteforge_batch_size_bucket", "spriteforge_failures_total", "spriteforge_step_seconds_bucket"):
    if wanted not in named:
        errors.append(f"dashboard and alerts: nothing shows {wanted}")

for e in errors:
    print(e)
print(f"compose: {len(services)} services, {len(expressions)} PromQL expressions against "
      f"{len(exported)} exported metrics, {len(errors)} problems")
sys.exit(1 if errors else 0)
