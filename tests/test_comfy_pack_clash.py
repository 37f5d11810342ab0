"""ComfyUI class names that two packs register (Masquerade's and EllangoK's post-processing "Blur"),
and graphflow's own nodes whose name a ComfyUI class shares (our LatentInterpolate beside ComfyUI's):
each save is read as the node its pack ids (UI: properties cnr_id / aux_id) or its input names (API)
name, the default otherwise; exports write the class name and the pack ids back; and no class name
is claimed twice without a way to choose (Registry.claimants, Registry.problems)."""

from __future__ import annotations

import json

import pytest
import torch

from graphflow.api import IMAGE, ComfyAlias, Int, Node
from graphflow.comfy_format import export_api, export_ui
from graphflow.registry import Registry
from graphflow.workflow import comfy_aliases, parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

POST = {"cnr_id": "comfyui-post-processing-nodes", "aux_id": "EllangoK/ComfyUI-post-processing-nodes"}


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def blur_save(widgets, properties=None):
    """A UI save: a grey-ish 24 × 20 EmptyImage into a Blur, its widgets and properties as given."""
    blur = ui_node(2, "Blur", widgets, [("image", "IMAGE", 1, False)], [("IMAGE", "IMAGE", [])])
    blur["properties"] = {"Node name for S&R": "Blur", **(properties or {})}
    return ui_graph([ui_node(1, "EmptyImage", [24, 20, 1, 0x80C040], outputs=[("IMAGE", "IMAGE", [1])]), blur],
                    [[1, 1, 0, 2, 0, "IMAGE"]])


def blur_prompt(**widgets):
    image = {"width": 24, "height": 20, "batch_size": 1, "color": 0x80C040}
    return {"1": {"class_type": "EmptyImage", "inputs": image},
            "2": {"class_type": "Blur", "inputs": {"image": ["1", 0], **widgets}}}


def ran_as(registry, graph):
    """The node type the Blur was read as, and its output beside the same node called directly."""
    workflow = parse_workflow(graph, registry)
    result = run_graph(registry, graph, outputs=["2"])
    node = workflow.nodes["2"]
    image = result.values["1"][0]
    widgets = {name: value for name, value in node.inputs.items() if name != "image"}
    return node.type, result.values["2"][0], call(registry, node.type, image=image, **widgets)


@pytest.mark.parametrize("properties, widgets, expected", [
    (None, [2, 0.7], "MasqueradeBlur"),  # no pack id: the default, Masquerade's
    ({"cnr_id": "comfy-core"}, [2, 0.7], "MasqueradeBlur"),  # an id no claimant names: the default
    ({"cnr_id": POST["cnr_id"], "ver": "1.0.0"}, [2, 0.7], "PostProcBlur"),
    ({"aux_id": POST["aux_id"].lower()}, [2, 0.7], "PostProcBlur"),  # compared case-insensitively
    ({"cnr_id": "masquerade-nodes-comfyui"}, [2, 0.7], "MasqueradeBlur"),
])
def test_ui_save_runs_the_blur_its_pack_id_names(registry, properties, widgets, expected):
    node_type, out, direct = ran_as(registry, blur_save(widgets, properties))
    assert node_type == expected
    assert torch.equal(out, direct)
    node = parse_workflow(blur_save(widgets, properties), registry).nodes["2"]
    names = ("blur_radius", "sigma") if expected == "PostProcBlur" else ("radius", "sigma_factor")
    assert node.inputs == {"image": ["1", 0], names[0]: 2, names[1]: 0.7}  # the claimant's widget layout


def test_the_two_blurs_differ_so_the_choice_shows(registry):
    _, masquerade, _ = ran_as(registry, blur_save([2, 0.7]))
    _, post, _ = ran_as(registry, blur_save([2, 0.7], POST))
    # the same numbers mean other things: Masquerade mirrors the edges (a flat picture stays flat),
    # the post-processing pack pads with black (its edges darken)
    assert torch.allclose(masquerade, masquerade[:, :1, :1]) and post[0, 0, 0, 0] < post[0, 5, 6, 0]


