"""SD3 / SD3.5 and FLUX.1 nodes: flow-model sampling shifts, the 16-channel empty latent, FLUX's
distilled guidance, the per-encoder prompt nodes and T5's padding options, and FLUX Kontext's
helpers (ComfyUI's names and inputs)."""

from __future__ import annotations

import copy


from graphflow.api import CLIP, CONDITIONING, IMAGE, LATENT, MODEL, Choice, ComfyAlias, Float, Int, Node, NodeInputError, Text
from graphflow.choices import DEFAULT_FLUX_GUIDANCE, FLUX_BASE_SHIFT, FLUX_MAX_SHIFT
from nodes.conditioning import encoded

MAX_SIZE = 16384

# (width, height) FLUX.1 Kontext was trained at (BFL's list, as diffusers' FluxKontextPipeline has it)
KONTEXT_RESOLUTIONS = ((672, 1568), (688, 1504), (720, 1456), (752, 1392), (800, 1328), (832, 1248),
                       (880, 1184), (944, 1104), (1024, 1024), (1104, 944), (1184, 880), (1248, 832),
                       (1328, 800), (1392, 752), (1456, 720), (1504, 688), (1568, 672))


def _with_sampling(model, sampling):
    """A shallow copy of the MODEL that samples with `sampling` (the input stays untouched)."""
    if getattr(model, "prediction", None) != "flow":
        raise NodeInputError("model", f"flow-model sampling needs a flow model (SD3, FLUX); this one predicts "
                                      f"{getattr(model, 'prediction', '?')!r}")
    clone = copy.copy(model)
    clone.model_sampling = sampling
    return clone


class ModelSamplingSD3(Node):
    """Set a flow model's timestep shift: sigma = shift t / (1 + (shift - 1) t). Higher shifts
    spend more steps at high noise (SD3 and SD3.5 are trained with 3.0). The model is told
    timestep 1000 sigma: as in ComfyUI, on a model whose own timestep is sigma (FLUX, Chroma,
    Lumina 2, Mochi) that is 1000 times its usual one."""
    category = "advanced/model"
    model: MODEL
    shift: float = Float(3.0, min=0.0, max=100.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("ModelSamplingSD3",))

    def run(self):
        from graphflow.sampling.flow_sampling import FlowSchedule
        return _with_sampling(self.model, FlowSchedule.sd3(self.shift))


class ModelSamplingAuraFlow(Node):
    """Set a flow model's timestep shift as AuraFlow does: sigma = shift t / (1 + (shift - 1) t),
    ModelSamplingSD3's formula with the timestep told to the model as sigma itself (multiplier
    1, ComfyUI's setting for AuraFlow, FLUX schnell, Lumina 2 and Mochi). As in ComfyUI, a model
    whose own timestep is 1000 sigma (SD3, Wan) is then told a timestep 1000 times smaller."""
    category = "advanced/model"
    model: MODEL
    shift: float = Float(1.73, min=0.0, max=100.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("ModelSamplingAuraFlow",))

    def run(self):
        from graphflow.sampling.flow_sampling import FlowSchedule
        return _with_sampling(self.model, FlowSchedule.sd3(self.shift, multiplier=1.0))


class ModelSamplingFlux(Node):
    """Set FLUX's resolution-dependent shift: mu grows linearly with the image's token count
    (width/16 x height/16), base_shift at 256 tokens, max_shift at 4096 (1024x1024), and
    sigma = e^mu / (e^mu + 1/t - 1). Set width and height to the image being generated."""
    category = "advanced/model"
    model: MODEL
    max_shift: float = Float(FLUX_MAX_SHIFT, min=0.0, max=100.0, step=0.01)
    base_shift: float = Float(FLUX_BASE_SHIFT, min=0.0, max=100.0, step=0.01)
    width: int = Int(1024, min=16, max=MAX_SIZE, step=8)
    height: int = Int(1024, min=16, max=MAX_SIZE, step=8)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("ModelSamplingFlux",))

    def run(self):
        from graphflow.sampling.flow_sampling import FlowSchedule, flux_mu
        mu = flux_mu(self.width, self.height, self.base_shift, self.max_shift)
        return _with_sampling(self.model, FlowSchedule.flux(mu))


class EmptySD3Latent(Node):
    """A blank 16-channel latent batch (SD3, SD3.5, FLUX) of the given pixel size, 1/8 size."""
    category = "latent"
    width: int = Int(1024, min=16, max=MAX_SIZE, step=16, resource="width")
    height: int = Int(1024, min=16, max=MAX_SIZE, step=16, resource="height")
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("EmptySD3LatentImage",))

    def run(self):
        import torch
        return {"samples": torch.zeros(self.batch_size, 16, self.height // 8, self.width // 8)}


class FluxGuidance(Node):
    """FLUX dev's distilled guidance scale, stored in the conditioning and fed to the model's
    guidance embedding (not classifier-free guidance: run the sampler at cfg 1). Models without
    a guidance embedding (FLUX schnell, SD3) ignore it; Chroma takes it in place of its 0, as
    in ComfyUI."""
    category = "advanced/conditioning/flux"
    conditioning: CONDITIONING
    guidance: float = Float(DEFAULT_FLUX_GUIDANCE, min=0.0, max=100.0, step=0.1)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("FluxGuidance",))

    def run(self):
        return [(cond, {**options, "guidance": self.guidance}) for cond, options in self.conditioning]


def _flow_clip(clip, arch: str, node: str):
    if clip is None:
        raise NodeInputError("clip", "no text encoder connected")
    if getattr(clip, "arch", None) != arch or not hasattr(clip, f"encode_{arch}"):
        raise NodeInputError("clip", f"{node} needs a {arch.upper()} text encoder (from DualCLIPLoader/TripleCLIPLoader "
                                     f"type {arch}, or a {arch.upper()} checkpoint); got a {getattr(clip, 'arch', '?')} one")
    return clip


class CLIPTextEncodeSD3(Node):
    """Encode a prompt for SD3 / SD3.5 with a separate text for each encoder: CLIP-L, CLIP-G and
    T5-XXL. empty_padding "none" leaves an encoder with an empty text out of the conditioning;
    "empty_prompt" encodes it as the empty prompt."""
    category = "advanced/conditioning"
    clip: CLIP
    clip_l: str = Text("", multiline=True)
    clip_g: str = Text("", multiline=True)
    t5xxl: str = Text("", multiline=True)
    empty_padding: str = Choice(["none", "empty_prompt"], "none")
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("CLIPTextEncodeSD3",))

    def run(self):
        clip = _flow_clip(self.clip, "sd3", "CLIPTextEncodeSD3")
        def encode(clip):
            cond, pooled = clip.encode_sd3(self.clip_l, self.clip_g, self.t5xxl,
                                           empty_padding=self.empty_padding != "none")
            return cond, {"pooled_output": pooled}

        return encoded(clip, encode)


