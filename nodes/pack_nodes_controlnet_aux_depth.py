"""comfyui_controlnet_aux's (Fannovel16) Depth Anything preprocessors, on weight files the user
brings (graphflow downloads nothing): DepthAnythingV2Preprocessor and DepthAnythingPreprocessor (V1),
under the pack's class names, inputs (in its order) and defaults. The network is
graphflow.models.depth_anything.

Read from the pack's source in the reference index:
- node_wrappers/depth_anything_v2.py at 2e4e7f68df6378a3e13685d0144dfc24497ac221 and
  src/custom_controlnet_aux/depth_anything_v2/__init__.py at 648a5d705a663eb2b9584aef956294ce632e8b18
  (DepthAnythingV2Detector: the model_configs, infer_image with input_size 518, min-max to 0..255,
  the map then resized with pad to `resolution`), dpt.py at 2e4e7f68 (image2tensor);
- node_wrappers/depth_anything.py at 648a5d705a663eb2b9584aef956294ce632e8b18 and the pack's current V1,
  src/custom_controlnet_aux/depth_anything/__init__.py at 5d01346615fbb843fd54248230729834774311aa ->
  depth_anything/transformers.py at 586c8f5ea5c9d92593c927c0e2713b4b1c68854d (DepthAnythingDetector:
  transformers' depth-estimation pipeline on LiheYoung/depth-anything-*-hf, picked by the file name);
  the pipeline's steps from transformers 5 (pipelines/depth_estimation.py, DPTImageProcessor's resize
  rule and post_process_depth_estimation), the -hf repositories' processor settings (518x518,
  keep_aspect_ratio, ensure_multiple_of 14, bicubic, ImageNet mean and std). The hub models are the
  .pth files' weights converted, so ours runs the same steps on the file the user brings;
- DepthAnything/Depth-Anything-V2 depth_anything_v2/util/transform.py at
  8def4435635cb88023e49577f04aa2f729d26a53 (Resize's lower_bound / ensure_multiple_of rule);
- __init__.py's AIO_Preprocessor at 3b3532feb29e1ad551c3e44153482388414ecb96 (runs these with their
  defaults).

Weights: the `annotators` models folder (models/annotators/, or an extra_model_paths.yaml entry
`annotators:`; pointing it at the pack's own download folder, custom_nodes/comfyui_controlnet_aux/ckpts,
works). ckpt_name is found by file name at the top of the folder or in any subfolder (the pack's
layout: depth-anything/Depth-Anything-V2-Large/depth_anything_v2_vitl.pth), else a safetensors
conversion of the same name (depth_anything_v2_vitl.safetensors), which may also be a -hf repository's
model.safetensors (transformers' layout) renamed so. The size is read from the weights, not the name.
The model of the last file asked for is kept (float32, as the pack runs it) for the next run until
another file is asked for; a model held elsewhere too (kijai's loader's output, in the executor's
output cache) stays in memory while that holds it. The memory manager puts a model on the compute
device once for a run's whole batch and takes it off again after (the "annotator" kind is
transient), as the pack moves its model once per run.

The two follow different pipelines, as the pack's do:
- V2 runs the network on the picture as given (not at `resolution`): resized (bicubic, in float64 as
  OpenCV resizes the pack's 0..1 array) so its short side is 518 and both sides are multiples of 14
  (each side rounded to the nearest multiple, half to even, and raised to 518 if under), ImageNet
  normalised, position embeddings resampled as DINOv2 does; the depth resized (bilinear, aligned
  corners) to the picture's size, stretched from its least to its greatest value to 0..255 and
  truncated to 8 bits, then resized with pad to `resolution` (INTER_AREA shrinking, bicubic growing)
  as the model-free preprocessors resize their input;
- V1 first resizes the picture with pad to `resolution` (edge-padded to multiples of 64), then runs
  transformers' pipeline steps on that: resized by DPTImageProcessor's rule (the one scale of 518 /
  height and 518 / width nearer 1 for both sides, each side rounded half to even to a multiple of
  14) with torchvision's antialiased bicubic on the 8-bit picture, ImageNet normalised in float32,
  position embeddings resampled to the patch grid's size as transformers' DINOv2 does; the depth
  resized (bicubic) to the padded size, stretched to 0..255 and truncated (the pipeline's depth
  picture), stretched again (the pack's), the pad cut off.
A picture of one depth everywhere gives black (the pack's 0/0 is NaN, which its uint8 cast makes 0
on x86). Larger values are nearer (white near, black far). A network input with a side over 16384
pixels (a very long, thin picture; for V1 also one under 14) is refused, and so is one whose working
memory the machine lacks.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from graphflow.api import IMAGE, Choice, ComfyAlias, Node, NodeInputError, check_run_memory, folders
from nodes.image import MAX_SIZE
from nodes.pack_nodes_controlnet_aux import (Resolution, check_scaled, crop, detect_resolution, detected_estimate,
                                             each_image, hwc3, resize_with_pad, scaled_size)

COMFY_PACK = "comfyui_controlnet_aux"  # the custom node pack this module's ComfyUI classes come from

DEPTH = "ControlNet Preprocessors/Normal and Depth Estimators"
FOLDER = "annotators"
NET_SIDE = 518  # the detectors' input_size: the network's short side
# the pack's choices and where it downloads each from
V2_FILES = {"depth_anything_v2_vitg.pth": "huggingface.co/depth-anything/Depth-Anything-V2-Giant",
            "depth_anything_v2_vitl.pth": "huggingface.co/depth-anything/Depth-Anything-V2-Large",
            "depth_anything_v2_vitb.pth": "huggingface.co/depth-anything/Depth-Anything-V2-Base",
            "depth_anything_v2_vits.pth": "huggingface.co/depth-anything/Depth-Anything-V2-Small"}
V1_SOURCE = ("the Hugging Face space huggingface.co/spaces/LiheYoung/Depth-Anything, folder checkpoints/ (or "
             "the LiheYoung/depth-anything-*-hf repository's model.safetensors renamed to the name's .safetensors)")
V1_FILES = {name: V1_SOURCE for name in ("depth_anything_vitl14.pth", "depth_anything_vitb14.pth",
                                         "depth_anything_vits14.pth")}


# -- the weights -----------------------------------------------------------------------------------


def find_weights(name: str, sources: dict) -> Path:
    """The file for ckpt_name `name` in the annotators folders (see the module's help)."""
    listed = folders.list_models(FOLDER)
    stem = name.rsplit(".", 1)[0]
    for wanted in (name, f"{stem}.safetensors", f"{stem}.sft"):
        found = sorted((n for n in listed if n.rsplit("/", 1)[-1] == wanted), key=lambda n: (n.count("/"), n))
        if found:
            return folders.find_model(FOLDER, found[0])
    raise missing_file("ckpt_name", name, FOLDER, sources.get(name, "the pack"), " or a subfolder of it",
                       "; a .safetensors conversion of the same name is read too")


def missing_file(input_name: str, name: str, folder: str, source: str, where: str = "", note: str = ""):
    """The refusal of a weights file `name` not found in models folder `folder`: the folders
    searched, `where` else it may be, where to get it and `note`."""
    searched = ", ".join(str(d) for d in folders.model_dirs(folder)[:-1])  # the last: graphflow's bundled models
    return NodeInputError(input_name, f"{name} is not in the {folder} models folder ({searched}){where}: get it "
                                      f"from {source} and put it there (graphflow does not download{note})")


_loaded: dict = {}  # (path, file state, how it runs) -> the model: the last one asked for
_loading = threading.Lock()  # one read at a time: another file's read clears _loaded


def loaded_model(path: Path, name: str, version: int, resampling: str = "dinov2", max_depth=None,
                 input_name: str = "ckpt_name"):
    """The model in the file at `path` (chosen as `name` by the input `input_name`), kept for the
    next run until another file is asked for (by Depth Anything nodes of either pack)."""
    from graphflow.models.depth_anything import load_depth_anything
    from graphflow.models.weight_files import CheckpointError, file_state

    key = (str(path), file_state(path), version, resampling, max_depth)
    with _loading:
        model = _loaded.get(key)
        if model is None:
            _loaded.clear()  # drop the previous file before reading the next
            try:
                model = load_depth_anything(path, version, resampling=resampling, max_depth=max_depth)
            except CheckpointError as e:
                raise NodeInputError(input_name, f"{name}: {e}") from None
            _loaded[key] = model
    return model


def depth_model(name: str, sources: dict, version: int, resampling: str = "dinov2"):
    return loaded_model(find_weights(name, sources), name, version, resampling)


def weights_state(name, sources: dict) -> str:
    """The chosen file's identity for the node cache (its name when missing: the run says so)."""
    from graphflow.models.weight_files import file_state

    try:
        path = find_weights(name, sources)
    except (NodeInputError, ValueError):
        return str(name)
    return f"{path}:{file_state(path)}"


# -- the pack's pre- and post-processing ------------------------------------------------------------


def network_size(height: int, width: int) -> tuple[int, int]:
    """Resize(518, 518, keep_aspect_ratio, ensure_multiple_of=14, lower_bound): (height, width)."""
    import numpy as np
    scale = max(NET_SIDE / height, NET_SIDE / width)

    def multiple(x: float) -> int:
        y = int(np.round(x / 14) * 14)
        return y if y >= NET_SIDE else int(np.ceil(x / 14) * 14)

    return multiple(scale * height), multiple(scale * width)


def network_input(rgb):
    """The uint8 RGB picture as the network takes it: [1, 3, h, w] float32 (image2tensor / transform)."""
    import cv2
    import numpy as np
    import torch

    from graphflow.models.stage_c_encoder import IMAGENET_MEAN, IMAGENET_STD
    height, width = network_size(*rgb.shape[:2])
    if max(height, width) > MAX_SIZE:
        raise NodeInputError("image", f"a {rgb.shape[1]}x{rgb.shape[0]} picture would reach Depth Anything as "
                                      f"{width}x{height} (its short side at {NET_SIDE}): expected a picture whose long "
                                      f"side is at most {MAX_SIZE // NET_SIDE} times its short side, so that each "
                                      f"side stays within {MAX_SIZE} pixels")
    image = cv2.resize(rgb / 255.0, (width, height), interpolation=cv2.INTER_CUBIC)
    image = (image - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32))[None]


