"""DiffSynth-Studio's block-wise ControlNets for Qwen-Image (Qwen-Image-Blockwise-ControlNet-Canny,
-Depth, -Inpaint; ComfyUI's qwen_image_{canny,depth,inpaint}_diffsynth_controlnet.safetensors in
models/model_patches/), as ComfyUI's ModelPatchLoader and QwenImageDiffsynthControlnet run them.

    img_in                            Linear(64 (68: inpaint), dim): the hint latent's 2x2 patches
    controlnet_blocks.{i}.x_rms       RMSNorm(dim) of the image tokens after Qwen-Image's block i
    controlnet_blocks.{i}.y_rms       RMSNorm(dim) of the embedded hint
    controlnet_blocks.{i}.input_proj  Linear(dim, dim), GELU (exact), output_proj Linear(dim, dim)

One block per Qwen-Image block (60). No transformer of its own: after Qwen-Image's block i (and
before any ControlNet residual), its image tokens x get
strength * output_proj(gelu(input_proj(x_rms(x) + y_rms(hint)))) added, the hint being the image
through the VAE at the latent's pixel size (area-resized, centre-cropped), shifted and scaled as
the sampled latent (Wan 2.1's process_in), patched as the latent and put through img_in. The
inpaint variant reads the kept part (1 - MASK, bilinear to latent size, not cropped; all ones
without a mask) as a 17th latent channel, not shifted.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..context import NodeInputError
from .cast_layers import Linear
from .weight_files import CheckpointError, WeightFile

KEY = "controlnet_blocks.0.y_rms.weight"  # ModelPatchLoader tells these files by it
LATENT_CHANNELS, PATCH = 16, 2


@dataclass(frozen=True)
class DiffSynthControlNetConfig:
    num_layers: int = 60
    dim: int = 3072
    extra_channels: int = 0  # img_in's inputs beyond the 64 of a 2x2 latent patch (inpaint: the mask's 4)

    @property
    def inpaint(self) -> bool:
        return self.extra_channels > 0


class ControlBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.x_rms = nn.RMSNorm(dim, eps=1e-6)
        self.y_rms = nn.RMSNorm(dim, eps=1e-6)
        self.input_proj = Linear(dim, dim)
        self.output_proj = Linear(dim, dim)

    def forward(self, x, y):
        return self.output_proj(F.gelu(self.input_proj(self.x_rms(x) + self.y_rms(y))))


class DiffSynthControlNet(nn.Module):
    def __init__(self, config: DiffSynthControlNetConfig):
        super().__init__()
        self.config = config
        self.img_in = Linear(LATENT_CHANNELS * PATCH ** 2 + config.extra_channels, config.dim)
        self.controlnet_blocks = nn.ModuleList(ControlBlock(config.dim) for _ in range(config.num_layers))

    def embed_hint(self, latent: torch.Tensor) -> torch.Tensor:
        """The processed hint latent (and mask channels) [B, C, h, w] -> tokens [B, h w / 4, dim],
        padded to whole patches as the sampled latent is."""
        from .qwen_image import tokens

        return self.img_in(tokens(latent.to(self.img_in.weight.dtype), PATCH)[0])


class ModelPatch:
    """The MODEL_PATCH socket for a DiffSynth block-wise ControlNet."""

    def __init__(self, module: DiffSynthControlNet):
        self.module = module.eval().requires_grad_(False)
        self.config = module.config


class DiffSynthHint:
    """QwenImageDiffsynthControlnet's patch on Qwen-Image's blocks: the image (IMAGE [B, H, W, 3],
    0..1) encoded at the sampled latent's size when first needed (kept per size), and the
    per-block addition. keep: the part to keep [B, 1, H, W] (1 - MASK) for the inpaint variant."""

    def __init__(self, patch: ModelPatch, vae, image: torch.Tensor, strength: float, keep: torch.Tensor | None):
        self.patch, self.vae, self.image, self.strength, self.keep = patch, vae, image, float(strength), keep
        self._tokens = None  # ((h, w), device, dtype, tokens)

    @property
    def module(self) -> nn.Module:  # placed by the sampling run beside the model (graphflow.sampling.pipeline)
        return self.patch.module

    def tokens(self, h: int, w: int, device, dtype) -> torch.Tensor:
        if self._tokens is None or self._tokens[:3] != ((h, w), device, dtype):
            from .controlnet import resize_hint
            from .qwen_image_controlnet import hint_frame

            f, fmt = self.vae.downscale, self.vae.latent_format
            pixels = resize_hint(self.image, h * f, w * f, mode="area").movedim(1, -1)
            latent = fmt.process_in(hint_frame(self.vae.encode(pixels)).float())
            if self.patch.config.inpaint:  # inpaint: the kept part as one more channel
                keep = torch.ones(latent.shape[0], 1, h, w) if self.keep is None else \
                    F.interpolate(self.keep.float().mean(1, keepdim=True), size=(h, w), mode="bilinear")
                if latent.shape[0] != keep.shape[0] and 1 not in (latent.shape[0], keep.shape[0]):
                    raise ValueError(f"{keep.shape[0]} masks for {latent.shape[0]} hint images")
                b = max(latent.shape[0], keep.shape[0])
                latent = torch.cat([latent.expand(b, -1, -1, -1), keep.expand(b, -1, -1, -1)], dim=1)
            module = self.patch.module
            place(module, device, dtype)
            with torch.no_grad():
                self._tokens = ((h, w), device, dtype, module.embed_hint(latent.to(device, dtype)))
        return self._tokens[3]

    def __call__(self, img: torch.Tensor, index: int, latent: torch.Tensor) -> torch.Tensor:
        from .controlnet import _broadcast

        module = self.patch.module
        if index >= len(module.controlnet_blocks):
            raise ValueError(f"this DiffSynth ControlNet has {len(module.controlnet_blocks)} blocks; the Qwen-Image "
                             f"model has more (block {index})")
        hint = _broadcast(self.tokens(*latent.shape[-2:], img.device, img.dtype), img.shape[0])
        if index == 0:  # once per model call (the blocks follow on the same device)
            place(module, img.device, img.dtype)
        n = hint.shape[1]
        add = module.controlnet_blocks[index](img[:, :n], hint) * self.strength
        return torch.cat([img[:, :n] + add, img[:, n:]], dim=1)


def place(module: nn.Module, device, dtype) -> None:
    """On the sampled model's device (where the memory manager put it for the run, else moved) and in
    its dtype."""
    from .controlnet import place_control

    place_control(module, torch.empty(0, device=device, dtype=dtype))


def apply_diffsynth(model, patch: ModelPatch, vae, image: torch.Tensor, strength: float,
                    mask: torch.Tensor | None = None):
    """A new Qwen-Image MODEL whose network (a shallow copy: weights shared) adds the ControlNet's
    per-block outputs. mask: MASK [B, H, W] of the part to redraw (the inpaint variant reads 1 - mask).
    A patch or VAE that doesn't fit the model: NodeInputError naming the parameter ("patch", "vae")."""
    from .lora import _shallow

    net = model.unet
    if patch.config.dim != net.config.dim:
        raise NodeInputError("patch", f"this DiffSynth ControlNet works on {patch.config.dim}-wide tokens; the "
                                      f"Qwen-Image model's are {net.config.dim} wide")
    if patch.config.num_layers < net.config.num_layers:
        raise NodeInputError("patch", f"this DiffSynth ControlNet has {patch.config.num_layers} blocks, the "
                                      f"Qwen-Image model {net.config.num_layers}")
    if getattr(vae, "latent_format", None) is None or vae.latent_format.channels != LATENT_CHANNELS:
        raise NodeInputError("vae", f"the hint is encoded with Qwen-Image's VAE (qwen_image_vae, {LATENT_CHANNELS}-"
                                    "channel latents)")
    keep = None if mask is None else 1.0 - (mask[:, None] if mask.ndim == 3 else mask).float()
    unet = _shallow(net)
    unet.double_block_patches = (*net.double_block_patches,
                                 DiffSynthHint(patch, vae, image[..., :3], strength, keep))
    return model.with_unet(unet)


def load_diffsynth_controlnet(wf: WeightFile, device=None, dtype=None) -> ModelPatch:
    from .checkpoint import _assign, _resolve

    try:
        dim, features = wf.shapes["img_in.weight"]
        layers = 1 + max(int(k.split(".")[1]) for k in wf.shapes if k.startswith("controlnet_blocks."))
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{wf.path.name}: the DiffSynth ControlNet's layout could not be read ({e})") from None
    extra = features - LATENT_CHANNELS * PATCH ** 2
    if extra not in (0, PATCH ** 2):
        raise CheckpointError(f"{wf.path.name}: img_in takes {features} features, not 2x2 patches of a 16-channel "
                              "latent (64) or of the latent and a mask (68, the inpaint variant)")
    with torch.device("meta"):
        module = DiffSynthControlNet(DiffSynthControlNetConfig(num_layers=layers, dim=dim, extra_channels=extra))
    try:
        return ModelPatch(_assign(module, wf, *_resolve(device, dtype, "model_patch"), wf.path.name,
                                  keys=list(wf.shapes)))
    except CheckpointError as e:
        raise CheckpointError(f"{wf.path.name}: a Qwen-Image DiffSynth block-wise ControlNet whose weights do not "
                              f"match its layout ({e})") from None
