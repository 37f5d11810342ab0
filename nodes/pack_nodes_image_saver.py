"""alexopus' ComfyUI-Image-Saver (formerly giriss' comfy-image-saver), under the pack's class names,
inputs and outputs: Image Saver (pictures saved with the A1111-style "parameters" text Civitai
reads: model, LoRA and embedding hashes), Image Saver Metadata and Image Saver Simple (the same in
two steps), the literals (Seed Generator, String / Width/Height / Cfg / Int / Float Literal), the
selectors (Sampler Selector, Scheduler Selector and its (Comfy), (inspire) and (Eff.) kinds,
SchedulerToString, SchedulerComfyToString, SamplerToString, Input Parameters), Any to String,
Workflow Input Value, the loaders with names (Checkpoint Loader with Name, UNet loader with Name)
and Conditioning Concat Optional; giriss' older bare class names (Seed Generator, String Literal,
Checkpoint Selector, ...) are aliased where their inputs are the same.

Read from alexopus/ComfyUI-Image-Saver, version by version along CHANGELOG.md @334b80f2 (v1.15.1):
nodes.py @02e9c5c5 (Image Saver's inputs; @a6446fd8 for an earlier layout with manual_hash),
utils_civitai.py @a1d4f429 (the Hashes written, civitai data), utils.py @31d1a1f4 (model, LoRA
and embedding look-ups, file-name clean-up), nodes_literals.py @6ac8e4f1, nodes_selectors.py
@067970fa, __init__.py @6ac8e4f1 and @09b60955 (class names). The later nodes.py that calls
utils_civitai (Image Saver Metadata and Simple, show_preview, the a1111_params output,
scheduler_name; several models), nodes_literals.py (Seed Generator's increment, the inputs renamed
size and cfg, Conditioning Concat Optional), nodes_selectors.py (v1.13 on: Input Parameters' six
outputs, the inspire and Eff. selectors, Any to String, Workflow Input Value) and v1.15's custom
text were seen without a commit to name. From the zeeoale fork: saver/saver.py @1dab9773,
prompt_metadata_extractor.py @29c089f7 (LoRA weights as the pack's later extractor reads them),
nodes.py @46505739 (the layout before clip_skip) and @0272c823 (giriss' names).

Left out: the Image Saver pipe nodes (Make / Edit / Read Image Saver Pipe, Image Saver (From Pipe)),
Civitai Hash Fetcher (a web service), Random Tag Picker, RandomShapeGenerator, Empty Latent Image
(Image Saver) and Load Image with metadata; giriss' Save Image w/Metadata (its inputs come in
another order); Input Parameters' text outputs of its versions before v1.12. No network:
civitai.com is never asked (see ImageSaver's help).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from graphflow.api import ANY, CONDITIONING, FLOAT, IMAGE, INT, STRING, Bool, Choice, ComfyAlias, Float, Int, Node, \
    NodeInputError, Text, folders, safe_join, show, socket_type, subfolder_name, warn, workflow_texts
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from graphflow.folders import MODEL_EXTENSIONS, UnsafePathError, file_name_problem
from nodes.conditioning import concat_conditioning
from nodes.image import MAX_SIZE, _write_at, comfy_exif
from nodes.loaders import DEMO_CHECKPOINT, LoadCheckpoint, LoadDiffusionModel

COMFY_PACK = "ComfyUI-Image-Saver"  # the custom node pack this module's ComfyUI classes come from

METADATA = socket_type("METADATA", "#8d6e63", "Image Saver's generation metadata (Image Saver Metadata's)")

SEED_MAX = 0xFFFFFFFFFFFFFFFF
FLOAT_MIN, FLOAT_MAX = 2.2250738585072014e-308, 1.7976931348623157e308  # the pack's sys.float_info bounds
EXTRA_SCHEDULERS = ("AYS SDXL", "AYS SD1", "AYS SVD", "GITS[coeff=1.2]")  # the pack's additions to Comfy's
DEFAULT_TIME_FORMAT = "%Y-%m-%d-%H%M%S"
EXTENSIONS = ("png", "jpeg", "jpg", "webp")
MAX_HASH_LENGTH = 16  # longer manual hashes (a full sha256, blake3) are skipped, as in the pack
MAX_MANUAL_HASHES = 30
# ComfyUI's supported_pt_extensions, which the pack's model and LoRA look-ups read
PT_EXTENSIONS = (".safetensors", ".sft", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl")
JPEG_MAX_EXIF = 65533  # the most EXIF bytes Pillow writes into a JPEG (its APP1 segment)
FORMAT_MAX_SIDE = {"webp": 16383, "jpeg": 65500, "jpg": 65500}  # the most pixels a side libwebp / libjpeg write
SHOWN_NAME = 60  # characters of a name a message shows

# ComfyUI sampler names -> Civitai's (the pack's table, after civitai's constants.ts)
CIVITAI_SAMPLERS = {
    "euler_ancestral": "Euler a", "euler": "Euler", "lms": "LMS", "heun": "Heun", "dpm_2": "DPM2",
    "dpm_2_ancestral": "DPM2 a", "dpmpp_2s_ancestral": "DPM++ 2S a", "dpmpp_2m": "DPM++ 2M",
    "dpmpp_sde": "DPM++ SDE", "dpmpp_2m_sde": "DPM++ 2M SDE", "dpmpp_3m_sde": "DPM++ 3M SDE",
    "dpm_fast": "DPM fast", "dpm_adaptive": "DPM adaptive", "ddim": "DDIM", "plms": "PLMS",
    "uni_pc_bh2": "UniPC", "uni_pc": "UniPC", "lcm": "LCM",
}

# The pack's prompt patterns (fixed, not the user's): an embedding name, a <lora:NAME:...> tag; it
# finds them in any case but easy_remix cleans only the lower-case ones
EMBEDDING_TEXT, LORA_TEXT = r"embedding:([^,\s():]+)", r"<lora:([^>:]+)(?::([^>]+))?>"
EMBEDDING, LORA = re.compile(EMBEDDING_TEXT, re.IGNORECASE), re.compile(LORA_TEXT, re.IGNORECASE)
PROMPT_CONTROL = re.compile(r"\b[A-Z]+\([^)]*\)")  # prompt-control edits: STYLE(A1111, mean), SHIFT(1)
LORA_CASED = re.compile(LORA_TEXT)  # easy_remix's
WEIGHT = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")


def _scannable(text: str, end: str) -> tuple[str, str]:
    """text cut after its last `end` character (the one each match of LORA / PROMPT_CONTROL ends
    with) and the rest, where no match can be. Scanning the rest would make each unclosed
    "<lora:a:" or "A(" read on to the text's end: quadratic ("<lora:a:" * 20000 took minutes,
    holding the GIL). In the part before, a scan that reaches the next `end` matches there and
    the search goes on after it, so each character is read a bounded number of times."""
    cut = text.rfind(end) + 1
    return text[:cut], text[cut:]


def lora_tags(prompt: str) -> list[tuple[str, str]]:
    """The prompt's <lora:NAME[:...]> tags in any case: (NAME, what follows its colon)."""
    return LORA.findall(_scannable(prompt, ">")[0])


