"""ComfyUI_essentials' (cubiq's) parameter-sweep sampler and its companions, Image Histogram Match
and Flux Model Blocks Buster, under the pack's class names, inputs and outputs. Read from the
pack's source as stored at commits 5b75a0e84ba92f944d801b2c9dfbf9940abdeba3 (sampling.py:
FluxSamplerParams+, PlotParameters+, TextEncodeForSamplerParams+, LorasForFluxParams+; the same as
at 0fbb1a2974d4c55fa7c2252f721f2b6c1d795c34)
and 1ab2482e018c14adad4ee3e3d46b9a7f0e6dd0b7 (utils.py: parse_string_to_list, the number lists);
ImageHistogramMatch+ from c861cd6baf531e2e52ae2f8562731dd5f113c7bc (image.py) and
b0cfa1bfb4f27fdf41d021b27d7ac930e704b0e7 (histogram_matching.py).

FluxSamplerParams+: one sampler run per combination of its lists (seeds, samplers, schedulers,
steps, guidance, max_shift, base_shift, denoise, prompts from TextEncodeForSamplerParams+, LoRA
strengths from LorasForFluxParams+), through the core nodes ModelSamplingFlux (ModelSamplingAuraFlow
for ComfyUI's FLOW models), FluxGuidance, BasicGuider, RandomNoise, KSamplerSelect, BasicScheduler
and SamplerCustomAdvanced; its PARAMS go to PlotParameters+, which draws the grid.
ImageHistogramMatch+: its "skimage" method (scikit-image's match_histograms, which the pack calls
and graphflow doesn't declare) and its own "pytorch" tables, both written here in torch.
(The other nodes of the pack are in nodes/pack_nodes_essentials.py and
nodes/pack_nodes_essentials_misc.py, with what is left out there.)
FluxBlocksBuster+ (conditioning.py at ef704350e7d44d3dc744d1b386cc65dd3e93a090): FLUX's double / single
blocks' weights scaled, as weight patches.
Left out: none of these; the pack's attention seekers (FluxAttentionSeeker+, SD3AttentionSeekerLG+
/ T5+) remain left out (see nodes/pack_nodes_essentials.py).
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import random

from graphflow.api import CLIP, CONDITIONING, IMAGE, LATENT, MODEL, STRING, Choice, ComfyAlias, Estimate, Float, Int, \
    Node, NodeInputError, Size, Text, check_interrupted, check_run_memory, folders, repeated, run_limits, \
    sampling_memory, socket_type, warn
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from nodes.conditioning import CLIPEncode
from nodes.custom_sampling import BasicGuider, BasicScheduler, KSamplerSelect, RandomNoise, SamplerCustomAdvanced
from nodes.flow import FluxGuidance, ModelSamplingAuraFlow, ModelSamplingFlux
from nodes.image import MAX_SIZE, _image
from nodes.latent import LatentBatch
from nodes.loaders import LoadLoRA
from nodes.pack_nodes import _core
from nodes.sampling import SEED_MAX

COMFY_PACK = "ComfyUI_essentials"  # the custom node pack this module's ComfyUI classes come from
log = logging.getLogger("graphflow.nodes.essentials_params")

SAMPLER_PARAMS = socket_type("SAMPLER_PARAMS", "#8d6e63", "ComfyUI_essentials' sampler parameters: one dict per "
                                                          "image of a FluxSamplerParams+ sweep (seed, sampler, ...)")
LORA_PARAMS = socket_type("LORA_PARAMS", "#8d6e63", "ComfyUI_essentials' LoRA for a sweep: {'loras': [name], "
                                                    "'strengths': [[strength, ...]]}")

# A sweep runs the sampler once per combination: more runs than this are refused before the first one
# (the pack has no limit; all samplers x all schedulers is 42 x 9 = 378 runs).
MAX_RUNS = 1000
MAX_STEPS = 10000  # a step count's bound, as KSampler's
RANDOM_SEED_MAX = 999999  # the pack's "?" seed: random.randint(0, 999999)


# -- the pack's lists ---------------------------------------------------------------------------


def _number(text: str, name: str):
    """One number as the pack reads it: a float when it has a '.', else an int. The pack reads
    anything else as 0; here it is refused by name."""
    try:
        value = float(text) if "." in text else int(text)
        finite = math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        raise NodeInputError(name, f"{text.strip()[:20]!r}... is too large a number") from None
    except ValueError:
        hint = " (write it with a decimal point: the pack reads a number without one as an integer)" \
            if _is_float(text) else ""
        raise NodeInputError(name, f"{text.strip()!r} is not a number{hint}; expected numbers separated by commas, "
                                   f"or a range start...end+step") from None
    if not finite:
        raise NodeInputError(name, f"{text.strip()!r} is not a finite number")
    return value


def _is_float(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _decimals(text: str) -> int:
    """The digits after the '.' (the pack rounds each value to its text's decimals)."""
    return len(text.split(".")[1]) if "." in text else 0


def _number_range(item: str, name: str) -> list:
    """The pack's range "start...end+step": start, start + step, ... while <= end, each rounded to
    the step's decimals (the sum is accumulated as the pack does, so 0...1+0.1 ends at 1.0). A step
    against the direction is turned round; start above end gives nothing (the pack counts up only)."""
    start_text, _, rest = item.partition("...")
    if "..." in rest or rest.count("+") != 1:
        raise NodeInputError(name, f"{item!r}: expected a range written start...end+step (such as 1...10+1)")
    end_text, step_text = rest.split("+")
    start, end, step = (_number(t, name) for t in (start_text, end_text, step_text))
    decimals = _decimals(step_text)
    if (start > end and step > 0) or (start < end and step < 0):
        step = -step
    if start > end:
        return []
    if step <= 0:  # the pack's loop would never end
        raise NodeInputError(name, f"{item!r}: the step must not be 0 (and not below 0 when start and end are equal)")
    count = (float(end) - float(start)) / float(step) + 1  # in floats: inf rather than an OverflowError
    if count > MAX_RUNS:
        shown = f"{math.floor(count)} values" if math.isfinite(count) else "too many values"
        raise NodeInputError(name, f"{item!r} gives {shown}: expected at most {MAX_RUNS} (each value is a sampler "
                                   f"run)")
    values, current = [], start
    for _ in range(MAX_RUNS + 1):  # bounded: the pack's loop never ends where adding the step changes nothing
        if current > end:
            return values
        values.append(round(current, decimals))
        if current + step == current:
            raise NodeInputError(name, f"{item!r}: adding the step {step_text.strip()} to {current} changes nothing "
                                       f"(too small for the number's precision), so the range would never end")
        current += step
    raise NodeInputError(name, f"{item!r} gives more than {MAX_RUNS} values (each value is a sampler run)")


def number_list(text: str, name: str) -> list:
    """The pack's parse_string_to_list: comma-separated numbers (each rounded to its own decimals:
    "20" an int, "3.50" the float 3.5) and ranges "start...end+step"."""
    values = []
    for item in text.split(","):
        item = item.strip()
        if "..." in item:
            values += _number_range(item, name)
        else:
            values.append(round(_number(item, name), _decimals(item)))
        if len(values) > MAX_RUNS:
            raise NodeInputError(name, f"more than {MAX_RUNS} values (each value is a sampler run)")
    if not values:
        raise NodeInputError(name, f"{text!r} gives no values (a range counts up only: start...end+step with "
                                   f"start at most end)")
    return values


def seed_list(text: str, name: str = "seed") -> list[int]:
    """The pack's seeds: separated by commas or new lines; an item with a '?' is a random seed from
    0 to 999999 (a new one each time the node runs)."""
    seeds = []
    for item in text.replace("\n", ",").split(","):
        if "?" in item:
            seeds.append(random.randint(0, RANDOM_SEED_MAX))
            continue
        try:
            seed = int(item)
        except ValueError:
            raise NodeInputError(name, f"{item.strip()!r} is not a seed: expected whole numbers or '?' (a random "
                                       f"seed) separated by commas") from None
        if not 0 <= seed <= SEED_MAX:
            raise NodeInputError(name, f"seed {seed} is out of range: expected 0 to {SEED_MAX}")
        seeds.append(seed)
    if len(seeds) > MAX_RUNS:
        raise NodeInputError(name, f"{len(seeds)} seeds: expected at most {MAX_RUNS} (each seed is a sampler run)")
    return seeds


def name_list(text: str, known, fallback: str, name: str, quiet: bool = False) -> list[str]:
    """The pack's sampler / scheduler list: "*" all of them; a text starting with "!" all but the
    names listed after it; else the names listed (commas or new lines). Names not known are left
    out (with a warning here); when none is left, `fallback` (the pack's: ipndm, simple)."""
    if text == "*":
        return list(known)
    items = text.replace("\n", ",").split(",")
    if text.startswith("!"):
        excluded = {item.strip("! ") for item in items}
        chosen = [k for k in known if k not in excluded]
    else:
        chosen = [item.strip() for item in items if item.strip() in known]
        unknown = [item.strip() for item in items if item.strip() and item.strip() not in known]
        if unknown and not quiet:
            warn(f"{name}: {', '.join(map(repr, unknown))} unknown here, left out (as the pack leaves out names "
                 f"its ComfyUI doesn't know)")
    if not chosen and not quiet:
        warn(f"{name}: no known {name} in {text!r}: sampling with {fallback}, as the pack does")
    return chosen or [fallback]


def _whole(values: list, name: str, least: int, most: int) -> list[int]:
    """Numbers that must be whole (steps): 20.0 is 20; refused by name outside least..most."""
    out = []
    for v in values:
        if v != int(v) or not least <= v <= most:
            raise NodeInputError(name, f"{v}: expected whole numbers from {least} to {most}")
        out.append(int(v))
    return out


def _within(values: list, name: str, least: float, most: float | None = None) -> list:
    for v in values:
        if v < least or (most is not None and v > most):
            raise NodeInputError(name, f"{v}: expected values from {least}" + (f" to {most}" if most is not None
                                                                                else " up"))
    return values


def is_flow_type(model) -> bool:
    """Whether ComfyUI types this flow MODEL ModelType.FLOW (FLUX schnell, SD3, AuraFlow, Wan, ...),
    which the pack samples with ModelSamplingAuraFlow's shift, as against ModelType.FLUX (FLUX dev,
    Chroma, Qwen-Image, LTX-Video: ModelSamplingFlux). Other models are refused: the pack would give
    them FLUX's flow schedule, which they can't sample."""
    from graphflow.models.architectures import ARCHITECTURES
    if getattr(model, "prediction", None) != "flow":
        raise NodeInputError("model", f"the parameter sampler samples flow models (FLUX, SD3, ...); this one "
                                      f"predicts {getattr(model, 'prediction', '?')!r}, which the pack would sample "
                                      f"with FLUX's flow schedule")
    arch = getattr(model, "arch", None)
    if arch == "flux" and not getattr(model, "guidance_embed", True):
        return True  # schnell: ComfyUI's FluxSchnell is a FLOW model
    spec = ARCHITECTURES.get(arch)
    return spec is None or spec.schedule != "flux"


# -- nodes --------------------------------------------------------------------------------------


class LorasForFluxParams(Node):
    """A LoRA and its strengths for the parameter sampler (ComfyUI_essentials' LoRA for Flux
    Parameters): strength_model_1 is a list as the sampler's numbers are ("0.5, 1.0" or
    "0...1+0.25"); the sampler applies the LoRA to the model at each strength in turn (the text
    encoder is left as it is). The pack's three more LoRA inputs are commented out in its source,
    so it has one, as here."""
    category = "essentials/sampling"
    lora_1: str = Choice(lambda: folders.list_models("loras"), model_folder="loras")
    strength_model_1: str = Text("1.0")
    outputs = {"LORA_PARAMS": LORA_PARAMS}
    comfy = ComfyAlias(("LorasForFluxParams+",))

    def run(self):
        return {"loras": [self.lora_1], "strengths": [number_list(self.strength_model_1, "strength_model_1")]}


class TextEncodeForSamplerParams(Node):
    """Several prompts for the parameter sampler (ComfyUI_essentials' Text Encode for Sampler
    Params): the text is cut at each "---" that ends a line (a line ending in four or more of
    - * = ~ counts as "---"); each part, stripped, is encoded as CLIPTextEncode does, empty parts
    skipped. Gives the texts and their conditionings, for FluxSamplerParams+ only (the sampler runs
    once per prompt; other samplers can't read it)."""
    category = "essentials/sampling"
    text: str = Text("Separate prompts with at least three dashes\n---\nLike so", multiline=True,
                     dynamic_prompts=True)
    clip: CLIP
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("TextEncodeForSamplerParams+",))

    def run(self):
        import re
        parts = re.sub(r"[-*=~]{4,}\n", "---\n", self.text).split("---\n")  # the pack's fixed pattern
        prompts = [part.strip() for part in parts if part.strip()]
        if not prompts:
            raise NodeInputError("text", "no prompt: the text is empty between its --- separators")
        if len(prompts) > MAX_RUNS:
            raise NodeInputError("text", f"{len(prompts)} prompts: expected at most {MAX_RUNS}")
        return {"text": prompts, "encoded": [_core(CLIPEncode, text=p, clip=self.clip) for p in prompts]}


