// One node on the canvas: header, link sockets, widgets, run state (running, progress bar,
// live preview), results (images, text) and problems reported for the node or its inputs.

import {categoryColor, displayName, isWidget} from "./catalogue.js";
import {createWidget} from "./widgets.js";
import {controlSelect, hasControl} from "./seed_control.js";
import {viewUrl} from "./api_client.js";

function el(tag, className, attrs = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

export class NodeView {
  /**
   * node: the graph node; spec: its catalogue entry or null (unknown type);
   * hooks: {change(node, input, value, commit), upload, paintMask, thumbnail, openImage}
   */
  constructor(node, spec, catalogue, hooks) {
    this.node = node;
    this.spec = spec;
    this.hooks = hooks;
    this.widgets = new Map();
    this.inputSockets = new Map();
    this.outputSockets = [];
    this.socketOffsets = null; // cached socket centres relative to the node's position

    const root = el("div", "node", {"data-node-id": node.id, "data-node-type": node.type});
    if (!spec) root.classList.add("unknown");
    if (spec && spec.output_node) root.classList.add("output-node");
    root.style.setProperty("--accent", spec ? categoryColor(spec.category) : "#8a3a3a");
    this.el = root;

    const header = el("div", "node-header");
    this.titleEl = el("span", "node-title");
    this.badge = el("span", "node-badge");
    this.idEl = el("span", "node-id");
    this.idEl.textContent = `#${node.id}`;
    header.append(this.titleEl, this.badge, this.idEl);
    if (spec && spec.description) header.title = spec.description;
    this.progress = el("div", "node-progress");
    this.progress.append(el("div", "node-progress-bar"));

    const slots = el("div", "node-slots");
    const ins = el("div", "slot-inputs");
    const outs = el("div", "slot-outputs");
    slots.append(ins, outs);
    this.widgetBox = el("div", "node-widgets");

    const inputs = spec ? spec.inputs : this.unknownInputs();
    for (const input of inputs) {
      if (spec && isWidget(input)) {
        const widget = createWidget(input, node.values[input.name], {
          change: (value, commit) => hooks.change(node, input.name, value, commit),
          upload: hooks.upload,
          paintMask: hooks.paintMask,
          thumbnail: hooks.thumbnail,
          values: () => node.values,
        });
        if (hasControl(input) && hooks.setControl) {
          widget.el.append(controlSelect((node.control || {})[input.name], (mode) => hooks.setControl(node, input.name, mode)));
        }
        widget.el.querySelector(".socket").style.setProperty("--socket-color", catalogue.color(input.type === "CHOICE" ? "STRING" : input.type));
        this.widgets.set(input.name, widget);
        this.inputSockets.set(input.name, widget.el.querySelector(".socket"));
        this.widgetBox.append(widget.el);
      } else {
        const row = el("div", "slot in", {"data-input": input.name, "data-type": input.type});
        if (!input.required) row.classList.add("optional");
        const socket = el("span", "socket", {"data-socket": "input"});
        socket.style.setProperty("--socket-color", catalogue.color(input.type));
        const label = el("span", "slot-label");
        label.textContent = input.name;
        row.title = `${input.name}: ${input.type}${input.required ? "" : " (optional)"}`;
        const error = el("div", "w-error");
        row.append(socket, label, error);
        ins.append(row);
        this.inputSockets.set(input.name, socket);
        if (!spec && input.value !== undefined) {
          label.textContent = `${input.name}: ${JSON.stringify(input.value).slice(0, 40)}`;
          socket.hidden = true;
        }
      }
    }
    (spec ? spec.outputs : this.unknownOutputs()).forEach((output, index) => {
      const row = el("div", "slot out", {"data-output": output.name, "data-output-index": String(index), "data-type": output.type});
      const label = el("span", "slot-label");
      label.textContent = output.name;
      row.title = `${output.name}: ${output.type}`;
      const socket = el("span", "socket", {"data-socket": "output"});
      socket.style.setProperty("--socket-color", catalogue.color(output.type));
      if (output.is_list) {  // a list: the nodes after it run once per item (a square socket, as in ComfyUI)
        socket.classList.add("list");
        row.title += " (a list: the nodes after it run once per item)";
      }
      row.append(label, socket);
      outs.append(row);
      this.outputSockets.push(socket);
    });

    this.preview = el("div", "node-preview");
    this.outputBox = el("div", "node-output");
    this.message = el("div", "node-message", {role: "alert"});
    const resize = el("div", "node-resize", {title: "Drag to resize"});
    root.append(header, this.progress, slots, this.widgetBox, this.preview, this.outputBox, this.message, resize);
    this.refresh();
  }

  /** Inputs of a node whose type isn't in the catalogue, from what the workflow holds. */
  unknownInputs() {
    const names = new Set([...Object.keys(this.node.links), ...Object.keys(this.node.values)]);
    return [...names].map((name) => ({name, type: "*", required: true, value: this.node.values[name]}));
  }

  unknownOutputs() {
    return [{name: "output", type: "*"}];
  }

  get title() {
    return this.node.title || (this.spec ? displayName(this.spec) : `Unknown: ${this.node.type}`);
  }

  /** Re-read position, width, title and widget values from the graph node. */
  refresh() {
    const {node} = this;
    this.el.style.left = `${node.pos[0]}px`;
    this.el.style.top = `${node.pos[1]}px`;
    this.el.style.width = `${node.width}px`;
    this.titleEl.textContent = this.title;
    for (const [name, widget] of this.widgets) widget.setValue(node.values[name]);
  }

  setPosition() {
    this.el.style.left = `${this.node.pos[0]}px`;
    this.el.style.top = `${this.node.pos[1]}px`;
  }

  /** Mark linked inputs (label: where the link comes from) and connected sockets. */
  setLinks(linkedFrom, connectedOutputs) {
    for (const [name, socket] of this.inputSockets) {
      const label = linkedFrom.get(name);
      socket.classList.toggle("connected", Boolean(label));
      const widget = this.widgets.get(name);
      if (widget) widget.setLinked(label || "");
    }
    this.outputSockets.forEach((socket, i) => socket.classList.toggle("connected", connectedOutputs.has(i)));
  }

  setOptions(name, options) {
    const widget = this.widgets.get(name);
    if (widget) widget.setOptions(options);
  }

  /** Centres of the sockets relative to the node's position, measured once per layout. */
  offsets(zoom) {
    if (this.socketOffsets) return this.socketOffsets;
    const base = this.el.getBoundingClientRect();
    const centre = (socket) => {
      const r = socket.getBoundingClientRect();
      if (!r.width && !r.height) return null;
      return [(r.left + r.width / 2 - base.left) / zoom, (r.top + r.height / 2 - base.top) / zoom];
    };
    const inputs = new Map();
    for (const [name, socket] of this.inputSockets) inputs.set(name, centre(socket));
    this.socketOffsets = {inputs, outputs: this.outputSockets.map(centre), height: base.height / zoom};
    return this.socketOffsets;
  }

  invalidate() {
    this.socketOffsets = null;
  }

  setSelected(selected) {
    this.el.classList.toggle("selected", selected);
  }

  // --- run state ---

  setStatus(status) {
    this.el.classList.remove("running", "done", "cached", "failed");
    if (status) this.el.classList.add(status);
    this.badge.textContent = {running: "running", cached: "cached", failed: "failed"}[status] || "";
    if (status !== "running") this.setProgress(null);
  }

  setProgress(value, max) {
    const bar = this.progress.firstElementChild;
    if (value === null || !max) {
      this.progress.classList.remove("active");
      bar.style.width = "0";
      return;
    }
    this.progress.classList.add("active");
    bar.style.width = `${Math.min(100, (100 * value) / max)}%`;
    this.progress.title = `step ${value} of ${max}`;
    this.progress.dataset.value = String(value);
    this.progress.dataset.max = String(max);
  }

  setPreview(url) {
    const old = this.preview.querySelector("img");
    if (!url) {
      this.preview.replaceChildren();
      return;
    }
    const img = old || el("img", "", {alt: "live preview", draggable: "false"});
    if (old && old.src.startsWith("blob:")) URL.revokeObjectURL(old.src);
    img.src = url;
    if (!old) this.preview.append(img);
  }

  /** What the node showed in a run: {images: [{filename, subfolder, type}], text: [...]}. */
  setOutputs(ui) {
    this.outputBox.replaceChildren();
    if (!ui) return;
    const images = (ui.images || []).filter((i) => i.filename);  // none: sent over the websocket, not saved
    if (images.length) {
      this.setPreview(null);
      const grid = el("div", images.length > 1 ? "output-images grid" : "output-images");
      for (const image of images) {
        const img = el("img", "output-image", {alt: image.filename, draggable: "false", "data-filename": image.filename});
        img.src = viewUrl(image);
        img.addEventListener("dblclick", () => this.hooks.openImage(image));
        grid.append(img);
      }
      this.outputBox.append(grid);
    }
    for (const entry of ui.text || []) {
      // A named entry (comfyui-tooling-nodes' KritaSendText: name, text, content-type) shows as its text.
      const text = entry && typeof entry === "object" && "text" in entry
        ? (entry.name ? `${entry.name}: ${entry.text}` : String(entry.text)) : String(entry);
      // Several lines are a table (LatentStats): kept unwrapped, scrolled sideways; one line wraps.
      const pre = el("pre", text.includes("\n") ? "output-text table" : "output-text");
      pre.textContent = text;
      this.outputBox.append(pre);
    }
  }

  /** Problems for this node: [{input, message}]; an input-less one is shown on the node. */
  setProblems(problems) {
    for (const widget of this.widgets.values()) widget.setError("");
    for (const row of this.el.querySelectorAll(".slot.in")) {
      row.classList.remove("error");
      row.querySelector(".w-error").textContent = "";
    }
    const general = [];
    for (const problem of problems) {
      const widget = problem.input && this.widgets.get(problem.input);
      const row = problem.input && this.el.querySelector(`.slot.in[data-input="${CSS.escape(problem.input)}"]`);
      if (widget) widget.setError(problem.message);
      else if (row) {
        row.classList.add("error");
        row.querySelector(".w-error").textContent = problem.message;
      } else general.push(problem.input ? `${problem.input}: ${problem.message}` : problem.message);
    }
    this.el.classList.toggle("has-error", problems.length > 0);
    this.message.replaceChildren();
    for (const text of general) {
      const line = el("div", "node-message-line");
      line.textContent = text;
      this.message.append(line);
    }
  }
}
