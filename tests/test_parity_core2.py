"""Second-look parity of core ComfyUI nodes: the flow sampling nodes (ModelSamplingAuraFlow / SD3 /
Flux on models of another family's multiplier), the text encoder loaders (CLIPLoader,
DualCLIPLoader), CLIPAttentionMultiply on Gemma-2, InstructPixToPixConditioning on SDXL,
CLIPMerge* across families, CLIPTextEncodeSDXL on SD3 and ModelMergeFlux1 on Chroma."""

import pytest
import torch

from flow_fakes import FakeFlowModel, constant_x0
from graphflow.sampling.flow_sampling import FlowDenoiser
from test_nodes_image_mask import call


# --- the network's timestep under another family's sampling node ----------------------------------
# ComfyUI tells the network timestep = sigma x the sampling's multiplier (ModelSamplingDiscreteFlow:
# ModelSamplingSD3 1000, ModelSamplingAuraFlow 1; ModelSamplingFlux: 1). SD3 / Wan take 1000 sigma
# natively, FLUX / Lumina 2 / Mochi take sigma (FLUX scales it by 1000 inside): AuraFlow on SD3 thus
# gives the MM-DiT a timestep 1000 times smaller, ModelSamplingSD3 on FLUX one 1000 times larger.
# graphflow's models take sigma in their family's own scale: what they are told must carry that ratio.

def _told_sigma(model, sampling):
    x = torch.randn(1, 16, 4, 4)
    sigma = torch.tensor([0.75])
    FlowDenoiser(model, sampling)(x, sigma)
    return float(model.calls[-1]["sigma"][0])


@pytest.mark.parametrize("arch, node, widgets, ratio", [
    ("sd3", "ModelSamplingAuraFlow", {"shift": 1.73}, 1 / 1000),
    ("sd3", "ModelSamplingSD3", {"shift": 3.0}, 1.0),
    ("sd3", "ModelSamplingFlux", {"max_shift": 1.15, "base_shift": 0.5, "width": 1024, "height": 1024}, 1 / 1000),
    ("flux", "ModelSamplingSD3", {"shift": 3.0}, 1000.0),
    ("flux", "ModelSamplingAuraFlow", {"shift": 1.0}, 1.0),
    ("flux", "ModelSamplingFlux", {"max_shift": 1.15, "base_shift": 0.5, "width": 1024, "height": 1024}, 1.0),
])
def test_sampling_nodes_tell_the_network_comfyuis_timestep(builtin_registry, arch, node, widgets, ratio):
    model = FakeFlowModel(constant_x0(0.0), arch=arch, guidance_embed=arch == "flux")
    patched = call(builtin_registry, node, model=model, **widgets)
    assert _told_sigma(patched, patched.model_sampling) == pytest.approx(0.75 * ratio, rel=1e-6)
    assert _told_sigma(model, None) == pytest.approx(0.75, rel=1e-6)  # the family's own sampling: as it was


# --- CLIPLoader / DualCLIPLoader: which files each type takes ---------------------------------------

@pytest.fixture
def text_encoder_files(tmp_folders):
    from graphflow.testing import write_text_encoder

    folder = tmp_folders.models / "text_encoders"
    folder.mkdir(parents=True)
    for kind in ("clip_l", "clip_g", "t5xxl"):
        write_text_encoder(folder / f"{kind}.safetensors", kind, dtype=torch.float32)
    return folder


def _run_loader(registry, class_type, inputs):
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow

    result = Executor(registry).run(parse_workflow({"1": {"class_type": class_type, "inputs": inputs}}), outputs=["1"])
    return result


