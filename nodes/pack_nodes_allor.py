"""Nourepide's ComfyUI-Allor, its model-free image nodes, under the pack's class names, inputs
(order, defaults, ranges), outputs and categories. Read from modules/*.py of the pack at these
commits: AlphaChanel.py c1c8ea1a8cd08368d4e19a2546c29faab43d2f6f, ImageBatch.py
0a32019ed098c159697a4d76c35dcdef8cf2cbed, ImageComposite.py e1cd6bd000d95fa57cdd4bfaff0408a10b2ce6e4,
ImageContainer.py 680d46d410af9399cab8f153a80856426bcb0ad1, ImageDraw.py and ImageFilter.py
6acd6b2f9d3b65861078d4e92746f80a06e5100a, ImageEffects.py e2ba6166cd867c3e658771467b3876c8b76466c1,
ImageTransform.py de1401e745a9cc856d5e4dd841499371a6de9b4c, Utils.py 5e08298fcda349cef8db284a695b0a25055164a6
(its PIL round trip and samplers; cv2_layer as the pack's later Utils.py has it).

Nodes here: AlphaChanelAdd, AlphaChanelAddByMask, AlphaChanelAsMask, AlphaChanelRestore,
AlphaChanelRemove; ImageBatchGet, ImageBatchRemove, ImageBatchFork, ImageBatchJoin,
ImageBatchPermute; ImageCompositeAbsolute, ImageCompositeRelative (each also ...ByContainer);
ImageContainer, ImageContainerInheritanceAdd / Scale / Max / Sum; ImageEffectsAdjustment,
Grayscale, Negative, Sepia; ImageFilterSmooth, SmoothMore, Blur, BoxBlur, GaussianBlur,
GaussianBlurAdvanced, StackBlur, MedianBlur, BilateralBlur, Contour, Detail, EdgeEnhance,
EdgeEnhanceMore, Emboss, FindEdges, Sharpen, Rank, Min, Max, Mode; ImageNoiseBeta, Binomial,
Bytes, Gaussian (ImageNoise.py at 03db0c8bc1fe49f0983b0cc5fe78f3e4c943cd3a). The ImageDraw*,
ImageTransform*, lens (ImageEffectsLensChromaticAberration / OpticAxis / Vignette), ImageText* and
clamp nodes are in nodes/pack_nodes_allor_draw.py.

Left out: ImageSegmentation, ...Custom, ...CustomAdvanced (graphflow/comfy_format.py ALLOR_LEFT_OUT:
rembg downloads its models at run time); not built in this round (ALLOR_LATER, not in the versions
read): the later pack's ImageEffectsLensBokeh / LensZoomBurst / ChromaticAberration and
ImageBatchCopy / RemoveByMask.

As in the pack, PIL steps see the picture as 8-bit (x · 255 cut to whole levels, as torchvision's
ToPILImage does) and give levels / 255 back; the OpenCV filters work on the float picture, alpha
as its own layer. Where the pack's code fails, these nodes give the evident result instead; where it
mixes up width and height without failing (ImageContainerInheritanceAdd / Scale, the padding
nodes) they give what the pack gives. Each node's help says which.
"""

from __future__ import annotations

from graphflow.api import (
    IMAGE, MASK, Choice, ComfyAlias, Estimate, Float, Int, Node, NodeInputError, Size, Text, Bool,
    check_interrupted, check_run_memory, run_limits,
)
from nodes.image import MAX_SIZE, _image

COMFY_PACK = "ComfyUI-Allor"  # the custom node pack this module's ComfyUI classes come from

TRUE_FALSE = ("true", "false")
MOST_RANK_SIZE = 63  # the rank filters' and the bilateral filter's widest window (their work grows as its square)
# The window filters work a strip of STRIP_ROWS rows at a time (with their window's reach of
# rows above and below, so the pixels equal one call's), a stop request heard between strips, and
# refuse work beyond these bounds, set so that each widget's largest window runs on pictures up to
# ORDINARY_SIDE² (SDXL's sizes): PIL's rank filters at 63² take minutes there (measured on a
# shared 2-core machine, RGB 1536²: Rank ~6.5, Min / Max ~5.5, Mode ~0.7 minutes), heard stopping
# between strips:
STRIP_ROWS = 256
ORDINARY_SIDE = 1536
MOST_RANK_WORK = MOST_RANK_SIZE ** 2 * ORDINARY_SIDE ** 2  # PIL's rank / min / max / mode: window area × pixels
MOST_BILATERAL_WORK = 1 << 36  # OpenCV's bilateralFilter: window area × pixels (63² on 1536² is 2^33.1)
# OpenCV's medianBlur (8-bit, its histogram method): window width × pixels, about 3 minutes here; a
# window as tall as the picture makes one call, so this bounds what a stop can't interrupt
MOST_MEDIAN_WORK = 1 << 33
# OpenCV's GaussianBlur (separable): (kernel width + height) × pixels; the largest kernels (1023 ×
# 1023) up to about 2896² pictures
MOST_GAUSSIAN_WORK = 1 << 34


# -- the pack's PIL and OpenCV round trips --------------------------------------------------------


def _picture(image):
    """A [H, W, C] float picture as PIL sees it in the pack: x · 255 cut to a whole level."""
    import torch
    from PIL import Image
    levels = (image.detach().cpu().float().clamp(0, 1) * 255).to(torch.uint8).numpy()
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(levels.shape[-1])
    if mode is None:
        raise NodeInputError("images", f"{levels.shape[-1]} channels: expected 1, 3 or 4")
    return Image.fromarray(levels[..., 0] if mode == "L" else levels, mode)


def _tensor(picture):
    """A PIL picture as a [H, W, C] float tensor: its levels / 255."""
    import numpy as np
    import torch
    levels = np.asarray(picture, dtype=np.float32) / 255
    return torch.from_numpy(levels if levels.ndim == 3 else levels[..., None])


def _each_picture(images, change):
    """change(PIL picture) for each image of the batch, stacked."""
    import torch
    out = []
    for image in _image(images, "images"):
        check_interrupted()
        out.append(_tensor(change(_picture(image))))
    return torch.stack(out)


def _each_layer(images, change):
    """change(numpy array) on each image's colour channels and on its alpha apart, as the pack's
    cv2_layer does."""
    import numpy as np
    import torch
    out = []
    for image in _image(images, "images"):
        check_interrupted()
        pixels = image.detach().cpu().float().numpy()
        layers = [change(np.ascontiguousarray(pixels[..., :3]))]
        if pixels.shape[-1] == 4:
            layers.append(change(np.ascontiguousarray(pixels[..., 3:4])).reshape(pixels.shape[:2] + (1,)))
        out.append(torch.from_numpy(np.concatenate(layers, axis=-1)))
    return torch.stack(out)


def _by_strips(pixels, change, reach: int):
    """change(pixels) on a numpy picture worked out STRIP_ROWS rows at a time, each strip with
    `reach` rows of its neighbours above and below (all a window of that reach sees), so the
    result equals one call's; a stop request is heard between strips."""
    import numpy as np
    height, rows = pixels.shape[0], max(STRIP_ROWS, 2 * reach)
    if height <= rows:
        return change(pixels)
    parts = []
    for top in range(0, height, rows):
        check_interrupted()
        start, end = max(top - reach, 0), min(top + rows + reach, height)
        part = change(np.ascontiguousarray(pixels[start:end]))
        parts.append(part[top - start:top - start + min(rows, height - top)])
    return np.concatenate(parts, axis=0)


