"""ComfyMath's (evanspearman/ComfyMath) nodes under the pack's class names, inputs and outputs:
the float, int, bool and number operations and conditions (CM_FloatUnaryOperation ...
CM_NumberBinaryCondition: one node per family, its operation an `op` list in the pack's order),
the vec2 / vec3 / vec4 operations (CM_Vec2UnaryOperation ... CM_Vec4ScalarOperation), the
conversions (CM_BoolToInt, CM_IntToBool, CM_FloatToInt, CM_IntToFloat, CM_IntToNumber,
CM_NumberToInt, CM_FloatToNumber, CM_NumberToFloat, CM_ComposeVec2..4, CM_BreakoutVec2..4) and the
resolution helpers (CM_SDXLResolution, CM_NearestSDXLResolution, CM_SDXLExtendedResolution,
CM_NearestSDXLExtendedResolution).

Read from the pack's source: float.py at 4f02c591c7fa708f3238c6671d40171168697393, bool.py at
bbcd9459129bb90a208729695d909f4dd1a84a2b, vec.py at 657d79c8c76a39a053791c8010daa4678576110c,
graphics.py at 7ec5ea45df29905648dec2a3d0ccb205f4413024, __init__.py at
d42a49d233dd8a68e57ed1dd35ae87623db77e1d, and the stored copies of the operation-table int.py,
the CM_ conversions' convert.py and the extended-resolution graphics.py (index ids 2844984324,
2656151433, 3381332923; the index names no commit for them).

Left out: control.py's old unprefixed If nodes (IntIf, ImageIf ...: no longer in the pack) and
the Fill vec nodes (written in convert.py but never registered by the pack). The pack's types are
kept as it declares them: its conditions give BOOL (not ComfyUI's BOOLEAN), its bool operations
take and give BOOLEAN, and NUMBER, BOOL and VEC inputs are links only (the editor makes no
widget for them).

The float operations and conditions, and FloatToNumber, take a linked inf or NaN as the pack
does (ComfyUI checks no linked value); a typed-in FLOAT is finite, as everywhere here.

Deliberately unlike the pack (which runs Python on the numbers as they come): whole-number
results are held to +-INT_LIMIT (an int ** int or a factorial could otherwise hang the server),
float operations work on floats, and what Python would fail on (division by zero, a math domain
error, an overflow, a complex power) is a NodeInputError naming the input."""

from __future__ import annotations

import math
import operator

from graphflow.api import BOOLEAN, FLOAT, IMAGE, INT, Bool, Choice, ComfyAlias, Float, Int, Node, NodeInputError, \
    socket_type
from nodes.pack_nodes import INT_LIMIT

COMFY_PACK = "ComfyMath"  # the custom node pack this module's ComfyUI classes come from

INT_LIMIT_BITS = INT_LIMIT.bit_length()

BOOL = socket_type("BOOL", "#7986cb", "ComfyMath's true/false (its conditions' type; ComfyUI's own is BOOLEAN)")
NUMBER = socket_type("NUMBER", "#4db6ac", "WAS Node Suite's number: an int or a float")  # as pack_nodes_was declares it
VEC2 = socket_type("VEC2", "#90caf9", "ComfyMath's 2-vector: (x, y)")
VEC3 = socket_type("VEC3", "#90caf9", "ComfyMath's 3-vector: (x, y, z)")
VEC4 = socket_type("VEC4", "#90caf9", "ComfyMath's 4-vector: (x, y, z, w)")

# -- operation tables: the pack's names, in the pack's order ----------------------------------

FLOAT_UNARY_OPERATIONS = {
    "Neg": operator.neg, "Inc": lambda a: a + 1, "Dec": lambda a: a - 1, "Abs": abs,
    "Sqr": lambda a: a * a, "Cube": lambda a: a * a * a, "Sqrt": math.sqrt, "Exp": math.exp, "Ln": math.log,
    "Log10": math.log10, "Log2": math.log2, "Sin": math.sin, "Cos": math.cos, "Tan": math.tan,
    "Asin": math.asin, "Acos": math.acos, "Atan": math.atan, "Sinh": math.sinh, "Cosh": math.cosh,
    "Tanh": math.tanh, "Asinh": math.asinh, "Acosh": math.acosh, "Atanh": math.atanh,
    # Round .. Trunc give whole numbers (Python ints), as in the pack
    "Round": round, "Floor": math.floor, "Ceil": math.ceil, "Trunc": math.trunc,
    "Erf": math.erf, "Erfc": math.erfc, "Gamma": math.gamma, "Radians": math.radians, "Degrees": math.degrees,
}
FLOAT_UNARY_CONDITIONS = {
    "IsZero": lambda a: a == 0.0, "IsPositive": lambda a: a > 0.0, "IsNegative": lambda a: a < 0.0,
    "IsNonZero": lambda a: a != 0.0, "IsPositiveInfinity": lambda a: math.isinf(a) and a > 0.0,
    "IsNegativeInfinity": lambda a: math.isinf(a) and a < 0.0, "IsNaN": math.isnan, "IsFinite": math.isfinite,
    "IsInfinite": math.isinf, "IsEven": lambda a: a % 2 == 0.0, "IsOdd": lambda a: a % 2 != 0.0,
}
FLOAT_BINARY_OPERATIONS = {
    "Add": operator.add, "Sub": operator.sub, "Mul": operator.mul, "Div": operator.truediv, "Mod": operator.mod,
    "Pow": operator.pow, "FloorDiv": operator.floordiv, "Max": max, "Min": min, "Log": math.log,
    "Atan2": math.atan2,
}
FLOAT_BINARY_CONDITIONS = {
    "Eq": operator.eq, "Neq": operator.ne, "Gt": operator.gt, "Gte": operator.ge, "Lt": operator.lt,
    "Lte": operator.le,
}

