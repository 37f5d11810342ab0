"""Single-file SD checkpoints loaded as MODEL / CLIP / VAE, and standalone VAE and text encoder files.

Loading never holds two copies of the weights: modules are built on the meta device (no
memory, no init) and each tensor is assigned into them (`load_state_dict(assign=True)`) as it
comes. A tensor that stays as stored (CPU, same dtype) is a zero-copy view of the memory-mapped
file; one that is cast or moved (fp16 file -> fp32 CPU, anything -> CUDA) is read into a
private buffer, converted, and the buffer dropped. The peak is about the loaded model's size
(tests/test_checkpoint.py measures it); on CUDA the host holds about one tensor at a time.
"""

import importlib
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..device import compute_device, default_dtype, dtype_override, load_device
from .architecture import (EDM_VPRED_MAX, EDM_VPRED_MIN, UNET_PREFIX, VAE_PARTS, VAE_PREFIX, ArchInfo,
                           config_overrides, detect_architecture, format_prefixes, is_video_checkpoint, locate_towers, prefix_summary,
                           vae_config_from_shapes)
from .architectures import ARCHITECTURES
from .cast_layers import FP8_DTYPES, WEIGHT_DTYPES, castable_weights, set_scales
from .chroma import ChromaRadiance
from .configs import AURA_FLOW_DIFFUSERS_MARKER
from .diffusers_names import aura_flow_view, vae_view
from .diffusion_model import PIXART_SCHEDULE, DiffusionModel
from .flow_architecture import FlowInfo, detect_flow_model, vae_in
from .gguf_layers import keep_quantized
from .latent_formats import FLUX, SD1, SD3, SDXL, LatentFormat
from .text_encoders import ARCH_TOWERS, CLIP_L, HF, OPEN_CLIP, TextEncoder, TowerSpec, tower_from_weights
from .unet import UNet, UNetConfig
from .vae import VAE, AutoencoderKL, VAEConfig
from .weight_files import CheckpointError, _torch_dtype, KeyView, RenamedView, WeightFile

# -- building modules --------------------------------------------------------------------------

def _assign(module: nn.Module, source, device, dtype, what: str, keys=None, dtype_of=None,
            rounded_through=None) -> nn.Module:
    """Read `source`'s tensors one at a time onto device/dtype (or `dtype_of(key)`) and assign
    them into the meta-built module. Scaled-fp8 weights kept in fp8 bring their scales to their
    layers (graphflow.models.cast_layers); the others come dequantised. With `rounded_through`
    (an fp8 dtype), floating-point tensors kept in a wider dtype hold values rounded to it."""
    keys = list(source.shapes if keys is None else keys)
    state, scales, input_scales = {}, {}, {}
    for key in keys:
        wanted = dtype if dtype_of is None else dtype_of(key)
        if rounded_through is not None and wanted not in FP8_DTYPES:
            t = source.get(key, device, rounded_through)
            state[key] = t.to(wanted) if t.is_floating_point() else t
        else:
            state[key] = source.get(key, device, wanted)
        if state[key].dtype in FP8_DTYPES and getattr(source, "scale", None) is not None:
            scale = source.scale(key, device)
            if scale is not None:
                scales[key] = scale
                input_scale = source.input_scale(key, device)
                if input_scale is not None:
                    input_scales[key] = input_scale
    expected = set(module.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(f"{what}: weights do not fit the detected configuration; missing {missing[:5]}"
                              f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                              f"{'...' if len(unexpected) > 5 else ''}")
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:  # shape mismatches
        raise CheckpointError(f"{what}: {e}") from None
    set_scales(module, scales, input_scales)
    leftovers = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if leftovers:
        raise CheckpointError(f"{what}: no weights for {leftovers[:5]}")
    return module.requires_grad_(False).eval()


def _resolve(device, dtype, component: str) -> tuple[torch.device, torch.dtype]:
    if device is not None:
        device = torch.device(device)
        return device, dtype or default_dtype(component, device)
    return load_device(), dtype or default_dtype(component, compute_device())  # dtype: where it will run


def build_unet(source, config: UNetConfig, device, dtype, rounded_through=None) -> UNet:
    with torch.device("meta"):
        unet = UNet(config)
    return _assign(unet, source, device, dtype, f"UNet ({UNET_PREFIX})", rounded_through=rounded_through)


def build_vae(source, config: VAEConfig, latent_format: LatentFormat, device, dtype, what=VAE_PREFIX) -> VAE:
    with torch.device("meta"):
        module = AutoencoderKL(config)
    keys = [k for k in source.shapes if k.split(".")[0] in VAE_PARTS]
    module = _assign(module, source, device, dtype, f"VAE ({what})", keys=keys)
    return VAE(module, latent_format)


def build_ltxv_vae(source, config, device, dtype, what: str = "vae."):
    """LTX-Video's video VAE (graphflow.models.ltxv_vae) as a VAE socket; of the file's
    per-channel statistics only the two it uses are read."""
    from .ltxv_vae import LTXVideoVAE, LTXVVAE

    with torch.device("meta"):
        module = LTXVideoVAE(config)
    keys = [k for k in source.shapes if k in module.state_dict()]
    return LTXVVAE(_assign(module, source, device, dtype, f"LTX-Video VAE ({what})", keys=keys))


def build_mochi_vae(f, decoder_prefix: str, device, dtype):
    """Mochi's VAE (graphflow.models.mochi_vae) as a VAE socket: Genmo's decoder under
    `decoder_prefix`, and the encoder beside it when the file has one."""
    from .configs import mochi_vae_config_from_state_dict, mochi_vae_encoder_config_from_state_dict
    from .flow_architecture import mochi_encoder_prefix
    from .mochi_vae import MochiVAE, MochiVideoVAE

    encoder_prefix = mochi_encoder_prefix(f.shapes, decoder_prefix)
    decoder, encoder = KeyView(f, decoder_prefix), None if encoder_prefix is None else KeyView(f, encoder_prefix)
    try:
        config = mochi_vae_config_from_state_dict(decoder.shapes)
        encoder_config = None if encoder is None else mochi_vae_encoder_config_from_state_dict(encoder.shapes)
    except (KeyError, ValueError, IndexError) as e:
        raise CheckpointError(f"{f.path.name}: a Mochi VAE that cannot be read ({type(e).__name__}: {e})") from None
    with torch.device("meta"):
        module = MochiVideoVAE(config, encoder_config)
    _assign(module.decoder, decoder, device, dtype, f"Mochi VAE decoder ({decoder_prefix or 'no prefix'})")
    if encoder is not None:
        _assign(module.encoder, encoder, device, dtype, f"Mochi VAE encoder ({encoder_prefix})")
    return MochiVAE(module.requires_grad_(False).eval())
def build_wan_vae(source, device, dtype):
    """The Wan 2.1 / 2.2 VAE (graphflow.models.wan_vae) of a file in Wan's original layout, as a VAE socket."""
    from .wan_vae import WanVAE, WanVideoVAE, wan_vae_config_from_state_dict

    try:
        config = wan_vae_config_from_state_dict(source.shapes)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"a Wan VAE of an unknown layout ({e})") from None
    with torch.device("meta"):
        module = WanVideoVAE(config)
    return WanVAE(_assign(module, source, device, dtype, "Wan 2.2 VAE" if config.is_residual else "Wan 2.1 VAE"))


