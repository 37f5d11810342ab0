"""ComfyMath's nodes (nodes/pack_nodes_comfymath.py): every operation of its float, int, bool,
number and vec tables against numpy / torch / math, the bounds on whole-number results (a huge
power or factorial refused at once), the errors naming their input, the conversions and the
SDXL resolution pickers, and a UI-format save and an API prompt with the pack's class names
that run and are written back unchanged."""

import math
import time

import numpy as np
import pytest
import torch

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_comfymath import FLOAT_BINARY_OPERATIONS, FLOAT_UNARY_CONDITIONS, FLOAT_UNARY_OPERATIONS, \
    INT_BINARY_OPERATIONS, INT_LIMIT, INT_UNARY_OPERATIONS, SDXL_EXTENDED_RESOLUTIONS, SDXL_RESOLUTIONS
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def cm(registry, name, **inputs):
    return call(registry, registry.comfy_node(name).node_type, **inputs)


# -- float ---------------------------------------------------------------------------------------

T = torch.float64
FLOAT_UNARY_REFERENCE = {
    "Neg": np.negative, "Inc": lambda a: np.add(a, 1), "Dec": lambda a: np.subtract(a, 1), "Abs": np.abs,
    "Sqr": np.square, "Cube": lambda a: np.power(a, 3), "Sqrt": np.sqrt, "Exp": np.exp, "Ln": np.log,
    "Log10": np.log10, "Log2": np.log2, "Sin": np.sin, "Cos": np.cos, "Tan": np.tan, "Asin": np.arcsin,
    "Acos": np.arccos, "Atan": np.arctan, "Sinh": np.sinh, "Cosh": np.cosh, "Tanh": np.tanh,
    "Asinh": np.arcsinh, "Acosh": np.arccosh, "Atanh": np.arctanh, "Round": np.round, "Floor": np.floor,
    "Ceil": np.ceil, "Trunc": np.trunc,
    "Erf": lambda a: torch.special.erf(torch.tensor(a, dtype=T)).item(),
    "Erfc": lambda a: torch.special.erfc(torch.tensor(a, dtype=T)).item(),
    "Gamma": lambda a: math.copysign(torch.exp(torch.lgamma(torch.tensor(a, dtype=T))).item(), math.gamma(a)),
    "Radians": np.deg2rad, "Degrees": np.rad2deg,
}


def test_the_float_tables_are_the_packs_in_its_order():
    assert list(FLOAT_UNARY_OPERATIONS) == list(FLOAT_UNARY_REFERENCE)
    assert list(FLOAT_BINARY_OPERATIONS) == ["Add", "Sub", "Mul", "Div", "Mod", "Pow", "FloorDiv", "Max", "Min",
                                             "Log", "Atan2"]
    assert list(INT_BINARY_OPERATIONS) == ["Add", "Sub", "Mul", "Div", "Mod", "Pow", "And", "Nand", "Or", "Nor",
                                           "Xor", "Xnor", "Shl", "Shr", "Max", "Min"]


@pytest.mark.parametrize("op", list(FLOAT_UNARY_REFERENCE))
@pytest.mark.parametrize("a", [0.4, 2.5, -0.7])
def test_float_unary_operations_equal_numpy_and_torch(registry, op, a):
    if op in ("Sqrt", "Ln", "Log10", "Log2") and a <= 0 or op in ("Asin", "Acos", "Atanh") and abs(a) >= 1 \
            or op == "Acosh" and a < 1:
        with pytest.raises(NodeInputError) as caught:
            cm(registry, "CM_FloatUnaryOperation", op=op, a=a)
        assert caught.value.input == "a"
        return
    got = cm(registry, "CM_FloatUnaryOperation", op=op, a=a)
    assert got == pytest.approx(float(FLOAT_UNARY_REFERENCE[op](a)), rel=1e-12, abs=1e-15)
    if op in ("Round", "Floor", "Ceil", "Trunc"):
        assert type(got) is int  # whole numbers, as the pack gives them


