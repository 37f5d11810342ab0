"""ComfyUI-AnimateDiff-Evolved's core (Kosinkadink's pack, read at commit 599b71807de3 for
motion_module_ad.py, 01ec8aa236ff for nodes_gen2.py, 1a87cefb18dd for nodes_gen1.py, 0ba022c77512
for nodes_context.py, 11252fc34fec for utils_model.py, 31955647a1b6 for nodes_multival.py, 63b70f105834
for utils_motion.py): short videos from SD1.5 (or SDXL) checkpoints with AnimateDiff motion modules
from models/animatediff_models/ (graphflow.models.animatediff). The latent batch is the video's frames
(EmptyLatentImage's batch_size); every sampler samples them together and the motion module lets the
frames attend to each other.

Nodes: ADE_LoadAnimateDiffModel, ADE_ApplyAnimateDiffModelSimple, ADE_ApplyAnimateDiffModel,
ADE_UseEvolvedSampling (Gen2); ADE_AnimateDiffLoaderGen1 and the legacy ADE_AnimateDiffLoaderWithContext
(Gen1); ADE_AnimateDiffLoRALoader (motion LoRAs from models/animatediff_motion_lora/); ADE_MultivalDynamic
(a number, or by link one per frame); ADE_EmptyLatentImageLarge; ADE_AnimateDiffUnload; the context
options ADE_StandardStaticContextOptions, ADE_StandardUniformContextOptions,
ADE_LoopedUniformContextOptions, ADE_BatchedContextOptions and the legacy
ADE_AnimateDiffUniformContextOptions, which become graphflow's context windows over the frames
(graphflow.sampling.context_windows: the same schedules and the flat / pyramid / relative /
overlap-linear fuse weights).

Left out (a clear error where a workflow sets them): AD settings (positional-encoding
stretching), keyframes, sample settings (noise types, FreeInit, custom CFG), per-block settings,
multival masks, view options, context options chained with
prev_context or starting later than 0, the pack's experimental (🔬) fuse methods, the beta
schedules avg(sqrt_linear,linear), lcm avg(sqrt_linear,linear), lcm[100_ots], sqrt, cosine and
squaredcos_cap_v2, AnimateLCM-I2V / CameraCtrl / PIA / FancyVideo models and the deprecated
AnimateDiffLoaderV1. Under the context options each window's ControlNets and T2I-Adapters (core's
apply nodes and Advanced-ControlNet's alike) take that window's hint frames, and Advanced-ControlNet's
latent keyframes, strength masks and weight masks that window's frames, as the pack cuts them with
Advanced-ControlNet (a hint or mask shorter than the video is first extended by repeating its last
frame; a single frame serves every frame; an inpainting ControlNet's mask is not cut, as the pack's is
not: each window takes its first frames); core's ContextWindowsManual leaves them whole, as ComfyUI's
(graphflow.sampling.context_windows). The pack refuses core-loaded ControlNets under its windows
(only Advanced-ControlNet's carry sub_idxs); here every ControlNet takes the windows. The pack's
GroupNorm hack (v1, SDXL models: GroupNorms over all frames) patches every GroupNorm while sampling,
ControlNets' included; here it applies to the UNet's GroupNorms only (ControlNets normalise per frame).
"""

from __future__ import annotations

from dataclasses import replace

from graphflow.api import LATENT, MASK, MODEL, Bool, Choice, ComfyAlias, Float, Int, Node, NodeInputError, folders, \
    socket_type

COMFY_PACK = "ComfyUI-AnimateDiff-Evolved"  # the custom node pack this module's ComfyUI classes come from

MOTION_MODEL_ADE = socket_type("MOTION_MODEL_ADE", "#7c4dbb", "An AnimateDiff motion module (AnimateDiff-Evolved)")
M_MODELS = socket_type("M_MODELS", "#8e5ccc", "Motion models applied with their scale and effect (AnimateDiff-Evolved)")
CONTEXT_OPTIONS = socket_type("CONTEXT_OPTIONS", "#5c8ecc", "AnimateDiff-Evolved context options: windows over "
                                                            "the frames")
