"""IC-Light (lllyasviel/IC-Light) on an SD1.5 MODEL, as kijai's ComfyUI-IC-Light applies it
(LoadAndApplyICLightUnet, read at nodes.py 22811d903af8 and utils/convert_unet.py b7c3d8b9807c).

An IC-Light file is a weight *offset*: one tensor per parameter of the SD1.5 UNet, the relighting
UNet being base + offset. Its conv_in is wider: 8 input channels ("fc", "fcon": the noisy latent,
then the foreground's latent) or 12 ("fbc": then the background's too). The base's conv_in is
padded with zeros on the new input channels before the offset is added (ComfyUI's "diff" patch
with pad_weight, which the pack asks for).

Layouts read: lllyasviel's diffusers-keyed files (iclight_sd15_fc / fbc / fcon.safetensors:
conv_in.weight, down_blocks.0.resnets.0.conv1.weight, ...) and the LDM-keyed conversions the pack
also reads (input_blocks.0.0.weight, ...: huchenlei's convert_weights.py writes them,
iclight_sd15_fbc_unet_ldm.safetensors). A file of neither layout, or one whose tensors do not fit
the model's UNet, is refused by name.

The offset is not merged into a copy of the UNet: every parameter but conv_in's weight gets a
WeightPatch (added when the model runs, taken off for the base model, as LoRAs are), and only
conv_in's weight, whose shape changes, is a new tensor in a shallow copy of the UNet whose config
says 8 / 12 input channels. The sampler then builds the extra input from the conditioning's
"concat_latent_image" as for InstructPix2Pix (graphflow.sampling.pipeline.ip2p_concat): the raw
latent, resized to the sampled one.
"""

import functools
import zlib
from dataclasses import replace

import torch

from .diffusers_names import unet_names
from .lora import patched_copy
from .weight_files import CheckpointError, WeightFile

CONV_IN = "input_blocks.0.0.weight"
EXTRA_CHANNELS = (4, 8)  # fc / fcon: the foreground's latent; fbc: and the background's
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def read_offset(path) -> dict[str, torch.Tensor]:
    """{our UNet's parameter name: offset} from an IC-Light file of either layout."""
    with WeightFile(path) as f:
        keys = list(f.shapes)
        if "conv_in.weight" in keys:
            try:
                names = unet_names(keys)
            except KeyError as e:
                raise CheckpointError(f"{f.path.name}: {e.args[0]} is not a key of a diffusers SD1.5 UNet; "
                                      f"not an IC-Light file") from None
        elif CONV_IN in keys:
            names = {k: k for k in keys}
        else:
            raise CheckpointError(f"{f.path.name} has neither conv_in.weight (lllyasviel's diffusers layout) nor "
                                  f"{CONV_IN} (an LDM conversion): not an IC-Light UNet offset")
        # in the file's dtype, copied out of the memory-mapped file (which closes here)
        return {ours: f.get(theirs).clone() for ours, theirs in names.items()}


def _offset_added(offset: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return (weight.float() + offset.to(weight.device, torch.float32)).to(weight.dtype)


def check_model(unet) -> None:
    """ValueError unless `unet` has a conv_in and every weight in a float dtype the offsets can be
    added to (not fp8 or GGUF blocks: ComfyUI's "diff" patch rounds into fp8; not done here)."""
    params = dict(unet.named_parameters())
    if CONV_IN not in params:
        raise ValueError("IC-Light applies to an SD1.5 UNet; this model has no conv_in")
    for key, param in params.items():
        if param.dtype not in FLOAT_DTYPES:
            raise ValueError(f"this model stores {key} as {param.dtype}; IC-Light needs a UNet in float16, "
                             f"bfloat16 or float32 (not fp8 or GGUF)")


def check_offset(unet, offset: dict[str, torch.Tensor], name: str) -> int:
    """The file's input channels (8 or 12); CheckpointError unless every tensor is an offset for one
    of `unet`'s parameters (conv_in's weight: widened by 4 or 8 input channels)."""
    params = dict(unet.named_parameters())
    for key, value in offset.items():
        if key not in params:
            raise CheckpointError(f"{name}: {key} is no weight of this model's UNet: the file is not for SD1.5")
        want = tuple(params[key].shape)
        if key == CONV_IN:
            wider = value.shape[1] - want[1] if value.ndim == 4 else 0
            same_kernel = value.ndim == 4 and (value.shape[0], *value.shape[2:]) == (want[0], *want[2:])
            if wider not in EXTRA_CHANNELS or not same_kernel:
                raise CheckpointError(f"{name}: {CONV_IN} is {tuple(value.shape)}; an IC-Light conv_in for this UNet "
                                      f"is ({want[0]}, {want[1] + 4} or {want[1] + 8}, {want[2]}, {want[3]})")
        elif tuple(value.shape) != want:
            raise CheckpointError(f"{name}: {key} is {tuple(value.shape)}, the model's {want}: the file is for "
                                  f"another model")
    if CONV_IN not in offset:
        raise CheckpointError(f"{name} has no offset for conv_in: not an IC-Light file")
    return offset[CONV_IN].shape[1]


def apply_offset(model, offset: dict[str, torch.Tensor], name: str):
    """`model` (a DiffusionModel) relit by the IC-Light offset: a new model, the input unchanged.
    ValueError for a model it can't relight (`check_model`), CheckpointError for an offset that
    doesn't fit the model."""
    from graphflow.memory import WeightPatch, manager

    unet = model.unet
    check_model(unet)
    in_channels = check_offset(unet, offset, name)
    conv = unet.get_submodule(CONV_IN.rpartition(".")[0])
    # conv_in as the input model's patches make it (a LoRA on it), then widened: those patches
    # cannot follow the wider weight
    own = tuple(WeightPatch("weight", p.change, p.seed) for p in model.patches if p.param == CONV_IN)
    base = manager().weights(conv, own)["weight"]
    padded = torch.cat([base.float(), base.new_zeros(base.shape[0], in_channels - base.shape[1],
                                                    *base.shape[2:], dtype=torch.float32)], dim=1)
    widened = (padded + offset[CONV_IN].to(base.device, torch.float32)).to(base.dtype)
    relit = patched_copy(unet, {CONV_IN: widened})
    relit.config = replace(unet.config, in_channels=in_channels)
    patches = tuple(WeightPatch(key, functools.partial(_offset_added, value),
                                zlib.crc32(f"diffusion_model.{key}".encode()))
                    for key, value in offset.items() if key != CONV_IN)
    kept = tuple(p for p in model.patches if p.param != CONV_IN)
    return model.with_patches(kept + patches).with_unet(relit)
