"""The example workflows of jobs beyond plain txt2img (FLUX schnell, Fill, Redux, USO, a union
ControlNet, area composition, custom sampling, unCLIP, GLIGEN, a hypernetwork, an embedding, a
model merge, an IP-Adapter, the x4 upscaler, Ultimate SD Upscale, scheduled LoRA hooks, LoRA
training, rebatching, a scaled fp8 FLUX file, AnimateDiff), each run as saved but for sizes and step counts, on tiny random-weight files saved
under the names users' real files have; each test shows the effect of its feature."""

import pytest
import torch

from tests.test_workflows import checkpoints, flow_models, run, saved_images, workflow  # noqa: F401 (fixtures)

COVERED = {"flux_schnell", "flux_fill_inpaint", "flux_redux", "flux_uso", "sdxl_union_controlnet", "area_composition",
           "custom_sampling", "unclip", "gligen", "hypernetwork", "embeddings", "model_merge",
           "ip_adapter_style_transfer", "x4_upscale", "ultimate_sd_upscale", "hooks_scheduled_lora", "lora_training",
           "rebatch", "flux_scaled_fp8", "animatediff"}


@pytest.fixture(scope="module")
def flux_files(flow_models):  # noqa: F811
    from safetensors.torch import save_file

    from graphflow.testing import flow_model_config, write_clip_vision, write_flow_checkpoint, write_redux, write_uso_projector

    for sub in ("clip_vision", "style_models", "model_patches", "loras"):
        (flow_models / sub).mkdir()
    for name, family in (("flux1-schnell", "flux_schnell"), ("flux1-fill-dev", "flux_fill")):
        write_flow_checkpoint(flow_models / "diffusion_models" / f"{name}.safetensors", family, components=("model",),
                              prefixed=False, seed=3)
    # 20 blocks: USO reads SigLIP's block -20
    write_clip_vision(flow_models / "clip_vision" / "sigclip_vision_patch14_384.safetensors", "siglip", num_layers=20)
    write_redux(flow_models / "style_models" / "flux1-redux-dev.safetensors")
    write_uso_projector(flow_models / "model_patches" / "uso-flux1-projector-v1.safetensors")
    # a stand-in for USO's DiT LoRA: rank 2 on two of the tiny FLUX's layers, ComfyUI's key names
    g, width, lora = torch.Generator().manual_seed(9), flow_model_config("flux_dev").hidden_size, {}
    for name, out in (("double_blocks.0.img_attn.qkv", 3 * width), ("single_blocks.0.linear2", width)):
        inner = width if name.endswith("qkv") else width + 4 * width  # linear2 reads attention + MLP
        lora[f"diffusion_model.{name}.lora_A.weight"] = torch.randn(2, inner, generator=g) * 0.1
        lora[f"diffusion_model.{name}.lora_B.weight"] = torch.randn(out, 2, generator=g) * 0.1
    save_file(lora, str(flow_models / "loras" / "uso-flux1-dit-lora-v1.safetensors"))
    return flow_models


@pytest.fixture
def flux_folders(tmp_folders, flux_files):
    tmp_folders.models = flux_files
    return tmp_folders


@pytest.fixture(scope="module")
def sd_files(checkpoints):  # noqa: F811
    """The tiny SD1 / SDXL checkpoints under their real names, a second SD1 (a 'fine-tune'), and
    the add-ons the examples load: xinsir's union ControlNet, SD2.1 unCLIP, GLIGEN, a hypernetwork
    and a textual-inversion embedding."""
    from safetensors.torch import save_file

    from graphflow.testing import (TEXT_TINY, write_checkpoint, write_gligen, write_hypernetwork, write_unclip_checkpoint,
                                   write_union_controlnet)

    ckpts = checkpoints / "checkpoints"
    for real, tiny in (("v1-5-pruned-emaonly", "tiny_sd1"), ("sd_xl_base_1.0", "tiny_sdxl")):
        (ckpts / f"{real}.safetensors").symlink_to(ckpts / f"{tiny}.safetensors")
    write_checkpoint(ckpts / "dreamshaper_8.safetensors", "sd1", seed=7)
    write_unclip_checkpoint(ckpts / "sd21-unclip-h.safetensors")
    write_union_controlnet(checkpoints / "controlnet" / "controlnet-union-sdxl-1.0-promax.safetensors", "sdxl",
                           types=8, seed=2)
    for sub in ("gligen", "hypernetworks", "embeddings"):
        (checkpoints / sub).mkdir()
    write_gligen(checkpoints / "gligen" / "gligen_sd14_textbox_pruned.safetensors", seed=3, alpha=0.8)
    write_hypernetwork(checkpoints / "hypernetworks" / "style_hypernetwork.pt", widths=(64,))
    vectors = torch.randn(2, TEXT_TINY["clip_l"][0], generator=torch.Generator().manual_seed(8))
    save_file({"emb_params": vectors}, str(checkpoints / "embeddings" / "EasyNegative.safetensors"))
    return checkpoints


