"""Workflows inside pictures: the text a PNG or WebP carries about how it was made.

- ours: PNG text chunk `graphflow` (SaveImage writes it);
- ComfyUI: PNG chunks `workflow` (UI format) and `prompt` (API format): text chunks, or in an
  animated PNG (SaveAnimatedPNG) its own `comf` chunks ("key\0text", after the image data);
  in WebP, EXIF strings "workflow:{...}" / "prompt:{...}" (tags 0x010F and below, 0x0110);
- A1111 / Forge: PNG chunk `parameters` (in WebP/JPEG, EXIF UserComment), the generation
  settings as text, opened as the graph that makes the picture (txt2img, the prompt's LoRA tags,
  hires fix, refiner: a1111_graph);
- videos (MP4/MOV, WebM/MKV): the container's metadata tags, `graphflow` (SaveVideo and SaveWEBM
  write it) or ComfyUI's `workflow` / `prompt`.
"""

import io
import json
import re

from PIL import Image, UnidentifiedImageError

from graphflow.folders import MODEL_EXTENSIONS, folders
from graphflow.video import is_video, read_metadata
from graphflow.workflow import Workflow, WorkflowFormatError, parse_workflow

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXIF_USER_COMMENT = 0x9286

# A1111 sampler names -> ComfyUI sampler_name (its scheduler comes from a suffix or "Schedule type").
A1111_SAMPLERS = {
    "euler": "euler", "euler a": "euler_ancestral", "lms": "lms", "heun": "heun", "dpm2": "dpm_2",
    "dpm2 a": "dpm_2_ancestral", "dpm++ 2s a": "dpmpp_2s_ancestral", "dpm++ 2m": "dpmpp_2m",
    "dpm++ sde": "dpmpp_sde", "dpm++ 2m sde": "dpmpp_2m_sde", "dpm++ 2m sde heun": "dpmpp_2m_sde_heun",
    "dpm++ 3m sde": "dpmpp_3m_sde", "dpm fast": "dpm_fast", "dpm adaptive": "dpm_adaptive",
    "ddim": "ddim", "ddpm": "ddpm", "unipc": "uni_pc", "lcm": "lcm", "ipndm": "ipndm", "ipndm_v": "ipndm_v",
    "deis": "deis", "restart": "euler",
}
A1111_SCHEDULERS = {
    "karras": "karras", "exponential": "exponential", "sgm uniform": "sgm_uniform", "uniform": "simple",
    "simple": "simple", "normal": "normal", "ddim": "ddim_uniform", "beta": "beta", "kl optimal": "kl_optimal",
    "align your steps": "normal", "automatic": "normal",
}


# Settings that change the picture but have no node in the graph (others, such as hashes and the
# version, don't change it; hires fix, refiner and prompt tags are read by a1111_graph).
A1111_NOT_READ = {"adetailer model", "variation seed", "variation seed strength", "face restoration", "eta", "ensd",
                  "rng", "noise multiplier", "sgm noise multiplier"}
# A1111's latent hires upscalers (its shared.latent_upscale_modes) -> LatentUpscale's method. ComfyUI
# has no antialiasing and no plain nearest: antialiased bilinear equals bilinear when enlarging,
# nearest equals nearest-exact when enlarging by a whole factor; antialiased bicubic differs.
A1111_LATENT_UPSCALERS = {"latent": "bilinear", "latent (antialiased)": "bilinear", "latent (bicubic)": "bicubic",
                          "latent (bicubic antialiased)": "bicubic", "latent (nearest)": "nearest-exact",
                          "latent (nearest-exact)": "nearest-exact"}
# A1111's plain resizes among its upscalers -> ImageScale's method (its "None" resizes with Lanczos)
A1111_IMAGE_RESIZES = {"none": "lanczos", "lanczos": "lanczos", "nearest": "nearest-exact"}
# A1111's built-in Real-ESRGAN upscaler names -> the stem of the file it downloads; other model
# upscalers (ESRGAN, DAT, ...) are named by their file's stem
A1111_UPSCALER_FILES = {"r-esrgan 4x+": "RealESRGAN_x4plus", "r-esrgan 4x+ anime6b": "RealESRGAN_x4plus_anime_6B",
                        "r-esrgan 2x+": "RealESRGAN_x2plus", "r-esrgan general 4xv3": "realesr-general-x4v3",
                        "r-esrgan general wdn 4xv3": "realesr-general-wdn-x4v3",
                        "r-esrgan animevideo": "realesr-animevideov3"}
