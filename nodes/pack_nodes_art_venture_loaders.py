"""sipherxyz's comfyui-art-venture, its parameter pipes and loader variants (round 1), under the pack's
class names, inputs (order, defaults), outputs and categories. Read from the pack's modules/nodes.py at
commit 51dd8fcb7cd80f283cd5ea09e0e4eab104ef301e.

Nodes here: AV_CheckpointModelsToParametersPipe, AV_PromptsToParametersPipe,
AV_ParametersPipeToCheckpointModels, AV_ParametersPipeToPrompts (the pipe is a dict of names,
prompts, image and mask), AV_VAELoader and AV_LoraLoader (the core loaders with a text override
and, for the LoRA, an on / off switch), AV_LoraListStacker and AV_LoraListLoader (LoRAs from a JSON
list). The image nodes are in nodes/pack_nodes_art_venture.py, which also says what is left out.

The pack's pipe nodes write into the pipe they are given (and, given none, into one dict kept
between runs); here each makes a new pipe from the one it is given, so a pipe never changes after
it is made.
"""

from __future__ import annotations

from graphflow.api import (
    CLIP, IMAGE, MASK, MODEL, STRING, Bool, Choice, ComfyAlias, Float, Node, NodeInputError, Text,
    check_interrupted, folders, socket_type, warn,
)
from nodes.efficiency_nodes import LORA_STACK, _lora_rows
from nodes.loaders import DEMO_CHECKPOINT, LoadVAE
from nodes.pack_nodes import _apply_lora

COMFY_PACK = "comfyui-art-venture"  # the custom node pack this module's ComfyUI classes come from

LOADERS = "Art Venture/Loaders"
PARAMETERS = "Art Venture/Parameters"
MAX_LORA_LIST = 1000  # entries read from a LoRA list: far more than a model takes
MAX_STRENGTH = 100.0  # LoraLoader's strength bound, held for the list's strengths too

PIPE = socket_type("PIPE", "#7e57c2", "comfyui-art-venture's parameters pipe: a dict of checkpoint, VAE, upscaler "
                                      "and LoRA names, prompts, image and mask")
CHECKPOINT_NAME = socket_type("CHECKPOINT_NAME", "#9e9e9e", "comfyui-art-venture's checkpoint file name (or None)")
VAE_NAME = socket_type("VAE_NAME", "#9e9e9e", "comfyui-art-venture's VAE file name (or None)")
UPSCALER_NAME = socket_type("UPSCALER_NAME", "#9e9e9e", "comfyui-art-venture's upscale model file name (or None)")
LORA_NAME = socket_type("LORA_NAME", "#9e9e9e", "comfyui-art-venture's LoRA file name (or None)")

PIPE_NAMES = ("ckpt_name", "secondary_ckpt_name", "vae_name", "upscaler_name", "secondary_upscaler_name",
              "lora_1_name", "lora_2_name", "lora_3_name")


def _or_none(folder: str):
    return lambda: ["None"] + folders.list_models(folder)


def _optional_file(folder: str):
    return Choice(_or_none(folder), "None", model_folder=folder, not_files=("None",))


def _pipe(pipe, input_name: str = "pipe") -> dict:
    if pipe is None:
        return {}
    if not isinstance(pipe, dict):
        raise NodeInputError(input_name, f"expected comfyui-art-venture's pipe (a dict), got {type(pipe).__name__}")
    return pipe


# -- parameter pipes ---------------------------------------------------------------------------------


class AVCheckpointModelsToParametersPipe(Node):
    """A pipe holding these file names ("None" kept as None), added to the given pipe."""
    category = PARAMETERS
    ckpt_name: str = Choice(lambda: folders.list_models("checkpoints"), DEMO_CHECKPOINT, model_folder="checkpoints")
    pipe: PIPE = None
    secondary_ckpt_name: str = _optional_file("checkpoints")
    vae_name: str = _optional_file("vae")
    upscaler_name: str = _optional_file("upscale_models")
    secondary_upscaler_name: str = _optional_file("upscale_models")
    lora_1_name: str = _optional_file("loras")
    lora_2_name: str = _optional_file("loras")
    lora_3_name: str = _optional_file("loras")
    outputs = {"PIPE": PIPE}
    comfy = ComfyAlias(("AV_CheckpointModelsToParametersPipe",), optional=("pipe", *PIPE_NAMES[1:]))

    def run(self):
        names = {name: getattr(self, name) for name in PIPE_NAMES}
        return {**_pipe(self.pipe), **{k: None if v == "None" else v for k, v in names.items()}}


