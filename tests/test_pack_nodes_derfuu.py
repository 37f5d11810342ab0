"""Derfuu's ModdedNodes (nodes/pack_nodes_derfuu.py): the pack's class names (DF_ and the earlier
bare ones) and input orders, every math and trigonometry operation against Python's math, the
converters, Random against numpy seeded as the pack seeds it, the text nodes against str / re,
the Logic node against Python's operators, the scalers against torch's interpolate and the core
ImageScale / LatentUpscale, the conditioning and tuple nodes against the core nodes they are,
the clear errors, and a UI-format save and an API prompt with the pack's class names that run
and are written back unchanged."""

import math
import operator
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graphflow.comfy_format import comfy_catalogue, custom_pack, export_api, export_ui, unknown_type_hint
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.resource_limits import RunLimits, Size
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def node(registry, name, **inputs):
    return call(registry, registry.comfy_node(name).node_type, **inputs)


def raises(registry, name, input_name, **inputs):
    with pytest.raises(NodeInputError) as caught:
        node(registry, name, **inputs)
    assert caught.value.input == input_name, str(caught.value)
    return str(caught.value)


# -- names ------------------------------------------------------------------------------------------

# The pack's DF_ classes with their inputs in order (pyscripts/ at the commits the module names).
DF_INPUTS = {
    "DF_Float": ["Value"], "DF_Integer": ["Value"], "DF_Text": ["Text"], "DF_Text_Box": ["Text"],
    "DF_DynamicPrompts_Text_Box": ["Text"], "DF_String_Concatenate": ["Prepend", "Append", "Delimiter"],
    "DF_String_Replace": ["Text", "Pattern", "Replace_With", "Mode"], "DF_To_text_(Debug)": ["ANY"],
    "DF_Random": ["Value_A", "Value_B", "seed"], "DF_Int_to_Float": ["Value"], "DF_Ceil": ["Value"],
    "DF_Floor": ["Value"], "DF_Absolute_value": ["Value", "negative_out"],
    "DF_Get_latent_size": ["latent", "original"], "DF_Get_image_size": ["image"],
    "DF_Sum": ["Value_A", "Value_B"], "DF_Subtract": ["Value_A", "Value_B"], "DF_Multiply": ["Value_A", "Value_B"],
    "DF_Divide": ["Numerator", "Denominator"], "DF_Power": ["Value", "Exponent"], "DF_Square_root": ["Value"],
    "DF_Sinus": ["value", "type_", "arcSin"], "DF_Cosines": ["value", "type_", "arcCos"],
    "DF_Tangent": ["value", "type_", "arcTan"],
    "DF_Logic_node": ["Operation", "CompareValue_A", "CompareValue_B", "OnTrue", "OnFalse"],
    "DF_Latent_Scale_by_ratio": ["latent", "modifier", "scale_method", "crop"],
    "DF_Latent_Scale_to_side": ["latent", "side_length", "side", "scale_method", "crop"],
    "DF_Image_scale_by_ratio": ["image", "upscale_by", "upscale_method", "crop"],
    "DF_Image_scale_to_side": ["image", "side_length", "side", "upscale_method", "crop"],
    "DF_Conditioning_area_scale_by_ratio": ["conditioning", "modifier", "strength_modifier"],
}
# The pack's utility/mapping_replace.py: its earlier bare names -> the DF_ ones ("Float" is Logic's here).
OLD_NAMES = {
    "Integer": "DF_Integer", "Text": "DF_Text", "Text box": "DF_Text_Box",
    "String Concatenate": "DF_String_Concatenate", "String Replace": "DF_String_Replace",
    "To text (Debug)": "DF_To_text_(Debug)", "Random": "DF_Random", "Int to float": "DF_Int_to_Float",
    "Ceil": "DF_Ceil", "Floor": "DF_Floor", "Absolute value": "DF_Absolute_value",
    "Get latent size": "DF_Get_latent_size", "Get image size": "DF_Get_image_size", "Sum": "DF_Sum",
    "Subtract": "DF_Subtract", "Multiply": "DF_Multiply", "Divide": "DF_Divide", "Power": "DF_Power",
    "Square root": "DF_Square_root", "Sinus": "DF_Sinus", "Cosines": "DF_Cosines", "Tangent": "DF_Tangent",
    "Logic node": "DF_Logic_node", "Latent Scale by ratio": "DF_Latent_Scale_by_ratio",
    "Latent Scale to side": "DF_Latent_Scale_to_side", "Image scale by ratio": "DF_Image_scale_by_ratio",
    "Image scale to side": "DF_Image_scale_to_side",
    "Conditioning area scale by ratio": "DF_Conditioning_area_scale_by_ratio",
}
# The earlier versions' classes that have no DF_ successor, with their inputs in order.
TUPLE_ERA_INPUTS = {
    "Tuple": ["Value_A", "Value_B", "round_"], "Int to tuple": ["Value_A", "Value_B"], "Tuple to floats": ["Tuple"],
    "Tuple to ints": ["Tuple"], "Tuple swap": ["Tuple"], "Tuple multiply": ["Tuple", "Value"],
    "Float debug print": ["Prefix", "Value"], "Int debug print": ["Prefix", "Value"],
    "Tuple debug print": ["Prefix", "Values"], "String debug print": ["Prefix", "Text"],
    "ConditioningSetArea with tuples": ["conditioning", "size_tuple", "offset_tuple", "strength"],
    "LatentComposite with tuples": ["samples_to", "samples_from", "position_tuple", "feather"],
}


def test_the_packs_names_are_ours_in_its_input_order_and_clash_with_no_core_class(registry):
    catalogue = comfy_catalogue()
    for name, inputs in {**DF_INPUTS, **TUPLE_ERA_INPUTS}.items():
        assert name not in catalogue
        cls = registry.comfy_node(name)
        assert cls is not None and cls.__module__ == "nodes.pack_nodes_derfuu", name
        assert list(cls.input_specs) == inputs, name
    for old, new in OLD_NAMES.items():
        assert old not in catalogue
        if old.startswith("Get "):  # the earlier ones also give a TUPLE: the same inputs, one output more
            assert list(registry.comfy_node(old).input_specs) == DF_INPUTS[new]
            assert [o.name for o in registry.comfy_node(old).output_specs] == ["WIDTH", "HEIGHT", "TUPLE"]
        else:
            assert registry.comfy_node(old) is registry.comfy_node(new), old
    assert registry.comfy_node("Float").__module__ == "nodes.pack_nodes_mxlogic"  # ComfyUI-Logic's, reads Value
    assert custom_pack("DF_Something_New") == "Derfuu_ComfyUI_ModdedNodes"
    assert custom_pack("Sum") is None and custom_pack("Integer") is None  # bare names: not claimed when unknown


