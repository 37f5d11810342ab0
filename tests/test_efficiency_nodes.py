"""Efficiency Nodes built in (nodes/efficiency_nodes.py), checked against our core nodes for the
same settings: Efficient Loader + LoRA Stacker + KSampler (Efficient) against CheckpointLoader,
LoraLoader, CLIPSetLastLayer, CLIPTextEncode, EmptyLatentImage, KSampler and VAEDecode; the Adv.
sampler against KSamplerAdvanced and VAEDecodeTiled; the SDXL loader and sampler against the
base + refiner chain of core nodes; the ControlNet stack against ControlNetApplyAdvanced; the
token normalizations and A1111 weighting against closed forms. UI-format fixtures are written as
the pack's editor saves them (the seed's control replaced by the pack's button, saved as null;
the LoRA Stacker's 50 rows all saved)."""

import pytest
import torch

from graphflow.comfy_format import export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.resource_limits import SERVER_LIMITS
from graphflow.testing import write_checkpoint, write_controlnet, write_lora
from graphflow.validation import validate
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_adv_clip import advanced_encode
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


@pytest.fixture
def models(tmp_folders):
    for sub in ("checkpoints", "loras", "controlnet"):
        (tmp_folders.models / sub).mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    write_lora(tmp_folders.models / "loras" / "first.safetensors", "sd1", seed=1)
    write_lora(tmp_folders.models / "loras" / "second.safetensors", "sd1", seed=2)
    return tmp_folders


def ui_node(id, type, widgets, inputs=(), outputs=()):
    return {"id": id, "type": type, "pos": [0, 0], "size": [300, 200], "flags": {}, "order": id, "mode": 0,
            "inputs": [{"name": n, "type": t, "link": link} for n, t, link in inputs],
            "outputs": [{"name": n, "type": t, "links": links} for n, t, links in outputs],
            "properties": {"Node name for S&R": type}, "widgets_values": widgets}


def stacker_widgets(mode, count, rows):
    """The LoRA Stacker's widgets_values as its editor saves them: input_mode, lora_count, then all
    50 rows (lora_name, lora_wt, model_str, clip_str), the hidden ones too."""
    values = [mode, count]
    for i in range(50):
        values += list(rows[i]) if i < len(rows) else ["None", 1.0, 1.0, 1.0]
    return values


LOADER_OUTPUTS = [("MODEL", "MODEL", [3]), ("CONDITIONING+", "CONDITIONING", [4]),
                  ("CONDITIONING-", "CONDITIONING", [5]), ("LATENT", "LATENT", [6]), ("VAE", "VAE", [7]),
                  ("CLIP", "CLIP", []), ("DEPENDENCIES", "DEPENDENCIES", [])]
SAMPLER_INPUTS = [("model", "MODEL", 3), ("positive", "CONDITIONING", 4), ("negative", "CONDITIONING", 5),
                  ("latent_image", "LATENT", 6), ("optional_vae", "VAE", 7), ("script", "SCRIPT", None)]
SAMPLER_OUTPUTS = [("MODEL", "MODEL", []), ("CONDITIONING+", "CONDITIONING", []),
                   ("CONDITIONING-", "CONDITIONING", []), ("LATENT", "LATENT", []), ("VAE", "VAE", []),
                   ("IMAGE", "IMAGE", [])]
LINKS = [[1, 2, 0, 1, 0, "LORA_STACK"], [3, 1, 0, 3, 0, "MODEL"], [4, 1, 1, 3, 1, "CONDITIONING"],
         [5, 1, 2, 3, 2, "CONDITIONING"], [6, 1, 3, 3, 3, "LATENT"], [7, 1, 4, 3, 4, "VAE"]]


def core_chain(seed=5, steps=2, cfg=7.0, scheduler="normal", denoise=1.0):
    """The same generation with core nodes: checkpoint, the loader's LoRA, the stacker's LoRA
    (lora_wt for both), clip skip -2, two prompts, a 64x64 latent, KSampler, VAEDecode."""
    def lora(source, name, model, clip):
        return {"class_type": "LoraLoader", "inputs": {"model": [source, 0], "clip": [source, 1], "lora_name": name,
                                                       "strength_model": model, "strength_clip": clip}}

    return {"c1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "c2": lora("c1", "first.safetensors", 0.7, 0.3), "c3": lora("c2", "second.safetensors", 0.5, 0.5),
            "c4": {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["c3", 1], "stop_at_clip_layer": -2}},
            "c5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["c4", 0], "text": "a (red:1.2) cat"}},
            "c6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["c4", 0], "text": "blurry"}},
            "c7": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 2}},
            "c8": {"class_type": "KSampler", "inputs": {"model": ["c3", 0], "positive": ["c5", 0],
                                                        "negative": ["c6", 0], "latent_image": ["c7", 0],
                                                        "seed": seed, "steps": steps, "cfg": cfg,
                                                        "sampler_name": "euler", "scheduler": scheduler,
                                                        "denoise": denoise}},
            "c9": {"class_type": "VAEDecode", "inputs": {"samples": ["c8", 0], "vae": ["c1", 2]}}}


