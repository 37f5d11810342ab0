"""chflame163/ComfyUI_LayerStyle's model-free nodes, round 1, under the pack's class names, inputs (names,
order, defaults) and outputs. Part one (this module) holds the layer effects, the blend modes and most
LayerUtility picture nodes; part two, nodes/pack_nodes_layerstyle_more.py, the data nodes, LayerColor,
LayerFilter, most LayerMask nodes and the rest of LayerUtility (its docstring lists them). Read from the
pack's py/*.py and py/imagefunc.py at commits 25965f5c0e710750aec73ca92f99ae373dfbb910 (DropShadow,
ColorImage, GetImageSize, ImageRemoveAlpha, ImageCombineAlpha, CropByMask V2, ImageScaleByAspectRatio),
33d9f817de53f80bcd2631f0dcee13066975f829 (ImageBlend, Stroke, ColorOverlay, InnerShadow, InnerGlow,
MaskInvert, ImageOpacity, CropByMask), a267afb24b80ebd0ff9c3ac4833d3c8285b862da (OuterGlow),
73dfb6d2d60200bc778cf85e4f77bb9ea5dd6984 (GradientOverlay), 17ac6c0b4602a2ab74f4fa12fc378541843a7653
(MaskGrow, ImageBlendAdvance), 29cc4dc3522cb8a6d3d08b9351e9fb45236ae4e8 (ImageScaleByAspectRatio V2,
ImageScaleRestore), 16b1edc983e27469bff1afd79e23418b5e4ce176 (ImageScaleRestore V2),
13acd2532ac65db693aed6097f84bc35230bf65d (RestoreCropBox), 62b0394685d2dd63bea081546d430f80e279429e
(ExtendCanvas, ExtendCanvasV2), 17ac6c0b4602a2ab74f4fa12fc378541843a7653 (ImageChannelSplit, ColorImage
V2, MaskStroke), 25965f5c0e710750aec73ca92f99ae373dfbb910 (ImageChannelMerge, ImageMaskScaleAs (+V2)),
0c16b99cade0bfd4a98d89d9a70933ff56faded8 (GradientImage, MaskGradient),
22dd72ce589a8b025e152cabe9e18319c8ed75d4 (GradientImage V2), and imagefunc.py at
cf8c238f8a534b1297a5135a2bdff91a6562b388 (chop_image's blend modes, expand_mask, shift_image, mask_area,
min_bounding_rect, fit_resize_image, step_color).

Held in the two modules: LayerStyle: DropShadow, OuterGlow, InnerShadow, InnerGlow, Stroke,
ColorOverlay, GradientOverlay; LayerUtility: ImageBlend, ImageBlendAdvance, ColorImage, GetImageSize,
ImageScaleByAspectRatio (+V2), ImageScaleRestore (+V2), CropByMask (+V2; its max_inscribed_rect
detection is refused), RestoreCropBox, ExtendCanvas (+V2), ImageMaskScaleAs (+V2), ColorImage V2,
GradientImage (+V2), ImageChannelSplit / Merge, ImageOpacity, ImageRemoveAlpha, ImageCombineAlpha,
TextJoin; LayerMask: MaskInvert, MaskGrow, MaskStroke, MaskGradient.

Round 2 (nodes/pack_nodes_layerstyle2.py) holds the V2 blend modes and the V2 / V3 effects and blends
that use them (the V2 ones subclass this module's classes through their `chop` hook), SimpleTextImage,
Film (V2), AddGrain and a few more (its docstring lists them); round 3 (nodes/pack_nodes_layerstyle3.py)
TextImage (V2), CropByMask V3 (CropByMask V2 with RGBA crops, through its `picture_mode`) and more. Left out
for good: everything needing models or downloads (SAM, BiRefNet, YOLO, LaMa, RMBG, VITMatte, Florence,
...; most now in chflame163's ComfyUI_LayerStyle_Advance), LightLeak (the pack's own pictures) and
LayerMask PixelSpread (pymatting, which needs numba).

As in the pack, pictures go through 8 bits (PIL) on the way: each result is a multiple of 1/255. Where
the pack skips its work (no mask for an effect) it gives its input on with a warning."""

from __future__ import annotations

from graphflow.api import ANY, IMAGE, INT, MASK, STRING, Bool, Choice, ComfyAlias, Estimate, Float, Int, Node, \
    NodeInputError, Size, Text, check_interrupted, check_run_memory, socket_type, warn

COMFY_PACK = "ComfyUI_LayerStyle"  # the custom node pack this module's ComfyUI classes come from

BOX = socket_type("BOX", "#9e9e9e", "LayerStyle's box: [width, height] or [x1, y1, x2, y2]")

# imagefunc.chop_mode, in the pack's order ('multply' is the pack's spelling)
CHOP_MODES = ("normal", "multply", "screen", "add", "subtract", "difference", "darker", "lighter",
              "color_burn", "color_dodge", "linear_burn", "linear_dodge", "overlay",
              "soft_light", "hard_light", "vivid_light", "pin_light", "linear_light", "hard_mix")

# -- pictures: the pack's tensor2pil / pil2tensor ----------------------------------------------------


def to_pil(picture):
    """One image [H, W, C] or mask [H, W] as an 8-bit PIL picture (RGB, RGBA or L), as the pack's
    tensor2pil makes it: clipped, times 255, truncated."""
    import numpy as np
    from PIL import Image
    array = np.clip(255.0 * picture.detach().cpu().float().numpy(), 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array)


def to_tensor(picture):
    """A PIL picture as a batch of one: [1, H, W, C] for colour, [1, H, W] for L."""
    import numpy as np
    import torch
    return torch.from_numpy(np.array(picture).astype(np.float32) / 255.0).unsqueeze(0)


def pil_color(color: str, input_name: str) -> tuple:
    """A colour as PIL reads it ('#RRGGBB', '#RGB', a name); a clear error otherwise."""
    from PIL import ImageColor
    try:
        return ImageColor.getrgb(color)
    except (ValueError, AttributeError):
        raise NodeInputError(input_name, f"not a colour: {color!r} (expected e.g. '#FF8800' or 'red')") from None


def nth(items: list, index: int):
    """The pack's batch rule: the index-th item, the last where a batch is shorter."""
    return items[index] if index < len(items) else items[-1]


def mask_batch(mask):
    return mask.unsqueeze(0) if mask.dim() == 2 else mask


def layer_masks(layer_image, layer_mask, invert_mask: bool, white_when_opaque: bool) -> list:
    """The layers' masks as the pack picks them: layer_mask (inverted where invert_mask), else each
    RGBA layer's alpha; an RGB layer gives a white mask where `white_when_opaque` (ImageBlend), no
    mask otherwise (the effects)."""
    from PIL import Image
    if layer_mask is not None:
        return [to_pil(1 - m if invert_mask else m).convert("L") for m in mask_batch(layer_mask)]
    masks = []
    for layer in layer_image:
        if layer.shape[-1] == 4:
            masks.append(to_pil(layer).split()[-1])
        elif white_when_opaque:
            masks.append(Image.new("L", (layer.shape[1], layer.shape[0]), "white"))
    return masks


def fitting_mask(mask, size, node: str):
    """The pack drops a mask of another size than the layer for a white one, with a warning."""
    from PIL import Image
    if mask.size != size:
        warn(f"{node}: the mask is {mask.size[0]}×{mask.size[1]}, the layer {size[0]}×{size[1]}: "
             "the mask is dropped (as the pack does)")
        return Image.new("L", size, "white")
    return mask


def same_size(background, layer, layer_input: str = "layer_image"):
    if background.size != layer.size:
        raise NodeInputError(layer_input, f"is {layer.size[0]}×{layer.size[1]}, background_image "
                                          f"{background.size[0]}×{background.size[1]}: the pack blends "
                                          "same-size pictures")


# -- blend modes: imagefunc.chop_image ---------------------------------------------------------------


def _ubyte(values):
    """skimage's img_as_ubyte of a float picture in [0, 1]: times 255, rounded."""
    import numpy as np
    return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)


def _float_blend(mode: str, back, layer):
    """The pack's numpy blend modes (blend_color_burn ...), on floats in [0, 1]: back is the
    background (its img_1), layer the layer (img_2)."""
    import numpy as np
    if mode == "color_burn":
        out = 1 - (1 - layer) / (back + 0.001)
    elif mode == "color_dodge":
        out = layer / (1.0 - back + 0.001)
    elif mode == "linear_burn":
        out = back + layer - 1
    elif mode == "linear_dodge":
        out = back + layer
    elif mode == "overlay":
        out = np.where(layer < 0.5, 2 * back * layer, 1 - 2 * (1 - back) * (1 - layer))
    elif mode == "soft_light":
        out = np.where(back < 0.5, (2 * back - 1) * (layer - layer * layer) + layer,
                       (2 * back - 1) * (np.sqrt(layer) - layer) + layer)
    elif mode == "hard_light":
        out = np.where(back < 0.5, 2 * back * layer, 1 - 2 * (1 - back) * (1 - layer))
    elif mode == "vivid_light":
        burn = np.maximum(1 - (1 - layer) / (2 * back + 0.001), 0)
        dodge = np.minimum(layer / (2 * (1 - back) + 0.001), 1)
        out = np.where(back < 0.5, burn, dodge)
    elif mode == "pin_light":
        out = np.where(layer < back * 2 - 1, 2 * back - 1, np.where(layer > 2 * back, 2 * back, layer))
    elif mode == "linear_light":
        out = layer + back * 2 - 1
    else:  # hard_mix: 1 where the sum passes 1, else 0
        out = (back + layer > 1).astype(np.float64)
    return np.clip(out, 0, 1)


