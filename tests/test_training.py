"""In-graph LoRA training (graphflow.training, nodes/training.py), as ComfyUI's TrainLoraNode.

References are computed here by hand: the noise level from the SD beta schedule (or the flow
schedule), the seeded noise, the noisy latent, the network run through torch.func.functional_call
with W + (alpha / r) up @ down and the eps / v / velocity prediction turned into x0 by its own
formula; the SGD update is checked against torch.autograd.grad of that reference loss."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn
from torch.func import functional_call

sys.path.insert(0, str(Path(__file__).parent))
from test_nodes_image_mask import call  # noqa: E402

from graphflow import training  # noqa: E402
from graphflow.context import NodeInputError  # noqa: E402
from graphflow.executor import Executor  # noqa: E402
from graphflow.memory import manager  # noqa: E402
from graphflow.models.checkpoint import load_checkpoint, load_diffusion_model  # noqa: E402
from graphflow.models.lora import apply_lora  # noqa: E402
from graphflow.testing import write_checkpoint, write_flow_checkpoint  # noqa: E402
from graphflow.workflow import parse_workflow  # noqa: E402

SEED = 7


@pytest.fixture(scope="module")
def sd1(tmp_path_factory):
    path = write_checkpoint(tmp_path_factory.mktemp("train") / "sd1.safetensors", "sd1", seed=0)
    return load_checkpoint(path, device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    path = write_flow_checkpoint(tmp_path_factory.mktemp("train") / "schnell.safetensors", "flux_schnell",
                                 dtype=torch.float32, seed=3, components=("model",), prefixed=False)
    return load_diffusion_model(path, device="cpu", dtype=torch.float32)


# -- the reference ------------------------------------------------------------------------------

def sd_sigmas() -> torch.Tensor:
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alphas = torch.cumprod(1 - betas, 0)
    return ((1 - alphas) / alphas).sqrt()


def sigma_by_hand(prediction: str, u: float) -> float:
    """ComfyUI's percent_to_sigma(u): SD's table at timestep (1 - u) * 999, log-interpolated;
    FLUX schnell (shift 1): 1 - u."""
    if prediction == "flow":
        return 1.0 - u
    t = (1 - u) * 999
    low, w = math.floor(t), t - math.floor(t)
    log = sd_sigmas().log()
    return math.exp((1 - w) * log[low] + w * log[min(low + 1, 999)])


def some_layers(unet: nn.Module) -> dict[str, str]:
    """A few layers of each kind to train: linear, conv (3x3), 1-D norm weight, bias."""
    picked = {}
    for path, m in unet.named_modules():
        weight = m._parameters.get("weight")
        if isinstance(m, nn.Linear) and "linear" not in picked:
            picked["linear"] = path
        elif isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and "conv" not in picked:
            picked["conv"] = path
        elif weight is not None and weight.dim() == 1 and "norm" not in picked:
            picked["norm"] = path
    return picked


def initial_lora(unet: nn.Module, rank: int = 2) -> dict[str, torch.Tensor]:
    """A LoRA with every part non-zero (so that every part gets a gradient), ComfyUI's keys."""
    g = torch.Generator().manual_seed(11)
    lora = {}
    for kind, path in some_layers(unet).items():
        m = unet.get_submodule(path)
        key = "diffusion_model." + path
        if kind == "norm":
            lora[key + ".diff"] = 0.05 * torch.randn(m.weight.shape, generator=g)
        else:
            lora[key + ".lora_up.weight"] = 0.1 * torch.randn(m.weight.shape[0], rank, generator=g)
            lora[key + ".lora_down.weight"] = 0.1 * torch.randn(rank, m.weight[0].numel(), generator=g)
            lora[key + ".alpha"] = torch.tensor(1.0)
        if m.bias is not None:
            lora[key + ".diff_b"] = 0.05 * torch.randn(m.bias.shape, generator=g)
    return lora


