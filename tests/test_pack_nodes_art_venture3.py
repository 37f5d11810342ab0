"""comfyui-art-venture round 3 (nodes/pack_nodes_art_venture3.py): AV_IPAdapterPipe and AV_IPAdapter in
API-format workflows run through the executor against the chain of graphflow's ComfyUI_IPAdapter_plus
nodes the pack calls (IPAdapterModelLoader + CLIPVisionLoader + IPAdapterAdvanced with the simple node's
weight type), sampled on the tiny random-weight SD1.5 / IP-Adapter / CLIP vision files of
tests/test_ip_adapter.py: equal latents; the pack's schema; bad inputs refused by name."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from graphflow.comfy_format import WorkflowFormatError, custom_pack, import_api, import_ui, unknown_type_hint
from graphflow.context import NodeInputError
from graphflow.models.ip_adapter import IPAdapterBundle
from graphflow.testing import clip_vision_state
from tests.test_ip_adapter import graph, models, run, sdxl_models  # noqa: F401 (fixtures)
from tests.test_nodes_image_mask import call

ADAPTER, PLUS, VISION = "ip-adapter_sd15.safetensors", "ip-adapter-plus_sd15.safetensors", "vit_tiny.safetensors"

# the pack's INPUT_TYPES (name, default) and RETURN_NAMES at cf102d82 (IPAdapter's weight_type list)
PACK = {
    "AV_IPAdapterPipe": ([("ip_adapter_name", None), ("clip_name", None)], ["pipeline"]),
    "AV_IPAdapter": ([("ip_adapter_name", "None"), ("clip_name", "None"), ("model", None), ("image", None),
                      ("weight", 1.0), ("ip_adapter_opt", None), ("clip_vision_opt", None), ("attn_mask", None),
                      ("start_at", 0.0), ("end_at", 1.0), ("weight_type", "standard"), ("enabled", True)],
                     ["model", "pipeline", "clip_vision"]),
}


def test_inputs_outputs_and_category_follow_the_pack(builtin_registry):
    for class_type, (inputs, outputs) in PACK.items():
        cls = builtin_registry.comfy_node(class_type)
        assert [(s.name, s.default) for s in cls.input_specs.values()] == inputs, class_type
        assert [o.name for o in cls.output_specs] == outputs
        assert cls.category == "Art Venture/IP Adapter" and custom_pack(class_type) == "comfyui-art-venture"
    weight_type = builtin_registry.comfy_node("AV_IPAdapter").input_specs["weight_type"].widget
    assert list(weight_type.options) == ["standard", "prompt is more important", "style transfer"]
    for left_out in ("AV_StyleApply", "AV_IPAdapterEncodeFromJson"):  # the pack's load_images_from_url
        assert all(kind in unknown_type_hint(left_out) for kind in ("web addresses", "data:", "file://", "/view"))
    assert "stacked (positive, negative) EMBEDS" in unknown_type_hint("AV_IPAdapterEncodeFromJson")
    assert "nothing in graphflow makes" in unknown_type_hint("AV_IPAdapterApplyEncoded")
    assert "K+mean(V) w/ C penalty" in unknown_type_hint("AV_IPAdapterApplyEncoded")


def test_ui_widgets_map_in_the_packs_order(builtin_registry):
    ui = {"nodes": [
        {"id": 1, "type": "AV_IPAdapter", "inputs": [], "outputs": [],
         "widgets_values": [ADAPTER, VISION, 0.7, 0.1, 0.9, "style transfer", False]},
        {"id": 2, "type": "AV_IPAdapterPipe", "inputs": [], "outputs": [], "widgets_values": [PLUS, VISION]}],
        "links": []}
    nodes = import_ui(ui, builtin_registry).nodes
    assert nodes["1"].inputs == {"ip_adapter_name": ADAPTER, "clip_name": VISION, "weight": 0.7, "start_at": 0.1,
                                 "end_at": 0.9, "weight_type": "style transfer", "enabled": False}
    assert nodes["2"].inputs == {"ip_adapter_name": PLUS, "clip_name": VISION}


def av_node(**inputs):
    return {"class_type": "AV_IPAdapter", "inputs": {
        "ip_adapter_name": ADAPTER, "clip_name": VISION, "model": ["1", 0], "image": ["5", 0], "weight": 1.0,
        "start_at": 0.0, "end_at": 1.0, "weight_type": "standard", "enabled": True, **inputs}}


def av_graph(**inputs):
    g = graph()
    g["7"] = av_node(**inputs)
    return g


def test_av_ipadapter_samples_as_the_ipadapter_plus_chain(builtin_registry, models):
    """The file names, weight, range, weight types (standard = linear, prompt is more important =
    ease out, style transfer) and attention mask give the latents of IPAdapterAdvanced on the same
    files; off, the model passes."""
    prompted = run(builtin_registry, av_graph())
    assert torch.equal(prompted, run(builtin_registry, graph()))
    assert torch.equal(run(builtin_registry, av_graph(weight=0.6, start_at=0.5)),
                       run(builtin_registry, graph(weight=0.6, start_at=0.5)))
    eased = run(builtin_registry, av_graph(weight_type="prompt is more important"))
    assert torch.equal(eased, run(builtin_registry, graph(weight_type="ease out")))
    assert (eased - prompted).abs().max() > 1e-5
    styled = run(builtin_registry, av_graph(weight_type="style transfer"))
    assert torch.equal(styled, run(builtin_registry, graph(weight_type="style transfer")))
    assert (styled - prompted).abs().max() > 1e-5
    masked_graph = av_graph(attn_mask=["20", 0])
    masked_graph["20"] = {"class_type": "SolidMask", "inputs": {"value": 0.25, "width": 64, "height": 64}}
    masked = run(builtin_registry, masked_graph)
    masked_chain = graph(attn_mask=["20", 0])
    masked_chain["20"] = masked_graph["20"]
    assert torch.equal(masked, run(builtin_registry, masked_chain))
    assert (masked - prompted).abs().max() > 1e-5
    plain_graph = graph()
    plain_graph["9"]["inputs"]["model"] = ["1", 0]
    off = av_graph(enabled=False, ip_adapter_name="None", clip_name="None")  # nothing is loaded
    assert torch.equal(run(builtin_registry, off), run(builtin_registry, plain_graph))


def test_pipe_and_chained_adapters_sample_as_the_ipadapter_plus_chain(builtin_registry, models):
    """AV_IPAdapterPipe's pipeline (a plus adapter) in ip_adapter_opt, no file names; a second
    AV_IPAdapter on the first's model, pipeline and CLIP vision outputs; an IPAdapterModelLoader's
    adapter in ip_adapter_opt with clip_name's file: each as the IPAdapter_plus nodes; the pipeline
    also drives IPAdapterAdvanced, as the unified loader's does. The chain uses the outputs the pack
    means (model, pipeline, CLIP vision); with today's IPAdapter_plus the pack itself shifts them
    (None, the pipeline dict), so ComfyUI's second node would load its own files instead."""
    piped = av_graph(ip_adapter_name="None", clip_name="None", ip_adapter_opt=["10", 0])
    piped["10"] = {"class_type": "AV_IPAdapterPipe", "inputs": {"ip_adapter_name": PLUS, "clip_name": VISION}}
    plus = run(builtin_registry, graph(PLUS))
    assert torch.equal(run(builtin_registry, piped), plus)
    into_ipadapter_plus = graph(ipadapter=["10", 0])  # the pipeline brings its CLIP vision model
    del into_ipadapter_plus["7"]["inputs"]["clip_vision"]
    into_ipadapter_plus["10"] = piped["10"]
    assert torch.equal(run(builtin_registry, into_ipadapter_plus), plus)

    chained = av_graph()
    chained["11"] = av_node(model=["7", 0], ip_adapter_opt=["7", 1], ip_adapter_name="None", clip_name="None",
                            weight=0.5, weight_type="prompt is more important")
    chained["9"]["inputs"]["model"] = ["11", 0]
    twice = graph()
    twice["12"] = {"class_type": "IPAdapterAdvanced", "inputs": {
        **twice["7"]["inputs"], "model": ["7", 0], "weight": 0.5, "weight_type": "ease out"}}
    twice["9"]["inputs"]["model"] = ["12", 0]
    model = call(builtin_registry, "LoadCheckpoint", checkpoint="sd1.safetensors")[0]
    _, pipeline, vision = call(builtin_registry, "AVIPAdapter", model=model, image=torch.rand(1, 32, 32, 3),
                               ip_adapter_name=ADAPTER, clip_name=VISION)
    assert isinstance(pipeline, IPAdapterBundle) and vision is pipeline.clip_vision  # not the pack's shifted slots
    assert (pipeline.adapter_file, pipeline.clip_vision_file) == (ADAPTER, VISION)
    by_pack = run(builtin_registry, chained)
    assert torch.equal(by_pack, run(builtin_registry, twice))
    vision_out = av_graph()
    vision_out["11"] = av_node(model=["7", 0], ip_adapter_opt=["6", 0], clip_vision_opt=["7", 2], clip_name="None",
                               weight=0.5, weight_type="prompt is more important")
    vision_out["9"]["inputs"]["model"] = ["11", 0]
    assert torch.equal(run(builtin_registry, vision_out), by_pack)

    loaded = av_graph(ip_adapter_name="None", ip_adapter_opt=["6", 0])
    assert torch.equal(run(builtin_registry, loaded), run(builtin_registry, graph()))


