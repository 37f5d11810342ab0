"""Qwen2.5-VL 7B as a text (and picture) encoder: Qwen-Image's, as ComfyUI runs it (CLIPLoader
type qwen_image).

Weights: ComfyUI's qwen_2.5_vl_7b.safetensors / qwen_2.5_vl_7b_fp8_scaled.safetensors hold the
language model in transformers' older Qwen2.5-VL names (`model.embed_tokens.weight`,
`model.layers.N.self_attn.{q,k,v}_proj.{weight,bias}`, `model.layers.N.self_attn.o_proj.weight`,
`model.layers.N.mlp.{gate,up,down}_proj.weight`, `model.layers.N.{input,post_attention}_layernorm.weight`,
`model.norm.weight`) beside the vision tower (`visual.patch_embed.proj.weight`,
`visual.blocks.N.{norm1,norm2,attn.qkv,attn.proj,mlp.*}`, `visual.merger.{ln_q,mlp.0,mlp.2}`) and
maybe a head (`lm_head.weight`, never read). ComfyUI tells the 7B from the 3B by
`model.layers.0.self_attn.k_proj.bias` having 512 rows (4 heads x 128).

The language model (Qwen2 / ComfyUI's Qwen25_7BVLI): token embeddings; per layer
x += attn(norm(x)), x += mlp(norm(x)), RMSNorm x / rms(x) * w (eps 1e-6), grouped-query causal
attention with biased q/k/v, rotary positions (theta 1e6, rotate-half) over 128-wide heads (the
head counts come from the projections' shapes), an MLP down(silu(gate(x)) * up(x)); a final
norm: graphflow.models.llama's decoder, its q/k/v biased. Qwen2.5-VL's multimodal rotary
embedding gives each band of the frequencies (16, 24, 24 pairs) its own position axis (time,
height, width); for text all three are the token's index, so it is the plain 1-D rotary embedding; a picture's tokens take its start, start + row and
start + column (ComfyUI's positions, which are transformers' get_rope_index's).

The vision tower (ComfyUI's Qwen2VLVisionTransformer): a picture resized to multiples of 28
pixels, cut into 14-pixel patches (two frames of the same picture: 3 x 2 x 14 x 14 values each),
a patch embedding, 32 blocks (RMSNorm, attention with 2-D rotary positions within 112-pixel
windows, every 8th over the whole picture, a SiLU-gated MLP), then a merger of 2 x 2 patches into
one token of the language model's width, which take the place of <|image_pad|>.

The text encoding (ComfyUI's QwenImageTokenizer / QwenImageTEModel): the prompt goes into the
chat template Qwen-Image was trained with (TEMPLATE; with a picture PICTURE_TEMPLATE; a prompt
that starts with <|im_start|> is taken as a whole template itself), tokenized with Qwen's
byte-level BPE and its added tokens (QwenTokenizer: the vocabulary ships in
graphflow/models/qwen_tokenizer/), no padding; the last layer's hidden state through the final
norm, from the prompt's first token on: the tokens up to the second <|im_start|> and its
"user\\n" are dropped (34 in TEMPLATE: diffusers' QwenImagePipeline drops as many), the
template's tail (<|im_end|>\\n<|im_start|>assistant\\n) is kept. ComfyUI reads no prompt
weights here: "(word:1.2)" is plain text ("\\(" still a literal bracket). CLIPSetLastLayer n
takes layer n's output unnormed, as ComfyUI's hidden-layer option.
"""

import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention, kernels
from .cast_layers import Linear
from .clip_vision import CLIP_MEAN, CLIP_STD  # OpenAI CLIP's normalisation, which Qwen2-VL's image processor uses
from .llama import (DecoderTextEncoder, LlamaBody, LlamaConfig, RMSNorm, decoder_from_state_dict, decoder_from_weights,
                    llama_config_from_state_dict, marker_prefix, rotate_half)
from .tokenizer import tiktoken_ranks

