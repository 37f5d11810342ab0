"""JPS-GER's ComfyUI_JPS-Nodes, the model-free nodes, under the pack's class names, inputs and
outputs, as read from the pack's jps_nodes.py (the stored version whose NODE_CLASS_MAPPINGS ends
with Crop Image TargetSize and SDXL Prompt Handling Plus: 77,303 characters, index file id
2612033409; an earlier stored version is at commit ef71030a04f91ccc454362412d73a12acdd01cda).

- Settings: SDXL Resolutions, SDXL Basic Settings (+ Pipe), Generation TXT IMG Settings,
  Generation Settings (+ Pipe), IP Adapter Settings (+ Pipe), Revision Settings (+ Pipe), Sampler
  Scheduler Settings: values (and the pack's settings tuples on a BASIC_PIPE) passed on.
- Math: SDXL Recommended Resolution Calc, Resolution Multiply, Largest Int, Multiply Int Int / Int
  Float / Float Float, Substract Int Int.
- Switches: Integer / Image / Latent / Conditioning / Model / VAE / ControlNet Switch (input
  number `select` of five), Disable Enable Switch, Enable Disable Switch; SDXL Fundamentals
  MultiPipe and Images Masks MultiPipe (pass-throughs).
- Text: Text Concatenate, Get Date Time String, SDXL Prompt Handling (+ Plus).
- Image: Get Image Size, Crop Image Square, Crop Image TargetSize.

- IO: Lora Loader (LoraLoader with an Off switch).

Left out: SDXL Prompt Styler (JPS), which needs the pack's own style files (styles/main, artists,
movies) that graphflow does not carry (twri's SDXL Prompt Styler is ours:
nodes/pack_nodes_sdxl_styler.py). Where the pack fails with Python's own error (a switch set to an
input not connected, a target height of 0), the node is refused naming the input.
"""

from __future__ import annotations

import math
from datetime import datetime

from graphflow.api import CLIP, CONDITIONING, FLOAT, IMAGE, INT, LATENT, MASK, MODEL, STRING, VAE, Choice, \
    ComfyAlias, Estimate, Float, Int, Node, NodeInputError, Size, Text, folders
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from nodes.controlnet import CONTROL_NET
from nodes.image import MAX_SIZE, _image, _resize_image
from nodes.loaders import LoadLoRA
from nodes.pack_nodes import _core
# the pack's settings nodes hand their values on as a tuple on ComfyUI's BASIC_PIPE socket, Impact
# Pack's name for its own model pipe: one type, as in ComfyUI
from nodes.pack_nodes_impact import BASIC_PIPE

COMFY_PACK = "ComfyUI_JPS-Nodes"  # the custom node pack this module's ComfyUI classes come from

INT64_MAX = 2 ** 63 - 1  # a whole-number result beyond this can't be an INT here

# -- settings ---------------------------------------------------------------------------------------

RESOLUTIONS = {"square - 1024x1024 (1:1)": (1024, 1024), "landscape - 1152x896 (4:3)": (1152, 896),
               "landscape - 1216x832 (3:2)": (1216, 832), "landscape - 1344x768 (16:9)": (1344, 768),
               "landscape - 1536x640 (21:9)": (1536, 640), "portrait - 896x1152 (3:4)": (896, 1152),
               "portrait - 832x1216 (2:3)": (832, 1216), "portrait - 768x1344 (9:16)": (768, 1344),
               "portrait - 640x1536 (9:21)": (640, 1536)}
CROP_POSITIONS = ("center", "left", "right", "top", "bottom")  # Generation Settings' and the crop nodes' order
REFERENCE_CROPS = ("center", "top", "bottom", "left", "right")  # IP Adapter / Revision Settings' order
INTERPOLATIONS = ("lanczos", "nearest", "bilinear", "bicubic", "area", "nearest-exact")
WEIGHT_TYPES = ("original", "linear", "channel penalty")


def _pipe(value, length: int, input_name: str, maker: str) -> tuple:
    """A settings tuple from the pack's settings node, checked for its length."""
    if not isinstance(value, (tuple, list)) or len(value) != length:
        raise NodeInputError(input_name, f"expected the settings of {maker} ({length} values), got "
                                         f"{type(value).__name__}")
    return tuple(value)


class JPSSDXLResolutions(Node):
    """One of SDXL's nine trained sizes, as JPS's SDXL Resolutions gives it: width and height."""
    category = "JPS Nodes/Settings"
    resolution: str = Choice(tuple(RESOLUTIONS), "square - 1024x1024 (1:1)")
    outputs = {"width": INT, "height": INT}
    comfy = ComfyAlias(("SDXL Resolutions (JPS)",))

    def run(self):
        return RESOLUTIONS[self.resolution]


