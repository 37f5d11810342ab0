"""ComfyUI's API clients against our server: a client written the way ComfyUI's own script
examples are (urllib + websocket-client), its websocket-images variant, and a client library
from PyPI (comfy_api_simplified), all on the demo model over a real server process."""

import io
import json
import os
import re
import struct
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid

import numpy as np
import pytest
import websocket  # websocket-client, as ComfyUI's examples use
from PIL import Image

TIMEOUT = 120
PROMPT_TEXT = "a red circle on a blue background"


def txt2img(save_class="SaveImage", seed=3, steps=8) -> dict:
    """A ComfyUI API-format graph on the bundled demo model."""
    save_inputs = {"images": ["8", 0]}
    if save_class == "SaveImage":
        save_inputs["filename_prefix"] = "ComfyUI"
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "graphflow-demo.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT_TEXT, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"seed": seed, "steps": steps, "cfg": 5.0, "sampler_name": "euler",
                                                   "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                                   "positive": ["6", 0], "negative": ["7", 0],
                                                   "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": save_class, "inputs": save_inputs, "_meta": {"title": "Save Image"}},
    }


def looks_like_prompt(png: bytes) -> np.ndarray:
    """The picture is 64x64 and shows a red thing on a blue background (the demo model's prompt)."""
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)
    assert image.shape == (64, 64, 3)
    centre, corner = image[24:40, 24:40].mean((0, 1)), image[:6, :6].mean((0, 1))
    assert centre[0] > centre[2] + 60, f"centre is not red: {centre}"
    assert corner[2] > corner[0] + 60, f"background is not blue: {corner}"
    return image


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("comfy-home")
    env = dict(os.environ, GRAPHFLOW_OUTPUT_DIR=str(home / "outputs"), GRAPHFLOW_INPUT_DIR=str(home / "inputs"),
               GRAPHFLOW_MODELS_DIR=str(home / "models"), PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen([sys.executable, "-m", "graphflow.cli", "serve", "--port", "0"], cwd=home, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in process.stdout:
            match = re.search(r"running at (http://\S+?)/\s", line)
            if match:
                break
        else:
            pytest.fail("the server did not start")
        yield {"url": match.group(1), "home": home, "host": match.group(1).split("//")[1]}
    finally:
        process.terminate()
        process.wait(20)


def http(server, method, path, body=None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server["url"] + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw and "json" in response.headers.get("Content-Type", "") else raw
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def queue_prompt(server, prompt, client_id) -> dict:
    status, body = http(server, "POST", "/prompt", {"prompt": prompt, "client_id": client_id})
    assert status == 200, body
    return body


def messages_until_done(ws, prompt_id) -> tuple[list[dict], list[tuple[str | None, bytes]]]:
    """As ComfyUI's example: read until `executing` with node None for our prompt; binary frames
    are kept with the node that was executing when they came."""
    messages, frames, current = [], [], None
    while True:
        out = ws.recv()
        if isinstance(out, str):
            message = json.loads(out)
            messages.append(message)
            if message["type"] == "executing":
                data = message["data"]
                if data["node"] is None and data["prompt_id"] == prompt_id:
                    return messages, frames
                current = data["node"]
        else:
            frames.append((current, out))


def test_comfyui_example_client_gets_the_demo_picture(server):
    client_id = str(uuid.uuid4())
    ws = websocket.WebSocket()
    ws.connect(f"ws://{server['host']}/ws?clientId={client_id}&previews=1", timeout=TIMEOUT)
    try:
        first = json.loads(ws.recv())
        assert first["type"] == "status" and first["data"]["sid"] == client_id
        assert "queue_remaining" in first["data"]["status"]["exec_info"]
        prompt_id = queue_prompt(server, txt2img(), client_id)["prompt_id"]
        messages, frames = messages_until_done(ws, prompt_id)
    finally:
        ws.close()
    kinds = [m["type"] for m in messages]
    assert "execution_start" in kinds and "execution_success" in kinds
    assert kinds.index("execution_start") < kinds.index("execution_success")
    executing = [m["data"]["node"] for m in messages if m["type"] == "executing"]
    assert {"4", "3", "8", "9"} <= set(executing)
    progress = [m["data"] for m in messages if m["type"] == "progress"]
    assert progress and progress[-1]["value"] == progress[-1]["max"] == 8 and progress[-1]["node"] == "3"
    executed = [m["data"] for m in messages if m["type"] == "executed"]
    assert [e["node"] for e in executed] == ["9"] and executed[0]["prompt_id"] == prompt_id
    assert all(node == "3" for node, _ in frames), "preview frames come while the sampler runs"
    assert frames and all(f[:8] == b"\0\0\0\x01\0\0\0\x01" for _, f in frames), "ComfyUI's JPEG preview framing"
    assert all(m["data"].get("prompt_id", prompt_id) == prompt_id for m in messages if m["type"] != "status")

    status, history = http(server, "GET", f"/history/{prompt_id}")
    assert status == 200 and history[prompt_id]["status"]["completed"] is True
    images = history[prompt_id]["outputs"]["9"]["images"]
    assert len(images) == 1 and images[0]["type"] == "output"
    query = urllib.parse.urlencode(images[0])
    status, png = http(server, "GET", f"/view?{query}")
    assert status == 200
    picture = looks_like_prompt(png)
    saved = server["home"] / "outputs" / images[0]["subfolder"] / images[0]["filename"]
    assert np.array_equal(picture, np.asarray(Image.open(saved).convert("RGB"), dtype=np.float32))


def test_websocket_images_variant_receives_the_same_pixels(server):
    client_id = str(uuid.uuid4())
    ws = websocket.WebSocket()
    ws.connect(f"ws://{server['host']}/ws?clientId={client_id}", timeout=TIMEOUT)
    try:
        prompt_id = queue_prompt(server, txt2img("SaveImageWebsocket", seed=5), client_id)["prompt_id"]
        _, frames = messages_until_done(ws, prompt_id)
        saved_id = queue_prompt(server, txt2img("SaveImage", seed=5), client_id)["prompt_id"]
        messages_until_done(ws, saved_id)
    finally:
        ws.close()
    sent = [frame for node, frame in frames if node == "9"]
    assert [node for node, _ in frames] == ["9"], "no previews unless asked for, as in ComfyUI"
    assert len(sent) == 1 and sent[0][:8] == b"\0\0\0\x01\0\0\0\x02", "one PNG frame from the websocket save node"
    status, history = http(server, "GET", f"/history/{saved_id}")
    image = history[saved_id]["outputs"]["9"]["images"][0]
    status, png = http(server, "GET", "/view?" + urllib.parse.urlencode(image))
    assert np.array_equal(looks_like_prompt(sent[0][8:]), looks_like_prompt(png))
    assert not list((server["home"] / "outputs").glob("**/*websocket*")), "nothing written for the websocket save"


def test_comfy_api_simplified_library_gets_the_pictures(server):
    from comfy_api_simplified import ComfyApiWrapper, ComfyWorkflowWrapper

    api = ComfyApiWrapper(server["url"])
    prompt = txt2img(seed=7)
    for node_id, node in prompt.items():
        node.setdefault("_meta", {"title": f"{node['class_type']} {node_id}"})
    workflow = ComfyWorkflowWrapper(prompt)
    workflow.set_node_param("Save Image", "filename_prefix", "library")
    results = api.queue_and_wait_images(workflow, "Save Image")
    assert len(results) == 1
    name, png = next(iter(results.items()))
    assert name.startswith("library_")
    looks_like_prompt(png)
    queue = api.get_queue()
    assert queue == {"queue_running": [], "queue_pending": []}


def test_prompt_runs_the_valid_branch_and_reports_the_invalid_one(server):
    prompt = txt2img(seed=9)
    prompt["9"]["inputs"]["filename_prefix"] = "partial"
    prompt["10"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["77", 2]}}
    prompt["11"] = {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "broken"}}
    client_id = str(uuid.uuid4())
    ws = websocket.WebSocket()
    ws.connect(f"ws://{server['host']}/ws?clientId={client_id}", timeout=TIMEOUT)
    try:
        answer = queue_prompt(server, prompt, client_id)
        messages_until_done(ws, answer["prompt_id"])
    finally:
        ws.close()
    assert set(answer["node_errors"]) == {"10"}
    assert answer["node_errors"]["10"]["class_type"] == "VAEDecode"
    assert "77" in json.dumps(answer["node_errors"]["10"]["errors"])
    status, history = http(server, "GET", f"/history/{answer['prompt_id']}")
    outputs = history[answer["prompt_id"]]["outputs"]
    assert set(outputs) == {"9"} and outputs["9"]["images"][0]["filename"].startswith("partial_")
    assert not list((server["home"] / "outputs").glob("broken_*"))

    # A prompt with no valid output at all is refused, as ComfyUI does.
    status, body = http(server, "POST", "/prompt", {"prompt": {"11": prompt["11"], "10": prompt["10"]}})
    assert status == 400 and set(body["node_errors"]) == {"10"}
    assert body["error"]["type"] == "prompt_outputs_failed_validation"


def test_extra_pnginfo_is_written_into_the_saved_png_as_comfyui_does(server):
    """ComfyUI's frontend queues its editor graph as extra_data.extra_pnginfo.workflow; SaveImage
    writes each extra_pnginfo key as sent, so the PNG reopens with the user's layout, not ours."""
    import time

    editor_graph = {"last_node_id": 2, "nodes": [{"id": 1, "type": "EmptyImage", "pos": [12, 34]},
                                                 {"id": 2, "type": "SaveImage", "pos": [400, 34]}],
                    "links": [[1, 1, 0, 2, 0, "IMAGE"]], "extra": {"ds": {"scale": 0.8}}, "version": 0.4}
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 7}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "pnginfo"}}}
    extra = {"extra_pnginfo": {"workflow": editor_graph, "mine": {"n": 1}, "graphflow": "not ours"}}
    status, body = http(server, "POST", "/prompt", {"prompt": prompt, "client_id": "x", "extra_data": extra})
    assert status == 200, body
    prompt_id, deadline = body["prompt_id"], time.monotonic() + TIMEOUT
    while not (history := http(server, "GET", f"/history/{prompt_id}")[1]) and time.monotonic() < deadline:
        time.sleep(0.05)
    image = history[prompt_id]["outputs"]["2"]["images"][0]
    with Image.open(server["home"] / "outputs" / image["subfolder"] / image["filename"]) as png:
        texts = dict(png.info)
    assert json.loads(texts["workflow"]) == editor_graph and json.loads(texts["mine"]) == {"n": 1}
    assert json.loads(texts["prompt"])["2"]["inputs"]["filename_prefix"] == "pnginfo"  # what ran, API format
    assert json.loads(texts["graphflow"])["nodes"]["2"]["type"] == "SaveImage"  # ours stays ours


