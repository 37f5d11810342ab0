"""Efficiency Nodes' XY Plot script and its XY inputs (jags111/efficiency-nodes-comfyui, read from
its efficiency_nodes.py at 040aea25a12ab86a8488e9d55003ee515da4deae: TSC_XYplot, the TSC_XYplot_*
input classes and TSC_KSampler's XY branch), under the pack's class names, inputs and defaults.

XY Plot gives a SCRIPT (the same Script the other Efficiency scripts chain, with its xyplot entry)
that makes KSampler (Efficient), KSampler Adv. (Efficient) and KSampler SDXL (Eff.) run once per
(X, Y) cell and return the cells' images (or the labelled grid) and their latents; run_xy_plot is
that branch of the samplers (nodes/efficiency_nodes.py calls it).

Built: XY Plot; XY Input: Seeds++ Batch, Add/Return Noise, Steps, CFG Scale, Sampler/Scheduler,
Denoise, VAE, Prompt S/R, Checkpoint, Clip Skip, LoRA, LoRA Stacks, Refiner On/Off, Control Net,
Control Net Plot, LoRA Plot, Manual XY Entry; Join XY Inputs of Same Type; Manual XY Entry Info
(notes). Left out (its class stays unknown, named by its pack when a workflow uses it): XY Input:
Aesthetic Score (SDXL refiner prompts); within the built inputs the "Batch" modes (files listed
from a folder path the user types, which may lie outside the model folders) and the refiner
targets of Checkpoint and Clip Skip are refused by name, and the SDXL sampler takes no XY type
that encodes the prompts again (Checkpoint, LoRA, LoRA Stacks, LoRA Plot, Prompt S/R, Clip Skip,
Control Net). The pack's font (arial.ttf, shipped inside the pack) is not ours to ship: labels
use PIL's default font (Aileron) at the pack's sizes."""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, replace

from graphflow.api import (IMAGE, Bool, Choice, ComfyAlias, Float, Int, Node, NodeInputError, Size, Text,
                           check_run_memory, run_limits, show, socket_type)
from graphflow.choices import SAMPLER_NAMES
from nodes.controlnet import CONTROL_NET
from nodes.efficiency_nodes import (BAKED_VAE, CONTROL_NET_STACK, DEPENDENCIES, EFF_SCHEDULERS, LORA_STACK, SCRIPT,
                                    Script, _apply_cnet_stack, _checkpoint_choices, _counted, _decode, _load,
                                    _lora_rows, _seed, _set_clip_skip, _states, _vae_choices,
                                    hires_image_size)
from nodes.image import MAX_SIZE, temp_pngs
from nodes.loaders import LoadVAE
from nodes.pack_nodes import _core, _lora_choices
from nodes.pack_nodes_adv_clip import advanced_encode
from nodes.sampling import SEED_MAX

XY = socket_type("XY", "#38b2ac", "Efficiency Nodes' XY Plot axis: what to vary and its values")
XYPLOT_LIM = 50  # the pack's most values an XY input gives an axis
XYPLOT_DEF = 3  # the pack's default count
LABEL_MAX = 256  # the most characters of a grid label drawn
IMAGE_BYTES_PER_PIXEL = 3 * 4  # an IMAGE's float32 RGB
GRID_BYTES_PER_PIXEL = 4 + 4 * 4  # the grid drawn: 8-bit RGBA, then its float32 RGBA IMAGE
BATCH_PATH = "/example_folder"  # the pack's batch_path default (its root folder + "example_folder")
CATEGORY = "Efficiency Nodes/XY Inputs"
NOTHING = "Nothing"
SR_TYPES = ("Positive Prompt S/R", "Negative Prompt S/R")
LORA_TYPES = ("LoRA", "LoRA Stacks")
LORA_PLOT_TYPES = {"LoRA MStr": 1, "LoRA CStr": 2}  # LoRA Plot's axes: the first LoRA's part each varies
ALL_LORA_TYPES = (*LORA_TYPES, *LORA_PLOT_TYPES)  # the types whose cells take their LoRAs from the axes
# ControlNet axes: the stack entry's part each varies ((control net, image, strength, start, end))
CNET_PARTS = {"ControlNetStrength": 2, "ControlNetStart%": 3, "ControlNetEnd%": 4}
# The types whose cells the pack encodes the prompts for again (with the loader's DEPENDENCIES)
ENCODE_TYPES = ("Checkpoint", *ALL_LORA_TYPES, *SR_TYPES, "Clip Skip", *CNET_PARTS)
# The types each sampler refuses, as the pack's XY branch lists them
DISALLOWED = {"regular": ("AddNoise", "ReturnNoise", "StartStep", "EndStep", "RefineStep", "Refiner On/Off"),
              "advanced": ("RefineStep", "Denoise", "Refiner On/Off"),
              "sdxl": ("AddNoise", "EndStep", "Denoise", *ENCODE_TYPES)}
SAMPLER_TITLES = {"regular": "KSampler (Efficient)", "advanced": "KSampler Adv. (Efficient)",
                  "sdxl": "KSampler SDXL (Eff.)"}
# The pack's loop order: a type earlier here is run in the outer loop (models loaded once per value)
PRIORITY = ("Checkpoint", "Refiner", "LoRA", "LoRA Stacks", "VAE")
CONDITIONERS = (*SR_TYPES, "AScore+", "AScore-", "Clip Skip", "Clip Skip (Refiner)", "ControlNetStrength",
                "ControlNetStart%", "ControlNetEnd%")


@dataclass(frozen=True)
class XYAxis:
    """An XY value: the pack's (type, values). Only the XY input nodes make one, so XY Plot can trust
    it; values a tuple of plain values (a LoRA value: a tuple of (name, model, clip) rows)."""
    kind: str
    values: tuple


def _axis(kind: str, values) -> XYAxis | None:
    """The XY output: None where there are no values (the pack's None, which XY Plot reads as an
    unconnected axis)."""
    return XYAxis(kind, tuple(values)) if values else None


def _floats(count: int, first: float, last: float) -> list[float]:
    """The pack's generate_floats: count values evenly from first to last, rounded to 3 places."""
    if count > 1:
        step = (last - first) / (count - 1)
        return [round(first + i * step, 3) for i in range(count)]
    return [first] if count == 1 else []


def _ints(count: int, first: int, last: int) -> list[int]:
    """The pack's generate_ints: count values from first to last truncated to integers, then
    duplicates dropped and sorted ascending (so a falling range comes out rising)."""
    if count > 1:
        step = (last - first) / (count - 1)
        values = [int(first + i * step) for i in range(count)]
    else:
        values = [first] if count == 1 else []
    return sorted(set(values))


def _no_batch(mode: str):
    if "Batch" in mode:
        raise NodeInputError("input_mode", f"{mode} lists files from batch_path, a folder anywhere on the machine; "
                                           f"graphflow reads models only from its model folders: choose the names "
                                           f"mode and pick the files")


def _numbered(cls_namespace: dict, annotations: dict, rows: dict):
    """Declare the pack's numbered widgets name_1 .. name_50 in turn, row by row (rows: name ->
    (type, widget factory)), into a class body."""
    for i in range(1, XYPLOT_LIM + 1):
        for name, (kind, make) in rows.items():
            annotations[f"{name}_{i}"] = kind
            cls_namespace[f"{name}_{i}"] = make()


# -- the XY inputs --------------------------------------------------------------------------------

class XYSeedsBatch(Node):
    """XY Plot axis: batch_count seeds, the sampler's seed + 0, 1, 2, ... (labelled "Seed: n");
    batch_count 0 gives no axis."""
    category = CATEGORY
    batch_count: int = Int(XYPLOT_DEF, min=0, max=XYPLOT_LIM)
    outputs = {"X or Y": XY}
    comfy = ComfyAlias(("XY Input: Seeds++ Batch",))

    def run(self):
        return _axis("Seeds++ Batch", range(self.batch_count))


class XYAddReturnNoise(Node):
    """XY Plot axis for KSampler Adv. (Efficient): add_noise or return_with_leftover_noise, enable
    then disable."""
    category = CATEGORY
    XY_type: str = Choice(("add_noise", "return_with_leftover_noise"), "add_noise")
    outputs = {"X or Y": XY}
    comfy = ComfyAlias(("XY Input: Add/Return Noise",))

    def run(self):
        return _axis("AddNoise" if self.XY_type == "add_noise" else "ReturnNoise", ("enable", "disable"))


