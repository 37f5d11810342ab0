"""Custom packs' small nodes built in (nodes/pack_nodes.py), checked against the packs' rules:
rgthree's Lora Loader Stack (LoraLoader applied in turn, "None" skipped) and Seed (-1/-2/-3 are
the editor's markers, a random seed when they reach the backend), ComfyUI_essentials' SimpleMath+
(its expression grammar, nothing else evaluated) and GetImageSize+, KJNodes' ImageResizeKJ (its
sizes, ImageScale's pixels), and rgthree's Power Lora Loader written back in the pack's shape."""

import json

import pytest
import torch

from graphflow import memory
from graphflow.context import NodeInputError
from graphflow.comfy_format import export_api, export_ui
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.testing import write_checkpoint, write_lora
from graphflow.workflow import parse_workflow
from nodes.pack_nodes import RGTHREE_SEED_MAX, simple_math
from tests.test_nodes_image_mask import call


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


@pytest.fixture
def lora_folders(tmp_folders):
    for sub in ("checkpoints", "loras"):
        (tmp_folders.models / sub).mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    write_lora(tmp_folders.models / "loras" / "first.safetensors", "sd1", seed=1)
    write_lora(tmp_folders.models / "loras" / "second.safetensors", "sd1", seed=2)
    return tmp_folders




def weights(model, clip):
    unet = memory.manager().weights(model.unet, model.patches)
    tower = clip.towers[0]
    return unet, memory.manager().weights(tower.model, tower.patches)


CKPT = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}}
STACK = {"lora_01": "first.safetensors", "strength_01": 0.7, "lora_02": "None", "strength_02": 1.0,
         "lora_03": "second.safetensors", "strength_03": -0.5, "lora_04": "None", "strength_04": 1.0}


def lora(source, name, strength):
    return {"class_type": "LoraLoader", "inputs": {"model": [source, 0], "clip": [source, 1], "lora_name": name,
                                                   "strength_model": strength, "strength_clip": strength}}


def test_lora_loader_stack_equals_lora_loaders_in_turn(registry, lora_folders):
    stack = {"1": CKPT, "2": {"class_type": "Lora Loader Stack (rgthree)",
                              "inputs": {"model": ["1", 0], "clip": ["1", 1], **STACK}}}
    chained = {"1": CKPT, "2": lora("1", "first.safetensors", 0.7), "3": lora("2", "second.safetensors", -0.5)}
    executor = Executor(registry)
    got = executor.run(parse_workflow(stack, registry), outputs=["2"])
    want = executor.run(parse_workflow(chained, registry), outputs=["3"])
    assert got.ok and want.ok, (got.problems, got.error, want.problems, want.error)
    (unet, text), (unet_want, text_want) = weights(*got.values["2"]), weights(*want.values["3"])
    base_unet, base_text = weights(*got.values["1"][:2])
    assert any(not torch.equal(unet[n], base_unet[n]) for n in unet)  # the LoRAs did change something
    assert any(not torch.equal(text[n], base_text[n]) for n in text)
    assert all(torch.equal(unet[n], unet_want[n]) for n in unet)
    assert all(torch.equal(text[n], text_want[n]) for n in text)


def test_lora_loader_stack_names_a_missing_file(registry, lora_folders):
    graph = {"1": CKPT, "2": {"class_type": "Lora Loader Stack (rgthree)",
                              "inputs": {"model": ["1", 0], "clip": ["1", 1], **STACK, "lora_02": "gone.safetensors"}}}
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["2"])
    assert not result.ok
    (problem,) = result.problems
    assert (problem.node_id, problem.input) == ("2", "lora_02") and "gone.safetensors" in problem.message


