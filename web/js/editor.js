// The editor: keeps the node views and links in step with the graph, owns selection,
// clipboard and undo, and shows problems and run state on the nodes they concern.

import {Graph} from "./graph.js";
import {LinkLayer} from "./links.js";
import {NodeView} from "./node_view.js";
import {UndoHistory} from "./undo.js";
import {nextValue} from "./seed_control.js";
import {Viewport} from "./viewport.js";
import {NodeSpacing} from "./node_spacing.js";
import {displayName, isWidget} from "./catalogue.js";
import {applyLooks} from "./node_looks.js";

const CLIPBOARD_KEY = "graphflow.clipboard";

export class Editor {
  /** dom: {canvas, world, links, nodes, emptyHint, zoomIndicator}; hooks: {upload, paintMask, thumbnail, openImage, changed, historyChanged, nodeAdded, edited} */
  constructor(dom, catalogue, hooks) {
    this.dom = dom;
    this.catalogue = catalogue;
    this.hooks = hooks;
    this.graph = new Graph();
    this.views = new Map();
    this.selected = new Set();
    this.selectedLink = null;
    this.pointerWorld = [0, 0];
    this.shown = new Map(); // node id -> what it showed in the last run (kept across undo)
    this.problems = []; // the problems on display (kept across undo)
    this.linkLayer = new LinkLayer(dom.links);
    this.history = new UndoHistory(() => hooks.historyChanged && hooks.historyChanged(this.history));
    this.viewport = new Viewport(dom.canvas, dom.world, (v) => {
      dom.zoomIndicator.textContent = `${Math.round(v.zoom * 100)}%`;
      hooks.changed && hooks.changed("view");
    });
    this.linkFrame = 0;
    this.topZ = 0; // the z-index of the node last clicked
    this.spacing = new NodeSpacing(this, () => {
      this.history.amend(this.graph.snapshot());
      this.hooks.changed && this.hooks.changed("graph");
    });
    this.layers = []; // groups, notes, Reroutes, minimap: each has render(), called after a rebuild
    this.resizeObserver = new ResizeObserver((entries) => {
      for (const entry of entries) {
        const view = this.views.get(entry.target.dataset.nodeId);
        if (view) view.invalidate();
      }
      this.spacing.observe(entries.map((e) => e.target.dataset.nodeId));
      this.scheduleLinks();
    });
  }

  // --- loading and rebuilding ---

  /** Replace the graph (a loaded workflow); `view` is the saved pan/zoom or null to fit.
   * `undoable`: Undo brings the replaced graph back (New, Open, a drop, History → Load). */
  load(graph, view = null, undoable = false) {
    this.graph = graph;
    this.shown.clear();
    this.problems = [];
    this.selected.clear();
    this.selectedLink = null;
    this.spacing.placed = new Set(graph.autoPlaced || []);
    this.rebuild();
    if (view) this.viewport.set(view);
    else this.fit();
    if (undoable && this.history.states.length) this.history.record(this.graph.snapshot());
    else this.history.reset(this.graph.snapshot());
    this.hooks.changed && this.hooks.changed("graph");
  }

  rebuild() {
    this.resizeObserver.disconnect();
    this.spacing.forget();
    this.dom.nodes.replaceChildren();
    this.views.clear();
    for (const node of this.graph.nodes.values()) this.createView(node);
    this.syncLinks();
    for (const [id, ui] of this.shown) this.views.get(id)?.setOutputs(ui);
    if (this.problems.length) this.showProblems(this.problems);
    for (const layer of this.layers) layer.render();
  }

