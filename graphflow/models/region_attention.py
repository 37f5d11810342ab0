"""Regional prompts by masked cross-attention (Acly's comfyui-tooling-nodes' ETN_AttentionMask,
after laksjdjf's attention couple): in every cross-attention of an SD1.x / SDXL UNet, each row of
the positive prompt attends to every region's text on its own, and the outputs are summed, each
weighted by its region's mask at the attention's token grid (nearest-neighbour resized). So where
a region's mask is 0 its text has no part in that attention's output. The positive prompt's own
text is not attended to (the regions' texts take its place); the negative prompt's rows attend to
their own text as before. Regions' texts of different lengths are attended to separately, which
equals the pack's repeating each to a common length (a softmax over repeated keys is unchanged).
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F

from graphflow.context import NodeInputError
from graphflow.models.attention import attention
from graphflow.models.ip_adapter import cross_attentions
from graphflow.models.lora import copied_modules
from graphflow.models.unet import latent_size


def apply_region_attention(model, masks: torch.Tensor, contexts: list[torch.Tensor]):
    """A new MODEL whose UNet cross-attentions (shallow copies) attend region by region.
    masks [R, H, W]: each region's weight (summing to 1 over the regions at every pixel), at the
    latent's size or the image's (8 x); contexts: each region's text tokens [1, T, C]. Weights are
    shared; the input model is unchanged."""
    paths = cross_attentions(model.unet)
    unet, copies = copied_modules(model.unet, paths)
    for path in paths:
        copies[path].attention_override = _regional(masks, contexts)
    return model.with_unet(unet)


def _regional(masks: torch.Tensor, contexts: list[torch.Tensor]):
    from graphflow.sampling.guidance import unet_rows  # once, not in every attention call

    # (ids of what makes the keys, device, dtype, grid, latent) -> (weak references to those things,
    # each region's keys and values, mask weights [R, L]). The override is shared by every later
    # copy of the module (a LoRA's patched_copy), so the cache tells them apart by their layers.
    cache: dict = {}

    def override(attn, q, k, v, size):
        b, heads, tokens, _ = q.shape
        rows = unet_rows.get()
        if rows is not None and len(rows.negative) != b:
            raise NodeInputError("model", f"its ETN_AttentionMask got a batch of {b} rows for the {len(rows.negative)} "
                                          "the sampler gave (a patch changed the batch): can't tell the negative rows")
        negative = torch.tensor(rows.negative if rows is not None else (False,) * b, device=q.device)
        latent = latent_size.get()
        makers = _key_makers(attn)
        key = (tuple(map(id, makers)), q.device, q.dtype, size, latent)
        held = cache.get(key)
        if held is None or any(ref() is not maker for ref, maker in zip(held[0], makers)):
            for stale in [name for name, entry in cache.items() if any(ref() is None for ref in entry[0])]:
                del cache[stale]
            held = cache[key] = ([weakref.ref(maker) for maker in makers], _keys_values(attn, contexts, q),
                                 _token_weights(masks, size, latent, tokens, q))
        _, keys_values, weights = held
        out = torch.empty_like(q)
        if negative.any():
            out[negative] = attention(q[negative], k[negative], v[negative])
        positive = ~negative
        if positive.any():
            queries = q[positive]
            n = queries.shape[0]
            total = torch.zeros_like(queries)
            for (keys, values), weight in zip(keys_values, weights):
                total += weight[:, None] * attention(queries, keys.expand(n, -1, -1, -1), values.expand(n, -1, -1, -1))
            out[positive] = total
        return out
    return override


def _key_makers(attn) -> list:
    """What the regions' keys and values come from: the key and value layers, their weights and the
    key/value patches."""
    return [attn.to_k, attn.to_v, *attn.to_k.parameters(), *attn.to_v.parameters(), *attn.kv_patches]


def _keys_values(attn, contexts: list[torch.Tensor], q: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each region's text through the attention's own key and value layers (and its key/value
    patches: a hypernetwork's), as [1, heads, T, d] in the queries' device and dtype."""
    heads = q.shape[1]
    dtype = attn.to_k.weight.dtype
    out = []
    with torch.no_grad():
        for context in contexts:
            keys = values = context.to(q.device, dtype)
            for patch in attn.kv_patches:
                keys, values = patch(keys, values)
            out.append(tuple(t.to(q.dtype).view(1, -1, heads, t.shape[-1] // heads).transpose(1, 2)
                             for t in (attn.to_k(keys), attn.to_v(values))))
    return out


def _token_weights(masks: torch.Tensor, size, latent, tokens: int, q: torch.Tensor) -> torch.Tensor:
    """The masks at the attention's token grid [R, tokens], nearest-neighbour, as the pack resizes them."""
    h, w = masks.shape[-2:]
    if latent is not None and (h, w) not in (tuple(latent), (8 * latent[0], 8 * latent[1])):
        raise NodeInputError("model", f"its ETN_AttentionMask region masks are {w}x{h}: expected the latent's size, "
                                      f"{latent[1]}x{latent[0]}, or the image's, {8 * latent[1]}x{8 * latent[0]}")
    if size is None or size[0] * size[1] != tokens:
        raise NodeInputError("model", f"its ETN_AttentionMask needs the attention's token grid; got {tokens} tokens, "
                                      f"grid {size}")
    grid = F.interpolate(masks[:, None].float(), size=tuple(size), mode="nearest")
    return grid.flatten(1).to(q.device, q.dtype)
