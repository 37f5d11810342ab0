"""Qwen2.5-VL 7B's language model as a text encoder: Qwen-Image's, as ComfyUI runs it (CLIPLoader
type qwen_image).

Weights: ComfyUI's qwen_2.5_vl_7b.safetensors / qwen_2.5_vl_7b_fp8_scaled.safetensors hold the
language model in transformers' older Qwen2.5-VL names (`model.embed_tokens.weight`,
`model.layers.N.self_attn.{q,k,v}_proj.{weight,bias}`, `model.layers.N.self_attn.o_proj.weight`,
`model.layers.N.mlp.{gate,up,down}_proj.weight`, `model.layers.N.{input,post_attention}_layernorm.weight`,
`model.norm.weight`) beside the vision tower (`visual.*`, read only for pictures, which graphflow
does not encode yet) and maybe a head (`lm_head.weight`): both are left unread. ComfyUI tells the
7B from the 3B by `model.layers.0.self_attn.k_proj.bias` having 512 rows (4 heads x 128).

The network (Qwen2 / ComfyUI's Qwen25_7BVLI): token embeddings; per layer
x += attn(norm(x)), x += mlp(norm(x)), RMSNorm x / rms(x) * w (eps 1e-6), grouped-query causal
attention with biased q/k/v, rotary positions (theta 1e6, rotate-half) over 128-wide heads (the
head counts come from the projections' shapes), an MLP down(silu(gate(x)) * up(x)); a final
norm. Qwen2.5-VL's multimodal rotary embedding gives each third of the frequencies (16, 24, 24
pairs) its own position axis (time, height, width); for text alone all three are the token's
index, so it is the plain 1-D rotary embedding.

The text encoding (ComfyUI's QwenImageTokenizer / QwenImageTEModel): the prompt goes into the
chat template Qwen-Image was trained with (TEMPLATE; a prompt that starts with <|im_start|> is
taken as a whole template itself), tokenized with Qwen's byte-level BPE and its added tokens
(QwenTokenizer: the vocabulary ships in graphflow/models/qwen_tokenizer/), no padding; the last
layer's hidden state through the final norm, from the prompt's first token on: the tokens up
to the second <|im_start|> and its "user\\n" are dropped (34 in TEMPLATE: diffusers'
QwenImagePipeline drops as many), the template's tail (<|im_end|>\\n<|im_start|>assistant\\n) is
kept. ComfyUI reads no prompt weights here: "(word:1.2)" is plain text ("\\(" still a literal
bracket). CLIPSetLastLayer n takes layer n's output unnormed, as ComfyUI's hidden-layer option.
"""

import gzip
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
OWN_TEMPLATE = ("<|im_start|>", "<|start_header_id|>")  # a prompt starting so is used as it is (ComfyUI)


class QwenTokenizer:
    """Text -> Qwen2 token ids, as transformers' Qwen2Tokenizer gives them without special-token
    additions: the added tokens are cut out first, the text between them NFC-normalised, split
    by Qwen2's pattern and byte-pair encoded (tiktoken, on the shipped ranks)."""

    def __init__(self, vocab_file: Path = VOCAB_FILE):
        import base64

        import tiktoken  # read when a Qwen encoder first tokenizes: nothing else needs it

        ranks = {}
        with gzip.open(vocab_file, "rt", encoding="ascii") as lines:
            for line in lines:
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
        if len(ranks) != FIRST_ADDED:
            raise ValueError(f"{vocab_file.name}: {len(ranks)} tokens, Qwen's vocabulary has {FIRST_ADDED}")
        self.bpe = tiktoken.Encoding("qwen2", pat_str=PATTERN, mergeable_ranks=ranks, special_tokens={})
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
class Qwen25VLConfig:
    """Defaults: Qwen2.5-VL 7B's language model."""
    vocab_size: int = 152064
    hidden_size: int = 3584
    intermediate_size: int = 18944
    num_layers: int = 28
    num_heads: int = 28
    num_kv_heads: int = 4
    head_dim: int = HEAD_DIM
    eps: float = 1e-6
    rope_theta: float = 1000000.0


