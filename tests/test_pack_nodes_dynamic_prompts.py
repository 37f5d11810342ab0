"""comfyui-dynamicprompts' nodes (nodes/pack_nodes_dynamic_prompts.py) against the `dynamicprompts`
library's own generators (the reference: RandomPromptGenerator with the same seed, the pack's
reseeding of one generator per run, CombinatorialPromptGenerator's list) over wildcard files in a temp
models folder read by the library's own WildcardManager; the escape attempts refused; errors by name;
a UI-format save and an API prompt with the pack's class names feeding CLIPTextEncode on the test
checkpoint, and their export round trip; the left-out classes refused by name."""

import json
import random

import pytest
import torch

import nodes.pack_nodes_dynamic_prompts as dp
from graphflow.comfy_format import custom_pack, export_api, export_ui, unknown_type_hint
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.testing import write_checkpoint
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

TEMPLATES = [
    "a {red|green|blue} {ball|cube|cone} on a {table|chair}",
    "{2$$a|b|c|d} and {1-3$$ or $$x|y|z}",
    "{0.2::rare|5::common|1::sometimes} ${c={cat|dog|fox}} ${c} and ${c}",
    "__colors__ __shapes/solid__ __mammal__ {__bird__|__fruit__}",
    "__shapes/*__ {~left|right} {__colors__|plain} __tools__",
]


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


@pytest.fixture
def wildcards(tmp_folders):
    """A wildcards folder with a .txt file, one in a sub folder, a .json and a .yaml file (whose
    keys are wildcards of their own, as the library names them: mammal, tools)."""
    base = tmp_folders.models / "wildcards"
    (base / "shapes").mkdir(parents=True)
    (base / "colors.txt").write_text("red\ngreen\n# a comment\nblue\n{light|dark} grey\n", encoding="utf-8")
    (base / "shapes" / "solid.txt").write_text("cube\nsphere\npyramid\n", encoding="utf-8")
    (base / "animals.json").write_text(json.dumps({"mammal": ["cat", "dog"], "bird": ["owl"]}), encoding="utf-8")
    (base / "things.yaml").write_text("tools:\n  - hammer\n  - saw\nfruit:\n  - apple\n", encoding="utf-8")
    dp._cycles.clear()
    yield base
    dp._cycles.clear()


def library_manager(base):
    from dynamicprompts.wildcards import WildcardManager

    return WildcardManager(path=base)  # the library's own walk of the folder: the reference


def node(registry, class_type, **inputs):
    return call(registry, registry.comfy_node(class_type).node_type, **inputs)


def test_the_packs_names_are_ours(registry):
    for name, ours in (("DPRandomGenerator", "DynamicPromptsRandom"),
                       ("DPCombinatorialGenerator", "DynamicPromptsCombinatorial"),
                       ("DPOutput", "DynamicPromptsOutput"), ("DPMultilineString", "DynamicPromptsMultilineString")):
        assert registry.comfy_node(name).node_type == ours
        assert registry.comfy_node(name).__module__ == "nodes.pack_nodes_dynamic_prompts"
    cls = registry.get("DynamicPromptsRandom")
    assert list(cls.input_specs) == ["text", "seed", "autorefresh"]
    assert cls.input_specs["seed"].widget.max == 2 ** 64 - 1 and cls.input_specs["autorefresh"].default == "No"


@pytest.mark.parametrize("text", TEMPLATES)
def test_random_prompt_is_the_librarys_with_that_seed(registry, wildcards, text):
    from dynamicprompts.generators import RandomPromptGenerator

    manager = library_manager(wildcards)
    for seed in (1, 2, 7, 12345, 2 ** 63 + 5):
        want = RandomPromptGenerator(manager, seed=seed).generate(text, 1)[0]
        assert "__" not in want  # every wildcard was found
        assert node(registry, "DPRandomGenerator", text=text, seed=seed) == want
        # the pack keeps one generator and reseeds it each run: the library's seeds= does the same
        assert RandomPromptGenerator(manager).generate(text, 3, seeds=[seed] * 3) == [want] * 3
    seen = {node(registry, "DPRandomGenerator", text=text, seed=seed) for seed in range(1, 40)}
    assert len(seen) > 1  # the seed does choose


def test_random_prompt_with_seed_0_draws_from_the_templates_prompts(registry, wildcards):
    from dynamicprompts.generators import CombinatorialPromptGenerator

    text = "{a|b|c} {x|y}"
    every = set(CombinatorialPromptGenerator(library_manager(wildcards)).generate(text, max_prompts=None))
    drawn = {node(registry, "DPRandomGenerator", text=text, seed=0) for _ in range(60)}
    assert drawn <= every and len(drawn) > 1
    cls = registry.get("DynamicPromptsRandom")
    assert cls.fingerprint(seed=0, text=text) != cls.fingerprint(seed=0, text=text)  # a new draw each run
    assert cls.fingerprint(seed=5, text=text) == cls.fingerprint(seed=5, text=text)


