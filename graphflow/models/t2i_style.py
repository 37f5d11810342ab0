"""The T2I-Adapter style model (TencentARC's t2iadapter_style_sd14v1): a CLIP ViT-L image's tokens
turned into 8 extra SD1.x text tokens, as ComfyUI's StyleModelLoader / StyleModelApply run it.

    style_embedding     [1, 8, 1024] learned query tokens, appended to the image's 257 tokens
    ln_pre              LayerNorm(1024)
    transformer_layes   3 pre-norm CLIP blocks (OpenAI layout: attn.in_proj_*, ln_1, mlp.c_fc /
                        c_proj with quick_gelu, ln_2), 8 heads
    ln_post             LayerNorm(1024) on the last 8 tokens
    proj                [1024, 768] to the text width (x @ proj)

It reads the CLIP vision output's last_hidden_state (before the post-layernorm). The blocks are
graphflow.models.clip_vision's encoder layers; the file's fused q/k/v are split as OpenCLIP's are
(graphflow.models.text_encoders.openclip_key_map). Widths and depth come from the shapes; the head
count (8) is not in the file, as in ComfyUI, which builds the released configuration.
"""

import torch
from torch import nn

from .clip_vision import CLIPVisionConfig, EncoderLayer
from .text_encoders import _apply, openclip_key_map

MARKER = "transformer_layes.0.attn.in_proj_weight"
HEADS = 8


class StyleAdapter(nn.Module):
    def __init__(self, width: int = 1024, txt_dim: int = 768, layers: int = 3, tokens: int = 8):
        super().__init__()
        cfg = CLIPVisionConfig(hidden_size=width, num_heads=HEADS, intermediate_size=4 * width)
        self.style_embedding = nn.Parameter(torch.zeros(1, tokens, width))
        self.ln_pre, self.ln_post = nn.LayerNorm(width), nn.LayerNorm(width)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(layers))
        self.proj = nn.Parameter(torch.zeros(width, txt_dim))

    @property
    def image_width(self) -> int:
        return self.proj.shape[0]

    @property
    def txt_dim(self) -> int:
        return self.proj.shape[1]

    def forward(self, image_tokens: torch.Tensor) -> torch.Tensor:
        """[B, N, width] image tokens -> [B, tokens, txt_dim] style tokens."""
        n = self.style_embedding.shape[1]
        x = torch.cat([image_tokens, self.style_embedding.expand(image_tokens.shape[0], -1, -1)], dim=1)
        x = self.ln_pre(x)
        for layer in self.layers:
            x = layer(x)
        return self.ln_post(x[:, -n:]) @ self.proj


class _FileView:
    """The file's tensors under StyleAdapter's names (the blocks' OpenAI names mapped)."""

    def __init__(self, f):
        self.f, self.shapes, self.parts = f, {}, {}
        for key, shape in f.shapes.items():
            if key.startswith("transformer_layes."):
                mapped = [(k.removeprefix("text_model.encoder."), op) for k, op in
                          openclip_key_map("transformer.resblocks." + key.removeprefix("transformer_layes."))]
            else:
                mapped = [(key, None)]
            for name, op in mapped:
                self.shapes[name], self.parts[name] = _apply(op, tuple(shape)), (key, op)

    def get(self, key: str, device=None, dtype=None) -> torch.Tensor:
        name, op = self.parts[key]
        return _apply(op, self.f.get(name, device, dtype)).contiguous()


def build_style_adapter(f, device, dtype) -> StyleAdapter:
    """The style adapter in an open WeightFile `f` (original layout)."""
    from .checkpoint import _assign

    _, tokens, width = f.shapes["style_embedding"]
    layers = len({k.split(".")[1] for k in f.shapes if k.startswith("transformer_layes.")})
    with torch.device("meta"):
        module = StyleAdapter(width, f.shapes["proj"][1], layers, tokens)
    return _assign(module, _FileView(f), device, dtype, f.path.name)
