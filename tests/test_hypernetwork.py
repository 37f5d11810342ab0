"""Hypernetworks: the patched attention against a hand computation on the same tensors, the
A1111 pickle and the safetensors layout, strength 0, the node, and refusals."""

import pytest
import torch
import torch.nn.functional as F

from graphflow.models.checkpoint import load_checkpoint
from graphflow.models.hypernetwork import HypernetworkError, apply_hypernetwork, read_hypernetwork
from graphflow.testing import write_checkpoint, write_hypernetwork


@pytest.fixture(scope="module")
def sd1(tmp_path_factory):
    path = write_checkpoint(tmp_path_factory.mktemp("hn") / "sd1.safetensors", "sd1", dtype=torch.float32)
    return load_checkpoint(path, device="cpu", dtype=torch.float32).model


def hand_mlp(state: dict, x, activation, layer_norm: bool):
    """ComfyUI's MLP from the raw tensors: Linear, activation, LayerNorm; no activation after the
    file's last layer when that is a Linear (a LayerNorm after it counts as the last layer)."""
    indices = sorted({int(k.split(".")[1]) for k in state})
    for i in indices:
        w, b = state[f"linear.{i}.weight"], state[f"linear.{i}.bias"]
        if w.dim() == 2:
            x = F.linear(x, w, b)
            if i != indices[-1]:
                x = activation(x)
        else:
            x = F.layer_norm(x, w.shape, w, b, eps=1e-5)
    return x


def hand_attention(attention, x, keys, values):
    b, n, _ = x.shape
    heads = attention.heads
    q, k, v = (t.view(b, -1, heads, t.shape[-1] // heads).transpose(1, 2)
               for t in (x @ attention.to_q.weight.T, keys @ attention.to_k.weight.T, values @ attention.to_v.weight.T))
    out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, -1)
    return F.linear(out, attention.to_out[0].weight, attention.to_out[0].bias)


@pytest.mark.parametrize("suffix,activation,layer_norm", [(".pt", "relu", False), (".pt", "tanh", True),
                                                          (".safetensors", "leakyrelu", True)])
def test_patched_attentions_equal_hand_computation(tmp_path, sd1, suffix, activation, layer_norm):
    unet = sd1.unet
    attn2 = unet.get_submodule("input_blocks.1.1.transformer_blocks.0.attn2")
    attn1 = unet.get_submodule("input_blocks.1.1.transformer_blocks.0.attn1")
    context_width, self_width = attn2.to_k.in_features, attn1.to_k.in_features
    assert context_width != self_width  # the test tells the two apart
    path = write_hypernetwork(tmp_path / f"hn{suffix}", widths=(context_width, self_width), activation=activation,
                              layer_norm=layer_norm, seed=3)
    raw = torch.load(path, weights_only=True) if suffix == ".pt" else None
    if raw is None:
        from safetensors.torch import load_file
        flat = load_file(str(path))
        raw = {w: [{k.split(".", 2)[2]: v for k, v in flat.items() if k.startswith(f"{w}.{i}.")} for i in (0, 1)]
               for w in (context_width, self_width)}
    act = {"relu": F.relu, "tanh": torch.tanh, "leakyrelu": F.leaky_relu}[activation]
    strength = 0.8
    patched = apply_hypernetwork(sd1, read_hypernetwork(path), strength).unet
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, self_width, generator=g)
    context = torch.randn(2, 7, context_width, generator=g)
    with torch.no_grad():
        for name, inputs, width in (("attn2", context, context_width), ("attn1", x, self_width)):
            k_in = inputs + hand_mlp(raw[width][0], inputs, act, layer_norm) * strength
            v_in = inputs + hand_mlp(raw[width][1], inputs, act, layer_norm) * strength
            original = unet.get_submodule(f"input_blocks.1.1.transformer_blocks.0.{name}")
            expected = hand_attention(original, x, k_in, v_in)
            got = patched.get_submodule(f"input_blocks.1.1.transformer_blocks.0.{name}")(
                x, context if name == "attn2" else None)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
            plain = original(x, context if name == "attn2" else None)
            assert (got - plain).abs().max() > 1e-3
    assert not unet.get_submodule("input_blocks.1.1.transformer_blocks.0.attn2").kv_patches  # input untouched