def test_seed_passes_a_seed_and_draws_one_for_the_editors_markers(registry):
    assert call(registry, "RgthreeSeed", seed=123456789012345) == 123456789012345
    assert call(registry, "RgthreeSeed", seed=-4) == -4  # only -1, -2, -3 are markers
    for marker in (-1, -2, -3):
        drawn = {call(registry, "RgthreeSeed", seed=marker) for _ in range(3)}
        assert len(drawn) == 3 and all(0 <= s <= RGTHREE_SEED_MAX for s in drawn)
    cls = registry.get("RgthreeSeed")
    assert cls.fingerprint(seed=5) == cls.fingerprint(seed=5)  # cached as any input
    assert cls.fingerprint(seed=-1) != cls.fingerprint(seed=-1)  # a marker runs again every time
    seed = cls.input_specs["seed"].widget
    assert (seed.default, seed.min, seed.max) == (0, -2**50, 2**50)


@pytest.mark.parametrize("expression, names, expected", [
    ("a * 2 + b", {"a": 3, "b": 1}, 7),
    ("a // 2 + a % 2 + 2 ** 3 - -1", {"a": 7}, 3 + 1 + 8 + 1),
    ("a / b", {"a": 1, "b": 4}, 0.25),
    ("a[1] * a[2]", {"a": [1, 64, 48, 3]}, 64 * 48),  # an image's shape
    ("max(a, b, 3) + min(a, b) + len(c) + sum(c) + round(2.5)", {"a": 1, "b": 2, "c": [1, 2]}, 3 + 1 + 2 + 3 + 2),
    ("1 < a <= 3", {"a": 3}, 1),
    ("a < 3", {"a": 4}, 0),
    ("1 < a <= 3", {"a": 4}, 1),  # the pack compares the first operand with each: 1 < 4 and 1 <= 3
    ("a == b or 5", {"a": 1, "b": 2}, 5),
    ("a and b", {"a": 2, "b": 0}, 0),
    ("not a", {"a": 0}, True),
    # outside the grammar counts 0 (another function's call None), never evaluated
    ("open('x')", {}, None),
    ("a.__class__", {"a": 1}, 0),
    ("'text'", {}, 0),
    ("a[b]", {"a": [1, 2], "b": 1}, 0),  # only constant indexes
])
def test_simple_math_grammar(expression, names, expected):
    assert simple_math(expression, names) == expected


def test_simple_math_node_outputs_and_refusals(registry):
    image = torch.zeros(2, 24, 32, 3)
    assert call(registry, "SimpleMath", value="a[2] / b", a=image, b="10") == (3, 3.2)
    assert call(registry, "SimpleMath", value="a * 2.5", a=1) == (2, 2.5)  # round half to even, as the pack
    assert call(registry, "SimpleMath", value="a + b + c") == (0, 0.0)  # unlinked inputs are 0.0
    assert call(registry, "SimpleMath", value="a - a", a=float("nan")) == (0, 0.0)
    for value, message in [("1 +", "not a formula"), ("1 / 0", "can't be worked out"),
                           ("2 ** 100000", "too big"), ("a[5]", "can't be worked out"), ("a", "not a number"),
                           ("10.0 ** 400", "can't be worked out")]:
        with pytest.raises(NodeInputError, match=message) as caught:
            call(registry, "SimpleMath", value=value, a=[1] if value == "a" or "[" in value else 0)
        assert caught.value.input == "value"
    with pytest.raises(NodeInputError, match="expected a number") as caught:
        call(registry, "SimpleMath", value="b", b="ten")
    assert caught.value.input == "b"


def ui_graph(nodes, links=()):
    """A UI-format file of these nodes and links, as ComfyUI's editor saves one."""
    return {"last_node_id": max(n["id"] for n in nodes), "last_link_id": len(links), "nodes": nodes,
            "links": list(links), "groups": [], "config": {}, "extra": {}, "version": 0.4}


def run_graph(registry, graph, outputs=None):
    """Run a graph (ours, or ComfyUI's in either format) and check it ran."""
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=outputs)
    assert result.ok, (result.problems, result.error)
    return result


def ui_node(id, type, widgets, inputs=(), outputs=()):
    return {"id": id, "type": type, "pos": [0, 0], "size": [200, 100], "flags": {}, "order": id, "mode": 0,
            "inputs": [{"name": n, "type": t, "link": link, **({"widget": {"name": n}} if w else {})}
                       for n, t, link, w in inputs],
            "outputs": [{"name": n, "type": t, "links": links} for n, t, links in outputs],
            "properties": {}, "widgets_values": widgets}


