"""Lumina Image 2.0 (and Neta Lumina): Gemma-2 2B against transformers' Gemma2Model on the same
tiny random weights (ComfyUI's variant: no soft-capping, no sliding window, the second-to-last
layer's state unnormed); the NextDiT transformer against diffusers' Lumina2Transformer2DModel, its
weights converted by diffusers' own `convert_lumina2_to_diffusers` (which hard-codes the full
model's q / k / v widths when it splits qkv: the test splits tiny ones at the names it gives).
"""

import json

import pytest
import torch
from diffusers import Lumina2Transformer2DModel
from diffusers.loaders.single_file_utils import convert_lumina2_to_diffusers
from transformers import Gemma2Config as HFGemma2Config
from transformers import Gemma2Model

from graphflow.models.gemma2 import gemma2_config_from_state_dict, gemma2_from_state_dict, gemma2_prefix
from graphflow.models.lumina2 import Lumina2, lumina2_config_from_state_dict
from graphflow.testing import gemma2_config, gemma2_state, lumina2_config, lumina2_state

TOL = 1e-4


def transformers_gemma2(state):
    """transformers' Gemma2Model with the tiny config, set as ComfyUI runs Gemma-2 (attention scaled
    by 1/sqrt(256), no logit soft-capping, no sliding window at these lengths)."""
    cfg = gemma2_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()})
    hf = HFGemma2Config(vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
                        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                        num_key_value_heads=cfg.num_kv_heads, head_dim=cfg.head_dim, query_pre_attn_scalar=cfg.head_dim,
                        attn_logit_softcapping=None, final_logit_softcapping=None, sliding_window=4096,
                        rms_norm_eps=cfg.eps, rope_theta=cfg.rope_theta, attn_implementation="eager")
    model = Gemma2Model(hf).eval()
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
    return model


def test_gemma2_config_from_shapes():
    state = gemma2_state()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert gemma2_config_from_state_dict(shapes) == gemma2_config(vocab_size=_pieces().get_piece_size())
    assert gemma2_prefix(state) == ""
    assert gemma2_prefix({"text_encoders.gemma2_2b.transformer." + k: v for k, v in state.items()}) == \
        "text_encoders.gemma2_2b.transformer."


@pytest.mark.parametrize("prefix", ["", "text_encoders.gemma2_2b.transformer."])
def test_gemma2_matches_transformers(prefix):
    state = gemma2_state()
    ours = gemma2_from_state_dict({prefix + k: v for k, v in state.items()}
                                  | {prefix + "spiece_model": torch.zeros(3, dtype=torch.uint8)})
    theirs = transformers_gemma2(state)
    vocab = gemma2_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()}).vocab_size
    ids = torch.randint(0, vocab, (2, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0  # the second prompt padded: its pads are masked as keys
    with torch.no_grad():
        hidden = theirs(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        penultimate, last = ours(ids, mask), ours(ids, mask, layer=None)
    keep = mask.bool()
    assert hidden[-2].abs().max() > 1  # not vanishing
    assert (penultimate - hidden[-2])[keep].abs().max() < TOL  # ComfyUI's layer_idx -2, no final norm
    assert (last - hidden[-1])[keep].abs().max() < TOL
    assert not torch.allclose(penultimate, last)
    with torch.no_grad():  # a prompt alone equals its row in the padded batch
        assert (ours(ids[1:, :6]) - penultimate[1:, :6]).abs().max() < TOL


def test_gemma2_rejects_other_files():
    with pytest.raises(ValueError, match="no Gemma-2 weights"):
        gemma2_from_state_dict({"encoder.block.0.layer.0.SelfAttention.q.weight": torch.zeros(4, 4)})


# -- the NextDiT transformer -------------------------------------------------------------------

def diffusers_lumina2(state) -> Lumina2Transformer2DModel:
    """diffusers' transformer on the same weights, converted by diffusers' single-file converter."""
    cfg = lumina2_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()})
    assert cfg.ffn_dim == 4 * cfg.dim  # diffusers' width: 4 x dim rounded up to multiple_of (16 here)
    converted = {}
    for key, tensor in state.items():
        if ".qkv." in key:  # the converter splits at 2304 / 768 / 768 rows: take its names, split tiny
            names = list(convert_lumina2_to_diffusers({key: torch.zeros(2304 + 768 + 768, 1)}))
            hd = cfg.head_dim
            rows = [cfg.num_heads * hd, cfg.num_kv_heads * hd, cfg.num_kv_heads * hd]
            converted.update(zip(names, tensor.split(rows)))
        else:
            converted.update(convert_lumina2_to_diffusers({key: tensor}))
    theirs = Lumina2Transformer2DModel(
        patch_size=cfg.patch_size, hidden_size=cfg.dim, num_layers=cfg.num_layers,
        num_refiner_layers=cfg.num_refiner_layers,
        num_attention_heads=cfg.num_heads, num_kv_heads=cfg.num_kv_heads, multiple_of=16,
        norm_eps=cfg.norm_eps, axes_dim_rope=cfg.axes_dims, cap_feat_dim=cfg.cap_feat_dim)
    theirs.load_state_dict(converted, strict=True)
    return theirs.eval()


def diffusers_velocity(theirs, x, sigma, context, mask=None):
    """As diffusers' Lumina2Pipeline calls it: timestep 1 - sigma, the output negated."""
    mask = torch.ones(context.shape[:2], dtype=torch.bool) if mask is None else mask.bool()
    with torch.no_grad():
        return -theirs(hidden_states=x, timestep=1 - sigma, encoder_hidden_states=context,
                       encoder_attention_mask=mask, return_dict=False)[0]


def test_lumina2_config_from_shapes():
    state = lumina2_state()
    assert lumina2_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()}) == lumina2_config()
    assert "norm_final.weight" in state  # in the original files, unused