class CLIPTextEncodeFlux(Node):
    """Encode a prompt for FLUX: the CLIP-L text gives the pooled vector, the T5-XXL text the
    tokens; guidance is FLUX dev's distilled guidance scale (as FluxGuidance sets it)."""
    category = "advanced/conditioning/flux"
    clip: CLIP
    clip_l: str = Text("", multiline=True)
    t5xxl: str = Text("", multiline=True)
    guidance: float = Float(DEFAULT_FLUX_GUIDANCE, min=0.0, max=100.0, step=0.1)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("CLIPTextEncodeFlux",))

    def run(self):
        clip = _flow_clip(self.clip, "flux", "CLIPTextEncodeFlux")
        def encode(clip):
            cond, pooled = clip.encode_flux(self.clip_l, self.t5xxl)
            return cond, {"pooled_output": pooled, "guidance": self.guidance}

        return encoded(clip, encode)


class T5TokenizerOptions(Node):
    """How the T5 text encoder of an SD3 / FLUX / Chroma CLIP pads prompts: min_padding <pad>
    tokens after the prompt's end, then more up to min_length tokens (in place of the usual 77
    for SD3, 256 for FLUX, none for Chroma; 0 leaves the prompt unpadded; Chroma was trained
    seeing one pad: min_padding 1). Encoders without T5 are passed on unchanged."""
    category = "advanced/conditioning"
    clip: CLIP
    min_padding: int = Int(0, min=0, max=10000)
    min_length: int = Int(0, min=0, max=10000)
    outputs = {"clip": CLIP}
    comfy = ComfyAlias(("T5TokenizerOptions",))

    def run(self):
        if self.clip is None:
            raise NodeInputError("clip", "no text encoder connected")
        if not hasattr(self.clip, "with_t5_padding"):
            return self.clip  # as ComfyUI: the options name T5 tokenizers, which this encoder lacks
        return self.clip.with_t5_padding(self.min_padding, self.min_length)


class FluxDisableGuidance(Node):
    """Remove the distilled guidance from the conditioning, so the model's guidance embedding is
    skipped altogether (for FLUX-like models trained without one; not the same as guidance 0)."""
    category = "advanced/conditioning/flux"
    conditioning: CONDITIONING
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("FluxDisableGuidance",))

    def run(self):
        return [(cond, {**options, "guidance": None}) for cond, options in self.conditioning]


class FluxKontextMultiReferenceLatentMethod(Node):
    """How FLUX Kontext places several reference latents (ReferenceLatent) in its position grid:
    offset (index 1, each next to the ones before), index (index 1, 2, 3, ... at the same place),
    uxo/uno (index 0, shifted diagonally past the image, as UNO does). Qwen-Image-Edit places
    its pictures by index unless told offset (uxo/uno counts as offset there, as in ComfyUI)."""
    category = "advanced/conditioning/flux"
    conditioning: CONDITIONING
    reference_latents_method: str = Choice(["offset", "index", "uxo/uno"], "offset")
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("FluxKontextMultiReferenceLatentMethod",))

    def run(self):
        method = "uxo" if self.reference_latents_method == "uxo/uno" else self.reference_latents_method
        return [(cond, {**options, "reference_latents_method": method}) for cond, options in self.conditioning]


def kontext_size(width: int, height: int) -> tuple[int, int]:
    """The Kontext resolution (width, height) whose aspect ratio is nearest width / height (ties:
    the smaller width)."""
    _, w, h = min((abs(width / height - w / h), w, h) for w, h in KONTEXT_RESOLUTIONS)
    return w, h


class FluxKontextImageScale(Node):
    """Resize images to the FLUX Kontext training resolution nearest in aspect ratio (about one
    megapixel, e.g. 1024x1024, 1248x832, 832x1248): centre-cropped to that ratio, then Lanczos."""
    category = "advanced/conditioning/flux"
    image: IMAGE
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("FluxKontextImageScale",))

    def run(self):
        from graphflow.images import center_crop_to_aspect, resize_nchw
        width, height = kontext_size(self.image.shape[2], self.image.shape[1])
        x = center_crop_to_aspect(self.image.movedim(-1, 1), width, height)
        return resize_nchw(x, width, height, "lanczos").movedim(1, -1)