MULTIVAL = socket_type("MULTIVAL", "#9e7c4d", "An AnimateDiff-Evolved multival: here a number or one per frame")
MOTION_LORA = socket_type("MOTION_LORA", "#b0764d", "AnimateDiff motion LoRAs with their strengths")
AD_SETTINGS = socket_type("AD_SETTINGS", "#9e9e9e", "AnimateDiff settings (not built here)")
AD_KEYFRAMES = socket_type("AD_KEYFRAMES", "#9e9e9e", "AnimateDiff keyframes (not built here)")
SAMPLE_SETTINGS = socket_type("SAMPLE_SETTINGS", "#9e9e9e", "AnimateDiff sample settings (not built here)")
PER_BLOCK = socket_type("PER_BLOCK", "#9e9e9e", "AnimateDiff per-block settings (not built here)")
VIEW_OPTS = socket_type("VIEW_OPTS", "#9e9e9e", "AnimateDiff view options (not built here)")

GEN2 = "Animate Diff 🎭🅐🅓/② Gen2 nodes ②"
GEN1 = "Animate Diff 🎭🅐🅓/① Gen1 nodes ①"
CONTEXT = "Animate Diff 🎭🅐🅓/context opts"
FOLDER = "animatediff_models"
LORA_FOLDER = "animatediff_motion_lora"

# the pack's beta_schedule choices (BetaSchedules.ALIAS_LIST), in its order
AUTOSELECT, USE_EXISTING = "autoselect", "use existing"
SQRT_LINEAR, LINEAR_ADXL = "sqrt_linear (AnimateDiff)", "linear (AnimateDiff-SDXL)"
LINEAR = "linear (HotshotXL/default)"
LCM, LCM_SQRT_LINEAR = "lcm", "lcm >> sqrt_linear"
BETA_SCHEDULES = (AUTOSELECT, USE_EXISTING, SQRT_LINEAR, LINEAR_ADXL, LINEAR, "avg(sqrt_linear,linear)",
                  "lcm avg(sqrt_linear,linear)", LCM, "lcm[100_ots]", LCM_SQRT_LINEAR, "sqrt", "cosine",
                  "squaredcos_cap_v2")
# the built ones: (ComfyUI's beta schedule name -> our BetaSchedule kind, linear_end, LCM sampling)
# ComfyUI's "linear" spaces sqrt(beta) linearly (our "scaled_linear"); its "sqrt_linear" spaces beta itself
BUILT_SCHEDULES = {SQRT_LINEAR: ("linear", 0.012, False), LINEAR_ADXL: ("scaled_linear", 0.020, False),
                   LINEAR: ("scaled_linear", 0.012, False), LCM: ("scaled_linear", 0.012, True),
                   LCM_SQRT_LINEAR: ("linear", 0.012, True)}
BETA_HELP = ("the noise schedule to sample with: autoselect (the motion module's own: sqrt_linear for SD1.5 "
             "AnimateDiff, linear (AnimateDiff-SDXL) for AnimateDiff-SDXL, linear (HotshotXL/default) for HotshotXL, "
             "lcm for AnimateLCM), use existing (the model's), sqrt_linear (AnimateDiff), linear (AnimateDiff-SDXL), "
             "linear (HotshotXL/default), lcm, lcm >> sqrt_linear; the others are not built here")

FUSE_METHODS = ("pyramid", "flat", "overlap-linear", "🔬delayed reverse sawtooth", "🔬pyramid-sigma",
                "🔬pyramid-sigma inverse", "🔬gauss-sigma", "🔬gauss-sigma inverse", "🔬random")
FUSE_METHODS_STATIC = ("pyramid", "relative", *FUSE_METHODS[1:])
BUILT_FUSE = ("pyramid", "relative", "flat", "overlap-linear")
LENGTH_MAX, STRIDE_MAX, OVERLAP_MAX = 128, 32, 128  # the pack's bounds
BIGMAX = 2 ** 53 - 1