def _short(text: str) -> str:
    """A name for a message: its first SHOWN_NAME characters, quoted, "..." after when longer."""
    return repr(text[:SHOWN_NAME]) + ("..." if len(text) > SHOWN_NAME else "")


# -- file hashes ----------------------------------------------------------------------------------

_SHA256: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> hex digest


def file_sha256(path) -> str:
    """The file's SHA-256 (hex), computed once per file and version: kept by path, size and
    modification time. The pack keeps it in a .sha256 file beside the model; nothing is written
    into the models folders here."""
    path = os.path.realpath(path)
    stat = os.stat(path)
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256:
        with open(path, "rb") as f:
            _SHA256[key] = hashlib.file_digest(f, "sha256").hexdigest()
    return _SHA256[key]


def _model_file(kind: str, name: str) -> Path | None:
    try:
        return folders.find_model(kind, name)
    except (FileNotFoundError, ValueError):
        return None


def _first_by(names: list[str], key) -> dict:
    """{key(name): the first of `names` with that key}."""
    firsts = {}
    for name in names:
        firsts.setdefault(key(name), name)
    return firsts


class ModelFiles:
    """The model, LoRA and embedding files names stand for, as the pack finds them. Each models
    folder is listed once and each name looked up once (a prompt may hold thousands of tags: the
    pack walks the folder for each), for one Image Saver run; None for a name not found."""

    def __init__(self):
        self._indexes: dict[str, tuple[dict, dict]] = {}
        self._found: dict[tuple[str, str], Path | None] = {}

    def _index(self, kind: str, whole, part, extensions=MODEL_EXTENSIONS) -> tuple[dict, dict]:
        """The kind's files by whole(name) and by part(name), first listed first."""
        if kind not in self._indexes:
            listed = folders.list_models(kind, extensions)
            self._indexes[kind] = _first_by(listed, whole), _first_by(listed, part)
        return self._indexes[kind]

    def _once(self, what: str, name: str, find) -> Path | None:
        if (what, name) not in self._found:
            self._found[what, name] = find(name)
        return self._found[what, name]

    def checkpoint(self, name: str) -> Path | None:
        """A model name as the pack's full_checkpoint_path_for finds it: ".safetensors" added
        unless it ends in a model extension (or .gguf); the checkpoint of that path, else of that
        file name; then the diffusion model so; None when none is (or the name is empty)."""
        return self._once("checkpoints", name, self._find_checkpoint)

    def _find_checkpoint(self, name: str) -> Path | None:
        if not name:
            return None
        if os.path.splitext(name)[1].lower() not in PT_EXTENSIONS + (".gguf",):
            name += ".safetensors"
        for kind in ("checkpoints", "diffusion_models"):
            by_path, by_name = self._index(kind, Path, lambda x: Path(x).name, MODEL_EXTENSIONS + (".gguf",))
            found = by_path.get(Path(name)) or by_name.get(Path(name).name)
            if found:
                return _model_file(kind, found)
        return None

    def lora(self, name: str) -> Path | None:
        """A <lora:NAME> as the pack finds it: ".safetensors" added unless NAME ends in a model
        extension, then the LoRA whose file name (without its folders) is that."""
        return self._once("loras", name, self._find_lora)

    def _find_lora(self, name: str) -> Path | None:
        if os.path.splitext(name)[1] not in PT_EXTENSIONS:
            name += ".safetensors"
        _, by_name = self._index("loras", Path, lambda x: Path(x).name)
        return _model_file("loras", by_name[name]) if name in by_name else None

    def embedding(self, name: str) -> Path | None:
        """An embedding:NAME as the pack finds it: the embedding whose path without extension is
        NAME, else the first whose file stem is NAME's."""
        return self._once("embeddings", name, self._find_embedding)

    def _find_embedding(self, name: str) -> Path | None:
        by_path, by_stem = self._index("embeddings", lambda x: Path(x).with_suffix(""), lambda x: Path(x).stem)
        found = by_path.get(Path(name)) or by_stem.get(Path(name).stem)
        return _model_file("embeddings", found) if found else None


# -- the parameters text --------------------------------------------------------------------------


def civitai_sampler_name(sampler_name: str, scheduler: str) -> str:
    """The pack's Civitai sampler name: "_gpu" dropped; a known sampler by Civitai's name, with
    " Karras" / " Exponential" for those schedulers; another as sampler_scheduler (plain with
    "normal")."""
    sampler_name = sampler_name.replace("_gpu", "")
    if sampler_name in CIVITAI_SAMPLERS:
        suffix = {"karras": " Karras", "exponential": " Exponential"}.get(scheduler, "")
        return CIVITAI_SAMPLERS[sampler_name] + suffix
    return sampler_name if scheduler == "normal" else f"{sampler_name}_{scheduler}"


def prompt_resources(prompts: list[str], files: ModelFiles) -> tuple[dict, dict]:
    """The LoRAs and embeddings the prompts name that are found: ({"LORA:name": (path, weight,
    hash)}, {"embed:name": (path, weight, hash)}), hash the first 10 hex digits of the file's
    SHA-256. A LoRA's weight is its tag's first number (1 when none reads); an embedding's the
    prompt weight of the text it stands in, as ComfyUI's prompt parser weighs it."""
    from graphflow.models.tokenizer import parse_weighted_prompt

    loras, embeddings = {}, {}
    for prompt in prompts:
        try:
            weighted = parse_weighted_prompt(prompt)
        except RecursionError:  # brackets nested past Python's depth: read unweighted
            weighted = [(prompt, 1.0)]
        for text, weight in weighted:
            for name in EMBEDDING.findall(text):
                if path := files.embedding(name):
                    embeddings[f"embed:{name}"] = (path, weight, file_sha256(path)[:10])
        for name, tail in lora_tags(prompt):
            if path := files.lora(name):
                try:
                    weight = float(tail.split(":")[0])
                except ValueError:
                    weight = 1
                loras[f"LORA:{name}"] = (path, weight, file_sha256(path)[:10])
    return loras, embeddings


def manual_hash(entry: str, with_weights: bool) -> tuple[str | None, str, float | None] | None:
    """One additional_hashes entry as the pack reads it: "HASH", "Name:HASH", and with weights
    (download_civitai_data on) "HASH:Weight" or "Name:HASH:Weight"; (name, hash, weight), or None
    when it is none of these."""
    parts = [part.strip() for part in entry.split(":")]
    if len(parts) > (3 if with_weights else 2) or not all(parts):
        return None
    if len(parts) == 3:
        if not WEIGHT.fullmatch(parts[2]):
            return None
        return parts[0], parts[1], float(parts[2])
    if len(parts) == 2 and with_weights:
        try:  # a number after the colon is a weight, as the pack reads it (with float())
            return None, parts[0], float(parts[1])
        except ValueError:
            pass
    return (parts[0], parts[1], None) if len(parts) == 2 else (None, parts[0], None)