def test_ui_graph_with_pack_nodes_reads_and_runs(registry, lora_folders):
    """As the editor saves it: rgthree's Seed with its button widgets after the seed, the stack's
    widgets in the pack's order, SimpleMath+ fed by the seed and GetImageSize+."""
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", ["tiny.safetensors"],
                outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2]), ("VAE", "VAE", [])]),
        ui_node(2, "Lora Loader Stack (rgthree)", list(STACK.values()),
                [("model", "MODEL", 1, False), ("clip", "CLIP", 2, False)],
                [("MODEL", "MODEL", []), ("CLIP", "CLIP", [])]),
        ui_node(3, "Seed (rgthree)", [21, None, None, None], outputs=[("SEED", "INT", [3])]),
        ui_node(4, "EmptyImage", [32, 24, 2, 0], outputs=[("IMAGE", "IMAGE", [4])]),
        ui_node(5, "GetImageSize+", [], [("image", "IMAGE", 4, False)],
                [("width", "INT", [5]), ("height", "INT", []), ("count", "INT", [])]),
        ui_node(6, "SimpleMath+", ["a * 2 + b"], [("a", "*", 3, False), ("b", "*", 5, False)],
                [("INT", "INT", []), ("FLOAT", "FLOAT", [])]),
    ]
    links = [[1, 1, 0, 2, 0, "MODEL"], [2, 1, 1, 2, 1, "CLIP"], [3, 3, 0, 6, 0, "INT"], [4, 4, 0, 5, 0, "IMAGE"],
             [5, 5, 0, 6, 1, "INT"]]
    graph = {"last_node_id": 6, "last_link_id": 5, "nodes": nodes, "links": links, "groups": [], "config": {},
             "extra": {}, "version": 0.4}
    workflow = parse_workflow(graph, registry)
    saved = workflow.to_json()["nodes"]
    assert {k: saved["2"]["inputs"][k] for k in STACK} == STACK
    assert saved["3"]["inputs"]["seed"] == 21 and saved["6"]["inputs"]["value"] == "a * 2 + b"
    result = Executor(registry).run(workflow, outputs=["2", "6"])
    assert result.ok, (result.problems, result.error)
    assert tuple(result.values["5"]) == (32, 24, 2)
    assert tuple(result.values["6"]) == (74, 74.0)


def test_image_comparer_shows_both_images_as_pngs(registry, tmp_folders):
    from PIL import Image

    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 6, "batch_size": 2, "color": 0xFF0000}},
             "2": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 6, "batch_size": 1, "color": 0x0000FF}},
             "3": {"class_type": "Image Comparer (rgthree)", "inputs": {"image_a": ["1", 0], "image_b": ["2", 0]}},
             "4": {"class_type": "Image Comparer (rgthree)", "inputs": {"image_b": ["2", 0]}}}
    result = Executor(registry).run(parse_workflow(graph, registry))
    assert result.ok, (result.problems, result.error)
    shown = result.outputs["3"]
    assert [len(shown["a_images"]), len(shown["b_images"])] == [2, 1]
    for key, colour in (("a_images", (255, 0, 0)), ("b_images", (0, 0, 255))):
        for entry in shown[key]:
            assert entry["type"] == "temp"
            picture = Image.open(tmp_folders.temp / entry["subfolder"] / entry["filename"])
            assert picture.size == (8, 6) and picture.convert("RGB").getpixel((3, 3)) == colour
    assert result.outputs["4"]["a_images"] == [] and len(result.outputs["4"]["b_images"]) == 1


def test_get_image_size_and_count_passes_the_images_on(registry):
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 10, "height": 6, "batch_size": 3, "color": 0}},
             "2": {"class_type": "GetImageSizeAndCount", "inputs": {"image": ["1", 0]}}}
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["2"])
    assert result.ok, (result.problems, result.error)
    image, width, height, count = result.values["2"]
    assert image is result.values["1"][0] and (width, height, count) == (10, 6, 3)
    assert result.outputs["2"]["text"] == ["3x10x6"]