def test_sdxl_type_names_a_t5_file_given_to_it(builtin_registry, text_encoder_files):
    """DualCLIPLoader's sdxl builds CLIP-L + CLIP-G (a T5 file makes no SDXL CLIP): the error names
    the file, what it holds and the types that take it."""
    result = _run_loader(builtin_registry, "DualCLIPLoader", {"clip_name1": "clip_l.safetensors",
                                                              "clip_name2": "t5xxl.safetensors", "type": "sdxl"})
    assert result.status == "error"
    message = result.error["message"]
    assert "t5xxl.safetensors holds a T5-XXL" in message and "flux" in message, message


def test_cliploader_default_type_on_a_t5_file_gives_mochis_encoder(builtin_registry, text_encoder_files):
    """ComfyUI's CLIPLoader builds a T5 v1.1 file under a type naming no T5 (stable_diffusion, its
    default) as Mochi's T5-XXL encoder: the same conditioning as type mochi."""
    default, mochi = (call(builtin_registry, "LoadTextEncoder", clip_name="t5xxl.safetensors", type=t)
                      for t in ("stable_diffusion", "mochi"))
    assert default.arch == "mochi"
    a, b = default.encode("a red fox")[0], mochi.encode("a red fox")[0]
    assert a.shape == b.shape and torch.equal(a, b)


def test_unsupported_types_are_refused_by_name(builtin_registry, text_encoder_files):
    """Types of families graphflow has no model for (omnigen2, ace) stop before running (every
    DualCLIPLoader type has one)."""
    for class_type, inputs in [("CLIPLoader", {"clip_name": "t5xxl.safetensors", "type": "omnigen2"}),
                               ("CLIPLoader", {"clip_name": "t5xxl.safetensors", "type": "ace"})]:
        result = _run_loader(builtin_registry, class_type, inputs)
        assert result.status == "invalid" and result.problems[0].input == "type"
        assert inputs["type"] in result.problems[0].message


# --- CLIPAttentionMultiply on Lumina 2's Gemma-2 -----------------------------------------------------