def eff_ui_graph(sampler_widgets, stacker=None):
    loader = ["tiny.safetensors", "Baked VAE", -2, "first.safetensors", 0.7, 0.3, "a (red:1.2) cat", "blurry",
              "none", "comfy", 64, 64, 2]
    stacker = stacker or stacker_widgets("simple", 1, [("second.safetensors", 0.5, 9.0, 9.0)])
    return ui_graph([
        ui_node(1, "Efficient Loader", loader, [("lora_stack", "LORA_STACK", 1), ("cnet_stack", "CONTROL_NET_STACK",
                                                                                    None)], LOADER_OUTPUTS),
        ui_node(2, "LoRA Stacker", stacker, [("lora_stack", "LORA_STACK", None)], [("LORA_STACK", "LORA_STACK", [1])]),
        ui_node(3, "KSampler (Efficient)", sampler_widgets, SAMPLER_INPUTS, SAMPLER_OUTPUTS),
    ], LINKS)


def test_ui_workflow_equals_the_core_nodes(registry, models):
    """The editor's save: the seed followed by the pack's button (null), then steps, cfg, ..."""
    graph = eff_ui_graph([5, None, 2, 7.0, "euler", "normal", 1.0, "auto", "true"])
    workflow = parse_workflow(graph, registry)
    inputs = workflow.to_json()["nodes"]["3"]["inputs"]
    assert (inputs["seed"], inputs["steps"], inputs["scheduler"], inputs["vae_decode"]) == (5, 2, "normal", "true")
    result = Executor(registry).run(workflow, outputs=["3"])
    assert result.ok, (result.problems, result.error)
    want = run_graph(registry, core_chain(), ["c8", "c9"])
    model, positive, negative, latent, vae, image = result.values["3"]
    assert torch.equal(latent["samples"], want.values["c8"][0]["samples"])
    assert torch.equal(image, want.values["c9"][0])
    assert len(result.outputs["3"]["images"]) == 2  # previewed, as the pack does with vae_decode true
    assert vae is result.values["1"][4] and positive is result.values["1"][1]


def test_api_workflow_and_the_old_control_word(registry, models):
    """An API graph runs as well, and a save whose editor kept control_after_generate (the pack's
    script not loaded) reads the same; denoise 0 passes the latent through."""
    graph = eff_ui_graph([5, "fixed", 2, 7.0, "euler", "normal", 0.0, "none", "false"])
    result = run_graph(registry, graph, ["3"])
    latent, image = result.values["3"][3], result.values["3"][5]
    assert torch.equal(latent["samples"], torch.zeros(2, 4, 8, 8))
    assert image.shape == (1, 1, 1, 4) and not image.any()  # the pack's 1x1 transparent image
    assert not result.outputs.get("3", {}).get("images")
    api = {"1": {"class_type": "Efficient Loader", "inputs": {
               "ckpt_name": "tiny.safetensors", "vae_name": "Baked VAE", "clip_skip": -2,
               "lora_name": "first.safetensors", "lora_model_strength": 0.7, "lora_clip_strength": 0.3,
               "positive": "a (red:1.2) cat", "negative": "blurry", "token_normalization": "none",
               "weight_interpretation": "comfy", "empty_latent_width": 64, "empty_latent_height": 64,
               "batch_size": 2, "lora_stack": ["2", 0]}},
           "2": {"class_type": "LoRA Stacker", "inputs": {"input_mode": "advanced", "lora_count": 2,
                                                          "lora_name_1": "second.safetensors", "model_str_1": 0.5,
                                                          "clip_str_1": 0.5, "lora_wt_1": 9.0,
                                                          "lora_name_2": "None"}},
           "3": {"class_type": "KSampler (Efficient)", "inputs": {
               "model": ["1", 0], "positive": ["1", 1], "negative": ["1", 2], "latent_image": ["1", 3],
               "optional_vae": ["1", 4], "seed": 5, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
               "scheduler": "normal", "denoise": 0.6, "preview_method": "auto", "vae_decode": "true (tiled)"}}}
    got = run_graph(registry, api, ["3"])
    want = run_graph(registry, {**core_chain(denoise=0.6),
                          "c9": {"class_type": "VAEDecodeTiled", "inputs": {"samples": ["c8", 0], "vae": ["c1", 2],
                                                                            "tile_size": 320, "overlap": 64,
                                                                            "temporal_size": 64,
                                                                            "temporal_overlap": 8}}}, ["c8", "c9"])
    assert torch.equal(got.values["3"][3]["samples"], want.values["c8"][0]["samples"])
    assert torch.equal(got.values["3"][5], want.values["c9"][0])


