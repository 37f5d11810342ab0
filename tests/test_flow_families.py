"""What every flow-model family must do, one row per family: its file detected (bare or under
model.diffusion_model.), named and inspected; loaded with the file's weights; ComfyUI's default
sampling; saved by ModelSave and read back by UNETLoader and CheckpointLoaderSimple (which says
which VAE and text encoder to load); dropped under memory pressure and read back from its file;
UNETLoader's fp8 weight_dtype; bf16 / fp32 only where ComfyUI runs it so; prompts of other lengths
not batched (ComfyUI's CONDRegular); LoRAs in ComfyUI's and kohya's names.

A family's own numerics (against diffusers), nodes and detection subtleties stay in its own file
(tests/test_<family>.py). A new family: one more Family row in FAMILIES (the optional fields switch
the fp8 / LoRA / fp16 tests on or off for it).
"""

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import pytest
import torch
from safetensors.torch import load_file

from graphflow import testing
from graphflow.models.aura_flow import AuraFlow
from graphflow.models.chroma import Chroma
from graphflow.models.hidream import HiDream
from graphflow.models.hunyuan_image import HunyuanImage
from graphflow.models.hunyuan_video import HunyuanVideo
from graphflow.models.lumina2 import Lumina2
from graphflow.models.mochi import Mochi
from graphflow.models.qwen_image import QwenImage
from graphflow.models.wan import Wan

PREFIX = "model.diffusion_model."


@dataclass(frozen=True)
class Family:
    id: str
    arch: str
    family: str  # detect_flow_model's family
    name: str  # detect_flow_model's name, as inspect shows it: "<name> [<arch>, <family>]"
    kind: str  # file_kind.identify's name
    writer: Callable  # graphflow.testing's writer of a tiny file: writer(path, prefixed=, dtype=)
    file: str  # the file's name, as ComfyUI's example workflows have it
    cls: type  # the network class
    config: object  # the tiny config the writer's file holds
    latent: str  # latent format name
    vae_file: str  # the note of a file without a VAE names this file
    text_loader: str  # the note of a file without a text encoder names this loader (and type)
    report: tuple  # more that inspect_report says of the network
    in_channels: int  # the network's input channels (the latent's and any concatenated conditioning's)
    channels: int  # latent channels
    text_width: int  # the conditioning tensor's width
    sampling: tuple  # ComfyUI's default sampling: (kind, shift, multiplier); kind "shift" (discrete flow) or "flux"
    video: bool = False
    adm: int = 0  # pooled vector width
    guidance_embed: bool = False
    masked_timesteps: bool = False
    fp8: tuple | None = None  # (Linear weights kept in fp8, norms kept in the compute dtype) with weight_dtype fp8
    fp16: bool = True  # False: ComfyUI runs it in bf16 or fp32 only (supported_inference_dtypes)
    extra: Callable | None = None  # generator -> the network's other inputs (kwargs) where the text alone is not enough
    lora: tuple | None = None  # (the Linear a LoRA patches, one it leaves, key styles beside ComfyUI's and kohya's)
    # (its ModelMerge node, {input prefix: ratio} in the node's order for every weight of the tiny model (blocks 0
    # and 1 standing for all blocks), the full model's block count)
    merge: tuple | None = None


def _hidream_extra(g):
    return {"y": torch.randn(1, testing.HIDREAM_TINY_POOLED_DIM, generator=g),
            "llama_states": torch.randn(1, 4, 7, testing.HIDREAM_TINY_LLAMA_DIM, generator=g)}


