"""Random-weight model files in the real layouts, for tests and benchmarks (no downloads).

    write_checkpoint(path, "sdxl")                  # tiny SDXL single-file checkpoint, a few MB
    write_checkpoint(path, "sd1", scaled_down=False, components=("text",))   # real-size CLIP-L only
    write_lora(path, "sd1", rank=4)                 # kohya-style LoRA fitting write_checkpoint's model
    write_vae(path)                                 # standalone LDM VAE
    write_text_encoder(path, "t5xxl")               # standalone CLIP-L / CLIP-G / T5-XXL file

Architectures: sd1, sd1_inpaint, sd2 (eps), sd2_v (v-prediction, marked in metadata), sdxl,
sdxl_refiner. Keys, shapes and text-encoder layouts are those of the real checkpoints (CLIP-L
in transformers' names, OpenCLIP towers with fused in_proj and a [width, dim] text_projection,
SD1's int64 position_ids buffer, OpenCLIP's logit_scale). Scaled-down models keep the real
vocabulary (49408 tokens, so the real tokenizer works) and shrink everything else; their head
counts follow the loaders' conventions, so a file's detected configuration is what wrote it.
Weights are Gaussian, scaled by 1/sqrt(fan_in) so activations stay O(1); norm weights near 1.
"""

import functools
import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import CLIPTextConfig

from .models.architecture import UNET_PREFIX, VAE_PREFIX
from .models.text_encoders import ARCH_TOWERS, HF, build_tower_module, hf_to_openclip
from .models.unet import UNet, UNetConfig
from .models.vae import AutoencoderKL, VAEConfig
from .models.weight_files import config_metadata

ARCHS = ("sd1", "sd1_inpaint", "sd2", "sd2_v", "sdxl", "sdxl_refiner")
SIZE_EMBEDDING = 256  # SDXL embeds each size/crop/aesthetic number in 256 channels

# (hidden, layers, intermediate, projection dim or None)
TEXT_FULL = {"clip_l": (768, 12, 3072, None), "clip_h": (1024, 24, 4096, 1024), "clip_g": (1280, 32, 5120, 1280)}
TEXT_TINY = {"clip_l": (64, 2, 256, None), "clip_h": (128, 3, 512, 128), "clip_g": (128, 3, 512, 128)}
HIDDEN_ACT = {"clip_l": "quick_gelu", "clip_h": "gelu", "clip_g": "gelu"}
PROJECTED = {"clip_l": False, "clip_h": True, "clip_g": True}  # OpenCLIP towers carry text_projection


def base_arch(arch: str) -> str:
    if arch not in ARCHS:
        raise ValueError(f"unknown test architecture {arch!r}; expected one of {ARCHS}")
    return {"sd1_inpaint": "sd1", "sd2_v": "sd2"}.get(arch, arch)


def text_config(tower: str, scaled_down: bool = True) -> CLIPTextConfig:
    hidden, layers, intermediate, projection = (TEXT_TINY if scaled_down else TEXT_FULL)[tower]
    return CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=intermediate,
                          num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
                          max_position_embeddings=77, hidden_act=HIDDEN_ACT[tower], layer_norm_eps=1e-5,
                          projection_dim=projection or hidden, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)


def unet_config(arch: str, scaled_down: bool = True) -> UNetConfig:
    base = base_arch(arch)
    towers = TEXT_TINY if scaled_down else TEXT_FULL
    context = sum(towers[s.name][0] for s in ARCH_TOWERS[base])
    pooled = towers["clip_g"][3]
    in_channels = 9 if arch == "sd1_inpaint" else 4
    if not scaled_down:
        if base == "sd1":
            return UNetConfig(in_channels=in_channels, context_dim=768, num_heads=8, num_head_channels=-1)
        if base == "sd2":
            return UNetConfig(context_dim=1024, num_heads=-1, num_head_channels=64, use_linear_in_transformer=True)
        if base == "sdxl":
            return UNetConfig(channel_mult=(1, 2, 4), transformer_depth=(0, 2, 10), transformer_depth_middle=10,
                              context_dim=2048, num_heads=-1, num_head_channels=64, use_linear_in_transformer=True,
                              adm_in_channels=2816)
        return UNetConfig(model_channels=384, channel_mult=(1, 2, 4, 4), transformer_depth=(0, 4, 4, 0),
                          transformer_depth_middle=4, context_dim=1280, num_heads=-1, num_head_channels=64,
                          use_linear_in_transformer=True, adm_in_channels=2560)
    tiny = dict(in_channels=in_channels, model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
                transformer_depth=(1, 1), transformer_depth_middle=1, context_dim=context,
                num_heads=-1, num_head_channels=64, use_linear_in_transformer=base != "sd1")
    if base == "sdxl":
        tiny.update(transformer_depth=(0, 2), adm_in_channels=pooled + 6 * SIZE_EMBEDDING)
    if base == "sdxl_refiner":
        tiny.update(transformer_depth=(0, 1), adm_in_channels=pooled + 5 * SIZE_EMBEDDING)
    return UNetConfig(**tiny)


def vae_config(scaled_down: bool = True) -> VAEConfig:
    return VAEConfig(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1) if scaled_down else VAEConfig()


