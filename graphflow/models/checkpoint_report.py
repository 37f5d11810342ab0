"""`graphflow inspect`: a readable description of a checkpoint, from its header alone."""

import math
from collections import Counter

from .architecture import UNET_PREFIX, VAE_PREFIX, detect_architecture, format_prefixes, prefix_summary
from .flow_architecture import FlowInfo
from .configs import HF, OPENCLIP
from .weight_files import CheckpointError, WeightFile, dtype_name


def _is_float(dtype: str) -> bool:
    # "Q8_0", "Q4_K", ...: a GGUF file's quantized tensors (graphflow.models.gguf), floats once dequantized
    return dtype.startswith(("F", "BF", "float", "bfloat", "Q"))


def _count(f: "WeightFile", keys) -> int:
    """Parameters: floating-point tensors only (not position_ids-like index buffers)."""
    return sum(math.prod(f.shapes[k]) for k in keys if _is_float(f.dtypes[k]))


def _dtypes(f: "WeightFile", keys) -> str:
    counts = Counter(dtype_name(f.dtypes[k]) for k in keys if _is_float(f.dtypes[k]))
    text = ", ".join(d + (f" ({n} tensors)" if len(counts) > 1 else "") for d, n in counts.most_common())
    scaled = sum(1 for k in keys if k in f.scales)
    return text + (f", {scaled} of them scaled fp8 (each with its scale_weight)" if scaled else "")


def _scaled_fp8(f: "WeightFile") -> str:
    """', scaled fp8 (ComfyUI's layout, ...)' for a file holding scaled-fp8 weights, else ''."""
    if not f.scales:
        return ""
    markers = f.scaled_fp8.values()
    types = sorted({dtype_name(f.dtypes[k]) for k in f.scales})
    matmul = "" if all(m.fp8_matmul for m in markers) else "; the file asks for full-precision matmuls"
    return f", scaled fp8 (ComfyUI's layout: {', '.join(types)} weights x per-layer scale_weight{matmul})"


def _millions(n: int) -> str:
    return f"{n / 1e6:,.1f}M" if n >= 1e5 else f"{n:,}"


def inspect_report(path) -> str:
    """A readable description of a checkpoint, from its header (no weights are loaded)."""
    with WeightFile(path) as f:
        size = f.size
        add_on = _add_on_report(f, size)
        if add_on is not None:
            return add_on
        info = detect_architecture(f.shapes, f.metadata, get_tensor=f.get)
        if isinstance(info, FlowInfo):
            return _flow_report(f, info, size)
        lines = [_file_line(f, size),
                 f"architecture: {info.name} [{info.arch}]{_scaled_fp8(f)}",
                 f"prediction: {info.prediction} ({info.prediction_source})",
                 f"latent: {info.latent_channels} channels, scaling factor {info.latent_format.scale_factor}"
                 + (f", shift {info.latent_format.shift_factor}" if info.latent_format.shift_factor else "")
                 + (", each channel standardised by its mean and std first" if info.latent_format.channel_mean else ""),
                 "components:"]
        if info.sigma_range is not None:
            lines.insert(3, f"sampling: continuous EDM, sigmas {info.sigma_range[0]} .. {info.sigma_range[1]}, "
                            f"sigma_data {0.5 if info.prediction == 'edm' else 1.0}")
        used = set()
        unet_keys = [k for k in f.shapes if k.startswith(UNET_PREFIX)]
        used.update(unet_keys)
        u = info.unet
        lines.append(f"  unet: {_millions(_count(f, unet_keys))} params, {_dtypes(f, unet_keys)}; "
                     f"in {u.in_channels} ch{' (inpainting)' if info.inpaint else ''}"
                     f"{' (latent + low-res image)' if getattr(info, 'upscaler', False) else ''}, context {u.context_dim}, "
                     f"{f'{u.num_classes} noise-level labels, ' if u.num_classes else ''}"
                     f"adm {u.adm_in_channels}, channels {u.model_channels} x {list(u.channel_mult)}, "
                     f"transformer depth {list(u.transformer_depth)}")
        if info.vae is not None:
            vae_keys = [k for k in f.shapes if k.startswith(VAE_PREFIX)]
            used.update(vae_keys)
            lines.append(f"  vae: {_millions(_count(f, vae_keys))} params, {_dtypes(f, vae_keys)}; "
                         f"{info.vae.latent_channels} latent channels, downscale {info.vae.downscale}, "
                         f"channels {info.vae.ch} x {list(info.vae.ch_mult)}")
        else:
            lines.append("  vae: none")
        for spec in info.towers:
            keys = [k for k in f.shapes if k.startswith(spec.prefix)]
            used.update(keys)
            width_key = spec.prefix + ("embeddings.token_embedding.weight" if spec.layout == HF else "token_embedding.weight")
            layer_ids = {k[len(spec.prefix):].split(".")[2] for k in keys if ".layers." in k or ".resblocks." in k}
            layout = "OpenCLIP layout" if spec.layout == OPENCLIP else "transformers layout"
            lines.append(f"  text encoder {spec.name}: {_millions(_count(f, keys))} params, "
                         f"{_dtypes(f, keys)}; width {f.shapes[width_key][1]}, {len(layer_ids)} layers, {layout}")
        if not info.towers:
            lines.append("  text encoder: none")
        if info.unclip:
            lines += _unclip_lines(f, used)
        if info.zero123:
            lines += _zero123_lines(f, used)
        if info.upscaler:  # LDM's ImageConcatWithNoiseAugmentation buffers: the schedule is computed instead
            used.update(k for k in f.shapes if k.startswith("low_scale_model."))
            lines.append("  low-res image augmentation: noise levels 0..350 of the 0.0001..0.02 schedule "
                         "(computed as ComfyUI does)")
        other = prefix_summary(k for k in f.shapes if k not in used)
        if other:
            lines.append(f"other keys: {format_prefixes(other)}")
        for note in info.notes:
            lines.append(f"note: {note}")
    return "\n".join(lines)


