"""chflame163/ComfyUI_LayerStyle's model-free nodes, round 1, part two (part one, with the layer effects,
the blend modes and most picture nodes of LayerUtility, is nodes/pack_nodes_layerstyle.py, whose
docstring names all the pack's commits read and what of the pack is left out): the LayerUtility data
nodes (with RandomGenerator and its V2), ColorPicker, PurgeVRAM, QueueStop, ImageMaskScaleAs (+V2) and
ImageChannelSplit / Merge; LayerColor's HSV, RGB, YUV, LAB, Brightness & Contrast (+V2), Levels, Gamma,
Exposure, ColorTemperature, ColorBalance and AutoAdjust (with the blend_modes package's normal blend
written out); LayerFilter's GaussianBlur, MotionBlur, ColorMap, ChannelShake, HDR Effects, SkinBeauty,
and Sharp & Soft (its "very soft" with graphflow's guided filter for OpenCV-contrib's); LayerMask's MaskStroke,
MaskGradient, MaskMotionBlur, MaskEdgeShrink, MaskByColor and MaskPreview. Left out here: LayerFilter
Film (the pack's film grain module) and LightLeak (the pack's pictures).

Read at commits 026a159b4146737ae96fc119b2f9ad3966caedfe (data_nodes.py),
33d9f817de53f80bcd2631f0dcee13066975f829 (ColorPicker, GaussianBlur, Gamma, HSV, YUV, Exposure,
MotionBlur, ColorMap, ChannelShake, MaskPreview), 15b5814348db499591211a42317c4bbd27d617c9 (PurgeVRAM),
17ac6c0b4602a2ab74f4fa12fc378541843a7653 (RGB, MaskEdgeShrink, MaskByColor, AutoAdjust),
25965f5c0e710750aec73ca92f99ae373dfbb910 (LAB, MaskMotionBlur, HDR Effects),
15d3bb1fd9f118f9c94573e22ee42a31fd81ceed (Brightness & Contrast and its V2),
3562ab5292470e95bf63c3e4d08b3f6c696fb5da (Levels), 074a0e9ec7c03fe0df22221f311496c3f12a3cee
(ColorTemperature, ColorBalance), 182355e3e524ee10bb3cb1d799d22a43ac7d186f (Sharp & Soft),
a267afb24b80ebd0ff9c3ac4833d3c8285b862da (SkinBeauty) and 73dfb6d2d60200bc778cf85e4f77bb9ea5dd6984
(RandomGenerator (+V2)); imagefunc.py at cf8c238f8a534b1297a5135a2bdff91a6562b388."""

from __future__ import annotations

from graphflow.api import ANY, BOOLEAN, FLOAT, IMAGE, INT, MASK, STRING, Bool, Choice, ComfyAlias, Estimate, Float, \
    Int, Node, Interrupted, NodeInputError, Text, check_interrupted, free_memory, offload_idle_models, warn
from nodes.pack_nodes import POWER_LIMIT
from nodes.pack_nodes_layerstyle import BOX, RESAMPLE_METHODS, batch, check_made_size, chop_image, expand_mask, \
    fit_resize, gradient, hex_rgb, inverted, layer_masks, mask_batch, min_bounding_rect, nth, picture_size, pil_color, \
    resample, shift_image, step_color, step_value, to_pil, to_tensor
from nodes.pack_nodes_pysssss import MAX_BITS

COMFY_PACK = "ComfyUI_LayerStyle"  # the custom node pack this module's ComfyUI classes come from

# -- LayerUtility: data -------------------------------------------------------------------------------

DATA = "😺dzNodes/LayerUtility/Data"
NUMBER_IN_TEXT = r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?"  # imagefunc.extract_all_numbers_from_str's pattern


def first_number(text: str):
    """The V2 nodes' reading of a typed value: the first number in the text (whole where it is
    whole), 0 for none."""
    import math
    import re
    match = re.search(NUMBER_IN_TEXT, text)
    if match is None:
        return 0
    number = float(match.group())
    return int(number) if math.isfinite(number) and math.isclose(number, int(number), rel_tol=1e-19) else number


def compare(a, b, operator: str, input_name: str = "a"):
    """BooleanOperator's operators, as Python applies them to the two values."""
    import operator as op
    table = {"==": op.eq, "!=": op.ne, ">": op.gt, "<": op.lt, ">=": op.ge, "<=": op.le,
             "and": lambda x, y: x and y, "or": lambda x, y: x or y, "xor": lambda x, y: not x == y,
             "not(a)": lambda x, y: not x, "min": min, "max": max}
    try:
        return table[operator](a, b)
    except TypeError as e:
        raise NodeInputError(input_name, f"{a!r} {operator} {b!r} can't be worked out: {e}") from None


def shown(number) -> str:
    """A number for an error message: huge whole numbers by their size (their text may be too long
    for Python to make)."""
    return f"<a {number.bit_length()}-bit whole number>" if isinstance(number, int) and number.bit_length() > 64 \
        else repr(number)


