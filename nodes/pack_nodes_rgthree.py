"""rgthree-comfy's backend nodes beyond those in pack_nodes.py, under the pack's class names,
inputs and outputs: the Context pipe (Context, Context Big, Context Switch, Context Switch Big,
Context Merge, Context Merge Big), Any Switch, Display Int, SDXL Empty Latent Image, KSampler
Config, Image Inset Crop, Image or Latent Size, Power Prompt, Power Prompt - Simple and the SDXL
Power Prompts (Positive, Simple / Negative).

The pack's RGTHREE_CONTEXT is a dict holding the CONTEXT_FIELDS (None where unset); every
Context node reads and writes all of them, the small ones showing only the first eight."""

from __future__ import annotations

import re

from graphflow.api import ANY, CLIP, CONDITIONING, FLOAT, IMAGE, INT, LATENT, MASK, MODEL, STRING, VAE, Choice, \
    ComfyAlias, Float, Int, Node, NodeInputError, Text, folders, show, socket_type, warn
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from nodes.conditioning import CLIPEncode, CLIPEncodeSDXL
from nodes.controlnet import CONTROL_NET
from nodes.image import MAX_SIZE
from nodes.latent import EmptyLatent
from nodes.pack_nodes import _apply_lora, _core, image_or_latent_size, rgthree_lora_file

COMFY_PACK = "rgthree-comfy"  # the custom node pack this module's ComfyUI classes come from

RGTHREE_CONTEXT = socket_type("RGTHREE_CONTEXT", "#96a0ad",
                              "rgthree's context pipe: model, clip, vae, prompts, latent, seed, ... in one link")


# -- Context ----------------------------------------------------------------------------------

# The pack's context fields, in its order; the first eight are the small nodes'.
CONTEXT_FIELDS = ("model", "clip", "vae", "positive", "negative", "latent", "images", "seed", "steps",
                  "step_refiner", "cfg", "ckpt_name", "sampler", "scheduler", "clip_width", "clip_height",
                  "text_pos_g", "text_pos_l", "text_neg_g", "text_neg_l", "mask", "control_net", "denoise")
SMALL_FIELDS = CONTEXT_FIELDS[:8]
SMALL_OUTPUTS = {"CONTEXT": RGTHREE_CONTEXT, "MODEL": MODEL, "CLIP": CLIP, "VAE": VAE, "POSITIVE": CONDITIONING,
                 "NEGATIVE": CONDITIONING, "LATENT": LATENT, "IMAGE": IMAGE, "SEED": INT}
# checkpoint, sampler and scheduler names travel as text here (the pack types them as its lists of names)
BIG_OUTPUTS = {**SMALL_OUTPUTS, "STEPS": INT, "STEP_REFINER": INT, "CFG": FLOAT, "CKPT_NAME": STRING,
               "SAMPLER": STRING, "SCHEDULER": STRING, "CLIP_WIDTH": INT, "CLIP_HEIGHT": INT, "TEXT_POS_G": STRING,
               "TEXT_POS_L": STRING, "TEXT_NEG_G": STRING, "TEXT_NEG_L": STRING, "MASK": MASK,
               "CONTROL_NET": CONTROL_NET, "DENOISE": FLOAT}


def new_context(base: dict | None, **given) -> dict:
    """A context of every field: the value given when not None, else the base context's."""
    base = base or {}
    return {key: given[key] if given.get(key) is not None else base.get(key) for key in CONTEXT_FIELDS}


def context_empty(ctx) -> bool:
    """The pack's test for a context that counts as absent: none, or every field None."""
    return not ctx or all(v is None for v in ctx.values())


def merged_context(contexts: list) -> dict:
    """Each field from the last context that has it set."""
    return {key: next((c[key] for c in reversed(contexts) if c and c.get(key) is not None), None)
            for key in CONTEXT_FIELDS}


def context_outputs(ctx, fields=CONTEXT_FIELDS) -> tuple:
    """The context itself, then its fields (None where unset), as the pack's nodes output them."""
    return (ctx, *((ctx or {}).get(key) for key in fields))


