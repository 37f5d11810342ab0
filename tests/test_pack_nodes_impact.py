"""Impact Pack's model-free nodes (nodes/pack_nodes_impact.py): the wildcard language checked
against numpy's generator drawn as the pack draws (each case worked by hand from the pack's
steps), the LoRA tags and BREAK against LoraLoader + CLIPTextEncode + ConditioningConcat, the
logic and switch nodes, lists and batches against torch, the basic-pipe samplers against
KSampler, and UI/API saves with the pack's class names read, run and written back."""

import numpy as np
import pytest
import torch

from graphflow import memory
from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.testing import write_checkpoint, write_lora
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_impact import glob_matches, lora_tags, process_wildcards, remove_comments
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import ui_graph, ui_node


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


@pytest.fixture
def wildcards(tmp_folders):
    base = tmp_folders.models / "wildcards"
    (base / "sub").mkdir(parents=True)
    (base / "color.txt").write_text("red\n# a comment line\ngreen\nblue\n", encoding="utf-8")
    (base / "sub" / "animal.txt").write_text("cat\ndog\n", encoding="utf-8")
    (base / "weighted.txt").write_text("3::often\n1::rarely\n", encoding="utf-8")
    (base / "tree.yaml").write_text("places:\n  city: [paris, rome]\n  sea: [\"north sea\"]\nlone: 7\n",
                                    encoding="utf-8")
    (base / "more.yml").write_text("food: [bread, \"{rice|soup}\"]\n", encoding="utf-8")
    return base


def rng(seed):
    return np.random.default_rng(seed)


def pick(generator, options, weights=None, size=1):
    """One draw of the pack's choice(options, p, size, replace=False), as numpy makes it."""
    weights = np.array(weights or [1] * len(options), dtype=float)
    return [str(x) for x in generator.choice(options, p=list(weights / weights.sum()), size=size, replace=False)]


# -- the wildcard language, case by case -----------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 7, 123456789, 2**64 - 1])
def test_choice_and_weights_follow_numpys_generator(wildcards, seed):
    assert process_wildcards("a {x|y|z} b", seed) == f"a {pick(rng(seed), ['x', 'y', 'z'])[0]} b"
    assert process_wildcards("{3::x|1::y}", seed) == pick(rng(seed), ["3::x", "1::y"], [3, 1])[0][3:]


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_multi_select_counts_and_separator(wildcards, seed):
    g = rng(seed)
    # 2$$: the range (2, 2); top = min(3, 4) = 3 differs from 2, so integers(2, 3) is drawn (always 2)
    count = g.integers(low=2, high=3, size=1)
    want = ", ".join(pick(g, ["a", "b", "c"], size=count))
    assert process_wildcards("{2$$, $$a|b|c}", seed) == want
    g = rng(seed)
    count = g.integers(low=1, high=3, size=1)  # 1-2$$: top = min(3, 4) = 3
    assert process_wildcards("{1-2$$a|b|c}", seed) == " ".join(pick(g, ["a", "b", "c"], size=count))
    g = rng(seed)
    count = g.integers(low=1, high=4, size=1)  # -3$$ is 1-3: top = min(4, 4)
    assert process_wildcards("{-3$$a|b|c}", seed) == " ".join(pick(g, ["a", "b", "c"], size=count))


def test_weights_adding_to_one_or_less_give_every_option_shuffled(wildcards):
    """The pack's rule (total weight <= 1: every option, shuffled), kept: a seed gives its text."""
    options = ["0.5::a", "0.5::b"]
    rng(9).shuffle(options)
    assert process_wildcards("{0.5::a|0.5::b}", 9) == " ".join(o[5:] for o in options)
    assert process_wildcards("{only}", 9) == "only"  # one option: total 1, nothing drawn


def test_wildcard_files_folders_yaml_and_globs(wildcards):
    assert process_wildcards("__color__", 5) == pick(rng(5), ["red", "green", "blue"])[0]
    assert process_wildcards("__weighted__", 5) == pick(rng(5), ["3::often", "1::rarely"], [3, 1])[0][3:]
    # a bare name found in a subfolder: tried again as __*/animal__, the lines of every match
    assert process_wildcards("__animal__", 2) == str(rng(2).choice(["cat", "dog"]))
    assert process_wildcards("__SUB/Animal__", 2) == pick(rng(2), ["cat", "dog"])[0]  # keys are lower case
    assert process_wildcards("__places/city__", 1) == pick(rng(1), ["paris", "rome"])[0]
    assert process_wildcards("__places/*__", 1) == str(rng(1).choice(["paris", "rome", "north sea"]))
    assert process_wildcards("__lone__", 1) == "7"
    # a .yml line holding options: drawn in the next round with the same generator
    g = rng(4)
    line = pick(g, ["bread", "{rice|soup}"])[0]
    want = line if line == "bread" else pick(g, ["rice", "soup"])[0]
    assert process_wildcards("__food__", 4) == want


