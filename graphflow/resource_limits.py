"""Resource limits: what a run may ask for, checked before it starts.

Validation calls `check(plan, limits)`. It follows the pixel size (batch, height, width) of the
latents, images and masks along the links, from the nodes that set it (EmptyLatent's width,
height and batch_size, an upscale's new size) to the nodes that consume it, and refuses:
- what breaks a policy limit (`max_pixels` per image, `max_batch`, `max_steps`), which
  `graphflow serve` sets by default and `graphflow run` only when asked;
- what cannot fit in this machine's memory whatever the model: the tensors a node holds and
  the working memory it declares, against the compute device's memory and the RAM.
The estimates are lower bounds, so a refused run would surely have failed; one that passes
may still run out of memory, as before. `max_run_seconds` is enforced by the executor.

A node tells its sizes with hints on its widgets: `Int(512, resource="width")` (also "height",
"batch"; 0 keeps the aspect ratio of the input) and `Int(20, resource="steps")`; without them
its outputs take the size of its first sized input. A video's length is hinted
`Int(81, resource="frames", frame_stride=4)`: the frames a decode of it gives (its latent keeps one
frame per `frame_stride`), counted in the bytes of its latents and images but not against
`max_batch`; only nodes that set `keeps_frames` (a decode) or estimate by their input's size (the
samplers) pass them on: a node picking frames out of a video would otherwise be counted at the
whole video, so image nodes after a decode count one frame (a lower bound). A node whose sizes or working
memory follow another rule overrides `Node.estimate(widgets, inputs)` and returns an `Estimate`.
"""

import functools
import logging
import os
import sys
from dataclasses import dataclass, replace

from graphflow.workflow import Problem

log = logging.getLogger("graphflow.resource_limits")

SIZED_SOCKETS = {"LATENT": 4 * 4 / 64, "IMAGE": 3 * 4, "MASK": 4}  # bytes per pixel: fp32, latents at 1/8 side
# A lower bound of a UNet's working memory per image pixel: its first level keeps about six
# 320-channel activations at 1/8 of the side (the skip connections) in half precision.
UNET_BYTES_PER_PIXEL = 6 * 320 * 2 / 64
RESOURCE_HINTS = ("width", "height", "batch", "frames", "steps")


@dataclass(frozen=True)
class Size:
    """The pixel size of a batch of latents, images or masks (latents count their decoded pixels);
    `frames`: a video's decoded frames per batch item."""

    batch: int
    height: int
    width: int
    frames: int = 1

    @property
    def pixels(self) -> int:
        return self.height * self.width

    @property
    def volume(self) -> int:
        """Pixels in all: batch × frames × height × width."""
        return self.batch * self.frames * self.pixels

    def __str__(self):
        frames = f" × {self.frames} frames" if self.frames != 1 else ""
        return f"{self.batch}{frames} × {self.width}×{self.height}"


@dataclass
class Estimate:
    """What running a node takes: the size of its latent/image/mask outputs (None: unknown) and
    the working memory it needs beyond its inputs and outputs (activations), in bytes."""

    size: Size | None = None
    memory: int = 0


@dataclass(frozen=True)
class RunLimits:
    """None means no limit; ram_bytes/device_bytes None means this machine's."""

    max_pixels: int | None = None
    max_batch: int | None = None
    max_steps: int | None = None
    max_run_seconds: float | None = None
    ram_bytes: int | None = None
    device_bytes: int | None = None


# `graphflow serve` defaults: a shared server refuses what one user shouldn't take alone.
SERVER_LIMITS = RunLimits(max_pixels=8192 * 8192, max_batch=64, max_steps=1000, max_run_seconds=3600)


def hinted(cls, hint: str) -> str | None:
    """The name of the widget of `cls` with resource hint `hint`, if any."""
    for name, spec in cls.input_specs.items():
        if spec.widget is not None and spec.widget.hints.get("resource") == hint:
            return name
    return None


def default_estimate(cls, widgets: dict, inputs: dict) -> Estimate:
    """Sizes from the resource hints (width/height/batch/frames), else the first sized input's."""
    source = next((s for s in inputs.values() if s is not None), None)
    width_name, height_name, batch_name = hinted(cls, "width"), hinted(cls, "height"), hinted(cls, "batch")
    width, height = widgets.get(width_name), widgets.get(height_name)
    batch = widgets.get(batch_name) if batch_name else None
    frames_name = hinted(cls, "frames")
    if frames_name is not None:
        # a video node: its own width x height x length (its image inputs are start frames, guides,
        # not its size); unknown until they are (linked values are checked when it runs)
        if not isinstance(width, int) or not isinstance(height, int) or width <= 0 or height <= 0:
            return Estimate(None)
        return Estimate(Size(batch if isinstance(batch, int) else 1, height, width, _decoded_frames(cls, widgets)))
    if source is not None and source.frames != 1 and not cls.keeps_frames:
        source = replace(source, frames=1)
    if not isinstance(width, int) or not isinstance(height, int):
        if source is not None and isinstance(batch, int):
            return Estimate(Size(batch, source.height, source.width, source.frames))
        return Estimate(source)
    if width == 0 or height == 0:  # 0 keeps the input's aspect ratio
        if source is None:
            return Estimate(None)
        if width == 0 and height == 0:
            width, height = source.width, source.height
        elif width == 0:
            width = max(1, round(source.width * height / source.height))
        else:
            height = max(1, round(source.height * width / source.width))
    if not isinstance(batch, int):
        batch = source.batch if source is not None else 1
    return Estimate(Size(batch, height, width, source.frames if source is not None else 1))


