"""sipherxyz's comfyui-art-venture, round 3: its IP-Adapter nodes, under the pack's class names, inputs
(order, defaults, ranges), outputs and category. Read from the pack's modules/ip_adapter_nodes.py at
commit cf102d82f1b49e58e1e7abdc457fb0e20d65bede (the newest the code index holds: AV_IPAdapterPipe and
AV_IPAdapter on ComfyUI_IPAdapter_plus' IPAdapterModelLoader and IPAdapter, its simple apply node), and
its older versions for what is left out and for older saves: the one whose AV_IPAdapter takes
IPAdapter_plus v2's IPAdapter with noise and "style transfer (SDXL only)" (with AV_StyleApply), and
commit 07ed0fd4f1c827d71c07cf6c6413b819892184ad (IPAdapter_plus v1 era: AV_IPAdapterEncodeFromJson,
AV_IPAdapterApplyEncoded). ComfyUI_IPAdapter_plus' IPAdapterPlus.py read at b103c674 (v2) and 018d43bd (v1).

The pack drives ComfyUI_IPAdapter_plus' own nodes; here the same work is done by graphflow's rebuild of
that pack (nodes/ip_adapter.py): its adapter loader, the CLIP vision loader and apply_image_prompt, the
IPAdapter node's body. The pack's pipeline, {"ipadapter": {"model": ...}, "clipvision": {"model": ...}},
is what IPAdapterUnifiedLoader hands on, so it is graphflow's IPAdapterBundle: either pack's apply nodes
take it.

Nodes here: AV_IPAdapterPipe (load an IP-Adapter and a CLIP vision model as one pipeline), AV_IPAdapter
(load them, or take them from its optional inputs, and apply the image prompt; off, the model passes).

AV_IPAdapter's outputs are the ones the pack means, not the ones it gives with today's IPAdapter_plus:
it appends (pipeline, clip_vision) to what IPAdapter's apply_ipadapter returns, and since IPAdapter_plus
added face_image (b103c674 here) that is ipadapter_execute's (model, image), so ComfyUI, which maps outputs
by position, hands on (model, None, pipeline dict). Older IPAdapter_plus v2 returned (model,) and lined up.

Left out (graphflow/comfy_format.py ART_VENTURE_LEFT_OUT says why): AV_StyleApply and
AV_IPAdapterEncodeFromJson load the pictures their JSON names (web addresses, data: URLs, file:// paths,
ComfyUI /view references), as LoadImageFromUrl; AV_IPAdapterEncodeFromJson also makes IPAdapter_plus v1's
stacked (positive, negative) EMBEDS, and AV_IPAdapterApplyEncoded applies those, which nothing in graphflow
makes (its weight types original / linear / channel penalty are IPAdapterEmbeds' V only / K+V /
K+mean(V) w/ C penalty); both lived in a version of the module that loads only beside IPAdapter_plus v1.
"""

from __future__ import annotations

from graphflow.api import CLIP_VISION, IMAGE, MASK, MODEL, Bool, Choice, ComfyAlias, Float, Node, NodeInputError, folders
from nodes.clip_vision import load_clip_vision_file
from nodes.ip_adapter import IPADAPTER, SIMPLE_TO_ADVANCED, SIMPLE_WEIGHT_TYPES, _load_adapter, apply_image_prompt
from nodes.pack_nodes_art_venture_loaders import _optional_file

COMFY_PACK = "comfyui-art-venture"  # the custom node pack this module's ComfyUI classes come from

IP_ADAPTER = "Art Venture/IP Adapter"


def _file_state(kind: str, name: str) -> str:
    # a missing or unused ("None") file is the run's error to name, not the cache key's
    try:
        return folders.model_state(kind, name)
    except (FileNotFoundError, ValueError):
        return name


def _bundle(adapter, clip_vision, adapter_file: str, clip_vision_file: str):
    from graphflow.models.ip_adapter import IPAdapterBundle

    return IPAdapterBundle(adapter, clip_vision, adapter_file, clip_vision_file)


class AVIPAdapterPipe(Node):
    """Load an IP-Adapter from models/ipadapter/ and a CLIP vision model from models/clip_vision/ as
    one pipeline (what IPAdapterUnifiedLoader hands on): connect it to AV_IPAdapter's ip_adapter_opt
    or to an IPAdapter node's ipadapter. Choose the CLIP vision model the adapter was trained with.
    IPAdapterUnifiedLoader's ipadapter input takes it here too (the pack's pipeline lacks the file
    names that loader reads, so there it fails)."""
    category = IP_ADAPTER
    ip_adapter_name: str = Choice(lambda: folders.list_models("ipadapter"), model_folder="ipadapter")
    clip_name: str = Choice(lambda: folders.list_models("clip_vision"), model_folder="clip_vision")
    outputs = {"pipeline": IPADAPTER}
    comfy = ComfyAlias(("AV_IPAdapterPipe",))

    @classmethod
    def fingerprint(cls, ip_adapter_name, clip_name):
        return _file_state("ipadapter", ip_adapter_name), _file_state("clip_vision", clip_name)

    def run(self):
        adapter = _load_adapter(self.ip_adapter_name, "ip_adapter_name")
        return _bundle(adapter, load_clip_vision_file(self.clip_name, "clip_name"), self.ip_adapter_name,
                       self.clip_name)


STYLE_SDXL_ONLY = {"style transfer (SDXL only)": "style transfer"}  # IPAdapter_plus reads any "style..." so


