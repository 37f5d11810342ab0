"""Training a LoRA on a MODEL inside a graph, as ComfyUI's TrainLoraNode does.

What is trained (ComfyUI's layout, `diffusion_model.` + the network's own module path):
  every layer weight with 2+ dimensions (linear, conv, embedding): `lora_up.weight` [out, r] and
  `lora_down.weight` [r, in*kh*kw] with `alpha` 1, delta = (alpha / r) up @ down reshaped to the
  weight; up starts kaiming-uniform (a = sqrt 5) and down at zero, so the model starts unchanged
  (ComfyUI's LoRA adapter inits them that way round);
  every 1-D layer weight (norms): `diff`, a full difference, from zero;
  every layer bias: `diff_b`, from zero.

One step (ComfyUI's TrainSampler): `batch_size` latents drawn by a random permutation, unit noise
from seed + 1000 * step (as the samplers' noise), one sigma per latent from the model's sampling
(percent_to_sigma of a uniform draw), x = noise_scaling(sigma, noise, latent) (latent + sigma noise
for eps/v models, (1 - sigma) latent + sigma noise for flow models), the model's own denoiser gives
the x0 estimate from its eps / v / velocity prediction, and the loss compares it with the clean
latent. The latents are in model space (the latent format's scale and shift applied), as a
sampler's are, and like ComfyUI's dataset they are held in training_dtype (bf16: rounded), the
noise drawn in it.
Each image has its conditioning (one is used for all); a batch's entries are all given to the model
as one CONDITIONING, as ComfyUI does. Gradients are averaged over grad_accumulation_steps before
each optimizer step; the loss map holds every forward's loss. Latents of different sizes (a list)
run one at a time, a step's loss the mean over its latents (each with its own noise from the step's
seed, then its sigma).

The draws are ComfyUI's, number for number: it draws them from torch's global generator, which
its noise seeds (torch.manual_seed), so they follow from `seed` alone: the sampler's unused
starting noise for the whole dataset (seed), then per step the permutation, the reseeded noise
(seed + 1000 step) and the uniform draws; here one CPU generator makes the same calls. Not
ComfyUI's: the LoRA's init (its up matrices), which ComfyUI draws from the global generator in
whatever state earlier work left it; here a generator of its own seeded with `seed`.
Gradient checkpointing wraps the forwards of the network's highest non-container blocks
(ComfyUI's choice), on the copy only.

The input MODEL is never changed: the network runs as a shallow copy whose trained layers read
their weights (original + LoRA) from tensors bound to the copy each step; the shared parameters are
only read. The trained MODEL is the input with the LoRA as weight patches (graphflow.models.lora).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from graphflow import memory
from graphflow.context import NodeInputError
from graphflow.models.lora import apply_lora, copied_modules, lora_modules

PREFIX = "diffusion_model."
LOSSES = {"MSE": F.mse_loss, "L1": F.l1_loss, "Huber": F.huber_loss, "SmoothL1": F.smooth_l1_loss}
OPTIMIZERS = {"AdamW": torch.optim.AdamW, "Adam": torch.optim.Adam, "SGD": torch.optim.SGD,
              "RMSprop": torch.optim.RMSprop}
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
CONTAINERS = (nn.ModuleList, nn.Sequential, nn.ModuleDict)


def trained_layers(unet: nn.Module) -> dict[str, nn.Module]:
    """Module path -> layer, for every layer with its own weight or bias (what ComfyUI trains)."""
    return {path: m for path, m in unet.named_modules()
            if any(isinstance(m._parameters.get(name), nn.Parameter) for name in ("weight", "bias"))}


def new_lora(unet: nn.Module, rank: int, dtype: torch.dtype, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A fresh LoRA for every trained layer (see the module docstring), in ComfyUI's keys."""
    lora = {}
    for path, m in trained_layers(unet).items():
        key, weight, bias = PREFIX + path, m._parameters.get("weight"), m._parameters.get("bias")
        if weight is not None and weight.dim() >= 2:
            up = torch.empty(weight.shape[0], rank)
            nn.init.kaiming_uniform_(up, a=math.sqrt(5), generator=generator)
            lora[key + ".lora_up.weight"] = up.to(dtype)
            lora[key + ".lora_down.weight"] = torch.zeros(rank, weight[0].numel(), dtype=dtype)
            lora[key + ".alpha"] = torch.tensor(1.0)
        elif weight is not None:
            lora[key + ".diff"] = torch.zeros(weight.shape, dtype=dtype)
        if bias is not None:
            lora[key + ".diff_b"] = torch.zeros(bias.shape, dtype=dtype)
    return lora