INT_UNARY_OPERATIONS = {
    "Abs": abs, "Neg": operator.neg, "Inc": lambda a: a + 1, "Dec": lambda a: a - 1, "Sqr": lambda a: a * a,
    "Cube": lambda a: a * a * a, "Not": operator.invert, "Factorial": math.factorial,
}
INT_UNARY_CONDITIONS = {
    "IsZero": lambda a: a == 0, "IsNonZero": lambda a: a != 0, "IsPositive": lambda a: a > 0,
    "IsNegative": lambda a: a < 0, "IsEven": lambda a: a % 2 == 0, "IsOdd": lambda a: a % 2 == 1,
}
INT_BINARY_OPERATIONS = {
    "Add": operator.add, "Sub": operator.sub, "Mul": operator.mul, "Div": operator.floordiv, "Mod": operator.mod,
    "Pow": operator.pow, "And": operator.and_,
    # the pack's Nand and Nor are both (~a) & b, and its Xnor (~a) ^ b (not ~(a & b) ...): kept so
    "Nand": lambda a, b: ~a & b, "Or": operator.or_, "Nor": lambda a, b: ~a & b, "Xor": operator.xor,
    "Xnor": lambda a, b: ~a ^ b, "Shl": operator.lshift, "Shr": operator.rshift, "Max": max, "Min": min,
}
INT_BINARY_CONDITIONS = {
    "Eq": operator.eq, "Neq": operator.ne, "Gt": operator.gt, "Lt": operator.lt, "Geq": operator.ge,
    "Leq": operator.le,
}

BOOL_UNARY_OPERATIONS = {"Not": operator.not_}
BOOL_BINARY_OPERATIONS = {
    "Nor": lambda a, b: not (a or b), "Xor": operator.xor, "Nand": lambda a, b: not (a and b),
    "And": lambda a, b: a and b, "Xnor": lambda a, b: not (a ^ b), "Or": lambda a, b: a or b,
    "Eq": operator.eq, "Neq": operator.ne,
}

# The vector operations' names (each family's op list); no name is in two families, so that
# _vector_functions() is one table of them all.
VEC_UNARY_OPERATIONS = ("Neg", "Normalize")
VEC_TO_SCALAR_UNARY_OPERATIONS = ("Norm",)
VEC_UNARY_CONDITIONS = ("IsZero", "IsNotZero", "IsNormalized", "IsNotNormalized")
VEC_BINARY_OPERATIONS = ("Add", "Sub", "Cross")
VEC_TO_SCALAR_BINARY_OPERATIONS = ("Dot", "Distance")
VEC_BINARY_CONDITIONS = ("Eq", "Neq")
VEC_SCALAR_OPERATIONS = ("Mul", "Div")


def _vector_functions(np) -> dict:
    """The pack's vector operations by name, on numpy arrays (numpy imported by the caller, at run time)."""
    norm = np.linalg.norm
    return {
        "Neg": np.negative, "Normalize": lambda a: a / norm(a), "Norm": norm,
        "IsZero": lambda a: not np.any(a), "IsNotZero": lambda a: bool(np.any(a)),
        "IsNormalized": lambda a: bool(np.allclose(a, a / norm(a))),
        "IsNotNormalized": lambda a: not np.allclose(a, a / norm(a)),
        "Add": np.add, "Sub": np.subtract, "Cross": np.cross, "Dot": np.dot, "Distance": lambda a, b: norm(a - b),
        "Eq": lambda a, b: bool(np.allclose(a, b)), "Neq": lambda a, b: not np.allclose(a, b),
        "Mul": np.multiply, "Div": np.divide,
    }


def _factorial_limit() -> int:
    n = 0
    while math.factorial(n + 1) <= INT_LIMIT:
        n += 1
    return n


FACTORIAL_LIMIT = _factorial_limit()  # the largest n whose n! fits INT_LIMIT (20)


def _value(op: str, function, *args, names=("a", "b")):
    """function(*args), what Python fails on told as a NodeInputError: division by zero names b,
    an overflow the last input (the exponent of a power), a domain error the first."""
    try:
        result = function(*args)
    except ZeroDivisionError:
        raise NodeInputError(names[-1], f"{op} of {_numbers(args)}: division by zero") from None
    except OverflowError:
        raise NodeInputError(names[-1], f"{op} of {_numbers(args)}: the result is too big for a float") from None
    except ValueError as e:
        raise NodeInputError(names[0], f"{op} of {_numbers(args)} is undefined ({e})") from None
    if isinstance(result, complex):
        raise NodeInputError(names[-1], f"{op} of {_numbers(args)} has no real value (a negative number "
                                        "to a fractional power)")
    return result


def _numbers(args) -> str:
    return ", ".join(repr(a) for a in args)


def _float(value, name: str) -> float:
    """A FLOAT or NUMBER input as a float (an int from an API prompt too, so int ** int never runs;
    true and false count 1 and 0, as the pack's float() makes them)."""
    if not isinstance(value, (int, float)):
        raise NodeInputError(name, f"expected a number, got {type(value).__name__} {value!r:.60}")
    try:
        return float(value)
    except OverflowError:  # only an int is too big: its size told, as its digits may be too many to print
        raise NodeInputError(name, f"{_magnitude(value)} is too big for a float") from None


def _magnitude(value: int) -> str:
    """A whole number's size, as a huge one can be told: formatting it as a float overflows and
    printing its digits is refused past 4300 of them."""
    return f"about {'-' if value < 0 else ''}2**{abs(value).bit_length()}"


def _whole(value: int, name: str) -> int:
    """value, if an INT holds it (+-INT_LIMIT)."""
    if abs(value) > INT_LIMIT:
        raise NodeInputError(name, f"the result ({_magnitude(value)}) is past +-{INT_LIMIT} (2**64 - 1), "
                                   "the most an INT holds")
    return value


