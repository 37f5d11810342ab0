"""The long fuzz: generated and mutated workflows through the reader and the validator, and
request bodies through POST /api/runs and /prompt of an in-process server (paused: nothing runs).

    .venv/bin/python bench/fuzz.py                     # 100,000 workflows, 3,000 requests
    .venv/bin/python bench/fuzz.py --workflows 20000 --requests 1000 --seed 3

Prints the workflows tried, the uncaught exceptions (goal 0; the first of each kind is shown)
and the HTTP 500s (goal 0). tests/test_fuzz.py is the short version that runs in CI.
"""

import argparse
import asyncio
import collections
import json
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import fuzz_inputs  # noqa: E402
from graphflow.registry import Registry  # noqa: E402
from graphflow.resource_limits import SERVER_LIMITS  # noqa: E402


def fuzz_reader(registry, n: int, seed: int) -> tuple[int, collections.Counter, dict]:
    r = random.Random(seed)
    bases = fuzz_inputs.seeds()
    types = sorted(cls.node_type for cls in registry)
    inputs = sorted({name for cls in registry for name in cls.input_specs})
    crashes, first = collections.Counter(), {}
    for i in range(n):
        data = fuzz_inputs.random_workflow(r, bases) if i % 2 else fuzz_inputs.random_graph(r, types, inputs)
        try:
            fuzz_inputs.check_answer(data, registry, SERVER_LIMITS if i % 3 == 0 else None)
        except Exception as e:
            key = f"{type(e).__name__}: {str(e)[:100]}"
            crashes[key] += 1
            first.setdefault(key, (json.dumps(data, default=repr)[:400], traceback.format_exc()[-1500:]))
    return n, crashes, first


async def fuzz_server(registry, n: int, seed: int) -> tuple[int, collections.Counter, list]:
    from aiohttp.test_utils import TestClient, TestServer

    from graphflow import folders
    from graphflow.server.app import create_app

    r = random.Random(seed)
    bases = fuzz_inputs.seeds()
    types = sorted(cls.node_type for cls in registry)
    inputs = sorted({name for cls in registry for name in cls.input_specs})
    statuses, bad = collections.Counter(), []
    with tempfile.TemporaryDirectory() as home:
        folders.configure(home=home)
        client = TestClient(TestServer(create_app(registry, Path(home) / "runs.db", web_dir=None, paused=True)))
        await client.start_server()
        try:
            for i in range(n):
                path, key = ("/api/runs", "workflow") if i % 2 else ("/prompt", "prompt")
                roll = r.random()
                if roll < 0.01:
                    text = "[" * 100_000 + "]" * 100_000
                elif roll < 0.05:
                    text = json.dumps(fuzz_inputs.random_json(r))
                else:
                    workflow = fuzz_inputs.random_workflow(r, bases) if roll < 0.5 else fuzz_inputs.random_graph(r, types, inputs)
                    body = {key: workflow}
                    if r.random() < 0.1:
                        body.update(client_id=fuzz_inputs.random_json(r), outputs=fuzz_inputs.random_json(r),
                                    front=fuzz_inputs.random_json(r))
                    text = json.dumps(body)
                reply = await client.post(path, data=text, headers={"Content-Type": "application/json"})
                statuses[reply.status] += 1
                answer = await reply.text()
                structured = False
                try:
                    parsed = json.loads(answer)
                    structured = reply.status == 200 or bool(parsed.get("problems"))
                except (ValueError, AttributeError):
                    pass
                if reply.status >= 500 or not structured:
                    bad.append((reply.status, path, text[:300], answer[:300]))
        finally:
            await client.close()
    return n, statuses, bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    registry = Registry().load_builtin()

    began = time.perf_counter()
    tried, crashes, first = fuzz_reader(registry, args.workflows, args.seed)
    reader_s = time.perf_counter() - began
    print(f"reader+validator: {tried:,} workflows tried in {reader_s:.0f} s, "
          f"{sum(crashes.values())} uncaught exceptions")
    for key, count in crashes.most_common():
        data, tb = first[key]
        print(f"  {count} x {key}\n    input: {data}\n{tb}")

    began = time.perf_counter()
    sent, statuses, bad = asyncio.run(fuzz_server(registry, args.requests, args.seed))
    server_s = time.perf_counter() - began
    print(f"server: {sent:,} requests in {server_s:.0f} s, statuses {dict(sorted(statuses.items()))}, "
          f"{statuses.get(500, 0)} answered 500, {len(bad)} without a structured answer")
    for status, path, text, answer in bad[:10]:
        print(f"  {status} {path} {text!r} -> {answer!r}")
    return 0 if not crashes and not bad else 1


if __name__ == "__main__":
    sys.exit(main())
