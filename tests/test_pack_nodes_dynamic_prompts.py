"""comfyui-dynamicprompts' nodes (nodes/pack_nodes_dynamic_prompts.py) against the `dynamicprompts`
library's own generators (the reference: RandomPromptGenerator with the same seed, the pack's
reseeding of one generator per run, CombinatorialPromptGenerator's list) over wildcard files in a temp
models folder read by the library's own WildcardManager; the escape attempts refused; errors by name;
a UI-format save and an API prompt with the pack's class names feeding CLIPTextEncode on the test
checkpoint, and their export round trip; the left-out classes refused by name."""

import json
import random
import threading
import time

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
    # a weighted wildcard (drawn ten at a time) and an immediate variable (drawn once): the seed
    # does not reset them, so the pack's generator gives other prompts on later runs
    "__weighted__ on __weighted__ ${s=!{summer|winter|spring|fall}} ${s} {2$$__weighted__}",
]


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


@pytest.fixture
def wildcards(tmp_folders):
    """A wildcards folder with a .txt file, one in a sub folder, a .json and a .yaml file (whose
    keys are wildcards of their own, as the library names them: mammal, tools; weighted has
    2::line weights)."""
    base = tmp_folders.models / "wildcards"
    (base / "shapes").mkdir(parents=True)
    (base / "colors.txt").write_text("red\ngreen\n# a comment\nblue\n{light|dark} grey\n", encoding="utf-8")
    (base / "shapes" / "solid.txt").write_text("cube\nsphere\npyramid\n", encoding="utf-8")
    (base / "animals.json").write_text(json.dumps({"mammal": ["cat", "dog"], "bird": ["owl"],
                                                   "weighted": ["1::oak", "5::elm", "2::ash", "3::yew"]}),
                                       encoding="utf-8")
    (base / "comments.txt").write_text("# only a comment\n", encoding="utf-8")
    (base / "things.yaml").write_text("tools:\n  - hammer\n  - saw\nfruit:\n  - apple\n", encoding="utf-8")
    dp._cycles.clear()
    yield base
    dp._cycles.clear()


def library_manager(base):
    from dynamicprompts.wildcards import WildcardManager

    return WildcardManager(path=base)  # the library's own walk of the folder: the reference


def node(registry, class_type, **inputs):
    return call(registry, registry.comfy_node(class_type).node_type, **inputs)


def combinatorial(key, text, seed=0):
    return dp.next_prompt("COMBINATORIAL", key, text, seed)


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
def test_random_prompt_is_the_packs_one_generator_reseeded_each_run(registry, wildcards, text):
    """The pack reseeds its generator before each run's prompt (one node alone here: the pack's
    nodes share one process-wide generator, ours each keep their own): the library's
    RandomPromptGenerator.generate with seeds= does the same; its first prompt is a new
    generator's with that seed."""
    from dynamicprompts.generators import RandomPromptGenerator

    manager = library_manager(wildcards)
    seeds = [1, 2, 7, 7, 7, 7, 12345, 2 ** 63 + 5, 1]
    want = RandomPromptGenerator(manager).generate(text, len(seeds), seeds=seeds)
    assert want[0] == RandomPromptGenerator(manager, seed=1).generate(text, 1)[0]
    assert all("__" not in w for w in want)  # every wildcard was found
    assert [node(registry, "DPRandomGenerator", text=text, seed=seed) for seed in seeds] == want
    dp._cycles.clear()
    seen = {node(registry, "DPRandomGenerator", text=text, seed=seed) for seed in range(1, 40)}
    assert len(seen) > 1  # the seed does choose


def test_a_weighted_wildcard_and_an_immediate_variable_are_not_reset_by_the_seed(registry, wildcards):
    """As the pack: with seed > 0 a weighted wildcard's draws go on from run to run; with seed 0 an
    immediate variable keeps the value drawn when the node's generator was made."""
    runs = {node(registry, "DPRandomGenerator", text="__weighted__", seed=5) for _ in range(10)}
    assert len(runs) > 1
    text = "${s=!{summer|winter|spring|fall}} ${s} ${s}"
    got = {node(registry, "DPRandomGenerator", text=text, seed=0) for _ in range(12)}
    assert len(got) == 1 and got.pop().strip() in {f"{s} {s}" for s in ("summer", "winter", "spring", "fall")}
    cls = registry.get("DynamicPromptsRandom")  # the node re-runs each time, as the pack's
    assert cls.fingerprint(seed=5, text=text) != cls.fingerprint(seed=5, text=text)