def int_unary(op: str, a: int) -> int:
    """The pack's int unary operation op on a; Factorial only up to FACTORIAL_LIMIT (a bigger
    one is past INT_LIMIT), whole results held to INT_LIMIT."""
    if op == "Factorial" and a > FACTORIAL_LIMIT:
        raise NodeInputError("a", f"{a}! is past +-{INT_LIMIT}, the most an INT holds (at most {FACTORIAL_LIMIT}!)")
    return _whole(_value(op, INT_UNARY_OPERATIONS[op], a, names=("a",)), "a")


def int_binary(op: str, a: int, b: int) -> int:
    """The pack's int binary operation op on a and b, whole results held to INT_LIMIT: a power
    or left shift that would pass it is refused before it is worked out, and a negative exponent
    (a fraction, which the pack passes on as a float) is refused."""
    if op == "Pow":
        if b < 0:
            raise NodeInputError("b", f"a negative exponent ({b}) gives a fraction, not a whole number")
        if abs(a) > 1 and b > INT_LIMIT_BITS:  # |a| >= 2: past 2**64 already
            raise NodeInputError("b", f"{a} ** {b} is past +-{INT_LIMIT}, the most an INT holds")
    if op in ("Shl", "Shr") and b < 0:
        raise NodeInputError("b", f"a negative shift count ({b})")
    if op == "Shl" and a != 0 and b > INT_LIMIT_BITS:
        raise NodeInputError("b", f"{a} << {b} is past +-{INT_LIMIT}, the most an INT holds")
    return _whole(_value(op, INT_BINARY_OPERATIONS[op], a, b), "b")


# -- float -------------------------------------------------------------------------------------


class CMFloatUnaryOperation(Node):
    """A function of a number, as ComfyMath's FloatUnaryOperation does: Neg Inc Dec Abs Sqr Cube
    Sqrt Exp Ln Log10 Log2, the trigonometric and hyperbolic functions and their inverses, Round
    (half to even) Floor Ceil Trunc (these give whole numbers), Erf Erfc Gamma Radians Degrees.
    A value outside the function's domain (Sqrt of -1, Ln of 0) is an error naming `a`."""
    category = "math/float"
    op: str = Choice(tuple(FLOAT_UNARY_OPERATIONS), "Neg")
    a: float = Float(0.0, step=0.001, linked_nonfinite=True)
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("CM_FloatUnaryOperation",))

    def run(self):
        return _value(self.op, FLOAT_UNARY_OPERATIONS[self.op], _float(self.a, "a"), names=("a",))


class CMFloatUnaryCondition(Node):
    """Whether a number is zero, positive, negative, non-zero, +inf, -inf, NaN, finite, infinite,
    even or odd, as ComfyMath's FloatUnaryCondition tells it (a BOOL). A typed-in a is a finite
    number; a linked one may be inf or NaN (a float operation's overflow), as in the pack."""
    category = "math/float"
    op: str = Choice(tuple(FLOAT_UNARY_CONDITIONS), "IsZero")
    a: float = Float(0.0, step=0.001, linked_nonfinite=True)
    outputs = {"BOOL": BOOL}
    comfy = ComfyAlias(("CM_FloatUnaryCondition",))

    def run(self):
        return FLOAT_UNARY_CONDITIONS[self.op](_float(self.a, "a"))


class CMFloatBinaryOperation(Node):
    """a op b, as ComfyMath's FloatBinaryOperation works it out: Add Sub Mul Div Mod Pow FloorDiv
    Max Min, Log (of a to the base b) and Atan2 (of a / b). Division by zero, an overflow and a
    negative a to a fractional power are errors naming b; a domain error (Log of 0) names a."""
    category = "math/float"
    op: str = Choice(tuple(FLOAT_BINARY_OPERATIONS), "Add")
    a: float = Float(0.0, step=0.001, linked_nonfinite=True)
    b: float = Float(0.0, step=0.001, linked_nonfinite=True)
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("CM_FloatBinaryOperation",))

    def run(self):
        return _value(self.op, FLOAT_BINARY_OPERATIONS[self.op], _float(self.a, "a"), _float(self.b, "b"))


class CMFloatBinaryCondition(Node):
    """a compared with b (Eq Neq Gt Gte Lt Lte), as ComfyMath's FloatBinaryCondition does (a BOOL)."""
    category = "math/float"
    op: str = Choice(tuple(FLOAT_BINARY_CONDITIONS), "Eq")
    a: float = Float(0.0, step=0.001, linked_nonfinite=True)
    b: float = Float(0.0, step=0.001, linked_nonfinite=True)
    outputs = {"BOOL": BOOL}
    comfy = ComfyAlias(("CM_FloatBinaryCondition",))

    def run(self):
        return FLOAT_BINARY_CONDITIONS[self.op](_float(self.a, "a"), _float(self.b, "b"))


# -- int ---------------------------------------------------------------------------------------


class CMIntUnaryOperation(Node):
    """A function of a whole number, as ComfyMath's IntUnaryOperation does: Abs Neg Inc Dec Sqr
    Cube Not (bitwise, -a - 1) Factorial. Unlike the pack, a result past +-(2**64 - 1) (21! and
    up) is refused rather than worked out, and a negative factorial is an error."""
    category = "math/int"
    op: str = Choice(tuple(INT_UNARY_OPERATIONS), "Abs")
    a: int = Int(0, min=-INT_LIMIT, max=INT_LIMIT)
    outputs = {"INT": INT}
    comfy = ComfyAlias(("CM_IntUnaryOperation",))

    def run(self):
        return int_unary(self.op, self.a)