def test_strength_zero_gives_the_plain_prediction_and_one_changes_it(tmp_path, sd1):
    unet = sd1.unet
    widths = {m.to_k.in_features for n, m in unet.named_modules() if n.endswith(("attn1", "attn2"))}
    path = write_hypernetwork(tmp_path / "hn.pt", widths=sorted(widths), seed=1)
    layers = read_hypernetwork(path)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 8, 8, generator=g)
    t = torch.tensor([500.0])
    context = torch.randn(1, 7, unet.get_submodule("input_blocks.1.1.transformer_blocks.0.attn2").to_k.in_features,
                          generator=g)
    with torch.no_grad():
        plain = unet(x, t, context)
        zero = apply_hypernetwork(sd1, layers, 0.0).unet(x, t, context)
        one = apply_hypernetwork(sd1, layers, 1.0).unet(x, t, context)
    assert torch.equal(zero, plain)
    assert (one - plain).abs().max() > 1e-3


def test_refuses_wrong_files(tmp_path, sd1):
    from safetensors.torch import save_file

    from graphflow.testing import write_lora

    write_lora(tmp_path / "lora.safetensors", "sd1")
    with pytest.raises(HypernetworkError, match=r"lora\.safetensors: unexpected key"):
        read_hypernetwork(tmp_path / "lora.safetensors")
    torch.save({"state_dict": {"a": torch.zeros(1)}}, tmp_path / "empty.pt")
    with pytest.raises(HypernetworkError, match=r"empty\.pt holds no hypernetwork layers"):
        read_hypernetwork(tmp_path / "empty.pt")
    write_hypernetwork(tmp_path / "gelu.pt", activation="gelu")
    with pytest.raises(HypernetworkError, match="activation_func 'gelu' is not supported"):
        read_hypernetwork(tmp_path / "gelu.pt")
    with pytest.raises(HypernetworkError, match="attention widths \\[999\\]"):
        apply_hypernetwork(sd1, read_hypernetwork(write_hypernetwork(tmp_path / "wide.pt", widths=(999,))), 1.0)
    (tmp_path / "evil.pt").write_bytes(b"\x80\x04cos\nsystem\nq\x00.")
    from graphflow.models.weight_files import CheckpointError
    with pytest.raises(CheckpointError, match="evil.pt was refused"):
        read_hypernetwork(tmp_path / "evil.pt")
    save_file({"64.0.linear.0.weight": torch.zeros(3, 64), "64.1.linear.0.weight": torch.zeros(3, 64)},
              str(tmp_path / "narrow.safetensors"))
    with pytest.raises(HypernetworkError, match="maps 64 to 3 features; it must keep the width"):
        read_hypernetwork(tmp_path / "narrow.safetensors")


def test_hypernetwork_loader_node(builtin_registry, tmp_folders):
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow

    for sub in ("checkpoints", "hypernetworks"):
        (tmp_folders.models / sub).mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    write_hypernetwork(tmp_folders.models / "hypernetworks" / "style.pt", widths=(64,))

    def graph(strength, name="style.pt"):
        return {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
                "10": {"class_type": "HypernetworkLoader", "inputs": {"model": ["4", 0], "hypernetwork_name": name,
                                                                       "strength": strength}},
                "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
                "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
                "3": {"class_type": "KSampler", "inputs": {
                    "seed": 2, "steps": 2, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
                    "model": ["10", 0], "positive": ["6", 0], "negative": ["6", 0], "latent_image": ["5", 0]}},
                "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
                "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}}

    executor = Executor(builtin_registry)
    runs = {s: executor.run(parse_workflow(graph(s), builtin_registry)) for s in (0.0, 1.0)}
    assert all(r.status == "success" for r in runs.values()), [(r.problems, r.error) for r in runs.values()]
    plain = {**graph(0.0)}
    plain["3"]["inputs"]["model"] = ["4", 0]
    base = executor.run(parse_workflow(plain, builtin_registry))
    samples = {s: r.values["3"][0]["samples"] for s, r in runs.items()}
    assert torch.equal(samples[0.0], base.values["3"][0]["samples"])
    assert not torch.equal(samples[1.0], samples[0.0])
    write_checkpoint(tmp_folders.models / "hypernetworks" / "not_one.safetensors", "sd1")
    bad = executor.run(parse_workflow(graph(1.0, "not_one.safetensors"), builtin_registry))
    [problem] = bad.problems  # validation tells the kind of file before anything runs
    assert bad.status == "invalid" and problem.node_id == "10" and "looks like a checkpoint" in problem.message
    from safetensors.torch import save_file
    save_file({"mystery.weight": torch.zeros(2, 2)}, str(tmp_folders.models / "hypernetworks" / "odd.safetensors"))
    bad = executor.run(parse_workflow(graph(1.0, "odd.safetensors"), builtin_registry))
    assert bad.status == "error" and bad.error["node_id"] == "10"
    assert "odd.safetensors" in bad.error["message"] and "hypernetwork" in bad.error["message"]
