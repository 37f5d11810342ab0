"""Model merging: two MODELs (UNets) or two CLIPs mixed weight by weight, as ComfyUI's
ModelMerge* / CLIPMerge* nodes; the block-wise merges set a ratio per UNet block. Inputs are never
modified (graphflow.models.merge)."""

from graphflow.api import CLIP, MODEL, ComfyAlias, Float, Node, NodeInputError


def _merge_models(node, factors):
    from graphflow.models.merge import MergeError, merge_models

    try:
        return merge_models(node.model1, node.model2, factors)
    except MergeError as e:
        raise NodeInputError("model2", str(e)) from None


def _merge_clips(node, factors):
    from graphflow.models.merge import MergeError, merge_clips

    if node.clip1 is None or node.clip2 is None:
        raise NodeInputError("clip1" if node.clip1 is None else "clip2", "no text encoder (the checkpoint has none)")
    try:
        merged = merge_clips(node.clip1, node.clip2, factors)
    except MergeError as e:
        raise NodeInputError("clip2", str(e)) from None
    _warn_partial(node.clip1, node.clip2)
    return merged


def _warn_partial(clip1, clip2) -> None:
    """ComfyUI merges the encoders both CLIPs have by name and says nothing of the rest: say it."""
    from graphflow.context import warn
    from graphflow.models.merge import shared_encoders

    if not hasattr(clip1, "towers") or not hasattr(clip2, "towers"):
        return
    both = shared_encoders(clip1, clip2)
    only1 = [n for n in shared_encoders(clip1, clip1) if n not in both]
    only2 = [n for n in shared_encoders(clip2, clip2) if n not in both]
    if only1 or only2:
        warn(f"CLIP merge of a {clip1.arch} and a {clip2.arch} text encoder: merged {', '.join(both) or 'nothing'}"
             + (f"; clip1's {', '.join(only1)} kept as they are" if only1 else "")
             + (f"; clip2's {', '.join(only2)} unused" if only2 else "") + " (as in ComfyUI, which merges by name)")


class ModelMergeSimple(Node):
    """model1 * ratio + model2 * (1 - ratio), weight by weight (ratio 1 = model1 unchanged).
    Only the diffusion model is merged; use CLIPMergeSimple for the text encoders."""
    category = "advanced/model_merging"
    model1: MODEL
    model2: MODEL
    ratio: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("ModelMergeSimple",))

    def run(self):
        return _merge_models(self, lambda name: (self.ratio, 1.0 - self.ratio))


class ModelMergeAdd(Node):
    """model1 + model2, weight by weight: adds a difference made by ModelMergeSubtract."""
    category = "advanced/model_merging"
    model1: MODEL
    model2: MODEL
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("ModelMergeAdd",))

    def run(self):
        return _merge_models(self, lambda name: (1.0, 1.0))


class ModelMergeSubtract(Node):
    """(model1 - model2) * multiplier, weight by weight: the difference a fine-tune made (a
    custom model minus its base), to add to another model with ModelMergeAdd (onto an
    inpainting model, say). As in every merge, a layer whose sizes differ between the two (an
    inpainting model's 9-channel input) is not merged: model1's weight times its factor; one that
    model2 lacks (FLUX dev's guidance embedding against schnell) stays model1's as it is."""
    category = "advanced/model_merging"
    model1: MODEL
    model2: MODEL
    multiplier: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("ModelMergeSubtract",))

    def run(self):
        return _merge_models(self, lambda name: (self.multiplier, -self.multiplier))


class ModelMergeBlocks(Node):
    """Merge with one ratio for the UNet's input blocks, one for the middle block and one for the
    output blocks (ratio 1 = model1's weights): model1 * ratio + model2 * (1 - ratio). The time
    embedding follows `input`, the final layers `out`."""
    category = "advanced/model_merging"
    model1: MODEL
    model2: MODEL
    input: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    middle: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    out: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("ModelMergeBlocks",))

    def run(self):
        from graphflow.models.merge import block_factors

        return _merge_models(self, block_factors({"input": self.input, "middle": self.middle, "out": self.out},
                                                 self.input))