def continued_lora(unet: nn.Module, lora: dict[str, torch.Tensor], rank: int, dtype: torch.dtype,
                   seed: int) -> dict[str, torch.Tensor]:
    """An existing LoRA to go on training, as ComfyUI's existing_lora: with fresh parts (new_lora's,
    of `rank`) for the layers it has none for. Its own norm and bias differences go on too, where
    ComfyUI's restart from zero (dropping what the earlier run learnt there)."""
    given = {_part_of(k) for k in lora}
    fresh = new_lora(unet, rank, dtype, torch.Generator("cpu").manual_seed(seed))
    return {**{k: v for k, v in fresh.items() if _part_of(k) not in given}, **lora}


def _trained_weight(weight: torch.Tensor, lora: dict, key: str, scale: float) -> torch.Tensor:
    if key + ".lora_up.weight" in lora:
        up, down = lora[key + ".lora_up.weight"], lora[key + ".lora_down.weight"]
        return weight + (scale * (up.float() @ down.float())).reshape(weight.shape).to(weight.dtype)
    if key + ".diff" in lora:
        return weight + lora[key + ".diff"].to(weight.dtype)
    return weight


def _layer_of(key: str) -> str:
    """A LoRA key -> the module path it patches."""
    for part in (".lora_up.weight", ".lora_down.weight", ".alpha", ".diff_b", ".diff"):
        if key.endswith(part):
            return key[len(PREFIX):-len(part)]
    raise NodeInputError("lora", f"unexpected LoRA key {key!r}; expected ComfyUI's trained-LoRA parts")


def _part_of(key: str) -> tuple[str, str]:
    """A LoRA key -> (module path, which part of it: "lora" (up, down, alpha), "diff" or "diff_b")."""
    kind = key.rsplit(".", 1)[-1]
    return _layer_of(key), kind if kind in ("diff", "diff_b") else "lora"


def _checkpoint_paths(module: nn.Module, prefix: str = "") -> list[str]:
    """The highest non-container submodules, whose forwards gradient checkpointing wraps (ComfyUI's)."""
    out = []
    for name, child in module.named_children():
        path = prefix + name
        out += _checkpoint_paths(child, path + ".") if isinstance(child, CONTAINERS) else [path]
    return out


def _checkpointed(module: nn.Module):
    forward = type(module).forward.__get__(module)

    def run(*args, **kwargs):
        return torch.utils.checkpoint.checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return run


class TrainingNetwork:
    """A shallow copy of `unet` whose trained layers use weights bound by bind(lora); the shared
    parameters are read, never written."""

    def __init__(self, unet: nn.Module, lora: dict[str, torch.Tensor], gradient_checkpointing: bool):
        layers = trained_layers(unet)
        paths = {_layer_of(k) for k in lora}
        unknown = sorted(p for p in paths if p not in layers)
        if unknown:
            raise NodeInputError("lora", f"the LoRA has {len(unknown)} layers this model lacks "
                                         f"(e.g. {', '.join(unknown[:3])}); it was trained on another model")
        self.paths = sorted(paths)
        # alpha / rank, read once (a tensor's value read each step would wait for the device)
        self.scales = {p: float(lora.get(f"{PREFIX}{p}.alpha", 1.0)) / lora[f"{PREFIX}{p}.lora_up.weight"].shape[1]
                       for p in self.paths if f"{PREFIX}{p}.lora_up.weight" in lora}
        wrapped = _checkpoint_paths(unet) if gradient_checkpointing else []
        self.module, self.copies = copied_modules(unet, set(self.paths) | set(wrapped))
        self.originals = {p: (layers[p]._parameters.get("weight"), layers[p]._parameters.get("bias"))
                          for p in self.paths}
        for path in self.paths:
            copy = self.copies[path]
            copy._parameters.pop("weight", None)
            copy._parameters.pop("bias", None)
        for path in wrapped:
            self.copies[path].__dict__["forward"] = _checkpointed(self.copies[path])

    def bind(self, lora: dict[str, torch.Tensor]) -> None:
        for path in self.paths:
            key, (weight, bias) = PREFIX + path, self.originals[path]
            copy = self.copies[path]
            if weight is not None:  # detached: the shared parameters get no gradients
                weight = _trained_weight(weight.detach(), lora, key, self.scales.get(path, 1.0))
            copy.__dict__["weight"] = weight
            if bias is not None:
                bias = bias.detach()
                if key + ".diff_b" in lora:
                    bias = bias + lora[key + ".diff_b"].to(bias.dtype)
            copy.__dict__["bias"] = bias


