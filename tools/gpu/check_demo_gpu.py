"""The demo model on CUDA at the engine's default GPU dtypes (fp16 UNet and text encoder, bf16 VAE):
the prompt grid must be as right as on the CPU, and the image close to the CPU's."""
import time

import torch

from graphflow.demo import evaluate
from graphflow.folders import folders
from graphflow.models.checkpoint import load_checkpoint

path = folders.find_model("checkpoints", "graphflow-demo.safetensors")
reports = {}
for device in ("cpu", "cuda"):
    checkpoint = load_checkpoint(path, device=device)  # the engine's default dtypes for the device
    for cfg in (5.0, 1.0):
        evaluate.evaluate(checkpoint, repeats=1, cfg=cfg)  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        report = evaluate.evaluate(checkpoint, repeats=12, cfg=cfg)
        torch.cuda.synchronize()
        reports[device, cfg] = report
        print(f"{device} cfg {cfg}: {report.summary()}, all right {report.accuracy:.1%} "
              f"({time.perf_counter() - start:.2f} s for 216 images)")
for cfg in (5.0, 1.0):
    diff = (reports["cuda", cfg].images.float().cpu() - reports["cpu", cfg].images).abs()
    print(f"cfg {cfg}: CUDA vs CPU image max |diff| {diff.max():.4f}, mean {diff.mean():.5f}")
