"""ComfyUI's HTTP routes served beside ours: shapes of /object_info, /queue, /history,
/system_stats, /embeddings, /models, /view conversions, /free and /interrupt."""

import asyncio
import io
import importlib.metadata
import json
import struct
from pathlib import Path

from aiohttp import WSMsgType
from PIL import Image

from graphflow.server.comfyui_object_info import object_info
from graphflow.workflow import comfy_aliases
from test_server import home, image_workflow, receive_until, registry, start, submit  # noqa: F401
from server_nodes import Hold

# ComfyUI v0.3.64's GET /object_info, copied from the project's reference facts.
REFERENCE = json.loads((Path(__file__).parent / "data" / "comfyui-object-info.json").read_text())

# Where our /object_info knowingly differs from ComfyUI's, and why. Everything else must match.
KNOWN_DIFFERENCES = {
    ("CLIPLoader", "type", "choices"): "text encoders of model families graphflow does not have",
    ("DualCLIPLoader", "type", "choices"): "text encoders of model families graphflow does not have",
    ("CreateHookKeyframesFromFloats", "floats_strength", "default"): "a link-only (forceInput) FLOATS input: no value "
                                                                      "of its own",
    ("LossGraphNode", "loss", "default"): "a LOSS_MAP socket: ComfyUI's {} default is no value a link-only input has",
}
# Our files are named graphflow_… where ComfyUI's are ComfyUI_… (every filename_prefix default).
OUR_NAME = ("ComfyUI", "graphflow")
FILE_CHOICES = {"ckpt_name", "vae_name", "lora_name", "image", "unet_name", "clip_name", "clip_name1", "clip_name2",
                "clip_name3", "control_net_name", "model_name", "latent", "folder"}  # lists of the test machine's files


def aliased_classes(registry):
    for cls in registry:
        for alias in comfy_aliases(cls):
            for class_type in alias.class_types:
                if registry.comfy_node(class_type) is cls:
                    yield class_type, alias


def test_object_info_matches_comfyui_for_every_aliased_node(builtin_registry):
    ours = object_info(builtin_registry)
    checked = 0
    for class_type, alias in aliased_classes(builtin_registry):
        if class_type not in REFERENCE:
            continue  # a custom node pack's class (not in ComfyUI's core catalogue)
        ref, mine = REFERENCE[class_type], ours[class_type]
        ignored = set(alias.ignore)
        expected_order = [n for n in ref["input_order"].get("required", []) if n not in ignored]
        assert mine["input_order"]["required"] == expected_order, class_type
        mine_inputs = {**mine["input"]["required"], **mine["input"].get("optional", {})}
        for section in ("required", "optional"):
            for name, spec in ref["input"].get(section, {}).items():
                if name in ignored:
                    continue
                assert name in mine_inputs, f"{class_type}: input {name} missing"
                ref_type, ref_options = spec[0], (spec[1] if len(spec) > 1 else {})
                if ref_type == "COMBO":  # ComfyUI's newer spelling of a choice list (none given: a remote one)
                    ref_type = ref_options.get("options", [])
                my_type, my_options = mine_inputs[name]
                if isinstance(ref_type, list):
                    assert isinstance(my_type, list), f"{class_type}.{name}: expected a choice"
                    missing = set(ref_type) - set(my_type)
                    if name not in FILE_CHOICES and (class_type, name, "choices") not in KNOWN_DIFFERENCES:
                        assert not missing, f"{class_type}.{name}: choices missing {sorted(missing)}"
                else:
                    assert my_type == ref_type, f"{class_type}.{name}: type {my_type} != {ref_type}"
                if "default" in ref_options and (class_type, name, "default") not in KNOWN_DIFFERENCES:
                    if name not in FILE_CHOICES:
                        expected = ref_options["default"]
                        if name == "filename_prefix":
                            expected = expected.replace(*OUR_NAME)
                        assert my_options.get("default") == expected, f"{class_type}.{name} default"
        assert mine["output"] == ref["output"], class_type
        assert mine["output_is_list"] == ref["output_is_list"], class_type
        assert mine["output_node"] == ref["output_node"], class_type
        for flag in ("deprecated", "experimental", "api_node"):  # ComfyUI's frontend hides deprecated nodes
            assert mine[flag] == bool(ref.get(flag)), (class_type, flag)
        checked += 1
    assert checked >= 30


