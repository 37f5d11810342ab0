"""Stable Cascade (Würstchen v3), as ComfyUI's nodes: Stage C samples a small 16-channel latent
from the prompt, Stage B turns it into Stage A's 4-channel latent, Stage A (the VAE) decodes
that. Load Stage C and Stage B with LoadDiffusionModel (UNETLoader), Stage A with LoadVAE, the
CLIP-G with LoadTextEncoder type stable_cascade."""

from __future__ import annotations

from graphflow.api import CONDITIONING, IMAGE, LATENT, MODEL, VAE, ComfyAlias, Float, Int, Node, NodeInputError

PRIOR_CHANNELS = 16  # Stage C's latent
STAGE_B_CHANNELS = 4  # Stage A's latent, sampled by Stage B


class StableCascadeEmptyLatent(Node):
    """Blank latents for Stable Cascade text-to-image: stage_c (16 channels, width / compression:
    Stage C samples it) and stage_b (4 channels, width / 4: Stage B samples it, conditioned on
    stage C's result through StableCascadeStageBConditioning). compression 42 is Stage C's
    training ratio (a 1024x1024 picture is a 24x24 stage C latent); smaller values give larger
    stage C latents, more detail for more time."""
    category = "latent/stable_cascade"
    width: int = Int(1024, min=256, max=16384, step=8, resource="width")
    height: int = Int(1024, min=256, max=16384, step=8, resource="height")
    compression: int = Int(42, min=4, max=128)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    outputs = {"stage_c": LATENT, "stage_b": LATENT}
    comfy = ComfyAlias(("StableCascade_EmptyLatentImage",))

    def run(self):
        import torch

        c = self.compression
        return ({"samples": torch.zeros(self.batch_size, PRIOR_CHANNELS, self.height // c, self.width // c)},
                {"samples": torch.zeros(self.batch_size, STAGE_B_CHANNELS, self.height // 4, self.width // 4)})


class StableCascadeStageBConditioning(Node):
    """Attach Stage C's sampled latent to a prompt's conditioning, for Stage B: Stage B draws the
    picture that latent describes. Use it on both the positive and the negative prompt."""
    category = "conditioning/stable_cascade"
    conditioning: CONDITIONING
    stage_c: LATENT
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("StableCascade_StageB_Conditioning",))

    def run(self):
        samples = self.stage_c["samples"]
        if samples.ndim != 4 or samples.shape[1] != PRIOR_CHANNELS:
            raise NodeInputError("stage_c", f"expected a Stage C latent [B, {PRIOR_CHANNELS}, h, w] (the stage C "
                                            f"KSampler's output), got shape {tuple(samples.shape)}")
        return [[embedding, {**options, "stable_cascade_prior": samples}] for embedding, options in self.conditioning]


class StableCascadeStageCVAEEncode(Node):
    """Encode a picture for Stable Cascade image-to-image: stage_c is its Stage C latent (the
    picture cut around its centre to the aspect of width / compression x height / compression,
    resized (bicubic) to that times the encoder's downscale, then encoded by Stage C's VAE, the
    EfficientNet encoder), stage_b blank latents at width / 4 for Stage B."""
    category = "latent/stable_cascade"
    image: IMAGE
    vae: VAE
    compression: int = Int(42, min=4, max=128)
    outputs = {"stage_c": LATENT, "stage_b": LATENT}
    comfy = ComfyAlias(("StableCascade_StageC_VAEEncode",))

    def run(self):
        import torch

        from graphflow.images import center_crop_to_aspect, resize_nchw

        if getattr(self.vae, "latent_channels", None) != PRIOR_CHANNELS:
            raise NodeInputError("vae", f"expected Stable Cascade's Stage C encoder ({PRIOR_CHANNELS}-channel latents); "
                                        f"this VAE makes {getattr(self.vae, 'latent_channels', '?')}-channel latents "
                                        f"(Stage A's go with VAEEncode into Stage B)")
        height, width = self.image.shape[1:3]
        c, f = self.compression, self.vae.downscale
        if width // c == 0 or height // c == 0:
            raise NodeInputError("image", f"{width}x{height} is smaller than compression {c}")
        # as ComfyUI: centre-cropped to the target's aspect, bicubic, not clamped (the overshoot is encoded)
        out_w, out_h = (width // c) * f, (height // c) * f
        pixels = center_crop_to_aspect(self.image[..., :3].movedim(-1, 1), out_w, out_h)
        stage_c = self.vae.encode(resize_nchw(pixels, out_w, out_h, "bicubic").movedim(1, -1))
        stage_b = torch.zeros(stage_c.shape[0], STAGE_B_CHANNELS, (height // 8) * 2, (width // 8) * 2)
        return {"samples": stage_c}, {"samples": stage_b}


class StableCascadeSuperResolutionControlnet(Node):
    """Prepare Stable Cascade 2x super-resolution: controlnet_input is the picture encoded by the
    Stage C encoder (channels last, for the super-resolution ControlNet), stage_c and stage_b blank
    latents for twice the picture's size (width / 16 and width / 2). The Stable Cascade
    super-resolution ControlNet itself does not load in graphflow yet."""
    category = "_for_testing/stable_cascade"
    image: IMAGE
    vae: VAE
    outputs = {"controlnet_input": IMAGE, "stage_c": LATENT, "stage_b": LATENT}
    comfy = ComfyAlias(("StableCascade_SuperResolutionControlnet",))

    def run(self):
        import torch

        if getattr(self.vae, "latent_channels", None) != PRIOR_CHANNELS:
            raise NodeInputError("vae", f"expected Stable Cascade's Stage C encoder ({PRIOR_CHANNELS}-channel latents); "
                                        f"this VAE makes {getattr(self.vae, 'latent_channels', '?')}-channel latents")
        batch, height, width = self.image.shape[:3]
        controlnet_input = self.vae.encode(self.image[..., :3]).movedim(1, -1)
        return (controlnet_input,
                {"samples": torch.zeros(batch, PRIOR_CHANNELS, height // 16, width // 16)},
                {"samples": torch.zeros(batch, STAGE_B_CHANNELS, height // 2, width // 2)})


class ModelSamplingStableCascade(Node):
    """Set a Stable Cascade model's noise-schedule shift: the cosine schedule's log-SNR moved down
    by 2 ln(shift), spending more steps at high noise. Stage C is trained for 2.0, Stage B for 1.0
    (each model's default without this node)."""
    category = "advanced/model"
    model: MODEL
    shift: float = Float(2.0, min=0.0, max=100.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("ModelSamplingStableCascade",))

    def run(self):
        import copy

        if not getattr(self.model, "arch", "").startswith("stable_cascade"):
            raise NodeInputError("model", f"expected a Stable Cascade Stage C or Stage B model, got a "
                                          f"{getattr(self.model, 'arch', '?')} model")
        if self.shift <= 0:
            raise NodeInputError("shift", f"must be above 0, got {self.shift}")
        clone = copy.copy(self.model)
        clone.sampling_shift = float(self.shift)
        return clone