# The pack's first layout (__init__.py at dd6557a), left out: other inputs (SumNode_DF's FLOAT_A, FLOAT_B ...).
FIRST_LAYOUT = ["FloatNode_DF", "IntegerNode_DF", "SumNode_DF", "SqrtNode_DF", "ImageScale_Side_DF",
                "LatentScale_Ratio_DF", "EmptyLatentImage_DF", "ConditioningSetAreaEXT_DF", "Float2Tuple_DF"]


@pytest.mark.parametrize("name", FIRST_LAYOUT)
def test_the_first_layouts_classes_are_unknown_but_named_as_the_packs(registry, name):
    assert registry.comfy_node(name) is None
    assert custom_pack(name) == "Derfuu_ComfyUI_ModdedNodes"
    assert "Derfuu_ComfyUI_ModdedNodes" in unknown_type_hint(name)
    assert custom_pack(name + "2") is None  # whole names only


def test_the_packs_widget_defaults(registry):
    def defaults(name):
        return {n: s.default for n, s in registry.comfy_node(name).input_specs.items() if s.widget}
    assert defaults("DF_Random") == {"Value_A": 0, "Value_B": 1, "seed": 0}
    assert defaults("DF_Latent_Scale_to_side") == {"side_length": 512, "side": "Longest",
                                                   "scale_method": "nearest-exact", "crop": "disabled"}
    assert defaults("DF_Image_scale_to_side")["side_length"] == 1
    assert defaults("DF_String_Concatenate") == {"Prepend": "", "Append": "", "Delimiter": ", "}
    assert registry.comfy_node("DF_Image_scale_by_ratio").input_specs["upscale_method"].widget.choices() == \
        ["nearest-exact", "bilinear", "bicubic", "bislerp", "area", "lanczos"]
    assert registry.comfy_node("DF_Text_Box").input_specs["Text"].widget.multiline
    assert registry.comfy_node("DF_Latent_Scale_by_ratio").input_specs["modifier"].widget.min == 0


# -- math -------------------------------------------------------------------------------------------

VALUES = [(3.5, 2.0), (-1.25, 4.0), (0.0, -7.5), (1e10, 3e-5), (0.1, 0.2)]


@pytest.mark.parametrize("a, b", VALUES)
@pytest.mark.parametrize("name, reference", [("DF_Sum", operator.add), ("DF_Subtract", operator.sub),
                                             ("DF_Multiply", operator.mul), ("Sum", operator.add)])
def test_two_value_math_equals_pythons(registry, name, reference, a, b):
    got = node(registry, name, Value_A=a, Value_B=b)
    assert got == reference(a, b) and type(got) is float


@pytest.mark.parametrize("a, b", VALUES)
def test_divide_and_power_equal_pythons(registry, a, b):
    assert node(registry, "DF_Divide", Numerator=a, Denominator=b) == a / b
    if a > 0:
        assert node(registry, "DF_Power", Value=a, Exponent=b) == math.pow(a, b)


@pytest.mark.parametrize("value", [0.0, 2.0, 0.25, 1e6])
def test_square_root_gives_both_roots(registry, value):
    assert node(registry, "DF_Square_root", Value=value) == (math.sqrt(value), -math.sqrt(value))


@pytest.mark.parametrize("value", [0.0, 0.5, -0.75, 1.0, 30.0, -123.4])
@pytest.mark.parametrize("type_", ["RAD", "DEG"])
@pytest.mark.parametrize("name, arc_name, forward, inverse", [
    ("DF_Sinus", "arcSin", math.sin, math.asin), ("DF_Cosines", "arcCos", math.cos, math.acos),
    ("DF_Tangent", "arcTan", math.tan, math.atan)])
def test_trigonometry_equals_pythons_math(registry, name, arc_name, forward, inverse, value, type_):
    """As the pack: DEG converts the value to radians first, also before the arc function."""
    x = math.radians(value) if type_ == "DEG" else value
    assert node(registry, name, value=value, type_=type_, **{arc_name: False}) == forward(x)
    if inverse is math.atan or -1 <= x <= 1:
        assert node(registry, name, value=value, type_=type_, **{arc_name: True}) == inverse(x)


@pytest.mark.parametrize("value", [2.5, -2.5, 0.0, 7.0, -0.1, 1e15 + 0.5])
def test_converters_equal_pythons(registry, value):
    assert node(registry, "DF_Ceil", Value=value) == math.ceil(value)
    assert node(registry, "DF_Floor", Value=value) == math.floor(value)
    assert node(registry, "DF_Integer", Value=value) == int(value)
    assert node(registry, "DF_Absolute_value", Value=value, negative_out=False) == abs(value)
    assert node(registry, "DF_Absolute_value", Value=value, negative_out=True) == -abs(value)
    assert node(registry, "DF_Float", Value=value) == value
    assert node(registry, "DF_Int_to_Float", Value=int(value)) == float(int(value))


def test_math_errors_name_the_input(registry):
    assert "division by zero" in raises(registry, "DF_Divide", "Denominator", Numerator=1.0, Denominator=0.0)
    raises(registry, "DF_Square_root", "Value", Value=-4.0)
    raises(registry, "DF_Power", "Value", Value=-8.0, Exponent=1 / 3)  # no real value
    raises(registry, "DF_Power", "Value", Value=0.0, Exponent=-2.0)  # math.pow's domain error
    raises(registry, "DF_Power", "Exponent", Value=10.0, Exponent=400.0)  # past a float
    raises(registry, "DF_Sum", "Value_B", Value_A=1.7e308, Value_B=1.7e308)  # infinite
    raises(registry, "DF_Multiply", "Value_B", Value_A=1e200, Value_B=1e200)
    raises(registry, "DF_Sinus", "value", value=2.0, type_="RAD", arcSin=True)
    raises(registry, "DF_Cosines", "value", value=-1.5, type_="RAD", arcCos=True)
    assert "INT" in raises(registry, "DF_Integer", "Value", Value=1e300)
    raises(registry, "DF_Ceil", "Value", Value=-1e25)
    raises(registry, "DF_Floor", "Value", Value=1e20)