def test_nesting_and_wildcards_inside_options(wildcards):
    g = rng(11)
    inner = pick(g, ["b", "c"])[0]  # innermost braces first
    outer = pick(g, ["a", inner])[0]
    assert process_wildcards("{a|{b|c}}", 11) == outer
    g = rng(12)
    first = pick(g, ["__color__", "plain"])[0]
    want = pick(g, ["red", "green", "blue"])[0] if first == "__color__" else "plain"
    assert process_wildcards("{__color__|plain}", 12) == want
    # {2$$__color__}: the options are the wildcard's lines
    g = rng(13)
    count = g.integers(low=2, high=3, size=1)
    assert process_wildcards("{2$$__color__}", 13) == " ".join(pick(g, ["red", "green", "blue"], size=count))


def test_comments_quantifiers_escapes_and_unknown_names(wildcards):
    assert remove_comments("a\n# note\nb\nc") == "a b\nc"
    # a comment before any kept line: the pack's flag stays set until a line is joined
    assert remove_comments("# c\na\nb") == "a b"
    assert remove_comments("#c\n#d\na\nb\nc") == "a b\nc"
    assert process_wildcards("one\n  # gone\ntwo", 0) == "one two"
    g = rng(6)  # 2#__color__ -> __color__|__color__: two wildcards, drawn in turn
    assert process_wildcards("{2#__color__}", 6) == pick(g, ["__color__", "__color__"])[0].replace(
        "__color__", pick(g, ["red", "green", "blue"])[0])
    assert process_wildcards(r"keep \{this\}", 0) == r"keep \{this\}"
    assert process_wildcards("__nothing__ here", 0) == "__*/nothing__ here"  # as the pack leaves it


def test_glob_is_re_match_without_running_an_expression():
    import re
    for pattern, key in [("*/color", "sub/color"), ("col*", "color"), ("c.lor", "color"), ("*x", "color"),
                         ("sub/*", "sub/animal"), ("a*b*c", "aXbYc"), ("a*b*c", "acb"), ("", "x")]:
        assert glob_matches(pattern, key) == (re.match(pattern.replace("*", ".*"), key) is not None)
    assert not glob_matches("*a" * 200 + "b", "a" * 250)  # quick where a regex would backtrack


def test_wildcard_errors_name_the_input(wildcards):
    with pytest.raises(NodeInputError) as caught:
        process_wildcards("{x$$a|b}", 0, "wildcard_text")
    assert caught.value.input == "wildcard_text" and "count" in str(caught.value)
    with pytest.raises(NodeInputError) as caught:
        process_wildcards("{2$$0::a|0::b|2::c}", 0)  # one option may be drawn
    assert caught.value.input == "populated_text"
    with pytest.raises(NodeInputError):
        process_wildcards("99999999999#__color__", 0)  # refused before it is built


def test_wildcard_names_never_leave_the_folder(wildcards, tmp_folders):
    (tmp_folders.models / "secret.txt").write_text("leaked", encoding="utf-8")
    assert "leaked" not in process_wildcards("__../secret__ __*secret__ __/secret__", 0)


def test_processor_modes(registry, wildcards):
    populated = process_wildcards("{a|b|c} __color__", 21)
    assert call(registry, "ImpactWildcardProcessor", wildcard_text="{a|b|c} __color__", populated_text="stale",
                mode="populate", seed=21) == populated
    # fixed and reproduce: populated_text as given, its own syntax still processed with the seed
    for mode in ("fixed", "reproduce"):
        assert call(registry, "ImpactWildcardProcessor", wildcard_text="{a|b}", populated_text="kept {x|y}",
                    mode=mode, seed=3) == process_wildcards("kept {x|y}", 3)


