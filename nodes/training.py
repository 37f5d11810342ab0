"""Training a LoRA inside a graph (graphflow.training), as ComfyUI's training nodes: image sets
from an inputs subfolder, TrainLoraNode, the trained LoRA applied / saved, the loss plotted.

A LORA_MODEL is a dict of LoRA tensors in ComfyUI's layout (`diffusion_model.<module>.lora_up.weight`,
`.lora_down.weight`, `.alpha`, `.diff`, `.diff_b`); a LOSS_MAP is {"loss": [float per step]}."""

from __future__ import annotations

from graphflow.api import (CLIP, CONDITIONING, IMAGE, INT, LATENT, MODEL, Bool, Choice, ComfyAlias, Estimate, Float, Int,
                           Node, NodeInputError, Size, Text, folders, progress, show, socket_type,
                           subfolder_name)
from graphflow.choices import (IMAGE_SET_RESIZE, TRAIN_ALGORITHMS, TRAIN_DTYPES, TRAIN_LOSSES,
                               TRAIN_OPTIMIZERS)

LORA_MODEL = socket_type("LORA_MODEL", "#c99bff", "LoRA tensors trained in the graph (TrainLoraNode)")
LOSS_MAP = socket_type("LOSS_MAP", "#ff9f7a", "A training run's losses: {'loss': [one per step]}")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")  # ComfyUI's for image sets
NO_LORA = "[None]"


def _existing_loras() -> list[str]:
    return [*folders.list_models("loras"), NO_LORA]


class TrainLoraNode(Node):
    """Train a LoRA on the model with latents (VAEEncode of the training images) and their
    conditioning (one per latent, or one for all). Each step draws batch_size latents, a random
    noise level from the model's sampling and seeded noise, and fits the model's x0 estimate (from
    its eps / v / flow prediction) to the clean latent with the chosen loss. Those draws follow
    from seed as ComfyUI's do, number for number; the LoRA's starting values can't (ComfyUI's come
    from torch's unseeded global state), so the trained LoRA is not ComfyUI's. Every linear / conv
    weight gets a rank-`rank` LoRA (alpha 1), norms and biases full differences, as ComfyUI trains.
    The input model is not changed; model_with_lora carries the trained LoRA and computes in
    training_dtype, as ComfyUI's (LoraModelLoader gives the model in its own dtype). existing_lora
    continues a LoRA this node saved (its steps add to the count; layers it lacks start fresh, as
    ComfyUI's; its norm and bias differences continue, where ComfyUI's restart from zero). Only
    the LoRA algorithm is trained; training_dtype bf16 runs the model under bfloat16 autocast
    (ComfyUI's runs its weights in bf16 too: close, not equal numbers). Lists of latents and
    conditionings (image sets split per item) join into one dataset; latents of different sizes
    are trained one at a time."""
    category = "training"
    model: MODEL
    latents: LATENT
    positive: CONDITIONING
    batch_size: int = Int(1, min=1, max=10000)
    grad_accumulation_steps: int = Int(1, min=1, max=1024)
    steps: int = Int(16, min=1, max=100000)
    learning_rate: float = Float(0.0005, min=0.0000001, max=1.0, step=0.000001)
    rank: int = Int(8, min=1, max=128)
    optimizer: str = Choice(TRAIN_OPTIMIZERS, "AdamW")
    loss_function: str = Choice(TRAIN_LOSSES, "MSE")
    seed: int = Int(0, min=0, max=0xFFFFFFFFFFFFFFFF)
    training_dtype: str = Choice(TRAIN_DTYPES, "bf16")
    lora_dtype: str = Choice(TRAIN_DTYPES, "bf16")
    algorithm: str = Choice(TRAIN_ALGORITHMS, "LoRA")
    gradient_checkpointing: bool = Bool(True)
    existing_lora: str = Choice(_existing_loras, NO_LORA)
    outputs = {"model_with_lora": MODEL, "lora": LORA_MODEL, "loss": LOSS_MAP, "steps": INT}
    input_is_list = True
    comfy = ComfyAlias(("TrainLoraNode",))

    def run(self):
        from graphflow import training

        # every input is a list (ComfyUI's is_input_list): latents and conditionings from lists of
        # image sets join into one dataset; the settings are the first of theirs
        model, settings = self.model[0], {name: getattr(self, name)[0] for name in SETTINGS}
        if settings["algorithm"] != "LoRA":
            raise NodeInputError("algorithm", f"only LoRA is trained here, not {settings['algorithm']}")
        if not hasattr(model, "unet"):
            raise NodeInputError("model", "expected a diffusion model (MODEL) to train on")
        latents = _dataset(self.latents, model)
        positive = self.positive[0] if len(self.positive) == 1 else [e for cond in self.positive for e in cond]
        lora, done = None, 0
        if settings["existing_lora"] != NO_LORA:
            existing = _read_existing(settings["existing_lora"])
            try:
                lora = training.continued_lora(model.unet, existing, settings["rank"],
                                               training.DTYPES[settings["lora_dtype"]], settings["seed"])
            except ValueError as e:  # a part graphflow's trained LoRAs don't have
                raise NodeInputError("existing_lora", str(e)) from None
            done = training.existing_steps(settings["existing_lora"])
        try:
            lora, losses = training.train_lora(
                model, latents, positive, lora=lora, progress=progress,
                **{k: v for k, v in settings.items() if k not in ("algorithm", "existing_lora")})
        except NodeInputError as e:  # names train_lora's parameter at fault; its `lora` is our existing_lora
            raise NodeInputError("existing_lora" if e.input == "lora" else e.input, str(e)) from None
        # ComfyUI's model_with_lora keeps the training's compute dtype (set_model_compute_dtype on its
        # clone): it samples in bf16 after bf16 training, in fp32 after fp32 training
        from graphflow.models.speed import with_compute_dtype
        trained = with_compute_dtype(training.with_lora(model, lora), settings["training_dtype"])
        return trained, lora, losses, settings["steps"] + done