def _av_ipadapter_widgets(values: list):
    """AV_IPAdapter's saved widgets in today's layout (name, clip, weight, start_at, end_at,
    weight_type, enabled). The IPAdapter_plus v2-era version saved 8, with noise after weight (taken
    and never passed on) and "style transfer (SDXL only)"; the v1-era one saved 7 with noise in
    place of weight_type and IPAdapter_plus v1's weighting, which is not rebuilt."""
    if len(values) == 8:
        name, clip, weight, noise, start_at, end_at, weight_type, enabled = values
        note = f"noise {noise} is dropped: this AV_IPAdapter version took it and never used it" if noise else None
        return [name, clip, weight, start_at, end_at, STYLE_SDXL_ONLY.get(weight_type, weight_type), enabled], note
    if len(values) == 7 and isinstance(values[5], (int, float)) and not isinstance(values[5], bool):
        raise ValueError("saved by the IPAdapter_plus v1-era AV_IPAdapter (noise, start_at, end_at, no weight_type), "
                         "whose image noise and weighting are not rebuilt: set its widgets again on a new node")
    return values


class AVIPAdapter(Node):
    """Prompt with an image (ComfyUI_IPAdapter_plus' IPAdapter node). The IP-Adapter is
    ip_adapter_opt's (AV_IPAdapterPipe, IPAdapterUnifiedLoader or IPAdapterModelLoader) when
    connected, else ip_adapter_name's file; the CLIP vision model is clip_vision_opt's, else the
    pipeline's, else clip_name's file. weight_type: "standard" (the same weight everywhere),
    "prompt is more important" (ease out) or "style transfer". Outputs the patched model and the
    pipeline and CLIP vision model used, for the next AV_IPAdapter; enabled off passes the model
    through (and no pipeline) without loading anything. These are the outputs the pack means: with
    ComfyUI_IPAdapter_plus since its face_image change the pack shifts them (pipeline carries None,
    clip_vision the pipeline dict), so a second AV_IPAdapter there falls back to its own files.
    Older saves read: the noise of the version with "style transfer (SDXL only)" is dropped (that
    version never used it); the v1-era one (noise, no weight_type) is refused. An API prompt may
    leave out start_at, end_at and weight_type (their defaults are used; the pack fails there)."""
    category = IP_ADAPTER
    ip_adapter_name: str = _optional_file("ipadapter")
    clip_name: str = _optional_file("clip_vision")
    model: MODEL
    image: IMAGE
    weight: float = Float(1.0, min=-1.0, max=3.0, step=0.05)
    ip_adapter_opt: IPADAPTER = None
    clip_vision_opt: CLIP_VISION = None
    attn_mask: MASK = None
    start_at: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_at: float = Float(1.0, min=0.0, max=1.0, step=0.001)
    weight_type: str = Choice(SIMPLE_WEIGHT_TYPES, "standard")
    enabled: bool = Bool(True)
    outputs = {"model": MODEL, "pipeline": IPADAPTER, "clip_vision": CLIP_VISION}
    comfy = ComfyAlias(("AV_IPAdapter",), optional=("ip_adapter_opt", "clip_vision_opt", "attn_mask", "start_at",
                                                    "end_at", "weight_type", "enabled"),
                       widgets=_av_ipadapter_widgets, values={"weight_type": STYLE_SDXL_ONLY}, ignore=("noise",))

    @classmethod
    def fingerprint(cls, ip_adapter_name, clip_name, **widgets):
        return _file_state("ipadapter", ip_adapter_name), _file_state("clip_vision", clip_name)

    def _adapter(self):
        """(the IP-Adapter, its file name or "", the input it came from)."""
        from graphflow.models.ip_adapter import IPAdapterBundle

        given = self.ip_adapter_opt
        if isinstance(given, IPAdapterBundle):
            return given.adapter, given.adapter_file, "ip_adapter_opt"
        if given is not None:  # an IPAdapterModelLoader's adapter; apply_image_prompt checks what it is
            return given, "", "ip_adapter_opt"
        if self.ip_adapter_name == "None":
            raise NodeInputError("ip_adapter_name", "choose an IP-Adapter file, or connect ip_adapter_opt")
        return _load_adapter(self.ip_adapter_name, "ip_adapter_name"), self.ip_adapter_name, "ip_adapter_name"

    def _clip_vision(self):
        """(the CLIP vision model, its file name or "", the input it came from): clip_vision_opt's,
        else the pipeline's, else clip_name's file."""
        from graphflow.models.ip_adapter import IPAdapterBundle

        if self.clip_vision_opt is not None:
            return self.clip_vision_opt, "", "clip_vision_opt"
        if isinstance(self.ip_adapter_opt, IPAdapterBundle):
            return self.ip_adapter_opt.clip_vision, self.ip_adapter_opt.clip_vision_file, "ip_adapter_opt"
        if self.clip_name == "None":
            raise NodeInputError("clip_name", "choose a CLIP vision file, or connect clip_vision_opt or a pipeline "
                                              "(AV_IPAdapterPipe) to ip_adapter_opt")
        return load_clip_vision_file(self.clip_name, "clip_name"), self.clip_name, "clip_name"

    def run(self):
        if not self.enabled:
            return self.model, None, None
        adapter, adapter_file, adapter_input = self._adapter()
        clip_vision, clip_vision_file, clip_vision_input = self._clip_vision()
        try:
            model = apply_image_prompt(self.model, adapter, clip_vision, self.image, self.weight, self.start_at,
                                       self.end_at, weight_type=SIMPLE_TO_ADVANCED[self.weight_type],
                                       attn_mask=self.attn_mask)
        except NodeInputError as e:
            # the shared body names IPAdapter's inputs
            renamed = {"ipadapter": adapter_input, "clip_vision": clip_vision_input}
            if e.input in renamed:
                raise NodeInputError(renamed[e.input], str(e)) from None
            raise
        return model, _bundle(adapter, clip_vision, adapter_file, clip_vision_file), clip_vision