SUFFIXES = (".lora_up.weight", ".lora_down.weight", ".alpha", ".diff_b", ".diff")


def split(key: str) -> tuple[str, str]:
    """A LoRA key -> (module path in the network, part)."""
    suffix = next(s for s in SUFFIXES if key.endswith(s))
    return key[len("diffusion_model."):-len(suffix)], suffix


def reference_loss(model, lora, latent_raw, cond, pooled, sigma: float, noise, prediction: str):
    """MSE between the x0 estimate of the LoRA-patched network and the clean model-space latent."""
    unet = model.unet
    params = {}
    for path in {split(k)[0] for k in lora}:
        m, key = unet.get_submodule(path), "diffusion_model." + path
        if key + ".lora_up.weight" in lora:
            up, down = lora[key + ".lora_up.weight"], lora[key + ".lora_down.weight"]
            params[path + ".weight"] = m.weight + (float(lora[key + ".alpha"]) / up.shape[1]) * (
                up @ down).reshape(m.weight.shape)
        if key + ".diff" in lora:
            params[path + ".weight"] = m.weight + lora[key + ".diff"]
        if key + ".diff_b" in lora:
            params[path + ".bias"] = m.bias + lora[key + ".diff_b"]
    s = torch.tensor([sigma])
    if prediction == "flow":
        latent = (latent_raw - 0.1159) * 0.3611  # FLUX's latent format
        x = (1 - sigma) * latent + sigma * noise
        v = functional_call(unet, params, (x, s, cond, pooled))
        return torch.nn.functional.mse_loss(x - sigma * v, latent)
    latent = latent_raw * 0.18215
    x = latent + sigma * noise
    t = (sd_sigmas().log() - math.log(sigma)).abs().argmin().float().reshape(1)  # ComfyUI's quantized timestep
    out = functional_call(unet, params, (x / (sigma ** 2 + 1) ** 0.5, t, cond, None))
    if prediction == "eps":
        denoised = x - sigma * out
    else:  # v (Salimans & Ho): x0 = alpha x_vp - sigma_vp v
        denoised = x / (sigma ** 2 + 1) - out * sigma / (sigma ** 2 + 1) ** 0.5
    return torch.nn.functional.mse_loss(denoised, latent)


def conditioning(model, prediction):
    g = torch.Generator().manual_seed(3)
    if prediction == "flow":
        cfg = model.unet.config
        return torch.randn(1, 5, cfg.context_in_dim, generator=g), torch.randn(1, cfg.vec_in_dim, generator=g)
    return torch.randn(1, 77, model.unet.config.context_dim, generator=g), None


# -- one step by hand ---------------------------------------------------------------------------

@pytest.mark.parametrize("prediction", ["eps", "v", "flow"])
def test_one_sgd_step_is_the_hand_computed_loss_and_gradient(sd1, flux, prediction):
    model = flux if prediction == "flow" else sd1.model.with_sampling(prediction)
    channels = model.latent_format.channels
    latent_raw = torch.randn(1, channels, 4, 4, generator=torch.Generator().manual_seed(5))
    cond, pooled = conditioning(model, prediction)
    lora = initial_lora(model.unet)
    lr = 0.5
    trained, losses = training.train_lora(
        model, latent_raw, [(cond, {} if pooled is None else {"pooled_output": pooled})], steps=1,
        learning_rate=lr, optimizer="SGD", seed=SEED, training_dtype="fp32", lora_dtype="fp32",
        gradient_checkpointing=False, lora=lora)

    # the step's draws as ComfyUI makes them, from torch's global generator: the sampler's unused
    # starting noise (seed), the permutation, the step's noise (seed + 0), then u for the sigma
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        torch.randn(latent_raw.shape)
        torch.randperm(1)
        torch.manual_seed(SEED)
        noise = torch.randn(latent_raw.shape)
        sigma = sigma_by_hand(prediction, torch.rand((1,)).item())
    leaves = {k: v.clone().requires_grad_(not k.endswith(".alpha")) for k, v in lora.items()}
    loss = reference_loss(model, leaves, latent_raw, cond, pooled, sigma, noise, prediction)
    assert losses["loss"] == pytest.approx([loss.item()], rel=1e-4)
    names = [k for k in leaves if not k.endswith(".alpha")]
    grads = torch.autograd.grad(loss, [leaves[k] for k in names])
    assert sorted(trained) == sorted(lora)
    for name, grad in zip(names, grads):
        assert grad.abs().max() > 0, name  # every part moved: the check below is not vacuous
        torch.testing.assert_close(trained[name], lora[name] - lr * grad, rtol=1e-4, atol=1e-6, msg=name)