def _pil_by_strips(picture, image_filter, reach: int):
    """picture.filter(image_filter) worked out by strips as _by_strips does."""
    from PIL import Image
    width, height = picture.size
    rows = max(STRIP_ROWS, 2 * reach)
    if height <= rows:
        return picture.filter(image_filter)
    out = Image.new(picture.mode, picture.size)
    for top in range(0, height, rows):
        check_interrupted()
        start, end = max(top - reach, 0), min(top + rows + reach, height)
        part = picture.crop((0, start, width, end)).filter(image_filter)
        out.paste(part.crop((0, top - start, width, top - start + min(rows, height - top))), (0, top))
    return out


def _check_work(images, per_pixel: int, most: int, name: str, value, what: str) -> None:
    """Refuse (naming `name`) a window filter whose work, per_pixel × each picture's pixels, is
    beyond `most`: it would hold the run for many minutes an image."""
    images = _image(images, "images")
    height, width = images.shape[1:3]
    if per_pixel * height * width > most:
        raise NodeInputError(name, f"{value}: {what} over {width}×{height} pictures is beyond what this node "
                                   f"takes ({per_pixel * height * width:.2g} window-pixels, at most {most:.2g}); "
                                   f"a smaller {name} or picture")


def numbers(widgets: dict, *names: str) -> tuple:
    """The named widget values for an estimate; KeyError unless each is a finite number (a linked or
    odd value: the estimate knows nothing)."""
    import math
    values = tuple(widgets.get(name) for name in names)
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        raise KeyError(names)
    return values


def _rgba(red: int, green: int, blue: int, alpha: float) -> tuple:
    return red, green, blue, int(alpha * 255)


def _solid(width: int, height: int, color: tuple, batch: int = 1):
    """A batch of one-colour RGBA pictures, through PIL as the pack's containers are."""
    from PIL import Image
    return _tensor(Image.new("RGBA", (width, height), color))[None].expand(batch, -1, -1, -1).clone()


# -- alpha ---------------------------------------------------------------------------------------


class AllorAlphaChanelAdd(Node):
    """An opaque alpha channel added to RGB images (alpha 1); RGBA images are given back as they are."""
    category = "image/alpha"
    images: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("AlphaChanelAdd",))

    def run(self):
        import torch
        images = _image(self.images, "images")
        if images.shape[-1] == 4:
            return images
        if images.shape[-1] != 3:
            raise NodeInputError("images", f"{images.shape[-1]} channels: expected RGB (3) or RGBA (4)")
        return torch.cat([images, torch.ones_like(images[..., :1])], dim=-1)


class AllorAlphaChanelAddByMask(Node):
    """RGB images with the mask as their alpha: 1 - mask ("default": the mask marks what goes
    transparent) or the mask itself ("invert"). The mask must have the images' size; a mask batch
    of one serves each image, else one mask an image. As in the pack, a 64×64 mask is read as
    ComfyUI's empty mask (what LoadImage gives for a picture without alpha): no mask at all,
    whatever its values."""
    category = "image/alpha"
    images: IMAGE
    mask: MASK
    method: str = Choice(("default", "invert"), "default")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("AlphaChanelAddByMask",))

    def run(self):
        import torch
        images = _image(self.images, "images")
        mask = self.mask if self.mask.ndim == 3 else self.mask.reshape((1,) + tuple(self.mask.shape[-2:]))
        if tuple(mask.shape[1:]) == (64, 64):
            mask = torch.zeros(1, *images.shape[1:3])
        if mask.shape[1:] != images.shape[1:3]:
            raise NodeInputError("mask", f"size {mask.shape[2]}×{mask.shape[1]}: expected the images' "
                                         f"{images.shape[2]}×{images.shape[1]}")
        if mask.shape[0] not in (1, images.shape[0]):
            raise NodeInputError("mask", f"a batch of {mask.shape[0]}: expected 1 or {images.shape[0]}")
        alpha = 1.0 - mask if self.method == "default" else mask
        alpha = alpha.to(images).expand(images.shape[0], -1, -1)
        return torch.cat([images[..., :3], alpha[..., None]], dim=-1)


class AllorAlphaChanelAsMask(Node):
    """The first image's alpha as a mask, as the pack takes it: 1 - alpha ("default") or alpha
    itself ("invert"). Images without an alpha channel are refused."""
    category = "image/alpha"
    images: IMAGE
    method: str = Choice(("default", "invert"), "default")
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("AlphaChanelAsMask",))

    def run(self):
        images = _image(self.images, "images")
        if images.shape[-1] != 4:
            raise NodeInputError("images", "no alpha channel: expected RGBA images (4 channels)")
        alpha = images[:1, ..., 3]
        return 1.0 - alpha if self.method == "default" else alpha.clone()


class AllorAlphaChanelRestore(Node):
    """RGBA images made opaque (alpha 1); images without alpha are given back as they are."""
    category = "image/alpha"
    images: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("AlphaChanelRestore",))

    def run(self):
        images = _image(self.images, "images")
        if images.shape[-1] != 4:
            return images
        restored = images.clone()
        restored[..., 3] = 1.0
        return restored


class AllorAlphaChanelRemove(Node):
    """The images' first three channels: the alpha channel dropped."""
    category = "image/alpha"
    images: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("AlphaChanelRemove",))

    def run(self):
        return _image(self.images, "images")[..., :3]


# -- batches -------------------------------------------------------------------------------------