@pytest.mark.parametrize("size, target, method, multiple_of, plan", [
    ((100, 50), (64, 0), "stretch", 0, ((64, 50), (0, 0, 0, 0), None)),  # a 0 side keeps the image's
    ((100, 50), (64, 64), "keep proportion", 0, ((64, 32), (0, 0, 0, 0), None)),
    ((100, 50), (0, 100), "keep proportion", 0, ((200, 100), (0, 0, 0, 0), None)),  # free width may grow
    ((100, 50), (0, 40), "keep proportion", 0, ((80, 40), (0, 0, 0, 0), None)),
    ((100, 50), (64, 64), "pad", 0, ((64, 32), (0, 0, 16, 16), None)),
    ((100, 50), (65, 63), "pad", 0, ((65, 32), (0, 0, 15, 16), None)),  # 32.5 rounds to even; odd pixel below
    ((100, 50), (64, 64), "fill / crop", 0, ((128, 64), (0, 0, 0, 0), (32, 0, 96, 64))),
    ((100, 50), (70, 70), "stretch", 32, ((64, 64), (0, 0, 0, 0), None)),  # cut down to multiples first
])
def test_image_resize_plus_geometry(size, target, method, multiple_of, plan):
    from nodes.pack_nodes import essentials_resize_plan

    assert essentials_resize_plan(*size, *target, method, multiple_of) == plan


def test_image_resize_plus_node(registry):
    import torch.nn.functional as F

    image = torch.rand(2, 50, 100, 3, generator=torch.Generator().manual_seed(0))

    def resize(**widgets):
        return call(registry, "ImageResizePlus", image=image, **widgets)

    def reference(h, w):
        return F.interpolate(image.movedim(-1, 1), size=(h, w), mode="bilinear").movedim(1, -1).clamp(0, 1)

    out, w, h = resize(width=64, height=64, method="pad", interpolation="bilinear")
    assert (w, h) == (64, 64)
    assert torch.equal(out[:, :16], torch.zeros(2, 16, 64, 3)) and torch.equal(out[:, 48:], torch.zeros(2, 16, 64, 3))
    assert torch.allclose(out[:, 16:48], reference(32, 64))
    out, w, h = resize(width=64, height=64, method="fill / crop", interpolation="bilinear")
    assert (w, h) == (64, 64) and torch.allclose(out, reference(64, 128)[:, :, 32:96])
    out, w, h = resize(width=0, height=0, multiple_of=16)  # no resize, then cut to multiples about the middle
    assert (w, h) == (96, 48) and torch.equal(out, image[:, 1:49, 2:98])
    out, _, _ = resize(width=200, height=100, condition="downscale if bigger")
    assert torch.equal(out, image)  # smaller already: left alone
    out, w, h = resize(width=200, height=100, condition="upscale if smaller", interpolation="nearest")
    assert (w, h) == (200, 100) and torch.equal(out, image.repeat_interleave(2, 1).repeat_interleave(2, 2))
    out, w, h = resize(width=30, height=20, interpolation="lanczos")
    assert (w, h) == (30, 20) and 0 <= out.min() and out.max() <= 1
    cls = registry.get("ImageResizePlus")
    assert list(cls.input_specs)[:7] == ["image", "width", "height", "interpolation", "method", "condition",
                                         "multiple_of"]


def test_conditioning_multi_combine_follows_the_packs_order(registry):
    conds = [[(torch.randn(1, 3 + i, 8, generator=torch.Generator().manual_seed(i)), {"index": i})] for i in range(4)]
    inputs = {f"conditioning_{i + 1}": c for i, c in enumerate(conds)}
    combined, count = call(registry, "ConditioningMultiCombine", inputcount=3, **inputs)
    assert count == 3
    expected = call(registry, "ConditioningCombine", conditioning_1=conds[2],  # ComfyUI's combine(new, so far)
                    conditioning_2=call(registry, "ConditioningCombine", conditioning_1=conds[1],
                                        conditioning_2=conds[0]))
    assert [o["index"] for _, o in combined] == [2, 1, 0] == [o["index"] for _, o in expected]
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(combined, expected))
    concat, _ = call(registry, "ConditioningMultiCombine", inputcount=4, operation="concat", **inputs)
    [(tokens, options)] = concat
    assert torch.equal(tokens, torch.cat([c[0][0] for c in conds], dim=1)) and options == {"index": 0}
    with pytest.raises(NodeInputError, match="not connected") as caught:
        call(registry, "ConditioningMultiCombine", inputcount=3, conditioning_1=conds[0], conditioning_2=conds[1])
    assert caught.value.input == "conditioning_3"
    wide = [(torch.zeros(1, 2, 16), {})]
    with pytest.raises(NodeInputError, match="16 wide") as caught:
        call(registry, "ConditioningMultiCombine", inputcount=2, operation="concat", conditioning_1=conds[0],
             conditioning_2=wide)
    assert caught.value.input == "conditioning_2"


