"""unCLIP: the UNet's class-label embedding against diffusers (class_embed_type "projection"), the
noise augmentation against diffusers' StableUnCLIPImageNormalizer + DDPMScheduler, detection and
loading of an unCLIP checkpoint, and a ComfyUI unCLIP graph end to end."""

from dataclasses import replace

import pytest
import torch
from diffusers import DDPMScheduler
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer

from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.models.checkpoint import load_checkpoint
from graphflow.models.clip_vision import ClipVisionOutput
from graphflow.models.unclip import MERGE_NOISE_AUGMENTATION, NoiseAugmentor, cosine_alphas_cumprod, unclip_adm
from graphflow.testing import UNCLIP_EMBED, write_checkpoint, write_unclip_checkpoint
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_unet import TINY, random_unet, to_diffusers_unet


def test_unet_with_image_embedding_matches_diffusers():
    """SD2's UNet with label_emb is diffusers' UNet2DConditionModel with a "projection"
    class embedding, converted by diffusers' own single-file code; y goes in as class_labels."""
    cfg = replace(TINY["sd2"], adm_in_channels=2 * 768)  # SD2.1-unCLIP-L's vector width
    ours = random_unet(cfg)
    theirs, _ = to_diffusers_unet(ours)
    assert theirs.config.class_embed_type == "projection"
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 16, 16, generator=g)
    t = torch.tensor([999.0, 321.0])
    context = torch.randn(2, 7, cfg.context_dim, generator=g)
    y = torch.randn(2, cfg.adm_in_channels, generator=g)
    with torch.no_grad():
        out = ours(x, t, context, y)
        ref = theirs(x, t, encoder_hidden_states=context, class_labels=y).sample
        without = ours(x, t, context, torch.zeros_like(y))
    assert ref.abs().mean() > 0.05
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
    assert (out - without).abs().max() > 1e-3  # the embedding matters


def test_cosine_schedule_matches_diffusers():
    ddpm = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    torch.testing.assert_close(cosine_alphas_cumprod().float(), ddpm.alphas_cumprod, atol=1e-6, rtol=0)


@pytest.mark.parametrize("level", [0, 250, 999])
def test_noise_augmentation_matches_diffusers(level):
    """diffusers' StableUnCLIP pipelines: scale, DDPM add_noise at the level, unscale, then append
    get_timestep_embedding(level, flip_sin_to_cos=True, shift 0)."""
    g = torch.Generator().manual_seed(2)
    width = 16
    embeds, noise = torch.randn(3, width, generator=g), torch.randn(3, width, generator=g)
    mean, std = torch.randn(width, generator=g) * 0.1, torch.rand(width, generator=g) + 0.5
    normalizer = StableUnCLIPImageNormalizer(embedding_dim=width)
    with torch.no_grad():
        normalizer.mean.copy_(mean[None])
        normalizer.std.copy_(std[None])
    ddpm = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    levels = torch.tensor([level] * 3)
    ref = normalizer.unscale(ddpm.add_noise(normalizer.scale(embeds), noise, levels))
    ref = torch.cat([ref, get_timestep_embedding(levels, width, flip_sin_to_cos=True, downscale_freq_shift=0)], 1)

    augmentor = NoiseAugmentor(cosine_alphas_cumprod(), width, mean, std)
    out = augmentor(embeds, level, noise)
    torch.testing.assert_close(out, ref.detach(), atol=1e-5, rtol=0)


def _output(embeds):
    return ClipVisionOutput(embeds[:, None], embeds, embeds[:, None])


def test_adm_weights_sums_and_seeds_as_comfyui():
    """One image: strength * [q(e, n), emb(n)] with noise from seed - 10. Several: their sum, whose
    embedding half is augmented again at the merge level, with ComfyUI's randn_like on the CPU
    right after torch.manual_seed(seed - 10) and the last image's draw: the stream's next values;
    no image: zeros."""
    width = UNCLIP_EMBED
    augmentor = NoiseAugmentor(cosine_alphas_cumprod(), width)
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(1, width, generator=g), torch.randn(2, width, generator=g)
    with torch.random.fork_rng(devices=[]):  # ComfyUI's global generator
        torch.manual_seed(7 - 10)
        noise = torch.randn(1, width)
        merge_noise = torch.randn_like(noise)
    abar = cosine_alphas_cumprod()

    def by_hand(e, level, strength, noise=noise):
        noised = abar[level].sqrt() * e + (1 - abar[level]).sqrt() * noise
        return strength * torch.cat([noised.float(), get_timestep_embedding(torch.tensor([level]), width, True, 0)], 1)

    one = unclip_adm([{"clip_vision_output": _output(a), "strength": 0.7, "noise_augmentation": 0.25}], augmentor, seed=7)
    torch.testing.assert_close(one, by_hand(a, round(999 * 0.25), 0.7), atol=1e-5, rtol=0)

    entries = [{"clip_vision_output": _output(a), "strength": 1.0, "noise_augmentation": 0.0},
               {"clip_vision_output": _output(b), "strength": 0.5, "noise_augmentation": 0.1}]
    total = by_hand(a, 0, 1.0) + by_hand(b[:1], round(99.9), 0.5) + by_hand(b[1:], round(99.9), 0.5)
    merged = by_hand(total[:, :width], round(999 * MERGE_NOISE_AUGMENTATION), 1.0, merge_noise)
    torch.testing.assert_close(unclip_adm(entries, augmentor, seed=7), merged, atol=1e-5, rtol=0)
    assert torch.equal(unclip_adm(None, augmentor), torch.zeros(1, 2 * width))
    with pytest.raises(ValueError, match="32-wide CLIP image embeddings"):
        unclip_adm([{"clip_vision_output": _output(torch.randn(1, 8)), "strength": 1.0, "noise_augmentation": 0.0}],
                   augmentor)