def chop_image(background, layer, blend_mode: str, opacity: int):
    """imagefunc.chop_image: the layer blended onto the background (same-size RGB pictures) by
    blend_mode, then mixed back with the background at opacity percent."""
    import numpy as np
    from PIL import Image, ImageChops
    chops = {"normal": lambda b, l: l.copy(), "multply": ImageChops.multiply, "screen": ImageChops.screen,
             "add": lambda b, l: ImageChops.add(b, l, 1, 0), "subtract": lambda b, l: ImageChops.subtract(b, l, 1, 0),
             "difference": ImageChops.difference, "darker": ImageChops.darker, "lighter": ImageChops.lighter}
    if blend_mode in chops:
        out = chops[blend_mode](background, layer)
    else:
        back = np.asarray(background, np.float64) / 255.0
        over = np.asarray(layer, np.float64) / 255.0
        out = Image.fromarray(_ubyte(_float_blend(blend_mode, back, over)), background.mode)
    if opacity == 0:
        return background
    if opacity < 100:
        return Image.blend(out, background, 1.0 - opacity / 100)
    return out


# -- masks: imagefunc.expand_mask / shift_image -----------------------------------------------------


def expand_mask(mask, grow: int, blur: int):
    """imagefunc.expand_mask of one 8-bit mask (PIL L): grown (eroded where grow < 0) by a
    3×3 cross |grow| times (scipy's grey_dilation / grey_erosion), then blurred by PIL's
    GaussianBlur(blur); an L picture. The steps stop early once the mask stops changing (the
    result is the same) and may be interrupted; a mask of fewer grey levels than |grow| is grown
    in one taxicab distance transform per level instead (the same pixels, see grown_by_levels)."""
    import numpy as np
    from PIL import Image, ImageFilter
    from scipy import ndimage
    levels = np.unique(np.asarray(mask))
    if len(levels) < abs(grow):
        picture = Image.fromarray(grown_by_levels(np.asarray(mask), levels, grow))
        return picture.filter(ImageFilter.GaussianBlur(blur))
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    step = ndimage.grey_erosion if grow < 0 else ndimage.grey_dilation
    values = np.asarray(mask, np.float32) / 255.0  # the pack grows the mask's float values
    for _ in range(abs(grow)):
        check_interrupted()
        grown = step(values, footprint=cross)
        if np.array_equal(grown, values):
            break
        values = grown
    picture = Image.fromarray(np.clip(255.0 * values, 0, 255).astype(np.uint8))
    return picture.filter(ImageFilter.GaussianBlur(blur))


def grown_by_levels(mask, levels, grow: int):
    """|grow| dilations (erosions for grow < 0) of an 8-bit mask by a 3×3 cross, level by level:
    n cross steps reach the pixels within taxicab distance n, so a pixel becomes the highest level
    (lowest, eroding) found within |grow| of it (a flat dilation is the union of its levels'
    dilations). The border reflects in scipy's steps, which never brings a pixel nearer, so the
    distance transform's open border gives the same pixels."""
    import numpy as np
    from scipy import ndimage
    out = np.full_like(mask, 255 if grow < 0 else 0)
    for level in (levels[::-1] if grow < 0 else levels):
        check_interrupted()
        # each pixel's distance to the nearest pixel at this level or beyond it
        beyond = mask <= level if grow < 0 else mask >= level
        near = ndimage.distance_transform_cdt(~beyond, metric="taxicab") <= abs(grow)
        out[near] = level
    return out


def shadow_mask(mask, distance_x: int, distance_y: int, grow: int, blur: int):
    """A shadow's mask, as DropShadow (V2, V3) and InnerShadow make it: the mask shifted by the
    distances (unshifted where both are 0, where the pack's shift fails), grown and blurred."""
    if distance_x or distance_y:
        mask = shift_image(mask, distance_x, distance_y)
    return expand_mask(mask, grow, blur)


def shift_image(picture, shift_x: int, shift_y: int, cyclic: bool = False, fill=0):
    """imagefunc.shift_image (DropShadow calls it with its distances negated): each pixel taken from
    (x - shift_x, y - shift_y), wrapping round where cyclic, else `fill` outside. As in the pack, a
    pixel is kept only where x > shift_x and y > shift_y, so the first source row / column is dropped
    for a shift >= 0 (left `fill`). The picture keeps its mode (L or RGB)."""
    import numpy as np
    from PIL import Image
    source = np.asarray(picture)
    height, width = source.shape[:2]
    xs, ys = np.arange(width), np.arange(height)
    if cyclic:
        return Image.fromarray(source[np.ix_((ys - shift_y) % height, (xs - shift_x) % width)])
    out = np.empty_like(source)
    out[...] = fill
    keep_x = (xs > shift_x) & (xs - shift_x < width)
    keep_y = (ys > shift_y) & (ys - shift_y < height)
    out[np.ix_(ys[keep_y], xs[keep_x])] = source[np.ix_(ys[keep_y] - shift_y, xs[keep_x] - shift_x)]
    return Image.fromarray(out)


def batch(pictures):
    import torch
    return torch.cat(pictures, dim=0)


# -- LayerStyle ---------------------------------------------------------------------------------------


class _LayerEffect(Node):
    """Shared inputs of the pack's layer effects (background, layer, mask, blend)."""
    category = "😺dzNodes/LayerStyle"
    background_image: IMAGE
    layer_image: IMAGE
    invert_mask: bool = Bool(True)
    blend_mode: str = Choice(CHOP_MODES, "normal")
    opacity: int = Int(100, min=0, max=100)
    chop = staticmethod(chop_image)  # the V2 classes (nodes/pack_nodes_layerstyle2.py) blend by chop_image_v2

    def pictures(self, node: str):
        """(background, layer, mask) per picture of the longest batch, as the pack pairs them; None
        where no mask is found (the pack then gives the background unchanged)."""
        masks = layer_masks(self.layer_image, getattr(self, "layer_mask", None), self.invert_mask, False)
        if not masks:
            warn(f"{node}: no mask (layer_mask not linked and layer_image has no alpha): the background "
                 "is given unchanged, as the pack does")
            return None
        count = max(len(self.background_image), len(self.layer_image), len(masks))
        out = []
        for i in range(count):
            canvas = to_pil(nth(self.background_image, i)).convert("RGB")
            layer = to_pil(nth(self.layer_image, i)).convert("RGB")
            same_size(canvas, layer)
            out.append((canvas, layer, fitting_mask(nth(masks, i), layer.size, node)))
        return out

    def shadow_mask(self, mask):
        return shadow_mask(mask, self.distance_x, self.distance_y, self.grow, self.blur)


class LayerStyleDropShadow(_LayerEffect):
    """A drop shadow under the layer, as LayerStyle's DropShadow: the layer's mask (layer_mask,
    inverted where invert_mask; else the layer's alpha) moved by distance_x / distance_y, grown by
    grow (shrunk below 0) and blurred by blur, shows shadow_color blended onto the background by
    blend_mode at opacity; the layer is pasted on top through its mask. With both distances 0 the
    mask is used where it is (the pack fails there). No mask: the background unchanged."""
    opacity: int = Int(50, min=0, max=100)
    distance_x: int = Int(25, min=-9999, max=9999)
    distance_y: int = Int(25, min=-9999, max=9999)
    grow: int = Int(6, min=-9999, max=9999)
    blur: int = Int(18, min=0, max=100)
    shadow_color: str = Text("#000000")
    layer_mask: MASK = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerStyle: DropShadow",))

    def run(self):
        from PIL import Image
        color = pil_color(self.shadow_color, "shadow_color")
        pictures = self.pictures("DropShadow")
        if pictures is None:
            return self.background_image
        out = []
        for canvas, layer, mask in pictures:
            shadow_mask = self.shadow_mask(mask)
            shadow = self.chop(canvas, Image.new("RGB", layer.size, color), self.blend_mode, self.opacity)
            canvas.paste(shadow, mask=shadow_mask)
            canvas.paste(layer, mask=mask)
            out.append(to_tensor(canvas))
        return batch(out)


class LayerStyleStroke(_LayerEffect):
    """An outline along the layer's mask edge, as LayerStyle's Stroke: a band stroke_width wide,
    centred stroke_grow pixels out from the edge (both edges blurred by blur), of stroke_color
    blended onto the layer by blend_mode at opacity, over the layer pasted on the background.
    No mask (layer_mask, else the layer's alpha): the background unchanged."""
    stroke_grow: int = Int(0, min=-999, max=999)
    stroke_width: int = Int(8, min=0, max=999)
    blur: int = Int(0, min=0, max=100)
    stroke_color: str = Text("#FF0000")
    layer_mask: MASK = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerStyle: Stroke",))

    def run(self):
        import numpy as np
        from PIL import Image
        color = pil_color(self.stroke_color, "stroke_color")
        pictures = self.pictures("Stroke")
        if pictures is None:
            return self.background_image
        inner = self.stroke_grow - self.stroke_width // 2
        outer = inner + self.stroke_width
        out = []
        for canvas, layer, mask in pictures:
            inner_mask = np.asarray(expand_mask(mask, inner, self.blur), np.int16)
            outer_mask = np.asarray(expand_mask(mask, outer, self.blur), np.int16)
            band = Image.fromarray(np.clip(outer_mask - inner_mask, 0, 255).astype(np.uint8))
            stroke = self.chop(layer, Image.new("RGB", layer.size, color), self.blend_mode, self.opacity)
            canvas.paste(layer, mask=mask)
            canvas.paste(stroke, mask=band)
            out.append(to_tensor(canvas))
        return batch(out)