def _block_merge_node(name: str, doc: str, prefixes: list[str], aliases: tuple[str, ...],
                      archs: tuple[str, ...] | None = None, *,
                      category: str = "advanced/model_merging/model_specific", module: str = __name__,
                      output_names: tuple[str, ...] = ()) -> type[Node]:
    """A per-block merge node: one ratio input per block prefix, named with '_' for '.' (ComfyUI's
    names, with their dots, map onto them); parameters under no prefix take the first ratio, as
    in ComfyUI. `archs`: the model families it is for (else any); `category`, `module` (the module
    that defines it: a pack's) and `output_names` (ComfyAlias') for nodes made elsewhere."""
    ours = {prefix: prefix.rstrip(".").replace(".", "_") for prefix in prefixes}
    namespace = {"__module__": module, "__doc__": doc, "category": category,
                 "__annotations__": {"model1": MODEL, "model2": MODEL}, "outputs": {"model": MODEL},
                 "comfy": ComfyAlias(aliases, inputs={p: o for p, o in ours.items() if p != o},
                                     output_names=output_names)}
    for prefix, attribute in ours.items():
        namespace["__annotations__"][attribute] = float
        namespace[attribute] = Float(1.0, min=0.0, max=1.0, step=0.01)

    def run(self):
        from graphflow.models.merge import block_factors

        if archs is not None:
            for socket in ("model1", "model2"):
                arch = getattr(getattr(self, socket), "arch", None)
                if arch not in archs:
                    raise NodeInputError(socket, f"{name} merges {' / '.join(archs)} models; this one is {arch}")
        ratios = {prefix: getattr(self, attribute) for prefix, attribute in ours.items()}
        return _merge_models(self, block_factors(ratios, ratios[prefixes[0]]))

    namespace["run"] = run
    return type(name, (Node,), namespace)


_SD1_BLOCKS = (["time_embed.", "label_emb."] + [f"input_blocks.{i}." for i in range(12)]
               + [f"middle_block.{i}." for i in range(3)] + [f"output_blocks.{i}." for i in range(12)] + ["out."])
_SDXL_BLOCKS = (["time_embed.", "label_emb."] + [f"input_blocks.{i}" for i in range(9)]
                + [f"middle_block.{i}" for i in range(3)] + [f"output_blocks.{i}" for i in range(9)] + ["out."])

ModelMergeSD1 = _block_merge_node(
    "ModelMergeSD1", """Merge two SD1.x or SD2.x models with one ratio per UNet block (ratio 1 = model1's
    weights): model1 * ratio + model2 * (1 - ratio). Inputs are the 12 input blocks, the 3 parts of
    the middle block and the 12 output blocks.""", _SD1_BLOCKS, ("ModelMergeSD1", "ModelMergeSD2"))
ModelMergeSDXL = _block_merge_node(
    "ModelMergeSDXL", """Merge two SDXL models with one ratio per UNet block (ratio 1 = model1's
    weights): model1 * ratio + model2 * (1 - ratio). Inputs are the 9 input blocks, the 3 parts of
    the middle block and the 9 output blocks.""", _SDXL_BLOCKS, ("ModelMergeSDXL",))

_FLUX_BLOCKS = (["img_in.", "time_in.", "guidance_in", "vector_in.", "txt_in."]
                + [f"double_blocks.{i}." for i in range(19)] + [f"single_blocks.{i}." for i in range(38)]
                + ["final_layer."])


def _mmdit_blocks(depth: int) -> list[str]:
    return (["pos_embed.", "x_embedder.", "context_embedder.", "y_embedder.", "t_embedder."]
            + [f"joint_blocks.{i}." for i in range(depth)] + ["final_layer."])


ModelMergeFlux1 = _block_merge_node(
    "ModelMergeFlux1", """Merge two FLUX.1 models (dev, schnell, fine-tunes) with one ratio per
    transformer block (ratio 1 = model1's weights): model1 * ratio + model2 * (1 - ratio). Inputs are
    the input embedders, the 19 double-stream blocks, the 38 single-stream blocks and the final
    layer. Chroma models merge too (as in ComfyUI, by the same block names; Chroma's
    distilled_guidance_layer follows img_in).""", _FLUX_BLOCKS, ("ModelMergeFlux1",), ("flux", "chroma"))
ModelMergeSD3_2B = _block_merge_node(
    "ModelMergeSD3_2B", """Merge two SD3 Medium (2B) models with one ratio per MM-DiT block
    (ratio 1 = model1's weights): model1 * ratio + model2 * (1 - ratio). Inputs are the embedders,
    the 24 joint blocks and the final layer; the position embedding follows `pos_embed`.""",
    _mmdit_blocks(24), ("ModelMergeSD3_2B",), ("sd3",))
