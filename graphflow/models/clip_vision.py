"""The CLIP vision transformer (ViT) and SigLIP's, as ComfyUI's models/clip_vision/ files hold them.

    embeddings      patch conv (+ class token) + learned positions
    pre_layrnorm    (CLIP only)
    encoder.layers  pre-norm transformer blocks (attention, MLP)
    post_layernorm  CLIP: on the class token (pooled); SigLIP: on every token
    visual_projection   CLIP: pooled -> image_embeds (SigLIP: none)

Parameter names are transformers' (`vision_model.*`, `visual_projection.weight`): the layout of
clip_vision_g/h and ViT-L files and of SigLIP (sigclip_vision_patch14_384). OpenCLIP's visual tower
(`conv1`, `transformer.resblocks`, `proj`), as SD2.1-unCLIP checkpoints carry it under
`embedder.model.visual.`, is mapped onto those names. What the weights cannot show (activation,
head count) follows the released models: 16 heads; quick_gelu for OpenAI's ViT-L (width 1024),
gelu for ViT-H/bigG, tanh-gelu for SigLIP; a file's graphflow.config "clip_vision" section overrides.

The outputs are ComfyUI's CLIP_VISION_OUTPUT: last_hidden_state (encoder output; SigLIP's after the
post-layernorm), image_embeds (CLIP: projected pooled class token; SigLIP: last_hidden_state) and
penultimate_hidden_states (the output of the second-to-last block); for SigLIP also
all_hidden_states [B, layers, tokens, width], every block's output (USOStyleReference reads three).

LLaVA's vision tower (ComfyUI's llava_llama3_vision.safetensors, HunyuanVideo image-to-video: a
ViT-L/14 at 336 pixels) carries LLaVA's projector (`multi_modal_projector.linear_1` / `linear_2`,
a GELU between): mm_projected [B, patches, text width] is the second-to-last block's output without
the class token through it (LLaVA's vision_feature_layer -2, "default" selection; ComfyUI's).
Without a visual projection such a tower's image_embeds are its pooled class token unprojected.
"""

import math
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

from .text_encoders import _apply, openclip_key_map
from .weight_files import CheckpointError, KeyView, WeightFile

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN = SIGLIP_STD = (0.5, 0.5, 0.5)
# (patch, patches per side) -> input size, where the patches do not cover the image exactly:
# SigLIP so400m-patch14-384's 27 x 14 = 378 pixels of its 384 (the conv drops the rest)
IMAGE_SIZES = {(14, 27): 384}
ACTIVATIONS = {"quick_gelu": lambda x: x * torch.sigmoid(1.702 * x), "gelu": F.gelu,
               "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh")}


