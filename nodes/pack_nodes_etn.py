"""Acly's comfyui-tooling-nodes (the "ETN_" nodes the Krita AI Diffusion plugin needs on a ComfyUI
server), under the pack's class names, inputs (order, defaults, ranges) and outputs. Read from the
pack's files at these commits:
  b08b3779bf0288bf3a83b697b553c3eaf2a89573 __init__.py (the class list);
  facd65995a9508f8c3e7c51938cace5bffde7ab0 nodes.py (INPUT_TYPES form: CropImage still in it) and
  nodes.py as the index holds it in its io.ComfyNode form (LoadImageCache beside it; no commit given),
  which this module follows where they differ (the base64 loaders' alpha mask);
  6e7b2445db9cf16f1765ec70aa3ccac5e69c6593 tile.py (INPUT_TYPES form) and its io.ComfyNode form (no
  commit given: "multiple", at least one tile a side, blending up to padding), followed here;
  61fa161c34c2ecf4cd9a5d4447c08bda3b53585a region.py and its io.ComfyNode form (no commit given; the same
  UNet attn2 patches, and an Anima / Cosmos path); 79e9b6426ff8fe57313f92d62bed421dc8e360b0 krita.py.
And how the client reads the results: Acly/krita-ai-diffusion's ai_diffusion/comfy_client.py
(_extract_message_png_image: a binary frame of event type 1 (ComfyUI's PREVIEW_IMAGE) and format 2
(PNG) is a result image; ComfyUI's send_image puts those two big-endian 32-bit codes before the file).

Nodes here: ETN_LoadImageBase64, ETN_LoadMaskBase64 (base64 text in the prompt, size-checked from the
header before decoding); ETN_LoadImageCache and ETN_SaveImageCache (pictures a client PUTs / GETs at
/api/etn/image/{id}: graphflow/server/etn_routes.py, held in memory by graphflow.image_exchange, in
this process only: a Ray worker does not see them); ETN_SendImageWebSocket and ETN_KritaOutput (each image to the run's
websocket client as ComfyUI's binary frame: 4 bytes event type 1, 4 bytes format (1 JPEG, 2 PNG),
the file; its "executed" output lists {"source": "websocket", "content-type", "type": "output"} per
image, as the pack's does); ETN_CropImage, ETN_ApplyMaskToImage; the tiling nodes ETN_TileLayout,
ETN_ExtractImageTile, ETN_ExtractMaskTile, ETN_GenerateTileMask, ETN_MergeImageTile (the pack's
tile maths; its blend is kornia's box_blur, written out here as a mean over the window with
reflected edges); the regions ETN_BackgroundRegion, ETN_DefineRegion, ETN_ListRegionMasks and
ETN_AttentionMask (regional prompting on SD1.x / SDXL UNets: graphflow.models.region_attention; the
pack's Anima / Cosmos-Predict2 path is not built); ETN_ReferenceImage and ETN_ApplyReferenceImages
(style tokens of CLIP vision + a style model, FLUX Redux, per step range); Krita's custom-workflow
nodes as they run outside Krita (the plugin replaces them with its own inputs before it queues a
workflow): ETN_KritaCanvas, ETN_KritaSelection, ETN_KritaImageLayer, ETN_KritaMaskLayer,
ETN_Parameter, ETN_KritaSendText;
ETN_Translate as the pack runs without its optional translator (argostranslate): English passes,
other languages are refused (the newest Krita plugin checks that the class exists); english_text is
its body, which GET /api/etn/translate answers with too. The pack's other routes (model info, model
upload, workflow exchange) are graphflow/server/etn_routes.py's.
The pack's other classes are named in graphflow/comfy_format.py (ETN_LEFT_OUT with why, ETN_LATER
not built yet). Nothing here draws random numbers.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from graphflow.api import (
    ANY, BOOLEAN, CLIP_VISION, CONDITIONING, IMAGE, INT, MASK, MODEL, STRING, STYLE_MODEL, Bool, Choice, ComfyAlias,
    Estimate, Float, Int, Node, NodeInputError, Size, Text, send_image, show, socket_type,
)
from nodes.image import _image
from nodes.pack_nodes_essentials import _mask
from nodes.pack_nodes_easyuse import base64_picture_bytes, checked_picture_bytes

COMFY_PACK = "comfyui-tooling-nodes"  # the custom node pack this module's ComfyUI classes come from

TOOLING = "external_tooling"
TILES = "external_tooling/tiles"
REGIONS_CATEGORY = "external_tooling/regions"
KRITA = "krita"
MAX_SIZE = 8192  # the pack's bound on crop and tile sizes
REGIONS = socket_type("REGIONS", "#8e6bc0", "Prompts for parts of the picture, each with its mask (ETN_DefineRegion)")
REFERENCE_IMAGES = socket_type("REFERENCE_IMAGE", "#c06b8e", "Images with weights and step ranges for "
                                                            "ETN_ApplyReferenceImages")
TILE_LAYOUT = socket_type("TILE_LAYOUT", "#5c6bc0", "How ETN_TileLayout cut an image into overlapping tiles")
IMAGE_FORMATS = ("PNG", "JPEG")
READ_FORMATS = ("PNG", "JPEG", "WEBP")  # what the pack's client sends; nothing Pillow hands to another program
# the stand-in for Krita's canvas / layers outside Krita (the pack shows a placeholder picture of this size)
KRITA_SIZE = 512
FLOAT_MAX = sys.float_info.max


def _base64_text(text: str) -> str:
    """Base64 text without a data URL's "data:image/...;base64," head (the pack means to strip a PNG's
    but drops the result, so its b64decode, which skips the punctuation, reads the head's letters)."""
    text = text.strip()
    if text.startswith("data:") and ";base64," in text[:64]:
        return text.split(";base64,", 1)[1]
    return text