def calculate(a, b, operator: str, names=("a", "b")):
    """NumberCalculator's operators: + - * / ** // % nth_root min max; / and // by 0 give 0, as
    in the pack. The result must be a finite number (it is also given as a float and as text);
    unlike the pack, exponents (and nth_root's 1/b) beyond POWER_LIMIT, and whole-number powers or
    products beyond MAX_BITS bits, are refused before they are worked out. `names` are the node's
    inputs a and b came from, for the errors (a result out of range names the larger operand, or a
    divisor under 1)."""
    import math
    import operator as op
    for name, value in zip(names, (a, b)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise NodeInputError(name, f"expected a number, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise NodeInputError(name, f"expected a finite number, got {value!r}")
    if operator in ("/", "//") and b == 0:
        return 0
    if operator == "**" and abs(b) > POWER_LIMIT or operator == "nth_root" and b != 0 and abs(1 / b) > POWER_LIMIT:
        raise NodeInputError(names[1], f"{shown(b)} is too big a power (at most {POWER_LIMIT})")
    # a result out of range blames the operand that took it there: a divisor (or root) under 1 in
    # size, else the larger of the two
    at_fault = names[1] if operator in ("/", "//", "%", "nth_root") and abs(b) < 1 or abs(b) > abs(a) else names[0]
    # whole numbers grow without bound and can't be interrupted: refuse results beyond MAX_BITS bits
    whole = isinstance(a, int) and isinstance(b, int)
    if whole and operator == "**" and a.bit_length() * b > MAX_BITS:
        raise NodeInputError(at_fault, f"{shown(a)} ** {shown(b)} would have more than {MAX_BITS} bits")
    if whole and operator == "*" and a.bit_length() + b.bit_length() > MAX_BITS:
        raise NodeInputError(at_fault, f"{shown(a)} * {shown(b)} would have more than {MAX_BITS} bits")
    table = {"+": op.add, "-": op.sub, "*": op.mul, "/": op.truediv, "**": op.pow, "//": op.floordiv, "%": op.mod,
             "nth_root": lambda x, y: x ** (1 / y), "min": min, "max": max}
    try:
        result = table[operator](a, b)
        if isinstance(result, complex):
            raise ValueError("the result is not a real number")
        # the node gives the result as a whole number, a float and text: the first two must be possible
        # (text then is: a whole number a float can hold has at most 309 digits)
        int(result), float(result)
        return result
    except OverflowError as e:  # out of range (also int(inf), float of a huge whole number)
        raise NodeInputError(at_fault, f"{shown(a)} {operator} {shown(b)} can't be worked out as a number: {e}") \
            from None
    except (ZeroDivisionError, ValueError) as e:  # 0 to a negative power, a root of a negative number
        raise NodeInputError(names[1], f"{shown(a)} {operator} {shown(b)} can't be worked out as a number: {e}") \
            from None


class LayerUtilitySeed(Node):
    """A seed number, as LayerUtility's Seed (the editor's control_after_generate follows it)."""
    category = DATA
    seed: int = Int(0, min=0, max=10**18, control_after_generate=True)
    outputs = {"seed": INT}
    comfy = ComfyAlias(("LayerUtility: Seed",))

    def run(self):
        return self.seed


class LayerUtilityInteger(Node):
    """A whole number and its text, as LayerUtility's Integer."""
    category = DATA
    int_value: int = Int(0, min=-10**18, max=10**18)
    outputs = {"int": INT, "string": STRING}
    comfy = ComfyAlias(("LayerUtility: Integer",))

    def run(self):
        return int(self.int_value), str(self.int_value)


class LayerUtilityFloat(Node):
    """A number and its text, as LayerUtility's Float."""
    category = DATA
    float_value: float = Float(0.0, min=-1e18, max=1e18, step=0.00001)
    outputs = {"float": FLOAT, "string": STRING}
    comfy = ComfyAlias(("LayerUtility: Float",))

    def run(self):
        return self.float_value, str(self.float_value)


class LayerUtilityBoolean(Node):
    """A boolean and its text ("True" / "False"), as LayerUtility's Boolean."""
    category = DATA
    bool_value: bool = Bool(False)
    outputs = {"boolean": BOOLEAN, "string": STRING}
    comfy = ComfyAlias(("LayerUtility: Boolean",))

    def run(self):
        return self.bool_value, str(self.bool_value)


class LayerUtilityString(Node):
    """A line of text, as LayerUtility's String."""
    category = DATA
    string: str = Text("")
    outputs = {"string": STRING}
    comfy = ComfyAlias(("LayerUtility: String",))

    def run(self):
        return self.string


class LayerUtilityTextBox(Node):
    """A text, as LayerUtility's TextBox."""
    category = DATA
    text: str = Text("", multiline=True)
    outputs = {"text": STRING}
    comfy = ComfyAlias(("LayerUtility: TextBox",))

    def run(self):
        return self.text


class LayerUtilityStringCondition(Node):
    """Whether text includes / excludes / equals sub_string, and that as text, as LayerUtility's
    StringCondition."""
    category = DATA
    text: str = Text("")
    condition: str = Choice(("include", "exclude", "equal"), "include")
    sub_string: str = Text("")
    outputs = {"output": BOOLEAN, "string": STRING}
    comfy = ComfyAlias(("LayerUtility: StringCondition",))

    def run(self):
        result = {"include": self.sub_string in self.text, "exclude": self.sub_string not in self.text,
                  "equal": self.text == self.sub_string}[self.condition]
        return result, str(result)


BOOLEAN_OPERATORS = ("==", "!=", ">", "<", ">=", "<=", "and", "or", "xor", "not(a)", "min", "max")
CALCULATOR_OPERATORS = ("+", "-", "*", "/", "**", "//", "%", "nth_root", "min", "max")


class LayerUtilityBooleanOperator(Node):
    """a operator b, as LayerUtility's BooleanOperator: a comparison, and / or / xor (a != b) /
    not(a), or min / max (which give one of the values, as the pack does)."""
    category = DATA
    a: ANY
    b: ANY
    operator: str = Choice(BOOLEAN_OPERATORS, "==")
    outputs = {"output": BOOLEAN}
    comfy = ComfyAlias(("LayerUtility: BooleanOperator",))

    def run(self):
        return compare(self.a, self.b, self.operator)


class LayerUtilityBooleanOperatorV2(Node):
    """BooleanOperator with typed values, as LayerUtility's BooleanOperatorV2: a and b where
    linked, else the first number in a_value / b_value (0 for none); also gives the result as text."""
    category = DATA
    a_value: str = Text("")
    b_value: str = Text("")
    operator: str = Choice(BOOLEAN_OPERATORS, "==")
    a: ANY = None
    b: ANY = None
    outputs = {"output": BOOLEAN, "string": STRING}
    comfy = ComfyAlias(("LayerUtility: BooleanOperatorV2",))

    def run(self):
        a = self.a if self.a is not None else first_number(self.a_value)
        b = self.b if self.b is not None else first_number(self.b_value)
        result = compare(a, b, self.operator)
        return result, str(result)


class LayerUtilityNumberCalculator(Node):
    """a operator b as a whole number (truncated) and as a number, as LayerUtility's
    NumberCalculator (/ and // by 0 give 0)."""
    category = DATA
    a: ANY
    b: ANY
    operator: str = Choice(CALCULATOR_OPERATORS, "+")
    outputs = {"int": INT, "float": FLOAT}
    comfy = ComfyAlias(("LayerUtility: NumberCalculator",))

    def run(self):
        result = calculate(self.a, self.b, self.operator)
        return int(result), float(result)


class LayerUtilityNumberCalculatorV2(Node):
    """NumberCalculator with typed values, as LayerUtility's NumberCalculatorV2: a and b where
    linked, else the first number in a_value / b_value (0 for none); also gives the result as text."""
    category = DATA
    a_value: str = Text("")
    b_value: str = Text("")
    operator: str = Choice(CALCULATOR_OPERATORS, "+")
    a: ANY = None
    b: ANY = None
    outputs = {"int": INT, "float": FLOAT, "string": STRING}
    comfy = ComfyAlias(("LayerUtility: NumberCalculatorV2",))

    def run(self):
        a = self.a if self.a is not None else first_number(self.a_value)
        b = self.b if self.b is not None else first_number(self.b_value)
        names = ("a" if self.a is not None else "a_value", "b" if self.b is not None else "b_value")
        result = calculate(a, b, self.operator, names)
        return int(result), float(result), str(result)


class LayerUtilityIf(Node):
    """when_TRUE if if_condition is true (as Python reads it), else when_FALSE, as LayerUtility's If
    (both are worked out first, as in the pack)."""
    category = DATA
    if_condition: ANY
    when_TRUE: ANY
    when_FALSE: ANY
    outputs = {"?": ANY}
    comfy = ComfyAlias(("LayerUtility: If ",))  # the pack's class name ends in a space

    def run(self):
        return self.when_TRUE if self.if_condition else self.when_FALSE


class LayerUtilitySwitchCase(Node):
    """input_1 / 2 / 3 where switch_condition equals case_1 / 2 / 3 (first match, and only if that
    input is linked), else input_default, as LayerUtility's SwitchCase."""
    category = DATA
    switch_condition: str = Text("")
    case_1: str = Text("")
    case_2: str = Text("")
    case_3: str = Text("")
    input_default: ANY
    input_1: ANY = None
    input_2: ANY = None
    input_3: ANY = None
    outputs = {"?": ANY}
    comfy = ComfyAlias(("LayerUtility: SwitchCase",))

    def run(self):
        for case, value in ((self.case_1, self.input_1), (self.case_2, self.input_2), (self.case_3, self.input_3)):
            if self.switch_condition == case and value is not None:
                return value
        return self.input_default


class LayerUtilityColorPicker(Node):
    """The picked colour, as LayerUtility's ColorPicker: as '#RRGGBB' text (HEX) or, as the pack
    gives it, an (R, G, B) tuple of 0-255 (DEC)."""
    category = "😺dzNodes/LayerUtility"
    color: str = Text("#FFFFFF")
    mode: str = Choice(("HEX", "DEC"), "HEX")
    outputs = {"value": STRING}
    comfy = ComfyAlias(("LayerUtility: ColorPicker",))

    def run(self):
        return hex_rgb(self.color, "color") if self.mode == "DEC" else self.color


# -- LayerColor ---------------------------------------------------------------------------------------

COLOR = "😺dzNodes/LayerColor"


def keep_alpha(result, picture):
    """The pack's RGB2RGBA: an RGBA input keeps its alpha on the corrected picture."""
    from PIL import Image
    if picture.mode != "RGBA":
        return result
    return Image.merge("RGBA", (*result.convert("RGB").split(), picture.split()[-1]))


def offset_channel(channel, offset: int, wrap: bool = False):
    """imagefunc.image_gray_offset (clipped to 0-255) / image_hue_offset (wrapped)."""
    import numpy as np
    from PIL import Image
    values = np.asarray(channel, np.int16) + offset
    values = values % 256 if wrap else np.clip(values, 0, 255)
    return Image.fromarray(values.astype(np.uint8), "L")


class _ChannelOffsets(Node):
    """Shared run of the pack's HSV / RGB / YUV / LAB: each channel of the picture in that mode
    moved by its number (clipped; the hue wraps), then back to RGB."""
    category = COLOR
    image: IMAGE
    outputs = {"image": IMAGE}
    mode = "RGB"
    wrap_first = False

    def offsets(self) -> tuple[int, int, int]:
        raise NotImplementedError

    def run(self):
        from PIL import Image
        out = []
        for i in self.image:
            picture = to_pil(i)
            channels = list(picture.convert(self.mode).split())
            for index, offset in enumerate(self.offsets()):
                if offset:
                    channels[index] = offset_channel(channels[index], offset, self.wrap_first and index == 0)
            result = Image.merge(self.mode, channels).convert("RGB")
            out.append(to_tensor(keep_alpha(result, picture)))
        return batch(out)


class LayerColorHSV(_ChannelOffsets):
    """Move hue (wrapping round), saturation and value by H, S and V (of 255), as LayerColor's HSV
    (PIL's HSV)."""
    H: int = Int(0, min=-255, max=255)
    S: int = Int(0, min=-255, max=255)
    V: int = Int(0, min=-255, max=255)
    comfy = ComfyAlias(("LayerColor: HSV",))
    mode, wrap_first = "HSV", True

    def offsets(self):
        return self.H, self.S, self.V


class LayerColorRGB(_ChannelOffsets):
    """Add R, G and B (of 255, clipped) to the channels, as LayerColor's RGB."""
    R: int = Int(0, min=-255, max=255)
    G: int = Int(0, min=-255, max=255)
    B: int = Int(0, min=-255, max=255)
    comfy = ComfyAlias(("LayerColor: RGB",))

    def offsets(self):
        return self.R, self.G, self.B


class LayerColorYUV(_ChannelOffsets):
    """Add Y, U and V (of 255, clipped) to PIL's YCbCr channels, as LayerColor's YUV."""
    Y: int = Int(0, min=-255, max=255)
    U: int = Int(0, min=-255, max=255)
    V: int = Int(0, min=-255, max=255)
    comfy = ComfyAlias(("LayerColor: YUV",))
    mode = "YCbCr"

    def offsets(self):
        return self.Y, self.U, self.V


class LayerColorLAB(_ChannelOffsets):
    """Add L, A and B (of 255, clipped) to PIL's LAB channels, as LayerColor's LAB."""
    L: int = Int(0, min=-255, max=255)
    A: int = Int(0, min=-255, max=255)
    B: int = Int(0, min=-255, max=255)
    comfy = ComfyAlias(("LayerColor: LAB",))
    mode = "LAB"

    def offsets(self):
        return self.L, self.A, self.B


class LayerColorBrightnessContrast(Node):
    """PIL's ImageEnhance Brightness, then Contrast, then Color (saturation) by their factors (1:
    unchanged), as LayerColor's Brightness & Contrast; an RGBA image keeps its alpha."""
    category = COLOR
    image: IMAGE
    brightness: float = Float(1.0, min=0.0, max=3.0, step=0.01)
    contrast: float = Float(1.0, min=0.0, max=3.0, step=0.01)
    saturation: float = Float(1.0, min=0.0, max=3.0, step=0.01)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerColor: Brightness & Contrast",))

    def run(self):
        from PIL import ImageEnhance
        out = []
        for i in self.image:
            picture = to_pil(i)
            result = picture.convert("RGB")
            for enhancer, factor in ((ImageEnhance.Brightness, self.brightness),
                                     (ImageEnhance.Contrast, self.contrast), (ImageEnhance.Color, self.saturation)):
                if factor != 1:
                    result = enhancer(result).enhance(factor)
            out.append(to_tensor(keep_alpha(result, picture)))
        return batch(out)


class LayerColorBrightnessContrastV2(LayerColorBrightnessContrast):
    """LayerColor's Brightness Contrast V2: the same as Brightness & Contrast (the pack renamed
    the class without the "&")."""
    comfy = ComfyAlias(("LayerColor: BrightnessContrastV2",))


def adjust_levels(values, black: int, white: int, midtones: float, out_black: int, out_white: int):
    """imagefunc.adjust_levels on 0-255 values: inputs black..white stretched to 0..255, the
    midtones raised to 1 / midtones, then put in out_black..out_white; truncated to 8 bits. Equal
    points give grey (128), as in the pack."""
    import numpy as np
    if black == white or out_black == out_white:
        return np.full(values.shape, 128, np.uint8)
    black, white = min(black, white), max(black, white)
    out_black, out_white = min(out_black, out_white), max(out_black, out_white)
    img = values.astype(np.float64)
    if black > 0 or white < 255:
        img = np.clip(255 * ((img - black) / (white - black)), 0, 255)
    if midtones != 1.0:
        img = np.clip(255 * np.power(img / 255, 1.0 / midtones), 0, 255)
    if out_black > 0 or out_white < 255:
        img = np.clip((img / 255) * (out_white - out_black) + out_black, 0, 255)
    return img.astype(np.uint8)


class LayerColorLevels(Node):
    """Levels, as LayerColor's Levels: black_point..white_point stretched to the full range, the
    midtones bent by gray_point (above 1 lightens), then mapped into output_black_point..
    output_white_point; on all channels (RGB) or one. For one channel the same curve is put on it
    (the pack's version read fails there on OpenCV's colour conversion of a one-channel picture)."""
    category = COLOR
    image: IMAGE
    channel: str = Choice(("RGB", "red", "green", "blue"), "RGB")
    black_point: int = Int(0, min=0, max=255)
    white_point: int = Int(255, min=0, max=255)
    gray_point: float = Float(1.0, min=0.01, max=9.99, step=0.01)
    output_black_point: int = Int(0, min=0, max=255)
    output_white_point: int = Int(255, min=0, max=255)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerColor: Levels",))

    def run(self):
        import numpy as np
        from PIL import Image
        levels = (self.black_point, self.white_point, self.gray_point, self.output_black_point,
                  self.output_white_point)
        out = []
        for i in self.image:
            picture = to_pil(i)
            rgb = np.array(picture.convert("RGB"))
            if self.channel == "RGB":
                rgb = adjust_levels(rgb, *levels)
            else:
                index = ("red", "green", "blue").index(self.channel)
                rgb[..., index] = adjust_levels(rgb[..., index], *levels)
            out.append(to_tensor(keep_alpha(Image.fromarray(rgb), picture)))
        return batch(out)


class LayerColorExposure(Node):
    """Exposure, as LayerColor's Exposure: the colour channels × 2 ** (exposure / 32); a negative
    exposure also lifts the black point to -exposure / 250 (values below go black)."""
    category = COLOR
    image: IMAGE
    exposure: int = Int(20, min=-100, max=100)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerColor: Exposure",))

    def run(self):
        import numpy as np
        import torch
        out = []
        for i in self.image:
            values = i.detach().cpu().numpy().astype(np.float32).copy()
            colour = values[..., :3]
            colour[colour > 0] *= pow(2, self.exposure / 32)
            if self.exposure < 0:
                black = -self.exposure / 250
                values = np.clip((values - black) * (1 / (1 - black)), 0.0, 1.0)
            out.append(to_tensor(keep_alpha(to_pil(torch.from_numpy(values)), to_pil(i))))
        return batch(out)


class LayerColorColorTemperature(Node):
    """Shift the colour temperature, as LayerColor's ColorTemperature (a positive temperature cools,
    a negative one warms): with t = -temperature / 100, for t > 0 red × (1 + t) and green ×
    (1 + 0.4 t), for t < 0 red × (1 + 0.2 t) and blue × (1 - t), on 8-bit values, clipped."""
    category = COLOR
    image: IMAGE
    temperature: float = Float(0.0, min=-100.0, max=100.0, step=1)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerColor: ColorTemperature",))

    def run(self):
        import numpy as np
        import torch
        t = self.temperature / -100
        out = []
        for i in self.image:
            values = (np.clip(i.detach().cpu().numpy(), 0, 1) * 255).astype(np.uint8).astype(np.float32)
            if t > 0:
                values[..., 0] *= 1 + t
                values[..., 1] *= 1 + t * 0.4
            elif t < 0:
                values[..., 0] *= 1 + t * 0.2
                values[..., 2] *= 1 - t
            out.append(torch.from_numpy(np.clip(values, 0, 255).astype(np.uint8) / 255).float()[None])
        return batch(out)


# -- LayerFilter --------------------------------------------------------------------------------------

FILTER = "😺dzNodes/LayerFilter"
# the pack's colormap_list: OpenCV's COLORMAP_ numbers in order ('sprint' is the pack's spelling of spring)
COLOR_MAPS = ("autumn", "bone", "jet", "winter", "rainbow", "ocean", "summer", "sprint", "cool", "HSV", "pink", "hot",
              "parula", "magma", "inferno", "plasma", "viridis", "cividis", "twilight", "twilight_shifted", "turbo",
              "deepgreen")


# a motion kernel is a float64 square blur × 5 on a side; at most two copies of it live at once (the diagonal
# and the turned kernel, then the turned kernel and its division), and room for a third is kept for filter2D's
# own buffers: refuse three past 1 GiB together (blur 1337 at most; that takes some 10 s)
MAX_KERNEL_BYTES = 2**30
KERNEL_COPIES = 3


def motion_blurred(picture, angle: float, blur: int, input_name: str = "blur"):
    """imagefunc.motion_blur of an RGB picture: OpenCV's filter2D with a line kernel blur × 5 pixels
    long turned to angle + 45 degrees, the result stretched to the full 0-255 range
    (cv2.normalize, as the pack does)."""
    import cv2
    import numpy as np
    from PIL import Image
    length = blur * 5
    if KERNEL_COPIES * length * length * 8 > MAX_KERNEL_BYTES:
        raise NodeInputError(input_name, f"a blur of {blur} makes a {length}×{length} kernel, "
                                         f"{KERNEL_COPIES * length * length * 8 / 2**30:.1f} GiB for {KERNEL_COPIES} "
                                         f"copies (two working, room for OpenCV's buffers): too big to work with "
                                         f"(at most 1 GiB)")
    turn = cv2.getRotationMatrix2D((length / 2, length / 2), angle + 45, 1)
    kernel = cv2.warpAffine(np.diag(np.ones(length)), turn, (length, length)) / length
    bgr = np.ascontiguousarray(np.asarray(picture.convert("RGB"))[..., ::-1])
    blurred = cv2.filter2D(bgr, -1, kernel)
    cv2.normalize(blurred, blurred, 0, 255, cv2.NORM_MINMAX)
    return Image.fromarray(np.ascontiguousarray(blurred[..., ::-1]).astype(np.uint8))


class LayerFilterMotionBlur(Node):
    """A motion blur, as LayerFilter's MotionBlur (imagefunc.motion_blur): OpenCV's filter2D with a
    line kernel blur × 5 pixels long turned to angle + 45 degrees, the result then stretched to
    the full 0-255 range (cv2.normalize, as the pack does). Kernels past 1 GiB for three float64
    copies (two working, room for OpenCV's buffers: blur 1337 at most) are refused."""
    category = FILTER
    image: IMAGE
    angle: int = Int(0, min=-90, max=90)
    blur: int = Int(20, min=1, max=999)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerFilter: MotionBlur",))

    def run(self):
        out = []
        for i in self.image:
            check_interrupted()
            out.append(to_tensor(motion_blurred(to_pil(i), self.angle, self.blur)))
        return batch(out)


class LayerMaskMaskMotionBlur(Node):
    """A motion blur of a mask, as LayerMask's MaskMotionBlur: the pack's motion blur (see
    LayerFilter: MotionBlur: blur × 5 long at angle + 45 degrees, stretched to the full range) of
    the mask, inverted first where invert_mask. Kernels past 1 GiB for three float64 copies (two
    working, room for OpenCV's buffers: blur 1337 at most) are refused. A kernel longer than the mask is still worked out: OpenCV
    reflects the mask at its borders, so it still changes the result."""
    category = "😺dzNodes/LayerMask"
    mask: MASK
    invert_mask: bool = Bool(True)
    blur: int = Int(20, min=1, max=9999)
    angle: float = Float(0.0, min=-360.0, max=360.0, step=0.1)
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("LayerMask: MaskMotionBlur",))

    def run(self):
        out = []
        for m in mask_batch(self.mask):
            check_interrupted()
            picture = to_pil(1 - m if self.invert_mask else m).convert("L")
            out.append(to_tensor(motion_blurred(picture, self.angle, self.blur).split()[0]))
        return batch(out)


class LayerFilterColorMap(Node):
    """A false-colour picture, as LayerFilter's ColorMap: OpenCV's applyColorMap with the chosen
    map, over the picture at opacity percent."""
    category = FILTER
    image: IMAGE
    color_map: str = Choice(COLOR_MAPS, "autumn")
    opacity: int = Int(100, min=0, max=100)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerFilter: ColorMap",))

    def run(self):
        import cv2
        import numpy as np
        from PIL import Image
        out = []
        for i in self.image:
            picture = to_pil(i).convert("RGB")
            bgr = np.ascontiguousarray(np.asarray(picture)[..., ::-1])
            mapped = cv2.applyColorMap(bgr, COLOR_MAPS.index(self.color_map))
            colored = Image.fromarray(np.ascontiguousarray(mapped[..., ::-1]))
            out.append(to_tensor(chop_image(picture, colored, "normal", self.opacity)))
        return batch(out)



# -- LayerFilter / LayerColor -------------------------------------------------------------------------


class LayerFilterGaussianBlur(Node):
    """PIL's Gaussian blur of radius blur, as LayerFilter's GaussianBlur (the result is RGB)."""
    category = "😺dzNodes/LayerFilter"
    image: IMAGE
    blur: int = Int(20, min=1, max=999)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerFilter: GaussianBlur",))

    def run(self):
        from PIL import ImageFilter
        return batch([to_tensor(to_pil(i).convert("RGB").filter(ImageFilter.GaussianBlur(radius=self.blur)))
                      for i in self.image])


class LayerColorGamma(Node):
    """Each channel v (0-255) becomes round(255 × (v / 255) ** gamma), as LayerColor's Gamma
    (gamma above 1 darkens); an RGBA image keeps its alpha."""
    category = "😺dzNodes/LayerColor"
    image: IMAGE
    gamma: float = Float(1.0, min=0.1, max=10.0, step=0.01)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerColor: Gamma",))

    def run(self):
        import numpy as np
        from PIL import Image
        table = np.round(np.power(np.arange(256) / 255.0, self.gamma) * 255.0).astype(np.uint8)
        out = []
        for i in self.image:
            picture = to_pil(i)
            rgb = Image.fromarray(table[np.asarray(picture.convert("RGB"))])
            if picture.mode == "RGBA":
                rgb = Image.merge("RGBA", (*rgb.split(), picture.split()[-1]))
            out.append(to_tensor(rgb))
        return batch(out)


class LayerFilterChannelShake(Node):
    """Shift colour channels apart, as LayerFilter's ChannelShake: with x = int(cos(angle) × distance)
    and y = int(sin(angle) × distance) (angle read as radians, as the pack does), the first channel
    of mode moves by (x, y), the last by (-x, -y), black where nothing moves in (the pack's
    shift_image, which also blanks the first row / column a shift would bring in from outside)."""
    category = FILTER
    image: IMAGE
    distance: int = Int(20, min=1, max=999)
    angle: float = Float(40.0, min=-360.0, max=360.0, step=0.1)
    mode: str = Choice(("RGB", "RBG", "BGR", "BRG", "GBR", "GRB"), "RGB")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerFilter: ChannelShake",))

    def run(self):
        import math
        from PIL import Image
        x, y = int(math.cos(self.angle) * self.distance), int(math.sin(self.angle) * self.distance)
        out = []
        for i in self.image:
            channels = dict(zip("RGB", to_pil(i).convert("RGB").split()))
            # shift_image(channel, -x, -y) for the first, (x, y) for the last; ours takes the move itself
            channels[self.mode[0]] = shift_image(channels[self.mode[0]], x, y)
            channels[self.mode[-1]] = shift_image(channels[self.mode[-1]], -x, -y)
            out.append(to_tensor(Image.merge("RGB", [channels[c] for c in "RGB"])))
        return batch(out)


class LayerMaskMaskEdgeShrink(Node):
    """Soften a mask's inner edge, as LayerMask's MaskEdgeShrink: in shrink_level steps the mask,
    shrunk by shrink_level × soft (less each step) and blurred by 12 / (step + 0.1), darkens a white
    picture outside it by a grey going to black (PIL's subtract, opacity rising from 1 to 100);
    the mask shrunk by edge_shrink is laid over at edge_reserve percent; outside the mask is black."""
    category = "😺dzNodes/LayerMask"
    mask: MASK
    invert_mask: bool = Bool(True)
    shrink_level: int = Int(4, min=0, max=16)
    soft: int = Int(6, min=0, max=64)
    edge_shrink: int = Int(1, min=0, max=999)
    edge_reserve: int = Int(25, min=0, max=100)
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("LayerMask: MaskEdgeShrink",))

    def run(self):
        from PIL import Image, ImageChops
        glow_range = self.shrink_level * self.soft
        out = []
        for m in mask_batch(self.mask):
            mask = to_pil(1 - m if self.invert_mask else m).convert("L")
            layer = Image.new("RGB", mask.size, "white")
            grow = glow_range
            for step in range(self.shrink_level):
                check_interrupted()
                color = step_color((255, 255, 255), (0, 0, 0), self.shrink_level, step)
                glow_mask = expand_mask(mask, -grow, 12 / (step + 0.1))
                shade = chop_image(layer, Image.new("RGB", mask.size, color), "subtract",
                                   int(step_value(1, 100, self.shrink_level, step)))
                layer.paste(shade, mask=inverted(glow_mask))
                grow -= int(glow_range / self.shrink_level)
            edge = expand_mask(mask, -self.edge_shrink, 0).convert("RGB")
            layer = chop_image(layer, edge, "normal", self.edge_reserve)
            layer.paste(Image.new("RGB", mask.size, "black"), mask=ImageChops.invert(mask))
            out.append(to_tensor(layer.split()[0]))
        return batch(out)