def _prompts(conditioning) -> tuple[list, list]:
    """(texts, conditionings): TextEncodeForSamplerParams+'s several, or one plain CONDITIONING."""
    if isinstance(conditioning, dict) and "encoded" in conditioning:
        texts, encoded = conditioning.get("text"), conditioning["encoded"]
        if not isinstance(encoded, list) or not encoded or not isinstance(texts, list) or len(texts) != len(encoded):
            raise NodeInputError("conditioning", "expected TextEncodeForSamplerParams+'s prompts: as many texts as "
                                                 "encoded conditionings")
        return texts, encoded
    if not isinstance(conditioning, list):
        raise NodeInputError("conditioning", "expected a CONDITIONING (or TextEncodeForSamplerParams+'s prompts)")
    return [None], [conditioning]


def _lora_strengths(loras) -> tuple[str | None, list]:
    """(LoRA name, strengths) of LorasForFluxParams+'s value; (None, [None]) without one."""
    if loras is None:
        return None, [None]
    if not isinstance(loras, dict) or not loras.get("loras") or not loras.get("strengths") \
            or not isinstance(loras["strengths"][0], list) or not loras["strengths"][0]:
        raise NodeInputError("loras", "expected LorasForFluxParams+'s LORA_PARAMS: a LoRA and its strengths")
    return loras["loras"][0], loras["strengths"][0]  # the pack sweeps its first LoRA only


