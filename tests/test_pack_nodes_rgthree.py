"""rgthree-comfy's Context pipe, switches and small nodes (nodes/pack_nodes_rgthree.py), read
from UI graphs in the pack's saved shape and API graphs, checked against the pack's rules and
our core nodes: Context / Big (fields from base_ctx unless given), Switch (first non-empty,
muted inputs skipped), Merge (last set wins), Any Switch, Display Int, SDXL Empty Latent Image
(EmptyLatentImage's latent), KSampler Config (into a KSampler, as the same widgets), Image Inset
Crop, Image or Latent Size, Power Prompt (CLIPTextEncode and LoraLoader of its tags) and the SDXL
Power Prompts (CLIPTextEncodeSDXL)."""

import pytest
import torch

from graphflow import memory
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.server.comfyui_object_info import object_info
from graphflow.testing import write_checkpoint, write_lora
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_rgthree import CONTEXT_FIELDS, SDXL_DIMENSIONS, lora_tags
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


@pytest.fixture
def models(tmp_folders):
    for sub in ("checkpoints", "loras"):
        (tmp_folders.models / sub).mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    (tmp_folders.models / "loras" / "styles").mkdir()
    write_lora(tmp_folders.models / "loras" / "styles" / "first.safetensors", "sd1", seed=1)
    write_lora(tmp_folders.models / "loras" / "second.safetensors", "sd1", seed=2)
    return tmp_folders


def test_context_nodes_follow_the_packs_rules(registry):
    model, clip, seed = object(), object(), 7
    ctx, *fields = call(registry, "RgthreeContext", model=model, clip=clip, seed=seed)
    assert set(ctx) == set(CONTEXT_FIELDS) and fields == [model, clip, None, None, None, None, None, 7]
    # a big context on top: base_ctx's fields pass unless given, and the small node keeps the big fields
    big, *big_fields = call(registry, "RgthreeContextBig", base_ctx=ctx, seed=8, steps=20, sampler="euler")
    assert len(big_fields) == 23 and big_fields[:9] == [model, clip, None, None, None, None, None, 8, 20]
    again, *_ = call(registry, "RgthreeContext", base_ctx=big, vae="vae")
    assert (again["steps"], again["sampler"], again["vae"], again["seed"]) == (20, "euler", "vae", 8)
    # switch: the first context that is set; an empty one counts as none
    empty = dict.fromkeys(CONTEXT_FIELDS)
    chosen, *switched = call(registry, "RgthreeContextSwitch", ctx_01=empty, ctx_03=big, ctx_04=ctx)
    assert chosen is big and switched == [model, clip, None, None, None, None, None, 8]
    assert call(registry, "RgthreeContextSwitchBig", ctx_02=empty) == (None,) + (None,) * 23
    # merge: each field from the last context that has it
    merged, *_ = call(registry, "RgthreeContextMerge", ctx_01=big, ctx_02=empty,
                      ctx_03=call(registry, "RgthreeContext", clip="other")[0])
    assert (merged["clip"], merged["model"], merged["steps"], merged["seed"]) == ("other", model, 20, 8)
    assert len(call(registry, "RgthreeContextMergeBig", ctx_01=big)) == 24
    cls = registry.get("RgthreeContextBig")
    assert list(cls.input_specs)[:10] == ["base_ctx", *CONTEXT_FIELDS[:9]]
    assert [o.name for o in cls.output_specs][:4] == ["CONTEXT", "MODEL", "CLIP", "VAE"]
    assert [o.type for o in cls.output_specs][:1] == ["RGTHREE_CONTEXT"]


def test_any_switch_takes_the_first_value(registry):
    empty_ctx = dict.fromkeys(CONTEXT_FIELDS)
    assert call(registry, "RgthreeAnySwitch", any_02=0, any_03=5) == 0  # 0 is a value
    assert call(registry, "RgthreeAnySwitch", any_01=empty_ctx, any_04="x") == "x"
    assert call(registry, "RgthreeAnySwitch") is None


