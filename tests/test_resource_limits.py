"""Resource bombs are refused before a run starts (sizes followed along the links, memory against
this machine, the server's policy limits), and a run over its time limit is stopped like an interrupt."""

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest
import torch

import server_nodes
from graphflow import cli
from graphflow import folders as folders_module
from graphflow.api import IMAGE, Estimate, Int, Node, Size
from graphflow.executor import Executor
from graphflow.comfy_format import export_api
from graphflow.registry import Registry, default_registry
from graphflow.resource_limits import SERVER_LIMITS, RunLimits, check, default_estimate
from graphflow.server.app import SERVER, create_app
from graphflow.validation import plan_workflow, validate
from graphflow.workflow import parse_workflow

GB = 2**30
TXT2IMG = json.loads((Path(__file__).resolve().parents[1] / "workflows" / "txt2img.json").read_text())


def txt2img(**latent) -> dict:
    workflow = json.loads(json.dumps(TXT2IMG))
    node = next(n for n in workflow["nodes"].values() if n["type"] == "EmptyLatent")
    node["inputs"].update(latent)
    return workflow


def problems(registry, workflow, limits=None):
    return validate(parse_workflow(workflow), registry, limits=limits)


def test_the_issue_bomb_is_refused_at_its_source(builtin_registry):
    found = problems(builtin_registry, txt2img(width=16384, height=16384, batch_size=4096))
    assert found, "16384x16384 x 4096 latents (about 274 GB) passed validation"
    first = found[0]
    assert (first.node_id, first.node_type, first.input) == ("4", "EmptyLatent", "batch_size")
    assert "4096 × 16384×16384" in first.message and "this machine has" in first.message
    assert all("Error" not in p.message for p in found)


def test_sizes_follow_the_links_and_memory_is_checked_where_it_is_needed(builtin_registry):
    # 1 x 2048x2048 is small, but 64 of them upscaled to 8192x8192 images need 64*8192*8192*12 B = 48 GB.
    workflow = txt2img(width=2048, height=2048, batch_size=64)
    workflow["nodes"]["8"] = {"type": "ImageScale", "inputs": {"image": ["6", 0], "width": 8192, "height": 0}}
    workflow["nodes"]["7"]["inputs"]["images"] = ["8", 0]
    limits = RunLimits(ram_bytes=40 * GB, device_bytes=10**15)
    found = problems(builtin_registry, workflow, limits)
    assert [(p.node_id, p.input) for p in found] == [("8", "image")], found
    assert "64 × 8192×8192" in found[0].message and "40.0 GB" in found[0].message
    assert "set by node" not in found[0].message  # the upscale sets this size itself
    assert problems(builtin_registry, workflow, RunLimits(ram_bytes=80 * GB, device_bytes=10**15)) == []


def test_working_memory_on_the_device(builtin_registry):
    # The sampler's UNet activations must fit on the device, whatever the RAM.
    workflow = txt2img(width=4096, height=4096, batch_size=16)
    found = problems(builtin_registry, workflow, RunLimits(ram_bytes=10**15, device_bytes=4 * GB))
    assert [(p.node_id, p.node_type, p.input) for p in found] == [("5", "KSampler", "latent_image")]
    assert "working memory on device" in found[0].message and "set by node 4 (EmptyLatent)" in found[0].message


def test_server_policy_limits_name_the_input(builtin_registry):
    workflow = txt2img(width=16384, height=16384, batch_size=100)
    workflow["nodes"]["5"]["inputs"]["steps"] = 5000
    limits = RunLimits(max_pixels=8192 * 8192, max_batch=64, max_steps=1000, ram_bytes=10**18, device_bytes=10**18)
    found = {(p.node_id, p.input): p.message for p in problems(builtin_registry, workflow, limits)}
    assert set(found) == {("4", "width"), ("4", "batch_size"), ("5", "steps")}
    assert "268.4 megapixels" in found[("4", "width")] and "(64)" in found[("4", "batch_size")]
    assert "5000 steps" in found[("5", "steps")]
    assert problems(builtin_registry, txt2img(), limits) == []  # the example itself is fine


