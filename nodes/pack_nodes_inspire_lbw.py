"""Inspire Pack's LoRA Block Weight loader: a LoRA applied with a strength per UNet block.

Read from ltdrdata/ComfyUI-Inspire-Pack: inspire/lora_block_weight.py at
25ae8d522f781f694bf736f87945f2291da531b4 (LoraLoaderBlockWeight //Inspire: the block vector, its
% spec form, A / B / R / U values, inverse, the seed) and the preset list resources/lbw-preset.txt
at 30974e69c417170c8c5a6a621bc7c62b95cb23cc (plain data, in LBW_PRESETS below).

Nodes: LoraLoaderBlockWeight //Inspire, MakeLBW //Inspire, ApplyLBW //Inspire.

Left out: the XY-plot input and LoraBlockInfo (its text report), the
lbw-preset.custom.txt file (the pack's own folder). The LBW= part of Impact's wildcard LoRA
tags is read here too: Impact's wildcard encode (and Inspire's) applies such a LoRA through
block_weight_lora, as the pack calls this node.
"""

from __future__ import annotations

import math
import re

from graphflow.api import CLIP, MODEL, STRING, Bool, Choice, ComfyAlias, Float, Int, Node, NodeInputError, Text, \
    folders, socket_type, warn
from nodes.sampling import SEED_MAX

COMFY_PACK = "comfyui-inspire-pack"  # the custom node pack this module's ComfyUI classes come from

# name: vector, as the pack's resources/lbw-preset.txt lists them (its @ test entries left out, as its
# editor leaves them out of the list)
LBW_PRESETS = {
    "SD-NONE": "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0",
    "SD-ALL": "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1",
    "SD-INS": "1,1,1,1,0,0,0,0,0,0,0,0,0,0,0,0,0",
    "SD-IND": "1,0,0,0,1,1,1,0,0,0,0,0,0,0,0,0,0",
    "SD-INALL": "1,1,1,1,1,1,1,0,0,0,0,0,0,0,0,0,0",
    "SD-MIDD": "1,0,0,0,1,1,1,1,1,1,1,1,0,0,0,0,0",
    "SD-MIDD0.2": "1,0,0,0,0,0,0.2,0.4,0.4,0.2,0,0,0,0,0,0,0",
    "SD-MIDD0.8": "1,0,0,0,0,0.5,0.8,0.8,0.4,0,0,0,0,0,0,0,0",
    "SD-MOUT": "1,0,0,0,0,0,1,1,1,1,1,1,1,1,0.5,0,0",
    "SD-OUTD": "1,0,0,0,0,0,0,0,1,1,1,1,0,0,0,0,0",
    "SD-OUTS": "1,0,0,0,0,0,0,0,0,0,0,0,1,1,1,1,1",
    "SD-OUTALL": "1,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1",
    "SD-ROUT": "1,1,1,1,1,1,1,1,R,R,R,R,R,R,R,R,R",
    "SD-AOUT": "A,1,1,1,1,1,1,1,1,1,1,1,A,A,A,A,A",
    "SD-AB": "A,B,B,B,B,B,B,B,B,B,B,B,A,A,A,A,A",
    "SD-ALL0.5": "0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5",
    "SD-LyC-NONE": ",".join(["0"] * 27),
    "SD-LyC-ALL": ",".join(["1"] * 27),
    "SD-LyC-INALL": ",".join(["1"] * 12 + ["0"] * 15),
    "SD-LyC-MIDALL": ",".join(["1"] + ["0"] * 11 + ["1"] * 3 + ["0"] * 12),
    "SD-LyC-OUTALL": ",".join(["1"] + ["0"] * 14 + ["1"] * 12),
    "SDXL-NONE": ",".join(["0"] * 12),
    "SDXL-ALL": ",".join(["1"] * 12),
    "SDXL-INALL": "1,1,1,1,1,0,0,0,0,0,0,0",
    "SDXL-MIDALL": "1,0,0,0,0,1,0,0,0,0,0,0",
    "SDXL-OUTALL": "1,0,0,0,0,0,1,1,1,1,1,1",
    "SDXL-LyC-NONE": ",".join(["0"] * 21),
    "SDXL-LyC-ALL": ",".join(["1"] * 21),
    "SDXL-LyC-INALL": ",".join(["1"] * 9 + ["0"] * 12),
    "SDXL-LyC-MIDALL": ",".join(["1"] + ["0"] * 8 + ["1"] * 3 + ["0"] * 9),
    "SDXL-LyC-OUTALL": ",".join(["1"] + ["0"] * 11 + ["1"] * 9),
    "FLUX-DBL-FRONT": ",".join(["1"] * 6 + ["0"] * 12),
    "FLUX-DBL-MID": ",".join(["0"] * 6 + ["1"] * 6 + ["0"] * 6),
    "FLUX-DBL-TAIL": ",".join(["0"] * 12 + ["1"] * 6),
}
# the block kinds in the pack's order; a LoRA module of none of them takes the vector's first value
BLOCK_KINDS = ("input_blocks", "middle_block", "output_blocks", "double_blocks", "single_blocks")
SPEC_NAMES = {"in": "input_blocks", "mid": "middle_block", "out": "output_blocks", "double": "double_blocks",
              "single": "single_blocks"}