def stretched(depth):
    """(depth - least) / (greatest - least) * 255, truncated to uint8, in float32 as the pack does;
    a flat depth gives 0."""
    import numpy as np
    low, high = depth.min(), depth.max()
    if high == low:
        return np.zeros(depth.shape, np.uint8)
    return ((depth - low) / (high - low) * 255.0).astype(np.uint8)


@contextlib.contextmanager
def on_device(model, name: str):
    """The model on the compute device, without gradients, for a whole batch: loaded once and
    offloaded once after it ("annotator" is a transient kind), as the pack moves its model once per
    run. `name`: the file's, for the memory manager's records."""
    import torch

    from graphflow import memory

    with memory.use(model, "annotator", f"depth_anything:{name}"), torch.no_grad():
        yield


def run_network(model, pixels, input_name: str = "image"):
    """Relative depth [1, h, w] (float32, on the model's device) of the network input, inside
    `on_device`; an input whose working memory the machine lacks is refused naming `input_name`."""
    from graphflow import memory

    config = model.config
    height, width = pixels.shape[-2:]
    # the head's largest maps: features/2 channels then 32 at the input's size, twice for interpolation
    check_run_memory(input_name, f"Depth Anything at {width}x{height}", data=height * width * 4 * (config.features + 64))
    return model(pixels.to(memory.manager().device_for(model))).float()


