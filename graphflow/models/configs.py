"""Each model family's config, and how it is read from a checkpoint's tensor shapes.

A model file (unet.py, vae.py, mmdit.py, flux.py) holds the architecture and takes its config from
here. The configs live apart from the modules because detecting what a file holds (`graphflow
validate`, `inspect`, the loaders' first step) needs only names and shapes, and must not import
torch: importing it costs more than a second, longer than validating a whole workflow.
"""

import math
import re
from dataclasses import dataclass

from .tokenizer import EOS


@dataclass
class UNetConfig:  # defaults: SD1.5
    in_channels: int = 4  # 9 for inpainting models: noisy latent + mask + masked-image latent
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int | tuple[int, ...] = 2  # per level; an int means the same for every level
    # Transformer depth per level; 0 = no attention at that level (LDM's attention_resolutions).
    transformer_depth: tuple[int, ...] = (1, 1, 1, 0)
    transformer_depth_middle: int = 1  # 0 = the middle block is a single ResBlock
    # Per-block overrides for distilled variants whose depth changes within a level (SSD-1B).
    transformer_depth_input: tuple[int, ...] | None = None  # one per input ResBlock
    transformer_depth_output: tuple[int, ...] | None = None  # one per output block
    context_dim: int | None = 768
    num_heads: int = 8  # SD1 fixes the head count ...
    num_head_channels: int = -1  # ... SD2/SDXL fix the head width (64); -1 = unused
    use_linear_in_transformer: bool = False  # SD2/SDXL: Linear proj_in/out instead of 1x1 conv
    adm_in_channels: int = 0  # SDXL's vector conditioning y (2816 base, 2560 refiner); 0 = none
    norm_groups: int = 32
    # A class-label embedding table (label_emb an nn.Embedding): the x4 upscaler's noise level, 1000 labels
    num_classes: int = 0
    # Per level: the first attention of each transformer block attends to the context instead of
    # to itself (LDM's disable_self_attentions; the x4 upscaler's upper levels). None = all self.
    disable_self_attentions: tuple[bool, ...] | None = None

    def __post_init__(self):
        self.channel_mult = tuple(self.channel_mult)
        levels = len(self.channel_mult)
        if isinstance(self.num_res_blocks, int):
            self.num_res_blocks = (self.num_res_blocks,) * levels
        self.num_res_blocks = tuple(self.num_res_blocks)
        self.transformer_depth = tuple(self.transformer_depth)
        if len(self.num_res_blocks) != levels or len(self.transformer_depth) != levels:
            raise ValueError(
                f"UNetConfig: num_res_blocks {self.num_res_blocks} and transformer_depth "
                f"{self.transformer_depth} need one entry per level of channel_mult {self.channel_mult}")
        if self.transformer_depth_input is not None:
            self.transformer_depth_input = tuple(self.transformer_depth_input)
            if len(self.transformer_depth_input) != sum(self.num_res_blocks):
                raise ValueError("UNetConfig: transformer_depth_input needs one entry per input ResBlock")
        if self.transformer_depth_output is not None:
            self.transformer_depth_output = tuple(self.transformer_depth_output)
            if len(self.transformer_depth_output) != sum(n + 1 for n in self.num_res_blocks):
                raise ValueError("UNetConfig: transformer_depth_output needs one entry per output block")
        if self.disable_self_attentions is not None:
            self.disable_self_attentions = tuple(bool(d) for d in self.disable_self_attentions)
            if len(self.disable_self_attentions) != levels:
                raise ValueError("UNetConfig: disable_self_attentions needs one entry per level of channel_mult")
        if (self.num_heads == -1) == (self.num_head_channels == -1):
            raise ValueError("UNetConfig: set exactly one of num_heads and num_head_channels")

    @property
    def attention_resolutions(self) -> tuple[int, ...]:
        """LDM's notation: the downsampling factors (1, 2, 4, ...) of the levels with attention."""
        return tuple(2 ** i for i, d in enumerate(self.transformer_depth) if d > 0)

    def input_depths(self) -> list[int]:
        if self.transformer_depth_input is not None:
            return list(self.transformer_depth_input)
        return [d for d, n in zip(self.transformer_depth, self.num_res_blocks) for _ in range(n)]

    def output_depths(self) -> list[int]:
        if self.transformer_depth_output is not None:
            return list(self.transformer_depth_output)
        pairs = list(zip(self.transformer_depth, self.num_res_blocks))[::-1]
        return [d for d, n in pairs for _ in range(n + 1)]

    def heads(self, channels: int) -> tuple[int, int]:
        """(number of heads, channels per head) of a transformer with `channels` channels."""
        if self.num_head_channels == -1:
            return self.num_heads, channels // self.num_heads
        if channels < self.num_head_channels:  # tiny test models: one narrow head
            return 1, channels
        return channels // self.num_head_channels, self.num_head_channels


def _count_blocks(shapes, prefix: str) -> int:
    """1 + the highest block index right after `prefix` ("transformer_blocks." -> N of
    transformer_blocks.N.*) among the keys; 0 when there are none."""
    return 1 + max((int(k[len(prefix):].split(".")[0]) for k in shapes if k.startswith(prefix)), default=-1)


def unet_config_from_state_dict(shapes: dict[str, tuple[int, ...]], norm_groups: int = 32) -> UNetConfig:
    """Infer a UNetConfig from UNet key names and tensor shapes (keys without the
    'model.diffusion_model.' prefix). Neither the head layout nor the GroupNorm group count
    shows in shapes: SD1 (context 768) uses 8 heads, everything else 64-channel heads, as the
    originals do; groups come from the caller (32 unless the checkpoint's metadata says otherwise)."""
    shapes = {k: tuple(v) for k, v in shapes.items()}
    if "input_blocks.0.0.weight" not in shapes:
        raise ValueError("not a LDM UNet state dict: 'input_blocks.0.0.weight' is missing")
    model_channels, in_channels = shapes["input_blocks.0.0.weight"][:2]

    def depth(prefix: str) -> int:
        ids = {k[len(prefix):].split(".")[0] for k in shapes if k.startswith(prefix)}
        return len(ids)

    num_input_blocks = _count_blocks(shapes, "input_blocks.")
    channel_mult, num_res_blocks, input_depths = [], [], []
    res_in_level = 0
    for i in range(1, num_input_blocks):
        if f"input_blocks.{i}.0.op.weight" in shapes:  # downsample closes a level
            num_res_blocks.append(res_in_level)
            res_in_level = 0
            continue
        out_ch = shapes[f"input_blocks.{i}.0.in_layers.2.weight"][0]
        if res_in_level == 0:
            channel_mult.append(out_ch // model_channels)
        res_in_level += 1
        input_depths.append(depth(f"input_blocks.{i}.1.transformer_blocks."))
    num_res_blocks.append(res_in_level)
    disabled = _cross_attending_levels(shapes, num_res_blocks)

    num_output_blocks = 1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("output_blocks."))
    output_depths = [depth(f"output_blocks.{i}.1.transformer_blocks.") for i in range(num_output_blocks)]

    per_level, start = [], 0
    for n in num_res_blocks:
        per_level.append(max(input_depths[start:start + n], default=0))
        start += n
    default_input = [d for d, n in zip(per_level, num_res_blocks) for _ in range(n)]
    default_output = [d for d, n in list(zip(per_level, num_res_blocks))[::-1] for _ in range(n + 1)]

    context_dim = next((s[1] for k, s in shapes.items() if k.endswith("attn2.to_k.weight")), None)
    linear = next((len(s) == 2 for k, s in shapes.items() if k.endswith(".proj_in.weight")), False)
    num_classes = shapes["label_emb.weight"][0] if "label_emb.weight" in shapes else 0
    # SD1 and the x4 upscaler (a class-label table) fix 8 heads, as their LDM configs do
    fixed_heads = context_dim == 768 or num_classes
    heads = dict(num_heads=8, num_head_channels=-1) if fixed_heads else dict(num_heads=-1, num_head_channels=64)
    return UNetConfig(
        in_channels=in_channels,
        out_channels=shapes["out.2.weight"][0],
        model_channels=model_channels,
        channel_mult=tuple(channel_mult),
        num_res_blocks=tuple(num_res_blocks),
        transformer_depth=tuple(per_level),
        transformer_depth_middle=depth("middle_block.1.transformer_blocks."),
        transformer_depth_input=None if input_depths == default_input else tuple(input_depths),
        transformer_depth_output=None if output_depths == default_output else tuple(output_depths),
        context_dim=context_dim,
        use_linear_in_transformer=linear,
        adm_in_channels=shapes["label_emb.0.0.weight"][1] if "label_emb.0.0.weight" in shapes else 0,
        norm_groups=norm_groups,
        num_classes=num_classes,
        disable_self_attentions=disabled if any(disabled) else None,
        **heads,
    )


def _cross_attending_levels(shapes, num_res_blocks) -> tuple[bool, ...]:
    """Per level: whether its first attention reads the context (its keys are context-wide, not
    as wide as its queries). Where the context is as wide as the level this cannot be told, and
    self-attention is assumed, which is what the one model with such levels (the x4 upscaler) has."""
    levels, block = [], 1
    for n in num_res_blocks:
        keys = [shapes.get(f"input_blocks.{block + i}.1.transformer_blocks.0.attn1.to_k.weight") for i in range(n)]
        queries = [shapes.get(f"input_blocks.{block + i}.1.transformer_blocks.0.attn1.to_q.weight") for i in range(n)]
        levels.append(any(k is not None and k[1] != q[1] for k, q in zip(keys, queries)))
        block += n + 1  # the ResBlocks and the Downsample
    return tuple(levels)


