"""BadCafeCode's masquerade-nodes-comfyui (MaskNodes.py at commit 69a944969c29), under the pack's
class names, inputs and outputs: Mask Morphology, Combine Masks, Unary Mask Op, Unary Image Op,
Blur, Image To Mask, Mix Images By Mask, Mix Color By Mask, Create Rect Mask, Mask To Region, Cut
By Mask, Separate Mask Components, Paste By Mask, Get Image Size, Change Channel Count, Constant
Mask, Prune By Mask, Make Image Batch, Convert Color Space and MasqueradeIncrementer.

Left out: Mask By Text (it needs the CLIPSeg weights, downloaded by the pack at run time) and
Create QR Code (it needs the qrcode package, which graphflow does not depend on).

The pack's sockets are IMAGE almost everywhere, and what flows along them may be a mask batch
[B, H, W] or an image batch [B, H, W, C] with 1, 3 or 4 channels; each node converts as the pack
does (as_mask, as_rgb, as_rgba below) and gives back the shape the pack gives, so a chain of its
nodes gives the same pixels. Where the pack's code fails (batches of 2 and 3 mixed, a mask batch
smaller than the image batch in Cut By Mask, ...) these nodes either do the evident thing or
raise a clear error, as each node's help says."""

from __future__ import annotations

import math

from graphflow.api import IMAGE, INT, MASK, Choice, ComfyAlias, Estimate, Float, Int, Node, NodeInputError, Size, \
    run_limits, socket_type
from nodes.image import MAX_SIZE

COMFY_PACK = "masquerade-nodes-comfyui"  # the custom node pack this module's ComfyUI classes come from

CATEGORY = "Masquerade Nodes"
VERY_BIG_SIZE = 1024 * 1024  # the pack's bound on its sizes and offsets

MASK_MAPPING = socket_type("MASK_MAPPING", "#a1887f",
                           "For each mask of a Separate Mask Components batch, the index of the image it came from")

# -- the pack's conversions between masks, RGB and RGBA ----------------------------------------


def _tensor(value, name: str):
    """An IMAGE input as the pack takes it: a mask batch [B, H, W] or images [B, H, W, C], C 1, 3 or 4."""
    import torch
    if not torch.is_tensor(value) or value.ndim not in (3, 4) or value.ndim == 4 and value.shape[3] not in (1, 3, 4):
        raise NodeInputError(name, "expected a mask batch [B, H, W] or an image batch [B, H, W, C] with 1, 3 "
                                   "or 4 channels")
    return value


def as_mask(t):
    """A mask [B, H, W] as the pack reads one: a mask as it is, a 1-channel image's channel, an
    RGBA image's alpha unless it is all 1, else the RGB's luma (torchvision's rgb_to_grayscale
    weights 0.2989, 0.587, 0.114)."""
    if t.ndim == 3:
        return t
    if t.shape[3] == 1:
        return t[..., 0]
    if t.shape[3] == 4 and t.numel() and t[..., 3].min().item() != 1.0:
        return t[..., 3]
    rgb = as_rgb(t)
    return 0.2989 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def as_rgb(t):
    """Three channels: a mask or 1-channel image repeated, an RGBA image without its alpha."""
    if t.ndim == 3:
        return t.unsqueeze(3).repeat(1, 1, 1, 3)
    if t.shape[3] == 1:
        return t.repeat(1, 1, 1, 3)
    return t[..., :3] if t.shape[3] == 4 else t


def as_rgba(t):
    """Four channels: a mask or 1-channel image repeated into all four (its alpha too), RGB with alpha 1."""
    import torch
    if t.ndim == 3:
        return t.unsqueeze(3).repeat(1, 1, 1, 4)
    if t.shape[3] == 1:
        return t.repeat(1, 1, 1, 4)
    if t.shape[3] == 3:
        return torch.cat((t, torch.ones_like(t[..., :1])), dim=3)
    return t


def as_channels(t, channels: int):
    """`t` with `channels` channels, as the pack matches one tensor to another's channel count
    (a mask gaining a channel axis first). One channel is the mask read as_mask (the pack drops
    the axis there, which broadcasts wrongly)."""
    if t.ndim == 3:
        t = t.unsqueeze(3)
    if channels == 1:
        return as_mask(t).unsqueeze(3)
    return as_rgb(t) if channels == 3 else as_rgba(t)


def _same_batch(a, b, name_a: str, name_b: str):
    """a and b with one batch size: a batch of 1 repeated to the other's (the pack's rule; other
    sizes that differ are an error there and here)."""
    if a.shape[0] != b.shape[0]:
        if a.shape[0] == 1:
            a = a.repeat(b.shape[0], *([1] * (a.ndim - 1)))
        elif b.shape[0] == 1:
            b = b.repeat(a.shape[0], *([1] * (b.ndim - 1)))
        else:
            raise NodeInputError(name_b, f"a batch of {b.shape[0]} can't be matched with {name_a}'s batch of "
                                         f"{a.shape[0]}: give one of them a batch of 1 or the same size")
    return a, b


def common(a, b, name_a: str, name_b: str):
    """Two tensors made alike as the pack's tensors2common does: a mask gains a channel axis when
    the other is an image, a batch of 1 is repeated, the one with fewer channels converted to the
    other's count. Their heights and widths must already agree."""
    if a.ndim != b.ndim:
        a, b = (a.unsqueeze(3), b) if a.ndim < b.ndim else (a, b.unsqueeze(3))
    if a.shape[1:3] != b.shape[1:3]:
        raise NodeInputError(name_b, f"is {b.shape[2]}×{b.shape[1]}, but {name_a} is {a.shape[2]}×{a.shape[1]}: "
                                     "they must be the same size")
    a, b = _same_batch(a, b, name_a, name_b)
    if a.ndim == 4 and a.shape[3] != b.shape[3]:
        a, b = (as_channels(a, b.shape[3]), b) if a.shape[3] < b.shape[3] else (a, as_channels(b, a.shape[3]))
    return a, b


