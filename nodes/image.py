"""Image nodes: load, save, preview, scale, crop, flip, composite, batch, pad for outpainting."""

from __future__ import annotations

import hashlib
import os
import re
import uuid


from graphflow.api import (IMAGE, INT, MASK, Bool, Choice, ComfyAlias, Estimate, Float, Int, Node, NodeInputError, Size,
                           Text, folders, run_limits, send_image, show, subfolder_name, warn, workflow_texts)
from graphflow.choices import RESIZE_METHODS

MAX_SIZE = 16384


class LoadImage(Node):
    """Load an image from the inputs folder. Its alpha channel becomes the mask
    (transparent pixels = 1, the area to repaint); an image without alpha gives ComfyUI's empty
    64x64 mask (the nodes that use a mask resize it). Frames of an animated image become a batch."""
    category = "image"
    image: str = Choice(folders.list_inputs, upload="image", description="a file in the inputs folder")
    outputs = {"image": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("LoadImage",), folders={"image": "input"})

    @classmethod
    def fingerprint(cls, image):
        return hashlib.sha256(folders.input_path(image).read_bytes()).hexdigest()

    def run(self):
        return _load_picture(folders.input_path(self.image), self.image)


def _load_picture(path, name: str, first_frame_only: bool = False):
    """(IMAGE, MASK) of a picture file: frames as the batch (the first alone with first_frame_only),
    alpha as the mask (1 = transparent)."""
    import torch
    from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError
    from graphflow.images import pil_alpha_mask, pil_to_image
    try:
        picture = Image.open(path)
    except (FileNotFoundError, IsADirectoryError) as e:  # strerror: the message without the server's path
        raise NodeInputError("image", f"can't read {name!r} as an image: {e.strerror}") from None
    except UnidentifiedImageError:
        raise NodeInputError("image", f"can't read {name!r} as an image: not a picture format Pillow knows") from None
    except Image.DecompressionBombError as e:  # over twice Pillow's pixel limit: refused before decoding
        raise NodeInputError("image", f"{name!r} is too large to load: {e}") from None
    images, masks = [], []
    for frame in ImageSequence.Iterator(picture):
        frame = ImageOps.exif_transpose(frame)
        if frame.mode == "I":  # ComfyUI's: 32-bit integer greys / 255 (a 16-bit PNG, "I;16", is not)
            frame = frame.point(lambda v: v * (1 / 255))
        image = pil_to_image(frame)
        if images and image.shape != images[0].shape:
            continue  # a frame of another size is left out, as ComfyUI's LoadImage does
        images.append(image)
        masks.append(pil_alpha_mask(frame))
        if picture.format == "MPO" or first_frame_only:
            break  # a camera's multi-picture JPEG: ComfyUI takes its first picture only
    return torch.cat(images), torch.cat(masks)


def folder_files(folder, extensions: tuple[str, ...]) -> list:
    """The files in `folder` (a Path) whose names end in one of `extensions` (".png", any case),
    sorted by name. A link that leads out of the folder is left out: a folder's files are read only
    inside it, as the inputs' lists leave such links out."""
    from graphflow.folders import _stays_inside

    names = sorted(p.name for p in folder.iterdir() if p.name.lower().endswith(extensions))
    return [folder / n for n in names if (folder / n).is_file() and _stays_inside(folder, folder / n)]


def check_folder_pictures(files: list, count_input: str, picture_input: str) -> None:
    """A folder loader's picks held to the server's limits before any is decoded: their count to
    max_batch (an error naming count_input), each picture's size, read from its header, to
    max_pixels (naming picture_input). A file Pillow can't open is left to the loader to report."""
    from PIL import Image

    limits = run_limits()
    if limits.max_batch is not None and len(files) > limits.max_batch:
        raise NodeInputError(count_input, f"{len(files)} pictures to load is more than this server allows "
                                          f"({limits.max_batch}); set {count_input}")
    if limits.max_pixels is None:
        return
    for path in files:
        try:
            with Image.open(path) as picture:  # the header only
                width, height = picture.size
        except (OSError, Image.DecompressionBombError):
            continue
        if width * height > limits.max_pixels:
            raise NodeInputError(picture_input, f"{path.name!r} is {width}×{height}, larger than this server "
                                                f"allows ({limits.max_pixels / 1e6:.1f} megapixels)")


