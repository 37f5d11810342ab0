"""Peak device memory and wall time of a whole txt2img run (encode, sample, decode) under device
budgets of 24, 12, 8 and 6 GB against the unlimited run, for SDXL at 1024² and FLUX.

    .venv/bin/python bench/memory.py [--full] [--steps 4] [--models sdxl,flux]

On the CPU (default) the models are the scaled-down random-weight ones of graphflow.testing,
and the manager counts each component as its real size (REAL_SIZES; each block in proportion),
so under a budget it makes the choices it would for the real models on a GPU of that size; the
latent is 128² instead of 1024². "peak" is the most weight bytes the manager had on the device
at once, in real-model GB (activations not counted: the simulated budget has no allocator to
ask); wall time is the scaled-down models' and only shows the cost of the bookkeeping. With
--full on a CUDA machine the models are full-size (random weights, written to a temp folder)
at 1024² and peak is torch.cuda.max_memory_allocated. Every budget's image is compared with
the unlimited one: a partial load must not change a bit.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphflow import memory  # noqa: E402
from graphflow.models.checkpoint import load_checkpoint  # noqa: E402
from graphflow.sampling.pipeline import sample  # noqa: E402
from graphflow import testing  # noqa: E402

GiB = memory.GiB
# Real component sizes in the dtype a GPU runs them in (fp16 SDXL, bf16 FLUX dev), bytes, by the
# manager's component names: on the CPU each scaled-down component is counted as its real size.
REAL_SIZES = {
    "sdxl": {"diffusion_model:sdxl": 2.567e9 * 2, "text_encoder:clip_l": 123.1e6 * 2,
             "text_encoder:clip_g": 694.7e6 * 2, "vae": 83.65e6 * 2},
    "flux": {"diffusion_model:flux": 11.90e9 * 2, "text_encoder:clip_l": 123.1e6 * 2,
             "text_encoder:t5": 4.762e9 * 2, "vae": 83.8e6 * 2},
}
BUDGETS = [None, 24, 12, 8, 6]


def write(kind: str, folder: Path, full: bool) -> Path:
    path = folder / f"{kind}.safetensors"
    if kind == "sdxl":
        testing.write_checkpoint(path, "sdxl", scaled_down=not full)
    else:
        testing.write_flow_checkpoint(path, "flux_dev", scaled_down=not full)
    return path


def run_once(ckpt, kind: str, side: int, steps: int) -> torch.Tensor:
    if kind == "flux":
        cond, pooled = ckpt.clip.encode_flux("a red circle", "a red circle on a blue background")
        positive, negative, cfg = [(cond, {"pooled_output": pooled})], [(cond * 0, {"pooled_output": pooled * 0})], 1.0
        channels = 16
    else:
        cond, pooled = ckpt.clip.encode("a red circle on a blue background")
        ncond, npooled = ckpt.clip.encode("")
        positive, negative, cfg = [(cond, {"pooled_output": pooled})], [(ncond, {"pooled_output": npooled})], 5.0
        channels = 4
    latent = {"samples": torch.zeros(1, channels, side // 8, side // 8)}
    out = sample(ckpt.model, 1, steps, cfg, "euler", "normal", positive, negative, latent)
    return ckpt.vae.decode(out["samples"])


def bench(kind: str, path: Path, full: bool, steps: int) -> list[dict]:
    ckpt = load_checkpoint(path, dtype=torch.float32 if not full else None)
    side = 1024 if full else 128
    rows, reference = [], None
    for budget in BUDGETS:
        manager = memory.MemoryManager(virtual_sizes=None if full else REAL_SIZES[kind])
        memory._manager = manager
        if budget is None:
            os.environ.pop("GRAPHFLOW_VRAM_BUDGET_GB", None)
        else:
            os.environ["GRAPHFLOW_VRAM_BUDGET_GB"] = repr(float(budget))
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        began = time.perf_counter()
        image = run_once(ckpt, kind, side, steps)
        wall = time.perf_counter() - began
        if torch.cuda.is_available() and full:
            peak = torch.cuda.max_memory_allocated() / GiB
        else:
            peak = manager.peak / GiB
        if reference is None:
            reference = image
        split = {c.name: f"{c.resident_blocks}/{c.blocks}" for c in manager.components.values()
                 if any(e["component"] == c.name and e["action"] == "partial" for e in manager.events)}
        offloads = sum(e["action"] == "offload" for e in manager.events)
        rows.append({"model": kind, "budget_gb": budget, "peak_gb": round(peak, 2), "wall_s": round(wall, 2),
                     "identical": bool(torch.equal(image, reference)), "split": split, "offloads": offloads})
        print(json.dumps(rows[-1]), flush=True)
        manager.offload_all()
    os.environ.pop("GRAPHFLOW_VRAM_BUDGET_GB", None)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="full-size models at 1024² (a CUDA GPU)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--models", default="sdxl,flux")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.models.split(","):
            bench(kind, write(kind, Path(tmp), args.full), args.full, args.steps)


if __name__ == "__main__":
    main()