class AllorImageBatchGet(Node):
    """The index-th image of the batch (counted from 1). An index past the batch gives its last
    image (the pack's code fails there)."""
    category = "image/batch"
    images: IMAGE
    index: int = Int(1, min=1, step=1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageBatchGet",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("images")
        return Estimate(Size(1, size.height, size.width) if size else None)

    def run(self):
        images = _image(self.images, "images")
        index = min(images.shape[0], self.index) - 1
        return images[index:index + 1]


class AllorImageBatchRemove(Node):
    """The batch without its index-th image (counted from 1); an index past the batch removes
    nothing, as in the pack. A batch of one is refused (nothing would be left)."""
    category = "image/batch"
    images: IMAGE
    index: int = Int(1, min=1, step=1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageBatchRemove",))

    def run(self):
        import torch
        images = _image(self.images, "images")
        if images.shape[0] == 1 and self.index == 1:
            raise NodeInputError("images", "a batch of one: removing its image leaves no image")
        index = self.index - 1
        return torch.cat([images[:index], images[index + 1:]])


class AllorImageBatchFork(Node):
    """The batch split in two halves; an odd batch gives its extra image to the first half
    (priority "first") or the second. A batch of one goes whole to both outputs."""
    category = "image/batch"
    images: IMAGE
    priority: str = Choice(("first", "second"), "first")
    outputs = {"IMAGE": IMAGE, "IMAGE_2": IMAGE}
    comfy = ComfyAlias(("ImageBatchFork",))

    def run(self):
        images = _image(self.images, "images")
        count = images.shape[0]
        if count == 1:
            return images, images
        first = (count + 1) // 2 if self.priority == "first" else count // 2
        return images[:first], images[first:]


class AllorImageBatchJoin(Node):
    """images_b's batch after images_a's; both need the same size and channels (the pack's advice:
    ImageTransformResize* for the size, AlphaChanel* for the channels)."""
    category = "image/batch"
    images_a: IMAGE
    images_b: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageBatchJoin",))

    @classmethod
    def estimate(cls, widgets, inputs):
        a, b = inputs.get("images_a"), inputs.get("images_b")
        return Estimate(Size(a.batch + b.batch, a.height, a.width) if a and b else a)

    def run(self):
        import torch
        a, b = _image(self.images_a, "images_a"), _image(self.images_b, "images_b")
        for what, axis in (("height", 1), ("width", 2), ("channels", 3)):
            if a.shape[axis] != b.shape[axis]:
                raise NodeInputError("images_b", f"{what} {b.shape[axis]}: images_a's is {a.shape[axis]}")
        return torch.cat([a, b.to(a)])


class AllorImageBatchPermute(Node):
    """The batch's images in the order the numbers in `permute` give (any text between them),
    counted from 1 (from 0 with start_with_zero); numbers past the batch are cut to its ends, as in
    the pack. An image may come more than once. A linked text's count is checked when it runs: more
    numbers than the server's max_batch, or than memory holds, is refused naming permute."""
    category = "image/batch"
    images: IMAGE
    permute: str = Text("")
    start_with_zero: bool = Bool(False)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageBatchPermute",))

    @classmethod
    def estimate(cls, widgets, inputs):
        import re
        size, permute = inputs.get("images"), widgets.get("permute")
        if size is None or not isinstance(permute, str):
            return Estimate(size)
        return Estimate(Size(max(len(re.findall(r"\d+", permute)), 1), size.height, size.width))

    def run(self):
        import re
        import torch
        images = _image(self.images, "images")
        picks = re.findall(r"\d+", self.permute)
        if not picks:
            raise NodeInputError("permute", "no numbers: expected image numbers such as 3, 1, 2")
        # a linked permute text is known only now: its batch held to the server's limits and memory
        most = run_limits().max_batch
        if most is not None and len(picks) > most:
            raise NodeInputError("permute", f"{len(picks)} image numbers make a batch larger than this server "
                                            f"allows ({most})")
        check_run_memory("permute", f"{len(picks)} image numbers",
                         images=Size(len(picks), images.shape[1], images.shape[2]))
        try:
            picked = [int(n) for n in picks]
        except ValueError as e:  # Python refuses to read a number of over 4300 digits
            raise NodeInputError("permute", f"{e}: expected image numbers such as 3, 1, 2") from None
        first = 0 if self.start_with_zero else 1
        last = images.shape[0] - 1  # cut in Python: a number past int64 would overflow a tensor
        order = torch.tensor([min(max(n - first, 0), last) for n in picked])
        return images.index_select(0, order.to(images.device))


# -- composite -----------------------------------------------------------------------------------


def _placed(image, x: int, y: int, width: int, height: int):
    """An image as RGBA on a transparent width × height container at x, y (what overflows cut)."""
    import torch
    if image.shape[-1] == 3:
        image = torch.cat([image, torch.ones_like(image[..., :1])], dim=-1)
    container = torch.zeros(height, width, 4, dtype=image.dtype)
    image = image[max(-y, 0):, max(-x, 0):]  # a negative offset cuts the image's top / left
    x, y = max(x, 0), max(y, 0)
    h, w = min(image.shape[0], height - y), min(image.shape[1], width - x)
    if h > 0 and w > 0:
        container[y:y + h, x:x + w] = image[:h, :w].cpu()
    return container


def _pairs(images_a, images_b, method: str):
    if method == "matrix":
        return [(a, b) for a in images_a for b in images_b]
    if images_a.shape[0] != images_b.shape[0]:
        raise NodeInputError("images_b", f"a batch of {images_b.shape[0]}: method pair needs images_a's "
                                         f"{images_a.shape[0]} (or method matrix)")
    return list(zip(images_a, images_b))


def _composite(images_a, images_b, offsets, width: int, height: int, background: str, method: str):
    """The pack's composite: each pair placed on transparent containers, the front one laid over
    the background one by PIL's alpha_composite (in 8-bit)."""
    import torch
    from PIL import Image
    (ax, ay), (bx, by) = offsets
    out = []
    for a, b in _pairs(_image(images_a, "images_a"), _image(images_b, "images_b"), method):
        check_interrupted()
        width_here = width or max(a.shape[1], b.shape[1])
        height_here = height or max(a.shape[0], b.shape[0])
        layer_a = _picture(_placed(a, ax, ay, width_here, height_here))
        layer_b = _picture(_placed(b, bx, by, width_here, height_here))
        back, front = (layer_a, layer_b) if background == "images_a" else (layer_b, layer_a)
        out.append(_tensor(Image.alpha_composite(back, front)))
    return torch.stack(out)


def _composite_estimate(inputs, width: int, height: int, method):
    a, b = inputs.get("images_a"), inputs.get("images_b")
    if not (a and b):
        return Estimate(None)
    batch = a.batch * b.batch if method == "matrix" else a.batch
    return Estimate(Size(batch, height or max(a.height, b.height), width or max(a.width, b.width)))


class AllorImageCompositeAbsolute(Node):
    """images_a and images_b laid on a container of container_width × container_height (0: the
    larger of the two) at their x, y, as RGBA: the background's image under the other (PIL's
    alpha_composite, 8-bit). Method pair takes the batches image by image (same length), matrix
    every image of a with every one of b."""
    category = "image/composite"
    images_a: IMAGE
    images_b: IMAGE
    images_a_x: int = Int(0, min=0, max=MAX_SIZE, step=1)
    images_a_y: int = Int(0, min=0, max=MAX_SIZE, step=1)
    images_b_x: int = Int(0, min=0, max=MAX_SIZE, step=1)
    images_b_y: int = Int(0, min=0, max=MAX_SIZE, step=1)
    container_width: int = Int(0, min=0, max=MAX_SIZE, step=1)
    container_height: int = Int(0, min=0, max=MAX_SIZE, step=1)
    background: str = Choice(("images_a", "images_b"), "images_a")
    method: str = Choice(("pair", "matrix"), "pair")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageCompositeAbsolute",))

    @classmethod
    def estimate(cls, widgets, inputs):
        try:
            width, height = numbers(widgets, "container_width", "container_height")
        except KeyError:
            return Estimate(None)
        return _composite_estimate(inputs, int(width), int(height), widgets.get("method"))

    def run(self):
        offsets = ((self.images_a_x, self.images_a_y), (self.images_b_x, self.images_b_y))
        return _composite(self.images_a, self.images_b, offsets, self.container_width, self.container_height,
                          self.background, self.method)


def _container_size(a, b, size_type: str, name: str):
    """The (width, height) of a container for images of (width, height) a and b."""
    if size_type == "max":
        return max(a[0], b[0]), max(a[1], b[1])
    if size_type == "sum":
        return a[0] + b[0], a[1] + b[1]
    if size_type == "sum_width":
        if a[1] != b[1]:
            raise NodeInputError(name, f"sum_width needs images of one height: {a[1]} and {b[1]}")
        return a[0] + b[0], a[1]
    if a[0] != b[0]:
        raise NodeInputError(name, f"sum_height needs images of one width: {a[0]} and {b[0]}")
    return a[0], a[1] + b[1]


def _composite_container_size(a, b, size_type: str):
    """ImageCompositeRelative's container: _container_size's, but for sum_height the pack's own
    (its width check compares images_b's width with itself): images_a's width by images_a's height
    twice, whatever images_b's size."""
    if size_type == "sum_height":
        return a[0], a[1] + a[1]
    return _container_size(a, b, size_type, "container_size_type")


class AllorImageCompositeRelative(Node):
    """ImageCompositeAbsolute on a container sized by container_size_type (max: the larger sides;
    sum: both sides added; sum_width: the widths added, the heights must agree; sum_height, as the
    pack computes it: images_a's width by twice images_a's height, whatever images_b's size), each
    image at x, y as a fraction of the room it leaves (int((container - image) · x)). An image
    larger than the container has negative room: it is shifted that fraction of its overflow up or
    left and cut (the pack's code fails there unless the fraction is 0)."""
    category = "image/composite"
    images_a: IMAGE
    images_b: IMAGE
    images_a_x: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    images_a_y: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    images_b_x: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    images_b_y: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    background: str = Choice(("images_a", "images_b"), "images_a")
    container_size_type: str = Choice(("max", "sum", "sum_width", "sum_height"), "max")
    method: str = Choice(("pair", "matrix"), "pair")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageCompositeRelative",))

    @classmethod
    def estimate(cls, widgets, inputs):
        a, b = inputs.get("images_a"), inputs.get("images_b")
        try:
            width, height = _composite_container_size((a.width, a.height), (b.width, b.height),
                                                      widgets["container_size_type"])
        except (AttributeError, KeyError, TypeError, NodeInputError):
            return Estimate(None)
        return _composite_estimate(inputs, width, height, widgets.get("method"))

    def run(self):
        a, b = _image(self.images_a, "images_a"), _image(self.images_b, "images_b")
        size_a, size_b = (a.shape[2], a.shape[1]), (b.shape[2], b.shape[1])
        width, height = _composite_container_size(size_a, size_b, self.container_size_type)
        offsets = [(int((width - w) * x), int((height - h) * y))
                   for (w, h), x, y in ((size_a, self.images_a_x, self.images_a_y),
                                        (size_b, self.images_b_x, self.images_b_y))]
        return _composite(a, b, offsets, width, height, self.background, self.method)


class AllorImageCompositeAbsoluteByContainer(Node):
    """ImageCompositeAbsolute on a container the size of the container input's first image (only
    its size is used: the result is transparent where neither image lies)."""
    category = "image/composite"
    container: IMAGE
    images_a: IMAGE
    images_b: IMAGE
    images_a_x: int = Int(0, min=0, max=MAX_SIZE, step=1)
    images_a_y: int = Int(0, min=0, max=MAX_SIZE, step=1)
    images_b_x: int = Int(0, min=0, max=MAX_SIZE, step=1)
    images_b_y: int = Int(0, min=0, max=MAX_SIZE, step=1)
    background: str = Choice(("images_a", "images_b"), "images_a")
    method: str = Choice(("pair", "matrix"), "pair")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageCompositeAbsoluteByContainer",))

    @classmethod
    def estimate(cls, widgets, inputs):
        container = inputs.get("container")
        if container is None:
            return Estimate(None)
        return _composite_estimate(inputs, container.width, container.height, widgets.get("method"))

    def run(self):
        container = _image(self.container, "container")
        offsets = ((self.images_a_x, self.images_a_y), (self.images_b_x, self.images_b_y))
        return _composite(self.images_a, self.images_b, offsets, container.shape[2], container.shape[1],
                          self.background, self.method)


class AllorImageCompositeRelativeByContainer(Node):
    """ImageCompositeRelative on a container the size of the container input's first image, which
    must be at least as wide and high as the larger first images of a and b; each image at x, y as
    a fraction of the room it leaves there."""
    category = "image/composite"
    container: IMAGE
    images_a: IMAGE
    images_b: IMAGE
    images_a_x: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    images_a_y: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    images_b_x: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    images_b_y: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    background: str = Choice(("images_a", "images_b"), "images_a")
    method: str = Choice(("pair", "matrix"), "pair")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageCompositeRelativeByContainer",))

    estimate = AllorImageCompositeAbsoluteByContainer.estimate

    def run(self):
        container = _image(self.container, "container")
        a, b = _image(self.images_a, "images_a"), _image(self.images_b, "images_b")
        height, width = container.shape[1:3]
        if width < max(a.shape[2], b.shape[2]) or height < max(a.shape[1], b.shape[1]):
            raise NodeInputError("container", f"{width}×{height}: expected at least the images' larger size "
                                              f"{max(a.shape[2], b.shape[2])}×{max(a.shape[1], b.shape[1])}")
        offsets = [(int((width - image.shape[2]) * x), int((height - image.shape[1]) * y))
                   for image, x, y in ((a, self.images_a_x, self.images_a_y), (b, self.images_b_x, self.images_b_y))]
        return _composite(a, b, offsets, width, height, self.background, self.method)


# -- containers ----------------------------------------------------------------------------------


def _color_inputs(alpha_default: float = 0.0):
    return (Int(255, min=0, max=255, step=1), Int(255, min=0, max=255, step=1), Int(255, min=0, max=255, step=1),
            Float(alpha_default, min=0.0, max=1.0, step=0.01))


class AllorImageContainer(Node):
    """A width × height RGBA picture of one colour (alpha 0..1, kept as a whole level of 255)."""
    category = "image"
    width: int = Int(512, min=1, max=MAX_SIZE, step=1, resource="width")
    height: int = Int(512, min=1, max=MAX_SIZE, step=1, resource="height")
    red: int
    green: int
    blue: int
    alpha: float
    red, green, blue, alpha = _color_inputs()
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageContainer",))

    def run(self):
        return _solid(self.width, self.height, _rgba(self.red, self.green, self.blue, self.alpha))


def _inherited(width: int, height: int, node, batch: int):
    if width < 1 or height < 1:
        raise NodeInputError("images", f"the container would be {width}×{height}: expected at least 1×1")
    return _solid(width, height, _rgba(node.red, node.green, node.blue, node.alpha), batch)


def _inherited_batch(method: str, a, b=None) -> int:
    if method == "single":
        return 1
    return a * b if method == "for_each_matrix" else a


def _inherited_size(images_size, add_width: int, add_height: int):
    """The pack's container size (width, height) for an image of (width, height) images_size: it
    reads the image's height as its width and the other way round, so the container is the image's
    height + add_width wide and its width + add_height high (the image's own size where it is
    square and nothing is added)."""
    width, height = images_size
    return height + add_width, width + add_height


class AllorImageContainerInheritanceAdd(Node):
    """A one-colour RGBA container from the first image's size plus add_width and add_height: one
    ("single") or one for each image ("for_each"). As the pack reckons it, the container is the
    image's height + add_width wide and its width + add_height high: the image's size turned, for
    a picture that is not square."""
    category = "image"
    images: IMAGE
    add_width: int = Int(0, min=-MAX_SIZE, max=MAX_SIZE, step=1)
    add_height: int = Int(0, min=-MAX_SIZE, max=MAX_SIZE, step=1)
    red: int
    green: int
    blue: int
    alpha: float
    red, green, blue, alpha = _color_inputs()
    method: str = Choice(("single", "for_each"), "single")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageContainerInheritanceAdd",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("images")
        try:
            width, height = _inherited_size((size.width, size.height), *numbers(widgets, "add_width", "add_height"))
            return Estimate(Size(_inherited_batch(widgets["method"], size.batch), max(int(height), 1),
                                 max(int(width), 1)))
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
            return Estimate(None)

    def run(self):
        images = _image(self.images, "images")
        width, height = _inherited_size((images.shape[2], images.shape[1]), self.add_width, self.add_height)
        return _inherited(width, height, self, _inherited_batch(self.method, images.shape[0]))


class AllorImageContainerInheritanceScale(Node):
    """ImageContainerInheritanceAdd adding int(side · scale - side) to each side, as the pack
    reckons it: the image's height scaled by scale_width gives the width and its width scaled by
    scale_height the height (the image's size turned, for a picture that is not square)."""
    category = "image"
    images: IMAGE
    scale_width: float = Float(1.0, min=0.0, max=64.0, step=0.1)
    scale_height: float = Float(1.0, min=0.0, max=64.0, step=0.1)
    red: int
    green: int
    blue: int
    alpha: float
    red, green, blue, alpha = _color_inputs()
    method: str = Choice(("single", "for_each"), "single")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageContainerInheritanceScale",))

    @staticmethod
    def _size(width, height, scale_width, scale_height):
        # the pack's own mix-up: "width" is the image's height, "height" its width
        first, second = height, width
        return _inherited_size((width, height), int(first * scale_width - first), int(second * scale_height - second))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("images")
        try:
            width, height = cls._size(size.width, size.height, *numbers(widgets, "scale_width", "scale_height"))
            return Estimate(Size(_inherited_batch(widgets["method"], size.batch), max(int(height), 1),
                                 max(int(width), 1)))
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
            return Estimate(None)

    def run(self):
        images = _image(self.images, "images")
        width, height = self._size(images.shape[2], images.shape[1], self.scale_width, self.scale_height)
        return _inherited(width, height, self, _inherited_batch(self.method, images.shape[0]))


class _InheritedPairContainer(Node):
    """What ImageContainerInheritanceMax and ...Sum share: two batches and a colour."""
    category = "image"
    images_a: IMAGE
    images_b: IMAGE
    red: int
    green: int
    blue: int
    alpha: float
    red, green, blue, alpha = _color_inputs()
    outputs = {"IMAGE": IMAGE}
    container_size_type = "max"

    @classmethod
    def estimate(cls, widgets, inputs):
        a, b = inputs.get("images_a"), inputs.get("images_b")
        try:
            width, height = _container_size((a.width, a.height), (b.width, b.height),
                                            widgets.get("container_size_type", "max"), "container_size_type")
            return Estimate(Size(_inherited_batch(widgets["method"], a.batch, b.batch), height, width))
        except (AttributeError, KeyError, TypeError, NodeInputError):
            return Estimate(None)

    def run(self):
        a, b = _image(self.images_a, "images_a"), _image(self.images_b, "images_b")
        width, height = _container_size((a.shape[2], a.shape[1]), (b.shape[2], b.shape[1]),
                                        self.container_size_type, "container_size_type")
        return _inherited(width, height, self, _inherited_batch(self.method, a.shape[0], b.shape[0]))


class AllorImageContainerInheritanceMax(_InheritedPairContainer):
    """A one-colour RGBA container as wide and high as the larger of the first images of a and b:
    one ("single"), one for each image of a ("for_each_pair") or for each pair a × b
    ("for_each_matrix")."""
    method: str = Choice(("single", "for_each_pair", "for_each_matrix"), "single")
    comfy = ComfyAlias(("ImageContainerInheritanceMax",))


class AllorImageContainerInheritanceSum(_InheritedPairContainer):
    """As ImageContainerInheritanceMax, the container's sides the sum of the first images' of a and
    b ("sum"), or one side summed and the other shared ("sum_width" / "sum_height": the other side
    must agree)."""
    container_size_type: str = Choice(("sum", "sum_width", "sum_height"), "sum")
    method: str = Choice(("single", "for_each_pair", "for_each_matrix"), "single")
    comfy = ComfyAlias(("ImageContainerInheritanceSum",))


# -- effects -------------------------------------------------------------------------------------


def _mix(a, b, ratio: float):
    """ratio · a + (1 - ratio) · b, clamped to 0..1 (torchvision's blend for float pictures)."""
    return (ratio * a + (1.0 - ratio) * b).clamp(0, 1)


def _grey(rgb):
    """Luma as torchvision's rgb_to_grayscale weighs it, [..., 3, H, W] -> [..., 1, H, W]."""
    return (0.2989 * rgb[..., 0, :, :] + 0.587 * rgb[..., 1, :, :] + 0.114 * rgb[..., 2, :, :]).unsqueeze(-3)


def _hue_shifted(rgb, shift: float):
    """The picture [3, H, W] with its HSV hue turned by `shift` turns (torchvision's adjust_hue)."""
    import torch
    r, g, b = rgb
    top, bottom = rgb.max(0).values, rgb.min(0).values
    grey = top == bottom
    spread = top - bottom
    saturation = spread / torch.where(grey, torch.ones_like(top), top)
    spread = torch.where(grey, torch.ones_like(spread), spread)
    rc, gc, bc = (top - r) / spread, (top - g) / spread, (top - b) / spread
    hue = torch.where(top == r, bc - gc, torch.where(top == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.fmod(hue / 6.0 + 1.0, 1.0)
    hue = (hue + shift) % 1.0
    sector = torch.floor(hue * 6.0)
    within = hue * 6.0 - sector
    sector = sector.to(torch.int64) % 6
    p = (top * (1.0 - saturation)).clamp(0, 1)
    q = (top * (1.0 - saturation * within)).clamp(0, 1)
    t = (top * (1.0 - saturation * (1.0 - within))).clamp(0, 1)
    choices = {"r": (top, q, p, p, t, top), "g": (t, top, top, q, p, p), "b": (p, p, t, top, top, q)}
    return torch.stack([torch.stack(values).gather(0, sector[None])[0] for values in choices.values()])


def _sharpened(rgb, factor: float):
    """torchvision's adjust_sharpness on [3, H, W]: mixed with its 3×3 smoothing (1s around, 5 in
    the centre, / 13) inside a one-pixel border that stays as it is."""
    import torch
    import torch.nn.functional as F
    if rgb.shape[-1] <= 2 or rgb.shape[-2] <= 2:
        return rgb
    kernel = torch.ones(3, 3, dtype=rgb.dtype, device=rgb.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(3, 1, 3, 3)
    smooth = rgb.clone()
    smooth[:, 1:-1, 1:-1] = F.conv2d(rgb[None], kernel, groups=3)[0]
    return _mix(rgb, smooth, factor)


class AllorImageEffectsAdjustment(Node):
    """Brightness, contrast, saturation, hue, gamma and sharpness as torchvision's adjust_*
    functions give them, in that order, each only where it differs from its neutral value (hue's
    is 0.5: the hue turns by hue - 0.5), then the red, green and blue channels multiplied by their
    factors and clamped to 0..1. An alpha channel is kept as it is."""
    category = "image/effects"
    images: IMAGE
    brightness: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    contrast: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    saturation: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    hue: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    gamma: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    sharpness: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    red: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    green: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    blue: float = Float(1.0, min=0.0, max=100.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageEffectsAdjustment",))

    def _adjusted(self, rgb):
        import torch
        if self.brightness != 1.0:
            rgb = _mix(rgb, torch.zeros_like(rgb), self.brightness)
        if self.contrast != 1.0:
            rgb = _mix(rgb, _grey(rgb).mean(), self.contrast)
        if self.saturation != 1.0:
            rgb = _mix(rgb, _grey(rgb), self.saturation)
        if self.hue != 0.5:
            rgb = _hue_shifted(rgb, self.hue - 0.5)
        if self.gamma != 1.0:
            rgb = (rgb ** self.gamma).clamp(0, 1)
        if self.sharpness != 1.0:
            rgb = _sharpened(rgb, self.sharpness)
        gains = torch.tensor([self.red, self.green, self.blue], dtype=rgb.dtype, device=rgb.device)
        return (rgb * gains[:, None, None]).clamp(0, 1)

    def run(self):
        import torch
        images = _image(self.images, "images")
        if images.shape[-1] not in (3, 4):
            raise NodeInputError("images", f"{images.shape[-1]} channels: expected RGB or RGBA")
        out = []
        for image in images:
            check_interrupted()
            rgb = self._adjusted(image[..., :3].movedim(-1, 0)).movedim(0, -1)
            out.append(torch.cat([rgb, image[..., 3:]], dim=-1))
        return torch.stack(out)


class AllorImageEffectsGrayscale(Node):
    """Each pixel's mean over all its channels, as RGB. As in the pack, an RGBA image's alpha counts
    in the mean and is not kept."""
    category = "image/effects"
    images: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageEffectsGrayscale",))

    def run(self):
        return _image(self.images, "images").mean(dim=-1, keepdim=True).expand(-1, -1, -1, 3).clone()


class AllorImageEffectsNegative(Node):
    """1 - each colour channel; alpha is kept."""
    category = "image/effects"
    images: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageEffectsNegative",))

    def run(self):
        images = _image(self.images, "images").clone()
        images[..., :3] = 1.0 - images[..., :3]
        return images


SEPIA = ((0.393, 0.349, 0.272), (0.769, 0.686, 0.534), (0.189, 0.168, 0.131))  # rgb @ SEPIA, the pack's matrix


class AllorImageEffectsSepia(Node):
    """The classic sepia tone: each pixel's RGB times the pack's matrix (new red 0.393 r + 0.769 g +
    0.189 b, ...). As in the pack, not clamped: bright pixels go above 1. Alpha is kept."""
    category = "image/effects"
    images: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageEffectsSepia",))

    def run(self):
        import torch
        images = _image(self.images, "images").clone()
        images[..., :3] = images[..., :3] @ torch.tensor(SEPIA, dtype=images.dtype, device=images.device)
        return images


# -- filters -------------------------------------------------------------------------------------


class _PilFilter(Node):
    """A PIL ImageFilter on each image (in 8-bit, as the pack's PIL round trip)."""
    category = "image/filter"
    images: IMAGE
    outputs = {"IMAGE": IMAGE}

    def _filter(self):
        from PIL import ImageFilter
        return getattr(ImageFilter, self.pil_filter)

    def _window(self) -> int:
        """The filter's window width; 0 for the fixed small kernels (no strips, no work bound)."""
        return 0

    def run(self):
        window = self._window()
        if window:
            _check_work(self.images, window * window, MOST_RANK_WORK, "size", self.size,
                        f"a {window}×{window} window")
        try:
            image_filter = self._filter()
            return _each_picture(self.images, lambda picture: _pil_by_strips(picture, image_filter, window // 2))
        except ValueError as e:  # PIL's refusal of a rank beyond the window (only RankFilter has one)
            if isinstance(e, NodeInputError) or "rank" not in type(self).input_specs:
                raise
            raise NodeInputError("rank", f"{e}: expected a rank below size + 1 squared") from None


class AllorImageFilterSmooth(_PilFilter):
    """PIL's SMOOTH filter on each image (8-bit)."""
    pil_filter = "SMOOTH"
    comfy = ComfyAlias(("ImageFilterSmooth",))


class AllorImageFilterSmoothMore(_PilFilter):
    """PIL's SMOOTH_MORE filter on each image (8-bit)."""
    pil_filter = "SMOOTH_MORE"
    comfy = ComfyAlias(("ImageFilterSmoothMore",))


class AllorImageFilterContour(_PilFilter):
    """PIL's CONTOUR filter on each image (8-bit)."""
    pil_filter = "CONTOUR"
    comfy = ComfyAlias(("ImageFilterContour",))


class AllorImageFilterDetail(_PilFilter):
    """PIL's DETAIL filter on each image (8-bit)."""
    pil_filter = "DETAIL"
    comfy = ComfyAlias(("ImageFilterDetail",))


class AllorImageFilterEdgeEnhance(_PilFilter):
    """PIL's EDGE_ENHANCE filter on each image (8-bit)."""
    pil_filter = "EDGE_ENHANCE"
    comfy = ComfyAlias(("ImageFilterEdgeEnhance",))


class AllorImageFilterEdgeEnhanceMore(_PilFilter):
    """PIL's EDGE_ENHANCE_MORE filter on each image (8-bit)."""
    pil_filter = "EDGE_ENHANCE_MORE"
    comfy = ComfyAlias(("ImageFilterEdgeEnhanceMore",))


class AllorImageFilterEmboss(_PilFilter):
    """PIL's EMBOSS filter on each image (8-bit)."""
    pil_filter = "EMBOSS"
    comfy = ComfyAlias(("ImageFilterEmboss",))


class AllorImageFilterFindEdges(_PilFilter):
    """PIL's FIND_EDGES filter on each image (8-bit)."""
    pil_filter = "FIND_EDGES"
    comfy = ComfyAlias(("ImageFilterFindEdges",))


class AllorImageFilterSharpen(_PilFilter):
    """PIL's SHARPEN filter on each image (8-bit)."""
    pil_filter = "SHARPEN"
    comfy = ComfyAlias(("ImageFilterSharpen",))


def _window_input():
    return Int(2, min=0, max=MOST_RANK_SIZE - 1, step=2)


class AllorImageFilterRank(_PilFilter):
    """PIL's RankFilter over a (size + 1)² window: each pixel the rank-th smallest value of its
    window (0: the least), each channel apart, 8-bit. size must be even (the window odd); at most
    62 here, as the work grows with the window's area, and refused where window area × pixels
    passes 63² × 1536² (the largest window runs on pictures up to 1536², taking minutes there:
    about 6.5 for an RGB 1536² picture on a 2-core machine); worked by strips of rows, so a stop is
    heard within an image."""
    size: int = _window_input()
    rank: int = Int(1, min=0, max=MOST_RANK_SIZE ** 2, step=1)
    comfy = ComfyAlias(("ImageFilterRank",))

    def _window(self) -> int:
        return _odd_window(self.size)

    def _filter(self):
        from PIL import ImageFilter
        return ImageFilter.RankFilter(_odd_window(self.size), self.rank)


def _odd_window(size: int) -> int:
    if size % 2:
        raise NodeInputError("size", f"{size}: expected an even number (the window is size + 1 wide)")
    return size + 1


class AllorImageFilterMin(_PilFilter):
    """PIL's MinFilter over a (size + 1)² window (size even, at most 62; bounded and worked by strips
    as ImageFilterRank), 8-bit."""
    size: int = _window_input()
    comfy = ComfyAlias(("ImageFilterMin",))

    def _window(self) -> int:
        return _odd_window(self.size)

    def _filter(self):
        from PIL import ImageFilter
        return ImageFilter.MinFilter(_odd_window(self.size))


class AllorImageFilterMax(_PilFilter):
    """PIL's MaxFilter over a (size + 1)² window (size even, at most 62; bounded and worked by strips
    as ImageFilterRank), 8-bit."""
    size: int = _window_input()
    comfy = ComfyAlias(("ImageFilterMax",))

    def _window(self) -> int:
        return _odd_window(self.size)

    def _filter(self):
        from PIL import ImageFilter
        return ImageFilter.MaxFilter(_odd_window(self.size))


class AllorImageFilterMode(_PilFilter):
    """PIL's ModeFilter over a (size + 1)² window (size even, at most 62; bounded and worked by
    strips as ImageFilterRank): each pixel the most common value of its window, 8-bit."""
    size: int = _window_input()
    comfy = ComfyAlias(("ImageFilterMode",))

    def _window(self) -> int:
        return _odd_window(self.size)

    def _filter(self):
        from PIL import ImageFilter
        return ImageFilter.ModeFilter(_odd_window(self.size))


def _opencv(images, change, name: str):
    """change on each image's layers (_each_layer), OpenCV's refusal named by input."""
    import cv2
    try:
        return _each_layer(images, change)
    except cv2.error as e:
        raise NodeInputError(name, f"OpenCV refused it: {str(e).strip().splitlines()[-1]}") from None


def _odd_kernel(size: int, name: str) -> int:
    """The pack's kernel of size - 1, which OpenCV needs odd: size must be even."""
    if size % 2:
        raise NodeInputError(name, f"{size}: expected an even number (the kernel is {name} - 1, odd)")
    return size - 1


class AllorImageFilterBlur(Node):
    """OpenCV's blur (the mean over a size_x × size_y box, borders reflected) on each image, alpha
    apart."""
    category = "image/filter"
    images: IMAGE
    size_x: int = Int(10, min=1, max=MAX_SIZE)
    size_y: int = Int(10, min=1, max=MAX_SIZE)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageFilterBlur",))

    def run(self):
        import cv2
        return _opencv(self.images, lambda x: cv2.blur(x, (self.size_x, self.size_y)), "size_x")


class AllorImageFilterBoxBlur(Node):
    """OpenCV's boxFilter (normalised: the mean over a size_x × size_y box) on each image, alpha
    apart."""
    category = "image/filter"
    images: IMAGE
    size_x: int = Int(10, min=1, max=MAX_SIZE)
    size_y: int = Int(10, min=1, max=MAX_SIZE)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageFilterBoxBlur",))

    def run(self):
        import cv2
        return _opencv(self.images, lambda x: cv2.boxFilter(x, -1, (self.size_x, self.size_y)), "size_x")


class AllorImageFilterGaussianBlur(Node):
    """OpenCV's GaussianBlur with a (size_x - 1) × (size_y - 1) kernel (sizes even) and a sigma of
    size_x - 1 pixels both ways, on each image, alpha apart. (The pack passes size_y - 1 where
    OpenCV takes its output array, which it then ignores: the vertical sigma is the horizontal one.)
    Refused where (kernel width + height) × pixels passes 2³⁴ (the largest kernel, 1023 × 1023,
    runs on pictures up to about 2896²); worked by strips of rows, so a stop is heard within an
    image."""
    category = "image/filter"
    images: IMAGE
    size_x: int = Int(10, min=2, max=1024, step=2)
    size_y: int = Int(10, min=2, max=1024, step=2)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageFilterGaussianBlur",))

    def run(self):
        import cv2
        kx, ky = _odd_kernel(self.size_x, "size_x"), _odd_kernel(self.size_y, "size_y")
        _check_work(self.images, kx + ky, MOST_GAUSSIAN_WORK, "size_x", self.size_x, f"a {kx}×{ky} kernel")
        return _opencv(self.images, lambda x: _by_strips(x, lambda part: cv2.GaussianBlur(part, (kx, ky), kx), ky // 2),
                       "size_x")


class AllorImageFilterGaussianBlurAdvanced(Node):
    """OpenCV's GaussianBlur with a (size_x - 1) × (size_y - 1) kernel (sizes even) and sigma_x
    both ways (0: from the kernel's size, OpenCV's rule), on each image, alpha apart. As in the
    pack, sigma_y has no effect: the pack passes it where OpenCV takes its output array. Bounded
    and worked by strips as ImageFilterGaussianBlur."""
    category = "image/filter"
    images: IMAGE
    size_x: int = Int(10, min=2, max=1024, step=2)
    size_y: int = Int(10, min=2, max=1024, step=2)
    sigma_x: int = Int(0, min=0, max=1024)
    sigma_y: int = Int(0, min=0, max=1024)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageFilterGaussianBlurAdvanced",))

    def run(self):
        import cv2
        kx, ky = _odd_kernel(self.size_x, "size_x"), _odd_kernel(self.size_y, "size_y")
        _check_work(self.images, kx + ky, MOST_GAUSSIAN_WORK, "size_x", self.size_x, f"a {kx}×{ky} kernel")
        return _opencv(self.images, lambda x: _by_strips(x, lambda part: cv2.GaussianBlur(part, (kx, ky), self.sigma_x),
                                                         ky // 2), "sigma_x")


class AllorImageFilterStackBlur(Node):
    """OpenCV's stackBlur (a fast Gaussian-like blur) with a (size_x - 1) × (size_y - 1) kernel
    (sizes even), on each image, alpha apart."""
    category = "image/filter"
    images: IMAGE
    size_x: int = Int(10, min=1, max=MAX_SIZE, step=2)
    size_y: int = Int(10, min=1, max=MAX_SIZE, step=2)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageFilterStackBlur",))

    def run(self):
        import cv2
        kx, ky = _odd_kernel(self.size_x, "size_x"), _odd_kernel(self.size_y, "size_y")
        return _opencv(self.images, lambda x: cv2.stackBlur(x, (kx, ky)), "size_x")


class AllorImageFilterMedianBlur(Node):
    """OpenCV's medianBlur with a (size - 1)-wide window (size even, at least 4) on each image in
    8-bit (x · 255 cut to whole levels, as the pack), alpha apart; a window wider than the picture
    works as OpenCV's (borders repeated). Unlike the pack, window × pixels past 2³³ is refused (a
    window as tall as the picture is one call a stop can't interrupt: 8192 on a 1024² picture held
    one for minutes; sizes up to about 3640 run on 1536² pictures); worked by strips of rows, so a
    stop is heard within an image."""
    category = "image/filter"
    images: IMAGE
    size: int = Int(10, min=1, max=MAX_SIZE, step=2)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageFilterMedianBlur",))

    def run(self):
        import cv2
        import numpy as np
        kernel = _odd_kernel(self.size, "size")
        _check_work(self.images, kernel, MOST_MEDIAN_WORK, "size", self.size, f"a window of {kernel}")

        def median(x):
            return cv2.medianBlur((x * 255).astype(np.uint8), kernel).astype(np.float32) / 255
        return _opencv(self.images, lambda x: _by_strips(x, median, kernel // 2), "size")


class AllorImageFilterBilateralBlur(Node):
    """OpenCV's bilateralFilter over a (size - 1)-wide neighbourhood (size even, at most 64 here: its
    work grows with the square), sigmaColor 100 - 100 · sigma_color and sigmaSpace
    100 · sigma_intensity, as the pack calls it, on each image, alpha apart. Refused where
    neighbourhood area × pixels passes 2³⁶; worked by strips of rows, so a stop is heard within an
    image (OpenCV scales its table of weights by each strip's range of values: a pixel may differ
    from one call's by float32 rounding, about 1e-7)."""
    category = "image/filter"
    images: IMAGE
    size: int = Int(10, min=1, max=MOST_RANK_SIZE + 1, step=2)
    sigma_color: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    sigma_intensity: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageFilterBilateralBlur",))

    def run(self):
        import cv2
        kernel = _odd_kernel(self.size, "size")
        color, space = 100 - self.sigma_color * 100, self.sigma_intensity * 100
        _check_work(self.images, kernel * kernel, MOST_BILATERAL_WORK, "size", self.size,
                    f"a {kernel}×{kernel} neighbourhood")
        return _opencv(self.images, lambda x: _by_strips(x, lambda part: cv2.bilateralFilter(part, kernel, color, space),
                                                         kernel // 2), "size")


# -- noise ---------------------------------------------------------------------------------------
# The pack draws from numpy's global generator, unseeded; these nodes draw from a generator of
# their own seeded at 0 each run (numpy's legacy RandomState), so a result equals the pack's after
# np.random.seed(0) and a run repeats itself.

NOISE_CHANNELS = {"rgb": [0, 1, 2], "rgba": [0, 1, 2, 3], "rg": [0, 1], "rb": [0, 2], "ra": [0, 3], "gb": [1, 2],
                  "ga": [1, 3], "ba": [2, 3], "r": [0], "g": [1], "b": [2], "a": [3]}


def _noisy(node, draw, finish):
    """The pack's channels_layer: the chosen channels as a float32 numpy batch, draw(generator,
    shape) noise for them (one value a pixel, repeated over the channels, where monochromatic and
    more than one channel is chosen), finish(channels, noise, sign) the result written back."""
    import numpy as np
    import torch
    images = _image(node.images, "images")
    picked = NOISE_CHANNELS[node.channels]
    if max(picked) >= images.shape[-1]:
        raise NodeInputError("channels", f"{node.channels}: the images have {images.shape[-1]} channels")
    channels = images[..., picked].detach().cpu().float().numpy()
    generator = np.random.RandomState(0)
    if node.monochromatic == "true" and len(picked) > 1:
        noise = draw(generator, channels.shape[:3])[..., None].repeat(len(picked), -1)
    else:
        noise = draw(generator, channels.shape)
    out = images.clone()
    result = finish(channels, noise, -1.0 if node.invert == "true" else 1.0)
    out[..., picked] = torch.from_numpy(np.asarray(result, dtype=np.float32)).to(out)
    return out


def _noise_switches():
    return (Choice(TRUE_FALSE, "false"), Choice(TRUE_FALSE, "false"), Choice(tuple(NOISE_CHANNELS), "rgb"))


class AllorImageNoiseBeta(Node):
    """Beta(a, b)-distributed noise added to the chosen channels (subtracted with invert); as in the
    pack, not clamped. Drawn seeded at 0 (see the module's note); monochromatic: one draw a pixel
    for all the chosen channels."""
    category = "image/noise"
    images: IMAGE
    a: int = Int(1, min=1, max=1 << 20)
    b: int = Int(1, min=1, max=1 << 20)
    monochromatic: str
    invert: str
    channels: str
    monochromatic, invert, channels = _noise_switches()
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageNoiseBeta",))

    def run(self):
        return _noisy(self, lambda g, shape: g.beta(self.a, self.b, shape),
                      lambda x, noise, sign: x + sign * noise)


class AllorImageNoiseBinomial(Node):
    """Binomial(n, p) / 255 noise added to the chosen channels (subtracted with invert), clamped to
    0..1. Drawn seeded at 0 (see the module's note); monochromatic: one draw a pixel."""
    category = "image/noise"
    images: IMAGE
    n: int = Int(128, min=1, max=255)
    p: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    monochromatic: str
    invert: str
    channels: str
    monochromatic, invert, channels = _noise_switches()
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageNoiseBinomial",))

    def run(self):
        import numpy as np
        return _noisy(self, lambda g, shape: g.binomial(self.n, self.p, shape).astype(np.float32) / 255,
                      lambda x, noise, sign: np.clip(x + sign * noise, 0.0, 1.0))


class AllorImageNoiseBytes(Node):
    """Uniform random bytes / 255 added to the chosen channels (subtracted with invert), clamped to
    0..1. Drawn seeded at 0 (see the module's note); monochromatic: one draw a pixel."""
    category = "image/noise"
    images: IMAGE
    monochromatic: str
    invert: str
    channels: str
    monochromatic, invert, channels = _noise_switches()
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageNoiseBytes",))

    def run(self):
        import numpy as np

        def draw(generator, shape):
            levels = np.frombuffer(generator.bytes(int(np.prod(shape))), np.uint8).reshape(shape)
            return levels.astype(np.float32) / 255
        return _noisy(self, draw, lambda x, noise, sign: np.clip(x + sign * noise, 0.0, 1.0))


class AllorImageNoiseGaussian(Node):
    """|N(0, 1)| noise scaled so its largest value is 1, times strength, added to the chosen
    channels (subtracted with invert), clamped to 0..1. Drawn seeded at 0 (see the module's note);
    monochromatic: one draw a pixel."""
    category = "image/noise"
    images: IMAGE
    strength: float = Float(0.5, min=0.0, max=100.0, step=0.01)
    monochromatic: str
    invert: str
    channels: str
    monochromatic, invert, channels = _noise_switches()
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageNoiseGaussian",))

    def run(self):
        import numpy as np

        def draw(generator, shape):
            noise = np.abs(generator.normal(0, 1, shape))
            return noise / noise.max()
        return _noisy(self, draw, lambda x, noise, sign: np.clip(x + sign * noise * self.strength, 0.0, 1.0))