HEAD_DIM = 128  # ComfyUI's Qwen25_7BVLI_Config (the weights do not show it)
MARKER = "model.layers.0.self_attn.k_proj.bias"  # ComfyUI's test for Qwen2.5 (7B: 512 rows, 3B: 256)
KV_ROWS_7B = 512
VOCAB_FILE = Path(__file__).parent / "qwen_tokenizer" / "qwen.tiktoken.gz"
# Qwen2's pre-tokenizer (transformers' Qwen2Tokenizer, Qwen's tiktoken pattern): digits one by one
PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
           r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
# the added tokens of ComfyUI's qwen25_tokenizer (Qwen2.5-VL's), ids 151643 on: matched in any text
ADDED_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
                "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
                "<tool_response>", "</tool_response>", "<think>", "</think>")
FIRST_ADDED = 151643
IM_START, USER, NEWLINE = 151644, 872, 198  # <|im_start|>, "user", "\n"
# ComfyUI's QwenImageTokenizer.llama_template (diffusers' QwenImagePipeline.prompt_template_encode)
TEMPLATE = ("<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, text, "
            "spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n"
            "<|im_start|>assistant\n")
# ComfyUI's TextEncodeQwenImageEditPlus template (Qwen-Image-Edit-2509's system prompt)
EDIT_TEMPLATE = ("<|im_start|>system\nDescribe the key features of the input image (color, shape, size, texture, "
                 "objects, background), then explain how the user's text instruction should alter or modify the "
                 "image. Generate a new image that meets the user's requirements while maintaining consistency with "
                 "the original input where appropriate.<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n"
                 "<|im_start|>assistant\n")
# ComfyUI's QwenImageTokenizer.llama_template_images: TextEncodeQwenImageEdit's, with its picture
PICTURE = "<|vision_start|><|image_pad|><|vision_end|>"  # where a picture's tokens go
PICTURE_TEMPLATE = EDIT_TEMPLATE.replace("user\n{}", "user\n" + PICTURE + "{}")
OWN_TEMPLATE = ("<|im_start|>", "<|start_header_id|>")  # a prompt starting so is used as it is (ComfyUI)


class QwenTokenizer:
    """Text -> Qwen2 token ids, as transformers' Qwen2Tokenizer gives them without special-token
    additions: the added tokens are cut out first, the text between them NFC-normalised, split
    by Qwen2's pattern and byte-pair encoded (tiktoken, on the shipped ranks)."""

    def __init__(self, vocab_file: Path = VOCAB_FILE):
        import tiktoken  # read when a Qwen encoder first tokenizes: nothing else needs it

        self.bpe = tiktoken.Encoding("qwen2", pat_str=PATTERN, mergeable_ranks=tiktoken_ranks(vocab_file, FIRST_ADDED),
                                     special_tokens={})
        self.added = {token: FIRST_ADDED + i for i, token in enumerate(ADDED_TOKENS)}
        self.added_pattern = re.compile("(" + "|".join(re.escape(t) for t in ADDED_TOKENS) + ")")

    def __call__(self, text: str) -> list[int]:
        ids = []
        for i, part in enumerate(self.added_pattern.split(text)):
            if i % 2:  # the split's captured groups: added tokens
                ids.append(self.added[part])
            elif part:
                ids += self.bpe.encode_ordinary(unicodedata.normalize("NFC", part))
        return ids


@lru_cache(maxsize=1)
def qwen_tokenizer() -> QwenTokenizer:
    return QwenTokenizer()


