"""chflame163/ComfyUI_LayerStyle's model-free nodes, round 4, under the pack's class names, inputs and outputs:
LayerColor: LUT Apply; LayerUtility: ICMask and ICMaskCropBack, GetMainColors (+V2), ColorName, ColorImage V3,
ImageReel and ImageReelComposit, ImageTaggerSave (+V2), LoadImagesFromPath and ImageCompositeHandleMask;
LayerFilter: DistortDisplace; LayerMask: DrawRoundedRectangle.

Read from the pack's py/color_correct_LUTapply.py at be52ed80d84777c59452006c71b5f2a83823dc2f (and at
33d9f817de53f80bcd2631f0dcee13066975f829, before its strength input), py/ic_mask.py at
535704915f08558a3fe2d83a808a512276a464b0 (code the pack took from lrzjason/Comfyui-In-Context-Lora-Utils),
py/get_main_colors.py at 15d3bb1fd9f118f9c94573e22ee42a31fd81ceed and the file holding LS_GetMainColorsV2 with
it (by content: the code index named no path), py/color_name.py at 15d3bb1fd9f118f9c94573e22ee42a31fd81ceed,
py/image_reel.py at 18e21036ef603184025627c0eb5aa393678951e2, py/image_tagger_save.py and
py/load_images_from_path.py at 25965f5c0e710750aec73ca92f99ae373dfbb910, the file holding
LS_ImageCompositeHandleMask with composite_layer, sdf_rounded_rect_4corner and rounded_rect_gradient_mask_numpy
(by content; its other version, turning the layer with kornia, not a graphflow dependency, was not followed),
py/distort_displace.py at a1875e824ca67af285706abe170a0e509c043aec, py/color_image_v3.py at
9bd65618bf52c3606f628c02697959cb073a37ce, py/imagefunc.py at
cf8c238f8a534b1297a5135a2bdff91a6562b388 (apply_lut, RGB_to_Hex, Hex_to_RGB, gaussian_blur, adjust_levels,
remove_empty_lines, mask_area, mask_edge_detail, generate_VITMatte) and at a1875e824ca67af285706abe170a0e509c043aec
(displacement_image, fit_resize_image, num_round_up_to_multiple, get_resource_dir: the pack's own lut and font
folders); and the file holding LS_DrawRoundedRectangle (by content: the code index named no path; its first line
says "layerstyle advance", its class is the pack's LayerMask: DrawRoundedRectangle), drawn by imagefunc's
draw_rounded_rectangle as round 3's RoundedRectangle.

Round 3's quirk policy holds (nodes/pack_nodes_layerstyle3.py): a plain slip gives what was meant, and the
node's help says how the pack differs; an odd but coherent rule is kept; a bare exception of the pack is a
refusal naming the input. ICMask's mix of 0-255 and 0-1 values (white padding of 255 and a patch colour of
0 / 255 in a 0..1 picture, clipped back to 0..1 at its end) comes out as white and the patch colour, 0..1,
which is what the pack's clip makes of it.

Nothing here draws random numbers: GetMainColors' k-means is scikit-learn's KMeans with the pack's
random_state=0, so a run repeats.

ColorName's css3 and html4 tables are the CSS colour keywords as Pillow's ImageColor holds them (the pack's
css3 table is those less rebeccapurple, in its order); its xkcd table, the 949 colours of the xkcd colour survey
(CC0), ships as graphflow/data/xkcd_colors/xkcd_colors.txt in the pack's order (see its README.md).

Not yet built (a later round; graphflow/comfy_format.py's LAYERSTYLE_LATER): LayerUtility: NameToColor and
LayerColor: ColorofShadowHighlightV2, whose sources were not in the code index. Left out for good (listed in
graphflow/comfy_format.py's LAYERSTYLE_LEFT_OUT): LayerMask: MaskEdgeUltraDetail (+V2, V3), whose matting runs
pymatting (which needs numba), OpenCV-contrib's guided filter or the VITMatte model."""

from __future__ import annotations

from functools import lru_cache

from graphflow.api import ANY, IMAGE, INT, MASK, STRING, Bool, Choice, ComfyAlias, Float, Int, ListOf, Node, \
    NodeInputError, Size, Text, check_interrupted, check_run_memory, folders, show, socket_type
from nodes.pack_nodes_essentials import apply_lut, load_cube, lut_choices
from nodes.pack_nodes_essentials_misc import drawn_within_pillows_limit, font_choices, font_file
from nodes.pack_nodes_layerstyle import BOX, LayerUtilityColorImageV2, batch, hex_rgb, mask_batch, nth, to_pil, \
    to_tensor
from nodes.pack_nodes_layerstyle2 import BLEND_MODES_V2
from nodes.pack_nodes_layerstyle_more import adjust_levels

COMFY_PACK = "ComfyUI_LayerStyle"  # the custom node pack this module's ComfyUI classes come from


def rgb_pictures(images, input_name: str) -> list:
    """An IMAGE batch's pictures, each [H, W, 3] or [H, W, 4]; other shapes refused."""
    import torch
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[-1] not in (3, 4):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise NodeInputError(input_name, f"{shape}: expected an IMAGE batch [B, H, W, 3 or 4]")
    if images.shape[0] == 0 or images.shape[1] == 0 or images.shape[2] == 0:
        raise NodeInputError(input_name, f"{tuple(images.shape)}: an empty batch or picture")
    return list(images)


def rgb_hex(rgb) -> str:
    """imagefunc.RGB_to_Hex: '#RRGGBB', upper case, each channel truncated to a whole number."""
    return "#" + "".join(f"{int(v):02X}" for v in rgb[:3])


# -- LUT Apply ---------------------------------------------------------------------------------------------


class LayerColorLUTApply(Node):
    """Grade images with a .cube LUT, as LayerColor's LUT Apply does: each picture at 8 bits, through
    the LUT (3D LUTs trilinearly, values outside the domain taking its edge's; 1D ones linearly per
    channel; the table first clamped to the LUT's domain, as the pack's clip_values), with
    color_space log raised to 1/2.2 before and 2.2 after, blended with the picture by strength
    (0..100) and truncated to 8 bits. A LUT's DOMAIN_MIN / DOMAIN_MAX scale the picture into the
    domain and back; with log, a channel that scaling makes negative has no power, and comes out
    0 as in the pack (the whole colour through a 3D LUT). An RGBA picture keeps its alpha (the pack's own lookup fails
    on four channels). LUT is a .cube file in models/luts (the pack lists its own lut folder and
    those its resource_dir.ini names: put those files there); only files inside models/luts are
    read."""
    category = "😺dzNodes/LayerColor"
    image: IMAGE
    LUT: str = Choice(lut_choices, if_empty="put .cube LUT files in models/luts")
    color_space: str = Choice(("linear", "log"), "linear")
    strength: int = Int(100, min=0, max=100)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerColor: LUT Apply",))

    @classmethod
    def fingerprint(cls, LUT=None, **widgets):  # noqa: N803 (the pack's input name)
        try:
            return folders.model_state("luts", LUT, inside=True)
        except (FileNotFoundError, ValueError, TypeError):
            return None  # run() names the problem

    def run(self):
        import numpy as np
        import torch
        pictures = rgb_pictures(self.image, "image")
        try:
            table, domain = load_cube(folders.find_model("luts", self.LUT, inside=True))
        except (FileNotFoundError, ValueError) as e:  # UnsafePathError is a ValueError
            raise NodeInputError("LUT", str(e)) from None
        table = torch.minimum(torch.maximum(table, domain[0]), domain[1])
        default_domain = bool((domain == torch.tensor([[0.0] * 3, [1.0] * 3], dtype=torch.float64)).all())
        graded = []
        for picture in pictures:
            check_interrupted()
            levels = np.asarray(to_pil(picture), dtype=np.float64) / 255.0
            x = torch.from_numpy(levels[..., :3].copy())
            if not default_domain:
                x = x * (domain[1] - domain[0]) + domain[0]
            if self.color_space == "log":
                x = x ** (1 / 2.2)
            x = apply_lut(table, domain, x)
            if self.color_space == "log":
                x = x ** 2.2
            if not default_domain:
                x = (x - domain[0]) / (domain[1] - domain[0])
            if self.strength < 100:
                x = self.strength / 100 * x + (1 - self.strength / 100) * torch.from_numpy(levels[..., :3])
            # NaN (a negative value raised to 1/2.2): the pack's 8-bit cast makes it 0
            out = np.clip(255.0 * x.nan_to_num(0.0).numpy(), 0, 255).astype(np.uint8)
            if levels.shape[-1] == 4:
                out = np.concatenate([out, np.asarray(to_pil(picture))[..., 3:]], axis=-1)
            graded.append(torch.from_numpy(out.astype(np.float32) / 255.0)[None])
        return batch(graded)


