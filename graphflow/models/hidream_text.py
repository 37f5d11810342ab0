"""HiDream-I1's text encoders as ComfyUI v0.3.64 runs them (QuadrupleCLIPLoader; CLIPLoader and
DualCLIPLoader type hidream for some of them): CLIP-L, CLIP-G, T5-XXL and Llama 3.1 8B Instruct
(llama_3.1_8b_instruct_fp8_scaled.safetensors: Llama 3 8B's network with Llama 3.1's 128,256-row
vocabulary, read by graphflow.models.llama; a LLaVA-Llama-3 file is taken too, as ComfyUI's file
test cannot tell them apart), each optional. The conditioning (ComfyUI's HiDreamTEModel):

- context: T5-XXL's last states [1, 128, 4096]: the prompt's pieces and </s> padded with <pad> to
  128 tokens, T5 run with the padding masked as keys and the padded states kept (not zeroed), as
  diffusers' HiDreamImagePipeline._get_t5_prompt_embeds. Longer prompts keep their first 127
  pieces and </s> (ComfyUI keeps its tokenizer's first 128-token section).
- "pooled_output": CLIP-L's and CLIP-G's pooled outputs, both through their text projections
  (ComfyUI's return_projected_pooled; diffusers' CLIPTextModelWithProjection text_embeds),
  concatenated [1, 768 + 1280], from the prompt's first window, as long as the tower's positions
  (ComfyUI reads a CLIP of more than 77, as HiDream's 248-position clip_l_hidream / clip_g_hidream,
  with windows that long); CLIP-L pads with its end token, CLIP-G with 0 (SD3's tokenizers). A
  CLIP-L file without a projection pools unprojected. diffusers feeds its CLIPs 128 tokens: the
  same pooled vector for prompts that fit (CLIP attends causally, the end token pools).
- "conditioning_llama3": every Llama layer's output [1, 32, L, 4096] (transformers'
  hidden_states[1:]: layers 0-30 unnormed, the last through the final norm) for
  <|begin_of_text|> + the prompt, no chat template, padded with <|eot_id|> to 128 tokens (not cut:
  ComfyUI sets no maximum, diffusers cuts at 128), keys masked from the first <|eot_id|> on,
  padded states kept. Rotary positions without Llama 3.1's rope scaling (ComfyUI's Llama2
  config has none; diffusers' LlamaForCausalLM of Llama 3.1's config scales them).

A missing encoder gives zeros: T5 [1, 128, 4096], Llama [1, 32, 1, 4096], and the pooled vector
[1, 2048] unless both CLIPs are there (ComfyUI pools nothing with one of them alone).

Prompt weights ("(word:1.2)"): ComfyUI's, empty + (z - empty) * w with the empty prompt's tokens
([</s>, <pad>...] for T5; [<|begin_of_text|>, <|eot_id|>...] for Llama, masked likewise). For
Llama, ComfyUI's weighting walks the first axis after the batch, which here is the layers: token
j's weight applies to the whole of layer entry j (entry 0 the embeddings, dropped afterwards),
for the first 33 tokens; reproduced as such. CLIPSetLastLayer reaches T5 alone (that block's
output through the final layer norm); ComfyUI leaves the all-layers Llama as it is.
"""

import copy

import torch

from .embeddings import embedding_lookup
from .tokenizer import tokenize_prompt
from .llama import BOS, EOT, Llama, _key_mask, decoder_states, prompt_tokens
from .text_encoders import check_clip_skip

LENGTH = 128  # ComfyUI's T5 and Llama min_length for HiDream
CONTEXT_DIM, POOLED_DIM, LLAMA_LAYERS = 4096, 768 + 1280, 32  # the real models' (ComfyUI's zeros)


