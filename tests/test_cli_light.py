"""The light commands (nodes, validate, --help) stay light: they never import transformers or
the torch models, which cost seconds of start-up (issue 17)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
HEAVY = ("transformers", "open_clip", "diffusers", "safetensors", "graphflow.models.unet", "graphflow.models.vae",
         "graphflow.models.text_encoders", "graphflow.models.checkpoint", "graphflow.models.lora")

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


def probe(tmp_path, *argv):
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    line = next(line for line in done.stderr.splitlines() if line.startswith("PROBE"))
    return json.loads(line[len("PROBE"):])


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["nodes"], ["nodes", "--json"],
                                  ["validate", str(ROOT / "workflows" / "txt2img.json")]])
def test_light_commands_import_no_heavy_modules(tmp_path, argv):
    code, loaded = probe(tmp_path, *argv)
    assert code == 0
    assert loaded == [], f"graphflow {' '.join(argv)} imported {loaded}"
