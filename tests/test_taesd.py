"""TAESD: our tiny autoencoder against diffusers' AutoencoderTiny on identical random weights,
loading the original file layout, and TAESD previews during sampling."""

import pytest
import torch
from safetensors.torch import save_file

from graphflow.models.taesd import Decoder, Encoder, TAESDConfig, TinyVAE, load_half, load_tiny_vae
from graphflow.models.latent_formats import SD1
from graphflow.models.weight_files import CheckpointError


def _random_halves(latent_channels, seed=0):
    torch.manual_seed(seed)
    cfg = TAESDConfig(latent_channels=latent_channels)
    enc, dec = Encoder(cfg), Decoder(cfg)
    for p in list(enc.parameters()) + list(dec.parameters()):
        p.data = torch.randn_like(p) * (1.0 / p[0].numel()) ** 0.5
    return enc, dec


def _to_diffusers(enc, dec, latent_channels):
    from diffusers import AutoencoderTiny

    ref = AutoencoderTiny(latent_channels=latent_channels).eval()
    state = {f"encoder.layers.{k}": v for k, v in enc.state_dict().items()}
    for k, v in dec.state_dict().items():  # the original decoder starts with the (parameter-free) clamp
        index, rest = k.split(".", 1)
        state[f"decoder.layers.{int(index) - 1}.{rest}"] = v
    ref.load_state_dict(state)
    return ref


@pytest.mark.parametrize("latent_channels", [4, 16])  # TAESD/TAESDXL and TAESD3/TAEF1
def test_parity_with_diffusers_autoencoder_tiny(tmp_path, latent_channels):
    enc, dec = _random_halves(latent_channels)
    save_file(enc.state_dict(), str(tmp_path / "enc.safetensors"))
    save_file(dec.state_dict(), str(tmp_path / "dec.safetensors"))
    ours_enc, ours_dec = load_half(tmp_path / "enc.safetensors", "encoder"), load_half(tmp_path / "dec.safetensors", "decoder")
    ref = _to_diffusers(enc, dec, latent_channels)
    torch.manual_seed(1)
    image = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        ours_latent = ours_enc(image)
        # diffusers: images in -1..1; its encode returns the latent as is (scaling_factor 1)
        ref_latent = ref.encode(image * 2 - 1).latents
        assert ours_latent.shape == (2, latent_channels, 4, 6)
        assert (ours_latent - ref_latent).abs().max() <= 1e-4
        latent = torch.randn(2, latent_channels, 4, 6) * 2
        ours_image = ours_dec(latent)
        ref_image = (ref.decode(latent).sample + 1) / 2
        assert ours_image.shape == (2, 3, 32, 48)
        assert (ours_image - ref_image).abs().max() <= 1e-4
        assert ours_image.std() > 1e-3


def test_tiny_vae_maps_raw_latents_through_the_format(tmp_path):
    enc, dec = _random_halves(4)
    vae = TinyVAE(enc, dec, SD1)
    raw = torch.randn(1, 4, 3, 5)
    with torch.no_grad():
        expected = dec(raw * SD1.scale_factor).clamp(0, 1).permute(0, 2, 3, 1)
    assert torch.allclose(vae.decode(raw), expected, atol=1e-6)
    image = torch.rand(1, 24, 40, 3)
    with torch.no_grad():
        expected = enc(image.permute(0, 3, 1, 2)) / SD1.scale_factor
    assert torch.allclose(vae.encode(image), expected, atol=1e-5)


def test_refuses_wrong_files(tmp_path):
    enc, dec = _random_halves(4)
    save_file(enc.state_dict(), str(tmp_path / "taesd_encoder.safetensors"))
    with pytest.raises(CheckpointError, match="taesd_encoder.safetensors is not a TAESD decoder"):
        load_half(tmp_path / "taesd_encoder.safetensors", "decoder")
    save_file(dec.state_dict(), str(tmp_path / "taesd_decoder.safetensors"))
    with pytest.raises(CheckpointError, match="taesd_decoder.safetensors: a 4-channel TAESD decoder, but taef1"):
        load_tiny_vae({"decoder": tmp_path / "taesd_decoder.safetensors"}, "taef1")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes((tmp_path / "taesd_decoder.safetensors").read_bytes()[:3000])
    with pytest.raises(CheckpointError, match="cut.safetensors .*truncated"):
        load_half(cut, "decoder")


