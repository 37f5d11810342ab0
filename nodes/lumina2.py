"""Lumina Image 2.0 (and Neta Lumina) nodes, as ComfyUI runs the family: the NextDiT with
LoadDiffusionModel (UNETLoader), Gemma-2 2B with LoadTextEncoder (CLIPLoader) type lumina2,
FLUX's VAE (ae.safetensors) with LoadVAE, EmptySD3LatentImage; prompts with the system prompt
Lumina 2 was trained to read first."""

from __future__ import annotations

from graphflow.api import CLIP, CONDITIONING, Choice, ComfyAlias, Node, NodeInputError, Text
from nodes.conditioning import encoded

# ComfyUI's CLIPTextEncodeLumina2.SYSTEM_PROMPT (the ones Lumina-Image-2.0 was trained with)
SYSTEM_PROMPTS = {
    "superior": "You are an assistant designed to generate superior images with the superior degree of "
                "image-text alignment based on textual prompts or user prompts.",
    "alignment": "You are an assistant designed to generate high-quality images with the highest degree of "
                 "image-text alignment based on textual prompts.",
}
SEPARATOR = " <Prompt Start> "  # between the system prompt and the user's, as ComfyUI joins them


def lumina2_prompt(system_prompt: str, user_prompt: str) -> str:
    return f"{SYSTEM_PROMPTS[system_prompt]}{SEPARATOR}{user_prompt}"


class CLIPTextEncodeLumina2(Node):
    """Encode a prompt for Lumina 2: the chosen system prompt, " <Prompt Start> ", then the user
    prompt, as one text through Gemma-2. superior: "You are an assistant designed to generate
    superior images with the superior degree of image-text alignment based on textual prompts or
    user prompts." alignment: "You are an assistant designed to generate high-quality images with
    the highest degree of image-text alignment based on textual prompts." Weights ((word:1.2))
    work in either part."""
    category = "conditioning"
    system_prompt: str = Choice(list(SYSTEM_PROMPTS), "superior")
    user_prompt: str = Text("", multiline=True)
    clip: CLIP
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("CLIPTextEncodeLumina2",))

    def run(self):
        if self.clip is None:
            raise NodeInputError("clip", "no text encoder connected: load Gemma-2 2B with CLIPLoader type lumina2")
        prompt = lumina2_prompt(self.system_prompt, self.user_prompt)

        def encode(clip):
            cond, pooled = clip.encode(prompt)
            return cond, {} if pooled is None else {"pooled_output": pooled}

        return encoded(self.clip, encode)