def _vision_detail(source) -> str:
    from .clip_vision import clip_vision_config_from_shapes

    c = clip_vision_config_from_shapes(source.shapes)
    return (f"{'CLIP ViT' if c.class_token else 'SigLIP'}, width {c.hidden_size}, {c.num_layers} layers, "
            f"patch {c.patch_size}, image {c.image_size}px, "
            + (f"projection {c.projection_dim}" if c.projection_dim else "no projection"))


def _add_on_report(f: "WeightFile", size: int) -> str | None:
    """The description of any file that is no checkpoint (graphflow.models.file_kind), or None."""
    from .file_kind import identify

    kind = identify(f.shapes, f.path.name)
    if kind is None:
        return _upscaler_report(f, size)
    if kind.folder in ("checkpoints", "diffusion_models") and "UNet" not in kind.name \
            and "Stable Cascade" not in kind.name and "PixArt" not in kind.name and "Cosmos" not in kind.name \
            and "AuraFlowTransformer2DModel" not in kind.name:
        return None
    keys = list(f.shapes)
    lines = [_file_line(f, size), f"kind: {kind.name}{_scaled_fp8(f)}, for models/{kind.folder}/, loaded by {kind.loader}",
             f"  {_millions(_count(f, keys))} params, {_dtypes(f, keys)}" + _kind_detail(f, kind)]
    return "\n".join(lines)


def _file_line(f: "WeightFile", size: int) -> str:
    count = len(f.shapes)
    form = f"sharded, {len(f.shards)} shards" if f.shards else f.format
    return f"file: {f.path.name} ({size / 2**20:,.1f} MiB, {form}, {count} tensor{'' if count == 1 else 's'})"