def reference_process(text, seed, table):
    """The pack's wildcards.process rebuilt here step by step from its source (plain `re` on the
    names is fine in a test): comments, then rounds of quantifiers, options until none are left,
    then wildcards."""
    import re
    g = np.random.default_rng(seed)
    lines, joined, flag = text.split("\n"), [], False
    for line in lines:
        if line.lstrip().startswith("#"):
            flag = True
            continue
        if joined and flag:
            joined[-1] += " " + line
            flag = False
        else:
            joined.append(line)
    text = "\n".join(joined)
    name = r"__([\w.\-+/*\\]+?)__"
    number = r"^-?(\d*\.?\d+|\d+\.?\d*)$"

    def weights(options):
        values = []
        for o in options:
            parts = str(o).split("::", 1)
            values.append(float(parts[0].strip()) if len(parts) == 2 and re.match(number, parts[0].strip()) else 1)
        return [v / sum(values) for v in values], sum(values)

    def globbed(keyword):
        pattern = keyword.replace("*", ".*").replace("+", "\\+")
        return [line for k, v in table.items() for line in v if re.match(pattern, k) or re.match(pattern, k + "/")]

    def wildcard_options(string):
        found = []
        for match in re.findall(name, string):
            keyword = match.lower().replace("\\", "/").replace(" ", "-")
            if keyword in table:
                found.extend(table[keyword])
            elif "*" in keyword:
                found.extend(globbed(keyword))
            elif "/" not in keyword:
                found.extend(wildcard_options(string.replace(f"__{match}__", f"__*/{match}__", 1)))
        return found

    def option(match):
        options = match.group(1).split("|")
        multi = options[0].split("$$")
        select_range, sep = None, " "
        if len(multi) > 1:
            r = re.match(r"(\d+)(-(\d+))?", options[0])
            if r is None:
                r = re.match(r"-(\d+)", options[0])
                a, b = "1", r.group(1)
            else:
                a, b = r.group(1), r.group(3) or r.group(1)
            select_range = int(a), int(b)
            if len(multi) in (2, 3):
                sep = multi[1] if len(multi) == 3 else sep
                if len(options) == 1 and re.findall(name, multi[-1]):
                    options = wildcard_options(multi[-1])
                else:
                    options[0] = multi[-1]
        p, total = weights(options)
        count = 1
        if select_range is not None:
            top = min(select_range[1] + 1, len(options) + 1) if select_range[1] > 0 else len(options) + 1
            low = select_range[0]
            count = 0 if max(top, low) <= 0 else top if top == low else \
                g.integers(low=min(low, top), high=max(low, top), size=1)
        if count > len(options) or total <= 1:
            g.shuffle(options)
            chosen = options
        else:
            chosen = g.choice(options, p=p, size=count, replace=False)
        return sep.join(re.sub(r"^\s*[0-9.]+::", "", str(x), count=1) for x in chosen)

    def wildcards(string):
        replaced = False
        for match in re.findall(name, string):
            keyword = match.lower().replace("\\", "/").replace(" ", "-")
            if keyword in table:
                picked = g.choice(table[keyword], p=weights(table[keyword])[0], replace=False)
                string = string.replace(f"__{match}__", re.sub(r"^\s*[0-9.]+::", "", str(picked), count=1), 1)
                replaced = True
            elif "*" in keyword:
                found = globbed(keyword)
                if found:
                    string = string.replace(f"__{match}__", str(g.choice(found)), 1)
                    replaced = True
            elif "/" not in keyword:
                string, replaced = wildcards(string.replace(f"__{match}__", f"__*/{match}__", 1))
        return string, replaced

    braces = r"(?<!\\)\{((?:[^{}]|(?<=\\)[{}])*?)(?<!\\)\}"
    for _ in range(99):
        for q in list(re.finditer(r"(\d+)#__([\w.\-+/*\\]+?)__", text)):
            keyword, times = q.group(2).lower(), int(q.group(1))
            text = re.sub(rf"\d+#__{keyword.replace('*', chr(92) + '*')}__",
                          lambda _: "__" + "__|__".join([keyword] * times) + "__", text, flags=re.IGNORECASE)
        while re.search(braces, text):
            text = re.sub(braces, option, text)
        text, replaced = wildcards(text)
        if not replaced:
            break
    return text


TEXTS = ["{a|b|{c|d|__color__}} and __animal__, {2$$, $$__color__} {1-3$$ / $$x|2::y|0.3::z|w}",
         "# first line a comment\n{x|y}\n__color__\nlast",
         "line one\n# comment\n{__places/*__|__food__} {-2$$__*/animal__}\n3#__color__ {3#__color__}",
         "__sub/animal__ {5$$a|b} {0$$a|b} {2-1$$p|q|r} __weighted__ {1::u|2::v|3::w}"]


