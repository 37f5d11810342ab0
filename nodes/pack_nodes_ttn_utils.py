"""tinyterraNodes' (ttN) small nodes, under the pack's class names, inputs and outputs (read from
TinyTerra/ComfyUI_tinyterraNodes: ttNpy/tinyterraNodes.py at 1a90e43480563e9202f7f5482629b1d444e805ed,
the pack's 2.0.9): text, textDebug, concat, text3BOX_3WAYconcat, text7BOX_concat, textCycleLine,
textOutput, int, float, seed, debugInput, hiresfixScale, imageOutput and multiModelMerge. The pipe loaders,
samplers and pipe nodes are in nodes/pack_nodes_ttn.py (its docstring lists what is left out)."""

from __future__ import annotations

import re
from types import SimpleNamespace

from graphflow.api import ANY, CLIP, FLOAT, IMAGE, INT, LATENT, MODEL, STRING, VAE, Bool, Choice, ComfyAlias, Float, \
    Int, Node, NodeInputError, Text, folders, safe_join, show, warn
from graphflow.folders import file_name_problem
from nodes.efficiency_nodes import _checkpoint_choices, _state
from nodes.image import temp_pngs
from nodes.loaders import DEMO_CHECKPOINT, LoadCheckpoint
from nodes.pack_nodes import _core
from nodes.pack_nodes_ttn import CROP_METHODS, IMAGE_OUTPUTS, MAX_RESOLUTION, OUTPUT_FILETYPES, RESCALES, \
    _save_prefix_checked, model_upscaled, output_images, save_files, save_images
from nodes.sampling import SEED_MAX

COMFY_PACK = "ComfyUI_tinyterraNodes"  # the custom node pack this module's ComfyUI classes come from


# -- text and numbers -----------------------------------------------------------------------------

def _text(value) -> str:
    """The pack's text inputs: its editor's 'undefined' (an empty linked text) reads as ''."""
    return "" if value == "undefined" else value


def _delimiter(value: str) -> str:
    return "\n" if value == "\\n" else value


class TtnText(Node):
    """A text, as tinyterraNodes' text node gives it."""
    category = "🌏 tinyterra/text"
    text: str = Text("", multiline=True, dynamic_prompts=True)
    outputs = {"text": STRING}
    comfy = ComfyAlias(("ttN text",))

    def run(self):
        return self.text


class TtnTextDebug(Node):
    """Show a text on the node and pass it on, as tinyterraNodes' textDebug does; print_to_console
    also prints it (under console_title). execute "Always" runs it every time, "On Change" only
    when the text changes."""
    category = "🌏 tinyterra/text"
    output_node = True
    print_to_console: bool = Choice((False, True), False)
    console_title: str = Text("")
    execute: str = Choice(("Always", "On Change"), "Always")
    text: STRING
    outputs = {"text": STRING}
    comfy = ComfyAlias(("ttN textDebug",))

    @classmethod
    def fingerprint(cls, execute="Always", **widgets):
        import random
        return random.random() if execute == "Always" else None

    def run(self):
        if self.print_to_console in (True, "True"):
            print(f"textDebug - {self.console_title or 'text'}:\n{self.text}")
        show(text=[self.text])
        return self.text


class TtnConcat(Node):
    """Join three texts with the delimiter ("\\n": a newline), as tinyterraNodes' concat
    (textConcat) does; empty texts are joined too."""
    category = "🌏 tinyterra/text"
    text1: str = Text("", multiline=True, dynamic_prompts=True)
    text2: str = Text("", multiline=True, dynamic_prompts=True)
    text3: str = Text("", multiline=True, dynamic_prompts=True)
    delimiter: str = Text(",")
    outputs = {"concat": STRING}
    comfy = ComfyAlias(("ttN concat",))

    def run(self):
        return _delimiter(self.delimiter).join(_text(t) for t in (self.text1, self.text2, self.text3))


class TtnText3Box3WayConcat(Node):
    """Three texts and their joins, as tinyterraNodes' text3BOX_3WAYconcat (3x TXT Loader
    MultiConcat) gives them: each text, 1 & 2, 1 & 3, 2 & 3 and all three, joined with the
    delimiter ("\\n": a newline)."""
    category = "🌏 tinyterra/text"
    text1: str = Text("", multiline=True, dynamic_prompts=True)
    text2: str = Text("", multiline=True, dynamic_prompts=True)
    text3: str = Text("", multiline=True, dynamic_prompts=True)
    delimiter: str = Text(",")
    outputs = {"text1": STRING, "text2": STRING, "text3": STRING, "1 & 2": STRING, "1 & 3": STRING,
               "2 & 3": STRING, "concat": STRING}
    comfy = ComfyAlias(("ttN text3BOX_3WAYconcat",))

    def run(self):
        a, b, c = (_text(t) for t in (self.text1, self.text2, self.text3))
        join = _delimiter(self.delimiter).join
        return a, b, c, join([a, b]), join([a, c]), join([b, c]), join([a, b, c])