def _decoded_frames(cls, widgets: dict) -> int:
    """The frames a decode of the node's video gives: one, then `frame_stride` per latent frame after it."""
    name = hinted(cls, "frames")
    length = widgets.get(name)
    if not isinstance(length, int) or length < 1:
        return 1
    stride = cls.input_specs[name].widget.hints.get("frame_stride", 1)
    return (length - 1) // stride * stride + 1


def repeated(size: Size | None, times) -> Estimate:
    """The estimate of a node that repeats its input's batch `times` times (one copy after another
    or each in place): the batch `times` as long (unknown while either is)."""
    if size is None or not isinstance(times, int):
        return Estimate(size)
    return Estimate(Size(size.batch * times, size.height, size.width, size.frames))


def sampling_memory(size: Size | None) -> int:
    """The working memory sampling a latent batch of `size` (its decoded pixels) takes at least. A
    video's frames are not counted: video models pack many decoded pixel-frames into one token
    (LTX-Video 32 x 32 x 8), so the UNet's figure per pixel times frames would not be a lower bound."""
    return int(UNET_BYTES_PER_PIXEL * size.batch * size.pixels) if size is not None else 0


def check_run_memory(input_name: str, what: str, sampled: Size | None = None, images: Size | None = None,
                     data: int = 0) -> None:
    """Refuse (NodeInputError naming input_name), before it starts, work whose size only the run
    knows (a pipe's latent, a sampler script's hires pass), by the rule the planner applies to the
    sizes it knows: sampling a latent batch of `sampled` needs sampling_memory() on the compute
    device (on a CPU in the RAM), an IMAGE batch of `images` its bytes in the RAM, and `data` bytes
    of anything else (an archive built in memory) the same; against the run's RunLimits (ram_bytes /
    device_bytes) or this machine's. `what` says what makes the size ("upscales the latent by 8")."""
    from graphflow.context import NodeInputError, run_limits

    budget = _budget(run_limits())
    device_name, device_bytes = budget["device"]
    working, pictures = sampling_memory(sampled), _bytes("IMAGE", images)
    held = pictures + data
    if device_bytes is not None and working > device_bytes:
        raise NodeInputError(input_name, f"{what}: sampling {_what(sampled)} needs at least {_gb(working)} of "
                                         f"working memory on {device_name}, which has {_gb(device_bytes)}")
    on_ram = held + (working if device_bytes is None or device_name == "cpu" else 0)
    if budget["ram"] is not None and on_ram > budget["ram"]:
        needs = " and ".join(part for part, n in ((f"sampling {_what(sampled)}", working if on_ram > held else 0),
                                                  (f"the images ({images})", pictures),
                                                  (f"{_gb(data)} of data", data)) if n)
        raise NodeInputError(input_name, f"{what}: {needs} needs at least {_gb(on_ram)} of memory; this machine has "
                                         f"{_gb(budget['ram'])}")