# A1111's extra-network tags in a prompt: <kind:arg:arg...>, all cut out of the text it encodes
_EXTRA_NETWORK = re.compile(r"<(\w+):([^>]+)>")


def is_picture(raw: bytes) -> bool:
    """Whether the bytes are a PNG, a WebP or a video: a file whose metadata may carry a workflow."""
    return raw.startswith(PNG_SIGNATURE) or (raw[:4] == b"RIFF" and raw[8:12] == b"WEBP") or is_video(raw)


def is_picture_file(path) -> bool:
    """Whether a file starts like a PNG, WebP or video (False when it can't be read: the JSON reader reports that)."""
    try:
        with open(path, "rb") as f:
            return is_picture(f.read(12))
    except OSError:
        return False


def picture_text(raw: bytes) -> dict[str, str]:
    """{key: text} of the workflow-bearing metadata of a PNG or WebP picture, or of a video."""
    if is_video(raw):
        return _with_comment(read_metadata(raw))
    try:
        picture = Image.open(io.BytesIO(raw))
    except (UnidentifiedImageError, OSError) as e:
        raise WorkflowFormatError(f"not a readable picture: {e}") from None
    chunks = {k: v for k, v in picture.info.items() if isinstance(v, str)}
    if raw.startswith(PNG_SIGNATURE):
        for key, text in _comf_chunks(raw).items():
            chunks.setdefault(key, text)
    exif = picture.getexif()
    for tag in list(range(0x0100, 0x0111)):
        value = exif.get(tag)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and ":" in value:
            key, _, text = value.partition(":")
            if key in ("workflow", "prompt", "graphflow") and text.lstrip().startswith("{"):
                chunks.setdefault(key, text)
    comment = exif.get_ifd(0x8769).get(EXIF_USER_COMMENT)
    if comment and "parameters" not in chunks:
        chunks["parameters"] = _user_comment(comment)
    return chunks


def _comf_chunks(raw: bytes) -> dict[str, str]:
    """{key: text} of a PNG's `comf` chunks, which ComfyUI's SaveAnimatedPNG writes instead of
    text chunks (PIL skips them) and its editor reads as text chunks: "key\0text", latin-1."""
    found, at = {}, len(PNG_SIGNATURE)
    while at + 8 <= len(raw):
        length, kind = int.from_bytes(raw[at:at + 4], "big"), raw[at + 4:at + 8]
        if kind == b"comf":
            key, _, text = raw[at + 8:at + 8 + length].partition(b"\0")
            found[key.decode("latin-1")] = text.decode("latin-1")
        if kind == b"IEND":
            break
        at += 12 + length
    return found


def _with_comment(tags: dict[str, str]) -> dict[str, str]:
    """A video's tags with VideoHelperSuite's: its comment tag is a JSON object of the prompt (as
    JSON text) and the workflow (as an object), opened as those keys."""
    try:
        comment = json.loads(tags.get("comment", ""))
    except ValueError:
        return tags
    if isinstance(comment, dict):
        for key in ("workflow", "prompt", "graphflow"):
            value = comment.get(key)
            if value is not None and key not in tags:
                tags[key] = value if isinstance(value, str) else json.dumps(value)
    return tags


def _user_comment(value) -> str:
    if isinstance(value, str):
        return value
    head, body = value[:8], value[8:]
    if head.startswith(b"UNICODE"):
        return body.decode("utf-16-be" if body[:1] == b"\x00" else "utf-16-le", "replace").rstrip("\x00")
    return body.decode("utf-8", "replace").rstrip("\x00")


