"""ComfyUI_essentials' (cubiq's) utilities, conditioning, sampling and text nodes (its image and mask
nodes are in nodes/pack_nodes_essentials.py, with what is left out and why), under the pack's class
names, inputs and outputs. Read from the pack's source as stored at commits
05b82cf39a6827d5462f9faf6935d50dd6283b57 (misc.py, conditioning.py; and a later stored misc.py
adding Display Any's mode), 0fbb1a2974d4c55fa7c2252f721f2b6c1d795c34 (sampling.py) and
1f8f5ced9c29bcfcdb8742e69bde971badbe6b08 (text.py, mask.py's MaskFromSegmentation+) and
07702eb68bec54ec84db91ce78e05eea2832d024 (image.py's ImageSmartSharpen+).

Utilities: SimpleMathFloat+, SimpleMathInt+, SimpleMathPercent+, SimpleMathSlider+,
SimpleMathSliderLowRes+, SimpleMathBoolean+, SimpleMathDual+, SimpleMathCondition+,
SimpleCondition+, SimpleComparison+, ConsoleDebug+, DebugTensorShape+, BatchCount+, DisplayAny,
ModelCompile+ (passes the model on), RemoveLatentMask+, SDXLEmptyLatentSizePicker+.
Conditioning: CLIPTextEncodeSDXL+, ConditioningCombineMultiple+, SD3NegativeConditioning+.
Sampling: InjectLatentNoise+, KSamplerVariationsStochastic+, KSamplerVariationsWithNoise+,
SamplerSelectHelper+, SchedulerSelectHelper+, GuidanceTimestepping+ (a CFG function on the MODEL),
ModelSamplingSD3Advanced+ (a flow schedule with the pack's cut-off shift).
Image and mask: ImageSmartSharpen+ (OpenCV's bilateral filter; grey or RGB only),
MaskFromSegmentation+ (PIL's quantizer, scipy.ndimage's morphology).
Text: DrawText+ (fonts from models/fonts).
The parameter-sweep sampler and its helpers (FluxSamplerParams+, PlotParameters+,
TextEncodeForSamplerParams+, LorasForFluxParams+) and FluxBlocksBuster+ are in
nodes/pack_nodes_essentials_params.py. Left out: see nodes/pack_nodes_essentials.py.
"""

from __future__ import annotations

import operator
import sys
from contextlib import contextmanager

from graphflow.api import ANY, BOOLEAN, CLIP, CONDITIONING, FLOAT, IMAGE, INT, LATENT, MASK, MODEL, STRING, Bool, \
    Choice, ComfyAlias, Estimate, Float, Int, Node, NodeInputError, Size, Text, check_interrupted, folders, show, warn
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from nodes.conditioning import CLIPEncodeSDXL, ConditioningSetTimestepRange, ConditioningZeroOut
from nodes.image import MAX_SIZE, _image
from nodes.latent import _repeat_to
from nodes.mask import grow_mask
from nodes.pack_nodes import INT_LIMIT, _core, essentials_math
from nodes.pack_nodes_essentials import _mask
from nodes.sampling import SEED_MAX, KSamplerAdvanced, _estimate

COMFY_PACK = "ComfyUI_essentials"  # the custom node pack this module's ComfyUI classes come from


# -- utilities ----------------------------------------------------------------------------------


class SimpleMathFloat(Node):
    """A number, as ComfyUI_essentials' Simple Math Float gives it."""
    category = "essentials/utilities"
    value: float = Float(0.0, min=-INT_LIMIT, max=INT_LIMIT, step=0.05)
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("SimpleMathFloat+",))

    def run(self):
        return float(self.value)


class SimpleMathPercent(Node):
    """A number from 0 to 1, as ComfyUI_essentials' Simple Math Percent gives it."""
    category = "essentials/utilities"
    value: float = Float(0.0, min=0.0, max=1.0, step=0.05)
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("SimpleMathPercent+",))

    def run(self):
        return float(self.value)


class SimpleMathInt(Node):
    """A whole number, as ComfyUI_essentials' Simple Math Int gives it."""
    category = "essentials/utilities"
    value: int = Int(0, min=-INT_LIMIT, max=INT_LIMIT)
    outputs = {"INT": INT}
    comfy = ComfyAlias(("SimpleMathInt+",))

    def run(self):
        return int(self.value)


def slider_value(fraction: float, low: float, high: float, rounding: int) -> tuple[float, int]:
    """The Simple Math sliders' value: low + fraction (high - low), rounded to `rounding` decimals
    when above 0, and that value cut to a whole number."""
    value = low + fraction * (high - low)
    if rounding > 0:
        value = round(value, rounding)
    return value, int(value)


class SimpleMathSlider(Node):
    """A slider from 0 to 1 mapped onto min..max, as ComfyUI_essentials' Simple Math Slider does:
    min + value (max - min), rounded to `rounding` decimals when above 0; also as a whole number
    (cut towards 0)."""
    category = "essentials/utilities"
    value: float = Float(0.5, min=0.0, max=1.0, step=0.001)
    min: float = Float(0.0, min=-INT_LIMIT, max=INT_LIMIT, step=0.001)
    max: float = Float(1.0, min=-INT_LIMIT, max=INT_LIMIT, step=0.001)
    rounding: int = Int(0, min=0, max=10)
    outputs = {"FLOAT": FLOAT, "INT": INT}
    comfy = ComfyAlias(("SimpleMathSlider+",))

    def run(self):
        return slider_value(self.value, self.min, self.max, self.rounding)


class SimpleMathSliderLowRes(Node):
    """A slider of 0 to 10 steps mapped onto min..max, as ComfyUI_essentials' Simple Math Slider
    low-res does: min + value / 10 (max - min), rounded to `rounding` decimals when above 0. The
    pack gives no value on its INT output (it fails when that is linked); here it is the value cut
    to a whole number, as Simple Math Slider gives."""
    category = "essentials/utilities"
    value: int = Int(5, min=0, max=10)
    min: float = Float(0.0, min=-INT_LIMIT, max=INT_LIMIT, step=0.001)
    max: float = Float(1.0, min=-INT_LIMIT, max=INT_LIMIT, step=0.001)
    rounding: int = Int(0, min=0, max=10)
    outputs = {"FLOAT": FLOAT, "INT": INT}
    comfy = ComfyAlias(("SimpleMathSliderLowRes+",))

    def run(self):
        return slider_value(0.1 * self.value, self.min, self.max, self.rounding)