class CMIntUnaryCondition(Node):
    """Whether a whole number is zero, non-zero, positive, negative, even or odd, as ComfyMath's
    IntUnaryCondition tells it (a BOOL)."""
    category = "math/int"
    op: str = Choice(tuple(INT_UNARY_CONDITIONS), "IsZero")
    a: int = Int(0, min=-INT_LIMIT, max=INT_LIMIT)
    outputs = {"BOOL": BOOL}
    comfy = ComfyAlias(("CM_IntUnaryCondition",))

    def run(self):
        return INT_UNARY_CONDITIONS[self.op](self.a)


class CMIntBinaryOperation(Node):
    """a op b on whole numbers, as ComfyMath's IntBinaryOperation works it out: Add Sub Mul, Div
    (floor division) Mod (Python's: the sign of b), Pow, the bitwise And Or Xor, Shl Shr, Max
    Min. As in the pack, its Nand and Nor both give (~a) & b and its Xnor (~a) ^ b. Unlike the
    pack, a result past +-(2**64 - 1) is refused (a power or shift before it is worked out, so
    that a huge one can't hang the server), and so is a negative exponent (the pack gives a
    fraction on its INT output); division by zero is an error naming b."""
    category = "math/int"
    op: str = Choice(tuple(INT_BINARY_OPERATIONS), "Add")
    a: int = Int(0, min=-INT_LIMIT, max=INT_LIMIT)
    b: int = Int(0, min=-INT_LIMIT, max=INT_LIMIT)
    outputs = {"INT": INT}
    comfy = ComfyAlias(("CM_IntBinaryOperation",))

    def run(self):
        return int_binary(self.op, self.a, self.b)


class CMIntBinaryCondition(Node):
    """a compared with b (Eq Neq Gt Lt Geq Leq), as ComfyMath's IntBinaryCondition does (a BOOL)."""
    category = "math/int"
    op: str = Choice(tuple(INT_BINARY_CONDITIONS), "Eq")
    a: int = Int(0, min=-INT_LIMIT, max=INT_LIMIT)
    b: int = Int(0, min=-INT_LIMIT, max=INT_LIMIT)
    outputs = {"BOOL": BOOL}
    comfy = ComfyAlias(("CM_IntBinaryCondition",))

    def run(self):
        return INT_BINARY_CONDITIONS[self.op](self.a, self.b)


# -- bool --------------------------------------------------------------------------------------


class CMBoolUnaryOperation(Node):
    """Not a, as ComfyMath's BoolUnaryOperation does."""
    category = "math/bool"
    op: str = Choice(tuple(BOOL_UNARY_OPERATIONS), "Not")
    a: bool = Bool(False)
    outputs = {"BOOLEAN": BOOLEAN}
    comfy = ComfyAlias(("CM_BoolUnaryOperation",))

    def run(self):
        return BOOL_UNARY_OPERATIONS[self.op](self.a)


class CMBoolBinaryOperation(Node):
    """a op b on true/false, as ComfyMath's BoolBinaryOperation does: Nor Xor Nand And Xnor Or Eq Neq."""
    category = "math/bool"
    op: str = Choice(tuple(BOOL_BINARY_OPERATIONS), "Nor")
    a: bool = Bool(False)
    b: bool = Bool(False)
    outputs = {"BOOLEAN": BOOLEAN}
    comfy = ComfyAlias(("CM_BoolBinaryOperation",))

    def run(self):
        return bool(BOOL_BINARY_OPERATIONS[self.op](self.a, self.b))


# -- number (ComfyMath's float operations on WAS Node Suite's NUMBER) -------------------------


class CMNumberUnaryOperation(Node):
    """FloatUnaryOperation's functions on a NUMBER (an int or float, worked on as a float), as
    ComfyMath's NumberUnaryOperation does; gives a NUMBER."""
    category = "math/number"
    op: str = Choice(tuple(FLOAT_UNARY_OPERATIONS), "Neg")
    a: NUMBER
    outputs = {"NUMBER": NUMBER}
    comfy = ComfyAlias(("CM_NumberUnaryOperation",))

    def run(self):
        return _value(self.op, FLOAT_UNARY_OPERATIONS[self.op], _float(self.a, "a"), names=("a",))


class CMNumberUnaryCondition(Node):
    """FloatUnaryCondition's tests of a NUMBER, as ComfyMath's NumberUnaryCondition does (a BOOL)."""
    category = "math/number"
    op: str = Choice(tuple(FLOAT_UNARY_CONDITIONS), "IsZero")
    a: NUMBER
    outputs = {"BOOL": BOOL}
    comfy = ComfyAlias(("CM_NumberUnaryCondition",))

    def run(self):
        return FLOAT_UNARY_CONDITIONS[self.op](_float(self.a, "a"))


class CMNumberBinaryOperation(Node):
    """FloatBinaryOperation's a op b on two NUMBERs (worked on as floats), as ComfyMath's
    NumberBinaryOperation does; gives a NUMBER."""
    category = "math/number"
    op: str = Choice(tuple(FLOAT_BINARY_OPERATIONS), "Add")
    a: NUMBER
    b: NUMBER
    outputs = {"NUMBER": NUMBER}
    comfy = ComfyAlias(("CM_NumberBinaryOperation",))

    def run(self):
        return _value(self.op, FLOAT_BINARY_OPERATIONS[self.op], _float(self.a, "a"), _float(self.b, "b"))


class CMNumberBinaryCondition(Node):
    """Two NUMBERs compared (Eq Neq Gt Gte Lt Lte), as ComfyMath's NumberBinaryCondition does (a BOOL)."""
    category = "math/float"  # sic: the pack files this one under float
    op: str = Choice(tuple(FLOAT_BINARY_CONDITIONS), "Eq")
    a: NUMBER
    b: NUMBER
    outputs = {"BOOL": BOOL}
    comfy = ComfyAlias(("CM_NumberBinaryCondition",))

    def run(self):
        return FLOAT_BINARY_CONDITIONS[self.op](_float(self.a, "a"), _float(self.b, "b"))


