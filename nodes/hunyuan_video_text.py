"""HunyuanVideo's text nodes, as ComfyUI's: DualCLIPLoader type hunyuan_video (CLIP-L + LLaVA-Llama-3
8B) encodes prompts with CLIPTextEncode; pictures for image-to-video go through LLaVA's vision tower
(CLIPVisionLoader llava_llama3_vision + CLIPVisionEncode) into TextEncodeHunyuanVideo_ImageToVideo."""

from __future__ import annotations

from graphflow.api import CLIP, CLIP_VISION_OUTPUT, CONDITIONING, ComfyAlias, Int, Node, NodeInputError, Text
from nodes.conditioning import encoded


class TextEncodeHunyuanVideoImageToVideo(Node):
    """Encode a prompt with a picture for HunyuanVideo image-to-video: the picture's LLaVA-projected
    patches (CLIPVisionEncode's output with llava_llama3_vision.safetensors) take the place of
    <image> in HunyuanVideo-I2V's system template, and every image_interleave-th of their Llama
    states comes before the prompt's. Needs DualCLIPLoader type hunyuan_video; prompt weights
    ((word:1.2)) cannot go with a picture (as in ComfyUI)."""
    category = "advanced/conditioning"
    clip: CLIP
    clip_vision_output: CLIP_VISION_OUTPUT
    prompt: str = Text("", multiline=True)
    image_interleave: int = Int(2, min=1, max=512)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("TextEncodeHunyuanVideo_ImageToVideo",))

    def run(self):
        from graphflow.models.llama import HunyuanVideoTextEncoder

        if not isinstance(self.clip, HunyuanVideoTextEncoder):
            raise NodeInputError("clip", "needs HunyuanVideo's text encoder: DualCLIPLoader type hunyuan_video with "
                                         "clip_l and llava_llama3_fp8_scaled / llava_llama3_fp16")
        projected = getattr(self.clip_vision_output, "mm_projected", None)
        if projected is None:
            raise NodeInputError("clip_vision_output", "no LLaVA-projected patches (mm_projected): encode the picture "
                                                       "with CLIPVisionLoader llava_llama3_vision.safetensors")
        if projected.shape[-1] != self.clip.output_dim:
            raise NodeInputError("clip_vision_output", f"the picture's patches are {projected.shape[-1]} wide, this "
                                                       f"Llama takes {self.clip.output_dim}")

        def encode(clip):
            try:
                cond, pooled = clip.encode_with_image(self.prompt, projected, self.image_interleave)
            except ValueError as e:
                raise NodeInputError("prompt", str(e)) from None
            return cond, {"pooled_output": pooled}

        return encoded(self.clip, encode)
