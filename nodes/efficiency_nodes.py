"""Efficiency Nodes (jags111/efficiency-nodes-comfyui, the maintained fork of LucianoCirino's) built
in under the pack's class names, inputs, defaults and outputs: Efficient Loader, Eff. Loader SDXL,
LoRA Stacker, LoRA Stack to String converter, Control Net Stacker, Apply ControlNet Stack, Pack /
Unpack SDXL Tuple, Image Overlay, the three samplers KSampler (Efficient), KSampler Adv.
(Efficient) and KSampler SDXL (Eff.), and two of the pack's scripts, HighRes-Fix Script and Noise
Control Script (read from jags111's efficiency_nodes.py at 040aea25a12ab86a8488e9d55003ee515da4deae,
with LucianoCirino's py/smZ_rng_source.py and py/cg_mixed_seed_noise.py at
93eb9256864fb9a8b68d570fe19947d1aa37bfe5 / 333f984cc460e6a3fb3e0247e4a16a12ee4265e3, jags111's
py/smZ_cfg_denoiser.py at 425b64ab139287ddbfca08993f9c9df04c9a4b6b and the editor's
js/seedcontrol.js and js/widgethider.js). They call our core loaders, LoRA, text encoding,
ControlNet, sampling, upscale and VAE code. XY Plot and its XY inputs are in
nodes/pack_nodes_efficiency_xy.py (the samplers run its grid); the pack's other scripts (Tiled
Upscaler, AnimateDiff) are not built in: a sampler refuses them by name.

Stacks as the pack passes them: LORA_STACK a list of (lora_name, model_strength, clip_strength),
CONTROL_NET_STACK a list of (control_net, image, strength, start_percent, end_percent), SDXL_TUPLE
(base model, base clip, base positive, base negative, refiner model, refiner clip, refiner
positive, refiner negative). A SCRIPT (the pack's is a plain dict {"hiresfix": {...}, "noise": {...}},
each script adding its own key to the one it is chained after) is here a frozen Script that only
HighRes-Fix Script, Noise Control Script and XY Plot make, holding the settings each checked: the samplers
refuse any other value (a dict linked from an ANY output would skip those checks)."""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass, replace
from types import SimpleNamespace

from graphflow.api import (CLIP, CONDITIONING, IMAGE, LATENT, MASK, MODEL, STRING, VAE, Bool, Choice, ComfyAlias,
                           Float, Int, Node, NodeInputError, Size, Text, check_run_memory, folders, run_limits, show,
                           socket_type, warn)
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from nodes.controlnet import CONTROL_NET, ApplyControlNet, LoadControlNet, _apply_pair
from nodes.image import MAX_SIZE, ImageScaleBy, _resize_image, temp_pngs
from nodes.latent import LATENT_RESIZE_METHODS, EmptyLatent, LatentUpscaleBy
from nodes.loaders import DEMO_CHECKPOINT, LoadCheckpoint, LoadVAE
from nodes.pack_nodes import _apply_lora, _core, _lora_choices, random_seed
from nodes.pack_nodes_adv_clip import TOKEN_NORMALIZATIONS, WEIGHT_INTERPRETATIONS, advanced_encode
from nodes.pack_nodes_controlnet_aux import AIO_NODES, PREPROCESSOR_OPTIONS, AIOPreprocessor
from nodes.sampling import SEED_MAX, KSampler, KSamplerAdvanced, _estimate
from nodes.upscale import ImageUpscaleWithModel, LoadUpscaleModel
from nodes.vae import VAEDecode, VAEEncode

COMFY_PACK = "Efficiency Nodes"  # the custom node pack this module's ComfyUI classes come from

LORA_STACK = socket_type("LORA_STACK", "#e5a03c",
                         "Efficiency Nodes' LoRAs to apply: (name, model strength, clip strength)")
CONTROL_NET_STACK = socket_type("CONTROL_NET_STACK", "#00b87a",
                                "Efficiency Nodes' ControlNets to apply: (control net, image, strength, start, end)")
SDXL_TUPLE = socket_type("SDXL_TUPLE", "#8d6ec8", "Efficiency Nodes' SDXL base and refiner models, text encoders "
                                                  "and prompts in one link")
DEPENDENCIES = socket_type("DEPENDENCIES", "#9e9e9e", "What Efficiency Nodes' XY Plot reads from a loader")
SCRIPT = socket_type("SCRIPT", "#9e9e9e", "Efficiency Nodes' scripts for its samplers (HighRes-Fix, Noise Control, "
                                          "...): the settings of each script chained, as those nodes made them")

BAKED_VAE = "Baked VAE"
# The pack's samplers add Align Your Steps and GITS to the scheduler list.
EFF_SCHEDULERS = SCHEDULER_NAMES + ("AYS SD1", "AYS SDXL", "AYS SVD", "GITS")
PREVIEW_METHODS = ("auto", "latent2rgb", "taesd", "vae_decoded_only", "none")  # KSampler (Efficient)'s
ADV_PREVIEW_METHODS = ("auto", "latent2rgb", "taesd", "none")  # the Adv. and SDXL samplers'
# All three samplers' vae_decode: KSampler (Efficient) lists only the first three since the pack's
# 2.0; the "output only" two are kept for its 2023 saves.
VAE_DECODES = ("true", "true (tiled)", "false", "output only", "output only (tiled)")
STACKER_ROWS = 50  # the LoRA Stacker's rows: all saved by the editor, lora_count of them used
RANDOM_SEED = -1  # the pack's seed widget value for "draw a seed when queueing"
TILE_SIZE = 320  # the pack decodes "tiled" as VAEDecodeTiled(tile_size 320) with its other defaults
# The pack's script keys: ours, and those of its scripts not built in (their node names)
BUILT_SCRIPTS = ("hiresfix", "noise", "xyplot")
UNBUILT_SCRIPTS = {"tile": "Tiled Upscaler Script", "anim": "AnimateDiff Script"}
SCRIPTS = "Tiled Upscaler Script and AnimateDiff Script"  # the pack's scripts not built in
USE_SAME = "(use same)"  # HighRes-Fix's hires_ckpt_name for the sampler's own model
# The pack's NN latent upscalers: city96's downloads its weights from the Hugging Face hub, ttl_nn's
# ship inside the pack's folder; neither is a file a user has in a model folder.
NN_LATENT_UPSCALERS = ("city96.v1", "city96.xl", "ttl_nn.SDXL", "ttl_nn.SD 1.x")
LATENT_UPSCALERS = LATENT_RESIZE_METHODS + NN_LATENT_UPSCALERS
NO_AUX = "_"  # use_controlnet's and preprocessor's only value where comfyui_controlnet_aux is missing
MODEL_UPSCALE = 4  # the pack scales a model-upscaled image by upscale_by / 4, taking every model as 4x
RNG_SOURCES = ("cpu", "gpu", "nv")


def _checkpoint_choices() -> list[str]:
    return folders.list_models("checkpoints")


def _vae_choices() -> list[str]:
    return [BAKED_VAE] + folders.list_models("vae")


def _apply_cnet_stack(positive, negative, stack):
    """Each ControlNet of a stack applied in turn to both prompts, as Apply ControlNet (advanced)."""
    for entry in stack or []:
        if not isinstance(entry, (tuple, list)) or len(entry) != 5:
            raise NodeInputError("cnet_stack", f"expected (control_net, image, strength, start_percent, end_percent) "
                                               f"entries, got {entry!r:.80}")
        net, image, strength, start, end = entry
        node = SimpleNamespace(positive=positive, negative=negative, control_net=net, image=image, strength=strength,
                               start_percent=start, end_percent=end, vae=None)
        try:
            positive, negative = _apply_pair(node)
        except NodeInputError as e:
            raise NodeInputError("cnet_stack", str(e)) from None
    return positive, negative


def _lora_rows(lora_stack) -> list:
    if lora_stack is None:
        return []
    if not isinstance(lora_stack, (list, tuple)) or not all(isinstance(r, (list, tuple)) and len(r) >= 3
                                                              for r in lora_stack):
        raise NodeInputError("lora_stack", f"expected a list of (lora_name, model_strength, clip_strength), "
                                           f"got {lora_stack!r:.80}")
    return [tuple(r[:3]) for r in lora_stack]