class XYSteps(Node):
    """XY Plot axis: batch_count values of steps, start_at_step, end_at_step or refine_at_step from
    the first to the last of that parameter, truncated to integers, duplicates dropped and sorted
    ascending, as the pack does."""
    category = CATEGORY
    target_parameter: str = Choice(("steps", "start_at_step", "end_at_step", "refine_at_step"), "steps")
    batch_count: int = Int(XYPLOT_DEF, min=0, max=XYPLOT_LIM)
    first_step: int = Int(10, min=1, max=10000)
    last_step: int = Int(20, min=1, max=10000)
    first_start_step: int = Int(0, min=0, max=10000)
    last_start_step: int = Int(10, min=0, max=10000)
    first_end_step: int = Int(10, min=0, max=10000)
    last_end_step: int = Int(20, min=0, max=10000)
    first_refine_step: int = Int(10, min=0, max=10000)
    last_refine_step: int = Int(20, min=0, max=10000)
    outputs = {"X or Y": XY}
    comfy = ComfyAlias(("XY Input: Steps",))

    def run(self):
        kind, prefix = {"steps": ("Steps", "step"), "start_at_step": ("StartStep", "start_step"),
                        "end_at_step": ("EndStep", "end_step"),
                        "refine_at_step": ("RefineStep", "refine_step")}[self.target_parameter]
        return _axis(kind, _ints(self.batch_count, getattr(self, f"first_{prefix}"), getattr(self, f"last_{prefix}")))


class XYCFG(Node):
    """XY Plot axis: batch_count cfg values evenly from first_cfg to last_cfg (rounded to 3 places)."""
    category = CATEGORY
    batch_count: int = Int(XYPLOT_DEF, min=0, max=XYPLOT_LIM)
    first_cfg: float = Float(7.0, min=0.0, max=100.0)
    last_cfg: float = Float(9.0, min=0.0, max=100.0)
    outputs = {"X or Y": XY}
    comfy = ComfyAlias(("XY Input: CFG Scale",))

    def run(self):
        return _axis("CFG Scale", _floats(self.batch_count, self.first_cfg, self.last_cfg))


class XYDenoise(Node):
    """XY Plot axis for KSampler (Efficient): batch_count denoise values evenly from first_denoise
    to last_denoise (rounded to 3 places)."""
    category = CATEGORY
    batch_count: int = Int(XYPLOT_DEF, min=0, max=XYPLOT_LIM)
    first_denoise: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    last_denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"X or Y": XY}
    comfy = ComfyAlias(("XY Input: Denoise",))

    def run(self):
        return _axis("Denoise", _floats(self.batch_count, self.first_denoise, self.last_denoise))


class XYSamplerScheduler(Node):
    """XY Plot axis: the first input_count rows' samplers ("sampler": each with the sampler's own
    scheduler), schedulers ("scheduler") or both ("sampler & scheduler": a row's scheduler "None"
    keeps the sampler's); rows whose sampler (or, for "scheduler", scheduler) is "None" are skipped.
    The editor shows only the rows in use but saves all 50."""
    category = CATEGORY
    target_parameter: str = Choice(("sampler", "scheduler", "sampler & scheduler"), "sampler")
    input_count: int = Int(XYPLOT_DEF, min=0, max=XYPLOT_LIM, step=1)
    _numbered(locals(), __annotations__,
              {"sampler": (str, lambda: Choice(("None",) + SAMPLER_NAMES, "None")),
               "scheduler": (str, lambda: Choice(("None",) + EFF_SCHEDULERS, "None"))})
    outputs = {"X or Y": XY}
    comfy = ComfyAlias(("XY Input: Sampler/Scheduler",))

    def run(self):
        rows = [(getattr(self, f"sampler_{i}"), getattr(self, f"scheduler_{i}"))
                for i in range(1, self.input_count + 1)]
        if self.target_parameter == "scheduler":
            return _axis("Scheduler", [scheduler for _, scheduler in rows if scheduler != "None"])
        if self.target_parameter == "sampler":
            return _axis("Sampler", [(sampler, None) for sampler, _ in rows if sampler != "None"])
        return _axis("Sampler", [(sampler, None if scheduler == "None" else scheduler) for sampler, scheduler in rows
                                 if sampler != "None"])


class XYVAE(Node):
    """XY Plot axis: the first vae_count VAEs (those not "None"); "Baked VAE" is the checkpoint's
    own (the loader's, or the Checkpoint axis's). Left out: "VAE Batch" (files from batch_path) is
    refused; batch_path, subdirectories, batch_sort and batch_max belong to it."""
    category = CATEGORY
    input_mode: str = Choice(("VAE Names", "VAE Batch"), "VAE Names")
    batch_path: str = Text(BATCH_PATH)
    subdirectories: bool = Bool(False)
    batch_sort: str = Choice(("ascending", "descending"), "ascending")
    batch_max: int = Int(-1, min=-1, max=XYPLOT_LIM, step=1)
    vae_count: int = Int(XYPLOT_DEF, min=0, max=XYPLOT_LIM, step=1)
    _numbered(locals(), __annotations__,
              {"vae_name": (str, lambda: Choice(lambda: ["None"] + _vae_choices(), "None",
                                                model_folder="vae", not_files=("None", BAKED_VAE)))})
    outputs = {"X or Y": XY}
    comfy = ComfyAlias(("XY Input: VAE",))

    @classmethod
    def fingerprint(cls, vae_count=XYPLOT_DEF, **widgets):
        return _states("vae", (widgets.get(f"vae_name_{i}") for i in _counted(vae_count, XYPLOT_LIM)),
                       skip=("None", BAKED_VAE))

    def run(self):
        _no_batch(self.input_mode)
        return _axis("VAE", [v for v in (getattr(self, f"vae_name_{i}") for i in range(1, self.vae_count + 1))
                             if v != "None"])


class XYPromptSR(Node):
    """XY Plot axis: search and replace in the loader's positive or negative prompt: the prompt as
    it is (labelled search_txt), then search_txt's first occurrence replaced by each of the first
    replace_count replacements (labelled by the replacement; "(-) " before it for the negative).
    Two S/R axes apply X's replacement then Y's. An empty search_txt gives no axis. Needs the
    loader's DEPENDENCIES on XY Plot (the prompts are encoded again)."""
    category = CATEGORY
    target_prompt: str = Choice(("positive", "negative"), "positive")
    search_txt: str = Text("")
    replace_count: int = Int(XYPLOT_DEF, min=0, max=XYPLOT_LIM - 1)
    for _i in range(1, XYPLOT_LIM):
        __annotations__[f"replace_{_i}"] = str
        locals()[f"replace_{_i}"] = Text("")
    del _i
    outputs = {"X or Y": XY}
    comfy = ComfyAlias(("XY Input: Prompt S/R",))

    def run(self):
        if self.search_txt == "":
            return None
        kind = SR_TYPES[0] if self.target_prompt == "positive" else SR_TYPES[1]
        return _axis(kind, [(self.search_txt, None)] + [(self.search_txt, getattr(self, f"replace_{i}"))
                                                        for i in range(1, self.replace_count + 1)])


