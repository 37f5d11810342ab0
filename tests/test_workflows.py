"""Every example workflow runs, on generated random-weight checkpoints in the real layout."""

import json
from pathlib import Path

import pytest
import torch

from graphflow.executor import Executor
from graphflow.testing import write_checkpoint, write_controlnet, write_esrgan, write_lora
from graphflow.workflow import load_workflow

WORKFLOWS = Path(__file__).parent.parent / "workflows"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    (models / "checkpoints").mkdir()
    (models / "loras").mkdir()
    for arch in ("sd1", "sd1_inpaint", "sdxl", "sdxl_refiner"):
        write_checkpoint(models / "checkpoints" / f"tiny_{arch}.safetensors", arch)
    write_lora(models / "loras" / "tiny_sd1_lora.safetensors", "sd1")
    (models / "controlnet").mkdir()
    write_controlnet(models / "controlnet" / "tiny_sd1_controlnet.safetensors", "sd1")
    (models / "upscale_models").mkdir()
    write_esrgan(models / "upscale_models" / "tiny_esrgan_x2.safetensors", scale=2)
    return models


@pytest.fixture
def folders(tmp_folders, checkpoints):
    tmp_folders.models = checkpoints
    return tmp_folders


def workflow(name, **sets):
    wf = load_workflow(WORKFLOWS / f"{name}.json")
    for key, value in sets.items():
        node, _, inp = key.rpartition("__")
        wf.nodes[node].inputs[inp] = value
    return wf


def run(registry, wf, executor=None):
    result = (executor or Executor(registry)).run(wf)
    assert result.ok, result.error or result.problems
    return result


def saved_images(folders, result, node):
    from PIL import Image
    import numpy as np
    return [torch.from_numpy(np.asarray(Image.open(folders.outputs / i["subfolder"] / i["filename"]), dtype=np.float32) / 255)
            for i in result.outputs[node]["images"]]


def test_txt2img_shapes_and_determinism(builtin_registry, folders):
    wf = workflow("txt2img", **{"1__checkpoint": "tiny_sd1.safetensors", "5__steps": 4})
    first = run(builtin_registry, wf).values["6"][0]
    second = run(builtin_registry, wf).values["6"][0]  # a fresh executor: nothing cached
    assert first.shape == (4, 64, 64, 3)
    assert torch.equal(first, second)
    wf.nodes["5"].inputs["seed"] = 2
    assert not torch.equal(run(builtin_registry, wf).values["6"][0], first)


def test_img2img_starts_from_the_image(builtin_registry, folders):
    wf = workflow("img2img", **{"1__checkpoint": "tiny_sd1.safetensors", "6__steps": 4})
    result = run(builtin_registry, wf)
    encoded = result.values["5"][0]["samples"]
    out = result.values["6"][0]["samples"]
    assert out.shape == encoded.shape == (1, 4, 8, 8)
    assert not torch.equal(out, encoded)
    wf.nodes["6"].inputs["denoise"] = 0.0  # nothing to denoise: the image's latent comes back
    assert torch.allclose(run(builtin_registry, wf).values["6"][0]["samples"], encoded, atol=1e-5)


def test_inpaint_keeps_the_unmasked_region(builtin_registry, folders):
    wf = workflow("inpaint", **{"1__checkpoint": "tiny_sd1.safetensors", "10__steps": 4})
    result = run(builtin_registry, wf)
    before = result.values["8"][0]["samples"]
    after = result.values["10"][0]["samples"]
    mask = result.values["7"][0]  # 1 inside the 32x32 square at (16, 16)
    latent_mask = torch.nn.functional.interpolate(mask[:, None], size=before.shape[-2:], mode="nearest")[0, 0]
    assert torch.allclose(after[..., latent_mask == 0], before[..., latent_mask == 0], atol=1e-5)
    assert (after[..., latent_mask == 1] - before[..., latent_mask == 1]).abs().mean() > 0.05


@pytest.mark.parametrize("checkpoint", ["tiny_sd1.safetensors", "tiny_sd1_inpaint.safetensors"])
def test_outpaint_changes_border_and_keeps_centre(builtin_registry, folders, checkpoint):
    wf = workflow("outpaint", **{"1__checkpoint": checkpoint, "7__steps": 4})
    result = run(builtin_registry, wf)
    image = result.values["8"][0]
    assert image.shape == (1, 64, 96, 3)
    encoded = result.values["6"][0]["samples"]
    out = result.values["7"][0]["samples"]
    assert out.shape == (1, 4, 8, 12)
    border = (out[..., 9:] - encoded[..., 9:]).abs().mean()
    assert border > 0.05  # the padded strip (latent columns 8..11, minus the grown mask) is repainted
    if checkpoint == "tiny_sd1.safetensors":  # a noise mask keeps the known latent exactly
        assert torch.allclose(out[..., :6], encoded[..., :6], atol=1e-5)