LETTERS = ("R", "r", "U", "u", "A", "a", "B", "b")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_SPEC_BASE = re.compile(r"(default|base)=([0-9.]+)")
_SPEC_RANGE = re.compile(r"(in|out|mid|double|single)([0-9]+)-([0-9]+)=([0-9.]+)")
_SPEC_ONE = re.compile(r"(in|out|mid|double|single)([0-9]+)=([0-9.]+)")
_SPEC_ALL = re.compile(r"(in|out|mid|double|single)=([0-9.]+)")
MAX_SPEC_ITEMS = 512  # a % spec's items (a LoRA has a few dozen blocks; the pack sets no limit)


def _numeric(text: str) -> bool:
    return _NUMBER.fullmatch(text) is not None


def _ratio(text: str, input_name: str, where: str) -> float:
    """A block's ratio written as text: a finite number, else a NodeInputError naming input_name."""
    try:
        value = float(text)
    except ValueError:
        raise NodeInputError(input_name, f"{where}: {text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise NodeInputError(input_name, f"{where}: {text[:40]!r}... is too large a number")
    return value


def _block_number(digits: str) -> int:
    """A % spec's block number; past any LoRA's blocks when over 6 digits (int() refuses thousands)."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 6 else 10**6


def spec_vector(spec: str, block_counts: dict[str, int], input_name: str = "block_vector") -> str:
    """A "%default=.., base=.., in1-3=.., out=.." spec as the vector it stands for: base (else
    default) first, then each block of the LoRA (block_counts: how many of each kind it patches)
    at its given value, else default. Other text is the vector itself."""
    if not spec.startswith("%"):
        return spec
    items = [item.strip() for item in spec[1:].split(",")]
    if len(items) > MAX_SPEC_ITEMS:
        raise NodeInputError(input_name, f"the % spec has {len(items)} items; at most {MAX_SPEC_ITEMS}")
    base, default = None, "1.0"
    for item in items:
        match = _SPEC_BASE.match(item)
        if match:
            base, default = (match[2], default) if match[1] == "base" else (base, match[2])
    values = {kind: [default] * block_counts.get(kind, 0) for kind in BLOCK_KINDS}
    for item in items:
        match = _SPEC_RANGE.match(item)
        if match:
            blocks = values[SPEC_NAMES[match[1]]]
            first, last = _block_number(match[2]) - 1, min(_block_number(match[3]), len(blocks))
            ratio = _ratio(match[4], input_name, f"% spec item {item[:40]!r}")
            for x in range(max(first, 0), last):
                blocks[x] = ratio
            continue
        match = _SPEC_ONE.match(item)
        if match:
            x, ratio = _block_number(match[2]) - 1, _ratio(match[3], input_name, f"% spec item {item[:40]!r}")
            if 0 <= x < len(values[SPEC_NAMES[match[1]]]):
                values[SPEC_NAMES[match[1]]][x] = ratio
            continue
        match = _SPEC_ALL.match(item)
        if match:
            kind = SPEC_NAMES[match[1]]
            values[kind] = [_ratio(match[2], input_name, f"% spec item {item[:40]!r}")] * len(values[kind])
    return ",".join([str(base if base is not None else default)] + [str(v) for k in BLOCK_KINDS for v in values[k]])


def _valid(vector: list[str]) -> bool:
    """The pack's check: at least 12 values, each a number or a letter, or several of them
    separated by spaces."""
    return len(vector) >= 12 and all(
        x in LETTERS or _numeric(x) or all(y.strip() in LETTERS or _numeric(y.strip()) for y in x.strip().split(" "))
        for x in vector)


def vector_values(text: str, a: float | None, b: float | None, rng, input_name: str = "block_vector") \
        -> list[float | None]:
    """One vector element's ratios: a number, A, a (A/2), B, b (B/2), R (uniform 0..3) or U
    (uniform -1.5..1.5), both rounded to 2 places and drawn from `rng` (numpy's global generator
    in the pack); several separated by spaces give one ratio each."""
    def one(x):
        if x in ("U", "u"):
            return round(rng.uniform(-1.5, 1.5), 2)
        if x in ("R", "r"):
            return round(rng.uniform(0, 3.0), 2)
        if x in ("A", "a", "B", "b"):
            value = a if x in ("A", "a") else b
            if value is None:  # a wildcard LoRA tag without A= / B= (the pack fails there)
                raise NodeInputError(input_name, f"the block vector uses {x}, but no {x.upper()}= value is given "
                                                 f"(<lora:name:1:LBW=vector;A=1;B=0.5>)")
            return value if x in ("A", "B") else value / 2
        return _ratio(x, input_name, "block vector") if _numeric(x) else None

    value = one(text)
    return [value] if value is not None else [one(x) for x in text.split(" ")]


def _shown(value: float):
    """The pack's norm_value: 1.0 and 0.0 written as 1 and 0."""
    return 1 if value == 1 else 0 if value == 0 else value


def block_ratios(keys: list[tuple[str, str | None, int | None]], block_vector: str, inverse: bool, seed: int,
                 a: float | None, b: float | None, input_name: str = "block_vector") -> tuple[dict[str, float], str]:
    """The pack's load_lbw: {LoRA key: ratio} and the populated vector. `keys` are (key, block kind,
    block number) in the model's order, kind None for a module in no block (the text encoder's,
    the time embedding's ...). Blocks are walked in kind order, then by number: each new block
    takes the vector's next element (its first for the modules in no block), a block whose
    element holds several ratios gives them to its modules in turn, the last repeating."""
    import numpy as np

    counts = {kind: len({n for _, k, n in keys if k == kind}) for kind in BLOCK_KINDS}
    text = spec_vector(block_vector, counts, input_name).split(":")
    vector = (text[1] if len(text) > 1 else text[0]).split(",")
    if not _valid(vector):
        if vector and vector[0].strip() in LBW_PRESETS:
            vector = LBW_PRESETS[vector[0].strip()].split(",")
        else:
            raise NodeInputError(input_name, f"invalid block vector {block_vector!r}: expected at least 12 "
                                             "comma-separated numbers or A, a, B, b, R, U, or a preset name")
    rng = np.random.RandomState(seed % 2**31)  # the pack seeds numpy's global generator so
    blocks = sorted((k for k in keys if k[1] is not None), key=lambda k: (BLOCK_KINDS.index(k[1]), k[2]))
    ratios, shown, pending, ratio, at, last_number = {}, [], [], 1.0, 1, None
    for key, kind, number in blocks:
        if number != last_number and len(vector) > at:
            pending = vector_values(vector[at].strip(), a, b, rng, input_name)
            ratio = pending.pop(0)
            shown.append(_shown(1 - ratio if inverse else ratio))
            at += 1
        elif pending:
            ratio = pending.pop(0)
        last_number = number
        ratios[key] = 1 - ratio if inverse else ratio
    base = vector_values(vector[0].strip(), a, b, rng, input_name)[0]
    base = 1 - base if inverse else base
    shown.insert(0, _shown(base))
    ratios.update({key: base for key, kind, _ in keys if kind is None})
    return ratios, ",".join(map(str, shown))


def _block(path: str) -> tuple[str | None, int | None]:
    parts = path.split(".")
    if parts[0] in BLOCK_KINDS and len(parts) > 1 and parts[1].isdigit():
        return parts[0], int(parts[1])
    return None, None


class InspireLoraLoaderBlockWeight(Node):
    """Apply a LoRA with a strength per UNet block (A1111's LoRA Block Weight): block_vector's first
    value is for the modules in no block (the text encoder, the time embedding ...), the next ones
    for the LoRA's blocks in turn (SD1/SDXL input, middle and output blocks, FLUX double and single
    blocks, in that order and by number; a LoRA that leaves a block out leaves out its value's
    place, as in the pack). Each module gets strength_model (text encoder: strength_clip) times
    its block's value; inverse uses 1 - value. Values: numbers, A and a (A/2), B and b (B/2), R
    (random 0..3) and U (random -1.5..1.5, both from seed, rounded to 2 places), or several of
    them separated by spaces, given to the block's modules in the model's layer order. A vector may
    be written "NAME:vector", or be a preset's name (SD-ALL, SDXL-OUTALL ...: the pack's list), or a
    "%default=1,base=1,in2-4=0.5,out=0" spec over the LoRA's blocks (at most 512 items; a value that
    is no finite number is an error). populated_vector shows the values used. preset and category_filter are the
    editor's pickers; bypass, or both strengths 0,
    gives the model and CLIP unchanged."""
    category = "InspirePack/LoraBlockWeight"
    model: MODEL
    clip: CLIP
    category_filter: str = Text("All")
    lora_name: str = Choice(lambda: folders.list_models("loras"), model_folder="loras")
    strength_model: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    strength_clip: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    inverse: bool = Bool(False)
    seed: int = Int(0, min=0, max=SEED_MAX)
    A: float = Float(4.0, min=-10.0, max=10.0, step=0.01)
    B: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    preset: str = Text("Preset")
    block_vector: str = Text("1,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1", multiline=True)
    bypass: bool = Bool(False)
    outputs = {"model": MODEL, "clip": CLIP, "populated_vector": STRING}
    comfy = ComfyAlias(("LoraLoaderBlockWeight //Inspire",))

    @classmethod
    def fingerprint(cls, lora_name="", **widgets):
        return folders.model_state("loras", lora_name)

    def run(self):
        if self.bypass:
            return self.model, self.clip, ""
        return block_weight_lora(self.model, self.clip, self.lora_name, self.strength_model, self.strength_clip,
                                 self.inverse, self.seed, self.A, self.B, self.block_vector)


def block_weight_lora(model, clip, lora_name: str, strength_model: float, strength_clip: float, inverse: bool,
                      seed: int, a: float | None, b: float | None, block_vector: str,
                      input_name: str = "lora_name") -> tuple:
    """The pack's LoraLoaderBlockWeight.doit: (model, clip, populated vector) with the LoRA applied
    at each module's block ratio; both strengths 0 give them back unchanged. Errors name
    input_name (the vector's: block_vector there, unless input_name is another node's)."""
    if strength_model == 0 and strength_clip == 0:
        return model, clip, ""
    plan, shown = block_weight_plan(model, clip, lora_name, inverse, seed, a, b, block_vector, input_name)
    model, clip = apply_plan(model, clip, plan, strength_model, strength_clip, input_name)
    return model, clip, shown


def block_weight_plan(model, clip, lora_name: str, inverse: bool, seed: int, a: float | None, b: float | None,
                      block_vector: str, input_name: str = "lora_name") -> tuple[dict, str]:
    """The pack's load_lbw: ({"path", "modules", "ratios"}: the LoRA file's modules that match a
    layer of model or clip, and each one's ratio by block_ratios), and the populated vector."""
    from graphflow.models.checkpoint import CheckpointError
    from graphflow.models.flow_lora_names import flow_lora_names
    from graphflow.models.lora import read_lora, text_lora_names, unet_lora_names

    try:
        path = folders.find_model("loras", lora_name)
        modules = read_lora(path, [])
    except (FileNotFoundError, ValueError, CheckpointError) as e:
        raise NodeInputError(input_name, str(e)) from None
    unet_names = unet_lora_names(model.unet, every_weight=True)
    flow_names = {key: layer for key, (layer, _) in flow_lora_names(model.unet).items()}
    text_names = text_lora_names(clip, every_weight=True) if clip is not None else {}
    order = {name: i for i, (name, _) in enumerate(model.unet.named_modules())}
    keys, unmatched = [], []
    for key in modules:
        layer = unet_names.get(key) or flow_names.get(key)
        if layer is not None:
            keys.append((order.get(layer, len(order)), key, *_block(layer)))
        elif key in text_names:
            keys.append((-1, key, None, None))
        else:
            unmatched.append(key)
    if not keys:
        raise NodeInputError(input_name, f"{lora_name}: none of its {len(modules)} modules matches a layer of this "
                                         "model")
    if unmatched:
        warn(f"{lora_name}: {len(unmatched)} modules match no layer of this model and were skipped: "
             f"{', '.join(sorted(unmatched)[:8])}")
    vector_input = "block_vector" if input_name == "lora_name" else input_name
    ratios, shown = block_ratios([k[1:] for k in sorted(keys)], block_vector, inverse, seed, a, b, vector_input)
    return {"path": path, "modules": modules, "ratios": ratios}, shown


def apply_plan(model, clip, plan: dict, strength_model: float, strength_clip: float, input_name: str) -> tuple:
    """(model, clip) with a block_weight_plan applied: each module at strength times its ratio (the
    text encoder's at strength_clip), once per distinct ratio through apply_lora; ratio 0 muted."""
    from graphflow.models.checkpoint import CheckpointError
    from graphflow.models.lora import apply_lora

    ratios = plan["ratios"]
    for ratio in sorted(set(ratios.values())):
        if ratio == 0:
            continue
        subset = {key: plan["modules"][key] for key, r in ratios.items() if r == ratio}
        try:
            model, clip = apply_lora(model, clip, plan["path"], strength_model * ratio, strength_clip * ratio,
                                     strict=False, modules=subset)
        except (ValueError, CheckpointError) as e:
            raise NodeInputError(input_name, str(e)) from None
    return model, clip


LBW_MODEL = socket_type("LBW_MODEL", "#9575cd", "Inspire Pack's LoRA with a ratio per module (MakeLBW //Inspire)")


class InspireMakeLBW(Node):
    """LoRA Block Weight's per-module ratios without applying them (an LBW_MODEL for ApplyLBW //Inspire), as
    LoraLoaderBlockWeight //Inspire computes them for this model and CLIP; gives the populated
    vector too. bypass is in the pack's inputs and does nothing there either."""
    category = "InspirePack/LoraBlockWeight"
    model: MODEL
    clip: CLIP
    category_filter: str = Text("All")
    lora_name: str = Choice(lambda: folders.list_models("loras"), model_folder="loras")
    inverse: bool = Bool(False)
    seed: int = Int(0, min=0, max=SEED_MAX)
    A: float = Float(4.0, min=-10.0, max=10.0, step=0.01)
    B: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    preset: str = Text("Preset")
    block_vector: str = Text("1,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1", multiline=True)
    bypass: bool = Bool(False)
    outputs = {"lbw_model": LBW_MODEL, "populated_vector": STRING}
    comfy = ComfyAlias(("MakeLBW //Inspire",))

    @classmethod
    def fingerprint(cls, lora_name="", **widgets):
        return folders.model_state("loras", lora_name)

    def run(self):
        return block_weight_plan(self.model, self.clip, self.lora_name, self.inverse, self.seed, self.A, self.B,
                                 self.block_vector)


class InspireApplyLBW(Node):
    """Apply an LBW_MODEL (MakeLBW //Inspire's) to a model and CLIP at these strengths, as LoRA Block Weight
    applies it."""
    category = "InspirePack/LoraBlockWeight"
    model: MODEL
    clip: CLIP
    strength_model: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    strength_clip: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lbw_model: LBW_MODEL
    outputs = {"MODEL": MODEL, "CLIP": CLIP}
    comfy = ComfyAlias(("ApplyLBW //Inspire",))

    def run(self):
        if not isinstance(self.lbw_model, dict) or "ratios" not in self.lbw_model:
            raise NodeInputError("lbw_model", "expected an LBW_MODEL (from MakeLBW //Inspire)")
        return apply_plan(self.model, self.clip, self.lbw_model, self.strength_model, self.strength_clip, "lbw_model")
