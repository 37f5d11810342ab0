"""LoCon/LoHa/LoKr/DoRA and the diffusers/PEFT layout: merged weights against PEFT's own merge on
the same tensors (fp32), loading through LoadLoRA on a tiny checkpoint, and refusals."""

import pickle

import pytest
import torch
from peft import LoHaConfig, LoKrConfig, LoraConfig, get_peft_model
from safetensors.torch import save_file
from torch import nn

from graphflow.models.checkpoint import load_checkpoint
from graphflow.models.lora import LoraError, apply_lora, read_lora, unet_lora_names
from graphflow.testing import write_checkpoint, write_lora


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, 48)
        self.conv = nn.Conv2d(32, 48, 3)


def peft_case(config, seed=0):
    """(base weights, PEFT-merged weights, adapter tensors by (module, part)) with every adapter
    tensor random (PEFT zero-inits some)."""
    torch.manual_seed(seed)
    base = Tiny()
    original = {n: base.get_submodule(n).weight.detach().clone() for n in ("lin", "conv")}
    model = get_peft_model(base, config)
    tensors = {}
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if "base_layer" in key or ".default" not in key:
                continue
            value.copy_(torch.randn_like(value) * 0.3 + (1.0 if "magnitude" in key else 0.0))
            module, part = key.removeprefix("base_model.model.").replace(".default", "").split(".", 1)
            tensors[module, part] = value.clone()
    merged = model.merge_and_unload()
    return original, {n: merged.get_submodule(n).weight.detach() for n in ("lin", "conv")}, tensors


def merged_by_us(tmp_path, original, file_tensors, strength=1.0):
    path = tmp_path / "lora.safetensors"
    save_file({k: v.contiguous() for k, v in file_tensors.items()}, str(path))
    modules = read_lora(path)
    return {n: modules[f"lora_unet_{n}"].patched(original[n], strength) for n in ("lin", "conv")}


def kohya(tensors, alpha, names=None):
    out = {f"lora_unet_{m}.{(names or {}).get(p, p)}": v for (m, p), v in tensors.items()}
    out.update({f"lora_unet_{m}.alpha": torch.tensor(float(alpha)) for m in ("lin", "conv")})
    return out


@pytest.mark.parametrize("dora", [False, True])
def test_lora_and_dora_match_peft_in_diffusers_layout(tmp_path, dora):
    config = LoraConfig(r=4, lora_alpha=3, target_modules=["lin", "conv"], use_dora=dora)
    original, expected, tensors = peft_case(config)
    # diffusers/PEFT layout: unet.<path>.lora_A.weight / lora_B.weight / lora_magnitude_vector
    file = {f"unet.{m}.{p}": v for (m, p), v in tensors.items()}
    file.update({f"unet.{m}.alpha": torch.tensor(3.0) for m in ("lin", "conv")})
    ours = merged_by_us(tmp_path, original, file)
    for name in ours:
        assert not torch.allclose(expected[name], original[name], atol=1e-3)
        torch.testing.assert_close(ours[name], expected[name], atol=1e-5, rtol=1e-5)


def test_dora_strength_scales_the_whole_change(tmp_path):
    original, expected, tensors = peft_case(LoraConfig(r=4, lora_alpha=3, target_modules=["lin", "conv"], use_dora=True))
    file = kohya(tensors, 3.0, {"lora_A.weight": "lora_down.weight", "lora_B.weight": "lora_up.weight",
                                "lora_magnitude_vector.weight": "dora_scale"})
    file = {k: v.reshape(-1, 1) if k.endswith("dora_scale") else v for k, v in file.items()}  # kohya's [out, 1]
    ours = merged_by_us(tmp_path, original, file, strength=0.5)
    for name in ours:
        torch.testing.assert_close(ours[name], original[name] + 0.5 * (expected[name] - original[name]),
                                   atol=1e-5, rtol=1e-5)


def test_loha_matches_peft(tmp_path):
    config = LoHaConfig(r=4, alpha=3, target_modules=["lin", "conv"], use_effective_conv2d=True)
    original, expected, tensors = peft_case(config)
    assert ("conv", "hada_t1") in tensors  # the CP (Tucker) conv form
    ours = merged_by_us(tmp_path, original, kohya(tensors, 3.0))
    for name in ours:
        torch.testing.assert_close(ours[name], expected[name], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("decompose_both", [False, True])
def test_lokr_matches_peft(tmp_path, decompose_both):
    config = LoKrConfig(r=2, alpha=3, target_modules=["lin", "conv"], use_effective_conv2d=True,
                        decompose_both=decompose_both)
    original, expected, tensors = peft_case(config)
    assert ("conv", "lokr_t2") in tensors and (("lin", "lokr_w1_a") in tensors) == decompose_both
    ours = merged_by_us(tmp_path, original, kohya(tensors, 3.0))
    for name in ours:
        torch.testing.assert_close(ours[name], expected[name], atol=1e-5, rtol=1e-5)


def test_locon_tucker_mid_equals_its_three_convolutions(tmp_path):
    """LyCORIS's Tucker LoCon runs up(mid(down(x))): a 1x1 down, a kxk core, a 1x1 up; the merged
    conv must give the same output."""
    torch.manual_seed(1)
    conv = nn.Conv2d(6, 8, 3, padding=1)
    down, mid, up = torch.randn(3, 6, 1, 1), torch.randn(3, 3, 3, 3), torch.randn(8, 3, 1, 1)
    path = tmp_path / "locon.safetensors"
    save_file({"lora_unet_c.lora_down.weight": down, "lora_unet_c.lora_mid.weight": mid,
               "lora_unet_c.lora_up.weight": up, "lora_unet_c.alpha": torch.tensor(1.5)}, str(path))
    merged = read_lora(path)["lora_unet_c"].patched(conv.weight.detach(), 1.0)
    x = torch.randn(2, 6, 9, 9)
    f = nn.functional
    expected = conv(x) + 0.5 * f.conv2d(f.conv2d(f.conv2d(x, down), mid, padding=1), up)
    torch.testing.assert_close(f.conv2d(x, merged, conv.bias, padding=1), expected, atol=1e-4, rtol=1e-4)