class WebcamCapture(Node):
    """A picture from the webcam: the editor shows the camera's live preview, takes a frame when
    the graph is queued with capture_on_queue on (or when its capture button is pressed), and
    uploads it to the inputs folder (webcam/); it is loaded as LoadImage loads a file. A nonzero
    width or height resizes the capture to it (bilinear); 0 keeps the capture's own."""
    category = "image"
    image: str = Text("", upload="webcam", description="the uploaded capture: a file in the inputs folder")
    width: int = Int(0, min=0, max=MAX_SIZE, resource="width")
    height: int = Int(0, min=0, max=MAX_SIZE, resource="height")
    capture_on_queue: bool = Bool(True, description="take a new frame each time the graph is queued")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("WebcamCapture",), folders={"image": "input"})

    @classmethod
    def fingerprint(cls, image, **widgets):
        try:
            return hashlib.sha256(_capture_path(image).read_bytes()).hexdigest()
        except (OSError, ValueError, NodeInputError):
            return None  # run() reports it

    def run(self):
        image = _load_picture(_capture_path(self.image), self.image)[0]
        height, width = image.shape[1:3]
        if (self.width or width, self.height or height) == (width, height):
            return image
        return _resize_image(image, self.width or width, self.height or height, "bilinear")


def _capture_path(name: str):
    """The file of a capture: a name in the inputs folder, or ComfyUI's annotated one
    ("webcam/1.png [temp]", as its editor names captures) in that folder."""
    from graphflow.folders import UnsafePathError, safe_join, split_annotation
    if not name:
        raise NodeInputError("image", "no capture yet: press the node's capture button, or queue with "
                                      "capture_on_queue on, in an editor that can use a camera")
    plain, folder = split_annotation(name)
    try:
        if folder == "temp":
            return safe_join(folders.temp, plain)
        return folders.output_path(plain) if folder == "output" else folders.input_path(plain)
    except UnsafePathError as e:
        raise NodeInputError("image", f"{name!r} is not a file inside its folder: {e}") from None


class LoadImageOutput(Node):
    """Load an image from the outputs folder (a result of an earlier run, to work on further),
    as LoadImage does from the inputs: alpha becomes the mask, frames a batch. The list puts the
    newest first."""
    category = "image"
    image: str = Choice(folders.list_output_images, description="a picture in the outputs folder")
    outputs = {"image": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("LoadImageOutput",), folders={"image": "output"})

    @classmethod
    def fingerprint(cls, image):
        try:
            return hashlib.sha256(folders.output_path(image).read_bytes()).hexdigest()
        except (OSError, ValueError):
            return None  # run() reports it

    def run(self):
        try:
            path = folders.output_path(self.image)
        except ValueError as e:
            raise NodeInputError("image", str(e)) from None
        return _load_picture(path, self.image)


def _png_metadata() -> PngImagePlugin.PngInfo:
    from PIL import PngImagePlugin
    info = PngImagePlugin.PngInfo()
    for key, text in workflow_texts().items():  # ComfyUI's prompt and workflow chunks, then ours
        info.add_text(key, text)
    return info


EXIF_TEXT_TAGS = 5  # Make (0x010F) down to 0x010B: below, the tags hold numbers (Pillow refuses text there)


def comfy_exif(texts: dict) -> "Image.Exif":
    """The workflow's texts as ComfyUI's WebP savers write them into EXIF: the prompt as
    "prompt:json" in Model (0x0110), each other text as "key:json" from Make (0x010F) down, as many
    as there are text tags (the rest left out with a warning, where ComfyUI's saver fails)."""
    from PIL import Image

    exif = Image.Exif()
    if "prompt" in texts:
        exif[0x0110] = "prompt:" + texts["prompt"]
    others = [k for k in texts if k != "prompt"]
    for tag, key in enumerate(others[:EXIF_TEXT_TAGS]):
        exif[0x010F - tag] = f"{key}:{texts[key]}"
    if len(others) > EXIF_TEXT_TAGS:
        warn(f"only {EXIF_TEXT_TAGS} texts besides the prompt fit the picture's EXIF text tags; left out: "
             f"{', '.join(others[EXIF_TEXT_TAGS:])}")
    return exif


def _next_counter(folder, stem: str) -> int:
    """The number for the next `stem_NNNNN...` file: 1 + the highest in the folder among files of any
    kind, as ComfyUI counts (a picture and a video saved with one prefix never share a number). A
    number ends at "_" (ComfyUI's names, ours too) or "." (names without the trailing "_")."""
    numbers = [0]
    for name in os.listdir(folder):
        if name.startswith(stem + "_"):
            try:
                numbers.append(int(re.split(r"[_.]", name[len(stem) + 1:], maxsplit=1)[0]))
            except ValueError:  # not a numbered file
                pass
    return max(numbers) + 1