FAMILIES = [
    Family(id="qwen_image", arch="qwen_image", family="qwen_image", name="Qwen-Image",
           kind="Qwen-Image diffusion model", writer=testing.write_qwen_image, file="qwen_image_bf16.safetensors",
           cls=QwenImage, config=testing.qwen_image_config(), latent="wan21",
           vae_file="qwen_image_vae.safetensors", text_loader="CLIPLoader, type qwen_image",
           report=("2 double-stream blocks",), in_channels=64, channels=16,
           text_width=testing.QWEN_IMAGE_TINY_JOINT_DIM, sampling=("flux", 1.15, 1.0), video=True,
           fp8=(("transformer_blocks.0.attn.to_q.weight",), ("txt_norm.weight",)), fp16=False,
           lora=("transformer_blocks.1.attn.to_q", "transformer_blocks.0.attn.to_q",
                 ("lycoris_{flat}", "{path}")),  # SimpleTuner's LyCORIS; bare (ComfyUI's QwenImage map)
           merge=("ModelMergeQwenImage", {"pos_embeds.": 0.75, "img_in.": 1.0, "txt_norm.": 0.0, "txt_in.": 0.25,
                                          "time_text_embed.": 0.5, "transformer_blocks.0.": 0.0,
                                          "transformer_blocks.1.": 0.4, "proj_out.": 0.9}, 60)),
    Family(id="hidream", arch="hidream", family="hidream", name="HiDream-I1",
           kind="HiDream-I1 diffusion model", writer=testing.write_hidream, file="hidream_i1_dev_bf16.safetensors",
           cls=HiDream, config=testing.hidream_config(), latent="flux",
           vae_file="ae.safetensors", text_loader="QuadrupleCLIPLoader",
           report=("2 double + 2 single blocks", "4 experts (top 2)"), in_channels=16, channels=16,
           text_width=testing.HIDREAM_TINY_T5_DIM, sampling=("shift", 1.0, 1000.0), adm=testing.HIDREAM_TINY_POOLED_DIM,
           fp8=(("double_stream_blocks.0.block.attn1.to_q.weight",
                 "double_stream_blocks.0.block.ff_i.experts.0.w1.weight"),
                ("double_stream_blocks.0.block.attn1.q_rms_norm.weight",)), fp16=False, extra=_hidream_extra,
           lora=("double_stream_blocks.1.block.attn1.to_q", "double_stream_blocks.0.block.attn1.to_q",
                 ("lycoris_{flat}", "transformer.{path}"))),  # SimpleTuner's LyCORIS and PEFT names
    Family(id="hunyuan_video", arch="hunyuan_video", family="hunyuan_video", name="HunyuanVideo 1.0 text-to-video",
           kind="HunyuanVideo 1.0 diffusion model", writer=testing.write_hunyuan_video,
           file="hunyuan_video_t2v_720p_bf16.safetensors", cls=HunyuanVideo, config=testing.hunyuan_video_config(),
           latent="hunyuan_video", vae_file="hunyuan_video_vae_bf16.safetensors",
           text_loader="DualCLIPLoader, type hunyuan_video",
           report=("2 double + 2 single blocks", "guidance-distilled"), in_channels=16, channels=16,
           text_width=testing.HUNYUAN_VIDEO_TINY_TEXT_DIM, sampling=("shift", 7.0, 1000.0), video=True,
           adm=testing.hunyuan_video_config().vec_in_dim, guidance_embed=True,
           fp8=(("double_blocks.0.img_attn_qkv.weight",), ("single_blocks.0.q_norm.weight",)), fp16=False,
           lora=("double_blocks.1.img_attn_qkv", "double_blocks.0.img_attn_qkv", ())),
    Family(id="hunyuan_image", arch="hunyuan_image", family="hunyuan_image", name="HunyuanImage 2.1",
           kind="HunyuanImage 2.1 diffusion model", writer=testing.write_hunyuan_image,
           file="hunyuanimage2.1_bf16.safetensors", cls=HunyuanImage, config=testing.hunyuan_image_config(),
           latent="hunyuan_image21", vae_file="hunyuan_image_2.1_vae_fp16.safetensors",
           text_loader="DualCLIPLoader, type hunyuan_image",
           report=("2 double + 2 single blocks", f"byT5 glyph width {testing.HUNYUAN_IMAGE_TINY_BYT5_DIM}"),
           in_channels=64, channels=64, text_width=testing.HUNYUAN_IMAGE_TINY_TEXT_DIM,
           sampling=("shift", 5.0, 1000.0),
           fp8=(("double_blocks.0.img_attn_qkv.weight", "byt5_in.fc1.weight"), ("single_blocks.0.q_norm.weight",)),
           fp16=False, lora=("double_blocks.1.img_attn_qkv", "double_blocks.0.img_attn_qkv", ())),
    Family(id="lumina2", arch="lumina2", family="lumina2", name="Lumina Image 2.0",
           kind="Lumina Image 2.0 diffusion model", writer=testing.write_lumina2,
           file="lumina_2_model_bf16.safetensors", cls=Lumina2, config=testing.lumina2_config(), latent="flux",
           vae_file="ae.safetensors", text_loader="CLIPLoader, type lumina2",
           report=("2 layers + 2 refiner layers",), in_channels=16, channels=16,
           text_width=testing.lumina2_config().cap_feat_dim, sampling=("shift", 6.0, 1.0),
           fp8=(("layers.0.attention.qkv.weight",), ("cap_embedder.0.weight",)),
           lora=("layers.1.attention.qkv", "layers.0.attention.qkv", ())),
    Family(id="chroma", arch="chroma", family="chroma", name="Chroma",
           kind="Chroma diffusion model", writer=testing.write_chroma, file="chroma-unlocked-v50.safetensors",
           cls=Chroma, config=testing.chroma_config(), latent="flux",
           vae_file="ae.safetensors", text_loader="CLIPLoader, type chroma",
           report=("2 double + 2 single blocks", "approximator 2 layers of 48"), in_channels=16, channels=16,
           text_width=testing.chroma_config().context_in_dim, sampling=("flux", 1.15, 1.0),
           fp8=(("double_blocks.0.img_attn.qkv.weight",), ("double_blocks.0.img_attn.norm.query_norm.scale",)),
           lora=("double_blocks.1.txt_attn.qkv", "double_blocks.0.txt_attn.qkv", ())),
    Family(id="mochi", arch="mochi", family="mochi", name="Mochi 1 Preview",
           kind="Mochi diffusion model", writer=testing.write_mochi, file="mochi_preview_bf16.safetensors",
           cls=Mochi, config=testing.mochi_config(), latent="mochi",
           vae_file="mochi_vae.safetensors", text_loader="CLIPLoader, type mochi",
           report=("2 blocks, widths 48 (video) / 24 (text)", "each channel standardised"), in_channels=12,
           channels=12, text_width=testing.mochi_config().text_dim, sampling=("shift", 6.0, 1.0), video=True,
           masked_timesteps=True, lora=("blocks.1.attn.qkv_x", "blocks.0.attn.qkv_x", ()),
           merge=("ModelMergeMochiPreview", {"pos_frequencies.": 0.6, "t_embedder.": 1.0, "t5_y_embedder.": 0.3,
                                             "t5_yproj.": 0.0, "blocks.0.": 1.0, "blocks.1.": 0.25,
                                             "final_layer.": 0.8}, 48)),
    Family(id="wan_t2v", arch="wan", family="wan_t2v", name="Wan 2.1 text-to-video",
           kind="Wan 2.1 diffusion model", writer=testing.write_wan, file="wan2.1_t2v_1.3B_fp16.safetensors",
           cls=Wan, config=testing.wan_config(), latent="wan21",
           vae_file="wan_2.1_vae.safetensors", text_loader="UMT5-XXL with CLIPLoader, type wan",
           report=("2 blocks, width 256, 2 heads",), in_channels=16, channels=16,
           text_width=testing.wan_config().text_dim, sampling=("shift", 8.0, 1000.0), video=True,
           lora=("blocks.1.self_attn.q", "blocks.0.self_attn.q", ())),
    Family(id="wan_i2v", arch="wan", family="wan_i2v", name="Wan 2.1 image-to-video",
           kind="Wan 2.1 diffusion model", writer=partial(testing.write_wan, i2v=True),
           file="wan2.1_i2v_480p_14B_fp16.safetensors", cls=Wan, config=testing.wan_config(i2v=True), latent="wan21",
           vae_file="wan_2.1_vae.safetensors", text_loader="UMT5-XXL with CLIPLoader, type wan",
           report=("2 blocks, width 256, 2 heads", "36 input ch (I2V"), in_channels=36, channels=16,
           text_width=testing.wan_config().text_dim, sampling=("shift", 8.0, 1000.0), video=True,
           merge=("ModelMergeWAN2_1", {"patch_embedding.": 0.7, "time_embedding.": 1.0, "time_projection.": 0.2,
                                       "text_embedding.": 0.0, "img_emb.": 0.45, "blocks.0.": 1.0, "blocks.1.": 0.25,
                                       "head.": 0.9}, 40)),
    Family(id="wan22_ti2v", arch="wan", family="wan22_ti2v", name="Wan 2.2 TI2V 5B (text/image-to-video)",
           kind="Wan 2.2 TI2V 5B diffusion model", writer=partial(testing.write_wan, ti2v=True),
           file="wan2.2_ti2v_5B_fp16.safetensors", cls=Wan, config=testing.wan_config(ti2v=True), latent="wan22",
           vae_file="wan2.2_vae.safetensors", text_loader="UMT5-XXL with CLIPLoader, type wan",
           report=("2 blocks, width 256, 2 heads", "48 input ch"), in_channels=48, channels=48,
           text_width=testing.wan_config().text_dim, sampling=("shift", 8.0, 1000.0), video=True,
           masked_timesteps=True),
    # ModelMergeAuraflow (two block groups): tests/test_aura_flow.py
    Family(id="aura_flow", arch="aura_flow", family="aura_flow", name="AuraFlow", kind="AuraFlow diffusion model",
           writer=testing.write_aura_flow, file="aura_flow_0.3_model.safetensors", cls=AuraFlow,
           config=testing.aura_flow_config(), latent="sdxl", vae_file="sdxl_vae.safetensors",
           text_loader="Pile-T5-XL with CLIPLoader",
           report=("2 double + 2 single layers", "position table 7^2"), in_channels=4, channels=4,
           text_width=testing.AURA_FLOW_TINY_TEXT_DIM, sampling=("shift", 1.73, 1.0),
           fp8=(("double_layers.0.attn.w1q.weight", "single_layers.0.mlp.c_fc1.weight"), ("positional_encoding",)),
           lora=("single_layers.1.attn.w1q", "single_layers.0.attn.w1q", ())),
]


