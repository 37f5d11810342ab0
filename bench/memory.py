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

`--lora` adds the memory a LoRA on every attention, MLP and ResBlock layer of SDXL's UNet costs
(scaled-down model on the CPU, figures also scaled to the real fp16 UNet): the distinct tensor
storages of the network, the LoRA and what keeps it undoable, the old way (a patched copy beside
the original) against the manager's patches in place (originals kept on the offload device:
CPU RAM) and on the fly (no originals kept), and the manager's device record for each.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphflow import memory  # noqa: E402
from graphflow.models.checkpoint import load_checkpoint  # noqa: E402
from graphflow.models.lora import apply_lora, patched_copy  # noqa: E402
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


def storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind these tensors (shared storages counted once)."""
    return sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}.values())


def lora_memory(folder: Path, steps: int) -> list[dict]:
    path = write("sdxl", folder, False)
    lora = testing.write_lora(folder / "lora.safetensors", "sdxl", rank=8, text=False)
    ckpt = load_checkpoint(path, dtype=torch.float32)
    unet = ckpt.model.unet
    to_real = REAL_SIZES["sdxl"]["diffusion_model:sdxl"] / memory.module_bytes(unet) / GiB
    network = [*unet.parameters(), *unet.buffers()]
    base = storage_bytes(network)
    model, _ = apply_lora(ckpt.model, None, lora, 1.0, 0.0)
    factors = [t for p in model.patches for t in p.change.args[0].parts.values()]
    rows = []

    def row(way, nbytes, device_bytes, image, wall):
        lora_bytes = storage_bytes(factors) if "LoRA" in way else 0
        rows.append({"way": way, "resident_mib": round(nbytes / 2 ** 20, 1),
                     "as_real_sdxl_gib_without_factors": round((nbytes - lora_bytes) * to_real, 2),
                     "device_record_gib": round(device_bytes * to_real, 2), "wall_s": round(wall, 2),
                     "of_which_lora_factors_mib": round(lora_bytes / 2 ** 20, 1),
                     "identical_to_old": image is None or len(rows) < 2 or bool(torch.equal(image, rows[1]["image"]))})
        rows[-1]["image"] = image
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "image"}), flush=True)

    def timed(m):
        memory._manager = manager = memory.MemoryManager()
        began = time.perf_counter()
        image = run_once(SimpleNamespace(model=m, clip=ckpt.clip, vae=ckpt.vae), "sdxl", 128, steps)
        return manager, image, time.perf_counter() - began

    manager, _, wall = timed(ckpt.model)
    row("base alone", base, manager.components[id(unet)].size, None, wall)
    # the old way: the patched weights as new tensors in a shallow copy of the network
    old = patched_copy(unet, {p.param: p.change(unet.get_parameter(p.param)) for p in model.patches})
    manager, image, wall = timed(ckpt.model.with_unet(old).with_patches(()))
    device = manager.components[id(old)].size + memory.module_bytes(unet)  # two components, each its full size
    row("base + LoRA, old: patched copy", storage_bytes(network + [*old.parameters()] + factors), device, image, wall)
    del old
    for mode, ram in (("in place", None), ("on the fly", "0")):
        if ram is None:
            os.environ.pop("GRAPHFLOW_RAM_BUDGET_GB", None)
        else:
            os.environ["GRAPHFLOW_RAM_BUDGET_GB"] = ram
        manager, image, wall = timed(model)
        backups = [r.original for r in manager.patched.values() if r.original is not None]
        held = [*unet.parameters(), *unet.buffers()] + factors + backups
        row(f"base + LoRA, new: patches {mode}", storage_bytes(held), manager.components[id(unet)].size, image, wall)
        manager.unpatch(unet)
    os.environ.pop("GRAPHFLOW_RAM_BUDGET_GB", None)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="full-size models at 1024² (a CUDA GPU)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--models", default="sdxl,flux")
    parser.add_argument("--lora", action="store_true", help="also the memory a LoRA costs (CPU, scaled-down SDXL)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.lora:
            lora_memory(Path(tmp), args.steps)
        for kind in filter(None, args.models.split(",")):
            bench(kind, write(kind, Path(tmp), args.full), args.full, args.steps)


if __name__ == "__main__":
    main()
