"""The public node API: everything a built-in node or a plugin imports comes from here.

    from graphflow.api import Node, Int, Float, Choice, IMAGE, progress
"""

from graphflow.context import (
    Interrupted,
    NodeInputError,
    check_interrupted,
    current_node_id,
    current_workflow,
    progress,
    run_limits,
    send_image,
    show,
    stop_after_this_node,
    warn,
    workflow_texts,
)
from graphflow.folders import folders, safe_join, subfolder_name
from graphflow.node import Bool, Choice, Float, Int, ListOf, Node, NodeDeclarationError, Text, closest_choices
from graphflow.resource_limits import Estimate, Size, check_run_memory, repeated, sampling_memory
from graphflow.types import (
    ANY,
    AUDIO,
    BOOLEAN,
    CLIP,
    CLIP_VISION,
    CLIP_VISION_OUTPUT,
    CONDITIONING,
    FLOAT,
    GUIDER,
    IMAGE,
    INT,
    LATENT,
    MASK,
    MODEL,
    MODEL_PATCH,
    NOISE,
    SAMPLER,
    SIGMAS,
    STRING,
    STYLE_MODEL,
    VAE,
    VIDEO,
    socket_type,
)
from graphflow.workflow import ComfyAlias

__all__ = [
    "Node", "Int", "Float", "Text", "Bool", "Choice", "ListOf", "NodeDeclarationError", "ComfyAlias",
    "socket_type", "MODEL", "CLIP", "VAE", "CONDITIONING", "LATENT", "IMAGE", "MASK",
    "INT", "FLOAT", "STRING", "BOOLEAN", "SIGMAS", "SAMPLER", "GUIDER", "NOISE",
    "CLIP_VISION", "CLIP_VISION_OUTPUT", "STYLE_MODEL", "MODEL_PATCH", "AUDIO", "VIDEO", "ANY",
    "progress", "check_interrupted", "show", "send_image", "warn", "current_workflow", "current_node_id", "workflow_texts", "Interrupted",
    "run_limits", "stop_after_this_node",
    "NodeInputError", "folders", "safe_join", "subfolder_name", "Estimate", "Size", "repeated", "sampling_memory",
    "check_run_memory", "closest_choices", "offload_idle_models", "free_memory",
]


def offload_idle_models() -> list[str]:
    """Move the models graphflow's memory manager holds on the GPU to CPU RAM, all but those in use
    (and what shares weights with them); the names of those moved. (Imported here when called:
    torch is not loaded by importing the API.)"""
    from graphflow import memory
    return memory.manager().offload_idle()


def free_memory() -> None:
    """Collect Python's garbage and empty the GPU's cache."""
    from graphflow import device
    device.free_memory()