def _load(ckpt_name: str, ckpt_input: str, vae_name: str, loras: list):
    """Checkpoint, LoRAs in turn ((name, model strength, clip strength, our input naming it), each
    applied as LoraLoader applies it, even at strength 0, as the pack does) and the VAE: the
    checkpoint's own ("Baked VAE") or a file from models/vae."""
    model, clip, vae = _core(LoadCheckpoint, {"checkpoint": ckpt_input}, checkpoint=ckpt_name)
    for name, strength_model, strength_clip, input_name in loras:
        model, clip = _apply_lora(model, clip, name, strength_model, strength_clip, input_name)
    if vae_name != BAKED_VAE:
        vae = _core(LoadVAE, vae_name=vae_name)
    return model, clip, vae


def _set_clip_skip(clip, clip_skip: int, input_name: str):
    if clip is None:
        raise NodeInputError(input_name, "the checkpoint has no text encoder")
    try:
        return clip.with_clip_skip(clip_skip)
    except ValueError as e:
        raise NodeInputError(input_name, str(e)) from None


def _state(kind: str, name: str):
    try:
        return folders.model_state(kind, name)
    except (OSError, ValueError, TypeError):
        return None  # run() names the problem (a fingerprint must not raise: it would fail the run)


def _counted(count, limit: int) -> range:
    """The rows 1 .. count a fingerprint reads (all `limit` where count is no count: a superset)."""
    return range(1, (count if isinstance(count, int) and 0 <= count <= limit else limit) + 1)


def _states(kind: str, names, skip=("None",)) -> tuple:
    """The files' states (_state) of the names in use, for a fingerprint: a file rewritten under
    its name runs the node again; a missing one gives None (run() reports it)."""
    return tuple(_state(kind, name) for name in names if isinstance(name, str) and name not in skip)


# -- saves of the pack's 2023 versions (before its October 2023 2.0), read into today's layout --

SAMPLER_STATES = ("Sample", "Hold", "Script")  # the 2023 samplers' first widget


def loader_widgets(values: list) -> list:
    """Efficient Loader's widgets_values; a 2023 save has 11, without token_normalization and
    weight_interpretation, which then take none and comfy (how the pack encoded before)."""
    return values[:8] + ["none", "comfy"] + values[8:] if len(values) == 11 else values


def sampler_widgets(values: list) -> list:
    """The samplers' widgets_values; a 2023 save starts with sampler_state, which is dropped
    (here every run samples: "Hold" reused the last results, "Script" ran the script)."""
    return values[1:] if values and values[0] in SAMPLER_STATES else values


def _stacker_save(mode: str, rows: list) -> list:
    """The LoRA Stacker's widgets_values for rows (lora_name, lora_wt, model_str, clip_str), the
    rest of its 50 at their defaults."""
    count = len(rows)
    rows = rows + [("None", 1.0, 1.0, 1.0)] * (STACKER_ROWS - count)
    return [mode, count] + [v for row in rows for v in row]


def stacker_widgets(values: list) -> list:
    """LoRA Stacker's widgets_values; a 2023 save has just its three rows (lora_name, lora_wt),
    which become the simple mode's first three rows."""
    if len(values) == 6 and values[0] not in ("simple", "advanced"):
        return _stacker_save("simple", [(name, wt, 1.0, 1.0) for name, wt in zip(values[::2], values[1::2])])
    return values


def stacker_adv_widgets(values: list) -> list:
    """The 2023 LoRA Stacker Adv.'s three rows (lora_name, model_str, clip_str) as the LoRA
    Stacker's advanced mode (a save already in the LoRA Stacker's layout, as graphflow writes the
    class back, is kept)."""
    if values and values[0] in ("simple", "advanced"):
        return values
    return _stacker_save("advanced", [(name, 1.0, model, clip) for name, model, clip in
                                      (values[i:i + 3] for i in range(0, len(values) - len(values) % 3, 3))])


class EfficientLoader(Node):
    """Load a checkpoint, apply a LoRA (lora_name, unless "None") and then the LoRAs of lora_stack in
    turn, stop the text encoder at clip_skip, encode the positive and negative prompts, apply the
    ControlNets of cnet_stack to them, and make an empty latent batch of the given size, as
    Efficiency Nodes' Efficient Loader does. vae_name "Baked VAE" is the checkpoint's own VAE.
    token_normalization none with weight_interpretation comfy encodes exactly as CLIP Text Encode;
    the other token normalizations (mean, length, length+mean) and weight interpretations (A1111,
    compel, comfy++, down_weight) follow ComfyUI_ADV_CLIP_emb's formulas, as CLIP Text Encode
    (Advanced) encodes. The CLIP output is the clip-skipped text encoder;
    DEPENDENCIES is what the pack's XY Plot reads. Saves of the pack's 2023 versions
    (no token_normalization / weight_interpretation) read as none / comfy."""
    category = "Efficiency Nodes/Loaders"
    ckpt_name: str = Choice(_checkpoint_choices, DEMO_CHECKPOINT, model_folder="checkpoints")
    vae_name: str = Choice(_vae_choices, BAKED_VAE, model_folder="vae", not_files=(BAKED_VAE,))
    clip_skip: int = Int(-1, min=-24, max=-1)
    lora_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    lora_model_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_clip_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    positive: str = Text("CLIP_POSITIVE", multiline=True)
    negative: str = Text("CLIP_NEGATIVE", multiline=True)
    token_normalization: str = Choice(TOKEN_NORMALIZATIONS, "none")
    weight_interpretation: str = Choice(WEIGHT_INTERPRETATIONS, "comfy")
    empty_latent_width: int = Int(512, min=64, max=16384, step=64, resource="width")
    empty_latent_height: int = Int(512, min=64, max=16384, step=64, resource="height")
    batch_size: int = Int(1, min=1, max=262144, resource="batch")
    lora_stack: LORA_STACK = None
    cnet_stack: CONTROL_NET_STACK = None
    outputs = {"MODEL": MODEL, "CONDITIONING+": CONDITIONING, "CONDITIONING-": CONDITIONING, "LATENT": LATENT,
               "VAE": VAE, "CLIP": CLIP, "DEPENDENCIES": DEPENDENCIES}
    comfy = ComfyAlias(("Efficient Loader",), widgets=loader_widgets)

    @classmethod
    def fingerprint(cls, ckpt_name=DEMO_CHECKPOINT, vae_name=BAKED_VAE, lora_name="None", **widgets):
        return (_state("checkpoints", ckpt_name), vae_name != BAKED_VAE and _state("vae", vae_name),
                lora_name != "None" and _state("loras", lora_name))

    def run(self):
        loras = ([(self.lora_name, self.lora_model_strength, self.lora_clip_strength)] if self.lora_name != "None"
                 else []) + _lora_rows(self.lora_stack)
        model, clip, vae = _load(self.ckpt_name, "ckpt_name", self.vae_name,
                                 [(*r, "lora_name" if i == 0 and self.lora_name != "None" else "lora_stack")
                                  for i, r in enumerate(loras)])
        clip = _set_clip_skip(clip, self.clip_skip, "clip_skip")
        positive, negative = (advanced_encode(clip, getattr(self, name), self.token_normalization,
                                              self.weight_interpretation, name) for name in ("positive", "negative"))
        positive, negative = _apply_cnet_stack(positive, negative, self.cnet_stack)
        latent = _core(EmptyLatent, width=self.empty_latent_width, height=self.empty_latent_height,
                       batch_size=self.batch_size)
        dependencies = (self.vae_name, self.ckpt_name, clip, self.clip_skip, "None", None, None, self.positive,
                        self.negative, self.token_normalization, self.weight_interpretation, None,
                        self.empty_latent_width, self.empty_latent_height, loras or None, self.cnet_stack)
        return model, positive, negative, latent, vae, clip, dependencies