ModelMergeSD35_Large = _block_merge_node(
    "ModelMergeSD35_Large", """Merge two SD3.5 Large models with one ratio per MM-DiT block
    (ratio 1 = model1's weights): model1 * ratio + model2 * (1 - ratio). Inputs are the embedders,
    the 38 joint blocks and the final layer; the position embedding follows `pos_embed`.""",
    _mmdit_blocks(38), ("ModelMergeSD35_Large",), ("sd3",))

ModelMergeLTXV = _block_merge_node(
    "ModelMergeLTXV", """Merge two LTX-Video models with one ratio per transformer block (ratio 1 =
    model1's weights): model1 * ratio + model2 * (1 - ratio). Inputs are the input projection, the
    timestep embedding (adaln_single), the caption projection, the 28 transformer blocks, the final
    modulation table (scale_shift_table) and the output projection.""",
    ["patchify_proj.", "adaln_single.", "caption_projection."] + [f"transformer_blocks.{i}." for i in range(28)]
    + ["scale_shift_table", "proj_out."], ("ModelMergeLTXV",), ("ltxv",))

ModelMergeMochiPreview = _block_merge_node(
    "ModelMergeMochiPreview", """Merge two Mochi 1 Preview models with one ratio per transformer block
    (ratio 1 = model1's weights): model1 * ratio + model2 * (1 - ratio). Inputs are the rotary
    frequencies, the timestep embedding, the prompt pool (t5_y_embedder), the prompt projection
    (t5_yproj), the 48 blocks and the final layer; the patch embedding follows `pos_frequencies`.""",
    ["pos_frequencies.", "t_embedder.", "t5_y_embedder.", "t5_yproj."] + [f"blocks.{i}." for i in range(48)]
    + ["final_layer."], ("ModelMergeMochiPreview",), ("mochi",))
_COSMOS_PREDICT2 = """Merge two Cosmos-Predict2 {size} models with one ratio per transformer block (ratio 1 =
    model1's weights): model1 * ratio + model2 * (1 - ratio). Inputs are the position embedder
    (no weights: ComfyUI's list), the patch embedder, the timestep embedding and its norm, the
    {blocks} blocks and the final layer."""
ModelMergeCosmosPredict2_2B = _block_merge_node(
    "ModelMergeCosmosPredict2_2B", _COSMOS_PREDICT2.format(size="2B", blocks=28),
    ["pos_embedder.", "x_embedder.", "t_embedder.", "t_embedding_norm."] + [f"blocks.{i}." for i in range(28)]
    + ["final_layer."], ("ModelMergeCosmosPredict2_2B",), ("cosmos",))
ModelMergeCosmosPredict2_14B = _block_merge_node(
    "ModelMergeCosmosPredict2_14B", _COSMOS_PREDICT2.format(size="14B", blocks=36),
    ["pos_embedder.", "x_embedder.", "t_embedder.", "t_embedding_norm."] + [f"blocks.{i}." for i in range(36)]
    + ["final_layer."], ("ModelMergeCosmosPredict2_14B",), ("cosmos",))

_COSMOS1 = """Merge two Cosmos 1.0 {size} models (Text2World or Video2World) with one ratio per transformer
    block (ratio 1 = model1's weights): model1 * ratio + model2 * (1 - ratio). Inputs are the position
    embedder (no weights: ComfyUI's list), the learned positions, the patch embedder, the timestep
    embedding and its norm (affline_norm), the {blocks} blocks and the final layer."""
ModelMergeCosmos7B = _block_merge_node(
    "ModelMergeCosmos7B", _COSMOS1.format(size="7B", blocks=28),
    ["pos_embedder.", "extra_pos_embedder.", "x_embedder.", "t_embedder.", "affline_norm."]
    + [f"blocks.block{i}." for i in range(28)] + ["final_layer."], ("ModelMergeCosmos7B",), ("cosmos1",))
ModelMergeCosmos14B = _block_merge_node(
    "ModelMergeCosmos14B", _COSMOS1.format(size="14B", blocks=36),
    ["pos_embedder.", "extra_pos_embedder.", "x_embedder.", "t_embedder.", "affline_norm."]
    + [f"blocks.block{i}." for i in range(36)] + ["final_layer."], ("ModelMergeCosmos14B",), ("cosmos1",))