SETTINGS = ("batch_size", "grad_accumulation_steps", "steps", "learning_rate", "rank", "optimizer", "loss_function",
            "seed", "training_dtype", "lora_dtype", "algorithm", "gradient_checkpointing", "existing_lora")


def _dataset(latents: list, model):
    """One LATENT: its batch; several: every image on its own, joined into one batch when all have
    one size (else a list of [1, C, h, w], trained one by one)."""
    channels = model.latent_format.channels
    for latent in latents:
        if latent["samples"].shape[1] != channels:
            raise NodeInputError("latents", f"{latent['samples'].shape[1]}-channel latents; this {model.arch} model "
                                            f"takes {channels} (encode with its VAE)")
    if len(latents) == 1:
        return latents[0]["samples"]
    items = [t[None] for latent in latents for t in latent["samples"]]
    if len({tuple(t.shape) for t in items}) == 1:
        import torch
        return torch.cat(items)
    return items


def _read_existing(name: str) -> dict:
    from safetensors.torch import load_file

    try:
        path = folders.find_model("loras", name)
    except (FileNotFoundError, ValueError) as e:
        raise NodeInputError("existing_lora", str(e)) from None
    state = load_file(str(path))
    if not any(k.startswith("diffusion_model.") and k.endswith(".lora_up.weight") for k in state):
        raise NodeInputError("existing_lora", f"{name} is not a LoRA trained by TrainLoraNode (no "
                                              f"diffusion_model.*.lora_up.weight keys)")
    return state


class LoraModelLoader(Node):
    """Apply a trained LoRA (TrainLoraNode's lora output) to a model at a strength (negative
    inverts it); the input model is not changed."""
    category = "loaders"
    model: MODEL
    lora: LORA_MODEL
    strength_model: float = Float(1.0, min=-100.0, max=100.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("LoraModelLoader",))

    def run(self):
        from graphflow.models.checkpoint import CheckpointError
        from graphflow.training import with_lora

        try:
            return with_lora(self.model, self.lora, self.strength_model)
        except CheckpointError as e:
            raise NodeInputError("lora", str(e)) from None


