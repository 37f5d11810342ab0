// Mouse, touch-pad and keyboard input on the canvas: pan, zoom, select, move, resize,
// wire links by dragging between sockets, open menus, and the editing shortcuts.

import {contextMenu} from "./menu.js";
import {LinkLayer} from "./links.js";
import {DEFAULT_WIDTH} from "./graph.js";
import {colorEntries, setColor, toggleCollapsed} from "./node_looks.js";
import {editInline, track} from "./pointer_drag.js";

const INTERACTIVE = "input, textarea, select, button, .w-number, [contenteditable]";
const MIN_WIDTH = 180;

export function isTyping(target = document.activeElement) {
  return Boolean(target && target.closest && target.closest("input, textarea, select, [contenteditable]"));
}

export class CanvasInput {
  /** layers: {groups, notes, reroutes} (groups.js, notes.js, reroutes.js), set by main.js */
  constructor(editor, menu, selectionBox) {
    this.editor = editor;
    this.layers = {};
    this.menu = menu;
    this.selectionBox = selectionBox;
    const canvas = editor.dom.canvas;
    this.canvas = canvas;
    canvas.addEventListener("pointerdown", (e) => this.pointerDown(e));
    canvas.addEventListener("pointermove", (e) => {
      this.editor.pointerWorld = this.editor.viewport.toWorld(e.clientX, e.clientY);
    });
    canvas.addEventListener("wheel", (e) => this.wheel(e), {passive: false});
    canvas.addEventListener("dblclick", (e) => this.doubleClick(e));
    canvas.addEventListener("contextmenu", (e) => this.contextMenu(e));
    document.addEventListener("keydown", (e) => this.key(e));
  }

  nodeIdOf(target) {
    const node = target.closest && target.closest(".node");
    return node ? node.dataset.nodeId : null;
  }

  // --- pointer ---

  pointerDown(e) {
    if (e.button === 2) return; // context menu
    if (e.button === 1) { // the middle button pans from anywhere
      this.pan(e);
      return;
    }
    const target = e.target;
    const editor = this.editor;
    const socket = target.closest(".socket");
    const nodeId = this.nodeIdOf(target);
    if (socket && nodeId && e.button === 0) {
      e.preventDefault();
      const row = socket.closest("[data-input], [data-output]");
      if (socket.dataset.socket === "output") this.dragLink(e, {src: nodeId, out: Number(row.dataset.outputIndex)});
      else this.dragFromInput(e, nodeId, row.dataset.input);
      return;
    }
    if (target.closest(".node-resize") && nodeId) {
      e.preventDefault();
      this.resize(e, nodeId);
      return;
    }
    if (nodeId) {
      editor.raise(nodeId);
      if (target.closest(INTERACTIVE) || e.button !== 0) return;
      if (e.altKey) {  // Alt+drag clones, as in ComfyUI: the copies move, the originals stay
        if (!editor.selected.has(nodeId)) editor.select([nodeId]);
        e.preventDefault();
        if (editor.cloneSelection()) this.moveNodes(e, true);
        return;
      }
      if (e.shiftKey || e.ctrlKey || e.metaKey) editor.toggle(nodeId);
      else if (!editor.selected.has(nodeId)) editor.select([nodeId]);
      this.moveNodes(e);
      return;
    }
    const link = target.closest("g.link");
    if (link && e.button === 0) {
      editor.selectLink(LinkLayer.key(link.dataset.linkDst, link.dataset.linkInput));
      return;
    }
    if (e.button === 0 && (e.ctrlKey || e.shiftKey || e.metaKey)) this.boxSelect(e);
    else if (e.button === 0 || e.button === 1) this.pan(e);
  }

  pan(e) {
    e.preventDefault();
    const viewport = this.editor.viewport;
    let lastX = e.clientX, lastY = e.clientY;
    this.canvas.classList.add("panning");
    this.canvas.focus({preventScroll: true});
    track(e, (ev) => {
      viewport.panBy(ev.clientX - lastX, ev.clientY - lastY);
      lastX = ev.clientX;
      lastY = ev.clientY;
    }, (ev, moved) => {
      this.canvas.classList.remove("panning");
      if (!moved) this.editor.select([]);
    });
  }