def denoiser(model, network: nn.Module, schedule, conditioning: list, shape: tuple, device):
    """D(x; sigma) of `model` run with `network`, for `conditioning` (cfg 1, no negative)."""
    from graphflow.sampling.flow_sampling import FlowDenoiser, is_flow
    from graphflow.sampling.guidance import CFGGuider, prepare_conds
    from graphflow.sampling.model_sampling import ModelDenoiser

    trained = model.with_unet(network)
    trained.patches = None  # the shared weights already hold the model's patches (train_lora's memory.use)
    base = FlowDenoiser(trained, schedule) if is_flow(schedule) else ModelDenoiser(trained, schedule)

    def prepare(cond, negative=False):
        return prepare_conds(cond, trained, shape, device, negative=negative, schedule=schedule)
    return CFGGuider(trained, conditioning, [], 1.0).denoiser(base, prepare)


def step_draws(schedule, latents, batch_size: int, noise_seed: int, generator: torch.Generator,
               dtype: torch.dtype) -> list[tuple[list[int], torch.Tensor, list[float]]]:
    """One training step's draws in ComfyUI's order: a permutation's first batch_size latents, then
    for the batch (a list of latents: for each one alone) the generator reseeded with noise_seed,
    the noise in `dtype` and a uniform draw per latent made a sigma (percent_to_sigma). A list of
    (indices, noise, sigmas), one entry per forward."""
    count = latents.shape[0] if torch.is_tensor(latents) else len(latents)
    indices = torch.randperm(count, generator=generator)[:batch_size].tolist()
    groups = [indices] if torch.is_tensor(latents) else [[j] for j in indices]
    out = []
    for group in groups:
        shape = (len(group), *latents.shape[1:]) if torch.is_tensor(latents) else latents[group[0]].shape
        generator.manual_seed(noise_seed)
        noise = torch.randn(shape, dtype=dtype, generator=generator)
        out.append((group, noise, [schedule.percent_to_sigma(float(torch.rand(1, generator=generator)))
                                   for _ in group]))
    return out


def starting_draw(latents, generator: torch.Generator, seed: int, dtype: torch.dtype) -> None:
    """Advance the generator past ComfyUI's sampler's starting noise (seeded with `seed`, shaped like
    the dataset: with latents of several sizes, the first one's repeated), which it draws and never
    uses before the first step's permutation."""
    first = latents if torch.is_tensor(latents) else latents[0]
    count = first.shape[0] if torch.is_tensor(latents) else len(latents)
    generator.manual_seed(seed)
    torch.randn((count, *first.shape[1:]), dtype=dtype, generator=generator)


def _loss(model, network, schedule, loss_fn, clean, sigmas, noise, conditioning, dtype):
    """The loss of the network's x0 estimate for the noised `clean` latents."""
    x = schedule.noise_scaling(sigmas, noise, clean)
    d = denoiser(model, network, schedule, conditioning, tuple(x.shape), x.device)
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype != torch.float32):
        return loss_fn(d(x, sigmas).float(), clean)


def _check_placed(unet: nn.Module, placed) -> None:
    """Training binds each layer's weight before the forward, so the whole network must be on the
    device (ComfyUI forces a full load too) and earlier LoRAs must be patched in place."""
    if placed.state != "loaded":
        raise NodeInputError("model", f"the model is only partly on the device ({placed.state}); training needs it "
                                      "whole: free device memory (smaller models beside it) or train on a smaller "
                                      "model")
    patched = memory.manager().patched
    if any(getattr(patched.get(id(p)), "hooks", ()) for p in unet.parameters()):
        raise NodeInputError("model", "the model's LoRAs are patched on the fly (too little RAM to patch them in "
                                      "place); training needs them in place")


