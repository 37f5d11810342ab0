"""Text encoder loaders (ComfyUI's CLIPLoader, DualCLIPLoader, TripleCLIPLoader): separate text
encoder files from models/text_encoders/ (or the older models/clip/), combined into the CLIP a
model family needs. Which encoder each file holds is read from its weights, in any order."""

from graphflow.api import CLIP, Choice, ComfyAlias, Node, NodeInputError, folders

KIND = "text_encoders"  # models/text_encoders/, then ComfyUI's older models/clip/ (graphflow.folders)
DEVICES = ["default", "cpu"]  # ComfyUI's device input: where the text encoders load and run


def _list() -> list[str]:
    return folders.list_models(KIND)


def _find(name: str, input_name: str):
    try:
        return folders.find_model(KIND, name)
    except (FileNotFoundError, ValueError):
        raise NodeInputError(input_name, f"no text encoder file named {name!r} in models/text_encoders or "
                                         "models/clip") from None


def _state(*names) -> str:
    from graphflow.models.weight_files import file_state

    parts = []
    for name in names:
        try:
            parts.append(f"{name}:{file_state(_find(name, 'clip_name'))}")
        except NodeInputError:
            parts.append(f"{name}:missing")
    return "|".join(parts)


def _load(inputs: list[tuple[str, str]], clip_type: str, device: str = "default"):
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.models.weight_files import CheckpointError

    paths = [_find(name, input_name) for input_name, name in inputs]
    try:
        return load_text_encoders(paths, clip_type, on_cpu=device == "cpu")
    except CheckpointError as e:
        raise NodeInputError(inputs[0][0] if len(inputs) == 1 else "type", str(e)) from None


class LoadTextEncoder(Node):
    """Load one text encoder file: a CLIP-L (SD1) or ViT-H (SD2) for stable_diffusion (which, as
    in ComfyUI, makes a T5-XXL file Mochi's encoder and an old T5 v1.0 file Cosmos'), any one
    of CLIP-L, CLIP-G, T5-XXL for sd3 (the others are then left out of the conditioning), the
    CLIP-G of Stable Cascade (stable_cascade), or T5-XXL for chroma, pixart (PixArt-α / Σ),
    ltxv (LTX-Video) and mochi (Mochi 1), prompts unpadded, as ComfyUI encodes them for these
    (or with the padding masked: the same numbers); or the old T5-XXL (v1.0, oldt5_xxl) for
    cosmos (Cosmos 1.0, Cosmos-Predict2), prompts padded to 512 zeroed tokens; or UMT5-XXL (umt5_xxl_fp16 /
    umt5_xxl_fp8_e4m3fn_scaled, whose tokenizer is inside the file) for wan (Wan 2.1), prompts
    zero-padded to 512 tokens as ComfyUI gives them; or Gemma-2 2B (gemma_2_2b_fp16, tokenizer
    inside) for lumina2 (Lumina Image 2.0, Neta Lumina), its second-to-last layer's states; or
    Qwen2.5-VL 7B (qwen_2.5_vl_7b / qwen_2.5_vl_7b_fp8_scaled) for qwen_image (Qwen-Image), the
    prompt in Qwen-Image's chat template, the last layer's states from the prompt's first token;
    or one of HiDream's four encoders (CLIP-L, CLIP-G, T5-XXL, Llama 3.1 8B) for hidream, the
    others' parts of the conditioning zeros; or Qwen2.5-VL 7B for hunyuan_image (HunyuanImage 2.1
    without its glyph encoder: quoted text gets no byT5 states), its template without the
    assistant turn, the third-to-last layer's states. A Pile-T5 XL file makes AuraFlow's encoder
    whatever the type, as in ComfyUI (which has no AuraFlow type): prompts padded to 256 tokens,
    zeroed past the end token.
    device "cpu" keeps the encoder on the CPU for good: loaded and run there (a T5-XXL that
    would crowd a small GPU), only its conditioning goes to the GPU; "default" lets the memory
    manager move it to the GPU while it encodes."""
    category = "advanced/loaders"
    clip_name: str = Choice(_list)
    type: str = Choice(["stable_diffusion", "stable_cascade", "sd3", "chroma", "pixart", "ltxv", "mochi", "cosmos",
                        "wan", "lumina2", "qwen_image", "hidream", "hunyuan_image"],
                       "stable_diffusion")
    device: str = Choice(DEVICES, "default")
    outputs = {"clip": CLIP}
    comfy = ComfyAlias(("CLIPLoader",), optional=("device",))

    @classmethod
    def fingerprint(cls, clip_name, **widgets):
        return _state(clip_name)

    def run(self):
        return _load([("clip_name", self.clip_name)], self.type, self.device)


class LoadDualTextEncoders(Node):
    """Load two text encoder files: CLIP-L + CLIP-G (sdxl), two of CLIP-L / CLIP-G / T5-XXL (sd3),
    CLIP-L + T5-XXL (flux), or CLIP-L + LLaVA-Llama-3 8B (hunyuan_video: clip_l with
    llava_llama3_fp8_scaled or llava_llama3_fp16; HunyuanVideo's prompt template, Llama's
    third-to-last layer for the prompt's tokens, CLIP-L's pooled output), or two of HiDream's
    CLIP-L / CLIP-G / T5-XXL / Llama 3.1 8B (hidream; as QuadrupleCLIPLoader, the missing ones'
    parts zeros), or Qwen2.5-VL 7B + byT5-small glyph (hunyuan_image: qwen_2.5_vl_7b with
    byt5_small_glyphxl_fp16; Qwen's third-to-last layer for the prompt, and byT5's states of the
    text the prompt quotes, "..." or “...”, for HunyuanImage 2.1's glyph branch), in any order.
    device "cpu" keeps both on the CPU for good: loaded and run there, only their conditioning
    goes to the GPU; "default" lets the memory manager move them to the GPU while they encode."""
    category = "advanced/loaders"
    clip_name1: str = Choice(_list)
    clip_name2: str = Choice(_list)
    type: str = Choice(["sdxl", "sd3", "flux", "hunyuan_video", "hidream", "hunyuan_image"], "sdxl")
    device: str = Choice(DEVICES, "default")
    outputs = {"clip": CLIP}
    comfy = ComfyAlias(("DualCLIPLoader",), optional=("device",))

    @classmethod
    def fingerprint(cls, clip_name1, clip_name2, **widgets):
        return _state(clip_name1, clip_name2)

    def run(self):
        return _load([("clip_name1", self.clip_name1), ("clip_name2", self.clip_name2)], self.type, self.device)


class LoadTripleTextEncoders(Node):
    """Load SD3 / SD3.5's three text encoders: CLIP-L, CLIP-G and T5-XXL (any order)."""
    category = "advanced/loaders"
    clip_name1: str = Choice(_list)
    clip_name2: str = Choice(_list)
    clip_name3: str = Choice(_list)
    outputs = {"clip": CLIP}
    comfy = ComfyAlias(("TripleCLIPLoader",))

    @classmethod
    def fingerprint(cls, clip_name1, clip_name2, clip_name3):
        return _state(clip_name1, clip_name2, clip_name3)

    def run(self):
        return _load([("clip_name1", self.clip_name1), ("clip_name2", self.clip_name2),
                      ("clip_name3", self.clip_name3)], "sd3")