def _known_runs(widgets: dict) -> int | None:
    """The sweep's run count from the widgets alone (prompts and LoRA strengths count 1, max_shift 1
    since FLOW models sample at max_shift 0): a lower bound; None while a list is linked or wrong."""
    try:
        counts = [len(widgets["seed"].replace("\n", ",").split(","))]
        counts += [len(name_list(widgets[name], known, fallback, name, quiet=True))
                   for name, known, fallback in (("sampler", SAMPLER_NAMES, "ipndm"),
                                                 ("scheduler", SCHEDULER_NAMES, "simple"))]
        counts += [len(number_list(widgets[name], name)) if widgets[name] else 1
                   for name in ("steps", "guidance", "base_shift", "denoise")]
    except (KeyError, AttributeError, TypeError, NodeInputError):
        return None
    return math.prod(counts)


class FluxSamplerParams(Node):
    """Sample once per combination of lists of settings (ComfyUI_essentials' Flux Sampler
    Parameters), to compare them; PlotParameters+ draws the results in a grid. Each list is
    separated by commas: seed (whole numbers; "?" a random one from 0 to 999999), sampler and
    scheduler (names; "*" all of them; "!a, b" all but a and b; unknown names are left out with a
    warning, and none left means ipndm / simple, as the pack), steps, guidance, max_shift,
    base_shift and denoise (numbers, each rounded to its decimals, or ranges start...end+step such
    as 0.5...1+0.25). Empty: steps 20 (4 for ComfyUI's FLOW models such as FLUX schnell), guidance
    3.5, denoise 1.0, max_shift 1.15 and base_shift 0.5; a FLOW model (FLUX schnell, SD3, AuraFlow)
    is sampled with ModelSamplingAuraFlow at shift base_shift (empty: 1.0), max_shift being 0.
    conditioning may be TextEncodeForSamplerParams+'s prompts (one run each); loras
    LorasForFluxParams+'s strengths (one run each).
    Each run is the core nodes' FLUX path: ModelSamplingFlux (the latent's size; max_shift,
    base_shift), FluxGuidance (guidance), BasicGuider, RandomNoise (seed), KSamplerSelect,
    BasicScheduler (scheduler, steps, denoise) and SamplerCustomAdvanced, whose denoised_output is
    kept (as the pack). The latents come out as one batch in the pack's order (LoRA strength,
    prompt, seed, max_shift, base_shift, guidance, sampler, scheduler, steps, denoise: the last
    varies fastest), each run's parameters and time in params.
    Differences: at most 1000 runs (the pack has no limit), refused before the first; a list item
    that is no number, a step of 0 and other values the pack reads as 0 or loops on are refused by
    name; SD1.x / SDXL models (eps / v) are refused, which the pack samples with FLUX's schedule."""
    category = "essentials/sampling"
    model: MODEL
    conditioning: CONDITIONING
    latent_image: LATENT
    seed: str = Text("?")
    sampler: str = Text("euler")
    scheduler: str = Text("simple")
    steps: str = Text("20")
    guidance: str = Text("3.5")
    max_shift: str = Text("")
    base_shift: str = Text("")
    denoise: str = Text("1.0")
    loras: LORA_PARAMS = None
    outputs = {"latent": LATENT, "params": SAMPLER_PARAMS}
    comfy = ComfyAlias(("FluxSamplerParams+",))

    @classmethod
    def estimate(cls, widgets, inputs):
        """One latent batch per run (known from the widgets; prompts and LoRA strengths count once),
        sampled one at a time."""
        size = inputs.get("latent_image")
        return Estimate(repeated(size, _known_runs(widgets)).size, memory=sampling_memory(size))

    def _lists(self, flow_type: bool) -> dict:
        steps = _whole(number_list(self.steps or ("4" if flow_type else "20"), "steps"), "steps", 1, MAX_STEPS)
        if flow_type:
            max_shifts = [0]
            base_shifts = number_list(self.base_shift or "1.0", "base_shift")
            for shift in base_shifts:
                if shift <= 0:
                    raise NodeInputError("base_shift", f"{shift}: a FLOW model's shift must be above 0")
        else:
            max_shifts = number_list(self.max_shift or "1.15", "max_shift")
            base_shifts = number_list(self.base_shift or "0.5", "base_shift")
        return {"seed": seed_list(self.seed),
                "max_shift": max_shifts, "base_shift": base_shifts,
                "guidance": number_list(self.guidance or "3.5", "guidance"),
                "sampler": name_list(self.sampler, SAMPLER_NAMES, "ipndm", "sampler"),
                "scheduler": name_list(self.scheduler, SCHEDULER_NAMES, "simple", "scheduler"),
                "steps": steps,
                "denoise": _within(number_list(self.denoise or "1.0", "denoise"), "denoise", 0.0, 1.0)}

    def _check_size(self, lists: dict, runs: int, batch: int) -> None:
        longest = max(lists, key=lambda k: len(lists[k]))
        if runs > MAX_RUNS:
            counts = " x ".join(f"{len(v)} {k}" for k, v in lists.items() if len(v) > 1)
            raise NodeInputError(longest, f"{runs} runs ({counts}): expected at most {MAX_RUNS}")
        limits = run_limits()
        if limits.max_batch is not None and runs * batch > limits.max_batch:
            raise NodeInputError(longest, f"{runs} runs of a batch of {batch} make a batch of {runs * batch}, more "
                                          f"than this server allows ({limits.max_batch})")
        if limits.max_steps is not None and max(lists["steps"]) > limits.max_steps:
            raise NodeInputError("steps", f"{max(lists['steps'])} steps is more than this server allows "
                                          f"({limits.max_steps})")

    def run(self):
        import time
        import torch
        samples = self.latent_image.get("samples") if isinstance(self.latent_image, dict) else None
        if not torch.is_tensor(samples) or samples.ndim != 4:
            raise NodeInputError("latent_image", "expected a LATENT: a dict with 'samples' [B, C, H, W]")
        flow_type = is_flow_type(self.model)
        lists = self._lists(flow_type)
        texts, encoded = _prompts(self.conditioning)
        lora_name, strengths = _lora_strengths(self.loras)
        runs = len(texts) * len(strengths) * math.prod(len(v) for v in lists.values())
        self._check_size({**lists, "conditioning": texts, "loras": strengths}, runs, samples.shape[0])
        width, height = samples.shape[-1] * 8, samples.shape[-2] * 8
        out, params = None, []
        for strength in strengths:
            model = self.model if lora_name is None else _core(
                LoadLoRA, {"lora_name": "loras", "strength_model": "loras"}, model=self.model, clip=None,
                lora_name=lora_name, strength_model=strength, strength_clip=0.0)[0]
            for (text, cond), seed, max_shift, base_shift in itertools.product(
                    zip(texts, encoded), lists["seed"], lists["max_shift"], lists["base_shift"]):
                if flow_type:
                    shifted = _core(ModelSamplingAuraFlow, model=model, shift=base_shift)
                else:
                    shifted = _core(ModelSamplingFlux, model=model, max_shift=max_shift, base_shift=base_shift,
                                    width=width, height=height)
                noise = _core(RandomNoise, noise_seed=seed)
                for guidance, sampler, scheduler, steps, denoise in itertools.product(
                        lists["guidance"], lists["sampler"], lists["scheduler"], lists["steps"], lists["denoise"]):
                    check_interrupted()
                    log.info("sampling %d/%d: seed %s, sampler %s, scheduler %s, steps %s, guidance %s, max_shift %s, "
                             "base_shift %s, denoise %s%s", len(params) + 1, runs, seed, sampler, scheduler, steps,
                             guidance, max_shift, base_shift, denoise,
                             f", lora {lora_name} at {strength}" if lora_name else "")
                    guider = _core(BasicGuider, model=shifted,
                                   conditioning=_core(FluxGuidance, conditioning=cond, guidance=guidance))
                    sigmas = _core(BasicScheduler, model=shifted, scheduler=scheduler, steps=steps, denoise=denoise)
                    started = time.time()
                    _, latent = _core(SamplerCustomAdvanced, noise=noise, guider=guider,
                                      sampler=_core(KSamplerSelect, sampler_name=sampler), sigmas=sigmas,
                                      latent_image=self.latent_image)
                    params.append({"time": time.time() - started, "seed": seed, "width": width, "height": height,
                                   "sampler": sampler, "scheduler": scheduler, "steps": steps, "guidance": guidance,
                                   "max_shift": max_shift, "base_shift": base_shift, "denoise": denoise,
                                   "prompt": text, "lora": lora_name,
                                   "lora_strength": 0 if strength is None else strength})
                    out = latent if out is None else _core(LatentBatch, samples1=out, samples2=latent)
        return out, params