def test_a_huge_power_takes_no_time(registry):
    """math.pow on floats: the biggest exponents are refused at once, never worked out as integers."""
    import time
    start = time.perf_counter()
    raises(registry, "DF_Power", "Exponent", Value=1e300, Exponent=1e300)
    assert node(registry, "DF_Power", Value=1.0, Exponent=1e300) == 1.0
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize("seed", [0, 1, 123456, 2 ** 32 - 1])
@pytest.mark.parametrize("a, b", [(0.0, 1.0), (-5.0, 5.0), (10.0, 2.0)])
def test_random_is_numpys_uniform_seeded_as_the_pack_seeds_it(registry, seed, a, b):
    np.random.seed(seed)
    want = np.random.uniform(a, b)
    assert node(registry, "DF_Random", Value_A=a, Value_B=b, seed=seed) == want
    assert node(registry, "Random", Value_A=a, Value_B=b, seed=seed) == want


# -- text -------------------------------------------------------------------------------------------


def test_text_values_and_concatenate(registry):
    assert node(registry, "DF_Text", Text="a cat") == "a cat"
    assert node(registry, "Text box", Text="two\nlines") == "two\nlines"
    assert node(registry, "DF_DynamicPrompts_Text_Box", Text="{a|b}") == "{a|b}"  # the editor resolves it
    assert node(registry, "DF_String_Concatenate", Prepend="a", Append="b", Delimiter=", ") == "a, b"
    assert node(registry, "String Concatenate", Prepend="", Append="x", Delimiter="-") == "-x"


@pytest.mark.parametrize("text, pattern, replace", [
    ("a cat and a cat", "cat", "dog"), ("aaa", "", "-"), ("x1 y22 z333", r"\d+", "#"),
    ("John Smith", r"(\w+) (\w+)", r"\2, \1"), ("abc", "b|c", "")])
def test_string_replace_equals_str_replace_and_re_sub(registry, text, pattern, replace):
    assert node(registry, "DF_String_Replace", Text=text, Pattern=pattern, Replace_With=replace,
                Mode="Strict") == text.replace(pattern, replace)
    assert node(registry, "DF_String_Replace", Text=text, Pattern=pattern, Replace_With=replace,
                Mode="RegEx") == re.sub(pattern, replace, text)


def test_string_replace_errors_name_the_input(registry):
    raises(registry, "DF_String_Replace", "Pattern", Text="abc", Pattern="(", Replace_With="", Mode="RegEx")
    raises(registry, "DF_String_Replace", "Replace_With", Text="abc", Pattern="b", Replace_With=r"\9", Mode="RegEx")
    raises(registry, "DF_String_Replace", "Pattern", Text="a" * 30 + "b", Pattern="(a+)+$", Replace_With="",
           Mode="RegEx")  # backtracks without end: stopped
    raises(registry, "DF_String_Replace", "Replace_With", Text="a" * 5000, Pattern="", Replace_With="x" * 3000,
           Mode="Strict")  # 15 million characters


def test_to_text_passes_the_value_and_its_text_and_shows_it(registry):
    value = {"k": [1, 2.5]}
    assert node(registry, "DF_To_text_(Debug)", ANY=value) == (value, str(value))
    got = node(registry, "To text (Debug)", ANY=10 ** 5000)  # str() refuses: its message is the text
    assert got[0] == 10 ** 5000 and "digits" in got[1]
    prompt = {"1": {"class_type": "DF_Float", "inputs": {"Value": 2.5}},
              "2": {"class_type": "DF_To_text_(Debug)", "inputs": {"ANY": ["1", 0]}}}
    result = run_graph(registry, prompt)
    assert result.values["2"] == (2.5, "2.5") and result.outputs["2"] == {"text": ["2.5"]}


def test_the_earlier_debug_prints_show_prefix_and_value(registry):
    prompt = {"1": {"class_type": "Float debug print", "inputs": {"Prefix": "f", "Value": 1.5}},
              "2": {"class_type": "Int debug print", "inputs": {"Prefix": "i", "Value": -3}},
              "3": {"class_type": "String debug print", "inputs": {"Prefix": "s", "Text": "hi"}},
              "4": {"class_type": "Int to tuple", "inputs": {"Value_A": 1, "Value_B": 2}},
              "5": {"class_type": "Tuple debug print", "inputs": {"Prefix": "t", "Values": ["4", 0]}}}
    outputs = run_graph(registry, prompt).outputs
    assert [outputs[k]["text"] for k in "1235"] == [["f: 1.5"], ["i: -3"], ["s: hi"], ["t: (1, 2)"]]


# -- Logic node -------------------------------------------------------------------------------------

LOGIC_REFERENCE = {"A > B": operator.gt, "A < B": operator.lt, "A = B": operator.eq,
                   "A AND B": lambda a, b: bool(a and b), "A OR B": lambda a, b: bool(a or b),
                   "A XOR B": lambda a, b: bool(not (a and b) and (a or b))}


@pytest.mark.parametrize("operation", list(LOGIC_REFERENCE))
@pytest.mark.parametrize("a, b", [(1, 2), (2, 2), (3.5, 2), ("abc", "abd"), (0, 0), ("", "x"), (True, False)])
def test_logic_node_chooses_as_pythons_operators(registry, operation, a, b):
    got = node(registry, "DF_Logic_node", Operation=operation, CompareValue_A=a, CompareValue_B=b,
               OnTrue="yes", OnFalse="no")
    assert got == ("yes" if LOGIC_REFERENCE[operation](a, b) else "no")


def test_logic_node_unconnected_inputs_count_false(registry):
    """As the pack: CompareValue_B, OnTrue and OnFalse default to False."""
    assert node(registry, "Logic node", Operation="A OR B", CompareValue_A=0, OnTrue=1) is False
    assert node(registry, "DF_Logic_node", Operation="A > B", CompareValue_A=1, OnTrue="yes") == "yes"  # 1 > False
    assert node(registry, "DF_Logic_node", Operation="A = B", CompareValue_A=0, OnTrue="yes") == "yes"  # 0 == False


