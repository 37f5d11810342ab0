"""chflame163/ComfyUI_LayerStyle's model-free nodes, round 3, under the pack's class names, inputs and outputs:
LayerUtility: TextImage and TextImage V2 (text laid out a character at a time on a canvas), CropBoxResolve,
BatchSelector, CheckMask (+V2), ImageShift, LayerImageTransform, LayerMaskTransform, AnyRerouter, GrayValue, RGB
Value, HSV Value, PurgeVRAM V2, ImageBatchToList, ImageListToBatch, RoundedRectangle, FluxKontextImageScale,
NanoBananaImageScale, HLFrequencyDetailRestore, PrintInfo, TextPreseter, ChoiceTextPreset, ImageHub and CropByMask
V3 (round 1's V2 with RGBA crops); LayerMask: MaskBoxDetect, MaskBoxExtend, ImageToMask, CreateGradientMask,
Shadow & Highlight Mask (+V2), BlendIf Mask and MaskGrain; LayerFilter: SoftLight, GaussianBlurV2 and HalfTone;
LayerStyle: Gradient Map; LayerColor: AutoBrightness, AutoAdjustV2 and Color of Shadow & Highlight.

Read from the pack's py/text_image.py at 17ac6c0b4602a2ab74f4fa12fc378541843a7653, py/text_image_v2.py at
245d3f82c3f74ad0614771d17a4fa26ed91f3d6c, py/mask_box_detect.py and py/crop_box_resolve.py at
17ac6c0b4602a2ab74f4fa12fc378541843a7653, py/batch_selector.py at 1f30a686d5c7d13750d6b9ed541c12bf16ca422f,
py/check_mask_v2.py at 18e21036ef603184025627c0eb5aa393678951e2, py/image_shift.py, py/check_mask.py and
py/any_rerouter.py at 25965f5c0e710750aec73ca92f99ae373dfbb910, py/image_to_mask.py at
a267afb24b80ebd0ff9c3ac4833d3c8285b862da, py/layer_image_transform.py and py/layer_mask_transform.py at
266f8a25367ebb1aa6d64b404835fa7cac2651d0, py/crop_by_mask_v3.py at 17ac6c0b4602a2ab74f4fa12fc378541843a7653,
py/color_correct_auto_adjust_v2.py at 73dfb6d2d60200bc778cf85e4f77bb9ea5dd6984; the classes CreateGradientMask,
ShadowAndHighlightMask, LS_ShadowAndHighlightMaskV2, SoftLight, BlendIfMask, MaskGrain, LS_RoundedRectangle,
LS_FluxKontextImageScale, LS_NanoBananaImageScale, HLFrequencyDetailRestore, PrintInfo, GradientMap, LS_HalfTone
(with create_dot_mask and halftone), AutoBrightness, ColorCorrectShadowAndHighlight, LS_TextPreseter,
LS_ChoiceTextPreset, ImageHub, ColorValuetoGrayValue, ColorValuetoRGBValue, ColorValuetoHSVValue, PurgeVRAM_V2,
LS_GaussianBlurV2, and data_nodes.py's LS_ImageBatchToMultiList and LS_MultiImageListToBatch, as the code index
holds them (by content: the index named no path for these); and py/imagefunc.py (random_numbers, extract_numbers,
Hex_to_RGB, Hex_to_HSV_255level, rgb2gray, mask_white_area, is_valid_mask, shift_image, draw_rect, draw_border,
gaussian_blur, mask2image, image2mask, create_gradient, create_box_gradient, image_channel_split, normalize_gray,
adjust_levels, get_gray_average, calculate_shadow_highlight_level, luminance_keyer, gray_threshold,
remove_background, get_image_bright_average, histogram_range, histogram_equalization, image_gray_offset,
image_hue_offset, draw_rounded_rectangle, expand_mask, chop_image_v2) as the code index holds it. The pack's class
list is its NODE_CLASS_MAPPINGS as a ComfyUI registry lists them.

The pack's slips and quirks, one policy: where an output is plainly a slip (a value in another's place, as
MaskBoxExtend's crop_box repeating y1 for x1; a choice that reaches none of its branches, as ImageToMask's
"S(HSV") ours gives what was meant and the node's help says how the pack differs; where a rule is odd but
coherent (MaskBoxDetect's crop_box: the found box's size at the moved corner) ours keeps it, as for every
value the pack computes. Where the pack fails with a bare exception, ours refuses naming the input.

Where the pack draws from Python's global random state (TextImage's ±offsets, after its random_numbers has seeded
that state with variation_seed), ours draws the same numbers from a random.Random(variation_seed) of its own, so a
run repeats and matches the pack's; the pack's default seed is the clock, ours 0. Where the pack's draws are
unseeded (HalfTone's jitter, MaskGrain's dissolve, ImageHub's random_output), ours come from a fixed seed, so a
run repeats.

The pack's other model-free classes are round 4's (nodes/pack_nodes_layerstyle4.py, whose docstring lists what is
not yet built, as graphflow/comfy_format.py's LAYERSTYLE_LATER does). The classes left out for good (the model
classes: Segformer, RemBgUltra, VQA; MaskEdgeUltraDetail's matting) are listed, with why, in its
LAYERSTYLE_LEFT_OUT."""

from __future__ import annotations

from functools import lru_cache

from graphflow.api import ANY, BOOLEAN, FLOAT, IMAGE, INT, MASK, STRING, Bool, Choice, ComfyAlias, Float, Int, ListOf, \
    Node, NodeInputError, Text, check_interrupted, socket_type
from nodes.pack_nodes_essentials_misc import drawn_within_pillows_limit, font_choices, font_file
from nodes.pack_nodes_layerstyle import BOX, RESAMPLE_METHODS, LayerUtilityCropByMaskV2, batch, check_made_size, \
    detect_area, hex_rgb, layer_masks, mask_batch, min_bounding_rect, nth, picture_size, pil_color, rotate_expand, \
    shift_image, to_pil, to_tensor

COMFY_PACK = "ComfyUI_LayerStyle"  # the custom node pack this module's ComfyUI classes come from

# -- TextImage (V2) ------------------------------------------------------------------------------------------


