"""Text encoders from separate files, as ComfyUI's CLIPLoader / DualCLIPLoader / TripleCLIPLoader
take them (files in models/text_encoders/ or models/clip/): each file is recognised from its key
names and shapes alone, so the order the files are given in does not matter.

A file holds one bare encoder (clip_l.safetensors, clip_g.safetensors, t5xxl_fp16.safetensors,
t5xxl_fp8_e4m3fn.safetensors: transformers' or OpenCLIP's names) or several under ComfyUI's
prefixes (`text_encoders.clip_l.transformer.`, `clip_g.transformer.`, `t5xxl.transformer.`, ...),
as ComfyUI's all-in-one checkpoints and CLIPSave files do; `flow_text_encoder_from_file` reads
those for the checkpoint loader too. Gemma-2 2B (Lumina 2) and Qwen2.5-VL 7B (Qwen-Image) are
language models whose files ComfyUI loads with one type alone (lumina2, qwen_image); Qwen2.5-VL 7B
also makes HunyuanImage 2.1's encoder (hunyuan_image), alone or with byT5-small glyph
(byt5_small_glyphxl_fp16.safetensors, a T5 of bytes: graphflow.models.hunyuan_image_text).
Pile-T5 XL is AuraFlow's encoder, under `text_encoders.pile_t5xl.transformer.` in ComfyUI's AuraFlow
checkpoints; ComfyUI's CLIPLoader has no AuraFlow type, but builds AuraFlow's encoder from a bare
Pile-T5 XL file whatever the type (its T5_XL detection), and so does graphflow.
"""

from pathlib import Path

import torch

from ..device import compute_device, default_dtype, load_device
from .checkpoint import _standalone_tower, load_text_encoder, read_standalone_tower, tower_of
from .flow_text import T5_ALONE, T5_ALONE_NAMES, FlowTextEncoder
from .gemma2 import SPIECE_KEYS as GEMMA_SPIECE_KEYS
from .gemma2 import GemmaTextEncoder, gemma2_prefix, gemma_text_encoder
from .qwen25vl import QwenTextEncoder, qwen25vl_prefix, qwen_text_encoder
from .hidream_text import HiDreamTextEncoder
from .hunyuan_image_text import HunyuanImageTextEncoder
from .llama import DecoderTextEncoder, HunyuanVideoTextEncoder, llama_from_weights, llama_prefix
from .configs import PILE_T5_VOCAB, UMT5_KEY, byte_level, pile_t5
from .t5 import T5Encoder, t5_from_weights, t5_prefix
from .text_encoders import ClipTower, TextEncoder
from .weight_files import CheckpointError, KeyView, WeightFile

COMPONENT_PREFIXES = {name: (f"text_encoders.{name}.transformer.", f"{name}.transformer.")
                      for name in ("clip_l", "clip_g", "t5xxl", "gemma2_2b", "pile_t5xl")}

# CLIPLoader's types graphflow can build
CLIP_TYPES = ("stable_diffusion", "stable_cascade", "sd3", "flux", "chroma", "pixart", "ltxv", "mochi", "cosmos",
              "wan", "lumina2", "qwen_image", "hidream", "hunyuan_image")
UMT5_FILES = "umt5_xxl_fp16.safetensors or umt5_xxl_fp8_e4m3fn_scaled.safetensors"  # ComfyUI's, tokenizer inside
DUAL_TYPES = ("sdxl", "sd3", "flux", "hunyuan_video", "hidream", "hunyuan_image")
HIDREAM_PARTS = {"clip_l", "clip_g", "t5xxl", "llama"}  # QuadrupleCLIPLoader's (any of them for type hidream)
QWEN_FILES = "qwen_2.5_vl_7b.safetensors or qwen_2.5_vl_7b_fp8_scaled.safetensors"  # ComfyUI's Qwen-Image encoder
LLAVA_FILES = "llava_llama3_fp8_scaled.safetensors or llava_llama3_fp16.safetensors"  # ComfyUI's HunyuanVideo files
BYT5_FILE = "byt5_small_glyphxl_fp16.safetensors"  # ComfyUI's HunyuanImage 2.1 glyph encoder
HUNYUAN_IMAGE_PARTS = ({"qwen25_7b"}, {"qwen25_7b", "byt5_small"})  # CLIPLoader's, DualCLIPLoader's
T5_NAMES = ("t5xxl", "pile_t5xl")  # the T5s that COMPONENT_PREFIXES name


