"""Plugins: discovery (folders, flag, environment, entry points), isolation of broken ones,
clashes, versions, and plugin nodes running and caching like built-in ones."""

import json
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from graphflow import cli
from graphflow.executor import Executor
from graphflow.plugins import load_plugins
from graphflow.registry import Registry
from graphflow.types import SOCKET_TYPES
from graphflow.validation import validate
from graphflow.workflow import parse_workflow

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "plugins"

# A helper plugin for workflows: a known image to start from, and an output node showing one.
TESTKIT = '''
import json
import torch
from graphflow.api import IMAGE, Int, Node, show

runs = []

class Gradient(Node):
    """A horizontal red ramp over a blue-green background."""
    category = "test"
    width: int = Int(8, min=1, max=64)
    outputs = {"image": IMAGE}

    def run(self):
        runs.append("Gradient")
        image = torch.empty(1, 4, self.width, 3)
        image[..., 0] = torch.linspace(0, 1, self.width)
        image[..., 1] = 0.4
        image[..., 2] = 0.7
        return image

class ShowPixels(Node):
    """Show the image's pixels as JSON."""
    category = "test"
    output_node = True
    image: IMAGE

    def run(self):
        runs.append("ShowPixels")
        show(text=[json.dumps(self.image.tolist())])
'''


def write(folder: Path, name: str, code: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(code))
    return path


@pytest.fixture
def registry():
    """Built-in primitives, registered the way load_builtin does, then plugins on top."""
    import nodes.primitives

    registry = Registry()
    registry.add_module(nodes.primitives)
    return registry


@pytest.fixture
def loaded(registry, tmp_path):
    write(tmp_path / "kit", "testkit.py", TESTKIT)
    load_plugins(registry, [EXAMPLES, tmp_path / "kit"], entry_points=False)
    assert registry.problems == []
    return registry


@pytest.fixture
def process_state(monkeypatch):
    """Let a test configure the process-wide folders and default registry, then put them back."""
    from graphflow import folders as folders_module, registry as registry_module

    saved = dict(folders_module.folders.__dict__)
    monkeypatch.setattr(registry_module, "_default", None)
    monkeypatch.delenv("GRAPHFLOW_PLUGINS", raising=False)
    yield
    folders_module.folders.__dict__.update(saved)


def problems_by_plugin(registry):
    return {p["plugin"]: p for p in registry.problems}


def shown_pixels(result, node_id):
    return torch.tensor(json.loads(result.outputs[node_id]["text"][0]))


# --- discovery -----------------------------------------------------------------------------

def test_example_plugins_load_from_a_folder(registry):
    loaded = load_plugins(registry, [EXAMPLES], entry_points=False)
    assert registry.problems == []
    assert [(p["name"], p["origin"], sorted(p["nodes"])) for p in loaded] == [
        ("color_palette", "folder", ["ApplyPalette", "ExtractPalette", "PresetPalette"]),
        ("sepia", "folder", ["Sepia"]),
    ]
    assert registry.plugins == loaded
    catalogue = registry.catalogue()
    assert catalogue["nodes"]["Sepia"]["source"] == "sepia"
    assert catalogue["nodes"]["ApplyPalette"]["source"] == "color_palette"
    assert catalogue["nodes"]["IntValue"]["source"] == "builtin"
    assert catalogue["sockets"]["PALETTE"]["color"] == "#f06292"
    palette_input = catalogue["nodes"]["ApplyPalette"]["inputs"][1]
    assert palette_input == {"name": "palette", "type": "PALETTE", "required": True}
    assert catalogue["nodes"]["PresetPalette"]["inputs"][0]["options"] == ["gameboy", "grayscale-4", "cga", "pico-8"]
    # The package's submodules live under the plugin's private module name.
    assert registry.get("ApplyPalette").__module__ == "graphflow_plugins.color_palette.nodes"


