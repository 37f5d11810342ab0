"""torch.quantile without its size limit: older torch releases (the project allows torch >= 2.4)
refuse to reduce over more than 2**24 values ("quantile() input tensor is too large"), which a LoRA
factor pair at high rank or a batch of video latents (Wan, HunyuanVideo) exceeds."""

import math

import torch


def quantile(values: torch.Tensor, q: float, dim: int | None = None, keepdim: bool = False) -> torch.Tensor:
    """torch.quantile(values, q, dim, keepdim) for one q in [0, 1] with its linear interpolation,
    by two kthvalue selections instead of a sort, as torch computes it: q rounded to the values'
    dtype (float32 unless float64), the rank q x (n - 1) in float64, the values at its floor and
    ceiling mixed by torch.lerp with the rank's fraction as the weight; NaN where the reduced values
    hold one. That is the installed torch's result bit for bit (older releases took the rank in
    float32, which for large n cannot place it to the value, one reason they refused them). No
    host sync. Not lighter than torch's sort: each kthvalue copies the values and makes int64
    indices (some 3x the input at its peak, against torch's 2x), the price of having no size limit.
    Unlike torch.quantile it takes half precision too, and an empty or 0-d input is an IndexError
    (its callers give float32 of at least one value)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile q must be in [0, 1], got {q}")
    if dim is None:
        flat = quantile(values.reshape(-1), q, 0)
        return flat.reshape([1] * values.dim()) if keepdim else flat
    n = values.shape[dim]
    q_rounded = q if values.dtype == torch.float64 else float(torch.tensor(q, dtype=torch.float32))
    rank = q_rounded * (n - 1)
    below, above = int(rank), math.ceil(rank)
    low = values.kthvalue(below + 1, dim, keepdim).values
    high = values.kthvalue(above + 1, dim, keepdim).values if above != below else low
    result = torch.lerp(low, high, rank - below)
    return result.masked_fill(values.isnan().any(dim, keepdim), math.nan)