class LayerStyleColorOverlay(_LayerEffect):
    """The layer covered by a colour, as LayerStyle's ColorOverlay: color blended onto the layer
    by blend_mode at opacity, pasted on the background through the layer's mask (layer_mask,
    inverted where invert_mask; else its alpha). No mask: the background unchanged."""
    color: str = Text("#FFBF30")
    layer_mask: MASK = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerStyle: ColorOverlay",))

    def run(self):
        from PIL import Image
        color = pil_color(self.color, "color")
        pictures = self.pictures("ColorOverlay")
        if pictures is None:
            return self.background_image
        out = []
        for canvas, layer, mask in pictures:
            canvas.paste(self.chop(layer, Image.new("RGB", layer.size, color), self.blend_mode, self.opacity),
                         mask=mask)
            out.append(to_tensor(canvas))
        return batch(out)


# glows list their blend modes with the lightening ones first (screen is their default)
GLOW_MODES = ("screen", "add", "lighter", "normal", "multply", "subtract", "difference", "darker",
              *CHOP_MODES[8:])


def hex_rgb(color: str, input_name: str) -> tuple:
    """imagefunc.Hex_to_RGB: '#RRGGBB' or '#RGB' only (the glows step between two such colours)."""
    text = color[1:] if color.startswith("#") else None
    if text is not None and len(text) == 3:
        text = "".join(c * 2 for c in text)
    try:
        if text is None or len(text) != 6:
            raise ValueError
        return tuple(int(text[i:i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        raise NodeInputError(input_name, f"not a hex colour: {color!r} (expected '#RRGGBB')") from None


def step_value(start: float, end: float, total: int, step: int) -> float:
    """imagefunc.step_value: the value step / total of the way from start to end."""
    return (end - start) * (step / total) + start


def step_color(start: tuple, end: tuple, total: int, step: int) -> tuple:
    return tuple(int(step_value(a, b, total, step)) for a, b in zip(start, end))


def inverted(mask):
    """The pack's tensor2pil(1 - image2mask(mask)): 255 × (1 - v / 255) in float32, truncated (so
    not always 255 - v)."""
    import numpy as np
    from PIL import Image
    values = np.float32(1) - np.asarray(mask, np.float32) / np.float32(255.0)
    return Image.fromarray(np.clip(np.float32(255.0) * values, 0, 255).astype(np.uint8))


class LayerStyleOuterGlow(_LayerEffect):
    """A glow around the layer, as LayerStyle's OuterGlow: in brightness steps, the layer's mask
    grown by glow_range (less by glow_range / brightness each step) and blurred by blur / 20 of
    the growth, shows a colour going from glow_color to light_color, blended onto the background
    by blend_mode at an opacity rising from 1 to opacity; the layer is pasted on top. No mask
    (layer_mask, else the layer's alpha): the background unchanged."""
    blend_mode: str = Choice(GLOW_MODES, "screen")
    brightness: int = Int(5, min=2, max=20)
    glow_range: int = Int(48, min=-9999, max=9999)
    blur: int = Int(25, min=0, max=9999)
    light_color: str = Text("#FFBF30")
    glow_color: str = Text("#FE0000")
    layer_mask: MASK = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerStyle: OuterGlow",))

    def run(self):
        from PIL import Image
        light, glow = hex_rgb(self.light_color, "light_color"), hex_rgb(self.glow_color, "glow_color")
        pictures = self.pictures("OuterGlow")
        if pictures is None:
            return self.background_image
        blur_factor = self.blur / 20.0
        out = []
        for canvas, layer, mask in pictures:
            grow = self.glow_range
            for step in range(self.brightness):
                glow_mask = expand_mask(mask, grow, int(grow * blur_factor))  # PIL blurs by |radius|
                color = Image.new("RGB", layer.size, step_color(glow, light, self.brightness, step))
                opacity = int(step_value(1, self.opacity, self.brightness, step))
                canvas.paste(self.chop(canvas, color, self.blend_mode, opacity), mask=glow_mask)
                grow -= int(self.glow_range / self.brightness)
            canvas.paste(layer, mask=mask)
            out.append(to_tensor(canvas))
        return batch(out)


class LayerStyleInnerGlow(LayerStyleOuterGlow):
    """A glow inside the layer's edge, as LayerStyle's InnerGlow: in brightness steps, the layer's
    mask shrunk by glow_range (less each step) and blurred, its outside shows a colour going from
    glow_color to light_color blended onto the layer (opacity rising from 1 to opacity); the
    layer is then pasted on the background through its mask. As the pack does, the blur of the
    second and later pictures of a batch is reckoned from the last step's blur of the one before."""
    comfy = ComfyAlias(("LayerStyle: InnerGlow",))

    def run(self):
        from PIL import Image, ImageChops
        light, glow = hex_rgb(self.light_color, "light_color"), hex_rgb(self.glow_color, "glow_color")
        pictures = self.pictures("InnerGlow")
        if pictures is None:
            return self.background_image
        blur = self.blur
        out = []
        for canvas, layer, mask in pictures:
            blur_factor = blur / 20.0  # the pack reuses its blur variable: the previous picture's last blur
            grow = self.glow_range
            for step in range(self.brightness):
                blur = int(grow * blur_factor)
                glow_mask = expand_mask(mask, -grow, blur)
                color = Image.new("RGB", layer.size, step_color(glow, light, self.brightness, step))
                opacity = int(step_value(1, self.opacity, self.brightness, step))
                layer.paste(self.chop(layer, color, self.blend_mode, opacity), mask=inverted(glow_mask))
                grow -= int(self.glow_range / self.brightness)
            layer.paste(canvas, mask=ImageChops.invert(mask))
            out.append(to_tensor(layer))
        return batch(out)


class LayerStyleInnerShadow(_LayerEffect):
    """A shadow inside the layer's edge, as LayerStyle's InnerShadow: the layer's mask moved by
    distance_x / distance_y, grown by grow and blurred by blur; outside it, shadow_color is
    blended onto the layer by blend_mode at opacity, and the layer pasted on the background
    through its mask. With both distances 0 the mask is used where it is (the pack fails there).
    No mask: the background unchanged."""
    opacity: int = Int(50, min=0, max=100)
    distance_x: int = Int(5, min=-9999, max=9999)
    distance_y: int = Int(5, min=-9999, max=9999)
    grow: int = Int(2, min=-9999, max=9999)
    blur: int = Int(15, min=0, max=100)
    shadow_color: str = Text("#000000")
    layer_mask: MASK = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerStyle: InnerShadow",))

    def run(self):
        from PIL import Image, ImageChops
        color = pil_color(self.shadow_color, "shadow_color")
        pictures = self.pictures("InnerShadow")
        if pictures is None:
            return self.background_image
        out = []
        for canvas, layer, mask in pictures:
            shadow_mask = self.shadow_mask(mask)
            shadow = self.chop(layer, Image.new("RGB", layer.size, color), self.blend_mode, self.opacity)
            layer.paste(shadow, mask=ImageChops.invert(shadow_mask))
            canvas.paste(layer, mask=mask)
            out.append(to_tensor(canvas))
        return batch(out)


# -- LayerUtility -------------------------------------------------------------------------------------


class LayerUtilityImageBlend(Node):
    """Blend a layer onto a background, as LayerUtility's ImageBlend: the layer blended by
    blend_mode at opacity percent, pasted through layer_mask (inverted where invert_mask; else
    the layer's alpha, else everywhere). Blend modes as the pack's chop_image: normal, multiply
    ("multply"), screen, add, subtract, difference, darker, lighter (PIL's ImageChops), and
    color / linear burn and dodge, overlay, soft / hard / vivid / pin / linear light, hard mix."""
    category = "😺dzNodes/LayerUtility"
    background_image: IMAGE
    layer_image: IMAGE
    invert_mask: bool = Bool(True)
    blend_mode: str = Choice(CHOP_MODES, "normal")
    opacity: int = Int(100, min=0, max=100)
    layer_mask: MASK = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerUtility: ImageBlend",))
    chop = staticmethod(chop_image)  # the V2 classes (nodes/pack_nodes_layerstyle2.py) blend by chop_image_v2

    def run(self):
        masks = layer_masks(self.layer_image, self.layer_mask, self.invert_mask, True)
        out = []
        for i in range(max(len(self.background_image), len(self.layer_image), len(masks))):
            canvas = to_pil(nth(self.background_image, i)).convert("RGB")
            layer = to_pil(nth(self.layer_image, i)).convert("RGB")
            same_size(canvas, layer)
            mask = fitting_mask(nth(masks, i), layer.size, "ImageBlend")
            canvas.paste(self.chop(canvas, layer, self.blend_mode, self.opacity), mask=mask)
            out.append(to_tensor(canvas))
        return batch(out)


class LayerUtilityColorImage(Node):
    """A picture of one colour, as LayerUtility's ColorImage (color as PIL reads it: '#RRGGBB',
    '#RGB' or a colour name)."""
    category = "😺dzNodes/LayerUtility"
    width: int = Int(512, min=4, max=99999, resource="width")
    height: int = Int(512, min=4, max=99999, resource="height")
    color: str = Text("#000000")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerUtility: ColorImage",))

    def run(self):
        from PIL import Image
        return to_tensor(Image.new("RGB", (self.width, self.height), pil_color(self.color, "color")))


class LayerUtilityGetImageSize(Node):
    """The first image's width and height, and both as original_size (a BOX [width, height], which
    the pack's ImageScaleRestore reads), as LayerUtility's GetImageSize."""
    category = "😺dzNodes/LayerUtility"
    image: IMAGE
    outputs = {"width": INT, "height": INT, "original_size": BOX}
    comfy = ComfyAlias(("LayerUtility: GetImageSize",))

    def run(self):
        height, width = int(self.image.shape[1]), int(self.image.shape[2])
        return width, height, [width, height]


class LayerUtilityImageOpacity(Node):
    """Make an image see-through, as LayerUtility's ImageOpacity: the alpha (mask, inverted where
    invert_mask; else the image's alpha, else opaque) times opacity percent, given as an RGBA
    image and as a mask (8-bit steps as the pack's PIL blend takes them)."""
    category = "😺dzNodes/LayerUtility"
    image: IMAGE
    opacity: int = Int(100, min=0, max=100)
    invert_mask: bool = Bool(True)
    mask: MASK = None
    outputs = {"image": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("LayerUtility: ImageOpacity",))

    def run(self):
        from PIL import Image, ImageChops
        masks = layer_masks(self.image, self.mask, self.invert_mask, True)
        images, alphas = [], []
        for i in range(max(len(self.image), len(masks))):
            picture = to_pil(nth(self.image, i))
            mask = nth(masks, i)
            if mask.size != picture.size:
                raise NodeInputError("mask", f"is {mask.size[0]}×{mask.size[1]}, the image "
                                             f"{picture.size[0]}×{picture.size[1]}: expected the image's size")
            # the pack fades towards white on the inverted mask, towards black otherwise
            if self.invert_mask:
                alpha = ImageChops.invert(Image.blend(ImageChops.invert(mask), Image.new("L", mask.size, "white"),
                                                      1 - self.opacity / 100.0))
            else:
                alpha = Image.blend(mask, Image.new("L", mask.size, "black"), 1 - self.opacity / 100.0)
            images.append(to_tensor(Image.merge("RGBA", (*picture.convert("RGB").split(), alpha))))
            alphas.append(to_tensor(alpha))
        return batch(images), batch(alphas)


class LayerUtilityImageRemoveAlpha(Node):
    """An RGB image from an RGBA one, as LayerUtility's ImageRemoveAlpha: with fill_background the
    picture is pasted through its alpha (or mask, where linked) on background_color; without,
    the alpha is simply dropped. An RGB image with fill_background and no mask is given unchanged
    (as the pack does, with a warning)."""
    category = "😺dzNodes/LayerUtility"
    RGBA_image: IMAGE
    fill_background: bool = Bool(False)
    background_color: str = Text("#000000")
    mask: MASK = None
    outputs = {"RGB_image": IMAGE}
    comfy = ComfyAlias(("LayerUtility: ImageRemoveAlpha",))

    def run(self):
        from PIL import Image
        out = []
        for index, image in enumerate(self.RGBA_image):
            picture = to_pil(image)
            if not self.fill_background:
                out.append(to_tensor(picture.convert("RGB")))
                continue
            if self.mask is not None:
                alpha = to_pil(nth(mask_batch(self.mask), index)).convert("L")
            elif picture.mode == "RGBA":
                alpha = picture.split()[-1]
            else:
                warn("ImageRemoveAlpha: the image has no alpha and no mask is linked: given unchanged, "
                     "as the pack does")
                return self.RGBA_image
            if alpha.size != picture.size:
                raise NodeInputError("mask", f"is {alpha.size[0]}×{alpha.size[1]}, the image "
                                             f"{picture.size[0]}×{picture.size[1]}: expected the image's size")
            canvas = Image.new("RGB", picture.size, pil_color(self.background_color, "background_color"))
            canvas.paste(picture, mask=alpha)
            out.append(to_tensor(canvas))
        return batch(out)


class LayerUtilityImageCombineAlpha(Node):
    """An RGBA image of an image's RGB and a mask as its alpha, as LayerUtility's
    ImageCombineAlpha (the longer batch sets the count; the shorter repeats its last)."""
    category = "😺dzNodes/LayerUtility"
    RGB_image: IMAGE
    mask: MASK
    outputs = {"RGBA_image": IMAGE}
    comfy = ComfyAlias(("LayerUtility: ImageCombineAlpha",))

    def run(self):
        from PIL import Image
        masks = mask_batch(self.mask)
        out = []
        for i in range(max(len(self.RGB_image), len(masks))):
            picture = to_pil(nth(self.RGB_image, i)).convert("RGB")
            alpha = to_pil(nth(masks, i)).convert("L")
            if alpha.size != picture.size:
                raise NodeInputError("mask", f"is {alpha.size[0]}×{alpha.size[1]}, RGB_image "
                                             f"{picture.size[0]}×{picture.size[1]}: expected the image's size")
            out.append(to_tensor(Image.merge("RGBA", (*picture.split(), alpha))))
        return batch(out)


class LayerUtilityTextJoin(Node):
    """The texts joined by ", ", as LayerUtility's TextJoin (empty ones too: "a, b, , ")."""
    category = "😺dzNodes/LayerUtility"
    text_1: str = Text("", multiline=True)
    text_2: str = Text("", multiline=True)
    text_3: str = Text("", multiline=True)
    text_4: str = Text("", multiline=True)
    outputs = {"text": STRING}
    comfy = ComfyAlias(("LayerUtility: TextJoin",))

    def run(self):
        return ", ".join((self.text_1, self.text_2, self.text_3, self.text_4))


# -- LayerMask ----------------------------------------------------------------------------------------


class LayerMaskMaskInvert(Node):
    """1 - mask, as LayerMask's MaskInvert (the mask first read at 8 bits, as the pack does)."""
    category = "😺dzNodes/LayerMask"
    mask: MASK
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("LayerMask: MaskInvert",))

    def run(self):
        return batch([1 - to_tensor(to_pil(m).convert("L")) for m in mask_batch(self.mask)])


class LayerMaskMaskGrow(Node):
    """Grow (or with grow < 0 shrink) a mask by grow pixels and blur it, as LayerMask's MaskGrow:
    a 3×3 cross dilation |grow| times, then PIL's Gaussian blur of radius blur. invert_mask
    inverts the mask first."""
    category = "😺dzNodes/LayerMask"
    mask: MASK
    invert_mask: bool = Bool(True)
    grow: int = Int(4, min=-999, max=999)
    blur: int = Int(4, min=0, max=999)
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("LayerMask: MaskGrow",))

    def run(self):
        out = []
        for m in mask_batch(self.mask):
            picture = to_pil(1 - m if self.invert_mask else m).convert("L")
            out.append(to_tensor(expand_mask(picture, self.grow, self.blur)))
        return batch(out)


# -- LayerUtility: sizes, crops and canvases ---------------------------------------------------------

RESAMPLE_METHODS = ("lanczos", "bicubic", "hamming", "bilinear", "box", "nearest")


def resample(method: str):
    from PIL import Image
    return {"lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC, "hamming": Image.HAMMING,
            "bilinear": Image.BILINEAR, "box": Image.BOX, "nearest": Image.NEAREST}[method]


def check_made_size(input_name: str, count: int, width: int, height: int, what: str) -> None:
    """Refuse, before making it, a batch of pictures too big for the run's memory or too small to be."""
    if width < 1 or height < 1:
        raise NodeInputError(input_name, f"{what} gives {width}×{height}: nothing to make")
    check_run_memory(input_name, what, images=Size(count, height, width))


def round_to_multiple(number: int, multiple: int) -> int:
    """imagefunc.num_round_to_multiple: to the nearest multiple, a half rounding down."""
    factor = int(number / multiple)
    return number if number % multiple == 0 else (factor + (number - factor * multiple > multiple / 2)) * multiple


def round_up_to_multiple(number: int, multiple: int) -> int:
    return -(-number // multiple) * multiple


def aspect_target(width: int, height: int, aspect_ratio: str, proportional_width: int, proportional_height: int,
                  round_to: str, scale_to_side: str, scale_to_length: int) -> tuple[int, int]:
    """ImageScaleByAspectRatio V2's target size for a picture of width × height."""
    if aspect_ratio == "original":
        ratio = width / height
    elif aspect_ratio == "custom":
        ratio = proportional_width / proportional_height
    else:
        ratio = int(aspect_ratio.split(":")[0]) / int(aspect_ratio.split(":")[1])
    # the side scale_to_side names, of the longer side's orientation (the height for squares)
    if width > height:
        side = {"longest": "width", "shortest": "height"}.get(scale_to_side, "width")
    else:
        side = {"longest": "height", "shortest": "width"}.get(scale_to_side, "height")
    length = scale_to_length if scale_to_side in ("longest", "shortest") else (width if side == "width" else height)
    if side == "width":
        target = (length, int(length / ratio))
    else:
        target = (int(length * ratio), length)
    if round_to != "None":
        target = (round_to_multiple(target[0], int(round_to)), round_to_multiple(target[1], int(round_to)))
    return target


def fit_resize(picture, width: int, height: int, fit: str, sampler, background="black"):
    """imagefunc.fit_resize_image: letterbox (fit inside, bars of `background`), crop (fill, centred
    crop) or fill (stretch); the picture is made RGB first, as the pack does."""
    from PIL import Image
    picture = picture.convert("RGB")
    orig_width, orig_height = picture.size
    if fit == "letterbox":
        if orig_width / orig_height > width / height:
            fit_width, fit_height = width, int(width / orig_width * orig_height)
        else:
            fit_width, fit_height = int(height / orig_height * orig_width), height
        out = Image.new("RGB", (width, height), background)
        out.paste(picture.resize((fit_width, fit_height), sampler),
                  box=((width - fit_width) // 2, (height - fit_height) // 2))
        return out
    if fit == "crop":
        if orig_width / orig_height > width / height:
            fit_width = int(orig_height * width / height)
            left = (orig_width - fit_width) // 2
            picture = picture.crop((left, 0, left + fit_width, orig_height))
        else:
            fit_height = int(orig_width * height / width)
            top = (orig_height - fit_height) // 2
            picture = picture.crop((0, top, orig_width, top + fit_height))
    return picture.resize((width, height), sampler)


class _AspectScale(Node):
    """ImageScaleByAspectRatio's inputs both versions share, and its run; `target_size` (from the
    widget values) is each version's."""
    category = "😺dzNodes/LayerUtility"
    aspect_ratio: str = Choice(("original", "custom", "1:1", "3:2", "4:3", "16:9", "2:3", "3:4", "9:16"), "original")
    proportional_width: int = Int(1, min=1, max=999)
    proportional_height: int = Int(1, min=1, max=999)
    fit: str = Choice(("letterbox", "crop", "fill"), "letterbox")
    method: str = Choice(RESAMPLE_METHODS, "lanczos")
    round_to_multiple: str = Choice(("8", "16", "32", "64", "None"), "8")
    outputs = {"image": IMAGE, "mask": MASK, "original_size": BOX, "width": INT, "height": INT}
    length_input = "scale_to_length"  # the input naming a side's length, for errors

    @classmethod
    def target_size(cls, width: int, height: int, widgets: dict) -> tuple[int, int]:
        raise NotImplementedError

    @classmethod
    def estimate(cls, widgets, inputs):
        source = inputs.get("image") or inputs.get("mask")
        try:
            width, height = cls.target_size(source.width, source.height, widgets)
        except (AttributeError, KeyError, TypeError, ValueError, ZeroDivisionError):
            return Estimate(None)
        return Estimate(Size(source.batch, max(height, 1), max(width, 1)))

    def run(self):
        images = list(self.image) if self.image is not None else []
        masks = list(mask_batch(self.mask)) if self.mask is not None else []
        if not images and not masks:
            raise NodeInputError("image", "link an image or a mask (or both) to scale")
        height, width = (images or masks)[0].shape[:2]
        if images and masks and masks[0].shape[:2] != (height, width):
            raise NodeInputError("mask", f"is {masks[0].shape[1]}×{masks[0].shape[0]}, the image {width}×{height}: "
                                         "expected the image's size")
        widgets = {name: getattr(self, name) for name in self.input_specs}
        try:
            target = self.target_size(int(width), int(height), widgets)
        except ZeroDivisionError:
            raise NodeInputError("aspect_ratio", "the ratio makes a side of 0 pixels") from None
        check_made_size(self.length_input, max(len(images), len(masks)), *target, "the scaled size")
        sampler = resample(self.method)
        scaled_images = batch([to_tensor(fit_resize(to_pil(i), *target, self.fit, sampler)) for i in images]) \
            if images else None
        scaled_masks = batch([to_tensor(fit_resize(to_pil(m), *target, self.fit, sampler).convert("L"))
                              for m in masks]) if masks else None
        return scaled_images, scaled_masks, [int(width), int(height)], target[0], target[1]


class LayerUtilityImageScaleByAspectRatioV2(_AspectScale):
    """Scale an image and / or mask to an aspect ratio, as LayerUtility's ImageScaleByAspectRatio V2:
    the ratio is the picture's own ("original"), proportional_width : proportional_height
    ("custom") or a listed one; the longer side keeps its length, or scale_to_side sets the longest
    or shortest side to scale_to_length; both sides are rounded to the nearest round_to_multiple.
    fit: letterbox (fit inside on black), crop (fill and crop the middle) or fill (stretch).
    Gives the original size as a BOX, and the new width and height. An unlinked image or mask
    gives None there, as the pack does."""
    scale_to_side: str = Choice(("None", "longest", "shortest"), "None")
    scale_to_length: int = Int(1024, min=4, max=999999)
    image: IMAGE = None
    mask: MASK = None
    comfy = ComfyAlias(("LayerUtility: ImageScaleByAspectRatio V2",))

    @classmethod
    def target_size(cls, width, height, widgets):
        return aspect_target(width, height, *(widgets[name] for name in (
            "aspect_ratio", "proportional_width", "proportional_height", "round_to_multiple", "scale_to_side",
            "scale_to_length")))


class _ScaleRestore(Node):
    """ImageScaleRestore's inputs both versions share, and its run; `target` is each version's."""
    category = "😺dzNodes/LayerUtility"
    image: IMAGE
    scale: float = Float(1.0, min=0.01, max=100.0, step=0.01)
    method: str = Choice(RESAMPLE_METHODS, "lanczos")
    outputs = {"image": IMAGE, "mask": MASK, "original_size": BOX, "width": INT, "height": INT}
    length_input = "scale_by_length"  # the input naming a side's length, for errors

    def target(self, width: int, height: int) -> tuple[int, int]:
        raise NotImplementedError

    def run(self):
        from PIL import Image
        if self.original_size is not None and (not isinstance(self.original_size, (list, tuple))
                                               or len(self.original_size) < 2):
            raise NodeInputError("original_size", f"expected a BOX [width, height], got {self.original_size!r}")
        masks = layer_masks(self.image, self.mask, False, False)
        height, width = int(self.image.shape[1]), int(self.image.shape[2])
        target = self.target(width, height)
        count = max(len(self.image), len(masks))
        check_made_size("original_size" if self.original_size is not None else self.length_input, count, *target,
                        "the scaled size")
        sampler = resample(self.method)
        images, out_masks = [], []
        for i in range(count):
            picture = to_pil(nth(self.image, i)).convert("RGB").resize(target, sampler)
            # the pack scales a linked mask only; an RGBA image's alpha gives a white mask
            mask = nth(masks, i).resize(target, sampler) if self.mask is not None else Image.new("L", target, "white")
            images.append(to_tensor(picture))
            out_masks.append(to_tensor(mask))
        return batch(images), batch(out_masks), [width, height], target[0], target[1]


class LayerUtilityImageScaleRestoreV2(_ScaleRestore):
    """Scale an image (and mask) as LayerUtility's ImageScaleRestore V2: to original_size where
    linked (to restore a size ImageScaleByAspectRatio or GetImageSize gave), else by scale_by:
    by_scale (× scale), longest / shortest / width / height side to scale_by_length, or
    total_pixel to about scale_by_length thousand pixels; sides at least 4. Without a mask the
    mask is white. Gives the input's size as a BOX, and the new width and height."""
    scale_by: str = Choice(("by_scale", "longest", "shortest", "width", "height", "total_pixel(kilo pixel)"),
                           "by_scale")
    scale_by_length: int = Int(1024, min=4, max=99999999)
    mask: MASK = None
    original_size: BOX = None
    comfy = ComfyAlias(("LayerUtility: ImageScaleRestore V2",))

    def target(self, width: int, height: int) -> tuple[int, int]:
        import math
        if self.original_size is not None:
            return int(self.original_size[0]), int(self.original_size[1])
        length = self.scale_by_length
        if self.scale_by == "total_pixel(kilo pixel)":
            new_width = math.sqrt(width / height * length * 1000)
            target = int(new_width), int(new_width / (width / height))
        elif self.scale_by == "width" or self.scale_by == "longest" and width > height or \
                self.scale_by == "shortest" and width < height:
            target = length, int(length * height / width)
        elif self.scale_by in ("height", "longest", "shortest"):
            target = int(length * width / height), length
        else:
            target = int(width * self.scale), int(height * self.scale)
        return max(target[0], 4), max(target[1], 4)


class LayerUtilityImageScaleRestore(_ScaleRestore):
    """Scale an image (and mask) as LayerUtility's ImageScaleRestore (the first version): to
    original_size where linked, else × scale, or with scale_by_longest_side the longer side to
    longest_side; sides at least 4. Without a mask the mask is white. Gives the input's size as a
    BOX, and the new width and height."""
    scale_by_longest_side: bool = Bool(False)
    longest_side: int = Int(1024, min=4, max=999999)
    mask: MASK = None
    original_size: BOX = None
    comfy = ComfyAlias(("LayerUtility: ImageScaleRestore",))
    length_input = "longest_side"

    def target(self, width: int, height: int) -> tuple[int, int]:
        if self.original_size is not None:
            return int(self.original_size[0]), int(self.original_size[1])
        target = int(width * self.scale), int(height * self.scale)
        if self.scale_by_longest_side:
            length = self.longest_side
            target = (length, int(length * height / width)) if width > height else \
                (int(length * width / height), length)
        return max(target[0], 4), max(target[1], 4)


def mask_area(mask) -> tuple:
    """imagefunc.mask_area: (x, y, width, height) of the pixels above 127 (width and height one
    short of the pixels they span, as the pack counts); (-1, -1, 1, 1) for none."""
    import numpy as np
    ys, xs = np.nonzero(np.asarray(mask) > 127)
    if len(xs) == 0:
        return -1, -1, 1, 1
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min()), int(ys.max() - ys.min())


def min_bounding_rect(mask, blur: bool = True) -> tuple:
    """imagefunc.min_bounding_rect: the bounding box (x, y, width, height) of the largest of OpenCV's
    contours (RETR_LIST, CHAIN_APPROX_SIMPLE) of the mask's pixels above 127; (0, 0, 0, 0) for none.
    CropByMask first blurs the mask as the pack does (mask2image's white-on-black picture, PIL's
    GaussianBlur(20), to grey)."""
    import cv2
    import numpy as np
    from PIL import Image, ImageFilter
    if blur:
        picture = Image.composite(Image.new("RGBA", mask.size, "white"), Image.new("RGBA", mask.size, "black"), mask)
        mask = picture.filter(ImageFilter.GaussianBlur(radius=20)).convert("L")
    _, thresh = cv2.threshold(np.asarray(mask), 127, 255, 0)
    contours, _ = cv2.findContours(thresh, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    best, area = (0, 0, 0, 0), 0
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        if w * h > area:
            best, area = (x, y, w, h), w * h
    return best


def detect_area(mask, detect: str) -> tuple:
    """CropByMask's detect: mask_area or min_bounding_rect; max_inscribed_rect is not built here."""
    if detect == "max_inscribed_rect":
        raise NodeInputError("detect", "max_inscribed_rect is not built here (the pack's search tries every pair "
                                       "of contour points): use mask_area or min_bounding_rect, or link a crop_box")
    return mask_area(mask) if detect == "mask_area" else min_bounding_rect(mask)


class LayerUtilityCropByMaskV2(Node):
    """Crop images to a mask's area, as LayerUtility's CropByMask V2: the box of the (first) mask's
    pixels above half, widened by the four reserves (kept inside the picture), then grown about
    its centre to a multiple of round_to_multiple (it may then reach past the edges: black there);
    or crop_box where linked. Gives the crops, the mask's crop, the box (x1, y1, x2, y2, for
    RestoreCropBox) and a preview (the mask with the found area in red, the box in green).
    detect: mask_area (the pixels above half) or min_bounding_rect (the largest OpenCV contour of
    the mask blurred by 20); max_inscribed_rect is left out and refused."""
    category = "😺dzNodes/LayerUtility"
    image: IMAGE
    mask: MASK
    invert_mask: bool = Bool(False)
    detect: str = Choice(("mask_area", "min_bounding_rect", "max_inscribed_rect"), "mask_area")
    top_reserve: int = Int(20, min=-9999, max=9999)
    bottom_reserve: int = Int(20, min=-9999, max=9999)
    left_reserve: int = Int(20, min=-9999, max=9999)
    right_reserve: int = Int(20, min=-9999, max=9999)
    round_to_multiple: str = Choice(("8", "16", "32", "64", "128", "256", "512", "None"), "8")
    crop_box: BOX = None
    outputs = {"croped_image": IMAGE, "croped_mask": MASK, "crop_box": BOX, "box_preview": IMAGE}
    comfy = ComfyAlias(("LayerUtility: CropByMask V2",))
    picture_mode = "RGB"  # the crops' and the preview's mode (V3, nodes/pack_nodes_layerstyle3.py: RGBA)

    def run(self):
        from PIL import ImageDraw
        mask = mask_batch(self.mask)[0]
        if len(mask_batch(self.mask)) > 1:
            warn(f"{self.comfy.class_types[0].split(': ')[-1]}: several masks given: the first is used, as the pack "
                 "does")
        mask = to_pil(1 - mask if self.invert_mask else mask).convert("L")
        height, width = int(self.image.shape[1]), int(self.image.shape[2])
        preview = mask.convert(self.picture_mode)
        box = self.crop_box
        if box is None:
            x, y, w, h = detect_area(mask, self.detect)
            x1, y1 = max(x - self.left_reserve, 0), max(y - self.top_reserve, 0)
            x2, y2 = min(x + w + self.right_reserve, width), min(y + h + self.bottom_reserve, height)
            if self.round_to_multiple != "None":
                multiple = int(self.round_to_multiple)
                box_width, box_height = round_up_to_multiple(x2 - x1, multiple), round_up_to_multiple(y2 - y1, multiple)
                x1, y1 = x1 - (box_width - (x2 - x1)) // 2, y1 - (box_height - (y2 - y1)) // 2
                x2, y2 = x1 + box_width, y1 + box_height
            box = [x1, y1, x2, y2]
            ImageDraw.Draw(preview).rectangle((x, y, x + w, y + h), outline="#F00000", width=(w + h) // 100)
        elif not isinstance(box, (list, tuple)) or len(box) != 4:
            raise NodeInputError("crop_box", f"expected a BOX [x1, y1, x2, y2], got {box!r}")
        box = [int(v) for v in box]
        if box[2] <= box[0] or box[3] <= box[1]:
            raise NodeInputError("mask" if self.crop_box is None else "crop_box",
                                 f"the crop box {box} is empty: nothing to crop")
        check_made_size("crop_box" if self.crop_box is not None else "mask", len(self.image), box[2] - box[0],
                        box[3] - box[1], "the crop")
        ImageDraw.Draw(preview).rectangle((box[0], box[1], box[2], box[3]), outline="#00F000",
                                          width=(box[2] - box[0] + box[3] - box[1]) // 200)
        crops = [to_tensor(to_pil(i).convert(self.picture_mode).crop(tuple(box))) for i in self.image]
        mask_crop = to_tensor(mask.crop(tuple(box)))
        return batch(crops), mask_crop.expand(len(crops), -1, -1).clone(), box, to_tensor(preview)


class LayerUtilityRestoreCropBox(Node):
    """Paste crops back where CropByMask took them, as LayerUtility's RestoreCropBox: each crop is
    pasted at crop_box through croped_mask (inverted where invert_mask; else the crop's alpha,
    else whole); also gives a mask of the pasted area."""
    category = "😺dzNodes/LayerUtility"
    background_image: IMAGE
    croped_image: IMAGE
    invert_mask: bool = Bool(False)
    crop_box: BOX = None
    croped_mask: MASK = None
    outputs = {"image": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("LayerUtility: RestoreCropBox",))

    def run(self):
        from PIL import Image
        box = self.crop_box
        if not isinstance(box, (list, tuple)) or len(box) != 4:
            raise NodeInputError("crop_box", f"expected a BOX [x1, y1, x2, y2] (CropByMask's), got {box!r}")
        box = tuple(int(v) for v in box)
        masks = layer_masks(self.croped_image, self.croped_mask, self.invert_mask, True)
        images, out_masks = [], []
        for i in range(max(len(self.background_image), len(self.croped_image), len(masks))):
            canvas = to_pil(nth(self.background_image, i)).convert("RGB")
            crop = to_pil(nth(self.croped_image, i)).convert("RGB")
            mask = nth(masks, i)
            if crop.size != (box[2] - box[0], box[3] - box[1]) or mask.size != crop.size:
                raise NodeInputError("croped_image" if crop.size != (box[2] - box[0], box[3] - box[1]) else
                                     "croped_mask", f"the crop is {crop.size[0]}×{crop.size[1]} and its mask "
                                                    f"{mask.size[0]}×{mask.size[1]}; crop_box {list(box)} needs "
                                                    f"{box[2] - box[0]}×{box[3] - box[1]}")
            area = Image.new("L", canvas.size, "black")
            canvas.paste(crop, box=box, mask=mask)
            area.paste(mask, box=box)
            images.append(to_tensor(canvas))
            out_masks.append(to_tensor(area))
        return batch(images), batch(out_masks)


class LayerUtilityExtendCanvasV2(Node):
    """Add (or with negative numbers cut) top / bottom / left / right pixels around an image, as
    LayerUtility's ExtendCanvas V2: the new border is color; the mask (mask, inverted where
    invert_mask; else the image's alpha, else white) is placed likewise on black."""
    category = "😺dzNodes/LayerUtility"
    image: IMAGE
    invert_mask: bool = Bool(True)
    top: int = Int(0, min=-99999, max=99999)
    bottom: int = Int(0, min=-99999, max=99999)
    left: int = Int(0, min=-99999, max=99999)
    right: int = Int(0, min=-99999, max=99999)
    color: str = Text("#000000")
    mask: MASK = None
    outputs = {"image": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("LayerUtility: ExtendCanvasV2",))

    @classmethod
    def estimate(cls, widgets, inputs):
        source = inputs.get("image")
        try:
            width = max(source.width + widgets["left"] + widgets["right"], 1)
            height = max(source.height + widgets["top"] + widgets["bottom"], 1)
        except (AttributeError, KeyError, TypeError):
            return Estimate(None)
        return Estimate(Size(source.batch, height, width))

    def run(self):
        from PIL import Image
        color = pil_color(self.color, "color")
        masks = layer_masks(self.image, self.mask, self.invert_mask, True)
        count = max(len(self.image), len(masks))
        width = max(int(self.image.shape[2]) + self.left + self.right, 1)
        height = max(int(self.image.shape[1]) + self.top + self.bottom, 1)
        check_made_size("left", count, width, height, "the extended canvas")
        images, out_masks = [], []
        for i in range(count):
            canvas, mask_canvas = Image.new("RGB", (width, height), color), Image.new("L", (width, height), "black")
            canvas.paste(to_pil(nth(self.image, i)).convert("RGB"), box=(self.left, self.top))
            mask_canvas.paste(nth(masks, i), box=(self.left, self.top))
            images.append(to_tensor(canvas))
            out_masks.append(to_tensor(mask_canvas))
        return batch(images), batch(out_masks)


class LayerUtilityExtendCanvas(LayerUtilityExtendCanvasV2):
    """Add top / bottom / left / right pixels around an image, as LayerUtility's ExtendCanvas (the
    first version: no negative numbers): the new border is color; the mask (mask, inverted where
    invert_mask; else the image's alpha, else white) is placed likewise on black."""
    top: int = Int(0, min=0, max=99999)
    bottom: int = Int(0, min=0, max=99999)
    left: int = Int(0, min=0, max=99999)
    right: int = Int(0, min=0, max=99999)
    comfy = ComfyAlias(("LayerUtility: ExtendCanvas",))


class LayerUtilityCropByMask(Node):
    """Crop images to a mask's area, as LayerUtility's CropByMask (the first version): the area found
    by detect (min_bounding_rect: the largest OpenCV contour of the mask blurred by 20; mask_area:
    the pixels above half; max_inscribed_rect is left out and refused), its width and height
    rounded to a multiple of 8, widened by the four reserves inside the picture. Gives the crops,
    the mask's crop, the box (x1, y1, x2, y2, for RestoreCropBox) and a preview (the mask with the
    area in red, the box in green)."""
    category = "😺dzNodes/LayerUtility"
    image: IMAGE
    mask_for_crop: MASK
    invert_mask: bool = Bool(False)
    detect: str = Choice(("min_bounding_rect", "max_inscribed_rect", "mask_area"), "min_bounding_rect")
    top_reserve: int = Int(20, min=-9999, max=9999)
    bottom_reserve: int = Int(20, min=-9999, max=9999)
    left_reserve: int = Int(20, min=-9999, max=9999)
    right_reserve: int = Int(20, min=-9999, max=9999)
    outputs = {"croped_image": IMAGE, "croped_mask": MASK, "crop_box": BOX, "box_preview": IMAGE}
    comfy = ComfyAlias(("LayerUtility: CropByMask",))

    def run(self):
        from PIL import ImageDraw
        masks = mask_batch(self.mask_for_crop)
        if len(masks) > 1:
            warn("CropByMask: several masks given: the first is used, as the pack does")
        mask = to_pil(1 - masks[0] if self.invert_mask else masks[0]).convert("L")
        height, width = int(self.image.shape[1]), int(self.image.shape[2])
        x, y, w, h = detect_area(mask, self.detect)
        w, h = round_to_multiple(w, 8), round_to_multiple(h, 8)
        box = [max(x - self.left_reserve, 0), max(y - self.top_reserve, 0),
               min(x + w + self.right_reserve, width), min(y + h + self.bottom_reserve, height)]
        if box[2] <= box[0] or box[3] <= box[1]:
            raise NodeInputError("mask_for_crop", f"the crop box {box} is empty: nothing to crop")
        preview = mask.convert("RGB")
        ImageDraw.Draw(preview).rectangle((x, y, x + w, y + h), outline="#F00000", width=(w + h) // 100)
        ImageDraw.Draw(preview).rectangle(tuple(box), outline="#00F000", width=(w + h) // 200)
        crops = [to_tensor(to_pil(i).convert("RGB").crop(tuple(box))) for i in self.image]
        mask_crop = to_tensor(mask.crop(tuple(box)))
        return batch(crops), mask_crop.expand(len(crops), -1, -1).clone(), box, to_tensor(preview)


def aspect_target_v1(width: int, height: int, aspect_ratio: str, proportional_width: int, proportional_height: int,
                     round_to: str, scale_to_longest_side: bool, longest_side: int) -> tuple[int, int]:
    """The first ImageScaleByAspectRatio's target size: the longer side kept (or set to
    longest_side), the other from the ratio; for a ratio below 1 the height is then the kept one
    and the width follows; both rounded up to round_to."""
    if aspect_ratio == "original":
        ratio = width / height
    elif aspect_ratio == "custom":
        ratio = proportional_width / proportional_height
    else:
        ratio = int(aspect_ratio.split(":")[0]) / int(aspect_ratio.split(":")[1])
    if width > height:
        target_width = longest_side if scale_to_longest_side else width
        target_height = int(target_width / ratio)
    else:
        target_height = longest_side if scale_to_longest_side else height
        target_width = int(target_height * ratio)
    if ratio < 1:
        kept = longest_side if scale_to_longest_side else height
        target_width, target_height = int(target_width * (kept / target_height)), kept
    if round_to != "None":
        target_width = round_up_to_multiple(target_width, int(round_to))
        target_height = round_up_to_multiple(target_height, int(round_to))
    return target_width, target_height


class LayerUtilityImageScaleByAspectRatio(_AspectScale):
    """Scale an image and / or mask to an aspect ratio, as LayerUtility's ImageScaleByAspectRatio
    (the first version): the longer side keeps its length (or with scale_to_longest_side becomes
    longest_side), the other follows the ratio (for ratios below 1 the height is kept); sides
    rounded up to round_to_multiple. fit: letterbox, crop or fill, as V2. Gives the original size
    as a BOX, and the new width and height."""
    proportional_width: int = Int(2, min=1, max=999)
    round_to_multiple: str = Choice(("8", "16", "32", "64", "128", "256", "512", "None"), "8")
    scale_to_longest_side: bool = Bool(False)
    longest_side: int = Int(1024, min=4, max=999999)
    image: IMAGE = None
    mask: MASK = None
    comfy = ComfyAlias(("LayerUtility: ImageScaleByAspectRatio",))
    length_input = "longest_side"

    @classmethod
    def target_size(cls, width, height, widgets):
        return aspect_target_v1(width, height, *(widgets[name] for name in (
            "aspect_ratio", "proportional_width", "proportional_height", "round_to_multiple",
            "scale_to_longest_side", "longest_side")))


def picture_size(value, input_name: str) -> tuple[int, int]:
    """(width, height) of the first picture of an image or mask batch (the pack's size_as / scale_as)."""
    import torch
    if not isinstance(value, torch.Tensor) or value.dim() not in (2, 3, 4) or value.numel() == 0:
        raise NodeInputError(input_name, f"expected an image or a mask, got {type(value).__name__}")
    first = value[0] if value.dim() in (3, 4) else value
    return int(first.shape[1]), int(first.shape[0])


# the pack's built-in size list (its custom_size.ini may add more: not read here)
COLOR_IMAGE_SIZES = ("custom", "1024 x 1024", "768 x 512", "512 x 768", "1280 x 720", "720 x 1280", "1344 x 768",
                     "768 x 1344", "1536 x 640", "640 x 1536")


class LayerUtilityColorImageV2(Node):
    """A picture of one colour, as LayerUtility's ColorImage V2: of the size of size_as (an image or
    mask) where linked, else of the chosen size ("custom": custom_width × custom_height). The
    pack's extra sizes from its custom_size.ini are not known here."""
    category = "😺dzNodes/LayerUtility"
    size: str = Choice(COLOR_IMAGE_SIZES, "custom")
    custom_width: int = Int(512, min=4, max=99999)
    custom_height: int = Int(512, min=4, max=99999)
    color: str = Text("#000000")
    size_as: ANY = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerUtility: ColorImage V2",))

    def run(self):
        from PIL import Image
        if self.size_as is not None:
            width, height = picture_size(self.size_as, "size_as")
        elif self.size == "custom":
            width, height = self.custom_width, self.custom_height
        else:
            width, height = (int(side) for side in self.size.split("x"))
        color = pil_color(self.color, "color")
        check_made_size("custom_width" if self.size == "custom" and self.size_as is None else "size", 1, width,
                        height, "the picture")
        return to_tensor(Image.new("RGB", (width, height), color))


def vertical_gradient(start: tuple, end: tuple, width: int, height: int):
    """imagefunc.create_gradient ("bottom"): row i is int(start × (height - i) / height + end × i /
    height) per channel."""
    import numpy as np
    from PIL import Image
    rows = np.arange(height)[:, None]
    colours = (np.array(start)[None] * (height - rows) / height + np.array(end)[None] * rows / height).astype(int)
    return Image.fromarray(np.repeat(colours[:, None, :], width, axis=1).astype(np.uint8), "RGB")


def gradient(start: str, end: str, width: int, height: int, angle: float, size_input: str = "width"):
    """imagefunc.gradient: a square start colour / gradient / end colour strip, (width + height) / 4
    on a side per part, stretched to a square, turned by angle (PIL's bicubic rotate, expanded, on
    black), its middle 2/3 width × 2/3 height cropped and resized to width × height."""
    from PIL import Image
    start_rgb, end_rgb = hex_rgb(start, "start_color"), hex_rgb(end, "end_color")
    side = int((width + height) / 4)
    check_made_size(size_input, 1, side * 3, side * 3, "the gradient's working square")
    strip = Image.new("RGB", (side, side * 3), start_rgb)
    strip.paste(Image.new("RGB", (side, side), start_rgb), box=(0, 0, side, side))
    strip.paste(vertical_gradient(start_rgb, end_rgb, side, side), box=(0, side, side, side * 2))
    strip.paste(Image.new("RGB", (side, side), end_rgb), box=(0, side * 2, side, side * 3))
    square = strip.resize((side * 3, side * 3))
    if angle not in (0, 360):
        square = square.rotate(angle, Image.BICUBIC, True, fillcolor=(0, 0, 0, 0)).convert("RGB")
    centre = int(square.width / 2)
    half_width, half_height = int(width / 3), int(height / 3)
    middle = square.crop((centre - half_width, centre - half_height, centre + half_width, centre + half_height))
    return middle.resize((width, height))


class LayerUtilityGradientImage(Node):
    """A linear gradient picture from start_color to end_color ('#RRGGBB') turned by angle, as
    LayerUtility's GradientImage (the pack's imagefunc.gradient: a wide start / gradient / end strip
    turned, its middle cropped and resized)."""
    category = "😺dzNodes/LayerUtility"
    width: int = Int(512, min=4, max=99999, resource="width")
    height: int = Int(512, min=4, max=99999, resource="height")
    angle: int = Int(0, min=-360, max=360)
    start_color: str = Text("#FFFFFF")
    end_color: str = Text("#000000")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerUtility: GradientImage",))

    def run(self):
        return to_tensor(gradient(self.start_color, self.end_color, self.width, self.height, self.angle))


class LayerUtilityGradientImageV2(Node):
    """A linear gradient picture as GradientImage, as LayerUtility's GradientImage V2: of the size of
    size_as (an image or mask) where linked, else of the chosen size ("custom": custom_width ×
    custom_height). The pack's extra sizes from its custom_size.ini are not known here."""
    category = "😺dzNodes/LayerUtility"
    size: str = Choice(COLOR_IMAGE_SIZES, "custom")
    custom_width: int = Int(512, min=4, max=99999)
    custom_height: int = Int(512, min=4, max=99999)
    angle: int = Int(0, min=-360, max=360)
    start_color: str = Text("#FFFFFF")
    end_color: str = Text("#000000")
    size_as: ANY = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerUtility: GradientImage V2",))

    def run(self):
        if self.size_as is not None:
            width, height = picture_size(self.size_as, "size_as")
        elif self.size == "custom":
            width, height = self.custom_width, self.custom_height
        else:
            width, height = (int(side) for side in self.size.split("x"))
        check_made_size("custom_width" if self.size == "custom" and self.size_as is None else "size", 1, width,
                        height, "the picture")
        size_input = "custom_width" if self.size == "custom" and self.size_as is None else "size"
        return to_tensor(gradient(self.start_color, self.end_color, width, height, self.angle, size_input))


def rotate_expand(picture, angle: float, supersample: int, method: str):
    """imagefunc's rotate with expansion, as image_rotate_extend_with_alpha uses it: the RGB picture
    turned by angle (none at 0 or 360) on black, growing to hold it; the sampler as `method` names
    (lanczos / bicubic: bicubic turn; hamming / bilinear: bilinear; box / nearest: nearest); with
    supersample > 1 turned at that many times the size and scaled back."""
    from PIL import Image
    picture = picture.convert("RGB")
    if angle in (0, 360):
        return picture
    resize_sampler = resample(method)
    turn_sampler = {"lanczos": Image.BICUBIC, "bicubic": Image.BICUBIC, "hamming": Image.BILINEAR,
                    "bilinear": Image.BILINEAR, "box": Image.NEAREST, "nearest": Image.NEAREST}[method]
    if supersample > 1:
        large = picture.resize((picture.width * supersample, picture.height * supersample), resize_sampler)
        turned = large.rotate(angle, turn_sampler, True, fillcolor=(0, 0, 0, 0))
        return turned.resize((turned.width // supersample, turned.height // supersample), resize_sampler)
    return picture.rotate(angle, turn_sampler, True, fillcolor=(0, 0, 0, 0))


class LayerUtilityImageBlendAdvance(Node):
    """Place a layer on a background and blend it, as LayerUtility's ImageBlendAdvance: the layer and
    its mask (layer_mask, inverted where invert_mask; else its alpha, else whole) mirrored, scaled
    (width × scale, height × scale × aspect_ratio, PIL's default bicubic), turned by rotate
    (transform_method's sampler, anti_aliasing times supersampled) and centred at x_percent /
    y_percent of the background; blended by blend_mode at opacity through the placed mask, which
    is also given."""
    category = "😺dzNodes/LayerUtility"
    background_image: IMAGE
    layer_image: IMAGE
    invert_mask: bool = Bool(True)
    blend_mode: str = Choice(CHOP_MODES, "normal")
    opacity: int = Int(100, min=0, max=100)
    x_percent: float = Float(50.0, min=-999.0, max=999.0, step=0.01)
    y_percent: float = Float(50.0, min=-999.0, max=999.0, step=0.01)
    mirror: str = Choice(("None", "horizontal", "vertical"), "None")
    scale: float = Float(1.0, min=0.01, max=100.0, step=0.01)
    aspect_ratio: float = Float(1.0, min=0.01, max=100.0, step=0.01)
    rotate: float = Float(0.0, min=-999999.0, max=999999.0, step=0.01)
    transform_method: str = Choice(RESAMPLE_METHODS, "lanczos")
    anti_aliasing: int = Int(0, min=0, max=16)
    layer_mask: MASK = None
    outputs = {"image": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("LayerUtility: ImageBlendAdvance",))
    chop = staticmethod(chop_image)  # the V2 classes (nodes/pack_nodes_layerstyle2.py) blend by chop_image_v2

    def run(self):
        return self.blend_all(self.background_image, "RGB", "ImageBlendAdvance")

    def blend_all(self, backgrounds, canvas_mode: str, node: str):
        """Each layer placed and blended on its background (made canvas_mode), as the pack pairs the
        batches: the pictures and the placed masks."""
        from PIL import Image
        masks = layer_masks(self.layer_image, self.layer_mask, self.invert_mask, True)
        images, out_masks = [], []
        for i in range(max(len(backgrounds), len(self.layer_image), len(masks))):
            check_interrupted()
            canvas = to_pil(nth(backgrounds, i)).convert(canvas_mode)
            layer = to_pil(nth(self.layer_image, i))
            mask = fitting_mask(nth(masks, i), layer.size, node).convert("RGB")
            width, height = int(layer.width * self.scale), int(layer.height * self.scale * self.aspect_ratio)
            # the turn may grow both sides to width + height, at anti_aliasing times the size
            side = (width + height) * max(self.anti_aliasing, 1)
            check_made_size("scale", 2, side, side, "the scaled and turned layer")
            if self.mirror != "None":
                flip = Image.FLIP_LEFT_RIGHT if self.mirror == "horizontal" else Image.FLIP_TOP_BOTTOM
                layer, mask = layer.transpose(flip), mask.transpose(flip)
            layer, mask = layer.resize((width, height)), mask.resize((width, height))
            layer = rotate_expand(layer, self.rotate, self.anti_aliasing, self.transform_method)
            mask = rotate_expand(mask, self.rotate, self.anti_aliasing, self.transform_method).convert("L")
            x = int(canvas.width * self.x_percent / 100 - layer.width / 2)
            y = int(canvas.height * self.y_percent / 100 - layer.height / 2)
            placed, placed_mask = canvas.copy(), Image.new("RGB", canvas.size, "black")
            placed.paste(layer, (x, y))
            placed_mask.paste(mask, (x, y))
            placed_mask = placed_mask.convert("L")
            canvas.paste(self.chop(canvas, placed, self.blend_mode, self.opacity), mask=placed_mask)
            images.append(to_tensor(canvas))
            out_masks.append(to_tensor(placed_mask))
        return batch(images), batch(out_masks)


class LayerStyleGradientOverlay(_LayerEffect):
    """A gradient over the layer, as LayerStyle's GradientOverlay: the pack's gradient from start_color
    to end_color at angle (see GradientImage) blended onto the layer by blend_mode at opacity; where
    start_alpha / end_alpha are below 255 the layer shows through by a grey gradient of them; then
    pasted on the background through the layer's mask (layer_mask, else its alpha). No mask: the
    background unchanged."""
    start_color: str = Text("#FFBF30")
    start_alpha: int = Int(255, min=0, max=255)
    end_color: str = Text("#FE0000")
    end_alpha: int = Int(255, min=0, max=255)
    angle: int = Int(0, min=-180, max=180)
    layer_mask: MASK = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerStyle: GradientOverlay",))

    def run(self):
        from PIL import ImageChops
        pictures = self.pictures("GradientOverlay")
        if pictures is None:
            return self.background_image
        width, height = pictures[0][1].size
        ramp = gradient(self.start_color, self.end_color, width, height, float(self.angle))
        greys = ("#%02X%02X%02X" % ((self.start_alpha,) * 3), "#%02X%02X%02X" % ((self.end_alpha,) * 3))
        see_through = ImageChops.invert(gradient(*greys, width, height, float(self.angle))).convert("L")
        out = []
        for canvas, layer, mask in pictures:
            if layer.size != ramp.size:
                raise NodeInputError("layer_image", "the layers of a batch differ in size: the pack makes one "
                                                    "gradient, of the first's size")
            overlay = self.chop(layer, ramp, self.blend_mode, self.opacity)
            if self.start_alpha < 255 or self.end_alpha < 255:
                overlay.paste(layer, mask=see_through)
            canvas.paste(overlay, mask=mask)
            out.append(to_tensor(canvas))
        return batch(out)