PARAM_KEYS = ("none", "time", "seed", "steps", "denoise", "sampler", "scheduler", "guidance", "max_shift",
              "base_shift", "lora_strength")
PLOT_FONT = "ShareTechMono-Regular.ttf"  # the pack's font: used when models/fonts has it
TEXT_PADDING = 3


def _plot_font(size: int):
    """The pack's font (ShareTechMono-Regular.ttf in models/fonts) at `size`, else Pillow's default."""
    from PIL import ImageFont
    try:
        path = folders.find_model("fonts", PLOT_FONT, inside=True)
    except (FileNotFoundError, ValueError):  # UnsafePathError is a ValueError
        return ImageFont.load_default(size)
    return ImageFont.truetype(str(path), size, layout_engine=ImageFont.Layout.BASIC)


def _text_rows(lines: list[str], width: int, line_height: int, font):
    """White text lines on black, each line_height tall, as a [3, H, W] tensor."""
    import numpy as np
    import torch
    from PIL import Image, ImageDraw
    picture = Image.new("RGB", (width, line_height * len(lines)), color=(0, 0, 0))
    draw = ImageDraw.Draw(picture)
    for i, line in enumerate(lines):
        draw.text((TEXT_PADDING, i * line_height + TEXT_PADDING), line, font=font, fill=(255, 255, 255))
    return torch.from_numpy(np.array(picture).astype(np.float32) / 255).permute(2, 0, 1)