def test_ui_graph_context_switch_skips_a_muted_branch_and_drives_a_sampler(registry, models):
    """As the pack's editor saves them: the Contexts with no widgets, Context Switch fed by a
    muted Context (ComfyUI drops a muted node's links) and a live one, KSampler Config and SDXL
    Empty Latent Image's widgets, KSampler's steps/cfg/sampler/scheduler converted to inputs
    (its latent a small one: the SDXL sizes take long on a tiny model)."""
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", ["tiny.safetensors"],
                outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2, 3]), ("VAE", "VAE", [])]),
        ui_node(2, "CLIPTextEncode", ["a red cube"], [("clip", "CLIP", 2, False)],
                [("CONDITIONING", "CONDITIONING", [4])]),
        ui_node(3, "CLIPTextEncode", ["blurry"], [("clip", "CLIP", 3, False)],
                [("CONDITIONING", "CONDITIONING", [5, 10])]),
        ui_node(4, "Context (rgthree)", [], [("base_ctx", "RGTHREE_CONTEXT", None, False), ("model", "MODEL", 1, False),
                                             ("positive", "CONDITIONING", 4, False),
                                             ("negative", "CONDITIONING", 5, False)],
                [("CONTEXT", "RGTHREE_CONTEXT", [6])]),
        {**ui_node(5, "Context (rgthree)", [], [("positive", "CONDITIONING", 10, False)],
                   [("CONTEXT", "RGTHREE_CONTEXT", [7])]), "mode": 2},
        ui_node(6, "Context Switch (rgthree)", [], [("ctx_01", "RGTHREE_CONTEXT", 7, False),
                                                    ("ctx_02", "RGTHREE_CONTEXT", 6, False),
                                                    ("ctx_03", "RGTHREE_CONTEXT", None, False)],
                [("CONTEXT", "RGTHREE_CONTEXT", []), ("MODEL", "MODEL", [8]), ("CLIP", "CLIP", []),
                 ("VAE", "VAE", []), ("POSITIVE", "CONDITIONING", [9]), ("NEGATIVE", "CONDITIONING", [11])]),
        ui_node(7, "KSampler Config (rgthree)", [3, 2, 6.5, "euler_ancestral", "karras"],
                outputs=[("STEPS", "INT", [12]), ("REFINER_STEP", "INT", []), ("CFG", "FLOAT", [13]),
                         ("SAMPLER", "COMBO", [14]), ("SCHEDULER", "COMBO", [15])]),
        ui_node(8, "SDXL Empty Latent Image (rgthree)", [" 640 x 1536  (portrait)", 2.0, 1],
                outputs=[("LATENT", "LATENT", []), ("CLIP_WIDTH", "INT", [17]), ("CLIP_HEIGHT", "INT", [])]),
        ui_node(9, "KSampler", [3, "fixed", 20, 8.0, "euler", "normal", 1.0],
                [("model", "MODEL", 8, False), ("positive", "CONDITIONING", 9, False),
                 ("negative", "CONDITIONING", 11, False), ("latent_image", "LATENT", 16, False),
                 ("steps", "INT", 12, True), ("cfg", "FLOAT", 13, True), ("sampler_name", "COMBO", 14, True),
                 ("scheduler", "COMBO", 15, True)], [("LATENT", "LATENT", [])]),
        ui_node(10, "Display Int (rgthree)", [], [("input", "INT", 17, False)]),
        ui_node(11, "EmptyLatentImage", [64, 48, 1], outputs=[("LATENT", "LATENT", [16])]),
    ]
    links = [[1, 1, 0, 4, 1, "MODEL"], [2, 1, 1, 2, 0, "CLIP"], [3, 1, 1, 3, 0, "CLIP"],
             [4, 2, 0, 4, 4, "CONDITIONING"], [5, 3, 0, 4, 5, "CONDITIONING"], [6, 4, 0, 6, 1, "RGTHREE_CONTEXT"],
             [7, 5, 0, 6, 0, "RGTHREE_CONTEXT"], [8, 6, 1, 9, 0, "MODEL"], [9, 6, 4, 9, 1, "CONDITIONING"],
             [10, 3, 0, 5, 4, "CONDITIONING"], [11, 6, 5, 9, 2, "CONDITIONING"], [12, 7, 0, 9, 4, "INT"],
             [13, 7, 2, 9, 5, "FLOAT"], [14, 7, 3, 9, 6, "COMBO"], [15, 7, 4, 9, 7, "COMBO"],
             [16, 11, 0, 9, 3, "LATENT"], [17, 8, 1, 10, 0, "INT"]]
    workflow = parse_workflow(ui_graph(nodes, links), registry)
    assert workflow.nodes["7"].inputs == {"steps_total": 3, "refiner_step": 2, "cfg": 6.5,
                                          "sampler_name": "euler_ancestral", "scheduler": "karras"}
    result = Executor(registry).run(workflow, outputs=["1", "6", "9", "10"])
    assert result.ok, (result.problems, result.error)
    assert result.outputs["10"]["text"] == [1280]  # 640 * clip_scale 2
    context, model, _, _, positive, negative = result.values["6"][:6]  # the live context, not the muted one
    assert model is result.values["1"][0] and context["positive"] is positive and negative is context["negative"]
    assert negative is not None and not torch.equal(positive[0][0], negative[0][0])
    # the same sampling with core nodes only
    core = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red cube", "clip": ["1", 1]}},
            "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
            "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
            "5": {"class_type": "KSampler", "inputs": {
                "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0], "seed": 3,
                "steps": 3, "cfg": 6.5, "sampler_name": "euler_ancestral", "scheduler": "karras", "denoise": 1.0}}}
    want = run_graph(registry, core, ["5"]).values["5"][0]["samples"]
    assert want.shape == (1, 4, 6, 8)
    assert torch.equal(result.values["9"][0]["samples"], want)


