"""The Python client (clients/python) against a live coordinator and CPU worker: submit
a manifest, watch it with a progress bar, download its images, idempotent submits,
cancel, errors, and the command line."""

import io
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE, "clients", "python"))
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
        env = dict(os.environ, PYTHONPATH=os.path.join(SOURCE, "clients", "python"), SPRITEFORGE_URL=self.cluster.url)

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


if __name__ == "__main__":
    unittest.main(verbosity=2)
