"""Generate the demo model's prompt grid through the engine's own sampling and judge it by pixels.

Used by the demo model's tests and by tools/train_demo.py: prompts "a {colour} {shape} on a
{background} background" for every colour x shape, `repeats` images each (the background word
cycles so every background appears), one call of graphflow.sampling.sample (one batch) per seed,
decoded by the checkpoint's VAE, measured by graphflow.demo.measure.
"""

from dataclasses import dataclass

import numpy as np
import torch

from . import measure, shapes

# The demo model's default generation settings (workflows/txt2img.json uses the same).
DEFAULTS = dict(sampler_name="euler", scheduler="normal", steps=20, cfg=5.0, size=64)


@dataclass(frozen=True)
class Case:
    colour: str
    shape: str
    background: str

    @property
    def prompt(self) -> str:
        return shapes.caption(self.colour, self.shape, self.background)


@dataclass
class Report:
    cases: list[Case]
    images: torch.Tensor  # IMAGE [B, H, W, 3]
    measurements: list[measure.Measurement]

    def _rate(self, ok) -> float:
        return float(np.mean([ok(m, c) for m, c in zip(self.measurements, self.cases)]))

    @property
    def accuracy(self) -> float:
        """Images with colour, shape AND background all right."""
        return self._rate(lambda m, c: (m.colour, m.shape, m.background) == (c.colour, c.shape, c.background))

    @property
    def colour_accuracy(self) -> float:
        return self._rate(lambda m, c: m.colour == c.colour)

    @property
    def shape_accuracy(self) -> float:
        return self._rate(lambda m, c: m.shape == c.shape)

    @property
    def background_accuracy(self) -> float:
        return self._rate(lambda m, c: m.background == c.background)

    def summary(self) -> str:
        return (f"colour {self.colour_accuracy:.0%}, shape {self.shape_accuracy:.0%}, "
                f"background {self.background_accuracy:.0%} of {len(self.cases)} images")


def grid_cases(repeats: int) -> list[Case]:
    """Every colour x shape, `repeats` times, the background cycling (never the shape's colour)."""
    cases, k = [], 0
    for _ in range(repeats):
        for colour in shapes.COLOURS:
            for shape in shapes.SHAPES:
                backgrounds = [b for b in shapes.BACKGROUNDS if b != colour]
                cases.append(Case(colour, shape, backgrounds[k % len(backgrounds)]))
                k += 1
    return cases


def generate(checkpoint, prompts: list[str], seed: int = 0, negative: str = "", cfg: float = DEFAULTS["cfg"],
             steps: int = DEFAULTS["steps"], sampler_name: str = DEFAULTS["sampler_name"],
             scheduler: str = DEFAULTS["scheduler"], size: int = DEFAULTS["size"]) -> torch.Tensor:
    """IMAGE [len(prompts), size, size, 3]: the prompts sampled as one batch from one seed."""
    from ..sampling import sample

    conds = torch.cat([checkpoint.clip.encode(p)[0] for p in prompts])
    uncond = checkpoint.clip.encode(negative)[0]
    f = checkpoint.vae.downscale
    latent = {"samples": torch.zeros(len(prompts), checkpoint.vae.latent_channels, size // f, size // f)}
    out = sample(checkpoint.model, seed, steps, cfg, sampler_name, scheduler, [(conds, {})], [(uncond, {})], latent)
    return checkpoint.vae.decode(out["samples"])


def evaluate(checkpoint, repeats: int = 3, seeds: tuple[int, ...] = (0,), **settings) -> Report:
    """The grid of `repeats` images per colour x shape, sampled once per seed (one batch each)."""
    cases = grid_cases(repeats)
    batches = [generate(checkpoint, [c.prompt for c in cases], seed=seed, **settings) for seed in seeds]
    images = torch.cat(batches)
    return Report(cases * len(seeds), images, [measure.measure(image) for image in images])


def save_grid(images: torch.Tensor, path, columns: int, scale: int = 2) -> None:
    """A PNG of IMAGE [B, H, W, 3] laid out `columns` wide, each image scaled up `scale`x."""
    from PIL import Image

    b, h, w, _ = images.shape
    rows = -(-b // columns)
    canvas = np.zeros((rows * h, columns * w, 3), dtype=np.uint8)
    pixels = (images.clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    for k in range(b):
        r, c = divmod(k, columns)
        canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = pixels[k]
    Image.fromarray(canvas).resize((columns * w * scale, rows * h * scale), Image.NEAREST).save(path)