ROWS = [{"on": True, "lora": "first.safetensors", "strength": 0.7, "strengthTwo": None},
        {"on": False, "lora": "second.safetensors", "strength": 1.0, "strengthTwo": None},
        {"on": True, "lora": "second.safetensors", "strength": -0.5, "strengthTwo": 0.3}]


def test_power_lora_loader_equals_lora_loaders_for_the_rows_that_are_on(registry, lora_folders):
    """API form: the editor's lora_1, lora_2 ... inputs (and its header / button entries)."""
    power = {"1": CKPT, "2": {"class_type": "Power Lora Loader (rgthree)", "inputs": {
        "model": ["1", 0], "clip": ["1", 1], "PowerLoraLoaderHeaderWidget": {"type": "PowerLoraLoaderHeaderWidget"},
        "lora_1": ROWS[0], "lora_2": ROWS[1], "lora_3": ROWS[2], "\u2795 Add Lora": ""}}}
    chained = {"1": CKPT, "2": lora("1", "first.safetensors", 0.7), "3": lora("2", "second.safetensors", -0.5)}
    chained["3"]["inputs"]["strength_clip"] = 0.3
    workflow = parse_workflow(power, registry)
    assert json.loads(workflow.to_json()["nodes"]["2"]["inputs"]["loras"]) == ROWS
    executor = Executor(registry)
    got = executor.run(workflow, outputs=["2"])
    want = executor.run(parse_workflow(chained, registry), outputs=["3"])
    assert got.ok and want.ok, (got.problems, got.error, want.problems, want.error)
    (unet, text), (unet_want, text_want) = weights(*got.values["2"]), weights(*want.values["3"])
    base_unet, _ = weights(*got.values["1"][:2])
    assert any(not torch.equal(unet[n], base_unet[n]) for n in unet)
    assert all(torch.equal(unet[n], unet_want[n]) for n in unet)
    assert all(torch.equal(text[n], text_want[n]) for n in text)
    # without a text encoder only the model changes, as LoraLoaderModelOnly
    del power["2"]["inputs"]["clip"]
    only = executor.run(parse_workflow(power, registry), outputs=["2"])
    assert only.ok, (only.problems, only.error)
    model, clip = only.values["2"]
    assert clip is None and all(torch.equal(a, b) for a, b in zip(weights(model, got.values["1"][1])[0].values(),
                                                                    unet.values()))


def test_power_lora_loader_ui_rows_and_bad_rows(registry, lora_folders):
    widgets = [{}, {"type": "PowerLoraLoaderHeaderWidget"}, *ROWS, {}, ""]  # as the pack's editor saves them
    nodes = [ui_node(1, "CheckpointLoaderSimple", ["tiny.safetensors"],
                     outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2]), ("VAE", "VAE", [])]),
             ui_node(2, "Power Lora Loader (rgthree)", widgets, [("model", "MODEL", 1, False), ("clip", "CLIP", 2, False)],
                     [("MODEL", "MODEL", []), ("CLIP", "CLIP", [])])]
    graph = {"last_node_id": 2, "last_link_id": 2, "nodes": nodes, "groups": [], "config": {}, "extra": {},
             "links": [[1, 1, 0, 2, 0, "MODEL"], [2, 1, 1, 2, 1, "CLIP"]], "version": 0.4}
    workflow = parse_workflow(graph, registry)
    # the default "Single Strength" view: the editor sends no strengthTwo (tests/test_parity_packs.py)
    assert json.loads(workflow.to_json()["nodes"]["2"]["inputs"]["loras"]) == [{**r, "strengthTwo": None}
                                                                                for r in ROWS]
    assert Executor(registry).run(workflow, outputs=["2"]).ok
    for loras, message in [("[{", "JSON list"), ('{"on": true}', "JSON list"),
                           ('[{"on": true, "lora": "first.safetensors", "strength": "high"}]', "numeric")]:
        graph = {"1": CKPT, "2": {"class_type": "Power Lora Loader (rgthree)",
                                  "inputs": {"model": ["1", 0], "clip": ["1", 1], "loras": loras}}}
        result = Executor(registry).run(parse_workflow(graph, registry), outputs=["2"])
        assert not result.ok and message in str(result.error or result.problems)


