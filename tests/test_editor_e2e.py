"""The browser editor end to end: Debian's headless Chromium, driven by Playwright, against a
real server on 127.0.0.1. Graphs are built through the UI alone (menus, drags, widgets).

Needs the `chromium` package (apt) and the `playwright` Python package; no browser download.
"""

import asyncio
import base64
import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest
import torch
from PIL import Image

from graphflow import folders as folders_module
from graphflow.api import IMAGE, Int, Node, progress
from graphflow.registry import Registry
from graphflow.validation import WIDGET_LINK_TYPES

import toy_nodes
from headless_chromium import (
    CHROMIUM, CHROMIUM_ARGS, _browser_processes, hung_browser_watchdog, normal_scheduling)

WEB = Path(__file__).resolve().parents[1] / "web"
TIMEOUT_MS = 30_000  # an upper bound; every wait ends on a condition
CHECKPOINT = "tiny-sd1.safetensors"


# --- nodes for the tests -------------------------------------------------------------------

class Swatch(Node):
    """A solid-colour image."""
    category = "test"
    width: int = Int(24, min=1, max=256)
    height: int = Int(16, min=1, max=256)
    red: int = Int(200, min=0, max=255)
    outputs = {"image": IMAGE}

    def run(self):
        image = torch.zeros(1, self.height, self.width, 3)
        image[..., 0] = self.red / 255
        image[..., 2] = 0.5
        return image


class Develop(Node):
    """Passes an image on over `steps` steps with a preview at each; waits at step 2 while `gate` is closed."""
    category = "test"
    image: IMAGE
    steps: int = Int(4, min=1, max=50)
    outputs = {"image": IMAGE}
    gate: ClassVar[threading.Event] = threading.Event()

    def run(self):
        from graphflow.api import check_interrupted

        for i in range(1, self.steps + 1):
            preview = Image.new("RGB", (16, 16), (40 * i % 256, 120, 200))
            progress(i, self.steps, preview=preview)
            while i == 2 and not Develop.gate.wait(0.01):
                check_interrupted()
        return self.image


class Seeded(Node):
    """Shows its seed (for the seed widget's control after generate), plainly and as a named entry
    (comfyui-tooling-nodes' KritaSendText shows its text so)."""
    category = "test"
    output_node = True
    seed: int = Int(0, min=0, max=2**32)

    def run(self):
        from graphflow.api import show

        show(text=[str(self.seed), {"name": "seed", "text": str(self.seed), "content-type": "text/plain"}])


TEST_NODES = [Seeded, Swatch, Develop, toy_nodes.Number, toy_nodes.Fail, toy_nodes.Show, toy_nodes.Add]


# --- fixtures --------------------------------------------------------------------------------

@functools.cache
def editor_registry() -> Registry:
    """The built-in nodes plus the test nodes, built once per process (loading the built-ins takes
    seconds): the servers of both editor test modules read it and none changes it."""
    registry = Registry().load_builtin()
    for cls in TEST_NODES:
        registry.add(cls, source="tests")
    return registry


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server (built-in nodes plus the test nodes) on 127.0.0.1, an ephemeral port,
    its event loop in a thread."""
    from aiohttp import web

    from graphflow.server.app import create_app
    from graphflow.testing import write_checkpoint

    home = tmp_path_factory.mktemp("editor")
    saved = dict(folders_module.folders.__dict__)
    folders_module.configure(home=home)
    (folders_module.folders.models / "checkpoints").mkdir(parents=True)
    write_checkpoint(folders_module.folders.models / "checkpoints" / CHECKPOINT, "sd1")
    registry = editor_registry()
    Develop.gate.set()

    # The server gets its own thread and loop (Playwright's sync API holds this thread's loop).
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(create_app(registry, home / "history.db", web_dir=WEB), access_log=None)
    started = threading.Event()
    failure = []

    def serve():
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
        except BaseException as e:  # reported on the test thread
            failure.append(e)
            return
        finally:
            started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="editor-test-server", daemon=True)
    thread.start()
    started.wait(60)
    if failure:
        raise failure[0]
    port = runner.addresses[0][1]
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}/", home=home, registry=registry)
    finally:
        Develop.gate.set()
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        folders_module.folders.__dict__.update(saved)


@pytest.fixture(autouse=True)
def time_limit(request):
    with hung_browser_watchdog(request.node.name):
        yield


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    normal_scheduling()  # before Playwright starts its driver (see normal_scheduling)

    assert Path(CHROMIUM).exists(), (
        f"Chromium not found at {CHROMIUM}: install Debian's package (apt-get install -y chromium) "
        "or set GRAPHFLOW_CHROMIUM")
    with sync_playwright() as p:
        # launch() gives every run a fresh temporary profile (user-data dir).
        with hung_browser_watchdog("launching Chromium"):
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                                        timeout=TIMEOUT_MS)
        yield browser
        with hung_browser_watchdog("closing Chromium", limit_s=60):
            browser.close()


@contextlib.contextmanager
def editor_page(browser, server):
    """The editor in a fresh browser context (its own storage), on an empty canvas; its JavaScript
    errors are collected in page.errors."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.accept_dialogs = lambda dialog: dialog.accept()  # "discard unsaved changes?": yes, unless a test asks
    page.on("dialog", page.accept_dialogs)
    page.goto(server.url)
    wait_ready(page)
    page.locator("#btn-new").click()  # start from an empty canvas
    expect_nodes(page, 0)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def page(browser, server):
    with editor_page(browser, server) as page:
        yield page
    assert not page.errors, f"JavaScript errors in the page: {page.errors}"


# --- helpers: the UI as a user drives it -----------------------------------------------------

def wait_ready(page):
    page.wait_for_function("document.body.classList.contains('ready')")
    page.wait_for_selector("#connection.connected")


def expect_nodes(page, count):
    page.wait_for_function(f"document.querySelectorAll('#nodes .node').length === {count}")


def node(page, node_id):
    return page.locator(f'.node[data-node-id="{node_id}"]')


def add_node(page, node_type, x, y, search=None):
    """Double-click the canvas at (x, y), search the menu, pick `node_type`; returns the new id."""
    before = set(page.eval_on_selector_all("#nodes .node", "ns => ns.map(n => n.dataset.nodeId)"))
    page.mouse.dblclick(x, y)
    page.wait_for_selector(".node-menu")
    # one input event for the whole name (a paste): typing it key by key re-renders the ~2000-node
    # list at each key, and the search is tested key by key in test_node_search_*
    page.keyboard.insert_text(search or node_type)
    page.locator(f'.node-menu .menu-item[data-node-type="{node_type}"]').click()
    page.wait_for_function(f"document.querySelectorAll('#nodes .node').length === {len(before) + 1}")
    after = set(page.eval_on_selector_all("#nodes .node", "ns => ns.map(n => n.dataset.nodeId)"))
    (new_id,) = after - before
    assert node(page, new_id).get_attribute("data-node-type") == node_type
    return new_id


def centre(locator):
    box = locator.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def drag(page, source, target):
    page.mouse.move(*centre(source))
    page.mouse.down()
    x, y = centre(target)
    page.mouse.move(x, y, steps=8)
    page.mouse.up()


def link(page, src, output, dst, input_name):
    drag(page, node(page, src).locator(f'[data-output="{output}"] .socket'),
         node(page, dst).locator(f'[data-input="{input_name}"] .socket'))
    page.wait_for_selector(f'#links g.link[data-link-dst="{dst}"][data-link-input="{input_name}"]', state="attached")


def set_number(page, node_id, name, value):
    """Type `value` into a number widget; returns what the widget shows after Enter."""
    field = node(page, node_id).locator(f'[data-input="{name}"] input.w-value')
    field.fill(str(value))
    field.press("Enter")
    return field.input_value()


def swatch_develop_save(page, fresh_red):
    """Swatch -> Develop -> SaveImage, left to right; Swatch's red is set to `fresh_red` plus a
    value from the clock, one no earlier test's run used, so that Develop runs for real."""
    swatch = add_node(page, "Swatch", 150, 200)
    develop = add_node(page, "Develop", 500, 200)
    save = add_node(page, "SaveImage", 850, 200, search="saveimage")
    link(page, swatch, "image", develop, "image")
    link(page, develop, "image", save, "images")
    set_number(page, swatch, "red", int(time.time() * 1000) % 200 + fresh_red)
    return swatch, develop, save


def set_text(page, node_id, name, value):
    field = node(page, node_id).locator(f'[data-input="{name}"] .w-value')
    field.fill(value)
    field.blur()


def workflow(page):
    return page.evaluate("graphflow.editor.workflow()")


def queue(page):
    page.locator("#btn-queue").click()


def wait_image(page, node_id):
    """The output image on node `node_id`, once loaded; returns (width, height)."""
    img = node(page, node_id).locator("img.output-image").first
    img.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    return img.evaluate("img => [img.naturalWidth, img.naturalHeight]")


def api(page, path):
    return page.evaluate("path => fetch(path).then(r => r.json())", path)


def last_run(page):
    return api(page, "/api/history?limit=1")["items"][0]


# --- tests -----------------------------------------------------------------------------------

