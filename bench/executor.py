"""Executor overhead on a 1,000-node graph of trivial nodes.

Prints the per-node scheduling overhead of a cold run (goal < 50 µs/node), the time of a
fully cached re-run (goal < 20 ms), and both against a plain Python loop that calls the
same node functions directly.

    python bench/executor.py [--nodes 1000] [--repeats 20]
"""

import argparse
import statistics
import time

from graphflow.api import Float, Node, show, socket_type
from graphflow.cache import OutputCache
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow

VALUE = socket_type("BENCH_VALUE")


class Source(Node):
    value: float = Float(1.0)
    outputs = {"value": VALUE}

    def run(self):
        return self.value


class Increment(Node):
    x: VALUE
    step: float = Float(1.0)
    outputs = {"value": VALUE}

    def run(self):
        return self.x + self.step


class Sink(Node):
    output_node = True
    x: VALUE

    def run(self):
        show(value=[self.x])


def build(n: int):
    nodes = {"0": {"type": "Source", "inputs": {"value": 0.0}}}
    for i in range(1, n - 1):
        nodes[str(i)] = {"type": "Increment", "inputs": {"x": [str(i - 1), 0], "step": float(i % 7)}}
    nodes[str(n - 1)] = {"type": "Sink", "inputs": {"x": [str(n - 2), 0]}}
    return parse_workflow({"nodes": nodes})


def plain_loop(n: int):
    """The same node functions called directly, in order, with no engine around them."""
    value = Source.__new__(Source)
    value.value = 0.0
    x = value.run()
    for i in range(1, n - 1):
        node = Increment.__new__(Increment)
        node.x, node.step = x, float(i % 7)
        x = node.run()
    sink = Sink.__new__(Sink)
    sink.x = x
    sink.run()
    return x


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    n = args.nodes

    registry = Registry()
    for cls in (Source, Increment, Sink):
        registry.add(cls)
    workflow = build(n)

    cold, cached, direct = [], [], []
    for _ in range(args.repeats):
        executor = Executor(registry, OutputCache())
        t0 = time.perf_counter()
        result = executor.run(workflow)
        t1 = time.perf_counter()
        again = executor.run(workflow)
        t2 = time.perf_counter()
        plain_loop(n)
        t3 = time.perf_counter()
        assert result.ok and again.ok and len(again.cached) == n
        cold.append(t1 - t0)
        cached.append(t2 - t1)
        direct.append(t3 - t2)

    cold_ms, cached_ms, direct_ms = (statistics.median(v) * 1e3 for v in (cold, cached, direct))
    overhead_us = (cold_ms - direct_ms) * 1e3 / n
    print(f"graph: {n} trivial nodes, median of {args.repeats} runs (min in brackets)")
    print(f"plain python loop calling the node functions: {direct_ms:8.2f} ms [{min(direct) * 1e3:.2f}]")
    print(f"executor, cold run:                            {cold_ms:8.2f} ms [{min(cold) * 1e3:.2f}]  "
          f"ratio to plain loop {cold_ms / direct_ms:7.1f}x")
    print(f"per-node scheduling overhead:                  {overhead_us:8.1f} µs/node (goal < 50)")
    print(f"executor, fully cached re-run:                 {cached_ms:8.2f} ms [{min(cached) * 1e3:.2f}]  "
          f"(goal < 20 ms), ratio to plain loop {cached_ms / direct_ms:7.1f}x")


if __name__ == "__main__":
    main()
