"""ComfyUI parity of the CLIP-vision family of nodes (unCLIP, style models, PhotoMaker, Stable
Zero123, Stable Cascade, GLIGEN, upscale models): behaviour an imported graph depends on, checked
against small hand-built tensors and closed forms."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn


def run_node(name, **inputs):
    from graphflow.registry import Registry

    cls = Registry().load_builtin().get(name)
    node = cls.__new__(cls)
    node.__dict__.update(inputs)
    return node.run()


# -- Stable Cascade ------------------------------------------------------------------------------

class _SeeingEncoder:
    """A Stage C 'VAE' that records the pixels it is given and returns a latent of the right shape."""
    latent_channels, downscale = 16, 32

    def encode(self, pixels):
        self.seen = pixels.clone()
        b, h, w, _ = pixels.shape
        return torch.zeros(b, 16, h // 32, w // 32)


def test_stage_c_vae_encode_centre_crops_to_the_aspect_and_does_not_clamp():
    """StableCascade_StageC_VAEEncode: ComfyUI's common_upscale(bicubic, crop "center"): 1000x600 at
    compression 42 is a 23x14 latent, 736x448 pixels; the picture's aspect (1.667) is wider than
    that (1.643), so round((1000 - 1000 * 1.643 / 1.667) / 2) = 7 columns go on each side first.
    The bicubic overshoot of a hard edge is handed to the encoder as it is."""
    image = torch.zeros(1, 600, 1000, 3)
    image[:, :, 500:] = 1.0  # a hard edge: bicubic overshoots past 0..1 beside it
    vae = _SeeingEncoder()
    stage_c, stage_b = run_node("StableCascadeStageCVAEEncode", image=image, vae=vae, compression=42)
    assert stage_c["samples"].shape == (1, 16, 14, 23)
    assert stage_b["samples"].shape == (1, 4, 150, 250)
    cut = round((1000 - 1000 * ((736 / 448) / (1000 / 600))) / 2)
    assert cut == 7
    expected = F.interpolate(image.movedim(-1, 1)[..., cut:1000 - cut], size=(448, 736), mode="bicubic")
    assert torch.allclose(vae.seen, expected.movedim(1, -1), atol=1e-6)
    assert vae.seen.min() < -0.01 and vae.seen.max() > 1.01


class _PixelsOut(nn.Module):
    """Stands in for the EfficientNet: hands back the pixels it was given (16 channels wide)."""
    def __init__(self):
        super().__init__()
        self.mapper = nn.Sequential(nn.Conv2d(3, 16, 1, bias=False))

    def forward(self, x):
        return x


def test_stage_c_encoder_crops_the_remainder_around_the_centre():
    """ComfyUI's VAE encode crops a size that is not a multiple of the downscale (32) around the
    centre: (size % 32) // 2 from the top / left. 75 rows -> 64 from row 5; 100 columns -> 96 from 2."""
    from graphflow.models.stage_c_encoder import StageCEncoderVAE

    image = torch.rand(1, 75, 100, 3, generator=torch.Generator().manual_seed(0))
    seen = StageCEncoderVAE(_PixelsOut()).encode(image)
    assert torch.equal(seen, image[:, 5:69, 2:98].movedim(-1, 1))


class _TileMeanOut(nn.Module):
    """Stands in for the EfficientNet: 32x32 block means minus the mean over the whole input (so a
    tile's output depends on where the tile is), through a 1x1 mapper to 16 channels."""
    def __init__(self):
        super().__init__()
        self.mapper = nn.Sequential(nn.Conv2d(3, 16, 1, bias=False))
        nn.init.normal_(self.mapper[0].weight, generator=torch.Generator().manual_seed(1))

    def forward(self, x):
        blocks = F.avg_pool2d(x, 32)
        return self.mapper(blocks - blocks.mean((2, 3), keepdim=True))


def test_stage_c_encoder_is_tiled_under_vae_encode_tiled():
    """ComfyUI loads the Stage C encoder as a generic image VAE (downscale 32, its input mapped to
    -1..1 and back by the encoder itself), so VAEEncodeTiled runs it over three tilings of pixel
    tiles, averaged. 128x128 pixels, tile 64, overlap 0: tiles of 64x64, 32x128 and 128x32, i.e. 2x2
    blocks, whole block rows and whole block columns of the 4x4 latent; with no overlap there is no
    feather, so each tiling subtracts its tile's mean: the latent is B - (M2x2 + Mrow + Mcol) / 3."""
    from graphflow.models.stage_c_encoder import StageCEncoderVAE

    module = _TileMeanOut()
    vae = StageCEncoderVAE(module)
    image = torch.rand(1, 128, 128, 3, generator=torch.Generator().manual_seed(0))
    blocks = F.avg_pool2d(image.movedim(-1, 1), 32)  # [1, 3, 4, 4]
    quads = F.avg_pool2d(blocks, 2).repeat_interleave(2, 2).repeat_interleave(2, 3)
    expected = module.mapper(blocks - (quads + blocks.mean(3, keepdim=True) + blocks.mean(2, keepdim=True)) / 3)
    sizes = {"tile_size": 64, "overlap": 0, "temporal_size": 64, "temporal_overlap": 8}
    tiled = run_node("VAEEncode", pixels=image, vae=vae, tiled=True, **sizes)["samples"]
    assert tiled.shape == (1, 16, 4, 4)
    torch.testing.assert_close(tiled, expected.detach(), atol=1e-5, rtol=1e-5)
    whole = run_node("VAEEncode", pixels=image, vae=vae, tiled=False, **sizes)["samples"]
    assert not torch.allclose(tiled, whole, atol=1e-3)  # not the whole-picture encode