@pytest.mark.parametrize("seed", [0, 1, 2, 42, 99991, 2**40 + 3])
@pytest.mark.parametrize("text", TEXTS)
def test_processing_equals_the_packs_algorithm_rebuilt(wildcards, text, seed):
    from nodes.pack_nodes_impact import load_wildcards
    table = load_wildcards()
    assert process_wildcards(text, seed, table=table) == reference_process(text, seed, table)


# -- <lora:...> and BREAK --------------------------------------------------------------------------


def test_lora_tags_are_read_as_the_pack_reads_them():
    assert lora_tags("<lora:a> x <lora:b:0.5> <lora:c:0.5:-1> <lora:a:0.1> <lora:d:LBW=x:0.7>") == \
        [("a", 1.0, 1.0), ("b", 0.5, 0.5), ("c", 0.5, -1.0), ("d", 1.0, 1.0)]  # LBW=x:0.7 is one part


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """The checkpoint and LoRA, written once for the module (writing them is the slow part)."""
    folder = tmp_path_factory.mktemp("impact_models")
    write_checkpoint(folder / "tiny.safetensors", "sd1")
    write_lora(folder / "first.safetensors", "sd1", seed=1)
    return folder


@pytest.fixture
def lora_folders(wildcards, tmp_folders, model_files):
    for sub, name in (("checkpoints", "tiny.safetensors"), ("loras", "first.safetensors")):
        (tmp_folders.models / sub).mkdir(exist_ok=True)
        (tmp_folders.models / sub / name).symlink_to(model_files / name)
    return tmp_folders


CKPT = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}}


def test_encode_equals_lora_loader_and_clip_text_encodes(registry, lora_folders):
    text = "a {red|blue} house <lora:first:0.8:0.6> BREAK __color__ sky <lora:missing> BREAK {x|y} BREAK"
    seed = 5
    populated = process_wildcards(text, seed)
    parts = [p.strip() for p in populated.replace("<lora:first:0.8:0.6>", "").replace("<lora:missing>", "")
             .split("BREAK")]
    encode = {"1": CKPT, "2": {"class_type": "ImpactWildcardEncode",
                               "inputs": {"model": ["1", 0], "clip": ["1", 1], "wildcard_text": text,
                                          "populated_text": "", "mode": True, "Select to add LoRA": LORA,
                                          "Select to add Wildcard": WILDCARD, "seed": seed}}}
    chained = {"1": CKPT,
               "2": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1],
                                                            "lora_name": "first.safetensors",
                                                            "strength_model": 0.8, "strength_clip": 0.6}},
               "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 1], "text": parts[0]}},
               "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 1], "text": parts[1]}},
               "5": {"class_type": "ConditioningConcat", "inputs": {"conditioning_to": ["3", 0],
                                                                    "conditioning_from": ["4", 0]}},
               "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 1], "text": parts[2]}},
               "7": {"class_type": "ConditioningConcat", "inputs": {"conditioning_to": ["5", 0],
                                                                    "conditioning_from": ["6", 0]}}}
    executor = Executor(registry)
    got = executor.run(parse_workflow(encode, registry), outputs=["2"])
    want = executor.run(parse_workflow(chained, registry), outputs=["7", "2"])
    assert got.ok and want.ok, (got.problems, got.error, want.problems, want.error)
    model, clip, conditioning, out_text = got.values["2"]
    assert out_text == populated and "<lora:first:0.8:0.6>" in out_text
    unet = memory.manager().weights(model.unet, model.patches)
    unet_want = memory.manager().weights(want.values["2"][0].unet, want.values["2"][0].patches)
    assert all(torch.equal(unet[n], unet_want[n]) for n in unet)
    (cond, _), = conditioning
    (cond_want, _), = want.values["7"][0]
    assert parts[3] == "" and torch.equal(cond, cond_want)  # an empty part is left out
    encode["2"]["inputs"]["wildcard_text"] = "a BREAK " * 100 + "b"  # 101 parts, each one CLIP encoding
    refused = executor.run(parse_workflow(encode, registry), outputs=["2"])
    assert not refused.ok and "BREAK" in str(refused.error)


# -- values, logic, switches -----------------------------------------------------------------------


