"""The block-stack hook: a step cache inside the network (TeaCache, First Block Cache) replaces how
a model runs the blocks between its input embedding and its output head.

A model's forward builds a stack object for its blocks and hands it to `run_blocks`; with no cache
active that is stack.all(), the plain loop. A cache (graphflow.sampling.block_cache) sets a runner
for the length of one network call (`block_runner`), which gets the stack and returns the hidden
states after it, from any of the stack's methods:
  hidden       the hidden states before the blocks (the tokens the residual is added to);
  modulated()  the first block's modulated input (TeaCache's probe);
  first()      run the first block: (hidden states after it, the probe First Block Cache compares);
  rest()       run the blocks after the first: the hidden states after the whole stack;
  all()        run every block, as without a cache.
A stack whose rest() also runs a part after the blocks that First Block Cache's residual stops
before (LTX-Video's output norm: WaveSpeed swaps only the block list) has tail(hidden), that part,
and rest(tail=False), the blocks alone.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar

_runner: ContextVar = ContextVar("block_runner", default=None)


@contextlib.contextmanager
def block_runner(runner):
    """runner(stack) -> hidden states after the blocks, for the network calls made inside."""
    token = _runner.set(runner)
    try:
        yield
    finally:
        _runner.reset(token)


def run_blocks(stack):
    runner = _runner.get()
    return stack.all() if runner is None else runner(stack)
