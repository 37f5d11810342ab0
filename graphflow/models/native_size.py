"""A checkpoint's native image size (the size it was trained at), from its header alone: the
editor starts a new EmptyLatent at it. First match wins: the demo model's `graphflow.demo`
image_size; ModelSpec `modelspec.resolution` ("1024x1024"); else the family's usual size."""

import json

from .architecture import detect_architecture
from .flow_architecture import FlowInfo
from .weight_files import WeightFile

# The family's training size: SD1 and SD2-base 512, SD2-v 768, SDXL, SD3, FLUX, Chroma and Lumina 2 1024,
# HiDream-I1 1024, Qwen-Image 1328 (its 1:1 size), HunyuanImage 2.1 2048 (EmptyHunyuanImageLatent's default).
FAMILY_SIZES = {"sd1": 512, "sd2": 512, "sdxl": 1024, "sdxl_refiner": 1024, "sd3": 1024, "flux": 1024, "chroma": 1024,
                "lumina2": 1024, "qwen_image": 1328, "hidream": 1024, "hunyuan_image": 2048}


def _metadata_size(metadata: dict) -> tuple[tuple[int, int], str] | None:
    try:
        side = int(json.loads(metadata.get("graphflow.demo", "{}")).get("image_size", 0))
    except (ValueError, TypeError, AttributeError):
        side = 0
    if side > 0:
        return (side, side), "metadata graphflow.demo"
    text = str(metadata.get("modelspec.resolution", "")).lower().replace(" ", "")
    width, _, height = text.partition("x")
    if width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0:
        return (int(width), int(height)), "metadata modelspec.resolution"
    return None


def native_size(path) -> dict:
    """{"architecture", "native_size": [width, height], "source"} of a checkpoint file."""
    with WeightFile(path) as f:
        info = detect_architecture(f.shapes, f.metadata, get_tensor=f.get)
        found = _metadata_size(f.metadata or {})
    if found is None:
        side = FAMILY_SIZES.get(info.arch, 512)
        if info.arch == "sd2" and not isinstance(info, FlowInfo) and info.prediction == "v":
            side = 768
        found = (side, side), f"the usual size of {info.name}"
    (width, height), source = found
    return {"architecture": info.arch, "native_size": [width, height], "source": source}