@pytest.fixture
def sd_folders(tmp_folders, sd_files):
    tmp_folders.models = sd_files
    return tmp_folders


def test_flux_schnell(builtin_registry, flux_folders):
    sets = {"5__width": 96, "5__height": 64}
    result = run(builtin_registry, workflow("flux_schnell", **sets))
    image = result.values["8"][0]
    assert image.shape == (1, 64, 96, 3) and float(image.std()) > 0.01
    [saved] = saved_images(flux_folders, result, "9")
    assert (saved - image[0]).abs().max() <= 1 / 255 + 1e-6
    assert result.outputs["9"]["images"][0]["filename"].startswith("flux_schnell_")
    # cfg 1: one model call a step on the positive prompt, the negative never read
    other_negative = run(builtin_registry, workflow("flux_schnell", **sets, **{"33__text": "ugly, blurry"}))
    assert torch.equal(other_negative.values["8"][0], image)
    other_prompt = run(builtin_registry, workflow("flux_schnell", **sets, **{"6__text": "a red cube"}))
    assert not torch.equal(other_prompt.values["8"][0], image)


def test_flux_fill_inpaint_repaints_the_masked_square(builtin_registry, flux_folders):
    sets = {"40__width": 64, "40__height": 64, "41__width": 64, "41__height": 64, "42__width": 32,
            "42__height": 32, "43__x": 16, "43__y": 16, "3__steps": 3}
    result = run(builtin_registry, workflow("flux_fill_inpaint", **sets))
    assert result.values["8"][0].shape == (1, 64, 64, 3)
    encoded = result.values["38"][2]["samples"]
    out = result.values["3"][0]["samples"]
    assert out.shape == encoded.shape == (1, 16, 8, 8)
    inside = torch.zeros(8, 8, dtype=torch.bool)
    inside[2:6, 2:6] = True  # the 32-pixel square at (16, 16)
    assert torch.allclose(out[..., ~inside], encoded[..., ~inside], atol=1e-5)  # the noise mask keeps the rest
    assert (out[..., inside] - encoded[..., inside]).abs().mean() > 0.05
    assert result.outputs["9"]["images"][0]["filename"].startswith("flux_fill_inpaint_")


def test_fill_concat_equals_diffusers_flux_fill():
    """FLUX Fill's extra channels (the masked-image latent in model space, then the pixel mask
    folded 8x8), packed into tokens, against diffusers' FluxFillPipeline.prepare_mask_latents."""
    from types import SimpleNamespace

    from diffusers import FluxFillPipeline

    from graphflow.models.flux import pack
    from graphflow.models.latent_formats import FLUX
    from graphflow.sampling.pipeline import fill_concat

    g = torch.Generator().manual_seed(0)
    image = torch.randn(1, 16, 4, 6, generator=g)
    mask = (torch.rand(1, 1, 32, 48, generator=g) > 0.5).float()
    concat = fill_concat({"concat_latent_image": image, "concat_mask": mask}, None, FLUX, (2, 16, 4, 6), "cpu")
    pipe = SimpleNamespace(vae=SimpleNamespace(config=SimpleNamespace(shift_factor=FLUX.shift_factor,
                                                                      scaling_factor=FLUX.scale_factor)),
                           vae_scale_factor=8, _pack_latents=FluxFillPipeline._pack_latents)
    mask_tokens, image_tokens = FluxFillPipeline.prepare_mask_latents(pipe, mask, image, 1, 16, 2, 32, 48,
                                                                      torch.float32, "cpu", None)
    theirs = torch.cat([image_tokens, mask_tokens], dim=-1)  # as its __call__ joins them
    assert concat.shape == (2, 80, 4, 6) and theirs.shape == (2, 6, 320)
    torch.testing.assert_close(pack(concat), theirs, atol=1e-6, rtol=0)
    # without InpaintModelConditioning: all to fill over a zero latent, as ComfyUI's Flux.concat_cond
    blank = fill_concat({}, None, FLUX, (1, 16, 2, 3), "cpu")
    assert torch.equal(blank[:, 16:], torch.ones(1, 64, 2, 3))
    assert torch.allclose(blank[:, :16], FLUX.process_in(torch.zeros(1, 16, 2, 3)))


