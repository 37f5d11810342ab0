"""The CLIP socket of SD3 / SD3.5 and FLUX.1: CLIP-L, CLIP-G and T5-XXL, each optional, and
how their outputs make one conditioning (ComfyUI's assembly, so imported graphs encode alike).

SD3: context = [CLIP-L penultimate (768) | CLIP-G penultimate (1280)] concatenated on channels
     (2048), zero-padded to 4096, then T5's tokens appended on the token axis (77k + T5 tokens);
     pooled = CLIP-L pooled (not projected) | CLIP-G pooled (projected) (768 + 1280 = 2048), as
     ComfyUI and Stability's SD3 reference code do; SD3's own CLIP-L has no (an identity)
     projection, so diffusers' projected CLIP-L equals it, but the CLIP-L files shared with
     FLUX carry OpenAI's real projection, which ComfyUI ignores here and so do we.
     A missing CLIP-L gives zeros in its 768 channels and pooled part, a missing CLIP-G its
     1280; without T5 the context is the CLIP part alone; with nothing at all zeros [1, 77, 4096].
     T5 is padded to 77 tokens.
FLUX: context = T5 tokens (padded to 256, dev and schnell alike, as ComfyUI pads), pooled =
     CLIP-L's pooled output without projection (768; diffusers' FluxPipeline uses CLIPTextModel's
     pooler_output too). A missing T5 gives zeros [1, 256, 4096], a missing CLIP-L zero pooled.
Chroma: context = T5 tokens alone, not padded (ComfyUI's CLIPLoader type "chroma": its T5
     tokenizer's min_length is 1 and it pads nothing, so the prompt's pieces and </s> are all the
     model sees, with no attention mask; T5TokenizerOptions' min_padding 1 adds Chroma's one
     kept pad token); no pooled vector (None). Chroma's own trainer and diffusers' ChromaPipeline
     pad to 512 and mask all pads but the first instead (graphflow.models.chroma's text_mask).
     Prompt weights pull towards the encoding of <pad>s alone (no </s>), as ComfyUI's.
PixArt-α / Σ ("pixart", CLIPLoader's type): as Chroma (ComfyUI's PixArtT5XXL tokenizes and
     encodes alike: unpadded, no mask, <pad>-only empty tokens); diffusers' PixArt pipelines pad
     to 120 / 300 tokens and mask the padding instead (graphflow.models.pixart's attention_mask).
Stable Cascade ("stable_cascade", CLIPLoader's type): CLIP-G alone; context = its last layer's
     hidden states (1280), pooled = its projected pooled output (1280), as ComfyUI's
     StableCascadeClipG (layer "hidden", index -1, return_projected_pooled) and diffusers'
     StableCascadePriorPipeline (hidden_states[-1], text_embeds) take them; prompts padded with
     the end token and attention masked past the first one (ComfyUI's pad_with_end,
     enable_attention_masks).
LTX-Video ("ltxv", CLIPLoader's type): context = T5 tokens alone, the prompt's pieces and </s>.
     ComfyUI pads to 128 with <pad>, runs T5 with the padding masked, zeroes the padded outputs
     and masks them out of the model's cross-attention: the same numbers as the unpadded tokens
     without a mask (masked keys weigh exactly 0 in attention), which is what is given here; no
     pooled vector (None).
Mochi ("mochi", CLIPLoader's type): as LTX-Video. ComfyUI pads to 256 with <pad>, runs T5 with
     the padding masked, zeroes the padded outputs and gives the model the mask, which leaves the
     padding out of its prompt pool and crops it from its joint attention (diffusers' MochiPipeline
     and transformer do the same with their mask): the numbers of the unpadded tokens without a
     mask, which is what is given here; no pooled vector (None).
Wan 2.1 ("wan", CLIPLoader's type): UMT5-XXL alone (its tokenizer read from the file's
     spiece_model). ComfyUI pads to 512 tokens with <pad>, runs UMT5 with everything after </s>
     masked and zeroes those outputs; the model gets all 512 tokens and no mask (Wan's own
     pipeline and diffusers' WanPipeline zero-pad to 512 alike). Given here as the unpadded
     tokens' encoding followed by zeros up to 512; no pooled vector (None).
Cosmos 1.0 and Cosmos-Predict2 ("cosmos", CLIPLoader's type): context = "old" T5-XXL's tokens (T5
     v1.0, 1024 wide, ReLU feed-forward) padded to 512: ComfyUI's CosmosT5XXL pads with <pad>, runs T5 with
     the padding masked and zeroes its outputs, and the model attends to all 512 (zeros included,
     no mask): the unpadded encoding followed by zero tokens, which is what is given here; no
     pooled vector (None).
AuraFlow ("aura_flow"; ComfyUI's CLIPLoader has no such type, its checkpoint loader and a bare
     Pile-T5 XL file under any type give it): Pile-T5 XL alone (graphflow.models.t5), as Wan's:
     ComfyUI's PT5XlTokenizer pads to 256 tokens with <s> (1), PT5XlModel runs T5 with everything
     after </s> masked and zeroes those outputs; the model gets all 256 tokens (context
     [1, 256, 2048], more for a long prompt) and no mask. No pooled vector (None).
CLIP hidden states are not passed through the final layer norm (as SDXL's, ComfyUI's and
diffusers'); pooled always comes from the last layer, first window, unweighted.
CLIPSetLastLayer (`with_clip_skip`) sets the layer of every encoder, T5 included, as ComfyUI's
set_clip_options does: T5 then gives that block's output through its final layer norm.
"""