# Nodes with a width / height / batch_size widget and a latent / image / mask output whose widgets
# are not the output's size, each with why (the size comes from the input, or is bounded by it).
NOT_OUTPUT_SIZES = {
    "LatentPerturb": "width / height of the perturbed patch inside the input latent",
    "VAESensitivityMap": "batch_size: decodes per batch",
    "ImageOverlay": "the overlay's size, pasted inside the base image",
    "ImageColorMatch": "batch_size: images matched per batch",
    "ImageCropPlus": "a crop: no larger than the input",
    "UltimateSDUpscale": "batch_size: tiles sampled per batch",
    "UltimateSDUpscaleCustomSample": "batch_size: tiles sampled per batch",
    "UltimateSDUpscaleNoUpscale": "batch_size: tiles sampled per batch",
    "FillKsamplerPlus": "batch_size: slices sampled per batch",
    "FillKsamplerBasic": "batch_size: slices sampled per batch",
    "FillUpscaleModel": "batch_size: images upscaled per batch; the size is the model's scale (checked as it runs)",
    "LayerUtilityImageBatchToList": "batch_size: images per list item, cut from the input batch",
}


def test_nodes_that_make_sized_outputs_from_numbers_declare_their_size(builtin_registry):
    """A node whose width / height / batch_size widgets set its latent, image or mask output must
    hint them (or estimate; a node whose width / height are of something inside its output hints
    the output's own size widgets), else a server's max_pixels / max_batch never see what it makes (FLUX's
    EmptySD3LatentImage and the video latents went unchecked)."""
    from graphflow.node import Node as BaseNode

    unsized = []
    for cls in builtin_registry:
        if not {o.type for o in cls.output_specs} & {"LATENT", "IMAGE", "MASK"}:
            continue
        sizes = [n for n in ("width", "height", "batch_size")
                 if n in cls.input_specs and cls.input_specs[n].widget is not None]
        hinted = [n for n, s in cls.input_specs.items()
                  if s.widget is not None and s.widget.hints.get("resource") in ("width", "height", "batch", "frames")]
        if sizes and not hinted and cls.estimate.__func__ is BaseNode.estimate.__func__:
            unsized.append(cls.node_type)
    assert sorted(unsized) == sorted(NOT_OUTPUT_SIZES)


@pytest.mark.parametrize("node_type, extra", [("EmptySD3Latent", {}), ("EmptyHunyuanLatentVideo", {"length": 25}),
                                              ("EmptyMochiLatentVideo", {"length": 25}),
                                              ("EmptyLTXVLatentVideo", {"length": 25})])
def test_flow_and_video_latents_are_held_to_the_server_policy(builtin_registry, node_type, extra):
    limits = RunLimits(max_pixels=8192 * 8192, max_batch=64, ram_bytes=10**18, device_bytes=10**18)
    workflow = {"nodes": {"1": {"type": node_type, "inputs": {"width": 16384, "height": 16384, "batch_size": 100,
                                                              **extra}},
                          "2": {"type": "SaveLatent", "inputs": {"samples": ["1", 0]}}}}
    found = {(p.node_id, p.input) for p in problems(builtin_registry, workflow, limits)}
    assert found == {("1", "width"), ("1", "batch_size")}
    small = {"nodes": {**workflow["nodes"], "1": {"type": node_type, "inputs": {"width": 512, "height": 512, **extra}}}}
    assert problems(builtin_registry, small, limits) == []


@pytest.mark.parametrize("node_type", ["EmptyHunyuanLatentVideo", "EmptyLTXVLatentVideo", "EmptyMochiLatentVideo",
                                       "EmptyCosmosLatentVideo"])
