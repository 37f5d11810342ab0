"""ComfyUI's scaled fp8 files (fp8 Linear weights + per-layer scale_weight + a `scaled_fp8` marker)
for every family: the model read from the scaled file computes what the same model read from a
file of the dequantised weights (w_fp8.float() * s, float32) computes.

Why bit-identical in float32: the writer's reference weight is w_fp8.float() * s, one float32
multiply of exactly representable numbers; graphflow computes the same product (fp8 -> float32 is
exact, then x s in float32), either as it reads the file (UNet, text encoders) or each time a
fp8-kept layer runs (FLUX / SD3 / Chroma): the same float32 weight, the same kernels.
"""

import pytest
import torch

from graphflow.models.checkpoint import load_checkpoint, load_diffusion_model
from graphflow.models.checkpoint_report import inspect_report
from graphflow.models.file_kind import identify
from graphflow.models.weight_files import WeightFile, config_metadata
from graphflow.testing import (chroma_config, write_checkpoint, write_chroma, write_flow_checkpoint,
                               write_scaled_fp8, write_text_encoder)

E4M3 = torch.float8_e4m3fn
PREFIX = "model.diffusion_model."


def _pair(tmp_path, source, prefixes, **options):
    scaled = write_scaled_fp8(source, tmp_path / "scaled.safetensors", prefixes,
                              dequantised=tmp_path / "dequantised.safetensors", **options)
    return scaled, tmp_path / "dequantised.safetensors"


def _fp8_layers(model) -> list:
    return [m for m in model.modules() if getattr(m, "scale_weight", None) is not None]