def manual_hashes(text: str, existing: set[str], with_weights: bool) -> dict:
    """additional_hashes (comma or line separated) as the pack keeps them: {name: (None, weight,
    hash)}, unnamed ones as manual1, manual2 ...; entries it can't read, hashes longer than 16
    characters, repeated ones and those of the prompt's own resources skipped; 30 at most."""
    entries, unnamed = {}, 0
    for entry in text.replace("\n", ",").split(",") if text else []:
        if not entry.strip():
            continue
        read = manual_hash(entry, with_weights)
        if read is None:
            warn(f"additional_hashes: can't read {_short(entry.strip())}: expected HASH or Name:HASH"
                 + (" (with :Weight after)" if with_weights else ""))
            continue
        name, value, weight = read
        if len(value) > MAX_HASH_LENGTH:
            warn(f"additional_hashes: {_short(value)} skipped: longer than {MAX_HASH_LENGTH} characters")
            continue
        if any(value.lower() == kept.lower() for _, _, kept in entries.values()) or value.lower() in existing:
            continue
        if name is None:
            unnamed += 1
            name = f"manual{unnamed}"
        entries[name] = (None, weight, value)
        if len(entries) >= MAX_MANUAL_HASHES:
            break
    return entries


def clean_prompt(prompt: str) -> str:
    """easy_remix: LoRA tags removed, embedding:path/to/name shortened to name, prompt-control
    edits (STYLE(...), SHIFT(...)) removed."""
    head, rest = _scannable(prompt, ">")
    prompt = LORA_CASED.sub("", head) + rest
    prompt = re.sub(EMBEDDING_TEXT, lambda m: Path(m.group(1)).stem, prompt)
    head, rest = _scannable(prompt, ")")
    return PROMPT_CONTROL.sub("", head) + rest


def parameters_text(positive: str, negative: str, steps: int, sampler: str, cfg: float, seed: int, width: int,
                    height: int, clip_skip: int, custom: str, model_hash: str | None, model: str, hashes: dict) -> str:
    """The A1111 "parameters" text in the pack's field order (custom text after Clip skip)."""
    clip = f", Clip skip: {abs(clip_skip)}" if clip_skip != 0 else ""
    clip += f", {custom}" if custom else ""
    model_hash = f", Model hash: {model_hash}" if model_hash else ""
    hashes = f", Hashes: {json.dumps(hashes, separators=(',', ':'))}" if hashes else ""
    return (f"{positive.strip()}\nNegative prompt: {negative.strip()}\n"
            f"Steps: {steps}, Sampler: {sampler}, CFG scale: {cfg}, Seed: {seed}, "
            f"Size: {width}x{height}{clip}{model_hash}, Model: {model}{hashes}, Version: ComfyUI")


@dataclass
class Metadata:
    """What Image Saver writes, as the pack's Metadata (Image Saver Metadata gives it on)."""
    modelname: str = ""
    positive: str = ""
    negative: str = ""
    width: int = 512
    height: int = 512
    seed: int = 0
    steps: int = 20
    cfg: float = 7.0
    sampler_name: str = ""
    scheduler_name: str = "normal"
    denoise: float = 1.0
    clip_skip: int = 0
    custom: str = ""
    additional_hashes: str = ""
    ckpt_path: str = ""
    a111_params: str = ""
    final_hashes: str = ""


def more_models(modelname: str, additional_hashes: str, files: ModelFiles) -> tuple[str, str]:
    """Several comma-separated models: the first is the model, each other one found is added to
    additional_hashes as name:hash."""
    names = [name.strip() for name in modelname.split(",")]
    for name in names[1:]:
        if path := files.checkpoint(name):
            additional_hashes += ("," if additional_hashes else "") + f"{name}:{file_sha256(path)[:10]}"
    return names[0], additional_hashes


def make_metadata(modelname: str, positive: str, negative: str, width: int, height: int, seed: int, steps: int,
                  cfg: float, sampler_name: str, scheduler_name: str, denoise: float, clip_skip: int, custom: str,
                  additional_hashes: str, download_civitai_data: bool, easy_remix: bool) -> Metadata:
    """The pack's metadata: the model's, the prompt's LoRAs' and embeddings' and the manual hashes,
    the parameters text and the hashes to chain (name:hash, :weight after with civitai data on)."""
    files = ModelFiles()
    modelname, additional_hashes = more_models(modelname, additional_hashes, files)
    path = files.checkpoint(modelname)
    model_hash = file_sha256(path)[:10] if path else ""
    loras, embeddings = prompt_resources([positive, negative], files)
    existing = {model_hash.lower()} | {t[2].lower() for t in (*loras.values(), *embeddings.values())}
    manual = manual_hashes(additional_hashes, existing, download_civitai_data)
    resources = {modelname: (path, None, model_hash)} | loras | embeddings | manual
    if download_civitai_data:
        # what the pack writes when civitai.com gives nothing: each hash upper-cased into Hashes,
        # the model's into Model hash instead
        warn("download_civitai_data: civitai.com is not asked here; the metadata has the hashes only")
        hashes = {name: value.upper() for name, (_, _, value) in resources.items() if name != modelname}
        written_model_hash = model_hash.upper()
    else:
        hashes = {name: value for name, (_, _, value) in (embeddings | loras | manual).items()}
        hashes["model"] = written_model_hash = model_hash
    if easy_remix:
        positive, negative = clean_prompt(positive), clean_prompt(negative)
    model = os.path.splitext(os.path.basename(modelname))[0]
    text = parameters_text(positive, negative, steps, civitai_sampler_name(sampler_name, scheduler_name), cfg, seed,
                           width, height, clip_skip, custom, written_model_hash, model, hashes)
    chained = ",".join((f"{Path(name.split(':')[-1]).stem}:" if name else "") + value
                       + (f":{weight}" if weight is not None and download_civitai_data else "")
                       for name, (_, weight, value) in resources.items())
    return Metadata(modelname, positive, negative, width, height, seed, steps, cfg, sampler_name, scheduler_name,
                    denoise, clip_skip, custom, additional_hashes, str(path or ""), text, chained)


# -- file names -----------------------------------------------------------------------------------


def timestamp(time_format: str, now: datetime) -> str:
    try:
        return now.strftime(time_format)
    except ValueError:
        return now.strftime(DEFAULT_TIME_FORMAT)


PLACEHOLDERS = ("%date", "%time", "%model", "%width", "%height", "%seed", "%counter", "%sampler_name", "%steps",
                "%cfg", "%scheduler_name", "%scheduler", "%basemodelname", "%denoise", "%clip_skip")