def _random_like(name: str, shape: tuple, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    if name.endswith("position_ids"):
        return torch.arange(shape[-1]).expand(shape).clone()
    if len(shape) == 0:  # OpenCLIP's logit_scale
        return torch.tensor(4.6052, dtype=dtype)
    x = torch.randn(shape, generator=generator)
    if name.endswith("bias"):
        x = x * 0.02
    elif len(shape) == 1:  # norm weights
        x = 1.0 + 0.1 * x
    elif "embedding" in name:
        x = x * 0.02
    else:
        fan_in = 1
        for s in shape[1:]:
            fan_in *= s
        x = x / fan_in ** 0.5
    return x.to(dtype)


def random_state(shapes: dict[str, tuple], seed: int = 0, dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {k: _random_like(k, tuple(s), generator, dtype) for k, s in shapes.items()}


def _module_shapes(module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def unet_state(config: UNetConfig, seed: int = 0, dtype=torch.float16) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        shapes = _module_shapes(UNet(config))
    return random_state(shapes, seed, dtype)


def vae_state(config: VAEConfig, seed: int = 0, dtype=torch.float16) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        shapes = _module_shapes(AutoencoderKL(config))
    return random_state(shapes, seed, dtype)


def tower_state(tower: str, scaled_down: bool = True, seed: int = 0, dtype=torch.float16) -> dict[str, torch.Tensor]:
    """A random tower in transformers' names (text_model.*, text_projection.weight)."""
    config = text_config(tower, scaled_down)
    model = build_tower_module(config, projection=PROJECTED[tower])
    shapes = {}
    for k, v in model.state_dict().items():
        k = k if k.startswith(("text_model.", "text_projection")) else "text_model." + k
        shapes[k] = tuple(v.shape)
    shapes["text_model.embeddings.position_ids"] = (1, config.max_position_embeddings)
    return random_state(shapes, seed, dtype)


def text_encoder_state(arch: str, scaled_down: bool = True, seed: int = 0, dtype=torch.float16) -> dict[str, torch.Tensor]:
    """The text-encoder part of a checkpoint: every tower under its real prefix and layout."""
    out = {}
    for i, spec in enumerate(ARCH_TOWERS[base_arch(arch)]):
        state = tower_state(spec.name, scaled_down, seed + 100 + i, dtype)
        if spec.layout == HF:
            out.update({spec.prefix + k[len("text_model."):]: v for k, v in state.items()})
        else:
            state.pop("text_model.embeddings.position_ids")
            out.update({spec.prefix + k: v for k, v in hf_to_openclip(state).items()})
            out[spec.prefix + "logit_scale"] = torch.tensor(4.6052, dtype=dtype)
    return out


T5_FULL = dict(d_model=4096, d_kv=64, num_heads=64, d_ff=10240, num_layers=24)  # T5-XXL v1.1
T5_TINY = dict(d_model=192, d_kv=48, num_heads=4, d_ff=256, num_layers=2)  # >= tiny CLIP-L + CLIP-G (192)


def t5_state(scaled_down: bool = True, seed: int = 0, dtype=torch.float16) -> dict[str, torch.Tensor]:
    """A random T5 v1.1 encoder (gated-gelu, T5's 32128-row embedding) in transformers' names, as
    t5xxl_fp16.safetensors has them: shared.weight, encoder.block.*, encoder.final_layer_norm."""
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=32128, feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,
                      **(T5_TINY if scaled_down else T5_FULL))
    with torch.device("meta"):
        shapes = _module_shapes(T5EncoderModel(config))
    shapes.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight
    return random_state(shapes, seed, dtype)


def write_text_encoder(path, kind: str, scaled_down: bool = True, seed: int = 0, dtype=torch.float16,
                       prefix: str = "") -> Path:
    """A standalone text encoder file as ComfyUI's model pages ship them: kind "clip_l" or "clip_g"
    (transformers' names, text_model.* + text_projection.weight) or "t5xxl" (see t5_state);
    dtype may be an fp8 type (t5xxl_fp8_e4m3fn). `prefix` puts the keys under e.g.
    "text_encoders.t5xxl.transformer." (ComfyUI's all-in-one layout)."""
    if kind == "t5xxl":
        state = t5_state(scaled_down, seed, torch.float32)
    else:
        state = tower_state(kind, scaled_down, seed, torch.float32)
        state.pop("text_model.embeddings.position_ids")
    state = {prefix + k: v.to(dtype) for k, v in state.items()}
    path = Path(path)
    save_file(state, str(path))
    return path


def write_checkpoint(path, arch: str, scaled_down: bool = True, seed: int = 0, dtype=torch.float16,
                     components=("unet", "vae", "text"), unet: UNetConfig | None = None,
                     metadata: dict | None = None, extra: dict | None = None, vae: VAEConfig | None = None) -> Path:
    """A random single-file checkpoint in the LDM layout. `unet` and `vae` replace the UNet and
    VAE configs (e.g. a mid-size UNet); sd2_v is marked v-prediction in graphflow.config metadata; `extra`
    tensors are added as they are."""
    path = Path(path)
    tensors = {}
    if "unet" in components:
        state = unet_state(unet or unet_config(arch, scaled_down), seed, dtype)
        tensors.update({UNET_PREFIX + k: v for k, v in state.items()})
    if "vae" in components:
        tensors.update({VAE_PREFIX + k: v for k, v in vae_state(vae or vae_config(scaled_down), seed + 1, dtype).items()})
    if "text" in components:
        tensors.update(text_encoder_state(arch, scaled_down, seed, dtype))
    tensors.update(extra or {})
    meta = dict(metadata or {})
    if arch == "sd2_v":
        meta.update(config_metadata(prediction="v"))
    save_file(tensors, str(path), metadata=meta or None)
    return path


def write_vae(path, scaled_down: bool = True, seed: int = 1, dtype=torch.float16, prefixed: bool = False,
              config: VAEConfig | None = None, metadata: dict | None = None) -> Path:
    """A standalone VAE in the LDM layout, bare keys or (prefixed) under first_stage_model."""
    state = vae_state(config or vae_config(scaled_down), seed, dtype)
    prefix = VAE_PREFIX if prefixed else ""
    save_file({prefix + k: v for k, v in state.items()}, str(path), metadata=metadata)
    return Path(path)


ICLIGHT_LAYOUTS = ("diffusers", "ldm")


def write_iclight(path, channels: int = 8, layout: str = "diffusers", seed: int = 0, dtype=torch.float16,
                  unet: UNetConfig | None = None, scale: float = 0.1) -> Path:
    """An IC-Light offset file fitting write_checkpoint("sd1")'s UNet (or `unet`): an offset for every
    UNet weight (Gaussian, `scale` times the random weights' size), conv_in's for `channels` (8: fc /
    fcon, 12: fbc) input channels. Keys: lllyasviel's diffusers names (layout "diffusers":
    iclight_sd15_fc.safetensors) or bare LDM ones ("ldm": the pack's converted files)."""
    from dataclasses import replace

    from .models.lora import unet_diffusers_blocks, unet_diffusers_name

    if layout not in ICLIGHT_LAYOUTS:
        raise ValueError(f"unknown IC-Light layout {layout!r}; expected one of {ICLIGHT_LAYOUTS}")
    config = replace(unet or unet_config("sd1"), in_channels=channels)
    state = {k: (v.float() * scale).to(dtype) for k, v in unet_state(config, seed, torch.float32).items()}
    if layout == "diffusers":
        with torch.device("meta"):
            blocks = unet_diffusers_blocks(UNet(config))
        state = {unet_diffusers_name(k, blocks): v for k, v in state.items()}
    save_file(state, str(path))
    return Path(path)


def write_lora(path, arch: str, rank: int = 4, alpha: float | None = 2.0, seed: int = 0, scaled_down: bool = True,
               conv: bool = True, text: bool = True, naming: str = "diffusers", scale: float = 0.05,
               unet: UNetConfig | None = None) -> Path:
    """A kohya-style LoRA for write_checkpoint(arch, scaled_down)'s model (or one whose UNet has
    the config `unet`): every attention/MLP Linear (and proj_in/out) of the UNet's transformers,
    with `conv` also the ResBlock and resampling convolutions (LoCon), with `text` every
    text-encoder Linear. UNet names in diffusers' spelling (kohya's) or LDM's (`naming="ldm"`)."""
    from .models.lora import text_lora_names, unet_diffusers_blocks, unet_diffusers_name

    with torch.device("meta"):
        unet = UNet(unet or unet_config(arch, scaled_down))
    blocks = unet_diffusers_blocks(unet)
    targets = {}
    for name, module in unet.named_modules():
        if not isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            continue
        in_transformer = ".transformer_blocks." in name or name.endswith((".proj_in", ".proj_out"))
        in_resnet = any(part in name for part in (".in_layers.", ".out_layers.", ".skip_connection", ".op", ".conv"))
        if not (in_transformer or conv and in_resnet and isinstance(module, torch.nn.Conv2d)):
            continue
        label = unet_diffusers_name(name, blocks) if naming == "diffusers" else name
        targets["lora_unet_" + label.replace(".", "_")] = tuple(module.weight.shape)
    if text:
        from .models.text_encoders import ClipTower, TextEncoder

        towers = [ClipTower(spec, build_tower_module(text_config(spec.name, scaled_down), PROJECTED[spec.name]))
                  for spec in ARCH_TOWERS[base_arch(arch)]]
        clip = TextEncoder(base_arch(arch), towers)
        seen = set()  # one module per layer: the first of its names (the others are aliases)
        for key, (index, module_path) in text_lora_names(clip).items():
            if (index, module_path) not in seen and module_path != "text_projection":
                seen.add((index, module_path))
                targets[key] = tuple(towers[index].model.get_submodule(module_path).weight.shape)
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for key, shape in targets.items():
        out_ch, in_ch, *kernel = shape
        down_shape = (rank, in_ch, *kernel)
        up_shape = (out_ch, rank, *([1] * len(kernel)))
        tensors[key + ".lora_down.weight"] = torch.randn(down_shape, generator=generator) * scale
        tensors[key + ".lora_up.weight"] = torch.randn(up_shape, generator=generator) * scale
        if alpha is not None:
            tensors[key + ".alpha"] = torch.tensor(float(alpha))
    save_file(tensors, str(path))
    return Path(path)



# -- SD3 / SD3.5 / FLUX.1 ----------------------------------------------------------------------
# Scaled-down flow models keep the real structure (QK-norm, MMDiT-X attn2 blocks, the last text
# block pre-only, dev's guidance_in, Fill's 384 packed channels) and the real vocabularies
# (CLIP 49408, T5 32128). Their widths fit the tiny text encoders: SD3 context = CLIP-L + CLIP-G
# widths = the tiny T5's (192), pooled = both projections (64 + 128); FLUX pooled = CLIP-L (64).

FLOW_FAMILIES = ("sd3_medium", "sd35_large", "sd35_medium", "flux_dev", "flux_schnell", "flux_fill")
FLOW_TEXT_ENCODERS = {"sd3": ("clip_l", "clip_g", "t5xxl"), "flux": ("clip_l", "t5xxl")}
FLOW_VAE_PREFIX = {"sd3": "first_stage_model.", "flux": "vae."}  # Stability's / ComfyUI's FLUX saves
T5_TINY_WIDTH = TEXT_TINY["clip_l"][0] + TEXT_TINY["clip_g"][0]


def flow_arch(family: str) -> str:
    if family not in FLOW_FAMILIES:
        raise ValueError(f"unknown flow family {family!r}; expected one of {FLOW_FAMILIES}")
    return "sd3" if family.startswith("sd3") else "flux"


def flow_model_config(family: str, scaled_down: bool = True):
    from .models.flux import FluxConfig
    from .models.mmdit import MMDiTConfig

    arch = flow_arch(family)
    if arch == "sd3":
        if not scaled_down:
            return {"sd3_medium": MMDiTConfig(),
                    "sd35_large": MMDiTConfig(hidden_size=2432, depth=38, num_heads=38, qk_norm=True),
                    "sd35_medium": MMDiTConfig(pos_embed_max_size=384, qk_norm=True,
                                               x_self_attn_layers=tuple(range(13)))}[family]
        pooled = TEXT_TINY["clip_l"][0] + TEXT_TINY["clip_g"][3]
        tiny = dict(hidden_size=128, depth=2, num_heads=2, pos_embed_max_size=16, context_dim=T5_TINY_WIDTH,
                    adm_in_channels=pooled)
        extra = {"sd3_medium": {}, "sd35_large": dict(qk_norm=True),
                 "sd35_medium": dict(depth=3, qk_norm=True, x_self_attn_layers=(0, 1))}[family]
        return MMDiTConfig(**{**tiny, **extra})
    in_channels = 384 if family == "flux_fill" else 64
    guidance = family != "flux_schnell"
    if not scaled_down:
        return FluxConfig(in_channels=in_channels, guidance_embed=guidance)
    return FluxConfig(in_channels=in_channels, guidance_embed=guidance, hidden_size=64, num_heads=2, depth=1,
                      depth_single_blocks=2, axes_dim=(4, 14, 14), vec_in_dim=TEXT_TINY["clip_l"][0],
                      context_in_dim=T5_TINY_WIDTH)


def flow_vae_config(scaled_down: bool = True) -> VAEConfig:
    """The 16-channel KL-VAE of SD3 and FLUX (no quant convs)."""
    sixteen = dict(z_channels=16, embed_dim=16, use_quant_conv=False)
    return VAEConfig(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1, **sixteen) if scaled_down else VAEConfig(**sixteen)


def t5_config(scaled_down: bool = True):
    """T5-XXL's encoder (T5 v1.1: gated GELU, no biases), or a tiny one with its vocabulary."""
    from transformers import T5Config

    if scaled_down:
        return T5Config(vocab_size=32128, d_model=T5_TINY_WIDTH, d_kv=32, d_ff=256, num_layers=2, num_heads=6,
                        feed_forward_proj="gated-gelu", is_encoder_decoder=False, tie_word_embeddings=False)
    return T5Config(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                    feed_forward_proj="gated-gelu", is_encoder_decoder=False, tie_word_embeddings=False)


def _flow_net_shapes(family: str, scaled_down: bool) -> dict[str, tuple]:
    from .models.flux import Flux
    from .models.mmdit import MMDiT

    config = flow_model_config(family, scaled_down)
    with torch.device("meta"):
        return _module_shapes(MMDiT(config) if flow_arch(family) == "sd3" else Flux(config))


def _flow_tower_shapes(name: str, scaled_down: bool) -> dict[str, tuple]:
    """A text encoder's keys as SD3/FLUX files hold them (below `.transformer.`)."""
    if name == "t5xxl":
        from transformers import T5EncoderModel

        with torch.device("meta"):
            shapes = _module_shapes(T5EncoderModel(t5_config(scaled_down)))
        shapes.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight; files hold it once
        return shapes
    config = text_config(name, scaled_down)
    with torch.device("meta"):
        model = build_tower_module(config, projection=True)  # SD3 projects both pooled outputs
    shapes = {}
    for k, v in model.state_dict().items():
        shapes[k if k.startswith(("text_model.", "text_projection")) else "text_model." + k] = tuple(v.shape)
    return shapes


def flow_file_shapes(family: str, scaled_down: bool = True, components=("model", "vae", "text"),
                     prefixed: bool = True) -> dict[str, tuple]:
    """Every key and shape of a SD3/FLUX file, without allocating anything (meta tensors)."""
    arch = flow_arch(family)
    shapes = {}
    if "model" in components:
        prefix = UNET_PREFIX if prefixed else ""
        shapes.update({prefix + k: s for k, s in _flow_net_shapes(family, scaled_down).items()})
    if "vae" in components:
        with torch.device("meta"):
            vae = _module_shapes(AutoencoderKL(flow_vae_config(scaled_down)))
        shapes.update({FLOW_VAE_PREFIX[arch] + k: s for k, s in vae.items()})
    if "text" in components:
        for name in FLOW_TEXT_ENCODERS[arch]:
            shapes.update({f"text_encoders.{name}.transformer.{k}": s
                           for k, s in _flow_tower_shapes(name, scaled_down).items()})
    return shapes


def write_flow_checkpoint(path, family: str, scaled_down: bool = True, seed: int = 0, dtype=torch.float16,
                          components=("model", "vae", "text"), prefixed: bool = True) -> Path:
    """A random SD3/SD3.5/FLUX file: all-in-one (the default: model.diffusion_model. + VAE +
    text_encoders.*) or, with components=("model",) and prefixed=False, a diffusion-model-only
    file in Stability's / BFL's bare layout."""
    shapes = flow_file_shapes(family, scaled_down, components, prefixed)
    state = random_state(shapes, seed, torch.float32)
    save_file({k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}, str(path))
    return Path(path)


def write_flow_vae(path, seed: int = 1, dtype=torch.float16, prefix: str = "", scaled_down: bool = True) -> Path:
    """A standalone 16-channel VAE; bare keys as BFL's ae.safetensors."""
    state = vae_state(flow_vae_config(scaled_down), seed, dtype)
    save_file({prefix + k: v for k, v in state.items()}, str(path))
    return Path(path)


def write_flow_text_encoder(path, name: str, seed: int = 2, dtype=torch.float16, scaled_down: bool = True) -> Path:
    """A standalone text-encoder file as ComfyUI distributes them: clip_l / clip_g in
    transformers' CLIPTextModelWithProjection keys, t5xxl in T5EncoderModel keys. A scaled-down CLIP
    names its tower in graphflow.config (as CLIPSave's files do): a projected tower narrower than
    CLIP-L's 768 would otherwise read as CLIP-G."""
    from .models.weight_files import config_metadata

    state = random_state(_flow_tower_shapes(name, scaled_down), seed, torch.float32)
    metadata = config_metadata(text_encoders={name: {}}) if scaled_down and name.startswith("clip_") else None
    save_file({k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}, str(path), metadata)
    return Path(path)


def chroma_config(scaled_down: bool = True):
    """Chroma's config (chroma-unlocked v50), or a tiny one taking the tiny T5's tokens."""
    from .models.chroma import ChromaConfig

    if not scaled_down:
        return ChromaConfig()
    return ChromaConfig(hidden_size=64, num_heads=2, depth=2, depth_single_blocks=2, axes_dim=(4, 14, 14),
                        context_in_dim=T5_TINY_WIDTH, approximator_hidden=48, approximator_layers=2)


def write_chroma(path, seed: int = 0, dtype=torch.float16, scaled_down: bool = True, prefixed: bool = False) -> Path:
    """A random Chroma diffusion model in the original single file's layout (BFL names,
    distilled_guidance_layer.*), bare as chroma-unlocked-v50.safetensors or, prefixed, under
    ComfyUI's model.diffusion_model."""
    from .models.chroma import Chroma

    with torch.device("meta"):
        shapes = _module_shapes(Chroma(chroma_config(scaled_down)))
    state = random_state(shapes, seed, torch.float32)
    prefix = UNET_PREFIX if prefixed else ""
    save_file({prefix + k: v.to(dtype) for k, v in state.items()}, str(path))
    return Path(path)


def chroma_radiance_config(scaled_down: bool = True, final_head: str = "linear"):
    """Chroma Radiance's config (Chroma1-Radiance as ComfyUI sets it up), or a tiny one: the tiny
    Chroma trunk on 8x8 patches, a 2-block head of width 8."""
    from .models.chroma import ChromaRadianceConfig

    if not scaled_down:
        return ChromaRadianceConfig(nerf_final_head=final_head)
    trunk = {k: getattr(chroma_config(), k) for k in ("hidden_size", "num_heads", "depth", "depth_single_blocks",
                                                      "axes_dim", "context_in_dim", "approximator_hidden",
                                                      "approximator_layers")}
    return ChromaRadianceConfig(patch_size=8, nerf_hidden_size=8, nerf_mlp_ratio=2, nerf_depth=2, nerf_max_freqs=4,
                                nerf_final_head=final_head, **trunk)


def write_chroma_radiance(path, seed: int = 0, dtype=torch.float16, scaled_down: bool = True, prefixed: bool = False,
                          final_head: str = "linear") -> Path:
    """A random Chroma Radiance diffusion model in the original file's layout (Chroma's names with
    img_in_patch and the nerf_* head), bare or, prefixed, under ComfyUI's model.diffusion_model."""
    from .models.chroma import ChromaRadiance

    with torch.device("meta"):
        shapes = _module_shapes(ChromaRadiance(chroma_radiance_config(scaled_down, final_head)))
    state = random_state(shapes, seed, torch.float32)
    prefix = UNET_PREFIX if prefixed else ""
    save_file({prefix + k: v.to(dtype) for k, v in state.items()}, str(path))
    return Path(path)


def ltxv_configs(scaled_down: bool = True):
    """LTX-Video's transformer and video VAE configs (2B v0.9), or tiny ones (128 latent channels,
    as EmptyLTXVLatentVideo makes, 32 heads as ComfyUI reads them, taking the tiny T5's tokens)."""
    from .models.configs import LTXVConfig, LTXVVAEConfig

    if not scaled_down:
        return LTXVConfig(), LTXVVAEConfig()
    model = LTXVConfig(hidden_size=64, num_heads=32, depth=1, cross_attention_dim=64, caption_channels=T5_TINY_WIDTH,
                       mlp_hidden=256)
    vae = LTXVVAEConfig(
        encoder_blocks=(("res_x", 1), ("compress_all", 0), ("res_x_y", 16), ("compress_all", 0), ("compress_all", 0),
                        ("res_x", 1)),
        decoder_blocks=(("res_x", 1), ("compress_all", 0), ("res_x_y", 8), ("compress_all", 0), ("compress_all", 0),
                        ("res_x", 1)),
        encoder_channels=8, decoder_channels=16)
    return model, vae


def write_ltxv_checkpoint(path, seed: int = 0, dtype=torch.float16, scaled_down: bool = True,
                          transformer_metadata: dict | None = None) -> Path:
    """A random LTX-Video checkpoint as Lightricks ship ltx-video-2b-v0.9.safetensors: the
    transformer under model.diffusion_model., the video VAE under vae. with its per-channel
    statistics (all four of the file's), no text encoder. transformer_metadata: the "transformer"
    section of the file's `config` metadata (e.g. {"causal_temporal_positioning": True})."""
    from .models.ltxv import LTXV
    from .models.ltxv_vae import LTXVideoVAE

    model_config, vae_config = ltxv_configs(scaled_down)
    with torch.device("meta"):
        model_shapes, vae_shapes = _module_shapes(LTXV(model_config)), _module_shapes(LTXVideoVAE(vae_config))
    c = vae_config.latent_channels
    vae_shapes.update({f"per_channel_statistics.{name}": (c,) for name in ("channel", "mean-of-stds")})
    state = {UNET_PREFIX + k: v for k, v in random_state(model_shapes, seed, torch.float32).items()}
    vae = random_state(vae_shapes, seed + 1, torch.float32)
    generator = torch.Generator().manual_seed(seed + 2)
    vae["per_channel_statistics.mean-of-means"] = 0.1 * torch.randn(c, generator=generator)
    vae["per_channel_statistics.std-of-means"] = 0.5 + torch.rand(c, generator=generator)
    vae["per_channel_statistics.channel"] = torch.arange(c, dtype=torch.float32)
    state.update({"vae." + k: v for k, v in vae.items()})
    metadata = None if transformer_metadata is None else {"config": json.dumps({"transformer": transformer_metadata})}
    save_file({k: v.to(dtype) for k, v in state.items()}, str(path), metadata=metadata)
    return Path(path)


def mochi_config(scaled_down: bool = True, depth: int = 2):
    """Mochi 1 Preview's transformer config, or a tiny one (12 latent channels as
    EmptyMochiLatentVideo makes, taking the tiny T5's tokens; SwiGLU widths as diffusers' rule
    4 * dim * 2 // 3 gives them, so that diffusers' MochiTransformer3DModel builds the same)."""
    from .models.configs import MochiConfig

    if not scaled_down:
        return MochiConfig()
    return MochiConfig(hidden_size=48, hidden_size_y=24, num_heads=3, depth=depth, text_dim=T5_TINY_WIDTH,
                       mlp_hidden_x=128, mlp_hidden_y=64)


def mochi_state(scaled_down: bool = True, seed: int = 0, depth: int = 2) -> dict[str, torch.Tensor]:
    """A random Mochi transformer in Genmo's original names (float32)."""
    from .models.mochi import Mochi

    with torch.device("meta"):
        shapes = _module_shapes(Mochi(mochi_config(scaled_down, depth)))
    return random_state(shapes, seed, torch.float32)


def write_mochi(path, seed: int = 0, dtype=torch.float16, scaled_down: bool = True, prefixed: bool = False,
                depth: int = 2) -> Path:
    """A random Mochi 1 diffusion model in Genmo's layout, bare as mochi_preview_bf16.safetensors
    (UNETLoader's) or, prefixed, under ComfyUI's model.diffusion_model. (a checkpoint's)."""
    prefix = UNET_PREFIX if prefixed else ""
    state = mochi_state(scaled_down, seed, depth)
    save_file({prefix + k: v.to(dtype) for k, v in state.items()}, str(path))
    return Path(path)


def mochi_vae_config(scaled_down: bool = True):
    """Genmo's Mochi VAE decoder config, or a tiny one (same 6x frames and 8x pixels; 4 residual
    blocks in the second up block, which holds the key ComfyUI recognises the decoder by)."""
    from .models.configs import MochiVAEConfig

    return MochiVAEConfig(channels=(64, 64, 32, 32), layers=(1, 1, 4, 1, 1)) if scaled_down else MochiVAEConfig()


def mochi_vae_encoder_config(scaled_down: bool = True):
    """Genmo's Mochi VAE encoder config, or a tiny one (3 residual blocks first, so that the first
    down block is layers.4, whose attention is the key ComfyUI recognises the encoder by)."""
    from .models.configs import MochiVAEEncoderConfig

    return MochiVAEEncoderConfig(channels=(32, 32, 64, 64), layers=(3, 1, 1, 1, 1)) if scaled_down \
        else MochiVAEEncoderConfig()


def mochi_vae_state(scaled_down: bool = True, seed: int = 1, encoder: bool = True) -> dict[str, torch.Tensor]:
    """A random Mochi VAE in Genmo's names under decoder. (and encoder.), float32."""
    from .models.mochi_vae import MochiVideoVAE

    with torch.device("meta"):
        module = MochiVideoVAE(mochi_vae_config(scaled_down), mochi_vae_encoder_config(scaled_down) if encoder else None)
    return random_state(_module_shapes(module), seed, torch.float32)


def write_mochi_vae(path, seed: int = 1, dtype=torch.float16, scaled_down: bool = True, bare_decoder: bool = False,
                    prefix: str = "") -> Path:
    """A random Mochi VAE as ComfyUI ships mochi_vae.safetensors (Genmo's decoder under decoder.,
    its encoder under encoder.), or with bare_decoder as Genmo's decoder file (the decoder's keys
    alone, no prefix); `prefix` goes before every key (a checkpoint's "vae.")."""
    state = mochi_vae_state(scaled_down, seed, encoder=not bare_decoder)
    if bare_decoder:
        state = {k.removeprefix("decoder."): v for k, v in state.items()}
    save_file({prefix + k: v.to(dtype) for k, v in state.items()}, str(path))
    return Path(path)


def shard_file(path, shards: int = 3) -> Path:
    """Split a safetensors file into a sharded set as transformers and diffusers save one:
    {stem}-00001-of-00003.safetensors, ... (each a run of the tensors, the metadata in every one)
    and {name}.index.json, whose weight_map names each tensor's shard. The file itself is
    removed; returns the index's path."""
    from safetensors import safe_open

    path = Path(path)
    with safe_open(str(path), framework="pt") as f:
        metadata, state = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    keys = sorted(state)
    if not 1 < shards <= len(keys):
        raise ValueError(f"{path.name}: cannot split {len(keys)} tensors into {shards} shards")
    stem, weight_map = path.name.removesuffix(".safetensors"), {}
    for i in range(shards):
        name = f"{stem}-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = keys[i * len(keys) // shards:(i + 1) * len(keys) // shards]
        save_file({k: state[k] for k in part}, str(path.parent / name), metadata)
        weight_map.update(dict.fromkeys(part, name))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = path.parent / (path.name + ".index.json")
    index.write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    path.unlink()
    return index


def write_esrgan(path, num_filters: int = 8, num_blocks: int = 1, scale: int = 4, seed: int = 0) -> Path:
    """A random-weight ESRGAN (RRDBNet, spandrel's own class) saved as .safetensors in the original
    ESRGAN key layout (model.0..., model.1.sub.N.RDB1...), as upscale-model files come."""
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(seed)
    net = ESRGAN(num_filters=num_filters, num_blocks=num_blocks, scale=scale)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return Path(path)


def write_depth_anything(path, dim: int = 64, depth: int = 12, features: int = 16,
                         out_channels: tuple = (8, 16, 32, 64), swiglu: bool = False, grid: int = 37,
                         seed: int = 0, dtype=torch.float32) -> Path:
    """A random-weight Depth Anything in the original key layout (pretrained.*, depth_head.*), as
    the released depth_anything_v2_vit*.pth / depth_anything_vit*14.pth hold it: a .pth (torch.save
    of the state dict) or, by the suffix, a safetensors conversion. Heads are 64 wide, as the loader
    takes them; 12, 24 or 40 blocks. The depth's last bias is 1, so the ReLU'd depth is not all 0."""
    from .models.depth_anything import HEAD_WIDTH, V2_LAYERS, DepthAnything, DepthAnythingConfig

    config = DepthAnythingConfig(dim, depth, dim // HEAD_WIDTH, features, tuple(out_channels), V2_LAYERS[depth],
                                 swiglu=swiglu, grid=grid)
    with torch.device("meta"):
        shapes = _module_shapes(DepthAnything(config))
    state = random_state(shapes, seed, dtype)
    state["depth_head.scratch.output_conv2.2.bias"] = torch.ones(1, dtype=dtype)
    path = Path(path)
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


def write_controlnet(path, arch: str = "sd1", seed: int = 0, scaled_down: bool = True, dtype=torch.float16,
                     layout: str = "original") -> Path:
    """A random-weight ControlNet for write_checkpoint(arch)'s UNet, in the original layout
    (control_model.*) or diffusers' (layout="diffusers": diffusion_pytorch_model.safetensors)."""
    from .models.controlnet import ControlNet, ControlNetConfig

    if layout not in ("original", "diffusers"):
        raise ValueError(f"layout must be 'original' or 'diffusers', got {layout!r}")
    config = ControlNetConfig(unet=unet_config(arch, scaled_down))
    with torch.device("meta"):
        shapes = _module_shapes(ControlNet(config))
    state = random_state(shapes, seed, dtype)
    if layout == "diffusers":
        state = {_controlnet_diffusers_name(k, config): v for k, v in state.items()}
    else:
        state = {"control_model." + k: v for k, v in state.items()}
    path = Path(path)
    save_file(state, str(path))
    return path


def write_union_controlnet(path, family: str = "sdxl", types: int = 8, seed: int = 0, dtype=torch.float16,
                           scaled_down: bool = True) -> Path:
    """A random-weight union ControlNet in diffusers' layout, as downloaded: family "sdxl"
    (xinsir's ControlNet++ for write_checkpoint("sdxl"): types 6 as controlnet-union-sdxl-1.0,
    8 as its promax file) or a FLUX family (InstantX's union for write_flow_checkpoint(family),
    `types` modes)."""
    from dataclasses import replace

    from .models.union_controlnet import UNION_KEYS, UnionControlNet, UnionControlNetConfig

    if family != "sdxl":
        return write_flow_controlnet(path, family, "diffusers", seed, dtype, scaled_down, modes=types)
    unet = unet_config("sdxl", scaled_down)
    # diffusers' union model gives its middle block the last level's depth, as SDXL has
    unet = replace(unet, transformer_depth_middle=unet.transformer_depth[-1])
    config = UnionControlNetConfig(unet=unet, types=types, width=unet.model_channels)
    with torch.device("meta"):
        shapes = _module_shapes(UnionControlNet(config))
    state = random_state(shapes, seed, dtype)
    # diffusers' initialisation scale: the type token must stand out of the hint's mean
    generator = torch.Generator().manual_seed(seed + 1)
    state["task_embedding"] = (torch.randn(shapes["task_embedding"], generator=generator) * config.width ** 0.5
                               ).to(dtype)
    state = {k if k.startswith(UNION_KEYS) else _controlnet_diffusers_name(k, config): v for k, v in state.items()}
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return Path(path)


def write_hypernetwork(path, widths=(64,), layer_structure=(1, 2, 1), activation: str = "relu",
                       layer_norm: bool = False, activate_output: bool = False, seed: int = 0,
                       scale: float = 0.3) -> Path:
    """An A1111 hypernetwork: for each width a [keys, values] pair of MLPs (Linear, activation,
    optional LayerNorm per step of layer_structure). `.pt` files are A1111's pickle, others the
    flattened safetensors layout of graphflow.models.hypernetwork."""
    generator = torch.Generator().manual_seed(seed)
    entries = {}
    for width in widths:
        pair = []
        for _ in range(2):
            state, index = {}, 0
            for step, (a, b) in enumerate(zip(layer_structure, layer_structure[1:])):
                fan_in, fan_out = int(width * a), int(width * b)
                weight = torch.randn(fan_out, fan_in, generator=generator)
                state[f"linear.{index}.weight"] = weight * scale / fan_in ** 0.5
                state[f"linear.{index}.bias"] = torch.randn(fan_out, generator=generator) * scale
                last = step == len(layer_structure) - 2
                index += 1 + (activation != "linear" and (not last or activate_output))
                if layer_norm:
                    state[f"linear.{index}.weight"] = 1 + torch.randn(fan_out, generator=generator) * 0.1
                    state[f"linear.{index}.bias"] = torch.randn(fan_out, generator=generator) * 0.1
                    index += 1
            pair.append(state)
        entries[width] = pair
    settings = {"layer_structure": list(layer_structure), "activation_func": activation, "is_layer_norm": layer_norm,
                "activate_output": activate_output, "use_dropout": False, "weight_initialization": "Normal",
                "name": Path(path).stem, "step": 1000}
    if Path(path).suffix == ".pt":
        torch.save({**entries, **settings}, str(path))
    else:
        flat = {f"{w}.{i}.{k}": v for w, pair in entries.items()
                for i, state in enumerate(pair) for k, v in state.items()}
        save_file(flat, str(path), metadata={k: str(v) for k, v in settings.items()})
    return Path(path)


def write_gligen(path, arch: str = "sd1", scaled_down: bool = True, seed: int = 0, dtype=torch.float32,
                 prefix: str = "", alpha: float = 0.6) -> Path:
    """A GLIGEN text-box model for write_checkpoint(arch)'s UNet, in the pruned files' layout: a
    gated self-attention `fuser` per UNet transformer block and the `position_net` (pooled CLIP-L
    width in, the UNet's context width out); both gates at `alpha`."""
    from .models.gligen import GatedSelfAttention, PositionNet, fuser_heads

    config = unet_config(arch, scaled_down)
    text_dim = (TEXT_TINY if scaled_down else TEXT_FULL)["clip_l"][0]
    shapes = {}
    with torch.device("meta"):
        unet = UNet(config)
        for name, module in unet.named_modules():
            if name.rsplit(".", 2)[-2:-1] == ["transformer_blocks"]:
                dim = module.attn1.to_q.in_features
                fuser = GatedSelfAttention(dim, config.context_dim, fuser_heads(dim, config.context_dim))
                shapes.update({f"{prefix}{name}.fuser.{k}": s for k, s in _module_shapes(fuser).items()})
        shapes.update({f"{prefix}position_net.{k}": s
                       for k, s in _module_shapes(PositionNet(text_dim, config.context_dim)).items()})
    state = random_state(shapes, seed, dtype)
    for key in state:
        if key.endswith((".alpha_attn", ".alpha_dense")):
            state[key] = torch.tensor(alpha, dtype=dtype)
    save_file(state, str(path))
    return Path(path)
CLIP_VISION_TINY = dict(hidden_size=64, num_layers=3, intermediate_size=128, patch_size=14, image_size=56)


def clip_vision_config(kind: str = "clip", projection_dim: int = 32, num_layers: int = 3):
    """A scaled-down CLIP ViT ("clip") or SigLIP ("siglip") whose detected configuration is what wrote it
    (num_layers 20 or more for USO, which reads SigLIP's block -20)."""
    from .models.clip_vision import SIGLIP_MEAN, SIGLIP_STD, CLIPVisionConfig

    tiny = {**CLIP_VISION_TINY, "num_layers": num_layers}
    if kind == "siglip":
        return CLIPVisionConfig(**tiny, projection_dim=0, hidden_act="gelu_pytorch_tanh",
                                layer_norm_eps=1e-6, class_token=False, image_mean=SIGLIP_MEAN, image_std=SIGLIP_STD)
    return CLIPVisionConfig(**tiny, projection_dim=projection_dim, hidden_act="gelu")


def clip_vision_state(kind: str = "clip", seed: int = 0, dtype=torch.float16, layout: str = "transformers",
                      projection_dim: int = 32, num_layers: int = 3) -> dict[str, torch.Tensor]:
    """A random CLIP vision model: transformers' names (vision_model.*, visual_projection.weight; a
    SigLIP file also carries its unused attention-pooling head), or layout "openclip" (conv1,
    transformer.resblocks.N with fused in_proj, proj [width, dim]) as unCLIP checkpoints' embedder."""
    from .models.clip_vision import CLIPVisionModel

    config = clip_vision_config(kind, projection_dim, num_layers)
    if layout == "openclip":
        h, inner, n = config.hidden_size, config.intermediate_size, config.num_positions
        shapes = {"class_embedding": (h,), "conv1.weight": (h, 3, config.patch_size, config.patch_size),
                  "positional_embedding": (n, h), "ln_pre.weight": (h,), "ln_pre.bias": (h,),
                  "ln_post.weight": (h,), "ln_post.bias": (h,), "proj": (h, config.projection_dim)}
        for i in range(config.num_layers):
            b = f"transformer.resblocks.{i}."
            shapes.update({b + "ln_1.weight": (h,), b + "ln_1.bias": (h,), b + "attn.in_proj_weight": (3 * h, h),
                           b + "attn.in_proj_bias": (3 * h,), b + "attn.out_proj.weight": (h, h),
                           b + "attn.out_proj.bias": (h,), b + "ln_2.weight": (h,), b + "ln_2.bias": (h,),
                           b + "mlp.c_fc.weight": (inner, h), b + "mlp.c_fc.bias": (inner,),
                           b + "mlp.c_proj.weight": (h, inner), b + "mlp.c_proj.bias": (h,)})
        return random_state(shapes, seed, dtype)
    with torch.device("meta"):
        shapes = _module_shapes(CLIPVisionModel(config))
    if kind == "siglip":
        shapes.update({"vision_model.head.probe": (1, 1, config.hidden_size),
                       "vision_model.head.mlp.fc1.weight": (config.intermediate_size, config.hidden_size)})
    return random_state(shapes, seed, dtype)


def write_clip_vision(path, kind: str = "clip", seed: int = 0, dtype=torch.float16, layout: str = "transformers",
                      num_layers: int = 3) -> Path:
    """A random-weight models/clip_vision/ file (see clip_vision_state)."""
    save_file(clip_vision_state(kind, seed, dtype, layout, num_layers=num_layers), str(path))
    return Path(path)


def write_uso_projector(path, seed: int = 0, dtype=torch.float16, extra: dict | None = None) -> Path:
    """A random USO style projector (models/model_patches/, `feature_embedder.` keys as
    uso-flux1-projector-v1) sized for clip_vision_config("siglip")'s 16 tokens 64 wide and the
    scaled-down FLUX's hidden size, 4 style tokens a level; `extra`: more tensors to store."""
    from .models.uso import SigLIPStyleProjector, USOConfig

    vision = clip_vision_config("siglip")
    cfg = USOConfig(siglip_tokens=vision.num_positions, style_tokens=4, siglip_width=vision.hidden_size,
                    hidden_size=flow_model_config("flux_dev").hidden_size)
    with torch.device("meta"):
        shapes = {"feature_embedder." + k: s for k, s in _module_shapes(SigLIPStyleProjector(cfg)).items()}
    save_file({**random_state(shapes, seed, dtype), **(extra or {})}, str(path))
    return Path(path)


def write_redux(path, seed: int = 0, redux_dim: int = 64, txt_dim: int = T5_TINY_WIDTH, dtype=torch.float16) -> Path:
    """A random FLUX Redux style model (redux_up: redux_dim -> 3 txt_dim, redux_down: -> txt_dim); the
    defaults fit clip_vision_config("siglip") and the scaled-down FLUX's T5 width."""
    shapes = {"redux_up.weight": (3 * txt_dim, redux_dim), "redux_up.bias": (3 * txt_dim,),
              "redux_down.weight": (txt_dim, 3 * txt_dim), "redux_down.bias": (txt_dim,)}
    save_file(random_state(shapes, seed, dtype), str(path))
    return Path(path)


def write_ip_adapter(path, arch: str = "sd1", kind: str = "basic", seed: int = 0, dtype=torch.float16,
                     tokens: int | None = None, width: int = 128, scale: float = 1.0, unet=None) -> Path:
    """A random IP-Adapter for write_checkpoint(arch)'s UNet in h94/IP-Adapter's layout (image_proj.*,
    ip_adapter.N.to_k_ip / to_v_ip.weight with N = 1, 3, 5, ... over the attn2 layers in diffusers'
    order). kind "basic" takes clip_vision_config()'s image_embeds (32 wide), "plus" its penultimate
    hidden states (64 wide) through a 4-block Resampler of `width` (64-wide heads). `.bin` / `.pt`
    paths get the nested pickle {"image_proj": ..., "ip_adapter": ...}; to_k_ip / to_v_ip are
    multiplied by `scale`; `unet`: another UNetConfig to fit."""
    from .models.ip_adapter import IPAdapter, IPAdapterConfig, cross_attentions

    config = unet or unet_config(arch)
    vision = clip_vision_config()
    if kind == "plus":
        cfg = IPAdapterConfig("plus", vision.hidden_size, tokens or 8, config.context_dim, width, 4)
    else:
        cfg = IPAdapterConfig("basic", vision.projection_dim, tokens or 4, config.context_dim)
    with torch.device("meta"):
        unet = UNet(config)
        modules = dict(unet.named_modules())
        inner = [modules[p].to_k.out_features for p in cross_attentions(unet)]
        shapes = {"image_proj." + k: s for k, s in _module_shapes(IPAdapter(cfg, inner).image_proj).items()}
    state = random_state(shapes, seed, torch.float32)
    generator = torch.Generator().manual_seed(seed + 1)
    for i, d in enumerate(inner):
        for name in ("to_k_ip", "to_v_ip"):
            w = torch.randn(d, cfg.context_dim, generator=generator) * scale / cfg.context_dim ** 0.5
            state[f"ip_adapter.{2 * i + 1}.{name}.weight"] = w
    state = {k: v.to(dtype) for k, v in state.items()}
    if Path(path).suffix in (".bin", ".pt"):
        nested = {"image_proj": {}, "ip_adapter": {}}
        for key, value in state.items():
            group, _, rest = key.partition(".")
            nested[group][rest] = value
        torch.save(nested, str(path))
    else:
        save_file(state, str(path))
    return Path(path)


def photomaker_config():
    """A scaled-down PhotoMaker v1 ID encoder fitting write_checkpoint("sdxl")'s text encoders
    (CLIP-L 64 + CLIP-G 128 wide), its ViT clip_vision_config()'s with quick_gelu."""
    from dataclasses import replace

    from .models.photomaker import PhotoMakerConfig

    widths = (TEXT_TINY["clip_l"][0], TEXT_TINY["clip_g"][0])
    return PhotoMakerConfig(replace(clip_vision_config(projection_dim=widths[0]), hidden_act="quick_gelu"), widths)


def write_photomaker(path, seed: int = 0, dtype=torch.float16, lora: bool = True) -> Path:
    """A random PhotoMaker v1 file (photomaker_config()): `.bin` / `.pt` paths get the pickle
    {"id_encoder": {...}, "lora_weights": {...}} of photomaker-v1.bin, other paths a .safetensors
    with the same tensors under id_encoder. / lora_weights. (lora=False: the ID encoder only).
    The LoRA part is a placeholder of diffusers-style names: the loader ignores it."""
    from .models.photomaker import PhotoMakerIDEncoder

    with torch.device("meta"):
        shapes = _module_shapes(PhotoMakerIDEncoder(photomaker_config()))
    parts = {"id_encoder": random_state(shapes, seed, dtype)}
    if lora:
        parts["lora_weights"] = random_state({"unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q."
                                              "lora.down.weight": (4, 64)}, seed + 1, dtype)
    if Path(path).suffix in (".bin", ".pt"):
        torch.save(parts, str(path))
    else:
        save_file({f"{group}.{k}": v for group, state in parts.items() for k, v in state.items()}, str(path))
    return Path(path)


UNCLIP_EMBED = 32  # the scaled-down CLIP vision model's projection width


def write_unclip_checkpoint(path, seed: int = 0, dtype=torch.float16) -> Path:
    """A random SD2.1-unCLIP checkpoint: the scaled-down SD2 model whose UNet has a class-label
    embedding for [image embedding, noise-level embedding] (2 x 32 channels), the CLIP vision model
    under embedder.model.visual. (OpenCLIP layout) and the noise augmentor's schedule buffers."""
    from dataclasses import replace

    from .models.unclip import cosine_alphas_cumprod

    extra = {"embedder.model.visual." + k: v
             for k, v in clip_vision_state("clip", seed + 3, dtype, "openclip", UNCLIP_EMBED).items()}
    abar = cosine_alphas_cumprod()
    buffers = {"alphas_cumprod": abar, "sqrt_alphas_cumprod": abar.sqrt(),
               "sqrt_one_minus_alphas_cumprod": (1 - abar).sqrt(), "betas": 1 - abar / torch.cat([abar.new_ones(1), abar[:-1]])}
    extra.update({"noise_augmentor." + k: v.to(dtype) for k, v in buffers.items()})
    unet = replace(unet_config("sd2"), adm_in_channels=2 * UNCLIP_EMBED)
    return write_checkpoint(path, "sd2", seed=seed, dtype=dtype, unet=unet, extra=extra)


ZERO123_EMBED = 32  # the scaled-down image embedding width (and UNet context width, as 768 is in the real model)


def write_zero123_checkpoint(path, seed: int = 0, dtype=torch.float16, unet: UNetConfig | None = None) -> Path:
    """A random stable_zero123 checkpoint in its original layout: an SD1 UNet taking 8 channels
    (latent + image latent) whose context width equals the image embedding's (32 here, 768 in the
    real model), the VAE, cc_projection (32 + 4 camera channels -> 32), the CLIP vision model under
    cond_stage_model.model.visual. (OpenAI CLIP layout, clip_vision_config()'s shapes) and what
    Zero123's image embedder leaves of CLIP's text part (token_embedding, positional_embedding,
    ln_final, text_projection, logit_scale: it deletes only the text transformer). No text encoder.
    `unet`: another 8-channel UNet config (cc_projection then maps to its context width)."""
    from dataclasses import replace

    from .models.zero123 import CAMERA_WIDTH, CC_PROJECTION, VISION_PREFIX

    extra = {VISION_PREFIX + k: v
             for k, v in clip_vision_state("clip", seed + 3, dtype, "openclip", ZERO123_EMBED).items()}
    width = ZERO123_EMBED
    leftovers = {"token_embedding.weight": (49408, width), "positional_embedding": (77, width),
                 "ln_final.weight": (width,), "ln_final.bias": (width,), "text_projection": (width, width),
                 "logit_scale": ()}
    extra.update({"cond_stage_model.model." + k: v for k, v in random_state(leftovers, seed + 4, dtype).items()})
    unet = unet or replace(unet_config("sd1"), in_channels=8, context_dim=ZERO123_EMBED)
    projection = {"weight": (unet.context_dim, ZERO123_EMBED + CAMERA_WIDTH), "bias": (unet.context_dim,)}
    extra.update({CC_PROJECTION + k: v for k, v in random_state(projection, seed + 5, dtype).items()})
    return write_checkpoint(path, "sd1", seed=seed, dtype=dtype, unet=unet, components=("unet", "vae"), extra=extra)


def x4_upscaler_configs() -> tuple[UNetConfig, VAEConfig]:
    """A scaled-down x4 upscaler: its UNet's structure (4 + 3 input channels, 1000 noise-level
    labels, 8 heads, linear projections, the first attention reading the text on the upper levels
    with attention, self-attention below) at small widths, and a VAE that downsamples by 4."""
    unet = UNetConfig(in_channels=7, model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1,
                      transformer_depth=(0, 1, 1), context_dim=TEXT_TINY["clip_h"][0], num_heads=8,
                      num_head_channels=-1, use_linear_in_transformer=True, num_classes=1000,
                      disable_self_attentions=(True, True, False))
    return unet, VAEConfig(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1)


def write_x4_upscaler_checkpoint(path, seed: int = 0, dtype=torch.float16) -> Path:
    """A random x4-upscaler-ema.safetensors in the original LDM layout: the scaled-down SD2 text
    encoder (OpenCLIP under cond_stage_model.model.), the UNet and VAE of x4_upscaler_configs, and
    the low-res augmentation's schedule buffers under low_scale_model. as LDM saves them."""
    from .models.x4_upscaler import SCHEDULE

    abar = SCHEDULE.alphas_cumprod()
    buffers = {"alphas_cumprod": abar, "sqrt_alphas_cumprod": abar.sqrt(),
               "sqrt_one_minus_alphas_cumprod": (1 - abar).sqrt(), "betas": 1 - abar / torch.cat([abar.new_ones(1), abar[:-1]])}
    extra = {"low_scale_model." + k: v.to(dtype) for k, v in buffers.items()}
    unet, vae = x4_upscaler_configs()
    return write_checkpoint(path, "sd2", seed=seed, dtype=dtype, unet=unet, vae=vae, extra=extra)


def _controlnet_diffusers_name(key: str, config) -> str:
    """An original-layout ControlNet key -> diffusers' ControlNetModel name (what the loader undoes)."""
    from .models.lora import RESNET_NAMES

    parts = key.split(".")
    if parts[0] == "input_hint_block":
        i, last = int(parts[1]), 4 * (len(config.hint_block) - 1) + 2
        name = "conv_in" if i == 0 else "conv_out" if i == last else f"blocks.{(i - 2) // 2}"
        return f"controlnet_cond_embedding.{name}.{parts[-1]}"
    if parts[0] == "zero_convs":
        return f"controlnet_down_blocks.{parts[1]}.{parts[-1]}"
    if parts[0] == "middle_block_out":
        return f"controlnet_mid_block.{parts[-1]}"
    if parts[0] in ("time_embed", "label_emb"):
        linear = {"0": "linear_1", "2": "linear_2"}[parts[-2]]
        return f"{'time_embedding' if parts[0] == 'time_embed' else 'add_embedding'}.{linear}.{parts[-1]}"

    def resnet(rest):
        stem = ".".join(rest[:2]) if ".".join(rest[:2]) in RESNET_NAMES else rest[0]
        return ".".join([RESNET_NAMES[stem]] + rest[len(stem.split(".")):])

    if parts[0] == "middle_block":
        j = int(parts[1])
        return (f"mid_block.attentions.0.{'.'.join(parts[2:])}" if j == 1
                else f"mid_block.resnets.{j // 2}.{resnet(parts[2:])}")
    block, j, rest = int(parts[1]), int(parts[2]), parts[3:]
    if block == 0:
        return "conv_in." + ".".join(rest)
    start = 1
    for level, n in enumerate(config.unet.num_res_blocks):
        if block < start + n:
            kind = "resnets" if j == 0 else "attentions"
            inner = resnet(rest) if j == 0 else ".".join(rest)
            return f"down_blocks.{level}.{kind}.{block - start}.{inner}"
        if block == start + n:
            return f"down_blocks.{level}.downsamplers.0.conv.{rest[-1]}"
        start += n + 1
    raise KeyError(key)


def write_t2i_adapter(path, kind: str = "full", layout: str = "original", channels=(32, 64, 64, 64),
                      hint_channels: int = 3, seed: int = 0, dtype=torch.float16) -> Path:
    """A random-weight T2I-Adapter: kind "full" (SD1/SD2), "xl" (diffusers' full_adapter_xl;
    channels (c0, c1, c2, c2) for a UNet of widths (c0, c1, c2)) or "light"; in the original
    layout or diffusers' (`adapter.*`, as TencentARC's files)."""
    from .models.t2i_adapter import LightAdapter, T2IAdapter, T2IAdapterConfig

    if kind not in ("full", "xl", "light") or layout not in ("original", "diffusers"):
        raise ValueError(f"kind must be full, xl or light and layout original or diffusers, got {kind!r}, {layout!r}")
    extra = {"xl": dict(downscale=16, down_levels=(2,)), "light": dict(light=True, blocks_per_level=2)}.get(kind, {})
    config = T2IAdapterConfig(channels=tuple(channels), hint_channels=hint_channels, **extra)
    with torch.device("meta"):
        shapes = _module_shapes((LightAdapter if kind == "light" else T2IAdapter)(config))
    state = random_state(shapes, seed, dtype)
    if layout == "diffusers":
        n = config.blocks_per_level
        renamed = {}
        for k, v in state.items():
            parts = k.split(".")
            if kind == "light":
                name = k.replace(".body.", ".resnets.")  # body.{level}.body.{block} -> body.{level}.resnets.{block}
            elif parts[0] == "body" and parts[2] == "in_conv":
                name = f"body.{int(parts[1]) // n}.in_conv.{parts[-1]}"
            elif parts[0] == "body":
                name = f"body.{int(parts[1]) // n}.resnets.{int(parts[1]) % n}." + ".".join(parts[2:])
            else:
                name = k
            renamed["adapter." + name] = v
        state = renamed
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return Path(path)


def write_flow_controlnet(path, family: str = "sd3_medium", layout: str = "diffusers", seed: int = 0,
                          dtype=torch.float16, scaled_down: bool = True, hint_block: bool = False,
                          joint: bool = True, inpainting: bool = False, modes: int = 0) -> Path:
    """A random-weight SD3 or FLUX ControlNet for write_flow_checkpoint(family)'s model (one
    block; FLUX: one double and one single), in diffusers' layout (InstantX's
    diffusion_pytorch_model.safetensors) or ours (layout="ours"). hint_block (FLUX): with its own
    pixel hint encoder and no single blocks, as XLabs' files (whose layout is ours). joint=False
    (SD3): image-only blocks as Stability's SD3.5 large ControlNets in diffusers' layout.
    inpainting: alimama's inpainting layout, the hint embedding one latent channel wider for the
    mask (SD3: pos_embed_input.proj of 17 channels; FLUX: controlnet_x_embedder of 68). modes
    (FLUX): a union ControlNet's mode count (controlnet_mode_embedder, as InstantX's Union: 10)."""
    from dataclasses import replace

    from .models import diffusers_names, flux_controlnet, mmdit_controlnet

    if layout not in ("diffusers", "ours"):
        raise ValueError(f"layout must be 'diffusers' or 'ours', got {layout!r}")
    if inpainting and (hint_block or not joint):
        raise ValueError("inpainting ControlNets are joint (SD3) and read the hint through the VAE (FLUX)")
    base = flow_model_config(family, scaled_down)
    if flow_arch(family) == "sd3":
        model = replace(base, depth=1, x_self_attn_layers=tuple(i for i in base.x_self_attn_layers if i < 1))
        config = mmdit_controlnet.MMDiTControlNetConfig(
            model=model if joint else replace(model, x_self_attn_layers=(), qk_norm=False),
            hint_channels=base.in_channels + inpainting, joint=joint)
        top = {**diffusers_names.SD3_TOP, "pos_embed.pos_embed": "pos_embed"}
        blocks = {"transformer_blocks": ("joint_blocks", diffusers_names.SD3_JOINT_BLOCK) if joint
                  else ("blocks", diffusers_names.SD3_SINGLE_BLOCK)}
        with torch.device("meta"):
            shapes = _module_shapes(mmdit_controlnet.MMDiTControlNet(config))
    else:
        config = flux_controlnet.FluxControlNetConfig(
            model=replace(base, depth=1, depth_single_blocks=0 if hint_block else 1, in_channels=64, out_channels=64),
            hint_channels=68 if inpainting else 64, hint_block=(16, 16, 16, 16) if hint_block else None,
            modes=modes)
        top = diffusers_names.FLUX_TOP
        blocks = {"transformer_blocks": ("double_blocks", diffusers_names.FLUX_DOUBLE_BLOCK),
                  "single_transformer_blocks": ("single_blocks", diffusers_names.FLUX_SINGLE_BLOCK)}
        with torch.device("meta"):
            shapes = _module_shapes(flux_controlnet.FluxControlNet(config))
    state = random_state(shapes, seed, dtype)
    if layout == "diffusers":
        hint_names = {0: "conv_in", 14: "conv_out", **{2 + 2 * j: f"blocks.{j}" for j in range(6)}}
        state = {f"input_hint_block.{hint_names[int(k.split('.')[1])]}.{k.split('.')[-1]}"
                 if k.startswith("input_hint_block.") else k: v for k, v in state.items()}
        state = _split_to_diffusers(state, top, blocks, config.model.hidden_size)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return Path(path)


def _split_to_diffusers(state: dict, top: dict, blocks: dict, hidden: int) -> dict:
    """Our fused layout -> diffusers' (the inverse of the loaders' renaming tables)."""
    inverse_top = {ours: theirs for theirs, ours in top.items()}
    inverse_blocks = {}
    for theirs_list, (ours_list, table) in blocks.items():
        stems = {}
        for their_stem, (our_stem, part) in table.items():
            stems.setdefault(our_stem, {})[part] = their_stem
        inverse_blocks[ours_list] = (theirs_list, stems)
    out = {}
    for key, t in state.items():
        stem, param = key.rsplit(".", 1) if "." in key else (key, "")
        head, index, rest = (stem.split(".", 2) + ["", ""])[:3]
        if key in inverse_top:
            out[inverse_top[key]] = t
        elif stem in inverse_top:
            out[f"{inverse_top[stem]}.{param}"] = t
        elif head in inverse_blocks and rest in inverse_blocks[head][1]:
            theirs_list, stems = inverse_blocks[head]
            parts = stems[rest]
            sizes = [hidden] * (len(parts) - 1)
            for i, chunk in zip(sorted(parts), t.split(sizes + [t.shape[0] - sum(sizes)])):
                out[f"{theirs_list}.{index}.{parts[i]}.{'weight' if param == 'scale' else param}"] = chunk
        else:
            out[key] = t
    return out


# tensors that are 2-D weights but no Linear's (embedding tables): ComfyUI's scaled fp8 leaves them
_NOT_LINEAR = ("shared.", "embed_tokens.", "token_embedding.", "position_embedding.", "relative_attention_bias.")


def write_scaled_fp8(source, path, prefixes=("",), dequantised=None, per_row: bool = False,
                     scale_input: bool = False, full_precision_matmul: bool = False,
                     comfy_quant: str | None = None) -> Path:
    """ComfyUI's scaled-fp8 layout of a file the writers above made: each Linear weight (a 2-D
    `.weight` under one of `prefixes`, embedding tables aside) becomes weight_fp8 = (w / s) in
    float8_e4m3fn with `<layer>.scale_weight` = s = amax|w| / 448 (one per row with per_row), a
    `scaled_fp8` marker goes under each prefix (2 elements with full_precision_matmul), and with
    scale_input each layer gets a `<layer>.scale_input`. `dequantised`: also write the same
    model with those weights as w_fp8.float() * s in float32 and every other tensor as it was:
    what the scaled file stands for. The source's metadata is kept in both. comfy_quant (a format
    name, "float8_e4m3fn"): ComfyUI's newer layout instead, `<layer>.weight_scale` /
    `<layer>.input_scale` and a `<layer>.comfy_quant` JSON config per layer, no marker."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    state = load_file(str(source))
    with safe_open(str(source), framework="pt") as handle:
        metadata = handle.metadata()
    scaled, plain = {}, {}
    for key, value in state.items():
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is None or not key.endswith(".weight") or value.dim() != 2 or any(n in key for n in _NOT_LINEAR):
            scaled[key] = plain[key] = value
            continue
        w = value.float()
        amax = w.abs().amax(dim=1, keepdim=True) if per_row else w.abs().amax()
        s = (amax / 448.0).clamp(min=1e-12)
        w_fp8 = (w / s).to(torch.float8_e4m3fn)
        layer = key[:-len(".weight")]
        names = (".weight_scale", ".input_scale") if comfy_quant else (".scale_weight", ".scale_input")
        scaled[key] = w_fp8
        scaled[layer + names[0]] = s.reshape(-1) if per_row else s
        if scale_input:
            scaled[layer + names[1]] = torch.tensor(0.05)
        if comfy_quant:
            scaled[layer + ".comfy_quant"] = torch.tensor(list(json.dumps({"format": comfy_quant}).encode()),
                                                          dtype=torch.uint8)
        plain[key] = w_fp8.float() * s
    for prefix in prefixes if not comfy_quant else ():
        scaled[prefix + "scaled_fp8"] = torch.zeros(2 if full_precision_matmul else 1).to(torch.float8_e4m3fn)
    save_file(scaled, str(path), metadata=metadata)
    if dequantised is not None:
        save_file(plain, str(dequantised), metadata=metadata)
    return Path(path)


# -- Stable Cascade ------------------------------------------------------------------------------

def cascade_config(stage: str):
    """A scaled-down Stage C ("c") or Stage B ("b") with the real models' structure (Stage C: two
    levels at one resolution, attention everywhere; Stage B: resampled levels, attention in the
    deeper ones, repeat mappers); its CLIP widths fit the tiny CLIP-G (TEXT_TINY)."""
    from .models.stable_cascade import CascadeConfig

    clip_g = TEXT_TINY["clip_g"]
    if stage == "c":
        return CascadeConfig("c", 16, 16, 1, (64, 128), (1, 2), (2, 1), (1, 2), (2, 1), (True, True),
                             cond_width=64, clip_text_width=clip_g[0], clip_pooled_width=clip_g[3],
                             clip_image_width=16, timestep_width=16, resample=False)
    if stage == "b":
        return CascadeConfig("b", 4, 4, 2, (16, 32, 64), (1, 1, 1), (1, 1, 1), (1, 1, 1), (2, 1, 2),
                             (False, True, True), cond_width=32, clip_text_width=None,
                             clip_pooled_width=clip_g[3], clip_image_width=None, effnet_channels=16,
                             pixel_channels=3, timestep_width=16, time_conds=("sca",))
    raise ValueError(f"unknown Stable Cascade stage {stage!r}; expected 'c' or 'b'")


def write_stable_cascade(path, stage: str, seed: int = 0, dtype=torch.float32) -> Path:
    """A tiny random Stage C / Stage B file in Stability's original layout (bare keys, attention
    as MultiheadAttention's in_proj / out_proj), as stable_cascade_stage_c.safetensors ships."""
    from .models.stable_cascade import StableCascadeUNet

    with torch.device("meta"):
        shapes = _module_shapes(StableCascadeUNet(cascade_config(stage)))
    state = random_state(shapes, seed, torch.float32)
    save_file({k: v.to(dtype) for k, v in state.items()}, str(path))
    return Path(path)


def write_stage_a(path, seed: int = 0, dtype=torch.float32) -> Path:
    """A tiny random Stable Cascade Stage A (stage_a.safetensors' layout: vquantizer.codebook,
    BatchNorm running statistics)."""
    from .models.stage_a import StageA, StageAConfig

    with torch.device("meta"):
        shapes = _module_shapes(StageA(StageAConfig(width=32, levels=2, bottleneck_blocks=2, codebook_size=64)))
    return _write_with_batch_norms(path, shapes, seed, dtype)


def _write_with_batch_norms(path, shapes: dict, seed: int, dtype) -> Path:
    """Random weights for a network with batch norms: running variances positive, counters whole."""
    tracked = {k for k in shapes if k.endswith("num_batches_tracked")}
    state = random_state({k: s for k, s in shapes.items() if k not in tracked}, seed, torch.float32)
    state = {k: (v.abs() + 0.5 if k.endswith("running_var") else v).to(dtype) for k, v in state.items()}
    state.update({k: torch.tensor(1000, dtype=torch.long) for k in tracked})
    save_file(state, str(path))
    return Path(path)


def write_stage_c_encoder(path, seed: int = 0, dtype=torch.float32) -> Path:
    """A random Stable Cascade Stage C encoder (effnet_encoder.safetensors' layout: torchvision's
    EfficientNetV2-S features under backbone., mapper.0 / mapper.1). Full size (about 20M
    weights): the backbone's structure is fixed, as in the released file."""
    from .models.stage_c_encoder import StageCEncoder

    with torch.device("meta"):
        shapes = _module_shapes(StageCEncoder())
    return _write_with_batch_norms(path, shapes, seed, dtype)


def write_stable_cascade_checkpoint(path, stage: str, seed: int = 0, dtype=torch.float32, split_attention=False,
                                    openclip_projection=False) -> Path:
    """A tiny all-in-one Stable Cascade checkpoint in ComfyUI's layout: the stage under
    model.diffusion_model., Stage A under vae. (Stage B's file; Stage C's holds no VAE here), the
    CLIP-G under text_encoder.clip_g.transformer. split_attention: in_proj stored as to_q / to_k /
    to_v, as ComfyUI saves its own modules; openclip_projection: the CLIP-G's projection stored as
    text_encoder.clip_g.text_projection, transposed (older saves)."""
    import tempfile

    from safetensors.torch import load_file

    with tempfile.TemporaryDirectory() as tmp:
        net = load_file(str(write_stable_cascade(Path(tmp) / "net.safetensors", stage, seed, dtype)))
        clip = load_file(str(write_text_encoder(Path(tmp) / "clip.safetensors", "clip_g", seed=seed + 1, dtype=dtype)))
        vae = load_file(str(write_stage_a(Path(tmp) / "vae.safetensors", seed + 2, dtype))) if stage == "b" else {}
    if split_attention:
        for key in [k for k in net if ".attn.in_proj_" in k]:
            base, kind = key.rsplit(".in_proj_", 1)
            for name, part in zip(("to_q", "to_k", "to_v"), net.pop(key).chunk(3)):
                net[f"{base}.{name}.{kind}"] = part.contiguous()
    state = {**{UNET_PREFIX + k: v for k, v in net.items()}, **{"vae." + k: v for k, v in vae.items()},
             **{"text_encoder.clip_g.transformer." + k: v for k, v in clip.items()}}
    if openclip_projection:
        state["text_encoder.clip_g.text_projection"] = state.pop(
            "text_encoder.clip_g.transformer.text_projection.weight").t().contiguous()
    save_file(state, str(path))
    return Path(path)


def pixart_config(variant: str = "alpha", scaled_down: bool = True):
    """PixArt-XL-2's config (α 1024-MS with micro-conditioning, or Σ without), or a tiny one
    (2 blocks, 144 wide = 2 heads of PixArt's 72) taking the tiny T5's tokens."""
    from .models.pixart import PixArtConfig

    if variant not in ("alpha", "sigma"):
        raise ValueError(f"PixArt variant must be 'alpha' or 'sigma', got {variant!r}")
    micro = variant == "alpha"
    if not scaled_down:
        return PixArtConfig(micro_condition=micro, pe_interpolation=2.0 if micro else None)
    return PixArtConfig(depth=2, hidden_size=144, num_heads=2, caption_channels=T5_TINY_WIDTH, micro_condition=micro,
                        pe_interpolation=1.0 if micro else None)


def write_pixart(path, variant: str = "alpha", layout: str = "original", seed: int = 0, dtype=torch.float16,
                 scaled_down: bool = True) -> Path:
    """A random PixArt transformer. layout "original": PixArt's own names as its released files
    have them (PixArt-XL-2-1024-MS.pth: α with the training size's `pos_embed` table, here 64 x
    64 latent pixels (interpolation 1) when scaled down, and the dropped-caption
    `y_embedder.y_embedding`; Σ without the table); "diffusers": PixArtTransformer2DModel's names
    (q, k, v split), as its diffusion_pytorch_model.safetensors holds them."""
    from .models.diffusers_names import PIXART_BLOCK, PIXART_TOP
    from .models.pixart import PixArt, position_embedding

    if layout not in ("original", "diffusers"):
        raise ValueError(f"PixArt layout must be 'original' or 'diffusers', got {layout!r}")
    cfg = pixart_config(variant, scaled_down)
    with torch.device("meta"):
        shapes = _module_shapes(PixArt(cfg))
    state = random_state(shapes, seed, torch.float32)
    if layout == "diffusers":
        state = _split_to_diffusers(state, PIXART_TOP, {"transformer_blocks": ("blocks", PIXART_BLOCK)},
                                    cfg.hidden_size)
        state = {"scale_shift_table" if k == "final_layer.scale_shift_table" else
                 k.replace("blocks.", "transformer_blocks.", 1) if k.startswith("blocks.") else k: v
                 for k, v in state.items()}
    else:
        state["y_embedder.y_embedding"] = torch.randn(120, cfg.caption_channels,
                                                      generator=torch.Generator().manual_seed(seed))
        if cfg.micro_condition:
            side = (64 if scaled_down else 128) // cfg.patch_size
            state["pos_embed"] = position_embedding(cfg.hidden_size, side, side, side, cfg.pe_interpolation)[None]
    save_file({k: v.to(dtype).contiguous() for k, v in state.items()}, str(path))
    return Path(path)


SVD_EMBED = 32  # the scaled-down CLIP vision model's projection width: the video UNet's context


def svd_unet_config(adm_in_channels: int = 768):
    """adm_in_channels: 768 SVD, 256 SV3D_u, 1280 SV3D_p."""
    from .models.svd import SVDConfig

    return SVDConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(True, False),
                     context_dim=SVD_EMBED, adm_in_channels=adm_in_channels)