def _flow_inputs(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    config = model.unet.config
    x = torch.randn(1, 16, 8, 8, generator=g)
    context = torch.randn(1, 5, getattr(config, "context_in_dim", None) or config.context_dim, generator=g)
    y = torch.randn(1, model.adm_channels, generator=g) if model.adm_channels else None
    return x, torch.tensor([0.6]), context, y


@torch.no_grad()
@pytest.mark.parametrize("family, per_row", [("flux_dev", False), ("flux_dev", True), ("sd3_medium", False)])
def test_flow_diffusion_model_equals_dequantised_file_and_stays_fp8(tmp_path, family, per_row):
    source = write_flow_checkpoint(tmp_path / "src.safetensors", family, components=("model",), prefixed=False,
                                   dtype=torch.float32)
    scaled_path, plain_path = _pair(tmp_path, source, ("",), per_row=per_row, scale_input=per_row)
    scaled = load_diffusion_model(scaled_path, device="cpu", dtype=torch.float32)
    plain = load_diffusion_model(plain_path, device="cpu", dtype=torch.float32)
    layers = _fp8_layers(scaled.unet)
    with WeightFile(scaled_path) as f:
        assert len(layers) == len(f.scales) > 10
    # memory: the Linear weights stay fp8 (1 byte each), only their scales are added
    assert all(m.weight.dtype == E4M3 and m.scale_weight.dtype == torch.float32 for m in layers)
    assert all((m.scale_input is not None) == per_row for m in layers)  # for fp8 matmuls, where the file has them
    assert not _fp8_layers(plain.unet) and scaled.dtype == torch.float32
    fp8_bytes = sum(m.weight.numel() for m in layers)
    size = lambda m: sum(t.numel() * t.element_size() for t in [*m.parameters(), *m.buffers()])  # noqa: E731
    scale_bytes = sum(4 * (m.scale_weight.numel() + (0 if m.scale_input is None else 1)) for m in layers)
    assert size(scaled.unet) == size(plain.unet) - 3 * fp8_bytes + scale_bytes
    x, sigma, context, y = _flow_inputs(scaled)
    guidance = torch.tensor([3.5]) if family == "flux_dev" else None
    a = scaled(x, sigma, context, y, guidance=guidance)
    b = plain(x, sigma, context, y, guidance=guidance)
    assert torch.equal(a, b)
    assert not torch.equal(a, load_diffusion_model(source, device="cpu", dtype=torch.float32)(
        x, sigma, context, y, guidance=guidance))  # quantising did change the weights


@torch.no_grad()
def test_chroma_equals_dequantised_file(tmp_path):
    source = write_chroma(tmp_path / "src.safetensors", dtype=torch.float32, prefixed=True)
    scaled_path, plain_path = _pair(tmp_path, source, (PREFIX,))
    scaled = load_diffusion_model(scaled_path, device="cpu", dtype=torch.float32)
    plain = load_diffusion_model(plain_path, device="cpu", dtype=torch.float32)
    assert scaled.arch == "chroma" and len(_fp8_layers(scaled.unet)) > 10
    g = torch.Generator().manual_seed(1)
    x, context = torch.randn(1, 16, 4, 4, generator=g), torch.randn(1, 3, chroma_config().context_in_dim, generator=g)
    assert torch.equal(scaled(x, torch.tensor([0.5]), context), plain(x, torch.tensor([0.5]), context))


@torch.no_grad()
def test_sd35_all_in_one_checkpoint_with_scaled_t5(tmp_path):
    """An SD3.5-style all-in-one file (sd3.5_large_fp8_scaled): the diffusion model and T5-XXL
    scaled, each with its own marker; CLIP-L/G and the VAE as they were."""
    source = write_flow_checkpoint(tmp_path / "src.safetensors", "sd35_large")  # fp16: half the bytes to write
    t5 = "text_encoders.t5xxl.transformer."
    scaled_path, plain_path = _pair(tmp_path, source, (PREFIX, t5))
    scaled = load_checkpoint(scaled_path, device="cpu", dtype=torch.float32)
    plain = load_checkpoint(plain_path, device="cpu", dtype=torch.float32)
    assert scaled.info.family == "sd35_large" and _fp8_layers(scaled.model.unet)
    # text encoders compute in their dtype: the scaled T5 comes dequantised, as ComfyUI's does
    assert scaled.clip.t5.dtype == torch.float32
    for a, b in ((scaled.clip.t5.model, plain.clip.t5.model), (scaled.vae.module, plain.vae.module),
                 (scaled.clip.clip_l.model, plain.clip.clip_l.model)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    x, sigma, context, y = _flow_inputs(scaled.model)
    assert torch.equal(scaled.model(x, sigma, context, y), plain.model(x, sigma, context, y))
    ids = [[5, 6, 7, 1, 0]]
    assert torch.equal(scaled.clip.t5.run(ids), plain.clip.t5.run(ids))


@torch.no_grad()
@pytest.mark.parametrize("arch", ["sdxl", "sd1"])
def test_unet_equals_dequantised_file(tmp_path, arch):
    """SD1/SDXL UNets are not kept in fp8 (as with any fp8 UNet file): the scaled weights are
    dequantised as they are read, into the compute dtype."""
    source = write_checkpoint(tmp_path / "src.safetensors", arch, components=("unet",), dtype=torch.float32,
                              metadata=config_metadata(arch=arch))
    scaled_path, plain_path = _pair(tmp_path, source, (PREFIX,))
    scaled = load_diffusion_model(scaled_path, device="cpu", dtype=torch.float32)
    plain = load_diffusion_model(plain_path, device="cpu", dtype=torch.float32)
    assert scaled.arch == arch and all(p.dtype == torch.float32 for p in scaled.unet.parameters())
    c = scaled.unet.config
    g = torch.Generator().manual_seed(2)
    x, context = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 3, c.context_dim, generator=g)
    y = torch.randn(1, c.adm_in_channels, generator=g) if c.adm_in_channels else None
    t = torch.tensor([500.0])
    assert torch.equal(scaled(x, t, context, y), plain(x, t, context, y))
    source_model = load_diffusion_model(source, device="cpu", dtype=torch.float32)
    assert not torch.equal(scaled(x, t, context, y), source_model(x, t, context, y))


def test_detection_and_inspect_name_scaled_fp8(tmp_path):
    source = write_flow_checkpoint(tmp_path / "src.safetensors", "flux_dev", components=("model",), prefixed=False)
    path = write_scaled_fp8(source, tmp_path / "flux1-dev-fp8-scaled.safetensors", ("",), full_precision_matmul=True)
    with WeightFile(path) as f:
        assert not any(k.endswith(("scale_weight", "scaled_fp8")) for k in f.shapes)  # the model's keys only
        assert identify(f.shapes).name == "FLUX.1 diffusion model"
        marker = f.scaled_fp8[""]
        assert (marker.dtype, marker.fp8_matmul) == ("float8_e4m3fn", False)
    report = inspect_report(path)
    assert "FLUX.1 dev" in report and "scaled fp8" in report, report
    assert "float8_e4m3fn" in report
    t5 = write_scaled_fp8(write_text_encoder(tmp_path / "t5.safetensors", "t5xxl", dtype=torch.float32),
                          tmp_path / "t5xxl_fp8_e4m3fn_scaled.safetensors", ("",))
    assert "scaled fp8" in inspect_report(t5)
    assert "scaled fp8" not in inspect_report(source)


@torch.no_grad()
def test_lora_on_a_scaled_layer_changes_the_true_weight(tmp_path):
    """A LoRA patch on a kept-fp8 scaled layer works on weight x scale and stores back over the
    same scale: the patched layer's weight is the dequantised one plus the LoRA (within fp8's step)."""
    from graphflow.models.lora import _change, _change_scaled
    from graphflow.models.cast_layers import Linear, scaled

    class Delta:  # a LoRA module that adds a fixed change
        def __init__(self, delta):
            self.delta = delta

        def patched(self, weight, strength):
            return weight.float() + strength * self.delta

    layer = Linear(32, 16)
    w = torch.randn(16, 32)
    s = w.abs().amax() / 448
    layer.weight.data = (w / s).to(E4M3)
    layer.scale_weight = s
    delta = torch.randn(16, 32) * 0.1
    new = _change_scaled(Delta(delta), 1.0, layer, layer.weight.data)
    assert new.dtype == E4M3
    expected = layer.weight.data.float() * s + delta
    got = scaled(new.float(), s)
    assert float((got - expected).abs().max()) <= float(expected.abs().max()) / 8  # fp8's relative step
    wrong = scaled(_change(Delta(delta), 1.0, layer.weight.data).float(), s)  # the scale ignored
    assert float((got - expected).norm()) < 0.5 * float((wrong - expected).norm())


def _flux_graph(unet: str, t5: str) -> dict:
    """ComfyUI's FLUX schnell workflow in API format (shrunk), the models in scaled fp8."""
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": unet, "weight_dtype": "default"}},
        "2": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "clip_l.safetensors", "clip_name2": t5,
                                                         "type": "flux", "device": "default"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox in the snow", "clip": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["2", 0]}},
        "5": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["3", 0], "negative": ["4", 0],
                                                   "latent_image": ["5", 0], "seed": 3, "steps": 2, "cfg": 1.0,
                                                   "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
        "7": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["7", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "flux"}},
    }