def _params_text(param: dict) -> str:
    text = (f"time: {param['time']:.2f}s, seed: {param['seed']}, steps: {param['steps']}, size: "
            f"{param['width']}×{param['height']}\ndenoise: {param['denoise']}, sampler: {param['sampler']}, "
            f"sched: {param['scheduler']}\nguidance: {param['guidance']}, max/base shift: "
            f"{param['max_shift']}/{param['base_shift']}")
    if param.get("lora"):
        text += f"\nLoRA: {param['lora'][:32]}, str: {param['lora_strength']}"
    return text


def _changes_only(params: list[dict]) -> list[dict]:
    """Each run's parameters that differ between runs (time aside), and its prompt."""
    seen = {}
    for param in params:
        for key, value in param.items():
            if key != "time":
                seen.setdefault(key, set()).add(value)
    changing = {key for key, values in seen.items() if len(values) > 1 or key == "prompt"}
    return [{key: value for key, value in param.items() if key in changing} for param in params]


class PlotParameters(Node):
    """Label the parameter sampler's images with their settings and lay them out in a grid
    (ComfyUI_essentials' Plot Sampler Parameters). order_by sorts the images by a parameter;
    cols_value makes one column per value of a parameter (when cols_num is not -1; a value with
    fewer images than the others cuts every column to its count, as the pack does); else cols_num
    columns (0: the square root of the count; -1: no grid, the labelled images as a batch).
    add_params writes the settings under each image ("changes only": only those that differ
    between runs); add_prompt the prompt ("excerpt": its first 64 words). White text on black, in
    the pack's font (ShareTechMono-Regular.ttf) when models/fonts has it, else Pillow's default
    font (not monospaced: the prompt wraps at the width of an "M"), at the pack's size
    min(48, 32 x width / 1024), at least 1. Images must be RGB when text is added, and at least one.
    Refused before any text is drawn (the pack has no limit): an output image (the grid; with cols_num
    -1 each labelled image) over 16384 x 16384 pixels (or the server's limit), a labelled image over
    16384 pixels tall, or an output (the grid; with cols_num -1 the whole batch, each image padded to
    the tallest) over the memory the run may take, by add_prompt when the prompt's lines make it so
    ("excerpt" keeps 64 words), add_params when the settings' do, cols_num (images without a grid)
    when the images alone do."""
    category = "essentials/sampling"
    images: IMAGE
    params: SAMPLER_PARAMS
    order_by: str = Choice(PARAM_KEYS, "none")
    cols_value: str = Choice(PARAM_KEYS, "none")
    cols_num: int = Int(-1, min=-1, max=1024)
    add_prompt: str = Choice(("false", "true", "excerpt"), "false")
    add_params: str = Choice(("false", "true", "changes only"), "true")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("PlotParameters+",))

    @classmethod
    def estimate(cls, widgets, inputs):
        """The grid of cols_num columns (text rows aside); without a known column count, the batch."""
        size, cols = inputs.get("images"), widgets.get("cols_num")
        if size is None or not isinstance(cols, int) or cols < 0 or widgets.get("cols_value") != "none":
            return Estimate(size)
        cols = max(1, min(math.isqrt(size.batch), 1024)) if cols == 0 else min(cols, size.batch)
        return Estimate(Size(1, size.height * math.ceil(size.batch / cols), size.width * cols))

    def _order(self, params: list[dict]) -> tuple[list[int], int]:
        """The images' order and the column count."""
        order, cols = list(range(len(params))), self.cols_num
        try:
            if self.order_by != "none":
                order.sort(key=lambda i: params[i][self.order_by])
            if self.cols_value != "none" and cols > -1:
                groups = {}
                for i in order:
                    groups.setdefault(params[i][self.cols_value], []).append(i)
                cols = len(groups)
                order = [i for row in zip(*groups.values()) for i in row]
            elif cols == 0:
                cols = max(1, min(math.isqrt(len(params)), 1024))
        except KeyError as e:
            raise NodeInputError("params", f"the parameters have no {e.args[0]!r}: expected FluxSamplerParams+'s") \
                from None
        except TypeError as e:
            raise NodeInputError("params", f"the parameters can't be sorted or grouped: {e}") from None
        return order, cols

    def _label_lines(self, param: dict, width: int, char_width: int) -> tuple[list[str], list[str]]:
        """The lines of text under one image: its settings, its prompt (wrapped); not drawn yet."""
        import textwrap
        settings, prompt = [], []
        if self.add_params != "false":
            try:
                text = "\n".join(f"{k}: {v}" for k, v in param.items() if k != "prompt") \
                    if self.add_params == "changes only" else _params_text(param)
            except KeyError as e:
                raise NodeInputError("params", f"the parameters have no {e.args[0]!r}: expected "
                                               f"FluxSamplerParams+'s") from None
            settings = text.split("\n")
        if param.get("prompt") and self.add_prompt != "false":
            text = param["prompt"]
            if self.add_prompt == "excerpt":
                text = " ".join(text.split()[:64]) + "..."
            prompt = textwrap.wrap(text, width=math.ceil(width / char_width))
        return settings, prompt

    @staticmethod
    def _check_size(height: int, width: int, labels: list[tuple[list, list]], line_height: int,
                    grid: tuple[int, int] | None, count: int) -> None:
        """Refuse, before any text is drawn, a cell (image and text) taller than MAX_SIZE, an output
        image (the grid, or each cell without one) over the pixel limit, or an output (the grid, or
        the `count` cells padded to the tallest) over the memory this run may take: naming cols_num
        (images without a grid) when the images alone make it, else add_params when their settings
        do, else add_prompt. `labels` may stop at the first label too tall on its own."""
        limit = run_limits().max_pixels or MAX_SIZE * MAX_SIZE
        rows, cols = grid or (1, 1)

        def made(rows_of_text: int) -> str:
            cell = f"{width}x{height + rows_of_text * line_height}"
            return f"a grid of {rows} x {cols} cells of {cell}" if grid else f"{count} cells of {cell}"

        def check(name: str, rows_of_text: int, fix: str) -> None:
            cell = height + rows_of_text * line_height
            if cell > MAX_SIZE or rows * cols * cell * width > limit:
                raise NodeInputError(name, f"{made(rows_of_text)}, over {MAX_SIZE} pixels tall or the {limit} pixels "
                                           f"an image may have here{fix}")
            output = Size(1, rows * cell, cols * width) if grid else Size(count, cell, width)
            check_run_memory(name, f"{made(rows_of_text)}{fix}", images=output)

        check("cols_num" if grid else "images", 0, ": plot fewer images (or -1: no grid)" if grid else
              ": the images alone make it")
        check("add_params", max(len(settings) for settings, _ in labels),
              ": the settings' text would make it: expected 'false' (or fewer images in the grid)")
        check("add_prompt", max(len(settings) + len(prompt) for settings, prompt in labels),
              f": the prompt's {max(len(prompt) for _, prompt in labels)} lines of text would make it: expected "
              f"'excerpt' or 'false'")

    def run(self):
        import torch
        import torch.nn.functional as F
        images = _image(self.images, "images")
        if images.shape[0] == 0:
            raise NodeInputError("images", "no images: expected at least one to plot")
        params = self.params
        if not isinstance(params, list) or not all(isinstance(p, dict) for p in params):
            raise NodeInputError("params", "expected FluxSamplerParams+'s params: one dict per image")
        if len(params) != images.shape[0]:
            raise NodeInputError("params", f"{len(params)} parameter sets for {images.shape[0]} images: expected as "
                                           f"many as the images (the sampler's params with its decoded latents)")
        order, cols = self._order(params)
        images, params = images[order], [params[i] for i in order]
        width = images.shape[2]
        writes = self.add_params != "false" or self.add_prompt != "false"
        if writes and images.shape[-1] != 3:
            raise NodeInputError("images", f"{images.shape[-1]} channels: expected RGB images to write text under")
        font = _plot_font(max(1, min(48, int(32 * (width / 1024)))))
        drawn_q = font.getmask("Q").getbbox()
        line_height = (drawn_q[3] if drawn_q else 0) + font.getmetrics()[1] + TEXT_PADDING * 2
        char_width = font.getbbox("M")[2] + 1
        if self.add_params == "changes only":
            try:
                params = _changes_only(params)
            except TypeError as e:
                raise NodeInputError("params", f"a parameter can't be compared: {e}") from None
        labels = []
        for param in params:
            check_interrupted()
            labels.append(self._label_lines(param, width, char_width))
            if images.shape[1] + sum(map(len, labels[-1])) * line_height > MAX_SIZE:
                break  # too tall already: refused below without wrapping the other prompts
        cols = min(cols, len(params))
        grid = None if cols < 0 else (math.ceil(len(params) / cols), cols)
        self._check_size(images.shape[1], width, labels, line_height, grid, len(params))
        labelled = []
        for image, (settings, prompt) in zip(images, labels):
            check_interrupted()
            picture = image.permute(2, 0, 1)
            for lines in (settings, prompt):
                if lines:
                    picture = torch.cat([picture, _text_rows(lines, width, line_height, font).to(picture)], 1)
            labelled.append(torch.nan_to_num(picture, nan=0.0).clamp(0, 1))
        tallest = max(p.shape[1] for p in labelled)
        out = torch.stack([F.pad(p, (0, 0, 0, tallest - p.shape[1])) for p in labelled]).permute(0, 2, 3, 1)
        if grid is None:
            return out
        rows = grid[0]
        out = F.pad(out, (0, 0, 0, 0, 0, 0, 0, rows * cols - out.shape[0]))  # black cells fill the last row
        b, h, w, c = out.shape
        return out.reshape(rows, cols, h, w, c).permute(0, 2, 1, 3, 4).reshape(1, rows * h, cols * w, c)


