"""LoCon/LoHa/LoKr/DoRA and the diffusers/PEFT layout: merged weights against PEFT's own merge on
the same tensors (fp32), loading through LoadLoRA on a tiny checkpoint, and refusals."""

import pickle
from types import SimpleNamespace

import pytest
import torch
from peft import LoHaConfig, LoKrConfig, LoraConfig, get_peft_model
from safetensors.torch import save_file
from torch import nn

from graphflow import memory
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
    file = {f"unet.{m}.{p}": v for (m, p), v in tensors.items()}
    file.update({f"unet.{m}.alpha": torch.tensor(3.0) for m in ("lin", "conv")})
    ours = merged_by_us(tmp_path, original, file, strength=0.5)
    for name in ours:
        torch.testing.assert_close(ours[name], original[name] + 0.5 * (expected[name] - original[name]),
                                   atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_dora_scale_per_output_row_is_normalised_by_the_unmerged_rows(tmp_path, strength):
    """A kohya/LyCORIS dora_scale [out, 1] (LyCORIS's wd_on_out), as ComfyUI's weight_decompose
    applies it: W' = m (W + dW) / (||W|| + eps), the norms of the weight's rows before the change;
    then W + strength (W' - W). A [1, in] dora_scale takes the merged columns' norms."""
    gen = torch.Generator().manual_seed(4)
    w = torch.randn(6, 5, generator=gen)
    down, up = torch.randn(2, 5, generator=gen), torch.randn(6, 2, generator=gen)
    rows, cols = torch.rand(6, 1, generator=gen) + 0.5, torch.rand(1, 5, generator=gen) + 0.5
    eps = torch.finfo(torch.float32).eps
    merged = w + 1.5 * up @ down  # alpha 3, rank 2
    for scale, norm in ((rows, w.norm(dim=1, keepdim=True)), (cols, merged.norm(dim=0, keepdim=True))):
        path = tmp_path / "dora.safetensors"
        save_file({"lora_unet_x.lora_down.weight": down, "lora_unet_x.lora_up.weight": up,
                   "lora_unet_x.alpha": torch.tensor(3.0), "lora_unet_x.dora_scale": scale}, str(path))
        ours = read_lora(path)["lora_unet_x"].patched(w, strength)
        expected = w + strength * (merged * scale / (norm + eps) - w)
        torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-6)


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


# -- every format through the loader on a tiny checkpoint ---------------------------------------

LINEAR = ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", "input_blocks.1.1.transformer_blocks.0.attn1.to_q")
CONV = ("mid_block.resnets.1.conv2", "middle_block.2.out_layers.3")
TEXT = "encoder.layers.1.self_attn.k_proj"  # inside transformers' text_model