# -- ICMask / ICMaskCropBack -------------------------------------------------------------------------------

ICMASK_DATA = socket_type("ICMASK_DATA", "#9e9e9e", "LayerStyle's ICMask layout: where the first picture "
                                                    "sits in the pair, for ICMaskCropBack")
PATCH_MODES = ("auto", "patch_right", "patch_bottom")
PATCH_COLORS = ("#FF0000", "#00FF00", "#0000FF", "#FFFFFF")
IC_LENGTH_MAX = 16384


class ICMaskLayout:
    """Where ICMask put the first picture: its offset is where the second begins (x_offset for a
    pair side by side, y_offset for one above the other), its size one half's."""

    def __init__(self, x_offset: int, y_offset: int, target_width: int, target_height: int, total_width: int,
                 total_height: int):
        self.x_offset, self.y_offset = x_offset, y_offset
        self.target_width, self.target_height = target_width, target_height
        self.total_width, self.total_height = total_width, total_height


def ic_target(width: int, height: int, output_length: int, patch_mode: str) -> tuple[int, int, str]:
    """ic_mask.fit_image's half size and mode: two thirds of output_length on the long side of the
    pair's join and half of it on the other; auto puts a wide picture's patch below it, else to the
    right."""
    base, half = int(output_length / 3 * 2), int(output_length / 2)
    if patch_mode == "auto":
        patch_mode = "patch_bottom" if width > height else "patch_right"
    return (base, half, patch_mode) if patch_mode == "patch_bottom" else (half, base, patch_mode)


def ic_fit(picture, mask, target_width: int, target_height: int):
    """ic_mask.fit_image: the picture scaled (OpenCV's cubic) to fit the target, keeping its shape,
    centred on white; its mask scaled by nearest neighbour onto black."""
    import cv2
    import numpy as np
    height, width = picture.shape[:2]
    ratio = min(target_width / width, target_height / height)
    new_width, new_height = max(int(width * ratio), 1), max(int(height * ratio), 1)
    picture = cv2.resize(picture, (new_width, new_height), interpolation=cv2.INTER_CUBIC)
    mask = cv2.resize(mask, (new_width, new_height), interpolation=cv2.INTER_NEAREST_EXACT)
    left, top = (target_width - new_width) // 2, (target_height - new_height) // 2
    canvas = np.ones((target_height, target_width, picture.shape[-1]), np.float32)
    canvas[top:top + new_height, left:left + new_width] = picture
    mask_canvas = np.zeros((target_height, target_width), np.float32)
    mask_canvas[top:top + new_height, left:left + new_width] = mask
    return canvas, mask_canvas


def first_mask(mask, input_name: str, size: tuple[int, int]):
    """The batch's first mask as float32 numpy [H, W]; none: zeros of `size` (height, width)."""
    import numpy as np
    import torch
    if mask is None:
        return np.zeros(size, np.float32)
    if not isinstance(mask, torch.Tensor) or mask.dim() not in (2, 3) or 0 in mask.shape:
        raise NodeInputError(input_name, "expected a MASK [B, H, W] or [H, W]")
    return (mask if mask.dim() == 2 else mask[0]).detach().cpu().float().numpy()


class LayerUtilityICMask(Node):
    """Lay a picture and its patch side by side for in-context LoRA editing, as LayerUtility's ICMask
    does: output_length (rounded down to a multiple of 64) sets the pair: each half is two thirds of
    it along the join and half of it across; auto puts a wide first_image's patch below it, else to
    the right. Each picture (the batch's first) is scaled (OpenCV's cubic) to fit its half, keeping
    its shape, and centred on white; without second_image the patch is patch_color. The mask is
    first_mask's (none: black) beside second_mask's (scaled by nearest neighbour; none or all black:
    white), and icmask_data says where the second half starts for ICMaskCropBack. Pictures are RGB
    (an RGBA one loses its alpha)."""
    category = "😺dzNodes/LayerUtility"
    first_image: IMAGE
    patch_mode: str = Choice(PATCH_MODES, "auto")
    output_length: int = Int(1536, min=64, max=IC_LENGTH_MAX)
    patch_color: str = Choice(PATCH_COLORS, "#FFFFFF")
    first_mask: MASK = None
    second_image: IMAGE = None
    second_mask: MASK = None
    outputs = {"image": IMAGE, "mask": MASK, "icmask_data": ICMASK_DATA}
    comfy = ComfyAlias(("LayerUtility: ICMask",), optional=("first_mask", "second_image", "second_mask"))

    def run(self):
        import numpy as np
        import torch
        length = self.output_length - self.output_length % 64
        first = rgb_pictures(self.first_image, "first_image")[0][..., :3].detach().cpu().float().numpy()
        width, height, patch_mode = ic_target(first.shape[1], first.shape[0], length, self.patch_mode)
        total = (height * 2, width) if patch_mode == "patch_bottom" else (height, width * 2)
        check_run_memory("output_length", f"makes a {total[1]} × {total[0]} pair", images=Size(1, *total))
        first, mask1 = ic_fit(first, first_mask(self.first_mask, "first_mask", first.shape[:2]), width, height)
        if self.second_image is not None:
            second = rgb_pictures(self.second_image, "second_image")[0][..., :3].detach().cpu().float().numpy()
        else:
            second = np.broadcast_to(np.array(hex_rgb(self.patch_color, "patch_color"), np.float32) / 255,
                                     (height, width, 3)).copy()
        second, mask2 = ic_fit(second, first_mask(self.second_mask, "second_mask", second.shape[:2]), width, height)
        if self.second_mask is None or not mask2.any():
            mask2 = np.ones((height, width), np.float32)
        join = np.vstack if patch_mode == "patch_bottom" else np.hstack
        image, mask = np.clip(join((first, second)), 0, 1), join((mask1, mask2))
        x_offset = int(0.5 * image.shape[1]) if patch_mode == "patch_right" else 0
        y_offset = int(0.5 * image.shape[0]) if patch_mode == "patch_bottom" else 0
        layout = ICMaskLayout(x_offset, y_offset, width, height, image.shape[1], image.shape[0])
        return torch.from_numpy(image)[None], torch.from_numpy(mask)[None], layout


class LayerUtilityICMaskCropBack(Node):
    """Cut ICMask's second half back out of a picture of the pair's size, as LayerUtility's
    ICMaskCropBack does: icmask_data's half size from its offset (kept inside the picture)."""
    category = "😺dzNodes/LayerUtility"
    image: IMAGE
    icmask_data: ICMASK_DATA
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("LayerUtility: ICMaskCropBack",))

    def run(self):
        rgb_pictures(self.image, "image")
        layout = self.icmask_data
        if not isinstance(layout, ICMaskLayout):
            raise NodeInputError("icmask_data", "expected ICMask's icmask_data")
        x = min(layout.x_offset, self.image.shape[2] - 1)
        y = min(layout.y_offset, self.image.shape[1] - 1)
        return self.image[:, y:y + layout.target_height, x:x + layout.target_width]