class LayerMaskMaskPreview(Node):
    """Show masks in the editor as grey pictures, as LayerMask's MaskPreview."""
    category = "😺dzNodes/LayerMask"
    output_node = True
    mask: MASK
    comfy = ComfyAlias(("LayerMask: MaskPreview",))

    def run(self):
        from nodes.image import preview
        masks = mask_batch(self.mask)
        preview(masks.reshape(-1, masks.shape[-2], masks.shape[-1])[..., None].expand(-1, -1, -1, 3))


class LayerUtilityPurgeVRAM(Node):
    """Free memory, as LayerUtility's PurgeVRAM: with purge_models the models graphflow's memory
    manager holds on the GPU and not in use move to the CPU's RAM; then Python's garbage is
    collected and the GPU's cache emptied (also without). purge_cache (ComfyUI's output cache) has
    nothing to do here: graphflow's cache of node outputs is left alone during a run."""
    category = "😺dzNodes/LayerUtility/SystemIO"
    output_node = True
    anything: ANY
    purge_cache: bool = Bool(True)
    purge_models: bool = Bool(True)
    comfy = ComfyAlias(("LayerUtility: PurgeVRAM",))

    def run(self):
        if self.purge_models:
            offload_idle_models()
        free_memory()


def color_balance(picture, cyan_red: float, magenta_green: float, yellow_blue: float):
    """imagefunc.color_balance as LayerColor's ColorBalance calls it: each colour channel bent by
    three cubic splines (scipy's CubicSpline through (0, 0), (centre, centre + value × most), (1, 1))
    at the shadows (0.15, most 0.1), midtones (0.5, most 1) and highlights (0.8, most 0.2), the
    same value for all three; then scaled back to the picture's luminance (0.2126 R + 0.7152 G +
    0.0722 B). In torch float32, as the pack works."""
    import torch
    from scipy.interpolate import CubicSpline
    image = to_tensor(picture)
    luminance = 0.2126 * image[..., 0] + 0.7152 * image[..., 1] + 0.0722 * image[..., 2]
    ranges = ((0.15, 0.1), (0.5, 1), (0.8, 0.2))
    for channel, value in enumerate((cyan_red, magenta_green, yellow_blue)):
        for centre, most in ranges:
            points = torch.tensor([[0, 0], [centre, centre + value * most], [1, 1]])
            spline = CubicSpline(points[:, 0], points[:, 1])
            image[..., channel] = torch.clamp(torch.from_numpy(spline(image[..., channel])), 0, 1)
    image *= (luminance / (0.2126 * image[..., 0] + 0.7152 * image[..., 1] + 0.0722 * image[..., 2])).unsqueeze(-1)
    return to_pil(image[0])