class XYCheckpoint(Node):
    """XY Plot axis: the first ckpt_count checkpoints (those not "None"), each with its clip_skip
    ("Ckpt Names+ClipSkip", else the loader's) and VAE ("+VAE", else the loader's vae_name; a VAE
    axis takes precedence). The loader's LoRAs are applied to each (unless a LoRA axis replaces
    them), and its prompts encoded again. Needs the loader's DEPENDENCIES on XY Plot. Left out:
    target_ckpt Refiner and "Checkpoint Batch" are refused."""
    category = CATEGORY
    target_ckpt: str = Choice(("Base", "Refiner"), "Base")
    input_mode: str = Choice(("Ckpt Names", "Ckpt Names+ClipSkip", "Ckpt Names+ClipSkip+VAE", "Checkpoint Batch"),
                             "Ckpt Names")
    batch_path: str = Text(BATCH_PATH)
    subdirectories: bool = Bool(False)
    batch_sort: str = Choice(("ascending", "descending"), "ascending")
    batch_max: int = Int(-1, min=-1, max=50, step=1)
    ckpt_count: int = Int(XYPLOT_DEF, min=0, max=XYPLOT_LIM, step=1)
    _numbered(locals(), __annotations__,
              {"ckpt_name": (str, lambda: Choice(lambda: ["None"] + _checkpoint_choices(), "None",
                                                 model_folder="checkpoints", not_files=("None",))),
               "clip_skip": (int, lambda: Int(-1, min=-24, max=-1, step=1)),
               "vae_name": (str, lambda: Choice(_vae_choices, BAKED_VAE, model_folder="vae",
                                                not_files=(BAKED_VAE,)))})
    outputs = {"X or Y": XY}
    comfy = ComfyAlias(("XY Input: Checkpoint",))

    @classmethod
    def fingerprint(cls, input_mode="Ckpt Names", ckpt_count=XYPLOT_DEF, **widgets):
        rows = _counted(ckpt_count, XYPLOT_LIM)
        vaes = (widgets.get(f"vae_name_{i}") for i in rows) if "VAE" in str(input_mode) else ()
        return (_states("checkpoints", (widgets.get(f"ckpt_name_{i}") for i in rows)),
                _states("vae", vaes, skip=(BAKED_VAE,)))

    def run(self):
        if self.target_ckpt != "Base":
            raise NodeInputError("target_ckpt", "the Refiner axis is not built in (XY Plot runs base checkpoints)")
        _no_batch(self.input_mode)
        rows = [(getattr(self, f"ckpt_name_{i}"), getattr(self, f"clip_skip_{i}") if "ClipSkip" in self.input_mode
                 else None, getattr(self, f"vae_name_{i}") if "VAE" in self.input_mode else None)
                for i in range(1, self.ckpt_count + 1)]
        return _axis("Checkpoint", [row for row in rows if row[0] != "None"])


class XYClipSkip(Node):
    """XY Plot axis: batch_count clip skips from first_clip_skip to last_clip_skip (integers,
    duplicates dropped, sorted ascending, as the pack); the prompts are encoded again at each.
    Needs the loader's DEPENDENCIES on XY Plot. Left out: target_ckpt Refiner is refused."""
    category = CATEGORY
    target_ckpt: str = Choice(("Base", "Refiner"), "Base")
    batch_count: int = Int(XYPLOT_DEF, min=0, max=XYPLOT_LIM)
    first_clip_skip: int = Int(-1, min=-24, max=-1, step=1)
    last_clip_skip: int = Int(-3, min=-24, max=-1, step=1)
    outputs = {"X or Y": XY}
    comfy = ComfyAlias(("XY Input: Clip Skip",))

    def run(self):
        if self.target_ckpt != "Base":
            raise NodeInputError("target_ckpt", "the refiner's clip skip axis is not built in")
        return _axis("Clip Skip", _ints(self.batch_count, self.first_clip_skip, self.last_clip_skip))


class XYLoRA(Node):
    """XY Plot axis: the first lora_count LoRAs (those not "None"), each at model_strength /
    clip_strength ("LoRA Names") or its own model_str / clip_str ("LoRA Names+Weights"), followed by
    lora_stack's LoRAs; each cell loads the checkpoint with those LoRAs in place of the loader's and
    encodes the prompts again. Needs the loader's DEPENDENCIES on XY Plot. Left out: "LoRA Batch"
    is refused."""
    category = CATEGORY
    input_mode: str = Choice(("LoRA Names", "LoRA Names+Weights", "LoRA Batch"), "LoRA Names")
    batch_path: str = Text(BATCH_PATH)
    subdirectories: bool = Bool(False)
    batch_sort: str = Choice(("ascending", "descending"), "ascending")
    batch_max: int = Int(-1, min=-1, max=XYPLOT_LIM, step=1)
    lora_count: int = Int(XYPLOT_DEF, min=0, max=XYPLOT_LIM, step=1)
    model_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    clip_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    _numbered(locals(), __annotations__,
              {"lora_name": (str, lambda: Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))),
               "model_str": (float, lambda: Float(1.0, min=-10.0, max=10.0, step=0.01)),
               "clip_str": (float, lambda: Float(1.0, min=-10.0, max=10.0, step=0.01))})
    lora_stack: LORA_STACK = None
    outputs = {"X or Y": XY}
    comfy = ComfyAlias(("XY Input: LoRA",))

    @classmethod
    def fingerprint(cls, lora_count=XYPLOT_DEF, **widgets):
        return _states("loras", (widgets.get(f"lora_name_{i}") for i in _counted(lora_count, XYPLOT_LIM)))

    def run(self):
        _no_batch(self.input_mode)
        stack = tuple(_lora_rows(self.lora_stack))
        weights = "Weights" in self.input_mode
        return _axis("LoRA", [((getattr(self, f"lora_name_{i}"),
                                getattr(self, f"model_str_{i}") if weights else self.model_strength,
                                getattr(self, f"clip_str_{i}") if weights else self.clip_strength),) + stack
                              for i in range(1, self.lora_count + 1) if getattr(self, f"lora_name_{i}") != "None"])


class XYLoRAStacks(Node):
    """XY Plot axis: each connected lora_stack (in input order) is one value, loaded in place of
    the loader's LoRAs; none connected (or all empty) gives no axis."""
    category = CATEGORY
    node_state: str = Choice(("Enabled",), "Enabled")
    lora_stack_1: LORA_STACK = None
    lora_stack_2: LORA_STACK = None
    lora_stack_3: LORA_STACK = None
    lora_stack_4: LORA_STACK = None
    lora_stack_5: LORA_STACK = None
    outputs = {"X or Y": XY}
    comfy = ComfyAlias(("XY Input: LoRA Stacks",))

    def run(self):
        stacks = [tuple(_lora_rows(getattr(self, f"lora_stack_{i}"))) for i in range(1, 6)
                  if getattr(self, f"lora_stack_{i}") is not None]
        return _axis("LoRA Stacks", stacks) if any(stacks) else None


class XYRefinerOnOff(Node):
    """XY Plot axis for KSampler SDXL (Eff.): the refiner on from refine_at_percent of the steps
    (refine_at_step = int(percent x steps)), then off (percent 1)."""
    category = CATEGORY
    refine_at_percent: float = Float(0.80, min=0.0, max=1.0, step=0.01)
    outputs = {"X or Y": XY}
    comfy = ComfyAlias(("XY Input: Refiner On/Off",))

    def run(self):
        return _axis("Refiner On/Off", (self.refine_at_percent, 1))


class XYJoinInputs(Node):
    """Two XY values of the same type as one: their values in turn (Seeds++ Batch: the two counts
    added; Prompt S/R: XY_2's replacements of XY_1's search text, XY_2's unreplaced entry dropped)."""
    category = CATEGORY
    XY_1: XY
    XY_2: XY
    outputs = {"X or Y": XY}
    comfy = ComfyAlias(("Join XY Inputs of Same Type",))

    def run(self):
        first, second = (_checked(getattr(self, name), name) for name in ("XY_1", "XY_2"))
        if first.kind != second.kind:
            raise NodeInputError("XY_2", f"a {second.kind} value can't join a {first.kind} one: the types must match")
        if first.kind == "Seeds++ Batch":
            return _axis(first.kind, range(len(first.values) + len(second.values)))
        if first.kind in SR_TYPES:
            return _axis(first.kind, first.values + tuple((first.values[0][0], r) for _, r in second.values[1:]))
        return _axis(first.kind, first.values + second.values)


def _spread(count: int, first: float, last: float) -> list[float]:
    """The pack's ControlNet values: first, first + i x step between, last (not rounded)."""
    if count == 0:
        return []
    step = (last - first) / (count - 1) if count > 1 else 0
    return [first] + [first + i * step for i in range(1, count - 1)] + ([last] if count > 1 else [])


def _cnet_axis(kind: str, control_net, image, values: list, strength, start, end, cnet_stack) -> XYAxis | None:
    """A ControlNet axis: per value, [(control_net, image, strength, start, end) with the varied part
    set] followed by cnet_stack's entries."""
    part = CNET_PARTS[kind]
    rows = []
    for value in values:
        entry = [control_net, image, strength, start, end]
        entry[part] = value
        rows.append((tuple(entry),) + tuple(tuple(e) for e in (cnet_stack or ())))
    return _axis(kind, rows)