def _build_vae(source, device, dtype, read_config, model, socket, label: str):
    """socket(model(read_config(shapes))), built on the meta device and given `source`'s weights; `label`
    names the VAE in errors."""
    try:
        config = read_config(source.shapes)
    except (KeyError, ValueError, IndexError, ZeroDivisionError) as e:
        raise CheckpointError(f"a {label} of an unknown layout ({type(e).__name__}: {e})") from None
    with torch.device("meta"):
        module = model(config)
    return socket(_assign(module, source, device, dtype, label))


def build_hunyuan_video_vae(source, device, dtype):
    """HunyuanVideo's causal 3-D VAE (graphflow.models.hunyuan_video_vae) of a file in ComfyUI's LDM layout,
    as a VAE socket."""
    from .hunyuan_video_vae import HunyuanVideoVAE, HunyuanVideoVAEModel, hunyuan_video_vae_config_from_state_dict

    return _build_vae(source, device, dtype, hunyuan_video_vae_config_from_state_dict, HunyuanVideoVAEModel,
                      HunyuanVideoVAE, "HunyuanVideo VAE")


def build_hunyuan_image_vae(source, device, dtype):
    """HunyuanImage 2.1's 32x VAE (graphflow.models.hunyuan_image_vae) of a file in ComfyUI's layout, as the
    image VAE socket in the HunyuanImage21 latent format."""
    from .hunyuan_image_vae import HunyuanImageVAEModel, hunyuan_image_vae_config_from_state_dict
    from .latent_formats import HUNYUAN_IMAGE21

    return _build_vae(source, device, dtype, hunyuan_image_vae_config_from_state_dict, HunyuanImageVAEModel,
                      lambda module: VAE(module, HUNYUAN_IMAGE21), "HunyuanImage 2.1 VAE")


def build_hunyuan_image_refiner_vae(source, device, dtype):
    """HunyuanImage 2.1's refiner VAE (graphflow.models.hunyuan_image_refiner_vae) of a file in ComfyUI's
    layout, as its VAE socket (one-frame latents in the HunyuanImage21Refiner format)."""
    from .hunyuan_image_refiner_vae import (HunyuanImageRefinerVAE, HunyuanImageRefinerVAEModel,
                                            hunyuan_image_refiner_vae_config_from_state_dict)

    return _build_vae(source, device, dtype, hunyuan_image_refiner_vae_config_from_state_dict,
                      HunyuanImageRefinerVAEModel, HunyuanImageRefinerVAE, "HunyuanImage 2.1 refiner VAE")


def build_cosmos_vae(f, device, dtype):
    """NVIDIA's Cosmos 1.0 CV8x8x8 tokenizer (graphflow.models.cosmos_vae) of a file in NVIDIA's
    layout as a VAE socket; the file's wavelet buffers (constants) are not read."""
    from .cosmos_vae import BUFFERS, CosmosVAE, CosmosVideoVAE, cosmos_vae_config_from_state_dict

    try:
        config = cosmos_vae_config_from_state_dict(f.shapes)
    except (KeyError, ValueError, IndexError) as e:
        raise CheckpointError(f"{f.path.name}: a Cosmos 1.0 VAE that cannot be read ({type(e).__name__}: {e})") \
            from None
    with torch.device("meta"):
        module = CosmosVideoVAE(config)
    keys = [k for k in f.shapes if not k.startswith(BUFFERS)]
    return CosmosVAE(_assign(module, f, device, dtype, "Cosmos 1.0 VAE", keys=keys))


def build_text_encoder(source, arch: str, towers, overrides: dict, device, dtype, clip_skip=None) -> TextEncoder:
    built = []
    for spec in towers:
        view = KeyView(source, spec.prefix)
        try:
            built.append(tower_from_weights(spec, view.shapes, view.get, device, dtype, overrides.get(spec.name)))
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"text encoder {spec.name} ({spec.prefix or 'standalone'}): {e}") from None
    return TextEncoder(arch, built, clip_skip)


def flow_network(arch: str) -> type[nn.Module]:
    """The network class of a flow family (Architecture.network, imported when first built)."""
    module, name = ARCHITECTURES[arch].network.rsplit(".", 1)
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


def build_flow_model(source, info: FlowInfo, device, dtype, weight_dtype: str = "default") -> DiffusionModel:
    """The MM-DiT or FLUX network of `source` (keys without prefix) as a DiffusionModel.
    Linear/Conv weights are stored in `weight_dtype` (fp8_e4m3fn / fp8_e5m2), or kept in fp8 where
    the file holds them so ("default"); everything else, and all computation, is in `dtype` (with
    an fp8 weight_dtype, holding fp8-rounded values, as ComfyUI's: see _weight_storage)."""
    if info.arch in ("hunyuan_video", "hunyuan_image"):  # a ComfyUI-saved file's own module names: read as Tencent's
        from .configs import hunyuan_video_tencent_name

        source = RenamedView(source, {hunyuan_video_tencent_name(k): k for k in source.shapes})
    with torch.device("meta"):
        network = ChromaRadiance if info.family == "chroma_radiance" else flow_network(info.arch)
        net = network(info.config)
    # a GGUF file's quantized Linear weights stay quantized (graphflow.models.gguf.QuantizedLinear)
    quantized = keep_quantized(net, source, dtype)
    if quantized and weight_dtype != "default":
        raise CheckpointError(f"weight_dtype {weight_dtype} does not apply to a GGUF file's quantized weights "
                              "(use weight_dtype default)")
    dtype_of, rounded = _weight_storage(net, source, dtype, weight_dtype)
    if quantized:
        dtype_of = _quantized_as_stored(dtype_of, quantized)
    net = _assign(net, source, device, dtype, f"{info.name} ({info.prefix or 'no prefix'})", dtype_of=dtype_of,
                  rounded_through=rounded)
    return DiffusionModel(net, info.arch, "flow", info.latent_format)


def _quantized_as_stored(dtype_of, quantized: set[str]):
    """dtype_of for _assign with a GGUF file's kept-quantized weights read as their raw blocks (uint8)."""
    return lambda key: torch.uint8 if key in quantized else dtype_of(key)


def _fp8_storage(weight_dtype: str) -> torch.dtype | None:
    """The torch dtype of an fp8 weight_dtype (None for "default")."""
    if weight_dtype not in WEIGHT_DTYPES:
        raise CheckpointError(f"weight_dtype must be one of {list(WEIGHT_DTYPES)}, got {weight_dtype!r}")
    if weight_dtype != "default" and WEIGHT_DTYPES[weight_dtype] is None:
        raise CheckpointError(f"this torch ({torch.__version__}) has no {weight_dtype}")
    return WEIGHT_DTYPES[weight_dtype]


