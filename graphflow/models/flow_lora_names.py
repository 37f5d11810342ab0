"""diffusers' module names of FLUX, Chroma, MM-DiT (SD3), Wan 2.1, Lumina 2, HunyuanVideo and AuraFlow mapped onto our
BFL/SAI/Wan/Lumina module paths, for LoRAs trained on diffusers' `FluxTransformer2DModel` /
`ChromaTransformer2DModel` / `SD3Transformer2DModel` / `WanTransformer3DModel` /
`Lumina2Transformer2DModel` (the `transformer.` layout of ai-toolkit, SimpleTuner, diffusers' own
scripts). Wan's are one to one (no fused weights); Lumina 2's split q / k / v of its qkv.
Qwen-Image needs no table: its module paths are diffusers' names (graphflow.models.qwen_image);
nor does HiDream-I1 (graphflow.models.hidream: ComfyUI's names are diffusers').

diffusers splits some of our fused weights: `attn.to_q` / `to_k` / `to_v` are row blocks of our
`qkv` (FLUX single blocks: `to_q` / `to_k` / `to_v` / `proj_mlp` of `linear1`), and its
`norm_out.linear` (and SD3's last `norm1_context.linear`) hold our (shift, scale) rows as (scale,
shift). So a name maps to (our module path, row blocks): the rows of our weight, in the order of
diffusers' rows, as (start, stop) pairs, or None for the whole weight. These are the inverses of
diffusers' single-file conversions (`convert_flux_transformer_checkpoint_to_diffusers`,
`convert_sd3_transformer_checkpoint_to_diffusers`).
"""

Rows = tuple[tuple[int, int], ...] | None


def _thirds(dim: int, offset: int = 0) -> dict[str, Rows]:
    return {c: ((offset + i * dim, offset + (i + 1) * dim),) for i, c in enumerate("qkv")}


def flux_names(cfg) -> dict[str, tuple[str, Rows]]:
    """diffusers name -> (path, rows) for a FluxConfig."""
    h, m = cfg.hidden_size, int(cfg.hidden_size * cfg.mlp_ratio)
    names: dict[str, tuple[str, Rows]] = {
        "x_embedder": ("img_in", None), "context_embedder": ("txt_in", None),
        "time_text_embed.timestep_embedder.linear_1": ("time_in.in_layer", None),
        "time_text_embed.timestep_embedder.linear_2": ("time_in.out_layer", None),
        "time_text_embed.text_embedder.linear_1": ("vector_in.in_layer", None),
        "time_text_embed.text_embedder.linear_2": ("vector_in.out_layer", None),
        "proj_out": ("final_layer.linear", None),
        "norm_out.linear": ("final_layer.adaLN_modulation.1", ((h, 2 * h), (0, h))),
    }
    if cfg.guidance_embed:
        names["time_text_embed.guidance_embedder.linear_1"] = ("guidance_in.in_layer", None)
        names["time_text_embed.guidance_embedder.linear_2"] = ("guidance_in.out_layer", None)
    whole = {"norm1.linear": "img_mod.lin", "norm1_context.linear": "txt_mod.lin", "attn.to_out.0": "img_attn.proj",
             "attn.to_add_out": "txt_attn.proj", "ff.net.0.proj": "img_mlp.0", "ff.net.2": "img_mlp.2",
             "ff_context.net.0.proj": "txt_mlp.0", "ff_context.net.2": "txt_mlp.2"}
    for i in range(cfg.depth):
        ours, theirs = f"double_blocks.{i}.", f"transformer_blocks.{i}."
        names.update({theirs + k: (ours + v, None) for k, v in whole.items()})
        for c, rows in _thirds(h).items():
            names[f"{theirs}attn.to_{c}"] = (ours + "img_attn.qkv", rows)
            names[f"{theirs}attn.add_{c}_proj"] = (ours + "txt_attn.qkv", rows)
    for i in range(cfg.depth_single_blocks):
        ours, theirs = f"single_blocks.{i}.", f"single_transformer_blocks.{i}."
        names[theirs + "norm.linear"] = (ours + "modulation.lin", None)
        names[theirs + "proj_out"] = (ours + "linear2", None)
        names[theirs + "proj_mlp"] = (ours + "linear1", ((3 * h, 3 * h + m),))
        names[ours + "linear1_qkv"] = (ours + "linear1", ((0, 3 * h),))  # ComfyUI's name for linear1's q/k/v rows
        for c, rows in _thirds(h).items():
            names[f"{theirs}attn.to_{c}"] = (ours + "linear1", rows)
    return names