def families(*, having: str | None = None, lacking: str | None = None):
    """FAMILIES as pytest params (by id), those with (or without) a row field set."""
    return [pytest.param(f, id=f.id) for f in FAMILIES
            if (having is None or getattr(f, having)) and (lacking is None or not getattr(f, lacking))]


def load(path, **options):
    from graphflow.models.checkpoint import load_diffusion_model

    return load_diffusion_model(path, device="cpu", **{"dtype": torch.float32, **options})


def assert_notes(f: Family, notes):
    assert any(f.vae_file in n for n in notes), notes
    assert any(f.text_loader in n for n in notes), notes


def meta_model(f: Family):
    from graphflow.models.diffusion_model import DiffusionModel

    with torch.device("meta"):
        net = f.cls(f.config)
    return DiffusionModel(net, f.arch, "flow")


@pytest.mark.parametrize("prefixed", [False, True], ids=["bare", "prefixed"])
@pytest.mark.parametrize("f", families())
def test_detected_and_loaded(tmp_path, f, prefixed):
    """detect_flow_model names the family, its config and latent; a file without VAE or text encoder
    says which to load; the file kind and inspect report name it; UNETLoader loads the file's weights."""
    from graphflow.models.checkpoint_report import inspect_report
    from graphflow.models.file_kind import identify
    from graphflow.models.flow_architecture import detect_flow_model
    from graphflow.models.weight_files import WeightFile

    path = f.writer(tmp_path / f.file, prefixed=prefixed, dtype=torch.float32)
    with WeightFile(path) as w:
        info = detect_flow_model(w.shapes)
        kind = identify(w.shapes)
    assert (info.arch, info.family, info.name, info.prefix) == (f.arch, f.family, f.name, PREFIX if prefixed else "")
    assert info.config == f.config and info.latent_format.name == f.latent and info.vae is None
    assert_notes(f, info.notes)
    assert kind.folder == "diffusion_models" and kind.name == f.kind
    report = inspect_report(path)
    assert f"{f.name} [{f.arch}, {f.family}]" in report
    assert all(part in report for part in f.report), report
    model = load(path)
    assert model.arch == f.arch and model.is_flow and isinstance(model.unet, f.cls)
    assert model.is_video == f.video and model.masked_timesteps == f.masked_timesteps
    assert model.guidance_embed == f.guidance_embed and model.latent_format.name == f.latent
    assert (model.in_channels, model.adm_channels) == (f.in_channels, f.adm)
    ours = model.unet.state_dict()
    stored = {k.removeprefix(info.prefix): v for k, v in load_file(str(path)).items()}
    assert all(torch.equal(ours[k], v) for k, v in stored.items())


