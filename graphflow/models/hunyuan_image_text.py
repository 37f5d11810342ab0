"""HunyuanImage 2.1's text encoders, as ComfyUI runs them (CLIPLoader type hunyuan_image: Qwen2.5-VL
7B alone; DualCLIPLoader type hunyuan_image: with byT5-small glyph): Qwen-Image's text path
(graphflow.models.qwen25vl) with HunyuanImage's template and layer, and byT5 (graphflow.models.t5,
its weights Glyph-ByT5's) for the text the prompt quotes.

Qwen2.5-VL: the prompt in TEMPLATE (Qwen-Image's system prompt; the template ends with the user's
<|im_end|>: no assistant turn), tokenized as for Qwen-Image (prompt weights not read), layer -3's
output unnormed (ComfyUI's Qwen25_7BVLIModel: layer "hidden", layer_idx -3; diffusers'
hidden_states[-3]), cut as Qwen-Image's: after the second <|im_start|> and its "user\\n" (34
tokens here: diffusers' drop_idx). The states end with the prompt's <|im_end|>. ComfyUI cuts a
sequence that starts with token 27 ("<": a prompt that is its own template, as the refiner's
"<|start_header_id|>...", not starting with <|im_start|>) and is longer than 36 tokens at 36.

byT5: the texts between double quotes "...", then between ‘...’, then between “...” (ComfyUI's
order; diffusers' extract_glyph_text also takes '...', first), each as `Text "...". `, joined;
tokenized by bytes (t5.ByteIds) with ComfyUI's prompt weights and a closing </s>, not padded
(diffusers pads to 128 tokens and truncates there); encoded up to its first </s>, the rest zeroed
(ComfyUI's attention mask and zero_out_masked): t5.T5Encoder.encode_masked. The states [1, L, 1472]
go into the conditioning's options as "conditioning_byt5small" (ComfyUI's key: model_base's
HunyuanImage21 hands them to the model's byt5_in). A prompt that quotes nothing, or a CLIP without
byT5, gives none and the model skips its byT5 branch, as ComfyUI's does (diffusers passes zeros
with an all-zero mask).

CLIPSetLastLayer n sets both, as ComfyUI's set_clip_options: Qwen's layer n unnormed, byT5's
block n through its final norm (past either's first layer: its default).
"""

import re

import torch

from .qwen25vl import PICTURE_TEMPLATE, TEMPLATE as QWEN_IMAGE_TEMPLATE, Qwen25VL, QwenTextEncoder, template_end
from .t5 import T5Encoder

# ComfyUI's HunyuanImageTokenizer.llama_template (diffusers' HunyuanImagePipeline.prompt_template_encode)
TEMPLATE = QWEN_IMAGE_TEMPLATE.removesuffix("\n<|im_start|>assistant\n")
LAYER = -3  # ComfyUI's Qwen25_7BVLIModel layer_idx for HunyuanImage (diffusers: hidden_state_skip_layer 2)
OWN_TEMPLATE_START, OWN_TEMPLATE_END = 27, 36  # "<" first and longer than 36 tokens: cut at 36 (ComfyUI)
QUOTES = (r'"(.*?)"', r"‘(.*?)’", r"“(.*?)”")  # ComfyUI's order; "." stops at a line break, as there
BYT5_KEY = "conditioning_byt5small"  # the conditioning option the model reads


def quoted_text(prompt: str) -> str | None:
    """The byT5 prompt of `prompt`: `Text "...". ` for each quoted text (None: nothing quoted)."""
    texts = [text for pattern in QUOTES for text in re.findall(pattern, prompt)]
    return "".join(f'Text "{text}". ' for text in texts) if texts else None


def template_cut(ids: list[int]) -> int:
    """Where the prompt's states start in `ids` (ComfyUI's HunyuanImageTEModel)."""
    if ids and ids[0] == OWN_TEMPLATE_START and len(ids) > OWN_TEMPLATE_END:
        return OWN_TEMPLATE_END
    return template_end(ids)


class HunyuanImageTextEncoder(QwenTextEncoder):
    """The CLIP socket of HunyuanImage 2.1: prompt -> (Qwen2.5-VL's states [1, T, hidden] from the
    prompt's first token, None: no pooled vector, {"conditioning_byt5small": byT5's states
    [1, L, d_model]} when the prompt quotes text and byT5 is loaded, else {}). `layer`: -3
    (ComfyUI's), another negative layer (CLIPSetLastLayer), None: the last through the final norm."""

    arch = "hunyuan_image"

    def __init__(self, model: Qwen25VL, byt5: T5Encoder | None = None, layer: int | None = LAYER,
                 patches: tuple = ()):
        super().__init__(model, layer, patches)
        self.byt5 = byt5

    @property
    def extra_encoders(self) -> list[tuple[str, T5Encoder]]:
        return [] if self.byt5 is None else [("byt5_small", self.byt5)]

    def with_clip_skip(self, clip_skip: int) -> "HunyuanImageTextEncoder":
        clone = super().with_clip_skip(clip_skip)
        if self.byt5 is not None:
            clone.byt5 = self.byt5.with_layer(clip_skip)
        return clone

    def to(self, device=None, dtype=None):
        if self.byt5 is not None:
            self.byt5.to(device, dtype)
        return super().to(device, dtype)

    def tokenize(self, prompt: str, template: str | None = None, pictures: int = 0) -> list[int]:
        """template None: HunyuanImage's TEMPLATE, or with a picture Qwen-Image's PICTURE_TEMPLATE
        (ComfyUI's HunyuanImageTokenizer keeps its parent's picture template)."""
        return super().tokenize(prompt, template or (PICTURE_TEMPLATE if pictures else TEMPLATE), pictures)

    def encode_glyphs(self, prompt: str) -> dict[str, torch.Tensor]:
        """{"conditioning_byt5small": [1, L, d_model]} for the prompt's quoted text, or {}."""
        text = quoted_text(prompt)
        if self.byt5 is None or text is None:
            return {}
        return {BYT5_KEY: self.byt5.encode_masked(text, min_length=1)}

    def encode(self, prompt: str, clip_skip: int | None = None, template: str | None = None,
               pictures=()) -> tuple[torch.Tensor, None, dict]:
        """Prompt -> ([1, T, hidden], None, options). clip_skip: another layer for this prompt (both
        encoders); template, pictures: as QwenTextEncoder.encode's."""
        if clip_skip is not None:
            return self.with_clip_skip(clip_skip).encode(prompt, template=template, pictures=pictures)
        return (*super().encode(prompt, template=template, pictures=pictures), self.encode_glyphs(prompt))

    def prompt_start(self, ids: list[int]) -> int:
        return template_cut(ids)