def _weight_storage(net, source, dtype, weight_dtype: str):
    """(dtype_of(key), rounded_through) for _assign: the cast layers' weights in `weight_dtype`
    (fp8), or kept in fp8 where the file holds them so ("default"); everything else in `dtype`.
    ComfyUI builds the whole network in an fp8 weight_dtype (biases, norm scales, embeddings and
    tables too, upcast where used), so with one every other tensor holds its fp8-rounded value
    (rounded_through; not for a ComfyUI scaled-fp8 file, whose other tensors stay as stored)."""
    storage = _fp8_storage(weight_dtype)
    castable = castable_weights(net)

    def dtype_of(key):
        if key in castable:
            if storage is not None:
                return storage
            if _stored_dtype(source, key) in FP8_DTYPES:
                return _stored_dtype(source, key)
        return dtype

    scaled_file = bool(getattr(getattr(source, "source", source), "scales", None))
    return dtype_of, (None if scaled_file else storage)


def _stored_dtype(source, key) -> torch.dtype | None:
    """The dtype a tensor has in the file, from the header (no read)."""
    while isinstance(source, KeyView):
        source, key = source.source, source.prefix + key
    return _torch_dtype(source.dtypes.get(key))


def _flow_default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs that have it (SD3.5 and FLUX activations overflow fp16), else the usual."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported() and dtype_override() is None:
        return torch.bfloat16
    return default_dtype("unet", device)


def flow_placement(device, dtype, arch: str | None = None) -> tuple[torch.device, torch.dtype]:
    """Where a SD3/FLUX transformer is loaded and its compute dtype (`device`/`dtype` as given, else
    the load device and the flow default of the device it will run on; fp32 for the families ComfyUI
    runs in bf16 or fp32 only, its supported_inference_dtypes (Architecture.fp16), where that default is fp16)."""
    place = torch.device(device) if device is not None else load_device()
    if dtype is None:
        dtype = _flow_default_dtype(place if device is not None else compute_device())
        if arch in ARCHITECTURES and not ARCHITECTURES[arch].fp16 and dtype == torch.float16:
            dtype = torch.float32
    return place, dtype


def flow_clip_towers(f, info: FlowInfo, device, dtype) -> dict:
    """The CLIP-L / CLIP-G towers of an all-in-one SD3/FLUX file (transformers' layout under
    text_encoders.clip_*.transformer.), as ClipTowers by name."""
    towers = {}
    for name in ("clip_l", "clip_g"):
        if name not in info.text_encoders:
            continue
        spec = TowerSpec(prefix="text_model.", **CLIP_L) if name == "clip_l" else TowerSpec(
            name="clip_g", prefix="text_model.", layout=HF, pad_token=0, hidden_act="gelu")
        view = _StandaloneView(KeyView(f, info.text_encoders[name]), spec)
        try:
            towers[name] = tower_from_weights(replace(spec, prefix=""), view.shapes, view.get, device, dtype, None)
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"text encoder {name} ({info.text_encoders[name]}): {e}") from None
    return towers


def flow_text_encoder(f, info: FlowInfo, device, dtype, only=None):
    """The CLIP socket of an all-in-one SD3/FLUX file: CLIP-L, CLIP-G and T5-XXL under ComfyUI's
    `text_encoders.<name>.transformer.` prefixes (graphflow.models.text_encoder_files); `only`:
    the names of those to read ("clip_l", "clip_g", "t5xxl"), all when None."""
    from .text_encoder_files import flow_text_encoder_from_file  # it builds on this module

    return flow_text_encoder_from_file(f, info.arch, device, dtype, only)


@dataclass
class Checkpoint:
    model: DiffusionModel
    clip: TextEncoder | None
    vae: VAE | None
    info: ArchInfo | FlowInfo
    clip_vision: object | None = None  # unCLIP checkpoints' image encoder (models.clip_vision.ClipVision)


def load_checkpoint(path, device=None, dtype=None, prediction: str | None = None,
                    weight_dtype: str = "default", text_encoders: bool = True, clip_vision: bool = False) -> Checkpoint:
    """Load a single-file checkpoint: SD1/SD2/SDXL, or SD3/SD3.5/FLUX.1 (all-in-one or diffusion
    model only). `dtype` overrides every component's dtype (defaults, graphflow.device: on CPU bf16
    UNet/CLIP where the processor has native bf16, else fp32, and an fp32 VAE; on CUDA fp16
    UNet/CLIP and bf16 VAE, fp32 VAE without bf16; bf16 for SD3/FLUX). `prediction`
    ("eps"/"v") overrides what the file says. `weight_dtype` (SD3/FLUX): see build_flow_model.
    A file without a VAE or text encoder gives None for that part (info.notes says so);
    text_encoders=False skips them. clip_vision=True also loads an unCLIP or Stable Zero123
    checkpoint's image encoder; a checkpoint without one raises CheckpointError. Each
    component is registered with the memory manager with this file as its source: when RAM runs
    short it may be dropped and read again from here."""
    parts = {"diffusion_model", "vae", "text_encoder"} if text_encoders else {"diffusion_model", "vae"}
    ckpt = _read_checkpoint(path, device, dtype, prediction, weight_dtype, parts, clip_vision)
    _set_sources(ckpt, lambda part: _read_checkpoint(path, device, dtype, prediction, weight_dtype, {part}))
    return ckpt


def load_checkpoint_with_vision(path) -> Checkpoint:
    """load_checkpoint with the image encoder an unCLIP or Stable Zero123 file carries, and
    clip_vision None for any other checkpoint, as ComfyUI's loaders with a CLIP_VISION output
    (unCLIPCheckpointLoader, ImageOnlyCheckpointLoader) give it. The header decides."""
    try:
        with WeightFile(path) as f:
            info = detect_architecture(f.shapes, f.metadata)
    except CheckpointError:
        info = None  # not a SD-family file: load_checkpoint says what it is, or what is wrong
    return load_checkpoint(path, clip_vision=bool(getattr(info, "unclip", False) or getattr(info, "zero123", False)))


