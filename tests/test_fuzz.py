"""Fuzz: any JSON value given to the workflow reader and validator, or posted to the server, gets
problems back (400 with a structured report from /api/runs and /prompt), never an exception or a
500. Sized to take a few seconds; bench/fuzz.py runs the long version (100,000 workflows)."""

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzz_inputs
from graphflow import folders as folders_module
from graphflow.resource_limits import SERVER_LIMITS
from graphflow.server.app import create_app

def fast(examples: int):
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats()
           | st.sampled_from(fuzz_inputs.SCALARS[-10:]) | st.text(max_size=6))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=12)
ids = st.sampled_from(["1", "2", "3", "10", "x", ""])


@pytest.fixture(scope="module")
def names(builtin_registry):
    types = sorted(cls.node_type for cls in builtin_registry)
    inputs = sorted({name for cls in builtin_registry for name in cls.input_specs})
    return types, inputs


def graphs(types, inputs):
    """Workflow-shaped values: node ids to entries of real or junk types, with inputs that are
    links (often dangling or mistyped), plausible values or junk; ours and the ComfyUI format."""
    node_type = st.sampled_from(types) | json_values
    link = st.tuples(ids, st.integers(-1, 4) | st.sampled_from(["latent", "image", "nope"])).map(list)
    value = link | json_values | st.integers(0, 20000) | st.sampled_from(["euler", "normal", "enable", "../x"])
    node_inputs = st.dictionaries(st.sampled_from(inputs) | st.text(max_size=4), value, max_size=6) | json_values
    ours = st.fixed_dictionaries({"type": node_type}, optional={"inputs": node_inputs, "version": json_values})
    comfy = st.fixed_dictionaries({"class_type": node_type}, optional={"inputs": node_inputs, "_meta": json_values})
    return st.one_of(
        json_values,
        st.fixed_dictionaries({"nodes": st.dictionaries(ids, ours | json_values, max_size=5)},
                              optional={"version": json_values, "ui": json_values}),
        st.dictionaries(ids, comfy | json_values, min_size=1, max_size=5),
    )


def test_reader_and_validator_answer_any_graph(builtin_registry, names):
    @fast(100)
    @given(graphs(*names))
    def check(data):
        fuzz_inputs.check_answer(data, builtin_registry)
        fuzz_inputs.check_answer(data, builtin_registry, SERVER_LIMITS)

    check()


def test_reader_and_validator_answer_mutated_examples(builtin_registry):
    bases = fuzz_inputs.seeds()

    @fast(200)
    @given(st.randoms(use_true_random=False))
    def check(r):
        fuzz_inputs.check_answer(fuzz_inputs.random_workflow(r, bases), builtin_registry)

    check()


@pytest.fixture
def home(tmp_path):
    saved = dict(folders_module.folders.__dict__)
    folders_module.configure(home=tmp_path)
    yield tmp_path
    folders_module.folders.__dict__.update(saved)


async def test_server_answers_every_fuzzed_body_without_a_500(builtin_registry, aiohttp_client, home):
    # Paused: accepted runs wait in the queue, so only the answers are tested.
    c = await aiohttp_client(create_app(builtin_registry, home / "runs.db", web_dir=None, paused=True))
    r = random.Random(17)
    bases = fuzz_inputs.seeds()
    statuses = {}
    for i in range(120):
        workflow = fuzz_inputs.random_workflow(r, bases)
        path, key = ("/api/runs", "workflow") if i % 2 else ("/prompt", "prompt")
        body = {key: workflow} if r.random() < 0.9 else fuzz_inputs.random_json(r)
        if r.random() < 0.1:
            body = {key: workflow, "client_id": fuzz_inputs.random_json(r), "outputs": fuzz_inputs.random_json(r)}
        text = json.dumps(body)  # NaN and Infinity included, as JavaScript clients can't but scripts can
        reply = await c.post(path, data=text, headers={"Content-Type": "application/json"})
        statuses[reply.status] = statuses.get(reply.status, 0) + 1
        assert reply.status in (200, 400), (reply.status, await reply.text(), text[:500])
        answer = await reply.json()
        if reply.status == 400:
            assert answer["problems"] and all(isinstance(p["message"], str) for p in answer["problems"])
        else:
            assert answer.get("run_id") or answer.get("prompt_id")
    assert statuses.get(400, 0) > 50  # the fuzz does reach validation