def test_gradient_checkpointing_gives_the_same_training(sd1):
    latent = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    cond, _ = conditioning(sd1.model, "eps")
    runs = [training.train_lora(sd1.model, latent, [(cond, {})], steps=2, batch_size=2, rank=2, seed=1,
                                training_dtype="fp32", lora_dtype="fp32", gradient_checkpointing=checkpointing)
            for checkpointing in (False, True)]
    assert runs[0][1]["loss"] == pytest.approx(runs[1][1]["loss"], rel=1e-5)
    for key in runs[0][0]:
        torch.testing.assert_close(runs[0][0][key], runs[1][0][key], rtol=1e-4, atol=1e-6, msg=key)


# -- training ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(sd1):
    """30 AdamW steps on one latent + conditioning, from the fresh LoRA layout (up random, down 0)."""
    latent = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    cond, _ = conditioning(sd1.model, "eps")
    before = {k: v.clone() for k, v in sd1.model.unet.state_dict().items()}
    lora, losses = training.train_lora(sd1.model, latent, [(cond, {})], steps=30, learning_rate=2e-2, rank=4,
                                       seed=SEED, training_dtype="fp32", lora_dtype="fp32")
    return latent, cond, before, lora, losses


def test_fresh_lora_has_comfyuis_layout_and_init(sd1):
    lora = training.new_lora(sd1.model.unet, 4, torch.float32, torch.Generator().manual_seed(0))
    layers = dict(sd1.model.unet.named_modules())
    for key, value in lora.items():
        path, part = split(key)
        weight = layers[path].weight
        if part == ".lora_up.weight":
            bound = 1 / math.sqrt(4)  # kaiming-uniform with a = sqrt 5 over fan-in = rank
            assert value.shape == (weight.shape[0], 4) and value.abs().max() <= bound and value.std() > bound / 4
        elif part == ".lora_down.weight":
            assert value.shape == (4, weight[0].numel()) and not value.any()
        elif part == ".alpha":
            assert float(value) == 1.0
        else:
            assert not value.any()
    conv = "diffusion_model.input_blocks.0.0"
    assert lora[conv + ".lora_down.weight"].shape == (4, 4 * 3 * 3)  # conv flattened, as ComfyUI's
    assert any(k.endswith(".diff") for k in lora) and any(k.endswith(".diff_b") for k in lora)


def test_loss_decreases_and_training_is_deterministic(sd1, trained):
    latent, cond, before, lora, losses = trained
    assert len(losses["loss"]) == 30
    # the loss at fixed noise levels and noise, with the fresh LoRA (= the model) and the trained one
    fresh = training.new_lora(sd1.model.unet, 4, torch.float32, torch.Generator().manual_seed(SEED))
    with torch.no_grad():
        def mean_loss(weights):
            total = 0.0
            for k, u in enumerate((0.2, 0.4, 0.6, 0.8)):
                noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(100 + k))
                total += float(reference_loss(sd1.model, weights, latent, cond, None, sigma_by_hand("eps", u), noise,
                                              "eps"))
            return total / 4
        assert mean_loss(lora) < 0.9 * mean_loss(fresh)  # 10.15 -> 8.54 when written
    again, losses_again = training.train_lora(sd1.model, latent, [(cond, {})], steps=10, learning_rate=2e-2,
                                              rank=4, seed=SEED, training_dtype="fp32", lora_dtype="fp32")
    assert losses_again["loss"] == losses["loss"][:10]
    # the input model's weights are bit-identical after training and after applying the LoRA
    model = call_node(sd1.model, lora)
    manager().weights(model.unet, model.patches)
    for key, value in sd1.model.unet.state_dict().items():
        assert torch.equal(value, before[key]), key