def test_a_hung_browser_call_fails_instead_of_waiting():
    """The watchdog ends a Playwright call that would wait for ever (a promise that never settles,
    no timeout): it kills the browser and the call raises. In a process of its own, so as not to
    kill this module's browser."""
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(WEB.parent)!r}]
        from playwright.sync_api import sync_playwright
        from headless_chromium import CHROMIUM, CHROMIUM_ARGS, hung_browser_watchdog

        with sync_playwright() as p:
            page = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS).new_page()
            with hung_browser_watchdog("the endless call", limit_s=3):
                page.evaluate("new Promise(() => {{}})")  # evaluate has no timeout
    """)
    started = time.monotonic()
    normal_scheduling()  # the child, its driver and its Chromium inherit it
    # a session of its own: on a timeout the child and everything it started are killed as a group
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        _, stderr = child.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        raise
    finally:
        left = _session_browsers(child.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # whatever is left of the group
    assert child.returncode != 0
    assert "the endless call ran past 3 s: the browser was taken to hang and killed" in stderr, stderr
    assert "TargetClosedError" in stderr  # the call itself raised: the kill ended it
    assert left == [], f"Chromium or driver processes outlived the child: {left}"
    assert time.monotonic() - started < 60


def _session_browsers(session: int, wait_s: float = 10) -> list[tuple[int, str]]:
    """(pid, command) of Chromium and Playwright driver processes still in session `session`
    after up to wait_s (ones the watchdog killed go at once; their orphans are reparented, so are
    found by session, not by parent)."""
    deadline = time.monotonic() + wait_s
    while True:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                pid, rest = stat.read_text().split(" (", 1)
            except (OSError, ValueError):
                continue
            command, fields = rest.rsplit(") ", 1)
            state, _, _, sid = fields.split()[:4]
            if int(sid) == session and state != "Z" and command.startswith(("node", "chrom")):
                found.append((int(pid), command))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_normal_scheduling_leaves_a_real_time_policy():
    """A worker thread on a real-time policy is put back on SCHED_OTHER by normal_scheduling (shown in
    a child put on SCHED_FIFO first, where allowed)."""
    script = textwrap.dedent(f"""
        import os, sys
        sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(WEB.parent)!r}]
        from headless_chromium import normal_scheduling
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        except PermissionError:
            print("not allowed")
            sys.exit(0)
        before = os.sched_getscheduler(0)
        normal_scheduling()
        print(before, os.sched_getscheduler(0))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    if run.stdout.strip() == "not allowed":
        pytest.skip("this user may not set SCHED_FIFO, so a real-time worker can't be made here")
    assert run.stdout.split() == [str(os.SCHED_FIFO), str(os.SCHED_OTHER)]


def test_chromium_runs_at_normal_scheduling(browser):
    """Playwright's driver and every Chromium process the module's browser fixture started run on
    SCHED_OTHER (normal_scheduling, called there)."""
    processes = _browser_processes()
    assert processes
    policies = {}
    for pid in processes:
        with contextlib.suppress(ProcessLookupError):
            policies[pid] = os.sched_getscheduler(pid)
    assert policies and set(policies.values()) == {os.SCHED_OTHER}, policies


def test_widget_link_rules_match_the_engine():
    source = (WEB / "js" / "catalogue.js").read_text()
    table = re.search(r"export const WIDGET_LINK_TYPES = (\{.*?\});", source).group(1)
    assert {k: set(v) for k, v in json.loads(table).items()} == {k: set(v) for k, v in WIDGET_LINK_TYPES.items()}


def test_loading_and_saving_keeps_what_the_editor_does_not_know(page):
    """Unknown node types, unknown inputs, list literals and other tools' ui keys come back
    out unchanged; a link naming its output by name is resolved to the index."""
    original = {
        "version": 1,
        "nodes": {
            "1": {"type": "Swatch", "inputs": {"red": 5, "shade": {"__value__": [1, 2]}}, "version": 1},
            "2": {"type": "FromAPlugin", "inputs": {"image": ["1", "image"], "mode": "fast", "points": {"__value__": [3, 4]}}},
            "3": {"type": "SaveImage", "inputs": {"images": ["1", "image"], "filename_prefix": "x"}, "version": 1},
        },
        "ui": {"imported_from": "elsewhere", "nodes": {"1": {"pos": [0, 0], "width": 260}, "3": {"pos": [400, 0], "width": 300, "title": "Out"}}},
    }
    page.evaluate("wf => graphflow.load(wf, false)", original)
    expect_nodes(page, 3)
    saved = workflow(page)
    assert saved["nodes"]["1"] == {"type": "Swatch", "inputs": {"width": 24, "height": 16, "red": 5, "shade": {"__value__": [1, 2]}}, "version": 1}
    assert saved["nodes"]["2"] == {"type": "FromAPlugin", "inputs": {"image": ["1", 0], "mode": "fast", "points": {"__value__": [3, 4]}}}
    assert saved["nodes"]["3"]["inputs"] == {"images": ["1", 0], "filename_prefix": "x"}
    assert saved["ui"]["imported_from"] == "elsewhere"
    assert saved["ui"]["nodes"]["3"] == {"pos": [400, 0], "width": 300, "title": "Out"}
    assert saved["ui"]["nodes"]["2"]["pos"]  # placed, since it had no position
    assert "unknown node type 'FromAPlugin'" in node(page, "2").locator(".node-message").inner_text()
    assert node(page, "3").locator(".node-title").inner_text() == "Out"


def test_menu_pan_and_zoom(page):
    # The add-node menu: grouped by category, searchable, with each node's help text.
    page.mouse.dblclick(400, 300)
    menu = page.locator(".node-menu")
    menu.wait_for()
    categories = menu.locator(".menu-category").all_text_contents()
    # sorted as the browser's localeCompare sorts (packs' categories mix cases: "Efficiency Nodes")
    in_order = page.evaluate("c => [...c].sort((a, b) => a.localeCompare(b))", categories)
    assert "test" in categories and "sampling" in categories and categories == in_order
    page.keyboard.type("swatch")
    assert menu.locator(".menu-category").count() == 0
    assert menu.locator(".menu-item").first.get_attribute("data-node-type") == "Swatch"
    assert "A solid-colour image." in menu.locator(".menu-help").inner_text()
    page.keyboard.press("Escape")
    menu.wait_for(state="detached")
    swatch = add_node(page, "Swatch", 400, 300)

    # Zoom keeps the point under the pointer fixed; dragging empty canvas pans.
    header = node(page, swatch).locator(".node-header")
    x, y = centre(header)
    page.mouse.move(x, y)
    page.mouse.wheel(0, -400)
    page.wait_for_function("graphflow.editor.viewport.zoom > 1.2")
    assert centre(header) == pytest.approx((x, y), abs=2)
    assert page.locator("#zoom-indicator").inner_text() != "100%"
    before = page.evaluate("graphflow.editor.viewport.state")
    page.mouse.move(900, 700)
    page.mouse.down()
    page.mouse.move(800, 650, steps=4)
    page.mouse.up()
    page.wait_for_function("""([el, x, y]) => {
        const r = el.getBoundingClientRect();
        return Math.hypot(r.x + r.width / 2 - x, r.y + r.height / 2 - y) < 2;
    }""", arg=[header.element_handle(), x - 100, y - 50])
    after = page.evaluate("graphflow.editor.viewport.state")
    assert (after["x"] - before["x"], after["y"] - before["y"]) == (-100, -50)


def test_build_run_and_watch_progress(page, server):
    """From an empty canvas: add nodes from the menu, wire them, set widgets, queue; see the
    running node, its progress bar and live preview, then the image on the output node."""
    swatch = add_node(page, "Swatch", 150, 200)
    develop = add_node(page, "Develop", 500, 200)
    save = add_node(page, "SaveImage", 850, 200, search="save")
    link(page, swatch, "image", develop, "image")
    link(page, develop, "image", save, "images")
    set_number(page, swatch, "width", 40)
    set_number(page, swatch, "height", 30)
    set_number(page, swatch, "red", 17)
    set_number(page, develop, "steps", 5)
    set_text(page, save, "filename_prefix", "e2e_build")

    Develop.gate.clear()
    try:
        queue(page)
        node(page, develop).and_(page.locator(".running")).wait_for()
        page.wait_for_function(
            "id => document.querySelector(`.node[data-node-id='${id}'] .node-progress`).dataset.value === '2'", arg=develop)
        bar = node(page, develop).locator(".node-progress-bar")
        assert bar.evaluate("b => b.style.width") == "40%"
        node(page, develop).locator(".node-preview img").wait_for()
        assert not page.locator("#run-status").is_hidden()
    finally:
        Develop.gate.set()
    assert wait_image(page, save) == [40, 30]
    node(page, develop).and_(page.locator(".done")).wait_for()
    page.locator("#results figure.result img").first.wait_for()

    run = last_run(page)
    assert run["status"] == "success"
    (image,) = run["outputs"][save]["images"]
    assert image["filename"].startswith("e2e_build")
    pixel = Image.open(folders_module.folders.outputs / image["subfolder"] / image["filename"]).getpixel((5, 5))
    assert pixel[0] == 17  # the value typed into the widget reached the node


def test_incompatible_link_is_refused_with_a_reason(page):
    swatch = add_node(page, "Swatch", 150, 250)
    add = add_node(page, "Add", 550, 250)
    drag(page, node(page, swatch).locator('[data-output="image"] .socket'),
         node(page, add).locator('[data-input="a"] .socket'))
    note = page.locator(".link-refused")
    note.wait_for()
    assert "IMAGE" in note.inner_text() and "TOY_NUMBER" in note.inner_text()
    assert page.locator("#links g.link").count() == 0
    assert workflow(page)["nodes"][add]["inputs"] == {}

    # A compatible link into a widget input is accepted (INT into Swatch's width).
    number = add_node(page, "IntValue", 150, 600, search="intvalue")
    link(page, number, "value", swatch, "width")
    assert workflow(page)["nodes"][swatch]["inputs"]["width"] == [number, 0]
    assert node(page, swatch).locator('[data-input="width"]').get_attribute("class").count("linked") == 1