def test_lora_strength_zero_equals_no_lora(builtin_registry, folders):
    base = workflow("txt2img", **{"1__checkpoint": "tiny_sd1.safetensors", "5__steps": 3, "4__batch_size": 1})
    plain = run(builtin_registry, base).values["6"][0]

    def with_lora(strength):
        wf = base.model_copy(deep=True)
        wf.nodes["20"] = type(wf.nodes["1"])(type="LoadLoRA", inputs={
            "model": ["1", "model"], "clip": ["1", "clip"], "lora_name": "tiny_sd1_lora.safetensors",
            "strength_model": strength, "strength_clip": strength})
        wf.nodes["2"].inputs["clip"] = ["20", "clip"]
        wf.nodes["3"].inputs["clip"] = ["20", "clip"]
        wf.nodes["5"].inputs["model"] = ["20", "model"]
        return run(builtin_registry, wf).values["6"][0]

    assert torch.equal(with_lora(0.0), plain)
    assert not torch.equal(with_lora(1.0), plain)


def test_sdxl_base_then_refiner(builtin_registry, folders):
    ckpts = folders.models / "checkpoints"
    for real, tiny in (("sd_xl_base_1.0", "tiny_sdxl"), ("sd_xl_refiner_1.0", "tiny_sdxl_refiner")):
        if not (ckpts / f"{real}.safetensors").exists():
            (ckpts / f"{real}.safetensors").symlink_to(ckpts / f"{tiny}.safetensors")
    wf = workflow("sdxl_refiner", **{"9__width": 64, "9__height": 64, "10__steps": 5, "11__steps": 5,
                                     "10__end_at_step": 3, "11__start_at_step": 3})
    result = run(builtin_registry, wf)
    assert result.values["12"][0].shape == (1, 64, 64, 3)
    assert result.outputs["13"]["images"][0]["filename"].startswith("sdxl_refined_")


def test_controlnet_runs_and_strength_matters(builtin_registry, folders):
    sets = {"1__checkpoint": "tiny_sd1.safetensors", "8__control_net_name": "tiny_sd1_controlnet.safetensors",
            "5__steps": 3}
    on = run(builtin_registry, workflow("controlnet", **sets)).values["6"][0]
    off = run(builtin_registry, workflow("controlnet", **sets, **{"10__strength": 0.0})).values["6"][0]
    plain = run(builtin_registry, workflow("txt2img", **{"1__checkpoint": "tiny_sd1.safetensors", "5__steps": 3})).values["6"][0]
    assert on.shape == (4, 64, 64, 3)
    assert torch.equal(off, plain)
    assert (on - plain).abs().max() > 1e-3


def test_hires_fix_with_a_brought_upscaler(builtin_registry, folders):
    """hires_fix_upscale.json with a user's ESRGAN file in place of the bundled upscaler."""
    wf = workflow("hires_fix_upscale", **{"1__checkpoint": "tiny_sd1.safetensors", "5__steps": 2, "10__steps": 2,
                                          "7__model_name": "tiny_esrgan_x2.safetensors", "8__tile_size": 32})
    result = run(builtin_registry, wf)
    assert result.values["8"][0].shape == (1, 128, 128, 3)
    assert result.values["11"][0].shape == (1, 128, 128, 3)
    assert result.outputs["12"]["images"][0]["filename"].startswith("hires_fix")


def test_every_workflow_file_is_covered():
    from tests.test_example_workflows import COVERED

    names = {p.stem for p in WORKFLOWS.glob("*.json")} - COVERED
    covered = {"txt2img", "img2img", "inpaint", "outpaint", "sdxl_refiner", "lora",
               "vae_black_hole", "latent_health", "hires_fix_upscale", "flux_dev_comfyui_example",
               "sd35_large_comfyui_example", "controlnet", "flux_kontext_comfyui_example",
               "chroma",  # test_chroma.py
               "cosmos_predict2_t2i",  # tests/test_cosmos.py
               "cosmos1_t2w",  # tests/test_cosmos1.py
               "stable_cascade_comfyui_example",  # tests/test_stable_cascade.py
               "stable_zero123_comfyui_example",  # tests/test_zero123.py
               "svd_img2vid",  # tests/test_svd.py
               "mochi_t2v",  # tests/test_mochi.py
               "lumina2",  # tests/test_lumina2.py
               "hidream_i1_full",  # tests/test_hidream_text.py
               "qwen_image",  # tests/test_qwen_image.py
               "hunyuan_video_t2v",  # tests/test_hunyuan_video.py
               "hunyuan_image", "hunyuan_image_refiner",  # tests/test_hunyuan_image.py
               "aura_flow",  # tests/test_aura_flow.py
               "qwen_image_edit",  # tests/test_qwen_edit.py
               "wan_t2v", "wan_i2v", "wan_flf2v", "wan_fun_control", "wan_vace_ref2v",  # tests/test_wan.py
               "wan22_14b_t2v", "wan22_5b_ti2v",  # tests/test_wan22.py
               "wan22_animate"}  # tests/test_wan_animate.py

    assert names <= covered, f"workflows without a test: {names - covered}"


COMFY_TXT2IMG = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd1.safetensors"},
          "_meta": {"title": "Load Checkpoint"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle on a blue background", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 4}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 4, "cfg": 5.0, "sampler_name": "euler",
                                               "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                               "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
}