def test_video_latents_count_their_frames_in_memory_not_against_the_batch_limit(builtin_registry, node_type):
    """A video latent's length is held in memory (its decoded frames: a decode gives that many
    images), so 1280×720 × 1001 frames decoded (11 GB of float32 RGB) is refused on an 8 GB machine
    where 1 frame of it passes (it was counted as one frame); the server's max_batch counts
    batch_size alone (97 frames pass at 64)."""
    def video(length, batch=1):
        return {"nodes": {"1": {"type": node_type, "inputs": {"width": 1280, "height": 720, "length": length,
                                                              "batch_size": batch}},
                          "2": {"type": "VAEDecode", "inputs": {"samples": ["1", 0], "vae": ["3", 0]}},
                          "3": {"type": "LoadVAE", "inputs": {"vae_name": "pixel_space"}},
                          "4": {"type": "SaveImage", "inputs": {"images": ["2", 0]}}}}
    limits = RunLimits(max_batch=64, ram_bytes=8 * GB, device_bytes=10**18)
    lengths = {"EmptyMochiLatentVideo": (7, 1003), "EmptyLTXVLatentVideo": (9, 1001)}.get(node_type, (1, 1001))
    assert problems(builtin_registry, video(lengths[0]), limits) == []
    frames = lengths[1]
    assert 1280 * 720 * frames * 12 > 10 * GB  # the decoded frames' float32 RGB bytes
    found = problems(builtin_registry, video(frames), limits)
    assert found and found[0].node_id in ("1", "2") and f"{frames} frames" in found[0].message, found
    assert problems(builtin_registry, video(97), RunLimits(max_batch=64, ram_bytes=10**18, device_bytes=10**18)) == []
    plan, _ = plan_workflow(parse_workflow(video(97, batch=2)), builtin_registry)
    size = plan.nodes["2"].input_sizes["samples"]
    assert (size.batch, size.frames, size.height, size.width) == (2, 97, 720, 1280)