def write_svd_checkpoint(path, seed: int = 0, dtype=torch.float16, adm_in_channels: int = 768,
                         temporal_vae: bool = True) -> Path:
    """A random Stable Video Diffusion checkpoint in Stability's layout (svd.safetensors): the
    scaled-down spatio-temporal UNet under model.diffusion_model., the temporal-decoder VAE (no
    quant convs) under first_stage_model., the CLIP vision model (OpenCLIP layout) under
    conditioner.embedders.0.open_clip.model.visual. adm_in_channels 256 / 1280 make it SV3D_u /
    SV3D_p (sv3d_u.safetensors, sv3d_p.safetensors); temporal_vae False ships the image VAE."""
    from dataclasses import replace

    from .models.checkpoint import SVD_IMAGE_ENCODER
    from .models.svd import SVDUNet
    from .models.vae import AutoencoderKL
    from .models.video_vae import AutoencoderKLTemporal

    with torch.device("meta"):
        unet = _module_shapes(SVDUNet(svd_unet_config(adm_in_channels)))
        vae_class = AutoencoderKLTemporal if temporal_vae else AutoencoderKL
        vae = _module_shapes(vae_class(replace(vae_config(), use_quant_conv=False)))
    tensors = {UNET_PREFIX + k: v for k, v in random_state(unet, seed, dtype).items()}
    tensors.update({VAE_PREFIX + k: v for k, v in random_state(vae, seed + 1, dtype).items()})
    tensors.update({SVD_IMAGE_ENCODER + k: v
                    for k, v in clip_vision_state("clip", seed + 3, dtype, "openclip", SVD_EMBED).items()})
    path = Path(path)
    save_file(tensors, str(path))
    return path