def _not_built(value, name: str, what: str):
    if value is not None:
        raise NodeInputError(name, f"{what} are not built in graphflow's AnimateDiff; disconnect {name}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(multival, name: str) -> float | tuple[float, ...] | None:
    """A multival as MotionSettings takes it: a number, or a tuple of one per frame."""
    if multival is None:
        return None
    if isinstance(multival, (list, tuple)) and multival and all(_is_number(v) for v in multival):
        return tuple(float(v) for v in multival)
    if not _is_number(multival):
        raise NodeInputError(name, "only a number or a list of one per frame is built as a multival here "
                                   "(ADE_MultivalDynamic without a mask)")
    return float(multival)


def _load(model_name: str):
    from graphflow.models.animatediff import MotionModuleError, load_motion_model
    from graphflow.models.weight_files import CheckpointError, WeightFile

    try:
        path = folders.find_model(FOLDER, model_name)
    except (FileNotFoundError, ValueError) as e:
        raise NodeInputError("model_name", str(e)) from None
    try:
        with WeightFile(path) as f:
            return load_motion_model({k: f.get(k) for k in f.shapes}, model_name)
    except (CheckpointError, MotionModuleError) as e:
        raise NodeInputError("model_name", str(e)) from None


def _with_loras(motion, motion_lora):
    """The motion model with the motion LoRAs ((name, tensors, strength) entries) added."""
    from graphflow.models.animatediff import MotionModuleError, motion_lora_deltas, with_motion_loras

    if not motion_lora:
        return motion
    try:
        return with_motion_loras(motion, [(motion_lora_deltas(state, motion, name), strength)
                                          for name, state, strength in motion_lora])
    except MotionModuleError as e:
        raise NodeInputError("motion_lora", str(e)) from None


def _applied(motion, scale_multival=None, effect_multival=None, start_percent=0.0, end_percent=1.0,
             motion_lora=None) -> tuple:
    from graphflow.models.animatediff import MotionSettings

    scale = _number(scale_multival, "scale_multival")
    effect = _number(effect_multival, "effect_multival")
    motion = _with_loras(motion, motion_lora)
    settings = MotionSettings(1.0 if scale is None else scale, 1.0 if effect is None else effect)
    return ((motion, settings, (start_percent, end_percent)),)


def _beta_model(model, alias: str, motion):
    """The MODEL sampled with the pack's beta schedule `alias` (BetaSchedules.to_model_sampling)."""
    from graphflow.models.diffusion_model import BetaSchedule

    if alias == AUTOSELECT:
        alias = USE_EXISTING if motion is None else motion.beta_schedule
    if alias == USE_EXISTING:
        return model
    if alias not in BUILT_SCHEDULES:
        raise NodeInputError("beta_schedule", f"the beta schedule {alias!r} is not built here; choose one of "
                                              f"{', '.join((AUTOSELECT, USE_EXISTING, *BUILT_SCHEDULES))}")
    kind, end, lcm = BUILT_SCHEDULES[alias]
    own = model.model_type if model.model_type in ("eps", "v") else "eps"
    clone = model.with_sampling("lcm" if lcm else own)  # a fresh sigma table: no zsnr, as the pack's
    clone.beta_schedule = BetaSchedule(linear_start=0.00085, linear_end=end, num_timesteps=1000, kind=kind)
    return clone


def evolved_model(model, beta_schedule: str, m_models=None, context_options=None, apply_v2_properly: bool = True,
                  motion_input: str = "m_models"):
    """The MODEL with the motion model in its UNet, the beta schedule and the context windows; errors
    about the motion model name motion_input (the node's input it came from)."""
    from graphflow.models.animatediff import MotionModuleError, attach_motion

    from graphflow.models.architectures import ARCHITECTURES

    family = ARCHITECTURES.get(getattr(model, "arch", None))
    if not hasattr(model, "with_unet") or family is None or family.saved_as != "unet":  # the SD families' UNet
        raise NodeInputError("model", "AnimateDiff needs an SD1.5 (or, for SDXL motion modules, SDXL) checkpoint's "
                                      f"MODEL; this one is {getattr(model, 'arch', type(model).__name__)!r}")
    from graphflow.sampling.model_sampling import DiscreteSchedule

    m_models = m_models or ()
    if m_models and getattr(model.unet, "temporal_layers", None):
        raise NodeInputError("model", "this MODEL already samples with AnimateDiff motion models (an earlier "
                                      "AnimateDiff node); apply all motion models in one node (prev_m_models "
                                      "chains them)")
    first = m_models[0][0] if m_models else None  # the last applied: it picks the schedule and GroupNorms
    model = _beta_model(model, beta_schedule, first)
    frames_norm = None if first is None else first.frames_group_norm(apply_v2_properly)
    # context_length above a motion module's frames is refused when sampling, where the windows are
    # used (a video no longer than context_length runs whole and may fit), as the pack refuses it
    context_length = None if context_options is None else context_options.length
    for motion, settings, percents in reversed(m_models):  # the first applied runs first at each place
        settings = replace(settings, context_length=context_length)
        wanted = {"sd1": "sd1", "sdxl": "sdxl"}[motion.config.base]
        if model.arch != wanted:
            family = {"sd1": "SD1.5", "sdxl": "SDXL"}[wanted]
            raise NodeInputError(motion_input, f"motion module {motion.name!r} is made for {family} models; "
                                               f"this model is {model.arch}")
        if percents != (0.0, 1.0):  # sigmas of the schedule sampled with, as the pack's model_sampling gives them
            schedule = DiscreteSchedule.for_model(model)
            settings = replace(settings, sigma_range=(schedule.percent_to_sigma(percents[0]),
                                                      schedule.percent_to_sigma(percents[1])))
        try:
            model = model.with_unet(attach_motion(model.unet, motion, settings, frames_group_norm=frames_norm))
        except MotionModuleError as e:
            raise NodeInputError(motion_input, str(e)) from None
    if context_options is not None:
        from graphflow.sampling.context_windows import with_context_windows

        model = with_context_windows(model, context_options)
    return model


class LoadAnimateDiffModel(Node):
    """Load an AnimateDiff motion module from models/animatediff_models/: guoyww's mm_sd_v15.ckpt (v1),
    mm_sd_v15_v2.ckpt (v2), v3_sd15_mm.ckpt (v3), the fine-tunes in their layout, AnimateLCM, HotshotXL.
    A file that is no motion module (a checkpoint, a LoRA) is refused. ad_settings is not built here.
    When sampling, the UNets run a copy of the motion model in their compute dtype, one per motion model
    and dtype, shared by every MODEL it is applied to and managed by graphflow's memory manager like the
    other models: counted, loaded to the device with the UNet, offloaded or streamed when device memory
    is short, dropped from RAM when RAM is short and made again from the loaded motion model, which
    itself stays in RAM, unchanged."""
    category = GEN2
    model_name: str = Choice(lambda: folders.list_models(FOLDER), model_folder=FOLDER)
    ad_settings: AD_SETTINGS = None
    outputs = {"MOTION_MODEL": MOTION_MODEL_ADE}
    comfy = ComfyAlias(("ADE_LoadAnimateDiffModel",), optional=("ad_settings",))

    @classmethod
    def fingerprint(cls, model_name, **_):
        return folders.model_state(FOLDER, model_name)

    def run(self):
        _not_built(self.ad_settings, "ad_settings", "AD settings")
        return _load(self.model_name)


SCALE_HELP = "motion scale: a number multiplying the temporal attention's keys (1 unchanged; higher, more motion)"
EFFECT_HELP = "how much of the motion module's change each temporal layer keeps: 0 none (still frames), 1 all"


class ApplyAnimateDiffModelSimple(Node):
    """Apply a motion model, for ADE_UseEvolvedSampling's m_models: scale_multival and effect_multival
    take a number or one per frame (ADE_MultivalDynamic's float_val); motion_lora
    (ADE_AnimateDiffLoRALoader's) is added to the motion model's weights; ad_keyframes is not built here."""
    category = GEN2
    motion_model: MOTION_MODEL_ADE
    motion_lora: MOTION_LORA = None
    scale_multival: MULTIVAL = None
    effect_multival: MULTIVAL = None
    ad_keyframes: AD_KEYFRAMES = None
    outputs = {"M_MODELS": M_MODELS}
    comfy = ComfyAlias(("ADE_ApplyAnimateDiffModelSimple",),
                       optional=("motion_lora", "scale_multival", "effect_multival", "ad_keyframes"))

    def run(self):
        _not_built(self.ad_keyframes, "ad_keyframes", "AnimateDiff keyframes")
        return _applied(self.motion_model, self.scale_multival, self.effect_multival, motion_lora=self.motion_lora)


class ApplyAnimateDiffModel(Node):
    """Apply a motion model for ADE_UseEvolvedSampling's m_models, running only from start_percent to
    end_percent of the sampling (the steps whose sigma lies between those percents' sigmas on the
    schedule sampled with, as the pack compares them); scale, effect and motion LoRAs as in
    ADE_ApplyAnimateDiffModelSimple. prev_m_models: motion models applied before, each run in turn at every
    place of the UNet (the earliest first, as the pack injects them); the last applied picks the autoselected
    beta schedule and whether GroupNorms span the frames."""
    category = GEN2
    motion_model: MOTION_MODEL_ADE
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    motion_lora: MOTION_LORA = None
    scale_multival: MULTIVAL = None
    effect_multival: MULTIVAL = None
    ad_keyframes: AD_KEYFRAMES = None
    prev_m_models: M_MODELS = None
    outputs = {"M_MODELS": M_MODELS}
    comfy = ComfyAlias(("ADE_ApplyAnimateDiffModel",),
                       optional=("motion_lora", "scale_multival", "effect_multival", "ad_keyframes", "prev_m_models"))

    def run(self):
        _not_built(self.ad_keyframes, "ad_keyframes", "AnimateDiff keyframes")
        applied = _applied(self.motion_model, self.scale_multival, self.effect_multival, self.start_percent,
                           self.end_percent, self.motion_lora)
        return (*applied, *(self.prev_m_models or ()))  # the newest first, as the pack's group


class UseEvolvedSampling(Node):
    """Sample the MODEL as AnimateDiff-Evolved does: the motion models (m_models) run in its UNet over
    the frames of the latent batch, with the beta schedule chosen (autoselect: the motion module's) and,
    given context_options, in windows of frames fused per frame. A motion module takes at most the frames
    its positional encoding holds (v1 24, v2 / v3 32) at once: without context options the whole video,
    with them each window of context_length frames (the whole video where it is no longer than
    context_length); more is refused when sampling, as the pack refuses it. Where the pack normalises
    GroupNorms over all frames (v1, SDXL motion modules), it does so for ControlNets' GroupNorms too;
    here only the UNet's are (a ControlNet's stay per frame). An SD1.5 motion module on an SDXL model (or the
    reverse) is refused.
    sample_settings is not built here."""
    category = GEN2
    model: MODEL
    beta_schedule: str = Choice(BETA_SCHEDULES, AUTOSELECT, description=BETA_HELP)
    m_models: M_MODELS = None
    context_options: CONTEXT_OPTIONS = None
    sample_settings: SAMPLE_SETTINGS = None
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("ADE_UseEvolvedSampling",), optional=("m_models", "context_options", "sample_settings"))

    def run(self):
        _not_built(self.sample_settings, "sample_settings", "AnimateDiff sample settings")
        return evolved_model(self.model, self.beta_schedule, self.m_models, self.context_options)


