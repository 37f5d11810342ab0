"""HiDream-I1: the sparse MM-DiT against diffusers' HiDreamImageTransformer2DModel on identical tiny
random weights (ComfyUI's key layout is the original repository's, which diffusers' single-file
converter takes as it is: the same tensors load into both, strictly); detection, loading, ComfyUI's
sampling settings (ModelType.FLOW, shift 1, multiplier 1000; FLUX's latent) and the conditioning
interface (T5 states as the CONDITIONING tensor, "conditioning_llama3" [B, layers, L, 4096] and
"pooled_output" [B, 2048] options).

Where ComfyUI and diffusers differ: diffusers pads a non-square latent's tokens to max_resolution
(128 x 128 patches) and only scales the padding's keys by 0 (they still take softmax weight);
ComfyUI runs the tokens as they are. graphflow follows ComfyUI, and is checked on non-square
latents against diffusers' transformer given the patches with an all-ones mask (no padding).
ComfyUI's output is diffusers' negated (its pipeline negates the transformer's prediction).
"""

from dataclasses import replace

import pytest
import torch
from diffusers import HiDreamImageTransformer2DModel
from diffusers.loaders.single_file_utils import convert_hidream_transformer_to_diffusers

from graphflow.models.configs import swiglu_hidden
from graphflow.models.hidream import HiDream, hidream_config_from_state_dict
from graphflow.testing import (HIDREAM_TINY_LLAMA_DIM, HIDREAM_TINY_POOLED_DIM, HIDREAM_TINY_T5_DIM, hidream_config,
                               hidream_state)

T5, LLAMA, POOLED = HIDREAM_TINY_T5_DIM, HIDREAM_TINY_LLAMA_DIM, HIDREAM_TINY_POOLED_DIM
LAYERS = 4  # Llama layers in the tiny conditioning (the tiny model reads 0 .. 3)


def diffusers_hidream(state, config=None):
    c = config or hidream_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()})
    theirs = HiDreamImageTransformer2DModel(
        patch_size=c.patch_size, in_channels=c.in_channels, out_channels=c.out_channels, num_layers=c.num_layers,
        num_single_layers=c.num_single_layers, attention_head_dim=c.head_dim, num_attention_heads=c.num_heads,
        caption_channels=[c.t5_dim, c.llama_dim], text_emb_dim=c.text_emb_dim,
        num_routed_experts=c.num_routed_experts, num_activated_experts=c.num_activated_experts,
        axes_dims_rope=c.axes_dims, llama_layers=list(c.llama_layers)).eval()
    theirs.load_state_dict(convert_hidream_transformer_to_diffusers(dict(state)), strict=True)
    return theirs


def diffusers_velocity(theirs, x, sigma, t5, llama, pooled):
    """ComfyUI's velocity from diffusers' transformer: timestep 1000 sigma, Llama layers first, the
    output negated; the patches given with an all-ones mask (no max_resolution padding)."""
    b, c, H, W = x.shape
    h, w = H // 2, W // 2
    tokens = x.reshape(b, c, h, 2, w, 2).permute(0, 2, 4, 3, 5, 1).reshape(b, h * w, 4 * c)
    ids = torch.zeros(h * w, 3)
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ids[:, 1], ids[:, 2] = rows.flatten(), cols.flatten()
    with torch.no_grad():
        out = theirs(tokens, sigma * 1000, t5, llama.movedim(1, 0), pooled, img_ids=ids[None].repeat(b, 1, 1),
                     img_sizes=[(h, w)] * b, hidden_states_masks=torch.ones(b, h * w), return_dict=False)[0]
    return -out


def text(seed, batch=2, t5_len=5, llama_len=7):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, t5_len, T5, generator=g), torch.randn(batch, LAYERS, llama_len, LLAMA, generator=g),
            torch.randn(batch, POOLED, generator=g))


@pytest.fixture(scope="module")
def pair():
    state = hidream_state(seed=3)
    ours = HiDream(hidream_config()).eval()
    ours.load_state_dict(state, strict=True)
    return ours, diffusers_hidream(state), state


def test_config_from_shapes():
    shapes = {k: tuple(v.shape) for k, v in hidream_state().items()}
    assert hidream_config_from_state_dict(shapes) == hidream_config()
    c = hidream_config()
    assert (c.dim, c.axes_dims, c.llama_layers, c.expert_hidden, c.shared_hidden) == (64, (16, 8, 8), (0, 1, 2, 3),
                                                                                        256, 256)


