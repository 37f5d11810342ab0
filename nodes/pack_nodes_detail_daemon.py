"""Jonseed's ComfyUI-Detail-Daemon (the idea from muerrilla's sd-webui-detail-daemon), under the
pack's class names, inputs and outputs, as read at brahianrosswill/ComfyUI-Detail-Daemon commit
31caac4de390b9af2b7f084c4748de9a893dd8bd (detail_daemon_node.py, the upstream code) with the class
names of Jonseed/ComfyUI-Detail-Daemon's __init__.py:

- Detail Daemon Sampler (DetailDaemonSamplerNode): wraps a SAMPLER; the model is told a lower
  (or, with a negative detail_amount, higher) noise level than the step's on a schedule, so it
  removes less noise and leaves more detail.
- Detail Daemon Sampler GUI (DetailDaemonSamplerGUINode): the same, passing SIGMAS on.
- Detail Daemon Graph Sigmas (DetailDaemonGraphSigmasNode): shows that schedule as a graph.
- Multiply Sigmas (stateless) (MultiplySigmas): multiplies a part of a schedule by a factor.
- Lying Sigma Sampler (LyingSigmaSampler): wraps a SAMPLER; the model is told sigma x (1 +
  dishonesty_factor) between two percents of the process.

The sampler wrappers carry graphflow.sampling.sigma_adjust adjusters in the SAMPLER value; the
pipeline applies them around the guided denoiser, as the pack's model wrapper is applied around
ComfyUI's. The fork class names DetailDaemonSampler / DetailDaemonGraphSigmas (same inputs) are
read too. The pack's later Detail Daemon Sampler GUI (DetailDaemonSamplerGUINode: the sampler with
a SIGMAS passed through, and an editor graph that is not saved) is here too; its Python is not
stored at the pack's newest commit, so its inputs and outputs were read from a port of it (the
same class in a ComfyUI V3-schema conversion of the pack) and from Jonseed's
web/detailDaemonSamplerGUI.js at 036e0645af1abc44508df2b188e3ac330d6e858e (which widgets it
reads; its graph widget is not serialized). Left out: the forks' Advanced Lying Sigma Sampler
(smooth_factor), their artifact_control variant and DetailDaemonWan21Sampler; a save that uses
them is reported as an unknown class of this pack.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphflow.api import SAMPLER, SIGMAS, Bool, ComfyAlias, Float, Node, NodeInputError

COMFY_PACK = "ComfyUI-Detail-Daemon"  # the custom node pack this module's ComfyUI classes come from

ADJUSTMENT_SCALE = 0.1  # the pack's: a schedule value of 1 lowers the sigma by 10% x cfg
SMALLEST_SIGMA_FACTOR = 1e-6  # the pack keeps the adjusted sigma above 0 by this factor
RANGE_EPSILON = 1e-5  # sigmas at the last one (+ this) are passed on unchanged, as in the pack


def detail_schedule(steps: int, start: float, end: float, bias: float, amount: float, exponent: float,
                    start_offset: float, end_offset: float, fade: float, smooth: bool):
    """The pack's per-step multipliers (make_detail_daemon_schedule): from start_offset, a rise
    (linear, or half a cosine when smooth, to the power exponent) to `amount` at the step `bias` of
    the way from `start` to `end`, a fall to end_offset at `end`, the offsets held outside, all
    times (1 - fade). Steps are placed at round(fraction x (steps - 1)), Python's round."""
    import numpy as np

    start = min(start, end)
    middle = start + bias * (end - start)
    first, peak, last = (int(round(fraction * (steps - 1))) for fraction in (start, middle, end))

    def ramp(values, offset):
        if smooth:
            values = 0.5 * (1 - np.cos(values * np.pi))
        values = values ** exponent
        if values.any():  # an all-zero ramp (one step) stays 0, not the offset
            values = values * (amount - offset) + offset
        return values

    multipliers = np.zeros(steps)
    multipliers[first:peak + 1] = ramp(np.linspace(0, 1, peak - first + 1), start_offset)
    multipliers[peak:last + 1] = ramp(np.linspace(1, 0, last - peak + 1), end_offset)
    multipliers[:first] = start_offset
    multipliers[last + 1:] = end_offset
    return multipliers * (1 - fade)