class SimpleMathBoolean(Node):
    """True or false, as ComfyUI_essentials' Simple Math Boolean gives it."""
    category = "essentials/utilities"
    value: bool = Bool(False)
    outputs = {"BOOLEAN": BOOLEAN}
    comfy = ComfyAlias(("SimpleMathBoolean+",))

    def run(self):
        return self.value


class SimpleMathDual(Node):
    """Two Simple Math formulas of the same a, b, c and d, as ComfyUI_essentials' Simple Math Dual
    works them out (Simple Math's grammar, an unconnected input counting 0): each as a whole
    number (rounded half to even) and as a number."""
    category = "essentials/utilities"
    a: ANY = None
    b: ANY = None
    c: ANY = None
    d: ANY = None
    value_1: str = Text("")
    value_2: str = Text("")
    outputs = {"int_1": INT, "float_1": FLOAT, "int_2": INT, "float_2": FLOAT}
    comfy = ComfyAlias(("SimpleMathDual+",))

    def run(self):
        given = {"a": self.a, "b": self.b, "c": self.c, "d": self.d}
        return (*essentials_math(self.value_1, given, "value_1"), *essentials_math(self.value_2, given, "value_2"))


class SimpleMathCondition(Node):
    """Work out on_true when `evaluate` is true, else on_false, as ComfyUI_essentials' Simple Math
    Condition does (Simple Math's formulas of a, b and c): as a whole number and as a number."""
    category = "essentials/utilities"
    a: ANY = None
    b: ANY = None
    c: ANY = None
    evaluate: ANY
    on_true: str = Text("")
    on_false: str = Text("")
    outputs = {"INT": INT, "FLOAT": FLOAT}
    comfy = ComfyAlias(("SimpleMathCondition+",))

    def run(self):
        name = "on_true" if self.evaluate else "on_false"
        return essentials_math(getattr(self, name), {"a": self.a, "b": self.b, "c": self.c}, name)


class SimpleCondition(Node):
    """Give on_true when `evaluate` is true, else on_false, as ComfyUI_essentials' Simple Condition
    does. With evaluate false and on_false unconnected, the pack stops the nodes after it without
    an error (ComfyUI's execution blocker); graphflow has no such blocking, so that is an error
    naming on_false."""
    category = "essentials/utilities"
    evaluate: ANY
    on_true: ANY
    on_false: ANY = None
    outputs = {"result": ANY}
    comfy = ComfyAlias(("SimpleCondition+",))

    def run(self):
        if self.evaluate:
            return self.on_true
        if self.on_false is None:
            raise NodeInputError("on_false", "evaluate is false and on_false is not connected: the pack silently "
                                             "skips the nodes after it, which graphflow doesn't; connect on_false")
        return self.on_false


COMPARISONS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
               ">=": operator.ge}


class SimpleComparison(Node):
    """Compare a with b, as ComfyUI_essentials' Simple Comparison does (Python's comparison: numbers
    by value, text alphabetically)."""
    category = "essentials/utilities"
    a: ANY
    b: ANY
    comparison: str = Choice(tuple(COMPARISONS), "==")
    outputs = {"BOOLEAN": BOOLEAN}
    comfy = ComfyAlias(("SimpleComparison+",))

    def run(self):
        try:
            return bool(COMPARISONS[self.comparison](self.a, self.b))
        except (TypeError, RuntimeError) as e:
            raise NodeInputError("b", f"can't compare {type(self.a).__name__} {self.comparison} "
                                      f"{type(self.b).__name__}: {e}") from None


class ConsoleDebug(Node):
    """Print a value to the console (stderr here) after `prefix`, as ComfyUI_essentials' Console
    Debug does."""
    category = "essentials/utilities"
    output_node = True
    value: ANY
    prefix: str = Text("Value:")
    comfy = ComfyAlias(("ConsoleDebug+",))

    def run(self):
        print(f"{self.prefix} {self.value}", file=sys.stderr)


def tensor_shapes(value) -> list[list[int]]:
    """The shapes of the tensors in a value, looking into dicts, lists and tuples (a CONDITIONING is
    a list of tuples here, of lists in ComfyUI), in order."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in tensor_shapes(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in tensor_shapes(v)]
    return [list(value.shape)] if hasattr(value, "shape") else []


class DebugTensorShape(Node):
    """Print the shapes of the tensors in a value (an image, latent, conditioning ...) to the
    console (stderr here), as ComfyUI_essentials' Debug Tensor Shape does."""
    category = "essentials/utilities"
    output_node = True
    tensor: ANY
    comfy = ComfyAlias(("DebugTensorShape+",))

    def run(self):
        print(f"Shapes found: {tensor_shapes(self.tensor)}", file=sys.stderr)


class BatchCount(Node):
    """The number of items of a batch, as ComfyUI_essentials' Batch Count counts them: an image or
    mask batch's, a latent's samples', a list's or dict's length; 0 for anything else."""
    category = "essentials/utilities"
    batch: ANY
    outputs = {"INT": INT}
    comfy = ComfyAlias(("BatchCount+",))

    def run(self):
        batch = self.batch
        if hasattr(batch, "shape"):
            return batch.shape[0]
        if isinstance(batch, dict) and "samples" in batch:
            return batch["samples"].shape[0]
        return len(batch) if isinstance(batch, (list, dict)) else 0


DISPLAY_MODES = ("raw value", "tensor shape")


def display_any_widgets(values):
    """Display Any's saved widgets as its current editor saves them: [mode]. Saves from before
    the mode widget hold only the text box its editor adds after a run (or nothing); that text is
    never read back."""
    if isinstance(values, list):
        return values[:1] if values and values[0] in DISPLAY_MODES else []
    return values


class EssentialsDisplayAny(Node):
    """Show any value as text in the editor and give the text on, as ComfyUI_essentials' Display
    Any does: Python's str() of the value, or with mode "tensor shape" of the list of the shapes
    of the tensors in it (Debug Tensor Shape's). Its editor adds a text box after a run; the text
    saved in it is not read back. (The pack's versions before the mode widget show the value only.)"""
    category = "essentials/utilities"
    output_node = True
    input: ANY
    mode: str = Choice(DISPLAY_MODES, "raw value")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("DisplayAny",), widgets=display_any_widgets)

    def run(self):
        text = str(tensor_shapes(self.input) if self.mode == "tensor shape" else self.input)
        show(text=[text])
        return text


