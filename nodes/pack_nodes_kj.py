"""ComfyUI-KJNodes' (kijai's) backend nodes beyond those in nodes/pack_nodes.py, under the pack's
class names, inputs and outputs: its constants (INTConstant, FloatConstant, StringConstant,
StringConstantMultiline, BOOLConstant), batch ranges (GetImageRangeFromBatch,
GetLatentRangeFromBatch), ImageBatchMulti, and its CUDA speed patches (PathchSageAttentionKJ,
TorchCompileModelWanVideoV2, ModelPatchTorchSettings), which pass the model on unchanged here."""

from __future__ import annotations

from graphflow.api import BOOLEAN, FLOAT, IMAGE, INT, LATENT, MASK, MODEL, STRING, Bool, Choice, ComfyAlias, \
    Float, Int, Node, NodeInputError, Text, warn
from nodes.image import _image, _resize_image

KJ_INT_LIMIT = 0xffffffffffffffff  # the pack's INTConstant and FloatConstant bounds, both signs

# -- constants --------------------------------------------------------------------------------


class KJIntConstant(Node):
    """A whole number to link into several inputs, as KJNodes' INT Constant does."""
    category = "KJNodes/constants"
    value: int = Int(0, min=-KJ_INT_LIMIT, max=KJ_INT_LIMIT)
    outputs = {"value": INT}
    comfy = ComfyAlias(("INTConstant",))

    def run(self):
        return self.value


class KJFloatConstant(Node):
    """A number to link into several inputs, as KJNodes' Float Constant does: given rounded to
    6 decimals, as the pack gives it."""
    category = "KJNodes/constants"
    value: float = Float(0.0, min=-KJ_INT_LIMIT, max=KJ_INT_LIMIT, step=0.00001)
    outputs = {"value": FLOAT}
    comfy = ComfyAlias(("FloatConstant",))

    def run(self):
        return round(self.value, 6)


class KJStringConstant(Node):
    """One line of text to link into several inputs, as KJNodes' String Constant does."""
    category = "KJNodes/constants"
    string: str = Text("")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("StringConstant",))

    def run(self):
        return self.string


class KJStringConstantMultiline(Node):
    """Text to link into several inputs, as KJNodes' String Constant Multiline does: with
    strip_newlines, every line break is removed (the lines run together, not joined by spaces)
    and spaces at both ends are cut."""
    category = "KJNodes/constants"
    string: str = Text("", multiline=True)
    strip_newlines: bool = Bool(True)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("StringConstantMultiline",))

    def run(self):
        return self.string.replace("\n", "").strip() if self.strip_newlines else self.string


class KJBoolConstant(Node):
    """True or false to link into several inputs, as KJNodes' BOOL Constant does."""
    category = "KJNodes/constants"
    value: bool = Bool(True)
    outputs = {"value": BOOLEAN}
    comfy = ComfyAlias(("BOOLConstant",))

    def run(self):
        return self.value


# -- batches ----------------------------------------------------------------------------------


def kj_range(count: int, start: int, frames: int, name: str) -> tuple[int, int]:
    """KJNodes' batch range of `count` items: start_index -1 takes the last `frames` (all, if
    fewer), num_frames -1 runs to the end; the end is cut to the batch. (start, end)."""
    if start == -1:
        start = max(0, count - frames)
    if not 0 <= start < count:
        raise NodeInputError("start_index", f"{start} is outside the {name} (0 to {count - 1}, or -1 for the last)")
    return start, count if frames == -1 else min(start + frames, count)


class GetImageRangeFromBatch(Node):
    """Take num_frames images (and masks) from start_index on, as KJNodes' Get Image or Mask
    Range From Batch does: start_index -1 takes the last num_frames; fewer are given when the
    batch ends first. The masks take the images' start when both are connected (as the pack
    does); an output whose input is not connected gives nothing."""
    category = "KJNodes/image"
    start_index: int = Int(0, min=-1, max=4096)
    num_frames: int = Int(1, min=1, max=4096)
    images: IMAGE = None
    masks: MASK = None
    outputs = {"IMAGE": IMAGE, "MASK": MASK}
    comfy = ComfyAlias(("GetImageRangeFromBatch",))

    def run(self):
        start, images, masks = self.start_index, None, None
        if self.images is not None:
            start, end = kj_range(len(self.images), start, self.num_frames, "image batch")
            images = self.images[start:end]
        if self.masks is not None:
            start, end = kj_range(len(self.masks), start, self.num_frames, "mask batch")
            masks = self.masks[start:end]
        return images, masks


class GetLatentRangeFromBatch(Node):
    """Take num_frames latents from start_index on, as KJNodes' Get Latent Range From Batch
    does: along the batch of image latents, along the frames of video latents (B, C, T, H, W).
    start_index -1 takes the last num_frames; num_frames -1 runs to the end. Like the pack, only
    the samples are given on (no noise mask or batch indices)."""
    category = "KJNodes/latents"
    latents: LATENT
    start_index: int = Int(0, min=-1, max=4096)
    num_frames: int = Int(1, min=-1, max=4096)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("GetLatentRangeFromBatch",))

    def run(self):
        x = self.latents.get("samples") if isinstance(self.latents, dict) else None
        if x is None or x.ndim not in (4, 5):
            raise NodeInputError("latents", "expected a LATENT of image (B, C, H, W) or video (B, C, T, H, W) samples")
        video = x.ndim == 5
        start, end = kj_range(x.shape[2 if video else 0], self.start_index, self.num_frames,
                              "latent's frames" if video else "latent batch")
        return {"samples": (x[:, :, start:end] if video else x[start:end]).contiguous()}


