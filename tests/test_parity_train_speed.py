"""Behaviour parity with ComfyUI of the training nodes (nodes/training.py), the model speed nodes
(nodes/model_speed.py), the context-window nodes and the model-sampling nodes, where an audit
found a difference. Oracles are small hand computations and PIL / torch operations written here."""

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from test_nodes_image_mask import call  # noqa: E402
from test_training import train_node  # noqa: E402

from graphflow import context  # noqa: E402


def run_with_ui(registry, node_type, **inputs):
    """call() inside a node context: (outputs, what the node showed)."""
    ctx = context.NodeContext("run", "1", node_type, emit=lambda event: None, interrupt=threading.Event())
    token = context._current.set(ctx)
    try:
        return call(registry, node_type, **inputs), ctx.ui
    finally:
        context._current.reset(token)


# --- LossGraphNode ---------------------------------------------------------------------------------

def test_loss_graph_is_a_temp_preview_with_comfyuis_labels(builtin_registry, tmp_folders):
    """ComfyUI's LossGraphNode saves `<prefix>_<date>_<time>.png` in the temp folder and shows it as a
    temp image (a preview, nothing among the outputs); its min / max labels start at x = margin - 30
    = 10, each segment of the curve is a 2 px line."""
    losses = [3.0, 2.0, 2.5, 1.0]
    _, ui = run_with_ui(builtin_registry, "LossGraphNode", loss={"loss": losses}, filename_prefix="loss_graph")
    [shown] = ui["images"]
    assert shown["type"] == "temp" and shown["subfolder"] == ""
    assert not any(tmp_folders.outputs.rglob("*.png"))
    name = shown["filename"]
    assert name.startswith("loss_graph_") and name.endswith(".png")
    date, time = name[len("loss_graph_"):-len(".png")].split("_")
    assert len(date) == 8 and len(time) == 6 and (date + time).isdigit()
    pixels = np.asarray(Image.open(tmp_folders.temp / name).convert("RGB")).astype(int)
    assert pixels.shape == (520, 840, 3)
    dark = pixels.sum(-1) < 300
    assert not dark[:12, :9].any() and dark[:12, 10:38].any()  # "3.00" drawn from x = 10
    assert not dark[470:482, :9].any() and dark[470:482, 10:38].any()  # "1.00" from (10, 470)
    # the curve: the points (40 + int(i / 4 * 800), 480 - int(scaled * 480)), joined segment by segment
    points = [(40 + int(i / 4 * 800), 480 - int((v - 1.0) / 2.0 * 480)) for i, v in enumerate(losses)]
    blue = (pixels[..., 2] > 200) & (pixels[..., 0] < 80)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        for t in (0.25, 0.5, 0.75):
            x, y = round(x0 + t * (x1 - x0)), round(y0 + t * (y1 - y0))
            assert blue[max(y - 2, 0):y + 3, x - 2:x + 3].any(), (x, y)
    assert not blue[:, 641:].any()  # the last point is at x = 640: nothing drawn beyond it


# --- TrainLoraNode ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sd1(tmp_path_factory):
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.testing import write_checkpoint

    path = write_checkpoint(tmp_path_factory.mktemp("parity") / "sd1.safetensors", "sd1", seed=0)
    return load_checkpoint(path, device="cpu", dtype=torch.float32).model