  createView(node) {
    const view = new NodeView(node, this.catalogue.get(node.type), this.catalogue, {
      change: (n, input, value, commit) => this.setValue(n.id, input, value, commit),
      setControl: (n, input, mode) => {
        n.control = {...(n.control || {}), [input]: mode};
        if (mode === "fixed") delete n.control[input];
        this.commit();
      },
      upload: this.hooks.upload,
      paintMask: this.hooks.paintMask,
      thumbnail: this.hooks.thumbnail,
      openImage: this.hooks.openImage,
    });
    view.setSelected(this.selected.has(node.id));
    view.el.dataset.mode = node.mode || "";
    applyLooks(view.el, node);
    this.dom.nodes.append(view.el);
    this.views.set(node.id, view);
    this.resizeObserver.observe(view.el);
    return view;
  }

  /** Redraw every link and refresh linked/connected marks on the nodes. */
  syncLinks() {
    const links = this.graph.links().map((l) => this.geometry(l)).filter(Boolean);
    this.linkLayer.sync(links);
    this.linkLayer.select(this.selectedLink);
    const connectedOutputs = new Map();
    for (const link of this.graph.links()) {
      if (!connectedOutputs.has(link.src)) connectedOutputs.set(link.src, new Set());
      connectedOutputs.get(link.src).add(link.out);
    }
    for (const [id, view] of this.views) {
      const linkedFrom = new Map();
      for (const [input, [src, out]] of Object.entries(view.node.links)) {
        const srcView = this.views.get(src);
        const output = srcView && srcView.spec && srcView.spec.outputs[out];
        linkedFrom.set(input, srcView ? `${srcView.title}${output ? `.${output.name}` : ""}` : `missing node ${src}`);
      }
      view.setLinks(linkedFrom, connectedOutputs.get(id) || new Set());
    }
    this.dom.emptyHint.hidden = this.graph.nodes.size > 0;
  }

  scheduleLinks() {
    if (this.linkFrame) return;
    this.linkFrame = requestAnimationFrame(() => {
      this.linkFrame = 0;
      this.linkLayer.sync(this.graph.links().map((l) => this.geometry(l)).filter(Boolean));
      this.linkLayer.select(this.selectedLink);
    });
  }

  /** World positions and colour of a link's ends; null if an end is missing. */
  geometry(link) {
    const srcView = this.views.get(link.src);
    const dstView = this.views.get(link.dst);
    if (!srcView || !dstView) return null;
    const zoom = this.viewport.zoom;
    const out = srcView.offsets(zoom).outputs[link.out] || [srcView.node.width, 16];
    const inp = dstView.offsets(zoom).inputs.get(link.input) || [0, 16];
    const output = srcView.spec && srcView.spec.outputs[link.out];
    return {
      ...link,
      from: [srcView.node.pos[0] + out[0], srcView.node.pos[1] + out[1]],
      to: [dstView.node.pos[0] + inp[0], dstView.node.pos[1] + inp[1]],
      via: this.graph.viaOf(dstView.node, link.input).map((id) => this.graph.reroutes.get(id).pos),
      color: this.catalogue.color(output ? output.type : "*"),
    };
  }

  /** Move the links attached to the given nodes or Reroutes (while they are dragged). */
  updateLinksOf(ids) {
    const links = this.graph.links().filter((l) => ids.has(l.src) || ids.has(l.dst) ||
      this.graph.viaOf(this.graph.nodes.get(l.dst), l.input).some((r) => ids.has(r)));
    this.linkLayer.update(links.map((l) => this.geometry(l)).filter(Boolean));
  }

  // --- committing edits ---

  /** An edit is complete: record it for undo and save it. */
  commit() {
    for (const layer of this.layers) layer.changed?.();
    this.history.record(this.graph.snapshot());
    this.hooks.changed && this.hooks.changed("graph");
  }

  undo() {
    const state = this.history.undo();
    if (state) this.restore(state);
  }

  redo() {
    const state = this.history.redo();
    if (state) this.restore(state);
  }

  restore(state) {
    this.graph = Graph.fromSnapshot(state);
    for (const id of [...this.selected]) if (!this.graph.nodes.has(id)) this.selected.delete(id);
    this.selectedLink = null;
    this.rebuild();
    this.hooks.changed && this.hooks.changed("graph");
  }

  // --- edits ---

