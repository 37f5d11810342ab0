"""Sepia toning: a one-file graphflow plugin.

Put this file in a plugin folder (./plugins, --plugins-dir DIR or GRAPHFLOW_PLUGINS) and a
Sepia node appears in `graphflow nodes` and in the editor, marked [sepia].
"""

import torch

from graphflow.api import IMAGE, Float, Node

# The classic sepia matrix: row i mixes the input R, G, B into output channel i.
SEPIA = torch.tensor([[0.393, 0.769, 0.189],
                      [0.349, 0.686, 0.168],
                      [0.272, 0.534, 0.131]])


class Sepia(Node):
    """Tone an image in warm browns, like an old photograph.

    Strength 0 leaves the image as it is, 1 is full sepia."""

    category = "image/filters"
    image: IMAGE
    strength: float = Float(1.0, min=0.0, max=1.0, step=0.05)
    outputs = {"image": IMAGE}

    def run(self):
        toned = (self.image @ SEPIA.T.to(self.image)).clamp(0, 1)
        return torch.lerp(self.image, toned, self.strength)