def _set_sources(ckpt: Checkpoint, read) -> None:
    """Register the checkpoint's components with the memory manager, each re-read by `read(part)`,
    which reads that component alone from the file (a dropped VAE does not bring the diffusion
    model's gigabytes back through RAM with it, nor a dropped CLIP-L a T5-XXL)."""
    from graphflow.memory import manager

    parts = [(ckpt.model.unet, "diffusion_model", f"diffusion_model:{ckpt.model.arch}", "diffusion_model",
              lambda c: c.model.unet)]
    if ckpt.vae is not None:
        parts.append((ckpt.vae.module, "vae", "vae", "vae", lambda c: c.vae.module))
    if isinstance(ckpt.info, FlowInfo) and ckpt.clip is not None and ckpt.info.arch == "lumina2":  # Gemma-2
        parts.append((ckpt.clip.model, "text_encoder", ckpt.clip.memory_name, "text_encoder:gemma2_2b",
                      lambda c: c.clip.model))
    elif isinstance(ckpt.info, FlowInfo) and ckpt.clip is not None:  # by slot: the file's prefixes name them
        for slot, in_file in (("clip_l", "clip_l"), ("clip_g", "clip_g"), ("t5", ckpt.clip.t5_name)):
            encoder = getattr(ckpt.clip, slot)
            if encoder is not None:
                parts.append((encoder.model, "text_encoder", f"text_encoder:{slot}", f"text_encoder:{in_file}",
                              lambda c, slot=slot: getattr(c.clip, slot).model))
    elif ckpt.clip is not None:  # read back alone, a tower is the only one
        for spec, tower in zip(ckpt.info.towers, ckpt.clip.towers):
            parts.append((tower.model, "text_encoder", f"text_encoder:{tower.name}", f"text_encoder:{spec.name}",
                          lambda c: c.clip.towers[0].model))
    for module, kind, name, part, pick in parts:
        manager().set_source(module, kind, name, lambda part=part, pick=pick: pick(read(part)))


def _read_checkpoint(path, device, dtype, prediction, weight_dtype, parts, clip_vision=False) -> Checkpoint:
    """The checkpoint's components named in `parts` ("diffusion_model", "vae", "text_encoder", or
    one text encoder: "text_encoder:clip_l", ...); the others are None."""
    with WeightFile(path) as f:
        cascade = _read_cascade_checkpoint(f, path, device, dtype, weight_dtype, parts)
        if cascade is not None:
            return cascade
        info = detect_architecture(f.shapes, f.metadata, prediction, get_tensor=f.get)
        if isinstance(info, FlowInfo):
            return _load_flow_checkpoint(f, info, device, dtype, weight_dtype, parts)
        model = vae = clip = None
        if "diffusion_model" in parts:
            unet_device, unet_dtype = _resolve(device, dtype, "unet")
            unet = build_unet(f.view(UNET_PREFIX), info.unet, unet_device, unet_dtype)
            model = DiffusionModel(unet, info.arch, info.prediction, info.latent_format)
            model.zsnr = info.zero_terminal_snr  # ComfyUI's 'ztsnr' marker key
            if info.sigma_range is not None:  # Playground v2.5's markers: continuous EDM sampling
                model = model.with_continuous_sampling(info.prediction, *info.sigma_range)
            if info.arch == "sdxl" and prediction is None and EDM_VPRED_MAX in f.shapes and info.sigma_range is None:
                # ComfyUI's marker of an EDM-style v model (CosXL; its CheckpointSave of one):
                # continuous v sampling, sigma_min 0.002 unless given (ComfyUI's default); Playground's
                # markers win over it, as in ComfyUI's SDXL.model_type (architecture's docstring)
                sigma_min = float(f.get(EDM_VPRED_MIN)) if EDM_VPRED_MIN in f.shapes else 0.002
                model = model.with_continuous_sampling("v", sigma_min, float(f.get(EDM_VPRED_MAX)))
                model.edm_v_file, model.model_type = True, "v_edm"
            if info.unclip:
                from .unclip import noise_augmentor_from

                model.noise_augmentor = noise_augmentor_from(info.adm_channels)
            if info.zero123:
                from .zero123 import cc_projection_from

                model.context_projection = cc_projection_from(f)
        if info.vae is not None and "vae" in parts:
            vae = build_vae(f.view(VAE_PREFIX), info.vae, info.latent_format, *_resolve(device, dtype, "vae"))
        towers = [t for t in info.towers if {"text_encoder", f"text_encoder:{t.name}"} & parts]
        if towers:
            clip = build_text_encoder(f, info.arch, towers, info.tower_overrides,
                                      *_resolve(device, dtype, "text_encoder"))
        vision = _unclip_image_encoder(f, info, device, dtype) if clip_vision else None
    return Checkpoint(model, clip, vae, info, vision)


def _unclip_image_encoder(f, info: ArchInfo, device, dtype):
    """The image encoder an unCLIP (`embedder.model.visual.`) or Stable Zero123
    (`cond_stage_model.model.visual.`) checkpoint carries."""
    from .clip_vision import build_clip_vision, clip_vision_config_from_shapes, clip_vision_source
    from .zero123 import CAMERA_WIDTH, CC_PROJECTION, VISION_PREFIX

    prefix = VISION_PREFIX if info.zero123 else "embedder.model.visual."
    source = clip_vision_source(f, prefix) if info.unclip or info.zero123 else None
    if source is None:
        raise CheckpointError(f"{f.path.name} is not an unCLIP checkpoint (nor Stable Zero123): expected a UNet "
                              f"with image-embedding conditioning and a CLIP vision model under {prefix}; it is "
                              f"{info.name}")
    try:
        config = clip_vision_config_from_shapes(source.shapes, f.config().get("clip_vision"))
    except (KeyError, ValueError, IndexError) as e:
        raise CheckpointError(f"{f.path.name}: the CLIP vision model under {prefix} could not be read ({e})") from None
    width = f.shapes[CC_PROJECTION + "weight"][1] - CAMERA_WIDTH if info.zero123 else info.adm_channels // 2
    if config.projection_dim != width:
        raise CheckpointError(f"{f.path.name}: the model takes {width}-wide image embeddings, the "
                              f"CLIP vision model under {prefix} gives {config.projection_dim}")
    return build_clip_vision(source, config, *_resolve(device, dtype, "clip_vision"), what=prefix)


def _load_flow_checkpoint(f, info: FlowInfo, device, dtype, weight_dtype, parts) -> Checkpoint:
    model = vae = clip = None
    if "diffusion_model" in parts:
        model = build_flow_model(f.view(info.prefix), info, *flow_placement(device, dtype, info.arch), weight_dtype)
    if info.vae is not None and "vae" in parts and info.arch == "ltxv":
        vae = build_ltxv_vae(f.view(info.vae_prefix), info.vae, *_resolve(device, dtype, "vae"), what=info.vae_prefix)
    elif info.vae is not None and "vae" in parts and info.arch == "mochi":
        vae = build_mochi_vae(f, info.vae_prefix, *_resolve(device, dtype, "vae"))
    elif info.vae is not None and "vae" in parts and info.arch == "hunyuan_video":
        vae = build_hunyuan_video_vae(f.view(info.vae_prefix), *_resolve(device, dtype, "vae"))
    elif info.vae is not None and "vae" in parts and info.arch == "hunyuan_image":
        vae = build_hunyuan_image_vae(f.view(info.vae_prefix), *_resolve(device, dtype, "vae"))
    elif info.vae is not None and "vae" in parts:
        vae = build_vae(f.view(info.vae_prefix), info.vae, info.latent_format, *_resolve(device, dtype, "vae"),
                        what=info.vae_prefix)
    only = None if "text_encoder" in parts else {p.split(":")[1] for p in parts if p.startswith("text_encoder:")}
    if info.text_encoders and (only is None or only):
        clip = flow_text_encoder(f, info, *_resolve(device, dtype, "text_encoder"), only)
    return Checkpoint(model, clip, vae, info)