CONDITION_REFERENCE = {
    "IsZero": lambda a: a == 0, "IsPositive": lambda a: a > 0, "IsNegative": lambda a: a < 0,
    "IsNonZero": lambda a: a != 0, "IsPositiveInfinity": np.isposinf, "IsNegativeInfinity": np.isneginf,
    "IsNaN": np.isnan, "IsFinite": np.isfinite, "IsInfinite": np.isinf,
    "IsEven": lambda a: np.fmod(a, 2) == 0, "IsOdd": lambda a: np.isfinite(a) & (np.fmod(a, 2) != 0) | np.isnan(a)
    | np.isinf(a),
}


@pytest.mark.parametrize("op", list(FLOAT_UNARY_CONDITIONS))
def test_float_unary_conditions_equal_numpy(registry, op):
    """FLOAT widgets here take finite numbers only; a NUMBER (a link) may be inf or NaN too."""
    finite = [0.0, -0.0, 3.0, 4.0, -2.5]
    got = [cm(registry, "CM_FloatUnaryCondition", op=op, a=a) for a in finite]
    assert got == [bool(CONDITION_REFERENCE[op](np.float64(a))) for a in finite]
    values = finite + [math.inf, -math.inf, math.nan]
    number = [cm(registry, "CM_NumberUnaryCondition", op=op, a=a) for a in values]
    with np.errstate(invalid="ignore"):  # fmod of inf: NaN, as Python's inf % 2
        assert number == [bool(CONDITION_REFERENCE[op](np.float64(a))) for a in values]


FLOAT_BINARY_REFERENCE = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Mod": np.mod, "Pow": np.power,
    "FloorDiv": np.floor_divide, "Max": np.maximum, "Min": np.minimum, "Log": lambda a, b: np.log(a) / np.log(b),
    "Atan2": np.arctan2,
}


@pytest.mark.parametrize("op", list(FLOAT_BINARY_REFERENCE))
@pytest.mark.parametrize("a, b", [(7.5, 2.0), (0.3, 4.0), (-7.5, 2.0), (2.0, -0.5)])
def test_float_and_number_binary_operations_equal_numpy(registry, op, a, b):
    if op == "Log" and (a < 0 or b <= 0) or op == "Pow" and a < 0 and b != int(b):
        return  # refused: see test_float_errors_name_their_input
    want = float(FLOAT_BINARY_REFERENCE[op](np.float64(a), np.float64(b)))
    assert cm(registry, "CM_FloatBinaryOperation", op=op, a=a, b=b) == pytest.approx(want, rel=1e-12)
    assert cm(registry, "CM_NumberBinaryOperation", op=op, a=a, b=b) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("op, compare", [("Eq", np.equal), ("Neq", np.not_equal), ("Gt", np.greater),
                                         ("Gte", np.greater_equal), ("Lt", np.less), ("Lte", np.less_equal)])
def test_float_and_number_binary_conditions_equal_numpy(registry, op, compare):
    for a, b in [(1.0, 2.0), (2.0, 2.0), (3.0, 2.0)]:
        want = bool(compare(a, b))
        assert cm(registry, "CM_FloatBinaryCondition", op=op, a=a, b=b) is want
        assert cm(registry, "CM_NumberBinaryCondition", op=op, a=int(a), b=b) is want
    assert cm(registry, "CM_NumberBinaryCondition", op=op, a=math.nan, b=1.0) is bool(compare(math.nan, 1.0))


@pytest.mark.parametrize("op, a, b, input_name", [
    ("Div", 1.0, 0.0, "b"), ("Mod", 1.0, 0.0, "b"), ("FloorDiv", 1.0, 0.0, "b"), ("Pow", 0.0, -1.0, "b"),
    ("Pow", -8.0, 1 / 3, "b"), ("Pow", 10.0, 400.0, "b"), ("Log", 2.0, 1.0, "b"), ("Log", -2.0, 3.0, "a")])
def test_float_errors_name_their_input(registry, op, a, b, input_name):
    with pytest.raises(NodeInputError) as caught:
        cm(registry, "CM_FloatBinaryOperation", op=op, a=a, b=b)
    assert caught.value.input == input_name