class ImageBatchMulti(Node):
    """Join image_1 ... image_<inputcount> into one batch, as KJNodes' Image Batch Multi does:
    each next image is added as ImageBatch adds image2 (resized, centre-cropped, bilinear, to
    the first image's size). Up to 20 inputs here (the pack allows 1000)."""
    category = "KJNodes/image"
    inputcount: int = Int(2, min=2, max=20)
    image_1: IMAGE
    image_2: IMAGE
    image_3: IMAGE = None
    image_4: IMAGE = None
    image_5: IMAGE = None
    image_6: IMAGE = None
    image_7: IMAGE = None
    image_8: IMAGE = None
    image_9: IMAGE = None
    image_10: IMAGE = None
    image_11: IMAGE = None
    image_12: IMAGE = None
    image_13: IMAGE = None
    image_14: IMAGE = None
    image_15: IMAGE = None
    image_16: IMAGE = None
    image_17: IMAGE = None
    image_18: IMAGE = None
    image_19: IMAGE = None
    image_20: IMAGE = None
    outputs = {"images": IMAGE}
    comfy = ComfyAlias(("ImageBatchMulti",))

    def run(self):
        import torch
        first = _image(self.image_1, "image_1")
        parts = [first]
        for i in range(2, self.inputcount + 1):
            name = f"image_{i}"
            if getattr(self, name) is None:
                raise NodeInputError(name, f"not connected, but inputcount is {self.inputcount}")
            image = _image(getattr(self, name), name)
            if image.shape[-1] != first.shape[-1]:
                raise NodeInputError(name, f"{image.shape[-1]} channels; image_1 has {first.shape[-1]}")
            if image.shape[1:3] != first.shape[1:3]:
                image = _resize_image(image, first.shape[2], first.shape[1], "bilinear", crop=True)
            parts.append(image.to(first.dtype))
        return torch.cat(parts)


# -- CUDA speed patches -----------------------------------------------------------------------

SAGE_ATTENTION_MODES = ("disabled", "auto", "sageattn_qk_int8_pv_fp16_cuda", "sageattn_qk_int8_pv_fp16_triton",
                        "sageattn_qk_int8_pv_fp8_cuda", "sageattn_qk_int8_pv_fp8_cuda++", "sageattn3",
                        "sageattn3_per_block_mean")


class PathchSageAttentionKJ(Node):
    """KJNodes' Patch Sage Attention KJ (the pack's spelling), which swaps ComfyUI's attention for
    the SageAttention CUDA kernels: here the model is passed on unchanged, with a warning when a
    mode is chosen. graphflow picks its attention backend itself (see `graphflow --help`); the
    images differ from SageAttention's only by its quantisation error."""
    category = "KJNodes/experimental"
    model: MODEL
    sage_attention: str = Choice(SAGE_ATTENTION_MODES, "disabled")
    allow_compile: bool = Bool(False)
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("PathchSageAttentionKJ",), optional=("allow_compile",))

    def run(self):
        if self.sage_attention != "disabled":
            warn(f"SageAttention ({self.sage_attention}) is not used: the model is passed on unchanged and runs "
                 "with graphflow's own attention backend")
        return self.model


COMPILE_MODES = ("default", "max-autotune", "max-autotune-no-cudagraphs", "reduce-overhead")


class TorchCompileModelWanVideoV2(Node):
    """KJNodes' TorchCompileModelWanVideoV2, which torch.compiles a Wan model's blocks: here the
    model is passed on unchanged, with a warning. To compile in graphflow use the core
    TorchCompileModel node or the --compile option; the images are the same either way."""
    category = "KJNodes/torchcompile"
    model: MODEL
    backend: str = Choice(("inductor", "cudagraphs"), "inductor")
    fullgraph: bool = Bool(False)
    mode: str = Choice(COMPILE_MODES, "default")
    dynamic: bool = Bool(False)
    compile_transformer_blocks_only: bool = Bool(True)
    dynamo_cache_size_limit: int = Int(64, min=0, max=1024)
    force_parameter_static_shapes: bool = Bool(True)
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("TorchCompileModelWanVideoV2",), optional=("force_parameter_static_shapes",))

    def run(self):
        warn("the model is passed on uncompiled: use the TorchCompileModel node or --compile to compile it")
        return self.model


class ModelPatchTorchSettings(Node):
    """KJNodes' Model Patch Torch Settings, which turns on CUDA fp16 matmul accumulation while the
    model runs: here the model is passed on unchanged (with a warning when it is asked for);
    graphflow keeps torch's default accumulation."""
    category = "KJNodes/experimental"
    model: MODEL
    enable_fp16_accumulation: bool = Bool(False)
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("ModelPatchTorchSettings",))

    def run(self):
        if self.enable_fp16_accumulation:
            warn("fp16 accumulation is not turned on: the model is passed on unchanged")
        return self.model