def _mix(base, other, mask, name: str):
    """base * (1 - mask) + other * mask, the mask given the images' channels as the pack does. One
    mask mixes every image, and one image is mixed by every mask (a picture and the pieces from
    Separate Mask Components), as the pack's broadcasting gives; other batches must match."""
    if mask.shape[1:3] != base.shape[1:3]:
        raise NodeInputError(name, f"is {mask.shape[2]}×{mask.shape[1]}, but the images are "
                                   f"{base.shape[2]}×{base.shape[1]}: they must be the same size")
    mask = as_channels(mask, base.shape[3]) if base.ndim == 4 else as_mask(mask)
    if mask.shape[0] != base.shape[0] and 1 not in (mask.shape[0], base.shape[0]):
        raise NodeInputError(name, f"a batch of {mask.shape[0]} doesn't match the images' batch of {base.shape[0]}: "
                                   "give one mask, one image, or as many masks as images")
    return base * (1.0 - mask) + other * mask


def mask_boxes(mask):
    """(empty, boxes): which masks have no pixel above 0, and each mask's bounding box of its
    non-zero pixels as floats [x0, y0, x1, y1], both ends included (torchvision's masks_to_boxes),
    where an empty mask counts its top-left pixel as set, as the pack makes it."""
    import torch
    batch = mask.shape[0]
    empty = ~(mask.reshape(batch, -1).amax(dim=1) > 0) if mask.numel() else torch.ones(batch, dtype=torch.bool)
    boxes = torch.zeros(batch, 4, dtype=torch.float32, device=mask.device)
    for i in range(batch):
        set_pixels = mask[i] != 0
        if empty[i]:
            set_pixels = set_pixels.clone()
            set_pixels[0, 0] = True
        ys, xs = torch.nonzero(set_pixels, as_tuple=True)
        boxes[i] = torch.stack((xs.min(), ys.min(), xs.max(), ys.max())).float()
    return empty, boxes


def _fit_mask(mask, height: int, width: int):
    """The mask resized to the image by nearest neighbour (torch's 'nearest'), as the pack does."""
    import torch.nn.functional as F
    if mask.shape[1:] == (height, width):
        return mask
    return F.interpolate(mask.unsqueeze(1), size=(height, width), mode="nearest")[:, 0]


def _bicubic(image, height: int, width: int):
    """An image [1, H, W, C] resized by torch's bicubic interpolation, as the pack resizes (not clamped)."""
    import torch.nn.functional as F
    return F.interpolate(image.permute(0, 3, 1, 2), size=(height, width), mode="bicubic").permute(0, 2, 3, 1)


def _check_size(width: int, height: int, name: str, width_name: str | None = None, height_name: str | None = None):
    """Refuse a size computed while running (from a mask's contents) that no estimate could tell:
    beyond MAX_SIZE a side (an error naming width_name or height_name, where the side comes from
    another input than `name`), or beyond the server's max_pixels."""
    limits = run_limits()
    for side, side_name in ((width, width_name or name), (height, height_name or name)):
        if side < 1 or side > MAX_SIZE:
            raise NodeInputError(side_name, f"the size this gives, {width}×{height}, is outside 1..{MAX_SIZE} a side")
    if limits.max_pixels is not None and width * height > limits.max_pixels:
        raise NodeInputError(name, f"the size this gives, {width}×{height}, is larger than this server allows "
                                   f"({limits.max_pixels / 1e6:.1f} megapixels)")


def _check_batch(count: int, height: int, width: int, name: str, what: str):
    """Refuse a batch whose size comes from a mask's contents, before it is made: more than the
    server's max_batch, or count × height × width float32 values beyond the memory this run may use
    (the server's ram_bytes, else this machine's RAM)."""
    from graphflow.resource_limits import machine_ram
    limits = run_limits()
    if limits.max_batch is not None and count > limits.max_batch:
        raise NodeInputError(name, f"gives {count} {what}, more than this server allows in a batch "
                                   f"({limits.max_batch})")
    ram = limits.ram_bytes if limits.ram_bytes is not None else machine_ram()
    need = count * height * width * 4
    if ram is not None and need > ram:
        raise NodeInputError(name, f"gives {count} {what} of {width}×{height}: {need / 2**30:.1f} GB, more memory "
                                   f"than this run may use ({ram / 2**30:.1f} GB)")


# -- masks ----------------------------------------------------------------------------------


class MaskMorphology(Node):
    """Grow or shrink a mask, as Masquerade's Mask Morphology does: dilate takes each pixel's
    maximum over the (2·distance + 1)² square around it (a max-pool; outside the picture counts
    as nothing), erode is 1 - dilate(1 - mask), open is erode then dilate, close dilate then
    erode. The input is read as a mask (an image's luma or alpha); gives a mask batch."""
    category = CATEGORY
    image: IMAGE
    distance: int = Int(5, min=0, max=128)
    op: str = Choice(("dilate", "erode", "open", "close"), "dilate")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Mask Morphology",))

    def run(self):
        mask = as_mask(_tensor(self.image, "image"))
        steps = {"dilate": (self.dilate,), "erode": (self.erode,), "open": (self.erode, self.dilate),
                 "close": (self.dilate, self.erode)}[self.op]
        for step in steps:
            mask = step(mask)
        return mask

    def dilate(self, mask):
        from nodes.image_ops import morphology
        # a max-pool over the square, as the pack's, taken a row then a column at a time
        return morphology(mask.unsqueeze(1), "dilate", 2 * self.distance + 1).squeeze(1)

    def erode(self, mask):
        return 1.0 - self.dilate(1.0 - mask)


COMBINE_OPS = ("union (max)", "intersection (min)", "difference", "multiply", "multiply_alpha", "add",
               "greater_or_equal", "greater")