def _device_dtype(device, dtype):
    if device is not None:
        device = torch.device(device)
        return device, dtype or default_dtype("text_encoder", device)
    return load_device(), dtype or default_dtype("text_encoder", compute_device())


def _tower(view, what: str, device, dtype, config: dict | None = None) -> ClipTower:
    spec = _standalone_tower(view.shapes, config)
    return tower_of(view, spec, device, dtype, what, ((config or {}).get("text_encoders") or {}).get(spec.name))


def _built(build, what: str, device, dtype):
    """build(device, dtype) for T5 or a language model, in bf16 where fp16 is asked on a GPU that
    has it (T5 v1.1's activations overflow fp16; bf16 keeps fp32's range, in which Gemma-2, Qwen2.5
    and Llama 3 were trained), its errors as the file's."""
    if dtype == torch.float16 and device.type == "cuda" and torch.cuda.is_bf16_supported():
        dtype = torch.bfloat16
    try:
        return build(device, dtype)
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{what}: {e}") from None


def _t5(view, what: str, device, dtype) -> T5Encoder:
    sub = KeyView(view, t5_prefix(view.shapes))
    return _built(lambda d, t: t5_from_weights(sub.shapes, sub.get, d, t, source=sub), what, device, dtype)


def _pile_t5(view) -> bool:
    """Pile-T5 XL (configs.pile_t5), told from the shapes before it is read."""
    prefix = t5_prefix(view.shapes)
    return prefix is not None and pile_t5(KeyView(view, prefix).shapes)


def _gemma(f, prefix: str, what: str, device, dtype) -> GemmaTextEncoder:
    """Gemma-2 2B under `prefix` of the open file `f`, with the file's tokenizer."""
    key = next((k for k in GEMMA_SPIECE_KEYS if k in f.shapes), None)
    return _built(lambda d, t: gemma_text_encoder(KeyView(f, prefix), None if key is None else f.get(key), d, t, what),
                  what, device, dtype)


def _qwen(f, what: str, device, dtype) -> QwenTextEncoder:
    """Qwen2.5-VL 7B (language model and vision tower) from a bare file (ComfyUI's qwen_2.5_vl_7b*)."""
    if f.shapes.get("model.embed_tokens.weight", (0, 0))[1] == 2048:  # ComfyUI: k_proj.bias of 256 rows, hidden 2048
        raise CheckpointError(f"{what} holds Qwen2.5 3B (OmniGen2's text encoder), which graphflow does not load; "
                              f"Qwen-Image (type qwen_image) takes Qwen2.5-VL 7B ({QWEN_FILES})")
    return _built(lambda d, t: qwen_text_encoder(f, d, t), what, device, dtype)


def _llama(f, what: str, device, dtype):
    """LLaVA-Llama-3 8B's language model (its `model.*` keys) of the open file `f`."""
    return _built(lambda d, t: llama_from_weights(f.shapes, f.get, d, t, source=f), what, device, dtype)


def _prefixed_components(f, device, dtype, only=None) -> dict[str, object]:
    found = {}
    for name, prefixes in COMPONENT_PREFIXES.items():
        if only is not None and name not in only:
            continue
        for prefix in prefixes:
            view = KeyView(f, prefix)
            if view.shapes:
                what = f"{f.path.name} ({prefix})"
                if name == "gemma2_2b":
                    found[name] = _gemma(f, prefix, what, device, dtype)
                    break
                if name == "pile_t5xl" and not _pile_t5(view):  # said before the weights are read
                    raise CheckpointError(f"{what}: expected Pile-T5 XL (a UMT5 with a {PILE_T5_VOCAB}-row "
                                          f"embedding), found other weights")
                found[name] = _t5(view, what, device, dtype) if name in T5_NAMES else _tower(
                    view, what, device, dtype, {"text_encoders": {name: {}}})  # the prefix names the tower
                break
    return found


