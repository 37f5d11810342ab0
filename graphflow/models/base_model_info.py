"""A model file's base model as Acly's comfyui-tooling-nodes names it in GET /api/etn/model_info
(its api.py at 09759222: inspect_safetensors, inspect_gguf, model_names), from the file's header
alone: {"base_model", "is_inpaint", "type"?, "quant"?}. The Krita AI Diffusion plugin picks its
checkpoints by it (resources.py's Arch.from_string reads base_model and type).

Safetensors files (and sharded sets' indexes) are told by graphflow's own detectors
(detect_architecture, the flow families, Stable Cascade, Cosmos, SVD): FAMILY_NAMES maps
graphflow's family onto the pack's name for the ComfyUI class that file would load as. A
family whose ComfyUI class the pack's table lacks (PixArt, HunyuanImage 2.1, Wan 2.2 TI2V and
Animate, Chroma Radiance, the x4 upscaler, ...) is "unknown" as there, and so is a file with no
diffusion model graphflow knows in it (a LoRA, a VAE, an ESRGAN upscaler, any other tensors: the
pack finds no UNet config in them); a file graphflow takes for a diffusion model but cannot read
as one is "unknown" with an "error" saying why, and so is the Z-Image layout (Lumina 2's, 3840
wide), which graphflow does not run. type: SDXL's ComfyUI ModelType as the pack names it
(sdxl_type: "eps", "v-prediction", "v-prediction-edm" for CosXL, "edm" for Playground v2.5,
which graphflow samples so too), the pack's "t2v" / "i2v" / "t2i" / "control2v" from
the class names of Wan 2.1 and Cosmos. Differences from the pack, on purpose: an SDXL file
without ComfyUI's marker keys whose graphflow.config or modelspec.prediction_type says v is
"v-prediction" (graphflow samples it so; the pack says eps); is_inpaint (SD1.5 / SDXL with more
than 4 UNet input channels, FLUX.1 Fill) is read on a bare UNet (diffusion_models/) too, where the
pack looks under model.diffusion_model. only.

GGUF files (ComfyUI-GGUF's) are named as the pack's inspect_gguf names them, by
general.architecture from their header (graphflow's GGUF reader), even a family graphflow does not
run (z-image, flux2 with its klein type, wan, ...): the plugin takes every GGUF file model_info
leaves out for FLUX (its _refresh_models), so an "unknown" would be offered as FLUX. is_inpaint is
False, as the pack's. See _gguf for where graphflow differs.

Pickled files (.ckpt, .pt, ...) are not read (the pack's header read finds nothing in them
either): unpickling them is no header read. What is read is bounded where it is read: a
safetensors header by WeightFile (SAFETENSORS_MAX_HEADER, the safetensors library's), an index by
read_index (MAX_INDEX_BYTES), a GGUF header's counts by graphflow.models.gguf. Answers are
remembered per path and weight_files.file_state (size, mtime, inode, ctime; an index's shards' too).
"""

import logging
import threading
from collections import OrderedDict
from pathlib import Path

from .architecture import is_video_checkpoint
from .file_kind import cascade_stage, find_cosmos, find_cosmos1, identify
from .gguf import GGUFError, check_gguf_file, read_header
from .weight_files import INDEX_SUFFIX, CheckpointError, WeightFile, file_state, head_kind

log = logging.getLogger(__name__)
CACHE_ENTRIES = 4096

# graphflow's families (ArchInfo.arch, FlowInfo.family) -> the pack's names for the ComfyUI class
FAMILY_NAMES = {
    "sd1": "sd15", "sd2": "sd20", "sdxl": "sdxl", "sdxl_refiner": "sdxl-refiner",
    "sd3_medium": "sd3", "sd35_large": "sd3", "sd35_medium": "sd3",
    "flux_dev": "flux", "flux_control": "flux", "flux_fill": "flux", "flux_schnell": "flux-schnell",
    "chroma": "chroma", "ltxv": "ltxv", "mochi": "mochi", "lumina2": "lumina2", "qwen_image": "qwen-image",
    "hidream": "hi-dream", "hunyuan_video": "hunyuan-video", "aura_flow": "aura-flow",
    # ComfyUI's WAN21_T2V takes any Wan 2.1 layout without img_emb, Wan 2.2's 36-channel I2V expert too
    # (its supported_models_wan at the code index's copy: WAN21_T2V, WAN21_I2V in_dim 36, WAN21_FunControl2V
    # i2v in_dim 48, WAN21_Camera in_dim 32, WAN21_Vace; WAN22_* are not in the pack's table)
    "wan_t2v": "wan21", "wan22_i2v": "wan21", "wan_i2v": "wan21", "wan_fun_control": "wan21-fun",
    "wan_vace": "wan21-vace", "wan_camera": "wan21-camera",
}
# the pack's type from the ComfyUI class's name (WAN21_T2V, WAN21_I2V, WAN21_FunControl2V)
FAMILY_TYPES = {"wan_t2v": "t2v", "wan22_i2v": "t2v", "wan_i2v": "i2v", "wan_fun_control": "control2v"}
SSD1B_DEPTHS = (0, 0, 2, 2, 4, 4)  # ComfyUI's SSD1B unet_config transformer_depth, per input block
WAN21_CAMERA_CHANNELS = 32  # ComfyUI's WAN21_Camera in_dim (WAN22_Camera's: 36)
Z_IMAGE_WIDTH = 3840  # the pack's test (cap_embedder.1.bias): Z-Image's width in Lumina 2's layout
GGUF_NAMES = {"sd1": "sd15", "qwen_image": "qwen-image"}  # the pack's gguf_architectures
FLUX2_KLEIN = {3072: "klein-4b", 4096: "klein-9b"}  # the pack's FLUX.2 type by hidden width