# -- Wan 2.1: UMT5-XXL with its SentencePiece model inside, the transformer -----------------------

UMT5_TINY_WIDTH = 32
_WORDS = ("a red fox runs through fresh snow under the pale winter sky while birds sing softly in old "
          "trees near a quiet river where children play with small boats and dogs bark at passing cars "
          "on the long road to the city of lights music dance night ocean waves mountain forest cat").split()


def spiece_model(vocab_size: int = 160, gemma: bool = False) -> bytes:
    """A tiny SentencePiece (unigram) model trained on a few hundred generated sentences, with
    UMT5's special ids: <pad> 0, </s> 1, <unk> 2, no <s>; gemma: Gemma's <pad> 0, <eos> 1,
    <bos> 2, <unk> 3."""
    return _spiece_model(vocab_size, gemma)


@functools.lru_cache(maxsize=4)
def _spiece_model(vocab_size: int, gemma: bool = False) -> bytes:
    import io
    import random

    import sentencepiece

    rng = random.Random(0)
    sentences = [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 12))) for _ in range(400)]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        pad_id=0, eos_id=1, **(dict(bos_id=2, unk_id=3) if gemma else dict(unk_id=2, bos_id=-1)),
        hard_vocab_limit=False, minloglevel=2)
    return model.getvalue()


