"""FLUX and SD3 LoRAs in the layouts people download, against diffusers + PEFT on identical weights.

Oracle path: our original-layout checkpoint file is read by diffusers' own single-file loader
(as in test_flow_models), the same LoRA file is loaded into that diffusers model with diffusers'
own `load_lora_adapter` (PEFT underneath), and both models' outputs with the LoRA are compared,
fp32. diffusers' layout splits our fused qkv / linear1, so a wrong row block or a missed
scale/shift swap shows up as a mismatch. The kohya FLUX layout goes through diffusers' own
conversion (`_convert_kohya_flux_lora_to_diffusers`) on the diffusers side and straight into our
loader on ours.
"""

import copy
import inspect

import pytest
import torch
from diffusers import FluxTransformer2DModel, SD3Transformer2DModel
from safetensors.torch import save_file
from torch import nn

from graphflow import memory
from graphflow.models.checkpoint import load_diffusion_model
from graphflow.models.lora import LoraError, apply_lora
from graphflow.models.text_encoders import text_transformer
from graphflow.testing import flow_model_config, write_flow_checkpoint
from tests.test_flow_models import (diffusers_config_dir, flux_any_width, flux_diffusers_config,  # noqa: F401
                                    sd3_diffusers_config)

TOL = 1e-4


def random_peft_lora(net: nn.Module, seed: int, rank: int = 2, scale: float = 0.15) -> dict[str, torch.Tensor]:
    """lora_A / lora_B for every Linear (and Conv2d) of a diffusers model, in its own names."""
    g, out = torch.Generator().manual_seed(seed), {}
    for name, module in net.named_modules():
        if isinstance(module, nn.Linear):
            a_shape, b_shape = (rank, module.in_features), (module.out_features, rank)
        elif isinstance(module, nn.Conv2d):
            a_shape, b_shape = (rank, module.in_channels, *module.kernel_size), (module.out_channels, rank, 1, 1)
        else:
            continue
        out[f"transformer.{name}.lora_A.weight"] = torch.randn(a_shape, generator=g) * scale
        out[f"transformer.{name}.lora_B.weight"] = torch.randn(b_shape, generator=g) * scale
    return out


def load_flux(tmp_path, family="flux_dev"):
    path = write_flow_checkpoint(tmp_path / f"{family}.safetensors", family, dtype=torch.float32, seed=3)
    cfg = flow_model_config(family)
    theirs = FluxTransformer2DModel.from_single_file(
        str(path), config=diffusers_config_dir(tmp_path, FluxTransformer2DModel, **flux_diffusers_config(cfg)),
        local_files_only=True, torch_dtype=torch.float32).eval()
    return load_diffusion_model(path, device="cpu", dtype=torch.float32), theirs, cfg


def run_flux(ours, theirs, cfg):
    from graphflow.models.flux import image_ids, pack

    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 16, 4, 6, generator=g)
    sigma, guidance = torch.tensor([0.6]), torch.tensor([3.0])
    context = torch.randn(1, 5, cfg.context_in_dim, generator=g)
    y = torch.randn(1, cfg.vec_in_dim, generator=g)
    with torch.no_grad():
        a = pack(ours(x, sigma, context, y, guidance=guidance))
        b = theirs(hidden_states=pack(x), encoder_hidden_states=context, pooled_projections=y, timestep=sigma,
                   guidance=guidance, img_ids=image_ids(2, 3, 1, "cpu")[0], txt_ids=torch.zeros(5, 3)).sample
    return a, b


def test_flux_lora_in_diffusers_layout_matches_diffusers(tmp_path, flux_any_width):  # noqa: F811
    model, theirs, cfg = load_flux(tmp_path)
    plain, _ = run_flux(model, theirs, cfg)
    lora = random_peft_lora(theirs, seed=5)
    assert "transformer.single_transformer_blocks.0.proj_mlp.lora_A.weight" in lora
    assert "transformer.norm_out.linear.lora_B.weight" in lora
    save_file(lora, str(tmp_path / "flux_peft.safetensors"))
    theirs.load_lora_adapter(dict(lora), prefix="transformer", adapter_name="test")
    patched, _ = apply_lora(model, None, tmp_path / "flux_peft.safetensors", 0.7, 0.0)
    theirs.set_adapters(["test"], weights=[0.7])
    a, b = run_flux(patched, theirs, cfg)
    assert (a - plain).abs().max() > 1e-2  # the LoRA does something
    assert (a - b).abs().max() <= TOL
    unchanged, _ = run_flux(model, theirs, cfg)  # the input model is untouched
    assert torch.equal(unchanged, plain)