class AnimateDiffLoaderGen1(Node):
    """AnimateDiff in one node: load the motion module model_name, apply it with scale_multival /
    effect_multival (numbers, or one per frame) and sample with the beta schedule and context options,
    as ADE_LoadAnimateDiffModel + ADE_ApplyAnimateDiffModelSimple + ADE_UseEvolvedSampling, with motion_lora.
    ad_settings, ad_keyframes, sample_settings and per_block are not built here."""
    category = GEN1
    model: MODEL
    model_name: str = Choice(lambda: folders.list_models(FOLDER), model_folder=FOLDER)
    beta_schedule: str = Choice(BETA_SCHEDULES, AUTOSELECT, description=BETA_HELP)
    context_options: CONTEXT_OPTIONS = None
    motion_lora: MOTION_LORA = None
    ad_settings: AD_SETTINGS = None
    ad_keyframes: AD_KEYFRAMES = None
    sample_settings: SAMPLE_SETTINGS = None
    scale_multival: MULTIVAL = None
    effect_multival: MULTIVAL = None
    per_block: PER_BLOCK = None
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("ADE_AnimateDiffLoaderGen1",),
                       optional=("context_options", "motion_lora", "ad_settings", "ad_keyframes", "sample_settings",
                                 "scale_multival", "effect_multival", "per_block"))

    @classmethod
    def fingerprint(cls, model_name, **_):
        return folders.model_state(FOLDER, model_name)

    def run(self):
        for name, what in (("ad_settings", "AD settings"), ("ad_keyframes", "AnimateDiff keyframes"),
                           ("sample_settings", "AnimateDiff sample settings"),
                           ("per_block", "per-block settings")):
            _not_built(getattr(self, name), name, what)
        applied = _applied(_load(self.model_name), self.scale_multival, self.effect_multival,
                           motion_lora=self.motion_lora)
        return evolved_model(self.model, self.beta_schedule, applied, self.context_options,
                             motion_input="model_name")


