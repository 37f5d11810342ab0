"""Image nodes: load, save, preview, scale, pad for outpainting."""

import hashlib
import json
import re
import uuid

import torch
from PIL import Image, ImageSequence, PngImagePlugin, UnidentifiedImageError

from graphflow.api import (IMAGE, MASK, Choice, ComfyAlias, Estimate, Int, Node, NodeInputError, Size, Text,
                           current_workflow, folders, safe_join, show)
from graphflow.images import (RESIZE_METHODS, center_crop_to_aspect, image_to_pil, pil_alpha_mask,
                              pil_to_image, resize_nchw)

MAX_SIZE = 16384


class LoadImage(Node):
    """Load an image from the inputs folder. Its alpha channel becomes the mask
    (transparent pixels = 1, the area to repaint); an image without alpha gives an empty mask.
    Frames of an animated image become a batch."""
    category = "image"
    image: str = Choice(folders.list_inputs, upload="image", description="a file in the inputs folder")
    outputs = {"image": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("LoadImage",))

    @classmethod
    def fingerprint(cls, image):
        return hashlib.sha256(folders.input_path(image).read_bytes()).hexdigest()

    def run(self):
        path = folders.input_path(self.image)
        try:
            picture = Image.open(path)
        except (FileNotFoundError, UnidentifiedImageError) as e:
            raise NodeInputError("image", f"can't read {self.image!r} as an image: {e}") from None
        images, masks = [], []
        for frame in ImageSequence.Iterator(picture):
            image = pil_to_image(frame)
            if images and image.shape != images[0].shape:
                break  # frames of another size (some GIFs): keep the first run of equal frames
            images.append(image)
            masks.append(pil_alpha_mask(frame))
        return torch.cat(images), torch.cat(masks)


def _png_metadata() -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    workflow = current_workflow()
    if workflow:
        info.add_text("graphflow", json.dumps(workflow))
    return info


def _next_counter(folder, stem: str) -> int:
    pattern = re.compile(re.escape(stem) + r"_(\d{5})\.png$")
    numbers = [int(m.group(1)) for p in folder.glob(f"{stem}_*.png") if (m := pattern.match(p.name))]
    return max(numbers, default=0) + 1


class SaveImage(Node):
    """Save images as PNG files in the outputs folder, with the workflow embedded so that
    dropping the file on the editor restores the graph. The prefix may contain a subfolder."""
    category = "image"
    output_node = True
    images: IMAGE
    filename_prefix: str = Text("graphflow", file_name=True)
    comfy = ComfyAlias(("SaveImage",))

    def run(self):
        try:
            target = safe_join(folders.outputs, self.filename_prefix)
        except ValueError as e:
            raise NodeInputError("filename_prefix", str(e)) from None
        folder, stem = target.parent, target.name
        folder.mkdir(parents=True, exist_ok=True)
        subfolder = folder.relative_to(folders.outputs).as_posix()
        subfolder = "" if subfolder == "." else subfolder
        counter = _next_counter(folder, stem)
        metadata = _png_metadata()
        saved = []
        for i, image in enumerate(self.images):
            name = f"{stem}_{counter + i:05d}.png"
            image_to_pil(image).save(folder / name, pnginfo=metadata, compress_level=4)
            saved.append({"filename": name, "subfolder": subfolder, "type": "output"})
        show(images=saved)


class PreviewImage(Node):
    """Show images in the editor without keeping them (they go to the temp folder)."""
    category = "image"
    output_node = True
    images: IMAGE
    comfy = ComfyAlias(("PreviewImage",))

    def run(self):
        folders.temp.mkdir(parents=True, exist_ok=True)
        stem = f"preview_{uuid.uuid4().hex[:12]}"
        shown = []
        for i, image in enumerate(self.images):
            name = f"{stem}_{i:05d}.png"
            image_to_pil(image).save(folders.temp / name, compress_level=1)
            shown.append({"filename": name, "subfolder": "", "type": "temp"})
        show(images=shown)


class ImageScale(Node):
    """Resize images. A width or height of 0 keeps the aspect ratio from the other;
    crop "center" crops to the new aspect ratio first instead of stretching."""
    category = "image/transform"
    image: IMAGE
    upscale_method: str = Choice(RESIZE_METHODS, "nearest-exact")
    width: int = Int(512, min=0, max=MAX_SIZE, resource="width")
    height: int = Int(512, min=0, max=MAX_SIZE, resource="height")
    crop: str = Choice(["disabled", "center"], "disabled")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageScale",))

    def run(self):
        x = self.image.movedim(-1, 1)
        width, height = target_size(x.shape[-1], x.shape[-2], self.width, self.height)
        if self.crop == "center":
            x = center_crop_to_aspect(x, width, height)
        return resize_nchw(x, width, height, self.upscale_method).clamp(0, 1).movedim(1, -1)


def target_size(width: int, height: int, new_width: int, new_height: int) -> tuple[int, int]:
    if new_width == 0 and new_height == 0:
        return width, height
    if new_width == 0:
        return max(1, round(width * new_height / height)), new_height
    if new_height == 0:
        return new_width, max(1, round(height * new_width / width))
    return new_width, new_height


class PadImageForOutpaint(Node):
    """Extend the canvas on any side for outpainting. New pixels are mid-grey; the mask is 1
    over them and fades from 1 to 0 over `feathering` pixels into the original image along
    the padded edges, so the seam gets repainted too."""
    category = "image/transform"
    image: IMAGE
    left: int = Int(0, min=0, max=MAX_SIZE, step=8)
    top: int = Int(0, min=0, max=MAX_SIZE, step=8)
    right: int = Int(0, min=0, max=MAX_SIZE, step=8)
    bottom: int = Int(0, min=0, max=MAX_SIZE, step=8)
    feathering: int = Int(40, min=0, max=MAX_SIZE)
    outputs = {"image": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("ImagePadForOutpaint",))

    @classmethod
    def estimate(cls, widgets, inputs):
        image = inputs.get("image")
        if image is None:
            return Estimate(None)
        pad = {side: widgets.get(side) if isinstance(widgets.get(side), int) else 0
               for side in ("left", "top", "right", "bottom")}
        return Estimate(Size(image.batch, image.height + pad["top"] + pad["bottom"],
                             image.width + pad["left"] + pad["right"]))

    def run(self):
        b, h, w, c = self.image.shape
        H, W = h + self.top + self.bottom, w + self.left + self.right
        padded = torch.full((b, H, W, c), 0.5, dtype=self.image.dtype)
        padded[:, self.top:self.top + h, self.left:self.left + w] = self.image

        mask = torch.ones(H, W)
        inner = torch.zeros(h, w)
        if self.feathering > 0:
            ys = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
            xs = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
            far = torch.full((h, w), float("inf"))
            distances = [d for pad, d in ((self.top, ys), (self.bottom, h - 1 - ys),
                                          (self.left, xs), (self.right, w - 1 - xs)) if pad > 0]
            distance = torch.stack(distances).amin(0) if distances else far
            fade = ((self.feathering - distance) / self.feathering).clamp(min=0)
            inner = fade * fade
        mask[self.top:self.top + h, self.left:self.left + w] = inner
        return padded, mask[None].expand(b, H, W).clone()
