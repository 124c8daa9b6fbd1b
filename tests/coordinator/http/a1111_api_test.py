"""An A1111-style script against a live coordinator and a CPU worker (the golden tiny
model, a LoRA in its --lora-dir): txt2img with a <lora:...> tag and img2img give the
golden workflow images, progress is polled while a job runs, options select the model
per caller, loras and sd-models list what the worker serves, and a misspelt field is 422.
Each response is checked against docs/openapi.yaml."""

import base64
import http.client
import json
import os
import shutil
import struct
import sys
import threading
import time
import unittest
import urllib.parse
import zlib

sys.path.insert(0, os.path.dirname(__file__))
from live_cluster import LiveCluster, env  # noqa: E402
from openapi_check import OpenApi  # noqa: E402

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
KNIGHT = "a pixel art knight with a sword, 16-bit sprite"  # the golden lora.euler case
POTION = "red potion bottle icon, pixel art"  # the golden img2img.euler case


def decode_png(data):
    """(width, height, rows of RGB bytes) of an 8-bit RGB or RGBA PNG, with zlib alone."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), "8-bit RGB(A) only"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    channels = 3 if color == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(v for x in range(width) for v in line[x * channels:x * channels + 3]))
        prev = line
    return width, height, rows


def worst_difference(png_a, png_b):
    wa, ha, a = decode_png(png_a)
    wb, hb, b = decode_png(png_b)
    assert (wa, ha) == (wb, hb), f"{wa}x{ha} vs {wb}x{hb}"
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))


class A1111ApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = OpenApi(os.path.join(SOURCE, "docs", "openapi.yaml"))
        cls.workflows = os.path.join(os.path.dirname(env("SPRITEFORGE_GOLDEN")), "tiny-sdxl-workflows")
        cls.cluster = LiveCluster("a1111_api", workers=0).__enter__()
        loras = os.path.join(cls.cluster.dir, "loras")
        os.makedirs(loras)
        shutil.copy(os.path.join(cls.workflows, "lora-kohya.safetensors"), os.path.join(loras, "pixel-art.safetensors"))
        golden = env("SPRITEFORGE_GOLDEN")
        cls.cluster._spawn([env("SPRITEFORGE_WORKER_BIN"), "--coordinator", cls.cluster.grpc,
                            "--model", f"{golden}/tiny-sdxl.safetensors", "--config", f"{golden}/diffusers",
                            "--tokenizer", f"{golden}/tokenizer", "--model-name", "tiny-sdxl",
                            "--worker-id", "cpu-0", "--lora-dir", loras], "worker-0.log")
        cls.cluster.wait_for_workers(1)
        cls.host = urllib.parse.urlparse(cls.cluster.url).netloc

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()
        missing = cls.api.unchecked_operations("a1111_api_test")
        if missing:
            raise AssertionError("documented for this test but never called: " + ", ".join(missing))

    def call(self, method, path, body=None, status=200):
        return self.api.call(self, self.host, method, path, body, status=status)

    def golden(self, name):
        with open(os.path.join(self.workflows, name), "rb") as f:
            return f.read()

    def test_1_lists_what_the_worker_serves(self):
        self.assertEqual([m["title"] for m in self.call("GET", "/sdapi/v1/sd-models")], ["tiny-sdxl"])
        self.assertEqual([(l["name"], l["path"]) for l in self.call("GET", "/sdapi/v1/loras")],
                         [("pixel-art", "pixel-art.safetensors")])

    def test_2_a_lora_tag_is_the_manifests_lora(self):
        reply = self.call("POST", "/sdapi/v1/txt2img",
                          {"prompt": KNIGHT + "<lora:pixel-art:0.75>", "negative_prompt": "blurry", "seed": 42,
                           "steps": 4, "cfg_scale": 5, "width": 128, "height": 128, "sampler_name": "Euler",
                           "send_images": True, "save_images": False})
        image = base64.b64decode(reply["images"][0])
        self.assertLessEqual(worst_difference(image, self.golden("lora.euler_0.png")), 1)
        info = json.loads(reply["info"])
        self.assertIn("<lora:pixel-art:0.75>", info["infotexts"][0])
        self.assertEqual(info["ignored_fields"], ["save_images", "send_images"])
        missing = self.call("POST", "/sdapi/v1/txt2img", {"prompt": "<lora:pixel-art-xl:0.7> knight"}, status=404)
        self.assertIn("LoRA 'pixel-art-xl'", missing["error"]["message"])

    def manifest_image(self, manifest, files):
        """The first image of a manifest job with these uploads (path -> bytes)."""
        query = []
        for path, data in files.items():
            upload = self.call("POST", "/v1/files", {"image_base64": base64.b64encode(data).decode()}, status=201)
            query.append("file=" + urllib.parse.quote(f"{path}={upload['sha256']}"))
        conn = http.client.HTTPConnection(self.host, timeout=60)
        conn.request("POST", "/v1/jobs?" + "&".join(query), body=manifest, headers={"Content-Type": "application/yaml"})
        response = conn.getresponse()
        job_id = json.loads(response.read())["job"]["id"]
        self.assertEqual(response.status, 201)
        deadline = time.time() + 30
        while self.call("GET", f"/v1/jobs/{job_id}")["job"]["state"] != "JOB_DONE":
            self.assertLess(time.time(), deadline, f"job {job_id} did not finish")
            time.sleep(0.05)
        return self.call("GET", f"/v1/jobs/{job_id}/results/0.png")

    def test_3_img2img_is_the_manifests_img2img(self):
        start = self.golden("init.png")
        reply = self.call("POST", "/sdapi/v1/img2img",
                          {"prompt": POTION, "seed": 99, "steps": 10, "cfg_scale": 5, "sampler_name": "Euler",
                           "denoising_strength": 0.6, "resize_mode": 0, "init_images": [base64.b64encode(start).decode()]})
        self.assertEqual(reply["parameters"]["denoising_strength"], 0.6)
        # A1111 encodes the empty negative prompt (the golden case has none): so does this manifest.
        manifest = ("name: same\nmodel: tiny-sdxl\ndefaults: {width: 128, height: 128, steps: 10, cfg: 5, sampler: euler}\n"
                    f"items: [{{prompt: '{POTION}', negative: '', seed: 99, init_image: start.png, strength: 0.6}}]\n")
        image = base64.b64decode(reply["images"][0])
        self.assertEqual(worst_difference(image, self.manifest_image(manifest, {"start.png": start})), 0)
        self.assertGreater(worst_difference(image, start), 0)
        refused = self.call("POST", "/sdapi/v1/img2img",
                            {"init_images": [base64.b64encode(self.golden("init.png")).decode()], "resize_mode": 2},
                            status=422)
        self.assertTrue(refused["error"]["message"].startswith("resize_mode: 2 is not supported"), refused)

    def test_4_options_choose_the_model_and_previews(self):
        self.assertEqual(self.call("GET", "/sdapi/v1/options")["sd_model_checkpoint"], "tiny-sdxl")
        self.assertIsNone(self.call("POST", "/sdapi/v1/options",
                                    {"sd_model_checkpoint": "tiny-sdxl [0123abcd]", "show_progress_every_n_steps": 1}))
        options = self.call("GET", "/sdapi/v1/options")
        self.assertEqual((options["sd_model_checkpoint"], options["show_progress_every_n_steps"]), ("tiny-sdxl", 1))
        unknown = self.call("POST", "/sdapi/v1/options", {"sd_model_checkpoint": "sd_xl_base_1.0"}, status=422)
        self.assertIn("'sd_xl_base_1.0' is not served", unknown["error"]["message"])

    def test_5_progress_is_polled_while_a_job_runs(self):
        idle = self.call("GET", "/sdapi/v1/progress")
        self.assertEqual((idle["progress"], idle["state"]["job_count"]), (0, 0))
        reply = {}
        done = threading.Thread(target=lambda: reply.update(self.call(
            "POST", "/sdapi/v1/txt2img", {"prompt": KNIGHT, "seed": 1, "steps": 12, "width": 128, "height": 128,
                                          "batch_size": 2})))
        done.start()
        seen = []
        while done.is_alive():
            seen.append(self.call("GET", "/sdapi/v1/progress"))
            time.sleep(0.05)
        done.join()
        self.assertEqual(len(reply["images"]), 2)
        running = [p for p in seen if p["state"]["sampling_steps"] > 0]
        self.assertTrue(running, f"no progress seen in {len(seen)} polls")
        self.assertEqual(running[-1]["state"]["job"], "Batch 1 out of 1")
        self.assertTrue(any(0 < p["progress"] < 1 for p in running), [p["progress"] for p in running])
        # Previews every step (test_4's options), latent-sized: 128 / 8.
        previews = [p["current_image"] for p in running if p["current_image"]]
        self.assertTrue(previews, "no preview seen")
        self.assertEqual(decode_png(base64.b64decode(previews[-1]))[:2], (16, 16))
        self.assertIsNone(self.call("GET", "/sdapi/v1/progress?skip_current_image=true")["current_image"])

    def test_6_a_misspelt_field_is_422_naming_it(self):
        refused = self.call("POST", "/sdapi/v1/txt2img", {"promt": "a knight", "steps": 4}, status=422)
        self.assertEqual(refused["error"]["message"], "promt: unknown field (did you mean prompt?)")
        self.call("POST", "/sdapi/v1/txt2img", {"prompt": "x", "steps": 0}, status=422)


if __name__ == "__main__":
    unittest.main(verbosity=2)