class RgthreeContext(Node):
    """Bundle a model, text encoder, VAE, prompts, latent, images and seed into one context link,
    as rgthree's Context does: each input that is connected replaces base_ctx's field, the others
    (all 23 of Context Big's too) are passed on from base_ctx. Gives the context and its first
    eight fields."""
    category = "utils"
    base_ctx: RGTHREE_CONTEXT = None
    model: MODEL = None
    clip: CLIP = None
    vae: VAE = None
    positive: CONDITIONING = None
    negative: CONDITIONING = None
    latent: LATENT = None
    images: IMAGE = None
    seed: INT = None
    outputs = SMALL_OUTPUTS
    fields = SMALL_FIELDS  # the fields given as outputs after the context
    comfy = ComfyAlias(("Context (rgthree)",))

    def run(self):
        ctx = new_context(self.base_ctx, **{key: getattr(self, key, None) for key in CONTEXT_FIELDS})
        return context_outputs(ctx, self.fields)


class RgthreeContextBig(RgthreeContext):
    """Bundle all 23 fields of rgthree's context into one link, as its Context Big does: each
    input that is connected replaces base_ctx's field, the others are passed on. Checkpoint,
    sampler and scheduler names are text links here. Gives the context and every field."""
    steps: INT = None
    step_refiner: INT = None
    cfg: FLOAT = None
    ckpt_name: STRING = None
    sampler: STRING = None
    scheduler: STRING = None
    clip_width: INT = None
    clip_height: INT = None
    text_pos_g: STRING = None
    text_pos_l: STRING = None
    text_neg_g: STRING = None
    text_neg_l: STRING = None
    mask: MASK = None
    control_net: CONTROL_NET = None
    denoise: FLOAT = None
    outputs = BIG_OUTPUTS
    fields = CONTEXT_FIELDS
    comfy = ComfyAlias(("Context Big (rgthree)",))


class RgthreeContextSwitch(Node):
    """Pass on the first context (ctx_01 first) that is connected and not empty, as rgthree's
    Context Switch does; a context from a muted node counts as not connected, so muting a branch
    switches to the next. Gives the context and its first eight fields (all None when none is
    set). This node takes five contexts (the pack's editor may add more)."""
    category = "utils"
    ctx_01: RGTHREE_CONTEXT = None
    ctx_02: RGTHREE_CONTEXT = None
    ctx_03: RGTHREE_CONTEXT = None
    ctx_04: RGTHREE_CONTEXT = None
    ctx_05: RGTHREE_CONTEXT = None
    outputs = SMALL_OUTPUTS
    fields = SMALL_FIELDS
    comfy = ComfyAlias(("Context Switch (rgthree)",))

    def contexts(self) -> list:
        return [getattr(self, f"ctx_0{i}") for i in range(1, 6)]

    def run(self):
        ctx = next((c for c in self.contexts() if not context_empty(c)), None)
        return context_outputs(ctx, self.fields)


class RgthreeContextSwitchBig(RgthreeContextSwitch):
    """Pass on the first context (ctx_01 first) that is connected and not empty, as rgthree's
    Context Switch Big does; a context from a muted node counts as not connected. Gives the
    context and all of its fields (all None when none is set)."""
    outputs = BIG_OUTPUTS
    fields = CONTEXT_FIELDS
    comfy = ComfyAlias(("Context Switch Big (rgthree)",))


class RgthreeContextMerge(RgthreeContextSwitch):
    """Merge the connected contexts into a new one, as rgthree's Context Merge does: each field
    comes from the last context (ctx_05 last) that has it set. Gives the new context and its
    first eight fields."""
    comfy = ComfyAlias(("Context Merge (rgthree)",))

    def run(self):
        ctx = merged_context([c for c in self.contexts() if not context_empty(c)])
        return context_outputs(ctx, self.fields)


class RgthreeContextMergeBig(RgthreeContextMerge):
    """Merge the connected contexts into a new one, as rgthree's Context Merge Big does: each
    field comes from the last context (ctx_05 last) that has it set. Gives the new context and
    all of its fields."""
    outputs = BIG_OUTPUTS
    fields = CONTEXT_FIELDS
    comfy = ComfyAlias(("Context Merge Big (rgthree)",))


# -- switches and small utilities ---------------------------------------------------------------

def switch_empty(value) -> bool:
    """The Any Switch's test: nothing, or an empty context (a dict with model and clip keys)."""
    if isinstance(value, dict) and "model" in value and "clip" in value:
        return context_empty(value)
    return value is None