@pytest.fixture(scope="module")
def lumina_pair():
    state = lumina2_state()
    ours = Lumina2(lumina2_config())
    ours.load_state_dict(state)
    return ours.eval(), diffusers_lumina2(state)


@pytest.mark.parametrize("size", [(6, 8), (4, 4)])
def test_lumina2_matches_diffusers(lumina_pair, size):
    ours, theirs = lumina_pair
    g = torch.Generator().manual_seed(1)
    x, context = torch.randn(2, 16, *size, generator=g), torch.randn(2, 5, 64, generator=g)
    sigma = torch.tensor([0.7, 0.3])
    with torch.no_grad():
        out = ours(x, sigma, context)
    ref = diffusers_velocity(theirs, x, sigma, context)
    assert ref.abs().max() > 0.5
    assert (out - ref).abs().max() < TOL


def test_lumina2_text_mask_matches_diffusers(lumina_pair):
    """A padded caption: diffusers places the image after each sample's real tokens; ours cuts
    the caption to them."""
    ours, theirs = lumina_pair
    g = torch.Generator().manual_seed(2)
    x, context = torch.randn(2, 16, 4, 6, generator=g), torch.randn(2, 7, 64, generator=g)
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[0, 4:] = 0
    sigma = torch.tensor([0.5, 0.5])
    with torch.no_grad():
        out = ours(x, sigma, context, text_mask=mask)
        alone = ours(x[:1], sigma[:1], context[:1, :4])
    ref = diffusers_velocity(theirs, x, sigma, context, mask)
    assert (out - ref).abs().max() < TOL
    assert (out[:1] - alone).abs().max() < TOL


def test_lumina2_odd_latent_is_padded_and_cropped(lumina_pair):
    ours, _ = lumina_pair
    x = torch.randn(1, 16, 5, 7, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = ours(x, torch.tensor([0.4]), torch.randn(1, 3, 64))
    assert out.shape == x.shape and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="16-channel"):
        ours(torch.zeros(1, 4, 4, 4), torch.tensor([0.4]), torch.zeros(1, 3, 64))
    with pytest.raises(ValueError, match="type lumina2"):
        ours(torch.zeros(1, 16, 4, 4), torch.tensor([0.4]), torch.zeros(1, 3, 4096))


