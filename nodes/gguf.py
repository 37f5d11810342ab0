"""city96's ComfyUI-GGUF loaders, under the pack's class names, inputs and outputs: GGUF (llama.cpp's
quantized container) diffusion models and text encoders. Read from the pack's nodes.py / loader.py /
ops.py / dequant.py at commit 8e0d9cad03675aa6358bafb670a1d78def8746a4 (its legacy and Dynamic VRAM
loaders take the same inputs; both are mapped here).

Held: UnetLoaderGGUF (and UnetLoaderGGUFDynamicVRAM), UnetLoaderGGUFAdvanced, CLIPLoaderGGUF,
DualCLIPLoaderGGUF, TripleCLIPLoaderGGUF, QuadrupleCLIPLoaderGGUF (and their DynamicVRAM versions).
The files are read by graphflow.models.gguf; a diffusion model is detected from its tensor names
exactly as a .safetensors one.

Left out: the pack's conversion nodes and tools (TargetedQuantizationGGUF, tools/convert.py), GGUF
LoRAs (GGUFLoraImport), VAELoaderGGUF and LTXVLatentUpscaleModelLoaderGGUF (MiniMax H3 / LTX 2.5
files graphflow has no model for), the pack's own Q8_CR / Q4_CR int8 / int4 formats, its IQ4_NL / IQ4_XS
kernels (those and the other IQ quants are dequantized when loaded, through gguf-py, as the pack
does for the IQ types it has no kernel for: they take their full size in memory), and a Qwen2-VL
text encoder's vision tower: the pack loads it from the matching mmproj .gguf beside the file
(for Qwen-Image-Edit's image inputs); graphflow loads the language model only (and an mmproj
file, general.type clip-vision, given to a CLIP loader is refused by its architecture).
"""

from graphflow.api import CLIP, MODEL, Bool, Choice, ComfyAlias, Node, NodeInputError, folders
from graphflow.folders import GGUF_EXTENSIONS, MODEL_EXTENSIONS
from nodes.loaders import _find
from nodes.text_encoder_loaders import KIND, LoadDualTextEncoders, LoadTextEncoder
from nodes.text_encoder_loaders import _find as _find_text_encoder
from nodes.text_encoder_loaders import _load as _load_text_encoders
from nodes.text_encoder_loaders import _state

COMFY_PACK = "ComfyUI-GGUF"  # the custom node pack this module's ComfyUI classes come from

DIFFUSION_MODELS = "diffusion_models"  # models/diffusion_models/, then ComfyUI's older models/unet/
DTYPES = ["default", "target", "float32", "float16", "bfloat16"]  # the advanced loader's dequant/patch dtypes
# the pack's CLIP loaders take CLIPLoader's and DualCLIPLoader's `type` lists: graphflow's
SINGLE_TYPES = LoadTextEncoder.input_specs["type"].widget.options
DUAL_TYPES = LoadDualTextEncoders.input_specs["type"].widget.options


def _unet_names() -> list[str]:
    return folders.list_models(DIFFUSION_MODELS, GGUF_EXTENSIONS)


def _clip_names() -> list[str]:
    """The text encoders the pack's CLIP loaders offer: .safetensors (and other model files) and .gguf."""
    return sorted({*folders.list_models(KIND), *folders.list_models(KIND, GGUF_EXTENSIONS)})


def load_gguf_unet(name: str, input_name: str = "unet_name", dequant_dtype: str = "default"):
    """The GGUF diffusion model `name` from diffusion_models/ (its Linear weights kept quantized:
    graphflow.models.gguf), errors reported on `input_name`."""
    import torch

    from graphflow.models.checkpoint import CheckpointError, load_diffusion_model
    from graphflow.models.gguf import GGUFError, check_gguf_file
    from graphflow.models.gguf_layers import QuantizedLinear

    path = _find(DIFFUSION_MODELS, name, input_name)
    try:
        check_gguf_file(path, text_encoder=False)
        model = load_diffusion_model(path)
    except (GGUFError, CheckpointError) as e:
        raise NodeInputError(input_name, str(e)) from None
    if dequant_dtype not in ("default", "target"):
        for layer in model.unet.modules():
            if isinstance(layer, QuantizedLinear):
                layer.dequant_dtype = getattr(torch, dequant_dtype)
    return model