# -- vec2 / vec3 / vec4 ------------------------------------------------------------------------


def _vector(value, size: int, name: str):
    """A VEC input as a float64 numpy array of its size."""
    import numpy as np

    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.shape != (size,):
        raise NodeInputError(name, f"expected a VEC{size} ({size} numbers), got {value!r:.60}")
    return array


def _as_tuple(array) -> tuple:
    return tuple(float(x) for x in array)


def vec_value(op: str, size: int, *operands):
    """The pack's vector operation op on the operands (arrays, and for Mul / Div a number),
    numpy's inf and NaN kept as the pack gives them (Normalize of a zero vector is NaNs); Cross,
    numpy's 3-vector cross product, only for VEC3."""
    import numpy as np

    if op == "Cross" and size != 3:
        raise NodeInputError("op", f"Cross needs 3-vectors; for VEC{size} the pack fails")
    with np.errstate(all="ignore"):
        return _vector_functions(np)[op](*operands)


class _VecUnaryOperation(Node):
    size = 0
    op: str = Choice(VEC_UNARY_OPERATIONS, "Neg")

    def run(self):
        return _as_tuple(vec_value(self.op, self.size, _vector(self.a, self.size, "a")))


class _VecToScalarUnaryOperation(Node):
    size = 0
    op: str = Choice(VEC_TO_SCALAR_UNARY_OPERATIONS, "Norm")
    outputs = {"FLOAT": FLOAT}

    def run(self):
        return float(vec_value(self.op, self.size, _vector(self.a, self.size, "a")))


class _VecUnaryCondition(Node):
    size = 0
    op: str = Choice(VEC_UNARY_CONDITIONS, "IsZero")
    outputs = {"BOOL": BOOL}

    def run(self):
        return bool(vec_value(self.op, self.size, _vector(self.a, self.size, "a")))


class _VecBinaryOperation(Node):
    size = 0
    op: str = Choice(VEC_BINARY_OPERATIONS, "Add")

    def run(self):
        a, b = _vector(self.a, self.size, "a"), _vector(self.b, self.size, "b")
        return _as_tuple(vec_value(self.op, self.size, a, b))


class _VecToScalarBinaryOperation(Node):
    size = 0
    op: str = Choice(VEC_TO_SCALAR_BINARY_OPERATIONS, "Dot")
    outputs = {"FLOAT": FLOAT}

    def run(self):
        a, b = _vector(self.a, self.size, "a"), _vector(self.b, self.size, "b")
        return float(vec_value(self.op, self.size, a, b))


class _VecBinaryCondition(Node):
    size = 0
    op: str = Choice(VEC_BINARY_CONDITIONS, "Eq")
    outputs = {"BOOL": BOOL}

    def run(self):
        a, b = _vector(self.a, self.size, "a"), _vector(self.b, self.size, "b")
        return bool(vec_value(self.op, self.size, a, b))


class _VecScalarOperation(Node):
    size = 0
    op: str = Choice(VEC_SCALAR_OPERATIONS, "Mul")

    def run(self):
        a = _vector(self.a, self.size, "a")
        return _as_tuple(vec_value(self.op, self.size, a, _float(self.b, "b")))


class CMVec2UnaryOperation(_VecUnaryOperation):
    """Neg or Normalize (a / |a|; NaNs for a zero vector, as in the pack) of a VEC2, as ComfyMath's
    Vec2UnaryOperation does."""
    category = "math/vec2"
    size = 2
    a: VEC2
    outputs = {"VEC2": VEC2}
    comfy = ComfyAlias(("CM_Vec2UnaryOperation",))


class CMVec3UnaryOperation(_VecUnaryOperation):
    """Neg or Normalize (a / |a|; NaNs for a zero vector, as in the pack) of a VEC3, as ComfyMath's
    Vec3UnaryOperation does."""
    category = "math/vec3"
    size = 3
    a: VEC3
    outputs = {"VEC3": VEC3}
    comfy = ComfyAlias(("CM_Vec3UnaryOperation",))


class CMVec4UnaryOperation(_VecUnaryOperation):
    """Neg or Normalize (a / |a|; NaNs for a zero vector, as in the pack) of a VEC4, as ComfyMath's
    Vec4UnaryOperation does."""
    category = "math/vec4"
    size = 4
    a: VEC4
    outputs = {"VEC4": VEC4}
    comfy = ComfyAlias(("CM_Vec4UnaryOperation",))


class CMVec2ToScalarUnaryOperation(_VecToScalarUnaryOperation):
    """Norm (length) of a VEC2, as ComfyMath's Vec2ToScalarUnaryOperation gives it."""
    category = "math/vec2"
    size = 2
    a: VEC2
    comfy = ComfyAlias(("CM_Vec2ToScalarUnaryOperation",))


class CMVec3ToScalarUnaryOperation(_VecToScalarUnaryOperation):
    """Norm (length) of a VEC3, as ComfyMath's Vec3ToScalarUnaryOperation gives it."""
    category = "math/vec3"
    size = 3
    a: VEC3
    comfy = ComfyAlias(("CM_Vec3ToScalarUnaryOperation",))


class CMVec4ToScalarUnaryOperation(_VecToScalarUnaryOperation):
    """Norm (length) of a VEC4, as ComfyMath's Vec4ToScalarUnaryOperation gives it."""
    category = "math/vec4"
    size = 4
    a: VEC4
    comfy = ComfyAlias(("CM_Vec4ToScalarUnaryOperation",))