def test_errors_are_shown_on_the_nodes_they_concern(page):
    # Validation: a required link left unconnected is reported on that input, nothing is queued.
    swatch = add_node(page, "Swatch", 150, 200)
    save = add_node(page, "SaveImage", 550, 200, search="saveimage")
    queue(page)
    row = node(page, save).locator('[data-input="images"]')
    row.locator(".w-error").wait_for()
    assert "missing required input" in row.inner_text()
    assert "has-error" in node(page, save).get_attribute("class")
    assert "has-error" not in node(page, swatch).get_attribute("class")

    # A run error: the failing node and its input are marked, the others are not.
    page.locator("#btn-new").click()
    number = add_node(page, "Number", 150, 200)
    fail = add_node(page, "Fail", 500, 200)
    show = add_node(page, "Show", 850, 200)
    link(page, number, "number", fail, "x")
    link(page, fail, "x", show, "x")
    queue(page)
    node(page, fail).and_(page.locator(".failed")).wait_for()
    message = node(page, fail).locator('[data-input="x"] .w-error')
    message.wait_for()
    assert "refusing" in message.inner_text()
    assert "NodeInputError" in message.inner_text()
    assert "failed" not in node(page, number).get_attribute("class")
    assert "has-error" not in node(page, show).get_attribute("class")
    page.locator(".toast.error").filter(has_text="Fail").first.wait_for()


def test_save_reload_load_and_rerun_from_cache(page, server, tmp_path):
    swatch = add_node(page, "Swatch", 150, 200)
    save = add_node(page, "SaveImage", 550, 200, search="saveimage")
    link(page, swatch, "image", save, "images")
    red = int(time.time() * 1000) % 200 + 30  # a value no earlier run used, so the first run computes
    set_number(page, swatch, "red", red)
    queue(page)
    wait_image(page, save)
    first = last_run(page)
    assert first["status"] == "success" and swatch in api(page, f"/api/history/{first['run_id']}")["executed"]

    with page.expect_download() as download:
        page.locator("#btn-save").click()
    saved = tmp_path / "saved.json"
    download.value.save_as(saved)
    data = json.loads(saved.read_text())
    assert data["nodes"][swatch] == {"type": "Swatch", "inputs": {"width": 24, "height": 16, "red": red}, "version": 1}
    assert data["nodes"][save]["inputs"]["images"] == [swatch, 0]
    assert data["ui"]["nodes"][swatch]["pos"]

    # The last graph survives a reload.
    page.reload()
    wait_ready(page)
    expect_nodes(page, 2)
    assert workflow(page)["nodes"] == data["nodes"]

    # Load the saved file into an empty editor and run it again: everything comes from the cache.
    page.locator("#btn-new").click()
    expect_nodes(page, 0)
    page.locator("#file-open").set_input_files(str(saved))
    expect_nodes(page, 2)
    queue(page)
    node(page, swatch).and_(page.locator(".cached")).wait_for()
    node(page, save).and_(page.locator(".cached")).wait_for()
    wait_image(page, save)
    page.wait_for_function("id => graphflow.monitor.current === null", arg=first["run_id"])
    second = api(page, f"/api/history/{last_run(page)['run_id']}")
    assert second["run_id"] != first["run_id"]
    assert second["executed"] == [] and sorted(second["cached"]) == sorted([swatch, save])


def test_dropping_a_saved_png_restores_its_graph(page, server):
    swatch = add_node(page, "Swatch", 150, 200)
    save = add_node(page, "SaveImage", 550, 200, search="saveimage")
    link(page, swatch, "image", save, "images")
    set_number(page, swatch, "red", 99)
    set_text(page, save, "filename_prefix", "e2e_png")
    queue(page)
    wait_image(page, save)
    built = workflow(page)["nodes"]
    image = last_run(page)["outputs"][save]["images"][0]
    png = (folders_module.folders.outputs / image["subfolder"] / image["filename"]).read_bytes()

    page.locator("#btn-new").click()
    expect_nodes(page, 0)
    page.evaluate("""async (b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
        document.getElementById("canvas").dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
    }""", base64.b64encode(png).decode())
    expect_nodes(page, 2)
    assert workflow(page)["nodes"] == built


def test_edit_select_copy_paste_delete_undo(page):
    a = add_node(page, "Swatch", 200, 200)
    b = add_node(page, "SaveImage", 600, 200, search="saveimage")
    link(page, a, "image", b, "images")

    # Select both with ctrl+drag, move them together.
    page.keyboard.down("Control")
    page.mouse.move(100, 120)
    page.mouse.down()
    page.mouse.move(1000, 600, steps=6)
    page.mouse.up()
    page.keyboard.up("Control")
    assert page.locator(".node.selected").count() == 2
    before = workflow(page)["ui"]["nodes"]
    header = node(page, a).locator(".node-header")
    x, y = centre(header)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 100, y + 50, steps=5)
    page.mouse.up()
    after = workflow(page)["ui"]["nodes"]
    zoom = page.evaluate("graphflow.editor.viewport.zoom")
    for node_id in (a, b):
        assert after[node_id]["pos"][0] - before[node_id]["pos"][0] == pytest.approx(100 / zoom, abs=2)

    # Copy and paste both: the link between them is copied too.
    page.locator("#canvas").focus()
    page.keyboard.press("Control+c")
    page.mouse.move(300, 650)
    page.keyboard.press("Control+v")
    expect_nodes(page, 4)
    nodes = workflow(page)["nodes"]
    (pasted_save,) = [i for i, n in nodes.items() if n["type"] == "SaveImage" and i != b]
    (pasted_swatch,) = [i for i, n in nodes.items() if n["type"] == "Swatch" and i != a]
    assert nodes[pasted_save]["inputs"]["images"] == [pasted_swatch, 0]

    # Delete a node, then a link; undo both; redo one.
    node(page, pasted_swatch).locator(".node-header").click()
    page.keyboard.press("Delete")
    expect_nodes(page, 3)
    assert "images" not in workflow(page)["nodes"][pasted_save]["inputs"]
    page.locator(f'#links g.link[data-link-dst="{b}"] .link-hit').click(force=True)
    page.keyboard.press("Delete")
    page.wait_for_function("() => document.querySelectorAll('#links g.link').length === 0")
    page.keyboard.press("Control+z")
    page.wait_for_function("() => document.querySelectorAll('#links g.link').length === 1")
    page.keyboard.press("Control+z")
    expect_nodes(page, 4)
    assert page.locator("#links g.link").count() == 2
    page.keyboard.press("Control+Shift+z")
    expect_nodes(page, 3)


def test_widgets_drag_toggle_choose_upload_and_paint_mask(page, server, tmp_path):
    decode = add_node(page, "VAEDecode", 200, 150, search="vaedecode")
    tile = node(page, decode).locator('[data-input="tile_size"] .w-number')
    # Drag right on a number to scrub it up by its step (32), within its limits.
    x, y = centre(tile.locator(".w-label"))
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 40, y, steps=5)
    page.mouse.up()
    value = workflow(page)["nodes"][decode]["inputs"]["tile_size"]
    assert value > 512 and (value - 512) % 32 == 0
    node(page, decode).locator('[data-input="tiled"] [role="switch"]').click()
    assert workflow(page)["nodes"][decode]["inputs"]["tiled"] is True
    assert set_number(page, decode, "overlap", 99999) == "4096"  # typed values are kept within max
    assert workflow(page)["nodes"][decode]["inputs"]["overlap"] == 4096

    sampler = add_node(page, "KSampler", 650, 150, search="ksampler")
    node(page, sampler).locator('[data-input="sampler_name"] select').select_option("dpmpp_2m")
    assert workflow(page)["nodes"][sampler]["inputs"]["sampler_name"] == "dpmpp_2m"

    # LoadImage: upload a picture, then paint a mask over it.
    picture = tmp_path / "cat.png"
    Image.new("RGB", (64, 48), (10, 200, 30)).save(picture)
    load = add_node(page, "LoadImage", 200, 600, search="loadimage")
    with page.expect_file_chooser() as chooser:
        node(page, load).locator('[data-action="upload"]').click()
    chooser.value.set_files(str(picture))
    page.wait_for_function("id => graphflow.editor.workflow().nodes[id].inputs.image === 'cat.png'", arg=load)
    thumb = node(page, load).locator("img.w-thumb")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())

    node(page, load).locator('[data-action="paint-mask"]').click()
    canvas = page.locator(".mask-view")
    canvas.wait_for()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 5, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 3, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    page.locator('[data-action="save-mask"]').click()
    page.wait_for_function("id => graphflow.editor.workflow().nodes[id].inputs.image !== 'cat.png'", arg=load)
    masked = workflow(page)["nodes"][load]["inputs"]["image"]
    with Image.open(folders_module.folders.inputs / masked) as stored:
        alpha = stored.convert("RGBA").getchannel("A")
        assert alpha.getpixel((5, 24)) == 0  # painted: to be repainted
        assert alpha.getpixel((60, 5)) == 255  # untouched
        assert stored.convert("RGB").getpixel((60, 5)) == (10, 200, 30)


