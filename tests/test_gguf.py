"""GGUF files (graphflow.models.gguf, nodes/gguf.py): dequantization against gguf's own numpy
reference, quantized models against the same model with the dequantized weights, the loaders."""

import functools
import re

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

from graphflow.context import NodeInputError  # noqa: E402
from graphflow.models.gguf import GGML_TYPES, QUANTIZED  # noqa: E402
from graphflow.models.gguf_layers import dequantize  # noqa: E402

# byte offsets of the fp16 scales (d, dmin) in each K-quant block: gguf-py cannot quantize these,
# so the blocks are random bytes with finite scales written over them
K_SCALES = {"Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}


def random_blocks(qtype: str, rows: int, blocks_per_row: int, seed: int = 0) -> np.ndarray:
    """Random raw blocks of `qtype` [rows, bytes]: quantized random values where gguf can quantize
    the type, else random bytes with finite scales."""
    rng = np.random.default_rng(seed)
    kind = gguf.GGMLQuantizationType[qtype]
    block, nbytes = gguf.GGML_QUANT_SIZES[kind]
    if qtype not in K_SCALES:
        return gguf.quants.quantize(rng.standard_normal((rows, block * blocks_per_row)).astype(np.float32), kind)
    raw = rng.integers(0, 256, size=(rows * blocks_per_row, nbytes), dtype=np.uint8)
    for offset in K_SCALES[qtype]:
        raw[:, offset:offset + 2] = (rng.standard_normal((len(raw), 1)) * 0.1).astype(np.float16).view(np.uint8)
    return raw.reshape(rows, -1)


def test_quantized_types_are_the_packs():
    assert set(QUANTIZED) == {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"}
    for tid, (name, block, nbytes) in GGML_TYPES.items():
        kind = gguf.GGMLQuantizationType(tid)
        assert kind.name == name and gguf.GGML_QUANT_SIZES[kind] == (block, nbytes)


@pytest.mark.parametrize("qtype", sorted(set(QUANTIZED)))
def test_dequantize_matches_gguf(qtype):
    raw = random_blocks(qtype, rows=6, blocks_per_row=3, seed=len(qtype))
    expected = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType[qtype])
    ours = dequantize(torch.from_numpy(raw), qtype, expected.shape)
    assert ours.dtype == torch.float32 and ours.shape == expected.shape
    assert np.isfinite(expected).all()
    np.testing.assert_array_equal(ours.numpy(), expected)
    half = dequantize(torch.from_numpy(raw), qtype, expected.shape, torch.float16)
    assert half.dtype == torch.float16
    np.testing.assert_array_equal(half.numpy(), expected.astype(np.float16))


# -- a quantized model predicts what its dequantized weights predict ------------------------------

def _tiny_flux_state(seed: int = 0, family: str = "flux_dev"):
    from graphflow.testing import flow_file_shapes, random_state

    return random_state(flow_file_shapes(family, components=("model",), prefixed=False), seed, torch.float32)


def _flux_inputs(family: str = "flux_dev"):
    from graphflow.testing import flow_model_config

    config = flow_model_config(family)
    g = torch.Generator().manual_seed(5)
    if family.startswith("sd3"):
        return (torch.randn(1, 16, 8, 8, generator=g), torch.tensor([0.6]),
                torch.randn(1, 5, config.context_dim, generator=g), torch.randn(1, config.adm_in_channels, generator=g))
    return (torch.randn(1, 16, 8, 8, generator=g), torch.tensor([0.6]),
            torch.randn(1, 5, config.context_in_dim, generator=g), torch.randn(1, config.vec_in_dim, generator=g))


@pytest.mark.parametrize("qtype,family,arch", [("Q8_0", "flux_dev", "flux"), ("Q4_0", "flux_dev", "flux"),
                                               ("Q5_1", "flux_dev", "flux"), ("Q4_1", "sd35_large", "sd3")])
def test_quantized_flow_model_predicts_as_its_dequantized_weights(tmp_path, qtype, family, arch):
    from safetensors.torch import save_file

    from graphflow.memory import module_bytes
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.gguf_layers import QuantizedLinear
    from graphflow.testing import gguf_values, write_gguf

    path = write_gguf(tmp_path / "tiny.gguf", _tiny_flux_state(family=family), arch, qtype)
    reference = tmp_path / "dequantized.safetensors"  # gguf-py's dequantized values, as a plain file
    save_file({k: v.contiguous() for k, v in gguf_values(path).items()}, str(reference))

    model = load_diffusion_model(path, "cpu", torch.float32)
    plain = load_diffusion_model(reference, "cpu", torch.float32)
    assert model.arch == plain.arch == arch
    layers = [m for m in model.unet.modules() if isinstance(m, QuantizedLinear)]
    assert layers and all(m.weight.dtype == torch.uint8 and m.qtype == qtype for m in layers)
    # the quantized model holds its Linear weights as blocks (bytes per value: the type's block
    # bytes / block values, 34/32 for Q8_0 against fp16's 2): less than the fp16 model holds
    block, nbytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[qtype]]
    assert sum(m.weight.numel() for m in layers) == sum(m.in_features * m.out_features for m in layers) * nbytes // block
    half = load_diffusion_model(path, "cpu", torch.float16)
    assert module_bytes(half.unet) < 0.75 * module_bytes(load_diffusion_model(reference, "cpu", torch.float16).unet)
    x, sigma, context, y = _flux_inputs(family)
    guidance = {"guidance": torch.tensor([3.5])} if arch == "flux" else {}
    with torch.no_grad():
        ours, expected = model(x, sigma, context, y, **guidance), plain(x, sigma, context, y, **guidance)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("ram", ["ample", "short"])
