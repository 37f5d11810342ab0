"""ComfyUI's data lists in the executor: ListOf outputs, nodes run once per item, nodes that take
whole lists (input_is_list), output nodes fed a list, caching and errors per item."""

from collections import Counter

import pytest
import torch

import toy_nodes
from graphflow.api import IMAGE, INT, Float, Int, ListOf, Node, NodeInputError, progress
from graphflow.executor import Executor, ItemList
from graphflow.registry import Registry
from graphflow.server.comfyui_object_info import object_info
from graphflow.validation import validate
from graphflow.workflow import parse_workflow
from nodes.image import ImageInvert, SaveImage
from toy_nodes import NUMBER

calls: Counter = Counter()
received: list = []


class Range(Node):
    """start, start+1, ... as a list (a plugin's OUTPUT_IS_LIST node), and how many."""
    category = "test"
    count: int = Int(3, min=0, max=10)
    start: float = Float(0.0, min=-100, max=100)
    outputs = {"numbers": ListOf(NUMBER), "count": INT}

    def run(self):
        calls["Range"] += 1
        return [self.start + i for i in range(self.count)], self.count


class Counts(Node):
    """A list of INTs."""
    category = "test"
    outputs = {"counts": ListOf(INT)}

    def run(self):
        return [1, 2]


class Total(Node):
    """Takes the whole list (INPUT_IS_LIST): every input arrives as a list, the widget too."""
    category = "test"
    input_is_list = True
    x: NUMBER
    weight: float = Float(1.0, min=0, max=10)
    outputs = {"total": NUMBER}

    def run(self):
        calls["Total"] += 1
        received.append({"x": self.x, "weight": self.weight})
        return sum(self.x) * self.weight[0]


class Steps(Node):
    """Reports two steps of progress."""
    category = "test"
    x: NUMBER
    outputs = {"x": NUMBER}

    def run(self):
        progress(1, 2)
        progress(2, 2)
        return self.x


class Grays(Node):
    """A list of one-image batches, each a flat gray of its own level."""
    category = "test"
    count: int = Int(3, min=1, max=8)
    outputs = {"images": ListOf(IMAGE)}

    def run(self):
        return [torch.full((1, 8, 8, 3), (i + 1) / 10) for i in range(self.count)]


class NotAList(Node):
    category = "test"
    outputs = {"numbers": ListOf(NUMBER)}

    def run(self):
        return 3.0


@pytest.fixture
def registry():
    registry = Registry()
    for cls in toy_nodes.TOY_NODES + [Range, Counts, Total, Steps, Grays, NotAList, SaveImage]:
        registry.add(cls, source="tests")
    toy_nodes.runs.clear()
    calls.clear()
    received.clear()
    return registry


def graph(nodes: dict):
    return parse_workflow({"nodes": nodes})


def shown(result, node_id):
    return result.outputs[node_id]["text"]


def test_a_list_runs_an_ordinary_node_once_per_item(registry):
    wf = graph({
        "1": {"type": "Range", "inputs": {"count": 4, "start": 1.0}},
        "2": {"type": "Scale", "inputs": {"x": ["1", 0], "factor": 3}},
        "3": {"type": "Show", "inputs": {"x": ["2", 0]}},
    })
    assert validate(wf, registry) == []
    result = Executor(registry).run(wf)
    assert result.ok, result.error
    assert toy_nodes.runs["Scale"] == 4 and toy_nodes.runs["Show"] == 4
    assert isinstance(result.values["2"][0], ItemList) and result.values["2"][0] == [3.0, 6.0, 9.0, 12.0]
    # The output node ran per item; what each run showed is joined in order.
    assert shown(result, "3") == ["3.0", "6.0", "9.0", "12.0"]
    # An ordinary output of the list node is one value, not a list.
    assert result.values["1"][1] == 4 and not isinstance(result.values["1"][1], list)


def test_a_node_taking_lists_gets_the_whole_list_and_its_widgets_as_lists(registry):
    wf = graph({
        "1": {"type": "Range", "inputs": {"count": 3, "start": 2.0}},
        "2": {"type": "Scale", "inputs": {"x": ["1", 0], "factor": 2}},
        "3": {"type": "Total", "inputs": {"x": ["2", 0], "weight": 0.5}},
        "4": {"type": "Show", "inputs": {"x": ["3", 0]}},
        "5": {"type": "Number", "inputs": {"value": 7}},
        "6": {"type": "Total", "inputs": {"x": ["5", 0]}},
        "7": {"type": "Show", "inputs": {"x": ["6", 0]}},
    })
    result = Executor(registry).run(wf)
    assert result.ok, result.error
    assert calls["Total"] == 2
    assert {"x": [4.0, 6.0, 8.0], "weight": [0.5]} in received
    assert {"x": [7.0], "weight": [1.0]} in received  # a single value arrives as a list of one
    assert shown(result, "4") == ["9.0"] and shown(result, "7") == ["7.0"]
    assert toy_nodes.runs["Show"] == 2  # its output is one value again