def call_node(model, lora):
    from graphflow.registry import default_registry

    return call(default_registry(), "LoraModelLoader", model=model, lora=lora, strength_model=1.0)


def test_saved_lora_loads_back_as_the_trained_model(builtin_registry, sd1, trained, tmp_folders):
    _, _, _, lora, _ = trained
    call(builtin_registry, "SaveLoRANode", lora=lora, prefix="loras/ComfyUI_trained_lora", steps=30)
    call(builtin_registry, "SaveLoRANode", lora=lora, prefix="loras/ComfyUI_trained_lora")
    folder = tmp_folders.outputs / "loras"
    # ComfyUI's counter reads the first number after the prefix: the 30 of "_30_steps_" counts too
    assert sorted(p.name for p in folder.iterdir()) == ["ComfyUI_trained_lora_00031_.safetensors",
                                                        "ComfyUI_trained_lora_30_steps_00001_.safetensors"]
    path = folder / "ComfyUI_trained_lora_30_steps_00001_.safetensors"
    file = load_file(str(path))
    assert sorted(file) == sorted(lora)
    proj = "diffusion_model.input_blocks.1.1.proj_in"
    assert {proj + s for s in (".lora_up.weight", ".lora_down.weight", ".alpha", ".diff_b")} <= set(file)
    via_node = call(builtin_registry, "LoraModelLoader", model=sd1.model, lora=lora, strength_model=0.7)
    from_file, _ = apply_lora(sd1.model, None, path, 0.7)
    (tmp_folders.models / "loras").mkdir()
    path.rename(tmp_folders.models / "loras" / path.name)
    via_loader, _ = call(builtin_registry, "LoadLoRA", model=sd1.model, clip=sd1.clip, lora_name=path.name,
                         strength_model=0.7, strength_clip=1.0)
    want = manager().weights(via_node.unet, via_node.patches)
    base = sd1.model.unet.state_dict()
    changed = 0
    for got in (manager().weights(from_file.unet, from_file.patches),
                manager().weights(via_loader.unet, via_loader.patches)):
        for key, value in want.items():
            torch.testing.assert_close(got[key], value, msg=key)
            changed += not torch.equal(value, base[key])
    assert changed > 50  # the LoRA changes the model (down moved off zero)
    assert call(builtin_registry, "LoraModelLoader", model=sd1.model, lora=lora, strength_model=0.0) is sd1.model


def train_node(registry, **inputs):
    """Run TrainLoraNode as the executor does (input_is_list: every input a list)."""
    cls = registry.get("TrainLoraNode")
    values = cls.widget_model.model_validate({k: v for k, v in inputs.items()
                                              if cls.input_specs[k].widget}).model_dump()
    node = cls.__new__(cls)
    node.__dict__.update({k: [v] for k, v in values.items()})
    node.__dict__.update({k: v for k, v in inputs.items() if cls.input_specs[k].socket})
    return node.run()