def test_comfyui_graph_with_scaled_fp8_unet_loader_runs(tmp_folders, tmp_path):
    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from graphflow.testing import write_flow_vae
    from graphflow.workflow import parse_workflow

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir()
    source = write_flow_checkpoint(tmp_path / "flux.safetensors", "flux_schnell", components=("model",),
                                   prefixed=False, dtype=torch.float32)
    write_scaled_fp8(source, m / "diffusion_models" / "flux1-schnell-fp8-scaled.safetensors", ("",),
                     dequantised=m / "diffusion_models" / "flux1-schnell-dequantised.safetensors")
    t5 = write_text_encoder(tmp_path / "t5.safetensors", "t5xxl", dtype=torch.float32)
    write_scaled_fp8(t5, m / "text_encoders" / "t5xxl_fp8_e4m3fn_scaled.safetensors", ("",),
                     dequantised=m / "text_encoders" / "t5xxl_dequantised.safetensors")
    write_text_encoder(m / "text_encoders" / "clip_l.safetensors", "clip_l", dtype=torch.float32)
    write_flow_vae(m / "vae" / "ae.safetensors", dtype=torch.float32)
    registry = Registry().load_builtin()
    images = []
    for unet, t5_name in (("flux1-schnell-fp8-scaled.safetensors", "t5xxl_fp8_e4m3fn_scaled.safetensors"),
                          ("flux1-schnell-dequantised.safetensors", "t5xxl_dequantised.safetensors")):
        result = Executor(registry).run(parse_workflow(_flux_graph(unet, t5_name), registry), outputs=["9", "1"])
        assert result.ok, str(result.error)[:3000]
        if not images:  # the scaled file's model keeps its Linear weights in fp8
            assert result.values["1"][0].unet.double_blocks[0].img_attn.qkv.weight.dtype == E4M3
        images.append(result.values["8"][0].float())
    assert len(list(tmp_folders.outputs.rglob("flux*.png"))) == 2
    assert images[0].shape == (1, 64, 64, 3) and float(images[0].std()) > 0.01
    # the same picture as from the dequantised files (equal in float32; a bf16 CPU computes the
    # scale in bf16, as ComfyUI does, hence the tolerance)
    assert float((images[0] - images[1]).abs().mean()) < 0.02


