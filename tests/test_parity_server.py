"""ComfyUI's server, route by route: where a client written against ComfyUI (its frontend, its
example scripts, API wrappers) would see graphflow answer otherwise. Facts from ComfyUI's
server.py and execution.py of about September 2025."""

import asyncio
import io

import aiohttp
from PIL import Image

from server_nodes import Hold
from test_server import home, registry, start  # noqa: F401

GRAPH = {"1": {"class_type": "Canvas", "inputs": {"red": 200, "steps": 1}},
         "3": {"class_type": "SaveTestImage", "inputs": {"image": ["1", 0], "prefix": "parity"}}}


async def finished(client, prompt_id) -> dict:
    for _ in range(400):
        history = await (await client.get(f"/history/{prompt_id}")).json()
        if history:
            return history[prompt_id]
        await asyncio.sleep(0.025)
    raise AssertionError(f"prompt {prompt_id} did not finish")


async def test_comfyui_routes_answer_under_api_too(start):
    """ComfyUI serves every route also under /api (its frontend calls /api/prompt, /api/object_info,
    /api/upload/image, ...); where our own API owns the path, ours answers."""
    client = await start()
    ws = await client.ws_connect("/api/ws?clientId=front")
    assert (await ws.receive_json())["type"] == "status"
    body = await (await client.post("/api/prompt", json={"prompt": GRAPH, "client_id": "front"})).json()
    assert set(body) >= {"prompt_id", "number", "node_errors"}
    assert (await finished(client, body["prompt_id"]))["status"]["completed"] is True
    assert (await (await client.get("/api/prompt")).json()) == {"exec_info": {"queue_remaining": 0}}
    assert list(await (await client.get("/api/object_info/Canvas")).json()) == ["Canvas"]
    for path in ("/api/system_stats", "/api/embeddings", "/api/extensions", "/api/features", "/api/models",
                 "/api/models/checkpoints"):
        assert (await client.get(path)).status == 200, path
    assert (await client.post("/api/queue", json={"clear": True})).status == 200
    assert (await client.post("/api/history", json={"delete": [body["prompt_id"]]})).status == 200
    assert await (await client.get(f"/history/{body['prompt_id']}")).json() == {}
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    form = aiohttp.FormData()
    form.add_field("image", buffer.getvalue(), filename="api.png", content_type="image/png")
    uploaded = await (await client.post("/api/upload/image", data=form)).json()
    assert uploaded["name"] == "api.png" and uploaded["type"] == "input"
    # ours keeps its own /api/queue (and /api/history, /api/interrupt, ...): docs/api.md
    assert "pending" in await (await client.get("/api/queue")).json()
    await ws.close()


async def test_view_names_the_file_and_answers_404_without_a_filename(start, home):
    """ComfyUI's /view sends Content-Disposition: filename="NAME" with the file and with each
    conversion; no `filename` at all is a 404."""
    client = await start()
    (home / "outputs").mkdir(parents=True, exist_ok=True)
    Image.new("RGBA", (4, 4), (1, 2, 3, 4)).save(home / "outputs" / 'a"b.png')
    for query in ("", "&preview=webp;80", "&channel=rgb", "&channel=a"):
        response = await client.get("/view", params={"filename": 'a"b.png', "type": "output"} | dict(
            [query[1:].split("=")] if query else []))
        assert response.status == 200, query
        assert response.headers["Content-Disposition"] == 'filename="a\\"b.png"', query
    assert (await client.get("/view?type=output")).status == 404
    assert (await client.get("/api/view?type=output")).status == 404


async def test_history_max_items_and_offset_edges(start):
    """ComfyUI's GET /history: a max_items over its 10000-prompt history is all of it, 0 is none,
    and any negative offset means "the most recent"."""
    client = await start()
    ids = []
    for _ in range(3):
        ids.append((await (await client.post("/prompt", json={"prompt": GRAPH})).json())["prompt_id"])
        await finished(client, ids[-1])

    async def listed(query):
        response = await client.get(f"/history?{query}")
        assert response.status == 200, (query, await response.text())
        return list(await response.json())

    assert await listed("max_items=50000") == ids
    assert await listed("max_items=0") == []
    assert await listed("max_items=2&offset=-5") == ids[1:]
    assert await listed("offset=-2") == ids
    assert await listed("max_items=1&offset=1") == ids[1:2]
    assert (await client.get("/history?max_items=x")).status == 400  # ComfyUI: 500


