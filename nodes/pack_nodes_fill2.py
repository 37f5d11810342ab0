"""filliptm's ComfyUI_Fill-Nodes, round 2 (round 1 is nodes/pack_nodes_fill.py): more of its
model-free classes, under the pack's class names, display names (its __init__.py at
003fd21a70528c707c34178543948fa992458781), inputs (order, defaults, ranges), outputs and categories.
Read from the pack's nodes/*.py at these commits:
  9119ccecb2eb5715b172a8871e7e6505a2cdb5b2 FL_SamplerStrings.py; FL_SchedulerStrings.py in its
  seven-scheduler layout (the version beside that FL_SamplerStrings; a later one lists ComfyUI's
  schedulers, and its saves, of another length, are refused naming the layout);
  f03863ef365c64241187520b35122a3fd9383606 FL_Prompt.py (FL_PromptBasic);
  f502e9bfa47d26c22b3caf8001f5680cf6a4d0ef FL_PromptMulti.py; FL_RandomRange.py (FL_RandomNumber)
  and FL_ImageBatchListConverter.py (the version that resizes every other image to the first's), as
  the index holds them; 40d4853393652bdd12f0693145b18bf64aa370e6 FL_GradGen.py;
  66e3b52cea6871fbe045cc5aee45ce2f71adac48 FL_ImageAdjuster.py; FL_Ripple.py in the layout with
  center_x, center_y and modulation (its later one adds envelope_json, blend_intensity, invert,
  mask); FL_SeparateMasks.py; ab164ec202a0de86306cc805db865d5006785076 FL_KsamplerSettings.py;
  7c9bd3fb169766e7be0ce9ad00e7e27e34bef509 FL_PasteOnCanvas.py;
  a8c92f83832b49920796685be3b002286b853457 FL_MadLibGenerator.py;
  5d9f67074ba74659e2bb3e2c757d0e15eeade220 FL_CaptionToCSV.py;
  e9eaa6fc2a4bf3482cb97f21ee499d7452333397 FL_Caption_Saver_V2.py; FL_SaveCSV.py,
  FL_SaveWebpImages.py (FL_SaveWebPImage(SaveImage)), FL_SaveAndDisplayImage.py, FL_ZipSave.py;
  3f60945cef4a3a8b4acca3121a9ccb5430ae0daf FL_InpaintCrop.py (FL_InpaintCrop, FL_Inpaint_Stitch);
  FL_PixelArt.py (FL_PixelArtShader) in its layout with use_aspect_ratio, palette_image,
  palette_colors and mask (its later one adds envelope_json, blend_intensity, invert first);
  FL_PaperDrawn.py (left out: an OpenGL shader); 852542d7df34e09ff37981ac91a0fc9ae0b2dd8a
  FL_SaveImages.py; 13509480ac9c597d4cb75c6004194acc62888e3b FL_LoadImage.py (and its editor,
  web/nodes/FL_LoadImage.js at 357261837555b3acdc4d0cf012f0146fc52df7dc: the folder + "/" + the file);
  06ade96ea24e1e73110b81b59c15f00c9aa3b720 FL_KsamplerPlus.py;
  ab164ec202a0de86306cc805db865d5006785076 FL_KsamplerBasic.py; 5d9f67074ba74659e2bb3e2c757d0e15eeade220
  FL_DirectoryCrawl.py, FL_MirrorAndAppendCaptions.py; FL_PathTypeChecker.py.
(Files named without a commit are those the public index holds without one.)

Nodes here: FL_KsamplerPlus, FL_KsamplerBasic (graphflow's KSampler run slice by slice),
FL_SamplerStrings, FL_SchedulerStrings, FL_KsamplerSettings, FL_PromptBasic, FL_PromptMulti,
FL_MadLibGenerator, FL_RandomNumber, FL_ImageListToImageBatch, FL_ImageBatchToImageList,
FL_GradGenerator, FL_ImageAdjuster, FL_Ripple, FL_PixelArtShader, FL_SeparateMaskComponents,
FL_PasteOnCanvas, FL_PathTypeChecker; FL_DirectoryCrawl, FL_LoadImage, FL_SaveImages,
FL_SaveWebPImage(SaveImage), FL_SaveAndDisplayImage, FL_CaptionToCSV, FL_SaveCSV,
FL_CaptionSaver_V2, FL_MirrorAndAppendCaptions, FL_ZipSave (files read only inside the inputs folder
and written only inside the outputs folder, as round 1's FL_ImageCaptionSaver; the pack reads and
writes anywhere on disk); FL_InpaintCrop and FL_Inpaint_Stitch (lquesada's first Inpaint Crop and
Stitch as the pack forked it: bislerp rescales, no blending; its maths differ from graphflow's
lquesada nodes, so they are built here on graphflow's bislerp, ComfyUI composite and the old nodes'
hole filling; their STITCH socket is the old lquesada nodes' one, each stitch refusing the other's
value). The pack's other classes are named in graphflow/comfy_format.py (FILL_LEFT_OUT with why,
FILL_LATER not built yet).

Where the pack draws from the clock or Python's global random state (FL_RandomNumber's seed 0)
ours is seeded, so a run repeats; each such node's help says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from graphflow.api import (
    CONDITIONING, FLOAT, IMAGE, INT, LATENT, MASK, MODEL, STRING, VAE, Bool, Choice, ComfyAlias, Estimate, Float,
    Int, ListOf, Node, NodeInputError, Size, Text, check_interrupted, safe_join, socket_type,
)
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from nodes.image import SaveImage, _image
from nodes.pack_nodes_crop_stitch_old import STITCH
from nodes.pack_nodes_fill import PATH, _channels, _levels

COMFY_PACK = "ComfyUI_Fill-Nodes"  # the custom node pack this module's ComfyUI classes come from

KSAMPLERS = "🏵️Fill Nodes/Ksamplers"
PROMPTING = "🏵️Fill Nodes/Prompting"
UTILITY_LOWER = "🏵️Fill Nodes/utility"
VFX = "🏵️Fill Nodes/VFX"
MASK_MAPPING = socket_type("MASK_MAPPING", "#8d6e63", "For each separated mask component, the batch index of the "
                                                     "mask it came from (FL_SeparateMaskComponents)")

# FL_SamplerStrings' switches, in the pack's order (the samplers of ComfyUI when it was written)
SAMPLER_SWITCHES = ("euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
                    "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_sde",
                    "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_3m_sde",
                    "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm", "ipndm_v", "deis", "ddim", "uni_pc", "uni_pc_bh2")
SCHEDULER_SWITCHES = ("normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta")
# FL_KsamplerSettings' aspect ratios: (title, width, height) in landscape
RATIOS = (("1:1___SD 512x512", 512, 512), ("4:3___SD 682x512", 682, 512), ("3:2___SD 768x512", 768, 512),
          ("16:9__SD 910x512", 910, 512), ("1:85:1 SD 952x512", 952, 512), ("2:1___SD 1024x512", 1024, 512),
          ("1:1_SV3D 576x576", 576, 576), ("16:9_SVD 576x1024", 1024, 576), ("1:1__SD2 768x768", 768, 768),
          ("1:1___XL 1024x1024", 1024, 1024), ("16:15_XL 1024x960", 1024, 960), ("17:15_XL 1088x960", 1088, 960),
          ("17:14_XL 1088x896", 1088, 896), ("4:3___XL 1152x896", 1152, 896), ("18:13_XL 1152x832", 1152, 832),
          ("3:2___XL 1216x832", 1216, 832), ("5:3___XL 1280x768", 1280, 768), ("7:4___XL 1344x768", 1344, 768),
          ("21:11_XL 1344x704", 1344, 704), ("2:1___XL 1408x704", 1408, 704), ("23:11_XL 1472x704", 1472, 704),
          ("21:9__XL 1536x640", 1536, 640), ("5:2___XL 1600x640", 1600, 640), ("26:9__XL 1664x576", 1664, 576),
          ("3:1___XL 1728x576", 1728, 576), ("28:9__XL 1792x576", 1792, 576), ("29:8__XL 1856x512", 1856, 512),
          ("15:4__XL 1920x512", 1920, 512), ("31:8__XL 1984x512", 1984, 512), ("4:1___XL 2048x512", 2048, 512))
EASINGS = ("Linear", "Ease In", "Ease Out", "Ease In-Out")
MOST_GRADIENT_STOPS = 10_000  # FL_GradGenerator's colour stops (the JSON text could hold millions)


# -- sampler settings ------------------------------------------------------------------------------


def _layout_widgets(names: tuple, version: str):
    """A UI save's widgets_values read in the layout built here (names, the pack at version); one of
    another length is from another version of the pack and is refused rather than misread."""
    def read(values: list) -> list:
        if len(values) != len(names):
            raise ValueError(f"a save with {len(values)} widget values is from another version of the pack: not read; "
                             f"graphflow builds the layout of {version} ({len(names)} widgets: {', '.join(names)}): "
                             "put a new node in its place")
        return values
    read.doc_note = "UI saves of the pack's other layouts refused, naming the one read (see the node's help)"
    return read


class FillSamplerStrings(Node):
    """The names of the samplers switched on, joined by commas in the order listed (for an XYZ plot's
    axis); none on gives empty text. This is the pack's layout of 27 switches (9119ccec); a save with
    another number of them is refused, not misread."""
    category = KSAMPLERS
    display_name = "FL Sampler String XYZ"
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("FL_SamplerStrings",), widgets=_layout_widgets(SAMPLER_SWITCHES, "9119ccec"))
    __annotations__ = {}
    for _name in SAMPLER_SWITCHES:  # declared in turn into the class body's namespace, as the pack lists them
        __annotations__[_name] = bool
        locals()[_name] = Bool(False)
    del _name

    def run(self):
        return ",".join(name for name in SAMPLER_SWITCHES if getattr(self, name))


class FillSchedulerStrings(Node):
    """The names of the schedulers switched on, joined by commas in the order listed; none on gives
    empty text. This is the pack's layout of seven switches (normal ... beta); its later one, which
    lists every ComfyUI scheduler, is refused, not misread."""
    category = KSAMPLERS
    display_name = "FL Scheduler String XYZ"
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("FL_SchedulerStrings",), widgets=_layout_widgets(SCHEDULER_SWITCHES, "the seven-switch one"))
    __annotations__ = {}
    for _name in SCHEDULER_SWITCHES:  # declared in turn into the class body's namespace, as the pack lists them
        __annotations__[_name] = bool
        locals()[_name] = Bool(False)
    del _name

    def run(self):
        return ",".join(name for name in SCHEDULER_SWITCHES if getattr(self, name))


class FillKsamplerSettings(Node):
    """Settings for a two-pass (hires fix) sampling, given on as they are: the aspect ratio's width and
    height (swapped for portrait), the batch size, each pass's steps and CFG, the second pass's
    denoise, the scale factor, the sampler and the scheduler. SAMPLER and SCHEDULER are text here,
    as graphflow's other selectors give them (the pack's are ComfyUI's sampler and scheduler lists,
    the editor's COMBO); they link to a sampler's sampler_name and scheduler all the same."""
    category = KSAMPLERS
    display_name = "FL KSampler Settings"
    Aspect_Ratio: str = Choice([title for title, _, _ in RATIOS], "1:1___XL 1024x1024")
    rotation: str = Choice(["landscape", "portrait"], "landscape")
    batch: int = Int(1, min=1, max=10000)
    Pass_1_steps: int = Int(25, min=1, max=10000)
    Pass_2_steps: int = Int(25, min=1, max=10000)
    Pass_1_CFG: float = Float(6.0, min=-10.0, max=100.0, step=0.1)
    Pass_2_CFG: float = Float(6.0, min=-10.0, max=100.0, step=0.1)
    Pass_2_denoise: float = Float(0.5, min=-10.0, max=100.0, step=0.001)
    scale_factor: float = Float(1.5, min=1.0, max=10.0, step=0.1)
    sampler: str = Choice(SAMPLER_NAMES, SAMPLER_NAMES[0])
    scheduler: str = Choice(SCHEDULER_NAMES, SCHEDULER_NAMES[0])
    outputs = {"WIDTH": INT, "HEIGHT": INT, "BATCH_SIZE": INT, "Pass_1_steps": INT, "Pass_2_steps": INT,
               "Pass_1_CFG": FLOAT, "Pass_2_CFG": FLOAT, "Pass_2_denoise": FLOAT, "SCALE": FLOAT, "SAMPLER": STRING,
               "SCHEDULER": STRING}
    comfy = ComfyAlias(("FL_KsamplerSettings",), optional=("batch", "Pass_1_steps", "Pass_2_steps", "Pass_1_CFG",
                                                           "Pass_2_CFG", "Pass_2_denoise", "scale_factor", "sampler",
                                                           "scheduler"))

    def run(self):
        width, height = next((w, h) for title, w, h in RATIOS if title == self.Aspect_Ratio)
        if self.rotation == "portrait":
            width, height = height, width
        return (width, height, self.batch, self.Pass_1_steps, self.Pass_2_steps, self.Pass_1_CFG, self.Pass_2_CFG,
                self.Pass_2_denoise, self.scale_factor, self.sampler, self.scheduler)


# -- prompts and numbers ---------------------------------------------------------------------------


class FillPromptBasic(Node):
    """prepend + prompt + append, joined as they are (no spaces added)."""
    category = PROMPTING
    display_name = "FL Prompt Basic"
    prepend: str = Text("", multiline=True)
    prompt: str = Text("", multiline=True)
    append: str = Text("", multiline=True)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("FL_PromptBasic",))

    def run(self):
        return self.prepend + self.prompt + self.append


class FillPromptMulti(Node):
    """One prompt a line: the non-blank lines of positive_text and negative_text, stripped, paired in
    order, as lists (what follows runs once a pair). The shorter side repeats its last line to the
    other's length (empty text when it has none); name is name_prefix and the pair's number from 1.
    No line on either side is refused."""
    category = PROMPTING
    display_name = "FL Prompt Multi"
    positive_text: str = Text("", multiline=True)
    negative_text: str = Text("", multiline=True)
    name_prefix: str = Text("prompt_")
    outputs = {"positive": ListOf(STRING), "negative": ListOf(STRING), "name": ListOf(STRING)}
    comfy = ComfyAlias(("FL_PromptMulti",), optional=("name_prefix",))

    def run(self):
        positives = [line.strip() for line in self.positive_text.split("\n") if line.strip()]
        negatives = [line.strip() for line in self.negative_text.split("\n") if line.strip()]
        count = max(len(positives), len(negatives))
        if not count:
            raise NodeInputError("positive_text", "no prompt lines here or in negative_text: expected one prompt a "
                                                  "line (the pack gives empty lists, on which nothing after it runs)")
        positives += [positives[-1] if positives else ""] * (count - len(positives))
        negatives += [negatives[-1] if negatives else ""] * (count - len(negatives))
        return positives, negatives, [f"{self.name_prefix}{i}" for i in range(1, count + 1)]


class FillRandomNumber(Node):
    """A random number between min_value and max_value from Python's Mersenne Twister seeded with
    seed: FLOAT is min + (max − min) · r₁, INT the whole part (towards 0) of min + (max − min) · r₂,
    r₁ and r₂ the generator's first two draws, as in the pack. The pack draws a fresh seed (from the
    global random state) for seed 0 and reseeds Python's and torch's global generators; here seed 0
    is a seed like any other, so a run repeats, and no global state is touched."""
    category = "🏵️Fill Nodes/Utility"
    display_name = "FL Random Number"
    min_value: float = Float(0.0, min=-1000000.0, max=1000000.0, step=0.1)
    max_value: float = Float(1.0, min=-1000000.0, max=1000000.0, step=0.1)
    seed: int = Int(0, min=0, max=1000000)
    outputs = {"INT": INT, "FLOAT": FLOAT}
    comfy = ComfyAlias(("FL_RandomNumber",), optional=("min_value", "max_value", "seed"))

    def run(self):
        import random
        if self.min_value > self.max_value:
            raise NodeInputError("max_value", f"{self.max_value} is below min_value {self.min_value}: expected at "
                                              "least min_value")
        draws = random.Random(self.seed)
        span = self.max_value - self.min_value
        as_float = self.min_value + span * draws.random()
        return int(self.min_value + span * draws.random()), as_float


# -- lists and batches -----------------------------------------------------------------------------


class FillImageListToImageBatch(Node):
    """A list of images joined into one batch, each resized to the first's size (ComfyUI's
    common_upscale: lanczos, centre-cropped to the first's aspect) as the pack does. The channels
    must match."""
    category = "🏵️Fill Nodes/Image"
    display_name = "FL Image List To Image Batch"
    input_is_list = True
    images: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_ImageListToImageBatch",))

    def run(self):
        from nodes.pack_nodes_impact import join_images
        if not self.images:
            raise NodeInputError("images", "the list is empty")
        images = [_image(image, "images") for image in self.images]
        return join_images([images[0], *(("images", image) for image in images[1:])], "images")


class FillImageBatchToImageList(Node):
    """Each image of a batch as one item of a list: what follows runs once per image."""
    category = "🏵️Fill Nodes/Image"
    display_name = "FL Image Batch To Image List"
    image: IMAGE
    outputs = {"IMAGE": ListOf(IMAGE)}
    comfy = ComfyAlias(("FL_ImageBatchToImageList",))

    def run(self):
        images = _image(self.image, "image")
        return [images[i:i + 1] for i in range(images.shape[0])]


# -- pictures --------------------------------------------------------------------------------------


def _gradient_stops(text: str):
    """FL_GradGenerator's gradient_colors: a JSON list of {"pos": 0..1, "color": [r, g, b, ...]}
    (0..255) -> positions, colours [n, 3]."""
    import json
    import math
    try:
        stops = json.loads(text)
    except ValueError as e:
        raise NodeInputError("gradient_colors", f"not JSON ({e}): expected a list of "
                                                '{"pos": 0..1, "color": [r, g, b]}') from None
    if not isinstance(stops, list) or not stops:
        raise NodeInputError("gradient_colors", 'expected a non-empty list of {"pos": 0..1, "color": [r, g, b]} '
                                                "(the editor's colour stops)")
    if len(stops) > MOST_GRADIENT_STOPS:
        raise NodeInputError("gradient_colors", f"{len(stops)} stops: expected at most {MOST_GRADIENT_STOPS:,}")
    positions, colors = [], []
    for index, stop in enumerate(stops):
        pos = stop.get("pos") if isinstance(stop, dict) else None
        color = stop.get("color") if isinstance(stop, dict) else None
        if (not isinstance(pos, (int, float)) or isinstance(pos, bool) or not math.isfinite(pos)
                or not isinstance(color, list) or len(color) < 3
                or not all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c)
                           for c in color[:3])):
            raise NodeInputError("gradient_colors", f"stop {index} is {stop!r}: expected "
                                                    '{"pos": a number, "color": [r, g, b] (0..255)}')
        positions.append(float(pos))
        colors.append([float(c) for c in color[:3]])
    if any(b < a for a, b in zip(positions, positions[1:])):
        raise NodeInputError("gradient_colors", f"positions {positions}: expected them in ascending order")
    return positions, colors


class FillGradGenerator(Node):
    """A left-to-right gradient through the colour stops of gradient_colors (JSON, as the pack's
    editor writes it: [{"pos": 0..1, "color": [r, g, b]}, ...], 0..255, positions ascending): the
    first colour up to the first stop, the last from the last, linear between neighbouring stops,
    at column i's position i / (width − 1). The easings remap that position first (Ease In x²,
    Ease Out 1 − (1 − x)², Ease In-Out 2x² below ½ else 1 − (2 − 2x)² / 2). The pack instead puts
    the columns' eased positions in place of the stops' positions, keeping the stops' colours: it
    fails with an IndexError for fewer stops than columns (width is at least 64), and with as many
    or more gives another picture (the n-th colour at the n-th column's eased position). HSV gives the gradient's Pillow HSV
    channels (8-bit, x · 255 cut to a level) as the picture's three channels, as in the pack."""
    category = "🏵️Fill Nodes/experiments"
    display_name = "FL Grad Generator"
    width: int = Int(512, min=64, max=4096)
    height: int = Int(512, min=64, max=4096)
    color_mode: str = Choice(["RGB", "HSV"], "RGB")
    interpolation: str = Choice(list(EASINGS), "Linear")
    gradient_colors: str = Text("[]")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_GradGenerator",))

    @classmethod
    def estimate(cls, widgets, inputs):
        width, height = widgets.get("width"), widgets.get("height")
        if not isinstance(width, int) or not isinstance(height, int):
            return Estimate(None)
        return Estimate(Size(1, height, width))

    def run(self):
        import numpy as np
        import torch
        from PIL import Image
        positions, colors = _gradient_stops(self.gradient_colors)
        x = np.arange(self.width) / (self.width - 1)
        if self.interpolation == "Ease In":
            x = x ** 2
        elif self.interpolation == "Ease Out":
            x = 1 - (1 - x) ** 2
        elif self.interpolation == "Ease In-Out":
            x = np.where(x < 0.5, 2 * x ** 2, 1 - (-2 * x + 2) ** 2 / 2)
        stops, colors = np.array(positions), np.array(colors)
        # the stop each column follows: the last at or before it (zero-width intervals never hold one)
        j = np.clip(np.searchsorted(stops, x, side="right") - 1, 0, max(len(stops) - 2, 0))
        if len(stops) > 1:
            t = ((x - stops[j]) / (stops[j + 1] - stops[j]))[:, None]
            row = (1 - t) * colors[j] + t * colors[j + 1]
        else:
            row = np.repeat(colors[:1], len(x), axis=0)
        row = np.where((x <= stops[0])[:, None], colors[0], np.where((x >= stops[-1])[:, None], colors[-1], row))
        image = np.broadcast_to((row / 255.0).astype(np.float32), (self.height, self.width, 3))
        if self.color_mode == "HSV":
            levels = (image * 255).astype(np.uint8)
            image = np.asarray(Image.fromarray(levels).convert("HSV")).astype(np.float32) / 255.0
        return torch.from_numpy(np.ascontiguousarray(image))[None]


class FillImageAdjuster(Node):
    """Hue, saturation, brightness, contrast and sharpness on 8-bit levels (x · 255 cut to a level),
    in the pack's order with Pillow's operations: hue added to Pillow's 8-bit HSV hue (0..255, so
    180 is about 254°) modulo 256; saturation · 255 / 100 added to its saturation, clipped to
    0..255; then ImageEnhance Brightness and Contrast at 1 + value / 100; then, for sharpness above
    0, an unsharp mask of radius 2 at 100 + sharpness percent, threshold 3. Gives RGB. Each image of
    the batch is adjusted alone (the pack takes a batch of one); the pack's editor preview is not
    sent. An output node, as in the pack: a workflow may end at it."""
    category = "🏵️Fill Nodes/Image"
    display_name = "FL Image Adjuster"
    output_node = True
    image: IMAGE
    hue: float = Float(0, min=-180, max=180, step=1)
    saturation: float = Float(0, min=-100, max=100, step=1)
    brightness: float = Float(0, min=-100, max=100, step=1)
    contrast: float = Float(0, min=-100, max=100, step=1)
    sharpness: float = Float(0, min=0, max=100, step=1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_ImageAdjuster",))

    def run(self):
        import numpy as np
        import torch
        from PIL import Image, ImageEnhance, ImageFilter
        images = _image(self.image, "image")
        _channels(images, "image", (1, 3, 4))
        out = []
        for image in images:
            check_interrupted()
            levels = _levels(image)
            picture = Image.fromarray(levels[..., 0] if levels.shape[-1] == 1 else levels)
            hue, saturation, value = picture.convert("HSV").split()
            hue = hue.point(lambda level: (level + self.hue) % 256)
            saturation = saturation.point(lambda level: max(0, min(255, level + self.saturation * 255 / 100)))
            picture = Image.merge("HSV", (hue, saturation, value)).convert("RGB")
            picture = ImageEnhance.Brightness(picture).enhance(1 + self.brightness / 100)
            picture = ImageEnhance.Contrast(picture).enhance(1 + self.contrast / 100)
            if self.sharpness > 0:
                picture = picture.filter(ImageFilter.UnsharpMask(radius=2, percent=int(100 + self.sharpness),
                                                                 threshold=3))
            out.append(torch.from_numpy(np.asarray(picture).astype(np.float32) / 255.0))
        return torch.stack(out)


class FillRipple(Node):
    """Rings spreading from (center_x %, center_y %) of the picture: each pixel takes the one at an
    offset of amplitude · (sin a, cos a) (x, y; whole pixels, cut towards 0; clamped at the edges),
    a = 2π · distance / frequency + phase°, on 8-bit levels (x · 255 cut to a level). With
    modulation, the n-th image of a batch of N has amplitude and frequency scaled by 1 + modulation
    · sin(2π n / N). The pack keeps counting n across runs of the same node (so a second run of a
    batch differs); here n starts at 0 each run, so a run repeats. This is the pack's layout with
    center_x, center_y and modulation; a save from another version (its later one adds
    envelope_json, blend_intensity, invert and a mask) is refused, not misread."""
    category = VFX
    display_name = "FL Ripple"
    images: IMAGE
    amplitude: float = Float(10.0, min=0.1, max=50.0, step=0.1)
    frequency: float = Float(20.0, min=1.0, max=100.0, step=0.1)
    phase: float = Float(0.0, min=0.0, max=360.0, step=1.0)
    center_x: float = Float(50.0, min=0.0, max=100.0, step=0.1)
    center_y: float = Float(50.0, min=0.0, max=100.0, step=0.1)
    modulation: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_Ripple",), optional=("amplitude", "frequency", "phase", "center_x", "center_y",
                                                  "modulation"), widgets=_layout_widgets(
        ("amplitude", "frequency", "phase", "center_x", "center_y", "modulation"), "the center_x / modulation one"))

    def run(self):
        import math

        import numpy as np
        import torch
        images = _image(self.images, "images")
        batch, height, width = images.shape[:3]
        y, x = np.mgrid[0:height, 0:width]
        distance = np.sqrt((x - int(self.center_x / 100 * width)) ** 2 + (y - int(self.center_y / 100 * height)) ** 2)
        out = []
        for index, image in enumerate(images):
            check_interrupted()
            factor = 1 + self.modulation * math.sin(2 * math.pi * index / batch)
            angle = distance / (self.frequency * factor) * 2 * np.pi + np.radians(self.phase)
            across = np.clip(x + (self.amplitude * factor * np.sin(angle)).astype(int), 0, width - 1)
            down = np.clip(y + (self.amplitude * factor * np.cos(angle)).astype(int), 0, height - 1)
            out.append(torch.from_numpy(_levels(image)[down, across].astype(np.float32) / 255.0))
        return torch.stack(out)