ModelMergeQwenImage = _block_merge_node(
    "ModelMergeQwenImage", """Merge two Qwen-Image models with one ratio per transformer block (ratio 1 =
    model1's weights): model1 * ratio + model2 * (1 - ratio). Inputs are the position embeddings (no
    weights: ComfyUI's list; the final norm's modulation, norm_out, follows it), the image input, the
    text norm and input, the timestep embedding, the 60 double-stream blocks and the output
    projection.""",
    ["pos_embeds.", "img_in.", "txt_norm.", "txt_in.", "time_text_embed."]
    + [f"transformer_blocks.{i}." for i in range(60)] + ["proj_out."], ("ModelMergeQwenImage",), ("qwen_image",))


ModelMergeAuraflow = _block_merge_node(
    "ModelMergeAuraflow", """Merge two AuraFlow models with one ratio per transformer layer (ratio 1 =
    model1's weights): model1 * ratio + model2 * (1 - ratio). Inputs are the patch input (init_x_linear),
    the position table, the text input (cond_seq_linear), the register tokens, the timestep embedding,
    the 4 double-stream layers, the 32 single-stream layers, the final modulation (modF) and the final
    linear.""",
    ["init_x_linear.", "positional_encoding", "cond_seq_linear.", "register_tokens", "t_embedder."]
    + [f"double_layers.{i}." for i in range(4)] + [f"single_layers.{i}." for i in range(32)]
    + ["modF.", "final_linear."], ("ModelMergeAuraflow",), ("aura_flow",))


class CLIPMergeSimple(Node):
    """clip1 * ratio + clip2 * (1 - ratio), weight by weight (ratio 1 = clip1 unchanged). Encoders merge by name
    (CLIP-L with CLIP-L, CLIP-G with CLIP-G, T5 with T5), as in ComfyUI, whatever the families (SDXL's
    CLIP-L into SD1's); clip1's other encoders are kept as they are, clip2's others unused."""
    category = "advanced/model_merging"
    clip1: CLIP
    clip2: CLIP
    ratio: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"clip": CLIP}
    comfy = ComfyAlias(("CLIPMergeSimple",))

    def run(self):
        return _merge_clips(self, lambda name: (self.ratio, 1.0 - self.ratio))


class CLIPMergeAdd(Node):
    """clip1 + clip2, weight by weight. Encoders merge by name
    (CLIP-L with CLIP-L, CLIP-G with CLIP-G, T5 with T5), as in ComfyUI, whatever the families (SDXL's
    CLIP-L into SD1's); clip1's other encoders are kept as they are, clip2's others unused."""
    category = "advanced/model_merging"
    clip1: CLIP
    clip2: CLIP
    outputs = {"clip": CLIP}
    comfy = ComfyAlias(("CLIPMergeAdd",))

    def run(self):
        return _merge_clips(self, lambda name: (1.0, 1.0))


class CLIPMergeSubtract(Node):
    """(clip1 - clip2) * multiplier, weight by weight. Encoders merge by name
    (CLIP-L with CLIP-L, CLIP-G with CLIP-G, T5 with T5), as in ComfyUI, whatever the families (SDXL's
    CLIP-L into SD1's); clip1's other encoders are kept as they are, clip2's others unused."""
    category = "advanced/model_merging"
    clip1: CLIP
    clip2: CLIP
    multiplier: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    outputs = {"clip": CLIP}
    comfy = ComfyAlias(("CLIPMergeSubtract",))

    def run(self):
        return _merge_clips(self, lambda name: (self.multiplier, -self.multiplier))

ModelMergeWAN2_1 = _block_merge_node(
    "ModelMergeWAN2_1", """Merge two Wan 2.1 models with one ratio per transformer block (ratio 1 =
    model1's weights): model1 * ratio + model2 * (1 - ratio). Inputs are the patch embedding, the
    timestep embedding and its projection, the prompt embedding, the image embedding (I2V), the 40
    blocks (the 14B's; the 1.3B has 30) and the head.""",
    ["patch_embedding.", "time_embedding.", "time_projection.", "text_embedding.", "img_emb."]
    + [f"blocks.{i}." for i in range(40)] + ["head."], ("ModelMergeWAN2_1",), ("wan",))