@torch.no_grad()
def test_merging_and_saving_a_scaled_model(tmp_path):
    """ModelMerge* works on weight x scale (a scaled model merged half-and-half with its own
    dequantised twin is itself again), and a saved scaled model is a scaled fp8 file again."""
    from graphflow.models.checkpoint_save import save_model
    from graphflow.models.merge import merge_models

    source = write_flow_checkpoint(tmp_path / "src.safetensors", "flux_schnell", components=("model",),
                                   prefixed=False, dtype=torch.float32)
    scaled_path, plain_path = _pair(tmp_path, source, ("",))
    scaled = load_diffusion_model(scaled_path, device="cpu", dtype=torch.float32)
    plain = load_diffusion_model(plain_path, device="cpu", dtype=torch.float32)
    x, sigma, context, y = _flow_inputs(scaled)
    expected = plain(x, sigma, context, y)
    merged = merge_models(scaled, plain, lambda name: (0.5, 0.5))
    assert merged.unet.double_blocks[0].img_attn.qkv.weight.dtype == E4M3
    assert torch.equal(merged(x, sigma, context, y), expected)
    merged = merge_models(plain, scaled, lambda name: (0.25, 0.75))  # into the unscaled one: plain floats
    torch.testing.assert_close(merged(x, sigma, context, y), expected, atol=1e-5, rtol=1e-5)
    saved = save_model(tmp_path / "saved.safetensors", scaled)
    with WeightFile(saved) as f:
        assert f.scaled_fp8[PREFIX].dtype == "float8_e4m3fn" and len(f.scales) == len(_fp8_layers(scaled.unet))
    assert torch.equal(load_diffusion_model(saved, device="cpu", dtype=torch.float32)(x, sigma, context, y), expected)


def test_a_float16_save_keeps_fp8_weights_and_their_scales(tmp_path):
    """model_state(dtype) (art-venture's float16 save): floating weights cast, fp8 weights and
    their float32 scales written as they are, with ComfyUI's scaled_fp8 marker."""
    from graphflow.models.checkpoint_save import model_state

    source = write_flow_checkpoint(tmp_path / "src.safetensors", "flux_schnell", components=("model",),
                                   prefixed=False, dtype=torch.float32)
    scaled = load_diffusion_model(_pair(tmp_path, source, ("",))[0], device="cpu", dtype=torch.float32)
    state = model_state(scaled, torch.float16)
    layers = {name: m for name, m in scaled.unet.named_modules() if getattr(m, "scale_weight", None) is not None}
    assert layers
    for name, layer in layers.items():
        assert torch.equal(state[f"{PREFIX}{name}.weight"].view(torch.uint8), layer.weight.view(torch.uint8))
        assert state[f"{PREFIX}{name}.scale_weight"].dtype == torch.float32
        assert torch.equal(state[f"{PREFIX}{name}.scale_weight"], layer.scale_weight.cpu())
    others = [k for k, v in state.items() if k.startswith(PREFIX) and not k.endswith((".scale_weight", "scaled_fp8"))
              and k[len(PREFIX):-len(".weight")] not in layers]
    assert others and all(state[k].dtype == torch.float16 for k in others)
    assert state[PREFIX + "scaled_fp8"].dtype == E4M3


@torch.no_grad()
def test_comfy_quant_layers_read_the_same_way(tmp_path):
    """ComfyUI's newer per-layer layout (`.comfy_quant` configs, `.weight_scale`): fp8 layers read
    as the scaled fp8 ones do; a format graphflow cannot compute is refused by name."""
    from graphflow.models.weight_files import CheckpointError

    source = write_flow_checkpoint(tmp_path / "src.safetensors", "flux_dev", components=("model",), prefixed=False,
                                   dtype=torch.float32)
    scaled_path, plain_path = _pair(tmp_path, source, ("",), comfy_quant="float8_e4m3fn", scale_input=True)
    scaled = load_diffusion_model(scaled_path, device="cpu", dtype=torch.float32)
    plain = load_diffusion_model(plain_path, device="cpu", dtype=torch.float32)
    layers = _fp8_layers(scaled.unet)
    assert len(layers) > 10 and all(m.weight.dtype == E4M3 and m.scale_input is not None for m in layers)
    x, sigma, context, y = _flow_inputs(scaled)
    assert torch.equal(scaled(x, sigma, context, y, guidance=torch.tensor([3.5])),
                       plain(x, sigma, context, y, guidance=torch.tensor([3.5])))
    nvfp4 = write_scaled_fp8(source, tmp_path / "nvfp4.safetensors", ("",), comfy_quant="nvfp4")
    with pytest.raises(CheckpointError, match=r"nvfp4.safetensors: layer \S+ is quantised as 'nvfp4'"):
        load_diffusion_model(nvfp4, device="cpu")