def test_logic_nodes(registry):
    assert call(registry, "ImpactCompare", cmp="a > b", a=3, b=2) is True
    assert call(registry, "ImpactCompare", cmp="a <> b", a="x", b="x") is False
    assert call(registry, "ImpactCompare", cmp="tt", a=1, b="x") is True
    with pytest.raises(NodeInputError) as caught:
        call(registry, "ImpactCompare", cmp="a < b", a=1, b="x")
    assert caught.value.input == "b"
    for op, want in [("and", [False, False, False, True]), ("or", [False, True, True, True]),
                     ("xor", [False, True, True, False])]:
        assert [call(registry, "ImpactLogicalOperators", operator=op, bool_a=a, bool_b=b)
                for a in (False, True) for b in (False, True)] == want
    assert call(registry, "ImpactConditionalBranch", cond=True, tt_value="t", ff_value="f") == "t"
    assert call(registry, "ImpactConditionalBranchSelMode", cond=False, tt_value="t") is None
    assert call(registry, "ImpactMinMax", mode=False, a=4, b=2.5) == 2.5
    assert call(registry, "ImpactConvertDataType", value="2.75") == ("2.75", 2.75, 2, True)
    assert call(registry, "ImpactConvertDataType", value="False") == ("False", 0.0, 0, False)
    assert call(registry, "ImpactConvertDataType", value="cat") == ("cat", 1.0, 1, True)
    with pytest.raises(NodeInputError) as caught:  # float("9" * 400) is inf: no whole part
        call(registry, "ImpactConvertDataType", value="9" * 400)
    assert caught.value.input == "value"
    assert call(registry, "ImpactValueReceiver", typ="BOOLEAN", value="TRUE") is True
    assert call(registry, "ImpactValueReceiver", typ="FLOAT", value="1.5") == 1.5
    with pytest.raises(NodeInputError) as caught:
        call(registry, "ImpactValueReceiver", typ="INT", value="x")
    assert caught.value.input == "value"
    assert call(registry, "ImpactIfNone", signal="s") == ("s", False)
    assert call(registry, "ImpactStringSelector", strings="a\nb\nc", select=4) == "b"
    assert call(registry, "ImpactStringSelector", strings="#one\nx\n#two\ny", multiline=True, select=1) == "two\ny"
    assert call(registry, "ImpactSchedulerAdapter", scheduler="karras", extra_scheduler="None") == "karras"
    image, latent = torch.zeros(2, 24, 32, 3), {"samples": torch.zeros(3, 4, 5, 6)}
    assert call(registry, "ImpactImageInfo", value=image) == (2, 24, 32, 3)
    assert call(registry, "ImpactLatentInfo", value=latent) == (3, 40, 48, 4)


def test_logger_shows_the_data_as_the_pack_sends_it(registry):
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
             "2": {"class_type": "ImpactLogger", "inputs": {"data": ["1", 0], "text": ""}}}
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["2"])
    assert result.ok, (result.problems, result.error)
    image = result.values["1"][0]
    assert result.outputs["2"]["text"] == [f"{image}"]  # the shape goes to the log only


def test_switches(registry):
    assert call(registry, "ImpactSwitch", select=3, input1="a", input3="c") == ("c", "input3", 3)
    assert call(registry, "ImpactSwitch", select=2, input1="a") == (None, "", 2)
    first, second = {"samples": torch.zeros(1, 4, 8, 8)}, {"samples": torch.ones(1, 4, 8, 8)}
    assert call(registry, "LatentSwitch", select=2, latent1=first, latent2=second) is second
    assert call(registry, "LatentSwitch", select=5, latent1=first, latent2=second) is first
    images, mask = torch.zeros(1, 8, 8, 3), torch.ones(1, 8, 8)
    assert call(registry, "ImageMaskSwitch", select=3, images1=images, images3_opt=images, mask3_opt=mask) == \
        (images, mask)
    out = call(registry, "ImpactInversedSwitch", select=2, input="v")
    assert out[1] == "v" and all(o is None for i, o in enumerate(out) if i != 1)