def test_adv_sampler_ui_with_the_seed_fed_by_a_primitive(registry, models):
    """KSampler Adv. (Efficient) as saved with noise_seed converted to an input and fed by a
    Primitive: widgets_values keeps the widget's own value and the button's null in place."""
    graph = eff_ui_graph([])
    graph["nodes"][2] = ui_node(3, "KSampler Adv. (Efficient)",
                                ["enable", 123, None, 4, 7.0, "euler", "normal", 1, 3, "disable", "none", "true"],
                                SAMPLER_INPUTS + [("noise_seed", "INT", 8)], SAMPLER_OUTPUTS)
    graph["nodes"][2]["inputs"][-1]["widget"] = {"name": "noise_seed"}
    graph["nodes"].append(ui_node(4, "PrimitiveNode", [5, "fixed"], [], [("INT", "INT", [8])]))
    graph["links"].append([8, 4, 0, 3, 6, "INT"])
    result = run_graph(registry, graph, ["3"])
    core = core_chain()
    core["c8"] = {"class_type": "KSamplerAdvanced", "inputs": {
        **{k: core["c8"]["inputs"][k] for k in ("model", "positive", "negative", "latent_image", "cfg",
                                                "sampler_name", "scheduler")},
        "add_noise": "enable", "noise_seed": 5, "steps": 4, "start_at_step": 1, "end_at_step": 3,
        "return_with_leftover_noise": "disable"}}
    want = run_graph(registry, core, ["c8", "c9"])
    assert torch.equal(result.values["3"][3]["samples"], want.values["c8"][0]["samples"])
    assert torch.equal(result.values["3"][5], want.values["c9"][0])
    assert not result.outputs.get("3", {}).get("images")  # preview_method none: nothing shown


def test_saves_of_the_packs_2023_versions(registry, models):
    """Before the pack's 2.0: the loader without token_normalization / weight_interpretation, the
    sampler with sampler_state first, the LoRA Stacker's three rows, and LoRA Stacker Adv."""
    loader = ["tiny.safetensors", "Baked VAE", -2, "first.safetensors", 0.7, 0.3, "a (red:1.2) cat", "blurry", 64,
              64, 2]
    sampler = ["Sample", 5, None, 2, 7.0, "euler", "normal", 1.0, "auto", "true"]
    for stacker, stacker_type in ((["second.safetensors", 0.5, "None", 1.0, "None", 1.0], "LoRA Stacker"),
                                  (["None", 1.0, 1.0, "second.safetensors", 0.5, 0.5, "None", 1.0, 1.0],
                                   "LoRA Stacker Adv.")):
        graph = eff_ui_graph(sampler, stacker)
        graph["nodes"][0]["widgets_values"] = loader
        graph["nodes"][1]["type"] = stacker_type
        result = run_graph(registry, graph, ["3"])
        want = run_graph(registry, core_chain(), ["c8"])
        assert torch.equal(result.values["3"][3]["samples"], want.values["c8"][0]["samples"]), stacker_type
        # written back (in today's layout, under the class it was) it reads the same
        workflow = parse_workflow(graph, registry)
        again = parse_workflow(export_ui(workflow, registry), registry)
        assert again.to_json()["nodes"] == workflow.to_json()["nodes"], stacker_type
    api = parse_workflow({"1": {"class_type": "KSampler (Efficient)", "inputs": {"sampler_state": "Hold", "seed": 1}},
                          "2": {"class_type": "LoRA Stacker Adv.", "inputs": {"lora_name_1": "x"}}}, registry)
    assert "sampler_state" not in api.nodes["1"].inputs
    assert api.nodes["2"].inputs["input_mode"] == "advanced" and api.nodes["2"].inputs["lora_count"] == 3