def v2_map(model, rgb, resolution: int):
    import cv2
    import numpy as np
    import torch.nn.functional as F
    rgb = hwc3(rgb)
    check_scaled(*scaled_size(rgb.shape[0], rgb.shape[1], resolution), resolution, rgb.shape[0], rgb.shape[1])
    depth = run_network(model, network_input(rgb))
    depth = F.interpolate(depth[:, None], rgb.shape[:2], mode="bilinear", align_corners=True)[0, 0].cpu().numpy()
    grey = stretched(depth)
    padded, size = resize_with_pad(np.stack([grey] * 3, axis=2), resolution, cv2.INTER_CUBIC)
    return crop(padded, size)


def dpt_size(height: int, width: int) -> tuple[int, int]:
    """DPTImageProcessor's size for Depth Anything's -hf processors (518x518, keep_aspect_ratio,
    ensure_multiple_of 14): the one scale nearer 1 for both sides, each side rounded (half to
    even) to a multiple of 14 (0 for a side under 7 pixels: the caller refuses that)."""
    scale_h, scale_w = NET_SIDE / height, NET_SIDE / width
    scale = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h
    return round(scale * height / 14) * 14, round(scale * width / 14) * 14


def dpt_input(rgb):
    """The uint8 RGB picture as DPTImageProcessor (transformers' torchvision one) gives it:
    resized bicubic with antialiasing on the uint8 tensor, then (x - 255 mean) / (255 std) in float32."""
    import torch
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as tvF

    from graphflow.models.stage_c_encoder import IMAGENET_MEAN, IMAGENET_STD
    height, width = dpt_size(*rgb.shape[:2])
    if max(height, width) > MAX_SIZE or min(height, width) == 0:
        raise NodeInputError("image", f"a {rgb.shape[1]}x{rgb.shape[0]} picture (resized with pad to `resolution`) "
                                      f"would reach Depth Anything as {width}x{height}: expected a picture whose "
                                      f"sides give the network 14 to {MAX_SIZE} pixels each")
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    image = tvF.resize(image, [height, width], interpolation=InterpolationMode.BICUBIC, antialias=True)
    factor = 1.0 / (1 / 255)  # the processor's fused rescale: mean and std times 1 / rescale_factor
    return tvF.normalize(image.to(torch.float32), (torch.tensor(IMAGENET_MEAN) * factor).tolist(),
                         (torch.tensor(IMAGENET_STD) * factor).tolist())


