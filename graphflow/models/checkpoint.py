"""Single-file SD checkpoints loaded as MODEL / CLIP / VAE, and standalone VAE and text encoder files.

Loading never holds two copies of the weights: modules are built on the meta device (no
memory, no init) and each tensor is assigned into them (`load_state_dict(assign=True)`) as it
comes. A tensor that stays as stored (CPU, same dtype) is a zero-copy view of the memory-mapped
file; one that is cast or moved (fp16 file -> fp32 CPU, anything -> CUDA) is read into a
private buffer, converted, and the buffer dropped. The peak is about the loaded model's size
(tests/test_checkpoint.py measures it); on CUDA the host holds about one tensor at a time.
"""

import re
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..device import compute_device, default_dtype
from .architecture import (ARCH_NAMES, UNET_PREFIX, VAE_PARTS, VAE_PREFIX, ArchInfo, config_overrides,
                           detect_architecture, format_prefixes, locate_towers, prefix_summary, vae_config_from_shapes)
from .diffusion_model import DiffusionModel
from .latent_formats import SD1, LatentFormat
from .text_encoders import ARCH_TOWERS, CLIP_L, HF, OPEN_CLIP, TextEncoder, TowerSpec, tower_from_weights
from .unet import UNet, UNetConfig
from .vae import VAE, AutoencoderKL, VAEConfig
from .weight_files import CheckpointError, KeyView, WeightFile

# -- building modules --------------------------------------------------------------------------

def _assign(module: nn.Module, source, device, dtype, what: str, keys=None) -> nn.Module:
    """Read `source`'s tensors one at a time onto device/dtype and assign them into the meta-built module."""
    keys = list(source.shapes if keys is None else keys)
    state = {}
    for key in keys:
        state[key] = source.get(key, device, dtype)
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
    leftovers = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if leftovers:
        raise CheckpointError(f"{what}: no weights for {leftovers[:5]}")
    return module.requires_grad_(False).eval()


def _resolve(device, dtype, component: str) -> tuple[torch.device, torch.dtype]:
    device = torch.device(device) if device is not None else compute_device()
    return device, dtype or default_dtype(component, device)


def build_unet(source, config: UNetConfig, device, dtype) -> UNet:
    with torch.device("meta"):
        unet = UNet(config)
    return _assign(unet, source, device, dtype, f"UNet ({UNET_PREFIX})")


def build_vae(source, config: VAEConfig, latent_format: LatentFormat, device, dtype, what=VAE_PREFIX) -> VAE:
    with torch.device("meta"):
        module = AutoencoderKL(config)
    keys = [k for k in source.shapes if k.split(".")[0] in VAE_PARTS]
    module = _assign(module, source, device, dtype, f"VAE ({what})", keys=keys)
    return VAE(module, latent_format)


def build_text_encoder(source, arch: str, towers, overrides: dict, device, dtype, clip_skip=None) -> TextEncoder:
    built = []
    for spec in towers:
        view = KeyView(source, spec.prefix)
        try:
            built.append(tower_from_weights(spec, view.shapes, view.get, device, dtype, overrides.get(spec.name)))
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"text encoder {spec.name} ({spec.prefix or 'standalone'}): {e}") from None
    return TextEncoder(arch, built, clip_skip)


@dataclass
class Checkpoint:
    model: DiffusionModel
    clip: TextEncoder | None
    vae: VAE | None
    info: ArchInfo