def umt5_config(vocab_size: int, scaled_down: bool = True):
    """UMT5-XXL's encoder (Wan 2.1's text encoder), or a tiny one."""
    from transformers import UMT5Config

    if scaled_down:
        return UMT5Config(vocab_size=vocab_size, d_model=UMT5_TINY_WIDTH, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                          feed_forward_proj="gated-gelu", is_encoder_decoder=False, tie_word_embeddings=False)
    return UMT5Config(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                      feed_forward_proj="gated-gelu", is_encoder_decoder=False, tie_word_embeddings=False)


def umt5_state(seed: int = 2, vocab: int | None = None) -> dict[str, torch.Tensor]:
    """A random tiny UMT5 encoder in transformers' / ComfyUI's names (shared.weight, encoder.block.N...), its
    embedding as large as the tiny SentencePiece model or `vocab`."""
    from sentencepiece import SentencePieceProcessor
    from transformers import UMT5EncoderModel

    vocab = vocab or SentencePieceProcessor(model_proto=spiece_model()).get_piece_size()
    with torch.device("meta"):
        shapes = _module_shapes(UMT5EncoderModel(umt5_config(vocab)))
    shapes.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight
    return random_state(shapes, seed, torch.float32)


def write_umt5(path, seed: int = 2, dtype=torch.float16, tokenizer: bool = True) -> Path:
    """A tiny umt5_xxl_fp16.safetensors as Comfy-Org ships it: transformers' UMT5EncoderModel names
    and the SentencePiece model's bytes as the uint8 tensor spiece_model (tokenizer=False: without)."""
    state = {k: v.to(dtype) for k, v in umt5_state(seed).items()}
    if tokenizer:
        state["spiece_model"] = torch.frombuffer(bytearray(spiece_model()), dtype=torch.uint8)
    save_file(state, str(path))
    return Path(path)


def wan_config(scaled_down: bool = True, i2v: bool = False, depth: int = 2, in_channels: int | None = None,
               vace: bool = False, ti2v: bool = False, ref_in_channels: int = 0, camera: bool = False):
    """Wan 2.1 T2V 1.3B's transformer config (I2V: 14B 480p's), or a tiny one taking the tiny
    UMT5's tokens (two 128-channel heads: the head width ComfyUI assumes). in_channels: another
    input width (Fun Control's 48). vace: Wan2.1 VACE 1.3B's (15 VACE blocks, every other block),
    tiny: 4 blocks, 2 VACE blocks. ti2v: Wan 2.2 TI2V 5B's (48 latent channels in and out).
    ref_in_channels: a ref_conv of that input (Wan 2.2 Fun Control's reference image). camera: Wan2.1 Fun
    V1.1 14B Control-Camera's (I2V with CLIP vision, 32 input channels: noise + start-image latent, a
    control_adapter for 24 Plücker channels), tiny likewise."""
    from dataclasses import replace

    from .models.configs import WanConfig

    if camera:
        return replace(wan_config(scaled_down, True, depth, in_channels or 32, vace, ti2v, ref_in_channels),
                       camera_in_channels=24)
    if ref_in_channels:
        return replace(wan_config(scaled_down, i2v, depth, in_channels, vace, ti2v), ref_in_channels=ref_in_channels)
    if ti2v:
        return WanConfig(in_channels=48, out_channels=48, dim=3072, ffn_dim=14336, num_heads=24, depth=30) \
            if not scaled_down else WanConfig(in_channels=48, out_channels=48, dim=256, ffn_dim=96, num_heads=2,
                                              depth=depth, text_dim=UMT5_TINY_WIDTH)

    if not scaled_down:
        cfg = WanConfig(in_channels=36, image_dim=1280) if i2v else WanConfig(dim=1536, ffn_dim=8960, num_heads=12,
                                                                                depth=30)
    else:
        cfg = WanConfig(in_channels=36 if i2v else 16, dim=256, ffn_dim=96, num_heads=2, depth=depth,
                        text_dim=UMT5_TINY_WIDTH, image_dim=64 if i2v else 0)
    if vace:
        cfg = replace(cfg, vace_layers=15, vace_in_channels=96) if not scaled_down else replace(
            cfg, depth=4, vace_layers=2, vace_in_channels=96)
    return cfg if in_channels is None else replace(cfg, in_channels=in_channels)


def wan_state(scaled_down: bool = True, seed: int = 0, i2v: bool = False, depth: int = 2,
              in_channels: int | None = None, vace: bool = False, ti2v: bool = False,
              ref_in_channels: int = 0, camera: bool = False) -> dict[str, torch.Tensor]:
    """A random Wan 2.1 (ti2v: Wan 2.2 TI2V 5B) transformer in the original names (float32)."""
    from .models.wan import Wan

    with torch.device("meta"):
        shapes = _module_shapes(Wan(wan_config(scaled_down, i2v, depth, in_channels, vace, ti2v, ref_in_channels,
                                               camera)))
    return random_state(shapes, seed, torch.float32)


def write_wan(path, seed: int = 0, dtype=torch.float16, i2v: bool = False, prefixed: bool = False,
              depth: int = 2, in_channels: int | None = None, vace: bool = False, ti2v: bool = False,
              ref_in_channels: int = 0, camera: bool = False) -> Path:
    """A random Wan 2.1 diffusion model in the original layout, bare as wan2.1_t2v_1.3B_fp16.safetensors
    (prefixed: under model.diffusion_model., as ComfyUI saves checkpoints); ti2v: Wan 2.2 TI2V 5B's
    (wan2.2_ti2v_5B_fp16.safetensors); camera: a Fun Control-Camera model's
    (Wan2.1-Fun-V1.1-14B-Control-Camera: I2V, 32 input channels, control_adapter.*)."""
    state = wan_state(True, seed, i2v, depth, in_channels, vace, ti2v, ref_in_channels, camera)
    prefix = UNET_PREFIX if prefixed else ""
    save_file({prefix + k: v.to(dtype) for k, v in state.items()}, str(path))
    return Path(path)


def wan_animate_config(scaled_down: bool = True):
    """Wan 2.2 Animate 14B's transformer config (Wan2_2-Animate-14B: the 14B I2V's, 8 face adapter
    blocks, the motion encoder for 512x512 faces), or a tiny one: 10 blocks (2 face adapter blocks),
    the same 512x512 motion encoder 4-8 channels wide, a 64-wide style / motion space and a 32-wide face
    encoder."""
    from dataclasses import replace

    if not scaled_down:
        return replace(wan_config(False, i2v=True), face_adapter_layers=8,
                       motion_channels=(32, 64, 128, 256, 512, 512, 512, 512))
    return replace(wan_config(i2v=True, depth=10), face_adapter_layers=2, motion_channels=(4, 8, 8, 8, 8, 8, 8, 8),
                   motion_style_dim=64, face_hidden_dim=32)


def wan_animate_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random tiny Wan 2.2 Animate transformer in the original names (float32). The motion encoder's
    equalised weights are drawn unit-variance (they are scaled by 1/sqrt(fan-in) when used) and its blur
    kernels hold the fixed [1, 3, 3, 1] filter, as the released file's do."""
    from .models.wan import Wan

    with torch.device("meta"):
        shapes = _module_shapes(Wan(wan_animate_config()))
    state = random_state(shapes, seed, torch.float32)
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    for k, v in state.items():
        if k.startswith("motion_encoder.") and k.endswith(".kernel"):
            state[k] = torch.outer(taps, taps) / taps.sum() ** 2
        elif k.startswith("motion_encoder.") and k.endswith(".weight") and "direction" not in k:
            state[k] = v * math.prod(v.shape[1:]) ** 0.5
    return state


def write_wan_animate(path, seed: int = 0, dtype=torch.float16) -> Path:
    """A random tiny Wan 2.2 Animate diffusion model in the original layout, bare as
    Wan2_2-Animate-14B_fp16.safetensors (ComfyUI's WAN22_Animate: pose_patch_embedding, motion_encoder,
    face_encoder, face_adapter)."""
    save_file({k: v.to(dtype) for k, v in wan_animate_state(seed).items()}, str(path))
    return Path(path)