# -- GLIGEN --------------------------------------------------------------------------------------

def test_gligen_box_phrase_is_the_unprojected_pooled_output(tmp_path):
    """GLIGENTextBoxApply encodes the phrase with ComfyUI's return_pooled="unprojected": a CLIP-L
    carrying a text projection (e.g. a clip_l.safetensors with text_projection.weight) gives the
    pooled output before it. Boxes: (pooled, height // 8, width // 8, y // 8, x // 8)."""
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.models.gligen import load_gligen
    from graphflow.testing import write_checkpoint, write_gligen

    ckpt = load_checkpoint(write_checkpoint(tmp_path / "sd1.safetensors", "sd1", dtype=torch.float32), device="cpu",
                           dtype=torch.float32)
    gligen = load_gligen(write_gligen(tmp_path / "gligen.safetensors", seed=1))
    clip = ckpt.clip
    tower = clip.towers[0]
    _, plain = clip.encode("a red ball")  # no projection in an SD1 checkpoint: pooled = unprojected
    width = plain.shape[-1]
    projection = nn.Linear(width, width, bias=False)
    nn.init.normal_(projection.weight, generator=torch.Generator().manual_seed(0))
    tower.model.text_projection = projection
    _, projected = clip.encode("a red ball")
    assert torch.allclose(projected, plain @ projection.weight.T.detach(), atol=1e-5)
    [(_, options)] = run_node("GLIGENTextBox", conditioning_to=[(torch.zeros(1, 77, width), {})], clip=clip,
                              gligen_textbox_model=gligen, text="a red ball", width=70, height=33, x=15, y=9)
    [(pooled, h, w, y, x)] = options["gligen"].boxes
    assert (h, w, y, x) == (4, 8, 1, 1)
    assert torch.allclose(pooled, plain, atol=1e-6)


# -- unCLIP ---------------------------------------------------------------------------------------

def test_unclip_ignores_embedding_statistics_in_the_file(tmp_path):
    """ComfyUI never loads an unCLIP checkpoint's noise_augmentor.* tensors (data_mean / data_std are
    non-persistent buffers, zeros and ones): a file that carries statistics conditions the model as
    one without. y = [sqrt(abar_n) e + sqrt(1 - abar_n) noise, timestep embedding of n]."""
    from diffusers import DDPMScheduler
    from diffusers.models.embeddings import get_timestep_embedding
    from safetensors.torch import load_file, save_file

    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.models.clip_vision import ClipVisionOutput
    from graphflow.models.unclip import unclip_adm
    from graphflow.testing import UNCLIP_EMBED, write_unclip_checkpoint

    path = write_unclip_checkpoint(tmp_path / "unclip.safetensors", dtype=torch.float32)
    state = load_file(str(path))
    g = torch.Generator().manual_seed(1)
    state["noise_augmentor.data_mean"] = torch.randn(1, UNCLIP_EMBED, generator=g)
    state["noise_augmentor.data_std"] = torch.rand(1, UNCLIP_EMBED, generator=g) + 0.5
    save_file(state, str(path))
    augmentor = load_checkpoint(path, device="cpu", dtype=torch.float32).model.noise_augmentor

    e = torch.randn(1, UNCLIP_EMBED, generator=g)
    level = round(999 * 0.3)
    noise = torch.randn(1, UNCLIP_EMBED, generator=torch.Generator().manual_seed(5 - 10 + 2 ** 64))
    abar = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2").alphas_cumprod[level]
    expected = torch.cat([abar.sqrt() * e + (1 - abar).sqrt() * noise,
                          get_timestep_embedding(torch.tensor([level]), UNCLIP_EMBED, True, 0)], dim=1)
    entry = {"clip_vision_output": ClipVisionOutput(e[:, None], e, e[:, None]), "strength": 1.0,
             "noise_augmentation": 0.3}
    torch.testing.assert_close(unclip_adm([entry], augmentor, seed=5), expected, atol=1e-5, rtol=0)