def power_lora_ui_graph(widgets):
    nodes = [ui_node(1, "CheckpointLoaderSimple", ["tiny.safetensors"],
                     outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2]), ("VAE", "VAE", [])]),
             ui_node(2, "Power Lora Loader (rgthree)", widgets, [("model", "MODEL", 1, False), ("clip", "CLIP", 2, False)],
                     [("MODEL", "MODEL", []), ("CLIP", "CLIP", [])])]
    nodes[1]["properties"] = {"Show Strengths": "Separate Model & Clip"}
    return {"last_node_id": 2, "last_link_id": 2, "nodes": nodes, "groups": [], "config": {}, "extra": {},
            "links": [[1, 1, 0, 2, 0, "MODEL"], [2, 1, 1, 2, 1, "CLIP"]], "version": 0.4}


def test_power_lora_loader_is_written_back_in_the_packs_shape(registry, lora_folders):
    """read -> write -> read is identity: the rows go back as rgthree's row widgets between its
    header and button widgets, in the UI format (and as lora_1, lora_2 ... in the API format).
    In the "Separate Model & Clip" view a null strengthTwo is 1, as the editor sends it."""
    widgets = [{}, {"type": "PowerLoraLoaderHeaderWidget"}, *[{**r, "strengthTwo": r["strengthTwo"] or 1}
                                                               for r in ROWS], {}, ""]
    graph = power_lora_ui_graph(widgets)
    written = export_ui(parse_workflow(graph, registry), registry)
    node = next(n for n in written["nodes"] if n["id"] == 2)
    assert node["widgets_values"] == widgets
    assert node["properties"]["Show Strengths"] == "Separate Model & Clip"
    assert [i["name"] for i in node["inputs"]] == ["model", "clip"]
    again = parse_workflow(written, registry)
    assert again.to_json()["nodes"] == parse_workflow(graph, registry).to_json()["nodes"]
    # an edited row list and a node made here (no saved UI node) take the same shape
    workflow = parse_workflow(graph, registry)
    workflow.nodes["2"].inputs["loras"] = json.dumps(ROWS[:1])
    fresh = {"1": CKPT, "2": {"class_type": "Power Lora Loader (rgthree)",
                              "inputs": {"model": ["1", 0], "clip": ["1", 1], "loras": json.dumps(ROWS[2:])}}}
    for made, rows in [(workflow, ROWS[:1]), (parse_workflow(fresh, registry), ROWS[2:])]:
        node = next(n for n in export_ui(made, registry)["nodes"] if n["id"] == 2)
        # both in the separate view (the saved node's; a strengthTwo of its own), a null one written as strength
        assert node["properties"]["Show Strengths"] == "Separate Model & Clip"
        assert node["widgets_values"] == [{}, {"type": "PowerLoraLoaderHeaderWidget"},
                                          *[{**r, "strengthTwo": r["strengthTwo"] or r["strength"]} for r in rows],
                                          {}, ""]
        api = export_api(made, registry)["2"]["inputs"]
        assert {k: v for k, v in api.items() if k.startswith("lora_")} == \
            {f"lora_{i}": row for i, row in enumerate(rows, 1)}
        assert "loras" not in api
        assert json.loads(parse_workflow(export_api(made, registry), registry).nodes["2"].inputs["loras"]) == rows


