"""ComfyUI-Image-Saver's nodes (nodes/pack_nodes_image_saver.py): Image Saver run on the demo model from
an API prompt and a UI-format save with the pack's class names, the written files' metadata read
back with Pillow (PNG text chunks, JPEG / WebP EXIF UserComment) and parsed with our A1111 reader;
the hashes checked against hashlib's SHA-256 of the files; filename placeholders, the pack's
unique names, path escapes refused, additional_hashes, easy_remix; the literals and selectors;
export_ui / export_api round trips."""

import hashlib
import json
import re
import shutil

import pytest
import torch
from PIL import Image

from graphflow.comfy_format import custom_pack, export_api, export_ui
from graphflow.executor import Executor
from graphflow.folders import BUNDLED
from graphflow.picture_metadata import parse_a1111, picture_text
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_image_saver import civitai_sampler_name, expand_pattern, manual_hash, sanitize
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

DEMO = "graphflow-demo.safetensors"
LORA = "graphflow-demo-corner.safetensors"


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def sha10(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


def demo_prompt(saver_inputs: dict) -> dict:
    """Checkpoint Loader with Name -> prompts -> KSampler (2 steps, 64x64) -> VAEDecode -> Image Saver."""
    return {
        "1": {"class_type": "Checkpoint Loader with Name (Image Saver)", "inputs": {"ckpt_name": DEMO}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a red circle"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "blurry"}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "Seed Generator (Image Saver)", "inputs": {"seed": 1234}},
        "6": {"class_type": "Sampler Selector (Image Saver)", "inputs": {"sampler_name": "euler_ancestral"}},
        "7": {"class_type": "Scheduler Selector (Comfy) (Image Saver)", "inputs": {"scheduler": "karras"}},
        "8": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
                                                   "latent_image": ["4", 0], "seed": ["5", 0], "steps": 2, "cfg": 7.0,
                                                   "sampler_name": ["6", 0], "scheduler": ["7", 0], "denoise": 1.0}},
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}},
        "10": {"class_type": "Image Saver", "inputs": {
            "images": ["9", 0], "filename": "%basemodelname_%seed_%sampler_name", "path": "saver/%date",
            "extension": "png", "steps": 2, "cfg": 7.0, "modelname": ["1", 3], "sampler_name": ["6", 1],
            "scheduler_name": ["7", 1], "positive": "a red circle <lora:graphflow-demo-corner:0.8>",
            "negative": "blurry", "seed_value": ["5", 0], "width": 64, "height": 64, "lossless_webp": True,
            "quality_jpeg_or_webp": 100, "optimize_png": False, "counter": 0, "denoise": 1.0, "clip_skip": -2,
            "time_format": "%Y-%m-%d-%H%M%S", "save_workflow_as_json": True, "embed_workflow": True,
            "additional_hashes": "MyLoRA:ABCDEF0123", "download_civitai_data": False, "easy_remix": True,
            "show_preview": True, **saver_inputs}},
    }


def saved_files(outputs, pattern="*"):
    return sorted(p for p in outputs.rglob(pattern) if p.is_file())


def test_api_prompt_on_the_demo_model_writes_the_packs_parameters(registry, tmp_folders):
    result = run_graph(registry, demo_prompt({}))
    (png,) = saved_files(tmp_folders.outputs, "*.png")
    assert png.name == "graphflow-demo_1234_euler_ancestral.png"
    assert re.fullmatch(r"saver/\d{4}-\d\d-\d\d", png.parent.relative_to(tmp_folders.outputs).as_posix())
    model_hash, lora_hash = sha10(BUNDLED / "checkpoints" / DEMO), sha10(BUNDLED / "loras" / LORA)
    text = Image.open(png).text["parameters"]
    # the pack's text: the LoRA tag stripped (easy_remix), the model's hash in Model hash and in
    # Hashes (as "model", after the prompt's LoRA and the manual hash as typed)
    hashes = {"LORA:graphflow-demo-corner": lora_hash, "MyLoRA": "ABCDEF0123", "model": model_hash}
    assert text == ("a red circle\nNegative prompt: blurry\nSteps: 2, Sampler: Euler a Karras, CFG scale: 7.0, "
                    f"Seed: 1234, Size: 64x64, Clip skip: 2, Model hash: {model_hash}, Model: graphflow-demo, "
                    f"Hashes: {json.dumps(hashes, separators=(',', ':'))}, Version: ComfyUI")
    settings = parse_a1111(text)
    assert (settings["seed"], settings["steps"], settings["sampler"], settings["size"]) == (
        "1234", "2", "Euler a Karras", "64x64")
    assert settings["model hash"] == model_hash and settings["prompt"] == "a red circle"
    # the picture itself is the decoded image, cast as the pack casts (255 x value, clipped, truncated)
    decoded = result.values["9"][0][0]
    want = torch.clamp(decoded * 255.0, 0, 255).to(torch.uint8).numpy()
    assert (torch.from_numpy(want) == torch.from_numpy(__import__("numpy").array(Image.open(png)))).all()
    # the workflow embedded (ComfyUI's prompt chunk) and written beside as JSON
    chunks = picture_text(png.read_bytes())
    assert json.loads(chunks["prompt"])["10"]["class_type"] == "Image Saver"
    assert png.with_suffix(".json").is_file()
    # outputs: the hashes to chain (name:hash, no weights with download_civitai_data off) and the text
    hashes_out, parameters = result.values["10"]
    assert hashes_out == f"graphflow-demo:{model_hash},graphflow-demo-corner:{lora_hash},MyLoRA:ABCDEF0123"
    assert parameters == text