def _picture(text: str, input_name: str):
    """The PIL picture in base64 text, held to the pixel limits before it is decoded."""
    return _decoded(base64_picture_bytes(_base64_text(text), input_name, READ_FORMATS), input_name)


def _decoded(raw: bytes, input_name: str):
    """The PIL picture of checked bytes (checked_picture_bytes with READ_FORMATS), decoded; 8 bits a
    channel only."""
    import io

    from PIL import Image

    picture = Image.open(io.BytesIO(raw), formats=READ_FORMATS)
    try:
        picture.load()
    except OSError as e:
        raise NodeInputError(input_name, f"the picture is damaged: {e}") from None
    if picture.mode in ("I", "I;16", "I;16B", "F"):
        raise NodeInputError(input_name, f"a picture of mode {picture.mode} (over 8 bits a channel) is not read here; "
                                         "expected an 8-bit PNG, WebP or JPEG")
    return picture


class EtnLoadImageBase64(Node):
    """An image from base64 text (a PNG, WebP or JPEG file; a "data:image/...;base64," head is
    skipped), as the pack's Load Image (Base64) makes it: RGB, and its alpha channel as the mask
    (1 = opaque: the pack's current form; its first one inverted it, as LoadImage does). A picture
    without alpha gives a mask of ones of its size (the pack gives none, which fails the node that
    reads it). Pictures over Pillow's MAX_IMAGE_PIXELS or the server's max_pixels are refused from
    their header, before they are decoded."""
    category = TOOLING
    display_name = "Load Image (Base64)"
    image: str = Text("")
    outputs = {"image": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("ETN_LoadImageBase64",))

    def run(self):
        import numpy as np
        import torch

        picture = _picture(self.image, "image")
        if picture.mode == "P" and "transparency" in picture.info:
            picture = picture.convert("RGBA")
        if "A" in picture.getbands():
            alpha = np.asarray(picture.getchannel("A"), dtype=np.float32) / 255.0
            mask = torch.from_numpy(alpha.copy())[None]
        else:
            mask = torch.ones(1, picture.height, picture.width)
        rgb = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0
        return torch.from_numpy(rgb.copy())[None], mask


class EtnLoadMaskBase64(Node):
    """A mask from base64 text (a PNG, WebP or JPEG file; a "data:image/...;base64," head is
    skipped), as the pack's Load Mask (Base64) reads it: a grey picture's value, a colour picture's
    red channel, / 255. A palette picture is read by its colours (the pack reads its palette
    indices). Pictures over Pillow's MAX_IMAGE_PIXELS or the server's max_pixels are refused from
    their header, before they are decoded."""
    category = TOOLING
    display_name = "Load Mask (Base64)"
    mask: str = Text("")
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("ETN_LoadMaskBase64",))

    def run(self):
        import numpy as np
        import torch

        picture = _picture(self.mask, "mask")
        if picture.mode not in ("L", "LA", "RGB", "RGBA"):
            picture = picture.convert("RGBA" if "transparency" in picture.info else "RGB")
        values = np.asarray(picture, dtype=np.float32) / 255.0
        if values.ndim == 3:
            values = values[..., 0]
        return torch.from_numpy(values.copy())[None]


def send_images(images, format: str) -> list[dict]:
    """Each image to the run's websocket client(s) as a PNG or JPEG (ComfyUI's binary frame), and the
    pack's "executed" entries for them. JPEG drops an alpha channel (it has none)."""
    from graphflow.images import picture_file

    sent = []
    for image in _image(images, "images"):
        send_image(picture_file(image, format), f"image/{format.lower()}")
        sent.append({"source": "websocket", "content-type": f"image/{format.lower()}", "type": "output"})
    return sent


class EtnSendImageWebSocket(Node):
    """Send each image to the client that queued the run over its websocket, as ComfyUI's binary
    image frame (event type 1, then format 1 = JPEG or 2 = PNG, then the file), instead of saving
    it; the node's "executed" output lists one {"source": "websocket", "content-type", "type":
    "output"} per image, as the pack's does. Nothing is written to disk: a headless `graphflow run`
    sends nothing and saves nothing."""
    category = TOOLING
    display_name = "Send Image (WebSocket)"
    output_node = True
    cacheable = False  # a cached run would send nothing
    images: IMAGE
    format: str = Choice(IMAGE_FORMATS, "PNG")
    comfy = ComfyAlias(("ETN_SendImageWebSocket",))

    def run(self):
        show(images=send_images(self.images, self.format))


