"""The command line as a user meets it (issue 17): light commands start fast, Ctrl-C twice
ends a run with one line, a closed output pipe ends quietly, inspect finds models by name."""

import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
# torch alone takes longer to import than the goal for these commands (under 1 s): node modules
# import it inside their runs, model detection reads only names and shapes (graphflow.models.configs),
# so none of them may end up imported.
HEAVY = ("torch", "transformers", "open_clip", "diffusers", "safetensors", "graphflow.models.unet",
         "graphflow.models.vae", "graphflow.models.mmdit", "graphflow.models.flux", "graphflow.models.text_encoders",
         "graphflow.models.checkpoint", "graphflow.models.lora", "graphflow.sampling.samplers", "graphflow.images",
         "tiktoken", "graphflow.models.qwen25vl",
         "av",  # PyAV: `nodes` listed VHS_VideoCombine's formats (the encoders FFmpeg has) for nothing
         "networkx")  # ~0.1 s: validation orders the nodes itself, and imports it only to name a cycle

# Runs the CLI in-process, then reports which heavy modules ended up imported.
PROBE = """
import json, sys
from graphflow.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = {heavy!r}
loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))
print("PROBE" + json.dumps([code, loaded]), file=sys.stderr)
"""


def cli(*argv):
    return [sys.executable, "-m", "graphflow.cli", *argv]


def probe(tmp_path, *argv):
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    line = next(line for line in done.stderr.splitlines() if line.startswith("PROBE"))
    return json.loads(line[len("PROBE"):])


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["nodes"],
                                  ["validate", str(ROOT / "workflows" / "txt2img.json")],
                                  ["inspect", "graphflow-demo.safetensors"]])
def test_light_commands_import_no_heavy_modules(tmp_path, argv):
    code, loaded = probe(tmp_path, *argv)
    assert code == 0
    assert loaded == [], f"graphflow {' '.join(argv)} imported {loaded}"


@pytest.mark.parametrize("argv", [["nodes"], ["inspect", "graphflow-demo.safetensors"]])
def test_a_closed_output_pipe_ends_quietly(tmp_path, argv):
    # the reader is gone before graphflow writes (as `graphflow nodes | head -0`): its end of the
    # pipe is closed before graphflow starts (closed after, a busy test process could be late, and
    # output that fits the pipe's buffer would then be written without error)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = subprocess.Popen(cli(*argv), stdout=write_end, stderr=subprocess.PIPE, cwd=tmp_path)
    finally:
        os.close(write_end)
    err = process.stderr.read().decode()
    code = process.wait(timeout=120)
    assert (code, err) == (141, "")