def test_random_prompt_with_seed_0_draws_from_the_templates_prompts(registry, wildcards):
    from dynamicprompts.generators import CombinatorialPromptGenerator

    text = "{a|b|c} {x|y}"
    every = set(CombinatorialPromptGenerator(library_manager(wildcards)).generate(text, max_prompts=None))
    drawn = {node(registry, "DPRandomGenerator", text=text, seed=0) for _ in range(60)}
    assert drawn <= every and len(drawn) > 1
    cls = registry.get("DynamicPromptsRandom")
    assert cls.fingerprint(seed=0, text=text) != cls.fingerprint(seed=0, text=text)  # a new draw each run


@pytest.mark.parametrize("text", ["{a|b} {c|d|e}", "__colors__ {on|off}", "{2$$a|b|c} ${v={x|y}} ${v}",
                                  "__mammal__ __tools__ __shapes/*__"])
def test_combinatorial_gives_the_librarys_list_one_a_run_then_starts_again(registry, wildcards, text):
    from dynamicprompts.generators import CombinatorialPromptGenerator

    every = CombinatorialPromptGenerator(library_manager(wildcards)).generate(text, max_prompts=None)
    got = [node(registry, "DPCombinatorialGenerator", text=text, seed=0) for _ in range(len(every) + 3)]
    assert got == every + every[:3]


def test_combinatorial_places_are_kept_per_node_and_restart_on_a_new_text(registry, wildcards):
    first = [combinatorial(("t", "1"), "{a|b|c}") for _ in range(2)]
    other = combinatorial(("t", "2"), "{a|b|c}")
    assert first == ["a", "b"] and other == "a"
    assert combinatorial(("t", "1"), "{x|y}") == "x"  # changed text: from the first
    assert combinatorial(("t", "1"), "{a|b|c}") == "a"
    (wildcards / "colors.txt").write_text("pink\nteal\n", encoding="utf-8")
    assert [combinatorial(("t", "1"), "__colors__") for _ in range(3)] == ["pink", "teal", "pink"]
    (wildcards / "colors.txt").write_text("amber\n", encoding="utf-8")  # a changed file: read anew, from the first
    assert combinatorial(("t", "1"), "__colors__") == "amber"


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
    ("{" * 400 + "a" + "}" * 400, "nests too deep", BOTH), ("word " * 1601, "8,000", BOTH),
    # a range over a wildcard with no lines inside other text: no prompt for the text around it
    ("{2$$__colours__} cat", "__colours__ has no lines", BOTH), ("{2$$__comments__} x", "__comments__ has no lines", BOTH),
    ("${a=}", "a variable is set", BOTH), ("${a={x|y}}", "a variable is set", BOTH),
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


def finishes(work, seconds=30):
    """work() run in a daemon thread: what it returned or raised, or "still running" after seconds
    (a hang fails the test instead of hanging it)."""
    done = []

    def run():
        try:
            done.append(("returned", work()))
        except Exception as e:
            done.append(("raised", e))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return done[0] if done else ("still running", None)


@pytest.mark.parametrize("text", ["{@2$$a|a}", "a photo of {@2$$cat|cat}", "{@3$$a|b|b|a}"])
def test_a_cyclical_range_without_enough_different_options_is_refused_not_spun_on(registry, wildcards, text):
    """The library's cyclical sampler drops equal options, finds no combination and loops forever
    without making a generator (so the step budget never saw it)."""
    for class_type in BOTH:
        how, got = finishes(lambda: node(registry, class_type, text=text, seed=1))
        assert how == "raised" and isinstance(got, NodeInputError), (class_type, how, got)
        assert got.input == "text" and "options that differ" in str(got)
    assert node(registry, "DPRandomGenerator", text="{@2$$a|a|b}", seed=1) == "a,b"  # one that can be made


def test_a_range_over_more_than_its_different_options_is_not_searched_for_hours(registry, wildcards):
    """{9$$...} of eight words written three times: the library's combination search tries every
    ordering of the 24 options (3^8 * 8!) for nine that differ; ranges up to the different ones
    give the library's list."""
    from dynamicprompts.generators import CombinatorialPromptGenerator

    words = "|".join(w for w in "abcdefgh" for _ in range(3))
    how, got = finishes(lambda: node(registry, "DPCombinatorialGenerator", text="{9$$" + words + "}", seed=0))
    assert (how, got) == ("returned", "")  # no prompt at all, as the library (the pack gives "")
    how, got = finishes(lambda: node(registry, "DPRandomGenerator", text="{@1-9$$" + words + "}", seed=3))
    assert (how, got) == ("returned", "a")
    for text in ("{1-3$$a|a|b|b|c}", "{2-5$$x|y|x|{x|y}} {z|z}"):
        every = CombinatorialPromptGenerator(library_manager(wildcards)).generate(text, max_prompts=None)
        dp._cycles.clear()
        assert [combinatorial(("t", text), text) for _ in range(len(every))] == every


