"""A script written against ComfyUI's HTTP API (as its API examples do: open the /ws
websocket with a client id, queue a prompt with it, read the messages until the prompt's
"executing" with node null, then fetch the history and each image with /view) runs
unchanged against a live coordinator with --auth and a CPU worker on the tiny model; a
workflow spriteforge cannot render comes back as ComfyUI's node_errors."""

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import websocket

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from live_cluster import LiveCluster, USER_TOKEN  # noqa: E402
from openapi_check import OpenApi  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "common", "comfyui")
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")


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


def queue_prompt(cluster, prompt, client_id="sprite-script"):
    status, body = call(cluster, "/prompt", {"prompt": prompt, "client_id": client_id})
    return status, json.loads(body)


def messages_until_done(ws, prompt_id):
    """The websocket's JSON messages up to the prompt's "executing" with node null."""
    out = []
    while True:
        message = ws.recv()
        assert isinstance(message, str), message  # previews would come as binary frames
        out.append(json.loads(message))
        data = out[-1]["data"]
        if out[-1]["type"] == "executing" and data["node"] is None and data["prompt_id"] == prompt_id:
            return out


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
        # As ComfyUI's websocket example: the socket first, then the prompt with its client id.
        # (The token goes in a header, as websocket-client's header= sends it.)
        client_id = str(uuid.uuid4())
        ws = websocket.WebSocket()
        ws.connect(f"ws://{cluster.url.split('://')[1]}/ws?clientId={client_id}",
                   header=[f"Authorization: Bearer {USER_TOKEN}"], timeout=30)
        api = OpenApi(os.path.join(SOURCE, "docs", "openapi.yaml"))
        api.check("GET", "/ws", ws.getstatus(), ws.getheaders().get("content-type", ""), b"")
        hello = json.loads(ws.recv())
        assert hello["type"] == "status" and hello["data"]["sid"] == client_id, hello
        assert "queue_remaining" in hello["data"]["status"]["exec_info"], hello
        status, queued = queue_prompt(cluster, prompt, client_id)
        assert status == 200, queued
        prompt_id = queued["prompt_id"]
        assert queued["node_errors"] == {} and isinstance(queued["number"], int), queued
        messages = messages_until_done(ws, prompt_id)
        ws.close()
        types = [m["type"] for m in messages]
        assert types[0] == "execution_start" and messages[0]["data"]["prompt_id"] == prompt_id, messages
        assert {"node": "5", "prompt_id": prompt_id} in [m["data"] for m in messages if m["type"] == "executing"], types
        steps = [m["data"] for m in messages if m["type"] == "progress"]
        assert steps and all(s["max"] == 2 and s["node"] == "5" for s in steps), steps
        executed = [m["data"] for m in messages if m["type"] == "executed"]
        assert [e["node"] for e in executed] == ["7"] and len(executed[0]["output"]["images"]) == 2, executed
        assert types.index("execution_success") < len(types) - 1, types

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
        try:
            websocket.create_connection(f"ws://{cluster.url.split('://')[1]}/ws?clientId={client_id}", timeout=10)
            raise AssertionError("/ws opened without a token")
        except websocket.WebSocketBadStatusException as e:
            assert e.status_code == 401, e
        status, body = call(cluster, "/ws", token=None)
        api.check("GET", "/ws", status, "application/json", body)  # the refusal, as documented
        assert api.unchecked_operations("comfyui_api_test") == [], api.unchecked_operations("comfyui_api_test")
        status, _ = call(cluster, "/interrupt", {})
        assert status == 200, status
        print(f"comfyui api: ok in {time.time() - started:.1f} s")


if __name__ == "__main__":
    main()