def load_diffusion_model(path, device=None, dtype=None, weight_dtype: str = "default") -> DiffusionModel:
    """A diffusion model alone (ComfyUI's UNETLoader): a SD3/SD3.5/FLUX.1 file with or without
    the `model.diffusion_model.` prefix (other parts of the file are not read), or the UNet of
    a SD1/SD2/SDXL file under `model.diffusion_model.`. Registered with the memory manager with
    this file as its source (dropped from RAM and read again when RAM runs short)."""
    from graphflow.memory import manager

    model = _read_diffusion_model(path, device, dtype, weight_dtype)
    manager().set_source(model.unet, "diffusion_model", f"diffusion_model:{model.arch}",
                         lambda: _read_diffusion_model(path, device, dtype, weight_dtype).unet)
    return model


def _read_diffusion_model(path, device, dtype, weight_dtype) -> DiffusionModel:
    with WeightFile(path) as f:
        cascade = _read_stable_cascade(f, path, device, dtype, weight_dtype)
        if cascade is not None:
            return cascade
        pixart = _read_pixart(f, path, device, dtype, weight_dtype)
        if pixart is not None:
            return pixart
        cosmos = _read_cosmos(f, path, device, dtype, weight_dtype)
        if cosmos is not None:
            return cosmos
        cosmos = _read_cosmos1(f, path, device, dtype, weight_dtype)
        if cosmos is not None:
            return cosmos
        source = aura_flow_view(f) if AURA_FLOW_DIFFUSERS_MARKER in f.shapes else f  # ComfyUI converts these too
        info = detect_flow_model(source.shapes, f.metadata)
        if info is not None:
            return build_flow_model(source if source is not f else f.view(info.prefix), info,
                                    *flow_placement(device, dtype, info.arch), weight_dtype)
        info = detect_architecture(f.shapes, f.metadata, get_tensor=f.get)
        unet_device, unet_dtype = _resolve(device, dtype, "unet")
        # an fp8 weight_dtype: ComfyUI's numbers (every tensor rounded to fp8, upcast where used),
        # kept in the compute dtype (this UNet has no fp8 layers: no memory saved)
        unet = build_unet(f.view(UNET_PREFIX), info.unet, unet_device, unet_dtype,
                          rounded_through=_fp8_storage(weight_dtype))
        model = DiffusionModel(unet, info.arch, info.prediction, info.latent_format)
        if info.sigma_range is not None:  # Playground v2.5's markers beside a bare UNet
            model = model.with_continuous_sampling(info.prediction, *info.sigma_range)
        if info.zero123:
            from .zero123 import cc_projection_from

            model.context_projection = cc_projection_from(f)
        return model


def _fp8_refused(kind: str) -> str:
    return ("weight_dtype fp8 is supported for SD1/SD2/SDXL UNets, PixArt and SD3, FLUX, Chroma, LTX-Video, Mochi, "
            "Cosmos-Predict2, Cosmos 1.0, Lumina 2, Qwen-Image, HiDream, HunyuanVideo and HunyuanImage diffusion models"
            " only; "
            f"this file is a {kind} model "
            "(use weight_dtype default)")


def _read_stable_cascade(f, path, device, dtype, weight_dtype) -> DiffusionModel | None:
    """A Stable Cascade Stage C / Stage B file (bare original keys), or None for other files."""
    from .stable_cascade import build_stable_cascade, cascade_config_from_shapes, is_stable_cascade

    stage = is_stable_cascade(f.shapes)
    if stage is None:
        return None
    if weight_dtype != "default":
        raise CheckpointError(_fp8_refused(f"Stable Cascade Stage {stage.upper()}"))
    try:
        config = cascade_config_from_shapes(f.shapes)
        if stage == "c":  # Stage C's activations overflow fp16 (ComfyUI runs it in bf16 or fp32 only)
            unet_device, unet_dtype = flow_placement(device, dtype)
            if dtype is None and unet_dtype == torch.float16:
                unet_dtype = torch.float32
        else:
            unet_device, unet_dtype = _resolve(device, dtype, "unet")
        net = build_stable_cascade(f, config, unet_device, unet_dtype)
    except (KeyError, ValueError, IndexError) as e:
        raise CheckpointError(f"{Path(path).name}: a Stable Cascade Stage {stage.upper()} file of an unknown layout "
                              f"({e})") from None
    model = DiffusionModel(net, f"stable_cascade_{stage}", "eps")
    model.model_type = "stable_cascade"  # ComfyUI's STABLE_CASCADE: its saves write no predict_key
    return model


PIXART_UNUSED = ("pos_embed", "y_embedder.y_embedding")  # the training size's table (recomputed), the dropped caption


def _read_pixart(f, path, device, dtype, weight_dtype) -> DiffusionModel | None:
    """A PixArt-α / Σ transformer (original or diffusers layout), or None for other files."""
    from .diffusers_names import pixart_view
    from .file_kind import find_pixart
    from .pixart import PixArt, pixart_config_from_state_dict

    found = find_pixart(f.shapes)
    if found is None:
        return None
    variant, layout, prefix = found
    rounded = _fp8_storage(weight_dtype)  # as for the SD UNets: ComfyUI's fp8-rounded numbers, no memory saved
    source = KeyView(f, prefix)
    try:
        if layout == "diffusers":
            source = pixart_view(source)
        config = pixart_config_from_state_dict(source.shapes)
    except (KeyError, ValueError, IndexError, CheckpointError) as e:
        raise CheckpointError(f"{Path(path).name}: a PixArt transformer ({layout} layout) that cannot be read: {e}") from None
    with torch.device("meta"):
        net = PixArt(config)
    keys = [k for k in source.shapes if k not in PIXART_UNUSED]
    net = _assign(net, source, *_resolve(device, dtype, "unet"), f"PixArt ({layout} layout)", keys=keys,
                  rounded_through=rounded)
    return DiffusionModel(net, "pixart", "eps", SD1 if config.micro_condition else SDXL,
                          beta_schedule=PIXART_SCHEDULE)


def _read_cosmos(f, path, device, dtype, weight_dtype) -> DiffusionModel | None:
    """A Cosmos-Predict2 network (NVIDIA's layout, bare or under model.diffusion_model. / net.), or
    None for other files."""
    from .cosmos import CosmosPredict2, cosmos_config_from_state_dict, find_cosmos

    net = _read_nvidia_dit(f, path, device, dtype, weight_dtype, "Cosmos-Predict2", find_cosmos,
                           cosmos_config_from_state_dict, CosmosPredict2)
    return None if net is None else DiffusionModel(net, "cosmos", "cosmos_rflow")


