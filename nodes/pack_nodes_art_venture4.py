"""sipherxyz's comfyui-art-venture, round 4: AV_ControlNetPreprocessor ("ControlNet Preprocessor"), under
the pack's class name, inputs (order, defaults, ranges), outputs and category. Read from the pack's
modules/controlnet/__init__.py at commit 713f6de76130f2e0101a2f46597a233113f6c23e (the node and its
detect_controlnet) and modules/controlnet/preprocessor.py at 746c1cefbd082bc2ee5f92bc17043af55b81e1a6
(_preprocessors_map and apply_preprocessor).

The pack's node runs comfyui_controlnet_aux's AIO_Preprocessor with the class its _preprocessors_map
gives the chosen name (canny: CannyEdgePreprocessor, depth: DepthAnythingV2Preprocessor, ...) and
`resolution`, and names the ControlNet file that suits the preprocessor. Here it runs graphflow's
AIO_Preprocessor (nodes/pack_nodes_controlnet_aux.py) the same way, so the model-free preprocessors and
Depth Anything (on the weight files the user brings, see nodes/pack_nodes_controlnet_aux_depth.py) run;
a name whose class needs other downloaded models (hed, dwpose, ...) is refused, naming it and its class.
The pack offers each name whose class its comfyui_controlnet_aux install has: all of them here (a saved
choice always reads), as with comfyui_controlnet_aux installed whole.

The older versions of this module (round 2's ControlNet loaders, nodes/pack_nodes_art_venture2.py, follow
10ff95d0) called the preprocessor nodes directly; their AV_ControlNetPreprocessor is not followed.
"""

from __future__ import annotations

from graphflow.api import IMAGE, STRING, Choice, ComfyAlias, Int, Node, NodeInputError, Text, warn
from nodes.pack_nodes_art_venture2 import LOADERS, _detected
from nodes.pack_nodes_controlnet_aux import AIOPreprocessor, aio_estimate, aio_nodes

COMFY_PACK = "comfyui-art-venture"  # the custom node pack this module's ComfyUI classes come from

# _preprocessors_map, in the pack's order: its name -> comfyui_controlnet_aux's class
PREPROCESSOR_CLASSES = {
    "canny": "CannyEdgePreprocessor", "canny_pyra": "PyraCannyPreprocessor", "lineart": "LineArtPreprocessor",
    "lineart_anime": "AnimeLineArtPreprocessor", "lineart_manga": "Manga2Anime_LineArt_Preprocessor",
    "lineart_any": "AnyLineArtPreprocessor_aux", "scribble": "ScribblePreprocessor",
    "scribble_xdog": "Scribble_XDoG_Preprocessor", "scribble_pidi": "Scribble_PiDiNet_Preprocessor",
    "scribble_hed": "FakeScribblePreprocessor", "hed": "HEDPreprocessor", "pidi": "PiDiNetPreprocessor",
    "mlsd": "M-LSDPreprocessor", "pose": "DWPreprocessor", "openpose": "OpenposePreprocessor",
    "dwpose": "DWPreprocessor", "pose_dense": "DensePosePreprocessor", "pose_animal": "AnimalPosePreprocessor",
    "normalmap_bae": "BAE-NormalMapPreprocessor", "normalmap_dsine": "DSINE-NormalMapPreprocessor",
    "normalmap_midas": "MiDaS-NormalMapPreprocessor", "depth": "DepthAnythingV2Preprocessor",
    "depth_anything": "DepthAnythingPreprocessor", "depth_anything_v2": "DepthAnythingV2Preprocessor",
    "depth_anything_zoe": "Zoe_DepthAnythingPreprocessor", "depth_zoe": "Zoe-DepthMapPreprocessor",
    "depth_midas": "MiDaS-DepthMapPreprocessor", "depth_leres": "LeReS-DepthMapPreprocessor",
    "depth_metric3d": "Metric3D-DepthMapPreprocessor", "depth_meshgraphormer": "MeshGraphormer-DepthMapPreprocessor",
    "seg_ofcoco": "OneFormer-COCO-SemSegPreprocessor", "seg_ofade20k": "OneFormer-ADE20K-SemSegPreprocessor",
    "seg_ufade20k": "UniFormer-SemSegPreprocessor", "seg_animeface": "AnimeFace_SemSegPreprocessor",
    "shuffle": "ShufflePreprocessor", "teed": "TEEDPreprocessor", "color": "ColorPreprocessor",
    "sam": "SAMPreprocessor", "tile": "TilePreprocessor",
}