def test_float_unary_overflow_and_poles_are_errors(registry):
    for op, a in [("Exp", 1000.0), ("Gamma", 0.0), ("Gamma", 500.0)]:
        with pytest.raises(NodeInputError) as caught:
            cm(registry, "CM_FloatUnaryOperation", op=op, a=a)
        assert caught.value.input == "a"
    for op, a in [("Round", math.inf), ("Floor", math.nan)]:  # a NUMBER may be inf or NaN
        with pytest.raises(NodeInputError) as caught:
            cm(registry, "CM_NumberUnaryOperation", op=op, a=a)
        assert caught.value.input == "a"


def test_float_conditions_and_operations_take_a_linked_inf_or_nan(registry):
    """A linked FLOAT may be inf or NaN on the float operations and conditions (an overflow from
    1e308 * 10, then inf - inf), as ComfyUI lets a linked value through unchecked; a typed-in one
    is still finite, and a FLOAT input that isn't meant to test it (FloatToInt) refuses it."""
    prompt = {"1": {"class_type": "CM_FloatBinaryOperation", "inputs": {"op": "Mul", "a": 1e308, "b": 10.0}},
              "2": {"class_type": "CM_FloatUnaryCondition", "inputs": {"op": "IsInfinite", "a": ["1", 0]}},
              "3": {"class_type": "CM_FloatBinaryOperation", "inputs": {"op": "Sub", "a": ["1", 0], "b": ["1", 0]}},
              "4": {"class_type": "CM_FloatUnaryCondition", "inputs": {"op": "IsNaN", "a": ["3", 0]}},
              "5": {"class_type": "CM_FloatBinaryCondition", "inputs": {"op": "Gt", "a": ["1", 0], "b": 1e308}},
              "6": {"class_type": "CM_FloatUnaryOperation", "inputs": {"op": "Neg", "a": ["1", 0]}},
              "7": {"class_type": "CM_FloatToNumber", "inputs": {"a": ["6", 0]}},
              "8": {"class_type": "CM_NumberUnaryCondition", "inputs": {"op": "IsNegativeInfinity", "a": ["7", 0]}}}
    result = run_graph(registry, prompt, ["2", "4", "5", "8"])
    assert result.values["1"] == (math.inf,) and math.isnan(result.values["3"][0])
    assert [result.values[k] for k in ("2", "4", "5", "8")] == [(True,), (True,), (True,), (True,)]
    refused = Executor(registry).run(parse_workflow(
        {"1": prompt["1"], "2": {"class_type": "CM_FloatToInt", "inputs": {"a": ["1", 0]}}}, registry), outputs=["2"])
    assert refused.status == "error" and refused.error["node_id"] == "2" and refused.error["input"] == "a"
    cls = registry.comfy_node("CM_FloatUnaryCondition")
    for typed in (math.inf, math.nan):
        with pytest.raises(Exception):
            cls.widget_model.model_validate({"op": "IsInfinite", "a": typed})


def test_number_inputs_are_worked_on_as_floats_so_a_huge_power_cannot_hang(registry):
    """Whole NUMBERs (an API prompt's JSON ints) go through float arithmetic: 10 ** 10**9 is an
    overflow at once, not a billion-digit int."""
    start = time.monotonic()
    with pytest.raises(NodeInputError) as caught:
        cm(registry, "CM_NumberBinaryOperation", op="Pow", a=10, b=10 ** 9)
    assert caught.value.input == "b" and time.monotonic() - start < 1
    assert cm(registry, "CM_NumberUnaryOperation", op="Sqrt", a=16) == 4.0
    assert cm(registry, "CM_NumberUnaryOperation", op="Inc", a=True) == 2.0  # float(True), as the pack has it
    with pytest.raises(NodeInputError) as caught:
        cm(registry, "CM_NumberUnaryOperation", op="Sqrt", a="16")
    assert caught.value.input == "a"


# -- int -----------------------------------------------------------------------------------------

INT_UNARY_REFERENCE = {
    "Abs": np.abs, "Neg": np.negative, "Inc": lambda a: np.add(a, 1), "Dec": lambda a: np.subtract(a, 1),
    "Sqr": np.square, "Cube": lambda a: np.power(a, 3), "Not": np.invert,
    "Factorial": lambda a: round(math.exp(math.lgamma(a + 1))),
}


