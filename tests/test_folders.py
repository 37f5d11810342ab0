"""Models folders follow links and take extra folders (ComfyUI's extra_model_paths.yaml);
the inputs and outputs folders stay strict (issue 17)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from graphflow.executor import Executor
from graphflow.folders import Folders, UnsafePathError, configure, load_extra_model_paths
from graphflow.testing import write_checkpoint
from graphflow.workflow import parse_workflow


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("shared") / "tiny.safetensors"
    write_checkpoint(path, "sd1")
    return path


def load_checkpoint_workflow(name):
    return parse_workflow({"nodes": {"1": {"type": "LoadCheckpoint", "inputs": {"checkpoint": name}}}})


def test_a_linked_checkpoint_is_listed_and_loads(builtin_registry, tmp_folders, tmp_path, tiny_checkpoint):
    checkpoints = tmp_folders.models / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "linked.safetensors").symlink_to(tiny_checkpoint)  # a file elsewhere
    (checkpoints / "shared").symlink_to(tiny_checkpoint.parent, target_is_directory=True)  # a folder elsewhere
    (checkpoints / "shared_again").symlink_to(checkpoints, target_is_directory=True)  # a loop: listed once
    names = tmp_folders.list_models("checkpoints")
    assert {"linked.safetensors", "shared/tiny.safetensors"} <= set(names)
    assert not any(name.startswith("shared_again/") for name in names)
    for name in ("linked.safetensors", "shared/tiny.safetensors"):
        assert tmp_folders.find_model("checkpoints", name) == tiny_checkpoint.resolve()
        result = Executor(builtin_registry).run(load_checkpoint_workflow(name), outputs=["1"])
        assert result.status == "success", (result.problems, result.error)
    with pytest.raises(UnsafePathError):  # names themselves still stay inside the folder
        tmp_folders.find_model("checkpoints", "../checkpoints/linked.safetensors")


def test_inputs_and_outputs_stay_strict_about_links(tmp_folders, tmp_path):
    (tmp_path / "secret.png").write_bytes(b"not for clients")
    (tmp_folders.inputs / "link.png").symlink_to(tmp_path / "secret.png")
    (tmp_folders.outputs / "out").symlink_to(tmp_path, target_is_directory=True)
    assert "link.png" not in tmp_folders.list_inputs()  # not offered, then refused
    with pytest.raises(UnsafePathError):
        tmp_folders.input_path("link.png")
    with pytest.raises(UnsafePathError):
        tmp_folders.output_path("out/x.png")


COMFY_YAML = """
comfyui:
    base_path: {base}
    is_default: true
    checkpoints: models/checkpoints/
    clip: models/clip/
    loras: |
        models/loras/
        {other}
empty_section:
    base_path: elsewhere
"""


def test_extra_model_paths_in_comfyuis_format(tmp_path, tiny_checkpoint):
    base, other = tmp_path / "ComfyUI", tmp_path / "more_loras"
    (base / "models" / "checkpoints").mkdir(parents=True)
    (base / "models" / "checkpoints" / "comfy.safetensors").symlink_to(tiny_checkpoint)
    config = tmp_path / "extra_model_paths.yaml"
    config.write_text(COMFY_YAML.format(base=base, other=other))
    assert load_extra_model_paths(config) == {
        "checkpoints": [base / "models" / "checkpoints"], "text_encoders": [base / "models" / "clip"],
        "loras": [base / "models" / "loras", other]}

    relative = tmp_path / "rel.yaml"  # a relative base_path is relative to the file's folder
    relative.write_text("a:\n  base_path: ComfyUI\n  vae: models/vae\n")
    assert load_extra_model_paths(relative) == {"vae": [base / "models" / "vae"]}

    found = Folders(home=tmp_path / "home", extra_model_paths=config)  # given explicitly
    assert "comfy.safetensors" in found.list_models("checkpoints")
    assert found.find_model("checkpoints", "comfy.safetensors") == tiny_checkpoint.resolve()
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "extra_model_paths.yaml").write_text(config.read_text())  # found in home
    assert "comfy.safetensors" in Folders(home=tmp_path / "home").list_models("checkpoints")

    for bad in ("[1, 2]", "a: [unclosed", "a: 5"):
        config.write_text(bad)
        with pytest.raises(ValueError, match="extra model paths file"):
            load_extra_model_paths(config)


def test_extra_model_paths_from_the_command_line_and_environment(tmp_path, tiny_checkpoint, monkeypatch):
    shared = tmp_path / "shared_models"
    (shared / "checkpoints").mkdir(parents=True)
    (shared / "checkpoints" / "mine.safetensors").symlink_to(tiny_checkpoint)
    config = tmp_path / "paths.yaml"
    config.write_text(f"shared:\n  base_path: {shared}\n  checkpoints: checkpoints\n")
    workflow = tmp_path / "wf.json"
    txt2img = json.loads((Path(__file__).parent.parent / "workflows" / "txt2img.json").read_text())
    txt2img["nodes"]["1"]["inputs"]["checkpoint"] = "mine.safetensors"
    workflow.write_text(json.dumps(txt2img))

    def validate(*flags, env=None):
        return subprocess.run([sys.executable, "-m", "graphflow.cli", "validate", str(workflow), *flags],
                              capture_output=True, text=True, cwd=tmp_path, timeout=120,
                              env={**os.environ, **(env or {})})

    missing = validate()  # not found without the extra folders
    assert missing.returncode == 3 and "mine.safetensors" in missing.stderr
    done = validate("--extra-model-paths", str(config))
    assert done.returncode == 0, done.stderr
    done = validate(env={"GRAPHFLOW_EXTRA_MODEL_PATHS": str(config)})
    assert done.returncode == 0, done.stderr
    broken = validate("--extra-model-paths", str(tmp_path / "missing.yaml"))
    assert broken.returncode == 2 and "missing.yaml" in broken.stderr and "Traceback" not in broken.stderr


def test_subfolder_name_is_empty_for_the_folder_itself_and_posix_below_it(tmp_path):
    from graphflow.folders import subfolder_name
    assert subfolder_name(tmp_path, tmp_path) == ""
    assert subfolder_name(tmp_path, tmp_path / "a" / "b") == "a/b"
    with pytest.raises(ValueError):
        subfolder_name(tmp_path / "a", tmp_path)