@pytest.mark.parametrize("training_dtype", ["bf16", "fp32"])
def test_model_with_lora_computes_in_the_training_dtype(builtin_registry, sd1, training_dtype):
    """ComfyUI sets the training dtype as the compute dtype of the clone it trains and returns it as
    model_with_lora: that model samples in bf16 after bf16 training. Its weights are the input's
    plus (alpha / rank) up @ down, in that dtype; the input model keeps fp32."""
    from graphflow.memory import manager

    cond = torch.randn(1, 77, sd1.unet.config.context_dim, generator=torch.Generator().manual_seed(3))
    latent = {"samples": torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(2))}
    trained, lora, _, steps = train_node(
        builtin_registry, model=[sd1], latents=[latent], positive=[[(cond, {})]], steps=2, rank=2, optimizer="SGD",
        learning_rate=0.5, seed=1, training_dtype=training_dtype, lora_dtype="fp32", gradient_checkpointing=False)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[training_dtype]
    assert steps == 2 and trained.dtype == dtype and sd1.dtype == torch.float32
    assert all(p.dtype == dtype for p in trained.unet.parameters())
    base = dict(sd1.unet.named_parameters())
    got = manager().weights(trained.unet, trained.patches)
    path = "input_blocks.1.1.proj_in"  # a 1x1 conv / linear of the first attention block
    up, down = lora[f"diffusion_model.{path}.lora_up.weight"], lora[f"diffusion_model.{path}.lora_down.weight"]
    assert down.abs().max() > 0  # trained: the check is not vacuous
    weight = base[f"{path}.weight"].detach()
    want = weight + (float(lora[f"diffusion_model.{path}.alpha"]) / up.shape[1] * (up @ down)).reshape(weight.shape)
    tolerance = {"rtol": 1e-2, "atol": 1e-3} if dtype == torch.bfloat16 else {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(got[f"{path}.weight"].float(), want, **tolerance)
    assert got[f"{path}.weight"].dtype == dtype


def test_training_draws_are_comfyuis(sd1, monkeypatch):
    """ComfyUI's TrainSampler draws everything from torch's global generator, which its noise reseeds,
    so the draws follow from the seed: the sampler's starting noise over the dataset (seed, unused),
    then per forward the permutation, the noise (reseeded with seed + 1000 i) and a uniform draw per
    latent for its sigma. Its dataset is held in training_dtype (bf16: rounded, the latent scale
    applied in bf16) and the noise drawn in it. Emulated here with the global generator itself."""
    from graphflow import training
    from graphflow.sampling.flow_sampling import model_sampling_for

    seen = []

    def record(model, network, schedule, loss_fn, clean, sigmas, noise, conditioning, dtype):
        seen.append((clean.clone(), sigmas.clone(), noise.clone()))
        return (network.input_blocks[0][0].weight.sum() * 0).float() + len(seen)  # a loss with a gradient

    monkeypatch.setattr(training, "_loss", record)
    raw = torch.randn(3, 4, 4, 4, generator=torch.Generator().manual_seed(9)) * 5
    cond = torch.zeros(1, 77, sd1.unet.config.context_dim)
    seed = 21
    training.train_lora(sd1, raw, [(cond, {})], steps=2, grad_accumulation_steps=2, batch_size=2, rank=1,
                        seed=seed, training_dtype="bf16", lora_dtype="fp32", optimizer="SGD",
                        gradient_checkpointing=False)
    assert len(seen) == 4  # steps x grad_accumulation_steps forwards
    dataset = (raw.to(torch.bfloat16) * 0.18215).float()  # SD1's scale, in bf16 as ComfyUI's
    schedule = model_sampling_for(sd1)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        torch.randn(3, 4, 4, 4, dtype=torch.bfloat16)
        for i, (clean, sigmas, noise) in enumerate(seen):
            indices = torch.randperm(3)[:2].tolist()
            torch.manual_seed(seed + i * 1000)
            want_noise = torch.randn(2, 4, 4, 4, dtype=torch.bfloat16)
            want_sigmas = [schedule.percent_to_sigma(torch.rand((1,)).item()) for _ in range(2)]
            assert torch.equal(clean, dataset[indices]), i
            assert torch.equal(noise, want_noise.float()), i
            assert sigmas.tolist() == pytest.approx(want_sigmas, rel=1e-6), i
    assert len({tuple(clean.flatten()[:4].tolist()) for clean, _, _ in seen}) > 1  # the batches differ


def test_existing_lora_gets_fresh_parts_where_it_has_none_and_trains_in_lora_dtype(builtin_registry, sd1,
                                                                                   tmp_folders):
    """ComfyUI continues an existing LoRA layer by layer: the layers the file has adapters for go on
    from them, the others get fresh ones of the node's rank; everything is trained in lora_dtype
    (a bf16 file continued in fp32 moves by updates below bf16's resolution)."""
    from graphflow import training
    from graphflow.models.lora_extract import write_lora

    lora = training.new_lora(sd1.unet, 2, torch.bfloat16, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    for key in lora:
        if key.endswith(".lora_down.weight"):
            lora[key] = (torch.randn(lora[key].shape, generator=g) * 0.1).to(torch.bfloat16)
    dropped = "diffusion_model.out.2"  # the last conv: no adapter in the file
    saved = {k: v for k, v in lora.items() if not k.startswith(dropped + ".")}
    (tmp_folders.models / "loras").mkdir()
    write_lora(tmp_folders.models / "loras" / "mine_5_steps_00001_.safetensors", saved)
    cond = torch.randn(1, 77, sd1.unet.config.context_dim, generator=torch.Generator().manual_seed(3))
    _, continued, _, steps = train_node(
        builtin_registry, model=[sd1], latents=[{"samples": torch.randn(1, 4, 4, 4, generator=g)}],
        positive=[[(cond, {})]], steps=1, rank=3, optimizer="SGD", learning_rate=1e-4, seed=2,
        training_dtype="fp32", lora_dtype="fp32", gradient_checkpointing=False,
        existing_lora="mine_5_steps_00001_.safetensors")
    assert steps == 6
    assert sorted(continued) == sorted(lora)
    assert continued[dropped + ".lora_up.weight"].shape[1] == 3  # fresh, of the node's rank
    assert continued[dropped + ".lora_down.weight"].shape[0] == 3
    assert {v.dtype for v in continued.values()} == {torch.float32}
    key = "diffusion_model.input_blocks.1.1.proj_in.lora_down.weight"
    step = (continued[key] - saved[key].float()).abs()
    assert 0 < step.max() < 1e-2  # went on from the file's values, by fp32 updates
