"""comfyui-art-venture round 4 (nodes/pack_nodes_art_venture4.py): AV_ControlNetPreprocessor's maps
against comfyui_controlnet_aux's pipeline rebuilt in tests/test_pack_nodes_controlnet_aux*.py (canny,
color, Depth Anything V2 on a tiny random-weight file), the ControlNet file it names by the pack's
detect_controlnet rules (713f6de7: sdxl skips t2i and lllite files), the override, the refusal of
names whose models graphflow lacks, and an API-format prompt through the executor, run twice."""

import pytest
import torch

from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.models.depth_anything import load_depth_anything
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from tests.test_pack_nodes_controlnet_aux import call, pack_canny, pack_color, picture, to_image, to_uint8, \
    write_picture
from tests.test_pack_nodes_controlnet_aux_depth import annotators, hf_model, pack_v1, pack_v2, weights  # noqa: F401

# _preprocessors_map's names, in the pack's order (modules/controlnet/preprocessor.py at 746c1cef)
PACK_NAMES = ["canny", "canny_pyra", "lineart", "lineart_anime", "lineart_manga", "lineart_any", "scribble",
              "scribble_xdog", "scribble_pidi", "scribble_hed", "hed", "pidi", "mlsd", "pose", "openpose", "dwpose",
              "pose_dense", "pose_animal", "normalmap_bae", "normalmap_dsine", "normalmap_midas", "depth",
              "depth_anything", "depth_anything_v2", "depth_anything_zoe", "depth_zoe", "depth_midas", "depth_leres",
              "depth_metric3d", "depth_meshgraphormer", "seg_ofcoco", "seg_ofade20k", "seg_ufade20k",
              "seg_animeface", "shuffle", "teed", "color", "sam", "tile"]


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def test_inputs_outputs_and_choices_are_the_packs(registry):
    from graphflow.comfy_format import ART_VENTURE_LEFT_OUT, custom_pack

    cls = registry.comfy_node("AV_ControlNetPreprocessor")
    specs = cls.input_specs
    assert list(specs) == ["image", "preprocessor", "sd_version", "resolution", "preprocessor_override"]
    assert list(specs["preprocessor"].widget.options) == ["None", *PACK_NAMES]
    assert list(specs["sd_version"].widget.options) == ["sd15", "sdxl"]
    assert (specs["resolution"].default, specs["preprocessor_override"].default) == (512, "None")
    assert [o.name for o in cls.output_specs] == ["IMAGE", "CNET_NAME"]
    assert cls.category == "Art Venture/Loaders" and cls.display_name == "ControlNet Preprocessor"
    assert custom_pack("AV_ControlNetPreprocessor") == "comfyui-art-venture"
    assert "AV_ControlNetPreprocessor" not in ART_VENTURE_LEFT_OUT


def test_model_free_maps_are_comfyui_controlnet_aux_s(registry, tmp_folders):
    image = picture(90, 120, seed=1)
    canny, name = call(registry, "AV_ControlNetPreprocessor", image=image, preprocessor="canny", resolution=128)
    assert torch.equal(canny, to_image(pack_canny(to_uint8(image), 100, 200, 128))) and name == "None"
    color, _ = call(registry, "AV_ControlNetPreprocessor", image=image, preprocessor="color", resolution=256)
    assert torch.equal(color, to_image(pack_color(to_uint8(image), 256)))
    same, _ = call(registry, "AV_ControlNetPreprocessor", image=image)
    assert same is image  # "None"


def test_depth_runs_depth_anything_v2_on_the_users_file(registry, annotators, weights):  # noqa: F811
    image = picture(56, 70, seed=2)
    expected = to_image(pack_v2(load_depth_anything(weights["v2"], version=2), to_uint8(image), 64))
    for name in ("depth", "depth_anything_v2"):
        out, _ = call(registry, "AV_ControlNetPreprocessor", image=image, preprocessor=name, resolution=64)
        assert torch.equal(out, expected), name


def test_depth_anything_runs_depth_anything_v1_on_the_users_file(registry, annotators, weights):  # noqa: F811
    """AIO's DepthAnythingPreprocessor with its default ckpt_name (vitl14), here a safetensors conversion."""
    (annotators.models / "annotators" / "depth_anything_vitl14.safetensors").write_bytes(weights["v1"].read_bytes())
    image = picture(56, 70, seed=2)
    out, name = call(registry, "AV_ControlNetPreprocessor", image=image, preprocessor="depth_anything", resolution=64)
    assert torch.equal(out, to_image(pack_v1(hf_model(weights["v1"], version=1), to_uint8(image), 64)))
    assert name == "None"  # no rule takes depth_anything


