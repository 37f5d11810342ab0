from graphflow.validation import validate
from graphflow.workflow import parse_workflow


def problems_of(registry, nodes):
    return [(p.node_id, p.input, p.message) for p in validate(parse_workflow({"nodes": nodes}), registry)]


def only(registry, nodes):
    found = problems_of(registry, nodes)
    assert len(found) == 1, found
    return found[0]


def test_valid_workflow_has_no_problems(toy_registry):
    assert problems_of(toy_registry, {
        "1": {"type": "Number", "inputs": {"value": 2}},
        "2": {"type": "Show", "inputs": {"x": ["1", 0]}},
    }) == []


def test_unknown_node_type_suggests_close_names(toy_registry):
    node, inp, msg = only(toy_registry, {"1": {"type": "Numbr"}, "2": {"type": "Show", "inputs": {"x": ["1", 0]}}})
    assert node == "1" and inp is None and "unknown node type 'Numbr'" in msg and "Number" in msg


def test_only_the_first_unknown_types_get_suggestions(toy_registry):
    # difflib over every node type costs ~10 ms a name: a graph of thousands of unknown types must
    # not hold the validator for minutes
    from graphflow.validation import SUGGESTED_TYPES

    nodes = {str(i): {"type": "Numbr", "inputs": {}} for i in range(SUGGESTED_TYPES + 3)}
    problems = validate(parse_workflow({"nodes": nodes}), toy_registry)
    suggested = ["did you mean Number" in p.message for p in problems]
    assert suggested == [True] * SUGGESTED_TYPES + [False] * 3
    assert all(p.message.startswith("unknown node type 'Numbr'") for p in problems)


def test_missing_required_input(toy_registry):
    node, inp, msg = only(toy_registry, {"2": {"type": "Show"}})
    assert (node, inp) == ("2", "x") and "missing required input" in msg and "TOY_NUMBER" in msg


def test_optional_socket_input_may_be_left_out(toy_registry):
    assert problems_of(toy_registry, {
        "1": {"type": "Number"}, "2": {"type": "Add", "inputs": {"a": ["1", 0]}},
        "3": {"type": "Show", "inputs": {"x": ["2", 0]}}}) == []


def test_link_to_missing_node(toy_registry):
    node, inp, msg = only(toy_registry, {"2": {"type": "Show", "inputs": {"x": ["7", 0]}}})
    assert (node, inp) == ("2", "x") and "node '7', which does not exist" in msg


def test_link_to_missing_output_index_and_name(toy_registry):
    node, inp, msg = only(toy_registry, {"1": {"type": "Number"}, "2": {"type": "Show", "inputs": {"x": ["1", 3]}}})
    assert (node, inp) == ("2", "x") and "output 3 of node 1 (Number)" in msg and "0: number (TOY_NUMBER)" in msg
    node, inp, msg = only(toy_registry, {"1": {"type": "Number"}, "2": {"type": "Show", "inputs": {"x": ["1", "nope"]}}})
    assert "no such output" in msg


def test_socket_type_mismatch(toy_registry):
    node, inp, msg = only(toy_registry, {
        "1": {"type": "Repeat"}, "2": {"type": "Show", "inputs": {"x": ["1", 0]}}})
    assert (node, inp) == ("2", "x") and "expected a link of type TOY_NUMBER" in msg and "is STRING" in msg


def test_widget_link_type_mismatch(toy_registry):
    node, inp, msg = only(toy_registry, {
        "1": {"type": "Number"}, "2": {"type": "Split", "inputs": {"x": ["1", 0]}},
        "3": {"type": "Repeat", "inputs": {"times": ["2", "label"]}},
        "4": {"type": "ShowText", "inputs": {"text": ["3", 0]}}})
    assert (node, inp) == ("3", "times") and "expected a link of type INT" in msg


def test_value_out_of_range(toy_registry):
    node, inp, msg = only(toy_registry, {
        "1": {"type": "Number", "inputs": {"value": 5000}}, "2": {"type": "Show", "inputs": {"x": ["1", 0]}}})
    assert (node, inp) == ("1", "value") and "got 5000" in msg and "from -1000 to 1000" in msg