def test_default_folder_flag_and_environment_plugins_show_in_the_cli(process_state, tmp_path, monkeypatch, capsys):
    home, env_dir, flag_dir = tmp_path / "home", tmp_path / "from_env", tmp_path / "from_flag"
    for folder, name in [(home / "plugins", "at_home"), (env_dir, "from_env"), (flag_dir, "from_flag")]:
        node = "".join(part.title() for part in name.split("_"))
        write(folder, f"{name}.py", f'''
            from graphflow.api import Node, STRING
            class {node}(Node):
                """Made by the {name} plugin."""
                category = "plugged"
                outputs = {{"text": STRING}}
                def run(self):
                    return "{name}"
        ''')
    write(flag_dir, "broken.py", "def oops(:\n")
    monkeypatch.setenv("GRAPHFLOW_HOME", str(home))
    monkeypatch.setenv("GRAPHFLOW_PLUGINS", str(env_dir))

    assert cli.main(["nodes", "--plugins-dir", str(flag_dir)]) == 0
    out, err = capsys.readouterr()
    assert re.search(r"AtHome +Made by the at_home plugin\. \[at_home\]", out)
    assert re.search(r"FromEnv +Made by the from_env plugin\. \[from_env\]", out)
    assert re.search(r"FromFlag +Made by the from_flag plugin\. \[from_flag\]", out)
    assert "IntValue" in out and "[builtin]" not in out
    assert f"problem: plugin 'broken' ({flag_dir / 'broken.py'}) skipped: syntax error at {flag_dir / 'broken.py'}:1" in err

    assert cli.main(["nodes", "--json", "--plugins-dir", str(flag_dir)]) == 0
    catalogue = json.loads(capsys.readouterr().out)
    assert catalogue["nodes"]["FromFlag"]["source"] == "from_flag"
    assert [(p["plugin"], p["kind"]) for p in catalogue["problems"]] == [("broken", "syntax")]


def test_the_tutorial_workflows_run_with_the_example_plugins(process_state, tmp_path, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.setenv("GRAPHFLOW_HOME", str(tmp_path))
    (tmp_path / "in").mkdir()
    ramp = torch.stack(torch.meshgrid(torch.linspace(0, 1, 24), torch.linspace(0, 1, 32), indexing="ij"), -1)
    pixels = torch.cat([ramp, 1 - ramp[..., :1]], -1)
    Image.fromarray((pixels * 255).round().byte().numpy()).save(tmp_path / "in" / "photo.png")
    workflows = re.findall(r"```json\n(.*?)```", (REPO / "docs" / "plugins.md").read_text(), flags=re.S)
    assert len(workflows) == 2
    for i, text in enumerate(workflows):
        path = tmp_path / f"tutorial{i}.json"
        path.write_text(text)
        code = cli.main(["run", str(path), "--plugins-dir", str(EXAMPLES), "--input-dir", str(tmp_path / "in"),
                         "--output-dir", str(tmp_path / "out"), "--quiet"])
        assert code == 0, capsys.readouterr().err
    saved = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert saved == ["gameboy_00001_.png", "sepia_00001_.png", "six-colours_00001_.png"]
    gameboy = {(15, 56, 15), (48, 98, 48), (139, 172, 15), (155, 188, 15)}
    used = {c for _, c in Image.open(tmp_path / "out" / "gameboy_00001_.png").convert("RGB").getcolors()}
    assert used <= gameboy and len(used) >= 2
    assert len(Image.open(tmp_path / "out" / "six-colours_00001_.png").convert("RGB").getcolors()) <= 6
    def rgb(path):
        return torch.tensor(np.asarray(Image.open(path).convert("RGB")), dtype=torch.float32).reshape(-1, 3) / 255

    photo = rgb(tmp_path / "in" / "photo.png")
    sepia = (photo @ torch.tensor([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]]).T).clamp(0, 1)
    toned = rgb(tmp_path / "out" / "sepia_00001_.png")
    assert (toned - (0.2 * photo + 0.8 * sepia)).abs().max() <= 1 / 255  # strength 0.8, to 8-bit rounding