@dataclass
class CLIPVisionConfig:  # defaults: OpenAI ViT-L/14 (clip_vision_l / SD2.1-unCLIP-L)
    hidden_size: int = 1024
    num_layers: int = 24
    num_heads: int = 16
    intermediate_size: int = 4096
    patch_size: int = 14
    image_size: int = 224
    projection_dim: int = 768  # 0: no visual projection (SigLIP)
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    class_token: bool = True  # False: SigLIP (no class token, no pre-layernorm, post-layernorm on every token)
    projector_dim: int = 0  # LLaVA's multi_modal_projector output width (llava_llama3_vision); 0: none
    image_mean: tuple[float, ...] = CLIP_MEAN
    image_std: tuple[float, ...] = CLIP_STD

    def __post_init__(self):
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"CLIPVisionConfig: hidden_act must be one of {list(ACTIVATIONS)}, "
                             f"got {self.hidden_act!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"CLIPVisionConfig: {self.num_heads} heads do not divide width {self.hidden_size}")
        self.image_mean, self.image_std = tuple(self.image_mean), tuple(self.image_std)

    @property
    def num_positions(self) -> int:
        return (self.image_size // self.patch_size) ** 2 + (1 if self.class_token else 0)


def clip_vision_config_from_shapes(shapes: dict[str, tuple], overrides: dict | None = None) -> CLIPVisionConfig:
    """The config of a transformers-layout state dict (`vision_model.*` keys) from names and shapes."""
    p = "vision_model."
    hidden, _, patch, _ = shapes[p + "embeddings.patch_embedding.weight"]
    positions = shapes[p + "embeddings.position_embedding.weight"][0]
    class_token = p + "embeddings.class_embedding" in shapes
    grid = math.isqrt(positions - class_token)
    if grid * grid != positions - class_token:
        raise ValueError(f"{positions} position embeddings do not make a square grid of patches")
    layers = len({k.split(".")[3] for k in shapes if k.startswith(p + "encoder.layers.")})
    projection = shapes.get("visual_projection.weight", (0,))[0]
    act = "quick_gelu" if hidden == 1024 else "gelu"
    values = dict(hidden_size=hidden, num_layers=layers, num_heads=16 if hidden % 16 == 0 else 1,
                  intermediate_size=shapes[p + "encoder.layers.0.mlp.fc1.weight"][0], patch_size=patch,
                  image_size=IMAGE_SIZES.get((patch, grid), grid * patch), projection_dim=projection,
                  hidden_act=act, class_token=class_token,
                  projector_dim=shapes.get("multi_modal_projector.linear_2.weight", (0,))[0])
    if not class_token:
        values.update(hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, image_mean=SIGLIP_MEAN, image_std=SIGLIP_STD)
    config = CLIPVisionConfig(**values)
    unknown = set(overrides or {}) - {f.name for f in fields(CLIPVisionConfig)}
    if unknown:
        raise ValueError(f"unknown clip_vision config fields {sorted(unknown)}")
    return replace(config, **(overrides or {}))


# -- the network -------------------------------------------------------------------------------

class Embeddings(nn.Module):
    def __init__(self, cfg: CLIPVisionConfig):
        super().__init__()
        self.patch_embedding = nn.Conv2d(3, cfg.hidden_size, cfg.patch_size, stride=cfg.patch_size,
                                         bias=not cfg.class_token)
        if cfg.class_token:
            self.class_embedding = nn.Parameter(torch.empty(cfg.hidden_size))
        self.position_embedding = nn.Embedding(cfg.num_positions, cfg.hidden_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch_embedding(pixels.to(self.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        if hasattr(self, "class_embedding"):
            x = torch.cat([self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1), x], dim=1)
        return x + self.position_embedding.weight.to(x.dtype)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (proj(x).view(b, n, self.heads, -1).transpose(1, 2) for proj in (self.q_proj, self.k_proj, self.v_proj))
        return self.out_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, -1))


class MLP(nn.Module):
    def __init__(self, dim: int, inner: int, act: str):
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(dim, inner), nn.Linear(inner, dim), ACTIVATIONS[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: CLIPVisionConfig):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.self_attn = SelfAttention(cfg.hidden_size, cfg.num_heads)
        self.layer_norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = MLP(cfg.hidden_size, cfg.intermediate_size, cfg.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nn.Module):
    def __init__(self, cfg: CLIPVisionConfig):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_layers))


class VisionTransformer(nn.Module):
    def __init__(self, cfg: CLIPVisionConfig):
        super().__init__()
        self.embeddings = Embeddings(cfg)
        if cfg.class_token:
            self.pre_layrnorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)  # transformers' spelling
        self.encoder = Encoder(cfg)
        self.post_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)


@dataclass
class ClipVisionOutput:
    """CLIP_VISION_OUTPUT: float32 CPU tensors, as ComfyUI's Output object names them."""

    last_hidden_state: torch.Tensor  # [B, tokens, width]
    image_embeds: torch.Tensor  # [B, projection_dim] (SigLIP: [B, tokens, width])
    penultimate_hidden_states: torch.Tensor  # [B, tokens, width]
    # SigLIP only (None for CLIP, as in ComfyUI): every encoder block's output [B, layers, tokens, width]
    all_hidden_states: torch.Tensor | None = None
    # LLaVA's towers only: the patches' penultimate states through its projector [B, patches, text width]
    mm_projected: torch.Tensor | None = None

    def __getitem__(self, name: str) -> torch.Tensor:  # ComfyUI's nodes index the output by name
        return getattr(self, name)


class LlavaProjector(nn.Module):
    def __init__(self, dim: int, out: int):
        super().__init__()
        self.linear_1, self.linear_2 = nn.Linear(dim, out), nn.Linear(out, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(x)))