def prompt_ids(prompt: str, template: str = TEMPLATE, tokenize=None) -> list[int]:
    """The ids ComfyUI's QwenImageTokenizer gives `prompt` in `template`."""
    tokenize = tokenize or qwen_tokenizer()
    text = prompt if prompt.startswith(OWN_TEMPLATE) else template.format(prompt)
    text = text.replace("\\(", "(").replace("\\)", ")")  # ComfyUI's escapes resolved, its weights not read
    # ComfyUI's tokenizer cuts the text before each " embedding:" / "\nembedding:" (dropping that
    # space) and tokenizes the pieces apart, even where, as here, it loads no embeddings
    pieces = re.split(" embedding:|\nembedding:", text)
    pieces = [pieces[0]] + ["embedding:" + p for p in pieces[1:]]
    return [t for piece in pieces if piece for t in tokenize(piece)]


def template_end(ids: list[int]) -> int:
    """Where the prompt starts in `ids` (ComfyUI's QwenImageTEModel): after the second
    <|im_start|> and its "user\\n" (34 in TEMPLATE). Without an <|im_start|>, ComfyUI keeps the
    last token alone (-1)."""
    starts = [i for i, t in enumerate(ids) if t == IM_START][:2]
    end = starts[-1] if starts else -1
    if len(ids) > end + 3 and ids[end + 1] == USER and ids[end + 2] == NEWLINE:
        end += 3
    return end


@dataclass(frozen=True)
class Qwen25VLConfig(LlamaConfig):
    """Defaults: Qwen2.5-VL 7B's language model: Llama's decoder with biases on q, k and v."""
    vocab_size: int = 152064
    hidden_size: int = 3584
    intermediate_size: int = 18944
    num_layers: int = 28
    num_heads: int = 28
    num_kv_heads: int = 4
    eps: float = 1e-6
    rope_theta: float = 1000000.0
    qkv_bias: bool = True
    mrope_section: tuple = (16, 24, 24)  # frequency pairs of the time, height, width position axes


def qwen25vl_config_from_state_dict(shapes: dict[str, tuple]) -> Qwen25VLConfig:
    """From the shapes of `model.*` keys (any prefix stripped): Llama's decoder's."""
    return llama_config_from_state_dict(shapes, Qwen25VLConfig, "Qwen2.5")


# -- the vision tower (ComfyUI's Qwen2VLVisionTransformer: Qwen2.5-VL's) ------------------------------

VISION_HEAD_DIM = 80  # 1280 wide in 16 heads (ComfyUI's fixed numbers)
FULL_ATTENTION_EVERY = 8  # blocks 7, 15, 23, 31 attend over the whole picture, the others within windows
PATCH, TEMPORAL_PATCH, MERGE, WINDOW = 14, 2, 2, 112  # pixels; frames; patches merged per side; window pixels
MIN_PIXELS, MAX_PIXELS = 3136, 12845056
IMAGE_PAD = 151655  # <|image_pad|>: where a picture's tokens go


@dataclass(frozen=True)
class VisionConfig:
    """Defaults: Qwen2.5-VL 7B's vision tower."""
    hidden_size: int = 1280
    intermediate_size: int = 3420
    num_layers: int = 32
    num_heads: int = 16
    out_hidden_size: int = 3584