def test_missing_named_plugin_folder_is_reported(registry, tmp_path):
    load_plugins(registry, [tmp_path / "nowhere"], entry_points=False)
    (problem,) = registry.problems
    assert problem["kind"] == "folder" and f"plugin folder {tmp_path / 'nowhere'} does not exist" in problem["message"]


def test_entry_point_plugins_load_and_bad_ones_are_reported(registry, tmp_path, monkeypatch):
    site = tmp_path / "site"
    write(site, "graphflow_ep_demo/__init__.py", "NOT_A_MODULE = 3\n")
    write(site, "graphflow_ep_demo/nodes.py", '''
        from graphflow.api import Node, STRING, Text, socket_type
        GREETING = socket_type("GREETING", "#abcdef")

        class Greet(Node):
            """Say hello."""
            name: str = Text("world")
            outputs = {"greeting": GREETING}
            def run(self):
                return f"hello {self.name}"
    ''')
    write(site, "graphflow_ep_demo-0.1.dist-info/METADATA",
          "Metadata-Version: 2.1\nName: graphflow-ep-demo\nVersion: 0.1\n")
    write(site, "graphflow_ep_demo-0.1.dist-info/entry_points.txt", """
        [graphflow.nodes]
        demo = graphflow_ep_demo.nodes
        gone = graphflow_ep_demo.missing
        value = graphflow_ep_demo:NOT_A_MODULE
    """)
    monkeypatch.syspath_prepend(str(site))
    try:
        loaded = load_plugins(registry, [], entry_points=True)
    finally:
        for name in [m for m in sys.modules if m.startswith("graphflow_ep_demo")]:
            del sys.modules[name]
    assert [(p["name"], p["origin"], p["nodes"]) for p in loaded] == [("demo", "entry_point", ["Greet"])]
    assert registry.source("Greet") == "demo" and "GREETING" in registry.catalogue()["sockets"]
    problems = problems_by_plugin(registry)
    assert set(problems) == {"gone", "value"}
    assert problems["gone"]["kind"] == "dependency" and "graphflow_ep_demo.missing" in problems["gone"]["message"]
    assert "distribution graphflow-ep-demo" in problems["gone"]["file"]
    assert problems["value"]["kind"] == "layout" and "must name a module" in problems["value"]["message"]


# --- isolation ---------------------------------------------------------------------------