def test_shorter_lists_repeat_their_last_item(registry):
    wf = graph({
        "1": {"type": "Range", "inputs": {"count": 4, "start": 0.0}},
        "2": {"type": "Range", "inputs": {"count": 2, "start": 10.0}},
        "3": {"type": "Add", "inputs": {"a": ["1", 0], "b": ["2", 0]}},
        "4": {"type": "Number", "inputs": {"value": 100}},
        "5": {"type": "Add", "inputs": {"a": ["3", 0], "b": ["4", 0]}},
        "6": {"type": "Show", "inputs": {"x": ["5", 0]}},
    })
    result = Executor(registry).run(wf)
    assert result.ok, result.error
    a, b = [0.0, 1.0, 2.0, 3.0], [10.0, 11.0, 11.0, 11.0]
    assert result.values["3"][0] == [x + y for x, y in zip(a, b)]
    assert shown(result, "6") == [repr(x + y + 100) for x, y in zip(a, b)]


def test_list_outputs_of_a_node_run_per_item_are_joined_into_one_list(registry):
    wf = graph({
        "1": {"type": "Counts", "inputs": {}},
        "2": {"type": "Range", "inputs": {"count": ["1", 0], "start": 5.0}},
        "3": {"type": "Show", "inputs": {"x": ["2", 0]}},
    })
    result = Executor(registry).run(wf)
    assert result.ok, result.error
    assert calls["Range"] == 2
    assert result.values["2"][0] == [5.0, 5.0, 6.0]  # [5] from count 1, [5, 6] from count 2
    assert result.values["2"][1] == [1, 2]  # the ordinary output: one value per run
    assert shown(result, "3") == ["5.0", "5.0", "6.0"]