def test_frontend_style_client_gets_metadata_previews_and_node_states(server):
    """As ComfyUI's frontend of this era: `feature_flags` first, then type-4 previews naming the
    sampler and prompt, and `progress_state` for every node; a second run of the same prompt,
    answered by the cache, shows every node finished without running it."""
    client_id = str(uuid.uuid4())
    ws = websocket.WebSocket()
    ws.connect(f"ws://{server['host']}/ws?clientId={client_id}", timeout=TIMEOUT)
    try:
        assert json.loads(ws.recv())["type"] == "status"
        ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        flags = json.loads(ws.recv())
        assert flags == {"type": "feature_flags", "data": {"supports_preview_metadata": True,
                                                           "max_upload_size": flags["data"]["max_upload_size"]}}
        prompt_id = queue_prompt(server, txt2img(seed=11, steps=6), client_id)["prompt_id"]
        messages, frames = messages_until_done(ws, prompt_id)
        again_id = queue_prompt(server, txt2img(seed=11, steps=6), client_id)["prompt_id"]
        again, _ = messages_until_done(ws, again_id)
    finally:
        ws.close()
    assert frames and all(node == "3" for node, _ in frames), "previews while the sampler runs"
    for _, frame in frames:
        kind, length = struct.unpack_from(">II", frame)
        assert kind == 4, "PREVIEW_IMAGE_WITH_METADATA"
        metadata = json.loads(frame[8:8 + length])
        assert metadata["node_id"] == metadata["display_node_id"] == metadata["real_node_id"] == "3"
        assert metadata["prompt_id"] == prompt_id and metadata["image_type"] == "image/jpeg"
        assert Image.open(io.BytesIO(frame[8 + length:])).format == "JPEG"

    states = [m["data"]["nodes"] for m in messages if m["type"] == "progress_state"]
    sampler = [s["3"] for s in states if "3" in s]
    assert sampler[0]["state"] == "running" and sampler[0]["value"] == 0
    steps = [(s["value"], s["max"]) for s in sampler if s["state"] == "running" and s["max"] == 6]
    assert steps == [(v, 6) for v in range(1, 7)], "the sampler's steps as value/max"
    assert sampler[-1] == dict(sampler[-1], state="finished", value=6, max=6)
    assert {node: entry["state"] for node, entry in states[-1].items()} == {n: "finished" for n in txt2img()}
    # Each node is absent (pending) until it runs, then running, then finished; one the cache
    # answers (the loader and encoders, when the tests before ran them) goes straight to finished.
    cached = next(m["data"]["nodes"] for m in messages if m["type"] == "execution_cached")
    assert "3" not in cached
    for node in txt2img():
        seen = [s[node]["state"] for s in states if node in s]
        first_finished = seen.index("finished")
        assert set(seen[first_finished:]) == {"finished"} and set(seen[:first_finished]) <= {"running"}
        assert (first_finished == 0) == (node in cached), f"node {node}: {seen}"

    cached = next(m["data"]["nodes"] for m in again if m["type"] == "execution_cached")
    assert set(cached) == set(txt2img()), "the same prompt again: the cache answers every node"
    states = [m["data"]["nodes"] for m in again if m["type"] == "progress_state"]
    for node in cached:
        assert all(s[node]["state"] == "finished" for s in states if node in s), f"cached node {node} never runs"
    assert [m["data"]["node"] for m in again if m["type"] == "executing"] == [None]
    assert {node: entry["state"] for node, entry in states[-1].items()} == {n: "finished" for n in txt2img()}