COSMOS1_SIGMAS = (0.002, 80.0)  # ComfyUI's CosmosT2V / CosmosI2V sampling_settings (EDM, sigma_data 0.5)


def _read_cosmos1(f, path, device, dtype, weight_dtype) -> DiffusionModel | None:
    """A Cosmos 1.0 network (Text2World / Video2World 7B / 14B; NVIDIA's first layout, bare or
    under model.diffusion_model. / net.), sampled as EDM; or None for other files."""
    from .cosmos import Cosmos1, cosmos1_config_from_state_dict, find_cosmos1
    from .latent_formats import COSMOS1

    net = _read_nvidia_dit(f, path, device, dtype, weight_dtype, "Cosmos 1.0", find_cosmos1,
                           cosmos1_config_from_state_dict, Cosmos1)
    if net is None:
        return None
    return DiffusionModel(net, "cosmos1", "edm", COSMOS1).with_continuous_sampling("edm", *COSMOS1_SIGMAS)


def _read_nvidia_dit(f, path, device, dtype, weight_dtype, family: str, find, config_from_state_dict, network):
    """A Cosmos network in one of NVIDIA's layouts (bare or under model.diffusion_model. / net.):
    its prefix from `find`, its config from the shapes; NVIDIA's buffers, counters and logvar are
    not read. None when `find` finds none."""
    prefix = find(f.shapes)
    if prefix is None:
        return None
    source = KeyView(f, prefix)
    try:
        config = config_from_state_dict(source.shapes)
    except (KeyError, ValueError, IndexError) as e:
        raise CheckpointError(f"{Path(path).name}: a {family} network that cannot be read: {e}") from None
    with torch.device("meta"):
        net = network(config)
    keys = [k for k in source.shapes if k in net.state_dict()]
    device, dtype = flow_placement(device, dtype)
    variant = f" {config.variant}" if hasattr(config, "variant") else ""
    dtype_of, rounded = _weight_storage(net, source, dtype, weight_dtype)
    return _assign(net, source, device, dtype, f"{family}{variant} ({prefix or 'no prefix'})", keys=keys,
                   dtype_of=dtype_of, rounded_through=rounded)


@dataclass
class CascadeInfo:
    """A Stable Cascade all-in-one checkpoint (ComfyUI's Stable_Cascade_C / _B layout): the stage
    under model.diffusion_model., its VAE under vae. (Stage B's: Stage A; Stage C's: the image
    encoder under vae.encoder., with a previewer graphflow does not read), the CLIP-G under
    text_encoder.clip_g.transformer."""

    stage: str
    towers: tuple = ()  # the CLIP-G is registered with the memory manager by its loader below
    notes: list = None

    @property
    def name(self) -> str:
        return f"Stable Cascade Stage {self.stage.upper()}"


class _TransposedProjection:
    """A tower view with an OpenCLIP text_projection [width, projection] stored elsewhere in the
    file, read as transformers' text_projection.weight [projection, width]."""

    def __init__(self, view, f, key: str):
        self.view, self.f, self.key = view, f, key
        self.shapes = {**view.shapes, "text_projection.weight": tuple(reversed(f.shapes[key]))}

    def get(self, key, device=None, dtype=None):
        if key == "text_projection.weight":
            return self.f.get(self.key, device, dtype).t().contiguous()
        return self.view.get(key, device, dtype)


def _read_cascade_checkpoint(f, path, device, dtype, weight_dtype, parts) -> Checkpoint | None:
    from .file_kind import cascade_stage
    from .flow_text import FlowTextEncoder
    from .stage_a import StageAVAE, build_stage_a
    from .stage_c_encoder import StageCEncoderVAE, build_stage_c_encoder
    from .text_encoder_files import _tower

    unet_view = KeyView(f, UNET_PREFIX)
    stage = cascade_stage(unet_view.shapes)
    if stage not in ("c", "b"):
        return None
    info = CascadeInfo(stage, notes=[])
    model = _read_stable_cascade(unet_view, path, device, dtype, weight_dtype) if "diffusion_model" in parts else None
    vae = None
    vae_view = KeyView(f, "vae.")
    encoder_view = KeyView(vae_view, "encoder.")
    try:
        if "vae" in parts and cascade_stage(vae_view.shapes) == "a":
            vae = StageAVAE(build_stage_a(vae_view, *_resolve(device, dtype, "vae")))
        elif "vae" in parts and cascade_stage(encoder_view.shapes) == "effnet":
            vae = StageCEncoderVAE(build_stage_c_encoder(encoder_view, *_resolve(device, dtype, "vae")))
    except KeyError as e:
        raise CheckpointError(f"{Path(path).name}: the VAE under vae. is incomplete ({e})") from None
    clip = None
    clip_view = KeyView(f, "text_encoder.clip_g.transformer.")
    if "text_encoder.clip_g.text_projection" in f.shapes:  # older saves: OpenCLIP's matrix, outside the tower
        clip_view = _TransposedProjection(clip_view, f, "text_encoder.clip_g.text_projection")
    if clip_view.shapes and {"text_encoder", "text_encoder:clip_g"} & parts:
        tower = _tower(clip_view, f"{Path(path).name} (text_encoder.clip_g.)", *_resolve(device, dtype, "text_encoder"),
                       {"text_encoders": {"clip_g": {}}})
        clip = FlowTextEncoder("stable_cascade", clip_g=tower)
    return Checkpoint(model, clip, vae, info)


# -- standalone VAE files ----------------------------------------------------------------------

def load_vae(path, device=None, dtype=None, latent_format: LatentFormat | None = None) -> VAE:
    """A standalone VAE file: LDM layout (bare `encoder.down.N...` keys, or under
    `first_stage_model.`, or a whole checkpoint's VAE) or diffusers layout (`encoder.down_blocks...`).
    Latents are raw, so the latent format only names the channel count: SD1's for 4 channels
    unless given (or set in graphflow.config). Registered with the memory manager with this file
    as its source."""
    from graphflow.memory import manager

    vae = _read_vae(path, device, dtype, latent_format)
    manager().set_source(vae.module, "vae", "vae", lambda: _read_vae(path, device, dtype, latent_format).module)
    return vae


def _read_mochi_vae(f, path, device, dtype):
    """Genmo's Mochi VAE (decoder under decoder. and encoder under encoder. as ComfyUI ships it, or
    Genmo's bare decoder file), or None for other files."""
    from .flow_architecture import MOCHI_VAE_ENCODER, mochi_vae_prefix

    prefix = mochi_vae_prefix(f.shapes)
    if prefix is None:
        if "encoder." + MOCHI_VAE_ENCODER in f.shapes or MOCHI_VAE_ENCODER in f.shapes:
            raise CheckpointError(f"{Path(path).name} holds the Mochi VAE's encoder alone; graphflow decodes with "
                                  f"the decoder (mochi_vae.safetensors, or Genmo's decoder file)")
        return None
    return build_mochi_vae(f, prefix, *_resolve(device, dtype, "vae"))


