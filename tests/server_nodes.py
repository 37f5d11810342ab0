"""Small image nodes for the server tests: they preview, save and show images like the real ones."""

import threading
import uuid
from typing import ClassVar

from PIL import Image

from graphflow.api import IMAGE, Bool, Int, Node, NodeInputError, Text, check_interrupted, folders, progress, show


class Canvas(Node):
    """A solid-colour image, built over `steps` steps with a preview at each."""
    category = "test"
    width: int = Int(32, min=1, max=512)
    height: int = Int(24, min=1, max=512)
    red: int = Int(255, min=0, max=255)
    steps: int = Int(3, min=1, max=50)
    noise: bool = Bool(False)  # previews of noise: large frames, for the slow-client test
    outputs = {"image": IMAGE}

    def run(self):
        size = (self.width, self.height)
        for i in range(1, self.steps + 1):
            shade = round(self.red * i / self.steps)
            preview = Image.effect_noise(size, 120).convert("RGB") if self.noise else Image.new("RGB", size, (shade, 0, 0))
            progress(i, self.steps, preview=preview)
        return Image.new("RGB", (self.width, self.height), (self.red, 0, 0))


class Hold(Node):
    """Passes the image on once `gate` opens; checks for interrupts while it waits."""
    category = "test"
    cacheable = False
    image: IMAGE
    outputs = {"image": IMAGE}
    gate: ClassVar[threading.Event] = threading.Event()

    def run(self):
        while not Hold.gate.wait(0.005):
            check_interrupted()
        return self.image


class SaveTestImage(Node):
    """Saves the image as a PNG in the outputs folder and shows it."""
    category = "test"
    output_node = True
    cacheable = False
    image: IMAGE
    prefix: str = Text("test")

    def run(self):
        folders.outputs.mkdir(parents=True, exist_ok=True)
        name = f"{self.prefix}_{uuid.uuid4().hex[:8]}.png"
        self.image.save(folders.outputs / name)
        show(images=[{"filename": name, "subfolder": "", "type": "output"}])


class Boom(Node):
    """Always fails, naming its input."""
    category = "test"
    output_node = True
    image: IMAGE

    def run(self):
        raise NodeInputError("image", "this node refuses every image")


SERVER_NODES = [Canvas, Hold, SaveTestImage, Boom]