@pytest.mark.parametrize("widgets, expected", [
    ({"blur_radius": 2, "sigma": 0.7}, "PostProcBlur"),
    ({"sigma": 0.7}, "PostProcBlur"),
    ({"radius": 2, "sigma_factor": 0.7}, "MasqueradeBlur"),
    ({}, "MasqueradeBlur"),  # only `image` linked: either could read it; the default
])
def test_api_prompt_runs_the_blur_its_input_names_fit(registry, widgets, expected):
    node_type, out, direct = ran_as(registry, blur_prompt(**widgets))
    assert node_type == expected
    assert torch.equal(out, direct)


def test_api_prompt_fitting_neither_blur_is_the_default(registry):
    workflow = parse_workflow(blur_prompt(radius=2, sigma=0.7), registry)
    assert workflow.nodes["2"].type == "MasqueradeBlur"


def test_ui_save_of_the_post_processing_blur_round_trips_with_its_pack_id(registry):
    data = blur_save([3, 1.5], POST)
    written = export_ui(parse_workflow(data, registry), registry)
    blur = next(n for n in written["nodes"] if n["id"] == 2)
    assert blur["type"] == "Blur" and blur["properties"]["cnr_id"] == POST["cnr_id"]
    assert blur["widgets_values"] == [3, 1.5]
    again = parse_workflow(json.loads(json.dumps(written)), registry)
    assert again.nodes["2"].type == "PostProcBlur" and again.nodes["2"].inputs["blur_radius"] == 3


def test_api_prompt_read_by_names_exports_as_blur_with_the_pack_ids(registry):
    workflow = parse_workflow(blur_prompt(blur_radius=4, sigma=2.0), registry)
    api = export_api(workflow, registry)
    assert api["2"]["class_type"] == "Blur"
    assert api["2"]["inputs"] == {"image": ["1", 0], "blur_radius": 4, "sigma": 2.0}
    assert parse_workflow(api, registry).nodes["2"].type == "PostProcBlur"
    ui = json.loads(json.dumps(export_ui(workflow, registry)))
    blur = next(n for n in ui["nodes"] if n["id"] == 2)
    assert blur["type"] == "Blur" and {k: blur["properties"][k] for k in POST} == POST
    assert blur["widgets_values"] == [4, 2.0]
    again = parse_workflow(ui, registry)
    assert again.nodes["2"].type == "PostProcBlur" and again.nodes["2"].inputs["sigma"] == 2.0


def test_our_workflow_of_both_blurs_exports_and_reads_back_each(registry):
    ours = {"version": 1, "nodes": {
        "1": {"type": "EmptyImage", "inputs": {"width": 24, "height": 20}},
        "2": {"type": "PostProcBlur", "inputs": {"image": ["1", 0], "blur_radius": 2}},
        "3": {"type": "MasqueradeBlur", "inputs": {"image": ["1", 0], "radius": 2}}}}
    workflow = parse_workflow(ours, registry)
    for written in (export_api(workflow, registry), json.loads(json.dumps(export_ui(workflow, registry)))):
        again = parse_workflow(written, registry)
        assert (again.nodes["2"].type, again.nodes["3"].type) == ("PostProcBlur", "MasqueradeBlur")
    ui = export_ui(workflow, registry)
    masquerade = next(n for n in ui["nodes"] if n["id"] == 3)
    assert "cnr_id" not in masquerade["properties"]  # the default needs no id


def test_a_blur_inside_a_subgraph_is_chosen_by_its_pack_id(registry):
    data = blur_save([2, 0.7], POST)
    inner = data["nodes"][1]
    inner["inputs"][0]["link"] = 1
    subgraph = {"id": "sub-1", "name": "blurring", "nodes": [inner],
                "links": [{"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 2, "target_slot": 0,
                           "type": "IMAGE"}],
                "inputs": [{"name": "image", "type": "IMAGE"}], "outputs": []}
    outer = ui_node(5, "sub-1", [], [("image", "IMAGE", 1, False)])
    data = ui_graph([data["nodes"][0], outer], [[1, 1, 0, 5, 0, "IMAGE"]])
    data["definitions"] = {"subgraphs": [subgraph]}
    workflow = parse_workflow(data, registry)
    assert workflow.nodes["5:2"].type == "PostProcBlur"
    assert workflow.nodes["5:2"].inputs == {"image": ["1", 0], "blur_radius": 2, "sigma": 0.7}