def test_object_info_of_a_packs_class_lists_its_optional_sockets_and_output_names(builtin_registry):
    # essentials' SimpleMath+: INPUT_TYPES required value, optional a / b / c; RETURN_NAMES none (the
    # types); masquerade's Get Image Size returns ("width", "height"); IPAdapter_plus' IPAdapterAdvanced
    # and Inspire's RandomNoise have no RETURN_NAMES: ComfyUI names their outputs by type
    ours = object_info(builtin_registry)
    simple = ours["SimpleMath+"]
    assert list(simple["input"]["required"]) == ["value"] and list(simple["input"]["optional"]) == ["a", "b", "c"]
    assert simple["output_name"] == ["INT", "FLOAT"]
    assert ours["Get Image Size"]["output_name"] == ["width", "height"]
    assert ours["IPAdapterAdvanced"]["output_name"] == ["MODEL"]
    assert ours["RandomNoise //Inspire"]["output_name"] == ["NOISE"]
    assert ours["ttN int"]["output_name"][2] == "text"
    # an old input name mapped beside the current one: the current one is listed
    keyframe = ours["TimestepKeyframe"]["input"]
    optional = keyframe.get("optional", {})
    assert "prev_timestep_kf" in optional and "prev_timestep_keyframe" not in optional


async def test_object_info_routes(start):
    client = await start()
    everything = await (await client.get("/object_info")).json()
    assert "SaveTestImage" in everything
    one = await (await client.get("/object_info/Canvas")).json()
    assert list(one) == ["Canvas"] and one["Canvas"]["input_order"]["required"][0] == "width"
    assert await (await client.get("/object_info/Nope")).json() == {}
    assert await (await client.get("/extensions")).json() == []
    features = await (await client.get("/features")).json()
    assert features["supports_preview_metadata"] is True and features["max_upload_size"] > 0


def test_a_number_for_a_text_widget_is_valid_as_in_comfyui(builtin_registry):
    """ComfyUI's validation turns a number given for a STRING input into its text."""
    from graphflow.validation import validate
    from graphflow.workflow import parse_workflow

    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": 5}}}
    workflow = parse_workflow(prompt, builtin_registry)
    assert validate(workflow, builtin_registry) == []
    assert workflow.nodes["2"].inputs["filename_prefix"] == "5"