class LayerColorColorBalance(Node):
    """Colour balance, as LayerColor's ColorBalance: cyan_red, magenta_green and yellow_blue (-1..1)
    bend the red, green and blue channels by cubic-spline curves at the shadows, midtones and
    highlights, then the picture is scaled back to its luminance. An RGBA image keeps its alpha."""
    category = COLOR
    image: IMAGE
    cyan_red: float = Float(0.0, min=-1.0, max=1.0, step=0.001)
    magenta_green: float = Float(0.0, min=-1.0, max=1.0, step=0.001)
    yellow_blue: float = Float(0.0, min=-1.0, max=1.0, step=0.001)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerColor: ColorBalance",))

    def run(self):
        import numpy as np
        out = []
        for i in self.image:
            picture = to_pil(i)
            with np.errstate(divide="ignore", invalid="ignore"):  # black pixels: 0 / 0, as in the pack
                result = color_balance(picture, self.cyan_red, self.magenta_green, self.yellow_blue)
            out.append(to_tensor(keep_alpha(result, picture)))
        return batch(out)


def random_numbers(seed: int, min_value: float, max_value: float, decimals: int, least: float = 0.0,
                   factor_first: bool = False) -> tuple:
    """The pack's random draw (Python's random, seeded): a number in min_value..max_value (the V2
    draws again, up to 500 times, while its size is below least), rounded to decimals (by way of
    a factor in 3..9 the pack divides and multiplies by, drawn first by the first version); its
    whole part, and whether that is even."""
    import random
    draw = random.Random(seed)
    factor = draw.uniform(3, 9) if factor_first else None
    for _ in range(500):
        number = draw.uniform(min_value, max_value)
        if abs(number) - least >= 0 or least > max_value:
            break
    if factor is None:
        factor = draw.uniform(3, 9)
    value = round(number / factor * factor, decimals)
    return int(value), value, int(value) % 2 == 0