def test_names_needing_other_models_are_refused(registry, tmp_folders):
    with pytest.raises(NodeInputError) as caught:
        call(registry, "AV_ControlNetPreprocessor", image=picture(32, 32), preprocessor="hed")
    message = str(caught.value)
    assert caught.value.input == "preprocessor" and "'hed'" in message and "HEDPreprocessor" in message
    assert "canny" in message and "depth_anything" in message  # what runs instead
    with pytest.raises(NodeInputError) as caught:
        call(registry, "AV_ControlNetPreprocessor", image=picture(32, 32), preprocessor_override="dwpose")
    assert caught.value.input == "preprocessor_override" and "DWPreprocessor" in str(caught.value)


def test_the_override_replaces_the_choice_when_it_is_a_name(registry, tmp_folders):
    image = picture(64, 64, seed=3)
    overridden, _ = call(registry, "AV_ControlNetPreprocessor", image=image, preprocessor="color",
                         preprocessor_override="canny", resolution=64)
    assert torch.equal(overridden, to_image(pack_canny(to_uint8(image), 100, 200, 64)))
    kept, _ = call(registry, "AV_ControlNetPreprocessor", image=image, preprocessor="color",
                   preprocessor_override="no such", resolution=64)
    assert torch.equal(kept, to_image(pack_color(to_uint8(image), 64)))


@pytest.fixture
def controlnets(tmp_folders):
    folder = tmp_folders.models / "controlnet"
    folder.mkdir()
    for name in ("control_v11p_sd15_canny.pth", "control_v11f1p_sd15_depth.pth", "control_v11p_sd15_scribble.pth",
                 "t2i-adapter_sdxl_canny.safetensors", "controllllite_sdxl_depth.safetensors",
                 "sdxl_depth_diffusers.safetensors"):
        (folder / name).write_bytes(b"")
    return folder


@pytest.mark.parametrize("preprocessor, version, expected", [
    ("canny", "sd15", "control_v11p_sd15_canny.pth"),
    ("depth", "sd15", "control_v11f1p_sd15_depth.pth"),
    ("depth", "sdxl", "sdxl_depth_diffusers.safetensors"),  # not the lllite file before it
    ("canny", "sdxl", "None"),  # the only sdxl canny file is a t2i adapter
    ("depth_anything", "sd15", "None"),  # no rule takes it
    ("scribble", "sd15", "None"),  # two rules share one pass: the second finds no scribble file after the first's
    ("None", "sd15", "None"),
])
def test_cnet_name_follows_the_packs_rules(registry, controlnets, preprocessor, version, expected):
    from nodes.pack_nodes_art_venture2 import _detected
    assert _detected(preprocessor, version) == expected
    if preprocessor in ("None", "canny", "scribble"):  # model-free: through the node too
        _, got = call(registry, "AV_ControlNetPreprocessor", image=picture(64, 64), preprocessor=preprocessor,
                      sd_version=version, resolution=64)
        assert got == expected


def test_api_prompt_runs_and_sees_a_new_controlnet_file(registry, controlnets, annotators):  # noqa: F811
    image = picture(48, 64, seed=4)
    write_picture(annotators, "in.png", image)
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
              "2": {"class_type": "AV_ControlNetPreprocessor", "inputs": {
                  "image": ["1", 0], "preprocessor": "canny", "sd_version": "sdxl", "resolution": 64,
                  "preprocessor_override": "None"}}}
    executor = Executor(registry)
    first = executor.run(parse_workflow(prompt, registry), outputs=["2"])
    assert first.ok, (first.problems, first.error)
    assert torch.equal(first.values["2"][0], to_image(pack_canny(to_uint8(image), 100, 200, 64)))
    assert first.values["2"][1] == "None"
    (controlnets / "diffusers_xl_canny_sdxl.safetensors").write_bytes(b"")
    second = executor.run(parse_workflow(prompt, registry), outputs=["2"])
    assert second.ok and second.values["2"][1] == "diffusers_xl_canny_sdxl.safetensors"