class AnimateDiffLoaderWithContext(Node):
    """The pack's legacy AnimateDiff Loader: as ADE_AnimateDiffLoaderGen1 with motion_scale (multiplying
    the temporal attention's keys) and apply_v2_models_properly (off: v2 models also normalise every
    GroupNorm over all frames, as v1 models do; the pack's default on leaves SD1.5 v2 models per frame).
    ad_settings, sample_settings and ad_keyframes are not built here."""
    category = GEN1
    model: MODEL
    model_name: str = Choice(lambda: folders.list_models(FOLDER), model_folder=FOLDER)
    beta_schedule: str = Choice(BETA_SCHEDULES, AUTOSELECT, description=BETA_HELP)
    context_options: CONTEXT_OPTIONS = None
    motion_lora: MOTION_LORA = None
    ad_settings: AD_SETTINGS = None
    sample_settings: SAMPLE_SETTINGS = None
    motion_scale: float = Float(1.0, min=0.0, step=0.001, description=SCALE_HELP)
    apply_v2_models_properly: bool = Bool(True, description="SD1.5 v2 models: GroupNorms per frame (on) or "
                                                            "over all frames (off)")
    ad_keyframes: AD_KEYFRAMES = None
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("ADE_AnimateDiffLoaderWithContext",),
                       optional=("context_options", "motion_lora", "ad_settings", "sample_settings", "motion_scale",
                                 "apply_v2_models_properly", "ad_keyframes"))

    @classmethod
    def fingerprint(cls, model_name, **_):
        return folders.model_state(FOLDER, model_name)

    def run(self):
        for name, what in (("ad_settings", "AD settings"), ("sample_settings", "AnimateDiff sample settings"),
                           ("ad_keyframes", "AnimateDiff keyframes")):
            _not_built(getattr(self, name), name, what)
        motion = _load(self.model_name)
        return evolved_model(self.model, self.beta_schedule, _applied(motion, self.motion_scale,
                                                                      motion_lora=self.motion_lora),
                             self.context_options, self.apply_v2_models_properly, motion_input="model_name")