def load_checkpoint(path, device=None, dtype=None, prediction: str | None = None,
                    allow_pickle: bool = False) -> Checkpoint:
    """Load a single-file SD1/SD2/SDXL checkpoint. `dtype` overrides every component's dtype
    (defaults: fp32 on CPU; on CUDA fp16 UNet/CLIP and bf16 VAE, fp32 VAE without bf16).
    `prediction` ("eps"/"v") overrides what the file says. A file without a VAE or text
    encoder gives None for that part (info.notes says so)."""
    with WeightFile(path, allow_pickle) as f:
        info = detect_architecture(f.shapes, f.metadata, prediction, get_tensor=f.get)
        unet_device, unet_dtype = _resolve(device, dtype, "unet")
        unet = build_unet(f.view(UNET_PREFIX), info.unet, unet_device, unet_dtype)
        model = DiffusionModel(unet, info.arch, info.prediction, info.latent_format)
        model.zsnr = "ztsnr" in f.shapes  # ComfyUI's marker of a zero-terminal-SNR model
        vae = clip = None
        if info.vae is not None:
            vae = build_vae(f.view(VAE_PREFIX), info.vae, info.latent_format, *_resolve(device, dtype, "vae"))
        if info.towers:
            clip = build_text_encoder(f, info.arch, info.towers, info.tower_overrides,
                                      *_resolve(device, dtype, "text_encoder"))
    return Checkpoint(model, clip, vae, info)


# -- standalone VAE files ----------------------------------------------------------------------

_DIFFUSERS_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out",
                       "query": "q", "key": "k", "value": "v", "proj_attn": "proj_out"}