def test_lora_on_a_quantized_flux_patches_its_dequantized_weights(tmp_path, monkeypatch, ram):
    """As ComfyUI-GGUF: the LoRA changes the dequantized weight, for each forward (whatever RAM
    there is: in place, the compute-dtype values would replace blocks a few times smaller, uncounted);
    the layers keep their blocks, and unpatched the blocks are bit for bit what they were."""
    if ram == "short":
        monkeypatch.setenv("GRAPHFLOW_RAM_BUDGET_GB", "0.0001")
    from safetensors.torch import save_file

    from graphflow import memory
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.lora import apply_lora
    from graphflow.testing import gguf_values, write_gguf

    path = write_gguf(tmp_path / "flux-tiny.gguf", _tiny_flux_state(), "flux", "Q4_0")
    reference = tmp_path / "dequantized.safetensors"
    save_file({k: v.contiguous() for k, v in gguf_values(path).items()}, str(reference))
    model, plain = load_diffusion_model(path, "cpu", torch.float32), load_diffusion_model(reference, "cpu", torch.float32)
    g = torch.Generator().manual_seed(3)
    lora = {}
    for name in ("double_blocks.0.img_attn.qkv", "single_blocks.0.linear1"):
        layer = plain.unet.get_submodule(name)
        lora[f"diffusion_model.{name}.lora_A.weight"] = torch.randn(2, layer.in_features, generator=g) * 0.1
        lora[f"diffusion_model.{name}.lora_B.weight"] = torch.randn(layer.out_features, 2, generator=g) * 0.1
    save_file(lora, str(tmp_path / "lora.safetensors"))
    patched, _ = apply_lora(model, None, tmp_path / "lora.safetensors", 0.8, 0.0)
    expected_model, _ = apply_lora(plain, None, tmp_path / "lora.safetensors", 0.8, 0.0)
    x, sigma, context, y = _flux_inputs()
    memory.manager().present(model.unet)  # (short of RAM, loading `plain` may have dropped them)
    blocks = {name: model.unet.get_submodule(name).weight for name in ("double_blocks.0.img_attn.qkv",
                                                                          "single_blocks.0.linear1")}
    stored = {name: w.detach().clone() for name, w in blocks.items()}
    held = memory.module_bytes(model.unet)
    with torch.no_grad():
        unpatched = model(x, sigma, context, y, guidance=torch.tensor([3.5]))
        start = len(memory.manager().events)
        ours = patched(x, sigma, context, y, guidance=torch.tensor([3.5]))
        made = [e for e in memory.manager().events[start:] if e.get("action") == "patch"]
        # while the LoRA holds, the layers hold their blocks, no more bytes than before
        assert all(w.dtype == torch.uint8 for w in blocks.values()) and memory.module_bytes(model.unet) == held
        expected = expected_model(x, sigma, context, y, guidance=torch.tensor([3.5]))
        again = model(x, sigma, context, y, guidance=torch.tensor([3.5]))
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(ours, unpatched, atol=1e-4)
    assert torch.equal(again, unpatched)
    memory.manager().present(model.unet)
    for name in blocks:
        assert torch.equal(model.unet.get_submodule(name).weight, stored[name]), name
    assert made and all(e["mode"] == "on_the_fly" for e in made)
    with torch.no_grad():
        patched(x, sigma, context, y, guidance=torch.tensor([3.5]))
    memory.manager().unpatch(model.unet)
    memory.manager().present(model.unet)
    for name in blocks:
        w = model.unet.get_submodule(name).weight
        assert w.dtype == torch.uint8 and torch.equal(w, stored[name]), name
    with torch.no_grad():
        assert torch.equal(model(x, sigma, context, y, guidance=torch.tensor([3.5])), unpatched)


def test_stacked_loras_on_a_quantized_layer_round_once():
    """Two LoRAs on one GGUF layer change its float32 values and round once into the compute dtype
    (as the manager does for fp16 / bf16 weights): rounding after each would add their errors."""
    from graphflow.memory import WeightPatch, _gguf_changed
    from graphflow.models.gguf_layers import QuantizedLinear
    from graphflow.models.lora import LoraModule, _change

    layer = QuantizedLinear(64, 8, False, "Q8_0", torch.bfloat16)
    blocks = torch.from_numpy(random_blocks("Q8_0", rows=8, blocks_per_row=2, seed=4))
    g = torch.Generator().manual_seed(6)
    loras = [LoraModule({"lora_up.weight": torch.randn(8, 2, generator=g) * 3e-3,
                         "lora_down.weight": torch.randn(2, 64, generator=g)}) for _ in range(2)]
    patches = tuple(WeightPatch("weight", functools.partial(_change, lora, 1.0)) for lora in loras)
    values = torch.from_numpy(gguf.quants.dequantize(blocks.numpy(), gguf.GGMLQuantizationType.Q8_0))
    deltas = [lora.parts["lora_up.weight"] @ lora.parts["lora_down.weight"] for lora in loras]  # rank 2, no alpha: scale 1
    once = (values + deltas[0] + deltas[1]).bfloat16()
    twice = ((values + deltas[0]).bfloat16().float() + deltas[1]).bfloat16()
    assert not torch.equal(once, twice)  # the case tells the two apart
    ours = _gguf_changed(layer, blocks, patches)
    assert ours.dtype == torch.bfloat16 and torch.equal(ours, once)


# -- the pack's nodes ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def registry():
    from graphflow.registry import Registry

    return Registry().load_builtin()


@pytest.fixture
def gguf_folders(tmp_folders):
    """models/ with a tiny FLUX as GGUF Q8_0 (and its gguf-py-dequantized twin as .safetensors), a
    tiny T5 as GGUF Q8_0 in llama.cpp's names (and its dequantized twin in HF names), a CLIP-L."""
    from safetensors.torch import save_file

    from graphflow.models.gguf import T5_NAMES
    from graphflow.testing import flow_file_shapes, gguf_values, llama_cpp_t5_names, random_state, \
        write_gguf, write_text_encoder

    unet, text = tmp_folders.models / "diffusion_models", tmp_folders.models / "text_encoders"
    unet.mkdir()
    text.mkdir()
    flux = write_gguf(unet / "flux-tiny-Q8_0.gguf", _tiny_flux_state(), "flux", "Q8_0")
    save_file({k: v.contiguous() for k, v in gguf_values(flux).items()}, str(unet / "flux-dequantized.safetensors"))
    t5_state = random_state(flow_file_shapes("flux_dev", components=("text",)), 2, torch.float32)
    prefix = "text_encoders.t5xxl.transformer."
    t5_state = {k[len(prefix):]: v for k, v in t5_state.items() if k.startswith(prefix)}
    t5 = write_gguf(text / "t5-tiny-Q8_0.gguf", llama_cpp_t5_names(t5_state), "t5", "Q8_0")
    dequantized = {}
    for key, value in gguf_values(t5).items():
        for theirs, ours in T5_NAMES:
            key = key.replace(theirs, ours)
        dequantized[key] = value.contiguous()
    save_file(dequantized, str(text / "t5-dequantized.safetensors"))
    write_text_encoder(text / "clip_l.safetensors", "clip_l")
    return tmp_folders