class TtnText7BoxConcat(Node):
    """Seven texts and the non-empty ones joined with the delimiter ("\\n": a newline), as
    tinyterraNodes' text7BOX_concat (7x TXT Loader Concat) gives them."""
    category = "🌏 tinyterra/text"
    text1: str = Text("", multiline=True, dynamic_prompts=True)
    text2: str = Text("", multiline=True, dynamic_prompts=True)
    text3: str = Text("", multiline=True, dynamic_prompts=True)
    text4: str = Text("", multiline=True, dynamic_prompts=True)
    text5: str = Text("", multiline=True, dynamic_prompts=True)
    text6: str = Text("", multiline=True, dynamic_prompts=True)
    text7: str = Text("", multiline=True, dynamic_prompts=True)
    delimiter: str = Text(",")
    outputs = {**{f"text{i}": STRING for i in range(1, 8)}, "concat": STRING}
    comfy = ComfyAlias(("ttN text7BOX_concat",))

    def run(self):
        texts = [_text(getattr(self, f"text{i}")) for i in range(1, 8)]
        return (*texts, _delimiter(self.delimiter).join(t for t in texts if t))


class TtnTextCycleLine(Node):
    """One line of a text, as tinyterraNodes' textCycleLine gives it: line `index` (from 0; past
    the end, the last line). index_control is the editor's (it changes the index after each
    queueing); it does nothing here."""
    category = "🌏 tinyterra/text"
    text: str = Text("", multiline=True, dynamic_prompts=True)
    index: int = Int(0, min=0, max=SEED_MAX)
    index_control: str = Choice(("increment", "decrement", "randomize", "fixed"), "increment")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("ttN textCycleLine",))

    def run(self):
        lines = self.text.split("\n")
        return lines[min(self.index, len(lines) - 1)]


class TtnInt(Node):
    """A whole number and the same as a float and as text, as tinyterraNodes' int node gives
    them (its input is named `int`)."""
    category = "🌏 tinyterra/util"
    value: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"int": INT, "float": FLOAT, "text": STRING}
    comfy = ComfyAlias(("ttN int",), inputs={"int": "value"})

    def run(self):
        return self.value, float(self.value), str(self.value)


class TtnFloat(Node):
    """A number and the same cut to a whole number and as Python writes it, as tinyterraNodes'
    float node gives them (its input is named `float`)."""
    category = "🌏 tinyterra/util"
    value: float = Float(0.0, min=0.0, max=float(SEED_MAX), step=0.01)
    outputs = {"float": FLOAT, "int": INT, "text": STRING}
    comfy = ComfyAlias(("ttN float",), inputs={"float": "value"})

    def run(self):
        return float(self.value), int(self.value), str(float(self.value))


class TtnSeed(Node):
    """A seed to link into samplers, as tinyterraNodes' seed node gives it (the editor's
    control_after_generate follows it in saves)."""
    category = "🌏 tinyterra/util"
    output_node = True
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"seed": INT}
    comfy = ComfyAlias(("ttN seed",))

    def run(self):
        return self.seed


CONSOLE_COLORS = ("Black", "Red", "Green", "Yellow", "Blue", "Violet", "Cyan", "White", "Grey", "LightRed",
                  "LightGreen", "LightYellow", "LightBlue", "LightViolet", "LightCyan", "LightWhite")


class TtnDebugInput(Node):
    """Show any value as text on the node (Python's str of it), as tinyterraNodes' debugInput
    does; print_to_console also prints it under console_title (console_color, the pack's
    terminal colour, is not used here)."""
    category = "🌏 tinyterra/util"
    output_node = True
    print_to_console: bool = Bool(False)
    console_title: str = Text("ttN debug:")
    console_color: str = Choice(CONSOLE_COLORS, "Red")
    debug: ANY = None
    outputs = {}
    comfy = ComfyAlias(("ttN debugInput",), optional=("debug",))

    def run(self):
        text = str(self.debug)
        if self.print_to_console:
            print(f"{self.console_title}\n{text}")
        show(text=[text])


# -- images ---------------------------------------------------------------------------------------