  boxSelect(e) {
    e.preventDefault();
    const editor = this.editor;
    const start = editor.viewport.toWorld(e.clientX, e.clientY);
    const origin = this.canvas.getBoundingClientRect();
    const box = this.selectionBox;
    const additive = e.shiftKey;
    track(e, (ev) => {
      const x = Math.min(e.clientX, ev.clientX) - origin.left, y = Math.min(e.clientY, ev.clientY) - origin.top;
      Object.assign(box.style, {left: `${x}px`, top: `${y}px`, width: `${Math.abs(ev.clientX - e.clientX)}px`, height: `${Math.abs(ev.clientY - e.clientY)}px`});
      box.hidden = false;
    }, (ev) => {
      box.hidden = true;
      const end = editor.viewport.toWorld(ev.clientX, ev.clientY);
      const [x0, x1] = [Math.min(start[0], end[0]), Math.max(start[0], end[0])];
      const [y0, y1] = [Math.min(start[1], end[1]), Math.max(start[1], end[1])];
      const hit = [];
      for (const [id, view] of editor.views) {
        const [nx, ny] = view.node.pos;
        if (nx < x1 && nx + view.node.width > x0 && ny < y1 && ny + view.el.offsetHeight > y0) hit.push(id);
      }
      editor.select(hit, additive);
    });
  }

  moveNodes(e, cloned = false) {
    const editor = this.editor;
    const zoom = editor.viewport.zoom;
    const ids = new Set(editor.selected);
    const starts = new Map([...ids].map((id) => [id, [...editor.graph.nodes.get(id).pos]]));
    for (const id of ids) editor.views.get(id).el.classList.add("dragging");
    track(e, (ev) => {
      const dx = (ev.clientX - e.clientX) / zoom, dy = (ev.clientY - e.clientY) / zoom;
      for (const [id, [x, y]] of starts) {
        const node = editor.graph.nodes.get(id);
        node.pos = [Math.round(x + dx), Math.round(y + dy)];
        editor.views.get(id).setPosition();
      }
      editor.updateLinksOf(ids);
    }, (ev, moved) => {
      for (const id of ids) editor.views.get(id)?.el.classList.remove("dragging");
      if (moved || cloned) editor.commit();
      else if (!(e.shiftKey || e.ctrlKey || e.metaKey)) editor.select([this.nodeIdOf(e.target)]);
    });
  }

  resize(e, id) {
    const editor = this.editor;
    const node = editor.graph.nodes.get(id);
    const start = node.width;
    track(e, (ev) => {
      node.width = Math.max(MIN_WIDTH, Math.round(start + (ev.clientX - e.clientX) / editor.viewport.zoom));
      editor.views.get(id).el.style.width = `${node.width}px`;
    }, (ev, moved) => { if (moved) editor.commit(); });
  }

  /** Dragging from an input: a linked one detaches its link and re-routes it from the source. */
  dragFromInput(e, nodeId, input) {
    const editor = this.editor;
    const existing = editor.graph.nodes.get(nodeId).links[input];
    if (existing) {
      editor.disconnect(nodeId, input, false);
      this.dragLink(e, {src: existing[0], out: existing[1]}, true);
    } else this.dragLink(e, {dst: nodeId, input});
  }

  /**
   * Drag a new link from an output ({src, out}) or back from an input ({dst, input}) and
   * connect it where it's dropped; dropped on empty canvas, offer the nodes that fit.
   */
  dragLink(e, end, detached = false) {
    const editor = this.editor;
    const fromOutput = "src" in end;
    const anchorView = editor.views.get(fromOutput ? end.src : end.dst);
    const offsets = anchorView.offsets(editor.viewport.zoom);
    const rel = (fromOutput ? offsets.outputs[end.out] : offsets.inputs.get(end.input)) || [0, 16];
    const via = end.via || null; // out of a Reroute point: the link passes the same points
    const anchor = via ? [...editor.graph.reroutes.get(via[via.length - 1]).pos]
      : [anchorView.node.pos[0] + rel[0], anchorView.node.pos[1] + rel[1]];
    const type = fromOutput ? anchorView.spec?.outputs[end.out]?.type ?? "*" : null;
    const inputSpec = fromOutput ? null : editor.catalogue.input(anchorView.node.type, end.input);
    const color = editor.catalogue.color(type || (inputSpec && inputSpec.type) || "*");
    this.markTargets(end);
    const draw = (ev) => {
      const p = editor.viewport.toWorld(ev.clientX, ev.clientY);
      if (fromOutput) editor.linkLayer.showDraft(anchor, p, color);
      else editor.linkLayer.showDraft(p, anchor, color);
    };
    draw(e);
    track(e, draw, (ev, moved) => {
      editor.linkLayer.hideDraft();
      this.clearTargets();
      if (!moved && !detached) return;
      const target = this.dropTarget(ev, end);
      if (target) {
        const [src, out, dst, input] = fromOutput ? [end.src, end.out, target.id, target.name] : [target.id, target.index, end.dst, end.input];
        const check = editor.canConnect(src, out, dst, input);
        if (check.ok) editor.connect(src, out, dst, input, fromOutput ? via : null);
        else {
          this.refuse(ev, check.reason, target.row);
          if (detached) editor.commit();
        }
        return;
      }
      if (detached) {
        editor.commit(); // dropped nowhere: the link is removed
        return;
      }
      if (!this.nodeIdOf(document.elementFromPoint(ev.clientX, ev.clientY) || document.body)) {
        this.offerNodes(ev, end, type, inputSpec);
      }
    });
  }

