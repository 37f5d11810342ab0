"""--compile and channels-last: same results, the compiled forward kept on the model.

torch.compile's default backend (inductor) needs minutes for even a tiny UNet on this CPU, so
these tests compile with TorchDynamo's "eager" backend (GRAPHFLOW_COMPILE_BACKEND): the model is
captured as a graph exactly as for inductor, then run by PyTorch's kernels."""

import os
import warnings

import pytest
import torch
from torch._dynamo import register_backend
from torch._dynamo.utils import counters

from graphflow.models.diffusion_model import DiffusionModel
from graphflow.models.speed import channels_last, compile_requested
from graphflow.models.unet import UNet, UNetConfig
from graphflow.sampling.pipeline import sample


@register_backend
def graphflow_test_broken(gm, example_inputs):
    raise RuntimeError("no C++ compiler found")


compiled_with = []  # the keyword arguments torch.compile passed graphflow_test_recording


@register_backend
def graphflow_test_recording(gm, example_inputs, **kwargs):
    compiled_with.append(kwargs)
    return gm.forward


def tiny_model() -> DiffusionModel:
    torch.manual_seed(0)
    config = UNetConfig(model_channels=32, channel_mult=(1,), num_res_blocks=1, transformer_depth=(1,),
                        transformer_depth_middle=0, context_dim=32, num_heads=-1, num_head_channels=32)
    return DiffusionModel(UNet(config), "sd1")


def run(model) -> torch.Tensor:
    positive, negative = [[torch.ones(1, 5, 32), {}]], [[torch.zeros(1, 5, 32), {}]]
    return sample(model, 3, 2, 5.0, "euler", "karras", positive, negative,
                  {"samples": torch.zeros(1, 4, 8, 8)})["samples"]


@pytest.fixture
def compiling(monkeypatch):
    torch._dynamo.reset()
    counters.clear()
    monkeypatch.setenv("GRAPHFLOW_COMPILE", "1")
    monkeypatch.setenv("GRAPHFLOW_COMPILE_BACKEND", "eager")
    yield monkeypatch
    torch._dynamo.reset()


def test_compiled_model_gives_the_same_latent_and_is_reused(compiling):
    model = tiny_model()
    compiling.setenv("GRAPHFLOW_COMPILE", "0")
    reference = run(model)
    assert not counters["stats"]["unique_graphs"]
    compiling.setenv("GRAPHFLOW_COMPILE", "1")
    compiled = run(model)
    torch.testing.assert_close(compiled, reference, atol=1e-5, rtol=1e-5)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs >= 1 and model.unet._graphflow_compiled is not None
    assert model.unet._compiled_call_impl is None  # only during a run
    torch.testing.assert_close(run(model), reference, atol=1e-5, rtol=1e-5)
    assert counters["stats"]["unique_graphs"] == graphs  # same shapes: nothing compiled again


def test_compile_failure_warns_and_runs_uncompiled(compiling):
    model = tiny_model()
    compiling.setenv("GRAPHFLOW_COMPILE", "0")
    reference = run(model)
    compiling.setenv("GRAPHFLOW_COMPILE", "1")
    compiling.setenv("GRAPHFLOW_COMPILE_BACKEND", "graphflow_test_broken")
    with pytest.warns(UserWarning, match="torch.compile of the diffusion model failed.*no C\\+\\+ compiler"):
        out = run(model)
    torch.testing.assert_close(out, reference)
    assert model.unet._graphflow_compiled is None


def test_compile_mode_reaches_torch_compile_and_another_mode_compiles_again(compiling, monkeypatch):
    model = tiny_model()
    compiling.setenv("GRAPHFLOW_COMPILE", "0")
    reference = run(model)
    compiling.setenv("GRAPHFLOW_COMPILE", "1")
    compiling.setenv("GRAPHFLOW_COMPILE_BACKEND", "graphflow_test_recording")
    compiling.setenv("GRAPHFLOW_COMPILE_MODE", "reduce-overhead")
    marks = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    compiled_with.clear()
    torch.testing.assert_close(run(model), reference, atol=1e-5, rtol=1e-5)
    assert compiled_with and all(kw == {"mode": "reduce-overhead"} for kw in compiled_with)
    assert len(marks) == 2  # a new CUDA-graph replay for each of the 2 steps' model calls
    compiling.setenv("GRAPHFLOW_COMPILE_MODE", "default")
    compiled_with.clear()
    torch.testing.assert_close(run(model), reference, atol=1e-5, rtol=1e-5)
    assert compiled_with and all(kw == {} for kw in compiled_with)  # compiled again, in the default mode
    assert len(marks) == 2  # no CUDA graphs in this mode
    compiling.setenv("GRAPHFLOW_COMPILE_MODE", "fastest")
    with pytest.raises(ValueError, match="GRAPHFLOW_COMPILE_MODE is 'fastest'; expected one of default, "
                                         "reduce-overhead"):
        run(model)