def workflow_from_picture(raw: bytes, registry=None, what: str = "the picture") -> Workflow:
    """The workflow a picture carries: ours, else ComfyUI's editor graph (it has the layout),
    else ComfyUI's API graph, else A1111 parameters as a txt2img graph."""
    chunks = picture_text(raw)
    errors = []
    for key in ("graphflow", "workflow", "prompt"):
        if key in chunks:
            try:
                return parse_workflow(json.loads(chunks[key]), registry)
            except (json.JSONDecodeError, WorkflowFormatError) as e:
                errors.append(f"its '{key}' metadata: {e}")
    if "parameters" in chunks:
        settings = parse_a1111(chunks["parameters"])
        notes = []
        workflow = parse_workflow(a1111_graph(settings, notes), registry)
        left = sorted(k for k in settings if k in A1111_NOT_READ)
        if left:
            notes.insert(0, "A1111 settings not turned into nodes: " + ", ".join(left))
        workflow.notes.extend({"node_id": None, "node_type": None, "input": None, "message": m} for m in notes)
        return workflow
    if errors:
        raise WorkflowFormatError(f"{what}: couldn't read " + "; ".join(errors))
    raise WorkflowFormatError(f"{what} holds no workflow (no graphflow, ComfyUI or A1111 metadata)")


_SETTING = re.compile(r'\s*([\w \-/+.()]+):\s*("(?:\\.|[^"])*"|[^,]*)(?:,|$)')


def parse_a1111(text: str) -> dict:
    """The settings of A1111/Forge `parameters` text: prompt, negative, and the last line's
    "Key: value, ..." pairs (keys lower-cased)."""
    lines = text.strip().split("\n")
    settings = {}
    if lines and re.match(r"\s*Steps:\s*\d", lines[-1]):
        for match in _SETTING.finditer(lines.pop()):
            value = match.group(2).strip()
            if value.startswith('"') and value.endswith('"'):
                value = json.loads(value)
            settings[match.group(1).strip().lower()] = value
    prompt, negative, into_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            into_negative = True
            line = line[len("Negative prompt:"):].lstrip()
        (negative if into_negative else prompt).append(line)
    settings["prompt"] = "\n".join(prompt).strip()
    settings["negative"] = "\n".join(negative).strip()
    return settings


def a1111_sampler(name: str, schedule: str | None = None) -> tuple[str, str]:
    """ComfyUI's (sampler_name, scheduler) for an A1111 sampler name such as "DPM++ 2M Karras"."""
    key = name.strip().lower()
    scheduler = "normal"
    for suffix in ("karras", "exponential", "sgm uniform"):
        if key.endswith(" " + suffix):
            key, scheduler = key[: -len(suffix) - 1].strip(), A1111_SCHEDULERS[suffix]
    if schedule:
        scheduler = A1111_SCHEDULERS.get(schedule.strip().lower(), scheduler)
    if key not in A1111_SAMPLERS:
        raise WorkflowFormatError(f"A1111 sampler {name!r} has no ComfyUI equivalent; known: "
                                  + ", ".join(sorted(A1111_SAMPLERS)))
    return A1111_SAMPLERS[key], scheduler


def a1111_model_file(kind: str, name: str) -> str:
    """The file an A1111 model name means. A1111 names checkpoints, LoRAs, hypernetworks and
    upscale models by their file's stem, in any subfolder ("Model: sd_xl_base_1.0",
    "<lora:detail:0.5>"): the file of that stem (or that name) in the kind's folders, same case
    first; else NAME.safetensors, which validation then reports as missing."""
    name = name.strip()
    files = folders.list_models(kind)
    for same in (str.__eq__, lambda a, b: a.lower() == b.lower()):
        for file in files:
            base = file.rsplit("/", 1)[-1]
            stem = next((base[:-len(e)] for e in MODEL_EXTENSIONS if base.lower().endswith(e)), base)
            if same(file, name) or same(stem, name):
                return file
    return name if name.lower().endswith(MODEL_EXTENSIONS) else name + ".safetensors"


def a1111_extra_networks(prompt: str) -> tuple[str, list[tuple[str, list[str]]]]:
    """A1111's prompt without its extra-network tags, and the tags in order as (kind, args):
    "<lora:detail:0.6>" -> ("lora", ["detail", "0.6"]). As A1111's extra_networks.parse_prompt,
    every <word:...> is cut out (the text around it stays as it is) and the rest is encoded."""
    found = []
    text = _EXTRA_NETWORK.sub(lambda m: found.append((m.group(1).lower(), m.group(2).split(":"))) or "", prompt)
    return text, found