# the longer of two placeholders that start alike first (%scheduler_name before %scheduler)
PLACEHOLDER = re.compile("|".join(sorted(PLACEHOLDERS, key=len, reverse=True)))
MAX_NAME_TRIES = 1000  # names tried for one picture before giving up
MAX_EXPANDED = 65536  # characters a filled-in path or filename may reach (the names are checked after)


def expand_pattern(text: str, values: dict, time_format: str, now: datetime | None = None,
                   input_name: str = "filename") -> str:
    """The pack's placeholders filled in: %date (Y-m-d), %time (time_format), %model (the model's
    file name), %width, %height, %seed, %counter, %sampler_name, %steps, %cfg, %scheduler_name or
    %scheduler, %basemodelname (without extension), %denoise, %clip_skip. In one pass: the pack
    replaces them one after another, so a value holding a later placeholder is filled in again
    (and a name can grow to millions of characters); here a value is written as it is. A result
    longer than MAX_EXPANDED characters is refused (NodeInputError on `input_name`)."""
    now = now or datetime.now()
    model = os.path.basename(values["modelname"])
    filled = {"%date": timestamp("%Y-%m-%d", now), "%time": timestamp(time_format, now), "%model": model,
              "%width": values["width"], "%height": values["height"], "%seed": values["seed"],
              "%counter": values["counter"], "%sampler_name": values["sampler_name"], "%steps": values["steps"],
              "%cfg": values["cfg"], "%scheduler_name": values["scheduler"], "%scheduler": values["scheduler"],
              "%basemodelname": os.path.splitext(model)[0], "%denoise": values["denoise"],
              "%clip_skip": values["clip_skip"]}
    pieces, length, start = [], 0, 0
    for match in PLACEHOLDER.finditer(text):
        pieces += [text[start:match.start()], str(filled[match.group()])]
        length += len(pieces[-2]) + len(pieces[-1])
        start = match.end()
        if length > MAX_EXPANDED:
            break
    pieces.append(text[start:])
    length += len(pieces[-1])
    if length > MAX_EXPANDED:
        raise NodeInputError(input_name, f"the placeholders filled in make a name of over {MAX_EXPANDED} characters: "
                                         "expected a shorter pattern or shorter values")
    return "".join(pieces)


def sanitize(name: str) -> str:
    """The pack's file-name clean-up: <>:"|?* and control characters removed, trailing dots and
    spaces too (slashes are kept: they make folders)."""
    return re.sub(r'[<>:"|?*\x00-\x1f]', "", name).rstrip(". ")


def unique_stem(folder: Path, stem: str, extensions: tuple[str, ...]) -> str:
    """The pack's name for a new file: the stem when no file starts with it and ends with the
    extension, else stem_NN, NN one more than the highest number after a last "_" among those.
    `extensions` are the picture's and, when the workflow is saved beside it, "json" (the pack
    looks at the picture's only and overwrites a .json of that name). Names are compared without
    case, as a case-insensitive volume (macOS, Windows) compares them: "Pic.png" takes "pic"."""
    stem_lower = stem.lower()
    taken = [f for f in os.listdir(folder) if f.lower().startswith(stem_lower) and f.lower().endswith(extensions)]
    if not taken:
        return stem
    numbers = [int(part) for part in (os.path.splitext(f)[0].split("_")[-1] for f in taken) if part.isdecimal()]
    return f"{stem}_{max(numbers, default=0) + 1:02d}"


def output_folder(path: str) -> Path:
    """Image Saver's path: a folder inside the output folder (made when missing). The pack joins it
    to the output folder, so an absolute path or a drive would leave it: refused, as '..', control
    characters and over-long names are (graphflow.folders.file_name_problem: "a:b" reads as a
    drive there too), and a link leading out."""
    path = path.replace("\\", "/").strip()
    if path in ("", ".", "./"):
        return folders.outputs.resolve()
    try:
        if problem := file_name_problem(path):
            raise UnsafePathError(problem)
        folder = safe_join(folders.outputs, path.rstrip("/"))
        folder.mkdir(parents=True, exist_ok=True)
    except UnsafePathError as e:
        raise NodeInputError("path", f"{e}: expected a folder inside the output folder") from None
    except OSError as e:
        raise NodeInputError("path", f"can't make the folder: {e.strerror}") from None
    return folder


def _exif(parameters: str, texts: dict) -> "Image.Exif":
    """The pack's EXIF for JPEG and WebP: the workflow's texts as ComfyUI's WebP saver writes them
    (nodes.image.comfy_exif) and the parameters as UserComment (UNICODE, UTF-16 big-endian, as
    piexif writes it)."""
    exif = comfy_exif(texts)
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + parameters.encode("utf-16-be")
    return exif


def save_picture(picture, path: Path, extension: str, quality: int, lossless_webp: bool, optimize_png: bool,
                 parameters: str, texts: dict) -> None:
    """Write one picture as the pack's saver does; `texts` the workflow's (empty when not embedded).
    A name in use (a link included, never followed) raises FileExistsError; written as the project's
    savers write (nodes.image._write_at: a temporary name, then linked), so a failed or killed write
    leaves no file behind."""
    def write(temporary):
        with open(temporary, "wb") as f:
            _write_picture(f, picture, extension, quality, lossless_webp, optimize_png, parameters, texts)

    if not _write_at(write, path):
        raise FileExistsError(errno.EEXIST, "File exists", str(path))


def _write_picture(f, picture, extension: str, quality: int, lossless_webp: bool, optimize_png: bool,
                   parameters: str, texts: dict) -> None:
    if extension == "png":
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", parameters)  # iTXt (UTF-8) when the text isn't Latin-1
        for key in [k for k in texts if k != "prompt"] + [k for k in texts if k == "prompt"]:
            info.add_text(key, texts[key])
        picture.save(f, format="PNG", pnginfo=info, optimize=optimize_png)
        return
    image_format = "WEBP" if extension == "webp" else "JPEG"
    if image_format == "JPEG" and picture.mode not in ("RGB", "L"):
        picture = picture.convert("RGB")
    exif = _exif(parameters, texts)
    if image_format == "JPEG" and len(exif.tobytes()) > JPEG_MAX_EXIF:
        # as the pack: without the prompt, then without the workflow, then without metadata
        texts = {k: v for k, v in texts.items() if k != "prompt"}
        exif = _exif(parameters, texts)
        if len(exif.tobytes()) > JPEG_MAX_EXIF:
            exif = _exif(parameters, {})
        if len(exif.tobytes()) > JPEG_MAX_EXIF:
            warn("the parameters text is too long for a JPEG's metadata: saved without it")
            exif = None
    options = {"exif": exif.tobytes()} if exif is not None else {}
    picture.save(f, format=image_format, optimize=True, quality=quality, lossless=lossless_webp, **options)