def test_load_video_uploads_a_video(page, tmp_path):
    import av
    import numpy as np

    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=4)
        stream.width, stream.height, stream.pix_fmt = 16, 8, "yuv420p"
        for value in (0, 255):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((8, 16, 3), value, np.uint8), format="rgb24")))
        container.mux(stream.encode(None))
    load = add_node(page, "LoadVideo", 200, 600, search="loadvideo")
    picker = node(page, load)
    assert picker.locator('[data-action="paint-mask"]').count() == 0  # a mask is for pictures
    assert picker.locator('input[type="file"]').get_attribute("accept") == "video/*"
    with page.expect_file_chooser() as chooser:
        picker.locator('[data-action="upload"]').click()
    chooser.value.set_files(str(clip))
    page.wait_for_function("id => graphflow.editor.workflow().nodes[id].inputs.file === 'clip.mp4'", arg=load)
    assert (folders_module.folders.inputs / "clip.mp4").read_bytes() == clip.read_bytes()


def test_webcam_previews_captures_and_captures_on_queue(page):
    """WebcamCapture's widget on Chromium's fake camera: the capture button uploads a frame at the
    node's width x height into inputs/webcam/, and queueing with capture_on_queue on takes a new one."""
    cam = add_node(page, "WebcamCapture", 200, 200, search="webcamcapture")
    preview = add_node(page, "PreviewImage", 600, 200, search="previewimage")
    link(page, cam, "image", preview, "images")
    button = node(page, cam).locator('[data-action="capture"]')
    page.wait_for_function("b => !b.disabled", arg=button.element_handle())  # the camera plays
    assert node(page, cam).locator("video").evaluate("v => v.videoWidth > 0 && !v.paused")
    set_number(page, cam, "width", 40)
    set_number(page, cam, "height", 30)
    button.click()
    page.wait_for_function("id => graphflow.editor.workflow().nodes[id].inputs.image.startsWith('webcam/')", arg=cam)
    first = workflow(page)["nodes"][cam]["inputs"]["image"]
    with Image.open(folders_module.folders.inputs / first) as stored:
        assert stored.format == "PNG" and stored.size == (40, 30)

    set_number(page, cam, "width", 0)  # 0: the camera's own width (the fake camera's 640)
    queue(page)
    page.wait_for_function("([id, old]) => graphflow.editor.workflow().nodes[id].inputs.image !== old",
                           arg=[cam, first])
    second = workflow(page)["nodes"][cam]["inputs"]["image"]
    assert second.startswith("webcam/")
    assert wait_image(page, preview) == [640, 30]
    run = last_run(page)
    assert run["status"] == "success", run

    # capture_on_queue off: the queue runs on the last capture.
    node(page, cam).locator('[data-input="capture_on_queue"] [role="switch"]').click()
    runs = len(api(page, "/api/history?limit=100")["items"])
    captures = sorted((folders_module.folders.inputs / "webcam").iterdir())
    queue(page)
    page.wait_for_function("n => fetch('/api/history?limit=100').then(r => r.json()).then(h => h.items.length > n"
                           " && ['success', 'error'].includes(h.items[0].status))", arg=runs)
    assert last_run(page)["status"] == "success"
    assert workflow(page)["nodes"][cam]["inputs"]["image"] == second
    assert sorted((folders_module.folders.inputs / "webcam").iterdir()) == captures  # no new frame


def test_webcam_without_a_camera_says_so_and_keeps_the_last_capture(page):
    page.evaluate("() => { navigator.mediaDevices.getUserMedia = async () => {"
                  "  throw new DOMException('Permission denied', 'NotAllowedError'); }; }")
    cam = add_node(page, "WebcamCapture", 200, 200, search="webcamcapture")
    status = node(page, cam).locator(".w-webcam-status")
    page.wait_for_function("s => s.textContent.startsWith('No camera: Permission denied')", arg=status.element_handle())
    assert node(page, cam).locator('[data-action="capture"]').is_disabled()
    # The upload path on its own: a canvas frame through the widget's uploadFrame.
    path = page.evaluate("""id => {
        const canvas = document.createElement('canvas');
        canvas.width = 12; canvas.height = 8;
        const ctx = canvas.getContext('2d');
        ctx.fillStyle = 'rgb(255, 0, 0)'; ctx.fillRect(0, 0, 12, 8);
        return graphflow.editor.views.get(id).widgets.get('image').uploadFrame(canvas);
    }""", cam)
    assert path.startswith("webcam/") and workflow(page)["nodes"][cam]["inputs"]["image"] == path
    with Image.open(folders_module.folders.inputs / path) as stored:
        assert stored.size == (12, 8) and stored.convert("RGB").getpixel((5, 5)) == (255, 0, 0)
    assert page.evaluate("id => graphflow.editor.views.get(id).widgets.get('image').capture()", cam) is None
    preview = add_node(page, "PreviewImage", 600, 200, search="previewimage")
    link(page, cam, "image", preview, "images")
    queue(page)  # capture_on_queue is on, but there is no camera: the run takes the earlier capture
    assert wait_image(page, preview) == [12, 8]
    assert workflow(page)["nodes"][cam]["inputs"]["image"] == path


def test_interrupt_and_history(page):
    swatch, develop, save = swatch_develop_save(page, 30)
    set_number(page, develop, "steps", 7)  # a value no other test uses: Develop runs for real
    Develop.gate.clear()
    try:
        queue(page)
        node(page, develop).and_(page.locator(".running")).wait_for()
        page.locator("#panel .tabs button[data-tab='queue']").click()
        page.locator("#queue-list li.running").wait_for()
        page.locator("#btn-interrupt").click()
        page.locator(".toast").filter(has_text="Interrupted").wait_for()
    finally:
        Develop.gate.set()
    page.locator("#panel .tabs button[data-tab='history']").click()
    entry = page.locator("#history-list li.interrupted").first
    entry.wait_for()

    # Reload a past run from the history into a new canvas.
    page.locator("#btn-new").click()
    expect_nodes(page, 0)
    entry.get_by_role("button", name="Load").click()
    expect_nodes(page, 3)
    assert workflow(page)["nodes"][develop]["inputs"]["steps"] == 7


def test_txt2img_built_from_the_builtin_nodes(page):
    """The default text-to-image chain, built through the UI from an empty canvas, runs on a
    random-weight SD1 checkpoint and shows its image."""
    ckpt = add_node(page, "LoadCheckpoint", 40, 330, search="loadcheckpoint")
    positive = add_node(page, "CLIPEncode", 360, 80, search="clipencode")
    negative = add_node(page, "CLIPEncode", 360, 380, search="clipencode")
    latent = add_node(page, "EmptyLatent", 360, 680, search="emptylatent")
    sampler = add_node(page, "KSampler", 680, 80, search="ksampler")
    decode = add_node(page, "VAEDecode", 990, 80, search="vaedecode")
    save = add_node(page, "SaveImage", 990, 420, search="saveimage")
    node(page, ckpt).locator('[data-input="checkpoint"] select').select_option(CHECKPOINT)
    link(page, ckpt, "clip", positive, "clip")
    link(page, ckpt, "clip", negative, "clip")
    link(page, ckpt, "model", sampler, "model")
    link(page, positive, "conditioning", sampler, "positive")
    link(page, negative, "conditioning", sampler, "negative")
    link(page, latent, "latent", sampler, "latent_image")
    link(page, sampler, "latent", decode, "samples")
    link(page, ckpt, "vae", decode, "vae")
    link(page, decode, "image", save, "images")
    set_text(page, positive, "text", "a red circle on a white background")
    set_number(page, latent, "width", 64)
    set_number(page, latent, "height", 48)
    set_number(page, sampler, "steps", 3)
    set_number(page, sampler, "seed", 7)
    queue(page)
    assert wait_image(page, save) == [64, 48]
    run = last_run(page)
    assert run["status"] == "success", run


COMFY_TXT2IMG = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}, "_meta": {"title": "Load Checkpoint"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a blue square", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
                                               "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                               "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
}