# -- the lumina2 CLIP: Gemma-2 with its tokenizer inside the file ---------------------------------

def _pieces():
    from sentencepiece import SentencePieceProcessor

    from graphflow.testing import spiece_model

    return SentencePieceProcessor(model_proto=spiece_model(gemma=True))


def test_cliploader_lumina2_encodes_as_comfyui(tmp_path):
    """<bos> + the prompt's pieces, no padding; Gemma's second-to-last layer unnormed (transformers'
    hidden_states[-2]); no pooled vector."""
    from graphflow.models.gemma2 import GemmaTextEncoder
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_gemma2

    from graphflow.models.checkpoint_report import inspect_report

    path = write_gemma2(tmp_path / "gemma_2_2b_fp16.safetensors", dtype=torch.float32)
    assert "Gemma-2 2B text encoder (Lumina 2: type lumina2; its tokenizer inside)" in inspect_report(path)
    clip = load_text_encoders(path, "lumina2", device="cpu", dtype=torch.float32)
    assert isinstance(clip, GemmaTextEncoder) and clip.output_dim == 64
    prompt = "a red fox runs"
    context, pooled = clip.encode(prompt)
    ids = [2] + _pieces().encode(prompt)
    assert pooled is None and context.shape == (1, len(ids), 64)
    theirs = transformers_gemma2(gemma2_state())
    with torch.no_grad():
        want = theirs(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
    assert (context - want[-2]).abs().max() < TOL
    last, _ = clip.with_clip_skip(-1).encode(prompt)  # CLIPSetLastLayer -1: the last layer, still unnormed
    assert (last - want[-1]).abs().max() > 1e-3  # not the normed output
    state = gemma2_state()  # the last layer's raw output: hidden_states[-2] of the model with a layer more
    state |= {k.replace("layers.0.", "layers.3."): v for k, v in state.items() if ".layers.0." in k}
    with torch.no_grad():
        longer = transformers_gemma2(state)(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
    assert len(longer) == 5 and (last - longer[-2]).abs().max() < TOL


def test_lumina2_prompt_weights_pull_towards_empty(tmp_path):
    """(word:w): empty + (z - empty) * w, empty the encoding of <bos> and <pad>s, the <pad>s masked
    as keys (ComfyUI's mask ends at the first <pad>), checked against transformers."""
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_gemma2

    clip = load_text_encoders(write_gemma2(tmp_path / "g.safetensors", dtype=torch.float32), "lumina2",
                              device="cpu", dtype=torch.float32)
    plain, _ = clip.encode("a red fox")
    weighted, _ = clip.encode("a (red:1.5) fox")
    ids, weights = clip.tokenize("a (red:1.5) fox")
    assert ids == clip.tokenize("a red fox")[0] and 1.5 in weights
    theirs = transformers_gemma2(gemma2_state())
    with torch.no_grad():
        empty = theirs(input_ids=torch.tensor([[2] + [0] * (len(ids) - 1)]), output_hidden_states=True,
                       attention_mask=torch.tensor([[1] + [0] * (len(ids) - 1)])).hidden_states[-2]
    unmasked = clip.run([[2] + [0] * (len(ids) - 1)])
    assert (empty - unmasked).abs().max() > 1e-3  # the mask matters
    w = torch.tensor(weights)[None, :, None]
    assert torch.allclose(weighted, torch.where(w != 1, (plain - empty) * w + empty, plain), atol=TOL)
    assert not torch.allclose(weighted, plain)


def test_cliploader_lumina2_refuses_other_files(tmp_path):
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.models.weight_files import CheckpointError
    from graphflow.testing import write_gemma2, write_umt5

    with pytest.raises(CheckpointError, match="no spiece_model"):
        load_text_encoders(write_gemma2(tmp_path / "g.safetensors", tokenizer=False), "lumina2", device="cpu")
    with pytest.raises(CheckpointError, match="Gemma-2 2B file alone"):
        load_text_encoders(write_umt5(tmp_path / "u.safetensors"), "lumina2", device="cpu")
    with pytest.raises(CheckpointError, match="Wan needs a UMT5-XXL"):
        load_text_encoders(write_gemma2(tmp_path / "g2.safetensors"), "wan", device="cpu")


# -- a ComfyUI graph end to end ----------------------------------------------------------------

@pytest.fixture
def lumina_models(tmp_folders):
    from graphflow.testing import write_flow_vae, write_gemma2, write_lumina2

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir()
    write_lumina2(m / "diffusion_models" / "lumina_2_model_bf16.safetensors", dtype=torch.float32, seed=5)
    write_gemma2(m / "text_encoders" / "gemma_2_2b_fp16.safetensors", dtype=torch.float32)
    write_flow_vae(m / "vae" / "ae.safetensors", dtype=torch.float32)
    return tmp_folders


def lumina_graph(cfg_scale: float, steps: int) -> dict:
    """ComfyUI's Lumina 2 workflow in API format (shrunk): diffusion model, Gemma and FLUX VAE apart."""
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "lumina_2_model_bf16.safetensors",
                                                     "weight_dtype": "default"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "gemma_2_2b_fp16.safetensors", "type": "lumina2",
                                                     "device": "default"}},
        "3": {"class_type": "CLIPTextEncodeLumina2", "inputs": {"system_prompt": "superior",
                                                                "user_prompt": "a red fox in the snow",
                                                                "clip": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["2", 0]}},
        "5": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 96, "height": 64, "batch_size": 1}},
        "6": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["3", 0], "negative": ["4", 0],
                                                   "latent_image": ["5", 0], "seed": 11, "steps": steps,
                                                   "cfg": cfg_scale, "sampler_name": "euler", "scheduler": "simple",
                                                   "denoise": 1.0}},
        "7": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["7", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "lumina"}},
    }