def test_value_not_in_choices(toy_registry):
    node, inp, msg = only(toy_registry, {
        "1": {"type": "Number"}, "2": {"type": "Scale", "inputs": {"x": ["1", 0], "mode": "div"}},
        "3": {"type": "Show", "inputs": {"x": ["2", 0]}}})
    assert (node, inp) == ("2", "mode") and "'div' is not one of the choices: 'mul', 'pow'" in msg


def test_wrong_literal_type(toy_registry):
    node, inp, msg = only(toy_registry, {
        "1": {"type": "Number"}, "2": {"type": "Scale", "inputs": {"x": ["1", 0], "factor": "three"}},
        "3": {"type": "Show", "inputs": {"x": ["2", 0]}}})
    assert (node, inp) == ("2", "factor") and "expected an integer" in msg
    node, inp, msg = only(toy_registry, {
        "1": {"type": "Number"}, "2": {"type": "Scale", "inputs": {"x": ["1", 0], "factor": 2.5}},
        "3": {"type": "Show", "inputs": {"x": ["2", 0]}}})
    assert (node, inp) == ("2", "factor")


def test_literal_given_for_a_socket(toy_registry):
    node, inp, msg = only(toy_registry, {"2": {"type": "Show", "inputs": {"x": 5}}})
    assert (node, inp) == ("2", "x") and "expected a link from a TOY_NUMBER output, got the value 5" in msg


def test_unknown_input_name(toy_registry):
    node, inp, msg = only(toy_registry, {
        "1": {"type": "Number", "inputs": {"valu": 3}}, "2": {"type": "Show", "inputs": {"x": ["1", 0]}}})
    assert (node, inp) == ("1", "valu") and "unknown input" in msg and "value" in msg


def test_a_failing_unknown_input_hook_leaves_the_generic_message(toy_registry, monkeypatch):
    """A plugin's Node.unknown_input that raises (or answers other than text) is passed over:
    validation answers with problems, never an exception."""
    number = toy_registry.get("Number")
    graph = {"1": {"type": "Number", "inputs": {"valu": 3}}, "2": {"type": "Show", "inputs": {"x": ["1", 0]}}}

    def broken(cls, name):
        raise RuntimeError("plugin bug")
    for hook in (broken, lambda cls, name: {"not": "text"}):
        monkeypatch.setattr(number, "unknown_input", classmethod(hook))
        node, inp, msg = only(toy_registry, graph)
        assert (node, inp) == ("1", "valu") and msg.startswith("unknown input") and "value" in msg
    monkeypatch.setattr(number, "unknown_input", classmethod(lambda cls, name: f"{name}: not in this version"))
    assert only(toy_registry, graph)[2] == "valu: not in this version"


def test_cycle(toy_registry):
    found = problems_of(toy_registry, {
        "1": {"type": "Add", "inputs": {"a": ["3", 0]}},
        "2": {"type": "Add", "inputs": {"a": ["1", 0]}},
        "3": {"type": "Add", "inputs": {"a": ["2", 0]}},
        "4": {"type": "Show", "inputs": {"x": ["3", 0]}}})
    assert len(found) == 1 and "cycle" in found[0][2]
    for node_id in "123":
        assert node_id in found[0][2]


def test_run_order_and_cycle_are_networkxs():
    """LinkGraph orders the nodes as networkx.topological_sort did on a DiGraph built by the same
    calls (the run order), and names the cycle networkx.find_cycle names."""
    import random

    import networkx as nx

    from graphflow.validation import LinkGraph

    rng = random.Random(7)
    cycles = 0
    for _ in range(300):
        ours, theirs = LinkGraph(), nx.DiGraph()
        names = [str(n) for n in rng.sample(range(40), rng.randint(1, 12))]
        for _ in range(rng.randint(0, 25)):
            if rng.random() < 0.3:
                node = rng.choice(names)
                ours.add_node(node)
                theirs.add_node(node)
            else:
                a, b = rng.choice(names), rng.choice(names)
                if rng.random() < 0.8:  # mostly acyclic: links from an earlier name to a later one
                    a, b = sorted((a, b), key=names.index)
                ours.add_edge(a, b)
                theirs.add_edge(a, b)
        try:
            expected = list(nx.topological_sort(theirs))
        except nx.NetworkXUnfeasible:
            cycles += 1
            assert ours.topological_order() is None and ours.find_cycle() == nx.find_cycle(theirs)
        else:
            assert ours.topological_order() == expected
    assert 30 < cycles < 270