def components(f, device, dtype) -> dict[str, object]:
    """Every text encoder in an open weight file: {"clip_l" | "clip_g" | "clip_h": ClipTower,
    "t5xxl" | "pile_t5xl" | "byt5_small": T5Encoder, "gemma2_2b": GemmaTextEncoder, "qwen25_7b": QwenTextEncoder,
    "llama": graphflow.models.llama.Llama}."""
    found = _prefixed_components(f, device, dtype)
    if found:
        return found
    if t5_prefix(f.shapes) is not None:  # byT5 (its embedding one row a byte), Pile-T5 or T5 / UMT5
        name = "byt5_small" if byte_level(KeyView(f, t5_prefix(f.shapes)).shapes) else \
            "pile_t5xl" if _pile_t5(f) else "t5xxl"
        return {name: _t5(f, f.path.name, device, dtype)}
    if gemma2_prefix(f.shapes) == "":  # gemma_2_2b_fp16.safetensors
        return {"gemma2_2b": _gemma(f, "", f.path.name, device, dtype)}
    if qwen25vl_prefix(f.shapes) == "":  # qwen_2.5_vl_7b.safetensors
        return {"qwen25_7b": _qwen(f, f.path.name, device, dtype)}
    if llama_prefix(f.shapes) == "":  # llava_llama3_fp16 / llava_llama3_fp8_scaled.safetensors
        return {"llama": _llama(f, f.path.name, device, dtype)}
    tower = _tower(f, f.path.name, device, dtype, f.config())
    return {tower.name: tower}


def flow_text_encoder_from_file(f, arch: str, device=None, dtype=None, only=None) -> FlowTextEncoder | None:
    """The SD3 / FLUX / AuraFlow text encoders inside an open all-in-one checkpoint (None if it has none);
    `only`: the names of those to read (COMPONENT_PREFIXES' keys), all when None."""
    found = _prefixed_components(f, *_device_dtype(device, dtype), only)
    if not found:
        return None
    return _assemble(arch, found, f.path.name)