class FillSeparateMaskComponents(Node):
    """Each connected region (8-connected, OpenCV's connectedComponents) of the mask pictures' pixels above
    0 (the channels' mean) as a picture of its own, keeping the mask's values inside it and 0
    elsewhere, in the order OpenCV numbers them (by the first 2 × 2 block each region touches, the
    blocks scanned row by row), image by image; mask_mapping gives each one's image index in the
    batch. A batch with no region anywhere is refused (the pack gives an empty batch, which no node
    after it takes)."""
    category = "🏵️Fill Nodes/Utility"
    display_name = "FL Separate Mask Components"
    mask: IMAGE
    outputs = {"IMAGE": IMAGE, "MASK_MAPPING": MASK_MAPPING}
    comfy = ComfyAlias(("FL_SeparateMaskComponents",))

    def run(self):
        import cv2
        import numpy as np
        import torch
        from graphflow.api import check_run_memory
        mask = self.mask
        if not torch.is_tensor(mask) or mask.ndim not in (3, 4):
            raise NodeInputError("mask", "expected an IMAGE ([B, H, W, C]) or a MASK ([B, H, W])")
        mask = mask[..., None] if mask.ndim == 3 else mask
        labelled = []  # every image labelled first: the regions' count sizes the output before it is built
        for picture in mask:
            check_interrupted()
            inside = (picture.float().mean(dim=-1).cpu().numpy() > 0).astype(np.uint8)
            labelled.append(cv2.connectedComponents(inside))
        total = sum(count - 1 for count, _ in labelled)
        if not total:
            raise NodeInputError("mask", "no pixel above 0 in any image: nothing to separate")
        height, width = mask.shape[1:3]
        check_run_memory("mask", f"{total} regions, each a picture of its own", images=Size(total, height, width))
        parts = torch.empty(total, *mask.shape[1:], dtype=mask.dtype, device=mask.device)
        mapping, at = [], 0
        for index, ((count, labels), picture) in enumerate(zip(labelled, mask)):
            check_interrupted()
            labels = torch.from_numpy(labels).to(mask.device)
            for label in range(1, count):
                parts[at] = (labels == label)[..., None] * picture
                at += 1
                mapping.append(index)
        return parts, torch.tensor(mapping, device=mask.device)