class RgthreeAnySwitch(Node):
    """Pass on the first input (any_01 first) that is connected and not None, as rgthree's Any
    Switch does: an input whose source node is muted counts as not connected, one through a
    bypassed node gets what the bypass passes, and an empty context counts as nothing. None when
    no input has a value. This node takes five inputs (the pack's editor may add more)."""
    category = "utils"
    any_01: ANY = None
    any_02: ANY = None
    any_03: ANY = None
    any_04: ANY = None
    any_05: ANY = None
    outputs = {"*": ANY}
    comfy = ComfyAlias(("Any Switch (rgthree)",))

    def run(self):
        return next((v for v in (self.any_01, self.any_02, self.any_03, self.any_04, self.any_05)
                     if not switch_empty(v)), None)


class RgthreeDisplayInt(Node):
    """Show a linked integer in the editor, as rgthree's Display Int does."""
    category = "utils"
    output_node = True
    input: INT
    comfy = ComfyAlias(("Display Int (rgthree)",))

    def run(self):
        show(text=[self.input])


# The pack's resolutions, exactly as its list shows them (the spaces included)
SDXL_DIMENSIONS = ("1536 x 640   (landscape)", "1344 x 768   (landscape)", "1216 x 832   (landscape)",
                   "1152 x 896   (landscape)", "1024 x 1024  (square)", " 896 x 1152  (portrait)",
                   " 832 x 1216  (portrait)", " 768 x 1344  (portrait)", " 640 x 1536  (portrait)")


class RgthreeSDXLEmptyLatentImage(Node):
    """A blank latent batch in one of SDXL's trained resolutions, as rgthree's SDXL Empty Latent
    Image does (EmptyLatentImage's latent), with the size times clip_scale (cut to whole pixels)
    for an SDXL text encoder's width and height."""
    category = "latent"
    dimensions: str = Choice(SDXL_DIMENSIONS, "1024 x 1024  (square)")
    clip_scale: float = Float(2.0, min=1.0, max=10.0, step=0.5)
    batch_size: int = Int(1, min=1, max=64, resource="batch")
    outputs = {"LATENT": LATENT, "CLIP_WIDTH": INT, "CLIP_HEIGHT": INT}
    comfy = ComfyAlias(("SDXL Empty Latent Image (rgthree)",))

    def run(self):
        width, _, height = self.dimensions.split()[:3]
        width, height = int(width), int(height)
        latent = _core(EmptyLatent, width=width, height=height, batch_size=self.batch_size)
        return latent, int(width * self.clip_scale), int(height * self.clip_scale)


class RgthreeKSamplerConfig(Node):
    """Set a sampler's settings in one place, as rgthree's KSampler Config does: passes the total
    steps, the step the refiner takes over at, the CFG scale and the sampler and scheduler
    names on to link into samplers."""
    category = "sampling"
    steps_total: int = Int(30, min=1, max=MAX_SIZE)
    refiner_step: int = Int(24, min=1, max=MAX_SIZE)
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.5)
    sampler_name: str = Choice(SAMPLER_NAMES, SAMPLER_NAMES[0])  # the pack's lists have no default: the first
    scheduler: str = Choice(SCHEDULER_NAMES, SCHEDULER_NAMES[0])
    outputs = {"STEPS": INT, "REFINER_STEP": INT, "CFG": FLOAT, "SAMPLER": STRING, "SCHEDULER": STRING}
    comfy = ComfyAlias(("KSampler Config (rgthree)",))

    def run(self):
        return self.steps_total, self.refiner_step, self.cfg, self.sampler_name, self.scheduler