class JPSSDXLBasicSettings(Node):
    """JPS's SDXL Basic Settings: the size of `resolution`, sampler, scheduler, steps_total, the
    base model's steps (step_split = steps_total * base_percentage / 100), the CFGs (cfg_refiner 0:
    cfg_base), the refiner's aesthetic score, clip_skip and a file name, as one settings pipe for
    SDXL Basic Settings Pipe."""
    category = "JPS Nodes/Settings"
    resolution: str = Choice(tuple(RESOLUTIONS), "square - 1024x1024 (1:1)")
    sampler_name: str = Choice(SAMPLER_NAMES, SAMPLER_NAMES[0])
    scheduler: str = Choice(SCHEDULER_NAMES, SCHEDULER_NAMES[0])
    steps_total: int = Int(60, min=20, max=250, step=5)
    base_percentage: int = Int(80, min=5, max=100, step=5)
    cfg_base: float = Float(6.5, min=1, max=20, step=0.5)
    cfg_refiner: float = Float(6.5, min=0, max=20, step=0.5)
    ascore_refiner: float = Float(6, min=1, max=10, step=0.5)
    clip_skip: int = Int(-2, min=-24, max=-1)
    filename: str = Text("JPS")
    outputs = {"sdxl_basic_settings": BASIC_PIPE}
    comfy = ComfyAlias(("SDXL Basic Settings (JPS)",))

    def run(self):
        width, height = RESOLUTIONS[self.resolution]
        step_split = self.steps_total * self.base_percentage / 100
        cfg_refiner = self.cfg_base if self.cfg_refiner == 0 else self.cfg_refiner
        return (width, height, self.sampler_name, self.scheduler, self.steps_total, step_split, self.cfg_base,
                cfg_refiner, self.ascore_refiner, self.clip_skip, self.filename)


class JPSSDXLBasicSettingsPipe(Node):
    """The values of an SDXL Basic Settings pipe, as JPS's SDXL Basic Settings Pipe gives them
    (step_split cut to a whole number)."""
    category = "JPS Nodes/Pipes"
    sdxl_basic_settings: BASIC_PIPE
    outputs = {"width": INT, "height": INT, "sampler_name": STRING, "scheduler": STRING, "steps_total": INT,
               "step_split": INT, "cfg_base": FLOAT, "cfg_refiner": FLOAT, "ascore_refiner": FLOAT,
               "clip_skip": INT, "filename": STRING}
    comfy = ComfyAlias(("SDXL Basic Settings Pipe (JPS)",))

    def run(self):
        (width, height, sampler, scheduler, steps, split, cfg_base, cfg_refiner, ascore, clip_skip,
         filename) = _pipe(self.sdxl_basic_settings, 11, "sdxl_basic_settings", "SDXL Basic Settings (JPS)")
        return (int(width), int(height), sampler, scheduler, int(steps), int(split), float(cfg_base),
                float(cfg_refiner), float(ascore), int(clip_skip), str(filename))


class JPSGenerationTxtImgSettings(Node):
    """JPS's Generation TXT IMG Settings: gen_mode 1 (Txt2Img, img_strength 0.001) or 2 (Img2Img,
    img_strength = img_percentage / 100)."""
    category = "JPS Nodes/Settings"
    mode: str = Choice(("Txt2Img", "Img2Img"), "Txt2Img")
    img_percentage: int = Int(50, min=0, max=100, step=5)
    outputs = {"gen_mode": INT, "img_strength": FLOAT}
    comfy = ComfyAlias(("Generation TXT IMG Settings (JPS)",))

    def run(self):
        return (1, 0.001) if self.mode == "Txt2Img" else (2, self.img_percentage / 100)


GENERATION_MODES = ("Text Prompt", "Image to Image", "CtrlNet Canny", "CtrlNet Depth", "Inpainting")


class JPSGenerationSettings(Node):
    """JPS's Generation Settings, as a settings pipe: gen_mode (1 to 5, in the mode list's order),
    res_from (1 settings, 2 image), img_strength (Image to Image: img_to_img_strength / 100;
    Inpainting: (100 - inpainting_strength + 0.001) / 100; else 0), the ControlNet strength, start,
    stop (percent / 100) and thresholds (the ControlNet modes only; else 0) and the crop values."""
    category = "JPS Nodes/Settings"
    mode: str = Choice(GENERATION_MODES, "Text Prompt")
    resfrom: str = Choice(("Use Settings Resolution", "Use Image Resolution"), "Use Settings Resolution")
    img_to_img_strength: int = Int(50, min=2, max=100, step=2)
    inpainting_strength: int = Int(100, min=2, max=100, step=2)
    ctrl_strength: int = Int(40, min=2, max=100, step=2)
    ctrl_start_percent: int = Int(0, min=0, max=100, step=5)
    ctrl_stop_percent: int = Int(70, min=0, max=100, step=5)
    ctrl_low_threshold: int = Int(100, min=0, max=255, step=5)
    ctrl_high_threshold: int = Int(200, min=0, max=255, step=5)
    crop_position: str = Choice(CROP_POSITIONS, "center")
    crop_offset: int = Int(0, min=-2048, max=2048)
    crop_intpol: str = Choice(INTERPOLATIONS, "lanczos")
    outputs = {"generation_settings": BASIC_PIPE}
    comfy = ComfyAlias(("Generation Settings (JPS)",))

    def run(self):
        gen_mode = GENERATION_MODES.index(self.mode) + 1
        control = self.mode in ("CtrlNet Canny", "CtrlNet Depth")
        img_strength = {2: self.img_to_img_strength / 100,
                        5: (100 - self.inpainting_strength + 0.001) / 100}.get(gen_mode, 0)
        ctrl = (self.ctrl_strength / 100, self.ctrl_start_percent / 100, self.ctrl_stop_percent / 100,
                self.ctrl_low_threshold, self.ctrl_high_threshold) if control else (0, 0, 0, 0, 0)
        res_from = 1 if self.resfrom == "Use Settings Resolution" else 2
        return (gen_mode, res_from, img_strength, *ctrl, self.crop_position, self.crop_offset, self.crop_intpol)