# -- GetMainColors (V2) ------------------------------------------------------------------------------------

MAIN_COLORS = 5
KMEANS_ITERATIONS = int(512 * (60 / 100))  # the pack's "accuracy" of 60


def main_colors(picture, algorithm: str) -> tuple[list[str], list[float]]:
    """get_main_colors' interrogate_colors: the RGB picture blurred (Pillow's Gaussian, radius
    (width + height) // 400), its pixels (0..1) clustered in five by scikit-learn's KMeans (the
    pack's random_state=0 and 307 iterations at most); the centres as '#RRGGBB' and each cluster's
    share of the pixels in percent, in cluster order."""
    import warnings

    import numpy as np
    from PIL import ImageFilter
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    rgb = to_pil(picture).convert("RGB")
    blurred = rgb.filter(ImageFilter.GaussianBlur(radius=(rgb.width + rgb.height) // 400))
    pixels = (np.asarray(blurred).astype(np.float32) / 255.0).reshape(-1, 3)
    if len(pixels) < MAIN_COLORS:
        raise NodeInputError("image", f"{len(pixels)} pixels: expected at least {MAIN_COLORS} to find five colours")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # fewer distinct colours than five: repeated ones
        kmeans = KMeans(n_clusters=MAIN_COLORS, algorithm=algorithm, max_iter=KMEANS_ITERATIONS,
                        random_state=0).fit(pixels)
    counts = np.bincount(kmeans.labels_, minlength=MAIN_COLORS)
    return [rgb_hex(c) for c in kmeans.cluster_centers_ * 255], list(counts / len(pixels) * 100)


class LayerUtilityGetMainColors(Node):
    """The five main colours of an image, as LayerUtility's GetMainColors finds them: the picture
    blurred (Gaussian, radius (width + height) // 400) and its pixels clustered in five by
    scikit-learn's k-means (k_means_algorithm; random_state 0, as the pack, so a run repeats).
    color_1..5 are the centres as '#RRGGBB' in cluster order, of the batch's last picture; the
    preview is a 512 × 640 swatch of them, one a picture."""
    category = "😺dzNodes/LayerUtility"
    image: IMAGE
    k_means_algorithm: str = Choice(("lloyd", "elkan"), "lloyd")
    outputs = {"preview_image": IMAGE, "color_1": STRING, "color_2": STRING, "color_3": STRING, "color_4": STRING,
               "color_5": STRING}
    comfy = ComfyAlias(("LayerUtility: GetMainColors",))
    swatch_height = 128

    def swatch(self, colors: list[str], shares: list[float]):
        """The preview: a band of each colour, top to bottom."""
        from PIL import Image, ImageDraw
        picture = Image.new("RGB", (512, self.swatch_height * len(colors)), "white")
        draw = ImageDraw.Draw(picture)
        for i, color in enumerate(colors):
            top = self.swatch_height * i
            draw.rectangle((0, top, 512, top + self.swatch_height), fill=color, outline=color)
        return picture

    def ordered(self, colors: list[str], shares: list[float]) -> tuple[list[str], list[float]]:
        return colors, shares

    def run(self):
        previews = []
        for picture in rgb_pictures(self.image, "image"):
            check_interrupted()
            colors, shares = self.ordered(*main_colors(picture, self.k_means_algorithm))
            previews.append(to_tensor(self.swatch(colors, shares)))
        return (batch(previews), *colors)


def hsb(color: str) -> tuple[float, float, float]:
    """A '#RRGGBB' colour's hue (degrees), saturation and brightness (percent), by colorsys."""
    import colorsys
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in hex_rgb(color, "color")))
    return h * 360, s * 100, v * 100