def train_lora(model, latents, positive: list, *, batch_size: int = 1, grad_accumulation_steps: int = 1,
               steps: int = 16, learning_rate: float = 5e-4, rank: int = 8, optimizer: str = "AdamW",
               loss_function: str = "MSE", seed: int = 0, training_dtype: str = "bf16", lora_dtype: str = "bf16",
               gradient_checkpointing: bool = True, lora: dict | None = None, progress=None):
    """(LoRA tensors, {"loss": [per forward]}) after `steps` optimizer steps. latents: raw VAE
    latents [N, C, h, w], or a list of [1, C, h, w] of different sizes (each then runs alone and
    a step's loss is the mean over its latents, divided by grad_accumulation_steps, as ComfyUI
    logs it); positive: one CONDITIONING entry per latent, or one for all. `lora`: a LoRA in the
    same layout to continue training, its parts only (else a fresh one; see continued_lora).
    Inputs that can't be trained on: NodeInputError naming the parameter at fault ("model", "positive",
    "lora"), so a node blames its own input without reading the message."""
    from graphflow.sampling.flow_sampling import model_sampling_for

    count = latents.shape[0] if torch.is_tensor(latents) else len(latents)
    if len(positive) == 1 and count > 1:
        positive = list(positive) * count
    elif len(positive) != count:
        raise NodeInputError("positive", f"{len(positive)} conditioning entries for {count} latents; give one per "
                                         "latent or one for all")
    unet, dtype = model.unet, DTYPES[training_dtype]
    draws = torch.Generator("cpu")
    starting_draw(latents, draws, seed, dtype)
    with torch.inference_mode(False), torch.enable_grad(), \
            memory.use(unet, "diffusion_model", f"diffusion_model:{model.arch}", model.patches) as placed:
        _check_placed(unet, placed)
        device = model.device
        if lora is None:
            lora = new_lora(unet, rank, DTYPES[lora_dtype], torch.Generator("cpu").manual_seed(seed))
        # trained in lora_dtype, as ComfyUI's (a bf16 file continued in fp32 takes fp32 steps)
        lora = {k: v.detach().to(device, DTYPES[lora_dtype]).clone() for k, v in lora.items()}
        params = [v.requires_grad_(True) for k, v in lora.items() if not k.endswith(".alpha")]
        network = TrainingNetwork(unet, lora, gradient_checkpointing)
        schedule = model_sampling_for(model)

        def model_space(t):  # ComfyUI's dataset: in training_dtype, then the latent format applied in it
            return model.latent_format.process_in(t.to(device, dtype)).float()
        latents = model_space(latents) if torch.is_tensor(latents) else [model_space(t) for t in latents]
        opt = OPTIMIZERS[optimizer](params, lr=learning_rate)
        loss_fn, losses = LOSSES[loss_function], []
        for i in range(steps * grad_accumulation_steps):
            forwards = step_draws(schedule, latents, batch_size, (seed + i * 1000) % 2 ** 64, draws, dtype)
            network.bind(lora)
            loss = sum(_loss(model, network.module, schedule, loss_fn,
                             latents[indices] if torch.is_tensor(latents) else latents[indices[0]],
                             torch.tensor(sigmas, device=device), noise.to(device, torch.float32),
                             [positive[j] for j in indices], dtype)
                       for indices, noise, sigmas in forwards)
            if not torch.is_tensor(latents):  # ComfyUI's multi-size step: the mean over its latents
                loss = loss / grad_accumulation_steps / len(forwards)
                loss.backward()
            else:
                (loss / grad_accumulation_steps).backward()
            losses.append(loss.item())
            if (i + 1) % grad_accumulation_steps == 0:
                opt.step()
                opt.zero_grad()
                if progress is not None:
                    progress((i + 1) // grad_accumulation_steps, steps)
        network = None
    # everything in lora_dtype, alpha too, as ComfyUI returns it
    return {k: v.detach().to("cpu", DTYPES[lora_dtype]) for k, v in lora.items()}, {"loss": losses}


def with_lora(model, lora: dict[str, torch.Tensor], strength: float = 1.0, name: str = "trained LoRA"):
    """The MODEL with a LoRA (tensors in any layout graphflow.models.lora reads) as weight patches."""
    if strength == 0:
        return model
    return apply_lora(model, None, name, strength, modules=lora_modules(lora, name))[0]


def existing_steps(file_name: str) -> int:
    """The step count in a trained LoRA's file name (`..._<steps>_steps_<counter>_`), else 0."""
    m = re.search(r"_(\d+)_steps_", Path(file_name).name)
    return int(m.group(1)) if m else 0