def test_sdxl_empty_latent_image_sizes(registry):
    for text in SDXL_DIMENSIONS:
        width, height = (int(x) for x in text.replace("x", " ").split()[:2])
        latent, clip_width, clip_height = call(registry, "RgthreeSDXLEmptyLatentImage", dimensions=text,
                                               clip_scale=1.5, batch_size=2)
        want = call(registry, "EmptyLatent", width=width, height=height, batch_size=2)
        assert torch.equal(latent["samples"], want["samples"])
        assert (clip_width, clip_height) == (int(width * 1.5), int(height * 1.5))
    assert width * height == 640 * 1536
    spec = registry.get("RgthreeSDXLEmptyLatentImage").input_specs["dimensions"].widget
    assert spec.default == "1024 x 1024  (square)"


def test_image_inset_crop_and_size(registry):
    image = torch.rand(2, 100, 80, 3, generator=torch.Generator().manual_seed(0))
    out = call(registry, "RgthreeImageInsetCrop", image=image, left=8, right=15, top=17, bottom=0)
    assert torch.equal(out, image[:, 16:100, 8:72])  # insets cut down to multiples of 8
    out = call(registry, "RgthreeImageInsetCrop", image=image, measurement="Percentage", left=25, right=0, top=10,
               bottom=50)
    assert torch.equal(out, image[:, 8:52, 16:80])  # 25% of 80 = 20 -> 16; 10% of 100 -> 8; 50% -> 48
    assert call(registry, "RgthreeImageInsetCrop", image=image) is image
    with pytest.raises(NodeInputError) as caught:
        call(registry, "RgthreeImageInsetCrop", image=image, measurement="Percentage", top=60, bottom=50)
    assert caught.value.input == "top"
    assert call(registry, "RgthreeImageOrLatentSize", input=image) == (80, 100)
    assert call(registry, "RgthreeImageOrLatentSize", input=torch.zeros(1, 30, 20)) == (20, 30)
    assert call(registry, "RgthreeImageOrLatentSize", input={"samples": torch.zeros(1, 4, 12, 9)}) == (72, 96)
    with pytest.raises(NodeInputError, match="expected an image"):
        call(registry, "RgthreeImageOrLatentSize", input="text")


def weights(model, clip):
    unet = memory.manager().weights(model.unet, model.patches)
    tower = clip.towers[0]
    return unet, memory.manager().weights(tower.model, tower.patches)


def test_lora_tags():
    assert lora_tags("a <lora:styles/first:0.5> cat <lora:second> <lora:x:-1.25>, <lora:y:>") == \
        ("a  cat  , ", [("styles/first", 0.5), ("second", 1.0), ("x", -1.25), ("y", 1.0)])


