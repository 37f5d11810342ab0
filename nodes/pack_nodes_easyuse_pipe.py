"""ComfyUI-Easy-Use's pipe system, under the pack's class names, inputs and outputs (read from
yolain/ComfyUI-Easy-Use: py/nodes/loaders.py at 037080ac3935b5a398a12a6510dd600c762d8983, its
loraStack / controlnet nodes in another stored version of that file, py/libs/controlnet.py at
119f706779789ab34ad60e77995999f4e5b6c115, py/nodes/pipe.py at
2dfa3eacc92deb941660a238df626de066c90d5b, py/nodes/preSampling.py at
ca93381de85abf2a3e2f70f30f5f567d2d6caa13, py/nodes/samplers.py at
39fa6ef37ab612ec9aed8dd04c17b45e23275ebe): easy comfyLoader / a1111Loader / fullLoader, easy
loraStack, easy controlnetStack (037080ac's; the loaders apply it), easy controlnetLoader /
controlnetLoaderADV, easy pipeIn / pipeOut / pipeEdit, easy preSampling / preSamplingAdvanced and
easy kSampler / kSamplerTiled. (Its small value, logic and prompt nodes are in
nodes/pack_nodes_easyuse.py, its further samplers in nodes/pack_nodes_easyuse_samplers.py.)

Also easy fluxLoader, easy zero123Loader and easy svdLoader (037080ac's; the last two onto
ImageOnlyCheckpointLoader with StableZero123_Conditioning / SVD_img2vid_Conditioning); easy
cascadeLoader is with the cascade samplers in nodes/pack_nodes_easyuse_samplers.py.

Left out: the other preSampling variants and samplers not in nodes/pack_nodes_easyuse_samplers.py,
the other loaders (SV3D, kolors, HunyuanDiT, PixArt, mochi: their text encoders,
latent layouts and the pack's own model code differ from what the shared loader path does),
controlnetLoader++ (union ControlNet types), soft ControlNet weights below 1 (Advanced-ControlNet),
the loaders' wildcard / <lora:...> prompt expansion, a1111_prompt_style parsing, and XY plots."""

from __future__ import annotations

from graphflow.api import CLIP, CONDITIONING, IMAGE, INT, LATENT, MODEL, VAE, Bool, Choice, ComfyAlias, Estimate, \
    Float, Int, Node, NodeInputError, Size, Text, folders, show, socket_type
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from nodes.conditioning import ConditioningAverage, ConditioningCombine, ConditioningConcat, \
    ConditioningSetTimestepRange
from nodes.controlnet import CONTROL_NET, ApplyControlNetAdvanced, LoadControlNet
from nodes.efficiency_nodes import BAKED_VAE, CONTROL_NET_STACK, LORA_STACK, _checkpoint_choices, _load, _lora_rows, \
    _set_clip_skip, _vae_choices
from nodes.image import SaveImage, temp_pngs
from nodes.latent import EmptyLatent, RepeatLatentBatch
from nodes.loaders import DEMO_CHECKPOINT, LoadCheckpoint, LoadVAE
from nodes.pack_nodes import _apply_lora, _core, _lora_choices
from nodes.pack_nodes_adv_clip import TOKEN_NORMALIZATIONS, advanced_encode
from nodes.pack_nodes_easyuse import SEED_MAX
from nodes.sampling import KSampler, _reporter
from nodes.text_encoder_loaders import _list as _text_encoder_choices
from nodes.vae import VAEDecode, VAEEncode

COMFY_PACK = "ComfyUI-Easy-Use"  # the custom node pack this module's ComfyUI classes come from


# The pack's PIPE_LINE is a dict: model, positive, negative, vae, clip, samples, images, seed (once
# sampled) and loader_settings (the loader's widgets, batch_size among them); the same keys here,
# so a pipe from one of these nodes reads as the pack's. (Comfyroll's PIPE_LINE, a tuple, shares
# the socket name.)
PIPE_LINE = socket_type("PIPE_LINE", "#7e57c2", "Easy-Use's pipe (a dict of model, conditionings, VAE, CLIP, "
                                                "latent, images, seed and loader settings); Comfyroll's is a tuple")
RESOLUTIONS = ("width x height (custom)", "128 x 128", "256 x 256", "512 x 512", "512 x 768", "576 x 1024",
               "768 x 512", "768 x 768", "768 x 1024", "768 x 1280", "768 x 1344", "768 x 1536", "816 x 1920",
               "832 x 1152", "832 x 1216", "896 x 1152", "896 x 1088", "1024 x 1024", "1024 x 576", "1024 x 768",
               "1080 x 1920", "1440 x 2560", "1088 x 896", "1216 x 832", "1152 x 832", "1152 x 896", "1280 x 768",
               "1344 x 768", "1536 x 640", "1536 x 768", "1920 x 816", "1920 x 1080", "2560 x 1440")  # BASE_RESOLUTIONS
LOADERS = "EasyUse/Loaders"
BATCH_MAX = 4096  # the loaders' batch_size bound: the pipe nodes repeat an encoded image no further
DECODED_BYTES = 3 * 4  # per pixel of a decoded image (fp32 RGB)


def latent_size(resolution: str, width: int, height: int) -> tuple[int, int]:
    """The empty latent's pixel size: the chosen "W x H", or the width and height widgets for
    the custom entry (the pack's Chinese editor names it "自定义 x 自定义")."""
    if resolution in ("width x height (custom)", "自定义 x 自定义"):
        return width, height
    try:
        w, h = (int(n) for n in resolution.split(" x "))
    except ValueError:
        raise NodeInputError("resolution", f"expected \"W x H\" or \"width x height (custom)\", got {resolution!r}") \
            from None
    return w, h


def loader_estimate(widgets: dict) -> Estimate:
    """The loaders' empty latent (resolution's size, or the width and height for the custom
    entry, batch_size of them) and the memory for that batch decoded, as easy kSampler decodes it."""
    try:
        width, height = latent_size(widgets["resolution"], widgets["empty_latent_width"],
                                    widgets["empty_latent_height"])
    except (KeyError, NodeInputError):
        return Estimate(None)
    batch = widgets.get("batch_size", 1)
    return Estimate(Size(batch, height, width), memory=batch * height * width * DECODED_BYTES)


def _easy_models(node, loras: list):
    """Model, CLIP and VAE as the pack's loaders make them: the checkpoint (unless "None"), each
    of fullLoader's overrides in place of its part, then the LoRAs in turn and the VAE file
    ("Baked VAE": the checkpoint's or vae_override)."""
    overrides = [getattr(node, f"{part}_override", None) for part in ("model", "clip", "vae")]
    if node.ckpt_name != "None" and all(o is None for o in overrides):
        return _load(node.ckpt_name, "ckpt_name", node.vae_name, loras)
    if node.ckpt_name == "None" and overrides[0] is None:
        raise NodeInputError("ckpt_name", "\"None\" needs a model_override connected")
    loaded = (_core(LoadCheckpoint, {"checkpoint": "ckpt_name"}, checkpoint=node.ckpt_name)
              if node.ckpt_name != "None" else (None, None, None))
    model, clip, vae = (o if o is not None else part for o, part in zip(overrides, loaded))
    for name, strength_model, strength_clip, input_name in loras:
        model, clip = _apply_lora(model, clip, name, strength_model, strength_clip, input_name)
    if node.vae_name != BAKED_VAE:
        vae = _core(LoadVAE, vae_name=node.vae_name)
    return model, clip, vae