def _api_prompt(unet_loader: dict, clip_loader: dict) -> dict:
    return {
        "1": unet_loader,
        "2": clip_loader,
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox in the snow", "clip": ["2", 0]}},
        "4": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 7, "steps": 2, "cfg": 1.0,
                                                   "sampler_name": "euler", "scheduler": "simple",
                                                   "positive": ["3", 0], "negative": ["3", 0],
                                                   "latent_image": ["4", 0], "denoise": 1.0}},
    }


def _latent(result) -> torch.Tensor:
    value = result.values["5"][0]
    return value["samples"] if isinstance(value, dict) else value.samples


def test_api_prompt_with_gguf_loaders_runs_as_the_dequantized_files(registry, gguf_folders):
    """UnetLoaderGGUF + DualCLIPLoaderGGUF (a T5 in llama.cpp's names) sample what UNETLoader +
    DualCLIPLoader sample on the same weights dequantized by gguf-py."""
    from graphflow.comfy_format import export_api, export_ui
    from graphflow.workflow import parse_workflow
    from tests.test_pack_nodes import run_graph

    prompt = _api_prompt(
        {"class_type": "UnetLoaderGGUF", "inputs": {"unet_name": "flux-tiny-Q8_0.gguf"}},
        {"class_type": "DualCLIPLoaderGGUF", "inputs": {"clip_name1": "clip_l.safetensors",
                                                        "clip_name2": "t5-tiny-Q8_0.gguf", "type": "flux"}})
    reference = _api_prompt(
        {"class_type": "UNETLoader", "inputs": {"unet_name": "flux-dequantized.safetensors",
                                                "weight_dtype": "default"}},
        {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "clip_l.safetensors",
                                                    "clip_name2": "t5-dequantized.safetensors", "type": "flux"}})
    result = run_graph(registry, prompt, ["5"])
    ours, expected = _latent(result), _latent(run_graph(registry, reference, ["5"]))
    assert ours.shape == (1, 16, 8, 8)
    # the T5 keeps its Linear weights quantized too, but for `wo` (transformers casts activations to its dtype)
    from graphflow.models.gguf_layers import QuantizedLinear

    t5 = result.values["2"][0].t5.model
    kept = {name.rsplit(".", 1)[-1] for name, m in t5.named_modules() if isinstance(m, QuantizedLinear)}
    assert kept == {"q", "k", "v", "o", "wi_0", "wi_1"}
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)
    workflow = parse_workflow(prompt, registry)
    api = export_api(workflow, registry)
    assert api["1"] == prompt["1"] and api["2"] == prompt["2"]
    ui = {n["id"]: n for n in export_ui(workflow, registry)["nodes"]}
    assert ui[1]["type"] == "UnetLoaderGGUF" and ui[1]["widgets_values"] == ["flux-tiny-Q8_0.gguf"]
    assert ui[2]["type"] == "DualCLIPLoaderGGUF"
    assert ui[2]["widgets_values"] == ["clip_l.safetensors", "t5-tiny-Q8_0.gguf", "flux"]


def test_ui_save_with_gguf_loaders_reads_runs_and_writes_back(registry, gguf_folders):
    """As the editor saves it: UnetLoaderGGUFAdvanced's widgets in the pack's order, DualCLIPLoaderGGUF's."""
    from graphflow.comfy_format import export_api, export_ui
    from graphflow.workflow import parse_workflow
    from tests.test_pack_nodes import run_graph, ui_graph, ui_node

    nodes = [
        ui_node(1, "UnetLoaderGGUFAdvanced", ["flux-tiny-Q8_0.gguf", "float16", "default", False],
                outputs=[("MODEL", "MODEL", [1])]),
        ui_node(2, "DualCLIPLoaderGGUF", ["t5-tiny-Q8_0.gguf", "clip_l.safetensors", "flux"],
                outputs=[("CLIP", "CLIP", [2])]),
        ui_node(3, "CLIPTextEncode", ["a fox in the snow"], [("clip", "CLIP", 2, False)],
                [("CONDITIONING", "CONDITIONING", [3, 4])]),
        ui_node(4, "EmptySD3LatentImage", [64, 64, 1], outputs=[("LATENT", "LATENT", [5])]),
        ui_node(5, "KSampler", [7, "fixed", 2, 1.0, "euler", "simple", 1.0],
                [("model", "MODEL", 1, False), ("positive", "CONDITIONING", 3, False),
                 ("negative", "CONDITIONING", 4, False), ("latent_image", "LATENT", 5, False)],
                [("LATENT", "LATENT", [])]),
    ]
    links = [[1, 1, 0, 5, 0, "MODEL"], [2, 2, 0, 3, 0, "CLIP"], [3, 3, 0, 5, 1, "CONDITIONING"],
             [4, 3, 0, 5, 2, "CONDITIONING"], [5, 4, 0, 5, 3, "LATENT"]]
    graph = ui_graph(nodes, links)
    workflow = parse_workflow(graph, registry)
    assert workflow.nodes["1"].inputs == {"unet_name": "flux-tiny-Q8_0.gguf", "dequant_dtype": "float16",
                                          "patch_dtype": "default", "patch_on_device": False}
    result = run_graph(registry, graph, ["5"])
    model = result.values["1"][0]
    from graphflow.models.gguf_layers import QuantizedLinear

    layers = [m for m in model.unet.modules() if isinstance(m, QuantizedLinear)]
    assert layers and all(m.dequant_dtype == torch.float16 for m in layers)
    assert _latent(result).shape == (1, 16, 8, 8)
    written = {n["id"]: n for n in export_ui(workflow, registry)["nodes"]}
    assert written[1]["type"] == "UnetLoaderGGUFAdvanced"
    assert written[1]["widgets_values"] == ["flux-tiny-Q8_0.gguf", "float16", "default", False]
    assert written[2]["widgets_values"] == ["t5-tiny-Q8_0.gguf", "clip_l.safetensors", "flux"]
    api = export_api(workflow, registry)
    assert api["1"]["class_type"] == "UnetLoaderGGUFAdvanced" and api["2"]["class_type"] == "DualCLIPLoaderGGUF"