class SaveLoRANode(Node):
    """Save a trained LoRA (TrainLoraNode's lora output) as `<prefix>[_<steps>_steps]_NNNNN_.safetensors`
    in the outputs folder (the prefix may name a subfolder), in ComfyUI's key layout. Move it to
    models/loras to load it with LoadLoRA."""
    category = "loaders"
    output_node = True
    lora: LORA_MODEL
    prefix: str = Text("loras/ComfyUI_trained_lora", file_name=True)
    steps: INT = None
    comfy = ComfyAlias(("SaveLoRANode",), optional=("steps",))

    def run(self):
        from graphflow.models.lora_extract import write_lora
        from nodes.checkpoint_save import _show_saved
        from nodes.image import _next_counter

        try:
            folder, stem = folders.output_location(self.prefix)
        except ValueError as e:
            raise NodeInputError("prefix", str(e)) from None
        if self.steps is not None:
            stem = f"{stem}_{int(self.steps)}_steps"
        path = folder / f"{stem}_{_next_counter(folder, stem):05d}_.safetensors"
        write_lora(path, self.lora)
        _show_saved([path])


def _input_subfolders() -> list[str]:
    names = set()
    for base in folders.input_dirs():
        if base.is_dir():
            names.update(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_dir())
    return sorted(names)


def _folder(name: str):
    from graphflow.folders import UnsafePathError, safe_join

    for base in folders.input_dirs():
        try:
            path = safe_join(base, name)
        except UnsafePathError as e:
            raise NodeInputError("folder", str(e)) from None
        if path.is_dir():
            return path
    raise NodeInputError("folder", f"no folder {name!r} in the inputs folder")


def _image_files(folder, nested: bool) -> list:
    """The set's pictures, sorted; with `nested`, kohya-style subfolders too (`<repeats>_<name>`:
    its pictures `repeats` times)."""
    files = []
    for item in sorted(folder.iterdir()):
        if item.is_file() and item.suffix.lower() in IMAGE_SUFFIXES:
            files.append(item)
        elif nested and item.is_dir():
            head = item.name.split("_")[0]
            inner = [p for p in sorted(item.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
            files += inner * (int(head) if head.isdigit() else 1)
    if not files:
        raise NodeInputError("folder", f"no pictures ({', '.join(IMAGE_SUFFIXES)}) in {folder.name!r}")
    return files


def _load_set(files, resize_method: str, width: int | None = None, height: int | None = None):
    """IMAGE [N, H, W, 3]: every picture at the first one's size (or width x height): Stretch and
    Pad resize (Lanczos; ComfyUI's Pad stretches too), Crop keeps the top-left part (black beyond
    the picture), None refuses pictures of another size."""
    import numpy as np
    import torch
    from PIL import Image

    out = []
    for file in files:
        picture = Image.open(file)
        if picture.mode == "I":
            picture = picture.point(lambda v: v * (1 / 255))
        picture = picture.convert("RGB")
        width, height = width or picture.width, height or picture.height
        if picture.size != (width, height):
            if resize_method in ("Stretch", "Pad"):
                picture = picture.resize((width, height), Image.Resampling.LANCZOS)
            elif resize_method == "Crop":
                picture = picture.crop((0, 0, width, height))
            else:
                raise NodeInputError("resize_method", f"{file.name} is {picture.width}x{picture.height}, the set is "
                                                      f"{width}x{height}; choose Stretch, Crop or Pad")
        out.append(torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)[None])
    return torch.cat(out)


class LoadImageSetFromFolderNode(Node):
    """Load every picture (png, jpg, webp) of a subfolder of the inputs folder as one image batch,
    in name order, for training; pictures of another size than the first are resized by
    resize_method (see LoadImageTextSetFromFolderNode)."""
    category = "loaders"
    folder: str = Choice(_input_subfolders, description="a subfolder of the inputs folder")
    resize_method: str = Choice(IMAGE_SET_RESIZE, "None")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("LoadImageSetFromFolderNode",), optional=("resize_method",))

    def run(self):
        return _load_set(_image_files(_folder(self.folder), nested=False), self.resize_method)