class CMVec2UnaryCondition(_VecUnaryCondition):
    """Whether a VEC2 IsZero, IsNotZero, IsNormalized or IsNotNormalized (numpy's allclose), as
    ComfyMath's Vec2UnaryCondition tells it (a BOOL)."""
    category = "math/vec2"
    size = 2
    a: VEC2
    comfy = ComfyAlias(("CM_Vec2UnaryCondition",))


class CMVec3UnaryCondition(_VecUnaryCondition):
    """Whether a VEC3 IsZero, IsNotZero, IsNormalized or IsNotNormalized (numpy's allclose), as
    ComfyMath's Vec3UnaryCondition tells it (a BOOL)."""
    category = "math/vec3"
    size = 3
    a: VEC3
    comfy = ComfyAlias(("CM_Vec3UnaryCondition",))


class CMVec4UnaryCondition(_VecUnaryCondition):
    """Whether a VEC4 IsZero, IsNotZero, IsNormalized or IsNotNormalized (numpy's allclose), as
    ComfyMath's Vec4UnaryCondition tells it (a BOOL)."""
    category = "math/vec4"
    size = 4
    a: VEC4
    comfy = ComfyAlias(("CM_Vec4UnaryCondition",))


class CMVec2BinaryOperation(_VecBinaryOperation):
    """Add or Sub of two VEC2s, as ComfyMath's Vec2BinaryOperation does (its Cross fails in the
    pack and is an error here)."""
    category = "math/vec2"
    size = 2
    a: VEC2
    b: VEC2
    outputs = {"VEC2": VEC2}
    comfy = ComfyAlias(("CM_Vec2BinaryOperation",))


class CMVec3BinaryOperation(_VecBinaryOperation):
    """Add, Sub or Cross (product) of two VEC3s, as ComfyMath's Vec3BinaryOperation does."""
    category = "math/vec3"
    size = 3
    a: VEC3
    b: VEC3
    outputs = {"VEC3": VEC3}
    comfy = ComfyAlias(("CM_Vec3BinaryOperation",))


class CMVec4BinaryOperation(_VecBinaryOperation):
    """Add or Sub of two VEC4s, as ComfyMath's Vec4BinaryOperation does (its Cross fails in the
    pack and is an error here)."""
    category = "math/vec4"
    size = 4
    a: VEC4
    b: VEC4
    outputs = {"VEC4": VEC4}
    comfy = ComfyAlias(("CM_Vec4BinaryOperation",))


class CMVec2ToScalarBinaryOperation(_VecToScalarBinaryOperation):
    """Dot product or Distance of two VEC2s, as ComfyMath's Vec2ToScalarBinaryOperation gives it."""
    category = "math/vec2"
    size = 2
    a: VEC2
    b: VEC2
    comfy = ComfyAlias(("CM_Vec2ToScalarBinaryOperation",))


class CMVec3ToScalarBinaryOperation(_VecToScalarBinaryOperation):
    """Dot product or Distance of two VEC3s, as ComfyMath's Vec3ToScalarBinaryOperation gives it."""
    category = "math/vec3"
    size = 3
    a: VEC3
    b: VEC3
    comfy = ComfyAlias(("CM_Vec3ToScalarBinaryOperation",))


class CMVec4ToScalarBinaryOperation(_VecToScalarBinaryOperation):
    """Dot product or Distance of two VEC4s, as ComfyMath's Vec4ToScalarBinaryOperation gives it."""
    category = "math/vec4"
    size = 4
    a: VEC4
    b: VEC4
    comfy = ComfyAlias(("CM_Vec4ToScalarBinaryOperation",))


class CMVec2BinaryCondition(_VecBinaryCondition):
    """Whether two VEC2s are (Eq) or are not (Neq) equal within numpy's allclose, as ComfyMath's
    Vec2BinaryCondition tells it (a BOOL)."""
    category = "math/vec2"
    size = 2
    a: VEC2
    b: VEC2
    comfy = ComfyAlias(("CM_Vec2BinaryCondition",))


class CMVec3BinaryCondition(_VecBinaryCondition):
    """Whether two VEC3s are (Eq) or are not (Neq) equal within numpy's allclose, as ComfyMath's
    Vec3BinaryCondition tells it (a BOOL)."""
    category = "math/vec3"
    size = 3
    a: VEC3
    b: VEC3
    comfy = ComfyAlias(("CM_Vec3BinaryCondition",))


class CMVec4BinaryCondition(_VecBinaryCondition):
    """Whether two VEC4s are (Eq) or are not (Neq) equal within numpy's allclose, as ComfyMath's
    Vec4BinaryCondition tells it (a BOOL)."""
    category = "math/vec4"
    size = 4
    a: VEC4
    b: VEC4
    comfy = ComfyAlias(("CM_Vec4BinaryCondition",))


class CMVec2ScalarOperation(_VecScalarOperation):
    """A VEC2 Mul or Div by a number, as ComfyMath's Vec2ScalarOperation does (division by zero
    gives inf / NaN, as in the pack; b is a link or a number, with no default, as in the pack)."""
    category = "math/vec2"
    size = 2
    a: VEC2
    b: float = Float()
    outputs = {"VEC2": VEC2}
    comfy = ComfyAlias(("CM_Vec2ScalarOperation",))


class CMVec3ScalarOperation(_VecScalarOperation):
    """A VEC3 Mul or Div by a number, as ComfyMath's Vec3ScalarOperation does (division by zero
    gives inf / NaN, as in the pack; b is a link or a number, with no default, as in the pack)."""
    category = "math/vec3"
    size = 3
    a: VEC3
    b: float = Float()
    outputs = {"VEC3": VEC3}
    comfy = ComfyAlias(("CM_Vec3ScalarOperation",))