def test_civitai_on_writes_what_the_pack_writes_offline_and_weights_in_the_hashes(registry, tmp_folders):
    result = run_graph(registry, demo_prompt({"download_civitai_data": True, "easy_remix": False,
                                              "additional_hashes": "MyLoRA:ABCDEF0123:0.5",
                                              "extension": "webp", "clip_skip": 0}))
    (webp,) = saved_files(tmp_folders.outputs, "*.webp")
    model_hash, lora_hash = sha10(BUNDLED / "checkpoints" / DEMO), sha10(BUNDLED / "loras" / LORA)
    comment = Image.open(webp).getexif().get_ifd(0x8769)[0x9286]
    assert comment[:8] == b"UNICODE\x00"
    text = comment[8:].decode("utf-16-be")
    hashes = {"LORA:graphflow-demo-corner": lora_hash.upper(), "MyLoRA": "ABCDEF0123"}
    assert text == ("a red circle <lora:graphflow-demo-corner:0.8>\nNegative prompt: blurry\nSteps: 2, "
                    f"Sampler: Euler a Karras, CFG scale: 7.0, Seed: 1234, Size: 64x64, Model hash: "
                    f"{model_hash.upper()}, Model: graphflow-demo, "
                    f"Hashes: {json.dumps(hashes, separators=(',', ':'))}, "
                    "Version: ComfyUI")
    assert parse_a1111(picture_text(webp.read_bytes())["parameters"])["seed"] == "1234"
    assert result.values["10"][0] == (f"graphflow-demo:{model_hash},graphflow-demo-corner:{lora_hash}:0.8,"
                                      "MyLoRA:ABCDEF0123:0.5")


def test_jpeg_keeps_the_parameters_in_exif_user_comment(registry, tmp_folders):
    image = torch.rand(2, 16, 24, 3)
    for _ in range(2):  # the second run's names follow the pack's _NN numbering
        call(registry, "ImageSaver", images=image, filename="pic", extension="jpg", seed_value=7, steps=3,
             sampler_name="dpmpp_2m_sde_gpu", scheduler="exponential", modelname="missing.safetensors",
             download_civitai_data=False, positive="p", negative="n")
    names = [p.name for p in saved_files(tmp_folders.outputs)]
    assert names == ["pic.jpg", "pic_01.jpg", "pic_02.jpg", "pic_03.jpg"]
    text = picture_text((tmp_folders.outputs / "pic.jpg").read_bytes())["parameters"]
    # a model not found: its hash empty, so no Model hash, and an empty "model" in Hashes
    assert text == ('p\nNegative prompt: n\nSteps: 3, Sampler: DPM++ 2M SDE Exponential, CFG scale: 7.0, Seed: 7, '
                    'Size: 512x512, Model: missing, Hashes: {"model":""}, Version: ComfyUI')
    assert Image.open(tmp_folders.outputs / "pic.jpg").size == (24, 16)


def test_ui_format_save_reads_the_widgets_by_position_and_round_trips(registry, tmp_folders):
    saver_widgets = ["%seed-%steps-%cfg-%scheduler-%width", "out", "png", 5, 6.5, DEMO, "euler", "normal",
                     "pos", "neg", 99, 32, 48, True, 90, False, 3, 0.75, 0, "%Y", False, False, "", False, False,
                     True]
    nodes = [
        ui_node(1, "EmptyImage", [32, 48, 1, 0], outputs=[("IMAGE", "IMAGE", [1])]),
        ui_node(2, "Seed Generator (Image Saver)", [90, "fixed", 9], outputs=[("INT", "INT", [2])]),
        ui_node(3, "Image Saver", saver_widgets,
                [("images", "IMAGE", 1, False), ("seed_value", "INT", 2, True)],
                [("hashes", "STRING", []), ("a1111_params", "STRING", [])]),
    ]
    graph = ui_graph(nodes, [[1, 1, 0, 3, 0, "IMAGE"], [2, 2, 0, 3, 1, "INT"]])
    workflow = parse_workflow(graph, registry)
    saved = workflow.to_json()["nodes"]["3"]["inputs"]
    assert (saved["steps"], saved["cfg"], saved["modelname"], saved["denoise"], saved["easy_remix"]) == (
        5, 6.5, DEMO, 0.75, False)
    result = Executor(registry).run(workflow)
    assert result.ok, (result.problems, result.error)
    (png,) = saved_files(tmp_folders.outputs)
    assert png.relative_to(tmp_folders.outputs).as_posix() == "out/99-5-6.5-normal-32.png"
    settings = parse_a1111(Image.open(png).text["parameters"])
    assert (settings["seed"], settings["steps"], settings["sampler"], settings["cfg scale"]) == (
        "99", "5", "Euler", "6.5")
    assert "prompt" not in Image.open(png).text  # embed_workflow off
    ui = export_ui(workflow, registry)
    by_id = {n["id"]: n for n in ui["nodes"]}
    assert by_id[3]["type"] == "Image Saver" and by_id[3]["widgets_values"][:4] == saver_widgets[:4]
    assert by_id[2]["type"] == "Seed Generator (Image Saver)" and by_id[2]["widgets_values"] == [90, "fixed", 9]
    api = export_api(workflow, registry)
    # written with the pack's current input name; its earlier name (ours) is read too
    assert api["3"]["class_type"] == "Image Saver" and api["3"]["inputs"]["scheduler_name"] == "normal"
    assert parse_workflow(api, registry).to_json()["nodes"]["3"]["inputs"]["steps"] == 5
    api["3"]["inputs"]["scheduler"] = api["3"]["inputs"].pop("scheduler_name").replace("normal", "karras")
    assert parse_workflow(api, registry).to_json()["nodes"]["3"]["inputs"]["scheduler"] == "karras"


def test_path_and_filename_escapes_are_refused(registry, tmp_folders):
    image = torch.rand(1, 8, 8, 3)
    for path in ("../outside", "/tmp", "/", "a/../../b", "C:/Users", "%date/../..", "\\\\server\\share"):
        with pytest.raises(Exception) as caught:
            call(registry, "ImageSaver", images=image, path=path, download_civitai_data=False)
        assert getattr(caught.value, "input", None) == "path", caught.value
    with pytest.raises(Exception) as caught:
        call(registry, "ImageSaver", images=image, filename="../../x", download_civitai_data=False)
    assert getattr(caught.value, "input", None) == "filename"
    assert not any((tmp_folders.outputs.parent).glob("outside*")) and not list(tmp_folders.outputs.parent.glob("x.*"))
    # a filename with folders (a time format with "/") stays inside
    call(registry, "ImageSaver", images=image, filename="%time", time_format="%Y/%m", download_civitai_data=False)
    (file,) = saved_files(tmp_folders.outputs)
    assert re.fullmatch(r"\d{4}/\d\d\.png", file.relative_to(tmp_folders.outputs).as_posix())