def vision_config_from_state_dict(shapes: dict[str, tuple]) -> VisionConfig:
    """From the shapes of `visual.*` keys."""
    hidden = shapes["visual.patch_embed.proj.weight"][0]
    if hidden % VISION_HEAD_DIM:
        raise ValueError(f"a vision tower {hidden} wide is not whole {VISION_HEAD_DIM}-wide heads")
    return VisionConfig(hidden_size=hidden, intermediate_size=shapes["visual.blocks.0.mlp.gate_proj.weight"][0],
                        num_layers=1 + max(int(k.split(".")[2]) for k in shapes if k.startswith("visual.blocks.")),
                        num_heads=hidden // VISION_HEAD_DIM, out_hidden_size=shapes["visual.merger.mlp.2.weight"][0])


def picture_patches(image: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """ComfyUI's process_qwen2vl_images: the first picture of [B, H, W, C] (0..1) resized
    (bilinear) to multiples of 28 pixels near its size (within MIN/MAX_PIXELS), normalised, cut
    into 14-pixel patches (each twice, as two frames), 2 x 2 neighbours next to each other ->
    (patches [h * w, 3 * 2 * 14 * 14], grid (1, h, w) in patches)."""
    _, height, width, _ = image.shape
    factor = PATCH * MERGE
    h, w = round(height / factor) * factor, round(width / factor) * factor
    if h * w > MAX_PIXELS:
        beta = math.sqrt(height * width / MAX_PIXELS)
        h, w = max(factor, math.floor(height / beta / factor) * factor), max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < MIN_PIXELS:
        beta = math.sqrt(MIN_PIXELS / (height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    x = F.interpolate(image[:1, :, :, :3].movedim(-1, 1).float(), size=(h, w), mode="bilinear", align_corners=False)[0]
    x = (x - torch.tensor(CLIP_MEAN)[:, None, None]) / torch.tensor(CLIP_STD)[:, None, None]
    gh, gw = h // PATCH, w // PATCH
    x = x[None].expand(TEMPORAL_PATCH, -1, -1, -1)  # [2, 3, H, W]: one picture, two frames
    x = x.reshape(TEMPORAL_PATCH, 3, gh // MERGE, MERGE, PATCH, gw // MERGE, MERGE, PATCH)
    x = x.permute(2, 5, 3, 6, 1, 0, 4, 7)  # merged row, merged col, row in it, col in it | channel, frame, y, x
    return x.reshape(gh * gw, 3 * TEMPORAL_PATCH * PATCH * PATCH), (1, gh, gw)


def _window_order(gh: int, gw: int) -> tuple[torch.Tensor, list[int]]:
    """The order that puts the merged patches (2 x 2 patches, row-major) window by window (4 x 4
    merged patches a window, the last row and column of windows cut short), and each window's
    length in patches."""
    side = WINDOW // MERGE // PATCH
    mh, mw = gh // MERGE, gw // MERGE
    index = torch.arange(mh * mw).reshape(mh, mw)
    order, lengths = [], []
    for top in range(0, mh, side):
        for left in range(0, mw, side):
            window = index[top:top + side, left:left + side].flatten()
            order.append(window)
            lengths.append(window.numel() * MERGE * MERGE)
    return torch.cat(order), lengths


class VisionAttention(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.heads = cfg.num_heads
        self.qkv = Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=True)
        self.proj = Linear(cfg.hidden_size, cfg.hidden_size, bias=True)

    def forward(self, x, cos, sin, windows):
        """windows: the lengths of the runs of patches that attend among themselves (None: all)."""
        n = x.shape[0]
        q, k, v = self.qkv(x).view(n, 3, self.heads, -1).permute(1, 2, 0, 3)  # each [heads, n, head_dim]
        q = (q.float() * cos + rotate_half(q.float()) * sin).to(x.dtype)
        k = (k.float() * cos + rotate_half(k.float()) * sin).to(x.dtype)
        runs = zip(*(t.split(windows or [n], dim=1) for t in (q, k, v)))  # no n x n mask for a large picture
        out = torch.cat([attention(qw[None], kw[None], vw[None])[0] for qw, kw, vw in runs], dim=1)
        return self.proj(out.transpose(0, 1).flatten(1))


class VisionMLP(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.gate_proj = Linear(cfg.hidden_size, cfg.intermediate_size, bias=True)
        self.up_proj = Linear(cfg.hidden_size, cfg.intermediate_size, bias=True)
        self.down_proj = Linear(cfg.intermediate_size, cfg.hidden_size, bias=True)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class VisionBlock(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.norm1 = RMSNorm(cfg.hidden_size, 1e-6)
        self.norm2 = RMSNorm(cfg.hidden_size, 1e-6)
        self.attn = VisionAttention(cfg)
        self.mlp = VisionMLP(cfg)

    def forward(self, x, cos, sin, windows):
        x = x + self.attn(self.norm1(x), cos, sin, windows)
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        kernel = (TEMPORAL_PATCH, PATCH, PATCH)
        self.proj = nn.Conv3d(3, cfg.hidden_size, kernel, stride=kernel, bias=False)

    def forward(self, patches):
        x = patches.view(-1, 3, TEMPORAL_PATCH, PATCH, PATCH).to(self.proj.weight.dtype)
        return self.proj(x).flatten(1)


class PatchMerger(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        width = cfg.hidden_size * MERGE * MERGE
        self.ln_q = RMSNorm(cfg.hidden_size, 1e-6)
        self.mlp = nn.Sequential(Linear(width, width), nn.GELU(), Linear(width, cfg.out_hidden_size))

    def forward(self, x):
        return self.mlp(self.ln_q(x).reshape(-1, self.mlp[0].in_features))


class VisionTower(nn.Module):
    """Patches [h * w, 1176] of one picture (picture_patches) -> its tokens [h * w / 4, LM width]:
    patch embedding, blocks with 2-D rotary positions attending within 112-pixel windows (every
    8th over the whole picture), the 2 x 2 merger; tokens in the picture's row-major order."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.config = cfg
        self.patch_embed = PatchEmbed(cfg)
        self.blocks = nn.ModuleList(VisionBlock(cfg) for _ in range(cfg.num_layers))
        self.merger = PatchMerger(cfg)

    def forward(self, patches: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        _, gh, gw = grid
        unit = MERGE * MERGE
        x = self.patch_embed(patches)
        n = x.shape[0]
        # each patch's (row, col) in the picture, in the patches' merged order
        rows = torch.arange(gh).view(gh // MERGE, MERGE, 1, 1).expand(-1, -1, gw // MERGE, MERGE)
        cols = torch.arange(gw).view(1, 1, gw // MERGE, MERGE).expand(gh // MERGE, MERGE, -1, -1)
        rows, cols = (t.permute(0, 2, 1, 3).flatten() for t in (rows, cols))
        half = VISION_HEAD_DIM // 2
        inv_freq = 1.0 / 10000.0 ** (torch.arange(0, half, 2, dtype=torch.float32) / half)
        angles = torch.cat([rows[:, None] * inv_freq, cols[:, None] * inv_freq], dim=-1)  # [n, head_dim / 2]
        order, lengths = _window_order(gh, gw)
        x = x.view(n // unit, unit, -1)[order.to(x.device)].view(n, -1)
        angles = angles.view(n // unit, unit, -1)[order].view(n, -1)
        angles = torch.cat([angles, angles], dim=-1).to(x.device)
        cos, sin = angles.cos(), angles.sin()
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, None if (i + 1) % FULL_ATTENTION_EVERY == 0 else lengths)
        return self.merger(x)[torch.argsort(order).to(x.device)]


def picture_positions(ids_length: int, spans: list[tuple[int, int, tuple[int, int, int]]]) -> torch.Tensor:
    """ComfyUI's positions [3, T] (time, height, width) for a sequence with pictures at `spans`
    (start, token count, patch grid), T counting their tokens: text counts on along all three
    axes; a picture's tokens take its start on the time axis and start + row / start + column on
    the others; the text after it goes on from start + max(rows, cols)."""
    positions = torch.arange(ids_length, dtype=torch.float32).expand(3, -1).clone()
    offset = 0
    for start, size, (_, gh, gw) in spans:
        rows, cols = gh // MERGE, gw // MERGE
        positions[:, start + size:] = torch.arange(ids_length - start - size) + start + max(rows, cols) + offset
        positions[0, start:start + size] = start + offset
        positions[1, start:start + size] = (torch.arange(rows)[:, None].expand(rows, cols).flatten() + start + offset)[:size]
        positions[2, start:start + size] = (torch.arange(cols)[None, :].expand(rows, cols).flatten() + start + offset)[:size]
        offset += max(rows, cols) - size
    return positions


class Qwen25VL(nn.Module):
    def __init__(self, config: Qwen25VLConfig, vision: VisionConfig | None = None):
        super().__init__()
        self.config = config
        self.model = LlamaBody(config)  # the `model.` part of the file: Llama's decoder with q/k/v biases
        self.visual = None if vision is None else VisionTower(vision)  # ComfyUI's files carry it (visual.*)

    def forward(self, ids: torch.Tensor | None, attention_mask: torch.Tensor | None = None,
                layer: int | None = None, embeds: torch.Tensor | None = None,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """ids [B, T] (or their embeddings `embeds` [B, T, hidden], pictures' among them) -> the
        last layer's output through the final norm [B, T, hidden] (layer None, ComfyUI's
        default), or layer `layer`'s output unnormed (negative: from the end). attention_mask
        [B, T], 1 keep, 0 pad. positions [3, T]: each token's time, height and width position
        (multimodal rotary embedding); None: its index on all three, as for text."""
        cfg, body = self.config, self.model
        stop = cfg.num_layers - 1 if layer is None else layer % cfg.num_layers
        x = body.embed_tokens(ids) if embeds is None else embeds
        t = x.shape[1]
        exponents = torch.arange(0, cfg.head_dim, 2, dtype=torch.float32, device=x.device) / cfg.head_dim
        inv_freq = 1.0 / cfg.rope_theta ** exponents
        if positions is None:
            angles = torch.arange(t, dtype=torch.float32, device=x.device)[:, None] * inv_freq[None]
        else:  # each band of frequencies turns with its own axis: time, height, width
            axes = positions.to(x.device, torch.float32)[:, :, None] * inv_freq[None, None]  # [3, T, head_dim / 2]
            bands = axes.split(list(cfg.mrope_section), dim=-1)
            angles = torch.cat([band[i] for i, band in enumerate(bands)], dim=-1)
        angles = torch.cat([angles, angles], dim=-1)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        keep = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()[None, None]
        if attention_mask is not None:
            keep = keep & attention_mask.to(x.device).bool()[:, None, None, :]
        for block in body.layers[:stop + 1]:  # the layers after it do not change it
            x = block(x, cos, sin, keep)
        return body.norm(x) if layer is None else x


def qwen25vl_prefix(keys) -> str | None:
    """The prefix before `model.layers.0.self_attn.k_proj.bias` ("" in ComfyUI's files), or None."""
    return marker_prefix(keys, MARKER)


def _weight_keys(shapes) -> list[str]:
    """The language model's keys (`model.*` but a head some files keep there, model.lm_head) and
    the vision tower's (`visual.*`)."""
    return [k for k in shapes if k.startswith(("model.", "visual.")) and not k.startswith("model.lm_head.")]


def qwen25vl_from_weights(shapes: dict[str, tuple], get_tensor, device=None,
                          dtype: torch.dtype = torch.float32, source=None) -> Qwen25VL:
    """A Qwen25VL from its `model.*` keys and, where the file has one, its vision tower's
    `visual.*` (prefix stripped; a head, lm_head, ignored); `source`: as decoder_from_weights'."""
    keys = _weight_keys(shapes)
    named = {k: tuple(shapes[k]) for k in keys}
    vision = vision_config_from_state_dict(named) if any(k.startswith("visual.") for k in keys) else None
    return decoder_from_weights(lambda: Qwen25VL(qwen25vl_config_from_state_dict(named), vision), keys, get_tensor,
                                device, dtype, "Qwen2.5-VL", source)


def qwen25vl_from_state_dict(state: dict[str, torch.Tensor], device=None,
                             dtype: torch.dtype = torch.float32) -> Qwen25VL:
    """A Qwen25VL from a state dict, its weights under any prefix."""
    return decoder_from_state_dict(state, qwen25vl_prefix, qwen25vl_from_weights, "Qwen2.5-VL", MARKER, device, dtype)


class QwenTextEncoder(DecoderTextEncoder):
    """The CLIP socket of Qwen-Image (CLIPLoader type qwen_image): prompt -> (Qwen2.5-VL's states
    [1, T, hidden] from the prompt's first token, None: no pooled vector). `layer` None: the
    last layer through the final norm (ComfyUI's); n: layer n's output unnormed."""

    arch, key, memory_name, name = "qwen_image", "qwen25_7b", "text_encoder:qwen25_7b", "Qwen2.5-VL"

    def __init__(self, model: Qwen25VL, layer: int | None = None, patches: tuple = ()):
        super().__init__(model, layer, patches)

    def tokenize(self, prompt: str, template: str | None = None, pictures: int = 0) -> list[int]:
        """template None: ComfyUI's choice, TEMPLATE, or PICTURE_TEMPLATE for a picture."""
        return prompt_ids(prompt, template or (PICTURE_TEMPLATE if pictures else TEMPLATE))

    def run(self, ids: list[list[int]], pictures=()) -> torch.Tensor:
        """Token ids [N][T] (equal lengths) -> hidden states [N, T, hidden], float32 CPU.
        pictures ([B, H, W, C] each, the first of each batch read, as ComfyUI's): the vision
        tower's tokens of the k-th take the place of the k-th <|image_pad|> of one sequence."""
        if not pictures:
            return self._forward(ids)
        return self._forward(ids, splice=lambda tokens: self._with_pictures(ids[0], tokens[0], pictures))

    def _with_pictures(self, ids: list[int], tokens: torch.Tensor, pictures) -> dict[str, torch.Tensor]:
        """The model's inputs for one row: the token embeddings with each picture's tokens spliced
        in ("embeds" [1, T, hidden]) and their positions [3, T]."""
        if self.model.visual is None:
            raise ValueError("this Qwen2.5-VL file carries no vision tower (visual.*), which pictures need: "
                             "ComfyUI's qwen_2.5_vl_7b files carry it")
        embedded = self.model.model.embed_tokens(tokens)
        parts, spans, done = [], [], 0
        for at, picture in zip([i for i, t in enumerate(ids) if t == IMAGE_PAD], pictures):
            parts.append(embedded[done:at])
            patches, grid = picture_patches(picture.cpu())
            seen = self.model.visual(patches.to(embedded.device), grid).to(embedded.dtype)
            spans.append((sum(len(part) for part in parts), len(seen), grid))
            parts.append(seen)
            done = at + 1
        embeds = torch.cat(parts + [embedded[done:]])
        return {"embeds": embeds[None], "positions": picture_positions(len(embeds), spans)}

    def encode(self, prompt: str, clip_skip: int | None = None, template: str | None = None,
               pictures=()) -> tuple[torch.Tensor, None]:
        """Prompt -> ([1, T, hidden], None): the states from the prompt's first token (a
        picture's tokens where it stands), the template's 5 closing ones included. clip_skip:
        another layer for this prompt; template: another chat template (None: ComfyUI's, with
        or without a picture); pictures: [B, H, W, C] images for the template's <|image_pad|>s."""
        if clip_skip is not None:
            return self.with_clip_skip(clip_skip).encode(prompt, template=template, pictures=pictures)
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
        ids = self.tokenize(prompt, template, len(pictures))
        return self.run([ids], pictures)[:, self.prompt_start(ids):], None  # cut where ComfyUI cuts, pictures counted

    def prompt_start(self, ids: list[int]) -> int:
        """Where the prompt's states start in `ids` (HunyuanImage's encoder cuts its own way)."""
        return template_end(ids)


def qwen_text_encoder(source, device=None, dtype: torch.dtype = torch.float32) -> QwenTextEncoder:
    """The qwen_image CLIP from `source` (`shapes` + `get(key, device, dtype)`, keys without
    prefix: a graphflow.models.weight_files.KeyView)."""
    return QwenTextEncoder(qwen25vl_from_weights(source.shapes, source.get, device, dtype, source))
