// The graph being edited, and its conversion to and from the workflow JSON format
// (graphflow/workflow.py). Positions, widths and titles live in the workflow's `ui` block:
//   "ui": {"nodes": {"<id>": {"pos": [x, y], "width": 260, "title": "...", "mode": "bypass"|"mute",
//                             "collapsed": true, "color": "#223", "bgcolor": "#335", "via": {"<input>": ["<reroute id>"]}}},
//          "groups": [{"title", "bounding": [x, y, w, h], "color"}], "notes": [{"id", "pos", "width", "height", "text"}],
//          "reroutes": {"<id>": {"pos": [x, y]}}, "view": {...}}
// Groups, notes and Reroutes are the editor's alone (the engine ignores `ui`); their shapes follow
// ComfyUI's, so graphflow/comfy_format.py writes them back as its groups, Note and Reroute nodes.
// Other `ui` keys (written by other tools) are kept verbatim.

import {isWidget} from "./catalogue.js";
import {autoLayout} from "./layout.js";

export const DEFAULT_WIDTH = 260;

export function isLink(value) {
  return Array.isArray(value) && value.length === 2 && typeof value[0] === "string" &&
    (typeof value[1] === "string" || Number.isInteger(value[1]));
}

function literal(value) {
  if (value && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 1 && "__value__" in value) {
    return value.__value__;
  }
  return value;
}

function toLiteral(value) {
  return Array.isArray(value) ? {__value__: value} : value;
}

/** The value a widget starts with: its default, else the first choice. */
export function initialValue(input) {
  if ("default" in input) return input.default;
  if (input.kind === "CHOICE") return input.options && input.options.length ? input.options[0] : "";
  if (input.kind === "BOOLEAN") return false;
  if (input.kind === "STRING") return "";
  if (input.kind === "INT" || input.kind === "FLOAT") return Math.max(0, input.min ?? 0);
  return null;
}

export class Graph {
  constructor() {
    this.nodes = new Map(); // id -> {id, type, title, pos, width, values, links, extra, version}
    this.ui = {}; // other tools' ui keys, kept verbatim
    this.groups = []; // [{title, bounding: [x, y, w, h], color, ...}]
    this.notes = new Map(); // id -> {id, pos, width, height, text, ...}
    this.reroutes = new Map(); // id -> {id, pos}; links name them in node.via
    this.uid = crypto.getRandomValues(new Uint32Array(2)).join("-"); // which graph a copy came from
  }

  /** The next free id: nodes, notes and Reroutes share ComfyUI's one id space. */
  nextId() {
    let max = 0;
    for (const id of [...this.nodes.keys(), ...this.notes.keys(), ...this.reroutes.keys()]) {
      if (/^\d+$/.test(id)) max = Math.max(max, Number(id));
    }
    return String(max + 1);
  }

  /** A new node of a catalogue type at `pos`, with default widget values. */
  addNode(spec, pos, id = this.nextId()) {
    const values = {};
    for (const input of spec.inputs) if (isWidget(input)) values[input.name] = initialValue(input);
    const node = {id, type: spec.type, title: null, pos: [Math.round(pos[0]), Math.round(pos[1])],
                  width: DEFAULT_WIDTH, values, links: {}, extra: {}, version: spec.version, control: {}};
    this.nodes.set(id, node);
    return node;
  }

  removeNode(id) {
    this.nodes.delete(id);
    for (const node of this.nodes.values()) {
      for (const [name, [src]] of Object.entries(node.links)) if (src === id) delete node.links[name];
    }
  }

  connect(srcId, outIndex, dstId, input, via = null) {
    const node = this.nodes.get(dstId);
    node.links[input] = [srcId, outIndex];
    if (node.via) delete node.via[input];
    if (via && via.length) node.via = {...(node.via || {}), [input]: [...via]};
  }

  disconnect(dstId, input) {
    const node = this.nodes.get(dstId);
    if (node) delete node.links[input];
    if (node && node.via) delete node.via[input];
  }

  /** The Reroutes a link passes through, from its source on (those that still exist). */
  viaOf(node, input) {
    return ((node.via || {})[input] || []).filter((id) => this.reroutes.has(id));
  }

  removeReroute(id) {
    this.reroutes.delete(id);
    for (const node of this.nodes.values()) {
      for (const [input, chain] of Object.entries(node.via || {})) {
        node.via[input] = chain.filter((r) => r !== id);
        if (!node.via[input].length) delete node.via[input];
      }
    }
  }

  /** Every link as {src, out, dst, input}. */
  links() {
    const all = [];
    for (const node of this.nodes.values()) {
      for (const [input, [src, out]] of Object.entries(node.links)) all.push({src, out, dst: node.id, input});
    }
    return all;
  }