def test_filename_placeholders_as_the_pack_fills_them():
    from datetime import datetime

    now = datetime(2024, 5, 6, 7, 8, 9)
    values = {"modelname": "sdxl/juggernaut.safetensors", "width": 832, "height": 1216, "seed": 42, "counter": 3,
              "sampler_name": "euler", "steps": 30, "cfg": 4.5, "scheduler": "karras", "denoise": 1.0, "clip_skip": -2}
    assert sanitize('a<b>:c"d|e?f*g\x01h/i. ') == "abcdefgh/i"
    text = ("%date_%time_%model_%basemodelname_%width_%height_%seed_%counter_%sampler_name_%steps_%cfg_%scheduler"
            "_%denoise_%clip_skip")
    assert expand_pattern(text, values, "%H%M%S", now) == (
        "2024-05-06_070809_juggernaut.safetensors_juggernaut_832_1216_42_3_euler_30_4.5_karras_1.0_-2")
    assert expand_pattern("%scheduler_name", values, "%H", now) == "karras"


def test_sampler_names_manual_hashes_and_prompt_cleaning():
    from nodes.pack_nodes_image_saver import clean_prompt

    # easy_remix: lower-case LoRA tags and embedding paths only, as the pack's patterns (found in any case)
    assert clean_prompt("a <lora:x:0.5>, embedding:sub/neg, <LORA:y>, STYLE(A1111, mean)b") == "a , neg, <LORA:y>, b"
    assert civitai_sampler_name("euler_ancestral", "normal") == "Euler a"
    assert civitai_sampler_name("dpmpp_2m_sde_gpu", "karras") == "DPM++ 2M SDE Karras"
    assert civitai_sampler_name("deis", "normal") == "deis"
    assert civitai_sampler_name("deis", "beta") == "deis_beta"
    assert manual_hash(" Name : ABC ", False) == ("Name", "ABC", None)
    assert manual_hash("ABC:0.5", False) == ("ABC", "0.5", None)
    assert manual_hash("ABC:0.5", True) == (None, "ABC", 0.5)
    assert manual_hash("N:ABC:0.5", True) == ("N", "ABC", 0.5)
    assert manual_hash("N:ABC:x", True) is None and manual_hash("N:ABC:1", False) is None
    assert manual_hash("N:", False) is None and manual_hash(":ABC", True) is None


def test_additional_hashes_skip_long_repeated_and_known_ones(registry, tmp_folders):
    lora_hash = sha10(BUNDLED / "loras" / LORA)
    hashes, text = call(registry, "ImageSaver", images=torch.rand(1, 8, 8, 3), download_civitai_data=False,
                        positive="x <lora:graphflow-demo-corner>", easy_remix=False,
                        additional_hashes=f"AAAA, aaaa\nB:{lora_hash.upper()},{'F' * 17},C:DDDD, bad:a:b")
    # no model: an empty first entry, as the pack gives
    assert hashes == f",graphflow-demo-corner:{lora_hash},manual1:AAAA,C:DDDD"
    assert '"manual1":"AAAA","C":"DDDD"' in text and "Model hash" not in text


def test_literals_selectors_and_loaders(registry, tmp_folders):
    assert call(registry, "ImageSaverSeedGenerator", seed=2 ** 64 - 1) == 2 ** 64 - 1
    assert call(registry, "ImageSaverStringLiteral", string="a\nb") == "a\nb"
    assert call(registry, "ImageSaverSeedGenerator", seed=10, increment=-3) == 7
    assert call(registry, "ImageSaverSizeLiteral", size=768) == 768
    assert call(registry, "ImageSaverCfgLiteral", cfg=4.5) == 4.5
    assert call(registry, "ImageSaverSchedulerSelector", scheduler="AYS SDXL") == ("AYS SDXL", "AYS SDXL")
    assert call(registry, "ImageSaverSamplerToString", sampler="lcm") == "lcm"
    values = call(registry, "ImageSaverInputParameters", seed=3, steps=4, cfg=5.0, sampler="euler",
                  scheduler="karras", denoise=0.5)
    assert values == (3, 4, 5.0, "euler", "karras", 0.5)
    assert call(registry, "ImageSaverSchedulerSelectorInspire", scheduler="OSS FLUX") == ("OSS FLUX", "OSS FLUX")
    assert call(registry, "ImageSaverSchedulerSelectorEfficiency", scheduler="GITS") == ("GITS", "GITS")
    assert call(registry, "AnyToString", value=1.5) == "1.5"
    # giriss' bare names read as the pack's nodes; unknown classes of the pack are named as its
    for old, ours in (("String Literal", "ImageSaverStringLiteral"), ("Cfg Literal", "ImageSaverCfgLiteral"),
                      ("Checkpoint Selector", "CheckpointSelector")):
        assert registry.comfy_node(old).__name__ == ours
    assert custom_pack("Image Saver Simple") == "ComfyUI-Image-Saver"
    assert custom_pack("Civitai Hash Fetcher (Image Saver)") == "ComfyUI-Image-Saver"
    assert custom_pack("Image Save") == "WAS Node Suite"


def test_hashes_follow_the_file_not_a_stale_cache(registry, tmp_folders):
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    target = tmp_folders.models / "checkpoints" / "mine.safetensors"
    shutil.copy(BUNDLED / "checkpoints" / DEMO, target)
    first, _ = call(registry, "ImageSaver", images=torch.rand(1, 8, 8, 3), modelname="mine",
                    download_civitai_data=False)
    assert first == f"mine:{sha10(target)}"
    with open(target, "ab") as f:  # a changed file (size and time) is hashed again
        f.write(b"\0")
    second, _ = call(registry, "ImageSaver", images=torch.rand(1, 8, 8, 3), modelname="mine",
                     download_civitai_data=False)
    assert second == f"mine:{sha10(target)}" and second != first
    assert not list((tmp_folders.models / "checkpoints").glob("*.sha256"))


