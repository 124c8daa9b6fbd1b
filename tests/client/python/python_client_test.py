"""The Python client (client/python) against a live coordinator and CPU worker: submit
a manifest, watch it with a progress bar, download its images, idempotent submits,
cancel, errors, and the command line."""

import http.server
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(SOURCE, "client", "python"))
sys.path.insert(0, os.path.join(SOURCE, "tests", "coordinator", "http"))
from live_cluster import LiveCluster  # noqa: E402
from spriteforge_client import ApiError, Client  # noqa: E402

POTIONS = os.path.join(SOURCE, "workflows", "potions.yaml")


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = LiveCluster("python_client").__enter__()
        cls.client = Client(cls.cluster.url)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.cluster.stop()

    def test_submit_watch_and_download(self):
        job = self.client.submit(POTIONS, idempotency_key="potions-py")
        self.assertEqual(job["counts"]["total"], 24)
        out = io.StringIO()
        final = self.client.watch(job["id"], out=out)
        self.assertEqual(final["state"], "JOB_DONE")
        self.assertIn("24/24 images", out.getvalue())
        self.assertTrue(out.getvalue().rstrip().endswith(": done"))
        # The same key: the same job, nothing queued again.
        self.assertEqual(self.client.submit(POTIONS, idempotency_key="potions-py")["id"], job["id"])
        with tempfile.TemporaryDirectory() as folder:
            paths = self.client.download(job["id"], folder)
            self.assertEqual(len(paths), 24)
            self.assertEqual(os.path.basename(paths[0]), "0_100.png")
            self.assertEqual({png_size(p) for p in paths}, {(128, 128)})
        detail = self.client.job(job["id"], items=True)
        self.assertEqual({i["state"] for i in detail["items"]}, {"ITEM_DONE"})

    def test_events_come_in_order_and_end_with_job_done(self):
        job = self.client.submit({"name": "coins", "model": "tiny-sdxl",
                                  "defaults": {"width": 128, "height": 128, "steps": 3},
                                  "items": [{"prompt": "gold coin", "count": 3, "seed": 1}]})
        events = list(self.client.events(job["id"]))
        kinds = [kind for kind, _ in events]
        # The first event is a snapshot (the job may already be running by then).
        self.assertEqual(kinds[0], "queued")
        self.assertEqual(events[0][1]["queued"]["items"], 3)
        self.assertEqual(sorted(e["item_done"]["index"] for k, e in events if k == "item_done"), [0, 1, 2])
        self.assertEqual(kinds[-1], "job_done")
        self.assertEqual(events[-1][1]["job"]["counts"]["done"], 3)

    def test_cancel(self):
        job = self.client.submit({"name": "crates", "model": "tiny-sdxl",
                                  "defaults": {"width": 128, "height": 128, "steps": 4},
                                  "items": [{"prompt": "wooden crate", "count": 500}]})
        self.assertEqual(self.client.cancel(job["id"])["state"], "JOB_CANCELLED")
        self.assertEqual(self.client.wait(job["id"])["state"], "JOB_CANCELLED")

    def test_errors_carry_code_and_message(self):
        with self.assertRaises(ApiError) as bad:
            self.client.submit("name: x\nmodel: tiny-sdxl\nitems:\n  - {prompt: p, count: 0}\n", filename="x.yaml")
        self.assertEqual((bad.exception.status, bad.exception.code), (400, "INVALID_ARGUMENT"))
        self.assertEqual(bad.exception.message, "x.yaml:4: items[0].count: must be 1..10000")
        with self.assertRaises(ApiError) as missing:
            self.client.job("job-000000000000")
        self.assertEqual(missing.exception.code, "NOT_FOUND")
        with self.assertRaises(ApiError) as down, Client("http://127.0.0.1:1", timeout=2) as unreachable:
            unreachable.workers()
        self.assertEqual(down.exception.code, "UNAVAILABLE")

    def test_workers(self):
        workers = self.client.workers()
        self.assertEqual([w["id"] for w in workers], ["cpu-0"])
        self.assertGreater(int(workers[0]["total_bytes"]), 0)

    def test_command_line(self):
        env = dict(os.environ, PYTHONPATH=os.path.join(SOURCE, "client", "python"), SPRITEFORGE_URL=self.cluster.url)

        def run(*args):
            return subprocess.run([sys.executable, "-m", "spriteforge_client", *args], env=env,
                                  capture_output=True, text=True, timeout=300)

        submitted = run("submit", POTIONS, "--wait")
        self.assertEqual(submitted.returncode, 0, submitted.stderr)
        job_id = submitted.stdout.strip()
        self.assertRegex(job_id, r"^job-[0-9a-f]+$")
        self.assertIn("24/24 images", submitted.stderr)
        with tempfile.TemporaryDirectory() as folder:
            results = run("results", job_id, "--out", folder)
            self.assertEqual(results.returncode, 0, results.stderr)
            self.assertEqual(len(results.stdout.split()), 24)
        missing = run("watch", "job-000000000000")
        self.assertEqual(missing.returncode, 1)
        self.assertEqual(missing.stderr.strip(), "spriteforge_client: error: no job job-000000000000")