def test_lists_batches_and_conditionings(registry):
    from nodes.image import _resize_image
    a, b = torch.rand(1, 16, 16, 3), torch.rand(2, 16, 16, 3)
    assert torch.equal(call(registry, "ImpactMakeImageBatch", image1=a, image2=b), torch.cat([a, b]))
    c = torch.rand(1, 8, 12, 3)  # another size: lanczos, centre-cropped, as ComfyUI's common_upscale
    joined = call(registry, "ImageListToImageBatch", images=[a, c])
    assert torch.equal(joined, torch.cat([a, _resize_image(c, 16, 16, "lanczos", crop=True)]))
    listed = call(registry, "ImageBatchToImageList", image=b)
    assert len(listed) == 2 and torch.equal(torch.cat(listed), b)
    assert call(registry, "ImpactMakeImageList", image1=a, image3=c) == [a, c]
    assert call(registry, "ImpactMakeAnyList", value2=1, value5="x") == [1, "x"]
    joiner = registry.get("StringListToString").__new__(registry.get("StringListToString"))
    joiner.__dict__.update(join_with=["\\n"], string_list=["a", "b"])  # a list node takes whole lists
    assert joiner.run() == "a\nb"
    one, two = [(torch.ones(1, 2, 4), {"x": 1})], [(torch.zeros(1, 3, 4), {})]
    assert call(registry, "ImpactCombineConditionings", conditioning1=one, conditioning3=two) == one + two
    (cond, options), = call(registry, "ImpactConcatConditionings", conditioning1=one, conditioning2=two)
    assert torch.equal(cond, torch.cat([one[0][0], two[0][0]], dim=1)) and options == {"x": 1}


def test_pipes(registry):
    pipe = call(registry, "ToBasicPipe", model="m", clip="c", vae="v", positive="p", negative="n")
    assert call(registry, "FromBasicPipe", basic_pipe=pipe) == pipe
    assert call(registry, "FromBasicPipeV2", basic_pipe=pipe) == (pipe, *pipe)
    assert call(registry, "EditBasicPipe", basic_pipe=pipe, vae="v2") == ("m", "c", "v2", "p", "n")
    with pytest.raises(NodeInputError) as caught:
        call(registry, "FromBasicPipe", basic_pipe=("m",))
    assert caught.value.input == "basic_pipe"


# -- saves with the pack's class names -------------------------------------------------------------

WILDCARD = "Select the Wildcard to add to the text"
LORA = "Select the LoRA to add to the text"


def api_pipe_graph():
    return {"1": CKPT,
            "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a house"}},
            "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "blurry"}},
            "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "5": {"class_type": "ToBasicPipe", "inputs": {"model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2],
                                                          "positive": ["2", 0], "negative": ["3", 0]}},
            "6": {"class_type": "ImpactKSamplerBasicPipe",
                  "inputs": {"basic_pipe": ["5", 0], "seed": 4, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
                             "scheduler": "normal", "latent_image": ["4", 0], "denoise": 1.0}},
            "7": {"class_type": "ImpactKSamplerAdvancedBasicPipe",
                  "inputs": {"basic_pipe": ["6", 0], "add_noise": True, "noise_seed": 4, "steps": 2, "cfg": 7.0,
                             "sampler_name": "euler", "scheduler": "normal", "latent_image": ["4", 0],
                             "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": False}},
            "8": {"class_type": "KSampler",
                  "inputs": {"model": ["1", 0], "seed": 4, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
                             "scheduler": "normal", "positive": ["2", 0], "negative": ["3", 0],
                             "latent_image": ["4", 0], "denoise": 1.0}}}


def test_api_prompt_with_basic_pipe_samplers_equals_ksampler(registry, lora_folders):
    graph = api_pipe_graph()
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["7", "8"])
    assert result.ok, (result.problems, result.error)
    _, latent, vae = result.values["6"]
    _, advanced, _ = result.values["7"]
    want, = result.values["8"]
    assert torch.equal(latent["samples"], want["samples"]) and torch.equal(advanced["samples"], want["samples"])
    assert vae is result.values["1"][2]
    again = export_api(parse_workflow(graph, registry), registry)
    assert {k: v["class_type"] for k, v in again.items()} == {k: v["class_type"] for k, v in graph.items()}
    assert again["7"]["inputs"]["add_noise"] is True and again["6"]["inputs"]["basic_pipe"] == ["5", 0]