def v1_map(model, rgb, resolution: int):
    """The pack's current DepthAnythingDetector (transformers' depth-estimation pipeline): the
    picture resized with pad to `resolution`, the pipeline's pre-processing, network and
    post-processing on it (depth back at its size, bicubic; stretched to 0..255 as uint8), the pack's
    stretch again, the pad cut off."""
    import cv2
    import numpy as np
    import torch.nn.functional as F
    rgb = hwc3(rgb)
    check_scaled(*scaled_size(rgb.shape[0], rgb.shape[1], resolution), resolution, rgb.shape[0], rgb.shape[1])
    padded, size = resize_with_pad(rgb, resolution, cv2.INTER_CUBIC)
    depth = run_network(model, dpt_input(padded))
    depth = F.interpolate(depth[:, None], padded.shape[:2], mode="bicubic", align_corners=False)[0, 0].cpu().numpy()
    grey = stretched(stretched(depth).astype(np.float32))  # the pipeline's 8 bits, then the pack's
    return crop(np.stack([grey] * 3, axis=2), size)


# -- the nodes -------------------------------------------------------------------------------------


class DepthAnythingV2Preprocessor(Node):
    """Relative depth (white near, black far) by Depth Anything V2, as comfyui_controlnet_aux's
    Depth Anything V2 - Relative: the picture at 518 pixels on its short side through the network,
    the depth back at the picture's size stretched to 0..255, then resized to `resolution` on its
    short side. ckpt_name is the pack's file name: put the file (from depth-anything's
    Depth-Anything-V2-Small / Base / Large on Hugging Face) in models/annotators/ or any
    subfolder; a .safetensors conversion of the same name is read too, and so is a -hf
    repository's model.safetensors renamed so (transformers' layout). graphflow downloads nothing."""
    display_name = "Depth Anything V2 - Relative"
    category = DEPTH
    image: IMAGE
    ckpt_name: str = Choice(tuple(V2_FILES), "depth_anything_v2_vitl.pth")
    resolution: int = Resolution()
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("DepthAnythingV2Preprocessor",), optional=("ckpt_name", "resolution"))
    estimate = classmethod(lambda cls, widgets, inputs: detected_estimate(widgets, inputs))

    @classmethod
    def fingerprint(cls, ckpt_name=None, **widgets):
        return weights_state(ckpt_name, V2_FILES)

    def run(self):
        model = depth_model(self.ckpt_name, V2_FILES, version=2)
        res = detect_resolution(self.resolution)
        with on_device(model, self.ckpt_name):
            return each_image(self.image, "image", lambda x: v2_map(model, x, res))


class DepthAnythingPreprocessor(Node):
    """Relative depth (white near, black far) by Depth Anything (V1), as comfyui_controlnet_aux's
    Depth Anything (its transformers pipeline): the picture resized with pad to `resolution` on its
    short side, then through transformers' depth-estimation steps (resized for the network by
    DPTImageProcessor's rule, about 518 pixels; the depth back at that size, stretched to 0..255),
    the pad cut off. The pack fetches LiheYoung/depth-anything-*-hf by the name; here ckpt_name is
    the file: put it (from the Hugging Face space LiheYoung/Depth-Anything, checkpoints/) in
    models/annotators/ or any subfolder; a .safetensors conversion of the same name is read too,
    and so is the -hf repository's model.safetensors renamed so (depth_anything_vitl14.safetensors
    for depth-anything-large-hf). graphflow downloads nothing."""
    display_name = "Depth Anything"
    category = DEPTH
    image: IMAGE
    ckpt_name: str = Choice(tuple(V1_FILES), "depth_anything_vitl14.pth")
    resolution: int = Resolution()
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("DepthAnythingPreprocessor",), optional=("ckpt_name", "resolution"))
    estimate = classmethod(lambda cls, widgets, inputs: detected_estimate(widgets, inputs))

    @classmethod
    def fingerprint(cls, ckpt_name=None, **widgets):
        return weights_state(ckpt_name, V1_FILES)

    def run(self):
        model = depth_model(self.ckpt_name, V1_FILES, version=1, resampling="size")
        res = detect_resolution(self.resolution)
        with on_device(model, self.ckpt_name):
            return each_image(self.image, "image", lambda x: v1_map(model, x, res))


# what AIO_Preprocessor runs from this module (nodes/pack_nodes_controlnet_aux.py)
DEPTH_NODES = {"DepthAnythingPreprocessor": DepthAnythingPreprocessor,
               "DepthAnythingV2Preprocessor": DepthAnythingV2Preprocessor}