@pytest.mark.parametrize("mode", [0, 4])
def test_a_script_node_is_named_and_a_bypassed_one_left_out(registry, models, mode):
    """Tiled Upscaler Script is not built in: validation names it and its pack; bypassed (mode 4),
    ComfyUI leaves it out and the sampler runs without a script, as here."""
    graph = eff_ui_graph([5, None, 2, 7.0, "euler", "normal", 1.0, "none", "false"])
    graph["nodes"][2]["inputs"][-1]["link"] = 9
    graph["nodes"].append(ui_node(4, "Tiled Upscaler Script", [1.25, 512, "random", 30, 0, "fixed", 0.4, False,
                                                               "none", 1.0], [],
                                  [("SCRIPT", "SCRIPT", [9])]))
    graph["nodes"][-1]["mode"] = mode
    graph["links"].append([9, 4, 0, 3, 5, "SCRIPT"])
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["3"])
    if mode == 4:
        assert result.ok, (result.problems, result.error)
    else:
        assert not result.ok and any("'Tiled Upscaler Script'" in p.message and "Efficiency Nodes" in p.message
                                     for p in result.problems), result.problems


@pytest.mark.parametrize("loader, sampler, links", [
    ("EfficientLoader", "KSamplerEfficient",
     {"model": ["1", 0], "positive": ["1", 1], "negative": ["1", 2], "latent_image": ["1", 3]}),
    ("EffLoaderSDXL", "KSamplerSDXLEff", {"sdxl_tuple": ["1", 0], "latent_image": ["1", 1]})])
def test_the_loaders_empty_latent_is_held_to_the_server_limits(registry, loader, sampler, links):
    """The loaders make the empty latent as EmptyLatent does, so the server refuses an oversized
    one at the loader, as it refuses EmptyLatent's."""
    def workflow(width, height, batch):
        return parse_workflow({"nodes": {
            "1": {"type": loader, "inputs": {"empty_latent_width": width, "empty_latent_height": height,
                                             "batch_size": batch}},
            "2": {"type": sampler, "inputs": links}}})

    found = {(p.node_id, p.input) for p in validate(workflow(16384, 16384, 64), registry, limits=SERVER_LIMITS)}
    assert ("1", "empty_latent_width") in found, found  # 268 megapixels, over the server's 67
    found = {(p.node_id, p.input) for p in validate(workflow(1024, 1024, 65), registry, limits=SERVER_LIMITS)}
    assert ("1", "batch_size") in found, found  # over the server's 64
    assert validate(workflow(1024, 1024, 2), registry, limits=SERVER_LIMITS) == []


def test_image_overlay(registry):
    base = torch.zeros(2, 16, 16, 3)
    base[1] = 0.2
    red = torch.zeros(1, 4, 6, 3)
    red[..., 0] = 1.0

    def overlay(**widgets):
        return call(registry, "ImageOverlay", base_image=base, overlay_image=red, **widgets)

    out = overlay(x_offset=3, y_offset=5, opacity=50)
    alpha = int(255 * 0.5) / 255  # the pack truncates the alpha to 8 bits
    for i, under in enumerate((0.0, 0.2)):
        patch = out[i, 5:9, 3:9]
        assert torch.allclose(patch[..., 0], torch.full((4, 6), alpha + under * (1 - alpha)), atol=1.5 / 255)
        assert torch.allclose(patch[..., 1], torch.full((4, 6), under * (1 - alpha)), atol=1.5 / 255)
        outside = out[i].clone()
        outside[5:9, 3:9] = under
        assert torch.allclose(outside, torch.full_like(outside, under), atol=1 / 255)
    turned = overlay(rotation=90)  # counter-clockwise, the canvas grown to 6 tall, 4 wide
    assert torch.equal(turned[0, :6, :4, 0], torch.ones(6, 4)) and not turned[0, 6:, :, 0].any()
    assert not turned[0, :, 4:, 0].any()
    fit = overlay(overlay_resize="Fit")  # 6x4 fits 16x16 as 16x11 (rounded)
    assert torch.equal(fit[0, :11, :, 0], torch.ones(11, 16)) and not fit[0, 11:, :, 0].any()
    hidden = overlay(optional_mask=torch.ones(1, 4, 6))  # mask 1: the overlay fully transparent
    assert torch.allclose(hidden, base, atol=1 / 255)
    # An RGBA base (JoinImageWithAlpha's) keeps its alpha under the overlay, as in the pack: over
    # a see-through base the half-transparent overlay gives its own colour, not a blend.
    clear = torch.cat([torch.full((1, 16, 16, 3), 0.2), torch.zeros(1, 16, 16, 1)], dim=-1)
    out = call(registry, "ImageOverlay", base_image=clear, overlay_image=red, opacity=50)
    assert out.shape == (1, 16, 16, 3)
    assert torch.allclose(out[0, :4, :6], torch.tensor([1.0, 0.0, 0.0]).expand(4, 6, 3), atol=1.5 / 255)
    assert torch.allclose(out[0, 4:], torch.full((12, 16, 3), 0.2), atol=1 / 255)  # outside: the base's colour
    with pytest.raises(NodeInputError) as caught:
        overlay(x_offset=-1)
    assert caught.value.input == "x_offset"