def wan_vae_config(scaled_down: bool = True, wan22: bool = False):
    """Wan 2.1's VAE config (wan_2.1_vae: base 96 channels), or a tiny one (8; the real stages,
    16 latent channels, 4x frames and 8x pixels). wan22: the Wan 2.2 VAE's (wan2.2_vae: 160 /
    256 decoder, 48 latent channels, 16x pixels), tiny 8 / 12."""
    from .models.wan_vae import WanVAEConfig

    if wan22:
        return WanVAEConfig(dim=8 if scaled_down else 160, decoder_dim=12 if scaled_down else 256, z_dim=48,
                            is_residual=True, patch_size=2)
    return WanVAEConfig(dim=8) if scaled_down else WanVAEConfig()


def write_wan_vae(path, seed: int = 1, dtype=torch.float16, scaled_down: bool = True, wan22: bool = False) -> Path:
    """A random Wan 2.1 VAE in Wan's original single-file layout, as ComfyUI ships
    wan_2.1_vae.safetensors (encoder.*, conv1, conv2, decoder.*; RMS-norm gains near 1); wan22:
    the Wan 2.2 VAE's (wan2.2_vae.safetensors)."""
    from .models.wan_vae import WanVideoVAE

    with torch.device("meta"):
        shapes = _module_shapes(WanVideoVAE(wan_vae_config(scaled_down, wan22)))
    state = random_state(shapes, seed, torch.float32)
    generator = torch.Generator().manual_seed(seed + 1)
    for k in [k for k in state if k.endswith("gamma")]:
        state[k] = 1.0 + 0.1 * torch.randn(state[k].shape, generator=generator)
    save_file({k: v.to(dtype) for k, v in state.items()}, str(path))
    return Path(path)


def cosmos_vae_config(scaled_down: bool = True, attention_levels: tuple = ()):
    """Cosmos 1.0's CV8x8x8 tokenizer config (ComfyUI's: 128 channels x (2, 4, 4), 2 blocks, 4x4x4
    Haar patches), or a tiny one (8 channels, 1 block; the real stages: 16 latent channels, 8x
    frames and pixels). attention_levels: levels whose blocks carry attention too (none in the release)."""
    from .models.cosmos_vae import CosmosVAEConfig

    return CosmosVAEConfig(channels=8, num_res_blocks=1, attention_levels=attention_levels) if scaled_down else \
        CosmosVAEConfig(attention_levels=attention_levels)


def cosmos_vae_state(scaled_down: bool = True, seed: int = 1, attention_levels: tuple = ()) -> dict[str, torch.Tensor]:
    """A random Cosmos 1.0 tokenizer in NVIDIA's keys (float32), with ComfyUI's file's Haar wavelet
    buffers and a latent_mean / latent_std away from 0 / 1."""
    from .models.cosmos_vae import CosmosVideoVAE

    with torch.device("meta"):
        shapes = _module_shapes(CosmosVideoVAE(cosmos_vae_config(scaled_down, attention_levels)))
    state = random_state(shapes, seed, torch.float32)
    generator = torch.Generator().manual_seed(seed + 1)
    n = shapes["latent_mean"][0]
    state["latent_mean"] = 0.1 * torch.randn(n, generator=generator)
    state["latent_std"] = 0.5 + torch.rand(n, generator=generator)
    for part in ("encoder.patcher3d.", "decoder.unpatcher3d."):  # constants ComfyUI's file carries
        state[part + "wavelets"] = torch.full((2,), 0.5 ** 0.5)
        state[part + "_arange"] = torch.arange(2)
    return state


def write_cosmos_vae(path, seed: int = 1, dtype=torch.float16, scaled_down: bool = True,
                     attention_levels: tuple = ()) -> Path:
    """A random Cosmos 1.0 CV8x8x8 tokenizer as ComfyUI ships cosmos_cv8x8x8_1.0.safetensors
    (encoder.*, quant_conv, post_quant_conv, decoder.*, latent_mean, latent_std, the wavelet buffers)."""
    state = cosmos_vae_state(scaled_down, seed, attention_levels)
    save_file({k: v if k.endswith("_arange") else v.to(dtype) for k, v in state.items()}, str(path))
    return Path(path)


def old_t5_config(scaled_down: bool = True):
    """ComfyUI's "old" T5-XXL (oldt5_xxl, T5 v1.0 as t5-11b: ReLU feed-forward, d_model 1024,
    128 heads of 128, d_ff 65536), Cosmos' text encoder, or a tiny one with its vocabulary."""
    from transformers import T5Config

    size = dict(d_model=48, d_kv=12, d_ff=96, num_layers=2, num_heads=4) if scaled_down else \
        dict(d_model=1024, d_kv=128, d_ff=65536, num_layers=24, num_heads=128)
    return T5Config(vocab_size=32128, feed_forward_proj="relu", is_encoder_decoder=False, use_cache=False, **size)


def write_old_t5(path, seed: int = 2, dtype=torch.float16, scaled_down: bool = True) -> Path:
    """A random old T5-XXL encoder in transformers' T5EncoderModel keys (DenseReluDense.wi / wo)."""
    from transformers import T5EncoderModel

    with torch.device("meta"):
        shapes = _module_shapes(T5EncoderModel(old_t5_config(scaled_down)))
    shapes.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight
    save_file({k: v.to(dtype) for k, v in random_state(shapes, seed, torch.float32).items()}, str(path))
    return Path(path)


def cosmos_config(scaled_down: bool = True, video2world: bool = False):
    """Cosmos-Predict2 2B (text-to-image, or video2world's 17 input channels), or a tiny one
    taking the tiny old T5's tokens (RoPE ratios as ComfyUI gives that file)."""
    from .models.cosmos import CosmosConfig, rope_extrapolation

    in_channels = 17 if video2world else 16
    if not scaled_down:
        return CosmosConfig(in_channels=in_channels, rope_extrapolation=rope_extrapolation(in_channels, 2048))
    return CosmosConfig(in_channels=in_channels, model_channels=48, num_blocks=2, num_heads=2,
                        crossattn_emb_channels=old_t5_config().d_model, adaln_lora_dim=8,
                        rope_extrapolation=rope_extrapolation(in_channels, 48))


def write_cosmos(path, seed: int = 0, dtype=torch.float16, scaled_down: bool = True, prefix: str = "",
                 video2world: bool = False) -> Path:
    """A random Cosmos-Predict2 network in NVIDIA's layout: bare, under ComfyUI's
    model.diffusion_model. or NVIDIA's net. (`prefix`)."""
    from .models.cosmos import CosmosPredict2

    with torch.device("meta"):
        shapes = _module_shapes(CosmosPredict2(cosmos_config(scaled_down, video2world)))
    state = random_state(shapes, seed, torch.float32)
    save_file({prefix + k: v.to(dtype) for k, v in state.items()}, str(path))
    return Path(path)


def cosmos1_config(scaled_down: bool = True, video2world: bool = False, size: str = "7B"):
    """Cosmos 1.0 Text2World / Video2World 7B or 14B as ComfyUI builds them, or a tiny one taking
    the tiny old T5's tokens (the ratios ComfyUI gives a width that is not 7B's: the 14B's)."""
    from .models.cosmos import Cosmos1Config

    in_channels = 17 if video2world else 16
    if not scaled_down:
        big = size == "14B"
        return Cosmos1Config(in_channels=in_channels, model_channels=5120 if big else 4096,
                             num_blocks=36 if big else 28, num_heads=40 if big else 32,
                             rope_extrapolation=(2.0, 2.0, 2.0) if big else (1.0, 1.0, 2.0))
    return Cosmos1Config(in_channels=in_channels, model_channels=48, num_blocks=2, num_heads=2,
                         crossattn_emb_channels=old_t5_config().d_model, adaln_lora_dim=8,
                         rope_extrapolation=(2.0, 2.0, 2.0), positions=(6, 8, 10))


def write_cosmos1(path, seed: int = 0, dtype=torch.float16, scaled_down: bool = True, prefix: str = "",
                  video2world: bool = False, size: str = "7B") -> Path:
    """A random Cosmos 1.0 network in NVIDIA's first layout (blocks.blockN.blocks.M...): bare, under
    ComfyUI's model.diffusion_model. or NVIDIA's net. (`prefix`)."""
    from .models.cosmos import Cosmos1

    with torch.device("meta"):
        shapes = _module_shapes(Cosmos1(cosmos1_config(scaled_down, video2world, size)))
    state = random_state(shapes, seed, torch.float32)
    save_file({prefix + k: v.to(dtype) for k, v in state.items()}, str(path))
    return Path(path)


# -- Lumina Image 2.0: Gemma-2 2B, the NextDiT transformer ----------------------------------------

GEMMA_TINY_WIDTH = 64


def gemma2_config(scaled_down: bool = True, vocab_size: int = 300):
    """Gemma-2 2B (Lumina 2's text encoder), or a tiny one with ComfyUI's 256-wide heads."""
    from .models.gemma2 import Gemma2Config

    if not scaled_down:
        return Gemma2Config()
    return Gemma2Config(vocab_size=vocab_size, hidden_size=GEMMA_TINY_WIDTH, intermediate_size=96, num_layers=3,
                        num_heads=2, num_kv_heads=1)


def gemma2_state(seed: int = 2, scaled_down: bool = True, vocab_size: int | None = None) -> dict[str, torch.Tensor]:
    """A random Gemma-2 in Comfy-Org's gemma_2_2b names (model.embed_tokens, model.layers.N...),
    float32; its vocabulary the tiny Gemma SentencePiece model's unless given."""
    from sentencepiece import SentencePieceProcessor

    from .models.gemma2 import Gemma2

    if vocab_size is None:
        vocab_size = SentencePieceProcessor(model_proto=spiece_model(gemma=True)).get_piece_size()
    with torch.device("meta"):
        shapes = _module_shapes(Gemma2(gemma2_config(scaled_down, vocab_size)))
    return random_state(shapes, seed, torch.float32)


def write_gemma2(path, seed: int = 2, dtype=torch.float16, tokenizer: bool = True, prefix: str = "") -> Path:
    """A tiny gemma_2_2b_fp16.safetensors as Comfy-Org ships it: model.* weights and the
    SentencePiece model's bytes as the uint8 tensor spiece_model (tokenizer=False: without)."""
    state = {prefix + k: v.to(dtype) for k, v in gemma2_state(seed).items()}
    if tokenizer:
        state["spiece_model"] = torch.frombuffer(bytearray(spiece_model(gemma=True)), dtype=torch.uint8)
    save_file(state, str(path))
    return Path(path)


def lumina2_config(scaled_down: bool = True):
    """Lumina-Image-2.0's NextDiT, or a tiny one taking the tiny Gemma's states (24-wide heads:
    rotary axes 8, 8, 8)."""
    from .models.lumina2 import Lumina2Config

    if not scaled_down:
        return Lumina2Config()
    return Lumina2Config(dim=48, num_layers=2, num_refiner_layers=2, num_heads=2, num_kv_heads=1, ffn_dim=192,
                         cap_feat_dim=GEMMA_TINY_WIDTH, axes_dims=(8, 8, 8))


def lumina2_state(seed: int = 0, scaled_down: bool = True) -> dict[str, torch.Tensor]:
    from .models.lumina2 import Lumina2

    with torch.device("meta"):
        shapes = _module_shapes(Lumina2(lumina2_config(scaled_down)))
    return random_state(shapes, seed, torch.float32)


def write_lumina2(path, seed: int = 0, dtype=torch.float16, scaled_down: bool = True, prefixed: bool = False) -> Path:
    """A random Lumina 2 diffusion model in the original / ComfyUI layout, bare as
    lumina_2_model_bf16.safetensors or, prefixed, under ComfyUI's model.diffusion_model."""
    prefix = UNET_PREFIX if prefixed else ""
    save_file({prefix + k: v.to(dtype) for k, v in lumina2_state(seed, scaled_down).items()}, str(path))
    return Path(path)


# -- Qwen-Image (helper qwen-model) --------------------------------------------------------------

# the tiny transformer's text width: the tiny Qwen2.5-VL's hidden size (QWEN_TINY_WIDTH of the text encoder's writer)
QWEN_IMAGE_TINY_JOINT_DIM = 128


def qwen_image_config(scaled_down: bool = True, joint_attention_dim: int = QWEN_IMAGE_TINY_JOINT_DIM):
    """Qwen-Image's MM-DiT (60 blocks, 24 heads of 128), or a tiny one: 2 blocks, 2 heads of 32
    (rotary axes 4, 14, 14), the real 2x2 patches of 16 channels, text states joint_attention_dim wide."""
    from .models.qwen_image import QwenImageConfig

    if not scaled_down:
        return QwenImageConfig()
    return QwenImageConfig(num_layers=2, num_heads=2, head_dim=32, joint_attention_dim=joint_attention_dim,
                           axes_dims=(4, 14, 14))


def qwen_image_state(seed: int = 0, scaled_down: bool = True,
                     joint_attention_dim: int = QWEN_IMAGE_TINY_JOINT_DIM) -> dict[str, torch.Tensor]:
    from .models.qwen_image import QwenImage

    with torch.device("meta"):
        shapes = _module_shapes(QwenImage(qwen_image_config(scaled_down, joint_attention_dim)))
    return random_state(shapes, seed, torch.float32)


def write_qwen_image(path, seed: int = 0, dtype=torch.float16, scaled_down: bool = True, prefixed: bool = False,
                     joint_attention_dim: int = QWEN_IMAGE_TINY_JOINT_DIM) -> Path:
    """A random Qwen-Image diffusion model in ComfyUI's layout, bare as qwen_image_bf16.safetensors /
    qwen_image_fp8_e4m3fn.safetensors or, prefixed, under ComfyUI's model.diffusion_model. Its VAE
    is a Wan 2.1 VAE: write_wan_vae (as qwen_image_vae.safetensors)."""
    prefix = UNET_PREFIX if prefixed else ""
    state = qwen_image_state(seed, scaled_down, joint_attention_dim)
    save_file({prefix + k: v.to(dtype) for k, v in state.items()}, str(path))
    return Path(path)


# -- Qwen-Image's text encoder: Qwen2.5-VL 7B's language model ------------------------------------

QWEN_TINY_WIDTH = 128  # one head of ComfyUI's fixed 128 channels
QWEN_VOCAB = 151936  # Qwen2.5's embedding rows (the 7B pads to 152064): past every token Qwen's tokenizer gives


def qwen25vl_config(scaled_down: bool = True, vocab_size: int = QWEN_VOCAB, num_heads: int = 1,
                    num_kv_heads: int = 1):
    """Qwen2.5-VL 7B's language model (Qwen-Image's text encoder), or a tiny one: 2 layers of
    `num_heads` 128-wide heads (width 128 x num_heads), the vocabulary Qwen's tokenizer needs."""
    from .models.qwen25vl import Qwen25VLConfig

    if not scaled_down:
        return Qwen25VLConfig()
    return Qwen25VLConfig(vocab_size=vocab_size, hidden_size=128 * num_heads, intermediate_size=96, num_layers=2,
                          num_heads=num_heads, num_kv_heads=num_kv_heads)


def qwen_vision_config(scaled_down: bool = True, out_hidden_size: int = QWEN_TINY_WIDTH):
    """Qwen2.5-VL 7B's vision tower, or a tiny one: one 80-wide head, 8 blocks (the 8th attends
    over the whole picture, as the 7B's every 8th), tokens as wide as the tiny language model's."""
    from .models.qwen25vl import VisionConfig

    if not scaled_down:
        return VisionConfig()
    return VisionConfig(hidden_size=80, intermediate_size=64, num_layers=8, num_heads=1,
                        out_hidden_size=out_hidden_size)


def qwen25vl_state(seed: int = 3, config=None, vision=None) -> dict[str, torch.Tensor]:
    """A random Qwen2.5-VL in ComfyUI's names (model.embed_tokens, model.layers.N..., model.norm;
    with `vision` (a VisionConfig) its vision tower's visual.*), float32; the tiny
    qwen25vl_config unless given."""
    from .models.qwen25vl import Qwen25VL

    with torch.device("meta"):
        shapes = _module_shapes(Qwen25VL(config or qwen25vl_config(), vision))
    return random_state(shapes, seed, torch.float32)


def write_qwen25vl(path, seed: int = 3, dtype=torch.float32, vision: bool = True, lm_head: bool = False,
                   layers: int | None = None) -> Path:
    """A tiny qwen_2.5_vl_7b.safetensors as ComfyUI ships it: the language model's model.* weights
    (`layers` of them, the tiny config's when None) and its vision tower's visual.* (vision=False:
    without) and, with lm_head, a head as some saves keep (`lm_head.weight`). ComfyUI's fp8 file:
    write_scaled_fp8 on this one with prefixes=("model.",)."""
    from dataclasses import replace

    config = None if layers is None else replace(qwen25vl_config(), num_layers=layers)
    state = {k: v.to(dtype) for k, v in qwen25vl_state(seed, config,
                                                       qwen_vision_config() if vision else None).items()}
    if lm_head:
        state["lm_head.weight"] = random_state({"w": state["model.embed_tokens.weight"].shape}, seed + 1,
                                               torch.float32)["w"].to(dtype)
    save_file(state, str(path))
    return Path(path)


# -- HunyuanVideo's text encoder: LLaVA-Llama-3 8B's language model (with CLIP-L) -----------------

