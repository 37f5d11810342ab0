"""kijai's ComfyUI-DepthAnythingV2: DownloadAndLoadDepthAnythingV2Model and DepthAnything_V2, under the
pack's class names, inputs, outputs and category, on the model files the user brings (graphflow
downloads nothing). The network is graphflow.models.depth_anything (V2's blocks, DINOv2's position
embedding resampling, as the pack's copy of dinov2.py with interpolate_offset 0.1).

Read from the pack's nodes.py and depth_anything_v2/dpt.py at 047a4ecfd09a951944154c7f3e823566e586c2d5
and depth_anything_v2/dinov2.py at 553187872eeb1d52e50dc53209fa57e569609a72.

The loader offers the pack's eight file names (Kijai/DepthAnythingV2-safetensors on Hugging Face), read
from models/depthanything/ (or an extra_model_paths.yaml entry `depthanything:`); a missing file is
named with the folders searched and where to get it. As the pack does, the name decides what the file
is: "metric" ones get the metric head (a sigmoid times max_depth: 20 for hypersim, 80 for vkitti) and
an inverted map; the size is read from the weights. No map holds metres: each is stretched per picture
and over the batch, which takes any scale away, so max_depth reaches only the network's raw output
(the sigmoid's shape is what sets a metric map apart). The pack computes fp16 files in float16 (autocast); here every
file is computed in float32 (an fp16 file's values exactly), so fp16 maps come out a little cleaner.

DepthAnything_V2, as the pack's process(): the pictures resized (bilinear, corners not aligned) down to
multiples of 14 on each side where they are not, ImageNet normalised, each through the network and
stretched from its least to its greatest value to 0..1 (a flat depth gives 0, where the pack's 0/0 gives
NaN), resized (bilinear) to the pictures' size rounded down to even where it differs, stretched again
over the whole batch, clamped to 0..1, inverted for a metric model. Larger is nearer (white near).
"""

from __future__ import annotations

from graphflow.api import IMAGE, Choice, ComfyAlias, Node, NodeInputError, folders, socket_type
from nodes.pack_nodes_controlnet_aux import non_empty
from nodes.pack_nodes_controlnet_aux_depth import loaded_model, missing_file, on_device, run_network

COMFY_PACK = "ComfyUI-DepthAnythingV2"  # the custom node pack this module's ComfyUI classes come from

FOLDER = "depthanything"
SOURCE = "huggingface.co/Kijai/DepthAnythingV2-safetensors"
MODELS = ("depth_anything_v2_vits_fp16.safetensors", "depth_anything_v2_vits_fp32.safetensors",
          "depth_anything_v2_vitb_fp16.safetensors", "depth_anything_v2_vitb_fp32.safetensors",
          "depth_anything_v2_vitl_fp16.safetensors", "depth_anything_v2_vitl_fp32.safetensors",
          "depth_anything_v2_metric_hypersim_vitl_fp32.safetensors",
          "depth_anything_v2_metric_vkitti_vitl_fp32.safetensors")
PATCH = 14

DAMODEL = socket_type("DAMODEL", "#8d6e63", "ComfyUI-DepthAnythingV2's loaded Depth Anything V2 model")


def max_depth(name: str):
    """The metric head's scale, told from the file name as the pack tells it; None: relative."""
    if "metric" not in name:
        return None
    return 20.0 if "hypersim" in name else 80.0


class DownloadAndLoadDepthAnythingV2Model(Node):
    """Load a Depth Anything V2 model for Depth Anything V2, as kijai's ComfyUI-DepthAnythingV2:
    the file from models/depthanything/ (get it from Kijai/DepthAnythingV2-safetensors on Hugging
    Face; graphflow does not download). "metric" files run with their metric head; their maps are
    stretched to 0..1 as the others' (no metres) and inverted, as the pack's. fp16 files are
    computed in float32 here (the pack runs them in float16)."""
    category = "DepthAnythingV2"
    model: str = Choice(MODELS, "depth_anything_v2_vitl_fp32.safetensors", model_folder=FOLDER)
    outputs = {"da_v2_model": DAMODEL}
    comfy = ComfyAlias(("DownloadAndLoadDepthAnythingV2Model",))

    @classmethod
    def fingerprint(cls, model=None, **widgets):
        try:
            return folders.model_state(FOLDER, model)
        except (FileNotFoundError, ValueError):
            return str(model)  # the run names it missing

    def run(self):
        try:
            path = folders.find_model(FOLDER, self.model)
        except (FileNotFoundError, ValueError):
            raise missing_file("model", self.model, FOLDER, SOURCE) from None
        depth = max_depth(self.model)
        network = loaded_model(path, self.model, version=2, max_depth=depth, input_name="model")
        return {"model": network, "name": self.model, "is_metric": depth is not None}


def normalised(x):
    """(x - least) / (greatest - least); 0 for a flat x."""
    import torch

    low, high = x.min(), x.max()
    return torch.zeros_like(x) if high == low else (x - low) / (high - low)


class DepthAnything_V2(Node):  # noqa: N801 (the pack's class name)
    """Depth maps by a Depth Anything V2 model, as kijai's Depth Anything V2: each picture at its
    own size (each side cut down to a multiple of 14 by a bilinear resize where it is not one),
    its depth stretched to 0..1, back at the picture's size rounded down to even, stretched again
    over the batch; white near, black far (a metric model's map inverted to the same sense)."""
    display_name = "Depth Anything V2"
    category = "DepthAnythingV2"
    da_model: DAMODEL
    images: IMAGE
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("DepthAnything_V2",))

    def run(self):
        import torch
        import torch.nn.functional as F

        from graphflow.models.stage_c_encoder import IMAGENET_MEAN, IMAGENET_STD
        da = self.da_model
        if not isinstance(da, dict) or "model" not in da:
            raise NodeInputError("da_model", "expected a model from DownloadAndLoadDepthAnythingV2Model")
        batch, height, width, channels = non_empty(self.images, "images").shape
        if channels != 3:
            raise NodeInputError("images", f"expected RGB pictures (3 channels), got {channels}")
        net_h, net_w = height - height % PATCH, width - width % PATCH
        if not (net_h and net_w):
            raise NodeInputError("images", f"a {width}x{height} picture: expected both sides at least {PATCH} pixels")
        images = self.images.permute(0, 3, 1, 2).float()
        if (net_h, net_w) != (height, width):
            images = F.interpolate(images, size=(net_h, net_w), mode="bilinear")
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        images = (images - mean[:, None, None]) / std[:, None, None]
        with on_device(da["model"], da["name"]):
            depths = [normalised(run_network(da["model"], image[None], "images")).cpu() for image in images]
        depth = torch.cat(depths)[:, None]
        final = (height // 2 * 2, width // 2 * 2)
        if depth.shape[-2:] != final:
            depth = F.interpolate(depth, size=final, mode="bilinear")
        depth = normalised(depth).clamp(0, 1)
        if da["is_metric"]:
            depth = 1 - depth
        return depth.permute(0, 2, 3, 1).expand(-1, -1, -1, 3).contiguous()