@pytest.mark.parametrize("op", list(INT_UNARY_OPERATIONS))
@pytest.mark.parametrize("a", [0, 5, -12])
def test_int_unary_operations_equal_numpy(registry, op, a):
    if op == "Factorial" and a < 0:
        with pytest.raises(NodeInputError) as caught:
            cm(registry, "CM_IntUnaryOperation", op=op, a=a)
        assert caught.value.input == "a"
        return
    assert cm(registry, "CM_IntUnaryOperation", op=op, a=a) == int(INT_UNARY_REFERENCE[op](np.int64(a)))


INT_BINARY_REFERENCE = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.floor_divide, "Mod": np.mod,
    "Pow": np.power, "And": np.bitwise_and, "Or": np.bitwise_or, "Xor": np.bitwise_xor,
    # the pack's own formulas for these three: (~a) & b, (~a) & b, (~a) ^ b
    "Nand": lambda a, b: np.bitwise_and(np.invert(a), b), "Nor": lambda a, b: np.bitwise_and(np.invert(a), b),
    "Xnor": lambda a, b: np.bitwise_xor(np.invert(a), b),
    "Shl": np.left_shift, "Shr": np.right_shift, "Max": np.maximum, "Min": np.minimum,
}


@pytest.mark.parametrize("op", list(INT_BINARY_REFERENCE))
@pytest.mark.parametrize("a, b", [(13, 4), (-13, 4), (6, 3), (-7, 2)])
def test_int_binary_operations_equal_numpy(registry, op, a, b):
    want = int(INT_BINARY_REFERENCE[op](np.int64(a), np.int64(b)))
    assert cm(registry, "CM_IntBinaryOperation", op=op, a=a, b=b) == want


@pytest.mark.parametrize("op, compare", [("Eq", np.equal), ("Neq", np.not_equal), ("Gt", np.greater),
                                         ("Lt", np.less), ("Geq", np.greater_equal), ("Leq", np.less_equal)])
def test_int_binary_conditions_equal_numpy(registry, op, compare):
    for a, b in [(1, 2), (2, 2), (3, 2)]:
        assert cm(registry, "CM_IntBinaryCondition", op=op, a=a, b=b) is bool(compare(a, b))


def test_int_unary_conditions(registry):
    for a in (-3, -2, 0, 7):
        got = [cm(registry, "CM_IntUnaryCondition", op=op, a=a)
               for op in ("IsZero", "IsNonZero", "IsPositive", "IsNegative", "IsEven", "IsOdd")]
        assert got == [a == 0, a != 0, a > 0, a < 0, np.remainder(a, 2) == 0, np.remainder(a, 2) == 1]


@pytest.mark.parametrize("op, a, b", [("Pow", 2, 64), ("Pow", 3, 41), ("Pow", -2, 10 ** 18),
                                      ("Pow", 10 ** 18, 10 ** 18),
                                      ("Shl", 1, 64), ("Shl", 1, 10 ** 18), ("Mul", 2 ** 40, 2 ** 40),
                                      ("Add", INT_LIMIT, 1), ("Pow", 2, -1), ("Div", 5, 0), ("Mod", 5, 0),
                                      ("Shr", 5, -1)])
def test_int_results_past_the_limit_and_bad_operands_are_refused_at_once(registry, op, a, b):
    start = time.monotonic()
    with pytest.raises(NodeInputError) as caught:
        cm(registry, "CM_IntBinaryOperation", op=op, a=a, b=b)
    assert caught.value.input == "b"
    assert time.monotonic() - start < 1


def test_int_powers_and_factorials_up_to_the_limit(registry):
    assert cm(registry, "CM_IntBinaryOperation", op="Pow", a=2, b=63) == 2 ** 63
    assert cm(registry, "CM_IntBinaryOperation", op="Pow", a=-1, b=10 ** 18) == 1  # |a| <= 1: any exponent
    assert cm(registry, "CM_IntBinaryOperation", op="Shl", a=0, b=10 ** 18) == 0
    assert cm(registry, "CM_IntUnaryOperation", op="Factorial", a=20) == math.factorial(20)
    start = time.monotonic()
    for a in (21, 10 ** 18):
        with pytest.raises(NodeInputError) as caught:
            cm(registry, "CM_IntUnaryOperation", op="Factorial", a=a)
        assert caught.value.input == "a"
    assert time.monotonic() - start < 1