def schedule_at(sigma: float, sigmas, schedule) -> float:
    """The schedule's value at a sigma the model is called with (the pack's get_dd_schedule): the
    value of the step whose sigma it is, or, between two steps' sigmas, the two values mixed
    linearly; 0 outside the run's sigmas. sigmas: the run's (CPU float32); schedule: one value per
    step (float32)."""
    import torch

    steps = len(schedule)
    if steps < 2 or len(sigmas) < 2 or sigma <= 0 or not (sigmas[-1] <= sigma <= sigmas[0]):
        return 0.0
    gaps = (sigmas[:-1] - sigma).abs()
    nearest = int(gaps.argmin())
    if (nearest == 0 and sigma >= sigmas[0]) or (nearest == steps - 1 and sigma <= sigmas[-2]) \
            or gaps[nearest] == 0:
        return float(schedule[nearest])
    # the step below (later, lower sigma) and above it
    below, above = (nearest, nearest - 1) if sigma > sigmas[nearest] else (nearest + 1, nearest)
    span = sigmas[above] - sigmas[below]
    if span == 0:
        return float(schedule[below])
    ratio = ((sigma - sigmas[below]) / span).clamp(0, 1)
    return float(torch.lerp(schedule[below], schedule[above], ratio))


@dataclass(frozen=True)
class DetailDaemonAdjuster:
    """A sigma adjuster (graphflow.sampling.sigma_adjust): sigma x max(1e-6, 1 - schedule(sigma)
    x 0.1 x cfg), cfg the override when above 0, else the guider's."""

    detail_amount: float
    start: float
    end: float
    bias: float
    exponent: float
    start_offset: float
    end_offset: float
    fade: float
    smooth: bool
    cfg_scale_override: float

    def schedule(self, steps: int):
        return detail_schedule(steps, self.start, self.end, self.bias, self.detail_amount, self.exponent,
                               self.start_offset, self.end_offset, self.fade, self.smooth)

    def for_run(self, sigmas, cfg: float, model_schedule):
        import torch

        cfg_scale = self.cfg_scale_override if self.cfg_scale_override > 0 else cfg
        sigmas = sigmas.detach().to("cpu", torch.float32)
        if len(sigmas) < 2:  # no step runs
            return lambda sigma: sigma
        schedule = torch.tensor(self.schedule(len(sigmas) - 1), dtype=torch.float32)
        highest, lowest = float(sigmas[0]), float(sigmas[-1]) + RANGE_EPSILON

        def adjust(sigma):
            level = float(sigma.max())
            if not lowest <= level <= highest:
                return sigma
            adjustment = schedule_at(level, sigmas, schedule) * ADJUSTMENT_SCALE
            return sigma * max(SMALLEST_SIGMA_FACTOR, 1.0 - adjustment * cfg_scale)

        return adjust


@dataclass(frozen=True)
class LyingSigmaAdjuster:
    """A sigma adjuster: sigma x (1 + dishonesty_factor) while the sampler's sigma is between the
    model's sigmas at end_percent and start_percent (each rounded to 4 decimals, as the pack)."""

    dishonesty_factor: float
    start_percent: float
    end_percent: float

    def for_run(self, sigmas, cfg: float, model_schedule):
        highest = round(model_schedule.percent_to_sigma(self.start_percent), 4)
        lowest = round(model_schedule.percent_to_sigma(self.end_percent), 4)

        def adjust(sigma):
            if lowest <= float(sigma.max()) <= highest:
                return sigma * (1.0 + self.dishonesty_factor)
            return sigma

        return adjust


def _wrapped(sampler, adjuster):
    """The SAMPLER `sampler` with `adjuster` put first in its sigma_adjusters, nearest the model:
    of nested wrapper nodes, the outermost node's adjuster is nearest the model, so it changes the
    sigma last (after the adjusters of the sampler it wraps), as ComfyUI's nested model wrappers."""
    from dataclasses import replace

    from graphflow.sampling.samplers import SamplerChoice
    if not isinstance(sampler, SamplerChoice):
        raise NodeInputError("sampler", f"expected a SAMPLER (from KSamplerSelect or a Sampler* node), "
                                        f"got {type(sampler).__name__}")
    return replace(sampler, sigma_adjusters=(adjuster, *sampler.sigma_adjusters))


def _adjuster(node, cfg_scale_override: float) -> DetailDaemonAdjuster:
    return DetailDaemonAdjuster(node.detail_amount, node.start, node.end, node.bias, node.exponent,
                                node.start_offset, node.end_offset, node.fade, node.smooth, cfg_scale_override)


class _SamplerInput(Node):
    sampler: SAMPLER


class _SigmasInput(Node):
    sigmas: SIGMAS


