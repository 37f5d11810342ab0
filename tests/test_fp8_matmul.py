"""--fp8-matmul: refused without fp8 tensor cores; the per-tensor scaling math checked on the CPU
with torch._scaled_mm emulated (fp8 operands upcast, fp32 product, times both scales)."""

import pytest
import torch
import torch.nn.functional as F

from graphflow.models import fp8_matmul
from graphflow.models.diffusion_model import DiffusionModel
from graphflow.models.unet import UNet, UNetConfig
from graphflow.sampling.pipeline import sample


def emulated_scaled_mm(calls):
    def scaled_mm(a, b, scale_a, scale_b, out_dtype):
        assert a.dtype == b.dtype == torch.float8_e4m3fn and scale_a.dtype == scale_b.dtype == torch.float32
        assert a.is_contiguous() and b.t().is_contiguous()  # row-major times column-major, as cuBLASLt wants
        calls.append(a.shape)
        return ((a.float() @ b.float()) * scale_a * scale_b).to(out_dtype)
    return scaled_mm


def test_refused_without_fp8_tensor_cores(monkeypatch):
    with pytest.raises(ValueError, match=r"--fp8-matmul .*compute capability 8\.9 or newer.*compute device is cpu"):
        fp8_matmul.check_supported(torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX 3090")
    for capability, ok in (((8, 6), False), ((8, 9), True), ((9, 0), True)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        reason = fp8_matmul.unsupported_reason(torch.device("cuda"))
        assert (reason is None) == ok
        if not ok:
            assert "RTX 3090 has compute capability 8.6, below 8.9" in reason


def test_sampling_with_the_option_is_refused_on_cpu(monkeypatch):
    monkeypatch.setenv("GRAPHFLOW_FP8_MATMUL", "1")
    with pytest.raises(ValueError, match="--fp8-matmul"):
        sample(tiny_model(), 0, 1, 1.0, "euler", "normal", [[torch.zeros(1, 5, 32), {}]], [],
               {"samples": torch.zeros(1, 4, 8, 8)})


def test_quantize_uses_the_full_e4m3_range_within_its_precision():
    t = torch.randn(64, 48) * 3
    q, scale = fp8_matmul.quantize(t)
    assert q.dtype == torch.float8_e4m3fn
    assert q.float().abs().max() == 448.0  # amax lands on e4m3's largest value
    torch.testing.assert_close(scale, t.abs().max() / 448.0)
    # 3 mantissa bits: relative error <= 2^-4 for normal values (|t / s| >= 2^-6)
    normal = (t / scale).abs() >= 2 ** -6
    assert ((q.float() * scale - t).abs() <= t.abs() * 2 ** -4 + 1e-12)[normal].all()


def test_layer_equals_the_dequantized_matmul(monkeypatch):
    calls = []
    monkeypatch.setattr(fp8_matmul, "scaled_mm", emulated_scaled_mm(calls))
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 32)
    x = torch.randn(2, 7, 64)
    exact = layer(x)
    with torch.no_grad(), fp8_matmul.fp8_matmuls(layer) as layers:
        assert layers == [layer]
        out = layer(x)
    assert calls == [(14, 64)]
    # reference: dequantize each operand by its own amax scale, multiply in float64
    sx, sw = x.abs().max() / 448, layer.weight.abs().max() / 448
    x_deq = (x / sx).to(torch.float8_e4m3fn).double() * sx
    w_deq = (layer.weight / sw).to(torch.float8_e4m3fn).double() * sw
    reference = F.linear(x_deq, w_deq, layer.bias.double()).float()
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)
    assert 0 < (out - exact).norm() / exact.norm() < 0.05  # fp8: close to, not equal to, the exact product
    assert "forward" not in vars(layer) and not hasattr(layer, "_fp8_weight")  # the layer is as it was
    torch.testing.assert_close(layer(x), exact)


def tiny_model() -> DiffusionModel:
    torch.manual_seed(0)
    config = UNetConfig(model_channels=32, channel_mult=(1,), num_res_blocks=1, transformer_depth=(1,),
                        transformer_depth_middle=0, context_dim=32, num_heads=-1, num_head_channels=32)
    return DiffusionModel(UNet(config), "sd1")