class AnimateDiffLoraLoader(Node):
    """A motion LoRA from models/animatediff_motion_lora/ (guoyww's v2_lora_ZoomIn.ckpt, PanLeft and the
    like) at a strength, added to the motion model it is applied with: each weight + strength * up @ down
    (no alpha), as the pack does. prev_motion_lora chains several."""
    category = "Animate Diff 🎭🅐🅓"
    name: str = Choice(lambda: folders.list_models(LORA_FOLDER), model_folder=LORA_FOLDER)
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.001)
    prev_motion_lora: MOTION_LORA = None
    outputs = {"MOTION_LORA": MOTION_LORA}
    comfy = ComfyAlias(("ADE_AnimateDiffLoRALoader",), inputs={"lora_name": "name"}, optional=("prev_motion_lora",))

    @classmethod
    def fingerprint(cls, name, **_):
        return folders.model_state(LORA_FOLDER, name)

    def run(self):
        from graphflow.models.animatediff import check_motion_lora
        from graphflow.models.weight_files import CheckpointError, WeightFile

        try:
            path = folders.find_model(LORA_FOLDER, self.name)
            with WeightFile(path) as f:
                state = {k: f.get(k).clone() for k in f.shapes}
            check_motion_lora(state, self.name)  # a damaged file is refused here, not when sampling
        except (FileNotFoundError, ValueError, CheckpointError) as e:  # MotionModuleError is a ValueError
            raise NodeInputError("name", str(e)) from None
        return (*(self.prev_motion_lora or ()), (self.name, state, self.strength))


class MultivalDynamic(Node):
    """A multival for scale_multival / effect_multival: the number float_val, or by link a list of one
    per frame (FizzNodes' Batch Value Schedule), as the pack takes it: a list shorter than the video
    has its last value repeated, a longer one is cut, and under context options each window takes
    its frames' values. mask_optional (a per-pixel multival) is not built here."""
    category = "Animate Diff 🎭🅐🅓/multival"
    float_val: float = Float(1.0, min=0.0, step=0.001, linked_list=True)
    mask_optional: MASK = None
    outputs = {"MULTIVAL": MULTIVAL}
    comfy = ComfyAlias(("ADE_MultivalDynamic",), optional=("mask_optional",))

    def run(self):
        _not_built(self.mask_optional, "mask_optional", "multival masks")
        if isinstance(self.float_val, (list, tuple)):
            if not self.float_val:
                raise NodeInputError("float_val", "got an empty list; expected a number or one per frame")
            return tuple(float(v) for v in self.float_val)
        return self.float_val


# ---- context options ------------------------------------------------------------------------------

LENGTH_HELP = "frames per window (at most the motion module's positions: 24 for v1, 32 for v2 / v3)"
OVERLAP_HELP = "frames adjacent windows share, blended by the fuse method; below context_length"
STRIDE_HELP = "also windows of every 2nd, 4th, ... frame, up to this many spacings"
FUSE_HELP = ("how the windows' predictions are averaged per frame: pyramid, relative (static only), flat, "
             "overlap-linear; the pack's experimental (🔬) methods are not built here")


