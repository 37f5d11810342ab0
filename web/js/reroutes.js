// Reroute points: dots a link passes through, to route it tidily (ComfyUI's Reroute nodes).
// The engine's link stays direct; the path lives in the ui block: `ui.reroutes` holds the
// points, `ui.nodes[id].via[input]` the points each link passes, from its source on. Added from
// a link's context menu (or the node menu, unattached), dragged to move, removed with Delete or
// their context menu; dragging from a dot to an input makes a link through it.

import {contextMenu} from "./menu.js";
import {track} from "./pointer_drag.js";

export const REROUTE_SPEC = {type: "Reroute", display_name: "Reroute", category: "utils", virtual: "reroute",
  inputs: [], outputs: [], description: "A point to route links through; it passes its link on unchanged and is not run."};

export class RerouteLayer {
  constructor(editor, root, input) {
    this.editor = editor;
    this.root = root;
    this.input = input; // canvas_input, for dragging a link out of a dot
    this.selected = null;
    root.addEventListener("pointerdown", (e) => this.pointerDown(e));
    root.addEventListener("contextmenu", (e) => {
      const dot = e.target.closest(".reroute");
      if (!dot) return;
      e.preventDefault();
      e.stopPropagation();
      contextMenu(e.clientX, e.clientY, [{label: "Remove reroute", danger: true, action: () => this.remove(dot.dataset.rerouteId)}]);
    });
    root.addEventListener("dblclick", (e) => { if (e.target.closest(".reroute")) e.stopPropagation(); });
    document.addEventListener("keydown", (e) => {
      if ((e.key === "Delete" || e.key === "Backspace") && this.selected && !e.target.closest("input, textarea, select")) {
        e.stopImmediatePropagation();
        e.preventDefault();
        this.remove(this.selected);
      }
    }, true);
  }

  render() {
    this.root.replaceChildren();
    const colors = new Map();  // each point in the colour of the link through it
    for (const link of this.editor.graph.links()) {
      const chain = this.editor.graph.viaOf(this.editor.graph.nodes.get(link.dst), link.input);
      if (!chain.length) continue;
      const view = this.editor.views.get(link.src);
      const output = view && view.spec && view.spec.outputs[link.out];
      for (const id of chain) colors.set(id, this.editor.catalogue.color(output ? output.type : "*"));
    }
    for (const point of this.editor.graph.reroutes.values()) {
      const dot = document.createElement("div");
      dot.className = `reroute${point.id === this.selected ? " selected" : ""}`;
      dot.dataset.rerouteId = point.id;
      dot.title = "Reroute: drag to move, Shift-drag to link from it, Delete to remove";
      dot.style.left = `${point.pos[0]}px`;
      dot.style.top = `${point.pos[1]}px`;
      if (colors.has(point.id)) dot.style.setProperty("--reroute-color", colors.get(point.id));
      this.root.append(dot);
    }
  }

  /** A new point on the link into `dst`.`input`, at world point `at`, in the leg nearest to it. */
  addOnLink(dst, input, at) {
    const graph = this.editor.graph;
    const node = graph.nodes.get(dst);
    const id = graph.nextId();
    graph.reroutes.set(id, {id, pos: at.map(Math.round)});
    const chain = graph.viaOf(node, input);
    const geometry = this.editor.geometry({src: node.links[input][0], out: node.links[input][1], dst, input});
    const points = [geometry.from, ...chain.map((r) => graph.reroutes.get(r).pos), geometry.to];
    let best = 0, bestDistance = Infinity;
    for (let k = 0; k < points.length - 1; k += 1) {
      const mid = [(points[k][0] + points[k + 1][0]) / 2, (points[k][1] + points[k + 1][1]) / 2];
      const distance = Math.hypot(mid[0] - at[0], mid[1] - at[1]);
      if (distance < bestDistance) [best, bestDistance] = [k, distance];
    }
    chain.splice(best, 0, id);
    node.via = {...(node.via || {}), [input]: chain};
    this.refresh();
    return id;
  }

  /** A point with nothing through it yet (from the node menu). */
  add(pos) {
    const id = this.editor.graph.nextId();
    this.editor.graph.reroutes.set(id, {id, pos: pos.map(Math.round)});
    this.refresh();
    return id;
  }

  remove(id) {
    this.editor.graph.removeReroute(id);
    if (this.selected === id) this.selected = null;
    this.refresh();
  }

  refresh() {
    this.render();
    this.editor.syncLinks();
    this.editor.commit();
  }

  /** The link a point carries: {src, out, chain} (chain: the points up to and including it). */
  source(id) {
    for (const node of this.editor.graph.nodes.values()) {
      for (const [input, [src, out]] of Object.entries(node.links)) {
        const chain = this.editor.graph.viaOf(node, input);
        const at = chain.indexOf(id);
        if (at >= 0) return {src, out, chain: chain.slice(0, at + 1)};
      }
    }
    return null;
  }

  pointerDown(e) {
    const dot = e.target.closest(".reroute");
    if (!dot || e.button !== 0) return;
    e.stopPropagation();
    e.preventDefault();
    const id = dot.dataset.rerouteId;
    this.editor.select([]);
    this.selected = id;
    this.render();
    const source = e.shiftKey ? this.source(id) : null;
    if (source) {  // a new link out of the dot, through the same points
      this.input.dragLink(e, {src: source.src, out: source.out, via: source.chain});
      return;
    }
    const point = this.editor.graph.reroutes.get(id);
    const zoom = this.editor.viewport.zoom;
    const [x0, y0] = point.pos;
    const moving = new Set([id]);
    const el = this.root.querySelector(`.reroute[data-reroute-id="${CSS.escape(id)}"]`);
    track(e, (ev) => {
      point.pos = [Math.round(x0 + (ev.clientX - e.clientX) / zoom), Math.round(y0 + (ev.clientY - e.clientY) / zoom)];
      el.style.left = `${point.pos[0]}px`;
      el.style.top = `${point.pos[1]}px`;
      this.editor.updateLinksOf(moving);
    }, (ev, moved) => { if (moved) this.editor.commit(); });
  }

  deselect() {
    if (this.selected === null) return;
    this.selected = null;
    this.render();
  }
}