def kohya_flux_conversion(cfg):
    """diffusers' kohya FLUX conversion with the single blocks' split read from the config (it
    hard-codes the full model's 3072 / 12288, as its checkpoint conversion does)."""
    import diffusers.loaders.lora_conversion_utils as lcu

    source = inspect.getsource(lcu._convert_kohya_flux_lora_to_diffusers)
    fixed = "dims=[3072, 3072, 3072, 12288]"
    assert source.count(fixed) == 1, "diffusers' kohya FLUX conversion changed: revisit this test's patch"
    h = cfg.hidden_size
    source = source.replace(fixed, f"dims=[{h}, {h}, {h}, {int(h * cfg.mlp_ratio)}]")
    namespace = dict(vars(lcu))
    exec(compile(source, lcu.__file__, "exec"), namespace)
    return namespace["_convert_kohya_flux_lora_to_diffusers"]


def test_kohya_flux_lora_matches_diffusers_conversion(tmp_path, flux_any_width):  # noqa: F811
    model, theirs, cfg = load_flux(tmp_path)
    g, kohya = torch.Generator().manual_seed(6), {}
    # every module diffusers' kohya conversion carries into the transformer (its final_layer keys
    # come out without the `transformer.` prefix and without their alpha, so they are left out)
    for path, module in model.unet.named_modules():
        if isinstance(module, nn.Linear) and path.startswith(("double_blocks", "single_blocks")):
            name = "lora_unet_" + path.replace(".", "_")
            kohya[name + ".lora_down.weight"] = torch.randn(4, module.in_features, generator=g) * 0.15
            kohya[name + ".lora_up.weight"] = torch.randn(module.out_features, 4, generator=g) * 0.15
            kohya[name + ".alpha"] = torch.tensor(2.0)
    assert "lora_unet_single_blocks_1_linear1.lora_down.weight" in kohya
    save_file(kohya, str(tmp_path / "flux_kohya.safetensors"))
    converted = kohya_flux_conversion(cfg)(dict(kohya))
    assert "transformer.single_transformer_blocks.1.proj_mlp.lora_A.weight" in converted
    assert all(k.startswith("transformer.") for k in converted)
    theirs.load_lora_adapter(converted, prefix="transformer", adapter_name="kohya")
    patched, _ = apply_lora(model, None, tmp_path / "flux_kohya.safetensors", 1.0, 0.0)
    plain, _ = run_flux(model, theirs, cfg)
    a, b = run_flux(patched, theirs, cfg)
    assert (a - plain).abs().max() > 1e-2
    assert (a - b).abs().max() <= TOL


