"""Latent sensitivity maps: how much of the decoded image depends on each latent location.

For every patch centre (every `stride`-th latent cell) the k x k patch around it is perturbed in
all channels (zeroed, or a fixed noise patch added), the latent is decoded, and the change of the
WHOLE image against the unperturbed decode is measured. A convolutional decoder changes only a
neighbourhood, so the map is roughly flat; a decoder that routes global information through one
spot (the SD 1.x/2.x VAE's "black hole") gives one location an effect many times the median.
The black-hole score is that ratio: top effect / median effect.

Decodes run in batches of perturbed copies; all batches have the same size (the first carries
the unperturbed latent, the last is padded with it) so every decode runs the same kernels and
batch-size-dependent rounding can't masquerade as an effect.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from graphflow.choices import PATCH_MODES

from .latent_edits import channel_std, clip_region



@dataclass
class Location:
    row: int  # latent cell of the patch centre
    col: int
    effect: float


@dataclass
class SensitivityMap:
    effects: torch.Tensor  # [len(rows), len(cols)]: image change for the patch centred at (rows[i], cols[j])
    rows: list[int]
    cols: list[int]
    latent_size: tuple[int, int]
    patch: int
    stride: int
    baseline: torch.Tensor  # the unperturbed decode, IMAGE [1, H, W, 3]
    decodes: int  # decoder evaluations, padding included
    batch_size: int  # latents per decode call
    seconds: float

    def latent_map(self) -> torch.Tensor:
        """The effects at latent resolution [h, w]: each cell takes its stride block's value."""
        h, w = self.latent_size
        s = self.stride
        return self.effects.repeat_interleave(s, 0).repeat_interleave(s, 1)[:h, :w]

    def top(self, k: int = 5) -> list[Location]:
        values, index = self.effects.flatten().topk(min(k, self.effects.numel()))
        width = len(self.cols)
        return [Location(self.rows[i // width], self.cols[i % width], v)
                for v, i in zip(values.tolist(), index.tolist())]

    @property
    def median(self) -> float:
        return self.effects.median().item()

    @property
    def black_hole_score(self) -> float:
        """The top location's effect over the median effect (about 1-3 for a healthy VAE)."""
        top = self.effects.max().item()
        return top / self.median if self.median > 0 else (math.inf if top > 0 else 1.0)

    def location(self) -> tuple[int, int]:
        """The latent cell most likely to carry global information. With stride 1, every patch
        that covers that cell shows its effect, so the cell whose covering patches sum highest
        is taken (a k x k box sum); otherwise the top patch's centre."""
        if self.stride != 1 or self.patch == 1:
            best = self.top(1)[0]
            return best.row, best.col
        k = self.patch
        before, after = k - 1 - k // 2, k // 2  # centres c cover x when c - k//2 <= x < c - k//2 + k
        padded = F.pad(self.effects[None, None].double(), (before, after, before, after))
        summed = F.conv2d(padded, torch.ones(1, 1, k, k, dtype=torch.float64))[0, 0]
        index = int(summed.flatten().argmax())
        return divmod(index, summed.shape[1])

    def report(self, k: int = 5, downscale: int = 8) -> str:
        h, w = self.latent_size
        lines = [f"sensitivity of the whole image to a {self.patch}x{self.patch} latent patch, stride {self.stride}, "
                 f"on a {h}x{w} latent ({len(self.rows) * len(self.cols)} locations, {self.decodes} decodes "
                 f"in batches of {self.batch_size}, {self.seconds:.1f} s)",
                 f"median effect {self.median:.4g}, black-hole score (top / median) {self.black_hole_score:.2f}"]
        row, col = self.location()
        lines.append(f"most global location: latent row {row}, col {col} "
                     f"(pixels y {row * downscale}, x {col * downscale})")
        lines.append("top locations (row, col: effect, x median):")
        for n, loc in enumerate(self.top(k), 1):
            ratio = loc.effect / self.median if self.median > 0 else math.inf
            lines.append(f"  {n}. ({loc.row}, {loc.col}): {loc.effect:.4g}, x{ratio:.2f}")
        return "\n".join(lines)


def patch_centres(length: int, stride: int) -> list[int]:
    """The centre of each stride block: 0..length-1 for stride 1."""
    return [min(n * stride + stride // 2, length - 1) for n in range(math.ceil(length / stride))]


def sensitivity_map(
    decode: Callable[[torch.Tensor], torch.Tensor],
    latent: torch.Tensor,
    distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    patch: int = 3,
    stride: int = 1,
    mode: str = "zero",
    noise_scale: float = 1.0,
    seed: int = 0,
    batch_size: int = 8,
    on_batch: Callable[[int, int], None] | None = None,
) -> SensitivityMap:
    """Perturb the k x k patch around every stride-th latent cell of `latent` [1, C, h, w] and
    measure `distance(unperturbed decode, perturbed decodes) -> [B]`. `decode` maps a latent
    batch [B, C, h, w] to IMAGE [B, H, W, 3]; at most `batch_size` latents go in one call.
    `on_batch(done, total)` is called after each batched decode (progress reporting; it may
    raise to interrupt)."""
    if latent.dim() == 3:
        latent = latent[None]
    if latent.dim() != 4 or latent.shape[0] != 1:
        raise ValueError(f"expected one latent [1, C, h, w], got shape {tuple(latent.shape)}")
    if mode not in PATCH_MODES:
        raise ValueError(f"unknown perturbation {mode!r}; expected one of {', '.join(PATCH_MODES)}")
    if patch < 1 or stride < 1 or batch_size < 1:
        raise ValueError("patch, stride and batch_size must be at least 1")
    began = time.perf_counter()
    _, c, h, w = latent.shape
    rows, cols = patch_centres(h, stride), patch_centres(w, stride)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(c, patch, patch, generator=generator) * noise_scale * channel_std(latent)[0].cpu().float()

    jobs: list[tuple[int, int] | None] = [None] + [(r, q) for r in rows for q in cols]  # None: unperturbed
    total = math.ceil(len(jobs) / batch_size)
    batch_size = math.ceil(len(jobs) / total)  # as many batches, evened out: the least padding
    jobs += [None] * (total * batch_size - len(jobs))
    effects = torch.empty(len(rows) * len(cols), dtype=torch.float64)
    baseline = None
    done = 0
    for b in range(total):
        batch = jobs[b * batch_size:(b + 1) * batch_size]
        z = latent.repeat(len(batch), 1, 1, 1)
        for n, centre in enumerate(batch):
            if centre is not None:
                _perturb(z[n], centre, patch, mode, noise)
        images = decode(z)
        if baseline is None:
            baseline = images[:1].clone()
        d = distance(baseline, images).double().cpu()
        for n, centre in enumerate(batch):
            if centre is not None:
                effects[done] = d[n]
                done += 1
        if on_batch is not None:
            on_batch(b + 1, total)
    return SensitivityMap(effects.reshape(len(rows), len(cols)), rows, cols, (h, w), patch, stride,
                          baseline, len(jobs), batch_size, time.perf_counter() - began)


def _perturb(z: torch.Tensor, centre: tuple[int, int], k: int, mode: str, noise: torch.Tensor) -> None:
    """In place on one latent [C, h, w]: the k x k patch around `centre`, clipped at the borders."""
    r, c = centre
    top, left = r - k // 2, c - k // 2
    y0, y1, x0, x1 = clip_region(z.shape[1], z.shape[2], top, left, k, k)
    if mode == "zero":
        z[:, y0:y1, x0:x1] = 0
    else:
        z[:, y0:y1, x0:x1] += noise[:, y0 - top:y1 - top, x0 - left:x1 - left].to(z.device, z.dtype)


def decode_batch_size(vae, h: int, w: int, cap: int = 64) -> int:
    """A decode batch size that fits memory: the decoder's largest full-resolution activations,
    about six live tensors of them, against half the free GPU memory (2 GiB on the CPU, where
    larger batches gain little)."""
    cfg = vae.module.config
    f = cfg.downscale
    channels = cfg.ch * max(cfg.ch_mult[:2])
    per_image = (h * f) * (w * f) * channels * torch.tensor([], dtype=vae.dtype).element_size() * 6
    device = vae.device
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget, cap = free // 2, cap
    else:
        budget, cap = 2 * 2**30, min(cap, 16)
    return int(max(1, min(cap, budget // max(1, per_image))))