class LayerUtilityRandomGeneratorV2(Node):
    """Random numbers from a seed, as LayerUtility's RandomGeneratorV2: a float between min_value and
    max_value (at least `least` in size, where it can be) rounded to float_decimal_places, its
    whole part, and whether that is even; one set per image of a linked batch (then lists, as the
    pack gives them; all alike, as each is drawn from the same seed)."""
    category = DATA
    min_value: float = Float(0.0, min=-1.0e14, max=1.0e14, step=0.01)
    max_value: float = Float(10.0, min=-1.0e14, max=1.0e14, step=0.01)
    least: float = Float(0.0, min=0.0, max=1.0e14, step=0.01)
    float_decimal_places: int = Int(1, min=1, max=14)
    seed: int = Int(0, min=0, max=10**14, control_after_generate=True)
    image: IMAGE = None
    outputs = {"int": INT, "float": FLOAT, "bool": BOOLEAN}
    comfy = ComfyAlias(("LayerUtility: RandomGeneratorV2",))

    def run(self):
        count = len(self.image) if self.image is not None else 1
        numbers = [random_numbers(self.seed, self.min_value, self.max_value, self.float_decimal_places, self.least)
                   for _ in range(count)]
        return numbers[0] if count == 1 else tuple(list(column) for column in zip(*numbers))


class LayerUtilityRandomGenerator(Node):
    """Random numbers, as LayerUtility's RandomGenerator: a float between min_value and max_value
    rounded to float_decimal_places, its whole part, and whether that is even, from a new random
    seed each time the node runs (as in ComfyUI, a run with the same inputs keeps the last
    result); with fix_seed one seed serves all the images of a linked batch, else one each (then
    lists, as the pack gives them). Unlike the pack, fix_seed holds within one run only: the pack
    keeps its first seed on its node object for later runs too (while ComfyUI keeps that object),
    but graphflow makes a node anew for each run and has no state of a node's own across runs (a
    store keyed by node id would mix up different workflows' nodes of that id), so a run with
    changed inputs draws a new seed; for a repeatable draw use RandomGeneratorV2 and its seed."""
    category = DATA
    min_value: float = Float(0.0, min=-1.0e14, max=1.0e14, step=0.01)
    max_value: float = Float(10.0, min=-1.0e14, max=1.0e14, step=0.01)
    float_decimal_places: int = Int(1, min=1, max=14)
    fix_seed: bool = Bool(False)
    image: IMAGE = None
    outputs = {"int": INT, "float": FLOAT, "bool": BOOLEAN}
    comfy = ComfyAlias(("LayerUtility: RandomGenerator",))

    def run(self):
        import random
        count = len(self.image) if self.image is not None else 1
        seeds = random.SystemRandom().sample(range(int(1e14) + 1), count)
        if self.fix_seed:
            seeds = [seeds[0]] * count
        numbers = [random_numbers(seed, self.min_value, self.max_value, self.float_decimal_places, factor_first=True)
                   for seed in seeds]
        return numbers[0] if count == 1 else tuple(list(column) for column in zip(*numbers))