class TtnHiresFixScale(Node):
    """Upscale images with an upscale model, as tinyterraNodes' hiresfixScale does: the image
    through model_name (ImageUpscaleWithModel's tiling); with rescale_after_model, resized with
    rescale_method and crop by percentage of the upscaled size (a multiple of 8; percent 0 keeps
    width x height), to width x height, or to longer_side keeping the aspect; with output_latent,
    encoded with the VAE (cut to a multiple of 8) as the latent output (else an empty latent
    dict, as the pack gives). image_output: Preview shows, Save writes to the outputs folder as
    save_prefix and shows, Hide/Save writes only, Hide neither."""
    category = "🌏 tinyterra/image"
    output_node = True
    model_name: str = Choice(lambda: folders.list_models("upscale_models"), model_folder="upscale_models")
    vae: VAE
    image: IMAGE
    rescale_after_model: bool = Choice((False, True), True)
    rescale_method: str = Choice(("nearest-exact", "bilinear", "area", "bicubic", "lanczos", "bislerp"),
                                 "nearest-exact")
    rescale: str = Choice(RESCALES[:3], "by percentage")
    percent: int = Int(50, min=0, max=1000)
    width: int = Int(1024, min=64, max=MAX_RESOLUTION, step=8)
    height: int = Int(1024, min=64, max=MAX_RESOLUTION, step=8)
    longer_side: int = Int(1024, min=64, max=MAX_RESOLUTION, step=8)
    crop: str = Choice(CROP_METHODS, "disabled")
    image_output: str = Choice(IMAGE_OUTPUTS[:4], "Hide")
    save_prefix: str = Text("ComfyUI", file_name=True)
    output_latent: bool = Choice((False, True), True)
    outputs = {"latent": LATENT, "image": IMAGE}
    comfy = ComfyAlias(("ttN hiresfixScale",))

    @classmethod
    def estimate(cls, widgets, inputs):
        # the same widgets as Easy-Use's hiresFix (which follows this node): its size estimate
        from nodes.pack_nodes_easyuse_samplers import EasyHiresFix
        return EasyHiresFix.estimate(widgets, inputs)

    @classmethod
    def fingerprint(cls, model_name=None, **widgets):
        return _state("upscale_models", model_name) if model_name else None

    def run(self):
        settings = SimpleNamespace(upscale_model_name=self.model_name, rescale=self.rescale, percent=self.percent,
                                   width=self.width, height=self.height, longer_side=self.longer_side, crop=self.crop)
        try:
            image, latent = model_upscaled(settings, self.image, self.vae if self.output_latent in (True, "True")
                                           else None, self.rescale_method, self.rescale_after_model in (True, "True"),
                                           "image")
        except NodeInputError as e:
            raise NodeInputError("model_name" if e.input == "upscale_model_name" else e.input, str(e)) from None
        output_images(image, self.image_output, self.save_prefix)
        return latent if latent is not None else {"samples": None}, image


def output_folder(output_path: str):
    """imageOutput's / textOutput's output_path as a folder inside the outputs folder: a relative
    path is a subfolder (held to the checks file names get); an absolute path through an output
    folder (the pack's default is ComfyUI's) means that subfolder of the outputs folder (the part
    after the last /output/, none: the outputs folder itself); any other absolute path means the
    outputs folder itself, with a warning. The pack's %date:..% patterns are refused."""
    path = (output_path or "").strip()
    if "%" in path:
        raise NodeInputError("output_path", f"{path[:80]!r}: the pack's %date:..% patterns are not built in; "
                                            f"use a plain folder name")
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path):
        _, found, below = (path.replace("\\", "/").rstrip("/") + "/").rpartition("/output/")
        if not found:
            warn(f"output_path {path!r} is outside graphflow's outputs folder: saving in the outputs folder")
        path = below
    path = "/".join(part for part in path.split("/") if part not in ("", "."))
    if not path:
        return folders.outputs
    problem = file_name_problem(path)
    if problem is not None:
        raise NodeInputError("output_path", problem)
    try:
        return safe_join(folders.outputs, path)
    except ValueError as e:
        raise NodeInputError("output_path", str(e)) from None