  setValue(id, input, value, commit) {
    const node = this.graph.nodes.get(id);
    if (!node) return;
    node.values[input] = value;
    const view = this.views.get(id);
    if (view) view.widgets.get(input)?.setError("");
    if (commit) {
      this.commit();
      this.hooks.edited && this.hooks.edited("value");
    } else this.hooks.changed && this.hooks.changed("value");
  }

  /** Before a queue: let the widgets of nodes that will run act (a webcam takes its frame). */
  async beforeQueue() {
    for (const [id, view] of this.views) {
      if (this.graph.nodes.get(id)?.mode) continue;  // muted or bypassed: it won't run
      for (const widget of view.widgets.values()) if (widget.beforeQueue) await widget.beforeQueue();
    }
  }

  /** After a queue: step or draw the seeds whose control after generate says so. */
  applyControls() {
    let changed = false;
    for (const node of this.graph.nodes.values()) {
      for (const [name, mode] of Object.entries(node.control || {})) {
        const input = this.catalogue.input(node.type, name);
        if (!input || name in node.links) continue;
        const value = nextValue(mode, node.values[name], input);
        if (value === node.values[name]) continue;
        node.values[name] = value;
        this.views.get(node.id)?.widgets.get(name)?.setValue(value);
        changed = true;
      }
    }
    if (changed) this.commit();
  }

  addNode(spec, worldPos) {
    const node = this.graph.addNode(spec, worldPos);
    this.createView(node);
    this.select([node.id]);
    this.syncLinks();
    this.commit();
    this.hooks.nodeAdded && this.hooks.nodeAdded(node);
    return node;
  }

  /** Set widget values of a node just added (defaults learnt later), as part of adding it. */
  amendValues(id, values) {
    const node = this.graph.nodes.get(id);
    if (!node) return;
    for (const [name, value] of Object.entries(values)) {
      node.values[name] = value;
      this.views.get(id)?.widgets.get(name)?.setValue(value);
    }
    this.history.amend(this.graph.snapshot());
    this.hooks.changed && this.hooks.changed("graph");
  }

  deleteNodes(ids) {
    if (!ids.size) return;
    for (const id of ids) {
      this.graph.removeNode(id);
      const view = this.views.get(id);
      if (view) {
        this.resizeObserver.unobserve(view.el);
        view.el.remove();
      }
      this.views.delete(id);
      this.selected.delete(id);
    }
    this.syncLinks();
    this.commit();
  }

  deleteSelection() {
    if (this.selectedLink) {
      const [dst, input] = this.selectedLink.split("\n");
      this.selectedLink = null;
      this.disconnect(dst, input);
    } else this.deleteNodes(new Set(this.selected));
  }

  /** Check a prospective link; returns {ok} or {ok: false, reason}. */
  canConnect(srcId, out, dstId, input) {
    const src = this.graph.nodes.get(srcId);
    const dst = this.graph.nodes.get(dstId);
    if (!src || !dst) return {ok: false, reason: "no such node"};
    if (srcId === dstId) return {ok: false, reason: "a node can't link to itself"};
    const srcSpec = this.catalogue.get(src.type);
    const dstSpec = this.catalogue.get(dst.type);
    const outType = srcSpec && srcSpec.outputs[out] ? srcSpec.outputs[out].type : "*";
    const target = dstSpec ? dstSpec.inputs.find((i) => i.name === input) : {name: input, type: "*"};
    const fit = this.catalogue.accepts(target, outType);
    if (!fit.ok) return fit;
    if (this.reaches(dstId, srcId)) return {ok: false, reason: "that link would make a cycle"};
    return {ok: true};
  }

  /** Whether `to` is downstream of `from` (or is it). */
  reaches(from, to) {
    const stack = [to];
    const seen = new Set();
    while (stack.length) {
      const id = stack.pop();
      if (id === from) return true;
      if (seen.has(id)) continue;
      seen.add(id);
      const node = this.graph.nodes.get(id);
      if (node) for (const [src] of Object.values(node.links)) stack.push(src);
    }
    return false;
  }