# what FLUX has and Chroma has not: its per-block modulations, the time / vector / guidance embedders
_NOT_IN_CHROMA = ("time_in.", "vector_in.", "guidance_in.", "final_layer.adaLN_modulation.")
_NOT_IN_CHROMA_BLOCKS = (".img_mod.lin", ".txt_mod.lin", ".modulation.lin")


def chroma_names(cfg) -> dict[str, tuple[str, Rows]]:
    """diffusers name -> (path, rows) for a ChromaConfig: FLUX's blocks without their
    modulations, plus the approximator (diffusers' PixArtAlphaTextProjection linear_1 / linear_2
    for our MLPEmbedder's in_layer / out_layer), the inverse of
    `convert_chroma_transformer_checkpoint_to_diffusers`."""
    names = {k: v for k, v in flux_names(cfg).items()
             if not v[0].startswith(_NOT_IN_CHROMA) and not v[0].endswith(_NOT_IN_CHROMA_BLOCKS)}
    g = "distilled_guidance_layer."
    names.update({g + "in_proj": (g + "in_proj", None), g + "out_proj": (g + "out_proj", None)})
    for i in range(cfg.approximator_layers):
        names[f"{g}layers.{i}.linear_1"] = (f"{g}layers.{i}.in_layer", None)
        names[f"{g}layers.{i}.linear_2"] = (f"{g}layers.{i}.out_layer", None)
    return names


def mmdit_names(cfg) -> dict[str, tuple[str, Rows]]:
    """diffusers name -> (path, rows) for an MMDiTConfig."""
    h = cfg.hidden_size
    swapped = ((h, 2 * h), (0, h))
    names: dict[str, tuple[str, Rows]] = {
        "pos_embed.proj": ("x_embedder.proj", None), "context_embedder": ("context_embedder", None),
        "time_text_embed.timestep_embedder.linear_1": ("t_embedder.mlp.0", None),
        "time_text_embed.timestep_embedder.linear_2": ("t_embedder.mlp.2", None),
        "time_text_embed.text_embedder.linear_1": ("y_embedder.mlp.0", None),
        "time_text_embed.text_embedder.linear_2": ("y_embedder.mlp.2", None),
        "proj_out": ("final_layer.linear", None),
        "norm_out.linear": ("final_layer.adaLN_modulation.1", swapped),
    }
    for i in range(cfg.depth):
        x, c, theirs = f"joint_blocks.{i}.x_block.", f"joint_blocks.{i}.context_block.", f"transformer_blocks.{i}."
        last = i == cfg.depth - 1  # the last text block is pre-only: no output projection, no MLP
        names.update({theirs + "norm1.linear": (x + "adaLN_modulation.1", None),
                      theirs + "norm1_context.linear": (c + "adaLN_modulation.1", swapped if last else None),
                      theirs + "attn.to_out.0": (x + "attn.proj", None),
                      theirs + "ff.net.0.proj": (x + "mlp.fc1", None), theirs + "ff.net.2": (x + "mlp.fc2", None)})
        if not last:
            names.update({theirs + "attn.to_add_out": (c + "attn.proj", None),
                          theirs + "ff_context.net.0.proj": (c + "mlp.fc1", None),
                          theirs + "ff_context.net.2": (c + "mlp.fc2", None)})
        for q, rows in _thirds(h).items():
            names[f"{theirs}attn.to_{q}"] = (x + "attn.qkv", rows)
            names[f"{theirs}attn.add_{q}_proj"] = (c + "attn.qkv", rows)
        if i in cfg.x_self_attn_layers:
            names[theirs + "attn2.to_out.0"] = (x + "attn2.proj", None)
            for q, rows in _thirds(h).items():
                names[f"{theirs}attn2.to_{q}"] = (x + "attn2.qkv", rows)
    return names


