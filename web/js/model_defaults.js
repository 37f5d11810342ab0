// A new empty latent (EmptyLatent, EmptySD3Latent, ...) starts at the native size of the model
// the graph loads, where the server knows it (GET /api/models/checkpoints/info: the demo model
// is 64×64, SD1 512, SDXL 1024), instead of its node's fixed default.

import {api} from "./api_client.js";

/** Whether a spec is an empty latent with a size: "Empty…" with width and height, giving a LATENT. */
function isSizedLatent(spec) {
  return spec && spec.type.startsWith("Empty") && spec.outputs.some((o) => o.type === "LATENT") &&
    ["width", "height"].every((name) => spec.inputs.some((i) => i.name === name && i.kind === "INT"));
}

export class ModelDefaults {
  constructor(editor) {
    this.editor = editor;
    this.known = new Map(); // checkpoint name -> its info (a promise)
  }

  /** The checkpoint names the graph loads (LoadCheckpoint's and any other checkpoint picker's). */
  loadedCheckpoints() {
    const names = new Set();
    for (const node of this.editor.graph.nodes.values()) {
      const spec = this.editor.catalogue.get(node.type);
      for (const input of spec ? spec.inputs : []) {
        if (input.model_folder === "checkpoints" && !(input.name in node.links) && node.values[input.name]) names.add(node.values[input.name]);
      }
    }
    return [...names];
  }

  info(name) {
    if (!this.known.has(name)) this.known.set(name, api.modelInfo("checkpoints", name).catch(() => null));
    return this.known.get(name);
  }

  /** A node was added: size it for the loaded model (one checkpoint in the graph: no guessing between two). */
  async nodeAdded(node) {
    const spec = this.editor.catalogue.get(node.type);
    const names = this.loadedCheckpoints();
    if (!isSizedLatent(spec) || names.length !== 1) return;
    const info = await this.info(names[0]);
    if (!info || !info.native_size) return;
    const input = (name) => spec.inputs.find((i) => i.name === name);
    // Only values nobody has changed yet; kept on the node's step (EmptySD3Latent: 16).
    const values = {};
    info.native_size.forEach((size, k) => {
      const name = k ? "height" : "width";
      const {step = 1, min = 1, default: initial} = input(name);
      if (node.values[name] === initial) values[name] = Math.max(min, Math.round(size / step) * step);
    });
    this.editor.amendValues(node.id, values);
  }
}
