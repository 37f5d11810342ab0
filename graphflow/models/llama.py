"""LLaVA-Llama-3 8B's language model as a text encoder: HunyuanVideo's, as ComfyUI runs it
(DualCLIPLoader type hunyuan_video, with CLIP-L).

Weights: ComfyUI's llava_llama3_fp16.safetensors / llava_llama3_fp8_scaled.safetensors hold the
language model in transformers' Llama names (`model.embed_tokens.weight` of LLaVA's 128,320 rows,
`model.layers.N.self_attn.{q,k,v,o}_proj.weight`, `model.layers.N.mlp.{gate,up,down}_proj.weight`,
`model.layers.N.{input,post_attention}_layernorm.weight`, `model.norm.weight`); anything else (a
head `lm_head.weight`, a vision tower or projector) is left unread. ComfyUI tells the file from
its other text encoders by `model.layers.0.post_attention_layernorm.weight` with neither Gemma-2's
post-feedforward norm nor Qwen2.5's attention biases.

The network (Llama 3 8B / ComfyUI's Llama2 config): token embeddings; per layer
x += attn(norm(x)), x += mlp(norm(x)), RMSNorm x / rms(x) * w (eps 1e-5), grouped-query causal
attention without biases, rotary positions (theta 500000, rotate-half, no rescaling: Llama 3, not
3.1) over 128-wide heads (the head counts come from the projections' shapes), an MLP
down(silu(gate(x)) * up(x)); a final norm.

The text encoding (ComfyUI's HunyuanVideoTokenizer / HunyuanVideoClipModel): the prompt goes into
HunyuanVideo's system template (TEMPLATE: diffusers' HunyuanVideoPipeline's too), prompt weights
are read over the whole text ("(word:1.2)", "\\(" a bracket) and each weighted part is tokenized by
Llama 3's BPE (Llama3Tokenizer: the ranks ship in graphflow/models/llama_tokenizer/; special tokens
such as <|eot_id|> are matched anywhere in the text) after <|begin_of_text|>; no padding, so one
prompt has no attention mask, and no truncation (diffusers cuts prompts at 256 tokens, ComfyUI
does not). The states are layer -3's output (the third from the end, layer 29 of 32, unnormed:
hidden_states[-3], diffusers' num_hidden_layers_to_skip 2), from the first token
after the user header's <|start_header_id|>user<|end_header_id|> and its "\\n\\n" up to and
including the prompt's <|eot_id|> (ComfyUI finds the header by its ids: 95 tokens in, diffusers'
crop_start). Weighted tokens become empty + (z - empty) * w, empty being the encoding of
<|begin_of_text|> and <pad>s with the <pad>s masked as keys (ComfyUI's). CLIPSetLastLayer n takes
layer n's output unnormed; past the first layer, the last layer through the final norm (ComfyUI's
"last"). The pooled vector is CLIP-L's pooled output of the plain prompt (one 77-token window, not
projected: ComfyUI's return_projected_pooled False, diffusers' CLIPTextModel pooler_output).

TextEncodeHunyuanVideo_ImageToVideo (encode_with_image): the prompt in I2V_TEMPLATE, whose <image>
token stands for the picture's LLaVA-projected patches (CLIPVisionEncode's mm_projected with
ComfyUI's llava_llama3_vision, 576 rows), spliced into the token embeddings there; the conditioning
is every `image_interleave`-th of the picture's states, then the prompt's as above (ComfyUI's
HunyuanVideoClipModel). Prompt weights cannot go with a picture (ComfyUI's encoder fails on them:
its empty-token row is shorter than the row with the picture).

HiDream-I1's Llama 3.1 8B Instruct (the same network, 128,256 rows) reads through this model too:
graphflow.models.hidream_text (every layer's output, layer "all").

Not here: textual-inversion embeddings for Llama (`embedding:name` is dropped with a warning, its
leftover text kept, as ComfyUI does for a name it cannot find).
"""

import copy
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..context import warn
from .attention import attention, kernels
from .cast_layers import Linear
from .gguf_layers import keep_quantized
from .tokenizer import EMBEDDING, parse_weighted_prompt, tiktoken_ranks

HEAD_DIM = 128  # ComfyUI's Llama2Config (the weights do not show it)
MARKER = "model.layers.0.post_attention_layernorm.weight"  # ComfyUI's test for Llama 3 8B
NOT_LLAMA = ("model.layers.0.post_feedforward_layernorm.weight",  # Gemma-2
             "model.layers.0.self_attn.k_proj.bias")  # Qwen2.5