class CLIPVisionModel(nn.Module):
    def __init__(self, config: CLIPVisionConfig):
        super().__init__()
        self.config = config
        self.vision_model = VisionTransformer(config)
        if config.projection_dim:
            self.visual_projection = nn.Linear(config.hidden_size, config.projection_dim, bias=False)
        if config.projector_dim:
            self.multi_modal_projector = LlavaProjector(config.hidden_size, config.projector_dim)

    def hidden_states(self, pixels: torch.Tensor, every: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised pixels [B, 3, S, S] -> (encoder output, second-to-last block's output);
        `every`, a list, gets each block's output appended."""
        vm = self.vision_model
        x = vm.embeddings(pixels)
        if self.config.class_token:
            x = vm.pre_layrnorm(x)
        penultimate = x
        for i, layer in enumerate(vm.encoder.layers):
            x = layer(x)
            if every is not None:
                every.append(x)
            if i == len(vm.encoder.layers) - 2:
                penultimate = x
        return x, penultimate

    def forward(self, pixels: torch.Tensor) -> ClipVisionOutput:
        """Normalised pixels [B, 3, S, S] -> ClipVisionOutput (in the model's dtype and device)."""
        vm = self.vision_model
        if not self.config.class_token:  # SigLIP: ComfyUI keeps every block's output too
            every = []
            x, penultimate = self.hidden_states(pixels, every)
            x = vm.post_layernorm(x)
            return ClipVisionOutput(x, x, penultimate, torch.stack(every, dim=1))
        x, penultimate = self.hidden_states(pixels)
        pooled = vm.post_layernorm(x[:, 0])
        embeds = self.visual_projection(pooled) if self.config.projection_dim else pooled
        projected = self.multi_modal_projector(penultimate[:, 1:]) if self.config.projector_dim else None
        return ClipVisionOutput(x, embeds, penultimate, mm_projected=projected)


# -- preprocessing -----------------------------------------------------------------------------

def preprocess(image: torch.Tensor, size: int, mean, std, crop: bool = True) -> torch.Tensor:
    """IMAGE [B, H, W, C] 0..1 -> normalised pixels [B, 3, size, size], as ComfyUI's
    clip_preprocess: crop=True scales the shorter side to `size` (bicubic, antialiased) and cuts
    the centre; crop=False squashes the whole image to size x size. Pixels are rounded to 8 bits
    (what the models saw in training) before the mean/std normalisation."""
    x = image[..., :3].movedim(-1, 1).float()
    h, w = x.shape[2:]
    if (h, w) != (size, size):
        if crop:
            scale = size / min(h, w)
            target = (round(scale * h), round(scale * w))
        else:
            target = (size, size)
        x = F.interpolate(x, size=target, mode="bicubic", antialias=True)
        top, left = (x.shape[2] - size) // 2, (x.shape[3] - size) // 2
        x = x[:, :, top:top + size, left:left + size]
    x = torch.clip((x * 255).round(), 0, 255) / 255
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


class ClipVision:
    """The CLIP_VISION socket: the network and its preprocessing; encode_image gives CLIP_VISION_OUTPUT."""

    def __init__(self, module: CLIPVisionModel):
        self.module = module.eval()
        self.config = module.config

    def encode_image(self, image: torch.Tensor, crop: bool = True, mask: torch.Tensor | None = None) -> ClipVisionOutput:
        """mask [B, H, W]: multiplies the preprocessed pixels (0: the mean colour), centre-cropped to a
        square and resized (bicubic) to the model's size, as ComfyUI_IPAdapter_plus's encoder."""
        from graphflow import memory

        if image.ndim != 4 or image.shape[-1] not in (1, 3, 4):
            raise ValueError(f"expected an IMAGE [B, H, W, C], got shape {tuple(image.shape)}")
        if image.shape[-1] == 1:
            image = image.expand(*image.shape[:3], 3)
        pixels = preprocess(image, self.config.image_size, self.config.image_mean, self.config.image_std, crop)
        if mask is not None:
            size = self.config.image_size
            if tuple(mask.shape[1:]) != (size, size):
                h, w = mask.shape[1:]
                side = min(h, w)
                top, left = int(round((h - side) / 2)), int(round((w - side) / 2))
                mask = F.interpolate(mask[:, None, top:top + side, left:left + side].float(),
                                                       size=(size, size), mode="bicubic", antialias=True)[:, 0]
            pixels = pixels * mask[:, None].to(pixels.dtype)
        with memory.use(self.module, "clip_vision", "clip_vision"), torch.no_grad():
            device = memory.manager().device_for(self.module)
            out = self.module(pixels.to(device))
        return ClipVisionOutput(*(None if t is None else t.float().cpu()
                                  for t in (out.last_hidden_state, out.image_embeds, out.penultimate_hidden_states,
                                            out.all_hidden_states, out.mm_projected)))


# -- loading -----------------------------------------------------------------------------------

_OPENCLIP_VISUAL = {"class_embedding": "vision_model.embeddings.class_embedding",
                    "conv1.weight": "vision_model.embeddings.patch_embedding.weight",
                    "positional_embedding": "vision_model.embeddings.position_embedding.weight",
                    "ln_pre.weight": "vision_model.pre_layrnorm.weight",
                    "ln_pre.bias": "vision_model.pre_layrnorm.bias",
                    "ln_post.weight": "vision_model.post_layernorm.weight",
                    "ln_post.bias": "vision_model.post_layernorm.bias"}


def openclip_visual_key_map(key: str) -> list[tuple[str, object]]:
    """OpenCLIP visual-tower key -> [(transformers key, op)] (ops as text_encoders' key map:
    None, "T" transpose, i: the i-th third of a fused q/k/v)."""
    if key in _OPENCLIP_VISUAL:
        return [(_OPENCLIP_VISUAL[key], None)]
    if key == "proj":
        return [("visual_projection.weight", "T")]
    if key.startswith("transformer.resblocks."):  # the same blocks as the text tower's
        return [("vision_model." + k.removeprefix("text_model."), op) for k, op in openclip_key_map(key)]
    raise KeyError(key)


class _OpenClipVisualView:
    """An OpenCLIP visual tower seen with transformers' names."""

    def __init__(self, source):
        self.source, self.shapes, self.parts = source, {}, {}
        for key, shape in source.shapes.items():
            for hf_key, op in openclip_visual_key_map(key):
                self.shapes[hf_key], self.parts[hf_key] = _apply(op, tuple(shape)), (key, op)

    def get(self, key: str, device=None, dtype=None) -> torch.Tensor:
        name, op = self.parts[key]
        return _apply(op, self.source.get(name, device, dtype)).contiguous()


def clip_vision_source(f, prefix: str = ""):
    """The tensors of a CLIP vision model in `f` under `prefix`, in transformers' names, or None.
    ComfyUI's files put them bare (`vision_model.*`); OpenCLIP's layout is mapped."""
    view = KeyView(f, prefix)
    if "vision_model.embeddings.patch_embedding.weight" in view.shapes:
        # SigLIP's attention-pooling head and position_ids buffers are not used
        view.shapes = {k: s for k, s in view.shapes.items()
                       if k.startswith(("vision_model.", "visual_projection.", "multi_modal_projector."))
                       and not k.startswith("vision_model.head.") and not k.endswith("position_ids")}
        return view
    if "conv1.weight" in view.shapes and "transformer.resblocks.0.ln_1.weight" in view.shapes:
        return _OpenClipVisualView(view)
    return None


def build_clip_vision(source, config: CLIPVisionConfig, device, dtype, what: str) -> ClipVision:
    from .checkpoint import _assign

    with torch.device("meta"):
        module = CLIPVisionModel(config)
    return ClipVision(_assign(module, source, device, dtype, what))


def load_clip_vision(path, device=None, dtype=None) -> ClipVision:
    """A CLIP vision file (clip_vision_g/h/l, SigLIP; transformers' or OpenCLIP's layout), or
    the vision model inside a SD2.1-unCLIP checkpoint (`embedder.model.visual.`)."""
    from .checkpoint import _resolve

    with WeightFile(path) as f:
        for prefix in ("", "embedder.model.visual."):
            source = clip_vision_source(f, prefix)
            if source is not None:
                break
        else:
            from .architecture import format_prefixes, prefix_summary
            from .file_kind import identify

            kind = identify(f.shapes)
            raise CheckpointError(f"{f.path.name} is not a CLIP vision model: expected transformers' "
                                  f"'vision_model.embeddings.patch_embedding.weight' (or OpenCLIP's visual "
                                  f"'conv1.weight'); found prefixes: {format_prefixes(prefix_summary(f.shapes))}."
                                  + (f" {kind.advice()}" if kind else ""))
        try:
            config = clip_vision_config_from_shapes(source.shapes, f.config().get("clip_vision"))
        except (KeyError, ValueError, IndexError) as e:
            raise CheckpointError(f"{f.path.name}: the CLIP vision model's layout could not be read ({e})") from None
        return build_clip_vision(source, config, *_resolve(device, dtype, "clip_vision"), what=f.path.name)
