import threading

import pytest

import toy_nodes
from graphflow.cache import OutputCache
from graphflow.executor import Executor
from graphflow.workflow import parse_workflow

runs = toy_nodes.runs


def chain(value=2.0, factor=3):
    return parse_workflow({"nodes": {
        "1": {"type": "Number", "inputs": {"value": value}},
        "2": {"type": "Scale", "inputs": {"x": ["1", 0], "factor": factor}},
        "3": {"type": "Number", "inputs": {"value": 10}},
        "4": {"type": "Add", "inputs": {"a": ["2", "y"], "b": ["3", 0]}},
        "5": {"type": "Show", "inputs": {"x": ["4", 0]}},
    }})


def test_runs_in_order_and_shows_results(toy_registry):
    events = []
    result = Executor(toy_registry).run(chain(), on_event=events.append)
    assert result.ok
    assert result.outputs == {"5": {"text": ["16.0"]}}
    assert sorted(result.executed) == ["1", "2", "3", "4", "5"]
    order = [e["node"] for e in events if e["type"] == "node_started"]
    assert order.index("2") > order.index("1") and order.index("4") > order.index("3")
    kinds = [e["type"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert all("elapsed" in e for e in events if e["type"] == "node_finished")


def test_unchanged_rerun_recomputes_nothing(toy_registry):
    executor = Executor(toy_registry)
    executor.run(chain())
    before = dict(runs)
    events = []
    result = executor.run(chain(), on_event=events.append)
    assert result.ok and result.outputs == {"5": {"text": ["16.0"]}}
    assert dict(runs) == before
    assert sorted(result.cached) == ["1", "2", "3", "4", "5"] and result.executed == []
    assert {e["node"] for e in events if e["type"] == "node_cached"} == {"1", "2", "3", "4", "5"}


def test_changed_widget_recomputes_only_node_and_descendants(toy_registry):
    executor = Executor(toy_registry)
    executor.run(chain(factor=3))
    result = executor.run(chain(factor=4))
    assert sorted(result.executed) == ["2", "4", "5"]
    assert sorted(result.cached) == ["1", "3"]
    assert result.outputs["5"] == {"text": ["18.0"]}


def test_run_started_names_the_cached_nodes_once_as_comfyui_execution_cached(toy_registry):
    from graphflow.server.comfyui_messages import translate

    executor = Executor(toy_registry)
    first = []
    executor.run(chain(factor=3), on_event=first.append)
    events = []
    executor.run(chain(factor=4), on_event=events.append)
    assert first[0]["cached"] == [] and events[0]["cached"] == ["1", "3"]
    messages = [m for e in events for m in translate(e["type"], e)]
    cached = [data["nodes"] for kind, data in messages if kind == "execution_cached"]
    assert cached == [["1", "3"]], "one message before any node, as ComfyUI sends it"
    kinds = [kind for kind, _ in messages]
    assert kinds[:2] == ["execution_start", "execution_cached"]
    assert [data["node"] for kind, data in messages if kind == "executing"] == ["2", "4", "5", None]
    assert [data["node"] for kind, data in messages if kind == "executed"] == ["5"]


def test_only_ancestors_of_outputs_run(toy_registry):
    wf = chain()
    wf.nodes["99"] = wf.nodes["1"].model_copy(update={"inputs": {"value": 7}})
    wf.nodes["98"] = parse_workflow({"nodes": {"x": {"type": "Scale", "inputs": {"x": ["99", 0]}}}}).nodes["x"]
    result = Executor(toy_registry).run(wf)
    assert "99" not in result.executed and "98" not in result.executed


def test_requested_outputs_limit_the_run(toy_registry):
    wf = parse_workflow({"nodes": {
        "1": {"type": "Number", "inputs": {"value": 1}},
        "2": {"type": "Show", "inputs": {"x": ["1", 0]}},
        "3": {"type": "Number", "inputs": {"value": 5}},
        "4": {"type": "Show", "inputs": {"x": ["3", 0]}},
    }})
    result = Executor(toy_registry).run(wf, outputs=["4"])
    assert sorted(result.executed) == ["3", "4"]


def test_identical_subgraphs_run_once(toy_registry):
    wf = parse_workflow({"nodes": {
        "a1": {"type": "Number", "inputs": {"value": 2}},
        "a2": {"type": "Scale", "inputs": {"x": ["a1", 0], "factor": 5}},
        "b1": {"type": "Number", "inputs": {"value": 2}},
        "b2": {"type": "Scale", "inputs": {"x": ["b1", 0], "factor": 5}},
        "s": {"type": "Add", "inputs": {"a": ["a2", 0], "b": ["b2", 0]}},
        "out": {"type": "Show", "inputs": {"x": ["s", 0]}},
    }})
    result = Executor(toy_registry).run(wf)
    assert result.outputs["out"] == {"text": ["20.0"]}
    assert runs["Number"] == 1 and runs["Scale"] == 1
    assert len(result.cached) == 2


def test_never_cacheable_node_and_descendants_rerun(toy_registry):
    wf = parse_workflow({"nodes": {
        "c": {"type": "Clock"},
        "k": {"type": "Number", "inputs": {"value": 1}},
        "a": {"type": "Add", "inputs": {"a": ["c", 0], "b": ["k", 0]}},
        "o": {"type": "Show", "inputs": {"x": ["a", 0]}},
    }})
    executor = Executor(toy_registry)
    first = executor.run(wf)
    second = executor.run(wf)
    assert first.outputs["o"] != second.outputs["o"]
    assert sorted(second.executed) == ["a", "c", "o"] and second.cached == ["k"]


def test_fingerprint_change_reruns(toy_registry, tmp_path):
    _add_read_file(toy_registry)
    target = tmp_path / "f.txt"
    target.write_text("one")
    wf = parse_workflow({"nodes": {"r": {"type": "ReadFile", "inputs": {"path": str(target)}}}})
    executor = Executor(toy_registry)
    assert executor.run(wf).outputs["r"] == {"text": ["one"]}
    assert executor.run(wf).cached == ["r"]
    target.write_text("two")
    again = executor.run(wf)
    assert again.executed == ["r"] and again.outputs["r"] == {"text": ["two"]}


def _add_read_file(toy_registry):
    from pathlib import Path

    from graphflow.api import ListOf, Node, NodeInputError, Text, show
    from graphflow.types import STRING

    class ReadFile(Node):
        output_node = True
        path: str = Text("")
        outputs = {"text": STRING}

        @classmethod
        def fingerprint(cls, path):
            return Path(path).read_text()

        def run(self):
            if not Path(self.path).is_file():
                raise NodeInputError("path", f"no such file: {self.path}")
            text = Path(self.path).read_text()
            show(text=[text])
            return text

    class Paths(Node):
        """Its text's lines, as a list that runs what it feeds once per line."""
        text: str = Text("")
        outputs = {"paths": ListOf(STRING)}

        def run(self):
            return self.text.splitlines()

    toy_registry.add(ReadFile)
    toy_registry.add(Paths)


def test_a_fingerprint_reads_its_linked_widget_once_the_link_has_run(toy_registry, tmp_path):
    """A file name linked into a widget (a checkpoint name from a text node): the node's fingerprint
    is made with the linked value once its source has run, so the run works, a rerun is cached and
    a changed file reruns it (before, the fingerprint was called without the value and the run failed)."""
    _add_read_file(toy_registry)
    target = tmp_path / "f.txt"
    target.write_text("one")
    wf = parse_workflow({"nodes": {"p": {"type": "Repeat", "inputs": {"text": str(target)}},
                                   "r": {"type": "ReadFile", "inputs": {"path": ["p", 0]}}}})
    executor = Executor(toy_registry)
    first = executor.run(wf)
    assert first.ok, first.error
    assert first.outputs["r"] == {"text": ["one"]}
    assert sorted(executor.run(wf).cached) == ["p", "r"]
    target.write_text("two")
    again = executor.run(wf)
    assert again.executed == ["r"] and again.cached == ["p"] and again.outputs["r"] == {"text": ["two"]}
    events = []
    executor.run(wf, on_event=events.append)
    started = next(e for e in events if e["type"] == "run_started")
    assert started["cached"] == ["p"]  # announced before the link's value is known
    assert [e["node"] for e in events if e["type"] == "node_cached"] == ["p", "r"]
    # ComfyUI's clients count a node done from execution_cached: r gets its own, once found cached
    from graphflow.server.comfyui_messages import translate
    messages = [m for e in events for m in translate(e["type"], e)]
    assert [data["nodes"] for kind, data in messages if kind == "execution_cached"] == [["p"], ["r"]]


def test_after_a_linked_fingerprint_the_nodes_it_feeds_are_keyed_again(toy_registry, tmp_path):
    """A node after the one whose fingerprint read a linked value: its key is made again from the
    new one, so a changed file reruns both, and an unchanged one leaves both cached; Executor.
    signatures (the cluster's routing keys) leaves out both, whose keys only the run knows, and is
    the same on every call."""
    from graphflow.validation import plan_workflow

    _add_read_file(toy_registry)
    target = tmp_path / "f.txt"
    target.write_text("one")
    wf = parse_workflow({"nodes": {"p": {"type": "Repeat", "inputs": {"text": str(target)}},
                                   "r": {"type": "ReadFile", "inputs": {"path": ["p", 0]}},
                                   "s": {"type": "Repeat", "inputs": {"text": ["r", 0], "times": 2}}}})
    executor = Executor(toy_registry)
    assert executor.run(wf, outputs=["s"]).values["s"][0] == "oneone"
    assert sorted(executor.run(wf, outputs=["s"]).cached) == ["p", "r", "s"]
    target.write_text("two")
    again = executor.run(wf, outputs=["s"])
    assert again.executed == ["r", "s"] and again.values["s"][0] == "twotwo"
    plan, _ = plan_workflow(wf, toy_registry, ["s"])
    keys = executor.signatures(plan)
    assert set(keys) == {"p"} and executor.signatures(plan) == keys


def test_outputs_of_a_node_whose_fingerprint_failed_on_its_linked_value_are_not_kept(toy_registry, tmp_path):
    """Keyed for this run only (the fingerprint could not read the value), the node and those after
    it run every time; their outputs are not put in the cache, where no later run could hit them."""
    from graphflow.api import Node, Text
    from graphflow.types import STRING

    class Echo(Node):
        name: str = Text("")
        outputs = {"text": STRING}

        @classmethod
        def fingerprint(cls, name):
            raise ValueError("no file")

        def run(self):
            return self.name

    toy_registry.add(Echo)
    wf = parse_workflow({"nodes": {"p": {"type": "Repeat", "inputs": {"text": "x"}},
                                   "e": {"type": "Echo", "inputs": {"name": ["p", 0]}},
                                   "s": {"type": "Repeat", "inputs": {"text": ["e", 0]}}}})
    executor = Executor(toy_registry)
    first = executor.run(wf, outputs=["s"])
    assert first.ok, first.error
    size = len(executor.cache)
    second = executor.run(wf, outputs=["s"])
    assert second.cached == ["p"] and second.executed == ["e", "s"] and len(executor.cache) == size


def test_a_staticmethod_fingerprint_works_and_one_taking_a_socket_is_refused_where_declared(toy_registry):
    from graphflow.api import Node, Text
    from graphflow.node import NodeDeclarationError
    from graphflow.types import STRING

    class Stamped(Node):
        output_node = True
        text: str = Text("a")
        outputs = {"text": STRING}

        @staticmethod
        def fingerprint(**widgets):
            return widgets["text"]

        def run(self):
            return self.text

    toy_registry.add(Stamped)
    executor = Executor(toy_registry)
    wf = parse_workflow({"nodes": {"s": {"type": "Stamped", "inputs": {"text": "b"}}}})
    assert executor.run(wf).ok and executor.run(wf).cached == ["s"]
    with pytest.raises(NodeDeclarationError, match="fingerprint.*'x'.*a socket"):
        class Bad(Node):
            x: toy_nodes.NUMBER
            outputs = {"text": STRING}

            @classmethod
            def fingerprint(cls, x):
                return None

            def run(self):
                return ""


def test_a_linked_list_of_file_names_fingerprints_each(toy_registry, tmp_path):
    _add_read_file(toy_registry)
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("A")
    b.write_text("B")
    wf = parse_workflow({"nodes": {"p": {"type": "Paths", "inputs": {"text": f"{a}\n{b}"}},
                                   "r": {"type": "ReadFile", "inputs": {"path": ["p", 0]}}}})
    executor = Executor(toy_registry)
    assert executor.run(wf).values["r"][0] == ["A", "B"]
    assert executor.run(wf).cached == ["p", "r"]
    b.write_text("C")
    assert executor.run(wf).values["r"][0] == ["A", "C"]


def test_a_linked_value_the_fingerprint_cannot_read_is_judged_by_the_run(toy_registry, tmp_path):
    """A linked name of no file: the fingerprint fails on it, so the node runs uncached and its
    run() refuses the value naming the input (not the fingerprint's bare exception)."""
    _add_read_file(toy_registry)
    wf = parse_workflow({"nodes": {"p": {"type": "Repeat", "inputs": {"text": str(tmp_path / "none.txt")}},
                                   "r": {"type": "ReadFile", "inputs": {"path": ["p", 0]}}}})
    result = Executor(toy_registry).run(wf)
    assert result.status == "error" and result.error["node_id"] == "r"
    assert result.error["input"] == "path" and "no such file" in result.error["message"]


def test_an_interrupt_while_a_linked_fingerprint_is_made_stops_the_run_before_the_node(toy_registry, tmp_path):
    """The run's interrupt reaches a fingerprint made once its linked value is known (a video's
    hash can take long); an interrupt there stops the run before the node, as one while the
    typed-in fingerprints are made does (it was taken for a failed fingerprint and the node ran)."""
    import threading

    from graphflow.api import Node, Text, check_interrupted
    from graphflow.types import STRING

    stop = threading.Event()
    ran = []

    class Hashed(Node):
        output_node = True
        name: str = Text("")
        outputs = {"text": STRING}

        @classmethod
        def fingerprint(cls, name):
            stop.set()  # the user presses stop while the file is hashed
            check_interrupted()
            return name

        def run(self):
            ran.append(self.name)
            return self.name

    toy_registry.add(Hashed)
    linked = parse_workflow({"nodes": {"p": {"type": "Repeat", "inputs": {"text": "x"}},
                                       "h": {"type": "Hashed", "inputs": {"name": ["p", 0]}}}})
    typed = parse_workflow({"nodes": {"h": {"type": "Hashed", "inputs": {"name": "x"}}}})
    for workflow in (linked, typed):
        stop.clear()
        result = Executor(toy_registry).run(workflow, interrupt=stop)
        assert result.status == "interrupted" and result.error["node_id"] == "h", result.error
        assert ran == []


def test_nodes_after_a_never_cacheable_node_are_not_kept_nor_keyed_for_the_cluster(toy_registry):
    """A never-cacheable node's key is the run's own, and so are those after it: their outputs are
    not cached (no later run could hit them: they only pushed useful entries out), and
    Executor.signatures leaves them out (its keys are the same on every call)."""
    from graphflow.api import Node
    from graphflow.validation import plan_workflow

    class NeverCached(Node):
        cacheable = False
        outputs = {"x": toy_nodes.NUMBER}

        def run(self):
            return 2.0

    toy_registry.add(NeverCached)
    wf = parse_workflow({"nodes": {"c": {"type": "NeverCached"}, "s": {"type": "Scale", "inputs": {"x": ["c", 0]}},
                                   "o": {"type": "Show", "inputs": {"x": ["s", 0]}},
                                   "n": {"type": "Number"}, "o2": {"type": "Show", "inputs": {"x": ["n", 0]}}}})
    executor = Executor(toy_registry)
    executor.run(wf)
    size = len(executor.cache)
    for _ in range(3):
        assert sorted(executor.run(wf).executed) == ["c", "o", "s"]
    assert len(executor.cache) == size
    plan, _ = plan_workflow(wf, toy_registry)
    keys = executor.signatures(plan)
    assert set(keys) == {"n", "o2"} and executor.signatures(plan) == keys


@pytest.mark.parametrize("fingerprint, match", [
    ("def fingerprint(cls, text):\n    return text", "does not take 'other'"),
    ("def fingerprint(cls, *args):\n    return args", "does not take 'text', 'other'"),
    ("def fingerprint(self, **widgets):\n    return None", "@classmethod"),
])
def test_a_fingerprint_that_cannot_take_every_widget_is_refused_where_declared(fingerprint, match):
    from graphflow.api import Node, Text
    from graphflow.node import NodeDeclarationError

    namespace = {}
    exec(fingerprint, namespace)  # the test's own source text, not user input
    function = namespace["fingerprint"]
    body = {"text": Text("a"), "other": Text("b"), "__annotations__": {"text": str, "other": str},
            "run": lambda self: None, "fingerprint": function if "self" in fingerprint else classmethod(function)}
    with pytest.raises(NodeDeclarationError, match=match):
        type("Partial", (Node,), body)


def test_failing_node_keeps_cache_of_finished_nodes(toy_registry):
    wf = parse_workflow({"nodes": {
        "1": {"type": "Number", "inputs": {"value": 4}},
        "2": {"type": "Scale", "inputs": {"x": ["1", 0]}},
        "3": {"type": "Fail", "inputs": {"x": ["2", 0]}},
        "4": {"type": "Show", "inputs": {"x": ["3", 0]}},
    }})
    executor = Executor(toy_registry)
    events = []
    result = executor.run(wf, on_event=events.append)
    assert result.status == "error"
    err = result.error
    assert (err["node_id"], err["node_type"], err["input"]) == ("3", "Fail", "x")
    assert err["exception_type"] == "NodeInputError" and "refusing 8.0" in err["message"]
    assert "Traceback" in err["traceback"] and "toy_nodes.py" in err["traceback"]
    assert any(e["type"] == "node_failed" and e["node"] == "3" for e in events)
    assert "4" not in result.executed

    wf.nodes["3"].inputs["ok"] = True  # the fix
    fixed = executor.run(wf)
    assert fixed.ok and sorted(fixed.cached) == ["1", "2"] and sorted(fixed.executed) == ["3", "4"]
    assert runs["Number"] == 1 and runs["Scale"] == 1


def test_interrupt_inside_a_node(toy_registry):
    gate = threading.Event()
    toy_nodes.Slow.gate = gate
    interrupt = threading.Event()
    wf = parse_workflow({"nodes": {
        "1": {"type": "Number"},
        "2": {"type": "Slow", "inputs": {"x": ["1", 0], "steps": 5}},
        "3": {"type": "Show", "inputs": {"x": ["2", 0]}},
    }})
    progress = []

    def on_event(event):
        if event["type"] == "progress":
            progress.append(event["value"])
            if event["value"] == 2:
                interrupt.set()
                gate.set()

    try:
        result = Executor(toy_registry).run(wf, on_event=on_event, interrupt=interrupt)
    finally:
        toy_nodes.Slow.gate = None
    assert result.status == "interrupted"
    assert result.error["node_id"] == "2" and result.error["node_type"] == "Slow"
    assert progress == [1, 2]
    assert "3" not in result.executed


def test_interrupt_between_nodes(toy_registry):
    interrupt = threading.Event()
    events = []

    def on_event(event):
        events.append(event)
        if event["type"] == "node_finished" and event["node"] == "1":
            interrupt.set()

    result = Executor(toy_registry).run(chain(), on_event=on_event, interrupt=interrupt)
    assert result.status == "interrupted" and result.executed == ["1"]
    assert result.error["node_id"] in {"2", "3"}


def test_a_node_can_end_the_run_after_itself(toy_registry):
    """stop_after_this_node(): the node finishes, its outputs are cached, and the run ends
    interrupted there; the rerun takes it from the cache and goes on."""
    from graphflow.api import Node, stop_after_this_node
    from toy_nodes import NUMBER

    class StopHere(Node):
        category = "test"
        x: NUMBER
        outputs = {"x": NUMBER}

        def run(self):
            runs["StopHere"] += 1
            stop_after_this_node()
            return self.x

    toy_registry.add(StopHere, source="tests")
    assert stop_after_this_node() is None  # outside a run: nothing to stop
    wf = {"nodes": {"1": {"type": "Number", "inputs": {"value": 4}},
                    "2": {"type": "StopHere", "inputs": {"x": ["1", 0]}},
                    "3": {"type": "Show", "inputs": {"x": ["2", 0]}}}}
    executor, events = Executor(toy_registry), []
    before = runs["StopHere"]
    stopped = executor.run(parse_workflow(wf), on_event=events.append)
    assert stopped.status == "interrupted" and stopped.executed == ["1", "2"] and stopped.values["2"] == (4.0,)
    assert stopped.error["node_id"] == "2" and stopped.error["exception_type"] == "Interrupted"
    assert stopped.error["reason"] == "the node asked the run to stop after it"
    kinds = [(e["type"], e.get("node")) for e in events]
    assert kinds[-3:] == [("node_finished", "2"), ("run_interrupted", "2"), ("run_finished", None)]
    went_on = executor.run(parse_workflow(wf))
    assert went_on.ok and went_on.cached == ["1", "2"] and went_on.outputs["3"] == {"text": ["4.0"]}
    assert runs["StopHere"] == before + 1


def test_a_node_stopping_the_run_gives_its_reason_where_it_has_one(toy_registry):
    """A node raising Interrupted(reason) itself: the message and error["reason"] carry the reason;
    a bare Interrupted() ends the message without a dangling colon and has no reason."""
    from graphflow.api import Interrupted, Node, Text
    from toy_nodes import NUMBER

    class Halt(Node):
        category = "test"
        x: NUMBER
        why: str = Text("")
        outputs = {"x": NUMBER}

        def run(self):
            raise Interrupted(self.why) if self.why else Interrupted()

    toy_registry.add(Halt, source="tests")

    def halted(why):
        return Executor(toy_registry).run(parse_workflow({"nodes": {
            "1": {"type": "Number"}, "2": {"type": "Halt", "inputs": {"x": ["1", 0], "why": why}},
            "3": {"type": "Show", "inputs": {"x": ["2", 0]}}}}))

    with_reason, bare = halted("the queue is full"), halted("")
    assert with_reason.status == bare.status == "interrupted"
    assert with_reason.error["message"] == "interrupted while it ran: the queue is full"
    assert bare.error["message"] == "interrupted while it ran"
    assert with_reason.error["reason"] == "the queue is full" and "reason" not in bare.error


def test_progress_events_carry_node_and_counts(toy_registry):
    wf = parse_workflow({"nodes": {
        "1": {"type": "Number"},
        "2": {"type": "Slow", "inputs": {"x": ["1", 0], "steps": 4}},
        "3": {"type": "Show", "inputs": {"x": ["2", 0]}},
    }})
    events = []
    Executor(toy_registry).run(wf, on_event=events.append)
    steps = [(e["node"], e["value"], e["max"]) for e in events if e["type"] == "progress"]
    assert steps == [("2", i, 4) for i in range(1, 5)]


def test_multiple_outputs_and_linked_widget(toy_registry):
    wf = parse_workflow({"nodes": {
        "1": {"type": "Number", "inputs": {"value": 3.7}},
        "2": {"type": "Split", "inputs": {"x": ["1", 0]}},
        "3": {"type": "Repeat", "inputs": {"times": ["2", "whole"], "text": "x"}},
        "4": {"type": "ShowText", "inputs": {"text": ["3", 0]}},
        "5": {"type": "ShowText", "inputs": {"text": ["2", 1]}},
    }})
    result = Executor(toy_registry).run(wf)
    assert result.ok, result.error
    assert result.outputs["4"] == {"text": ["xxx"]} and result.outputs["5"] == {"text": ["n=3.7"]}


def test_linked_widget_value_out_of_range_fails_with_input_named(toy_registry):
    wf = parse_workflow({"nodes": {
        "1": {"type": "Number", "inputs": {"value": 9}},
        "2": {"type": "Split", "inputs": {"x": ["1", 0]}},
        "3": {"type": "Repeat", "inputs": {"times": ["2", "whole"]}},
        "4": {"type": "ShowText", "inputs": {"text": ["3", 0]}},
    }})
    result = Executor(toy_registry).run(wf)
    assert result.status == "error" and result.error["node_id"] == "3" and result.error["input"] == "times"


def test_integer_text_by_link_is_passed_as_comfyui_passes_it_and_typed_text_is_read_by_int(toy_registry):
    """ComfyUI reads typed-in text for an integer by int() ("7.0" refused) and passes a linked value on
    unconverted: a linked "7.0" from an ANY output runs, as it did before typed text was held to int()."""
    from graphflow.api import ANY, STRING, Int, Node, Text

    class AnyText(Node):
        category = "test"
        text: str = Text("")
        outputs = {"value": ANY}

        def run(self):
            return self.text

    class Width(Node):
        category = "test"
        width: int = Int(8, min=1, max=64)
        outputs = {"text": STRING}

        def run(self):
            return repr(self.width)

    toy_registry.add(AnyText, source="tests")
    toy_registry.add(Width, source="tests")

    def run(width):
        return Executor(toy_registry).run(parse_workflow({"nodes": {
            "1": {"type": "AnyText", "inputs": {"text": "7.0"}},
            "2": {"type": "Width", "inputs": {"width": width}},
            "3": {"type": "ShowText", "inputs": {"text": ["2", 0]}}}}))

    assert run(["1", 0]).status == "success"
    typed = run("7.0")
    assert typed.status == "invalid" and [p.input for p in typed.problems] == ["width"]
    assert "expected an integer" in typed.problems[0].message
    assert run(" 7 ").outputs["3"] == {"text": ["7"]}


def test_linked_min_lets_a_linked_value_under_min_through_but_not_a_typed_one(toy_registry):
    from graphflow.api import STRING, Int, Node

    class Floored(Node):  # handles values under its min itself, as a pack's node may
        category = "test"
        x: int = Int(64, min=64, max=100, linked_min=None)
        times: int = Int(1, min=1, max=5)
        outputs = {"text": STRING}

        def run(self):
            return f"{self.x}x{self.times}"

    toy_registry.add(Floored, source="tests")

    def run(value, times_linked=False):
        inputs = {"x": ["2", "whole"], **({"times": ["2", "whole"]} if times_linked else {})}
        return Executor(toy_registry).run(parse_workflow({"nodes": {
            "1": {"type": "Number", "inputs": {"value": value}},
            "2": {"type": "Split", "inputs": {"x": ["1", 0]}},
            "3": {"type": "Floored", "inputs": inputs},
            "4": {"type": "ShowText", "inputs": {"text": ["3", 0]}},
        }}))

    assert run(-7).outputs["4"] == {"text": ["-7x1"]}  # no lower bound for a linked x
    too_big = run(101)
    assert too_big.status == "error" and too_big.error["input"] == "x"  # the max still holds
    other = run(0, times_linked=True)  # a widget without linked_min keeps its min
    assert other.status == "error" and other.error["input"] == "times"
    typed = Executor(toy_registry).run(parse_workflow({"nodes": {
        "3": {"type": "Floored", "inputs": {"x": 43}}, "4": {"type": "ShowText", "inputs": {"text": ["3", 0]}}}}))
    assert typed.status != "ok" and any(p.input == "x" for p in typed.problems)


def test_linked_nonfinite_lets_a_linked_inf_or_nan_through_but_not_a_typed_one(toy_registry):
    import math

    from graphflow.api import FLOAT, STRING, Float, Node

    class Overflow(Node):  # a float operation whose result may be inf or NaN
        category = "test"
        value: float = Float(1e308, max=1e308)
        times: float = Float(10.0)
        outputs = {"product": FLOAT}

        def run(self):
            return self.value * self.times

    class Kind(Node):  # tests its input for infinity and NaN, as it means to
        category = "test"
        x: float = Float(0.0, linked_nonfinite=True)
        y: float = Float(0.0)
        outputs = {"text": STRING}

        def run(self):
            return "inf" if math.isinf(self.x) else "nan" if math.isnan(self.x) else "finite"

    toy_registry.add(Overflow, source="tests")
    toy_registry.add(Kind, source="tests")

    def run(times, linked="x", typed=None):
        return Executor(toy_registry).run(parse_workflow({"nodes": {
            "1": {"type": "Overflow", "inputs": {"times": times}},
            "2": {"type": "Kind", "inputs": {linked: ["1", 0], **(typed or {})}},
            "3": {"type": "ShowText", "inputs": {"text": ["2", 0]}},
        }}))

    assert run(10.0).outputs["3"] == {"text": ["inf"]}
    assert run(-10.0).outputs["3"] == {"text": ["inf"]}
    assert run(0.5).outputs["3"] == {"text": ["finite"]}
    other = run(10.0, linked="y")  # a FLOAT without the hint still refuses a linked inf
    assert other.status == "error" and other.error["input"] == "y" and other.error["node_id"] == "2"
    for typed in (math.inf, math.nan):  # and a typed-in x is still finite
        refused = Executor(toy_registry).run(parse_workflow({"nodes": {
            "2": {"type": "Kind", "inputs": {"x": typed}}, "3": {"type": "ShowText", "inputs": {"text": ["2", 0]}}}}))
        assert refused.status == "invalid" and any(p.input == "x" for p in refused.problems)


def test_linked_max_lets_a_linked_value_over_max_through_but_not_a_typed_one(toy_registry):
    from graphflow.api import FLOAT, STRING, Float, Node

    class Level(Node):  # a FLOAT from anywhere, as Get Sigma's ~921 for an EDM model
        category = "test"
        value: float = Float(1.0, max=1e6)
        outputs = {"level": FLOAT}

        def run(self):
            return self.value

    class Capped(Node):  # handles values over its widget's max itself, as a pack's node may
        category = "test"
        strength: float = Float(1.0, min=0.0, max=200.0, linked_max=None)
        factor: float = Float(0.5, min=0.0, max=1.0)
        outputs = {"text": STRING}

        def run(self):
            return f"{self.strength}x{self.factor}"

    toy_registry.add(Level, source="tests")
    toy_registry.add(Capped, source="tests")

    def run(value, linked="strength", typed=None):
        return Executor(toy_registry).run(parse_workflow({"nodes": {
            "1": {"type": "Level", "inputs": {"value": value}},
            "2": {"type": "Capped", "inputs": {linked: ["1", 0], **(typed or {})}},
            "3": {"type": "ShowText", "inputs": {"text": ["2", 0]}},
        }}))

    assert run(921.0).outputs["3"] == {"text": ["921.0x0.5"]}  # no upper bound for a linked strength
    low = run(-1.0)
    assert low.status == "error" and low.error["input"] == "strength"  # the min still holds
    other = run(1.5, linked="factor")  # a widget without linked_max keeps its max
    assert other.status == "error" and other.error["input"] == "factor"
    typed = Executor(toy_registry).run(parse_workflow({"nodes": {
        "2": {"type": "Capped", "inputs": {"strength": 300.0}},
        "3": {"type": "ShowText", "inputs": {"text": ["2", 0]}}}}))
    assert typed.status == "invalid" and any(p.input == "strength" for p in typed.problems)


def test_cache_lru_bounds_entries_and_bytes(toy_registry):
    cache = OutputCache(max_entries=2)
    executor = Executor(toy_registry, cache)
    executor.run(chain())
    assert len(cache) == 2  # five nodes ran, only the two most recent stay
    import torch

    big = OutputCache(max_entries=100, max_bytes=1000)
    big.put("a", (torch.zeros(100),))  # 400 bytes
    big.put("b", (torch.zeros(100),))
    big.put("c", (torch.zeros(100),))  # 1200 > 1000: evict the oldest
    assert "a" not in big and "b" in big and "c" in big and big.nbytes == 800
    big.get("b")  # b is now the most recent
    big.put("d", (torch.zeros(100),))
    assert "c" not in big and "b" in big


def test_cache_survives_between_runs_with_distinct_executors_sharing_it(toy_registry):
    cache = OutputCache()
    Executor(toy_registry, cache).run(chain())
    result = Executor(toy_registry, cache).run(chain())
    assert result.executed == []


def test_invalid_workflow_runs_nothing(toy_registry):
    wf = chain()
    wf.nodes["2"].inputs["factor"] = 99
    result = Executor(toy_registry).run(wf)
    assert result.status == "invalid" and runs == {}
    assert [(p.node_id, p.input) for p in result.problems] == [("2", "factor")]


def test_wrong_number_of_returned_values_is_a_node_error(toy_registry):
    from graphflow.api import Node
    from graphflow.types import INT, STRING

    class Bad(Node):
        output_node = True
        outputs = {"a": INT, "b": STRING}

        def run(self):
            return 1

    toy_registry.add(Bad)
    result = Executor(toy_registry).run(parse_workflow({"nodes": {"1": {"type": "Bad"}}}))
    assert result.status == "error" and "tuple of 2 values (a, b)" in result.error["message"]


def test_a_linked_widget_without_a_default_keeps_the_typed_in_widgets(toy_registry):
    """A widget that must be given (a choice of files, say) linked from another node: the node's
    typed-in widgets keep their values (once they were all dropped, and the run failed with a
    KeyError), a bad typed-in one is still named, and the linked value is still checked."""
    from graphflow.api import STRING, Choice, Int, Node

    class Pick(Node):
        category = "test"
        name: str = Choice(("ab", "cd"))
        times: int = Int(1, min=1, max=5)
        outputs = {"text": STRING}

        def run(self):
            return self.name * self.times

    toy_registry.add(Pick)

    def graph(name, times):
        return {"version": 1, "nodes": {
            "1": {"type": "Repeat", "inputs": {"text": name}},
            "2": {"type": "Pick", "inputs": {"name": ["1", 0], "times": times}},
            "3": {"type": "ShowText", "inputs": {"text": ["2", 0]}}}}

    result = Executor(toy_registry).run(parse_workflow(graph("cd", 3), toy_registry))
    assert result.ok, (result.problems, result.error)
    assert result.outputs["3"] == {"text": ["cdcdcd"]}
    result = Executor(toy_registry).run(parse_workflow(graph("cd", 9), toy_registry))
    assert [(p.node_id, p.input) for p in result.problems] == [("2", "times")]
    result = Executor(toy_registry).run(parse_workflow(graph("xy", 2), toy_registry))
    assert result.error["node_id"] == "2" and result.error["input"] == "name" and "xy" in result.error["message"]


def test_a_node_returning_a_deeply_nested_value_runs_and_is_cached(toy_registry):
    """The cache's size estimate walks the value without recursion: a list nested 600 deep (as a
    JSON node may parse) is cached rather than raising RecursionError out of Executor.run."""
    from graphflow.api import ANY, Node

    deepest = []
    for _ in range(600):
        deepest = [deepest]

    class Deep(Node):
        output_node = True
        outputs = {"value": ANY}

        def run(self):
            return deepest

    toy_registry.add(Deep)
    executor = Executor(toy_registry)
    wf = parse_workflow({"nodes": {"d": {"type": "Deep", "inputs": {}}}})
    first = executor.run(wf)
    assert first.ok, first.error
    assert first.executed == ["d"] and len(executor.cache) == 1
    assert executor.run(wf).cached == ["d"]
