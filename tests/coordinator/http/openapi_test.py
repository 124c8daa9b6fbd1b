"""The live coordinator (with a CPU worker on the golden tiny model) answers as
docs/openapi.yaml describes: every documented operation is called, every response's
status and JSON body is checked against the document, and what the calls make (jobs,
events, PNGs) is checked for content too."""

import base64
import hashlib
import http.client
import io
import json
import os
import struct
import sys
import time
import unittest
import urllib.parse
import zipfile
import zlib

sys.path.insert(0, os.path.dirname(__file__))
from live_cluster import LiveCluster  # noqa: E402
from openapi_check import OpenApi  # noqa: E402

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


class OpenApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = OpenApi(os.path.join(SOURCE, "docs", "openapi.yaml"))
        cls.cluster = LiveCluster("openapi").__enter__()
        cls.host = urllib.parse.urlparse(cls.cluster.url).netloc

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()
        missing = cls.api.unchecked_operations()
        if missing:
            raise AssertionError("documented but never called: " + ", ".join(missing))

    def call(self, method, path, body=None, headers=None, status=200):
        return self.api.call(self, self.host, method, path, body, headers, status)

    def events(self, job_id):
        """The job's Server-Sent Events until the stream ends, as (kind, JobEvent) pairs."""
        conn = http.client.HTTPConnection(self.host, timeout=120)
        path = f"/v1/jobs/{job_id}/events"
        conn.request("GET", path)
        response = conn.getresponse()
        self.api.check("GET", path, response.status, response.getheader("Content-Type"), b"")
        out, kind = [], None
        while True:
            line = response.readline()
            if not line:
                break
            line = line.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                out.append((kind, self.api.check_event(line[6:])))
        conn.close()
        return out

    def test_1_a_manifest_runs_and_its_events_results_and_images_match(self):
        with open(os.path.join(SOURCE, "workflows", "potions.yaml"), "rb") as f:
            manifest = f.read()
        headers = {"Content-Type": "application/yaml", "Idempotency-Key": "potions-1"}
        submitted = self.call("POST", "/v1/jobs?filename=potions.yaml", manifest, headers, status=201)
        job_id = submitted["job"]["id"]
        self.assertEqual(submitted["job"]["counts"]["total"], 24)
        again = self.call("POST", "/v1/jobs", manifest, headers, status=200)
        self.assertTrue(again["deduplicated"])
        self.assertEqual(again["job"]["id"], job_id)

        events = self.events(job_id)
        kinds = [k for k, _ in events]
        self.assertEqual(kinds[0], "queued")
        self.assertEqual(kinds[-1], "job_done")
        self.assertIn("started", kinds)
        self.assertIn("progress", kinds)
        done = sorted(e["item_done"]["index"] for k, e in events if k == "item_done")
        self.assertEqual(done, list(range(24)))
        self.assertEqual(events[-1][1]["job_done"]["state"], "JOB_DONE")

        job = self.call("GET", f"/v1/jobs/{job_id}?items=true")
        self.assertEqual(job["job"]["counts"]["done"], 24)
        self.assertEqual([i["params"]["seed"] for i in job["items"][:2]], ["100", "101"])
        listed = self.call("GET", "/v1/jobs?limit=10")
        self.assertIn(job_id, [j["id"] for j in listed["jobs"]])
        # The history search: a word of the second entry's prompt and the state, a page of one.
        query = urllib.parse.urlencode({"q": "Knight done", "created_from_unix_ms": 1, "offset": 0, "limit": 1})
        found = self.call("GET", f"/v1/jobs?{query}")
        self.assertEqual(([j["id"] for j in found["jobs"]], found["total"]), ([job_id], 1))

        results = self.call("GET", f"/v1/jobs/{job_id}/results")
        self.assertEqual(len(results["results"]), 24)
        image = self.call("GET", results["results"][5]["url"])
        self.assertEqual(png_size(image), (128, 128))
        self.assertEqual(self.call("GET", f"/v1/jobs/{job_id}/items/5/inputs")["inputs"], [])  # no controls

    def test_1_previews_come_as_preview_events(self):
        manifest = {"name": "previews", "model": "tiny-sdxl",
                    "defaults": {"width": 128, "height": 128, "steps": 4},
                    "items": [{"prompt": "a small chest", "count": 16, "seed": 3}]}
        submitted = self.call("POST", "/v1/jobs?preview_every=2", manifest, {"Content-Type": "application/json"},
                              status=201)
        self.assertEqual(submitted["job"]["preview_every"], 2)
        previews = [e["preview"] for k, e in self.events(submitted["job"]["id"]) if k == "preview"]
        self.assertGreater(len(previews), 0)
        for p in previews:
            self.assertEqual((p["width"], p["height"]), (16, 16))
            self.assertIn(p["step"], (2, 4))
            self.assertEqual(png_size(base64.b64decode(p["png"])), (16, 16))
        bad = self.call("POST", "/v1/jobs?preview_every=often", manifest, {"Content-Type": "application/json"},
                        status=400)
        self.assertIn("preview_every", bad["error"]["message"])

    def test_2_cancel_stops_a_queued_job(self):
        manifest = {"name": "many", "model": "tiny-sdxl",
                    "defaults": {"width": 128, "height": 128, "steps": 4},
                    "items": [{"prompt": "a barrel", "count": 400}]}
        job_id = self.call("POST", "/v1/jobs", manifest, {"Content-Type": "application/json"}, status=201)["job"]["id"]
        cancelled = self.call("POST", f"/v1/jobs/{job_id}/cancel")
        self.assertEqual(cancelled["job"]["state"], "JOB_CANCELLED")
        self.assertGreater(cancelled["job"]["counts"]["cancelled"], 0)
        kinds = [k for k, _ in self.events(job_id)]
        self.assertEqual(kinds, ["queued", "job_done"])

    def test_2_a_job_no_worker_can_run_says_why_it_waits(self):
        job_id = self.call("POST", "/v1/jobs?model=sd-nobody", "name: w\nmodel: tiny-sdxl\nitems: [{prompt: p}]\n",
                           status=201)["job"]["id"]
        job = self.call("GET", f"/v1/jobs/{job_id}")["job"]
        self.assertEqual(job["waiting_reason"], "no connected worker serves model sd-nobody")
        self.assertEqual(self.call("POST", f"/v1/jobs/{job_id}/cancel")["job"]["waiting_reason"], "")

    def test_3_errors_are_json_with_the_matching_status(self):
        missing = self.call("GET", "/v1/jobs/job-000000000000", status=404)
        self.assertEqual(missing["error"]["code"], "NOT_FOUND")
        self.call("GET", "/v1/jobs/job-000000000000/events", status=404)
        self.call("GET", "/v1/jobs/job-000000000000/results", status=404)
        self.call("POST", "/v1/jobs/job-000000000000/cancel", status=404)
        self.call("GET", "/v1/jobs/job-000000000000/results/0.png", status=404)
        self.call("GET", "/v1/jobs/job-000000000000/items/0/inputs/control0.png", status=404)
        bad = self.call("POST", "/v1/jobs?filename=bad.yaml", "name: x\nmodel: tiny-sdxl\nitems:\n  - {count: 0}\n",
                        status=400)
        self.assertRegex(bad["error"]["message"], r"^bad\.yaml:4: items\[0\]\.")
        self.assertEqual(bad["error"]["code"], "INVALID_ARGUMENT")
        self.call("GET", "/v1/jobs?limit=lots", status=400)
        self.call("POST", "/v1/jobs", "name: x", {"Content-Type": "text/plain"}, status=415)
        too_big = self.call("POST", "/v1/jobs", b"#" * (3 << 20), status=413)
        self.assertIn("exceeds", too_big["error"]["message"])
        self.call("POST", "/sdapi/v1/txt2img", {"prompt": "x", "steps": 0}, status=422)  # as A1111 answers
        self.call("POST", "/sdapi/v1/txt2img", "not json", status=422)
        self.call("POST", "/v1/images/generations", {"prompt": "x", "size": "12x12"}, status=400)
        self.call("POST", "/v1/images/generations", {"prompt": "x", "model": "sd-99"}, status=400)

    def test_4_a1111_txt2img_returns_pngs_parameters_and_info(self):
        self.assertIn("Euler a", [s["name"] for s in self.call("GET", "/sdapi/v1/samplers")])
        self.assertEqual([m["title"] for m in self.call("GET", "/sdapi/v1/sd-models")], ["tiny-sdxl"])
        reply = self.call("POST", "/sdapi/v1/txt2img",
                          {"prompt": "red potion bottle icon", "negative_prompt": "blurry", "seed": 7, "steps": 4,
                           "cfg_scale": 5, "width": 128, "height": 128, "sampler_name": "Euler a",
                           "batch_size": 2, "n_iter": 1})
        self.assertEqual(len(reply["images"]), 2)
        for image in reply["images"]:
            self.assertEqual(png_size(base64.b64decode(image)), (128, 128))
        info = json.loads(reply["info"])
        self.assertEqual(info["all_seeds"], [7, 8])
        self.assertIn("Sampler: Euler a", info["infotexts"][1])
        self.assertEqual(reply["parameters"]["seed"], 7)

    def test_5_openai_generations_return_base64_or_urls(self):
        reply = self.call("POST", "/v1/images/generations",
                          {"prompt": "a green slime", "n": 2, "size": "128x128", "response_format": "b64_json",
                           "steps": 4})
        self.assertEqual([png_size(base64.b64decode(d["b64_json"])) for d in reply["data"]], [(128, 128)] * 2)
        reply = self.call("POST", "/v1/images/generations",
                          {"prompt": "a green slime", "size": "128x128", "response_format": "url", "steps": 4})
        url = urllib.parse.urlparse(reply["data"][0]["url"])
        self.assertEqual(url.netloc, self.host)
        self.assertEqual(png_size(self.call("GET", url.path)), (128, 128))

    def test_6_workers_page_and_metrics(self):
        workers = self.call("GET", "/v1/workers")["workers"]
        self.assertEqual(workers[0]["models"], ["tiny-sdxl"])
        self.assertGreater(int(workers[0]["total_bytes"]), 0)
        # A CPU worker's own memory is its resident memory; the machine's is reported beside it.
        self.assertGreater(int(workers[0]["resident_bytes"]), 0)
        self.assertEqual(workers[0]["used_bytes"], workers[0]["resident_bytes"])
        self.assertGreater(int(workers[0]["machine_used_bytes"]), 0)
        self.assertIn(b"<title>spriteforge</title>", self.call("GET", "/"))
        self.assertIn(b"spriteforge_images_total", self.call("GET", "/metrics"))
        self.assertEqual(self.call("GET", "/healthz"), b"ok\n")
        stats = self.call("GET", "/stats")
        self.assertEqual(stats["workers_connected"], 1)
        self.assertGreater(int(stats["images_total"]), 0)
        self.assertIn(b"<svg", self.call("GET", "/favicon.ico"))

    def test_7_what_the_page_uses_upload_img2img_sidecar_zip_and_delete(self):
        served = self.call("GET", "/v1/workers/files")["workers"]
        self.assertEqual([(w["id"], w["models"], w["loras"]) for w in served], [("cpu-0", ["tiny-sdxl"], [])])
        # The worker's --model is the golden single-file checkpoint: its size and SHA-256.
        with open(os.path.join(os.environ["SPRITEFORGE_GOLDEN"], "tiny-sdxl.safetensors"), "rb") as f:
            weights = f.read()
        self.assertEqual(served[0]["model_files"], [{"name": "tiny-sdxl", "size_bytes": len(weights),
                                                     "sha256": hashlib.sha256(weights).hexdigest()}])
        self.assertEqual(self.call("GET", "/v1/me"), {"name": "", "role": "admin", "anonymous": True})
        start = gray_png(128, 128)
        upload = self.call("POST", "/v1/files", {"image_base64": base64.b64encode(start).decode()}, status=201)
        self.assertEqual(upload["sha256"], hashlib.sha256(start).hexdigest())
        self.call("POST", "/v1/files", {"image_base64": "not base64!"}, status=400)
        manifest = ("name: again\nmodel: tiny-sdxl\ndefaults: {width: 128, height: 128, steps: 4}\n"
                    "items: [{prompt: a barrel, seed: 3, init_image: uploads/start.png, strength: 0.5}]\n")
        path = "/v1/jobs?file=" + urllib.parse.quote(f"uploads/start.png={upload['sha256']}")
        job_id = self.call("POST", path, manifest, {"Content-Type": "application/yaml"}, status=201)["job"]["id"]
        self.assertEqual([k for k, _ in self.events(job_id)][-1], "job_done")
        sidecar = self.call("GET", f"/v1/jobs/{job_id}/results/0.json")
        self.assertEqual((sidecar["parameters"]["seed"], sidecar["parameters"]["denoising_strength"]), (3, 0.5))
        archive = zipfile.ZipFile(io.BytesIO(self.call("GET", f"/v1/jobs/{job_id}/archive.zip")))
        self.assertIsNone(archive.testzip())
        self.assertLessEqual({"0_3.json", "0_3.png"}, {n.split("/", 1)[1] for n in archive.namelist()})
        self.assertEqual(self.call("DELETE", f"/v1/jobs/{job_id}"), {"deleted": job_id})
        self.call("DELETE", f"/v1/jobs/{job_id}", status=404)
        self.call("GET", f"/v1/jobs/{job_id}/archive.zip", status=404)
        self.call("GET", f"/v1/jobs/{job_id}/results/0.json", status=404)
        running = self.call("POST", "/v1/jobs", "name: r\nmodel: sd-nobody\nitems: [{prompt: p}]\n", status=201)
        unfinished = self.call("DELETE", f"/v1/jobs/{running['job']['id']}", status=400)
        self.assertIn("cancel it first", unfinished["error"]["message"])
        self.call("POST", f"/v1/jobs/{running['job']['id']}/cancel")

    def test_8_comfyui_prompt_history_view_queue_interrupt_object_info(self):
        with open(os.path.join(SOURCE, "tests", "common", "comfyui", "txt2img_sdxl.json")) as f:
            prompt = json.load(f)
        info = self.call("GET", "/object_info")
        self.assertIn("KSampler", info)
        self.assertIn("SaveImage", self.call("GET", "/object_info/SaveImage"))
        prompt["1"]["inputs"]["ckpt_name"] = "tiny-sdxl.safetensors"
        prompt["4"]["inputs"].update(width=64, height=64)
        prompt["5"]["inputs"].update(steps=1)
        bad = json.loads(json.dumps(prompt))
        bad["5"]["inputs"]["scheduler"] = "exponential"
        self.assertIn("5", self.call("POST", "/prompt", {"prompt": bad}, status=400)["node_errors"])
        prompt_id = self.call("POST", "/prompt", {"prompt": prompt, "client_id": "openapi"})["prompt_id"]
        self.call("GET", "/queue")
        deadline = time.time() + 60
        history = {}
        while prompt_id not in history and time.time() < deadline:
            history = self.call("GET", f"/history/{prompt_id}")
            time.sleep(0.1)
        image = history[prompt_id]["outputs"]["7"]["images"][0]
        self.assertEqual(png_size(self.call("GET", "/view?" + urllib.parse.urlencode(image))), (64, 64))
        self.assertIn(prompt_id, self.call("GET", "/history"))
        self.call("POST", "/interrupt", {})
        self.call("GET", "/view?filename=nothing.png&type=output", status=404)


def gray_png(width, height):
    """An RGB PNG of one gray, written with zlib alone."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\0" + b"\x80" * (3 * width) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


if __name__ == "__main__":
    unittest.main(verbosity=2)