def _save_new(picture: Image.Image, folder, stem: str, counter: int, suffix: str = "_.png", image_format: str = "PNG",
              **options) -> tuple[str, int]:
    """Save as the first free `stem_NNNNN<suffix>` from `counter` on; (name, number)."""
    return _write_new(lambda path: picture.save(path, format=image_format, **options), folder, stem, counter, suffix)


def _temporary(folder, name: str):
    """A unique hidden temporary path in folder for writing `name`: its start cut to 64 bytes (a
    name of 255 bytes, the most a file system takes, must leave room for the rest)."""
    return folder / f".{name.encode()[:64].decode(errors='ignore')}.{uuid.uuid4().hex}.tmp"


def _write_new(write, folder, stem: str, counter: int, suffix: str) -> tuple[str, int]:
    """`write(path)` a file as the first free `stem_NNNNN<suffix>` from `counter` on; (name, number).
    The file is written under a temporary name and then linked to its own: a process killed
    mid-write leaves no half file under a real name, and two runs saving at once never take one name."""
    temporary = _temporary(folder, stem)
    try:
        write(temporary)
        while not _claim(temporary, folder / f"{stem}_{counter:05d}{suffix}"):
            counter += 1
        return f"{stem}_{counter:05d}{suffix}", counter
    finally:
        temporary.unlink(missing_ok=True)