VOCAB_FILE = Path(__file__).parent / "llama_tokenizer" / "llama3.tiktoken.gz"
BPE_TOKENS = 128000
# Llama 3's pre-tokenizer (Meta's tiktoken pattern, transformers' tokenizer.json Split): digits in threes
PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
           r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
# ComfyUI's llama_tokenizer (LLaVA-Llama-3's): Llama 3's 256 special tokens, then LLaVA's three
SPECIAL_TOKENS = ("<|begin_of_text|>", "<|end_of_text|>", *(f"<|reserved_special_token_{i}|>" for i in range(4)),
                  "<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_4|>", "<|eot_id|>",
                  *(f"<|reserved_special_token_{i}|>" for i in range(5, 251)), "<unk>", "<image>", "<pad>")
BOS, PAD, IMAGE = 128000, 128258, 128257  # ComfyUI's special tokens for this encoder (start, pad), LLaVA's <image>
START_HEADER, END_HEADER, EOT = 128006, 128007, 128009
USER, DOUBLE_NEWLINE = 882, 271  # "user", "\n\n"
DEFAULT_LAYER = -3  # ComfyUI's layer_idx (diffusers' hidden_states[-(2 + 1)])
# ComfyUI's HunyuanVideoTokenizer.llama_template (diffusers' DEFAULT_PROMPT_TEMPLATE)
TEMPLATE = ("<|start_header_id|>system<|end_header_id|>\n\nDescribe the video by detailing the following aspects: "
            "1. The main content and theme of the video.2. The color, shape, size, texture, quantity, text, and "
            "spatial relationships of the objects.3. Actions, events, behaviors temporal relationships, physical "
            "movement changes of the objects.4. background environment, light, style and atmosphere.5. camera "
            "angles, movements, and transitions used in the video:<|eot_id|><|start_header_id|>user"
            "<|end_header_id|>\n\n{}<|eot_id|>")
# ComfyUI's TextEncodeHunyuanVideo_ImageToVideo template (HunyuanVideo-I2V's PROMPT_TEMPLATE_ENCODE_VIDEO_I2V)
I2V_TEMPLATE = ("<|start_header_id|>system<|end_header_id|>\n\n<image>\nDescribe the video by detailing the "
                "following aspects according to the reference image: 1. The main content and theme of the video.2. "
                "The color, shape, size, texture, quantity, text, and spatial relationships of the objects.3. Actions, "
                "events, behaviors temporal relationships, physical movement changes of the objects.4. background "
                "environment, light, style and atmosphere.5. camera angles, movements, and transitions used in the "
                "video:<|eot_id|>\n\n<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|><|start_header_id|>"
                "assistant<|end_header_id|>\n\n")


class Llama3Tokenizer:
    """Text -> Llama 3 token ids, as transformers' tokenizer of ComfyUI's llama_tokenizer gives them
    without <|begin_of_text|>: the special tokens cut out wherever they are, the text between
    them split by Llama 3's pattern and byte-pair encoded (tiktoken, on the shipped ranks; no
    normalisation)."""

    def __init__(self, vocab_file: Path = VOCAB_FILE):
        import tiktoken  # read when a Llama encoder first tokenizes: nothing else needs it

        specials = {token: BPE_TOKENS + i for i, token in enumerate(SPECIAL_TOKENS)}
        self.bpe = tiktoken.Encoding("llama3", pat_str=PATTERN, mergeable_ranks=tiktoken_ranks(vocab_file, BPE_TOKENS),
                                     special_tokens=specials)

    def __call__(self, text: str) -> list[int]:
        return self.bpe.encode(text, allowed_special="all", disallowed_special=())


@lru_cache(maxsize=1)
def llama3_tokenizer() -> Llama3Tokenizer:
    return Llama3Tokenizer()


def _words(segment: str) -> list[str]:
    """A weighted segment's pieces, tokenized apart as ComfyUI's tokenizer does: cut before each
    "embedding:" that follows whitespace. An `embedding:name` piece loses its name (graphflow
    reads no Llama embeddings; ComfyUI warns alike for a name it cannot find) and keeps the
    text after it."""
    parts = re.split(rf"(?<=\s){EMBEDDING}", segment)
    words = []
    for word in [parts[0]] + [EMBEDDING + p for p in parts[1:]]:
        if word.startswith(EMBEDDING):
            split = word[len(EMBEDDING):].strip("\n").split()
            name, leftover = (split[0], " ".join(split[1:])) if split else ("", "")
            cut = re.search(r"[<\[]", name)
            if cut is not None:
                leftover = name[cut.start():] + (" " + leftover if leftover else "")
                name = name[:cut.start()]
            stripped = name.strip(",")
            if len(stripped) < len(name):
                leftover = f"{name[len(stripped):]} {leftover}"
            warn(f"embedding:{name}: graphflow reads no textual-inversion embeddings for Llama 3, ignoring it")
            word = leftover
        if word:
            words.append(word)
    return words


def prompt_tokens(prompt: str, template: str = TEMPLATE, tokenize=None) -> tuple[list[int], list[float]]:
    """The ids and weights ComfyUI's LLAMA3Tokenizer gives `prompt` in `template`:
    <|begin_of_text|>, then each weighted part of the templated text."""
    tokenize = tokenize or llama3_tokenizer()
    ids, weights = [BOS], [1.0]
    for segment, weight in parse_weighted_prompt(template.format(prompt)):
        for word in _words(segment):
            word_ids = tokenize(word)
            ids += word_ids
            weights += [weight] * len(word_ids)
    return ids, weights


def prompt_span(ids: list[int], pictures: dict[int, int] | None = None,
                interleave: int = 1) -> tuple[slice, list[slice]]:
    """The states ComfyUI's HunyuanVideoClipModel keeps, as slices of the states of `ids` with each
    picture's rows in place of its token (`pictures`: token index -> rows): the prompt's, from
    after the last <|start_header_id|>user<|end_header_id|> and its "\\n\\n" through the next
    <|eot_id|> (95 tokens in with TEMPLATE, diffusers' crop_start), and every `interleave`-th of
    each picture's ahead of the user header. Without a user header, all of it (less a leading
    "\\n\\n" pair at 1-2); with no <|eot_id|> after it, all but the last (ComfyUI's slices)."""
    pictures = pictures or {}
    start, end, extra, extra_user, images = 0, None, 0, 0, []
    for i, t in enumerate(ids):
        if i in pictures:
            rows = pictures[i]
            if start == 0:  # before the user header: kept apart
                images.append(slice(i + extra, i + extra + rows, interleave))
                extra += rows - 1
            elif end == -1:  # in the user's part: it widens the prompt's span
                extra_user += rows - 1
        elif t == START_HEADER and ids[i + 1:i + 3] == [USER, END_HEADER]:
            start, end = i + 2, -1
        elif t == EOT and end == -1:
            end = i + 1
    states = len(ids) + sum(rows - 1 for rows in pictures.values())
    if states > start + 2 and start + 1 < len(ids) and ids[start + 1] == DOUBLE_NEWLINE and start + 1 not in pictures:
        start += 2
    return slice(start + extra, None if end is None else end + extra + extra_user), images


@dataclass(frozen=True)
class LlamaConfig:
    """Defaults: LLaVA-Llama-3 8B's language model (Llama 3 8B with LLaVA's 320 more rows)."""
    vocab_size: int = 128320
    hidden_size: int = 4096
    intermediate_size: int = 14336
    num_layers: int = 32
    num_heads: int = 32
    num_kv_heads: int = 8
    head_dim: int = HEAD_DIM
    eps: float = 1e-5
    rope_theta: float = 500000.0
    qkv_bias: bool = False  # Llama: none (Qwen2's decoder is this one with biases)


def llama_config_from_state_dict(shapes: dict[str, tuple], config=LlamaConfig, what: str = "Llama"):
    """From the shapes of `model.*` keys (any prefix stripped); `config` the family's dataclass
    (Qwen2.5's decoder is Llama's)."""
    vocab, hidden = shapes["model.embed_tokens.weight"]
    layers = 1 + max(int(k.split(".")[2]) for k in shapes if k.startswith("model.layers."))
    q_rows = shapes["model.layers.0.self_attn.q_proj.weight"][0]
    k_rows = shapes["model.layers.0.self_attn.k_proj.weight"][0]
    if q_rows % HEAD_DIM or k_rows % HEAD_DIM or (q_rows // HEAD_DIM) % (k_rows // HEAD_DIM):
        raise ValueError(f"{what} attention projections of {q_rows} / {k_rows} rows are not whole "
                         f"{HEAD_DIM}-wide heads in groups")
    return config(vocab_size=vocab, hidden_size=hidden,
                  intermediate_size=shapes["model.layers.0.mlp.gate_proj.weight"][0],
                  num_layers=layers, num_heads=q_rows // HEAD_DIM, num_kv_heads=k_rows // HEAD_DIM)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):  # normalised in float32, scaled in the input's dtype (as transformers' Llama)
        return self.weight.to(x.dtype) * F.rms_norm(x.float(), x.shape[-1:], eps=self.eps).to(x.dtype)


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat([-b, a], dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg
        self.q_proj = Linear(cfg.hidden_size, cfg.num_heads * cfg.head_dim, bias=cfg.qkv_bias)
        self.k_proj = Linear(cfg.hidden_size, cfg.num_kv_heads * cfg.head_dim, bias=cfg.qkv_bias)
        self.v_proj = Linear(cfg.hidden_size, cfg.num_kv_heads * cfg.head_dim, bias=cfg.qkv_bias)
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
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.gate_proj = Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.eps)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaBody(nn.Module):
    """The `model.` part of the file."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.eps)


class Llama(nn.Module):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.model = LlamaBody(config)

    def forward(self, ids: torch.Tensor | None, attention_mask: torch.Tensor | None = None,
                layer: int | str | None = DEFAULT_LAYER, embeds: torch.Tensor | None = None) -> torch.Tensor:
        """ids [B, T] (or their embeddings `embeds` [B, T, hidden], pictures spliced in) -> layer
        `layer`'s output unnormed [B, T, hidden] (negative: from the end; -3 HunyuanVideo's), or
        with `layer` None the last layer's through the final norm; "all": every layer's output
        [B, layers, T, hidden], the last one's through the final norm (transformers'
        hidden_states[1:], HiDream's). attention_mask [B, T], 1 keep, 0 pad (as keys)."""
        cfg, body = self.config, self.model
        every = layer == "all"
        stop = cfg.num_layers - 1 if layer is None or every else layer % cfg.num_layers
        x = body.embed_tokens(ids) if embeds is None else embeds.to(body.embed_tokens.weight.dtype)
        t = x.shape[1]
        exponents = torch.arange(0, cfg.head_dim, 2, dtype=torch.float32, device=x.device) / cfg.head_dim
        inv_freq = 1.0 / cfg.rope_theta ** exponents
        angles = torch.arange(t, dtype=torch.float32, device=x.device)[:, None] * inv_freq[None]
        angles = torch.cat([angles, angles], dim=-1)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        keep = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()[None, None]
        if attention_mask is not None:
            keep = keep & attention_mask.to(x.device).bool()[:, None, None, :]
        outputs = []
        for block in body.layers[:stop + 1]:  # the layers after it do not change it
            x = block(x, cos, sin, keep)
            outputs.append(x)
        if every:
            return torch.stack(outputs[:-1] + [body.norm(x)], dim=1)
        return body.norm(x) if layer is None else x


def marker_prefix(keys, marker: str) -> str | None:
    """The prefix before the first key ending in `marker` (a family's test key), or None."""
    return next((k[:-len(marker)] for k in keys if k.endswith(marker)), None)


def llama_prefix(keys) -> str | None:
    """The prefix before `model.layers.0.post_attention_layernorm.weight` ("" in ComfyUI's
    llava_llama3 files) where no Gemma-2 or Qwen2.5 key lies beside it, or None."""
    keys = set(keys)
    for key in keys:
        if key.endswith(MARKER):
            prefix = key[:-len(MARKER)]
            if not any(prefix + other in keys for other in NOT_LLAMA):
                return prefix
    return None


def decoder_from_weights(build, keys: list[str], get_tensor, device, dtype: torch.dtype, what: str,
                         source=None) -> nn.Module:
    """The model `build()` makes, on the meta device, with the weights of `keys` assigned into it
    (`get_tensor(key, device, dtype)` reads one tensor cast and moved), so they are never held twice.
    `source`: the weights source `get_tensor` reads; a GGUF file's quantized Linear weights then
    stay quantized (graphflow.models.gguf.keep_quantized)."""
    with torch.device("meta"):
        model = build()
    quantized = set() if source is None else keep_quantized(model, source, dtype)
    result = model.load_state_dict({k: get_tensor(k, device, torch.uint8 if k in quantized else dtype) for k in keys},
                                   strict=False, assign=True)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{what} weights do not fit the model: missing {result.missing_keys[:6]}, "
                         f"unexpected {result.unexpected_keys[:6]}")
    return model.requires_grad_(False).eval()


def decoder_from_state_dict(state: dict[str, torch.Tensor], prefix_of, from_weights, what: str, marker: str,
                            device=None, dtype: torch.dtype = torch.float32) -> nn.Module:
    """`from_weights`' model from a state dict, its weights under the prefix `prefix_of` finds."""
    prefix = prefix_of(state)
    if prefix is None:
        raise ValueError(f"no {what} weights (expected ...{marker})")
    shapes = {k[len(prefix):]: tuple(v.shape) for k, v in state.items() if k.startswith(prefix)}
    return from_weights(shapes, lambda k, d, t: state[prefix + k].to(device=d, dtype=t), device, dtype)


def llama_from_weights(shapes: dict[str, tuple], get_tensor, device=None, dtype: torch.dtype = torch.float32,
                       source=None) -> Llama:
    """A Llama from its `model.*` keys (prefix stripped; lm_head and others ignored); `source`: as
    decoder_from_weights'."""
    keys = [k for k in shapes if k.startswith("model.") and not k.startswith("model.lm_head.")]
    return decoder_from_weights(lambda: Llama(llama_config_from_state_dict({k: tuple(shapes[k]) for k in keys})),
                                keys, get_tensor, device, dtype, "Llama", source)


def llama_from_state_dict(state: dict[str, torch.Tensor], device=None, dtype: torch.dtype = torch.float32) -> Llama:
    """A Llama from a state dict, its weights under any prefix."""
    return decoder_from_state_dict(state, llama_prefix, llama_from_weights, "Llama", MARKER, device, dtype)


def _key_mask(ids: list[int], pad: int = PAD) -> list[int]:
    """ComfyUI's attention mask for a row of this encoder (no end token): 1 up to the first `pad`
    (<pad>; HiDream's: <|eot_id|>), 0 from it on."""
    first = ids.index(pad) if pad in ids else len(ids)
    return [1] * first + [0] * (len(ids) - first)


@torch.no_grad()
def decoder_states(model: nn.Module, memory_name: str, name: str, patches: tuple, ids: list[list[int]],
                   mask: list[list[int]] | None, layer, splice=None) -> torch.Tensor:
    """Token ids [N][T] (equal lengths; mask [N][T], 1 attended, 0 not, None all) -> `model`'s
    output at `layer`, float32 CPU, the model on its device (memory manager's `memory_name`, with
    `patches`) for this call only. splice(tokens on the device) -> the model's other inputs
    (pictures' embeddings); `name` the model's in messages."""
    from graphflow import memory

    with memory.use(model, "text_encoder", memory_name, patches):
        device = memory.manager().device_for(model)
        tokens = torch.tensor(ids, dtype=torch.long, device=device)
        top = int(tokens.max())
        if top >= model.config.vocab_size:
            raise ValueError(f"token id {top} is past this {name}'s {model.config.vocab_size}-token vocabulary")
        keep = None if mask is None else torch.tensor(mask, dtype=torch.long, device=device)
        with kernels(tokens.device):
            inputs = {} if splice is None else splice(tokens)
            return model(tokens, keep, layer=layer, **inputs).float().cpu()


class DecoderTextEncoder:
    """What the CLIP sockets of a decoder language model share (Lumina 2's Gemma-2, Qwen-Image's
    Qwen2.5-VL, HunyuanVideo's LLaVA-Llama-3): `model` (its `model.*` part the file's), the
    hidden state taken (`layer`), the patches applied when it runs, and any CLIP towers beside it.
    Each family names: `arch` (the CLIP's), `key` (the model's name in merges and CLIPSave files,
    as ComfyUI's), `memory_name` (the memory manager's), `name` (in messages)."""

    arch: str
    key: str
    memory_name: str
    name: str

    def __init__(self, model, layer, patches: tuple = ()):
        self.model = model
        self.layer = layer
        self.patches = patches  # graphflow.memory.WeightPatch on `model` (CLIPAttentionMultiply), applied when it runs

    def _clone(self, **changes):
        clone = copy.copy(self)
        clone.__dict__.update(changes)
        return clone

    def with_patches(self, patches: tuple):
        return self._clone(patches=tuple(patches))

    @property
    def towers(self) -> list:
        """No CLIP towers (what LoRAs and hooks patch on CLIP sockets): text-encoder LoRA modules
        do not match the language model and are reported as such; model-side LoRAs apply as usual."""
        return []

    @property
    def extra_encoders(self) -> list[tuple[str, object]]:
        """(name, T5Encoder) of the encoders beside the model and its towers, read, kept in memory and
        saved under those names (HunyuanImage's byT5: byt5_small); none by default."""
        return []

    def with_towers(self, towers: list):
        if towers:
            raise ValueError(f"{self.name} has no CLIP towers")
        return self

    def with_clip_skip(self, clip_skip: int):
        """CLIPSetLastLayer: -1 the last layer's output, -2 the one before, unnormed (ComfyUI's
        hidden-layer option); past the first layer, the last through the final norm, as ComfyUI's."""
        n = self.model.config.num_layers
        if isinstance(clip_skip, bool) or not isinstance(clip_skip, int) or clip_skip > -1:
            raise ValueError(f"the layer must be a negative integer (-1 the last of {self.name}'s {n}), "
                             f"got {clip_skip!r}")
        return self._clone(layer=clip_skip if -clip_skip <= n else None)

    @property
    def device(self) -> torch.device:
        return self.model.model.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.model.embed_tokens.weight.dtype

    @property
    def output_dim(self) -> int:
        return self.model.config.hidden_size

    def to(self, device=None, dtype=None):
        self.model.to(device=device, dtype=dtype)
        for tower in self.towers:
            tower.model.to(device=device, dtype=dtype)
        return self

    def _forward(self, ids: list[list[int]], mask: list[list[int]] | None = None, splice=None) -> torch.Tensor:
        """decoder_states of this encoder's model at its layer."""
        return decoder_states(self.model, self.memory_name, self.name, self.patches, ids, mask, self.layer, splice)

    def _rows(self, rows: list[list[int]]) -> torch.Tensor:
        """The states of the prompt's row and the empty one, each masked by the family's rule."""
        return self.run(rows)

    def _weighted(self, ids: list[int], weights: list[float]) -> torch.Tensor:
        """The prompt's states [1, T, hidden] with ComfyUI's prompt weights: a weighted token's
        state is empty + (z - empty) * w, `empty` the states of [bos, pad, pad, ...]."""
        weighted = any(w != 1.0 for w in weights)
        hidden = self._rows([ids] + ([[self.bos] + [self.pad] * (len(ids) - 1)] if weighted else []))
        z = hidden[:1]
        if weighted:
            w = torch.tensor(weights, dtype=torch.float32)[None, :, None]
            z = torch.where(w != 1.0, (z - hidden[1:]) * w + hidden[1:], z)
        return z


