"""Comfyroll Studio's (Suzie1/ComfyUI_Comfyroll_CustomNodes) common nodes, under the pack's class
names ("CR ..."), inputs, defaults and outputs, each with the pack's trailing `show_help` output
(the link to the pack's wiki page, as the pack gives it). This module holds its core, size,
upscale, model merge, SDXL encoder, switch, LoRA, ControlNet and pipe nodes; its text (prompt
text and the SDXL prompt mixers too), value, list and graphics nodes are in
nodes/pack_nodes_comfyroll_utils.py.

Read from the pack's source as the search index stores it: node_mappings.py at 0c25577b,
nodes_core.py (its newest stored text, index file 3443833355; 38ab576f before it),
nodes_aspect_ratio.py at 0c25577b, nodes_legacy.py at 03be00b7, nodes_utils_logic.py,
nodes_controlnet.py and nodes_pipe.py at 1b2fbfde, nodes_lora.py at 67f043c3, nodes_upscale.py at
344b5c97 with upscale_functions.py at 3ef8055b, sdxl.py at 1a757776, nodes_model_merge.py at
1b2fbfde.

Built in here:
- core: CR Seed, CR Latent Batch Size, CR Conditioning Mixer (the core conditioning nodes), CR
  Select Model (CheckpointLoaderSimple), CR Image Output;
- sizes: CR SD1.5 / SDXL Aspect Ratio, CR Aspect Ratio, CR Image Size (legacy), CR Upscale Image
  (an upscale model, then Pillow's resize as the pack does it: always bicubic, its resampling_method
  landing on an unused parameter there), CR Multi Upscale Stack and CR Apply Multi Upscale;
- model merge: CR Model Merge Stack and CR Apply Model Merge (ModelMergeSimple and CLIPMergeSimple);
- SDXL: CR SDXL Base Prompt Encoder (CLIPTextEncodeSDXL);
- switches: the Image (2 and 4 way), Text (2 and 4 way), Model, Latent, Conditioning, Clip, VAE
  and ControlNet input switches, CR Switch Model and CLIP, CR Pipe Switch and the Img2Img, Hires
  Fix and Batch process switches;
- LoRA and ControlNet: CR Load LoRA, CR LoRA Stack, CR Apply LoRA Stack, CR Apply ControlNet,
  CR Multi-ControlNet Stack, CR Apply Multi-ControlNet. LORA_STACK and CONTROL_NET_STACK are
  Efficiency Nodes' sockets (nodes/efficiency_nodes.py), same tuples, so the packs' stackers and
  appliers link into each other;
- pipes: CR Module Pipe Loader / Input / Output (PIPE_LINE: model, pos, neg, latent, vae, clip,
  controlnet, image, seed) and CR Image Pipe In / Edit / Out (image, width, height, upscale_factor).
  TinyTerra's pipes are also named PIPE_LINE but carry a dict: the two don't mix, in ComfyUI either.

Left out: CR Random LoRA Stack and CR Random Weight LoRA (they re-draw through ComfyUI's
IS_CHANGED and process-wide state, which a saved workflow can't reproduce); every node drawing
text (CR Simple Image Compare, CR Simple Text Panel, CR Page Layout, the text and template nodes:
they draw with the .ttf fonts the pack ships, which are not here, so their pictures could not be
the pack's); CR VAE Decode (its circular padding); the other list, animation, XY grid, schedule,
pattern and filter nodes. (CR Random Multiline Colors' "matplotlib xkcd" choice draws from the xkcd
survey's names graphflow ships for ComfyUI_LayerStyle, matplotlib's table in its order.)"""

from __future__ import annotations

from graphflow.api import BOOLEAN, CLIP, CONDITIONING, FLOAT, IMAGE, INT, LATENT, MODEL, STRING, VAE, Bool, Choice, \
    ComfyAlias, Estimate, Float, Int, Node, NodeInputError, Size, Text, folders, repeated, safe_join, show, \
    socket_type, subfolder_name
from nodes.controlnet import CONTROL_NET, _apply
from nodes.controlnet import _load as load_controlnet
from nodes.efficiency_nodes import CONTROL_NET_STACK, LORA_STACK, _apply_cnet_stack, _lora_rows
from nodes.image import MAX_SIZE
from nodes.pack_nodes import _apply_lora, _core, _lora_choices
from nodes.sampling import SEED_MAX
from nodes.upscale import ImageUpscaleWithModel, LoadUpscaleModel

COMFY_PACK = "ComfyUI_Comfyroll_CustomNodes"  # the custom node pack this module's ComfyUI classes come from

PIPE_LINE = socket_type("PIPE_LINE", "#7e57c2", "Comfyroll's pipe: a tuple of the pieces a module passes on")

WIKI = "https://github.com/Suzie1/ComfyUI_Comfyroll_CustomNodes/wiki/"
CR_LIMIT = 18446744073709551615  # the pack's bounds on its value widgets, both signs
ON_OFF = ("On", "Off")  # "On" first: the default where the pack lists it so
OFF_ON = ("Off", "On")


def _help(page: str, anchor: str) -> str:
    """The pack's show_help output: its wiki page for the node."""
    return f"{WIKI}{page}#{anchor}"


def _controlnet_choices() -> list[str]:
    return ["None"] + folders.list_models("controlnet")


# -- aspect ratios and sizes ------------------------------------------------------------------

SD15_RATIOS = {
    "1:1 square 512x512": (512, 512), "1:1 square 1024x1024": (1024, 1024),
    "2:3 portrait 512x768": (512, 768), "3:4 portrait 512x682": (512, 682),
    "3:2 landscape 768x512": (768, 512), "4:3 landscape 682x512": (682, 512),
    "16:9 cinema 910x512": (910, 512), "1.85:1 cinema 952x512": (952, 512),
    "2:1 cinema 1024x512": (1024, 512), "2.39:1 anamorphic 1224x512": (1224, 512),
}
SDXL_RATIOS = {
    "1:1 square 1024x1024": (1024, 1024), "3:4 portrait 896x1152": (896, 1152),
    "5:8 portrait 832x1216": (832, 1216), "9:16 portrait 768x1344": (768, 1344),
    "9:21 portrait 640x1536": (640, 1536), "4:3 landscape 1152x896": (1152, 896),
    "3:2 landscape 1216x832": (1216, 832), "16:9 landscape 1344x768": (1344, 768),
    "21:9 landscape 1536x640": (1536, 640),
}
# CR Aspect Ratio's list: the SD1.5 sizes but the 1024 square and the anamorphic one, then SDXL's
MIXED_RATIOS = {**{f"SD1.5 - {k}": v for k, v in SD15_RATIOS.items()
                   if k not in ("1:1 square 1024x1024", "2.39:1 anamorphic 1224x512")},
                **{f"SDXL - {k}": v for k, v in SDXL_RATIOS.items()}}


def aspect_size(presets: dict, aspect_ratio: str, width: int, height: int, swap: str,
                prescale: float = 1.0) -> tuple[int, int]:
    """The pack's size: the preset's (width, height), or the widgets' for "custom"; swapped when
    swap_dimensions is "On"; then each side times prescale_factor, truncated."""
    width, height = presets.get(aspect_ratio, (width, height))
    if swap == "On":
        width, height = height, width
    return int(width * prescale), int(height * prescale)