# -- Image Saver ----------------------------------------------------------------------------------

# places in Image Saver's widgets_values
CLIP_SKIP_AT, MANUAL_HASH_AT, ADDITIONAL_HASHES_AT, CUSTOM_AT = 18, 3, 22, 25


def image_saver_widgets(values: list) -> list:
    """Image Saver's widgets_values in today's layout. Earlier versions saved fewer: before
    clip_skip (a text, time_format, where clip_skip is now), and one with a manual_hash text before
    steps (today's additional_hashes), and before custom (show_preview last, where custom is now;
    custom is read after show_preview too); the inputs they lack take their defaults."""
    values, manual = list(values), None
    if len(values) > MANUAL_HASH_AT and isinstance(values[MANUAL_HASH_AT], str):
        manual = values.pop(MANUAL_HASH_AT)
    if len(values) > CLIP_SKIP_AT and isinstance(values[CLIP_SKIP_AT], str):
        values.insert(CLIP_SKIP_AT, 0)
    if manual is not None and len(values) == ADDITIONAL_HASHES_AT:  # that version ended at embed_workflow
        values.append(manual)
    if len(values) == CUSTOM_AT + 1 and isinstance(values[-1], bool):  # show_preview, before custom came
        values.insert(CUSTOM_AT, "")
    if len(values) == CUSTOM_AT + 2 and isinstance(values[-2], bool) and isinstance(values[-1], str):
        values[-2:] = values[-1], values[-2]  # show_preview saved before custom
    return values


def save_images(images, filename: str, path: str, extension: str, quality: int, lossless_webp: bool,
                optimize_png: bool, save_workflow_as_json: bool, embed_workflow: bool, counter: int, time_format: str,
                metadata: Metadata, show_preview: bool) -> None:
    """Save the batch as the pack does: path and filename filled in from the metadata, each picture
    under the pack's next free name, the parameters text and (embed_workflow) the workflow in it."""
    from graphflow.images import image_to_pil

    if getattr(images, "dim", None) is None or images.dim() != 4:
        raise NodeInputError("images", "expected an image batch [B, H, W, C]")
    height, width = images.shape[1:3]
    if max(height, width) > FORMAT_MAX_SIDE.get(extension, max(height, width)):
        raise NodeInputError("images", f"{width}x{height} pictures can't be saved as {extension} (at most "
                                       f"{FORMAT_MAX_SIDE[extension]} pixels a side): expected smaller images or "
                                       "extension png")
    values = {"modelname": metadata.modelname, "width": metadata.width, "height": metadata.height,
              "seed": metadata.seed, "counter": counter, "sampler_name": metadata.sampler_name,
              "steps": metadata.steps, "cfg": metadata.cfg, "scheduler": metadata.scheduler_name,
              "denoise": metadata.denoise, "clip_skip": metadata.clip_skip}
    now = datetime.now()
    folder = output_folder(expand_pattern(path, values, time_format, now, "path"))
    stem = sanitize(expand_pattern(filename, values, time_format, now, "filename")) or timestamp(time_format, now)
    folder, stem = file_place(folder, stem)
    texts = workflow_texts() if embed_workflow else {}
    subfolder = subfolder_name(folders.outputs, folder)
    saved = []
    for image in images:
        picture = image_to_pil(image)
        for _ in range(MAX_NAME_TRIES):  # a name taken meanwhile is never overwritten: the next one is tried
            current = unique_stem(folder, stem, (extension, "json") if save_workflow_as_json else (extension,))
            name = f"{current}.{extension}"
            try:
                save_picture(picture, folder / name, extension, quality, lossless_webp, optimize_png,
                             metadata.a111_params, texts)
                break
            except FileExistsError:
                continue
            except OSError as e:
                raise NodeInputError("filename", f"can't write {_short(name)}: {e.strerror or e}") from None
            except ValueError as e:  # an encoder's refusal
                raise NodeInputError("images", f"can't write {_short(name)} as {extension}: {e}") from None
        else:
            raise NodeInputError("filename", f"no free name for {_short(stem)} after {MAX_NAME_TRIES} tries: "
                                             "the folder's names are taken as fast as they are made")
        if save_workflow_as_json:
            try:
                # "x": a file (or a link to one elsewhere) that took the name meanwhile is kept
                with open(folder / f"{current}.json", "x", encoding="utf-8") as f:
                    f.write(workflow_texts().get("workflow", "null"))
            except OSError as e:  # as the pack: the picture is kept, the JSON reported
                warn(f"can't save the workflow as {_short(current + '.json')}: {e.strerror or e}")
        saved.append({"filename": name, "subfolder": subfolder, "type": "output"})
    if show_preview:
        show(images=saved)