class AVPromptsToParametersPipe(Node):
    """A pipe holding the two prompts, the image and the mask (None where not linked), added to the
    given pipe."""
    category = PARAMETERS
    positive: str = Text("Positive", multiline=True)
    negative: str = Text("Negative", multiline=True)
    pipe: PIPE = None
    image: IMAGE = None
    mask: MASK = None
    outputs = {"PIPE": PIPE}
    comfy = ComfyAlias(("AV_PromptsToParametersPipe",), optional=("pipe", "image", "mask"))

    def run(self):
        return {**_pipe(self.pipe), "positive": self.positive, "negative": self.negative, "image": self.image,
                "mask": self.mask}


class AVParametersPipeToCheckpointModels(Node):
    """The pipe and the file names it holds (None where it holds none)."""
    category = PARAMETERS
    pipe: PIPE
    outputs = {"pipe": PIPE, "ckpt_name": CHECKPOINT_NAME, "secondary_ckpt_name": CHECKPOINT_NAME,
               "vae_name": VAE_NAME, "upscaler_name": UPSCALER_NAME, "secondary_upscaler_name": UPSCALER_NAME,
               "lora_1_name": LORA_NAME, "lora_2_name": LORA_NAME, "lora_3_name": LORA_NAME}
    comfy = ComfyAlias(("AV_ParametersPipeToCheckpointModels",))

    def run(self):
        pipe = _pipe(self.pipe)
        return (pipe, *(pipe.get(name) for name in PIPE_NAMES))


class AVParametersPipeToPrompts(Node):
    """The pipe and the prompts, image and mask it holds (None where it holds none)."""
    category = PARAMETERS
    pipe: PIPE
    outputs = {"pipe": PIPE, "positive": STRING, "negative": STRING, "image": IMAGE, "mask": MASK}
    comfy = ComfyAlias(("AV_ParametersPipeToPrompts",))

    def run(self):
        pipe = _pipe(self.pipe)
        return pipe, pipe.get("positive"), pipe.get("negative"), pipe.get("image"), pipe.get("mask")


# -- loaders -----------------------------------------------------------------------------------------


def _chosen(folder: str, name: str, override: str) -> str:
    """override where it names a file of the folder ("None": no override), else name."""
    return override if override != "None" and override in folders.list_models(folder) else name


def _overridden(folder: str, name: str, override: str, what: str) -> str:
    """_chosen, with a warning for an override not found, as the pack prints one."""
    chosen = _chosen(folder, name, override)
    if override != "None" and chosen != override:
        warn(f"{what} {override!r} not found in models/{folder}/: using {name}")
    return chosen


def _choosing_input(name_input: str, override_input: str, override: str, chosen: str) -> str:
    """The input that chose the file: the one a load error should name."""
    return override_input if override != "None" and chosen == override else name_input


class AVVAELoader(LoadVAE):
    """VAELoader with vae_override: a VAE file name (linked from text, say) used in place of vae_name
    when models/vae/ has it; "None", or a name not found (with a warning), loads vae_name."""
    category = LOADERS
    vae_override: str = Text("None")
    comfy = ComfyAlias(("AV_VAELoader",), optional=("vae_override",))

    @classmethod
    def fingerprint(cls, vae_name, vae_override="None"):
        return LoadVAE.fingerprint(_chosen("vae", vae_name, vae_override))

    def run(self):
        self.vae_name = _overridden("vae", self.vae_name, self.vae_override, "VAE")
        try:
            return super().run()
        except NodeInputError as e:
            raise NodeInputError(_choosing_input(e.input, "vae_override", self.vae_override, self.vae_name),
                                 str(e)) from None