class EffLoaderSDXL(Node):
    """Efficiency Nodes' Eff. Loader SDXL: the base checkpoint with the LoRAs of lora_stack, its
    text encoder at base_clip_skip, the prompts encoded as the Efficient Loader encodes them (and
    the ControlNets of cnet_stack applied to them); the refiner checkpoint (unless "None") at
    refiner_clip_skip with the same prompts encoded and given the aesthetic scores and the empty
    latent's size, as CLIP Text Encode SDXL Refiner does. All of it goes out as one SDXL_TUPLE
    (Unpack SDXL Tuple splits it; KSampler SDXL (Eff.) samples base then refiner)."""
    category = "Efficiency Nodes/Loaders"
    base_ckpt_name: str = Choice(_checkpoint_choices, DEMO_CHECKPOINT, model_folder="checkpoints")
    base_clip_skip: int = Int(-2, min=-24, max=-1)
    refiner_ckpt_name: str = Choice(lambda: ["None"] + _checkpoint_choices(), "None", model_folder="checkpoints",
                                    not_files=("None",))
    refiner_clip_skip: int = Int(-2, min=-24, max=-1)
    positive_ascore: float = Float(6.0, min=0.0, max=1000.0, step=0.01)
    negative_ascore: float = Float(2.0, min=0.0, max=1000.0, step=0.01)
    vae_name: str = Choice(_vae_choices, BAKED_VAE, model_folder="vae", not_files=(BAKED_VAE,))
    positive: str = Text("CLIP_POSITIVE", multiline=True)
    negative: str = Text("CLIP_NEGATIVE", multiline=True)
    token_normalization: str = Choice(TOKEN_NORMALIZATIONS, "none")
    weight_interpretation: str = Choice(WEIGHT_INTERPRETATIONS, "comfy")
    empty_latent_width: int = Int(1024, min=64, max=16384, step=64, resource="width")
    empty_latent_height: int = Int(1024, min=64, max=16384, step=64, resource="height")
    batch_size: int = Int(1, min=1, max=64, resource="batch")
    lora_stack: LORA_STACK = None
    cnet_stack: CONTROL_NET_STACK = None
    outputs = {"SDXL_TUPLE": SDXL_TUPLE, "LATENT": LATENT, "VAE": VAE, "DEPENDENCIES": DEPENDENCIES}
    comfy = ComfyAlias(("Eff. Loader SDXL",))

    @classmethod
    def fingerprint(cls, base_ckpt_name=DEMO_CHECKPOINT, refiner_ckpt_name="None", vae_name=BAKED_VAE, **widgets):
        return (_state("checkpoints", base_ckpt_name), refiner_ckpt_name != "None"
                and _state("checkpoints", refiner_ckpt_name), vae_name != BAKED_VAE and _state("vae", vae_name))

    def run(self):
        loras = _lora_rows(self.lora_stack)
        model, clip, vae = _load(self.base_ckpt_name, "base_ckpt_name", self.vae_name,
                                 [(*r, "lora_stack") for r in loras])
        clip = _set_clip_skip(clip, self.base_clip_skip, "base_clip_skip")
        positive, negative = (advanced_encode(clip, getattr(self, name), self.token_normalization,
                                              self.weight_interpretation, name) for name in ("positive", "negative"))
        positive, negative = _apply_cnet_stack(positive, negative, self.cnet_stack)
        refiner_model = refiner_clip = refiner_positive = refiner_negative = None
        if self.refiner_ckpt_name != "None":
            refiner_model, refiner_clip, _ = _core(LoadCheckpoint, {"checkpoint": "refiner_ckpt_name"},
                                                   checkpoint=self.refiner_ckpt_name)
            refiner_clip = _set_clip_skip(refiner_clip, self.refiner_clip_skip, "refiner_clip_skip")
            size = {"width": self.empty_latent_width, "height": self.empty_latent_height}
            refiner_positive, refiner_negative = (
                [(c, {**o, **size, "aesthetic_score": score}) for c, o in
                 advanced_encode(refiner_clip, getattr(self, name), self.token_normalization,
                                 self.weight_interpretation, name)]
                for name, score in (("positive", self.positive_ascore), ("negative", self.negative_ascore)))
        latent = _core(EmptyLatent, width=self.empty_latent_width, height=self.empty_latent_height,
                       batch_size=self.batch_size)
        dependencies = (self.vae_name, self.base_ckpt_name, clip, self.base_clip_skip, self.refiner_ckpt_name,
                        refiner_clip, self.refiner_clip_skip, self.positive, self.negative, self.token_normalization,
                        self.weight_interpretation, (self.positive_ascore, self.negative_ascore),
                        self.empty_latent_width, self.empty_latent_height, loras or None, self.cnet_stack)
        sdxl = (model, clip, positive, negative, refiner_model, refiner_clip, refiner_positive, refiner_negative)
        return sdxl, latent, vae, dependencies


class LoRAStacker(Node):
    """List LoRAs for the Efficient Loaders' lora_stack, as Efficiency Nodes' LoRA Stacker: the first
    lora_count rows, those not "None", each with lora_wt for both model and text encoder ("simple")
    or model_str and clip_str ("advanced"), followed by an incoming lora_stack's. The editor shows
    only the rows in use but saves all 50. The 2023 LoRA Stacker (three rows) and LoRA Stacker Adv.
    read as the simple and advanced modes."""
    category = "Efficiency Nodes/Stackers"
    input_mode: str = Choice(("simple", "advanced"), "simple")
    lora_count: int = Int(3, min=0, max=STACKER_ROWS)
    # The pack's 50 rows (lora_name_i, lora_wt_i, model_str_i, clip_str_i), declared in turn into the
    # class body's namespace (a plain dict here; comprehensions can't see the class's loop variable).
    for _i in range(1, STACKER_ROWS + 1):
        __annotations__[f"lora_name_{_i}"] = str
        locals()[f"lora_name_{_i}"] = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
        for _name in ("lora_wt", "model_str", "clip_str"):
            __annotations__[f"{_name}_{_i}"] = float
            locals()[f"{_name}_{_i}"] = Float(1.0, min=-10.0, max=10.0, step=0.01)
    del _i, _name
    lora_stack: LORA_STACK = None
    outputs = {"LORA_STACK": LORA_STACK}
    comfy = (ComfyAlias(("LoRA Stacker",), widgets=stacker_widgets),
             ComfyAlias(("LoRA Stacker Adv.",), fixed={"input_mode": "advanced", "lora_count": 3},
                        widgets=stacker_adv_widgets))

    @classmethod
    def fingerprint(cls, lora_count=3, **widgets):
        return _states("loras", (widgets.get(f"lora_name_{i}") for i in _counted(lora_count, STACKER_ROWS)))

    def run(self):
        rows = []
        for i in range(1, self.lora_count + 1):
            name = getattr(self, f"lora_name_{i}")
            if name == "None":
                continue
            if self.input_mode == "simple":
                rows.append((name, getattr(self, f"lora_wt_{i}"), getattr(self, f"lora_wt_{i}")))
            else:
                rows.append((name, getattr(self, f"model_str_{i}"), getattr(self, f"clip_str_{i}")))
        return rows + [r for r in _lora_rows(self.lora_stack) if r[0] != "None"]


class LoRAStackToString(Node):
    """Write a LORA_STACK as A1111-style prompt tags, "<lora:name:model strength:clip strength>"
    separated by spaces, as Efficiency Nodes' LoRA Stack to String converter does."""
    category = "Efficiency Nodes/Misc"
    lora_stack: LORA_STACK
    outputs = {"LoRA string": STRING}
    comfy = ComfyAlias(("LoRA Stack to String converter",))

    def run(self):
        return " ".join(f"<lora:{name}:{model}:{clip}>" for name, model, clip in _lora_rows(self.lora_stack))


class ControlNetStacker(Node):
    """Add a ControlNet with its hint image, strength and start / end percent to a CNET_STACK, as
    Efficiency Nodes' Control Net Stacker (applied later as Apply ControlNet (advanced) applies it)."""
    category = "Efficiency Nodes/Stackers"
    control_net: CONTROL_NET
    image: IMAGE
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    cnet_stack: CONTROL_NET_STACK = None
    outputs = {"CNET_STACK": CONTROL_NET_STACK}
    comfy = ComfyAlias(("Control Net Stacker",))

    def run(self):
        # a new list: the pack extends the incoming one in place, which a cached run would repeat
        return list(self.cnet_stack or []) + [(self.control_net, self.image, self.strength, self.start_percent,
                                               self.end_percent)]


class ApplyControlNetStack(Node):
    """Apply each ControlNet of a CNET_STACK in turn to the positive and negative prompts, as
    Apply ControlNet (advanced) does; without a stack both pass through."""
    category = "Efficiency Nodes/Stackers"
    positive: CONDITIONING
    negative: CONDITIONING
    cnet_stack: CONTROL_NET_STACK = None
    outputs = {"CONDITIONING+": CONDITIONING, "CONDITIONING-": CONDITIONING}
    comfy = ComfyAlias(("Apply ControlNet Stack",))

    def run(self):
        return _apply_cnet_stack(self.positive, self.negative, self.cnet_stack)