def test_broken_plugins_are_skipped_with_a_reason_and_the_others_load(registry, tmp_path):
    folder = tmp_path / "plugins"
    write(folder, "good.py", '''
        from graphflow.api import Node, STRING
        class Good(Node):
            outputs = {"text": STRING}
            def run(self):
                return "fine"
    ''')
    write(folder, "syntax_error.py", '''
        from graphflow.api import Node

        class Oops(Node:
            pass
    ''')
    write(folder, "needs_dependency.py", '''
        from graphflow.api import Node
        import graphflow_no_such_dependency
    ''')
    write(folder, "bad_declaration.py", '''
        from graphflow.api import Node, STRING

        class Bad(Node):
            sizes: list = [1, 2]
            outputs = {"text": STRING}
            def run(self):
                return ""
    ''')
    write(folder, "raises.py", '''
        from graphflow.api import Node, socket_type
        EXPLODED = socket_type("EXPLODED")

        class Exploded(Node):
            outputs = {"x": EXPLODED}
            def run(self):
                return 1

        raise RuntimeError("plugin exploded\\nsecond line")
    ''')
    write(folder, "exits.py", "import sys\nsys.exit(3)\n")
    write(folder, "empty.py", "from graphflow.api import Node\n\nclass Base(Node):\n    pass\n")
    write(folder, "half_clash.py", '''
        from graphflow.api import Node, INT
        class UniqueOne(Node):
            outputs = {"x": INT}
            def run(self):
                return 1
        class IntValue(Node):
            outputs = {"x": INT}
            def run(self):
                return 2
    ''')
    write(folder, "twice.py", '''
        from graphflow.api import Node, INT
        class A(Node):
            node_type = "Same"
            outputs = {"x": INT}
            def run(self):
                return 1
        class B(A):
            node_type = "Same"
    ''')
    (folder / "no_init").mkdir()
    write(folder / "no_init", "nodes.py", "")
    write(folder, "_private_helper.py", "this is not python")
    (folder / "README.txt").write_text("not a plugin")

    loaded = load_plugins(registry, [folder], entry_points=False)
    assert [(p["name"], p["nodes"]) for p in loaded] == [("good", ["Good"]), ("half_clash", ["UniqueOne"])]
    assert registry.source("Good") == "good"

    problems = problems_by_plugin(registry)
    kinds = {name: p["kind"] for name, p in problems.items()}
    assert kinds == {"syntax_error": "syntax", "needs_dependency": "dependency", "bad_declaration": "declaration",
                     "raises": "error", "exits": "error", "empty": "empty", "half_clash": "clash",
                     "twice": "clash", "no_init": "layout"}
    for name, problem in problems.items():
        assert problem["message"].startswith(f"plugin '{name}' ("), problem
        assert "\n" not in problem["message"]
        assert problem["file"].startswith(str(folder / name))

    syntax = problems["syntax_error"]
    assert syntax["location"] == f"{folder / 'syntax_error.py'}:4" and "syntax error at" in syntax["message"]
    dependency = problems["needs_dependency"]
    assert "missing dependency: no module named 'graphflow_no_such_dependency'" in dependency["message"]
    assert dependency["location"] == f"{folder / 'needs_dependency.py'}:3"
    declaration = problems["bad_declaration"]
    assert "bad node declaration: node Bad: input 'sizes'" in declaration["message"]
    assert declaration["location"] == f"{folder / 'bad_declaration.py'}:4"
    assert "RuntimeError while loading: plugin exploded (at" in problems["raises"]["message"]
    assert "Traceback" in problems["raises"]["traceback"]
    assert "SystemExit while loading: 3" in problems["exits"]["message"]
    assert "defines no nodes" in problems["empty"]["message"]
    # a clash skips the clashing node only: the plugin's other node loads (issue 17)
    assert ("node IntValue skipped: node type 'IntValue' is already defined by the built-in nodes; the built-in "
            "one is kept; the plugin's other nodes load") in problems["half_clash"]["message"]
    assert registry.source("UniqueOne") == "half_clash"
    assert "defines node type 'Same' twice" in problems["twice"]["message"]
    assert "add an __init__.py" in problems["no_init"]["message"]

    # All or nothing: nothing from a skipped plugin stays, not even its socket types or modules.
    for node_type in ("Oops", "Bad", "Exploded", "Same"):
        assert node_type not in registry
    assert registry.source("IntValue") == "builtin"
    assert "EXPLODED" not in SOCKET_TYPES
    assert "graphflow_plugins.raises" not in sys.modules
    assert registry.catalogue()["problems"] == registry.problems


def test_two_plugins_with_the_same_node_type_first_one_wins(registry, tmp_path):
    blur = '''
        from graphflow.api import Node, STRING
        class Blur(Node):
            outputs = {"text": STRING}
            def run(self):
                return "%s"
    '''
    first, second = tmp_path / "first", tmp_path / "second"
    write(first, "a_blur.py", blur % "a")
    write(first, "b_blur.py", blur % "b")
    write(second, "a_blur.py", blur % "other folder")
    load_plugins(registry, [first, second, first], entry_points=False)  # a folder named twice is read once
    assert registry.source("Blur") == "a_blur"
    problems = registry.problems
    assert [(p["plugin"], p["kind"]) for p in problems] == [("b_blur", "clash"), ("a_blur", "clash")]
    assert ("node type 'Blur' is already defined by plugin 'a_blur'; the one from plugin 'a_blur' is kept"
            in problems[0]["message"])
    assert f"the plugin name is taken by {first / 'a_blur.py'}" in problems[1]["message"]
    assert problems[1]["file"] == str(second / "a_blur.py")