def wan_names(cfg) -> dict[str, tuple[str, Rows]]:
    """diffusers name -> (path, None) for a WanConfig (the inverse of convert_wan_transformer_to_diffusers)."""
    names = {"condition_embedder.time_embedder.linear_1": "time_embedding.0",
             "condition_embedder.time_embedder.linear_2": "time_embedding.2",
             "condition_embedder.text_embedder.linear_1": "text_embedding.0",
             "condition_embedder.text_embedder.linear_2": "text_embedding.2",
             "condition_embedder.time_proj": "time_projection.1", "proj_out": "head.head"}
    if cfg.i2v:
        names["condition_embedder.image_embedder.ff.net.0.proj"] = "img_emb.proj.1"
        names["condition_embedder.image_embedder.ff.net.2"] = "img_emb.proj.3"
    parts = {"attn1.to_q": "self_attn.q", "attn1.to_k": "self_attn.k", "attn1.to_v": "self_attn.v",
             "attn1.to_out.0": "self_attn.o", "attn2.to_q": "cross_attn.q", "attn2.to_k": "cross_attn.k",
             "attn2.to_v": "cross_attn.v", "attn2.to_out.0": "cross_attn.o", "ffn.net.0.proj": "ffn.0",
             "ffn.net.2": "ffn.2"}
    if cfg.i2v:
        parts.update({"attn2.add_k_proj": "cross_attn.k_img", "attn2.add_v_proj": "cross_attn.v_img"})
    for i in range(cfg.depth):
        names.update({f"blocks.{i}.{theirs}": f"blocks.{i}.{ours}" for theirs, ours in parts.items()})
    return {theirs: (ours, None) for theirs, ours in names.items()}


def lumina2_names(cfg) -> dict[str, tuple[str, Rows]]:
    """diffusers name -> (path, rows) for a Lumina2Config (the inverse of diffusers'
    convert_lumina2_to_diffusers): `attn.to_q` / `to_k` / `to_v` are the heads, kv heads, kv heads
    row blocks of our `attention.qkv`; the rest one to one."""
    q, kv = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
    names: dict[str, tuple[str, Rows]] = {
        "x_embedder": ("x_embedder", None),
        "time_caption_embed.timestep_embedder.linear_1": ("t_embedder.mlp.0", None),
        "time_caption_embed.timestep_embedder.linear_2": ("t_embedder.mlp.2", None),
        "time_caption_embed.caption_embedder.1": ("cap_embedder.1", None),
        "norm_out.linear_1": ("final_layer.adaLN_modulation.1", None),
        "norm_out.linear_2": ("final_layer.linear", None),
    }
    blocks = [("layers", cfg.num_layers, True), ("noise_refiner", cfg.num_refiner_layers, True),
              ("context_refiner", cfg.num_refiner_layers, False)]
    for group, count, modulated in blocks:
        for i in range(count):
            at = f"{group}.{i}."
            names.update({at + "attn.to_q": (at + "attention.qkv", ((0, q),)),
                          at + "attn.to_k": (at + "attention.qkv", ((q, q + kv),)),
                          at + "attn.to_v": (at + "attention.qkv", ((q + kv, q + 2 * kv),)),
                          at + "attn.to_out.0": (at + "attention.out", None)})
            names.update({f"{at}feed_forward.linear_{n}": (f"{at}feed_forward.w{n}", None) for n in (1, 2, 3)})
            if modulated:
                names[at + "norm1.linear"] = (at + "adaLN_modulation.1", None)
    return names