def _load_clip(inputs: list[tuple[str, str]], clip_type: str):
    """CLIP from the named files (GGUF or not) as graphflow's CLIP loaders load them."""
    from graphflow.models.gguf import GGUFError, check_gguf_file

    for input_name, name in inputs:
        if name.lower().endswith(GGUF_EXTENSIONS):
            try:
                check_gguf_file(_find_text_encoder(name, input_name), text_encoder=True)
            except GGUFError as e:
                raise NodeInputError(input_name, str(e)) from None
        elif not name.lower().endswith(MODEL_EXTENSIONS):
            raise NodeInputError(input_name, f"{name!r} is neither a .gguf nor a model file")
    return _load_text_encoders(inputs, clip_type)


class UnetLoaderGGUF(Node):
    """Load a GGUF diffusion model (FLUX, SD3.5, Wan, HiDream, Qwen-Image, LTX-Video, HunyuanVideo,
    Lumina 2, AuraFlow, Cosmos, SD1/SDXL UNets as city96 and others publish them: Q8_0, Q5_K_M,
    Q4_K_S, Q4_0 ...) from models/diffusion_models/ or models/unet/. The architecture is detected
    from the tensor names as for a .safetensors file. The flow transformers' Linear weights (FLUX,
    Chroma, SD3 / SD3.5, Wan, HiDream, Qwen-Image, LTX-Video, Lumina 2, ...) stay quantized in
    memory (and on the GPU) and are dequantized layer by layer as the model runs, as ComfyUI-GGUF
    does: a Q4 FLUX takes about a quarter of its bf16 size. Reads F32, F16, BF16, Q8_0, Q4_0, Q4_1,
    Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K tensors; the IQ quants (IQ4_NL, IQ4_XS, IQ2_XXS, ...)
    and the other types gguf-py dequantizes are read through it; other ggml types (the pack's
    Q8_CR / Q4_CR) are refused naming them. Dequantized when loaded, so taking their full size:
    the IQ-quantized tensors, the quantized tensors of other layers (convolutions, embeddings),
    SD1 / SDXL UNets (the pack's
    bare input_blocks.* files), and the models graphflow reads under other names or through their
    own readers (HunyuanVideo, AuraFlow's diffusers layout, Cosmos, PixArt, Stable Cascade).
    A LoRA on the model is applied to the dequantized weight for each forward (ComfyUI-GGUF's
    way): the layers keep their quantized blocks; stacked LoRAs are summed in float32."""
    category = "bootleg"
    unet_name: str = Choice(_unet_names, model_folder=DIFFUSION_MODELS)
    outputs = {"MODEL": MODEL}
    comfy = (ComfyAlias(("UnetLoaderGGUF",)), ComfyAlias(("UnetLoaderGGUFDynamicVRAM",)))

    @classmethod
    def fingerprint(cls, unet_name, **widgets):
        return folders.model_state(DIFFUSION_MODELS, unet_name)

    def run(self):
        return load_gguf_unet(self.unet_name)


class UnetLoaderGGUFAdvanced(Node):
    """UnetLoaderGGUF with the pack's dtype settings. dequant_dtype: the dtype the weights are
    dequantized in before the layer computes (float32 / float16 / bfloat16: the values rounded
    through it); "default" and "target" dequantize straight into the compute dtype (the pack's
    "default" computes most types' values in fp16 first: the results may differ in the last bit).
    patch_dtype and patch_on_device are accepted and do nothing: LoRA patches are computed in
    float32 wherever graphflow's memory manager holds the weight."""
    category = "bootleg"
    unet_name: str = Choice(_unet_names, model_folder=DIFFUSION_MODELS)
    dequant_dtype: str = Choice(DTYPES, "default")
    patch_dtype: str = Choice(DTYPES, "default")
    patch_on_device: bool = Bool(False)
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("UnetLoaderGGUFAdvanced",))

    @classmethod
    def fingerprint(cls, unet_name, **widgets):
        return folders.model_state(DIFFUSION_MODELS, unet_name)

    def run(self):
        return load_gguf_unet(self.unet_name, "unet_name", self.dequant_dtype)


_TEXT_ENCODER_HELP = """ GGUF text encoders: T5-XXL (t5 / t5encoder, as city96's t5-v1_1-xxl-encoder-gguf)
    and Llama / Qwen2-VL language models, in llama.cpp's tensor names (`enc.blk.0.attn_q.weight`,
    `blk.0.attn_q.weight`), mapped back to Hugging Face's as the pack maps them (a UMT5 GGUF's
    SentencePiece tokenizer rebuilt from its metadata, for type wan); .safetensors files
    (CLIP-L, CLIP-G, ...) are offered and read too. The Linear weights of a GGUF T5, Llama or
    Qwen2-VL stay quantized as it runs (as the pack's), but for T5's FFN output (`wo`, whose dtype
    transformers' T5 casts its activations to); those, the embeddings and the norms are dequantized
    into the compute dtype when loaded."""