class EtnLoadImageCache(Node):
    """The picture a client stored under id (PUT /api/etn/image/{id}, as the Krita AI Diffusion
    plugin does), as the pack's Load Image from Cache gives it: its colours, and as the mask its
    alpha (an RGB picture's red channel, a grey one's grey, as the pack reads them). Pictures are
    held in the server's memory 10 minutes after they were stored or last loaded (graphflow.
    image_exchange); size-checked against Pillow's MAX_IMAGE_PIXELS and the server's max_pixels
    before they are decoded. A grey picture with alpha gives grey colours and its alpha (the pack
    fails on it); a palette picture is read by its colours."""
    category = TOOLING
    display_name = "Load Image from Cache"
    id: str = Text("")
    outputs = {"image": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("ETN_LoadImageCache",))

    @classmethod
    def fingerprint(cls, id):
        from graphflow.image_exchange import image_exchange

        return image_exchange.version(id)  # a new picture PUT under an id that expired is read anew

    def run(self):
        import numpy as np
        import torch

        from graphflow.image_exchange import image_exchange

        entry = image_exchange.get(self.id, loading=True)
        if entry is None:
            raise NodeInputError("id", f"no picture is stored under {self.id!r} in this process: store it first with "
                                       "PUT /api/etn/image/{id} on this server (pictures are kept 10 minutes; a "
                                       "server running nodes on Ray workers has no shared image cache)")
        picture = _decoded(checked_picture_bytes(entry.data, "id", READ_FORMATS), "id")
        if picture.mode not in ("L", "LA", "RGB", "RGBA"):
            picture = picture.convert("RGBA" if "transparency" in picture.info else "RGB")
        values = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)
        values = values[..., None] if values.dim() == 2 else values
        image = values[..., :1].expand(-1, -1, 3) if values.shape[-1] <= 2 else values[..., :3]
        mask = values[..., -1] if values.shape[-1] in (2, 4) else values[..., 0]
        return image.contiguous()[None], mask.contiguous()[None]


class EtnSaveImageCache(Node):
    """Store each image in the server's memory as a PNG or JPEG for the client to fetch (GET
    /api/etn/image/{id}, as the Krita AI Diffusion plugin does) instead of saving it; the node's
    "executed" output lists {"source": "http", "id", "content-type", "type": "output"} per image, as
    the pack's does. Pictures are kept 10 minutes, or 1 minute once fetched twice. Nothing is written
    to disk."""
    category = TOOLING
    display_name = "Save Image to Cache"
    output_node = True
    cacheable = False  # a cached run would store nothing new
    images: IMAGE
    format: str = Choice(IMAGE_FORMATS, "PNG")
    comfy = ComfyAlias(("ETN_SaveImageCache",))

    def run(self):
        from graphflow.image_exchange import TooLarge, image_exchange
        from graphflow.images import picture_file

        content_type = f"image/{self.format.lower()}"
        pictures = [(picture_file(image, self.format), content_type) for image in _image(self.images, "images")]
        try:
            keys = image_exchange.add_all(pictures)
        except TooLarge as e:
            raise NodeInputError("images", f"{e}: save fewer or smaller images at a time") from None
        show(images=[{"source": "http", "id": key, "content-type": content_type, "type": "output"} for key in keys])


class EtnKritaOutput(Node):
    """Krita's output node: sends the images as PNGs over the websocket as ETN_SendImageWebSocket
    does, and tells Krita where to place them (its "executed" output carries info: name, offset,
    batch mode, whether to resize the canvas). Nothing is written to disk: a headless `graphflow
    run` sends nothing and saves nothing."""
    category = KRITA
    display_name = "Krita Output"
    output_node = True
    cacheable = False  # a cached run would send nothing
    images: IMAGE
    x: int = Int(0, min=-MAX_SIZE * 8, max=MAX_SIZE * 8, description="offset x")
    y: int = Int(0, min=-MAX_SIZE * 8, max=MAX_SIZE * 8, description="offset y")
    name: str = Text("")
    batch_mode: str = Choice(("default", "images", "animation", "layers"), "default")
    resize_canvas: bool = Bool(False)
    comfy = ComfyAlias(("ETN_KritaOutput",))

    def run(self):
        info = {"name": self.name, "offset_x": self.x, "offset_y": self.y, "batch_mode": self.batch_mode,
                "resize_canvas": self.resize_canvas}
        show(images=send_images(self.images, "PNG"), info=[info])


class EtnKritaSendText(Node):
    """Send a value to Krita as text (its "executed" output: name, the value as text, and the
    content type of the kind chosen); no value sends "None"."""
    category = KRITA
    display_name = "Send Text"
    output_node = True
    value: ANY = None
    name: str = Text("Output")
    type: str = Choice(("text", "markdown", "html"), "text")
    comfy = ComfyAlias(("ETN_KritaSendText",))

    def run(self):
        mime = {"text": "text/plain", "markdown": "text/markdown", "html": "text/html"}[self.type]
        try:
            text = "None" if self.value is None else str(self.value)
        except Exception as e:  # a value whose str() fails is reported, not a failed run (the pack's choice)
            text = f"Could not convert to text: {e}"
        show(text=[{"name": self.name, "text": text, "content-type": mime}])


LANGUAGE_DIRECTIVE = re.compile(r"lang:\w\w")


