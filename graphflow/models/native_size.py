"""A checkpoint's native image size (the size it was trained at), from its header alone: the
editor starts a new EmptyLatent at it. First match wins: the demo model's `graphflow.demo`
image_size; ModelSpec `modelspec.resolution` ("1024x1024"); else the family's usual size."""

import json

from .architecture import detect_architecture
from .architectures import ARCHITECTURES
from .flow_architecture import FlowInfo
from .weight_files import WeightFile


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
        arch = ARCHITECTURES.get(info.arch)
        side = arch.native_size if arch is not None and arch.native_size else 512  # (the video families: 512)
        if info.arch == "sd2" and not isinstance(info, FlowInfo) and info.prediction == "v":  # SD2-v: 768
            side = 768
        found = (side, side), f"the usual size of {info.name}"
    (width, height), source = found
    return {"architecture": info.arch, "native_size": [width, height], "source": source}