class LayerFilterSharpAndSoft(Node):
    """LayerFilter's Sharp & Soft, as the pack's code runs: only "very soft" filters (its if / else
    chain gives the images back unchanged for "very sharp", "sharp", "soft" and "None", which is
    what happens here too). "very soft" is the pack's detail step with filter radius 15 (window
    31), denoise 0.06 and detail × 0.01: the ratio of a bilateral-smoothed image (OpenCV, sigma
    0.006) to a self-guided filtered one (eps 0.02), put back, clipped to 0..1 (Image-Filters'
    Enhance Detail does the same steps). The pack's guided filter is OpenCV-contrib's; graphflow's
    is He et al.'s box-filter form following OpenCV's, in float64 (see
    nodes/pack_nodes_image_filters.py), so results differ by float32's rounding. Images of 1 or 3
    channels (OpenCV's bilateral filter)."""
    category = FILTER
    images: IMAGE
    enhance: str = Choice(("very sharp", "sharp", "soft", "very soft", "None"), "very sharp")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerFilter: Sharp & Soft",))

    @classmethod
    def estimate(cls, widgets, inputs):
        from nodes.pack_nodes_image_filters import _guided_estimate
        if widgets.get("enhance") in ("very sharp", "sharp", "soft", "None"):  # (a linked one counts as filtering)
            return Estimate(inputs.get("images"))
        return _guided_estimate(inputs.get("images"))

    def run(self):
        from nodes.pack_nodes_image_filters import enhanced_detail
        if self.enhance != "very soft":
            return self.images
        return enhanced_detail(self.images, 15, 0.2, 0.06, 0.01)


def mask_fix(mask, fill_holes: int, threshold: float):
    """imagefunc.mask_fix as MaskByColor calls it (radius 1, white_threshold and extra_clip both
    `threshold`), on one float32 mask [H, W]: OpenCV's bilateral filter, divided by a blurred
    estimate of the white level; with fill_holes, the squared mask dilated, eroded and blurred at
    2 × fill_holes + 1 and the larger of the two kept."""
    import cv2
    import numpy as np
    image = np.ascontiguousarray(mask, np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        cleaned = cv2.bilateralFilter(image, 9, 0.05, 8)
        alpha = np.clip((image - threshold) / (1 - threshold), 0, 1)
        white = image * alpha
        alpha = cv2.GaussianBlur(alpha, (3, 3), 0) * 0.99 + np.average(alpha) * 0.01
        white = cv2.GaussianBlur(white, (3, 3), 0) * 0.99 + np.average(white) * 0.01
        white = white / np.clip(alpha, 0.00001, 1) * threshold
        cleaned = np.clip(cleaned / white, 0, 1)
    if fill_holes > 0:
        side = fill_holes * 2 + 1
        filled = cv2.dilate(cleaned * cleaned, np.ones((side, side), np.uint8), iterations=1)
        filled = cv2.erode(filled, np.ones((side + 2, side + 2), np.uint8), iterations=1)
        cleaned = np.maximum(cleaned, cv2.GaussianBlur(filled, (side, side), 0))
    return cleaned


class LayerMaskMaskByColor(Node):
    """A mask of the pixels near a colour, as LayerMask's MaskByColor: each of R, G, B within
    threshold × 1.28 (of 255) of color (color_in_HEX instead where it is a '#RRGGBB'), kept inside
    mask (inverted where invert_mask; else the image's alpha), inverted where invert_mask, then
    with fix_gap cleaned by the pack's mask_fix (fix_gap the holes it fills, fix_threshold its
    white level)."""
    category = "😺dzNodes/LayerMask"
    image: IMAGE
    color: str = Text("#FFFFFF")
    color_in_HEX: str = Text("")
    threshold: int = Int(50, min=0, max=100)
    fix_gap: int = Int(2, min=0, max=32)
    fix_threshold: float = Float(0.75, min=0.01, max=0.99, step=0.01)
    invert_mask: bool = Bool(False)
    mask: MASK = None
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("LayerMask: MaskByColor",))

    def run(self):
        import numpy as np
        import torch
        from PIL import Image
        hex_input = self.color_in_HEX.startswith("#") and len(self.color_in_HEX) == 7
        target = np.array(hex_rgb(self.color_in_HEX, "color_in_HEX") if hex_input else hex_rgb(self.color, "color"))
        spread = int(self.threshold * 1.28)
        masks = layer_masks(self.image, self.mask, self.invert_mask, True)
        out = []
        for i in range(len(self.image)):
            picture = to_pil(self.image[i])
            if picture.mode != "RGB":
                raise NodeInputError("image", f"the pack compares RGB pictures, got {picture.mode}")
            values = np.asarray(picture, int)
            low, high = np.clip(target - spread, 0, None), np.clip(target + spread, None, 255)
            near = np.all((values >= low) & (values <= high), axis=-1)
            inside = Image.new("L", picture.size, "black")
            inside.paste(Image.fromarray((near * 255).astype(np.uint8)), mask=nth(masks, i))
            mask = to_tensor(inside)
            if self.invert_mask:
                mask = 1 - mask
            if self.fix_gap:
                mask = torch.from_numpy(mask_fix(mask[0].numpy(), self.fix_gap, self.fix_threshold))[None]
            out.append(mask)
        return batch(out)


def hdr_luminance(lightness, hdr: float, shadow: float, highlight: float):
    """The HDR Effects' merge of its lightness channel (0-255, float32): shadows darkened by
    (1 - L / 255)² × shadow² × hdr, highlights lifted by (L / 255)² × highlight² × hdr, both
    combined and mixed with the original by hdr; 8 bits, truncated."""
    import numpy as np
    shadow_mask = np.clip((1 - (lightness / 255)) ** 2, 0, 1)
    highlight_mask = np.clip((lightness / 255) ** 2, 0, 1)
    darker = np.clip(lightness * (1 - shadow_mask * (shadow ** 2 * hdr)), 0, 255)
    lighter = np.clip(lightness + (255 - lightness) * highlight_mask * (highlight ** 2 * hdr), 0, 255)
    adjusted = np.clip(darker + lighter - lightness, 0, 255)
    return np.clip(lightness * (1 - hdr) + adjusted * hdr, 0, 255).astype(np.uint8)


class LayerFilterHDREffects(Node):
    """An HDR look, as LayerFilter's HDR Effects: the picture to LAB (littlecms's sRGB and LAB
    profiles through PIL's ImageCms), its lightness's shadows and highlights pushed apart by
    shadow_intensity / highlight_intensity and hdr_intensity, back to RGB, then PIL's contrast × (1 +
    contrast) and colour × (1 + enhance_color / 5). gamma_intensity changes nothing: the pack works
    out its gamma curve and does not use it. The picture is read as RGB."""
    category = FILTER
    image: IMAGE
    hdr_intensity: float = Float(0.5, min=0.0, max=5.0, step=0.01)
    shadow_intensity: float = Float(0.25, min=0.0, max=1.0, step=0.01)
    highlight_intensity: float = Float(0.75, min=0.0, max=1.0, step=0.01)
    gamma_intensity: float = Float(0.25, min=0.0, max=1.0, step=0.01)
    contrast: float = Float(0.1, min=0.0, max=1.0, step=0.01)
    enhance_color: float = Float(0.25, min=0.0, max=1.0, step=0.01)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerFilter: HDREffects",))

    def run(self):
        import numpy as np
        from PIL import Image, ImageCms, ImageEnhance
        srgb, lab = ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB")
        out = []
        for i in self.image:
            picture = to_pil(i).convert("RGB")
            lightness, a, b = ImageCms.profileToProfile(picture, srgb, lab, outputMode="LAB").split()
            merged = hdr_luminance(np.array(lightness, dtype=np.float32), self.hdr_intensity, self.shadow_intensity,
                                   self.highlight_intensity)
            result = ImageCms.profileToProfile(Image.merge("LAB", (Image.fromarray(merged), a, b)), lab, srgb,
                                               outputMode="RGB")
            result = ImageEnhance.Contrast(result).enhance(1 + self.contrast)
            out.append(to_tensor(ImageEnhance.Color(result).enhance(1 + self.enhance_color * 0.2)))
        return batch(out)