class CombineMasks(Node):
    """Combine two masks or images pixel by pixel, as Masquerade's Combine Masks does: union
    (max), intersection (min), difference (image1 - image2), multiply, add, greater_or_equal /
    greater (1 where image1 >= / > image2, else 0), or multiply_alpha (image1 as RGBA with its
    alpha times image2 read as a mask). First a mask gains a channel axis beside an image, a batch
    of 1 is repeated and the input with fewer channels is converted to the other's count (a mask
    to RGB repeats it, RGB to RGBA adds alpha 1). clamp_result clamps to 0..1, round_result then
    rounds (halves to even). Both must be the same size."""
    category = CATEGORY
    image1: IMAGE
    image2: IMAGE
    op: str = Choice(COMBINE_OPS, "union (max)")
    clamp_result: str = Choice(("yes", "no"), "yes")
    round_result: str = Choice(("no", "yes"), "no")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Combine Masks",))

    def run(self):
        import torch
        a, b = common(_tensor(self.image1, "image1"), _tensor(self.image2, "image2"), "image1", "image2")
        if self.op == "multiply_alpha":
            a, b = as_rgba(a), as_mask(b)
            result = torch.cat((a[..., :3], (a[..., 3] * b).unsqueeze(3)), dim=3)
        else:
            ops = {"union (max)": torch.maximum, "intersection (min)": torch.minimum,
                   "difference": torch.sub, "multiply": torch.mul, "add": torch.add,
                   "greater_or_equal": lambda x, y: (x >= y).to(x.dtype), "greater": lambda x, y: (x > y).to(x.dtype)}
            result = ops[self.op](a, b)
        if self.clamp_result == "yes":
            result = result.clamp(0.0, 1.0)
        if self.round_result == "yes":
            result = torch.round(result)
        return result


UNARY_OPS = ("invert", "average", "round", "clamp", "abs")


def _unary(x, op: str):
    """The pack's unary ops; 'average' fills each picture (each channel of it) with its mean."""
    import torch
    if op == "invert":
        return 1.0 - x
    if op == "average":
        return x.mean(dim=(1, 2), keepdim=True).expand(x.shape).clone()
    if op == "round":
        return torch.round(x)
    return x.clamp(0.0, 1.0) if op == "clamp" else x.abs()


class UnaryMaskOp(Node):
    """One operation on a mask, as Masquerade's Unary Mask Op does: invert (1 - mask), average
    (each mask filled with its mean), round (halves to even), clamp (to 0..1) or abs. The input
    is read as a mask (an image's luma or alpha); gives a mask batch."""
    category = CATEGORY
    image: IMAGE
    op: str = Choice(UNARY_OPS, "invert")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Unary Mask Op",))

    def run(self):
        return _unary(as_mask(_tensor(self.image, "image")), self.op)


class UnaryImageOp(Node):
    """One operation on an image, as Masquerade's Unary Image Op does: invert, average (each
    channel filled with its mean), round, clamp (to 0..1) or abs. The input is made RGB first (a
    mask repeated, alpha dropped); gives RGB."""
    category = CATEGORY
    image: IMAGE
    op: str = Choice(UNARY_OPS, "invert")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Unary Image Op",))

    def run(self):
        return _unary(as_rgb(_tensor(self.image, "image")), self.op)


class MasqueradeBlur(Node):
    """Blur each channel with a (2·radius + 1)² Gaussian kernel of sigma sigma_factor · (0.6 ·
    radius - 0.3), the picture's edges mirrored (reflect padding), as Masquerade's Blur does.
    A mask stays a mask and RGB or RGBA keep their channels; a 1-channel image [B, H, W, 1] comes
    back a mask [B, H, W], as the pack gives it. The picture must be bigger than radius each way.
    ComfyUI's class name "Blur" runs this node by default; ComfyUI-post-processing-nodes' Blur
    (blur_radius, sigma) registers the same name and is PostProcBlur here, chosen where a save's node
    properties name that pack or an API prompt gives only its inputs."""
    category = CATEGORY
    image: IMAGE
    radius: int = Int(10, min=0, max=48)
    sigma_factor: float = Float(1.0, min=0.01, max=3.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Blur",))

    @classmethod
    def unknown_input(cls, name):
        # ComfyUI-post-processing-nodes registers a "Blur" too; its inputs name that one
        if name in ("blur_radius", "sigma"):
            return ("this \"Blur\" was read as Masquerade's Blur (inputs: image, radius, sigma_factor), as its "
                    f"inputs mix both packs'; {name} is an input of ComfyUI-post-processing-nodes' Blur "
                    "(PostProcBlur here, read so when a prompt gives only image, blur_radius and sigma)")
        return None

    def run(self):
        import torch
        from nodes.image_ops import separable_blur
        image = _tensor(self.image, "image")
        x = (image.unsqueeze(3) if image.ndim == 3 else image).permute(0, 3, 1, 2)
        channels, height, width = x.shape[1:]
        r = self.radius
        if r >= height or r >= width:
            raise NodeInputError("radius", f"{r} is too big for a {width}×{height} picture (the edges are "
                                           "mirrored): it must be smaller than both sides")
        sigma = self.sigma_factor * (0.6 * r - 0.3)
        # exp(-(x² + y²) / 2σ²) is the outer product of the 1-D Gaussians: blurred a row then a column
        offsets = torch.arange(-r, r + 1, dtype=torch.float64)
        line = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
        out = separable_blur(x, line / line.sum()).permute(0, 2, 3, 1)
        return out[..., 0] if channels == 1 else out


class MasqueradeImageToMask(Node):
    """A MASK from an image, as Masquerade's Image To Mask does: intensity reads it as a mask
    (RGBA loses its alpha first, then RGB gives its luma: 0.2989 R + 0.587 G + 0.114 B); alpha,
    as the pack's code does, gives the image's first channel (red for RGB or RGBA, the mask
    itself for a mask), not its alpha."""
    category = CATEGORY
    image: IMAGE
    method: str = Choice(("intensity", "alpha"), "intensity")
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("Image To Mask",))

    def run(self):
        image = _tensor(self.image, "image")
        if self.method == "alpha":
            return as_rgba(image)[..., 0]
        return as_mask(as_rgb(image) if image.ndim == 4 and image.shape[3] == 4 else image)


class MixImagesByMask(Node):
    """image1 · (1 - mask) + image2 · mask, as Masquerade's Mix Images By Mask does: the images
    made alike as Combine Masks does, the mask given their channel count: a mask (or 1-channel
    image) is repeated into every channel, alpha too, so RGBA images' alpha mixes by it; an RGB
    mask is kept per channel and given alpha 1, so RGBA images get image2's alpha. All three must
    be the same size; one image (after that) is mixed by each mask of a batch, giving a batch.
    Two masks, or 1-channel images, mix by the mask read as a mask (the pack's code fails there)."""
    category = CATEGORY
    image1: IMAGE
    image2: IMAGE
    mask: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Mix Images By Mask",))

    def run(self):
        a, b = common(_tensor(self.image1, "image1"), _tensor(self.image2, "image2"), "image1", "image2")
        return _mix(a, b, _tensor(self.mask, "mask"), "mask")


