"""WAS Node Suite's (WASasquatch/was-node-suite-comfyui) input switches not in the first rounds: Lora
Input Switch, CLIP Vision Input Switch and Control Net Model Input Switch, under the pack's class
names (the rest of the fourth round is in nodes/pack_nodes_was4.py, whose docstring says what was
read and what is left out).

Read from the class sources quoted by a documentation mirror of the suite's nodes, in its two
layouts: the 2023 one switches on boolean_number (a NUMBER, on when it rounds to 1, as the first
rounds' switches in nodes/pack_nodes_was.py do); the later one (2024-2025) on boolean (a BOOLEAN
input, forceInput). Both are read here: a node takes whichever of the two is linked (boolean when
both are). The later CLIP Vision Input Switch gives clip_vision_b bare, not in a tuple, which
ComfyUI cannot read; here it is given as an output should be.
"""

from __future__ import annotations

from graphflow.api import BOOLEAN, CLIP, CLIP_VISION, MODEL, ComfyAlias, Node
from nodes.controlnet import CONTROL_NET
from nodes.pack_nodes_was import NUMBER, SWITCH_LAYOUTS, first_chosen, switch_node

COMFY_PACK = "WAS Node Suite"  # the custom node pack this module's ComfyUI classes come from


class WasLoraInputSwitch(Node):
    """model_a and clip_a when boolean is true (or boolean_number rounds to 1, the 2023
    layout), else model_b and clip_b (WAS's Lora Input Switch)."""
    category = "WAS Suite/Logic"
    model_a: MODEL
    clip_a: CLIP
    model_b: MODEL
    clip_b: CLIP
    boolean: BOOLEAN = None
    boolean_number: NUMBER = None
    outputs = {"MODEL": MODEL, "CLIP": CLIP}
    comfy = ComfyAlias(("Lora Input Switch",), **SWITCH_LAYOUTS)

    def run(self):
        return (self.model_a, self.clip_a) if first_chosen(self) else (self.model_b, self.clip_b)


WasClipVisionInputSwitch = switch_node("clip_vision", CLIP_VISION, "CLIP Vision Input Switch", __name__)
WasControlNetModelInputSwitch = switch_node("control_net", CONTROL_NET, "Control Net Model Input Switch", __name__)