def hunyuan_video_names(cfg) -> dict[str, tuple[str, Rows]]:
    """diffusers name -> (path, rows) for a HunyuanVideoConfig (the inverse of diffusers'
    convert_hunyuan_video_transformer_to_diffusers; our paths are Tencent's names), and ComfyUI's own
    FLUX-like module names where they differ from Tencent's (`img_mod.lin`, `img_mlp.0`, `time_in.in_layer`,
    ...: LoRAs saved from ComfyUI). Tencent's names themselves (diffusion-pipe's `transformer.double_blocks.0.
    img_attn_qkv`) are our module paths and need no table."""
    h, m = cfg.hidden_size, int(cfg.hidden_size * cfg.mlp_ratio)
    names: dict[str, tuple[str, Rows]] = {
        "x_embedder.proj": ("img_in.proj", None), "proj_out": ("final_layer.linear", None),
        "norm_out.linear": ("final_layer.adaLN_modulation.1", ((h, 2 * h), (0, h))),
        "context_embedder.proj_in": ("txt_in.input_embedder", None)}
    embedders = {"time_text_embed.timestep_embedder": ("time_in.mlp.0", "time_in.mlp.2"),
                 "time_text_embed.text_embedder": ("vector_in.in_layer", "vector_in.out_layer"),
                 "context_embedder.time_text_embed.timestep_embedder": ("txt_in.t_embedder.mlp.0",
                                                                        "txt_in.t_embedder.mlp.2"),
                 "context_embedder.time_text_embed.text_embedder": ("txt_in.c_embedder.linear_1",
                                                                    "txt_in.c_embedder.linear_2")}
    comfy = {"time_in.in_layer": "time_in.mlp.0", "time_in.out_layer": "time_in.mlp.2",
             "txt_in.t_embedder.in_layer": "txt_in.t_embedder.mlp.0",
             "txt_in.t_embedder.out_layer": "txt_in.t_embedder.mlp.2",
             "txt_in.c_embedder.in_layer": "txt_in.c_embedder.linear_1",
             "txt_in.c_embedder.out_layer": "txt_in.c_embedder.linear_2"}
    if cfg.guidance_embed:
        embedders["time_text_embed.guidance_embedder"] = ("guidance_in.mlp.0", "guidance_in.mlp.2")
        comfy.update({"guidance_in.in_layer": "guidance_in.mlp.0", "guidance_in.out_layer": "guidance_in.mlp.2"})
    for theirs, ours in embedders.items():
        names.update({f"{theirs}.linear_{n}": (path, None) for n, path in zip((1, 2), ours)})
    refiner = {"attn.to_out.0": "self_attn_proj", "ff.net.0.proj": "mlp.fc1", "ff.net.2": "mlp.fc2",
               "norm_out.linear": "adaLN_modulation.1"}
    for i in range(cfg.refiner_depth):
        ours = f"txt_in.individual_token_refiner.blocks.{i}."
        theirs = f"context_embedder.token_refiner.refiner_blocks.{i}."
        names.update({f"{theirs}attn.to_{c}": (ours + "self_attn_qkv", rows) for c, rows in _thirds(h).items()})
        names.update({theirs + k: (ours + v, None) for k, v in refiner.items()})
        comfy.update({ours + "mlp.0": ours + "mlp.fc1", ours + "mlp.2": ours + "mlp.fc2"})
    whole = {"norm1.linear": "img_mod.linear", "norm1_context.linear": "txt_mod.linear",
             "attn.to_out.0": "img_attn_proj", "attn.to_add_out": "txt_attn_proj", "ff.net.0.proj": "img_mlp.fc1",
             "ff.net.2": "img_mlp.fc2", "ff_context.net.0.proj": "txt_mlp.fc1", "ff_context.net.2": "txt_mlp.fc2"}
    for i in range(cfg.depth):
        ours, theirs = f"double_blocks.{i}.", f"transformer_blocks.{i}."
        names.update({theirs + k: (ours + v, None) for k, v in whole.items()})
        for c, rows in _thirds(h).items():
            names[f"{theirs}attn.to_{c}"] = (ours + "img_attn_qkv", rows)
            names[f"{theirs}attn.add_{c}_proj"] = (ours + "txt_attn_qkv", rows)
        for s in ("img", "txt"):
            comfy.update({f"{ours}{s}_mod.lin": f"{ours}{s}_mod.linear", f"{ours}{s}_mlp.0": f"{ours}{s}_mlp.fc1",
                          f"{ours}{s}_mlp.2": f"{ours}{s}_mlp.fc2"})
    for i in range(cfg.depth_single_blocks):
        ours, theirs = f"single_blocks.{i}.", f"single_transformer_blocks.{i}."
        names.update({theirs + "norm.linear": (ours + "modulation.linear", None),
                      theirs + "proj_out": (ours + "linear2", None),
                      theirs + "proj_mlp": (ours + "linear1", ((3 * h, 3 * h + m),))})
        names.update({f"{theirs}attn.to_{c}": (ours + "linear1", rows) for c, rows in _thirds(h).items()})
        comfy[ours + "modulation.lin"] = ours + "modulation.linear"
    return {**names, **{theirs: (ours, None) for theirs, ours in comfy.items()}}