def sdxl_type(shapes, info) -> str:
    """ComfyUI's SDXL.model_type as the pack names it (ModelType's name, lower case, - for _), from the
    file's marker keys in ComfyUI's order; where it has none, beyond the pack, graphflow's prediction
    (graphflow.config, modelspec.prediction_type): a file graphflow samples as v says so (the pack: eps)."""
    if "edm_mean" in shapes and "edm_std" in shapes:  # Playground v2.5
        return "edm"
    if "edm_vpred.sigma_max" in shapes:  # CosXL
        return "v-prediction-edm"
    if "v_pred" in shapes or info.prediction == "v":
        return "v-prediction"
    return "eps"


def base_model(info, shapes=()) -> dict:
    """The pack's answer for graphflow's detection result (an ArchInfo or a FlowInfo) of a file
    with these keys."""
    family = getattr(info, "family", None) or info.arch
    if family == "lumina2" and info.config.dim == Z_IMAGE_WIDTH:
        return {"base_model": "unknown",
                "error": "Failed to detect base model: Z-Image (Lumina 2's layout, 3840 wide), which graphflow "
                         "does not run"}
    if family == "sdxl" and info.unet.transformer_depth_input == SSD1B_DEPTHS:
        family = "ssd1b"
    if family == "wan_fun_control" and not info.config.i2v:  # no img_emb: ComfyUI's WAN21_T2V takes it
        family = "wan_t2v"
    if family == "wan_camera" and info.config.in_channels != WAN21_CAMERA_CHANNELS:  # WAN22_Camera: not in the table
        return {"base_model": "unknown"}
    name = "sd21" if family == "sd2" and info.unclip else "ssd1b" if family == "ssd1b" else FAMILY_NAMES.get(family)
    if name is None or getattr(info, "upscaler", False) or getattr(info, "zero123", False):
        return {"base_model": "unknown"}
    result = {"base_model": name,
              "is_inpaint": (name in ("sd15", "sdxl") and info.unet.in_channels > 4) or family == "flux_fill"}
    if name == "sdxl":
        result["type"] = sdxl_type(shapes, info)
    elif family in FAMILY_TYPES:
        result["type"] = FAMILY_TYPES[family]
    return result


def _other_families(shapes) -> dict | None:
    """The families detect_architecture leaves to other readers: Stable Cascade, Cosmos, SVD."""
    stage = cascade_stage(shapes)
    if stage in ("b", "c"):
        return {"base_model": f"cascade-{stage}", "is_inpaint": False}
    for find, name, kinds in ((find_cosmos, "cosmos-predict2", ("t2i", "i2v")),
                              (find_cosmos1, "cosmos", ("t2v", "i2v"))):
        prefix = find(shapes)
        if prefix is not None:
            # 1x2x2 patches of the latent and the padding mask, as cosmos_config_from_state_dict reads them:
            # 16 channels for text-to-*, 17 with video2world's known-frame mask
            channels = shapes[prefix + "x_embedder.proj.1.weight"][1] // 4 - 1
            return {"base_model": name, "is_inpaint": False, "type": kinds[channels == 17]}
    if is_video_checkpoint(shapes):
        return {"base_model": "svd", "is_inpaint": False}
    return None