  connect(srcId, out, dstId, input, via = null) {
    this.graph.connect(srcId, out, dstId, input, via);
    this.syncLinks();
    this.commit();
    this.hooks.edited && this.hooks.edited("link");
  }

  disconnect(dstId, input, commit = true) {
    this.graph.disconnect(dstId, input);
    this.syncLinks();
    if (commit) {
      this.commit();
      this.hooks.edited && this.hooks.edited("link");
    }
  }

  /** Bypass (Ctrl+B) or mute (Ctrl+M) the selected nodes; again to turn it off, as in ComfyUI. */
  toggleMode(mode) {
    const nodes = [...this.selected].map((id) => this.graph.nodes.get(id)).filter(Boolean);
    if (!nodes.length) return;
    const next = nodes.every((n) => n.mode === mode) ? null : mode;
    for (const node of nodes) {
      node.mode = next;
      this.views.get(node.id).el.dataset.mode = next || "";
    }
    this.commit();
  }

  rename(id, title) {
    const node = this.graph.nodes.get(id);
    if (!node) return;
    node.title = title && title.trim() ? title.trim() : null;
    this.views.get(id).refresh();
    this.syncLinks();
    this.commit();
  }

  /** Bring a node to the front (it was clicked). */
  raise(id) {
    const view = this.views.get(id);
    if (view && view.el.style.zIndex !== String(this.topZ)) view.el.style.zIndex = String(++this.topZ);
  }

  // --- selection ---

  select(ids, additive = false) {
    for (const layer of this.layers) layer.deselect?.();
    if (!additive) this.selected.clear();
    for (const id of ids) this.selected.add(id);
    this.selectedLink = null;
    this.linkLayer.select(null);
    for (const [id, view] of this.views) view.setSelected(this.selected.has(id));
  }

  toggle(id) {
    if (this.selected.has(id)) this.selected.delete(id);
    else this.selected.add(id);
    this.views.get(id)?.setSelected(this.selected.has(id));
  }

  selectLink(key) {
    this.select([]);
    this.selectedLink = key;
    this.linkLayer.select(key);
  }

  // --- clipboard ---

  copy() {
    if (!this.selected.size) return false;
    const snap = this.graph.snapshot(this.selected);
    this.clipboard = snap;
    try {
      localStorage.setItem(CLIPBOARD_KEY, JSON.stringify(snap));
    } catch { /* storage full or disabled: the in-memory copy still works */ }
    return true;
  }

  /** Paste at the pointer; `keepInputs` keeps links coming from nodes outside the copy (when
   * pasted into the graph it was copied from: another tab's ids name other nodes). */
  paste(keepInputs = false, commit = true) {
    let snap = null;
    try {  // the latest copy, from whichever browser tab made it
      snap = JSON.parse(localStorage.getItem(CLIPBOARD_KEY) || "null");
    } catch { /* unreadable: the in-memory copy */ }
    snap = snap || this.clipboard;
    if (!snap || !snap.nodes.length) return;
    keepInputs = keepInputs && snap.source === this.graph.uid;
    const minX = Math.min(...snap.nodes.map((n) => n.pos[0]));
    const minY = Math.min(...snap.nodes.map((n) => n.pos[1]));
    const [px, py] = this.pointerWorld;
    const ids = new Map();
    for (const node of snap.nodes) {
      ids.set(node.id, this.graph.nextId());
      this.graph.nodes.set(ids.get(node.id), {id: ids.get(node.id)}); // reserve the id
    }
    for (const node of snap.nodes) {
      const copy = structuredClone(node);
      copy.id = ids.get(node.id);
      copy.pos = [Math.round(px + node.pos[0] - minX), Math.round(py + node.pos[1] - minY)];
      const links = {};
      for (const [input, [src, out]] of Object.entries(node.links)) {
        if (ids.has(src)) links[input] = [ids.get(src), out];
        else if (keepInputs && this.graph.nodes.has(src)) links[input] = [src, out];
      }
      copy.links = links;
      copy.via = {};
      this.graph.nodes.set(copy.id, copy);
    }
    for (const id of ids.values()) this.createView(this.graph.nodes.get(id));
    this.select([...ids.values()]);
    this.syncLinks();
    if (commit) this.commit();
  }

