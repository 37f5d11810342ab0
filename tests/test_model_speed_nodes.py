"""ModelComputeDtype and TorchCompileModel: a MODEL computing in another dtype is the network
converted to it (weight patches still applied, the input model untouched), and a MODEL compiled
per node compiles once (with TorchDynamo's recording backend here: inductor needs minutes on this
CPU) and is reused, while its input model stays uncompiled."""

import copy

import pytest
import torch
from torch._dynamo import register_backend

from graphflow import memory
from graphflow.context import NodeInputError
from graphflow.device import default_dtype
from graphflow.memory import WeightPatch
from graphflow.models.diffusion_model import DiffusionModel
from graphflow.models.hypertile import apply_hypertile
from graphflow.models.speed import with_compile
from graphflow.models.unet import UNet, UNetConfig
from graphflow.sampling.pipeline import sample
from test_nodes_image_mask import call

PATH = "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"
compiles = []


@register_backend
def graphflow_test_counting(gm, example_inputs):
    compiles.append(len(example_inputs))
    return gm.forward


def tiny_model() -> DiffusionModel:
    torch.manual_seed(0)
    config = UNetConfig(model_channels=32, channel_mult=(1,), num_res_blocks=1, transformer_depth=(1,),
                        transformer_depth_middle=0, context_dim=32, num_heads=-1, num_head_channels=32)
    return DiffusionModel(UNet(config).eval(), "sd1")


def inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(1, 4, 8, 8, generator=g), torch.tensor([300.0]), torch.randn(1, 5, 32, generator=g)


def run(model) -> torch.Tensor:
    positive, negative = [[torch.ones(1, 5, 32), {}]], [[torch.zeros(1, 5, 32), {}]]
    return sample(model, 3, 2, 5.0, "euler", "karras", positive, negative,
                  {"samples": torch.zeros(1, 4, 8, 8)})["samples"]


def test_compute_dtype_is_the_network_converted(builtin_registry):
    model = tiny_model()
    x, t, context = inputs()
    with torch.no_grad():
        before = model(x, t, context)
        bf16 = call(builtin_registry, "ModelComputeDtype", model=model, dtype="bf16")
        assert bf16.dtype == torch.bfloat16 and model.dtype == torch.float32
        reference = copy.deepcopy(model.unet).to(torch.bfloat16)
        assert torch.equal(bf16(x, t, context), reference(x, t, context))
        assert torch.equal(model(x, t, context), before)  # the input keeps its fp32 weights
        assert call(builtin_registry, "ModelComputeDtype", model=model, dtype="fp32") is model  # nothing to do
        back = call(builtin_registry, "ModelComputeDtype", model=bf16, dtype="fp32")
        assert back.dtype == torch.float32 and back.unet is not model.unet
        default = call(builtin_registry, "ModelComputeDtype", model=bf16, dtype="default")
        assert default.dtype == default_dtype("unet", torch.device("cpu"))


def test_compute_dtype_keeps_weight_patches_and_reads_the_originals(builtin_registry):
    model = tiny_model()
    original = model.unet.get_parameter(PATH).detach().clone()
    doubled = model.with_patches((WeightPatch(PATH, lambda w: w * 2),))
    tripled = model.with_patches((WeightPatch(PATH, lambda w: w * 3),))
    x, t, context = inputs()
    with torch.no_grad():
        tripled(x, t, context)  # another MODEL's patch is in the shared weights right now
        assert torch.equal(model.unet.get_parameter(PATH), original * 3)
        converted = call(builtin_registry, "ModelComputeDtype", model=doubled, dtype="bf16")
        weights = memory.manager().weights(converted.unet, converted.patches)
        assert torch.equal(weights[PATH], original.to(torch.bfloat16) * 2)
        first = converted(x, t, context)
        memory.manager().offload_all()
        torch.testing.assert_close(converted(x, t, context), first, rtol=0, atol=0)


def test_compiled_model_compiles_once_and_its_input_stays_eager(builtin_registry, monkeypatch):
    torch._dynamo.reset()
    monkeypatch.delenv("GRAPHFLOW_COMPILE", raising=False)
    model = tiny_model()
    node_made = call(builtin_registry, "TorchCompileModel", model=model, backend="cudagraphs")
    assert node_made.options == {"compile_backend": "cudagraphs"} and model.options == {}
    compiles.clear()
    reference = run(model)
    compiled = with_compile(model, "graphflow_test_counting")
    torch.testing.assert_close(run(compiled), reference, atol=1e-5, rtol=1e-5)
    graphs = len(compiles)
    assert graphs >= 1
    assert model.unet._compiled_call_impl is None  # only during the compiled model's run
    torch.testing.assert_close(run(compiled), reference, atol=1e-5, rtol=1e-5)
    assert len(compiles) == graphs  # the same shapes: reused, not compiled again
    torch.testing.assert_close(run(model), reference, atol=1e-5, rtol=1e-5)
    assert len(compiles) == graphs  # the input model ran eager
    # a patch made from the compiled model (a shallow copy of its network) compiles its own forward
    tiled = apply_hypertile(compiled, tile_size=32)
    eager_tiled = run(apply_hypertile(model, tile_size=32))
    assert (eager_tiled - reference).abs().max() > 1e-4
    torch.testing.assert_close(run(tiled), eager_tiled, atol=1e-5, rtol=1e-5)
    assert len(compiles) > graphs
    torch._dynamo.reset()


def test_bad_model_is_named(builtin_registry):
    for node in ("ModelComputeDtype", "TorchCompileModel"):
        with pytest.raises(NodeInputError) as e:
            call(builtin_registry, node, model=object())
        assert e.value.input == "model"