async def test_prompt_errors_in_comfyui_shapes(start):
    client = await start()
    # A bad node feeding two outputs: both are its dependent_outputs (ComfyUI lists the outputs a
    # node's errors keep from running).
    bad = {"1": {"class_type": "Canvas", "inputs": {"red": 300}},
           "2": {"class_type": "SaveTestImage", "inputs": {"image": ["1", 0]}},
           "3": {"class_type": "SaveTestImage", "inputs": {"image": ["1", 0], "prefix": "b"}}}
    response = await client.post("/prompt", json={"prompt": bad})
    body = await response.json()
    assert response.status == 400 and body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["error"]["message"] == "Prompt outputs failed validation" and body["error"]["extra_info"] == {}
    assert sorted(body["node_errors"]["1"]["dependent_outputs"]) == ["2", "3"]
    assert body["node_errors"]["1"]["class_type"] == "Canvas"
    # ComfyUI's error types, which clients branch on (value_not_in_list: a missing model file).
    assert [e["type"] for e in body["node_errors"]["1"]["errors"]] == ["value_bigger_than_max"]
    typed = {"1": {"class_type": "Canvas", "inputs": {"red": -1}},
             "2": {"class_type": "SaveTestImage", "inputs": {"image": ["9", 0]}},
             "3": {"class_type": "SaveTestImage", "inputs": {}},
             "4": {"class_type": "SaveTestImage", "inputs": {"image": ["1", 0], "prefix": 5}}}
    errors = (await (await client.post("/prompt", json={"prompt": typed})).json())["node_errors"]
    assert {n: [e["type"] for e in v["errors"]] for n, v in errors.items()} == {
        "1": ["value_smaller_than_min"], "2": ["bad_linked_input"], "3": ["required_input_missing"]}
    # (node 4's number for a text input is valid, as in ComfyUI: it runs.)
    # Partly valid: the valid output runs, the bad node names only the output it blocks.
    partial = {**bad, "4": {"class_type": "Canvas", "inputs": {"red": 10}},
               "3": {"class_type": "SaveTestImage", "inputs": {"image": ["4", 0], "prefix": "b"}}}
    extra = {"extra_pnginfo": {"workflow": {"nodes": [], "links": []}}, "api_key_comfy_org": "secret"}
    body = await (await client.post("/prompt", json={"prompt": partial, "client_id": "me", "extra_data": extra})).json()
    assert body["node_errors"]["1"]["dependent_outputs"] == ["2"] and isinstance(body["number"], int)
    # The client's extra_data comes back in the history item (ComfyUI's frontend reopens the
    # workflow from extra_pnginfo), less the API keys ComfyUI never stores.
    for _ in range(200):
        history = await (await client.get(f"/history/{body['prompt_id']}")).json()
        if history:
            break
        await asyncio.sleep(0.05)
    item = history[body["prompt_id"]]["prompt"]
    assert item[3] == {"extra_pnginfo": {"workflow": {"nodes": [], "links": []}}, "client_id": "me"}
    assert item[4] == ["3"] and set(item[2]) == {"1", "2", "3", "4"}  # the whole prompt, as queued

    response = await client.post("/prompt", json={"prompt": {"1": {"class_type": "Canvas", "inputs": {}}}})
    body = await response.json()
    assert response.status == 400 and body["error"]["type"] == "prompt_no_outputs"
    assert body["error"]["message"] == "Prompt has no outputs" and body["node_errors"] == {}
    assert "no output node" in body["problems"][0]["message"]  # ours, as every refusal carries one
    response = await client.post("/prompt", json={"client_id": "x"})
    body = await response.json()
    assert response.status == 400 and body["error"]["type"] == "no_prompt" and body["node_errors"] == {}
    response = await client.post("/prompt", json={"prompt": {"1": {"inputs": {}}}})
    assert response.status == 400 and (await response.json())["error"]["type"] == "invalid_prompt"