def test_a_video_after_its_sampler_keeps_its_frames_to_the_decode(builtin_registry):
    """The nodes between a video's sampler and its decode in ComfyUI's templates keep its frames
    (a noise mask, a latent upscale, LTX-Video's guide crop; a trim drops at most 8 decoded frames a
    latent frame), so the decode is still counted; a linked length on a video node whose start
    image has the video's picture size is still checked (its frames are its own)."""
    from graphflow.resource_limits import linked_value_problem

    reg = builtin_registry
    video = Size(1, 720, 1280, 1001)
    for node_type, widgets, inputs in (("SetLatentNoiseMask", {}, {"samples": video, "mask": Size(1, 720, 1280)}),
                                       ("LTXVCropGuides", {}, {"latent": video}),
                                       ("VHSVAEDecodeBatched", {"per_batch": 16}, {"samples": video})):
        cls = reg.get(node_type)
        got = (cls.estimate(widgets, inputs) or default_estimate(cls, widgets, inputs)).size
        assert got.frames == 1001, node_type
    assert reg.get("LatentUpscaleBy").estimate({"scale_by": 1.5}, {"samples": video}).size == Size(1, 1080, 1920, 1001)
    assert reg.get("TrimVideoLatent").estimate({"trim_amount": 2}, {"samples": video}).size.frames == 1001 - 16
    chain = {"nodes": {
        "1": {"type": "EmptyHunyuanLatentVideo", "inputs": {"width": 1280, "height": 720, "length": 1001}},
        "2": {"type": "TrimVideoLatent", "inputs": {"samples": ["1", 0], "trim_amount": 2}},
        "3": {"type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["4", 0]}},
        "4": {"type": "LoadVAE", "inputs": {"vae_name": "pixel_space"}},
        "5": {"type": "SaveImage", "inputs": {"images": ["3", 0]}}}}
    found = problems(reg, chain, RunLimits(ram_bytes=8 * GB, device_bytes=10**18))
    assert [(p.node_id, p.input) for p in found][:1] == [("3", "samples")] and "985 frames" in found[0].message

    class Planned:  # the plan's node: WanImageToVideo, its length linked, its start image 832x480
        cls, id, links = reg.get("WanImageToVideo"), "5", {"length": ("9", 0)}
        input_sizes = {"start_image": Size(1, 480, 832)}
    values = {"width": 832, "height": 480, "length": 16381, "batch_size": 1}
    problem = linked_value_problem(Planned, values, RunLimits(ram_bytes=GB // 2, device_bytes=10**18))
    assert problem is not None and problem.input == "length" and "16381 frames" in problem.message


def test_video_frames_are_a_lower_bound(builtin_registry):
    """What a video's frames count for stays a lower bound: only a decode (keeps_frames) passes them
    on (a node picking frames gives fewer), a length counts the frames its latent decodes to, a video
    node with linked sizes is unsized (its image input is a start frame, not its size), SVD's batch is
    one video whatever its init image's batch, and sampling memory leaves frames out (video models
    pack 16 x 16 x 4 to 32 x 32 x 8 decoded pixel-frames a token)."""
    from graphflow.resource_limits import UNET_BYTES_PER_PIXEL, sampling_memory

    reg = builtin_registry
    wan = reg.get("WanImageToVideo")
    typed = {"width": 832, "height": 480, "length": 81, "batch_size": 1}
    assert default_estimate(wan, typed, {"start_image": Size(1, 3000, 4000)}).size == Size(1, 480, 832, 81)
    linked = {"length": 81, "batch_size": 1}  # width / height linked: not known before the run
    assert default_estimate(wan, linked, {"start_image": Size(1, 3000, 4000)}).size is None
    for node_type, length, decoded in (("EmptyHunyuanLatentVideo", 4, 1), ("EmptyHunyuanLatentVideo", 83, 81),
                                       ("EmptyLTXVLatentVideo", 100, 97), ("EmptyMochiLatentVideo", 12, 7),
                                       ("EmptyCosmosLatentVideo", 8, 1)):
        got = default_estimate(reg.get(node_type), {"width": 64, "height": 64, "length": length}, {}).size
        assert got.frames == decoded, (node_type, length, got)
    svd = reg.get("SVDImageToVideo")
    got = default_estimate(svd, {"width": 1024, "height": 576, "video_frames": 14}, {"init_image": Size(4, 576, 1024)})
    assert got.size == Size(1, 576, 1024, 14)
    video = Size(1, 480, 832, 81)
    assert default_estimate(reg.get("VAEDecode"), {}, {"samples": video}).size == video
    picked = default_estimate(reg.get("ImageFromBatchPlus"), {"start": 80, "length": 1}, {"image": video})
    assert picked.size.frames == 1
    assert sampling_memory(Size(1, 704, 1216, 257)) == int(UNET_BYTES_PER_PIXEL * 704 * 1216)
    # the last frame picked and upscaled to 4K: 100 MB, not the 8 GB of 81 such frames (a 6 GB machine)
    workflow = {"nodes": {
        "1": {"type": "EmptyHunyuanLatentVideo", "inputs": {"width": 832, "height": 480, "length": 81}},
        "2": {"type": "VAEDecode", "inputs": {"samples": ["1", 0], "vae": ["3", 0]}},
        "3": {"type": "LoadVAE", "inputs": {"vae_name": "pixel_space"}},
        "4": {"type": "ImageFromBatchPlus", "inputs": {"image": ["2", 0], "start": 80, "length": 1}},
        "5": {"type": "ImageScale", "inputs": {"image": ["4", 0], "width": 3840, "height": 2160}},
        "6": {"type": "SaveImage", "inputs": {"images": ["5", 0]}}}}
    assert problems(reg, workflow, RunLimits(ram_bytes=6 * GB, device_bytes=10**18)) == []


@pytest.mark.parametrize("node_type, widgets", [
    ("ImageResizeKJ", {"width": 100, "height": 0, "keep_proportion": False, "divisible_by": 8}),
    ("ImageResizeKJ", {"width": 90, "height": 40, "keep_proportion": True, "divisible_by": 2}),
    ("ImageResizePlus", {"width": 90, "height": 40, "method": "pad", "condition": "always", "multiple_of": 0}),
    ("ImageResizePlus", {"width": 90, "height": 40, "method": "fill / crop", "condition": "always", "multiple_of": 8}),
    ("ImageResizePlus", {"width": 0, "height": 100, "method": "keep proportion", "condition": "always",
                         "multiple_of": 0}),
    ("ImageResizePlus", {"width": 20, "height": 20, "method": "stretch", "condition": "upscale if smaller",
                         "multiple_of": 0}),
])
def test_resize_estimates_are_the_size_the_node_makes(builtin_registry, node_type, widgets):
    """The pack resizes' estimates follow their size rules (a server's max_pixels sees an upscale)."""
    from tests.test_nodes_image_mask import call

    image = torch.rand(2, 30, 50, 3)
    out = call(builtin_registry, node_type, image=image, **widgets)[0]
    got = builtin_registry.get(node_type).estimate(widgets, {"image": Size(2, 30, 50)}).size
    assert (got.batch, got.height, got.width) == tuple(out.shape[:3])


@pytest.mark.parametrize("node_type", ["ImageResizeKJ", "ImageResizePlus"])
def test_a_pack_resize_to_a_huge_size_is_held_to_the_server_policy(builtin_registry, node_type):
    workflow = {"nodes": {"1": {"type": "EmptyImage", "inputs": {"width": 64, "height": 64}},
                          "2": {"type": node_type, "inputs": {"image": ["1", 0], "width": 16384, "height": 16384}},
                          "3": {"type": "PreviewImage", "inputs": {"images": ["2", 0]}}}}
    limits = RunLimits(max_pixels=8192 * 8192, ram_bytes=10**18, device_bytes=10**18)
    assert {(p.node_id, p.input) for p in problems(builtin_registry, workflow, limits)} == {("2", "width")}


def test_a_linked_memory_refusal_names_the_linked_number(builtin_registry):
    """With a method's name and a factor both linked, the factor is named (it sets the size)."""
    nodes = {"1": {"type": "EmptyImage", "inputs": {"width": 512, "height": 512, "batch_size": 16}},
             "m": {"type": "TextValue", "inputs": {"text": "bilinear"}},
             "f": {"type": "FloatValue", "inputs": {"value": 8.0}},
             "2": {"type": "ImageScaleBy", "inputs": {"image": ["1", 0], "upscale_method": ["m", 0],
                                                      "scale_by": ["f", 0]}},
             "3": {"type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    result = run_with(builtin_registry, nodes, RunLimits(ram_bytes=2 * GB, device_bytes=10**15))
    assert result.status == "error" and (result.error["node_id"], result.error["input"]) == ("2", "scale_by")


def test_keep_aspect_and_padding_sizes(builtin_registry):
    workflow = txt2img(width=1024, height=512, batch_size=2)
    workflow["nodes"]["8"] = {"type": "ImageScale", "inputs": {"image": ["6", 0], "width": 0, "height": 4096}}
    workflow["nodes"]["9"] = {"type": "PadImageForOutpaint", "inputs": {"image": ["8", 0], "left": 64, "right": 64}}
    workflow["nodes"]["7"]["inputs"]["images"] = ["9", 0]
    plan, found = plan_workflow(parse_workflow(workflow), builtin_registry, limits=RunLimits(ram_bytes=10**15, device_bytes=10**15))
    assert found == []
    limits = RunLimits(max_pixels=8192 * 4096 + 1)  # the upscale gives 8192x4096; the padding goes over
    [problem] = check(plan, limits)
    assert (problem.node_id, problem.node_type) == ("9", "PadImageForOutpaint")
    assert "8320×4096" in problem.message


def test_a_node_declares_its_cost_with_hints_or_estimate():
    class Tiles(Node):
        width: int = Int(64, resource="width")
        height: int = Int(64, resource="height")
        copies: int = Int(1, resource="batch")
        outputs = {"image": IMAGE}

        @classmethod
        def estimate(cls, widgets, inputs):
            size = default_estimate(cls, widgets, inputs).size
            return Estimate(size, memory=1000 * size.batch * size.pixels)

        def run(self):
            raise AssertionError("never run")

    assert default_estimate(Tiles, {"width": 10, "height": 20, "copies": 3}, {}).size == Size(3, 20, 10)
    registry = Registry()
    registry.add(Tiles)
    registry.add(server_nodes.Boom)
    workflow = parse_workflow({"nodes": {"1": {"type": "Tiles", "inputs": {"width": 1000, "height": 1000}},
                                         "2": {"type": "Boom", "inputs": {"image": ["1", 0]}}}})
    assert validate(workflow, registry, limits=RunLimits(ram_bytes=10**10, device_bytes=10**10)) == []
    [problem] = validate(workflow, registry, limits=RunLimits(ram_bytes=10**10, device_bytes=10**8))  # needs 1e9 B
    assert (problem.node_id, problem.input) == ("1", "width") and "0.9 GB of working memory" in problem.message


def test_cli_validate_applies_limit_flags(tmp_path, capsys):
    path = tmp_path / "big.json"
    path.write_text(json.dumps(txt2img(batch_size=10)))
    assert cli.main(["validate", str(path), "--max-batch", "8"]) == cli.EXIT_INVALID
    assert "input 'batch_size': a batch of 10 is more than this server allows (8)" in capsys.readouterr().err
    assert cli.main(["validate", str(path)]) == cli.EXIT_OK


async def test_server_defaults_refuse_the_bomb(builtin_registry, aiohttp_client, tmp_path):
    saved = dict(folders_module.folders.__dict__)
    folders_module.configure(home=tmp_path)
    try:
        app = create_app(builtin_registry, tmp_path / "runs.db", web_dir=None, paused=True)
        assert app[SERVER].config.run_limits == SERVER_LIMITS
        c = await aiohttp_client(app)
        bomb = txt2img(width=16384, height=16384, batch_size=4096)
        bomb["nodes"]["5"]["inputs"]["steps"] = 10000
        for path, body in (("/api/runs", {"workflow": bomb}), ("/prompt", {"prompt": to_comfy(bomb)})):
            r = await c.post(path, json=body)
            assert r.status == 400
            found = {(p["node_id"], p["input"]) for p in (await r.json())["problems"]}
            assert {("4", "width"), ("4", "batch_size"), ("5", "steps")} <= found, found
        r = await c.post("/api/runs", json={"workflow": txt2img()})
        assert r.status == 200
    finally:
        folders_module.folders.__dict__.update(saved)


def to_comfy(workflow: dict) -> dict:
    """The workflow as a ComfyUI API prompt (ComfyUI's class and input names)."""
    return export_api(parse_workflow(workflow), default_registry())


# --- the time limit ---------------------------------------------------------------------------

def hold_workflow() -> dict:
    return {"nodes": {"1": {"type": "Canvas", "inputs": {"steps": 1}}, "2": {"type": "Hold", "inputs": {"image": ["1", 0]}},
                      "3": {"type": "SaveTestImage", "inputs": {"image": ["2", 0]}}}}


@pytest.fixture
def server_registry(tmp_path):
    saved = dict(folders_module.folders.__dict__)
    folders_module.configure(home=tmp_path)
    server_nodes.Hold.gate = threading.Event()  # never opened: only an interrupt ends Hold
    registry = Registry()
    for cls in server_nodes.SERVER_NODES:
        registry.add(cls, source="tests")
    yield registry
    server_nodes.Hold.gate.set()
    folders_module.folders.__dict__.update(saved)


def test_a_run_over_its_time_limit_is_stopped_like_an_interrupt(server_registry):
    executor = Executor(server_registry, limits=RunLimits(max_run_seconds=0.3))
    began = time.perf_counter()
    result = executor.run(parse_workflow(hold_workflow()))
    assert result.status == "interrupted" and time.perf_counter() - began < 5
    assert result.error["node_id"] == "2" and result.error["time_limit"] == 0.3
    assert "time limit of 0.3 s" in result.error["message"]
    assert result.executed == ["1"] and "1" not in result.cached
    assert executor.run(parse_workflow(hold_workflow())).cached == ["1"]  # finished nodes keep their cache


async def test_the_server_stops_and_reports_a_run_over_its_time_limit(server_registry, aiohttp_client, tmp_path):
    c = await aiohttp_client(create_app(server_registry, tmp_path / "runs.db", web_dir=None,
                                        run_limits=RunLimits(max_run_seconds=0.3)))
    r = await c.post("/api/runs", json={"workflow": hold_workflow()})
    run_id = (await r.json())["run_id"]
    for _ in range(400):
        record = await (await c.get(f"/api/history/{run_id}")).json()
        if record["status"] not in ("pending", "running"):
            break
        await asyncio.sleep(0.05)
    assert record["status"] == "interrupted"
    assert "time limit of 0.3 s" in record["error"]["message"]


def test_cli_run_stops_at_its_time_limit(server_registry, monkeypatch, tmp_path, capsys):
    import graphflow.registry

    monkeypatch.setattr(graphflow.registry, "_default", server_registry)
    path = tmp_path / "hold.json"
    path.write_text(json.dumps(hold_workflow()))
    assert cli.main(["run", str(path), "--max-run-seconds", "0.3", "--quiet"]) == cli.EXIT_INTERRUPTED
    assert "stopped at its time limit in node 2 (Hold)" in capsys.readouterr().err


def test_a_failing_estimate_leaves_the_size_unknown_and_the_run_allowed():
    class Broken(Node):
        outputs = {"image": IMAGE}

        @classmethod
        def estimate(cls, widgets, inputs):
            return Estimate(Size(1, 8, 8), memory=float("nan"))

        def run(self):
            raise AssertionError("never run")

    registry = Registry()
    registry.add(Broken)
    registry.add(server_nodes.Boom)
    workflow = parse_workflow({"nodes": {"1": {"type": "Broken"}, "2": {"type": "Boom", "inputs": {"image": ["1", 0]}}}})
    assert validate(workflow, registry, limits=RunLimits(ram_bytes=1, device_bytes=1)) == []


def run_with(registry, nodes: dict, limits=None):
    return Executor(registry, limits=limits).run(parse_workflow({"nodes": nodes}))


def test_a_linked_size_is_held_to_the_server_policy_when_the_node_runs(builtin_registry):
    # Validation can't see a value that arrives by a link; the node's estimate, rerun on the values
    # it is about to run on, refuses it as it would a typed-in one.
    limits = RunLimits(max_pixels=8192 * 8192, max_batch=64)
    nodes = {"1": {"type": "IntValue", "inputs": {"value": 16384}},
             "2": {"type": "EmptyLatent", "inputs": {"width": ["1", 0], "height": ["1", 0], "batch_size": 1}},
             "3": {"type": "PreviewAny", "inputs": {"source": ["2", 0]}}}
    assert problems(builtin_registry, {"nodes": nodes}, limits) == []
    result = run_with(builtin_registry, nodes, limits)
    assert result.status == "error" and (result.error["node_id"], result.error["input"]) == ("2", "width")
    assert "268.4 megapixels" in result.error["message"] and "67.1" in result.error["message"]
    assert result.executed == ["1"] and "1" in result.values  # the node that succeeded keeps its output
    nodes["1"]["inputs"]["value"] = 100
    nodes["2"]["inputs"] |= {"width": 64, "height": 64, "batch_size": ["1", 0]}
    result = run_with(builtin_registry, nodes, limits)
    assert (result.error["input"], result.error["message"]) == (
        "batch_size", "linked value: a batch of 100 is more than this server allows (64)")
    nodes["1"]["inputs"]["value"] = 64  # at the limit: runs
    result = run_with(builtin_registry, nodes, limits)
    assert result.ok and result.values["2"][0]["samples"].shape == (64, 4, 8, 8)
    nodes["1"]["inputs"]["value"] = 16384  # and without a policy (graphflow run's default) it isn't refused
    nodes["2"]["inputs"] |= {"width": ["1", 0], "batch_size": 1, "height": 16}
    assert run_with(builtin_registry, nodes).ok


def test_a_linked_size_that_cannot_fit_in_memory_is_refused_before_the_node_runs(builtin_registry):
    """As validation refuses a typed-in size the machine can't hold, a linked one is refused when it
    arrives, with no server policy too (graphflow run)."""
    limits = RunLimits(ram_bytes=2 * GB, device_bytes=10**15)
    nodes = {"1": {"type": "IntValue", "inputs": {"value": 4096}},
             "2": {"type": "EmptyImage", "inputs": {"width": ["1", 0], "height": 4096, "batch_size": 16}},
             "3": {"type": "PreviewAny", "inputs": {"source": ["2", 0]}}}
    assert problems(builtin_registry, {"nodes": nodes}, limits) == []
    result = run_with(builtin_registry, nodes, limits)  # 16 x 4096² RGB float32: 3.2e9 bytes (3.0 GiB)
    assert result.status == "error" and (result.error["node_id"], result.error["input"]) == ("2", "width")
    message = result.error["message"]
    assert "16 × 4096×4096 needs at least 3.0 GB" in message and "has 2.0 GB" in message
    assert result.executed == ["1"]
    nodes["1"]["inputs"]["value"] = 512
    assert run_with(builtin_registry, nodes, limits).ok


def test_a_linked_factor_is_checked_on_the_size_validation_estimated(builtin_registry):
    # The input's size is validation's (EmptyImage's 1000x1000), the factor the linked one.
    nodes = {"1": {"type": "FloatValue", "inputs": {"value": 8.0}},
             "2": {"type": "EmptyImage", "inputs": {"width": 1000, "height": 1000}},
             "3": {"type": "ImageScaleBy", "inputs": {"image": ["2", 0], "scale_by": ["1", 0]}},
             "4": {"type": "PreviewImage", "inputs": {"images": ["3", 0]}}}
    limits = RunLimits(max_pixels=50_000_000)
    assert problems(builtin_registry, {"nodes": nodes}, limits) == []
    result = run_with(builtin_registry, nodes, limits)
    assert (result.error["node_id"], result.error["input"]) == ("3", "image")
    assert "linked value: an image of 8000×8000 (64.0 megapixels)" in result.error["message"]
    nodes["1"]["inputs"]["value"] = 2.0
    assert run_with(builtin_registry, nodes, limits).ok


def test_linked_steps_and_run_limits_in_a_node():
    seen = []

    class Steps(Node):
        steps: int = Int(20, min=1, max=10000, resource="steps")
        outputs = {}
        output_node = True

        def run(self):
            from graphflow.api import run_limits

            seen.append(run_limits())

    from nodes.primitives import IntValue

    registry = Registry()
    registry.add(Steps)
    registry.add(IntValue)
    nodes = {"1": {"type": "IntValue", "inputs": {"value": 5000}}, "2": {"type": "Steps", "inputs": {"steps": ["1", 0]}}}
    result = run_with(registry, nodes, RunLimits(max_steps=1000))
    assert (result.error["input"], result.error["message"]) == ("steps", "linked value: 5000 steps is more than this server allows (1000)")
    assert run_with(registry, nodes, RunLimits(max_steps=5000, max_pixels=4)).ok
    assert seen[-1].max_steps == 5000 and seen[-1].max_pixels == 4
    assert run_with(registry, nodes).ok and seen[-1] == RunLimits()
    from graphflow.api import run_limits

    assert run_limits() == RunLimits()  # outside a run: no limits


def test_check_run_memory_applies_the_planners_rule_at_run_time():
    """A size only the run knows: sampling it is held to the device memory (the RAM where the
    device has none of its own), its images to the RAM; the planner refuses the same sizes."""
    import threading

    from graphflow.api import NodeInputError, check_run_memory, sampling_memory
    from graphflow.context import NodeContext, _current
    from graphflow.resource_limits import UNET_BYTES_PER_PIXEL

    def refusal(limits, **sizes):
        token = _current.set(NodeContext("run", "1", "test", lambda event: None, threading.Event(), limits=limits))
        try:
            check_run_memory("factor", "upscales it", **sizes)
        except NodeInputError as e:
            return e.input, str(e)
        finally:
            _current.reset(token)

    big = Size(16, 4096, 4096)
    assert sampling_memory(big) == int(UNET_BYTES_PER_PIXEL * 16 * 4096 * 4096)  # about 15 GB
    name, message = refusal(RunLimits(ram_bytes=10**15, device_bytes=2 * GB), sampled=big)
    assert name == "factor" and "upscales it" in message and "16 × 4096×4096" in message and "on device" in message
    assert refusal(RunLimits(ram_bytes=2 * GB, device_bytes=16 * GB), sampled=big) is None  # on the device
    images = 16 * 4096 * 4096 * 12  # fp32 RGB: 3 GB in the RAM
    assert "the images" in refusal(RunLimits(ram_bytes=images - 1, device_bytes=10**15), images=big)[1]
    assert refusal(RunLimits(ram_bytes=images, device_bytes=10**15), images=big) is None
    registry = Registry().load_builtin()  # the planner: the same batch sampled after an upscale is refused too
    workflow = txt2img(width=512, height=512, batch_size=16)
    upscale = {"type": "LatentUpscaleBy", "inputs": {"samples": None, "upscale_method": "bilinear", "scale_by": 8.0}}
    sampler = next(n for n in workflow["nodes"].values() if n["type"] == "KSampler")
    upscale["inputs"]["samples"], sampler["inputs"]["latent_image"] = sampler["inputs"]["latent_image"], ["up", 0]
    workflow["nodes"]["up"] = upscale
    found = problems(registry, workflow, RunLimits(ram_bytes=10**15, device_bytes=2 * GB))
    assert any("16 × 4096×4096" in p.message and "working memory on device" in p.message for p in found), found