class JPSGenerationSettingsPipe(Node):
    """The values of a Generation Settings pipe, as JPS's Generation Settings Pipe gives them."""
    category = "JPS Nodes/Pipes"
    generation_settings: BASIC_PIPE
    outputs = {"gen_mode": INT, "res_from": INT, "img_strength": FLOAT, "ctrl_strength": FLOAT, "ctrl_start": FLOAT,
               "ctrl_stop": FLOAT, "ctrl_low": INT, "ctrl_high": INT, "crop_position": STRING, "crop_offset": INT,
               "crop_intpol": STRING}
    comfy = ComfyAlias(("Generation Settings Pipe (JPS)",))

    def run(self):
        values = _pipe(self.generation_settings, 11, "generation_settings", "Generation Settings (JPS)")
        kinds = (int, int, float, float, float, float, int, int, str, int, str)
        return tuple(kind(value) for kind, value in zip(kinds, values))


def _ip_adapter_inputs() -> dict:
    """IP Adapter Settings' inputs in the pack's order: the three "for all" choices, then each
    adapter's weight, wtype, noise, start, stop, crop and offset, then crop_intpol and crop_res."""
    fields = {"ipa_weight": Choice(("Use IP Adapter #1 weight for all", "Use separate IP Adapter weights"),
                                   "Use IP Adapter #1 weight for all"),
              "ipa_wtype": Choice(("Use IP Adapter #1 wtype for all", "Use separate IP Adapter wtypes"),
                                  "Use IP Adapter #1 wtype for all"),
              "ipa_noise": Choice(("Use IP Adapter #1 noise for all", "Use separate IP Adapter noises"),
                                  "Use IP Adapter #1 noise for all")}
    for i in range(1, 5):
        fields.update({f"ipa{i}_weight": Float(0.5, min=0, max=3, step=0.01),
                       f"ipa{i}_wtype": Choice(WEIGHT_TYPES, "original"),
                       f"ipa{i}_noise": Float(0.0, min=0, max=1, step=0.05),
                       f"ipa{i}_start": Float(0.0, min=0, max=1, step=0.05),
                       f"ipa{i}_stop": Float(1.0, min=0, max=1, step=0.05),
                       f"ipa{i}_crop": Choice(REFERENCE_CROPS, "center"),
                       f"ipa{i}_offset": Int(0, min=-2048, max=2048)})
    fields.update({"crop_intpol": Choice(INTERPOLATIONS, "lanczos"),
                   "crop_res": Int(224, min=224, max=1792, step=224)})
    return fields


def _ip_adapter_run(self):
    """The pack's IP Adapter settings tuple: crop_res, crop_intpol, each adapter's crop and offset,
    each one's weight and wtype, each one's noise, each one's start and stop; a "for all" choice
    gives adapters 2 to 4 adapter 1's value."""
    def value(i, kind):
        same = getattr(self, f"ipa_{kind}").startswith("Use IP Adapter #1")
        return getattr(self, f"ipa{1 if same else i}_{kind}")

    adapters = range(1, 5)
    return (self.crop_res, self.crop_intpol,
            *(v for i in adapters for v in (getattr(self, f"ipa{i}_crop"), getattr(self, f"ipa{i}_offset"))),
            *(v for i in adapters for v in (value(i, "weight"), value(i, "wtype"))),
            *(value(i, "noise") for i in adapters),
            *(v for i in adapters for v in (getattr(self, f"ipa{i}_start"), getattr(self, f"ipa{i}_stop"))))


IP_ADAPTER_FIELDS = _ip_adapter_inputs()
WIDGET_TYPES = {"FLOAT": float, "INT": int, "CHOICE": str}
JPSIPAdapterSettings = type("JPSIPAdapterSettings", (Node,), {
    "__module__": __name__,
    "__annotations__": {name: WIDGET_TYPES[field.kind] for name, field in IP_ADAPTER_FIELDS.items()},
    **IP_ADAPTER_FIELDS, "category": "JPS Nodes/Settings", "outputs": {"ip_adapter_settings": BASIC_PIPE},
    "comfy": ComfyAlias(("IP Adapter Settings (JPS)",)), "run": _ip_adapter_run,
    "__doc__": "JPS's IP Adapter Settings: four IP-Adapters' weight, weight type, noise, start, stop, crop "
               "position and offset, and the crop's interpolation and size, as one settings pipe (ipa_weight, "
               "ipa_wtype, ipa_noise: adapter 1's value for all four, or each its own)."})

ADAPTERS = range(1, 5)
IP_ADAPTER_PIPE_OUTPUTS = {"crop_res": INT, "crop_intpol": STRING,
                           **{k: v for i in ADAPTERS for k, v in ((f"ipa{i}_crop", STRING), (f"ipa{i}_offset", INT))},
                           **{k: v for i in ADAPTERS
                              for k, v in ((f"ipa{i}_weight", FLOAT), (f"ipa{i}_wtype", STRING))},
                           **{f"ipa{i}_noise": FLOAT for i in ADAPTERS},
                           **{k: FLOAT for i in ADAPTERS for k in (f"ipa{i}_start", f"ipa{i}_stop")}}
PIPE_KINDS = {INT: int, FLOAT: float, STRING: str}


class JPSIPAdapterSettingsPipe(Node):
    """The values of an IP Adapter Settings pipe, as JPS's IP Adapter Settings Pipe gives them."""
    category = "JPS Nodes/Pipes"
    ip_adapter_settings: BASIC_PIPE
    outputs = IP_ADAPTER_PIPE_OUTPUTS
    comfy = ComfyAlias(("IP Adapter Settings Pipe (JPS)",))

    def run(self):
        values = _pipe(self.ip_adapter_settings, 30, "ip_adapter_settings", "IP Adapter Settings (JPS)")
        return tuple(PIPE_KINDS[kind](v) for kind, v in zip(IP_ADAPTER_PIPE_OUTPUTS.values(), values))