def _kind_detail(f: "WeightFile", kind) -> str:
    shapes = f.shapes
    if kind.folder == "loras":
        return "; " + _lora_detail(shapes)
    if kind.folder == "style_models" and "style_embedding" in shapes:
        tokens, width = shapes["style_embedding"][1:]
        return f"; image tokens {width} wide -> {tokens} text tokens {shapes['proj'][1]} wide per image"
    if kind.folder == "style_models":
        return (f"; image tokens {shapes['redux_up.weight'][1]} wide -> text tokens "
                f"{shapes['redux_down.weight'][0]} wide")
    if kind.folder == "clip_vision":
        from .clip_vision import clip_vision_source

        source = clip_vision_source(f)
        return "" if source is None else "; " + _vision_detail(source)
    if kind.folder == "text_encoders":
        layers = {k.split(".layers.")[1].split(".")[0] for k in shapes if ".layers." in k} or \
            {k.split(".block.")[1].split(".")[0] for k in shapes if ".block." in k} or \
            {k.split(".resblocks.")[1].split(".")[0] for k in shapes if ".resblocks." in k}
        return f"; {len(layers)} layers"
    if kind.name.startswith("Stable Cascade Stage") and kind.folder == "diffusion_models":
        from .stable_cascade import cascade_config_from_shapes

        c = cascade_config_from_shapes(shapes)
        return (f"; {c.in_channels}-channel latent, channels {list(c.widths)}, layers down {list(c.down_layers)} "
                f"up {list(c.up_layers)}, conditioning width {c.cond_width}")
    if kind.name.startswith("Cosmos-Predict2"):
        from .cosmos import cosmos_config_from_state_dict
        from .file_kind import find_cosmos

        prefix = find_cosmos(shapes)
        c = cosmos_config_from_state_dict({k[len(prefix):]: s for k, s in shapes.items() if k.startswith(prefix)})
        task = "text-to-image" if c.in_channels == 16 else "video2world (known-frame mask channel)"
        return (f"; {task}, width {c.model_channels}, {c.num_blocks} blocks of {c.num_heads} heads, text width "
                f"{c.crossattn_emb_channels}, keys under {prefix or 'no prefix'}")
    if kind.name.startswith("Cosmos 1.0 diffusion"):
        from .cosmos import cosmos1_config_from_state_dict
        from .file_kind import find_cosmos1

        prefix = find_cosmos1(shapes)
        try:
            c = cosmos1_config_from_state_dict({k[len(prefix):]: s for k, s in shapes.items() if k.startswith(prefix)})
        except (KeyError, ValueError, IndexError) as e:
            return f"; not loadable: {e}"
        frames, h, w = c.positions
        return (f"; {c.variant}, width {c.model_channels}, {c.num_blocks} blocks of {c.num_heads} heads, text width "
                f"{c.crossattn_emb_channels}, learned positions up to {frames} latent frames of {h * 16}x{w * 16} "
                f"pixels, keys under {prefix or 'no prefix'}")
    if kind.name in ("Wan 2.1 video VAE", "Wan 2.2 video VAE"):
        from .wan_vae import wan_vae_config_from_state_dict

        c = wan_vae_config_from_state_dict(shapes)
        return (f"; {c.latent_channels} latent channels, {c.frames_per_latent}x frames, {c.downscale}x pixels, "
                f"channels {c.dim} x {list(c.dim_mult)}"
                + (f" (decoder {c.decoder_dim}), residual stages, {c.patch_size}x{c.patch_size} pixel patches"
                   if c.is_residual else ""))
    if kind.name.startswith("Cosmos 1.0 video VAE"):
        from .cosmos_vae import cosmos_vae_config_from_state_dict

        c = cosmos_vae_config_from_state_dict(shapes)
        return (f"; {c.latent_channels} latent channels, {c.frames_per_latent}x frames, {c.downscale}x pixels, "
                f"channels {c.channels} x {list(c.channels_mult)}, residual blocks per level: {c.num_res_blocks}, "
                f"{c.patch_size}x{c.patch_size}x{c.patch_size} Haar patches")
    if kind.name.startswith("PixArt"):
        return "; " + _pixart_detail(shapes)
    if kind.folder == "embeddings":
        vectors = {k: s for k, s in shapes.items() if len(s) == 2}
        return "; " + ", ".join(f"{k or 'vectors'}: {s[0]} x {s[1]}" for k, s in vectors.items())
    return ""


