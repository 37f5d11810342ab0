"""graphflow.quantile: torch.quantile's linear interpolation by kthvalue, compared with torch.quantile
itself (to a few units in the last place: torch releases before 2.14 place the rank in float32, so
the same inputs may differ there by that much; the installed one gives equal bits) on inputs it
takes (flat and along a dim, kept dims, float32 and float64, ranks that fall on and between values),
NaN rows, and q outside [0, 1]."""

import math

import pytest
import torch

from graphflow.quantile import quantile

QS = (0.0, 0.1, 1 / 3, 0.5, 0.9, 0.95, 0.98, 0.99, 0.999, 1.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1,), (2,), (7,), (3, 101, 2), (2, 4, 1001)])
def test_quantile_is_torchs(dtype, shape):
    values = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape))).to(dtype)
    for q in QS:
        for dim in (None, *range(-1, len(shape))):
            for keepdim in (False, True):
                got = quantile(values, q, dim, keepdim)
                want = torch.quantile(values, q, dim=dim, keepdim=keepdim)
                assert got.shape == want.shape and got.dtype == want.dtype, (q, dim, keepdim)
                torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7, equal_nan=True, msg=str((q, dim, keepdim)))


def test_ties_nan_and_bad_q():
    values = torch.tensor([[3.0, 1.0, 1.0, 2.0, 1.0], [0.0, math.nan, 4.0, 5.0, 6.0]])
    got = quantile(values, 0.4, 1)
    assert got[0] == 1.0 and math.isnan(got[1])  # a NaN in the row makes it NaN, as torch's
    assert math.isnan(quantile(values, 0.0))
    assert torch.equal(quantile(values[0], 0.625), torch.quantile(values[0], 0.625))  # between 1 and 2
    for q in (-0.01, 1.01):
        with pytest.raises(ValueError, match="q must be in"):
            quantile(values, q)