@pytest.mark.parametrize("f", families())
def test_sampling_defaults(f):
    """ComfyUI's sampling_settings: discrete flow sigma = s t / (1 + (s - 1) t) over 1000 times, or
    ModelSamplingFlux's e^mu / (e^mu + 1 / t - 1) over 10000; the network told sigma x the multiplier
    (graphflow's flow networks scale sigma themselves, so the denoiser's own scale is 1)."""
    from graphflow.sampling.flow_sampling import FlowDenoiser, model_sampling_for
    from graphflow.sampling.schedules import compute_sigmas

    kind, shift, multiplier = f.sampling
    model = meta_model(f)
    assert model.latent_format.name == f.latent and model.sampling_shift == shift
    schedule = model_sampling_for(model)
    assert (schedule.kind, schedule.shift, schedule.multiplier) == f.sampling

    def sigma(t):
        t = t.double()
        return math.exp(shift) / (math.exp(shift) + 1 / t - 1) if kind == "flux" else shift * t / (1 + (shift - 1) * t)

    n = 10000 if kind == "flux" else 1000
    assert torch.allclose(schedule.sigmas.double(), sigma(torch.arange(1, n + 1) / n), atol=1e-6)
    want = torch.cat([sigma(torch.tensor([1.0, 0.75, 0.5, 0.25])), torch.zeros(1, dtype=torch.float64)])
    assert torch.allclose(compute_sigmas(schedule, "simple", 4).double(), want, atol=1e-6)
    assert float(schedule.timestep(torch.tensor(0.5))) == 0.5 * multiplier
    assert FlowDenoiser(model, schedule).timestep_scale == 1.0