def _encode(clip, node, name: str, normalization: str, interpretation: str):
    if interpretation == "fixed attention":
        raise NodeInputError(f"{name}_weight_interpretation", "\"fixed attention\" is not built in; the others are")
    if clip is None:
        raise NodeInputError(name, "no text encoder to encode the prompt with (the checkpoint has none)")
    try:
        return advanced_encode(clip, getattr(node, name), normalization, interpretation, name)
    except NodeInputError as e:
        if e.input == "weight_interpretation" and f"{name}_weight_interpretation" in node.input_specs:
            raise NodeInputError(f"{name}_weight_interpretation", str(e)) from None
        raise


def easy_pipe(node, normalization: str, interpretation: str,
              negative_normalization: str | None = None, negative_interpretation: str | None = None) -> tuple:
    """The Easy-Use loaders' work: the checkpoint with its VAE ("Baked VAE": its own), lora_name
    then optional_lora_stack applied in turn, the text encoder stopped at clip_skip (0: left as
    it is), the prompts encoded with the token normalization and weight interpretation
    (Efficiency Nodes' ADV_CLIP_emb formulas, which the pack also uses), and an empty latent
    batch; gives (pipe, model, vae, clip, positive, negative, latent)."""
    negative_normalization = negative_normalization or normalization
    negative_interpretation = negative_interpretation or interpretation
    if getattr(node, "a1111_prompt_style", False):
        raise NodeInputError("a1111_prompt_style", "the pack's A1111 prompt-style parsing is not built in; "
                                                   "turn it off to encode the prompts as CLIP Text Encode does")
    loras = ([(node.lora_name, node.lora_model_strength, node.lora_clip_strength, "lora_name")]
             if node.lora_name != "None" else [])
    try:
        stack = _lora_rows(node.optional_lora_stack)
    except NodeInputError as e:
        raise NodeInputError("optional_lora_stack", str(e)) from None
    loras += [(*row, "optional_lora_stack") for row in stack]
    model, clip, vae = _easy_models(node, loras)
    if node.clip_skip != 0 and clip is not None:
        clip = _set_clip_skip(clip, node.clip_skip, "clip_skip")
    positive = _encode(clip, node, "positive", normalization, interpretation)
    negative = _encode(clip, node, "negative", negative_normalization, negative_interpretation)
    if node.optional_controlnet_stack:
        positive, negative = stacked_controlnets(node.optional_controlnet_stack, positive, negative, vae)
    width, height = latent_size(node.resolution, node.empty_latent_width, node.empty_latent_height)
    samples = _core(EmptyLatent, {"width": "empty_latent_width", "height": "empty_latent_height"},
                    width=width, height=height, batch_size=node.batch_size)
    settings = {"ckpt_name": node.ckpt_name, "vae_name": node.vae_name, "lora_name": node.lora_name,
                "lora_model_strength": node.lora_model_strength, "lora_clip_strength": node.lora_clip_strength,
                "lora_stack": stack, "clip_skip": node.clip_skip, "a1111_prompt_style": False,
                "positive": node.positive, "positive_token_normalization": normalization,
                "positive_weight_interpretation": interpretation, "negative": node.negative,
                "negative_token_normalization": negative_normalization,
                "negative_weight_interpretation": negative_interpretation,
                "resolution": node.resolution, "empty_latent_width": node.empty_latent_width,
                "empty_latent_height": node.empty_latent_height, "batch_size": node.batch_size}
    pipe = {"model": model, "positive": positive, "negative": negative, "vae": vae, "clip": clip,
            "samples": samples, "images": None, "loader_settings": settings}
    return pipe, model, vae, clip, positive, negative, samples


EASY_INTERPRETATIONS = ("comfy", "A1111", "comfy++", "compel", "fixed attention")


class EasyFullLoader(Node):
    """Load a checkpoint into a pipe, as Easy-Use's easy fullLoader does: as easy comfyLoader,
    with each prompt's token normalization and weight interpretation (Efficiency Nodes'
    ADV_CLIP_emb formulas; "fixed attention" is not built in and is an error), ckpt_name "None"
    with a model_override, and model / clip / vae overrides used in place of the checkpoint's
    parts (the LoRAs are applied to them). config_name is not needed (the architecture is read
    from the weights). Gives the pipe, model, VAE, CLIP, both conditionings and the latent. Left
    out: a1111_prompt_style parsing (an error when on) and wildcards and <lora:...> tags.
    optional_controlnet_stack (easy controlnetStack's rows) is applied to both conditionings, as
    easy controlnetLoaderADV applies one."""
    category = LOADERS
    ckpt_name: str = Choice(lambda: _checkpoint_choices() + ["None"], DEMO_CHECKPOINT, model_folder="checkpoints",
                            not_files=("None",))
    config_name: str = Text("Default")  # a config file's name is accepted and not needed
    vae_name: str = Choice(_vae_choices, BAKED_VAE, model_folder="vae", not_files=(BAKED_VAE,))
    clip_skip: int = Int(-2, min=-24, max=0)
    lora_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    lora_model_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_clip_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    resolution: str = Choice(RESOLUTIONS, "512 x 512")
    empty_latent_width: int = Int(512, min=64, max=16384, step=8, resource="width")
    empty_latent_height: int = Int(512, min=64, max=16384, step=8, resource="height")
    positive: str = Text("", multiline=True)
    positive_token_normalization: str = Choice(TOKEN_NORMALIZATIONS, "none")
    positive_weight_interpretation: str = Choice(EASY_INTERPRETATIONS, "comfy")
    negative: str = Text("", multiline=True)
    negative_token_normalization: str = Choice(TOKEN_NORMALIZATIONS, "none")
    negative_weight_interpretation: str = Choice(EASY_INTERPRETATIONS, "comfy")
    batch_size: int = Int(1, min=1, max=BATCH_MAX, resource="batch")
    model_override: MODEL = None
    clip_override: CLIP = None
    vae_override: VAE = None
    optional_lora_stack: LORA_STACK = None
    optional_controlnet_stack: CONTROL_NET_STACK = None
    a1111_prompt_style: bool = Bool(False)
    outputs = {"pipe": PIPE_LINE, "model": MODEL, "vae": VAE, "clip": CLIP, "positive": CONDITIONING,
               "negative": CONDITIONING, "latent": LATENT}
    comfy = ComfyAlias(("easy fullLoader",), optional=("model_override", "clip_override", "vae_override",
                                                       "optional_lora_stack", "optional_controlnet_stack",
                                                       "a1111_prompt_style"))

    @classmethod
    def estimate(cls, widgets, inputs):
        return loader_estimate(widgets)

    def run(self):
        return easy_pipe(self, self.positive_token_normalization, self.positive_weight_interpretation,
                         self.negative_token_normalization, self.negative_weight_interpretation)


class EasyComfyLoader(Node):
    """Load a checkpoint into a pipe, as Easy-Use's easy comfyLoader does: checkpoint, VAE ("Baked
    VAE": the checkpoint's), a LoRA ("None": none) and then optional_lora_stack's, the text
    encoder stopped at clip_skip (0 leaves it), the prompts encoded as CLIP Text Encode does, and
    an empty latent batch of `resolution` (or the width and height for the custom entry). Gives the
    pipe (the pack's keys) and the model and VAE; optional_controlnet_stack (easy controlnetStack's
    rows) is applied to both conditionings in turn, as easy controlnetLoaderADV applies one. Left
    out: wildcards and <lora:...> tags in the prompts (the pack expands them; here they are encoded
    as written)."""
    category = LOADERS
    ckpt_name: str = Choice(_checkpoint_choices, DEMO_CHECKPOINT, model_folder="checkpoints")
    vae_name: str = Choice(_vae_choices, BAKED_VAE, model_folder="vae", not_files=(BAKED_VAE,))
    clip_skip: int = Int(-2, min=-24, max=0)
    lora_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    lora_model_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_clip_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    resolution: str = Choice(RESOLUTIONS, "512 x 512")
    empty_latent_width: int = Int(512, min=64, max=16384, step=8, resource="width")
    empty_latent_height: int = Int(512, min=64, max=16384, step=8, resource="height")
    positive: str = Text("", multiline=True)
    negative: str = Text("", multiline=True)
    batch_size: int = Int(1, min=1, max=BATCH_MAX, resource="batch")
    optional_lora_stack: LORA_STACK = None
    optional_controlnet_stack: CONTROL_NET_STACK = None
    outputs = {"pipe": PIPE_LINE, "model": MODEL, "vae": VAE}
    comfy = ComfyAlias(("easy comfyLoader",), optional=("optional_lora_stack", "optional_controlnet_stack"))

    @classmethod
    def estimate(cls, widgets, inputs):
        return loader_estimate(widgets)

    def run(self):
        pipe, model, vae, *_ = easy_pipe(self, "none", "comfy")
        return pipe, model, vae