def test_clip_attention_multiply_scales_gemmas_q_k_v_as_comfyuis_name_match(builtin_registry, tmp_path):
    """ComfyUI scales every CLIP weight ending self_attn.q_proj / k_proj / v_proj / out_proj: Gemma-2's
    q, k and v projections match (its output projection is o_proj: `out` changes nothing)."""
    from safetensors.torch import load_file, save_file

    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_gemma2

    path = write_gemma2(tmp_path / "gemma.safetensors", dtype=torch.float32)
    scaled = load_file(str(path))
    for key in scaled:
        for proj, factor in (("q_proj", 1.3), ("k_proj", 0.7), ("v_proj", 1.2)):
            if key.endswith(f"self_attn.{proj}.weight"):
                scaled[key] = scaled[key] * factor
    save_file(scaled, str(tmp_path / "scaled.safetensors"))
    gemma, by_hand = (load_text_encoders(p, "lumina2", device="cpu", dtype=torch.float32)
                      for p in (path, tmp_path / "scaled.safetensors"))
    before = gemma.encode("a red fox")[0]
    patched = call(builtin_registry, "CLIPAttentionMultiply", clip=gemma, q=1.3, k=0.7, v=1.2, out=0.5)
    torch.testing.assert_close(patched.encode("a red fox")[0], by_hand.encode("a red fox")[0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(before, by_hand.encode("a red fox")[0], atol=1e-3)
    torch.testing.assert_close(gemma.encode("a red fox")[0], before)  # the input CLIP is unchanged
    # the scaled weights are what CLIPSave writes and what a merge starts from
    from graphflow.models.checkpoint_save import text_encoder_states

    saved = text_encoder_states(patched)["gemma2_2b"][0]
    key = next(k for k in saved if k.endswith("layers.0.self_attn.q_proj.weight"))
    torch.testing.assert_close(saved[key], scaled[key])
    merged = call(builtin_registry, "CLIPMergeSimple", clip1=patched, clip2=gemma, ratio=1.0)
    torch.testing.assert_close(merged.encode("a red fox")[0], by_hand.encode("a red fox")[0], rtol=1e-5, atol=1e-5)


# --- InstructPixToPixConditioning on SDXL models ----------------------------------------------------

@pytest.mark.parametrize("edm_v_file", [False, True])
def test_sdxl_ip2p_takes_the_scaled_latent_only_from_an_edm_v_file(edm_v_file):
    """ComfyUI's SDXL_instructpix2pix feeds the image latent raw (diffusers' SDXL InstructPix2Pix) and
    scaled (latent_format.process_in) only for model type V_PREDICTION_EDM, which a file's
    edm_vpred marker sets when it is read (CosXL edit)."""
    from sampling_fakes import FakeModel, prompt

    from graphflow.models.latent_formats import SDXL
    from graphflow.sampling import sample

    model = FakeModel(lambda x, t, c, y: torch.zeros_like(x[:, :4]), latent_format=SDXL, in_channels=8)
    model.arch, model.edm_v_file = "sdxl", edm_v_file
    image = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    positive = [(c, {**o, "concat_latent_image": image}) for c, o in prompt(0.1)]
    sample(model, 0, 1, 1.0, "euler", "normal", positive, prompt(0.0), {"samples": torch.zeros(1, 4, 8, 8)})
    fed = model.unet.calls[0]["x"][:, 4:]
    torch.testing.assert_close(fed, SDXL.process_in(image) if edm_v_file else image)


def test_an_edm_v_marked_sdxl_file_is_read_as_comfyuis_v_prediction_edm_type(tmp_path):
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.testing import write_checkpoint

    marker = {"edm_vpred.sigma_max": torch.tensor(120.0), "edm_vpred.sigma_min": torch.tensor(0.002)}
    plain, marked = (load_checkpoint(write_checkpoint(tmp_path / f"{n}.safetensors", "sdxl",
                                                      extra=extra), device="cpu").model
                     for n, extra in (("plain", None), ("marked", marker)))
    assert not plain.edm_v_file and marked.edm_v_file


# --- CLIPMerge* across families: by encoder name -----------------------------------------------------

def test_clip_merges_merge_the_encoders_both_have_by_name(builtin_registry, tmp_path, caplog):
    """ComfyUI's CLIPMerge* patch clip1's weights with clip2's of the same key (clip_l.*, clip_g.*):
    SDXL's CLIP-L merges into an SD1 CLIP, and an SDXL CLIP keeps its CLIP-G when merged with SD1's."""
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_text_encoder

    files = {name: write_text_encoder(tmp_path / f"{name}.safetensors", name.rstrip("2"), seed=seed,
                                      dtype=torch.float32)
             for seed, name in enumerate(("clip_l", "clip_g", "clip_l2"))}
    sdxl = load_text_encoders([files["clip_l"], files["clip_g"]], "sdxl", device="cpu", dtype=torch.float32)
    sd1 = load_text_encoders([files["clip_l2"]], "stable_diffusion", device="cpu", dtype=torch.float32)
    def params(clip, name):
        return dict(next(t for t in clip.towers if t.name == name).model.named_parameters())

    with caplog.at_level("WARNING"):
        merged = call(builtin_registry, "CLIPMergeSimple", clip1=sd1, clip2=sdxl, ratio=0.3)
    assert "clip2's clip_g unused" in caplog.text
    assert merged.arch == "sd1" and [t.name for t in merged.towers] == ["clip_l"]
    l_sd1, l_xl = params(sd1, "clip_l"), params(sdxl, "clip_l")
    for name, p in params(merged, "clip_l").items():
        torch.testing.assert_close(p, 0.3 * l_sd1[name] + 0.7 * l_xl[name], msg=name)
    back = call(builtin_registry, "CLIPMergeSubtract", clip1=sdxl, clip2=sd1, multiplier=2.0)
    for name, p in params(back, "clip_l").items():
        torch.testing.assert_close(p, 2.0 * (l_xl[name] - l_sd1[name]), msg=name)
    g, g_back = params(sdxl, "clip_g"), params(back, "clip_g")
    assert all(torch.equal(g_back[name], g[name]) for name in g)  # no clip_g in clip2: as it was
    merged.encode("a red fox")  # a working SD1 text encoder


# --- CLIPTextEncodeSDXL on an SD3 text encoder ----------------------------------------------------------

def test_clip_text_encode_sdxl_on_sd3_fills_clip_l_from_text_l_and_the_rest_from_text_g(builtin_registry,
                                                                                         text_encoder_files):
    """ComfyUI's node tokenizes text_g with the CLIP's tokenizer (SD3's: CLIP-L, CLIP-G and T5 parts)
    and puts text_l's CLIP-L part in: CLIPTextEncodeSD3 with clip_l = text_l, clip_g = t5xxl = text_g,
    empty prompts encoded (empty_padding "empty_prompt")."""
    sd3 = call(builtin_registry, "LoadTripleTextEncoders", clip_name1="t5xxl.safetensors",
               clip_name2="clip_l.safetensors", clip_name3="clip_g.safetensors")
    for text_l, text_g in (("a red fox", "a fox in the snow, " * 6), ("", "a cat")):
        got = call(builtin_registry, "CLIPEncodeSDXL", clip=sd3, width=832, height=1216, crop_w=0, crop_h=0,
                   target_width=832, target_height=1216, text_g=text_g, text_l=text_l)
        want = call(builtin_registry, "CLIPTextEncodeSD3", clip=sd3, clip_l=text_l, clip_g=text_g, t5xxl=text_g,
                    empty_padding="empty_prompt")
        assert torch.equal(got[0][0], want[0][0])
        assert torch.equal(got[0][1]["pooled_output"], want[0][1]["pooled_output"])
        assert got[0][1]["width"] == 832 and got[0][1]["target_height"] == 1216


# --- ModelMergeFlux1 on Chroma ----------------------------------------------------------------------

def test_model_merge_flux1_merges_chroma_by_comfyuis_prefixes(builtin_registry, tmp_path):
    """ComfyUI's per-block merges match parameter names with no check of the family: Chroma's
    double_blocks / single_blocks / final_layer take their inputs' ratios, what no input names
    (distilled_guidance_layer.*) the first input's (img_in)."""
    from safetensors.torch import load_file

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.testing import write_chroma

    paths = [write_chroma(tmp_path / f"chroma{s}.safetensors", seed=s, dtype=torch.float32) for s in (0, 3)]
    m1, m2 = (load_diffusion_model(p, device="cpu", dtype=torch.float32) for p in paths)
    files = [{k: v.float() for k, v in load_file(str(p)).items()} for p in paths]
    ratios = {"img_in.": 0.2, "txt_in.": 0.9, "double_blocks.0.": 0.3, "single_blocks.1.": 0.7, "final_layer.": 0.4}
    widgets = {prefix.rstrip(".").replace(".", "_"): value for prefix, value in ratios.items()}
    merged = call(builtin_registry, "ModelMergeFlux1", model1=m1, model2=m2, **widgets).unet.state_dict()

    inputs = dict.fromkeys(["img_in.", "time_in.", "guidance_in", "vector_in.", "txt_in."]
                           + [f"double_blocks.{i}." for i in range(19)] + [f"single_blocks.{i}." for i in range(38)]
                           + ["final_layer."], 1.0) | ratios

    def ratio(name):
        best = max((p for p in inputs if name.startswith(p)), key=len, default=None)
        return 0.2 if best is None else inputs[best]  # under no input: the first input's (img_in)

    seen = set()
    for name, a in files[0].items():
        r = ratio(name)
        seen.add(r)
        torch.testing.assert_close(merged[name], r * a + (1 - r) * files[1][name], msg=name)
    assert {0.2, 0.9, 0.3, 0.7, 0.4, 1.0} <= seen
    assert any(n.startswith("distilled_guidance_layer.") for n in files[0])