LLAMA_TINY_WIDTH = 128  # the tiny LLaVA-Llama-3's hidden size: the tiny HunyuanVideo's text_states_dim
LLAMA_TINY_POOLED = 64  # the tiny CLIP-L's (write_text_encoder(path, "clip_l")): its text_states_dim_2


def llava_llama3_config(scaled_down: bool = True):
    """LLaVA-Llama-3 8B's language model, or a tiny one: 4 layers (layer -3 has one after it),
    2 query heads sharing 1 key/value head of ComfyUI's fixed 128 channels, width 128, LLaVA's
    128,320-row vocabulary (every id the tokenizer gives, <pad> 128258 included)."""
    from .models.llama import LlamaConfig

    if not scaled_down:
        return LlamaConfig()
    return LlamaConfig(hidden_size=LLAMA_TINY_WIDTH, intermediate_size=96, num_layers=4, num_heads=2, num_kv_heads=1)


def llava_llama3_state(seed: int = 4, config=None) -> dict[str, torch.Tensor]:
    """A random LLaVA-Llama-3 language model in ComfyUI's names (model.embed_tokens,
    model.layers.N..., model.norm), float32; the tiny llava_llama3_config unless given."""
    from .models.llama import Llama

    with torch.device("meta"):
        shapes = _module_shapes(Llama(config or llava_llama3_config()))
    return random_state(shapes, seed, torch.float32)


def write_llava_llama3(path, seed: int = 4, dtype=torch.float16, lm_head: bool = False) -> Path:
    """A tiny llava_llama3_fp16.safetensors as ComfyUI ships it: the language model's model.*
    weights (with lm_head, a head as transformers' saves keep: `lm_head.weight`, left unread).
    ComfyUI's llava_llama3_fp8_scaled: write_scaled_fp8 on this one with prefixes=("model.",).
    DualCLIPLoader type hunyuan_video takes it with write_text_encoder(path, "clip_l")."""
    state = {k: v.to(dtype) for k, v in llava_llama3_state(seed).items()}
    if lm_head:
        state["lm_head.weight"] = random_state({"w": state["model.embed_tokens.weight"].shape}, seed + 1,
                                               torch.float32)["w"].to(dtype)
    save_file(state, str(path))
    return Path(path)


# -- Qwen-Image ControlNets (helper qwen-control) ------------------------------------------------

def write_qwen_image_controlnet(path, seed: int = 0, dtype=torch.float16, layers: int = 1, inpainting: bool = False,
                                scaled_down: bool = True, joint_attention_dim: int = QWEN_IMAGE_TINY_JOINT_DIM) -> Path:
    """A random InstantX Qwen-Image ControlNet in diffusers' layout, as ComfyUI's ControlNetLoader reads
    InstantX's Qwen-Image-ControlNet-Union (5 blocks; tiny: `layers` of write_qwen_image's width):
    Qwen-Image's names (no final layer) plus controlnet_blocks.{i} and controlnet_x_embedder (64
    inputs; inpainting, as Qwen-Image-ControlNet-Inpainting: 68, the mask packed too)."""
    from dataclasses import replace

    from .models.qwen_image_controlnet import QwenImageControlNet, QwenImageControlNetConfig

    model = replace(qwen_image_config(scaled_down, joint_attention_dim), num_layers=layers)
    config = QwenImageControlNetConfig(model=model, hint_channels=model.in_channels + 4 * inpainting)
    with torch.device("meta"):
        shapes = _module_shapes(QwenImageControlNet(config))
    save_file({k: v.to(dtype) for k, v in random_state(shapes, seed, torch.float32).items()}, str(path))
    return Path(path)


def write_qwen_diffsynth_controlnet(path, seed: int = 0, dtype=torch.bfloat16, inpaint: bool = False,
                                    scaled_down: bool = True) -> Path:
    """A random DiffSynth block-wise ControlNet for Qwen-Image as ComfyUI ships it in
    models/model_patches/ (qwen_image_canny_diffsynth_controlnet.safetensors; inpaint: the
    _inpaint_ one, img_in taking 68 features): img_in, controlnet_blocks.{i}.{x_rms, y_rms,
    input_proj, output_proj}, one block per Qwen-Image block (60 of 3072; tiny: write_qwen_image's).
    The RMS-norm gains are near 1."""
    from .models.qwen_image_diffsynth import DiffSynthControlNet, DiffSynthControlNetConfig

    model = qwen_image_config(scaled_down)
    config = DiffSynthControlNetConfig(num_layers=model.num_layers, dim=model.dim, extra_channels=4 * inpaint)
    with torch.device("meta"):
        shapes = _module_shapes(DiffSynthControlNet(config))
    state = random_state(shapes, seed, torch.float32)
    generator = torch.Generator().manual_seed(seed + 1)
    for k in [k for k in state if k.endswith("_rms.weight")]:
        state[k] = 1.0 + 0.1 * torch.randn(state[k].shape, generator=generator)
    save_file({k: v.to(dtype) for k, v in state.items()}, str(path))
    return Path(path)


def write_llava_llama3_vision(path, seed: int = 5, dtype=torch.float16, out_width: int = LLAMA_TINY_WIDTH) -> Path:
    """A tiny llava_llama3_vision.safetensors (CLIPVisionLoader; HunyuanVideo image-to-video): the
    scaled-down CLIP ViT of clip_vision_config (16 patches of 14 pixels at 56, no visual
    projection, as LLaVA's tower) in transformers' vision_model.* names, with LLaVA's projector
    multi_modal_projector.linear_1 / linear_2 to `out_width` (the tiny LLaVA-Llama-3's)."""
    from .models.clip_vision import CLIPVisionModel

    config = clip_vision_config(projection_dim=0)
    config.projector_dim = out_width
    with torch.device("meta"):
        shapes = _module_shapes(CLIPVisionModel(config))
    save_file({k: v.to(dtype) for k, v in random_state(shapes, seed, torch.float32).items()}, str(path))
    return Path(path)


# -- HiDream-I1 (helper hidream-model) -----------------------------------------------------------

HIDREAM_TINY_T5_DIM = T5_TINY_WIDTH  # the tiny T5-XXL's width (t5_config)
HIDREAM_TINY_LLAMA_DIM = 128  # the tiny Llama's hidden size (the text side's tiny Llama 3)
HIDREAM_TINY_POOLED_DIM = TEXT_TINY["clip_l"][0] + TEXT_TINY["clip_g"][0]  # tiny CLIP-L pooled + CLIP-G projected
HIDREAM_TINY_BLOCKS = (2, 2)  # double, single: block i reads Llama layer i, so 4 Llama layers are needed


def hidream_config(scaled_down: bool = True, t5_dim: int = HIDREAM_TINY_T5_DIM,
                   llama_dim: int = HIDREAM_TINY_LLAMA_DIM, pooled_dim: int = HIDREAM_TINY_POOLED_DIM):
    """HiDream-I1's transformer (16 + 32 blocks, 20 heads of 128), or a tiny one: 2 double + 2
    single blocks, 2 heads of 32 (rotary axes 16, 8, 8), 4 routed experts (top 2) of SwiGLU width
    256 (HiDream's rounding of 4 x 64), the real 2x2 patches of 16 channels; text widths as given
    (T5 states, Llama per-layer states, pooled CLIP-L + CLIP-G); it reads Llama layers 0 .. 3."""
    from .models.configs import HiDreamConfig, swiglu_hidden

    if not scaled_down:
        return HiDreamConfig()
    double, single = HIDREAM_TINY_BLOCKS
    return HiDreamConfig(num_layers=double, num_single_layers=single, num_heads=2, head_dim=32, t5_dim=t5_dim,
                         llama_dim=llama_dim, text_emb_dim=pooled_dim, expert_hidden=swiglu_hidden(64, 256),
                         shared_hidden=swiglu_hidden(64, 128), axes_dims=(16, 8, 8),
                         llama_layers=tuple(range(double + single)))


def hidream_state(seed: int = 0, scaled_down: bool = True, **widths) -> dict[str, torch.Tensor]:
    """Random weights (float32) for hidream_config(scaled_down, **widths), in ComfyUI's names."""
    from .models.hidream import HiDream

    with torch.device("meta"):
        shapes = _module_shapes(HiDream(hidream_config(scaled_down, **widths)))
    return random_state(shapes, seed, torch.float32)


def write_hidream(path, seed: int = 0, dtype=torch.float16, scaled_down: bool = True, prefixed: bool = False,
                  **widths) -> Path:
    """A random HiDream-I1 diffusion model in ComfyUI's layout, bare as
    hidream_i1_full_fp16.safetensors / ..._dev_bf16 / ..._fast_fp8 or, prefixed, under ComfyUI's
    model.diffusion_model. (widths: t5_dim, llama_dim, pooled_dim). Its VAE is FLUX's (write_flow_vae)."""
    prefix = UNET_PREFIX if prefixed else ""
    save_file({prefix + k: v.to(dtype) for k, v in hidream_state(seed, scaled_down, **widths).items()}, str(path))
    return Path(path)


# -- HunyuanVideo 1.0: transformer and VAE (helper hyv-model) -----------------------------------

HUNYUAN_VIDEO_TINY_TEXT_DIM = 128  # the tiny transformer's text width: pass the tiny LLaVA-Llama-3's hidden size


def hunyuan_video_config(scaled_down: bool = True, context_in_dim: int = HUNYUAN_VIDEO_TINY_TEXT_DIM,
                         vec_in_dim: int = TEXT_TINY["clip_l"][0]):
    """HunyuanVideo 1.0's transformer (20 + 40 blocks, 24 heads of 128), or a tiny one: 2 double + 2
    single blocks, 2 heads of 32 (rotary axes 4, 14, 14), the 2-block token refiner, the real 1x2x2
    patches of 16 channels; text states context_in_dim wide, the pooled vector vec_in_dim wide (the
    tiny CLIP-L's)."""
    from .models.hunyuan_video import HunyuanVideoConfig

    if not scaled_down:
        return HunyuanVideoConfig()
    return HunyuanVideoConfig(hidden_size=64, num_heads=2, depth=2, depth_single_blocks=2,
                              context_in_dim=context_in_dim, vec_in_dim=vec_in_dim, axes_dim=(4, 14, 14))


def hunyuan_video_state(seed: int = 0, scaled_down: bool = True, context_in_dim: int = HUNYUAN_VIDEO_TINY_TEXT_DIM,
                        vec_in_dim: int = TEXT_TINY["clip_l"][0]) -> dict[str, torch.Tensor]:
    from .models.hunyuan_video import HunyuanVideo

    with torch.device("meta"):
        shapes = _module_shapes(HunyuanVideo(hunyuan_video_config(scaled_down, context_in_dim, vec_in_dim)))
    return random_state(shapes, seed, torch.float32)


def write_hunyuan_video(path, seed: int = 0, dtype=torch.bfloat16, scaled_down: bool = True, prefixed: bool = False,
                        context_in_dim: int = HUNYUAN_VIDEO_TINY_TEXT_DIM,
                        vec_in_dim: int = TEXT_TINY["clip_l"][0]) -> Path:
    """A random HunyuanVideo 1.0 transformer in Tencent's names, bare as ComfyUI's
    hunyuan_video_t2v_720p_bf16.safetensors or, prefixed, under ComfyUI's model.diffusion_model."""
    prefix = UNET_PREFIX if prefixed else ""
    state = hunyuan_video_state(seed, scaled_down, context_in_dim, vec_in_dim)
    save_file({prefix + k: v.to(dtype) for k, v in state.items()}, str(path))
    return Path(path)


def hunyuan_video_vae_config(scaled_down: bool = True):
    """HunyuanVideo's VAE (ch 128, ch_mult 1 2 4 4, 2 res blocks), or a tiny one: ch 32, ch_mult
    1 1 2 2, 1 res block; always 16 latent channels, 8x spatial and 4x temporal compression."""
    from .models.hunyuan_video_vae import HunyuanVideoVAEConfig

    return HunyuanVideoVAEConfig(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1) if scaled_down \
        else HunyuanVideoVAEConfig()


def hunyuan_video_vae_state(seed: int = 0, scaled_down: bool = True) -> dict[str, torch.Tensor]:
    from .models.hunyuan_video_vae import HunyuanVideoVAEModel

    with torch.device("meta"):
        shapes = _module_shapes(HunyuanVideoVAEModel(hunyuan_video_vae_config(scaled_down)))
    return random_state(shapes, seed, torch.float32)


def write_hunyuan_video_vae(path, seed: int = 0, dtype=torch.bfloat16, scaled_down: bool = True) -> Path:
    """A random HunyuanVideo VAE in ComfyUI's layout, as hunyuan_video_vae_bf16.safetensors."""
    save_file({k: v.to(dtype) for k, v in hunyuan_video_vae_state(seed, scaled_down).items()}, str(path))
    return Path(path)


# -- HiDream-I1's text encoders (helper hidream-text) ----------------------------------------------

def llama31_config(scaled_down: bool = True):
    """Llama 3.1 8B Instruct (Llama 3 8B's shape, 128,256-row vocabulary), or a tiny one: the tiny
    LLaVA-Llama-3's network (4 layers, width HIDREAM_TINY_LLAMA_DIM: every layer the tiny HiDream
    reads) with Llama 3.1's vocabulary."""
    from dataclasses import replace

    from .models.llama import LlamaConfig

    if not scaled_down:
        return LlamaConfig(vocab_size=128256)
    return replace(llava_llama3_config(), vocab_size=128256, hidden_size=HIDREAM_TINY_LLAMA_DIM)


def write_llama31(path, seed: int = 6, dtype=torch.float16, lm_head: bool = False) -> Path:
    """A tiny llama_3.1_8b_instruct_fp8_scaled.safetensors as ComfyUI ships it (before its fp8
    scaling: write_scaled_fp8 on it with prefixes=("model.",)): model.* in transformers' Llama
    names (with lm_head: `lm_head.weight`, left unread). QuadrupleCLIPLoader takes it with
    write_text_encoder's clip_l, clip_g and t5xxl, whose widths the tiny HiDream (write_hidream) reads."""
    state = {k: v.to(dtype) for k, v in llava_llama3_state(seed, llama31_config()).items()}
    if lm_head:
        state["lm_head.weight"] = random_state({"w": state["model.embed_tokens.weight"].shape}, seed + 1,
                                               torch.float32)["w"].to(dtype)
    save_file(state, str(path))
    return Path(path)


# -- HunyuanImage 2.1's text encoders (helper hyi-text) -------------------------------------------

BYT5_TINY_WIDTH = 64  # the tiny byT5's d_model: the tiny HunyuanImage's byT5 width


def byt5_config(scaled_down: bool = True):
    """byT5-small with Glyph-ByT5's vocabulary (byt5_small_glyphxl: 1510 rows, gated GELU, d_model
    1472, 12 layers, 6 heads of 64), or a tiny one: 3 layers of 4 heads of 16, the same vocabulary."""
    from transformers import T5Config

    if scaled_down:
        return T5Config(vocab_size=1510, d_model=BYT5_TINY_WIDTH, d_kv=16, d_ff=96, num_layers=3, num_heads=4,
                        feed_forward_proj="gated-gelu", is_encoder_decoder=False, tie_word_embeddings=False)
    return T5Config(vocab_size=1510, d_model=1472, d_kv=64, d_ff=3584, num_layers=12, num_heads=6,
                    feed_forward_proj="gated-gelu", is_encoder_decoder=False, tie_word_embeddings=False)


def byt5_state(seed: int = 7) -> dict[str, torch.Tensor]:
    """A random tiny byT5 encoder in transformers' / ComfyUI's names (shared.weight, encoder.block.N...)."""
    from transformers import T5EncoderModel

    with torch.device("meta"):
        shapes = _module_shapes(T5EncoderModel(byt5_config()))
    shapes.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight
    return random_state(shapes, seed, torch.float32)


def write_byt5(path, seed: int = 7, dtype=torch.float16) -> Path:
    """A tiny byt5_small_glyphxl_fp16.safetensors as Comfy-Org ships it: T5EncoderModel's names."""
    save_file({k: v.to(dtype) for k, v in byt5_state(seed).items()}, str(path))
    return Path(path)


def write_hunyuan_image_qwen(path, seed: int = 3, dtype=torch.float32) -> Path:
    """A tiny qwen_2.5_vl_7b.safetensors (no vision tower) of 4 layers, so that HunyuanImage's
    layer -3 has two after it (write_qwen25vl's has 2 layers)."""
    return write_qwen25vl(path, seed, dtype, vision=False, layers=4)


# -- HunyuanImage 2.1: transformer and VAE (helper hyi-model) -------------------------------------

HUNYUAN_IMAGE_TINY_TEXT_DIM = QWEN_IMAGE_TINY_JOINT_DIM  # the tiny Qwen2.5-VL's hidden size
HUNYUAN_IMAGE_TINY_BYT5_DIM = BYT5_TINY_WIDTH  # the tiny byT5's width