def test_full_size_defaults():
    """The defaults are HiDream-I1's (ComfyUI's model_detection): diffusers' module of that config
    has the same parameter shapes, and the config read back from them is the default, ComfyUI's
    llama_layers (0 .. 31, then 31 sixteen times) included."""
    from graphflow.models.configs import HiDreamConfig

    c = HiDreamConfig()
    assert c.llama_layers == tuple(range(32)) + (31,) * 16
    assert (c.expert_hidden, c.shared_hidden) == (swiglu_hidden(2560, 4 * 2560), swiglu_hidden(2560, 2 * 2560))
    with torch.device("meta"):
        theirs = HiDreamImageTransformer2DModel(patch_size=2, in_channels=16, out_channels=16,
                                                caption_channels=[4096, 4096], axes_dims_rope=(64, 32, 32),
                                                llama_layers=list(c.llama_layers))
        ours = HiDream(c)
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert hidream_config_from_state_dict(shapes) == c


@pytest.mark.parametrize("size", [(8, 8), (6, 10)])
def test_matches_diffusers(pair, size):
    """Batch of two with different sigmas and prompts, square and non-square latents."""
    ours, theirs, _ = pair
    g = torch.Generator().manual_seed(1)
    x, sigma = torch.randn(2, 16, *size, generator=g), torch.tensor([0.8, 0.25])
    t5, llama, pooled = text(2)
    with torch.no_grad():
        mine = ours(x, sigma, t5, pooled, llama_states=llama)
    ref = diffusers_velocity(theirs, x, sigma, t5, llama, pooled)
    assert float(ref.abs().max()) > 0.5
    assert torch.allclose(mine, ref, atol=1e-4, rtol=1e-4)
    if size[0] == size[1]:  # diffusers' own patchify (square: no padding) agrees
        with torch.no_grad():
            direct = theirs(x, sigma * 1000, t5, llama.movedim(1, 0), pooled, return_dict=False)[0]
        assert torch.allclose(mine, -direct, atol=1e-4, rtol=1e-4)


def test_repeated_llama_layers_and_routing(pair):
    """Blocks reading one Llama layer several times (as HiDream's blocks 31 .. 47 read layer 31)
    match diffusers with the same llama_layers; each of the Llama layers read matters, and the
    routing does (the gate's weights change the output)."""
    _, _, state = pair
    cfg = replace(hidream_config(), llama_layers=(0, 2, 2, 2))
    ours = HiDream(cfg).eval()
    ours.load_state_dict(state, strict=True)
    theirs = diffusers_hidream(state, cfg)
    g = torch.Generator().manual_seed(4)
    x, sigma = torch.randn(2, 16, 4, 6, generator=g), torch.tensor([0.5, 0.9])
    t5, llama, pooled = text(5)
    with torch.no_grad():
        mine = ours(x, sigma, t5, pooled, llama_states=llama)
        assert torch.equal(mine, ours(x, sigma, t5, pooled, llama_states=llama.index_fill(1, torch.tensor([1, 3]), 0.0)))
        assert not torch.allclose(mine, ours(x, sigma, t5, pooled, llama_states=llama.index_fill(1, torch.tensor([2]), 0.0)))
    assert torch.allclose(mine, diffusers_velocity(theirs, x, sigma, t5, llama, pooled), atol=1e-4, rtol=1e-4)
    gate = ours.single_stream_blocks[0].block.ff_i.gate.weight
    with torch.no_grad():
        gate.copy_(gate.flip(0))
        assert not torch.allclose(mine, ours(x, sigma, t5, pooled, llama_states=llama), atol=1e-3)
        gate.copy_(gate.flip(0))


def test_odd_latent_is_padded_and_cropped(pair):
    """An odd latent is padded circularly to whole patches (ComfyUI's pad_to_patch_size) and cropped."""
    ours, theirs, _ = pair
    g = torch.Generator().manual_seed(6)
    x, sigma = torch.randn(2, 16, 5, 7, generator=g), torch.tensor([0.6, 0.6])
    t5, llama, pooled = text(7)
    with torch.no_grad():
        mine = ours(x, sigma, t5, pooled, llama_states=llama)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 1), mode="circular")
    ref = diffusers_velocity(theirs, padded, sigma, t5, llama, pooled)[..., :5, :7]
    assert mine.shape == x.shape and torch.allclose(mine, ref, atol=1e-4, rtol=1e-4)


def test_bad_inputs_are_refused(pair):
    ours = pair[0]
    t5, llama, pooled = text(1, batch=1)
    x, s = torch.zeros(1, 16, 4, 4), torch.tensor([0.5])
    with pytest.raises(ValueError, match="QuadrupleCLIPLoader"):
        ours(x, s, t5, None, llama_states=llama)
    with pytest.raises(ValueError, match="conditioning_llama3.*QuadrupleCLIPLoader"):
        ours(x, s, t5, pooled)
    with pytest.raises(ValueError, match="Llama layers up to 3"):
        ours(x, s, t5, pooled, llama_states=llama[:, :2])
    with pytest.raises(ValueError, match="4096|T5-XXL"):
        ours(x, s, torch.zeros(1, 3, 7), pooled, llama_states=llama)
    with pytest.raises(ValueError, match="16-channel"):
        ours(torch.zeros(1, 4, 4, 4), s, t5, pooled, llama_states=llama)