def test_ui_save_with_wildcards_switch_and_logic_reads_runs_and_writes_back(registry, wildcards):
    """As the editor saves them: the processor's seed followed by its control_after_generate, an
    old save's Populate toggle (true), the switch's numbered inputs, the compare's widgets."""
    nodes = [
        ui_node(1, "ImpactWildcardProcessor", ["{x|y} __color__", "", "populate", 17, "fixed", WILDCARD],
                outputs=[("STRING", "STRING", [1])]),
        ui_node(2, "ImpactWildcardProcessor", ["{x|y}", "kept", True, 3, "randomize", WILDCARD],
                outputs=[("STRING", "STRING", [2])]),
        ui_node(3, "ImpactInt", [2], outputs=[("INT", "INT", [3, 4])]),
        ui_node(4, "ImpactSwitch", [1, False],
                [("select", "INT", 3, True), ("input1", "*", 1, False), ("input2", "*", 2, False)],
                [("selected_value", "*", []), ("selected_label", "STRING", []), ("selected_index", "INT", [])]),
        ui_node(5, "ImpactCompare", ["a >= b"], [("a", "*", 4, False), ("b", "*", 5, False)],
                [("BOOLEAN", "BOOLEAN", [])]),
        ui_node(6, "ImpactFloat", [1.5], outputs=[("FLOAT", "FLOAT", [5])]),
    ]
    links = [[1, 1, 0, 4, 1, "STRING"], [2, 2, 0, 4, 2, "STRING"], [3, 3, 0, 4, 0, "INT"],
             [4, 3, 0, 5, 0, "INT"], [5, 6, 0, 5, 1, "FLOAT"]]
    graph = ui_graph(nodes, links)
    workflow = parse_workflow(graph, registry)
    saved = workflow.to_json()["nodes"]
    assert saved["1"]["inputs"]["seed"] == 17 and saved["2"]["inputs"]["mode"] == "populate"
    result = Executor(registry).run(workflow, outputs=["4", "5"])
    assert result.ok, (result.problems, result.error)
    assert result.values["1"][0] == process_wildcards("{x|y} __color__", 17)
    assert result.values["4"] == (process_wildcards("{x|y}", 3), "input2", 2)  # mode populate (old true)
    assert result.values["5"][0] is True
    written = export_ui(workflow, registry)
    by_id = {n["id"]: n for n in written["nodes"]}
    assert by_id[1]["widgets_values"] == ["{x|y} __color__", "", "populate", 17, "fixed", WILDCARD]
    assert by_id[4]["type"] == "ImpactSwitch"
    assert parse_workflow(written, registry).to_json()["nodes"] == saved
    api = export_api(workflow, registry)
    assert api["2"]["class_type"] == "ImpactWildcardProcessor" and api["2"]["inputs"]["Select to add Wildcard"] == WILDCARD
    assert parse_workflow(api, registry).to_json()["nodes"]["4"]["inputs"] == saved["4"]["inputs"]


def test_results_over_the_text_limit_are_refused(wildcards, monkeypatch):
    import nodes.strings
    monkeypatch.setattr(nodes.strings, "MAX_TEXT", 40)
    (wildcards / "long.txt").write_text("x" * 30 + "\n", encoding="utf-8")
    with pytest.raises(NodeInputError):
        process_wildcards("__long__ __long__", 0)
    with pytest.raises(NodeInputError):
        process_wildcards("{3$$" + "-" * 20 + "$$a|b|c}", 0)
    assert process_wildcards("__long__", 0) == "x" * 30


def test_several_quantifiers_and_choices_are_counted_together(wildcards, monkeypatch):
    """Each occurrence alone fits; all of them, replaced in one pass, don't: refused at the
    running total, before the pass's text is built."""
    import nodes.strings
    monkeypatch.setattr(nodes.strings, "MAX_TEXT", 40)
    text = "2#__ab__ 2#__ab__ 2#__ab__"  # 26 characters, each 2#__ab__ -> __ab__|__ab__ (+5)
    with pytest.raises(NodeInputError, match="41 characters"):
        process_wildcards(text, 0)
    monkeypatch.setattr(nodes.strings, "MAX_TEXT", 120)
    choice = "{3$$" + "-" * 20 + "$$a|b|c} "  # 33 characters (32 in braces), each gives 43: a----b----c
    with pytest.raises(NodeInputError, match="121 characters"):  # 99 + 2 * 11: the second one is refused
        process_wildcards(choice * 3, 0)


def test_unknown_bare_names_are_searched_once_and_capped(monkeypatch):
    """Each bare name not found is retried as */name by another pass (the pack's recursion): the
    folder search is done once per name, and a text with too many such names is refused."""
    import nodes.pack_nodes_impact as impact
    table = {f"k{i}/x{i}": ["v"] for i in range(200)}
    calls = []
    real = impact.glob_matches
    monkeypatch.setattr(impact, "glob_matches", lambda p, k: calls.append(p) or real(p, k))
    text = " ".join(f"__n{i}__" for i in range(12))
    assert process_wildcards(text, 0, table=table) == reference_process(text, 0, table)
    assert len(calls) <= 2 * len(table) * 12  # each */nI searched once (not once per pass)
    for text in ("__n__ " * 1100, " ".join(f"__n{i}__" for i in range(150))):
        with pytest.raises(NodeInputError, match="without a folder"):  # not a RecursionError
            process_wildcards(text, 0, table={})