def diffusers_vae_key(key: str, num_up_blocks: int) -> str | None:
    """A diffusers AutoencoderKL key -> the LDM key (None for keys LDM has no place for)."""
    rules = [
        (r"^(encoder|decoder)\.conv_norm_out\.", lambda m: f"{m[1]}.norm_out."),
        (r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", lambda m: f"encoder.down.{m[1]}.block.{m[2]}."),
        (r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.", lambda m: f"encoder.down.{m[1]}.downsample.conv."),
        (r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.",
         lambda m: f"decoder.up.{num_up_blocks - 1 - int(m[1])}.block.{m[2]}."),
        (r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.",
         lambda m: f"decoder.up.{num_up_blocks - 1 - int(m[1])}.upsample.conv."),
        (r"^(encoder|decoder)\.mid_block\.resnets\.(\d)\.", lambda m: f"{m[1]}.mid.block_{int(m[2]) + 1}."),
        (r"^(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0|query|key|value|proj_attn)\.",
         lambda m: f"{m[1]}.mid.attn_1.{_DIFFUSERS_VAE_ATTN[m[2]]}."),
        (r"^(encoder|decoder)\.(conv_in|conv_out)\.", lambda m: m[0]),
        (r"^(quant_conv|post_quant_conv)\.", lambda m: m[0]),
    ]
    for pattern, target in rules:
        m = re.match(pattern, key)
        if m:
            return (target(m) + key[m.end():]).replace(".conv_shortcut.", ".nin_shortcut.")
    return None


class _DiffusersVAEView:
    """A diffusers-layout VAE file seen with LDM names (1x1 attention weights as conv kernels)."""

    def __init__(self, source):
        ups = {int(k.split(".")[2]) for k in source.shapes if k.startswith("decoder.up_blocks.")}
        self.source, self.names, self.shapes = source, {}, {}
        for key, shape in source.shapes.items():
            ldm = diffusers_vae_key(key, len(ups))
            if ldm is None:
                continue
            if ".mid.attn_1." in ldm and ldm.endswith(".weight") and len(shape) == 2:
                shape = (*shape, 1, 1)
            self.names[ldm], self.shapes[ldm] = key, shape

    def get(self, key: str, device=None, dtype=None) -> torch.Tensor:
        return self.source.get(self.names[key], device, dtype).reshape(self.shapes[key])


def load_vae(path, device=None, dtype=None, latent_format: LatentFormat | None = None,
             allow_pickle: bool = False) -> VAE:
    """A standalone VAE file: LDM layout (bare `encoder.down.N...` keys, or under
    `first_stage_model.`, or a whole checkpoint's VAE) or diffusers layout (`encoder.down_blocks...`).
    Latents are raw, so the latent format only names the channel count: SD1's for 4 channels
    unless given (or set in graphflow.config)."""
    with WeightFile(path, allow_pickle) as f:
        config = f.config()
        prefixes = prefix_summary(f.shapes)
        if any(k.startswith(VAE_PREFIX) for k in f.shapes):
            source, where = f.view(VAE_PREFIX), VAE_PREFIX
        elif "encoder.down.0.block.0.conv1.weight" in f.shapes:
            source, where = KeyView(f, ""), "LDM layout"
        elif "encoder.down_blocks.0.resnets.0.conv1.weight" in f.shapes:
            source, where = _DiffusersVAEView(f), "diffusers layout"
        else:
            raise CheckpointError(f"{Path(path).name}: no VAE keys (expected LDM 'encoder.down.0.block...', optionally "
                                  f"under {VAE_PREFIX}, or diffusers 'encoder.down_blocks...'); found prefixes: "
                                  f"{format_prefixes(prefixes)}")
        shapes = {k: s for k, s in source.shapes.items() if k.split(".")[0] in VAE_PARTS}
        vae_config = vae_config_from_shapes(shapes, config_overrides(VAEConfig, config.get("vae"), "vae"), where)
        if latent_format is None:
            latent_format = SD1 if vae_config.latent_channels == 4 else LatentFormat(
                "custom", vae_config.latent_channels, 1.0)
            lf = config.get("latent_format") or {}
            if lf:
                latent_format = latent_format.with_scale(float(lf["scale_factor"]), lf.get("shift_factor"))
        return build_vae(source, vae_config, latent_format, *_resolve(device, dtype, "vae"), what=where)


# -- standalone text encoder files -------------------------------------------------------------

def _standalone_tower(shapes) -> TowerSpec:
    """A lone CLIP text model: transformers layout (text_model.* or flattened) or OpenCLIP's."""
    for prefix in ("text_model.", ""):
        if prefix + "embeddings.token_embedding.weight" in shapes:
            hidden = shapes[prefix + "embeddings.token_embedding.weight"][1]
            if hidden == 768 or "text_projection.weight" not in shapes:
                return TowerSpec(prefix=prefix, **CLIP_L)
            name = "clip_h" if hidden == 1024 else "clip_g"
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


def load_text_encoder(paths, arch: str | None = None, device=None, dtype=None, allow_pickle: bool = False) -> TextEncoder:
    """CLIP from separate file(s): a single-file checkpoint (its text encoders), one CLIP text
    model (transformers or OpenCLIP layout: 768 wide -> SD1's CLIP-L, 1024 -> SD2's ViT-H,
    1280 -> bigG as for the SDXL refiner), or two files [CLIP-L, bigG] for SDXL."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    device, dtype = _resolve(device, dtype, "text_encoder")
    files = [WeightFile(p, allow_pickle) for p in paths]
    try:
        if len(files) == 1:
            f = files[0]
            found_arch, towers, missing = locate_towers(f.shapes)
            if found_arch is not None:
                if missing:
                    raise CheckpointError(f"{f.path.name}: {ARCH_NAMES[found_arch]} text encoder incomplete: "
                                          f"missing {', '.join(missing)}")
                return build_text_encoder(f, arch or found_arch, towers, f.config().get("text_encoders") or {},
                                          device, dtype)
        specs = [_standalone_tower(f.shapes) for f in files]
        names = [s.name for s in specs]
        guessed = {("clip_l",): "sd1", ("clip_h",): "sd2", ("clip_g",): "sdxl_refiner",
                   ("clip_l", "clip_g"): "sdxl"}.get(tuple(names))
        arch = arch or guessed
        if arch is None or [s.name for s in ARCH_TOWERS[arch]] != names:
            raise CheckpointError(f"text encoder file(s) hold {names}; cannot make a CLIP for "
                                  f"{arch or 'any known architecture'} from them")
        built = []
        for f, spec in zip(files, specs):
            view = _StandaloneView(f, spec)
            overrides = (f.config().get("text_encoders") or {}).get(spec.name)
            try:
                built.append(tower_from_weights(replace(spec, prefix=""), view.shapes, view.get, device, dtype,
                                                overrides))
            except (ValueError, KeyError) as e:
                raise CheckpointError(f"{f.path.name}: {e}") from None
        return TextEncoder(arch, built)
    finally:
        for f in files:
            f.close()