def test_a_comfy_alias_already_taken_is_reported_but_the_plugin_loads(registry, tmp_path):
    write(tmp_path / "plugins", "my_text.py", '''
        from graphflow.api import ComfyAlias, Node, STRING
        class MyPrimitive(Node):
            outputs = {"text": STRING}
            comfy = ComfyAlias(("MyOwnComfyName", "TakenComfyName"))
            def run(self):
                return "mine"
    ''')
    from graphflow.api import ComfyAlias, Node, STRING

    class Claimer(Node):
        """A built-in node claiming the ComfyUI name first."""
        outputs = {"text": STRING}
        comfy = ComfyAlias(("TakenComfyName",))

        def run(self):
            return "built in"

    registry.add(Claimer)
    load_plugins(registry, [tmp_path / "plugins"], entry_points=False)
    assert registry.source("MyPrimitive") == "my_text"
    assert registry.comfy_node("MyOwnComfyName").node_type == "MyPrimitive"
    assert registry.comfy_node("TakenComfyName") is Claimer
    (problem,) = registry.problems
    assert problem["kind"] == "clash" and problem["plugin"] == "my_text"
    assert "ComfyUI class 'TakenComfyName' already maps to Claimer from builtin, which is kept" in problem["message"]


def test_plugin_modules_are_private_and_register_only_their_own_nodes(registry, tmp_path):
    folder = tmp_path / "plugins"
    for name in ("one", "two"):
        write(folder, f"{name}/__init__.py", "from .nodes import *\n")
        write(folder, f"{name}/nodes.py", f'''
            from graphflow.api import Node, STRING
            __all__ = ["{name.title()}"]
            class {name.title()}(Node):
                outputs = {{"text": STRING}}
                def run(self):
                    return "{name}"
        ''')
    write(folder, "json.py", '''
        from graphflow.api import Node, INT
        from nodes.primitives import IntValue  # a built-in, imported: not registered again

        class BiggerInt(IntValue):
            """Inherits run() from the built-in node."""

        class _Helper(Node):
            outputs = {"x": INT}
            def run(self):
                return 0
    ''')
    loaded = load_plugins(registry, [folder], entry_points=False)
    assert registry.problems == []
    assert {p["name"]: p["nodes"] for p in loaded} == {"json": ["BiggerInt"], "one": ["One"], "two": ["Two"]}
    assert registry.get("One").__module__ == "graphflow_plugins.one.nodes"
    assert registry.get("Two").__module__ == "graphflow_plugins.two.nodes"
    import json as stdlib_json  # a plugin file named json.py shadows nothing

    assert stdlib_json.dumps([1]) == "[1]" and "_Helper" not in registry


def test_reloading_imports_the_plugin_afresh(registry, tmp_path):
    folder = tmp_path / "plugins"
    code = '''
        from graphflow.api import Node, STRING
        class Edited(Node):
            outputs = {"text": STRING}
            def run(self):
                return "%s"
    '''
    write(folder, "edited.py", code % "before")
    load_plugins(registry, [folder], entry_points=False)
    write(folder, "edited.py", code % "after!")  # same size, so only the content tells them apart
    again = Registry()
    load_plugins(again, [folder], entry_points=False)
    assert registry.get("Edited")().run() == "before" and again.get("Edited")().run() == "after!"


def test_reloading_a_package_plugin_imports_its_edited_submodule_afresh(registry, tmp_path, monkeypatch):
    # with bytecode written (Python's default; the suite's environment may turn it off), a .pyc
    # trusted by mtime and size would run the old submodule after an edit of the same length
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    folder = tmp_path / "plugins"
    write(folder, "pack/__init__.py", """
        from .part import Edited
    """)
    code = """
        from graphflow.api import Node, STRING
        class Edited(Node):
            outputs = {"text": STRING}
            def run(self):
                return "%s"
    """
    write(folder, "pack/part.py", code % "before")
    load_plugins(registry, [folder], entry_points=False)
    write(folder, "pack/part.py", code % "after!")
    again = Registry()
    load_plugins(again, [folder], entry_points=False)
    assert registry.get("Edited")().run() == "before" and again.get("Edited")().run() == "after!"
    assert not list(folder.rglob("*.pyc"))  # nothing cached beside the user's files either