def test_lora_stacker_rows(registry):
    rows = [("a.safetensors", 0.5, 0.1, 0.2), ("None", 1.0, 1.0, 1.0), ("b.safetensors", 2.0, 0.3, 0.4),
            ("c.safetensors", 1.0, 1.0, 1.0)]
    widgets = {}
    for i, (name, wt, model, clip) in enumerate(rows, 1):
        widgets.update({f"lora_name_{i}": name, f"lora_wt_{i}": wt, f"model_str_{i}": model, f"clip_str_{i}": clip})
    stack = [("d.safetensors", 0.9, 0.8), ("None", 1.0, 1.0)]
    cls = registry.get("LoRAStacker")

    def stacker(**inputs):
        node = cls.__new__(cls)
        node.__dict__.update({n: s.default for n, s in cls.input_specs.items()}, **widgets, **inputs)
        return node.run()

    assert stacker(input_mode="simple", lora_count=3) == [("a.safetensors", 0.5, 0.5), ("b.safetensors", 2.0, 2.0)]
    assert stacker(input_mode="advanced", lora_count=4, lora_stack=stack) == [
        ("a.safetensors", 0.1, 0.2), ("b.safetensors", 0.3, 0.4), ("c.safetensors", 1.0, 1.0),
        ("d.safetensors", 0.9, 0.8)]  # the incoming stack after, its "None" rows dropped
    assert stacker(input_mode="simple", lora_count=0) == []
    assert call(registry, "LoRAStackToString", lora_stack=[("a.safetensors", 0.5, 1.0), ("sub/b.pt", -1, 2.25)]) == \
        "<lora:a.safetensors:0.5:1.0> <lora:sub/b.pt:-1:2.25>"
    names = list(cls.input_specs)
    assert names[:6] == ["input_mode", "lora_count", "lora_name_1", "lora_wt_1", "model_str_1", "clip_str_1"]
    assert len(names) == 2 + 4 * 50 + 1 and names[-1] == "lora_stack"


def test_adv_sampler_equals_ksampler_advanced(registry, models):
    core = core_chain()
    adv = {"class_type": "KSampler Adv. (Efficient)", "inputs": {
        "model": ["c3", 0], "positive": ["c5", 0], "negative": ["c6", 0], "latent_image": ["c7", 0],
        "optional_vae": ["c1", 2], "add_noise": "enable", "noise_seed": 9, "steps": 4, "cfg": 6.0,
        "sampler_name": "euler", "scheduler": "karras", "start_at_step": 1, "end_at_step": 3,
        "return_with_leftover_noise": "enable", "preview_method": "auto", "vae_decode": "output only"}}
    ref = {"class_type": "KSamplerAdvanced", "inputs": {**{k: adv["inputs"][k] for k in (
        "model", "positive", "negative", "latent_image", "add_noise", "noise_seed", "steps", "cfg", "sampler_name",
        "scheduler", "start_at_step", "end_at_step", "return_with_leftover_noise")}}}
    decode = {"class_type": "VAEDecode", "inputs": {"samples": ["r", 0], "vae": ["c1", 2]}}
    result = run_graph(registry, {**core, "e": adv, "r": ref, "d": decode}, ["e", "d"])
    assert torch.equal(result.values["e"][3]["samples"], result.values["r"][0]["samples"])
    assert torch.equal(result.values["e"][5], result.values["d"][0])
    assert not result.outputs.get("e", {}).get("images")  # "output only": decoded, not previewed