def test_stochastic_round_is_unbiased_onto_the_fp8_grid():
    """ComfyUI stores patched fp8 weights stochastically rounded: each value goes to one of its two
    fp8 neighbours, the nearer more often, so the mean is kept; values on the grid stay."""
    from graphflow.models.cast_layers import stochastic_round

    x = torch.full((100000,), 1.03)  # between 1.0 and 1.125 (e4m3fn's step there is 1/8)
    got = stochastic_round(x, E4M3, 5).float()
    assert set(got.unique().tolist()) == {1.0, 1.125}
    assert abs(float(got.mean()) - 1.03) < 2e-3 and float(x.to(E4M3).float().mean()) == 1.0
    assert torch.equal(stochastic_round(x, E4M3, 5), stochastic_round(x, E4M3, 5))
    assert not torch.equal(stochastic_round(x, E4M3, 5), stochastic_round(x, E4M3, 6))
    grid = torch.linspace(-448, 448, 4001).to(E4M3)
    assert torch.equal(stochastic_round(grid.float(), E4M3, 1), grid)
    assert torch.equal(stochastic_round(torch.tensor([1e4, -1e4]), E4M3, 0).float(), torch.tensor([448.0, -448.0]))
    small = torch.full((100000,), -3e-3)  # subnormal range: step 2^-9
    assert abs(float(stochastic_round(small, E4M3, 2).float().mean()) + 3e-3) < 5e-5
    assert torch.equal(stochastic_round(x, torch.bfloat16, 0), x.to(torch.bfloat16))


@torch.no_grad()
def test_lora_on_an_fp8_weight_keeps_a_change_below_half_a_step():
    """A LoRA change much smaller than fp8's step vanishes with rounding to nearest; ComfyUI's
    stochastic rounding (seeded by the CRC-32 of the weight's key) keeps it on average."""
    import zlib
    from graphflow import memory
    from graphflow.models.cast_layers import stochastic_round
    from graphflow.models.lora import LoraModule, _weight_patches

    net = torch.nn.Module()
    net.lin = torch.nn.Linear(256, 256)
    net.lin.weight.data = torch.ones(256, 256).to(E4M3)
    up, down = torch.full((256, 1), 0.1), torch.full((1, 256), 0.1)  # a change of 0.01; the step at 1 is 1/8
    patches = _weight_patches(net, {"lin": LoraModule({"lora_up.weight": up, "lora_down.weight": down})}, 1.0, "x")
    got = memory.manager().weights(net, patches)["lin.weight"]
    assert got.dtype == E4M3 and abs(float(got.float().mean()) - 1.01) < 3e-3
    assert float((torch.ones(256, 256) + 0.01).to(E4M3).float().mean()) == 1.0  # what rounding to nearest gives
    seed = zlib.crc32(b"diffusion_model.lin.weight")
    assert torch.equal(got, stochastic_round(torch.ones(256, 256) + up @ down, E4M3, seed))


@torch.no_grad()
def test_one_scaling_patch_on_an_fp8_weight_is_applied_in_float32():
    """An attention multiplier alone on an fp8 weight (weight * factor): torch has no fp8
    arithmetic, so the patch runs on a float32 copy, rounded back stochastically seeded as ComfyUI
    seeds it, by the CRC-32 of the weight's key (was seed 0)."""
    import zlib
    from graphflow import memory
    from graphflow.models.attention_multiply import multiplier_patches
    from graphflow.models.cast_layers import stochastic_round

    net = torch.nn.Module()
    net.block = torch.nn.Module()
    net.block.attn1 = torch.nn.Module()
    net.block.attn1.to_q = torch.nn.Linear(16, 16, bias=False)
    w = torch.randn(16, 16, generator=torch.Generator().manual_seed(4)).to(E4M3)
    net.block.attn1.to_q.weight.data = w
    patches = multiplier_patches(net, {"q": "attn1.to_q"}, {"q": 1.3}, "diffusion_model.")
    got = memory.manager().weights(net, patches)["block.attn1.to_q.weight"]
    assert got.dtype == E4M3
    want = stochastic_round(w.float() * 1.3, E4M3, zlib.crc32(b"diffusion_model.block.attn1.to_q.weight"))
    assert torch.equal(got.view(torch.uint8), want.view(torch.uint8))
    assert torch.equal(net.block.attn1.to_q.weight.data.view(torch.uint8), w.view(torch.uint8))  # unchanged