def test_flux_redux_styles_by_the_reference_image(builtin_registry, flux_folders):
    sets = {"27__width": 64, "27__height": 64, "17__steps": 2}
    styled = run(builtin_registry, workflow("flux_redux", **sets)).values["8"][0]
    assert styled.shape == (1, 64, 64, 3)
    unstyled = run(builtin_registry, workflow("flux_redux", **sets, **{"22__conditioning": ["26", 0]})).values["8"][0]
    other = run(builtin_registry, workflow("flux_redux", **sets, **{"40__image": "hint-circle-bottom-right.png"}))
    assert (styled - unstyled).abs().max() > 1e-3
    assert (other.values["8"][0] - styled).abs().max() > 1e-3  # another reference image, another picture


def test_flux_uso_styles_by_the_reference_image(builtin_registry, flux_folders):
    sets = {"27__width": 64, "27__height": 64, "3__steps": 2}
    styled = run(builtin_registry, workflow("flux_uso", **sets)).values["8"][0]
    assert styled.shape == (1, 64, 64, 3)
    unstyled = run(builtin_registry, workflow("flux_uso", **sets, **{"3__model": ["30", 0]})).values["8"][0]
    other = run(builtin_registry, workflow("flux_uso", **sets, **{"40__image": "hint-circle-bottom-right.png"}))
    assert (styled - unstyled).abs().max() > 1e-3
    assert (other.values["8"][0] - styled).abs().max() > 1e-3  # another reference image, another picture


def test_sdxl_union_controlnet_type_and_strength_matter(builtin_registry, sd_folders):
    sets = {"5__width": 64, "5__height": 64, "10__width": 64, "10__height": 64, "11__steps": 2}
    result = run(builtin_registry, workflow("sdxl_union_controlnet", **sets))
    image = result.values["12"][0]
    hint = result.values["6"][0]
    assert image.shape == hint.shape == (1, 64, 64, 3)
    assert set(hint.unique().tolist()) <= {0.0, 1.0} and hint.max() == 1.0  # an edge map of the circle
    plain = run(builtin_registry, workflow("sdxl_union_controlnet", **sets, **{
        "11__positive": ["2", "conditioning"], "11__negative": ["3", "conditioning"]})).values["12"][0]
    off = run(builtin_registry, workflow("sdxl_union_controlnet", **sets, **{"9__strength": 0.0})).values["12"][0]
    depth = run(builtin_registry, workflow("sdxl_union_controlnet", **sets, **{"8__type": "depth"})).values["12"][0]
    assert torch.equal(off, plain)
    assert (image - plain).abs().max() > 1e-3 and (image - depth).abs().max() > 1e-3


def test_area_composition_prompts_act_in_their_areas(builtin_registry, sd_folders):
    """One euler step returns the denoised estimate, where each area's prompt enters only its own
    rectangle: changing the left prompt changes only the left half of the latent."""
    sets = {"10__width": 128, "10__height": 64, "6__width": 64, "6__height": 64, "7__width": 64, "7__height": 64,
            "7__x": 64, "11__steps": 1, "11__sampler_name": "euler"}
    result = run(builtin_registry, workflow("area_composition", **sets))
    latent = result.values["11"][0]["samples"]
    assert latent.shape == (1, 4, 8, 16) and result.values["12"][0].shape == (1, 64, 128, 3)
    left = run(builtin_registry, workflow("area_composition", **sets, **{"3__text": "a green frog"})).values["11"][0]
    diff = (left["samples"] - latent).abs()
    assert diff[..., :8].max() > 1e-3 and diff[..., 8:].max() == 0
    whole_only = run(builtin_registry, workflow("area_composition", **sets, **{
        "11__positive": ["2", "conditioning"]})).values["11"][0]["samples"]
    assert (whole_only - latent).abs().max() > 1e-3
    full = run(builtin_registry, workflow("area_composition", **{k: v for k, v in sets.items() if k[:2] != "11"},
                                          **{"11__steps": 3}))
    assert full.outputs["13"]["images"][0]["filename"].startswith("area_composition_")