def test_lumina2_comfyui_graph_runs_and_matches_diffusers(lumina_models):
    """Two euler CFG steps (shift 6: sigmas 1, 6/7, 0) equal diffusers' transformer fed transformers'
    Gemma states of ComfyUI's prompt: system prompt, " <Prompt Start> ", user prompt."""
    from safetensors.torch import load_file

    from graphflow.executor import Executor
    from graphflow.models import FLUX
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from graphflow.workflow import parse_workflow

    cfg_scale = 4.0
    registry = Registry().load_builtin()
    result = Executor(registry).run(parse_workflow(lumina_graph(cfg_scale, steps=2), registry), outputs=["9", "3", "4"])
    assert result.ok, json.dumps(result.error, default=str)[:3000]
    assert len(list(lumina_models.outputs.rglob("lumina*.png"))) == 1
    image = result.values["8"][0]
    assert image.shape == (1, 64, 96, 3) and float(image.std()) > 0.01

    prompt = ("You are an assistant designed to generate superior images with the superior degree of image-text "
              "alignment based on textual prompts or user prompts. <Prompt Start> a red fox in the snow")
    gemma = transformers_gemma2(load_file(str(lumina_models.models / "text_encoders" / "gemma_2_2b_fp16.safetensors")))
    with torch.no_grad():
        states = [gemma(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[-2]
                  for ids in ([2] + _pieces().encode(prompt), [2])]
    [(cond, cond_options)], [(uncond, _)] = result.values["3"][0], result.values["4"][0]
    assert "pooled_output" not in cond_options
    assert cond.shape == states[0].shape and (cond.float() - states[0]).abs().max() < TOL
    assert uncond.shape == (1, 1, 64) and (uncond.float() - states[1]).abs().max() < TOL

    theirs = diffusers_lumina2(load_file(str(lumina_models.models / "diffusion_models" /
                                             "lumina_2_model_bf16.safetensors")))
    x = initial_noise(torch.zeros(1, 16, 8, 12), 11)  # sigma 1: the noise itself
    sigmas = [1.0, 6 * 0.5 / (1 + 5 * 0.5), 0.0]
    for sigma, following in zip(sigmas, sigmas[1:]):
        s = torch.tensor([sigma])
        v_cond, v_uncond = (diffusers_velocity(theirs, x, s, c) for c in states)
        x = x + (following - sigma) * (v_uncond + cfg_scale * (v_cond - v_uncond))
    ours = FLUX.process_in(result.values["6"][0]["samples"].float())
    assert float(x.abs().mean()) > 0.05
    assert float((ours - x).abs().max()) < 1e-4 * float(x.abs().max())


def test_cliptextencodelumina2_prompt_and_errors():
    from graphflow.api import NodeInputError
    from nodes.lumina2 import CLIPTextEncodeLumina2, lumina2_prompt

    assert lumina2_prompt("alignment", "a cat") == ("You are an assistant designed to generate high-quality images "
                                                    "with the highest degree of image-text alignment based on "
                                                    "textual prompts. <Prompt Start> a cat")

    class Clip:
        def encode(self, prompt):
            self.prompt = prompt
            return torch.zeros(1, 3, 4), None

    def node(**inputs):
        made = CLIPTextEncodeLumina2.__new__(CLIPTextEncodeLumina2)
        made.__dict__.update(system_prompt="superior", user_prompt="a dog", **inputs)
        return made

    clip = Clip()
    [(cond, options)] = node(clip=clip).run()
    assert clip.prompt.endswith(" <Prompt Start> a dog") and clip.prompt.startswith("You are an assistant designed "
                                                                                    "to generate superior images")
    assert options == {} and cond.shape == (1, 3, 4)
    with pytest.raises(NodeInputError, match="lumina2"):
        node(clip=None).run()


def test_all_in_one_checkpoint(tmp_path):
    """lumina_2.safetensors as ComfyUI ships it: the model under model.diffusion_model., FLUX's VAE
    under vae., Gemma-2 under text_encoders.gemma2_2b.transformer. and its tokenizer as
    text_encoders.spiece_model (what ComfyUI's Lumina2.clip_target leaves out of the weights)."""
    from safetensors.torch import load_file, save_file

    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.models.checkpoint_report import inspect_report
    from graphflow.models.file_kind import identify
    from graphflow.models.gemma2 import GemmaTextEncoder
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.models.weight_files import WeightFile
    from graphflow.testing import write_flow_vae, write_gemma2, write_lumina2

    gemma = load_file(str(write_gemma2(tmp_path / "g.safetensors", dtype=torch.float32)))
    state = {k: v for k, v in load_file(str(write_lumina2(tmp_path / "m.safetensors", prefixed=True,
                                                           dtype=torch.float32))).items()}
    state |= {"vae." + k: v for k, v in load_file(str(write_flow_vae(tmp_path / "v.safetensors",
                                                                     dtype=torch.float32))).items()}
    state |= {("text_encoders." if k == "spiece_model" else "text_encoders.gemma2_2b.transformer.") + k: v
              for k, v in gemma.items()}
    state["text_encoders.gemma2_2b.logit_scale"] = torch.tensor(4.6052)  # ComfyUI's saves carry one (unused)
    save_file(state, str(tmp_path / "lumina_2.safetensors"))
    with WeightFile(tmp_path / "lumina_2.safetensors") as f:
        assert identify(f.shapes).name == "Lumina Image 2.0 checkpoint"
    report = inspect_report(tmp_path / "lumina_2.safetensors")
    assert "Lumina Image 2.0 [lumina2, lumina2]" in report and "other keys" not in report
    assert "text encoder gemma2_2b" in report and "its tokenizer (text_encoders.spiece_model)" in report
    loaded = load_checkpoint(tmp_path / "lumina_2.safetensors", device="cpu", dtype=torch.float32)
    assert loaded.model.arch == "lumina2" and loaded.vae is not None and isinstance(loaded.clip, GemmaTextEncoder)
    standalone = load_text_encoders(tmp_path / "g.safetensors", "lumina2", device="cpu", dtype=torch.float32)
    assert torch.equal(standalone.encode("a cat")[0], loaded.clip.encode("a cat")[0])
    assert all(torch.equal(loaded.model.unet.state_dict()[k], v) for k, v in lumina2_state().items())


def test_lumina2_graph_with_modelsamplingauraflow_and_renormcfg(lumina_models):
    """ComfyUI's Lumina 2 workflows put ModelSamplingAuraFlow (shift 6: the model's own sampling)
    and RenormCFG before the sampler."""
    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from graphflow.workflow import parse_workflow

    registry = Registry().load_builtin()
    plain = lumina_graph(4.0, steps=2)
    shifted = lumina_graph(4.0, steps=2)
    shifted["10"] = {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": ["1", 0], "shift": 6.0}}
    shifted["6"]["inputs"]["model"] = ["10", 0]
    renormed = lumina_graph(4.0, steps=2)
    renormed["11"] = {"class_type": "RenormCFG", "inputs": {"model": ["1", 0], "cfg_trunc": 100.0, "renorm_cfg": 1.0}}
    renormed["6"]["inputs"]["model"] = ["11", 0]
    latents = []
    for graph in (plain, shifted, renormed):
        result = Executor(registry).run(parse_workflow(graph, registry), outputs=["6"])
        assert result.ok, json.dumps(result.error, default=str)[:3000]
        latents.append(result.values["6"][0]["samples"])
    assert torch.allclose(latents[0], latents[1], atol=1e-6)
    assert torch.isfinite(latents[2]).all() and not torch.allclose(latents[0], latents[2], atol=1e-4)


def test_clipsave_loads_back(tmp_path):
    """CLIPSave's Gemma-2 (with its tokenizer) loads with CLIPLoader type lumina2 unchanged (ModelSave:
    tests/test_flow_families.py)."""
    from graphflow.models.checkpoint_save import save_text_encoder, text_encoder_states
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_gemma2

    clip = load_text_encoders(write_gemma2(tmp_path / "g.safetensors", dtype=torch.float32), "lumina2",
                              device="cpu", dtype=torch.float32)
    [(name, state)] = text_encoder_states(clip).items()
    assert name == "gemma2_2b" and "spiece_model" in state[0]
    back = load_text_encoders(save_text_encoder(tmp_path / "clip_gemma2_2b.safetensors", state), "lumina2",
                              device="cpu", dtype=torch.float32)
    assert torch.equal(back.encode("a (red:1.2) fox")[0], clip.encode("a (red:1.2) fox")[0])


def test_comfyui_lora_on_lumina2(tmp_path):
    """A LoRA in ComfyUI's names (diffusion_model. + the model's own module path) patches the
    NextDiT; LoraLoader with the Gemma CLIP leaves the text encoder alone."""
    from safetensors.torch import save_file

    from graphflow.memory import manager
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.lora import apply_lora
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_gemma2, write_lumina2

    model = load_diffusion_model(write_lumina2(tmp_path / "m.safetensors", dtype=torch.float32), device="cpu",
                                 dtype=torch.float32)
    clip = load_text_encoders(write_gemma2(tmp_path / "g.safetensors", dtype=torch.float32), "lumina2",
                              device="cpu", dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    qkv = model.unet.layers[0].attention.qkv.weight
    down, up = torch.randn(4, qkv.shape[1], generator=g), torch.randn(qkv.shape[0], 4, generator=g)
    save_file({"diffusion_model.layers.0.attention.qkv.lora_down.weight": down,
               "diffusion_model.layers.0.attention.qkv.lora_up.weight": up,
               "diffusion_model.layers.0.attention.qkv.alpha": torch.tensor(2.0)}, str(tmp_path / "lora.safetensors"))
    patched, patched_clip = apply_lora(model, clip, tmp_path / "lora.safetensors", 0.5, 1.0)
    assert patched_clip is clip
    weights = manager().weights(patched.unet, patched.patches)
    want = qkv + 0.5 * (2.0 / 4) * up @ down
    assert torch.allclose(weights["layers.0.attention.qkv.weight"], want, atol=1e-5)
    assert torch.equal(weights["layers.1.attention.qkv.weight"], model.unet.layers[1].attention.qkv.weight)


def test_lora_in_diffusers_layout_matches_diffusers(tmp_path):
    """A PEFT LoRA on every Linear of diffusers' Lumina2Transformer2DModel (diffusers' names:
    ai-toolkit's layout), applied to our model, gives diffusers' output with the adapter."""
    from safetensors.torch import save_file

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.lora import apply_lora
    from graphflow.testing import write_lumina2
    from tests.test_flow_lora import random_peft_lora

    model = load_diffusion_model(write_lumina2(tmp_path / "m.safetensors", dtype=torch.float32), device="cpu",
                                 dtype=torch.float32)
    theirs = diffusers_lumina2(lumina2_state())
    lora = random_peft_lora(theirs, seed=5)
    assert "transformer.layers.1.attn.to_k.lora_A.weight" in lora
    assert "transformer.context_refiner.0.feed_forward.linear_3.lora_B.weight" in lora
    save_file(lora, str(tmp_path / "lumina_peft.safetensors"))
    theirs.load_lora_adapter(dict(lora), prefix="transformer", adapter_name="test")
    theirs.set_adapters(["test"], weights=[0.7])
    patched, _ = apply_lora(model, None, tmp_path / "lumina_peft.safetensors", 0.7, 0.0)
    g = torch.Generator().manual_seed(1)
    x, context, sigma = torch.randn(1, 16, 4, 6, generator=g), torch.randn(1, 5, 64, generator=g), torch.tensor([0.6])
    with torch.no_grad():
        plain, got = model(x, sigma, context), patched(x, sigma, context)
    want = diffusers_velocity(theirs, x, sigma, context)
    assert float((got - plain).abs().max()) > 1e-2  # the LoRA does something
    assert float((got - want).abs().max()) < TOL * float(want.abs().max())


def test_full_size_defaults():
    """The defaults are the released models: Lumina-Image-2.0's 2.6B NextDiT (qkv 24 + 8 + 8 heads
    of 96; diffusers' default Lumina2Transformer2DModel has the same shapes) and Gemma-2 2B
    (2,614,341,888 parameters, as transformers counts it)."""
    from graphflow.models.gemma2 import Gemma2, Gemma2Config

    with torch.device("meta"):
        ours, gemma = Lumina2(lumina2_config(scaled_down=False)), Gemma2(Gemma2Config())
        theirs = Lumina2Transformer2DModel(cap_feat_dim=2304)
    assert sum(p.numel() for p in gemma.parameters()) == 2_614_341_888
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(ours) == count(theirs) + 2304  # + the unused norm_final
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert shapes["layers.0.attention.qkv.weight"] == (3840, 2304)
    assert shapes["layers.0.feed_forward.w1.weight"] == (9216, 2304)
    assert lumina2_config_from_state_dict(shapes) == lumina2_config(scaled_down=False)


def test_lumina2_example_workflow(lumina_models):
    """workflows/lumina2.json as saved but for its size and steps: the shift, the negative prompt
    (cfg 4) and the system prompt all count."""
    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from tests.test_workflows import workflow

    registry = Registry().load_builtin()
    sets = {"6__width": 96, "6__height": 64, "7__steps": 2}

    def run(**more):
        result = Executor(registry).run(workflow("lumina2", **sets, **more))
        assert result.ok, json.dumps(result.error, default=str)[:2000]
        return result

    result = run()
    image = result.values["9"][0]
    assert image.shape == (1, 64, 96, 3) and float(image.std()) > 0.01
    assert result.outputs["10"]["images"][0]["filename"].startswith("lumina2_")
    assert not torch.equal(run(**{"3__shift": 3.0}).values["9"][0], image)  # (shift 6 is the default: see above)
    assert not torch.equal(run(**{"5__text": "a red cube"}).values["9"][0], image)
    assert not torch.equal(run(**{"4__system_prompt": "alignment"}).values["9"][0], image)


def test_lumina2_graph_batch_of_two(lumina_models):
    """A batch of two latents: each image equals the one sampled alone from its own noise."""
    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from graphflow.workflow import parse_workflow

    registry = Registry().load_builtin()
    graph = lumina_graph(4.0, steps=1)
    graph["5"]["inputs"]["batch_size"] = 2
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["6"])
    assert result.ok, json.dumps(result.error, default=str)[:3000]
    batch = result.values["6"][0]["samples"]
    assert batch.shape == (2, 16, 8, 12) and not torch.allclose(batch[0], batch[1])
    alone = Executor(registry).run(parse_workflow(lumina_graph(4.0, steps=1), registry), outputs=["6"])
    assert torch.allclose(batch[:1], alone.values["6"][0]["samples"], atol=1e-5)


def test_all_in_one_checkpoint_graph_equals_separate_files(lumina_models):
    """CheckpointLoaderSimple on lumina_2.safetensors (ComfyUI's example loads Lumina 2 so) samples
    what the separate files give."""
    from safetensors.torch import load_file, save_file

    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from graphflow.workflow import parse_workflow

    m = lumina_models.models
    state = load_file(str(m / "diffusion_models" / "lumina_2_model_bf16.safetensors"))
    state = {"model.diffusion_model." + k: v for k, v in state.items()}
    state |= {"vae." + k: v for k, v in load_file(str(m / "vae" / "ae.safetensors")).items()}
    state |= {("text_encoders." if k == "spiece_model" else "text_encoders.gemma2_2b.transformer.") + k: v
              for k, v in load_file(str(m / "text_encoders" / "gemma_2_2b_fp16.safetensors")).items()}
    (m / "checkpoints").mkdir(exist_ok=True)
    save_file(state, str(m / "checkpoints" / "lumina_2.safetensors"))
    separate = lumina_graph(4.0, steps=2)
    aio = lumina_graph(4.0, steps=2)
    aio["1"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "lumina_2.safetensors"}}
    aio["3"]["inputs"]["clip"] = aio["4"]["inputs"]["clip"] = ["1", 1]
    aio["8"]["inputs"]["vae"] = ["1", 2]
    del aio["2"], aio["7"]
    registry = Registry().load_builtin()
    images = []
    for graph in (separate, aio):
        result = Executor(registry).run(parse_workflow(graph, registry), outputs=["8"])
        assert result.ok, json.dumps(result.error, default=str)[:3000]
        images.append(result.values["8"][0])
    assert torch.allclose(images[0], images[1], atol=1e-5)


@pytest.mark.parametrize("all_in_one", [False, True])
def test_dropped_components_are_read_back_from_their_files(fresh_manager, tmp_path, all_in_one):
    """When RAM runs short the memory manager drops Gemma-2 (or, from the all-in-one file, the
    NextDiT) and reads it back from its file (the all-in-one: that component alone) unchanged. (The
    NextDiT from its own file: tests/test_flow_families.py.)"""
    from safetensors.torch import load_file, save_file

    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_gemma2, write_lumina2

    gemma_path = write_gemma2(tmp_path / "g.safetensors", dtype=torch.float32)
    if all_in_one:
        model_path = write_lumina2(tmp_path / "m.safetensors", dtype=torch.float32)
        state = {"model.diffusion_model." + k: v for k, v in load_file(str(model_path)).items()}
        state |= {("text_encoders." if k == "spiece_model" else "text_encoders.gemma2_2b.transformer.") + k: v
                  for k, v in load_file(str(gemma_path)).items()}
        save_file(state, str(tmp_path / "aio.safetensors"))
        loaded = load_checkpoint(tmp_path / "aio.safetensors", device="cpu", dtype=torch.float32)
        parts = ((loaded.model.unet, "diffusion_model:lumina2"), (loaded.clip.model, "text_encoder:gemma2"))
    else:
        clip = load_text_encoders(gemma_path, "lumina2", device="cpu", dtype=torch.float32)
        parts = ((clip.model, "text_encoder:gemma2"),)
    for module, name in parts:
        comp = fresh_manager.components[id(module)]
        assert comp.name == name and comp.reload is not None
        before = {k: v.clone() for k, v in module.state_dict().items()}
        fresh_manager._drop(comp)
        assert comp.state == "dropped" and all(p.is_meta for p in module.parameters())
        fresh_manager.present(module)
        assert all(torch.equal(module.state_dict()[k], v) for k, v in before.items()), name