def test_int_widgets_are_bounded(registry):
    cls = registry.comfy_node("CM_IntBinaryOperation")
    with pytest.raises(Exception):
        cls.widget_model.model_validate({"op": "Add", "a": INT_LIMIT + 1, "b": 0})


# -- bool ----------------------------------------------------------------------------------------

BOOL_REFERENCE = {
    "Nor": lambda a, b: np.logical_not(np.logical_or(a, b)), "Xor": np.logical_xor,
    "Nand": lambda a, b: np.logical_not(np.logical_and(a, b)), "And": np.logical_and,
    "Xnor": lambda a, b: np.logical_not(np.logical_xor(a, b)), "Or": np.logical_or, "Eq": np.equal,
    "Neq": np.not_equal,
}


@pytest.mark.parametrize("op", list(BOOL_REFERENCE))
def test_bool_binary_operations_truth_tables(registry, op):
    for a in (False, True):
        for b in (False, True):
            assert cm(registry, "CM_BoolBinaryOperation", op=op, a=a, b=b) is bool(BOOL_REFERENCE[op](a, b))


def test_bool_not_and_conversions(registry):
    assert [cm(registry, "CM_BoolUnaryOperation", op="Not", a=a) for a in (False, True)] == [True, False]
    assert [cm(registry, "CM_BoolToInt", a=a) for a in (False, True)] == [0, 1]
    assert [cm(registry, "CM_IntToBool", a=a) for a in (0, 3, -1)] == [False, True, True]


# -- conversions ---------------------------------------------------------------------------------


def test_number_conversions(registry):
    for a in (2.7, -2.7, 0.0, 1e19, -1e19):  # 1e19 < 2**64 - 1 < 1e20
        assert cm(registry, "CM_FloatToInt", a=a) == math.trunc(a)
        assert cm(registry, "CM_NumberToInt", a=a) == math.trunc(a)
    assert cm(registry, "CM_NumberToInt", a=7) == 7
    assert [cm(registry, "CM_NumberToInt", a=a) for a in (INT_LIMIT, -INT_LIMIT)] == [INT_LIMIT, -INT_LIMIT]
    assert cm(registry, "CM_IntToFloat", a=7) == 7.0 and type(cm(registry, "CM_IntToFloat", a=7)) is float
    assert cm(registry, "CM_IntToNumber", a=7) == 7
    assert cm(registry, "CM_FloatToNumber", a=0.25) == 0.25
    assert cm(registry, "CM_NumberToFloat", a=3) == 3.0
    for a in (math.inf, math.nan):
        with pytest.raises(NodeInputError) as caught:
            cm(registry, "CM_NumberToInt", a=a)
        assert caught.value.input == "a"


def test_whole_numbers_past_the_limit_are_refused_naming_the_input(registry):
    """An INT holds +-(2**64 - 1): FloatToInt and NumberToInt refuse a bigger whole part (1e20,
    1e300, a NUMBER of 400 digits) rather than pass it on."""
    for name, a in [("CM_FloatToInt", 1e20), ("CM_FloatToInt", -1e300), ("CM_NumberToInt", 1e20),
                    ("CM_NumberToInt", 10 ** 400), ("CM_NumberToInt", -(INT_LIMIT + 1))]:
        with pytest.raises(NodeInputError) as caught:
            cm(registry, name, a=a)
        assert caught.value.input == "a" and "past" in str(caught.value), (name, a)