def test_dropping_a_comfyui_api_graph_imports_it(page, server):
    """The server converts (one mapping of ComfyUI names, graphflow/workflow.py); the editor
    lays the graph out and keeps ComfyUI's titles."""
    from graphflow.workflow import parse_workflow

    page.evaluate("""(text) => {
        const data = new DataTransfer();
        data.items.add(new File([text], "comfy_api.json", {type: "application/json"}));
        document.getElementById("canvas").dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
    }""", json.dumps(COMFY_TXT2IMG))
    page.wait_for_function("document.querySelectorAll('#nodes .node').length === 7 || document.querySelector('.toast.error')")
    refused = page.locator(".toast.error")
    assert refused.count() == 0, f"import failed: {refused.first.inner_text()}"
    imported = workflow(page)
    expected = parse_workflow(COMFY_TXT2IMG, server.registry).to_json()["nodes"]
    assert {i: n["type"] for i, n in imported["nodes"].items()} == {i: n["type"] for i, n in expected.items()}
    for node_id, entry in expected.items():
        for name, value in entry["inputs"].items():
            assert imported["nodes"][node_id]["inputs"][name] == value
    assert node(page, "4").locator(".node-title").inner_text() == "Load Checkpoint"
    boxes = [node(page, i).bounding_box() for i in expected]
    for k, a in enumerate(boxes):  # laid out: no two nodes overlap
        for b in boxes[k + 1:]:
            assert (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                    or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


def _drop_file(page, name, mime, data: bytes):
    page.evaluate("""([name, mime, b64]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], name, {type: mime}));
        document.getElementById("canvas").dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
    }""", [name, mime, base64.b64encode(data).decode()])


def _expect_laid_out_as_saved(page, saved):
    """Every kept node at its saved position, relative to the others, on screen and in the graph."""
    kept = {str(n["id"]): n for n in saved["nodes"] if n["type"] not in ("Reroute", "PrimitiveNode", "Note")}
    page.wait_for_function(f"document.querySelectorAll('#nodes .node').length === {len(kept)} "
                           "|| document.querySelector('.toast.error')")
    refused = page.locator(".toast.error")
    assert refused.count() == 0, f"import failed: {refused.first.inner_text()}"
    layout = workflow(page)["ui"]["nodes"]
    for node_id, entry in kept.items():
        assert layout[node_id]["pos"] == entry["pos"]
    zoom = page.evaluate("graphflow.editor.viewport.zoom")
    first, *others = kept
    origin = node(page, first).bounding_box()
    for node_id in others:
        box = node(page, node_id).bounding_box()
        dx = kept[node_id]["pos"][0] - kept[first]["pos"][0]
        dy = kept[node_id]["pos"][1] - kept[first]["pos"][1]
        assert abs(box["x"] - origin["x"] - dx * zoom) < 2 and abs(box["y"] - origin["y"] - dy * zoom) < 2


def test_dropping_a_comfyui_ui_workflow_and_png_lays_them_out_as_saved(page, server):
    from PIL import PngImagePlugin

    corpus = Path(__file__).parent / "comfyui"
    text = (corpus / "txt2img_tricks_ui.json").read_text()
    saved = json.loads(text)
    _drop_file(page, "comfy_ui.json", "application/json", text.encode())
    _expect_laid_out_as_saved(page, saved)
    assert node(page, "7").locator(".node-title").inner_text() == "Negative"
    # ComfyUI's modes, group, note and Reroute come along, shown as they were.
    assert node(page, "10").get_attribute("data-mode") == "bypass"
    assert node(page, "13").get_attribute("data-mode") == "mute"
    assert page.locator("#groups .canvas-group-title").inner_text() == "Prompts"
    assert page.locator("#notes .note textarea").input_value().startswith("The LoRA is bypassed")
    dot = page.locator('#reroutes .reroute[data-reroute-id="11"]')
    zoom = page.evaluate("graphflow.editor.viewport.zoom")
    assert centre(dot)[0] - node(page, "4").bounding_box()["x"] == pytest.approx((1100 - 26) * zoom, abs=2)

    page.locator("#btn-new").click()
    expect_nodes(page, 0)
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", (corpus / "txt2img_api.json").read_text())
    info.add_text("workflow", text)
    picture = __import__("io").BytesIO()
    Image.new("RGB", (64, 64), "white").save(picture, format="PNG", pnginfo=info)
    _drop_file(page, "ComfyUI_00001_.png", "image/png", picture.getvalue())
    _expect_laid_out_as_saved(page, saved)

    # Export back from the menu: the same ComfyUI links.
    with page.expect_download() as download:
        page.locator("#export-format").select_option("comfy-ui")
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["links"] == saved["links"]


# --- issue 18: defects a new user hit ----------------------------------------------------------

@pytest.fixture(scope="module")
def search_page(browser, server):
    """One editor page for the search cases: each only adds a node from the menu, and gets an
    empty canvas first."""
    with editor_page(browser, server) as page:
        yield page


@pytest.fixture
def menu_page(search_page):
    search_page.locator("#btn-new").click()
    expect_nodes(search_page, 0)
    search_page.errors.clear()
    yield search_page
    assert not search_page.errors, f"JavaScript errors in the page: {search_page.errors}"


@pytest.mark.parametrize("query,expected", [
    ("vae decode", "VAEDecode"), ("load image", "LoadImage"), ("Empty Latent", "EmptyLatent"),
    ("CLIPTextEncode", "CLIPEncode"), ("CheckpointLoaderSimple", "LoadCheckpoint"),
    ("EmptyLatentImage", "EmptyLatent"), ("ksmplr", "KSampler")])
def test_node_search_is_multi_word_fuzzy_and_knows_comfyui_names(menu_page, query, expected):
    page = menu_page
    page.mouse.dblclick(400, 300)
    page.wait_for_selector(".node-menu")
    page.keyboard.type(query)
    first = page.locator(".node-menu .menu-item").first
    first.wait_for()
    assert first.get_attribute("data-node-type") == expected
    page.keyboard.press("Enter")
    expect_nodes(page, 1)


def test_a_broad_search_draws_the_best_matches_and_counts_the_rest(menu_page):
    """Typing must not redraw ~2000 rows a key: a query matching more than MOST_SHOWN nodes draws
    the best MOST_SHOWN, in score order, and one row saying how many more there are."""
    page = menu_page
    page.mouse.dblclick(400, 300)
    page.wait_for_selector(".node-menu")
    page.keyboard.type("l")
    page.wait_for_selector(".node-menu .menu-more")
    most, ranked = page.evaluate("""async () => {
        const {MOST_SHOWN} = await import("/web/js/menu.js");
        const {score} = await import("/web/js/node_search.js");
        const scores = [...Object.values(graphflow.catalogue.nodes), ...graphflow.menu.extras].map((s) => score(s, "l")).filter((x) => x > 0);
        return [MOST_SHOWN, scores.length];
    }""")
    assert ranked > most  # "l" matches far more nodes than are drawn
    drawn = page.locator(".node-menu .menu-item")
    assert drawn.count() == most
    assert page.locator(".node-menu .menu-more").inner_text() == f"{ranked - most} more: type more to narrow the search"
    # the drawn rows are the best: no left-out node scores above the last one drawn
    worst_drawn, best_left = page.evaluate("""async (most) => {
        const {score} = await import("/web/js/node_search.js");
        const drawn = new Set([...document.querySelectorAll(".node-menu .menu-item")].map((e) => e.dataset.nodeType));
        const all = [...Object.values(graphflow.catalogue.nodes), ...graphflow.menu.extras];
        const kept = all.filter((s) => drawn.has(s.type)).map((s) => score(s, "l"));
        const left = all.filter((s) => !drawn.has(s.type)).map((s) => score(s, "l"));
        return [Math.min(...kept), Math.max(...left)];
    }""", most)
    assert worst_drawn >= best_left
    page.keyboard.type("oadimage")  # a narrow query: every match drawn, no count row
    page.wait_for_function("document.querySelector('.node-menu .menu-item').dataset.nodeType === 'LoadImage'")
    assert page.locator(".node-menu .menu-more").count() == 0
    page.keyboard.press("Escape")


def test_a_number_typed_off_its_step_is_snapped_in_the_widget(page):
    latent = add_node(page, "EmptyLatent", 300, 200, search="emptylatent")
    assert set_number(page, latent, "height", 100) == "104"  # step 8 from min 16
    assert workflow(page)["nodes"][latent]["inputs"]["height"] == 104


def test_two_tabs_have_their_own_client_ids(page, server):
    second = page.context.new_page()
    second.goto(server.url)
    wait_ready(second)
    first_id = page.evaluate("graphflow.clientId")
    assert first_id and second.evaluate("graphflow.clientId") != first_id
    page.reload()
    wait_ready(page)
    assert page.evaluate("graphflow.clientId") == first_id  # a reload keeps the tab's id
    second.close()


def test_interrupt_clears_the_live_preview(page):
    swatch = add_node(page, "Swatch", 150, 200)
    develop = add_node(page, "Develop", 500, 200)
    link(page, swatch, "image", develop, "image")
    show = add_node(page, "SaveImage", 850, 200, search="saveimage")
    link(page, develop, "image", show, "images")
    set_number(page, develop, "steps", 9)
    set_number(page, swatch, "red", int(time.time() * 1000) % 200 + 30)
    Develop.gate.clear()
    try:
        queue(page)
        node(page, develop).locator(".node-preview img").wait_for()
        page.locator("#btn-interrupt").click()
        page.locator(".toast").filter(has_text="Interrupted").wait_for()
    finally:
        Develop.gate.set()
    page.wait_for_function("id => !document.querySelector(`.node[data-node-id='${id}'] .node-preview img`)", arg=develop)
    time.sleep(0.3)  # a late preview frame must not bring it back
    assert node(page, develop).locator(".node-preview img").count() == 0


def test_bundled_input_shows_and_its_mask_goes_to_the_users_inputs(page, server):
    from graphflow.folders import BUNDLED

    load = add_node(page, "LoadImage", 200, 200, search="loadimage")
    node(page, load).locator('[data-input="image"] select').select_option("red-circle-on-blue.png")
    thumb = node(page, load).locator("img.w-thumb")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())
    node(page, load).locator('[data-action="paint-mask"]').click()
    canvas = page.locator(".mask-view")
    canvas.wait_for()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 5, box["y"] + 5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 3, box["y"] + 5, steps=5)
    page.mouse.up()
    page.locator('[data-action="save-mask"]').click()
    page.wait_for_function("id => graphflow.editor.workflow().nodes[id].inputs.image !== 'red-circle-on-blue.png'", arg=load)
    masked = workflow(page)["nodes"][load]["inputs"]["image"]
    assert (folders_module.folders.inputs / masked).is_file()
    assert not (BUNDLED / "inputs" / masked).exists()


def test_replacing_an_edited_graph_asks_first_and_can_be_undone(page):
    page.remove_listener("dialog", page.accept_dialogs)
    asked = []

    def answer(dialog, accept):
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    add_node(page, "Swatch", 300, 200)
    page.once("dialog", lambda d: answer(d, False))
    page.locator("#btn-new").click()
    page.wait_for_function("true")
    assert asked and "unsaved" in asked[0]
    expect_nodes(page, 1)  # refused: kept
    page.once("dialog", lambda d: answer(d, True))
    page.locator("#btn-default").click()
    page.wait_for_function("document.querySelectorAll('#nodes .node').length > 1")
    assert len(asked) == 2
    page.locator("#canvas").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+z")  # Undo brings the replaced graph back
    expect_nodes(page, 1)
    assert [n["type"] for n in workflow(page)["nodes"].values()] == ["Swatch"]
    page.keyboard.press("Control+y")
    page.wait_for_function("document.querySelectorAll('#nodes .node').length > 1")
    page.locator("#btn-new").click()  # the loaded default is unchanged: no question
    expect_nodes(page, 0)
    assert len(asked) == 2