@pytest.mark.parametrize("family", ["sd3_medium", "sd35_medium"])
def test_sd3_lora_in_diffusers_and_comfyui_layouts_matches_diffusers(tmp_path, family):
    path = write_flow_checkpoint(tmp_path / f"{family}.safetensors", family, dtype=torch.float32, seed=3)
    cfg = flow_model_config(family)
    model = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    theirs = SD3Transformer2DModel.from_single_file(
        str(path), config=diffusers_config_dir(tmp_path, SD3Transformer2DModel, **sd3_diffusers_config(cfg)),
        local_files_only=True, torch_dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, 6, 4, generator=g)
    sigma = torch.tensor([0.4])
    context = torch.randn(1, 5, cfg.context_dim, generator=g)
    y = torch.randn(1, cfg.adm_in_channels, generator=g)

    def run(ours):
        with torch.no_grad():
            return ours(x, sigma, context, y), theirs(hidden_states=x, encoder_hidden_states=context,
                                                       pooled_projections=y, timestep=sigma * 1000).sample

    plain, _ = run(model)
    lora = random_peft_lora(theirs, seed=7)
    last = cfg.depth - 1
    assert f"transformer.transformer_blocks.{last}.norm1_context.linear.lora_B.weight" in lora  # swapped rows
    save_file(lora, str(tmp_path / "sd3_peft.safetensors"))
    theirs.load_lora_adapter(dict(lora), prefix="transformer", adapter_name="test")
    patched, _ = apply_lora(model, None, tmp_path / "sd3_peft.safetensors", 1.0, 0.0)
    a, b = run(patched)
    assert (a - plain).abs().max() > 1e-2
    assert (a - b).abs().max() <= TOL
    # the same LoRA as PEFT's bare base_model.model. names and SimpleTuner's lycoris_ kohya-style
    # names (both read by ComfyUI for SD3): the same weights
    expected = memory.manager().weights(patched.unet, patched.patches)
    for layout, rename in (("peft", lambda k: "base_model.model." + k[len("transformer."):]),
                           ("peft_default", lambda k: k.replace(".weight", ".default.weight")),
                           ("lycoris", lambda k: "lycoris_" + k[len("transformer."):].rsplit(".lora_", 1)[0]
                            .replace(".", "_") + {"A": ".lora_down.weight", "B": ".lora_up.weight"}[k[-8]])):
        save_file({rename(k): v for k, v in lora.items()}, str(tmp_path / f"sd3_{layout}.safetensors"))
        other, _ = apply_lora(model, None, tmp_path / f"sd3_{layout}.safetensors", 1.0, 0.0)
        got = memory.manager().weights(other.unet, other.patches)
        assert all(torch.equal(got[k], expected[k]) for k in expected), layout

    # ComfyUI-native layout of the same change: diffusion_model. + SAI's names, q/k/v fused
    # (the up matrices stacked over a down matrix of the three ranks side by side)
    native = {}
    for name, value in lora.items():
        module = name[len("transformer."):].rsplit(".lora_", 1)[0]
        if ".attn.to_q." in name + "." or ".attn2.to_q." in name + "." or ".add_q_proj." in name + ".":
            parts = [name.replace(q, c) for q, c in [("to_q", "to_q"), ("to_q", "to_k"), ("to_q", "to_v")]] \
                if "to_q" in name else [name.replace("add_q", f"add_{c}") for c in "qkv"]
            if name.endswith("lora_A.weight"):
                value = torch.cat([lora[p] for p in parts])
            else:
                value = torch.block_diag(*[lora[p] for p in parts])
            target = {"attn.to_q": "x_block.attn.qkv", "attn2.to_q": "x_block.attn2.qkv",
                      "attn.add_q_proj": "context_block.attn.qkv"}
            block, rest = module.split(".", 2)[1], module.split(".", 2)[2]
            native[f"diffusion_model.joint_blocks.{block}.{target[rest]}.{name.rsplit('.', 2)[-2]}.weight"] = value
    assert native
    save_file(native, str(tmp_path / "sd3_native.safetensors"))
    fused, _ = apply_lora(model, None, tmp_path / "sd3_native.safetensors", 1.0, 0.0)
    qkv = ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj")
    sliced_only = {k: v for k, v in lora.items() if k.split(".")[-3] in qkv}
    save_file(sliced_only, str(tmp_path / "sd3_qkv.safetensors"))
    split, _ = apply_lora(model, None, tmp_path / "sd3_qkv.safetensors", 1.0, 0.0)
    fused_weights = memory.manager().weights(fused.unet, fused.patches)  # what each runs with
    split_weights = memory.manager().weights(split.unet, split.patches)
    assert fused.patches and split.patches
    for path, p in fused_weights.items():
        assert torch.allclose(p, split_weights[path], atol=1e-6), path


def test_unmatched_flux_keys_warn_once(tmp_path, flux_any_width):  # noqa: F811
    model, theirs, cfg = load_flux(tmp_path, "flux_schnell")
    lora = {k: v for k, v in random_peft_lora(theirs, seed=8).items() if "transformer_blocks.0.attn.to_" in k}
    for part in ("lora_A", "lora_B"):  # a block this model does not have
        lora[f"transformer.transformer_blocks.7.attn.to_q.{part}.weight"] = lora[
            f"transformer.transformer_blocks.0.attn.to_q.{part}.weight"].clone()
    save_file(lora, str(tmp_path / "partial.safetensors"))
    warnings = []
    patched, _ = apply_lora(model, None, tmp_path / "partial.safetensors", 1.0, 0.0, strict=False, warn=warnings.append)
    assert len(warnings) == 1 and "lora_unet_transformer_blocks_7_attn_to_q" in warnings[0]
    key = "double_blocks.0.img_attn.qkv.weight"
    assert not torch.equal(memory.manager().weights(patched.unet, patched.patches)[key],
                           model.unet.get_parameter(key))
    with pytest.raises(LoraError, match="1 of"):
        apply_lora(model, None, tmp_path / "partial.safetensors", 1.0, 0.0)