  /** The socket row under the pointer that the dragged link could end on. */
  dropTarget(ev, end) {
    const editor = this.editor;
    const under = document.elementFromPoint(ev.clientX, ev.clientY);
    const id = under && this.nodeIdOf(under);
    if (!id) return null;
    const fromOutput = "src" in end;
    const row = under.closest(fromOutput ? "[data-input]" : "[data-output]");
    if (row && row.closest(".node").dataset.nodeId === id) {
      return fromOutput ? {id, name: row.dataset.input, row} : {id, index: Number(row.dataset.outputIndex), row};
    }
    // Dropped on the node but not on a socket: the first free input (or output) that fits.
    const view = editor.views.get(id);
    if (!view || !view.spec) return null;
    if (fromOutput) {
      const fits = view.spec.inputs.filter((i) => editor.canConnect(end.src, end.out, id, i.name).ok);
      const pick = fits.find((i) => !(i.name in view.node.links) && !i.kind) || fits.find((i) => !(i.name in view.node.links));
      if (pick) return {id, name: pick.name, row: view.el.querySelector(`[data-input="${CSS.escape(pick.name)}"]`)};
      const first = view.spec.inputs.find((i) => !i.kind);
      return first ? {id, name: first.name, row: view.el.querySelector(`[data-input="${CSS.escape(first.name)}"]`)} : null;
    }
    const index = view.spec.outputs.findIndex((o, k) => editor.canConnect(id, k, end.dst, end.input).ok);
    const k = index >= 0 ? index : 0;
    return view.spec.outputs.length ? {id, index: k, row: view.el.querySelector(`[data-output-index="${k}"]`)} : null;
  }

  /** While dragging, mark which sockets would accept the link. */
  markTargets(end) {
    const editor = this.editor;
    this.canvas.classList.add("linking");
    const fromOutput = "src" in end;
    for (const [id, view] of editor.views) {
      if (fromOutput) {
        for (const name of view.inputSockets.keys()) {
          const row = view.el.querySelector(`[data-input="${CSS.escape(name)}"]`);
          row.classList.toggle("can-link", editor.canConnect(end.src, end.out, id, name).ok);
        }
      } else {
        view.outputSockets.forEach((socket, k) => {
          socket.parentElement.classList.toggle("can-link", editor.canConnect(id, k, end.dst, end.input).ok);
        });
      }
    }
  }

  clearTargets() {
    this.canvas.classList.remove("linking");
    for (const row of this.canvas.querySelectorAll(".can-link")) row.classList.remove("can-link");
  }

  /** Show why a link was refused, next to where it was dropped. */
  refuse(ev, reason, row) {
    const box = this.canvas.getBoundingClientRect();
    document.querySelectorAll(".link-refused").forEach((n) => n.remove());
    const note = document.createElement("div");
    note.className = "link-refused";
    note.setAttribute("role", "alert");
    note.textContent = `Can't link: ${reason}`;
    note.style.left = `${ev.clientX - box.left + 12}px`;
    note.style.top = `${ev.clientY - box.top + 12}px`;
    this.canvas.append(note);
    setTimeout(() => note.remove(), 4000);
    if (row) {
      row.classList.add("refused");
      setTimeout(() => row.classList.remove("refused"), 1200);
    }
  }

  async offerNodes(ev, end, type, inputSpec) {
    const editor = this.editor;
    const at = editor.viewport.toWorld(ev.clientX, ev.clientY);
    const fromOutput = "src" in end;
    const filter = fromOutput
      ? (spec) => spec.inputs.some((i) => editor.catalogue.accepts(i, type).ok)
      : (spec) => spec.outputs.some((o) => editor.catalogue.accepts(inputSpec, o.type).ok);
    const spec = await this.menu.open(ev.clientX, ev.clientY, {filter, title: fromOutput ? `Link ${type} to` : `Feed '${end.input}' from`});
    if (!spec) return;
    const node = editor.addNode(spec, fromOutput ? at : [at[0] - DEFAULT_WIDTH, at[1]]);
    if (fromOutput) {
      const input = spec.inputs.find((i) => !i.kind && editor.catalogue.accepts(i, type).ok) || spec.inputs.find((i) => editor.catalogue.accepts(i, type).ok);
      if (input) editor.connect(end.src, end.out, node.id, input.name);
    } else {
      const out = spec.outputs.findIndex((o) => editor.catalogue.accepts(inputSpec, o.type).ok);
      if (out >= 0) editor.connect(node.id, out, end.dst, end.input);
    }
  }