async def test_queue_and_history_in_comfyui_shapes(start):
    client = await start()
    ws = await client.ws_connect("/ws?clientId=c1")
    first = await ws.receive_json()
    assert first == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "c1"}}
    held = await submit(client, image_workflow("a", hold=True), client_id="c1")
    waiting = await submit(client, image_workflow("b"), client_id="c1")
    await receive_until(ws, lambda m: m["type"] == "executing" and m["data"]["node"] == "2")
    again = await client.ws_connect("/ws?clientId=c1")  # a reconnect is told the node that runs
    assert (await again.receive_json())["type"] == "status"
    assert await again.receive_json() == {"type": "executing", "data": {"node": "2", "display_node": "2",
                                                                         "prompt_id": held["run_id"]}}
    await again.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
    flags = await again.receive_json()
    assert flags["type"] == "feature_flags" and flags["data"]["supports_preview_metadata"] is True
    await again.close()
    queue = await (await client.get("/queue")).json()
    assert [item[1] for item in queue["queue_running"]] == [held["run_id"]]
    assert [item[1] for item in queue["queue_pending"]] == [waiting["run_id"]]
    number, prompt_id, prompt, extra_data, outputs = queue["queue_pending"][0]
    assert number == waiting["number"] and extra_data == {"client_id": "c1"} and outputs == ["3"]
    assert prompt["3"]["class_type"] == "SaveTestImage" and prompt["3"]["inputs"]["image"] == ["1", 0]
    assert (await (await client.get("/prompt")).json())["exec_info"]["queue_remaining"] == 2

    # `front` queues ahead, and ComfyUI numbers such a prompt negative (clients sort by number).
    graph = {"1": {"class_type": "Canvas", "inputs": {"red": 3}}, "2": {"class_type": "SaveTestImage", "inputs": {"image": ["1", 0]}}}
    urgent = await (await client.post("/prompt", json={"prompt": graph, "client_id": "c1", "front": True})).json()
    assert urgent["number"] < 0
    queue = await (await client.get("/queue")).json()
    assert [item[:2] for item in queue["queue_pending"]] == [[urgent["number"], urgent["prompt_id"]],
                                                             [waiting["number"], waiting["run_id"]]]
    assert (await client.post("/queue", json={"delete": [urgent["prompt_id"]]})).status == 200
    assert (await client.post("/queue", json={"delete": [waiting["run_id"]]})).status == 200
    assert (await (await client.get("/queue")).json())["queue_pending"] == []
    Hold.gate.set()
    await receive_until(ws, lambda m: m["type"] == "executing" and m["data"]["node"] is None
                        and m["data"]["prompt_id"] == held["run_id"])
    history = await (await client.get("/history")).json()
    assert list(history) == [held["run_id"]]
    entry = history[held["run_id"]]
    assert entry["status"]["completed"] and entry["outputs"]["3"]["images"][0]["filename"].startswith("a")
    assert entry["prompt"][:2] == [held["number"], held["run_id"]] and entry["prompt"][3:] == [{"client_id": "c1"}, ["3"]]
    assert entry["prompt"][2]["3"]["class_type"] == "SaveTestImage"
    assert entry["meta"] == {"3": {"node_id": "3", "display_node": "3", "parent_node": None, "real_node_id": "3"}}
    # status.messages: ComfyUI's [event, data] pairs, which clients read the run's duration from.
    events = [event for event, _ in entry["status"]["messages"]]
    assert events == ["execution_start", "execution_cached", "execution_success"]
    start_ms, end_ms = (data["timestamp"] for event, data in entry["status"]["messages"] if event != "execution_cached")
    assert 0 <= end_ms - start_ms < 60_000 and all(d["prompt_id"] == held["run_id"] for _, d in entry["status"]["messages"])
    third = await submit(client, image_workflow("c"), client_id="c1")
    await receive_until(ws, lambda m: m["type"] == "executing" and m["data"]["node"] is None
                        and m["data"]["prompt_id"] == third["run_id"])
    assert list(await (await client.get("/history?max_items=1")).json()) == [third["run_id"]]
    assert list(await (await client.get("/history?offset=0&max_items=1")).json()) == [held["run_id"]]
    assert list(await (await client.get("/history?offset=1")).json()) == [third["run_id"]]
    assert await (await client.get("/history?offset=5")).json() == {}
    assert (await client.post("/history", json={"delete": [held["run_id"]]})).status == 200
    assert list(await (await client.get("/history")).json()) == [third["run_id"]]
    assert (await client.post("/history", json={"clear": True})).status == 200
    assert await (await client.get("/history")).json() == {}
    await ws.close()


async def test_comfyui_clients_hear_only_their_own_prompts_and_ours_hear_all(start):
    client = await start()
    mine = await client.ws_connect("/ws?clientId=mine")
    other = await client.ws_connect("/ws?clientId=other")
    ours = await client.ws_connect("/ws?client_id=editor")
    for ws in (mine, other, ours):
        await ws.receive_json()
    run = await submit(client, image_workflow("x"), client_id="mine")
    got = await receive_until(mine, lambda m: m["type"] == "executing" and m["data"]["node"] is None)
    assert [m["type"] for m in got if m["type"] != "status"] == [
        "execution_start", "execution_cached", "progress_state", "executing", *["progress_state", "progress"] * 3,
        "progress_state", "progress_state", "executing", "executed", "progress_state", "execution_success",
        "executing"]
    assert got[-1]["data"] == {"node": None, "prompt_id": run["run_id"]}
    assert not any(m["type"] == "frame" for m in got), "no preview frames unless asked for"
    theirs = await receive_until(ours, lambda m: m["type"] == "run_finished")
    assert any(m["type"] == "frame" for m in theirs), "our own clients keep our messages and previews"
    await asyncio.sleep(0.1)
    leftover = []
    while True:
        try:
            leftover.append((await other.receive_json(timeout=0.2))["type"])
        except asyncio.TimeoutError:
            break
    assert set(leftover) <= {"status"}, f"another client's prompt leaked: {leftover}"
    for ws in (mine, other, ours):
        await ws.close()