def test_a_list_reaching_save_image_saves_every_image(registry, tmp_folders):
    from PIL import Image

    wf = graph({
        "1": {"type": "Grays", "inputs": {"count": 3}},
        "2": {"type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "grays"}},
    })
    result = Executor(registry).run(wf)
    assert result.ok, result.error
    images = result.outputs["2"]["images"]
    assert len({i["filename"] for i in images}) == 3
    levels = [Image.open(tmp_folders.outputs / i["subfolder"] / i["filename"]).getpixel((0, 0))[0] for i in images]
    assert levels == [int(255 * torch.tensor((k + 1) / 10)) for k in range(3)]  # truncated, as ComfyUI saves


def test_unchanged_rerun_recomputes_nothing_and_a_change_recomputes_what_it_must(registry):
    def workflow(count):
        return graph({
            "1": {"type": "Range", "inputs": {"count": count}},
            "2": {"type": "Scale", "inputs": {"x": ["1", 0], "factor": 2}},
            "3": {"type": "Total", "inputs": {"x": ["2", 0]}},
            "4": {"type": "Show", "inputs": {"x": ["3", 0]}},
            "5": {"type": "Range", "inputs": {"count": 2, "start": 50.0}},
            "6": {"type": "Scale", "inputs": {"x": ["5", 0], "factor": 3}},
            "7": {"type": "Show", "inputs": {"x": ["6", 0]}},
        })

    executor = Executor(registry)
    first = executor.run(workflow(3))
    assert first.ok and shown(first, "4") == ["6.0"] and shown(first, "7") == ["150.0", "153.0"]
    before = (Counter(toy_nodes.runs), Counter(calls))
    again = executor.run(workflow(3))
    assert again.executed == [] and sorted(again.cached) == list("1234567")
    assert (toy_nodes.runs, calls) == before
    # The cached list comes back whole, with what the output nodes showed.
    assert again.values["2"][0] == [0.0, 2.0, 4.0] and shown(again, "7") == ["150.0", "153.0"]
    changed = executor.run(workflow(4))
    assert sorted(changed.executed) == ["1", "2", "3", "4"] and sorted(changed.cached) == ["5", "6", "7"]
    assert shown(changed, "4") == ["12.0"]
    assert toy_nodes.runs["Scale"] == before[0]["Scale"] + 4


def test_an_error_in_one_item_names_node_input_and_item(registry):
    wf = graph({
        "1": {"type": "Range", "inputs": {"count": 4}},
        "2": {"type": "Fail", "inputs": {"x": ["1", 0]}},
        "3": {"type": "Show", "inputs": {"x": ["2", 0]}},
    })
    result = Executor(registry).run(wf)
    assert result.status == "error"
    err = result.error
    assert (err["node_id"], err["input"], err["item"], err["items"]) == ("2", "x", 0, 4)
    assert err["message"] == "on list item 0 (of 4, counting from 0): refusing 0.0"


def test_an_error_in_a_later_item_names_that_item(registry):
    class FailOnTwo(Node):
        category = "test"
        x: NUMBER
        outputs = {"x": NUMBER}

        def run(self):
            if self.x == 2.0:
                raise NodeInputError("x", "two is not allowed")
            return self.x

    registry.add(FailOnTwo, source="tests")
    wf = graph({
        "1": {"type": "Range", "inputs": {"count": 4}},
        "2": {"type": "FailOnTwo", "inputs": {"x": ["1", 0]}},
        "3": {"type": "Show", "inputs": {"x": ["2", 0]}},
    })
    result = Executor(registry).run(wf)
    err = result.error
    assert (err["node_id"], err["node_type"], err["input"], err["item"]) == ("2", "FailOnTwo", "x", 2)
    assert "list item 2 (of 4" in err["message"] and "two is not allowed" in err["message"]


def test_an_empty_list_and_a_list_output_that_is_no_list_are_clear_errors(registry):
    result = Executor(registry).run(graph({
        "1": {"type": "Range", "inputs": {"count": 0}},
        "2": {"type": "Show", "inputs": {"x": ["1", 0]}},
    }))
    assert (result.error["node_id"], result.error["input"]) == ("2", "x")
    assert "empty list" in result.error["message"]
    result = Executor(registry).run(graph({
        "1": {"type": "NotAList", "inputs": {}},
        "2": {"type": "Show", "inputs": {"x": ["1", 0]}},
    }))
    assert result.error["node_id"] == "1" and "ListOf(TOY_NUMBER)" in result.error["message"]


def test_progress_counts_items(registry):
    events = []
    wf = graph({
        "1": {"type": "Range", "inputs": {"count": 3}},
        "2": {"type": "Steps", "inputs": {"x": ["1", 0]}},
        "3": {"type": "Show", "inputs": {"x": ["2", 0]}},
    })
    assert Executor(registry).run(wf, on_event=events.append).ok
    steps = [(e["value"], e["max"], e["item"]) for e in events if e["type"] == "progress" and e["node"] == "2"]
    assert steps == [(1, 6, 0), (2, 6, 0), (3, 6, 1), (4, 6, 1), (5, 6, 2), (6, 6, 2)]
    # A node that reports nothing itself gets one step per item.
    shows = [(e["value"], e["max"]) for e in events if e["type"] == "progress" and e["node"] == "3"]
    assert shows == [(1, 3), (2, 3), (3, 3)]


def test_list_flags_in_the_catalogues(registry):
    from graphflow.node import node_catalogue

    assert node_catalogue(Range)["outputs"] == [{"name": "numbers", "type": "TOY_NUMBER", "is_list": True},
                                                {"name": "count", "type": "INT"}]
    assert node_catalogue(Total)["input_is_list"] is True and "input_is_list" not in node_catalogue(Range)
    info = object_info(registry)
    assert info["Range"]["output_is_list"] == [True, False] and info["Range"]["is_input_list"] is False
    assert info["Total"]["output_is_list"] == [False] and info["Total"]["is_input_list"] is True


# ---- RebatchLatents and RebatchImages (ComfyUI's nodes_rebatch), on the built-in registry ----


def run_rebatch(builtin_registry, node_type, values, batch_size):
    """Run the node as the executor does for a node taking lists: every input a list."""
    cls = builtin_registry.get(node_type)
    node = cls.__new__(cls)
    node.__dict__.update({next(iter(cls.input_specs)): list(values), "batch_size": [batch_size]})
    return node.run()


def test_rebatch_latents_cuts_one_batch_into_batches_of_the_size(builtin_registry):
    x = torch.randn(5, 4, 2, 3)
    out = run_rebatch(builtin_registry, "RebatchLatents", [{"samples": x}], 2)
    assert [b["samples"].shape[0] for b in out] == [2, 2, 1]
    assert torch.equal(torch.cat([b["samples"] for b in out]), x)
    assert [b["batch_index"] for b in out] == [[0, 1], [2, 3], [4]]
    assert all("noise_mask" not in b for b in out)  # none came in, none goes out


def test_rebatch_latents_merges_several_inputs_keeping_masks_and_indices(builtin_registry):
    a, b, c = torch.randn(3, 4, 2, 3), torch.randn(2, 4, 2, 3), torch.randn(4, 4, 2, 3)
    mask = torch.rand(2, 1, 16, 24)  # b's, at pixel size
    latents = [{"samples": a}, {"samples": b, "noise_mask": mask, "batch_index": [7, 8]}, {"samples": c}]
    out = run_rebatch(builtin_registry, "RebatchLatents", latents, 4)
    assert [o["samples"].shape[0] for o in out] == [4, 4, 1]
    assert torch.equal(torch.cat([o["samples"] for o in out]), torch.cat([a, b, c]))
    # b keeps its indices; the others count their position in the incoming list (c starts at 3 + 2).
    assert [o["batch_index"] for o in out] == [[0, 1, 2, 7], [8, 5, 6, 7], [8]]
    ones = torch.ones(1, 1, 16, 24)
    assert torch.equal(out[0]["noise_mask"], torch.cat([ones, ones, ones, mask[:1]]))
    assert torch.equal(out[1]["noise_mask"], torch.cat([mask[1:], ones, ones, ones]))
    assert "noise_mask" not in out[2]  # all ones: no mask


def test_rebatch_latents_starts_a_new_batch_at_another_size_and_keeps_mask_sizes(builtin_registry):
    big, small = torch.randn(3, 4, 2, 2), torch.randn(2, 4, 1, 1)
    mask = torch.zeros(1, 1, 2, 2)  # not at 8x the latent's size, one for the batch
    out = run_rebatch(builtin_registry, "RebatchLatents", [{"samples": big}, {"samples": small, "noise_mask": mask}], 2)
    assert [tuple(o["samples"].shape[::2]) for o in out] == [(2, 2), (1, 2), (2, 1)]
    assert torch.equal(out[2]["samples"], small) and out[2]["batch_index"] == [3, 4]
    # kept at its own size, as ComfyUI keeps it (the sampler resizes it), repeated to the batch
    assert out[2]["noise_mask"].shape == (2, 1, 2, 2) and out[2]["noise_mask"].abs().max() == 0


def test_rebatch_images_cuts_and_joins_batches(builtin_registry):
    a, b = torch.rand(3, 4, 5, 3), torch.rand(2, 4, 5, 3)
    out = run_rebatch(builtin_registry, "RebatchImages", [a, b], 2)
    assert [o.shape[0] for o in out] == [2, 2, 1]
    assert torch.equal(torch.cat(out), torch.cat([a, b]))
    with pytest.raises(NodeInputError, match="image 1 is"):
        run_rebatch(builtin_registry, "RebatchImages", [a[:1], torch.rand(1, 6, 5, 3)], 2)


def sample_and_save(batch, rebatch=None):
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "graphflow-demo.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": batch}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 3, "steps": 3, "cfg": 5.0, "sampler_name": "euler",
                                                   "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                                   "positive": ["6", 0], "negative": ["7", 0],
                                                   "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "rebatched"}},
    }
    if rebatch is not None:
        graph["10"] = {"class_type": "RebatchLatents", "inputs": {"latents": ["5", 0], "batch_size": rebatch}}
        graph["3"]["inputs"]["latent_image"] = ["10", 0]
    return graph