def test_logic_node_errors_name_the_input(registry):
    # as Python's `and` in the pack: B's truth is not looked at when A is false
    assert node(registry, "DF_Logic_node", Operation="A AND B", CompareValue_A=0, CompareValue_B=torch.ones(2),
                OnTrue=1, OnFalse=2) == 2
    raises(registry, "DF_Logic_node", "CompareValue_B", Operation="A > B", CompareValue_A="x", CompareValue_B=2)
    raises(registry, "DF_Logic_node", "CompareValue_A", Operation="A AND B", CompareValue_A=torch.ones(2),
           CompareValue_B=1)
    raises(registry, "DF_Logic_node", "CompareValue_A", Operation="A = B", CompareValue_A=torch.ones(2),
           CompareValue_B=torch.ones(2))


# -- sizes ------------------------------------------------------------------------------------------


def test_get_sizes(registry):
    image = torch.rand(2, 24, 40, 3)
    assert node(registry, "DF_Get_image_size", image=image) == (40, 24)
    assert node(registry, "Get image size", image=image) == (40, 24, (40, 24))  # the earlier third output
    latent = {"samples": torch.zeros(1, 4, 12, 20)}
    assert node(registry, "DF_Get_latent_size", latent=latent, original=False) == (160, 96)
    assert node(registry, "Get latent size", latent=latent, original=True) == (20, 12, (20, 12))
    raises(registry, "DF_Get_latent_size", "latent", latent={"samples": torch.zeros(1, 16, 3, 12, 20)},
           original=False)


# -- image scaling ----------------------------------------------------------------------------------

IMAGE = torch.rand(2, 24, 40, 3, generator=torch.Generator().manual_seed(1))


def reference_resize(registry, image, width, height, method, crop="disabled"):
    """The core ImageScale (ComfyUI's common_upscale); bislerp through the core LatentUpscale,
    the one core node that offers it (its sizes are pixels: 8 per latent pixel)."""
    if method == "bislerp":
        latent = {"samples": image.movedim(-1, 1)}
        return call(registry, "LatentUpscale", samples=latent, upscale_method="bislerp",
                    width=width * 8, height=height * 8, crop=crop)["samples"].movedim(1, -1)
    return call(registry, "ImageScale", image=image, upscale_method=method, width=width,
                height=height, crop=crop)


METHODS = ["nearest-exact", "bilinear", "bicubic", "bislerp", "area", "lanczos"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("ratio", [1.3, 0.5, 2.0])
def test_image_scale_by_ratio_is_the_core_resize_to_the_rounded_up_size(registry, method, ratio):
    width, height = math.ceil(40 * ratio), math.ceil(24 * ratio)  # the pack's math.ceil(side * upscale_by)
    got = node(registry, "DF_Image_scale_by_ratio", image=IMAGE, upscale_by=ratio, upscale_method=method,
               crop="disabled")
    assert got.shape == (2, height, width, 3)
    assert torch.equal(got, reference_resize(registry, IMAGE, width, height, method))


def test_image_scale_by_ratio_against_torch_interpolate(registry):
    got = node(registry, "Image scale by ratio", image=IMAGE, upscale_by=1.3, upscale_method="bilinear",
               crop="disabled")
    want = F.interpolate(IMAGE.movedim(-1, 1), size=(math.ceil(24 * 1.3), math.ceil(40 * 1.3)),
                         mode="bilinear").movedim(1, -1)
    assert torch.allclose(got, want)


def side_size(width, height, length, side):
    """The pack's Longest / Shortest / Width / Height, written out."""
    if side == "Longest":
        side = "Width" if width > height else "Height"
    if side == "Shortest":
        side = "Width" if width < height else "Height"
    if side == "Width":
        return length, math.ceil(height / width * length)
    return math.ceil(width / height * length), length


@pytest.mark.parametrize("side", ["Longest", "Shortest", "Width", "Height"])
@pytest.mark.parametrize("shape", [(12, 20), (20, 12), (16, 16)])
@pytest.mark.parametrize("crop", ["disabled", "center"])
def test_image_scale_to_side(registry, side, shape, crop):
    image = torch.rand(1, *shape, 3)
    width, height = side_size(shape[1], shape[0], 30, side)
    got = node(registry, "DF_Image_scale_to_side", image=image, side_length=30, side=side,
               upscale_method="bilinear", crop=crop)
    assert got.shape == (1, height, width, 3)
    assert torch.equal(got, reference_resize(registry, image, width, height, "bilinear", crop))


def test_image_scale_errors_name_the_input_before_resizing(registry):
    raises(registry, "DF_Image_scale_by_ratio", "upscale_by", image=IMAGE, upscale_by=0.0,
           upscale_method="bilinear", crop="disabled")
    raises(registry, "DF_Image_scale_by_ratio", "upscale_by", image=IMAGE, upscale_by=-1.0,
           upscale_method="bilinear", crop="disabled")
    raises(registry, "DF_Image_scale_by_ratio", "upscale_by", image=IMAGE, upscale_by=1e300,
           upscale_method="bilinear", crop="disabled")
    message = raises(registry, "DF_Image_scale_by_ratio", "upscale_by", image=IMAGE, upscale_by=1000.0,
                     upscale_method="bilinear", crop="disabled")
    assert "16384" in message
    raises(registry, "DF_Image_scale_to_side", "side_length", image=IMAGE, side_length=0, side="Width",
           upscale_method="area", crop="disabled")
    raises(registry, "DF_Image_scale_to_side", "side_length", image=IMAGE, side_length=100_000, side="Longest",
           upscale_method="area", crop="disabled")


@pytest.mark.parametrize("shape", [(1, 0, 8, 3), (1, 8, 0, 3)])
@pytest.mark.parametrize("side", ["Longest", "Shortest", "Width", "Height"])
def test_scaling_an_empty_image_or_latent_to_a_side_names_it(registry, shape, side):
    """Its aspect ratio would divide by zero."""
    message = raises(registry, "DF_Image_scale_to_side", "image", image=torch.zeros(shape), side_length=64, side=side,
                     upscale_method="area", crop="disabled")
    assert "side of 0 pixels" in message
    latent = {"samples": torch.zeros(1, 4, shape[1], shape[2])}
    assert "side of 0 pixels" in raises(registry, "DF_Latent_Scale_to_side", "latent", latent=latent, side_length=512,
                                        side=side, scale_method="area", crop="disabled")


@pytest.mark.parametrize("shape", [(1, 0, 8, 3), (1, 8, 0, 3), (1, 0, 0, 3)])
def test_scaling_an_empty_image_by_a_ratio_names_the_image(registry, shape):
    """Any ratio gives a side of 0 pixels: the image is at fault, not upscale_by."""
    message = raises(registry, "DF_Image_scale_by_ratio", "image", image=torch.zeros(shape), upscale_by=2.0,
                     upscale_method="area", crop="disabled")
    assert "side of 0 pixels" in message


@pytest.mark.parametrize("image", [torch.zeros(8, 8, 3), torch.zeros(8, 8), "an image"])
def test_the_image_nodes_refuse_what_is_not_an_image_batch(registry, image):
    raises(registry, "DF_Image_scale_by_ratio", "image", image=image, upscale_by=2.0, upscale_method="area",
           crop="disabled")
    raises(registry, "DF_Image_scale_to_side", "image", image=image, side_length=16, side="Width",
           upscale_method="area", crop="disabled")
    raises(registry, "DF_Get_image_size", "image", image=image)
    raises(registry, "Get image size", "image", image=image)


def test_the_scalers_estimate_their_output_size(registry):
    image, latent = Size(2, 12, 20), Size(1, 96, 160)  # a latent's size counts its pixels
    ratio = registry.comfy_node("DF_Image_scale_by_ratio")
    assert ratio.estimate({"upscale_by": 1.3}, {"image": image}).size == Size(2, 16, 26)
    assert ratio.estimate({}, {"image": image}).size == image  # a linked ratio: unknown until it runs
    for junk in ("x", [1], 10 ** 400, -1.0):  # left to run() to name
        assert ratio.estimate({"upscale_by": junk}, {"image": image}).size == image
    side = registry.comfy_node("DF_Image_scale_to_side")
    assert side.estimate({"side_length": 30, "side": "Height"}, {"image": image}).size == Size(2, 30, 50)
    assert side.estimate({"side_length": 10 ** 400, "side": "Width"}, {"image": image}).size == image
    latent_ratio = registry.comfy_node("DF_Latent_Scale_by_ratio")
    width, height = (int(s * 1.3 + s * 1.3 % 8) for s in (20, 12))
    assert latent_ratio.estimate({"modifier": 1.3}, {"latent": latent}).size == Size(1, height * 8, width * 8)
    latent_side = registry.comfy_node("DF_Latent_Scale_to_side")
    assert latent_side.estimate({"side_length": 1024, "side": "Longest"}, {"latent": latent}).size == \
        Size(1, math.ceil(12 / 20 * 1024) // 8 * 8, 1024)


def test_validation_refuses_a_huge_scale_before_running(registry):
    from graphflow.validation import validate
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 512, "height": 512, "batch_size": 1, "color": 0}},
              "2": {"class_type": "DF_Image_scale_by_ratio", "inputs": {"image": ["1", 0], "upscale_by": 30.0,
                                                                        "upscale_method": "bilinear",
                                                                        "crop": "disabled"}},
              "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    limits = RunLimits(max_pixels=8192 * 8192)
    problems = validate(parse_workflow(prompt, registry), registry, limits=limits)
    assert any(p.node_id == "2" for p in problems), problems
    prompt["2"]["inputs"]["upscale_by"] = 2.0
    assert validate(parse_workflow(prompt, registry), registry, limits=limits) == []