def test_bad_inputs_are_refused(builtin_registry, sd1):
    cond, _ = conditioning(sd1.model, "eps")
    latent = {"samples": torch.zeros(3, 4, 4, 4)}
    with pytest.raises(NodeInputError, match="2 conditioning entries for 3 latents") as e:
        train_node(builtin_registry, model=[sd1.model], latents=[latent], positive=[[(cond, {})] * 2], steps=1)
    assert e.value.input == "positive"
    with pytest.raises(NodeInputError, match="2 conditioning entries for 3 latents") as e:
        training.train_lora(sd1.model, latent["samples"], [(cond, {})] * 2, steps=1)
    assert e.value.input == "positive"  # train_lora's parameter, named so the node needn't read the message
    with pytest.raises(NodeInputError, match="only LoRA"):
        train_node(builtin_registry, model=[sd1.model], latents=[latent], positive=[[(cond, {})]], algorithm="LoHa")
    with pytest.raises(NodeInputError, match="16-channel latents"):
        train_node(builtin_registry, model=[sd1.model], latents=[{"samples": torch.zeros(1, 16, 4, 4)}],
                   positive=[[(cond, {})]])


def test_latents_of_two_sizes_train_one_at_a_time(builtin_registry, sd1):
    """A list of LATENTs of different sizes (ComfyUI's multi-resolution dataset): each latent runs
    alone with its own sigma, the same step noise seed, and the step's loss is their mean."""
    cond, _ = conditioning(sd1.model, "eps")
    g = torch.Generator().manual_seed(4)
    small, large = torch.randn(1, 4, 4, 4, generator=g), torch.randn(1, 4, 6, 6, generator=g)
    _, _, losses, steps = train_node(
        builtin_registry, model=[sd1.model], latents=[{"samples": small}, {"samples": large}],
        positive=[[(cond, {})], [(cond, {})]], steps=1, batch_size=2, optimizer="SGD", learning_rate=0.1,
        seed=SEED, training_dtype="fp32", lora_dtype="fp32", gradient_checkpointing=False)
    assert steps == 1 and len(losses["loss"]) == 1
    fresh = training.new_lora(sd1.model.unet, 8, torch.float32, torch.Generator().manual_seed(SEED))  # rank 8
    want = 0.0
    # ComfyUI's draws (torch's global generator): the starting noise of the first latent repeated,
    # the permutation, then per latent the step's noise (reseeded) and u for its sigma
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(SEED)
        torch.randn(2, 4, 4, 4)
        for j in torch.randperm(2).tolist():
            latent = (small, large)[j]
            torch.manual_seed(SEED)
            noise = torch.randn(latent.shape)
            sigma = sigma_by_hand("eps", torch.rand((1,)).item())
            want += float(reference_loss(sd1.model, fresh, latent, cond, None, sigma, noise, "eps")) / 2
    assert losses["loss"][0] == pytest.approx(want, rel=1e-4)


# -- image sets, loss graph, a ComfyUI graph --------------------------------------------------------

def picture(path, size, colour):
    Image.new("RGB", size, colour).save(path)


def test_image_sets_from_an_inputs_subfolder(builtin_registry, sd1, tmp_folders):
    folder = tmp_folders.inputs / "set"
    folder.mkdir()
    picture(folder / "a.png", (16, 8), (255, 0, 0))
    picture(folder / "b.jpg", (8, 8), (0, 255, 0))
    (folder / "a.txt").write_text("a red picture\n")
    (folder / "notes.md").write_text("not a picture")
    assert "set" in builtin_registry.get("LoadImageSetFromFolderNode").input_specs["folder"].widget.choices()

    with pytest.raises(NodeInputError, match="b.jpg is 8x8, the set is 16x8"):
        call(builtin_registry, "LoadImageSetFromFolderNode", folder="set", resize_method="None")
    stretched = call(builtin_registry, "LoadImageSetFromFolderNode", folder="set", resize_method="Stretch")
    assert stretched.shape == (2, 8, 16, 3)
    assert torch.allclose(stretched[0], torch.tensor([1.0, 0, 0]).expand(8, 16, 3))
    assert (stretched[1, :, :, 1] > 0.95).all()  # green, stretched over the whole width
    cropped = call(builtin_registry, "LoadImageSetFromFolderNode", folder="set", resize_method="Crop")
    assert (cropped[1, :, :8, 1] > 0.95).all() and not cropped[1, :, 8:].any()  # top-left kept, black beyond
    padded = call(builtin_registry, "LoadImageSetFromFolderNode", folder="set", resize_method="Pad")
    torch.testing.assert_close(padded, stretched)  # ComfyUI's Pad resizes too

    images, conditioning = call(builtin_registry, "LoadImageTextSetFromFolderNode", folder="set", clip=sd1.clip,
                                resize_method="Stretch", width=12, height=4)
    assert images.shape == (2, 4, 12, 3) and len(conditioning) == 2
    for entry, text in zip(conditioning, ("a red picture", "")):
        torch.testing.assert_close(entry[0], sd1.clip.encode(text)[0])

    # names outside the choices are refused by validation; the node itself refuses escapes too
    cls = builtin_registry.get("LoadImageSetFromFolderNode")
    for bad in ("..", "/etc", "set/../../x", "missing"):
        node = cls.__new__(cls)
        node.__dict__.update(folder=bad, resize_method="None")
        with pytest.raises(NodeInputError, match="must stay inside|no folder"):
            node.run()