def qwen25vl_config_from_state_dict(shapes: dict[str, tuple]) -> Qwen25VLConfig:
    """From the shapes of `model.*` keys (any prefix stripped)."""
    vocab, hidden = shapes["model.embed_tokens.weight"]
    layers = 1 + max(int(k.split(".")[2]) for k in shapes if k.startswith("model.layers."))
    q_rows = shapes["model.layers.0.self_attn.q_proj.weight"][0]
    k_rows = shapes["model.layers.0.self_attn.k_proj.weight"][0]
    if q_rows % HEAD_DIM or k_rows % HEAD_DIM or (q_rows // HEAD_DIM) % (k_rows // HEAD_DIM):
        raise ValueError(f"Qwen2.5 attention projections of {q_rows} / {k_rows} rows are not whole "
                         f"{HEAD_DIM}-wide heads in groups")
    return Qwen25VLConfig(vocab_size=vocab, hidden_size=hidden,
                          intermediate_size=shapes["model.layers.0.mlp.gate_proj.weight"][0],
                          num_layers=layers, num_heads=q_rows // HEAD_DIM, num_kv_heads=k_rows // HEAD_DIM)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):  # normalised in float32, scaled in the input's dtype (as transformers' Qwen2)
        return self.weight.to(x.dtype) * F.rms_norm(x.float(), x.shape[-1:], eps=self.eps).to(x.dtype)


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat([-b, a], dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: Qwen25VLConfig):
        super().__init__()
        self.cfg = cfg
        self.q_proj = Linear(cfg.hidden_size, cfg.num_heads * cfg.head_dim, bias=True)
        self.k_proj = Linear(cfg.hidden_size, cfg.num_kv_heads * cfg.head_dim, bias=True)
        self.v_proj = Linear(cfg.hidden_size, cfg.num_kv_heads * cfg.head_dim, bias=True)
        self.o_proj = Linear(cfg.num_heads * cfg.head_dim, cfg.hidden_size, bias=False)

    def forward(self, x, cos, sin, mask):
        cfg, (b, t, _) = self.cfg, x.shape
        q = self.q_proj(x).view(b, t, cfg.num_heads, cfg.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, cfg.num_kv_heads, cfg.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, cfg.num_kv_heads, cfg.head_dim).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        groups = cfg.num_heads // cfg.num_kv_heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        return self.o_proj(attention(q, k, v, mask).transpose(1, 2).flatten(2))


class MLP(nn.Module):
    def __init__(self, cfg: Qwen25VLConfig):
        super().__init__()
        self.gate_proj = Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, cfg: Qwen25VLConfig):
        super().__init__()
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.eps)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Qwen25VLBody(nn.Module):
    """The `model.` part of the file."""

    def __init__(self, cfg: Qwen25VLConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.eps)


class Qwen25VL(nn.Module):
    def __init__(self, config: Qwen25VLConfig):
        super().__init__()
        self.config = config
        self.model = Qwen25VLBody(config)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                layer: int | None = None) -> torch.Tensor:
        """ids [B, T] -> the last layer's output through the final norm [B, T, hidden] (layer
        None, ComfyUI's default), or layer `layer`'s output unnormed (negative: from the end).
        attention_mask [B, T], 1 keep, 0 pad."""
        cfg, body = self.config, self.model
        stop = cfg.num_layers - 1 if layer is None else layer % cfg.num_layers
        x = body.embed_tokens(ids)
        t = ids.shape[1]
        exponents = torch.arange(0, cfg.head_dim, 2, dtype=torch.float32, device=x.device) / cfg.head_dim
        inv_freq = 1.0 / cfg.rope_theta ** exponents
        angles = torch.arange(t, dtype=torch.float32, device=x.device)[:, None] * inv_freq[None]
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
    return next((k[:-len(MARKER)] for k in keys if k.endswith(MARKER)), None)


def _language_keys(shapes) -> list[str]:
    """The language model's keys: `model.*` but a head some files keep there (model.lm_head)."""
    return [k for k in shapes if k.startswith("model.") and not k.startswith("model.lm_head.")]


def qwen25vl_from_weights(shapes: dict[str, tuple], get_tensor, device=None,
                          dtype: torch.dtype = torch.float32) -> Qwen25VL:
    """A Qwen25VL from its `model.*` keys (prefix stripped; visual.* and lm_head ignored):
    `get_tensor(key, device, dtype)` reads one tensor cast and moved, into a model built on the
    meta device, so the weights are never held twice."""
    keys = _language_keys(shapes)
    with torch.device("meta"):
        model = Qwen25VL(qwen25vl_config_from_state_dict({k: tuple(shapes[k]) for k in keys}))
    result = model.load_state_dict({k: get_tensor(k, device, dtype) for k in keys}, strict=False, assign=True)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"Qwen2.5-VL weights do not fit the model: missing {result.missing_keys[:6]}, "
                         f"unexpected {result.unexpected_keys[:6]}")
    return model.requires_grad_(False).eval()