def _read_vae(path, device, dtype, latent_format) -> VAE:
    from .file_kind import is_cosmos1_vae
    from .flow_architecture import LTXV_VAE_MARKER, ltxv_vae
    from .stage_a import StageAVAE, build_stage_a, is_stage_a
    from .stage_c_encoder import StageCEncoderVAE, build_stage_c_encoder, is_stage_c_encoder
    from .hunyuan_image_refiner_vae import is_hunyuan_image_refiner_vae
    from .hunyuan_image_vae import is_hunyuan_image_vae
    from .hunyuan_video_vae import is_hunyuan_video_vae
    from .wan_vae import is_wan_vae

    with WeightFile(path) as f:
        if is_stage_a(f.shapes):  # Stable Cascade's Stage A (a VQGAN, not an LDM VAE)
            return StageAVAE(build_stage_a(f, *_resolve(device, dtype, "vae")))
        if is_stage_c_encoder(f.shapes):  # Stable Cascade's image -> Stage C latent encoder
            return StageCEncoderVAE(build_stage_c_encoder(f, *_resolve(device, dtype, "vae")))
        mochi = _read_mochi_vae(f, path, device, dtype)
        if mochi is not None:
            return mochi
        if is_cosmos1_vae(f.shapes):  # Cosmos 1.0's CV8x8x8 tokenizer
            return build_cosmos_vae(f, *_resolve(device, dtype, "vae"))
        if is_wan_vae(f.shapes):  # Wan 2.1's causal video VAE (Cosmos-Predict2, Wan) or Wan 2.2's
            return build_wan_vae(f, *_resolve(device, dtype, "vae"))
        if is_hunyuan_image_refiner_vae(f.shapes):  # before HunyuanVideo's: the same names, RMS norms
            return build_hunyuan_image_refiner_vae(f, *_resolve(device, dtype, "vae"))
        if is_hunyuan_video_vae(f.shapes):  # HunyuanVideo's causal 3-D VAE (ComfyUI's LDM layout)
            return build_hunyuan_video_vae(f, *_resolve(device, dtype, "vae"))
        if is_hunyuan_image_vae(f.shapes):  # HunyuanImage 2.1's 32x VAE (LDM-like names, 64 latent channels)
            return build_hunyuan_image_vae(f, *_resolve(device, dtype, "vae"))
        if LTXV_VAE_MARKER in f.shapes:  # LTX-Video's VAE alone (as VAESave writes it)
            return build_ltxv_vae(f, ltxv_vae(f.shapes, "")[1], *_resolve(device, dtype, "vae"), what="no prefix")
        config = f.config()
        prefixes = prefix_summary(f.shapes)
        found = vae_in(f.shapes)
        if found is not None:
            source, where = f.view(found[0]), found[0]
        elif "encoder.down.0.block.0.conv1.weight" in f.shapes:
            source, where = KeyView(f, ""), "LDM layout"
        elif "encoder.down_blocks.0.resnets.0.conv1.weight" in f.shapes:
            source, where = vae_view(f), "diffusers layout"
        else:
            raise CheckpointError(f"{Path(path).name}: no VAE keys (expected LDM 'encoder.down.0.block...', optionally "
                                  f"under {VAE_PREFIX}, or diffusers 'encoder.down_blocks...'); found prefixes: "
                                  f"{format_prefixes(prefixes)}")
        shapes = {k: s for k, s in source.shapes.items() if k.split(".")[0] in VAE_PARTS}
        vae_config = vae_config_from_shapes(shapes, config_overrides(VAEConfig, config.get("vae"), "vae"), where)
        if latent_format is None:  # a 16-channel file under first_stage_model. is SD3's, else FLUX's (ae.safetensors)
            flow = detect_flow_model(f.shapes)
            sixteen = flow.latent_format if flow is not None else SD3 if where == VAE_PREFIX else FLUX
            latent_format = {4: SD1, 16: sixteen}.get(vae_config.latent_channels) or LatentFormat(
                "custom", vae_config.latent_channels, 1.0)
            lf = config.get("latent_format") or {}
            if lf:
                latent_format = latent_format.with_scale(float(lf["scale_factor"]), lf.get("shift_factor"))
        return build_vae(source, vae_config, latent_format, *_resolve(device, dtype, "vae"), what=where)


# -- standalone text encoder files -------------------------------------------------------------

def _standalone_tower(shapes, config: dict | None = None) -> TowerSpec:
    """A lone CLIP text model: transformers layout (text_model.* or flattened) or OpenCLIP's.
    `config`: the file's graphflow.config; one tower named in its text_encoders says which tower
    this is (CLIPSave's files of scaled-down models, whose widths don't tell)."""
    named = (config or {}).get("text_encoders") or {}
    name = next(iter(named)) if len(named) == 1 else None
    for prefix in ("text_model.", ""):
        if prefix + "embeddings.token_embedding.weight" in shapes:
            hidden = shapes[prefix + "embeddings.token_embedding.weight"][1]
            if name is None:
                name = "clip_l" if hidden == 768 or "text_projection.weight" not in shapes else (
                    "clip_h" if hidden == 1024 else "clip_g")
            if name == "clip_l":
                return TowerSpec(prefix=prefix, **CLIP_L)
            return TowerSpec(name=name, prefix=prefix, layout=HF, pad_token=0, hidden_act="gelu")
    if "token_embedding.weight" in shapes and "transformer.resblocks.0.ln_1.weight" in shapes:
        hidden = shapes["token_embedding.weight"][1]
        return TowerSpec(name="clip_h" if hidden == 1024 else "clip_g", prefix="", **OPEN_CLIP)
    raise CheckpointError(f"no CLIP text model keys; found prefixes: {format_prefixes(prefix_summary(shapes))}")


class _StandaloneView:
    """A standalone HF tower whose keys may lack `text_model.` and carry `text_projection.weight`."""

    def __init__(self, source, spec: TowerSpec):
        self.source, self.spec = source, spec
        self.shapes = {}
        for k, s in source.shapes.items():
            if k.startswith("text_projection"):
                self.shapes[k] = s
            elif k.startswith(spec.prefix):
                self.shapes[k[len(spec.prefix):]] = s

    def get(self, key, device=None, dtype=None):
        return self.source.get(key if key.startswith("text_projection") else self.spec.prefix + key, device, dtype)