# -- latent scaling ---------------------------------------------------------------------------------

LATENT = {"samples": torch.randn(1, 4, 12, 20, generator=torch.Generator().manual_seed(2)),
          "noise_mask": torch.ones(1, 1, 96, 160)}


def reference_latent(registry, latent, width, height, method, crop="disabled"):
    """The core LatentUpscale to width x height latent pixels (its sizes are pixels)."""
    return call(registry, "LatentUpscale", samples=latent, upscale_method=method,
                width=width * 8, height=height * 8, crop=crop)["samples"]


@pytest.mark.parametrize("modifier", [1.5, 1.3, 0.75, 2.0])
@pytest.mark.parametrize("method", ["nearest-exact", "bilinear", "bislerp", "area", "bicubic"])
def test_latent_scale_by_ratio(registry, modifier, method):
    """The pack's size: s = side x modifier, then int(s + s % 8)."""
    width, height = (int(s * modifier + (s * modifier) % 8) for s in (20, 12))
    got = node(registry, "DF_Latent_Scale_by_ratio", latent=LATENT, modifier=modifier, scale_method=method,
               crop="disabled")
    assert got["samples"].shape == (1, 4, height, width)
    assert torch.equal(got["samples"], reference_latent(registry, LATENT, width, height, method))
    assert got["noise_mask"] is LATENT["noise_mask"]


def test_latent_scale_by_ratio_against_torch_interpolate(registry):
    got = node(registry, "Latent Scale by ratio", latent=LATENT, modifier=1.5, scale_method="bilinear",
               crop="disabled")["samples"]
    assert got.shape[-2:] == (18 + 18 % 8, 30 + 30 % 8)  # 20 and 12 latent pixels times 1.5, plus % 8
    assert torch.allclose(got, F.interpolate(LATENT["samples"], size=(20, 36), mode="bilinear"))


@pytest.mark.parametrize("side", ["Longest", "Shortest", "Width", "Height"])
@pytest.mark.parametrize("crop", ["disabled", "center"])
def test_latent_scale_to_side(registry, side, crop):
    """The pack's pixel size from the latent's aspect ratio, rounded up, then cut to latent pixels."""
    pixel_width, pixel_height = side_size(20, 12, 1000, side)
    width, height = pixel_width // 8, pixel_height // 8
    got = node(registry, "DF_Latent_Scale_to_side", latent=LATENT, side_length=1000, side=side,
               scale_method="bilinear", crop=crop)["samples"]
    assert got.shape == (1, 4, height, width)
    assert torch.equal(got, reference_latent(registry, LATENT, width, height, "bilinear", crop))


def test_latent_scale_errors_name_the_input(registry):
    raises(registry, "DF_Latent_Scale_by_ratio", "modifier", latent=LATENT, modifier=0.0, scale_method="area",
           crop="disabled")
    raises(registry, "DF_Latent_Scale_by_ratio", "modifier", latent=LATENT, modifier=500.0, scale_method="area",
           crop="disabled")
    raises(registry, "DF_Latent_Scale_to_side", "side_length", latent=LATENT, side_length=4, side="Width",
           scale_method="area", crop="disabled")
    raises(registry, "DF_Latent_Scale_to_side", "side_length", latent=LATENT, side_length=10 ** 9, side="Width",
           scale_method="area", crop="disabled")
    raises(registry, "DF_Latent_Scale_by_ratio", "latent", latent={"samples": torch.zeros(1, 16, 3, 8, 8)},
           modifier=1.0, scale_method="area", crop="disabled")