def test_sdxl_loader_and_sampler_equal_base_then_refiner(registry, tmp_folders):
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "base.safetensors", "sdxl")
    write_checkpoint(tmp_folders.models / "checkpoints" / "refiner.safetensors", "sdxl_refiner", seed=3)
    loader = ["base.safetensors", -2, "refiner.safetensors", -1, 6.5, 2.5, "Baked VAE", "a cat", "blurry", "none",
              "comfy", 64, 64, 1]
    sampler = [7, None, 3, 5.0, "euler", "normal", 0, 2, "auto", "false"]  # noise_seed, its button, steps, ...
    graph = ui_graph([
        ui_node(1, "Eff. Loader SDXL", loader, [], [("SDXL_TUPLE", "SDXL_TUPLE", [1]), ("LATENT", "LATENT", [2]),
                                                    ("VAE", "VAE", []), ("DEPENDENCIES", "DEPENDENCIES", [])]),
        ui_node(2, "KSampler SDXL (Eff.)", sampler, [("sdxl_tuple", "SDXL_TUPLE", 1), ("latent_image", "LATENT", 2)],
                [("SDXL_TUPLE", "SDXL_TUPLE", [3]), ("LATENT", "LATENT", []), ("VAE", "VAE", []),
                 ("IMAGE", "IMAGE", [])]),
        ui_node(3, "Unpack SDXL Tuple", [], [("sdxl_tuple", "SDXL_TUPLE", 3)],
                [(n, t, []) for n, t in (("BASE_MODEL", "MODEL"), ("BASE_CLIP", "CLIP"),
                                         ("BASE_CONDITIONING+", "CONDITIONING"), ("BASE_CONDITIONING-", "CONDITIONING"),
                                         ("REFINER_MODEL", "MODEL"), ("REFINER_CLIP", "CLIP"),
                                         ("REFINER_CONDITIONING+", "CONDITIONING"),
                                         ("REFINER_CONDITIONING-", "CONDITIONING"))]),
    ], [[1, 1, 0, 2, 0, "SDXL_TUPLE"], [2, 1, 1, 2, 1, "LATENT"], [3, 2, 0, 3, 0, "SDXL_TUPLE"]])
    got = run_graph(registry, graph, ["2", "3"])

    def encode(clip, text, refiner_score=None):
        if refiner_score is None:
            return {"class_type": "CLIPTextEncode", "inputs": {"clip": [clip, 0], "text": text}}
        return {"class_type": "CLIPTextEncodeSDXLRefiner", "inputs": {"clip": [clip, 0], "text": text, "width": 64,
                                                                      "height": 64, "ascore": refiner_score}}

    def advanced(model, pos, neg, latent, add, start, end, leftover):
        return {"class_type": "KSamplerAdvanced", "inputs": {
            "model": [model, 0], "positive": [pos, 0], "negative": [neg, 0], "latent_image": [latent, 0],
            "add_noise": add, "noise_seed": 7, "steps": 3, "cfg": 5.0, "sampler_name": "euler",
            "scheduler": "normal", "start_at_step": start, "end_at_step": end, "return_with_leftover_noise": leftover}}

    core = {"b": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "base.safetensors"}},
            "r": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "refiner.safetensors"}},
            "bs": {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["b", 1], "stop_at_clip_layer": -2}},
            "rs": {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["r", 1], "stop_at_clip_layer": -1}},
            "bp": encode("bs", "a cat"), "bn": encode("bs", "blurry"),
            "rp": encode("rs", "a cat", 6.5), "rn": encode("rs", "blurry", 2.5),
            "l": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "k1": advanced("b", "bp", "bn", "l", "enable", 0, 2, "enable"),
            "k2": advanced("r", "rp", "rn", "k1", "disable", 2, 3, "disable")}
    want = run_graph(registry, core, ["k2"])
    assert torch.equal(got.values["2"][1]["samples"], want.values["k2"][0]["samples"])
    parts = got.values["3"]
    assert [torch.equal(parts[i][0][0], want.values[k][0][0][0]) for i, k in ((2, "bp"), (3, "bn"), (6, "rp"),
                                                                               (7, "rn"))] == [True] * 4
    assert parts[6][0][1]["aesthetic_score"] == 6.5 and parts[7][0][1]["aesthetic_score"] == 2.5


def test_sdxl_a1111_rescales_each_tower_on_its_own(registry, tmp_folders):
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "base.safetensors", "sdxl")
    clip = call(registry, "LoadCheckpoint", checkpoint="base.safetensors")[1]
    [(got, options)] = advanced_encode(clip, "(cat:1.5) dog", "none", "A1111")
    [(base, plain_options)] = call(registry, "CLIPEncode", clip=clip, text="cat dog")
    weights = torch.ones(1, base.shape[1], 1)
    weights[:, 1] = 1.5
    split = clip.tower("clip_l").hidden_size
    want = torch.cat([part.mean() / (part * weights).mean() * part * weights
                      for part in (base[..., :split], base[..., split:])], dim=-1)
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.equal(options["pooled_output"], plain_options["pooled_output"])  # the unweighted prompt's