class ImageSaver(Node):
    """Save images with Civitai-compatible generation metadata, as alexopus' Image Saver does: an
    A1111 "parameters" text (PNG text chunk; for JPEG and WebP the EXIF UserComment) of the
    prompts, "Steps, Sampler (Civitai's name), CFG scale, Seed, Size, Clip skip, Model hash (the
    first 10 hex digits of the model file's SHA-256), Model, Hashes (the prompt's <lora:NAME>
    and embedding:NAME files, additional_hashes, "model"), Version: ComfyUI". modelname may list
    several models, comma-separated: the first is the model, the others go with the additional
    hashes. filename and path take the placeholders %date, %time (time_format), %model,
    %basemodelname, %width, %height, %seed, %counter, %sampler_name, %steps, %cfg, %scheduler (or
    %scheduler_name), %denoise, %clip_skip, each filled in once (the pack fills in a placeholder
    that a value holds again); path is a folder inside the output folder (made when missing; a path
    leading out, or with control characters or a name over 200 characters, is refused); a name in
    use gets _01, _02 ... (names compared without case; with save_workflow_as_json a name whose
    .json is there is not taken either: the pack overwrites that .json). embed_workflow adds the
    workflow (PNG chunks; JPEG / WebP EXIF as ComfyUI writes them, a JPEG's dropped when over its
    64 KB); save_workflow_as_json writes it beside as .json too. WebP takes at most 16383 pixels a
    side, JPEG 65500 (larger pictures are refused: save them as png). easy_remix strips LoRA tags
    and prompt-control edits and shortens embedding paths in the text. Gives the hashes
    (name:hash[:weight], comma-separated, for another Image Saver's additional_hashes) and the
    parameters text.
    No network here: download_civitai_data on writes what the pack writes when civitai.com
    can't be reached (hashes upper-cased, the model's in Model hash only, no "Civitai resources"),
    with a warning; .civitai.info files beside models are not read. File hashes are computed here
    and kept in memory (the pack reads and writes .sha256 files beside the models).
    Saves of earlier versions (before clip_skip; with manual_hash, embed_workflow_in_png) are read
    into today's inputs and run as today's pack runs them. Not in any version read: dpi."""
    category = "ImageSaver"
    output_node = True
    images: IMAGE
    filename: str = Text("%time_%basemodelname_%seed")
    path: str = Text("")
    extension: str = Choice(EXTENSIONS, "png")
    steps: int = Int(20, min=1, max=10000)
    cfg: float = Float(7.0, min=0.0, max=100.0)
    modelname: str = Text("")
    sampler_name: str = Text("")
    scheduler: str = Text("normal")
    positive: str = Text("unknown", multiline=True)
    negative: str = Text("unknown", multiline=True)
    seed_value: int = Int(0, min=0, max=SEED_MAX)
    width: int = Int(512, min=0, max=MAX_SIZE, step=8)
    height: int = Int(512, min=0, max=MAX_SIZE, step=8)
    lossless_webp: bool = Bool(True)
    quality_jpeg_or_webp: int = Int(100, min=1, max=100)
    optimize_png: bool = Bool(False)
    counter: int = Int(0, min=0, max=SEED_MAX)
    denoise: float = Float(1.0, min=0.0, max=1.0)
    clip_skip: int = Int(0, min=-24, max=24)
    time_format: str = Text(DEFAULT_TIME_FORMAT)
    save_workflow_as_json: bool = Bool(False)
    embed_workflow: bool = Bool(True)
    additional_hashes: str = Text("")
    download_civitai_data: bool = Bool(True)
    easy_remix: bool = Bool(True)
    custom: str = Text("")
    show_preview: bool = Bool(True)
    outputs = {"hashes": STRING, "a1111_params": STRING}
    # the pack's later versions name the scheduler input scheduler_name, earlier ones had
    # embed_workflow_in_png and manual_hash (read; today's names are written)
    comfy = ComfyAlias(("Image Saver",), widgets=image_saver_widgets,
                       inputs={"embed_workflow_in_png": "embed_workflow", "embed_workflow": "embed_workflow",
                               "manual_hash": "additional_hashes", "additional_hashes": "additional_hashes",
                               "scheduler_name": "scheduler"},
                       optional=("steps", "cfg", "modelname", "sampler_name", "scheduler", "positive", "negative",
                                 "seed_value", "width", "height", "lossless_webp", "quality_jpeg_or_webp",
                                 "optimize_png", "counter", "denoise", "clip_skip", "time_format",
                                 "save_workflow_as_json", "embed_workflow", "additional_hashes",
                                 "download_civitai_data", "easy_remix", "custom", "show_preview"))

    def run(self):
        metadata = make_metadata(self.modelname, self.positive, self.negative, self.width, self.height,
                                 self.seed_value, self.steps, self.cfg, self.sampler_name, self.scheduler,
                                 self.denoise, self.clip_skip, self.custom, self.additional_hashes,
                                 self.download_civitai_data, self.easy_remix)
        save_images(self.images, self.filename, self.path, self.extension, self.quality_jpeg_or_webp,
                    self.lossless_webp, self.optimize_png, self.save_workflow_as_json, self.embed_workflow,
                    self.counter, self.time_format, metadata, self.show_preview)
        return metadata.final_hashes, metadata.a111_params


class ImageSaverMetadataNode(Node):
    """Image Saver Metadata: Image Saver's metadata made ahead (model, LoRA, embedding and manual
    hashes, the parameters text), for Image Saver Simple; also gives the hashes to chain and the
    text. Its inputs as Image Saver's (see its help, also on civitai data: not downloaded here)."""
    category = "ImageSaver"
    modelname: str = Text("")
    positive: str = Text("unknown", multiline=True)
    negative: str = Text("unknown", multiline=True)
    width: int = Int(512, min=0, max=MAX_SIZE, step=8)
    height: int = Int(512, min=0, max=MAX_SIZE, step=8)
    seed_value: int = Int(0, min=0, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000)
    cfg: float = Float(7.0, min=0.0, max=100.0)
    sampler_name: str = Text("")
    scheduler_name: str = Text("normal")
    denoise: float = Float(1.0, min=0.0, max=1.0)
    clip_skip: int = Int(0, min=-24, max=24)
    additional_hashes: str = Text("")
    download_civitai_data: bool = Bool(True)
    easy_remix: bool = Bool(True)
    custom: str = Text("")
    outputs = {"metadata": METADATA, "hashes": STRING, "a1111_params": STRING}
    comfy = ComfyAlias(("Image Saver Metadata",), optional=(
        "modelname", "positive", "negative", "width", "height", "seed_value", "steps", "cfg", "sampler_name",
        "scheduler_name", "denoise", "clip_skip", "additional_hashes", "download_civitai_data", "easy_remix", "custom"))

    def run(self):
        metadata = make_metadata(self.modelname, self.positive, self.negative, self.width, self.height,
                                 self.seed_value, self.steps, self.cfg, self.sampler_name, self.scheduler_name,
                                 self.denoise, self.clip_skip, self.custom, self.additional_hashes,
                                 self.download_civitai_data, self.easy_remix)
        return metadata, metadata.final_hashes, metadata.a111_params


def metadata_from_text(text: str) -> Metadata:
    """Image Saver Simple's metadata from an A1111 parameters text (written as it is): its prompt's
    first line, negative prompt, steps, sampler, CFG scale, seed, size, clip skip, model and
    denoising strength, for the placeholders; what is missing or unreadable keeps the default."""
    from graphflow.picture_metadata import parse_a1111

    settings = parse_a1111(text)
    metadata = Metadata(positive=settings["prompt"].split("\n")[0].strip() or "unknown",
                        negative=settings["negative"].split("\n")[0].strip() or "unknown", a111_params=text)
    reads = {"steps": ("steps", int), "sampler": ("sampler_name", str), "cfg scale": ("cfg", float),
             "seed": ("seed", int), "clip skip": ("clip_skip", int), "model": ("modelname", str),
             "denoising strength": ("denoise", float)}
    for key, (field_name, kind) in reads.items():
        try:
            setattr(metadata, field_name, kind(settings[key]))
        except (KeyError, ValueError):
            pass
    size = re.fullmatch(r"(\d+)x(\d+)", settings.get("size", ""))
    if size:
        metadata.width, metadata.height = int(size.group(1)), int(size.group(2))
    return metadata