# -- previews on the demo model -----------------------------------------------------------------

from pathlib import Path  # noqa: E402

import torch.nn.functional as F  # noqa: E402

from graphflow.executor import Executor  # noqa: E402
from graphflow.images import pil_to_image  # noqa: E402
from graphflow.sampling.preview import preview_method, set_preview_method  # noqa: E402
from graphflow.workflow import load_workflow  # noqa: E402

ROOT = Path(__file__).parent.parent
DEMO_TAESD = ROOT / "graphflow" / "bundled" / "demo_taesd"


def _run_with_previews(registry, method):
    wf = load_workflow(ROOT / "workflows" / "txt2img.json")
    wf.nodes["4"].inputs["batch_size"] = 1
    wf.nodes["5"].inputs["steps"] = 10
    events = []
    saved = preview_method()
    set_preview_method(method)
    try:
        result = Executor(registry).run(wf, on_event=events.append)
    finally:
        set_preview_method(saved)
    assert result.ok, result.error
    previews = [pil_to_image(e["preview"])[0] for e in events if e["type"] == "progress" and "preview" in e]
    return previews, result.values["6"][0][0]


def _distance(preview, final):
    """Mean absolute difference at the final image's size (small previews upscaled bilinearly)."""
    p = F.interpolate(preview.permute(2, 0, 1)[None], size=final.shape[:2], mode="bilinear", align_corners=False)
    return (p[0].permute(1, 2, 0) - final).abs().mean().item()


def test_taesd_previews_are_closer_to_the_final_image(builtin_registry, tmp_folders):
    """The demo TAESD (tools/train_demo_taesd.py, distilled from the demo VAE) in models/vae_approx/:
    --previews taesd sends its decodes, which match the final image better than latent2rgb's."""
    approx = tmp_folders.models / "vae_approx"
    approx.mkdir(parents=True, exist_ok=True)
    linear, final = _run_with_previews(builtin_registry, "latent2rgb")
    fallback, _ = _run_with_previews(builtin_registry, "taesd")  # no TAESD file yet: latent2rgb
    assert len(fallback) == len(linear) and all(torch.equal(a, b) for a, b in zip(fallback, linear))
    none, _ = _run_with_previews(builtin_registry, "none")
    assert none == []

    (approx / "taesd_decoder.safetensors").write_bytes((DEMO_TAESD / "taesd_decoder.safetensors").read_bytes())
    tiny, final_again = _run_with_previews(builtin_registry, "taesd")
    assert torch.equal(final, final_again)  # previews don't change the result
    assert len(tiny) == len(linear) and tiny[-1].shape == (64, 64, 3) and linear[-1].shape == (8, 8, 3)
    d_tiny, d_linear = _distance(tiny[-1], final), _distance(linear[-1], final)
    print(f"\nlast preview vs final image, mean abs difference: taesd {d_tiny:.4f}, latent2rgb {d_linear:.4f}")
    assert d_tiny < 0.5 * d_linear
    mid = len(tiny) // 2
    assert _distance(tiny[mid], final) < _distance(linear[mid], final)


def _call(registry, node_type, **inputs):
    cls = registry.get(node_type)
    node = cls.__new__(cls)
    node.__dict__.update(inputs)
    return node.run()