def qwen25vl_from_state_dict(state: dict[str, torch.Tensor], device=None,
                             dtype: torch.dtype = torch.float32) -> Qwen25VL:
    """A Qwen25VL from a state dict, its weights under any prefix."""
    prefix = qwen25vl_prefix(state)
    if prefix is None:
        raise ValueError(f"no Qwen2.5-VL weights (expected ...{MARKER})")
    shapes = {k[len(prefix):]: tuple(v.shape) for k, v in state.items() if k.startswith(prefix)}
    return qwen25vl_from_weights(shapes, lambda k, d, t: state[prefix + k].to(device=d, dtype=t), device, dtype)


class QwenTextEncoder:
    """The CLIP socket of Qwen-Image (CLIPLoader type qwen_image): prompt -> (Qwen2.5-VL's states
    [1, T, hidden] from the prompt's first token, None: no pooled vector). `layer` None: the
    last layer through the final norm (ComfyUI's); n: layer n's output unnormed."""

    arch = "qwen_image"

    def __init__(self, model: Qwen25VL, layer: int | None = None, patches: tuple = ()):
        self.model = model
        self.layer = layer
        self.patches = patches  # graphflow.memory.WeightPatch on `model`, applied when it runs

    def with_patches(self, patches: tuple) -> "QwenTextEncoder":
        return QwenTextEncoder(self.model, self.layer, tuple(patches))

    @property
    def towers(self) -> list:
        """No CLIP towers (what LoRAs and hooks patch on CLIP sockets)."""
        return []

    def with_towers(self, towers: list) -> "QwenTextEncoder":
        if towers:
            raise ValueError("Qwen2.5-VL has no CLIP towers")
        return self

    def with_clip_skip(self, clip_skip: int) -> "QwenTextEncoder":
        """CLIPSetLastLayer: -1 the last layer's output, -2 the one before, unnormed (ComfyUI's
        hidden-layer option); past the first layer, the default (normed last), as ComfyUI's."""
        n = self.model.config.num_layers
        if isinstance(clip_skip, bool) or not isinstance(clip_skip, int) or clip_skip > -1:
            raise ValueError(f"the layer must be a negative integer (-1 the last of Qwen2.5-VL's {n}), got {clip_skip!r}")
        return QwenTextEncoder(self.model, clip_skip if -clip_skip <= n else None, self.patches)

    def tokenize(self, prompt: str, template: str = TEMPLATE) -> list[int]:
        return prompt_ids(prompt, template)

    @property
    def device(self) -> torch.device:
        return self.model.model.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.model.embed_tokens.weight.dtype

    @property
    def output_dim(self) -> int:
        return self.model.config.hidden_size

    def to(self, device=None, dtype=None) -> "QwenTextEncoder":
        self.model.to(device=device, dtype=dtype)
        return self

    @torch.no_grad()
    def run(self, ids: list[list[int]]) -> torch.Tensor:
        """Token ids [N][T] (equal lengths) -> hidden states [N, T, hidden], float32 CPU."""
        from graphflow import memory  # on the device for this call only

        with memory.use(self.model, "text_encoder", "text_encoder:qwen25_7b", self.patches):
            device = memory.manager().device_for(self.model)
            tokens = torch.tensor(ids, dtype=torch.long, device=device)
            if int(tokens.max()) >= self.model.config.vocab_size:
                raise ValueError(f"token id {int(tokens.max())} is past this Qwen2.5-VL's "
                                 f"{self.model.config.vocab_size}-token vocabulary")
            with kernels(tokens.device):
                return self.model(tokens, layer=self.layer).float().cpu()

    def encode(self, prompt: str, clip_skip: int | None = None,
               template: str = TEMPLATE) -> tuple[torch.Tensor, None]:
        """Prompt -> ([1, T, hidden], None), T the prompt's tokens plus the template's 5 closing
        ones. clip_skip: another layer for this prompt; template: another chat template."""
        if clip_skip is not None:
            return self.with_clip_skip(clip_skip).encode(prompt, template=template)
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
        ids = self.tokenize(prompt, template)
        return self.run([ids])[:, template_end(ids):], None


def qwen_text_encoder(source, device=None, dtype: torch.dtype = torch.float32) -> QwenTextEncoder:
    """The qwen_image CLIP from `source` (`shapes` + `get(key, device, dtype)`, keys without
    prefix: a graphflow.models.weight_files.KeyView)."""
    return QwenTextEncoder(qwen25vl_from_weights(source.shapes, source.get, device, dtype))
