"""Text conditioning: encode prompts, combine, restrict to an area, zero out.

CONDITIONING is a list of (embedding [B, T, D], options) pairs; options may carry
"pooled_output" (SDXL), "area" (h, w, y, x in latent units) and "strength"."""

import torch

from graphflow.api import CLIP, CONDITIONING, ComfyAlias, Float, Int, Node, NodeInputError, Text

MAX_SIZE = 16384


class CLIPEncode(Node):
    """Encode a prompt with the text encoder. Long prompts are split into 77-token windows.
    (word:1.3) weights a part and (word) is 1.1, as in ComfyUI; \\( is a literal bracket and
    [word] is plain text. clip_skip -1 uses the last layer, -2 the one before it; 0 keeps the
    model's default (SD2 and SDXL: -2)."""
    category = "conditioning"
    text: str = Text("", multiline=True)
    clip: CLIP
    clip_skip: int = Int(0, min=-24, max=0)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("CLIPTextEncode",), optional=("clip_skip",))

    def run(self):
        if self.clip is None:
            raise NodeInputError("clip", "no text encoder: the checkpoint has none; load one separately")
        try:
            cond, pooled = self.clip.encode(self.text, clip_skip=self.clip_skip or None)
        except ValueError as e:
            raise NodeInputError("clip_skip", str(e)) from None
        options = {} if pooled is None else {"pooled_output": pooled}
        return [(cond, options)]


class CLIPSetLastLayer(Node):
    """Stop the text encoder at an earlier layer for every prompt encoded with it
    (-1 = the last layer, -2 = the one before)."""
    category = "conditioning"
    clip: CLIP
    stop_at_clip_layer: int = Int(-1, min=-24, max=-1)
    outputs = {"clip": CLIP}
    comfy = ComfyAlias(("CLIPSetLastLayer",))

    def run(self):
        try:
            return self.clip.with_clip_skip(self.stop_at_clip_layer)
        except ValueError as e:
            raise NodeInputError("stop_at_clip_layer", str(e)) from None


class ConditioningCombine(Node):
    """Use both conditionings: the sampler averages their predictions (by area and strength)."""
    category = "conditioning"
    conditioning_1: CONDITIONING
    conditioning_2: CONDITIONING
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("ConditioningCombine",))

    def run(self):
        return list(self.conditioning_1) + list(self.conditioning_2)


class ConditioningSetArea(Node):
    """Apply the conditioning only to a rectangle of the image (pixel units, multiples of 8),
    with a strength relative to the other conditionings it is combined with."""
    category = "conditioning"
    conditioning: CONDITIONING
    width: int = Int(64, min=64, max=MAX_SIZE, step=8)
    height: int = Int(64, min=64, max=MAX_SIZE, step=8)
    x: int = Int(0, min=0, max=MAX_SIZE, step=8)
    y: int = Int(0, min=0, max=MAX_SIZE, step=8)
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("ConditioningSetArea",))

    def run(self):
        area = (self.height // 8, self.width // 8, self.y // 8, self.x // 8)
        return [(cond, {**options, "area": area, "strength": self.strength})
                for cond, options in self.conditioning]


class ConditioningZeroOut(Node):
    """Replace the embeddings (and pooled output) with zeros: an 'empty' negative for models
    trained that way (SDXL turbo, SD3)."""
    category = "conditioning"
    conditioning: CONDITIONING
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("ConditioningZeroOut",))

    def run(self):
        zeroed = []
        for cond, options in self.conditioning:
            options = dict(options)
            if options.get("pooled_output") is not None:
                options["pooled_output"] = torch.zeros_like(options["pooled_output"])
            zeroed.append((torch.zeros_like(cond), options))
        return zeroed