def test_power_prompt_applies_its_lora_tags_as_lora_loaders(registry, models):
    """API graph as the pack's editor queues it (insert widgets at "CHOOSE"), against
    LoraLoader in turn and CLIPTextEncode of the text without the tags."""
    ckpt = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}}
    prompt = "a red cube <lora:first:0.7>, <lora:second.safetensors:0> <lora:missing:1>"
    graph = {"1": ckpt, "2": {"class_type": "Power Prompt (rgthree)", "inputs": {
        "prompt": prompt, "opt_model": ["1", 0], "opt_clip": ["1", 1], "insert_lora": "CHOOSE",
        "insert_embedding": "CHOOSE", "insert_saved": "CHOOSE"}},
        "3": {"class_type": "Power Prompt - Simple (rgthree)", "inputs": {"prompt": "blurry", "opt_clip": ["1", 1],
                                                                           "insert_embedding": "CHOOSE"}},
        "4": {"class_type": "Power Prompt (rgthree)", "inputs": {"prompt": prompt, "opt_model": ["1", 0],
                                                                 "opt_clip": ["1", 1], "insert_lora": "DISABLE LORAS"}},
        "5": {"class_type": "Power Prompt (rgthree)", "inputs": {"prompt": prompt}}}
    got = run_graph(registry, graph, ["2", "3", "4", "5"]).values
    core = {"1": ckpt, "2": {"class_type": "LoraLoader", "inputs": {
        "model": ["1", 0], "clip": ["1", 1], "lora_name": "styles/first.safetensors", "strength_model": 0.7,
        "strength_clip": 0.7}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red cube ,  ", "clip": ["2", 1]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}}}
    want = run_graph(registry, core, ["3", "4"]).values
    cond, model, clip, text = got["2"]
    assert text == "a red cube ,  "
    (unet, tower), (unet_want, tower_want) = weights(model, clip), weights(*want["2"])
    base_unet, _ = weights(*want["1"][:2])
    assert any(not torch.equal(unet[n], base_unet[n]) for n in unet)
    assert all(torch.equal(unet[n], unet_want[n]) for n in unet) and all(torch.equal(tower[n], tower_want[n])
                                                                      for n in tower)
    assert torch.equal(cond[0][0], want["3"][0][0][0])
    assert torch.equal(got["3"][0][0][0], want["4"][0][0][0]) and got["3"][1] == "blurry"
    cond, model, clip, text = got["4"]  # DISABLE LORAS: tags out, nothing applied
    assert text == "a red cube ,  " and model is got["1"][0] and clip is got["1"][1]
    assert torch.equal(cond[0][0], call(registry, "CLIPEncode", text=text, clip=clip)[0][0])
    assert got["5"] == (None, None, None, "a red cube ,  ")  # nothing connected: tags out, no conditioning


def test_power_prompts_read_the_packs_ui_widgets(registry):
    """The pack's editor drops the server's insert lists and adds back only those with entries
    (insert_lora first), always showing "CHOOSE" but for insert_lora's "DISABLE LORAS"; it hides
    the SDXL prompts' target and crop sizes, and resolves {a|b} in every Power Prompt's prompts
    (as it does in CLIPTextEncode's; the pack's 601043ed declares them all dynamicPrompts)."""
    nodes = [ui_node(1, "Power Prompt (rgthree)", ["{a|a} <lora:x:1>", "DISABLE LORAS", "CHOOSE"],
                     outputs=[("CONDITIONING", "CONDITIONING", [])]),
             ui_node(2, "Power Prompt - Simple (rgthree)", ["blurry {a|a}", "CHOOSE"]),
             ui_node(3, "SDXL Power Prompt - Positive (rgthree)", ["g", "l", "CHOOSE"]),
             ui_node(4, "SDXL Power Prompt - Simple / Negative (rgthree)", ["g2 {b|b}", "{c|c} l2"])]
    workflow = parse_workflow(ui_graph(nodes, []), registry)
    assert workflow.nodes["1"].inputs == {"prompt": "a <lora:x:1>", "insert_lora": "DISABLE LORAS",
                                          "insert_embedding": "CHOOSE"}
    assert workflow.nodes["2"].inputs == {"prompt": "blurry a", "insert_embedding": "CHOOSE"}
    assert workflow.nodes["3"].inputs == {"prompt_g": "g", "prompt_l": "l", "insert_lora": "CHOOSE"}
    assert workflow.nodes["4"].inputs == {"prompt_g": "g2 b", "prompt_l": "c l2"}
    result = Executor(registry).run(workflow, outputs=["1", "2", "3", "4"])
    assert result.ok, (result.problems, result.error)
    assert result.values["1"] == (None, None, None, "a ")
    assert result.values["4"] == (None, "g2 b", "c l2")
    info = object_info(registry)  # the editor's object_info marks them dynamic, as the pack's
    for name, inputs in (("Power Prompt - Simple (rgthree)", ("prompt",)),
                         ("SDXL Power Prompt - Simple / Negative (rgthree)", ("prompt_g", "prompt_l"))):
        assert all(info[name]["input"]["required"][i][1].get("dynamicPrompts") is True for i in inputs)


def test_sdxl_power_prompts_encode_as_clip_text_encode_sdxl(registry, tmp_folders):
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "xl.safetensors", "sdxl")
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "xl.safetensors"}},
             "2": {"class_type": "SDXL Empty Latent Image (rgthree)", "inputs": {
                 "dimensions": "1216 x 832   (landscape)", "clip_scale": 2.0, "batch_size": 1}},
             "3": {"class_type": "SDXL Power Prompt - Positive (rgthree)", "inputs": {
                 "prompt_g": "a red cube", "prompt_l": "sharp", "opt_model": ["1", 0], "opt_clip": ["1", 1],
                 "opt_clip_width": ["2", 1], "opt_clip_height": ["2", 2], "insert_lora": "CHOOSE"}},
             "4": {"class_type": "SDXL Power Prompt - Simple / Negative (rgthree)", "inputs": {
                 "prompt_g": "blurry", "prompt_l": "dark", "opt_clip": ["1", 1], "opt_clip_width": ["2", 1],
                 "opt_clip_height": ["2", 2], "target_width": 1024, "crop_height": 16}},
             "5": {"class_type": "CLIPTextEncodeSDXL", "inputs": {
                 "clip": ["1", 1], "width": 2432, "height": 1664, "crop_w": 0, "crop_h": 0, "target_width": 2432,
                 "target_height": 1664, "text_g": "a red cube", "text_l": "sharp"}},
             "6": {"class_type": "CLIPTextEncodeSDXL", "inputs": {
                 "clip": ["1", 1], "width": 2432, "height": 1664, "crop_w": 0, "crop_h": 16, "target_width": 1024,
                 "target_height": 1664, "text_g": "blurry", "text_l": "dark"}},
             "7": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
             "8": {"class_type": "SDXL Power Prompt - Positive (rgthree)", "inputs": {
                 "prompt_g": "a", "prompt_l": "b", "opt_clip": ["7", 1]}},
             "9": {"class_type": "CLIPTextEncode", "inputs": {"text": "a\nb", "clip": ["7", 1]}},
             "10": {"class_type": "SDXL Power Prompt - Positive (rgthree)", "inputs": {
                 "prompt_g": "a", "prompt_l": "b", "opt_clip": ["7", 1], "opt_clip_width": ["2", 1],
                 "opt_clip_height": ["2", 2]}},
             "11": {"class_type": "SDXL Power Prompt - Simple / Negative (rgthree)", "inputs": {
                 "prompt_g": "a", "prompt_l": "b", "opt_clip": ["7", 1]}},
             "12": {"class_type": "SDXL Power Prompt - Simple / Negative (rgthree)", "inputs": {
                 "prompt_g": "a", "prompt_l": "b", "opt_clip": ["7", 1], "opt_clip_width": ["2", 1],
                 "opt_clip_height": ["2", 2]}}}
    values = run_graph(registry, graph, ["3", "4", "5", "6", "8", "9", "10", "11", "12"]).values
    for got, want in ((values["3"][0], values["5"][0]), (values["4"][0], values["6"][0])):
        [(tokens, options)], [(tokens_want, options_want)] = got, want
        assert torch.equal(tokens, tokens_want) and options.keys() == options_want.keys()
        assert all(torch.equal(options[k], v) if torch.is_tensor(v) else options[k] == v
                   for k, v in options_want.items())
    assert values["4"][0][0][1]["crop_h"] == 16 and values["3"][3:] == ("a red cube", "sharp")
    # no sizes linked: CLIPTextEncode of both prompts on two lines
    assert torch.equal(values["8"][0][0][0], values["9"][0][0][0]) and values["8"][1] is None
    assert values["10"][0] is None  # an SD1 text encoder can't encode SDXL's way: none, as the pack
    # the Simple / Negative one encodes as the Positive one (the pack's shared get_conditioning)
    assert torch.equal(values["11"][0][0][0], values["9"][0][0][0]) and values["12"] == (None, "a", "b")


