"""GLIGEN (Li et al. 2023, "GLIGEN: Open-Set Grounded Text-to-Image Generation"), the text-box
model, as ComfyUI's GLIGENLoader / GLIGENTextBoxApply run it.

A file adds to a SD1.x UNet
  position_net  boxes (x1, y1, x2, y2 as fractions of the image) -> Fourier features (8
                frequencies 100^(i/8), sin and cos of each coordinate) next to each phrase's
                pooled CLIP embedding -> MLP (Linear 512, SiLU, Linear 512, SiLU, Linear out) ->
                one grounding token per box; up to 30 boxes, the unused ones masked to the learned
                null features
  fusers        per UNet transformer block (`<block path>.fuser.*`), a gated self-attention run
                right after the block's self-attention:
                    x = x + tanh(alpha_attn) attn(norm1([x, linear(objs)]))[:, :len(x)]
                    x = x + tanh(alpha_dense) ff(norm2(x))
                heads: 8 for SD1's 768-wide text (head width dim / 8), else 64-wide heads (one
                narrow head below 64 channels, as graphflow's tiny UNets)

ComfyUI applies the fusers at every step, to the conditioning entries that carry boxes; a negative
prompt with no boxes of its own borrows the positive's (its apply_empty_x_to_equal_area;
graphflow.sampling.guidance.share_controls). Keys may carry any prefix before `input_blocks.` /
`middle_block.` / `output_blocks.` / `position_net.` (the pruned files have none).
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .lora import copied_modules
from .unet import Attention, FeedForward
from .weight_files import CheckpointError, WeightFile

MAX_OBJECTS = 30
FOURIER_FREQS = 8
BLOCK_ROOTS = ("input_blocks.", "middle_block.", "output_blocks.")


class GligenError(CheckpointError):
    """A file that is no GLIGEN model, or boxes it cannot take."""


def fourier_embedding(boxes: torch.Tensor, freqs: int = FOURIER_FREQS, temperature: float = 100.0) -> torch.Tensor:
    """[B, N, 4] -> [B, N, freqs * 2 * 4], ordered (frequency, sin / cos, coordinate)."""
    bands = temperature ** (torch.arange(freqs, device=boxes.device, dtype=boxes.dtype) / freqs)
    angles = bands[:, None] * boxes[..., None, :]  # [B, N, freqs, 4]
    return torch.stack([angles.sin(), angles.cos()], dim=-2).flatten(-3)


class PositionNet(nn.Module):
    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        position_dim = FOURIER_FREQS * 2 * 4
        self.linears = nn.Sequential(nn.Linear(in_dim + position_dim, 512), nn.SiLU(), nn.Linear(512, 512), nn.SiLU(),
                                     nn.Linear(512, out_dim))
        self.null_positive_feature = nn.Parameter(torch.zeros(in_dim))
        self.null_position_feature = nn.Parameter(torch.zeros(position_dim))

    def forward(self, boxes: torch.Tensor, masks: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """boxes [B, N, 4], masks [B, N] (1 = a box), embeddings [B, N, in_dim] -> tokens [B, N, out_dim]."""
        masks = masks[..., None]
        embeddings = embeddings * masks + (1 - masks) * self.null_positive_feature
        positions = fourier_embedding(boxes) * masks + (1 - masks) * self.null_position_feature
        return self.linears(torch.cat([embeddings, positions], dim=-1))


class GatedSelfAttention(nn.Module):
    def __init__(self, dim: int, token_dim: int, heads: int):
        super().__init__()
        self.linear = nn.Linear(token_dim, dim)
        self.attn = Attention(dim, heads, dim // heads)
        self.ff = FeedForward(dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.alpha_attn = nn.Parameter(torch.tensor(0.0))
        self.alpha_dense = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor, objs: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        joint = torch.cat([x, self.linear(objs)], dim=1)
        x = x + torch.tanh(self.alpha_attn) * self.attn(self.norm1(joint))[:, :n]
        return x + torch.tanh(self.alpha_dense) * self.ff(self.norm2(x))


def fuser_heads(dim: int, token_dim: int) -> int:
    if token_dim == 768:
        return 8
    return max(1, dim // 64)


class Gligen(nn.Module):
    """The position net and the fusers by the path of the UNet transformer block they follow."""

    def __init__(self, position_net: PositionNet, fusers: dict[str, GatedSelfAttention]):
        super().__init__()
        self.position_net = position_net
        self.fusers = nn.ModuleDict({path.replace(".", "/"): f for path, f in fusers.items()})
        self.text_dim = position_net.null_positive_feature.shape[0]

    def fuser_paths(self) -> list[str]:
        return [p.replace("/", ".") for p in self.fusers]

    def tokens(self, boxes: list, batch: int, latent_hw: tuple[int, int]) -> torch.Tensor:
        """Grounding tokens [batch, 30, dim] for boxes (pooled [1, D] or [D], height, width, y, x in
        latent units) on a latent of latent_hw, as ComfyUI's set_position."""
        if len(boxes) > MAX_OBJECTS:
            raise GligenError(f"GLIGEN takes at most {MAX_OBJECTS} boxes per conditioning, got {len(boxes)}")
        device, dtype = self.position_net.null_positive_feature.device, self.position_net.null_positive_feature.dtype
        h, w = latent_hw
        coords = torch.zeros(MAX_OBJECTS, 4)
        masks = torch.zeros(MAX_OBJECTS)
        embeddings = torch.zeros(MAX_OBJECTS, self.text_dim)
        for i, (pooled, bh, bw, y, x) in enumerate(boxes):
            pooled = pooled.reshape(-1)
            if pooled.shape[0] != self.text_dim:
                raise GligenError(f"this GLIGEN model takes {self.text_dim}-wide pooled text embeddings, got "
                                  f"{pooled.shape[0]} (GLIGEN text-box models are for SD1.x's CLIP-L)")
            coords[i] = torch.tensor([x / w, y / h, (x + bw) / w, (y + bh) / h])
            masks[i], embeddings[i] = 1.0, pooled.float()
        with torch.no_grad():
            objs = self.position_net(*(t[None].to(device, dtype) for t in (coords, masks, embeddings)))
        return objs.expand(batch, -1, -1)

    def patched_unet(self, unet: nn.Module, objs: torch.Tensor) -> nn.Module:
        """A shallow copy of `unet` whose transformer blocks with a fuser run it after their
        self-attention on these tokens; weights shared, `unet` unchanged."""
        first = next(iter(self.fusers.values())).linear.weight
        if first.device != objs.device or first.dtype != objs.dtype:
            self.to(objs.device, objs.dtype)  # run in the UNet's device and dtype, moved once
        paths = {key: key.replace("/", ".") for key in self.fusers}
        try:
            clone, blocks = copied_modules(unet, paths.values())
        except KeyError as e:
            raise GligenError(f"the GLIGEN model has a fuser for {e.args[0]}, which this UNet lacks; GLIGEN "
                              f"text-box models are for SD1.x") from None
        for key, fuser in self.fusers.items():
            blocks[paths[key]].gated_self_attention = _bound(fuser, objs)
        return clone