@pytest.mark.parametrize("f", families())
def test_saved_reloaded_and_read_back_when_dropped(module_manager, tmp_path, f):
    """ModelSave's file (the weights under model.diffusion_model.) loads back unchanged with
    UNETLoader, and with CheckpointLoaderSimple as a model without VAE or text encoder, its notes
    saying which to load. When RAM runs short the memory manager drops the loaded network and reads
    it back from that file unchanged."""
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.models.checkpoint_save import save_model

    model = load(f.writer(tmp_path / f.file, dtype=torch.float32))
    saved = save_model(tmp_path / "saved_model.safetensors", model)
    assert all(k.startswith(PREFIX) for k in load_file(str(saved)))
    again = load(saved)
    assert again.arch == f.arch and again.unet.config == f.config
    before = {k: v.clone() for k, v in again.unet.state_dict().items()}
    assert all(torch.equal(before[k], v) for k, v in model.unet.state_dict().items())
    ckpt = load_checkpoint(saved, device="cpu", dtype=torch.float32)
    assert isinstance(ckpt.model.unet, f.cls) and ckpt.vae is None and ckpt.clip is None
    assert_notes(f, ckpt.info.notes)

    comp = module_manager.components[id(again.unet)]
    assert comp.name == f"diffusion_model:{f.arch}" and comp.reload is not None
    module_manager._drop(comp)
    assert comp.state == "dropped" and all(p.is_meta for p in again.unet.parameters())
    module_manager.present(again.unet)
    assert all(torch.equal(again.unet.state_dict()[k], v) for k, v in before.items())


@pytest.mark.parametrize("f", families(having="fp8"))
def test_fp8_weight_dtype(tmp_path, f):
    """UNETLoader's weight_dtype fp8_e4m3fn: the Linear weights stored in fp8, upcast per layer;
    norms stay in the compute dtype; the velocity stays near the full-precision one."""
    path = f.writer(tmp_path / f.file, dtype=torch.float32)
    full, fp8 = load(path), load(path, weight_dtype="fp8_e4m3fn")
    linears, norms = f.fp8
    assert all(fp8.unet.get_parameter(name).dtype == torch.float8_e4m3fn for name in linears)
    assert all(fp8.unet.get_parameter(name).dtype == torch.float32 for name in norms)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, f.channels, *((1,) if f.video else ()), 4, 4, generator=g)
    context, sigma = torch.randn(1, 3, f.text_width, generator=g), torch.tensor([0.5])
    extra = f.extra(g) if f.extra else {}
    with torch.no_grad():
        a, b = full(x, sigma, context, **extra), fp8(x, sigma, context, **extra)
    assert 0 < float((a - b).abs().max()) < 0.1 * float(a.abs().max())


@pytest.mark.parametrize("f", families(lacking="fp16"))
def test_no_fp16_default(tmp_path, monkeypatch, f):
    """Where the flow default would be fp16 (a GPU without bf16) a family ComfyUI runs in bf16 or
    fp32 only loads in fp32; a dtype asked for is kept."""
    from graphflow.models import checkpoint

    path = f.writer(tmp_path / f.file)
    monkeypatch.setattr(checkpoint, "_flow_default_dtype", lambda device: torch.float16)
    assert checkpoint.load_diffusion_model(path, device="cpu").dtype == torch.float32
    assert checkpoint.load_diffusion_model(path, device="cpu", dtype=torch.bfloat16).dtype == torch.bfloat16
    assert checkpoint.flow_placement("cpu", None, f.arch)[1] == torch.float32
    assert checkpoint.flow_placement("cpu", None, "flux")[1] == torch.float16