def test_dequant_dtype_rounds_the_weights_through_it(tmp_path):
    from graphflow.models.gguf_layers import QuantizedLinear, dequantize

    layer = QuantizedLinear(64, 3, True, "Q8_0", torch.float32)
    raw = torch.from_numpy(random_blocks("Q8_0", rows=3, blocks_per_row=2, seed=9))
    layer.weight = torch.nn.Parameter(raw, requires_grad=False)
    layer.bias = torch.nn.Parameter(torch.zeros(3), requires_grad=False)
    x = torch.randn(2, 64)
    values = dequantize(raw, "Q8_0", (3, 64))
    torch.testing.assert_close(layer(x), x @ values.T, rtol=0, atol=1e-5)
    layer.dequant_dtype = torch.bfloat16
    torch.testing.assert_close(layer(x), x @ values.bfloat16().float().T, rtol=0, atol=1e-5)


def test_clear_errors(registry, gguf_folders, tmp_path):
    from graphflow.testing import write_gguf
    from tests.test_nodes_image_mask import call

    unet, text = gguf_folders.models / "diffusion_models", gguf_folders.models / "text_encoders"
    # a text encoder given to the UNet loader, a diffusion model given to a CLIP loader
    (unet / "t5.gguf").write_bytes((text / "t5-tiny-Q8_0.gguf").read_bytes())
    with pytest.raises(NodeInputError, match="text encoder .*'t5'.*CLIPLoaderGGUF") as caught:
        call(registry, "UnetLoaderGGUF", unet_name="t5.gguf")
    assert caught.value.input == "unet_name"
    (text / "flux.gguf").write_bytes((unet / "flux-tiny-Q8_0.gguf").read_bytes())
    with pytest.raises(NodeInputError, match="diffusion model .*'flux'.*UnetLoaderGGUF") as caught:
        call(registry, "DualCLIPLoaderGGUF", clip_name1="clip_l.safetensors", clip_name2="flux.gguf", type="flux")
    assert caught.value.input == "clip_name2"
    # an architecture graphflow (and the pack) lacks, named
    write_gguf(unet / "other.gguf", {"x.weight": torch.zeros(4, 32)}, "stable_audio")
    with pytest.raises(NodeInputError, match="architecture 'stable_audio' is not supported"):
        call(registry, "UnetLoaderGGUF", unet_name="other.gguf")
    # a quant type neither graphflow nor gguf-py dequantizes (Q8_K: llama.cpp's intermediate type), named
    import gguf as gg

    writer = gg.GGUFWriter(str(unet / "q8k.gguf"), arch="flux")
    writer.add_tensor("img_in.weight", np.zeros((4, 292), dtype=np.uint8), raw_dtype=gg.GGMLQuantizationType.Q8_K)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(NodeInputError, match="stored as Q8_K, a ggml type graphflow does not read"):
        call(registry, "UnetLoaderGGUF", unet_name="q8k.gguf")
    # not a GGUF at all (not offered: the loader refuses it too, should a renamed file get there)
    from nodes.gguf import load_gguf_unet

    with pytest.raises(NodeInputError, match="flux-dequantized.safetensors is not a GGUF file"):
        load_gguf_unet("flux-dequantized.safetensors")


def test_gguf_files_are_listed_where_the_pack_lists_them(gguf_folders):
    from nodes.gguf import _clip_names, _unet_names

    assert _unet_names() == ["flux-tiny-Q8_0.gguf"]
    assert _clip_names() == ["clip_l.safetensors", "t5-dequantized.safetensors", "t5-tiny-Q8_0.gguf"]


def test_the_packs_classes_left_out_are_named_as_its():
    from graphflow.comfy_format import custom_pack

    for name in ("GGUFLoraImport", "VAELoaderGGUF", "TargetedQuantizationGGUF", "UnetLoaderGGUFDynamicVRAM"):
        assert custom_pack(name) == "ComfyUI-GGUF"


def test_inspect_describes_a_gguf_file(tmp_path):
    from graphflow.models.checkpoint_report import inspect_report
    from graphflow.testing import write_gguf

    report = inspect_report(write_gguf(tmp_path / "flux.gguf", _tiny_flux_state(), "flux", "Q8_0"))
    assert "gguf" in report and "FLUX.1 dev" in report and "Q8_0 (26 tensors)" in report