@pytest.mark.parametrize("text", ["{a|b} {c|d|e}", "__colors__ {on|off}", "{2$$a|b|c} ${v={x|y}} ${v}",
                                  "__mammal__ __tools__ __shapes/*__"])
def test_combinatorial_gives_the_librarys_list_one_a_run_then_starts_again(registry, wildcards, text):
    from dynamicprompts.generators import CombinatorialPromptGenerator

    every = CombinatorialPromptGenerator(library_manager(wildcards)).generate(text, max_prompts=None)
    got = [node(registry, "DPCombinatorialGenerator", text=text, seed=0) for _ in range(len(every) + 3)]
    assert got == every + every[:3]


def test_combinatorial_places_are_kept_per_node_and_restart_on_a_new_text(registry, wildcards):
    first = [dp.combinatorial_prompt(("t", "1"), "{a|b|c}", 0) for _ in range(2)]
    other = dp.combinatorial_prompt(("t", "2"), "{a|b|c}", 0)
    assert first == ["a", "b"] and other == "a"
    assert dp.combinatorial_prompt(("t", "1"), "{x|y}", 0) == "x"  # changed text: from the first
    assert dp.combinatorial_prompt(("t", "1"), "{a|b|c}", 0) == "a"
    (wildcards / "colors.txt").write_text("pink\nteal\n", encoding="utf-8")
    assert [dp.combinatorial_prompt(("t", "1"), "__colors__", 0) for _ in range(3)] == ["pink", "teal", "pink"]
    (wildcards / "colors.txt").write_text("amber\n", encoding="utf-8")  # a changed file: read anew, from the first
    assert dp.combinatorial_prompt(("t", "1"), "__colors__", 0) == "amber"


def test_combinatorial_reseeds_its_random_parts_each_run_as_the_pack(registry, wildcards):
    """The pack's get_prompt: rand.seed(seed) when seed > 0, then the next prompt of the one
    generator it keeps, a new one after the last: replayed here with the library's SamplingContext."""
    from dynamicprompts.enums import SamplingMethod
    from dynamicprompts.sampling_context import SamplingContext

    text = "{~a|b|c|d|e} {x|y|z} {~1|2|3|4}"
    for seed in (3, 99):
        rand = random.Random()
        context = SamplingContext(SamplingMethod.COMBINATORIAL, library_manager(wildcards), rand=rand)
        prompts, want = context.sample_prompts(text), []
        for _ in range(7):
            rand.seed(seed)
            try:
                want.append(str(next(prompts)))
            except StopIteration:
                prompts = context.sample_prompts(text)
                want.append(str(next(prompts)))
        dp._cycles.clear()
        assert [node(registry, "DPCombinatorialGenerator", text=text, seed=seed) for _ in range(7)] == want
        assert [w.split()[1] for w in want] == ["x", "y", "z", "x", "y", "z", "x"]


def test_the_user_wildcards_folder_wins_a_name_over_an_extra_one(registry, wildcards, tmp_path):
    extra = tmp_path / "extra_wildcards"
    extra.mkdir()
    (extra / "colors.txt").write_text("ochre\n", encoding="utf-8")
    (extra / "only_extra.txt").write_text("violet\n", encoding="utf-8")
    from graphflow.api import folders

    saved = dict(folders.extra_models)
    folders.extra_models["wildcards"] = [extra]
    try:
        assert node(registry, "DPRandomGenerator", text="__only_extra__", seed=1) == "violet"
        assert node(registry, "DPCombinatorialGenerator", text="__colors__", seed=0) == "blue"  # the user's, sorted
    finally:
        folders.extra_models.clear()
        folders.extra_models.update(saved)


def test_a_wildcard_name_cannot_read_outside_the_folder(registry, wildcards, tmp_path, caplog):
    (tmp_path / "secret.txt").write_text("SECRET\n", encoding="utf-8")
    (wildcards.parent / "secret.txt").write_text("SECRET\n", encoding="utf-8")
    outside = str(tmp_path / "secret").lstrip("/")
    for name in ("../secret", "../../secret", "..\\secret", f"/{outside}", "**/../secret", "shapes/../../secret"):
        text = f"__{name}__"
        for class_type in ("DPRandomGenerator", "DPCombinatorialGenerator"):
            got = node(registry, class_type, text=text, seed=1)
            assert "SECRET" not in got and "__" in got, (class_type, name, got)  # left as written
    assert "is left in the prompt as written" in caplog.text  # with a warning