class _DetailSchedule(Node):
    """The schedule's nine widgets, in the pack's order, that the three Detail Daemon nodes share."""
    detail_amount: float = Float(0.1, min=-5.0, max=5.0, step=0.01)
    start: float = Float(0.2, min=0.0, max=1.0, step=0.01)
    end: float = Float(0.8, min=0.0, max=1.0, step=0.01)
    bias: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    exponent: float = Float(1.0, min=0.0, max=10.0, step=0.05)
    start_offset: float = Float(0.0, min=-1.0, max=1.0, step=0.01)
    end_offset: float = Float(0.0, min=-1.0, max=1.0, step=0.01)
    fade: float = Float(0.0, min=0.0, max=1.0, step=0.05)
    smooth: bool = Bool(True)


# A Detail Daemon node lists _DetailSchedule before its socket classes: inputs are gathered from
# the last base to the class itself, so its sockets come first, then the schedule, then its own
# (UI saves are read by position).


class DetailDaemonSampler(_DetailSchedule, _SamplerInput):
    """Detail Daemon: the sampler as it is, but the model is told a lower noise level than the
    step's, so it removes less noise and leaves more detail (a negative detail_amount: higher,
    less detail). Per step the schedule (see Detail Daemon Graph Sigmas) rises from start_offset
    at `start` (a fraction of the steps) to detail_amount at `bias` of the way to `end`, then falls
    to end_offset; exponent shapes the ramps, smooth makes them half cosines, fade scales all down.
    The sigma given to the model is sigma x (1 - value x 0.1 x cfg), value the schedule's at that
    sigma (mixed between steps for samplers that call the model between them); cfg is
    cfg_scale_override when above 0, else the guider's CFG (1 for guiders without one).
    detail_amount 0 samples exactly as the wrapped sampler."""
    category = "sampling/custom_sampling/samplers"
    cfg_scale_override: float = Float(0.0, min=0.0, max=100.0, step=0.5)
    outputs = {"SAMPLER": SAMPLER}
    comfy = ComfyAlias(("DetailDaemonSamplerNode", "DetailDaemonSampler"))

    def run(self):
        return _wrapped(self.sampler, _adjuster(self, self.cfg_scale_override))


class DetailDaemonSamplerGUI(_DetailSchedule, _SigmasInput, _SamplerInput):
    """Detail Daemon Sampler (see its help) that also passes `sigmas` on unchanged, as the pack's
    later "Detail Daemon Sampler GUI": its editor draws the schedule in the node, with handles to
    drag (an editor widget that is not saved, so not here: use Detail Daemon Graph Sigmas to see
    the schedule of a run's sigmas)."""
    category = "sampling/custom_sampling/samplers"
    cfg_scale_override: float = Float(0.0, min=0.0, max=100.0, step=0.5)
    outputs = {"sampler": SAMPLER, "sigmas": SIGMAS}
    comfy = ComfyAlias(("DetailDaemonSamplerGUINode",))

    def run(self):
        return _wrapped(self.sampler, _adjuster(self, self.cfg_scale_override)), self.sigmas


class DetailDaemonGraphSigmas(_DetailSchedule, _SigmasInput):
    """Show the Detail Daemon schedule of these inputs as a graph (the multiplier per step of the
    sigmas' steps, one fewer than the sigmas; the y axis from -1 to 1, values beyond cut off, as
    the pack's). cfg_scale is the pack's, which only uses it for the adjusted sigmas it prints.
    Drawn with PIL, in the pack's layout (title, axes, grid, one tick per step), not matplotlib."""
    category = "sampling/custom_sampling/sigmas"
    output_node = True
    cfg_scale: float = Float(1.0, min=0.0, max=100.0, step=0.5)
    outputs = {}
    comfy = ComfyAlias(("DetailDaemonGraphSigmasNode", "DetailDaemonGraphSigmas"))

    def run(self):
        import torch

        from nodes.image import preview
        if not torch.is_tensor(self.sigmas) or self.sigmas.ndim != 1 or len(self.sigmas) < 2:
            raise NodeInputError("sigmas", "expected SIGMAS of at least 2 noise levels (one step)")
        steps = len(self.sigmas) - 1
        if steps > MAX_GRAPH_STEPS:
            raise NodeInputError("sigmas", f"at most {MAX_GRAPH_STEPS} steps can be drawn, got {steps}")
        schedule = _adjuster(self, self.cfg_scale).schedule(steps)
        preview(torch.from_numpy(schedule_graph(schedule)).unsqueeze(0))


MAX_GRAPH_STEPS = 10_000  # one tick each would not be readable beyond; the pack draws them all
GRAPH_SIZE = (600, 400)  # the pack's 6 x 4 inch figure at 100 dpi
PLOT_BOX = (60, 40, 580, 350)  # left, top, right, bottom of the axes
LINE_COLOUR = (31, 119, 180)  # matplotlib's first line colour