class RecordingCoordinator(http.server.ThreadingHTTPServer):
    """A stand-in HTTP port that records each request's method, path and headers and
    answers with an empty job."""

    def __init__(self):
        self.seen = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def reply(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.seen.append((self.command, self.path.split("?")[0], dict(self.headers)))
                body = json.dumps({"job": {"id": "job-1", "state": "JOB_CANCELLED"}, "workers": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = reply

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class PythonClientOptionsTest(unittest.TestCase):
    """Tokens, body types and unreachable coordinators, against a stand-in: no cluster."""

    def run_cli(self, *args, **env):
        env = dict(os.environ, PYTHONPATH=os.path.join(SOURCE, "client", "python"), **env)
        return subprocess.run([sys.executable, "-m", "spriteforge_client", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    def test_every_post_says_its_body_type_and_the_token_goes_along(self):
        server = RecordingCoordinator()
        try:
            with Client(server.url, token="s3cret") as client:
                client.submit({"name": "x", "model": "m", "items": [{"prompt": "p"}]})
                client.submit("name: x\nmodel: m\nitems: [{prompt: p}]\n")
                client.cancel("job-1")
            types = [(path, headers.get("Content-Type")) for method, path, headers in server.seen if method == "POST"]
            self.assertEqual(types, [("/v1/jobs", "application/json"), ("/v1/jobs", "application/yaml"),
                                     ("/v1/jobs/job-1/cancel", "application/json")])
            self.assertEqual({h.get("Authorization") for _, _, h in server.seen}, {"Bearer s3cret"})
            # The command line takes the token from the environment.
            server.seen.clear()
            listed = self.run_cli("--url", server.url, "workers", SPRITEFORGE_TOKEN="from-env")
            self.assertEqual(listed.returncode, 0, listed.stderr)
            self.assertEqual(server.seen[0][2].get("Authorization"), "Bearer from-env")
        finally:
            server.shutdown()
            server.server_close()

    def test_https_urls_verify_against_the_given_ca(self):
        with Client("https://coordinator.example:8443", ca_cert="/etc/spriteforge/ca.pem") as client:
            self.assertEqual(client.session.verify, "/etc/spriteforge/ca.pem")
        self.assertIn("--ca-cert", self.run_cli("--help").stdout)

    def test_an_unreachable_coordinator_is_one_plain_line(self):
        down = self.run_cli("--url", "http://127.0.0.1:1", "workers")
        self.assertEqual(down.returncode, 1)
        self.assertEqual(down.stderr, "spriteforge_client: error: cannot reach http://127.0.0.1:1: connection refused\n")
        with tempfile.TemporaryDirectory() as folder:
            results = self.run_cli("--url", "http://127.0.0.1:1", "results", "job-1", "--out", folder + "/out")
            self.assertEqual(results.returncode, 1)
            self.assertFalse(os.path.exists(folder + "/out"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