class PackSDXLTuple(Node):
    """Put SDXL base and refiner models, text encoders and prompts into one SDXL_TUPLE."""
    category = "Efficiency Nodes/Misc"
    base_model: MODEL
    base_clip: CLIP
    base_positive: CONDITIONING
    base_negative: CONDITIONING
    refiner_model: MODEL
    refiner_clip: CLIP
    refiner_positive: CONDITIONING
    refiner_negative: CONDITIONING
    outputs = {"SDXL_TUPLE": SDXL_TUPLE}
    comfy = ComfyAlias(("Pack SDXL Tuple",))

    def run(self):
        return (self.base_model, self.base_clip, self.base_positive, self.base_negative, self.refiner_model,
                self.refiner_clip, self.refiner_positive, self.refiner_negative)


class UnpackSDXLTuple(Node):
    """Split an SDXL_TUPLE into its base and refiner models, text encoders and prompts."""
    category = "Efficiency Nodes/Misc"
    sdxl_tuple: SDXL_TUPLE
    outputs = {"BASE_MODEL": MODEL, "BASE_CLIP": CLIP, "BASE_CONDITIONING+": CONDITIONING,
               "BASE_CONDITIONING-": CONDITIONING, "REFINER_MODEL": MODEL, "REFINER_CLIP": CLIP,
               "REFINER_CONDITIONING+": CONDITIONING, "REFINER_CONDITIONING-": CONDITIONING}
    comfy = ComfyAlias(("Unpack SDXL Tuple",))

    def run(self):
        return tuple(_sdxl_parts(self.sdxl_tuple))


def _sdxl_parts(value) -> tuple:
    if not isinstance(value, (tuple, list)) or len(value) != 8:
        raise NodeInputError("sdxl_tuple", f"expected an SDXL_TUPLE of 8 parts (from Eff. Loader SDXL or Pack SDXL "
                                           f"Tuple), got {type(value).__name__}")
    return tuple(value)


class ImageOverlay(Node):
    """Paste an overlay picture onto each base image, as Efficiency Nodes' Image Overlay: the overlay
    (the first of its batch) optionally resized first ("Fit" inside the base image keeping its
    aspect, "Resize by rescale_factor", or to width x height, with resize_method as ImageScale),
    optional_mask making it transparent where the mask is 1, rotated counter-clockwise by rotation
    degrees (bicubic, canvas grown to fit), made opacity percent transparent, then alpha-composited
    with its top left corner at x_offset, y_offset (over an RGBA base's own alpha, which the output
    then drops). As in the pack, the pictures are 8-bit (Pillow) throughout, and offsets must not be
    negative."""
    category = "Efficiency Nodes/Image"
    base_image: IMAGE
    overlay_image: IMAGE
    overlay_resize: str = Choice(("None", "Fit", "Resize by rescale_factor", "Resize to width & heigth"), "None")
    resize_method: str = Choice(("nearest-exact", "bilinear", "area"), "nearest-exact")
    rescale_factor: float = Float(1.0, min=0.01, max=16.0, step=0.01)
    width: int = Int(512, min=0, max=MAX_SIZE)
    height: int = Int(512, min=0, max=MAX_SIZE)
    x_offset: int = Int(0, min=-48000, max=48000)
    y_offset: int = Int(0, min=-48000, max=48000)
    rotation: int = Int(0, min=-180, max=180)
    opacity: float = Float(0.0, min=0.0, max=100.0, step=0.1)
    optional_mask: MASK = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Overlay",))

    def run(self):
        import numpy as np
        import torch
        from PIL import Image, ImageOps

        from graphflow.images import image_to_pil, pil_to_image

        for name in ("x_offset", "y_offset"):
            if getattr(self, name) < 0:
                raise NodeInputError(name, f"got {getattr(self, name)}; the pack's compositing takes offsets of 0 "
                                           f"or more")
        overlay = self.overlay_image
        if self.overlay_resize != "None":
            oh, ow = overlay.shape[1:3]
            if self.overlay_resize == "Fit":
                ratio = min(self.base_image.shape[1] / oh, self.base_image.shape[2] / ow)
                size = (round(ow * ratio), round(oh * ratio))
            elif self.overlay_resize == "Resize by rescale_factor":
                size = (int(ow * self.rescale_factor), int(oh * self.rescale_factor))
            else:
                size = (self.width, self.height)
            if min(size) < 1:
                raise NodeInputError("overlay_resize", f"the overlay would be resized to {size[0]}x{size[1]}")
            overlay = _resize_image(overlay[:1], *size, self.resize_method)  # only the first is used
        picture = image_to_pil(overlay[0]).convert("RGBA")
        picture.putalpha(255)
        if self.optional_mask is not None:
            mask = self.optional_mask[0] if self.optional_mask.dim() == 3 else self.optional_mask
            mask = Image.fromarray(np.clip(mask.float().cpu().numpy() * 255, 0, 255).astype(np.uint8), "L")
            picture.putalpha(ImageOps.invert(mask.resize(picture.size)))
        picture = picture.rotate(self.rotation, resample=Image.BICUBIC, expand=True)
        alpha = picture.getchannel("A").point(lambda a: max(0, int(a * (1 - self.opacity / 100))))
        picture.putalpha(alpha)
        out = []
        for image in self.base_image:
            # As the pack: an RGBA base keeps its alpha under the overlay (a see-through base pixel
            # takes the overlay's colour), and the alpha is dropped after.
            combined = image_to_pil(image).convert("RGBA")
            combined.alpha_composite(picture, (self.x_offset, self.y_offset))
            out.append(pil_to_image(combined.convert("RGB"))[0])
        return torch.stack(out)


# -- the scripts ---------------------------------------------------------------------------------

def _no_aux(values: list, at_end: dict) -> list:
    """A UI save made without comfyui_controlnet_aux, whose editor then offers only "_" for
    use_controlnet and preprocessor: those read as off and "none". at_end: {position from the
    end: value "_" stands for} (counted from the end, so a seed's control slot doesn't shift it)."""
    values = list(values)
    for back, value in at_end.items():
        if len(values) >= back and values[-back] == NO_AUX:
            values[-back] = value
    return values


def hires_widgets(values: list) -> list:
    """HighRes-Fix Script's widgets_values: use_controlnet (5th from the end) and preprocessor
    (2nd) "_" of an editor without comfyui_controlnet_aux read as off and none."""
    return _no_aux(values, {5: False, 2: "none"})


def hires_api_inputs(inputs: dict) -> dict:
    """An API prompt's "_" for use_controlnet / preprocessor (the pack without
    comfyui_controlnet_aux) read as off and none."""
    inputs = dict(inputs)  # the caller's prompt stays as it was read
    for name, value in (("use_controlnet", False), ("preprocessor", "none")):
        if inputs.get(name) == NO_AUX:
            inputs[name] = value
    return inputs