def check(plan, limits: RunLimits | None = None) -> list[Problem]:
    """Problems with what the planned run would take; [] when it may start."""
    limits = limits or RunLimits()
    problems: list[Problem] = []
    sizes: dict[str, Size | None] = {}  # node id -> size of its sized outputs
    origin: dict[str, str] = {}  # node id -> the node that set that size
    held = 0  # bytes of outputs the run holds until it ends
    budget = None
    too_big: set[str] = set()  # origins already reported: one memory problem per oversized size
    for node_id in plan.order:
        node = plan.nodes[node_id]
        cls = node.cls
        steps_name = hinted(cls, "steps")
        if limits.max_steps is not None and steps_name and node.widgets.get(steps_name, 0) > limits.max_steps:
            problems.append(Problem(node_id, cls.node_type, steps_name,
                                    f"{node.widgets[steps_name]} steps is more than this server allows "
                                    f"({limits.max_steps})"))
        inputs = {name: sizes.get(src) for name, (src, _) in node.links.items()
                  if cls.input_specs[name].type in SIZED_SOCKETS}
        node.input_sizes = inputs  # for linked_value_problem, when the linked widgets' values are known
        estimate, working = _estimated(node_id, cls, node.widgets, inputs)
        size = estimate.size
        sizes[node_id] = size
        same = _passed_on(size, inputs)
        if same is not None:
            origin[node_id] = origin.get(node.links[same][0], node.links[same][0])
        else:
            origin[node_id] = node_id
        if size is not None and origin[node_id] == node_id:
            problems += _policy_problems(node_id, cls, size, inputs, limits)

        out_bytes = sum(_bytes(o.type, size) for o in cls.output_specs)
        in_bytes = sum(_bytes(cls.input_specs[name].type, s) for name, s in inputs.items())
        held += out_bytes
        if not (out_bytes or in_bytes or working) or origin[node_id] in too_big:
            continue
        budget = budget or _budget(limits)
        where = _largest_input(inputs) or _size_input(cls, size)
        source = origin.get(node_id)
        from_note = f" (the size is set by node {source} ({plan.nodes[source].cls.node_type}))" \
            if source not in (None, node_id) else ""
        count = len(problems)
        problem = _memory_problem(node_id, cls, size, in_bytes + out_bytes, working, budget, where, from_note)
        if problem is not None:
            problems.append(problem)
        elif budget["ram"] is not None and held > budget["ram"]:
            problems.append(Problem(node_id, cls.node_type, where,
                                    f"the run's latents and images add up to at least {_gb(held)} by this "
                                    f"node; this machine has {_gb(budget['ram'])}{from_note}"))
            held = 0  # reported once
        if len(problems) > count:
            too_big.add(origin[node_id])
    return problems


def _memory_problem(node_id, cls, size: Size | None, tensor_bytes: int, working: int, budget: dict, where,
                    from_note: str = "") -> Problem | None:
    """What one node needs that this machine (or the run's RunLimits) lacks: its working memory on the
    compute device, or its inputs, outputs and (on a CPU) working memory in the RAM."""
    device_name, device_bytes = budget["device"]
    if device_bytes is not None and working > device_bytes:
        return Problem(node_id, cls.node_type, where, f"{_what(size)} needs at least {_gb(working)} of working "
                                                      f"memory on {device_name}, which has {_gb(device_bytes)}{from_note}")
    on_cpu = working if device_bytes is None or device_name == "cpu" else 0
    if budget["ram"] is not None and tensor_bytes + on_cpu > budget["ram"]:
        return Problem(node_id, cls.node_type, where, f"{_what(size)} needs at least {_gb(tensor_bytes + on_cpu)} of "
                                                      f"memory; this machine has {_gb(budget['ram'])}{from_note}")
    return None


def linked_value_problem(node, values: dict, limits: RunLimits | None) -> Problem | None:
    """The policy limit a node breaks with the widget values that reached it by links, or None:
    the check validation made with the typed-in values, made again with the values the node is about
    to run on (its latent/image/mask inputs at the sizes validation estimated), so a linked
    16384 × 16384 is refused under a server's 8192 × 8192 as a typed-in one is, and a size that
    can't fit in memory as validation refuses a typed-in one (also without a policy). `node` is the
    plan's (graphflow.validation.PlannedNode)."""
    cls = node.cls
    linked = [name for name in node.links if cls.input_specs[name].widget]
    if not linked:
        return None
    limits = limits or RunLimits()
    widgets = {name: values[name] for name, spec in cls.input_specs.items() if spec.widget and name in values}
    steps_name = hinted(cls, "steps")
    steps = widgets.get(steps_name)
    if limits.max_steps is not None and steps_name in linked and isinstance(steps, int) and steps > limits.max_steps:
        return Problem(node.id, cls.node_type, steps_name,
                       f"{steps} steps is more than this server allows ({limits.max_steps})")
    inputs = node.input_sizes
    estimate, working = _estimated(node.id, cls, widgets, inputs)
    size = estimate.size
    if size is None or _passed_on(size, inputs) is not None:  # a size passed on was checked where it was set
        return None
    problems = _policy_problems(node.id, cls, size, inputs, limits)
    if problems:
        return problems[0]
    # and the memory it would take, as validation checks a typed-in size (a linked 8192 resize)
    tensor_bytes = sum(_bytes(o.type, size) for o in cls.output_specs) + \
        sum(_bytes(cls.input_specs[name].type, s) for name, s in inputs.items())
    # the linked value that sets the size: a hinted one (width, batch) if linked, else a linked number
    # (a scale factor, not a method's name), else the first linked
    where = next((name for name in linked if cls.input_specs[name].widget.hints.get("resource")), None) or \
        next((name for name in linked if cls.input_specs[name].widget.kind in ("INT", "FLOAT")), linked[0])
    return _memory_problem(node.id, cls, size, tensor_bytes, working, _budget(limits), where)