def test_errors_on_huge_numbers_tell_their_size(registry):
    """The messages about a whole number too big tell its size as a power of two, which can't
    itself fail (formatting 10**320 as a float overflows; 10**5000 has too many digits to print)."""
    with pytest.raises(NodeInputError) as caught:
        cm(registry, "CM_IntBinaryOperation", op="Pow", a=100000, b=64)  # 10**320: past the limit
    assert caught.value.input == "b" and f"about 2**{(10 ** 320).bit_length()}" in str(caught.value)
    for a in (10 ** 400, -(10 ** 5000)):
        with pytest.raises(NodeInputError) as caught:
            cm(registry, "CM_NumberToFloat", a=a)
        size = f"about {'-' if a < 0 else ''}2**{abs(a).bit_length()}"
        assert caught.value.input == "a" and size in str(caught.value)
        assert "too big for a float" in str(caught.value)
        with pytest.raises(NodeInputError) as caught:
            cm(registry, "CM_NumberUnaryOperation", op="Neg", a=a)
        assert caught.value.input == "a"


def test_compose_and_break_out_vectors(registry):
    assert cm(registry, "CM_ComposeVec2", x=1.0, y=2.0) == (1.0, 2.0)
    assert cm(registry, "CM_ComposeVec3", x=1.0, y=2.0, z=3.0) == (1.0, 2.0, 3.0)
    assert cm(registry, "CM_ComposeVec4", x=1.0, y=2.0, z=3.0, w=4.0) == (1.0, 2.0, 3.0, 4.0)
    assert cm(registry, "CM_BreakoutVec3", a=(1.0, 2.0, 3.0)) == (1.0, 2.0, 3.0)
    assert cm(registry, "CM_BreakoutVec4", a=[1, 2, 3, 4]) == (1.0, 2.0, 3.0, 4.0)
    with pytest.raises(NodeInputError) as caught:
        cm(registry, "CM_BreakoutVec2", a=(1.0, 2.0, 3.0))
    assert caught.value.input == "a"


# -- vectors -------------------------------------------------------------------------------------

VECTORS = {2: ((3.0, -4.0), (0.5, 2.0)), 3: ((1.0, 2.0, 2.0), (-3.0, 0.5, 4.0)),
           4: ((1.0, -1.0, 2.0, 0.5), (0.0, 3.0, -2.0, 1.0))}


@pytest.mark.parametrize("size", [2, 3, 4])
def test_vector_operations_equal_torch(registry, size):
    a, b = VECTORS[size]
    ta, tb = torch.tensor(a, dtype=T), torch.tensor(b, dtype=T)
    v = f"CM_Vec{size}"
    assert cm(registry, f"{v}UnaryOperation", op="Neg", a=a) == tuple((-ta).tolist())
    assert cm(registry, f"{v}UnaryOperation", op="Normalize", a=a) == \
        pytest.approx(torch.nn.functional.normalize(ta, dim=0).tolist(), rel=1e-12)
    assert cm(registry, f"{v}ToScalarUnaryOperation", op="Norm", a=a) == \
        pytest.approx(torch.linalg.vector_norm(ta).item(), rel=1e-12)
    assert cm(registry, f"{v}BinaryOperation", op="Add", a=a, b=b) == tuple((ta + tb).tolist())
    assert cm(registry, f"{v}BinaryOperation", op="Sub", a=a, b=b) == tuple((ta - tb).tolist())
    assert cm(registry, f"{v}ToScalarBinaryOperation", op="Dot", a=a, b=b) == pytest.approx(torch.dot(ta, tb).item())
    assert cm(registry, f"{v}ToScalarBinaryOperation", op="Distance", a=a, b=b) == \
        pytest.approx(torch.dist(ta, tb).item(), rel=1e-12)
    assert cm(registry, f"{v}ScalarOperation", op="Mul", a=a, b=2.5) == pytest.approx((ta * 2.5).tolist())
    assert cm(registry, f"{v}ScalarOperation", op="Div", a=a, b=4.0) == pytest.approx((ta / 4.0).tolist())
    unit = torch.nn.functional.normalize(ta, dim=0)
    for op, want in [("IsZero", not bool(ta.any())), ("IsNotZero", bool(ta.any())),
                     ("IsNormalized", torch.allclose(ta, unit)), ("IsNotNormalized", not torch.allclose(ta, unit))]:
        assert cm(registry, f"{v}UnaryCondition", op=op, a=a) is want
    assert cm(registry, f"{v}UnaryCondition", op="IsNormalized", a=tuple(unit.tolist())) is True
    assert cm(registry, f"{v}UnaryCondition", op="IsZero", a=(0.0,) * size) is True
    assert cm(registry, f"{v}BinaryCondition", op="Eq", a=a, b=tuple((ta + 1e-12).tolist())) is True
    assert cm(registry, f"{v}BinaryCondition", op="Neq", a=a, b=b) is True
    if size == 3:
        assert cm(registry, f"{v}BinaryOperation", op="Cross", a=a, b=b) == tuple(torch.linalg.cross(ta, tb).tolist())
    else:
        with pytest.raises(NodeInputError) as caught:  # the pack fails on these
            cm(registry, f"{v}BinaryOperation", op="Cross", a=a, b=b)
        assert caught.value.input == "op"