def test_controlnet_stack_equals_apply_controlnet_advanced_in_turn(registry, models):
    write_controlnet(models.models / "controlnet" / "cn.safetensors", "sd1")
    image = {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 0x808080}}
    net = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "cn.safetensors"}}
    graph = {**core_chain(), "i": image, "n": net,
             "s1": {"class_type": "Control Net Stacker", "inputs": {"control_net": ["n", 0], "image": ["i", 0],
                                                                     "strength": 0.8, "start_percent": 0.0,
                                                                     "end_percent": 0.5}},
             "s2": {"class_type": "Control Net Stacker", "inputs": {"control_net": ["n", 0], "image": ["i", 0],
                                                                     "strength": 0.3, "start_percent": 0.2,
                                                                     "end_percent": 1.0, "cnet_stack": ["s1", 0]}},
             "a": {"class_type": "Apply ControlNet Stack", "inputs": {"positive": ["c5", 0], "negative": ["c6", 0],
                                                                      "cnet_stack": ["s2", 0]}},
             "x1": {"class_type": "ControlNetApplyAdvanced", "inputs": {
                 "positive": ["c5", 0], "negative": ["c6", 0], "control_net": ["n", 0], "image": ["i", 0],
                 "strength": 0.8, "start_percent": 0.0, "end_percent": 0.5}},
             "x2": {"class_type": "ControlNetApplyAdvanced", "inputs": {
                 "positive": ["x1", 0], "negative": ["x1", 1], "control_net": ["n", 0], "image": ["i", 0],
                 "strength": 0.3, "start_percent": 0.2, "end_percent": 1.0}}}
    for name, source in (("ka", "a"), ("kx", "x2")):
        graph[name] = {"class_type": "KSampler", "inputs": {**graph["c8"]["inputs"], "positive": [source, 0],
                                                             "negative": [source, 1]}}
    result = run_graph(registry, graph, ["ka", "kx", "c8", "s1"])
    assert len(result.values["s1"][0]) == 1  # the second stacker made a new list, the first's is untouched
    got, want = result.values["ka"][0]["samples"], result.values["kx"][0]["samples"]
    assert torch.equal(got, want) and not torch.equal(got, result.values["c8"][0]["samples"])


@pytest.mark.parametrize("scheduler, sigmas, denoise", [
    ("AYS SD1", {"class_type": "AlignYourStepsScheduler", "inputs": {"model_type": "SD1", "steps": 3, "denoise": 1.0}},
     1.0),
    ("AYS SDXL", {"class_type": "AlignYourStepsScheduler", "inputs": {"model_type": "SDXL", "steps": 6,
                                                                      "denoise": 1.0}}, 0.5),
    ("GITS", {"class_type": "GITSScheduler", "inputs": {"coeff": 1.2, "steps": 3, "denoise": 1.0}}, 1.0),
])
def test_the_packs_ays_and_gits_schedulers(registry, models, scheduler, sigmas, denoise):
    """The pack computes AYS / GITS at denoise 1 for KSampler's step count (steps / denoise when
    denoise < 1, then keeps the last steps + 1): SamplerCustom over those sigmas is the oracle."""
    core = core_chain()
    graph = {**core, "sig": sigmas,
             "split": {"class_type": "SplitSigmas", "inputs": {"sigmas": ["sig", 0], "step": 3}},
             "sel": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
             "ref": {"class_type": "SamplerCustom", "inputs": {
                 "model": ["c3", 0], "add_noise": True, "noise_seed": 5, "cfg": 7.0, "positive": ["c5", 0],
                 "negative": ["c6", 0], "sampler": ["sel", 0],
                 "sigmas": ["sig" if denoise == 1.0 else "split", 0 if denoise == 1.0 else 1],
                 "latent_image": ["c7", 0]}},
             "eff": {"class_type": "KSampler (Efficient)", "inputs": {
                 **{k: core["c8"]["inputs"][k] for k in ("model", "positive", "negative", "latent_image", "seed",
                                                         "cfg", "sampler_name")},
                 "steps": 3, "scheduler": scheduler, "denoise": denoise, "preview_method": "none",
                 "vae_decode": "false"}}}
    result = run_graph(registry, graph, ["eff", "ref"])
    assert torch.equal(result.values["eff"][3]["samples"], result.values["ref"][0]["samples"])