def test_any_switch_skips_muted_inputs_and_takes_what_a_bypass_passes(registry):
    """ComfyUI drops a muted node's links (the switch's input is then unset) and passes a
    bypassed node's input on; the pack's switch relies on both."""
    def image(id, width, links, mode=0):
        return {**ui_node(id, "EmptyImage", [width, 8, 1, 0], outputs=[("IMAGE", "IMAGE", links)]), "mode": mode}

    nodes = [image(1, 16, [1], mode=2), image(2, 24, [2]), image(3, 32, [3]),
             {**ui_node(4, "ImageInvert", [], [("image", "IMAGE", 3, False)], [("IMAGE", "IMAGE", [4])]), "mode": 4},
             ui_node(5, "Any Switch (rgthree)", [], [("any_01", "IMAGE", 1, False), ("any_02", "IMAGE", 2, False),
                                                     ("any_03", "IMAGE", None, False)], [("*", "IMAGE", [5])]),
             ui_node(6, "Any Switch (rgthree)", [], [("any_01", "IMAGE", 4, False), ("any_02", "IMAGE", 6, False),
                                                     ("any_03", "IMAGE", None, False)], [("*", "IMAGE", [])]),
             ui_node(7, "GetImageSize", [], [("image", "IMAGE", 5, False)],
                     [("width", "INT", []), ("height", "INT", []), ("batch_size", "INT", [])])]
    nodes[1]["outputs"][0]["links"] = [2, 6]
    links = [[1, 1, 0, 5, 0, "IMAGE"], [2, 2, 0, 5, 1, "IMAGE"], [3, 3, 0, 4, 0, "IMAGE"], [4, 4, 0, 6, 0, "IMAGE"],
             [5, 5, 0, 7, 0, "IMAGE"], [6, 2, 0, 6, 1, "IMAGE"]]
    result = run_graph(registry, ui_graph(nodes, links), ["6", "7"])
    assert tuple(result.values["7"])[:2] == (24, 8)  # the muted first input is skipped
    assert result.values["6"][0] is result.values["3"][0]  # the bypass passes its input, not inverted