def module_tensors(fmt: str, shape, gen) -> dict[str, torch.Tensor]:
    """One module of format `fmt` for a weight of `shape` (kohya part names), rank 2."""
    out_ch, in_ch, *kernel = shape
    k = 1
    for n in kernel:
        k *= n
    r = lambda *s: torch.randn(*s, generator=gen) * 0.1  # noqa: E731
    if fmt in ("lora", "dora"):
        parts = {"lora_down.weight": r(2, in_ch, *kernel), "lora_up.weight": r(out_ch, 2, *[1] * len(kernel))}
        if fmt == "dora":
            parts["dora_scale"] = torch.rand(out_ch, 1, generator=gen) + 0.5
        return parts
    if fmt == "locon_tucker":
        if not kernel:
            return module_tensors("lora", shape, gen)
        return {"lora_down.weight": r(2, in_ch, 1, 1), "lora_mid.weight": r(2, 2, *kernel),
                "lora_up.weight": r(out_ch, 2, 1, 1)}
    if fmt == "loha":
        return {"hada_w1_a": r(out_ch, 2), "hada_w1_b": r(2, in_ch * k), "hada_w2_a": r(out_ch, 2),
                "hada_w2_b": r(2, in_ch * k)}
    if fmt == "lokr":  # w1 over a factor 2 of both sides, w2 low-rank over the rest
        return {"lokr_w1": r(2, 2), "lokr_w2_a": r(out_ch // 2, 2), "lokr_w2_b": r(2, in_ch // 2 * k)}
    if fmt == "diff":
        return {"diff": r(*shape)}
    raise ValueError(fmt)


def format_file(path, fmt, ckpt, layout="kohya", seed=0):
    """A LoRA file of `fmt` naming LINEAR, CONV (UNet) and TEXT (text encoder); returns the file and
    the (tower or 'unet', module path) it names."""
    gen = torch.Generator().manual_seed(seed)
    tensors, named = {}, set()
    tower = ckpt.clip.towers[0]
    inner = "text_model." if tower.transformer is not tower.model else ""
    for diffusers_name, ours in (LINEAR, CONV):
        parts = module_tensors(fmt, ckpt.model.unet.get_submodule(ours).weight.shape, gen)
        for part, value in parts.items():
            key = (f"unet.{diffusers_name}.{part}".replace("lora_down.weight", "lora_A.weight")
                   .replace("lora_up.weight", "lora_B.weight") if layout == "diffusers"
                   else f"lora_unet_{diffusers_name.replace('.', '_')}.{part}")
            tensors[key] = value
        named.add(("unet", ours))
    parts = module_tensors(fmt, tower.model.get_submodule(inner + TEXT).weight.shape, gen)
    for part, value in parts.items():
        key = (f"text_encoder.text_model.{TEXT}.{part}".replace("lora_down.weight", "lora_A.weight")
               .replace("lora_up.weight", "lora_B.weight") if layout == "diffusers"
               else f"lora_te_text_model_{TEXT.replace('.', '_')}.{part}")
        tensors[key] = value
    named.add((0, inner + TEXT))
    save_file(tensors, str(path))
    return path, named


@pytest.fixture(scope="module")
def sd1(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    return load_checkpoint(write_checkpoint(root / "sd1.safetensors", "sd1"), device="cpu"), root


def weights(module, patches=()):
    """What the network runs with under these patches (graphflow.memory applies them)."""
    return memory.manager().weights(module, patches)


def changed_weights(ckpt, model, clip):
    old = weights(ckpt.model.unet)
    changed = {("unet", n.removesuffix(".weight")) for n, w in weights(model.unet, model.patches).items()
               if not torch.equal(w, old[n])}
    old_text = weights(ckpt.clip.towers[0].model)
    changed |= {(0, n.removesuffix(".weight")) for n, w in weights(clip.towers[0].model, clip.towers[0].patches).items()
                if not torch.equal(w, old_text[n])}
    return changed


@pytest.mark.parametrize("fmt, layout", [("locon_tucker", "kohya"), ("loha", "kohya"), ("lokr", "kohya"),
                                         ("dora", "kohya"), ("diff", "kohya"), ("lora", "diffusers"),
                                         ("dora", "diffusers")])
def test_each_format_changes_exactly_the_weights_it_names(sd1, fmt, layout):
    ckpt, root = sd1
    path, named = format_file(root / f"{fmt}_{layout}.safetensors", fmt, ckpt, layout)
    before = {p: ckpt.model.unet.get_submodule(p).weight.clone() for _, p in named if _ == "unet"}
    model, clip = apply_lora(ckpt.model, ckpt.clip, path, 0.8, 0.6)
    assert changed_weights(ckpt, model, clip) == named
    modules = read_lora(path)
    names = unet_lora_names(ckpt.model.unet)
    for key, module in modules.items():
        if key in names:  # the change is the module's, at the model strength
            path_ = names[key]
            torch.testing.assert_close(weights(model.unet, model.patches)[path_ + ".weight"],
                                       module.patched(before[path_], 0.8), atol=1e-6, rtol=1e-6)
            assert torch.equal(weights(ckpt.model.unet)[path_ + ".weight"], before[path_])


def test_sdxl_text_encoder_2_in_diffusers_layout(tmp_path):
    ckpt = load_checkpoint(write_checkpoint(tmp_path / "xl.safetensors", "sdxl"), device="cpu")
    gen = torch.Generator().manual_seed(3)
    towers = ckpt.clip.towers
    tensors = {}
    for prefix, tower in (("text_encoder", towers[0]), ("text_encoder_2", towers[1])):
        inner = "text_model." if tower.transformer is not tower.model else ""
        w = tower.model.get_submodule(inner + TEXT).weight
        tensors[f"{prefix}.text_model.{TEXT}.lora_A.weight"] = torch.randn(2, w.shape[1], generator=gen)
        tensors[f"{prefix}.text_model.{TEXT}.lora_B.weight"] = torch.randn(w.shape[0], 2, generator=gen)
    save_file(tensors, str(tmp_path / "te2.safetensors"))
    _, clip = apply_lora(ckpt.model, ckpt.clip, tmp_path / "te2.safetensors", 1.0, 1.0)
    for index in (0, 1):
        old = weights(towers[index].model)
        changed = [n for n, w in weights(clip.towers[index].model, clip.towers[index].patches).items()
                   if not torch.equal(w, old[n])]
        assert [n.split("text_model.")[-1] for n in changed] == [TEXT + ".weight"]


def write_controlnet(path):
    save_file({"control_model.input_hint_block.0.weight": torch.zeros(16, 3, 3, 3),
               "control_model.zero_convs.0.0.weight": torch.zeros(32, 32, 1, 1),
               "control_model.input_blocks.0.0.weight": torch.zeros(32, 4, 3, 3)}, str(path))


def test_loader_refuses_wrong_or_damaged_files(tmp_path, sd1):
    ckpt, root = sd1
    write_controlnet(tmp_path / "control_canny.safetensors")
    with pytest.raises(LoraError, match=r"control_canny\.safetensors.*expected a LoRA file.*ControlNet"):
        apply_lora(ckpt.model, ckpt.clip, tmp_path / "control_canny.safetensors")

    good = write_lora(tmp_path / "good.safetensors", "sd1")
    data = good.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(LoraError, match=r"cut\.safetensors.*truncated.*expected a LoRA file"):
        apply_lora(ckpt.model, ckpt.clip, tmp_path / "cut.safetensors")

    class Evil:
        def __reduce__(self):
            return (print, ("this must not run",))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"lora_unet_x.lora_down.weight": Evil()}, f)
    with pytest.raises(LoraError, match=r"evil\.pt.*restricted unpickler(.|\n)*expected a LoRA file"):
        apply_lora(ckpt.model, ckpt.clip, tmp_path / "evil.pt")

    save_file({"lora_unet_x.hada_w1_a": torch.zeros(4, 2), "lora_unet_x.hada_w1_b": torch.zeros(2, 4)},
              str(tmp_path / "half_loha.safetensors"))
    with pytest.raises(LoraError, match=r"half_loha\.safetensors: lora_unet_x: a LoHa module needs hada_w2_a, hada_w2_b"):
        apply_lora(ckpt.model, ckpt.clip, tmp_path / "half_loha.safetensors")

    # a LoKr whose kron product has the wrong size for the layer it names
    save_file({f"lora_unet_{CONV[0].replace('.', '_')}.lokr_w1": torch.zeros(3, 3),
               f"lora_unet_{CONV[0].replace('.', '_')}.lokr_w2": torch.zeros(5, 5)}, str(tmp_path / "odd.safetensors"))
    with pytest.raises(LoraError, match=r"odd\.safetensors: middle_block\.2\.out_layers\.3: the LoKr module"):
        apply_lora(ckpt.model, ckpt.clip, tmp_path / "odd.safetensors")


def test_load_lora_node_runs_lycoris_files_and_refuses_a_controlnet(builtin_registry, tmp_folders, sd1):
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow

    ckpt, _ = sd1
    for sub in ("checkpoints", "loras"):
        (tmp_folders.models / sub).mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    format_file(tmp_folders.models / "loras" / "loha.safetensors", "loha", ckpt)
    write_controlnet(tmp_folders.models / "loras" / "control_canny.safetensors")

    def graph(lora):
        return {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
                "10": {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1], "lora_name": lora,
                                                               "strength_model": 1.0, "strength_clip": 1.0}},
                "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["10", 1]}},
                "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
                "3": {"class_type": "KSampler", "inputs": {
                    "seed": 2, "steps": 1, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
                    "model": ["10", 0], "positive": ["6", 0], "negative": ["6", 0], "latent_image": ["5", 0]}},
                "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
                "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}}

    executor = Executor(builtin_registry)
    ok = executor.run(parse_workflow(graph("loha.safetensors"), builtin_registry))
    assert ok.status == "success", (ok.problems, ok.error)
    model, clip = ok.values["10"]
    base = SimpleNamespace(model=ok.values["4"][0], clip=ok.values["4"][1])
    assert changed_weights(base, model, clip) == format_file(tmp_folders.models / "loras" / "loha.safetensors",
                                                             "loha", ckpt)[1]
    bad = executor.run(parse_workflow(graph("control_canny.safetensors"), builtin_registry))
    [problem] = bad.problems  # validation tells the kind before anything runs; the loader refuses it too
    assert bad.status == "invalid" and (problem.node_id, problem.input) == ("10", "lora_name")
    assert "control_canny.safetensors" in problem.message and "looks like a ControlNet" in problem.message
    with pytest.raises(LoraError, match="control_canny.safetensors.*looks like a ControlNet"):
        read_lora(tmp_folders.models / "loras" / "control_canny.safetensors")