class XYControlNet(Node):
    """XY Plot axis: batch_count values of the ControlNet's strength, start_percent or end_percent
    (target_parameter) from its first to its last value, evenly (the other two at strength /
    start_percent / end_percent), as (control_net, image, ...) followed by cnet_stack's entries.
    Each cell encodes the loader's prompts again with that stack; where the Efficient Loader has
    a cnet_stack of its own, the pack keeps that stack's first ControlNet and image and sets only
    the parameters. Needs the loader's DEPENDENCIES on XY Plot."""
    category = CATEGORY
    control_net: CONTROL_NET
    image: IMAGE
    target_parameter: str = Choice(("strength", "start_percent", "end_percent"), "strength")
    batch_count: int = Int(XYPLOT_DEF, min=0, max=XYPLOT_LIM)
    first_strength: float = Float(0.0, min=0.0, max=10.0, step=0.01)
    last_strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    first_start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    last_start_percent: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    first_end_percent: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    last_end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    cnet_stack: CONTROL_NET_STACK = None
    outputs = {"X or Y": XY}
    comfy = ComfyAlias(("XY Input: Control Net",))

    def run(self):
        kind = {"strength": "ControlNetStrength", "start_percent": "ControlNetStart%",
                "end_percent": "ControlNetEnd%"}[self.target_parameter]
        first, last = getattr(self, f"first_{self.target_parameter}"), getattr(self, f"last_{self.target_parameter}")
        return _cnet_axis(kind, self.control_net, self.image, _spread(self.batch_count, first, last), self.strength,
                          self.start_percent, self.end_percent, self.cnet_stack)


class XYControlNetPlot(Node):
    """Two XY Plot axes at once (X and Y outputs) of one ControlNet's parameters, plot_type naming
    which: X_batch_count values from X_first_value to X_last_value, the same for Y (start and end
    percents held to 1 at most), the third parameter at its own widget; each followed by
    cnet_stack's entries. A count of 0 gives no axis there. Needs the loader's DEPENDENCIES."""
    category = CATEGORY
    control_net: CONTROL_NET
    image: IMAGE
    plot_type: str = Choice(("X: Strength, Y: Start%", "X: Strength, Y: End%", "X: Start%, Y: Strength",
                             "X: Start%, Y: End%", "X: End%, Y: Strength", "X: End%, Y: Start%"),
                            "X: Strength, Y: Start%")
    strength: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    X_batch_count: int = Int(XYPLOT_DEF, min=0, max=XYPLOT_LIM)
    X_first_value: float = Float(0.0, min=0.0, max=10.0, step=0.01)
    X_last_value: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    Y_batch_count: int = Int(XYPLOT_DEF, min=0, max=XYPLOT_LIM)
    Y_first_value: float = Float(0.0, min=0.0, max=10.0, step=0.01)
    Y_last_value: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    cnet_stack: CONTROL_NET_STACK = None
    outputs = {"X": XY, "Y": XY}
    comfy = ComfyAlias(("XY Input: Control Net Plot",))

    def run(self):
        axes = []
        for part, axis in zip(self.plot_type.split(", "), "XY"):
            kind = "ControlNet" + part.split(": ")[1]
            first, last = getattr(self, f"{axis}_first_value"), getattr(self, f"{axis}_last_value")
            if kind != "ControlNetStrength":
                first, last = min(1, first), min(1, last)
            axes.append(_cnet_axis(kind, self.control_net, self.image,
                                   _spread(getattr(self, f"{axis}_batch_count"), first, last), self.strength,
                                   self.start_percent, self.end_percent, self.cnet_stack))
        return tuple(axes)


class XYLoRAPlot(Node):
    """Two XY Plot axes at once (X and Y outputs) of one LoRA: "X: Model Strength, Y: Clip Strength"
    gives X_batch_count model strengths from X_first_value to X_last_value and Y_batch_count clip
    strengths (each evenly, rounded to 3 places) for lora_name, followed by lora_stack's LoRAs, each
    cell loading them in place of the loader's. lora_name "None" gives no axes. Needs the loader's
    DEPENDENCIES on XY Plot. Left out: the three "X: LoRA Batch" modes (LoRA files listed from
    X_batch_path, a folder anywhere on the machine) are refused; model_strength, clip_strength and
    the X_batch_* path widgets belong to them."""
    category = CATEGORY
    input_mode: str = Choice(("X: LoRA Batch, Y: LoRA Weight", "X: LoRA Batch, Y: Model Strength",
                              "X: LoRA Batch, Y: Clip Strength", "X: Model Strength, Y: Clip Strength"),
                             "X: LoRA Batch, Y: LoRA Weight")
    lora_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    model_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    clip_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    X_batch_count: int = Int(XYPLOT_DEF, min=0, max=XYPLOT_LIM)
    X_batch_path: str = Text(BATCH_PATH)
    X_subdirectories: bool = Bool(False)
    X_batch_sort: str = Choice(("ascending", "descending"), "ascending")
    X_first_value: float = Float(0.0, min=-10.0, max=10.0, step=0.01)
    X_last_value: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    Y_batch_count: int = Int(XYPLOT_DEF, min=0, max=XYPLOT_LIM)
    Y_first_value: float = Float(0.0, min=-10.0, max=10.0, step=0.01)
    Y_last_value: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_stack: LORA_STACK = None
    outputs = {"X": XY, "Y": XY}
    comfy = ComfyAlias(("XY Input: LoRA Plot",))

    @classmethod
    def fingerprint(cls, lora_name="None", **widgets):
        return _states("loras", (lora_name,))

    def run(self):
        _no_batch(self.input_mode)
        if self.lora_name == "None":
            return None, None
        stack = tuple(_lora_rows(self.lora_stack))
        x = [((self.lora_name, v, None),) + stack for v in _floats(self.X_batch_count, self.X_first_value,
                                                                    self.X_last_value)]
        y = [((self.lora_name, None, v),) + stack for v in _floats(self.Y_batch_count, self.Y_first_value,
                                                                    self.Y_last_value)]
        return _axis("LoRA MStr", x), _axis("LoRA CStr", y)


# -- Manual XY Entry ------------------------------------------------------------------------------

MANUAL_TYPES = (NOTHING, "Seeds++ Batch", "Steps", "StartStep", "EndStep", "CFG Scale", "Sampler", "Scheduler",
                "Denoise", "VAE", *SR_TYPES, "Checkpoint", "Clip Skip", "LoRA")
MANUAL_FOLDERS = {"Checkpoint": "checkpoints", "VAE": "vae", "LoRA": "loras"}  # the types naming model files
# The types whose text keeps its spaces (the pack removes them from the others)
SPACED_TYPES = (*SR_TYPES, "VAE", "Checkpoint", "LoRA", "Scheduler")
NUMBER_BOUNDS = {"Steps": (int, 1, 10000), "StartStep": (int, 0, 10000), "EndStep": (int, 0, 10000),
                 "CFG Scale": (float, 0, 100), "Denoise": (float, 0, 1), "Clip Skip": (int, -24, -1)}


def _number(text: str, kind: type, what: str):
    try:
        number = kind(text)
    except (ValueError, OverflowError):  # OverflowError: an int past the digits Python reads
        number = None
    if number is None or not math.isfinite(number):  # nan would pass the clamps; inf can't be a count
        raise NodeInputError("plot_value", f"{text[:80]!r} is not a valid {what}: expected a finite number")
    return number


def _one_of(name: str, options, what: str) -> str:
    if name not in options:
        raise NodeInputError("plot_value", f"{name!r} is not a valid {what}; expected one of: {', '.join(options)}")
    return name


def _manual_value(text: str, kind: str):
    """One entry of Manual XY Entry's plot_value as the pack's validate_value reads it: numbers
    clamped to the type's bounds, names checked against the lists."""
    from graphflow.api import folders

    if kind in NUMBER_BOUNDS:
        cast, low, high = NUMBER_BOUNDS[kind]
        return min(max(_number(text, cast, kind), low), high)
    if kind == "Scheduler":
        return _one_of(text, EFF_SCHEDULERS, "scheduler")
    if kind == "VAE":
        return _one_of(text, folders.list_models("vae"), "VAE")
    parts = tuple(part.strip() for part in text.split(",")) if "," in text else None
    if kind == "Sampler":
        if parts is None:
            return _one_of(text, SAMPLER_NAMES, "sampler"), None
        return _one_of(parts[0], SAMPLER_NAMES, "sampler"), _one_of(parts[1].lower(), EFF_SCHEDULERS, "scheduler")
    if kind == "Checkpoint":
        if parts is None:
            return _one_of(text, folders.list_models("checkpoints"), "checkpoint"), None, None
        clip_skip = _number(parts[1], int, "clip skip")
        if not -24 <= clip_skip <= -1:
            raise NodeInputError("plot_value", f"{clip_skip} is not a valid clip skip: expected -24 .. -1")
        return _one_of(parts[0], folders.list_models("checkpoints"), "checkpoint"), clip_skip, None
    # LoRA: "name" at 1, 1; "name,model[,clip]" with clip 1 where left out
    name, model, clip = (parts + (1.0, 1.0))[:3] if parts is not None else (text, 1.0, 1.0)
    _one_of(name, folders.list_models("loras"), "LoRA")
    strengths = tuple(_number(str(v), float, "LoRA strength") for v in (model, clip))
    if not all(-10 <= v <= 10 for v in strengths):
        raise NodeInputError("plot_value", f"LoRA strengths {strengths} must be between -10 and 10")
    return ((name, *strengths),)