  toWorkflow(catalogue, view = null) {
    const nodes = {};
    const layout = {};
    const ids = [...this.nodes.keys()].sort(naturalOrder);
    for (const id of ids) {
      const node = this.nodes.get(id);
      const spec = catalogue.get(node.type);
      const inputs = {};
      const names = spec ? spec.inputs.map((i) => i.name) : Object.keys({...node.values, ...node.links});
      for (const name of names) {
        if (name in node.links) inputs[name] = [...node.links[name]];
        else if (name in node.values && node.values[name] !== undefined) inputs[name] = toLiteral(node.values[name]);
      }
      Object.assign(inputs, node.extra);
      nodes[id] = {type: node.type, inputs};
      if (node.version != null) nodes[id].version = node.version;
      layout[id] = {pos: [...node.pos], width: node.width};
      if (node.title) layout[id].title = node.title;
      if (node.mode) layout[id].mode = node.mode;
      if (node.control && Object.keys(node.control).length) layout[id].control = {...node.control};  // seed_control.js  // "bypass" or "mute" (graphflow/node_modes.py)
      if (node.collapsed) layout[id].collapsed = true;
      if (node.color) layout[id].color = node.color;
      if (node.bgcolor) layout[id].bgcolor = node.bgcolor;
      const via = {};
      for (const input of Object.keys(node.via || {})) {
        const chain = this.viaOf(node, input);
        if (chain.length && input in node.links) via[input] = chain;
      }
      if (Object.keys(via).length) layout[id].via = via;
    }
    const ui = {...this.ui, nodes: layout};
    // Written when there are any, or when the workflow had the key (all removed is news for an export).
    if (this.groups.length || "groups" in this.ui) ui.groups = structuredClone(this.groups);
    if (this.notes.size || "notes" in this.ui) ui.notes = [...this.notes.values()].map((n) => structuredClone(n));
    if (this.reroutes.size || "reroutes" in this.ui) {
      ui.reroutes = Object.fromEntries([...this.reroutes.values()].map(({id, ...rest}) => [id, structuredClone(rest)]));
    }
    if (view) ui.view = view;
    return {version: 1, nodes, ui};
  }

  /** Load a workflow in our format; returns the saved view ({x, y, zoom}) or null. */
  static fromWorkflow(data, catalogue) {
    const graph = new Graph();
    const {nodes: layout = {}, view = null, titles = {}, ...rest} = data.ui || {};
    graph.ui = rest;
    graph.groups = Array.isArray(rest.groups) ? rest.groups.filter((g) => g && Array.isArray(g.bounding)).map((g) => structuredClone(g)) : [];
    for (const note of Array.isArray(rest.notes) ? rest.notes : []) {
      if (!note || note.id == null) continue;
      graph.notes.set(String(note.id), {...structuredClone(note), id: String(note.id),
        pos: Array.isArray(note.pos) ? note.pos.map(Number) : [0, 0]});
    }
    for (const [id, point] of Object.entries(rest.reroutes && typeof rest.reroutes === "object" ? rest.reroutes : {})) {
      graph.reroutes.set(String(id), {...structuredClone(point), id: String(id), pos: Array.isArray(point.pos) ? point.pos.map(Number) : [0, 0]});
    }
    for (const [id, entry] of Object.entries(data.nodes || {})) {
      const spec = catalogue.get(entry.type);
      const saved = layout[id] || {};
      const node = {id, type: entry.type, title: saved.title || titles[id] || null,
                    pos: Array.isArray(saved.pos) ? saved.pos.map(Number) : null,
                    width: Number(saved.width) || DEFAULT_WIDTH, values: {}, links: {}, extra: {},
                    version: entry.version ?? (spec ? spec.version : null),
                    mode: ["bypass", "mute"].includes(saved.mode) ? saved.mode : null,
                    collapsed: saved.collapsed === true, color: typeof saved.color === "string" ? saved.color : null,
                    bgcolor: typeof saved.bgcolor === "string" ? saved.bgcolor : null,
                    via: saved.via && typeof saved.via === "object" ? structuredClone(saved.via) : {},
                    control: saved.control && typeof saved.control === "object" ? {...saved.control} : {}};
      const inputs = entry.inputs || {};
      const known = spec ? new Map(spec.inputs.map((i) => [i.name, i])) : null;
      for (const [name, value] of Object.entries(inputs)) {
        if (known && !known.has(name)) node.extra[name] = value;
        else if (isLink(value)) node.links[name] = [value[0], value[1]];
        else node.values[name] = literal(value);
      }
      if (spec) {
        for (const input of spec.inputs) {
          if (isWidget(input) && !(input.name in node.values)) node.values[input.name] = initialValue(input);
        }
      }
      graph.nodes.set(id, node);
    }
    // Links may name the output instead of giving its index.
    for (const node of graph.nodes.values()) {
      for (const [name, [src, out]] of Object.entries(node.links)) {
        if (typeof out !== "string") continue;
        const srcNode = graph.nodes.get(src);
        const srcSpec = srcNode && catalogue.get(srcNode.type);
        const index = srcSpec ? srcSpec.outputs.findIndex((o) => o.name === out) : -1;
        if (index >= 0) node.links[name] = [src, index];
      }
    }
    graph.autoPlaced = [...graph.nodes.values()].filter((n) => !n.pos).map((n) => n.id);  // node_spacing.js
    if (graph.autoPlaced.length) autoLayout(graph, catalogue);
    return {graph, view};
  }

  /** A deep copy as plain JSON (for undo snapshots and the clipboard). */
  snapshot(ids = null) {
    const nodes = [];
    for (const node of this.nodes.values()) if (!ids || ids.has(node.id)) nodes.push(structuredClone(node));
    if (ids) return {nodes, ui: {}, source: this.uid};  // the clipboard: nodes only
    return {uid: this.uid, nodes, ui: structuredClone(this.ui), groups: structuredClone(this.groups),
            notes: [...this.notes.values()].map((n) => structuredClone(n)),
            reroutes: [...this.reroutes.values()].map((r) => structuredClone(r))};
  }

  static fromSnapshot(snap) {
    const graph = new Graph();
    if (snap.uid) graph.uid = snap.uid;
    graph.ui = structuredClone(snap.ui || {});
    for (const node of snap.nodes) graph.nodes.set(node.id, structuredClone(node));
    graph.groups = structuredClone(snap.groups || []);
    for (const note of snap.notes || []) graph.notes.set(note.id, structuredClone(note));
    for (const point of snap.reroutes || []) graph.reroutes.set(point.id, structuredClone(point));
    return graph;
  }
}

export function naturalOrder(a, b) {
  const na = /^\d+$/.test(a), nb = /^\d+$/.test(b);
  if (na && nb) return Number(a) - Number(b);
  if (na !== nb) return na ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