def test_custom_sampling_with_align_your_steps(builtin_registry, sd_folders):
    sets = {"4__width": 64, "4__height": 64}
    result = run(builtin_registry, workflow("custom_sampling", **sets))
    # NVIDIA's published 10-step SD1 noise levels (the paper's code), the last one replaced by 0 as ComfyUI does
    published = [14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092,
                 0.9642583904, 0.6523686016, 0.3977456272, 0.1515232662, 0.0]
    assert result.values["8"][0].tolist() == pytest.approx(published, abs=1e-5)
    image = result.values["10"][0]
    assert image.shape == (1, 64, 64, 3)
    again = run(builtin_registry, workflow("custom_sampling", **sets)).values["10"][0]
    assert torch.equal(again, image)
    ode = run(builtin_registry, workflow("custom_sampling", **sets, **{"7__eta": 0.0})).values["10"][0]
    assert (ode - image).abs().max() > 1e-3  # the SDE's injected noise matters
    assert result.outputs["11"]["images"][0]["filename"].startswith("custom_sampling_")


def test_unclip_variations_follow_the_image(builtin_registry, sd_folders):
    sets = {"7__width": 64, "7__height": 64, "8__steps": 2}
    result = run(builtin_registry, workflow("unclip", **sets))
    image = result.values["9"][0]
    assert image.shape == (1, 64, 64, 3)
    off = run(builtin_registry, workflow("unclip", **sets, **{"6__strength": 0.0})).values["9"][0]
    other = run(builtin_registry, workflow("unclip", **sets, **{"2__image": "hint-circle-bottom-right.png"}))
    assert (image - off).abs().max() > 1e-3
    assert (other.values["9"][0] - image).abs().max() > 1e-4  # another image, another variation
    assert torch.equal(run(builtin_registry, workflow("unclip", **sets)).values["9"][0], image)  # seeded augmentation


def test_gligen_boxes_place_their_phrases(builtin_registry, sd_folders):
    sets = {"7__width": 128, "7__height": 64, "5__width": 32, "5__height": 32, "5__x": 8, "5__y": 16,
            "6__width": 32, "6__height": 48, "6__x": 80, "6__y": 8, "8__steps": 2}
    result = run(builtin_registry, workflow("gligen", **sets))
    image = result.values["9"][0]
    assert image.shape == (1, 64, 128, 3)
    no_boxes = run(builtin_registry, workflow("gligen", **sets, **{"8__positive": ["3", "conditioning"]})).values["9"][0]
    moved = run(builtin_registry, workflow("gligen", **{**sets, "5__x": 48})).values["9"][0]
    assert (image - no_boxes).abs().max() > 1e-3 and (moved - image).abs().max() > 1e-3  # where the box is matters


def test_hypernetwork_strength(builtin_registry, sd_folders):
    sets = {"5__width": 64, "5__height": 64, "6__steps": 2}
    applied = run(builtin_registry, workflow("hypernetwork", **sets)).values["7"][0]
    off = run(builtin_registry, workflow("hypernetwork", **sets, **{"2__strength": 0.0})).values["7"][0]
    plain = run(builtin_registry, workflow("hypernetwork", **sets, **{"6__model": ["1", "model"]})).values["7"][0]
    assert applied.shape == (1, 64, 64, 3)
    assert torch.equal(off, plain) and (applied - plain).abs().max() > 1e-3


def test_embedding_in_the_negative_prompt(builtin_registry, sd_folders):
    sets = {"4__width": 64, "4__height": 64, "5__steps": 2}
    result = run(builtin_registry, workflow("embeddings", **sets))
    found = result.values["3"][0][0][0]
    # a name with no file is dropped from the prompt (with a warning), as ComfyUI does
    missing = run(builtin_registry, workflow("embeddings", **sets, **{"3__text": "embedding:NoSuchFile, blurry"}))
    assert found.shape == missing.values["3"][0][0][0].shape
    assert (found - missing.values["3"][0][0][0]).abs().max() > 1e-3  # EasyNegative's vectors were read
    assert (result.values["6"][0] - missing.values["6"][0]).abs().max() > 1e-3