def _assemble(arch: str, found: dict, names: str) -> (FlowTextEncoder | GemmaTextEncoder | QwenTextEncoder
                                                              | HunyuanVideoTextEncoder | HiDreamTextEncoder):
    if arch == "hunyuan_image":  # (byT5 comes from its own file, refused under other types before this)
        if set(found) not in HUNYUAN_IMAGE_PARTS:
            raise CheckpointError(f"{names}: found {sorted(found) or 'no text encoder'}; HunyuanImage 2.1 (type "
                                  f"hunyuan_image) takes Qwen2.5-VL 7B ({QWEN_FILES}), alone (CLIPLoader) or with "
                                  f"byT5-small glyph ({BYT5_FILE}, DualCLIPLoader), and byT5 is HunyuanImage's alone")
        return HunyuanImageTextEncoder(found["qwen25_7b"].model, found.get("byt5_small"))
    if arch == "aura_flow" or "pile_t5xl" in found:
        if arch != "aura_flow" or set(found) != {"pile_t5xl"}:
            raise CheckpointError(f"{names}: found {sorted(found) or 'no text encoder'}; AuraFlow's text encoder is "
                                  f"Pile-T5 XL alone, and Pile-T5 XL is AuraFlow's alone")
        return FlowTextEncoder("aura_flow", t5=found["pile_t5xl"])
    if arch == "hidream":
        if not found or set(found) - HIDREAM_PARTS or ("t5xxl" in found and found["t5xxl"].umt5):
            raise CheckpointError(f"{names}: found {sorted(found) or 'no text encoder'}; HiDream (type hidream, "
                                  f"QuadrupleCLIPLoader) takes CLIP-L, CLIP-G, T5-XXL and Llama 3.1 8B "
                                  f"(llama_3.1_8b_instruct_fp8_scaled.safetensors) files")
        return HiDreamTextEncoder(found.get("clip_l"), found.get("clip_g"), found.get("t5xxl"), found.get("llama"))
    if arch == "qwen_image":  # a Qwen2.5-VL file under another type is refused before it is read
        if set(found) != {"qwen25_7b"}:
            raise CheckpointError(f"{names}: found {sorted(found)}; Qwen-Image (type qwen_image) takes Qwen2.5-VL 7B "
                                  f"alone, and Qwen2.5-VL 7B is Qwen-Image's text encoder alone")
        return found["qwen25_7b"]
    if arch == "hunyuan_video" or "llama" in found:
        if arch != "hunyuan_video" or set(found) != {"clip_l", "llama"}:
            raise CheckpointError(f"{names}: found {sorted(found) or 'no text encoder'}; HunyuanVideo (type "
                                  f"hunyuan_video) takes a CLIP-L file (clip_l.safetensors) and a LLaVA-Llama-3 8B "
                                  f"file ({LLAVA_FILES}), and LLaVA-Llama-3 is HunyuanVideo's text encoder alone")
        return HunyuanVideoTextEncoder(found["llama"], found["clip_l"])
    if arch == "lumina2" or "gemma2_2b" in found:
        if arch != "lumina2" or set(found) != {"gemma2_2b"}:
            raise CheckpointError(f"{names}: found {sorted(found)}; Lumina 2 (type lumina2) takes Gemma-2 2B alone, "
                                  f"and Gemma-2 2B is Lumina 2's text encoder alone")
        return found["gemma2_2b"]
    allowed = {"sd3": {"clip_l", "clip_g", "t5xxl"}, "flux": {"clip_l", "t5xxl"}, "chroma": {"t5xxl"},
               "pixart": {"t5xxl"}, "ltxv": {"t5xxl"}, "mochi": {"t5xxl"}, "cosmos": {"t5xxl"}, "wan": {"t5xxl"},
               "stable_cascade": {"clip_g"}}[arch]
    extra = set(found) - allowed
    if extra:
        raise CheckpointError(f"{names}: found {sorted(found)}; a {arch} text encoder takes {sorted(allowed)}, "
                              f"not {sorted(extra)}")
    return FlowTextEncoder(arch, found.get("clip_l"), found.get("clip_g"), found.get("t5xxl"))