def a1111_hires_size(width: int, height: int, settings: dict) -> tuple[int, int, int, int]:
    """A1111's hires fix size (its calculate_target_resolution): the (width, height) it upscales
    to, and how many latent pixels (x, y) it then cuts off, half on each side. "Hires upscale"
    multiplies and truncates to whole pixels; "Hires resize" WxH overrides it: a 0 side follows
    the aspect ratio, else the picture is upscaled to cover WxH and the excess cut off."""
    resize_x = resize_y = 0
    if settings.get("hires resize"):
        match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", settings["hires resize"])
        if not match:
            raise WorkflowFormatError(f"A1111 parameters: hires resize {settings['hires resize']!r} "
                                      "is not WIDTHxHEIGHT")
        resize_x, resize_y = int(match.group(1)), int(match.group(2))
    if resize_x == 0 and resize_y == 0:
        scale = _number(settings, "hires upscale", float, 2.0)
        return int(width * scale), int(height * scale), 0, 0
    if resize_y == 0:
        return resize_x, resize_x * height // width, 0, 0
    if resize_x == 0:
        return resize_y * width // height, resize_y, 0, 0
    if width / height < resize_x / resize_y:
        to_x, to_y = resize_x, resize_x * height // width
    else:
        to_x, to_y = resize_y * width // height, resize_y
    return to_x, to_y, (to_x - resize_x) // 8, (to_y - resize_y) // 8


def a1111_refiner_step(steps: int, switch: float, scheduler: str, by_steps: bool = False) -> int:
    """The first step A1111 runs on the refiner (its apply_refiner): the first whose completed
    ratio reaches "Refiner switch at". The ratio is step / steps where the picture says "Refiner
    switch by sampling steps"; else (A1111 1.7 on) it goes by noise level, (999 - t) / 1000 for the
    training timestep t whose sigma is nearest the step's, here on SD's sigma table with the
    scheduler's sigmas."""
    if by_steps:
        ratios = [k / steps for k in range(steps)]
    else:
        from graphflow.sampling.model_sampling import DiscreteSchedule
        from graphflow.sampling.schedules import compute_sigmas

        table = DiscreteSchedule.from_betas()
        sigmas = compute_sigmas(table, scheduler, steps)[:steps]
        timesteps = (table.sigmas[None, :] - sigmas[:, None]).abs().argmin(dim=1)
        ratios = ((999 - timesteps) / 1000).tolist()
    return next((k for k, ratio in enumerate(ratios) if ratio >= switch), steps)


def _number(settings: dict, key: str, kind, default):
    try:
        return kind(settings[key]) if key in settings else default
    except ValueError:
        raise WorkflowFormatError(f"A1111 parameters: {key} {settings[key]!r} is not a number") from None


def _same(value: str | None, same: str) -> str | None:
    """A hires setting's value, None for A1111's "Use same ..." or a missing one."""
    return None if value is None or value.strip().lower() == same else value