class JPSRevisionSettings(Node):
    """JPS's Revision Settings: two Revision images' strength, noise augmentation, crop position
    and offset, and the crop's interpolation and size, as one settings pipe."""
    category = "JPS Nodes/Settings"
    rev1_strength: float = Float(1, min=0, max=10, step=0.1)
    rev2_strength: float = Float(1, min=0, max=10, step=0.1)
    rev1_noiseaug: float = Float(0, min=0, max=1, step=0.1)
    rev2_noiseaug: float = Float(0, min=0, max=1, step=0.1)
    rev1_crop: str = Choice(REFERENCE_CROPS, "center")
    rev1_offset: int = Int(0, min=-2048, max=2048)
    rev2_crop: str = Choice(REFERENCE_CROPS, "center")
    rev2_offset: int = Int(0, min=-2048, max=2048)
    crop_intpol: str = Choice(INTERPOLATIONS, "lanczos")
    crop_res: int = Int(224, min=224, max=1792, step=224)
    outputs = {"revision_settings": BASIC_PIPE}
    comfy = ComfyAlias(("Revision Settings (JPS)",))

    def run(self):
        return (self.crop_res, self.crop_intpol, self.rev1_crop, self.rev1_offset, self.rev2_crop, self.rev2_offset,
                self.rev1_strength, self.rev2_strength, self.rev1_noiseaug, self.rev2_noiseaug)


REVISION_PIPE_OUTPUTS = {"crop_res": INT, "crop_intpol": STRING, "rev1_crop": STRING, "rev1_offset": INT,
                         "rev2_crop": STRING, "rev2_offset": INT, "rev1_strength": FLOAT, "rev2_strength": FLOAT,
                         "rev1_noiseaug": FLOAT, "rev2_noiseaug": FLOAT}


class JPSRevisionSettingsPipe(Node):
    """The values of a Revision Settings pipe, as JPS's Revision Settings Pipe gives them."""
    category = "JPS Nodes/Pipes"
    revision_settings: BASIC_PIPE
    outputs = REVISION_PIPE_OUTPUTS
    comfy = ComfyAlias(("Revision Settings Pipe (JPS)",))

    def run(self):
        values = _pipe(self.revision_settings, 10, "revision_settings", "Revision Settings (JPS)")
        return tuple(PIPE_KINDS[kind](v) for kind, v in zip(REVISION_PIPE_OUTPUTS.values(), values))


class JPSSamplerSchedulerSettings(Node):
    """A sampler and a scheduler name passed on, as JPS's Sampler Scheduler Settings."""
    category = "JPS Nodes/Settings"
    sampler_name: str = Choice(SAMPLER_NAMES, SAMPLER_NAMES[0])
    scheduler: str = Choice(SCHEDULER_NAMES, SCHEDULER_NAMES[0])
    outputs = {"sampler_name": STRING, "scheduler": STRING}
    comfy = ComfyAlias(("Sampler Scheduler Settings (JPS)",))

    def run(self):
        return self.sampler_name, self.scheduler


# -- math -------------------------------------------------------------------------------------------

# SDXL's trained sizes by aspect ratio, as the pack lists them: (width, height, width / height)
RATIOS_HORIZONTAL = {"12:5": (1536, 640, 2.4), "7:4": (1344, 768, 1.75), "19:13": (1216, 832, 1.461538462),
                     "9:7": (1152, 896, 1.285714286)}
RATIOS_VERTICAL = {"7:9": (896, 1152, 0.777777778), "13:19": (832, 1216, 0.684210526),
                   "4:7": (768, 1344, 0.571428571), "5:12": (640, 1536, 0.416666667)}
RATIO_SQUARE = (1024, 1024, 1.0)


def recommended_resolution(width: int, height: int) -> tuple[int, int]:
    """The SDXL size whose listed ratio is nearest width / height: the landscape ones, then the
    portrait ones, then the square, each taking over only when strictly nearer (ties: the first)."""
    target = width / height
    best, best_diff = RATIO_SQUARE, float("inf")
    for w, h, ratio in (*RATIOS_HORIZONTAL.values(), *RATIOS_VERTICAL.values()):
        if abs(ratio - target) < best_diff:
            best, best_diff = (w, h, ratio), abs(ratio - target)
    if abs(RATIO_SQUARE[2] - target) < best_diff:
        best = RATIO_SQUARE
    return best[0], best[1]


class JPSSDXLRecommendedResolutionCalc(Node):
    """The SDXL size nearest a target's aspect ratio, as JPS's SDXL Recommended Resolution Calc:
    1536x640, 1344x768, 1216x832, 1152x896, their portrait twins, or 1024x1024."""
    category = "JPS Nodes/Math"
    target_width: int = Int(1024, min=0, max=8192, step=2)
    target_height: int = Int(1024, min=0, max=8192, step=2)
    outputs = {"SDXL_width": INT, "SDXL_height": INT}
    comfy = ComfyAlias(("SDXL Recommended Resolution Calc (JPS)",))

    def run(self):
        if self.target_height == 0:
            raise NodeInputError("target_height", "0 gives no aspect ratio: expected a height above 0")
        return recommended_resolution(self.target_width, self.target_height)


class JPSResolutionMultiply(Node):
    """width and height times factor, as JPS's Resolution Multiply."""
    category = "JPS Nodes/Math"
    width: int = Int(1024, min=256, max=8192, step=16)
    height: int = Int(1024, min=256, max=8192, step=16)
    factor: int = Int(2, min=1, max=8)
    outputs = {"width_resized": INT, "height_resized": INT}
    comfy = ComfyAlias(("Resolution Multiply (JPS)",))

    def run(self):
        return self.width * self.factor, self.height * self.factor