def _estimated(node_id, cls, widgets: dict, inputs: dict) -> tuple[Estimate, int]:
    """The node's estimate and its working memory; an estimate that fails is unknown (the run
    isn't refused for it)."""
    try:
        estimate = cls.estimate(dict(widgets), dict(inputs)) or default_estimate(cls, widgets, inputs)
        if not isinstance(estimate, Estimate) or not isinstance(estimate.size, (Size, type(None))):
            raise TypeError(f"estimate() returned {estimate!r}, not an Estimate")
        return estimate, max(0, int(estimate.memory))
    except Exception:
        log.warning("node %s (%s): estimate() failed", node_id, cls.node_type, exc_info=True)
        return Estimate(None), 0


def _passed_on(size: Size | None, inputs: dict) -> str | None:
    """The input whose size the node passes on, checked where it was set, if any: the same picture
    size with no more frames (a node that doesn't keep a video's frames passes on its picture size;
    a video node whose start image has the video's picture size still makes the frames itself)."""
    if size is None:
        return None
    return next((n for n, s in inputs.items() if s is not None and size.frames <= s.frames
                 and replace(s, frames=1) == replace(size, frames=1)), None)


def _policy_problems(node_id, cls, size: Size, inputs: dict, limits: RunLimits) -> list[Problem]:
    problems = []
    if limits.max_pixels is not None and size.pixels > limits.max_pixels:
        problems.append(Problem(node_id, cls.node_type, _size_input(cls, size, "width") or _largest_input(inputs),
                                f"an image of {size.width}×{size.height} ({size.pixels / 1e6:.1f} megapixels) is "
                                f"larger than this server allows ({limits.max_pixels / 1e6:.1f} megapixels)"))
    if limits.max_batch is not None and size.batch > limits.max_batch:
        problems.append(Problem(node_id, cls.node_type, hinted(cls, "batch") or _largest_input(inputs),
                                f"a batch of {size.batch} is more than this server allows ({limits.max_batch})"))
    return problems


def _bytes(socket_type: str, size: Size | None) -> int:
    if size is None or socket_type not in SIZED_SOCKETS:
        return 0
    return int(size.volume * SIZED_SOCKETS[socket_type])


def _largest_input(inputs: dict) -> str | None:
    known = [(s.volume, name) for name, s in inputs.items() if s is not None]
    return max(known)[1] if known else None


def _size_input(cls, size: Size | None, prefer: str | None = None) -> str | None:
    if prefer is None and size is not None and size.batch > 1:
        prefer = "batch"
    return hinted(cls, prefer or "width") or hinted(cls, "width") or hinted(cls, "batch")


def _what(size: Size | None) -> str:
    return f"a batch of {size}" if size is not None else "this node"


def _gb(n: float) -> str:
    for unit, scale in (("GB", 2**30), ("TB", 2**40), ("PB", 2**50)):
        if n < 1000 * scale or unit == "PB":
            return f"{n / scale:,.1f} {unit}"


def _budget(limits: RunLimits) -> dict:
    ram = limits.ram_bytes if limits.ram_bytes is not None else machine_ram()
    if limits.device_bytes is not None:
        device = ("device", limits.device_bytes)
    else:
        device = machine_device()
    return {"ram": ram, "device": device}


@functools.cache
def machine_ram() -> int | None:
    """Physical memory, or the container's limit when lower; None where unknown."""
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            text = f.read().strip()
        if text.isdigit():
            ram = min(ram, int(text))
    except OSError:
        pass
    return ram


def memory_figures() -> dict:
    """The system's RAM as /proc/meminfo tells it: {"ram_total", "ram_available"} in bytes, {}
    where it can't be read (the server's system stats and Crystools' Stats system show these)."""
    info = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    info["ram_total" if key == "MemTotal" else "ram_available"] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return info


@functools.cache
def machine_device() -> tuple[str, int | None]:
    """The compute device's name and memory (None for the CPU, which uses the RAM)."""
    if _cpu_only_machine():
        return "cpu", None  # known without importing torch, which costs more than validating
    from graphflow.device import compute_device  # torch: only once a run has sizes to check

    device = compute_device()
    if device.type == "cuda":
        import torch

        return str(device), torch.cuda.get_device_properties(device).total_memory
    return device.type, None


def _cpu_only_machine() -> bool:
    """True where no accelerator can exist: Linux with no GPU driver's device node (NVIDIA, ROCm,
    WSL's GPU) and no device chosen by GRAPHFLOW_DEVICE. Elsewhere torch is asked."""
    if os.environ.get("GRAPHFLOW_DEVICE") or not sys.platform.startswith("linux"):
        return False
    return not any(os.path.exists(node) for node in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg"))