def test_model_merge_ratio_and_saved_checkpoint(builtin_registry, sd_folders):
    sets = {"7__width": 64, "7__height": 64, "8__steps": 2}
    result = run(builtin_registry, workflow("model_merge", **sets))
    merged = result.values["9"][0]
    [saved] = (sd_folders.outputs / "checkpoints").glob("merged_*_.safetensors")

    def alone(ckpt):
        return run(builtin_registry, workflow("model_merge", **sets, **{
            "8__model": [ckpt, "model"], "5__clip": [ckpt, "clip"], "6__clip": [ckpt, "clip"]})).values["9"][0]

    a, b = alone("1"), alone("2")
    ratio_one = run(builtin_registry, workflow("model_merge", **sets, **{"3__ratio": 1.0, "4__ratio": 1.0}))
    assert torch.equal(ratio_one.values["9"][0], a)
    assert (merged - a).abs().max() > 1e-3 and (merged - b).abs().max() > 1e-3
    (sd_folders.models / "checkpoints" / saved.name).symlink_to(saved)
    reloaded = run(builtin_registry, workflow("model_merge", **sets, **{
        "1__checkpoint": saved.name, "3__ratio": 1.0, "4__ratio": 1.0})).values["9"][0]
    assert torch.allclose(reloaded, merged, atol=1e-4)  # the merge, saved and read back


@pytest.fixture(scope="module")
def ip_adapter_files(tmp_path_factory):
    """An SDXL checkpoint with SDXL's block layout (three levels, two ResBlocks each, transformers
    from the second level: the 11 transformers IP-Adapter's weight types name) at a tiny width,
    h94's SDXL IP-Adapter for it and the ViT-H image encoder, under the names
    IPAdapterUnifiedLoader's STANDARD preset looks for."""
    from dataclasses import replace

    from graphflow.testing import unet_config, write_checkpoint, write_clip_vision, write_ip_adapter

    models = tmp_path_factory.mktemp("ip_models")
    for sub in ("checkpoints", "ipadapter", "clip_vision"):
        (models / sub).mkdir()
    unet = replace(unet_config("sdxl"), channel_mult=(1, 2, 2), num_res_blocks=2, transformer_depth=(0, 1, 1),
                   transformer_depth_middle=1)
    write_checkpoint(models / "checkpoints" / "sd_xl_base_1.0.safetensors", "sdxl", unet=unet)
    write_ip_adapter(models / "ipadapter" / "ip-adapter_sdxl_vit-h.safetensors", "sdxl", unet=unet, scale=4.0)
    write_clip_vision(models / "clip_vision" / "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors")
    return models


def test_ip_adapter_style_transfer_acts_on_its_block_only(builtin_registry, tmp_folders, ip_adapter_files):
    tmp_folders.models = ip_adapter_files
    sets = {"5__width": 64, "5__height": 64, "3__steps": 2}
    result = run(builtin_registry, workflow("ip_adapter_style_transfer", **sets))
    image = result.values["8"][0]
    assert image.shape == (1, 64, 64, 3)
    assert result.outputs["9"]["images"][0]["filename"].startswith("ip_adapter_style")
    plain = run(builtin_registry, workflow("ip_adapter_style_transfer", **sets, **{"3__model": ["4", "model"]}))
    off = run(builtin_registry, workflow("ip_adapter_style_transfer", **sets, **{"10__weight": 0.0}))
    linear = run(builtin_registry, workflow("ip_adapter_style_transfer", **sets, **{"10__weight_type": "linear"}))
    assert torch.equal(off.values["8"][0], plain.values["8"][0])  # weight 0: the model without the adapter
    assert (image - plain.values["8"][0]).abs().max() > 0  # the style image acts ...
    assert (linear.values["8"][0] - image).abs().max() > 0  # ... on fewer blocks than with every block
    def patched(model):
        return sorted(n for n, m in model.unet.named_modules() if getattr(m, "extra_attention", None))
    assert patched(result.values["10"][0]) == ["output_blocks.1.1.transformer_blocks.0.attn2"]  # SDXL's style block
    assert len(patched(linear.values["10"][0])) == 11  # every transformer


@pytest.fixture(scope="module")
def upscale_and_lora_files(sd_files):
    """The SD 2 x4 upscaler, a 4x ESRGAN and an SD1 LoRA under the names the examples use."""
    from graphflow.testing import write_esrgan, write_lora, write_x4_upscaler_checkpoint

    write_x4_upscaler_checkpoint(sd_files / "checkpoints" / "x4-upscaler-ema.safetensors")
    write_esrgan(sd_files / "upscale_models" / "4x-UltraSharp.safetensors", scale=4)
    write_lora(sd_files / "loras" / "style_lora.safetensors", "sd1", scale=0.5)
    return sd_files


