"""unCLIP (SD2.1-unclip): the UNet's vector conditioning is a CLIP image embedding, noise-augmented.

An SD2.1-unCLIP checkpoint is an SD2 UNet with a class-label embedding (`label_emb`, adm
channels = 2 x the embedding width), the CLIP vision model under `embedder.model.visual.`, and
the noise augmentor's schedule under `noise_augmentor.` (cosine, "squaredcos_cap_v2", 1000 levels).

The vector y is built as ComfyUI's unclip_adm: each image embedding e of each unCLIPConditioning
(strength s, noise_augmentation a) at level n = round((max_level - 1) * a) gives

    s * [ q(e, n), timestep_embedding(n) ],   q(e, n) = unscale(sqrt(abar_n) scale(e) + sqrt(1 - abar_n) noise)

(scale/unscale: the embedding statistics; identity for checkpoints, as in ComfyUI, which never
reads statistics from the file). Several
embeddings are summed and the sum's first half augmented again at `MERGE_NOISE_AUGMENTATION`.
Each image's noise is drawn from a CPU generator seeded with the sampler's seed - 10, as ComfyUI's
(torch.manual_seed(seed - 10) before each). The merge's noise ComfyUI draws without a seed of its
own, with randn_like on the model's device right after that seeding: on the CPU the stream's next
values, on CUDA the first values of the device generator torch.manual_seed seeded too; so does
merge_noise. No embedding gives zeros.

SDXL models take the same augmentation of CLIP-G image embeddings (1280 wide) as their pooled
text vector when a conditioning carries unCLIP conditioning (ComfyUI's "revision"): the first
half of unclip_adm's result, merged at level 0 (sdxl_pooled).
"""

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from .unet import timestep_embedding

MERGE_NOISE_AUGMENTATION = 0.05  # ComfyUI's unclip_noise_augment_merge default
SDXL_POOLED_WIDTH = 1280  # CLIP-G's: SDXL's augmentor embeds its noise level at this width too


def cosine_alphas_cumprod(levels: int = 1000, max_beta: float = 0.999) -> torch.Tensor:
    """alpha-bar of the "squaredcos_cap_v2" schedule (betas from cos((t + 0.008) / 1.008 * pi/2)^2, capped)."""
    def alpha_bar(t):
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    betas = torch.tensor([min(1 - alpha_bar((i + 1) / levels) / alpha_bar(i / levels), max_beta) for i in range(levels)],
                         dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


@dataclass
class NoiseAugmentor:
    alphas_cumprod: torch.Tensor  # float64 [levels]
    width: int  # the image embedding's width (= the noise-level embedding's)
    data_mean: torch.Tensor | None = None  # [width] embedding statistics (None: identity, as ComfyUI)
    data_std: torch.Tensor | None = None

    @property
    def max_noise_level(self) -> int:
        return len(self.alphas_cumprod)

    def __call__(self, embeds: torch.Tensor, level: int, noise: torch.Tensor) -> torch.Tensor:
        """[B, width] embeddings -> [B, 2 width]: noised embeddings and the level's embedding."""
        x = embeds.float()
        if self.data_mean is not None:
            x = (x - self.data_mean) / self.data_std
        abar = self.alphas_cumprod[level]
        x = (abar.sqrt() * x + (1 - abar).sqrt() * noise).float()
        if self.data_mean is not None:
            x = x * self.data_std + self.data_mean
        level_emb = timestep_embedding(torch.tensor([float(level)]), self.width).expand(x.shape[0], -1)
        return torch.cat([x, level_emb], dim=1)


def noise_augmentor_from(adm_channels: int) -> NoiseAugmentor:
    """The augmentor of an unCLIP checkpoint: the schedule is computed,
    with no embedding statistics, as ComfyUI builds it. ComfyUI loads nothing of the file's
    `noise_augmentor.*` (its data_mean / data_std are non-persistent buffers, zeros and ones), so a
    file that carries statistics is read without them too."""
    return NoiseAugmentor(cosine_alphas_cumprod().double(), adm_channels // 2)


def _noise(shape, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed % 2 ** 64))


def merge_noise(width: int, seed: int, device=None) -> torch.Tensor:
    """The merge's noise [1, width], CPU float32: ComfyUI's randn_like after torch.manual_seed(seed)
    and one draw of [1, width] on the CPU; on another device the device generator's first draw."""
    device = torch.device(device or "cpu")
    if device.type == "cpu":
        generator = torch.Generator().manual_seed(seed % 2 ** 64)
        torch.randn((1, width), generator=generator)  # the last image's noise
        return torch.randn((1, width), generator=generator)
    generator = torch.Generator(device).manual_seed(seed % 2 ** 64)
    return torch.randn((1, width), generator=generator, device=device).cpu()


def unclip_adm(entries, augmentor: NoiseAugmentor, seed: int = 0, merge: float = MERGE_NOISE_AUGMENTATION,
               device=None) -> torch.Tensor:
    """y [1, 2 width] from a conditioning's "unclip_conditioning" list of {"clip_vision_output",
    "strength", "noise_augmentation"} (None or empty: zeros). `merge`: the noise augmentation of
    several images' sum (ComfyUI's unclip_noise_augment_merge); `device`: the model's, where
    ComfyUI draws the merge's noise."""
    width = augmentor.width
    parts = []
    for entry in entries or ():
        embeds = entry["clip_vision_output"].image_embeds.float().cpu()
        if embeds.ndim != 2 or embeds.shape[-1] != width:
            raise ValueError(f"this unCLIP model takes {width}-wide CLIP image embeddings; the CLIP vision output "
                             f"gives {tuple(embeds.shape)} (use the unCLIP checkpoint's own CLIP_VISION; SDXL takes CLIP-G's, 1280 wide)")
        level = round((augmentor.max_noise_level - 1) * entry["noise_augmentation"])
        for row in embeds:  # one adm input per image, each with the same seeded noise (as ComfyUI)
            parts.append(augmentor(row[None], level, _noise((1, width), seed - 10)) * entry["strength"])
    if not parts:
        return torch.zeros(1, 2 * width)
    if len(parts) == 1:
        return parts[0]
    total = torch.stack(parts).sum(0)
    level = round((augmentor.max_noise_level - 1) * merge)
    return augmentor(total[:, :width], level, merge_noise(width, seed - 10, device))


@lru_cache(maxsize=1)
def _sdxl_augmentor() -> NoiseAugmentor:
    return noise_augmentor_from(2 * SDXL_POOLED_WIDTH)


def sdxl_pooled(entries, seed: int = 0, device=None) -> torch.Tensor:
    """An SDXL model's pooled vector [1, 1280] from a conditioning's unCLIP conditioning (CLIP-G image
    embeddings, ComfyUI's "revision"): the embedding half of unclip_adm, several images merged at
    noise level 0, as ComfyUI's sdxl_pooled."""
    return unclip_adm(entries, _sdxl_augmentor(), seed, merge=0.0, device=device)[:, :SDXL_POOLED_WIDTH]