def test_bad_inputs_are_named(builtin_registry, sdxl_models):
    # a CLIP vision model whose embeddings are wider than the adapter's 32: the error names where it came from
    save_file(clip_vision_state("clip", projection_dim=48), str(sdxl_models / "clip_vision" / "wide.safetensors"))
    model = call(builtin_registry, "LoadCheckpoint", checkpoint="sd1.safetensors")[0]
    image = torch.rand(1, 32, 32, 3)
    base = dict(model=model, image=image, ip_adapter_name=ADAPTER, clip_name=VISION)
    wide = call(builtin_registry, "LoadCLIPVision", clip_name="wide.safetensors")
    wide_pipe = call(builtin_registry, "AVIPAdapterPipe", ip_adapter_name=ADAPTER, clip_name="wide.safetensors")
    for change, name in ((dict(clip_name="wide.safetensors"), "clip_name"),
                         (dict(ip_adapter_opt=wide_pipe, ip_adapter_name="None", clip_name="None"), "ip_adapter_opt"),
                         (dict(clip_vision_opt=wide), "clip_vision_opt"),
                         (dict(ip_adapter_name="ip-adapter_sdxl.safetensors"), "ip_adapter_name")):
        with pytest.raises(NodeInputError) as info:
            call(builtin_registry, "AVIPAdapter", **{**base, **change})
        assert info.value.input == name, change
    for change, name, match in ((dict(ip_adapter_name="None"), "ip_adapter_name", "choose an IP-Adapter"),
                                (dict(clip_name="None"), "clip_name", "choose a CLIP vision"),
                                (dict(image=torch.rand(32, 32)), "image", "IMAGE"),
                                (dict(image=torch.rand(0, 8, 8, 3)), "image", "at least one picture"),
                                (dict(ip_adapter_opt="an adapter"), "ip_adapter_opt", "IPAdapterModelLoader")):
        with pytest.raises(NodeInputError, match=match) as info:
            call(builtin_registry, "AVIPAdapter", **{**base, **change})
        assert info.value.input == name
    with pytest.raises(NodeInputError) as info:
        call(builtin_registry, "AVIPAdapterPipe", ip_adapter_name="a_lora.safetensors", clip_name=VISION)
    assert info.value.input == "ip_adapter_name"
    assert call(builtin_registry, "AVIPAdapter", **{**base, "ip_adapter_name": "None", "enabled": False}) == (
        model, None, None)