class MixColorByMask(Node):
    """image · (1 - mask) + colour · mask, the colour r, g, b out of 255, as Masquerade's Mix
    Color By Mask does: a mask becomes RGB first; an RGBA image's alpha mixes towards 1. The mask
    is read as a mask and must be the image's size; one image is mixed by each mask of a batch."""
    category = CATEGORY
    image: IMAGE
    r: int = Int(0, min=0, max=255)
    g: int = Int(0, min=0, max=255)
    b: int = Int(0, min=0, max=255)
    mask: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Mix Color By Mask",))

    def run(self):
        import torch
        image = _tensor(self.image, "image")
        color = torch.tensor([self.r / 255.0, self.g / 255.0, self.b / 255.0], device=image.device)
        color = color.expand(*image.shape[:3], 3)
        image, color = common(image, color, "image", "image")
        return _mix(image, color, as_mask(_tensor(self.mask, "mask")), "mask")


class CreateRectMask(Node):
    """A mask [1, image_height, image_width] with a rectangle of 1s, as Masquerade's Create Rect
    Mask does: from x, y, width × height in pixels or in percent of the picture, measured from the
    chosen corner. The rectangle runs from int(start) to int(end) with both ends included (so
    one pixel more than width), as in the pack; a start before the picture's edge counts from the
    far side, as Python's slices do. copy_image_size, when linked, gives the picture's size instead."""
    category = CATEGORY
    mode: str = Choice(("percent", "pixels"), "percent")
    origin: str = Choice(("topleft", "bottomleft", "topright", "bottomright"), "topleft")
    x: float = Float(0, min=0, max=VERY_BIG_SIZE, step=1)
    y: float = Float(0, min=0, max=VERY_BIG_SIZE, step=1)
    width: float = Float(50, min=0, max=VERY_BIG_SIZE, step=1)
    height: float = Float(50, min=0, max=VERY_BIG_SIZE, step=1)
    image_width: int = Int(512, min=64, max=VERY_BIG_SIZE, step=64, resource="width")
    image_height: int = Int(512, min=64, max=VERY_BIG_SIZE, step=64, resource="height")
    copy_image_size: IMAGE = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Create Rect Mask",), optional=("copy_image_size",))

    @classmethod
    def estimate(cls, widgets, inputs):
        if "copy_image_size" in inputs:
            copied = inputs["copy_image_size"]
            return Estimate(None if copied is None else Size(1, copied.height, copied.width))
        width, height = widgets.get("image_width"), widgets.get("image_height")
        return Estimate(Size(1, height, width) if isinstance(width, int) and isinstance(height, int) else None)

    def run(self):
        import torch
        width, height = self.image_width, self.image_height
        if self.copy_image_size is not None:
            height, width = _tensor(self.copy_image_size, "copy_image_size").shape[1:3]
        x0, y0, x1, y1 = self.x, self.y, self.x + self.width, self.y + self.height
        if self.mode == "percent":
            x0, x1, y0, y1 = x0 / 100.0 * width, x1 / 100.0 * width, y0 / 100.0 * height, y1 / 100.0 * height
        if self.origin in ("bottomleft", "bottomright"):
            y0, y1 = height - y1, height - y0
        if self.origin in ("topright", "bottomright"):
            x0, x1 = width - x1, width - x0
        mask = torch.zeros((height, width))
        mask[int(y0):int(y1) + 1, int(x0):int(x1) + 1] = 1
        return mask.unsqueeze(0)


CONSTRAINTS = ("keep_ratio", "keep_ratio_divisible", "multiple_of", "ignore")