@dataclass
class VAEConfig:
    in_channels: int = 3
    out_channels: int = 3
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    z_channels: int = 4
    embed_dim: int = 4  # channels of the latent after quant_conv (= z_channels in practice)
    use_quant_conv: bool = True  # False for SD3/Flux VAEs
    norm_groups: int = 32  # not visible in shapes: comes from the config / checkpoint metadata
    mid_attention: bool = True

    def __post_init__(self):
        self.ch_mult = tuple(self.ch_mult)

    @property
    def downscale(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def latent_channels(self) -> int:
        return self.embed_dim if self.use_quant_conv else self.z_channels


def vae_config_from_state_dict(shapes: dict[str, tuple[int, ...]], norm_groups: int = 32) -> VAEConfig:
    """Infer a VAEConfig from VAE key names and shapes (keys without 'first_stage_model.')."""
    shapes = {k: tuple(v) for k, v in shapes.items()}
    if "encoder.conv_in.weight" not in shapes or "decoder.conv_in.weight" not in shapes:
        raise ValueError("not a LDM VAE state dict: 'encoder.conv_in.weight' / 'decoder.conv_in.weight' missing")
    ch, in_channels = shapes["encoder.conv_in.weight"][:2]
    levels = 1 + max(int(k.split(".")[2]) for k in shapes if k.startswith("encoder.down."))
    ch_mult = tuple(shapes[f"encoder.down.{i}.block.0.conv1.weight"][0] // ch for i in range(levels))
    num_res_blocks = 1 + max(int(k.split(".")[4]) for k in shapes if k.startswith("encoder.down.0.block."))
    z_channels = shapes["decoder.conv_in.weight"][1]
    use_quant_conv = "quant_conv.weight" in shapes
    return VAEConfig(
        in_channels=in_channels,
        out_channels=shapes["decoder.conv_out.weight"][0],
        ch=ch,
        ch_mult=ch_mult,
        num_res_blocks=num_res_blocks,
        z_channels=z_channels,
        embed_dim=shapes["post_quant_conv.weight"][1] if use_quant_conv else z_channels,
        use_quant_conv=use_quant_conv,
        norm_groups=norm_groups,
        mid_attention="encoder.mid.attn_1.q.weight" in shapes,
    )


@dataclass(frozen=True)
class MMDiTConfig:
    in_channels: int = 16
    out_channels: int = 16
    patch_size: int = 2
    hidden_size: int = 1536
    depth: int = 24
    num_heads: int = 24
    mlp_ratio: float = 4.0
    pos_embed_max_size: int = 192
    context_dim: int = 4096
    adm_in_channels: int = 2048
    qk_norm: bool = False
    x_self_attn_layers: tuple[int, ...] = ()  # MMDiT-X blocks with the extra image self-attention

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


def mmdit_config_from_state_dict(shapes: dict[str, tuple]) -> MMDiTConfig:
    """The architecture from key names and shapes (keys without `model.diffusion_model.`).
    Heads cannot be seen in the weights: QK-norm's width gives the head size where present,
    else 64 as in every released SD3 (heads = depth)."""
    hidden, in_channels, patch, _ = shapes["x_embedder.proj.weight"]
    blocks = {int(k.split(".")[1]) for k in shapes if k.startswith("joint_blocks.")}
    depth = max(blocks) + 1
    ln_q = shapes.get("joint_blocks.0.x_block.attn.ln_q.weight")
    head_dim = ln_q[0] if ln_q else 64
    return MMDiTConfig(
        in_channels=in_channels, out_channels=shapes["final_layer.linear.weight"][0] // patch ** 2,
        patch_size=patch, hidden_size=hidden, depth=depth, num_heads=hidden // head_dim,
        mlp_ratio=shapes["joint_blocks.0.x_block.mlp.fc1.weight"][0] / hidden,
        pos_embed_max_size=math.isqrt(shapes["pos_embed"][1]),
        context_dim=shapes["context_embedder.weight"][1], adm_in_channels=shapes["y_embedder.mlp.0.weight"][1],
        qk_norm=ln_q is not None,
        x_self_attn_layers=tuple(i for i in range(depth) if f"joint_blocks.{i}.x_block.attn2.qkv.weight" in shapes))


@dataclass(frozen=True)
class FluxConfig:
    in_channels: int = 64  # packed: 16 latent channels x 2 x 2 (Fill: 384)
    out_channels: int = 64
    vec_in_dim: int = 768
    context_in_dim: int = 4096
    hidden_size: int = 3072
    mlp_ratio: float = 4.0
    num_heads: int = 24
    depth: int = 19
    depth_single_blocks: int = 38
    axes_dim: tuple[int, ...] = (16, 56, 56)
    theta: int = 10000
    qkv_bias: bool = True
    guidance_embed: bool = True  # dev; schnell has no guidance_in

    @property
    def latent_channels(self) -> int:
        return self.out_channels // 4


def flux_config_from_state_dict(shapes: dict[str, tuple]) -> FluxConfig:
    """The architecture from key names and shapes (keys without `model.diffusion_model.`). The
    rotary axes are not in the weights: BFL's split of a 128-wide head is (16, 56, 56); other
    head sizes keep the proportions (7/16 of the head to each spatial axis)."""
    hidden, in_channels = shapes["img_in.weight"]
    head_dim = shapes["double_blocks.0.img_attn.norm.query_norm.scale"][0]
    spatial = head_dim * 7 // 32 * 2
    count = lambda prefix: len({k.split(".")[1] for k in shapes if k.startswith(prefix)})  # noqa: E731
    return FluxConfig(
        in_channels=in_channels, out_channels=shapes["final_layer.linear.weight"][0],
        vec_in_dim=shapes["vector_in.in_layer.weight"][1], context_in_dim=shapes["txt_in.weight"][1],
        hidden_size=hidden, mlp_ratio=shapes["double_blocks.0.img_mlp.0.weight"][0] / hidden,
        num_heads=hidden // head_dim, depth=count("double_blocks."), depth_single_blocks=count("single_blocks."),
        axes_dim=(head_dim - 2 * spatial, spatial, spatial),
        qkv_bias="double_blocks.0.img_attn.qkv.bias" in shapes, guidance_embed="guidance_in.in_layer.weight" in shapes)


@dataclass(frozen=True)
class ChromaConfig:
    """Chroma (lodestones' FLUX.1-schnell derivative): FLUX's blocks without their per-block
    modulation weights; one `distilled_guidance_layer` (the approximator) gives every block's
    modulation vectors. Defaults: chroma-unlocked v50 / Chroma1-HD (8.9B)."""
    in_channels: int = 64
    out_channels: int = 64
    context_in_dim: int = 4096
    hidden_size: int = 3072
    mlp_ratio: float = 4.0
    num_heads: int = 24
    depth: int = 19
    depth_single_blocks: int = 38
    axes_dim: tuple[int, ...] = (16, 56, 56)
    theta: int = 10000
    qkv_bias: bool = True
    approximator_in_dim: int = 64  # 16 timestep + 16 guidance + 32 modulation-index channels
    approximator_hidden: int = 5120
    approximator_layers: int = 5
    guidance_embed = False  # no FLUX-dev guidance input (a class attribute: the sampler reads it)
    pixel_space = False  # latents are the FLUX VAE's, packed 2x2 into in_channels

    @property
    def latent_channels(self) -> int:
        return self.out_channels // 4

    @property
    def modulations(self) -> int:
        """Vectors the approximator makes: 3 per single block, 6 + 6 per double block, 2 final."""
        return 3 * self.depth_single_blocks + 12 * self.depth + 2


@dataclass(frozen=True)
class ChromaRadianceConfig(ChromaConfig):
    """Chroma Radiance (lodestones' pixel-space Chroma): Chroma's trunk on patch_size^2 pixel
    patches (a strided conv in), and a per-patch MLP ("NeRF" head) whose weights each patch's
    hidden state generates, in place of the final layer. Defaults: Chroma1-Radiance as ComfyUI
    configures it (the head's sizes are not read from its weights there; here they are)."""
    in_channels: int = 3  # RGB in -1..1
    out_channels: int = 3
    patch_size: int = 16
    nerf_hidden_size: int = 64
    nerf_mlp_ratio: int = 4
    nerf_depth: int = 4
    nerf_max_freqs: int = 8  # positional features: max_freqs^2 cosine products per pixel
    nerf_tile_size: int = 32  # patches per head call, x batch (0: all at once); ComfyUI v0.3.64's default
    nerf_final_head: str = "linear"  # "linear" (nerf_final_layer) or "conv" (nerf_final_layer_conv, 3x3)
    pixel_space = True  # latents are the image itself [B, 3, H, W]

    @property
    def latent_channels(self) -> int:
        return self.in_channels


def chroma_config_from_state_dict(shapes: dict[str, tuple]) -> ChromaConfig:
    """The architecture from key names and shapes (keys without `model.diffusion_model.`); the
    rotary axes as for FLUX (flux_config_from_state_dict). A ChromaRadianceConfig where the NeRF
    head's `nerf_blocks.0.norm.scale` is present (ComfyUI's marker of Chroma Radiance)."""
    head_dim = shapes["double_blocks.0.img_attn.norm.query_norm.scale"][0]
    spatial = head_dim * 7 // 32 * 2
    approximator_hidden, approximator_in = shapes["distilled_guidance_layer.in_proj.weight"]
    count = lambda prefix: len({k[len(prefix):].split(".")[0] for k in shapes if k.startswith(prefix)})  # noqa: E731
    hidden = shapes["txt_in.weight"][0]
    trunk = dict(
        context_in_dim=shapes["txt_in.weight"][1], hidden_size=hidden,
        mlp_ratio=shapes["double_blocks.0.img_mlp.0.weight"][0] / hidden, num_heads=hidden // head_dim,
        depth=count("double_blocks."), depth_single_blocks=count("single_blocks."),
        axes_dim=(head_dim - 2 * spatial, spatial, spatial), qkv_bias="double_blocks.0.img_attn.qkv.bias" in shapes,
        approximator_in_dim=approximator_in, approximator_hidden=approximator_hidden,
        approximator_layers=count("distilled_guidance_layer.layers."))
    if "nerf_blocks.0.norm.scale" not in shapes:
        return ChromaConfig(in_channels=shapes["img_in.weight"][1], out_channels=shapes["final_layer.linear.weight"][0],
                            **trunk)
    _, channels, patch, _ = shapes["img_in_patch.weight"]
    nerf_hidden, embed_in = shapes["nerf_image_embedder.embedder.0.weight"]
    freqs = round((embed_in - channels) ** 0.5)
    if freqs * freqs != embed_in - channels:
        raise ValueError(f"nerf_image_embedder takes {embed_in} features: not {channels} channels + a square "
                         "number of positional features")
    return ChromaRadianceConfig(
        in_channels=channels, out_channels=channels, patch_size=patch, nerf_hidden_size=nerf_hidden,
        nerf_mlp_ratio=shapes["nerf_blocks.0.param_generator.weight"][0] // (3 * nerf_hidden ** 2),
        nerf_depth=count("nerf_blocks."), nerf_max_freqs=freqs,
        nerf_final_head="conv" if "nerf_final_layer_conv.norm.scale" in shapes else "linear", **trunk)


@dataclass(frozen=True)
class PixArtConfig:
    """PixArt-α / PixArt-Σ (graphflow.models.pixart). Defaults: PixArt-XL-2 (α 1024-MS)."""
    depth: int = 28
    hidden_size: int = 1152
    num_heads: int = 16
    patch_size: int = 2
    in_channels: int = 4
    out_channels: int = 8  # learned sigma: eps and a variance interpolation; only eps is used
    caption_channels: int = 4096  # T5-XXL's width
    mlp_ratio: float = 4.0
    micro_condition: bool = True  # α's size and aspect-ratio embedders; Σ has none
    # the positional embedding's scale (the original files' "lewei scale"); None: from the
    # image size on the fly (ComfyUI's rule, for files without a pos_embed buffer)
    pe_interpolation: float | None = None

    @property
    def variant(self) -> str:
        return "pixart_alpha" if self.micro_condition else "pixart_sigma"


PIXART_HEAD_DIM = 72  # every released PixArt: 1152 wide, 16 heads (ComfyUI hard-codes both)


def pixart_config_from_state_dict(shapes: dict[str, tuple]) -> PixArtConfig:
    """The architecture from the original layout's names and shapes (keys without prefix).
    Heads: width / 72 (PixArt-XL-2's 16 for 1152). pe_interpolation from a `pos_embed` buffer
    of the training size as ComfyUI guesses it (latent side / 64, at least 1)."""
    if any(".attn.sr." in k for k in shapes):
        raise ValueError("KV-compressed self-attention (attn.sr.*, PixArt-Σ's token compression) is not "
                         "supported, as ComfyUI does not load it either")
    hidden, in_channels, patch, _ = shapes["x_embedder.proj.weight"]
    if patch != _ or hidden % PIXART_HEAD_DIM:
        raise ValueError(f"x_embedder.proj.weight {shapes['x_embedder.proj.weight']}: expected square patches and "
                         f"a width divisible by {PIXART_HEAD_DIM}")
    pe_interpolation = None
    if "pos_embed" in shapes:
        side = math.isqrt(shapes["pos_embed"][1]) * patch
        pe_interpolation = float(max(1, side // 64))
    depth = len({k.split(".")[1] for k in shapes if k.startswith("blocks.")})
    return PixArtConfig(
        depth=depth, hidden_size=hidden, num_heads=hidden // PIXART_HEAD_DIM, patch_size=patch,
        in_channels=in_channels, out_channels=shapes["final_layer.linear.weight"][0] // (patch * patch),
        caption_channels=shapes["y_embedder.y_proj.fc1.weight"][1],
        mlp_ratio=shapes["blocks.0.mlp.fc1.weight"][0] / hidden,
        micro_condition="ar_embedder.mlp.0.weight" in shapes, pe_interpolation=pe_interpolation)


@dataclass(frozen=True)
class LTXVConfig:
    """LTX-Video's transformer (Lightricks). Defaults: ltx-video-2b-v0.9*. The head count is
    not in the weights; like ComfyUI we take 32 heads, the 2B model's."""
    in_channels: int = 128
    hidden_size: int = 2048
    num_heads: int = 32
    depth: int = 28
    cross_attention_dim: int = 2048
    caption_channels: int = 4096  # T5-XXL
    mlp_hidden: int = 8192
    causal_temporal_positioning: bool = False  # True in later Lightricks configs (file metadata)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def latent_channels(self) -> int:
        return self.in_channels


def ltxv_config_from_state_dict(shapes: dict[str, tuple], num_heads: int = 32) -> LTXVConfig:
    """The architecture from key names and shapes (keys without `model.diffusion_model.`)."""
    hidden, in_channels = shapes["patchify_proj.weight"]
    count = len({k.split(".")[1] for k in shapes if k.startswith("transformer_blocks.")})
    return LTXVConfig(
        in_channels=in_channels, hidden_size=hidden, num_heads=num_heads, depth=count,
        cross_attention_dim=shapes["transformer_blocks.0.attn2.to_k.weight"][1],
        caption_channels=shapes["caption_projection.linear_1.weight"][1],
        mlp_hidden=shapes["transformer_blocks.0.ff.net.0.proj.weight"][0])


@dataclass(frozen=True)
class LTXVVAEConfig:
    """LTX-Video's causal video VAE (0.9.0 layout, `vae.*`): the encoder's and decoder's blocks in
    Lightricks' flat order, each ("res_x", layers) a group of residual blocks at one width,
    ("res_x_y", out_channels) one residual block changing width, ("compress_all", 0) a 2x
    down/upscale of frames, rows and columns. Defaults: ltx-video-2b-v0.9."""
    encoder_blocks: tuple = (("res_x", 4), ("compress_all", 0), ("res_x_y", 256), ("res_x", 3), ("compress_all", 0),
                             ("res_x_y", 512), ("res_x", 3), ("compress_all", 0), ("res_x", 3), ("res_x", 4))
    decoder_blocks: tuple = (("res_x", 4), ("res_x", 3), ("compress_all", 0), ("res_x", 3), ("res_x_y", 256),
                             ("compress_all", 0), ("res_x", 3), ("res_x_y", 128), ("compress_all", 0), ("res_x", 4))
    encoder_channels: int = 128  # after conv_in
    decoder_channels: int = 512  # after conv_in
    latent_channels: int = 128
    patch_size: int = 4
    out_channels: int = 3

    @property
    def downscale(self) -> int:
        return self.patch_size * 2 ** sum(kind == "compress_all" for kind, _ in self.encoder_blocks)

    @property
    def frames_per_latent(self) -> int:
        return 2 ** sum(kind == "compress_all" for kind, _ in self.decoder_blocks)


def ltxv_vae_config_from_state_dict(shapes: dict[str, tuple]) -> LTXVVAEConfig:
    """The block layout from key names and shapes (keys without `vae.`)."""
    def blocks(part: str, group: str, compress_key: str) -> tuple:
        found = []
        for i in range(len({k.split(".")[2] for k in shapes if k.startswith(f"{part}.{group}.")})):
            prefix = f"{part}.{group}.{i}."
            if f"{prefix}res_blocks.0.conv1.conv.weight" in shapes:
                count = len({k[len(prefix):].split(".")[1] for k in shapes if k.startswith(f"{prefix}res_blocks.")})
                found.append(("res_x", count))
            elif f"{prefix}conv1.conv.weight" in shapes:
                found.append(("res_x_y", shapes[f"{prefix}conv1.conv.weight"][0]))
            elif prefix + compress_key in shapes:
                found.append(("compress_all", 0))
            else:
                raise KeyError(f"LTX-Video VAE: {prefix.rstrip('.')} is no block this loader knows")
        return tuple(found)

    encoder_in = shapes["encoder.conv_in.conv.weight"]
    return LTXVVAEConfig(
        encoder_blocks=blocks("encoder", "down_blocks", "conv.weight"),
        decoder_blocks=blocks("decoder", "up_blocks", "conv.conv.weight"),
        encoder_channels=encoder_in[0], decoder_channels=shapes["decoder.conv_in.conv.weight"][0],
        latent_channels=shapes["decoder.conv_in.conv.weight"][1], patch_size=round((encoder_in[1] / 3) ** 0.5),
        out_channels=shapes["decoder.conv_out.conv.weight"][0] // round((encoder_in[1] / 3)))


@dataclass(frozen=True)
class MochiConfig:
    """Genmo's Mochi 1 transformer (asymmetric MM-DiT: a wide visual stream, a narrower text
    stream, joint attention). Defaults: mochi-1-preview. The attention pool's 8 heads are not
    in the weights (Genmo's and diffusers' fixed number)."""
    in_channels: int = 12
    patch_size: int = 2
    hidden_size: int = 3072  # the visual stream
    hidden_size_y: int = 1536  # the text stream
    num_heads: int = 24
    depth: int = 48
    text_dim: int = 4096  # T5-XXL
    mlp_hidden_x: int = 8192
    mlp_hidden_y: int = 4096
    out_channels: int = 12
    pool_heads: int = 8

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def latent_channels(self) -> int:
        return self.in_channels


def mochi_config_from_state_dict(shapes: dict[str, tuple]) -> MochiConfig:
    """The architecture from Genmo's key names and shapes (keys without `model.diffusion_model.`)."""
    hidden, in_channels, patch, _ = shapes["x_embedder.proj.weight"]
    _, heads, half = shapes["pos_frequencies"]
    if heads * half * 2 != hidden:
        raise ValueError(f"pos_frequencies {tuple(shapes['pos_frequencies'])} do not fit the width {hidden}")
    depth = len({k.split(".")[1] for k in shapes if k.startswith("blocks.")})
    return MochiConfig(
        in_channels=in_channels, patch_size=patch, hidden_size=hidden, hidden_size_y=shapes["t5_yproj.weight"][0],
        num_heads=heads, depth=depth, text_dim=shapes["t5_yproj.weight"][1],
        mlp_hidden_x=shapes["blocks.0.mlp_x.w1.weight"][0] // 2,
        mlp_hidden_y=shapes.get("blocks.0.mlp_y.w1.weight", (0,))[0] // 2,  # none with one block (the last has none)
        out_channels=shapes["final_layer.linear.weight"][0] // (patch * patch))


@dataclass(frozen=True)
class MochiVAEConfig:
    """Mochi's video VAE decoder (Genmo's layout). Widths from the latent side down to the
    pixels; per stage the residual blocks, and each up block's frame / pixel expansion.
    Defaults: Genmo's mochi-1-preview decoder (6x frames, 8x rows and columns)."""
    latent_channels: int = 12
    channels: tuple = (768, 512, 256, 128)  # block_in's width, then after each up block
    layers: tuple = (3, 6, 4, 3, 3)  # block_in, the up blocks, block_out
    temporal_expansions: tuple = (3, 2, 1)
    spatial_expansion: int = 2
    out_channels: int = 3

    @property
    def downscale(self) -> int:
        return self.spatial_expansion ** len(self.temporal_expansions)

    @property
    def frames_per_latent(self) -> int:
        return math.prod(self.temporal_expansions)


def mochi_vae_config_from_state_dict(shapes: dict[str, tuple]) -> MochiVAEConfig:
    """The decoder's layout from Genmo's key names and shapes (keys without `decoder.`); the
    spatial expansion is Genmo's 2, the frame expansions follow from the up projections' widths."""
    stages = 1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("blocks."))
    count = lambda prefix: len({k[len(prefix):].split(".")[0] for k in shapes  # noqa: E731
                                if k.startswith(prefix) and ".stack." in k})
    channels, temporal = [shapes["blocks.0.0.weight"][0]], []
    for i in range(1, stages - 1):
        out = shapes[f"blocks.{i}.proj.weight"][0]
        width = shapes[f"blocks.{i + 1}.0.stack.0.weight" if i == stages - 2 else
                       f"blocks.{i + 1}.blocks.0.stack.0.weight"][0]
        temporal.append(out // (width * 4))
        channels.append(width)
    return MochiVAEConfig(
        latent_channels=shapes["blocks.0.0.weight"][1], channels=tuple(channels),
        layers=(count("blocks.0."),) + tuple(count(f"blocks.{i}.blocks.") for i in range(1, stages - 1))
        + (count(f"blocks.{stages - 1}."),),
        temporal_expansions=tuple(temporal), out_channels=shapes["output_proj.weight"][0])


@dataclass(frozen=True)
class MochiVAEEncoderConfig:
    """Mochi's video VAE encoder (Genmo's layout): widths from the pixels up, per stage the
    residual blocks (block_in, each down block, block_out) and whether they carry temporal
    attention, each down block's frame reduction (rows and columns halve). Defaults: Genmo's."""
    channels: tuple = (64, 128, 256, 384)
    layers: tuple = (3, 3, 4, 6, 3)
    attention: tuple = (False, True, True, True, True)
    temporal_reductions: tuple = (1, 2, 3)
    latent_channels: int = 12


def mochi_vae_encoder_config_from_state_dict(shapes: dict[str, tuple]) -> MochiVAEEncoderConfig:
    """The encoder's layout from Genmo's key names and shapes (keys without `encoder.`): layers.0
    the input projection, then residual blocks (block_in before the first down block, block_out
    after the last) and down blocks (a strided convolution `layers.0`, residual blocks after it)."""
    channels, temporal, down = [shapes["layers.0.weight"][0]], [], []
    ends = {"in": [0, False], "out": [0, False]}  # residual blocks and attention of block_in / block_out
    index = 1
    while True:
        prefix = f"layers.{index}."
        if prefix + "layers.0.weight" in shapes:
            conv = shapes[prefix + "layers.0.weight"]
            channels.append(conv[0])
            temporal.append(conv[2])
            count = len({k[len(prefix):].split(".")[1] for k in shapes if k.startswith(prefix + "layers.")}) - 1
            down.append((count, f"{prefix}layers.1.attn_block.attn.qkv.weight" in shapes))
        elif prefix + "stack.0.weight" in shapes:
            end = ends["out" if down else "in"]
            end[0] += 1
            end[1] = prefix + "attn_block.attn.qkv.weight" in shapes
        else:
            break
        index += 1
    stages = [tuple(ends["in"]), *down, tuple(ends["out"])]
    return MochiVAEEncoderConfig(channels=tuple(channels), layers=tuple(n for n, _ in stages),
                                 attention=tuple(a for _, a in stages), temporal_reductions=tuple(temporal),
                                 latent_channels=shapes["output_proj.weight"][0] // 2)


# -- text encoder towers of single-file SD1/SD2/SDXL checkpoints ------------------------------
HF, OPENCLIP = "hf", "openclip"


@dataclass(frozen=True)
class TowerSpec:
    """Where a tower lives in a single-file checkpoint and how it is read."""

    name: str  # clip_l | clip_h | clip_g
    prefix: str
    layout: str  # HF (transformers' names below text_model.) or OPENCLIP
    pad_token: int  # SD1's CLIP-L pads with EOS, OpenCLIP with 0
    hidden_act: str  # not visible in weights: OpenAI CLIP-L uses quick_gelu, OpenCLIP gelu


CLIP_L = dict(name="clip_l", layout=HF, pad_token=EOS, hidden_act="quick_gelu")
OPEN_CLIP = dict(layout=OPENCLIP, pad_token=0, hidden_act="gelu")

ARCH_TOWERS: dict[str, tuple[TowerSpec, ...]] = {
    "sd1": (TowerSpec(prefix="cond_stage_model.transformer.text_model.", **CLIP_L),),
    "sd2": (TowerSpec(name="clip_h", prefix="cond_stage_model.model.", **OPEN_CLIP),),
    "sdxl": (TowerSpec(prefix="conditioner.embedders.0.transformer.text_model.", **CLIP_L),
             TowerSpec(name="clip_g", prefix="conditioner.embedders.1.model.", **OPEN_CLIP)),
    "sdxl_refiner": (TowerSpec(name="clip_g", prefix="conditioner.embedders.0.model.", **OPEN_CLIP),),
}
DEFAULT_CLIP_SKIP = {"sd1": -1, "sd2": -2, "sdxl": -2, "sdxl_refiner": -2}
LAYER_NORM_HIDDEN = {"sd1": True, "sd2": True, "sdxl": False, "sdxl_refiner": False}


@dataclass(frozen=True)
class WanConfig:
    """The Wan 2.1 video transformer (Alibaba's original layout). Defaults: Wan2.1 T2V 14B; the
    1.3B is dim 1536, ffn 8960, 30 layers, 12 heads. Heads are not in the weights: ComfyUI reads
    them as dim // 128 (every released Wan has 128-channel heads). I2V / FLF2V: 36 input
    channels (16 noise + 4 mask + 16 image latent) and the CLIP-H image projection (img_emb;
    FLF2V's with learned positions for its 2 x 257 image tokens, img_emb_tokens)."""
    in_channels: int = 16
    out_channels: int = 16
    patch_size: tuple = (1, 2, 2)
    dim: int = 5120
    ffn_dim: int = 13824
    freq_dim: int = 256
    text_dim: int = 4096  # UMT5-XXL
    num_heads: int = 40
    depth: int = 40
    cross_attn_norm: bool = True  # blocks.N.norm3 (an affine LayerNorm before the cross-attention)
    image_dim: int = 0  # I2V: the CLIP vision width (1280, ViT-H's penultimate states); 0: T2V
    img_emb_tokens: int = 0  # FLF2V: img_emb.emb_pos's token count
    vace_layers: int = 0  # VACE: its blocks (vace_blocks.N), one after every depth // vace_layers main blocks
    vace_in_channels: int = 0  # VACE: vace_patch_embedding's input (96: 32 latent + 64 mask channels)
    ref_in_channels: int = 0  # Wan 2.2 Fun Control: ref_conv's input (the reference image latent's channels)
    camera_in_channels: int = 0  # Wan Fun Control-Camera: control_adapter's input (24: 6 Plücker x 4 frames)
    # Wan 2.2 Animate (graphflow.models.wan_animate): face adapter blocks (one per 5 main blocks; 0: not Animate),
    # the motion encoder's conv widths (conv_in's, then each residual block's: 7 blocks for 512x512 faces),
    # its style width (dec.direction's rows), motion coefficients (20) and linear layers (5), the face
    # encoder's hidden width (1024) and heads (4)
    face_adapter_layers: int = 0
    motion_channels: tuple = ()
    motion_style_dim: int = 512
    motion_dim: int = 20
    motion_fc_layers: int = 5
    face_hidden_dim: int = 1024
    face_heads: int = 4

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def latent_channels(self) -> int:
        return self.out_channels

    @property
    def i2v(self) -> bool:
        return self.image_dim > 0


WAN_HEAD_DIM = 128


def wan_config_from_state_dict(shapes: dict[str, tuple]) -> WanConfig:
    """The architecture from Wan's key names and shapes (keys without `model.diffusion_model.`)."""
    dim, in_channels, *patch = shapes["patch_embedding.weight"]
    if dim % WAN_HEAD_DIM:
        raise ValueError(f"the width {dim} is not a multiple of Wan's {WAN_HEAD_DIM}-channel heads")
    depth = len({k.split(".")[1] for k in shapes if k.startswith("blocks.")})
    out = shapes["head.head.weight"][0]
    vace = len({k.split(".")[1] for k in shapes if k.startswith("vace_blocks.")})
    if vace and depth % vace:
        raise ValueError(f"{vace} VACE blocks do not divide the {depth} blocks evenly")
    if out % (patch[0] * patch[1] * patch[2]):
        raise ValueError(f"head.head's {out} outputs are not a whole number of {tuple(patch)} patches")
    return WanConfig(
        in_channels=in_channels, out_channels=out // (patch[0] * patch[1] * patch[2]), patch_size=tuple(patch),
        dim=dim, ffn_dim=shapes["blocks.0.ffn.0.weight"][0], freq_dim=shapes["time_embedding.0.weight"][1],
        text_dim=shapes["text_embedding.0.weight"][1], num_heads=dim // WAN_HEAD_DIM, depth=depth,
        cross_attn_norm="blocks.0.norm3.weight" in shapes,
        image_dim=shapes["img_emb.proj.0.weight"][0] if "img_emb.proj.0.weight" in shapes else 0,
        img_emb_tokens=shapes["img_emb.emb_pos"][1] if "img_emb.emb_pos" in shapes else 0,
        vace_layers=len({k.split(".")[1] for k in shapes if k.startswith("vace_blocks.")}),
        vace_in_channels=shapes["vace_patch_embedding.weight"][1] if "vace_patch_embedding.weight" in shapes else 0,
        ref_in_channels=shapes["ref_conv.weight"][1] if "ref_conv.weight" in shapes else 0,
        # the adapter's conv sees 8x8 pixel blocks unshuffled into channels
        camera_in_channels=shapes["control_adapter.conv.weight"][1] // 64 if "control_adapter.conv.weight" in shapes
        else 0, **_wan_animate_config(shapes, depth))


def _wan_animate_config(shapes: dict[str, tuple], depth: int) -> dict:
    """Wan 2.2 Animate's extra WanConfig fields from its motion encoder, face encoder and adapter keys
    (ComfyUI's marker: pose_patch_embedding.weight); {} for other Wans."""
    if "pose_patch_embedding.weight" not in shapes:
        return {}
    convs = "motion_encoder.enc.net_app.convs."
    blocks = len({k[len(convs):].split(".")[0] for k in shapes if k.startswith(convs)}) - 2  # less conv_in, conv_out
    if blocks < 1 or "face_encoder.conv2.conv.weight" not in shapes:
        raise ValueError("a Wan Animate model (pose_patch_embedding) without its motion or face encoder")
    hidden = shapes["face_encoder.conv2.conv.weight"][0]
    adapters = len({k.split(".")[2] for k in shapes if k.startswith("face_adapter.fuser_blocks.")})
    if adapters != -(-depth // 5):  # one after blocks 0, 5, 10, ... (graphflow.models.wan.FACE_EVERY)
        raise ValueError(f"a Wan Animate model of {depth} blocks needs {-(-depth // 5)} face adapter blocks, "
                         f"not {adapters}")
    style, motion = shapes["motion_encoder.dec.direction.weight"]
    return dict(
        face_adapter_layers=adapters,
        motion_channels=(shapes[convs + "0.0.weight"][0],
                         *(shapes[f"{convs}{i}.conv2.1.weight"][0] for i in range(1, blocks + 1))),
        motion_style_dim=style, motion_dim=motion,
        motion_fc_layers=len({k.split(".")[3] for k in shapes if k.startswith("motion_encoder.enc.fc.")}),
        face_hidden_dim=hidden, face_heads=shapes["face_encoder.conv1_local.conv.weight"][0] // hidden)


LUMINA2_MARKER = "cap_embedder.1.weight"  # ComfyUI's test for Lumina 2 (with noise_refiner.0.attention.k_norm.weight)
LUMINA2_LATENT_CHANNELS = 16


@dataclass(frozen=True)
class Lumina2Config:
    """Defaults: Lumina-Image-2.0 (2.6B; Neta Lumina the same)."""
    in_channels: int = LUMINA2_LATENT_CHANNELS
    patch_size: int = 2
    dim: int = 2304
    num_layers: int = 26
    num_refiner_layers: int = 2
    num_heads: int = 24
    num_kv_heads: int = 8
    ffn_dim: int = 9216
    cap_feat_dim: int = 2304
    axes_dims: tuple = (32, 32, 32)
    norm_eps: float = 1e-5
    theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def adaln_dim(self) -> int:  # the timestep embedding's width
        return min(self.dim, 1024)


def lumina2_config_from_state_dict(shapes: dict[str, tuple]) -> Lumina2Config:
    """From the shapes (prefix stripped). Heads from the per-head q_norm; the rotary axes split
    the head in three equal parts, as Lumina 2's (32, 32, 32)."""
    dim, cap_feat_dim = shapes[LUMINA2_MARKER]
    head_dim = shapes["layers.0.attention.q_norm.weight"][0]
    heads = dim // head_dim
    kv_heads = (shapes["layers.0.attention.qkv.weight"][0] // head_dim - heads) // 2
    if head_dim % 6:
        raise ValueError(f"Lumina 2 heads of {head_dim} channels do not split into three even rotary axes")
    in_features = shapes["x_embedder.weight"][1]
    patch = round((in_features / LUMINA2_LATENT_CHANNELS) ** 0.5)
    if patch * patch * LUMINA2_LATENT_CHANNELS != in_features:
        raise ValueError(f"Lumina 2's x_embedder takes {in_features} features, not patches of "
                         f"{LUMINA2_LATENT_CHANNELS} channels")
    return Lumina2Config(patch_size=patch, dim=dim, num_layers=_count_blocks(shapes, "layers."),
                         num_refiner_layers=_count_blocks(shapes, "noise_refiner."),
                         num_heads=heads, num_kv_heads=kv_heads, ffn_dim=shapes["layers.0.feed_forward.w1.weight"][0],
                         cap_feat_dim=cap_feat_dim, axes_dims=(head_dim // 3,) * 3)


QWEN_IMAGE_MARKER = "txt_norm.weight"  # ComfyUI's test for Qwen-Image (model_detection's)
QWEN_IMAGE_LATENT_CHANNELS = 16  # the Wan 2.1 VAE's


@dataclass(frozen=True)
class QwenImageConfig:
    """Defaults: Qwen-Image (20B; also its Edit and 2512 releases): 60 double-stream blocks, 24
    heads of 128, Qwen2.5-VL 7B's 3584-wide states in, 2x2 patches of 16 channels."""
    in_channels: int = 4 * QWEN_IMAGE_LATENT_CHANNELS  # a 2x2 patch of the latent, packed
    out_channels: int = QWEN_IMAGE_LATENT_CHANNELS
    patch_size: int = 2
    num_layers: int = 60
    num_heads: int = 24
    head_dim: int = 128
    joint_attention_dim: int = 3584
    axes_dims: tuple = (16, 56, 56)  # rotary axes: frame, row, column
    theta: float = 10000.0

    @property
    def dim(self) -> int:
        return self.num_heads * self.head_dim


def qwen_image_config_from_state_dict(shapes: dict[str, tuple]) -> QwenImageConfig:
    """From the shapes (prefix stripped). Heads from the per-head norm_q; the rotary axes split
    the head as Qwen-Image's (16, 56, 56) does a 128-wide one: 1/8 frame, 7/16 each row and column
    (ComfyUI reads none of these, its defaults being Qwen-Image's)."""
    dim, joint_dim = shapes["txt_in.weight"]
    in_channels = shapes["img_in.weight"][1]
    head_dim = shapes["transformer_blocks.0.attn.norm_q.weight"][0]
    if dim % head_dim or head_dim % 32:
        raise ValueError(f"Qwen-Image heads of {head_dim} channels (width {dim}) do not split into its rotary axes")
    patch = round((in_channels / QWEN_IMAGE_LATENT_CHANNELS) ** 0.5)
    if patch * patch * QWEN_IMAGE_LATENT_CHANNELS != in_channels:
        raise ValueError(f"Qwen-Image's img_in takes {in_channels} features, not patches of "
                         f"{QWEN_IMAGE_LATENT_CHANNELS} channels")
    layers = _count_blocks(shapes, "transformer_blocks.")
    return QwenImageConfig(in_channels=in_channels, out_channels=shapes["proj_out.weight"][0] // (patch * patch),
                           patch_size=patch, num_layers=layers, num_heads=dim // head_dim, head_dim=head_dim,
                           joint_attention_dim=joint_dim,
                           axes_dims=(head_dim // 8, head_dim * 7 // 16, head_dim * 7 // 16))


HIDREAM_MARKER = "caption_projection.0.linear.weight"  # ComfyUI's test for HiDream (model_detection's)
HIDREAM_LATENT_CHANNELS = 16  # FLUX's VAE


def swiglu_hidden(dim: int, hidden: int, multiple_of: int = 256) -> int:
    """The width of HiDream's SwiGLU feed-forwards asked for `hidden`: 2/3 of it rounded up to a
    multiple of 256 (LLaMA's rule; 4 x 2560 -> 6912, the shared expert's 2 x 2560 -> 3584)."""
    return multiple_of * -(-int(2 * hidden / 3) // multiple_of)


@dataclass(frozen=True)
class HiDreamConfig:
    """Defaults: HiDream-I1 (Full, Dev and Fast alike): 16 double-stream + 32 single-stream blocks,
    20 heads of 128, MoE feed-forwards (4 routed experts, top 2, + a shared one), T5-XXL's and
    Llama 3.1 8B's 4096-wide states, CLIP-L + CLIP-G pooled (2048) into the timestep embedding."""
    in_channels: int = HIDREAM_LATENT_CHANNELS
    out_channels: int = HIDREAM_LATENT_CHANNELS
    patch_size: int = 2
    num_layers: int = 16  # double-stream
    num_single_layers: int = 32
    num_heads: int = 20
    head_dim: int = 128
    t5_dim: int = 4096  # caption_projection[-1]'s input
    llama_dim: int = 4096  # caption_projection[0 .. blocks - 1]'s input
    text_emb_dim: int = 2048  # the pooled CLIP-L (768) + CLIP-G (1280) vector
    num_routed_experts: int = 4
    num_activated_experts: int = 2
    expert_hidden: int = 6912  # swiglu_hidden of 4 x width: every routed expert, and the text stream's
    shared_hidden: int = 3584  # swiglu_hidden of 2 x width
    axes_dims: tuple = (64, 32, 32)  # rotary axes (unused: 0 for every token, row, column)
    theta: float = 10000.0
    # Llama layer each block's caption projection reads: ComfyUI's list, 0 .. 31 then the last
    # (31) for the remaining blocks
    llama_layers: tuple = tuple(min(i, 31) for i in range(48))

    @property
    def dim(self) -> int:
        return self.num_heads * self.head_dim


def hidream_config_from_state_dict(shapes: dict[str, tuple]) -> HiDreamConfig:
    """From the shapes (prefix stripped). ComfyUI reads none of them (its defaults are HiDream-I1's);
    here the widths come from the weights, heads of 128 (32 for widths not a multiple of 128: tiny
    test models), the rotary axes half / quarter / quarter of a head as HiDream's (64, 32, 32),
    and block i reads Llama layer min(i, 31) (ComfyUI's list for 48 blocks)."""
    dim, patch_in = shapes["x_embedder.proj.weight"]
    head_dim = 128 if dim % 128 == 0 else 32
    if dim % head_dim:
        raise ValueError(f"HiDream's width {dim} does not split into heads of 32 or 128 channels")
    double = _count_blocks(shapes, "double_stream_blocks.")
    single = _count_blocks(shapes, "single_stream_blocks.")
    experts = _count_blocks(shapes, "double_stream_blocks.0.block.ff_i.experts.")
    out_features = shapes["final_layer.linear.weight"][0]
    patch = round((patch_in / HIDREAM_LATENT_CHANNELS) ** 0.5)
    if patch * patch * HIDREAM_LATENT_CHANNELS != patch_in:
        raise ValueError(f"HiDream's x_embedder takes {patch_in} features, not patches of "
                         f"{HIDREAM_LATENT_CHANNELS} channels")
    ff = "double_stream_blocks.0.block.ff_i." if double else "single_stream_blocks.0.block.ff_i."
    return HiDreamConfig(
        in_channels=patch_in // (patch * patch), out_channels=out_features // (patch * patch), patch_size=patch,
        num_layers=double, num_single_layers=single, num_heads=dim // head_dim, head_dim=head_dim,
        t5_dim=shapes[f"caption_projection.{double + single}.linear.weight"][1],
        llama_dim=shapes["caption_projection.0.linear.weight"][1],
        text_emb_dim=shapes["p_embedder.pooled_embedder.linear_1.weight"][1],
        num_routed_experts=experts, num_activated_experts=min(2, experts),
        expert_hidden=shapes[ff + "experts.0.w1.weight"][0], shared_hidden=shapes[ff + "shared_experts.w1.weight"][0],
        axes_dims=(head_dim // 2, head_dim // 4, head_dim // 4),
        llama_layers=tuple(min(i, 31) for i in range(double + single)))


HUNYUAN_VIDEO_MARKER = "txt_in.individual_token_refiner.blocks.0.norm1.weight"  # ComfyUI's test (model_detection's)


@dataclass(frozen=True)
class HunyuanVideoConfig:
    """Defaults: HunyuanVideo 1.0 text-to-video (13B, hunyuan_video_t2v_720p): 20 double-stream +
    40 single-stream blocks, 24 heads of 128, 1x2x2 patches of its VAE's 16 channels, LLaVA-Llama-3's
    4096-wide states through a 2-block token refiner, CLIP-L's pooled 768 vector, guidance-distilled."""
    in_channels: int = 16
    out_channels: int = 16
    patch_size: tuple = (1, 2, 2)  # frames, rows, columns
    hidden_size: int = 3072
    num_heads: int = 24
    depth: int = 20
    depth_single_blocks: int = 40
    refiner_depth: int = 2
    mlp_ratio: float = 4.0
    context_in_dim: int = 4096
    vec_in_dim: int = 768
    guidance_embed: bool = True
    qkv_bias: bool = True
    axes_dim: tuple = (16, 56, 56)  # rotary axes: frame, row, column
    theta: int = 256

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


# ComfyUI's own module names (FLUX's) -> Tencent's, where they differ: the inverse of ComfyUI's
# HunyuanVideo.process_unet_state_dict, for files ComfyUI saved (ModelSave, CheckpointSave)
_HYV_COMFY_NAMES = ((r"\.t_embedder\.in_layer\.", ".t_embedder.mlp.0."),
                    (r"\.t_embedder\.out_layer\.", ".t_embedder.mlp.2."),
                    (r"\.c_embedder\.in_layer\.", ".c_embedder.linear_1."),
                    (r"\.c_embedder\.out_layer\.", ".c_embedder.linear_2."),
                    (r"^(time|guidance|time_r)_in\.in_layer\.", r"\1_in.mlp.0."),
                    (r"^(time|guidance|time_r)_in\.out_layer\.", r"\1_in.mlp.2."),
                    (r"_mod\.lin\.", "_mod.linear."), (r"\.modulation\.lin\.", ".modulation.linear."),
                    (r"_attn\.qkv\.", "_attn_qkv."), (r"_attn\.proj\.", "_attn_proj."),
                    (r"_attn\.norm\.query_norm\.scale$", "_attn_q_norm.weight"),
                    (r"_attn\.norm\.key_norm\.scale$", "_attn_k_norm.weight"),
                    (r"\.norm\.query_norm\.scale$", ".q_norm.weight"), (r"\.norm\.key_norm\.scale$", ".k_norm.weight"),
                    (r"(_mlp|blocks\.\d+\.mlp)\.0\.", r"\1.fc1."), (r"(_mlp|blocks\.\d+\.mlp)\.2\.", r"\1.fc2."))


def hunyuan_video_tencent_name(key: str) -> str:
    """A HunyuanVideo key in Tencent's names (ours), from ComfyUI's own module names or Tencent's."""
    for pattern, name in _HYV_COMFY_NAMES:
        key = re.sub(pattern, name, key)
    return key


def _hunyuan_dit_fields(shapes: dict[str, tuple]) -> dict:
    """The config fields HunyuanVideo and HunyuanImage read alike from Tencent's names."""
    hidden, in_channels, *patch = shapes["img_in.proj.weight"]
    return dict(
        in_channels=in_channels, out_channels=shapes["final_layer.linear.weight"][0] // math.prod(patch),
        patch_size=tuple(patch), hidden_size=hidden,
        num_heads=hidden // shapes["double_blocks.0.img_attn_q_norm.weight"][0],
        depth=_count_blocks(shapes, "double_blocks."), depth_single_blocks=_count_blocks(shapes, "single_blocks."),
        refiner_depth=_count_blocks(shapes, "txt_in.individual_token_refiner.blocks."),
        mlp_ratio=shapes["double_blocks.0.img_mlp.fc1.weight"][0] / hidden,
        context_in_dim=shapes["txt_in.input_embedder.weight"][1],
        guidance_embed="guidance_in.mlp.0.weight" in shapes, qkv_bias="double_blocks.0.img_attn_qkv.bias" in shapes)


def hunyuan_video_config_from_state_dict(shapes: dict[str, tuple]) -> HunyuanVideoConfig:
    """From the shapes of Tencent's names (or ComfyUI's own; prefix stripped). Heads from the per-head q
    norm; the rotary axes split the head as (16, 56, 56) does a 128-wide one (ComfyUI fixes them at that)."""
    shapes = {hunyuan_video_tencent_name(k): s for k, s in shapes.items()}
    later = sorted({k.split(".")[0] for k in shapes} & {"byt5_in", "vision_in", "cond_type_embedding"})
    if later:
        raise ValueError(f"its {', '.join(later)} belong to HunyuanVideo 1.5 / HunyuanImage 2.1, which graphflow "
                         "does not read (HunyuanVideo 1.0 only)")
    hidden = shapes["img_in.proj.weight"][0]
    head_dim = shapes["double_blocks.0.img_attn_q_norm.weight"][0]
    if hidden % head_dim or head_dim % 16:
        raise ValueError(f"HunyuanVideo heads of {head_dim} channels (width {hidden}) do not split into its "
                         "rotary axes")
    return HunyuanVideoConfig(**_hunyuan_dit_fields(shapes), vec_in_dim=shapes["vector_in.in_layer.weight"][1],
                              axes_dim=(head_dim // 8, head_dim * 7 // 16, head_dim * 7 // 16))


HUNYUAN_VIDEO_VAE_MARKER = "decoder.conv_in.conv.weight"  # ComfyUI's test for this VAE (comfy/sd.py)


@dataclass(frozen=True)
class HunyuanVideoVAEConfig:
    """Defaults: HunyuanVideo's VAE (ComfyUI's ddconfig: ch 128, ch_mult 1 2 4 4, 2 res blocks)."""
    ch: int = 128
    ch_mult: tuple = (1, 2, 4, 4)
    num_res_blocks: int = 2
    z_channels: int = 16
    groups: int = 32
    time_compress: int = 4

    @property
    def latent_channels(self) -> int:
        return self.z_channels

    @property
    def downscale(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def frames_per_latent(self) -> int:
        return self.time_compress

    @property
    def out_channels(self) -> int:
        return 3

    def temporal_down(self, level: int) -> bool:
        """Whether the encoder's downsampling after stage `level` also halves time: the log2(time_compress)
        deepest ones (ComfyUI's rule; stage 0's halves space only)."""
        return len(self.ch_mult) - 1 - level <= math.log2(self.time_compress)

    def temporal_up(self, level: int) -> bool:
        """Whether the decoder's upsampling of stage `level` (LDM's up.N) also doubles time: levels 1 ..
        log2(time_compress) (ComfyUI's rule; the deepest stage's doubles space only)."""
        return level <= math.log2(self.time_compress)


def is_hunyuan_video_vae(shapes) -> bool:
    return HUNYUAN_VIDEO_VAE_MARKER in shapes and "encoder.down.0.block.0.conv1.conv.weight" in shapes \
        and "decoder.norm_out.gamma" not in shapes  # (RMS norms: HunyuanImage's refiner VAE)


def hunyuan_video_vae_config_from_state_dict(shapes) -> HunyuanVideoVAEConfig:
    ch = shapes["encoder.conv_in.conv.weight"][0]
    levels = sorted({int(k.split(".")[2]) for k in shapes if k.startswith("encoder.down.")})
    blocks = {int(k.split(".")[4]) for k in shapes if k.startswith("encoder.down.0.block.")}
    mult = tuple(shapes[f"encoder.down.{i}.block.0.conv1.conv.weight"][0] // ch for i in levels)
    return HunyuanVideoVAEConfig(ch=ch, ch_mult=mult, num_res_blocks=len(blocks),
                                 z_channels=shapes["decoder.conv_in.conv.weight"][1])




@dataclass(frozen=True)
class HunyuanImageConfig:
    """Defaults: HunyuanImage 2.1 (17B, hunyuanimage2.1_bf16): HunyuanVideo's network (its field names;
    graphflow.models.hunyuan_video's blocks read them) on images: 20 double-stream + 40 single-stream
    blocks, 28 heads of 128, 1x1 patches of its VAE's 64 channels, Qwen2.5-VL 7B's 3584-wide states
    through the 2-block token refiner, no pooled vector, rotary axes (row, column) 64 + 64; byT5's
    1472-wide glyph states through byt5_in. The distilled file adds guidance_in and time_r_in
    (MeanFlow: the next step's timestep, averaged in). The refiner (hunyuanimage2.1_refiner): 1x1x1
    patches of 128 channels (its 64-channel latent + the image's), 26 heads, rotary axes (frame,
    row, column) 16 + 56 + 56, guidance_in and time_r_in (never used: ComfyUI's disable_time_r), no byt5_in."""
    in_channels: int = 64
    out_channels: int = 64
    patch_size: tuple = (1, 1)  # rows, columns
    hidden_size: int = 3584
    num_heads: int = 28
    depth: int = 20
    depth_single_blocks: int = 40
    refiner_depth: int = 2
    mlp_ratio: float = 4.0
    context_in_dim: int = 3584
    byt5_dim: int = 1472  # byT5-small's width; 0: no byt5_in
    byt5_hidden: int = 2048  # byt5_in's fc1 / fc2 width
    guidance_embed: bool = False
    meanflow: bool = False
    qkv_bias: bool = True
    axes_dim: tuple = (64, 64)
    theta: int = 256

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def refiner(self) -> bool:
        """The refiner's 3-D patches (its video-shaped latent, one frame per image)."""
        return len(self.patch_size) == 3


def hunyuan_image_config_from_state_dict(shapes: dict[str, tuple]) -> HunyuanImageConfig:
    """From the shapes of Tencent's names (or ComfyUI's own; prefix stripped), as ComfyUI's detection
    reads a hunyuan_video file without vector_in: 2-D patches (HunyuanImage 2.1, the rotary axes halving
    the head) or 3-D ones (its refiner, the head split as HunyuanVideo's 16 / 56 / 56 of 128)."""
    shapes = {hunyuan_video_tencent_name(k): s for k, s in shapes.items()}
    hidden, _, *patch = shapes["img_in.proj.weight"]
    later = sorted({k.split(".")[0] for k in shapes} & {"vision_in", "cond_type_embedding"})
    if later or (len(patch) == 3 and "byt5_in.fc1.weight" in shapes):
        raise ValueError(f"its {', '.join(later) or '3-D patches with byt5_in'} belong to HunyuanVideo 1.5, which "
                         "graphflow does not read (HunyuanImage 2.1 and its refiner, and HunyuanVideo 1.0)")
    if "vector_in.in_layer.weight" in shapes:
        raise ValueError("a HunyuanImage file with a pooled-vector embedder (vector_in), which HunyuanImage 2.1 "
                         "does not have")
    head_dim = shapes["double_blocks.0.img_attn_q_norm.weight"][0]
    if hidden % head_dim or head_dim % (4 if len(patch) == 2 else 16):
        raise ValueError(f"HunyuanImage heads of {head_dim} channels (width {hidden}) do not split into its "
                         "rotary axes")
    axes = (head_dim // 2, head_dim // 2) if len(patch) == 2 else (head_dim // 8, head_dim * 7 // 16,
                                                                    head_dim * 7 // 16)
    byt5 = shapes.get("byt5_in.fc1.weight")
    glyphs = dict(byt5_dim=byt5[1], byt5_hidden=byt5[0]) if byt5 else dict(byt5_dim=0)
    return HunyuanImageConfig(**_hunyuan_dit_fields(shapes), **glyphs, meanflow="time_r_in.mlp.0.weight" in shapes,
                              axes_dim=axes)


class _HunyuanImageVAEShape:
    """What HunyuanImage 2.1's VAEs (the image one and the refiner's) derive from their fields."""

    @property
    def latent_channels(self) -> int:
        return self.z_channels

    @property
    def downscale(self) -> int:
        return self.ffactor_spatial

    @property
    def levels(self) -> int:
        """How many stages change the size: log2 of the compression (ComfyUI's depth)."""
        return (self.ffactor_spatial >> 1).bit_length()


@dataclass(frozen=True)
class HunyuanImageVAEConfig(_HunyuanImageVAEShape):
    """Defaults: HunyuanImage 2.1's VAE (hunyuan_image_2.1_vae_fp16; ComfyUI's ddconfig): 2-D, 32x
    spatial compression by 5 pixel-(un)shuffle stages over widths 128 256 512 512 1024 1024, 2 res
    blocks, 64 latent channels, no quant convs; ComfyUI's LDM-like names, the decoder's up.N in the
    order it runs (up.0 the deepest)."""
    block_out_channels: tuple = (128, 256, 512, 512, 1024, 1024)
    num_res_blocks: int = 2
    z_channels: int = 64
    ffactor_spatial: int = 32
    groups: int = 32
    out_channels: int = 3


def is_hunyuan_image_vae(shapes) -> bool:
    """ComfyUI's test (comfy/sd.py): an LDM-named 2-D VAE whose decoder takes 64 latent channels."""
    conv_in = shapes.get("decoder.conv_in.weight")
    return conv_in is not None and len(conv_in) == 4 and conv_in[1] == 64 \
        and "encoder.down.0.block.0.conv1.weight" in shapes


def hunyuan_image_vae_config_from_state_dict(shapes) -> HunyuanImageVAEConfig:
    levels = sorted({int(k.split(".")[2]) for k in shapes if k.startswith("encoder.down.")})
    blocks = {int(k.split(".")[4]) for k in shapes if k.startswith("encoder.down.0.block.")}
    widths = tuple(shapes[f"encoder.down.{i}.block.0.conv1.weight"][0] for i in levels)
    downsamples = sum(f"encoder.down.{i}.downsample.conv.weight" in shapes for i in levels)
    return HunyuanImageVAEConfig(block_out_channels=widths, num_res_blocks=len(blocks),
                                 z_channels=shapes["decoder.conv_in.weight"][1], ffactor_spatial=2 ** downsamples,
                                 out_channels=shapes["decoder.conv_out.weight"][0])


@dataclass(frozen=True)
class HunyuanImageRefinerVAEConfig(_HunyuanImageVAEShape):
    """Defaults: HunyuanImage 2.1's refiner VAE (hunyuan_image_refiner_vae_fp16; ComfyUI's vae_refiner
    ddconfig, diffusers' AutoencoderKLHunyuanImageRefiner): causal 3-D convolutions and RMS norms, widths
    128 256 512 1024 1024, 2 res blocks, 32 latent channels, 16x in space (the deeper two encoder
    resamplings, the shallower two decoder ones, also pair frames: 4x in time)."""
    block_out_channels: tuple = (128, 256, 512, 1024, 1024)
    num_res_blocks: int = 2
    z_channels: int = 32
    ffactor_spatial: int = 16
    ffactor_temporal: int = 4
    out_channels: int = 3

    def temporal_down(self, level: int) -> bool:
        """Whether the encoder's resampling after stage `level` also pairs frames (ComfyUI's tds)."""
        return level >= ((self.ffactor_spatial // self.ffactor_temporal) >> 1).bit_length()

    def temporal_up(self, level: int) -> bool:
        """Whether the decoder's resampling after its stage `level` also doubles frames (ComfyUI's tus)."""
        return level < (self.ffactor_temporal >> 1).bit_length()


def is_hunyuan_image_refiner_vae(shapes) -> bool:
    """Causal 3-D convolutions (`.conv.` inside) with RMS norms (`gamma`): the refiner's VAE (HunyuanVideo 1.5's
    shape), not HunyuanVideo 1.0's GroupNorm one."""
    return "decoder.conv_in.conv.weight" in shapes and "decoder.norm_out.gamma" in shapes \
        and "encoder.down.0.block.0.conv1.conv.weight" in shapes


def hunyuan_image_refiner_vae_config_from_state_dict(shapes) -> HunyuanImageRefinerVAEConfig:
    levels = sorted({int(k.split(".")[2]) for k in shapes if k.startswith("encoder.down.")})
    blocks = {int(k.split(".")[4]) for k in shapes if k.startswith("encoder.down.0.block.")}
    widths = tuple(shapes[f"encoder.down.{i}.block.0.conv1.conv.weight"][0] for i in levels)
    down = [i for i in levels if f"encoder.down.{i}.downsample.conv.conv.weight" in shapes]
    # a resampling that also pairs frames packs 8 pixels per channel, a spatial one 4
    temporal = sum(widths[i + 1] // shapes[f"encoder.down.{i}.downsample.conv.conv.weight"][0] == 8 for i in down)
    return HunyuanImageRefinerVAEConfig(block_out_channels=widths, num_res_blocks=len(blocks),
                                        z_channels=shapes["decoder.conv_in.conv.weight"][1],
                                        ffactor_spatial=2 ** len(down), ffactor_temporal=2 ** temporal,
                                        out_channels=shapes["decoder.conv_out.conv.weight"][0])


AURA_FLOW_MARKER = "double_layers.0.attn.w1q.weight"  # ComfyUI's test for AuraFlow (model_detection's)
# ComfyUI's test for diffusers' AuraFlowTransformer2DModel names (UNETLoader converts them: convert_diffusers_mmdit)
AURA_FLOW_DIFFUSERS_MARKER = "joint_transformer_blocks.0.attn.add_k_proj.weight"
AURA_FLOW_LATENT_CHANNELS = 4  # SDXL's VAE
AURA_FLOW_HEADS = 12  # ComfyUI's MMDiT default, never read from a file (its norms have no weights to tell)


@dataclass(frozen=True)
class AuraFlowConfig:
    """Defaults: AuraFlow v0.1-0.3 (fal, 6.8B): 4 double-stream (MMDiTBlock) + 32 single-stream (DiTBlock)
    layers of width 3072, 12 heads of 256, 2x2 patches of the SDXL VAE's 4 channels, a 64 x 64 learned
    position table (max_seq 4096), Pile-T5-XL's 2048-wide states. Field names are ComfyUI's MMDiT's."""
    in_channels: int = AURA_FLOW_LATENT_CHANNELS
    out_channels: int = AURA_FLOW_LATENT_CHANNELS
    patch_size: int = 2
    dim: int = 3072
    n_layers: int = 36  # double + single
    n_double_layers: int = 4
    n_heads: int = AURA_FLOW_HEADS
    global_conddim: int = 3072  # the timestep embedding's width
    cond_seq_dim: int = 2048  # the text states' width
    max_seq: int = 64 * 64  # the position table's entries, a square grid
    mlp_hidden: int = 8192  # swiglu_hidden(dim, 4 dim)

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def pos_side(self) -> int:
        return math.isqrt(self.max_seq)


def aura_flow_config_from_state_dict(shapes: dict[str, tuple]) -> AuraFlowConfig:
    """From the shapes (prefix stripped), fal's / ComfyUI's names. ComfyUI reads max_seq, cond_seq_dim and
    the layer counts; here the widths and the patch too (its defaults for AuraFlow's own), 12 heads as ComfyUI."""
    dim, patch_in = shapes["init_x_linear.weight"]
    patch = math.isqrt(patch_in // AURA_FLOW_LATENT_CHANNELS)
    if patch * patch * AURA_FLOW_LATENT_CHANNELS != patch_in:
        raise ValueError(f"AuraFlow's init_x_linear takes {patch_in} features, not patches of "
                         f"{AURA_FLOW_LATENT_CHANNELS} channels")
    max_seq = shapes["positional_encoding"][1]
    if math.isqrt(max_seq) ** 2 != max_seq:
        raise ValueError(f"AuraFlow's position table has {max_seq} entries, not a square grid")
    if dim % AURA_FLOW_HEADS:
        raise ValueError(f"AuraFlow's width {dim} does not split into {AURA_FLOW_HEADS} heads")
    double, single = _count_blocks(shapes, "double_layers."), _count_blocks(shapes, "single_layers.")
    if not single:  # ComfyUI's last double layer would then lack its text MLP (is_last)
        raise ValueError("an AuraFlow network without single layers")
    return AuraFlowConfig(out_channels=shapes["final_linear.weight"][0] // patch ** 2, patch_size=patch, dim=dim,
                          n_layers=double + single, n_double_layers=double,
                          global_conddim=shapes["t_embedder.mlp.0.weight"][0],
                          cond_seq_dim=shapes["cond_seq_linear.weight"][1], max_seq=max_seq,
                          mlp_hidden=shapes["single_layers.0.mlp.c_fc1.weight"][0])


# UMT5: a relative position bias in every layer (T5: in the first only)
UMT5_KEY = "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"
# byT5's embedding has 384 rows (Glyph-ByT5: 1510) where T5's has 32,128
BYTE_VOCAB_MAX = 4096


def byte_level(shapes: dict[str, tuple]) -> bool:
    """Whether T5 weights (prefix stripped) are byT5's (HunyuanImage 2.1's glyph encoder): an embedding
    of bytes, not of pieces, and T5's layout (UMT5's, each layer with its position bias, has pieces:
    small in tiny test files)."""
    rows = (shapes.get("shared.weight") or shapes.get("encoder.embed_tokens.weight") or (0,))[0]
    return 0 < rows < BYTE_VOCAB_MAX and UMT5_KEY not in shapes


PILE_T5_VOCAB = 32128  # Pile-T5 XL's embedding rows: LLaMA's 32,000 pieces, T5's 100 sentinels, padding


def pile_t5(shapes: dict[str, tuple]) -> bool:
    """Whether T5 weights (prefix stripped) are Pile-T5 XL's (AuraFlow's text encoder): UMT5's layout with
    32,128 embedding rows (a ComfyUI UMT5 file carrying its SentencePiece model is read by that first)."""
    rows = (shapes.get("shared.weight") or shapes.get("encoder.embed_tokens.weight") or (0,))[0]
    return rows == PILE_T5_VOCAB and UMT5_KEY in shapes