# --- running -----------------------------------------------------------------------------

def sepia_workflow(strength):
    return parse_workflow({"nodes": {
        "1": {"type": "Gradient", "inputs": {"width": 5}},
        "2": {"type": "Sepia", "inputs": {"image": ["1", 0], "strength": strength}},
        "3": {"type": "ShowPixels", "inputs": {"image": ["2", 0]}},
    }})


def test_plugin_node_runs_in_a_workflow_and_caches_like_a_builtin(loaded):
    kit = sys.modules[loaded.get("Gradient").__module__]
    executor = Executor(loaded)
    first = executor.run(sepia_workflow(1.0))
    assert first.ok, first.error
    source = torch.stack([torch.linspace(0, 1, 5), torch.full((5,), 0.4), torch.full((5,), 0.7)], -1)
    r, g, b = source.unbind(-1)
    expected = torch.stack([0.393 * r + 0.769 * g + 0.189 * b,
                            0.349 * r + 0.686 * g + 0.168 * b,
                            0.272 * r + 0.534 * g + 0.131 * b], -1).clamp(0, 1)
    pixels = shown_pixels(first, "3")
    assert pixels.shape == (1, 4, 5, 3)
    torch.testing.assert_close(pixels[0, 2], expected, atol=1e-6, rtol=0)
    assert kit.runs == ["Gradient", "ShowPixels"]

    again = executor.run(sepia_workflow(1.0))
    assert sorted(again.cached) == ["1", "2", "3"] and again.executed == []
    assert again.outputs == first.outputs and kit.runs == ["Gradient", "ShowPixels"]

    half = executor.run(sepia_workflow(0.5))
    assert half.cached == ["1"] and sorted(half.executed) == ["2", "3"]
    torch.testing.assert_close(shown_pixels(half, "3")[0, 0], (source + expected) / 2, atol=1e-6, rtol=0)


def test_plugin_socket_type_links_two_plugin_nodes(loaded):
    result = Executor(loaded).run(parse_workflow({"nodes": {
        "1": {"type": "Gradient", "inputs": {"width": 16}},
        "2": {"type": "ExtractPalette", "inputs": {"image": ["1", 0], "colors": 3}},
        "3": {"type": "ApplyPalette", "inputs": {"image": ["1", 0], "palette": ["2", "palette"]}},
        "4": {"type": "ShowPixels", "inputs": {"image": ["3", 0]}},
        "5": {"type": "PresetPalette", "inputs": {"name": "gameboy"}},
        "6": {"type": "ApplyPalette", "inputs": {"image": ["1", 0], "palette": ["5", 0], "dither": "ordered"}},
        "7": {"type": "ShowPixels", "inputs": {"image": ["6", 0]}},
    }}))
    assert result.ok, result.error
    three = shown_pixels(result, "4").reshape(-1, 3).unique(dim=0)
    assert len(three) == 3
    # Only green and blue are constant: the three colours differ in red, spread over the ramp.
    assert torch.allclose(three[:, 1:], torch.tensor([0.4, 0.7]).expand(3, 2), atol=1e-6)
    assert three[:, 0].min() < 0.25 and three[:, 0].max() > 0.75
    gameboy = torch.tensor([[15, 56, 15], [48, 98, 48], [139, 172, 15], [155, 188, 15]]) / 255
    used = shown_pixels(result, "7").reshape(-1, 3).unique(dim=0)
    assert all(torch.isclose(gameboy, colour, atol=1e-6).all(1).any() for colour in used)

    # A PALETTE output doesn't fit an IMAGE input: validation names both types.
    problems = validate(parse_workflow({"nodes": {
        "1": {"type": "PresetPalette"}, "2": {"type": "ShowPixels", "inputs": {"image": ["1", 0]}}}}), loaded)
    assert [p.message for p in problems] == [
        "expected a link of type IMAGE, but output 0 of node 1 (PresetPalette) is PALETTE"]