def test_flux_lora_in_bfl_comfyui_and_kohya_layouts(tmp_path):
    from graphflow.testing import write_flow_checkpoint

    ckpt = load_checkpoint(write_flow_checkpoint(tmp_path / "flux.safetensors", "flux_schnell"), device="cpu")
    unet, gen = ckpt.model.unet, torch.Generator().manual_seed(4)
    qkv = unet.get_submodule("double_blocks.0.img_attn.qkv").weight
    linear1 = unet.get_submodule("single_blocks.0.linear1").weight
    save_file({"diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight": torch.randn(2, qkv.shape[1], generator=gen),
               "diffusion_model.double_blocks.0.img_attn.qkv.lora_B.weight": torch.randn(qkv.shape[0], 2, generator=gen),
               "lora_unet_single_blocks_0_linear1.lokr_w1": torch.randn(2, 2, generator=gen),
               "lora_unet_single_blocks_0_linear1.lokr_w2": torch.randn(linear1.shape[0] // 2, linear1.shape[1] // 2,
                                                                         generator=gen)},
              str(tmp_path / "flux_lora.safetensors"))
    model, _ = apply_lora(ckpt.model, None, tmp_path / "flux_lora.safetensors", 0.5, 0.0)
    old = weights(unet)
    changed = {n for n, w in weights(model.unet, model.patches).items() if not torch.equal(w, old[n])}
    assert changed == {"double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight"}