# -- image processing (read from image.py at c861cd6baf531e2e52ae2f8562731dd5f113c7bc and
# histogram_matching.py at b0cfa1bfb4f27fdf41d021b27d7ac930e704b0e7) ----------------------------

HISTOGRAM_CHUNK = 16384  # pixels binned at once: the soft histogram holds 256 values per pixel


def _interp(x, xp, fp):
    """numpy's interp in torch: fp's piecewise-linear function of xp (increasing) at x, held flat
    beyond xp's ends."""
    import torch
    if len(xp) == 1:
        return fp.expand(x.shape).clone()
    right = torch.searchsorted(xp, x, right=True).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp[right - 1], xp[right], fp[right - 1], fp[right]
    t = ((x - x0) / (x1 - x0)).clamp(0, 1)
    return f0 + t * (f1 - f0)


def cdf_match(source, template):
    """Exact histogram matching of one channel (scikit-image's match_histograms for float images):
    each distinct source value goes to the template value at the same quantile, the quantiles being
    the cumulative counts of the sorted distinct values over the pixel count, linearly
    interpolated between the template's."""
    import torch
    values, inverse, counts = torch.unique(source.reshape(-1), return_inverse=True, return_counts=True)
    ref_values, ref_counts = torch.unique(template.reshape(-1), return_counts=True)
    quantiles = torch.cumsum(counts, 0).double() / source.numel()
    ref_quantiles = torch.cumsum(ref_counts, 0).double() / template.numel()
    return _interp(quantiles, ref_quantiles, ref_values.double())[inverse].reshape(source.shape).float()