def test_sampling_runs_the_linear_layers_in_fp8(monkeypatch):
    calls = []
    monkeypatch.setattr(fp8_matmul, "scaled_mm", emulated_scaled_mm(calls))
    monkeypatch.setattr(fp8_matmul, "unsupported_reason", lambda device: None)  # as on an H100
    model = tiny_model()
    state = {k: v.clone() for k, v in model.unet.state_dict().items()}
    args = (model, 0, 2, 1.0, "euler", "normal", [[torch.randn(1, 5, 32), {}]], [],
            {"samples": torch.zeros(1, 4, 8, 8)})
    reference = sample(*args)["samples"]
    monkeypatch.setenv("GRAPHFLOW_FP8_MATMUL", "1")
    out = sample(*args)["samples"]
    eligible = [m for m in model.unet.modules() if fp8_matmul.eligible(m)]
    assert eligible and len(calls) == 2 * len(eligible)  # every eligible layer, both steps
    assert 0 < (out - reference).norm() / reference.norm() < 0.05
    for k, v in model.unet.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_scaled_fp8_layer_multiplies_with_the_files_weight_and_scales(monkeypatch):
    """A layer of a ComfyUI scaled-fp8 file (cast_layers.Linear with scale_weight / scale_input):
    its e4m3fn weight and scale go to _scaled_mm as they are (no second quantization), and the
    file's scale_input is the input's scale."""
    from graphflow.models.cast_layers import Linear

    calls = []
    monkeypatch.setattr(fp8_matmul, "scaled_mm", emulated_scaled_mm(calls))
    torch.manual_seed(1)
    layer = Linear(64, 32)
    w = torch.randn(32, 64)
    s_w, s_x = w.abs().max() / 448, torch.tensor(0.01)
    stored = (w / s_w).to(torch.float8_e4m3fn)
    layer.weight.data, layer.scale_weight, layer.scale_input = stored, s_w, s_x
    x = torch.randn(3, 64)
    with torch.no_grad(), fp8_matmul.fp8_matmuls(layer):
        assert layer._fp8_weight[0] is layer.weight  # the stored fp8 weight itself
        out = layer(x)
    assert calls == [(3, 64)]
    x_deq = (x / s_x).clamp(-448, 448).to(torch.float8_e4m3fn).double() * s_x
    reference = F.linear(x_deq, stored.double() * s_w, layer.bias.double()).float()
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)
    # without the option the layer computes with the dequantised weight
    torch.testing.assert_close(layer(x), F.linear(x, stored.float() * s_w, layer.bias))


def test_gguf_quantized_layers_keep_their_own_matmul(monkeypatch):
    """A GGUF model's QuantizedLinear (an nn.Linear whose weight is the file's uint8 blocks) is not
    multiplied in fp8: quantizing its bytes would give nonsense. It runs on its dequantized values."""
    from graphflow.models.gguf_layers import QuantizedLinear, dequantize

    calls = []
    monkeypatch.setattr(fp8_matmul, "scaled_mm", emulated_scaled_mm(calls))
    torch.manual_seed(2)
    quantized = QuantizedLinear(64, 32, True, "Q8_0", torch.float32)
    blocks = torch.randint(0, 256, (32, 68), dtype=torch.uint8)
    blocks.view(32, 2, 34)[:, :, :2] = torch.full((32, 2, 1), 0.01).half().view(torch.uint8)  # finite scales
    quantized.weight = torch.nn.Parameter(blocks, requires_grad=False)
    quantized.bias = torch.nn.Parameter(torch.randn(32), requires_grad=False)
    plain = torch.nn.Linear(64, 32)
    model = torch.nn.Sequential(quantized, torch.nn.ReLU(), torch.nn.Linear(32, 64), plain)
    assert not fp8_matmul.eligible(quantized) and fp8_matmul.eligible(plain)
    x = torch.randn(3, 64)
    with torch.no_grad(), fp8_matmul.fp8_matmuls(model) as layers:
        assert quantized not in layers and plain in layers
        out = quantized(x)
    assert calls == []
    torch.testing.assert_close(out, F.linear(x, dequantize(blocks, "Q8_0", (32, 64)), quantized.bias))