def _bare_unet(shapes: dict) -> dict:
    """A diffusion_models/ file's SD UNet keys under the prefix detect_architecture reads them at."""
    from .architecture import UNET_PREFIX

    if "input_blocks.0.0.weight" in shapes and not any(k.startswith(UNET_PREFIX) for k in shapes):
        return {UNET_PREFIX + k: s for k, s in shapes.items()}
    return shapes


def _detected(f: WeightFile) -> dict:
    from .architecture import detect_architecture

    shapes = _bare_unet(f.shapes)
    other = _other_families(shapes)
    if other is not None:
        return other
    try:
        return base_model(detect_architecture(shapes, f.metadata, get_tensor=f.get), shapes)
    except CheckpointError:
        kind = identify(shapes)
        if kind is None or kind.folder not in ("checkpoints", "diffusion_models"):
            return {"base_model": "unknown"}  # no diffusion model in it (an add-on, an upscaler, ...), as the pack
        raise


def _safetensors(path: Path) -> dict:
    with WeightFile(path) as f:  # its header bounded there (SAFETENSORS_MAX_HEADER), an index's size too
        return _detected(f)


def _gguf(path: Path) -> dict:
    """The pack's inspect_gguf: general.architecture under its names (sd1 -> sd15, qwen_image ->
    qwen-image, the rest as they are), told apart by a tensor where it looks (Chroma's
    distilled_guidance_layer, Z-Image's 3840-wide cap_embedder, FLUX.2's double_stream_modulation_img
    with klein's type by width); is_inpaint False; quant general.file_type lower-cased where it is
    text, "gguf" where it is a number. Beyond the pack: a text encoder or an architecture
    ComfyUI-GGUF's loader refuses is unknown with its error, and a file naming no architecture (the
    pack: flux) or the converter's placeholder is told by its tensors, as a safetensors file."""
    try:
        arch = check_gguf_file(path, text_encoder=False)
        header = read_header(path)
    except GGUFError as e:
        raise CheckpointError(str(e)) from None
    if arch is None:
        with WeightFile(path) as f:
            answer = _detected(f)
        if answer["base_model"] == "unknown":
            return answer
        return {**answer, "is_inpaint": False, **_gguf_quant(header)}
    widths = {name: dims[0] for name, dims, *_ in header.tensors if dims}  # ggml's first dim, as gguf-py's shape[0]
    kind = None
    if arch == "flux" and any(name.startswith("distilled_guidance_layer") for name in widths):
        arch = "chroma"
    elif arch == "flux" and "double_stream_modulation_img.lin.weight" in widths:
        arch, kind = "flux2", FLUX2_KLEIN.get(widths["double_stream_modulation_img.lin.weight"])
    elif arch == "lumina2" and widths.get("cap_embedder.1.bias") == Z_IMAGE_WIDTH:
        arch = "z-image"
    result = {"base_model": GGUF_NAMES.get(arch, arch), "is_inpaint": False}
    if kind is not None:
        result["type"] = kind
    return {**result, **_gguf_quant(header)}


def _gguf_quant(header) -> dict:
    file_type = header.fields.get("general.file_type")
    if file_type is None:
        return {}
    return {"quant": file_type.decode("utf-8", "replace").lower() if isinstance(file_type, bytes) else "gguf"}


def inspect_file(path) -> dict:
    """The pack's answer for one model file; never raises for what is in the file."""
    path = Path(path)
    try:
        kind = head_kind(path)
        if kind == "gguf":
            return _gguf(path)
        if kind == "safetensors" or path.name.endswith(INDEX_SUFFIX):
            return _safetensors(path)
        return {"base_model": "unknown", "error": "Failed to detect base model: not a safetensors or GGUF file "
                                                  "(pickled files are not opened to tell)"}
    except Exception as e:  # one odd file is that file's entry, as the pack's, never the page's 500
        if not isinstance(e, (CheckpointError, GGUFError, OSError)):
            log.warning("reading %s for its base model failed", path, exc_info=True)
        return {"base_model": "unknown", "error": f"Failed to detect base model: {e}"}


class InfoCache:
    """inspect_file's answers by path and weight_files.file_state: a connecting plugin asks for every file of
    three folders, each connect."""

    def __init__(self, entries: int = CACHE_ENTRIES):
        self.entries = entries
        self.answers: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, path) -> dict:
        path = Path(path)
        key = (str(path), file_state(path))  # a sharded set's shards' states in it too
        with self.lock:
            if key in self.answers:
                self.answers.move_to_end(key)
                return dict(self.answers[key])
        answer = inspect_file(path)
        with self.lock:
            self.answers[key] = answer
            while len(self.answers) > self.entries:
                self.answers.popitem(last=False)
        return dict(answer)


info_cache = InfoCache()