def context_options(schedule: str, length: int, overlap: int, stride: int = 1, closed_loop: bool = False,
                    fuse_method: str = "pyramid", start_percent: float = 0.0, prev_context=None, view_opts=None):
    """graphflow's context windows over the frames (dim 0) for the pack's context options."""
    from graphflow.sampling.context_windows import ContextWindows

    if fuse_method not in BUILT_FUSE:
        raise NodeInputError("fuse_method", f"the fuse method {fuse_method!r} is not built here; choose one of "
                                            f"{', '.join(BUILT_FUSE)}")
    if schedule != "batched" and overlap >= length:
        raise NodeInputError("context_overlap",
                             f"the overlap ({overlap}) must be smaller than context_length ({length})")
    if start_percent != 0.0:
        raise NodeInputError("start_percent", "context options starting after the first step are not built here; "
                                              "keep start_percent 0")
    if prev_context is not None:
        raise NodeInputError("prev_context", "chained context options are not built here; use one")
    _not_built(view_opts, "view_opts", "view options")
    return ContextWindows(length, overlap, schedule, stride, closed_loop, fuse_method, dim=0, window_controls=True)


class StandardStaticContextOptions(Node):
    """Context options: sample the frames in fixed windows of context_length from the first frame,
    context_overlap frames apart from the next, the last window moved back to end at the last frame;
    each frame's predictions are averaged over its windows (fuse_method). Used when the video has more
    frames than context_length. use_on_equal_length and guarantee_steps change nothing here (one window
    the length of the video is the video; one set of options runs every step). start_percent above 0,
    prev_context and view_opts are not built here."""
    category = CONTEXT
    context_length: int = Int(16, min=1, max=LENGTH_MAX, description=LENGTH_HELP)
    context_overlap: int = Int(4, min=0, max=OVERLAP_MAX, description=OVERLAP_HELP)
    fuse_method: str = Choice(FUSE_METHODS_STATIC, "pyramid", description=FUSE_HELP)
    use_on_equal_length: bool = Bool(False)
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    guarantee_steps: int = Int(1, min=0, max=BIGMAX)
    prev_context: CONTEXT_OPTIONS = None
    view_opts: VIEW_OPTS = None
    outputs = {"CONTEXT_OPTS": CONTEXT_OPTIONS}
    comfy = ComfyAlias(("ADE_StandardStaticContextOptions",),
                       optional=("fuse_method", "use_on_equal_length", "start_percent", "guarantee_steps",
                                 "prev_context", "view_opts"))

    def run(self):
        return context_options("standard_static", self.context_length, self.context_overlap,
                               fuse_method=self.fuse_method, start_percent=self.start_percent,
                               prev_context=self.prev_context, view_opts=self.view_opts)


class StandardUniformContextOptions(Node):
    """Context options: windows of context_length whose start moves every step (standard_uniform of
    graphflow's context windows), with context_stride spacings, fused per frame. Otherwise as
    ADE_StandardStaticContextOptions."""
    category = CONTEXT
    context_length: int = Int(16, min=1, max=LENGTH_MAX, description=LENGTH_HELP)
    context_stride: int = Int(1, min=1, max=STRIDE_MAX, description=STRIDE_HELP)
    context_overlap: int = Int(4, min=0, max=OVERLAP_MAX, description=OVERLAP_HELP)
    fuse_method: str = Choice(FUSE_METHODS, "pyramid", description=FUSE_HELP)
    use_on_equal_length: bool = Bool(False)
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    guarantee_steps: int = Int(1, min=0, max=BIGMAX)
    prev_context: CONTEXT_OPTIONS = None
    view_opts: VIEW_OPTS = None
    outputs = {"CONTEXT_OPTS": CONTEXT_OPTIONS}
    comfy = ComfyAlias(("ADE_StandardUniformContextOptions",),
                       optional=("fuse_method", "use_on_equal_length", "start_percent", "guarantee_steps",
                                 "prev_context", "view_opts"))

    def run(self):
        return context_options("standard_uniform", self.context_length, self.context_overlap, self.context_stride,
                               fuse_method=self.fuse_method, start_percent=self.start_percent,
                               prev_context=self.prev_context, view_opts=self.view_opts)


class LoopedUniformContextOptions(Node):
    """Context options: uniform windows that wrap around the end (looped_uniform); closed_loop also
    blends the end into the start, for a looping video. Otherwise as ADE_StandardUniformContextOptions."""
    category = CONTEXT
    context_length: int = Int(16, min=1, max=LENGTH_MAX, description=LENGTH_HELP)
    context_stride: int = Int(1, min=1, max=STRIDE_MAX, description=STRIDE_HELP)
    context_overlap: int = Int(4, min=0, max=OVERLAP_MAX, description=OVERLAP_HELP)
    closed_loop: bool = Bool(False)
    fuse_method: str = Choice(FUSE_METHODS, "pyramid", description=FUSE_HELP)
    use_on_equal_length: bool = Bool(False)
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    guarantee_steps: int = Int(1, min=0, max=BIGMAX)
    prev_context: CONTEXT_OPTIONS = None
    view_opts: VIEW_OPTS = None
    outputs = {"CONTEXT_OPTS": CONTEXT_OPTIONS}
    comfy = ComfyAlias(("ADE_LoopedUniformContextOptions",),
                       optional=("fuse_method", "use_on_equal_length", "start_percent", "guarantee_steps",
                                 "prev_context", "view_opts"))

    def run(self):
        return context_options("looped_uniform", self.context_length, self.context_overlap, self.context_stride,
                               self.closed_loop, self.fuse_method, self.start_percent, self.prev_context,
                               self.view_opts)