def _pixart_detail(shapes) -> str:
    from .configs import pixart_config_from_state_dict
    from .file_kind import PIXART_NAMES, find_pixart

    variant, layout, prefix = find_pixart(shapes)
    view = {k[len(prefix):]: s for k, s in shapes.items() if k.startswith(prefix)}
    if layout == "diffusers":  # the shapes the loader's renaming gives (torch-free: names only)
        from .diffusers_names import fused_shapes, pixart_names

        view = fused_shapes(view, pixart_names(list(view)))
    c = pixart_config_from_state_dict(view)
    return (f"architecture {PIXART_NAMES[variant]} [pixart, {variant}]; {c.depth} blocks, width {c.hidden_size}, "
            f"{c.num_heads} heads, patch {c.patch_size}, T5 width {c.caption_channels}, "
            f"{'size and aspect-ratio conditioning' if c.micro_condition else 'no size conditioning'}; "
            f"eps prediction with learned sigma ({c.out_channels} out channels), linear betas 0.0001..0.02; "
            f"load T5-XXL with CLIPLoader, type pixart, and the {'SD1.x' if c.micro_condition else 'SDXL'} VAE")


def _lora_detail(shapes) -> str:
    """Modules, ranks, targets and network types of a LoRA file, from its key names and shapes."""
    from .lora import PARTS, _split_key

    modules, ranks, types = set(), Counter(), set()
    for key, shape in shapes.items():
        name, part = _split_key(key)
        if part not in PARTS:
            continue
        modules.add(name)
        if part == "lora_down.weight":
            ranks[shape[0]] += 1
        types.add("LoHa" if part.startswith("hada_") else "LoKr" if part.startswith("lokr_")
                  else "GLoRA" if part in ("a1.weight", "a2.weight", "b1.weight", "b2.weight")
                  else "DoRA" if part in ("dora_scale", "magnitude") else "full-diff" if part == "diff"
                  else "bias-diff" if part == "diff_b" else "LoRA")
    targets = Counter("text encoder" if n.startswith(("lora_te", "text_encoders.")) else "diffusion model"
                      for n in modules)
    rank = ", ".join(f"{r}" for r, _ in ranks.most_common(4)) or "n/a"
    return (f"{len(modules)} modules ({', '.join(f'{n} {t}' for t, n in targets.items())}); "
            f"rank {rank}; {', '.join(sorted(types))}")


def _upscaler_report(f: "WeightFile", size: int) -> str | None:
    """An upscale model's description as spandrel (the library that defines these files) reads
    it; None for anything else. Its weights are read: upscalers are small, and their keys alone
    do not name the architecture."""
    if size > 2 * 2**30:
        return None
    from .upscale import load_upscale_model

    try:
        model = load_upscale_model(f.path)
    except CheckpointError:
        return None
    keys = list(f.shapes)
    return "\n".join([_file_line(f, size),
                      f"kind: upscale model, for models/upscale_models/, loaded by LoadUpscaleModel",
                      f"  {_millions(_count(f, keys))} params, {_dtypes(f, keys)}; {model.architecture.name}, "
                      f"{model.scale}x, {model.input_channels} -> {model.output_channels} channels"])


def _unclip_lines(f: "WeightFile", used: set) -> list[str]:
    keys = [k for k in f.shapes if k.startswith("embedder.")]
    lines = [_embedded_vision_line(f, "embedder.model.visual.", keys, used, "")]
    augmentor = [k for k in f.shapes if k.startswith("noise_augmentor.")]
    used.update(augmentor)
    lines.append("  noise augmentor: cosine schedule, 1000 levels (computed as ComfyUI does)")
    return lines


def _zero123_lines(f: "WeightFile", used: set) -> list[str]:
    from .zero123 import CAMERA_WIDTH, CC_PROJECTION, VISION_PREFIX

    out_width, in_width = f.shapes[CC_PROJECTION + "weight"]
    used.update(k for k in f.shapes if k.startswith(CC_PROJECTION))
    lines = [f"  cc_projection: Linear {in_width} -> {out_width} ([image embedding {in_width - CAMERA_WIDTH}, "
             f"camera {CAMERA_WIDTH}] -> context)"]
    keys = [k for k in f.shapes if k.startswith(VISION_PREFIX)]
    lines.append(_embedded_vision_line(f, VISION_PREFIX, keys, used, "; use CLIPVisionLoader"))
    return lines