import copy

import torch

from .t5 import EOS as T5_EOS
from .t5 import MIN_LENGTH, T5Encoder
from .embeddings import embedding_lookup
from .text_encoders import ClipTower, check_clip_skip
from .tokenizer import EOS, TokenWindows, empty_window, tokenize_prompt

ARCHS = ("sd3", "flux", "chroma", "pixart", "stable_cascade", "ltxv", "mochi", "cosmos", "wan", "aura_flow")
T5_ALONE = ("chroma", "pixart", "ltxv", "mochi", "cosmos", "wan", "aura_flow")
T5_ALONE_NAMES = {"chroma": "Chroma", "pixart": "PixArt", "ltxv": "LTX-Video", "mochi": "Mochi",
                  "cosmos": "Cosmos-Predict2", "wan": "Wan", "aura_flow": "AuraFlow"}
CONTEXT_DIM = 4096
POOLED = {"clip_l": 768, "clip_g": 1280}


@torch.no_grad()
def clip_encode(tower: ClipTower, windows: TokenWindows, clip_skip: int = -2,
                projected: bool = True, mask_after_end: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Token windows -> (hidden states [1, 77k, D] at clip_skip with ComfyUI's weighting,
    pooled [1, P] of the first window; projected if asked and the tower has a projection).
    mask_after_end: no token attends to those after the first end token (ComfyUI's
    enable_attention_masks, Stable Cascade's CLIP-G)."""
    weighted = windows.has_weights
    ids = windows.ids + ([empty_window(tower.spec.pad_token)] if weighted else [])
    hidden, pooled = tower.run(ids, clip_skip, False, windows.vectors, projected, mask_after_end)
    pooled = pooled[:1]
    k = len(windows.ids)
    z = hidden[:k]
    if weighted:
        w = torch.tensor(windows.weights, dtype=torch.float32)[..., None]
        z = torch.where(w != 1.0, (z - hidden[k:]) * w + hidden[k:], z)
    return z.reshape(1, -1, z.shape[-1]), pooled.float().cpu()


def _windows(tower: ClipTower | None, text: str, pad: int | None = None) -> TokenWindows:
    """A CLIP prompt's windows with `embedding:name` read for the tower (as ComfyUI's SD3 / FLUX
    tokenizers do); a missing tower's (its zeros stand in) with the text alone."""
    if tower is None:
        return tokenize_prompt(text, 0 if pad is None else pad)
    return tokenize_prompt(text, tower.spec.pad_token if pad is None else pad,
                           embedding_lookup(tower.name, tower.hidden_size))


class FlowTextEncoder:
    """prompt -> (context [1, T, 4096], pooled [1, 2048 | 768]) for SD3 ("sd3") or FLUX ("flux");
    Chroma ("chroma"), PixArt ("pixart"), LTX-Video ("ltxv"), Mochi ("mochi"), Wan ("wan",
    UMT5-XXL) and AuraFlow ("aura_flow", Pile-T5 XL), T5 alone: (context, None)."""

    def __init__(self, arch: str, clip_l: ClipTower | None = None, clip_g: ClipTower | None = None,
                 t5: T5Encoder | None = None, clip_skip: int = -2, context_dim: int | None = None):
        if arch not in ARCHS:
            raise ValueError(f"unknown architecture {arch!r}; expected one of {ARCHS}")
        if arch == "flux" and clip_g is not None:
            raise ValueError("FLUX uses CLIP-L and T5-XXL, not CLIP-G")
        if arch in T5_ALONE and (t5 is None or clip_l is not None or clip_g is not None):
            raise ValueError(f"{T5_ALONE_NAMES[arch]} uses {'Pile-T5 XL' if arch == 'aura_flow' else 'T5-XXL'} alone")
        if arch == "stable_cascade" and (clip_g is None or clip_l is not None or t5 is not None):
            raise ValueError("Stable Cascade uses CLIP-G alone")
        if arch == "stable_cascade":
            clip_skip, context_dim = -1, clip_g.hidden_size
        if clip_l is None and clip_g is None and t5 is None:
            raise ValueError("a text encoder needs at least one of CLIP-L, CLIP-G, T5-XXL")
        self.arch = arch
        self.clip_l, self.clip_g, self.t5 = clip_l, clip_g, t5
        self.clip_skip = clip_skip
        # the token width: T5's (4096 for T5-XXL; diffusers pads CLIP to T5's width), else SD3's 4096
        self.context_dim = context_dim or (t5.hidden_size if t5 is not None else CONTEXT_DIM)
        self.t5_padding = None  # (min_padding, min_length) set by T5TokenizerOptions; None: 0 and 77 / 256

    def _width(self, name: str) -> int:
        """A CLIP tower's width, or the real model's when it is missing (its zeros stand in)."""
        tower = getattr(self, name)
        return tower.hidden_size if tower is not None else POOLED[name]

    def _pooled_width(self, name: str) -> int:
        tower = getattr(self, name)
        if tower is None:
            return POOLED[name]
        projected = name == "clip_g" and tower.projection is not None
        return tower.model.config.projection_dim if projected else tower.hidden_size

    @property
    def t5_name(self) -> str:
        """The T5's name in ComfyUI's file prefixes (text_encoders.<name>.transformer.)."""
        return "pile_t5xl" if self.t5 is not None and self.t5.pile_t5 else "t5xxl"

    @property
    def towers(self) -> list[ClipTower]:
        return [t for t in (self.clip_l, self.clip_g) if t is not None]

    def with_towers(self, towers: list[ClipTower]) -> "FlowTextEncoder":
        # by slot, as `towers` lists them: a tower's own name is guessed from its width when it
        # was read from a bare file, which scaled-down test towers can fool
        named = dict(zip([n for n in ("clip_l", "clip_g") if getattr(self, n) is not None], towers))
        clone = copy.copy(self)
        clone.clip_l, clone.clip_g = named.get("clip_l"), named.get("clip_g")
        return clone

    def with_t5(self, t5: T5Encoder) -> "FlowTextEncoder":
        """The same encoder with another T5 (the same network with LoRA patches)."""
        clone = copy.copy(self)
        clone.t5 = t5
        return clone

    def _check_clip_skip(self, clip_skip: int) -> None:
        check_clip_skip(clip_skip)

    def with_clip_skip(self, clip_skip: int) -> "FlowTextEncoder":
        """CLIPSetLastLayer: the CLIP towers' layer, and T5's too (ComfyUI passes the layer to every
        encoder of SD3 / FLUX / the T5-alone models; T5 then gives that block's output through
        its final layer norm)."""
        self._check_clip_skip(clip_skip)
        clone = copy.copy(self)
        clone.clip_skip = clip_skip
        if self.t5 is not None:
            clone.t5 = self.t5.with_layer(clip_skip)
        return clone

    def with_t5_padding(self, min_padding: int, min_length: int) -> "FlowTextEncoder":
        """The same encoder padding T5 prompts as ComfyUI's T5TokenizerOptions: min_padding <pad>
        after </s>, then <pad> up to min_length, in place of SD3's 77 / FLUX's 256."""
        if min_padding < 0 or min_length < 0:
            raise ValueError(f"min_padding and min_length must be 0 or more, got {min_padding} and {min_length}")
        clone = copy.copy(self)
        clone.t5_padding = (int(min_padding), int(min_length))
        return clone

    def _t5(self, prompt: str) -> torch.Tensor:
        min_padding, min_length = self.t5_padding or (0, MIN_LENGTH[self.arch])
        # Wan, Cosmos, AuraFlow (Pile-T5): the padding masked and zeroed: the unpadded encoding, then zeros
        if self.arch in ("wan", "cosmos") or self.t5.pile_t5:
            return self.t5.encode_masked(prompt, min_length, min_padding)
        return self.t5.encode(prompt, min_length, min_padding, empty_end=self.arch not in ("chroma", "pixart"))

    @property
    def output_dim(self) -> int:
        return self.context_dim

    @property
    def device(self) -> torch.device:
        return self.t5.device if self.t5 is not None else self.towers[0].transformer.embeddings.token_embedding.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.t5.dtype if self.t5 is not None else self.towers[0].transformer.embeddings.token_embedding.weight.dtype

    def to(self, device=None, dtype=None) -> "FlowTextEncoder":
        for t in self.towers:
            t.model.to(device=device, dtype=dtype)
        if self.t5 is not None:
            self.t5.to(device, dtype)
        return self

    # -- encoding ------------------------------------------------------------------------------

    def encode(self, prompt: str, clip_skip: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One prompt for every encoder (CLIPTextEncode)."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
        if self.arch == "flux":
            return self.encode_flux(prompt, prompt)
        if self.arch in T5_ALONE:
            return self._t5(prompt), None
        if self.arch == "stable_cascade":
            clip_skip = self.clip_skip if clip_skip is None else clip_skip
            self._check_clip_skip(clip_skip)
            # padded with the end token, and masked after the first one, as ComfyUI's StableCascadeClipG
            return clip_encode(self.clip_g, _windows(self.clip_g, prompt, EOS), clip_skip, mask_after_end=True)
        return self.encode_sd3(prompt, prompt, prompt, empty_padding=True, clip_skip=clip_skip)

    def encode_flux(self, clip_l: str, t5xxl: str) -> tuple[torch.Tensor, torch.Tensor]:
        """CLIPTextEncodeFlux: T5 tokens as context, CLIP-L's unprojected pooled output."""
        length = MIN_LENGTH["flux"]
        if self.t5 is not None:
            context = self._t5(t5xxl)
        else:
            context = torch.zeros(1, length, self.context_dim)
        if self.clip_l is not None:
            _, pooled = clip_encode(self.clip_l, _windows(self.clip_l, clip_l),
                                    self.clip_skip, projected=False)
        else:
            pooled = torch.zeros(1, POOLED["clip_l"])
        return context, pooled

    def encode_sd3(self, clip_l: str, clip_g: str, t5xxl: str, empty_padding: bool = True,
                   clip_skip: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """CLIPTextEncodeSD3. empty_padding False ("none"): an empty prompt is left out instead of
        being encoded as the empty prompt (both CLIP prompts empty: no CLIP part at all; empty
        T5 prompt: T5 sees only </s>). The two CLIP prompts are evened out to the same number of
        77-token windows with empty-prompt windows, as ComfyUI does."""
        clip_skip = self.clip_skip if clip_skip is None else clip_skip
        self._check_clip_skip(clip_skip)
        windows = {}
        for name, text in (("clip_l", clip_l), ("clip_g", clip_g)):
            tower = getattr(self, name)
            pad = tower.spec.pad_token if tower is not None else 0
            windows[name] = None if (not text and not empty_padding) else _windows(tower, text, pad)
        lw, gw = windows["clip_l"], windows["clip_g"]
        if (lw is None) != (gw is None) or (lw is not None and len(lw.ids) != len(gw.ids)):
            count = max(len(w.ids) for w in (lw, gw) if w is not None)
            for name in ("clip_l", "clip_g"):
                tower, w = getattr(self, name), windows[name]
                pad = tower.spec.pad_token if tower is not None else 0
                w = w or TokenWindows([], [])
                extra = count - len(w.ids)
                windows[name] = TokenWindows(w.ids + [empty_window(pad)] * extra, w.weights + [[1.0] * 77] * extra,
                                             w.vectors)

        context = pooled = None
        if windows["clip_l"] is not None:
            parts, pools = [], []
            for name in ("clip_l", "clip_g"):
                tower = getattr(self, name)
                if tower is None:
                    parts.append(None)
                    pools.append(torch.zeros(1, self._pooled_width(name)))
                else:
                    hidden, pool = clip_encode(tower, windows[name], clip_skip, projected=name == "clip_g")
                    parts.append(hidden)
                    pools.append(pool)
            present = [p for p in parts if p is not None]
            if present:
                length = min(p.shape[1] for p in present)
                parts = [torch.zeros(1, length, self._width(n)) if p is None else p[:, :length]
                         for p, n in zip(parts, ("clip_l", "clip_g"))]
                clip = torch.cat(parts, dim=-1)
                if clip.shape[-1] > self.context_dim:
                    raise ValueError(f"CLIP-L + CLIP-G give {clip.shape[-1]} channels, wider than the "
                                     f"{self.context_dim}-channel context they are padded to")
                context = torch.nn.functional.pad(clip, (0, self.context_dim - clip.shape[-1]))
            pooled = torch.cat(pools, dim=-1)

        if self.t5 is not None:
            if t5xxl or empty_padding:
                t5 = self._t5(t5xxl)
            else:
                t5 = self.t5.encode_ids([T5_EOS])
            context = t5 if context is None else torch.cat([context, t5], dim=1)
        if context is None:
            context = torch.zeros(1, 77, self.context_dim)
        if pooled is None:
            pooled = torch.zeros(1, self._pooled_width("clip_l") + self._pooled_width("clip_g"))
        return context, pooled