def test_comfyui_api_graph_gives_the_same_picture_as_ours(builtin_registry, folders):
    from graphflow.workflow import parse_workflow

    imported = parse_workflow(COMFY_TXT2IMG, builtin_registry)
    assert imported.nodes["4"].type == "LoadCheckpoint" and imported.nodes["4"].inputs == {"checkpoint": "tiny_sd1.safetensors"}
    assert imported.nodes["5"].type == "EmptyLatent" and imported.nodes["6"].type == "CLIPEncode"
    theirs = run(builtin_registry, imported)
    ours = run(builtin_registry, workflow("txt2img", **{"1__checkpoint": "tiny_sd1.safetensors", "5__steps": 4}))
    assert torch.equal(theirs.values["8"][0], ours.values["6"][0])
    assert theirs.outputs["9"]["images"][0]["filename"].startswith("ComfyUI_")


# -- SD3.5 / FLUX: ComfyUI's own example graphs, unchanged but for the image size, on tiny random
# files saved under the names the workflows ask for.

@pytest.fixture(scope="module")
def flow_models(tmp_path_factory):
    from graphflow.testing import write_flow_checkpoint, write_flow_vae, write_text_encoder

    models = tmp_path_factory.mktemp("flow_models")
    for sub in ("checkpoints", "diffusion_models", "text_encoders", "clip", "vae"):
        (models / sub).mkdir()
    write_flow_checkpoint(models / "diffusion_models" / "flux1-dev.safetensors", "flux_dev", components=("model",),
                          prefixed=False)
    write_flow_checkpoint(models / "diffusion_models" / "flux1-dev-kontext_fp8_scaled.safetensors", "flux_dev",
                          components=("model",), prefixed=False, seed=3)
    write_flow_vae(models / "vae" / "ae.safetensors")
    write_flow_checkpoint(models / "checkpoints" / "sd3.5_large.safetensors", "sd35_large",
                          components=("model", "vae"))
    write_text_encoder(models / "text_encoders" / "t5xxl_fp16.safetensors", "t5xxl", seed=4)
    write_text_encoder(models / "clip" / "clip_l.safetensors", "clip_l", seed=5)
    write_text_encoder(models / "text_encoders" / "clip_g.safetensors", "clip_g", seed=6)
    return models


@pytest.fixture
def flow_folders(tmp_folders, flow_models):
    tmp_folders.models = flow_models
    return tmp_folders


def test_flux_dev_comfyui_example(builtin_registry, flow_folders):
    wf = workflow("flux_dev_comfyui_example", **{"27__width": 96, "27__height": 64, "17__steps": 3})
    result = run(builtin_registry, wf)
    image = result.values["8"][0]
    assert image.shape == (1, 64, 96, 3) and float(image.std()) > 0.01
    [saved] = saved_images(flow_folders, result, "9")
    assert (saved - image[0]).abs().max() <= 1 / 255 + 1e-6
    assert result.values["17"][0].shape == (4,)  # 3 steps of the model's own (FLUX) sigmas
    seed2 = workflow("flux_dev_comfyui_example", **{"27__width": 96, "27__height": 64, "17__steps": 3,
                                                   "25__noise_seed": 1})
    assert not torch.equal(run(builtin_registry, seed2).values["8"][0], image)


def test_flux_kontext_comfyui_example(builtin_registry, flow_folders):
    """ComfyUI's Kontext edit graph; the test feeds the loaded picture straight to VAEEncode, as
    FluxKontextImageScale's ~1 megapixel is too slow here (that node is tested in test_flux_kontext)."""
    from PIL import Image
    import numpy as np

    rng = np.random.default_rng(0)
    for name in ("kontext_input.png", "other.png"):
        Image.fromarray(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)).save(flow_folders.inputs / name)
    small = {"124__pixels": ["142", 0], "31__steps": 2}
    result = run(builtin_registry, workflow("flux_kontext_comfyui_example", **small))
    image = result.values["8"][0]
    assert image.shape == (1, 48, 80, 3) and float(image.std()) > 0.01
    assert result.outputs["9"]["images"][0]["filename"].startswith("ComfyUI_")
    [(_, options)] = result.values["177"][0]
    assert [tuple(r.shape) for r in options["reference_latents"]] == [(1, 16, 6, 10)]
    # the reference image steers the edit (the noise and the prompt are the same)
    other = run(builtin_registry, workflow("flux_kontext_comfyui_example", **small, **{"142__image": "other.png"}))
    assert (other.values["8"][0] - image).abs().max() > 1e-3


def test_sd35_large_comfyui_example(builtin_registry, flow_folders):
    wf = workflow("sd35_large_comfyui_example", **{"53__width": 64, "53__height": 64, "3__steps": 3})
    result = run(builtin_registry, wf)
    image = result.values["8"][0]
    assert image.shape == (1, 64, 64, 3) and float(image.std()) > 0.01
    assert result.outputs["9"]["images"][0]["filename"].startswith("ComfyUI_")
    again = run(builtin_registry, workflow("sd35_large_comfyui_example",
                                           **{"53__width": 64, "53__height": 64, "3__steps": 3}))
    assert torch.equal(again.values["8"][0], image)