async def test_a_prompt_taken_off_the_queue_has_no_history(start):
    """ComfyUI's /history/{id} of a prompt deleted from the queue before it ran is {} (it never
    reaches the history), as /history leaves it out."""
    client = await start()
    held = {**GRAPH, "2": {"class_type": "Hold", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": "SaveTestImage", "inputs": {"image": ["2", 0], "prefix": "held"}}}
    running = (await (await client.post("/prompt", json={"prompt": held})).json())["prompt_id"]
    waiting = (await (await client.post("/prompt", json={"prompt": GRAPH})).json())["prompt_id"]
    assert (await client.post("/queue", json={"delete": [waiting]})).status == 200
    Hold.gate.set()
    await finished(client, running)
    assert await (await client.get(f"/history/{waiting}")).json() == {}
    assert list(await (await client.get("/history")).json()) == [running]
    assert (await (await client.get(f"/api/history/{waiting}")).json())["status"] == "cancelled"  # ours keeps it


async def test_partial_execution_targets_run_only_those_outputs(start):
    """ComfyUI's /prompt `partial_execution_targets` (its frontend's "queue selected output nodes"):
    only the output nodes named run, the others are neither run nor validated; a list naming no
    output node is prompt_no_outputs."""
    client = await start()
    graph = {**GRAPH, "4": {"class_type": "SaveTestImage", "inputs": {"image": ["1", 0], "prefix": "other"}},
             "5": {"class_type": "SaveTestImage", "inputs": {"image": ["9", 0]}}}  # broken, not targeted
    response = await client.post("/prompt", json={"prompt": graph, "partial_execution_targets": ["3", "1"]})
    body = await response.json()
    assert response.status == 200 and body["node_errors"] == {}, body
    entry = await finished(client, body["prompt_id"])
    assert list(entry["outputs"]) == ["3"] and entry["prompt"][4] == ["3"]
    for targets in (["1"], [3], []):
        response = await client.post("/prompt", json={"prompt": graph, "partial_execution_targets": targets})
        assert response.status == 400 and (await response.json())["error"]["type"] == "prompt_no_outputs", targets
    response = await client.post("/prompt", json={"prompt": graph, "partial_execution_targets": ["5"]})
    assert (await response.json())["error"]["type"] == "prompt_outputs_failed_validation"
    response = await client.post("/prompt", json={"prompt": graph, "partial_execution_targets": "3"})
    assert response.status == 400 and (await response.json())["error"]["type"] == "invalid_prompt"



HELD = {**GRAPH, "2": {"class_type": "Hold", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveTestImage", "inputs": {"image": ["2", 0], "prefix": "held"}}}


async def running_prompt(client) -> str:
    prompt_id = (await (await client.post("/api/prompt", json={"prompt": HELD})).json())["prompt_id"]
    for _ in range(400):
        if (await (await client.get("/queue")).json())["queue_running"]:
            return prompt_id
        await asyncio.sleep(0.025)
    raise AssertionError("the prompt did not start")


async def test_api_interrupt_reads_comfyuis_prompt_id(start):
    """ComfyUI's frontend posts {"prompt_id"} to /api/interrupt: a prompt that isn't running is
    left alone, the one named is interrupted."""
    client = await start()
    prompt_id = await running_prompt(client)
    assert (await client.post("/api/interrupt", json={"prompt_id": "not-this-one"})).status == 200
    await asyncio.sleep(0.2)
    assert [item[1] for item in (await (await client.get("/queue")).json())["queue_running"]] == [prompt_id]
    assert (await client.post("/api/interrupt", json={"prompt_id": prompt_id})).status == 200
    assert (await finished(client, prompt_id))["status"]["messages"][-1][0] == "execution_interrupted"


async def test_interrupt_with_a_body_that_is_no_json_interrupts(start):
    """ComfyUI's /interrupt reads a body that is no JSON as no body: it interrupts what runs."""
    client = await start()
    prompt_id = await running_prompt(client)
    response = await client.post("/interrupt", data=b"not json", headers={"Content-Type": "text/plain"})
    assert response.status == 200
    assert (await finished(client, prompt_id))["status"]["messages"][-1][0] == "execution_interrupted"


async def test_upload_mask_keeps_the_originals_png_text(start, home):
    """ComfyUI's /upload/mask copies the original's PNG text chunks (a saved output's `prompt` and
    `workflow`) into the masked image, whose alpha is the mask's."""
    from PIL.PngImagePlugin import PngInfo

    from graphflow.folders import folders

    client = await start()
    (home / "outputs").mkdir(parents=True, exist_ok=True)
    info = PngInfo()
    info.add_text("prompt", '{"1": {}}')
    info.add_text("workflow", '{"nodes": []}')
    Image.new("RGB", (6, 4), (9, 8, 7)).save(home / "outputs" / "orig.png", pnginfo=info)
    mask = io.BytesIO()
    Image.new("RGBA", (6, 4), (0, 0, 0, 77)).save(mask, format="PNG")
    form = aiohttp.FormData()
    form.add_field("image", mask.getvalue(), filename="clipspace-mask.png", content_type="image/png")
    form.add_field("original_ref", '{"filename": "orig.png", "subfolder": "", "type": "output"}')
    form.add_field("type", "input")
    response = await client.post("/upload/mask", data=form)
    body = await response.json()
    assert response.status == 200, body
    with Image.open(folders.inputs / body["name"]) as masked:
        assert masked.text == {"prompt": '{"1": {}}', "workflow": '{"nodes": []}'}
        assert masked.getpixel((0, 0)) == (9, 8, 7, 77)


async def test_system_stats_device_fields(start, monkeypatch):
    """ComfyUI's devices[0]: `index` is torch.device's (null for the CPU, 0 for cuda:0), and on the
    CPU torch's VRAM figures are the machine's memory, as its vram_total/vram_free."""
    from graphflow.server import comfyui_routes

    client = await start()
    monkeypatch.setattr(comfyui_routes, "memory_stats", lambda: {"device": "cpu"})
    device = (await (await client.get("/system_stats")).json())["devices"][0]
    assert device["type"] == "cpu" and device["index"] is None and device["vram_total"] > 0
    assert (device["torch_vram_total"], device["torch_vram_free"]) == (device["vram_total"], device["vram_free"])
    monkeypatch.setattr(comfyui_routes, "memory_stats", lambda: {
        "device": "cuda:1", "name": "GPU", "vram_total": 80, "vram_free": 60})
    device = (await (await client.get("/system_stats")).json())["devices"][0]
    assert (device["type"], device["index"], device["vram_total"], device["vram_free"]) == ("cuda", 1, 80, 60)


async def test_view_reads_an_annotated_filename(start, home):
    """ComfyUI's /view takes LoadImage's annotated names: "x.png [output]" is outputs/x.png
    whatever `type` says."""
    client = await start()
    (home / "outputs").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (3, 2), (5, 6, 7)).save(home / "outputs" / "ann.png")
    response = await client.get("/view", params={"filename": "ann.png [output]", "type": "input"})
    assert response.status == 200
    assert Image.open(io.BytesIO(await response.read())).getpixel((0, 0)) == (5, 6, 7)
    assert response.headers["Content-Disposition"] == 'filename="ann.png"'


async def test_api_ws_speaks_comfyuis_protocol_without_a_client_id(start):
    """/api/ws is ComfyUI's alone: a client that connects without an id (as ComfyUI's frontend
    first does) is given one as `sid` in ComfyUI's `status`, and gets ComfyUI's messages for it."""
    client = await start()
    ws = await client.ws_connect("/api/ws")
    first = await ws.receive_json()
    assert first["type"] == "status" and set(first["data"]) == {"status", "sid"}
    sid = first["data"]["sid"]
    assert first["data"]["status"] == {"exec_info": {"queue_remaining": 0}}
    prompt_id = (await (await client.post("/prompt", json={"prompt": GRAPH, "client_id": sid})).json())["prompt_id"]
    kinds = []
    while not kinds or kinds[-1] != ("executing", None):
        message = await asyncio.wait_for(ws.receive_json(), 30)
        kinds.append((message["type"], message["data"].get("node", "")))
    assert ("execution_start", "") in kinds and ("execution_success", "") in kinds
    assert (await finished(client, prompt_id))["status"]["completed"]
    await ws.close()


async def test_models_lists_folder_names_once(start):
    """ComfyUI's GET /models lists its folder names: text_encoders and diffusion_models, not the
    legacy clip and unet beside them (ours still answers /models/clip, with text_encoders' files)."""
    client = await start()
    listed = await (await client.get("/models")).json()
    assert "text_encoders" in listed and "diffusion_models" in listed
    assert "clip" not in listed and "unet" not in listed and len(listed) == len(set(listed))
    assert await (await client.get("/models/clip")).json() == await (await client.get("/models/text_encoders")).json()


async def test_view_metadata_gives_a_safetensors_files_metadata(start, home):
    """ComfyUI's GET /view_metadata/{folder}?filename=: the file's safetensors `__metadata__`, 404
    for another file type, a missing file, an unknown folder or a file without metadata."""
    import torch
    from safetensors.torch import save_file

    client = await start()
    loras = home / "models" / "loras"
    loras.mkdir(parents=True)
    save_file({"w": torch.zeros(2)}, str(loras / "tagged.safetensors"), metadata={"ss_tag_frequency": '{"a": 1}'})
    save_file({"w": torch.zeros(2)}, str(loras / "bare.safetensors"))
    response = await client.get("/view_metadata/loras?filename=tagged.safetensors")
    assert response.status == 200 and await response.json() == {"ss_tag_frequency": '{"a": 1}'}
    assert (await client.get("/api/view_metadata/loras?filename=tagged.safetensors")).status == 200
    for path in ("/view_metadata/loras?filename=bare.safetensors", "/view_metadata/loras?filename=gone.safetensors",
                 "/view_metadata/loras?filename=tagged.ckpt", "/view_metadata/nowhere?filename=tagged.safetensors",
                 "/view_metadata/loras", "/view_metadata/loras?filename=../loras/tagged.safetensors"):
        assert (await client.get(path)).status == 404, path


async def test_get_routes_answer_head(start, home):
    """ComfyUI's GET routes answer HEAD as well (clients check that an output exists with HEAD /view)."""
    client = await start()
    (home / "outputs").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (2, 2)).save(home / "outputs" / "h.png")
    for path in ("/view?filename=h.png", "/api/view?filename=h.png", "/object_info", "/api/object_info/Canvas",
                 "/system_stats", "/history", "/queue", "/prompt"):
        assert (await client.head(path)).status == 200, path
    assert (await client.head("/view?filename=gone.png")).status == 404


async def test_view_preview_falls_back_as_comfyui_does(start, home):
    """ComfyUI's /view preview: a format other than webp/jpeg, or jpeg asked with an alpha channel,
    is webp; a quality that is no number is 90; an unknown channel is the file as it is."""
    client = await start()
    (home / "outputs").mkdir(parents=True, exist_ok=True)
    Image.new("RGBA", (6, 6), (10, 20, 30, 40)).save(home / "outputs" / "p.png")
    for query, fmt in (("preview=avif", "WEBP"), ("preview=jpeg;80&channel=rgba", "WEBP"),
                       ("preview=webp;best", "WEBP"), ("preview=jpeg;x", "JPEG"), ("preview=", "WEBP")):
        response = await client.get(f"/view?filename=p.png&{query}")
        assert response.status == 200, query
        assert Image.open(io.BytesIO(await response.read())).format == fmt, query
        assert response.headers["Content-Type"] == f"image/{fmt.lower()}", query
    raw = await client.get("/view?filename=p.png&channel=bgr")
    assert raw.status == 200 and await raw.read() == (home / "outputs" / "p.png").read_bytes()


async def test_view_quality_of_other_digits_means_90(start, home):
    """A preview quality that is not an ASCII number (here a superscript two) means quality 90, as any
    other non-number does, not a server error."""
    client = await start()
    (home / "outputs").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (9, 8, 7)).save(home / "outputs" / "q.png")
    odd = await client.get("/view", params={"filename": "q.png", "preview": "webp;\u00b2"})
    plain = await client.get("/view", params={"filename": "q.png", "preview": "webp;90"})
    assert odd.status == plain.status == 200
    assert await odd.read() == await plain.read()