# -- conditioning -----------------------------------------------------------------------------------

COND = [(torch.ones(1, 3, 8), {"pooled_output": torch.ones(1, 8)})]


def test_conditioning_area_scale_by_ratio(registry):
    with_area = call(registry, "ConditioningSetArea", conditioning=COND, width=200, height=120,
                     x=40, y=16, strength=0.8)
    got = node(registry, "DF_Conditioning_area_scale_by_ratio", conditioning=with_area + COND, modifier=1.5,
               strength_modifier=0.5)
    h, w, y, x = with_area[0][1]["area"]
    assert got[0][1]["area"] == tuple(int(v * 8 * 1.5) // 8 for v in (h, w, y, x))
    assert got[0][1]["strength"] == 0.8 * 0.5 and got[0][0] is with_area[0][0]
    assert got[1] == COND[0]  # no area: as it was
    percentage = [(COND[0][0], {"area": ("percentage", 0.5, 0.5, 0.0, 0.0), "strength": 1.0})]
    raises(registry, "DF_Conditioning_area_scale_by_ratio", "conditioning", conditioning=percentage, modifier=2.0,
           strength_modifier=1.0)
    raises(registry, "DF_Conditioning_area_scale_by_ratio", "modifier", conditioning=with_area, modifier=-1.0,
           strength_modifier=1.0)


# -- tuples -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("round_, function", [("No", lambda v: v), ("Yes", round), ("Ceil", math.ceil),
                                              ("Floor", math.floor)])
@pytest.mark.parametrize("a, b", [(2.5, 3.5), (-1.25, 7.75), (0.0, 1e9 + 0.5)])
def test_tuple_rounds_as_python(registry, round_, function, a, b):
    assert node(registry, "Tuple", Value_A=a, Value_B=b, round_=round_) == (function(a), function(b))


def test_tuple_operations(registry):
    assert node(registry, "Int to tuple", Value_A=3, Value_B=-4) == (3, -4)
    assert node(registry, "Tuple to floats", Tuple=(3, 4.5)) == (3.0, 4.5)
    assert node(registry, "Tuple to ints", Tuple=(3.9, -4.9)) == (int(3.9), int(-4.9))
    assert node(registry, "Tuple swap", Tuple=(1, 2)) == (2, 1)
    assert node(registry, "Tuple multiply", Tuple=(3, 0.5), Value=1.5) == (3 * 1.5, 0.5 * 1.5)
    raises(registry, "Tuple swap", "Tuple", Tuple=(1, 2, 3))
    raises(registry, "Tuple to ints", "Tuple", Tuple=("a", 1))
    raises(registry, "Tuple", "Value_A", Value_A=1e300, Value_B=1.0, round_="Ceil")


def test_conditioning_set_area_with_tuples_is_the_core_node(registry):
    got = node(registry, "ConditioningSetArea with tuples", conditioning=COND, size_tuple=(200.7, 120),
               offset_tuple=(40, 16.2), strength=0.8)
    want = call(registry, "ConditioningSetArea", conditioning=COND, width=200, height=120, x=40,
                y=16, strength=0.8)
    assert got[0][1]["area"] == want[0][1]["area"] == (15, 25, 2, 5)
    assert got[0][1]["strength"] == want[0][1]["strength"]
    raises(registry, "ConditioningSetArea with tuples", "offset_tuple", conditioning=COND, size_tuple=(64, 64),
           offset_tuple=(-8, 0), strength=1.0)


@pytest.mark.parametrize("position, feather", [((0, 0), 0), ((40, 16), 0), ((40, 16), 16), ((150, 90), 8)])
def test_latent_composite_with_tuples_is_the_core_node(registry, position, feather):
    to = {"samples": torch.randn(1, 4, 12, 20, generator=torch.Generator().manual_seed(3))}
    source = {"samples": torch.randn(1, 4, 6, 8, generator=torch.Generator().manual_seed(4))}
    got = node(registry, "LatentComposite with tuples", samples_to=to, samples_from=source, position_tuple=position,
               feather=feather)
    want = call(registry, "LatentComposite", samples_to=to, samples_from=source, x=position[0],
                y=position[1], feather=feather)
    assert torch.equal(got["samples"], want["samples"])
    raises(registry, "LatentComposite with tuples", "position_tuple", samples_to=to, samples_from=source,
           position_tuple=(0, -8), feather=0)
    unfeathered = call(registry, "LatentComposite", samples_to=to, samples_from=source, x=position[0],
                       y=position[1], feather=0)
    got = node(registry, "LatentComposite with tuples", samples_to=to, samples_from=source, position_tuple=position,
               feather=-16)  # as the pack: a negative feather fades nothing
    assert torch.equal(got["samples"], unfeathered["samples"])


# -- workflows --------------------------------------------------------------------------------------