class ModelCompile(Node):
    """ComfyUI_essentials' Model Compile wraps the diffusion model in torch.compile; here the model
    is passed on unchanged, with a warning (graphflow compiles nothing; fullgraph, dynamic and
    mode do nothing)."""
    category = "essentials/utilities"
    model: MODEL
    fullgraph: bool = Bool(False)
    dynamic: bool = Bool(False)
    mode: str = Choice(("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"), "default")
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("ModelCompile+",))

    def run(self):
        warn("ModelCompile+: torch.compile is not used here; the model is passed on unchanged")
        return self.model


class RemoveLatentMask(Node):
    """The latent without its noise mask (so the whole image is sampled), as ComfyUI_essentials'
    Remove Latent Mask gives it."""
    category = "essentials/utilities"
    samples: LATENT
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("RemoveLatentMask+",))

    def run(self):
        if not isinstance(self.samples, dict):
            raise NodeInputError("samples", "expected a LATENT")
        return {k: v for k, v in self.samples.items() if k != "noise_mask"}


SDXL_RESOLUTIONS = ("704x1408 (0.5)", "704x1344 (0.52)", "768x1344 (0.57)", "768x1280 (0.6)", "832x1216 (0.68)",
                    "832x1152 (0.72)", "896x1152 (0.78)", "896x1088 (0.82)", "960x1088 (0.88)", "960x1024 (0.94)",
                    "1024x1024 (1.0)", "1024x960 (1.07)", "1088x960 (1.13)", "1088x896 (1.21)", "1152x896 (1.29)",
                    "1152x832 (1.38)", "1216x832 (1.46)", "1280x768 (1.67)", "1344x768 (1.75)", "1344x704 (1.91)",
                    "1408x704 (2.0)", "1472x704 (2.09)", "1536x640 (2.4)", "1600x640 (2.5)", "1664x576 (2.89)",
                    "1728x576 (3.0)")


def picked_size(resolution: str, width_override: int, height_override: int) -> tuple[int, int]:
    """SDXLEmptyLatentSizePicker+'s (width, height): the picked resolution's, each side replaced by
    its override when above 0."""
    width, height = (int(v) for v in resolution.split(" ")[0].split("x"))
    return width_override or width, height_override or height


class SDXLEmptyLatentSizePicker(Node):
    """An empty SDXL latent (4 channels, 1/8 size) of one of SDXL's trained sizes, as
    ComfyUI_essentials' Empty Latent Size Picker gives it: width_override / height_override above
    0 replace that side. Gives the latent with its width and height."""
    category = "essentials/utilities"
    resolution: str = Choice(SDXL_RESOLUTIONS, "1024x1024 (1.0)")
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    width_override: int = Int(0, min=0, max=MAX_SIZE, step=8)
    height_override: int = Int(0, min=0, max=MAX_SIZE, step=8)
    outputs = {"LATENT": LATENT, "width": INT, "height": INT}
    comfy = ComfyAlias(("SDXLEmptyLatentSizePicker+",))

    @classmethod
    def estimate(cls, widgets, inputs):
        try:
            width, height = picked_size(widgets.get("resolution", "1024x1024 (1.0)"), widgets.get("width_override", 0),
                                        widgets.get("height_override", 0))
            return Estimate(Size(widgets.get("batch_size", 1), height, width))
        except (TypeError, ValueError, AttributeError):
            return Estimate(None)

    def run(self):
        import torch
        width, height = picked_size(self.resolution, self.width_override, self.height_override)
        if width < 8 or height < 8:
            raise NodeInputError("width_override" if width < 8 else "height_override",
                                 f"a {width}x{height} latent has no pixels at 1/8 size")
        return {"samples": torch.zeros(self.batch_size, 4, height // 8, width // 8)}, width, height


# -- sampling -----------------------------------------------------------------------------------


class InjectLatentNoise(Node):
    """Add seeded Gaussian noise times noise_strength to a latent, as ComfyUI_essentials' Inject
    Latent Noise does: the noise is torch's normal draw after torch.manual_seed(noise_seed), the
    latent's shape (so the pack's noise for the same seed); "normalize" first scales it to the
    latent's standard deviation and shifts it by its mean. With a mask (resized bilinearly to the
    latent, repeated over the batch) the noise goes only where the mask is."""
    category = "essentials/sampling"
    latent: LATENT
    noise_seed: int = Int(0, min=0, max=SEED_MAX)
    noise_strength: float = Float(1.0, min=-20.0, max=20.0, step=0.01)
    normalize: str = Choice(("false", "true"), "false")
    mask: MASK = None
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("InjectLatentNoise+",))

    def run(self):
        import torch
        samples = self.latent.get("samples") if isinstance(self.latent, dict) else None
        if samples is None:
            raise NodeInputError("latent", "expected a LATENT")
        generator = torch.Generator().manual_seed(self.noise_seed % 2 ** 64)  # the global generator's draw, untouched
        noise = torch.randn(samples.shape, generator=generator, dtype=samples.dtype)
        if self.normalize == "true":
            noise = noise * samples.std() + samples.mean()
        noisy = samples + noise * self.noise_strength
        if self.mask is not None:
            if samples.ndim != 4:
                raise NodeInputError("mask", f"a mask needs an image latent (B, C, H, W); this one is {samples.ndim}-D")
            weight = latent_weight(_mask(self.mask, "mask"), samples.shape).clamp(0, 1)
            noisy = weight * noisy + (1 - weight) * samples
        return {**self.latent, "samples": noisy}


def latent_weight(mask, shape):
    """A mask as a [batch, 1, height, width] weight on latents of `shape` (B, C, H, W), as both of
    the pack's noise nodes make it: resized bilinearly, its batch repeated to the latents'."""
    import torch.nn.functional as F
    mask = mask.reshape(-1, 1, *mask.shape[-2:]).float()
    return _repeat_to(F.interpolate(mask, size=tuple(shape[2:]), mode="bilinear"), shape[0])


class KSamplerVariationsStochastic(Node):
    """Variations of one picture, as ComfyUI_essentials' KSampler Stochastic Variations makes them:
    the first latent is sampled with noise_seed for the first (1 - variation_strength) of the
    steps (at least one) and its leftover noise kept, that copied over the batch, and the rest of
    the steps run with the dpmpp_2m_sde sampler, whose noise comes from variation_seed, at cfg times
    cfg_scale (at least 1). Both stages are KSamplerAdvanced's."""
    category = "essentials/sampling"
    model: MODEL
    latent_image: LATENT
    noise_seed: int = Int(0, min=0, max=SEED_MAX)
    steps: int = Int(25, min=1, max=10000, resource="steps")
    cfg: float = Float(7.0, min=0.0, max=100.0, step=0.1)
    sampler: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    positive: CONDITIONING
    negative: CONDITIONING
    variation_seed: int = Int(0, min=0, max=SEED_MAX, control_after_generate=True)
    variation_strength: float = Float(0.2, min=0.0, max=1.0, step=0.05)
    cfg_scale: float = Float(1.0, min=0.0, max=1.0, step=0.05)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("KSamplerVariationsStochastic+",))
    estimate = classmethod(_estimate)

    def run(self):
        import torch
        first_steps = max(int(self.steps * (1 - self.variation_strength)), 1)
        samples = self.latent_image.get("samples") if isinstance(self.latent_image, dict) else None
        if not torch.is_tensor(samples) or samples.ndim < 4 or samples.shape[0] == 0:
            raise NodeInputError("latent_image", "expected a LATENT with at least one latent")
        batch = samples.shape[0]
        first = {**self.latent_image, "samples": self.latent_image["samples"][:1]}
        common = {"model": self.model, "steps": self.steps, "scheduler": self.scheduler, "positive": self.positive,
                  "negative": self.negative}
        stage1 = _core(KSamplerAdvanced, {"sampler_name": "sampler", "latent_image": "latent_image"}, **common,
                       add_noise="enable", noise_seed=self.noise_seed, cfg=self.cfg, sampler_name=self.sampler,
                       latent_image=first, start_at_step=0, end_at_step=first_steps,
                       return_with_leftover_noise="enable")
        if batch > 1:
            stage1 = {**stage1, "samples": stage1["samples"].repeat(batch, *[1] * (stage1["samples"].ndim - 1))}
        return _core(KSamplerAdvanced, {"noise_seed": "variation_seed"}, **common, add_noise="disable",
                     noise_seed=self.variation_seed, cfg=max(self.cfg * self.cfg_scale, 1.0),
                     sampler_name="dpmpp_2m_sde", latent_image=stage1, start_at_step=first_steps,
                     end_at_step=self.steps, return_with_leftover_noise="disable")


