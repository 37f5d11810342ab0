// The gallery: the Results panel filled from the history after a reload, its images browsed
// full size in the lightbox (previous/next through them all), and the graph behind an image
// loaded back: the workflow embedded in the PNG, else the graph of the run that made it.

import {api, viewUrl} from "./api_client.js";
import {openImage} from "./lightbox.js";
import {readPngText} from "./png_metadata.js";
import {toast} from "./toast.js";

// PNG text keys that carry a graph: ours (SaveImage), ComfyUI's, A1111's.
const GRAPH_KEYS = ["graphflow", "prompt", "workflow", "parameters"];

/** Whether a picture's bytes carry a graph we can open. */
export async function carriesWorkflow(buffer) {
  try {
    const text = await readPngText(buffer);
    return GRAPH_KEYS.some((key) => key in text);
  } catch {
    return false; // not a PNG
  }
}

export class Gallery {
  /** app: {panel, openFile(file), loadRun(runId)} */
  constructor(app) {
    this.app = app;
  }

  /** The images of the last successful runs, from the history (oldest first: the panel puts the newest on top). */
  async load(limit = 24) {
    try {
      const page = await api.history(0, limit);
      for (const run of page.items.filter((i) => i.status === "success").reverse()) {
        for (const [id, ui] of Object.entries(run.outputs || {})) {
          if (ui.images && ui.images.length) this.app.panel.addResults(ui.images, `run #${run.number ?? ""} · node #${id}`, run.run_id);
        }
      }
    } catch { /* no history: an empty gallery */ }
  }

  /** Open `image` in the lightbox among every result shown (a node's image not yet among them comes first). */
  open(image) {
    const url = viewUrl(image);
    let items = this.app.panel.entries;
    let index = items.findIndex((e) => e.url === url);
    if (index < 0) {
      items = [{image, url, runId: null}, ...items];
      index = 0;
    }
    openImage(items.map((e) => ({...e, name: e.image.filename})), index, (item) => this.loadWorkflow(item).catch((e) => toast(e.message, {kind: "error"})));
  }

  /** Load the graph behind an image (asking first if the graph has unsaved edits; Undo brings it back). */
  async loadWorkflow(item) {
    const buffer = await (await fetch(item.url)).arrayBuffer();
    if (await carriesWorkflow(buffer)) {
      await this.app.openFile(new File([buffer], item.image.filename, {type: "image/png"}));
    } else if (item.runId) {
      await this.app.loadRun(item.runId);
    } else {
      throw new Error(`${item.image.filename} carries no workflow and its run is unknown`);
    }
  }
}