def test_a_diagnostic_node_with_nothing_downstream_runs_and_shows_its_report(page):
    ckpt = add_node(page, "LoadCheckpoint", 40, 200, search="loadcheckpoint")
    latent = add_node(page, "EmptyLatent", 40, 600, search="emptylatent")
    stats = add_node(page, "LatentStats", 500, 300, search="latentstats")
    node(page, ckpt).locator('[data-input="checkpoint"] select').select_option(CHECKPOINT)
    set_number(page, latent, "width", 64)
    set_number(page, latent, "height", 64)
    link(page, latent, "latent", stats, "latent")
    link(page, ckpt, "vae", stats, "vae")
    queue(page)
    report = node(page, stats).locator("pre.output-text")
    report.wait_for()
    assert "std" in report.inner_text()
    assert last_run(page)["status"] == "success"


# --- issue 18: ComfyUI habits ------------------------------------------------------------------

def test_bypass_and_mute_with_ctrl_b_and_ctrl_m(page):
    swatch, develop, save = swatch_develop_save(page, 31)
    node(page, develop).locator(".node-header").click()
    page.keyboard.press("Control+m")
    assert workflow(page)["ui"]["nodes"][develop]["mode"] == "mute"
    assert node(page, develop).get_attribute("data-mode") == "mute"
    page.keyboard.press("Control+b")
    assert workflow(page)["ui"]["nodes"][develop]["mode"] == "bypass"
    Develop.gate.clear()  # Develop would wait forever: the run finishes only if it is bypassed
    try:
        queue(page)
        assert wait_image(page, save) == [24, 16]
        run = last_run(page)
        assert run["status"] == "success", run
    finally:
        Develop.gate.set()
    page.keyboard.press("Control+b")  # again: back to normal
    assert "mode" not in workflow(page)["ui"]["nodes"][develop]
    page.keyboard.press("Control+z")
    assert workflow(page)["ui"]["nodes"][develop]["mode"] == "bypass"


def test_interrupt_in_another_tab_leaves_this_tabs_run_alone(page, server):
    swatch, develop, save = swatch_develop_save(page, 32)
    other = page.context.new_page()
    other.goto(server.url)
    wait_ready(other)
    Develop.gate.clear()
    try:
        queue(page)
        node(page, develop).and_(page.locator(".running")).wait_for()
        other.locator("#btn-interrupt").click()
        other.locator(".toast").filter(has_text="Nothing queued from this tab").wait_for()
        assert node(other, develop).locator(".running").count() == 0  # not drawn on the other tab
    finally:
        Develop.gate.set()
    wait_image(page, save)
    assert last_run(page)["status"] == "success"
    other.close()


def test_seed_control_after_generate(page):
    seeded = add_node(page, "Seeded", 300, 200)
    set_number(page, seeded, "seed", 5)
    node(page, seeded).locator('[data-input="seed"] select.w-control').select_option("increment")
    assert workflow(page)["ui"]["nodes"][seeded]["control"] == {"seed": "increment"}
    queue(page)
    page.wait_for_function("id => graphflow.editor.workflow().nodes[id].inputs.seed === 6", arg=seeded)
    assert node(page, seeded).locator('[data-input="seed"] input.w-value').input_value() == "6"
    node(page, seeded).locator("pre.output-text").filter(has_text=re.compile(r"^5$")).wait_for()  # the run used 5
    node(page, seeded).locator("pre.output-text").filter(has_text="seed: 5").wait_for()  # a named entry: its text
    node(page, seeded).locator('[data-input="seed"] select.w-control').select_option("randomize")
    queue(page)
    page.wait_for_function("id => graphflow.editor.workflow().nodes[id].inputs.seed !== 6", arg=seeded)
    node(page, seeded).locator('[data-input="seed"] select.w-control').select_option("fixed")
    value = workflow(page)["nodes"][seeded]["inputs"]["seed"]
    queue(page)
    page.locator(".toast").filter(has_text="Queued").last.wait_for()
    assert workflow(page)["nodes"][seeded]["inputs"]["seed"] == value and "control" not in workflow(page)["ui"]["nodes"][seeded]


def test_queue_n_times_steps_the_seed_between_runs(page):
    seeded = add_node(page, "Seeded", 300, 200)
    set_number(page, seeded, "seed", 40)
    node(page, seeded).locator('[data-input="seed"] select.w-control').select_option("increment")
    page.locator("#batch-count").fill("3")
    queue(page)
    page.wait_for_function("id => graphflow.editor.workflow().nodes[id].inputs.seed === 43", arg=seeded)
    shown = []
    for _ in range(100):  # the three runs finish one after another
        runs = [api(page, f"/api/history/{i['run_id']}") for i in api(page, "/api/history?limit=3")["items"]]
        shown = sorted((r.get("outputs") or {}).get(seeded, {}).get("text", ["?"])[0] for r in runs)
        if shown == ["40", "41", "42"]:
            break
        time.sleep(0.2)
    assert shown == ["40", "41", "42"]


def test_results_panel_is_filled_from_the_history_after_a_reload(page):
    swatch = add_node(page, "Swatch", 150, 200)
    save = add_node(page, "SaveImage", 500, 200, search="saveimage")
    link(page, swatch, "image", save, "images")
    set_number(page, swatch, "red", int(time.time() * 1000) % 200 + 33)
    queue(page)
    wait_image(page, save)
    name = node(page, save).locator("img.output-image").first.get_attribute("src")
    page.reload()
    wait_ready(page)
    figure = page.locator("#panel figure.result img").first
    figure.wait_for(state="attached")
    sources = page.eval_on_selector_all("#panel figure.result img", "imgs => imgs.map(i => i.getAttribute('src'))")
    assert name in sources, (name, sources)


# --- issue 18: groups, notes, Reroutes, collapsed and coloured nodes -------------------------

def export_comfy_ui(page):
    """The workflow as the server writes it for ComfyUI's editor (what Export… downloads)."""
    return page.evaluate("""() => fetch('/api/workflow/convert', {method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({workflow: graphflow.editor.workflow(), to: 'comfy-ui'})}).then(r => r.json()).then(b => b.workflow)""")


def context_item(page, label):
    page.locator(".context-menu .context-item", has_text=label).first.click()


def test_group_the_selection_with_ctrl_g_and_move_it_by_its_title(page):
    a = add_node(page, "Swatch", 200, 200)
    b = add_node(page, "Swatch", 200, 520)
    outside = add_node(page, "SaveImage", 900, 200, search="saveimage")
    node(page, a).locator(".node-header").click()
    node(page, b).locator(".node-header").click(modifiers=["Shift"])
    page.keyboard.press("Control+g")
    page.wait_for_selector("#groups .canvas-group")
    (group,) = workflow(page)["ui"]["groups"]
    layout = workflow(page)["ui"]["nodes"]
    x, y, w, h = group["bounding"]
    for node_id in (a, b):
        nx, ny = layout[node_id]["pos"]
        assert x < nx and y < ny and nx + layout[node_id]["width"] < x + w
    assert not x <= layout[outside]["pos"][0] <= x + w

    # Drag the title: the group and the nodes inside move, the one outside stays.
    title = page.locator("#groups .canvas-group-title")
    tx, ty = centre(title)
    page.mouse.move(tx, ty)
    page.mouse.down()
    page.mouse.move(tx + 120, ty + 60, steps=6)
    page.mouse.up()
    zoom = page.evaluate("graphflow.editor.viewport.zoom")
    moved = workflow(page)["ui"]
    assert moved["groups"][0]["bounding"][0] - x == pytest.approx(120 / zoom, abs=2)
    for node_id in (a, b):
        assert moved["nodes"][node_id]["pos"][0] - layout[node_id]["pos"][0] == pytest.approx(120 / zoom, abs=2)
        assert moved["nodes"][node_id]["pos"][1] - layout[node_id]["pos"][1] == pytest.approx(60 / zoom, abs=2)
    assert moved["nodes"][outside]["pos"] == layout[outside]["pos"]

    # Rename by double-clicking the title; colour from its context menu.
    title.dblclick()
    page.keyboard.press("Control+a")
    page.keyboard.type("Sources")
    page.keyboard.press("Enter")
    title.click(button="right")
    context_item(page, "Colour")
    context_item(page, "green")
    group = workflow(page)["ui"]["groups"][0]
    assert group["title"] == "Sources" and group["color"] == "#8A8"
    assert page.locator("#groups .canvas-group-title").inner_text() == "Sources"
    exported = export_comfy_ui(page)
    assert exported["groups"] == [group]
    page.keyboard.press("Control+z")  # the colour
    page.keyboard.press("Control+z")  # the title
    assert workflow(page)["ui"]["groups"][0]["title"] == "Group"