async def test_execution_error_and_interrupt_messages(start):
    client = await start()
    ws = await client.ws_connect("/ws?clientId=c2")
    await ws.receive_json()
    failed = await submit(client, image_workflow("f", fail=True), client_id="c2")
    got = await receive_until(ws, lambda m: m["type"] == "executing" and m["data"]["node"] is None)
    error = next(m["data"] for m in got if m["type"] == "execution_error")
    assert error["prompt_id"] == failed["run_id"] and error["node_id"] == "3" and error["node_type"] == "Boom"
    assert error["exception_message"] and isinstance(error["traceback"], list)
    assert "execution_success" not in [m["type"] for m in got]
    assert error["executed"] == ["1"] and error["current_outputs"] == []
    assert error["exception_type"] == "graphflow.context.NodeInputError"  # module-qualified, as ComfyUI's
    history = (await (await client.get(f"/history/{failed['run_id']}")).json())[failed["run_id"]]
    assert history["status"]["status_str"] == "error" and history["status"]["completed"] is False
    event, recorded = history["status"]["messages"][-1]
    assert event == "execution_error" and recorded["node_id"] == "3" and recorded["executed"] == ["1"]
    assert recorded["exception_message"] == error["exception_message"]

    held = await submit(client, image_workflow("h", red=9, hold=True), client_id="c2")
    before = await receive_until(ws, lambda m: m["type"] == "executing" and m["data"]["node"] == "2")
    assert (await client.post("/interrupt", json={"prompt_id": held["run_id"]})).status == 200
    got = await receive_until(ws, lambda m: m["type"] == "executing" and m["data"]["node"] is None)
    stopped = next(m["data"] for m in got if m["type"] == "execution_interrupted")
    assert stopped["prompt_id"] == held["run_id"] and stopped["node_id"] == "2" and stopped["executed"] == ["1"]
    last = [m["data"]["nodes"] for m in before + got if m["type"] == "progress_state"][-1]
    assert {n: e["state"] for n, e in last.items()} == {"1": "finished", "2": "running"}, "as ComfyUI leaves it"
    history = (await (await client.get(f"/history/{held['run_id']}")).json())[held["run_id"]]
    assert history["status"]["messages"][-1][0] == "execution_interrupted"
    await ws.close()


