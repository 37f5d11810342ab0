"""FLUX.1 Kontext: reference latents in the FLUX transformer and through our ComfyUI-named nodes,
against diffusers' FluxTransformer2DModel and FluxKontextPipeline on the same tiny random files
(the same oracle path as test_flow_models / test_flow_pipelines); the placement rules of
several references, FluxKontextImageScale's sizes against diffusers' list, FluxDisableGuidance,
and models that refuse reference latents."""

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FluxKontextPipeline, FluxTransformer2DModel
from diffusers.pipelines.flux.pipeline_flux_kontext import PREFERRED_KONTEXT_RESOLUTIONS
from PIL import Image
from test_flow_models import diffusers_config_dir, flux_any_width, flux_diffusers_config  # noqa: F401
from test_flow_pipelines import decoded_pipeline_images, diffusers_vae, embeddings, run_graph

from graphflow.models import FLUX
from graphflow.models.checkpoint import load_diffusion_model
from graphflow.models.flux import image_ids, pack, reference_positions
from graphflow.models.mmdit import timestep_embedding
from graphflow.sampling.guidance import prepare_conds
from graphflow.sampling.noise import initial_noise
from graphflow.testing import flow_model_config, write_flow_checkpoint, write_flow_vae, write_text_encoder

TOL = 1e-4
STEPS, SEED = 4, 11  # 4 steps: "simple" picks sigmas of a 10000-entry table, equal to linspace(1, 1/n, n) when n divides it


@pytest.fixture
def dev_file(tmp_path):
    return write_flow_checkpoint(tmp_path / "flux_dev.safetensors", "flux_dev", dtype=torch.float32,
                                 components=("model",), prefixed=False, seed=4)


def run_node(cls, **inputs):
    node = cls.__new__(cls)
    node.__dict__.update(inputs)
    return node.run()


def diffusers_transformer(tmp_path, path):
    cfg = flow_model_config("flux_dev")
    return FluxTransformer2DModel.from_single_file(
        str(path), config=diffusers_config_dir(tmp_path, FluxTransformer2DModel, **flux_diffusers_config(cfg)),
        local_files_only=True, torch_dtype=torch.float32).eval()


def test_transformer_with_a_reference_matches_diffusers(tmp_path, flux_any_width, dev_file):  # noqa: F811
    cfg = flow_model_config("flux_dev")
    ours = load_diffusion_model(dev_file, device="cpu", dtype=torch.float32)
    theirs = diffusers_transformer(tmp_path, dev_file)
    g = torch.Generator().manual_seed(1)
    x, ref = torch.randn(2, 16, 8, 12, generator=g), torch.randn(2, 16, 6, 10, generator=g)  # its own size
    sigma, guidance = torch.tensor([0.3, 0.9]), torch.tensor([2.5, 4.0])
    context, y = torch.randn(2, 6, cfg.context_in_dim, generator=g), torch.randn(2, cfg.vec_in_dim, generator=g)
    with torch.no_grad():
        a = ours(x, sigma, context, y, guidance=guidance, reference_latents=[ref])
        without = ours(x, sigma, context, y, guidance=guidance)
        # FluxKontextPipeline: reference tokens after the image's, ids (1, row, column) of their own grid
        ref_ids = image_ids(3, 5, 1, "cpu")[0].clone()
        ref_ids[:, 0] = 1
        b = theirs(hidden_states=torch.cat([pack(x), pack(ref)], 1), encoder_hidden_states=context,
                   pooled_projections=y, timestep=sigma, guidance=guidance, txt_ids=torch.zeros(6, 3),
                   img_ids=torch.cat([image_ids(4, 6, 1, "cpu")[0], ref_ids])).sample[:, :24]
    assert a.shape == x.shape and (a - without).abs().max() > 1e-2  # the reference matters
    assert (pack(a) - b).abs().max() <= TOL


