"""TinyTerra's ComfyUI_tinyterraNodes (ttN) built in under the pack's class names, inputs, defaults
and outputs (read from TinyTerra/ComfyUI_tinyterraNodes: ttNpy/tinyterraNodes.py at
1a90e43480563e9202f7f5482629b1d444e805ed, the pack's 2.0.9; the legacy pipeIN / pipeOUT from
ttNpy/ttNlegacyNodes.py at 8c39f9e230dbab18b7f7bae2f54a4480363dc643). They call our core loaders,
LoRA, text encoding, sampling, VAE and upscale-model code.

Held here: ttN pipeLoader_v2, pipeKSampler_v2, pipeKSamplerAdvanced_v2, pipeLoaderSDXL_v2,
pipeKSamplerSDXL_v2, tinyLoader, conditioning, KSampler_v2 (the pipe loaders and samplers);
pipeIN, pipeOUT, pipeEDIT, pipe2BASIC, pipeLoraStack, pipeEncodeConcat (pipe plumbing); text,
textDebug, concat, text3BOX_3WAYconcat, text7BOX_concat, textCycleLine, int, float, seed,
debugInput, hiresfixScale, imageOutput, textOutput and multiModelMerge (the last ones in
nodes/pack_nodes_ttn_utils.py).

The pack's PIPE_LINE is a dict (model, positive, negative, vae, clip, samples, images, seed,
loader_settings), the keys Easy-Use's pipe also has: the socket is shared with
nodes/pack_nodes_easyuse_pipe.py. PIPE_LINE_SDXL adds refiner_model, refiner_positive,
refiner_negative and refiner_clip.

Left out: the advanced xyPlot and its advPlot helper nodes (the samplers refuse a connected
adv_xyPlot), imageREMBG (needs the rembg models), pipe2DETAILER (Impact Pack's detectors), the
legacy non-_v2 loaders and samplers (their widget layouts differ), the noodle-soup-prompts
expansion of __term__ words (the pack downloads its word list; here such words are encoded as
written), the %date% / %input% patterns of save_prefix and output_path (refused by name) and the workflow in WEBP
files (PNGs carry it). An API prompt that leaves out a sampler's optional seed samples with 0 (the
pack: the pipe's seed)."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

from graphflow.api import CLIP, CONDITIONING, IMAGE, INT, LATENT, MODEL, STRING, VAE, Bool, Choice, \
    ComfyAlias, Estimate, Float, Int, Node, NodeInputError, Size, Text, check_run_memory, folders, run_limits, \
    safe_join, show, socket_type, subfolder_name, warn
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from nodes.conditioning import CLIPEncodeSDXL, CLIPEncodeSDXLRefiner, ConditioningZeroOut, concat_conditioning
from nodes.controlnet import LoadControlNet
from nodes.efficiency_nodes import BAKED_VAE, CONTROL_NET_STACK, LORA_STACK, _apply_cnet_stack, _checkpoint_choices, \
    _lora_rows, _set_clip_skip, _state, _vae_choices
from nodes.image import _next_counter, _png_metadata, _write_at, temp_pngs
from nodes.latent import _upscale
from nodes.loaders import DEMO_CHECKPOINT, LoadCheckpoint, LoadVAE
from nodes.pack_nodes import _apply_lora, _core, _lora_choices
from nodes.pack_nodes_adv_clip import TOKEN_NORMALIZATIONS, WEIGHT_INTERPRETATIONS, advanced_encode
from nodes.pack_nodes_easyuse_pipe import PIPE_LINE
from nodes.pack_nodes_impact import BASIC_PIPE
from nodes.sampling import SEED_MAX, _sample
from nodes.vae import VAEDecode, VAEEncode

COMFY_PACK = "ComfyUI_tinyterraNodes"  # the custom node pack this module's ComfyUI classes come from

PIPE_LINE_SDXL = socket_type("PIPE_LINE_SDXL", "#7e57c2", "tinyterraNodes' SDXL pipe (a dict: the pipe's keys and "
                                                          "the refiner's model, conditionings and CLIP)")
ADV_XYPLOT = socket_type("ADV_XYPLOT", "#9e9e9e", "tinyterraNodes' advanced xyPlot settings (not built in)")

MAX_RESOLUTION = 16384  # ComfyUI's, the pack's widget bound
CUSTOM_ASPECT = "width x height [custom]"
SD_ASPECTS = (CUSTOM_ASPECT, "512 x 512 [S] 1:1", "768 x 768 [S] 1:1", "910 x 910 [S] 1:1",
              "512 x 682 [P] 3:4", "512 x 768 [P] 2:3", "512 x 910 [P] 9:16",
              "682 x 512 [L] 4:3", "768 x 512 [L] 3:2", "910 x 512 [L] 16:9",
              "512 x 1024 [P] 1:2", "1024 x 512 [L] 2:1", "1024 x 1024 [S] 1:1")
SDXL_ASPECTS = (CUSTOM_ASPECT, "1024 x 1024 [S] 1:1",
                "640 x 1536 [P] 9:21", "704 x 1472 [P] 9:19", "768 x 1344 [P] 9:16", "768 x 1216 [P] 5:8",
                "832 x 1216 [P] 2:3", "896 x 1152 [P] 3:4",
                "1536 x 640 [L] 21:9", "1472 x 704 [L] 19:9", "1344 x 768 [L] 16:9", "1216 x 768 [L] 8:5",
                "1216 x 832 [L] 3:2", "1152 x 896 [L] 4:3")
TINY_ASPECTS = SD_ASPECTS[:10] + ("1024 x 1024 [S] 1:1", "512 x 1024 [P] 1:2", "1024 x 512 [L] 2:1") + SDXL_ASPECTS[2:]
# The SDXL loader's conditioning / target sizes: custom, or a multiple of the empty latent's
# (the pack's own spelling of the sixth kept: saves carry it)
RELATIVE_ASPECTS = (CUSTOM_ASPECT, "1x Empty Latent Aspect", "2x Empty Latent Aspect", "3x Empty Latent Aspect",
                    "4x Empty Latent Aspect", "5x Empty Latent Aspect", "6x Empty Latent ASpect",
                    "7x Empty Latent Aspect", "8x Empty Latent Aspect")
CUSTOM_SCHEDULERS = ("AYS SD1", "AYS SDXL", "AYS SVD", "GITS SD1")
TTN_SCHEDULERS = SCHEDULER_NAMES + CUSTOM_SCHEDULERS
UPSCALE_METHODS = ("None", *(f"[latent] {m}" for m in ("nearest-exact", "bilinear", "area", "bicubic", "lanczos",
                                                        "bislerp")),
                   *(f"[hiresFix] {m}" for m in ("nearest-exact", "bilinear", "area", "bicubic", "lanczos", "bislerp")))
RESCALES = ("by percentage", "to Width/Height", "to longer side - maintain aspect", "None")
CROP_METHODS = ("disabled", "center")
IMAGE_OUTPUTS = ("Hide", "Preview", "Save", "Hide/Save", "Disabled")
OUTPUT_FILETYPES = ("png", "jpg", "jpeg", "tiff", "tif", "webp", "bmp")
PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "tiff": "TIFF", "tif": "TIFF", "webp": "WEBP",
               "bmp": "BMP"}
SAMPLING_CHOICES = ("Default", "eps", "v_prediction", "lcm", "x0")
LORA_WEIGHT = re.compile(r"[-0-9.]+")  # a tag's weight, as the pack's tag pattern reads it
LORA_STACK_ROWS = 20  # pipeLoraStack's rows
PIPE_KEYS = ("model", "positive", "negative", "vae", "clip", "samples", "images", "seed")
DECODED_BYTES = 3 * 4  # per pixel of a decoded image (fp32 RGB)


# -- shared loading and encoding ------------------------------------------------------------------

def aspect_size(aspect: str, width: int, height: int, input_name: str = "empty_latent_aspect") -> tuple[int, int]:
    """The pixel size an aspect choice names ("768 x 512 [L] 3:2"), or width x height for the
    custom entry."""
    if not aspect or aspect == CUSTOM_ASPECT:
        return width, height
    try:
        w, h = aspect.replace(" ", "").split("[")[0].split("x")
        return int(w), int(h)
    except ValueError:
        raise NodeInputError(input_name, f"expected \"W x H [..]\" or {CUSTOM_ASPECT!r}, got {aspect!r}") from None


def _loader_estimate(widgets: dict) -> Estimate:
    try:
        width, height = aspect_size(widgets["empty_latent_aspect"], widgets["empty_latent_width"],
                                    widgets["empty_latent_height"])
        batch = int(widgets.get("batch_size", 1))
        return Estimate(Size(batch, height, width), memory=batch * height * width * DECODED_BYTES)
    except (KeyError, NodeInputError, TypeError, ValueError, AttributeError):
        return Estimate(None)


def _loader_fingerprint(ckpt_name, vae_name, loras=None, refiner_ckpt_name="None"):
    """The loaders' files as they are on disk: a changed file is loaded again, not taken from the cache."""
    return (_state("checkpoints", ckpt_name), vae_name != BAKED_VAE and _state("vae", vae_name),
            refiner_ckpt_name != "None" and _state("checkpoints", refiner_ckpt_name), _tags_state(loras))


def _tags_state(loras) -> tuple | None:
    """The files of the loras text's tags as they are on disk (None: no such file yet), so that a
    LoRA written or changed after a run is applied, not the cached result kept."""
    if not isinstance(loras, str):
        return None  # linked (the links' own fingerprints count) or absent
    try:
        return tuple(_state("loras", parsed[0]) for _, parsed in _parsed_tags(loras) if parsed is not None)
    except NodeInputError:
        return None  # run() names the problem


