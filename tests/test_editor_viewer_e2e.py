"""The editor's image viewing and what a ComfyUI user reaches for (issue 18): lightbox and mask
painter zoom, previous/next, the gallery after a reload. Real mouse and keyboard events in
Debian's headless Chromium against a real server (fixtures and helpers: test_editor_e2e)."""

import re
import time

from test_editor_e2e import (  # noqa: F401  (fixtures)
    add_node, browser, expect_nodes, link, node, page, queue, server, set_number, wait_image, wait_ready, workflow)


def _swatch_run(page, save_type="SaveImage", size=64, red=None):
    """Swatch (size×size) → an image node, queued; returns (swatch id, image node id)."""
    swatch = add_node(page, "Swatch", 150, 200)
    shown = add_node(page, save_type, 550, 200, search=save_type.lower())
    link(page, swatch, "image", shown, "images")
    set_number(page, swatch, "width", size)
    set_number(page, swatch, "height", size)
    set_number(page, swatch, "red", red if red is not None else int(time.time() * 1000) % 200 + 40)
    queue(page)
    wait_image(page, shown)
    return swatch, shown


def _scale(page, frame=".zoom-frame"):
    return float(page.locator(frame).get_attribute("data-scale"))


def _picture_box(page, selector):
    return page.locator(selector).bounding_box()


def test_lightbox_fits_a_small_image_zooms_pans_and_steps_through_results(page):
    swatch, save = _swatch_run(page)
    first_src = node(page, save).locator("img.output-image").first.get_attribute("src")
    set_number(page, swatch, "red", int(time.time() * 1000) % 200 + 41)
    queue(page)
    page.wait_for_function("([id, src]) => { const i = document.querySelector(`.node[data-node-id='${id}'] img.output-image`);"
                           " return i && i.getAttribute('src') !== src && i.complete; }", arg=[save, first_src])
    second_src = node(page, save).locator("img.output-image").first.get_attribute("src")

    node(page, save).locator("img.output-image").first.dblclick()
    picture = ".lightbox img.zoom-content"
    page.wait_for_function("() => { const f = document.querySelector('.lightbox .zoom-frame'); return f && f.dataset.scale; }")
    # A 64×64 image is scaled up to fit, with square pixels.
    box = _picture_box(page, picture)
    assert box["width"] > 64 * 4 and abs(box["width"] - box["height"]) < 1, box
    assert page.locator(picture).evaluate("i => getComputedStyle(i).imageRendering") == "pixelated"
    assert page.locator(picture).get_attribute("src") == second_src

    fitted = _scale(page)
    frame = page.locator(".lightbox .zoom-frame").bounding_box()
    page.mouse.move(frame["x"] + frame["width"] / 2, frame["y"] + frame["height"] / 2)
    page.mouse.wheel(0, -300)
    page.wait_for_function(f"parseFloat(document.querySelector('.lightbox .zoom-frame').dataset.scale) > {fitted}")
    page.keyboard.press("-")
    page.keyboard.press("-")
    zoomed = _scale(page)
    page.keyboard.press("+")
    assert _scale(page) > zoomed
    page.locator('.lightbox [data-zoom="actual"]').click()
    assert _scale(page) == 1
    assert abs(_picture_box(page, picture)["width"] - 64) < 1
    # Drag pans the picture.
    before = _picture_box(page, picture)
    page.mouse.move(frame["x"] + 100, frame["y"] + 100)
    page.mouse.down()
    page.mouse.move(frame["x"] + 160, frame["y"] + 130, steps=5)
    page.mouse.up()
    after = _picture_box(page, picture)
    assert abs(after["x"] - before["x"] - 60) < 2 and abs(after["y"] - before["y"] - 30) < 2
    page.locator('.lightbox [data-zoom="fit"]').click()
    assert _scale(page) == fitted

    # Previous / next: keys and buttons, through the results (newest first).
    page.keyboard.press("ArrowRight")
    page.wait_for_function("src => document.querySelector('.lightbox img').getAttribute('src') === src", arg=first_src)
    page.locator('.lightbox [data-action="previous"]').click()
    page.wait_for_function("src => document.querySelector('.lightbox img').getAttribute('src') === src", arg=second_src)
    page.locator('.lightbox [data-action="next"]').click()
    page.wait_for_function("src => document.querySelector('.lightbox img').getAttribute('src') === src", arg=first_src)
    page.keyboard.press("Escape")
    page.wait_for_selector(".lightbox", state="detached")