def test_no_output_node(toy_registry):
    (node, inp, msg), = problems_of(toy_registry, {"1": {"type": "Number"}})
    assert node is None and "no output node" in msg


def test_every_problem_reported_at_once(toy_registry):
    found = problems_of(toy_registry, {
        "1": {"type": "Number", "inputs": {"value": "x"}},
        "2": {"type": "Scale", "inputs": {"x": ["1", 0], "factor": 0, "mode": "zz"}},
        "3": {"type": "Add", "inputs": {"a": ["2", 0], "b": ["8", 0]}},
        "4": {"type": "Show", "inputs": {"x": ["3", 0]}},
        "5": {"type": "Show"},
        "6": {"type": "Nope"},
    })
    assert {(n, i) for n, i, _ in found} == {
        ("1", "value"), ("2", "factor"), ("2", "mode"), ("3", "b"), ("5", "x"), ("6", None)}


def test_outdated_node_version(toy_registry):
    import toy_nodes
    from graphflow.api import Node

    class Versioned(Node):
        output_node = True
        version = 3
        x: toy_nodes.NUMBER

        @classmethod
        def upgrade(cls, inputs, saved_version):
            if saved_version == 2:
                return {"x": inputs["old_x"]}
            return None

        def run(self):
            pass

    toy_registry.add(Versioned)
    base = {"1": {"type": "Number"}}
    assert problems_of(toy_registry, {**base, "2": {"type": "Versioned", "version": 2, "inputs": {"old_x": ["1", 0]}}}) == []
    node, inp, msg = only(toy_registry, {**base, "2": {"type": "Versioned", "version": 1, "inputs": {"x": ["1", 0]}}})
    assert node == "2" and "version 1" in msg and "needs updating" in msg
    node, inp, msg = only(toy_registry, {**base, "2": {"type": "Versioned", "version": 4, "inputs": {"x": ["1", 0]}}})
    assert "newer than the installed version 3" in msg


import pytest  # noqa: E402


@pytest.mark.parametrize("prefix, words", [
    ("../../evil", "no '..'"), ("sub/../../evil", "no '..'"), ("/etc/evil", "absolute"), ("C:evil", "drive name"),
    ("a\\b", "backslash"), ("a\x00b", "control character"), ("a\nb", "control character"),
    ("x" * 5000, "5000 characters is too long"), ("", "empty"), ("./", "names no file"),
])
def test_file_name_inputs_are_refused_at_validation(builtin_registry, prefix, words):
    # SaveImage's prefix is a Text(file_name=True): checked before anything runs, not when saving.
    workflow = parse_workflow({"nodes": {
        "1": {"type": "EmptyLatent"}, "2": {"type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}}})
    found = [(p.node_id, p.input, p.message) for p in validate(workflow, builtin_registry)]
    assert [f[:2] for f in found if f[1] == "filename_prefix"] == [("2", "filename_prefix")], found
    assert words in next(f[2] for f in found if f[1] == "filename_prefix")


def test_file_names_with_subfolders_are_fine(builtin_registry):
    for prefix in ("shots/red", "a b/c-d_e.f", "x" * 200):
        workflow = parse_workflow({"nodes": {"1": {"type": "LoadImage", "inputs": {"image": "nothing.png"}},
                                             "2": {"type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}}})
        assert [p for p in validate(workflow, builtin_registry) if p.input == "filename_prefix"] == []