def test_old_diffusers_and_lycoris_layouts_equal_kohya_names(sd1):
    """Layouts ComfyUI reads beside kohya's: old diffusers attention processors
    (`attn1.processor.to_q_lora.up.weight`, `to_out_lora` for to_out.0), old diffusers text
    encoders (`q_proj.lora_linear_layer.up.weight`) and SimpleTuner's `lycoris_` + diffusers' names:
    each patches the same weights by the same amounts as the kohya-named file."""
    ckpt, root = sd1
    gen = torch.Generator().manual_seed(5)
    unet, tower = ckpt.model.unet, ckpt.clip.towers[0]
    inner = "text_model." if tower.transformer is not tower.model else ""
    attn = "down_blocks.0.attentions.0.transformer_blocks.0.attn1"
    modules = {  # diffusers name -> (weight shape, kohya name)
        f"{attn}.to_q": unet.get_submodule("input_blocks.1.1.transformer_blocks.0.attn1.to_q").weight.shape,
        f"{attn}.to_out.0": unet.get_submodule("input_blocks.1.1.transformer_blocks.0.attn1.to_out.0").weight.shape,
    }
    kohya, processor, lycoris = {}, {}, {}
    for name, (out_ch, in_ch) in modules.items():
        down, up = torch.randn(2, in_ch, generator=gen), torch.randn(out_ch, 2, generator=gen)
        flat = name.replace(".", "_")
        kohya.update({f"lora_unet_{flat}.lora_down.weight": down, f"lora_unet_{flat}.lora_up.weight": up})
        lycoris.update({f"lycoris_{flat}.lora_down.weight": down, f"lycoris_{flat}.lora_up.weight": up})
        old = name.replace(".to_", ".processor.to_").removesuffix(".0")
        processor.update({f"unet.{old}_lora.down.weight": down, f"unet.{old}_lora.up.weight": up})
    text = f"text_model.{TEXT}"
    out_ch, in_ch = tower.model.get_submodule(inner + TEXT).weight.shape
    down, up = torch.randn(2, in_ch, generator=gen), torch.randn(out_ch, 2, generator=gen)
    kohya.update({f"lora_te_{text.replace('.', '_')}.lora_down.weight": down,
                  f"lora_te_{text.replace('.', '_')}.lora_up.weight": up})
    processor.update({f"text_encoder.{text}.lora_linear_layer.down.weight": down,
                      f"text_encoder.{text}.lora_linear_layer.up.weight": up})

    def patched(tensors, name):
        save_file(tensors, str(root / name))
        model, clip = apply_lora(ckpt.model, ckpt.clip, root / name, 0.7, 0.9)
        return (weights(model.unet, model.patches), weights(clip.towers[0].model, clip.towers[0].patches),
                changed_weights(ckpt, model, clip))

    unet_w, text_w, changed = patched(kohya, "kohya_names.safetensors")
    assert len(changed) == 3
    for tensors, name in ((processor, "processor.safetensors"), (lycoris, "lycoris.safetensors")):
        other_unet, other_text, other_changed = patched(tensors, name)
        assert other_changed == (changed if tensors is processor else {c for c in changed if c[0] == "unet"})
        assert all(torch.equal(other_unet[k], unet_w[k]) for k in unet_w), name
        if tensors is processor:
            assert all(torch.equal(other_text[k], text_w[k]) for k in text_w)


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_glora_changes_a_weight_through_itself(tmp_path, strength):
    """LyCORIS GLoRA (a1, a2, b1, b2; alpha / r): a linear W becomes W + s (W a1 a2 + b1 b2); a conv's
    W a1 a2 mixes its input channels first, so it equals the original conv after a 1x1 conv by
    a1 a2; old LyCORIS files (a1 [r, in], a2 [in, r] on a square W) give W + s (b2 b1 + W a2 a1)."""
    gen = torch.Generator().manual_seed(6)
    r = lambda *shape: torch.randn(*shape, generator=gen) * 0.3  # noqa: E731
    f = nn.functional
    lin, conv, square = r(6, 5), r(6, 4, 3, 3), r(5, 5)
    tensors = {"lora_unet_lin.a1.weight": r(5, 2), "lora_unet_lin.a2.weight": r(2, 5),
               "lora_unet_lin.b1.weight": r(6, 2), "lora_unet_lin.b2.weight": r(2, 5),
               "lora_unet_lin.alpha": torch.tensor(3.0),
               "lora_unet_conv.a1.weight": r(4, 2), "lora_unet_conv.a2.weight": r(2, 4),
               "lora_unet_conv.b1.weight": r(6, 2), "lora_unet_conv.b2.weight": r(2, 36),
               "lora_unet_old.a1.weight": r(3, 5), "lora_unet_old.a2.weight": r(5, 3),
               "lora_unet_old.b1.weight": r(3, 5), "lora_unet_old.b2.weight": r(5, 3)}
    save_file(tensors, str(tmp_path / "glora.safetensors"))
    modules = read_lora(tmp_path / "glora.safetensors")
    t = {k.removeprefix("lora_unet_"): v for k, v in tensors.items()}
    s = strength * 3.0 / 2
    torch.testing.assert_close(modules["lora_unet_lin"].patched(lin, strength),
                               lin + s * (lin @ t["lin.a1.weight"] @ t["lin.a2.weight"]
                                          + t["lin.b1.weight"] @ t["lin.b2.weight"]), atol=1e-5, rtol=1e-5)
    x = r(1, 4, 7, 7)
    mix = (t["conv.a1.weight"] @ t["conv.a2.weight"])[:, :, None, None]
    expected = (f.conv2d(x, conv) + strength * f.conv2d(f.conv2d(x, mix), conv)
                + strength * f.conv2d(x, (t["conv.b1.weight"] @ t["conv.b2.weight"]).reshape(6, 4, 3, 3)))
    torch.testing.assert_close(f.conv2d(x, modules["lora_unet_conv"].patched(conv, strength)), expected,
                               atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(modules["lora_unet_old"].patched(square, strength),
                               square + strength * (t["old.b2.weight"] @ t["old.b1.weight"]
                                                    + square @ t["old.a2.weight"] @ t["old.a1.weight"]),
                               atol=1e-5, rtol=1e-5)


def test_lycoris_norm_diffs_patch_norm_weight_and_bias(sd1):
    """LyCORIS's trained norm layers (w_norm, b_norm) are full diffs of the norm's weight and bias."""
    ckpt, root = sd1
    norm = ckpt.model.unet.get_submodule("input_blocks.1.0.in_layers.0")  # diffusers' down_blocks.0.resnets.0.norm1
    w, b = torch.randn(norm.weight.shape), torch.randn(norm.bias.shape)
    save_file({"lora_unet_down_blocks_0_resnets_0_norm1.w_norm": w,
               "lora_unet_down_blocks_0_resnets_0_norm1.b_norm": b}, str(root / "norms.safetensors"))
    model, _ = apply_lora(ckpt.model, None, root / "norms.safetensors", 0.5, 0.0)
    got = weights(model.unet, model.patches)
    torch.testing.assert_close(got["input_blocks.1.0.in_layers.0.weight"], norm.weight + 0.5 * w)
    torch.testing.assert_close(got["input_blocks.1.0.in_layers.0.bias"], norm.bias + 0.5 * b)


def test_stacked_loras_on_a_half_precision_weight_round_once():
    """ComfyUI patches a float32 copy of a bf16/fp16 weight with every stacked LoRA and rounds
    once; rounding after each LoRA would give other numbers."""
    from graphflow.memory import WeightPatch
    from graphflow.models.lora import LoraModule, _change

    gen = torch.Generator().manual_seed(11)
    layer = nn.Linear(64, 48).to(torch.bfloat16)
    mods = [LoraModule({"lora_down.weight": torch.randn(4, 64, generator=gen),
                        "lora_up.weight": torch.randn(48, 4, generator=gen) * 1e-2}) for _ in range(3)]
    patches = tuple(WeightPatch("weight", lambda w, m=m: _change(m, 0.7, w)) for m in mods)
    got = weights(layer, patches)["weight"]
    w32 = layer.weight.float()
    deltas = [0.7 * (m.parts["lora_up.weight"] @ m.parts["lora_down.weight"]) for m in mods]
    assert torch.equal(got, (w32 + deltas[0] + deltas[1] + deltas[2]).to(torch.bfloat16))
    each = layer.weight
    for d in deltas:
        each = (each.float() + d).to(torch.bfloat16)
    assert not torch.equal(got, each)  # the test tells the two apart
    assert got.dtype == torch.bfloat16 and torch.equal(weights(layer, patches[:1])["weight"],
                                                       (w32 + deltas[0]).to(torch.bfloat16))


def test_set_weight_replaces_the_weight_at_any_strength(tmp_path):
    """ComfyUI's `set_weight` patch copies the tensor over the weight; strength does not scale it."""
    new = torch.randn(6, 5, generator=torch.Generator().manual_seed(12))
    save_file({"diffusion_model.x.set_weight": new}, str(tmp_path / "set.safetensors"))
    module = read_lora(tmp_path / "set.safetensors")["lora_unet_x"]
    for strength in (1.0, 0.3):
        assert torch.equal(module.patched(torch.zeros(6, 5), strength), new)


def oft_rotated(w, blocks, alpha):
    """Each block of rows of `w` times Rᵀ, R the Cayley transform of blocks' skew part, by the
    identity Rᵀ = (I + Q)⁻¹ (I - Q) (Q skew), with Q scaled to norm alpha when it is larger."""
    q = blocks - blocks.transpose(1, 2)
    if alpha and q.norm() > alpha:
        q = q * alpha / q.norm()
    eye = torch.eye(blocks.shape[1]).expand_as(q)
    rt = torch.linalg.solve(eye + q, eye - q)
    rows = w.reshape(blocks.shape[0], blocks.shape[1], -1)
    return (rt @ rows).reshape(w.shape)


@pytest.mark.parametrize("shape, alpha", [((12, 5), None), ((12, 5), 0.5), ((8, 3, 3, 3), 0.0), ((8, 3, 3, 3), 1e3)])
def test_oft_rotates_each_block_of_rows(tmp_path, shape, alpha):
    """LyCORIS's OFT (oft_blocks [n, b, b]), read as ComfyUI reads it: an orthogonal Rᵀ per block
    of b output rows (row norms of each block's columns kept), alpha bounding ||Q||, `rescale`
    read but unused, and strength applied twice: W + strength² (Rᵀ W - W)."""
    gen = torch.Generator().manual_seed(21)
    count = 3 if shape[0] == 12 else 2
    blocks = torch.randn(count, shape[0] // count, shape[0] // count, generator=gen) * 0.3
    w = torch.randn(shape, generator=gen)
    tensors = {"lora_unet_x.oft_blocks": blocks, "lora_unet_x.rescale": torch.full((shape[0], 1), 7.0)}
    if alpha is not None:
        tensors["lora_unet_x.alpha"] = torch.tensor(alpha)
    save_file(tensors, str(tmp_path / "oft.safetensors"))
    module = read_lora(tmp_path / "oft.safetensors")["lora_unet_x"]
    rotated = oft_rotated(w, blocks, alpha)
    torch.testing.assert_close(module.patched(w, 1.0), rotated, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(module.patched(w, 0.5), w + 0.25 * (rotated - w), atol=1e-5, rtol=1e-5)
    # a rotation: each block's columns keep their lengths
    cols = lambda t: t.reshape(count, shape[0] // count, -1).norm(dim=1)
    torch.testing.assert_close(cols(module.patched(w, 1.0)), cols(w), atol=1e-4, rtol=1e-4)
    if alpha == 0.5:  # the constraint is active here: without it the result differs
        assert not torch.allclose(rotated, oft_rotated(w, blocks, None), atol=1e-3)


def test_oft_file_patches_a_model_and_refusals(tmp_path, sd1):
    ckpt, _ = sd1
    kohya, name = CONV
    w = ckpt.model.unet.get_submodule(name).weight.detach().clone()
    blocks = torch.randn(w.shape[0] // 4, 4, 4, generator=torch.Generator().manual_seed(22)) * 0.2
    save_file({f"lora_unet_{kohya.replace('.', '_')}.oft_blocks": blocks}, str(tmp_path / "oft.safetensors"))
    model, _ = apply_lora(ckpt.model, None, tmp_path / "oft.safetensors", 1.0, 0.0)
    torch.testing.assert_close(weights(model.unet, model.patches)[name + ".weight"], oft_rotated(w, blocks, None),
                               atol=1e-5, rtol=1e-5)
    save_file({"lora_unet_x.oft_blocks": torch.zeros(2, 3, 4, 4), "lora_unet_x.dora_scale": torch.ones(12, 1)},
              str(tmp_path / "boft.safetensors"))
    with pytest.raises(LoraError, match=r"boft\.safetensors: lora_unet_x: dora_scale is not supported on BOFT modules"):
        read_lora(tmp_path / "boft.safetensors")
    save_file({"lora_unet_x.oft_blocks": torch.zeros(2, 3, 3)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match=r"OFT module's 2 blocks of 3 rows do not fit a weight of shape \(5, 4\)"):
        read_lora(tmp_path / "bad.safetensors")["lora_unet_x"].patched(torch.zeros(5, 4), 1.0)


def test_keys_that_are_no_lora_parts_are_skipped_with_a_warning(tmp_path, sd1):
    """ComfyUI loads a LoRA's modules and only warns ("lora key not loaded") about other keys (a
    pivotal-tuning embedding, unknown extras); strict loading still refuses them."""
    ckpt, _ = sd1
    kohya, name = LINEAR
    w = ckpt.model.unet.get_submodule(name).weight.detach().clone()
    gen = torch.Generator().manual_seed(23)
    down, up = torch.randn(2, w.shape[1], generator=gen), torch.randn(w.shape[0], 2, generator=gen)
    prefix = f"lora_unet_{kohya.replace('.', '_')}"
    save_file({f"{prefix}.lora_down.weight": down, f"{prefix}.lora_up.weight": up,
               "emb_params": torch.zeros(2, 768), f"{prefix}.lokr_t1": torch.zeros(2, 2, 1, 1),
               f"{prefix}.lora_up.bias": torch.zeros(w.shape[0])},
              str(tmp_path / "extra.safetensors"))
    warnings = []
    model, _ = apply_lora(ckpt.model, None, tmp_path / "extra.safetensors", 0.5, 0.0, strict=False, warn=warnings.append)
    torch.testing.assert_close(weights(model.unet, model.patches)[name + ".weight"], w + 0.5 * up @ down)
    [message] = warnings
    assert "3 keys were not loaded (no LoRA parts graphflow reads" in message and "emb_params" in message
    assert f"{prefix}.lokr_t1" in message and f"{prefix}.lora_up.bias" in message
    with pytest.raises(LoraError, match=r"extra\.safetensors: unexpected key"):
        apply_lora(ckpt.model, None, tmp_path / "extra.safetensors", 0.5, 0.0)
    save_file({"emb_params": torch.zeros(2, 768)}, str(tmp_path / "none.safetensors"))
    with pytest.raises(LoraError, match=r"none\.safetensors: unexpected key 'emb_params'; expected a LoRA file"):
        apply_lora(ckpt.model, None, tmp_path / "none.safetensors", 0.5, 0.0, strict=False, warn=warnings.append)


def test_mochi_lora_a_b_without_weight_suffix(tmp_path, sd1):
    """ComfyUI reads `<module>.lora_A` / `.lora_B` (Mochi trainers' keys, no `.weight`) as down / up."""
    ckpt, _ = sd1
    _, name = LINEAR
    w = ckpt.model.unet.get_submodule(name).weight.detach().clone()
    gen = torch.Generator().manual_seed(24)
    down, up = torch.randn(3, w.shape[1], generator=gen), torch.randn(w.shape[0], 3, generator=gen)
    save_file({f"diffusion_model.{name}.lora_A": down, f"diffusion_model.{name}.lora_B": up,
               f"diffusion_model.{name}.alpha": torch.tensor(1.5)}, str(tmp_path / "mochi.safetensors"))
    model, _ = apply_lora(ckpt.model, None, tmp_path / "mochi.safetensors", 0.8, 0.0)
    torch.testing.assert_close(weights(model.unet, model.patches)[name + ".weight"], w + 0.8 * 0.5 * up @ down)


def test_bare_module_paths_read_as_the_prefixed_layouts(tmp_path):
    """ComfyUI reads DiffSynth's FLUX LoRAs (diffusers' names, no prefix) and Mochi's / ACE-Step's
    official ones (the model's own names, no prefix): the same as with `transformer.` /
    `diffusion_model.` in front."""
    from graphflow.testing import write_flow_checkpoint

    ckpt = load_checkpoint(write_flow_checkpoint(tmp_path / "flux.safetensors", "flux_schnell"), device="cpu")
    unet, gen = ckpt.model.unet, torch.Generator().manual_seed(25)
    hidden = unet.get_submodule("single_blocks.0.linear1").weight.shape[1]
    mlp = unet.get_submodule("single_blocks.0.linear1").weight.shape[0] - 3 * hidden
    qkv = unet.get_submodule("double_blocks.0.img_attn.qkv").weight
    tensors = {"single_transformer_blocks.0.proj_mlp.lora_A.weight": torch.randn(2, hidden, generator=gen),
               "single_transformer_blocks.0.proj_mlp.lora_B.weight": torch.randn(mlp, 2, generator=gen),
               "x_embedder.lora_A.weight": torch.randn(2, unet.get_submodule("img_in").weight.shape[1], generator=gen),
               "x_embedder.lora_B.weight": torch.randn(hidden, 2, generator=gen)}
    own = {"double_blocks.0.img_attn.qkv.lora_A": torch.randn(2, qkv.shape[1], generator=gen),
           "double_blocks.0.img_attn.qkv.lora_B": torch.randn(qkv.shape[0], 2, generator=gen)}
    save_file(tensors | own, str(tmp_path / "bare.safetensors"))
    save_file({"transformer." + k: v for k, v in tensors.items()} | {"diffusion_model." + k: v for k, v in own.items()},
              str(tmp_path / "prefixed.safetensors"))
    bare, _ = apply_lora(ckpt.model, None, tmp_path / "bare.safetensors", 0.7, 0.0)
    prefixed, _ = apply_lora(ckpt.model, None, tmp_path / "prefixed.safetensors", 0.7, 0.0)
    got, want, old = weights(bare.unet, bare.patches), weights(prefixed.unet, prefixed.patches), weights(unet)
    assert {n for n in got if not torch.equal(got[n], old[n])} == {
        "single_blocks.0.linear1.weight", "img_in.weight", "double_blocks.0.img_attn.qkv.weight"}
    for n in got:
        assert torch.equal(got[n], want[n]), n


def test_flux_linear1_qkv_patches_the_first_three_hidden_rows_of_linear1(tmp_path):
    """ComfyUI maps `single_blocks.N.linear1_qkv` onto rows 0..3h of linear1: the module sees
    those rows as its weight; the MLP rows stay."""
    from graphflow.testing import write_flow_checkpoint

    ckpt = load_checkpoint(write_flow_checkpoint(tmp_path / "flux.safetensors", "flux_schnell"), device="cpu")
    linear1 = ckpt.model.unet.get_submodule("single_blocks.0.linear1").weight.detach().clone()
    h = linear1.shape[1]
    gen = torch.Generator().manual_seed(26)
    down, up = torch.randn(2, h, generator=gen), torch.randn(3 * h, 2, generator=gen)
    save_file({"diffusion_model.single_blocks.0.linear1_qkv.lora_A.weight": down,
               "diffusion_model.single_blocks.0.linear1_qkv.lora_B.weight": up}, str(tmp_path / "qkv.safetensors"))
    model, _ = apply_lora(ckpt.model, None, tmp_path / "qkv.safetensors", 0.6, 0.0)
    got = weights(model.unet, model.patches)["single_blocks.0.linear1.weight"]
    torch.testing.assert_close(got[:3 * h], linear1[:3 * h] + 0.6 * up @ down)
    assert torch.equal(got[3 * h:], linear1[3 * h:])


@pytest.mark.parametrize("strength", [1.0, 0.4])
def test_boft_is_a_product_of_butterfly_permuted_block_rotations(tmp_path, strength):
    """BOFT (oft_blocks [m, n, b, b]): stage i rotates blocks of b rows after the butterfly
    permutation pairing rows 2^i b/2 apart, as explicit matrices P_iᵀ diag(R_i) P_i; ComfyUI blends
    each R_i with I by strength, multiplies by rescale, and scales the change by strength again."""
    gen = torch.Generator().manual_seed(27)
    stages, count, size, rows = 2, 4, 4, 16
    blocks = torch.randn(stages, count, size, size, generator=gen) * 0.3
    rescale = 1 + 0.1 * torch.randn(rows, 1, generator=gen)
    w = torch.randn(rows, 6, generator=gen)
    save_file({"lora_unet_x.oft_blocks": blocks, "lora_unet_x.rescale": rescale, "lora_unet_x.alpha": torch.tensor(2.0)},
              str(tmp_path / "boft.safetensors"))
    module = read_lora(tmp_path / "boft.safetensors")["lora_unet_x"]
    q = blocks - blocks.transpose(-1, -2)
    q = q * min(1.0, 2.0 / float(q.norm()))
    eye = torch.eye(size)
    total = torch.eye(rows)
    for i in range(stages):
        span = 2 ** i * size // 2
        # position p of the permuted order takes row order[p]: within each group of 2 * span rows,
        # row j and row j + span sit next to each other
        order = [g * 2 * span + half * span + j
                 for g in range(rows // (2 * span)) for j in range(span) for half in (0, 1)]
        perm = torch.eye(rows)[order]
        r = torch.linalg.solve((eye - q[i]).transpose(-1, -2), (eye + q[i]).transpose(-1, -2)).transpose(-1, -2)
        r = strength * r + (1 - strength) * eye
        total = perm.T @ torch.block_diag(*r) @ perm @ total
    expected = w + strength * (rescale * (total @ w) - w)
    torch.testing.assert_close(module.patched(w, strength), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"BOFT module's 4 blocks of 4 rows do not fit a weight of shape \(12, 6\)"):
        module.patched(torch.zeros(12, 6), 1.0)


def test_lora_loader_at_strength_zero_does_not_read_the_file(builtin_registry, tmp_folders):
    """ComfyUI's LoraLoader returns its inputs when both strengths are 0 (LoraLoaderModelOnly when
    strength_model is), before loading the file: a LoRA for another model, switched off, runs."""
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow

    for sub in ("checkpoints", "loras"):
        (tmp_folders.models / sub).mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    write_lora(tmp_folders.models / "loras" / "xl.safetensors", "sdxl")
    executor = Executor(builtin_registry)
    for cls, inputs in (("LoraLoader", {"clip": ["4", 1], "strength_model": 0.0, "strength_clip": 0.0}),
                        ("LoraLoaderModelOnly", {"strength_model": 0.0})):
        graph = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
                 "10": {"class_type": cls, "inputs": {"model": ["4", 0], "lora_name": "xl.safetensors", **inputs}}}
        done = executor.run(parse_workflow(graph, builtin_registry), outputs=["10"])
        assert done.status == "success", (cls, done.problems, done.error)
        assert done.values["10"][0] is done.values["4"][0]
    graph["10"]["inputs"]["strength_model"] = 0.5  # switched on, it is refused
    assert executor.run(parse_workflow(graph, builtin_registry), outputs=["10"]).status != "success"