def test_checkpoint_detected_and_loaded(tmp_path):
    path = write_unclip_checkpoint(tmp_path / "unclip.safetensors")
    loaded = load_checkpoint(path, device="cpu", dtype=torch.float32, clip_vision=True)
    assert loaded.info.unclip and loaded.info.arch == "sd2" and loaded.info.name.startswith("SD2.x unCLIP")
    assert loaded.model.adm_channels == 2 * UNCLIP_EMBED and loaded.model.noise_augmentor.width == UNCLIP_EMBED
    assert loaded.clip_vision.config.projection_dim == UNCLIP_EMBED
    # a plain SD2 checkpoint is not an unCLIP one
    plain = write_checkpoint(tmp_path / "sd2.safetensors", "sd2")
    assert not load_checkpoint(plain, device="cpu", text_encoders=False).info.unclip
    with pytest.raises(Exception, match="sd2.safetensors is not an unCLIP checkpoint"):
        load_checkpoint(plain, device="cpu", clip_vision=True)


def _graph(strength: float | None, noise_augmentation: float = 0.0, color: int = 0xff8020) -> dict:
    graph = {
        "1": {"class_type": "unCLIPCheckpointLoader", "inputs": {"ckpt_name": "tiny_unclip.safetensors"}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 96, "height": 64, "batch_size": 1, "color": color}},
        "3": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["1", 3], "image": ["2", 0], "crop": "center"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "a photo", "clip": ["1", 1]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "7": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "8": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["4", 0], "negative": ["6", 0],
                                                    "latent_image": ["7", 0], "seed": 5, "steps": 2, "cfg": 4.0,
                                                    "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}},
        "10": {"class_type": "PreviewImage", "inputs": {"images": ["9", 0]}},
    }
    if strength is not None:
        graph["5"] = {"class_type": "unCLIPConditioning",
                      "inputs": {"conditioning": ["4", 0], "clip_vision_output": ["3", 0], "strength": strength,
                                 "noise_augmentation": noise_augmentation}}
        graph["8"]["inputs"]["positive"] = ["5", 0]
    return graph


def test_unclip_graph_end_to_end(builtin_registry, tmp_folders):
    """A ComfyUI unCLIP graph imports and runs; strength 0 gives exactly the image without the
    node (zero vector conditioning), strength 1 changes it, and so do the image and the noise."""
    (tmp_folders.models / "checkpoints").mkdir(parents=True)
    write_unclip_checkpoint(tmp_folders.models / "checkpoints" / "tiny_unclip.safetensors")

    def run(*args, **kwargs):
        result = Executor(builtin_registry).run(parse_workflow(_graph(*args, **kwargs), builtin_registry))
        assert result.ok, result.error
        return result.values["9"][0]

    plain = run(None)
    assert plain.shape == (1, 64, 64, 3)
    assert torch.equal(run(0.0), plain)
    applied = run(1.0)
    assert (applied - plain).abs().max() > 1e-3
    assert (run(1.0, color=0x1040ff) - applied).abs().max() > 1e-4  # another image, another result
    assert (run(1.0, noise_augmentation=0.5) - applied).abs().max() > 1e-4
    assert torch.equal(run(1.0), applied)  # the augmentation noise is seeded


def test_nodes_refuse_wrong_inputs(builtin_registry, tmp_folders):
    (tmp_folders.models / "checkpoints").mkdir(parents=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "sd1.safetensors", "sd1")
    # a plain checkpoint loads as in ComfyUI, with an empty clip_vision, which CLIPVisionEncode refuses
    model, clip, vae, vision = call(builtin_registry, "LoadUnCLIPCheckpoint", checkpoint="sd1.safetensors")
    assert model.arch == "sd1" and clip is not None and vae is not None and vision is None
    with pytest.raises(NodeInputError, match="no CLIP vision model") as info:
        call(builtin_registry, "CLIPVisionEncode", clip_vision=vision, image=torch.zeros(1, 8, 8, 3), crop="center")
    assert info.value.input == "clip_vision"
    siglip_like = ClipVisionOutput(torch.zeros(1, 4, 8), torch.zeros(1, 4, 8), torch.zeros(1, 4, 8))
    with pytest.raises(NodeInputError, match=r"\[B, dim\] image embeddings") as info:
        call(builtin_registry, "UnCLIPConditioning", conditioning=[(torch.zeros(1, 77, 8), {})],
             clip_vision_output=siglip_like, strength=1.0, noise_augmentation=0.0)
    assert info.value.input == "clip_vision_output"