def test_run_time_failure_fails_only_that_run_and_names_the_plugin(registry, tmp_path):
    write(tmp_path / "plugins", "flaky.py", '''
        from graphflow.api import Node, Bool, STRING, show
        class Flaky(Node):
            output_node = True
            fail: bool = Bool(True)
            def run(self):
                if self.fail:
                    raise ValueError("flaky plugin gave up")
                show(text=["ok"])
    ''')
    load_plugins(registry, [tmp_path / "plugins"], entry_points=False)
    executor = Executor(registry)
    failed = executor.run(parse_workflow({"nodes": {"1": {"type": "Flaky"}}}))
    assert failed.status == "error"
    assert (failed.error["node_type"], failed.error["source"]) == ("Flaky", "flaky")
    assert failed.error["message"] == "flaky plugin gave up" and "flaky.py" in failed.error["traceback"]
    fine = executor.run(parse_workflow({"nodes": {"1": {"type": "Flaky", "inputs": {"fail": False}}}}))
    assert fine.ok and fine.outputs == {"1": {"text": ["ok"]}}


def test_workflow_saved_with_an_older_plugin_node_version(loaded):
    def workflow(dither, version):
        return parse_workflow({"nodes": {
            "b": {"type": "BoolValue", "inputs": {"value": True}},
            "1": {"type": "Gradient", "inputs": {"width": 12}},
            "2": {"type": "PresetPalette", "inputs": {"name": "grayscale-4"}},
            "3": {"type": "ApplyPalette", "version": version,
                  "inputs": {"image": ["1", 0], "palette": ["2", 0], "dither": dither}},
            "4": {"type": "ShowPixels", "inputs": {"image": ["3", 0]}},
        }})

    executor = Executor(loaded)
    upgraded = executor.run(workflow(True, 1))  # version 1: dither was a yes/no switch
    current = executor.run(workflow("ordered", 2))
    assert upgraded.ok and current.ok
    assert upgraded.outputs == current.outputs
    assert upgraded.outputs != executor.run(workflow(False, 1)).outputs

    (problem,) = validate(workflow(["b", 0], 1), loaded)  # a linked switch can't be upgraded
    assert (problem.node_id, problem.node_type) == ("3", "ApplyPalette")
    assert "saved with version 1" in problem.message and "needs updating" in problem.message
    (problem,) = validate(workflow("none", 3), loaded)
    assert "newer than the installed version 2" in problem.message


# --- the example plugins' own behaviour ---------------------------------------------------------

def test_sepia_example(loaded):
    Sepia = loaded.get("Sepia")
    image = torch.rand(2, 3, 4, 3)
    node = Sepia.__new__(Sepia)
    node.image, node.strength = image, 0.0
    torch.testing.assert_close(node.run(), image)
    node.strength = 1.0
    white = torch.ones(1, 1, 1, 3)
    node.image = white
    torch.testing.assert_close(node.run(), torch.tensor([[[[1.0, 1.0, 0.937]]]]))  # R, G saturate


def test_color_palette_example(loaded):
    palette = sys.modules["graphflow_plugins.color_palette.palette"]
    image = torch.zeros(1, 6, 10, 3)
    image[:, :, :5] = torch.tensor([1.0, 0, 0])  # half red
    image[:, :, 5:8] = torch.tensor([0, 1.0, 0])  # 30% green
    image[:, :, 8:] = torch.tensor([0, 0, 1.0])  # 20% blue
    by_brightness = palette.extract_palette(image, 3, "luminance")
    torch.testing.assert_close(by_brightness, torch.tensor([[0, 0, 1.0], [1.0, 0, 0], [0, 1.0, 0]]))
    by_count = palette.extract_palette(image, 8, "frequency")  # more clusters than colours: empty ones go
    torch.testing.assert_close(by_count, torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]))

    greys = palette.from_hex(palette.PRESETS["grayscale-4"])
    torch.testing.assert_close(greys[:, 0], torch.tensor([0, 1 / 3, 2 / 3, 1]))
    flat = torch.full((1, 8, 8, 3), 0.45)
    plain = palette.nearest_colors(flat, greys)
    dithered = palette.ordered_dither(flat, greys)
    assert torch.all(plain == 1 / 3)
    assert set(dithered.unique().tolist()) == {greys[1, 0].item(), greys[2, 0].item()}
    assert abs(dithered.mean() - 0.45) < abs(plain.mean() - 0.45) / 5  # the mix averages to the tone