def parse_manual_entry(plot_type: str, plot_value: str) -> XYAxis | None:
    """Manual XY Entry's text as the pack reads it (no evaluation): spaces removed except for names
    and prompts, newlines removed, a trailing ";" dropped, entries split at ";". Seeds++ Batch: one
    count (1 .. 50); Sampler / Checkpoint / LoRA: a last entry starting with "," gives the
    missing parts of every other entry; Prompt S/R: the search text then its replacements. Numbers
    out of their range are clamped, except the seed count, which (as in the pack) is refused."""
    if plot_type == NOTHING:
        return None
    if plot_type not in SPACED_TYPES:
        plot_value = plot_value.replace(" ", "")
    entries = plot_value.replace("\n", "").rstrip(";").split(";")
    if plot_type == "Seeds++ Batch":
        if len(entries) != 1:
            raise NodeInputError("plot_value", f"{';'.join(entries)!r} is not a valid batch count: give one number")
        count = _number(entries[0], float, "batch count")
        # the pack clamps int(count) to 1 .. 50 and then refuses it where that changed the number
        if count != min(max(int(count), 1), XYPLOT_LIM):
            raise NodeInputError("plot_value", f"{entries[0]!r} is not a valid batch count: expected a whole number "
                                               f"from 1 to {XYPLOT_LIM}")
        return _axis(plot_type, range(int(count)))
    if plot_type in ("Sampler", "Checkpoint", "LoRA") and entries[-1].startswith(","):
        suffixes = entries.pop().lstrip(",").split(",")
        entries = [",".join(parts + suffixes[len(parts) - 1:]) for parts in (e.split(",") for e in entries)]
    if plot_type in SR_TYPES:
        if entries[0] == "":
            raise NodeInputError("plot_value", "the Prompt S/R value can not be empty: give the search text first")
        return _axis(plot_type, [(entries[0], None if i == 0 else e) for i, e in enumerate(entries)])
    return _axis(plot_type, [_manual_value(e, plot_type) for e in entries])


class XYManualEntry(Node):
    """XY Plot axis typed as text, read by the pack's rules (no evaluation of the text): entries
    separated by ";" — Seeds++ Batch "count" (1 .. 50); Steps / StartStep / EndStep / CFG Scale /
    Denoise / Clip Skip numbers (clamped to their ranges); Sampler "name" or "name,scheduler" (a
    last entry ",scheduler" gives every entry that scheduler); Scheduler, VAE names; Prompt S/R "search;
    replace_1;..."; Checkpoint "name" or "name,clip_skip"; LoRA "name" or "name,model_str,clip_str".
    A name not in its list or a number that doesn't read is refused naming it (the pack prints the
    error and gives no axis)."""
    category = CATEGORY
    plot_type: str = Choice(MANUAL_TYPES, NOTHING)
    plot_value: str = Text("", multiline=True)
    outputs = {"X or Y": XY}
    comfy = ComfyAlias(("XY Input: Manual XY Entry",))

    @classmethod
    def fingerprint(cls, plot_type=NOTHING, plot_value="", **widgets):
        """The named files' states: each entry's name (a checkpoint's or LoRA's before its first ",")."""
        kind = MANUAL_FOLDERS.get(plot_type) if isinstance(plot_type, str) else None  # a linked value may be anything
        if kind is None or not isinstance(plot_value, str):
            return None
        entries = plot_value.replace("\n", "").rstrip(";").split(";")
        return _states(kind, (e.split(",")[0].strip() if "," in e and kind != "vae" else e for e in entries),
                       skip=("",))

    def run(self):
        return parse_manual_entry(self.plot_type, self.plot_value)


MANUAL_SYNTAX = """(type)          (entries, separated by ;)
Seeds++ Batch   count
Steps           steps_1;steps_2;...
StartStep       start_1;start_2;...
EndStep         end_1;end_2;...
CFG Scale       cfg_1;cfg_2;...
Sampler         sampler_1;... or sampler_1,scheduler_1;... or sampler_1;...;,scheduler
Scheduler       scheduler_1;scheduler_2;...
Denoise         denoise_1;denoise_2;...
VAE             vae_1;vae_2;...
+/-Prompt S/R   search;replace_1;replace_2;...
Checkpoint      ckpt_1;... or ckpt_1,clip_skip_1;... or ckpt_1;...;,clip_skip
Clip Skip       clip_skip_1;clip_skip_2;...
LoRA            lora_1;... or lora_1,model_str,clip_str;... or lora_1;...;,model_str,clip_str"""


class XYManualEntryInfo(Node):
    """Efficiency Nodes' notes on Manual XY Entry's syntax, with the sampler and scheduler names;
    it gives nothing and runs nothing (the pack's node has no outputs). The pack's text also lists
    the VAE, checkpoint and LoRA files found when the editor loaded: left out of the default here
    (the file lists are in the editor's choices); a save keeps whatever text it holds."""
    category = CATEGORY
    notes: str = Text(f"_____________SYNTAX_____________\n{MANUAL_SYNTAX}\n\n____________SAMPLERS____________\n"
                      + ";\n".join(SAMPLER_NAMES) + "\n\n___________SCHEDULERS___________\n"
                      + ";\n".join(EFF_SCHEDULERS) + "\n", multiline=True)
    outputs = {}
    comfy = ComfyAlias(("Manual XY Entry Info",))

    def run(self):
        return None


# -- XY Plot --------------------------------------------------------------------------------------

def _checked(value, input_name: str) -> XYAxis:
    if not isinstance(value, XYAxis):
        raise NodeInputError(input_name, f"expected the XY of an XY Input node, got a {type(value).__name__}")
    return value