@pytest.fixture
def upscale_folders(tmp_folders, upscale_and_lora_files):
    tmp_folders.models = upscale_and_lora_files
    return tmp_folders


def saved_sizes(folders, result, node):
    from PIL import Image

    return [Image.open(folders.outputs / i["subfolder"] / i["filename"]).size for i in result.outputs[node]["images"]]


def test_x4_upscale_makes_the_picture_four_times_larger(builtin_registry, upscale_folders):
    sets = {"6__steps": 2}
    result = run(builtin_registry, workflow("x4_upscale", **sets))
    image = result.values["7"][0]
    assert image.shape == (1, 256, 256, 3) and image.isfinite().all()  # the bundled 64x64 picture, 4x
    assert saved_sizes(upscale_folders, result, "8") == [(256, 256)]
    assert result.outputs["8"]["images"][0]["filename"].startswith("x4_upscale_")
    other = run(builtin_registry, workflow("x4_upscale", **sets, **{"2__image": "hint-circle-bottom-right.png"}))
    assert (other.values["7"][0] - image).abs().max() > 1e-4  # the low-res picture conditions the model


def test_ultimate_sd_upscale_redraws_the_upscaled_picture_in_tiles(builtin_registry, upscale_folders):
    sets = {"6__steps": 2, "6__tile_width": 64, "6__tile_height": 64, "6__tile_padding": 16}
    result = run(builtin_registry, workflow("ultimate_sd_upscale", **sets))
    image = result.values["6"][0]
    assert image.shape == (1, 128, 128, 3)  # upscale_by 2 of the bundled 64x64 picture
    assert saved_sizes(upscale_folders, result, "7") == [(128, 128)]
    untouched = run(builtin_registry, workflow("ultimate_sd_upscale", **sets, **{"6__denoise": 0.0})).values["6"][0]
    assert untouched.shape == image.shape and (image - untouched).abs().max() > 1e-3  # the tiles were redrawn


def test_hooks_scheduled_lora_acts_through_the_positive_prompt(builtin_registry, upscale_folders):
    sets = {"8__width": 64, "8__height": 64, "9__steps": 3}
    result = run(builtin_registry, workflow("hooks_scheduled_lora", **sets))
    image = result.values["10"][0]
    assert image.shape == (1, 64, 64, 3)
    assert saved_sizes(upscale_folders, result, "11") == [(64, 64)]
    assert result.values["6"][0][0][1]["hooks"] is result.values["4"][0]  # the positive prompt carries the hooks
    assert "hooks" not in result.values["7"][0][0][1]  # the negative one does not
    plain = run(builtin_registry, workflow("hooks_scheduled_lora", **sets, **{"9__positive": ["5", 0]}))
    assert (plain.values["10"][0] - image).abs().max() > 1e-3
    held = run(builtin_registry, workflow("hooks_scheduled_lora", **sets, **{"3__strength_end": 1.0}))
    assert (held.values["10"][0] - image).abs().max() > 1e-4  # the keyframes' fade matters


def test_lora_training_saves_the_lora_and_samples_with_it(builtin_registry, upscale_folders):
    from PIL import Image
    from safetensors.torch import load_file

    folder = upscale_folders.inputs / "training_images"
    folder.mkdir()
    for i, colour in enumerate(((200, 40, 40), (40, 40, 200))):
        Image.new("RGB", (32, 32), colour).save(folder / f"{i}.png")
    sets = {"5__steps": 2, "10__width": 32, "10__height": 32, "11__steps": 2}
    result = run(builtin_registry, workflow("lora_training", **sets))
    [saved] = (upscale_folders.outputs / "loras").glob("*.safetensors")
    assert saved.name == "ComfyUI_trained_lora_2_steps_00001_.safetensors"
    assert any(v.any() for k, v in load_file(str(saved)).items() if k.endswith(".lora_down.weight"))
    assert len(list(upscale_folders.temp.glob("loss_graph_*.png"))) == 1  # a preview, as ComfyUI's
    assert saved_sizes(upscale_folders, result, "13") == [(32, 32)]
    assert result.values["12"][0].shape == (1, 32, 32, 3)