def test_flags(monkeypatch):
    monkeypatch.delenv("GRAPHFLOW_CHANNELS_LAST", raising=False)
    monkeypatch.delenv("GRAPHFLOW_COMPILE", raising=False)
    assert channels_last(torch.device("cuda")) and not channels_last(torch.device("cpu"))
    assert not compile_requested()
    monkeypatch.setenv("GRAPHFLOW_CHANNELS_LAST", "0")
    assert not channels_last(torch.device("cuda"))
    monkeypatch.setenv("GRAPHFLOW_COMPILE", "maybe")
    with pytest.raises(ValueError, match="GRAPHFLOW_COMPILE is 'maybe'; expected 1 or 0"):
        compile_requested()


@torch.no_grad()
def test_channels_last_gives_the_same_latent(monkeypatch):
    model = tiny_model()
    x, t, context = torch.randn(2, 4, 8, 8), torch.tensor([999.0, 10.0]), torch.randn(2, 5, 32)
    reference_step, reference = model.unet(x, t, context), run(model)
    monkeypatch.setenv("GRAPHFLOW_CHANNELS_LAST", "1")
    out = run(model)
    assert model.unet.input_blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(model.unet(x, t, context), reference_step, atol=1e-5, rtol=1e-5)
    # over the run, CFG 5 at sigma 14.6 magnifies the kernels' different summation order
    torch.testing.assert_close(out, reference, atol=2e-3, rtol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.unet.to("cpu")  # offloading keeps working on NHWC weights


def test_cli_flags_become_settings(monkeypatch, tmp_path, capsys):
    from graphflow import cli

    environ = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHFLOW_")}
    monkeypatch.setattr(os, "environ", environ)  # what main sets goes away with the test
    environ["GRAPHFLOW_DEVICE"] = "cpu"
    code = cli.main(["run", str(tmp_path / "missing.json"), "--attention", "math", "--channels-last", "off",
                     "--compile", "--models-dir", str(tmp_path)])
    assert code == cli.EXIT_FILE  # the flags were taken, then the workflow was not found
    assert (os.environ["GRAPHFLOW_ATTENTION"], os.environ["GRAPHFLOW_CHANNELS_LAST"],
            os.environ["GRAPHFLOW_COMPILE"]) == ("math", "0", "1")
    assert "GRAPHFLOW_FP8_MATMUL" not in os.environ and "GRAPHFLOW_COMPILE_MODE" not in os.environ
    cli.main(["run", str(tmp_path / "missing.json"), "--compile-mode", "reduce-overhead", "--models-dir", str(tmp_path)])
    assert (os.environ["GRAPHFLOW_COMPILE"], os.environ["GRAPHFLOW_COMPILE_MODE"]) == ("1", "reduce-overhead")
    capsys.readouterr()
    code = cli.main(["run", str(tmp_path / "missing.json"), "--fp8-matmul", "--models-dir", str(tmp_path)])
    assert code == cli.EXIT_USAGE
    assert "--fp8-matmul (GRAPHFLOW_FP8_MATMUL) needs a GPU with fp8 tensor cores" in capsys.readouterr().err
    assert "GRAPHFLOW_FP8_MATMUL" not in os.environ


def test_a_model_error_under_compile_is_the_plain_error(compiling):
    model = tiny_model()
    with pytest.raises(RuntimeError) as error:  # a 7-wide context for a model made for 32
        sample(model, 3, 1, 5.0, "euler", "karras", [[torch.ones(1, 5, 7), {}]], [],
               {"samples": torch.zeros(1, 4, 8, 8)})
    assert not isinstance(error.value, torch._dynamo.exc.TorchDynamoException)
    assert model.unet._graphflow_compiled is not None  # still compiled for the next, valid run
