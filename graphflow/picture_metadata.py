"""Workflows inside pictures: the text a PNG or WebP carries about how it was made.

- ours: PNG text chunk `graphflow` (SaveImage writes it);
- ComfyUI: PNG chunks `workflow` (UI format) and `prompt` (API format); in WebP, EXIF strings
  "workflow:{...}" / "prompt:{...}" (tags 0x010F and below, 0x0110);
- A1111 / Forge: PNG chunk `parameters` (in WebP/JPEG, EXIF UserComment), the generation
  settings as text, opened as the equivalent txt2img graph;
- videos (MP4/MOV, WebM/MKV): the container's metadata tags, `graphflow` (SaveVideo and SaveWEBM
  write it) or ComfyUI's `workflow` / `prompt`.
"""

import io
import json
import re

from PIL import Image, UnidentifiedImageError

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


# Settings that change the picture but have no node in the txt2img graph (others, such as hashes
# and the version, don't change it).
A1111_NOT_READ = {"denoising strength", "hires upscale", "hires upscaler", "hires steps", "hires resize",
                  "refiner", "refiner switch at", "adetailer model", "variation seed", "variation seed strength",
                  "face restoration", "eta", "ensd", "rng", "noise multiplier", "sgm noise multiplier"}


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
        return read_metadata(raw)
    try:
        picture = Image.open(io.BytesIO(raw))
    except (UnidentifiedImageError, OSError) as e:
        raise WorkflowFormatError(f"not a readable picture: {e}") from None
    chunks = {k: v for k, v in picture.info.items() if isinstance(v, str)}
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
        workflow = parse_workflow(a1111_graph(settings), registry)
        left = sorted(k for k in settings if k in A1111_NOT_READ)
        if left:
            workflow.notes.append({"node_id": None, "node_type": None, "input": None,
                                   "message": "A1111 settings not turned into nodes: " + ", ".join(left)})
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


def a1111_graph(settings: dict) -> dict:
    """The txt2img graph (ComfyUI API format) A1111 settings describe."""
    def number(key, kind, default):
        try:
            return kind(settings[key]) if key in settings else default
        except ValueError:
            raise WorkflowFormatError(f"A1111 parameters: {key} {settings[key]!r} is not a number") from None

    width, height = 512, 512
    if "size" in settings:
        match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", settings["size"])
        if not match:
            raise WorkflowFormatError(f"A1111 parameters: size {settings['size']!r} is not WIDTHxHEIGHT")
        width, height = int(match.group(1)), int(match.group(2))
    sampler, scheduler = a1111_sampler(settings.get("sampler", "Euler"), settings.get("schedule type"))
    model = settings.get("model", "model")
    if not model.endswith((".safetensors", ".ckpt")):
        model += ".safetensors"
    clip = ["1", 1]
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": model}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": settings["prompt"], "clip": clip}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": settings["negative"], "clip": clip}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height,
                                                            "batch_size": number("batch size", int, 1)}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "seed": number("seed", int, 0), "steps": number("steps", int, 20),
            "cfg": number("cfg scale", float, 7.0), "sampler_name": sampler, "scheduler": scheduler,
            "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0], "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "graphflow"}},
    }
    skip = settings.get("clip skip")
    if skip and int(skip) > 1:
        graph["8"] = {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["1", 1], "stop_at_clip_layer": -int(skip)}}
        graph["2"]["inputs"]["clip"] = graph["3"]["inputs"]["clip"] = ["8", 0]
    return graph