def test_loss_graph_saves_a_plot(builtin_registry, tmp_folders):
    call(builtin_registry, "LossGraphNode", loss={"loss": [3.0, 2.0, 2.5, 1.0]}, filename_prefix="plots/loss")
    [path] = (tmp_folders.temp / "plots").glob("loss_*.png")  # a preview, as ComfyUI's (test_parity_train_speed)
    pixels = np.asarray(Image.open(path))
    assert pixels.shape == (520, 840, 3)
    blue = (pixels[..., 2] > 200) & (pixels[..., 0] < 80)
    assert blue[:40].any() and blue[440:].any()  # the curve spans the plot from the top loss to the bottom one
    with pytest.raises(NodeInputError, match="no losses"):
        call(builtin_registry, "LossGraphNode", loss={"loss": []}, filename_prefix="loss")


def test_comfyui_graph_trains_saves_and_samples(builtin_registry, tmp_folders):
    (tmp_folders.models / "checkpoints").mkdir()
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1", seed=0)
    folder = tmp_folders.inputs / "faces"
    folder.mkdir()
    picture(folder / "1.png", (32, 32), (200, 40, 40))
    picture(folder / "2.png", (32, 32), (40, 40, 200))
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "2": {"class_type": "LoadImageSetFromFolderNode", "inputs": {"folder": "faces", "resize_method": "None"}},
        "3": {"class_type": "VAEEncode", "inputs": {"pixels": ["2", 0], "vae": ["1", 2]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "a face", "clip": ["1", 1]}},
        "5": {"class_type": "TrainLoraNode", "inputs": {
            "model": ["1", 0], "latents": ["3", 0], "positive": ["4", 0], "batch_size": 1,
            "grad_accumulation_steps": 1, "steps": 3, "learning_rate": 0.0005, "rank": 2, "optimizer": "AdamW",
            "loss_function": "MSE", "seed": 0, "training_dtype": "bf16", "lora_dtype": "bf16",
            "algorithm": "LoRA", "gradient_checkpointing": True, "existing_lora": "[None]"}},
        "6": {"class_type": "SaveLoRANode", "inputs": {"lora": ["5", 1], "prefix": "loras/ComfyUI_trained_lora",
                                                       "steps": ["5", 3]}},
        "7": {"class_type": "LoraModelLoader", "inputs": {"model": ["1", 0], "lora": ["5", 1], "strength_model": 1.0}},
        "8": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
        "9": {"class_type": "KSampler", "inputs": {
            "model": ["7", 0], "positive": ["4", 0], "negative": ["4", 0], "latent_image": ["8", 0], "seed": 1,
            "steps": 2, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "10": {"class_type": "LossGraphNode", "inputs": {"loss": ["5", 2], "filename_prefix": "loss_graph"}},
        "11": {"class_type": "PreviewImage", "inputs": {"images": ["12", 0]}},
        "12": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["1", 2]}},
    }
    result = Executor(builtin_registry).run(parse_workflow(graph, builtin_registry))
    assert result.status == "success", (result.problems, result.error)
    [saved] = (tmp_folders.outputs / "loras").glob("*.safetensors")
    assert saved.name == "ComfyUI_trained_lora_3_steps_00001_.safetensors"
    file = load_file(str(saved))
    assert {v.dtype for v in file.values()} == {torch.bfloat16}  # lora_dtype bf16, as ComfyUI saves it
    assert any(v.any() for k, v in file.items() if k.endswith(".lora_down.weight"))  # it was trained
    assert list(tmp_folders.temp.glob("loss_graph_*.png"))