def a1111_graph(settings: dict, notes: list[str] | None = None) -> dict:
    """The graph (ComfyUI API format) that makes the picture A1111 settings describe: txt2img with
    the prompt's LoRA and hypernetwork tags as loaders, then the refiner's steps, or the hires
    fix's upscale and second pass. What is left out is said in `notes`."""
    notes = [] if notes is None else notes
    graph, loaded, encoded = {}, {}, {}

    def add(class_type, title=None, **inputs):
        node_id = str(len(graph) + 1)
        graph[node_id] = {"class_type": class_type, "inputs": inputs}
        if title:
            graph[node_id]["_meta"] = {"title": title}
        return [node_id, 0]

    def load(checkpoint: str, networks) -> tuple[list, list, list]:
        """(model, clip, vae) of a checkpoint with the prompt's networks applied; the same nodes
        for the same checkpoint and networks (the hires pass reuses the first pass's)."""
        key = (checkpoint, repr(networks))
        if key in loaded:
            return loaded[key]
        if checkpoint not in loaded:
            loaded[checkpoint] = add("CheckpointLoaderSimple", ckpt_name=a1111_model_file("checkpoints", checkpoint))[0]
        loader = loaded[checkpoint]
        model, clip = [loader, 0], [loader, 1]
        for kind, args in networks:
            tag = f"<{kind}:{':'.join(args)}>"
            positional = [a for a in args if len(a.split("=")) != 2]
            named = dict(a.split("=") for a in args if len(a.split("=")) == 2)

            def weight(value):
                try:
                    return float(value)
                except ValueError:
                    raise WorkflowFormatError(f"A1111 prompt tag {tag}: weight {value!r} is not a number") from None

            if kind in ("lora", "lyco") and positional:  # A1111's order: <lora:name:te:unet:dyn>
                te = weight(named.get("te", positional[1] if len(positional) > 1 else 1.0))
                unet = weight(named.get("unet", positional[2] if len(positional) > 2 else te))
                if "dyn" in named or len(positional) > 3:
                    notes.append(f"A1111 prompt tag {tag}: its dyn dimension is not read (the whole LoRA is applied)")
                node = add("LoraLoader", model=model, clip=clip, lora_name=a1111_model_file("loras", positional[0]),
                           strength_model=unet, strength_clip=te)[0]
                model, clip = [node, 0], [node, 1]
            elif kind == "hypernet" and positional:
                model = add("HypernetworkLoader", model=model,
                            hypernetwork_name=a1111_model_file("hypernetworks", positional[0]),
                            strength=weight(positional[1] if len(positional) > 1 else 1.0))
            else:
                notes.append(f"A1111 prompt tag {tag}: no node for it, left out")
        skip = _number(settings, "clip skip", int, 1)
        if skip > 1:
            clip = add("CLIPSetLastLayer", clip=clip, stop_at_clip_layer=-skip)
        loaded[key] = model, clip, [loader, 2]
        return loaded[key]

    def encode(clip, positive: str, negative: str):
        key = (tuple(clip), positive, negative)  # the hires pass reuses the same prompts' nodes
        if key not in encoded:
            encoded[key] = (add("CLIPTextEncode", text=positive, clip=clip),
                            add("CLIPTextEncode", text=negative, clip=clip))
        return encoded[key]

    width, height = 512, 512
    if "size" in settings:
        match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", settings["size"])
        if not match:
            raise WorkflowFormatError(f"A1111 parameters: size {settings['size']!r} is not WIDTHxHEIGHT")
        width, height = int(match.group(1)), int(match.group(2))
    sampler, scheduler = a1111_sampler(settings.get("sampler", "Euler"), settings.get("schedule type"))
    seed, steps, cfg = _number(settings, "seed", int, 0), _number(settings, "steps", int, 20), \
        _number(settings, "cfg scale", float, 7.0)
    checkpoint = settings.get("model", "model")
    prompt, networks = a1111_extra_networks(settings["prompt"])
    if "lora hashes" in settings:
        notes.append(f"A1111 Lora hashes (to check the LoRA files by): {settings['lora hashes']}")
    if _EXTRA_NETWORK.search(settings["negative"]):
        notes.append("A1111 applies no <...> tags in the negative prompt (it encodes them as text): kept in its text")
    model, clip, vae = load(checkpoint, networks)
    positive, negative = encode(clip, prompt, settings["negative"])
    latent = add("EmptyLatentImage", width=width, height=height, batch_size=_number(settings, "batch size", int, 1))
    sampling = {"seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler, "scheduler": scheduler}
    hires = any(k in settings for k in ("hires upscale", "hires resize", "hires upscaler", "hires steps"))
    if "denoising strength" in settings and not hires:
        notes.append("A1111 denoising strength without hires fix (an img2img picture?): opened as txt2img")
    refiner = _same(settings.get("refiner"), "none")
    if refiner:
        refiner = re.sub(r"\s*\[\w+\]\s*$", "", refiner)  # its short title: "name [hash]"
        refiner = None if refiner == checkpoint else refiner  # A1111 switches only to another checkpoint
    switch = _number(settings, "refiner switch at", float, 0.8)
    if refiner and hires:
        notes.append("A1111 refiner with hires fix: not turned into nodes (A1111's 'Hires refiner' option "
                     "decides its pass)")
        refiner = None
    first = a1111_refiner_step(steps, switch, scheduler, "refiner switch by sampling steps" in settings) \
        if refiner else steps
    if refiner and first < steps:  # the base model's steps leave their noise to the refiner's
        refiner_model, refiner_clip, vae = load(refiner, [])
        advanced = {"noise_seed": seed, **{k: v for k, v in sampling.items() if k != "seed"}}
        if first > 0:
            latent = add("KSamplerAdvanced", "Refiner: base steps", model=model, add_noise="enable", **advanced,
                         positive=positive, negative=negative, latent_image=latent, start_at_step=0,
                         end_at_step=first, return_with_leftover_noise="enable")
        positive, negative = encode(refiner_clip, prompt, settings["negative"])
        samples = add("KSamplerAdvanced", "Refiner: refiner steps", model=refiner_model,
                      add_noise="disable" if first > 0 else "enable", **advanced, positive=positive,
                      negative=negative, latent_image=latent, start_at_step=first, end_at_step=10000,
                      return_with_leftover_noise="disable")
    else:
        samples = add("KSampler", model=model, **sampling, positive=positive, negative=negative,
                      latent_image=latent, denoise=1.0)
    if hires:
        samples, vae = _hires_fix(settings, notes, add, load, encode, samples, vae, width, height, sampling,
                                  checkpoint)
    image = add("VAEDecode", samples=samples, vae=vae)
    add("SaveImage", images=image, filename_prefix="graphflow")
    return graph


def _hires_fix(settings, notes, add, load, encode, samples, vae, width, height, sampling, checkpoint):
    """A1111's hires fix after the first pass (its sample_hr_pass): upscale the latents, or decode,
    upscale the picture and encode it again; cut off what "Hires resize" leaves over; then sample
    again from the upscaled latents with the same seed, Hires steps steps at Denoising strength
    (KSampler's denoise takes the same last steps of a longer schedule as A1111's img2img steps).
    Returns (latents, vae)."""
    to_x, to_y, cut_x, cut_y = a1111_hires_size(width, height, settings)
    hires_checkpoint = _same(settings.get("hires checkpoint"), "use same checkpoint")
    prompt, networks = a1111_extra_networks(settings.get("hires prompt") or settings["prompt"])
    model, clip, hires_vae = load(re.sub(r"\s*\[\w+\]\s*$", "", hires_checkpoint or checkpoint), networks)
    upscaler = settings.get("hires upscaler") or "Latent"
    key = upscaler.strip().lower()
    if key in A1111_LATENT_UPSCALERS:
        method = A1111_LATENT_UPSCALERS[key]
        w, h, to_w, to_h = width // 8, height // 8, to_x // 8, to_y // 8
        if key == "latent (bicubic antialiased)" or (key == "latent (antialiased)" and (to_w < w or to_h < h)) \
                or (key == "latent (nearest)" and (to_w % w or to_h % h)):
            notes.append(f"A1111 hires upscaler {upscaler!r}: ComfyUI has no such resize here, {method} is used")
        samples = add("LatentUpscale", "Hires fix: upscale", samples=samples, upscale_method=method,
                      width=to_x, height=to_y, crop="disabled")
    else:
        image = add("VAEDecode", samples=samples, vae=vae)
        if key not in A1111_IMAGE_RESIZES:  # a model (A1111 then resizes its output to the size with Lanczos)
            loader = add("UpscaleModelLoader", model_name=a1111_model_file(
                "upscale_models", A1111_UPSCALER_FILES.get(key, upscaler)))
            image = add("ImageUpscaleWithModel", "Hires fix: upscale", upscale_model=loader, image=image)
        image = add("ImageScale", image=image, upscale_method=A1111_IMAGE_RESIZES.get(key, "lanczos"),
                    width=to_x, height=to_y, crop="disabled")
        samples = add("VAEEncode", pixels=image, vae=hires_vae)
    if cut_x or cut_y:
        samples = add("LatentCrop", samples=samples, width=(to_x // 8 - cut_x) * 8, height=(to_y // 8 - cut_y) * 8,
                      x=cut_x // 2 * 8, y=cut_y // 2 * 8)
    name = _same(settings.get("hires sampler"), "use same sampler")
    schedule = _same(settings.get("hires schedule type"), "use same scheduler")
    sampler, scheduler = sampling["sampler_name"], sampling["scheduler"]
    if name or schedule:
        sampler, scheduler = a1111_sampler(name or settings.get("sampler", "Euler"),
                                           schedule or settings.get("schedule type"))
    positive, negative = encode(clip, prompt, settings.get("hires negative prompt") or settings["negative"])
    samples = add("KSampler", "Hires fix: second pass", model=model, seed=sampling["seed"],
                  steps=_number(settings, "hires steps", int, 0) or sampling["steps"],
                  cfg=_number(settings, "hires cfg scale", float, sampling["cfg"]), sampler_name=sampler,
                  scheduler=scheduler, positive=positive, negative=negative, latent_image=samples,
                  denoise=_number(settings, "denoising strength", float, 0.75))
    return samples, hires_vae