def test_loadvae_offers_taesd_when_both_halves_are_present(builtin_registry, tmp_folders):
    """TAESD as a fast VAE: listed by LoadVAE (ComfyUI's VAELoader) once both files are there,
    and its decodes of the demo model's latents are close to the demo VAE's."""
    from graphflow.models.checkpoint import load_checkpoint

    approx = tmp_folders.models / "vae_approx"
    approx.mkdir(parents=True, exist_ok=True)
    widget = builtin_registry.get("LoadVAE").input_specs["vae_name"].widget
    (approx / "taesd_decoder.safetensors").write_bytes((DEMO_TAESD / "taesd_decoder.safetensors").read_bytes())
    assert "taesd" not in widget.choices()  # one half is not enough
    (approx / "taesd_encoder.safetensors").write_bytes((DEMO_TAESD / "taesd_encoder.safetensors").read_bytes())
    assert "taesd" in widget.choices()
    tiny = _call(builtin_registry, "LoadVAE", vae_name="taesd")
    demo = load_checkpoint(ROOT / "graphflow" / "bundled" / "checkpoints" / "graphflow-demo.safetensors",
                           device="cpu", dtype=torch.float32)
    assert tiny.latent_format.scale_factor == demo.vae.latent_format.scale_factor  # from the files' metadata
    from graphflow.demo import shapes
    images = torch.from_numpy(shapes.dataset(4, seed=5)[0]).float() / 255
    latents = demo.vae.encode(images)
    reference = demo.vae.decode(latents)
    fast = tiny.decode(latents)
    assert fast.shape == reference.shape
    assert (fast - reference).abs().mean() < 0.05
    assert (tiny.encode(images) - latents).abs().mean() < 0.2 * latents.abs().mean()


def test_cli_previews_flag_sets_the_method(tmp_path, monkeypatch):
    from graphflow import cli
    from graphflow.sampling import preview as preview_module

    chosen = []
    monkeypatch.setattr(preview_module, "set_preview_method", chosen.append)
    (tmp_path / "wf.json").write_text('{"version": 1, "nodes": {}}')
    cli.main(["run", str(tmp_path / "wf.json"), "--previews", "none", "--output-dir", str(tmp_path)])
    assert chosen == ["none"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", str(tmp_path / "wf.json"), "--previews", "vae"])
    assert exit_info.value.code == 2


async def test_server_sends_taesd_frames_over_the_websocket(builtin_registry, tmp_folders, aiohttp_client):
    """`graphflow serve --previews taesd` with the demo TAESD in models/vae_approx/: the websocket's
    preview frames are TAESD decodes (full 64x64 size; latent2rgb's are 8x8) close to the result."""
    import asyncio
    import io
    import json

    import numpy as np
    from aiohttp import WSMsgType
    from PIL import Image

    from graphflow.server.app import create_app
    from graphflow.server.events import parse_preview_frame

    approx = tmp_folders.models / "vae_approx"
    approx.mkdir(parents=True, exist_ok=True)
    (approx / "taesd_decoder.safetensors").write_bytes((DEMO_TAESD / "taesd_decoder.safetensors").read_bytes())
    wf = json.loads((ROOT / "workflows" / "txt2img.json").read_text())
    wf["nodes"]["4"]["inputs"]["batch_size"] = 1
    wf["nodes"]["5"]["inputs"]["steps"] = 10
    saved = preview_method()
    set_preview_method("taesd")
    try:
        client = await aiohttp_client(create_app(builtin_registry, tmp_folders.outputs / "runs.db", web_dir=None))
        ws = await client.ws_connect("/ws?client_id=t")
        body = await (await client.post("/api/runs", json={"workflow": wf, "client_id": "t"})).json()
        frames, done = [], None

        async def collect():
            nonlocal done
            while True:
                msg = await ws.receive()
                if msg.type == WSMsgType.BINARY:
                    frames.append(parse_preview_frame(msg.data))
                elif msg.type == WSMsgType.TEXT:
                    item = json.loads(msg.data)
                    if item["type"] == "run_finished" and item["data"]["run_id"] == body["run_id"]:
                        done = item["data"]
                        return
                else:
                    raise AssertionError(f"websocket ended: {msg.type}")
        await asyncio.wait_for(collect(), 120)
    finally:
        set_preview_method(saved)
    assert done["status"] == "success", done
    assert frames and all(meta["width"] == meta["height"] == 64 for meta, _ in frames)
    (image,) = done["outputs"]["7"]["images"]
    final = np.asarray(Image.open(tmp_folders.outputs / image["subfolder"] / image["filename"]), np.float32) / 255
    last = np.asarray(Image.open(io.BytesIO(frames[-1][1])).convert("RGB"), np.float32) / 255
    assert np.abs(last - final).mean() < 0.1


class _PositionRecorder(torch.nn.Module):
    """A stand-in TAESD half that records where each tile it runs on starts (channels 0 and 1 of
    its input carry the position) and maps its input pointwise, resized by `factor`."""

    def __init__(self, factor, scale):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))
        self.factor, self.scale, self.seen = factor, scale, []

    def forward(self, x):
        self.seen.append((round(float(x[0, 0, 0, 0]) * self.scale), round(float(x[0, 1, 0, 0]) * self.scale),
                          *x.shape[2:]))
        if self.factor > 1:
            return x[:, :3].repeat_interleave(self.factor, 2).repeat_interleave(self.factor, 3)
        return torch.nn.functional.avg_pool2d(x[:, :1], -self.factor).repeat(1, 4, 1, 1)


