"""Malformed workflows for the fuzz tests and bench/fuzz.py: the example workflows (ours and as
ComfyUI API graphs) mutated at random, and arbitrary JSON values; plus the check that the reader
and the validator answered one with problems, never an exception."""

import copy
import json
import random
from pathlib import Path

from graphflow.comfy_format import export_api
from graphflow.registry import default_registry
from graphflow.validation import Problem, validate
from graphflow.workflow import WorkflowFormatError, parse_workflow

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"

SCALARS = [None, True, False, 0, -1, 1, 7, 2**63, -(2**70), 1.5, -0.0, 1e308, float("inf"), float("nan"),
           "", "x", "1", "0", "../x", "/etc/passwd", "a\nb", "a\x00b", "é", "KSampler", "EmptyLatent", "__value__"]


def seeds() -> list:
    shipped = [json.loads(p.read_text()) for p in sorted(WORKFLOWS.glob("*.json"))]
    ours = [w for w in shipped if "nodes" in w]
    comfy = [w for w in shipped if "nodes" not in w]  # workflows shipped in ComfyUI's API format
    registry = default_registry()  # ours written as ComfyUI API graphs, with ComfyUI's class and input names
    comfy += [export_api(parse_workflow(w), registry) for w in ours]
    return ours + comfy


def random_json(r: random.Random, depth: int = 0):
    roll = r.random()
    if depth > 4 or roll < 0.5:
        return r.choice(SCALARS) if r.random() < 0.7 else r.randint(-10**6, 10**6)
    if roll < 0.75:
        return [random_json(r, depth + 1) for _ in range(r.randint(0, 4))]
    return {r.choice(["1", "2", "type", "class_type", "inputs", "nodes", "x", "__value__"]): random_json(r, depth + 1)
            for _ in range(r.randint(0, 4))}


def _junk(r: random.Random, ids: list):
    roll = r.random()
    if roll < 0.25 and ids:  # a link, often dangling or to a wrong output
        return [r.choice(ids + ["999", ""]), r.choice([0, 1, 2, 9, -1, "latent", "nope", True, 1.0])]
    if roll < 0.35:
        return {"__value__": random_json(r)}
    if roll < 0.45:
        return r.choice([64, 72, 520, 16384, 10**6, -8, 4096, 10000])
    return random_json(r)


def mutate(value, r: random.Random, ids: list):
    """One random change somewhere inside `value` (a new object; `value` is left as it was)."""
    if isinstance(value, dict) and value and r.random() < 0.8:
        value = dict(value)
        key = r.choice(list(value))
        roll = r.random()
        if roll < 0.6:
            value[key] = mutate(value[key], r, ids)
        elif roll < 0.75:
            del value[key]
        elif roll < 0.9:
            value[r.choice(["class_type", "type", "inputs", "nodes", "version", "_meta", "ui", "seed", "x", key])] = _junk(r, ids)
        else:
            value[r.choice(ids) if ids else "1"] = value.pop(key)  # a node under another's id
        return value
    if isinstance(value, list) and value and r.random() < 0.8:
        value = list(value)
        i = r.randrange(len(value))
        value[i] = mutate(value[i], r, ids) if r.random() < 0.7 else _junk(r, ids)
        if r.random() < 0.2:
            value.append(_junk(r, ids))
        return value
    return copy.deepcopy(_junk(r, ids))


def random_workflow(r: random.Random, bases: list):
    """A mutated example (1 to 5 changes), now and then an arbitrary JSON value."""
    if r.random() < 0.05:
        return random_json(r)
    workflow = r.choice(bases)
    nodes = workflow.get("nodes", workflow)
    ids = list(nodes) if isinstance(nodes, dict) else []
    for _ in range(r.randint(1, 5)):
        workflow = mutate(workflow, r, ids)
    return workflow


def check_answer(data, registry, limits=None) -> list[Problem]:
    """Parse and validate `data`; the problems found. Anything but a clean answer raises."""
    try:
        workflow = parse_workflow(data, registry)
    except WorkflowFormatError as e:
        problems = e.problems
        assert problems, "a format error without problems"
    else:
        problems = validate(workflow, registry, limits=limits)
    for p in problems:
        assert isinstance(p, Problem) and isinstance(p.message, str) and p.message
        assert all(v is None or isinstance(v, str) for v in (p.node_id, p.node_type, p.input)), p
        json.dumps(p.to_dict())
    return problems


def random_graph(r: random.Random, types: list, inputs: list):
    """A graph built from scratch: real and junk node types, real and junk input names, values
    that are links (often dangling or mistyped), plausible literals or junk; either format."""
    comfy = r.random() < 0.5
    ids = [str(i) for i in range(1, r.randint(1, 8) + 1)] + (["x"] if r.random() < 0.1 else [])
    nodes = {}
    for node_id in ids:
        node_type = r.choice(types) if r.random() < 0.85 else random_json(r)
        entry_inputs = {}
        for _ in range(r.randint(0, 6)):
            name = r.choice(inputs) if r.random() < 0.9 else r.choice(SCALARS[14:])
            entry_inputs[name] = _junk(r, ids) if r.random() < 0.5 else r.choice(
                [[r.choice(ids), r.randint(0, 2)], r.randint(0, 20000), r.random() * 20, "euler", "normal", "graphflow"])
        entry = {"class_type" if comfy else "type": node_type,
                 "inputs": entry_inputs if r.random() < 0.95 else random_json(r)}
        nodes[node_id] = entry if r.random() < 0.97 else random_json(r)
    return nodes if comfy else {"version": 1, "nodes": nodes}