def chosen(preprocessor, override) -> tuple[str, str]:
    """(the preprocessor that runs, the input naming it): the override where it is one of the pack's names."""
    if override != "None" and override in PREPROCESSOR_CLASSES:
        return override, "preprocessor_override"
    return preprocessor, "preprocessor"


def av_estimate(widgets, inputs):
    preprocessor, _ = chosen(widgets.get("preprocessor"), widgets.get("preprocessor_override", "None"))
    if widgets.get("preprocessor_override", "None") is None:  # a linked override: any may run
        preprocessor = None
    aio = "none" if preprocessor == "None" else PREPROCESSOR_CLASSES.get(preprocessor)
    return aio_estimate({"preprocessor": aio, "resolution": widgets.get("resolution")}, inputs)


class AVControlNetPreprocessor(Node):
    """Preprocess a ControlNet hint by name, as comfyui-art-venture's ControlNet Preprocessor: the
    name's comfyui_controlnet_aux preprocessor (canny: Canny Edge, depth: Depth Anything V2, ...) run
    as AIO Aux Preprocessor runs it at `resolution`; "None" gives the image back.
    preprocessor_override, where it is one of the names, is used instead (else a warning, and
    `preprocessor` runs). Runs here: canny, canny_pyra, scribble, scribble_xdog, shuffle, color, tile
    and the Depth Anything ones (depth, depth_anything, depth_anything_v2: bring the weights file to
    models/annotators/); the others need models graphflow does not have and are refused by name.
    CNET_NAME: the first file of models/controlnet/ naming sd_version (for sdxl, not t2i or lllite
    files) and the preprocessor's kind, by the pack's rules (canny: "canny", depth: "depth",
    hed: "softedge", ...; scribble: the second scribble file, as the pack's shared pass over the
    files gives), else "None"."""
    display_name = "ControlNet Preprocessor"
    category = LOADERS
    image: IMAGE
    preprocessor: str = Choice(("None", *PREPROCESSOR_CLASSES), "None")
    sd_version: str = Choice(("sd15", "sdxl"), "sd15")
    resolution: int = Int(512, min=64, max=2048, step=64)
    preprocessor_override: str = Text("None")
    outputs = {"IMAGE": IMAGE, "CNET_NAME": STRING}
    comfy = ComfyAlias(("AV_ControlNetPreprocessor",), optional=("resolution", "preprocessor_override"))
    estimate = classmethod(lambda cls, widgets, inputs: av_estimate(widgets, inputs))

    @classmethod
    def fingerprint(cls, preprocessor=None, sd_version=None, preprocessor_override="None", **widgets):
        # the ControlNet folder's files pick CNET_NAME; a depth preprocessor's weights file its map
        name, _ = chosen(preprocessor, preprocessor_override)
        return (_detected(name, sd_version),
                AIOPreprocessor.fingerprint(preprocessor=PREPROCESSOR_CLASSES.get(name)))

    def run(self):
        from nodes.pack_nodes import _core

        name, input_name = chosen(self.preprocessor, self.preprocessor_override)
        if self.preprocessor_override != "None" and input_name != "preprocessor_override":
            warn(f"preprocessor_override {self.preprocessor_override!r} is not one of the pack's preprocessors: "
                 f"{self.preprocessor!r} runs instead")
        image = self.image
        if name != "None":
            aio = PREPROCESSOR_CLASSES.get(name)
            if aio not in aio_nodes():
                runnable = ", ".join(n for n, c in PREPROCESSOR_CLASSES.items() if c in aio_nodes())
                raise NodeInputError(input_name, f"{name!r} (comfyui_controlnet_aux's {aio}) needs model weights "
                                                 f"graphflow does not have; expected None or one of: {runnable}")
            image = _core(AIOPreprocessor, {"preprocessor": input_name}, image=image, preprocessor=aio,
                          resolution=self.resolution)
        return image, _detected(name, self.sd_version)