class HiDreamTextEncoder:
    """CLIP for HiDream: prompt -> (T5 states [1, 128, 4096], pooled [1, 2048], {"conditioning_llama3":
    [1, 32, L, 4096]}). clip_l / clip_g: graphflow.models.text_encoders.ClipTower, t5:
    graphflow.models.t5.T5Encoder, llama: graphflow.models.llama.Llama; any may be None."""

    arch = "hidream"

    def __init__(self, clip_l=None, clip_g=None, t5=None, llama: Llama | None = None, patches: tuple = ()):
        if clip_l is None and clip_g is None and t5 is None and llama is None:
            raise ValueError("HiDream's text encoder needs at least one of CLIP-L, CLIP-G, T5-XXL, Llama 3.1")
        self.clip_l, self.clip_g, self.t5, self.model = clip_l, clip_g, t5, llama
        self.patches = patches  # graphflow.memory.WeightPatch on the Llama, applied when it runs

    def _clone(self, **changes) -> "HiDreamTextEncoder":
        clone = copy.copy(self)
        clone.__dict__.update(changes)
        return clone

    def with_patches(self, patches: tuple) -> "HiDreamTextEncoder":
        return self._clone(patches=tuple(patches))

    @property
    def towers(self) -> list:
        return [t for t in (self.clip_l, self.clip_g) if t is not None]

    def with_towers(self, towers: list) -> "HiDreamTextEncoder":
        named = dict(zip([n for n in ("clip_l", "clip_g") if getattr(self, n) is not None], towers))
        return self._clone(clip_l=named.get("clip_l"), clip_g=named.get("clip_g"))

    def with_t5(self, t5) -> "HiDreamTextEncoder":
        return self._clone(t5=t5)

    def with_clip_skip(self, clip_skip: int) -> "HiDreamTextEncoder":
        """CLIPSetLastLayer, as ComfyUI passes it on: T5 gives that block's output through its final
        layer norm; Llama keeps all its layers (ComfyUI leaves a layer "all" encoder alone); the
        pooled CLIP outputs do not depend on it."""
        check_clip_skip(clip_skip)
        return self._clone(t5=None if self.t5 is None else self.t5.with_layer(clip_skip))

    @property
    def _weight(self) -> torch.Tensor:
        if self.t5 is not None:
            return self.t5.model.shared.weight
        if self.model is not None:
            return self.model.model.embed_tokens.weight
        return self.towers[0].transformer.embeddings.token_embedding.weight

    @property
    def device(self) -> torch.device:
        return self._weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self._weight.dtype

    @property
    def output_dim(self) -> int:
        return self.t5.hidden_size if self.t5 is not None else CONTEXT_DIM

    def to(self, device=None, dtype=None) -> "HiDreamTextEncoder":
        for tower in self.towers:
            tower.model.to(device=device, dtype=dtype)
        if self.t5 is not None:
            self.t5.to(device, dtype)
        if self.model is not None:
            self.model.to(device=device, dtype=dtype)
        return self

    # -- the four parts ------------------------------------------------------------------------

    def pooled(self, clip_l: str, clip_g: str) -> torch.Tensor:
        """CLIP-L's and CLIP-G's projected pooled outputs [1, P_l + P_g]; zeros [1, 2048] unless both are there."""
        if self.clip_l is None or self.clip_g is None:
            return torch.zeros(1, POOLED_DIM)
        pools = []
        for tower, text in ((self.clip_l, clip_l), (self.clip_g, clip_g)):
            # one window as long as the tower's positions (ComfyUI's long-CLIP reading: HiDream's have 248)
            positions = tower.transformer.embeddings.position_embedding.weight.shape[0]
            windows = tokenize_prompt(text, tower.spec.pad_token, embedding_lookup(tower.name, tower.hidden_size),
                                      window=positions)
            vectors = {k: v for k, v in windows.vectors.items() if k[0] == 0}
            pools.append(tower.run(windows.ids[:1], -1, False, vectors, projected=True)[1])
        return torch.cat(pools, dim=-1)

    def t5_states(self, prompt: str) -> torch.Tensor:
        """T5-XXL's states [1, 128, d_model]: padded to 128, the padding masked as keys, not zeroed."""
        if self.t5 is None:
            return torch.zeros(1, LENGTH, CONTEXT_DIM)
        t5 = self.t5
        ids, weights, vectors = t5._tokens(prompt, LENGTH, 0)
        if len(ids) > LENGTH:  # the first section: 127 pieces and </s>
            ids, weights = ids[:LENGTH - 1] + [t5.eos], weights[:LENGTH - 1] + [1.0]
            vectors = {k: v for k, v in vectors.items() if k[1] < LENGTH - 1}
        weighted = any(w != 1.0 for w in weights)
        empty = [t5.eos] + [0] * (len(ids) - 1)
        rows = [ids] + ([empty] if weighted else [])
        masks = [[1] * (row.index(t5.eos) + 1) + [0] * (len(row) - row.index(t5.eos) - 1) for row in rows]
        hidden = t5.run(rows, vectors, masks)
        z = hidden[:1]
        if weighted:
            w = torch.tensor(weights, dtype=torch.float32)[None, :, None]
            z = torch.where(w != 1.0, (z - hidden[1:]) * w + hidden[1:], z)
        return z

    def llama_tokens(self, prompt: str) -> tuple[list[int], list[float]]:
        """<|begin_of_text|> + the prompt's ids (no template), padded with <|eot_id|> to 128."""
        ids, weights = prompt_tokens(prompt, "{}")
        pad = max(0, LENGTH - len(ids))
        return ids + [EOT] * pad, weights + [1.0] * pad

    @torch.no_grad()
    def run_llama(self, ids: list[list[int]]) -> torch.Tensor:
        """Token ids [N][T] -> every layer's output [N, layers, T, hidden] (the last normed), keys
        masked from each row's first <|eot_id|> on; float32 CPU."""
        masks = [_key_mask(row, EOT) for row in ids]
        return decoder_states(self.model, "text_encoder:llama", "Llama", self.patches, ids,
                              None if all(all(m) for m in masks) else masks, "all")

    def llama_states(self, prompt: str) -> torch.Tensor:
        """Llama's per-layer states [1, layers, L, hidden] ("conditioning_llama3")."""
        if self.model is None:
            return torch.zeros(1, LLAMA_LAYERS, 1, CONTEXT_DIM)
        ids, weights = self.llama_tokens(prompt)
        weighted = any(w != 1.0 for w in weights)
        rows = [ids] + ([[BOS] + [EOT] * (len(ids) - 1)] if weighted else [])
        hidden = self.run_llama(rows)
        z = hidden[:1].clone()
        if weighted:  # ComfyUI's: token j's weight on layer entry j (entry 0, the embeddings, is dropped)
            empty = hidden[1]
            for j in range(1, min(len(weights), z.shape[1] + 1)):
                if weights[j] != 1.0:
                    z[0, j - 1] = (z[0, j - 1] - empty[j - 1]) * weights[j] + empty[j - 1]
        return z

    # -- encoding ------------------------------------------------------------------------------

    def encode_hidream(self, clip_l: str, clip_g: str, t5xxl: str, llama: str) -> tuple[torch.Tensor, torch.Tensor,
                                                                                         dict]:
        """CLIPTextEncodeHiDream: a prompt for each encoder -> (context, pooled, options)."""
        for name, text in (("clip_l", clip_l), ("clip_g", clip_g), ("t5xxl", t5xxl), ("llama", llama)):
            if not isinstance(text, str):
                raise TypeError(f"the {name} prompt must be a string, got {type(text).__name__}")
        return self.t5_states(t5xxl), self.pooled(clip_l, clip_g), {"conditioning_llama3": self.llama_states(llama)}

    def encode(self, prompt: str, clip_skip: int | None = None) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """CLIPTextEncode: one prompt for all four -> (context, pooled, {"conditioning_llama3": ...})."""
        if clip_skip is not None:
            return self.with_clip_skip(clip_skip).encode(prompt)
        return self.encode_hidream(prompt, prompt, prompt, prompt)