def _bound(fuser: GatedSelfAttention, objs: torch.Tensor):
    return lambda x: fuser(x, objs[:x.shape[0]].to(x.dtype))


def _strip(key: str, roots) -> str | None:
    for root in roots:
        at = key.find(root)
        if at == 0 or at > 0 and key[at - 1] == ".":
            return key[at:]
    return None


def load_gligen(path, device="cpu", dtype: torch.dtype | None = None) -> Gligen:
    name = Path(path).name
    with WeightFile(path) as f:
        fusers: dict[str, dict] = {}
        position: dict[str, torch.Tensor] = {}
        for key in f.shapes:
            if ".fuser." in key:
                local = _strip(key, BLOCK_ROOTS)
                if local is None:
                    continue
                block, _, part = local.partition(".fuser.")
                fusers.setdefault(block, {})[part] = f.get(key, device, dtype)
            else:
                local = _strip(key, ("position_net.",))
                if local is not None:
                    position[local[len("position_net."):]] = f.get(key, device, dtype)
    if not fusers or "null_positive_feature" not in position:
        hint = "; it has no position_net (a GLIGEN file for images, not text boxes?)" if fusers else ""
        raise GligenError(f"{name} is no GLIGEN text-box model: expected <block>.fuser.* gated self-attention "
                          f"keys and position_net.*{hint}")
    try:
        net = PositionNet(position["null_positive_feature"].shape[0], position["linears.4.weight"].shape[0])
        net.load_state_dict(position)
        modules = {}
        for block, state in fusers.items():
            dim, token_dim = state["linear.weight"].shape
            module = GatedSelfAttention(dim, token_dim, fuser_heads(dim, token_dim))
            module.load_state_dict(state)
            modules[block] = module
    except (KeyError, RuntimeError) as e:
        raise GligenError(f"{name}: the GLIGEN weights do not fit ({e})") from None
    return Gligen(net, modules).to(device, dtype).eval().requires_grad_(False)


class GligenBoxes:
    """Boxes applied to one conditioning entry: the model and (pooled, height, width, y, x) per box
    in latent units. Travels in the conditioning options under "gligen"."""

    def __init__(self, model: Gligen, boxes: list):
        self.model, self.boxes = model, list(boxes)

    def patched_unet(self, unet: nn.Module, x: torch.Tensor) -> nn.Module:
        """`unet` with the fusers bound to these boxes' tokens, for the UNet input x [B, C, h, w]
        (its device and dtype)."""
        objs = self.model.tokens(self.boxes, x.shape[0], tuple(x.shape[-2:]))
        return self.model.patched_unet(unet, objs.to(x.device, x.dtype))
