"""Animated pictures from an IMAGE batch (each image a frame), as ComfyUI's SaveAnimatedPNG and
SaveAnimatedWEBP write them: `<prefix>_NNNNN_.png` / `.webp` in the outputs folder, the workflow
embedded as SaveImage does (PNG text chunks; in WebP, EXIF tags "prompt:<json>", "workflow:<json>"
and "graphflow:<json>" where ComfyUI puts its own), so both editors reopen them."""

from __future__ import annotations

from graphflow.api import (IMAGE, Bool, Choice, ComfyAlias, Float, Int, Node, NodeInputError, Text, folders, show,
                           subfolder_name, workflow_texts)
from nodes.image import _next_counter, _png_metadata, _save_new, comfy_exif

WEBP_METHODS = {"default": 4, "fastest": 0, "slowest": 6}  # Pillow's method: speed against size


def _save_animation(node, suffix: str, image_format: str, always_animated: bool = False, **options) -> None:
    from graphflow.images import image_to_pil

    if node.images is None or len(node.images) == 0:
        raise NodeInputError("images", "no frames to save (an empty batch)")
    try:
        folder, stem = folders.output_location(node.filename_prefix)
    except ValueError as e:
        raise NodeInputError("filename_prefix", str(e)) from None
    frames = [image_to_pil(image) for image in node.images]
    duration = int(1000.0 / node.fps)  # milliseconds a frame, as ComfyUI rounds it
    name, _ = _save_new(frames[0], folder, stem, _next_counter(folder, stem), suffix, image_format,
                        save_all=True, append_images=frames[1:], duration=duration, **options)
    subfolder = subfolder_name(folders.outputs, folder)
    show(images=[{"filename": name, "subfolder": subfolder, "type": "output"}],
         animated=[always_animated or len(frames) > 1])


class SaveAnimatedPNG(Node):
    """Save the images as the frames of one animated PNG (APNG) in the outputs folder, fps
    frames a second, with the workflow embedded. Lossless; compress_level 0 (fastest, largest) to
    9 (slowest, smallest). Note that PNG writers merge identical consecutive frames."""
    category = "image/animation"
    output_node = True
    images: IMAGE
    filename_prefix: str = Text("graphflow", file_name=True)
    fps: float = Float(6.0, min=0.01, max=1000.0, step=0.01)
    compress_level: int = Int(4, min=0, max=9)
    comfy = ComfyAlias(("SaveAnimatedPNG",))

    def run(self):
        # ComfyUI marks an APNG animated even with one frame (the editor shows it as such)
        _save_animation(self, "_.png", "PNG", always_animated=True, pnginfo=_png_metadata(),
                        compress_level=self.compress_level)


class SaveAnimatedWEBP(Node):
    """Save the images as the frames of one animated WebP in the outputs folder, fps frames a
    second, with the workflow embedded. lossless keeps every pixel; otherwise quality 0-100 sets
    the size against fidelity. method: encoder effort (fastest, default, slowest: smaller files)."""
    category = "image/animation"
    output_node = True
    images: IMAGE
    filename_prefix: str = Text("graphflow", file_name=True)
    fps: float = Float(6.0, min=0.01, max=1000.0, step=0.01)
    lossless: bool = Bool(True)
    quality: int = Int(80, min=0, max=100)
    method: str = Choice(tuple(WEBP_METHODS), default="default")
    comfy = ComfyAlias(("SaveAnimatedWEBP",))

    def run(self):
        exif = comfy_exif(workflow_texts())
        _save_animation(self, "_.webp", "WEBP", exif=exif, lossless=self.lossless, quality=self.quality,
                        method=WEBP_METHODS[self.method])