def test_mask_painter_shows_a_small_image_scaled_up_and_zooms(page):
    load = add_node(page, "LoadImage", 200, 200, search="loadimage")
    node(page, load).locator('[data-input="image"] select').select_option("red-circle-on-blue.png")
    node(page, load).locator('[data-action="paint-mask"]').click()
    view = page.locator(".mask-painter canvas.mask-view")
    view.wait_for()
    page.wait_for_function("() => document.querySelector('.mask-painter .zoom-frame').dataset.scale")
    box = view.bounding_box()
    assert box["width"] > 64 * 4, box  # 64×64, fitted
    assert view.evaluate("c => getComputedStyle(c).imageRendering") == "pixelated"
    fitted = _scale(page, ".mask-painter .zoom-frame")
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -300)
    page.wait_for_function(f"parseFloat(document.querySelector('.mask-painter .zoom-frame').dataset.scale) > {fitted}")
    # Middle-drag pans; a left drag still paints where the pointer is.
    before = view.bounding_box()
    frame = page.locator(".mask-painter .zoom-frame").bounding_box()
    page.mouse.move(frame["x"] + 50, frame["y"] + 50)
    page.mouse.down(button="middle")
    page.mouse.move(frame["x"] + 90, frame["y"] + 50, steps=4)
    page.mouse.up(button="middle")
    assert abs(view.bounding_box()["x"] - before["x"] - 40) < 2
    page.locator('.mask-painter [data-zoom="fit"]').click()
    box = view.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.1)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.1, steps=4)
    page.mouse.up()
    page.locator('[data-action="save-mask"]').click()
    page.wait_for_function("id => graphflow.editor.workflow().nodes[id].inputs.image !== 'red-circle-on-blue.png'", arg=load)


def test_gallery_after_a_reload_browses_past_runs_and_loads_an_images_workflow(page):
    page.remove_listener("dialog", page.accept_dialogs)
    asked = []
    page.on("dialog", lambda d: (asked.append(d.message), d.accept()))
    _, preview = _swatch_run(page, "PreviewImage", size=32)  # no workflow in the file: the run's graph
    preview_src = node(page, preview).locator("img.output-image").first.get_attribute("src")
    page.locator("#btn-new").click()
    expect_nodes(page, 0)
    swatch, save = _swatch_run(page, "SaveImage", size=40)  # the workflow embedded in the PNG
    save_src = node(page, save).locator("img.output-image").first.get_attribute("src")
    page.reload()
    wait_ready(page)
    set_number(page, swatch, "red", 3)  # an unsaved edit: loading another graph asks first
    asked.clear()
    gallery = page.locator("#panel figure.result img")
    gallery.first.wait_for()
    sources = gallery.evaluate_all("imgs => imgs.map(i => i.getAttribute('src'))")
    assert sources.index(save_src) < sources.index(preview_src)  # newest first
    page.locator(f'#panel figure.result img[src="{save_src}"]').click()
    page.wait_for_function("src => document.querySelector('.lightbox img').getAttribute('src') === src", arg=save_src)
    page.wait_for_function("() => document.querySelector('.lightbox .zoom-frame').dataset.scale > 1")
    for _ in range(sources.index(preview_src) - sources.index(save_src)):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("src => document.querySelector('.lightbox img').getAttribute('src') === src", arg=preview_src)

    page.locator('.lightbox [data-action="load-workflow"]').click()
    page.wait_for_function("() => Object.values(graphflow.editor.workflow().nodes).some(n => n.type === 'PreviewImage')")
    types = sorted(n["type"] for n in workflow(page)["nodes"].values())
    assert types == ["PreviewImage", "Swatch"]
    assert len(asked) == 1 and "unsaved" in asked[0]
    # And back: Ctrl+Z restores the graph it replaced (the SaveImage one).
    page.locator("#canvas").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+z")
    page.wait_for_function("() => Object.values(graphflow.editor.workflow().nodes).some(n => n.type === 'SaveImage')")
    assert workflow(page)["nodes"][swatch]["inputs"]["red"] == 3

    # The PNG's own workflow: SaveImage's image.
    node_types = ["SaveImage", "Swatch"]
    page.locator("#btn-new").click()
    expect_nodes(page, 0)
    page.locator(f'#panel figure.result img[src="{save_src}"]').click()
    page.locator('.lightbox [data-action="load-workflow"]').click()
    page.wait_for_function("() => Object.values(graphflow.editor.workflow().nodes).some(n => n.type === 'SaveImage')")
    assert sorted(n["type"] for n in workflow(page)["nodes"].values()) == node_types
    assert workflow(page)["nodes"][swatch]["inputs"]["width"] == 40