class TtnImageOutput(Node):
    """Show or save images, as tinyterraNodes' imageOutput does: Preview shows them; Save writes
    them as save_prefix_<counter>.<file_type> (number_padding digits, "None": no counter; an
    existing file is kept unless overwrite_existing; the workflow embedded in PNGs with
    embed_workflow) and shows them; Hide/Save writes only; Hide neither. output_path is a folder
    inside the outputs folder: an absolute path through an output folder (the pack's default is
    ComfyUI's) keeps the part after /output/ as the subfolder, any other absolute path means the
    outputs folder itself (with a warning); the pack's %date:..% patterns are refused. A name
    already taken, by a file or a link, is never written through. The images go on."""
    category = "🌏 tinyterra/image"
    output_node = True
    image: IMAGE
    image_output: str = Choice(IMAGE_OUTPUTS[:4], "Preview")
    output_path: str = Text("")
    save_prefix: str = Text("ComfyUI", file_name=True)
    number_padding: str = Choice(("None", 2, 3, 4, 5, 6, 7, 8, 9), 5)
    file_type: str = Choice(OUTPUT_FILETYPES, "png")
    overwrite_existing: bool = Bool(False)
    embed_workflow: bool = Bool(True)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ttN imageOutput",))

    def run(self):
        if self.image_output in ("Save", "Hide/Save"):
            folder = output_folder(self.output_path)
            prefix = _save_prefix_checked(self.save_prefix)  # its NodeInputError passes as it is
            try:
                target = safe_join(folder, prefix)
            except ValueError as e:
                raise NodeInputError("save_prefix", str(e)) from None
            padding = None if self.number_padding in ("None", None) else int(self.number_padding)
            written = save_images(self.image, target.parent, target.name, self.file_type, padding,
                                  self.overwrite_existing, self.embed_workflow)
            if self.image_output == "Save":
                show(images=written)
        elif self.image_output == "Preview":
            show(images=temp_pngs(self.image))
        return self.image


class TtnTextOutput(Node):
    """Show a text and, with text_output Save, write it to a file, as tinyterraNodes' textOutput
    does: save_prefix_<counter>.<file_type> (number_padding digits, "None": no counter; an existing
    file is kept unless overwrite_existing) in output_path, a folder inside the outputs folder (an
    absolute path read as imageOutput reads it; %date:..% patterns refused). The text goes on."""
    category = "🌏 tinyterra/text"
    output_node = True
    text_output: str = Choice(("Preview", "Save"), "Preview")
    text: str = Text("", multiline=True)
    output_path: str = Text("")
    save_prefix: str = Text("ComfyUI", file_name=True)
    number_padding: str = Choice(("None", 2, 3, 4, 5, 6, 7, 8, 9), 5)
    file_type: str = Choice(("txt", "md", "rtf", "log", "ini", "csv"), "txt")
    overwrite_existing: bool = Bool(False)
    outputs = {"text": STRING}
    comfy = ComfyAlias(("ttN textOutput",))

    def run(self):
        if self.text_output == "Save":
            folder = output_folder(self.output_path)
            prefix = _save_prefix_checked(self.save_prefix)  # its NodeInputError passes as it is
            try:
                target = safe_join(folder, prefix)
            except ValueError as e:
                raise NodeInputError("save_prefix", str(e)) from None
            padding = None if self.number_padding in ("None", None) else int(self.number_padding)
            save_files(target.parent, target.name, self.file_type, padding, self.overwrite_existing,
                       [lambda path: path.write_text(self.text, encoding="utf-8")])
        show(text=[self.text])
        return self.text


# -- model merging --------------------------------------------------------------------------------

WEIGHTED_SUM = "Weighted sum = (  A*(1-M) + B*M  )"
ADD_DIFFERENCE = "Add difference = (  A + (B-C)*M  )"
A_ONLY = "A Only"
FOLLOW = "Follow model interp"
MODEL_INTERPOLATIONS = (WEIGHTED_SUM, ADD_DIFFERENCE, A_ONLY)
CLIP_INTERPOLATIONS = (FOLLOW, WEIGHTED_SUM, ADD_DIFFERENCE, A_ONLY, "B Only", "C Only")


def _letters(interpolation: str) -> str:
    return {WEIGHTED_SUM: "AB", ADD_DIFFERENCE: "ABC"}.get(interpolation, interpolation[0])