def _common_divisors(a: int, b: int) -> list[int]:
    g = math.gcd(a, b)
    small = [d for d in range(1, math.isqrt(g) + 1) if g % d == 0]
    return sorted(set(small + [g // d for d in small]))


class MaskToRegion(Node):
    """The rectangle around each mask's pixels above 0, as a mask the same size (1 inside), as
    Masquerade's Mask To Region does (as MaskNodes.py counts it at 69a9449): the bounding box grown by
    padding and cut to the picture, then widened to min_width × min_height and to the
    constraint: keep_ratio (at least constraint_x : constraint_y), keep_ratio_divisible (the
    pack's search over the common divisors of constraint_x and constraint_y), multiple_of (up to
    multiples of constraint_x, constraint_y) or ignore; then across the batch match_size (all the
    largest) or match_ratio (all widened to the non-empty mask's ratio nearest 1:1). The growth is
    split around the box, which is moved back inside the picture where it can be. Sizes are
    counted as the pack counts them: one pixel less than the box (its end excluded), the drawn
    rectangle then including its end. An empty mask gives an empty region."""
    category = CATEGORY
    mask: IMAGE
    padding: int = Int(0, min=0, max=VERY_BIG_SIZE)
    constraints: str = Choice(CONSTRAINTS, "keep_ratio")
    constraint_x: int = Int(64, min=2, max=VERY_BIG_SIZE)
    constraint_y: int = Int(64, min=2, max=VERY_BIG_SIZE)
    min_width: int = Int(0, min=0, max=VERY_BIG_SIZE)
    min_height: int = Int(0, min=0, max=VERY_BIG_SIZE)
    batch_behavior: str = Choice(("match_ratio", "match_size"), "match_ratio")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Mask To Region",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("mask")  # the region is drawn on a mask of the input's size, whatever the numbers
        return Estimate(None if size is None else Size(size.batch, size.height, size.width))

    def run(self):
        import torch
        mask = as_mask(_tensor(self.mask, "mask"))
        batch, height, width = mask.shape
        empty, boxes = mask_boxes(mask)
        # the pack's arithmetic, in float32 as torchvision's boxes are
        x0 = (boxes[:, 0] - self.padding).clamp(min=0.0)
        y0 = (boxes[:, 1] - self.padding).clamp(min=0.0)
        x1 = (boxes[:, 2] + self.padding).clamp(max=float(width))
        y1 = (boxes[:, 3] + self.padding).clamp(max=float(height))
        box_w, box_h = x1 - x0, y1 - y0
        target_w, target_h = box_w.clamp(min=float(self.min_width)), box_h.clamp(min=float(self.min_height))
        cx, cy = self.constraint_x, self.constraint_y
        if self.constraints == "keep_ratio":
            target_w = torch.maximum(target_w, target_h * cx // cy)
            target_h = torch.maximum(target_h, target_w * cy // cx)
        elif self.constraints == "keep_ratio_divisible":
            # the pack tries i = 1 .. max factor and takes (cx // i, cy // i) where the target is at
            # least that big; only common divisors count, so only they are tried
            factors = torch.minimum(cx // target_w, cy // target_h)  # a width of 0 gives inf: no bound
            top = factors.max().item() if batch else 0
            for i in _common_divisors(cx, cy):
                if i > top:
                    break
                big_enough = (target_w >= cx // i) & (target_h >= cy // i)
                target_w[big_enough] = float(cx // i)
                target_h[big_enough] = float(cy // i)
        elif self.constraints == "multiple_of":
            target_w = torch.where(target_w % cx > 0, (target_w // cx + 1) * cx, target_w)
            target_h = torch.where(target_h % cy > 0, (target_h // cy + 1) * cy, target_h)
        if batch and self.batch_behavior == "match_size":
            target_w, target_h = target_w.max().expand(batch).clone(), target_h.max().expand(batch).clone()
        elif batch:
            ratios = (target_w / target_h - 1).abs()
            ratios[empty] = 10000
            m = int(torch.argmin(ratios))
            target_w = torch.maximum(target_w, target_h * target_w[m] // target_h[m])
            target_h = torch.maximum(target_h, target_w * target_h[m] // target_w[m])
        missing = target_w - box_w
        x0, x1 = x0 - missing // 2, x1 + (missing - missing // 2)
        missing = target_h - box_h
        y0, y1 = y0 - missing // 2, y1 + (missing - missing // 2)
        # moved back inside where it went over the top or left edge, then the bottom or right one
        x1, x0 = torch.where(x0 < 0, x1 - x0, x1), x0.clamp(min=0.0)
        y1, y0 = torch.where(y0 < 0, y1 - y0, y1), y0.clamp(min=0.0)
        x0, x1 = torch.where(x1 > width, x0 - (x1 - width), x0), x1.clamp(max=float(width))
        y0, y1 = torch.where(y1 > height, y0 - (y1 - height), y0), y1.clamp(max=float(height))
        region = torch.zeros((batch, height, width), device=mask.device)
        for i in range(batch):
            if empty[i]:
                continue
            corners = (x0[i].item(), x1[i].item(), y0[i].item(), y1[i].item())
            if not all(math.isfinite(c) for c in corners):
                raise NodeInputError("mask", f"mask {i}'s region has no size (a mask one pixel wide or tall with "
                                             "padding 0 gives a width or height of 0, as the pack counts it): "
                                             "give some padding or min_width / min_height")
            left, right, top, bottom = (int(c) for c in corners)
            region[i, top:bottom + 1, left:right + 1] = 1  # a negative start counts from the end, as in the pack
        return region


class CutByMask(Node):
    """Cut out the bounding box of each mask's non-zero pixels, as Masquerade's Cut By Mask does:
    the image is made RGBA with its alpha multiplied by the mask (resized to the image by nearest
    neighbour), each box resized by bicubic interpolation to the largest box's size, or to
    force_resize_width / force_resize_height where not 0; an empty mask gives a transparent
    black picture. A mask or 1-channel image gives a mask (the cut's alpha, or its luma where that
    is all 1), RGB gives RGB where every cut pixel is opaque, else RGBA. mask_mapping_optional
    (from Separate Mask Components) picks the image each mask cuts from; a mask batch of 1 (or a
    divisor of the images') is repeated over the images. A cut over 16384 a side, or over the
    server's max_pixels, is refused."""
    category = CATEGORY
    image: IMAGE
    mask: IMAGE
    force_resize_width: int = Int(0, min=0, max=VERY_BIG_SIZE, resource="width")
    force_resize_height: int = Int(0, min=0, max=VERY_BIG_SIZE, resource="height")
    mask_mapping_optional: MASK_MAPPING = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Cut By Mask",), optional=("mask_mapping_optional",))

    @classmethod
    def estimate(cls, widgets, inputs):
        """The forced sizes where given; a side taken from the mask's box is unknown before the
        run and counted as 1 (a lower bound; the run checks the real size)."""
        image, width, height = inputs.get("image"), widgets.get("force_resize_width"), widgets.get(
            "force_resize_height")
        if image is None or not isinstance(width, int) or not isinstance(height, int) or not (width or height):
            return Estimate(None)
        return Estimate(Size(image.batch, height or 1, width or 1))

    def run(self):
        import torch
        image = _tensor(self.image, "image")
        channels = 1 if image.ndim == 3 else image.shape[3]
        image, mask = as_rgba(image), as_mask(_tensor(self.mask, "mask"))
        if self.mask_mapping_optional is not None:
            image = image[_mapping(self.mask_mapping_optional, image.shape[0], "mask_mapping_optional")]
        batch, height, width = image.shape[:3]
        mask = _fit_mask(mask, height, width)
        if mask.shape[0] != batch:
            if mask.shape[0] > batch or batch % mask.shape[0]:
                raise NodeInputError("mask", f"a batch of {mask.shape[0]} masks can't be spread over "
                                             f"{batch} images (it must divide it)")
            mask = mask.repeat(batch // mask.shape[0], 1, 1)
        empty, boxes = mask_boxes(mask)
        cut_w = self.force_resize_width or int((boxes[:, 2] - boxes[:, 0] + 1).max().item() if batch else 1)
        cut_h = self.force_resize_height or int((boxes[:, 3] - boxes[:, 1] + 1).max().item() if batch else 1)
        # a side out of range is the forced input's that gives it, else the mask's box's
        width_name = "force_resize_width" if self.force_resize_width else "mask"
        height_name = "force_resize_height" if self.force_resize_height else "mask"
        _check_size(cut_w, cut_h, width_name if self.force_resize_width else height_name, width_name, height_name)
        alpha = torch.ones_like(image)
        alpha[..., 3] = mask
        image = image * alpha
        result = torch.zeros((batch, cut_h, cut_w, 4), dtype=image.dtype, device=image.device)
        for i in range(batch):
            if not empty[i]:
                x0, y0, x1, y1 = (int(v) for v in boxes[i].tolist())
                result[i] = _bicubic(image[i:i + 1, y0:y1 + 1, x0:x1 + 1], cut_h, cut_w)[0]
        if channels == 1:
            return as_mask(result)
        if channels == 3 and result.numel() and result[..., 3].min().item() == 1:
            return result[..., :3]
        return result


def _mapping(mapping, count: int, name: str):
    """A MASK_MAPPING's image indexes, each within the `count` images."""
    import torch
    if not torch.is_tensor(mapping) or mapping.ndim != 1 or mapping.is_floating_point():
        raise NodeInputError(name, "expected a MASK_MAPPING (from Separate Mask Components)")
    if mapping.numel() and (mapping.min().item() < 0 or mapping.max().item() >= count):
        raise NodeInputError(name, f"names image {mapping.max().item()}, but there are {count}")
    return mapping.long()


class SeparateMaskComponents(Node):
    """Split masks into their connected pieces (pixels above 0, touching sideways or diagonally),
    one mask each, as Masquerade's Separate Mask Components does: each piece keeps the mask's
    values, everything else 0; pieces come in the pack's order (image by image, each piece by
    the position of its last pixel in reading order). mask_mappings gives each piece's image
    index, for Cut By Mask and Paste By Mask. More pieces than the server's max_batch, or than fit
    in the run's memory, are refused before any is made. (The pack labels pieces by repeated 3×3
    max-pooling; the same pieces are found here with scipy.ndimage.label.)"""
    category = CATEGORY
    mask: IMAGE
    outputs = {"mask": IMAGE, "mask_mappings": MASK_MAPPING}
    comfy = ComfyAlias(("Separate Mask Components",))

    def run(self):
        import numpy as np
        import torch
        from scipy import ndimage
        mask = as_mask(_tensor(self.mask, "mask"))
        batch, height, width = mask.shape
        positive = (mask > 0).cpu().numpy()
        # label every image first and count the pieces, so that too many are refused before the
        # pieces' masks (count × H × W) take any memory
        labelled = []  # (image index, its labels, each label's place in the pack's order)
        for i in range(batch):
            labels, count = ndimage.label(positive[i], structure=np.ones((3, 3), dtype=bool))
            if not count:
                continue
            last = ndimage.maximum(np.arange(labels.size).reshape(labels.shape), labels, np.arange(1, count + 1))
            place = np.empty(count, dtype=np.int64)
            place[np.argsort(last, kind="stable")] = np.arange(count)
            labelled.append((i, labels, place))
        total = sum(len(place) for _, _, place in labelled)
        _check_batch(total, height, width, "mask", "pieces")
        result = torch.zeros((total, height, width), dtype=mask.dtype, device=mask.device)
        images, first = [], 0
        for i, labels, place in labelled:
            ys, xs = np.nonzero(labels)
            pieces = first + place[labels[ys, xs] - 1]
            ys, xs, pieces = (torch.from_numpy(a).to(mask.device) for a in (ys, xs, pieces))
            result[pieces, ys, xs] = mask[i, ys, xs]
            images += [i] * len(place)
            first += len(place)
        return result, torch.tensor(images, dtype=torch.int32, device=mask.device)


PASTE_BEHAVIORS = ("resize", "keep_ratio_fill", "keep_ratio_fit", "source_size", "source_size_unmasked")


class PasteByMask(Node):
    """Paste image_to_paste onto image_base over each mask's bounding box, as Masquerade's Paste
    By Mask does: resize fits the box exactly, keep_ratio_fill covers it keeping the paste's
    ratio, keep_ratio_fit fits inside it, source_size / source_size_unmasked keep the paste's
    size (bicubic resizing, centred on the box). The paste's alpha, limited by the mask (not for
    keep_ratio_fill and source_size_unmasked, which may spill outside it), mixes it in. Gives RGBA,
    as the pack does. Without mask_mapping_optional the batches are repeated to the largest (each
    must divide it); with it, paste i (and mask i) goes onto the base image the mapping names. A
    resized paste beyond 16384 a side, or the server's max_pixels, is refused."""
    category = CATEGORY
    image_base: IMAGE
    image_to_paste: IMAGE
    mask: IMAGE
    resize_behavior: str = Choice(PASTE_BEHAVIORS, "resize")
    mask_mapping_optional: MASK_MAPPING = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Paste By Mask",), optional=("mask_mapping_optional",))

    @classmethod
    def estimate(cls, widgets, inputs):
        base = inputs.get("image_base")  # the base's size; its batch may grow to the paste's or mask's
        return Estimate(None if base is None else Size(base.batch, base.height, base.width))

    def run(self):
        base = as_rgba(_tensor(self.image_base, "image_base"))
        paste = as_rgba(_tensor(self.image_to_paste, "image_to_paste"))
        mask = as_mask(_tensor(self.mask, "mask"))
        mapping = None
        if self.mask_mapping_optional is not None:
            mapping = _mapping(self.mask_mapping_optional, base.shape[0], "mask_mapping_optional")
            if mapping.numel() < mask.shape[0] or paste.shape[0] < mask.shape[0]:
                raise NodeInputError("mask_mapping_optional",
                                     f"{mask.shape[0]} masks need as many mappings and pastes; there are "
                                     f"{mapping.numel()} and {paste.shape[0]}")
        else:
            size = max(base.shape[0], paste.shape[0], mask.shape[0])
            base = _repeated(base, size, "image_base")
            paste = _repeated(paste, size, "image_to_paste")
            mask = _repeated(mask, size, "mask")
        height, width = base.shape[1:3]
        mask = _fit_mask(mask, height, width)
        empty, boxes = mask_boxes(mask)
        result = base.clone()
        for i in range(mask.shape[0]):
            if empty[i]:
                continue
            target = i if mapping is None else int(mapping[i])
            placed = placed_paste(paste[i:i + 1], self.resize_behavior, boxes[i], mask[i], result[target])
            if placed is None:
                continue
            pasting, amount = placed
            amount = amount.unsqueeze(2)
            result[target] = pasting * amount + result[target] * (1.0 - amount)
        return result


def paste_size(behavior: str, width: int, height: int, paste_w: int, paste_h: int) -> tuple[int, int]:
    """The pasted piece's (width, height) for a box width × height, as the pack works it out (and
    ComfyUI_Fill-Nodes' FL_PasteByMask, its fork)."""
    if behavior in ("source_size", "source_size_unmasked"):
        return paste_w, paste_h
    if behavior in ("keep_ratio_fill", "keep_ratio_fit"):
        box_ratio, paste_ratio = width / height, paste_w / paste_h
        # fill: the paste's longer side overflows the box; fit: its shorter side falls short
        widen = paste_ratio > box_ratio if behavior == "keep_ratio_fill" else paste_ratio < box_ratio
        if widen:
            width = int(height * paste_ratio)
        elif paste_ratio != box_ratio:
            height = int(width / paste_ratio)
    return width, height


def placed_paste(piece, behavior: str, box, mask, under):
    """A [1, H, W, 4] paste laid over `under` (a [H, W, 4] picture) as the pack places it for a mask
    box (x0, y0, x1, y1 inclusive, from mask_boxes): sized by paste_size, centred on the box as the
    pack rounds it, cut to the picture. Gives (the layer, opaque, white where the paste isn't; how
    much of it shows per pixel: its alpha, within the mask unless the behaviour pastes unmasked), or
    None where nothing of it falls on the picture. Also ComfyUI_Fill-Nodes' FL_PasteByMask's."""
    import torch

    height, width = under.shape[:2]
    paste_h, paste_w = piece.shape[1:3]
    x0, y0, x1, y1 = box
    w, h = paste_size(behavior, int((x1 - x0 + 1).item()), int((y1 - y0 + 1).item()), paste_w, paste_h)
    if (h, w) != (paste_h, paste_w):
        _check_size(w, h, "image_to_paste")
        piece = _bicubic(piece, h, w)
    piece = piece[0]
    middle_x, middle_y = ((x0 + x1) / 2).item(), ((y0 + y1) / 2).item()
    top, left = math.floor(middle_y - h / 2) + 1, math.floor(middle_x - w / 2) + 1
    bottom, right = top + h, left + w
    src_top, src_left = max(0, -top), max(0, -left)
    src_bottom, src_right = h - max(0, bottom - height), w - max(0, right - width)
    top, left, bottom, right = max(top, 0), max(left, 0), min(bottom, height), min(right, width)
    if top >= bottom or left >= right:
        return None
    pasting = torch.ones_like(under)
    pasting[top:bottom, left:right] = piece[src_top:src_bottom, src_left:src_right]
    pasting[..., 3] = 1.0
    amount = torch.zeros((height, width), dtype=under.dtype, device=under.device)
    amount[top:bottom, left:right] = piece[src_top:src_bottom, src_left:src_right, 3]
    if behavior not in ("keep_ratio_fill", "source_size_unmasked"):
        amount = torch.minimum(amount, mask)
    return pasting, amount


def _repeated(t, size: int, name: str):
    """A batch repeated whole to `size` (the pack's repeat), which it must divide."""
    if t.shape[0] == size:
        return t
    if size % t.shape[0]:
        raise NodeInputError(name, f"a batch of {t.shape[0]} doesn't divide the batch of {size} it is matched to")
    return t.repeat(size // t.shape[0], *([1] * (t.ndim - 1)))


# -- sizes, channels and batches ----------------------------------------------------------


class MasqueradeGetImageSize(Node):
    """The width and height of an image or mask batch, as Masquerade's Get Image Size gives them."""
    category = CATEGORY
    image: IMAGE
    outputs = {"width": INT, "height": INT}
    comfy = ComfyAlias(("Get Image Size",))

    def run(self):
        image = _tensor(self.image, "image")
        return int(image.shape[2]), int(image.shape[1])


class ChangeChannelCount(Node):
    """Convert between a mask, RGB and RGBA as Masquerade's Change Channel Count does: mask reads
    an image's alpha (unless all 1) or its luma; RGB repeats a mask or drops alpha; RGBA repeats a
    mask into all four channels (alpha too) or adds alpha 1 to RGB."""
    category = CATEGORY
    image: IMAGE
    kind: str = Choice(("mask", "RGB", "RGBA"), "mask")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Change Channel Count",))

    def run(self):
        image = _tensor(self.image, "image")
        return {"mask": as_mask, "RGB": as_rgb, "RGBA": as_rgba}[self.kind](image)


class ConstantMask(Node):
    """A mask [1, height, width] filled with value, as Masquerade's Constant Mask does: the size of
    copy_image_size when linked, else explicit_width × explicit_height, or 16×16 where either is 0
    (for nodes downstream to resize)."""
    category = CATEGORY
    value: float = Float(0.0, min=-8.0, max=8.0, step=0.01)
    explicit_height: int = Int(0, min=0, max=VERY_BIG_SIZE, resource="height")
    explicit_width: int = Int(0, min=0, max=VERY_BIG_SIZE, resource="width")
    copy_image_size: IMAGE = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Constant Mask",), optional=("copy_image_size",))

    @classmethod
    def estimate(cls, widgets, inputs):
        if "copy_image_size" in inputs:
            copied = inputs["copy_image_size"]
            return Estimate(None if copied is None else Size(1, copied.height, copied.width))
        width, height = widgets.get("explicit_width"), widgets.get("explicit_height")
        if not isinstance(width, int) or not isinstance(height, int):
            return Estimate(None)
        return Estimate(Size(1, height, width) if width and height else Size(1, 16, 16))

    def run(self):
        import torch
        height, width = self.explicit_height, self.explicit_width
        if self.copy_image_size is not None:
            height, width = _tensor(self.copy_image_size, "copy_image_size").shape[1:3]
        elif not (height and width):
            height = width = 16
        return torch.full((1, height, width), float(self.value))


class PruneByMask(Node):
    """Keep the images whose mask averages at least 0.5, as Masquerade's Prune By Mask does (the
    mask read as a mask; one mask per image)."""
    category = CATEGORY
    image: IMAGE
    mask: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Prune By Mask",))

    def run(self):
        image, mask = _tensor(self.image, "image"), as_mask(_tensor(self.mask, "mask"))
        if mask.shape[0] != image.shape[0]:
            raise NodeInputError("mask", f"a batch of {mask.shape[0]} masks for {image.shape[0]} images: "
                                         "give one mask per image")
        return image[mask.mean(dim=(1, 2)) >= 0.5]


class MakeImageBatch(Node):
    """image1 then image2 ... image6 (those linked) in one batch, as Masquerade's Make Image Batch
    does. They must all be the same shape (size and channels)."""
    category = CATEGORY
    image1: IMAGE
    image2: IMAGE = None
    image3: IMAGE = None
    image4: IMAGE = None
    image5: IMAGE = None
    image6: IMAGE = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Make Image Batch",), optional=("image2", "image3", "image4", "image5", "image6"))

    @classmethod
    def estimate(cls, widgets, inputs):
        sizes = [inputs.get(f"image{i}") for i in range(1, 7) if f"image{i}" in inputs]
        if not sizes or any(s is None for s in sizes):
            return Estimate(None)
        return Estimate(Size(sum(s.batch for s in sizes), sizes[0].height, sizes[0].width))

    def run(self):
        import torch
        first = _tensor(self.image1, "image1")
        parts = [first]
        for i in range(2, 7):
            image = getattr(self, f"image{i}")
            if image is None:
                continue
            if _tensor(image, f"image{i}").shape[1:] != first.shape[1:]:
                raise NodeInputError(f"image{i}", f"is shaped {tuple(image.shape[1:])} (height, width[, channels]), "
                                                  f"image1 {tuple(first.shape[1:])}: they must be alike")
            parts.append(image)
        return torch.cat(parts, dim=0)


# -- colour -------------------------------------------------------------------------------------


def rgb_to_hsv(rgb):
    """HSV (hue 0..1) of RGB [..., 3], as the pack computes it; grey has hue and saturation 0."""
    import torch
    r, g, b = rgb.unbind(-1)
    value, largest = rgb.max(dim=-1)
    chroma = value - rgb.min(dim=-1).values
    hue = torch.where(largest == 0, ((g - b) / chroma) % 6,
                      torch.where(largest == 1, (b - r) / chroma + 2, (r - g) / chroma + 4)) / 6.0
    hue = torch.where(chroma == 0, torch.zeros_like(hue), hue)
    saturation = torch.where(chroma != 0, chroma / value, torch.zeros_like(value))
    return torch.stack((hue, saturation, value), dim=-1)


def hsv_to_rgb(hsv):
    """RGB of HSV [..., 3] (hue taken modulo 1), as the pack computes it."""
    import torch
    h, s, v = hsv.unbind(-1)
    h = h % 1.0
    chroma = v * s
    sector = (h * 6.0).to(torch.uint8)
    x = chroma * (1 - ((h * 6.0) % 2 - 1).abs())
    zero = torch.zeros_like(x)
    layouts = ((chroma, x, zero), (x, chroma, zero), (zero, chroma, x), (zero, x, chroma), (x, zero, chroma),
               (chroma, zero, x))
    rgb = torch.zeros_like(hsv)
    for n, layout in enumerate(layouts):
        rgb = torch.where((sector == n).unsqueeze(-1), torch.stack(layout, dim=-1), rgb)
    return rgb + (v - chroma).unsqueeze(-1)


def hsv_to_hsl(hsv):
    import torch
    h, s, v = hsv.unbind(-1)
    lightness = v * (1.0 - s / 2.0)
    defined = (lightness != 0) & (lightness != 1)
    saturation = torch.where(defined, (v - lightness) / torch.minimum(lightness, 1.0 - lightness), torch.zeros_like(v))
    return torch.stack((h, saturation, lightness), dim=-1)


def hsl_to_hsv(hsl):
    import torch
    h, s, lightness = hsl.unbind(-1)
    v = lightness + s * torch.minimum(lightness, 1.0 - lightness)
    saturation = torch.where(v != 0, 2.0 * (1.0 - lightness / v), torch.zeros_like(v))
    return torch.stack((h, saturation, v), dim=-1)


SPACES = ("RGB", "HSV", "HSL")


class ConvertColorSpace(Node):
    """Convert an image between RGB, HSV and HSL, as Masquerade's Convert Color Space does: hue,
    saturation, value / lightness each 0..1 in the channels (hue in turns; grey has hue 0). The
    same space in and out gives the input back untouched; otherwise it is made RGB-shaped first."""
    category = CATEGORY
    in_space: str = Choice(SPACES, "RGB")
    out_space: str = Choice(SPACES, "RGB")
    image: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Convert Color Space",))

    def run(self):
        image = _tensor(self.image, "image")
        if self.in_space == self.out_space:
            return image
        image = as_rgb(image)
        hsv = {"HSV": lambda x: x, "RGB": rgb_to_hsv, "HSL": hsl_to_hsv}[self.in_space](image)
        return {"HSV": lambda x: x, "RGB": hsv_to_rgb, "HSL": hsv_to_hsl}[self.out_space](hsv)


class MasqueradeIncrementer(Node):
    """seed modulo max_value (0 .. max_value - 1; -1 gives max_value - 1), as Masquerade's
    Incrementer does: with the editor's control_after_generate on increment, a counter that
    cycles through max_value steps."""
    category = CATEGORY
    seed: int = Int(0, min=-1, max=0xffffffffffffffff)
    max_value: int = Int(1, min=1, max=0xffffffffffffffff)
    outputs = {"INT": INT}
    comfy = ComfyAlias(("MasqueradeIncrementer",))

    def run(self):
        return self.seed % self.max_value