@pytest.mark.parametrize("f", families(lacking="extra"))
def test_prompts_of_other_lengths_are_not_batched(f):
    """ComfyUI gives these DiTs their text as CONDRegular: prompts of other lengths run apart
    (repeating a shorter prompt's tokens would change the text the image attends to); equal
    lengths share a call."""
    from graphflow.sampling.guidance import _can_batch, prepare_conds

    model = meta_model(f)
    x = torch.zeros(1, f.channels, *((1,) if f.video else ()), 4, 4)
    short, long = ([(torch.zeros(1, n, 8), {})] for n in (3, 6))
    a, b, c = (prepare_conds(cond, model, x.shape, "cpu")[0] for cond in (short, long, long))
    assert not _can_batch((x, None, None, a), (x, None, None, b))
    assert _can_batch((x, None, None, b), (x, None, None, c))


@pytest.mark.parametrize("f", families(having="lora"))
def test_lora_in_comfyui_and_kohya_names(tmp_path, f):
    """A LoRA (lora_down / lora_up / alpha) in ComfyUI's names (diffusion_model. + the module path),
    kohya's (lora_unet_ + the path with _) and the family's other trainers' patches the Linear it
    names, W + strength * alpha / rank * up @ down, and no other."""
    from safetensors.torch import save_file

    from graphflow.memory import manager
    from graphflow.models.lora import apply_lora

    path, other, more = f.lora
    model = load(f.writer(tmp_path / f.file, dtype=torch.float32))
    weight, untouched = (model.unet.get_parameter(p + ".weight") for p in (path, other))
    g = torch.Generator().manual_seed(0)
    down, up = torch.randn(4, weight.shape[1], generator=g), torch.randn(weight.shape[0], 4, generator=g)
    for style in ("diffusion_model.{path}", "lora_unet_{flat}", *more):
        name = style.format(path=path, flat=path.replace(".", "_"))
        save_file({f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up, f"{name}.alpha": torch.tensor(2.0)},
                  str(tmp_path / "lora.safetensors"))
        patched, _ = apply_lora(model, None, tmp_path / "lora.safetensors", 0.5, 1.0)
        weights = manager().weights(patched.unet, patched.patches)
        assert torch.allclose(weights[path + ".weight"], weight + 0.5 * (2.0 / 4) * up @ down, atol=1e-5), name
        assert torch.equal(weights[other + ".weight"], untouched), name


@pytest.mark.parametrize("f", families(having="merge"))
def test_model_merge_picks_each_blocks_ratio(tmp_path, f):
    """The family's ModelMerge node: its inputs (one ratio per block of the full model), each weight
    ratio * model1 + (1 - ratio) * model2 by the longest input prefix it starts with, those under none
    taking the first input's (ComfyUI's rule); a model of another family refused as model2."""
    import re

    from graphflow.context import NodeInputError
    from graphflow.registry import Registry
    from tests.test_nodes_image_mask import call

    node, ratios, depth = f.merge
    reg = Registry().load_builtin()
    block = next(p for p in ratios if re.fullmatch(r"\w+\.\d+\.", p)).split(".")[0]
    widgets = [p.rstrip(".").replace(".", "_") for p in ratios]
    first, last = widgets.index(f"{block}_0"), len(widgets) - widgets[::-1].index(f"{block}_1")
    assert list(reg.get(node).input_specs) == ["model1", "model2", *widgets[:first],
                                               *(f"{block}_{i}" for i in range(depth)), *widgets[last:]]
    paths = [f.writer(tmp_path / f"m{seed}.safetensors", seed=seed, dtype=torch.float32) for seed in (0, 5)]
    m1, m2 = (load(p) for p in paths)
    a, b = (load_file(str(p)) for p in paths)
    merged = call(reg, node, model1=m1, model2=m2, **dict(zip(widgets, ratios.values()))).unet.state_dict()
    for name in a:
        under = [p for p in ratios if name.startswith(p)]
        r = ratios[max(under, key=len)] if under else next(iter(ratios.values()))
        if r in (0.0, 1.0):
            assert torch.equal(merged[name], a[name] if r else b[name]), name
        torch.testing.assert_close(merged[name], r * a[name] + (1 - r) * b[name], msg=name)
    other = next(g for g in FAMILIES if g.arch != f.arch)
    with pytest.raises(NodeInputError, match=f"{f.arch}.*{other.arch}") as e:
        call(reg, node, model1=m1, model2=load(other.writer(tmp_path / other.file, dtype=torch.float32)))
    assert e.value.input == "model2"