def english_text(text: str) -> str:
    """The pack's translate() without its translator: the text cut at its "lang:xx" directives,
    each piece stripped, the non-empty ones joined by single spaces; ValueError for a directive
    naming another language than English (GET /api/etn/translate answers the same)."""
    pieces, last = [], 0
    for directive in LANGUAGE_DIRECTIVE.finditer(text):
        pieces.append(text[last:directive.start()].strip())
        last = directive.end()
        language = directive.group(0)[5:]
        if language != "en":
            raise ValueError(f"{directive.group(0)} asks for a translation from {language!r}: graphflow carries no "
                             "translator (the pack's argostranslate); expected English text, or lang:en")
    pieces.append(text[last:].strip())
    return " ".join(piece for piece in pieces if piece)


class EtnTranslate(Node):
    """The prompt in English, as the pack's Translate gives it where its optional translator
    (argostranslate, which graphflow does not carry) is not installed: the text is cut at "lang:xx"
    directives, each piece stripped of surrounding spaces, and the non-empty pieces joined by single
    spaces; English pieces (no directive, or "lang:en") pass through. A directive for another
    language is refused, as there, naming the input."""
    category = TOOLING
    display_name = "Translate"
    text: str = Text("", multiline=True)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("ETN_Translate",))

    def run(self):
        try:
            return english_text(self.text)
        except ValueError as e:
            raise NodeInputError("text", str(e)) from None


class EtnCropImage(Node):
    """Cut a width x height rectangle with its top-left corner at (x, y) out of the images, cut off at
    the image's edges (the pack's: deprecated there for ComfyUI's ImageCrop). A corner outside the
    image is refused (the pack returns an empty image)."""
    category = TOOLING
    display_name = "Crop Image"
    image: IMAGE
    x: int = Int(0, min=0, max=MAX_SIZE)
    y: int = Int(0, min=0, max=MAX_SIZE)
    width: int = Int(512, min=1, max=MAX_SIZE)
    height: int = Int(512, min=1, max=MAX_SIZE)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ETN_CropImage",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("image")
        values = [widgets.get(k) for k in ("x", "y", "width", "height")]
        if size is None or not all(isinstance(v, int) for v in values):
            return Estimate(size)
        x, y, width, height = values
        return Estimate(Size(size.batch, max(1, min(height, size.height - y)), max(1, min(width, size.width - x))))

    def run(self):
        image = _image(self.image, "image")
        if self.x >= image.shape[2] or self.y >= image.shape[1]:
            raise NodeInputError("x" if self.x >= image.shape[2] else "y",
                                 f"the corner ({self.x}, {self.y}) is outside the {image.shape[2]}x{image.shape[1]} "
                                 "image")
        return image[:, self.y:self.y + self.height, self.x:self.x + self.width].clone()


class EtnApplyMaskToImage(Node):
    """The image with the mask as its alpha channel (RGBA; an RGBA image's alpha is replaced): one
    mask for every image, or one mask per image. The mask must be the image's size."""
    category = TOOLING
    display_name = "Apply Mask to Image"
    image: IMAGE
    mask: MASK
    outputs = {"masked": IMAGE}
    comfy = ComfyAlias(("ETN_ApplyMaskToImage",))

    def run(self):
        import torch

        image = _image(self.image, "image")
        mask = _mask(self.mask, "mask")
        if mask.shape[-2:] != image.shape[1:3]:
            raise NodeInputError("mask", f"is {mask.shape[-1]}x{mask.shape[-2]}: expected the image's size, "
                                         f"{image.shape[2]}x{image.shape[1]}")
        if image.shape[-1] not in (3, 4):
            raise NodeInputError("image", f"has {image.shape[-1]} channels: expected RGB or RGBA")
        # the pack takes mask i for image i when the counts agree, else the first mask for all
        alpha = mask if mask.shape[0] == image.shape[0] else mask[:1].expand(image.shape[0], -1, -1)
        return torch.cat([image[..., :3], alpha.to(image)[..., None]], dim=-1)


# -- tiles -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TileLayout:
    """The pack's tile grid over an image: tile_count tiles a side (rows, columns), each tile_size
    (height, width) pixels and overlapping its neighbours by 2 x padding; sizes are (height, width)."""
    image_size: tuple[int, int]
    tile_size: tuple[int, int]
    tile_count: tuple[int, int]
    padding: int
    blending: int

    @property
    def total_count(self) -> int:
        return self.tile_count[0] * self.tile_count[1]

    def coord(self, index: int) -> tuple[int, int]:
        # the pack's order: index % count[0] along the height first
        return index % self.tile_count[0], index // self.tile_count[0]

    def start(self, coord, pad: int = 0) -> tuple[int, int]:
        return tuple(c * (t - 2 * self.padding) + (0 if c == 0 else pad) for c, t in zip(coord, self.tile_size))

    def end(self, coord, pad: int = 0) -> tuple[int, int]:
        return tuple(min(max(s + t - (0 if c == n - 1 else pad), 0), size)
                     for s, t, c, n, size in zip(self.start(coord), self.tile_size, coord, self.tile_count,
                                                 self.image_size))

    def rect(self, index: int) -> tuple[slice, slice]:
        coord = self.coord(index)
        (y0, x0), (y1, x1) = self.start(coord), self.end(coord)
        return slice(y0, y1), slice(x0, x1)

    def mask(self, index: int, blend: bool):
        """[1, h, w] of the tile: 1 where it alone covers the image (shrunk by padding - blending
        on its inner sides) or, with blend, where it is merged (shrunk by padding, then box-blurred
        by blending pixels)."""
        import torch
        import torch.nn.functional as F

        coord = self.coord(index)
        origin = self.start(coord)
        (y0, x0), (y1, x1) = self.start(coord), self.end(coord)
        pad = self.padding if blend else self.padding - self.blending
        (sy, sx), (ey, ex) = self.start(coord, pad), self.end(coord, pad)
        mask = torch.zeros(1, 1, y1 - y0, x1 - x0)
        mask[..., sy - origin[0]:ey - origin[0], sx - origin[1]:ex - origin[1]] = 1.0
        if blend and self.blending > 0:
            k = self.blending
            # kornia's box_blur: the mean over a k x k window, "same" size, edges reflected ((k-1)//2 before)
            before, after = (k - 1) // 2, k - 1 - (k - 1) // 2
            if min(mask.shape[-2:]) <= after:  # a reflection needs more pixels than it reflects
                raise NodeInputError("layout", f"tile {index} is {mask.shape[-1]}x{mask.shape[-2]}, too small to "
                                               f"blend over {k} pixels: lower blending or multiple")
            mask = F.avg_pool2d(F.pad(mask, (before, after, before, after), mode="reflect"), k, stride=1)
        return mask[0]


