"""The CPU fast mode: bf16 compute for the diffusion model and text encoders where the processor
has native bf16 (graphflow.device), fp32 sampler math around it, and pictures that still say
what their prompts say.

The suite pins GRAPHFLOW_DTYPE=fp32 (conftest); these tests choose the mode themselves. The
fast mode is what "auto" picks on a processor with native bf16; on one without, the tests
pretend it has (bf16 is then emulated: slower, same numbers), so they run on any machine.
"""

from pathlib import Path

import pytest
import torch

import graphflow
from graphflow import device
from graphflow.demo import evaluate, measure
from graphflow.diagnostics.image_metrics import psnr
from graphflow.models.checkpoint import load_checkpoint
from graphflow.sampling.model_sampling import ModelDenoiser
from graphflow.testing import write_checkpoint

DEMO = Path(graphflow.__file__).parent / "bundled" / "checkpoints" / "graphflow-demo.safetensors"


@pytest.fixture
def fast_mode(monkeypatch):
    """GRAPHFLOW_DTYPE=auto on a processor with native bf16."""
    monkeypatch.setenv("GRAPHFLOW_DTYPE", "auto")
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)


CPU = torch.device("cpu")


def test_auto_picks_bf16_on_cpu_only_with_native_bf16(monkeypatch):
    monkeypatch.setenv("GRAPHFLOW_DTYPE", "auto")
    for native, expected in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(device, "cpu_has_native_bf16", lambda native=native: native)
        assert device.default_dtype("unet", CPU) == expected
        assert device.default_dtype("text_encoder", CPU) == expected
        assert device.default_dtype("vae", CPU) == torch.float32  # the VAE stays fp32 unless asked
    monkeypatch.delenv("GRAPHFLOW_DTYPE")  # unset is auto
    assert device.default_dtype("unet", CPU) == torch.float32


def test_graphflow_dtype_overrides_every_component(monkeypatch):
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setenv("GRAPHFLOW_DTYPE", "fp32")
    assert {device.default_dtype(c, CPU) for c in ("unet", "text_encoder", "vae")} == {torch.float32}
    monkeypatch.setenv("GRAPHFLOW_DTYPE", "bf16")  # asked: the VAE too
    assert {device.default_dtype(c, CPU) for c in ("unet", "text_encoder", "vae")} == {torch.bfloat16}
    monkeypatch.setenv("GRAPHFLOW_DTYPE", "half")
    with pytest.raises(ValueError, match="GRAPHFLOW_DTYPE='half'.*auto"):
        device.default_dtype("unet", CPU)


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512bw\n")
    assert not device.cpu_has_native_bf16.__wrapped__(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert device.cpu_has_native_bf16.__wrapped__(cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu amx_tile amx_bf16\n")
    assert device.cpu_has_native_bf16.__wrapped__(cpuinfo)
    assert not device.cpu_has_native_bf16.__wrapped__(tmp_path / "missing")


def test_fast_mode_runs_the_model_in_bf16_and_the_sampler_in_fp32(fast_mode, tmp_path):
    path = write_checkpoint(tmp_path / "sd1.safetensors", "sd1", dtype=torch.float32)
    checkpoint = load_checkpoint(path, device="cpu")
    assert (checkpoint.model.dtype, checkpoint.clip.dtype, checkpoint.vae.dtype) == (
        torch.bfloat16, torch.bfloat16, torch.float32)

    context, _ = checkpoint.clip.encode("a red circle")
    assert context.dtype == torch.float32  # conditioning leaves the encoder in fp32
    seen = []
    checkpoint.model.unet.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    x = torch.randn(2, 4, 8, 8)
    denoised = ModelDenoiser(checkpoint.model)(x, torch.tensor([14.6, 1.0]), context.expand(2, -1, -1))
    assert seen == [torch.bfloat16] and denoised.dtype == torch.float32
    # the fp32 model on the same weights gives nearly the same prediction
    reference = load_checkpoint(path, device="cpu", dtype=torch.float32)
    expected = ModelDenoiser(reference.model)(x, torch.tensor([14.6, 1.0]), context.expand(2, -1, -1))
    assert not torch.equal(denoised, expected)  # really another dtype...
    assert (denoised - expected).abs().max() < 0.05 * expected.abs().max()  # ... on the same function


def test_demo_prompts_in_fast_mode_match_fp32(fast_mode):
    # one case per colour, the shapes and backgrounds cycling: six prompts of the grid
    cases = evaluate.grid_cases(1)
    cases = [cases[3 * k + k % 3] for k in range(6)]
    prompts = [c.prompt for c in cases]
    fast = load_checkpoint(DEMO, device="cpu")
    assert (fast.model.dtype, fast.clip.dtype, fast.vae.dtype) == (torch.bfloat16, torch.bfloat16, torch.float32)
    reference = load_checkpoint(DEMO, device="cpu", dtype=torch.float32)

    images = evaluate.generate(fast, prompts, seed=0)
    expected = evaluate.generate(reference, prompts, seed=0)
    quality = psnr(expected, images)
    print(f"\nfast mode vs fp32, PSNR per image (dB): {[round(v, 1) for v in quality.tolist()]}")
    assert (quality >= 30.0).all() and (quality < 80.0).all()  # close, and not the fp32 images themselves
    for image, case in zip(images, cases):
        m = measure.measure(image)
        assert (m.colour, m.shape, m.background) == (case.colour, case.shape, case.background), case.prompt