def test_big_contexts_in_an_api_graph(registry):
    """The pack's class names and inputs in an API graph: KSampler Config's outputs into Context
    Big's sampler fields, merged over a Context Big holding a seed, switched, read back out."""
    graph = {"1": {"class_type": "KSampler Config (rgthree)", "inputs": {
        "steps_total": 12, "refiner_step": 9, "cfg": 4.5, "sampler_name": "dpmpp_2m", "scheduler": "karras"}},
        "2": {"class_type": "Context Big (rgthree)", "inputs": {
            "steps": ["1", 0], "step_refiner": ["1", 1], "cfg": ["1", 2], "sampler": ["1", 3], "scheduler": ["1", 4]}},
        "3": {"class_type": "Seed (rgthree)", "inputs": {"seed": 77}},
        "4": {"class_type": "Context Big (rgthree)", "inputs": {"seed": ["3", 0], "steps": ["1", 1]}},
        "5": {"class_type": "Context Merge Big (rgthree)", "inputs": {"ctx_01": ["2", 0], "ctx_02": ["4", 0]}},
        "6": {"class_type": "Context Switch Big (rgthree)", "inputs": {"ctx_02": ["5", 0]}},
        "7": {"class_type": "Display Int (rgthree)", "inputs": {"input": ["6", 9]}}}
    result = run_graph(registry, graph, ["6", "7"])
    _, *fields = result.values["6"]
    got = dict(zip(CONTEXT_FIELDS, fields))
    assert {k: got[k] for k in ("seed", "steps", "step_refiner", "cfg", "sampler", "scheduler", "model")} == \
        {"seed": 77, "steps": 9, "step_refiner": 9, "cfg": 4.5, "sampler": "dpmpp_2m", "scheduler": "karras",
         "model": None}
    assert result.outputs["7"]["text"] == [9]
