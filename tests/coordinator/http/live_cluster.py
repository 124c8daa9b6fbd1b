"""A coordinator and CPU workers on the golden tiny model as real processes, for the
HTTP API, Python client and browser tests. Paths come from the environment ctest sets:
SPRITEFORGE_COORDINATOR_BIN, SPRITEFORGE_WORKER_BIN, SPRITEFORGE_GOLDEN and
SPRITEFORGE_TEST_OUTPUT (where logs and outputs go)."""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request


def env(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set (run the test through ctest)")
    return value


# Tokens of a coordinator started with auth=True (--auth): a submitter for the tests and
# the workers' own.
USER_TOKEN = "page-user-token-0123456789abcdef"
VIEWER_TOKEN = "page-viewer-token-0123456789abcdef"
WORKER_TOKEN = "worker-token-0123456789abcdef"


class LiveCluster:
    def __init__(self, name, workers=1, auth=False):
        self.dir = os.path.join(env("SPRITEFORGE_TEST_OUTPUT"), name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.worker_count = workers
        self.auth = auth
        self.processes = []
        self.url = None

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def _spawn(self, argv, log_name):
        log = open(os.path.join(self.dir, log_name), "wb")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def _start(self):
        ready = os.path.join(self.dir, "ready.json")
        argv = [env("SPRITEFORGE_COORDINATOR_BIN"), "--listen", "127.0.0.1:0",
                "--db", os.path.join(self.dir, "spriteforge.db"), "--output", os.path.join(self.dir, "out"),
                "--http", "127.0.0.1:0", "--ready-file", ready]
        worker_auth = []
        if self.auth:
            auth_file = os.path.join(self.dir, "auth.yaml")
            with open(auth_file, "w") as f:
                f.write("tokens:\n"
                        f"  - {{name: page-user, token: {USER_TOKEN}, role: submitter}}\n"
                        f"  - {{name: page-viewer, token: {VIEWER_TOKEN}, role: viewer}}\n"
                        f"  - {{name: workers, token: {WORKER_TOKEN}, role: worker}}\n")
            argv += ["--auth", auth_file]
            worker_auth = ["--token", WORKER_TOKEN]
        self._spawn(argv, "coordinator.log")
        deadline = time.time() + 30
        while not os.path.exists(ready):
            if time.time() > deadline:
                raise RuntimeError(f"the coordinator did not start; see {self.dir}/coordinator.log")
            time.sleep(0.05)
        with open(ready) as f:
            addresses = json.load(f)
        self.grpc = addresses["grpc"]
        self.url = "http://" + addresses["http"]
        golden = env("SPRITEFORGE_GOLDEN")
        for i in range(self.worker_count):
            self._spawn([env("SPRITEFORGE_WORKER_BIN"), "--coordinator", self.grpc,
                         "--model", f"{golden}/tiny-sdxl.safetensors", "--config", f"{golden}/diffusers",
                         "--tokenizer", f"{golden}/tokenizer", "--model-name", "tiny-sdxl",
                         "--worker-id", f"cpu-{i}"] + worker_auth, f"worker-{i}.log")
        self.wait_for_workers(self.worker_count)

    def wait_for_workers(self, count, seconds=180):
        deadline = time.time() + seconds
        while time.time() < deadline:
            workers = json.loads(self.get("/v1/workers"))["workers"]
            if sum(1 for w in workers if w["connected"]) >= count:
                return workers
            time.sleep(0.2)
        raise RuntimeError(f"{count} worker(s) did not connect; see {self.dir}")

    def get(self, path):
        headers = {"Authorization": f"Bearer {USER_TOKEN}"} if self.auth else {}
        request = urllib.request.Request(self.url + path, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def stop(self):
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []
