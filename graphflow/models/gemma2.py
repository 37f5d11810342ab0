"""Gemma-2 2B as a text encoder: Lumina Image 2.0's (and Neta Lumina's), as ComfyUI runs it.

Weights: Comfy-Org's gemma_2_2b_fp16.safetensors holds transformers' Gemma2Model names without
a head (`model.embed_tokens.weight`, `model.layers.N.self_attn.{q,k,v,o}_proj.weight`,
`model.layers.N.mlp.{gate,up,down}_proj.weight`, the four norms of each layer
`{input,post_attention,pre_feedforward,post_feedforward}_layernorm.weight`, `model.norm.weight`)
and the tokenizer's SentencePiece model as the uint8 tensor `spiece_model`. The all-in-one
lumina_2.safetensors has the same under `text_encoders.gemma2_2b.transformer.`.

The network (ComfyUI's Gemma2_2B): token embeddings times sqrt(hidden); per layer
x += post_attn_norm(attn(input_norm(x))), x += post_ffw_norm(mlp(pre_ffw_norm(x))), with
Gemma's RMSNorm x / rms(x) * (1 + w) (eps 1e-6), grouped-query causal attention with rotary
positions (theta 10000, rotate-half), an MLP down(gelu_tanh(gate(x)) * up(x)). Heads are 256
wide (ComfyUI's fixed head_dim; the counts come from the projections' shapes). As in ComfyUI,
and unlike transformers' Gemma2 defaults, there is no attention logit soft-capping (50) and no
4096-token sliding window on alternate layers; the attention scale is 1/sqrt(256), which equals
Gemma-2 2B's query_pre_attn_scalar 256.

The text encoding (ComfyUI's lumina2 CLIP type, GemmaTextEncoder): the tokenizer's <bos> (2),
then each weighted part of the prompt in SentencePiece pieces (the file's own model, read by
graphflow.models.t5.SentencePieceIds), no <eos>, no padding (one prompt: no attention mask);
the hidden state after the second-to-last layer (layer_idx -2, CLIPSetLastLayer changes it),
without the final norm. Weighted tokens ((word:1.2)) become empty + (z - empty) * w, empty
being the encoding of <bos> and <pad>s with the <pad>s masked as keys, as ComfyUI's (its mask
ends at the first <pad>, Gemma having no end token).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .cast_layers import Linear
from .llama import Attention, DecoderTextEncoder, decoder_from_state_dict, decoder_from_weights, marker_prefix
from .tokenizer import parse_weighted_prompt

HEAD_DIM = 256  # ComfyUI's Gemma2_2B_Config
BOS, PAD = 2, 0  # ComfyUI's special tokens for Gemma-2 (start, pad)
SPIECE_KEY = "spiece_model"
# where the tokenizer of a file holding Gemma-2 lies: Comfy-Org's gemma_2_2b file, an all-in-one
# Lumina 2 (ComfyUI's Lumina2.clip_target drops text_encoders.spiece_model from the weights), beside the weights
SPIECE_KEYS = (SPIECE_KEY, "text_encoders.spiece_model", "text_encoders.gemma2_2b.spiece_model",
               "gemma2_2b.spiece_model")
MARKER = "model.layers.0.post_feedforward_layernorm.weight"  # ComfyUI's test for Gemma-2 2B


@dataclass(frozen=True)
class Gemma2Config:
    """Defaults: Gemma-2 2B."""
    vocab_size: int = 256000
    hidden_size: int = 2304
    intermediate_size: int = 9216
    num_layers: int = 26
    num_heads: int = 8
    num_kv_heads: int = 4
    head_dim: int = HEAD_DIM
    eps: float = 1e-6
    rope_theta: float = 10000.0
    qkv_bias: bool = False  # its attention is Llama's (graphflow.models.llama.Attention) without biases


def gemma2_config_from_state_dict(shapes: dict[str, tuple]) -> Gemma2Config:
    """From the shapes of `model.*` keys (any prefix stripped)."""
    vocab, hidden = shapes["model.embed_tokens.weight"]
    layers = 1 + max(int(k.split(".")[2]) for k in shapes if k.startswith("model.layers."))
    q_rows = shapes["model.layers.0.self_attn.q_proj.weight"][0]
    k_rows = shapes["model.layers.0.self_attn.k_proj.weight"][0]
    if q_rows % HEAD_DIM or k_rows % HEAD_DIM:
        raise ValueError(f"Gemma-2 attention projections of {q_rows} / {k_rows} rows are not whole "
                         f"{HEAD_DIM}-wide heads")
    return Gemma2Config(vocab_size=vocab, hidden_size=hidden,
                        intermediate_size=shapes["model.layers.0.mlp.gate_proj.weight"][0],
                        num_layers=layers, num_heads=q_rows // HEAD_DIM, num_kv_heads=k_rows // HEAD_DIM)


class RMSNorm(nn.Module):
    """Gemma's: the weight is stored as an offset from 1."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x):
        return (F.rms_norm(x.float(), x.shape[-1:], eps=self.eps) * (1.0 + self.weight.float())).to(x.dtype)


class MLP(nn.Module):
    def __init__(self, cfg: Gemma2Config):
        super().__init__()
        self.gate_proj = Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.gelu(self.gate_proj(x), approximate="tanh") * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, cfg: Gemma2Config):
        super().__init__()
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)
        for name in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                     "post_feedforward_layernorm"):
            setattr(self, name, RMSNorm(cfg.hidden_size, cfg.eps))

    def forward(self, x, cos, sin, mask):
        x = x + self.post_attention_layernorm(self.self_attn(self.input_layernorm(x), cos, sin, mask))
        return x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))


class Gemma2Body(nn.Module):
    """The `model.` part of the file."""

    def __init__(self, cfg: Gemma2Config):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.eps)


class Gemma2(nn.Module):
    def __init__(self, config: Gemma2Config):
        super().__init__()
        self.config = config
        self.model = Gemma2Body(config)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None, layer: int = -2) -> torch.Tensor:
        """ids [B, T] -> the hidden state [B, T, hidden] after layer `layer` (negative: from the
        end; -2, ComfyUI's lumina2 choice, is the second-to-last), unnormed; `layer` None: the
        last layer's output through the final norm. attention_mask [B, T], 1 keep, 0 pad."""
        cfg, body = self.config, self.model
        n = cfg.num_layers
        stop = n - 1 if layer is None else (layer % n)
        x = body.embed_tokens(ids)
        x = x * torch.tensor(cfg.hidden_size ** 0.5, dtype=x.dtype)  # the normaliser in the embeddings' dtype
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


def gemma2_prefix(keys) -> str | None:
    """The prefix before `model.layers.0.post_feedforward_layernorm.weight` ("" in Comfy-Org's
    gemma_2_2b file, `text_encoders.gemma2_2b.transformer.` in lumina_2.safetensors), or None."""
    return marker_prefix(keys, MARKER)


def gemma2_from_weights(shapes: dict[str, tuple], get_tensor, device=None,
                        dtype: torch.dtype = torch.float32) -> Gemma2:
    """A Gemma2 from its `model.*` keys (prefix stripped; others, as spiece_model, ignored)."""
    keys = [k for k in shapes if k.startswith("model.")]
    return decoder_from_weights(lambda: Gemma2(gemma2_config_from_state_dict({k: tuple(shapes[k]) for k in keys})),
                                keys, get_tensor, device, dtype, "Gemma-2")


def gemma2_from_state_dict(state: dict[str, torch.Tensor], device=None, dtype: torch.dtype = torch.float32) -> Gemma2:
    """A Gemma2 from a state dict, its weights under any prefix."""
    return decoder_from_state_dict(state, gemma2_prefix, gemma2_from_weights, "Gemma-2", MARKER, device, dtype)


class GemmaTextEncoder(DecoderTextEncoder):
    """The CLIP socket of Lumina 2 (CLIPLoader type lumina2): prompt -> (Gemma-2's states
    [1, T, hidden], None: no pooled vector). `pieces` the file's SentencePiece model
    (graphflow.models.t5.SentencePieceIds); `layer` the hidden state taken (-2: ComfyUI's)."""

    arch, key, memory_name, name = "lumina2", "gemma2_2b", "text_encoder:gemma2", "Gemma-2"
    bos, pad = BOS, PAD

    def __init__(self, model: Gemma2, pieces, layer: int = -2, patches: tuple = ()):
        super().__init__(model, layer, patches)
        self.pieces = pieces

    def with_clip_skip(self, clip_skip: int) -> "GemmaTextEncoder":
        """CLIPSetLastLayer: -1 the last layer's output, -2 the one before (unnormed, as ComfyUI's)."""
        if not -self.model.config.num_layers <= clip_skip <= -1:
            raise ValueError(f"Gemma-2 has {self.model.config.num_layers} layers: the layer must be -1 .. "
                             f"-{self.model.config.num_layers}, got {clip_skip}")
        return self._clone(layer=clip_skip)

    def tokenize(self, prompt: str) -> tuple[list[int], list[float]]:
        """<bos>, then each weighted part's pieces (ids, weights)."""
        ids, weights = [BOS], [1.0]
        for segment, weight in parse_weighted_prompt(prompt):
            segment_ids = self.pieces(segment)
            ids += segment_ids
            weights += [weight] * len(segment_ids)
        return ids, weights

    def run(self, ids: list[list[int]], mask: list[list[int]] | None = None) -> torch.Tensor:
        """Token ids [N][T] (equal lengths; mask [N][T], 1 attended, 0 not, None all) -> hidden
        states [N, T, hidden], float32 CPU."""
        return self._forward(ids, mask)

    def _rows(self, rows: list[list[int]]) -> torch.Tensor:
        if len(rows) == 1:
            return self.run(rows)
        n = len(rows[0])  # the prompt's row whole; the empty one's, ComfyUI's: <bos> alone
        return self.run(rows, [[1] * n, [1] + [0] * (n - 1)])

    def encode(self, prompt: str, clip_skip: int | None = None) -> tuple[torch.Tensor, None]:
        """Weighted prompt -> ([1, T, hidden], None). clip_skip: another layer for this prompt."""
        if clip_skip is not None:
            return self.with_clip_skip(clip_skip).encode(prompt)
        return self._weighted(*self.tokenize(prompt)), None


def gemma_text_encoder(source, spiece: torch.Tensor | None, device=None, dtype: torch.dtype = torch.float32,
                       what: str = "Gemma-2") -> GemmaTextEncoder:
    """The lumina2 CLIP from `source` (`shapes` + `get(key, device, dtype)`, keys without prefix:
    a graphflow.models.weight_files.KeyView) and the file's `spiece_model` tensor."""
    from .t5 import SentencePieceIds

    if spiece is None:
        raise ValueError(f"{what} carries no tokenizer (no spiece_model tensor); use Comfy-Org's "
                         "gemma_2_2b_fp16.safetensors, which carries it")
    model = gemma2_from_weights(source.shapes, source.get, device, dtype)
    return GemmaTextEncoder(model, SentencePieceIds(spiece.cpu().numpy().tobytes()))
