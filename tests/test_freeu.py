"""FreeU / FreeU_V2: the Fourier filter's closed forms, and the patch wired into the UNet's decoder
without touching the input model."""

import pytest
import torch
from test_nodes_image_mask import call

from graphflow.models.checkpoint import load_checkpoint
from graphflow.models.freeu import fourier_filter, freeu_patch
from graphflow.testing import write_checkpoint


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_checkpoint(write_checkpoint(tmp_path_factory.mktemp("freeu") / "m.safetensors", "sd1"),
                           device="cpu", dtype=torch.float32).model


def test_fourier_filter_scales_only_the_lowest_frequencies():
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(fourier_filter(x, 1, 1.0), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(fourier_filter(torch.full((1, 1, 8, 8), 3.0), 1, 0.2), torch.full((1, 1, 8, 8), 0.6))
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None]) % 2 * 2.0 - 1.0  # Nyquist: untouched
    torch.testing.assert_close(fourier_filter(checker[None, None], 1, 0.0), checker[None, None], atol=1e-5, rtol=0)


@pytest.mark.parametrize("h, w", [(5, 7), (1, 6), (3, 3)])
def test_fourier_filter_on_odd_sizes_matches_numpy(h, w):
    # ComfyUI's filter: the centred spectrum's rows h//2 - 1 .. h//2 and columns w//2 - 1 .. w//2
    # (python slices: a start of -1 on a length-1 axis is its one row) scaled, then transformed back
    import numpy as np
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(h * 10 + w))
    spectrum = np.fft.fftshift(np.fft.fft2(x.double().numpy()), axes=(-2, -1))
    mask = np.ones((h, w))
    mask[h // 2 - 1:h // 2 + 1, w // 2 - 1:w // 2 + 1] = 0.3
    expected = np.fft.ifft2(np.fft.ifftshift(spectrum * mask, axes=(-2, -1))).real
    torch.testing.assert_close(fourier_filter(x, 1, 0.3), torch.from_numpy(expected).float(), atol=1e-5, rtol=1e-5)


def test_freeu_v2_factor_runs_from_one_to_b():
    h = torch.zeros(1, 4, 2, 2)
    h[0, :, 0, 0], h[0, :, 1, 1] = -1.0, 3.0  # channel mean lowest at (0, 0), highest at (1, 1)
    patched, _ = freeu_patch(2, 1.0, 2.0, 1.0, 1.0, version=2)(h.clone(), torch.zeros(1, 4, 2, 2))
    assert patched[0, 0, 0, 0] == -1.0 and patched[0, 0, 1, 1] == 6.0  # factor 1 at the min, b at the max
    assert torch.equal(patched[0, 2:], h[0, 2:])  # second half untouched


def plain_forward_with(unet, x, t, context, edit):
    """Our UNet's forward written out, applying `edit(h, skip)` before each decoder block."""
    from graphflow.models.unet import timestep_embedding

    emb = unet.time_embed(timestep_embedding(t, unet.config.model_channels))
    h, skips = x, []
    for block in unet.input_blocks:
        h = block(h, emb, context)
        skips.append(h)
    h = unet.middle_block(h, emb, context)
    for block in unet.output_blocks:
        h, skip = edit(h, skips.pop())
        h = block(torch.cat([h, skip], dim=1), emb, context)
    return unet.out(h)


def test_freeu_node_patches_the_decoder_of_a_copy(builtin_registry, model):
    x, t = torch.randn(1, 4, 8, 8), torch.tensor([400.0])
    context = torch.randn(1, 77, model.unet.config.context_dim)
    with torch.no_grad():
        before = model.unet(x, t, context)
        identity = call(builtin_registry, "FreeU", model=model, b1=1.0, b2=1.0, s1=1.0, s2=1.0)
        torch.testing.assert_close(identity.unet(x, t, context), before, atol=1e-5, rtol=1e-5)
        patched = call(builtin_registry, "FreeU", model=model, b1=1.1, b2=2.0, s1=0.9, s2=0.5)
        out = patched.unet(x, t, context)
        assert (out - before).abs().max() > 1e-3
        mc = model.unet.config.model_channels  # the tiny UNet has channels mc and 2 mc: b2 / s2 apply

        def edit(h, skip):
            if h.shape[1] == 2 * mc:
                h = torch.cat([h[:, :mc] * 2.0, h[:, mc:]], dim=1)
                skip = fourier_filter(skip, 1, 0.5)
            return h, skip

        torch.testing.assert_close(out, plain_forward_with(model.unet, x, t, context, edit), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.unet(x, t, context), before)  # the input model is unchanged
        assert not hasattr(model.unet, "output_block_patches")
        assert all(p is q for p, q in zip(patched.unet.parameters(), model.unet.parameters()))
        v2 = call(builtin_registry, "FreeU_V2", model=model, b1=1.3, b2=1.4, s1=0.9, s2=0.2)
        assert (v2.unet(x, t, context) - out).abs().max() > 1e-3