def test_a_blur_inside_a_legacy_group_node_is_chosen_by_its_pack_id(registry):
    blur = {**ui_node(0, "Blur", [2, 0.7], [("image", "IMAGE", None, False)], [("IMAGE", "IMAGE", [])]),
            "properties": dict(POST), "index": 0}
    instance = {**ui_node(6, "workflow>Blurs", [3, 1.5], [("image", "IMAGE", 1, False)], [("IMAGE", "IMAGE", [])])}
    data = ui_graph([ui_node(1, "EmptyImage", [24, 20, 1, 0], outputs=[("IMAGE", "IMAGE", [1])]), instance],
                    [[1, 1, 0, 6, 0, "IMAGE"]])
    data["extra"]["groupNodes"] = {"Blurs": {"nodes": [blur], "links": [], "external": []}}
    workflow = parse_workflow(data, registry)
    assert workflow.nodes["6:0"].type == "PostProcBlur"
    assert workflow.nodes["6:0"].inputs == {"image": ["1", 0], "blur_radius": 3, "sigma": 1.5}  # the group's values


def test_our_own_latent_interpolate_survives_a_trip_through_comfyuis_formats(registry):
    """ComfyUI's core LatentInterpolate is LatentNormInterpolate; graphflow's own node of that name
    goes out under its name and comes back by its input names (API) or the OWN_PACK id (UI)."""
    ours = {"version": 1, "nodes": {
        "1": {"type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64}},
        "2": {"type": "LatentInterpolate", "inputs": {"latent_a": ["1", 0], "latent_b": ["1", 0], "t": 0.25}}}}
    workflow = parse_workflow(ours, registry)
    api = export_api(workflow, registry)
    assert api["2"]["class_type"] == "LatentInterpolate"
    assert parse_workflow(api, registry).nodes["2"].type == "LatentInterpolate"
    ui = json.loads(json.dumps(export_ui(workflow, registry)))
    node = next(n for n in ui["nodes"] if n["id"] == 2)
    assert node["type"] == "LatentInterpolate" and node["properties"]["cnr_id"] == "graphflow"
    assert [o["name"] for o in node["outputs"]] == ["latent"]  # ours, not the core class's
    again = parse_workflow(ui, registry)
    assert again.nodes["2"].type == "LatentInterpolate" and again.nodes["2"].inputs["t"] == 0.25
    core = {"1": api["1"], "2": {"class_type": "LatentInterpolate",
                                 "inputs": {"samples1": ["1", 0], "samples2": ["1", 0], "ratio": 0.5}}}
    assert parse_workflow(core, registry).nodes["2"].type == "LatentNormInterpolate"


def test_no_comfy_class_is_claimed_twice_without_a_way_to_choose(registry):
    """Every ComfyUI class name two of our nodes claim: each claimant but the default names its
    pack (ComfyAlias.pack, or our own node's OWN_PACK), so no pack builder shadows a class silently."""
    names = {t for cls in registry for alias in comfy_aliases(cls) for t in alias.class_types}
    names |= {cls.node_type for cls in registry}
    clashing = {name for name in names if len(registry.claimants(name)) > 1}
    assert clashing == {"Blur", "LatentInterpolate", "LatentStats"}
    for name in clashing:
        default, *others = registry.claimants(name)
        assert registry.comfy_node(name) is default.node
        for claim in others:
            assert claim.pack, (name, claim.node.node_type)
    assert [c.node.node_type for c in registry.claimants("Blur")] == ["MasqueradeBlur", "PostProcBlur"]
    assert not [p for p in registry.problems if p["kind"] == "clash"]


def _node(name, class_type=None, pack=()):
    namespace = {"__doc__": f"{name}.", "image": None, "__annotations__": {"image": IMAGE, "size": int},
                 "size": Int(1), "outputs": {"IMAGE": IMAGE}, "run": lambda self: self.image}
    if class_type:
        namespace["comfy"] = ComfyAlias((class_type,), pack=pack)
    return type(name, (Node,), namespace)


def test_a_second_claimant_without_a_pack_is_reported():
    registry = Registry()
    first, second = _node("FirstSharpen", "Sharpen"), _node("SecondSharpen", "Sharpen")
    registry.add(first)
    registry.add(second, source="my_plugin")
    assert registry.comfy_node("Sharpen") is first
    (problem,) = registry.problems
    assert problem["kind"] == "clash" and problem["plugin"] == "my_plugin"
    assert "'Sharpen' already maps to FirstSharpen" in problem["message"] and "SecondSharpen names no pack" \
        in problem["message"]


def test_a_claimant_naming_its_pack_is_not_reported_and_never_the_default_over_ours():
    registry = Registry()
    ours, theirs = _node("Sharpen"), _node("TheirSharpen", "Sharpen", pack=("their-pack", "someone/their-pack"))
    registry.add(theirs)  # loaded first, still not the default: our own node keeps its name's saves
    registry.add(ours)
    assert registry.problems == []
    assert [c.node for c in registry.claimants("Sharpen")] == [ours, theirs]
    assert registry.comfy_node("Sharpen") is ours
    prompt = {"1": {"class_type": "Sharpen", "inputs": {"image": ["1", 0], "size": 2}}}
    assert parse_workflow(prompt, registry).nodes["1"].type == "Sharpen"
    save = ui_graph([{**ui_node(1, "Sharpen", [2]), "properties": {"aux_id": "Someone/Their-Pack"}}])
    assert parse_workflow(save, registry).nodes["1"].type == "TheirSharpen"


def latent_stats_save(properties):
    stats = ui_node(2, "LatentStats", [], [("latent", "LATENT", 1, False)],
                    [("stats", "STRING", []), ("c0_mean", "FLOAT", []), ("c1_mean", "FLOAT", []),
                     ("c2_mean", "FLOAT", []), ("c3_mean", "FLOAT", [])])
    stats["properties"] = {"Node name for S&R": "LatentStats", **properties}
    return ui_graph([ui_node(1, "EmptyLatentImage", [64, 48, 1], outputs=[("LATENT", "LATENT", [1])]), stats],
                    [[1, 1, 0, 2, 0, "LATENT"]])


@pytest.mark.parametrize("properties, expected", [
    ({}, "LatentStats"),  # graphflow's own node keeps its name's saves
    ({"cnr_id": "comfyui-image-filters"}, "ImageFiltersLatentStats"),
    ({"aux_id": "spacepxl/ComfyUI-Image-Filters"}, "ImageFiltersLatentStats"),
])
def test_latent_stats_saves_read_as_the_node_their_pack_id_names(registry, properties, expected):
    workflow = parse_workflow(latent_stats_save(properties), registry)
    assert workflow.nodes["2"].type == expected
    written = json.loads(json.dumps(export_ui(workflow, registry)))
    assert parse_workflow(written, registry).nodes["2"].type == expected
    prompt = {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
              "2": {"class_type": "LatentStats", "inputs": {"latent": ["1", 0]}}}
    assert parse_workflow(prompt, registry).nodes["2"].type == "LatentStats"  # only `latent`: the default


def test_image_filters_latent_stats_reports_as_the_pack(registry):
    samples = torch.randn(2, 5, 6, 7, generator=torch.Generator().manual_seed(3)) * 2 + 0.5
    report, *means = call(registry, "ImageFiltersLatentStats", latent={"samples": samples})
    lines = report.split("\n")
    assert lines[:4] == ["batch size: 2", "channels: 5", "width: 7 (56)", "height: 6 (48)"]
    for i in range(5):
        std, mean = torch.std_mean(samples[:, i], dim=None)
        channel = samples[:, i]
        assert lines[4 + i] == (f"c{i} mean: {mean:.1f} std_dev: {std:.1f} min: {channel.min():.1f} "
                                f"max: {channel.max():.1f}")
    assert means == pytest.approx([float(samples[:, i].mean()) for i in range(4)], abs=1e-6)
    _, *two = call(registry, "ImageFiltersLatentStats", latent={"samples": samples[:, :2]})
    assert two[2:] == [0.0, 0.0]  # channels the latent lacks


def test_validation_names_the_chosen_claimants_input(registry):
    from graphflow.validation import validate
    problems = validate(parse_workflow(blur_save([99, 0.7], POST), registry), registry, ["2"])
    assert [(p.node_id, p.input) for p in problems] == [("2", "blur_radius")]  # PostProcBlur's: at most 15
    problems = validate(parse_workflow(blur_save([99, 0.7]), registry), registry, ["2"])
    assert [(p.node_id, p.input) for p in problems] == [("2", "radius")]  # Masquerade's: at most 48


# --- review mends ---------------------------------------------------------------------------


def test_an_export_from_before_the_clash_naming_post_proc_blur_still_reads(registry):
    """Our exports before PostProcBlur claimed "Blur" wrote its own type as the class: such saves
    read as it (the sole claimant of that name), and export again as "Blur" with the pack ids."""
    assert registry.comfy_node("PostProcBlur").node_type == "PostProcBlur"
    assert registry.comfy_node("ImageFiltersLatentStats").node_type == "ImageFiltersLatentStats"
    prompt = blur_prompt(blur_radius=3, sigma=1.5)
    prompt["2"]["class_type"] = "PostProcBlur"
    node = parse_workflow(prompt, registry).nodes["2"]
    assert (node.type, node.inputs["blur_radius"], node.inputs["sigma"]) == ("PostProcBlur", 3, 1.5)
    save = blur_save([3, 1.5])
    save["nodes"][1]["type"] = "PostProcBlur"
    workflow = parse_workflow(save, registry)
    node = workflow.nodes["2"]
    assert (node.type, node.inputs["blur_radius"], node.inputs["sigma"]) == ("PostProcBlur", 3, 1.5)
    written = json.loads(json.dumps(export_ui(workflow, registry)))
    blur = next(n for n in written["nodes"] if n["id"] == 2)
    assert blur["type"] == "Blur" and blur["properties"]["cnr_id"] == POST["cnr_id"]
    assert parse_workflow(written, registry).nodes["2"].type == "PostProcBlur"


def test_object_info_lists_each_non_default_claimant_under_its_own_type(registry):
    """The served editor adds nodes from /object_info: PostProcBlur and ImageFiltersLatentStats are
    there under their own types (read by our input names), the class names stay the default's."""
    from graphflow.server.comfyui_object_info import object_info
    info = object_info(registry)
    assert info["Blur"]["graphflow_node"] == "MasqueradeBlur"
    assert info["LatentStats"]["graphflow_node"] == "LatentStats"
    assert info["PostProcBlur"]["graphflow_node"] == "PostProcBlur"
    assert set(info["PostProcBlur"]["input"]["required"]) == {"image", "blur_radius", "sigma"}
    assert info["ImageFiltersLatentStats"]["graphflow_node"] == "ImageFiltersLatentStats"
    queued = blur_prompt(blur_radius=2, sigma=1.0)  # as the editor queues a node added under that name
    queued["2"]["class_type"] = "PostProcBlur"
    assert parse_workflow(queued, registry).nodes["2"].type == "PostProcBlur"


@pytest.mark.parametrize("saved, written", [("T2IAdapterLoader", "ControlNetLoader"),
                                            ("ConditioningAverage ", "ConditioningAverage")])
def test_a_renamed_class_exports_under_its_current_name(registry, saved, written):
    from graphflow.comfy_format import RENAMED_TYPES
    assert RENAMED_TYPES[saved] == written
    if saved == "T2IAdapterLoader":
        node = ui_node(1, saved, ["x.safetensors"], [], [("CONTROL_NET", "CONTROL_NET", [])])
    else:
        node = ui_node(1, saved, [0.5], [("conditioning_to", "CONDITIONING", None, False),
                                         ("conditioning_from", "CONDITIONING", None, False)],
                       [("CONDITIONING", "CONDITIONING", [])])
    node["pos"] = [123, 456]
    workflow = parse_workflow(ui_graph([node]), registry)
    (out,) = export_ui(workflow, registry)["nodes"]
    assert out["type"] == written and out["pos"] == [123, 456]  # the saved node kept, under today's name


def test_claimant_keys_stay_inside(registry):
    """The name a claimant is read under is never shown (notes name the ComfyUI class) and a save
    can't type it: it has a character no ComfyUI class name carries, and typed it is unknown."""
    from graphflow.registry import KEY_SEP
    post = registry.get("PostProcBlur")
    key = registry.claimant_key("Blur", post)
    assert KEY_SEP in key and not KEY_SEP.isprintable()
    assert registry.comfy_node(key) is None and registry.claimant_node(key) is post
    assert registry.comfy_class(key) == "Blur"
    workflow = parse_workflow(blur_prompt(blur_radius=2.5, sigma=1.0), registry)
    assert workflow.nodes["2"].type == "PostProcBlur"
    assert [(n["node_type"], n["input"]) for n in workflow.notes] == [("Blur", "blur_radius")]
    for typed in (key, "Blur [PostProcBlur]"):
        prompt = blur_prompt(blur_radius=2, sigma=1.0)
        prompt["2"]["class_type"] = typed
        assert registry.get(parse_workflow(prompt, registry).nodes["2"].type) is None, typed
        save = blur_save([2, 0.7])
        save["nodes"][1]["type"] = typed
        read = parse_workflow(save, registry)
        assert registry.get(read.nodes["2"].type) is None, typed
        assert KEY_SEP not in json.dumps(export_ui(read, registry))


def _plugin_node(name, alias=None, **ints):
    from graphflow.api import LATENT
    namespace = {"__doc__": f"{name}.", "__annotations__": {"samples": LATENT}, "samples": None,
                 "category": "test", "outputs": {"LATENT": LATENT}, "run": lambda self: (self.samples,)}
    for input_name, default in ints.items():
        namespace["__annotations__"][input_name] = int
        namespace[input_name] = Int(default)
    if alias is not None:
        namespace["comfy"] = alias
    return type(name, (Node,), namespace)


UPSCALE = {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
           "2": {"class_type": "LatentUpscale", "inputs": {"samples": ["1", 0], "upscale_method": "bilinear",
                                                            "width": 64, "height": 64, "crop": "disabled"}}}


def test_a_plugins_packed_claimant_of_a_core_class_is_reported_and_chosen_by_its_own_names():
    registry = Registry().load_builtin()
    registry.add(_plugin_node("PlugUpscale", ComfyAlias(("LatentUpscale",), pack=("my-pack",)), tile=1),
                 source="my_plugin")
    (problem,) = [p for p in registry.problems if p["plugin"] == "my_plugin"]
    assert problem["kind"] == "info" and "'LatentUpscale'" in problem["message"] and "PlugUpscale" in problem["message"]
    stray = json.loads(json.dumps(UPSCALE))
    stray["2"]["inputs"]["tile"] = 2  # a core prompt with one stray input stays core
    assert parse_workflow(stray, registry).nodes["2"].type == "LatentUpscale"
    own = {"1": UPSCALE["1"], "2": {"class_type": "LatentUpscale", "inputs": {"samples": ["1", 0], "tile": 2}}}
    assert parse_workflow(own, registry).nodes["2"].type == "PlugUpscale"


def test_a_plugin_alias_displacing_our_own_node_is_reported():
    registry = Registry().load_builtin()
    registry.add(_plugin_node("PlugStats", ComfyAlias(("LatentStats",))), source="my_plugin")
    assert registry.comfy_node("LatentStats").node_type == "PlugStats"
    (problem,) = [p for p in registry.problems if p["plugin"] == "my_plugin"]
    assert problem["kind"] == "clash" and "no longer as LatentStats" in problem["message"]


def test_an_alias_less_plugin_node_named_like_a_core_class_is_chosen_by_the_plugins_name():
    registry = Registry().load_builtin()
    plug = _plugin_node("PlugNamesake")
    plug.node_type = "CLIPTextEncode"
    registry.add(plug, source="my_plugin")
    (claim,) = [c for c in registry.claimants("CLIPTextEncode") if c.node is plug]
    assert claim.pack == ("my_plugin",)
    workflow = parse_workflow({"version": 1, "nodes": {
        "1": {"type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64}},
        "2": {"type": "CLIPTextEncode", "inputs": {"samples": ["1", 0]}}}}, registry)
    written = json.loads(json.dumps(export_ui(workflow, registry)))
    node = next(n for n in written["nodes"] if n["id"] == 2)
    assert node["type"] == "CLIPTextEncode" and node["properties"]["cnr_id"] == "my_plugin"
    assert parse_workflow(written, registry).nodes["2"].type == "CLIPTextEncode"


def test_a_ui_save_of_our_latent_interpolate_without_pack_id_is_read_by_its_input_names(registry):
    ours = {"version": 1, "nodes": {
        "1": {"type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64}},
        "2": {"type": "LatentInterpolate", "inputs": {"latent_a": ["1", 0], "latent_b": ["1", 0], "t": 0.3,
                                                      "method": "lerp"}}}}
    ui = json.loads(json.dumps(export_ui(parse_workflow(ours, registry), registry)))
    node = next(n for n in ui["nodes"] if n["id"] == 2)
    node["properties"].pop("cnr_id")  # an editor that drops it
    again = parse_workflow(ui, registry).nodes["2"]
    assert again.type == "LatentInterpolate" and again.inputs["method"] == "lerp" and again.inputs["t"] == 0.3
    core = ui_node(2, "LatentInterpolate", [0.5], [("samples1", "LATENT", 1, False), ("samples2", "LATENT", 2, False)],
                   [("LATENT", "LATENT", [])])
    save = ui_graph([ui_node(1, "EmptyLatentImage", [64, 64, 1], outputs=[("LATENT", "LATENT", [1, 2])]), core],
                    [[1, 1, 0, 2, 0, "LATENT"], [2, 1, 0, 2, 1, "LATENT"]])
    assert parse_workflow(save, registry).nodes["2"].type == "LatentNormInterpolate"


def test_the_docs_say_the_input_name_rule_only_where_it_can_choose(registry):
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("make_comfy_docs", Path(__file__).parent.parent / "tools" /
                                                  "make_comfy_docs.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    (stats,) = tool._claim_notes(registry, "LatentStats", registry.get("ImageFiltersLatentStats"))
    assert "cnr_id" in stats and "input name" not in stats  # both read only `latent`
    (blur,) = tool._claim_notes(registry, "Blur", registry.get("PostProcBlur"))
    assert "input name only it reads" in blur


# --- second review's mends ---------------------------------------------------------------------


def test_an_api_export_writes_a_claimant_its_inputs_cant_choose_under_its_own_name(registry):
    """An API prompt carries no pack ids: Image-Filters' LatentStats (only `latent`, as ours) is written
    as ImageFiltersLatentStats, which reads back as it (as "LatentStats" it came back as our node, its
    outputs 1-4 gone); PostProcBlur, which its inputs choose, keeps the class name "Blur"."""
    workflow = parse_workflow(latent_stats_save({"cnr_id": "comfyui-image-filters"}), registry)
    api = export_api(workflow, registry)
    assert api["2"]["class_type"] == "ImageFiltersLatentStats"
    assert parse_workflow(api, registry).nodes["2"].type == "ImageFiltersLatentStats"
    ours = export_api(parse_workflow(latent_stats_save({}), registry), registry)
    assert ours["2"]["class_type"] == "LatentStats"
    blur = export_api(parse_workflow(blur_save([3, 1.5], POST), registry), registry)
    assert blur["2"]["class_type"] == "Blur" and parse_workflow(blur, registry).nodes["2"].type == "PostProcBlur"


def test_a_filename_reference_reads_the_claimant_its_pack_ids_name(registry):
    """%Blur.blur_radius% in a save prefix reads the post-processing Blur's widget where the node's
    pack ids name that pack (it was looked up by Masquerade's widget order: left unreplaced)."""
    save = blur_save([3, 1.5], POST)
    save["nodes"][1]["outputs"][0]["links"] = [2]
    save["nodes"].append({"id": 3, "type": "SaveImage", "mode": 0, "properties": {}, "outputs": [],
                          "inputs": [{"name": "images", "type": "IMAGE", "link": 2}],
                          "widgets_values": ["x_%Blur.blur_radius%_%Blur.radius%"]})
    save["links"].append([2, 2, 0, 3, 0, "IMAGE"])
    prefix = parse_workflow(save, registry).nodes["3"].inputs["filename_prefix"]
    assert prefix == "x_3_%Blur.radius%"


def test_an_info_note_is_printed_as_a_note_by_the_cli(registry, monkeypatch, capsys, tmp_path):
    """Registry notes of kind info (a plugin claiming a class by its pack) print as notes, not problems."""
    from graphflow import cli
    import graphflow.registry as registry_module

    noted = Registry().load_builtin()
    noted.problems.append({"kind": "info", "message": "plugin x claims Blur by its pack"})
    monkeypatch.setattr(registry_module, "default_registry", lambda: noted)
    path = tmp_path / "w.json"
    path.write_text(json.dumps(blur_prompt(radius=2, sigma_factor=1.0)))
    cli.main(["validate", str(path)])
    err = capsys.readouterr().err
    assert "note: plugin x claims Blur by its pack" in err and "plugin problem" not in err