def _rgba(images):
    """The pack's tensor_to_rgba: a MASK or one channel repeated into all four, RGB given an opaque alpha."""
    import torch
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[-1] == 1:
        return images.expand(-1, -1, -1, 4)
    if images.shape[-1] == 3:
        return torch.cat([images, torch.ones_like(images[..., :1])], dim=-1)
    return images


def _resized(picture, height: int, width: int, algorithm: str):
    """One [H, W, 4] picture resized as the pack does: lanczos through Pillow on 8-bit levels (cut,
    not rounded), the others as torchvision's resize (bilinear and bicubic antialiased, nearest
    plain)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image
    if algorithm == "lanczos":
        resized = Image.fromarray(_levels(picture)).resize((width, height), Image.LANCZOS)
        return torch.from_numpy(np.asarray(resized).astype(np.float32) / 255.0).to(picture.device)
    planes = picture.movedim(-1, 0)[None]
    if algorithm == "nearest":
        planes = F.interpolate(planes, size=(height, width), mode="nearest")
    else:
        planes = F.interpolate(planes, size=(height, width), mode=algorithm, align_corners=False, antialias=True)
    return planes[0].movedim(0, -1)


class FillPasteOnCanvas(Node):
    """The part of each image inside its mask's bounding box (the pixels not 0), with the mask as
    its alpha, scaled to fit the canvas less padding on each side (keeping its aspect; sizes cut
    to whole pixels, at least 1) and centred on a canvas of background colour or bg_image_optional
    (bilinear to the canvas's size), blended by that alpha; the canvas's alpha is the larger of
    the two. mask is an IMAGE (its channels' mean) or a MASK, resized (nearest) to the image's size;
    a mask batch smaller than the image batch repeats (the first mask alone where it does not
    divide it); an image whose mask is empty leaves its canvas bare. Without a mask,
    use_full_mask takes the whole image. A one-channel image is used in all four channels, as in
    the pack. include_alpha gives RGBA, else RGB."""
    category = UTILITY_LOWER  # the pack's, lower case here
    display_name = "FL Paste On Canvas"
    image: IMAGE
    canvas_width: int = Int(512, min=64, max=4096, step=32)
    canvas_height: int = Int(512, min=64, max=4096, step=32)
    background_red: int = Int(255, min=0, max=255)
    background_green: int = Int(255, min=0, max=255)
    background_blue: int = Int(255, min=0, max=255)
    padding: int = Int(0, min=0, max=512)
    resize_algorithm: str = Choice(["bilinear", "nearest", "bicubic", "lanczos"], "bilinear")
    include_alpha: bool = Bool(False)
    use_full_mask: bool = Bool(False)
    mask: IMAGE = None
    bg_image_optional: IMAGE = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_PasteOnCanvas",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, width, height = inputs.get("image"), widgets.get("canvas_width"), widgets.get("canvas_height")
        if size is None or not isinstance(width, int) or not isinstance(height, int):
            return Estimate(None)
        return Estimate(Size(size.batch, height, width))

    def run(self):
        import torch
        import torch.nn.functional as F
        from graphflow.api import check_run_memory
        images = _rgba(_image(self.image, "image"))
        batch, height, width = images.shape[:3]
        if 2 * self.padding >= min(self.canvas_width, self.canvas_height):
            raise NodeInputError("padding", f"{self.padding} on each side leaves no room on a "
                                            f"{self.canvas_width} × {self.canvas_height} canvas")
        check_run_memory("canvas_width", "the canvases", images=Size(batch, self.canvas_height, self.canvas_width))
        if self.mask is None:
            if not self.use_full_mask:
                raise NodeInputError("mask", "not connected and use_full_mask is off: connect a mask or turn "
                                             "use_full_mask on")
            mask = torch.ones(batch, height, width, device=images.device)
        else:
            if not torch.is_tensor(self.mask) or self.mask.ndim not in (3, 4):
                raise NodeInputError("mask", "expected an IMAGE ([B, H, W, C]) or a MASK ([B, H, W])")
            mask = self.mask.float().mean(dim=-1) if self.mask.ndim == 4 else self.mask.float()
        mask = F.interpolate(mask[:, None].to(images.device), size=(height, width), mode="nearest")[:, 0]
        if mask.shape[0] > batch:
            raise NodeInputError("mask", f"a batch of {mask.shape[0]}: expected at most the image's {batch}")
        if mask.shape[0] < batch:
            mask = mask.repeat(batch // mask.shape[0], 1, 1) if batch % mask.shape[0] == 0 else mask[:1].repeat(
                batch, 1, 1)
        if self.bg_image_optional is not None:
            background = _rgba(_image(self.bg_image_optional, "bg_image_optional")).to(images)
            if background.shape[0] not in (1, batch):
                raise NodeInputError("bg_image_optional", f"a batch of {background.shape[0]}: expected 1 or the "
                                                          f"image's {batch}")
            background = F.interpolate(background.movedim(-1, 1), size=(self.canvas_height, self.canvas_width),
                                       mode="bilinear", align_corners=False).movedim(1, -1)
            canvas = background.expand(batch, -1, -1, -1).clone()
        else:
            color = torch.tensor([self.background_red, self.background_green, self.background_blue, 255],
                                 dtype=images.dtype, device=images.device) / 255.0
            canvas = color.expand(batch, self.canvas_height, self.canvas_width, 4).clone()
        masked = torch.cat([images[..., :3], images[..., 3:] * mask[..., None]], dim=-1)
        room_width, room_height = self.canvas_width - 2 * self.padding, self.canvas_height - 2 * self.padding
        for index in range(batch):
            check_interrupted()
            rows, columns = torch.where(mask[index] != 0)
            if rows.numel() == 0:
                continue
            part = masked[index, int(rows.min()):int(rows.max()) + 1, int(columns.min()):int(columns.max()) + 1]
            scale = min(room_width / part.shape[1], room_height / part.shape[0])
            new_height, new_width = max(1, int(part.shape[0] * scale)), max(1, int(part.shape[1] * scale))
            resized = _resized(part, new_height, new_width, self.resize_algorithm).to(canvas)
            top = self.padding + (room_height - new_height) // 2
            left = self.padding + (room_width - new_width) // 2
            region = canvas[index, top:top + new_height, left:left + new_width]
            alpha = resized[..., 3:]
            canvas[index, top:top + new_height, left:left + new_width] = torch.cat(
                [resized[..., :3] * alpha + region[..., :3] * (1 - alpha), torch.maximum(region[..., 3:], alpha)],
                dim=-1)
        return canvas if self.include_alpha else canvas[..., :3]


MADLIB_LISTS = 5
MOST_MADLIB_REPLACEMENTS = 10_000  # a word holding its own delimiter would make the pack's loop endless
MOST_MADLIB_CHARACTERS = 1_000_000


class FillMadLibGenerator(Node):
    """The template with each delimiter_N replaced, one occurrence at a time, by a word (a line of
    word_list_N, stripped; blank lines skipped) drawn from a generator of its own, as the pack
    seeds it: Python's Mersenne Twister seeded with the MD5 (as a number) of
    "<seed>_<N − 1>_<the list's words joined>", so the same seed and lists give the same text;
    delimiters 1 to 5 in turn. Refused, as the pack's loop never ends on them: an empty delimiter;
    a delimiter in the text whose list has no words (the pack puts "[NO WORDS FOR <delimiter>]",
    which holds it again); more than 10,000 replacements of one delimiter (a word holding it).
    A result past 1,000,000 characters is refused too."""
    category = PROMPTING
    display_name = "FL MadLib Generator"
    template: str = Text("", multiline=True)
    delimiter_1: str = Text("(1)")
    delimiter_2: str = Text("(2)")
    delimiter_3: str = Text("(3)")
    delimiter_4: str = Text("(4)")
    delimiter_5: str = Text("(5)")
    word_list_1: str = Text("")
    word_list_2: str = Text("")
    word_list_3: str = Text("")
    word_list_4: str = Text("")
    word_list_5: str = Text("")
    seed: int = Int(-1, min=-1, max=0xffffffffffffffff)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("FL_MadLibGenerator",), optional=("seed",))

    def run(self):
        import hashlib
        import random
        result = self.template
        for index in range(MADLIB_LISTS):
            name = f"delimiter_{index + 1}"
            delimiter = getattr(self, name)
            words = [w.strip() for w in getattr(self, f"word_list_{index + 1}").split("\n") if w.strip()]
            digest = hashlib.md5(f"{self.seed}_{index}_{''.join(words)}".encode()).hexdigest()
            draws = random.Random(int(digest, 16))
            if not delimiter:
                raise NodeInputError(name, "empty: expected the text to replace (the pack's loop never ends)")
            if delimiter in result and not words:
                raise NodeInputError(f"word_list_{index + 1}", f"no words, and the text holds {delimiter!r} (the "
                                                               f"pack puts [NO WORDS FOR {delimiter}], which holds it "
                                                               "again, and never ends)")
            replaced = 0
            while delimiter in result:
                if replaced == MOST_MADLIB_REPLACEMENTS:
                    raise NodeInputError(f"word_list_{index + 1}", f"{delimiter!r} replaced {replaced:,} times and "
                                                                   "still there: a word holds it")
                result = result.replace(delimiter, draws.choice(words), 1)
                replaced += 1
                if len(result) > MOST_MADLIB_CHARACTERS:
                    raise NodeInputError(f"word_list_{index + 1}", f"the text grew past "
                                                                   f"{MOST_MADLIB_CHARACTERS:,} characters")
        return result


# -- files -----------------------------------------------------------------------------------------

CAPTIONING = "🏵️Fill Nodes/Captioning"
CSV = socket_type("CSV", "#4caf50", "CSV text as UTF-8 bytes (FL_CaptionToCSV → FL_SaveCSV)")
CSV_PICTURES = (".png", ".jpg", ".jpeg")  # FL_CaptionToCSV's
CAPTION_PICTURES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")  # FL_CaptionSaver_V2's directory input
PNG_MODES = ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA")  # the Pillow modes a PNG file holds


def _folder_pictures(directory: str, input_name: str, extensions: tuple) -> tuple:
    """(folder inside the inputs folder, its pictures of these extensions, any case, sorted by name),
    a folder of more than MOST_FOLDER_FILES entries refused; links leading out of it left out."""
    from nodes.pack_nodes_fill import _randomizer_folder, listed_files
    folder = _randomizer_folder(directory, input_name)
    return folder, [path.name for path in listed_files(folder, extensions, input_name, directory)]


def _caption_inside(folder, name: str):
    """The caption file `name` in `folder`, or None when there is none or it is a link leading out of
    the folder (read as no caption: a folder's files are read only inside it)."""
    from graphflow.folders import _stays_inside
    path = folder / name
    return path if path.is_file() and _stays_inside(folder, path) else None


class FillSaveWebPImage(Node):
    """Save the images as WebP files at quality (lossy) in the outputs folder, named as ComfyUI
    names its saves (`prefix_00001_.webp`; the prefix may hold a subfolder), no workflow embedded,
    as in the pack; 8-bit levels cut as ComfyUI's savers do (the pack does not clip first). Gives
    the images on and a line saying how many were saved."""
    category = "🏵️Fill Nodes/Image"
    display_name = "FL Save WebP Image"
    output_node = True
    images: IMAGE
    filename_prefix: str = Text("ComfyUI", file_name=True)
    quality: int = Int(80, min=1, max=100)
    outputs = {"IMAGE": IMAGE, "STRING": STRING}
    comfy = ComfyAlias(("FL_SaveWebPImage(SaveImage)",))

    def run(self):
        from graphflow.api import folders, show, subfolder_name
        from graphflow.images import image_to_pil
        from nodes.image import _next_counter, _save_new
        images = _image(self.images, "images")
        _channels(images, "images", (1, 3, 4))
        try:
            folder, stem = folders.output_location(self.filename_prefix)
        except ValueError as e:
            raise NodeInputError("filename_prefix", str(e)) from None
        subfolder = subfolder_name(folders.outputs, folder)
        counter, saved = _next_counter(folder, stem), []
        for image in images:
            check_interrupted()
            name, counter = _save_new(image_to_pil(image), folder, stem, counter, suffix="_.webp",
                                      image_format="WEBP", quality=self.quality)
            counter += 1
            saved.append({"filename": name, "subfolder": subfolder, "type": "output"})
        show(images=saved)
        return self.images, f"Saved {len(saved)} WebP image(s)"


class FillCaptionToCSV(Node):
    """A CSV (UTF-8) of the .png / .jpg / .jpeg pictures (any case) in image_directory, a folder
    inside the inputs folder (the pack reads any on disk), sorted by name: a header row
    image_file, caption, then each picture's name and the text of the .txt file of the same stem
    beside it, stripped ("No caption found" where there is none), written by Python's csv module
    (its excel dialect, rows ending in CR LF). Read again every run, as in the pack."""
    category = CAPTIONING
    display_name = "FL Caption To CSV"
    output_node = True
    cacheable = False  # the pack re-reads the folder every run (IS_CHANGED NaN)
    image_directory: str = Text("")
    outputs = {"CSV": CSV}
    comfy = ComfyAlias(("FL_CaptionToCSV",))

    def run(self):
        import csv
        import io
        folder, names = _folder_pictures(self.image_directory, "image_directory", CSV_PICTURES)
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["image_file", "caption"])
        for name in names:
            caption = _caption_inside(folder, name.rsplit(".", 1)[0] + ".txt")
            if caption is None:
                writer.writerow([name, "No caption found"])
                continue
            try:
                writer.writerow([name, caption.read_text(encoding="utf-8").strip()])
            except (OSError, UnicodeDecodeError) as e:
                raise NodeInputError("image_directory", f"can't read {caption.name}: {e}") from None
        return text.getvalue().encode("utf-8")


class FillSaveCSV(Node):
    """Write csv_data to filename (".csv" added when it lacks it) in output_directory, a folder
    inside the outputs folder (made when missing; empty: the outputs folder itself; the pack's is
    relative to ComfyUI's working folder, or anywhere), replacing a file of that name as the pack
    does."""
    category = CAPTIONING
    display_name = "FL Save CSV"
    output_node = True
    csv_data: CSV
    output_directory: str = Text("")
    filename: str = Text("captions.csv")
    outputs = {}
    comfy = ComfyAlias(("FL_SaveCSV",))

    def run(self):
        from graphflow.api import folders
        from graphflow.folders import file_name_problem
        from nodes.pack_nodes_fill import _caption_folder, _write_replacing
        if not isinstance(self.csv_data, (bytes, str)):
            raise NodeInputError("csv_data", "expected CSV data (FL_CaptionToCSV's)")
        folder = _caption_folder(self.output_directory, "output_directory") if self.output_directory.strip() else (
            folders.outputs)
        name = self.filename if self.filename.lower().endswith(".csv") else self.filename + ".csv"
        if "/" in name or "\\" in name or (problem := file_name_problem(name)):
            raise NodeInputError("filename", f"{self.filename!r}: expected a file name, without folders"
                                             + (f" ({problem})" if "/" not in name and "\\" not in name else ""))
        data = self.csv_data.encode("utf-8") if isinstance(self.csv_data, str) else self.csv_data
        folder.mkdir(parents=True, exist_ok=True)
        _write_replacing(folder / name, lambda path: path.write_bytes(data))


class FillCaptionSaverV2(Node):
    """Save pictures as PNG with a caption .txt of the same name beside each, in folder_name inside
    the output folder (the pack's is relative to ComfyUI's working folder). Image Input saves the
    images as image_<i>.png (i from 0; one channel as RGB); Directory Input the .png / .jpg /
    .jpeg / .bmp / .gif pictures (any case, sorted by name) of input_directory, a folder inside the
    inputs folder, under their own stems (CMYK, YCbCr, LAB and HSV pictures, which PNG can't hold,
    made RGB; the pack fails on them). downsize_factor above 1 shrinks each (lanczos) to
    width // factor × height // factor. Single Caption gives every picture single_caption;
    Multiple Captions one line each (blank lines skipped; the last repeats for more pictures).
    Captions keep only letters, digits, whitespace and . , ! ? - as the pack's clean-up does.
    overwrite off picks <name>_<n> with the first n from 1 where neither file exists. Missing
    images, folder or captions are refused (the pack answers "No valid input provided.")."""
    category = CAPTIONING
    display_name = "FL Caption Saver V2"
    output_node = True
    input_type: str = Choice(["Image Input", "Directory Input"], "Image Input")
    caption_input_type: str = Choice(["Single Caption", "Multiple Captions"], "Single Caption")
    folder_name: str = Text("output_folder")
    overwrite: bool = Bool(True)
    downsize_factor: int = Choice([1, 2, 3], 1)
    images: IMAGE = None
    input_directory: str = Text("")
    single_caption: str = Text("Your caption here")
    multiple_captions: str = Text("", multiline=True)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("FL_CaptionSaver_V2",), optional=("images", "input_directory", "single_caption",
                                                          "multiple_captions"))

    def _pictures(self):
        """(stem, a function giving the Pillow picture) for each picture to save."""
        from PIL import Image
        if self.input_type == "Image Input":
            if self.images is None:
                raise NodeInputError("images", "not connected, and input_type is Image Input")
            images = _image(self.images, "images")
            _channels(images, "images", (1, 3, 4))

            def picture(image):
                levels = _levels(image)
                return Image.fromarray(levels.repeat(3, axis=-1) if levels.shape[-1] == 1 else levels)
            return [(f"image_{i}", lambda image=image: picture(image)) for i, image in enumerate(images)]
        from nodes.image import check_folder_pictures
        folder, names = _folder_pictures(self.input_directory, "input_directory", CAPTION_PICTURES)
        if not names:
            raise NodeInputError("input_directory", f"no .png, .jpg, .jpeg, .bmp or .gif pictures in "
                                                    f"{self.input_directory!r}")
        check_folder_pictures([folder / name for name in names], "input_directory", "input_directory")

        def opened(name):
            try:
                picture = Image.open(folder / name)
                if picture.mode in PNG_MODES:
                    return picture
                # CMYK, YCbCr, LAB, HSV (a JPEG's, a TIFF's): PNG holds none of them
                return picture.convert("RGBA" if picture.getbands()[-1] in ("A", "a") else "RGB")
            except (OSError, ValueError) as e:
                raise NodeInputError("input_directory", f"can't read {name} as a picture to save as PNG: {e}") from None
        return [(name.rsplit(".", 1)[0], lambda name=name: opened(name)) for name in names]

    def run(self):
        import re

        from PIL import Image
        from nodes.pack_nodes_fill import _caption_folder, _write_replacing
        pictures = self._pictures()
        clean = lambda text: re.sub(r"[^a-zA-Z0-9\s.,!?-]", "", text)  # noqa: E731
        if self.caption_input_type == "Single Caption":
            captions = [clean(self.single_caption)] * len(pictures)
        else:
            captions = [clean(line.strip()) for line in self.multiple_captions.split("\n") if line.strip()]
            if not captions:
                raise NodeInputError("multiple_captions", "no caption lines: expected one a line")
            captions = (captions + [captions[-1]] * len(pictures))[:len(pictures)]
        folder = _caption_folder(self.folder_name)
        for (stem, load), caption in zip(pictures, captions):
            check_interrupted()
            picture = load()
            if self.downsize_factor > 1:
                size = (picture.width // self.downsize_factor, picture.height // self.downsize_factor)
                if min(size) < 1:
                    raise NodeInputError("downsize_factor", f"{self.downsize_factor} leaves a {picture.width} × "
                                                            f"{picture.height} picture no pixels")
                picture = picture.resize(size, Image.LANCZOS)
            name, counter = stem, 1
            while not self.overwrite and ((folder / f"{name}.png").exists() or (folder / f"{name}.txt").exists()):
                name, counter = f"{stem}_{counter}", counter + 1
            _write_replacing(folder / f"{name}.png", lambda path: picture.save(path, format="PNG"))
            _write_replacing(folder / f"{name}.txt", lambda path: path.write_text(caption, encoding="utf-8"))
        return (f"Saved {len(pictures)} images (downsized by factor {self.downsize_factor}) and captions in "
                f"'{self.folder_name}'")


class FillSaveAndDisplayImage(SaveImage):
    """ComfyUI's Save Image (PNG files `prefix_00001_.png` in the outputs folder, the workflow
    embedded; the prefix may hold a subfolder), giving the images on as the pack does."""
    category = "🏵️Fill Nodes/Image"
    display_name = "FL Save And Display Image"
    filename_prefix: str = Text("ComfyUI", file_name=True)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_SaveAndDisplayImage",))

    def run(self):
        super().run()
        return self.images


MOST_ZIP_BYTES = 4 << 30  # FL_ZipSave's files together (an archive of a whole disk would fill it)


def _zip_sources(folder, root, given: str, input_name: str = "input_directory"):
    """The files below folder (its linked folders not entered, as os.walk does; linked files leading
    out of root left out), with their names in the archive, sorted."""
    from nodes.pack_nodes_fill import walked_files
    found = walked_files(folder, lambda name: True, input_name, given, inside=root)
    return sorted(((path, path.relative_to(folder).as_posix()) for path in found), key=lambda item: item[1])


def zip_size(files, input_name: str) -> int:
    """The bytes of files ((path, name in the archive) pairs) together; refused, naming input_name,
    above MOST_ZIP_BYTES."""
    total = sum(path.stat().st_size for path, _ in files)
    if total > MOST_ZIP_BYTES:
        raise NodeInputError(input_name, f"more than {MOST_ZIP_BYTES >> 30} GiB of files to zip")
    return total


def zipped_files(archive, files) -> None:
    """Deflate files ((path, name in the archive) pairs) into archive, a path or a binary file."""
    import zipfile

    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path, inside in files:
            check_interrupted()
            zipped.write(path, inside)


def outputs_subfolder(given: str, input_name: str):
    """An existing folder inside the outputs folder (empty: the outputs folder itself), as the Fill
    zippers read one (the pack's read any on disk)."""
    from graphflow.api import folders
    from graphflow.folders import UnsafePathError
    name = given.strip().replace("\\", "/").strip("/")
    try:
        folder = safe_join(folders.outputs, name) if name else folders.outputs
    except UnsafePathError:
        raise NodeInputError(input_name, f"{given!r}: expected a folder inside the outputs folder (the pack "
                                         "zips any)") from None
    if not folder.is_dir():
        raise NodeInputError(input_name, f"no folder {given!r} in the outputs folder")
    return folder


class FillZipSave(Node):
    """Zip (deflated) the files below input_directory, a folder inside the outputs folder, named by
    their paths in it, into zip_filename (".zip" added when it lacks it) in output_directory, a
    folder inside the outputs folder (made when missing; empty: the outputs folder itself); gives the
    archive's path in the outputs folder. The pack zips and writes anywhere on disk. Links leading
    out of the outputs folder and the archive itself are left out; at most 100,000 files and
    folders and 4 GiB are zipped. Zipped again every run, as in the pack."""
    category = "🏵️Fill Nodes/File Operations"
    display_name = "FL_ZipSave"
    output_node = True
    cacheable = False  # the pack zips again every run (IS_CHANGED NaN)
    input_directory: str = Text("")
    output_directory: str = Text("")
    zip_filename: str = Text("archive.zip")
    outputs = {"zip_path": STRING}
    comfy = ComfyAlias(("FL_ZipSave",))

    def run(self):
        from graphflow.api import folders
        from graphflow.folders import file_name_problem
        from nodes.pack_nodes_fill import _caption_folder, _write_replacing
        source = outputs_subfolder(self.input_directory, "input_directory")
        target = _caption_folder(self.output_directory, "output_directory") if self.output_directory.strip() else (
            folders.outputs)
        archive_name = self.zip_filename if self.zip_filename.lower().endswith(".zip") else self.zip_filename + ".zip"
        if "/" in archive_name or "\\" in archive_name or file_name_problem(archive_name):
            raise NodeInputError("zip_filename", f"{self.zip_filename!r}: expected a file name, without folders")
        archive = target / archive_name
        files = [(path, inside) for path, inside in _zip_sources(source, folders.outputs, self.input_directory)
                 if path.resolve() != archive.resolve()]
        zip_size(files, "input_directory")
        _write_replacing(archive, lambda path: zipped_files(path, files))
        return archive.relative_to(folders.outputs).as_posix()


# -- inpaint crop and stitch -----------------------------------------------------------------------

CROP_MODES = ("free", "long side", "short side", "range", "forced")
RESCALE_OFF = (0.999, 1.001)  # a rescale factor inside this is none, as the pack reads it


@dataclass
class FillStitch:
    """What FL_InpaintCrop hands FL_Inpaint_Stitch, as the pack's dict holds it: the crop's corner
    in the rescaled picture, the original pictures, the cropped mask and the rescale."""

    x: int
    y: int
    original_image: object  # [B, H, W, C]
    cropped_mask: object  # [B, h, w]
    rescale_x: float
    rescale_y: float


def _square(x_min, x_max, y_min, y_max, width, height, side=None):
    """The pack's adjust_to_square: a side × side square (side: the box's longer one) around the
    box's midpoint, pushed back inside the picture where it can be."""
    side = side if side is not None else max(x_max - x_min + 1, y_max - y_min + 1)
    x_min = max((x_min + x_max) // 2 - side // 2, 0)
    y_min = max((y_min + y_max) // 2 - side // 2, 0)
    x_max, y_max = x_min + side - 1, y_min + side - 1
    if x_max >= width:
        x_max, x_min = width - 1, width - side
    if y_max >= height:
        y_max, y_min = height - 1, height - side
    if x_min < 0:
        x_min, x_max = 0, side - 1
    if y_min < 0:
        y_min, y_max = 0, side - 1
    return x_min, x_max, y_min, y_max


def _padded(low, high, limit, padding):
    """The pack's apply_padding: the range grown to a multiple of padding around its midpoint, kept
    inside 0 .. limit − 1 where it fits."""
    size = high - low + 1
    size = size if size % padding == 0 else (size // padding + 1) * padding
    low = max((low + high) // 2 - size // 2, 0)
    high = low + size - 1
    if high >= limit:
        high = limit - 1
        low = max(high - size + 1, 0)
    if high - low + 1 != size:
        low = max(high - size + 1, 0)
    return low, high


class FillInpaintCrop(Node):
    """Crop the pictures around the first mask's area (the pack's bounds come from the first mask
    of the batch) for inpainting, as the pack does: the mask checked against the picture's size
    (an empty one of another size reads as no mask), inverted if asked, its holes filled (closed by
    a 5 × 5 square, outside counted as set, then enclosed holes filled: scipy; 0 or 1); the area
    of the mask joined with optional_context_mask grown by max(size · (context_factor − 1),
    context_pixels) (rounded half to even; half of it each side) within the picture; made a square
    around its middle with force_square. Then by mode, the whole picture and mask rescaled (ComfyUI's
    bislerp) so that: free, by free_rescale, the area then grown to a multiple of free_padding;
    long side / short side, the area's longer / shorter side is target_size (squared again with
    force_square); range, a longer side (the square's side with force_square, squared to the
    bound) below minimum_size or above maximum_size is brought to it; forced, the longer side is
    forced_size and the area is a forced_size square; with force_square the pack rescales nothing
    in forced mode (it works out the factor and drops it), and so here. The sizes rescaled to are
    cut to whole pixels and the corners scaled and cut likewise. No mask anywhere gives the
    pictures and mask as they are. use_gpu is read but the scipy hole filling always runs (the
    pack's GPU one, a 3 × 3 closing and a bounded flood, can differ from it); where the pack fails
    (forced, not square, with the longer side already forced_size) this squares the area to
    forced_size unscaled. A rescale past 16,384 pixels a side is refused."""
    category = UTILITY_LOWER
    display_name = "FL Inpaint Crop"
    mode: str = Choice(list(CROP_MODES), "free")
    image: IMAGE
    mask: MASK
    invert_mask: bool = Bool(False)
    fill_mask_holes: bool = Bool(True)
    use_gpu: bool = Bool(False)
    context_pixels: int = Int(10, min=0, max=16384)
    context_factor: float = Float(1.01, min=1.0, max=100.0, step=0.01)
    force_square: bool = Bool(False)
    forced_size: int = Int(1024, min=32, max=2048, step=32)
    minimum_size: int = Int(512, min=32, max=2048, step=32)
    maximum_size: int = Int(1024, min=32, max=2048, step=32)
    target_size: int = Int(1024, min=32, max=2048, step=32)
    free_rescale: float = Float(1.0, min=0.01, max=100.0, step=0.01)
    free_padding: int = Int(32, min=8, max=512, step=8)
    optional_context_mask: MASK = None
    outputs = {"stitch": STITCH, "cropped_image": IMAGE, "cropped_mask": MASK}
    comfy = ComfyAlias(("FL_InpaintCrop",), optional=("optional_context_mask",))

    def _mask(self, mask, image, name):
        import torch
        if not torch.is_tensor(mask) or mask.ndim not in (2, 3):
            raise NodeInputError(name, "expected a MASK: a [B, H, W] tensor")
        mask = (mask[None] if mask.ndim == 2 else mask).float().to(image.device)
        if mask.shape[1:] != image.shape[1:3]:
            if mask[0].any():
                raise NodeInputError(name, f"{mask.shape[2]} × {mask.shape[1]}: expected the image's size, "
                                           f"{image.shape[2]} × {image.shape[1]} (or an empty mask)")
            return None
        return mask

    def _rescaled(self, image, mask, factor):
        """The pictures and mask rescaled by factor (bislerp), with the sizes the pack cuts."""
        from graphflow.api import check_run_memory
        from graphflow.images import bislerp
        from nodes.image import MAX_SIZE
        width, height = math.floor(image.shape[2] * factor), math.floor(image.shape[1] * factor)
        if max(width, height) > MAX_SIZE or min(width, height) < 1:
            raise NodeInputError("mode", f"{self.mode!r} rescales the {image.shape[2]} × {image.shape[1]} picture to "
                                         f"{width} × {height}: expected 1 to {MAX_SIZE:,} pixels a side")
        check_run_memory("mode", f"{self.mode!r} rescales the picture", images=Size(image.shape[0], height, width))
        image = bislerp(image.movedim(-1, 1), width, height).movedim(1, -1)
        mask = bislerp(mask[:, None], width, height)[:, 0]
        return image, mask, width, height

    def run(self):
        import torch
        from nodes.pack_nodes_crop_stitch_old import _old_fill_holes
        image = _image(self.image, "image")
        original_image, original_mask = self.image, self.mask
        mask = self._mask(self.mask, image, "mask")
        if mask is None:
            mask = torch.zeros_like(image[..., 0])
        if mask.shape[0] not in (1, image.shape[0]):
            raise NodeInputError("mask", f"a batch of {mask.shape[0]}: expected 1 or the image's {image.shape[0]}")
        if self.invert_mask:
            mask = 1.0 - mask
        if self.fill_mask_holes:
            mask = torch.cat([_old_fill_holes(m[None]) for m in mask]).to(image.device)
        context = mask
        if self.optional_context_mask is not None:
            extra = self._mask(self.optional_context_mask, image, "optional_context_mask")
            context = mask if extra is None else torch.clamp(extra + mask, 0.0, 1.0)
        rows, columns = torch.nonzero(context[0], as_tuple=True)
        if rows.numel() == 0:
            return FillStitch(0, 0, original_image, mask, 1.0, 1.0), original_image, original_mask
        y_min, y_max, x_min, x_max = int(rows.min()), int(rows.max()), int(columns.min()), int(columns.max())
        height, width = context.shape[1:]
        y_grow = round(max((y_max - y_min + 1) * (self.context_factor - 1), self.context_pixels))
        x_grow = round(max((x_max - x_min + 1) * (self.context_factor - 1), self.context_pixels))
        y_min, y_max = max(y_min - y_grow // 2, 0), min(y_max + y_grow // 2, height - 1)
        x_min, x_max = max(x_min - x_grow // 2, 0), min(x_max + x_grow // 2, width - 1)
        scale_x = scale_y = 1.0
        if self.force_square:
            x_min, x_max, y_min, y_max = _square(x_min, x_max, y_min, y_max, width, height)
        area_width, area_height = x_max - x_min + 1, y_max - y_min + 1
        factor, side, squared = None, None, False  # the rescale, the square's side after it, and whether to square
        if self.mode == "forced" and not self.force_square:
            longer = max(area_width, area_height)
            factor = self.forced_size / longer if longer != self.forced_size else None
            side, squared = self.forced_size, True
        elif self.mode == "range":
            current = area_width if self.force_square else max(area_width, area_height)
            bound = (self.minimum_size if current < self.minimum_size else
                     self.maximum_size if current > self.maximum_size else None)
            if bound is not None:
                factor, side, squared = bound / current, bound, self.force_square
        elif self.mode in ("long side", "short side"):
            current = (max if self.mode == "long side" else min)(area_width, area_height)
            if current != self.target_size:
                factor, squared = self.target_size / current, self.force_square
        elif self.mode == "free" and not RESCALE_OFF[0] <= self.free_rescale <= RESCALE_OFF[1]:
            factor = self.free_rescale
        if factor is not None:
            image, mask, width, height = self._rescaled(image, mask, factor)
            scale_x, scale_y = width / original_image.shape[2], height / original_image.shape[1]
            x_min, x_max = math.floor(x_min * scale_x), math.floor(x_max * scale_x)
            y_min, y_max = math.floor(y_min * scale_y), math.floor(y_max * scale_y)
            if self.mode == "free":
                x_min, x_max, y_min, y_max = max(x_min, 0), min(x_max, width - 1), max(y_min, 0), min(y_max, height - 1)
        if squared:
            x_min, x_max, y_min, y_max = _square(x_min, x_max, y_min, y_max, width, height, side)
        if self.mode == "free":
            x_min, x_max = _padded(x_min, x_max, width, self.free_padding)
            y_min, y_max = _padded(y_min, y_max, height, self.free_padding)
        cropped_image = image[:, y_min:y_max + 1, x_min:x_max + 1]
        cropped_mask = mask[:, y_min:y_max + 1, x_min:x_max + 1]
        return FillStitch(x_min, y_min, original_image, cropped_mask, scale_x, scale_y), cropped_image, cropped_mask


class FillInpaintStitch(Node):
    """Paste the inpainted crop back into the pictures FL Inpaint Crop cut it from, blended by the
    cropped mask (bilinear to the crop's size; ComfyUI's composite). Where the crop rescaled the
    pictures, the inpainted crop is rescaled back (bislerp) to its size / the rescale (rounded) and
    its corner likewise; the mask is rescaled as the pack does it, which reads it transposed (rows
    as columns, and the batch as one picture's channels) and then stretches it back over the crop:
    an area that is not square is blended by a skewed mask, as in the pack."""
    category = UTILITY_LOWER
    display_name = "FL Inpaint Stitch"
    stitch: STITCH
    inpainted_image: IMAGE
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("FL_Inpaint_Stitch",))

    def run(self):
        from graphflow.images import bislerp, composite_masked
        stitch = self.stitch
        if not isinstance(stitch, FillStitch):
            raise NodeInputError("stitch", "expected FL Inpaint Crop's stitch (the old Inpaint Crop's goes to "
                                           "its own Inpaint Stitch)")
        inpainted = _image(self.inpainted_image, "inpainted_image")
        original = stitch.original_image
        if inpainted.shape[-1] != original.shape[-1]:
            raise NodeInputError("inpainted_image", f"{inpainted.shape[-1]} channels: the cropped pictures have "
                                                    f"{original.shape[-1]}")
        mask, x, y = stitch.cropped_mask, stitch.x, stitch.y
        rescaled = any(not RESCALE_OFF[0] <= s <= RESCALE_OFF[1] for s in (stitch.rescale_x, stitch.rescale_y))
        if rescaled:
            width = round(inpainted.shape[2] / stitch.rescale_x)
            height = round(inpainted.shape[1] / stitch.rescale_y)
            x, y = round(x / stitch.rescale_x), round(y / stitch.rescale_y)
            if min(width, height) < 1:
                raise NodeInputError("inpainted_image", f"{inpainted.shape[2]} × {inpainted.shape[1]} rescaled back "
                                                        "leaves no pixels")
            inpainted = bislerp(inpainted.movedim(-1, 1), width, height).movedim(1, -1)
            mask = bislerp(mask.movedim(-1, 1)[None], width, height)[0].movedim(1, -1)
        out = composite_masked(original.movedim(-1, 1), inpainted.movedim(-1, 1).to(original), x, y, mask, 1)
        return out.movedim(1, -1)


# -- pixel art -------------------------------------------------------------------------------------


def _kmeans_palette(image, colors: int):
    """The pack's palette: scikit-learn's KMeans (random_state 42) of the picture's 8-bit RGB pixels;
    the cluster centres / 255."""
    import numpy as np
    import torch
    from sklearn.cluster import KMeans
    levels = _levels(image)
    pixels = (np.repeat(levels, 3, axis=-1) if levels.shape[-1] == 1 else levels[..., :3]).reshape(-1, 3)
    if len(pixels) < colors:
        raise NodeInputError("palette_image", f"{len(pixels)} pixels: expected at least palette_colors ({colors})")
    centres = KMeans(n_clusters=colors, random_state=42).fit(pixels).cluster_centers_
    return torch.from_numpy(centres.astype(np.float32) / 255.0)


def _mask_levels(mask, width: int, height: int):
    """One mask picture as the pack reads it: 8-bit, lanczos to the image's size, as Pillow's L
    (luma of RGB)."""
    import numpy as np
    import torch
    from PIL import Image
    levels = _levels(mask if mask.ndim == 3 else mask[..., None])
    picture = Image.fromarray(levels[..., 0] if levels.shape[-1] == 1 else levels[..., :3])
    picture = picture.resize((width, height), Image.LANCZOS)
    picture = picture if picture.mode == "L" else picture.convert("L")
    return torch.from_numpy(np.asarray(picture).astype(np.float32) / 255.0)


class FillPixelArtShader(Node):
    """Pixel art on 8-bit levels (x · 255 cut to a level): the picture shrunk (nearest) to
    width / pixel_size × height / pixel_size' cells (cut to whole cells; pixel_size' = pixel_size ·
    height / width with use_aspect_ratio, else pixel_size) and grown back (nearest); each channel
    cut to floor(x · color_depth) / color_depth; with palette_image, each pixel replaced by the
    nearest (Euclidean) of palette_colors colours scikit-learn's KMeans (random_state 42) finds in
    the first palette picture; with mask (a batch of pictures used in turn, each lanczos to the
    image's size and read as Pillow's luma), the effect only where the mask is light. The result is
    cut to 8-bit levels again. The pack runs on CUDA only; here on any device. RGB pictures (and
    RGBA ones without palette or mask, as in the pack, which fails on those and on one channel)."""
    category = VFX
    display_name = "FL Pixel Art"
    images: IMAGE
    pixel_size: float = Float(15.0, min=1.0, max=100.0, step=1.0)
    color_depth: float = Float(50.0, min=1.0, max=255.0, step=1.0)
    use_aspect_ratio: bool = Bool(True)
    palette_image: IMAGE = None
    palette_colors: int = Int(16, min=2, max=16)
    mask: IMAGE = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_PixelArtShader",), optional=("pixel_size", "color_depth", "use_aspect_ratio",
                                                          "palette_image", "palette_colors", "mask"),
                       widgets=_layout_widgets(("pixel_size", "color_depth", "use_aspect_ratio", "palette_colors"),
                                               "the palette / mask one"))

    def run(self):
        import numpy as np
        import torch
        import torch.nn.functional as F
        images = _image(self.images, "images")
        _channels(images, "images", (3, 4) if self.palette_image is None and self.mask is None else (3,))
        batch, height, width = images.shape[:3]
        size_y = self.pixel_size / (width / height) if self.use_aspect_ratio else self.pixel_size
        cells_x, cells_y = int(width / self.pixel_size), int(height / size_y)
        if min(cells_x, cells_y) < 1:
            raise NodeInputError("pixel_size", f"{self.pixel_size:g} leaves a {width} × {height} picture no whole "
                                               "cell")
        palette = None if self.palette_image is None else _kmeans_palette(
            _image(self.palette_image, "palette_image")[0], self.palette_colors)
        masks = None if self.mask is None else _image(self.mask, "mask")
        out = []
        for index, image in enumerate(images):
            check_interrupted()
            levels = torch.from_numpy(_levels(image).astype(np.float32) / 255.0)
            planes = F.interpolate(levels.movedim(-1, 0)[None], size=(cells_y, cells_x), mode="nearest")
            pixelated = F.interpolate(planes, size=(height, width), mode="nearest")[0].movedim(0, -1)
            pixelated = torch.floor(pixelated * self.color_depth) / self.color_depth
            if palette is not None:
                nearest = torch.cdist(pixelated.reshape(-1, 3), palette).argmin(dim=1)
                pixelated = palette[nearest].reshape(pixelated.shape)
            if masks is not None:
                weight = _mask_levels(masks[index % masks.shape[0]], width, height)[..., None]
                pixelated = pixelated * weight + levels * (1 - weight)
            out.append(torch.from_numpy((pixelated.numpy() * 255).astype(np.uint8).astype(np.float32) / 255.0))
        return torch.stack(out).to(images.device)


def _folder_tree_path(structure, name: str = "folder_structure") -> list[str]:
    """The pack's create_folder_path: every folder name of the tree in depth-first order, each
    inside the one before (siblings too)."""
    parts = []
    for folder in structure:
        if not isinstance(folder, dict) or not isinstance(folder.get("name"), str) or not isinstance(
                folder.get("children", []), list):
            raise NodeInputError(name, f"{folder!r}: expected {{\"name\": text, \"children\": [...]}}")
        parts.append(folder["name"])
        for child in folder.get("children", []):
            parts += _folder_tree_path([child], name)
    return parts


SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}


def _file_name(template: str, index: int) -> str:
    """file_name_template with {index} (and a plain integer format such as {index:04d}) filled in;
    other fields are refused (the pack runs Python's str.format on it)."""
    import re
    import string
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as e:
        raise NodeInputError("file_name_template", f"{template!r}: {e}") from None
    for _, field, spec, conversion in fields:
        if field is not None and (field != "index" or conversion or not re.fullmatch(r"0?\d{0,3}d?", spec or "")):
            raise NodeInputError("file_name_template", f"{template!r}: expected {{index}} (or {{index:04d}}) as its "
                                                       "only field")
    return template.format(index=index)


def outputs_folder_parts(given: str, input_name: str) -> list[str]:
    """A Fill saver's folder as ComfyUI's working folder sees it, as its parts inside the outputs
    folder: a leading ./output (ComfyUI's outputs folder) dropped; a path on disk refused."""
    given = given.strip()
    if given.startswith(("/", "\\")) or given[1:3] in (":/", ":\\"):
        raise NodeInputError(input_name, f"{given!r} is a path on disk: files are saved only inside the outputs "
                                         "folder; give a folder there (the pack writes anywhere)")
    parts = [part for part in given.replace("\\", "/").split("/") if part not in ("", ".")]
    return parts[1:] if parts[:1] == ["output"] else parts


class FillSaveImages(Node):
    """Save each image (8-bit levels, x · 255 cut) as file_name_template with {index} from
    start_index (the next free number where a file of that name exists), in the format its
    extension names (.png, .jpg / .jpeg, .webp, .bmp), in base_directory inside the outputs folder
    (the pack's default ./output, ComfyUI's outputs, is the outputs folder itself; a path on disk
    is refused, where the pack writes anywhere) and the folders of folder_structure (JSON
    [{"name": ..., "children": [...]}], each name inside the one before, depth first, as the pack
    joins them). With metadata, its text goes
    to <file stem>_metadata.txt beside each (UTF-8). Gives the saved files' paths in the outputs
    folder joined by ", "."""
    category = "🏵️Fill Nodes/Image"
    display_name = "FL Save Images"
    output_node = True
    images: IMAGE
    base_directory: str = Text("./output")
    folder_structure: str = Text("[]")
    file_name_template: str = Text("image_{index}.png")
    start_index: int = Int(1, min=0, max=1000000)
    metadata: str = Text("")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("FL_SaveImages",), optional=("metadata",))

    def run(self):
        import json

        from PIL import Image

        from graphflow.api import folders
        from graphflow.folders import file_name_problem
        from nodes.image import _write_at
        from nodes.pack_nodes_fill import _caption_folder, _write_replacing
        images = _image(self.images, "images")
        _channels(images, "images", (3, 4))
        try:
            structure = json.loads(self.folder_structure)
        except ValueError as e:
            raise NodeInputError("folder_structure", f"not JSON ({e}): expected a list of folders") from None
        if not isinstance(structure, list):
            raise NodeInputError("folder_structure", 'expected a list of {"name": text, "children": [...]}')
        base = outputs_folder_parts(self.base_directory, "base_directory")
        parts = base + _folder_tree_path(structure)
        folder = _caption_folder("/".join(parts), "folder_structure" if len(parts) > len(base) else
                                 "base_directory") if parts else folders.outputs
        saved = []
        for offset, image in enumerate(images):
            check_interrupted()
            levels = _levels(image)
            picture = Image.fromarray(levels)
            index = self.start_index + offset
            while True:
                name = _file_name(self.file_name_template, index)
                extension = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
                if extension not in SAVE_FORMATS:
                    raise NodeInputError("file_name_template", f"{name!r}: expected a name ending in "
                                                               f"{', '.join(SAVE_FORMATS)}")
                if "/" in name or "\\" in name:
                    raise NodeInputError("file_name_template", f"{name!r}: expected a file name without folders")
                if problem := file_name_problem(name):
                    raise NodeInputError("file_name_template", f"{name!r}: {problem}")
                try:
                    if _write_at(lambda path: picture.save(path, format=SAVE_FORMATS[extension]), folder / name):
                        break
                except OSError as e:
                    raise NodeInputError("file_name_template", f"can't save {name}: {e}") from None
                index += 1
            if self.metadata:
                notes = folder / f"{name.rsplit('.', 1)[0]}_metadata.txt"
                _write_replacing(notes, lambda path: path.write_text(self.metadata, encoding="utf-8"))
            saved.append((folder / name).relative_to(folders.outputs).as_posix())
        return ", ".join(saved)


def _selected_file(name: str):
    """FL_LoadImage's selected_file inside the inputs folder (the pack opens any path), or None
    where it names no file."""
    import re

    from graphflow.api import folders
    from graphflow.folders import UnsafePathError
    cleaned = name.strip().replace("\\", "/")
    # the pack's editor writes its folder + "/" + the file, from "./" at first: ".//a.png"
    cleaned = re.sub(r"^(\./+)+", "", cleaned)
    if not cleaned:
        return None
    if cleaned.startswith("/") or cleaned[1:3] == ":/":
        raise NodeInputError("selected_file", f"{name!r} is a path on disk: files are read only inside the inputs "
                                              "folder; give the file's path there (the pack reads any)")
    try:
        path = safe_join(folders.inputs, cleaned)
    except UnsafePathError:
        raise NodeInputError("selected_file", f"{name!r} is not inside the inputs folder") from None
    return path if path.is_file() else None


class FillLoadImage(Node):
    """The picture selected_file names, a path inside the inputs folder (the pack's editor browses
    root_directory, anywhere on disk, and writes the path), as its pixels / 255 (the first frame;
    RGB and RGBA kept, other modes made RGB, where the pack gives their raw values: palette indices,
    a grey picture without its channel axis), and that path; no file selected gives a black 1 × 1
    picture and empty text, as in the pack. root_directory, where the editor starts browsing, must
    be a folder inside the inputs folder ("./": the inputs folder; the editor's ".//a.png" is a.png
    there). A path on disk, as the editor writes after browsing to a folder by its full path, is
    refused. Read again when the file changes."""
    category = "🏵️Fill Nodes/Image"
    display_name = "FL Load Image"
    output_node = True
    root_directory: str = Text("./")
    selected_file: str = Text("")
    outputs = {"IMAGE": IMAGE, "STRING": STRING}
    comfy = ComfyAlias(("FL_LoadImage",), optional=("selected_file",))

    @classmethod
    def fingerprint(cls, root_directory="./", selected_file="", **widgets):
        try:
            path = _selected_file(selected_file)
            return "none" if path is None else f"{path}:{path.stat().st_size}:{path.stat().st_mtime_ns}"
        except (NodeInputError, OSError):
            return "missing"

    def run(self):
        import numpy as np
        import torch
        from PIL import Image, UnidentifiedImageError

        from graphflow.api import folders
        from nodes.image import check_folder_pictures
        from nodes.pack_nodes_fill import _randomizer_folder
        root = self.root_directory.strip().replace("\\", "/")
        if root not in ("", ".", "./"):
            _randomizer_folder(root, "root_directory")
        path = _selected_file(self.selected_file)
        if path is None:
            if self.selected_file.strip():
                raise NodeInputError("selected_file", f"no file {self.selected_file!r} in the inputs folder")
            return torch.zeros(1, 1, 1, 3), ""
        check_folder_pictures([path], "selected_file", "selected_file")
        try:
            with Image.open(path) as picture:
                picture.seek(0)
                picture = picture if picture.mode in ("RGB", "RGBA") else picture.convert(
                    "RGBA" if "transparency" in picture.info or picture.mode in ("LA", "PA") else "RGB")
                pixels = np.asarray(picture).astype(np.float32) / 255.0
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
            raise NodeInputError("selected_file", f"can't read {self.selected_file!r} as a picture: {e}") from None
        return torch.from_numpy(pixels)[None], path.relative_to(folders.inputs).as_posix()


# -- sliced samplers -------------------------------------------------------------------------------

SLICED_STRENGTH = 1.2  # the pack's factor on each slice's prompt embeddings with sliced conditioning


def _slice_region(region, canvas, size):
    """The pack's resize_region: region (x1, y1, x2, y2) of a canvas (width, height) in a picture of
    `size`, read as (width, height) as the pack reads a hint's (height, width)."""
    (x1, y1, x2, y2), (width, height), (new_width, new_height) = region, canvas, size
    return (math.floor(x1 * new_width / width), math.floor(y1 * new_height / height),
            math.ceil(x2 * new_width / width), math.ceil(y2 * new_height / height))


def _sliced_control(applied, region, canvas, tile):
    """A control chain with each hint cut as the pack's crop_controlnet cuts it: the region scaled to
    the hint by resize_region (with the hint's height and width swapped), then resized (nearest-exact)
    to tile (width, height) read as (height, width)."""
    import torch.nn.functional as F
    if applied is None:
        return None
    if getattr(applied, "vae", None) is not None or getattr(applied, "mask", None) is not None:
        raise NodeInputError("positive", "a ControlNet that takes a VAE or an inpainting mask: its hint can't be "
                                         "cut to a slice; turn use_sliced_conditioning off")
    hint = applied.image.movedim(-1, 1)
    x1, y1, x2, y2 = _slice_region(region, canvas, tuple(hint.shape[2:]))
    cut = hint[:, :, y1:y2, x1:x2]
    if min(cut.shape[2:]) < 1:
        raise NodeInputError("positive", "a ControlNet hint cut to a slice is empty (the pack swaps the hint's "
                                         "width and height when it cuts it)")
    cut = F.interpolate(cut, size=tile, mode="nearest-exact")
    return applied.with_hint(cut.movedim(1, -1), _sliced_control(applied.previous, region, canvas, tile))


def _sliced_conditioning(conditioning, region, canvas, tile, name):
    """The pack's crop_cond then adjust_conditioning_strength: each entry's embeddings × 1.2 and its
    ControlNet hints cut to the slice."""
    out = []
    for cond, options in conditioning:
        options = dict(options)
        if options.get("control") is not None:
            try:
                options["control"] = _sliced_control(options["control"], region, canvas, tile)
            except NodeInputError as e:
                raise NodeInputError(name, str(e)) from None
        out.append((cond * SLICED_STRENGTH, options))
    return out


def _cosine_ramp(size: int, sliced: bool):
    """FL_KsamplerPlus's ramp over an overlap: a raised cosine from 0 to 1."""
    import torch
    return 0.5 * (1 - torch.cos(torch.linspace(0, math.pi, size)))


def _power_ramp(size: int, sliced: bool):
    """FL_KsamplerBasic's ramp over an overlap: linear from 0 to 1, to the 0.3 power with sliced
    conditioning."""
    import torch
    return torch.linspace(0, 1, size) ** (0.3 if sliced else 1.0)


def _blend_mask(height, width, overlap_h, overlap_w, edges, ramp):
    """The pack's create_blend_mask: ramp(size) over the overlaps on the sides that are not the
    latent's edges (top, left, bottom, right)."""
    import torch
    mask = torch.ones(height, width)
    top, left, bottom, right = edges
    if overlap_h > 0:
        rising = ramp(overlap_h)
        if not top:
            mask[:overlap_h] *= rising[:, None]
        if not bottom:
            mask[-overlap_h:] *= rising.flip(0)[:, None]
    if overlap_w > 0:
        rising = ramp(overlap_w)
        if not left:
            mask[:, :overlap_w] *= rising[None]
        if not right:
            mask[:, -overlap_w:] *= rising.flip(0)[None]
    return mask


def _sliced_sample(node, ramp):
    """FL_KsamplerPlus / FL_KsamplerBasic's sampling, on the node's inputs, blended by
    ramp(size, sliced) (_cosine_ramp or _power_ramp)."""
    from functools import partial

    import torch
    from nodes.pack_nodes import _core
    from nodes.sampling import KSampler
    from nodes.vae import VAEDecode, VAEEncode
    if node.input_type == "image":
        if node.image is None or node.vae is None:
            raise NodeInputError("image" if node.image is None else "vae", "input_type image needs both image "
                                                                           "and vae")
        latent = _core(VAEEncode, {"pixels": "image"}, pixels=node.image, vae=node.vae)
    elif node.latent_image is None:
        raise NodeInputError("latent_image", "not connected, and input_type is latent")
    else:
        latent = node.latent_image
    if not isinstance(latent, dict) or not torch.is_tensor(latent.get("samples")) or latent["samples"].ndim != 4:
        raise NodeInputError("latent_image", "expected a LATENT of [B, C, H, W] samples")
    source = latent["samples"]
    batch, _, height, width = source.shape
    tile_h, tile_w = height // node.y_slices, width // node.x_slices
    if min(tile_h, tile_w) < 1:
        raise NodeInputError("x_slices" if tile_w < 1 else "y_slices", f"more slices than the latent's "
                             f"{width} × {height} pixels")
    over_h, over_w = int(tile_h * node.overlap), int(tile_w * node.overlap)
    per_batch = 1 if node.use_sliced_conditioning else node.batch_size
    if node.seed + node.x_slices * node.y_slices - 1 > 0xffffffffffffffff:
        raise NodeInputError("seed", f"{node.seed}: the last slice's seed + slice number passes 2⁶⁴ − 1")
    slices = []
    for y in range(node.y_slices):
        for x in range(node.x_slices):
            top, bottom = max(0, y * tile_h - over_h), min(height, (y + 1) * tile_h + over_h)
            left, right = max(0, x * tile_w - over_w), min(width, (x + 1) * tile_w + over_w)
            slices.append((top, bottom, left, right))
    samples = None
    for first in range(0, len(slices), per_batch):
        check_interrupted()
        group = slices[first:first + per_batch]
        if len({(b - t, r - l) for t, b, l, r in group}) > 1:
            raise NodeInputError("batch_size", f"slices of different sizes in one batch of {per_batch}: the "
                                               "latent doesn't divide into equal slices (the pack fails)")
        parts = torch.cat([source[:, :, t:b, l:r] for t, b, l, r in group])
        if node.use_sliced_conditioning:
            top, bottom, left, right = group[0]
            region, canvas = (left * 8, top * 8, right * 8, bottom * 8), (width * 8, height * 8)
            tile = ((right - left) * 8, (bottom - top) * 8)
            positive = _sliced_conditioning(node.positive, region, canvas, tile, "positive")
            negative = _sliced_conditioning(node.negative, region, canvas, tile, "negative")
        else:
            positive, negative = list(node.positive) * len(group), list(node.negative) * len(group)
        done = _core(KSampler, {"latent_image": "latent_image"}, model=node.model, seed=node.seed + first,
                     steps=node.steps, cfg=node.cfg, sampler_name=node.sampler_name, scheduler=node.scheduler,
                     positive=positive, negative=negative, latent_image={"samples": parts},
                     denoise=node.denoise)["samples"]
        if samples is None:
            samples = torch.zeros(batch, done.shape[1], height, width, device=done.device, dtype=done.dtype)
        for (t, b, l, r), part in zip(group, torch.split(done, batch)):
            weight = _blend_mask(b - t, r - l, over_h, over_w, (t == 0, l == 0, b == height, r == width),
                                 partial(ramp, sliced=node.use_sliced_conditioning))
            weight = weight.to(samples)
            samples[:, :, t:b, l:r] = samples[:, :, t:b, l:r] * (1 - weight) + part.to(samples) * weight
    out = {"samples": samples}
    image = None if node.vae is None else _core(VAEDecode, {"samples": "latent_image"}, samples=out, vae=node.vae)
    return node.model, node.positive, node.negative, out, node.vae, image


class FillKsamplerPlus(Node):
    """KSampler in x_slices × y_slices overlapping slices of the latent (each slice h // y_slices
    by w // x_slices latent pixels, grown by overlap of that on each inner side), sampled in turn,
    batch_size at a time, slice i (row by row) with seed + i (of its batch's first), and laid over
    what is there through a mask ramping over the overlaps (a raised cosine) on its inner sides;
    as the pack does. With use_sliced_conditioning (one slice a batch) each slice's prompt
    embeddings are × 1.2 and ControlNet hints cut to the slice as the pack cuts them (with the
    hint's width and height swapped). input_type image encodes image with vae first; with a vae
    the result is decoded too. A latent's noise mask is not used, as in the pack. Slices of
    different sizes can't share a batch (the pack fails on them). Where the overlap is narrower
    than what the division leaves over (h % y_slices rows, w % x_slices columns), the last rows or
    columns no slice reaches are 0 in the result, as in the pack."""
    category = KSAMPLERS
    display_name = "FL KSampler Plus"
    model: MODEL
    positive: CONDITIONING
    negative: CONDITIONING
    seed: int = Int(0, min=0, max=0xffffffffffffffff)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(7.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, SAMPLER_NAMES[0])
    scheduler: str = Choice(SCHEDULER_NAMES, SCHEDULER_NAMES[0])
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    input_type: str = Choice(["latent", "image"], "latent")
    x_slices: int = Int(2, min=1, max=8)
    y_slices: int = Int(2, min=1, max=8)
    overlap: float = Float(0.25, min=0.0, max=0.9, step=0.01)
    batch_size: int = Int(1, min=1, max=64)
    use_sliced_conditioning: bool = Bool(True)
    latent_image: LATENT = None
    vae: VAE = None
    image: IMAGE = None
    outputs = {"model": MODEL, "positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT, "vae": VAE,
               "image": IMAGE}
    comfy = ComfyAlias(("FL_KsamplerPlus",), optional=("latent_image", "vae", "image"))

    def run(self):
        return _sliced_sample(self, _cosine_ramp)


class FillKsamplerBasic(Node):
    """FL KSampler Plus with the pack's other blend: a linear ramp over the overlaps, or that ramp
    to the 0.3 power with use_sliced_conditioning (its inputs: image before vae)."""
    category = "FL/Sampling"
    display_name = "FL KSampler Basic"
    model: MODEL
    positive: CONDITIONING
    negative: CONDITIONING
    seed: int = Int(0, min=0, max=0xffffffffffffffff)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(7.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, SAMPLER_NAMES[0])
    scheduler: str = Choice(SCHEDULER_NAMES, SCHEDULER_NAMES[0])
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    input_type: str = Choice(["latent", "image"], "latent")
    x_slices: int = Int(2, min=1, max=8)
    y_slices: int = Int(2, min=1, max=8)
    overlap: float = Float(0.25, min=0.0, max=0.9, step=0.01)
    batch_size: int = Int(1, min=1, max=64)
    use_sliced_conditioning: bool = Bool(True)
    latent_image: LATENT = None
    image: IMAGE = None
    vae: VAE = None
    outputs = {"model": MODEL, "positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT, "vae": VAE,
               "image": IMAGE}
    comfy = ComfyAlias(("FL_KsamplerBasic",), optional=("latent_image", "image", "vae"))

    def run(self):
        return _sliced_sample(self, _power_ramp)


# -- paths and folders -----------------------------------------------------------------------------


class FillPathTypeChecker(Node):
    """What kind of path input_path is, as the pack tells on this server's system (pathlib): "Empty
    path provided." for blank text, "Absolute path" for an absolute one, else "Relative path" (the
    pack's further answers, drive-specific, UNC and URL-like, are never reached: every other path
    reads as relative). The text only; nothing on disk is looked at."""
    category = "🏵️Fill Nodes/Utility"
    display_name = "FL Path Type Checker"
    input_path: str = Text("")
    outputs = {"PATH": PATH}
    comfy = ComfyAlias(("FL_PathTypeChecker",))

    def run(self):
        from pathlib import Path
        text = self.input_path.strip()
        if not text:
            return "Empty path provided."
        return "Absolute path" if Path(text).is_absolute() else "Relative path"


CRAWL_PICTURES = ("jpg", "jpeg", "png", "bmp", "gif")  # FL_DirectoryCrawl's, by the text after the last dot


class FillDirectoryCrawl(Node):
    """Load the first max_files pictures (.jpg .jpeg .png .bmp .gif, any case) or text files (.txt)
    of directory_path, a folder inside the inputs folder, and every folder below it (the pack reads
    any folder on disk, in the order the file system lists them; here sorted by path). Pictures:
    turned by their EXIF orientation, made RGB, and padded with black at the right and bottom to
    the largest one's size, as one batch; the text output is empty. Text: the files' UTF-8 text
    joined by "\\n---\\n"; the image output is a black 1 × 1 picture (the pack gives a bare 1-value
    tensor). Links leading out of the folder are left out; at most 100,000 files and folders are
    looked at."""
    category = UTILITY_LOWER
    display_name = "FL Directory Crawl"
    directory_path: str = Text("")
    file_type: str = Choice(["images", "text"], "images")
    max_files: int = Int(100, min=1, max=10000)
    outputs = {"IMAGE": IMAGE, "STRING": STRING}
    comfy = ComfyAlias(("FL_DirectoryCrawl",))

    @classmethod
    def fingerprint(cls, directory_path="", file_type="images", **widgets):
        try:
            return ",".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in _crawled(directory_path,
                                                                                             file_type))
        except (NodeInputError, OSError):
            return "missing"

    def run(self):
        import numpy as np
        import torch
        from PIL import Image, ImageOps, UnidentifiedImageError

        from graphflow.api import check_run_memory
        from nodes.image import check_folder_pictures
        if not self.directory_path.strip():
            raise NodeInputError("directory_path", "give a folder inside the inputs folder")
        paths = _crawled(self.directory_path, self.file_type)[:self.max_files]
        if not paths:
            raise NodeInputError("directory_path", f"no {self.file_type} in {self.directory_path!r} or its folders")
        if self.file_type == "text":
            try:
                texts = [path.read_text(encoding="utf-8") for path in paths]
            except (OSError, UnicodeDecodeError) as e:
                raise NodeInputError("directory_path", f"can't read a text file: {e}") from None
            return torch.zeros(1, 1, 1, 3), "\n---\n".join(texts)
        check_folder_pictures(paths, "max_files", "directory_path")
        pictures = []
        for path in paths:
            check_interrupted()
            try:
                with Image.open(path) as picture:
                    pictures.append(np.asarray(ImageOps.exif_transpose(picture).convert("RGB")))
            except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
                raise NodeInputError("directory_path", f"can't read {path.name!r} as a picture: {e}") from None
        height, width = max(p.shape[0] for p in pictures), max(p.shape[1] for p in pictures)
        check_run_memory("max_files", "the pictures padded to the largest", images=Size(len(pictures), height, width))
        batch = np.zeros((len(pictures), height, width, 3), dtype=np.float32)
        for index, picture in enumerate(pictures):
            batch[index, :picture.shape[0], :picture.shape[1]] = picture.astype(np.float32) / 255.0
        return torch.from_numpy(batch), ""


def _crawled(directory_path: str, file_type: str) -> list:
    """FL_DirectoryCrawl's files below the folder, sorted by path (linked folders not entered, as
    os.walk does; linked files leading out of the folder left out)."""
    from nodes.pack_nodes_fill import _randomizer_folder, walked_files
    folder = _randomizer_folder(directory_path)
    kinds = CRAWL_PICTURES if file_type == "images" else ("txt",)
    return sorted(walked_files(folder, lambda name: name.rsplit(".", 1)[-1].lower() in kinds, "directory_path",
                               directory_path))


MIRROR_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".webp": "WEBP", ".jpeg": "JPEG"}  # FL_MirrorAndAppendCaptions's


class FillMirrorAndAppendCaptions(Node):
    """Double a captioned picture set in place: for each .png / .jpg / .webp / .jpeg picture (any
    case, sorted by name) of image_directory, a folder inside the outputs folder (the pack works on
    any folder on disk), a left-right mirrored copy <stem>_Mirror<extension> is saved beside it, in
    the format its extension names, as in the pack (a mode that format can't hold is refused);
    where the picture has a caption file (its stem + caption_extension), the picture's caption gets
    "<additional_text>_<2i>" and the mirror's "<additional_text>_<2i + 1>" (i: the picture's place)
    after it (append, ", " between) or before it (prepend), both written as UTF-8. The originals
    are left as they are (the pack saves each again, which re-encodes a JPEG or WebP). Gives the
    folder."""
    category = CAPTIONING
    display_name = "FL Mirror And Append Captions"
    output_node = True
    cacheable = False  # it changes the folder it reads: each run works on what is there
    image_directory: str = Text("X://path/to/images")
    caption_extension: str = Choice([".caption", ".txt"], ".txt")
    additional_text: str = Text("Frame")
    text_position: str = Choice(["append", "prepend"], "append")
    outputs = {"directory": STRING}
    comfy = ComfyAlias(("FL_MirrorAndAppendCaptions",))

    def run(self):
        import os

        from PIL import Image, ImageOps, UnidentifiedImageError

        from graphflow.api import folders
        from graphflow.folders import UnsafePathError
        from nodes.image import check_folder_pictures
        from nodes.pack_nodes_fill import _write_replacing, listed_files
        name = self.image_directory.strip().replace("\\", "/").strip("/")
        try:
            folder = safe_join(folders.outputs, name) if name else None
        except UnsafePathError:
            folder = None
        if folder is None or not folder.is_dir():
            raise NodeInputError("image_directory", f"no folder {self.image_directory!r} in the outputs folder (the "
                                                    "pack works on any folder; here only on those inside the outputs)")
        pictures = [path.name for path in listed_files(folder, tuple(MIRROR_FORMATS), "image_directory",
                                                       self.image_directory)]
        check_folder_pictures([folder / n for n in pictures], "image_directory", "image_directory")
        for index, picture_name in enumerate(pictures):
            check_interrupted()
            stem, extension = os.path.splitext(picture_name)
            mirror_name = f"{stem}_Mirror{extension}"
            try:
                with Image.open(folder / picture_name) as picture:
                    mirrored = ImageOps.mirror(picture)
            except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
                raise NodeInputError("image_directory", f"can't read {picture_name!r} as a picture: {e}") from None
            image_format = MIRROR_FORMATS[extension.lower()]  # by the name, as the pack's save picks it
            try:
                _write_replacing(folder / mirror_name, lambda path: mirrored.save(path, format=image_format))
            except (OSError, ValueError) as e:
                raise NodeInputError("image_directory", f"can't save {mirror_name!r} as {image_format}: {e}") from None
            caption_path = _caption_inside(folder, stem + self.caption_extension)
            if caption_path is None:
                continue
            try:
                caption = caption_path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as e:
                raise NodeInputError("image_directory", f"can't read {caption_path.name!r}: {e}") from None
            for target, number in ((stem, 2 * index), (f"{stem}_Mirror", 2 * index + 1)):
                frame = f"{self.additional_text}_{number}"
                text = f"{caption}, {frame}" if self.text_position == "append" else f"{frame}, {caption}"
                _write_replacing(folder / (target + self.caption_extension),
                                 lambda path, text=text: path.write_text(text, encoding="utf-8"))
        return self.image_directory