def test_vector_edge_values_are_the_packs(registry):
    """Normalize of a zero vector is NaNs and a division by zero infinities, as numpy gives them."""
    assert all(math.isnan(x) for x in cm(registry, "CM_Vec2UnaryOperation", op="Normalize", a=(0.0, 0.0)))
    assert cm(registry, "CM_Vec2ScalarOperation", op="Div", a=(1.0, -1.0), b=0.0) == (math.inf, -math.inf)
    with pytest.raises(NodeInputError) as caught:
        cm(registry, "CM_Vec3BinaryOperation", op="Add", a=(1.0, 2.0, 3.0), b=(1.0, 2.0))
    assert caught.value.input == "b"


# -- resolutions ---------------------------------------------------------------------------------


def nearest_by_hand(width, height, table):
    ratio = width / height
    best = None
    for row in table:  # the first of equal differences wins
        if best is None or abs(ratio - row[2]) < abs(ratio - best[2]):
            best = row
    return best[0], best[1]


def test_sdxl_resolutions(registry):
    assert cm(registry, "CM_SDXLResolution", resolution="832x1216") == (832, 1216)
    assert cm(registry, "CM_SDXLExtendedResolution", resolution="1984x512") == (1984, 512)
    assert registry.comfy_node("CM_SDXLResolution").input_specs["resolution"].widget.default == "1024x1024"
    for width, height in [(800, 600), (600, 800), (1920, 1080), (1000, 1000), (300, 1200), (2000, 100), (1000, 930)]:
        image = torch.rand(1, height, width, 3)
        for name, table in [("CM_NearestSDXLResolution", SDXL_RESOLUTIONS),
                            ("CM_NearestSDXLExtendedResolution", SDXL_EXTENDED_RESOLUTIONS)]:
            assert cm(registry, name, image=image) == nearest_by_hand(width, height, table)
    assert cm(registry, "CM_NearestSDXLResolution", image=torch.rand(1, 600, 800, 3)) == (1152, 896)
    # the pack's table lists 1024x960 as 1.8: a 16:9 picture lands on 1344x768 (1.76), one of 1.8 on 1024x960
    assert cm(registry, "CM_NearestSDXLExtendedResolution", image=torch.rand(1, 100, 180, 3)) == (1024, 960)


# -- graphs --------------------------------------------------------------------------------------


