"""Socket types: the named kinds of value that flow along links.

A socket type is declared once with `socket_type(name)`, which returns an annotation
to use on node inputs (`image: IMAGE`) and in `outputs = {"image": IMAGE}`.
Plugins declare their own the same way.
"""

from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin


@dataclass(frozen=True)
class SocketType:
    name: str
    color: str = "#9e9e9e"
    description: str = ""


class Socket:
    """Annotation marker: this input or output is a link carrying `type`."""

    __slots__ = ("type",)

    def __init__(self, type: SocketType):
        self.type = type

    def __repr__(self):
        return f"Socket({self.type.name})"


SOCKET_TYPES: dict[str, SocketType] = {}


def socket_type(name: str, color: str = "#9e9e9e", description: str = ""):
    """Declare (or look up) the socket type `name` and return its annotation.

    Declaring the same name twice with the same colour is harmless (two plugins may
    share a type); a different colour for an existing name keeps the first one.
    """
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"socket type name {name!r} must be letters, digits, '_' or '-'")
    existing = SOCKET_TYPES.get(name)
    declared = existing or SocketType(name, color, description)
    SOCKET_TYPES.setdefault(name, declared)
    return Annotated[Any, Socket(declared)]


def socket_of(annotation) -> SocketType | None:
    """The socket type an annotation declares, or None for a plain widget type."""
    if isinstance(annotation, str):  # outputs may name a type by its string
        return SOCKET_TYPES.get(annotation) or SOCKET_TYPES.setdefault(annotation, SocketType(annotation))
    if get_origin(annotation) is Annotated:
        for meta in get_args(annotation)[1:]:
            if isinstance(meta, Socket):
                return meta.type
    return None


MODEL = socket_type("MODEL", "#b39ddb", "A diffusion model (UNet) with its sampling configuration")
CLIP = socket_type("CLIP", "#ffd54f", "A text encoder with its tokenizer")
VAE = socket_type("VAE", "#ef5350", "A variational autoencoder between pixels and latents")
CONDITIONING = socket_type("CONDITIONING", "#ffa931", "Text embeddings and their options")
LATENT = socket_type("LATENT", "#ff9cf9", "A latent image batch (dict with 'samples')")
IMAGE = socket_type("IMAGE", "#64b5f6", "Image batch, float [B, H, W, C] in 0..1")
MASK = socket_type("MASK", "#81c784", "Mask batch, float [B, H, W] in 0..1")
SIGMAS = socket_type("SIGMAS", "#cddc39", "A noise schedule: 1-D float tensor of decreasing sigmas")
SAMPLER = socket_type("SAMPLER", "#ec407a", "A sampling algorithm chosen by name, with its options")
GUIDER = socket_type("GUIDER", "#66bb6a", "A model with its conditioning and how predictions combine (CFG)")
NOISE = socket_type("NOISE", "#bdbdbd", "Seeded starting noise for a sampler, or none")
CLIP_VISION = socket_type("CLIP_VISION", "#a8dadc", "A CLIP (or SigLIP) image encoder")
CLIP_VISION_OUTPUT = socket_type("CLIP_VISION_OUTPUT", "#ad7452", "An image's CLIP embeddings and hidden states")
STYLE_MODEL = socket_type("STYLE_MODEL", "#c2ffae", "A style model (FLUX Redux) turning image tokens into text tokens")
MODEL_PATCH = socket_type("MODEL_PATCH", "#9575cd", "A small network a MODEL patch node adds to a diffusion model "
                                                    "(USO's SigLIP style projector)")
AUDIO = socket_type("AUDIO", "#ea80fc", "Sound: dict with 'waveform' (float [B, channels, samples]) and 'sample_rate'")
VIDEO = socket_type("VIDEO", "#a1c4fd", "A video: its frames (an IMAGE batch), frame rate and optional AUDIO")

# Primitive sockets: a widget input also accepts a link carrying its own kind of value.
INT = socket_type("INT", "#29b6f6", "An integer")
FLOAT = socket_type("FLOAT", "#26a69a", "A real number")
STRING = socket_type("STRING", "#a1887f", "Text")
BOOLEAN = socket_type("BOOLEAN", "#7986cb", "True or false")

# Any kind of value (PreviewAny's input): validation lets links of every type into it.
ANY = Annotated[Any, Socket(SOCKET_TYPES.setdefault("*", SocketType("*", "#9e9e9e", "Any kind of value")))]
