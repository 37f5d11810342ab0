"""Sweep files and the command line around them (no Ray needed; runs on Ray: tests/test_ray.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from graphflow.cli import main
from graphflow.sweep import SweepError, read_results, read_sweep

ROOT = Path(__file__).resolve().parents[1]


def test_sweep_lines_are_objects_or_assignment_lists(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"5.seed": 3, "2.text": "a cat"}\n\n["5.seed=4", "2.text=a dog", "5.cfg=2.5"]\n')
    assert read_sweep(path) == [{"5.seed": 3, "2.text": "a cat"}, {"5.seed": 4, "2.text": "a dog", "5.cfg": 2.5}]


@pytest.mark.parametrize("line, expected", [
    ("{not json", "line 2: not JSON"),
    ('{"seed": 3}', "line 2: expected"),
    ('["5.seed"]', "line 2: '5.seed': expected NODE_ID.INPUT=VALUE"),
    ("42", "line 2: expected"),
])
def test_a_bad_sweep_line_is_named(tmp_path, line, expected):
    path = tmp_path / "s.jsonl"
    path.write_text('{"5.seed": 1}\n' + line + "\n")
    with pytest.raises(SweepError, match=expected.replace("[", r"\[").replace("(", r"\(")):
        read_sweep(path)


def test_a_torn_results_line_is_ignored(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"line": 0, "status": "success"}\n{"line": 1, "stat')
    assert list(read_results(path)) == [0]


def test_a_line_naming_a_missing_node_is_recorded_invalid(tmp_path, capsys):
    sweep = tmp_path / "s.jsonl"
    sweep.write_text('{"99.seed": 1}\n')
    code = main(["run", str(ROOT / "workflows" / "txt2img.json"), "--sweep", str(sweep), "--quiet",
                 "--output-dir", str(tmp_path / "out")])
    assert code == 4
    (result,) = read_results(tmp_path / "s.results.jsonl").values()
    assert result["status"] == "invalid" and "no node '99'" in result["error"]


def test_ray_flags_are_listed(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "--sweep" in out and "--ray-workers" in out and "--ray-address" in out


def test_ray_flags_without_a_sweep_are_refused(capsys):
    assert main(["run", str(ROOT / "workflows" / "txt2img.json"), "--ray-workers", "2"]) == 2
    assert "--sweep" in capsys.readouterr().err


def test_light_commands_do_not_import_ray():
    check = subprocess.run([sys.executable, "-c", "import sys, graphflow.cli, graphflow.server.app, graphflow.sweep; "
                            "print('ray' in sys.modules)"],
                           cwd=ROOT, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip().splitlines()[-1] == "False"