def test_earlier_layouts_and_input_names_are_read_as_today(registry, tmp_folders):
    """A save from before clip_skip (21 widgets, time_format where clip_skip is now), one with
    manual_hash before steps (23), and an API prompt with those versions' input names."""
    before_clip_skip = ["a", "", "png", 5, 6.5, DEMO, "euler", "normal", "p", "n", 9, 64, 64, True, 90, False, 0,
                        1.0, "%Y", False, True]
    with_manual = ["b", "", "png", "MyLoRA:ABC", 5, 6.5, DEMO, "euler", "normal", "p", "n", 9, 64, 64, True, 90,
                   False, 0, 1.0, -2, "%Y", False, True]
    with_custom = [*with_manual[:3], *with_manual[4:], "MyLoRA:ABC", True, False, True, "c: 1"]
    for widgets, clip_skip, hashes in ((before_clip_skip, 0, ""), (with_manual, -2, "MyLoRA:ABC"),
                                       (with_custom, -2, "MyLoRA:ABC")):
        nodes = [ui_node(1, "EmptyImage", [8, 8, 1, 0], outputs=[("IMAGE", "IMAGE", [1])]),
                 ui_node(2, "Image Saver", widgets, [("images", "IMAGE", 1, False)])]
        values = parse_workflow(ui_graph(nodes, [[1, 1, 0, 2, 0, "IMAGE"]]), registry).to_json()["nodes"]["2"]["inputs"]
        assert (values["steps"], values["clip_skip"], values["time_format"], values["embed_workflow"]) == (
            5, clip_skip, "%Y", True)
        assert values.get("additional_hashes", "") == hashes and values["filename"] == widgets[0]
        assert (values.get("custom", ""), values.get("show_preview", True)) == (
            ("c: 1", True) if widgets is with_custom else ("", True))
    api = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
           "2": {"class_type": "Image Saver", "inputs": {"images": ["1", 0], "filename": "old", "path": "",
                                                          "extension": "png", "embed_workflow_in_png": False,
                                                          "manual_hash": "ABC", "download_civitai_data": False}}}
    workflow = parse_workflow(api, registry)
    inputs = workflow.to_json()["nodes"]["2"]["inputs"]
    assert (inputs["embed_workflow"], inputs["additional_hashes"]) == (False, "ABC")
    run_graph(registry, api)
    assert '"manual1":"ABC"' in Image.open(tmp_folders.outputs / "old.png").text["parameters"]
    written = export_api(workflow, registry)["2"]["inputs"]
    assert written["embed_workflow"] is False and written["additional_hashes"] == "ABC"
    assert "manual_hash" not in written and "embed_workflow_in_png" not in written


def test_metadata_node_feeds_image_saver_simple_in_a_ui_save(registry, tmp_folders):
    """Image Saver Metadata -> Image Saver Simple as the editor saves them; the text written is the
    one Image Saver writes for the same inputs; two models: the second goes with the hashes."""
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    other = tmp_folders.models / "checkpoints" / "other.safetensors"
    other.write_bytes((BUNDLED / "loras" / LORA).read_bytes() + b"another")
    metadata_widgets = [f"{DEMO}, other", "cat <lora:graphflow-demo-corner:0.5>", "dog", 64, 80, 5, 3, 4.5,
                        "euler", "karras", 1.0, -1, "", False, True, "Hires upscale: 2"]
    simple_widgets = ["%basemodelname-%seed-%width", "simple", "png", True, 100, False, True, False, "", 0,
                      "%Y", True]
    nodes = [
        ui_node(1, "EmptyImage", [8, 8, 1, 0], outputs=[("IMAGE", "IMAGE", [1])]),
        ui_node(2, "Image Saver Metadata", metadata_widgets,
                outputs=[("metadata", "METADATA", [2]), ("hashes", "STRING", []), ("a1111_params", "STRING", [])]),
        ui_node(3, "Image Saver Simple", simple_widgets,
                [("images", "IMAGE", 1, False), ("metadata", "METADATA", 2, False)],
                [("hashes", "STRING", []), ("a1111_params", "STRING", [])]),
    ]
    graph = ui_graph(nodes, [[1, 1, 0, 3, 0, "IMAGE"], [2, 2, 0, 3, 1, "METADATA"]])
    workflow = parse_workflow(graph, registry)
    result = Executor(registry).run(workflow)
    assert result.ok, (result.problems, result.error)
    (png,) = saved_files(tmp_folders.outputs)
    assert png.relative_to(tmp_folders.outputs).as_posix() == "simple/graphflow-demo-5-64.png"
    text = Image.open(png).text["parameters"]
    model_hash, lora_hash = sha10(BUNDLED / "checkpoints" / DEMO), sha10(BUNDLED / "loras" / LORA)
    other_hash = sha10(other)
    hashes = {"LORA:graphflow-demo-corner": lora_hash, "other": other_hash, "model": model_hash}
    assert text == ("cat\nNegative prompt: dog\nSteps: 3, Sampler: Euler Karras, CFG scale: 4.5, Seed: 5, "
                    "Size: 64x80, "
                    f"Clip skip: 1, Hires upscale: 2, Model hash: {model_hash}, Model: graphflow-demo, "
                    f"Hashes: {json.dumps(hashes, separators=(',', ':'))}, Version: ComfyUI")
    assert result.values["3"] == result.values["2"][1:] == (
        f"graphflow-demo:{model_hash},graphflow-demo-corner:{lora_hash},other:{other_hash}", text)
    same = call(registry, "ImageSaver", images=torch.rand(1, 8, 8, 3), filename="same", modelname=f"{DEMO}, other",
                positive=metadata_widgets[1], negative="dog", width=64, height=80, seed_value=5, steps=3, cfg=4.5,
                sampler_name="euler", scheduler="karras", clip_skip=-1, download_civitai_data=False,
                custom="Hires upscale: 2")
    assert same[1] == text
    ui = {n["id"]: n for n in export_ui(workflow, registry)["nodes"]}
    assert ui[2]["type"] == "Image Saver Metadata" and ui[2]["widgets_values"] == metadata_widgets
    assert ui[3]["type"] == "Image Saver Simple" and ui[3]["widgets_values"] == simple_widgets
    api = export_api(workflow, registry)
    assert api["3"]["inputs"]["metadata"] == ["2", 0] and api["2"]["inputs"]["scheduler_name"] == "karras"