class HighResFixScript(Node):
    """Efficiency Nodes' HighRes-Fix Script, for its samplers' script input: after the sampler's
    first pass, upscale and sample again. upscale_type latent: `iterations` times, the latent
    resized by upscale_by with latent_upscaler (as LatentUpscaleBy) and sampled by KSampler with
    hires_steps and denoise. pixel: the first pass decoded, upscaled with pixel_upscaler (an
    upscale model, as ImageUpscaleWithModel) and then resized by upscale_by / 4 (nearest-exact; the
    pack takes every model as 4x), given out as the IMAGE without sampling again (the LATENT is
    the first pass's), as the pack does. both: `iterations` times, that pixel upscale, encoded
    with the VAE and sampled as in latent. The hires passes use the sampler's cfg, sampler and
    scheduler, its seed (or this seed, use_same_seed off), its model or hires_ckpt_name's (latent
    and both), and decode / encode tiled where the sampler's vae_decode says tiled.
    use_controlnet: the first pass decoded, run through preprocessor (AIO Aux Preprocessor's) and
    control_net_name applied to the positive prompt at strength (as Apply ControlNet) for the
    hires passes. seed -1 is the pack's editor's "random" marker (a random seed here).
    Left out: the NN latent upscalers city96.* (whose weights the pack downloads) and ttl_nn.*
    (weights inside the pack's folder) are refused by name; preprocessor_imgs is taken and, as in
    the pack (whose code for it never runs), changes nothing; iterations 0 does nothing (the
    pack's pixel mode fails on it). Chain it with a Noise Control Script in either order. A save
    made where comfyui_controlnet_aux was missing holds "_" for use_controlnet and preprocessor
    (the pack's only choice then): read as off and none. Before the first pass runs, the hires
    sizes are held to the pixels an image may have, and sampling the batch at them (a video's
    frames counted) and holding its upscaled images to the memory."""
    category = "Efficiency Nodes/Scripts"
    upscale_type: str = Choice(("latent", "pixel", "both"), "latent")
    hires_ckpt_name: str = Choice(lambda: [USE_SAME] + _checkpoint_choices(), USE_SAME, model_folder="checkpoints",
                                  not_files=(USE_SAME,))
    latent_upscaler: str = Choice(LATENT_UPSCALERS, LATENT_UPSCALERS[0])
    pixel_upscaler: str = Choice(lambda: folders.list_models("upscale_models"), model_folder="upscale_models")
    upscale_by: float = Float(1.25, min=0.01, max=8.0, step=0.05)
    use_same_seed: bool = Bool(True)
    seed: int = Int(0, min=RANDOM_SEED, max=SEED_MAX)
    hires_steps: int = Int(12, min=1, max=10000, resource="steps")
    denoise: float = Float(0.56, min=0.0, max=1.0, step=0.01)
    iterations: int = Int(1, min=0, max=5)
    use_controlnet: bool = Bool(False)
    control_net_name: str = Choice(lambda: folders.list_models("controlnet"), model_folder="controlnet")
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    preprocessor: str = Choice(PREPROCESSOR_OPTIONS, "none")
    preprocessor_imgs: bool = Bool(False)
    script: SCRIPT = None
    outputs = {"SCRIPT": SCRIPT}
    comfy = ComfyAlias(("HighRes-Fix Script",), widgets=hires_widgets, api_inputs=hires_api_inputs)

    @classmethod
    def fingerprint(cls, seed=0, hires_ckpt_name=USE_SAME, pixel_upscaler=None, control_net_name=None, **widgets):
        # the files the sampler loads for this script: a changed one reruns it
        return (_random_fingerprint(seed), hires_ckpt_name != USE_SAME and _state("checkpoints", hires_ckpt_name),
                pixel_upscaler and _state("upscale_models", pixel_upscaler),
                control_net_name and _state("controlnet", control_net_name))

    def run(self):
        for name, known in (("upscale_type", ("latent", "pixel", "both")), ("latent_upscaler", LATENT_UPSCALERS),
                            ("preprocessor", PREPROCESSOR_OPTIONS)):
            if getattr(self, name) not in known:  # a linked value: its choices are not checked before the run
                raise NodeInputError(name, f"{getattr(self, name)!r} is not one of {', '.join(known)}")
        runs = self.iterations > 0
        if runs and self.upscale_type == "latent" and self.latent_upscaler in NN_LATENT_UPSCALERS:
            raise NodeInputError("latent_upscaler", f"{self.latent_upscaler} is a neural-network latent upscaler "
                                                    f"whose weights graphflow does not have (city96's are downloaded "
                                                    f"by the pack, ttl_nn's ship inside it): choose one of "
                                                    f"{', '.join(LATENT_RESIZE_METHODS)}")
        files = [("hires_ckpt_name", "checkpoints", self.hires_ckpt_name,
                  runs and self.upscale_type != "pixel" and self.hires_ckpt_name != USE_SAME),
                 ("pixel_upscaler", "upscale_models", self.pixel_upscaler, runs and self.upscale_type != "latent"),
                 ("control_net_name", "controlnet", self.control_net_name, runs and self.use_controlnet)]
        # Validation checks a typed-in file name against its folder; a linked one (a string from
        # another node) reaches run() unchecked, so the files this script's passes will load are
        # looked up here, naming the input, rather than failing in the sampler.
        for name, folder, file, used in files:
            if used:
                try:
                    folders.find_model(folder, file)
                except (FileNotFoundError, ValueError) as e:
                    raise NodeInputError(name, str(e)) from None
        if runs and self.use_controlnet and self.preprocessor not in ("none", *AIO_NODES):
            raise NodeInputError("preprocessor", f"{self.preprocessor} needs model weights graphflow does not have; "
                                                 f"expected one of: none, {', '.join(AIO_NODES)}")
        settings = {name: getattr(self, name) for name in self.input_specs if name != "script"}
        settings["seed"] = _seed(self.seed)
        return _chained(self.script, "hiresfix", settings)


class NoiseControlScript(Node):
    """Efficiency Nodes' Noise Control Script, for its samplers' script input: how every pass of
    the sampler (a HighRes-Fix Script's too) draws its starting noise. rng_source cpu is KSampler's
    own noise (a CPU generator); gpu draws it with the CUDA generator, as A1111 does: other noise
    than cpu's for the same seed, reproduced only where a CUDA device is present (elsewhere it is
    drawn on the CPU, with a warning that the images differ from the pack's). add_seed_noise mixes
    in seed's noise, as the pack (after cg-noise) does: for one image noise * (1 - weight) +
    second * weight; for a batch, every image starts from the first image's noise, image i
    mixed at weight * i. Noise the ancestral / SDE samplers add during sampling is KSampler's, as
    in the pack. cfg_denoiser (the pack's hook after smZ Nodes, A1111's CFGDenoiser) acts only on
    prompts encoded by smZ's CLIP Text Encode++, and passes any other prompt (the Efficient
    Loaders') to ComfyUI's guidance unchanged: so it changes nothing here. Left out: rng_source nv
    (A1111's Philox generator reproducing NVIDIA's noise on the CPU) is refused. seed -1 is the
    pack's editor's "random" marker (a random seed here). Chain it with a HighRes-Fix Script in
    either order."""
    category = "Efficiency Nodes/Scripts"
    rng_source: str = Choice(RNG_SOURCES, "cpu")
    cfg_denoiser: bool = Bool(False)
    add_seed_noise: bool = Bool(False)
    seed: int = Int(0, min=RANDOM_SEED, max=SEED_MAX)
    weight: float = Float(0.015, min=0.0, max=1.0, step=0.001)
    script: SCRIPT = None
    outputs = {"SCRIPT": SCRIPT}
    comfy = ComfyAlias(("Noise Control Script",))

    @classmethod
    def fingerprint(cls, seed=0, **widgets):
        return _random_fingerprint(seed)

    def run(self):
        if self.rng_source not in RNG_SOURCES:  # a linked value: its choices are not checked before the run
            raise NodeInputError("rng_source", f"{self.rng_source!r} is not one of {', '.join(RNG_SOURCES)}")
        if self.rng_source == "nv":
            raise NodeInputError("rng_source", "nv (A1111's Philox generator, NVIDIA's GPU noise drawn on the CPU) "
                                               "is not built in: choose cpu, or gpu on a CUDA machine")
        return _chained(self.script, "noise", {"rng_source": self.rng_source, "cfg_denoiser": self.cfg_denoiser,
                                               "add_seed_noise": self.add_seed_noise, "seed": _seed(self.seed),
                                               "weight": self.weight})


# -- the samplers -------------------------------------------------------------------------------

def _seed(seed: int) -> int:
    return random_seed(seed, 2**50) if seed == RANDOM_SEED else seed


def _random_fingerprint(seed):
    return random.random() if seed == RANDOM_SEED else None  # a drawn seed is never reused from the cache


@dataclass(frozen=True)
class Script:
    """A SCRIPT: the settings of each script chained, as HighRes-Fix Script / Noise Control Script
    checked and gave them ((name, value) pairs; None where that script is absent; XY Plot's its
    own tuple). Only those nodes make one, so the samplers can trust it; frozen and made of plain
    values, so it compares, hashes and prints as what it holds."""
    hiresfix: tuple | None = None
    noise: tuple | None = None
    xyplot: tuple | None = None  # XY Plot's (nodes/pack_nodes_efficiency_xy.py): the sampler runs its grid


def _scripts(script) -> tuple[dict | None, dict | None]:
    """The (hiresfix, noise) settings of a SCRIPT input (None where absent). Any value but a Script
    (a dict linked from an ANY output, say) is refused: its settings were never checked; a dict
    holding the pack's scripts not built in is refused naming them."""
    if script is None:
        return None, None
    if not isinstance(script, Script):
        unbuilt = [UNBUILT_SCRIPTS[key] for key in script if key in UNBUILT_SCRIPTS] if isinstance(script, dict) else []
        if unbuilt:
            raise NodeInputError("script", f"{', '.join(unbuilt)} is not built in (of the pack's scripts, {SCRIPTS} "
                                           f"are not): disconnect it, or use the core nodes")
        raise NodeInputError("script", f"expected the SCRIPT of a HighRes-Fix Script, Noise Control Script or XY Plot "
                                       f"node, got {_kind(script)}: link the script nodes themselves")
    hiresfix, noise = (dict(pairs) if pairs is not None else None for pairs in (script.hiresfix, script.noise))
    if noise is not None:
        from nodes.pack_nodes_inspire import _noise_device  # Inspire's module imports this one

        # where the noise is drawn, found (and a missing CUDA device warned of) once per sampler
        # run rather than at each of its passes
        noise["device"] = "cpu" if noise["rng_source"] == "cpu" else \
            str(_noise_device("GPU", "Noise Control Script's rng_source gpu"))
    return hiresfix, noise


