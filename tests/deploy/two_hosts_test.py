#!/usr/bin/python3
"""Compose across two Sparks, as processes on two hosts: network namespaces joined by a veth
pair, the coordinator in one with compose.tls.yaml's command line, a worker in the other
started by worker-run.sh with worker.yaml's environment, the TLS material and tokens from
make-secrets.sh (docs/deploy.md, "Adding a Spark"). The link goes down mid-job for longer
than a batch lease and comes back: the job still ends with each image exactly once.
Needs root (ip netns); skips (77) otherwise. Everything it makes is removed.
Usage: two_hosts_test.py SOURCE_DIR COORDINATOR WORKER CLIENT   (SPRITEFORGE_GOLDEN: tiny model)"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

SRC, COORDINATOR, WORKER, CLIENT = sys.argv[1:5]
GOLDEN = os.environ.get("SPRITEFORGE_GOLDEN") or os.path.join(os.path.dirname(os.path.abspath(SRC)),
                                                               "shared/golden/tiny-sdxl")
COMPOSE = os.path.join(SRC, "deploy/compose")
TAG = str(os.getpid())
NS_A, NS_B = f"sf-coord-{TAG}", f"sf-work-{TAG}"
VETH_A, VETH_B = f"sfa{TAG}"[:15], f"sfb{TAG}"[:15]
ADDR_A, ADDR_B = "10.213.0.1", "10.213.0.2"
LEASE_SECONDS = 2


def skip(why):
    print("#" * 64 + f"\n# SKIPPED: the two-hosts test did not run: {why}\n" + "#" * 64)
    sys.exit(77)


def sh(*argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw).stdout


def load(name):
    class Loader(yaml.SafeLoader):
        pass
    Loader.add_constructor("!override", lambda l, n: l.construct_sequence(n))
    with open(os.path.join(COMPOSE, name)) as f:
        return yaml.load(f, Loader=Loader)


def make_hosts():
    sh("ip", "netns", "add", NS_A)
    sh("ip", "netns", "add", NS_B)
    sh("ip", "link", "add", VETH_A, "type", "veth", "peer", "name", VETH_B)
    for ns, dev, addr in ((NS_A, VETH_A, ADDR_A), (NS_B, VETH_B, ADDR_B)):
        sh("ip", "link", "set", dev, "netns", ns)
        sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")


def remove_hosts():
    for ns in (NS_A, NS_B):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def coordinator_argv(secrets, data):
    """compose.tls.yaml's coordinator command, its /run/secrets and /data mapped to here."""
    command = load("compose.tls.yaml")["services"]["coordinator"]["command"]
    argv = [COORDINATOR] + [a.replace("/run/secrets", secrets).replace("/data", data) for a in command[1:]]
    return argv + ["--ready-file", os.path.join(data, "ready.json"), "--lease-seconds", str(LEASE_SECONDS)]


def worker_env(secrets):
    """worker.yaml's environment with the first Spark's address, on the CPU with the tiny model."""
    env = load("worker.yaml")["services"]["worker-gpu"]["environment"]
    out = {}
    for key, value in env.items():
        value = re.sub(r"\$\{SPRITEFORGE_COORDINATOR_HOST[^}]*\}", ADDR_A, str(value))
        out[key] = value.replace("/run/secrets", secrets)
    out.update(SPRITEFORGE_MODEL=f"{GOLDEN}/tiny-sdxl.safetensors", SPRITEFORGE_CONFIG=f"{GOLDEN}/diffusers",
               SPRITEFORGE_TOKENIZER=f"{GOLDEN}/tokenizer", SPRITEFORGE_MODEL_NAME="tiny-sdxl",
               SPRITEFORGE_DEVICE="cpu", SPRITEFORGE_DTYPE="fp32", SPRITEFORGE_WORKER_ARGS="",
               SPRITEFORGE_WORKER_ID="spark-2", SPRITEFORGE_MAX_BATCH="4", SPRITEFORGE_WORKER_HTTP="9100")
    return {k: v for k, v in out.items() if not k.startswith("NVIDIA_")}


def pngs(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".png")) if os.path.isdir(folder) else []