class JPSLargestInt(Node):
    """The larger and the smaller of int_a and int_b, and 1 if int_a is larger (0 when equal or
    smaller), as JPS's Largest Int."""
    category = "JPS Nodes/Math"
    int_a: int = Int(1)
    int_b: int = Int(1)
    outputs = {"larger_int": INT, "smaller_int": INT, "is_a_larger": INT}
    comfy = ComfyAlias(("Largest Int (JPS)",))

    def run(self):
        if self.int_a > self.int_b:
            return self.int_a, self.int_b, 1
        return self.int_b, self.int_a, 0


def _whole_and_number(result, input_name: str) -> tuple[int, float]:
    """A result as the pack gives it: int() (cut toward 0) and float(); an infinite product (which
    int() can't take) or one beyond 64 bits refused."""
    if isinstance(result, float) and not math.isfinite(result):
        raise NodeInputError(input_name, f"the result is {result}: expected a finite product (a smaller factor)")
    whole = int(result)
    if abs(whole) > INT64_MAX:
        # an int result is shown by its digit count: one past a float's range can't be formatted as one
        shown = f"{result:.6g}" if isinstance(result, float) else f"of {len(str(abs(result)))} digits"
        raise NodeInputError(input_name, f"the result {shown} is beyond a 64-bit whole number")
    return whole, float(result)


class JPSMultiplyIntInt(Node):
    """int_a * int_b, as JPS's Multiply Int Int: as a whole number and as a number."""
    category = "JPS Nodes/Math"
    int_a: int = Int(1)
    int_b: int = Int(1)
    outputs = {"int_multiply": INT, "float_multiply": FLOAT}
    comfy = ComfyAlias(("Multiply Int Int (JPS)",))

    def run(self):
        return _whole_and_number(self.int_a * self.int_b, "int_b")


class JPSMultiplyIntFloat(Node):
    """int_a * float_b, as JPS's Multiply Int Float: cut toward 0 to a whole number, and as a number."""
    category = "JPS Nodes/Math"
    int_a: int = Int(1)
    float_b: float = Float(1)
    outputs = {"int_multiply": INT, "float_multiply": FLOAT}
    comfy = ComfyAlias(("Multiply Int Float (JPS)",))

    def run(self):
        return _whole_and_number(self.int_a * self.float_b, "float_b")


class JPSMultiplyFloatFloat(Node):
    """float_a * float_b, as JPS's Multiply Float Float: cut toward 0 to a whole number, and as a number."""
    category = "JPS Nodes/Math"
    float_a: float = Float(1)
    float_b: float = Float(1)
    outputs = {"int_multiply": INT, "float_multiply": FLOAT}
    comfy = ComfyAlias(("Multiply Float Float (JPS)",))

    def run(self):
        return _whole_and_number(self.float_a * self.float_b, "float_b")


class JPSSubstractIntInt(Node):
    """int_a - int_b, as JPS's Substract Int Int: as a whole number and as a number."""
    category = "JPS Nodes/Math"
    int_a: int = Int(1)
    int_b: int = Int(1)
    outputs = {"int_substract": INT, "float_substract": FLOAT}
    comfy = ComfyAlias(("Substract Int Int (JPS)",))

    def run(self):
        return _whole_and_number(self.int_a - self.int_b, "int_b")


# -- switches -----------------------------------------------------------------------------------------


def _switch_run(self):
    chosen = self.select if self.select in (2, 3, 4, 5) else 1  # the pack: input 1 unless select is 2 to 5
    name = f"{self.prefix}{chosen}"
    value = getattr(self, name)
    if value is None:
        raise NodeInputError(name, f"select is {self.select}, which picks {name}, and nothing is connected there")
    return value


def _switch_node(comfy_name: str, prefix: str, socket, output: str, widget: bool = False) -> type[Node]:
    """One of the pack's five-input switches: <prefix>1 ... <prefix>5, `select` picking one (any
    number but 2 to 5 picks the first); `widget`: the inputs are INT widgets (Integer Switch)."""
    inputs = {f"{prefix}{i}": Int(0) if widget else None for i in range(1, 6)}
    return type("JPS" + comfy_name.removesuffix(" (JPS)").replace(" ", ""), (Node,), {
        "__module__": __name__, "__annotations__": {"select": int, **dict.fromkeys(inputs, int if widget else socket)},
        "select": Int(0), **inputs, "prefix": prefix, "category": "JPS Nodes/Switches",
        "outputs": {output: socket}, "comfy": ComfyAlias((comfy_name,)), "run": _switch_run,
        "__doc__": f"{prefix}1 to {prefix}5 by number, as JPS's {comfy_name.removesuffix(' (JPS)')}: `select` 2 to "
                   f"5 picks that input, any other number {prefix}1. The picked input must be connected."})


JPSIntegerSwitch = _switch_node("Integer Switch (JPS)", "int_", INT, "int_out", widget=True)
JPSImageSwitch = _switch_node("Image Switch (JPS)", "img_", IMAGE, "img_out")
JPSLatentSwitch = _switch_node("Latent Switch (JPS)", "latent_", LATENT, "latent_out")
JPSConditioningSwitch = _switch_node("Conditioning Switch (JPS)", "con_", CONDITIONING, "con_out")
JPSModelSwitch = _switch_node("Model Switch (JPS)", "model_", MODEL, "model_out")
JPSVAESwitch = _switch_node("VAE Switch (JPS)", "vae_", VAE, "vae_out")
JPSControlNetSwitch = _switch_node("ControlNet Switch (JPS)", "ctrlnet_", CONTROL_NET, "ctrlnet_out")