def _embedded_vision_line(f: "WeightFile", prefix: str, keys: list[str], used: set, missing_hint: str) -> str:
    """The report line of a checkpoint's own CLIP vision tower under `prefix` (its tensors `keys`)."""
    from .clip_vision import clip_vision_source

    source = clip_vision_source(f, prefix)
    if source is None:
        return f"  clip vision: none (no image encoder under {prefix}{missing_hint})"
    used.update(keys)
    return f"  clip vision ({prefix}): {_millions(_count(f, keys))} params, {_dtypes(f, keys)}; {_vision_detail(source)}"


def _hunyuan_detail(c) -> str:
    """The report line's fields HunyuanVideo's and HunyuanImage's transformers share."""
    return (f"{c.depth} double + {c.depth_single_blocks} single blocks, width {c.hidden_size}, {c.num_heads} heads, "
            f"patch {'x'.join(map(str, c.patch_size))} of {c.in_channels} latent ch, text width {c.context_in_dim} "
            f"({c.refiner_depth} refiner blocks)")


def _flow_report(f: "WeightFile", info: FlowInfo, size: int) -> str:
    lf = info.latent_format
    lines = [_file_line(f, size),
             f"architecture: {info.name} [{info.arch}, {info.family}]{_scaled_fp8(f)}",
             "prediction: flow (rectified flow, velocity)",
             f"latent: {lf.channels} channels, scaling factor {lf.scale_factor}, shift {lf.shift_factor}"
             + (", each channel standardised by the VAE's mean and std" if lf.channel_mean else ""),
             "components:"]
    model_keys = [k for k in f.shapes if k.startswith(info.prefix) and not k.startswith(
        ("text_encoders.", info.vae_prefix or "text_encoders."))]
    used = set(model_keys)
    c = info.config
    if info.arch == "sd3":
        detail = (f"depth {c.depth}, width {c.hidden_size}, {c.num_heads} heads, patch {c.patch_size}, "
                  f"QK-norm {'yes' if c.qk_norm else 'no'}, position table {c.pos_embed_max_size}^2"
                  + (f", MMDiT-X attn2 in blocks {c.x_self_attn_layers[0]}..{c.x_self_attn_layers[-1]}"
                     if c.x_self_attn_layers else ""))
    elif info.arch == "ltxv":
        detail = (f"{c.depth} blocks, width {c.hidden_size}, {c.num_heads} heads, {c.in_channels} latent ch, "
                  f"text width {c.caption_channels}")
    elif info.arch == "mochi":
        detail = (f"{c.depth} blocks, widths {c.hidden_size} (video) / {c.hidden_size_y} (text), {c.num_heads} heads, "
                  f"{c.in_channels} latent ch, text width {c.text_dim}")
    elif info.arch == "wan":
        detail = (f"{c.depth} blocks, width {c.dim}, {c.num_heads} heads, FFN {c.ffn_dim}, {c.in_channels} input ch"
                  + (f" (I2V: CLIP vision width {c.image_dim})" if c.i2v else "") + f", text width {c.text_dim}"
                  + (f", {c.vace_layers} VACE blocks ({c.vace_in_channels} control ch)" if c.vace_layers else "")
                  + (f", camera adapter ({c.camera_in_channels} Plücker ch)" if c.camera_in_channels else ""))
    elif info.arch == "lumina2":
        detail = (f"{c.num_layers} layers + {c.num_refiner_layers} refiner layers each for noise and caption, "
                  f"width {c.dim}, {c.num_heads} heads ({c.num_kv_heads} kv), patch {c.patch_size}, "
                  f"caption width {c.cap_feat_dim}")
    elif info.arch == "hunyuan_video":
        detail = _hunyuan_detail(c) + f", pooled {c.vec_in_dim}" + (", guidance-distilled" if c.guidance_embed else "")
    elif info.arch == "hunyuan_image":
        detail = (_hunyuan_detail(c) + (f", byT5 glyph width {c.byt5_dim}" if c.byt5_dim else ", no byT5 glyph branch")
                  + (", guidance-distilled" if c.guidance_embed else "") + (", MeanFlow" if c.meanflow else ""))
    elif info.arch == "qwen_image":
        detail = (f"{c.num_layers} double-stream blocks, width {c.dim}, {c.num_heads} heads of {c.head_dim}, "
                  f"patch {c.patch_size} of {c.out_channels} latent ch, text width {c.joint_attention_dim}")
    elif info.arch == "hidream":
        detail = (f"{c.num_layers} double + {c.num_single_layers} single blocks, width {c.dim}, {c.num_heads} heads "
                  f"of {c.head_dim}, {c.num_routed_experts} experts (top {c.num_activated_experts}) + shared, "
                  f"patch {c.patch_size}, text widths T5 {c.t5_dim} / Llama {c.llama_dim}, pooled {c.text_emb_dim}")
    elif info.arch == "aura_flow":
        detail = (f"{c.n_double_layers} double + {c.n_layers - c.n_double_layers} single layers, width {c.dim}, "
                  f"{c.n_heads} heads, patch {c.patch_size}, position table {c.pos_side}^2, "
                  f"text width {c.cond_seq_dim}")
    elif info.family == "chroma_radiance":
        detail = (f"{c.depth} double + {c.depth_single_blocks} single blocks, width {c.hidden_size}, "
                  f"{c.num_heads} heads, {c.patch_size}x{c.patch_size} pixel patches of {c.in_channels} ch, "
                  f"approximator {c.approximator_layers} layers of {c.approximator_hidden}; NeRF head "
                  f"{c.nerf_depth} blocks of width {c.nerf_hidden_size} (MLP x{c.nerf_mlp_ratio}), "
                  f"{c.nerf_max_freqs}^2 position features, {c.nerf_final_head} final layer")
    elif info.arch == "chroma":
        detail = (f"{c.depth} double + {c.depth_single_blocks} single blocks, width {c.hidden_size}, "
                  f"{c.num_heads} heads, in {c.in_channels} packed ch, approximator {c.approximator_layers} layers "
                  f"of {c.approximator_hidden} ({c.modulations} modulation vectors)")
    else:
        detail = (f"{c.depth} double + {c.depth_single_blocks} single blocks, width {c.hidden_size}, "
                  f"{c.num_heads} heads, in {c.in_channels} packed ch, guidance embedding "
                  f"{'yes' if c.guidance_embed else 'no'}")
    lines.append(f"  diffusion model ({info.prefix or 'no prefix'}): {_millions(_count(f, model_keys))} params, "
                 f"{_dtypes(f, model_keys)}; {detail}")
    if info.vae is not None:
        root = "vae." if info.arch == "mochi" else info.vae_prefix  # Mochi's: decoder. and encoder. under vae.
        vae_keys = [k for k in f.shapes if k.startswith(root)]
        used.update(vae_keys)
        parts = " (decoder + encoder)" if any(k.startswith("vae.encoder.") for k in vae_keys) else ""
        lines.append(f"  vae ({root}){parts}: {_millions(_count(f, vae_keys))} params, {_dtypes(f, vae_keys)}; "
                     f"{info.vae.latent_channels} latent channels, downscale {info.vae.downscale}")
    else:
        lines.append("  vae: none")
    for name, prefix in info.text_encoders.items():
        keys = [k for k in f.shapes if k.startswith(prefix)]
        used.update(keys)
        tokenizer = ""
        if name == "gemma2_2b":  # Lumina 2's Gemma-2 and its SentencePiece model
            from .gemma2 import SPIECE_KEYS

            spiece = [k for k in SPIECE_KEYS if k in f.shapes]
            used.update(spiece + ["text_encoders.gemma2_2b.logit_scale"])  # ComfyUI's CLIP saves carry one
            tokenizer = f", its tokenizer ({spiece[0]})" if spiece else ", NO tokenizer (spiece_model)"
        lines.append(f"  text encoder {name}: {_millions(_count(f, keys))} params, {_dtypes(f, keys)}{tokenizer}")
    if not info.text_encoders:
        lines.append("  text encoder: none")
    other = prefix_summary(k for k in f.shapes if k not in used)
    if other:
        lines.append(f"other keys: {format_prefixes(other)}")
    lines += [f"note: {note}" for note in info.notes]
    return "\n".join(lines)
