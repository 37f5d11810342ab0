"""Screenshots of the browser editor for the README: the default workflow after a run, its
image in the viewer, the add-node menu, an error shown on its node, and a ComfyUI workflow with a
group, a note, a Reroute and bypassed and muted nodes, opened in a second tab.

    .venv/bin/python tools/editor_screenshots.py [--models-dir models] [--checkpoint NAME] [--out docs/screenshots]

Starts a server on a free loopback port with the built-in nodes, drives Debian's headless
Chromium with Playwright (no browser download), runs the default workflow and saves PNGs.
Without the demo checkpoint it writes a random-weight SD1 checkpoint to a temporary folder,
so the generated image is noise: say so wherever such a screenshot is shown.
"""

import argparse
import asyncio
import shutil
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphflow.folders import configure, folders  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def start_server(home: Path):
    from aiohttp import web

    from graphflow.registry import Registry
    from graphflow.server.app import create_app

    loop = asyncio.new_event_loop()
    runner = web.AppRunner(create_app(Registry().load_builtin(), home / "history.db", web_dir=ROOT / "web"),
                           access_log=None)
    ready = threading.Event()

    def serve():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
        ready.set()
        loop.run_forever()

    threading.Thread(target=serve, daemon=True).start()
    ready.wait(120)
    return f"http://127.0.0.1:{runner.addresses[0][1]}/"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", help="folder with checkpoints/ (default: a temporary one)")
    parser.add_argument("--checkpoint", default="graphflow-demo.safetensors")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="graphflow-shots-"))
    configure(home=home, models=args.models_dir or home / "models")
    checkpoint = args.checkpoint
    if checkpoint not in folders.list_models("checkpoints"):
        from graphflow.testing import write_checkpoint

        checkpoint = "random-weights-sd1.safetensors"
        (folders.models / "checkpoints").mkdir(parents=True, exist_ok=True)
        write_checkpoint(folders.models / "checkpoints" / checkpoint, "sd1")
        print(f"{args.checkpoint} not found: using a random-weight checkpoint (the image will be noise)")
    url = start_server(home)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 820}, device_scale_factor=1)
        page.set_default_timeout(120_000)
        page.goto(url)
        page.wait_for_function("document.body.classList.contains('ready')")
        page.locator("#btn-default").click()
        page.wait_for_function("document.querySelectorAll('#nodes .node').length === 7")
        page.locator('.node[data-node-type="LoadCheckpoint"] [data-input="checkpoint"] select').select_option(checkpoint)
        page.locator("#btn-fit").click()
        page.locator("#btn-queue").click()
        page.locator('.node[data-node-type="SaveImage"] img.output-image').first.wait_for()
        page.wait_for_function("[...document.images].every((i) => i.complete)")
        page.mouse.click(5, 300)  # deselect
        page.wait_for_selector(".toast", state="detached")
        page.screenshot(path=str(out / "editor-default-workflow.png"))

        # The image viewer: the 64×64 result fitted with square pixels.
        page.locator('.node[data-node-type="SaveImage"] img.output-image').first.dblclick()
        page.wait_for_function("() => { const f = document.querySelector('.lightbox .zoom-frame'); return f && f.dataset.scale; }")
        page.wait_for_timeout(300)
        page.screenshot(path=str(out / "editor-lightbox.png"))
        page.keyboard.press("Escape")

        page.mouse.dblclick(700, 660)
        page.wait_for_selector(".node-menu")
        page.keyboard.type("sampler")
        page.screenshot(path=str(out / "editor-add-node.png"))
        page.keyboard.press("Escape")

        socket = page.locator('.node[data-node-type="SaveImage"] [data-input="images"] .socket').bounding_box()
        page.mouse.move(socket["x"] + 6, socket["y"] + 6)
        page.mouse.down()
        page.mouse.move(socket["x"] - 80, socket["y"] + 160, steps=6)
        page.mouse.up()
        page.keyboard.press("Escape")
        page.locator("#btn-queue").click()
        page.locator(".node.has-error").first.wait_for()
        page.locator(".toast.error").wait_for()
        page.wait_for_timeout(400)  # past the toast's fade-in
        page.screenshot(path=str(out / "editor-error.png"))

        tricks = (ROOT / "tests" / "comfyui" / "txt2img_tricks_ui.json").read_text()
        page.evaluate("""async (text) => {
            const reply = await fetch('/api/workflow/convert', {method: 'POST', headers: {'Content-Type': 'application/json'},
                body: JSON.stringify({workflow: JSON.parse(text)})});
            graphflow.openInTab((await reply.json()).workflow, 'txt2img_tricks (ComfyUI)');
        }""", tricks)
        page.wait_for_selector("#reroutes .reroute")
        page.locator("#btn-fit").click()
        page.wait_for_selector(".toast", state="detached")
        page.wait_for_timeout(300)
        page.screenshot(path=str(out / "editor-comfyui-groups-notes-reroutes.png"))
        browser.close()
    for name in ("editor-default-workflow.png", "editor-lightbox.png", "editor-add-node.png", "editor-error.png",
                 "editor-comfyui-groups-notes-reroutes.png"):
        print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