class HunyuanVideoTextEncoder(DecoderTextEncoder):
    """The CLIP socket of HunyuanVideo (DualCLIPLoader type hunyuan_video): prompt -> (LLaVA-Llama-3's
    states [1, L, hidden] of the prompt's tokens and its <|eot_id|>, CLIP-L's pooled output
    [1, 768]). `layer`: -3 (ComfyUI's), another negative layer (CLIPSetLastLayer; CLIP-L's pooled
    output does not depend on it), or None for the last layer through the final norm."""

    arch, key, memory_name, name = "hunyuan_video", "llama", "text_encoder:llama", "Llama"
    bos, pad = BOS, PAD

    def __init__(self, llama: Llama, clip_l, layer: int | None = DEFAULT_LAYER, patches: tuple = ()):
        super().__init__(llama, layer, patches)
        self.clip_l = clip_l  # graphflow.models.text_encoders.ClipTower

    @property
    def towers(self) -> list:
        """CLIP-L (what LoRAs and hooks patch on CLIP sockets)."""
        return [self.clip_l]

    def with_towers(self, towers: list) -> "HunyuanVideoTextEncoder":
        if len(towers) != 1:
            raise ValueError(f"HunyuanVideo's text encoder has one CLIP tower (CLIP-L), got {len(towers)}")
        return self._clone(clip_l=towers[0])

    def tokenize(self, prompt: str, template: str = TEMPLATE) -> tuple[list[int], list[float]]:
        return prompt_tokens(prompt, template)

    def run(self, ids: list[list[int]], pictures: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """Token ids [N][T] (equal lengths; each row masked from its first <pad> on, as ComfyUI's)
        -> hidden states [N, T', hidden], float32 CPU. `pictures` (one row of ids): token index ->
        the embeddings [rows, hidden] put in that token's place (T' = T + rows - 1 each)."""
        pictures = pictures or {}
        if pictures and len(ids) != 1:
            raise ValueError("pictures go with one row of token ids")
        rows = ids
        if pictures:  # the row as the model sees it: each picture's rows in its token's place
            row, last = [], 0
            for index in sorted(pictures):
                row += ids[0][last:index] + [IMAGE] * len(pictures[index])
                last = index + 1
            rows = [row + ids[0][last:]]
        masks = [_key_mask(row) for row in rows]
        return self._forward(ids, None if all(all(m) for m in masks) else masks,
                             (lambda tokens: {"embeds": self._spliced(tokens[0], pictures)}) if pictures else None)

    def _spliced(self, tokens: torch.Tensor, pictures: dict[int, torch.Tensor]) -> torch.Tensor:
        """The embeddings [1, T', hidden] of one row of tokens, each picture's in its token's place."""
        embed = self.model.model.embed_tokens(tokens)
        pieces, last = [], 0
        for index in sorted(pictures):
            picture = pictures[index].to(device=embed.device, dtype=embed.dtype)
            if picture.ndim != 2 or picture.shape[1] != embed.shape[1]:
                raise ValueError(f"a picture's embeddings must be [rows, {embed.shape[1]}] (this Llama's "
                                 f"width), got {tuple(picture.shape)}")
            pieces += [embed[last:index], picture]
            last = index + 1
        return torch.cat(pieces + [embed[last:]])[None]

    def encode_llama(self, prompt: str, template: str = TEMPLATE) -> torch.Tensor:
        """Weighted prompt -> Llama's part of the conditioning [1, L, hidden]."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
        ids, weights = self.tokenize(prompt, template)
        return self._weighted(ids, weights)[:, prompt_span(ids)[0]]

    def encode_with_image(self, prompt: str, image_embeds: torch.Tensor, interleave: int = 2,
                          template: str = I2V_TEMPLATE) -> tuple[torch.Tensor, torch.Tensor]:
        """TextEncodeHunyuanVideo_ImageToVideo: prompt and a picture's LLaVA-projected patches
        (CLIP_VISION_OUTPUT's mm_projected [B, rows, hidden]; the first picture goes to the
        template's <image>, as ComfyUI's gives one per <image> token in order) -> ([1, rows /
        interleave + L, hidden], CLIP-L's pooled [1, 768])."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
        if isinstance(interleave, bool) or not isinstance(interleave, int) or interleave < 1:
            raise ValueError(f"image_interleave must be a whole number of 1 or more, got {interleave!r}")
        if image_embeds.ndim == 2:
            image_embeds = image_embeds[None]
        ids, weights = self.tokenize(prompt, template)
        if any(w != 1.0 for w in weights):
            raise ValueError("prompt weights cannot go with a picture (ComfyUI's encoder fails on them too: the "
                             "empty-token row it weighs against is shorter than the row with the picture)")
        spots = [i for i, t in enumerate(ids) if t == IMAGE][:image_embeds.shape[0]]
        pictures = {i: image_embeds[n] for n, i in enumerate(spots)}
        hidden = self.run([ids], pictures)
        text, images = prompt_span(ids, {i: len(p) for i, p in pictures.items()}, interleave)
        context = torch.cat([hidden[:, s] for s in images] + [hidden[:, text]], dim=1)
        return context, self._pooled(prompt)

    def encode(self, prompt: str, clip_skip: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt -> ([1, L, hidden], pooled [1, 768]). clip_skip: another Llama layer for this prompt."""
        if clip_skip is not None:
            return self.with_clip_skip(clip_skip).encode(prompt)
        context = self.encode_llama(prompt)
        return context, self._pooled(prompt)

    def _pooled(self, prompt: str) -> torch.Tensor:
        """CLIP-L's pooled output [1, 768] of the prompt: its last layer's, unprojected."""
        from .flow_text import _windows, clip_encode

        return clip_encode(self.clip_l, _windows(self.clip_l, prompt), -1, projected=False)[1]