def graph_point(step: int, value: float, steps: int) -> tuple[float, float]:
    """Where a step's value is drawn: x spread over the axes (one step: the middle), y from -1
    at the bottom to 1 at the top."""
    left, top, right, bottom = PLOT_BOX
    x = (left + right) / 2 if steps == 1 else left + step * (right - left) / (steps - 1)
    return x, bottom - (value + 1) / 2 * (bottom - top)


def schedule_graph(schedule):
    """The schedule as a line graph: an RGB float array [H, W, 3] in 0..1."""
    import numpy as np
    from PIL import Image, ImageDraw

    image = Image.new("RGB", GRAPH_SIZE, "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = PLOT_BOX
    steps = len(schedule)
    tick_every = max(1, steps // 25)  # the pack ticks every step; past 25 the labels would overlap
    for step in range(0, steps, tick_every):
        x, _ = graph_point(step, 0, steps)
        draw.line([(x, top), (x, bottom)], fill=(220, 220, 220))
        draw.text((x, bottom + 4), str(step), fill="black", anchor="mt")
    for value in (-1.0, -0.5, 0.0, 0.5, 1.0):
        _, y = graph_point(0, value, steps)
        draw.line([(left, y), (right, y)], fill=(220, 220, 220))
        draw.text((left - 4, y), f"{value:.2f}", fill="black", anchor="rm")
    # the line on a layer of the axes' size, so that values beyond -1..1 are cut at the axes
    plot = Image.new("RGBA", GRAPH_SIZE, (0, 0, 0, 0))
    points = [graph_point(step, float(value), steps) for step, value in enumerate(schedule)]
    ImageDraw.Draw(plot).line(points if steps > 1 else points * 2, fill=(*LINE_COLOUR, 255), width=2)
    box = (left, top, right + 1, bottom + 1)
    image.paste(plot.crop(box), box[:2], plot.crop(box))
    draw.rectangle(PLOT_BOX, outline="black")
    draw.text(((left + right) / 2, top / 2), "Detail Adjustment Schedule", fill="black", anchor="mm")
    draw.text(((left + right) / 2, GRAPH_SIZE[1] - 20), "Steps", fill="black", anchor="mm")
    draw.text((right - 4, top + 4), "Sigma Adjustment Curve", fill=LINE_COLOUR, anchor="ra")
    draw.text((4, top / 2), "Multiplier (*10)", fill="black", anchor="lm")
    return np.asarray(image, dtype=np.float32) / 255.0


class MultiplySigmasStateless(Node):
    """Multiply part of a schedule by `factor`: the sigmas from index int(start x N) up to (not
    including) int(end x N), N the number of sigmas (the final 0 counted); the input is left as it
    is. (The pack's first version had only `factor`, for the whole schedule: start 0 and end 1.)"""
    category = "sampling/custom_sampling/sigmas"
    sigmas: SIGMAS
    factor: float = Float(1.0, min=0.0, max=100.0, step=0.001)
    start: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    outputs = {"SIGMAS": SIGMAS}
    comfy = ComfyAlias(("MultiplySigmas",))

    def run(self):
        import torch
        if not torch.is_tensor(self.sigmas) or self.sigmas.ndim != 1:
            raise NodeInputError("sigmas", "expected SIGMAS: a 1-D tensor of noise levels")
        count = len(self.sigmas)
        out = self.sigmas.clone()
        out[int(self.start * count):int(self.end * count)] *= self.factor
        return out


def _lying_api_inputs(inputs: dict) -> dict:
    """The pack's function takes start_percent 0 and end_percent 1 when a prompt leaves them out
    (the editor's widgets default to 0.1 and 0.9)."""
    return {"start_percent": 0.0, "end_percent": 1.0, **inputs}


class LyingSigmaSampler(Node):
    """Lying Sigma: the sampler as it is, but while the step's sigma is between the model's
    sigmas at start_percent and end_percent of the process (rounded to 4 decimals), the model is
    told sigma x (1 + dishonesty_factor): -0.05 tells it 5% less noise than there is, so it
    leaves more detail. Outside that range the sigma is passed on as it is."""
    category = "sampling/custom_sampling"
    sampler: SAMPLER
    dishonesty_factor: float = Float(-0.05, min=-0.999, step=0.01)
    start_percent: float = Float(0.1, min=0.0, max=1.0, step=0.01)
    end_percent: float = Float(0.9, min=0.0, max=1.0, step=0.01)
    outputs = {"SAMPLER": SAMPLER}
    comfy = ComfyAlias(("LyingSigmaSampler",), optional=("start_percent", "end_percent"),
                       api_inputs=_lying_api_inputs)

    def run(self):
        return _wrapped(self.sampler, LyingSigmaAdjuster(self.dishonesty_factor, self.start_percent,
                                                         self.end_percent))