def test_token_normalization_and_a1111_closed_forms(registry, models):
    clip = call(registry, "CLIPSetLastLayer", clip=call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")[1],
                stop_at_clip_layer=-1)

    def encode(text, normalization="none", interpretation="comfy"):
        return advanced_encode(clip, text, normalization, interpretation)[0][0]

    def core(text):
        return call(registry, "CLIPEncode", clip=clip, text=text)[0][0]

    assert torch.equal(encode("a (red:1.2) cat"), core("a (red:1.2) cat"))
    # mean: "cat" at 1.5 and "dog" at 1 average 1.25, so both shift down by 0.25
    assert torch.allclose(encode("(cat:1.5) dog", "mean"), core("(cat:1.25) (dog:0.75)"), atol=1e-5)
    # length: a segment of n tokens at weight w has them at 1 + (w - 1) / sqrt(n)
    tokens = clip.tokenize("(tabby marmalade kitten:1.6)")["clip_l"].words[0].count(1)
    assert tokens >= 3
    weight = 1 + 0.6 / tokens ** 0.5
    assert torch.allclose(encode("(tabby marmalade kitten:1.6)", "length"),
                          core(f"(tabby marmalade kitten:{weight:.10f})"), atol=1e-5)
    # A1111: the unweighted embedding times each token's weight, rescaled to the unweighted mean
    base = core("cat dog")
    weights = torch.ones(base.shape[1])
    weights[1] = 1.5  # BOS, then "cat"
    scaled = base * weights[None, :, None]
    assert torch.allclose(encode("(cat:1.5) dog", "none", "A1111"), base.mean() / scaled.mean() * scaled, atol=1e-6)
    # the masking interpretations: "+" is the mask token (266); cat and dog are one token each
    plain, masked_cat, masked_dog = core("cat dog"), core("+ dog"), core("cat +")
    assert torch.allclose(encode("(cat:0.5) dog", "none", "down_weight"), 0.5 * plain + 0.5 * masked_cat, atol=1e-5)
    # down_weight first scales the weights by their top: dog at 2 makes cat 0.25 and dog 1
    assert torch.allclose(encode("(cat:0.5) (dog:2)", "none", "down_weight"),
                          0.25 * plain + 0.75 * masked_cat, atol=1e-5)
    assert torch.allclose(encode("(cat:0.5) (dog:1.5)", "none", "compel"),
                          0.5 * core("cat (dog:1.5)") + 0.5 * core("+ (dog:1.5)"), atol=1e-5)
    up = torch.zeros_like(plain)
    up[:, 2] = 0.5 * (plain - masked_dog)[:, 2]  # dog (position 2) at 1.5
    assert torch.allclose(encode("(cat:0.5) (dog:1.5)", "none", "comfy++"),
                          0.5 * plain + 0.5 * masked_cat + up, atol=1e-5)


def test_refusals_and_seed_marker(registry, models):
    latent = {"samples": torch.zeros(1, 4, 6, 8)}
    model, clip, vae = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    cond = call(registry, "CLIPEncode", clip=clip, text="x")
    common = dict(model=model, positive=cond, negative=cond, latent_image=latent, steps=1)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "KSamplerEfficient", script={"xyplot": ()}, **common)
    assert caught.value.input == "script" and "XY Plot" in str(caught.value)
    # -1: the pack's "random" marker, drawn here when the editor did not; no VAE: a 1x1 image
    *_, first, _, image = call(registry, "KSamplerEfficient", seed=-1, vae_decode="true", **common)
    *_, second, _, _ = call(registry, "KSamplerEfficient", seed=-1, **common)
    assert not torch.equal(first["samples"], second["samples"]) and image.shape == (1, 1, 1, 4)
    cls = registry.get("KSamplerEfficient")
    assert cls.fingerprint(seed=-1) != cls.fingerprint(seed=-1) and cls.fingerprint(seed=3) is None
    with pytest.raises(NodeInputError) as caught:
        call(registry, "UnpackSDXLTuple", sdxl_tuple=(model, clip))
    assert caught.value.input == "sdxl_tuple"


def test_encode_refuses_unknown_linked_choices_naming_them(registry, models):
    # A linked choice is not checked before the run: an unknown one must not fall through to a mode.
    _, clip, _ = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    for name, bad, other in (("weight_interpretation", "comfy+++", "none"), ("token_normalization", "median", "comfy")):
        args = {name: bad, ("token_normalization" if name == "weight_interpretation" else "weight_interpretation"): other}
        with pytest.raises(NodeInputError) as caught:
            advanced_encode(clip, "a cat", **args)
        assert caught.value.input == name and repr(bad) in str(caught.value)
    with pytest.raises(NodeInputError) as caught:  # a text encoder without CLIP's tokens: the setting that needs them
        advanced_encode(object(), "a cat", "mean", "comfy")
    assert caught.value.input == "token_normalization"
    with pytest.raises(NodeInputError) as caught:
        advanced_encode(object(), "a cat", "none", "A1111")
    assert caught.value.input == "weight_interpretation"