class XYPlot(Node):
    """Efficiency Nodes' XY Plot, for its samplers' script input: the sampler runs once per cell, X
    values across and Y values down (each an XY input's; one axis alone makes a row or a column),
    on the first latent of its batch, with its other scripts (HighRes-Fix, Noise Control) applied
    to each run, and every cell decoded with its VAE (a VAE must be connected). The grid is drawn
    as the pack draws it: the cells at grid_spacing apart on white, X labels above the top row, Y
    labels left of the first column (Horizontal, or Vertical: turned), in PIL's default font at the
    pack's sizes (the pack's arial.ttf is not ours to ship). The sampler's IMAGE is the cells'
    images, row by row ("Images"), or the grid, RGBA as the pack makes it ("Plot"); its LATENT the
    cells' latents, row by row; the grid is shown either way. XY_flip swaps the axes. Checkpoint,
    LoRA (and LoRA Stacks / LoRA Plot), Prompt S/R, Clip Skip and Control Net axes need dependencies
    from the Efficient Loader (its model, prompts, clip skip, LoRAs and ControlNets are what they
    vary; a cell so changed has its prompts encoded again). cache_models changes nothing
    here (the pack's choice of keeping models loaded between cells). X and Y of the same type
    (except Prompt S/R) are refused (the pack prints an error and plots nothing); each axis holds
    at most 50 values, as the pack's inputs give (its Manual XY Entry and Join take more). Before
    the first cell runs, the grid's size (with a chained HighRes-Fix's scale, an upscale model
    taken as 4x as the pack takes it) is held to the pixels an image may have and the cells' images
    and the grid to the memory, and again once the cells are made; a label is drawn from its first
    256 characters."""
    category = "Efficiency Nodes/Scripts"
    grid_spacing: int = Int(0, min=0, max=500, step=5)
    XY_flip: str = Choice(("False", "True"), "False")
    Y_label_orientation: str = Choice(("Horizontal", "Vertical"), "Horizontal")
    cache_models: str = Choice(("True", "False"), "True")
    ksampler_output_image: str = Choice(("Images", "Plot"), "Images")
    dependencies: DEPENDENCIES = None
    X: XY = None
    Y: XY = None
    outputs = {"SCRIPT": SCRIPT}
    comfy = ComfyAlias(("XY Plot",))

    def run(self):
        x = _checked(self.X, "X") if self.X is not None else XYAxis(NOTHING, ("",))
        y = _checked(self.Y, "Y") if self.Y is not None else XYAxis(NOTHING, ("",))
        if x.kind == y.kind and x.kind not in SR_TYPES:
            if x.kind == NOTHING:
                return None  # as the pack: no script, the sampler runs once
            raise NodeInputError("Y", f"X and Y are both {x.kind}: the input types must be different")
        if (x.kind in LORA_PLOT_TYPES) != (y.kind in LORA_PLOT_TYPES):
            raise NodeInputError("Y" if x.kind in LORA_PLOT_TYPES else "X", "connect both of LoRA Plot's outputs, X "
                                                                            "and Y, to use it")
        if x.kind in LORA_TYPES and y.kind in LORA_TYPES:
            raise NodeInputError("Y", "X and Y input types must be different (LoRA and LoRA Stacks both set the LoRAs)")
        for name, axis in (("X", x), ("Y", y)):
            if len(axis.values) > XYPLOT_LIM:
                raise NodeInputError(name, f"{axis.kind} has {len(axis.values)} values; an XY Plot axis takes at most "
                                           f"{XYPLOT_LIM}")
        needs = [a.kind for a in (x, y) if a.kind in ENCODE_TYPES]
        if needs and self.dependencies is None:
            raise NodeInputError("dependencies", f"{' and '.join(needs)} needs the Efficient Loader's DEPENDENCIES "
                                                 f"connected")
        # As the pack: a Sampler axis beside a Scheduler axis keeps the scheduler's; a Scheduler axis
        # alone is labelled with the sampler; a Checkpoint's VAE gives way to a VAE axis.
        if x.kind == "Sampler" and y.kind == "Scheduler":
            x = XYAxis(x.kind, tuple((s, "") for s, _ in x.values))
        elif y.kind == "Sampler" and x.kind == "Scheduler":
            y = XYAxis(y.kind, tuple((s, "") for s, _ in y.values))
        if x.kind == "Scheduler" and y.kind != "Sampler":
            x = XYAxis(x.kind, tuple((s, None) for s in x.values))
        if y.kind == "Scheduler" and x.kind != "Sampler":
            y = XYAxis(y.kind, tuple((s, None) for s in y.values))
        if x.kind == "Checkpoint" and y.kind == "VAE":
            x = XYAxis(x.kind, tuple((c, skip, None) for c, skip, _ in x.values))
        if self.XY_flip == "True":
            x, y = y, x
        settings = (("X", x), ("Y", y), ("grid_spacing", self.grid_spacing),
                    ("Y_label_orientation", self.Y_label_orientation), ("cache_models", self.cache_models),
                    ("as_plot", self.ksampler_output_image == "Plot"),
                    ("dependencies", _frozen(self.dependencies)))
        return replace(Script(), xyplot=settings)


def _frozen(dependencies):
    """The loader's DEPENDENCIES with its lists (LoRAs, ControlNets) as tuples, so the Script holding
    them stays hashable."""
    if dependencies is None:
        return None
    if not isinstance(dependencies, (tuple, list)) or len(dependencies) != 16:
        raise NodeInputError("dependencies", "expected the DEPENDENCIES of an Efficient Loader or Eff. Loader SDXL")
    return tuple(tuple(tuple(row) if isinstance(row, list) else row for row in part) if isinstance(part, list)
                 else part for part in dependencies)


# -- the samplers' XY branch ----------------------------------------------------------------------

def _outer_first(x_kind: str, y_kind: str) -> bool:
    """Whether the pack runs the Y values in the outer loop (it flips X and Y for models loaded
    once per value, or for a lone Y axis): the order in which the two values set a cell's settings."""
    x_rank = PRIORITY.index(x_kind) if x_kind in PRIORITY else 999
    y_rank = PRIORITY.index(y_kind) if y_kind in PRIORITY else 999
    both_conditioners = x_kind in CONDITIONERS and y_kind in CONDITIONERS
    special = (x_kind == "Refiner On/Off" and y_kind in ("RefineStep", "Steps")) or \
              (x_kind == NOTHING and y_kind != NOTHING)
    return (y_rank < x_rank and not both_conditioners) or special


def _short(text: str) -> str:
    return text.replace("ancestral", "a").replace("uniform", "u").replace("exponential", "exp")


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _weight(value) -> str:
    return format(float(value), ".2f").rstrip("0").rstrip(".")


def _lora_label(stack: tuple) -> tuple[str, int]:
    """A LoRA value's label and the label length the pack holds it to."""
    limit = 50 + 12 * (len(stack) - 1)
    if len(stack) == 1:
        name, model, clip = stack[0]
        model, clip = _weight(model), _weight(clip)
        name = _stem(name)[:limit - len(f"LoRA: ({model})")]
        return (f"LoRA: {name}({model})" if model == clip else f"LoRA: {name}({model},{clip})"), limit
    weights = [(_weight(m), _weight(c)) for _, m, c in stack]
    room = (limit - sum(len(f"({m},{c})") + 2 for m, c in weights)) // len(stack)
    names = [_stem(name)[:room] for name, _, _ in stack]
    return " ".join(f"{n}({m})" if m == c else f"{n}({m},{c})" for n, (m, c) in zip(names, weights)), limit


def _labels(axis: XYAxis, cell: dict) -> list[str]:
    """The header text of each of an axis's values, as the pack writes them (names cut to the
    pack's lengths with "...")."""
    limit = 42
    texts = []
    for value in axis.values:
        kind = axis.kind
        if kind == "Seeds++ Batch":
            text = f"Seed: {cell['seed'] + value}"
        elif kind in ("Steps", "StartStep", "EndStep", "RefineStep", "AddNoise", "ReturnNoise"):
            text = f"{kind}: {value}"
        elif kind == "CFG Scale":
            text = f"CFG: {round(value, 2)}"
        elif kind == "Denoise":
            text = f"Denoise: {round(value, 2)}"
        elif kind == "Sampler":
            sampler, scheduler = value
            text = _short(sampler if scheduler == "" else f"{sampler} ({scheduler or cell['scheduler']})")
        elif kind == "Scheduler":
            text = _short(f"{cell['sampler_name']} ({value[0]})" if isinstance(value, tuple) else value)
        elif kind == "VAE":
            text = f"VAE: {_stem(value)}"
        elif kind in SR_TYPES:
            search, replacement = value
            text = ("(-) " if kind == SR_TYPES[1] else "") + (replacement if replacement is not None else search)
        elif kind == "Checkpoint":
            text = _stem(value[0])
        elif kind == "Clip Skip":
            text = f"ClipSkip ({value})"
        elif kind in LORA_TYPES:
            text, limit = _lora_label(value)
        elif kind in LORA_PLOT_TYPES:
            limit = 50 + 12 * (len(value) - 1)
            text = f"LoRA {'Mstr' if kind == 'LoRA MStr' else 'Cstr'}: {_weight(value[0][LORA_PLOT_TYPES[kind]])}"
        elif kind == "Refiner On/Off":
            text = f"Refiner: {'On' if value < 1 else 'Off'}"
        elif kind in CNET_PARTS:
            text = f"{kind}: {round(value[0][CNET_PARTS[kind]], 3)}"
        else:
            text = ""
        texts.append(text)
    if axis.kind in ("VAE", "Checkpoint", *ALL_LORA_TYPES) and texts:
        cut = max(min(max(len(t) for t in texts), limit), 24)
        texts = [t if len(t) <= cut else t[:cut] + "..." for t in texts]
    return texts