def test_rebatch_samples_four_pictures_two_at_a_time(builtin_registry, upscale_folders):
    sets = {"4__width": 64, "4__height": 64, "6__steps": 2}
    result = run(builtin_registry, workflow("rebatch", **sets))
    assert [b["samples"].shape for b in result.values["5"][0]] == [(2, 4, 8, 8)] * 2
    assert saved_sizes(upscale_folders, result, "8") == [(64, 64)] * 4
    rebatched = torch.cat(result.values["7"][0])
    whole = run(builtin_registry, workflow("rebatch", **sets, **{"6__latent_image": ["4", 0]})).values["7"][0]
    assert rebatched.shape == whole.shape == (4, 64, 64, 3)
    # each latent keeps its batch index, so it gets the same noise as in the batch of 4
    torch.testing.assert_close(rebatched, whole, atol=1e-4, rtol=0)
    assert (rebatched[0] - rebatched[2]).abs().max() > 1e-3


def test_flux_scaled_fp8_keeps_fp8_weights_and_draws_the_dequantised_picture(builtin_registry, flux_folders, tmp_path):
    from graphflow.testing import write_flow_checkpoint, write_scaled_fp8, write_text_encoder

    m = flux_folders.models
    source = write_flow_checkpoint(tmp_path / "flux.safetensors", "flux_schnell", components=("model",), prefixed=False,
                                   dtype=torch.float32, seed=5)
    write_scaled_fp8(source, m / "diffusion_models" / "flux1-schnell-fp8-scaled.safetensors", ("",),
                     dequantised=m / "diffusion_models" / "flux1-schnell-dequantised.safetensors")
    t5 = write_text_encoder(tmp_path / "t5.safetensors", "t5xxl", dtype=torch.float32, seed=4)
    write_scaled_fp8(t5, m / "text_encoders" / "t5xxl_fp8_e4m3fn_scaled.safetensors", ("",),
                     dequantised=m / "text_encoders" / "t5xxl_dequantised.safetensors")
    sets = {"5__width": 64, "5__height": 64, "3__steps": 2}
    result = run(builtin_registry, workflow("flux_scaled_fp8", **sets))
    assert result.values["12"][0].unet.double_blocks[0].img_attn.qkv.weight.dtype == torch.float8_e4m3fn
    image = result.values["8"][0].float()
    assert image.shape == (1, 64, 64, 3) and float(image.std()) > 0.01
    assert saved_images(flux_folders, result, "9")[0].shape == (64, 64, 3)
    dequantised = run(builtin_registry, workflow("flux_scaled_fp8", **sets, **{
        "12__unet_name": "flux1-schnell-dequantised.safetensors",
        "11__clip_name1": "t5xxl_dequantised.safetensors"})).values["8"][0].float()
    assert float((image - dequantised).abs().mean()) < 0.02  # as tests/test_scaled_fp8.py allows for bf16 CPUs


def test_animatediff_moves_the_frames_together(builtin_registry, sd_folders):
    """AnimateDiff-Evolved's Gen2 graph on the tiny SD1 checkpoint and a random v2 motion module saved
    as guoyww's pickled mm_sd_v15_v2.ckpt; 6 frames in windows of 4."""
    from graphflow.testing import motion_module_state, unet_config

    folder = sd_folders.models / "animatediff_models"
    folder.mkdir(exist_ok=True)
    torch.save(motion_module_state(unet_config("sd1"), "v2", seed=4), folder / "mm_sd_v15_v2.ckpt")
    sets = {"8__width": 64, "8__height": 64, "8__batch_size": 6, "9__steps": 2, "4__context_length": 4,
            "4__context_overlap": 1}
    result = run(builtin_registry, workflow("animatediff", **sets))
    frames = result.values["10"][0]
    assert frames.shape == (6, 64, 64, 3)
    assert result.outputs["11"]["images"][0]["filename"].startswith("animatediff")
    # the same schedule (autoselect's for this module) without the motion module: other frames
    without = workflow("animatediff", **sets, **{"5__beta_schedule": "sqrt_linear (AnimateDiff)"})
    del without.nodes["5"].inputs["m_models"]
    still = run(builtin_registry, without).values["10"][0]
    same = run(builtin_registry, workflow("animatediff", **sets, **{"5__beta_schedule": "sqrt_linear (AnimateDiff)"}))
    assert torch.equal(same.values["10"][0], frames)
    assert (frames - still).abs().max() > 1e-3