# --- nodes that grow, and the one clicked -------------------------------------------------------

def _overlaps(page):
    boxes = page.eval_on_selector_all("#nodes .node", "ns => ns.map(n => { const r = n.getBoundingClientRect();"
                                      " return [n.dataset.nodeId, r.x, r.y, r.width, r.height]; })")
    found = []
    for k, (i, ax, ay, aw, ah) in enumerate(boxes):
        for j, bx, by, bw, bh in boxes[k + 1:]:
            if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                found.append((i, j))
    return found


def _text_lines(locator):
    """How many lines the browser draws a <pre>'s text on (wrapped lines count twice)."""
    return locator.evaluate("""pre => { const range = document.createRange(); range.selectNodeContents(pre);
        return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size; }""")


def test_growing_nodes_push_their_neighbours_and_the_stats_table_does_not_wrap(page):
    page.evaluate("fetch('/api/workflows/latent_health').then(r => r.json()).then(wf => graphflow.load(wf, false))")
    expect_nodes(page, 8)
    page.wait_for_timeout(200)
    assert _overlaps(page) == []  # laid out with the real sizes
    queue(page)
    stats = node(page, "4").locator("pre.output-text")
    stats.wait_for()
    for save in ("5", "8"):
        wait_image(page, save)
    page.wait_for_function("graphflow.monitor.current === null")
    page.wait_for_timeout(200)  # a frame for the resize observer
    assert _overlaps(page) == [], "grown nodes overlap their neighbours"
    text = stats.inner_text()
    assert _text_lines(stats) == len(text.rstrip("\n").split("\n")), "the table wraps"
    # The moved positions are what gets saved.
    layout = workflow(page)["ui"]["nodes"]
    for node_id in layout:
        box = node(page, node_id).bounding_box()
        assert box is not None


def test_a_clicked_node_comes_to_the_front(page):
    first = add_node(page, "Swatch", 200, 200)
    second = add_node(page, "Swatch", 700, 200)
    a, b = node(page, first).bounding_box(), node(page, second).bounding_box()
    page.mouse.move(b["x"] + 30, b["y"] + 10)  # drag the second over the first
    page.mouse.down()
    page.mouse.move(a["x"] + 90, a["y"] + 50, steps=6)
    page.mouse.up()
    b = node(page, second).bounding_box()
    overlap = (b["x"] + 20, b["y"] + 20)
    assert a["x"] + a["width"] > overlap[0] and a["y"] + a["height"] > overlap[1]
    top = "([x, y]) => document.elementFromPoint(x, y).closest('.node').dataset.nodeId"
    assert page.evaluate(top, overlap) == second
    page.mouse.click(a["x"] + 30, a["y"] + 10)  # the first one's header, still visible
    assert page.evaluate(top, overlap) == first
    page.mouse.click(b["x"] + b["width"] - 20, b["y"] + b["height"] - 20)
    assert page.evaluate(top, overlap) == second


# --- fit, narrow windows, the toolbar's progress -------------------------------------------------

def _on_screen(page, locator):
    box = locator.bounding_box()
    size = page.viewport_size
    return box and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= size["width"] and box["y"] + box["height"] <= size["height"]