class JPSDisableEnableSwitch(Node):
    """"enable" or "disable" for a node's mode widget, as JPS's Disable Enable Switch: when select
    equals compare, what match says ("Set to Enable": "enable"); when not, the other one."""
    category = "JPS Nodes/Switches"
    select: int = Int(1, min=1, max=9)
    compare: int = Int(1, min=1, max=9)
    match: str = Choice(("Set to Disable", "Set to Enable"), "Set to Disable")
    outputs = {"disable_enable": STRING}
    comfy = ComfyAlias(("Disable Enable Switch (JPS)",))

    def run(self):
        enable = (self.match == "Set to Enable") == (self.select == self.compare)
        return "enable" if enable else "disable"


class JPSEnableDisableSwitch(JPSDisableEnableSwitch):
    """"enable" or "disable", as JPS's Enable Disable Switch (Disable Enable Switch with "Set to
    Enable" first): when select equals compare, what match says; when not, the other one."""
    match: str = Choice(("Set to Enable", "Set to Disable"), "Set to Enable")
    outputs = {"enable_disable": STRING}
    comfy = ComfyAlias(("Enable Disable Switch (JPS)",))


class JPSSDXLFundamentalsMultiPipe(Node):
    """Passes its inputs on, each to its own output (unconnected ones give nothing), as JPS's
    SDXL Fundamentals MultiPipe."""
    category = "JPS Nodes/Pipes"
    vae: VAE = None
    model_base: MODEL = None
    model_refiner: MODEL = None
    clip_base: CLIP = None
    clip_refiner: CLIP = None
    pos_base: CONDITIONING = None
    neg_base: CONDITIONING = None
    pos_refiner: CONDITIONING = None
    neg_refiner: CONDITIONING = None
    seed: int = Int(0)
    outputs = {"vae": VAE, "model_base": MODEL, "model_refiner": MODEL, "clip_base": CLIP, "clip_refiner": CLIP,
               "pos_base": CONDITIONING, "neg_base": CONDITIONING, "pos_refiner": CONDITIONING,
               "neg_refiner": CONDITIONING, "seed": INT}
    comfy = ComfyAlias(("SDXL Fundamentals MultiPipe (JPS)",))

    def run(self):
        return tuple(getattr(self, name) for name in self.outputs)


class JPSImagesMasksMultiPipe(Node):
    """Passes its inputs on, each to its own output (unconnected ones give nothing), as JPS's
    Images Masks MultiPipe."""
    category = "JPS Nodes/Pipes"
    generation_img: IMAGE = None
    generation_mask: MASK = None
    ipa1_img: IMAGE = None
    ipa2_img: IMAGE = None
    ipa1_mask: MASK = None
    ipa2_mask: MASK = None
    revision1_img: IMAGE = None
    revision2_img: IMAGE = None
    inpaint_model: MODEL = None
    outputs = {"generation_img": IMAGE, "generation_mask": MASK, "ipa1_img": IMAGE, "ipa2_img": IMAGE,
               "ipa1_mask": MASK, "ipa2_mask": MASK, "revision1_img": IMAGE, "revision2_img": IMAGE,
               "inpaint_model": MODEL}
    comfy = ComfyAlias(("Images Masks MultiPipe (JPS)",))

    def run(self):
        return tuple(getattr(self, name) for name in self.outputs)


# -- text ---------------------------------------------------------------------------------------------

DELIMITERS = {"none": "", "space": " ", "comma": ", "}


class JPSTextConcatenate(Node):
    """The connected, non-empty texts of text1 to text5 joined by the delimiter (none, a space or
    ", "), as JPS's Text Concatenate."""
    category = "JPS Nodes/Text"
    delimiter: str = Choice(tuple(DELIMITERS), "none")
    text1: STRING = None
    text2: STRING = None
    text3: STRING = None
    text4: STRING = None
    text5: STRING = None
    outputs = {"text": STRING}
    comfy = ComfyAlias(("Text Concatenate (JPS)",))

    def run(self):
        texts = (self.text1, self.text2, self.text3, self.text4, self.text5)
        return DELIMITERS[self.delimiter].join(text for text in texts if text)


TIME_FORMATS = ("%Y%m%d%H%M%S", "%Y%m%d%H%M", "%Y%m%d", "%Y-%m-%d-%H_%M_%S", "%Y-%m-%d-%H_%M", "%Y-%m-%d",
                "%Y-%m-%d %H_%M_%S", "%Y-%m-%d %H_%M", "%Y-%m-%d", "%H%M", "%H%M%S", "%H_%M", "%H_%M_%S")


class JPSGetDateTimeString(Node):
    """The local date and time as `style` writes it (strftime), as JPS's Get Date Time String;
    run again whenever that text changes."""
    category = "JPS Nodes/Text"
    style: str = Choice(TIME_FORMATS, TIME_FORMATS[0])
    outputs = {"time_format": STRING}
    comfy = ComfyAlias(("Get Date Time String (JPS)",))

    @classmethod
    def fingerprint(cls, style=TIME_FORMATS[0], **widgets):
        return datetime.now().strftime(style)

    def run(self):
        return datetime.now().strftime(self.style)


HANDLINGS = ("Copy to Both if Empty", "Use Positive_G + Positive_L", "Copy Positive_G to Both",
             "Copy Positive_L to Both", "Ignore Positive_G Input", "Ignore Positive_L Input",
             "Combine Positive_G + Positive_L", "Combine Positive_L + Positive_G")