  // --- wheel, menus ---

  wheel(e) {
    if (this.menu.isOpen) return;
    const field = e.target.closest("textarea, .node-menu, .output-text");
    if (field && field.scrollHeight > field.clientHeight && !e.ctrlKey) return; // let it scroll
    e.preventDefault();
    const delta = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaY;
    this.editor.viewport.zoomAt(e.clientX, e.clientY, Math.exp(-delta * (e.ctrlKey ? 0.01 : 0.0015)));
  }

  async openAddMenu(clientX, clientY) {
    const at = this.editor.viewport.toWorld(clientX, clientY);
    const spec = await this.menu.open(clientX, clientY);
    if (!spec) return;
    if (spec.virtual === "note") this.layers.notes.add(spec, at);
    else if (spec.virtual === "reroute") this.layers.reroutes.add(at);
    else this.editor.addNode(spec, at);
  }

  doubleClick(e) {
    const id = this.nodeIdOf(e.target);
    if (id) {
      if (e.target.closest(".node-title")) this.renameInline(id);
      return;
    }
    if (e.target.closest("g.link")) return;
    this.openAddMenu(e.clientX, e.clientY);
  }

  contextMenu(e) {
    if (e.target.closest("input, textarea")) return;
    e.preventDefault();
    const editor = this.editor;
    const id = this.nodeIdOf(e.target);
    const link = e.target.closest("g.link");
    if (id) {
      if (!editor.selected.has(id)) editor.select([id]);
      const many = editor.selected.size > 1;
      const collapsed = [...editor.selected].every((n) => editor.graph.nodes.get(n)?.collapsed);
      contextMenu(e.clientX, e.clientY, [
        {label: "Rename", action: () => this.renameInline(id), disabled: many},
        {label: collapsed ? "Expand" : "Collapse", action: () => toggleCollapsed(editor, editor.selected)},
        {label: "Colour…", action: () => contextMenu(e.clientX, e.clientY, colorEntries((name) => setColor(editor, editor.selected, name)))},
        {label: many ? "Group nodes" : "Add group", action: () => this.layers.groups.groupSelection()},
        {label: many ? "Duplicate nodes" : "Duplicate", action: () => editor.duplicate()},
        {label: "Copy", action: () => editor.copy()},
        {label: many ? `Delete ${editor.selected.size} nodes` : "Delete", danger: true, action: () => editor.deleteNodes(new Set(editor.selected))},
      ]);
    } else if (link) {
      const key = LinkLayer.key(link.dataset.linkDst, link.dataset.linkInput);
      editor.selectLink(key);
      const at = editor.viewport.toWorld(e.clientX, e.clientY);
      contextMenu(e.clientX, e.clientY, [
        {label: "Add reroute here", action: () => this.layers.reroutes.addOnLink(link.dataset.linkDst, link.dataset.linkInput, at)},
        {label: "Delete link", danger: true, action: () => editor.disconnect(link.dataset.linkDst, link.dataset.linkInput)},
      ]);
    } else this.openAddMenu(e.clientX, e.clientY);
  }

  async renameInline(id) {
    const view = this.editor.views.get(id);
    const text = await editInline(view.titleEl, view.title);
    if (text === null) view.refresh();
    else this.editor.rename(id, text === (view.spec ? view.spec.display_name : "") ? "" : text);
  }

  // --- keyboard ---

  key(e) {
    if (isTyping(e.target) || this.menu.isOpen || document.querySelector(".modal")) return;
    const editor = this.editor;
    const ctrl = e.ctrlKey || e.metaKey;
    const k = e.key.toLowerCase();
    if (e.key === "Delete" || e.key === "Backspace") editor.deleteSelection();
    else if (ctrl && k === "z" && !e.shiftKey) editor.undo();
    else if (ctrl && (k === "y" || (k === "z" && e.shiftKey))) editor.redo();
    else if (ctrl && k === "c") editor.copy();
    else if (ctrl && k === "x") { if (editor.copy()) editor.deleteNodes(new Set(editor.selected)); }
    else if (ctrl && k === "v") editor.paste(e.shiftKey);
    else if (ctrl && k === "d") editor.duplicate();
    else if (ctrl && k === "b") editor.toggleMode("bypass");
    else if (ctrl && k === "m") editor.toggleMode("mute");
    else if (ctrl && k === "a") editor.select([...editor.views.keys()]);
    else if (ctrl && k === "g") this.layers.groups.groupSelection();
    else if (e.altKey && (k === "c" || e.code === "KeyC")) toggleCollapsed(editor, editor.selected);
    else if (e.key === "." && !ctrl) editor.fit();
    else if (e.key === "Escape") editor.select([]);
    else return;
    e.preventDefault();
  }
}