class AnimateDiffUniformContextOptions(Node):
    """The pack's legacy Uniform Context Options: looped uniform windows (context_schedule "uniform"),
    fuse_method flat by default, as ADE_LoopedUniformContextOptions otherwise."""
    category = CONTEXT
    context_length: int = Int(16, min=1, max=LENGTH_MAX, description=LENGTH_HELP)
    context_stride: int = Int(1, min=1, max=STRIDE_MAX, description=STRIDE_HELP)
    context_overlap: int = Int(4, min=0, max=OVERLAP_MAX, description=OVERLAP_HELP)
    context_schedule: str = Choice(("uniform",), "uniform")
    closed_loop: bool = Bool(False)
    fuse_method: str = Choice(FUSE_METHODS, "flat", description=FUSE_HELP)
    use_on_equal_length: bool = Bool(False)
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    guarantee_steps: int = Int(1, min=0, max=BIGMAX)
    prev_context: CONTEXT_OPTIONS = None
    view_opts: VIEW_OPTS = None
    outputs = {"CONTEXT_OPTS": CONTEXT_OPTIONS}
    comfy = ComfyAlias(("ADE_AnimateDiffUniformContextOptions",), ignore=("deprecation_warning",),
                       optional=("fuse_method", "use_on_equal_length", "start_percent", "guarantee_steps",
                                 "prev_context", "view_opts"))

    def run(self):
        return context_options("looped_uniform", self.context_length, self.context_overlap, self.context_stride,
                               self.closed_loop, self.fuse_method, self.start_percent, self.prev_context,
                               self.view_opts)


class BatchedContextOptions(Node):
    """Context options: consecutive windows of context_length frames without overlap (the last may be
    shorter). start_percent above 0 and prev_context are not built here."""
    category = CONTEXT
    context_length: int = Int(16, min=1, max=LENGTH_MAX, description=LENGTH_HELP)
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    guarantee_steps: int = Int(1, min=0, max=BIGMAX)
    prev_context: CONTEXT_OPTIONS = None
    outputs = {"CONTEXT_OPTS": CONTEXT_OPTIONS}
    comfy = ComfyAlias(("ADE_BatchedContextOptions",), optional=("start_percent", "guarantee_steps", "prev_context"))

    def run(self):
        return context_options("batched", self.context_length, 0, fuse_method="flat",
                               start_percent=self.start_percent, prev_context=self.prev_context)


class EmptyLatentImageLarge(Node):
    """A blank SD latent batch of the given pixel size (4 channels, 1/8 size), as EmptyLatentImage but
    for the long batches of video frames (the pack's Empty Latent Image (Big Batch))."""
    category = "Animate Diff 🎭🅐🅓/extras"
    width: int = Int(512, min=64, max=16384, step=8, resource="width")
    height: int = Int(512, min=64, max=16384, step=8, resource="height")
    batch_size: int = Int(1, min=1, max=262144, resource="batch")
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("ADE_EmptyLatentImageLarge",))

    def run(self):
        import torch

        return {"samples": torch.zeros(self.batch_size, 4, self.height // 8, self.width // 8)}


class AnimateDiffUnload(Node):
    """The MODEL without its AnimateDiff motion models and context options, for sampling single
    pictures again (a hires pass after the video), as the pack's AnimateDiff Unload; the beta schedule
    chosen stays. Model patches applied after the motion models are dropped with them here."""
    category = "Animate Diff 🎭🅐🅓/extras"
    model: MODEL
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("ADE_AnimateDiffUnload",))

    def run(self):
        unet = getattr(self.model, "unet", None)
        base = getattr(unet, "without_motion", None)
        model = self.model if base is None else self.model.with_unet(base)
        if getattr(model, "context_windows", None) is not None:
            from graphflow.sampling.context_windows import with_context_windows

            model = with_context_windows(model, None)
        return model