def slerp(strength: float, low, high):
    """Spherical interpolation between two noise batches, picture by picture (BlenderNeko's, which
    the pack uses): along the great circle between their directions, 0 giving low, 1 high."""
    import torch
    shape = low.shape
    low, high = low.reshape(shape[0], -1), high.reshape(shape[0], -1)
    low_unit = (low / low.norm(dim=1, keepdim=True)).nan_to_num(nan=0.0)
    high_unit = (high / high.norm(dim=1, keepdim=True)).nan_to_num(nan=0.0)
    omega = torch.acos((low_unit * high_unit).sum(1))
    so = torch.sin(omega)
    out = (torch.sin((1.0 - strength) * omega) / so)[:, None] * low + (torch.sin(strength * omega) / so)[:, None] * high
    return out.reshape(shape)


class KSamplerVariationsWithNoise(Node):
    """Variations of one picture, as ComfyUI_essentials' KSampler Variations with Noise Injection
    makes them: a base noise (torch's draw for main_seed, one picture's, the same for the whole
    batch) is bent towards a noise of variation_seed (one per picture; main_seed + 1 when they are
    equal) by variation_strength (slerp); that noise, times the drop in sigma over the steps run
    (KSampler's sigma at the first step run minus the last's, divided by the model's latent
    scale factor, as the pack does), is added to the latent, which is then sampled from step
    round(steps (1 - denoise)) to the end with KSamplerAdvanced without adding noise (seed
    main_seed). A latent with a noise mask gets the noise only under the mask, and its mask grown
    by 5 pixels (tapered) for the sampler. Unlike the pack, whose noise has 4 channels, latents of
    any channel count work."""
    category = "essentials/sampling"
    model: MODEL
    latent_image: LATENT
    main_seed: int = Int(0, min=0, max=SEED_MAX, control_after_generate=True)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    positive: CONDITIONING
    negative: CONDITIONING
    variation_strength: float = Float(0.17, min=0.0, max=1.0, step=0.01)
    variation_seed: int = Int(12345, min=0, max=SEED_MAX, control_after_generate=True)
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("KSamplerVariationsWithNoise+",))
    estimate = classmethod(_estimate)

    def run(self):
        import torch
        samples = self.latent_image.get("samples") if isinstance(self.latent_image, dict) else None
        if samples is None or samples.ndim != 4:
            raise NodeInputError("latent_image", "expected an image LATENT (B, C, H, W)")
        variation_seed = self.variation_seed + 1 if self.variation_seed == self.main_seed else self.variation_seed
        start = round(self.steps - self.steps * self.denoise)
        batch, channels, height, width = samples.shape
        base = torch.randn((1, channels, height, width), generator=torch.Generator().manual_seed(self.main_seed))
        variation = torch.randn((batch, channels, height, width),
                                generator=torch.Generator().manual_seed(variation_seed % 2 ** 64))
        noise = slerp(self.variation_strength, base.expand(batch, -1, -1, -1), variation)
        from graphflow.sampling import DISCARD_PENULTIMATE_SIGMA, compute_sigmas, model_sampling_for
        sigmas = compute_sigmas(model_sampling_for(self.model), self.scheduler, self.steps, 1.0,
                                discard_penultimate=self.sampler_name in DISCARD_PENULTIMATE_SIGMA)  # KSampler's
        sigma = float(sigmas[start] - sigmas[self.steps]) / self.model.latent_format.scale_factor
        noisy = samples + noise.to(samples) * sigma
        work = {**self.latent_image, "samples": noisy}
        if "noise_mask" in self.latent_image:
            mask = self.latent_image["noise_mask"]
            weight = latent_weight(mask, samples.shape)
            work["samples"] = weight * noisy + (1 - weight) * samples
            work["noise_mask"] = grow_mask(mask.reshape(-1, *mask.shape[-2:]).float(), 5, tapered=True)
        return _core(KSamplerAdvanced, {"noise_seed": "main_seed"}, model=self.model, add_noise="disable",
                     noise_seed=self.main_seed, steps=self.steps, cfg=self.cfg, sampler_name=self.sampler_name,
                     scheduler=self.scheduler, positive=self.positive, negative=self.negative, latent_image=work,
                     start_at_step=start, end_at_step=self.steps, return_with_leftover_noise="disable")