def load_text_encoders(paths, clip_type: str, device=None, dtype=None,
                       on_cpu: bool = False) -> TextEncoder | FlowTextEncoder:
    """CLIP from 1-3 files for a ComfyUI loader `type`: stable_diffusion (SD1 CLIP-L / SD2 ViT-H),
    sdxl (CLIP-L + CLIP-G), sd3 (any of CLIP-L, CLIP-G, T5-XXL), flux (CLIP-L + T5-XXL), chroma,
    pixart, ltxv and mochi (T5-XXL alone), wan (UMT5-XXL with its tokenizer inside), lumina2
    (Gemma-2 2B, likewise), qwen_image (Qwen2.5-VL 7B; Qwen's tokenizer ships with graphflow),
    hunyuan_video (CLIP-L + LLaVA-Llama-3 8B), hidream (any of CLIP-L, CLIP-G, T5-XXL, Llama 3.1 8B),
    hunyuan_image (Qwen2.5-VL 7B, alone or with byT5-small glyph). Each
    encoder is registered with the memory manager with its file as its source: when RAM runs short
    it may be dropped and read again (SD3/FLUX: from its own file alone).

    `on_cpu` (the loaders' device "cpu"): every encoder is read onto the CPU, in the dtype text
    encoders compute in there (device.default_dtype: fp32, bf16 on CPUs with native bf16, or
    GRAPHFLOW_DTYPE), and pinned there (MemoryManager.pin_to_cpu): it runs on the CPU for its
    whole life, and only its output goes on to the sampler's device. ComfyUI's
    text_encoder_dtype stores fp16 weights on the CPU as on a GPU but computes in fp32 by
    casting them per layer; ours compute in the weights' own dtype, where fp16 on a CPU would
    be slow and overflow in T5, so the CPU's compute dtype is taken (fp32: ComfyUI's numbers
    for its fp16 and fp8 files)."""
    from graphflow.memory import manager

    if on_cpu:
        device, dtype = _device_dtype("cpu", dtype)
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    clip, sources = _read_text_encoders(paths, clip_type, device, dtype)
    if isinstance(clip, DecoderTextEncoder):  # the language model, then HunyuanVideo's CLIP-L
        manager().set_source(clip.model, "text_encoder", clip.memory_name,
                             lambda key=clip.key: _part_module(_read_one(sources[key], key, device, dtype)))
        for tower in clip.towers:
            manager().set_source(tower.model, "text_encoder", f"text_encoder:{tower.name}",
                                 lambda name=tower.name: _read_one(sources[name], name, device, dtype).model)
        for name, encoder in clip.extra_encoders:  # HunyuanImage's glyph encoder
            manager().set_source(encoder.model, "text_encoder", f"text_encoder:{name}",
                                 lambda name=name: _read_one(sources[name], name, device, dtype).model)
    elif isinstance(clip, HiDreamTextEncoder):
        for slot, in_file, name in (("clip_l", "clip_l", "clip_l"), ("clip_g", "clip_g", "clip_g"),
                                    ("t5", "t5xxl", "t5"), ("model", "llama", "llama")):
            part = getattr(clip, slot)
            if part is not None:
                read = lambda path=sources[in_file], in_file=in_file: _part_module(  # noqa: E731
                    _read_one(path, in_file, device, dtype))
                manager().set_source(_part_module(part), "text_encoder", f"text_encoder:{name}", read)
    elif isinstance(clip, FlowTextEncoder):
        for slot, in_file in (("clip_l", "clip_l"), ("clip_g", "clip_g"), ("t5", clip.t5_name)):
            if getattr(clip, slot) is not None:
                manager().set_source(getattr(clip, slot).model, "text_encoder", f"text_encoder:{slot}",
                                     lambda path=sources[in_file], in_file=in_file: _read_one(path, in_file, device,
                                                                                              dtype).model)
    else:
        for index, tower in enumerate(clip.towers):
            if tower.name in sources:  # one of several standalone files: read back alone
                read = lambda path=sources[tower.name]: read_standalone_tower(path, device, dtype).model  # noqa: E731
            else:
                read = lambda index=index: _read_text_encoders(paths, clip_type, device, dtype)[0].towers[index].model  # noqa: E731
            manager().set_source(tower.model, "text_encoder", f"text_encoder:{tower.name}", read)
    if on_cpu:
        for model, name in _models(clip):
            manager().pin_to_cpu(model, "text_encoder", name)
    return clip


def _part_module(part):
    """The module the memory manager holds for one encoder (a Llama is its own)."""
    return getattr(part, "model", part) if not isinstance(part, torch.nn.Module) else part


def _models(clip) -> list[tuple]:
    """(module, memory-manager name) of each encoder of a CLIP, as its `use` blocks name them."""
    if isinstance(clip, HiDreamTextEncoder):
        return [(_part_module(getattr(clip, slot)), f"text_encoder:{name}") for slot, name in
                (("clip_l", "clip_l"), ("clip_g", "clip_g"), ("t5", "t5"), ("model", "llama"))
                if getattr(clip, slot) is not None]
    if isinstance(clip, DecoderTextEncoder):
        return [(clip.model, clip.memory_name)] + [(t.model, f"text_encoder:{t.name}") for t in clip.towers] + [
            (encoder.model, f"text_encoder:{name}") for name, encoder in clip.extra_encoders]
    if isinstance(clip, FlowTextEncoder):
        return [(getattr(clip, slot).model, f"text_encoder:{slot}") for slot in ("clip_l", "clip_g", "t5")
                if getattr(clip, slot) is not None]
    return [(tower.model, f"text_encoder:{tower.name}") for tower in clip.towers]