class EasyA1111Loader(EasyComfyLoader):
    """Load a checkpoint into a pipe, as Easy-Use's easy a1111Loader does: as easy comfyLoader,
    the prompts encoded with mean token normalization and A1111 weight interpretation (the
    embedding multiplied by the weights, then rescaled to its old mean); optional_controlnet_stack
    as easy comfyLoader applies it. Left out: the a1111_prompt_style parsing (an error when on),
    wildcards and <lora:...> tags."""
    a1111_prompt_style: bool = Bool(False)
    comfy = ComfyAlias(("easy a1111Loader",),
                       optional=("optional_lora_stack", "optional_controlnet_stack", "a1111_prompt_style"))

    def run(self):
        pipe, model, vae, *_ = easy_pipe(self, "mean", "A1111")
        return pipe, model, vae


class EasyFluxLoader(Node):
    """Load a FLUX checkpoint into a pipe, as Easy-Use's easy fluxLoader does: easy fullLoader's
    work with the text encoder as it is (clip_skip 0), the prompt encoded as CLIP Text Encode does
    and the negative its zeroed copy (ConditioningZeroOut), as the pack makes it; ckpt_name "None"
    with a model_override, the model / clip / vae overrides, lora_name then optional_lora_stack
    and optional_controlnet_stack as in easy fullLoader. The empty latent has the model's channel
    count (16 for FLUX). An empty positive is encoded as the empty prompt (the pack hands on None
    and fails). Gives the pipe, model and VAE. Left out: wildcards and <lora:...> tags."""
    category = LOADERS
    ckpt_name: str = Choice(lambda: _checkpoint_choices() + ["None"], DEMO_CHECKPOINT, model_folder="checkpoints",
                            not_files=("None",))
    vae_name: str = Choice(_vae_choices, BAKED_VAE, model_folder="vae", not_files=(BAKED_VAE,))
    lora_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    lora_model_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_clip_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    resolution: str = Choice(RESOLUTIONS, "1024 x 1024")
    empty_latent_width: int = Int(1024, min=64, max=16384, step=8, resource="width")
    empty_latent_height: int = Int(1024, min=64, max=16384, step=8, resource="height")
    positive: str = Text("", multiline=True)
    batch_size: int = Int(1, min=1, max=64, resource="batch")
    model_override: MODEL = None
    clip_override: CLIP = None
    vae_override: VAE = None
    optional_lora_stack: LORA_STACK = None
    optional_controlnet_stack: CONTROL_NET_STACK = None
    outputs = {"pipe": PIPE_LINE, "model": MODEL, "vae": VAE}
    comfy = ComfyAlias(("easy fluxLoader",), optional=("model_override", "clip_override", "vae_override",
                                                       "optional_lora_stack", "optional_controlnet_stack"))

    @classmethod
    def estimate(cls, widgets, inputs):
        return loader_estimate(widgets)

    def run(self):
        import torch

        from nodes.conditioning import ConditioningZeroOut
        loras = ([(self.lora_name, self.lora_model_strength, self.lora_clip_strength, "lora_name")]
                 if self.lora_name != "None" else [])
        try:
            stack = _lora_rows(self.optional_lora_stack)
        except NodeInputError as e:
            raise NodeInputError("optional_lora_stack", str(e)) from None
        loras += [(*row, "optional_lora_stack") for row in stack]
        model, clip, vae = _easy_models(self, loras)
        positive = _encode(clip, self, "positive", "none", "comfy")
        negative = _core(ConditioningZeroOut, {"conditioning": "positive"}, conditioning=positive)
        if self.optional_controlnet_stack:
            positive, negative = stacked_controlnets(self.optional_controlnet_stack, positive, negative, vae)
        width, height = latent_size(self.resolution, self.empty_latent_width, self.empty_latent_height)
        channels = model.latent_format.channels if hasattr(model, "latent_format") else 16
        samples = {"samples": torch.zeros(self.batch_size, channels, height // 8, width // 8)}
        settings = {"ckpt_name": self.ckpt_name, "vae_name": self.vae_name, "lora_name": self.lora_name,
                    "lora_model_strength": self.lora_model_strength, "lora_clip_strength": self.lora_clip_strength,
                    "lora_stack": stack, "clip_skip": 0, "a1111_prompt_style": False, "positive": self.positive,
                    "positive_token_normalization": "none", "positive_weight_interpretation": "comfy",
                    "negative": None, "negative_token_normalization": "none", "negative_weight_interpretation": "comfy",
                    "resolution": self.resolution, "empty_latent_width": self.empty_latent_width,
                    "empty_latent_height": self.empty_latent_height, "batch_size": self.batch_size}
        pipe = {"model": model, "positive": positive, "negative": negative, "vae": vae, "clip": clip,
                "samples": samples, "images": None, "loader_settings": settings}
        return pipe, model, vae

def _image_only_checkpoint(ckpt_name: str) -> tuple:
    from nodes.video_models import ImageOnlyCheckpointLoader
    return _core(ImageOnlyCheckpointLoader, {"checkpoint": "ckpt_name"}, checkpoint=ckpt_name)


def _placeholder_image():
    """The pack's 1x1 black image its image-conditioned loaders put in the pipe (preSampling's
    image_to_latent skips a 1x1 image)."""
    import torch
    return torch.zeros(1, 1, 1, 3)


class EasyZero123Loader(Node):
    """Load a Stable Zero123 checkpoint into a pipe, as Easy-Use's easy zero123Loader does: the
    model, its CLIP vision and VAE (ImageOnlyCheckpointLoader), and init_image seen from elevation
    and azimuth as StableZero123_Conditioning makes the conditionings and the empty latent batch.
    As in the pack, vae_name is not used (the checkpoint's VAE encodes) and the choices are the
    checkpoints with "zero123" in their names. Gives the pipe (its seed 0, a 1x1 image as its
    images), the model and the VAE."""
    category = LOADERS
    ckpt_name: str = Choice(lambda: [f for f in folders.list_models("checkpoints") if "zero123" in f.lower()],
                            model_folder="checkpoints")
    vae_name: str = Choice(_vae_choices, BAKED_VAE, model_folder="vae", not_files=(BAKED_VAE,))
    init_image: IMAGE
    empty_latent_width: int = Int(256, min=16, max=16384, step=8, resource="width")
    empty_latent_height: int = Int(256, min=16, max=16384, step=8, resource="height")
    batch_size: int = Int(1, min=1, max=64, resource="batch")
    elevation: float = Float(0.0, min=-180.0, max=180.0)
    azimuth: float = Float(0.0, min=-180.0, max=180.0)
    outputs = {"pipe": PIPE_LINE, "model": MODEL, "vae": VAE}
    comfy = ComfyAlias(("easy zero123Loader",))

    def run(self):
        from nodes.zero123 import StableZero123Conditioning
        model, clip_vision, vae = _image_only_checkpoint(self.ckpt_name)
        positive, negative, samples = _core(
            StableZero123Conditioning, {"width": "empty_latent_width", "height": "empty_latent_height"},
            clip_vision=clip_vision, init_image=self.init_image, vae=vae, width=self.empty_latent_width,
            height=self.empty_latent_height, batch_size=self.batch_size, elevation=self.elevation,
            azimuth=self.azimuth)
        settings = {"ckpt_name": self.ckpt_name, "vae_name": self.vae_name, "positive": positive,
                    "negative": negative, "empty_latent_width": self.empty_latent_width,
                    "empty_latent_height": self.empty_latent_height, "batch_size": self.batch_size, "seed": 0}
        pipe = {"model": model, "positive": positive, "negative": negative, "vae": vae, "clip": None,
                "samples": samples, "images": _placeholder_image(), "seed": 0, "loader_settings": settings}
        return pipe, model, vae


class EasySVDLoader(Node):
    """Load a Stable Video Diffusion checkpoint into a pipe, as Easy-Use's easy svdLoader does:
    the model, CLIP vision and VAE (ImageOnlyCheckpointLoader), init_image made the conditionings
    and an empty latent of video_frames frames at `resolution` (or the width and height for the
    custom entry) as SVD_img2vid_Conditioning makes them (its augmentation noise drawn from seed
    0, where the pack draws it unseeded). A non-empty optional_positive / optional_negative is
    encoded with the text encoder clip_name (CLIPLoader) and joined to that side with
    ConditioningConcat, as the pack does. As in the pack, vae_name is not used and the choices are
    the checkpoints with "svd" in their names. Gives the pipe (batch_size 1, seed 0, a 1x1 image
    as its images), the model and the VAE."""
    category = LOADERS
    ckpt_name: str = Choice(lambda: [f for f in folders.list_models("checkpoints") if "svd" in f.lower()],
                            model_folder="checkpoints")
    vae_name: str = Choice(_vae_choices, BAKED_VAE, model_folder="vae", not_files=(BAKED_VAE,))
    clip_name: str = Choice(lambda: ["None"] + _text_encoder_choices(), "None", model_folder="text_encoders",
                            not_files=("None",))
    init_image: IMAGE
    resolution: str = Choice(RESOLUTIONS, "1024 x 576")
    empty_latent_width: int = Int(256, min=16, max=16384, step=8)
    empty_latent_height: int = Int(256, min=16, max=16384, step=8)
    video_frames: int = Int(14, min=1, max=4096)
    motion_bucket_id: int = Int(127, min=1, max=1023)
    fps: int = Int(6, min=1, max=1024)
    augmentation_level: float = Float(0.0, min=0.0, max=10.0, step=0.01)
    optional_positive: str = Text("", multiline=True)
    optional_negative: str = Text("", multiline=True)
    outputs = {"pipe": PIPE_LINE, "model": MODEL, "vae": VAE}
    comfy = ComfyAlias(("easy svdLoader",), optional=("optional_positive", "optional_negative"))

    @classmethod
    def estimate(cls, widgets, inputs):
        try:
            width, height = latent_size(widgets["resolution"], widgets["empty_latent_width"],
                                        widgets["empty_latent_height"])
        except (KeyError, NodeInputError):
            return Estimate(None)
        frames = widgets.get("video_frames", 1)
        return Estimate(Size(frames, height, width), memory=frames * height * width * DECODED_BYTES)

    def run(self):
        from nodes.conditioning import CLIPEncode
        from nodes.text_encoder_loaders import LoadTextEncoder
        from nodes.video_models import SVDImageToVideo
        width, height = latent_size(self.resolution, self.empty_latent_width, self.empty_latent_height)
        model, clip_vision, vae = _image_only_checkpoint(self.ckpt_name)
        positive, negative, samples = _core(
            SVDImageToVideo, {"width": "resolution", "height": "resolution"}, clip_vision=clip_vision,
            init_image=self.init_image, vae=vae, width=width, height=height, video_frames=self.video_frames,
            motion_bucket_id=self.motion_bucket_id, fps=self.fps, augmentation_level=self.augmentation_level)
        clip = None
        conds = {"optional_positive": positive, "optional_negative": negative}
        for name in conds:
            text = getattr(self, name)
            if not text:
                continue
            if self.clip_name == "None":
                raise NodeInputError("clip_name", f"{name} needs a text encoder to encode it (the pack asks for an "
                                                  "open_clip model)")
            if clip is None:
                clip = _core(LoadTextEncoder, {"clip_name": "clip_name"}, clip_name=self.clip_name)
            encoded = _core(CLIPEncode, {"text": name}, text=text, clip=clip)
            conds[name] = _core(ConditioningConcat, {"conditioning_to": name, "conditioning_from": name},
                                conditioning_to=conds[name], conditioning_from=encoded)
        positive, negative = conds["optional_positive"], conds["optional_negative"]
        settings = {"ckpt_name": self.ckpt_name, "vae_name": self.vae_name, "positive": positive,
                    "negative": negative, "resolution": self.resolution, "empty_latent_width": width,
                    "empty_latent_height": height, "batch_size": 1, "seed": 0}
        pipe = {"model": model, "positive": positive, "negative": negative, "vae": vae, "clip": clip,
                "samples": samples, "images": _placeholder_image(), "seed": 0, "loader_settings": settings}
        return pipe, model, vae

LORA_STACK_ROWS = 10  # the pack's max_lora_num


class EasyLoraStack(Node):
    """A LoRA stack for the Easy-Use loaders (optional_lora_stack) and other packs' LORA_STACK
    inputs, as Easy-Use's easy loraStack makes it: off (toggle) gives no stack; on, the
    connected optional_lora_stack's rows (those not named "None") then rows 1 to num_loras
    whose name is not "None", each (name, strength, strength) in simple mode or (name,
    model_strength, clip_strength) in advanced mode."""
    category = LOADERS
    toggle: bool = Bool(False)
    mode: str = Choice(("simple", "advanced"), "simple")
    num_loras: int = Int(1, min=1, max=LORA_STACK_ROWS)
    optional_lora_stack: LORA_STACK = None
    lora_1_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    lora_1_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_1_model_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_1_clip_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_2_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    lora_2_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_2_model_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_2_clip_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_3_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    lora_3_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_3_model_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_3_clip_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_4_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    lora_4_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_4_model_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_4_clip_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_5_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    lora_5_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_5_model_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_5_clip_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_6_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    lora_6_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_6_model_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_6_clip_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_7_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    lora_7_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_7_model_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_7_clip_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_8_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    lora_8_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_8_model_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_8_clip_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_9_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    lora_9_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_9_model_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_9_clip_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_10_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    lora_10_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_10_model_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    lora_10_clip_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    outputs = {"lora_stack": LORA_STACK}
    comfy = ComfyAlias(("easy loraStack",), optional=("optional_lora_stack", *(
        f"lora_{i}_{part}" for i in range(1, LORA_STACK_ROWS + 1)
        for part in ("name", "strength", "model_strength", "clip_strength"))))

    def run(self):
        if not self.toggle:
            return None
        try:
            rows = [row for row in _lora_rows(self.optional_lora_stack) if row[0] != "None"]
        except NodeInputError as e:
            raise NodeInputError("optional_lora_stack", str(e)) from None
        for i in range(1, self.num_loras + 1):
            name = getattr(self, f"lora_{i}_name")
            if not name or name == "None":
                continue
            if self.mode == "simple":
                strength = getattr(self, f"lora_{i}_strength")
                rows.append((name, strength, strength))
            else:
                rows.append((name, getattr(self, f"lora_{i}_model_strength"), getattr(self, f"lora_{i}_clip_strength")))
        return rows


def _pipe_dict(pipe, input_name: str = "pipe") -> dict:
    if pipe is None:
        return {}
    if not isinstance(pipe, dict):
        raise NodeInputError(input_name, f"expected Easy-Use's pipe (a dict), got {type(pipe).__name__}: "
                                         "another pack's PIPE_LINE (Comfyroll's is a tuple)")
    settings = pipe.get("loader_settings")
    if settings is not None and not isinstance(settings, dict):
        raise NodeInputError(input_name, f"the pipe's loader_settings should be a dict, got {type(settings).__name__}")
    return pipe


class EasyPipeIn(Node):
    """Put model, conditionings, latent, VAE, CLIP and image into a pipe, as Easy-Use's easy
    pipeIn does: each connected input replaces the pipe's, the rest are kept. A connected image
    (without a latent) is encoded with the VAE and repeated batch_size times (the loader's
    setting; a repeated batch over 4096 is refused) as the pipe's latent. Its xyPlot input (the
    pack's XY plot) is not built in."""
    category = "EasyUse/Pipe"
    pipe: PIPE_LINE = None
    model: MODEL = None
    pos: CONDITIONING = None
    neg: CONDITIONING = None
    latent: LATENT = None
    vae: VAE = None
    clip: CLIP = None
    image: IMAGE = None
    outputs = {"pipe": PIPE_LINE}
    comfy = ComfyAlias(("easy pipeIn",), ignore=("xyPlot",),
                       optional=("pipe", "model", "pos", "neg", "latent", "vae", "clip", "image"))

    def run(self):
        pipe = _pipe_dict(self.pipe)
        settings = dict(pipe.get("loader_settings") or {"positive": "", "negative": "", "xyplot": None})
        vae = self.vae if self.vae is not None else pipe.get("vae")
        image, samples = self.image, self.latent
        if samples is None and image is None:
            samples, image = pipe.get("samples"), pipe.get("images")
        elif samples is None:
            if vae is None:
                raise NodeInputError("vae", "an image to encode needs a VAE: connect one or give a pipe with one")
            samples = _encoded_batch(image, vae, settings.get("batch_size", 1), "image")
        return {**pipe, "model": self.model if self.model is not None else pipe.get("model"),
                "positive": self.pos if self.pos is not None else pipe.get("positive"),
                "negative": self.neg if self.neg is not None else pipe.get("negative"),
                "vae": vae, "clip": self.clip if self.clip is not None else pipe.get("clip"),
                "samples": samples, "images": image, "seed": pipe.get("seed"), "loader_settings": settings}


class EasyPipeOut(Node):
    """Take a pipe apart, as Easy-Use's easy pipeOut does: the pipe itself, model, positive and
    negative conditionings, latent, VAE, CLIP, images and seed (None where the pipe has none)."""
    category = "EasyUse/Pipe"
    pipe: PIPE_LINE
    outputs = {"pipe": PIPE_LINE, "model": MODEL, "pos": CONDITIONING, "neg": CONDITIONING, "latent": LATENT,
               "vae": VAE, "clip": CLIP, "image": IMAGE, "seed": INT}
    comfy = ComfyAlias(("easy pipeOut",))

    def run(self):
        pipe = _pipe_dict(self.pipe)
        return (pipe, *(pipe.get(k) for k in ("model", "positive", "negative", "samples", "vae", "clip", "images",
                                               "seed")))


CONDITIONING_MODES = ("replace", "concat", "combine", "average", "timestep")


def merged_conditioning(node, old, new, input_name: str):
    """The pack's set_cond: the new prompt's conditioning with the pipe's old one by
    conditioning_mode (no old one: the new one): replace; concat (ConditioningConcat of new with
    old); combine (ConditioningCombine of old and new); average (ConditioningAverage, new at
    average_strength); timestep (old over old_cond_start..end and new over new_cond_start..end,
    combined)."""
    if not old or node.conditioning_mode == "replace":
        return new
    renamed = {"conditioning_to": input_name, "conditioning_from": input_name, "conditioning_1": input_name,
               "conditioning_2": input_name}
    if node.conditioning_mode == "concat":
        return _core(ConditioningConcat, renamed, conditioning_to=new, conditioning_from=old)
    if node.conditioning_mode == "combine":
        return _core(ConditioningCombine, renamed, conditioning_1=old, conditioning_2=new)
    if node.conditioning_mode == "average":
        return _core(ConditioningAverage, renamed, conditioning_to=new, conditioning_from=old,
                     conditioning_to_strength=node.average_strength)
    old = _core(ConditioningSetTimestepRange, {"start": "old_cond_start", "end": "old_cond_end"}, conditioning=old,
                start=node.old_cond_start, end=node.old_cond_end)
    new = _core(ConditioningSetTimestepRange, {"start": "new_cond_start", "end": "new_cond_end"}, conditioning=new,
                start=node.new_cond_start, end=node.new_cond_end)
    return _core(ConditioningCombine, renamed, conditioning_1=old, conditioning_2=new)


class EasyPipeEdit(Node):
    """Edit a pipe, as Easy-Use's easy pipeEdit does: connected model, latent, VAE, CLIP and
    image replace the pipe's (an image without a latent is encoded with the VAE and repeated
    batch_size times, at most a batch of 4096). A non-empty optional_positive (optional_negative)
    is encoded, while pos (neg) is unconnected, with the CLIP stopped at clip_skip (0: as it is;
    Efficiency Nodes' ADV_CLIP_emb formulas for the token normalization and weight
    interpretation, "fixed attention" not built in) and merged with the pipe's conditioning by
    conditioning_mode; that CLIP goes on. Otherwise the pipe's conditioning goes on: as in the
    pack, a connected pos / neg is not itself used, it only stops the text being encoded. The
    `latent` output is the latent input as connected. Left out: a1111_prompt_style parsing (an
    error when on), wildcards and <lora:...> tags in the texts."""
    category = "EasyUse/Pipe"
    clip_skip: int = Int(-1, min=-24, max=0)
    optional_positive: str = Text("", multiline=True)
    positive_token_normalization: str = Choice(TOKEN_NORMALIZATIONS, "none")
    positive_weight_interpretation: str = Choice(EASY_INTERPRETATIONS, "comfy")
    optional_negative: str = Text("", multiline=True)
    negative_token_normalization: str = Choice(TOKEN_NORMALIZATIONS, "none")
    negative_weight_interpretation: str = Choice(EASY_INTERPRETATIONS, "comfy")
    a1111_prompt_style: bool = Bool(False)
    conditioning_mode: str = Choice(CONDITIONING_MODES, "replace")
    average_strength: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    old_cond_start: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    old_cond_end: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    new_cond_start: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    new_cond_end: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    pipe: PIPE_LINE = None
    model: MODEL = None
    pos: CONDITIONING = None
    neg: CONDITIONING = None
    latent: LATENT = None
    vae: VAE = None
    clip: CLIP = None
    image: IMAGE = None
    outputs = {"pipe": PIPE_LINE, "model": MODEL, "pos": CONDITIONING, "neg": CONDITIONING, "latent": LATENT,
               "vae": VAE, "clip": CLIP, "image": IMAGE}
    comfy = ComfyAlias(("easy pipeEdit",),
                       optional=("pipe", "model", "pos", "neg", "latent", "vae", "clip", "image"))

    def run(self):
        if self.a1111_prompt_style:
            raise NodeInputError("a1111_prompt_style", "the pack's A1111 prompt-style parsing is not built in")
        pipe = _pipe_dict(self.pipe)
        settings = dict(pipe.get("loader_settings") or {"positive": "", "negative": "", "xyplot": None})
        model = self.model if self.model is not None else pipe.get("model")
        vae = self.vae if self.vae is not None else pipe.get("vae")
        clip = self.clip if self.clip is not None else pipe.get("clip")
        image = self.image
        if image is None:
            image = pipe.get("images")
            samples = self.latent if self.latent is not None else pipe.get("samples")
        else:
            samples = _encoded_batch(image, vae, settings.get("batch_size", 1), "image")
        conds = {}
        for side in ("positive", "negative"):
            text = getattr(self, f"optional_{side}")
            if text == "" or getattr(self, side[:3]) is not None:  # the pack encodes only while pos / neg is free
                conds[side] = pipe.get(side)
                continue
            if clip is None:
                raise NodeInputError("clip", f"optional_{side} needs a CLIP to encode it: connect one or give a pipe "
                                             "with one")
            clipped = _set_clip_skip(clip, self.clip_skip, "clip_skip") if self.clip_skip != 0 else clip
            normalization = getattr(self, f"{side}_token_normalization")
            interpretation = getattr(self, f"{side}_weight_interpretation")
            if interpretation == "fixed attention":
                raise NodeInputError(f"{side}_weight_interpretation", "\"fixed attention\" is not built in")
            try:
                new = advanced_encode(clipped, text, normalization, interpretation, f"optional_{side}")
            except NodeInputError as e:
                name = f"{side}_weight_interpretation" if e.input == "weight_interpretation" else e.input
                raise NodeInputError(name, str(e)) from None
            conds[side] = merged_conditioning(self, pipe.get(side), new, f"optional_{side}")
            clip = clipped
            settings.update({side: text, f"{side}_token_normalization": normalization,
                             f"{side}_weight_interpretation": interpretation})
        new_pipe = {**pipe, "model": model, "positive": conds["positive"], "negative": conds["negative"], "vae": vae,
                    "clip": clip, "samples": samples, "images": image, "seed": pipe.get("seed"),
                    "loader_settings": settings}
        return new_pipe, model, conds["positive"], conds["negative"], self.latent, vae, clip, image


def easy_controlnet(node, start: float, end: float, images) -> tuple:
    """The pack's controlnetLoader work: the ControlNet (control_net when connected, else the file
    control_net_name) applied to the pipe's positive and negative as Apply ControlNet (Advanced)
    does, with the pipe's VAE for ControlNets that read latents; gives (pipe, positive,
    negative), the pipe's seed set to 0 as the pack sets it."""
    pipe = _pipe_dict(node.pipe)
    if pipe.get("positive") is None or pipe.get("negative") is None:
        raise NodeInputError("pipe", "the pipe has no positive and negative conditioning")
    if node.scale_soft_weights != 1.0:
        raise NodeInputError("scale_soft_weights", "soft weights below 1 need Advanced-ControlNet's nodes, which "
                                                   "are not built in; use 1.0")
    control_net = node.control_net
    if control_net is None and node.strength != 0:
        control_net = _core(LoadControlNet, control_net_name=node.control_net_name)
    positive, negative = _core(ApplyControlNetAdvanced, {"vae": "pipe"}, positive=pipe["positive"],
                               negative=pipe["negative"], control_net=control_net, image=node.image,
                               strength=node.strength, start_percent=start, end_percent=end, vae=pipe.get("vae"))
    new_pipe = {**{k: pipe.get(k) for k in ("model", "vae", "clip", "samples")}, "positive": positive,
                "negative": negative, "images": images, "seed": 0, "loader_settings": pipe.get("loader_settings")}
    return new_pipe, positive, negative


CONTROLNET_STACK_ROWS = 3  # the pack's max_cn_num


def stacked_controlnets(stack, positive, negative, vae) -> tuple:
    """The loaders' optional_controlnet_stack applied: each row of easy controlnetStack (name,
    strength, start, end, soft weights, image, ...) loaded by name and applied to both
    conditionings as Apply ControlNet (Advanced) does, in turn."""
    if not isinstance(stack, (list, tuple)):
        raise NodeInputError("optional_controlnet_stack", f"expected easy controlnetStack's list of rows, got "
                                                          f"{type(stack).__name__}")
    for row in stack:
        if not isinstance(row, (list, tuple)) or len(row) < 6 or not isinstance(row[0], str):
            raise NodeInputError("optional_controlnet_stack", "expected easy controlnetStack's rows (name, strength, "
                                                              "start, end, soft weights, image); Efficiency Nodes' "
                                                              "stack rows are not read here")
        name, strength, start, end, soft_weights, image = row[:6]
        if soft_weights != 1.0:
            raise NodeInputError("optional_controlnet_stack", f"{name}: soft weights below 1 need "
                                                              "Advanced-ControlNet's nodes, which are not built in")
        if image is None:
            raise NodeInputError("optional_controlnet_stack", f"{name}: no hint image connected")
        control_net = _core(LoadControlNet, {"control_net_name": "optional_controlnet_stack"}, control_net_name=name)
        positive, negative = _core(ApplyControlNetAdvanced, {"vae": "optional_controlnet_stack",
                                                             "image": "optional_controlnet_stack"},
                                   positive=positive, negative=negative, control_net=control_net, image=image,
                                   strength=strength, start_percent=start, end_percent=end, vae=vae)
    return positive, negative


class EasyControlnetStack(Node):
    """A ControlNet stack for the Easy-Use loaders' optional_controlnet_stack, as Easy-Use's easy
    controlnetStack makes it: off (toggle) gives no stack; on, the connected stack's rows (those
    not named "None") then rows 1 to num_controlnet whose name is not "None", each (name,
    strength, start, end, soft weights, image): over the whole sampling in simple mode, between
    start_percent and end_percent in advanced mode. The loaders refuse soft weights below 1
    (Advanced-ControlNet's) and rows without an image."""
    category = LOADERS
    toggle: bool = Bool(False)
    mode: str = Choice(("simple", "advanced"), "simple")
    num_controlnet: int = Int(1, min=1, max=CONTROLNET_STACK_ROWS)
    optional_controlnet_stack: CONTROL_NET_STACK = None
    controlnet_1: str = Choice(lambda: ["None"] + folders.list_models("controlnet"), "None", model_folder="controlnet",
                               not_files=("None",))
    controlnet_1_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    start_percent_1: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent_1: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    scale_soft_weight_1: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    image_1: IMAGE = None
    controlnet_2: str = Choice(lambda: ["None"] + folders.list_models("controlnet"), "None", model_folder="controlnet",
                               not_files=("None",))
    controlnet_2_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    start_percent_2: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent_2: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    scale_soft_weight_2: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    image_2: IMAGE = None
    controlnet_3: str = Choice(lambda: ["None"] + folders.list_models("controlnet"), "None", model_folder="controlnet",
                               not_files=("None",))
    controlnet_3_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    start_percent_3: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent_3: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    scale_soft_weight_3: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    image_3: IMAGE = None
    outputs = {"controlnet_stack": CONTROL_NET_STACK}
    comfy = ComfyAlias(("easy controlnetStack",), optional=("optional_controlnet_stack", *(
        f"{part.format(i)}" for i in range(1, CONTROLNET_STACK_ROWS + 1)
        for part in ("controlnet_{}", "controlnet_{}_strength", "start_percent_{}", "end_percent_{}",
                     "scale_soft_weight_{}", "image_{}"))))

    def run(self):
        if not self.toggle:
            return None
        rows = []
        if self.optional_controlnet_stack is not None:
            if not isinstance(self.optional_controlnet_stack, (list, tuple)):
                raise NodeInputError("optional_controlnet_stack", "expected a ControlNet stack (a list of rows)")
            rows = [row for row in self.optional_controlnet_stack if not (row and row[0] == "None")]
        for i in range(1, self.num_controlnet + 1):
            name = getattr(self, f"controlnet_{i}")
            if not name or name == "None":
                continue
            advanced = self.mode == "advanced"
            rows.append((name, getattr(self, f"controlnet_{i}_strength"),
                         getattr(self, f"start_percent_{i}") if advanced else 0.0,
                         getattr(self, f"end_percent_{i}") if advanced else 1.0,
                         getattr(self, f"scale_soft_weight_{i}"), getattr(self, f"image_{i}"), True))
        return rows

class EasyControlnetLoader(Node):
    """Apply a ControlNet to a pipe's conditionings, as Easy-Use's easy controlnetLoader does:
    control_net (when connected) or the file control_net_name, with the hint image, at strength
    over the whole sampling (Apply ControlNet (Advanced), 0 to 1). Gives the pipe (its seed set to
    0, as the pack does) and both conditionings. scale_soft_weights below 1 (Advanced-ControlNet's
    soft weights) is not built in and is an error."""
    category = LOADERS
    pipe: PIPE_LINE
    image: IMAGE
    control_net_name: str = Choice(lambda: folders.list_models("controlnet"), model_folder="controlnet")
    control_net: CONTROL_NET = None
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    scale_soft_weights: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    outputs = {"pipe": PIPE_LINE, "positive": CONDITIONING, "negative": CONDITIONING}
    comfy = ComfyAlias(("easy controlnetLoader",), optional=("control_net", "strength", "scale_soft_weights"))

    @classmethod
    def fingerprint(cls, control_net_name=None, **widgets):
        return folders.model_state("controlnet", control_net_name) if control_net_name else None

    def run(self):
        return easy_controlnet(self, 0.0, 1.0, _pipe_dict(self.pipe).get("images"))


class EasyControlnetLoaderAdvanced(Node):
    """easy controlnetLoader between start_percent and end_percent of the sampling, as Easy-Use's
    easy controlnetLoaderADV does; the pipe's images become the hint image, as in the pack."""
    category = LOADERS
    pipe: PIPE_LINE
    image: IMAGE
    control_net_name: str = Choice(lambda: folders.list_models("controlnet"), model_folder="controlnet")
    control_net: CONTROL_NET = None
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    scale_soft_weights: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    outputs = {"pipe": PIPE_LINE, "positive": CONDITIONING, "negative": CONDITIONING}
    comfy = ComfyAlias(("easy controlnetLoaderADV",), optional=("control_net", "strength", "start_percent",
                                                              "end_percent", "scale_soft_weights"))

    @classmethod
    def fingerprint(cls, control_net_name=None, **widgets):
        return folders.model_state("controlnet", control_net_name) if control_net_name else None

    def run(self):
        return easy_controlnet(self, self.start_percent, self.end_percent, self.image)


def _encoded_batch(image, vae, batch_size: int, input_name: str) -> dict:
    """An image encoded with the pipe's VAE and repeated batch_size times, as the pack's pipe
    nodes turn an image into the pipe's latent."""
    if vae is None:
        raise NodeInputError(input_name, "the pipe has no VAE to encode the image with")
    # core RepeatLatentBatch stops at 64; the pack repeats up to its loaders' batch_size, which the
    # plan's memory check cannot see here (it travels in the pipe), so the repeated batch is bounded
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1 \
            or image.shape[0] * batch_size > BATCH_MAX:
        raise NodeInputError(input_name, f"the pipe's batch_size {batch_size!r} repeats {image.shape[0]} image(s) "
                                         f"past a batch of {BATCH_MAX} (the loaders' batch_size limit)")
    samples = _core(VAEEncode, {"pixels": input_name}, pixels=image[..., :3], vae=vae)
    return _core(RepeatLatentBatch, {"amount": input_name}, samples=samples, amount=batch_size)


class EasyPreSampling(Node):
    """Put the sampler settings into a pipe, as Easy-Use's easy preSampling does: steps, cfg,
    sampler, scheduler, denoise and seed (the editor's control_after_generate follows it) go into
    the pipe for easy kSampler. image_to_latent (unless a 1x1 placeholder) is encoded with the
    pipe's VAE and repeated batch_size times (at most a batch of 4096) as the latent to start
    from; else `latent`, else the pipe's. The pack's extra schedulers (align_your_steps, gits) are not offered here."""
    category = "EasyUse/PreSampling"
    pipe: PIPE_LINE
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "normal")
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    seed: int = Int(0, min=0, max=SEED_MAX)
    image_to_latent: IMAGE = None
    latent: LATENT = None
    outputs = {"pipe": PIPE_LINE}
    comfy = ComfyAlias(("easy preSampling",), optional=("image_to_latent", "latent"))

    def run(self):
        return _presampled(self, {"denoise": self.denoise, "add_noise": "enabled"})


def _presampled(node, extra_settings: dict) -> dict:
    """The pipe as the pack's preSampling nodes give it: image_to_latent (unless a 1x1
    placeholder) encoded and repeated batch_size times, else `latent`, else the pipe's; the seed
    and the sampler settings (with extra_settings) in loader_settings."""
    pipe = _pipe_dict(node.pipe)
    settings = pipe.get("loader_settings") or {}
    samples, images = pipe.get("samples"), pipe.get("images")
    if node.image_to_latent is not None and tuple(node.image_to_latent.shape[1:3]) != (1, 1):
        samples = _encoded_batch(node.image_to_latent, pipe.get("vae"), settings.get("batch_size", 1),
                                 "image_to_latent")
        images = node.image_to_latent
    elif node.latent is not None:
        samples = node.latent
    show(value=[node.seed])
    return {**{k: pipe.get(k) for k in ("model", "positive", "negative", "vae", "clip")},
            "samples": samples, "images": images, "seed": node.seed,
            "loader_settings": {**settings, "steps": node.steps, "cfg": node.cfg, "sampler_name": node.sampler_name,
                                "scheduler": node.scheduler, **extra_settings}}


ADD_NOISE = ("enable (CPU)", "enable (GPU=A1111)", "disable")


class EasyPreSamplingAdvanced(Node):
    """Put advanced sampler settings into a pipe, as Easy-Use's easy preSamplingAdvanced does:
    as easy preSampling, with start_at_step / end_at_step, add_noise and
    return_with_leftover_noise instead of denoise; easy kSampler then samples as KSamplerAdvanced
    does. add_noise "enable (GPU=A1111)" (noise drawn on the GPU) is not built in: easy kSampler
    refuses it."""
    category = "EasyUse/PreSampling"
    pipe: PIPE_LINE
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "normal")
    start_at_step: int = Int(0, min=0, max=10000)
    end_at_step: int = Int(10000, min=0, max=10000)
    add_noise: str = Choice(ADD_NOISE, "enable (CPU)")
    seed: int = Int(0, min=0, max=SEED_MAX)
    return_with_leftover_noise: str = Choice(("disable", "enable"), "disable")
    image_to_latent: IMAGE = None
    latent: LATENT = None
    outputs = {"pipe": PIPE_LINE}
    comfy = ComfyAlias(("easy preSamplingAdvanced",), optional=("image_to_latent", "latent"))

    def run(self):
        return _presampled(self, {"start_step": self.start_at_step, "last_step": self.end_at_step, "denoise": 1.0,
                                  "add_noise": self.add_noise,
                                  "force_full_denoise": self.return_with_leftover_noise != "enable"})