def test_ksampler_after_rebatch_latents_samples_each_batch_and_all_images_are_saved(builtin_registry, tmp_folders):
    import numpy as np
    from PIL import Image

    workflow = parse_workflow(sample_and_save(3, rebatch=2), builtin_registry)
    assert validate(workflow, builtin_registry) == []
    events = []
    result = Executor(builtin_registry).run(workflow, on_event=events.append)
    assert result.ok, result.error
    assert [s["samples"].shape[0] for s in result.values["3"][0]] == [2, 1]
    items = {e["item"] for e in events if e["type"] == "progress" and e["node"] == "3"}
    assert items == {0, 1}
    saved = result.outputs["9"]["images"]
    assert len({s["filename"] for s in saved}) == 3
    pictures = [torch.from_numpy(np.array(Image.open(tmp_folders.outputs / s["filename"]))) for s in saved]
    # The batch indices travel with the latents, so each gets the noise it had in the whole batch:
    # sampled in two batches, the pictures are those of one batch of three.
    whole = Executor(builtin_registry).run(parse_workflow(sample_and_save(3), builtin_registry))
    assert whole.ok, whole.error
    assert torch.allclose(torch.cat(list(result.values["8"][0])), whole.values["8"][0], atol=2e-3)
    assert len(whole.outputs["9"]["images"]) == 3
    assert all(not torch.equal(pictures[0], p) for p in pictures[1:])