# -- conditioning -------------------------------------------------------------------------------


class CLIPTextEncodeSDXLSimplified(Node):
    """Encode one prompt for SDXL (the same text for CLIP-G and CLIP-L), as ComfyUI_essentials'
    SDXL CLIPTextEncode does: CLIP Text Encode SDXL with width and height times size_cond_factor as
    the size and target size, no crop."""
    category = "essentials/conditioning"
    width: int = Int(1024, min=0, max=MAX_SIZE)
    height: int = Int(1024, min=0, max=MAX_SIZE)
    size_cond_factor: int = Int(4, min=1, max=16)
    text: str = Text("", multiline=True, dynamic_prompts=True)  # the pack marks it dynamicPrompts
    clip: CLIP
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("CLIPTextEncodeSDXL+",))

    def run(self):
        width, height = self.width * self.size_cond_factor, self.height * self.size_cond_factor
        return _core(CLIPEncodeSDXL, {"text_g": "text", "text_l": "text"}, clip=self.clip, width=width,
                     height=height, crop_w=0, crop_h=0, target_width=width, target_height=height, text_g=self.text,
                     text_l=self.text)


class ConditioningCombineMultiple(Node):
    """Combine up to five conditionings (the sampler averages their predictions), as
    ComfyUI_essentials' Cond Combine Multiple does: their entries one after another, 1 to 5."""
    category = "essentials/conditioning"
    conditioning_1: CONDITIONING
    conditioning_2: CONDITIONING
    conditioning_3: CONDITIONING = None
    conditioning_4: CONDITIONING = None
    conditioning_5: CONDITIONING = None
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("ConditioningCombineMultiple+",))

    def run(self):
        parts = [getattr(self, f"conditioning_{i}") for i in range(1, 6)]
        return [entry for part in parts if part is not None for entry in part]


class SD3NegativeConditioning(Node):
    """SD3's negative prompt, as ComfyUI_essentials' SD3 Negative Conditioning makes it: the
    conditioning for the first `end` of the sampling, then zeroed out (Conditioning Zero Out) for
    the rest; at end 0 zeroed out throughout."""
    category = "essentials/conditioning"
    conditioning: CONDITIONING
    end: float = Float(0.1, min=0.0, max=1.0, step=0.001)
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("SD3NegativeConditioning+",))

    def run(self):
        zeroed = _core(ConditioningZeroOut, conditioning=self.conditioning)
        if self.end == 0:
            return zeroed
        kept = _core(ConditioningSetTimestepRange, conditioning=self.conditioning, start=0.0, end=self.end)
        zeroed = _core(ConditioningSetTimestepRange, conditioning=zeroed, start=self.end, end=1.0)
        return list(zeroed) + list(kept)


# -- text -------------------------------------------------------------------------------------


def font_choices() -> list[str]:
    """The .ttf and .otf files in the models/fonts folders (the pack lists the fonts it ships)."""
    return folders.list_files_inside("fonts", (".ttf", ".otf"))


def font_file(name, size, basic_layout: bool = True):
    """A font file in models/fonts at `size`, errors naming font. With Pillow's basic layout by
    default (with raqm's, measuring text of several lines, as essentials does, fails); else
    Pillow's own choice (raqm where it is installed), as a pack's plain ImageFont.truetype()."""
    from PIL import ImageFont
    try:
        return ImageFont.truetype(str(folders.find_model("fonts", name, inside=True)), size,
                                  layout_engine=ImageFont.Layout.BASIC if basic_layout else None)
    except (FileNotFoundError, ValueError, OSError, TypeError) as e:  # UnsafePathError is a ValueError
        raise NodeInputError("font", str(e)) from None


@contextmanager
def drawn_within_pillows_limit(input_name: str, message: str):
    """Text drawn (or its bitmap made) inside this block: where Pillow refuses the bitmap as larger
    than its pixel limit (DecompressionBombError), a NodeInputError naming input_name with message."""
    from PIL import Image
    try:
        yield
    except Image.DecompressionBombError:
        raise NodeInputError(input_name, message) from None


def text_font(name: str, size: int):
    """The font file from models/fonts at `size` (Pillow's default layout, as a pack's plain
    truetype()), else (a font the pack expects, not here) PIL's default font at that size."""
    from PIL import ImageFont
    if name in font_choices():
        return font_file(name, size, basic_layout=False)
    return ImageFont.load_default(size=size)


def _color(value: str, name: str):
    """A colour the way Pillow reads it (#RGB, #RRGGBB, #RRGGBBAA, CSS names), errors naming the input."""
    from PIL import ImageColor
    try:
        return ImageColor.getrgb(value)
    except ValueError:
        raise NodeInputError(name, f"{value!r} is not a colour: expected one like \"#FFFFFF\" or \"#00000080\"") \
            from None