@pytest.mark.parametrize("method,places", [
    # (index, row, column) of each reference's first patch, by ComfyUI's rules for a 8x12 latent
    # and references of 6x10 and 4x4: "offset" stacks the second below (4 + 6 rows <= 4 + 10 columns)
    ("offset", [(1, 0, 0), (1, 3, 0)]),
    ("index", [(1, 0, 0), (2, 0, 0)]),
    ("uxo", [(0, 4, 6), (0, 7, 11)]),  # past the image (8x12), then past the first reference too
])
def test_two_references_match_diffusers_transformer(tmp_path, flux_any_width, dev_file, method, places):  # noqa: F811
    cfg = flow_model_config("flux_dev")
    ours = load_diffusion_model(dev_file, device="cpu", dtype=torch.float32)
    theirs = diffusers_transformer(tmp_path, dev_file)
    g = torch.Generator().manual_seed(3)
    x, refs = torch.randn(1, 16, 8, 12, generator=g), [torch.randn(1, 16, 6, 10, generator=g),
                                                        torch.randn(1, 16, 4, 4, generator=g)]
    sigma, guidance = torch.tensor([0.6]), torch.tensor([3.0])
    context, y = torch.randn(1, 5, cfg.context_in_dim, generator=g), torch.randn(1, cfg.vec_in_dim, generator=g)
    ids = [image_ids(4, 6, 1, "cpu")[0]] + [image_ids(r.shape[2] // 2, r.shape[3] // 2, 1, "cpu")[0] + torch.tensor(p)
                                            for r, p in zip(refs, places)]
    with torch.no_grad():
        a = ours(x, sigma, context, y, guidance=guidance, reference_latents=refs,
                 reference_method=method)
        b = theirs(hidden_states=torch.cat([pack(x)] + [pack(r) for r in refs], 1), encoder_hidden_states=context,
                   pooled_projections=y, timestep=sigma, guidance=guidance, txt_ids=torch.zeros(5, 3),
                   img_ids=torch.cat(ids)).sample[:, :24]
    assert (pack(a) - b).abs().max() <= TOL


def test_reference_positions_follow_comfyui_rules():
    # offset (latent sizes, ids in 2x2 patches): the first at (0, 0); the next below the ones before
    # (8 + 6 rows <= 12 + 4 columns), the third to their right (10 + 14 rows > 6 + 12 columns)
    assert reference_positions([(8, 12), (6, 4), (10, 6)], (16, 16), "offset") == [
        (1, 0, 0), (1, 4, 0), (1, 0, 6)]
    assert reference_positions([(8, 12), (6, 4)], (16, 16), "index") == [(1, 0, 0), (2, 0, 0)]
    # uxo: diagonally past the (padded) image, then past the references before
    assert reference_positions([(8, 12), (6, 4)], (7, 9), "uxo") == [(0, 4, 5), (0, 8, 11)]
    with pytest.raises(ValueError, match="offset"):
        reference_positions([(8, 8)], (8, 8), "sideways")


def test_methods_and_several_references_change_the_output(dev_file):
    model = load_diffusion_model(dev_file, device="cpu", dtype=torch.float32)
    g = torch.Generator().manual_seed(2)
    x, refs = torch.randn(1, 16, 6, 6, generator=g), [torch.randn(1, 16, 6, 4, generator=g) for _ in range(2)]
    args = (x, torch.tensor([0.5]), torch.randn(1, 4, 192, generator=g), torch.randn(1, 64, generator=g))
    with torch.no_grad():
        outs = {m: model(*args, guidance=torch.tensor([3.5]), reference_latents=refs, reference_method=m)
                for m in ("offset", "index", "uxo")}
        one = model(*args, guidance=torch.tensor([3.5]), reference_latents=refs[:1])
        odd = model(*args, guidance=torch.tensor([3.5]), reference_latents=[torch.randn(1, 16, 5, 7, generator=g)])
    assert odd.shape == x.shape and torch.isfinite(odd).all()
    assert (outs["offset"] - one).abs().max() > 1e-3
    assert (outs["offset"] - outs["index"]).abs().max() > 1e-4 and (outs["index"] - outs["uxo"]).abs().max() > 1e-4


def test_kontext_graph_equals_flux_kontext_pipeline(tmp_folders, tmp_path, flux_any_width):  # noqa: F811
    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir()
    write_flow_checkpoint(m / "diffusion_models" / "kontext.safetensors", "flux_dev", dtype=torch.float32,
                          components=("model",), prefixed=False, seed=4)
    write_flow_vae(m / "vae" / "vae16.safetensors", dtype=torch.float32)
    write_text_encoder(m / "text_encoders" / "t5xxl.safetensors", "t5xxl", seed=1, dtype=torch.float32)
    write_text_encoder(m / "text_encoders" / "clip_l.safetensors", "clip_l", seed=2, dtype=torch.float32)
    width, height, guidance = 64, 48, 2.5
    pixels = np.random.default_rng(0).integers(0, 256, (32, 80, 3), dtype=np.uint8)  # a reference of its own size
    Image.fromarray(pixels).save(tmp_folders.inputs / "photo.png")
    graph = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "kontext.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5xxl.safetensors",
                                                         "clip_name2": "clip_l.safetensors", "type": "flux"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "make the sky green", "clip": ["2", 0]}},
        "4": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        "5": {"class_type": "VAELoader", "inputs": {"vae_name": "vae16.safetensors"}},
        "6": {"class_type": "VAEEncode", "inputs": {"pixels": ["4", 0], "vae": ["5", 0]}},
        "7": {"class_type": "ReferenceLatent", "inputs": {"conditioning": ["3", 0], "latent": ["6", 0]}},
        "8": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["7", 0], "guidance": guidance}},
        # FluxKontextPipeline shifts by the noisy image's token count: ModelSamplingFlux at its size
        "9": {"class_type": "ModelSamplingFlux", "inputs": {"model": ["1", 0], "max_shift": 1.15, "base_shift": 0.5,
                                                            "width": width, "height": height}},
        "10": {"class_type": "EmptySD3LatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
        "11": {"class_type": "BasicGuider", "inputs": {"model": ["9", 0], "conditioning": ["8", 0]}},
        "12": {"class_type": "RandomNoise", "inputs": {"noise_seed": SEED}},
        "13": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "14": {"class_type": "BasicScheduler", "inputs": {"model": ["9", 0], "scheduler": "simple", "steps": STEPS,
                                                          "denoise": 1.0}},
        "15": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["12", 0], "guider": ["11", 0],
                                                                 "sampler": ["13", 0], "sigmas": ["14", 0],
                                                                 "latent_image": ["10", 0]}},
        "16": {"class_type": "VAEDecode", "inputs": {"samples": ["15", 0], "vae": ["5", 0]}},
    }
    result = run_graph(graph, ["16", "3"])
    ours = FLUX.process_in(result.values["15"][0]["samples"])
    cond, pooled = embeddings(result.values["3"][0])

    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                                base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                                max_image_seq_len=4096)
    vae = diffusers_vae(tmp_path, m / "vae" / "vae16.safetensors", FLUX)
    pipe = FluxKontextPipeline(scheduler=scheduler, vae=vae, text_encoder=None, tokenizer=None, text_encoder_2=None,
                               tokenizer_2=None, transformer=diffusers_transformer(tmp_path, m / "diffusion_models" /
                                                                                   "kontext.safetensors"))
    noise = initial_noise(torch.zeros(1, 16, height // 8, width // 8), SEED)
    image = torch.from_numpy(pixels).float().div(255).permute(2, 0, 1)[None]
    packed = pipe(image=image, prompt_embeds=cond, pooled_prompt_embeds=pooled, latents=pack(noise), height=height,
                  width=width, max_area=width * height, _auto_resize=False, num_inference_steps=STEPS,
                  guidance_scale=guidance, output_type="latent").images
    assert packed.shape == pack(ours).shape == (1, 12, 64)
    assert float((packed - pack(noise)).abs().mean()) > 0.1
    assert float((pack(ours) - packed).abs().max()) <= 1e-3
    images = decoded_pipeline_images(pipe, pipe._unpack_latents(packed, height, width, pipe.vae_scale_factor))
    assert float((result.values["16"][0] - images).abs().max()) <= 1e-3


def test_kontext_image_scale_picks_diffusers_resolution():
    from nodes.flow import FluxKontextImageScale, kontext_size

    for w, h in ((300, 200), (200, 300), (640, 640), (1920, 1080), (100, 400), (1000, 999)):
        ratio = w / h
        expected = min((abs(ratio - a / b), a, b) for a, b in PREFERRED_KONTEXT_RESOLUTIONS)[1:]
        assert kontext_size(w, h) == expected
    image = torch.rand(1, 200, 310, 3)
    out = run_node(FluxKontextImageScale, image=image)
    assert out.shape == (1, 832, 1248, 3) and 0 <= float(out.min()) and float(out.max()) <= 1


def test_disable_guidance_skips_the_embedding(dev_file):
    from nodes.flow import FluxDisableGuidance, FluxGuidance

    model = load_diffusion_model(dev_file, device="cpu", dtype=torch.float32)
    cond = [(torch.randn(1, 4, 192), {"pooled_output": torch.randn(1, 64)})]
    disabled = run_node(FluxDisableGuidance, conditioning=run_node(FluxGuidance, conditioning=cond, guidance=4.0))
    assert "guidance" not in cond[0][1] and disabled[0][1]["guidance"] is None
    [c] = prepare_conds(disabled, model, (1, 16, 4, 4), "cpu")
    [default] = prepare_conds(cond, model, (1, 16, 4, 4), "cpu")
    assert c.guidance is None and default.guidance.tolist() == [3.5]  # ComfyUI's default when none is set
    x, sigma = torch.randn(1, 16, 4, 4), torch.tensor([0.7])
    with torch.no_grad():
        unet = model.unet
        img, _, vec, _ = unet.embed(pack(x), image_ids(2, 2, 1, "cpu"), c.context, torch.zeros(1, 4, 3), sigma, c.y)
        img3, _, vec3, _ = unet.embed(pack(x), image_ids(2, 2, 1, "cpu"), c.context, torch.zeros(1, 4, 3), sigma, c.y,
                                      torch.tensor([3.5]))
        expected = unet.time_in(timestep_embedding(sigma * 1000))
    assert torch.allclose(vec, expected + unet.vector_in(c.y)) and not torch.allclose(vec, vec3)


def test_reference_latent_node_appends_and_other_models_refuse(tmp_path, dev_file):
    from nodes.conditioning import ReferenceLatent
    from nodes.flow import FluxKontextMultiReferenceLatentMethod

    cond = [(torch.randn(1, 4, 192), {"pooled_output": torch.randn(1, 64)})]
    a, b = {"samples": torch.randn(1, 16, 4, 6)}, {"samples": torch.randn(1, 16, 6, 4)}
    two = run_node(ReferenceLatent, conditioning=run_node(ReferenceLatent, conditioning=cond, latent=a), latent=b)
    assert [r is s for r, s in zip(two[0][1]["reference_latents"], (a["samples"], b["samples"]))] == [True, True]
    assert "reference_latents" not in cond[0][1] and run_node(ReferenceLatent, conditioning=cond, latent=None) is cond
    video = {"samples": torch.randn(1, 16, 1, 4, 4)}  # ComfyUI appends any latent (a Wan VAE's has frames)
    assert run_node(ReferenceLatent, conditioning=cond, latent=video)[0][1]["reference_latents"][0] is video["samples"]
    uno = run_node(FluxKontextMultiReferenceLatentMethod, conditioning=two, reference_latents_method="uxo/uno")
    assert uno[0][1]["reference_latents_method"] == "uxo"

    model = load_diffusion_model(dev_file, device="cpu", dtype=torch.float32)
    [c] = prepare_conds(uno, model, (2, 16, 4, 4), "cpu")
    assert c.reference_method == "uxo" and [tuple(r.shape) for r in c.references] == [(2, 16, 4, 6), (2, 16, 6, 4)]
    assert torch.allclose(c.references[0][1], FLUX.process_in(a["samples"][0]))  # model space, batch repeated
    sd3 = load_diffusion_model(write_flow_checkpoint(tmp_path / "sd3.safetensors", "sd3_medium",
                                                     components=("model",), prefixed=False), device="cpu")
    [plain] = prepare_conds(cond, sd3, (1, 16, 4, 4), "cpu")  # ignored by a model without the input, as ComfyUI
    [referenced] = prepare_conds(two, sd3, (1, 16, 4, 4), "cpu")
    assert referenced.references == () and torch.equal(referenced.context, plain.context)
    with pytest.raises(ValueError, match=r"ReferenceLatent: reference latent 0 must be \[B, 16, h, w\]"):
        prepare_conds([(cond[0][0], {"reference_latents": [torch.randn(1, 4, 4, 4)]})], model, (1, 16, 4, 4), "cpu")