def _write_at(write, path, overwrite: bool = False) -> bool:
    """`write(path)` a file at exactly `path`, written as _write_new writes (a temporary name, then
    linked to its own); a name already taken (by a file, or a link of any kind: never followed) is
    kept and False returned, unless `overwrite`, which replaces the entry itself (a link, not where
    it leads)."""
    temporary = _temporary(path.parent, path.name)
    try:
        write(temporary)
        if overwrite:
            os.replace(temporary, path)
            return True
        return _claim(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _claim(temporary, path) -> bool:
    """Give the written `temporary` the name `path` if no entry has it; False when one has."""
    try:
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links: claim the name, then move the file onto it
        try:
            open(path, "xb").close()
        except FileExistsError:
            return False
        os.replace(temporary, path)
        return True


class SaveImage(Node):
    """Save images as PNG files in the outputs folder, named as ComfyUI names them
    (`prefix_00001_.png`), with the workflow embedded so that dropping the file on the editor
    restores the graph: ours, and ComfyUI's `prompt` and `workflow` chunks, so ComfyUI reopens
    it too. The prefix may contain a subfolder."""
    category = "image"
    output_node = True
    images: IMAGE
    filename_prefix: str = Text("graphflow", file_name=True)
    comfy = ComfyAlias(("SaveImage",))

    def run(self):
        from graphflow.images import image_to_pil
        try:
            folder, stem = folders.output_location(self.filename_prefix)
        except ValueError as e:
            raise NodeInputError("filename_prefix", str(e)) from None
        subfolder = subfolder_name(folders.outputs, folder)
        counter = _next_counter(folder, stem)
        metadata = _png_metadata()
        saved = []
        for image in self.images:
            name, counter = _save_new(image_to_pil(image), folder, stem, counter, pnginfo=metadata, compress_level=4)
            counter += 1
            saved.append({"filename": name, "subfolder": subfolder, "type": "output"})
        show(images=saved)


class PreviewImage(Node):
    """Show images in the editor without keeping them (they go to the temp folder)."""
    category = "image"
    output_node = True
    images: IMAGE
    comfy = ComfyAlias(("PreviewImage",))

    def run(self):
        preview(self.images)


def preview(images) -> None:
    """Show an IMAGE batch in the editor from PNGs in the temp folder."""
    show(images=temp_pngs(images))


def temp_pngs(images) -> list[dict]:
    """An IMAGE batch saved as PNGs in the temp folder: the editor's {filename, subfolder, type} of each."""
    from graphflow.images import image_to_pil
    folders.temp.mkdir(parents=True, exist_ok=True)
    stem = f"preview_{uuid.uuid4().hex[:12]}"
    shown = []
    for i, image in enumerate(images):
        name = f"{stem}_{i:05d}.png"
        image_to_pil(image).save(folders.temp / name, compress_level=1)
        shown.append({"filename": name, "subfolder": "", "type": "temp"})
    return shown


class SaveImageWebsocket(Node):
    """Send images to the client that queued the run, as PNG frames over its websocket, instead of
    saving them (ComfyUI's websocket-images example reads them this way). Nothing is written to disk."""
    category = "image"
    output_node = True
    cacheable = False  # a cached run would send nothing
    images: IMAGE
    comfy = ComfyAlias(("SaveImageWebsocket",))

    def run(self):
        from graphflow.images import picture_file

        for image in self.images:
            send_image(picture_file(image))


class ImageScale(Node):
    """Resize images. A width or height of 0 keeps the aspect ratio from the other;
    crop "center" crops to the new aspect ratio first instead of stretching. Resampling is
    ComfyUI's, pixel for pixel: bilinear and bicubic without antialiasing (shrinking by a lot
    aliases: use area), not clamped (bicubic overshoots 0..1 at sharp edges), Lanczos on 8-bit
    levels. Width and height both 0 pass the images through."""
    category = "image/transform"
    image: IMAGE
    upscale_method: str = Choice(RESIZE_METHODS, "nearest-exact")
    width: int = Int(512, min=0, max=MAX_SIZE, resource="width")
    height: int = Int(512, min=0, max=MAX_SIZE, resource="height")
    crop: str = Choice(["disabled", "center"], "disabled")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageScale",))

    def run(self):
        image = _image(self.image, "image")
        if self.width == 0 and self.height == 0:  # as ComfyUI: untouched, not a same-size resample
            return image
        width, height = target_size(image.shape[2], image.shape[1], self.width, self.height)
        return _resize_image(image, width, height, self.upscale_method, crop=self.crop == "center")


def target_size(width: int, height: int, new_width: int, new_height: int) -> tuple[int, int]:
    if new_width == 0 and new_height == 0:
        return width, height
    if new_width == 0:
        return max(1, round(width * new_height / height)), new_height
    if new_height == 0:
        return new_width, max(1, round(height * new_width / width))
    return new_width, new_height


class PadImageForOutpaint(Node):
    """Extend the canvas on any side for outpainting. New pixels are mid-grey; the mask (one for
    the whole batch) is 1 over them and fades quadratically from 1 to 0 over `feathering` pixels
    into the original image along the padded edges, so the seam gets repainted too; a feathering
    of half the image's width or height or more gives no fade, as in ComfyUI."""
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
        import torch
        b, h, w, c = self.image.shape
        H, W = h + self.top + self.bottom, w + self.left + self.right
        padded = torch.full((b, H, W, c), 0.5, dtype=self.image.dtype)
        padded[:, self.top:self.top + h, self.left:self.left + w] = self.image

        mask = torch.ones(H, W)
        inner = torch.zeros(h, w)
        # As ComfyUI: no feathering at all unless it fits twice into both sides of the image; the
        # distance to a padded edge counts from the near edge (0 at the top/left row) but from
        # one past the far edge (1 at the bottom/right row); the fade is squared (in float64).
        f = self.feathering
        if 0 < f and 2 * f < h and 2 * f < w:
            ys = torch.arange(h, dtype=torch.float64)[:, None].expand(h, w)
            xs = torch.arange(w, dtype=torch.float64)[None, :].expand(h, w)
            distances = [d for pad, d in ((self.top, ys), (self.bottom, h - ys),
                                          (self.left, xs), (self.right, w - xs)) if pad > 0]
            if distances:
                fade = ((f - torch.stack(distances).amin(0)) / f).clamp(min=0)
                inner = (fade * fade).float()
        mask[self.top:self.top + h, self.left:self.left + w] = inner
        return padded, mask[None]


def _image(image, name: str) -> torch.Tensor:
    import torch
    if not torch.is_tensor(image) or image.ndim != 4:
        raise NodeInputError(name, "expected an IMAGE: a [B, H, W, C] tensor")
    return image


def _resize_image(image: torch.Tensor, width: int, height: int, method: str, crop: bool = False) -> torch.Tensor:
    """ComfyUI's common_upscale on an IMAGE batch. Not clamped, as there: bicubic overshoots
    0..1 at sharp edges and the overshoot flows on (SaveImage clips; VAEEncode takes it as is)."""
    from graphflow.images import center_crop_to_aspect, resize_nchw
    x = image.movedim(-1, 1)
    if crop:
        x = center_crop_to_aspect(x, width, height)
    return resize_nchw(x, width, height, method).movedim(1, -1)


class ImageScaleBy(Node):
    """Resize images by a factor (sizes rounded to whole pixels)."""
    category = "image/upscaling"
    image: IMAGE
    upscale_method: str = Choice(RESIZE_METHODS, "nearest-exact")
    scale_by: float = Float(1.0, min=0.01, max=8.0, step=0.01)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageScaleBy",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, scale = inputs.get("image"), widgets.get("scale_by")
        if size is None or not isinstance(scale, (int, float)):
            return Estimate(size)
        return Estimate(Size(size.batch, max(1, round(size.height * scale)), max(1, round(size.width * scale))))

    def run(self):
        image = _image(self.image, "image")
        h, w = image.shape[1:3]
        return _resize_image(image, max(1, round(w * self.scale_by)), max(1, round(h * self.scale_by)),
                             self.upscale_method)


class ImageScaleToTotalPixels(Node):
    """Resize images to about `megapixels` million pixels (1 megapixel = 1024 x 1024), keeping
    the aspect ratio."""
    category = "image/upscaling"
    image: IMAGE
    upscale_method: str = Choice(RESIZE_METHODS, "nearest-exact")
    megapixels: float = Float(1.0, min=0.01, max=16.0, step=0.01)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageScaleToTotalPixels",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, megapixels = inputs.get("image"), widgets.get("megapixels")
        if size is None or not isinstance(megapixels, (int, float)):
            return Estimate(size)
        scale = (int(megapixels * 1024 * 1024) / (size.width * size.height)) ** 0.5
        return Estimate(Size(size.batch, max(1, round(size.height * scale)), max(1, round(size.width * scale))))

    def run(self):
        image = _image(self.image, "image")
        h, w = image.shape[1:3]
        scale = (int(self.megapixels * 1024 * 1024) / (w * h)) ** 0.5  # int(): ComfyUI's total
        return _resize_image(image, max(1, round(w * scale)), max(1, round(h * scale)), self.upscale_method)


class ImageCompositeMasked(Node):
    """Paste `source` into `destination` with its top-left corner at (x, y), blended by `mask`
    (resized to the source; 1 = source) where given; what falls outside is cut off.
    resize_source first resizes the source to the destination's size."""
    category = "image"
    destination: IMAGE
    source: IMAGE
    x: int = Int(0, min=0, max=MAX_SIZE)
    y: int = Int(0, min=0, max=MAX_SIZE)
    resize_source: bool = Bool(False)
    mask: MASK = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageCompositeMasked",), optional=("mask",))

    def run(self):
        from graphflow.images import composite_masked
        dest, src = _image(self.destination, "destination"), _image(self.source, "source")
        if src.shape[-1] < dest.shape[-1]:
            raise NodeInputError("source", f"{src.shape[-1]} channels; the destination has {dest.shape[-1]}")
        src = src[..., :dest.shape[-1]]
        out = composite_masked(dest.movedim(-1, 1), src.movedim(-1, 1), self.x, self.y, self.mask, 1,
                               self.resize_source)
        return out.movedim(1, -1)


class EmptyImage(Node):
    """A batch of images of one colour, given as a 0xRRGGBB number (0 = black)."""
    category = "image"
    width: int = Int(512, min=1, max=MAX_SIZE, resource="width")
    height: int = Int(512, min=1, max=MAX_SIZE, resource="height")
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    color: int = Int(0, min=0, max=0xFFFFFF, display="color")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("EmptyImage",))

    def run(self):
        import torch
        rgb = torch.tensor([(self.color >> 16) & 0xFF, (self.color >> 8) & 0xFF, self.color & 0xFF]) / 255.0
        return rgb.reshape(1, 1, 1, 3).expand(self.batch_size, self.height, self.width, 3).clone()