def test_fit_with_one_node_selected_fits_the_whole_graph_and_two_fit_the_selection(page):
    ids = [add_node(page, "Swatch", x, y) for x, y in ((150, 150), (800, 150), (150, 650))]
    header = node(page, ids[0]).locator(".node-header").bounding_box()
    at = (header["x"] + 20, header["y"] + header["height"] / 2)
    page.mouse.move(*at)
    page.mouse.wheel(0, -1500)  # zoom far in on the first node: the others are off screen
    page.wait_for_timeout(100)
    page.mouse.click(*at)  # one node selected
    assert page.evaluate("graphflow.editor.selected.size") == 1
    page.keyboard.press(".")
    canvas = page.locator("#canvas").bounding_box()
    page.wait_for_timeout(100)
    for i in ids:
        box = node(page, i).bounding_box()
        assert canvas["x"] <= box["x"] and box["x"] + box["width"] <= canvas["x"] + canvas["width"], i
        assert canvas["y"] <= box["y"] and box["y"] + box["height"] <= canvas["y"] + canvas["height"], i
    whole = page.evaluate("graphflow.editor.viewport.zoom")
    # Two selected (Shift-click): the view fits those two, closer than the whole graph.
    node(page, ids[0]).locator(".node-header").click()
    node(page, ids[2]).locator(".node-header").click(modifiers=["Shift"])
    page.keyboard.press(".")
    page.wait_for_timeout(100)
    assert page.evaluate("graphflow.editor.viewport.zoom") >= whole
    left = node(page, ids[0]).bounding_box()
    right = node(page, ids[1]).bounding_box()
    assert left["x"] - canvas["x"] > 40  # the selection is centred with its margin
    assert right["x"] + 10 > canvas["x"] + canvas["width"] or right["x"] > left["x"]


def test_narrow_windows_keep_queue_on_screen_and_the_panel_small(page):
    add_node(page, "Seeded", 300, 200)
    page.set_viewport_size({"width": 800, "height": 900})
    panel = page.locator("#panel").bounding_box()
    assert panel["width"] <= 0.25 * 800 + 1, panel
    assert _on_screen(page, page.locator("#btn-queue"))
    page.set_viewport_size({"width": 390, "height": 844})
    queue_button = page.locator("#btn-queue")
    assert _on_screen(page, queue_button), queue_button.bounding_box()
    assert not page.locator("#panel").is_visible()  # folded away: the canvas keeps the width
    queue(page)
    page.locator(".toast").filter(has_text="Queued").wait_for()
    page.locator("#btn-panel").click()  # ☰ brings the panel back over the canvas
    assert page.locator("#panel").is_visible() and _on_screen(page, page.locator("#panel"))
    page.locator("#btn-panel").click()
    assert not page.locator("#panel").is_visible()


def test_toolbar_bar_and_label_show_the_same_progress(page):
    from test_editor_e2e import Develop, swatch_develop_save

    _, develop, save = swatch_develop_save(page, 42)
    Develop.gate.clear()  # holds at step 2 of 4
    try:
        queue(page)
        node(page, develop).locator(".node-progress[data-value='2']").wait_for(state="attached")
        page.wait_for_function("document.querySelector('#run-status .label').textContent.includes('step 2/4')")
        label = page.locator("#run-status .label").inner_text()
        width = page.locator("#run-status .bar > div").evaluate("d => d.style.width")
        # 1 of 3 nodes done and half of the second: 50% of the whole graph, in both
        assert width == "50%", width
        assert label.startswith("50%"), label
        assert "Develop" in label and "step 2/4" in label
    finally:
        Develop.gate.set()
    wait_image(page, save)


# --- a new empty latent follows the loaded model ------------------------------------------------

def test_a_new_empty_latent_starts_at_the_loaded_models_size(page):
    from test_editor_e2e import api

    demo = "graphflow-demo.safetensors"
    assert api(page, f"/api/models/checkpoints/info?name={demo}")["native_size"] == [64, 64]
    without = add_node(page, "EmptyLatent", 150, 650, search="emptylatent")  # no model in the graph yet
    ckpt = add_node(page, "LoadCheckpoint", 150, 200, search="loadcheckpoint")
    node(page, ckpt).locator('[data-input="checkpoint"] select').select_option(demo)
    latent = add_node(page, "EmptyLatent", 600, 200, search="emptylatent")
    page.wait_for_function("id => graphflow.editor.workflow().nodes[id].inputs.width === 64", arg=latent)
    assert workflow(page)["nodes"][latent]["inputs"]["height"] == 64
    assert node(page, latent).locator('[data-input="width"] input.w-value').input_value() == "64"
    assert workflow(page)["nodes"][without]["inputs"]["width"] == 512
    sd3 = add_node(page, "EmptySD3Latent", 600, 650, search="emptysd3")
    page.wait_for_function("id => graphflow.editor.workflow().nodes[id].inputs.width === 64", arg=sd3)
    # Part of adding the node: one Ctrl+Z removes it, not just its size.
    page.locator("#canvas").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+z")
    expect_nodes(page, 3)