def soft_cdf(channel):
    """The pack's differentiable histogram of one channel (x 255) as a cumulative distribution,
    in the pack's precisions: bin centres 0.5, 1.5, ... in bfloat16 (above 128 they round to 128,
    130, 130, 132, ...); each pixel's offset from each centre in bfloat16, through which it adds
    sigmoid(75 (offset + 1/2)) - sigmoid(75 (offset - 1/2)) to the bin, in bfloat16; a bin's sum
    rounded to bfloat16 (as torch sums bfloat16: accumulated wider, rounded at the end; here in
    float64 over chunks of pixels); the counts over their sum and accumulated in float32, as a
    product with an upper triangle of ones as the pack's."""
    import torch
    device = channel.device
    centers = torch.arange(256, dtype=torch.bfloat16, device=device) + 0.5
    hist = torch.zeros(256, dtype=torch.float64, device=device)
    for chunk in (channel.reshape(-1).float() * 255).split(HISTOGRAM_CHUNK):
        offset = (chunk[None, :] - centers[:, None]).bfloat16()  # float32 less bfloat16: float32, then rounded
        hist += (torch.sigmoid(75 * (offset + 0.5)) - torch.sigmoid(75 * (offset - 0.5))).double().sum(1)
    hist = hist.bfloat16().float()
    hist = hist / hist.sum().clamp_min(1e-12)
    return (hist[None, :] @ torch.ones(256, 256, device=device).triu())[0]


def table_match(image, reference):
    """The pack's "pytorch" matching of one [H, W, C] image to a [H', W', C] reference: a 256-level
    table from the first channels' cumulative histograms (level j goes to the number of reference
    levels whose cumulative share is at most the image's at j, less one), through which every
    channel's levels (value x 255, cut to a whole number) are looked up, over 255. The pack indexes
    its tables by batch x channel, which for its one image at a time is always the first channel's."""
    import torch
    source_cdf, reference_cdf = soft_cdf(image[..., 0]), soft_cdf(reference[..., 0])
    # counted, not searchsorted: float32 sums of the product need not be sorted
    table = ((reference_cdf[:, None] <= source_cdf[None, :]).sum(0) - 1).clamp(0, 255)
    levels = (image.clamp(0, 1) * 255).long()
    return table[levels].to(image.dtype) / 255


class ImageHistogramMatch(Node):
    """Match an image's histogram to a reference's (ComfyUI_essentials' Image Histogram Match),
    blended by factor (1: fully matched). method "skimage": exact matching per channel, the whole
    batch's values against the whole reference batch's (scikit-image's match_histograms, which the
    pack calls; written here in torch), not clamped. method "pytorch": the pack's own 256-level
    tables, each image against the first reference image, clamped to 0..1; as in the pack, every
    channel goes through the table of the first channel (red) and levels are cut to whole 1/255
    steps; its smooth histogram follows the pack's bfloat16 steps (bin centres, offsets, sigmoids,
    the bins' sums rounded to bfloat16), its pixels taken in chunks (the pack holds 256 values per
    pixel at once). Image and reference must have the same channel count, for both methods (the
    pack's "pytorch" accepts a 1-channel reference, matching against its one channel; here it is
    refused by name, as a mismatch is for "skimage"). The `device` choice is kept for old saves
    and does nothing."""
    category = "essentials/image processing"
    image: IMAGE
    reference: IMAGE
    method: str = Choice(("pytorch", "skimage"), "pytorch")
    factor: float = Float(1.0, min=0.0, max=1.0, step=0.05)
    device: str = Choice(("auto", "cpu", "gpu"), "auto")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageHistogramMatch+",))

    def run(self):
        import torch
        image, reference = _image(self.image, "image"), _image(self.reference, "reference")
        if image.shape[-1] != reference.shape[-1]:
            raise NodeInputError("reference", f"{reference.shape[-1]} channels: expected the image's "
                                              f"{image.shape[-1]}")
        if self.method == "skimage":
            matched = torch.stack([cdf_match(image[..., c], reference[..., c]) for c in range(image.shape[-1])], -1)
            return self.factor * matched.to(image) + (1 - self.factor) * image
        matched = []
        for picture in image:
            check_interrupted()
            matched.append(table_match(picture, reference[0]))
        return (self.factor * torch.stack(matched) + (1 - self.factor) * image).clamp(0, 1)