def test_image_saver_simple_writes_a_given_parameters_text_as_it_is(registry, tmp_folders):
    text = "a cat\nNegative prompt: bad\nSteps: 30, Sampler: Euler a, CFG scale: 6, Seed: 77, Size: 640x480, Model: m1"
    api = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
           "2": {"class_type": "Image Saver Simple", "inputs": {
               "images": ["1", 0], "filename": "%basemodelname_%seed_%steps_%cfg_%width", "path": "",
               "extension": "webp", "lossless_webp": True, "quality_jpeg_or_webp": 100, "optimize_png": False,
               "embed_workflow": True, "save_workflow_as_json": False, "a1111_params": text}}}
    result = run_graph(registry, api)
    (webp,) = saved_files(tmp_folders.outputs)
    assert webp.name == "m1_77_30_6.0_640.webp"
    chunks = picture_text(webp.read_bytes())
    assert chunks["parameters"] == text and json.loads(chunks["prompt"])["2"]["class_type"] == "Image Saver Simple"
    assert result.values["2"] == ("", text)
    # nothing given: the pack's defaults
    call(registry, "ImageSaverSimple", images=torch.rand(1, 8, 8, 3), filename="d_%seed_%steps_%width")
    assert (tmp_folders.outputs / "d_0_20_512.png").is_file()


def test_a_jpeg_drops_the_workflow_past_its_exif_limit_but_keeps_the_parameters(tmp_path):
    from nodes.pack_nodes_image_saver import save_picture

    picture = Image.new("RGB", (8, 8), (10, 20, 30))
    texts = {"workflow": json.dumps({"note": "w" * 40000}), "prompt": json.dumps({"note": "p" * 40000})}
    save_picture(picture, tmp_path / "a.jpeg", "jpeg", 90, True, False, "params text", texts)
    exif = Image.open(tmp_path / "a.jpeg").getexif()
    assert 0x0110 not in exif and exif[0x010F].startswith("workflow:")  # the prompt went first
    assert exif.get_ifd(0x8769)[0x9286] == b"UNICODE\x00" + "params text".encode("utf-16-be")
    texts["workflow"] = json.dumps({"note": "w" * 70000})
    save_picture(picture, tmp_path / "b.jpeg", "jpeg", 90, True, False, "params text", texts)
    exif = Image.open(tmp_path / "b.jpeg").getexif()
    assert 0x010F not in exif and parse_a1111(picture_text((tmp_path / "b.jpeg").read_bytes())["parameters"])
    with pytest.raises(FileExistsError):  # an existing file is never replaced
        save_picture(picture, tmp_path / "b.jpeg", "jpeg", 90, True, False, "x", {})


def test_deeply_nested_brackets_are_read_unweighted(registry, tmp_folders):
    deep = "(" * 5000 + "cat" + ")" * 5000
    hashes, text = call(registry, "ImageSaver", images=torch.rand(1, 8, 8, 3), positive=deep, easy_remix=False,
                        download_civitai_data=False, modelname=DEMO)
    assert text.startswith(deep + "\nNegative prompt: unknown\n")


def test_literals_read_both_input_names_and_concat_optional(registry, tmp_folders):
    api = {"1": {"class_type": "Width/Height Literal (Image Saver)", "inputs": {"int": 640}},
           "2": {"class_type": "Cfg Literal (Image Saver)", "inputs": {"float": 5.5}},
           "3": {"class_type": "Width/Height Literal (Image Saver)", "inputs": {"size": 320}},
           "4": {"class_type": "Seed Generator", "inputs": {"seed": 5}}}
    workflow = parse_workflow(api, registry)
    result = Executor(registry).run(workflow, outputs=list("1234"))
    assert result.ok, (result.problems, result.error)
    assert [result.values[k][0] for k in "1234"] == [640, 5.5, 320, 5]
    written = export_api(workflow, registry)  # the pack's current names
    assert written["1"]["inputs"] == {"size": 640} and written["2"]["inputs"] == {"cfg": 5.5}
    # Conditioning Concat Optional: ConditioningConcat's result, or conditioning_to unchanged
    to = [(torch.randn(1, 77, 8), {"pooled_output": torch.randn(1, 8)})]
    source = [(torch.randn(1, 77, 8), {})]
    assert call(registry, "ConditioningConcatOptional", conditioning_to=to) is to
    (joined, options), = call(registry, "ConditioningConcatOptional", conditioning_to=to, conditioning_from=source)
    assert torch.equal(joined, torch.cat([to[0][0], source[0][0]], dim=1)) and options.keys() == to[0][1].keys()


def test_workflow_input_value_reads_the_running_prompt(registry, tmp_folders):
    api = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
           "2": {"class_type": "Workflow Input Value (Image Saver)", "inputs": {"node_id": "1", "input_name": "width"}},
           "3": {"class_type": "Workflow Input Value (Image Saver)", "inputs": {"node_id": "1", "input_name": "nope"}},
           "4": {"class_type": "Any to String (Image Saver)", "inputs": {"value": ["2", 0]}}}
    result = Executor(registry).run(parse_workflow(api, registry), outputs=["2", "3", "4"])
    assert result.ok, (result.problems, result.error)
    assert (result.values["2"][0], result.values["3"][0], result.values["4"][0]) == (8, None, "8")