class CMVec4ScalarOperation(_VecScalarOperation):
    """A VEC4 Mul or Div by a number, as ComfyMath's Vec4ScalarOperation does (division by zero
    gives inf / NaN, as in the pack; b is a link or a number, with no default, as in the pack)."""
    category = "math/vec4"
    size = 4
    a: VEC4
    b: float = Float()
    outputs = {"VEC4": VEC4}
    comfy = ComfyAlias(("CM_Vec4ScalarOperation",))


# -- conversions -------------------------------------------------------------------------------


def _whole_of(value, name: str) -> int:
    """int(value) of a float or NUMBER (toward zero), as the pack converts, held to +-INT_LIMIT;
    inf and NaN refused."""
    number = _float(value, name)
    try:
        whole = int(number)
    except (OverflowError, ValueError):
        raise NodeInputError(name, f"{number!r} has no whole-number value") from None
    return _whole(whole, name)


class CMBoolToInt(Node):
    """1 for true, 0 for false, as ComfyMath's BoolToInt gives it."""
    category = "math/conversion"
    a: BOOL
    outputs = {"INT": INT}
    comfy = ComfyAlias(("CM_BoolToInt",))

    def run(self):
        return int(bool(self.a))


class CMIntToBool(Node):
    """Whether a whole number is non-zero, as ComfyMath's IntToBool tells it (a BOOL)."""
    category = "math/conversion"
    a: int = Int(0, min=-INT_LIMIT, max=INT_LIMIT)
    outputs = {"BOOL": BOOL}
    comfy = ComfyAlias(("CM_IntToBool",))

    def run(self):
        return self.a != 0


class CMFloatToInt(Node):
    """A number's whole part (toward zero), as ComfyMath's FloatToInt gives it; inf and NaN are
    errors, and so (unlike the pack) is a whole part past +-(2**64 - 1), the most an INT holds."""
    category = "math/conversion"
    a: float = Float(0.0)
    outputs = {"INT": INT}
    comfy = ComfyAlias(("CM_FloatToInt",))

    def run(self):
        return _whole_of(self.a, "a")


class CMIntToFloat(Node):
    """A whole number as a float, as ComfyMath's IntToFloat gives it."""
    category = "math/conversion"
    a: int = Int(0, min=-INT_LIMIT, max=INT_LIMIT)
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("CM_IntToFloat",))

    def run(self):
        return float(self.a)


class CMIntToNumber(Node):
    """A whole number as a NUMBER (unchanged), as ComfyMath's IntToNumber gives it."""
    category = "math/conversion"
    a: int = Int(0, min=-INT_LIMIT, max=INT_LIMIT)
    outputs = {"NUMBER": NUMBER}
    comfy = ComfyAlias(("CM_IntToNumber",))

    def run(self):
        return self.a


class CMNumberToInt(Node):
    """A NUMBER's whole part (toward zero), as ComfyMath's NumberToInt gives it; inf and NaN are
    errors, and so (unlike the pack) is a whole part past +-(2**64 - 1), the most an INT holds."""
    category = "math/conversion"
    a: NUMBER
    outputs = {"INT": INT}
    comfy = ComfyAlias(("CM_NumberToInt",))

    def run(self):
        if isinstance(self.a, int) and not isinstance(self.a, bool):
            return _whole(self.a, "a")  # int(a) of a whole NUMBER: itself, exact (no float on the way)
        return _whole_of(self.a, "a")


class CMFloatToNumber(Node):
    """A float as a NUMBER (unchanged), as ComfyMath's FloatToNumber gives it."""
    category = "math/conversion"
    a: float = Float(0.0, linked_nonfinite=True)
    outputs = {"NUMBER": NUMBER}
    comfy = ComfyAlias(("CM_FloatToNumber",))

    def run(self):
        return self.a


class CMNumberToFloat(Node):
    """A NUMBER as a float, as ComfyMath's NumberToFloat gives it."""
    category = "math/conversion"
    a: NUMBER
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("CM_NumberToFloat",))

    def run(self):
        return _float(self.a, "a")


class CMComposeVec2(Node):
    """A VEC2 (x, y), as ComfyMath's ComposeVec2 makes it."""
    category = "math/conversion"
    x: float = Float(0.0)
    y: float = Float(0.0)
    outputs = {"VEC2": VEC2}
    comfy = ComfyAlias(("CM_ComposeVec2",))

    def run(self):
        return (self.x, self.y)


class CMComposeVec3(Node):
    """A VEC3 (x, y, z), as ComfyMath's ComposeVec3 makes it."""
    category = "math/conversion"
    x: float = Float(0.0)
    y: float = Float(0.0)
    z: float = Float(0.0)
    outputs = {"VEC3": VEC3}
    comfy = ComfyAlias(("CM_ComposeVec3",))

    def run(self):
        return (self.x, self.y, self.z)


class CMComposeVec4(Node):
    """A VEC4 (x, y, z, w), as ComfyMath's ComposeVec4 makes it."""
    category = "math/conversion"
    x: float = Float(0.0)
    y: float = Float(0.0)
    z: float = Float(0.0)
    w: float = Float(0.0)
    outputs = {"VEC4": VEC4}
    comfy = ComfyAlias(("CM_ComposeVec4",))

    def run(self):
        return (self.x, self.y, self.z, self.w)


class CMBreakoutVec2(Node):
    """A VEC2's x and y, as ComfyMath's BreakoutVec2 gives them (both outputs named FLOAT there)."""
    category = "math/conversion"
    a: VEC2
    outputs = {"x": FLOAT, "y": FLOAT}
    comfy = ComfyAlias(("CM_BreakoutVec2",))

    def run(self):
        return _as_tuple(_vector(self.a, 2, "a"))