@pytest.mark.parametrize("size, target, keep, divisible_by, reference, want", [
    ((100, 50), (64, 0), False, 2, None, (64, 50)),  # a 0 side keeps the image's
    ((100, 50), (63, 31), False, 1, None, (63, 31)),  # 0 and 1 cut nothing
    ((100, 50), (63, 31), False, 2, None, (62, 30)),
    ((100, 50), (64, 64), True, 2, None, (64, 32)),  # the largest of the image's aspect inside
    ((100, 50), (0, 30), True, 8, None, (56, 24)),  # a 0 side follows the other (60 x 30), then cut
    ((100, 50), (70, 0), True, 0, None, (70, 35)),
    ((100, 50), (64, 64), True, 16, (40, 30), (40, 30)),  # the reference's size as it is, nothing cut
])
def test_image_resize_kj_size(size, target, keep, divisible_by, reference, want):
    from nodes.pack_nodes import kj_resize_size

    assert kj_resize_size(*size, *target, keep, divisible_by, reference) == want


def test_image_resize_kj_gives_image_scales_pixels(registry):
    image = torch.rand(2, 50, 100, 3, generator=torch.Generator().manual_seed(0))
    for widgets, (w, h) in [({"width": 64, "height": 64, "keep_proportion": True, "upscale_method": "bilinear"},
                             (64, 32)),
                            ({"width": 48, "height": 40, "upscale_method": "bicubic", "crop": "center"}, (48, 40)),
                            ({"width": 0, "height": 36, "divisible_by": 8, "upscale_method": "area"}, (96, 32))]:
        out, width, height = call(registry, "ImageResizeKJ", image=image, **widgets)
        want = call(registry, "ImageScale", image=image, width=w, height=h, upscale_method=widgets["upscale_method"],
                    crop=widgets.get("crop", "disabled"))
        assert (width, height) == (w, h) and out.shape == (2, h, w, 3) and torch.equal(out, want)
    out, width, height = call(registry, "ImageResizeKJ", image=image, get_image_size=torch.zeros(1, 20, 30, 3))
    assert (width, height) == (30, 20) and out.shape == (2, 20, 30, 3)
    for widgets, name in [({"width": 0, "height": 0, "keep_proportion": True}, "width"),
                          ({"width": 7, "height": 64, "divisible_by": 8}, "divisible_by")]:
        with pytest.raises(NodeInputError, match="at least 1x1") as caught:
            call(registry, "ImageResizeKJ", image=image, **widgets)
        assert caught.value.input == name


def test_image_resize_kj_reads_the_packs_graphs(registry):
    """The pack's input order (the UI format's widgets), and its crop value 0 for "center"."""
    cls = registry.get("ImageResizeKJ")
    assert list(cls.input_specs) == ["image", "width", "height", "upscale_method", "keep_proportion", "divisible_by",
                                     "get_image_size", "crop"]
    assert [o.name for o in cls.output_specs] == ["IMAGE", "width", "height"]
    nodes = [ui_node(1, "EmptyImage", [40, 30, 1, 0], outputs=[("IMAGE", "IMAGE", [1])]),
             ui_node(2, "ImageResizeKJ", [24, 24, "bilinear", False, 8, 0], [("image", "IMAGE", 1, False)],
                     [("IMAGE", "IMAGE", []), ("width", "INT", []), ("height", "INT", [])])]
    graph = {"last_node_id": 2, "last_link_id": 1, "nodes": nodes, "groups": [], "config": {}, "extra": {},
             "links": [[1, 1, 0, 2, 0, "IMAGE"]], "version": 0.4}
    workflow = parse_workflow(graph, registry)
    assert workflow.nodes["2"].inputs["crop"] == "center"
    result = Executor(registry).run(workflow, outputs=["2"])
    assert result.ok, (result.problems, result.error)
    assert result.values["2"][1:] == (24, 24)
    node = next(n for n in export_ui(workflow, registry)["nodes"] if n["id"] == 2)
    assert node["widgets_values"] == [24, 24, "bilinear", False, 8, "center"]