def test_tiled_decode_and_encode_use_comfyuis_three_tilings():
    """ComfyUI runs TAESD through its generic VAE, so VAEDecodeTiled / VAEEncodeTiled tile it as
    every image VAE (latent tiles 2t x t/2, t/2 x 2t, t x t for decode; pixel tiles t x t, t/2 x 2t,
    2t x t/2 for encode), not the whole image at once."""
    vae = TinyVAE(None, _PositionRecorder(8, 1 / SD1.scale_factor), SD1)
    rows, cols = torch.meshgrid(torch.arange(24.0), torch.arange(20.0), indexing="ij")
    z = torch.stack([rows, cols, rows * 0.01, cols * 0.01])[None]
    out = vae.decode_tiled(z, 128, 32)  # t = 16 latents, overlap 4
    assert vae.decoder.seen == ([(0, c, 24, 8) for c in (0, 4, 8, 12)] + [(r, 0, 8, 20) for r in (0, 4, 8, 12, 16)]
                                + [(0, 0, 16, 16), (0, 12, 16, 8), (12, 0, 12, 16), (12, 12, 12, 8)])
    expected = (z[:, :3] * SD1.scale_factor).clamp(0, 1).repeat_interleave(8, 2).repeat_interleave(8, 3)
    assert torch.allclose(out, expected.permute(0, 2, 3, 1), atol=1e-6)

    vae = TinyVAE(_PositionRecorder(-8, 200), None, SD1)
    rows, cols = torch.meshgrid(torch.arange(192.0), torch.arange(160.0), indexing="ij")
    image = torch.stack([rows / 200, cols / 200, rows * 0], -1)[None]  # TAESD's encoder takes 0..1 pixels
    latent = vae.encode_tiled(image, 64, 16)  # pixel tiles of 64 overlapping by 16
    assert vae.encoder.seen == ([(r, c, min(64, 192 - r), 64) for r in (0, 48, 96, 144) for c in (0, 48, 96)]
                                + [(r, c, 32, min(128, 160 - c)) for r in range(0, 176, 16) for c in (0, 112)]
                                + [(r, c, min(128, 192 - r), 32) for r in (0, 112) for c in range(0, 144, 16)])
    mean = torch.nn.functional.avg_pool2d(image[..., :1].permute(0, 3, 1, 2), 8)
    assert torch.allclose(latent, (mean / SD1.scale_factor).repeat(1, 4, 1, 1), atol=1e-5)


def test_encode_crops_to_multiples_of_8_around_the_centre():
    """ComfyUI's VAE encode (TAESD's too) cuts the remainder of 8 from both sides, the extra pixel
    at the bottom / right: 27 x 30 keeps rows 1..24 and columns 3..26."""
    enc, dec = _random_halves(4)
    vae = TinyVAE(enc, dec, SD1)
    image = torch.rand(1, 27, 30, 3, generator=torch.Generator().manual_seed(0))
    centre = image[:, 1:25, 3:27].contiguous()
    assert torch.equal(vae.encode(image), vae.encode(centre))
    assert torch.equal(vae.encode_tiled(image, 64, 16), vae.encode_tiled(centre, 64, 16))