  /** Alt+drag: copies of the selection in place, selected (the drag then moves them). */
  cloneSelection() {
    if (!this.copy()) return false;
    const nodes = [...this.selected].map((id) => this.graph.nodes.get(id));
    const pointer = this.pointerWorld;
    this.pointerWorld = [Math.min(...nodes.map((n) => n.pos[0])), Math.min(...nodes.map((n) => n.pos[1]))];
    this.paste(false, false);
    this.pointerWorld = pointer;
    return true;
  }

  duplicate() {
    if (!this.copy()) return;
    const first = this.graph.nodes.get([...this.selected][0]);
    this.pointerWorld = [first.pos[0] + 40, first.pos[1] + 40];
    this.paste();
  }

  // --- view ---

  bounds(ids = null) {
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const [id, view] of this.views) {
      if (ids && !ids.has(id)) continue;
      const h = view.el.offsetHeight || 100;
      x0 = Math.min(x0, view.node.pos[0]);
      y0 = Math.min(y0, view.node.pos[1]);
      x1 = Math.max(x1, view.node.pos[0] + view.node.width);
      y1 = Math.max(y1, view.node.pos[1] + h);
    }
    return x0 === Infinity ? null : {x: x0, y: y0, w: x1 - x0, h: y1 - y0};
  }

  /** Fit the view: the selection when it holds 2 or more nodes, else the whole graph (one
   * selected node is usually just the last one clicked or added, not a choice to zoom to). */
  fit() {
    this.viewport.fit(this.bounds(this.selected.size > 1 ? this.selected : null));
    this.viewport.apply();
    for (const view of this.views.values()) view.invalidate();
    this.scheduleLinks();
  }

  workflow() {
    return this.graph.toWorkflow(this.catalogue, this.viewport.state);
  }

  // --- problems and run state ---

  /** Show problems ({node_id, input, message}) on their nodes; returns those that fit no node. */
  showProblems(problems) {
    this.problems = problems;
    const byNode = new Map();
    const general = [];
    for (const problem of problems) {
      if (problem.node_id != null && this.views.has(String(problem.node_id))) {
        const id = String(problem.node_id);
        if (!byNode.has(id)) byNode.set(id, []);
        byNode.get(id).push(problem);
      } else general.push(problem);
    }
    for (const [id, view] of this.views) view.setProblems(byNode.get(id) || []);
    return general;
  }

  clearProblems() {
    this.problems = [];
    for (const view of this.views.values()) view.setProblems([]);
  }

  /** What node `id` showed in a run (images, text). */
  showOutputs(id, ui) {
    this.shown.set(String(id), ui);
    this.views.get(String(id))?.setOutputs(ui);
  }

  clearRunState() {
    this.shown.clear();
    for (const view of this.views.values()) {
      view.setOutputs(null);
      view.setStatus(null);
      view.setPreview(null);
    }
  }

  /** Human label of a node for messages: "KSampler #3". */
  label(id) {
    const view = this.views.get(String(id));
    return view ? `${view.title} #${id}` : `node ${id}`;
  }

  /** Options of choice widgets changed (a new catalogue, after an upload). */
  updateCatalogue(catalogue) {
    this.catalogue = catalogue;
    for (const view of this.views.values()) {
      const spec = catalogue.get(view.node.type);
      if (!spec) continue;
      for (const input of spec.inputs) if (isWidget(input) && input.options) view.setOptions(input.name, input.options);
    }
  }

  specName(type) {
    const spec = this.catalogue.get(type);
    return spec ? displayName(spec) : type;
  }
}