class CLIPLoaderGGUF(Node):
    __doc__ = """Load one text encoder, as CLIPLoader with `type` (graphflow's CLIPLoader types), from
    models/text_encoders/ or models/clip/.""" + _TEXT_ENCODER_HELP
    category = "bootleg"
    clip_name: str = Choice(_clip_names, model_folder=KIND)
    type: str = Choice(SINGLE_TYPES, "stable_diffusion")
    outputs = {"CLIP": CLIP}
    comfy = (ComfyAlias(("CLIPLoaderGGUF",)), ComfyAlias(("CLIPLoaderGGUFDynamicVRAM",)))

    @classmethod
    def fingerprint(cls, clip_name, **widgets):
        return _state(clip_name)

    def run(self):
        return _load_clip([("clip_name", self.clip_name)], self.type)


class DualCLIPLoaderGGUF(Node):
    __doc__ = """Load two text encoders, as DualCLIPLoader with `type` (flux: CLIP-L + T5-XXL, the
    usual GGUF FLUX pairing; sdxl, sd3, hunyuan_video, hidream, hunyuan_image), in any order.""" + _TEXT_ENCODER_HELP
    category = "bootleg"
    clip_name1: str = Choice(_clip_names, model_folder=KIND)
    clip_name2: str = Choice(_clip_names, model_folder=KIND)
    type: str = Choice(DUAL_TYPES, "sdxl")
    outputs = {"CLIP": CLIP}
    comfy = (ComfyAlias(("DualCLIPLoaderGGUF",)), ComfyAlias(("DualCLIPLoaderGGUFDynamicVRAM",)))

    @classmethod
    def fingerprint(cls, clip_name1, clip_name2, **widgets):
        return _state(clip_name1, clip_name2)

    def run(self):
        return _load_clip([("clip_name1", self.clip_name1), ("clip_name2", self.clip_name2)], self.type)


class TripleCLIPLoaderGGUF(Node):
    __doc__ = """Load SD3 / SD3.5's three text encoders (CLIP-L, CLIP-G, T5-XXL; any order), as
    TripleCLIPLoader.""" + _TEXT_ENCODER_HELP
    category = "bootleg"
    clip_name1: str = Choice(_clip_names, model_folder=KIND)
    clip_name2: str = Choice(_clip_names, model_folder=KIND)
    clip_name3: str = Choice(_clip_names, model_folder=KIND)
    outputs = {"CLIP": CLIP}
    comfy = (ComfyAlias(("TripleCLIPLoaderGGUF",)), ComfyAlias(("TripleCLIPLoaderGGUFDynamicVRAM",)))

    @classmethod
    def fingerprint(cls, clip_name1, clip_name2, clip_name3):
        return _state(clip_name1, clip_name2, clip_name3)

    def run(self):
        return _load_clip([("clip_name1", self.clip_name1), ("clip_name2", self.clip_name2),
                            ("clip_name3", self.clip_name3)], "sd3")


class QuadrupleCLIPLoaderGGUF(Node):
    __doc__ = """Load HiDream-I1's four text encoders (CLIP-L, CLIP-G, T5-XXL, Llama 3.1 8B; any
    order), as QuadrupleCLIPLoader.""" + _TEXT_ENCODER_HELP
    category = "bootleg"
    clip_name1: str = Choice(_clip_names, model_folder=KIND)
    clip_name2: str = Choice(_clip_names, model_folder=KIND)
    clip_name3: str = Choice(_clip_names, model_folder=KIND)
    clip_name4: str = Choice(_clip_names, model_folder=KIND)
    outputs = {"CLIP": CLIP}
    comfy = (ComfyAlias(("QuadrupleCLIPLoaderGGUF",)), ComfyAlias(("QuadrupleCLIPLoaderGGUFDynamicVRAM",)))

    @classmethod
    def fingerprint(cls, clip_name1, clip_name2, clip_name3, clip_name4):
        return _state(clip_name1, clip_name2, clip_name3, clip_name4)

    def run(self):
        return _load_clip([("clip_name1", self.clip_name1), ("clip_name2", self.clip_name2),
                            ("clip_name3", self.clip_name3), ("clip_name4", self.clip_name4)], "hidream")
