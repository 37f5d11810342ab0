"""USO (ByteDance's unified style/subject model for FLUX.1 dev): the style projector that turns
three of SigLIP's hidden layers into FLUX text-stream tokens, and the model patch files
ComfyUI's ModelPatchLoader reads from models/model_patches/.

    per level (low: SigLIP block output -20, mid: -11, high: -2, the penultimate one)
    {level}_embedding_linear.0   Linear over the token axis (729 SigLIP tokens -> 64), SiLU
    {level}_layer_norm           LayerNorm over the width (1152)
    {level}_projection           Linear(1152 -> FLUX's hidden size 3072)

The three levels' 64 tokens are joined high, mid, low (192 tokens). They are already in FLUX's
hidden space: USOStyleReference puts them before the text tokens after FLUX's txt_in, with
position ids 0 like the text's (ComfyUI's "post_input" patch; graphflow.models.flux). The
file's keys carry a `feature_embedder.` prefix (uso-flux1-projector-v1.safetensors).

Qwen-Image DiffSynth block-wise ControlNets load too (graphflow.models.qwen_image_diffsynth); a
model patch file of another kind (Z-Image Fun ControlNets, Wan MultiTalk) is recognised by its
keys and refused by name.
"""

from dataclasses import dataclass

import torch
from torch import nn

from .weight_files import CheckpointError, KeyView, WeightFile

PREFIX = "feature_embedder."
LEVELS = ("high", "mid", "low")  # the order of the output tokens
# SigLIP block outputs each level reads (indices into all_hidden_states' layer axis)
LAYERS = {"low": -20, "mid": -11, "high": -2}
# other patch kinds ModelPatchLoader knows, by a key only they have
OTHER_KINDS = {"control_all_x_embedder.2-1.weight": "a Z-Image Fun ControlNet (alibaba-pai)",
               "audio_proj.proj1.weight": "a Wan MultiTalk audio patch"}


@dataclass
class USOConfig:  # defaults: uso-flux1-projector-v1 (SigLIP so400m-patch14-384, FLUX.1 dev)
    siglip_tokens: int = 729
    style_tokens: int = 64
    siglip_width: int = 1152
    hidden_size: int = 3072


class SigLIPStyleProjector(nn.Module):
    def __init__(self, cfg: USOConfig):
        super().__init__()
        self.config = cfg
        for level in LEVELS:
            setattr(self, f"{level}_embedding_linear", nn.Sequential(nn.Linear(cfg.siglip_tokens, cfg.style_tokens),
                                                                     nn.SiLU()))
            setattr(self, f"{level}_layer_norm", nn.LayerNorm(cfg.siglip_width))
            setattr(self, f"{level}_projection", nn.Linear(cfg.siglip_width, cfg.hidden_size))

    def forward(self, hidden: dict[str, torch.Tensor]) -> torch.Tensor:
        """{level: SigLIP hidden states [B, siglip_tokens, siglip_width]} -> [B, 3 style_tokens, hidden_size]."""
        out = []
        for level in LEVELS:
            # mixes tokens, not channels: the linear runs along the token axis
            x = getattr(self, f"{level}_embedding_linear")(hidden[level].transpose(1, 2)).transpose(1, 2)
            out.append(getattr(self, f"{level}_projection")(getattr(self, f"{level}_layer_norm")(x)))
        return torch.cat(out, dim=1)