class AVLoraLoader(Node):
    """LoraLoader with lora_override (a LoRA file name used in place of lora_name when models/loras/
    has it; "None", or a name not found, with a warning, uses lora_name) and enabled (off: the model
    and text encoder pass unchanged). Strengths 0 for both pass them unchanged too, as LoraLoader."""
    category = LOADERS
    model: MODEL
    clip: CLIP
    lora_name: str = Choice(lambda: folders.list_models("loras"), model_folder="loras")
    strength_model: float = Float(1.0, min=-100.0, max=100.0, step=0.01)
    strength_clip: float = Float(1.0, min=-100.0, max=100.0, step=0.01)
    lora_override: str = Text("None")
    enabled: bool = Bool(True)
    outputs = {"MODEL": MODEL, "CLIP": CLIP}
    comfy = ComfyAlias(("AV_LoraLoader",), optional=("lora_override", "enabled"))

    @classmethod
    def fingerprint(cls, lora_name, lora_override="None", **widgets):
        return folders.model_state("loras", _chosen("loras", lora_name, lora_override))

    def run(self):
        if not self.enabled or self.strength_model == 0 and self.strength_clip == 0:
            return self.model, self.clip
        name = _overridden("loras", self.lora_name, self.lora_override, "LoRA")
        return _apply_lora(self.model, self.clip, name, self.strength_model, self.strength_clip,
                           _choosing_input("lora_name", "lora_override", self.lora_override, name))


def _lora_list(data: str) -> list[tuple[str, float, float]]:
    """The pack's LoRA list: JSON [{"name": file, "strength": s}, ...] -> (name, s, s); entries at
    strength 0 dropped, and names not in models/loras/ dropped with a warning, as the pack does.
    A strength that is not a finite number within LoraLoader's ±100 is refused."""
    import json
    import math
    data = data.strip()
    if data in ("", "[]"):
        return []
    try:
        rows = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise NodeInputError("data", f"not JSON: {str(e)[:200]}") from None
    if not isinstance(rows, list) or len(rows) > MAX_LORA_LIST:
        raise NodeInputError("data", f"expected a JSON list of at most {MAX_LORA_LIST} "
                                     '{"name": ..., "strength": ...} entries')
    available = set(folders.list_models("loras"))
    loras = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("name"), str) \
                or not isinstance(row.get("strength"), (int, float)) or isinstance(row.get("strength"), bool):
            raise NodeInputError("data", f"entry {i}: expected {{\"name\": text, \"strength\": number}}, "
                                         f"got {json.dumps(row)[:80]}")
        if not math.isfinite(row["strength"]) or abs(row["strength"]) > MAX_STRENGTH:
            raise NodeInputError("data", f"entry {i}: strength {row['strength']}: expected a finite number from "
                                         f"-{MAX_STRENGTH:g} to {MAX_STRENGTH:g}")
        if row["strength"] == 0:
            continue
        if row["name"] not in available:
            warn(f"LoRA {row['name']!r} not found in models/loras/: skipped")
            continue
        loras.append((row["name"], float(row["strength"]), float(row["strength"])))
    return loras


class AVLoraListStacker(Node):
    """The JSON list's LoRAs ([{"name": file, "strength": s}]: s for the model and the text encoder;
    strength 0 and files not found skipped, the latter with a warning; a strength beyond ±100, NaN
    or infinite refused) as an Efficiency-style LoRA stack, followed by lora_stack's entries other
    than "None" (each row checked to be (name, model strength, clip strength))."""
    category = LOADERS
    data: str = Text("", multiline=True)
    lora_stack: LORA_STACK = None
    outputs = {"LORA_STACK": LORA_STACK}
    comfy = ComfyAlias(("AV_LoraListStacker",), optional=("lora_stack",))

    def run(self):
        return _lora_list(self.data) + [row for row in _lora_rows(self.lora_stack) if row[0] != "None"]


class AVLoraListLoader(Node):
    """The JSON list's LoRAs ([{"name": file, "strength": s}], read as LoRA List Stacker reads it)
    applied in turn to the model and the text encoder."""
    category = LOADERS
    model: MODEL
    clip: CLIP
    data: str = Text("", multiline=True)
    outputs = {"MODEL": MODEL, "CLIP": CLIP}
    comfy = ComfyAlias(("AV_LoraListLoader",))

    def run(self):
        model, clip = self.model, self.clip
        for name, strength_model, strength_clip in _lora_list(self.data):
            check_interrupted()  # up to MAX_LORA_LIST files, each read in turn
            model, clip = _apply_lora(model, clip, name, strength_model, strength_clip, "data")
        return model, clip