def _sample_pipe(pipe: dict, settings: dict, model) -> dict:
    """The pipe's latent sampled as the pack's samplers do: with easy preSampling's settings as
    KSampler samples; with preSamplingAdvanced's (start / last step, add_noise, force_full_denoise)
    as KSamplerAdvanced samples, with the settings' denoise too (fullkSampler's widget; the
    pack's common_ksampler call is the same in both cases); with easy preSamplingCustom's,
    through its guider, sampler and sigmas (SamplerCustomAdvanced)."""
    from graphflow.sampling.pipeline import sample
    add_noise = settings.get("add_noise", "enabled")
    if add_noise == "enable (GPU=A1111)":
        raise NodeInputError("pipe", "add_noise \"enable (GPU=A1111)\" (noise drawn on the GPU) is not built in; "
                                     "use \"enable (CPU)\"")
    if "custom" in settings:  # easy preSamplingCustom's guider, sampler and sigmas
        from nodes.pack_nodes_easyuse_samplers import custom_sampled
        return custom_sampled(pipe, settings, model)[0]
    shared = {"model": model, "steps": settings["steps"], "cfg": settings["cfg"],
              "sampler_name": settings["sampler_name"], "scheduler": settings["scheduler"],
              "positive": pipe["positive"], "negative": pipe["negative"], "latent_image": pipe["samples"]}
    renamed = {"latent_image": "pipe", "positive": "pipe", "negative": "pipe"}
    stepped = "start_step" in settings or "last_step" in settings
    if not stepped and add_noise == "enabled":
        return _core(KSampler, renamed, seed=pipe["seed"], denoise=settings["denoise"], **shared)
    # the pack's common_ksampler(denoise, disable_noise, start_step, last_step, force_full_denoise):
    # easy preSamplingNoiseIn's pipe (its noise is in the latent already) takes KSampler's denoise
    # schedule without adding noise; preSamplingAdvanced's takes its steps of the schedule that
    # denoise makes (1 from easy kSampler, fullkSampler's widget otherwise), as KSamplerAdvanced
    # does at denoise 1
    steps = {"start_step": settings.get("start_step", 0), "end_step": settings.get("last_step", 10000),
             "return_with_leftover_noise": not settings.get("force_full_denoise", True)} if stepped else {}
    try:
        return sample(model, pipe["seed"], settings["steps"], settings["cfg"], settings["sampler_name"],
                      settings["scheduler"], pipe["positive"], pipe["negative"], pipe["samples"],
                      denoise=settings["denoise"], add_noise=stepped and add_noise != "disable",
                      callback=_reporter(), preview_every=max(1, settings["steps"] // 20), **steps)
    except NodeInputError as e:
        raise NodeInputError(renamed.get(e.input, e.input), str(e)) from None


IMAGE_OUTPUTS = ("Hide", "Preview", "Preview&Choose", "Save", "Hide&Save", "Sender", "Sender&Save", "None")
TILED_IMAGE_OUTPUTS = ("Hide", "Preview", "Save", "Hide&Save", "Sender", "Sender&Save", "None")  # samplerSimpleTiled's


def easy_ksample(node, tile_size: int | None = None, parts: dict | None = None,
                 sampler_settings: dict | None = None, model=None) -> tuple:
    """The pack's samplers' run: the pipe sampled (_sample_pipe), decoded with the pipe's VAE
    (in tile_size-pixel tiles when given) unless image_output is "None", shown or saved as
    image_output says; gives (pipe with the new samples, images and seed, images). parts
    (positive, negative, samples, vae, clip, seed) that are not None take the pipe's place, as
    easy fullkSampler's inputs and easy kSamplerInpainting's conditionings do; sampler_settings
    take the place of the pipe's for this sampling (fullkSampler's widgets) and are not kept;
    model, when given, is sampled with in place of node.model or the pipe's."""
    pipe = _pipe_dict(node.pipe)
    pipe = {**pipe, **{k: v for k, v in (parts or {}).items() if v is not None}}
    kept_settings = pipe.get("loader_settings") or {}
    settings = {**kept_settings, **(sampler_settings or {})}
    missing = [k for k in ("steps", "cfg", "sampler_name", "scheduler", "denoise") if k not in settings]
    if missing or pipe.get("seed") is None:
        raise NodeInputError("pipe", f"no sampler settings in the pipe ({', '.join(missing) or 'seed'}): "
                                     "connect it through easy preSampling first")
    for key in ("positive", "negative", "samples", "vae"):
        if pipe.get(key) is None:
            raise NodeInputError("pipe", f"the pipe has no {key}")
    if model is None:  # a model the caller patched (easy kSamplerDownscaleUnet) comes in its place
        model = node.model if node.model is not None else pipe.get("model")
    if model is None:
        raise NodeInputError("model", "neither connected nor in the pipe")
    latent = _sample_pipe(pipe, settings, model)
    images = decoded_and_shown(node, latent, pipe["vae"], tile_size)
    return {**pipe, "loader_settings": kept_settings, "samples": latent, "images": images, "samp_images": images,
            "seed": pipe["seed"]}, images


def decoded_and_shown(node, latent: dict, vae, tile_size: int | None = None):
    """The pack's samplers' images: the latent decoded with the pipe's VAE (in tile_size-pixel
    tiles when given) unless image_output is "None", then saved to the outputs folder as
    save_prefix ("Save" in image_output) or shown (not "Hide"); None when not decoded."""
    if node.image_output == "None":
        return None
    # the pack's decode_tiled overlaps tiles by 16 latent pixels (128); ours takes at most a quarter tile
    tiled = {} if tile_size is None else {"tiled": True, "tile_size": tile_size, "overlap": min(128, tile_size // 4)}
    images = _core(VAEDecode, {"samples": "pipe", "vae": "pipe", "tile_size": "tile_size"}, samples=latent, vae=vae,
                   **tiled)
    shown(node, images)
    return images


def shown(node, images) -> None:
    """The pack's samplers' images saved to the outputs folder as node.save_prefix ("Save" in
    node.image_output) or shown (not "Hide")."""
    if "Save" in node.image_output:
        _core(SaveImage, {"filename_prefix": "save_prefix"}, images=images, filename_prefix=node.save_prefix)
    elif node.image_output != "Hide":
        show(images=temp_pngs(images))


class EasyKSampler(Node):
    """Sample a pipe set up by easy preSampling, as Easy-Use's easy kSampler does: the pipe's
    model (or `model`), conditionings, latent, seed and settings through KSampler (the same
    latent as the core node gives; after easy preSamplingAdvanced, through KSamplerAdvanced),
    then decoded with the pipe's VAE. image_output: Preview shows the images, Save also saves
    them to the outputs folder as save_prefix (Hide&Save saves without a preview in the pack;
    here the saved files are listed too), Hide shows nothing, None does not decode (no image).
    Left out: Preview&Choose (the pack waits for the user to pick images; here all are kept, as
    Preview), Sender (previews; link_id's image receiver is not built in) and the pack's XY
    plot, LayerDiffusion and custom-sampler settings in the pipe. Gives the pipe with the new
    latent, images and seed, and the images."""
    category = "EasyUse/Sampler"
    output_node = True
    pipe: PIPE_LINE
    image_output: str = Choice(IMAGE_OUTPUTS, "Preview")
    link_id: int = Int(0, min=0, max=2 ** 63 - 1)
    save_prefix: str = Text("ComfyUI", file_name=True)
    model: MODEL = None
    outputs = {"pipe": PIPE_LINE, "image": IMAGE}
    comfy = ComfyAlias(("easy kSampler",), optional=("model",))

    def run(self):
        return easy_ksample(self)


class EasyKSamplerTiled(Node):
    """easy kSampler with the images decoded in tile_size-pixel tiles, as Easy-Use's easy
    kSamplerTiled does (VAE Decode (Tiled); the tiles overlap by 128 pixels, at most a quarter
    tile). Same image_output choices (less Preview&Choose, which the pack's tiled sampler does not
    offer) and left-out parts as easy kSampler."""
    category = "EasyUse/Sampler"
    output_node = True
    pipe: PIPE_LINE
    tile_size: int = Int(512, min=320, max=4096, step=64)
    image_output: str = Choice(TILED_IMAGE_OUTPUTS, "Preview")
    link_id: int = Int(0, min=0, max=2 ** 63 - 1)
    save_prefix: str = Text("ComfyUI", file_name=True)
    model: MODEL = None
    outputs = {"pipe": PIPE_LINE, "image": IMAGE}
    comfy = ComfyAlias(("easy kSamplerTiled",), optional=("model",))

    def run(self):
        return easy_ksample(self, self.tile_size)