def _read_one(path: Path, name: str, device, dtype):
    with WeightFile(path) as f:
        return components(f, *_device_dtype(device, dtype))[name]


def _t5_type_of_clip_type(path: Path, clip_type: str) -> str:
    """ComfyUI's CLIPLoader builds from the file what a T5 file makes under a type naming no T5
    encoder (stable_diffusion, its default): Mochi's T5-XXL encoder for T5 v1.1, Cosmos' for the
    old T5 v1.0 (ReLU feed-forward). Other files keep the type."""
    with WeightFile(path) as f:
        if t5_prefix(f.shapes) != "":  # a bare T5 file only (prefixed ones are all-in-one files)
            return clip_type
        if byte_level(f.shapes):
            raise CheckpointError(f"{path.name} holds byT5-small glyph (HunyuanImage 2.1's glyph encoder): load it "
                                  f"with Qwen2.5-VL 7B with DualCLIPLoader type hunyuan_image")
        gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in f.shapes
        umt5 = UMT5_KEY in f.shapes
    if umt5:
        raise CheckpointError(f"{path.name} holds UMT5-XXL (Wan's text encoder): load it with type wan")
    return "mochi" if gated else "cosmos"


def _only_clip_towers(path: Path, clip_type: str) -> None:
    """stable_diffusion / sdxl build CLIP towers alone: a T5, Gemma or Qwen file is named as such."""
    with WeightFile(path) as f:
        held = ("a byT5-small glyph" if t5_prefix(f.shapes) == "" and byte_level(f.shapes)
                else "a T5-XXL" if t5_prefix(f.shapes) is not None else "a Gemma-2 2B" if gemma2_prefix(f.shapes) == ""
                else "a Qwen2.5-VL 7B" if qwen25vl_prefix(f.shapes) == ""
                else "a LLaVA-Llama-3 8B" if llama_prefix(f.shapes) == "" else None)
    if held is not None:
        takes = "CLIP-L + CLIP-G" if clip_type == "sdxl" else "one CLIP-L (SD1), ViT-H (SD2) or CLIP-G (SDXL refiner)"
        raise CheckpointError(f"{path.name} holds {held} text encoder; type {clip_type} takes {takes} files (T5-XXL: "
                              f"types sd3, flux, chroma, pixart, ltxv, mochi, cosmos, wan; Gemma-2: lumina2; Qwen2.5-VL: "
                              f"qwen_image or hunyuan_image; byT5: hunyuan_image with Qwen2.5-VL; LLaVA-Llama-3: "
                              f"hunyuan_video with CLIP-L)")