def _empty_latent(model, aspect: str, width: int, height: int, batch_size: int) -> dict:
    """The pack's empty latent: zeros with 4 channels, or for a 16-channel (flow) model ones times
    0.0609, as the pack makes FLUX / SD3 latents."""
    import torch
    width, height = aspect_size(aspect, width, height)
    fmt = getattr(model, "latent_format", None)
    if getattr(fmt, "channels", 4) == 16:
        return {"samples": torch.ones(batch_size, 16, height // 8, width // 8) * 0.0609}
    return {"samples": torch.zeros(batch_size, 4, height // 8, width // 8)}


def _tag_texts(text: str):
    """The text of each <lora:...> tag, as the pack's `<lora:[^>]+>` finds them, in one pass
    (that pattern backtracks over a long text of unclosed tags)."""
    start = text.find("<lora:")
    while start != -1:
        end = text.find(">", start + 6)
        if end == -1:
            return  # no tag closes after here
        if end == start + 6:  # "<lora:>" is no tag: look again from the next character
            start = text.find("<lora:", start + 1)
            continue
        yield text[start:end + 1]
        start = text.find("<lora:", end + 1)


def _well_formed(tag: str) -> bool:
    """The pack's `^<lora:.*?:[-0-9.]+(:[-0-9.]+)*>$`, checked without backtracking: one line, and
    the part after the last ':' a weight (the name takes everything before the trailing weights)."""
    inner = tag[6:-1]
    return "\n" not in inner and ":" in inner and LORA_WEIGHT.fullmatch(inner.rsplit(":", 1)[1]) is not None


def _parsed_tags(text: str):
    """(tag, (name, model strength, clip strength) or None when malformed) for each tag."""
    for tag in _tag_texts(text or ""):
        if not _well_formed(tag):
            yield tag, None
            continue
        parts = tag[6:-1].split(":")
        try:
            weights = [float(p) for p in parts[1:3]]
        except ValueError:
            raise NodeInputError("loras", f"{tag[:200]}: the weights are not numbers") from None
        yield tag, (parts[0], weights[0], weights[1] if len(weights) > 1 else weights[0])


def lora_tags(text: str) -> list[tuple[str, float, float]]:
    """(name, model strength, clip strength) of each well-formed <lora:name:weight[:clip weight]>
    in the text, as the pack reads them (the clip weight defaults to the weight); malformed ones
    are skipped with a warning, as the pack skips them."""
    tags = []
    for tag, parsed in _parsed_tags(text):
        if parsed is None:
            warn(f"skipping malformed LoRA tag {tag[:200]}")
        else:
            tags.append(parsed)
    return tags


def _with_loras(model, clip, stack, loras_text: str | None, stack_input: str = "optional_lora_stack"):
    """The pack's LoRAs in its order: the LORA_STACK's rows, then the <lora:..> tags of the loras
    text (a tag naming no file of models/loras is skipped with a warning, as the pack skips it);
    both strengths 0 leave a LoRA out, as the pack does."""
    try:
        rows = [(*r, stack_input) for r in _lora_rows(stack)]
    except NodeInputError as e:
        raise NodeInputError(stack_input, str(e)) from None
    if loras_text not in (None, "None"):
        names = set(folders.list_models("loras"))
        for name, strength_model, strength_clip in lora_tags(loras_text):
            if name not in names:
                warn(f"skipping unknown LoRA {name!r} (no such file in models/loras)")
                continue
            rows.append((name, strength_model, strength_clip, "loras"))
    for name, strength_model, strength_clip, input_name in rows:
        if strength_model == 0 and strength_clip == 0:
            continue
        model, clip = _apply_lora(model, clip, name, strength_model, strength_clip, input_name)
    return model, clip


def _clip_skipped(clip, clip_skip: int):
    return _set_clip_skip(clip, clip_skip, "clip_skip") if clip_skip != 0 and clip is not None else clip


def _ttn_models(node, ckpt_name: str, vae_name: str, clip_skip: int, loras_text, model_override=None,
                clip_override=None, stack=None, ckpt_input: str = "ckpt_name"):
    """The pack's load_main3: the checkpoint (not needed when model and clip are overridden and a
    VAE file is chosen), its text encoder at clip_skip (0: as it is), an overriding model / clip
    (the clip then at clip_skip) in place of the checkpoint's, the VAE file unless "Baked VAE",
    then the LoRA stack and the loras text's tags."""
    model = clip = vae = None
    if model_override is None or clip_override is None or vae_name == BAKED_VAE:
        model, clip, vae = _core(LoadCheckpoint, {"checkpoint": ckpt_input}, checkpoint=ckpt_name)
        clip = _clip_skipped(clip, clip_skip)
    if model_override is not None:
        model = model_override
    if clip_override is not None:
        clip = _clip_skipped(clip_override, clip_skip)
    if vae_name != BAKED_VAE:
        vae = _core(LoadVAE, vae_name=vae_name)
    model, clip = _with_loras(model, clip, stack, loras_text)
    if clip is None:
        raise NodeInputError(ckpt_input, "no text encoder found (the checkpoint has none): connect clip_override")
    return model, clip, vae


def ttn_encode(clip, node, side: str, zero_out: bool = False):
    """A prompt encoded as the pack's embedding_encode: prepend_<side> and a space before the
    text, then the token normalization and weight interpretation (Efficiency Nodes'
    ADV_CLIP_emb formulas, which the pack also uses; none + comfy is CLIP Text Encode itself);
    with zero_out an empty prompt is ConditioningZeroOut of its encoding."""
    text = getattr(node, side)
    prepend = getattr(node, f"prepend_{side}", None)
    text = f"{prepend} {text}" if prepend is not None else text
    normalization = getattr(node, f"{side}_token_normalization")
    interpretation = getattr(node, f"{side}_weight_interpretation")
    try:
        conditioning = advanced_encode(clip, text, normalization, interpretation, side)
    except NodeInputError as e:
        name = {"token_normalization": f"{side}_token_normalization",
                "weight_interpretation": f"{side}_weight_interpretation"}.get(e.input, e.input)
        raise NodeInputError(name, str(e)) from None
    if zero_out and text.strip() == "":
        return _core(ConditioningZeroOut, {"conditioning": side}, conditioning=conditioning)
    return conditioning


def _controlnet_stack(stack, positive, negative):
    """The loaders' optional_controlnet_stack: rows (control net or its file name, image,
    strength, start_percent, end_percent) applied in turn as Apply ControlNet (Advanced)."""
    if not stack:
        return positive, negative
    rows = []
    for row in stack:
        if isinstance(row, (list, tuple)) and row and isinstance(row[0], str):
            row = (_core(LoadControlNet, {"control_net_name": "optional_controlnet_stack"}, control_net_name=row[0]),
                   *row[1:])
        rows.append(row)
    try:
        return _apply_cnet_stack(positive, negative, rows)
    except NodeInputError as e:
        raise NodeInputError("optional_controlnet_stack", str(e)) from None


def _prompt_string(*parts) -> str:
    """The loaders' pos_string / neg_string: each part that is not empty followed by a space."""
    return "".join(f"{p} " for p in parts if p)


# -- shared sampling ------------------------------------------------------------------------------

def _pipe(value, input_name: str = "pipe") -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise NodeInputError(input_name, f"expected tinyterraNodes' pipe (a dict), got {type(value).__name__}: "
                                         f"another pack's PIPE_LINE (Comfyroll's is a tuple)")
    return value


def _save_prefix_checked(prefix: str) -> str:
    if "%" in prefix:
        raise NodeInputError("save_prefix", f"{prefix!r}: the pack's %date:..% / %input% patterns are not built in; "
                                            f"use a plain prefix (subfolders allowed)")
    return prefix


def save_files(folder, stem: str, file_type: str, padding: int | None, overwrite: bool, writes,
               input_name: str = "save_prefix") -> list[str]:
    """Files written as the pack's ttNsave names them, one per `write(path)` of `writes`:
    stem_<counter>.<file_type> (the counter one past the highest in the folder, `padding` digits;
    None: no counter); a name already taken is kept (that file skipped with a warning, as the pack
    skips it) unless overwrite. Each is written under a temporary name and then given its own
    (nodes/image.py _write_at), so a link at the name is kept or replaced, never written through.
    Returns the written names."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        counter = _next_counter(folder, stem)
        written = []
        for write in writes:
            name = f"{stem}.{file_type}" if padding is None else f"{stem}_{counter:0{padding}d}.{file_type}"
            counter += 1
            if _write_at(write, folder / name, overwrite):
                written.append(name)
            else:
                warn(f"{name} already exists: skipped, as the pack skips it (overwrite_existing keeps none)")
        return written
    except OSError as e:  # a folder where the file goes, a full disk
        raise NodeInputError(input_name, f"can't write {stem!r} in the outputs: {e.strerror or e}") from None


def save_images(images, folder, stem: str, file_type: str, padding: int | None = 5, overwrite: bool = False,
                embed_workflow: bool = True) -> list[dict]:
    """Images written as save_files writes them, the workflow embedded in PNGs when
    embed_workflow. Returns the editor's {filename, subfolder, type} of each written file."""
    from graphflow.images import image_to_pil
    if file_type not in PIL_FORMATS:
        raise NodeInputError("file_type", f"{file_type!r} is not one of {', '.join(OUTPUT_FILETYPES)}")
    metadata = _png_metadata() if embed_workflow and file_type == "png" else None
    options = {"pnginfo": metadata} if metadata is not None else {}
    writes = (lambda path, image=image: image_to_pil(image).save(path, format=PIL_FORMATS[file_type], **options)
              for image in images)
    names = save_files(folder, stem, file_type, padding, overwrite, writes)
    subfolder = subfolder_name(folders.outputs, folder)
    return [{"filename": name, "subfolder": subfolder, "type": "output"} for name in names]


def output_images(images, image_output: str, save_prefix: str, file_type: str = "png", embed_workflow: bool = True):
    """The pack's image_output: Preview shows the images (from the temp folder); Save writes them
    to the outputs folder as save_prefix and shows them; Hide/Save writes without showing; Hide and
    Disabled do neither."""
    if image_output in ("Save", "Hide/Save"):
        prefix = _save_prefix_checked(save_prefix)  # its NodeInputError passes as it is
        try:
            target = safe_join(folders.outputs, prefix)
        except ValueError as e:
            raise NodeInputError("save_prefix", str(e)) from None
        written = save_images(images, target.parent, target.name, file_type, embed_workflow=embed_workflow)
        if image_output == "Save":
            show(images=written)
    elif image_output == "Preview":
        show(images=temp_pngs(images))


def _refuse_plot(node):
    if getattr(node, "adv_xyPlot", None) is not None:
        raise NodeInputError("adv_xyPlot", "the pack's advanced xyPlot is not built in: disconnect it")


def _latent_upscale_size(width: int, height: int, factor: float) -> tuple[int, int]:
    """[latent] upscaling's new latent size (latent pixels): each side times factor, rounded, to a
    multiple of 8 (the pack's enforce_mul_of_64 applied to the latent's own size), at most
    MAX_RESOLUTION."""
    from nodes.pack_nodes_easyuse_samplers import nearest_multiple_of_8
    return (min(nearest_multiple_of_8(round(width * factor)), MAX_RESOLUTION),
            min(nearest_multiple_of_8(round(height * factor)), MAX_RESOLUTION))


def _latent_upscaled(node, latent: dict, method: str) -> dict:
    """[latent] upscaling as the pack does it (_latent_upscale_size), resized as LatentUpscale with
    crop; refused over the server's max_pixels, or when sampling the upscaled batch needs more
    working memory than the run may take (a pipe's latent has no size before the run, so the
    planner's estimate can't tell)."""
    samples = latent["samples"]
    width, height = _latent_upscale_size(samples.shape[-1], samples.shape[-2], node.factor)
    limits = run_limits()
    if limits.max_pixels is not None and width * 8 * height * 8 > limits.max_pixels:
        raise NodeInputError("factor", f"upscales the latent to {width * 8}x{height * 8} pixels, over the server's "
                                       f"{limits.max_pixels}")
    images = samples.shape[0] * math.prod(samples.shape[2:-2])  # a video latent's frames count too
    check_run_memory("factor", f"upscales the latent to {width * 8}x{height * 8} pixels",
                     sampled=Size(images, height * 8, width * 8))
    return {**latent, "samples": _upscale(samples, width, height, method, node.crop)}


def model_upscaled(node, image, vae, method: str, rescale_after_model: bool, image_input: str,
                   sampled: bool = False):
    """The pack's hiresfixScale work: the image through the upscale model (ImageUpscaleWithModel's
    tiling), then, with rescale_after_model, resized with `method` and crop to node.rescale's size
    (Easy-Use's hiresFix, which follows this pack, computes it the same way); gives (image, latent of
    it encoded with the VAE, or None without a VAE). `sampled`: the latent is to be sampled, so
    the sampling memory its final size needs is checked before it is encoded."""
    from nodes.pack_nodes_easyuse_samplers import check_upscaled_size, hires_size, resized_image
    from nodes.upscale import ImageUpscaleWithModel, LoadUpscaleModel
    if node.upscale_model_name in (None, "None"):
        raise NodeInputError("upscale_model_name", "no upscale model chosen (models/upscale_models has none?)")
    model = _core(LoadUpscaleModel, {"model_name": "upscale_model_name"}, model_name=node.upscale_model_name)
    check_upscaled_size(image, model.scale, image_input, "upscale_model_name")
    upscaled = _core(ImageUpscaleWithModel, {"image": image_input}, upscale_model=model, image=image)
    if rescale_after_model:
        width, height = hires_size(node, upscaled.shape[2], upscaled.shape[1])
        limit = run_limits().max_pixels
        if limit is not None and width * height > limit:
            raise NodeInputError("rescale", f"rescales to {width}x{height}, over the server's {limit} pixels")
        upscaled = resized_image(upscaled, width, height, method, node.crop == "center")
    if sampled:  # the image's size is known only now (the model's scale, then the rescale)
        batch, height, width = upscaled.shape[:3]
        check_run_memory("upscale_method", f"[hiresFix] upscales to {width}x{height} pixels",
                         sampled=Size(batch, height // 8 * 8, width // 8 * 8))
    latent = None
    if vae is not None:
        latent = _core(VAEEncode, {"pixels": image_input, "vae": "vae"}, pixels=upscaled[..., :3], vae=vae)
    return upscaled, latent


def upscaled(node, latent: dict, vae, images) -> dict:
    """The samplers' optional upscale before sampling (upscale_method): "[latent] m" resizes the
    latent; "[hiresFix] m" runs the images (input_image_override, else the pipe's, else the
    latent decoded) through upscale_model_name, rescales them with m (rescale "None": not) and
    encodes them as the new latent."""
    if node.upscale_method == "None":
        return latent
    if node.upscale_method not in UPSCALE_METHODS:
        raise NodeInputError("upscale_method", f"{node.upscale_method!r} is not one of {', '.join(UPSCALE_METHODS)}")
    kind, method = node.upscale_method.split(" ", 1)
    if kind == "[latent]":
        return _latent_upscaled(node, latent, method)
    if vae is None:
        raise NodeInputError("upscale_method", "[hiresFix] needs a VAE to decode and encode with")
    if images is None:
        images = _core(VAEDecode, {"samples": "upscale_method", "vae": "upscale_method"}, samples=latent, vae=vae)
    _, latent = model_upscaled(node, images, vae, method, node.rescale != "None", "input_image_override",
                               sampled=True)
    return latent


def custom_scheduled(model, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str, positive, negative,
                     latent: dict, denoise: float, add_noise: bool) -> dict:
    """The pack's AYS / GITS schedulers: the sigmas of AlignYourStepsScheduler (the model type
    after "AYS ") or GITSScheduler (coeff 1.20) for steps and denoise, sampled as SamplerCustom
    with KSamplerSelect's sampler, as the pack samples them (a step range and leftover noise do not
    apply there)."""
    from nodes.custom_sampling import AlignYourStepsScheduler, GITSScheduler, KSamplerSelect, SamplerCustom
    if scheduler.startswith("AYS"):
        sigmas = _core(AlignYourStepsScheduler, model_type=scheduler.split(" ")[1], steps=steps, denoise=denoise)
    else:
        sigmas = _core(GITSScheduler, coeff=1.2, steps=steps, denoise=denoise)
    sampler = _core(KSamplerSelect, sampler_name=sampler_name)
    return _core(SamplerCustom, {"latent_image": "optional_latent"}, model=model, add_noise=add_noise,
                 noise_seed=seed, cfg=cfg, positive=positive, negative=negative, sampler=sampler, sigmas=sigmas,
                 latent_image=latent)[0]


def ksampled(model, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str, positive, negative,
             latent: dict, denoise: float = 1.0, start=None, end=None, leftover: bool = False,
             add_noise: bool = True) -> dict:
    """The pack's common_ksampler, on our sampling engine: KSampler's work (start / end None),
    KSamplerAdvanced's (start, end, leftover noise, add_noise) with a denoise, as ComfyUI's
    comfy.sample.sample runs them; the AYS / GITS schedulers as custom_scheduled."""
    if scheduler in CUSTOM_SCHEDULERS:
        return custom_scheduled(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, denoise,
                                add_noise)
    if scheduler not in SCHEDULER_NAMES:
        raise NodeInputError("scheduler", f"{scheduler!r} is not one of {', '.join(TTN_SCHEDULERS)}")
    job = SimpleNamespace(model=model, steps=steps, cfg=cfg, sampler_name=sampler_name, scheduler=scheduler,
                          positive=positive, negative=negative, latent_image=latent, noise_mode="comfy")
    options = {"denoise": denoise}
    if start is not None or end is not None:
        options.update(start_step=start, end_step=end, add_noise=add_noise, return_with_leftover_noise=leftover)
    try:
        return _sample(job, seed, **options)
    except NodeInputError as e:
        raise NodeInputError({"latent_image": "optional_latent"}.get(e.input, e.input), str(e)) from None


def decoded(node, latent: dict, vae, images, vae_input: str = "optional_vae"):
    """The samplers' images: the latent decoded with the VAE and shown / saved as image_output
    says; "Disabled" decodes nothing and passes the incoming images on."""
    if node.image_output == "Disabled":
        return images
    if vae is None:
        raise NodeInputError(vae_input, "no VAE to decode with: give the pipe one or connect optional_vae "
                                        "(or set image_output to Disabled)")
    images = _core(VAEDecode, {"samples": vae_input, "vae": vae_input}, samples=latent, vae=vae)
    output_images(images, node.image_output, node.save_prefix, node.file_type, node.embed_workflow)
    return images


def _override(node, name: str, pipe: dict, key: str):
    value = getattr(node, name, None)
    return value if value is not None else pipe.get(key)


def _lora_on(node, model, clip, clip_needed: bool = False):
    """The samplers' lora_name at lora_strength for both model and text encoder."""
    if node.lora_name in (None, "None"):
        return model, clip
    if clip is None and clip_needed:
        raise NodeInputError("clip", "a LoRA (lora_name) needs the CLIP connected, as in the pack")
    if node.lora_strength == 0:
        return model, clip
    return _apply_lora(model, clip, node.lora_name, node.lora_strength, node.lora_strength, "lora_name")


def _sampler_fingerprint(cls, lora_name="None", upscale_method="None", upscale_model_name="None", **widgets):
    """The samplers' LoRA and upscale model files as they are on disk: a changed file is applied."""
    hires = isinstance(upscale_method, str) and upscale_method.startswith("[hiresFix]")
    return (lora_name != "None" and _state("loras", lora_name),
            hires and upscale_model_name != "None" and _state("upscale_models", upscale_model_name))


def _sampler_estimate(cls, widgets, inputs):
    """KSampler's estimate for the connected latent, upscaled first by a [latent] upscale_method's
    factor (a pipe's latent is not sized before the run: _latent_upscaled checks it then)."""
    from nodes.sampling import _estimate
    size = inputs.get("optional_latent") or inputs.get("latent")
    method, factor = widgets.get("upscale_method"), widgets.get("factor")
    if size is not None and str(method).startswith("[latent]") and isinstance(factor, (int, float)):
        width, height = _latent_upscale_size(size.width // 8, size.height // 8, factor)
        size = Size(size.batch, height * 8, width * 8)
    return _estimate(cls, widgets, {"latent_image": size})


PIPE_SAMPLER_OUTPUTS = {"pipe": PIPE_LINE, "model": MODEL, "positive": CONDITIONING, "negative": CONDITIONING,
                        "latent": LATENT, "vae": VAE, "clip": CLIP, "images": IMAGE, "seed": INT, "plot_image": IMAGE}
PIPE_SAMPLER_OPTIONAL = ("seed", "optional_model", "optional_positive", "optional_negative", "optional_latent",
                         "optional_vae", "optional_clip", "input_image_override", "adv_xyPlot")


def pipe_sample(node, seed: int, steps: int, cfg: float, denoise: float, start=None, end=None, leftover=False,
                add_noise=True):
    """pipeKSampler_v2's work (the advanced sampler's with its step range): the pipe's parts,
    each optional_* input in place of its part, lora_name applied, the upscale, the sampling
    and the decoding; gives the pack's outputs (plot_image None)."""
    _refuse_plot(node)
    pipe = _pipe(node.pipe)
    model, clip = _lora_on(node, _override(node, "optional_model", pipe, "model"),
                           _override(node, "optional_clip", pipe, "clip"))
    positive = _override(node, "optional_positive", pipe, "positive")
    negative = _override(node, "optional_negative", pipe, "negative")
    vae = _override(node, "optional_vae", pipe, "vae")
    images = _override(node, "input_image_override", pipe, "images")
    latent = _override(node, "optional_latent", pipe, "samples")
    if model is None or positive is None or negative is None or latent is None:
        missing = [n for n, v in (("model", model), ("positive", positive), ("negative", negative),
                                  ("samples", latent)) if v is None]
        raise NodeInputError("pipe", f"the pipe has no {', '.join(missing)}: connect a ttN pipe loader or the "
                                     f"optional_* inputs")
    latent = upscaled(node, latent, vae, images)
    latent = ksampled(model, seed, steps, cfg, node.sampler_name, node.scheduler, positive, negative, latent,
                      denoise, start, end, leftover, add_noise)
    images = decoded(node, latent, vae, images)
    new_pipe = {"model": model, "positive": positive, "negative": negative, "vae": vae, "clip": clip,
                "samples": latent, "images": images, "seed": seed, "loader_settings": None}
    return new_pipe, model, positive, negative, latent, vae, clip, images, seed, None


# -- the pipe loaders -----------------------------------------------------------------------------

class TtnPipeLoader(Node):
    """Load a checkpoint into a pipe, as tinyterraNodes' pipeLoader does: the checkpoint (or
    model_override / clip_override in its place), its text encoder at clip_skip (0: as it is),
    vae_name ("Baked VAE": the checkpoint's), the LoRAs of optional_lora_stack and then the
    <lora:name:weight:clip weight> tags in `loras` (a tag naming no file is skipped with a
    warning), the prompts (prepend_positive / prepend_negative and a space before them) encoded
    with their token normalization and weight interpretation (none + comfy is CLIP Text Encode;
    the others Efficiency Nodes' ADV_CLIP_emb formulas, which the pack uses too), the
    optional_controlnet_stack applied to both, and an empty latent of empty_latent_aspect's size
    (width x height for the custom entry). The width / height outputs are the two widgets, as
    the pack returns them even when an aspect is chosen. config_name is accepted and not needed
    (the architecture is read from the weights). Left out: __word__ noodle expansion (encoded as
    written)."""
    category = "🌏 tinyterra/pipe"
    ckpt_name: str = Choice(_checkpoint_choices, DEMO_CHECKPOINT, model_folder="checkpoints")
    config_name: str = Text("Default")
    vae_name: str = Choice(_vae_choices, BAKED_VAE, model_folder="vae", not_files=(BAKED_VAE,))
    clip_skip: int = Int(-1, min=-24, max=0)
    loras: str = Text("", multiline=True)
    positive: str = Text("Positive", multiline=True, dynamic_prompts=True)
    positive_token_normalization: str = Choice(TOKEN_NORMALIZATIONS, "none")
    positive_weight_interpretation: str = Choice(WEIGHT_INTERPRETATIONS, "comfy")
    negative: str = Text("Negative", multiline=True, dynamic_prompts=True)
    negative_token_normalization: str = Choice(TOKEN_NORMALIZATIONS, "none")
    negative_weight_interpretation: str = Choice(WEIGHT_INTERPRETATIONS, "comfy")
    empty_latent_aspect: str = Choice(SD_ASPECTS, "512 x 512 [S] 1:1")
    empty_latent_width: int = Int(512, min=64, max=MAX_RESOLUTION, step=8)
    empty_latent_height: int = Int(512, min=64, max=MAX_RESOLUTION, step=8)
    batch_size: int = Int(1, min=1, max=64)
    seed: int = Int(0, min=0, max=SEED_MAX)
    model_override: MODEL = None
    clip_override: CLIP = None
    optional_lora_stack: LORA_STACK = None
    optional_controlnet_stack: CONTROL_NET_STACK = None
    prepend_positive: STRING = None
    prepend_negative: STRING = None
    outputs = {"pipe": PIPE_LINE, "model": MODEL, "positive": CONDITIONING, "negative": CONDITIONING,
               "latent": LATENT, "vae": VAE, "clip": CLIP, "seed": INT, "width": INT, "height": INT,
               "pos_string": STRING, "neg_string": STRING}
    comfy = ComfyAlias(("ttN pipeLoader_v2",), optional=("model_override", "clip_override", "optional_lora_stack",
                                                         "optional_controlnet_stack", "prepend_positive",
                                                         "prepend_negative"))

    @classmethod
    def fingerprint(cls, ckpt_name=DEMO_CHECKPOINT, vae_name=BAKED_VAE, loras=None, **widgets):
        return _loader_fingerprint(ckpt_name, vae_name, loras)

    @classmethod
    def estimate(cls, widgets, inputs):
        return _loader_estimate(widgets)

    def run(self):
        model, clip, vae = _ttn_models(self, self.ckpt_name, self.vae_name, self.clip_skip, self.loras,
                                       self.model_override, self.clip_override, self.optional_lora_stack)
        latent = _empty_latent(model, self.empty_latent_aspect, self.empty_latent_width, self.empty_latent_height,
                               self.batch_size)
        positive, negative = ttn_encode(clip, self, "positive"), ttn_encode(clip, self, "negative")
        positive, negative = _controlnet_stack(self.optional_controlnet_stack, positive, negative)
        pipe = {"model": model, "positive": positive, "negative": negative, "vae": vae, "clip": clip,
                "samples": latent, "images": None, "seed": self.seed, "loader_settings": None}
        return (pipe, model, positive, negative, latent, vae, clip, self.seed, self.empty_latent_width,
                self.empty_latent_height, _prompt_string(self.prepend_positive, self.positive),
                _prompt_string(self.prepend_negative, self.negative))


class TtnPipeKSampler(Node):
    """Sample a pipe, as tinyterraNodes' pipeKSampler does: the pipe's model, prompts, latent, VAE,
    CLIP and seed, each optional_* input (and seed) in place of its part; lora_name applied at
    lora_strength to model and text encoder; an optional upscale first (upscale_method: "[latent]
    m" resizes the latent by factor, each latent side to a multiple of 8; "[hiresFix] m" runs the
    images (input_image_override, the pipe's, or the latent decoded) through upscale_model_name,
    rescales them as rescale / percent / width / height / longer_side say (with m and crop) and
    encodes them); then KSampler's sampling, the same latent for the same settings. The latent is
    decoded and image_output says what happens to the images: Preview shows them, Save writes them
    to the outputs folder as save_prefix_00001.<file_type> (the workflow embedded in PNGs with
    embed_workflow) and shows them, Hide/Save writes them only, Hide neither, Disabled does not
    decode (the incoming images go on). The scheduler list adds AYS SD1 / SDXL / SVD and GITS SD1,
    sampled as the pack samples them: AlignYourStepsScheduler's / GITSScheduler's (coeff 1.2) sigmas
    through SamplerCustom. Gives the new pipe and its parts; plot_image is empty. Left out: adv_xyPlot
    (refused), %date% patterns in save_prefix (refused); an API prompt without seed samples
    with seed 0 (the pack: the pipe's)."""
    category = "🌏 tinyterra/pipe"
    output_node = True
    pipe: PIPE_LINE
    lora_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    lora_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    upscale_method: str = Choice(UPSCALE_METHODS, "None")
    upscale_model_name: str = Choice(lambda: folders.list_models("upscale_models") + ["None"], "None",
                                     model_folder="upscale_models", not_files=("None",))
    factor: float = Float(2.0, min=0.0, max=10.0, step=0.25)
    rescale: str = Choice(RESCALES, "by percentage")
    percent: int = Int(50, min=0, max=1000)
    width: int = Int(1024, min=64, max=MAX_RESOLUTION, step=8)
    height: int = Int(1024, min=64, max=MAX_RESOLUTION, step=8)
    longer_side: int = Int(1024, min=64, max=MAX_RESOLUTION, step=8)
    crop: str = Choice(CROP_METHODS, "disabled")
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(TTN_SCHEDULERS, "normal")
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    image_output: str = Choice(IMAGE_OUTPUTS, "Hide")
    save_prefix: str = Text("ComfyUI", file_name=True)
    file_type: str = Choice(OUTPUT_FILETYPES, "png")
    embed_workflow: bool = Bool(True)
    seed: int = Int(0, min=0, max=SEED_MAX)
    optional_model: MODEL = None
    optional_positive: CONDITIONING = None
    optional_negative: CONDITIONING = None
    optional_latent: LATENT = None
    optional_vae: VAE = None
    optional_clip: CLIP = None
    input_image_override: IMAGE = None
    adv_xyPlot: ADV_XYPLOT = None
    outputs = PIPE_SAMPLER_OUTPUTS
    comfy = ComfyAlias(("ttN pipeKSampler_v2",), optional=PIPE_SAMPLER_OPTIONAL)
    estimate = classmethod(_sampler_estimate)
    fingerprint = classmethod(_sampler_fingerprint)

    def run(self):
        return pipe_sample(self, self.seed, self.steps, self.cfg, self.denoise)


class TtnPipeKSamplerAdvanced(Node):
    """Sample a pipe over a step range, as tinyterraNodes' pipeKSamplerAdvanced does: as
    pipeKSampler, with KSamplerAdvanced's add_noise, start_at_step, end_at_step and
    return_with_leftover_noise, and `noise` as the denoise (the pack passes it there; 1.0 is
    KSamplerAdvanced itself). noise_seed is the seed. The rest (LoRA, upscale, image_output,
    AYS / GITS) as in pipeKSampler; with AYS / GITS the pack samples the whole schedule (the step
    range and leftover noise do not apply), as here."""
    category = "🌏 tinyterra/pipe"
    output_node = True
    pipe: PIPE_LINE
    lora_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    lora_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    upscale_method: str = Choice(UPSCALE_METHODS, "None")
    upscale_model_name: str = Choice(lambda: folders.list_models("upscale_models") + ["None"], "None",
                                     model_folder="upscale_models", not_files=("None",))
    factor: float = Float(2.0, min=0.0, max=10.0, step=0.25)
    rescale: str = Choice(RESCALES, "by percentage")
    percent: int = Int(50, min=0, max=1000)
    width: int = Int(1024, min=64, max=MAX_RESOLUTION, step=8)
    height: int = Int(1024, min=64, max=MAX_RESOLUTION, step=8)
    longer_side: int = Int(1024, min=64, max=MAX_RESOLUTION, step=8)
    crop: str = Choice(CROP_METHODS, "disabled")
    add_noise: str = Choice(("enable", "disable"), "enable")
    noise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    start_at_step: int = Int(0, min=0, max=10000)
    end_at_step: int = Int(10000, min=0, max=10000)
    cfg: float = Float(8.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(TTN_SCHEDULERS, "normal")
    return_with_leftover_noise: str = Choice(("disable", "enable"), "disable")
    image_output: str = Choice(IMAGE_OUTPUTS, "Hide")
    save_prefix: str = Text("ComfyUI", file_name=True)
    file_type: str = Choice(OUTPUT_FILETYPES, "png")
    embed_workflow: bool = Bool(True)
    noise_seed: int = Int(0, min=0, max=SEED_MAX)
    optional_model: MODEL = None
    optional_positive: CONDITIONING = None
    optional_negative: CONDITIONING = None
    optional_latent: LATENT = None
    optional_vae: VAE = None
    optional_clip: CLIP = None
    input_image_override: IMAGE = None
    adv_xyPlot: ADV_XYPLOT = None
    outputs = PIPE_SAMPLER_OUTPUTS
    comfy = ComfyAlias(("ttN pipeKSamplerAdvanced_v2",), optional=("noise_seed",) + PIPE_SAMPLER_OPTIONAL[1:])
    estimate = classmethod(_sampler_estimate)
    fingerprint = classmethod(_sampler_fingerprint)

    def run(self):
        return pipe_sample(self, self.noise_seed, self.steps, self.cfg, self.noise, self.start_at_step,
                           self.end_at_step, self.return_with_leftover_noise == "enable", self.add_noise == "enable")


def _sdxl_size(choice: str, width: int, height: int, latent_width: int, latent_height: int,
               input_name: str) -> tuple[int, int]:
    """A relative aspect choice: its multiple of the empty latent's size, or width x height."""
    if choice == CUSTOM_ASPECT:
        return width, height
    try:
        factor = int(choice.split("x")[0])
    except ValueError:
        raise NodeInputError(input_name, f"expected one of {', '.join(RELATIVE_ASPECTS)}, got {choice!r}") from None
    return factor * latent_width, factor * latent_height


class TtnPipeLoaderSDXL(Node):
    """Load an SDXL base (and refiner) into an SDXL pipe, as tinyterraNodes' pipeLoaderSDXL does:
    the base as pipeLoader loads it (overrides, clip_skip, VAE, LoRA stack and <lora:..> tags);
    the prompts encoded as CLIP Text Encode SDXL with positive_g / negative_g for CLIP-G and
    positive_l / negative_l for CLIP-L (an empty _l: the _g text; prepend_* and a space before
    each), sized by conditioning_aspect (a multiple of the empty latent's size, or
    conditioning_width x height), crop_width / crop_height and target_aspect; the
    optional_controlnet_stack applied to the base prompts. A refiner checkpoint (or the refiner
    overrides) at the same clip_skip gets the _l texts encoded as CLIP Text Encode SDXL Refiner
    with the aesthetic scores and the conditioning size (the pack's choice of texts). The width /
    height outputs are the empty latent's. config names are accepted and not needed."""
    category = "🌏 tinyterra/pipe"
    ckpt_name: str = Choice(_checkpoint_choices, DEMO_CHECKPOINT, model_folder="checkpoints")
    config_name: str = Text("Default")
    vae_name: str = Choice(_vae_choices, BAKED_VAE, model_folder="vae", not_files=(BAKED_VAE,))
    clip_skip: int = Int(-2, min=-24, max=0)
    loras: str = Text("", multiline=True)
    refiner_ckpt_name: str = Choice(lambda: ["None"] + _checkpoint_choices(), "None", model_folder="checkpoints",
                                    not_files=("None",))
    refiner_config_name: str = Text("Default")
    positive_g: str = Text("", multiline=True, dynamic_prompts=True)
    positive_l: str = Text("", multiline=True, dynamic_prompts=True)
    negative_g: str = Text("", multiline=True, dynamic_prompts=True)
    negative_l: str = Text("", multiline=True, dynamic_prompts=True)
    conditioning_aspect: str = Choice(RELATIVE_ASPECTS, "1x Empty Latent Aspect")
    conditioning_width: int = Int(2048, min=64, max=MAX_RESOLUTION, step=8)
    conditioning_height: int = Int(2048, min=64, max=MAX_RESOLUTION, step=8)
    crop_width: int = Int(0, min=0, max=MAX_RESOLUTION)
    crop_height: int = Int(0, min=0, max=MAX_RESOLUTION)
    target_aspect: str = Choice(RELATIVE_ASPECTS, "1x Empty Latent Aspect")
    target_width: int = Int(1024, min=0, max=MAX_RESOLUTION)
    target_height: int = Int(1024, min=0, max=MAX_RESOLUTION)
    positive_ascore: float = Float(6.0, min=0.0, max=1000.0, step=0.1)
    negative_ascore: float = Float(2.0, min=0.0, max=1000.0, step=0.1)
    empty_latent_aspect: str = Choice(SDXL_ASPECTS, "1024 x 1024 [S] 1:1")
    empty_latent_width: int = Int(1024, min=64, max=MAX_RESOLUTION, step=8)
    empty_latent_height: int = Int(1024, min=64, max=MAX_RESOLUTION, step=8)
    batch_size: int = Int(1, min=1, max=64)
    seed: int = Int(0, min=0, max=SEED_MAX)
    model_override: MODEL = None
    clip_override: CLIP = None
    optional_lora_stack: LORA_STACK = None
    optional_controlnet_stack: CONTROL_NET_STACK = None
    refiner_model_override: MODEL = None
    refiner_clip_override: CLIP = None
    prepend_positive_g: STRING = None
    prepend_positive_l: STRING = None
    prepend_negative_g: STRING = None
    prepend_negative_l: STRING = None
    outputs = {"sdxl_pipe": PIPE_LINE_SDXL, "model": MODEL, "positive": CONDITIONING, "negative": CONDITIONING,
               "vae": VAE, "clip": CLIP, "refiner_model": MODEL, "refiner_positive": CONDITIONING,
               "refiner_negative": CONDITIONING, "refiner_clip": CLIP, "latent": LATENT, "seed": INT,
               "width": INT, "height": INT, "pos_string": STRING, "neg_string": STRING}
    comfy = ComfyAlias(("ttN pipeLoaderSDXL_v2",), optional=(
        "model_override", "clip_override", "optional_lora_stack", "optional_controlnet_stack",
        "refiner_model_override", "refiner_clip_override", "prepend_positive_g", "prepend_positive_l",
        "prepend_negative_g", "prepend_negative_l"))

    @classmethod
    def fingerprint(cls, ckpt_name=DEMO_CHECKPOINT, vae_name=BAKED_VAE, loras=None, refiner_ckpt_name="None",
                    **widgets):
        return _loader_fingerprint(ckpt_name, vae_name, loras, refiner_ckpt_name)

    @classmethod
    def estimate(cls, widgets, inputs):
        return _loader_estimate(widgets)

    def _text(self, name: str) -> str:
        prepend = getattr(self, f"prepend_{name}")
        text = getattr(self, name)
        return f"{prepend} {text}" if prepend is not None else text

    def run(self):
        model, clip, vae = _ttn_models(self, self.ckpt_name, self.vae_name, self.clip_skip, self.loras,
                                       self.model_override, self.clip_override, self.optional_lora_stack)
        latent = _empty_latent(model, self.empty_latent_aspect, self.empty_latent_width, self.empty_latent_height,
                               self.batch_size)
        refiner_model = refiner_clip = None
        if self.refiner_ckpt_name != "None":  # as in the pack, the refiner overrides need a refiner checkpoint
            refiner_model, refiner_clip, _ = _ttn_models(
                self, self.refiner_ckpt_name, self.vae_name, self.clip_skip, None, self.refiner_model_override,
                self.refiner_clip_override, None, "refiner_ckpt_name")
        width, height = aspect_size(self.empty_latent_aspect, self.empty_latent_width, self.empty_latent_height)
        cond_w, cond_h = _sdxl_size(self.conditioning_aspect, self.conditioning_width, self.conditioning_height,
                                    width, height, "conditioning_aspect")
        target_w, target_h = _sdxl_size(self.target_aspect, self.target_width, self.target_height, width, height,
                                        "target_aspect")
        encoded, refined = {}, {}
        for side in ("positive", "negative"):
            text_g, text_l = self._text(f"{side}_g"), self._text(f"{side}_l")
            if refiner_clip is not None:
                refined[side] = _core(CLIPEncodeSDXLRefiner, {"clip": "refiner_ckpt_name", "text": f"{side}_l"},
                                      clip=refiner_clip, ascore=getattr(self, f"{side}_ascore"), width=cond_w,
                                      height=cond_h, text=text_l)
            encoded[side] = _core(CLIPEncodeSDXL, {"clip": "ckpt_name", "text_g": f"{side}_g", "text_l": f"{side}_l"},
                                  clip=clip, width=cond_w, height=cond_h, crop_w=self.crop_width,
                                  crop_h=self.crop_height, target_width=target_w, target_height=target_h,
                                  text_g=text_g, text_l=text_l if text_l.strip() else text_g)
        positive, negative = _controlnet_stack(self.optional_controlnet_stack, encoded["positive"],
                                               encoded["negative"])
        sdxl_pipe = {"model": model, "positive": positive, "negative": negative, "vae": vae, "clip": clip,
                     "refiner_model": refiner_model, "refiner_positive": refined.get("positive"),
                     "refiner_negative": refined.get("negative"), "refiner_clip": refiner_clip,
                     "samples": latent, "images": None, "seed": self.seed, "loader_settings": None}
        return (sdxl_pipe, model, positive, negative, vae, clip, refiner_model, refined.get("positive"),
                refined.get("negative"), refiner_clip, latent, self.seed, width, height,
                _prompt_string(self.prepend_positive_g, self.positive_g, self.prepend_positive_l, self.positive_l),
                _prompt_string(self.prepend_negative_g, self.negative_g, self.prepend_negative_l, self.negative_l))


class TtnPipeKSamplerSDXL(Node):
    """Sample an SDXL pipe, as tinyterraNodes' pipeKSamplerSDXL does: with a refiner and
    refiner_steps > 0, the base samples steps 0..base_steps of base_steps + refiner_steps (at
    denoise, noise added, leftover noise kept) and the refiner the rest (at refiner_cfg and
    refiner_denoise, no noise added), both with the seed, as KSamplerAdvanced runs them;
    otherwise the base samples base_steps as KSampler. optional_* inputs replace the pipe's parts;
    lora_name, the upscale, image_output and the schedulers as in pipeKSampler. Gives the SDXL
    pipe, a plain pipe and their parts."""
    category = "🌏 tinyterra/pipe"
    output_node = True
    sdxl_pipe: PIPE_LINE_SDXL
    lora_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    lora_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    upscale_method: str = Choice(UPSCALE_METHODS, "None")
    upscale_model_name: str = Choice(lambda: folders.list_models("upscale_models") + ["None"], "None",
                                     model_folder="upscale_models", not_files=("None",))
    factor: float = Float(2.0, min=0.0, max=10.0, step=0.25)
    rescale: str = Choice(RESCALES, "by percentage")
    percent: int = Int(50, min=0, max=1000)
    width: int = Int(1024, min=64, max=MAX_RESOLUTION, step=8)
    height: int = Int(1024, min=64, max=MAX_RESOLUTION, step=8)
    longer_side: int = Int(1024, min=64, max=MAX_RESOLUTION, step=8)
    crop: str = Choice(CROP_METHODS, "disabled")
    base_steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0)
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    refiner_steps: int = Int(20, min=0, max=10000, resource="steps")
    refiner_cfg: float = Float(8.0, min=0.0, max=100.0)
    refiner_denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(TTN_SCHEDULERS, "normal")
    image_output: str = Choice(IMAGE_OUTPUTS, "Hide")
    save_prefix: str = Text("ComfyUI", file_name=True)
    file_type: str = Choice(OUTPUT_FILETYPES, "png")
    embed_workflow: bool = Bool(True)
    seed: int = Int(0, min=0, max=SEED_MAX)
    optional_model: MODEL = None
    optional_positive: CONDITIONING = None
    optional_negative: CONDITIONING = None
    optional_latent: LATENT = None
    optional_vae: VAE = None
    optional_refiner_model: MODEL = None
    optional_refiner_positive: CONDITIONING = None
    optional_refiner_negative: CONDITIONING = None
    optional_clip: CLIP = None
    input_image_override: IMAGE = None
    adv_xyPlot: ADV_XYPLOT = None
    outputs = {"sdxl_pipe": PIPE_LINE_SDXL, "pipe": PIPE_LINE, "model": MODEL, "positive": CONDITIONING,
               "negative": CONDITIONING, "refiner_model": MODEL, "refiner_positive": CONDITIONING,
               "refiner_negative": CONDITIONING, "latent": LATENT, "vae": VAE, "clip": CLIP, "images": IMAGE,
               "seed": INT, "plot_image": IMAGE}
    comfy = ComfyAlias(("ttN pipeKSamplerSDXL_v2",), optional=(
        "seed", "optional_model", "optional_positive", "optional_negative", "optional_latent", "optional_vae",
        "optional_refiner_model", "optional_refiner_positive", "optional_refiner_negative", "optional_clip",
        "input_image_override", "adv_xyPlot"))
    estimate = classmethod(_sampler_estimate)
    fingerprint = classmethod(_sampler_fingerprint)

    def run(self):
        _refuse_plot(self)
        pipe = _pipe(self.sdxl_pipe, "sdxl_pipe")
        model, clip = _lora_on(self, _override(self, "optional_model", pipe, "model"),
                               _override(self, "optional_clip", pipe, "clip"))
        positive = _override(self, "optional_positive", pipe, "positive")
        negative = _override(self, "optional_negative", pipe, "negative")
        vae = _override(self, "optional_vae", pipe, "vae")
        images = _override(self, "input_image_override", pipe, "images")
        latent = _override(self, "optional_latent", pipe, "samples")
        refiner = {k: _override(self, f"optional_refiner_{k}", pipe, f"refiner_{k}")
                   for k in ("model", "positive", "negative")}
        if model is None or positive is None or negative is None or latent is None:
            raise NodeInputError("sdxl_pipe", "the pipe lacks a model, prompts or latent: connect a ttN "
                                              "pipeLoaderSDXL or the optional_* inputs")
        refining = self.refiner_steps > 0 and refiner["model"] is not None
        for side in ("positive", "negative"):
            if refining and refiner[side] is None:
                raise NodeInputError(f"optional_refiner_{side}", f"a refiner model but no refiner {side} prompt: "
                                                                 f"connect one, or a pipe with a refiner checkpoint")
        latent = upscaled(self, latent, vae, images)
        if refining:
            total = self.base_steps + self.refiner_steps
            latent = ksampled(model, self.seed, total, self.cfg, self.sampler_name, self.scheduler, positive,
                              negative, latent, self.denoise, 0, self.base_steps, leftover=True)
            latent = ksampled(refiner["model"], self.seed, total, self.refiner_cfg, self.sampler_name, self.scheduler,
                              refiner["positive"], refiner["negative"], latent, self.refiner_denoise,
                              self.base_steps, 10000, leftover=False, add_noise=False)
        else:
            latent = ksampled(model, self.seed, self.base_steps, self.cfg, self.sampler_name, self.scheduler,
                              positive, negative, latent, self.denoise, 0, self.base_steps)
        images = decoded(self, latent, vae, images)
        parts = {"model": model, "positive": positive, "negative": negative, "vae": vae, "clip": clip,
                 "samples": latent, "images": images, "seed": self.seed, "loader_settings": None}
        sdxl = {**parts, "refiner_model": refiner["model"], "refiner_positive": refiner["positive"],
                "refiner_negative": refiner["negative"], "refiner_clip": pipe.get("refiner_clip")}
        return (sdxl, parts, model, positive, negative, refiner["model"], refiner["positive"], refiner["negative"],
                latent, vae, clip, images, self.seed, None)


# -- the base nodes -------------------------------------------------------------------------------

class TtnTinyLoader(Node):
    """Load a checkpoint with an empty latent, as tinyterraNodes' tinyLoader does: the text
    encoder at clip_skip (0: as it is), vae_name ("Baked VAE": the checkpoint's), `sampling`
    other than Default as ModelSamplingDiscrete (with zsnr), cfg_rescale_mult above 0 as
    RescaleCFG, and the latent of empty_latent_aspect's size (width x height for the custom
    entry). width / height are the two widgets, as the pack returns them."""
    category = "🌏 tinyterra/base"
    ckpt_name: str = Choice(_checkpoint_choices, DEMO_CHECKPOINT, model_folder="checkpoints")
    config_name: str = Text("Default")
    sampling: str = Choice(SAMPLING_CHOICES, "Default")
    zsnr: bool = Bool(False)
    cfg_rescale_mult: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    vae_name: str = Choice(_vae_choices, BAKED_VAE, model_folder="vae", not_files=(BAKED_VAE,))
    clip_skip: int = Int(-1, min=-24, max=0)
    empty_latent_aspect: str = Choice(TINY_ASPECTS, "512 x 512 [S] 1:1")
    empty_latent_width: int = Int(512, min=64, max=MAX_RESOLUTION, step=8)
    empty_latent_height: int = Int(512, min=64, max=MAX_RESOLUTION, step=8)
    batch_size: int = Int(1, min=1, max=64)
    outputs = {"model": MODEL, "latent": LATENT, "vae": VAE, "clip": CLIP, "width": INT, "height": INT}
    comfy = ComfyAlias(("ttN tinyLoader",))

    @classmethod
    def fingerprint(cls, ckpt_name=DEMO_CHECKPOINT, vae_name=BAKED_VAE, **widgets):
        return _loader_fingerprint(ckpt_name, vae_name)

    @classmethod
    def estimate(cls, widgets, inputs):
        return _loader_estimate(widgets)

    def run(self):
        from nodes.model_sampling import ModelSamplingDiscrete, RescaleCFG
        model, clip, vae = _core(LoadCheckpoint, {"checkpoint": "ckpt_name"}, checkpoint=self.ckpt_name)
        clip = _clip_skipped(clip, self.clip_skip)
        latent = _empty_latent(model, self.empty_latent_aspect, self.empty_latent_width, self.empty_latent_height,
                               self.batch_size)
        if self.vae_name != BAKED_VAE:
            vae = _core(LoadVAE, vae_name=self.vae_name)
        if self.sampling != "Default":
            model = _core(ModelSamplingDiscrete, model=model, sampling=self.sampling, zsnr=self.zsnr)
        if self.cfg_rescale_mult > 0:
            model = _core(RescaleCFG, {"multiplier": "cfg_rescale_mult"}, model=model,
                          multiplier=self.cfg_rescale_mult)
        return model, latent, vae, clip, self.empty_latent_width, self.empty_latent_height


class TtnConditioning(Node):
    """Apply LoRAs and encode two prompts, as tinyterraNodes' conditioning (tinyConditioning)
    does: optional_lora_stack's rows then the <lora:..> tags of `loras` applied to model and clip,
    each prompt (prepend_* and a space before it) encoded as pipeLoader encodes it; with
    zero_out_empty an empty prompt is zeroed (ConditioningZeroOut). pos_string / neg_string are
    the prepended texts."""
    category = "🌏 tinyterra/base"
    model: MODEL
    clip: CLIP
    loras: str = Text("", multiline=True)
    positive: str = Text("Positive", multiline=True, dynamic_prompts=True)
    positive_token_normalization: str = Choice(TOKEN_NORMALIZATIONS, "none")
    positive_weight_interpretation: str = Choice(WEIGHT_INTERPRETATIONS, "comfy")
    negative: str = Text("Negative", multiline=True, dynamic_prompts=True)
    negative_token_normalization: str = Choice(TOKEN_NORMALIZATIONS, "none")
    negative_weight_interpretation: str = Choice(WEIGHT_INTERPRETATIONS, "comfy")
    zero_out_empty: bool = Bool(False)
    optional_lora_stack: LORA_STACK = None
    prepend_positive: STRING = None
    prepend_negative: STRING = None
    outputs = {"model": MODEL, "positive": CONDITIONING, "negative": CONDITIONING, "clip": CLIP,
               "pos_string": STRING, "neg_string": STRING}
    comfy = ComfyAlias(("ttN conditioning",), optional=("optional_lora_stack", "prepend_positive", "prepend_negative"))

    @classmethod
    def fingerprint(cls, loras=None, **widgets):
        return _tags_state(loras)

    def run(self):
        model, clip = _with_loras(self.model, self.clip, self.optional_lora_stack, self.loras)
        positive = ttn_encode(clip, self, "positive", self.zero_out_empty)
        negative = ttn_encode(clip, self, "negative", self.zero_out_empty)
        strings = [(f"{p} " if p else "") + (t or "") for p, t in ((self.prepend_positive, self.positive),
                                                                  (self.prepend_negative, self.negative))]
        return model, positive, negative, clip, *strings


class TtnKSampler(Node):
    """Sample, as tinyterraNodes' KSampler (tinyKSampler) does: lora_name at lora_strength (it needs
    the clip input), the optional upscale (as pipeKSampler's), KSampler's sampling with the seed,
    then the decoding and image_output as pipeKSampler's. Gives model, prompts, latent, VAE, CLIP,
    images and seed; plot_image is empty. adv_xyPlot is refused (not built in)."""
    category = "🌏 tinyterra/base"
    output_node = True
    model: MODEL
    positive: CONDITIONING
    negative: CONDITIONING
    latent: LATENT
    vae: VAE
    lora_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    lora_strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    upscale_method: str = Choice(UPSCALE_METHODS, "None")
    upscale_model_name: str = Choice(lambda: folders.list_models("upscale_models") + ["None"], "None",
                                     model_folder="upscale_models", not_files=("None",))
    factor: float = Float(2.0, min=0.0, max=10.0, step=0.25)
    rescale: str = Choice(RESCALES, "by percentage")
    percent: int = Int(50, min=0, max=1000)
    width: int = Int(1024, min=64, max=MAX_RESOLUTION, step=8)
    height: int = Int(1024, min=64, max=MAX_RESOLUTION, step=8)
    longer_side: int = Int(1024, min=64, max=MAX_RESOLUTION, step=8)
    crop: str = Choice(CROP_METHODS, "disabled")
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(TTN_SCHEDULERS, "normal")
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    image_output: str = Choice(IMAGE_OUTPUTS, "Hide")
    save_prefix: str = Text("ComfyUI", file_name=True)
    file_type: str = Choice(OUTPUT_FILETYPES, "png")
    embed_workflow: bool = Bool(True)
    clip: CLIP = None
    seed: int = Int(0, min=0, max=SEED_MAX)
    input_image_override: IMAGE = None
    adv_xyPlot: ADV_XYPLOT = None
    outputs = {"model": MODEL, "positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT, "vae": VAE,
               "clip": CLIP, "images": IMAGE, "seed": INT, "plot_image": IMAGE}
    comfy = ComfyAlias(("ttN KSampler_v2",), optional=("clip", "seed", "input_image_override", "adv_xyPlot"))
    estimate = classmethod(_sampler_estimate)
    fingerprint = classmethod(_sampler_fingerprint)

    def run(self):
        _refuse_plot(self)
        model, clip = _lora_on(self, self.model, self.clip, clip_needed=True)
        images = self.input_image_override
        latent = upscaled(self, self.latent, self.vae, images)
        latent = ksampled(model, self.seed, self.steps, self.cfg, self.sampler_name, self.scheduler, self.positive,
                          self.negative, latent, self.denoise)
        images = decoded(self, latent, self.vae, images, "vae")
        return model, self.positive, self.negative, latent, self.vae, clip, images, self.seed, None


# -- pipe plumbing --------------------------------------------------------------------------------

class TtnPipeIn(Node):
    """Put model, prompts, latent, VAE, CLIP, image and seed into a pipe, as tinyterraNodes' legacy
    pipeIN does (its refiner entries empty, loader_settings an empty dict)."""
    category = "🌏 tinyterra/legacy"
    model: MODEL
    pos: CONDITIONING
    neg: CONDITIONING
    latent: LATENT
    vae: VAE
    clip: CLIP
    seed: int = Int(0, min=0, max=SEED_MAX)
    image: IMAGE = None
    outputs = {"pipe": PIPE_LINE}
    comfy = ComfyAlias(("ttN pipeIN",), optional=("image",))

    def run(self):
        return {"model": self.model, "positive": self.pos, "negative": self.neg, "vae": self.vae, "clip": self.clip,
                "refiner_model": None, "refiner_positive": None, "refiner_negative": None, "refiner_vae": None,
                "refiner_clip": None, "samples": self.latent, "images": self.image, "seed": self.seed,
                "loader_settings": {}}


class TtnPipeOut(Node):
    """Take a pipe apart, as tinyterraNodes' legacy pipeOUT does: model, pos, neg, latent, vae,
    clip, image and seed (None where the pipe has none), then the pipe itself."""
    category = "🌏 tinyterra/legacy"
    pipe: PIPE_LINE
    outputs = {"model": MODEL, "pos": CONDITIONING, "neg": CONDITIONING, "latent": LATENT, "vae": VAE, "clip": CLIP,
               "image": IMAGE, "seed": INT, "pipe": PIPE_LINE}
    comfy = ComfyAlias(("ttN pipeOUT",))

    def run(self):
        pipe = _pipe(self.pipe)
        parts = ("model", "positive", "negative", "samples", "vae", "clip", "images", "seed")  # the outputs' order
        return (*(pipe.get(k) for k in parts), pipe)


class TtnPipeEdit(Node):
    """Replace parts of a pipe, as tinyterraNodes' pipeEDIT does: each connected input replaces the
    pipe's (a seed of 0 counts as unconnected, as the pack's `or` takes it); a part missing from
    both is warned about. Gives the new pipe and its parts, except that `latent` is the latent
    input as connected (None when not), as the pack returns it."""
    category = "🌏 tinyterra/pipe"
    pipe: PIPE_LINE = None
    model: MODEL = None
    pos: CONDITIONING = None
    neg: CONDITIONING = None
    latent: LATENT = None
    vae: VAE = None
    clip: CLIP = None
    image: IMAGE = None
    seed: INT = None
    outputs = {"pipe": PIPE_LINE, "model": MODEL, "pos": CONDITIONING, "neg": CONDITIONING, "latent": LATENT,
               "vae": VAE, "clip": CLIP, "image": IMAGE, "seed": INT}
    comfy = ComfyAlias(("ttN pipeEDIT",), optional=("pipe", "model", "pos", "neg", "latent", "vae", "clip", "image",
                                                    "seed"))

    def run(self):
        pipe = _pipe(self.pipe)
        parts = {}
        for ours, key in (("model", "model"), ("pos", "positive"), ("neg", "negative"), ("latent", "samples"),
                          ("vae", "vae"), ("clip", "clip"), ("image", "images"), ("seed", "seed")):
            value = getattr(self, ours)
            parts[key] = value if value is not None and not (ours == "seed" and value == 0) else pipe.get(key)
            if parts[key] is None:
                warn(f"{key} missing from the pipe")
        new_pipe = {**parts, "loader_settings": pipe.get("loader_settings")}
        return (new_pipe, parts["model"], parts["positive"], parts["negative"], self.latent, parts["vae"],
                parts["clip"], parts["images"], parts["seed"])


class TtnPipe2Basic(Node):
    """Make Impact Pack's BASIC_PIPE (model, clip, vae, positive, negative) of a pipe, as
    tinyterraNodes' pipe2BASIC does; the pipe goes on too."""
    category = "🌏 tinyterra/pipe"
    pipe: PIPE_LINE
    outputs = {"basic_pipe": BASIC_PIPE, "pipe": PIPE_LINE}
    comfy = ComfyAlias(("ttN pipe2BASIC",))

    def run(self):
        pipe = _pipe(self.pipe)
        return tuple(pipe.get(k) for k in ("model", "clip", "vae", "positive", "negative")), pipe


class TtnPipeLoraStack(Node):
    """List LoRAs and apply them to a pipe, as tinyterraNodes' pipeLoraStack does: with toggle on,
    rows 1 to num_loras whose name is not "None", each (name, strength, strength) in simple mode
    or (name, model_strength, clip_strength) in advanced mode, form lora_stack; with a pipe
    connected they are applied in turn to its model and clip (model_override / clip_override in
    their place) and the new pipe goes out. Off, or no rows, passes the pipe on with no stack. As
    in the pack, a connected optional_lora_stack is not read (the pack's function takes it under
    another name)."""
    category = "🌏 tinyterra/pipe"
    toggle: bool = Choice((True, False), True)
    mode: str = Choice(("simple", "advanced"), "simple")
    num_loras: int = Int(1, min=0, max=LORA_STACK_ROWS)
    optional_pipe: PIPE_LINE = None
    model_override: MODEL = None
    clip_override: CLIP = None
    optional_lora_stack: LORA_STACK = None
    # The pack's 20 rows (lora_i_name, lora_i_strength, lora_i_model_strength, lora_i_clip_strength),
    # declared in turn into the class body's namespace (a plain dict here).
    for _i in range(1, LORA_STACK_ROWS + 1):
        __annotations__[f"lora_{_i}_name"] = str
        locals()[f"lora_{_i}_name"] = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
        for _part in ("strength", "model_strength", "clip_strength"):
            __annotations__[f"lora_{_i}_{_part}"] = float
            locals()[f"lora_{_i}_{_part}"] = Float(1.0, min=-10.0, max=10.0, step=0.01)
    del _i, _part
    outputs = {"optional_pipe": PIPE_LINE, "lora_stack": LORA_STACK}
    comfy = ComfyAlias(("ttN pipeLoraStack",), optional=(
        "optional_pipe", "model_override", "clip_override", "optional_lora_stack",
        *(f"lora_{i}_{part}" for i in range(1, LORA_STACK_ROWS + 1)
          for part in ("name", "strength", "model_strength", "clip_strength"))))

    @classmethod
    def fingerprint(cls, **widgets):
        names = (widgets.get(f"lora_{i}_name", "None") for i in range(1, LORA_STACK_ROWS + 1))
        return tuple(_state("loras", name) for name in names if name != "None")

    def run(self):
        pipe = self.optional_pipe
        if self.toggle in (False, None, "False"):
            return pipe, None
        rows = []
        for i in range(1, self.num_loras + 1):
            name = getattr(self, f"lora_{i}_name")
            if not name or name == "None":
                continue
            if self.mode == "simple":
                strength = float(getattr(self, f"lora_{i}_strength"))
                rows.append((name, strength, strength))
            else:
                rows.append((name, float(getattr(self, f"lora_{i}_model_strength")),
                             float(getattr(self, f"lora_{i}_clip_strength"))))
        if not rows:
            return pipe, None
        if not pipe:
            return pipe, rows
        pipe = _pipe(pipe, "optional_pipe")
        model = self.model_override if self.model_override is not None else pipe.get("model")
        clip = self.clip_override if self.clip_override is not None else pipe.get("clip")
        if model is None or clip is None:
            return pipe, rows
        model, clip = _with_loras(model, clip, rows, None, "lora_stack")
        return {**{k: pipe.get(k) for k in PIPE_KEYS}, "model": model, "clip": clip,
                "loader_settings": pipe.get("loader_settings")}, rows


class TtnPipeEncodeConcat(Node):
    """Encode prompts and join them to a pipe's, as tinyterraNodes' pipeEncodeConcat does: with
    toggle on, a non-empty positive (negative) is encoded (token normalization and weight
    interpretation as pipeLoader's) with optional_clip or the pipe's CLIP and joined with the
    first conditioning of optional_positive_from (or the pipe's positive) as Conditioning Concat
    joins them; an empty text keeps the pipe's. Off passes the pipe's parts on."""
    category = "🌏 tinyterra/pipe"
    output_node = True
    pipe: PIPE_LINE
    toggle: bool = Choice((True, False), True)
    positive: str = Text("Positive", multiline=True)
    positive_token_normalization: str = Choice(TOKEN_NORMALIZATIONS, "none")
    positive_weight_interpretation: str = Choice(WEIGHT_INTERPRETATIONS, "comfy")
    negative: str = Text("Negative", multiline=True)
    negative_token_normalization: str = Choice(TOKEN_NORMALIZATIONS, "none")
    negative_weight_interpretation: str = Choice(WEIGHT_INTERPRETATIONS, "comfy")
    optional_positive_from: CONDITIONING = None
    optional_negative_from: CONDITIONING = None
    optional_clip: CLIP = None
    outputs = {"pipe": PIPE_LINE, "positive": CONDITIONING, "negative": CONDITIONING, "clip": CLIP}
    comfy = ComfyAlias(("ttN pipeEncodeConcat",), optional=(
        "positive", "positive_token_normalization", "positive_weight_interpretation", "negative",
        "negative_token_normalization", "negative_weight_interpretation", "optional_positive_from",
        "optional_negative_from", "optional_clip"))

    def run(self):
        pipe = _pipe(self.pipe)
        if self.toggle in (False, "False"):
            return pipe, pipe.get("positive"), pipe.get("negative"), pipe.get("clip")
        clip = self.optional_clip if self.optional_clip is not None else pipe.get("clip")
        conds = {}
        for side in ("positive", "negative"):
            text = getattr(self, side)
            if text in ("", None, " "):
                conds[side] = pipe.get(side)
                continue
            source = getattr(self, f"optional_{side}_from")
            source = source if source is not None else pipe.get(side)
            if clip is None:
                raise NodeInputError("optional_clip", "no CLIP to encode with: connect one or give a pipe with one")
            if not source:
                raise NodeInputError(f"optional_{side}_from", "no conditioning to join: connect one or give a pipe "
                                                              f"with a {side} conditioning")
            if len(source) > 1:
                warn(f"optional_{side}_from has {len(source)} conditionings: only the first is joined, as in the pack")
            conds[side] = concat_conditioning(ttn_encode(clip, self, side), source, f"optional_{side}_from")
        new_pipe = {**{k: pipe.get(k) for k in PIPE_KEYS}, "positive": conds["positive"],
                    "negative": conds["negative"], "clip": clip, "loader_settings": pipe.get("loader_settings")}
        return new_pipe, conds["positive"], conds["negative"], clip
