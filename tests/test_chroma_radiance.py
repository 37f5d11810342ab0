"""Chroma Radiance (graphflow.models.chroma.ChromaRadiance) on tiny random weights. diffusers has no
Radiance, so: its trunk against our Chroma (itself checked against diffusers in test_chroma) with
the same weights; its pixel head against a plain loop over patches written here from the
description (a per-patch MLP whose weights the patch's hidden state generates, fed each pixel's
channels and cosine features of its place in the patch); tiled against untiled head runs;
ChromaRadianceOptions' sigma window; the pixel_space VAE; detection; a ComfyUI graph end to end
whose one Euler step is checked against the network called directly.
"""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from graphflow.models.checkpoint import load_diffusion_model
from graphflow.models.chroma import Chroma, ChromaConfig, ChromaRadiance, ChromaRadianceConfig, radiance_options
from graphflow.models.flux import image_ids
from graphflow.testing import chroma_radiance_config, write_chroma_radiance

TOL = 1e-5


def run_node(cls, **inputs):
    node = cls.__new__(cls)
    node.__dict__.update(inputs)
    return node.run()


@pytest.fixture(params=["linear", "conv"])
def radiance(request, tmp_path):
    path = write_chroma_radiance(tmp_path / "radiance.safetensors", dtype=torch.float32, seed=4,
                                 final_head=request.param)
    return load_diffusion_model(path, device="cpu", dtype=torch.float32)


def inputs(cfg, b=2, h=16, w=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 3, h, w, generator=g), torch.tensor([0.35, 0.9])[:b],
            torch.randn(b, 5, cfg.context_in_dim, generator=g))


def head_states(net, *args, **kwargs):
    """The network's output and the patches' hidden states its head was given [B*N, hidden]."""
    seen = []
    hook = net.nerf_blocks[0].register_forward_pre_hook(lambda module, args: seen.append(args[1]))
    try:
        with torch.no_grad():
            out = net(*args, **kwargs)
    finally:
        hook.remove()
    return out, torch.cat(seen)


# -- (a) the trunk is Chroma's ------------------------------------------------------------------

def test_trunk_equals_chroma_with_the_same_weights(radiance):
    """Chroma with img_in = the patch conv as a Linear on the patches' pixels (channel, row,
    column: what the conv sums over) and Radiance's trunk weights; its final layer applied to the
    hidden states Radiance's head receives must give Chroma's own output, for an odd-sized image
    (circular padding to whole patches), a text mask and a FluxGuidance value."""
    net, cfg = radiance.unet, radiance.unet.config
    p = cfg.patch_size
    chroma = Chroma(ChromaConfig(**{f: getattr(cfg, f) for f in ChromaConfig.__dataclass_fields__}
                                 | {"in_channels": 3 * p * p, "out_channels": 5})).eval()
    shared = {k: v for k, v in net.state_dict().items() if not k.startswith(("img_in_patch.", "nerf_"))}
    missing, unexpected = chroma.load_state_dict(shared, strict=False)
    assert sorted(missing) == ["final_layer.linear.bias", "final_layer.linear.weight", "img_in.bias", "img_in.weight"]
    assert not unexpected
    with torch.no_grad():
        chroma.img_in.weight.copy_(net.img_in_patch.weight.reshape(cfg.hidden_size, -1))
        chroma.img_in.bias.copy_(net.img_in_patch.bias)

    x, sigma, context = inputs(cfg, h=13, w=21)
    text_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    guidance = torch.tensor([0.0, 2.5])
    out, states = head_states(net, x, sigma, context, guidance=guidance, text_mask=text_mask)
    assert out.shape == x.shape
    padded = F.pad(x, (0, 3, 0, 3), mode="circular")  # to 16 x 24: ComfyUI's pad_to_patch_size
    b, h, w = 2, 16 // p, 24 // p
    patches = F.unfold(padded, p, stride=p).transpose(1, 2)  # [B, N, 3 * p * p]
    with torch.no_grad():
        expected = chroma.forward_packed(patches, image_ids(h, w, b, "cpu"), context, torch.zeros(b, 5, 3), sigma,
                                         guidance, text_mask)
        mods = chroma.modulation_vectors(sigma, guidance, torch.float32)
        ours = chroma.final_layer.modulated(states.reshape(b, h * w, -1), mods[:, -2:-1], mods[:, -1:])
    assert (ours - expected).abs().max() < TOL * expected.abs().max()