def test_non_latin_prompts_round_trip_in_png_and_webp(registry, tmp_folders):
    for extension in ("png", "webp"):
        _, text = call(registry, "ImageSaver", images=torch.rand(1, 8, 8, 3), filename="u", extension=extension,
                       positive="café ✓ 猫", download_civitai_data=False)
        raw = (tmp_folders.outputs / f"u.{extension}").read_bytes()
        assert picture_text(raw)["parameters"] == text and text.startswith("café ✓ 猫\n")


def test_a_ui_save_in_the_packs_example_shape_runs_on_the_demo_model(registry, tmp_folders):
    """As the pack's example workflow is wired: literals and selectors feed KSampler's converted
    widgets and Image Saver's (a 22-value save: clip_skip, then embed_workflow last)."""
    S, I, F = "STRING", "INT", "FLOAT"
    nodes = [
        ui_node(1, "Checkpoint Loader with Name (Image Saver)", [DEMO],
                outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2, 3]), ("VAE", "VAE", [4]),
                         ("model_name", S, [5])]),
        ui_node(2, "String Literal (Image Saver)", ["a glass bottle"], outputs=[("STRING", S, [6, 7])]),
        ui_node(3, "String Literal (Image Saver)", ["(worst quality:1.3)"], outputs=[("STRING", S, [8, 9])]),
        ui_node(4, "Seed Generator (Image Saver)", [42, "fixed"], outputs=[("INT", I, [10, 11])]),
        ui_node(5, "Int Literal (Image Saver)", [2], outputs=[("INT", I, [12, 13])]),
        ui_node(6, "Float Literal (Image Saver)", [7], outputs=[("FLOAT", F, [14, 15])]),
        ui_node(7, "Width/Height Literal (Image Saver)", [64], outputs=[("size", I, [16, 17, 18, 19])]),
        ui_node(8, "Sampler Selector (Image Saver)", ["dpmpp_2m_sde"],
                outputs=[("sampler", "COMBO", [20]), ("sampler_name", S, [21])]),
        ui_node(9, "Scheduler Selector (Comfy) (Image Saver)", ["karras"],
                outputs=[("scheduler", "COMBO", [22]), ("scheduler_name", S, [23])]),
        ui_node(10, "CLIPTextEncode", ["x"], [("clip", "CLIP", 2, False), ("text", S, 6, True)],
                [("CONDITIONING", "CONDITIONING", [24])]),
        ui_node(11, "CLIPTextEncode", ["x"], [("clip", "CLIP", 3, False), ("text", S, 8, True)],
                [("CONDITIONING", "CONDITIONING", [25])]),
        ui_node(12, "EmptyLatentImage", [512, 512, 1], [("width", I, 16, True), ("height", I, 17, True)],
                [("LATENT", "LATENT", [26])]),
        ui_node(13, "KSampler", [1, "randomize", 20, 8, "euler", "normal", 1],
                [("model", "MODEL", 1, False), ("positive", "CONDITIONING", 24, False),
                 ("negative", "CONDITIONING", 25, False), ("latent_image", "LATENT", 26, False),
                 ("sampler_name", "COMBO", 20, True), ("scheduler", "COMBO", 22, True), ("seed", I, 10, True),
                 ("steps", I, 12, True), ("cfg", F, 14, True)], [("LATENT", "LATENT", [27])]),
        ui_node(14, "VAEDecode", [], [("samples", "LATENT", 27, False), ("vae", "VAE", 4, False)],
                [("IMAGE", "IMAGE", [28])]),
        ui_node(15, "Image Saver", ["%time_%basemodelname_%seed", "", "png", 20, 7, "", "", "normal", "unknown",
                                    "unknown", 0, 512, 512, True, 100, False, 0, 1, 0, "%Y-%m-%d-%H%M%S", False,
                                    True],
                [("images", "IMAGE", 28, False), ("positive", S, 7, True), ("negative", S, 9, True),
                 ("steps", I, 13, True), ("cfg", F, 15, True), ("scheduler", S, 23, True),
                 ("seed_value", I, 11, True), ("width", I, 18, True), ("height", I, 19, True),
                 ("sampler_name", S, 21, True), ("modelname", S, 5, True)]),
    ]
    links = [[1, 1, 0, 13, 0, "MODEL"], [2, 1, 1, 10, 0, "CLIP"], [3, 1, 1, 11, 0, "CLIP"], [4, 1, 2, 14, 1, "VAE"],
             [5, 1, 3, 15, 11, S], [6, 2, 0, 10, 1, S], [7, 2, 0, 15, 1, S], [8, 3, 0, 11, 1, S],
             [9, 3, 0, 15, 2, S], [10, 4, 0, 13, 6, I], [11, 4, 0, 15, 6, I], [12, 5, 0, 13, 7, I],
             [13, 5, 0, 15, 3, I], [14, 6, 0, 13, 8, F], [15, 6, 0, 15, 4, F], [16, 7, 0, 12, 0, I],
             [17, 7, 0, 12, 1, I], [18, 7, 0, 15, 7, I], [19, 7, 0, 15, 8, I], [20, 8, 0, 13, 4, "COMBO"],
             [21, 8, 1, 15, 10, S], [22, 9, 0, 13, 5, "COMBO"], [23, 9, 1, 15, 5, S],
             [24, 10, 0, 13, 1, "CONDITIONING"], [25, 11, 0, 13, 2, "CONDITIONING"], [26, 12, 0, 13, 3, "LATENT"],
             [27, 13, 0, 14, 0, "LATENT"], [28, 14, 0, 15, 0, "IMAGE"]]
    workflow = parse_workflow(ui_graph(nodes, links), registry)
    # the save names the scheduler input by the pack's earlier name: its link is kept over the widget value
    assert workflow.to_json()["nodes"]["15"]["inputs"]["scheduler"] == ["9", 1]
    result = Executor(registry).run(workflow)
    assert result.ok, (result.problems, result.error)
    (png,) = saved_files(tmp_folders.outputs)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d-\d{6}_graphflow-demo_42\.png", png.name)
    settings = parse_a1111(Image.open(png).text["parameters"])
    assert (settings["prompt"], settings["negative"], settings["steps"], settings["sampler"], settings["cfg scale"],
            settings["seed"], settings["size"], settings["model"]) == (
        "a glass bottle", "(worst quality:1.3)", "2", "DPM++ 2M SDE Karras", "7.0", "42", "64x64", "graphflow-demo")
    assert settings["model hash"] == sha10(BUNDLED / "checkpoints" / DEMO).upper()  # civitai on: upper-cased
    assert Image.open(png).size == (64, 64) and result.values["15"][1] == Image.open(png).text["parameters"]
    ui = export_ui(workflow, registry)  # written back with the pack's current input name
    saver = next(n for n in ui["nodes"] if n["id"] == 15)
    linked = {i["name"]: i["link"] for i in saver["inputs"] if i.get("link") is not None}
    sources = {link[0]: (link[1], link[2]) for link in ui["links"]}
    assert sources[linked["scheduler_name"]] == (9, 1) and sources[linked["sampler_name"]] == (8, 1)
    assert export_api(workflow, registry)["15"]["inputs"]["scheduler_name"] == ["9", 1]


