"""Token Merging for Stable Diffusion (Bolya & Hoffman 2023, "Token Merging for Fast Stable
Diffusion", arXiv:2303.17604), as ComfyUI's TomePatchModel: before the self-attention of the
UNet's transformer blocks at the latent's own size (N = H x W tokens, the paper's max_downsample
1: the level-0 blocks, unless Deep Shrink resized them), r = int(ratio * N) of the N tokens are
merged away, and after it every token gets back the output of the token it was merged into.

Merging is the paper's bipartite soft matching with a 2x2 stride and random destinations: in each
2x2 region of the h x w grid one token, chosen at random, is a destination (dst); the rest (and
rows / columns left over by odd sizes) are sources (src). Each src token is matched to its most
cosine-similar dst token; the r src tokens with the most similar matches are averaged into their
dst ("mean" merge), the rest stay. r is at most the number of src tokens (3/4 of N for even
sizes), so at most 3/4 of the tokens merge. Unmerging copies each merged src token's output from
its dst and puts every token back in place: the output has the input's shape.

The similarity is measured on the attention's input tokens, and only the queries are merged:
the merged queries attend to all N tokens as keys and values, as ComfyUI's patch does (the paper
merges those too), so the attention's cost falls with (N - r) N. The random destinations are
drawn once per block and grid size from a seeded generator: a run is reproducible and nothing
syncs with the device (ComfyUI draws them from torch's global random state at every call, so its
pictures can't be reproduced exactly).

The patches go on shallow copies of the transformer blocks (`self_attention_patches`), so the
input MODEL and its weights are shared and unchanged.
"""

import torch
import torch.nn.functional as F

from .diffusion_model import DiffusionModel
from .lora import copied_modules
from .unet import latent_size, transformer_block_levels

STRIDE = 2  # the paper's 2x2 regions, one destination each


def partition(h: int, w: int, generator: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(src indices, dst indices) into the row-major h x w grid: one random dst per full 2x2 region."""
    hs, ws = h // STRIDE, w // STRIDE
    choice = torch.randint(STRIDE * STRIDE, (hs, ws), generator=generator)
    is_dst = F.one_hot(choice, STRIDE * STRIDE).reshape(hs, ws, STRIDE, STRIDE).permute(0, 2, 1, 3)
    grid = torch.zeros(h, w, dtype=torch.long)
    grid[:hs * STRIDE, :ws * STRIDE] = is_dst.reshape(hs * STRIDE, ws * STRIDE)
    order = torch.argsort(1 - grid.flatten(), stable=True)  # dst first, then src
    return order[hs * ws:].to(device), order[:hs * ws].to(device)


def bipartite_soft_matching(metric: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, r: int):
    """merge, unmerge for tokens shaped like metric [B, N, C] (src / dst from `partition`):
    merge -> [B, N - r, C] (kept src tokens, then the dst tokens), unmerge -> [B, N, C]."""
    b, n, _ = metric.shape
    r = min(r, src.numel())
    if r <= 0 or dst.numel() == 0:
        return _same, _same
    with torch.no_grad():
        unit = metric / metric.norm(dim=-1, keepdim=True)
        scores = unit[:, src] @ unit[:, dst].transpose(-1, -2)  # [B, src, dst] cosine similarity
        best, best_dst = scores.max(dim=-1)
        ranked = best.argsort(dim=-1, descending=True)
        kept, merged = ranked[:, r:], ranked[:, :r]  # positions within src
        into = best_dst.gather(1, merged)  # the dst (position within dst) each merged src goes to

    def pick(x, index):
        return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))

    def merge(x: torch.Tensor) -> torch.Tensor:
        x_src, x_dst = x[:, src], x[:, dst]
        x_dst = x_dst.scatter_reduce(1, into[..., None].expand(-1, -1, x.shape[-1]), pick(x_src, merged),
                                     reduce="mean")
        return torch.cat([pick(x_src, kept), x_dst], dim=1)

    def unmerge(y: torch.Tensor) -> torch.Tensor:
        c = y.shape[-1]
        y_kept, y_dst = y[:, :src.numel() - r], y[:, src.numel() - r:]
        out = y.new_empty(b, n, c)
        out[:, dst] = y_dst
        src_positions = src.expand(b, -1)
        out.scatter_(1, src_positions.gather(1, kept)[..., None].expand(-1, -1, c), y_kept)
        out.scatter_(1, src_positions.gather(1, merged)[..., None].expand(-1, -1, c), pick(y_dst, into))
        return out

    return merge, unmerge


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


def tome_patch(ratio: float, salt: int):
    """A BasicTransformerBlock.self_attention_patches entry: it merges the queries of a block whose
    token count is the latent's H x W (ComfyUI's rule, HW // N <= 1, where ComfyUI works), on the
    latent's grid; other blocks pass."""
    partitions = {}  # (device, h, w) -> (src, dst), drawn once

    def patch(queries: torch.Tensor, keys: torch.Tensor, size: tuple[int, int] | None):
        latent_hw = latent_size.get()
        if latent_hw is None or queries.shape[1] != latent_hw[0] * latent_hw[1] or min(latent_hw) < STRIDE:
            return queries, keys, size, _same
        h, w = latent_hw
        key = (queries.device, h, w)
        if key not in partitions:
            generator = torch.Generator().manual_seed(hash((salt, h, w)) % 2 ** 63)
            partitions[key] = partition(h, w, generator, queries.device)
        merge, unmerge = bipartite_soft_matching(queries, *partitions[key], int(queries.shape[1] * ratio))
        return merge(queries), keys, None, unmerge  # the merged queries form no grid; the keys stay whole

    return patch


def apply_tome(model: DiffusionModel, ratio: float) -> DiffusionModel:
    # every block: the token count picks the merged ones (the latent's own size; Deep Shrink can
    # take a level-0 block off it or put a deeper one on it)
    unet, copies = copied_modules(model.unet, list(transformer_block_levels(model.unet)))
    for salt, block in enumerate(copies.values()):
        block.self_attention_patches = (*block.self_attention_patches, tome_patch(ratio, salt))
    return model.with_unet(unet)