# -- (b) the pixel head against a plain loop over patches ---------------------------------------

def reference_head(net, cfg, x, states):
    """Per patch (row-major), per pixel: the pixel's channels and cos(pi fx u) cos(pi fy v) / (1 +
    fx fy) (u, v its column and row over 0..1, fx, fy < max_freqs) -> a Linear to the head's width;
    then per block, with three matrices made from the patch's hidden state by that block's
    generator Linear and each column scaled to unit length: z += (silu(n(z) A) * (n(z) B)) C, n the
    RMS norm; the patches' features put back in place; the final RMS norm and Linear per pixel
    (or 3x3 conv over the whole image)."""
    b, c, hh, ww = x.shape
    p, freqs, width = cfg.patch_size, cfg.nerf_max_freqs, cfg.nerf_hidden_size
    inner = width * cfg.nerf_mlp_ratio
    sd = {k: v.double() for k, v in net.state_dict().items()}
    rms = lambda t, scale: t / torch.sqrt((t * t).mean(-1, keepdim=True) + 1e-6) * scale  # noqa: E731
    place = [i / (p - 1) for i in range(p)]
    position = torch.tensor([[math.cos(math.pi * fx * place[u]) * math.cos(math.pi * fy * place[v]) / (1 + fx * fy)
                              for fx in range(freqs) for fy in range(freqs)]
                             for v in range(p) for u in range(p)], dtype=torch.float64)  # [p*p, freqs^2]
    features = torch.zeros(b, width, hh, ww, dtype=torch.float64)
    columns = ww // p
    for bi in range(b):
        for n in range(hh // p * columns):
            row, col = divmod(n, columns)
            block = x[bi, :, row * p:(row + 1) * p, col * p:(col + 1) * p].double()  # [c, p, p]
            pixels = block.permute(1, 2, 0).reshape(p * p, c)  # pixel (v, u) at v * p + u
            z = torch.cat([pixels, position], 1) @ sd["nerf_image_embedder.embedder.0.weight"].T \
                + sd["nerf_image_embedder.embedder.0.bias"]
            s = states[bi * hh // p * columns + n].double()
            for k in range(cfg.nerf_depth):
                made = sd[f"nerf_blocks.{k}.param_generator.weight"] @ s + sd[f"nerf_blocks.{k}.param_generator.bias"]
                a = made[:width * inner].reshape(width, inner)
                bm = made[width * inner:2 * width * inner].reshape(width, inner)
                cm = made[2 * width * inner:].reshape(inner, width)
                a, bm, cm = (m / m.norm(dim=0, keepdim=True) for m in (a, bm, cm))
                nz = rms(z, sd[f"nerf_blocks.{k}.norm.scale"])
                z = z + (torch.nn.functional.silu(nz @ a) * (nz @ bm)) @ cm
            features[bi, :, row * p:(row + 1) * p, col * p:(col + 1) * p] = z.T.reshape(width, p, p)
    if cfg.nerf_final_head == "conv":
        normed = rms(features.permute(0, 2, 3, 1), sd["nerf_final_layer_conv.norm.scale"]).permute(0, 3, 1, 2)
        return F.conv2d(normed, sd["nerf_final_layer_conv.conv.weight"], sd["nerf_final_layer_conv.conv.bias"],
                        padding=1)
    normed = rms(features.permute(0, 2, 3, 1), sd["nerf_final_layer.norm.scale"])
    return (normed @ sd["nerf_final_layer.linear.weight"].T + sd["nerf_final_layer.linear.bias"]).permute(0, 3, 1, 2)


def test_pixel_head_matches_a_plain_per_patch_loop(radiance):
    net, cfg = radiance.unet, radiance.unet.config
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 16, 24, generator=g)
    hidden = torch.randn(2, 6, cfg.hidden_size, generator=g)
    with torch.no_grad():
        ours = net.nerf_head(x, hidden, tile_size=0)
    expected = reference_head(net, cfg, x, hidden.reshape(12, -1))
    assert ours.shape == x.shape
    assert (ours.double() - expected).abs().max() < TOL * expected.abs().max()
    # and the whole network's head is that head on the noisy input and the trunk's states
    xs, sigma, context = inputs(cfg)
    out, states = head_states(net, xs, sigma, context)
    expected = reference_head(net, cfg, xs, states)
    assert (out.double() - expected).abs().max() < TOL * expected.abs().max()


def test_position_features_are_the_cosine_products():
    from graphflow.models.chroma import patch_position_features

    f = patch_position_features(4, 3)
    assert f.shape == (1, 16, 9) and f.dtype == torch.float32
    # pixel (row 1, column 3) = index 7; feature (fx 2, fy 1) = index 7: cos(2 pi) cos(pi / 3) / 3
    assert abs(float(f[0, 7, 7]) - math.cos(2 * math.pi) * math.cos(math.pi / 3) / 3) < 1e-6
    assert torch.equal(f[0, :, 0], torch.ones(16))  # fx = fy = 0: constant


# -- (c) tiling changes memory, not numbers ----------------------------------------------------

def test_tiled_head_equals_untiled(radiance):
    net, cfg = radiance.unet, radiance.unet.config
    g = torch.Generator().manual_seed(3)
    x, hidden = torch.randn(2, 3, 16, 24, generator=g), torch.randn(2, 6, cfg.hidden_size, generator=g)
    calls = []
    hook = net.nerf_image_embedder.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    with torch.no_grad():
        whole = net.nerf_head(x, hidden, tile_size=0)
        tiled = {tile: net.nerf_head(x, hidden, tile_size=tile) for tile in (1, 4, 5, 6)}
    hook.remove()
    # rows = patches x batch: 12 at once; tiles of 1, 4, 5 patches x 2; 6 patches is no tiling (n <= tile)
    assert calls == [12, *[2] * 6, 8, 4, 10, 2, 12]
    for tile, out in tiled.items():
        assert (out - whole).abs().max() <= 1e-6 * whole.abs().max(), tile
    # the option reaches the network's calls; the default (32 patches) does not tile 6
    xs, sigma, context = inputs(cfg)
    with torch.no_grad():
        plain = net(xs, sigma, context)
        with radiance_options(nerf_tile_size=1):
            one = net(xs, sigma, context)
    assert (one - plain).abs().max() <= TOL * plain.abs().max()  # float rounding of other matmul shapes
    with pytest.raises(ValueError, match="unknown Chroma Radiance options"):
        with radiance_options(nerf_depth=1):
            pass


# -- (d) ChromaRadianceOptions only between its sigmas ------------------------------------------

def tiles_seen(model, monkeypatch, sigmas):
    """The tile size the head was asked for at each sigma, the model called through the sampler's denoiser."""
    from graphflow.sampling.flow_sampling import FlowDenoiser

    seen = []
    original = ChromaRadiance.nerf_head
    monkeypatch.setattr(ChromaRadiance, "nerf_head",
                        lambda self, x, hidden, tile_size=None: seen.append(tile_size) or original(self, x, hidden,
                                                                                                 tile_size))
    cfg = model.unet.config
    denoiser = FlowDenoiser(model)
    x, _, context = inputs(cfg, b=1)
    with torch.no_grad():
        for s in sigmas:
            denoiser(x, torch.tensor([s]), context)
    return seen


def test_radiance_options_apply_between_start_and_end_sigma(radiance, monkeypatch):
    from nodes.chroma_radiance import ChromaRadianceOptions

    # sigmas exact in float32: the window compares the step's float32 sigma with the node's floats, as ComfyUI
    sigmas = [1.0, 0.75, 0.5, 0.25, 0.125, 0.0]
    assert run_node(ChromaRadianceOptions, model=radiance, preserve_wrapper=True, start_sigma=0.75, end_sigma=0.25,
                    nerf_tile_size=-1) is radiance  # nothing set: the model as it was (ComfyUI's)
    patched = run_node(ChromaRadianceOptions, model=radiance, preserve_wrapper=True, start_sigma=0.75,
                       end_sigma=0.25, nerf_tile_size=2)
    assert patched is not radiance and not getattr(radiance, "network_wrappers", ())
    assert tiles_seen(patched, monkeypatch, sigmas) == [None, 2, 2, 2, None, None]  # both ends included
    # a second node on top: with preserve_wrapper the earlier one still applies and wins where both do
    # (ComfyUI's new wrapper calls the old one, which sets its options last); without it, it is gone
    kept = run_node(ChromaRadianceOptions, model=patched, preserve_wrapper=True, start_sigma=1.0, end_sigma=0.5,
                    nerf_tile_size=0)
    assert tiles_seen(kept, monkeypatch, sigmas) == [0, 2, 2, 2, None, None]
    dropped = run_node(ChromaRadianceOptions, model=patched, preserve_wrapper=False, start_sigma=1.0, end_sigma=0.5,
                       nerf_tile_size=0)
    assert tiles_seen(dropped, monkeypatch, sigmas) == [0, 0, 0, None, None, None]
    # the image does not depend on the tile size
    x, sigma, context = inputs(radiance.unet.config, b=1)
    from graphflow.sampling.flow_sampling import FlowDenoiser
    with torch.no_grad():
        assert torch.allclose(FlowDenoiser(dropped)(x, torch.tensor([0.7]), context),
                              FlowDenoiser(radiance)(x, torch.tensor([0.7]), context), atol=1e-6)


# -- (e) the pixel_space VAE and the latent format -------------------------------------------

def test_pixel_space_vae_round_trip_is_exact(tmp_folders):
    from graphflow.models.latent_formats import CHROMA_RADIANCE
    from graphflow.sampling.preview import make_preview
    from nodes.loaders import LoadVAE, _vae_choices
    from nodes.vae import VAEDecode, VAEEncode

    assert _vae_choices()[-1] == "pixel_space"  # ComfyUI lists it last, with no file behind it
    vae = run_node(LoadVAE, vae_name="pixel_space")
    assert (vae.downscale, vae.latent_channels, vae.latent_format) == (1, 3, CHROMA_RADIANCE)
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (2, 7, 5, 4), generator=g).float() / 256  # RGBA, odd size; 2x - 1 exact
    latent = run_node(VAEEncode, pixels=image, vae=vae, tiled=False)["samples"]
    assert latent.shape == (2, 3, 7, 5) and latent.dtype == torch.float32  # channels first, nothing cropped
    assert torch.equal(latent, image[..., :3].permute(0, 3, 1, 2) * 2 - 1)
    assert latent.min() >= -1 and latent.max() < 1
    back = run_node(VAEDecode, samples={"samples": latent}, vae=vae, tiled=False)
    assert torch.equal(back, image[..., :3])
    assert torch.equal(run_node(VAEDecode, samples={"samples": latent}, vae=vae, tiled=True, tile_size=64,
                                overlap=0, temporal_size=64, temporal_overlap=8), back)
    # 8-bit images come back as the same 8-bit values
    image8 = torch.randint(0, 256, (1, 6, 9, 3), generator=g).float() / 255
    again = vae.decode(vae.encode(image8))
    assert torch.equal((again * 255).round(), (image8 * 255).round())
    # out of range: clamped as ComfyUI's decode does; the preview is the decode itself
    wild = torch.tensor([-3.0, -1.0, 0.0, 0.5, 1.0, 2.0]).reshape(1, 3, 1, 2)
    assert torch.equal(vae.decode(wild).permute(0, 3, 1, 2).flatten(),
                       torch.tensor([0.0, 0.0, 0.5, 0.75, 1.0, 1.0]))
    assert torch.equal(CHROMA_RADIANCE.preview(latent), back)
    assert torch.equal(make_preview(latent, CHROMA_RADIANCE), back[:1])  # the sampler's (no TAESD for it)
    assert torch.equal(CHROMA_RADIANCE.process_in(latent), latent)
    assert torch.equal(CHROMA_RADIANCE.process_out(latent), latent)
    with pytest.raises(ValueError, match="pixel_space VAE decodes"):
        vae.decode(torch.zeros(1, 16, 4, 4))