def _layout(value) -> TileLayout:
    if not isinstance(value, TileLayout):
        raise NodeInputError("layout", "expected a TILE_LAYOUT from ETN_TileLayout")
    return value


def _tile_index(layout: TileLayout, index: int) -> int:
    if index >= layout.total_count:
        raise NodeInputError("index", f"{index} is past the layout's last tile, {layout.total_count - 1} "
                                      f"({layout.tile_count[0]} x {layout.tile_count[1]} tiles)")
    return index


class EtnTileLayout(Node):
    """Plan overlapping tiles over the image, as the pack's Create Tile Layout does: per side,
    count = max(1, size // (min_tile_size - 2 x padding)) tiles, each ceil((size + (count - 1) x 2 x
    padding) / count) pixels rounded up to a multiple of `multiple`, placed every tile - 2 x padding
    pixels (the last cut off at the edge). The image's sides and min_tile_size must be multiples of
    `multiple`, blending at most padding, and padding under half of min_tile_size."""
    category = TILES
    display_name = "Create Tile Layout"
    image: IMAGE
    min_tile_size: int = Int(512, min=64, max=MAX_SIZE, step=8)
    padding: int = Int(32, min=0, max=MAX_SIZE, step=8)
    blending: int = Int(8, min=0, max=256, step=8)
    multiple: int = Int(8, min=1, max=1024)
    outputs = {"layout": TILE_LAYOUT}
    comfy = ComfyAlias(("ETN_TileLayout",))

    def run(self):
        import math

        image = _image(self.image, "image")
        size = (image.shape[1], image.shape[2])
        m = self.multiple
        if any(s % m for s in size):
            raise NodeInputError("image", f"is {size[1]}x{size[0]}: expected sides that are multiples of {m} "
                                          "(multiple)")
        if self.min_tile_size % m:
            raise NodeInputError("min_tile_size", f"{self.min_tile_size} is not a multiple of {m} (multiple)")
        if self.blending > self.padding:
            raise NodeInputError("blending", f"{self.blending} is more than the padding, {self.padding}")
        step = self.min_tile_size - 2 * self.padding
        if step <= 0:
            raise NodeInputError("padding", f"{self.padding} leaves no room in a {self.min_tile_size}-pixel tile: "
                                            "expected less than half of min_tile_size")
        count = tuple(max(1, s // step) for s in size)
        tile = tuple(math.ceil(math.ceil((s + (n - 1) * 2 * self.padding) / n) / m) * m for s, n in zip(size, count))
        if self.blending and min(tile) <= self.blending:
            raise NodeInputError("blending", f"{self.blending} is not less than a tile's side ({min(tile)})")
        return TileLayout(size, tile, count, self.padding, self.blending)


class EtnExtractImageTile(Node):
    """The index-th tile of the layout cut out of the image (tiles counted down the first column,
    then the next, as the pack counts them)."""
    category = TILES
    display_name = "Extract Image Tile"
    image: IMAGE
    layout: TILE_LAYOUT
    index: int = Int(0, min=0)
    outputs = {"tile": IMAGE}
    comfy = ComfyAlias(("ETN_ExtractImageTile",))

    def run(self):
        layout = _layout(self.layout)
        rows, cols = layout.rect(_tile_index(layout, self.index))
        return _image(self.image, "image")[:, rows, cols].clone()


class EtnExtractMaskTile(Node):
    """The index-th tile of the layout cut out of the mask (counted as ETN_ExtractImageTile counts)."""
    category = TILES
    display_name = "Extract Mask Tile"
    mask: MASK
    layout: TILE_LAYOUT
    index: int = Int(0, min=0)
    outputs = {"tile": MASK}
    comfy = ComfyAlias(("ETN_ExtractMaskTile",))

    def run(self):
        layout = _layout(self.layout)
        rows, cols = layout.rect(_tile_index(layout, self.index))
        mask = _mask(self.mask, "mask")
        return mask[:, rows, cols].clone()


class EtnGenerateTileMask(Node):
    """The index-th tile's mask: without blend, 1 on the part the tile alone covers (its inner sides
    shrunk by padding - blending); with blend, the weights ETN_MergeImageTile pastes it with (shrunk
    by padding, edges softened by a box blur of blending pixels)."""
    category = TILES
    display_name = "Generate Tile Mask"
    layout: TILE_LAYOUT
    index: int = Int(0, min=0)
    blend: bool = Bool(False)
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("ETN_GenerateTileMask",))

    def run(self):
        layout = _layout(self.layout)
        return layout.mask(_tile_index(layout, self.index), self.blend)


class EtnMergeImageTile(Node):
    """The image with the index-th tile pasted in its place, weighted by the tile's blended mask
    (ETN_GenerateTileMask with blend): image x (1 - mask) + tile x mask. Chain one per tile, index 0
    first. The pack writes tiles after the first into its input in place; ours returns a new image
    each time (the same result along a chain)."""
    category = TILES
    display_name = "Merge Image Tile"
    image: IMAGE
    layout: TILE_LAYOUT
    index: int = Int(0, min=0)
    tile: IMAGE
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ETN_MergeImageTile",))

    def run(self):
        layout = _layout(self.layout)
        index = _tile_index(layout, self.index)
        image, tile = _image(self.image, "image"), _image(self.tile, "tile")
        if tuple(image.shape[1:3]) != layout.image_size:
            raise NodeInputError("image", f"is {image.shape[2]}x{image.shape[1]}: expected the layout's image size, "
                                          f"{layout.image_size[1]}x{layout.image_size[0]}")
        rows, cols = layout.rect(index)
        region = image[:, rows, cols]
        if tile.shape[1:] != region.shape[1:] or tile.shape[0] not in (1, region.shape[0]):
            raise NodeInputError("tile", f"is {tile.shape[2]}x{tile.shape[1]} with {tile.shape[3]} channels: expected "
                                         f"tile {index}'s {region.shape[2]}x{region.shape[1]} with {region.shape[3]}")
        weight = layout.mask(index, blend=True)[..., None].to(image)
        out = image.clone()
        out[:, rows, cols] = (1 - weight) * region + weight * tile
        return out


# -- regions ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Regions:
    """A chain of regions, first to last: (mask [1, H, W], or None for the background: what the
    others leave, conditioning) each."""
    entries: tuple

    def masks(self):
        """[R, H, W]: each region's mask, the background's 1 - the sum of the others (the pack's)."""
        import torch

        if len(self.entries) < 2:
            raise NodeInputError("regions", "holds one region: expected at least 2 (a background or a region, then "
                                            "regions defined on it)")
        given = [mask for mask, _ in self.entries if mask is not None]
        background = 1.0 - torch.stack(given).sum(0) if self.entries[0][0] is None else None
        return torch.cat([background if mask is None else mask for mask, _ in self.entries])


def _regions(value, name: str = "regions") -> Regions:
    if not isinstance(value, Regions):
        raise NodeInputError(name, "expected REGIONS from ETN_BackgroundRegion or ETN_DefineRegion")
    return value


def _text(conditioning, name: str):
    """The first entry's text tokens [1, T, C], as the pack reads a region's conditioning; one
    prompt: the pack repeats the tokens per sampled row, so a batch of prompts fails there."""
    import torch

    if not conditioning or not torch.is_tensor(conditioning[0][0]) or conditioning[0][0].dim() != 3:
        raise NodeInputError(name, "expected a CONDITIONING of text tokens (a text encoder's output)")
    if conditioning[0][0].shape[0] != 1:
        raise NodeInputError(name, f"is a batch of {conditioning[0][0].shape[0]} prompts: expected one")
    return conditioning[0][0]


class EtnBackgroundRegion(Node):
    """Start regions with a background: its prompt is attended to wherever the regions defined on it
    leave room (its mask: 1 - the sum of theirs)."""
    category = REGIONS_CATEGORY
    display_name = "Background Region"
    conditioning: CONDITIONING
    outputs = {"regions": REGIONS}
    comfy = ComfyAlias(("ETN_BackgroundRegion",))

    def run(self):
        _text(self.conditioning, "conditioning")
        return Regions(((None, self.conditioning),))


class EtnDefineRegion(Node):
    """Add a region: its prompt is attended to where the mask is (weighted by it), after the
    regions given (or as the first). Masks are one [H, W] each, all of one size: the latent's or
    the image's it is sampled for."""
    category = REGIONS_CATEGORY
    display_name = "Define Region"
    mask: MASK
    conditioning: CONDITIONING
    regions: REGIONS = None
    outputs = {"regions": REGIONS}
    comfy = ComfyAlias(("ETN_DefineRegion",))

    def run(self):
        mask = _mask(self.mask, "mask")
        if mask.shape[0] != 1:
            raise NodeInputError("mask", f"is a batch of {mask.shape[0]} masks: expected one (a region has one mask)")
        _text(self.conditioning, "conditioning")
        before = _regions(self.regions).entries if self.regions is not None else ()
        sized = [m for m, _ in before if m is not None]
        if sized and sized[0].shape != mask.shape:
            raise NodeInputError("mask", f"is {mask.shape[-1]}x{mask.shape[-2]}: expected the other regions' size, "
                                         f"{sized[0].shape[-1]}x{sized[0].shape[-2]}")
        return Regions((*before, (mask.float(), self.conditioning)))


class EtnListRegionMasks(Node):
    """Each region's mask, first to last, as a mask batch (the background's: 1 - the others'). The
    pack gives them with an extra dimension [R, 1, H, W]; ours is a plain MASK batch [R, H, W]."""
    category = REGIONS_CATEGORY
    display_name = "List Region Masks"
    regions: REGIONS
    outputs = {"masks": MASK}
    comfy = ComfyAlias(("ETN_ListRegionMasks",))

    def run(self):
        return _regions(self.regions).masks()


class EtnAttentionMask(Node):
    """Regional prompting on an SD1.x / SDXL model: in every cross-attention each region's prompt is
    attended to on its own and the outputs summed, weighted by the regions' masks (divided by their
    sum at each pixel), so a region's prompt has no say in the attention where its mask is 0. The
    positive prompt given to the sampler is not attended to (give it as the background region);
    the negative prompt works as before. The masks must be the latent's size or the image's (8 x)."""
    category = REGIONS_CATEGORY
    display_name = "Regions Attention Mask"
    model: MODEL
    regions: REGIONS
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("ETN_AttentionMask",))

    def run(self):
        from graphflow.models.architectures import ARCHITECTURES
        from graphflow.models.region_attention import apply_region_attention

        arch = getattr(self.model, "arch", None)
        if getattr(ARCHITECTURES.get(arch), "saved_as", None) != "unet":  # the SD1 / SD2 / SDXL UNet families
            raise NodeInputError("model", f"a {arch} model: the regions' attention masks patch an SD1.x / SDXL UNet's "
                                          "cross-attention")
        regions = _regions(self.regions)
        masks = regions.masks()
        total = masks.sum(0, keepdim=True)
        if (total == 0).any():
            raise NodeInputError("regions", "their masks add up to 0 at some pixels, which no region would cover: "
                                            "start with ETN_BackgroundRegion, or cover the whole picture")
        contexts = [_text(conditioning, "regions") for _, conditioning in regions.entries]
        return apply_region_attention(self.model, masks / total, contexts)