UNIVERSAL_NEGATIVE = ("text, watermark, low-quality, signature, moire pattern, downsampling, aliasing, distorted, "
                      "blurry, glossy, blur, jpeg artifacts, compression artifacts, poorly drawn, low-resolution, "
                      "bad, distortion, twisted, excessive, exaggerated pose, exaggerated limbs, grainy, "
                      "symmetrical, duplicate, error, pattern, beginner, pixelated, fake, hyper, glitch, "
                      "overexposed, high-contrast, bad-contrast")


def handle_prompts(handling: str, pos_g: str, pos_l: str) -> tuple[str, str]:
    """SDXL Prompt Handling's rule for the G and L prompts."""
    if handling == "Copy Positive_G to Both":
        return pos_g, pos_g
    if handling == "Copy Positive_L to Both":
        return pos_l, pos_l
    if handling == "Ignore Positive_G Input":
        return "", pos_l
    if handling == "Ignore Positive_L Input":
        return pos_g, ""
    if handling == "Combine Positive_G + Positive_L":
        return (pos_g + " . " + pos_l,) * 2
    if handling == "Combine Positive_L + Positive_G":
        return (pos_l + " . " + pos_g,) * 2
    if handling == "Copy to Both if Empty" and pos_l == "":
        return pos_g, pos_g
    if handling == "Copy to Both if Empty" and pos_g == "":
        return pos_l, pos_l
    return pos_g, pos_l  # "Use Positive_G + Positive_L", or both given: as they are


class JPSSDXLPromptHandling(Node):
    """SDXL's G and L prompts by `handling`, as JPS's SDXL Prompt Handling: copy one to both,
    ignore one, combine them ("G . L" or "L . G" to both), use both as given, or copy the one
    given to the empty one ("Copy to Both if Empty")."""
    category = "JPS Nodes/Text"
    handling: str = Choice(HANDLINGS, HANDLINGS[0])
    pos_g: str = Text("")
    pos_l: str = Text("")
    outputs = {"pos_g": STRING, "pos_l": STRING}
    comfy = ComfyAlias(("SDXL Prompt Handling (JPS)",))

    def run(self):
        return handle_prompts(self.handling, self.pos_g, self.pos_l)


class JPSSDXLPromptHandlingPlus(Node):
    """SDXL Prompt Handling with a negative, as JPS's SDXL Prompt Handling Plus: universal_neg ON
    adds the pack's list of common faults (text, watermark, low-quality ...) to it, after ", "."""
    category = "JPS Nodes/Text"
    handling: str = Choice(HANDLINGS, HANDLINGS[0])
    pos_g: str = Text("")
    pos_l: str = Text("")
    neg: str = Text("")
    universal_neg: str = Choice(("OFF", "ON"), "OFF")
    outputs = {"pos_g": STRING, "pos_l": STRING, "neg": STRING}
    comfy = ComfyAlias(("SDXL Prompt Handling Plus (JPS)",))

    def run(self):
        neg = self.neg
        if self.universal_neg == "ON":
            neg = f"{neg}, {UNIVERSAL_NEGATIVE}" if neg else UNIVERSAL_NEGATIVE
        return (*handle_prompts(self.handling, self.pos_g, self.pos_l), neg)


# -- loaders ------------------------------------------------------------------------------------------


class JPSLoraLoader(Node):
    """ComfyUI's LoraLoader with an Off switch, as JPS's Lora Loader: with switch Off, lora_name
    "None" or both strengths 0 the model and CLIP pass on untouched (the file is not read); else
    the LoRA is applied as LoraLoader applies it."""
    category = "JPS Nodes/IO"
    model: MODEL
    clip: CLIP
    switch: str = Choice(("Off", "On"), "Off")
    lora_name: str = Choice(lambda: ["None", *folders.list_models("loras")], "None", model_folder="loras")
    strength_model: float = Float(1.0, min=-10.0, max=10.0, step=0.1)
    strength_clip: float = Float(1.0, min=-10.0, max=10.0, step=0.1)
    outputs = {"MODEL": MODEL, "CLIP": CLIP}
    comfy = ComfyAlias(("Lora Loader (JPS)",))

    @classmethod
    def fingerprint(cls, lora_name="None", **widgets):
        return None if lora_name == "None" else folders.model_state("loras", lora_name)

    def run(self):
        if (self.strength_model == 0 and self.strength_clip == 0) or self.switch == "Off" or self.lora_name == "None":
            return self.model, self.clip
        return _core(LoadLoRA, model=self.model, clip=self.clip, lora_name=self.lora_name,
                     strength_model=self.strength_model, strength_clip=self.strength_clip)


# -- image --------------------------------------------------------------------------------------------


class JPSGetImageSize(Node):
    """The width and height of an image batch, as JPS's Get Image Size."""
    category = "JPS Nodes/Image"
    image: IMAGE
    outputs = {"width": INT, "height": INT}
    comfy = ComfyAlias(("Get Image Size (JPS)",))

    def run(self):
        image = _image(self.image, "image")
        return image.shape[2], image.shape[1]


def _resize(image, width: int, height: int, interpolation: str):
    """The pack's resize: Lanczos as ComfyUI's, the others torch's interpolate."""
    if interpolation == "nearest":  # the old nearest, which ComfyUI's resize list lacks
        import torch.nn.functional as F
        return F.interpolate(image.movedim(-1, 1), size=(height, width), mode="nearest").movedim(1, -1)
    return _resize_image(image, width, height, interpolation)


