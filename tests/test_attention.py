"""The attention backend: one function for every model, kernels chosen per device, overridable."""

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend

from graphflow.models import attention as attn
from graphflow.testing import flow_model_config, text_config, unet_config


@pytest.fixture(autouse=True)
def default_mode():
    attn.set_attention_mode(None)
    yield
    attn.set_attention_mode(None)


def reference_attention(q, k, v, mask=None):
    scores = q.double() @ k.double().transpose(-1, -2) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.double()
    return (scores.softmax(-1) @ v.double()).float()


@pytest.mark.parametrize("mode", attn.ATTENTION_MODES)
def test_attention_matches_softmax_reference_in_every_mode(mode):
    attn.set_attention_mode(mode)
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 17, 40, generator=g) for _ in range(3))
    mask = torch.rand(2, 1, 17, 17, generator=g) > 0.3
    mask[..., 0] = True  # every query keeps a key
    torch.testing.assert_close(attn.attention(q, k, v), reference_attention(q, k, v), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn.attention(q, k, v, mask), reference_attention(q, k, v, mask), atol=1e-5, rtol=1e-5)


def test_backends_per_device(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert attn.backends(cpu, "auto") is None and attn.backends(cpu, "sdpa") is None
    assert attn.backends(cpu, "math") == (SDPBackend.MATH,)
    assert attn.backends(cuda, "sdpa") is None
    for capability, first in (((8, 6), SDPBackend.FLASH_ATTENTION), ((9, 0), SDPBackend.CUDNN_ATTENTION)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        chosen = attn.backends(cuda, "auto")
        assert chosen[0] == first and chosen[-1] == SDPBackend.MATH
        assert (SDPBackend.CUDNN_ATTENTION in chosen) == (capability >= (9, 0))


def test_kernels_without_a_priority_order_on_torch_before_2_6(monkeypatch):
    """PyTorch 2.4/2.5's sdpa_kernel takes the backends only: the chosen ones are allowed, unordered."""
    real, calls = attn.sdpa_kernel, []

    def sdpa_kernel_2_5(backends):
        calls.append(list(backends))
        return real(backends)

    monkeypatch.setattr(attn, "sdpa_kernel", sdpa_kernel_2_5)
    monkeypatch.setattr(attn, "_ORDERED", False)
    attn.set_attention_mode("math")
    q = torch.randn(1, 2, 5, 8)
    torch.testing.assert_close(attn.attention(q, q, q), reference_attention(q, q, q), atol=1e-5, rtol=1e-5)
    assert calls == [[SDPBackend.MATH]]


def test_mode_from_environment_and_bad_values(monkeypatch):
    monkeypatch.setenv("GRAPHFLOW_ATTENTION", "math")
    assert attn.attention_mode() == "math"
    attn.set_attention_mode("sdpa")
    assert attn.attention_mode() == "sdpa"
    attn.set_attention_mode(None)
    monkeypatch.setenv("GRAPHFLOW_ATTENTION", "flashy")
    with pytest.raises(ValueError, match="GRAPHFLOW_ATTENTION.*auto, sdpa, math"):
        attn.attention_mode()
    with pytest.raises(ValueError, match="unknown attention mode"):
        attn.set_attention_mode("flashy")


def _models():
    from graphflow.models.flux import Flux
    from graphflow.models.mmdit import MMDiT
    from graphflow.models.unet import UNet
    from graphflow.models.vae import AutoencoderKL
    from graphflow.testing import vae_config

    torch.manual_seed(0)
    unet = UNet(unet_config("sd1")).eval()
    mmdit = MMDiT(flow_model_config("sd3_medium")).eval()
    flux = Flux(flow_model_config("flux_dev")).eval()
    vae = AutoencoderKL(vae_config()).eval()
    x4, x16 = torch.randn(1, 4, 8, 8), torch.randn(1, 16, 8, 8)
    return {
        "unet": lambda: unet(x4, torch.tensor([500.0]), torch.randn(1, 7, unet.config.context_dim,
                                                                    generator=torch.Generator().manual_seed(1))),
        "mmdit": lambda: mmdit(x16, torch.tensor([0.5]), torch.ones(1, 5, mmdit.config.context_dim),
                               torch.ones(1, mmdit.config.adm_in_channels)),
        "flux": lambda: flux(x16, torch.tensor([0.5]), torch.ones(1, 5, flux.config.context_in_dim),
                             torch.ones(1, flux.config.vec_in_dim), guidance=torch.tensor([3.5])),
        "vae": lambda: vae.decode(x4),
    }


@torch.no_grad()
def test_models_give_the_same_output_with_every_backend_and_run_under_the_chosen_kernels(monkeypatch):
    calls = []
    original = F.scaled_dot_product_attention

    def recording(*args, **kwargs):
        calls.append(torch.backends.cuda.flash_sdp_enabled())
        return original(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    models = _models()
    outputs = {}
    for mode in attn.ATTENTION_MODES:
        attn.set_attention_mode(mode)
        calls.clear()
        outputs[mode] = {name: run() for name, run in models.items()}
        assert calls, "the models computed no attention"
        if mode == "math":  # every call ran inside the math-only context: the one function was used
            assert not any(calls)
    for name in models:
        torch.testing.assert_close(outputs["auto"][name], outputs["math"][name], atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(outputs["sdpa"][name], outputs["math"][name], atol=2e-5, rtol=1e-4)


@torch.no_grad()
def test_text_encoders_run_under_the_chosen_kernels(monkeypatch):
    from transformers import CLIPTextModel, T5Config, T5EncoderModel

    from graphflow.models.t5 import T5Encoder
    from graphflow.models.text_encoders import ARCH_TOWERS, ClipTower

    enabled = []
    original = F.scaled_dot_product_attention

    def recording(*args, **kwargs):
        enabled.append(torch.backends.cuda.flash_sdp_enabled())
        return original(*args, **kwargs)

    torch.manual_seed(0)
    clip = ClipTower(ARCH_TOWERS["sd1"][0], CLIPTextModel(text_config("clip_l")).eval())
    t5 = T5Encoder(T5EncoderModel(T5Config(vocab_size=64, d_model=32, d_kv=8, num_heads=4, d_ff=64, num_layers=1,
                                           feed_forward_proj="gated-gelu", is_encoder_decoder=False,
                                           use_cache=False)).eval())
    ids = [[49406] + [320 + i for i in range(10)] + [49407] * 66]
    outputs = {}
    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    for mode in ("sdpa", "math"):
        attn.set_attention_mode(mode)
        enabled.clear()
        outputs[mode] = (clip.run(ids, -1, False)[0], t5.run([[5, 6, 7, 1]]))
        if mode == "math":
            assert enabled and not any(enabled)
    for a, b in zip(outputs["sdpa"], outputs["math"]):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