class CMBreakoutVec3(Node):
    """A VEC3's x, y and z, as ComfyMath's BreakoutVec3 gives them (all outputs named FLOAT there)."""
    category = "math/conversion"
    a: VEC3
    outputs = {"x": FLOAT, "y": FLOAT, "z": FLOAT}
    comfy = ComfyAlias(("CM_BreakoutVec3",))

    def run(self):
        return _as_tuple(_vector(self.a, 3, "a"))


class CMBreakoutVec4(Node):
    """A VEC4's x, y, z and w, as ComfyMath's BreakoutVec4 gives them (all outputs named FLOAT there)."""
    category = "math/conversion"
    a: VEC4
    outputs = {"x": FLOAT, "y": FLOAT, "z": FLOAT, "w": FLOAT}
    comfy = ComfyAlias(("CM_BreakoutVec4",))

    def run(self):
        return _as_tuple(_vector(self.a, 4, "a"))


# -- resolutions -------------------------------------------------------------------------------

# (width, height, the aspect ratio the pack compares with), in the pack's order
SDXL_RESOLUTIONS = (
    (1024, 1024, 1.0), (1152, 896, 1.2857142857142858), (896, 1152, 0.7777777777777778),
    (1216, 832, 1.4615384615384615), (832, 1216, 0.6842105263157895), (1344, 768, 1.75),
    (768, 1344, 0.5714285714285714), (1536, 640, 2.4), (640, 1536, 0.4166666666666667),
)
# The pack's ratios are rounded and a few are off (1024x960 is listed as 1.8): they decide which
# size is nearest, so they are kept as the pack has them.
SDXL_EXTENDED_RESOLUTIONS = (
    (512, 2048, 0.25), (512, 1984, 0.26), (512, 1920, 0.27), (512, 1856, 0.28), (576, 1792, 0.32),
    (576, 1728, 0.33), (576, 1664, 0.35), (640, 1600, 0.4), (640, 1536, 0.42), (704, 1472, 0.48),
    (704, 1408, 0.5), (704, 1344, 0.52), (768, 1344, 0.57), (768, 1280, 0.6), (832, 1216, 0.68),
    (832, 1152, 0.72), (896, 1152, 0.78), (896, 1088, 0.82), (960, 1088, 0.88), (960, 1024, 0.94),
    (1024, 1024, 1.0), (1024, 960, 1.8), (1088, 960, 1.14), (1088, 896, 1.22), (1152, 896, 1.30),
    (1152, 832, 1.39), (1216, 832, 1.47), (1280, 768, 1.68), (1344, 768, 1.76), (1408, 704, 2.0),
    (1472, 704, 2.10), (1536, 640, 2.4), (1600, 640, 2.5), (1664, 576, 2.90), (1728, 576, 3.0),
    (1792, 576, 3.12), (1856, 512, 3.63), (1920, 512, 3.76), (1984, 512, 3.89), (2048, 512, 4.0),
)


def _names(table) -> tuple[str, ...]:
    return tuple(f"{w}x{h}" for w, h, _ in table)


def nearest_resolution(width: int, height: int, table) -> tuple[int, int]:
    """The table's size whose listed ratio is nearest width / height (the first of equals)."""
    ratio = width / height
    w, h, _ = min(table, key=lambda row: abs(ratio - row[2]))  # min keeps the first of equals, as the pack's loop
    return w, h


def _image_size(image) -> tuple[int, int]:
    shape = getattr(image, "shape", ())
    if len(shape) != 4 or shape[1] == 0 or shape[2] == 0:
        raise NodeInputError("image", f"expected an image batch [B, H, W, C], got shape {tuple(shape)}")
    return shape[2], shape[1]


class _ListedResolution(Node):
    """A listed size's width and height, from its name "WxH"."""
    outputs = {"width": INT, "height": INT}

    def run(self):
        width, height = self.resolution.split("x")
        return int(width), int(height)


class CMSDXLResolution(_ListedResolution):
    """The width and height of one of SDXL's trained sizes, as ComfyMath's SDXLResolution gives them."""
    category = "math/graphics"
    resolution: str = Choice(_names(SDXL_RESOLUTIONS), "1024x1024")
    comfy = ComfyAlias(("CM_SDXLResolution",))


class CMSDXLExtendedResolution(_ListedResolution):
    """The width and height of one of the 40 SDXL sizes (512x2048 to 2048x512), as ComfyMath's
    SDXLExtendedResolution gives them."""
    category = "math/graphics"
    resolution: str = Choice(_names(SDXL_EXTENDED_RESOLUTIONS), "512x2048")
    comfy = ComfyAlias(("CM_SDXLExtendedResolution",))


class CMNearestSDXLResolution(Node):
    """The SDXL trained size whose aspect ratio is nearest the image's, as ComfyMath's
    NearestSDXLResolution picks it."""
    category = "math/graphics"
    image: IMAGE
    outputs = {"width": INT, "height": INT}
    comfy = ComfyAlias(("CM_NearestSDXLResolution",))

    def run(self):
        return nearest_resolution(*_image_size(self.image), SDXL_RESOLUTIONS)


class CMNearestSDXLExtendedResolution(Node):
    """The one of the 40 SDXL sizes whose listed aspect ratio is nearest the image's, as
    ComfyMath's NearestSDXLExtendedResolution picks it (with the pack's ratios, a few of which are
    off: 1024x960 is listed as 1.8, so it is picked for about 16:9 pictures)."""
    category = "math/graphics"
    image: IMAGE
    outputs = {"width": INT, "height": INT}
    comfy = ComfyAlias(("CM_NearestSDXLExtendedResolution",))

    def run(self):
        return nearest_resolution(*_image_size(self.image), SDXL_EXTENDED_RESOLUTIONS)