def test_the_plugin_docs_list_example_runs(registry):
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "plugins.md").read_text()
    section = text.split("## 4. Lists")[1].split("\n## ")[0]
    namespace = {}
    exec(re.search(r"```python\n(.*?)```", section, flags=re.S).group(1), namespace)
    for name in ("SplitFrames", "JoinFrames"):
        registry.add(namespace[name], source="docs")
    images = torch.rand(4, 2, 2, 3)

    class Frames(Node):
        category = "test"
        outputs = {"images": IMAGE}

        def run(self):
            return images

    registry.add(Frames, source="tests")
    wf = graph({
        "1": {"type": "Frames", "inputs": {}},
        "2": {"type": "SplitFrames", "inputs": {"images": ["1", 0]}},
        "3": {"type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "4": {"type": "JoinFrames", "inputs": {"frames": ["3", 0], "every": 2}},
    })
    registry.add(ImageInvert, source="tests")
    result = Executor(registry).run(wf, outputs=["4"])
    assert result.ok, result.error
    assert len(result.values["3"][0]) == 4  # inverted once per frame
    assert torch.allclose(result.values["4"][0], 1 - images[::2])


def test_the_size_check_after_a_rebatch_counts_one_batch(builtin_registry):
    from graphflow.api import Size

    for node_type, name in (("RebatchLatents", "latents"), ("RebatchImages", "images")):
        cls = builtin_registry.get(node_type)
        assert cls.estimate({"batch_size": 2}, {name: Size(6, 64, 32)}).size == Size(2, 64, 32)
        assert cls.estimate({"batch_size": 8}, {name: Size(6, 64, 32)}).size == Size(6, 64, 32)


def test_a_linked_widget_out_of_range_in_one_item_names_input_and_item(registry):
    class BadCounts(Node):
        category = "test"
        outputs = {"counts": ListOf(INT)}

        def run(self):
            return [1, 2, 20]

    registry.add(BadCounts, source="tests")
    result = Executor(registry).run(graph({
        "1": {"type": "BadCounts", "inputs": {}},
        "2": {"type": "Range", "inputs": {"count": ["1", 0]}},
        "3": {"type": "Show", "inputs": {"x": ["2", 0]}},
    }))
    err = result.error
    assert (err["node_id"], err["input"], err["item"], err["items"]) == ("2", "count", 2, 3)
    assert calls["Range"] == 2  # items 0 and 1 ran
    assert "linked value 20" in err["message"]


def test_a_list_output_links_to_inputs_of_its_item_type_only(registry):
    ok = graph({"1": {"type": "Range", "inputs": {}}, "2": {"type": "Show", "inputs": {"x": ["1", 0]}}})
    assert validate(ok, registry) == []
    wrong = graph({"1": {"type": "Grays", "inputs": {}}, "2": {"type": "Show", "inputs": {"x": ["1", 0]}}})
    [problem] = validate(wrong, registry)
    assert (problem.node_id, problem.input) == ("2", "x") and "expected a link of type TOY_NUMBER" in problem.message


def test_an_interrupt_stops_before_the_next_item(registry):
    import threading

    stop = threading.Event()

    class StopAfterFirst(Node):
        category = "test"
        x: NUMBER
        outputs = {"x": NUMBER}

        def run(self):
            calls["StopAfterFirst"] += 1
            stop.set()
            return self.x

    registry.add(StopAfterFirst, source="tests")
    result = Executor(registry).run(graph({
        "1": {"type": "Range", "inputs": {"count": 3}},
        "2": {"type": "StopAfterFirst", "inputs": {"x": ["1", 0]}},
        "3": {"type": "Show", "inputs": {"x": ["2", 0]}},
    }), interrupt=stop)
    assert result.status == "interrupted" and result.error["node_id"] == "2"
    assert calls["StopAfterFirst"] == 1