def _apply(cell: dict, kind: str, value, original: dict):
    """A cell's settings with one axis value set, as the pack's define_variable sets them."""
    if kind == "Seeds++ Batch":
        cell["seed"] = original["seed"] + value
    elif kind in ("Steps", "CFG Scale", "Denoise", "StartStep", "EndStep", "RefineStep", "AddNoise", "ReturnNoise"):
        cell[{"Steps": "steps", "CFG Scale": "cfg", "Denoise": "denoise", "StartStep": "start_at_step",
              "EndStep": "end_at_step", "RefineStep": "refine_at_step", "AddNoise": "add_noise",
              "ReturnNoise": "return_with_leftover_noise"}[kind]] = value
    elif kind == "Sampler":
        cell["sampler_name"], scheduler = value
        if scheduler != "":  # "": the Scheduler axis sets it
            cell["scheduler"] = scheduler if scheduler is not None else original["scheduler"]
    elif kind == "Scheduler":
        cell["scheduler"] = value[0] if isinstance(value, tuple) else value
    elif kind == "VAE":
        cell["vae_name"] = value
    elif kind in SR_TYPES:
        key = "positive_text" if kind == SR_TYPES[0] else "negative_text"
        search, replacement = value
        if replacement is not None:
            cell[key] = cell[key].replace(search, replacement, 1)  # the first occurrence, as the pack
    elif kind == "Checkpoint":
        cell["ckpt_name"] = value[0]
        cell["clip_skip"] = value[1] if value[1] is not None else original["clip_skip"]
        if value[2] is not None:
            cell["vae_name"] = value[2]
    elif kind == "Clip Skip":
        cell["clip_skip"] = value
    elif kind in LORA_TYPES:
        cell["loras"] = tuple(value)
    elif kind in LORA_PLOT_TYPES:
        # the pack fills the first LoRA's part left None (the other axis's) from the LoRAs so far
        first = value[0] if not cell["loras"] else tuple(v if v is not None else cell["loras"][0][i]
                                                          for i, v in enumerate(value[0]))
        cell["loras"] = (first,) + tuple(value[1:])
    elif kind == "Refiner On/Off":
        cell["refine_at_step"] = int(value * cell["steps"])
    elif kind in CNET_PARTS:
        # As the pack: the first entry of the stack so far (the loader's, else this value's) with this
        # axis's part, and the parts no axis varies as the first ControlNet value gives them.
        stack = cell["cnet_stack"] or value
        first = list(stack[0])
        first[CNET_PARTS[kind]] = value[0][CNET_PARTS[kind]]
        for part, fixed in cell["cnet_fixed"].items():
            first[part] = fixed
        cell["cnet_stack"] = (tuple(first),) + tuple(stack[1:])


def _grid_checks(columns: int, rows: int, height: int, width: int, spacing: int, orientation: str,
                 x_labels: list | None, y_labels: list | None, as_plot: bool, made: bool = False):
    """Refuse a grid whose cells pass the batch a run may make (the server's limit), whose picture
    (draw_grid's own size, grid_layout) would pass the pixels an image may have or whose images
    would not fit the memory (the planner doesn't see the grid): before the first cell runs, with
    the cells' size as the sampler's scripts make it, and again with the cells made (made)."""
    limits = run_limits()
    if limits.max_batch is not None and columns * rows > limits.max_batch:
        raise NodeInputError("script", f"XY Plot's {columns}x{rows} grid makes a batch of {columns * rows} images and "
                                       f"latents, over the {limits.max_batch} a batch may have here")
    cap = MAX_SIZE * MAX_SIZE if limits.max_pixels is None else min(limits.max_pixels, MAX_SIZE ** 2)
    grid_w, grid_h = grid_layout(columns, rows, height, width, spacing, orientation, x_labels, y_labels)[:2]
    if grid_w * grid_h > cap:
        raise NodeInputError("script", f"XY Plot's {columns}x{rows} grid of {width}x{height} images would be "
                                       f"{grid_w}x{grid_h}, over the {cap} pixels an image may have here")
    check_run_memory("script", f"XY Plot's {columns}x{rows} grid", sampled=None if made else Size(1, height, width),
                     images=Size(held_images(columns * rows, height, width, grid_w * grid_h, as_plot), height, width))


def held_images(cells: int, height: int, width: int, grid_pixels: int, as_plot: bool) -> int:
    """What the XY branch holds at its peak, in cell-sized IMAGEs (float32 RGB) for the memory rule:
    the cells' images and then either the grid being drawn (8-bit RGBA and its float32 RGBA IMAGE,
    GRID_BYTES_PER_PIXEL) or, for "Images", the cells' batch (made once the grid is freed)."""
    cell_bytes = cells * height * width * IMAGE_BYTES_PER_PIXEL
    grid_bytes = grid_pixels * GRID_BYTES_PER_PIXEL
    held = cell_bytes + max(grid_bytes, 0 if as_plot else cell_bytes)
    return math.ceil(held / (height * width * IMAGE_BYTES_PER_PIXEL))


def run_xy_plot(node, sampler_type: str):
    """The samplers' XY branch: each cell's run, then the grid. node: the sampler, its script holding
    an XY Plot; sampler_type regular / advanced / sdxl."""
    import torch

    plot = dict(node.script.xyplot)
    x, y = plot["X"], plot["Y"]
    if node.optional_vae is None:
        raise NodeInputError("optional_vae", "XY Plot decodes every cell: connect a VAE")
    refused = [f"{axis} {kind.kind}" for axis, kind in (("X", x), ("Y", y)) if kind.kind in DISALLOWED[sampler_type]]
    if refused:
        raise NodeInputError("script", f"{SAMPLER_TITLES[sampler_type]} takes no XY Plot {' or '.join(refused)}"
                                       f"{' here' if sampler_type == 'sdxl' else ''}: use another Efficiency sampler "
                                       f"for it")
    deps = plot["dependencies"]
    latent = {"samples": node.latent_image["samples"][:1]}  # the pack plots the first latent of the batch
    if "noise_mask" in node.latent_image:
        latent["noise_mask"] = node.latent_image["noise_mask"][:1]
    seed_name = "seed" if sampler_type == "regular" else "noise_seed"
    original = {name: getattr(node, name) for name in ("steps", "cfg", "sampler_name", "scheduler", "denoise",
                                                       "add_noise", "start_at_step", "end_at_step",
                                                       "refine_at_step", "return_with_leftover_noise")
                if hasattr(node, name)}
    original["seed"] = _seed(getattr(node, seed_name))
    seeds = [max(a.values) for a in (x, y) if a.kind == "Seeds++ Batch"]
    if seeds and original["seed"] + seeds[0] > SEED_MAX:
        raise NodeInputError(seed_name, f"XY Plot's Seeds++ Batch runs seeds {original['seed']} .. "
                                        f"{original['seed'] + seeds[0]}, past the largest seed {SEED_MAX}: "
                                        f"lower the seed or the batch count")
    if deps is not None:
        (original["vae_name"], original["ckpt_name"], original["clip"], original["clip_skip"], *_,
         original["positive_text"], original["negative_text"], original["token_normalization"],
         original["weight_interpretation"], _, _, _, loras, original["cnet_stack"]) = deps
        original["loras"] = () if any(a.kind in ALL_LORA_TYPES for a in (x, y)) else tuple(loras or ())
        cnet_axis = next((a for a in (x, y) if a.kind in CNET_PARTS), None)
        if cnet_axis is not None:  # the parts no axis varies, as the first ControlNet value has them
            original["cnet_fixed"] = {part: cnet_axis.values[0][0][part] for part in CNET_PARTS.values()
                                      if part not in {CNET_PARTS.get(x.kind), CNET_PARTS.get(y.kind)}}
    samples = latent["samples"]
    base = replace(node.script, xyplot=None)
    labels_cell = dict(original)
    x_labels = _labels(x, labels_cell) if x.kind != NOTHING else None
    y_labels = _labels(y, labels_cell) if y.kind != NOTHING else None
    layout = (len(x.values), len(y.values))
    style = (plot["grid_spacing"], plot["Y_label_orientation"], x_labels, y_labels, plot["as_plot"])
    _grid_checks(*layout, *hires_image_size(base, samples.shape[-2], samples.shape[-1]), *style)

    kinds = {x.kind, y.kind}
    first, second = (y, x) if _outer_first(x.kind, y.kind) else (x, y)
    loaded = {}  # (checkpoint, LoRAs) -> (model, clip, VAE): each loaded once per plot
    cells = {}
    for first_index, first_value in enumerate(first.values):
        for second_index, second_value in enumerate(second.values):
            cell = dict(original)
            _apply(cell, first.kind, first_value, original)
            _apply(cell, second.kind, second_value, original)
            run = copy.copy(node)  # the sampler with this cell's settings
            for name in ("steps", "cfg", "sampler_name", "scheduler", "denoise", "add_noise", "start_at_step",
                         "end_at_step", "refine_at_step", "return_with_leftover_noise"):
                if hasattr(node, name):
                    setattr(run, name, cell[name])
            run.script, run.latent_image = base, latent
            model, positive, negative, run.optional_vae = _cell_models(node, cell, kinds, loaded)
            if sampler_type != "sdxl":  # the SDXL sampler's models come in its SDXL_TUPLE, which no axis changes
                run.model, run.positive, run.negative = model, positive, negative
            done, images = run.sample(cell["seed"])
            key = (first_index, second_index) if first is x else (second_index, first_index)  # (X, Y) positions
            cells[key] = (done, images if images is not None else _decode(done, run.optional_vae, node.vae_decode))

    order = [cells[(column, row)] for row in range(len(y.values)) for column in range(len(x.values))]  # row by row
    images = [image for _, image in order]
    if any(image.shape[1:] != images[0].shape[1:] for image in images):
        raise NodeInputError("script", "XY Plot's cells came out at different sizes; they can't make one batch")
    latents = {key: torch.cat([done[key] for done, _ in order]) for key in order[0][0] if
               all(key in done and torch.is_tensor(done[key]) for done, _ in order)}
    _grid_checks(*layout, images[0].shape[1], images[0].shape[2], *style, made=True)  # the cells' real size
    grid = draw_grid([img[0] for img in images], *layout, x_labels, y_labels, plot["grid_spacing"],
                     plot["Y_label_orientation"])
    show(images=temp_pngs(grid))
    if not plot["as_plot"]:
        del grid  # freed before the batch is made: held_images counts one or the other
    output = grid if plot["as_plot"] else torch.cat(images)
    if sampler_type == "sdxl":
        return node.sdxl_tuple, latents, node.optional_vae, output
    return node.model, node.positive, node.negative, latents, node.optional_vae, output