class TtnMultiModelMerge(Node):
    """Merge up to three checkpoints, as tinyterraNodes' multiModelMerge does: the models by
    model_interpolation with M = model_multiplier (weighted sum A*(1-M) + B*M, add difference
    A + (B-C)*M, or A only), the text encoders by clip_interpolation with M = clip_multiplier (the
    same formulas, or A / B / C only; "Follow model interp" uses the model's), weight by weight
    as the core ModelMerge / CLIPMerge nodes merge them. Each letter's model_*_override /
    clip_*_override replaces its checkpoint's part; a checkpoint ("None") is loaded only when a
    formula needs its part. Config names are accepted and not needed."""
    category = "🌏 tinyterra"
    ckpt_A_name: str = Choice(_checkpoint_choices, DEMO_CHECKPOINT, model_folder="checkpoints")
    config_A_name: str = Text("Default")
    ckpt_B_name: str = Choice(lambda: ["None"] + _checkpoint_choices(), "None", model_folder="checkpoints",
                              not_files=("None",))
    config_B_name: str = Text("Default")
    ckpt_C_name: str = Choice(lambda: ["None"] + _checkpoint_choices(), "None", model_folder="checkpoints",
                              not_files=("None",))
    config_C_name: str = Text("Default")
    model_interpolation: str = Choice(MODEL_INTERPOLATIONS, WEIGHTED_SUM)
    model_multiplier: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    clip_interpolation: str = Choice(CLIP_INTERPOLATIONS, FOLLOW)
    clip_multiplier: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    model_A_override: MODEL = None
    model_B_override: MODEL = None
    model_C_override: MODEL = None
    clip_A_override: CLIP = None
    clip_B_override: CLIP = None
    clip_C_override: CLIP = None
    outputs = {"model": MODEL, "clip": CLIP}
    comfy = ComfyAlias(("ttN multiModelMerge",),
                       optional=tuple(f"{part}_{letter}_override" for part in ("model", "clip") for letter in "ABC"))

    @classmethod
    def fingerprint(cls, ckpt_A_name=DEMO_CHECKPOINT, ckpt_B_name="None", ckpt_C_name="None", **widgets):
        """The checkpoints as they are on disk: a changed file is merged again."""
        return tuple(_state("checkpoints", name) for name in (ckpt_A_name, ckpt_B_name, ckpt_C_name))

    def _parts(self, letter: str, need_model: bool, need_clip: bool):
        model, clip = getattr(self, f"model_{letter}_override"), getattr(self, f"clip_{letter}_override")
        if (need_model and model is None) or (need_clip and clip is None):
            name = getattr(self, f"ckpt_{letter}_name")
            if name in (None, "None"):
                part = "model" if need_model and model is None else "clip"
                raise NodeInputError(f"ckpt_{letter}_name", f"the interpolation needs {part} {letter}: choose a "
                                                            f"checkpoint or connect {part}_{letter}_override")
            loaded_model, loaded_clip, _ = _core(LoadCheckpoint, {"checkpoint": f"ckpt_{letter}_name"}, checkpoint=name)
            model = model if model is not None else loaded_model
            clip = clip if clip is not None else loaded_clip
        return model, clip

    def run(self):
        from nodes.model_merging import CLIPMergeAdd, CLIPMergeSimple, CLIPMergeSubtract, ModelMergeAdd, \
            ModelMergeSimple, ModelMergeSubtract
        clip_interpolation = self.model_interpolation if self.clip_interpolation == FOLLOW else self.clip_interpolation
        model_letters, clip_letters = _letters(self.model_interpolation), _letters(clip_interpolation)
        parts = {letter: self._parts(letter, letter in model_letters, letter in clip_letters) for letter in "ABC"}
        models = {letter: p[0] for letter, p in parts.items()}
        clips = {letter: p[1] for letter, p in parts.items()}
        if clip_letters in "ABC" and len(clip_letters) == 1 and clips[clip_letters] is None:
            raise NodeInputError(f"ckpt_{clip_letters}_name", "that checkpoint has no text encoder")
        model_m, clip_m = self.model_multiplier, self.clip_multiplier
        if self.model_interpolation == WEIGHTED_SUM:
            model = _core(ModelMergeSimple, {"model2": "ckpt_B_name"}, model1=models["A"], model2=models["B"],
                          ratio=1.0 - model_m)
        elif self.model_interpolation == ADD_DIFFERENCE:
            difference = _core(ModelMergeSubtract, {"model2": "ckpt_C_name"}, model1=models["B"], model2=models["C"],
                               multiplier=model_m)
            model = _core(ModelMergeAdd, {"model2": "ckpt_B_name"}, model1=models["A"], model2=difference)
        else:
            model = models["A"]
        renamed = {"clip1": "clip_A_override", "clip2": "clip_B_override"}
        if clip_interpolation == WEIGHTED_SUM:
            clip = _core(CLIPMergeSimple, renamed, clip1=clips["A"], clip2=clips["B"], ratio=1.0 - clip_m)
        elif clip_interpolation == ADD_DIFFERENCE:
            difference = _core(CLIPMergeSubtract, renamed, clip1=clips["B"], clip2=clips["C"], multiplier=clip_m)
            clip = _core(CLIPMergeAdd, renamed, clip1=clips["A"], clip2=difference)
        else:
            clip = clips[clip_letters]
        return model, clip