def test_empty_latent_is_the_image_size(tmp_folders):
    from nodes.chroma_radiance import EmptyChromaRadianceLatent

    latent = run_node(EmptyChromaRadianceLatent, width=48, height=32, batch_size=2)["samples"]
    assert latent.shape == (2, 3, 32, 48) and not latent.any()


# -- detection -----------------------------------------------------------------------------------

def test_radiance_detected_from_header_at_full_size():
    from graphflow.models.file_kind import identify
    from graphflow.models.flow_architecture import detect_flow_model
    from graphflow.models.latent_formats import CHROMA_RADIANCE

    with torch.device("meta"):
        net = ChromaRadiance(ChromaRadianceConfig())
        shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes["img_in_patch.weight"] == (3072, 3, 16, 16)
    assert shapes["nerf_image_embedder.embedder.0.weight"] == (64, 3 + 64)
    assert shapes["nerf_blocks.3.param_generator.weight"] == (3 * 64 * 64 * 4, 3072)
    assert not any(k.startswith(("img_in.", "final_layer.")) for k in shapes)
    for head in ("linear", "conv"):
        if head == "conv":
            with torch.device("meta"):
                shapes = {k: tuple(v.shape) for k, v in
                          ChromaRadiance(ChromaRadianceConfig(nerf_final_head="conv")).state_dict().items()}
            assert shapes["nerf_final_layer_conv.conv.weight"] == (3, 64, 3, 3)
        for prefix in ("", "model.diffusion_model."):
            info = detect_flow_model({prefix + k: s for k, s in shapes.items()})
            assert (info.arch, info.family, info.prefix) == ("chroma", "chroma_radiance", prefix)
            assert info.config == ChromaRadianceConfig(nerf_final_head=head)  # ComfyUI's fixed sizes, read back
            assert info.config.modulations == 344 and info.latent_format is CHROMA_RADIANCE
            assert any("pixel_space" in note for note in info.notes)
            kind = identify({prefix + k: s for k, s in shapes.items()})
            assert (kind.name, kind.folder) == ("Chroma Radiance (pixel space) diffusion model", "diffusion_models")