class DrawText(Node):
    """Draw text with a font, as ComfyUI_essentials' Draw Text does (with Pillow): the text's lines
    (each as tall as the whole text's drawn height plus the font's descent) are aligned in a
    picture just big enough for them (plus the shadow's distance) on background_color, or on the
    first image of img_composite; a shadow of shadow_color is drawn shadow_distance pixels down
    and right and blurred by shadow_blur (Pillow's Gaussian). Gives the picture (RGB) and the text
    layer's alpha as the mask. The pack draws with the fonts it ships; here `font` is a .ttf or
    .otf file in models/fonts (put the pack's fonts, or any, there). Text is laid out with
    Pillow's basic layout (no complex-script shaping); the pack uses Pillow's default, where a
    Pillow with raqm fails on text of several lines. Text too large to draw (over 16384 pixels a
    side) is refused, measured before it is drawn; a grey img_composite is taken as RGB."""
    category = "essentials/text"
    text: str = Text("Hello, World!", multiline=True, dynamic_prompts=True)
    font: str = Choice(font_choices)
    size: int = Int(56, min=1, max=9999)
    color: str = Text("#FFFFFF")
    background_color: str = Text("#00000000")
    shadow_distance: int = Int(0, min=0, max=100)
    shadow_blur: int = Int(0, min=0, max=100)
    shadow_color: str = Text("#000000")
    horizontal_align: str = Choice(("left", "center", "right"), "left")
    vertical_align: str = Choice(("top", "center", "bottom"), "top")
    offset_x: int = Int(0, min=-MAX_SIZE, max=MAX_SIZE)
    offset_y: int = Int(0, min=-MAX_SIZE, max=MAX_SIZE)
    img_composite: IMAGE = None
    outputs = {"IMAGE": IMAGE, "MASK": MASK}
    comfy = ComfyAlias(("DrawText+",))

    @classmethod
    def estimate(cls, widgets, inputs):
        """The picture's size: img_composite's, else the text's measured as run() does (without
        drawing it); unknown while the text or font is."""
        under = inputs.get("img_composite")
        if under is not None:
            return Estimate(Size(1, under.height, under.width))
        text, shadow = widgets.get("text"), widgets.get("shadow_distance", 0)
        try:
            font = font_file(widgets.get("font"), widgets.get("size"))
            left, top, right, bottom = font.getbbox(text)
            lines = text.split("\n")
            width = max(font.getbbox(line)[2] for line in lines)
        except Exception:  # a linked text, a missing font: run() says
            return Estimate(None)
        # getmask(text)'s drawn height is its box's (the line height adds the descent)
        return Estimate(Size(1, (bottom - top + font.getmetrics()[1]) * len(lines) + shadow, width + shadow))

    @classmethod
    def fingerprint(cls, font=None, **widgets):
        try:
            return folders.model_state("fonts", font, inside=True)
        except (FileNotFoundError, ValueError, TypeError):
            return None  # run() names the problem

    def run(self):
        import numpy as np
        import torch
        from PIL import Image, ImageDraw, ImageFilter

        for name in ("color", "shadow_color", "background_color"):
            _color(getattr(self, name), name)  # checked here; given to Pillow as written, as the pack does
        font = font_file(self.font, self.size)
        lines = self.text.split("\n")
        text_width = max(font.getbbox(line)[2] for line in lines)
        left, top, right, bottom = font.getbbox(self.text)  # the size of the pack's getmask(text), not drawn
        if text_width > MAX_SIZE or (right - left) * (bottom - top) > MAX_SIZE ** 2:
            raise NodeInputError("size", f"the text at size {self.size} would be {max(text_width, right - left)}x"
                                         f"{bottom - top} pixels: expected at most {MAX_SIZE} a side (a smaller "
                                         f"size or a shorter text)")
        with drawn_within_pillows_limit("size", f"the text at size {self.size} is too large for Pillow to draw"):
            drawn = font.getmask(self.text).getbbox()
        if drawn is None:
            raise NodeInputError("text", "nothing to draw: the text draws no pixels in this font")
        line_height = drawn[3] + font.getmetrics()[1]  # the pack's: the text's height plus the descent
        text_height = line_height * len(lines)
        if self.img_composite is not None:
            pixels = _image(self.img_composite, "img_composite")[0].clamp(0, 1)
            if pixels.shape[-1] == 1:  # grey: as RGB, as the pack's ToPILImage takes one channel
                pixels = pixels.expand(-1, -1, 3)
            elif pixels.shape[-1] not in (3, 4):
                raise NodeInputError("img_composite", f"{pixels.shape[-1]} channels: expected 1, 3 or 4")
            pixels = pixels[..., :3]
            under = Image.fromarray((pixels * 255).to(torch.uint8).cpu().numpy(), "RGB").convert("RGBA")
            width, height = under.size
            canvas = (width, height)
        else:
            under, width, height = None, text_width, text_height
            canvas = (width + self.shadow_distance, height + self.shadow_distance)
            background = _color(self.background_color, "background_color")  # the pack's tuple here
        if not 0 < canvas[0] <= MAX_SIZE or not 0 < canvas[1] <= MAX_SIZE:
            raise NodeInputError("size", f"the text would need a {canvas[0]}x{canvas[1]} picture: expected at most "
                                         f"{MAX_SIZE} pixels a side")
        image = Image.new("RGBA", canvas, color=self.background_color if under is not None else background)
        shadow = image.copy() if self.shadow_distance > 0 else None
        for i, line in enumerate(lines):
            line_width = font.getbbox(line)[2]
            x = {"left": 0, "center": (width - line_width) / 2, "right": width - line_width}[self.horizontal_align]
            y = {"top": 0, "center": (height - text_height) / 2, "bottom": height - text_height}[self.vertical_align]
            x, y = x + self.offset_x, y + i * line_height + self.offset_y
            ImageDraw.Draw(image).text((x, y), line, font=font, fill=self.color)
            if shadow is not None:
                ImageDraw.Draw(shadow).text((x + self.shadow_distance, y + self.shadow_distance), line, font=font,
                                            fill=self.shadow_color)
        if shadow is not None:
            image = Image.alpha_composite(shadow.filter(ImageFilter.GaussianBlur(self.shadow_blur)), image)
        mask = torch.from_numpy(np.array(image)[..., 3].astype(np.float32) / 255)[None]
        if under is not None:
            image = Image.alpha_composite(under, image)
        picture = torch.from_numpy(np.array(image)[..., :3].astype(np.float32) / 255)[None]
        return picture, mask


# -- image processing (read from image.py at 07702eb68bec54ec84db91ce78e05eea2832d024) ----------


def kornia_sharpness(image, factor: float):
    """kornia.enhance.sharpness on a [B, H, W, C] batch (the function the pack calls): each channel
    smoothed by the 3x3 kernel [[1,1,1],[1,5,1],[1,1,1]] / 13 and clamped to 0..1, the one-pixel
    border kept from the image; then smoothed + (image - smoothed) x factor, clamped to 0..1."""
    import torch
    import torch.nn.functional as F
    channels = image.shape[-1]
    planes = image.movedim(-1, 1)
    kernel = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], dtype=planes.dtype) / 13
    kernel = kernel.view(1, 1, 3, 3).repeat(channels, 1, 1, 1)
    smoothed = F.conv2d(planes, kernel, groups=channels).clamp(0, 1)
    degenerate = planes.clone()
    degenerate[:, :, 1:-1, 1:-1] = smoothed
    return (degenerate + (planes - degenerate) * factor).clamp(0, 1).movedim(1, -1)