@torch.no_grad()
def test_a_model_as_lora_hook_rounds_an_fp8_weight_by_the_keys_seed():
    """A model-as-LoRA change (W + s (W2 - W)) on an fp8 weight is made in float32 and rounded
    stochastically, seeded by the CRC-32 of the weight's ComfyUI key (was seed 0)."""
    import zlib
    from graphflow import memory
    from graphflow.models.cast_layers import stochastic_round
    from graphflow.sampling.hooks import _model_as_lora_patches

    net, other = torch.nn.Module(), torch.nn.Module()
    net.lin, other.lin = torch.nn.Linear(32, 32, bias=False), torch.nn.Linear(32, 32, bias=False)
    g = torch.Generator().manual_seed(6)
    w = torch.randn(32, 32, generator=g).to(E4M3)
    net.lin.weight.data = w
    other.lin.weight.data = torch.randn(32, 32, generator=g)
    patches = _model_as_lora_patches(net, other, 0.3, "b", "diffusion_model.")
    got = memory.manager().weights(net, patches)["lin.weight"]
    want = stochastic_round(w.float() + 0.3 * (other.lin.weight - w.float()), E4M3,
                            zlib.crc32(b"diffusion_model.lin.weight"))
    assert got.dtype == E4M3 and torch.equal(got.view(torch.uint8), want.view(torch.uint8))


@torch.no_grad()
def test_a_lora_and_a_multiplier_round_an_fp8_weight_by_the_keys_seed_in_either_order():
    import zlib
    from graphflow import memory
    from graphflow.models.attention_multiply import multiplier_patches
    from graphflow.models.cast_layers import stochastic_round
    from graphflow.models.lora import LoraModule, _weight_patches

    net = torch.nn.Module()
    net.lin = torch.nn.Linear(32, 32, bias=False)
    w = torch.randn(32, 32, generator=torch.Generator().manual_seed(2)).to(E4M3)
    net.lin.weight.data = w
    up, down = torch.full((32, 1), 0.1), torch.full((1, 32), 0.1)
    lora = _weight_patches(net, {"lin": LoraModule({"lora_up.weight": up, "lora_down.weight": down})}, 1.0, "x")
    scale = multiplier_patches(net, {"q": "lin"}, {"q": 1.5}, "diffusion_model.")
    seed = zlib.crc32(b"diffusion_model.lin.weight")
    first = memory.manager().weights(net, lora + scale)["lin.weight"]
    then = memory.manager().weights(net, scale + lora)["lin.weight"]
    bits = lambda x: x.view(torch.uint8)  # noqa: E731 (fp8 tensors have no torch.equal on CPU)
    assert torch.equal(bits(first), bits(stochastic_round((w.float() + up @ down) * 1.5, E4M3, seed)))
    assert torch.equal(bits(then), bits(stochastic_round(w.float() * 1.5 + up @ down, E4M3, seed)))


@torch.no_grad()
def test_stacked_loras_on_an_fp8_weight_round_once():
    """ComfyUI patches one float32 copy with every stacked LoRA and rounds into fp8 once."""
    import zlib
    from graphflow import memory
    from graphflow.models.cast_layers import stochastic_round
    from graphflow.models.lora import LoraModule, _weight_patches

    net = torch.nn.Module()
    net.lin = torch.nn.Linear(64, 32)
    w = torch.randn(32, 64).to(E4M3)
    net.lin.weight.data = w
    gen = torch.Generator().manual_seed(3)
    mods = [LoraModule({"lora_up.weight": torch.randn(32, 2, generator=gen) * 0.05,
                        "lora_down.weight": torch.randn(2, 64, generator=gen)}) for _ in range(2)]
    patches = sum((_weight_patches(net, {"lin": m}, 0.8, "x") for m in mods), ())
    got = memory.manager().weights(net, patches)["lin.weight"]
    deltas = [0.8 * m.parts["lora_up.weight"] @ m.parts["lora_down.weight"] for m in mods]
    seed = zlib.crc32(b"diffusion_model.lin.weight")
    assert torch.equal(got, stochastic_round(w.float() + deltas[0] + deltas[1], E4M3, seed))
    each = stochastic_round(stochastic_round(w.float() + deltas[0], E4M3, seed).float() + deltas[1], E4M3, seed)
    assert not torch.equal(got, each)  # the test tells the two apart