def joined_batches(sizes) -> Estimate:
    """The estimate of a node joining batches, each resized to the first's size: the batches
    added up (while one is unknown, the first known size)."""
    if any(size is None for size in sizes):
        return Estimate(next((size for size in sizes if size is not None), None))
    return Estimate(Size(sum(size.batch for size in sizes), sizes[0].height, sizes[0].width))


def batch_part(first, image, name: str, first_name: str):
    """`image` made ready to join `first`'s batch, as ImageBatch adds image2: resized (centre-cropped,
    bilinear) to first's size, in its dtype; the channels must match."""
    if image.shape[-1] != first.shape[-1]:
        raise NodeInputError(name, f"{image.shape[-1]} channels; {first_name} has {first.shape[-1]}")
    if image.shape[1:3] != first.shape[1:3]:
        image = _resize_image(image, first.shape[2], first.shape[1], "bilinear", crop=True)
    return image.to(first.dtype)


class ImageBatch(Node):
    """Join two image batches; image2 is resized (centre-cropped, bilinear) to image1's size."""
    category = "image"
    image1: IMAGE
    image2: IMAGE
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageBatch",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return joined_batches([inputs.get("image1"), inputs.get("image2")])

    def run(self):
        import torch
        a = _image(self.image1, "image1")
        return torch.cat([a, batch_part(a, _image(self.image2, "image2"), "image2", "image1")])