def _empty_latent(batch_size: int, width: int, height: int) -> dict:
    import torch
    return {"samples": torch.zeros(batch_size, 4, height // 8, width // 8)}


# the largest latent batch CR Latent Batch Size makes: 64 of MAX_SIZE x MAX_SIZE pixels (4 channels at 1/8
# side), the largest the aspect-ratio nodes make; past it torch's allocation would fail without a word
MAX_LATENT_VALUES = 64 * 4 * (MAX_SIZE // 8) ** 2


def _aspect_estimate(presets, widgets, prescale=1.0):
    try:
        width, height = aspect_size(presets, widgets["aspect_ratio"], widgets["width"], widgets["height"],
                                    widgets["swap_dimensions"], prescale)
        return Estimate(Size(widgets["batch_size"], height, width))
    except (KeyError, TypeError):
        return Estimate()


class CRAspectRatioSD15(Node):
    """An SD1.5 size from a preset (or width x height for "custom"), swapped on request, with an
    empty latent batch of that size (4 channels at 1/8, sides rounded down), as Comfyroll's CR
    SD1.5 Aspect Ratio gives it; upscale_factor and batch_size are passed on."""
    category = "Comfyroll Studio/Essential/Aspect Ratio"
    width: int = Int(512, min=64, max=8192, resource="width")
    height: int = Int(512, min=64, max=8192, resource="height")
    aspect_ratio: str = Choice(("custom", *SD15_RATIOS), "custom")
    swap_dimensions: str = Choice(OFF_ON, "Off")
    upscale_factor: float = Float(1.0, min=0.1, max=100.0, step=0.1)
    batch_size: int = Int(1, min=1, max=64, resource="batch")
    outputs = {"width": INT, "height": INT, "upscale_factor": FLOAT, "batch_size": INT, "empty_latent": LATENT,
               "show_help": STRING}
    comfy = ComfyAlias(("CR SD1.5 Aspect Ratio",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return _aspect_estimate(SD15_RATIOS, widgets)

    def run(self):
        width, height = aspect_size(SD15_RATIOS, self.aspect_ratio, self.width, self.height, self.swap_dimensions)
        return (width, height, self.upscale_factor, self.batch_size, _empty_latent(self.batch_size, width, height),
                _help("Aspect-Ratio-Nodes", "cr-sd15-aspect-ratio"))


class CRSDXLAspectRatio(Node):
    """An SDXL size from a preset (or width x height for "custom"), swapped on request, with an
    empty latent batch of that size, as Comfyroll's CR SDXL Aspect Ratio gives it."""
    category = "Comfyroll Studio/Essential/Aspect Ratio"
    width: int = Int(1024, min=64, max=8192, resource="width")
    height: int = Int(1024, min=64, max=8192, resource="height")
    aspect_ratio: str = Choice(("custom", *SDXL_RATIOS), "custom")
    swap_dimensions: str = Choice(OFF_ON, "Off")
    upscale_factor: float = Float(1.0, min=0.1, max=100.0, step=0.1)
    batch_size: int = Int(1, min=1, max=64, resource="batch")
    outputs = dict(CRAspectRatioSD15.outputs)
    comfy = ComfyAlias(("CR SDXL Aspect Ratio",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return _aspect_estimate(SDXL_RATIOS, widgets)

    def run(self):
        width, height = aspect_size(SDXL_RATIOS, self.aspect_ratio, self.width, self.height, self.swap_dimensions)
        return (width, height, self.upscale_factor, self.batch_size, _empty_latent(self.batch_size, width, height),
                _help("Aspect-Ratio-Nodes", "cr-sdxl-aspect-ratio"))


class CRAspectRatio(Node):
    """An SD1.5 or SDXL size from a preset (or width x height for "custom"), swapped on request,
    then each side multiplied by prescale_factor (truncated), with an empty latent batch of that
    size, as Comfyroll's CR Aspect Ratio gives it; the factors and batch_size are passed on. A
    prescaled side over 16384 pixels is refused (the pack would try to allocate it)."""
    category = "Comfyroll Studio/Essential/Aspect Ratio"
    width: int = Int(1024, min=64, max=8192, resource="width")
    height: int = Int(1024, min=64, max=8192, resource="height")
    aspect_ratio: str = Choice(("custom", *MIXED_RATIOS), "custom")
    swap_dimensions: str = Choice(OFF_ON, "Off")
    upscale_factor: float = Float(1.0, min=0.1, max=100.0, step=0.1)
    prescale_factor: float = Float(1.0, min=0.1, max=100.0, step=0.1)
    batch_size: int = Int(1, min=1, max=64, resource="batch")
    outputs = {"width": INT, "height": INT, "upscale_factor": FLOAT, "prescale_factor": FLOAT, "batch_size": INT,
               "empty_latent": LATENT, "show_help": STRING}
    comfy = ComfyAlias(("CR Aspect Ratio",))

    @classmethod
    def estimate(cls, widgets, inputs):
        # a linked factor is unknown until the run (checked there): its least, 0.1, gives a lower bound
        return _aspect_estimate(MIXED_RATIOS, widgets, widgets.get("prescale_factor", 0.1))

    def run(self):
        width, height = aspect_size(MIXED_RATIOS, self.aspect_ratio, self.width, self.height, self.swap_dimensions,
                                    self.prescale_factor)
        if width < 8 or height < 8:  # prescaled below one latent pixel: an empty latent of no size
            raise NodeInputError("prescale_factor", f"makes the size {width}x{height}; a latent needs 8 pixels a side")
        if max(width, height) > MAX_SIZE:  # a linked factor the check before the run could not see
            raise NodeInputError("prescale_factor", f"{self.prescale_factor} makes the size {width}x{height}: expected "
                                                    f"at most {MAX_SIZE} pixels a side")
        return (width, height, self.upscale_factor, self.prescale_factor, self.batch_size,
                _empty_latent(self.batch_size, width, height), _help("Aspect-Ratio-Nodes", "cr-aspect-ratio"))


class CRImageSize(Node):
    """Width, height and an upscale factor to link into other nodes, as Comfyroll's CR Image Size
    (Legacy) gives them."""
    category = "Comfyroll Studio/Essential/Legacy"
    width: int = Int(512, min=64, max=2048)
    height: int = Int(512, min=64, max=2048)
    upscale_factor: float = Float(1.0, min=1.0, max=2000.0, step=0.1)
    outputs = {"Width": INT, "Height": INT, "upscale_factor": FLOAT, "show_help": STRING}
    comfy = ComfyAlias(("CR Image Size",))

    def run(self):
        return self.width, self.height, self.upscale_factor, _help("Legacy-Nodes", "cr-image-size")


class CRLatentBatchSize(Node):
    """The latent's samples repeated batch_size times one after another (a batch of 2 becomes
    a, b, a, b ...), as Comfyroll's CR Latent Batch Size makes it; like the pack, only the samples
    are kept (a noise mask or batch indices are dropped). A result larger than 64 latents of
    16384 x 16384 pixels is refused."""
    category = "Comfyroll Studio/Essential/Core"
    latent: LATENT
    batch_size: int = Int(2, min=1, max=999)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("CR Latent Batch Size",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return repeated(inputs.get("latent"), widgets.get("batch_size"))

    def run(self):
        samples = self.latent.get("samples") if isinstance(self.latent, dict) else None
        if samples is None:
            raise NodeInputError("latent", f"expected a LATENT with samples, got {type(self.latent).__name__}")
        if samples.numel() * self.batch_size > MAX_LATENT_VALUES:  # a linked batch_size or size: unchecked before
            raise NodeInputError("batch_size", f"{self.batch_size} copies of a latent of shape {tuple(samples.shape)} "
                                               f"are more than {MAX_LATENT_VALUES:,} values (64 latents of "
                                               f"{MAX_SIZE}x{MAX_SIZE} pixels)")
        return {"samples": samples.repeat(self.batch_size, *[1] * (samples.ndim - 1))}


# -- upscale ----------------------------------------------------------------------------------

RESAMPLING = ("lanczos", "nearest", "bilinear", "bicubic")


def cr_resize_size(width: int, height: int, mode: str, rescale_factor: float, resize_width: int,
                   rounding_modulus: int) -> tuple[int, int]:
    """The pack's apply_resize_image size for a width x height original: "rescale" each side
    times the factor, truncated; "resize" resize_width wide and resize_width times the original's
    height / width (truncated: the pack's float ratio, so 640 x 323 at 1920 gives 968, not 969),
    each side rounded up to a multiple of rounding_modulus."""
    if mode == "rescale":
        return int(width * rescale_factor), int(height * rescale_factor)
    new_height = int(resize_width * (height / width))
    return (-(-resize_width // rounding_modulus) * rounding_modulus,
            -(-new_height // rounding_modulus) * rounding_modulus)


class CRUpscaleImage(Node):
    """Upscale images with an upscale model (from models/upscale_models, run in 512-pixel tiles
    overlapping by 32 as ImageUpscaleWithModel does), then resize them with Pillow's bicubic filter
    as Comfyroll's CR Upscale Image does: "rescale" to the original size times rescale_factor,
    "resize" to resize_width wide keeping the aspect, both sides rounded up to rounding_modulus.
    With supersample "true" Pillow first resizes to 8 times that size, then down to it. The resize
    goes through 8-bit pictures, as the pack's does. When the model kept the width and the factor
    is 1, the model's images are given as they are. resampling_method is ignored, as in the pack
    (its code passes the choice where the resize takes a height, so it always resizes bicubic)."""
    category = "Comfyroll Studio/Essential/Upscale"
    image: IMAGE
    upscale_model: str = Choice(lambda: folders.list_models("upscale_models"), model_folder="upscale_models")
    mode: str = Choice(("rescale", "resize"), "rescale")
    rescale_factor: float = Float(2.0, min=0.01, max=16.0, step=0.01)
    resize_width: int = Int(1024, min=1, max=48000)
    resampling_method: str = Choice(RESAMPLING, "lanczos")
    supersample: str = Choice(("true", "false"), "true")
    rounding_modulus: int = Int(8, min=8, max=1024, step=8)
    outputs = {"IMAGE": IMAGE, "show_help": STRING}
    comfy = ComfyAlias(("CR Upscale Image",))

    @classmethod
    def fingerprint(cls, upscale_model=None, **widgets):
        return folders.model_state("upscale_models", upscale_model)

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("image")
        try:
            width, height = cr_resize_size(size.width, size.height, widgets["mode"], widgets["rescale_factor"],
                                           widgets["resize_width"], widgets["rounding_modulus"])
        except (AttributeError, KeyError, TypeError, ZeroDivisionError):
            return Estimate()
        supersampled = 64 * width * height * 3 if widgets.get("supersample") == "true" else 0  # 8-bit RGB
        return Estimate(Size(size.batch, height, width), memory=supersampled)

    def run(self):
        upscaled = _model_upscale(self.image, self.upscale_model, "upscale_model")
        height, width = self.image.shape[1:3]
        if upscaled.shape[2] == width and self.rescale_factor == 1:
            return upscaled, _help("Upscale-Nodes", "cr-upscale-image")
        new_width, new_height = cr_resize_size(width, height, self.mode, self.rescale_factor, self.resize_width,
                                               self.rounding_modulus)
        if new_width < 1 or new_height < 1:
            raise NodeInputError("rescale_factor" if self.mode == "rescale" else "resize_width",
                                 f"makes the size {new_width}x{new_height}")
        return _pillow_resize(upscaled, new_width, new_height, self.supersample), _help("Upscale-Nodes",
                                                                                        "cr-upscale-image")


def _model_upscale(image, model_name: str, input_name: str):
    """The image through an upscale model from models/upscale_models, as ImageUpscaleWithModel runs it."""
    model = _core(LoadUpscaleModel, {"model_name": input_name}, model_name=model_name)
    return _core(ImageUpscaleWithModel, {"upscale_model": input_name}, upscale_model=model, image=image)


def _pillow_resize(images, width: int, height: int, supersample: str):
    """Each image resized with Pillow's bicubic filter as the pack's apply_resize_image does (the
    pack's nodes never pass it their resampling_method): through its 8-bit picture, first to 8
    times the size when supersampling. That 8x picture stays 8-bit, frame by frame, as there
    (graphflow.images.pil_resize would hold the batch of them as float tensors)."""
    import torch
    from PIL import Image

    from graphflow.images import image_to_pil, pil_to_image

    frames = []
    for frame in images:
        picture = image_to_pil(frame)
        if supersample == "true":
            picture = picture.resize((width * 8, height * 8), resample=Image.BICUBIC)
        frames.append(pil_to_image(picture.resize((width, height), resample=Image.BICUBIC))[0])
    return torch.stack(frames)


UPSCALE_STACK = socket_type("UPSCALE_STACK", "#90a4ae",
                            "Comfyroll's upscales to apply: (upscale model, rescale factor)")


def _upscale_choices() -> list[str]:
    return ["None"] + folders.list_models("upscale_models")


class CRMultiUpscaleStack(Node):
    """List up to three upscale models with their rescale factors, as Comfyroll's CR Multi Upscale
    Stack: an incoming stack's entries first, then each row switched "On" and not "None"."""
    category = "Comfyroll Studio/Essential/Upscale"
    for _i in (1, 2, 3):
        __annotations__[f"switch_{_i}"] = str
        locals()[f"switch_{_i}"] = Choice(ON_OFF, "On")
        __annotations__[f"upscale_model_{_i}"] = str
        locals()[f"upscale_model_{_i}"] = Choice(_upscale_choices, "None", model_folder="upscale_models",
                                                 not_files=("None",))
        __annotations__[f"rescale_factor_{_i}"] = float
        locals()[f"rescale_factor_{_i}"] = Float(2.0, min=0.01, max=16.0, step=0.01)
    del _i
    upscale_stack: UPSCALE_STACK = None
    outputs = {"UPSCALE_STACK": UPSCALE_STACK, "show_help": STRING}
    comfy = ComfyAlias(("CR Multi Upscale Stack",), optional=("upscale_stack",))

    def run(self):
        rows = [row for row in _upscale_rows(self.upscale_stack) if row[0] != "None"]
        for i in (1, 2, 3):
            name = getattr(self, f"upscale_model_{i}")
            if name != "None" and getattr(self, f"switch_{i}") == "On":
                rows.append((name, getattr(self, f"rescale_factor_{i}")))
        return rows, _help("Upscale-Nodes", "cr-multi-upscale-stack")


def _upscale_rows(stack) -> list[tuple]:
    """An UPSCALE_STACK's (upscale_model, rescale_factor) rows; it links from ANY outputs too."""
    if stack is None:
        return []
    if not isinstance(stack, (list, tuple)) or not all(isinstance(r, (list, tuple)) and len(r) == 2 for r in stack):
        raise NodeInputError("upscale_stack", f"expected a list of (upscale_model, rescale_factor), got "
                                              f"{stack!r:.80}")
    return [tuple(row) for row in stack]


class CRApplyMultiUpscale(Node):
    """Apply each upscale of a stack in turn, as Comfyroll's CR Apply Multi Upscale does: the
    running image through the model, then resized with Pillow's bicubic filter (as CR Upscale
    Image, "rescale") to the original image's size times that entry's factor, so the last entry's
    factor sets the final size. resampling_method is ignored, as in the pack (it always resizes
    bicubic)."""
    category = "Comfyroll Studio/Essential/Upscale"
    image: IMAGE
    resampling_method: str = Choice(RESAMPLING, "lanczos")
    supersample: str = Choice(("true", "false"), "true")
    rounding_modulus: int = Int(8, min=8, max=1024, step=8)
    upscale_stack: UPSCALE_STACK
    outputs = {"IMAGE": IMAGE, "show_help": STRING}
    comfy = ComfyAlias(("CR Apply Multi Upscale",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return Estimate()  # the stack's factors come through a link: unknown before the run

    def run(self):
        height, width = self.image.shape[1:3]
        image = self.image
        for name, factor in _upscale_rows(self.upscale_stack):
            upscaled = _model_upscale(image, name, "upscale_stack")
            if upscaled.shape[2] == width and factor == 1:
                image = upscaled
                continue
            new_width, new_height = cr_resize_size(width, height, "rescale", factor, 0, self.rounding_modulus)
            if new_width < 1 or new_height < 1:
                raise NodeInputError("upscale_stack", f"factor {factor} makes the size {new_width}x{new_height}")
            image = _pillow_resize(upscaled, new_width, new_height, self.supersample)
        return image, _help("Upscale-Nodes", "cr-apply-multi-upscale")


# -- core --------------------------------------------------------------------------------------


class CRSeed(Node):
    """A seed to link into samplers, as Comfyroll's CR Seed gives it (the editor's
    control_after_generate follows the widget). An output node, as in the pack: it runs even when
    nothing reads its seed."""
    category = "Comfyroll Studio/Essential/Core"
    output_node = True
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"seed": INT, "show_help": STRING}
    comfy = ComfyAlias(("CR Seed",))

    def run(self):
        return self.seed, _help("Core-Nodes", "cr-seed")


# file_format -> (Pillow's format, the pack's save options)
IMAGE_FORMATS = {"png": ("PNG", {"compress_level": 4}), "jpg": ("JPEG", {}),
                 "webp": ("WEBP", {"method": 6, "lossless": False, "quality": 80}), "tif": ("TIFF", {})}


class CRImageOutput(Node):
    """Show or save images as Comfyroll's CR Image Output does: "Save" writes them to the outputs
    folder as `prefix_NNNNN_.png` (or .jpg, .webp lossy at quality 80, .tif) with the workflow
    embedded in PNGs as SaveImage does, the prefix followed by _yyyyMMdd (today) with that preset;
    "Preview" writes them so to the temp folder and shows them; "UI (no batch)" sends them to the
    client's websocket as SaveImageWebsocket does. The trigger input is passed on."""
    category = "Comfyroll Studio/Essential/Core"
    output_node = True
    images: IMAGE
    output_type: str = Choice(("Preview", "Save", "UI (no batch)"), "Preview")
    filename_prefix: str = Text("CR", file_name=True)
    prefix_presets: str = Choice(("None", "yyyyMMdd"), "None")
    file_format: str = Choice(tuple(IMAGE_FORMATS), "png")
    trigger: bool = Bool(False)
    outputs = {"trigger": BOOLEAN}
    comfy = ComfyAlias(("CR Image Output",), optional=("trigger",))

    def run(self):
        from nodes.image import SaveImageWebsocket

        if self.output_type == "UI (no batch)":
            _core(SaveImageWebsocket, images=self.images)
        else:  # the pack writes a preview as it saves, to the temp folder
            self._save(*((folders.temp, "temp") if self.output_type == "Preview" else (folders.outputs, "output")))
        return self.trigger

    def _save(self, root, kind: str):
        import datetime

        from graphflow.images import image_to_pil
        from nodes.image import _next_counter, _png_metadata, _save_new

        prefix = self.filename_prefix
        if self.prefix_presets == "yyyyMMdd":
            prefix = f"{prefix}_{datetime.date.today():%Y%m%d}"
        prefix = prefix[1:] if prefix.startswith("_") else prefix
        try:
            target = safe_join(root, prefix)
        except ValueError as e:
            raise NodeInputError("filename_prefix", str(e)) from None
        folder, stem = target.parent, target.name
        folder.mkdir(parents=True, exist_ok=True)
        subfolder = subfolder_name(root, folder)
        image_format, options = IMAGE_FORMATS[self.file_format]
        if image_format == "PNG":
            options = {**options, "pnginfo": _png_metadata()}
        counter, saved = _next_counter(folder, stem), []
        for image in self.images:
            picture = image_to_pil(image)
            if image_format == "JPEG" and picture.mode != "RGB":
                picture = picture.convert("RGB")
            name, counter = _save_new(picture, folder, stem, counter, suffix=f"_.{self.file_format}",
                                      image_format=image_format, **options)
            counter += 1
            saved.append({"filename": name, "subfolder": subfolder, "type": kind})
        show(images=saved)


MIX_METHODS = ("Combine", "Average", "Concatenate")


class CRConditioningMixer(Node):
    """Mix two conditionings as Comfyroll's CR Conditioning Mixer does, through the core nodes:
    "Combine" both (ConditioningCombine), "Average" conditioning_2 * average_strength +
    conditioning_1 * (1 - average_strength) (ConditioningAverage, conditioning_1 the "from"), or
    "Concatenate" conditioning_1's tokens after conditioning_2's (ConditioningConcat)."""
    category = "Comfyroll Studio/Essential/Core"
    conditioning_1: CONDITIONING
    conditioning_2: CONDITIONING
    mix_method: str = Choice(MIX_METHODS, "Combine")
    average_strength: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    outputs = {"CONDITIONING": CONDITIONING, "show_help": STRING}
    comfy = ComfyAlias(("CR Conditioning Mixer",))

    def run(self):
        from nodes.conditioning import ConditioningAverage, ConditioningCombine, ConditioningConcat

        renamed = {"conditioning_from": "conditioning_1", "conditioning_to": "conditioning_2"}
        if self.mix_method == "Combine":
            mixed = _core(ConditioningCombine, conditioning_1=self.conditioning_1, conditioning_2=self.conditioning_2)
        elif self.mix_method == "Average":
            mixed = _core(ConditioningAverage, renamed, conditioning_to=self.conditioning_2,
                          conditioning_from=self.conditioning_1, conditioning_to_strength=self.average_strength)
        else:
            mixed = _core(ConditioningConcat, renamed, conditioning_to=self.conditioning_2,
                          conditioning_from=self.conditioning_1)
        return mixed, _help("Core-Nodes", "cr-conditioning-mixer")


def _checkpoint_choices() -> list[str]:
    return ["None"] + folders.list_models("checkpoints")


class CRSelectModel(Node):
    """Load the checkpoint chosen by select_model (1 to 5) of the five listed, as Comfyroll's CR
    Select Model does, as CheckpointLoaderSimple loads it; also gives its file name. The chosen
    one must not be "None"."""
    category = "Comfyroll Studio/Essential/Core"
    for _i in range(1, 6):
        __annotations__[f"ckpt_name{_i}"] = str
        locals()[f"ckpt_name{_i}"] = Choice(_checkpoint_choices, "None", model_folder="checkpoints",
                                            not_files=("None",))
    del _i
    select_model: int = Int(1, min=1, max=5)
    outputs = {"MODEL": MODEL, "CLIP": CLIP, "VAE": VAE, "ckpt_name": STRING, "show_help": STRING}
    comfy = ComfyAlias(("CR Select Model",))

    @classmethod
    def fingerprint(cls, select_model=1, **widgets):
        name = widgets.get(f"ckpt_name{select_model}", "None")
        return folders.model_state("checkpoints", name) if name != "None" else None

    def run(self):
        from nodes.loaders import LoadCheckpoint

        input_name = f"ckpt_name{self.select_model}"
        name = getattr(self, input_name)
        if name == "None":
            raise NodeInputError(input_name, "is selected by select_model but is \"None\": choose a checkpoint")
        model, clip, vae = _core(LoadCheckpoint, {"checkpoint": input_name}, checkpoint=name)
        return model, clip, vae, name, _help("Core-Nodes", "cr-select-model")


# -- model merge ------------------------------------------------------------------------------

MODEL_STACK = socket_type("MODEL_STACK", "#b39ddb",
                          "Comfyroll's checkpoints to merge: (checkpoint name, model ratio, clip ratio)")


class CRModelMergeStack(Node):
    """List up to three checkpoints with their model and CLIP ratios for CR Apply Model Merge, as
    Comfyroll's CR Model Merge Stack: an incoming stack's entries first, then each row switched
    "On" and not "None"."""
    category = "Comfyroll Studio/Essential/Model Merge"
    for _i in (1, 2, 3):
        __annotations__[f"switch_{_i}"] = str
        locals()[f"switch_{_i}"] = Choice(OFF_ON, "Off")
        __annotations__[f"ckpt_name{_i}"] = str
        locals()[f"ckpt_name{_i}"] = Choice(_checkpoint_choices, "None", model_folder="checkpoints",
                                            not_files=("None",))
        __annotations__[f"model_ratio{_i}"] = float
        locals()[f"model_ratio{_i}"] = Float(1.0, min=-100.0, max=100.0, step=0.01)
        __annotations__[f"clip_ratio{_i}"] = float
        locals()[f"clip_ratio{_i}"] = Float(1.0, min=-100.0, max=100.0, step=0.01)
    del _i
    model_stack: MODEL_STACK = None
    outputs = {"MODEL_STACK": MODEL_STACK, "show_help": STRING}
    comfy = ComfyAlias(("CR Model Merge Stack",), optional=("model_stack",))

    def run(self):
        rows = [tuple(row) for row in _merge_rows(self.model_stack) if row[0] != "None"]
        for i in (1, 2, 3):
            name = getattr(self, f"ckpt_name{i}")
            if name != "None" and getattr(self, f"switch_{i}") == "On":
                rows.append((name, getattr(self, f"model_ratio{i}"), getattr(self, f"clip_ratio{i}")))
        return rows, _help("Model-Merge-Nodes", "cr-model-stack")


def _merge_rows(stack) -> list:
    if stack is None:
        return []
    if not isinstance(stack, (list, tuple)) or not all(isinstance(r, (list, tuple)) and len(r) == 3 for r in stack):
        raise NodeInputError("model_stack", f"expected a list of (ckpt_name, model_ratio, clip_ratio), got "
                                            f"{stack!r:.80}")
    return list(stack)


class CRApplyModelMerge(Node):
    """Merge the checkpoints of a MODEL_STACK as Comfyroll's CR Apply Model Merge does: starting
    from the first, each next one merged in with ModelMergeSimple and CLIPMergeSimple as
    previous * (1 - ratio) + next * ratio (its model and CLIP ratios). With normalise_ratios
    "Yes" and model ratios not summing to 1, each ratio is first divided by the sum of its kind
    and rounded to 2 decimals; with "Weighted", the second checkpoint's ratios become 1 -
    weight_factor + weight_factor * ratio. A stack of one gives that checkpoint as it is (the pack
    then puts its VAE where the merge info goes; here the info says so)."""
    category = "Comfyroll Studio/Essential/Model Merge"
    model_stack: MODEL_STACK
    merge_method: str = Choice(("Recursive", "Weighted"), "Recursive")
    normalise_ratios: str = Choice(("Yes", "No"), "Yes")
    weight_factor: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"MODEL": MODEL, "CLIP": CLIP, "model_mix_info": STRING, "show_help": STRING}
    comfy = ComfyAlias(("CR Apply Model Merge",))

    def run(self):
        from nodes.loaders import LoadCheckpoint
        from nodes.model_merging import CLIPMergeSimple, ModelMergeSimple

        url = _help("Model-Merge-Nodes", "cr-apply-model-merge")
        rows = _merge_rows(self.model_stack)
        if not rows:
            raise NodeInputError("model_stack", "is empty: switch on at least one checkpoint")
        if len(rows) == 1:
            model, clip, _ = _core(LoadCheckpoint, {"checkpoint": "model_stack"}, checkpoint=rows[0][0])
            return model, clip, f"Merge Info:\nOnly one model, not merged: {rows[0][0]}", url
        model_sum, clip_sum = sum(r[1] for r in rows), sum(r[2] for r in rows)
        normalise = self.normalise_ratios == "Yes" and model_sum != 1
        if normalise and (model_sum == 0 or clip_sum == 0):
            raise NodeInputError("model_stack", "its ratios sum to 0: they can't be normalised")
        info = "Merge Info:\nRatios are applied using the Recursive method\n\n"
        for i, (name, model_ratio, clip_ratio) in enumerate(rows):
            model2, clip2, _ = _core(LoadCheckpoint, {"checkpoint": "model_stack"}, checkpoint=name)
            if normalise:
                model_ratio, clip_ratio = round(model_ratio / model_sum, 2), round(clip_ratio / clip_sum, 2)
            if self.merge_method == "Weighted" and i == 1:
                model_ratio = 1 - self.weight_factor + self.weight_factor * model_ratio
                clip_ratio = 1 - self.weight_factor + self.weight_factor * clip_ratio
            if i == 0:
                model, clip = model2, clip2
                info += "Base Model Name: " + name
                continue
            model = _core(ModelMergeSimple, model1=model, model2=model2, ratio=1.0 - model_ratio)
            clip = _core(CLIPMergeSimple, clip1=clip, clip2=clip2, ratio=1.0 - clip_ratio)
            info += f"\nModel Name: {name}\nModel Ratio: {model_ratio}\nCLIP Ratio: {clip_ratio}\n"
        return model, clip, info, url


# -- SDXL prompt encoder ----------------------------------------------------------------------

SDXL = "Comfyroll Studio/Essential/SDXL"


class CRSDXLBasePromptEncoder(Node):
    """Encode SDXL base prompts with their size conditioning as CLIPTextEncodeSDXL does, as
    Comfyroll's CR SDXL Base Prompt Encoder picks them by preset: "preset A" (pos_g, pos_l) and
    (neg_g, neg_l) as G and L texts; "preset B" (pos_l, neg_l) and (neg_l, neg_l), as the pack's
    code pairs them; "preset C" both, combined."""
    category = SDXL
    base_clip: CLIP
    pos_g: str = Text("POS_G", multiline=True)
    pos_l: str = Text("POS_L", multiline=True)
    neg_g: str = Text("NEG_G", multiline=True)
    neg_l: str = Text("NEG_L", multiline=True)
    preset: str = Choice(("preset A", "preset B", "preset C"), "preset A")
    base_width: int = Int(4096, min=0, max=MAX_SIZE, step=64)
    base_height: int = Int(4096, min=0, max=MAX_SIZE, step=64)
    crop_w: int = Int(0, min=0, max=MAX_SIZE, step=64)
    crop_h: int = Int(0, min=0, max=MAX_SIZE, step=64)
    target_width: int = Int(4096, min=0, max=MAX_SIZE, step=64)
    target_height: int = Int(4096, min=0, max=MAX_SIZE, step=64)
    outputs = {"base_positive": CONDITIONING, "base_negative": CONDITIONING, "show_help": STRING}
    comfy = ComfyAlias(("CR SDXL Base Prompt Encoder",))

    def _encode(self, text_g: str, text_l: str) -> list:
        from nodes.conditioning import CLIPEncodeSDXL

        return _core(CLIPEncodeSDXL, {"clip": "base_clip"}, clip=self.base_clip, text_g=text_g, text_l=text_l,
                     width=self.base_width, height=self.base_height, crop_w=self.crop_w, crop_h=self.crop_h,
                     target_width=self.target_width, target_height=self.target_height)

    def run(self):
        positive, negative = [], []
        if self.preset in ("preset A", "preset C"):
            positive += self._encode(self.pos_g, self.pos_l)
            negative += self._encode(self.neg_g, self.neg_l)
        if self.preset in ("preset B", "preset C"):
            positive += self._encode(self.pos_l, self.neg_l)
            negative += self._encode(self.neg_l, self.neg_l)
        return positive, negative, _help("SDXL-Nodes", "cr-sdxl-base-prompt-encoder")


# -- switches ---------------------------------------------------------------------------------


def _picked(node, name: str):
    """The input a switch selected, which must be connected (the pack would pass None on)."""
    value = getattr(node, name)
    if value is None:
        raise NodeInputError(name, "is selected by Input but not connected")
    return value


def _two_way(node, first: str, second: str):
    return _picked(node, first if node.Input == 1 else second)


def _four_way(node, prefix: str):
    return _picked(node, f"{prefix}{min(node.Input, 4)}")


SWITCH = "Comfyroll Studio/Utils/Logic"
PROCESS = "Comfyroll Studio/Utils/Process"


class CRImageInputSwitch(Node):
    """image1 when Input is 1, else image2, as Comfyroll's CR Image Input Switch picks; the
    selected one must be connected."""
    category = SWITCH
    Input: int = Int(1, min=1, max=2)
    image1: IMAGE = None
    image2: IMAGE = None
    outputs = {"IMAGE": IMAGE, "show_help": STRING}
    comfy = ComfyAlias(("CR Image Input Switch",), optional=("image1", "image2"))

    def run(self):
        return _two_way(self, "image1", "image2"), _help("Logic-Nodes", "cr-image-input-switch")


class CRImageInputSwitch4(Node):
    """image1 to image4 by Input (1 to 4), as Comfyroll's CR Image Input Switch (4 way) picks."""
    category = SWITCH
    Input: int = Int(1, min=1, max=4)
    image1: IMAGE = None
    image2: IMAGE = None
    image3: IMAGE = None
    image4: IMAGE = None
    outputs = {"IMAGE": IMAGE, "show_help": STRING}
    comfy = ComfyAlias(("CR Image Input Switch (4 way)",), optional=("image1", "image2", "image3", "image4"))

    def run(self):
        return _four_way(self, "image"), _help("Logic-Nodes", "cr-text-input-switch-4-way")


class CRTextInputSwitch(Node):
    """text1 when Input is 1, else text2, as Comfyroll's CR Text Input Switch picks."""
    category = SWITCH
    Input: int = Int(1, min=1, max=2)
    text1: STRING = None
    text2: STRING = None
    outputs = {"STRING": STRING, "show_help": STRING}
    comfy = ComfyAlias(("CR Text Input Switch",), optional=("text1", "text2"))

    def run(self):
        return _two_way(self, "text1", "text2"), _help("Logic-Nodes", "cr-text-input-switch")


class CRTextInputSwitch4(Node):
    """text1 to text4 by Input (1 to 4), as Comfyroll's CR Text Input Switch (4 way) picks."""
    category = SWITCH
    Input: int = Int(1, min=1, max=4)
    text1: STRING = None
    text2: STRING = None
    text3: STRING = None
    text4: STRING = None
    outputs = {"STRING": STRING, "show_help": STRING}
    comfy = ComfyAlias(("CR Text Input Switch (4 way)",), optional=("text1", "text2", "text3", "text4"))

    def run(self):
        return _four_way(self, "text"), _help("Logic-Nodes", "cr-text-input-switch-4-way")


class CRModelInputSwitch(Node):
    """model1 when Input is 1, else model2, as Comfyroll's CR Model Input Switch picks."""
    category = SWITCH
    Input: int = Int(1, min=1, max=2)
    model1: MODEL = None
    model2: MODEL = None
    outputs = {"MODEL": MODEL, "show_help": STRING}
    comfy = ComfyAlias(("CR Model Input Switch",), optional=("model1", "model2"))

    def run(self):
        return _two_way(self, "model1", "model2"), _help("Logic-Nodes", "cr-model-input-switch")


class CRLatentInputSwitch(Node):
    """latent1 when Input is 1, else latent2, as Comfyroll's CR Latent Input Switch picks."""
    category = SWITCH
    Input: int = Int(1, min=1, max=2)
    latent1: LATENT = None
    latent2: LATENT = None
    outputs = {"LATENT": LATENT, "show_help": STRING}
    comfy = ComfyAlias(("CR Latent Input Switch",), optional=("latent1", "latent2"))

    def run(self):
        return _two_way(self, "latent1", "latent2"), _help("Logic-Nodes", "cr-latent-input-switch")


class CRConditioningInputSwitch(Node):
    """conditioning1 when Input is 1, else conditioning2, as Comfyroll's CR Conditioning Input
    Switch picks."""
    category = SWITCH
    Input: int = Int(1, min=1, max=2)
    conditioning1: CONDITIONING = None
    conditioning2: CONDITIONING = None
    outputs = {"CONDITIONING": CONDITIONING, "show_help": STRING}
    comfy = ComfyAlias(("CR Conditioning Input Switch",), optional=("conditioning1", "conditioning2"))

    def run(self):
        return _two_way(self, "conditioning1", "conditioning2"), _help("Logic-Nodes", "cr-conditioning-input-switch")


class CRClipInputSwitch(Node):
    """clip1 when Input is 1, else clip2, as Comfyroll's CR Clip Input Switch picks."""
    category = SWITCH
    Input: int = Int(1, min=1, max=2)
    clip1: CLIP = None
    clip2: CLIP = None
    outputs = {"CLIP": CLIP, "show_help": STRING}
    comfy = ComfyAlias(("CR Clip Input Switch",), optional=("clip1", "clip2"))

    def run(self):
        return _two_way(self, "clip1", "clip2"), _help("Logic-Nodes", "cr-clip-input-switch")


class CRVAEInputSwitch(Node):
    """VAE1 when Input is 1, else VAE2, as Comfyroll's CR VAE Input Switch picks."""
    category = SWITCH
    Input: int = Int(1, min=1, max=2)
    VAE1: VAE = None
    VAE2: VAE = None
    outputs = {"VAE": VAE, "show_help": STRING}
    comfy = ComfyAlias(("CR VAE Input Switch",), optional=("VAE1", "VAE2"))

    def run(self):
        return _two_way(self, "VAE1", "VAE2"), _help("Logic-Nodes", "cr-vae-input-switch")


class CRControlNetInputSwitch(Node):
    """control_net1 when Input is 1, else control_net2, as Comfyroll's CR ControlNet Input Switch
    picks (the pack lists both as required and as optional; either reads here)."""
    category = SWITCH
    Input: int = Int(1, min=1, max=2)
    control_net1: CONTROL_NET = None
    control_net2: CONTROL_NET = None
    outputs = {"CONTROL_NET": CONTROL_NET, "show_help": STRING}
    comfy = ComfyAlias(("CR ControlNet Input Switch",), optional=("control_net1", "control_net2"))

    def run(self):
        return _two_way(self, "control_net1", "control_net2"), _help("Logic-Nodes", "cr-controlnet-input-switch")


class CRSwitchModelAndCLIP(Node):
    """model1 and clip1 when Input is 1, else model2 and clip2, as Comfyroll's CR Switch Model and
    CLIP picks them."""
    category = SWITCH
    Input: int = Int(1, min=1, max=2)
    model1: MODEL
    clip1: CLIP
    model2: MODEL
    clip2: CLIP
    outputs = {"MODEL": MODEL, "CLIP": CLIP, "show_help": STRING}
    comfy = ComfyAlias(("CR Switch Model and CLIP",))

    def run(self):
        if self.Input == 1:
            return self.model1, self.clip1, _help("Logic-Nodes", "cr-switch-model-and-clip")
        return self.model2, self.clip2, _help("Logic-Nodes", "cr-switch-model-and-clip")


class CRPipeSwitch(Node):
    """pipe1 when Input is 1, else pipe2, as Comfyroll's CR Pipe Switch picks. An output node, as
    in the pack: it runs even when nothing reads its pipe."""
    category = "Comfyroll Studio/Essential/Pipe"
    output_node = True
    Input: int = Int(1, min=1, max=2)
    pipe1: PIPE_LINE
    pipe2: PIPE_LINE
    outputs = {"PIPE_LINE": PIPE_LINE, "show_help": STRING}
    comfy = ComfyAlias(("CR Pipe Switch",))

    def run(self):
        return _two_way(self, "pipe1", "pipe2"), _help("Pipe-Nodes", "cr-pipe-switch")


class CRImg2ImgProcessSwitch(Node):
    """The txt2img or the img2img latent, by Input, as Comfyroll's CR Img2Img Process Switch."""
    category = PROCESS
    Input: str = Choice(("txt2img", "img2img"), "txt2img")
    txt2img: LATENT = None
    img2img: LATENT = None
    outputs = {"LATENT": LATENT, "show_help": STRING}
    comfy = ComfyAlias(("CR Img2Img Process Switch",), optional=("txt2img", "img2img"))

    def run(self):
        return _picked(self, "txt2img" if self.Input == "txt2img" else "img2img"), \
            _help("Process-Nodes", "cr-img2img-process-switch")


class CRHiresFixProcessSwitch(Node):
    """The latent_upscale or the image_upscale latent, by Input, as Comfyroll's CR Hires Fix
    Process Switch (its second output is named STRING there: the help link)."""
    category = PROCESS
    Input: str = Choice(("latent_upscale", "image_upscale"), "latent_upscale")
    latent_upscale: LATENT = None
    image_upscale: LATENT = None
    outputs = {"LATENT": LATENT, "STRING": STRING}
    comfy = ComfyAlias(("CR Hires Fix Process Switch",), optional=("latent_upscale", "image_upscale"))

    def run(self):
        return _picked(self, "latent_upscale" if self.Input == "latent_upscale" else "image_upscale"), \
            _help("Process-Nodes", "cr-hires-fix-process-switch")


class CRBatchProcessSwitch(Node):
    """The image or the image_batch, by Input, as Comfyroll's CR Batch Process Switch."""
    category = PROCESS
    Input: str = Choice(("image", "image batch"), "image")
    image: IMAGE = None
    image_batch: IMAGE = None
    outputs = {"IMAGE": IMAGE, "show_help": STRING}
    comfy = ComfyAlias(("CR Batch Process Switch",), optional=("image", "image_batch"))

    def run(self):
        return _picked(self, "image" if self.Input == "image" else "image_batch"), \
            _help("Process-Nodes", "cr-batch-process-switch")


# -- LoRA and ControlNet ----------------------------------------------------------------------


class CRLoadLoRA(Node):
    """Apply a LoRA to the model and text encoder as LoraLoader does, as Comfyroll's CR Load LoRA:
    nothing is loaded when the switch is "Off", the LoRA is "None" or both strengths are 0."""
    category = "Comfyroll Studio/Essential/LoRA"
    model: MODEL
    clip: CLIP
    switch: str = Choice(ON_OFF, "On")
    lora_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    strength_model: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    strength_clip: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    outputs = {"MODEL": MODEL, "CLIP": CLIP, "show_help": STRING}
    comfy = ComfyAlias(("CR Load LoRA",))

    @classmethod
    def fingerprint(cls, switch="On", lora_name="None", **widgets):
        return folders.model_state("loras", lora_name) if switch == "On" and lora_name != "None" else None

    def run(self):
        model, clip = self.model, self.clip
        if self.switch == "On" and self.lora_name != "None" and (self.strength_model != 0 or self.strength_clip != 0):
            model, clip = _apply_lora(model, clip, self.lora_name, self.strength_model, self.strength_clip, "lora_name")
        return model, clip, _help("LoRA-Nodes", "cr-load-lora")


class CRLoRAStack(Node):
    """List up to three LoRAs for an apply-stack node, as Comfyroll's CR LoRA Stack: an incoming
    lora_stack's rows first (those not "None"), then each row switched "On" and not "None", as
    (lora_name, model_weight, clip_weight). Links into Efficiency Nodes' loaders too."""
    category = "Comfyroll Studio/Essential/LoRA"
    for _i in (1, 2, 3):
        __annotations__[f"switch_{_i}"] = str
        locals()[f"switch_{_i}"] = Choice(OFF_ON, "Off")
        __annotations__[f"lora_name_{_i}"] = str
        locals()[f"lora_name_{_i}"] = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
        __annotations__[f"model_weight_{_i}"] = float
        locals()[f"model_weight_{_i}"] = Float(1.0, min=-10.0, max=10.0, step=0.01)
        __annotations__[f"clip_weight_{_i}"] = float
        locals()[f"clip_weight_{_i}"] = Float(1.0, min=-10.0, max=10.0, step=0.01)
    del _i
    lora_stack: LORA_STACK = None
    outputs = {"LORA_STACK": LORA_STACK, "show_help": STRING}
    comfy = ComfyAlias(("CR LoRA Stack",), optional=("lora_stack",))

    def run(self):
        rows = [row for row in _lora_rows(self.lora_stack) if row[0] != "None"]
        for i in (1, 2, 3):
            name = getattr(self, f"lora_name_{i}")
            if name != "None" and getattr(self, f"switch_{i}") == "On":
                rows.append((name, getattr(self, f"model_weight_{i}"), getattr(self, f"clip_weight_{i}")))
        return rows, _help("LoRA-Nodes", "cr-lora-stack")


class CRApplyLoRAStack(Node):
    """Apply each LoRA of a LORA_STACK in turn as LoraLoader does (strength 0 included), as
    Comfyroll's CR Apply LoRA Stack; an empty stack passes the model and text encoder through."""
    category = "Comfyroll Studio/Essential/LoRA"
    model: MODEL
    clip: CLIP
    lora_stack: LORA_STACK
    outputs = {"MODEL": MODEL, "CLIP": CLIP, "show_help": STRING}
    comfy = ComfyAlias(("CR Apply LoRA Stack",))

    def run(self):
        model, clip = self.model, self.clip
        for name, strength_model, strength_clip in _lora_rows(self.lora_stack):
            model, clip = _apply_lora(model, clip, name, strength_model, strength_clip, "lora_stack")
        return model, clip, _help("LoRA-Nodes", "cr-apply-lora-stack")


class CRApplyControlNet(Node):
    """Guide the image with a ControlNet and a hint image over the whole sampling, on the
    conditioning given only, as Comfyroll's CR Apply ControlNet does (unlike ControlNetApply it
    leaves the negative prompt without control). Passes through when "Off" or at strength 0."""
    category = "Comfyroll Studio/Essential/ControlNet"
    conditioning: CONDITIONING
    control_net: CONTROL_NET
    image: IMAGE
    switch: str = Choice(ON_OFF, "On")
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    outputs = {"CONDITIONING": CONDITIONING, "show_help": STRING}
    comfy = ComfyAlias(("CR Apply ControlNet",))

    def run(self):
        url = _help("ControlNet-Nodes", "cr-apply-controlnet")
        if self.switch == "Off" or self.strength == 0:
            return self.conditioning, url
        from nodes.controlnet import _hint_image
        if getattr(self.control_net, "needs_vae", False):
            raise NodeInputError("control_net", "this ControlNet (SD3 / FLUX) reads the hint through a VAE: use "
                                                "Apply ControlNet (ControlNetApplyAdvanced) with the vae connected")
        return _apply(self.conditioning, self.control_net, _hint_image(self.image), self.strength, 0.0, 1.0, {}), url


class CRMultiControlNetStack(Node):
    """List up to three ControlNets (from models/controlnet) with their hint images, strengths and
    start / end percents, as Comfyroll's CR Multi-ControlNet Stack: an incoming stack's entries
    first, then each row switched "On", not "None" and with its image connected, its file loaded
    here. Links into Efficiency Nodes' Apply ControlNet Stack too."""
    category = "Comfyroll Studio/Essential/ControlNet"
    for _i in (1, 2, 3):
        __annotations__[f"switch_{_i}"] = str
        locals()[f"switch_{_i}"] = Choice(OFF_ON, "Off")
        __annotations__[f"controlnet_{_i}"] = str
        locals()[f"controlnet_{_i}"] = Choice(_controlnet_choices, "None", model_folder="controlnet",
                                              not_files=("None",))
        __annotations__[f"controlnet_strength_{_i}"] = float
        locals()[f"controlnet_strength_{_i}"] = Float(1.0, min=-10.0, max=10.0, step=0.01)
        __annotations__[f"start_percent_{_i}"] = float
        locals()[f"start_percent_{_i}"] = Float(0.0, min=0.0, max=1.0, step=0.001)
        __annotations__[f"end_percent_{_i}"] = float
        locals()[f"end_percent_{_i}"] = Float(1.0, min=0.0, max=1.0, step=0.001)
    del _i
    image_1: IMAGE = None
    image_2: IMAGE = None
    image_3: IMAGE = None
    controlnet_stack: CONTROL_NET_STACK = None
    outputs = {"CONTROLNET_STACK": CONTROL_NET_STACK, "show_help": STRING}
    comfy = ComfyAlias(("CR Multi-ControlNet Stack",),
                       optional=(*(f"{name}_{i}" for i in (1, 2, 3) for name in
                                   ("switch", "controlnet", "controlnet_strength", "start_percent", "end_percent")),
                                 "image_1", "image_2", "image_3", "controlnet_stack"))

    @classmethod
    def fingerprint(cls, **widgets):
        return tuple(folders.model_state("controlnet", widgets[f"controlnet_{i}"]) for i in (1, 2, 3)
                     if widgets.get(f"switch_{i}") == "On" and widgets.get(f"controlnet_{i}", "None") != "None")

    def run(self):
        entries = [entry for entry in self.controlnet_stack or [] if not (isinstance(entry, (tuple, list))
                                                                          and entry and entry[0] == "None")]
        for i in (1, 2, 3):
            name, image = getattr(self, f"controlnet_{i}"), getattr(self, f"image_{i}")
            if name == "None" or getattr(self, f"switch_{i}") != "On" or image is None:
                continue
            try:
                net = load_controlnet(name)
            except NodeInputError as e:
                raise NodeInputError(f"controlnet_{i}", str(e)) from None
            entries.append((net, image, getattr(self, f"controlnet_strength_{i}"), getattr(self, f"start_percent_{i}"),
                            getattr(self, f"end_percent_{i}")))
        return entries, _help("ControlNet-Nodes", "cr-multi-controlnet-stack")


class CRApplyMultiControlNet(Node):
    """Apply each ControlNet of a stack in turn to the positive and negative prompts, as Apply
    ControlNet (advanced) does, as Comfyroll's CR Apply Multi-ControlNet; "Off" (its default)
    passes both through. A stack entry naming a file instead of a loaded ControlNet (the pack's
    older stacks) is loaded from models/controlnet."""
    category = "Comfyroll Studio/Essential/ControlNet"
    base_positive: CONDITIONING
    base_negative: CONDITIONING
    switch: str = Choice(OFF_ON, "Off")
    controlnet_stack: CONTROL_NET_STACK
    outputs = {"base_pos": CONDITIONING, "base_neg": CONDITIONING, "show_help": STRING}
    comfy = ComfyAlias(("CR Apply Multi-ControlNet",))

    def run(self):
        url = _help("ControlNet-Nodes", "cr-apply-multi-controlnet-stack")
        if self.switch == "Off":
            return self.base_positive, self.base_negative, url
        try:  # loading a named file too: its errors are about this node's stack, not a widget of its own
            stack = [(load_controlnet(entry[0]), *entry[1:]) if isinstance(entry, (tuple, list)) and entry
                     and isinstance(entry[0], str) else entry for entry in self.controlnet_stack or []]
            positive, negative = _apply_cnet_stack(self.base_positive, self.base_negative, stack)
        except NodeInputError as e:
            raise NodeInputError("controlnet_stack", str(e)) from None
        return positive, negative, url


# -- pipes ------------------------------------------------------------------------------------

MODULE_PIECES = ("model", "pos", "neg", "latent", "vae", "clip", "controlnet", "image", "seed")
IMAGE_PIECES = ("image", "width", "height", "upscale_factor")


def _pipe(value, pieces: tuple, node_name: str) -> tuple:
    if not isinstance(value, (tuple, list)) or len(value) != len(pieces):
        raise NodeInputError("pipe", f"expected {node_name}'s pipe of {len(pieces)} ({', '.join(pieces)}), "
                                     f"got {type(value).__name__}")
    return tuple(value)


class CRModulePipeLoader(Node):
    """Gather a model, prompts, latent, VAE, text encoder, ControlNet, image and seed into one
    PIPE_LINE, as Comfyroll's CR Module Pipe Loader does (an unconnected piece is carried as
    nothing: the pack carries a 0 there)."""
    category = "Comfyroll Studio/Essential/Pipe/Module"
    model: MODEL = None
    pos: CONDITIONING = None
    neg: CONDITIONING = None
    latent: LATENT = None
    vae: VAE = None
    clip: CLIP = None
    controlnet: CONTROL_NET = None
    image: IMAGE = None
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"pipe": PIPE_LINE, "show_help": STRING}
    comfy = ComfyAlias(("CR Module Pipe Loader",), optional=MODULE_PIECES)

    def run(self):
        return tuple(getattr(self, name) for name in MODULE_PIECES), _help("Pipe-Nodes", "cr-module-pipe-loader")


class CRModuleInput(Node):
    """A module PIPE_LINE opened: the pipe itself and each piece, as Comfyroll's CR Module Input."""
    category = "Comfyroll Studio/Essential/Pipe/Module"
    pipe: PIPE_LINE
    outputs = {"pipe": PIPE_LINE, "model": MODEL, "pos": CONDITIONING, "neg": CONDITIONING, "latent": LATENT,
               "vae": VAE, "clip": CLIP, "controlnet": CONTROL_NET, "image": IMAGE, "seed": INT, "show_help": STRING}
    comfy = ComfyAlias(("CR Module Input",))

    def run(self):
        pieces = _pipe(self.pipe, MODULE_PIECES, "CR Module Pipe Loader")
        return (pieces, *pieces, _help("Pipe-Nodes", "cr-module-input"))


class CRModuleOutput(Node):
    """A module PIPE_LINE with the connected pieces replaced, as Comfyroll's CR Module Output: the
    seed widget always replaces the pipe's seed (ComfyUI always sends a widget's value)."""
    category = "Comfyroll Studio/Essential/Pipe/Module"
    pipe: PIPE_LINE
    model: MODEL = None
    pos: CONDITIONING = None
    neg: CONDITIONING = None
    latent: LATENT = None
    vae: VAE = None
    clip: CLIP = None
    controlnet: CONTROL_NET = None
    image: IMAGE = None
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"pipe": PIPE_LINE, "show_help": STRING}
    comfy = ComfyAlias(("CR Module Output",), optional=MODULE_PIECES)

    def run(self):
        old = _pipe(self.pipe, MODULE_PIECES, "CR Module Pipe Loader")
        new = tuple(old[i] if getattr(self, name) is None else getattr(self, name)
                    for i, name in enumerate(MODULE_PIECES))
        return new, _help("Pipe-Nodes", "cr-module-output")


class CRImagePipeIn(Node):
    """Gather an image, width, height and upscale factor into one PIPE_LINE, as Comfyroll's CR
    Image Pipe In does (an unconnected image is carried as nothing)."""
    category = "Comfyroll Studio/Essential/Pipe/Image"
    image: IMAGE = None
    width: int = Int(512, min=64, max=2048)
    height: int = Int(512, min=64, max=2048)
    upscale_factor: float = Float(1.0, min=1.0, max=2000.0, step=0.1)
    outputs = {"pipe": PIPE_LINE, "show_help": STRING}
    comfy = ComfyAlias(("CR Image Pipe In",), optional=("image", "width", "height", "upscale_factor"))

    def run(self):
        return tuple(getattr(self, name) for name in IMAGE_PIECES), _help("Pipe-Nodes", "cr-image-pipe-in")


class CRImagePipeEdit(Node):
    """An image PIPE_LINE with a connected image replaced, and width, height and upscale factor
    set from the widgets (ComfyUI always sends them, so they always replace), as Comfyroll's CR
    Image Pipe Edit does."""
    category = "Comfyroll Studio/Essential/Pipe/Image"
    pipe: PIPE_LINE
    image: IMAGE = None
    width: int = Int(512, min=64, max=2048)
    height: int = Int(512, min=64, max=2048)
    upscale_factor: float = Float(1.0, min=1.0, max=2000.0, step=0.1)
    outputs = {"pipe": PIPE_LINE, "show_help": STRING}
    comfy = ComfyAlias(("CR Image Pipe Edit",), optional=("image", "width", "height", "upscale_factor"))

    def run(self):
        image, *_ = _pipe(self.pipe, IMAGE_PIECES, "CR Image Pipe In")
        return ((image if self.image is None else self.image, self.width, self.height, self.upscale_factor),
                _help("Pipe-Nodes", "cr-image-pipe-edit"))


class CRImagePipeOut(Node):
    """An image PIPE_LINE opened: the pipe, image, width, height and upscale factor, as Comfyroll's
    CR Image Pipe Out."""
    category = "Comfyroll Studio/Essential/Pipe/Image"
    pipe: PIPE_LINE
    outputs = {"pipe": PIPE_LINE, "image": IMAGE, "width": INT, "height": INT, "upscale_factor": FLOAT,
               "show_help": STRING}
    comfy = ComfyAlias(("CR Image Pipe Out",))

    def run(self):
        pieces = _pipe(self.pipe, IMAGE_PIECES, "CR Image Pipe In")
        return (pieces, *pieces, _help("Pipe-Nodes", "cr-image-pipe-out"))