BOTH = ("DPRandomGenerator", "DPCombinatorialGenerator")


@pytest.mark.parametrize("text, says, class_types", [
    ("{a|b", "not a Dynamic Prompts template", BOTH), ("a ${x} b", "Variable x is not defined", BOTH),
    # the library's combinatorial sampling gives " x" here, as in the pack
    ("${a={x|${a}}} ${a}", "refers to itself", BOTH[:1]),
    ("{" * 400 + "a" + "}" * 400, "nests too deep", BOTH), ("word " * 5000, "20,000", BOTH),
])
def test_bad_templates_are_refused_naming_text(registry, wildcards, text, says, class_types):
    for class_type in class_types:
        with pytest.raises(NodeInputError) as caught:
            node(registry, class_type, text=text, seed=1)
        assert caught.value.input == "text" and says in str(caught.value), (class_type, str(caught.value))


def test_an_exploding_combinatorial_search_is_stopped_by_the_step_budget(registry, wildcards, monkeypatch):
    """{3$$...} of variants that give only "a" or "b": three that differ can't be found, and the
    library would try every combination (C(24, 3) * 2^3 ...; {6$$...} takes hours)."""
    monkeypatch.setattr(dp, "MAX_STEPS", 20_000)
    options = "|".join("{" + "|".join(f"{'ab'[(i >> k) & 1]}" for k in range(5)) + "}" for i in range(24))
    with pytest.raises(NodeInputError) as caught:
        node(registry, "DPCombinatorialGenerator", text="{3$$" + options + "}", seed=0)
    assert caught.value.input == "text" and "sampling steps" in str(caught.value)
    # the same budget is plenty for an ordinary template, and the node works on after a refusal
    assert node(registry, "DPCombinatorialGenerator", text="{a|b} {c|d}", seed=0) == "a c"
    assert node(registry, "DPRandomGenerator", text="{2$$" + options + "}", seed=4)


def test_an_unreadable_structured_file_is_skipped_as_the_library_skips_it(registry, wildcards):
    (wildcards / "broken.json").write_text("{not json", encoding="utf-8")
    (wildcards / "broken.yaml").write_text("a: [unclosed", encoding="utf-8")
    assert node(registry, "DPCombinatorialGenerator", text="__mammal__ __shapes/solid__", seed=0) == "cat cube"
    assert library_manager(wildcards).get_collection_names() == dp.wildcard_manager().get_collection_names()


def test_empty_text_gives_empty_and_the_string_nodes(registry, wildcards):
    assert node(registry, "DPRandomGenerator", text="   ", seed=1) == ""
    assert node(registry, "DPCombinatorialGenerator", text="", seed=1) == ""
    assert node(registry, "DPMultilineString", string="{a|b}\nline two") == "{a|b}\nline two"


def test_left_out_classes_are_refused_by_name_with_why(registry):
    for name, says in (("DPJinja", "sandbox"), ("DPFeelingLucky", "web service"), ("DPMagicPrompt", "GPT-2")):
        assert registry.comfy_node(name) is None and custom_pack(name) == "comfyui-dynamicprompts"
        assert says in unknown_type_hint(name)
    assert custom_pack("DPJinjaX") is None  # whole names only
    result = Executor(registry).run(parse_workflow({"1": {"class_type": "DPJinja", "inputs": {"text": "{{ 1 }}"}}},
                                                   registry))
    assert not result.ok and any("DPJinja" in p.message and "sandbox" in p.message for p in result.problems)


def test_the_librarys_jinja_environment_is_not_sandboxed():
    """Why DPJinja is left out: the library builds a plain jinja2.Environment, in which a template
    reaches Python's objects (a sandboxed one would refuse this attribute)."""
    from dynamicprompts.generators import JinjaGenerator

    got = JinjaGenerator().generate("{{ ''.__class__.__mro__[1].__name__ }}", 1)
    assert got == ["object"]


@pytest.fixture
def checkpoint(wildcards, tmp_folders):
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    return "tiny.safetensors"


def encoded(registry, text):
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
              "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": text}}}
    return run_graph(registry, prompt, ["2"]).values["2"][0]


def same_conditioning(a, b):
    return len(a) == len(b) and all(torch.equal(x[0], y[0]) for x, y in zip(a, b))