class ImageSaverSimple(Node):
    """Image Saver Simple: save images as Image Saver does (see its help) with metadata made ahead
    by Image Saver Metadata; without it, an A1111 parameters text (a1111_params) is written as it
    is and read for the filename's placeholders; with neither, the defaults. Gives the hashes
    and the text written."""
    category = "ImageSaver"
    output_node = True
    images: IMAGE
    filename: str = Text("%time_%basemodelname_%seed")
    path: str = Text("")
    extension: str = Choice(EXTENSIONS, "png")
    lossless_webp: bool = Bool(True)
    quality_jpeg_or_webp: int = Int(100, min=1, max=100)
    optimize_png: bool = Bool(False)
    embed_workflow: bool = Bool(True)
    save_workflow_as_json: bool = Bool(False)
    metadata: METADATA = None
    a1111_params: str = Text("", multiline=True)
    counter: int = Int(0, min=0, max=SEED_MAX)
    time_format: str = Text(DEFAULT_TIME_FORMAT)
    show_preview: bool = Bool(True)
    outputs = {"hashes": STRING, "a1111_params": STRING}
    comfy = ComfyAlias(("Image Saver Simple",),
                       optional=("metadata", "a1111_params", "counter", "time_format", "show_preview"))

    def run(self):
        metadata = self.metadata
        if metadata is None:
            metadata = metadata_from_text(self.a1111_params) if self.a1111_params.strip() else Metadata()
        elif not isinstance(metadata, Metadata):
            raise NodeInputError("metadata", "expected Image Saver Metadata's metadata")
        save_images(self.images, self.filename, self.path, self.extension, self.quality_jpeg_or_webp,
                    self.lossless_webp, self.optimize_png, self.save_workflow_as_json, self.embed_workflow,
                    self.counter, self.time_format, metadata, self.show_preview)
        return metadata.final_hashes, metadata.a111_params


def file_place(folder: Path, stem: str) -> tuple[Path, str]:
    """A filename holding folders (a time_format with "/") as a subfolder of `folder` and a stem,
    kept inside the output folder; a name file_name_problem refuses (too long, '..') refused."""
    stem = stem.replace("\\", "/").strip("/")
    try:
        if problem := file_name_problem(stem):
            raise UnsafePathError(problem)
        if "/" not in stem:
            return folder, stem
        return folders.output_location((folder.relative_to(folders.outputs.resolve()) / stem).as_posix())
    except UnsafePathError as e:
        raise NodeInputError("filename", f"{e}: expected a name inside the output folder") from None
    except OSError as e:
        raise NodeInputError("filename", f"can't make the folder: {e.strerror}") from None


# -- literals -------------------------------------------------------------------------------------


class ImageSaverSeedGenerator(Node):
    """Provides a seed as an integer: seed + increment (the pack's later versions add increment;
    the editor's control_after_generate follows the seed)."""
    category = "ImageSaver/utils"
    seed: int = Int(0, min=0, max=SEED_MAX)
    increment: int = Int(0, min=-SEED_MAX, max=SEED_MAX)
    outputs = {"INT": INT}
    comfy = ComfyAlias(("Seed Generator (Image Saver)", "Seed Generator"))

    def run(self):
        return self.seed + self.increment


class ImageSaverStringLiteral(Node):
    """Provides a string."""
    category = "ImageSaver/utils"
    string: str = Text("", multiline=True)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("String Literal (Image Saver)", "String Literal"))

    def run(self):
        return self.string


class ImageSaverSizeLiteral(Node):
    """Provides a size: an integer from 0 to the largest image size, in steps of 8."""
    category = "ImageSaver/utils"
    size: int = Int(512, min=0, max=MAX_SIZE, step=8)
    outputs = {"size": INT}
    # earlier versions named the input int
    comfy = ComfyAlias(("Width/Height Literal (Image Saver)", "Width/Height Literal"),
                       inputs={"int": "size", "size": "size"})

    def run(self):
        return self.size


class ImageSaverIntLiteral(Node):
    """Provides an integer from 0 to 1000000."""
    category = "ImageSaver/utils"
    int: int = Int(0, min=0, max=1000000)
    outputs = {"INT": INT}
    comfy = ComfyAlias(("Int Literal (Image Saver)", "Int Literal"))

    def run(self):
        return self.int


class ImageSaverFloatLiteral(Node):
    """Provides a floating point number (the pack's bounds: the smallest positive double to the
    largest; step 0.01)."""
    category = "ImageSaver/utils"
    float: float = Float(1.0, min=FLOAT_MIN, max=FLOAT_MAX, step=0.01)
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("Float Literal (Image Saver)",))

    def run(self):
        return self.float


class ImageSaverCfgLiteral(Node):
    """Provides a CFG value from 0.0 to 100.0."""
    category = "ImageSaver/utils"
    cfg: float = Float(7.0, min=0.0, max=100.0)
    outputs = {"value": FLOAT}
    # earlier versions named the input float (default 8.0)
    comfy = ComfyAlias(("Cfg Literal (Image Saver)", "Cfg Literal"), inputs={"float": "cfg", "cfg": "cfg"})

    def run(self):
        return self.cfg


class ConditioningConcatOptional(Node):
    """ConditioningConcat when conditioning_from is connected (its first entry's tokens appended to
    each of conditioning_to's); conditioning_to passed on unchanged when it is not."""
    category = "conditioning"
    conditioning_to: CONDITIONING
    conditioning_from: CONDITIONING = None
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("Conditioning Concat Optional (Image Saver)",), optional=("conditioning_from",))

    def run(self):
        if self.conditioning_from is None:
            return self.conditioning_to
        return concat_conditioning(self.conditioning_to, self.conditioning_from, "conditioning_from")


# -- selectors ------------------------------------------------------------------------------------


class ImageSaverSamplerSelector(Node):
    """Provides one of ComfyUI's samplers, for a sampler's input and as text (giriss' Sampler
    Selector gives the first only)."""
    category = "ImageSaver/utils"
    sampler_name: str = Choice(SAMPLER_NAMES, SAMPLER_NAMES[0])
    outputs = {"sampler": STRING, "sampler_name": STRING}
    comfy = ComfyAlias(("Sampler Selector (Image Saver)", "Sampler Selector"))

    def run(self):
        return self.sampler_name, self.sampler_name


class ImageSaverSchedulerSelector(Node):
    """Provides one of ComfyUI's schedulers, for a sampler's input and as text. The pack's versions
    before v1.12 offered AYS SDXL, AYS SD1, AYS SVD and GITS[coeff=1.2] here too (now its
    inspire selector's): still offered, so their saves read (names only: the sampler given them
    must know them)."""
    category = "ImageSaver/utils"
    scheduler: str = Choice(SCHEDULER_NAMES + EXTRA_SCHEDULERS, SCHEDULER_NAMES[0])
    outputs = {"scheduler": STRING, "scheduler_name": STRING}
    comfy = ComfyAlias(("Scheduler Selector (Image Saver)",))

    def run(self):
        return self.scheduler, self.scheduler


class ImageSaverSchedulerSelectorComfy(Node):
    """Provides one of ComfyUI's schedulers, for a sampler's input and as text (giriss' Scheduler
    Selector gives the first only)."""
    category = "ImageSaver/utils"
    scheduler: str = Choice(SCHEDULER_NAMES, SCHEDULER_NAMES[0])
    outputs = {"scheduler": STRING, "scheduler_name": STRING}
    comfy = ComfyAlias(("Scheduler Selector (Comfy) (Image Saver)", "Scheduler Selector"))

    def run(self):
        return self.scheduler, self.scheduler


