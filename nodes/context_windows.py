"""Context windows: a MODEL that predicts long latents in overlapping windows of one dim (frames),
fused per position (graphflow.sampling.context_windows), as ComfyUI's ContextWindowsManual and
WanContextWindowsManual."""

from __future__ import annotations

from graphflow.api import MODEL, Bool, Choice, ComfyAlias, Int, Node, NodeInputError
from graphflow.choices import CONTEXT_FUSE_METHODS as FUSE_METHODS
from graphflow.choices import CONTEXT_SCHEDULES as SCHEDULES

LENGTH = "the length of each window, in positions of the windowed dim"
OVERLAP = "positions adjacent windows share (blended by the fuse method); below the length"
SCHEDULE = ("standard_static: fixed windows from the start, the last moved back to end at the end; "
            "standard_uniform / looped_uniform: windows whose start moves every step (looped wraps around the "
            "end); batched: consecutive windows without overlap")
STRIDE = "uniform schedules: also windows of every 2nd, 4th, ... position, up to this many spacings"
CLOSED_LOOP = "looped_uniform: also windows across the end back to the start, for a looping video"
FUSE = ("how the windows' predictions are averaged per position: pyramid (weight rising to the window's middle), "
        "relative (likewise, by distance to the middle), flat (equal), overlap-linear (ramps over the overlap only)")


def _patched(model, length: int, overlap: int, schedule: str, stride: int, closed_loop: bool, fuse: str, dim: int,
             node: str, overlap_input: str = "context_overlap"):
    from graphflow.sampling.context_windows import ContextWindows, with_context_windows

    if not hasattr(model, "unet") or not hasattr(model, "latent_format"):
        raise NodeInputError("model", f"{node} needs a diffusion MODEL (from a checkpoint or UNETLoader)")
    if schedule != "batched" and overlap >= length:
        raise NodeInputError(overlap_input, f"{node}: the overlap ({overlap}) must be smaller than the context length "
                                            f"({length}){' in latent frames' if node.startswith('Wan') else ''}")
    return with_context_windows(model, ContextWindows(length, overlap, schedule, stride, closed_loop, fuse, dim))


class ContextWindowsManual(Node):
    """Context windows: while sampling, a latent longer than context_length along `dim` is predicted
    in overlapping windows of that dim, each the length the model handles well, and the windows'
    predictions are averaged per position (weighted by fuse_method); shorter latents sample as
    usual. This lets a video model make longer videos than it was trained for: dim 2 is time for
    LTX-Video's latents [B, C, frames, h, w], dim 0 the frames of SVD (its batch). Conditioning with
    a value per position (SVD's image channels and embeddings per frame, LTX-Video's noise mask) is
    cut with the window; ControlNet hints, GLIGEN boxes and hooks are not. dim 1 (channels) can't
    be windowed. Each window is one more model call per step."""
    category = "context"
    model: MODEL
    context_length: int = Int(16, min=1, description=LENGTH)
    context_overlap: int = Int(4, min=0, description=OVERLAP)
    context_schedule: str = Choice(SCHEDULES, "standard_static", description=SCHEDULE)
    context_stride: int = Int(1, min=1, description=STRIDE)
    closed_loop: bool = Bool(False, description=CLOSED_LOOP)
    fuse_method: str = Choice(FUSE_METHODS, "pyramid", description=FUSE)
    dim: int = Int(0, min=0, max=5, description="the latent dim to window: 0 batch (SVD's frames), 2 LTX-Video's "
                                                "frames")
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("ContextWindowsManual",))

    def run(self):
        if self.dim == 1:
            raise NodeInputError("dim", "dim 1 is the latent's channels, which the model needs all of; window the "
                                        "frames (dim 2 for LTX-Video, dim 0 for SVD)")
        return _patched(self.model, self.context_length, self.context_overlap, self.context_schedule,
                        self.context_stride, self.closed_loop, self.fuse_method, self.dim, "ContextWindowsManual")


class WanContextWindowsManual(Node):
    """Context windows over a video latent's frames (dim 2), with the window's length and overlap
    given in video frames and turned into latent frames by Wan's 4:1 temporal compression, as
    ComfyUI's node: (context_length - 1) // 4 + 1 latent frames (81 -> 21) and
    (context_overlap - 1) // 4 + 1 overlapping ones (30 -> 8; 0 stays 0). Otherwise as
    ContextWindowsManual. For a model with another compression (LTX-Video's is 8:1) use
    ContextWindowsManual with dim 2 and lengths in latent frames."""
    category = "context"
    model: MODEL
    context_length: int = Int(81, min=1, max=16384, step=4, description="the length of each window, in video frames")
    context_overlap: int = Int(30, min=0, description="video frames adjacent windows share")
    context_schedule: str = Choice(SCHEDULES, "standard_static", description=SCHEDULE)
    context_stride: int = Int(1, min=1, description=STRIDE)
    closed_loop: bool = Bool(False, description=CLOSED_LOOP)
    fuse_method: str = Choice(FUSE_METHODS, "pyramid", description=FUSE)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("WanContextWindowsManual",))

    def run(self):
        if not getattr(self.model, "is_video", False):
            raise NodeInputError("model", "WanContextWindowsManual windows the frames (dim 2) of video latents "
                                          "[B, C, frames, h, w]; this model samples images (for SVD's frames use "
                                          "ContextWindowsManual with dim 0)")
        length = max((self.context_length - 1) // 4 + 1, 1)
        overlap = max((self.context_overlap - 1) // 4 + 1, 0)
        return _patched(self.model, length, overlap, self.context_schedule, self.context_stride, self.closed_loop,
                        self.fuse_method, 2, "WanContextWindowsManual")