def test_flux_clip_l_lora_in_kohya_and_diffusers_layouts(tmp_path):
    from graphflow.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(write_flow_checkpoint(tmp_path / "flux.safetensors", "flux_schnell"), device="cpu")
    tower = ckpt.clip.towers[0]
    q = tower.transformer.get_submodule("encoder.layers.0.self_attn.q_proj")
    g = torch.Generator().manual_seed(2)
    down, up = torch.randn(2, q.in_features, generator=g), torch.randn(q.out_features, 2, generator=g)
    for key in ("lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_{}.weight",
                "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora.{}.weight"):
        save_file({key.format("down"): down, key.format("up"): up}, str(tmp_path / "te.safetensors"))
        _, clip = apply_lora(ckpt.model, ckpt.clip, tmp_path / "te.safetensors", 1.0, 0.5)
        running = memory.manager().weights(clip.towers[0].model, clip.towers[0].patches)  # what it runs with
        new = next(v for k, v in running.items() if k.endswith("encoder.layers.0.self_attn.q_proj.weight"))
        torch.testing.assert_close(new.float(), q.weight.float() + 0.5 * up @ down, atol=2e-3, rtol=1e-3)
    # and it encodes with them: the pooled CLIP-L output is the merged tower's
    merged = copy.deepcopy(tower.model)
    with torch.no_grad():
        layer = text_transformer(merged).get_submodule("encoder.layers.0.self_attn.q_proj")
        layer.weight += (0.5 * up @ down).to(layer.weight.dtype)
    expected = ckpt.clip.with_towers([tower.with_model(merged)]).encode("a red circle")[1]
    torch.testing.assert_close(clip.encode("a red circle")[1], expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(ckpt.clip.encode("a red circle")[1], expected, atol=1e-3)


def test_t5_lora_keys_as_comfyui_numbers_them(tmp_path):
    """OneTrainer-style T5 modules: ComfyUI numbers T5 after the CLIP towers (FLUX: lora_te2_ and
    lora_te3_, SD3: lora_te3_) and also reads text_encoders.t5xxl.transformer. + the module path.
    strength_clip scales them; the T5 network itself is left untouched."""
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.models.flow_text import FlowTextEncoder

    ckpt = load_checkpoint(write_flow_checkpoint(tmp_path / "flux.safetensors", "flux_schnell"), device="cpu")
    clip = ckpt.clip
    assert clip.t5 is not None
    path = "encoder.block.1.layer.0.SelfAttention.q"
    q = clip.t5.model.get_submodule(path)
    g = torch.Generator().manual_seed(4)
    down, up = torch.randn(2, q.in_features, generator=g), torch.randn(q.out_features, 2, generator=g)
    expected = q.weight.float() + 0.5 * (1.5 / 2) * up @ down
    sd3 = FlowTextEncoder("sd3", clip_l=clip.clip_l, clip_g=clip.clip_l, t5=clip.t5)  # any second tower: T5 is 3rd
    for encoder, name in ((clip, "lora_te2_"), (clip, "lora_te3_"), (clip, "text_encoders.t5xxl.transformer."),
                          (sd3, "lora_te3_")):
        module = name + (path.replace(".", "_") if name.startswith("lora_") else path)
        save_file({f"{module}.lora_down.weight": down, f"{module}.lora_up.weight": up,
                   f"{module}.alpha": torch.tensor(1.5)}, str(tmp_path / "t5.safetensors"))
        _, patched = apply_lora(ckpt.model, encoder, tmp_path / "t5.safetensors", 1.0, 0.5)
        running = memory.manager().weights(patched.t5.model, patched.t5.patches)[path + ".weight"]
        torch.testing.assert_close(running.float(), expected, atol=2e-3, rtol=1e-3)
        assert not torch.equal(patched.encode("a fox")[0], encoder.encode("a fox")[0])
    assert torch.equal(q.weight, clip.t5.model.get_submodule(path).weight) and not clip.t5.patches