def _read_text_encoders(paths: list[Path], clip_type: str, device, dtype):
    """The CLIP, and for SD3/FLUX the file each of its encoders came from (by COMPONENT_PREFIXES' names)."""
    if len(paths) == 1:  # ComfyUI's CLIPLoader: a T5-XL file makes AuraFlow's encoder, whatever the type
        with WeightFile(paths[0]) as f:
            if t5_prefix(f.shapes) == "" and _pile_t5(f):
                t5 = _t5(f, f.path.name, *_device_dtype(device, dtype))
                return FlowTextEncoder("aura_flow", t5=t5), {"pile_t5xl": paths[0]}
    if clip_type == "stable_diffusion" and len(paths) == 1:
        clip_type = _t5_type_of_clip_type(paths[0], clip_type)
    if clip_type in ("stable_diffusion", "sdxl"):
        def tower_name(path):
            with WeightFile(path) as f:
                try:
                    return _standalone_tower(f.shapes, f.config()).name
                except CheckpointError:
                    return ""
        for path in paths:
            _only_clip_towers(path, clip_type)
        paths = sorted(paths, key=lambda p: tower_name(p) != "clip_l")  # CLIP-L first, whatever the node's order
        clip = load_text_encoder(paths, arch="sdxl" if clip_type == "sdxl" else None, device=device, dtype=dtype)
        return clip, ({tower.name: path for tower, path in zip(clip.towers, paths)} if len(paths) > 1 else {})
    types = tuple(dict.fromkeys(CLIP_TYPES + DUAL_TYPES))  # CLIPLoader's and DualCLIPLoader's
    if clip_type not in types:
        raise CheckpointError(f"text encoder type {clip_type!r} is not supported; graphflow builds "
                              f"{', '.join(types[:-1])} and {types[-1]}")
    device, dtype = _device_dtype(device, dtype)
    found, sources = {}, {}
    for path in paths:
        with WeightFile(path) as f:
            if clip_type not in ("qwen_image", "hunyuan_image") and qwen25vl_prefix(f.shapes) == "":
                # said before 7B weights are read
                raise CheckpointError(f"{path.name} holds Qwen2.5-VL 7B (Qwen-Image's text encoder): load it alone "
                                      f"with type qwen_image (or type hunyuan_image for HunyuanImage 2.1), not "
                                      f"{clip_type}")
            for name, component in components(f, device, dtype).items():
                if name in found:
                    raise CheckpointError(f"two {name} text encoders given ({path.name} and another file)")
                found[name], sources[name] = component, path
    names = ", ".join(p.name for p in paths)
    if "byt5_small" in found and clip_type != "hunyuan_image":
        raise CheckpointError(f"{sources['byt5_small'].name} holds byT5-small glyph (HunyuanImage 2.1's glyph "
                              f"encoder): byT5 is HunyuanImage's alone; load it with Qwen2.5-VL 7B with "
                              f"DualCLIPLoader type hunyuan_image, not {clip_type}")
    if clip_type == "qwen_image" and set(found) != {"qwen25_7b"}:
        raise CheckpointError(f"{names}: Qwen-Image needs a Qwen2.5-VL 7B file alone ({QWEN_FILES}), found "
                              f"{sorted(found) or 'no text encoder'}")
    if clip_type == "stable_cascade" and set(found) != {"clip_g"}:
        raise CheckpointError(f"{names}: Stable Cascade needs one CLIP-G file, found {sorted(found) or 'no text encoder'}")
    if clip_type == "flux" and set(found) != {"clip_l", "t5xxl"}:
        raise CheckpointError(f"{names}: FLUX needs a CLIP-L and a T5-XXL file, found {sorted(found)}")
    if clip_type == "wan" and (set(found) != {"t5xxl"} or not found["t5xxl"].umt5):
        raise CheckpointError(f"{names}: Wan needs a UMT5-XXL file alone ({UMT5_FILES}), found "
                              f"{'T5-XXL (not UMT5)' if set(found) == {'t5xxl'} else sorted(found)}")
    if clip_type == "wan" and found["t5xxl"].pieces is None:
        raise CheckpointError(f"{names}: this UMT5-XXL file carries no tokenizer (no spiece_model tensor); ComfyUI "
                              f"users load {UMT5_FILES}, which carry it beside the weights")
    if clip_type == "lumina2" and set(found) != {"gemma2_2b"}:
        raise CheckpointError(f"{names}: Lumina 2 needs a Gemma-2 2B file alone (gemma_2_2b_fp16.safetensors), "
                              f"found {sorted(found) or 'no text encoder'}")
    if clip_type == "hunyuan_video" and set(found) != {"clip_l", "llama"}:
        raise CheckpointError(f"{names}: HunyuanVideo needs a CLIP-L file (clip_l.safetensors) and a LLaVA-Llama-3 "
                              f"8B file ({LLAVA_FILES}), found {sorted(found) or 'no text encoder'}")
    if clip_type in T5_ALONE and set(found) != {"t5xxl"}:
        name = T5_ALONE_NAMES[clip_type]
        raise CheckpointError(f"{names}: {name} needs a T5-XXL file alone, found {sorted(found)}")
    return _assemble(clip_type, found, names), sources