def _xyplot(script) -> bool:
    """Whether a SCRIPT holds an XY Plot (the sampler then runs its grid)."""
    return isinstance(script, Script) and script.xyplot is not None


def _run_xyplot(node, sampler_type: str):
    from nodes.pack_nodes_efficiency_xy import run_xy_plot  # that module imports this one

    return run_xy_plot(node, sampler_type)


def _kind(value) -> str:
    if isinstance(value, dict) and value:
        return f"a {type(value).__name__} with keys {', '.join(map(repr, list(value)[:5]))}"
    return f"a {type(value).__name__}"


def _chained(script, key: str, settings: dict) -> Script:
    """A script node's SCRIPT: the incoming one with this script's settings under its key (the pack
    adds to the incoming dict in place; a new one here, as the cache keeps the old)."""
    if script is not None and not isinstance(script, Script):
        _scripts(script)  # refused, naming what it is
    return replace(script or Script(), **{key: tuple(settings.items())})


@functools.cache
def _noise_class():
    """The starting noise of a Noise Control Script (a NoiseSource, which the sampling engine
    draws from), made on first use: graphflow.sampling imports torch, which listing nodes doesn't
    need."""
    from graphflow.sampling.noise import NoiseSource, initial_noise

    @dataclass(frozen=True)
    class EfficiencyNoise(NoiseSource):
        """`seed` (NoiseSource's) is the sampler's seed; device: where it is drawn (rng_source's);
        mix_weight None: no second seed's noise."""
        device: str = "cpu"
        mix_seed: int = 0
        mix_weight: float | None = None

        def generate(self, samples, batch_index=None):
            import torch

            device = torch.device(self.device)
            if self.mix_weight is None:
                return initial_noise(samples, self.seed, batch_index, device)
            if batch_index is not None and samples.shape[0] > 1:
                raise NodeInputError("latent_image", "Noise Control Script's add_seed_noise mixes the noise of one "
                                                     "image: it takes no LATENT of several images picked from a "
                                                     "batch (batch_index), as in the pack")
            # cg-noise's mix, as the pack: the first image's noise for the seed and for the second
            # seed; image i of the batch gets seed noise * (1 - weight * i) + second * weight * i
            # (a single image: weight itself), no renormalisation.
            one = samples[:1]
            noise = initial_noise(one, self.seed, batch_index, device)
            second = initial_noise(one, self.mix_seed, batch_index, device)
            if samples.shape[0] == 1:
                return noise * (1.0 - self.mix_weight) + second * self.mix_weight
            return torch.cat([noise * (1.0 - self.mix_weight * i) + second * (self.mix_weight * i)
                              for i in range(samples.shape[0])])

    return EfficiencyNoise


def _starting_noise(noise: dict | None, seed: int):
    """The sampler's starting noise as a Noise Control Script draws it for `seed`, or None where
    it is KSampler's own (cpu, no second seed)."""
    if noise is None or (noise["rng_source"] == "cpu" and not noise["add_seed_noise"]):
        return None
    return _noise_class()(seed=seed, device=noise["device"], mix_seed=noise["seed"],
                          mix_weight=noise["weight"] if noise["add_seed_noise"] else None)


def _decode(latent, vae, vae_decode: str):
    """The pack's vae_decode_latent: VAEDecodeTiled at 320 where vae_decode says tiled."""
    tiled = {"tiled": True, "tile_size": TILE_SIZE} if "tiled" in vae_decode else {}
    return _core(VAEDecode, {"samples": "latent_image", "vae": "optional_vae"}, samples=latent, vae=vae, **tiled)


def _encode(images, vae, vae_decode: str):
    """The pack's vae_encode_image: VAEEncodeTiled at 320 where vae_decode says tiled."""
    tiled = {"tiled": True, "tile_size": TILE_SIZE} if "tiled" in vae_decode else {}
    return _core(VAEEncode, {"vae": "optional_vae"}, pixels=images, vae=vae, **tiled)


def _held(width: int, height: int, what: str, encoded: bool = False):
    """A hires pass's image size held to the pixels one image may have (the server's limit, and
    16384² without one), and at least 8x8 where it is VAE-encoded: the script's sizes are not known
    to the planner, which checks only the sampler's latent."""
    limit = run_limits().max_pixels
    cap = MAX_SIZE * MAX_SIZE if limit is None else min(limit, MAX_SIZE * MAX_SIZE)
    if width * height > cap:
        raise NodeInputError("script", f"HighRes-Fix Script's {what} makes {width}x{height} images, over the "
                                       f"{cap} pixels an image may have here")
    if encoded and min(width, height) < 8:
        raise NodeInputError("script", f"HighRes-Fix Script's {what} makes {width}x{height} images, smaller than the "
                                       f"8x8 pixels the VAE encodes: raise its upscale_by")


def _hires_models(hires: dict | None, latent: dict, vae, model, loaded_model=None):
    """What the hires passes run with, loaded and checked before the first pass: (model to
    resample with, upscale model or None, ControlNet or None), or None without hires passes. The
    passes' image sizes are held to the limits here, and what sampling and holding them takes to
    the memory (check_run_memory, the planner's rule), so that an oversized request is refused
    before anything is sampled."""
    if hires is None or hires["iterations"] == 0:
        return None
    kind = hires["upscale_type"]
    if vae is None and (kind != "latent" or hires["use_controlnet"]):
        raise NodeInputError("optional_vae", f"HighRes-Fix Script's upscale_type {kind}"
                                             f"{' with its ControlNet' if hires['use_controlnet'] else ''} decodes "
                                             f"the first pass: connect a VAE")
    if kind != "pixel" and hires["hires_ckpt_name"] != USE_SAME:
        model = _core(LoadCheckpoint, {"checkpoint": "script"}, checkpoint=hires["hires_ckpt_name"])[0]
        if loaded_model is not None:  # as the sampler changes its own MODEL (KSamplerEfficient.loaded_model)
            model = loaded_model(model)
    upscaler = None
    if kind != "latent":
        upscaler = _core(LoadUpscaleModel, {"model_name": "script"}, model_name=hires["pixel_upscaler"])
    control_net = None
    if hires["use_controlnet"]:
        control_net = _core(LoadControlNet, {"control_net_name": "script"}, control_net_name=hires["control_net_name"])
    samples = latent["samples"] if isinstance(latent, dict) and "samples" in latent else None
    if samples is not None and samples.dim() >= 4:  # [B, C, H, W], or a video's [B, C, T, H, W]
        images = samples.shape[0] * math.prod(samples.shape[2:-2])  # a video's frames count too
        scale = getattr(upscaler, "scale", MODEL_UPSCALE)
        for what, width, height, decoded, sampled in _hires_passes(hires, samples.shape[-2], samples.shape[-1], scale):
            _hires_pass(what, width, height, images, decoded=decoded, sampled=sampled)
    return model, upscaler, control_net