class ImageSmartSharpen(Node):
    """Sharpen while smoothing noise, as ComfyUI_essentials' Image Smart Sharpen does: a blend,
    `ratio` of the image sharpened by `sharpen` (kornia's sharpness: the image pushed away from its
    3x3 smoothing) and 1 - `ratio` of the image through OpenCV's bilateral filter of diameter
    `noise_radius` (none when 1), sigma-colour max(1 - preserve_edges, 0.05) (0 when preserve_edges
    is 0) and sigma-space 0.3 ((noise_radius - 1) / 2 - 1) + 0.8; clamped to 0..1. The bilateral
    filter takes grey or RGB images: RGBA is refused (the pack fails on it)."""
    category = "essentials/image processing"
    image: IMAGE
    noise_radius: int = Int(7, min=1, max=25, step=1)
    preserve_edges: float = Float(0.75, min=0.0, max=1.0, step=0.05)
    sharpen: float = Float(5.0, min=0.0, max=25.0, step=0.5)
    ratio: float = Float(0.5, min=0.0, max=1.0, step=0.1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageSmartSharpen+",))

    def run(self):
        import cv2
        import numpy
        import torch
        image = _image(self.image, "image")
        if image.shape[-1] not in (1, 3):
            raise NodeInputError("image", f"a grey or RGB image (1 or 3 channels), got {image.shape[-1]} channels")
        image = image.float()
        sigma_color = max(1 - self.preserve_edges, 0.05) if self.preserve_edges > 0 else 0.0
        sigma_space = 0.3 * ((self.noise_radius - 1) * 0.5 - 1) + 0.8  # torchvision's blur sigma for this size
        if self.noise_radius > 1:
            filtered = []
            for picture in image:
                check_interrupted()  # a big radius takes seconds an image
                filtered.append(torch.from_numpy(cv2.bilateralFilter(numpy.ascontiguousarray(picture.cpu().numpy()),
                                                                     self.noise_radius, sigma_color, sigma_space)
                                                 .reshape(picture.shape)))
            blurred = torch.stack(filtered)
        else:
            blurred = image
        sharpened = kornia_sharpness(image, self.sharpen) if self.sharpen > 0 else image
        return (self.ratio * sharpened + (1 - self.ratio) * blurred).clamp(0, 1)


def square_opening(mask, side: int):
    """scipy.ndimage.binary_opening of a boolean mask by a side x side square of ones, done as
    erosions by a row and a column of `side` ones, then dilations by the same: the square is their
    sum, so the result is the same (outside counting as 0 throughout), at 4 side instead of 2 side^2
    looks a pixel."""
    import numpy
    import scipy.ndimage
    row, column = numpy.ones((1, side), bool), numpy.ones((side, 1), bool)
    eroded = scipy.ndimage.binary_erosion(scipy.ndimage.binary_erosion(mask, row), column)
    return scipy.ndimage.binary_dilation(scipy.ndimage.binary_dilation(eroded, row), column)


class MaskFromSegmentation(Node):
    """One mask per colour region of the first image, as ComfyUI_essentials' Mask From Segmentation
    makes them: the image (its values clamped to 0..1, where the pack lets others wrap around;
    times 255, cut to whole numbers) reduced by PIL to a palette of `segments` colours (median cut,
    no dithering), then a mask for each colour left, in the colours' sorted order; each opened by a
    remove_isolated_pixels-square (when above 0) and hole-filled (fill_holes), both scipy.ndimage's
    binary morphology, and kept only when it covers more than `remove_small_masks` of the picture.
    No mask kept gives one empty mask. Only the batch's first image is read, as in the pack; it
    must be RGB. The opening is done as a row then a column of remove_isolated_pixels (the same
    result as the square's, in far less time). Its estimate counts `segments` masks of the image's
    size (the most it can give)."""
    category = "essentials/mask"
    image: IMAGE
    segments: int = Int(6, min=1, max=16, step=1)
    remove_isolated_pixels: int = Int(0, min=0, max=32, step=1)
    remove_small_masks: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    fill_holes: bool = Bool(False)
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("MaskFromSegmentation+",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, segments = inputs.get("image"), widgets.get("segments")
        if size is None or not isinstance(segments, int):
            return Estimate(None)
        return Estimate(Size(segments, size.height, size.width))

    def run(self):
        import numpy
        import scipy.ndimage
        import torch
        from PIL import Image
        image = _image(self.image, "image")
        if image.shape[-1] != 3:
            raise NodeInputError("image", f"an RGB image (3 channels), got {image.shape[-1]} channels")
        pixels = (image[0].clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()  # cut, not rounded: the pack's
        picture = Image.fromarray(pixels)  # [H, W, 3] uint8: RGB
        palette = picture.quantize(colors=self.segments)
        reduced = numpy.asarray(picture.quantize(palette=palette, dither=Image.Dither.NONE).convert("RGB"))
        masks = []
        for color in numpy.unique(reduced.reshape(-1, 3), axis=0):
            check_interrupted()
            mask = (reduced == color).all(axis=-1)
            if self.remove_isolated_pixels > 0:
                mask = square_opening(mask, self.remove_isolated_pixels)
            if self.fill_holes:
                mask = scipy.ndimage.binary_fill_holes(mask)
            if mask.mean() > self.remove_small_masks:  # smaller ones are taken for noise
                masks.append(torch.from_numpy(mask.astype(numpy.float32)))
        if not masks:
            masks.append(torch.zeros(reduced.shape[:2]))
        return torch.stack(masks)


class GuidanceTimestepping(Node):
    """CFG `value` between start_at and end_at of the sampling (percents turned into the model's
    sigmas), the sampler's cfg before and after, as ComfyUI_essentials' Guidance Timestep
    (experimental) does. It takes the model's one CFG-function slot (ComfyUI's
    sampler_cfg_function): a later RescaleCFG or other CFG function replaces it, and it replaces
    theirs. When the sampler's cfg is 1 no negative prediction is made (as in ComfyUI), so inside
    the window the result is value x the positive prediction."""
    category = "essentials/sampling"
    model: MODEL
    value: float = Float(2.0, min=0.0, max=100.0, step=0.05)
    start_at: float = Float(0.2, min=0.0, max=1.0, step=0.01)
    end_at: float = Float(0.8, min=0.0, max=1.0, step=0.01)
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("GuidanceTimestepping+",))

    def run(self):
        from graphflow.sampling import model_sampling_for
        from graphflow.sampling.cfg_patches import timestep_window_cfg
        schedule = model_sampling_for(self.model)
        return timestep_window_cfg(self.model, self.value, float(schedule.percent_to_sigma(self.start_at)),
                                   float(schedule.percent_to_sigma(self.end_at)))


class CutOffFlowSchedule:
    """ModelSamplingSD3Advanced+'s model sampling: ModelSamplingSD3's (a graphflow FlowSchedule, to
    which everything else is passed) except that sigma() of ONE timestep at or below cut_off x the
    multiplier uses shift x shift_multiplier: the pack's rule, so the schedulers asking the model
    for each step's sigma (normal, sgm_uniform) change while those reading its sigma table (simple,
    beta, karras ...) keep the plain shift; and percent_to_sigma is 1 - percent, not shifted."""

    def __init__(self, shift: float, cut_off: float, shift_multiplier: float, multiplier: float = 1000.0):
        from graphflow.sampling.flow_sampling import FlowSchedule
        self.base = FlowSchedule.sd3(shift, multiplier=multiplier)
        self.cut_off, self.shift_multiplier = float(cut_off), float(shift_multiplier)
        self.sigmas = self.base.sigmas  # the table: one call on every timestep, the plain shift

    def __getattr__(self, name):
        if name == "base":  # not yet set (unpickling): don't recurse
            raise AttributeError(name)
        return getattr(self.base, name)

    def sigma(self, timestep):
        from graphflow.sampling.flow_sampling import time_snr_shift
        import torch
        timestep = torch.as_tensor(timestep)
        shift = self.base.shift
        if timestep.dim() == 0 and float(timestep) / self.base.multiplier <= self.cut_off:
            shift = shift * self.shift_multiplier
        return time_snr_shift(shift, timestep / self.base.multiplier)

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return 1.0 - percent


class ModelSamplingSD3Advanced(Node):
    """ModelSamplingSD3 (flow models: SD3, FLUX ...) with a second shift, as ComfyUI_essentials'
    Model Sampling SD3 Advanced: where the pack's model sampling is asked for the sigma of a single
    timestep at or below cut_off (as a fraction of the run, 1 at its start), the shift is
    shift x shift_multiplier. That reaches the schedulers that ask step by step (normal,
    sgm_uniform); the ones reading the model's sigma table (simple, beta, karras, exponential ...)
    see the plain shift, as with the pack. Its start/end percents (ControlNet ranges, Guidance
    Timestep ...) are taken as 1 - percent, unshifted, as the pack's are. Shift 0 is refused (its
    schedule is all NaN, with the pack as with ComfyUI); shift_multiplier 0 makes every step from
    cut_off on sigma 0 (steps that do nothing) in the normal and sgm_uniform schedules, as the
    pack's, with a warning."""
    category = "essentials/sampling"
    model: MODEL
    shift: float = Float(3.0, min=0.0, max=100.0, step=0.01)
    cut_off: float = Float(0.5, min=0.0, max=1.0, step=0.05)
    shift_multiplier: float = Float(2.0, min=0.0, max=10.0, step=0.05)
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("ModelSamplingSD3Advanced+",))

    def run(self):
        from nodes.flow import _with_sampling
        if self.shift == 0:
            raise NodeInputError("shift", "0 gives a schedule of NaN sigmas (0 / 0 at the first step): expected "
                                          "a shift above 0")
        if self.shift * self.shift_multiplier == 0:
            warn(f"ModelSamplingSD3Advanced+: shift x shift_multiplier is 0, so the steps a normal or sgm_uniform "
                 f"schedule places at or below cut_off {self.cut_off} are at sigma 0 and do nothing")
        return _with_sampling(self.model, CutOffFlowSchedule(self.shift, self.cut_off, self.shift_multiplier))


# -- sampler-parameter helpers (read from sampling.py at 0fbb1a2974d4c55fa7c2252f721f2b6c1d795c34) --


def selected_names(flags: dict) -> str:
    """The names whose switch is on, in the list's order, joined by ", " (the pack's string)."""
    return ", ".join(name for name, on in flags.items() if on)


def switch_widgets(names: tuple[str, ...], kind: str):
    """ComfyAlias.widgets of a switch helper: the pack makes a switch per name of the user's
    ComfyUI's list, so a UI save (read by place) from a ComfyUI whose list is longer or shorter
    would turn on the wrong switches; such a save is refused (an API prompt names each switch)."""
    def widgets(raw: list) -> list:
        if len(raw) != len(names):
            raise ValueError(f"the save holds {len(raw)} switches: it comes from a ComfyUI with {len(raw)} "
                             f"{kind}s, while this node's switches are ComfyUI's {len(names)} ({names[0]} ... "
                             f"{names[-1]}), so their places don't match; add the node anew and set its switches")
        return raw
    return widgets


class SamplerSelectHelper(Node):
    """A switch per sampler (in ComfyUI's list order, as the pack's UI saves them); gives the names
    switched on joined by ", ", the form FluxSamplerParams+' sampler list takes. The pack's switches
    are those of the user's ComfyUI: a UI save with another number of switches (from a ComfyUI with
    more or fewer samplers) is refused, since its places can't be matched to names."""
    category = "essentials/sampling"
    __annotations__ = {}  # the switches are declared in a loop: their names are the list's
    for _name in SAMPLER_NAMES:
        __annotations__[_name] = bool
        locals()[_name] = Bool(False)
    del _name
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("SamplerSelectHelper+",), widgets=switch_widgets(SAMPLER_NAMES, "sampler"))

    def run(self):
        return selected_names({name: getattr(self, name) for name in SAMPLER_NAMES})


class SchedulerSelectHelper(Node):
    """A switch per scheduler (in ComfyUI's list order, as the pack's UI saves them); gives the names
    switched on joined by ", ", the form FluxSamplerParams+' scheduler list takes. A UI save with
    another number of switches (from a ComfyUI with more or fewer schedulers) is refused, since its
    places can't be matched to names."""
    category = "essentials/sampling"
    __annotations__ = {}  # the switches are declared in a loop: their names are the list's
    for _name in SCHEDULER_NAMES:
        __annotations__[_name] = bool
        locals()[_name] = Bool(False)
    del _name
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("SchedulerSelectHelper+",), widgets=switch_widgets(SCHEDULER_NAMES, "scheduler"))

    def run(self):
        return selected_names({name: getattr(self, name) for name in SCHEDULER_NAMES})