def test_loaded_radiance_samples_as_chroma(radiance, tmp_path, capsys):
    from graphflow.cli import main
    from graphflow.sampling.flow_sampling import default_flow_schedule, flow_vectors

    assert radiance.arch == "chroma" and radiance.latent_format.name == "chroma_radiance"
    assert radiance.in_channels == 3 and radiance.adm_channels == 0 and not radiance.guidance_embed
    assert radiance.unet.config == chroma_radiance_config(final_head=radiance.unet.config.nerf_final_head)
    schedule = default_flow_schedule(radiance)  # ComfyUI's ChromaRadiance is a Chroma: ModelSamplingFlux, mu 1.15
    assert schedule.kind == "flux"
    assert abs(float(schedule.sigma(torch.tensor(0.5))) - 1 / (1 + math.exp(-1.15))) < 1e-6
    assert flow_vectors(radiance, {}, 1) == (None, None)
    with pytest.raises(ValueError, match=r"images \[B, 3, H, W\]"):
        radiance(torch.zeros(1, 16, 8, 8), torch.tensor([0.5]), torch.zeros(1, 2, 32))
    path = write_chroma_radiance(tmp_path / "Chroma1-Radiance.safetensors")
    assert main(["inspect", str(path)]) in (0, None)
    out = capsys.readouterr().out
    assert "architecture: Chroma Radiance (pixel space) [chroma, chroma_radiance]" in out
    assert "8x8 pixel patches of 3 ch" in out and "NeRF head 2 blocks of width 8" in out and "pixel_space" in out


