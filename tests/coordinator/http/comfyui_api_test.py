"""A script written against ComfyUI's HTTP API (as its basic API examples do: queue a
prompt, poll the history, fetch each image with /view) runs unchanged against a live
coordinator with --auth and a CPU worker on the tiny model; a workflow spriteforge cannot
render comes back as ComfyUI's node_errors."""

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from live_cluster import LiveCluster, USER_TOKEN  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "common", "comfyui")


def call(cluster, path, body=None, token=USER_TOKEN):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(cluster.url + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def queue_prompt(cluster, prompt):
    status, body = call(cluster, "/prompt", {"prompt": prompt, "client_id": "sprite-script"})
    return status, json.loads(body)


def main():
    with open(os.path.join(FIXTURES, "txt2img_sdxl.json")) as f:
        prompt = json.load(f)
    with LiveCluster("comfyui_api", auth=True) as cluster:
        started = time.time()
        status, body = call(cluster, "/object_info")
        assert status == 200, body
        info = json.loads(body)
        assert "tiny-sdxl.safetensors" in info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0], info
        assert "euler" in info["KSampler"]["input"]["required"]["sampler_name"][0]
        assert info["SaveImage"]["output_node"] is True

        # The script's edits, as ComfyUI's examples make them.
        prompt["1"]["inputs"]["ckpt_name"] = "tiny-sdxl.safetensors"
        prompt["4"]["inputs"].update(width=64, height=64, batch_size=2)
        prompt["5"]["inputs"].update(steps=2, seed=7)
        status, queued = queue_prompt(cluster, prompt)
        assert status == 200, queued
        prompt_id = queued["prompt_id"]
        assert queued["node_errors"] == {} and isinstance(queued["number"], int), queued

        status, body = call(cluster, "/queue")
        assert status == 200 and set(json.loads(body)) == {"queue_running", "queue_pending"}, body

        history = {}
        deadline = time.time() + 60
        while prompt_id not in history and time.time() < deadline:
            time.sleep(0.2)
            status, body = call(cluster, f"/history/{prompt_id}")
            assert status == 200, body
            history = json.loads(body)
        assert prompt_id in history, f"no history for {prompt_id} within 60 s"
        entry = history[prompt_id]
        assert entry["status"]["completed"] is True and entry["status"]["status_str"] == "success", entry
        images = entry["outputs"]["7"]["images"]
        assert len(images) == 2, images
        for image in images:
            query = urllib.parse.urlencode(image)
            status, png = call(cluster, f"/view?{query}")
            assert status == 200 and png.startswith(b"\x89PNG\r\n\x1a\n"), (status, png[:64])
        # The images are the job's: the native API serves the same bytes.
        status, job = call(cluster, f"/v1/jobs/{prompt_id}")
        assert status == 200 and json.loads(job)["job"]["state"] == "JOB_DONE", job

        # Refused as ComfyUI refuses: 400 with the node's errors.
        bad = json.loads(json.dumps(prompt))
        bad["5"]["inputs"]["sampler_name"] = "dpmpp_3m_sde"
        status, refused = queue_prompt(cluster, bad)
        assert status == 400, refused
        assert refused["node_errors"]["5"]["class_type"] == "KSampler", refused
        assert "is not a sampler spriteforge has" in refused["node_errors"]["5"]["errors"][0]["message"], refused
        status, refused = queue_prompt(cluster, {"3": {"class_type": "UpscaleModelLoader", "inputs": {}}})
        assert status == 400 and "3" in refused["node_errors"], refused

        # Same auth as the rest of the API; /interrupt with nothing running is a no-op.
        status, _ = call(cluster, "/prompt", {"prompt": prompt}, token=None)
        assert status == 401, status
        status, _ = call(cluster, f"/history/{prompt_id}", token=None)
        assert status == 401, status
        status, _ = call(cluster, "/interrupt", {})
        assert status == 200, status
        print(f"comfyui api: ok in {time.time() - started:.1f} s")


if __name__ == "__main__":
    main()