async def test_system_stats_embeddings_models_and_free(start, home):
    client = await start()
    stats = await (await client.get("/system_stats")).json()
    assert stats["system"]["ram_total"] > 0 and stats["system"]["python_version"]
    assert stats["system"]["os"] in ("posix", "nt")  # ComfyUI's os.name, not sys.platform
    # a version clients can compare (the ComfyUI interface followed, the catalogue's); ours beside it
    assert stats["system"]["comfyui_version"] == "0.3.64"
    assert stats["system"]["graphflow_version"] == importlib.metadata.version("graphflow")
    assert stats["devices"][0]["type"] in ("cpu", "cuda", "mps") and "vram_free" in stats["devices"][0]
    (home / "models" / "embeddings").mkdir(parents=True)
    (home / "models" / "embeddings" / "bad-hands.safetensors").write_bytes(b"x")
    assert await (await client.get("/embeddings")).json() == ["bad-hands"]
    folders_listed = await (await client.get("/models")).json()
    assert "checkpoints" in folders_listed and "loras" in folders_listed
    big = home / "models" / "checkpoints" / "big"  # a sharded set: listed as its index alone
    big.mkdir(parents=True)
    for i in (1, 2):
        (big / f"m-0000{i}-of-00002.safetensors").write_bytes(b"x")
    (big / "m.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "m-00001-of-00002.safetensors", "b": "m-00002-of-00002.safetensors"}}))
    checkpoints = await (await client.get("/models/checkpoints")).json()
    assert "graphflow-demo.safetensors" in checkpoints
    assert [n for n in checkpoints if n.startswith("big/")] == ["big/m.safetensors.index.json"]
    assert (await client.get("/models/nowhere")).status == 404
    assert (await client.post("/free", json={"unload_models": True, "free_memory": True})).status == 200


async def test_models_route_lists_a_kinds_own_extensions(start, home):
    """models/inpaint holds Fooocus' .patch files beside .pth / .safetensors, as comfyui-inpaint-nodes
    registers it: the route offers what the pack's loaders offer (graphflow.folders.KIND_EXTENSIONS)."""
    from nodes.pack_nodes_inpaint import _inpaint_files
    client = await start()
    folder = home / "models" / "inpaint"
    folder.mkdir(parents=True)
    for name in ("inpaint_v26.fooocus.patch", "fooocus_inpaint_head.pth", "big-lama.pt", "lama.safetensors",
                 "notes.txt", "model.ckpt"):
        (folder / name).write_bytes(b"x")
    listed = await (await client.get("/models/inpaint")).json()
    assert listed == ["big-lama.pt", "fooocus_inpaint_head.pth", "inpaint_v26.fooocus.patch", "lama.safetensors"]
    assert _inpaint_files() == listed  # the loaders' choices
    (home / "models" / "loras").mkdir(parents=True, exist_ok=True)
    (home / "models" / "loras" / "x.patch").write_bytes(b"x")
    assert "x.patch" not in await (await client.get("/models/loras")).json()  # other kinds: MODEL_EXTENSIONS


async def test_view_preview_and_channel(start, home):
    client = await start()
    (home / "outputs").mkdir(parents=True, exist_ok=True)
    image = Image.new("RGBA", (20, 10), (200, 10, 30, 128))
    image.save(home / "outputs" / "pic.png")
    response = await client.get("/view?filename=pic.png&type=output&preview=webp;50")
    assert response.headers["Content-Type"] == "image/webp"
    assert Image.open(io.BytesIO(await response.read())).size == (20, 10)
    response = await client.get("/view?filename=pic.png&type=output&preview=jpeg;80")
    assert Image.open(io.BytesIO(await response.read())).format == "JPEG"
    rgb = Image.open(io.BytesIO(await (await client.get("/view?filename=pic.png&channel=rgb")).read()))
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (200, 10, 30)
    alpha = Image.open(io.BytesIO(await (await client.get("/view?filename=pic.png&channel=a")).read()))
    assert alpha.getpixel((0, 0)) == (0, 0, 0, 128)
    # as ComfyUI reads them: another channel is the file as it is, another preview format webp
    raw = await client.get("/view?filename=pic.png&channel=xyz")
    assert raw.status == 200 and await raw.read() == (home / "outputs" / "pic.png").read_bytes()
    response = await client.get("/view?filename=pic.png&preview=gif")
    assert response.status == 200 and response.headers["Content-Type"] == "image/webp"


async def test_upload_image_answers_in_comfyui_shape(start):
    import aiohttp

    client = await start()
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, format="PNG")
    form = aiohttp.FormData()
    form.add_field("image", buffer.getvalue(), filename="up.png", content_type="image/png")
    form.add_field("subfolder", "sub")
    body = await (await client.post("/upload/image", data=form)).json()
    assert {k: body[k] for k in ("name", "subfolder", "type")} == {"name": "up.png", "subfolder": "sub", "type": "input"}


CANVAS_GRAPH = {"1": {"class_type": "Canvas", "inputs": {"red": 200, "steps": 4}},
                "3": {"class_type": "SaveTestImage", "inputs": {"image": ["1", 0], "prefix": "flags"}}}


async def comfy_messages_until_done(ws, prompt_id) -> tuple[list[dict], list[bytes]]:
    """A ComfyUI client's reading: JSON messages and raw binary frames, up to `executing` node null."""
    messages, frames = [], []
    while True:
        msg = await asyncio.wait_for(ws.receive(), 30)
        if msg.type == WSMsgType.BINARY:
            frames.append(msg.data)
            continue
        assert msg.type == WSMsgType.TEXT, f"websocket ended: {msg.type}"
        messages.append(json.loads(msg.data))
        data = messages[-1]["data"]
        if messages[-1]["type"] == "executing" and data["node"] is None and data["prompt_id"] == prompt_id:
            return messages, frames