def test_inspect_finds_a_model_by_name_in_the_models_folders(tmp_path):
    from graphflow.testing import write_checkpoint

    (tmp_path / "models" / "checkpoints" / "sdxl").mkdir(parents=True)
    write_checkpoint(tmp_path / "models" / "checkpoints" / "sdxl" / "mine.safetensors", "sdxl")
    bundled = subprocess.run(cli("inspect", "graphflow-demo.safetensors"), capture_output=True, text=True,
                             cwd=tmp_path, timeout=120)
    assert bundled.returncode == 0, bundled.stderr
    assert "file: graphflow-demo.safetensors" in bundled.stdout and "SD1.x" in bundled.stdout
    mine = subprocess.run(cli("inspect", "sdxl/mine.safetensors"), capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert mine.returncode == 0, mine.stderr
    assert "file: mine.safetensors" in mine.stdout and "SDXL" in mine.stdout
    missing = subprocess.run(cli("inspect", "nope.safetensors"), capture_output=True, text=True, cwd=tmp_path,
                             timeout=120)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "no model file of that name" in missing.stderr and str(tmp_path / "models") in missing.stderr


def slow_workflow(path: Path) -> Path:
    workflow = json.loads((ROOT / "workflows" / "txt2img.json").read_text())
    # about a second a step on one CPU thread: the second Ctrl-C lands well before the step ends
    workflow["nodes"]["4"]["inputs"].update(width=384, height=384, batch_size=1)
    workflow["nodes"]["5"]["inputs"]["steps"] = 500  # minutes: the test interrupts it in the first steps
    path.write_text(json.dumps(workflow))
    return path


def test_ctrl_c_twice_during_sampling_aborts_with_one_line(tmp_path):
    """Ctrl-C once asks the run to stop at the next step, on a line of its own below the live
    progress bar; Ctrl-C again, before that step ends, aborts at once: a short message, exit 130."""
    workflow = slow_workflow(tmp_path / "slow.json")
    master, slave = pty.openpty()  # stderr on a terminal, so the progress bar is live
    process = subprocess.Popen(cli("run", str(workflow), "--output-dir", str(tmp_path / "out")),
                               stdout=subprocess.PIPE, stderr=slave, cwd=tmp_path)
    os.close(slave)
    chunks = []

    def read():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                return
            if not data:
                return
            chunks.append(data.decode(errors="replace"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def wait_for(text, timeout=180):
        deadline = time.monotonic() + timeout
        while text not in "".join(chunks):
            assert time.monotonic() < deadline and process.poll() is None, f"no {text!r} in {''.join(chunks)!r}"
            time.sleep(0.01)

    try:
        wait_for("KSampler |")  # sampling has started
        process.send_signal(signal.SIGINT)
        wait_for("interrupting")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130
    finally:
        process.kill()
        process.wait()
    reader.join(timeout=10)
    os.close(master)
    err = "".join(chunks).replace("\r\n", "\n")
    assert "Traceback" not in err
    lines = err.split("\n")
    interrupting = [line for line in lines if "interrupting" in line]
    assert len(interrupting) == 1 and interrupting[0].startswith("graphflow: interrupting")  # not on the bar's line
    after = [line for line in lines[lines.index(interrupting[0]) + 1:] if line.strip()]
    assert after == ["graphflow: aborted"]


def test_validate_checks_model_files_without_importing_torch(tmp_path):
    """The model-file check still runs light: a checkpoint whose architecture cannot be detected and
    a truncated one are reported, and neither torch nor a model module is imported to say so."""
    from safetensors.numpy import save_file
    import numpy as np

    checkpoints = tmp_path / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    save_file({"some.weight": np.zeros((2, 2), np.float32)}, str(checkpoints / "mystery.safetensors"))
    whole = (ROOT / "graphflow" / "bundled" / "checkpoints" / "graphflow-demo.safetensors").read_bytes()
    (checkpoints / "cut.safetensors").write_bytes(whole[:len(whole) // 2])
    # a ControlNet where a checkpoint should be: the problem says what it is and where it goes
    save_file({"control_model.input_hint_block.0.weight": np.zeros((16, 3, 3, 3), np.float32),
               "control_model.input_blocks.0.0.weight": np.zeros((32, 4, 3, 3), np.float32)},
              str(checkpoints / "canny.safetensors"))
    workflow = json.loads((ROOT / "workflows" / "txt2img.json").read_text())
    for name, why in (("mystery", "no UNet keys"), ("cut", "truncated or corrupt"),
                      ("canny", "looks like a ControlNet: put it in models/controlnet/")):
        workflow["nodes"]["1"]["inputs"]["checkpoint"] = f"{name}.safetensors"
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(workflow))
        code, loaded, stderr = validate_probed(path, tmp_path / "models")
        assert code == 3, stderr
        assert "node 1 (LoadCheckpoint), input 'checkpoint'" in stderr and why in stderr
        assert loaded == [], f"validate imported {loaded}"


def validate_probed(path: Path, models: Path) -> tuple[int, list[str], str]:
    """`graphflow validate` in a fresh interpreter: (exit code, heavy modules it imported, stderr)."""
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), "validate", str(path),
                           "--models-dir", str(models)], capture_output=True, text=True, cwd=path.parent,
                          timeout=120)
    code, loaded = json.loads(next(line for line in done.stderr.splitlines()
                                   if line.startswith("PROBE"))[len("PROBE"):])
    return code, loaded, done.stderr


def test_validate_names_a_model_file_of_the_wrong_kind(tmp_path):
    """A LoRA picked in LoadControlNet's list (both sit in users' download folders) is a problem of
    that input at validation, before anything runs; still without importing torch."""
    from safetensors.numpy import save_file
    import numpy as np

    controlnets = tmp_path / "models" / "controlnet"
    controlnets.mkdir(parents=True)
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": np.zeros((4, 32), np.float32),
               "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": np.zeros((32, 4), np.float32)},
              str(controlnets / "detail.safetensors"))
    workflow = json.loads((ROOT / "workflows" / "controlnet.json").read_text())
    loader = next(k for k, n in workflow["nodes"].items() if n["type"] == "LoadControlNet")
    workflow["nodes"][loader]["inputs"]["control_net_name"] = "detail.safetensors"
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(workflow))
    code, loaded, stderr = validate_probed(path, tmp_path / "models")
    assert code == 3, stderr
    assert f"node {loader} (LoadControlNet), input 'control_net_name'" in stderr
    assert "detail.safetensors is not a file for models/controlnet/" in stderr
    assert "looks like a LoRA: put it in models/loras/ and load it with LoadLoRA" in stderr
    assert loaded == [], f"validate imported {loaded}"