def test_docs_show_the_example_plugins_as_they_are():
    """Code blocks in docs/plugins.md that start with `# examples/plugins/...` are taken
    verbatim from those files, so the tutorial can't drift from the tested code."""
    text = (REPO / "docs" / "plugins.md").read_text()
    blocks = re.findall(r"```python\n# (examples/plugins/\S+)\n(.*?)```", text, flags=re.S)
    shown = {path for path, _ in blocks}
    assert shown == {"examples/plugins/sepia.py", "examples/plugins/color_palette/__init__.py",
                     "examples/plugins/color_palette/palette.py", "examples/plugins/color_palette/nodes.py"}
    for path, code in blocks:
        assert code in (REPO / path).read_text(), f"docs/plugins.md shows an outdated {path}"


# --- the server ------------------------------------------------------------------------

async def test_server_catalogue_system_and_runs_with_plugins(registry, tmp_path, process_state, aiohttp_client):
    import asyncio

    from graphflow.folders import configure
    from graphflow.server.app import create_app

    configure(home=tmp_path)
    kit = tmp_path / "kit"
    write(kit, "testkit.py", TESTKIT)
    write(kit, "broken.py", "import graphflow_no_such_dependency\n")
    write(kit, "flaky.py", '''
        from graphflow.api import Node, IMAGE
        class Flaky(Node):
            output_node = True
            image: IMAGE
            def run(self):
                raise RuntimeError("flaky plugin gave up")
    ''')
    load_plugins(registry, [EXAMPLES, kit], entry_points=False)
    client = await aiohttp_client(create_app(registry, tmp_path / "runs.db", web_dir=None))

    catalogue = await (await client.get("/api/nodes")).json()
    assert catalogue["nodes"]["Sepia"]["source"] == "sepia"
    assert catalogue["nodes"]["ApplyPalette"]["version"] == 2
    assert catalogue["sockets"]["PALETTE"]["color"] == "#f06292"
    assert [(p["plugin"], p["kind"]) for p in catalogue["problems"]] == [("broken", "dependency")]
    system = await (await client.get("/api/system")).json()
    assert [p["plugin"] for p in system["problems"]] == ["broken"]

    async def finish(workflow):
        response = await client.post("/api/runs", json={"workflow": workflow})
        assert response.status == 200, await response.text()
        run_id = (await response.json())["run_id"]
        for _ in range(2000):
            record = await (await client.get(f"/api/history/{run_id}")).json()
            if record["status"] in ("success", "error", "invalid", "interrupted"):
                return record
            await asyncio.sleep(0.01)
        raise AssertionError(f"run {run_id} did not finish")

    failed = await finish({"nodes": {"1": {"type": "Gradient"}, "2": {"type": "Flaky", "inputs": {"image": ["1", 0]}}}})
    assert failed["status"] == "error"
    assert (failed["error"]["node_type"], failed["error"]["source"]) == ("Flaky", "flaky")
    done = await finish(sepia_workflow(1.0).to_json())  # the server carries on after a plugin failed
    assert done["status"] == "success", done
    pixels = torch.tensor(json.loads(done["outputs"]["3"]["text"][0]))
    local = Executor(registry).run(sepia_workflow(1.0))  # the same run in this process
    assert done["outputs"] == local.outputs and pixels.shape == (1, 4, 5, 3)
    assert torch.all((pixels[..., 0] >= pixels[..., 1]) & (pixels[..., 1] > pixels[..., 2]))  # toned warm