class LayerFilterSkinBeauty(Node):
    """Smooth skin, as LayerFilter's SkinBeauty: the light areas (grey above the mean brightness of
    the red channel's Otsu-thresholded part, less 16, plus threshold; OpenCV's to-zero threshold)
    blurred by (width + height) / 2000 × smooth make the mask through which an OpenCV bilateral
    filter of the picture (its strength growing with (smooth / 50)²), blurred the same and laid
    over at opacity, is pasted; gives the picture and that mask. PIL's blurs as the pack's
    imagefunc at cf8c238f (no RGBA step)."""
    category = FILTER
    image: IMAGE
    smooth: int = Int(20, min=1, max=64)
    threshold: int = Int(-10, min=-255, max=255)
    opacity: int = Int(100, min=0, max=100)
    outputs = {"image": IMAGE, "beauty_mask": MASK}
    comfy = ComfyAlias(("LayerFilter: SkinBeauty",))

    def run(self):
        import cv2
        import numpy as np
        from PIL import Image, ImageFilter
        images, masks = [], []
        for i in self.image:
            check_interrupted()
            canvas = to_pil(i).convert("RGB")
            rgb = np.asarray(canvas)
            red = np.ascontiguousarray(rgb[..., 0])
            _, otsu = cv2.threshold(red, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
            lit = red[(otsu > 0) & (red > 1)]  # the pack's average skips the black it pasted on, and near-black
            if lit.size == 0:
                raise NodeInputError("image", "no light part found to measure (the picture is black)")
            level = int(lit.astype(np.int64).sum() / lit.size) - 16 + self.threshold
            grey = cv2.cvtColor(rgb[..., ::-1].copy(), cv2.COLOR_BGR2GRAY)
            _, light = cv2.threshold(grey, level, 255, cv2.THRESH_TOZERO)
            blur = int((canvas.width + canvas.height) / 2000 * self.smooth)
            factor = (self.smooth / 50.0) ** 2
            span = (canvas.width + canvas.height) / 256 * factor
            smoothed = cv2.bilateralFilter(np.ascontiguousarray(rgb), int(span), max(1, float(span)),
                                           max(1, float((canvas.width + canvas.height) / 160 * factor)))
            smoothed = Image.fromarray(smoothed).filter(ImageFilter.GaussianBlur(radius=blur))
            smoothed = chop_image(canvas, smoothed, "normal", self.opacity)
            light_mask = Image.fromarray(light).filter(ImageFilter.GaussianBlur(radius=blur)).convert("L")
            canvas.paste(smoothed, mask=light_mask)
            images.append(to_tensor(canvas))
            masks.append(to_tensor(light_mask))
        return batch(images), batch(masks)


# -- LayerUtility: ImageMaskScaleAs, channels; LayerMask: MaskStroke, MaskGradient --------------------


class _ScaleAs(Node):
    """ImageMaskScaleAs's inputs both versions share, and its run."""
    category = "😺dzNodes/LayerUtility"
    scale_as: ANY
    fit: str = Choice(("letterbox", "crop", "fill"), "letterbox")
    method: str = Choice(RESAMPLE_METHODS, "lanczos")
    outputs = {"image": IMAGE, "mask": MASK, "original_size": BOX, "widht": INT, "height": INT}
    background = "black"

    def run(self):
        width, height = picture_size(self.scale_as, "scale_as")
        images = list(self.image) if self.image is not None else []
        masks = list(mask_batch(self.mask)) if self.mask is not None else []
        check_made_size("scale_as", max(len(images), len(masks), 1), width, height, "the size of scale_as")
        sampler, background = resample(self.method), pil_color(self.background, "background_color")
        original = [4, 4]
        out_images, out_masks = [], []
        for picture in images:
            original = [int(picture.shape[1]), int(picture.shape[0])]
            out_images.append(to_tensor(fit_resize(to_pil(picture), width, height, self.fit, sampler, background)))
        for mask in masks:
            original = [int(mask.shape[1]), int(mask.shape[0])]
            out_masks.append(to_tensor(fit_resize(to_pil(mask), width, height, self.fit, sampler, background)
                                       .convert("L")))
        if not images and not masks:
            warn("ImageMaskScaleAs: neither image nor mask is linked: nothing scaled, as in the pack")
            return None, None, original, 0, 0
        return (batch(out_images) if out_images else None, batch(out_masks) if out_masks else None, original,
                width, height)


class LayerUtilityImageMaskScaleAs(_ScaleAs):
    """Scale an image and / or mask to the size of scale_as (an image or mask), as LayerUtility's
    ImageMaskScaleAs; fit: letterbox (on black), crop or fill. Gives the (last) input's size as a
    BOX and the new width and height (the pack's output name "widht" kept). An unlinked image or
    mask gives None there, as the pack does."""
    image: IMAGE = None
    mask: MASK = None
    comfy = ComfyAlias(("LayerUtility: ImageMaskScaleAs",))


class LayerUtilityImageMaskScaleAsV2(_ScaleAs):
    """ImageMaskScaleAs with the letterbox bars (and a letterboxed mask's) in background_color, as
    LayerUtility's ImageMaskScaleAsV2."""
    background_color: str = Text("#FFFFFF")
    image: IMAGE = None
    mask: MASK = None
    comfy = ComfyAlias(("LayerUtility: ImageMaskScaleAsV2",))

    @property
    def background(self):
        return self.background_color


CHANNEL_MODES = ("RGBA", "YCbCr", "LAB", "HSV")


class LayerUtilityImageChannelSplit(Node):
    """An image's channels in a colour mode (RGBA, YCbCr, LAB or HSV; the fourth is black but in
    RGBA), each as a one-channel picture batch [B, H, W], as LayerUtility's ImageChannelSplit."""
    category = "😺dzNodes/LayerUtility"
    image: IMAGE
    mode: str = Choice(CHANNEL_MODES, "RGBA")
    outputs = {"channel_1": IMAGE, "channel_2": IMAGE, "channel_3": IMAGE, "channel_4": IMAGE}
    comfy = ComfyAlias(("LayerUtility: ImageChannelSplit",))

    def run(self):
        from PIL import Image
        channels = [[], [], [], []]
        for i in self.image:
            picture = to_pil(i).convert("RGBA")
            parts = list(picture.split()) if self.mode == "RGBA" else \
                [*picture.convert(self.mode).split(), Image.new("L", picture.size, "black")]
            for index, part in enumerate(parts):
                channels[index].append(to_tensor(part))
        return tuple(batch(c) for c in channels)


class LayerUtilityImageChannelMerge(Node):
    """An RGB(A) image of three (or four) channel pictures read in a colour mode, as
    LayerUtility's ImageChannelMerge: RGBA (channel_4 the alpha, white where unlinked), or YCbCr /
    LAB / HSV (made RGB; channel_4 unused). Colour pictures are read as grey."""
    category = "😺dzNodes/LayerUtility"
    channel_1: IMAGE
    channel_2: IMAGE
    channel_3: IMAGE
    mode: str = Choice(CHANNEL_MODES, "RGBA")
    channel_4: IMAGE = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerUtility: ImageChannelMerge",))

    def run(self):
        from PIL import Image
        inputs = [("channel_1", self.channel_1), ("channel_2", self.channel_2), ("channel_3", self.channel_3)]
        first = to_pil(self.channel_1[0])
        fourth = self.channel_4 if self.channel_4 is not None else to_tensor(Image.new("L", first.size, "white"))
        inputs.append(("channel_4", fourth))
        out = []
        for i in range(max(len(value) for _, value in inputs)):
            parts = [to_pil(nth(value, i)).convert("L") for _, value in inputs]
            for (name, _), part in zip(inputs, parts):
                if part.size != parts[0].size:
                    raise NodeInputError(name, f"is {part.size[0]}×{part.size[1]}, channel_1 "
                                               f"{parts[0].size[0]}×{parts[0].size[1]}: expected one size")
            if self.mode == "RGBA":
                merged = Image.merge("RGBA", parts)
            else:
                merged = Image.merge(self.mode, parts[:3]).convert("RGB")
            out.append(to_tensor(merged))
        return batch(out)


class LayerMaskMaskStroke(Node):
    """A band along a mask's edge, as LayerMask's MaskStroke: stroke_width wide, centred stroke_grow
    pixels out from the edge, both edges blurred by blur (the outer grown mask less the inner)."""
    category = "😺dzNodes/LayerMask"
    mask: MASK
    invert_mask: bool = Bool(True)
    stroke_grow: int = Int(0, min=-999, max=999)
    stroke_width: int = Int(20, min=0, max=999)
    blur: int = Int(6, min=0, max=100)
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("LayerMask: MaskStroke",))

    def run(self):
        inner = self.stroke_grow - self.stroke_width // 2
        outer = inner + self.stroke_width
        out = []
        for m in mask_batch(self.mask):
            picture = to_pil(1 - m if self.invert_mask else m).convert("L")
            band = to_tensor(expand_mask(picture, outer, self.blur)) - to_tensor(expand_mask(picture, inner, self.blur))
            out.append(band.clamp(0, 1))
        return batch(out)