# -- reference images ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    image: object  # IMAGE
    weight: float
    start: float
    end: float


class EtnReferenceImage(Node):
    """Add an image to a list of reference images for ETN_ApplyReferenceImages: its weight (under
    1 it gives fewer style tokens; 0 zeros them) and the part of the sampling (start to end, 0 to 1)
    where it applies."""
    category = TOOLING
    display_name = "Reference Image"
    image: IMAGE
    weight: float = Float(1.0, min=0.0, max=10.0)
    range_start: float = Float(0.0, min=0.0, max=1.0)
    range_end: float = Float(1.0, min=0.0, max=1.0)
    reference_images: REFERENCE_IMAGES = None
    outputs = {"reference_images": REFERENCE_IMAGES}
    comfy = ComfyAlias(("ETN_ReferenceImage",))

    def run(self):
        _image(self.image, "image")
        before = self.reference_images if self.reference_images is not None else ()
        if not isinstance(before, tuple) or not all(isinstance(r, Reference) for r in before):
            raise NodeInputError("reference_images", "expected REFERENCE_IMAGE from ETN_ReferenceImage")
        return (*before, Reference(self.image, self.weight, self.range_start, self.range_end))


def _fewer_tokens(tokens, weight: float, name: str):
    """The pack's downsampling of an image's style tokens [1, t, D] by weight: all at 1 or more,
    zeros at 0, else their square grid area-averaged to a half (weight 0.6 up), a third (0.3 up) or
    a quarter of its side."""
    import math

    import torch
    import torch.nn.functional as F

    if weight >= 1.0:
        return tokens
    if weight <= 0.0:
        return torch.zeros_like(tokens)
    factor = 2 if weight >= 0.6 else 3 if weight >= 0.3 else 4
    b, t, width = tokens.shape
    side = math.isqrt(t)
    if side * side != t:
        raise NodeInputError(name, f"a weight under 1 averages the style tokens over their square grid; this image "
                                   f"gives {t} tokens, no square (give one image per reference)")
    grid = tokens.view(b, side, side, width).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(side // factor, side // factor), mode="area")
    return grid.permute(0, 2, 3, 1).reshape(b, -1, width)


class EtnApplyReferenceImages(Node):
    """Add the reference images' style tokens (CLIP vision, then the style model: FLUX Redux) to the
    first conditioning entry's text tokens, one entry per stretch of the sampling between the
    references' start and end points, each with the tokens of the references active over all of
    it (ranges as start_percent / end_percent)."""
    category = TOOLING
    display_name = "Apply Reference Images"
    conditioning: CONDITIONING
    clip_vision: CLIP_VISION
    style_model: STYLE_MODEL
    references: REFERENCE_IMAGES
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("ETN_ApplyReferenceImages",))

    def run(self):
        import torch

        if not self.references or not all(isinstance(r, Reference) for r in self.references):
            raise NodeInputError("references", "expected REFERENCE_IMAGE from ETN_ReferenceImage")
        base, options = _text(self.conditioning, "conditioning"), self.conditioning[0][1]
        tokens = []
        for reference in self.references:
            try:
                encoded = self.clip_vision.encode_image(reference.image)
            except ValueError as e:
                raise NodeInputError("references", str(e)) from None
            try:
                style = self.style_model.tokens(encoded)
            except ValueError as e:
                raise NodeInputError("style_model", str(e)) from None
            style = _fewer_tokens(style.reshape(1, -1, style.shape[-1]), reference.weight, "references")
            if style.shape[-1] != base.shape[-1]:
                raise NodeInputError("style_model", f"gives {style.shape[-1]}-wide tokens; the conditioning's are "
                                                    f"{base.shape[-1]} wide (Redux: FLUX's T5 tokens)")
            tokens.append(style.to(base.device, base.dtype))
        points = sorted({0.0, 1.0} | {r.start for r in self.references} | {r.end for r in self.references})
        out = []
        for start, end in zip(points, points[1:]):
            active = [t for t, r in zip(tokens, self.references) if r.start <= start and r.end >= end]
            out.append((torch.cat([base, *active], dim=1), {**options, "start_percent": start, "end_percent": end}))
        return out