INSPIRE_SCHEDULERS = SCHEDULER_NAMES + ("AYS SDXL", "AYS SD1", "AYS SVD", "GITS[coeff=1.2]", "OSS FLUX", "OSS Wan",
                                         "OSS Chroma")
EFFICIENCY_SCHEDULERS = SCHEDULER_NAMES + ("AYS SD1", "AYS SDXL", "AYS SVD", "GITS")


class ImageSaverSchedulerSelectorInspire(Node):
    """Provides one of KSampler (inspire)'s schedulers (ComfyUI's and Inspire Pack's), for its
    scheduler input and as text."""
    category = "ImageSaver/utils"
    scheduler: str = Choice(INSPIRE_SCHEDULERS, SCHEDULER_NAMES[0])
    outputs = {"scheduler": STRING, "scheduler_name": STRING}
    comfy = ComfyAlias(("Scheduler Selector (inspire) (Image Saver)",))

    def run(self):
        return self.scheduler, self.scheduler


class ImageSaverSchedulerSelectorEfficiency(Node):
    """Provides one of KSampler (Efficient)'s schedulers (ComfyUI's and Efficiency Nodes'), for its
    scheduler input and as text."""
    category = "ImageSaver/utils"
    scheduler: str = Choice(EFFICIENCY_SCHEDULERS, SCHEDULER_NAMES[0])
    outputs = {"scheduler": STRING, "scheduler_name": STRING}
    comfy = ComfyAlias(("Scheduler Selector (Eff.) (Image Saver)",))

    def run(self):
        return self.scheduler, self.scheduler


class ImageSaverSchedulerToString(Node):
    """Gives a scheduler's name (ComfyUI's or the pack's extra ones) as text."""
    category = "ImageSaver/utils"
    scheduler: str = Choice(SCHEDULER_NAMES + EXTRA_SCHEDULERS, SCHEDULER_NAMES[0])
    outputs = {"scheduler_name": STRING}
    comfy = ComfyAlias(("SchedulerToString (Image Saver)",))

    def run(self):
        return self.scheduler


class ImageSaverSchedulerComfyToString(Node):
    """Gives one of ComfyUI's schedulers' name as text."""
    category = "ImageSaver/utils"
    scheduler: str = Choice(SCHEDULER_NAMES, SCHEDULER_NAMES[0])
    outputs = {"scheduler_name": STRING}
    comfy = ComfyAlias(("SchedulerComfyToString (Image Saver)",))

    def run(self):
        return self.scheduler


class ImageSaverSamplerToString(Node):
    """Gives one of ComfyUI's samplers' name as text."""
    category = "ImageSaver/utils"
    sampler: str = Choice(SAMPLER_NAMES, SAMPLER_NAMES[0])
    outputs = {"sampler_name": STRING}
    comfy = ComfyAlias(("SamplerToString (Image Saver)",))

    def run(self):
        return self.sampler


class ImageSaverInputParameters(Node):
    """Seed, steps, cfg, sampler, scheduler and denoise in one node, each given on (the pack's
    current outputs; its versions before v1.12 also gave sampler and scheduler as text and a
    parameters string, not kept here)."""
    category = "ImageSaver/utils"
    seed: int = Int(0, min=0, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000)
    cfg: float = Float(7.0, min=0.0, max=100.0, step=0.1, round=0.01)
    sampler: str = Choice(SAMPLER_NAMES, SAMPLER_NAMES[0])
    scheduler: str = Choice(SCHEDULER_NAMES, SCHEDULER_NAMES[0])
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"seed": INT, "steps": INT, "cfg": FLOAT, "sampler": STRING, "scheduler": STRING, "denoise": FLOAT}
    comfy = ComfyAlias(("Input Parameters (Image Saver)",))

    def run(self):
        return self.seed, self.steps, self.cfg, self.sampler, self.scheduler, self.denoise


class AnyToString(Node):
    """Any value as text (Python's str of it), e.g. a sampler or scheduler choice from another pack."""
    category = "ImageSaver/utils"
    value: ANY
    outputs = {"string": STRING}
    comfy = ComfyAlias(("Any to String (Image Saver)",))

    def run(self):
        return str(self.value)


class WorkflowInputValue(Node):
    """The value of a node's input in the running prompt (API format), by node id and input name:
    a widget's value, or a link's [node id, output] pair; None (with a warning) when the node or
    input is not there."""
    category = "ImageSaver/utils"
    node_id: str = Text("")
    input_name: str = Text("")
    outputs = {"value": ANY}
    comfy = ComfyAlias(("Workflow Input Value (Image Saver)",))
    cacheable = False  # reads the run's own prompt, which its inputs don't tell

    def run(self):
        prompt = json.loads(workflow_texts().get("prompt", "null") or "null")
        node = prompt.get(self.node_id) if isinstance(prompt, dict) else None
        if not isinstance(node, dict):
            warn(f"node {self.node_id!r} is not in the prompt")
            return None
        inputs = node.get("inputs", {})
        if self.input_name not in inputs:
            warn(f"node {self.node_id!r} has no input {self.input_name!r} (it has {', '.join(inputs)})")
            return None
        return inputs[self.input_name]


# -- loaders with names ---------------------------------------------------------------------------


class CheckpointLoaderWithName(LoadCheckpoint):
    """Load a checkpoint as CheckpointLoaderSimple does, also giving its name (for Image Saver's
    modelname)."""
    category = "ImageSaver/utils"
    outputs = {"MODEL": LoadCheckpoint.outputs["model"], "CLIP": LoadCheckpoint.outputs["clip"],
               "VAE": LoadCheckpoint.outputs["vae"], "model_name": STRING}
    comfy = ComfyAlias(("Checkpoint Loader with Name (Image Saver)",), inputs={"ckpt_name": "checkpoint"})

    def run(self):
        return (*super().run(), self.checkpoint)


class UNETLoaderWithName(LoadDiffusionModel):
    """Load a diffusion model as UNETLoader does, also giving its file name."""
    category = "ImageSaver/utils"
    outputs = {"model": LoadDiffusionModel.outputs["model"], "filename": STRING}
    comfy = ComfyAlias(("UNet loader with Name (Image Saver)",))

    def run(self):
        return super().run(), self.unet_name


class CheckpointSelector(Node):
    """giriss' Checkpoint Selector: a checkpoint's name, for a loader's ckpt_name and Image
    Saver's modelname."""
    category = "ImageSaver/utils"
    ckpt_name: str = Choice(lambda: folders.list_models("checkpoints"), DEMO_CHECKPOINT,
                            model_folder="checkpoints")
    outputs = {"ckpt_name": STRING}
    comfy = ComfyAlias(("Checkpoint Selector",))

    def run(self):
        return self.ckpt_name