class LayerMaskMaskGradient(Node):
    """Fade a mask towards one side, as LayerMask's MaskGradient: over the bounding box of the mask's
    largest white area, black fades in from gradient_side (the pack's black-to-white gradient,
    squeezed to gradient_scale percent of the box and moved by gradient_offset), then the result
    is mixed with the mask at opacity percent. As in the pack, a batch gives one mask (its last).
    The ramp is worked out along one line (a gradient_scale of 9999 makes it 100 × the box, of which
    the box shows a part); a gradient_scale that leaves it under a pixel is refused."""
    category = "😺dzNodes/LayerMask"
    mask: MASK
    invert_mask: bool = Bool(True)
    gradient_side: str = Choice(("top", "bottom", "left", "right"), "top")
    gradient_scale: int = Int(100, min=1, max=9999)
    gradient_offset: int = Int(0, min=-9999, max=9999)
    opacity: int = Int(100, min=0, max=100)
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("LayerMask: MaskGradient",))

    def run(self):
        from PIL import Image
        last = mask_batch(self.mask)[-1]
        mask = to_pil(1 - last if self.invert_mask else last).convert("L")
        canvas, (width, height) = mask.copy(), mask.size
        box_x, box_y, box_width, box_height = min_bounding_rect(mask, blur=False)
        if box_width == 0 or box_height == 0:
            raise NodeInputError("mask", "no white area to fade (the pack fails there)")
        ramp = gradient("#000000", "#FFFFFF", width, height, 0)
        vertical = self.gradient_side in ("top", "bottom")
        box = (width, box_height) if vertical else (box_width, height)
        length = box[1] if vertical else box[0]
        turns = {"top": Image.FLIP_TOP_BOTTOM, "left": Image.ROTATE_270, "right": Image.ROTATE_90}
        turn = turns.get(self.gradient_side)
        if turn is not None:
            ramp = ramp.transpose(turn)
        # the ramp changes along one side only: the pack's steps are worked on one line of it, then
        # stretched across the box (the same pixels; a gradient_scale of 9999 makes it 100 × the box)
        ramp = ramp.crop((0, 0, 1, ramp.height) if vertical else (0, 0, ramp.width, 1))
        line = (1, length) if vertical else (length, 1)
        ramp = ramp.resize(line)
        far_end = self.gradient_side in ("bottom", "right")  # the fade sits at the box's far end
        if self.gradient_scale != 100:
            scaled_length = int(length * self.gradient_scale / 100)
            if scaled_length < 1:  # the pack fails in PIL's resize
                raise NodeInputError("gradient_scale", f"{self.gradient_scale} % of the {length}-pixel box is "
                                                       f"less than a pixel")
            ramp = ramp.resize((1, scaled_length) if vertical else (scaled_length, 1))
            placed = Image.new("RGB", line, "black")
            at = length - scaled_length if far_end else 0
            placed.paste(ramp, box=(0, at) if vertical else (at, 0))
            ramp = placed
        if self.gradient_offset != 0:
            offset = self.gradient_offset
            placed = Image.new("RGB", line, "black")
            placed.paste(ramp, box=(0, offset) if vertical else (offset, 0))
            white_at = offset + length if far_end else offset - length
            placed.paste(Image.new("RGB", line, "white"), box=(0, white_at) if vertical else (white_at, 0))
            ramp = placed
            if (offset < -length) if far_end else (offset > length):
                ramp = Image.new("RGB", line, "white")
        ramp = ramp.resize(box, Image.NEAREST)
        corner = (0, box_y) if vertical else (box_x, 0)
        canvas.paste(Image.new("RGB", box, "black"), box=corner, mask=ramp.convert("L"))
        if self.opacity < 100:
            canvas = chop_image(mask, canvas, "normal", self.opacity)
        return to_tensor(canvas)


def normal_blend(backdrop, layer, opacity: int):
    """chop_image_v2's "normal": the blend_modes package's normal (alpha compositing of the layer at
    opacity percent over the backdrop, both RGBA), truncated to 8 bits and made RGB, as the pack
    does (read at flrs/blend_modes 0da4a37c3b13335f9bd8db9cfea16b3d2ec4f709)."""
    import numpy as np
    from PIL import Image
    back = np.asarray(backdrop.convert("RGBA"), dtype=float) / 255.0
    over = np.asarray(layer.convert("RGBA"), dtype=float) / 255.0
    back_alpha, over_alpha = back[..., 3:], over[..., 3:] * (opacity / 100)
    with np.errstate(divide="ignore", invalid="ignore"):
        colour = (over[..., :3] * over_alpha + back[..., :3] * back_alpha * (1 - over_alpha)) \
            / (over_alpha + back_alpha * (1 - over_alpha))
    blended = np.nan_to_num(np.dstack((colour, over_alpha + back_alpha * (1 - over_alpha)))) * 255.0
    return Image.fromarray(np.uint8(blended)).convert("RGB")


def normalize_gray(channel):
    """imagefunc.normalize_gray: the channel's levels stretched between the first and last of its
    256 histogram bins holding more than 0.05 % of the pixels (PIL making the floats 8-bit)."""
    import numpy as np
    from PIL import Image
    values = np.asarray(channel)
    counts, _ = np.histogram(values.reshape(-1), 256, (0, 256))
    used = np.where(counts > (counts.sum() * 0.0005))
    low, high = np.min(used), np.max(used)
    with np.errstate(divide="ignore", invalid="ignore"):
        stretched = (np.clip(values, low, high) - low) / (high - low) * 255
    return Image.fromarray(stretched).convert("L")


class LayerColorAutoAdjust(Node):
    """Automatic levels, as LayerColor's AutoAdjust: each of R, G, B stretched between its histogram
    ends (normalize_gray), red / green / blue (-100..100) bend their channel by a gamma of
    0.00005 b² - 0.01 b + 1, then brightness, contrast and saturation (PIL's enhancers, a factor of
    1 + v / 100 below 0 and 1 + v / 50 above), the result laid over the picture at strength percent
    (the blend_modes package's normal blend); an RGBA image keeps its alpha."""
    category = COLOR
    image: IMAGE
    strength: int = Int(100, min=0, max=100)
    brightness: int = Int(0, min=-100, max=100)
    contrast: int = Int(0, min=-100, max=100)
    saturation: int = Int(0, min=-100, max=100)
    red: int = Int(0, min=-100, max=100)
    green: int = Int(0, min=-100, max=100)
    blue: int = Int(0, min=-100, max=100)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LayerColor: AutoAdjust",))

    def run(self):
        import numpy as np
        from PIL import Image, ImageEnhance

        def factor(value):
            return value / 100 + 1 if value < 0 else value / 50 + 1

        out = []
        for i in self.image:
            picture = to_pil(i)
            channels = [normalize_gray(c) for c in picture.convert("RGB").split()]
            for index, balance in enumerate((self.red, self.green, self.blue)):
                if balance:
                    gamma = 0.00005 * balance * balance - 0.01 * balance + 1
                    table = np.round(np.power(np.arange(256) / 255.0, gamma) * 255.0).astype(np.uint8)
                    channels[index] = Image.fromarray(table[np.asarray(channels[index])])
            result = Image.merge("RGB", channels)
            for enhancer, value in ((ImageEnhance.Brightness, self.brightness), (ImageEnhance.Contrast, self.contrast),
                                    (ImageEnhance.Color, self.saturation)):
                if value:
                    result = enhancer(result).enhance(factor(value))
            out.append(to_tensor(keep_alpha(normal_blend(picture, result, self.strength), picture)))
        return batch(out)


class LayerUtilityQueueStop(Node):
    """Stop the run here, as LayerUtility's QueueStop: with mode "stop" and stop on, the run ends
    interrupted at this node (the pack raises ComfyUI's interrupt); otherwise `any` is passed on."""
    category = "😺dzNodes/LayerUtility/SystemIO"
    any: ANY
    mode: str = Choice(("stop", "continue"), "stop")
    stop: bool = Bool(True)
    outputs = {"any": ANY}
    comfy = ComfyAlias(("LayerUtility: QueueStop",))

    def run(self):
        if self.mode == "stop" and self.stop:
            raise Interrupted("LayerUtility: QueueStop stopped the run, as the pack's node does")
        return self.any