class ImageInvert(Node):
    """1 - image: the negative."""
    category = "image"
    image: IMAGE
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageInvert",))

    def run(self):
        return 1.0 - _image(self.image, "image")


class GetImageSize(Node):
    """The width, height and batch size of an image batch."""
    category = "image"
    image: IMAGE
    outputs = {"width": INT, "height": INT, "batch_size": INT}
    comfy = ComfyAlias(("GetImageSize", "GetImageSize+"))

    def run(self):
        b, h, w, _ = _image(self.image, "image").shape
        return w, h, b


class ImageCrop(Node):
    """Cut a width x height rectangle with its top-left corner at (x, y) out of the images
    (x and y are moved inside the image; the rectangle is cut off at its edges)."""
    category = "image/transform"
    image: IMAGE
    width: int = Int(512, min=1, max=MAX_SIZE)
    height: int = Int(512, min=1, max=MAX_SIZE)
    x: int = Int(0, min=0, max=MAX_SIZE)
    y: int = Int(0, min=0, max=MAX_SIZE)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageCrop",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("image")
        values = [widgets.get(k) for k in ("width", "height", "x", "y")]
        if size is None or not all(isinstance(v, int) for v in values):
            return Estimate(size)
        width, height, x, y = values
        x, y = min(x, size.width - 1), min(y, size.height - 1)
        return Estimate(Size(size.batch, min(height, size.height - y), min(width, size.width - x)))

    def run(self):
        image = _image(self.image, "image")
        x, y = min(self.x, image.shape[2] - 1), min(self.y, image.shape[1] - 1)
        return image[:, y:y + self.height, x:x + self.width].clone()


FLIPS = {"x-axis: vertically": 1, "y-axis: horizontally": 2}
ROTATIONS = {"none": 0, "90 degrees": 1, "180 degrees": 2, "270 degrees": 3}


class ImageFlip(Node):
    """Mirror the images: upside down (x-axis) or left to right (y-axis)."""
    category = "image/transform"
    image: IMAGE
    flip_method: str = Choice(list(FLIPS), "x-axis: vertically")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageFlip",))

    def run(self):
        import torch
        return torch.flip(_image(self.image, "image"), dims=[FLIPS[self.flip_method]])


class ImageRotate(Node):
    """Rotate the images clockwise by a multiple of 90 degrees."""
    category = "image/transform"
    image: IMAGE
    rotation: str = Choice(list(ROTATIONS), "none")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageRotate",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("image")
        if size is not None and ROTATIONS.get(widgets.get("rotation"), 0) % 2:
            return Estimate(Size(size.batch, size.width, size.height))
        return Estimate(size)

    def run(self):
        import torch
        return torch.rot90(_image(self.image, "image"), k=ROTATIONS[self.rotation], dims=[2, 1]).clone()


class Canny(Node):
    """Canny edge map (white edges on black), the control image of canny ControlNets. The
    thresholds are on the blurred Sobel gradient's magnitude (a sharp black-to-white step
    reaches about 2.6): pixels above high_threshold are edges, those above low_threshold are
    edges where they connect to one. Computed as kornia's canny, which ComfyUI uses."""
    category = "image/preprocessors"
    image: IMAGE
    low_threshold: float = Float(0.4, min=0.01, max=0.99, step=0.01)
    high_threshold: float = Float(0.8, min=0.01, max=0.99, step=0.01)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("Canny",))

    def run(self):
        from graphflow.canny import canny

        image = _image(self.image, "image")
        if self.low_threshold > self.high_threshold:
            raise NodeInputError("low_threshold", f"{self.low_threshold} is above high_threshold "
                                                  f"({self.high_threshold})")
        if image.shape[-1] not in (1, 3):
            image = image[..., :3]
        edges = canny(image.movedim(-1, 1), self.low_threshold, self.high_threshold)
        return edges.repeat(1, 3, 1, 1).movedim(1, -1)