def test_rename_a_node_by_double_clicking_its_title(page):
    swatch = add_node(page, "Swatch", 300, 250)
    title = node(page, swatch).locator(".node-title")
    default = title.inner_text()
    title.dblclick()
    page.keyboard.press("Control+a")
    page.keyboard.type("Red square")
    page.keyboard.press("Enter")
    assert title.inner_text() == "Red square"
    assert workflow(page)["ui"]["nodes"][swatch]["title"] == "Red square"
    title.dblclick()  # Escape keeps the name
    page.keyboard.press("Control+a")
    page.keyboard.type("Not this")
    page.keyboard.press("Escape")
    assert title.inner_text() == "Red square"
    title.dblclick()  # the node's own name again: no title of its own is kept
    page.keyboard.press("Control+a")
    page.keyboard.type(default)
    page.keyboard.press("Enter")
    assert title.inner_text() == default and "title" not in workflow(page)["ui"]["nodes"][swatch]
    page.keyboard.press("Control+z")
    assert title.inner_text() == "Red square"


def test_collapse_with_alt_c_and_colour_from_the_context_menu(page):
    swatch = add_node(page, "Swatch", 200, 200)
    save = add_node(page, "SaveImage", 700, 200, search="saveimage")
    link(page, swatch, "image", save, "images")
    tall = node(page, swatch).bounding_box()["height"]
    node(page, swatch).locator(".node-header").click()
    page.keyboard.press("Alt+c")
    page.wait_for_function(f"document.querySelector('.node[data-node-id=\"{swatch}\"]').offsetHeight < {tall} / 2")
    assert workflow(page)["ui"]["nodes"][swatch]["collapsed"] is True
    assert page.locator(f'#links g.link[data-link-dst="{save}"]').count() == 1  # the link stays
    node(page, save).locator(".node-header").click(button="right")
    context_item(page, "Colour")
    context_item(page, "blue")
    layout = workflow(page)["ui"]["nodes"][save]
    assert (layout["color"], layout["bgcolor"]) == ("#223", "#335")
    header = node(page, save).locator(".node-header").evaluate("h => getComputedStyle(h).backgroundColor")
    assert header == "rgb(34, 34, 51)"
    exported = {str(n["id"]): n for n in export_comfy_ui(page)["nodes"]}
    assert exported[swatch]["flags"] == {"collapsed": True}
    assert (exported[save]["color"], exported[save]["bgcolor"]) == ("#223", "#335")
    node(page, swatch).locator(".node-header").click(button="right")
    context_item(page, "Expand")
    page.wait_for_function(f"document.querySelector('.node[data-node-id=\"{swatch}\"]').offsetHeight > {tall} - 2")
    assert "collapsed" not in workflow(page)["ui"]["nodes"][swatch]


def test_a_note_from_the_node_menu_is_kept_and_not_run(page):
    page.mouse.dblclick(300, 300)
    page.wait_for_selector(".node-menu")
    page.keyboard.type("note")
    page.locator('.node-menu .menu-item[data-node-type="Note"]').click()
    page.wait_for_selector("#notes .note textarea")
    page.keyboard.type("Remember: the seed is fixed.")
    page.mouse.click(900, 700)  # away: the text is committed
    (note,) = workflow(page)["ui"]["notes"]
    assert note["text"] == "Remember: the seed is fixed."
    assert workflow(page)["nodes"] == {}  # not a node: nothing to run
    header = page.locator("#notes .note-header")
    x, y = centre(header)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 80, y + 40, steps=5)
    page.mouse.up()
    zoom = page.evaluate("graphflow.editor.viewport.zoom")
    assert workflow(page)["ui"]["notes"][0]["pos"][0] - note["pos"][0] == pytest.approx(80 / zoom, abs=2)
    (written,) = [n for n in export_comfy_ui(page)["nodes"] if n["type"] == "Note"]
    assert written["widgets_values"] == ["Remember: the seed is fixed."]
    page.reload()
    wait_ready(page)
    assert page.locator("#notes .note textarea").input_value() == "Remember: the seed is fixed."
    header.click(button="right")
    context_item(page, "Delete note")
    assert workflow(page)["ui"]["notes"] == []


def test_a_note_plus_from_a_save_is_headed_note_plus(page):
    """comfy_mtb's Note Plus (title-less, as its editor draws it) shows its kind in the header."""
    def note(node_id, kind, values):
        return {"id": node_id, "type": kind, "pos": [100 * node_id, 100], "size": [300, 100], "flags": {},
                "order": 0, "mode": 0, "inputs": [], "outputs": [], "properties": {}, "widgets_values": values}
    saved = {"last_node_id": 2, "last_link_id": 0, "links": [], "groups": [], "config": {}, "extra": {},
             "version": 0.4, "nodes": [note(1, "Note Plus (mtb)", ["# plus", "markdown", "h1 {}", "one_dark"]),
                                       note(2, "Note", ["plain"])]}
    _drop_file(page, "noteplus.json", "application/json", json.dumps(saved).encode())
    page.wait_for_function("document.querySelectorAll('#notes .note').length === 2")
    headers = {page.locator("#notes .note textarea").nth(i).input_value():
               page.locator("#notes .note-header").nth(i).inner_text() for i in range(2)}
    assert headers == {"# plus": "Note Plus", "plain": "Note"}


def test_reroute_on_a_link_moves_and_feeds_another_input(page):
    swatch = add_node(page, "Swatch", 150, 200)
    save = add_node(page, "SaveImage", 800, 150, search="saveimage")
    second = add_node(page, "SaveImage", 800, 560, search="saveimage")
    link(page, swatch, "image", save, "images")
    line = page.locator(f'#links g.link[data-link-dst="{save}"] .link-hit')
    box = node(page, save).bounding_box()
    at = (box["x"] - 150, page.evaluate("""(dst) => {
        const path = document.querySelector(`#links g.link[data-link-dst="${dst}"] .link-line`);
        const p = path.getPointAtLength(path.getTotalLength() * 0.6);
        const m = path.getScreenCTM();
        return [p.x * m.a + m.e, p.y * m.d + m.f];
    }""", save))
    x, y = at[1]
    page.mouse.click(x, y, button="right")
    context_item(page, "Add reroute")
    page.wait_for_selector("#reroutes .reroute")
    ui = workflow(page)["ui"]
    (rid,) = ui["reroutes"]
    assert ui["nodes"][save]["via"] == {"images": [rid]}
    assert workflow(page)["nodes"][save]["inputs"]["images"] == [swatch, 0]  # the engine's link is direct

    # Drag the dot: the link follows it.
    dot = page.locator("#reroutes .reroute")
    dx, dy = centre(dot)
    page.mouse.move(dx, dy)
    page.mouse.down()
    page.mouse.move(dx, dy + 200, steps=6)
    page.mouse.up()
    zoom = page.evaluate("graphflow.editor.viewport.zoom")
    moved = workflow(page)["ui"]["reroutes"][rid]["pos"]
    assert moved[1] - ui["reroutes"][rid]["pos"][1] == pytest.approx(200 / zoom, abs=2)
    passes = page.evaluate("""([dst, x, y]) => {
        const path = document.querySelector(`#links g.link[data-link-dst="${dst}"] .link-line`);
        return path.getAttribute("d").includes(`${x} ${y}`);
    }""", [save, *moved])
    assert passes

    # Shift-drag from the dot to another input: a link through the same point.
    dx, dy = centre(dot)
    page.keyboard.down("Shift")
    page.mouse.move(dx, dy)
    page.mouse.down()
    tx, ty = centre(node(page, second).locator('[data-input="images"] .socket'))
    page.mouse.move(tx, ty, steps=8)
    page.mouse.up()
    page.keyboard.up("Shift")
    page.wait_for_selector(f'#links g.link[data-link-dst="{second}"]', state="attached")
    saved = workflow(page)
    assert saved["nodes"][second]["inputs"]["images"] == [swatch, 0]
    assert saved["ui"]["nodes"][second]["via"] == {"images": [rid]}

    # For ComfyUI: one Reroute node feeding both.
    exported = export_comfy_ui(page)
    (reroute,) = [n for n in exported["nodes"] if n["type"] == "Reroute"]
    assert len(reroute["outputs"][0]["links"]) == 2
    links = {link[0]: link for link in exported["links"]}
    assert links[reroute["inputs"][0]["link"]][1] == int(swatch)

    # Delete removes the point; the links go direct again.
    dot.click()
    page.keyboard.press("Delete")
    page.wait_for_function("document.querySelectorAll('#reroutes .reroute').length === 0")
    after = workflow(page)
    assert "via" not in after["ui"]["nodes"][save] and after["nodes"][save]["inputs"]["images"] == [swatch, 0]


# --- issue 18: the workflow browser, tabs, clipboard between them ------------------------------

TAB_LABELS = "Array.from(document.querySelectorAll('#tabs .tab'), t => t.querySelector('.tab-label').textContent + t.querySelector('.tab-dirty').textContent)"


def tab_labels(page, expected=None):
    """The tabs' labels ('•': unsaved changes), once they are `expected` when given."""
    if expected is not None:
        try:
            # JSON.stringify's separators (no spaces): Python's default would never match, waiting out the timeout
            wanted = json.dumps(expected, ensure_ascii=False, separators=(",", ":"))
            page.wait_for_function(f"JSON.stringify({TAB_LABELS}) === {json.dumps(wanted)}", timeout=5000)
        except Exception:
            pass  # the assertion says what they are
    return page.evaluate(TAB_LABELS)


