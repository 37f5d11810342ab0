"""The samplers: denoise a latent with a diffusion model, guided by positive and negative prompts."""

from __future__ import annotations

from graphflow.api import (CONDITIONING, LATENT, MODEL, Choice, ComfyAlias, Estimate, Float, Int, Node, progress,
                           sampling_memory)
from graphflow.choices import NOISE_MODES, SAMPLER_NAMES, SCHEDULER_NAMES

SEED_MAX = 2**64 - 1


def _estimate(cls, widgets, inputs):
    size = inputs.get("latent_image")
    return Estimate(size, memory=sampling_memory(size))


def _reporter():
    """Sampler callback: step progress with a small preview every few steps (progress() also
    raises Interrupted when the user interrupts)."""

    from graphflow.images import image_to_pil
    def on_step(info):
        preview = info.get("preview")
        progress(info["step"], info["total"], image_to_pil(preview) if preview is not None else None)

    return on_step


def _sample(node, seed: int, **options) -> dict:
    """The inputs both samplers share, passed to the sampling engine. A pack node running a
    sampler through nodes.pack_nodes._core may set `starting_noise` on it (a NoiseSource drawing
    the starting noise otherwise: Efficiency Nodes' Noise Control Script)."""
    from graphflow.sampling.pipeline import sample
    return sample(node.model, seed, node.steps, node.cfg, node.sampler_name, node.scheduler,
                  node.positive, node.negative, node.latent_image, callback=_reporter(),
                  preview_every=max(1, node.steps // 20), noise_mode=node.noise_mode,
                  starting_noise=getattr(node, "starting_noise", None), **options)


class KSampler(Node):
    """Denoise a latent: from pure noise (txt2img, denoise 1.0) or part-way from an encoded
    image (img2img, denoise < 1: the last steps of a steps / denoise-step schedule, which may be at
    most 20000 steps long). cfg scales how strongly the positive prompt is followed
    against the negative: uncond + cfg * (cond - uncond). The starting noise comes from the
    seed on the CPU, so it is the same on every device. Ancestral and SDE samplers add noise at
    every step: noise_mode "comfy" draws it as ComfyUI does (one stream on the model's device);
    "per_image" gives each image its own CPU stream, the same on any device and batch size."""
    category = "sampling"
    model: MODEL
    seed: int = Int(0, min=0, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    positive: CONDITIONING
    negative: CONDITIONING
    latent_image: LATENT
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    noise_mode: str = Choice(NOISE_MODES, "comfy")
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("KSampler",), optional=("noise_mode",))
    estimate = classmethod(_estimate)

    def run(self):
        return _sample(self, self.seed, denoise=self.denoise)


class KSamplerAdvanced(Node):
    """A sampler with step control: run only steps start_at_step..end_at_step of the schedule,
    with or without adding noise first, optionally returning the latent with its leftover noise
    (to hand it to another sampler, e.g. SDXL base then refiner)."""
    category = "sampling"
    model: MODEL
    add_noise: str = Choice(["enable", "disable"], "enable")
    noise_seed: int = Int(0, min=0, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    positive: CONDITIONING
    negative: CONDITIONING
    latent_image: LATENT
    start_at_step: int = Int(0, min=0, max=10000)
    end_at_step: int = Int(10000, min=0, max=10000)
    return_with_leftover_noise: str = Choice(["disable", "enable"], "disable")
    noise_mode: str = Choice(NOISE_MODES, "comfy")
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("KSamplerAdvanced",), optional=("noise_mode",))
    estimate = classmethod(_estimate)

    def run(self):
        return _sample(self, self.noise_seed, start_step=self.start_at_step, end_step=self.end_at_step,
                       add_noise=self.add_noise == "enable",
                       return_with_leftover_noise=self.return_with_leftover_noise == "enable")
