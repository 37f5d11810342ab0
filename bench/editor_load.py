"""How long the browser editor takes to load: from navigation to the editor being interactive
(the catalogue fetched, the default workflow on the canvas, the toolbar wired: `body.ready`),
measured by the page itself (performance.now() at ready, from the navigation's start).

    python bench/editor_load.py [--loads 5] [--chromium /usr/bin/chromium]

Starts a server with the built-in nodes on a free loopback port (the editor_screenshots tool's),
loads the editor in Debian's headless Chromium (Playwright, no download) with a cold cache
each time, and prints each load, the median, the modules and bytes fetched. Target: < 1000 ms.
"""

import argparse
import importlib.util
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET_MS = 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--verbose", action="store_true", help="print when each API call and main.js loaded")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()

    from graphflow.folders import configure

    spec = importlib.util.spec_from_file_location("editor_screenshots", ROOT / "tools" / "editor_screenshots.py")
    shots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shots)
    home = Path(tempfile.mkdtemp(prefix="graphflow-load-"))
    configure(home=home, models=home / "models")
    url = shots.start_server(home)

    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=shots.ARGS)
        for i in range(args.loads + 1):  # the first warms the server (catalogue, imports)
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            page = context.new_page()
            page.goto(url)
            page.wait_for_function("document.body.classList.contains('ready')", timeout=60_000)
            ready = page.evaluate("graphflow.readyMs")
            scripts = page.evaluate("performance.getEntriesByType('resource').filter(r => r.name.includes('/web/js/'))"
                                    ".map(r => r.transferSize || r.encodedBodySize)")
            nodes = page.evaluate("document.querySelectorAll('#nodes .node').length")
            steps = page.evaluate("performance.getEntriesByType('resource').filter(r => /api|main.js|style/.test(r.name))"
                                  ".map(r => `${r.name.split('/').slice(-2).join('/').slice(0, 24)} ${r.startTime.toFixed(0)}-${r.responseEnd.toFixed(0)}`)")
            context.close()
            if i:
                times.append(ready)
                print(f"load {i}: interactive after {ready:.0f} ms ({nodes} nodes on the canvas)")
                if args.verbose:
                    print("   ", "; ".join(steps))
        browser.close()
    median = statistics.median(times)
    print(f"{len(scripts)} modules, {sum(scripts) / 1024:.1f} KiB of JavaScript")
    print(f"median: {median:.0f} ms (target < {TARGET_MS} ms): {'ok' if median < TARGET_MS else 'TOO SLOW'}")
    return 0 if median < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