def square_crop_box(height: int, width: int, position: str, offset: int) -> tuple[int, int, int]:
    """Crop Image Square's (x, y, side): the short side's square at `position`, moved by offset
    along the long side where it stays inside (else pushed to the far end or the start, as the pack)."""
    side = min(height, width)
    centre_x, centre_y = round((width - side) / 2), round((height - side) / 2)
    x, y = {"center": (centre_x, centre_y), "top": (centre_x, 0), "bottom": (centre_x, height - side),
            "left": (0, centre_y), "right": (width - side, centre_y)}[position]
    if height < width:
        x = x + offset if 0 <= x + offset and x + side + offset <= width else width - side if x + offset >= 0 else 0
    elif height > width:
        y = y + offset if 0 <= y + offset and y + side + offset <= height else height - side if y + offset >= 0 else 0
    return x, y, side


class JPSCropImageSquare(Node):
    """The largest square of each image at crop_position, moved by offset along the long side
    (kept inside), then resized to target_rez x target_rez with `interpolation` (0: not resized),
    as JPS's Crop Image Square. target_rez is at most 16384 here."""
    category = "JPS Nodes/Image"
    image: IMAGE
    crop_position: str = Choice(("center", "top", "bottom", "left", "right"), "center")
    offset: int = Int(0, min=-2048, max=2048)
    interpolation: str = Choice(INTERPOLATIONS, "lanczos")
    target_rez: int = Int(0, min=0, max=MAX_SIZE, step=8)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Crop Image Square (JPS)",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, rez = inputs.get("image"), widgets.get("target_rez")
        if size is None or not isinstance(rez, int):
            return Estimate(None)
        side = rez or min(size.height, size.width)
        return Estimate(Size(size.batch, side, side))

    def run(self):
        image = _image(self.image, "image")
        x, y, side = square_crop_box(image.shape[1], image.shape[2], self.crop_position, self.offset)
        out = image[:, y:y + side, x:x + side, :]
        return _resize(out, self.target_rez, self.target_rez, self.interpolation) if self.target_rez else out


def target_crop_box(new_size: int, target: int, position: str, offset: int, start: str, end: str) -> int:
    """Crop Image TargetSize's start along one side: at the start, the end or centred, moved by
    offset, kept inside."""
    first = offset if position == start else new_size - target + offset if position == end \
        else (new_size - target) // 2 + offset
    return 0 if first < 0 else new_size - target if first + target > new_size else first


def cover_size(height: int, width: int, target_w: int, target_h: int) -> tuple[int, int, bool]:
    """Crop Image TargetSize's resize: (new_w, new_h, width_fits), the image's aspect kept, covering
    target_w x target_h; width_fits: the width is target_w and the height overhangs."""
    ratio = width / height
    if target_w / ratio >= target_h:
        return target_w, round(target_w / ratio), True
    return round(target_h * ratio), target_h, False


class JPSCropImageTargetSize(Node):
    """Each image resized (keeping its aspect ratio) to cover target_w x target_h, then cropped to
    it at crop_position, offset moving the crop along the side that overhangs (kept inside), as
    JPS's Crop Image TargetSize. The targets must be above 0 (the pack fails on 0, its default)
    and are at most 16384 here. As the pack, the whole image is resized before the crop (resizing
    only the crop gives other pixels), so a resize whose long side would pass 16384 (a target far
    from the image's shape: 4096x8 from an 8x4096 image asks 4096 x 2,097,152) is refused, naming
    the target that sets its scale."""
    category = "JPS Nodes/Image"
    image: IMAGE
    target_w: int = Int(0, min=0, max=MAX_SIZE, step=8, resource="width")
    target_h: int = Int(0, min=0, max=MAX_SIZE, step=8, resource="height")
    crop_position: str = Choice(CROP_POSITIONS, "center")
    offset: int = Int(0, min=-2048, max=2048)
    interpolation: str = Choice(INTERPOLATIONS, "lanczos")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Crop Image TargetSize (JPS)",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, target_w, target_h = inputs.get("image"), widgets.get("target_w"), widgets.get("target_h")
        if size is None or not isinstance(target_w, int) or not isinstance(target_h, int) \
                or target_w <= 0 or target_h <= 0:
            return Estimate(None)
        new_w, new_h, _ = cover_size(size.height, size.width, target_w, target_h)
        # the whole batch resized before the crop: 3 float32 channels a pixel
        return Estimate(Size(size.batch, target_h, target_w), memory=size.batch * new_h * new_w * 3 * 4)

    def run(self):
        image = _image(self.image, "image")
        for name in ("target_w", "target_h"):
            if getattr(self, name) == 0:
                raise NodeInputError(name, "0: expected the size to crop to, above 0")
        height, width = image.shape[1:3]
        new_w, new_h, width_fits = cover_size(height, width, self.target_w, self.target_h)
        if max(new_w, new_h) > MAX_SIZE:
            scaled_by = "target_w" if width_fits else "target_h"
            raise NodeInputError(scaled_by, f"covering {self.target_w}x{self.target_h} resizes the {width}x{height} "
                                            f"image to {new_w}x{new_h} before the crop, over {MAX_SIZE} a side: "
                                            f"expected a target nearer the image's shape")
        offset_w, offset_h = (0, self.offset) if width_fits else (self.offset, 0)
        resized = _resize(image, new_w, new_h, self.interpolation)
        x = target_crop_box(new_w, self.target_w, self.crop_position, offset_w, "left", "right")
        y = target_crop_box(new_h, self.target_h, self.crop_position, offset_h, "top", "bottom")
        return resized[:, y:y + self.target_h, x:x + self.target_w, :]
