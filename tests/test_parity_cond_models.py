"""Parity audit of the conditioning-model nodes against ComfyUI's behaviour: unCLIP conditioning on
SDXL ("revision") and on Stable Cascade Stage C, checked against closed forms on small tensors."""

from dataclasses import replace

import torch
from diffusers import DDPMScheduler
from diffusers.models.embeddings import get_timestep_embedding

from graphflow.models.clip_vision import ClipVisionOutput
from graphflow.models.diffusion_model import DiffusionModel
from graphflow.sampling.guidance import prepare_conds
from tests.test_nodes_image_mask import call
from tests.test_unet import TINY, random_unet

G_WIDTH = 1280  # CLIP-G's image embedding, SDXL's pooled width


def _output(embeds):
    return ClipVisionOutput(embeds[:, None], embeds, embeds[:, None])


def _comfy_stream(seed: int, width: int, draws: int) -> list[torch.Tensor]:
    """ComfyUI's noise: torch.manual_seed(seed) on the global CPU generator, then [1, width] draws."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return [torch.randn(1, width) for _ in range(draws)]


def test_sdxl_takes_unclip_conditioning_as_its_pooled_vector(builtin_registry):
    """unCLIPConditioning on an SDXL model (ComfyUI's revision): the pooled part of y is the CLIP-G
    image embedding noise-augmented (level round(999 a), noise of seed - 10) times strength; two
    images: their sum augmented again at level 0 with the stream's next noise. The size part and
    entries without unCLIP conditioning are unchanged."""
    model = DiffusionModel(random_unet(replace(TINY["sdxl"], adm_in_channels=G_WIDTH + 6 * 256)), "sdxl")
    g = torch.Generator().manual_seed(4)
    a, b, pooled = (torch.randn(1, G_WIDTH, generator=g) for _ in range(3))
    text = [(torch.randn(1, 3, 2048, generator=g), {"pooled_output": pooled})]
    one = call(builtin_registry, "UnCLIPConditioning", conditioning=text, clip_vision_output=_output(a),
               strength=0.8, noise_augmentation=0.3)
    two = call(builtin_registry, "UnCLIPConditioning", conditioning=one, clip_vision_output=_output(b),
               strength=1.5, noise_augmentation=0.0)
    shape, seed = (1, 4, 8, 8), 12
    ys = [prepare_conds(c, model, shape, torch.device("cpu"), seed=seed)[0].y for c in (text, one, two)]

    abar = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2").alphas_cumprod.double()

    def q(e, level, noise):
        return (abar[level].sqrt() * e + (1 - abar[level]).sqrt() * noise).float()

    sizes = model.encode_adm({}, 64, 64)[:, G_WIDTH:]
    torch.testing.assert_close(ys[0], torch.cat([pooled, sizes], 1), atol=0, rtol=0)
    first, second = _comfy_stream(seed - 10, G_WIDTH, 2)
    torch.testing.assert_close(ys[1][:, :G_WIDTH], 0.8 * q(a, 300, first), atol=1e-5, rtol=0)
    total = 0.8 * q(a, 300, first) + 1.5 * q(b, 0, first)
    torch.testing.assert_close(ys[2][:, :G_WIDTH], q(total, 0, second), atol=1e-5, rtol=2e-5)
    for y in ys[1:]:
        torch.testing.assert_close(y[:, G_WIDTH:], sizes, atol=0, rtol=0)
    assert (ys[1][:, :G_WIDTH] - 0.8 * a).abs().max() > 0.1  # the augmentation is live at level 300
    # the noise-level embedding is not part of SDXL's vector (ComfyUI keeps the first 1280 only)
    assert not torch.allclose(get_timestep_embedding(torch.tensor([300]), G_WIDTH, True, 0), ys[1][:, :G_WIDTH])


def test_stable_cascade_stage_c_takes_unclip_image_embeddings(builtin_registry, tmp_path):
    """unCLIPConditioning on Stage C (ComfyUI's image variations): every image embedding times its
    entry's strength becomes one clip_img token (noise_augmentation unused); the network's output
    is diffusers' StableCascadeUNet given that clip_img. Without it, one zero embedding."""
    from diffusers.loaders.single_file_utils import convert_stable_cascade_unet_single_file_to_diffusers
    from safetensors.torch import load_file

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.testing import write_stable_cascade
    from tests.test_stable_cascade import diffusers_unet

    path = write_stable_cascade(tmp_path / "stage_c.safetensors", "c", seed=3)
    model = load_diffusion_model(path)
    config = model.unet.config
    theirs = diffusers_unet(config)
    theirs.load_state_dict(convert_stable_cascade_unet_single_file_to_diffusers(load_file(str(path))))
    g = torch.Generator().manual_seed(1)
    width = config.clip_image_width
    a, b = torch.randn(2, width, generator=g), torch.randn(1, width, generator=g)
    text, pooled = torch.randn(1, 77, config.clip_text_width, generator=g), torch.randn(1, config.clip_pooled_width, generator=g)
    plain = [(text, {"pooled_output": pooled})]
    one = call(builtin_registry, "UnCLIPConditioning", conditioning=plain, clip_vision_output=_output(a),
               strength=0.5, noise_augmentation=0.7)
    two = call(builtin_registry, "UnCLIPConditioning", conditioning=one, clip_vision_output=_output(b),
               strength=2.0, noise_augmentation=0.0)
    x, r = torch.randn(2, config.in_channels, 12, 10, generator=g), torch.tensor([0.3, 0.8])
    for conditioning, images in ((plain, torch.zeros(1, 1, width)), (two, torch.cat([0.5 * a, 2.0 * b])[None])):
        (cond,) = prepare_conds(conditioning, model, tuple(x.shape), torch.device("cpu"))
        with torch.no_grad():
            mine = model.unet(x, r, cond.context, cond.y)
            reference = theirs(x, r, pooled[:, None].expand(2, -1, -1), clip_text=text.expand(2, -1, -1),
                               clip_img=images.expand(2, -1, -1), return_dict=False)[0]
        assert float((mine - reference).abs().max()) <= 1e-4 * float(reference.abs().max())
    with torch.no_grad():  # the images matter
        without = model.unet(x, r, text.expand(2, -1, -1), pooled.expand(2, -1))
    assert float((mine - without).abs().max()) > 1e-3


def test_sv3d_p_cameras_stretch_to_the_latent_batch(tmp_path):
    """SV3D_p's per-frame camera vectors follow a latent batch other than their count as ComfyUI's
    resize_to_batch_size stretches them (3 views on 6 frames: 0, 0, 1, 1, 2, 2; on 2: the first and
    last), not cycled."""
    from graphflow.models.checkpoint import load_image_only_checkpoint
    from graphflow.models.svd import sv3d_p_adm
    from graphflow.testing import write_svd_checkpoint

    model, _, _ = load_image_only_checkpoint(write_svd_checkpoint(tmp_path / "sv3d_p.safetensors", adm_in_channels=1280),
                                             device="cpu", dtype=torch.float32)
    cameras = {"elevation": [10.0, 20.0, 30.0], "azimuth": [0.0, 120.0, 240.0]}
    views = sv3d_p_adm(0.0, cameras["elevation"], cameras["azimuth"])
    conditioning = [(torch.zeros(1, 1, 8), cameras)]
    for batch, rows in ((3, [0, 1, 2]), (6, [0, 0, 1, 1, 2, 2]), (2, [0, 2]), (4, [0, 1, 1, 2])):
        (cond,) = prepare_conds(conditioning, model, (batch, 4, 4, 4), torch.device("cpu"))
        torch.testing.assert_close(cond.y, views[rows], atol=0, rtol=0)