def main():
    if os.geteuid() != 0 or not shutil.which("ip"):
        skip("needs root and iproute2 for network namespaces")
    if not os.path.exists(f"{GOLDEN}/tiny-sdxl.safetensors"):
        if os.environ.get("SPRITEFORGE_REQUIRE_GOLDEN") == "1":
            print(f"two-hosts: FAILED: no tiny model in {GOLDEN}")
            return 1
        skip(f"no tiny model in {GOLDEN} (set SPRITEFORGE_GOLDEN)")
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        secrets, data = os.path.join(tmp, "secrets"), os.path.join(tmp, "data")
        os.makedirs(data)
        sh("bash", os.path.join(COMPOSE, "make-secrets.sh"), ADDR_A, env=dict(os.environ, SECRETS_DIR=secrets))
        tokens = {t["name"]: t["token"] for t in yaml.safe_load(open(os.path.join(secrets, "auth.yaml")))["tokens"]}
        procs = []
        try:
            make_hosts()
        except subprocess.CalledProcessError as e:
            remove_hosts()
            skip(f"cannot make network namespaces here: {e.stderr.strip()}")
        try:
            log_a = open(os.path.join(tmp, "coordinator.log"), "w")
            procs.append(subprocess.Popen(["ip", "netns", "exec", NS_A] + coordinator_argv(secrets, data),
                                          stdout=log_a, stderr=subprocess.STDOUT))
            while not os.path.exists(os.path.join(data, "ready.json")):
                if procs[0].poll() is not None or time.time() - start > 20:
                    raise RuntimeError("the coordinator did not start: " + open(log_a.name).read()[-2000:])
                time.sleep(0.05)
            env = dict(os.environ, PATH=os.path.dirname(WORKER) + ":" + os.environ["PATH"], **worker_env(secrets))
            log_b = open(os.path.join(tmp, "worker.log"), "w")
            procs.append(subprocess.Popen(["ip", "netns", "exec", NS_B, "bash",
                                           os.path.join(SRC, "deploy/docker/worker-run.sh")],
                                          env=env, stdout=log_b, stderr=subprocess.STDOUT))
            client = ["ip", "netns", "exec", NS_A, CLIENT, "--coordinator", f"{ADDR_A}:50051",
                      "--tls-ca", os.path.join(secrets, "ca.crt")]
            client_env = dict(os.environ, SPRITEFORGE_TOKEN=tokens["admin"])
            job = sh(*client, "submit", os.path.join(SRC, "workflows/potions.yaml"), env=client_env).strip()
            results = os.path.join(data, "results", job)
            while not pngs(results):
                if time.time() - start > 60 or procs[1].poll() is not None:
                    raise RuntimeError("no image before the link went down: " + open(log_b.name).read()[-2000:])
                time.sleep(0.1)
            done_before = len(pngs(results))
            sh("ip", "-n", NS_B, "link", "set", VETH_B, "down")
            time.sleep(LEASE_SECONDS * 2 + 1)  # the running batch's lease runs out meanwhile
            sh("ip", "-n", NS_B, "link", "set", VETH_B, "up")
            print(f"two-hosts: link down for {LEASE_SECONDS * 2 + 1} s with {done_before} of 24 images done")
            watch = subprocess.run(client + ["watch", job], env=client_env, capture_output=True, text=True,
                                   timeout=120)
            if watch.returncode != 0:
                raise RuntimeError(f"job {job} did not complete: {watch.stdout[-1000:]}{watch.stderr[-1000:]}")
            # The outage was real to the coordinator: it gave up on the silent worker's batch.
            if not re.search(r"worker spark-2 (lost|disconnected)", open(log_a.name).read()):
                raise RuntimeError("the coordinator never noticed the link was down")
            got = pngs(results)
            if len(got) != 24 or len(set(got)) != 24:
                raise RuntimeError(f"expected 24 distinct images, found {len(got)}: {got}")
            metrics = sh("ip", "netns", "exec", NS_A, "curl", "-fsS", "--cacert", os.path.join(secrets, "ca.crt"),
                         f"https://{ADDR_A}:8080/metrics")
            if 'spriteforge_worker_connected{worker="spark-2"} 1' not in metrics:
                raise RuntimeError("the worker is not connected after the link came back")
            # The worker's own endpoint says the same on its host, as its probes ask it.
            health = subprocess.run(["ip", "netns", "exec", NS_B, "bash",
                                     os.path.join(SRC, "deploy/docker/worker-health.sh")],
                                    env=dict(os.environ, SPRITEFORGE_WORKER_HTTP="9100"), capture_output=True, text=True)
            if health.returncode != 0:
                raise RuntimeError(f"the worker's health check fails: {health.stdout}{health.stderr}")
            own = sh("ip", "netns", "exec", NS_B, "curl", "-fsS", "http://127.0.0.1:9100/metrics")
            delivered = re.search(r'spriteforge_worker_delivered_images_total\{worker="spark-2"\} (\d+)', own)
            if not delivered or int(delivered.group(1)) < 24:
                raise RuntimeError(f"the worker's /metrics does not count its 24 images: {own[:500]}")
        except Exception as e:
            for name in ("coordinator.log", "worker.log"):
                path = os.path.join(tmp, name)
                if os.path.exists(path):
                    print(f"--- {name}\n" + open(path).read()[-3000:])
            print(f"two-hosts: FAILED: {e}")
            return 1
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
            remove_hosts()
    print(f"two-hosts: 24 images exactly once over TLS with tokens across a link outage ({time.time() - start:.0f} s)")
    return 0


sys.exit(main())