# --- dropping a picture -------------------------------------------------------------------------

def _drop_at(page, name, mime, data, x, y):
    import base64

    page.evaluate("""([name, mime, b64, x, y]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], name, {type: mime}));
        document.elementFromPoint(x, y).dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true, clientX: x, clientY: y}));
    }""", [name, mime, base64.b64encode(data).decode(), x, y])


def test_dropping_a_picture_without_a_graph_makes_a_loadimage_node(page, server):
    import io

    from PIL import Image

    from graphflow import folders as folders_module

    add_node(page, "Swatch", 150, 150)
    for name, fmt, mime, colour in (("plain.png", "PNG", "image/png", (0, 200, 0)), ("photo.jpg", "JPEG", "image/jpeg", (0, 0, 200))):
        picture = io.BytesIO()
        Image.new("RGB", (48, 32), colour).save(picture, format=fmt)
        before = len(workflow(page)["nodes"])
        _drop_at(page, name, mime, picture.getvalue(), 700, 500)
        expect_nodes(page, before + 1)
        nodes = workflow(page)["nodes"]
        new_id = max(nodes, key=int)
        assert nodes[new_id]["type"] == "LoadImage"
        stored = nodes[new_id]["inputs"]["image"]
        assert stored.startswith(name.split(".")[0]) and (folders_module.folders.inputs / stored).is_file()
        box = node(page, new_id).bounding_box()
        assert abs(box["x"] - 700) < 5 and abs(box["y"] - 500) < 5  # where it was dropped
        thumb = node(page, new_id).locator("img.w-thumb")
        page.wait_for_function("img => img.complete && img.naturalWidth === 48", arg=thumb.element_handle())
    assert [n["type"] for n in workflow(page)["nodes"].values()].count("Swatch") == 1  # the graph stays


# --- auto-queue ---------------------------------------------------------------------------------

def test_auto_queue_runs_the_graph_when_a_widget_changes(page):
    from test_editor_e2e import api

    def runs():
        return api(page, "/api/history?limit=1")["total"]

    seeded = add_node(page, "Seeded", 300, 200)
    shown = node(page, seeded).locator("pre.output-text").filter(has_text=re.compile(r"^\d+$"))  # the plain seed
    set_number(page, seeded, "seed", 5)
    time.sleep(0.5)
    assert shown.count() == 0  # off: nothing runs
    page.locator("#auto-queue").click()
    assert page.locator("#auto-queue").is_checked()
    set_number(page, seeded, "seed", 7)
    shown.filter(has_text="7").wait_for()
    node(page, seeded).locator('[data-input="seed"] button[aria-label="increase seed"]').click()
    shown.filter(has_text="8").wait_for()
    page.wait_for_function("graphflow.monitor.current === null")
    before = runs()
    page.locator("#auto-queue").click()  # off again
    set_number(page, seeded, "seed", 9)
    time.sleep(0.8)
    assert runs() == before
    assert "8" in shown.inner_text()


# --- load time ----------------------------------------------------------------------------------

def test_every_module_is_preloaded():
    """index.html preloads every module at once (not import by import): bench/editor_load.py."""
    import re
    from pathlib import Path

    web = Path(__file__).resolve().parents[1] / "web"
    preloaded = set(re.findall(r'rel="modulepreload" href="/web/js/([\w.]+)"', (web / "index.html").read_text()))
    assert preloaded == {p.name for p in (web / "js").glob("*.js")} - {"main.js"}


def test_the_editor_is_interactive_within_a_second(page):
    times = []
    for _ in range(3):
        page.reload()
        wait_ready(page)
        times.append(page.evaluate("graphflow.readyMs"))
    print(f"interactive after {times} ms")
    assert min(times) < 1000, times  # the best of three: the machine is shared with other jobs