async def test_preview_frames_follow_each_clients_feature_flags(start):
    client = await start()
    meta = await client.ws_connect("/ws?clientId=meta")  # no &previews=1: asking for metadata is enough
    plain = await client.ws_connect("/ws?clientId=plain&previews=1")
    quiet = await client.ws_connect("/ws?clientId=quiet")
    for ws in (meta, plain, quiet):
        assert (await ws.receive_json())["type"] == "status"
    await meta.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
    answer = await meta.receive_json()
    assert answer["type"] == "feature_flags" and answer["data"]["supports_preview_metadata"] is True
    # Only a client's first message states its flags (ComfyUI's rule): `plain` asks too late.
    await plain.send_json({"type": "ping"})
    await plain.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
    # A prompt without client_id goes to every ComfyUI client; each gets the framing it asked for.
    queued = await (await client.post("/prompt", json={"prompt": CANVAS_GRAPH})).json()
    prompt_id = queued["prompt_id"]
    got = {name: await comfy_messages_until_done(ws, prompt_id) for name, ws in
           (("meta", meta), ("plain", plain), ("quiet", quiet))}
    assert not [m for m in got["plain"][0] if m["type"] == "feature_flags"], "a late feature_flags is not answered"
    assert got["quiet"][1] == [], "no previews unless asked for"

    frames = got["meta"][1]
    assert len(frames) == 4, "one preview per Canvas step"
    shades = []
    for frame in frames:
        kind, length = struct.unpack_from(">II", frame)
        assert kind == 4, "PREVIEW_IMAGE_WITH_METADATA"
        metadata = json.loads(frame[8:8 + length])
        assert metadata == {"node_id": "1", "prompt_id": prompt_id, "display_node_id": "1", "parent_node_id": None,
                            "real_node_id": "1", "image_type": "image/jpeg"}
        image = Image.open(io.BytesIO(frame[8 + length:]))
        assert image.format == "JPEG"
        shades.append(image.convert("RGB").getpixel((5, 5))[0])
    assert shades == sorted(shades) and abs(shades[-1] - 200) <= 3, f"the previews are Canvas's steps: {shades}"

    frames = got["plain"][1]
    assert len(frames) == 4 and all(f[:8] == b"\0\0\0\x01\0\0\0\x01" for f in frames), "type 1, JPEG"
    assert Image.open(io.BytesIO(frames[-1][8:])).convert("RGB").getpixel((5, 5))[0] == shades[-1]
    for ws in (meta, plain, quiet):
        await ws.close()


async def test_progress_state_tracks_nodes_from_pending_to_finished(start):
    client = await start()
    ws = await client.ws_connect("/ws?clientId=states")
    await ws.receive_json()
    queued = await (await client.post("/prompt", json={"prompt": CANVAS_GRAPH, "client_id": "states"})).json()
    messages, _ = await comfy_messages_until_done(ws, queued["prompt_id"])
    states = [m["data"] for m in messages if m["type"] == "progress_state"]
    assert all(s["prompt_id"] == queued["prompt_id"] for s in states)
    seen = [{node: (e["state"], e["value"], e["max"]) for node, e in s["nodes"].items()} for s in states]
    # Pending nodes are left out: the saver appears only once it runs, Canvas first at 0 of 1.
    assert seen[0] == {"1": ("running", 0, 1)}
    assert [s["1"] for s in seen[1:5]] == [("running", v, 4) for v in (1, 2, 3, 4)]
    assert all("3" not in s for s in seen[:5])
    assert seen[5] == {"1": ("finished", 4, 4)}
    assert seen[6] == {"1": ("finished", 4, 4), "3": ("running", 0, 1)}
    assert seen[-1] == {"1": ("finished", 4, 4), "3": ("finished", 1, 1)} and len(seen) == 8
    entry = states[-1]["nodes"]["3"]
    assert entry == {"value": 1.0, "max": 1.0, "state": "finished", "node_id": "3", "prompt_id": queued["prompt_id"],
                     "display_node_id": "3", "parent_node_id": None, "real_node_id": "3"}
    kinds = [m["type"] for m in messages]
    # ComfyUI's order: the running state before `executing`, the finished one after `executed`.
    assert kinds[kinds.index("executing") - 1] == "progress_state"
    assert kinds[kinds.index("executed") + 1] == "progress_state"

    # Run again: Canvas is answered by the cache and shows as finished without running.
    again = await (await client.post("/prompt", json={"prompt": CANVAS_GRAPH, "client_id": "states"})).json()
    messages, _ = await comfy_messages_until_done(ws, again["prompt_id"])
    cached = next(m["data"] for m in messages if m["type"] == "execution_cached")
    assert cached["nodes"] == ["1"]
    seen = [{node: (e["state"], e["value"], e["max"]) for node, e in m["data"]["nodes"].items()}
            for m in messages if m["type"] == "progress_state"]
    assert seen[0] == {"1": ("finished", 1, 1)}, "a cached node goes straight to finished"
    assert seen[-1] == {"1": ("finished", 1, 1), "3": ("finished", 1, 1)}
    assert "1" not in [m["data"]["node"] for m in messages if m["type"] == "executing"]
    await ws.close()