def test_ui_save_with_the_packs_df_classes_runs_and_is_written_back(registry):
    """As the editor saves them: a FLOAT into upscale_by (a widget turned input), Random's seed
    with its control_after_generate, the [False, True] combos as booleans."""
    nodes = [
        ui_node(1, "EmptyImage", [20, 12, 1, 0], outputs=[("IMAGE", "IMAGE", [1, 2])]),
        ui_node(2, "DF_Float", [1.5], outputs=[("FLOAT", "FLOAT", [3])]),
        ui_node(3, "DF_Image_scale_by_ratio", [1.5, "bilinear", "disabled"],
                [("image", "IMAGE", 1, False), ("upscale_by", "FLOAT", 3, True)], [("IMAGE", "IMAGE", [4])]),
        ui_node(4, "DF_Get_image_size", [], [("image", "IMAGE", 4, False)],
                [("WIDTH", "INT", [5]), ("HEIGHT", "INT", [])]),
        ui_node(5, "DF_Int_to_Float", [1], [("Value", "INT", 5, True)], [("FLOAT", "FLOAT", [6])]),
        ui_node(6, "DF_Random", [0, 1, 7, "randomize"], outputs=[("FLOAT", "FLOAT", [7])]),
        ui_node(7, "DF_Sum", [1, 1], [("Value_A", "FLOAT", 6, True), ("Value_B", "FLOAT", 7, True)],
                [("FLOAT", "FLOAT", [8])]),
        ui_node(8, "DF_To_text_(Debug)", ["31.2"], [("ANY", "*", 8, False)],  # the text its editor last showed
                [("SAME AS INPUT", "*", []), ("STRING", "STRING", [])]),
        ui_node(9, "DF_Absolute_value", [-2.5, True], outputs=[("FLOAT", "FLOAT", [])]),
        ui_node(10, "DF_Sinus", [90, "DEG", False], outputs=[("FLOAT", "FLOAT", [])]),
        ui_node(11, "DF_Get_image_size", [], [("image", "IMAGE", 2, False)],
                [("WIDTH", "INT", []), ("HEIGHT", "INT", [])]),
    ]
    links = [[1, 1, 0, 3, 0, "IMAGE"], [2, 1, 0, 11, 0, "IMAGE"], [3, 2, 0, 3, 1, "FLOAT"], [4, 3, 0, 4, 0, "IMAGE"],
             [5, 4, 0, 5, 0, "INT"], [6, 5, 0, 7, 0, "FLOAT"], [7, 6, 0, 7, 1, "FLOAT"], [8, 7, 0, 8, 0, "*"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["8", "9", "10", "11"])
    np.random.seed(7)
    total = 30.0 + np.random.uniform(0, 1)  # the scaled image is 30 wide
    assert result.values["4"] == (30, 18) and result.values["7"] == (total,)
    assert result.outputs["8"] == {"text": [str(total)]}
    assert result.values["9"] == (-2.5,) and result.values["10"] == (math.sin(math.radians(90)),)
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    for n in nodes:
        assert saved[n["id"]]["type"] == n["type"]
        assert saved[n["id"]]["widgets_values"] == n["widgets_values"], n["type"]


def test_ui_save_with_the_packs_earlier_names_runs(registry):
    """The pack's earlier bare names, the tuple nodes and Get latent size's third output."""
    nodes = [
        ui_node(1, "EmptyLatentImage", [160, 96, 1], outputs=[("LATENT", "LATENT", [1, 2])]),
        ui_node(2, "Get latent size", [False], [("latent", "LATENT", 1, False)],
                [("INT", "INT", []), ("INT", "INT", []), ("TUPLE", "TUPLE", [3])]),
        ui_node(3, "Tuple multiply", [0.5], [("Tuple", "TUPLE", 3, False)], [("TUPLE", "TUPLE", [4])]),
        ui_node(4, "Tuple to ints", [], [("Tuple", "TUPLE", 4, False)], [("INT", "INT", []), ("INT", "INT", [])]),
        ui_node(5, "Latent Scale to side", [512, "Longest", "nearest-exact", "disabled"],
                [("latent", "LATENT", 2, False)], [("LATENT", "LATENT", [])]),
        ui_node(6, "Integer", [7.9], outputs=[("INT", "INT", [5])]),
        ui_node(7, "Int debug print", ["n", 1], [("Value", "INT", 5, True)]),
        ui_node(8, "Tuple", [2.5, 3.5, "Yes"], outputs=[("TUPLE", "TUPLE", [6])]),
        ui_node(9, "Tuple debug print", ["t"], [("Values", "TUPLE", 6, False)]),
    ]
    links = [[1, 1, 0, 2, 0, "LATENT"], [2, 1, 0, 5, 0, "LATENT"], [3, 2, 2, 3, 0, "TUPLE"],
             [4, 3, 0, 4, 0, "TUPLE"], [5, 6, 0, 7, 1, "INT"], [6, 8, 0, 9, 1, "TUPLE"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["4", "5", "7", "9"])
    assert result.values["2"] == (160, 96, (160, 96)) and result.values["4"] == (80, 48)
    assert result.values["5"][0]["samples"].shape == (1, 4, 38, 64)  # ceil(96 / 160 * 512) = 308 // 8
    assert result.outputs["7"] == {"text": ["n: 7"]} and result.outputs["9"] == {"text": ["t: (2, 4)"]}
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    for n in nodes:
        assert saved[n["id"]]["type"] == n["type"]
        assert saved[n["id"]]["widgets_values"] == n["widgets_values"], n["type"]


def test_api_prompt_with_the_packs_class_names_runs_and_round_trips(registry):
    prompt = {
        "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 160, "height": 96, "batch_size": 1}},
        "2": {"class_type": "DF_Latent_Scale_by_ratio", "inputs": {"latent": ["1", 0], "modifier": 1.5,
                                                                   "scale_method": "bislerp", "crop": "disabled"}},
        "3": {"class_type": "DF_Get_latent_size", "inputs": {"latent": ["2", 0], "original": True}},
        "4": {"class_type": "DF_Logic_node", "inputs": {"Operation": "A > B", "CompareValue_A": ["3", 0],
                                                        "CompareValue_B": ["3", 1], "OnTrue": ["5", 0],
                                                        "OnFalse": ["6", 0]}},
        "5": {"class_type": "DF_Text", "inputs": {"Text": "wide"}},
        "6": {"class_type": "Text box", "inputs": {"Text": "tall"}},
        "7": {"class_type": "DF_String_Replace", "inputs": {"Text": ["4", 0], "Pattern": "w(.)", "Replace_With": r"W\1",
                                                            "Mode": "RegEx"}},
        "8": {"class_type": "DF_Divide", "inputs": {"Numerator": 1.0, "Denominator": 8.0}},
        "9": {"class_type": "Power", "inputs": {"Value": ["8", 0], "Exponent": 2.0}},
        "10": {"class_type": "DF_Square_root", "inputs": {"Value": ["9", 0]}},
        "11": {"class_type": "To text (Debug)", "inputs": {"ANY": ["10", 1]}},
        "12": {"class_type": "DF_Conditioning_area_scale_by_ratio",
               "inputs": {"conditioning": ["13", 0], "modifier": 2.0, "strength_modifier": 1.0}},
        "13": {"class_type": "ConditioningSetArea with tuples",
               "inputs": {"conditioning": ["14", 0], "size_tuple": ["15", 0], "offset_tuple": ["15", 0],
                          "strength": 1.0}},
        "14": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["17", 1]}},
        "15": {"class_type": "Int to tuple", "inputs": {"Value_A": 64, "Value_B": 64}},
        "16": {"class_type": "DF_To_text_(Debug)", "inputs": {"ANY": ["7", 0]}},
        "17": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "model.safetensors"}},
    }
    # the conditioning part (12 to 15, 17) needs a checkpoint: written back only
    result = run_graph(registry, {k: v for k, v in prompt.items() if k not in ("12", "13", "14", "15", "17")},
                       ["11", "16"])
    assert result.values["3"] == (36, 20) and result.values["7"] == ("Wide",)  # 30 + 30 % 8, 18 + 18 % 8
    assert result.values["10"] == (0.125, -0.125) and result.outputs["11"] == {"text": ["-0.125"]}
    api = export_api(parse_workflow(prompt, registry), registry)
    assert {k: (v["class_type"], v["inputs"]) for k, v in api.items()} == \
        {k: (v["class_type"], v["inputs"]) for k, v in prompt.items()}
    ui = {n["id"]: n for n in export_ui(parse_workflow(prompt, registry), registry)["nodes"]}
    assert [o["name"] for o in ui[3]["outputs"]] == ["WIDTH", "HEIGHT"]  # as the DF_ class has them
    assert ui[3]["widgets_values"] == [True] and ui[7]["widgets_values"][1:] == ["w(.)", r"W\1", "RegEx"]