def load_text_encoder(paths, arch: str | None = None, device=None, dtype=None) -> TextEncoder:
    """CLIP from separate file(s): a single-file checkpoint (its text encoders), one CLIP text
    model (transformers or OpenCLIP layout: 768 wide -> SD1's CLIP-L, 1024 -> SD2's ViT-H,
    1280 -> bigG as for the SDXL refiner), or two files [CLIP-L, bigG] for SDXL."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    device, dtype = _resolve(device, dtype, "text_encoder")
    files = [WeightFile(p) for p in paths]
    try:
        if len(files) == 1:
            f = files[0]
            found_arch, towers, missing = locate_towers(f.shapes)
            if found_arch is not None:
                if missing:
                    raise CheckpointError(f"{f.path.name}: {ARCHITECTURES[found_arch].name} text encoder incomplete: "
                                          f"missing {', '.join(missing)}")
                return build_text_encoder(f, arch or found_arch, towers, f.config().get("text_encoders") or {},
                                          device, dtype)
        specs = [_standalone_tower(f.shapes, f.config()) for f in files]
        names = [s.name for s in specs]
        guessed = {("clip_l",): "sd1", ("clip_h",): "sd2", ("clip_g",): "sdxl_refiner",
                   ("clip_l", "clip_g"): "sdxl"}.get(tuple(names))
        arch = arch or guessed
        if arch is None or [s.name for s in ARCH_TOWERS[arch]] != names:
            raise CheckpointError(f"text encoder file(s) hold {names}; cannot make a CLIP for "
                                  f"{arch or 'any known architecture'} from them")
        return TextEncoder(arch, [tower_of(f, spec, device, dtype, f.path.name, _overrides(f, spec))
                                  for f, spec in zip(files, specs)])
    finally:
        for f in files:
            f.close()


def _overrides(f: WeightFile, spec: TowerSpec) -> dict | None:
    return (f.config().get("text_encoders") or {}).get(spec.name)


def tower_of(source, spec: TowerSpec, device, dtype, what: str, overrides: dict | None = None):
    """The CLIP tower `spec` names, built from a standalone text model's weights in `source`."""
    view = _StandaloneView(source, spec)
    try:
        return tower_from_weights(replace(spec, prefix=""), view.shapes, view.get, device, dtype, overrides)
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{what}: {e}") from None


def read_standalone_tower(path, device=None, dtype=None):
    """The one CLIP text model in a standalone file, as load_text_encoder builds it (the memory
    manager reads a dropped SDXL tower back from its own file with this)."""
    device, dtype = _resolve(device, dtype, "text_encoder")
    with WeightFile(path) as f:
        spec = _standalone_tower(f.shapes, f.config())
        return tower_of(f, spec, device, dtype, f.path.name, _overrides(f, spec))


SVD_IMAGE_ENCODER = "conditioner.embedders.0.open_clip.model.visual."  # svd / svd_xt / sv3d_u / sv3d_p
TEMPORAL_VAE_KEY = "decoder.conv_out.time_mix_conv.weight"


def load_image_only_checkpoint(path, device=None, dtype=None):
    """An image-only checkpoint as Stability ships Stable Video Diffusion (svd.safetensors,
    svd_xt.safetensors) and SV3D (sv3d_u.safetensors, sv3d_p.safetensors): (MODEL, CLIP_VISION,
    VAE), as ComfyUI's ImageOnlyCheckpointLoader. The spatio-temporal UNet under
    model.diffusion_model. (graphflow.models.svd; its label_emb width tells SVD from SV3D_u / _p),
    sampled as v-prediction in continuous EDM time (sigmas 0.002 .. 700); the CLIP ViT-H image
    encoder under conditioner.embedders.0.open_clip.model.visual. (OpenCLIP's layout or
    transformers'); the VAE under first_stage_model., with the temporal decoder
    (graphflow.models.video_vae) where the file has one, else the image VAE. The UNet and VAE are
    registered with the memory manager, each read back alone from this file when dropped."""
    from graphflow.memory import manager

    model, image_encoder, vae = _read_image_only(path, device, dtype, {"diffusion_model", "clip_vision", "vae"})
    manager().set_source(model.unet, "diffusion_model", "diffusion_model:svd",
                         lambda: _read_image_only(path, device, dtype, {"diffusion_model"})[0].unet)
    manager().set_source(vae.module, "vae", "vae", lambda: _read_image_only(path, device, dtype, {"vae"})[2].module)
    return model, image_encoder, vae


def _read_image_only(path, device, dtype, parts: set):
    """(MODEL, CLIP_VISION, VAE) of an image-only checkpoint, None for the parts not asked for."""
    from .clip_vision import build_clip_vision, clip_vision_config_from_shapes, clip_vision_source
    from .svd import SIGMA_MAX, SIGMA_MIN, SVDUNet, svd_config_from_shapes, video_variant
    from .video_vae import AutoencoderKLTemporal, VideoVAE

    model = image_encoder = vae = None
    with WeightFile(path) as f:
        unet_view, vae_view_ = f.view(UNET_PREFIX), f.view(VAE_PREFIX)
        vision = clip_vision_source(f, SVD_IMAGE_ENCODER)
        if not is_video_checkpoint(f.shapes) or vision is None or "decoder.conv_out.weight" not in vae_view_.shapes:
            raise CheckpointError(
                f"{f.path.name} is not an image-only (Stable Video Diffusion / SV3D) checkpoint: expected a video "
                f"UNet ({UNET_PREFIX}...time_stack), a CLIP vision model under {SVD_IMAGE_ENCODER} and a VAE "
                f"({VAE_PREFIX}decoder...); found prefixes: {format_prefixes(prefix_summary(f.shapes))}")
        temporal = TEMPORAL_VAE_KEY in vae_view_.shapes
        try:
            unet_config = svd_config_from_shapes(unet_view.shapes)
            video_variant(unet_config.adm_in_channels)
            vae_config = vae_config_from_shapes(
                vae_view_.shapes, {"use_quant_conv": "quant_conv.weight" in vae_view_.shapes}, VAE_PREFIX)
            vision_config = clip_vision_config_from_shapes(vision.shapes, f.config().get("clip_vision"))
        except (KeyError, ValueError, IndexError, StopIteration) as e:
            raise CheckpointError(f"{f.path.name}: the video model's layout could not be read ({e})") from None
        if "diffusion_model" in parts:
            with torch.device("meta"):
                unet = SVDUNet(unet_config)
            unet = _assign(unet, unet_view, *_resolve(device, dtype, "unet"), f"video UNet ({UNET_PREFIX})")
            model = DiffusionModel(unet, "svd", "v", SD1).with_continuous_sampling("v", SIGMA_MIN, SIGMA_MAX)
            model.model_type = "v_edm"  # ComfyUI's SVD_img2vid: V_PREDICTION_EDM
        if "vae" in parts:
            if temporal:
                with torch.device("meta"):
                    module = AutoencoderKLTemporal(vae_config)
                keys = [k for k in vae_view_.shapes if k.split(".")[0] in VAE_PARTS]
                module = _assign(module, vae_view_, *_resolve(device, dtype, "vae"), f"VAE ({VAE_PREFIX})", keys=keys)
                vae = VideoVAE(module)
            else:  # SV3D may ship the image decoder
                vae = build_vae(vae_view_, vae_config, SD1, *_resolve(device, dtype, "vae"))
        if "clip_vision" in parts:
            image_encoder = build_clip_vision(vision, vision_config, *_resolve(device, dtype, "clip_vision"),
                                              what=SVD_IMAGE_ENCODER)
    return model, image_encoder, vae