class LayerUtilityGetMainColorsV2(LayerUtilityGetMainColors):
    """The five main colours of an image, as LayerUtility's GetMainColorsV2 finds them: GetMainColors'
    k-means (random_state 0, so a run repeats), the colours ordered by their share of the pixels,
    most first (ties in cluster order); the 512 × 320 preview labels each band with its hex, HSB
    and share in Pillow's default font at 20 px, black on light colours (luma above one half), white
    on dark ones."""
    comfy = ComfyAlias(("LayerUtility: GetMainColorsV2",))
    swatch_height = 64

    def ordered(self, colors, shares):
        pairs = sorted(zip(colors, shares), key=lambda pair: pair[1], reverse=True)
        return [c for c, _ in pairs], [s for _, s in pairs]

    def swatch(self, colors, shares):
        from PIL import ImageDraw, ImageFont
        picture = super().swatch(colors, shares)
        draw = ImageDraw.Draw(picture)
        font = ImageFont.load_default(size=20)
        for i, (color, share) in enumerate(zip(colors, shares)):
            r, g, b = hex_rgb(color, "color")
            contrast = "#000000" if (0.299 * r + 0.587 * g + 0.114 * b) / 255 > 0.5 else "#FFFFFF"
            h, s, v = hsb(color)
            text = f"RGB {color[1:]}   HSB {h:03.0f} {s:03.0f} {v:03.0f}   {share:.2f}%"
            box = font.getbbox(text)
            draw.text((10, self.swatch_height * i + (self.swatch_height - (box[3] - box[1])) // 2), text,
                      fill=contrast, font=font)
        return picture


# -- ColorName ---------------------------------------------------------------------------------------------

HTML4_NAMES = ("aqua", "black", "blue", "fuchsia", "green", "gray", "lime", "maroon", "navy", "olive", "purple",
               "red", "silver", "teal", "white", "yellow")


def css3_names() -> list[str]:
    """The pack's css3 table: the CSS colour keywords less rebeccapurple (a later CSS addition), each
    'grey' spelling right after its 'gray' one, else alphabetical."""
    from PIL import ImageColor
    names = [name for name in ImageColor.colormap if name != "rebeccapurple"]
    return sorted(names, key=lambda name: (name.replace("grey", "gray"), name))


@lru_cache(maxsize=1)
def xkcd_colors() -> dict[str, tuple[int, int, int]]:
    """The xkcd survey's colours, name -> (R, G, B), in the pack's table order (graphflow/data/xkcd_colors)."""
    from importlib import resources
    text = resources.files("graphflow").joinpath("data", "xkcd_colors", "xkcd_colors.txt").read_text("utf-8")
    rows = (line.split("\t") for line in text.splitlines() if line)
    return {name: tuple(int(code[i:i + 2], 16) for i in (1, 3, 5)) for name, code in rows}


def palette_colors(palette: str) -> dict[str, tuple[int, int, int]]:
    """ColorName's table for palette, name -> (R, G, B), in the pack's order."""
    from PIL import ImageColor
    if palette == "xkcd":
        return xkcd_colors()
    return {name: ImageColor.getrgb(name) for name in (css3_names() if palette == "css3" else HTML4_NAMES)}


def nearest_name(rgb: tuple, table: dict) -> str:
    """color_name's rule: the name of the least squared RGB distance; on a tie the later in the
    table (the pack keys its distances by value, so a later name overwrites)."""
    best, found = None, None
    for name, color in table.items():
        distance = sum((a - b) ** 2 for a, b in zip(color, rgb))
        if best is None or distance <= best:
            best, found = distance, name
    return found


class LayerUtilityColorName(Node):
    """The name of the colour nearest (least squared RGB distance; ties go to the later name in the
    pack's table) to `color` ('#RRGGBB' or '#RGB'), as LayerUtility's ColorName names it: palette
    xkcd is the 949 colours of the xkcd colour survey, css3 the 147 CSS colour keywords of the pack's
    table, html4 the 16 HTML 4 ones. Hex of other lengths is refused (the pack reads extra digits
    into blue)."""
    category = "😺dzNodes/LayerColor"
    color: STRING
    palette: str = Choice(("xkcd", "css3", "html4"), "xkcd")
    outputs = {"color_name": STRING}
    comfy = ComfyAlias(("LayerUtility: ColorName",))

    def run(self):
        if not isinstance(self.color, str):
            raise NodeInputError("color", f"expected a '#RRGGBB' colour text, got {type(self.color).__name__}")
        return nearest_name(hex_rgb(self.color, "color"), palette_colors(self.palette))


# -- ColorImage V3 -----------------------------------------------------------------------------------------


def without_color_name(inputs: dict) -> dict:
    """An API prompt without color_name read as the pack's Python runs it: no name, so `color` (the
    widget's default, white, is what its editor writes)."""
    inputs.setdefault("color_name", "")
    return inputs


class LayerUtilityColorImageV3(LayerUtilityColorImageV2):
    """A picture of one colour, as LayerUtility's ColorImage V3: ColorImage V2's size (size_as's
    where linked, else the chosen size; "custom": custom_width × custom_height), in the xkcd colour
    survey's colour called color_name (ColorName's xkcd palette, the name written exactly) or, for a
    name not there (empty, say), in `color`. The color output is the colour used: the xkcd table's
    '#rrggbb' or `color` as given."""
    color_name: str = Text("white")
    outputs = {"image": IMAGE, "color": STRING}
    comfy = ComfyAlias(("LayerUtility: ColorImage V3",), optional=("size_as", "color_name"),
                       api_inputs=without_color_name)

    def run(self):
        rgb = xkcd_colors().get(self.color_name)
        if rgb is not None:
            self.color = "#{:02x}{:02x}{:02x}".format(*rgb)
        return super().run(), self.color


# -- ImageReel / ImageReelComposit -------------------------------------------------------------------------

REEL = socket_type("Reel", "#9e9e9e", "LayerStyle's image reel: a strip of pictures and their captions")


class Reel:
    """ImageReel's strip: the RGBA picture, each picture's (caption, width), its height and border."""

    def __init__(self, image, texts: list, reel_height: int, reel_border: int):
        self.image, self.texts, self.reel_height, self.reel_border = image, texts, reel_height, reel_border


class LayerUtilityImageReel(Node):
    """A strip of pictures with a caption each, as LayerUtility's ImageReel makes it: every picture
    of image1..4 scaled (Lanczos) to reel_height, keeping its shape, and set left to right on a
    transparent strip with `border` between them (half a border round the edge); the captions are
    image1..4_text, one for each picture of that input. ImageReelComposit draws it."""
    category = "😺dzNodes/LayerUtility"
    image1: IMAGE
    image1_text: str = Text("image1")
    image2_text: str = Text("image2")
    image3_text: str = Text("image3")
    image4_text: str = Text("image4")
    reel_height: int = Int(512, min=64, max=2048)
    border: int = Int(32, min=8, max=512)
    image2: IMAGE = None
    image3: IMAGE = None
    image4: IMAGE = None
    outputs = {"reel": REEL}
    comfy = ComfyAlias(("LayerUtility: ImageReel",), optional=("image2", "image3", "image4"))

    def run(self):
        from PIL import Image
        scaled, texts = [], []
        for index in range(1, 5):
            images = getattr(self, f"image{index}")
            if images is None:
                continue
            for picture in rgb_pictures(images, f"image{index}"):
                width = int(self.reel_height / picture.shape[0] * picture.shape[1])
                if width < 1:
                    raise NodeInputError(f"image{index}", f"a {picture.shape[1]} × {picture.shape[0]} picture is "
                                                          f"under a pixel wide at reel_height {self.reel_height}")
                scaled.append((to_pil(picture), width))
                texts.append([getattr(self, f"image{index}_text"), width])
        total = sum(width + self.border for _, width in scaled)
        check_run_memory("reel_height", f"makes a {total} × {self.reel_height + self.border} reel",
                         images=Size(1, self.reel_height + self.border, total))
        reel = Image.new("RGBA", (total, self.reel_height + self.border), (0, 0, 0, 0))
        x = self.border // 2
        for picture, width in scaled:
            check_interrupted()
            reel.paste(picture.resize((width, self.reel_height), Image.LANCZOS), (x, self.border // 2))
            x += width + self.border
        return Reel(reel, texts, self.reel_height, self.border)


class LayerUtilityImageReelComposit(Node):
    """Stack up to four ImageReel strips with their captions, as LayerUtility's ImageReelComposit does:
    each strip centred, with a drop shadow (its alpha blurred by height // 80 // 1.3 and levelled to
    at most 54 of 255, offset by height // 80), its captions below in font_file at font_size (each
    centred under its picture as the pack places them: from one border in, half a border right of the
    picture's centre), and font_size × 1.5 plus `border` below it; light theme: #121212 on #E5E5E5,
    dark the reverse. Fonts are the .ttf / .otf files in models/fonts."""
    category = "😺dzNodes/LayerUtility"
    reel_1: REEL
    font_file: str = Choice(font_choices, if_empty="put .ttf / .otf font files in models/fonts")
    font_size: int = Int(40, min=4, max=1024)
    border: int = Int(32, min=8, max=512)
    color_theme: str = Choice(("light", "dark"), "light")
    reel_2: REEL = None
    reel_3: REEL = None
    reel_4: REEL = None
    outputs = {"image1": IMAGE}
    comfy = ComfyAlias(("LayerUtility: ImageReelComposit",), optional=("reel_2", "reel_3", "reel_4"))

    def captions(self, reel: Reel, font, color: str):
        """draw_reel_text: the captions on a transparent band the reel's width."""
        from PIL import Image, ImageDraw
        band = Image.new("RGBA", (reel.image.width, reel.reel_border + int(self.font_size * 1.5)), (0, 0, 0, 0))
        draw = ImageDraw.Draw(band)
        x = reel.reel_border
        for text, width in reel.texts:
            with drawn_within_pillows_limit("font_size", f"a caption at {self.font_size} px is larger than Pillow "
                                                         "draws: expected a smaller font_size"):
                draw.text((x + width // 2 - font.getbbox(text)[2] // 2, reel.reel_border // 4), text, fill=color,
                          font=font)
            x += width + reel.reel_border
        return band

    def run(self):
        import numpy as np
        from PIL import Image, ImageFilter
        reels = [(f"reel_{i}", getattr(self, f"reel_{i}")) for i in range(1, 5)]
        reels = [(name, reel) for name, reel in reels if reel is not None]
        for name, reel in reels:
            if not isinstance(reel, Reel):
                raise NodeInputError(name, "expected an ImageReel's reel")
        background, text_color = ("#E5E5E5", "#121212") if self.color_theme == "light" else ("#121212", "#E5E5E5")
        font_space = int(self.font_size * 1.5)
        width = max(reel.image.width for _, reel in reels)
        height = sum(reel.image.height + font_space + self.border for _, reel in reels)
        check_run_memory("border", f"makes a {width} × {height} picture", images=Size(1, height, width))
        try:
            font = font_file(self.font_file, self.font_size, basic_layout=False)
        except NodeInputError as e:
            raise NodeInputError("font_file", str(e)) from None
        canvas = Image.new("RGB", (width, height), background)
        y = 0
        for _, reel in reels:
            check_interrupted()
            alpha = reel.image.split()[3]
            shadow = reel.image.height // 80
            blurred = np.asarray(alpha.filter(ImageFilter.GaussianBlur(shadow // 1.3)))
            shadow_mask = Image.fromarray(adjust_levels(blurred, 0, 255, 0.5, 0, 54))
            x = (width - reel.image.width) // 2
            canvas.paste(Image.new("RGBA", reel.image.size, "black"), (x + shadow, y + shadow), mask=shadow_mask)
            canvas.paste(reel.image, (x, y), mask=alpha)
            band = self.captions(reel, font, text_color)
            canvas.paste(Image.new("RGB", band.size, text_color), (x, y + reel.image.height), mask=band.split()[3])
            y += reel.image.height + font_space + self.border
        return to_tensor(canvas)


# -- ImageTaggerSave (V2) ----------------------------------------------------------------------------------


def dated(text: str, now) -> str:
    """The pack's %date and %time in a path or prefix."""
    return text.replace("%date", now.strftime("%Y-%m-%d")).replace("%time", now.strftime("%H-%M-%S"))


def stamp(now, timestamp: str) -> str:
    """'_' and the time to the second or millisecond, as the pack appends it; '' for None."""
    if timestamp == "millisecond":
        return "_" + now.strftime("%Y-%m-%d_%H-%M-%S-%f")[:-3]
    return "_" + now.strftime("%Y-%m-%d_%H-%M-%S") if timestamp == "second" else ""


def comfy_counter(folder, stem: str) -> int:
    """ComfyUI's next number for `stem` files in folder (1 + the highest `stem_<digits>_...`), where
    the pack starts counting. Not nodes/image.py's _next_counter, which also counts a number ending
    at "." (`stem_00000003.png`, the tagger's own names): ComfyUI's get_save_image_path does not."""
    import re
    numbers = [0]
    if folder.is_dir():
        for path in folder.iterdir():
            match = re.fullmatch(re.escape(stem) + r"_(\d+)_.*", path.name)
            if match:
                numbers.append(int(match.group(1)))
    return max(numbers) + 1


class _TaggerSave(Node):
    """ImageTaggerSave's (and V2's) saving."""
    category = "😺dzNodes/LayerUtility/SystemIO"
    output_node = True
    outputs = {}

    def folder(self, now):
        from nodes.pack_nodes_fill import _caption_folder
        path = dated(self.custom_path, now)
        return _caption_folder(path, "custom_path") if path.strip() else folders.outputs

    def naming_input(self) -> str:
        return "filename_prefix"

    def stem(self, folder, now) -> str:
        """The file name, without extension: the first free numbered one, counting from ComfyUI's
        next number for the prefix in the outputs folder (or the prefix's subfolder of it)."""
        from graphflow.folders import file_name_problem
        from nodes.pack_nodes_fill import _caption_folder
        subfolder, _, prefix = dated(self.filename_prefix, now).replace("\\", "/").rstrip("/").rpartition("/")
        if not prefix:
            raise NodeInputError("filename_prefix", "empty: expected a file name prefix")
        # the longest name the loop below can try, checked before the file system is asked about it
        if problem := file_name_problem(f"{prefix}{stamp(now, self.timestamp)}_{0:08}.{self.format}"):
            raise NodeInputError("filename_prefix", problem)
        counted = _caption_folder(subfolder, "filename_prefix") if subfolder.strip() else folders.outputs
        counter = comfy_counter(counted, prefix)
        name = f"{prefix}{stamp(now, self.timestamp)}" if self.timestamp != "None" else f"{prefix}_{counter:08}"
        while (folder / f"{name}.{self.format}").is_file():
            counter += 1
            name = f"{prefix}{stamp(now, self.timestamp)}_{counter:08}"
        return name

    def run(self):
        import datetime

        from graphflow.folders import file_name_problem
        from nodes.image import temp_pngs
        from nodes.pack_nodes_fill import _write_replacing
        if not isinstance(self.tag_text, str):
            raise NodeInputError("tag_text", f"expected text, got {type(self.tag_text).__name__}")
        picture = to_pil(rgb_pictures(self.image, "image")[0])
        now = datetime.datetime.now()
        folder = self.folder(now)
        folder.mkdir(parents=True, exist_ok=True)
        name = self.stem(folder, now)
        if problem := file_name_problem(f"{name}.{self.format}"):
            raise NodeInputError(self.naming_input(), problem)
        if self.format == "png":
            options = {"format": "PNG", "compress_level": (100 - self.quality) // 10}
        else:
            picture, options = picture.convert("RGB"), {"format": "JPEG", "quality": self.quality}
        _write_replacing(folder / f"{name}.{self.format}", lambda path: picture.save(path, **options))
        tags = "\n".join(line for line in self.tag_text.split("\n") if line.strip())
        _write_replacing(folder / f"{name}.txt", lambda path: path.write_text(tags, encoding="utf-8"))
        if self.preview:
            show(images=temp_pngs(self.image[:1]))


class LayerUtilityImageTaggerSave(_TaggerSave):
    """Save the batch's first image with its tags beside it, as LayerUtility's ImageTaggerSave does:
    <name>.png or .jpg and <name>.txt (tag_text without its blank lines, UTF-8), in custom_path, a
    folder inside the outputs folder (made when missing; empty: the outputs folder itself; the pack
    writes anywhere on disk). The name is filename_prefix's last part and an 8-digit number (timestamp
    None: the first free from ComfyUI's next number for the prefix, counted as the pack counts it in
    the outputs folder, or the subfolder of it that filename_prefix names, whatever custom_path is)
    or the time to the second or millisecond (a number added when taken). %date and %time in
    custom_path and filename_prefix become the date and time. PNG's compression is
    (100 - quality) // 10; JPEG's quality is quality (an RGBA picture made RGB). preview shows the
    image."""
    image: IMAGE
    tag_text: STRING
    custom_path: str = Text("")
    filename_prefix: str = Text("comfyui")
    timestamp: str = Choice(("None", "second", "millisecond"), "None")
    format: str = Choice(("png", "jpg"), "png")
    quality: int = Int(80, min=10, max=100)
    preview: bool = Bool(True)
    comfy = ComfyAlias(("LayerUtility: ImageTaggerSave",))


class LayerUtilityImageTaggerSaveV2(_TaggerSave):
    """ImageTaggerSave with a name of its own, as LayerUtility's ImageTaggerSaveV2: custom_filename
    (its extension removed with remove_custom_filename_ext; a file name, not a path) and the
    timestamp, replacing a file of that name as the pack does; empty: ImageTaggerSave's numbered
    name."""
    image: IMAGE
    tag_text: STRING
    custom_path: str = Text("")
    custom_filename: str = Text("")
    remove_custom_filename_ext: bool = Bool(True)
    filename_prefix: str = Text("comfyui")
    timestamp: str = Choice(("None", "second", "millisecond"), "None")
    format: str = Choice(("png", "jpg"), "png")
    quality: int = Int(80, min=10, max=100)
    preview: bool = Bool(True)
    comfy = ComfyAlias(("LayerUtility: ImageTaggerSaveV2",))

    def naming_input(self) -> str:
        return "custom_filename" if self.custom_filename else "filename_prefix"

    def stem(self, folder, now):
        from pathlib import PurePath
        if not self.custom_filename:
            return super().stem(folder, now)
        if "/" in self.custom_filename or "\\" in self.custom_filename:
            raise NodeInputError("custom_filename", f"{self.custom_filename!r}: expected a file name, without "
                                                    "folders (custom_path names the folder)")
        name = PurePath(self.custom_filename).stem if self.remove_custom_filename_ext else self.custom_filename
        if not name.strip(" ."):
            # "", " ", "." or "..": a nameless (hidden) file; the pack's Path(".").stem is "" too
            raise NodeInputError("custom_filename", f"{self.custom_filename!r} leaves the file no name: expected "
                                                    "a file name")
        return name + stamp(now, self.timestamp)


# -- LoadImagesFromPath ------------------------------------------------------------------------------------


def path_files(path: str) -> list:
    """LoadImagesFromPath's files: every file of `path`, a folder inside the inputs folder (the pack
    reads any folder on disk), sorted by name (the pack takes the disk's order); links leading out
    of it left out; at most 100,000 entries looked at."""
    from nodes.pack_nodes_fill import _randomizer_folder, listed_files
    return listed_files(_randomizer_folder(path, "path"), ("",), "path", path)


class LayerUtilityLoadImagesFromPath(Node):
    """Load the pictures of a folder, as LayerUtility's LoadImagesFromPath does: path is a folder
    inside the inputs folder (the pack reads any folder on disk); its files sorted by name (the
    pack's are in the disk's order), every select_every_nth from the first, at most image_load_cap
    of them (0: all). Each file as ComfyUI's LoadImage loads it: its frames (EXIF-turned, frames of
    another size left out; a camera's MPO: its first picture) as a batch and 1 - alpha as its mask
    (no alpha: a 64 × 64 black one); lists of the images, masks and file names, and the count. A
    file that is not a picture is refused, naming it (the pack fails on it). A changed folder is
    read again; the server's picture-size and batch limits are checked before decoding."""
    category = "😺dzNodes/LayerUtility/SystemIO"
    path: str = Text("")
    image_load_cap: int = Int(0, min=0, max=999999)
    select_every_nth: int = Int(1, min=1, max=999999)
    outputs = {"images": ListOf(IMAGE), "masks": ListOf(MASK), "file_name": ListOf(STRING), "frame_count": INT}
    comfy = ComfyAlias(("LayerUtility: LoadImagesFromPath",), optional=("image_load_cap", "select_every_nth"))

    @classmethod
    def fingerprint(cls, path="", **widgets):
        try:
            stats = ((p.name, p.stat()) for p in path_files(path))
            return ",".join(f"{name}:{st.st_size}:{st.st_mtime_ns}" for name, st in stats)
        except (NodeInputError, OSError):
            return "missing"

    def run(self):
        from nodes.image import _load_picture, check_folder_pictures
        picked = path_files(self.path)[::self.select_every_nth]
        picked = picked[:self.image_load_cap] if self.image_load_cap else picked
        check_folder_pictures(picked, "image_load_cap", "path")
        images, masks = [], []
        for file in picked:
            check_interrupted()
            try:
                image, mask = _load_picture(file, file.name)
            except NodeInputError as e:
                raise NodeInputError("path", str(e)) from None
            images.append(image)
            masks.append(mask)
        return images, masks, [file.name for file in picked], len(picked)


# -- ImageCompositeHandleMask ------------------------------------------------------------------------------

HANDLE_MULTIPLES = ("8", "16", "32", "64", "128", "256", "512", "None")
GRADIENT_STRIP_PIXELS = 1 << 16  # the handle gradient's pixels worked out at once (some 84 bytes each)


def composite_layer(canvas, layer, x_center: int, y_center: int, scale: float, rotate: float, supersample: int,
                    opacity: int):
    """image_composite_handle_mask.composite_layer: the RGBA layer enlarged by supersample, scaled,
    turned (bicubic, the picture grown to hold it), shrunk back (Lanczos each time), its alpha times
    opacity, centred on (x_center, y_center) over the RGBA canvas. (composite RGB, the layer's own
    alpha there as a mask, its whole box there as a mask)."""
    from PIL import Image
    if supersample > 1:
        layer = layer.resize((layer.width * supersample, layer.height * supersample), Image.LANCZOS)
    if scale != 1.0:
        size = int(layer.width * scale), int(layer.height * scale)
        if min(size) < 1:
            raise NodeInputError("scale", f"{scale} leaves a {layer.width} × {layer.height} layer no pixels")
        layer = layer.resize(size, Image.LANCZOS)
    if rotate != 0:
        layer = layer.rotate(rotate, expand=True, resample=Image.BICUBIC)
    if supersample > 1:
        layer = layer.resize((max(layer.width // supersample, 1), max(layer.height // supersample, 1)), Image.LANCZOS)
    r, g, b, a = layer.split()
    if 0 <= opacity < 100:
        layer = Image.merge("RGBA", (r, g, b, a.point(lambda v: int(v * opacity * 0.01))))
    left, top = int(x_center - layer.width / 2), int(y_center - layer.height / 2)
    composite = canvas.copy()
    composite.alpha_composite(layer, (left, top))
    white = Image.new("L", a.size, "white")
    mask = Image.new("RGBA", canvas.size, "black")
    mask.alpha_composite(Image.merge("RGBA", (white, white, white, a)), (left, top))
    box = Image.new("RGBA", canvas.size, "black")
    box.alpha_composite(white.convert("RGBA"), (left, top))
    return composite.convert("RGB"), mask.convert("L"), box.convert("L")


def rounded_box_distance(px, py, box, radii):
    """sdf_rounded_rect_4corner: the signed distance to a box whose corners (top left, top right,
    bottom right, bottom left) are rounded by radii; each pixel takes its quadrant's radius."""
    import numpy as np
    x1, y1, x2, y2 = box
    dx, dy = px - (x1 + x2) * 0.5, py - (y1 + y2) * 0.5
    top_left, top_right, bottom_right, bottom_left = radii
    radius = np.where((dx < 0) & (dy < 0), top_left,
                      np.where((dx > 0) & (dy < 0), top_right,
                               np.where((dx > 0) & (dy > 0), bottom_right, bottom_left)))
    ex, ey = np.abs(dx) - ((x2 - x1) * 0.5 - radius), np.abs(dy) - ((y2 - y1) * 0.5 - radius)
    return np.hypot(np.maximum(ex, 0), np.maximum(ey, 0)) + np.minimum(np.maximum(ex, ey), 0) - radius


def handle_gradient(size: tuple[int, int], outer: list, inner: tuple, radius: int):
    """rounded_rect_gradient_mask_numpy: white inside the inner box (corners rounded by radius // 2),
    black outside the outer one (rounded by radius; an edge at or past the picture's pushed radius
    out), smoothstepped between by the two distances; corners on a side where the boxes meet are
    square. An 8-bit L picture. Worked out in strips of rows, and only where the boxes reach: the
    pack's float64 grids and distances over the whole picture take some 84 bytes a pixel."""
    import numpy as np
    from PIL import Image
    width, height = size
    outer = [-radius if outer[0] <= 0 else outer[0], -radius if outer[1] <= 0 else outer[1],
             width + radius if outer[2] >= width else outer[2], height + radius if outer[3] >= height else outer[3]]
    outer_radii = np.full(4, radius, np.float32)
    inner_radii = np.full(4, radius // 2, np.float32)
    for side, corners in ((0, (0, 3)), (2, (1, 2)), (1, (0, 1)), (3, (3, 2))):
        if outer[side] == inner[side]:
            outer_radii[list(corners)] = inner_radii[list(corners)] = 0
    # past both boxes both distances are positive, so the mask is black there
    xs = [outer[0], outer[2], inner[0], inner[2]]
    ys = [outer[1], outer[3], inner[1], inner[3]]
    left, right = max(int(np.floor(min(xs))), 0), min(int(np.ceil(max(xs))), width)
    top, bottom = max(int(np.floor(min(ys))), 0), min(int(np.ceil(max(ys))), height)
    mask = np.zeros((height, width), np.uint8)
    rows = max(GRADIENT_STRIP_PIXELS // max(right - left, 1), 1)
    for start in range(top, bottom, rows):
        px, py = np.meshgrid(np.arange(left, right) + 0.5, np.arange(start, min(start + rows, bottom)) + 0.5)
        outside = rounded_box_distance(px, py, outer, outer_radii)
        inside = rounded_box_distance(px, py, inner, inner_radii)
        strip = (inside < 0).astype(np.float32)
        between = ~((inside < 0) | (outside > 0))
        t = np.clip(1.0 - inside[between] / (inside[between] - outside[between] + 1e-9), 0, 1)
        strip[between] = t * t * (3 - 2 * t)
        mask[start:start + len(strip), left:right] = (strip * 255).astype(np.uint8)
    return Image.fromarray(mask, mode="L")


def handle_box(mask_box: tuple, handles: tuple, multiple: str, width: int, height: int) -> tuple:
    """The handle crop box: mask_box (x1, y1, x2, y2) widened on each side by its handle times the
    box's mean side, plus a pixel; its size rounded up to `multiple` about its centre; an edge past
    the picture put on it (the far edge then rounded up, or the near one moved to keep the rounded
    size, as the pack does)."""
    from nodes.pack_nodes_layerstyle import round_up_to_multiple
    x1, y1, x2, y2 = mask_box
    top, bottom, left, right = handles
    side = ((x2 - x1) + (y2 - y1)) // 2
    hx1, hx2 = int(x1 - left * side - 1), int(x2 + right * side + 1)
    hy1, hy2 = int(y1 - top * side - 1), int(y2 + bottom * side + 1)
    step = None if multiple == "None" else int(multiple)
    round_up = (lambda n: round_up_to_multiple(n, step)) if step else (lambda n: n)
    if step:
        hw, hh = round_up(hx2 - hx1), round_up(hy2 - hy1)
        hx1, hy1 = hx1 - (hw - (hx2 - hx1)) // 2, hy1 - (hh - (hy2 - hy1)) // 2
        hx2, hy2 = hx1 + hw, hy1 + hh
    if hx1 < 0:
        hx1, hx2 = 0, round_up(hx2)
    if hx2 > width:
        hx1, hx2 = hx2 - round_up(hx2 - hx1), width
    if hy1 < 0:
        hy1, hy2 = 0, round_up(hy2)
    if hy2 > height:
        hy1, hy2 = hy2 - round_up(hy2 - hy1), height
    return hx1, hy1, hx2, hy2


class LayerUtilityImageCompositeHandleMask(Node):
    """Composite a layer on a background and make a soft "handle" mask round it, as LayerUtility's
    ImageCompositeHandleMask does: the layer (its alpha, or layer_mask, inverted with invert_mask;
    opacity 0 empties it) mirrored, scaled, turned (anti_aliasing: worked at that many times the
    size) and centred at x_percent, y_percent of the background. The box of the composite's mask
    (handle_detect mask_area) or of the layer's whole box (layer_bbox), widened by the reserves and
    kept in the picture, is white in handle_mask; it fades (smoothstep) to black at the handle crop
    box, that box widened on each side by its handle times the box's mean side, its size rounded up
    to round_to_multiple, with corners rounded by handle_mask_outradius (half that inside).
    handle_crop_box is [x1, y1, x2, y2] and handle_overrange names the picture's sides the handle box
    reaches ("top,bottom,left,right" as the pack writes them; "None"), both of the batch's last.
    Unlike the pack, left_reserve and top_reserve widen only their own side (the pack's shift the
    box's far edge too), and round_to_multiple None with a handle box past the picture works (the
    pack fails there)."""
    category = "😺dzNodes/LayerUtility"
    background_image: IMAGE
    layer_image: IMAGE
    invert_mask: bool = Bool(True)
    opacity: int = Int(100, min=0, max=100)
    x_percent: float = Float(50.0, min=-999.0, max=999.0, step=0.01)
    y_percent: float = Float(50.0, min=-999.0, max=999.0, step=0.01)
    scale: float = Float(1.0, min=0.001, max=1e4, step=0.001)
    rotate: float = Float(0.0, min=-360.0, max=360.0, step=0.01)
    mirror: str = Choice(("None", "horizontal", "vertical"), "None")
    anti_aliasing: int = Int(0, min=0, max=8)
    handle_detect: str = Choice(("mask_area", "layer_bbox"), "mask_area")
    top_handle: float = Float(0.3, min=0.0, max=5.0, step=0.01)
    bottom_handle: float = Float(0.3, min=0.0, max=5.0, step=0.01)
    left_handle: float = Float(0.3, min=0.0, max=5.0, step=0.01)
    right_handle: float = Float(0.3, min=0.0, max=5.0, step=0.01)
    handle_mask_outradius: int = Int(128, min=8, max=9999)
    top_reserve: int = Int(0, min=-9999, max=9999)
    bottom_reserve: int = Int(0, min=-9999, max=9999)
    left_reserve: int = Int(0, min=-9999, max=9999)
    right_reserve: int = Int(0, min=-9999, max=9999)
    round_to_multiple: str = Choice(HANDLE_MULTIPLES, "8")
    layer_mask: MASK = None
    outputs = {"image": IMAGE, "mask": MASK, "layer_bbox_mask": MASK, "handle_mask": MASK, "handle_crop_box": BOX,
               "handle_overrange": STRING}
    comfy = ComfyAlias(("LayerUtility: ImageCompositeHandleMask",), optional=("layer_mask",))

    def layer_alphas(self, layers: list) -> list:
        """Each layer's mask as an L picture: layer_mask's (inverted with invert_mask), else its alpha."""
        from PIL import Image
        if self.layer_mask is None:
            return [to_pil(layer).split()[-1] if layer.shape[-1] == 4 else
                    Image.new("L", (layer.shape[1], layer.shape[0]), "white") for layer in layers]
        masks = mask_batch(self.layer_mask)
        return [to_pil(1 - m if self.invert_mask else m) for m in masks]

    def run(self):
        from PIL import Image
        from nodes.pack_nodes_layerstyle import mask_area
        backgrounds = rgb_pictures(self.background_image, "background_image")
        layers = rgb_pictures(self.layer_image, "layer_image")
        alphas = self.layer_alphas(layers)
        grow = max(self.anti_aliasing, 1) * self.scale
        longest = max(layer.shape[0] for layer in layers), max(layer.shape[1] for layer in layers)
        check_run_memory("scale", f"scales a {longest[1]} × {longest[0]} layer by {grow:g}",
                         images=Size(1, int(longest[0] * grow) + 1, int(longest[1] * grow) + 1))
        images, masks, box_masks, handle_masks, overrange = [], [], [], [], "None"
        for i in range(max(len(backgrounds), len(layers), len(alphas))):
            check_interrupted()
            canvas = to_pil(nth(backgrounds, i)).convert("RGBA")
            layer = to_pil(nth(layers, i)).convert("RGBA")
            alpha = nth(alphas, i)
            if alpha.size != layer.size:
                alpha = Image.new("L", layer.size, "white")
            if self.opacity == 0:
                alpha = alpha.point(lambda v: 0)
            layer = Image.merge("RGBA", (*layer.split()[:3], alpha))
            if self.mirror != "None":
                flip = Image.FLIP_LEFT_RIGHT if self.mirror == "horizontal" else Image.FLIP_TOP_BOTTOM
                layer = layer.transpose(flip)
            composite, mask, box_mask = composite_layer(
                canvas, layer, int(canvas.width * self.x_percent / 100), int(canvas.height * self.y_percent / 100),
                self.scale, self.rotate, max(self.anti_aliasing, 1), self.opacity)
            x, y, w, h = mask_area(mask if self.handle_detect == "mask_area" else box_mask)
            box = (max(x - self.left_reserve, 0), max(y - self.top_reserve, 0),
                   min(x + w + self.right_reserve, canvas.width), min(y + h + self.bottom_reserve, canvas.height))
            crop = handle_box(box, (self.top_handle, self.bottom_handle, self.left_handle, self.right_handle),
                              self.round_to_multiple, canvas.width, canvas.height)
            handle = handle_gradient(canvas.size, list(crop), box, self.handle_mask_outradius)
            sides = [name for name, out in (("top,", crop[1] <= 0), ("bottom,", crop[3] >= canvas.height),
                                            ("left,", crop[0] <= 0), ("right", crop[2] >= canvas.width)) if out]
            overrange = "".join(sides) if sides else overrange
            images.append(to_tensor(composite))
            masks.append(to_tensor(mask))
            box_masks.append(to_tensor(box_mask))
            handle_masks.append(to_tensor(handle))
        return batch(images), batch(masks), batch(box_masks), batch(handle_masks), list(crop), overrange


# -- DistortDisplace ---------------------------------------------------------------------------------------

SHADOW_MODES = ("linear burn", "multiply", *(m for m in BLEND_MODES_V2 if m not in ("linear burn", "multiply")))
HIGHLIGHT_MODES = ("screen", "linear dodge(add)",
                   *(m for m in BLEND_MODES_V2 if m not in ("screen", "linear dodge(add)")))


def displaced(material, grey, strength: float, smoothness: int, supersample: int):
    """imagefunc.displacement_image: the RGB material's pixels moved right and down (both by the same
    amount) by the grey map (L, Lanczos to the material's size, Gaussian-blurred by smoothness) times
    strength / 255, truncated; at supersample times the size (Lanczos up, then blurred by
    supersample // 3 and Lanczos down). A place past an edge is mirrored once, as the pack does; past
    that the pack fails, and ours refuses, naming distort_strength."""
    import numpy as np
    from PIL import Image, ImageFilter
    material, grey = material.convert("RGB"), grey.convert("L")
    width, height = material.size
    if grey.size != material.size:  # the pack's step; DistortDisplace refuses a material of another size first
        grey = grey.resize(material.size, Image.LANCZOS)
    if smoothness:
        grey = grey.filter(ImageFilter.GaussianBlur(radius=smoothness))
    if supersample > 1:
        size = (width * supersample, height * supersample)
        material, grey = material.resize(size, Image.LANCZOS), grey.resize(size, Image.LANCZOS)
    pixels = np.asarray(material)
    disp = np.asarray(grey).astype(np.float32)
    h, w = disp.shape
    ys, xs = np.meshgrid(np.arange(h, dtype=np.int32), np.arange(w, dtype=np.int32), indexing="ij")
    offset = (disp / 255.0 * strength * supersample).astype(np.int32)

    def mirrored(coord, size: int):
        coord = np.where(coord < 0, -coord, coord)
        coord = np.where(coord >= size, 2 * size - coord - 1, coord)
        if coord.size and (coord.min() < -size or coord.max() >= size):
            raise NodeInputError("distort_strength", f"{strength} moves pixels more than twice the picture's "
                                                     f"{size} pixels: expected a smaller strength")
        return coord  # from -size to -1: numpy counts from the far end, as in the pack

    out = Image.fromarray(pixels[mirrored(ys + offset, h), mirrored(xs + offset, w)], mode="RGB")
    if supersample > 1:
        out = out.filter(ImageFilter.GaussianBlur(radius=int(supersample / 3))).resize((width, height), Image.LANCZOS)
    return out


class LayerFilterDistortDisplace(Node):
    """Displace a material picture by an image's greys and blend it back over the image, as
    LayerFilter's DistortDisplace does: displaced_material is material_image's pixels moved right and
    down by the image's grey (0..255) times distort_strength / 255 (the grey map Lanczos-scaled to the
    material and blurred by smoothness; worked at anti_aliasing times the size; places past an edge
    mirrored); the image is that blended onto the image by shadow_blend_mode at shadow_strength, then
    by highlight_blend_mode at highlight_strength (0: skipped), and with `mask` only inside the mask.
    The material must be the image's size (the pack's blend fails otherwise); a mask of another size
    is scaled (Lanczos) to it (the pack fails there too)."""
    category = "😺dzNodes/LayerFilter"
    image: IMAGE
    material_image: IMAGE
    distort_strength: float = Float(50.0, min=-999.0, max=999.0, step=0.1)
    smoothness: int = Int(8, min=0, max=99)
    anti_aliasing: int = Int(2, min=1, max=16)
    shadow_blend_mode: str = Choice(SHADOW_MODES, "linear burn")
    shadow_strength: int = Int(75, min=0, max=100)
    highlight_blend_mode: str = Choice(HIGHLIGHT_MODES, "screen")
    highlight_strength: int = Int(30, min=0, max=100)
    mask: MASK = None
    outputs = {"image": IMAGE, "displaced_material": IMAGE}
    comfy = ComfyAlias(("LayerFilter: DistortDisplace",), optional=("mask",))

    def run(self):
        from PIL import Image
        from nodes.pack_nodes_layerstyle2 import chop_image_v2
        images = rgb_pictures(self.image, "image")
        materials = rgb_pictures(self.material_image, "material_image")
        masks = list(mask_batch(self.mask)) if self.mask is not None else []
        big = max(m.shape[0] for m in materials), max(m.shape[1] for m in materials)
        check_run_memory("anti_aliasing", f"displaces at {self.anti_aliasing} times the size",
                         images=Size(2, big[0] * self.anti_aliasing, big[1] * self.anti_aliasing))
        results, moved = [], []
        for i in range(max(len(images), len(materials), len(masks))):
            check_interrupted()
            picture, material = to_pil(nth(images, i)), to_pil(nth(materials, i))
            if material.size != picture.size:
                raise NodeInputError("material_image", f"{material.width} × {material.height}: expected the image's "
                                                       f"size, {picture.width} × {picture.height}")
            out = displaced(material, picture, self.distort_strength, self.smoothness, self.anti_aliasing)
            result = picture
            if self.shadow_strength > 0:
                result = chop_image_v2(picture, out, self.shadow_blend_mode, self.shadow_strength, "shadow_blend_mode")
            if self.highlight_strength > 0:
                result = chop_image_v2(result, out, self.highlight_blend_mode, self.highlight_strength,
                                       "highlight_blend_mode")
            if masks:
                mask = to_pil(nth(masks, i)).convert("L")
                if mask.size != out.size:
                    mask = mask.resize(out.size, Image.LANCZOS)
                picture = picture.copy()
                picture.paste(result, mask=mask)
                result = picture
            results.append(to_tensor(result))
            moved.append(to_tensor(out))
        return batch(results), batch(moved)


# -- DrawRoundedRectangle ----------------------------------------------------------------------------------


class LayerMaskDrawRoundedRectangle(Node):
    """A mask of one rounded rectangle filling it, as LayerMask's DrawRoundedRectangle draws it:
    width × height (or size_as's first picture's size), corners rounded by rounded_rect_radius % of
    half the shorter side (100: an ellipse), drawn at anti_aliasing times the size, smoothed and
    scaled back (Lanczos), as RoundedRectangle draws its rectangle."""
    category = "😺dzNodes/LayerMask"
    rounded_rect_radius: int = Int(50, min=0, max=100)
    anti_aliasing: int = Int(2, min=0, max=16)
    width: int = Int(1024, min=8, max=100_000_000, resource="width")
    height: int = Int(1024, min=8, max=100_000_000, resource="height")
    size_as: ANY = None
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("LayerMask: DrawRoundedRectangle",), optional=("size_as",))

    def run(self):
        from nodes.pack_nodes_layerstyle import check_made_size, picture_size
        from nodes.pack_nodes_layerstyle3 import rounded_rectangle_mask
        width, height = (self.width, self.height) if self.size_as is None else picture_size(self.size_as, "size_as")
        factor = max(self.anti_aliasing, 1)
        check_made_size("size_as" if self.size_as is not None else "width", 1, width, height, "the rounded rectangle")
        if factor > 1:  # the size fits: what does not is drawing it larger
            check_made_size("anti_aliasing", 1, width * factor, height * factor,
                            f"drawing the rounded rectangle at {factor} times its size")
        mask = rounded_rectangle_mask((width, height), self.rounded_rect_radius, (0, 0, width, height),
                                      self.anti_aliasing)
        return to_tensor(mask)
