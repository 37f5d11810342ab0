"""ControlNets, T2I-Adapters, TAESD and upscale models go through the memory manager: under a
simulated device budget (GRAPHFLOW_VRAM_BUDGET_GB) they are loaded for their run, streamed
when they don't fit, offloaded when others need the room, and their outputs don't change."""

import pytest
import torch

from graphflow import memory
from graphflow.models.checkpoint import load_checkpoint
from graphflow.models.controlnet import ControlApplied, load_control_model
from graphflow.models.t2i_adapter import T2IAdapter, T2IAdapterConfig
from graphflow.sampling.pipeline import sample
from graphflow.testing import write_checkpoint, write_controlnet, write_esrgan

GiB = memory.GiB


def budget(monkeypatch, nbytes):
    monkeypatch.setenv("GRAPHFLOW_VRAM_BUDGET_GB", repr(nbytes / GiB))


def actions(manager, kind):
    return [e["action"] for e in manager.events if e.get("kind") == kind]


def test_controlnet_and_t2i_adapter_loaded_streamed_and_offloaded(fresh_manager, monkeypatch, tmp_path):
    ckpt = load_checkpoint(write_checkpoint(tmp_path / "sd1.safetensors", "sd1"), device="cpu", dtype=torch.float32)
    net = load_control_model(write_controlnet(tmp_path / "cn.safetensors", "sd1"), dtype=torch.float32)
    cfg = ckpt.model.unet.config
    torch.manual_seed(0)
    adapter = T2IAdapter(T2IAdapterConfig(channels=tuple(m * cfg.model_channels for m in cfg.channel_mult)))
    hint = torch.rand(1, 64, 64, 3)
    control = ControlApplied(adapter, hint, 0.8, previous=ControlApplied(net, hint, 1.0))
    cond, _ = ckpt.clip.encode("a red circle")
    uncond, _ = ckpt.clip.encode("")

    def run():
        latent = {"samples": torch.zeros(1, 4, 8, 8)}
        out = sample(ckpt.model, 4, 2, 4.0, "euler", "normal", [(cond, {"control": control})],
                     [(uncond, {})], latent)["samples"]
        return out, ckpt.vae.decode(out)

    want, want_image = run()
    plain = sample(ckpt.model, 4, 2, 4.0, "euler", "normal", [(cond, {})], [(uncond, {})],
                   {"samples": torch.zeros(1, 4, 8, 8)})["samples"]
    assert (want - plain).abs().max() > 1e-3  # the controls do act
    fresh_manager.offload_all()
    fresh_manager.events.clear()
    unet, net_bytes = memory.module_bytes(ckpt.model.unet), memory.module_bytes(net)
    budget(monkeypatch, unet + 0.5 * net_bytes)  # the UNet whole; the ControlNet only in part beside it
    for _ in range(2):  # the second run finds the VAE and the controls where the first left them
        got, got_image = run()
        assert torch.equal(got, want) and torch.equal(got_image, want_image)
    assert actions(fresh_manager, "diffusion_model")[:2] == ["load", "offload"]  # made room for the VAE
    assert "partial" in actions(fresh_manager, "control")  # the ControlNet streamed beside the UNet
    assert "offload" in actions(fresh_manager, "control")  # the UNet needed the room again
    names = {c.name.split("@")[0] for c in fresh_manager.components.values() if c.kind == "control"}
    assert names == {"control:ControlNet", "control:T2IAdapter"}
    assert fresh_manager.streaming == 0  # every streamed block went back


def test_taesd_and_upscale_model_offloaded_and_loaded_again(fresh_manager, monkeypatch, tmp_path):
    from graphflow.models.latent_formats import SD1
    from graphflow.models.taesd import Decoder, Encoder, TAESDConfig, TinyVAE
    from graphflow.models.upscale import load_upscale_model, upscale

    torch.manual_seed(0)
    config = TAESDConfig(latent_channels=4)
    tiny = TinyVAE(Encoder(config), Decoder(config), SD1)
    upscaler = load_upscale_model(write_esrgan(tmp_path / "esrgan.safetensors", scale=2))
    latent, image = torch.randn(1, 4, 6, 6), torch.rand(1, 24, 24, 3)
    want = (tiny.decode(latent), tiny.encode(image), upscale(upscaler, image, tile=16, overlap=4))
    fresh_manager.offload_all()
    fresh_manager.events.clear()
    sizes = [memory.module_bytes(m) for m in (tiny.decoder, tiny.encoder, upscaler.model)]
    budget(monkeypatch, 1.1 * max(sizes))  # one at a time
    for _ in range(2):
        got = (tiny.decode(latent), tiny.encode(image), upscale(upscaler, image, tile=16, overlap=4))
        assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert actions(fresh_manager, "upscale_model") == ["load", "offload", "load"]
    assert actions(fresh_manager, "vae").count("offload") >= 3  # each TAESD half made room for the next
    kinds = {c.name: c.kind for c in fresh_manager.components.values()}
    assert kinds["taesd:decoder"] == kinds["taesd:encoder"] == "vae"