class LoadImageTextSetFromFolderNode(Node):
    """Load the pictures of a subfolder of the inputs folder (and of kohya-style `<repeats>_<name>`
    subfolders inside, repeated) with their captions: `picture.txt` beside each picture, encoded
    with clip (no file: the empty prompt), one conditioning per picture. Every picture is brought to
    width x height (-1: the first picture's): Stretch and Pad resize (ComfyUI's Pad stretches
    too), Crop keeps the top-left part, None refuses other sizes."""
    category = "loaders"
    folder: str = Choice(_input_subfolders, description="a subfolder of the inputs folder")
    clip: CLIP
    resize_method: str = Choice(IMAGE_SET_RESIZE, "None")
    width: int = Int(-1, min=-1, max=10000)
    height: int = Int(-1, min=-1, max=10000)
    outputs = {"image": IMAGE, "conditioning": CONDITIONING}
    comfy = ComfyAlias(("LoadImageTextSetFromFolderNode",), optional=("resize_method", "width", "height"))

    @classmethod
    def estimate(cls, widgets, inputs):
        width, height = widgets.get("width"), widgets.get("height")
        if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
            return Estimate(Size(1, height, width))  # one picture: the count is known when the folder is read
        return Estimate(None)

    def run(self):
        from nodes.conditioning import encoded

        if self.clip is None:
            raise NodeInputError("clip", "no text encoder: the checkpoint has none; load one separately")
        files = _image_files(_folder(self.folder), nested=True)
        images = _load_set(files, self.resize_method, self.width if self.width > 0 else None,
                           self.height if self.height > 0 else None)
        conditioning = []
        for file in files:
            caption = file.with_suffix(".txt")
            text = caption.read_text(encoding="utf-8").strip() if caption.is_file() else ""

            def encode(clip, text=text):
                cond, pooled = clip.encode(text)
                return cond, {} if pooled is None else {"pooled_output": pooled}
            conditioning += encoded(self.clip, encode)
        return images, conditioning


class LossGraphNode(Node):
    """Plot a training run's loss (TrainLoraNode's loss output) over the steps and show the plot
    in the editor from a PNG `<filename_prefix>_<date>_<time>.png` in the temp folder (not among
    the outputs), as ComfyUI's. A run whose losses are all equal is drawn flat (ComfyUI's node
    divides by zero there)."""
    category = "training"
    output_node = True
    loss: LOSS_MAP
    filename_prefix: str = Text("loss_graph", file_name=True)
    comfy = ComfyAlias(("LossGraphNode",))

    def run(self):
        import datetime

        from PIL import Image, ImageDraw, ImageFont

        from graphflow.folders import UnsafePathError, safe_join
        from nodes.image import _png_metadata

        values = [float(v) for v in (self.loss or {}).get("loss", [])]
        if not values:
            raise NodeInputError("loss", "no losses to plot (expected TrainLoraNode's loss output)")
        width, height, margin = 800, 480, 40
        picture = Image.new("RGB", (width + margin, height + margin), "white")
        draw = ImageDraw.Draw(picture)
        low, high = min(values), max(values)
        span = (high - low) or 1.0
        points = [(margin + int(i / len(values) * width), height - int((v - low) / span * height))
                  for i, v in enumerate(values)]
        for a, b in zip(points, points[1:]):  # segment by segment, as ComfyUI draws it
            draw.line([a, b], fill="blue", width=2)
        draw.line([(margin, 0), (margin, height)], fill="black", width=2)
        draw.line([(margin, height), (width + margin, height)], fill="black", width=2)
        try:
            font = ImageFont.truetype("arial.ttf", 12)
        except OSError:
            font = ImageFont.load_default()
        draw.text((5, height // 2), "Loss", font=font, fill="black")
        draw.text((width // 2, height + 10), "Steps", font=font, fill="black")
        draw.text((margin - 30, 0), f"{high:.2f}", font=font, fill="black")
        draw.text((margin - 30, height - 10), f"{low:.2f}", font=font, fill="black")
        date = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
        try:
            path = safe_join(folders.temp, f"{self.filename_prefix}_{date}.png")
        except UnsafePathError as e:
            raise NodeInputError("filename_prefix", str(e)) from None
        path.parent.mkdir(parents=True, exist_ok=True)
        picture.save(path, pnginfo=_png_metadata())
        show(images=[{"filename": path.name, "subfolder": subfolder_name(folders.temp, path.parent), "type": "temp"}])