def _hires_passes(hires: dict, height: int, width: int, scale: int):
    """The hires passes' images, in turn, from a latent of height x width (latent pixels: the image
    is 8 times larger) with an upscale model of `scale`: (what, width, height, decoded, sampled) each,
    as _hires_pass takes them."""
    kind = hires["upscale_type"]
    for _ in range(1 if kind == "pixel" else hires["iterations"]):
        if kind == "latent":
            height, width = max(1, round(height * hires["upscale_by"])), max(1, round(width * hires["upscale_by"]))
            yield f"latent upscale by {hires['upscale_by']}", width * 8, height * 8, False, True
        else:
            yield f"upscale model ({scale}x)", width * 8 * scale, height * 8 * scale, True, False
            pixel_h = round(height * 8 * scale * hires["upscale_by"] / MODEL_UPSCALE)
            pixel_w = round(width * 8 * scale * hires["upscale_by"] / MODEL_UPSCALE)
            yield f"upscale by {hires['upscale_by']}", pixel_w, pixel_h, True, kind == "both"
            height, width = max(1, pixel_h // 8), max(1, pixel_w // 8)


def hires_image_size(script, height: int, width: int) -> tuple[int, int]:
    """The (height, width) of the images a sampler with this SCRIPT gives from a latent of height x
    width (latent pixels): its HighRes-Fix passes' last, an upscale model taken as the pack takes
    it (4x: its real scale is known once loaded), else the latent's own, 8 times larger."""
    hires = dict(script.hiresfix) if isinstance(script, Script) and script.hiresfix is not None else None
    size = (height * 8, width * 8)
    if hires is not None and hires["iterations"] > 0:
        for _, pass_width, pass_height, _, _ in _hires_passes(hires, height, width, MODEL_UPSCALE):
            size = (pass_height, pass_width)
        if hires["upscale_type"] == "both":  # sampled again: decoded from the latent, a multiple of 8
            size = tuple(max(1, side // 8) * 8 for side in size)
    return size


def _hires_pass(what: str, width: int, height: int, images: int, decoded: bool = False, sampled: bool = False):
    """A hires pass making `images` images of width x height (decoded: as an IMAGE batch; sampled:
    as a latent, encoded first where decoded), held to the limits (_held) and to the memory (the
    images in the RAM, sampling them on the compute device: check_run_memory), refused before the
    first pass where they can't be."""
    _held(width, height, what, encoded=decoded and sampled)
    what = f"HighRes-Fix Script's {what} makes {width}x{height} images"
    check_run_memory("script", what, sampled=Size(images, height // 8 * 8, width // 8 * 8) if sampled else None,
                     images=Size(images, height, width) if decoded else None)


def _hires_fix(hires: dict | None, loaded, noise: dict | None, latent, seed: int, cfg: float, sampler_name: str,
               scheduler, positive, negative, vae, vae_decode: str):
    """The pack's HighRes-Fix after the first pass: (LATENT, IMAGE or None). With use_controlnet the
    first pass is decoded, run through the preprocessor and the ControlNet applied to the positive
    prompt (as Apply ControlNet, at strength) for the hires passes. latent: `iterations` times,
    LatentUpscaleBy with latent_upscaler by upscale_by, then KSampler at hires_steps / denoise;
    pixel: the first pass decoded, upscaled with the upscale model and then by upscale_by / 4
    (nearest-exact), and not sampled again (the LATENT stays the first pass's); both: `iterations`
    times, that pixel upscale, encoded, and KSampler as in latent. Each KSampler takes seed (or the
    script's, use_same_seed off), cfg, sampler and scheduler of the sampler, and the Noise Control
    Script's starting noise. loaded: what _hires_models gave."""
    if loaded is None:
        return latent, None
    model, upscaler, control_net = loaded
    hires_seed = seed if hires["use_same_seed"] else hires["seed"]
    images = None
    if control_net is not None:
        images = _decode(latent, vae, vae_decode)
        hint = _core(AIOPreprocessor, {"preprocessor": "script"}, image=images, preprocessor=hires["preprocessor"])
        positive = _core(ApplyControlNet, {"control_net": "script"}, conditioning=positive, control_net=control_net,
                         image=hint, strength=hires["strength"])

    def resample(upscaled):
        return _core(KSampler, {"steps": "script", "denoise": "script"},
                     starting_noise=_starting_noise(noise, hires_seed), model=model, seed=hires_seed,
                     steps=hires["hires_steps"], cfg=cfg, sampler_name=sampler_name, scheduler=scheduler,
                     positive=positive, negative=negative, latent_image=upscaled, denoise=hires["denoise"])

    def pixel_upscale(images):
        images = _core(ImageUpscaleWithModel, upscale_model=upscaler, image=images)
        return _core(ImageScaleBy, image=images, upscale_method="nearest-exact",
                     scale_by=hires["upscale_by"] / MODEL_UPSCALE)

    kind = hires["upscale_type"]
    if kind == "latent":
        for _ in range(hires["iterations"]):
            latent = resample(_core(LatentUpscaleBy, samples=latent, upscale_method=hires["latent_upscaler"],
                                    scale_by=hires["upscale_by"]))
            images = None
    elif kind == "pixel":
        images = pixel_upscale(images if images is not None else _decode(latent, vae, vae_decode))
    else:
        for _ in range(hires["iterations"]):
            images = pixel_upscale(images if images is not None else _decode(latent, vae, vae_decode))
            # the pack then runs LatentUpscaleBy (its first method) by 1: the encoded latent as it is
            encoded = _core(LatentUpscaleBy, samples=_encode(images, vae, vae_decode),
                            upscale_method=LATENT_RESIZE_METHODS[0], scale_by=1.0)
            latent = resample(encoded)
            images = None
    return latent, images


def _scheduler(name: str):
    """The scheduler to sample with: ours by name, or the pack's AYS / GITS as a function of the
    step count, which the pack patches into ComfyUI's sigma calculation: Align Your Steps' table
    for the model type, GITS' at coeff 1.20, each at denoise 1 (KSampler's denoise and the
    dropped penultimate sigma then apply to it as to any schedule)."""
    if name in SCHEDULER_NAMES:
        return name
    from graphflow.sampling.schedules import align_your_steps, gits

    if name == "GITS":
        return lambda schedule, steps: gits(1.20, steps)
    return lambda schedule, steps: align_your_steps(name.split(" ")[1], steps)


def _finish(latent, vae, vae_decode: str, preview_method: str, images=None):
    """The IMAGE output and preview as the pack's samplers make them: "true" decodes and shows
    the images (unless preview_method is "none"); "output only" decodes without showing them (its
    meaning in the pack's 2023 versions; the 2024 code no longer decodes it and gives no IMAGE);
    "(tiled)" decodes in 320-pixel tiles; "false", or no VAE connected, gives a 1x1 transparent
    image. `images` made already (a HighRes-Fix pixel upscale) are given out and shown whatever
    vae_decode says, except with preview_method none, or vae_decoded_only with vae_decode false."""
    import torch

    if images is not None:
        if preview_method != "none" and not (preview_method == "vae_decoded_only" and vae_decode == "false"):
            show(images=temp_pngs(images))
        return images
    if vae is None and vae_decode != "false":
        warn("no VAE connected (optional_vae): nothing is decoded, as the pack proceeds with vae_decode false")
        vae_decode = "false"
    if vae_decode == "false":
        return torch.zeros(1, 1, 1, 4)
    images = _decode(latent, vae, vae_decode)
    if vae_decode.startswith("true") and preview_method != "none":
        show(images=temp_pngs(images))
    return images


class KSamplerEfficient(Node):
    """Sample as KSampler does (the same latent for the same settings; denoise 0 passes the latent
    through), then decode it with optional_vae as vae_decode says: "true" decodes and previews the
    images, "true (tiled)" decodes in 320-pixel tiles, "false" (or no VAE connected) gives a 1x1
    transparent IMAGE ("output only", of the pack's 2023 version, decodes without previewing).
    Passes model, prompts and VAE on, as Efficiency Nodes' KSampler (Efficient). seed -1 is the
    pack's editor's "random" marker (it draws one when queueing); a -1 reaching the engine
    becomes a random seed, with a warning. preview_method is ignored (live previews are a
    server setting here), except that "none" shows no decoded images. The scheduler list adds the
    pack's AYS SD1 / SDXL / SVD (Align Your Steps' tables) and GITS (coeff 1.20), as the pack
    computes them. script: a Noise Control Script draws the starting noise of every pass (see it);
    a HighRes-Fix Script then upscales and samples again (see it), and the LATENT and IMAGE given
    out are its; an XY Plot script runs the sampler once per cell of its grid (see XY Plot);
    Tiled Upscaler and AnimateDiff scripts are not built in and are refused.
    A 2023 save's sampler_state is dropped: every run samples."""
    category = "Efficiency Nodes/Sampling"
    output_node = True
    model: MODEL
    seed: int = Int(0, min=RANDOM_SEED, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(7.0, min=0.0, max=100.0, step=0.1)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(EFF_SCHEDULERS, "simple")
    positive: CONDITIONING
    negative: CONDITIONING
    latent_image: LATENT
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    preview_method: str = Choice(PREVIEW_METHODS, "auto")
    vae_decode: str = Choice(VAE_DECODES, "true")
    optional_vae: VAE = None
    script: SCRIPT = None
    outputs = {"MODEL": MODEL, "CONDITIONING+": CONDITIONING, "CONDITIONING-": CONDITIONING, "LATENT": LATENT,
               "VAE": VAE, "IMAGE": IMAGE}
    comfy = ComfyAlias(("KSampler (Efficient)",), ignore=("sampler_state",), widgets=sampler_widgets)
    estimate = classmethod(_estimate)

    @classmethod
    def fingerprint(cls, seed=0, **widgets):
        return _random_fingerprint(seed)

    def run(self):
        if _xyplot(self.script):
            return _run_xyplot(self, "regular")
        latent, images = self.sample(_seed(self.seed))
        images = _finish(latent, self.optional_vae, self.vae_decode, self.preview_method, images)
        return self.model, self.positive, self.negative, latent, self.optional_vae, images

    def loaded_model(self, model):
        """A MODEL a script loads (XY Plot's checkpoint / LoRA axes, HighRes-Fix's hires_ckpt_name)
        as this sampler samples it: as it is; a subclass that changes its own MODEL (Fooocus'
        sharpness) changes these alike."""
        return model

    def sample(self, seed: int):
        """One generation with this node's settings and scripts: (LATENT, IMAGE a HighRes-Fix pixel
        upscale made, else None)."""
        hires, noise = _scripts(self.script)
        scheduler = _scheduler(self.scheduler)
        loaded = _hires_models(hires, self.latent_image, self.optional_vae, self.model, self.loaded_model)
        if self.denoise > 0:
            latent = _core(KSampler, starting_noise=_starting_noise(noise, seed), model=self.model, seed=seed,
                           steps=self.steps, cfg=self.cfg, sampler_name=self.sampler_name, scheduler=scheduler,
                           positive=self.positive, negative=self.negative, latent_image=self.latent_image,
                           denoise=self.denoise)
        else:
            latent = self.latent_image
        return _hires_fix(hires, loaded, noise, latent, seed, self.cfg, self.sampler_name, scheduler, self.positive,
                          self.negative, self.optional_vae, self.vae_decode)


class KSamplerAdvEfficient(Node):
    """Sample as KSamplerAdvanced does (add_noise, start_at_step, end_at_step,
    return_with_leftover_noise), then decode as vae_decode says, as Efficiency Nodes' KSampler Adv.
    (Efficient): "true" decodes and previews, "output only" decodes without previewing, "(tiled)" in
    320-pixel tiles, "false" (or no VAE connected) gives a 1x1 transparent IMAGE. noise_seed -1,
    preview_method, the AYS / GITS schedulers and scripts as in KSampler (Efficient)."""
    category = "Efficiency Nodes/Sampling"
    output_node = True
    model: MODEL
    add_noise: str = Choice(("enable", "disable"), "enable")
    noise_seed: int = Int(0, min=RANDOM_SEED, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(7.0, min=0.0, max=100.0, step=0.1)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(EFF_SCHEDULERS, "simple")
    positive: CONDITIONING
    negative: CONDITIONING
    latent_image: LATENT
    start_at_step: int = Int(0, min=0, max=10000)
    end_at_step: int = Int(10000, min=0, max=10000)
    return_with_leftover_noise: str = Choice(("disable", "enable"), "disable")
    preview_method: str = Choice(ADV_PREVIEW_METHODS, "auto")
    vae_decode: str = Choice(VAE_DECODES, "true")
    optional_vae: VAE = None
    script: SCRIPT = None
    outputs = {"MODEL": MODEL, "CONDITIONING+": CONDITIONING, "CONDITIONING-": CONDITIONING, "LATENT": LATENT,
               "VAE": VAE, "IMAGE": IMAGE}
    comfy = ComfyAlias(("KSampler Adv. (Efficient)",), ignore=("sampler_state",), widgets=sampler_widgets)
    estimate = classmethod(_estimate)

    @classmethod
    def fingerprint(cls, noise_seed=0, **widgets):
        return _random_fingerprint(noise_seed)

    def run(self):
        if _xyplot(self.script):
            return _run_xyplot(self, "advanced")
        latent, images = self.sample(_seed(self.noise_seed))
        images = _finish(latent, self.optional_vae, self.vae_decode, self.preview_method, images)
        return self.model, self.positive, self.negative, latent, self.optional_vae, images

    def sample(self, seed: int):
        """One generation, as KSampler (Efficient)'s sample()."""
        hires, noise = _scripts(self.script)
        scheduler = _scheduler(self.scheduler)
        loaded = _hires_models(hires, self.latent_image, self.optional_vae, self.model)
        latent = _core(KSamplerAdvanced, starting_noise=_starting_noise(noise, seed), model=self.model,
                       add_noise=self.add_noise, noise_seed=seed, steps=self.steps, cfg=self.cfg,
                       sampler_name=self.sampler_name, scheduler=scheduler, positive=self.positive,
                       negative=self.negative, latent_image=self.latent_image, start_at_step=self.start_at_step,
                       end_at_step=self.end_at_step, return_with_leftover_noise=self.return_with_leftover_noise)
        return _hires_fix(hires, loaded, noise, latent, seed, self.cfg, self.sampler_name, scheduler, self.positive,
                          self.negative, self.optional_vae, self.vae_decode)


class KSamplerSDXLEff(Node):
    """Sample an SDXL_TUPLE's base then refiner, as Efficiency Nodes' KSampler SDXL (Eff.): the base
    runs steps start_at_step..refine_at_step with noise added and the leftover noise kept (as
    KSamplerAdvanced), then, when there is a refiner and refine_at_step < steps, the refiner runs
    the rest without adding noise, with the refiner prompts, the same seed and cfg. refine_at_step
    -1 means steps (no refiner pass). Then decoded as vae_decode says (as in KSampler Adv.
    (Efficient)). noise_seed -1, preview_method, AYS / GITS and scripts as in KSampler (Efficient)."""
    category = "Efficiency Nodes/Sampling"
    output_node = True
    sdxl_tuple: SDXL_TUPLE
    noise_seed: int = Int(0, min=RANDOM_SEED, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(7.0, min=0.0, max=100.0, step=0.1)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(EFF_SCHEDULERS, "simple")
    latent_image: LATENT
    start_at_step: int = Int(0, min=0, max=10000)
    refine_at_step: int = Int(-1, min=-1, max=10000)
    preview_method: str = Choice(ADV_PREVIEW_METHODS, "auto")
    vae_decode: str = Choice(VAE_DECODES, "true")
    optional_vae: VAE = None
    script: SCRIPT = None
    outputs = {"SDXL_TUPLE": SDXL_TUPLE, "LATENT": LATENT, "VAE": VAE, "IMAGE": IMAGE}
    comfy = ComfyAlias(("KSampler SDXL (Eff.)",), ignore=("sampler_state",), widgets=sampler_widgets)
    estimate = classmethod(_estimate)

    @classmethod
    def fingerprint(cls, noise_seed=0, **widgets):
        return _random_fingerprint(noise_seed)

    def run(self):
        if _xyplot(self.script):
            return _run_xyplot(self, "sdxl")
        latent, images = self.sample(_seed(self.noise_seed))
        images = _finish(latent, self.optional_vae, self.vae_decode, self.preview_method, images)
        return self.sdxl_tuple, latent, self.optional_vae, images

    def sample(self, seed: int):
        """One generation, as KSampler (Efficient)'s sample()."""
        hires, noise = _scripts(self.script)
        model, _, positive, negative, refiner_model, _, refiner_positive, refiner_negative = \
            _sdxl_parts(self.sdxl_tuple)
        scheduler = _scheduler(self.scheduler)
        loaded = _hires_models(hires, self.latent_image, self.optional_vae, model)
        end = self.steps if self.refine_at_step == -1 else self.refine_at_step
        common = dict(noise_seed=seed, steps=self.steps, cfg=self.cfg, sampler_name=self.sampler_name,
                      scheduler=scheduler)
        latent = _core(KSamplerAdvanced, starting_noise=_starting_noise(noise, seed), model=model, add_noise="enable",
                       positive=positive, negative=negative, latent_image=self.latent_image,
                       start_at_step=self.start_at_step, end_at_step=end, return_with_leftover_noise="enable", **common)
        if refiner_model is not None and end < self.steps:
            latent = _core(KSamplerAdvanced, model=refiner_model, add_noise="disable", positive=refiner_positive,
                           negative=refiner_negative, latent_image=latent, start_at_step=end, end_at_step=self.steps,
                           return_with_leftover_noise="disable", **common)
        return _hires_fix(hires, loaded, noise, latent, seed, self.cfg, self.sampler_name, scheduler, positive,
                          negative, self.optional_vae, self.vae_decode)