def test_a_model_not_whole_on_the_device_is_refused(builtin_registry, sd1, fresh_manager):
    fresh_manager.configure("none", 0.0)  # streams every block: the network is never whole on the device
    cond, _ = conditioning(sd1.model, "eps")
    with pytest.raises(NodeInputError, match="only partly on the device") as e:
        train_node(builtin_registry, model=[sd1.model], latents=[{"samples": torch.zeros(1, 4, 4, 4)}],
                   positive=[[(cond, {})]], steps=1)
    assert e.value.input == "model"


def test_existing_lora_continues_training(builtin_registry, sd1, trained, tmp_folders):
    _, cond, _, lora, _ = trained
    call(builtin_registry, "SaveLoRANode", lora=lora, prefix="mine", steps=30)
    (tmp_folders.models / "loras").mkdir()
    name = "mine_30_steps_00001_.safetensors"
    (tmp_folders.outputs / name).rename(tmp_folders.models / "loras" / name)
    assert name in builtin_registry.get("TrainLoraNode").input_specs["existing_lora"].widget.choices()
    _, continued, _, steps = train_node(
        builtin_registry, model=[sd1.model], latents=[{"samples": torch.zeros(1, 4, 4, 4)}], positive=[[(cond, {})]],
        steps=2, optimizer="SGD", learning_rate=1e-7, training_dtype="fp32", lora_dtype="fp32", existing_lora=name)
    assert steps == 32  # the file's 30 and these 2, as ComfyUI counts them
    assert sorted(continued) == sorted(lora)
    for key, value in lora.items():  # a tiny SGD step away from the saved LoRA, not from a fresh one
        torch.testing.assert_close(continued[key], value, rtol=0, atol=1e-4, msg=key)
    assert any(value.any() for key, value in continued.items() if key.endswith(".lora_down.weight"))


def test_a_lora_for_another_model_is_refused(builtin_registry, sd1, flux, tmp_folders):
    """train_lora names its `lora` parameter; TrainLoraNode blames existing_lora for it."""
    from safetensors.torch import save_file

    lora = initial_lora(flux.unet)
    cond, _ = conditioning(sd1.model, "eps")
    with pytest.raises(NodeInputError, match="layers this model lacks") as e:
        training.train_lora(sd1.model, torch.zeros(1, 4, 4, 4), [(cond, {})], steps=1, lora=lora,
                            training_dtype="fp32", lora_dtype="fp32")
    assert e.value.input == "lora"
    (tmp_folders.models / "loras").mkdir()
    save_file(lora, str(tmp_folders.models / "loras" / "flux_30_steps.safetensors"))
    with pytest.raises(NodeInputError, match="layers this model lacks") as e:
        train_node(builtin_registry, model=[sd1.model], latents=[{"samples": torch.zeros(1, 4, 4, 4)}],
                   positive=[[(cond, {})]], steps=1, training_dtype="fp32", lora_dtype="fp32",
                   existing_lora="flux_30_steps.safetensors")
    assert e.value.input == "existing_lora"