def hunyuan_image_config(scaled_down: bool = True, context_in_dim: int = HUNYUAN_IMAGE_TINY_TEXT_DIM,
                         byt5_dim: int = HUNYUAN_IMAGE_TINY_BYT5_DIM, distilled: bool = False, refiner: bool = False):
    """HunyuanImage 2.1's transformer (20 + 40 blocks, 28 heads of 128), or a tiny one: 2 double + 2
    single blocks, 2 heads of 32 (rotary axes 16, 16), the 2-block token refiner, byt5_in 48 wide, the
    real 1x1 patches of 64 channels; text states context_in_dim wide, byT5's byt5_dim wide. distilled:
    the distilled file's guidance_in and time_r_in (MeanFlow). refiner: the refiner's (3328 wide, 26
    heads; tiny: the same 2 + 2 blocks, rotary axes 4, 14, 14): 1x1x1 patches of 128 channels in, 64 out,
    guidance_in and time_r_in, no byt5_in."""
    from .models.hunyuan_image import HunyuanImageConfig

    extra = dict(guidance_embed=True, meanflow=True) if distilled or refiner else {}
    if refiner:
        extra.update(in_channels=128, patch_size=(1, 1, 1), byt5_dim=0)
        if not scaled_down:
            return HunyuanImageConfig(hidden_size=3328, num_heads=26, axes_dim=(16, 56, 56), **extra)
        return HunyuanImageConfig(hidden_size=64, num_heads=2, depth=2, depth_single_blocks=2, axes_dim=(4, 14, 14),
                                  context_in_dim=context_in_dim, **extra)
    if not scaled_down:
        return HunyuanImageConfig(**extra)
    return HunyuanImageConfig(hidden_size=64, num_heads=2, depth=2, depth_single_blocks=2, axes_dim=(16, 16),
                              context_in_dim=context_in_dim, byt5_dim=byt5_dim, byt5_hidden=48, **extra)


def hunyuan_image_state(seed: int = 0, scaled_down: bool = True, context_in_dim: int = HUNYUAN_IMAGE_TINY_TEXT_DIM,
                        byt5_dim: int = HUNYUAN_IMAGE_TINY_BYT5_DIM, distilled: bool = False,
                        refiner: bool = False) -> dict[str, torch.Tensor]:
    from .models.hunyuan_image import HunyuanImage

    with torch.device("meta"):
        shapes = _module_shapes(HunyuanImage(hunyuan_image_config(scaled_down, context_in_dim, byt5_dim, distilled,
                                                                  refiner)))
    return random_state(shapes, seed, torch.float32)


def write_hunyuan_image(path, seed: int = 0, dtype=torch.bfloat16, scaled_down: bool = True, prefixed: bool = False,
                        context_in_dim: int = HUNYUAN_IMAGE_TINY_TEXT_DIM, byt5_dim: int = HUNYUAN_IMAGE_TINY_BYT5_DIM,
                        distilled: bool = False, refiner: bool = False) -> Path:
    """A random HunyuanImage 2.1 transformer in Tencent's names, bare as ComfyUI's
    hunyuanimage2.1_bf16.safetensors (distilled: hunyuanimage2.1_distilled_bf16; refiner:
    hunyuanimage2.1_refiner_bf16) or, prefixed, under ComfyUI's model.diffusion_model."""
    prefix = UNET_PREFIX if prefixed else ""
    state = hunyuan_image_state(seed, scaled_down, context_in_dim, byt5_dim, distilled, refiner)
    save_file({prefix + k: v.to(dtype) for k, v in state.items()}, str(path))
    return Path(path)


def hunyuan_image_vae_config(scaled_down: bool = True):
    """HunyuanImage 2.1's VAE (widths 128 256 512 512 1024 1024, 2 res blocks), or a tiny one: widths
    32 32 32 64 128 128, 1 res block; always 64 latent channels and 32x compression."""
    from .models.hunyuan_image_vae import HunyuanImageVAEConfig

    return HunyuanImageVAEConfig(block_out_channels=(32, 32, 32, 64, 128, 128), num_res_blocks=1) if scaled_down \
        else HunyuanImageVAEConfig()


def hunyuan_image_vae_state(seed: int = 0, scaled_down: bool = True) -> dict[str, torch.Tensor]:
    from .models.hunyuan_image_vae import HunyuanImageVAEModel

    with torch.device("meta"):
        shapes = _module_shapes(HunyuanImageVAEModel(hunyuan_image_vae_config(scaled_down)))
    return random_state(shapes, seed, torch.float32)


def write_hunyuan_image_vae(path, seed: int = 0, dtype=torch.float16, scaled_down: bool = True) -> Path:
    """A random HunyuanImage 2.1 VAE in ComfyUI's layout, as hunyuan_image_2.1_vae_fp16.safetensors."""
    save_file({k: v.to(dtype) for k, v in hunyuan_image_vae_state(seed, scaled_down).items()}, str(path))
    return Path(path)


def hunyuan_image_refiner_vae_config(scaled_down: bool = True):
    """HunyuanImage 2.1's refiner VAE (widths 128 256 512 1024 1024, 2 res blocks), or a tiny one: widths
    32 32 64 64 64, 1 res block; always 32 latent channels, 16x in space."""
    from .models.hunyuan_image_refiner_vae import HunyuanImageRefinerVAEConfig

    return HunyuanImageRefinerVAEConfig(block_out_channels=(32, 32, 64, 64, 64), num_res_blocks=1) if scaled_down \
        else HunyuanImageRefinerVAEConfig()


def hunyuan_image_refiner_vae_state(seed: int = 0, scaled_down: bool = True) -> dict[str, torch.Tensor]:
    from .models.hunyuan_image_refiner_vae import HunyuanImageRefinerVAEModel

    with torch.device("meta"):
        shapes = _module_shapes(HunyuanImageRefinerVAEModel(hunyuan_image_refiner_vae_config(scaled_down)))
    return random_state(shapes, seed, torch.float32)


def write_hunyuan_image_refiner_vae(path, seed: int = 0, dtype=torch.float16, scaled_down: bool = True) -> Path:
    """A random HunyuanImage 2.1 refiner VAE in ComfyUI's layout, as hunyuan_image_refiner_vae_fp16.safetensors."""
    save_file({k: v.to(dtype) for k, v in hunyuan_image_refiner_vae_state(seed, scaled_down).items()}, str(path))
    return Path(path)


# -- AuraFlow: its MM-DiT and all-in-one checkpoint ---------------------------------------------

AURA_FLOW_TINY_TEXT_DIM = 64  # the tiny network's text width (cond_seq_dim); Pile-T5-XL's is 2048
PILE_T5_PREFIX = "text_encoders.pile_t5xl.transformer."  # ComfyUI's all-in-one AuraFlow file's text encoder


def aura_flow_config(scaled_down: bool = True, text_dim: int = AURA_FLOW_TINY_TEXT_DIM):
    """AuraFlow v0.3's MM-DiT, or a tiny one: width 48 (ComfyUI's 12 heads, of 4), 2 double + 2 single
    layers, a 7 x 7 position table (an odd side: diffusers' crop of it is ComfyUI's for every latent)."""
    from .models.aura_flow import AuraFlowConfig
    from .models.configs import swiglu_hidden

    if not scaled_down:
        return AuraFlowConfig()
    return AuraFlowConfig(dim=48, n_layers=4, n_double_layers=2, global_conddim=48, cond_seq_dim=text_dim,
                          max_seq=49, mlp_hidden=swiglu_hidden(48, 4 * 48))


def aura_flow_state(seed: int = 0, scaled_down: bool = True, text_dim: int = AURA_FLOW_TINY_TEXT_DIM) -> dict:
    from .models.aura_flow import AuraFlow

    with torch.device("meta"):
        shapes = _module_shapes(AuraFlow(aura_flow_config(scaled_down, text_dim)))
    return random_state(shapes, seed, torch.float32)


def write_aura_flow(path, seed: int = 0, dtype=torch.float16, scaled_down: bool = True, prefixed: bool = False,
                    text_dim: int = AURA_FLOW_TINY_TEXT_DIM) -> Path:
    """A random AuraFlow diffusion model in fal's / ComfyUI's layout, bare or, prefixed, under ComfyUI's
    model.diffusion_model."""
    prefix = UNET_PREFIX if prefixed else ""
    save_file({prefix + k: v.to(dtype) for k, v in aura_flow_state(seed, scaled_down, text_dim).items()}, str(path))
    return Path(path)


def write_aura_flow_checkpoint(path, seed: int = 0, dtype=torch.float16, text_encoder: bool = False,
                               vae_prefix: str = "vae.") -> Path:
    """ComfyUI's all-in-one AuraFlow file (aura_flow_0.3.safetensors): the network under model.diffusion_model.,
    a tiny SDXL-layout VAE under `vae_prefix` (ComfyUI's AuraFlow saves vae.), and with `text_encoder` a tiny
    Pile-T5 XL under text_encoders.pile_t5xl.transformer. (the network's text width then the encoder's)."""
    text_dim = UMT5_TINY_WIDTH if text_encoder else AURA_FLOW_TINY_TEXT_DIM
    state = {UNET_PREFIX + k: v for k, v in aura_flow_state(seed, True, text_dim).items()}
    state.update({vae_prefix + k: v for k, v in vae_state(vae_config(), seed + 1, torch.float32).items()})
    if text_encoder:
        state.update(pile_t5_state(seed + 2))
    save_file({k: v.to(dtype) for k, v in state.items()}, str(path))
    return Path(path)


# -- AuraFlow: Pile-T5 XL, its text encoder ---------------------------------------------------------

def pile_t5_config(scaled_down: bool = True):
    """Pile-T5 XL's encoder (ComfyUI's t5_pile_config_xl.json: UMT5, d_model 2048, 24 layers, 32 heads
    of 64, d_ff 5120, gated GELU, 32 buckets), or the tiny UMT5. Both keep the 32,128-row embedding:
    it is how Pile-T5 is told apart, and the shipped tokenizer's ids (up to 32,099) need it."""
    from transformers import UMT5Config

    from .models.t5 import PILE_T5_VOCAB

    if scaled_down:
        return umt5_config(PILE_T5_VOCAB)
    return UMT5Config(vocab_size=PILE_T5_VOCAB, d_model=2048, d_kv=64, d_ff=5120, num_layers=24, num_heads=32,
                      feed_forward_proj="gated-gelu", is_encoder_decoder=False, tie_word_embeddings=False)


def pile_t5_state(seed: int = 3, prefix: str = PILE_T5_PREFIX) -> dict[str, torch.Tensor]:
    """Random tiny Pile-T5 weights (float32) in transformers' / ComfyUI's names (shared.weight,
    encoder.block.N..., encoder.final_layer_norm.weight) under `prefix` (the all-in-one layout by
    default; "" for a bare text-encoder file)."""
    from .models.t5 import PILE_T5_VOCAB

    return {prefix + k: v for k, v in umt5_state(seed, PILE_T5_VOCAB).items()}


def write_pile_t5(path, seed: int = 3, dtype=torch.float16, prefix: str = "") -> Path:
    """A tiny Pile-T5 XL text-encoder file (prefix "": bare, as CLIPLoader takes it; PILE_T5_PREFIX: the
    text-encoder part of ComfyUI's aura_flow_0.3.safetensors)."""
    save_file({k: v.to(dtype) for k, v in pile_t5_state(seed, prefix=prefix).items()}, str(path))
    return Path(path)


MOTION_VERSIONS = {"v1": (False, 24), "v2": (True, 32), "v3": (False, 32)}  # (mid block, positions)


def motion_module_shapes(unet: UNetConfig | None = None, version: str = "v2") -> dict[str, tuple]:
    """The tensor shapes of an AnimateDiff motion module in guoyww's single-file layout (mm_sd_v15_v2.ckpt's
    names) fitting `unet` (default: SD1.5's, full size): per level, num_res_blocks temporal modules
    down and one more up, a mid block for v2."""
    from .models.animatediff import MotionModel, MotionModuleConfig

    unet = unet or UNetConfig()
    mid, positions = MOTION_VERSIONS[version]
    cfg = MotionModuleConfig(channels=tuple(m * unet.model_channels for m in unet.channel_mult),
                             down_modules=unet.num_res_blocks[0], up_modules=unet.num_res_blocks[0] + 1,
                             mid_block=mid, pe_length=positions)
    with torch.device("meta"):
        return _module_shapes(MotionModel(cfg))


def motion_module_state(unet: UNetConfig | None = None, version: str = "v2", seed: int = 0,
                        dtype=torch.float16) -> dict[str, torch.Tensor]:
    """A random-weight motion module of motion_module_shapes(unet, version); pos_encoder.pe holds the
    true sinusoid, as the files do."""
    from .models.animatediff import sinusoid_positions

    shapes = motion_module_shapes(unet, version)
    state = random_state(shapes, seed, dtype)
    for key, shape in shapes.items():
        if key.endswith("pos_encoder.pe"):
            state[key] = sinusoid_positions(shape[1], shape[2]).to(dtype)
    return state


def write_motion_module(path, unet: UNetConfig | None = None, version: str = "v2", seed: int = 0,
                        dtype=torch.float16) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(motion_module_state(unet, version, seed, dtype), str(path))
    return path


def motion_lora_state(unet: UNetConfig | None = None, version: str = "v2", rank: int = 4, seed: int = 0,
                      dtype=torch.float16) -> dict[str, torch.Tensor]:
    """A random motion LoRA in guoyww's layout (v2_lora_ZoomIn.ckpt's names) for the motion module
    motion_module_state(unet, version) describes: '<attention>.processor.to_q_lora.down.weight' [rank, C]
    and '.up.weight' [C, rank] for to_q, to_k, to_v and to_out."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in motion_module_state(unet, version, seed, torch.float32).items():
        parts = key.split(".")
        if not key.endswith(".weight") or parts[-2] not in ("to_q", "to_k", "to_v", "0"):
            continue
        if parts[-2] == "0" and parts[-3] != "to_out":
            continue
        path = ".".join(parts[:-3] if parts[-2] == "0" else parts[:-2])
        name = "to_out" if parts[-2] == "0" else parts[-2]
        c = value.shape[0]
        state[f"{path}.processor.{name}_lora.down.weight"] = (torch.randn(rank, c, generator=g) / c ** 0.5).to(dtype)
        state[f"{path}.processor.{name}_lora.up.weight"] = (torch.randn(c, rank, generator=g) * 0.1).to(dtype)
    return state


def write_motion_lora(path, unet: UNetConfig | None = None, version: str = "v2", rank: int = 4, seed: int = 0,
                      dtype=torch.float16) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(motion_lora_state(unet, version, rank, seed, dtype), str(path))
    return path


# -- GGUF (ComfyUI-GGUF's quantized files) ------------------------------------------------------

def write_gguf(path, state: dict[str, torch.Tensor], arch: str | None, qtype: str | dict = "Q8_0",
               orig_shapes: dict[str, tuple] | None = None, metadata: dict[str, str | int] | None = None) -> Path:
    """`state` written as a GGUF file as ComfyUI-GGUF's converter writes one: general.architecture
    `arch` (None: none, as stable-diffusion.cpp's files), 2-D+ `.weight` tensors whose rows are whole
    blocks quantized to `qtype` (gguf.quants.quantize; a dict: by key, missing keys kept F16), 1-D
    ones F32, the rest F16. `orig_shapes`: tensors stored flattened to 2-D with their
    comfy.gguf.orig_shape.<name> key (as the converter stores 5-D weights); `metadata`: more fields,
    strings or (int) UINT32s (graphflow.config for a tiny model's architecture, general.file_type).
    Returns the path."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch=arch or "")
    if arch is None:  # GGUFWriter always writes general.architecture; drop it
        writer.kv_data[0].pop("general.architecture", None)
    for key, value in (metadata or {}).items():
        (writer.add_uint32 if isinstance(value, int) else writer.add_string)(key, value)
    for key, value in state.items():
        array = value.float().numpy()
        if orig_shapes and key in orig_shapes:
            array = array.reshape(array.shape[0], -1)
            writer.add_array(f"comfy.gguf.orig_shape.{key}", list(orig_shapes[key]))
        wanted = qtype.get(key) if isinstance(qtype, dict) else qtype
        kind = gguf.GGMLQuantizationType[wanted] if wanted else None
        if (kind is not None and array.ndim >= 2 and key.endswith(".weight")
                and array.shape[-1] % gguf.GGML_QUANT_SIZES[kind][0] == 0):
            writer.add_tensor(key, gguf.quants.quantize(array, kind), raw_dtype=kind)
        elif array.ndim == 1:
            writer.add_tensor(key, array.astype(np.float32))
        else:
            writer.add_tensor(key, array.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


def gguf_values(path) -> dict[str, torch.Tensor]:
    """A GGUF file's tensors as gguf-py's reference reads them (gguf.quants.dequantize, numpy),
    float32, in their logical shapes (stored dims reversed), under the file's own names."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    values = {}
    for t in reader.tensors:
        array = gguf.quants.dequantize(t.data, t.tensor_type)
        values[t.name] = torch.from_numpy(array.astype("float32").reshape(tuple(reversed(t.shape.tolist()))))
    return values


def llama_cpp_t5_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A T5 encoder's Hugging Face names as llama.cpp's GGUF files spell them (`shared.weight` ->
    `token_embd.weight`, `encoder.block.0.layer.0.SelfAttention.q.weight` -> `enc.blk.0.attn_q.weight`),
    the inverse of graphflow.models.gguf.T5_NAMES."""
    from .models.gguf import T5_NAMES

    renamed = {}
    for key, value in state.items():
        for theirs, ours in reversed(T5_NAMES):
            key = key.replace(ours, theirs)
        renamed[key] = value
    return renamed