# -- Krita's inputs, outside Krita -----------------------------------------------------------------


def _stand_in_canvas():
    import torch

    return torch.full((1, KRITA_SIZE, KRITA_SIZE, 3), 0.5)


class EtnKritaCanvas(Node):
    """Krita's canvas, for a workflow Krita runs (Krita puts its canvas, size and seed in this node's
    place). Run anywhere else: a plain grey 512x512 picture (the pack shows a placeholder picture it
    ships), width and height 512, seed 0."""
    category = KRITA
    display_name = "Krita Canvas"
    outputs = {"image": IMAGE, "width": INT, "height": INT, "seed": INT}
    comfy = ComfyAlias(("ETN_KritaCanvas",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return Estimate(Size(1, KRITA_SIZE, KRITA_SIZE))

    def run(self):
        return _stand_in_canvas(), KRITA_SIZE, KRITA_SIZE, 0


class EtnKritaSelection(Node):
    """Krita's selection, for a workflow Krita runs (Krita puts the selection's mask and its
    offset in this node's place). Run anywhere else, as the pack's: a 512x512 mask of ones, active
    false, offset (0, 0)."""
    category = KRITA
    display_name = "Krita Selection"
    context: str = Choice(("automatic", "entire image", "mask bounds"), "entire image")
    padding: int = Int(0, min=0, max=MAX_SIZE)
    outputs = {"mask": MASK, "active": BOOLEAN, "x": INT, "y": INT}
    comfy = ComfyAlias(("ETN_KritaSelection",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return Estimate(Size(1, KRITA_SIZE, KRITA_SIZE))

    def run(self):
        import torch

        return torch.ones(1, KRITA_SIZE, KRITA_SIZE), False, 0, 0


class EtnKritaImageLayer(Node):
    """The Krita layer called name, for a workflow Krita runs. Run anywhere else: the grey 512x512
    stand-in of ETN_KritaCanvas and a 512x512 mask of ones (the pack's)."""
    category = KRITA
    display_name = "Krita Image Layer"
    name: str = Text("Image")
    outputs = {"image": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("ETN_KritaImageLayer",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return Estimate(Size(1, KRITA_SIZE, KRITA_SIZE))

    def run(self):
        import torch

        return _stand_in_canvas(), torch.ones(1, KRITA_SIZE, KRITA_SIZE)


class EtnKritaMaskLayer(Node):
    """The Krita mask layer called name, for a workflow Krita runs. Run anywhere else, as the
    pack's: a 512x512 mask of ones."""
    category = KRITA
    display_name = "Krita Mask Layer"
    name: str = Text("Mask")
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("ETN_KritaMaskLayer",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return Estimate(Size(1, KRITA_SIZE, KRITA_SIZE))

    def run(self):
        import torch

        return torch.ones(1, KRITA_SIZE, KRITA_SIZE)


PARAMETER_TYPES = ("auto", "number", "number (integer)", "toggle", "choice", "text", "prompt (positive)",
                   "prompt (negative)")


class EtnParameter(Node):
    """A parameter Krita shows for a workflow it runs (and fills in). Run anywhere else it gives its
    default, as the pack's: a number for "number", an integer for "number (integer)", else the
    default text as it is. min and max are the range Krita offers; they don't bound the default."""
    category = KRITA
    display_name = "Parameter"
    name: str = Text("Parameter")
    type: str = Choice(PARAMETER_TYPES, "auto")
    default: str = Text("")
    min: float = Float(-1e10, min=-FLOAT_MAX, max=FLOAT_MAX)
    max: float = Float(1e10, min=-FLOAT_MAX, max=FLOAT_MAX)
    outputs = {"value": ANY}
    comfy = ComfyAlias(("ETN_Parameter",), optional=("min", "max"))

    def run(self):
        if self.type not in ("number", "number (integer)"):
            return self.default
        try:
            return float(self.default) if self.type == "number" else int(self.default)
        except ValueError:
            kind = "a number" if self.type == "number" else "an integer"
            raise NodeInputError("default", f"{self.default!r} is not {kind} (type {self.type})") from None