def test_workflow_browser_saves_by_name_and_opens_templates_in_tabs(page, server):
    page.remove_listener("dialog", page.accept_dialogs)
    asked = []

    def answer(dialog, accept):
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    swatch = add_node(page, "Swatch", 300, 250)
    assert tab_labels(page, ["Unsaved workflow•"]) == ["Unsaved workflow•"]

    # Save under a name: on the server, and the tab takes the name and is clean.
    page.locator("#btn-workflows").click()
    page.locator(".workflow-browser input[name=workflow-name]").fill("my swatch")
    page.keyboard.press("Enter")
    page.wait_for_function("!document.querySelector('.workflow-browser')")
    assert tab_labels(page, ["my swatch"]) == ["my swatch"]
    stored = json.loads((server.home / "user" / "workflows" / "my swatch.json").read_text())
    assert [n["type"] for n in stored["nodes"].values()] == ["Swatch"]
    page.locator("#btn-workflows").click()  # a name that would leave the folder is refused
    page.locator(".workflow-browser input[name=workflow-name]").fill("../escape")
    page.keyboard.press("Enter")
    page.wait_for_selector(".toast.error")
    assert "invalid workflow name" in page.locator(".toast.error").last.inner_text()
    assert not (server.home / "user" / "escape.json").exists()

    # A template opens in a tab of its own; the first tab keeps its graph and its undo history.
    page.locator('.workflow-browser .browser-template [data-name="txt2img"] .browser-open').click()
    page.wait_for_function("document.querySelectorAll('#tabs .tab').length === 2")
    page.wait_for_function("document.querySelectorAll('#nodes .node').length > 3")
    assert tab_labels(page, ["my swatch", "txt2img"]) == ["my swatch", "txt2img"]
    template_nodes = len(workflow(page)["nodes"])
    sampler = next(i for i, n in workflow(page)["nodes"].items() if n["type"] == "KSampler")
    node(page, sampler).locator(".node-header").click()
    page.keyboard.press("Delete")
    expect_nodes(page, template_nodes - 1)
    assert tab_labels(page, ["my swatch", "txt2img•"])[1] == "txt2img•"
    page.locator("#tabs .tab", has_text="my swatch").click()
    expect_nodes(page, 1)
    page.locator("#canvas").click(position={"x": 900, "y": 700})
    page.keyboard.press("Control+z")  # this tab's history: the Swatch goes, not the KSampler back
    expect_nodes(page, 0)
    page.keyboard.press("Control+y")
    expect_nodes(page, 1)
    assert node(page, swatch).count() == 1
    page.locator("#tabs .tab", has_text="txt2img").click()
    expect_nodes(page, template_nodes - 1)
    page.keyboard.press("Control+z")
    expect_nodes(page, template_nodes)
    page.keyboard.press("Control+y")

    # Closing a tab with unsaved changes asks; refused, it stays.
    close = page.locator("#tabs .tab", has_text="txt2img").locator(".tab-close")
    page.once("dialog", lambda d: answer(d, False))
    close.click()
    page.wait_for_function("true")
    assert asked and "unsaved changes" in asked[-1]
    assert len(tab_labels(page)) == 2

    # A reload brings both tabs back, each as it was, and the browser lists recent and saved.
    page.reload()
    wait_ready(page)
    assert tab_labels(page, ["my swatch", "txt2img•"]) == ["my swatch", "txt2img•"]
    expect_nodes(page, template_nodes - 1)
    page.locator("#btn-workflows").click()
    page.wait_for_selector('.workflow-browser .browser-recent [data-name="txt2img"]')
    assert page.locator('.workflow-browser .browser-saved [data-name="my swatch"]').count() == 1
    assert page.locator('.workflow-browser .browser-recent [data-name="my swatch"]').count() == 1
    page.locator('.workflow-browser .browser-saved [data-name="my swatch"] .browser-open').click()
    page.wait_for_function("document.querySelectorAll('#tabs .tab').length === 3")
    expect_nodes(page, 1)
    page.once("dialog", lambda d: answer(d, True))
    page.locator("#tabs .tab", has_text="txt2img").locator(".tab-close").click()
    page.wait_for_function("document.querySelectorAll('#tabs .tab').length === 2")
    assert tab_labels(page, ["my swatch", "my swatch"]) == ["my swatch", "my swatch"]
    page.once("dialog", lambda d: answer(d, True))
    page.locator('.tab.active .tab-close').click()  # clean: closes without asking
    page.wait_for_function("document.querySelectorAll('#tabs .tab').length === 1")
    assert len(asked) == 2


def test_copy_paste_between_workflow_tabs_and_browser_tabs(page, server):
    a = add_node(page, "Swatch", 200, 200)
    b = add_node(page, "SaveImage", 600, 200, search="saveimage")
    link(page, a, "image", b, "images")
    node(page, b).locator(".node-header").click()
    page.keyboard.press("Control+c")
    page.locator("#tabs .tab-new").click()
    expect_nodes(page, 0)
    page.mouse.move(500, 400)
    page.keyboard.press("Control+Shift+v")  # another graph: the incoming link can't be kept
    expect_nodes(page, 1)
    (pasted,) = workflow(page)["nodes"].values()
    assert pasted["type"] == "SaveImage" and "images" not in pasted["inputs"]
    page.locator("#tabs .tab").first.click()
    expect_nodes(page, 2)
    page.mouse.move(500, 600)
    page.keyboard.press("Control+Shift+v")  # its own graph: kept
    expect_nodes(page, 3)
    nodes = workflow(page)["nodes"]
    (copy,) = [i for i in nodes if i not in (a, b)]
    assert nodes[copy]["inputs"]["images"] == [a, 0]

    # Another browser tab (same storage): its own copy wins over this tab's older one.
    other = page.context.new_page()
    other.goto(server.url)
    wait_ready(other)
    other.locator("#tabs .tab-new").click()
    add_node(other, "Swatch", 300, 300)
    other.keyboard.press("Control+a")
    other.keyboard.press("Control+c")
    page.bring_to_front()
    page.mouse.move(300, 700)
    page.keyboard.press("Control+v")
    expect_nodes(page, 4)
    assert sorted(n["type"] for n in workflow(page)["nodes"].values()) == ["SaveImage", "SaveImage", "Swatch", "Swatch"]
    other.close()


def test_alt_drag_clones_a_node(page):
    swatch = add_node(page, "Swatch", 200, 200)
    set_number(page, swatch, "red", 77)
    header = node(page, swatch).locator(".node-header")
    x, y = centre(header)
    before = workflow(page)["ui"]["nodes"][swatch]["pos"]
    page.keyboard.down("Alt")
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 50, y + 300, steps=6)
    page.mouse.up()
    page.keyboard.up("Alt")
    expect_nodes(page, 2)
    saved = workflow(page)
    (clone,) = [i for i in saved["nodes"] if i != swatch]
    assert saved["ui"]["nodes"][swatch]["pos"] == before  # the original stays
    zoom = page.evaluate("graphflow.editor.viewport.zoom")
    assert saved["ui"]["nodes"][clone]["pos"][1] - before[1] == pytest.approx(300 / zoom, abs=2)
    assert saved["nodes"][clone]["inputs"]["red"] == 77
    page.keyboard.press("Control+z")  # one step: the clone and its move
    expect_nodes(page, 1)


def test_minimap_shows_the_graph_and_moves_the_view(page):
    a = add_node(page, "Swatch", 300, 200)
    b = add_node(page, "SaveImage", 700, 300, search="saveimage")
    # Put b far away, so the map has somewhere to go.
    page.evaluate(f"""() => {{ const n = graphflow.editor.graph.nodes.get("{b}"); n.pos = [4000, 2500];
        graphflow.editor.views.get("{b}").setPosition(); graphflow.editor.commit(); }}""")
    minimap = page.locator("#minimap")
    assert minimap.is_visible()
    page.wait_for_function("""() => { const c = document.querySelector('#minimap canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n += 1; return n > 50; }""")  # drawn
    # Click where node b is drawn: the view centres on it.
    box = minimap.bounding_box()
    page.evaluate("graphflow.minimap.draw()")
    t = page.evaluate("graphflow.minimap.transform")
    bx = box["x"] + 1 + t["ox"] + (4000 + 130) * t["scale"]
    by = box["y"] + 1 + t["oy"] + (2500 + 50) * t["scale"]
    page.mouse.click(bx, by)
    page.wait_for_function(f"""() => {{ const r = document.querySelector('.node[data-node-id="{b}"]').getBoundingClientRect();
        const c = document.getElementById('canvas').getBoundingClientRect();
        return Math.abs(r.left + r.width / 2 - (c.left + c.width / 2)) < 40 && Math.abs(r.top - (c.top + c.height / 2)) < 120; }}""")
    # Dragging in it pans continuously: from node b to node a (as the map now draws them).
    page.evaluate("graphflow.minimap.draw()")
    t = page.evaluate("graphflow.minimap.transform")
    bx = box["x"] + 1 + t["ox"] + (4000 + 130) * t["scale"]
    by = box["y"] + 1 + t["oy"] + (2500 + 50) * t["scale"]
    ax = box["x"] + 1 + t["ox"] + (workflow(page)["ui"]["nodes"][a]["pos"][0] + 130) * t["scale"]
    page.mouse.move(bx, by)
    page.mouse.down()
    page.mouse.move((ax + bx) / 2, by, steps=4)
    page.mouse.move(ax, by - 5, steps=4)
    page.mouse.up()
    page.wait_for_function(f"""() => {{ const r = document.querySelector('.node[data-node-id="{a}"]').getBoundingClientRect();
        const c = document.getElementById('canvas').getBoundingClientRect();
        return Math.abs(r.left + r.width / 2 - (c.left + c.width / 2)) < 60; }}""")
    # Toggled off, it stays off after a reload.
    page.locator("#btn-minimap").click()
    assert not minimap.is_visible()
    page.reload()
    wait_ready(page)
    assert not page.locator("#minimap").is_visible()
    page.locator("#btn-minimap").click()
    assert page.locator("#minimap").is_visible()