class ModelPatch:
    """The MODEL_PATCH socket: a USO style projector (the one kind graphflow runs)."""

    def __init__(self, module: SigLIPStyleProjector):
        self.module = module.eval()
        self.config = module.config

    def tokens(self, clip_vision_output) -> torch.Tensor:
        """The style tokens of every image of a SigLIP CLIP_VISION_OUTPUT, CPU float32
        [B, 3 style_tokens, hidden_size]."""
        from graphflow import memory

        every = getattr(clip_vision_output, "all_hidden_states", None)
        if every is None:
            raise ValueError("USO reads the hidden states of every SigLIP block; this CLIP vision output has none "
                             "(encode the image with a SigLIP model: sigclip_vision_patch14_384)")
        cfg = self.config
        if every.shape[1] < -min(LAYERS.values()) or tuple(every.shape[2:]) != (cfg.siglip_tokens, cfg.siglip_width):
            raise ValueError(f"the USO projector reads {cfg.siglip_tokens} tokens {cfg.siglip_width} wide from a "
                             f"SigLIP of at least {-min(LAYERS.values())} blocks; this CLIP vision output has "
                             f"{every.shape[1]} blocks of {every.shape[2]} tokens {every.shape[3]} wide")
        with memory.use(self.module, "model_patch", "model_patch"), torch.no_grad():
            weight = self.module.high_projection.weight
            device = memory.manager().device_for(self.module)
            out = self.module({level: every[:, layer].to(device, weight.dtype) for level, layer in LAYERS.items()})
        return out.float().cpu()


def uso_patch(tokens: torch.Tensor):
    """FLUX post-input patch: the style tokens [B_img, N, hidden] before the text tokens, with
    position ids 0. One image serves the whole batch; with several, image i goes with batch
    entry i (repeated over the batch's CFG sides, which follow one another)."""

    def patch(img, txt, img_ids, txt_ids):
        b, n = txt.shape[0], tokens.shape[0]
        if b % n:
            raise ValueError(f"USOStyleReference has {n} reference images for a batch of {b}: give one image, "
                             "or one per latent")
        style = tokens.to(txt.device, txt.dtype).repeat(b // n, 1, 1)
        ids = torch.zeros(b, style.shape[1], 3, device=txt_ids.device, dtype=txt_ids.dtype)
        return img, torch.cat([style, txt], dim=1), img_ids, torch.cat([ids, txt_ids], dim=1)

    return patch


def apply_uso(model, tokens: torch.Tensor):
    """A new FLUX MODEL whose network (a shallow copy: weights shared) prepends the style tokens."""
    from .lora import _shallow

    unet = _shallow(model.unet)
    unet.post_input_patches = (*model.unet.post_input_patches, uso_patch(tokens))
    return model.with_unet(unet)


def load_model_patch(path, device=None, dtype=None):
    """A models/model_patches/ file: USO's style projector (a ModelPatch) or a Qwen-Image DiffSynth
    ControlNet (a graphflow.models.qwen_image_diffsynth.ModelPatch)."""
    from .checkpoint import _assign, _resolve
    from .qwen_image_diffsynth import KEY, load_diffsynth_controlnet

    with WeightFile(path) as f:
        if KEY in f.shapes:
            return load_diffsynth_controlnet(f, device, dtype)
        if PREFIX + "mid_layer_norm.bias" not in f.shapes:
            for key, kind in OTHER_KINDS.items():
                if key in f.shapes:
                    raise CheckpointError(f"{f.path.name} is {kind}, a model patch graphflow does not run; "
                                          "USO's style projector (uso-flux1-projector) and Qwen-Image DiffSynth "
                                          "ControlNets are supported")
            from .architecture import format_prefixes, prefix_summary
            from .file_kind import identify

            kind = identify(f.shapes)
            raise CheckpointError(f"{f.path.name} is no model patch graphflow knows: expected USO's style projector "
                                  f"('{PREFIX}mid_layer_norm.bias'); found prefixes: "
                                  f"{format_prefixes(prefix_summary(f.shapes))}." + (f" {kind.advice()}" if kind else ""))
        tokens_out, tokens_in = f.shapes[PREFIX + "high_embedding_linear.0.weight"]
        hidden, width = f.shapes[PREFIX + "high_projection.weight"]
        cfg = USOConfig(siglip_tokens=tokens_in, style_tokens=tokens_out, siglip_width=width, hidden_size=hidden)
        with torch.device("meta"):
            module = SigLIPStyleProjector(cfg)
        # the file may hold more than the projector: ComfyUI keeps the feature_embedder.* keys only
        view = KeyView(f, PREFIX)
        return ModelPatch(_assign(module, view, *_resolve(device, dtype, "model_patch"), f.path.name,
                                  keys=list(view.shapes)))