def _llama_cpp_permute(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """llama.cpp's convert_hf_to_gguf.py LlamaModel.permute (q / k rows interleaved for its rotary embedding)."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def test_llama_gguf_in_llama_cpps_names_and_order_reads_as_hugging_faces(registry, tmp_folders):
    """A LLaVA-Llama-3 GGUF as llama.cpp converts one (its names, q / k rows permuted, head counts in
    the metadata) gives HunyuanVideo's CLIP what the .safetensors file gives."""
    import gguf as gg
    from safetensors.torch import save_file

    from graphflow.models.gguf import LLAMA_NAMES
    from graphflow.models.weight_files import WeightFile
    from graphflow.testing import llava_llama3_config, llava_llama3_state, write_text_encoder
    from tests.test_nodes_image_mask import call

    config = llava_llama3_config()
    state = {k: v.half().float() for k, v in llava_llama3_state().items()}
    text = tmp_folders.models / "text_encoders"
    text.mkdir()
    save_file({k: v.half() for k, v in state.items()}, str(text / "llava_llama3_fp16.safetensors"))
    write_text_encoder(text / "clip_l.safetensors", "clip_l")
    writer = gg.GGUFWriter(str(text / "llava-llama3-F16.gguf"), arch="llama")
    writer.add_head_count(config.num_heads)
    writer.add_head_count_kv(config.num_kv_heads)
    for key, value in state.items():
        if key.endswith("q_proj.weight"):
            value = _llama_cpp_permute(value, config.num_heads)
        elif key.endswith("k_proj.weight"):
            value = _llama_cpp_permute(value, config.num_kv_heads)
        for theirs, ours in reversed(LLAMA_NAMES):
            key = key.replace(ours, theirs)
        writer.add_tensor(key, value.numpy().astype(np.float32 if value.dim() == 1 else np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with WeightFile(text / "llava-llama3-F16.gguf") as f:
        assert set(f.shapes) == set(state)
        for key, value in state.items():
            assert torch.equal(f.get(key, dtype=torch.float32), value), key
    ours = call(registry, "DualCLIPLoaderGGUF", clip_name1="clip_l.safetensors", clip_name2="llava-llama3-F16.gguf",
                type="hunyuan_video")
    theirs = call(registry, "LoadDualTextEncoders", clip_name1="clip_l.safetensors", clip_name2="llava_llama3_fp16.safetensors",
                  type="hunyuan_video")
    ours, theirs = (c[0] if isinstance(c, tuple) else c for c in (ours, theirs))
    a, b = ours.encode("a red fox"), theirs.encode("a red fox")
    torch.testing.assert_close(a[0], b[0])


def test_umt5_gguf_rebuilds_its_tokenizer_from_the_metadata(registry, tmp_folders):
    """A UMT5 GGUF (Wan's encoder, as city96's umt5-xxl-encoder-gguf) has no spiece_model tensor: its
    SentencePiece vocabulary is llama.cpp's tokenizer metadata, rebuilt as the pack rebuilds it. The
    encoder then gives what the .safetensors with the original SentencePiece model gives."""
    import gguf as gg
    from sentencepiece import SentencePieceProcessor, sentencepiece_model_pb2

    from graphflow.testing import llama_cpp_t5_names, spiece_model, umt5_state, write_umt5
    from tests.test_nodes_image_mask import call

    text = tmp_folders.models / "text_encoders"
    text.mkdir()
    write_umt5(text / "umt5_xxl_fp16.safetensors")
    state = {k: v.half().float() for k, v in umt5_state().items()}
    original = sentencepiece_model_pb2.ModelProto()
    original.ParseFromString(spiece_model())
    writer = gg.GGUFWriter(str(text / "umt5-xxl-encoder-F16.gguf"), arch="t5encoder")
    writer.add_tokenizer_model("t5")
    writer.add_token_list([p.piece for p in original.pieces])
    writer.add_token_scores([p.score for p in original.pieces])
    writer.add_token_types([p.type for p in original.pieces])
    writer.add_add_space_prefix(original.normalizer_spec.add_dummy_prefix)
    writer.add_remove_extra_whitespaces(original.normalizer_spec.remove_extra_whitespaces)
    writer.add_precompiled_charsmap(original.normalizer_spec.precompiled_charsmap)
    spec = original.trainer_spec
    writer.add_unk_token_id(spec.unk_id)
    writer.add_eos_token_id(spec.eos_id)
    writer.add_pad_token_id(spec.pad_id)
    for key, value in llama_cpp_t5_names(state).items():
        writer.add_tensor(key, value.numpy().astype(np.float32 if value.dim() == 1 else np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    from graphflow.models.weight_files import WeightFile

    with WeightFile(text / "umt5-xxl-encoder-F16.gguf") as f:
        rebuilt = SentencePieceProcessor(model_proto=f.get("spiece_model").numpy().tobytes())
    reference = SentencePieceProcessor(model_proto=spiece_model())
    for prompt in ("a red fox jumps over the lazy dog", "  Ünïcode   spaces, and PUNCTUATION!!  ", "x"):
        assert rebuilt.encode(prompt) == reference.encode(prompt)
    ours = call(registry, "CLIPLoaderGGUF", clip_name="umt5-xxl-encoder-F16.gguf", type="wan")
    theirs = call(registry, "LoadTextEncoder", clip_name="umt5_xxl_fp16.safetensors", type="wan")
    ours, theirs = (c[0] if isinstance(c, tuple) else c for c in (ours, theirs))
    torch.testing.assert_close(ours.encode("a red fox in the snow")[0], theirs.encode("a red fox in the snow")[0])


def test_merging_and_saving_read_a_gguf_models_values(tmp_path):
    """Readers of the weights (model merges, saves) get the dequantized values, not the blocks: a GGUF
    model merged half and half with its dequantized twin predicts as the twin."""
    from safetensors.torch import save_file

    from graphflow import memory
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.merge import merge_models
    from graphflow.testing import gguf_values, write_gguf

    path = write_gguf(tmp_path / "flux-tiny.gguf", _tiny_flux_state(), "flux", "Q4_0")
    reference = tmp_path / "dequantized.safetensors"
    save_file({k: v.contiguous() for k, v in gguf_values(path).items()}, str(reference))
    model, plain = load_diffusion_model(path, "cpu", torch.float32), load_diffusion_model(reference, "cpu", torch.float32)
    values = memory.manager().weights(model.unet)
    expected = memory.manager().weights(plain.unet)
    assert values.keys() == expected.keys()
    for name in values:
        torch.testing.assert_close(values[name], expected[name], rtol=0, atol=0, msg=name)
    merged = merge_models(model, plain, lambda name: (0.5, 0.5))
    x, sigma, context, y = _flux_inputs()
    with torch.no_grad():
        torch.testing.assert_close(merged(x, sigma, context, y, guidance=torch.tensor([3.5])),
                                   plain(x, sigma, context, y, guidance=torch.tensor([3.5])), rtol=1e-5, atol=1e-5)


def test_a_gguf_in_the_wrong_folder_is_sent_to_the_gguf_loader(tmp_path):
    from graphflow.models.file_check import model_file_problem
    from graphflow.testing import write_gguf

    path = write_gguf(tmp_path / "flux.gguf", _tiny_flux_state(), "flux", "Q8_0")
    problem = model_file_problem("vae", path)
    assert "flux.gguf is not a file for models/vae/" in problem
    assert "models/diffusion_models/ and load it with UnetLoaderGGUF" in problem


def test_plain_tensors_and_original_shapes(tmp_path):
    """F32 / F16 / BF16 tensors read as they are; the pack's comfy.gguf.orig_shape.<name> gives a
    tensor stored flattened its shape back; ggml's reversed dims otherwise."""
    import gguf as gg

    from graphflow.models.weight_files import WeightFile
    from graphflow.testing import write_gguf

    g = torch.Generator().manual_seed(1)
    conv = torch.randn(8, 4, 2, 3, 3, generator=g)  # a 5-D weight, as the pack's converter flattens them
    path = write_gguf(tmp_path / "m.gguf", {"a.weight": torch.randn(4, 6, generator=g), "b.bias": torch.randn(5, generator=g),
                                            "conv.weight": conv}, "wan", None, orig_shapes={"conv.weight": tuple(conv.shape)})
    with WeightFile(path) as f:
        assert f.shapes == {"a.weight": (4, 6), "b.bias": (5,), "conv.weight": (8, 4, 2, 3, 3)}
        assert f.dtypes == {"a.weight": "F16", "b.bias": "F32", "conv.weight": "F16"}
        assert torch.equal(f.get("conv.weight", dtype=torch.float32), conv.half().float())
        assert f.get("b.bias").dtype == torch.float32
    writer = gg.GGUFWriter(str(tmp_path / "bf16.gguf"), arch="flux")
    values = torch.randn(3, 8, generator=g).numpy()
    writer.add_tensor("w.weight", gg.quants.quantize(values, gg.GGMLQuantizationType.BF16),
                      raw_dtype=gg.GGMLQuantizationType.BF16)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with WeightFile(tmp_path / "bf16.gguf") as f:
        got = f.get("w.weight")
        assert got.dtype == torch.bfloat16 and got.shape == (3, 8)
        expected = gg.quants.dequantize(gg.quants.quantize(values, gg.GGMLQuantizationType.BF16),
                                        gg.GGMLQuantizationType.BF16)
        assert torch.equal(got.float(), torch.from_numpy(expected))


def test_sdxl_unet_gguf_with_bare_keys_reads_as_its_dequantized_checkpoint(tmp_path):
    """The pack's SD1 / SDXL UNet GGUFs hold bare UNet keys (input_blocks.*): read as the UNet under
    model.diffusion_model. (dequantized when loaded: the UNet has no quantized layers)."""
    import json

    from safetensors.torch import save_file

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.testing import gguf_values, unet_config, unet_state, write_gguf

    config = {"graphflow.config": json.dumps({"arch": "sdxl"})}  # the tiny UNet's family (a real one's is its shapes')
    path = write_gguf(tmp_path / "sdxl-Q8_0.gguf", unet_state(unet_config("sdxl"), 0, torch.float32), "sdxl", "Q8_0",
                      metadata=config)
    reference = tmp_path / "sdxl.safetensors"
    save_file({"model.diffusion_model." + k: v.contiguous() for k, v in gguf_values(path).items()}, str(reference),
              metadata=config)
    model, plain = load_diffusion_model(path, "cpu", torch.float32), load_diffusion_model(reference, "cpu", torch.float32)
    assert model.arch == plain.arch == "sdxl"
    g = torch.Generator().manual_seed(2)
    x, t = torch.randn(1, 4, 8, 8, generator=g), torch.tensor([500.0])
    context = torch.randn(1, 4, unet_config("sdxl").context_dim, generator=g)
    y = torch.randn(1, unet_config("sdxl").adm_in_channels, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, context, y), plain(x, t, context, y), rtol=1e-5, atol=1e-5)


def test_quantized_wan_predicts_as_its_dequantized_weights(tmp_path):
    from safetensors.torch import save_file

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.gguf_layers import QuantizedLinear
    from graphflow.testing import UMT5_TINY_WIDTH, gguf_values, wan_state, write_gguf

    path = write_gguf(tmp_path / "wan-Q8_0.gguf", wan_state(), "wan", "Q8_0")
    reference = tmp_path / "wan.safetensors"
    save_file({k: v.contiguous() for k, v in gguf_values(path).items()}, str(reference))
    model, plain = load_diffusion_model(path, "cpu", torch.float32), load_diffusion_model(reference, "cpu", torch.float32)
    assert model.arch == "wan" and any(isinstance(m, QuantizedLinear) for m in model.unet.modules())
    g = torch.Generator().manual_seed(0)
    x, sigma = torch.randn(1, 16, 2, 8, 8, generator=g), torch.tensor([0.5])
    context = torch.randn(1, 6, UMT5_TINY_WIDTH, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(model(x, sigma, context, None), plain(x, sigma, context, None), rtol=1e-5, atol=1e-5)


def test_quantized_llama_gguf_keeps_its_linear_weights_quantized(registry, tmp_folders):
    """A Q8_0 LLaVA-Llama-3 GGUF (q / k permuted as llama.cpp stores them): its Linear weights stay
    quantized, and HunyuanVideo's CLIP encodes as with a .safetensors of gguf-py's dequantized values
    put back in Hugging Face's row order (inverting llama.cpp's permute by its own index map)."""
    import gguf as gg
    from safetensors.torch import save_file

    from graphflow.models.gguf import LLAMA_NAMES
    from graphflow.models.gguf_layers import QuantizedLinear
    from graphflow.testing import llava_llama3_config, llava_llama3_state, write_text_encoder
    from tests.test_nodes_image_mask import call

    config = llava_llama3_config()
    heads = {"q_proj.weight": config.num_heads, "k_proj.weight": config.num_kv_heads}
    text = tmp_folders.models / "text_encoders"
    text.mkdir()
    write_text_encoder(text / "clip_l.safetensors", "clip_l")
    writer = gg.GGUFWriter(str(text / "llava-llama3-Q8_0.gguf"), arch="llama")
    writer.add_head_count(config.num_heads)
    writer.add_head_count_kv(config.num_kv_heads)
    reference = {}
    for key, value in llava_llama3_state().items():
        n = next((h for end, h in heads.items() if key.endswith(end)), None)
        stored = value if n is None else _llama_cpp_permute(value, n)
        cpp_key = key
        for theirs, ours in reversed(LLAMA_NAMES):
            cpp_key = cpp_key.replace(ours, theirs)
        if value.dim() == 2 and "embed_tokens" not in key:
            blocks = gg.quants.quantize(stored.numpy(), gg.GGMLQuantizationType.Q8_0)
            writer.add_tensor(cpp_key, blocks, raw_dtype=gg.GGMLQuantizationType.Q8_0)
            values = torch.from_numpy(gg.quants.dequantize(blocks, gg.GGMLQuantizationType.Q8_0))
        else:
            writer.add_tensor(cpp_key, stored.numpy())
            values = stored
        if n is not None:  # row i of the stored tensor is row order[i] of Hugging Face's
            order = _llama_cpp_permute(torch.arange(value.shape[0]).float(), n).long()
            values = torch.empty_like(values).index_copy_(0, order, values)
        reference[key] = values.contiguous()
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    save_file(reference, str(text / "llava_llama3_dequantized.safetensors"))
    ours = call(registry, "DualCLIPLoaderGGUF", clip_name1="clip_l.safetensors", clip_name2="llava-llama3-Q8_0.gguf",
                type="hunyuan_video")
    theirs = call(registry, "LoadDualTextEncoders", clip_name1="clip_l.safetensors",
                  clip_name2="llava_llama3_dequantized.safetensors", type="hunyuan_video")
    ours, theirs = (c[0] if isinstance(c, tuple) else c for c in (ours, theirs))
    assert sum(isinstance(m, QuantizedLinear) for m in ours.model.modules()) == 7 * config.num_layers
    torch.testing.assert_close(ours.encode("a red fox")[0], theirs.encode("a red fox")[0], rtol=1e-4, atol=1e-4)


def test_reading_a_gguf_header_is_torch_free(tmp_path):
    """Validation and `graphflow inspect` read a .gguf's names and shapes without importing torch."""
    import subprocess
    import sys
    from pathlib import Path

    from graphflow.testing import write_gguf

    path = write_gguf(tmp_path / "flux.gguf", _tiny_flux_state(), "flux", "Q8_0")
    code = ("import sys; from graphflow.models.file_check import model_file_problem; from pathlib import Path; "
            f"print(model_file_problem('vae', Path({str(path)!r})) is not None, "
            "sorted(m for m in ('torch', 'safetensors') if m in sys.modules))")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True []"


def _hostile_gguf(path, arch: str, fields=(), tensors=None):
    """A GGUF file with `fields` ((gguf-py writer method name, key, value), ...) and tensors (F32)."""
    import gguf as gg

    writer = gg.GGUFWriter(str(path), arch=arch)
    for method, *args in fields:
        getattr(writer, method)(*args)
    for key, value in (tensors or {"x.weight": np.zeros((4, 32), np.float32)}).items():
        writer.add_tensor(key, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("case,message", [
    ("arch_not_utf8", "general.architecture is not UTF-8 text"),
    ("t5_token_type", "token_type holds 9, not a SentencePiece piece type"),
    ("llama_7_heads", "16 rows: not whole heads of rotary pairs for 7 heads"),
    ("llama_heads_string", "llama.attention.head_count is b'32', not a positive whole number"),
    ("llama_heads_float", "llama.attention.head_count is 2.5, not a positive whole number"),
    ("orig_shape_negative", r"orig_shape.w.weight is \[-1, 16\]: not a shape of the tensor's 64 values"),
    ("orig_shape_wrong_count", r"orig_shape.w.weight is \[3, 5\]: not a shape of the tensor's 64 values"),
    ("truncated", "truncated"),
])
def test_hostile_metadata_is_a_clear_error_everywhere(tmp_path, case, message):
    """Metadata that does not add up is a GGUFError naming what, from GGUFContents (the loaders'
    reader) and the loaders' header check, and a problem from validation (model_file_problem, as
    `graphflow validate` and the server's check); never another exception."""
    from graphflow.models.file_check import model_file_problem
    from graphflow.models.gguf import GGUFContents, GGUFError, check_gguf_file

    path = tmp_path / f"{case}.gguf"
    llama = {"blk.0.attn_q.weight": np.zeros((16, 32), np.float32)}
    if case == "arch_not_utf8":
        _hostile_gguf(path, "QQQQ")
        path.write_bytes(path.read_bytes().replace(b"QQQQ", b"\xffQQQ"))
    elif case == "t5_token_type":
        _hostile_gguf(path, "t5encoder", [("add_tokenizer_model", "t5"), ("add_token_list", ["<pad>", "</s>", "a"]),
                                          ("add_token_scores", [0.0, 0.0, -1.0]), ("add_token_types", [3, 3, 9])])
    elif case == "llama_7_heads":
        _hostile_gguf(path, "llama", [("add_head_count", 7), ("add_head_count_kv", 1)], llama)
    elif case == "llama_heads_string":
        _hostile_gguf(path, "llama", [("add_string", "llama.attention.head_count", "32")], llama)
    elif case == "llama_heads_float":
        _hostile_gguf(path, "llama", [("add_float32", "llama.attention.head_count", 2.5)], llama)
    elif case.startswith("orig_shape"):
        shape = [-1, 16] if case == "orig_shape_negative" else [3, 5]
        _hostile_gguf(path, "flux", [("add_array", "comfy.gguf.orig_shape.w.weight", shape)],
                      {"w.weight": np.zeros((2, 32), np.float32)})
    else:
        _hostile_gguf(path, "flux")
        path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(GGUFError, match=message):
        GGUFContents(path)
    if case in ("arch_not_utf8", "truncated"):
        with pytest.raises(GGUFError, match=message):
            check_gguf_file(path, text_encoder=False)
    kind = "text_encoders" if case.startswith(("t5", "llama")) else "diffusion_models"
    problem = model_file_problem(kind, path)
    assert problem is not None and re.search(message, problem), problem


def _header(tensors: int, fields: bytes = b"", field_count: int = 0, tensor_infos: bytes = b"") -> bytes:
    """A GGUF v3 header by the format's layout (little-endian counts, u64-length names)."""
    return b"GGUF" + (3).to_bytes(4, "little") + tensors.to_bytes(8, "little") + field_count.to_bytes(8, "little") \
        + fields + tensor_infos + bytes(64)


def _name(text: bytes) -> bytes:
    return len(text).to_bytes(8, "little") + text


@pytest.mark.parametrize("data,message", [
    (_header(2**40), "claims 1099511627776 tensors, over the"),
    (_header(0, field_count=2**40), "claims 1099511627776 metadata fields"),
    # an array of u32 (type 9 of type 4) claiming 2**40 items
    (_header(0, _name(b"a") + (9).to_bytes(4, "little") + (4).to_bytes(4, "little") + (2**40).to_bytes(8, "little"),
             1), "claims 1099511627776 items"),
    (_header(1, tensor_infos=_name(b"w") + (2**31).to_bytes(4, "little")), "has 2147483648 dims, over the 8"),
    (_header(1, tensor_infos=(2**40).to_bytes(8, "little")), "claims 1099511627776 bytes"),
])
def test_header_counts_are_bounded_before_they_are_read(tmp_path, data, message):
    """A header claiming more items than any real file has is refused from the claim, not looped
    over (a 10 GB file claiming 400M tensors built 400M Python tuples)."""
    from graphflow.models.gguf import GGUFContents, GGUFError, header_architecture

    path = tmp_path / "claims.gguf"
    path.write_bytes(data)
    for read in (GGUFContents, header_architecture):
        with pytest.raises(GGUFError, match=message):
            read(path)


@pytest.mark.parametrize("fields,q_heads,k_heads", [((), 32, 8), ((("add_head_count", 4),), 4, 4)])
def test_llama_head_counts_where_the_file_lacks_them(tmp_path, fields, q_heads, k_heads):
    """No head counts: the pack's Llama 3 numbers (llama_permute(sd, 32, 8)); head_count without
    head_count_kv: as many k heads as q heads, as llama.cpp reads the absent key."""
    from graphflow.models.gguf import GGUFContents

    g = torch.Generator().manual_seed(8)
    q, k = torch.randn(64, 32, generator=g), torch.randn(16, 32, generator=g)
    path = _hostile_gguf(tmp_path / "llama.gguf", "llama", fields,
                         {"blk.0.attn_q.weight": _llama_cpp_permute(q, q_heads).numpy(),
                          "blk.0.attn_k.weight": _llama_cpp_permute(k, k_heads).numpy()})
    contents = GGUFContents(path)
    assert torch.equal(contents.tensor("model.layers.0.self_attn.q_proj.weight"), q)
    assert torch.equal(contents.tensor("model.layers.0.self_attn.k_proj.weight"), k)


@pytest.mark.parametrize("qtype", ["IQ4_NL", "IQ4_XS"])
def test_iq_quants_are_dequantized_when_read_as_gguf_py_does(tmp_path, qtype):
    """A type graphflow has no kernel for (the IQ quants) is read through gguf.quants.dequantize, as
    the pack falls back to it: a FLUX with IQ layers predicts as its gguf-py-dequantized twin; those
    layers are plain Linear layers holding the values."""
    import gguf as gg
    from safetensors.torch import save_file

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.gguf_layers import QuantizedLinear
    from graphflow.models.weight_files import WeightFile
    from graphflow.testing import gguf_values

    kind = gg.GGMLQuantizationType[qtype]
    block, nbytes = gg.GGML_QUANT_SIZES[kind]
    rng = np.random.default_rng(3)
    writer = gg.GGUFWriter(str(tmp_path / "flux.gguf"), arch="flux")
    iq = []
    for key, value in _tiny_flux_state().items():
        array = value.numpy()
        if array.ndim == 2 and array.shape[1] % block == 0 and len(iq) < 3:
            raw = rng.integers(0, 256, size=(array.shape[0] * array.shape[1] // block, nbytes), dtype=np.uint8)
            raw[:, :2] = (rng.standard_normal((len(raw), 1)) * 0.01).astype(np.float16).view(np.uint8)  # d: finite
            writer.add_tensor(key, raw.reshape(array.shape[0], -1), raw_dtype=kind)
            iq.append(key)
        else:
            writer.add_tensor(key, array.astype(np.float32 if array.ndim == 1 else np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    reference = gguf_values(tmp_path / "flux.gguf")
    with WeightFile(tmp_path / "flux.gguf") as f:
        assert {f.dtypes[k] for k in iq} == {qtype}
        for key in iq:
            assert torch.equal(f.get(key, dtype=torch.float32), reference[key]), key
    save_file({k: v.contiguous() for k, v in reference.items()}, str(tmp_path / "dequantized.safetensors"))
    model = load_diffusion_model(tmp_path / "flux.gguf", "cpu", torch.float32)
    plain = load_diffusion_model(tmp_path / "dequantized.safetensors", "cpu", torch.float32)
    for key in iq:
        layer = model.unet.get_submodule(key.rpartition(".")[0])
        assert not isinstance(layer, QuantizedLinear) and layer.weight.dtype == torch.float32
    x, sigma, context, y = _flux_inputs()
    with torch.no_grad():
        torch.testing.assert_close(model(x, sigma, context, y, guidance=torch.tensor([3.5])),
                                   plain(x, sigma, context, y, guidance=torch.tensor([3.5])), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_0", "Q5_0"])
def test_single_scale_types_dequantize_straight_to_half_as_float32_then_cast(qtype):
    """Q8_0 / Q4_0 / Q5_0 are computed straight in float16 (no float32 copy of the weight): for
    random blocks with scales over fp16's whole range (subnormal to huge), bit for bit gguf-py's
    float32 values cast to float16."""
    _, nbytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[qtype]]
    rng = np.random.default_rng(11)
    raw = rng.integers(0, 256, size=(512, nbytes), dtype=np.uint8)
    scales = rng.integers(0, 0x7C00, size=512, dtype=np.uint16)  # every finite positive fp16, subnormals too
    raw[:, :2] = scales.view(np.uint8).reshape(512, 2)
    with np.errstate(over="ignore"):  # the largest scales overflow to inf: ours must too
        expected = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType[qtype]).astype(np.float16)
    ours = dequantize(torch.from_numpy(raw), qtype, expected.shape, torch.float16)
    assert ours.dtype == torch.float16
    np.testing.assert_array_equal(ours.numpy().view(np.uint16), expected.view(np.uint16))


def test_any_weight_patch_on_a_quantized_layer_changes_its_values_not_its_bytes():
    """An attention multiplier (or a hook's model-as-LoRA) on a GGUF layer scales its dequantized
    values, as a LoRA does; the blocks stay, and readers (saving, merging) get the patched values."""
    import functools

    import torch.nn.functional as F

    from graphflow import memory
    from graphflow.memory import WeightPatch
    from graphflow.models.attention_multiply import _scaled
    from graphflow.models.gguf_layers import QuantizedLinear, dequantize

    torch.manual_seed(4)
    layer = QuantizedLinear(64, 32, False, "Q8_0", torch.float32)
    blocks = torch.randint(0, 256, (32, 68), dtype=torch.uint8)
    blocks.view(32, 2, 34)[:, :, :2] = torch.full((32, 2, 1), 0.01).half().view(torch.uint8)  # finite scales
    layer.weight = torch.nn.Parameter(blocks.clone(), requires_grad=False)
    net = torch.nn.Sequential(layer)
    patches = (WeightPatch("0.weight", functools.partial(_scaled, 0.5)),)
    values = dequantize(blocks, "Q8_0", (32, 64))
    x = torch.randn(3, 64)
    with torch.no_grad(), memory.use(net, "diffusion_model", "gguf-multiply-test", patches=patches):
        out = net(x)
        assert layer.weight.dtype == torch.uint8 and torch.equal(layer.weight.data, blocks)  # between forwards
    torch.testing.assert_close(out, F.linear(x, values * 0.5))
    torch.testing.assert_close(memory.manager().weights(net, patches)["0.weight"], values * 0.5)
    memory.manager().unpatch(net)
    assert torch.equal(layer.weight.data, blocks)