def _cell_models(node, cell: dict, kinds: set, loaded: dict):
    """(model, positive, negative, VAE) a cell samples with: the checkpoint and LoRAs loaded again
    where an axis changes them (with the Efficient Loader's loading code), the prompts encoded again
    as the loader encodes them (with its ControlNets) where an axis changes what they depend on,
    the VAE by name where an axis names it; else the sampler's own."""
    model, positive, negative = (getattr(node, name, None) for name in ("model", "positive", "negative"))
    vae = node.optional_vae
    clip = cell.get("clip")
    if kinds & {"Checkpoint", *ALL_LORA_TYPES}:
        key = (cell["ckpt_name"], cell["loras"])
        if key not in loaded:
            loaded[key] = _load(cell["ckpt_name"], "script", BAKED_VAE, [(*row, "script") for row in cell["loras"]])
        model, clip, baked = loaded[key]
        if hasattr(node, "loaded_model"):  # the sampler's own change to its MODEL (Fooocus' sharpness)
            model = node.loaded_model(model)
    if kinds & set(ENCODE_TYPES):
        clip = _set_clip_skip(clip, cell["clip_skip"], "script")
        positive, negative = (advanced_encode(clip, cell[name], cell["token_normalization"],
                                              cell["weight_interpretation"], "script")
                              for name in ("positive_text", "negative_text"))
        positive, negative = _apply_cnet_stack(positive, negative, cell["cnet_stack"])
    if "VAE" in kinds or "Checkpoint" in kinds:
        if cell["vae_name"] == BAKED_VAE:
            if "ckpt_name" not in cell:
                raise NodeInputError("script", "XY Plot's VAE Baked VAE is the checkpoint's own: connect the "
                                               "Efficient Loader's DEPENDENCIES to XY Plot")
            key = (cell["ckpt_name"], cell["loras"] if kinds & {"Checkpoint", *ALL_LORA_TYPES} else ())
            if key not in loaded:
                loaded[key] = _load(cell["ckpt_name"], "script", BAKED_VAE, [(*r, "script") for r in key[1]])
            vae = loaded[key][2]
        else:
            vae = _core(LoadVAE, {"vae_name": "script"}, vae_name=cell["vae_name"])
    return model, positive, negative, vae


def _font(size: int):
    from PIL import ImageFont
    return ImageFont.load_default(size=max(1, size))


def _fitted_size(text: str, size: int, room: int) -> int:
    """The pack's adjusted_font_size: the size shrunk so the text takes at most 90% of room."""
    length = _font(size).getlength(text)
    return int(size * (room / length) * 0.9) if length > room * 0.9 else size


def grid_layout(columns: int, rows: int, height: int, width: int, spacing: int, orientation: str,
                x_labels: list | None, y_labels: list | None) -> tuple[int, int, int, int, int]:
    """The pack's plot layout for cells of height x width: (grid width, grid height, the Y labels'
    column width, the X labels' row height / 3, where the first column starts)."""
    top = width // 15
    left = top
    if orientation != "Vertical":
        longest = max((len(s[:LABEL_MAX]) for s in y_labels), default=0) if y_labels else 0
        left = int((min(width, height) + int(0.2 * abs(width - height))) * _y_scale(longest))
    x_start = 0 if y_labels is None else (3 * left if orientation == "Vertical" else left)
    grid_w = columns * width + (columns - 1) * spacing + x_start
    grid_h = rows * height + (rows - 1) * spacing + (0 if x_labels is None else 3 * top)
    return grid_w, grid_h, left, top, x_start


def _y_scale(longest: int) -> float:
    """The pack's Horizontal Y label column, scaled to the longest label's length."""
    return min(longest + 4, 24) / 24


def draw_grid(images: list, columns: int, rows: int, x_labels: list | None, y_labels: list | None, spacing: int,
              orientation: str):
    """The pack's plot: images ([H, W, C] each, row by row) pasted on white, X labels centred over
    the top row, Y labels beside the first column, as an RGBA IMAGE of one. A label is cut to its
    first LABEL_MAX characters (longer, its font is shrunk past reading anyway, and measuring it
    takes seconds)."""
    import numpy as np
    import torch
    from PIL import Image, ImageDraw

    from graphflow.images import image_to_pil

    height, width = images[0].shape[0], images[0].shape[1]
    x_labels, y_labels = ([s[:LABEL_MAX] for s in labels] if labels is not None else None
                          for labels in (x_labels, y_labels))
    grid_w, grid_h, left, top, x_start = grid_layout(columns, rows, height, width, spacing, orientation, x_labels,
                                                     y_labels)
    y_scale = _y_scale(max((len(s) for s in y_labels), default=0) if y_labels else 0)
    y_offset = 0 if x_labels is None else 3 * top
    grid = Image.new("RGBA", (grid_w, grid_h), (255, 255, 255, 255))
    for row in range(rows):
        x_offset = x_start
        for column in range(columns):
            picture = image_to_pil(images[row * columns + column])  # one 8-bit copy at a time
            grid.paste(picture, (x_offset, y_offset))
            if row == 0 and x_labels is not None:
                text = x_labels[column]
                size = _fitted_size(text, int(48 * picture.width / 512), picture.width)
                label_h = int(size * 1.5)
                label = Image.new("RGBA", (picture.width, label_h), (255, 255, 255, 0))
                draw = ImageDraw.Draw(label)
                _, _, text_w, text_h = draw.textbbox((0, 0), text, font=_font(size))
                draw.text(((picture.width - text_w) // 2, (label_h - text_h) // 2), text, fill="black",
                          font=_font(size))
                grid.alpha_composite(label, (x_offset, (y_offset - label_h) // 2))
            if column == 0 and y_labels is not None:
                text = y_labels[row]
                if orientation == "Vertical":
                    size = _fitted_size(text, int(48 * width / 512), width)
                else:
                    room = int(left / y_scale)
                    size = _fitted_size(text, int(48 * (left / y_scale) / 512), room)
                label = Image.new("RGBA", (picture.height, int(size * 1.2)), (255, 255, 255, 0))
                draw = ImageDraw.Draw(label)
                _, _, text_w, text_h = draw.textbbox((0, 0), text, font=_font(size))
                draw.text(((picture.height - text_w) // 2, (size - text_h) // 2), text, fill="black", font=_font(size))
                if orientation == "Vertical":
                    label = label.rotate(90, expand=True)
                    label_y = y_offset + (picture.height - label.height) // 2
                else:  # the pack's placement: the label's top at the image's lower part
                    label_y = y_offset + picture.height - (picture.height - label.height) // 2
                grid.alpha_composite(label, ((x_offset - label.width) // 2, label_y))
            x_offset += picture.width + spacing
        y_offset += height + spacing
    array = np.asarray(grid, dtype=np.float32)
    del grid
    array /= 255.0  # in place: no second float copy
    return torch.from_numpy(array)[None]