def test_placeholders_fill_in_once_and_a_huge_name_is_refused(registry, tmp_folders):
    from datetime import datetime

    from nodes.pack_nodes_image_saver import MAX_EXPANDED

    now = datetime(2024, 5, 6, 7, 8, 9)
    # values holding later placeholders: the pack's one-after-another replaces multiplied them
    # (30 of each: 1,452 characters -> 315.9 M); each value is written as it is
    values = {"modelname": "%sampler_name" * 30, "width": 1, "height": 1, "seed": 1, "counter": 0,
              "sampler_name": "%scheduler_name" * 30, "steps": 1, "cfg": 1.0, "scheduler": "%basemodelname" * 30,
              "denoise": 1.0, "clip_skip": 0}
    assert expand_pattern("%model|%sampler_name|%scheduler", values, "%Y", now) == "|".join(
        (values["modelname"], values["sampler_name"], values["scheduler"]))
    assert expand_pattern("%date%time%%seed", values, "%H", now) == "2024-05-0607%1"
    image = torch.rand(1, 8, 8, 3)
    big = "m" * (MAX_EXPANDED // 20 + 1)
    for node, inputs in (("ImageSaver", {"modelname": big}),
                         ("ImageSaverSimple", {"a1111_params": f"x\nNegative prompt: y\nSteps: 2, Model: {big}"})):
        for name in ("filename", "path"):
            with pytest.raises(Exception) as caught:
                call(registry, node, images=image, **{name: "%model" * 20}, **inputs,
                     **({"download_civitai_data": False} if node == "ImageSaver" else {}))
            assert getattr(caught.value, "input", None) == name, caught.value
            assert len(str(caught.value)) < 300
    assert not saved_files(tmp_folders.outputs)


def test_hostile_prompts_are_read_in_linear_time(registry, tmp_folders):
    import time

    from nodes.pack_nodes_image_saver import LORA, clean_prompt, lora_tags

    # unclosed tags made each failed match read on to the prompt's end (a 160 KB prompt: 36.8 s)
    for prompt in ("<lora:a:" * 25000, "<lora:" * 33000, "A(" * 100000, "<lora:a:" * 12500 + ">" + "A(" * 50000):
        start = time.perf_counter()
        hashes, text = call(registry, "ImageSaver", images=torch.rand(1, 8, 8, 3), positive=prompt,
                            negative=prompt, download_civitai_data=False, easy_remix=True)
        assert time.perf_counter() - start < 2, prompt[:20]
        assert text.startswith(clean_prompt(prompt).strip())
    # the same tags and the same cleaning as the pack's patterns on a whole short prompt
    prompt = "<lora:a <lora:b:0.5> c <LORA:d> e:f> STYLE(x) A(y <lora:g:"
    assert lora_tags(prompt) == LORA.findall(prompt) == [("a <lora", "b:0.5"), ("d", "")]
    assert clean_prompt(prompt) == " c <LORA:d> e:f>  A(y <lora:g:"


def test_each_models_folder_is_listed_once_per_run(registry, tmp_folders, monkeypatch):
    from graphflow.folders import folders

    loras = tmp_folders.models / "loras"
    loras.mkdir(parents=True, exist_ok=True)
    for i in range(50):
        (loras / f"l{i}.safetensors").write_bytes(b"x")
    listed, list_models = [], folders.list_models
    monkeypatch.setattr(folders, "list_models", lambda kind, *a: listed.append(kind) or list_models(kind, *a))
    tags = " ".join(f"<lora:missing{i}:1> <lora:l{i % 3}> embedding:e{i}" for i in range(300))
    hashes, text = call(registry, "ImageSaver", images=torch.rand(1, 8, 8, 3), positive=tags, negative=tags,
                        modelname=f"{DEMO}, other, other2, {DEMO}", download_civitai_data=False, easy_remix=False)
    # the pack walked the folder for each of the 1,800 tags and each model name
    assert sorted(listed) == ["checkpoints", "diffusion_models", "embeddings", "loras"]
    found = {f"LORA:l{i}": hashlib.sha256(b"x").hexdigest()[:10] for i in range(3)}
    assert {k: v for k, v in json.loads(text.split("Hashes: ")[1].split(", Version")[0]).items()
            if k.startswith("LORA")} == found
    assert hashes.startswith(f"{DEMO}:".replace(".safetensors", "") + sha10(BUNDLED / "checkpoints" / DEMO))


def test_the_workflow_json_never_replaces_a_file_or_follows_a_link(registry, tmp_folders, monkeypatch):
    import os

    import nodes.pack_nodes_image_saver as saver

    outside = tmp_folders.outputs.parent / "outside.txt"
    outside.write_text("original")
    tmp_folders.outputs.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, tmp_folders.outputs / "pic.json")
    image = torch.rand(1, 8, 8, 3)
    call(registry, "ImageSaver", images=image, filename="pic", save_workflow_as_json=True,
         download_civitai_data=False)
    # a name whose .json is there is not taken (the pack looked at pictures only and wrote through the link)
    assert sorted(p.name for p in tmp_folders.outputs.iterdir()) == ["pic.json", "pic_01.json", "pic_01.png"]
    assert outside.read_text() == "original"
    # a link that takes the name between the picture and its JSON is kept, with a warning
    monkeypatch.setattr(saver, "unique_stem", lambda folder, stem, extensions: "pic")
    call(registry, "ImageSaver", images=image, filename="pic", save_workflow_as_json=True,
         download_civitai_data=False)
    assert (tmp_folders.outputs / "pic.png").is_file() and outside.read_text() == "original"