def test_weighted_empty_and_huge_weight_lines_are_counted_not_spun_on(registry, wildcards, monkeypatch):
    """A .json line "2::" is an empty prompt weighted 2: the library's random wildcard sampler asks
    again for ever (nothing was counted); "1e7::" repeats a line ten million times in the cyclical
    sampler (3 GB). Both are counted and refused by the step budget, naming text."""
    (wildcards / "odd.json").write_text(json.dumps({"blank": ["2::"], "heavy": ["1e7::", "x"]}), encoding="utf-8")
    monkeypatch.setattr(dp, "MAX_STEPS", 20_000)
    for text, class_type in (("a __blank__", "DPRandomGenerator"), ("__@heavy__", "DPRandomGenerator"),
                             ("__@heavy__", "DPCombinatorialGenerator")):
        how, got = finishes(lambda: node(registry, class_type, text=text, seed=1), 20)
        assert how == "raised" and isinstance(got, NodeInputError) and got.input == "text", (text, how, got)


def test_a_wildcard_line_with_bad_syntax_is_named_as_the_wildcards(registry, wildcards):
    (wildcards / "broken.txt").write_text("fine\n}{oops\n", encoding="utf-8")
    for text in ("a {2$$__broken__}", "{@__broken__|x} " * 2):
        with pytest.raises(NodeInputError) as caught:
            for _ in range(4):  # the random draw may take the good line first
                node(registry, "DPCombinatorialGenerator", text=text, seed=1)
        assert caught.value.input == "text" and "}{oops" in str(caught.value) and "wildcard" in str(caught.value)


def test_a_wildcard_ranges_lines_are_parsed_once_a_run_and_counted(registry, wildcards, monkeypatch):
    """{2$$__x__}: the library parses every line of x each time (40 such ranges over a 1000-line
    file: 40,000 parses, 34 s, 561 steps counted). Each line is parsed once a run and counted."""
    from dynamicprompts.generators import RandomPromptGenerator

    (wildcards / "many.txt").write_text("\n".join(f"word{i} {{thing|item}}" for i in range(100)), encoding="utf-8")
    text = "{2$$__many__} " * 3
    assert node(registry, "DPRandomGenerator", text=text, seed=9) == \
        RandomPromptGenerator(library_manager(wildcards), seed=9).generate(text, 1)[0]
    how, got = finishes(lambda: node(registry, "DPRandomGenerator", text="{2$$__many__} " * 40, seed=9), 20)
    assert how == "returned" and got.count(",") == 40
    monkeypatch.setattr(dp, "MAX_STEPS", 10_000)  # 100 lines of about 18 characters: 18,000 steps of parsing
    for class_type in BOTH:
        with pytest.raises(NodeInputError) as caught:
            node(registry, class_type, text="{2$$__many__}", seed=1)
        assert caught.value.input == "text" and "sampling steps" in str(caught.value)


@pytest.mark.parametrize("line", ["artist name 12", "  padded  ", "(masterpiece:1.2), best", "a, b. c! d? \"q\" 'r'",
                                  "émile zola", "x-y=z+w*v;t&s", "ÅÆØ 東京"])
def test_a_plain_wildcard_line_is_what_the_parser_makes_of_it(line):
    from dynamicprompts.commands import LiteralCommand
    from dynamicprompts.parser.config import ParserConfig
    from dynamicprompts.parser.parse import parse

    assert dp._plain(line) and parse(line, parser_config=ParserConfig()) == LiteralCommand(line)
    for special in ("a {b|c}", "a__b__", "50%", "#tag", "a$b", "tab\there", "", "x<y>", "[a]", "a|b}", "a~b", "a\\b",
                    "//x", "/*x*/y", "AC/DC"):
        assert not dp._plain(special)


def test_a_range_over_a_long_plain_list_runs_within_the_budget(registry, wildcards):
    """{2$$__artists__} over a 3000-line plain list (as users keep): its lines need no parser, so the
    range is within the step budget, and gives the library's prompt."""
    from dynamicprompts.generators import RandomPromptGenerator

    (wildcards / "artists.txt").write_text("\n".join(f"artist number {i}, painter" for i in range(3000)),
                                           encoding="utf-8")
    text = "a portrait by {2$$__artists__}"
    assert node(registry, "DPRandomGenerator", text=text, seed=4) == \
        RandomPromptGenerator(library_manager(wildcards), seed=4).generate(text, 1)[0]