class RgthreeImageInsetCrop(Node):
    """Crop an image batch by insets from each side, as rgthree's Image Inset Crop does: in
    pixels, or in percent of the width (left, right) or height (top, bottom); each inset is then
    cut down to a multiple of 8. Insets that meet or cross are an error."""
    category = "image/transform"
    image: IMAGE
    measurement: str = Choice(("Pixels", "Percentage"), "Pixels")
    left: int = Int(0, min=0, max=MAX_SIZE, step=8)
    right: int = Int(0, min=0, max=MAX_SIZE, step=8)
    top: int = Int(0, min=0, max=MAX_SIZE, step=8)
    bottom: int = Int(0, min=0, max=MAX_SIZE, step=8)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Image Inset Crop (rgthree)",))

    def run(self):
        _, height, width, _ = self.image.shape
        insets = {"left": self.left, "right": self.right, "top": self.top, "bottom": self.bottom}
        if self.measurement == "Percentage":  # the pack's int(side - side * (100 - p) / 100)
            sides = {"left": width, "right": width, "top": height, "bottom": height}
            insets = {k: int(sides[k] - sides[k] * (100 - v) / 100) for k, v in insets.items()}
        insets = {k: v // 8 * 8 for k, v in insets.items()}
        if not any(insets.values()):
            return self.image
        x0, x1 = insets["left"], width - insets["right"]
        y0, y1 = insets["top"], height - insets["bottom"]
        # the pack lets insets that exactly meet through (an empty image); a sampler can't use one
        if y0 >= y1:
            raise NodeInputError("top", f"top ({y0}) and bottom ({insets['bottom']}) insets leave nothing of the "
                                        f"{height} pixels high image (after cutting them to multiples of 8)")
        if x0 >= x1:
            raise NodeInputError("left", f"left ({x0}) and right ({insets['right']}) insets leave nothing of the "
                                         f"{width} pixels wide image (after cutting them to multiples of 8)")
        return self.image[:, y0:y1, x0:x1, :]


class RgthreeImageOrLatentSize(Node):
    """The width and height of an image batch, a mask batch or a latent (its size times 8), as
    rgthree's Image or Latent Size gives them."""
    category = "image"
    input: ANY
    outputs = {"WIDTH": INT, "HEIGHT": INT}
    comfy = ComfyAlias(("Image or Latent Size (rgthree)",))

    def run(self):
        size = image_or_latent_size(self.input)
        if size is None:
            raise NodeInputError("input", f"expected an image, mask or latent, got {type(self.input).__name__}")
        return size


# -- Power Prompt -------------------------------------------------------------------------------

LORA_TAG = re.compile(r"<lora:([^:>]*?)(?::(-?\d*(?:\.\d*)?))?>")  # the pack's <lora:name:strength>


def lora_tags(prompt: str) -> tuple[str, list[tuple[str, float]]]:
    """The prompt without its <lora:name:strength> tags, and the tags' (name, strength); a
    missing strength is 1."""
    tags = [(name, float(strength) if strength not in ("", None) else 1.0)
            for name, strength in LORA_TAG.findall(prompt)]
    return LORA_TAG.sub("", prompt), tags


def apply_lora_tags(model, clip, tags: list[tuple[str, float]], input_name: str = "prompt"):
    """The model and text encoder with each tag's LoRA applied in turn, as LoraLoader applies it
    (strength 0 skipped; a name matching no file, as the pack matches names, skipped with a
    warning)."""
    names = folders.list_models("loras") if tags else []
    for name, strength in tags:
        if strength == 0:
            continue
        found = rgthree_lora_file(name, names)
        if found is None:
            warn(f"no LoRA file matches <lora:{name}>: skipped, as the pack skips it")
            continue
        model, clip = _apply_lora(model, clip, found, strength, strength, input_name)
    return model, clip


def encode_prompt(clip, text: str):
    """CLIPTextEncode's conditioning of the text (None without a text encoder)."""
    return None if clip is None else _core(CLIPEncode, clip=clip, text=text)


class RgthreePowerPromptSimple(Node):
    """Encode a prompt, as rgthree's Power Prompt - Simple does: CLIPTextEncode's conditioning
    when a text encoder is connected (else none), and the prompt as text. Its insert_embedding
    and insert_saved lists are the pack's editor helpers that type into the prompt; their values
    are kept but do nothing here. As the pack's editor does, {a|b} choices and comments in a
    saved editor graph's prompt are resolved when it is read."""
    category = "conditioning"
    prompt: str = Text("", multiline=True, dynamic_prompts=True)
    opt_clip: CLIP = None
    insert_embedding: str = Text("CHOOSE")
    insert_saved: str = Text("CHOOSE")
    outputs = {"CONDITIONING": CONDITIONING, "TEXT": STRING}
    comfy = ComfyAlias(("Power Prompt - Simple (rgthree)",), ignore=("values_insert_saved",))

    def run(self):
        return encode_prompt(self.opt_clip, self.prompt), self.prompt


class RgthreePowerPrompt(Node):
    """Encode a prompt and apply the LoRAs it names, as rgthree's Power Prompt does: with a model
    and a text encoder connected, each <lora:name:strength> tag (strength 1 when left out, 0
    skipped) applies that LoRA to both, as LoraLoader does, its name matched as the pack matches
    (without extension or folder, then any file containing it; none matching is skipped with a
    warning), and the tags are taken out of the prompt before it is encoded. insert_lora
    "DISABLE LORAS", or a model or text encoder left unconnected, takes the tags out without
    applying them (the pack's SDXL Power Prompt - Positive keeps them then). Gives the
    conditioning (none without a text encoder), the model, the text encoder and the prompt's
    text. The insert_lora, insert_embedding and insert_saved lists are otherwise the pack's
    editor helpers that type into the prompt. As the pack's editor does, {a|b} choices and
    comments in a saved editor graph's prompt are resolved when it is read."""
    category = "conditioning"
    prompt: str = Text("", multiline=True, dynamic_prompts=True)
    opt_model: MODEL = None
    opt_clip: CLIP = None
    insert_lora: str = Text("CHOOSE")
    insert_embedding: str = Text("CHOOSE")
    insert_saved: str = Text("CHOOSE")
    outputs = {"CONDITIONING": CONDITIONING, "MODEL": MODEL, "CLIP": CLIP, "TEXT": STRING}
    comfy = ComfyAlias(("Power Prompt (rgthree)",), ignore=("values_insert_saved",))

    @classmethod
    def fingerprint(cls, prompt="", insert_lora="CHOOSE", **widgets):
        if insert_lora == "DISABLE LORAS" or "<lora:" not in prompt:
            return None
        names = folders.list_models("loras")
        found = [rgthree_lora_file(name, names) for name, _ in lora_tags(prompt)[1]]
        return tuple(folders.model_state("loras", f) for f in found if f is not None)

    def run(self):
        prompt, model, clip = self.prompt, self.opt_model, self.opt_clip
        if self.insert_lora == "DISABLE LORAS":
            prompt, _ = lora_tags(prompt)
        elif model is not None and clip is not None:
            prompt, tags = lora_tags(prompt)
            model, clip = apply_lora_tags(model, clip, tags)
        elif LORA_TAG.search(prompt):  # the pack's log says the tags stay, but its code takes them out
            prompt, _ = lora_tags(prompt)
            warn("the prompt has <lora:...> tags, but no model and text encoder are connected: not applied")
        return encode_prompt(clip, prompt), model, clip, prompt


def sdxl_conditioning(node, clip, width, height, prompt_g: str, prompt_l: str):
    """CLIPTextEncodeSDXL's conditioning, as rgthree's SDXL Power Prompts make it: at the
    linked clip width and height, target sizes above 0 (else the clip size) and crops above 0
    (else 0)."""
    target_width = node.target_width if node.target_width > 0 else width
    target_height = node.target_height if node.target_height > 0 else height
    return _core(CLIPEncodeSDXL, clip=clip, width=width, height=height, crop_w=max(node.crop_width, 0),
                    crop_h=max(node.crop_height, 0), target_width=target_width, target_height=target_height,
                    text_g=prompt_g, text_l=prompt_l)


def sdxl_prompt_conditioning(node, clip, prompt_g: str, prompt_l: str):
    """Both SDXL Power Prompts' conditioning, as the pack's get_conditioning makes it: none
    without a text encoder; CLIPTextEncodeSDXL when both clip sizes are linked (none, with a
    warning, when the text encoder can't encode SDXL's way); else CLIPTextEncode of prompt_g and
    prompt_l on two lines."""
    if clip is None:
        return None
    if not (node.opt_clip_width and node.opt_clip_height):
        return encode_prompt(clip, f"{prompt_g}\n{prompt_l}")
    try:
        return sdxl_conditioning(node, clip, node.opt_clip_width, node.opt_clip_height, prompt_g, prompt_l)
    except (NodeInputError, ValueError, KeyError, TypeError) as e:
        warn(f"the text encoder can't encode SDXL's way ({e}): no conditioning, as the pack gives none")
        return None


class RgthreeSDXLPowerPromptPositive(Node):
    """Encode an SDXL prompt and apply the LoRAs it names, as rgthree's SDXL Power Prompt -
    Positive does: the <lora:name:strength> tags of prompt_g and prompt_l are applied and taken
    out as Power Prompt does (but kept, unapplied, without a model and a text encoder); then,
    with a text encoder, CLIPTextEncodeSDXL at opt_clip_width x opt_clip_height (target and crop
    sizes of -1: the clip size and no crop) when both are linked, else CLIPTextEncode of
    prompt_g and prompt_l on two lines. As in the pack, a text encoder that can't encode SDXL's
    way gives no conditioning (with a warning). Gives the conditioning, model, text encoder and
    both texts. The insert lists are the pack's editor helpers; its editor hides the target and
    crop sizes."""
    category = "conditioning"
    prompt_g: str = Text("", multiline=True, dynamic_prompts=True)
    prompt_l: str = Text("", multiline=True, dynamic_prompts=True)
    opt_model: MODEL = None
    opt_clip: CLIP = None
    opt_clip_width: INT = None
    opt_clip_height: INT = None
    insert_lora: str = Text("CHOOSE")
    insert_embedding: str = Text("CHOOSE")
    insert_saved: str = Text("CHOOSE")
    target_width: int = Int(-1, min=-1, max=MAX_SIZE)
    target_height: int = Int(-1, min=-1, max=MAX_SIZE)
    crop_width: int = Int(-1, min=-1, max=MAX_SIZE)
    crop_height: int = Int(-1, min=-1, max=MAX_SIZE)
    outputs = {"CONDITIONING": CONDITIONING, "MODEL": MODEL, "CLIP": CLIP, "TEXT_G": STRING, "TEXT_L": STRING}
    comfy = ComfyAlias(("SDXL Power Prompt - Positive (rgthree)",), ignore=("values_insert_saved",),
                       force_input=("opt_clip_width", "opt_clip_height"))

    @classmethod
    def fingerprint(cls, prompt_g="", prompt_l="", **widgets):
        return RgthreePowerPrompt.fingerprint(prompt=prompt_g + prompt_l, **widgets)

    def run(self):
        prompt_g, prompt_l, model, clip = self.prompt_g, self.prompt_l, self.opt_model, self.opt_clip
        if self.insert_lora == "DISABLE LORAS":
            prompt_g, prompt_l = lora_tags(prompt_g)[0], lora_tags(prompt_l)[0]
        elif model is not None and clip is not None:
            (prompt_g, tags_g), (prompt_l, tags_l) = lora_tags(prompt_g), lora_tags(prompt_l)
            model, clip = apply_lora_tags(model, clip, tags_g + tags_l, "prompt_g")
        elif LORA_TAG.search(prompt_g + prompt_l):
            warn("the prompts have <lora:...> tags, but no model and text encoder are connected: "
                 "they stay in the text")
        return sdxl_prompt_conditioning(self, clip, prompt_g, prompt_l), model, clip, prompt_g, prompt_l


class RgthreeSDXLPowerPromptSimple(Node):
    """Encode an SDXL prompt, as rgthree's SDXL Power Prompt - Simple / Negative does (as its
    Positive, without LoRAs): with a text encoder, CLIPTextEncodeSDXL at opt_clip_width x
    opt_clip_height (target and crop sizes of -1: the clip size and no crop) when both are
    linked, else CLIPTextEncode of prompt_g and prompt_l on two lines; a text encoder that can't
    encode SDXL's way gives no conditioning (with a warning). Gives the conditioning and both
    texts. The insert lists are the pack's editor helpers; its editor hides the target and crop
    sizes. As the pack's editor does, {a|b} choices and comments in a saved editor graph's
    prompts are resolved when it is read."""
    category = "conditioning"
    prompt_g: str = Text("", multiline=True, dynamic_prompts=True)
    prompt_l: str = Text("", multiline=True, dynamic_prompts=True)
    opt_clip: CLIP = None
    opt_clip_width: INT = None
    opt_clip_height: INT = None
    insert_embedding: str = Text("CHOOSE")
    insert_saved: str = Text("CHOOSE")
    target_width: int = Int(-1, min=-1, max=MAX_SIZE)
    target_height: int = Int(-1, min=-1, max=MAX_SIZE)
    crop_width: int = Int(-1, min=-1, max=MAX_SIZE)
    crop_height: int = Int(-1, min=-1, max=MAX_SIZE)
    outputs = {"CONDITIONING": CONDITIONING, "TEXT_G": STRING, "TEXT_L": STRING}
    comfy = ComfyAlias(("SDXL Power Prompt - Simple / Negative (rgthree)",), ignore=("values_insert_saved",),
                       force_input=("opt_clip_width", "opt_clip_height"))

    def run(self):
        return sdxl_prompt_conditioning(self, self.opt_clip, self.prompt_g, self.prompt_l), self.prompt_g, \
            self.prompt_l