def test_work_per_run_is_capped(monkeypatch):
    """Each wildcard rebuilds the whole text (as the pack's replace does): many wildcards in a
    long text are refused once the characters rebuilt pass 100 times MAX_TEXT."""
    import nodes.strings
    monkeypatch.setattr(nodes.strings, "MAX_TEXT", 1000)
    assert process_wildcards("30#__a__", 0, table={"a": ["b"]}) == "|".join(["b"] * 30)
    with pytest.raises(NodeInputError, match="too much work"):  # 160 texts of about 960 characters rebuilt
        process_wildcards("160#__a__", 0, table={"a": ["b"]})


def test_nesting_depth_is_capped():
    assert process_wildcards("{" * 100 + "a" + "}" * 100, 0, table={}) == "a"
    with pytest.raises(NodeInputError, match="nested"):
        process_wildcards("{" * 101 + "a" + "}" * 101, 0, table={})


def test_digit_runs_and_open_lora_tags_are_scanned_in_linear_time():
    import time
    start = time.perf_counter()
    assert process_wildcards("1" * 200_000, 0, table={}) == "1" * 200_000
    assert lora_tags("<lora:" * 200_000) == []
    assert lora_tags("<lora:" * 1000 + "a>") == [("<lora", 1.0, 1.0)]  # one tag: the body up to ">", split at ":"
    assert time.perf_counter() - start < 5  # quadratic scans took minutes


def test_zero_and_negative_weights_name_the_input(wildcards):
    with pytest.raises(NodeInputError, match="add up to 0") as caught:
        process_wildcards("{0::a|0::b}", 0, "wildcard_text")
    assert caught.value.input == "wildcard_text"
    (wildcards / "zero.txt").write_text("0::a\n0::b\n", encoding="utf-8")
    (wildcards / "negative.txt").write_text("-1::a\n2::b\n", encoding="utf-8")
    for name in ("zero", "negative"):
        with pytest.raises(NodeInputError, match=f"__{name}__"):
            process_wildcards(f"__{name}__", 0)


def test_dangling_links_pipes_and_git_folders_in_wildcards_are_skipped(wildcards):
    import os
    from nodes.pack_nodes_impact import load_wildcards, wildcards_state
    (wildcards / "broken.txt").symlink_to(wildcards / "gone.txt")
    os.mkfifo(wildcards / "pipe.txt")  # reading it would wait for a writer
    (wildcards / ".git").mkdir()
    (wildcards / ".git" / "HEAD.txt").write_text("ref", encoding="utf-8")
    wildcards_state()
    table = load_wildcards()
    assert "color" in table and not {"broken", "pipe", ".git/head"} & set(table)


def test_yaml_booleans_are_lines_as_the_pack_writes_them(wildcards):
    (wildcards / "flags.yaml").write_text("on: true\noff: [false, 2]\n", encoding="utf-8")
    from nodes.pack_nodes_impact import load_wildcards
    table = load_wildcards()
    assert table["true"] == ["True"] and table["false"] == ["False", "2"]  # YAML 1.1: on/off are booleans


def test_wildcard_table_is_read_again_only_when_a_file_changes(wildcards):
    import os
    from nodes.pack_nodes_impact import load_wildcards
    first = load_wildcards()
    assert load_wildcards() is first
    path = wildcards / "color.txt"
    path.write_text("violet\n", encoding="utf-8")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    again = load_wildcards()
    assert again is not first and again["color"] == ["violet"]


def test_every_impact_class_is_named_as_the_packs(registry):
    """docs/comfyui.md names each ComfyUI class's pack from comfy_format.CUSTOM_PACKS."""
    from graphflow.comfy_format import custom_pack
    import nodes.pack_nodes_impact as impact
    names = [alias for node in vars(impact).values() if isinstance(node, type) and issubclass(node, impact.Node)
             and node.__module__ == impact.__name__ for alias in node.comfy.class_types]
    assert len(names) > 30 and {name: custom_pack(name) for name in names} == \
        {name: "ComfyUI Impact Pack" for name in names}