def test_names_are_counted_without_case_and_the_tries_end(registry, tmp_folders, monkeypatch):
    import nodes.pack_nodes_image_saver as saver

    # a case-insensitive volume (macOS, Windows): "Pic.png" is there, so "pic.png" can't be made;
    # the pack's case-sensitive count offered "pic" again and again
    tmp_folders.outputs.mkdir(parents=True, exist_ok=True)
    (tmp_folders.outputs / "Pic.png").write_bytes(b"x")
    real_open = open

    def case_insensitive_open(path, mode="r", *args, **kwargs):
        names = [p.name.lower() for p in path.parent.iterdir()]
        if "x" in mode and path.name.lower() in names:
            raise FileExistsError(17, "File exists", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(saver, "open", case_insensitive_open, raising=False)
    image = torch.rand(1, 8, 8, 3)
    call(registry, "ImageSaver", images=image, filename="pic", download_civitai_data=False)
    assert sorted(p.name for p in tmp_folders.outputs.iterdir()) == ["Pic.png", "pic_01.png"]
    # a name that can never be made: refused after MAX_NAME_TRIES tries
    tries = []

    def always_taken(*args):
        tries.append(args[1])
        raise FileExistsError(17, "File exists")

    monkeypatch.setattr(saver, "save_picture", always_taken)
    with pytest.raises(Exception) as caught:
        call(registry, "ImageSaver", images=image, filename="pic", download_civitai_data=False)
    assert getattr(caught.value, "input", None) == "filename" and len(tries) == saver.MAX_NAME_TRIES


def test_format_size_limits_and_long_names_give_short_clear_errors(registry, tmp_folders, monkeypatch):
    import nodes.pack_nodes_image_saver as saver

    # libwebp writes at most 16383 pixels a side, libjpeg 65500: refused before encoding (a raw
    # ValueError, and a NodeInputError reading "None", came from the encoders)
    for extension, width in (("webp", 16384), ("jpg", 65501), ("jpeg", 65501)):
        with pytest.raises(Exception) as caught:
            call(registry, "ImageSaver", images=torch.rand(1, 1, width, 3), extension=extension,
                 download_civitai_data=False)
        assert getattr(caught.value, "input", None) == "images" and extension in str(caught.value)
    call(registry, "ImageSaver", images=torch.rand(1, 1, 16383, 3), extension="webp", filename="w",
         download_civitai_data=False)
    assert Image.open(tmp_folders.outputs / "w.webp").size == (16383, 1)
    # another refusal of an encoder: a NodeInputError on images, no file left
    def refused(*args):
        raise ValueError("bad")

    monkeypatch.setattr(saver, "_write_picture", refused)
    with pytest.raises(Exception) as caught:
        call(registry, "ImageSaver", images=torch.rand(1, 8, 8, 3), filename="v" * 180, download_civitai_data=False)
    assert getattr(caught.value, "input", None) == "images" and "bad" in str(caught.value)
    assert len(str(caught.value)) < 200 and not list(tmp_folders.outputs.glob("v*"))


def test_path_and_filename_are_checked_as_file_names(registry, tmp_folders):
    image = torch.rand(1, 8, 8, 3)
    # graphflow.folders.file_name_problem's rules: control characters, a part over 200 characters,
    # over 1000 in all; refused before any folder is made, the message naming the length, not the name
    for inputs in ({"path": "a\nb"}, {"path": "b" * 300}, {"path": "b/" * 600}, {"filename": "a" * 300},
                   {"filename": "x/" + "a" * 250}, {"filename": "%model", "modelname": "m" * 300},
                   {"filename": "x/../../y"}):
        with pytest.raises(Exception) as caught:
            call(registry, "ImageSaver", images=image, download_civitai_data=False, **inputs)
        assert getattr(caught.value, "input", None) == next(iter(inputs)), caught.value
        assert len(str(caught.value)) < 200
    assert not list(tmp_folders.outputs.rglob("*"))
    call(registry, "ImageSaver", images=image, path="./a//b/", filename="c/" + "d" * 200, download_civitai_data=False)
    assert (tmp_folders.outputs / "a" / "b" / "c" / ("d" * 200 + ".png")).is_file()


def test_an_api_prompt_naming_both_scheduler_inputs_reads_the_current_one(registry):
    # ComfyUI ignores an input the class does not declare: the pack's current scheduler_name wins
    # over a link under its earlier name, in either order (a UI save's link wins: the test above)
    for order in (1, -1):
        inputs = dict(list({"images": ["1", 0], "filename": "x", "path": "", "extension": "png",
                            "scheduler_name": "beta", "scheduler": ["7", 1]}.items())[::order])
        api = {"7": {"class_type": "Scheduler Selector (Comfy) (Image Saver)", "inputs": {"scheduler": "karras"}},
               "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
               "2": {"class_type": "Image Saver", "inputs": inputs}}
        workflow = parse_workflow(api, registry)
        assert workflow.to_json()["nodes"]["2"]["inputs"]["scheduler"] == "beta"
        # the link under the earlier name is not dropped silently
        assert [(n["node_id"], n["input"]) for n in workflow.notes] == [("2", "scheduler")]
        assert "an earlier name of 'scheduler_name'" in workflow.notes[0]["message"]