def variations(count: int, spread: int, draw) -> list[int]:
    """imagefunc.random_numbers(count, spread, seed, 0) with `draw` newly seeded: count - 1 whole numbers
    in -spread/2..spread/2 (floored) less their floored mean, then half (floored) of what makes the sum 0."""
    numbers = [draw.randint(-spread // 2, spread // 2) for _ in range(count - 1)]
    mean = sum(numbers) // count
    shifted = [n - mean for n in numbers]
    return [*shifted, -sum(shifted) // 2]


class _TextImage(Node):
    """Shared inputs and drawing of TextImage and its V2."""
    category = "😺dzNodes/LayerUtility"
    text: str = Text("Text", multiline=True)
    font_file: str = Choice(font_choices, if_empty="put .ttf / .otf font files in models/fonts")
    spacing: int = Int(0, min=-9999, max=9999)
    leading: int = Int(0, min=-9999, max=9999)
    horizontal_border: float = Float(5.0, min=-100.0, max=100.0, step=0.1)
    vertical_border: float = Float(5.0, min=-100.0, max=100.0, step=0.1)
    scale: float = Float(80.0, min=0.1, max=999.0, step=0.01)
    variation_range: int = Int(0, min=0, max=100)
    variation_seed: int = Int(0, min=0, max=999999999999)
    layout: str = Choice(("horizontal", "vertical"), "horizontal")
    width: int = Int(512, min=4, max=999999, resource="width")
    height: int = Int(512, min=4, max=999999, resource="height")
    text_color: str = Text("#FFA000")
    background_color: str = Text("#FFFFFF")
    size_as: ANY = None
    outputs = {"image": IMAGE, "mask": MASK}

    def lines(self) -> tuple[list[str], int]:
        """The text's lines (an empty one as a space, which the longest line does not count) and the
        longest line's length."""
        lines = [line or " " for line in self.text.split("\n")]
        longest = max(len(line) for line in self.text.split("\n"))
        if longest == 0:
            raise NodeInputError("text", "holds no characters: expected some text to lay out (the pack divides "
                                         "by the longest line's length)")
        return lines, longest

    def placements(self, lines: list[str], longest: int, width: int, height: int):
        """(character, (x, y), font size) for each character, in the pack's layout."""
        raise NotImplementedError

    def line_draws(self, line: str, spread: int):
        """The pack's draws for one line: its size variations, then an x and a y coin per character
        (the pack's global random state, seeded again for each line)."""
        import random
        draw = random.Random(self.variation_seed)
        sizes = variations(len(line), spread, draw)
        return sizes, [(draw.random() > 0.5, draw.random() > 0.5) for _ in line]

    def run(self):
        import numpy as np
        import torch
        from PIL import Image, ImageDraw, ImageFont
        text_color = pil_color(self.text_color, "text_color")
        background = pil_color(self.background_color, "background_color")
        width, height = self.width, self.height
        if self.size_as is not None:
            width, height = picture_size(self.size_as, "size_as")
        check_made_size("size_as" if self.size_as is not None else "width", 1, width, height, "the text picture")
        lines, longest = self.lines()
        try:
            path = font_file(self.font_file, 12, basic_layout=False).path
        except NodeInputError as e:
            raise NodeInputError("font_file", str(e)) from None
        fonts = {}
        mask = Image.new("RGB", (width, height), "black")
        draw = ImageDraw.Draw(mask)
        for character, xy, size in self.placements(lines, longest, width, height):
            check_interrupted()
            if size not in fonts:
                try:
                    fonts[size] = ImageFont.truetype(path, size)
                except OSError as e:
                    raise NodeInputError("scale", f"the font at size {size:,} fails to load ({e}): expected a "
                                                  "smaller scale or a smaller picture") from None
            with drawn_within_pillows_limit("scale", f"a character at font size {size:,} is larger than Pillow "
                                                     "draws: expected a smaller scale"):
                draw.text(xy, character, font=fonts[size], fill="white")
        coverage = mask.convert("L")
        canvas = Image.new("RGB", (width, height), background[:3])
        canvas.paste(Image.new("RGB", (width, height), text_color[:3]), mask=coverage)
        canvas.putalpha(coverage)
        return to_tensor(canvas), torch.from_numpy(np.asarray(mask)[..., 0].astype(np.float32) / 255.0)[None]


class LayerUtilityTextImage(_TextImage):
    """Text laid out a character at a time, as LayerUtility's TextImage: the character size is the
    picture's width over the longest line's length or its height over the line count, whichever is
    smaller (for vertical, the width over the lines and the height over the longest line); each
    character drawn at that size plus a variation times scale / 100 (at least 4 pixels), the lines
    starting horizontal_border % from the left (vertical: from the right, columns right to left)
    and vertical_border % from the top. Characters advance by size plus variation plus spacing ×
    scale / 100; line i + 1 moves on by leading × scale / 100 × (i + 1) plus the size, as the pack
    steps. variation_range (0..100) varies the sizes by up to ±size × range / 50 and nudges each
    character by a third of its offset left or right, up or down: drawn from variation_seed as the
    pack draws them (the same per line), so a run repeats (the pack's default seed is the clock,
    ours 0). Gives the text in text_color on background_color as RGBA (the text's coverage as the
    alpha) and the coverage as the mask; with size_as, its size. The pack has no rotation. Fonts
    are the .ttf / .otf files of models/fonts. Text with no characters is refused (the pack
    divides by zero); a character larger than Pillow draws is refused naming scale."""
    comfy = ComfyAlias(("LayerUtility: TextImage",))

    def placements(self, lines, longest, width, height):
        scale = self.scale / 100
        vertical = self.layout == "vertical"
        across, down = (len(lines), longest) if vertical else (longest, len(lines))
        size = max(min(width // across, height // down), 1)
        spacing, leading = int(self.spacing * scale), int(self.leading * scale)
        start_x = width - int(width * self.horizontal_border / 100) - size if vertical \
            else int(width * self.horizontal_border / 100)
        start_y = int(height * self.vertical_border / 100)
        for i, line in enumerate(lines):
            x, y = start_x, start_y
            sizes, coins = self.line_draws(line, int(size * self.variation_range / 25))
            for character, change, (right, down_) in zip(line, sizes, coins):
                offset = int(int((size + change) * self.variation_range / 250) * scale)
                font_size = max(int((size + change) * scale), 4)
                yield character, (x + offset // 3 if right else x - offset // 3,
                                  y + offset // 3 if down_ else y - offset // 3), font_size
                if vertical:
                    y += size + change + spacing
                else:
                    x += size + change + spacing
            if vertical:
                start_x -= leading * (i + 1) + size
            else:
                start_y += leading * (i + 1) + size


class LayerUtilityTextImageV2(_TextImage):
    """Text laid out a character at a time, as LayerUtility's TextImage V2: as TextImage, but scale
    applies to the character size itself (so positions scale too), and the block of text (its
    longest line by its lines, spacing and leading between) is placed horizontal_border % of the
    free width from the left and vertical_border % of the free height from the top (50 / 50
    centres it), less the pack's correction for non-square pictures (the size × height / width
    less the size). Vertical lines also start there and step leftwards. Sizes vary by up to ±size
    × variation_range / 50 (at least 4 pixels), each character nudged by a third of its offset:
    drawn from variation_seed as the pack draws them, so a run repeats (the pack's default seed is
    the clock, ours 0). Gives RGBA text in text_color on background_color (the coverage as the
    alpha) and the coverage as the mask; with size_as, its size. Fonts are the .ttf / .otf files
    of models/fonts. Text with no characters is refused (the pack divides by zero)."""
    comfy = ComfyAlias(("LayerUtility: TextImage V2",))

    def placements(self, lines, longest, width, height):
        vertical = self.layout == "vertical"
        across, down = (len(lines), longest) if vertical else (longest, len(lines))
        size = int(min(width // across, height // down) * self.scale / 100)
        size_h = int(size / width * height)
        spacing, leading = int(self.spacing * self.scale / 100), int(self.leading * self.scale / 100)
        text_width = size * longest + spacing * (longest - 1)
        text_height = size * len(lines) + leading * (len(lines) - 1)
        start_x = int((width - text_width) * self.horizontal_border / 100)
        start_y = int((height - text_height) * self.vertical_border / 100 - (size_h - size))
        for i, line in enumerate(lines):
            x, y = start_x, start_y
            sizes, coins = self.line_draws(line, int(size * self.variation_range / 25))
            for character, change, (right, down_) in zip(line, sizes, coins):
                offset = int((size + change) * self.variation_range / 250)
                yield character, (x + offset // 3 if right else x - offset // 3,
                                  y + offset // 3 if down_ else y - offset // 3), max(size + change, 4)
                if vertical:
                    y += size + change + spacing
                else:
                    x += size + change + spacing
            if vertical:
                start_x -= leading * (i + 1) + size
            else:
                start_y += leading * (i + 1) + size


# -- boxes ---------------------------------------------------------------------------------------------------


def box_values(box, input_name: str) -> tuple[int, int, int, int]:
    """A BOX [x1, y1, x2, y2] as whole numbers, a clear error otherwise."""
    try:
        x1, y1, x2, y2 = (int(v) for v in box)
    except (TypeError, ValueError):
        raise NodeInputError(input_name, f"expected a BOX [x1, y1, x2, y2], got {box!r}") from None
    return x1, y1, x2, y2


class LayerMaskMaskBoxDetect(Node):
    """The box of a mask's area, as LayerMask's MaskBoxDetect: the (first) mask, blurred as the pack
    blurs it (white on black, PIL's GaussianBlur(5)), gives the box of its pixels above half
    (mask_area) or of its largest OpenCV contour (min_bounding_rect); max_inscribed_rect is not
    built and is refused. scale_adjust grows the box about its centre, then x_adjust / y_adjust move
    it. Gives a preview (the mask, the found box in red, the moved one in green), the moved box's
    centre in percent of the picture, its width, height and corner, and a crop_box [x, y, x +
    width, y + height] of the found width and height at the moved corner (as the pack gives it)."""
    category = "😺dzNodes/LayerMask"
    mask: MASK
    detect: str = Choice(("min_bounding_rect", "max_inscribed_rect", "mask_area"), "min_bounding_rect")
    x_adjust: int = Int(0, min=-9999, max=9999)
    y_adjust: int = Int(0, min=-9999, max=9999)
    scale_adjust: float = Float(1.0, min=0.01, max=100.0, step=0.01)
    outputs = {"box_preview": IMAGE, "x_percent": FLOAT, "y_percent": FLOAT, "width": INT, "height": INT,
               "x": INT, "y": INT, "crop_box": BOX}
    comfy = ComfyAlias(("LayerMask: MaskBoxDetect",))

    def run(self):
        from PIL import Image, ImageDraw, ImageFilter
        mask = to_pil(mask_batch(self.mask)[0])
        white = Image.composite(Image.new("RGBA", mask.size, "white"), Image.new("RGBA", mask.size, "black"), mask)
        blurred = white.convert("RGB").filter(ImageFilter.GaussianBlur(radius=5)).convert("L")
        x, y, width, height = min_bounding_rect(blurred, blur=False) if self.detect == "min_bounding_rect" \
            else detect_area(blurred, self.detect)
        grown_width, grown_height = width, height
        if self.scale_adjust != 1.0:
            grown_width, grown_height = int(width * self.scale_adjust), int(height * self.scale_adjust)
            x, y = x - int((grown_width - width) / 2), y - int((grown_height - height) / 2)
        x, y = x + self.x_adjust, y + self.y_adjust
        x_percent = (x + grown_width / 2) / mask.width * 100
        y_percent = (y + grown_height / 2) / mask.height * 100
        preview = mask.convert("RGB")
        draw = ImageDraw.Draw(preview)
        found = (x - self.x_adjust, y - self.y_adjust, "#F00000", preview.height // 60)
        for left, top, line_color, line_width in (found, (x, y, "#00F000", preview.height // 40)):
            draw.rectangle((left, top, left + width, top + height), outline=line_color, width=line_width)
        return (to_tensor(preview), round(x_percent, 2), round(y_percent, 2), grown_width, grown_height, x, y,
                [x, y, x + width, y + height])


class LayerMaskMaskBoxExtend(Node):
    """A crop box widened by percents of its own size, as LayerMask's MaskBoxExtend: top / bottem
    (the pack's spelling) by percent of its height, left / right of its width (negative narrows).
    Gives a mask of the mask's size, white inside the new box (clipped to the picture), the box's
    centre in percent of the picture, its width, height and corner, and the new box [x1, y1, x2,
    y2]. The pack's crop_box output repeats y1 in place of x1 (a slip): here it is x1."""
    category = "😺dzNodes/LayerMask"
    mask: MASK
    crop_box: BOX
    top_extend: float = Float(10.0, min=-9999.0, max=9999.0, step=0.1)
    bottem_extend: float = Float(10.0, min=-9999.0, max=9999.0, step=0.1)
    left_extend: float = Float(10.0, min=-9999.0, max=9999.0, step=0.1)
    right_extend: float = Float(10.0, min=-9999.0, max=9999.0, step=0.1)
    outputs = {"mask": MASK, "x_percent": FLOAT, "y_percent": FLOAT, "width": INT, "height": INT, "x": INT,
               "y": INT, "crop_box": BOX}
    comfy = ComfyAlias(("LayerMask: MaskBoxExtend",))

    def run(self):
        import torch
        x1, y1, x2, y2 = box_values(self.crop_box, "crop_box")
        height, width = mask_batch(self.mask).shape[-2:]
        box_width, box_height = x2 - x1, y2 - y1
        x1 -= int(self.left_extend * box_width / 100)
        x2 += int(self.right_extend * box_width / 100)
        y1 -= int(self.top_extend * box_height / 100)
        y2 += int(self.bottem_extend * box_height / 100)
        out = torch.zeros((1, height, width))
        left, right = max(0, min(width, x1)), max(0, min(width, x2))
        top, bottom = max(0, min(height, y1)), max(0, min(height, y2))
        if right > left and bottom > top:
            out[0, top:bottom, left:right] = 1.0
        x_percent = (x1 + (x2 - x1) / 2) / width * 100
        y_percent = (y1 + (y2 - y1) / 2) / height * 100
        return out, round(x_percent, 2), round(y_percent, 2), x2 - x1, y2 - y1, x1, y1, [x1, y1, x2, y2]


class LayerUtilityCropBoxResolve(Node):
    """A crop box [x1, y1, x2, y2] as its corner and size, as LayerUtility's CropBoxResolve."""
    category = "😺dzNodes/LayerUtility"
    crop_box: BOX
    outputs = {"x": INT, "y": INT, "width": INT, "height": INT}
    comfy = ComfyAlias(("LayerUtility: CropBoxResolve",))

    def run(self):
        x1, y1, x2, y2 = box_values(self.crop_box, "crop_box")
        return x1, y1, x2 - x1, y2 - y1


# -- batches and checks --------------------------------------------------------------------------------------


class LayerUtilityBatchSelector(Node):
    """Pick items of an image and a mask batch, as LayerUtility's BatchSelector: select lists the
    indices (every run of digits in it, so "0, 2" and "0 2" alike; signs are not read), an index past
    the end giving the last item (each index a copy: a selection larger than memory holds is refused
    naming select). Without a batch, or with no index, a 64 × 64 transparent image and a black mask."""
    category = "😺dzNodes/LayerUtility/SystemIO"
    select: str = Text("0,")
    images: IMAGE = None
    masks: MASK = None
    outputs = {"image": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("LayerUtility: BatchSelector",))

    def run(self):
        import re
        import torch
        indices = [int(digits) for digits in re.findall(r"\d+", self.select)]
        picked = []
        for items in (self.images, None if self.masks is None else mask_batch(self.masks)):
            if items is None or len(items) == 0 or not indices:
                picked.append(None)
                continue
            # each index copies an item: "0 0 0 ..." may ask for far more than the batch holds
            check_made_size("select", len(indices), items.shape[2], items.shape[1], "the picked items")
            picked.append(items[[min(i, len(items) - 1) for i in indices]])
        image = picked[0] if picked[0] is not None else torch.zeros((1, 64, 64, 4))
        mask = picked[1] if picked[1] is not None else torch.zeros((1, 64, 64))
        return image, mask


class LayerUtilityCheckMaskV2(Node):
    """Whether a mask holds anything, as LayerUtility's CheckMaskV2, of the batch's first mask:
    simple: any pixel not 0; detect_percent: whether more than area_percent % of its pixels are
    above white_point (0..255; a mask over 512 × 512 pixels is first scaled to 512 wide, Lanczos,
    as the pack counts)."""
    category = "😺dzNodes/LayerUtility"
    mask: MASK
    method: str = Choice(("simple", "detect_percent"), "simple")
    white_point: int = Int(1, min=1, max=254)
    area_percent: float = Float(0.01, min=0.0, max=100.0, step=0.01)
    outputs = {"bool": BOOLEAN}
    comfy = ComfyAlias(("LayerUtility: CheckMaskV2",))

    def run(self):
        mask = mask_batch(self.mask)[0]
        if self.method == "simple":
            return bool((mask != 0).any())
        return white_area_above(mask, self.white_point, self.area_percent)


# -- ImageShift ----------------------------------------------------------------------------------------------


class LayerUtilityImageShift(Node):
    """Shift images, as LayerUtility's ImageShift: each moved by shift_x, shift_y (wrapping round where
    cyclic, for seamless textures; else background_color where nothing arrives). Gives the shifted
    images, the shifted mask (the given mask batch's last mask, as the pack takes it; else each
    image's alpha, else white) and a border mask: a border_mask_width white frame (drawn outside a
    black picture and scaled back to its size, as the pack draws it) shifted the same way and
    blurred by border_mask_blur: where the seams of a cyclic shift lie."""
    category = "😺dzNodes/LayerUtility"
    image: IMAGE
    shift_x: int = Int(256, min=-9999, max=9999)
    shift_y: int = Int(256, min=-9999, max=9999)
    cyclic: bool = Bool(True)
    background_color: str = Text("#000000")
    border_mask_width: int = Int(20, min=0, max=999)
    border_mask_blur: int = Int(12, min=0, max=999)
    mask: MASK = None
    outputs = {"image": IMAGE, "mask": MASK, "border_mask": MASK}
    comfy = ComfyAlias(("LayerUtility: ImageShift",))

    def run(self):
        import torch
        from PIL import Image, ImageFilter, ImageOps
        fill = pil_color(self.background_color, "background_color")[:3]
        if self.mask is not None:
            last_mask = to_pil(mask_batch(self.mask)[-1])
        else:
            last = to_pil(self.image[-1])
            last_mask = last.split()[-1] if last.mode == "RGBA" else Image.new("L", last.size, "white")
        images, masks, borders = [], [], []
        for picture in self.image:
            check_interrupted()
            canvas = to_pil(picture).convert("RGB")
            if last_mask.size != canvas.size:
                raise NodeInputError("mask", f"is {last_mask.width}×{last_mask.height}, the image "
                                             f"{canvas.width}×{canvas.height}: expected the image's size")
            border = ImageOps.expand(Image.new("L", canvas.size, "black"), border=self.border_mask_width,
                                     fill="#FFFFFF").resize(canvas.size)
            images.append(to_tensor(shift_image(canvas, self.shift_x, self.shift_y, self.cyclic, fill)))
            masks.append(to_tensor(shift_image(last_mask.convert("L"), self.shift_x, self.shift_y, self.cyclic)))
            border = shift_image(border, self.shift_x, self.shift_y, self.cyclic)
            border = border.filter(ImageFilter.GaussianBlur(radius=self.border_mask_blur))
            borders.append(to_tensor(border))
        return batch(images), torch.cat(masks), torch.cat(borders)


# -- colour values -------------------------------------------------------------------------------------------


def color_rgb(value, input_name: str) -> tuple[int, int, int]:
    """The pack's colour value: a '#RRGGBB' / '#RGB' text (imagefunc.Hex_to_RGB, its stray lengths refused) or
    an (R, G, B) tuple or list of 0..255 numbers (ColorPicker's and others' outputs)."""
    if isinstance(value, str):
        return hex_rgb(value, input_name)
    if isinstance(value, (tuple, list)) and len(value) >= 3 and all(isinstance(v, (int, float)) for v in value[:3]):
        rgb = int(value[0]), int(value[1]), int(value[2])
        if not all(0 <= v <= 255 for v in rgb):
            raise NodeInputError(input_name, f"{rgb} is not a colour: expected R, G, B in 0..255")
        return rgb
    raise NodeInputError(input_name, f"expected a colour ('#RRGGBB' or an (R, G, B) tuple), got {value!r}")


class LayerUtilityGrayValue(Node):
    """The grey level of a colour, as LayerUtility's GrayValue: (299 R + 587 G + 114 B) / 1000, whole
    (0..255), and that over 2.55, whole (0..100). color_value is '#RRGGBB' / '#RGB' text or (R, G, B)
    numbers of 0..255 (the pack reads only hex text: a tuple fails there); hex of other lengths is
    refused (the pack reads its extra digits into blue)."""
    category = "😺dzNodes/LayerUtility/Data"
    color_value: ANY
    outputs = {"gray(256_level)": INT, "gray(100_level)": INT}
    comfy = ComfyAlias(("LayerUtility: GrayValue",))

    def run(self):
        r, g, b = color_rgb(self.color_value, "color_value")
        gray = int((r * 299 + g * 587 + b * 114) / 1000)
        return gray, int(gray / 2.55)


class LayerUtilityRGBValue(Node):
    """A colour's red, green and blue values (0..255), as LayerUtility's RGB Value: color_value is
    '#RRGGBB' / '#RGB' text or an (R, G, B) tuple of 0..255. Anything else is refused (the pack logs an
    error and gives 0, 0, 0; hex of other lengths it reads with the extra digits in blue)."""
    category = "😺dzNodes/LayerUtility/Data"
    color_value: ANY
    outputs = {"R": INT, "G": INT, "B": INT}
    comfy = ComfyAlias(("LayerUtility: RGB Value",))

    def run(self):
        return color_rgb(self.color_value, "color_value")


class LayerUtilityCheckMask(Node):
    """Whether a mask holds enough, as LayerUtility's CheckMask: whether more than area_percent % of the
    batch's first mask's pixels are above white_point (0..255; a mask over 512 × 512 pixels is first
    scaled to 512 wide, Lanczos, as the pack counts)."""
    category = "😺dzNodes/LayerUtility"
    mask: MASK
    white_point: int = Int(1, min=1, max=254)
    area_percent: int = Int(1, min=1, max=99)
    outputs = {"bool": BOOLEAN}
    comfy = ComfyAlias(("LayerUtility: CheckMask",))

    def run(self):
        return white_area_above(mask_batch(self.mask)[0], self.white_point, self.area_percent)


def white_area_above(mask, white_point: int, percent: float) -> bool:
    """CheckMask's test (imagefunc.mask_white_area): more than `percent` % of the mask's 8-bit pixels
    above white_point, a mask over 512 × 512 first scaled to 512 wide (Lanczos)."""
    import numpy as np
    from PIL import Image
    picture = to_pil(mask)
    if picture.width * picture.height > 262144:
        # a very wide mask keeps a row (the pack's resize to 0 rows fails); a very tall one grows long
        size = (512, max(1, int(512 * picture.height / picture.width)))
        check_made_size("mask", 1, *size, "the mask scaled to 512 wide")
        picture = picture.resize(size, Image.LANCZOS)
    return bool(float(np.mean(np.asarray(picture) > white_point)) * 100 > percent)


class LayerUtilityAnyRerouter(Node):
    """Pass any value on unchanged, as LayerUtility's AnyRerouter (a tidy link point)."""
    category = "😺dzNodes/LayerUtility/Data"
    any: ANY
    outputs = {"any": ANY}
    comfy = ComfyAlias(("LayerUtility: AnyRerouter",))

    def run(self):
        return self.any


# -- ImageToMask ---------------------------------------------------------------------------------------------

# the pack's channel list, its "S(HSV" (sic) kept as the name saves carry
MASK_CHANNELS = ("L(LAB)", "A(Lab)", "B(Lab)", "R(RGB)", "G(RGB)", "B(RGB)", "alpha", "Y(YUV)", "U(YUV)", "V(YUV)",
                 "H(HSV)", "S(HSV", "V(HSV)")
# each channel's (PIL mode, band)
CHANNEL_BANDS = {"L(LAB)": ("LAB", 0), "A(Lab)": ("LAB", 1), "B(Lab)": ("LAB", 2), "R(RGB)": ("RGBA", 0),
                 "G(RGB)": ("RGBA", 1), "B(RGB)": ("RGBA", 2), "alpha": ("RGBA", 3), "Y(YUV)": ("YCbCr", 0),
                 "U(YUV)": ("YCbCr", 1), "V(YUV)": ("YCbCr", 2), "H(HSV)": ("HSV", 0), "S(HSV": ("HSV", 1),
                 "V(HSV)": ("HSV", 2)}


class LayerMaskImageToMask(Node):
    """A mask from one channel of an image, as LayerMask's ImageToMask: the channel (LAB, RGB, alpha,
    YUV as PIL's YCbCr, HSV) stretched between its first and last well-used levels (normalize_gray),
    then levels: black_point..white_point to 0..255 with gray_point as the midtones' gamma (above 1
    lightens); inverted where invert_output_mask; then kept only where the image's mask is (mask,
    its item or its last; else the image's alpha, else everywhere). The pack's "S(HSV" choice (sic)
    matches none of its branches (it then levels an empty black picture); here it gives the HSV
    saturation."""
    category = "😺dzNodes/LayerMask"
    image: IMAGE
    channel: str = Choice(MASK_CHANNELS, "L(LAB)")
    black_point: int = Int(0, min=0, max=255, display="slider")
    white_point: int = Int(255, min=0, max=255, display="slider")
    gray_point: float = Float(1.0, min=0.01, max=9.99, step=0.01)
    invert_output_mask: bool = Bool(False)
    mask: MASK = None
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("LayerMask: ImageToMask",))

    def run(self):
        import numpy as np
        import torch
        from PIL import Image, ImageChops
        from nodes.pack_nodes_layerstyle_more import adjust_levels, normalize_gray
        given = None if self.mask is None else [to_pil(m) for m in mask_batch(self.mask)]
        mode, band = CHANNEL_BANDS[self.channel]
        out = []
        for i, item in enumerate(self.image):
            check_interrupted()
            picture = to_pil(item)
            if given is not None:
                keep = given[min(i, len(given) - 1)]
            else:
                keep = picture.split()[-1] if picture.mode == "RGBA" else Image.new("L", picture.size, "white")
            if keep.size != picture.size:
                raise NodeInputError("mask", f"is {keep.width}×{keep.height}, the image {picture.width}×"
                                             f"{picture.height}: expected the image's size")
            rgba = picture.convert("RGBA")
            channel = (rgba if mode == "RGBA" else rgba.convert(mode)).split()[band]
            with np.errstate(divide="ignore", invalid="ignore"):
                levels = normalize_gray(channel)
            levels = Image.fromarray(adjust_levels(np.asarray(levels), self.black_point, self.white_point,
                                                   self.gray_point, 0, 255))
            if self.invert_output_mask:
                levels = ImageChops.invert(levels)
            result = Image.new("L", picture.size, "black")
            result.paste(levels, mask=keep)
            out.append(to_tensor(result))
        return torch.cat(out)


# -- LayerImageTransform / LayerMaskTransform ----------------------------------------------------------------


class _LayerTransform(Node):
    """Shared placing of LayerImageTransform and LayerMaskTransform (each declares its inputs: the
    picture comes first)."""
    category = "😺dzNodes/LayerUtility"

    def transformed(self, picture):
        """`picture` mirrored, scaled (PIL's default resampling, as the pack), turned (rotate_expand) and
        pasted centred, moved by x, y, on a black canvas of its own size."""
        from PIL import Image
        width, height = int(picture.width * self.scale), int(picture.height * self.scale * self.aspect_ratio)
        if self.rotate in (0, 360):  # no turn: the scaled picture itself (rotate_expand skips the supersampling)
            check_made_size("scale", 2, max(width, 1), max(height, 1), "the scaled picture")
        else:  # the turn may grow both sides to width + height, at anti_aliasing times the size
            side = (width + height) * max(self.anti_aliasing, 1)
            check_made_size("scale", 2, max(side, 1), max(side, 1), "the scaled and turned picture")
        if width < 1 or height < 1:
            raise NodeInputError("scale", f"scales the {picture.width}×{picture.height} picture to {width}×{height}: "
                                          "nothing left (the pack fails there too)")
        if self.mirror != "None":
            picture = picture.transpose(Image.FLIP_LEFT_RIGHT if self.mirror == "horizontal" else Image.FLIP_TOP_BOTTOM)
        mode = picture.mode
        turned = rotate_expand(picture.resize((width, height)), self.rotate, self.anti_aliasing,
                               self.transform_method).convert(mode)
        canvas = Image.new(mode, picture.size, "black")
        canvas.paste(turned, ((picture.width - turned.width) // 2 + self.x,
                              (picture.height - turned.height) // 2 + self.y))
        return canvas


class LayerUtilityLayerImageTransform(_LayerTransform):
    """Move, mirror, scale and turn images within their frame, as LayerUtility's LayerImageTransform:
    each mirrored, scaled to width × scale by height × scale × aspect_ratio (PIL's default bicubic),
    turned by rotate degrees (transform_method's sampler, anti_aliasing times supersampled; growing
    to hold it), and pasted centred, moved by x, y, on black of the image's own size. An RGBA
    image's alpha goes the same way and stays its alpha."""
    image: IMAGE
    x: int = Int(0, min=-99999, max=99999)
    y: int = Int(0, min=-99999, max=99999)
    mirror: str = Choice(("None", "horizontal", "vertical"), "None")
    scale: float = Float(1.0, min=0.01, max=100.0, step=0.01)
    aspect_ratio: float = Float(1.0, min=0.01, max=100.0, step=0.01)
    rotate: float = Float(0.0, min=-999999.0, max=999999.0, step=0.01)
    transform_method: str = Choice(RESAMPLE_METHODS, "lanczos")
    anti_aliasing: int = Int(2, min=0, max=16)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerUtility: LayerImageTransform",))

    def run(self):
        out = []
        for item in self.image:
            check_interrupted()
            picture = to_pil(item)
            placed = self.transformed(picture.convert("RGB"))
            if picture.mode == "RGBA":
                placed.putalpha(self.transformed(picture.split()[-1]))
            out.append(to_tensor(placed))
        return batch(out)


class LayerUtilityLayerMaskTransform(_LayerTransform):
    """Move, mirror, scale and turn masks within their frame, as LayerUtility's LayerMaskTransform:
    as LayerImageTransform, black where nothing lands."""
    mask: MASK
    x: int = Int(0, min=-99999, max=99999)
    y: int = Int(0, min=-99999, max=99999)
    mirror: str = Choice(("None", "horizontal", "vertical"), "None")
    scale: float = Float(1.0, min=0.01, max=100.0, step=0.01)
    aspect_ratio: float = Float(1.0, min=0.01, max=100.0, step=0.01)
    rotate: float = Float(0.0, min=-999999.0, max=999999.0, step=0.01)
    transform_method: str = Choice(RESAMPLE_METHODS, "lanczos")
    anti_aliasing: int = Int(2, min=0, max=16)
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("LayerUtility: LayerMaskTransform",))

    def run(self):
        import torch
        out = []
        for item in mask_batch(self.mask):
            check_interrupted()
            out.append(to_tensor(self.transformed(to_pil(item).convert("L"))))
        return torch.cat(out)


class LayerUtilityHSVValue(Node):
    """A colour's hue, saturation and value on 0..255 scales, as LayerUtility's HSV Value: Python's
    colorsys HSV of the colour, each times 255, whole. color_value is '#RRGGBB' / '#RGB' text or an
    (R, G, B) tuple of 0..255 numbers; anything else is refused (the pack logs an error and gives 0,
    0, 0)."""
    category = "😺dzNodes/LayerUtility/Data"
    color_value: ANY
    outputs = {"H": INT, "S": INT, "V": INT}
    comfy = ComfyAlias(("LayerUtility: HSV Value",))

    def run(self):
        import colorsys
        rgb = color_rgb(self.color_value, "color_value")
        return tuple(int(v * 255) for v in colorsys.rgb_to_hsv(*(v / 255.0 for v in rgb)))


# -- GaussianBlurV2, PurgeVRAM V2 ----------------------------------------------------------------------------


class LayerFilterGaussianBlurV2(Node):
    """PIL's Gaussian blur of radius blur (to a hundredth), as LayerFilter's GaussianBlurV2 (the result is
    RGB); blur 0 gives the images back unchanged."""
    category = "😺dzNodes/LayerFilter"
    image: IMAGE
    blur: float = Float(20.0, min=0.0, max=1000.0, step=0.05)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerFilter: GaussianBlurV2",))

    def run(self):
        from PIL import ImageFilter
        if not self.blur:
            return self.image
        return batch([to_tensor(to_pil(i).convert("RGB").filter(ImageFilter.GaussianBlur(radius=self.blur)))
                      for i in self.image])


class LayerUtilityPurgeVRAMV2(Node):
    """Free memory and pass a value on, as LayerUtility's PurgeVRAM V2: with purge_models the models
    graphflow's memory manager holds on the GPU and not in use move to the CPU's RAM; then Python's
    garbage is collected and the GPU's cache emptied; `anything` is given on, so later nodes can wait
    for the purge. purge_cache (ComfyUI's output cache) has nothing to do here: graphflow's cache of
    node outputs is left alone during a run."""
    category = "😺dzNodes/LayerUtility/SystemIO"
    output_node = True
    anything: ANY
    purge_cache: bool = Bool(True)
    purge_models: bool = Bool(True)
    outputs = {"any": ANY}
    comfy = ComfyAlias(("LayerUtility: PurgeVRAM V2",))

    def run(self):
        from graphflow.api import free_memory, offload_idle_models
        if self.purge_models:
            offload_idle_models()
        free_memory()
        return self.anything


# -- CreateGradientMask --------------------------------------------------------------------------------------


def edge_gradient(width: int, height: int, direction: str):
    """imagefunc.create_gradient from white to black as an L picture: "bottom" white at the top row down
    to black, "top" the reverse, "right" white at the left column, "left" the reverse; each line
    int(255 × its distance from the end / the side's length)."""
    import numpy as np
    from PIL import Image
    length = height if direction in ("bottom", "top") else width
    steps = np.arange(length)
    values = (255 * (length - steps) / length + 0 * steps / length).astype(int)
    if direction in ("top", "left"):
        values = (0 * (length - steps) / length + 255 * steps / length).astype(int)
    lines = values[:, None] if direction in ("bottom", "top") else values[None, :]
    return Image.fromarray(np.broadcast_to(lines, (height, width)).astype(np.uint8), "L")


def box_gradient(width: int, height: int, scale: int):
    """imagefunc.create_box_gradient from black at the border to white inside, as an L picture: step =
    min side × scale (1..100) / 200 nested rectangles, the i-th int(255 × i / step), white within."""
    from PIL import Image, ImageDraw
    scale = min(max(scale, 1), 100)
    picture = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(picture)
    step = int(min(width, height) * scale / 100 / 2)
    for i in range(step):
        draw.rectangle((i, i, width - i, height - i), fill=int(0 * (step - i) / step + 255 * i / step))
    draw.rectangle((step, step, width - step, height - step), fill=255)
    return picture


class LayerMaskCreateGradientMask(Node):
    """A gradient mask, as LayerMask's CreateGradientMask: white fading to black toward gradient_side
    (bottom: white at the top, black at the bottom; top, left, right alike) across gradient_scale % of
    the picture from the far side, moved by gradient_offset pixels (the part it uncovers white); or, for
    center, a soft white rectangle fading to black at the edges (the pack's nested rectangles, blurred
    by (width + height) × gradient_scale / 1600, cropped to where its 0.15 gamma is above half, scaled
    back; a gradient_offset shrinks it by that many pixels about the centre). opacity scales it toward
    black. With size_as (an image or mask), its first picture's size. An edge gradient_scale that leaves
    the ramp no pixels is refused, naming the smallest that gives one (the pack fails there)."""
    category = "😺dzNodes/LayerMask"
    width: int = Int(512, min=4, max=99999, resource="width")
    height: int = Int(512, min=4, max=99999, resource="height")
    gradient_side: str = Choice(("bottom", "top", "left", "right", "center"), "bottom")
    gradient_scale: int = Int(100, min=1, max=9999)
    gradient_offset: int = Int(0, min=-9999, max=9999)
    opacity: int = Int(100, min=0, max=100)
    size_as: ANY = None
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("LayerMask: CreateGradientMask",))

    def run(self):
        from PIL import Image
        width, height = self.width, self.height
        if self.size_as is not None:
            width, height = picture_size(self.size_as, "size_as")
        side, scale, offset = self.gradient_side, self.gradient_scale, self.gradient_offset
        across = height if side in ("bottom", "top") else width
        length = int(across * scale / 100)  # the edge ramp's length, stretched along its own side only
        if side != "center" and length < 1:
            raise NodeInputError("gradient_scale", f"{scale} % of the {across}-pixel {side} gradient is no pixels: "
                                                   f"expected at least {-(-100 // across)}")
        if side == "center":  # the centre's working picture is twice each side
            made = (width * 2, height * 2)
        else:
            made = (width, max(height, length)) if side in ("bottom", "top") else (max(width, length), height)
        check_made_size("size_as" if self.size_as is not None else "width", 2, *made, "the gradient")
        black, white = Image.new("L", (width, height), 0), Image.new("L", (width, height), 255)
        canvas = black.copy()
        if side in ("bottom", "top"):
            ramp = edge_gradient(width, height, side)
            if scale != 100:
                ramp = ramp.resize((width, length))
            canvas.paste(ramp, (0, offset if side == "bottom" else height - length + offset))
            if (side == "bottom" and offset > height) or (side == "top" and offset < -height):
                canvas = white
            elif side == "bottom" and offset > 0:
                canvas.paste(white, (0, offset - height))
            elif side == "top" and offset < 0:
                canvas.paste(white, (0, height + offset))
        elif side in ("left", "right"):
            ramp = edge_gradient(width, height, side)
            if scale != 100:
                ramp = ramp.resize((length, height))
            canvas.paste(ramp, (width - length + offset if side == "left" else offset, 0))
            if (side == "right" and offset > width) or (side == "left" and offset < -width):
                canvas = white
            elif side == "right" and offset > 0:
                canvas.paste(white, (offset - width, 0))
            elif side == "left" and offset < 0:
                canvas.paste(white, (width + offset, 0))
        else:
            soft, corner = self.soft_box(width, height), (0, 0)
            if offset:
                box_width, box_height = max(width - offset, 1), max(height - offset, 1)
                soft = soft.resize((box_width, box_height), Image.BILINEAR)
                corner = (int((width - box_width) / 2), int((height - box_height) / 2))
            canvas.paste(soft, corner)
        if self.opacity == 0:
            canvas = black
        elif self.opacity < 100:
            canvas = Image.blend(canvas, black, 1.0 - self.opacity / 100)
        return to_tensor(canvas)

    def soft_box(self, width: int, height: int):
        """The centre gradient before its offset: the box gradient on black twice the size, blurred,
        cropped to where its 0.15 gamma is above half (mask_area), scaled back (bilinear)."""
        from PIL import Image, ImageFilter
        from nodes.pack_nodes_layerstyle import mask_area
        from nodes.pack_nodes_layerstyle2 import gamma_table
        large = Image.new("L", (width * 2, height * 2), 0)
        large.paste(box_gradient(width, height, self.gradient_scale), (int(width / 2), int(height / 2)))
        large = large.filter(ImageFilter.GaussianBlur(radius=int((width + height) * self.gradient_scale / 100 / 16)))
        x, y, found_width, found_height = mask_area(large.point(list(gamma_table(0.15))))
        return large.crop((x, y, x + found_width, y + found_height)).resize((width, height), Image.BILINEAR)


# -- Shadow & Highlight Mask (+V2) ---------------------------------------------------------------------------


def with_masks(pictures: list, masks: list):
    """(picture, mask) pairs as the pack walks an image batch and its masks (round 1's layer_masks): as
    many as the longer list, the shorter giving its last; a mask of another size refused naming mask."""
    for i in range(max(len(pictures), len(masks))):
        check_interrupted()
        picture, mask = nth(pictures, i), nth(masks, i)
        if mask.size != picture.size:
            raise NodeInputError("mask", f"is {mask.width}×{mask.height}, the image {picture.width}×"
                                         f"{picture.height}: expected the image's size")
        yield picture, mask


def luminance_key(picture, low: float, high: float):
    """imagefunc.luminance_keyer (gamma 1): the picture's luminance (0.2126 R + 0.7152 G + 0.0722 B, torch
    float32) mapped low..high to 0..1 (a step above high where they are equal), clamped, at 8 bits."""
    import numpy as np
    from PIL import Image
    rgb = to_tensor(picture.convert("RGB"))[0]
    luminance = 0.2126 * rgb[..., 0] + 0.7152 * rgb[..., 1] + 0.0722 * rgb[..., 2]
    key = (luminance > high).to(rgb.dtype) if low == high else (luminance - low) / (high - low)
    return Image.fromarray(np.clip(255.0 * key.clamp(0, 1).numpy(), 0, 255).astype(np.uint8), "L")


def key_ends(picture, mask, shadow: tuple, highlight: tuple):
    """The luminance-key ends ((low, high) for the shadows, then the highlights) of the pack's shadow /
    highlight nodes: from the mean HSV value g where the mask is above 16 (get_gray_average), the shadow
    level 100 g³/255³ + 32 (1 - g³/255³) and the highlight level with squares, each moved by its offset
    (percent) and spread by its range either way, ends kept in 0.01..0.99. None where the mask holds
    nothing above 16 (the pack's mean is NaN there, which keys nothing)."""
    import numpy as np
    inside = np.asarray(mask) > 16
    if not inside.any():
        return None
    gray = np.asarray(picture.convert("HSV"))[..., 2][inside].mean()
    shadow_ratio, highlight_ratio = gray ** 3 / 255 ** 3, gray ** 2 / 255 ** 2
    levels = (shadow_ratio * 100 + (1 - shadow_ratio) * 32, highlight_ratio * 100 + (1 - highlight_ratio) * 32)
    ends = []
    for level, (offset, spread), sign in zip(levels, (shadow, highlight), (1, -1)):
        low = min(max((level + offset) / 100 + sign * spread / 2, 0.01), 0.99)
        high = min(max((level + offset) / 100 - sign * spread / 2, 0.01), 0.99)
        ends.append((low, high))
    return ends


class LayerMaskShadowAndHighlightMask(Node):
    """Masks of an image's shadows and highlights, as LayerMask's Shadow & Highlight Mask: from the mean
    HSV value g of the image where its mask is above 16 (mask, its item or its last; else the image's
    alpha, else everywhere), the shadow level is 100 g³/255³ + 32 (1 - g³/255³) and the highlight level
    the same with squares; the shadow mask rises from 0 at (level + offset) / 100 + range / 2 to 1 at
    (level + offset) / 100 - range / 2 of the luminance (0.2126 R + 0.7152 G + 0.0722 B), the highlight
    mask from - range / 2 to + range / 2 (ends kept in 0.01..0.99); both black outside the mask (a mask
    with nothing above 16 gives black, as the pack's empty mean does)."""
    category = "😺dzNodes/LayerMask"
    image: IMAGE
    shadow_level_offset: int = Int(0, min=-99, max=99)
    shadow_range: float = Float(0.25, min=0.01, max=0.99, step=0.01)
    highlight_level_offset: int = Int(0, min=-99, max=99)
    highlight_range: float = Float(0.25, min=0.01, max=0.99, step=0.01)
    mask: MASK = None
    outputs = {"shadow_mask": MASK, "highlight_mask": MASK}
    comfy = ComfyAlias(("LayerMask: Shadow & Highlight Mask",))

    def run(self):
        import torch
        from PIL import Image, ImageChops
        shadows, highlights = [], []
        masks = layer_masks(self.image, self.mask, False, True)
        for picture, mask in with_masks([to_pil(i) for i in self.image], masks):
            picture = picture.convert("RGB")
            black = Image.new("L", picture.size, "black")
            ends = key_ends(picture, mask, (self.shadow_level_offset, self.shadow_range),
                            (self.highlight_level_offset, self.highlight_range))
            if ends is None:
                shadows.append(to_tensor(black))
                highlights.append(to_tensor(black))
                continue
            outside = ImageChops.invert(mask)
            for out, (low, high) in zip((shadows, highlights), ends):
                keyed = luminance_key(picture, low, high)
                keyed.paste(black, mask=outside)
                out.append(to_tensor(keyed))
        return torch.cat(shadows), torch.cat(highlights)


class LayerMaskShadowHighlightMaskV2(LayerMaskShadowAndHighlightMask):
    """LayerMask's ShadowHighlightMaskV2: the same as Shadow & Highlight Mask (the pack renamed the class
    without the "&")."""
    comfy = ComfyAlias(("LayerMask: ShadowHighlightMaskV2",))


# -- SoftLight -----------------------------------------------------------------------------------------------


def gray_threshold(picture, thresh: int = 127, otsu: bool = False):
    """imagefunc.gray_threshold: OpenCV's grey of the picture, Otsu's binary threshold where otsu, else
    zeroed at and below thresh (THRESH_TOZERO)."""
    import cv2
    import numpy as np
    from PIL import Image
    gray = cv2.cvtColor(np.asarray(picture.convert("RGB")), cv2.COLOR_RGB2GRAY)
    if otsu:
        _, out = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    else:
        _, out = cv2.threshold(gray, thresh, 255, cv2.THRESH_TOZERO)
    return Image.fromarray(out, "L")


class LayerFilterSoftLight(Node):
    """A soft glow on the lights, as LayerFilter's SoftLight: the picture blurred by soft (PIL's Gaussian
    blur) is screened onto it at opacity, twice, and that pasted back through the picture's lights (its
    grey above the mean brightness of its Otsu-bright part plus threshold, zeroed below) blurred by
    (width + height) / 100 × soft, then through its highlights (above half way from there to white, plus
    half the threshold) blurred by half that. A picture black throughout is refused (the pack divides by
    zero there)."""
    category = "😺dzNodes/LayerFilter"
    image: IMAGE
    soft: float = Float(1.0, min=0.2, max=10.0, step=0.01)
    threshold: int = Int(-10, min=-255, max=255)
    opacity: int = Int(100, min=0, max=100)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerFilter: SoftLight",))

    def run(self):
        import numpy as np
        from PIL import Image, ImageFilter
        from nodes.pack_nodes_layerstyle import chop_image
        out = []
        for item in self.image:
            check_interrupted()
            canvas = to_pil(item).convert("RGB")
            blur = int((canvas.width + canvas.height) / 200 * self.soft)
            bright = Image.new("RGB", canvas.size, "#000000")
            bright.paste(canvas, mask=gray_threshold(canvas, otsu=True))
            levels = np.asarray(bright.convert("L"))
            lit = levels[levels > 1]
            if lit.size == 0:
                raise NodeInputError("image", "is black throughout: SoftLight has no lights to soften (the pack "
                                              "divides by zero there)")
            average = int(int(lit.sum(dtype=np.int64)) / lit.size)
            light_mask = gray_threshold(canvas, average + self.threshold)
            highlight_mask = gray_threshold(canvas, average + (255 - average) // 2 + self.threshold // 2)
            blurred = canvas.filter(ImageFilter.GaussianBlur(radius=self.soft)).convert("RGB")
            light = chop_image(canvas, blurred, "screen", self.opacity)
            highlight = chop_image(light, blurred, "screen", self.opacity)
            canvas.paste(highlight, mask=light_mask.filter(ImageFilter.GaussianBlur(radius=blur * 2)))
            canvas.paste(highlight, mask=highlight_mask.filter(ImageFilter.GaussianBlur(radius=blur)))
            out.append(to_tensor(canvas))
        return batch(out)


# -- image lists ---------------------------------------------------------------------------------------------


class LayerUtilityImageBatchToList(Node):
    """A batch of images cut into a list of smaller batches of batch_size (the last may be shorter), as
    LayerUtility's ImageBatchToList: what follows runs once per part."""
    category = "😺dzNodes/LayerUtility/Data"
    image: IMAGE
    batch_size: int = Int(6, min=1, max=64)
    outputs = {"image": ListOf(IMAGE)}
    comfy = ComfyAlias(("LayerUtility: ImageBatchToList",))

    def run(self):
        return [self.image[i:i + self.batch_size] for i in range(0, len(self.image), self.batch_size)]


class LayerUtilityImageListToBatch(Node):
    """A list of image batches joined into one batch, as LayerUtility's ImageListToBatch: each batch of
    another size than the first's scaled to it (ComfyUI's bicubic common_upscale, centre-cropped to its
    aspect, as the pack does)."""
    category = "😺dzNodes/LayerUtility/Data"
    input_is_list = True
    image: IMAGE
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerUtility: ImageListToBatch",))

    def run(self):
        import torch
        from nodes.image import _resize_image
        if not self.image:
            raise NodeInputError("image", "the list is empty: expected at least one image batch")
        first = self.image[0]
        height, width, channels = first.shape[1:]
        check_made_size("image", sum(len(p) for p in self.image), width, height, "the joined batch")
        parts = []
        for part in self.image:
            if part.shape[-1] != channels:
                raise NodeInputError("image", f"a batch of {part.shape[-1]} channels follows one of {channels}: "
                                              "expected the same channels throughout")
            if part.shape[1:3] != first.shape[1:3]:
                part = _resize_image(part, width, height, "bicubic", crop=True)
            parts.append(part.to(first.dtype))
        return torch.cat(parts)


# -- BlendIf Mask --------------------------------------------------------------------------------------------


def blend_if_range(levels, black_point: int, black_range: int, white_point: int, white_range: int):
    """imagefunc.histogram_range on 8-bit levels: white between the points, falling to black below
    black_point over black_range and above white_point over white_range (each ramp int((v - low) /
    range × 255)); the pack's limits on the points and ranges applied first."""
    import numpy as np
    black_point, white_point = min(black_point, 254), max(white_point, 1)
    black_range, white_range = min(black_range, 255 - black_point), min(white_range, white_point)
    if black_point == white_point:
        return np.full(levels.shape, 255, np.uint8)
    v = levels.astype(np.int64)
    upper = np.full(levels.shape, 255, np.int64)
    if white_point < 255 or white_range > 0:
        low = white_point - white_range
        ramp = ((v - low) / max(white_range, 1) * 255).astype(np.int64)
        upper = np.where(v > white_point, 0, np.where(v > low, 255 - ramp, 255))
    lower = np.full(levels.shape, 255, np.int64)
    if black_point > 0 or black_range > 0:
        ramp = ((v - black_point) / max(black_range, 1) * 255).astype(np.int64)
        lower = np.where(v < black_point, 0, np.where(v < black_point + black_range, ramp, 255))
    return np.minimum(upper, lower).astype(np.uint8)


class LayerMaskBlendIfMask(Node):
    """A mask of the image's levels between two points, as LayerMask's BlendIf Mask (Photoshop's Blend If):
    of its grey, red, green or blue, white from black_point to white_point, fading to black over
    black_range below and white_range above; kept only inside the mask (mask, inverted where
    invert_mask, as the pack's default does; else the image's alpha, else everywhere)."""
    category = "😺dzNodes/LayerMask"
    image: IMAGE
    invert_mask: bool = Bool(True)
    blend_if: str = Choice(("gray", "red", "green", "blue"), "gray")
    black_point: int = Int(0, min=0, max=254, display="slider")
    black_range: int = Int(0, min=0, max=255)
    white_point: int = Int(255, min=1, max=255, display="slider")
    white_range: int = Int(0, min=0, max=255)
    mask: MASK = None
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("LayerMask: BlendIf Mask",))

    def run(self):
        import numpy as np
        import torch
        from PIL import Image, ImageChops
        out = []
        masks = layer_masks(self.image, self.mask, self.invert_mask, True)
        for picture, mask in with_masks([to_pil(i) for i in self.image], masks):
            picture = picture.convert("RGB")
            channel = picture.convert("L") if self.blend_if == "gray" else \
                picture.split()[("red", "green", "blue").index(self.blend_if)]
            kept = Image.fromarray(blend_if_range(np.asarray(channel), self.black_point, self.black_range,
                                                  self.white_point, self.white_range), "L")
            kept.paste(Image.new("L", picture.size, "black"), mask=ImageChops.invert(mask))
            out.append(to_tensor(kept))
        return torch.cat(out)


# -- MaskGrain, RoundedRectangle -----------------------------------------------------------------------------


class LayerMaskMaskGrain(Node):
    """A grainy edge on masks, as LayerMask's MaskGrain: the mask (inverted where invert_mask) grown by
    grain and blurred by 2 × grain is dissolved at 50 % onto black (each pixel, the grown mask being an
    opaque layer, keeps its level with probability one half whatever that level, else black), then the
    mask shrunk by grain and blurred by grain is pasted in white over it. The pack's dissolve draws from
    numpy's unseeded generator; ours from a fixed seed (round 2's dissolve), so a run repeats. grain 0
    gives the (inverted) mask at 8 bits."""
    category = "😺dzNodes/LayerMask"
    mask: MASK
    grain: int = Int(6, min=0, max=127)
    invert_mask: bool = Bool(False)
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("LayerMask: MaskGrain",))

    def run(self):
        import torch
        from PIL import Image
        from nodes.pack_nodes_layerstyle import expand_mask
        from nodes.pack_nodes_layerstyle2 import BLEND_COPIES, chop_image_v2
        out = []
        for item in mask_batch(self.mask):
            check_interrupted()
            mask = to_pil(1 - item if self.invert_mask else item).convert("L")
            if self.grain:
                check_made_size("mask", BLEND_COPIES, mask.width, mask.height, "the dissolve blend")
                inner = expand_mask(mask, -self.grain, self.grain)
                outer = expand_mask(mask, self.grain, self.grain * 2)
                mask = chop_image_v2(Image.new("L", mask.size, "black"), outer, "dissolve", 50, "mask").convert("L")
                mask.paste(Image.new("L", mask.size, "white"), mask=inner)
            out.append(to_tensor(mask))
        return torch.cat(out)


def rounded_rectangle_mask(size: tuple[int, int], radius: int, box: tuple, supersample: int):
    """imagefunc.draw_rounded_rectangle on black: the box drawn white with corners of radius × its shorter
    side / 200, at supersample (at least 1) times the size, smoothed (PIL's SMOOTH_MORE) and scaled back
    (Lanczos)."""
    from PIL import Image, ImageDraw, ImageFilter
    factor = max(supersample, 1)
    picture = Image.new("L", size, "black").resize((size[0] * factor, size[1] * factor), Image.LANCZOS)
    x1, y1, x2, y2 = box
    corner = radius * min(x2 - x1, y2 - y1) * 0.005
    ImageDraw.Draw(picture).rounded_rectangle([x1 * factor, y1 * factor, x2 * factor, y2 * factor],
                                              radius=corner * factor, fill="white")
    return picture.filter(ImageFilter.SMOOTH_MORE).resize(size, Image.LANCZOS)


class LayerUtilityRoundedRectangle(Node):
    """Cut images to a rounded rectangle, as LayerUtility's RoundedRectangle: the rectangle is top /
    bottom / left / right percent in from the edges; or crop_box, widened by the obj_ext_* percents of
    its size; or the box of object_mask (mask_area: its pixels above half; min_bounding_rect: the largest
    contour of it blurred by 20; max_inscribed_rect is not built and is refused), widened alike. Corners
    round by rounded_rect_radius % of half the shorter side (100: an ellipse), drawn at anti_aliasing
    times the size. Gives the image with the rectangle as its alpha (RGBA) and the rectangle as a
    mask."""
    category = "😺dzNodes/LayerUtility"
    image: IMAGE
    rounded_rect_radius: int = Int(50, min=0, max=100)
    anti_aliasing: int = Int(2, min=0, max=16)
    top: float = Float(8.0, min=-100.0, max=100.0, step=0.1)
    bottom: float = Float(8.0, min=-100.0, max=100.0, step=0.1)
    left: float = Float(8.0, min=-100.0, max=100.0, step=0.1)
    right: float = Float(8.0, min=-100.0, max=100.0, step=0.1)
    detect: str = Choice(("mask_area", "min_bounding_rect", "max_inscribed_rect"), "mask_area")
    obj_ext_top: float = Float(8.0, min=-100.0, max=100.0, step=0.1)
    obj_ext_bottom: float = Float(8.0, min=-100.0, max=100.0, step=0.1)
    obj_ext_left: float = Float(8.0, min=-100.0, max=100.0, step=0.1)
    obj_ext_right: float = Float(8.0, min=-100.0, max=100.0, step=0.1)
    object_mask: MASK = None
    crop_box: BOX = None
    outputs = {"image": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("LayerUtility: RoundedRectangle",))

    def widened(self, x: int, y: int, width: int, height: int) -> tuple:
        """The box (x1, y1, x2, y2) of x, y, width, height widened by the obj_ext_* percents of its size."""
        return (x - int(self.obj_ext_left * width * 0.01), y - int(self.obj_ext_top * height * 0.01),
                x + width + int(self.obj_ext_right * width * 0.01),
                y + height + int(self.obj_ext_bottom * height * 0.01))

    def run(self):
        import torch
        from nodes.pack_nodes_layerstyle import mask_area
        images, masks = [], []
        object_masks = None if self.object_mask is None else mask_batch(self.object_mask)
        for index, item in enumerate(self.image):
            check_interrupted()
            picture = to_pil(item).convert("RGB")
            width, height = picture.size
            check_made_size("anti_aliasing", 1, width * max(self.anti_aliasing, 1),
                            height * max(self.anti_aliasing, 1), "the supersampled rectangle")
            if self.crop_box is not None:
                x1, y1, x2, y2 = box_values(self.crop_box, "crop_box")
                if x2 < x1 or y2 < y1:
                    raise NodeInputError("crop_box", f"{[x1, y1, x2, y2]} is turned inside out: expected x1 <= x2 "
                                                     "and y1 <= y2")
                box = self.widened(x1, y1, x2 - x1, y2 - y1)
            elif object_masks is not None:
                mask = to_pil(object_masks[min(index, len(object_masks) - 1)])
                if self.detect == "mask_area":
                    box = self.widened(*mask_area(mask))
                else:
                    box = self.widened(*(min_bounding_rect(mask) if self.detect == "min_bounding_rect"
                                         else detect_area(mask, self.detect)))
            else:
                box = (int(self.left * width * 0.01), int(self.top * height * 0.01),
                       width - int(self.right * width * 0.01), height - int(self.bottom * height * 0.01))
            if box[2] < box[0] or box[3] < box[1]:
                across = box[2] < box[0]
                prefix = "" if self.crop_box is None and object_masks is None else "obj_ext_"
                first, second = ("left", "right") if across else ("top", "bottom")
                raise NodeInputError(prefix + first, f"with {prefix + second}, the rectangle {box} is turned inside "
                                                     f"out: expected {'x1 <= x2' if across else 'y1 <= y2'}")
            rectangle = rounded_rectangle_mask(picture.size, self.rounded_rect_radius, box, self.anti_aliasing)
            picture.putalpha(rectangle)
            images.append(to_tensor(picture))
            masks.append(to_tensor(rectangle))
        return batch(images), torch.cat(masks)


# -- FluxKontextImageScale, PrintInfo ------------------------------------------------------------------------


# the pack's PREFERED_BANANA_RESOLUTIONS; a tie in aspect goes to the smaller width, then height (the pack's
# min over (distance, width, height) tuples, as ours)
BANANA_RESOLUTIONS = ((1024, 1024), (1184, 864), (864, 1184), (832, 1248), (1248, 832), (768, 1344), (1344, 768))


class LayerUtilityFluxKontextImageScale(Node):
    """Scale images to the FLUX Kontext size nearest their aspect ratio, as LayerUtility's
    FluxKontextImageScale: of the preferred Kontext sizes (672 × 1568 ... 1568 × 672, as ComfyUI's own
    FluxKontextImageScale lists them) the one whose width / height is closest to the batch's; each image
    stretched to it (RGB) by method's PIL sampler."""
    category = "😺dzNodes/LayerUtility"
    image: IMAGE
    method: str = Choice(RESAMPLE_METHODS, "lanczos")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerUtility: FluxKontextImageScale",))

    def sizes(self) -> tuple:
        from nodes.flow import KONTEXT_RESOLUTIONS
        return KONTEXT_RESOLUTIONS

    def run(self):
        from nodes.pack_nodes_layerstyle import resample
        height, width = self.image.shape[1:3]
        _, target_width, target_height = min((abs(width / height - w / h), w, h) for w, h in self.sizes())
        check_made_size("image", len(self.image), target_width, target_height, "the scaled batch")
        return batch([to_tensor(to_pil(i).convert("RGB").resize((target_width, target_height), resample(self.method)))
                      for i in self.image])


class LayerUtilityNanoBananaImageScale(LayerUtilityFluxKontextImageScale):
    """Scale images to the Nano Banana (Gemini image) size nearest their aspect ratio, as LayerUtility's
    NanoBananaImageScale: of 1024 × 1024, 1184 × 864, 864 × 1184, 832 × 1248, 1248 × 832, 768 × 1344 and
    1344 × 768 the one whose width / height is closest to the batch's; each image stretched to it (RGB) by
    method's PIL sampler."""
    comfy = ComfyAlias(("LayerUtility: NanoBananaImageScale",))

    def sizes(self) -> tuple:
        return BANANA_RESOLUTIONS


def picture_info(item) -> str:
    """What the pack's tensor2pil makes of one item of a batch: its size and mode, by its shape."""
    shape = tuple(s for s in item.shape if s != 1) if item.dim() > 2 else tuple(item.shape)
    modes = {1: "L", 3: "RGB", 4: "RGBA", 2: "LA"}
    if len(shape) == 2:
        return f"Image.size = ({shape[1]}, {shape[0]}), Image.mode = L"
    if len(shape) == 3 and shape[-1] in modes:
        return f"Image.size = ({shape[1]}, {shape[0]}), Image.mode = {modes[shape[-1]]}"
    return "Image.size = ?, Image.mode = ? (not a picture)"


class LayerUtilityPrintInfo(Node):
    """A text describing any value, as LayerUtility's PrintInfo (also written to the log): its Python type;
    for a tensor its dimensions and, per item of its first dimension, the picture size and mode it makes
    and its shape (a 0-dimensional tensor: its value); else the value as JSON, or as Python prints it."""
    category = "😺dzNodes/LayerUtility/Data"
    output_node = True
    anything: ANY
    outputs = {"text": STRING}
    comfy = ComfyAlias(("LayerUtility: PrintInfo",))

    def run(self):
        import json
        import logging
        import torch
        value = f"PrintInfo:\nInput type = {type(self.anything)}"
        if isinstance(self.anything, torch.Tensor) and self.anything.dim() == 0:  # no items (the pack fails)
            value += f"\n Input dim = 0, shape = (), value = {self.anything.item()} \n"
        elif isinstance(self.anything, torch.Tensor):
            value += f"\n Input dim = {self.anything.dim()}, shape[0] = {self.anything.shape[0]} \n"
            for i, item in enumerate(self.anything):
                value += f"\n index {i}: {picture_info(item)}, dim = {item.dim()}, "
                value += "".join(f"shape[{j}] = {item.shape[j]}, " for j in range(item.dim()))
        elif self.anything is not None:
            try:
                value += json.dumps(self.anything) + "\n"
            except (TypeError, ValueError):
                value += str(self.anything) + "\n"
        else:
            value = "source does not exist."
        logging.getLogger(__name__).info(value)
        return value


# -- HLFrequencyDetailRestore --------------------------------------------------------------------------------


class LayerUtilityHLFrequencyDetailRestore(Node):
    """Put a detail image's fine detail back on an image, as LayerUtility's HLFrequencyDetailRestore: the
    detail's high frequencies (its inverse blended at 50 % with its blur by keep_high_freq, inverted
    again) laid by linear light onto the image (blurred by erase_low_freq, where above 0); the image
    itself kept outside the mask (mask, its item or last; else the detail image's alpha; else the restore
    covers all), the mask's edge blurred by mask_blur. The blends are round 2's V2 modes (normal, linear light)."""
    category = "😺dzNodes/LayerUtility"
    image: IMAGE
    detail_image: IMAGE
    keep_high_freq: int = Int(64, min=0, max=1023)
    erase_low_freq: int = Int(32, min=0, max=1023)
    mask_blur: int = Int(16, min=0, max=1023)
    mask: MASK = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerUtility: HLFrequencyDetailRestore",))

    def run(self):
        from PIL import ImageChops, ImageFilter
        from nodes.pack_nodes_layerstyle2 import BLEND_COPIES, chop_image_v2
        details = [to_pil(i) for i in self.detail_image]
        masks = layer_masks(self.detail_image, self.mask, False, True)
        out = []
        for i in range(max(len(self.image), len(details), len(masks))):
            check_interrupted()
            background = to_pil(nth(self.image, i)).convert("RGB")
            detail, mask = nth(details, i).convert("RGB"), nth(masks, i)
            for name, picture in (("detail_image", detail), ("mask", mask)):
                if picture.size != background.size:
                    raise NodeInputError(name, f"is {picture.width}×{picture.height}, the image "
                                               f"{background.width}×{background.height}: expected the image's size")
            check_made_size("image", BLEND_COPIES, background.width, background.height, "the frequency blends")
            blurred = detail.filter(ImageFilter.GaussianBlur(self.keep_high_freq))
            high = chop_image_v2(ImageChops.invert(detail), blurred, "normal", 50, "image")
            high = ImageChops.invert(high)
            low = background.filter(ImageFilter.GaussianBlur(self.erase_low_freq)) if self.erase_low_freq \
                else background.copy()
            restored = chop_image_v2(low, high, "linear light", 100, "image")
            outside = ImageChops.invert(mask)
            if self.mask_blur > 0:
                outside = outside.filter(ImageFilter.GaussianBlur(self.mask_blur))
            restored.paste(background, mask=outside)
            out.append(to_tensor(restored))
        return batch(out)


# -- Gradient Map --------------------------------------------------------------------------------------------


def gradient_ramp(start: tuple, mid: tuple, end: tuple, mid_point: float):
    """Gradient Map's 256-entry colour table: start to mid over the first int(255 × mid_point) + 1 steps,
    mid to end over the rest (numpy's linspace, float)."""
    import numpy as np
    middle = int(255 * mid_point)
    first = np.array([np.linspace(start[c], mid[c], middle + 1) for c in range(3)]).T
    second = np.array([np.linspace(mid[c], end[c], 256 - middle) for c in range(3)]).T
    return np.vstack((first[:-1], second))


class LayerStyleGradientMap(Node):
    """Recolour images through a three-colour gradient, as LayerStyle's Gradient Map: each pixel's grey
    level (PIL's L) picks its colour from start_color through mid_color (at mid_point) to end_color, mixed
    with the original by the pixel's luminance l (0.299 R + 0.587 G + 0.114 B, 0..1): gradient × l +
    original × (1 - l); then at opacity over the original, and through layer_mask (its item or last)
    where given. Also gives the gradient as a 256 × 50 strip. An RGBA image is mapped by its colour (the
    pack fails on four channels) and given back as RGB."""
    category = "😺dzNodes/LayerStyle"
    image: IMAGE
    start_color: str = Text("#015A52")
    mid_color: str = Text("#02AF9F")
    end_color: str = Text("#7FFFEC")
    mid_point: float = Float(0.6, min=0.0, max=1.0, step=0.01)
    opacity: int = Int(100, min=0, max=100)
    layer_mask: MASK = None
    outputs = {"image": IMAGE, "gradient": IMAGE}
    comfy = ComfyAlias(("LayerStyle: Gradient Map",))

    def run(self):
        import numpy as np
        from PIL import Image
        ramp = gradient_ramp(color_rgb(self.start_color, "start_color"), color_rgb(self.mid_color, "mid_color"),
                             color_rgb(self.end_color, "end_color"), self.mid_point)
        strip = Image.fromarray(np.uint8(ramp.reshape(1, -1, 3).repeat(50, axis=0)))
        masks = None if self.layer_mask is None else mask_batch(self.layer_mask)
        out = []
        for i, item in enumerate(self.image):
            check_interrupted()
            picture = to_pil(item).convert("RGB")
            original = np.asarray(picture)
            luminance = np.sum(original * [0.299, 0.587, 0.114], axis=2, keepdims=True) / 255.0
            mapped = ramp[np.asarray(picture.convert("L"))] * luminance + original * (1 - luminance)
            mapped = Image.fromarray(np.uint8(mapped))
            if self.opacity < 100:
                mapped = Image.blend(picture, mapped, self.opacity / 100)
            if masks is not None:
                mask = to_pil(masks[min(i, len(masks) - 1)]).convert("L")
                if mask.size != picture.size:
                    raise NodeInputError("layer_mask", f"is {mask.width}×{mask.height}, the image {picture.width}×"
                                                       f"{picture.height}: expected the image's size")
                picture.paste(mapped, (0, 0), mask)
                mapped = picture
            out.append(to_tensor(mapped))
        return batch(out), to_tensor(strip)


# -- HalfTone ------------------------------------------------------------------------------------------------

HALFTONE_SEED = 0  # the pack jitters each dot by Python's unseeded global random; ours, each picture from this seed


@lru_cache(maxsize=256)
def dot_mask(size: int, shape: str):
    """halftone.create_dot_mask: a size × size dot (circle or diamond about the centre, within size / 2,
    or 1.1 × that below 5 pixels; square: all), as (rows, columns) of its pixels."""
    import numpy as np
    centre = size / 2
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    radius = centre if size > 4 else centre * 1.1
    if shape == "circle":
        inside = np.sqrt((xs - centre + 0.5) ** 2 + (ys - centre + 0.5) ** 2) <= radius
    elif shape == "diamond":
        inside = np.abs(xs - centre + 0.5) + np.abs(ys - centre + 0.5) <= radius
    else:
        inside = np.ones((size, size), bool)
    return np.nonzero(inside)


def halftone_dots(levels, dot_size: int, shape: str, angle: float):
    """halftone.halftone on an 8-bit grey array: a grid of dot_size steps (widened by the diagonal, turned
    by angle, each point jittered by up to 5 % of a step) samples the grey under each point (a Gaussian
    weighting of the dot_size square there, its plain mean where it is cut short) and draws a dot of
    diameter int(√(1 - grey / 255) × dot_size) white on black."""
    import math
    import random
    import numpy as np
    height, width = levels.shape
    out = np.zeros((height, width), np.uint8)
    cos_angle, sin_angle = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    jitter = dot_size * 0.05
    margin = int(math.sqrt(width ** 2 + height ** 2))
    kernel = np.exp(-np.linspace(-2, 2, dot_size) ** 2 / 2)
    kernel = kernel[:, None] * kernel[None, :]
    kernel = kernel / kernel.sum()
    draw = random.Random(HALFTONE_SEED)
    y = -margin // 2
    while y < height + margin // 2:
        check_interrupted()
        x = -margin // 2
        while x < width + margin // 2:
            offset_x, offset_y = draw.uniform(-jitter, jitter), draw.uniform(-jitter, jitter)
            grid_x = (x + offset_x) * cos_angle + (y + offset_y) * sin_angle
            grid_y = -(x + offset_x) * sin_angle + (y + offset_y) * cos_angle
            x += dot_size
            if not (0 <= grid_x < width and 0 <= grid_y < height):
                continue
            left, top = min(int(grid_x), width - dot_size), min(int(grid_y), height - dot_size)
            region = levels[top:top + dot_size, left:left + dot_size]
            if region.size == 0:
                continue
            mean = np.sum(region * kernel) if region.shape == kernel.shape else np.mean(region)
            # a white region's weighted mean may round a hair above 255 (the pack's sqrt then fails): no dot
            size = int(math.sqrt(max(1 - mean / 255, 0.0)) * dot_size / 2 * 2)
            if size <= 0:
                continue
            rows, columns = dot_mask(size, shape)
            # int() as the pack's: toward zero, so a dot's -0.5 column lands on column 0
            px = np.trunc(grid_x - size // 2 + columns).astype(np.int64)
            py = np.trunc(grid_y - size // 2 + rows).astype(np.int64)
            keep = (px >= 0) & (px < width) & (py >= 0) & (py < height)
            out[py[keep], px[keep]] = 255
        y += dot_size
    return out


class LayerFilterHalfTone(Node):
    """A halftone print of images, as LayerFilter's HalfTone: at anti_aliasing + 1 times the size (Lanczos),
    a grid of dots dot_size apart (scaled alike) turned by angle, each a circle, diamond or square as
    large as the grey under it is dark, drawn in dot_color on background_color, scaled back; kept inside
    the mask (its item or last, scaled to the image where it differs), background_color outside. The pack
    jitters each dot by Python's unseeded random state; ours draws each picture's jitter from one fixed
    seed, so a run repeats."""
    category = "😺dzNodes/LayerFilter"
    image: IMAGE
    dot_size: int = Int(10, min=4, max=100)
    angle: float = Float(45.0, min=-90.0, max=90.0, step=0.1)
    shape: str = Choice(("circle", "diamond", "square"), "circle")
    dot_color: str = Text("#000000")
    background_color: str = Text("#FFFFFF")
    anti_aliasing: int = Int(1, min=0, max=4)
    mask: MASK = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerFilter: HalfTone",))

    def run(self):
        import numpy as np
        from PIL import Image
        dot_color = pil_color(self.dot_color, "dot_color")[:3]
        background = pil_color(self.background_color, "background_color")[:3]
        upscale = self.anti_aliasing + 1
        height, width = self.image.shape[1:3]
        check_made_size("anti_aliasing", 2, width * upscale, height * upscale, "the upscaled picture")
        masks = [to_pil(m).convert("L") for m in mask_batch(self.mask)] if self.mask is not None else \
            [Image.new("L", (width, height), "white")]
        out = []
        for index, item in enumerate(self.image):
            picture = to_pil(item).convert("RGB")
            mask = masks[min(index, len(masks) - 1)]
            if mask.size != picture.size:
                mask = mask.resize(picture.size, Image.LANCZOS)
            large = picture.resize((picture.width * upscale, picture.height * upscale), Image.LANCZOS)
            dots = Image.fromarray(halftone_dots(np.asarray(large.convert("L")), self.dot_size * upscale, self.shape,
                                                 self.angle)).resize(picture.size, Image.LANCZOS)
            printed = Image.new("RGB", picture.size, background)
            printed.paste(Image.new("RGB", picture.size, dot_color), mask=dots)
            result = Image.new("RGB", picture.size, background)
            result.paste(printed, mask=mask)
            out.append(to_tensor(result))
        return batch(out)


# -- AutoBrightness ------------------------------------------------------------------------------------------


def equalized(lightness, mask, gamma_strength: float):
    """imagefunc.histogram_equalization on an L picture: its levels stretched so the darkest and lightest
    inside the mask (pixels not 0) become 0 and 255 (int((v - low) / (high - low) × 255), clipped), then a
    gamma of (mean - 127) / 127 × gamma_strength × 0.66 + 1 (the whole mean inside the mask), so a dark
    picture lightens. An empty mask gives the picture back."""
    import numpy as np
    from PIL import Image
    from nodes.pack_nodes_layerstyle2 import gamma_table
    levels = np.asarray(lightness).astype(np.int64)
    inside = levels[np.asarray(mask) != 0]
    if inside.size == 0:
        return lightness
    low, high = int(inside.min()), int(inside.max())
    if low == high:
        raise NodeInputError("image", f"is one level ({low}) throughout inside the mask: AutoBrightness has no "
                                      "range to stretch (the pack divides by zero there)")
    average = int(int(inside.sum()) / inside.size)
    stretched = np.clip(((levels - low) / (high - low) * 255).astype(np.int64), 0, 255).astype(np.uint8)
    return Image.fromarray(gamma_table((average - 127) / 127 * gamma_strength * 0.66 + 1)[stretched], "L")


class LayerColorAutoBrightness(Node):
    """Even out images' brightness, as LayerColor's AutoBrightness: the LAB lightness stretched to the full
    range inside the mask and given a gamma by its mean (histogram_equalization, gamma strength strength /
    100), mixed with the original lightness at strength %; then saturation added to the HSV saturation
    (clipped). The mask is mask (its item or last) or the image's alpha, else everywhere; an RGBA image
    keeps its alpha. An image of one lightness inside the mask is refused (the pack divides by zero)."""
    category = "😺dzNodes/LayerColor"
    image: IMAGE
    strength: int = Int(75, min=0, max=100)
    saturation: int = Int(8, min=-255, max=255)
    mask: MASK = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerColor: AutoBrightness",))

    def run(self):
        from PIL import Image
        from nodes.pack_nodes_layerstyle_more import offset_channel
        out = []
        masks = layer_masks(self.image, self.mask, False, True)
        for picture, mask in with_masks([to_pil(i) for i in self.image], masks):
            lightness, a, b = picture.convert("LAB").split()
            levelled = equalized(lightness, mask, self.strength / 100)
            if self.strength == 0:
                levelled = lightness
            elif self.strength < 100:
                levelled = Image.blend(levelled, lightness, 1.0 - self.strength / 100)
            result = Image.merge("LAB", (levelled, a, b)).convert("RGB")
            if self.saturation != 0:
                hue, saturation, value = result.convert("HSV").split()
                saturation = offset_channel(saturation, self.saturation)
                result = Image.merge("HSV", (hue, saturation, value)).convert("RGB")
            if picture.mode == "RGBA":
                result.putalpha(picture.split()[-1])
            out.append(to_tensor(result))
        return batch(out)


# -- Color of Shadow & Highlight -----------------------------------------------------------------------------


def toned(picture, brightness: float, saturation: float, hue: int):
    """Color of Shadow & Highlight's adjustment: PIL's Brightness then Color enhancers (where not 1), then
    the HSV hue moved by hue levels, wrapping round (imagefunc.image_hue_offset)."""
    from PIL import Image, ImageEnhance
    from nodes.pack_nodes_layerstyle_more import offset_channel
    if brightness != 1:
        picture = ImageEnhance.Brightness(picture).enhance(factor=brightness)
    if saturation != 1:
        picture = ImageEnhance.Color(picture).enhance(factor=saturation)
    if hue:
        h, s, v = picture.convert("HSV").split()
        picture = Image.merge("HSV", (offset_channel(h, hue, wrap=True), s, v)).convert("RGB")
    return picture


class LayerColorColorofShadowHighlight(Node):
    """Tone an image's shadows and highlights apart, as LayerColor's Color of Shadow & Highlight: where a
    part's brightness, saturation (PIL's enhancers; 1 leaves it) or hue (HSV levels, wrapping) is set, the
    image so adjusted is pasted through that part's luminance key (as Shadow & Highlight Mask keys it,
    from the mean value inside the mask) blurred by (width + height) / 800; the image itself stays
    outside the mask (mask, its item or last; else the image's alpha, else everywhere). Shadows first,
    then highlights over them."""
    category = "😺dzNodes/LayerColor"
    image: IMAGE
    shadow_brightness: float = Float(1.0, min=0.0, max=3.0, step=0.01)
    shadow_saturation: float = Float(1.0, min=0.0, max=3.0, step=0.01)
    shadow_hue: int = Int(0, min=-255, max=255)
    shadow_level_offset: int = Int(0, min=-99, max=99)
    shadow_range: float = Float(0.25, min=0.01, max=0.99, step=0.01)
    highlight_brightness: float = Float(1.0, min=0.0, max=3.0, step=0.01)
    highlight_saturation: float = Float(1.0, min=0.0, max=3.0, step=0.01)
    highlight_hue: int = Int(0, min=-255, max=255)
    highlight_level_offset: int = Int(0, min=-99, max=99)
    highlight_range: float = Float(0.25, min=0.01, max=0.99, step=0.01)
    mask: MASK = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerColor: Color of Shadow & Highlight",))

    def run(self):
        from PIL import ImageChops, ImageFilter
        parts = ((self.shadow_brightness, self.shadow_saturation, self.shadow_hue),
                 (self.highlight_brightness, self.highlight_saturation, self.highlight_hue))
        out = []
        masks = layer_masks(self.image, self.mask, False, True)
        for picture, mask in with_masks([to_pil(i) for i in self.image], masks):
            picture = picture.convert("RGB")
            ends = key_ends(picture, mask, (self.shadow_level_offset, self.shadow_range),
                            (self.highlight_level_offset, self.highlight_range))
            canvas = picture.copy()
            if ends is not None:  # the pack's NaN key of an empty mask keys nothing
                for (brightness, saturation, hue), part_ends in zip(parts, ends):
                    if brightness == 1 and saturation == 1 and not hue:
                        continue
                    key = luminance_key(picture, *part_ends)
                    key = key.filter(ImageFilter.GaussianBlur(radius=(key.width + key.height) // 800))
                    canvas.paste(toned(picture.copy(), brightness, saturation, hue), mask=key)
                    canvas.paste(picture, mask=ImageChops.invert(mask))
            out.append(to_tensor(canvas))
        return batch(out)


# -- text presets, ImageHub ----------------------------------------------------------------------------------

TEXT_PRESET = socket_type("LS_TEXT_PRESET", "#9e9e9e", "LayerStyle's text presets: a dict of title -> content")
HUB_SEED = 0  # the pack's random_output draws from Python's unseeded global random; ours from this seed


class LayerUtilityTextPreseter(Node):
    """Add a titled text to a set of text presets, as LayerUtility's TextPreseter: the given presets (or
    none) with content under title (a blank title adds nothing). The pack adds it to the very set it was
    given (which ComfyUI may hold for other nodes); ours gives a new set."""
    category = "😺dzNodes/LayerUtility/Data"
    title: str = Text("")
    content: str = Text("", multiline=True)
    text_preset: TEXT_PRESET = None
    outputs = {"text_preset": TEXT_PRESET}
    comfy = ComfyAlias(("LayerUtility: TextPreseter",))

    def run(self):
        presets = dict(self.text_preset or {})
        if self.title:
            presets[self.title] = self.content
        return presets


class LayerUtilityChoiceTextPreset(Node):
    """Pick one of a set of text presets, as LayerUtility's ChoiceTextPreset: the one titled choice_title
    where there is one, else the default-th (from 0, in the order they were added); with random_choice,
    one drawn from seed (as Python's random.choice draws it after random.seed(seed), so a run repeats).
    Gives its title and content."""
    category = "😺dzNodes/LayerUtility/Data"
    text_preset: TEXT_PRESET
    choice_title: str = Text("")
    random_choice: bool = Bool(False)
    default: int = Int(0, min=0, max=10**4)
    seed: int = Int(0, min=0, max=10**18, control_after_generate=True)
    outputs = {"title": STRING, "content": STRING}
    comfy = ComfyAlias(("LayerUtility: ChoiceTextPreset",))

    def run(self):
        import random
        if not isinstance(self.text_preset, dict) or not self.text_preset:
            raise NodeInputError("text_preset", "holds no presets: expected TextPreseter's set with at least one text")
        titles = list(self.text_preset)
        if self.default >= len(titles):
            raise NodeInputError("default", f"is {self.default}, but the set holds {len(titles)} preset"
                                            f"{'' if len(titles) == 1 else 's'}: expected 0 to {len(titles) - 1}")
        title = titles[self.default]
        if self.random_choice:
            title = random.Random(self.seed).choice(titles)
        elif self.choice_title in self.text_preset:
            title = self.choice_title
        return title, self.text_preset[title]


class LayerUtilityImageHub(Node):
    """Pass on one of up to nine image / mask pairs, as LayerUtility's ImageHub: pair number `output`
    (its image and its mask, either None where unlinked); with random_output, one of the linked pairs
    drawn from a fixed seed, so a run repeats (the pack draws from Python's unseeded random state: for
    varied picks link a seeded number into output instead). At least one input must be linked, and output
    must name a pair with its image or mask linked (the other may be unlinked: None, for an optional
    input)."""
    category = "😺dzNodes/LayerUtility"
    output: int = Int(1, min=1, max=9)
    random_output: bool = Bool(False)
    input1_image: IMAGE = None
    input1_mask: MASK = None
    input2_image: IMAGE = None
    input2_mask: MASK = None
    input3_image: IMAGE = None
    input3_mask: MASK = None
    input4_image: IMAGE = None
    input4_mask: MASK = None
    input5_image: IMAGE = None
    input5_mask: MASK = None
    input6_image: IMAGE = None
    input6_mask: MASK = None
    input7_image: IMAGE = None
    input7_mask: MASK = None
    input8_image: IMAGE = None
    input8_mask: MASK = None
    input9_image: IMAGE = None
    input9_mask: MASK = None
    outputs = {"image": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("LayerUtility: ImageHub",))

    def run(self):
        import random
        pairs = {n: (getattr(self, f"input{n}_image"), getattr(self, f"input{n}_mask")) for n in range(1, 10)}
        linked = [n for n, pair in pairs.items() if any(v is not None for v in pair)]
        if not linked:
            raise NodeInputError("input1_image", "nothing is linked: expected at least one image or mask")
        chosen = linked[random.Random(HUB_SEED).randint(1, len(linked)) - 1] if self.random_output else self.output
        if chosen not in linked:  # the pack passes (None, None) on, which fails in the next node
            raise NodeInputError("output", f"pair {chosen} has nothing linked: expected one of the linked pairs "
                                           f"{', '.join(map(str, linked))}")
        return pairs[chosen]


class LayerUtilityCropByMaskV3(LayerUtilityCropByMaskV2):
    """Crop images to a mask's area, as LayerUtility's CropByMask V3: as CropByMask V2 (the box of the
    first mask's area widened by the reserves and grown to round_to_multiple, or crop_box), but the crops
    and the preview are RGBA: an RGB image's crop is opaque, and transparent where the box reaches past
    the picture's edge."""
    comfy = ComfyAlias(("LayerUtility: CropByMask V3",))
    picture_mode = "RGBA"


# -- AutoAdjustV2 --------------------------------------------------------------------------------------------


class LayerColorAutoAdjustV2(Node):
    """Automatic levels, as LayerColor's AutoAdjust V2: in mode RGB each of R, G, B, in luminance the LAB
    lightness, in saturation the HSV saturation, in lum + sat the saturation then the lightness, in mono
    the grey, stretched between its histogram ends (normalize_gray) as the mask sees it (the channel
    inside the mask on mid grey outside); then red / green / blue (-100..100; not in mono) bend their
    channel by a gamma of 0.00005 b² - 0.01 b + 1, and brightness, contrast and saturation apply PIL's
    enhancers (a factor of 1 + v / 100 below 0, 1 + v / 50 above); the result is laid over the picture at
    strength percent (the blend_modes package's normal), the picture itself kept outside the mask (mask,
    its item or last; else the image's alpha, else everywhere). An RGBA image keeps its alpha."""
    category = "😺dzNodes/LayerColor"
    image: IMAGE
    strength: int = Int(100, min=0, max=100)
    brightness: int = Int(0, min=-100, max=100)
    contrast: int = Int(0, min=-100, max=100)
    saturation: int = Int(0, min=-100, max=100)
    red: int = Int(0, min=-100, max=100)
    green: int = Int(0, min=-100, max=100)
    blue: int = Int(0, min=-100, max=100)
    mode: str = Choice(("RGB", "lum + sat", "mono", "luminance", "saturation"), "RGB")
    mask: MASK = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerColor: AutoAdjustV2",))

    def run(self):
        import numpy as np
        from PIL import Image, ImageChops, ImageEnhance
        from nodes.pack_nodes_layerstyle2 import gamma_table
        from nodes.pack_nodes_layerstyle_more import keep_alpha, normal_blend, normalize_gray

        def factor(value):
            return value / 100 + 1 if value < 0 else value / 50 + 1

        def levelled(channel, mask):
            grey = Image.new("L", channel.size, "gray")
            grey.paste(channel.convert("L"), mask=mask)
            with np.errstate(divide="ignore", invalid="ignore"):
                return normalize_gray(grey)

        out = []
        masks = layer_masks(self.image, self.mask, False, True)
        for picture, mask in with_masks([to_pil(i) for i in self.image], masks):
            rgba = picture.convert("RGBA")
            if self.mode == "RGB":
                result = Image.merge("RGB", [levelled(c, mask) for c in rgba.convert("RGB").split()])
            elif self.mode == "mono":
                result = levelled(picture.convert("L"), mask).convert("RGB")
            else:
                result = rgba.convert("RGB")
                if self.mode in ("saturation", "lum + sat"):
                    h, s, v = rgba.convert("HSV").split()
                    result = Image.merge("HSV", (h, levelled(s, mask), v)).convert("RGB")
                if self.mode in ("luminance", "lum + sat"):
                    lightness, a, b = result.convert("RGBA").convert("LAB").split()
                    result = Image.merge("LAB", (levelled(lightness, mask), a, b)).convert("RGB")
            if (self.red or self.green or self.blue) and self.mode != "mono":
                channels = list(result.split())
                for index, balance in enumerate((self.red, self.green, self.blue)):
                    if balance:
                        table = gamma_table(0.00005 * balance * balance - 0.01 * balance + 1)
                        channels[index] = Image.fromarray(table[np.asarray(channels[index])], "L")
                result = Image.merge("RGB", channels)
            for enhancer, value in ((ImageEnhance.Brightness, self.brightness), (ImageEnhance.Contrast, self.contrast),
                                    (ImageEnhance.Color, self.saturation)):
                if value:
                    result = enhancer(result).enhance(factor(value))
            result = normal_blend(picture, result, self.strength)
            result.paste(picture, mask=ImageChops.invert(mask))
            out.append(to_tensor(keep_alpha(result, picture)))
        return batch(out)