# -- FLUX blocks (read from conditioning.py at ef704350e7d44d3dc744d1b386cc65dd3e93a090) ----------

# lines that change weights: each is a guarded regex (a trial in a child process) searched in every
# parameter name, and adds a patch per name it matches
MAX_BLOCK_LINES = 256
DEFAULT_BLOCKS = "\n".join([f"## {i} = 1.0" for i in range(19)] + [f"# {i} = 1.0" for i in range(38)])
DOUBLE_BLOCK_WEIGHTS = r"\.(img|txt)_(mod|attn|mlp)\.(lin|qkv|proj|0|2)\.(weight|bias)"
SINGLE_BLOCK_WEIGHTS = r"\.(linear[12]|modulation\.lin)\.(weight|bias)"


def block_lines(text: str) -> list[tuple[str, float]]:
    """(pattern, factor) of each line of FluxBlocksBuster+'s text that changes something: "## n = f"
    double block n's weights, "# n = f" single block n's, any other line a regular expression of
    parameter names; a line without "=" has factor 1 (no change), as have lines at 1."""
    out = []
    for line in (line.strip() for line in text.split("\n")):
        if not line:
            continue
        parts = line.split("=")
        try:
            factor = float(parts[1].strip()) if len(parts) > 1 else 1.0
        except ValueError:
            raise NodeInputError("blocks", f"{line!r}: expected a number after '=' (such as ## 3 = 1.2)") from None
        if not math.isfinite(factor):
            raise NodeInputError("blocks", f"{line!r}: the factor must be a finite number")
        pattern = parts[0].strip()
        if pattern.startswith("##"):
            pattern = r"double_blocks\." + pattern[2:].strip() + DOUBLE_BLOCK_WEIGHTS
        elif pattern.startswith("#"):
            pattern = r"single_blocks\." + pattern[1:].strip() + SINGLE_BLOCK_WEIGHTS
        if factor != 1.0:
            out.append((pattern, factor))
    return out


def _times(factor: float, seed: int, weight):
    """weight x factor, computed in float32 and stored back in the weight's dtype (an fp8 one
    rounded stochastically, seeded by its key, as ComfyUI stores patched weights). Not
    graphflow.models.attention_multiply's scaling, which multiplies in the weight's own dtype: a
    lone patch of an fp8 weight gets that weight itself, and torch has no fp8 product."""
    import torch
    from graphflow.models.cast_layers import stochastic_round
    return stochastic_round(weight.to(torch.float32) * factor, weight.dtype, seed)


class FluxBlocksBuster(Node):
    """Scale the weights of chosen blocks of a FLUX model (ComfyUI_essentials' Flux Model Blocks
    Buster), one line each: "## n = f" multiplies double block n's modulation, attention (qkv,
    proj) and MLP weights and biases by f, "# n = f" single block n's linear1, linear2 and
    modulation; any other line is a regular expression searched in the model's parameter names as
    ComfyUI writes them ("diffusion_model.final_layer.linear.weight"), "pattern = f". Lines at 1.0
    (the default text's) change nothing; a parameter several lines match is scaled by each. The
    number after "##" / "#" is part of the pattern too ("## 1[0-8] = 0.5" is blocks 10 to 18).
    Gives the patched model (a weight patch like a LoRA's: the input model is unchanged) and the
    list of "name: factor" patched, in the model's parameter order. Empty text: the model as it is.
    More than 256 lines that change weights are refused (the pack has no limit)."""
    category = "essentials/conditioning"
    model: MODEL
    blocks: str = Text(DEFAULT_BLOCKS, multiline=True, dynamic_prompts=True)
    outputs = {"MODEL": MODEL, "patched_blocks": STRING}
    comfy = ComfyAlias(("FluxBlocksBuster+",))

    def run(self):
        import re
        import zlib
        from graphflow.memory import WeightPatch
        from nodes.strings import _guarded
        import torch
        unet = getattr(self.model, "unet", None)
        if not isinstance(unet, torch.nn.Module) or not hasattr(self.model, "with_patches"):
            raise NodeInputError("model", "expected a diffusion MODEL (from a checkpoint or UNET loader)")
        lines = block_lines(self.blocks)
        if not lines:
            return self.model, ""
        if len(lines) > MAX_BLOCK_LINES:
            raise NodeInputError("blocks", f"{len(lines)} lines change weights: at most {MAX_BLOCK_LINES} (lines at "
                                           f"1.0 don't count); join patterns with | or use fewer lines")
        names = [name for name, _ in unet.named_parameters()]
        keys = [f"diffusion_model.{name}" for name in names]
        compiled = []
        for pattern, factor in lines:
            check_interrupted()
            try:
                regex = re.compile(pattern)
            except (re.error, OverflowError, RecursionError) as e:
                raise NodeInputError("blocks", f"{pattern!r} is not a valid regular expression: {e}") from None
            # the trial searches each key, as below: one key's first match says nothing of the others
            compiled.append((_guarded(regex, keys, every_match=False, input_name="blocks"), factor))
        patches, patched = [], []
        for name, key in zip(names, keys):
            check_interrupted()
            seed = zlib.crc32(key.encode())  # ComfyUI's seed for rounding a patched fp8 weight: its key's CRC-32
            for regex, factor in compiled:
                if regex.search(key):
                    patches.append(WeightPatch(name, functools.partial(_times, factor, seed), seed))
                    patched.append(f"{key}: {factor}")
        return self.model.with_patches(self.model.patches + tuple(patches)), "\n".join(patched)
