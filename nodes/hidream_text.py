"""HiDream-I1's text nodes, as ComfyUI's: QuadrupleCLIPLoader (CLIP-L, CLIP-G, T5-XXL, Llama 3.1 8B,
any order) and CLIPTextEncodeHiDream (a prompt for each encoder); CLIPTextEncode gives all four
the same prompt."""

from __future__ import annotations

from graphflow.api import CLIP, CONDITIONING, Choice, ComfyAlias, Node, NodeInputError, Text
from nodes.conditioning import encoded
from nodes.text_encoder_loaders import _list, _load, _state


class LoadQuadrupleTextEncoders(Node):
    """Load HiDream-I1's four text encoders: clip_l, clip_g, t5xxl (t5xxl_fp8_e4m3fn_scaled or
    fp16) and llama_3.1_8b_instruct_fp8_scaled, in any order. The conditioning is T5-XXL's states
    (128 tokens), CLIP-L's and CLIP-G's projected pooled outputs, and every layer of Llama 3.1's
    states for the prompt (128 tokens or more)."""
    category = "advanced/loaders"
    clip_name1: str = Choice(_list)
    clip_name2: str = Choice(_list)
    clip_name3: str = Choice(_list)
    clip_name4: str = Choice(_list)
    outputs = {"clip": CLIP}
    comfy = ComfyAlias(("QuadrupleCLIPLoader",))

    @classmethod
    def fingerprint(cls, clip_name1, clip_name2, clip_name3, clip_name4):
        return _state(clip_name1, clip_name2, clip_name3, clip_name4)

    def run(self):
        return _load([("clip_name1", self.clip_name1), ("clip_name2", self.clip_name2),
                      ("clip_name3", self.clip_name3), ("clip_name4", self.clip_name4)], "hidream")


class CLIPTextEncodeHiDream(Node):
    """Encode a prompt for HiDream-I1 with a separate text for each encoder: CLIP-L and CLIP-G give
    the pooled vector, T5-XXL the tokens, Llama 3.1 its per-layer states. Needs HiDream's CLIP
    (QuadrupleCLIPLoader, or CLIPLoader / DualCLIPLoader type hidream)."""
    category = "advanced/conditioning"
    clip: CLIP
    clip_l: str = Text("", multiline=True)
    clip_g: str = Text("", multiline=True)
    t5xxl: str = Text("", multiline=True)
    llama: str = Text("", multiline=True)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("CLIPTextEncodeHiDream",))

    def run(self):
        from graphflow.models.hidream_text import HiDreamTextEncoder

        if not isinstance(self.clip, HiDreamTextEncoder):
            raise NodeInputError("clip", f"CLIPTextEncodeHiDream needs HiDream's text encoder (QuadrupleCLIPLoader, or "
                                         f"CLIPLoader / DualCLIPLoader type hidream); got a "
                                         f"{getattr(self.clip, 'arch', type(self.clip).__name__)} one")

        def encode(clip):
            try:
                cond, pooled, options = clip.encode_hidream(self.clip_l, self.clip_g, self.t5xxl, self.llama)
            except ValueError as e:
                raise NodeInputError("llama", str(e)) from None
            return cond, {"pooled_output": pooled, **options}

        return encoded(self.clip, encode)