# -- (f) a ComfyUI graph end to end ------------------------------------------------------------

def test_radiance_comfyui_graph_runs_and_one_step_matches_the_network(tmp_folders):
    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import write_flow_text_encoder
    from graphflow.workflow import parse_workflow

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders"):
        (m / sub).mkdir()
    write_chroma_radiance(m / "diffusion_models" / "Chroma1-Radiance.safetensors", dtype=torch.float32, seed=6,
                          final_head="conv")
    write_flow_text_encoder(m / "text_encoders" / "t5xxl_fp16.safetensors", "t5xxl", dtype=torch.float32, seed=1)
    cfg_scale = 3.0
    graph = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "Chroma1-Radiance.safetensors",
                                                     "weight_dtype": "default"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "t5xxl_fp16.safetensors", "type": "chroma",
                                                     "device": "default"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk", "clip": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["2", 0]}},
        "5": {"class_type": "EmptyChromaRadianceLatentImage", "inputs": {"width": 48, "height": 32,
                                                                          "batch_size": 1}},
        "10": {"class_type": "ChromaRadianceOptions", "inputs": {"model": ["1", 0], "preserve_wrapper": True,
                                                                 "start_sigma": 1.0, "end_sigma": 0.0,
                                                                 "nerf_tile_size": 5}},
        "6": {"class_type": "KSampler", "inputs": {"model": ["10", 0], "positive": ["3", 0], "negative": ["4", 0],
                                                   "latent_image": ["5", 0], "seed": 7, "steps": 1, "cfg": cfg_scale,
                                                   "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
        "7": {"class_type": "VAELoader", "inputs": {"vae_name": "pixel_space"}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["7", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "radiance"}},
    }
    registry = Registry().load_builtin()
    result = Executor(registry).run(parse_workflow(json.loads(json.dumps(graph)), registry),
                                    outputs=["9", "1", "3", "4"])
    assert result.ok, json.dumps(result.error, default=str)[:3000]
    assert len(list(tmp_folders.outputs.rglob("radiance*.png"))) == 1
    image, samples = result.values["8"][0], result.values["6"][0]["samples"]
    assert image.shape == (1, 32, 48, 3) and samples.shape == (1, 3, 32, 48)

    # one Euler step from sigma 1 (noise alone) to 0 lands on the CFG-combined x0 = x - v
    model = result.values["1"][0]
    [(cond, _)], [(uncond, _)] = result.values["3"][0], result.values["4"][0]
    x = initial_noise(torch.zeros(1, 3, 32, 48), 7)
    sigma = torch.ones(1)
    with torch.no_grad():
        v_cond, v_uncond = model(x, sigma, cond.float()), model(x, sigma, uncond.float())
    expected = x - (v_uncond + cfg_scale * (v_cond - v_uncond))
    assert float((expected - x).abs().mean()) > 0.05  # the model moved the image
    assert float((samples - expected).abs().max()) < 1e-4 * float(expected.abs().max())
    assert torch.allclose(image, ((expected + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1), atol=1e-5)