def test_older_saves_are_read_or_refused(builtin_registry):
    """The IPAdapter_plus v2-era AV_IPAdapter saved noise after weight (never used) and "style
    transfer (SDXL only)"; the v1-era one saved noise in weight_type's place, which is refused."""
    def ui(values):
        return {"nodes": [{"id": 1, "type": "AV_IPAdapter", "inputs": [], "outputs": [], "widgets_values": values}],
                "links": []}
    workflow = import_ui(ui([ADAPTER, VISION, 0.8, 0.3, 0.1, 0.9, "style transfer (SDXL only)", False]),
                         builtin_registry)
    assert workflow.nodes["1"].inputs == {"ip_adapter_name": ADAPTER, "clip_name": VISION, "weight": 0.8,
                                          "start_at": 0.1, "end_at": 0.9, "weight_type": "style transfer",
                                          "enabled": False}
    assert any("noise" in n["message"] for n in workflow.notes)
    with pytest.raises(WorkflowFormatError, match="v1-era"):
        import_ui(ui([ADAPTER, VISION, 0.8, 0.0, 0.0, 1.0, True]), builtin_registry)
    api = import_api({"7": av_node(noise=0.2, weight_type="style transfer (SDXL only)")}, builtin_registry)
    assert "noise" not in api.nodes["7"].inputs and api.nodes["7"].inputs["weight_type"] == "style transfer"
