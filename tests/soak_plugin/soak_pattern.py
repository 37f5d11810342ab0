"""A cheap plugin node for the kill and soak tests (tests/persistence.py, bench/soak.py): a
seeded noise image smoothed over a few steps, reporting progress and sleeping `pause` seconds
in each step so that a kill at a random moment usually lands inside a run."""

import time

import torch

from graphflow.api import IMAGE, Float, Int, Node, progress


class Pattern(Node):
    """A seeded noise image, smoothed over `steps` steps (sleeping `pause` seconds in each)."""
    category = "test"
    seed: int = Int(0, min=0, max=2**31)
    size: int = Int(64, min=8, max=1024)
    steps: int = Int(4, min=1, max=100)
    pause: float = Float(0.01, min=0.0, max=5.0)
    outputs = {"image": IMAGE}

    def run(self):
        def step(i):
            time.sleep(self.pause)
            progress(i, self.steps)

        return pattern(self.seed, self.size, self.steps, step)


def pattern(seed: int, size: int, steps: int, each_step=lambda i: None) -> torch.Tensor:
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
    kernel = torch.full((3, 1, 3, 3), 1 / 9)
    for i in range(1, steps + 1):
        x = torch.nn.functional.conv2d(x, kernel, padding=1, groups=3)
        each_step(i)
    return x.permute(0, 2, 3, 1).contiguous()