def test_the_values_a_wildcard_glob_gathers_are_counted(registry, wildcards, monkeypatch):
    """Each new glob (__*__, __**__, ...) gathers every file's lines anew."""
    for f in range(20):
        (wildcards / f"f{f:02d}.txt").write_text("\n".join(f"w{f}_{i}" for i in range(500)), encoding="utf-8")
    monkeypatch.setattr(dp, "MAX_STEPS", 5_000)  # each glob: 10,000 lines, 625 steps
    globs = " ".join("__" + "*" * i + "__" for i in range(1, 11))
    for class_type in BOTH:
        with pytest.raises(NodeInputError) as caught:
            node(registry, class_type, text=globs, seed=1)
        assert "sampling steps" in str(caught.value)
    from dynamicprompts.generators import CombinatorialPromptGenerator

    want = CombinatorialPromptGenerator(library_manager(wildcards)).generate("__*__ __f03__", 1)
    assert [node(registry, "DPCombinatorialGenerator", text="__*__ __f03__", seed=0)] == want


def test_a_prompt_growing_past_the_text_limit_is_stopped_as_it_grows(registry, wildcards, monkeypatch):
    """Variables that double each other: the text is checked as each part is made, not when the
    whole has been built (here 2^4 * 4,000 characters; 1.2 billion, 2.5 GB, in the review's
    probe)."""
    monkeypatch.setattr(dp, "MAX_TEXT", 50_000)
    built = []
    monkeypatch.setattr(dp, "_measured", lambda results, measured=dp._measured: (
        built.append(r) or r for r in measured(results)))
    text = "${v0=" + "X" * 4000 + "}" + "".join("${v%d=${v%d}${v%d}}" % (i + 1, i, i) for i in range(4)) + "${v4}"
    for class_type in BOTH:
        built.clear()
        with pytest.raises(NodeInputError) as caught:
            node(registry, class_type, text=text, seed=1)
        assert caught.value.input == "text" and "50,000 characters" in str(caught.value)
        assert max(len(r.text) for r in built) <= 50_000
    for class_type in BOTH:
        assert node(registry, class_type, text=text.replace("${v4}", "${v3}"), seed=1).strip() == "X" * 32_000