def hunyuan_image_names(cfg) -> dict[str, tuple[str, Rows]]:
    """diffusers name -> (path, rows) for a HunyuanImageConfig: HunyuanVideo's table (the same blocks and
    refiner) with diffusers' HunyuanImage embedder names (time_guidance_embed.*: time_in, guidance_in,
    time_r_in; context_embedder_2: byt5_in) and no vector_in; ComfyUI's time_r_in.in_layer / out_layer too."""
    names = {k: v for k, v in hunyuan_video_names(cfg).items() if not k.startswith("time_text_embed.")}
    embedders = {"timestep_embedder": "time_in"}
    if cfg.guidance_embed:
        embedders["guidance_embedder"] = "guidance_in"
    if cfg.meanflow:
        embedders["timestep_embedder_r"] = "time_r_in"
        names.update({"time_r_in.in_layer": ("time_r_in.mlp.0", None),
                      "time_r_in.out_layer": ("time_r_in.mlp.2", None)})
    for theirs, ours in embedders.items():
        names.update({f"time_guidance_embed.{theirs}.linear_{n}": (f"{ours}.mlp.{m}", None)
                      for n, m in ((1, 0), (2, 2))})
    if cfg.byt5_dim:
        names.update({f"context_embedder_2.linear_{n}": (f"byt5_in.fc{n}", None) for n in (1, 2, 3)})
    return names


def aura_flow_names(cfg) -> dict[str, tuple[str, Rows]]:
    """diffusers name -> (path, rows) for an AuraFlowConfig (the inverse of diffusers'
    convert_auraflow_transformer_checkpoint_to_diffusers; ComfyUI's auraflow_to_diffusers): one to one,
    but `norm_out.linear`, modF's (shift, scale) rows as (scale, shift)."""
    d = cfg.dim
    names: dict[str, tuple[str, Rows]] = {
        "pos_embed.proj": ("init_x_linear", None), "context_embedder": ("cond_seq_linear", None),
        "time_step_proj.linear_1": ("t_embedder.mlp.0", None), "time_step_proj.linear_2": ("t_embedder.mlp.2", None),
        "proj_out": ("final_linear", None), "norm_out.linear": ("modF.1", ((d, 2 * d), (0, d)))}
    mlp = {"linear_1": "c_fc1", "linear_2": "c_fc2", "out_projection": "c_proj"}
    double = {"norm1.linear": "modX.1", "norm1_context.linear": "modC.1", "attn.to_q": "attn.w2q",
              "attn.to_k": "attn.w2k", "attn.to_v": "attn.w2v", "attn.to_out.0": "attn.w2o",
              "attn.add_q_proj": "attn.w1q", "attn.add_k_proj": "attn.w1k", "attn.add_v_proj": "attn.w1v",
              "attn.to_add_out": "attn.w1o", **{f"ff.{k}": f"mlpX.{v}" for k, v in mlp.items()},
              **{f"ff_context.{k}": f"mlpC.{v}" for k, v in mlp.items()}}
    single = {"norm1.linear": "modCX.1", **{f"attn.to_{c}": f"attn.w1{c}" for c in "qkv"},
              "attn.to_out.0": "attn.w1o", **{f"ff.{k}": f"mlp.{v}" for k, v in mlp.items()}}
    for group, ours, count, parts in (("joint_transformer_blocks", "double_layers", cfg.n_double_layers, double),
                                      ("single_transformer_blocks", "single_layers",
                                       cfg.n_layers - cfg.n_double_layers, single)):
        for i in range(count):
            names.update({f"{group}.{i}.{k}": (f"{ours}.{i}.{v}", None) for k, v in parts.items()})
    return names


def flow_lora_names(net) -> dict[str, tuple[str, Rows]]:
    """kohya-style name (`lora_unet_` or `lora_transformer_` + diffusers' name with '_') -> (our
    module path, rows) for a Flux, Chroma, MMDiT, Wan or Lumina 2 network; empty for anything else."""
    from .configs import (AuraFlowConfig, ChromaConfig, FluxConfig, HunyuanImageConfig, HunyuanVideoConfig,
                          Lumina2Config, MMDiTConfig, WanConfig)

    cfg = getattr(net, "config", None)
    table = {FluxConfig: flux_names, ChromaConfig: chroma_names, MMDiTConfig: mmdit_names,
             WanConfig: wan_names, Lumina2Config: lumina2_names, HunyuanVideoConfig: hunyuan_video_names,
             HunyuanImageConfig: hunyuan_image_names, AuraFlowConfig: aura_flow_names}.get(
        type(cfg), lambda cfg: {})(cfg)
    names = {}
    for theirs, target in table.items():
        flat = theirs.replace(".", "_")
        names["lora_unet_" + flat] = names["lora_transformer_" + flat] = target
    return names