def test_ui_save_with_the_packs_nodes_runs_and_is_written_back(registry):
    """The editor saves only the widgets: op then a (and b); NUMBER, BOOL and VEC inputs are
    links with no widget, an INT link into a widget input names its widget."""
    nodes = [
        ui_node(1, "CM_IntBinaryOperation", ["Mul", 6, 7], outputs=[("INT", "INT", [1])]),
        ui_node(2, "CM_IntToFloat", [0], [("a", "INT", 1, True)], [("FLOAT", "FLOAT", [2])]),
        ui_node(3, "CM_FloatToNumber", [0.0], [("a", "FLOAT", 2, True)], [("NUMBER", "NUMBER", [3])]),
        ui_node(4, "CM_NumberUnaryOperation", ["Sqrt"], [("a", "NUMBER", 3, False)], [("NUMBER", "NUMBER", [])]),
        ui_node(5, "CM_ComposeVec3", [1.0, 2.0, 2.0], outputs=[("VEC3", "VEC3", [4])]),
        ui_node(6, "CM_Vec3ToScalarUnaryOperation", ["Norm"], [("a", "VEC3", 4, False)], [("FLOAT", "FLOAT", [5])]),
        ui_node(7, "CM_FloatUnaryCondition", ["IsPositive", 0.0], [("a", "FLOAT", 5, True)],
                [("BOOL", "BOOL", [6])]),
        ui_node(8, "CM_BoolToInt", [], [("a", "BOOL", 6, False)], [("INT", "INT", [])]),
        ui_node(9, "CM_SDXLResolution", ["1216x832"], outputs=[("width", "INT", []), ("height", "INT", [])]),
    ]
    links = [[1, 1, 0, 2, 0, "INT"], [2, 2, 0, 3, 0, "FLOAT"], [3, 3, 0, 4, 0, "NUMBER"], [4, 5, 0, 6, 0, "VEC3"],
             [5, 6, 0, 7, 0, "FLOAT"], [6, 7, 0, 8, 0, "BOOL"]]
    graph = ui_graph(nodes, links)
    workflow = parse_workflow(graph, registry)
    assert workflow.nodes["1"].inputs == {"op": "Mul", "a": 6, "b": 7}
    result = run_graph(registry, graph, ["4", "8", "9"])
    assert result.values["4"] == (math.sqrt(42),)
    assert result.values["6"] == (3.0,)
    assert result.values["8"] == (1,)
    assert result.values["9"] == (1216, 832)
    saved = {n["id"]: n for n in export_ui(workflow, registry)["nodes"]}
    assert {i: n["type"] for i, n in saved.items()} == {n["id"]: n["type"] for n in nodes}
    for node in nodes:
        assert saved[node["id"]]["widgets_values"] == node["widgets_values"], node["type"]


def test_api_prompt_with_the_packs_class_names_runs_and_round_trips(registry):
    prompt = {
        "1": {"class_type": "CM_FloatBinaryOperation", "inputs": {"op": "Pow", "a": 2.0, "b": 0.5}},
        "2": {"class_type": "CM_FloatToInt", "inputs": {"a": ["1", 0]}},
        "3": {"class_type": "CM_IntBinaryCondition", "inputs": {"op": "Geq", "a": ["2", 0], "b": 1}},
        "4": {"class_type": "CM_ComposeVec2", "inputs": {"x": 3.0, "y": 4.0}},
        "5": {"class_type": "CM_Vec2ScalarOperation", "inputs": {"op": "Div", "a": ["4", 0], "b": ["1", 0]}},
        "6": {"class_type": "CM_BreakoutVec2", "inputs": {"a": ["5", 0]}},
        "7": {"class_type": "CM_BoolBinaryOperation", "inputs": {"op": "Xor", "a": True, "b": False}},
        "8": {"class_type": "CM_IntToNumber", "inputs": {"a": ["2", 0]}},
        "9": {"class_type": "CM_NumberBinaryCondition", "inputs": {"op": "Lt", "a": ["8", 0], "b": ["8", 0]}},
    }
    result = run_graph(registry, prompt, ["3", "6", "7", "9"])
    assert result.values["1"] == (math.sqrt(2),)
    assert result.values["3"] == (True,)
    assert result.values["6"] == pytest.approx((3 / math.sqrt(2), 4 / math.sqrt(2)))
    assert result.values["7"] == (True,) and result.values["9"] == (False,)
    api = export_api(parse_workflow(prompt, registry), registry)
    assert {k: (v["class_type"], v["inputs"]) for k, v in api.items()} == \
        {k: (v["class_type"], v["inputs"]) for k, v in prompt.items()}


def test_a_link_of_the_wrong_type_is_refused(registry):
    """The pack's conditions give BOOL, which ComfyUI's BOOLEAN inputs don't take (nor the editor)."""
    prompt = {"1": {"class_type": "CM_IntUnaryCondition", "inputs": {"op": "IsZero", "a": 0}},
              "2": {"class_type": "CM_BoolUnaryOperation", "inputs": {"op": "Not", "a": ["1", 0]}}}
    from graphflow.executor import Executor
    result = Executor(registry).run(parse_workflow(prompt, registry), outputs=["2"])
    assert not result.ok
    assert any("BOOL" in p.message for p in result.problems)