def test_api_prompt_with_the_packs_classes_feeds_clip_text_encode_and_round_trips(registry, checkpoint):
    from dynamicprompts.generators import RandomPromptGenerator

    text = "a photo of a {red|green|blue} __shapes/solid__"
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "DPRandomGenerator", "inputs": {"text": text, "seed": 42, "autorefresh": "No"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ["2", 0]}},
        "4": {"class_type": "DPCombinatorialGenerator",
              "inputs": {"text": "{a|b} cat", "seed": 0, "autorefresh": "Yes"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ["4", 0]}},
        "6": {"class_type": "DPOutput", "inputs": {"string": ["2", 0]}},
    }
    want = RandomPromptGenerator(library_manager(dp_folder()), seed=42).generate(text, 1)[0]
    result = run_graph(registry, prompt, ["3", "5", "6"])
    assert result.values["2"] == (want,) and result.outputs["6"] == {"string": [want]}
    assert same_conditioning(result.values["3"][0], encoded(registry, want))
    assert same_conditioning(result.values["5"][0], encoded(registry, "a cat"))
    again = run_graph(registry, prompt, ["3", "5"])  # the combinatorial node's next prompt
    assert again.values["2"] == (want,) and again.values["4"] == ("b cat",)
    assert same_conditioning(again.values["5"][0], encoded(registry, "b cat"))
    api = export_api(parse_workflow(prompt, registry), registry)
    assert {k: (v["class_type"], v["inputs"]) for k, v in api.items()} == \
        {k: (v["class_type"], v["inputs"]) for k, v in prompt.items()}


def dp_folder():
    from graphflow.api import folders

    return folders.models / "wildcards"


@pytest.mark.parametrize("widgets", [["{cat|dog} in __colors__", 7, "fixed", "No"],
                                     ["{cat|dog} in __colors__"]])  # a save from before the seed
def test_ui_save_with_the_packs_nodes_runs_and_round_trips(registry, checkpoint, widgets):
    from dynamicprompts.generators import RandomPromptGenerator

    nodes = [
        ui_node(1, "CheckpointLoaderSimple", [checkpoint],
                outputs=[("MODEL", "MODEL", []), ("CLIP", "CLIP", [1, 2]), ("VAE", "VAE", [])]),
        ui_node(2, "DPRandomGenerator", widgets, outputs=[("STRING", "STRING", [3, 5])]),
        ui_node(3, "CLIPTextEncode", [""], [("clip", "CLIP", 1, False), ("text", "STRING", 3, True)],
                [("CONDITIONING", "CONDITIONING", [])]),
        ui_node(4, "DPCombinatorialGenerator", ["__shapes/solid__", 0, "fixed", "No"],
                outputs=[("STRING", "STRING", [4])]),
        ui_node(5, "CLIPTextEncode", [""], [("clip", "CLIP", 2, False), ("text", "STRING", 4, True)],
                [("CONDITIONING", "CONDITIONING", [])]),
        ui_node(6, "DPOutput", [""], [("string", "STRING", 5, True)]),
        ui_node(7, "DPMultilineString", ["{kept|as is}"], outputs=[("STRING", "STRING", [])]),
    ]
    links = [[1, 1, 1, 3, 0, "CLIP"], [2, 1, 1, 5, 0, "CLIP"], [3, 2, 0, 3, 1, "STRING"],
             [4, 4, 0, 5, 1, "STRING"], [5, 2, 0, 6, 0, "STRING"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["3", "5", "6", "7"])
    seed = widgets[1] if len(widgets) > 1 else 0
    if seed:
        want = RandomPromptGenerator(library_manager(dp_folder()), seed=seed).generate(widgets[0], 1)[0]
        assert result.values["2"] == (want,)
    else:  # seed 0: a fresh draw, one of the template's prompts
        assert result.values["2"][0].split(" in ")[0] in ("cat", "dog")
    assert result.outputs["6"] == {"string": [result.values["2"][0]]}
    assert same_conditioning(result.values["3"][0], encoded(registry, result.values["2"][0]))
    assert result.values["4"] == ("cube",) and result.values["7"] == ("{kept|as is}",)
    assert same_conditioning(result.values["5"][0], encoded(registry, "cube"))
    saved = export_ui(parse_workflow(graph, registry), registry)
    by_id = {n["id"]: n for n in saved["nodes"]}
    for n in nodes:
        assert by_id[n["id"]]["type"] == n["type"]
    assert by_id[2]["widgets_values"][:2] == [widgets[0], seed] and by_id[2]["widgets_values"][-1] == "No"
    assert by_id[4]["widgets_values"] == ["__shapes/solid__", 0, "fixed", "No"]
    assert by_id[7]["widgets_values"] == ["{kept|as is}"]