async def test_a_class_nobody_has_refuses_the_whole_prompt_as_in_comfyui(start):
    client = await start()
    # ComfyUI checks every node's class before anything else: one it lacks refuses the whole
    # prompt, even where other outputs are valid, with the message clients read to tell a missing
    # custom node; the first such node in the prompt's order is named.
    prompt = {"1": {"class_type": "Canvas", "inputs": {"red": 10}},
              "2": {"class_type": "SaveTestImage", "inputs": {"image": ["1", 0]}},
              "7": {"class_type": "Power Lora Loader (rgthree)X", "inputs": {}},
              "5": {"class_type": "WeirdNode", "inputs": {"x": 1}}}
    response = await client.post("/prompt", json={"prompt": prompt})
    body = await response.json()
    assert response.status == 400 and body["node_errors"] == {}
    assert body["error"] == {"type": "invalid_prompt", "extra_info": {}, "details": "Node ID '#7'",
                             "message": "Cannot execute because node Power Lora Loader (rgthree)X does not exist."}
    assert [p["node_id"] for p in body["problems"]] == ["7", "5"]
    assert "rgthree-comfy" in body["problems"][0]["message"]  # ours say which pack it comes from
    # Nothing was queued.
    assert (await (await client.get("/queue")).json())["queue_pending"] == []
    # A node without a class: ComfyUI's own message.
    response = await client.post("/prompt", json={"prompt": {"1": {"class_type": "Canvas", "inputs": {}},
                                                              "3": {"inputs": {}}}})
    body = await response.json()
    assert response.status == 400 and body["error"]["type"] == "invalid_prompt"
    assert body["error"]["message"] == "Cannot execute because a node is missing the class_type property."
    assert body["error"]["details"] == "Node ID '#3'" and body["node_errors"] == {}


def test_object_info_marks_forceinput_as_comfyui_does_for_core_classes(builtin_registry):
    """A ComfyUI editor shows an input without forceInput as a widget: ours mark the same core
    inputs as ComfyUI's catalogue (every text / number socket here is one), but for the known
    difference of a link-only FLOATS input."""
    ours = object_info(builtin_registry)
    differ = []
    for class_type, alias in aliased_classes(builtin_registry):
        if class_type not in REFERENCE:
            continue
        ref, mine = REFERENCE[class_type]["input"], ours[class_type]["input"]
        mine = {**mine["required"], **mine.get("optional", {})}
        for section in ("required", "optional"):
            for name, spec in ref.get(section, {}).items():
                if name in alias.ignore or name not in mine:
                    continue
                theirs = bool(len(spec) > 1 and spec[1].get("forceInput"))
                if theirs != bool(mine[name][1].get("forceInput")):
                    differ.append((class_type, name, theirs))
    assert differ == [("CreateHookKeyframesFromFloats", "floats_strength", True)]