# The bare "Float" is ComfyUI-Logic's Float here (nodes/pack_nodes_mxlogic.py): it reads Derfuu's Value,
# typed or linked, as the pack's 0.5.0_demo.json uses it (a Float into Divide, its result into Integer).


def test_ui_save_with_derfuus_bare_float_runs(registry):
    nodes = [
        ui_node(1, "Float", [640], outputs=[("FLOAT", "FLOAT", [1])]),
        ui_node(2, "Divide", [1, 3], [("Numerator", "FLOAT", 1, True)], [("FLOAT", "FLOAT", [2, 3])]),
        ui_node(3, "Integer", [1], [("Value", "FLOAT", 2, True)], [("INT", "INT", [])]),
        ui_node(4, "Sum", [2.5, 0.25], outputs=[("FLOAT", "FLOAT", [4])]),
        ui_node(5, "Float", [1], [("Value", "FLOAT", 4, True)], [("FLOAT", "FLOAT", [5])]),  # Value linked
        ui_node(6, "Sum", [1, 1], [("Value_A", "FLOAT", 3, True), ("Value_B", "FLOAT", 5, True)],
                [("FLOAT", "FLOAT", [])]),
    ]
    links = [[1, 1, 0, 2, 0, "FLOAT"], [2, 2, 0, 3, 0, "FLOAT"], [3, 2, 0, 6, 0, "FLOAT"], [4, 4, 0, 5, 0, "FLOAT"],
             [5, 5, 0, 6, 1, "FLOAT"]]
    graph = ui_graph(nodes, links)
    values = run_graph(registry, graph, ["3", "6"]).values
    assert values["1"] == (640,) and values["2"] == (640 / 3,) and values["3"] == (int(640 / 3),)
    assert values["5"] == (2.5 + 0.25,) and values["6"] == (640 / 3 + (2.5 + 0.25),)
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert saved[1]["type"] == "Float" and saved[1]["widgets_values"] == [640]
    assert [i["name"] for i in saved[5]["inputs"]] == ["value"]  # written back in Logic's shape


def test_api_prompt_with_derfuus_bare_float_runs(registry):
    prompt = {
        "1": {"class_type": "Float", "inputs": {"Value": 1366.0}},
        "2": {"class_type": "Divide", "inputs": {"Numerator": ["1", 0], "Denominator": 4.0}},
        "3": {"class_type": "Integer", "inputs": {"Value": ["2", 0]}},
        "4": {"class_type": "Float", "inputs": {"Value": ["2", 0]}},
        "5": {"class_type": "DF_Sum", "inputs": {"Value_A": ["4", 0], "Value_B": ["1", 0]}},
    }
    values = run_graph(registry, prompt, ["3", "5"]).values
    assert values["2"] == (1366.0 / 4,) and values["3"] == (int(1366.0 / 4),) and values["4"] == (1366.0 / 4,)
    assert values["5"] == (1366.0 / 4 + 1366.0,)
    api = export_api(parse_workflow(prompt, registry), registry)
    assert api["1"]["inputs"] == {"value": 1366.0} and api["4"]["inputs"] == {"value": ["2", 0]}


def test_outputs_comfyui_names_by_type_carry_its_names_in_object_info_and_ui_saves(registry):
    """The pack names no outputs of Square root, Tuple to floats / ints and the earlier Get sizes:
    ComfyUI labels them by type (INT, INT, TUPLE), and so do /object_info and a UI save written
    afresh (ComfyAlias.output_names), while our editor keeps ours; the links still go by position."""
    from graphflow.server.comfyui_object_info import object_info
    info = object_info(registry)
    assert info["Square root"]["output_name"] == ["FLOAT", "FLOAT"]
    assert info["Get image size"]["output_name"] == ["INT", "INT", "TUPLE"]
    assert [o.name for o in registry.comfy_node("Get image size").output_specs] == ["WIDTH", "HEIGHT", "TUPLE"]
    prompt = {"1": {"class_type": "Tuple", "inputs": {"Value_A": 9, "Value_B": -4.5}},
              "2": {"class_type": "Tuple to ints", "inputs": {"Tuple": ["1", 0]}},
              "3": {"class_type": "DF_Square_root", "inputs": {"Value": ["2", 0]}}}
    workflow = parse_workflow(prompt, registry)
    ui = export_ui(workflow, registry)
    names = {n["type"]: [o["name"] for o in n["outputs"]] for n in ui["nodes"]}
    assert names["Tuple to ints"] == ["INT", "INT"] and names["DF_Square_root"] == ["FLOAT", "FLOAT"]
    assert export_api(workflow, registry)["3"]["inputs"] == {"Value": ["2", 0]}


def test_every_alias_names_as_many_outputs_as_it_exposes(builtin_registry):
    from graphflow.workflow import comfy_aliases
    for cls in builtin_registry:
        for alias in comfy_aliases(cls):
            if alias.output_names:
                exposed = len(alias.outputs) if alias.outputs is not None else len(cls.output_specs)
                assert len(alias.output_names) == exposed, (cls.node_type, alias.class_types)