def test_combinatorial_runs_in_two_threads_take_turns_on_the_nodes_generator(registry, wildcards, monkeypatch):
    """The server runs workflows in threads: two runs of one node each get the next prompt, never
    "generator already executing", and between them every prompt once."""
    from dynamicprompts.generators import CombinatorialPromptGenerator

    text = "{a|b|c|d} {e|f|g|h|i} {j|k}"
    every = CombinatorialPromptGenerator(library_manager(wildcards)).generate(text, max_prompts=None)
    spend = dp._Budget.spend
    monkeypatch.setattr(dp._Budget, "spend", lambda self, steps: (time.sleep(0.0005), spend(self, steps))[1])
    got, failed = [], []

    def runs():
        for _ in range(len(every) // 2):
            try:
                got.append(combinatorial(("DynamicPromptsCombinatorial", "4"), text))
            except Exception as e:
                failed.append(e)

    threads = [threading.Thread(target=runs) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failed == [] and sorted(got) == sorted(every)


def test_wildcards_in_hidden_folders_are_not_read_as_the_librarys_walk_skips_them(registry, wildcards):
    (wildcards / ".github" / "workflows").mkdir(parents=True)
    (wildcards / ".github" / "workflows" / "ci.yaml").write_text("name: CI\njobs: [test]\n", encoding="utf-8")
    (wildcards / ".cache").mkdir()
    (wildcards / ".cache" / "old.txt").write_text("stale\n", encoding="utf-8")
    (wildcards / "shapes" / ".trash").mkdir()
    (wildcards / "shapes" / ".trash" / "gone.txt").write_text("gone\n", encoding="utf-8")
    (wildcards / ".dotted.txt").write_text("dotted\n", encoding="utf-8")  # a file's own name is not a folder
    names = library_manager(wildcards).get_collection_names()
    assert dp.wildcard_manager().get_collection_names() == names and ".dotted" in names
    assert node(registry, "DPRandomGenerator", text="__old__ __name__ __.dotted__", seed=1) == "__old__ __name__ dotted"


def test_a_missing_wildcard_is_warned_of_once_a_run_and_dots_only_for_dotted_names(registry, wildcards, caplog):
    got = node(registry, "DPRandomGenerator", text="__nope__ {__nope__|__nope__} __nope__ __../up__", seed=1)
    assert got.count("__nope__") == 3
    warned = [r.getMessage() for r in caplog.records if "no lines for" in r.getMessage()]
    assert len(warned) == 2
    assert "'..'" not in warned[0] and "'nope'" in warned[0]
    assert "'../up'" in warned[1] and "a name with '..' is never looked up" in warned[1]


def test_a_template_is_parsed_once_for_the_nodes_that_run_it(registry, wildcards):
    dp._parsed_template.cache_clear()
    text = "{a|b} " * 300
    for node_id in range(5):
        combinatorial(("t", str(node_id)), text)
    assert dp._parsed_template.cache_info().misses == 1 and dp._parsed_template.cache_info().hits == 4


# the review's probes: odd and empty syntax, nesting of each bracket, weights, ranges, globs
ODD_TEMPLATES = [
    "{}", "{|}", "{2$$}", "{0$$a|b}", "{-1$$a|b}", "{0::a|0::b}", "{~}", "{@a|b}", "{@a|b} {@c|d}", "__ __", "____",
    "__{x|y}__", "${}", "${a=}", "${a=!} ${a}", "__x(v=)__", "{2$$ and $$}", "{1-0$$a|b}", "{3-1$$a|b|c}",
    "__colors__ __comments__", "{2$$__comments__}", "{2$$__colors__|__colors__}", "{0.0::a}", "{-1::a|b}",
    "{nan::a|b}", "{inf::a|b}", "{1e308::a|1e308::b}", "{2$$-1::a|b|c}", "${a=${a}} ${a}", "__*__", "__**__",
    "{__colors__|__comments__}", "{{a}}", "}", "{a|b}}", "${x}", "\\{a|b\\}", "{2$$0::a|0::b|0::c}",
    "{99999999999999999999$$a|b}", "{1-99999999999999999999$$a|b}", "%{a|b}", "{a|b}{c|d}",
    "{2$$__comments__} foo", "a ${b=} c", "{2$$__nofile__} x", "{@2$$__colors__}", "{@9$$__colors__|x}",
    *(opening * n + "a" + closing * n for n in (400, 2000) for opening, closing in
      (("{", "}"), ("{a|", "}"), ("(", ")"), ("[", "]"))),
]


@pytest.mark.parametrize("text", ODD_TEMPLATES)
def test_odd_templates_give_a_prompt_or_an_error_naming_text(registry, wildcards, text):
    for class_type in BOTH:
        how, got = finishes(lambda: node(registry, class_type, text=text, seed=3), 20)
        assert how == "returned" and isinstance(got, str) or \
            how == "raised" and isinstance(got, NodeInputError) and got.input == "text", (class_type, how, got)


@pytest.mark.parametrize("widgets, runs", [(["{cat|dog}", 5, "randomize", "No"], True), (["{cat|dog}", 5, "No"], True),
                                           (["{cat|dog}", "No"], False)])
def test_ui_saves_with_fewer_widgets(registry, wildcards, widgets, runs):
    """A save with the seed's control widget, one without it, and one without the seed (its
    autorefresh read as the seed: refused, naming the seed)."""
    graph = ui_graph([ui_node(2, "DPRandomGenerator", widgets, outputs=[("STRING", "STRING", [])]),
                      ui_node(3, "DPCombinatorialGenerator", widgets, outputs=[("STRING", "STRING", [])])], [])
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["2", "3"])
    if runs:
        assert result.ok and result.values["2"][0] in ("cat", "dog") and result.values["3"] == ("cat",)
    else:
        assert not result.ok and all("expected an integer" in p.message for p in result.problems)


def test_an_unreadable_structured_file_is_skipped_as_the_library_skips_it(registry, wildcards):
    (wildcards / "broken.json").write_text("{not json", encoding="utf-8")
    (wildcards / "broken.yaml").write_text("a: [unclosed", encoding="utf-8")
    assert node(registry, "DPCombinatorialGenerator", text="__mammal__ __shapes/solid__", seed=0) == "cat cube"
    assert library_manager(wildcards).get_collection_names() == dp.wildcard_manager().get_collection_names()


def test_empty_text_gives_empty_and_the_string_nodes(registry, wildcards):
    assert node(registry, "DPRandomGenerator", text="   ", seed=1) == ""
    for class_type in BOTH:  # a template that gives no prompt at all: "", as the pack gives
        assert node(registry, class_type, text="{2$$__comments__}", seed=1) == ""
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
