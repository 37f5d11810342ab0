// How a node looks beyond its contents: collapsed to its title bar (Alt+C, as in ComfyUI) and
// coloured from ComfyUI's palette (the node's context menu). Kept in `ui.nodes[id]` as
// `collapsed`, `color` (title bar) and `bgcolor` (body), the keys ComfyUI's UI format uses.

// ComfyUI's node colours (LGraphCanvas.node_colors) and group colours, by the names it shows.
export const NODE_COLORS = {
  red: {color: "#322", bgcolor: "#533"},
  brown: {color: "#332922", bgcolor: "#593930"},
  green: {color: "#232", bgcolor: "#353"},
  blue: {color: "#223", bgcolor: "#335"},
  pale_blue: {color: "#2a363b", bgcolor: "#3f5159"},
  cyan: {color: "#233", bgcolor: "#355"},
  purple: {color: "#323", bgcolor: "#535"},
  yellow: {color: "#432", bgcolor: "#653"},
  black: {color: "#222", bgcolor: "#000"},
};
export const GROUP_COLORS = {
  red: "#A88", brown: "#b06634", green: "#8A8", blue: "#88A", pale_blue: "#3f789e", cyan: "#8AA",
  purple: "#a1309b", yellow: "#b58b2a", black: "#444",
};

export function applyLooks(el, node) {
  el.classList.toggle("collapsed", Boolean(node.collapsed));
  el.style.setProperty("--node-color", node.color || "");
  el.style.setProperty("--node-bgcolor", node.bgcolor || "");
  el.classList.toggle("coloured", Boolean(node.color || node.bgcolor));
}

/** Collapse the given nodes, or expand them when all are collapsed (Alt+C). */
export function toggleCollapsed(editor, ids) {
  const nodes = [...ids].map((id) => editor.graph.nodes.get(id)).filter(Boolean);
  if (!nodes.length) return;
  const collapse = !nodes.every((n) => n.collapsed);
  for (const node of nodes) {
    node.collapsed = collapse;
    applyLooks(editor.views.get(node.id).el, node);
  }
  editor.commit();
}

/** Colour the given nodes with a palette entry (null: no colour). */
export function setColor(editor, ids, name) {
  const looks = NODE_COLORS[name] || {color: null, bgcolor: null};
  for (const id of ids) {
    const node = editor.graph.nodes.get(id);
    if (!node) continue;
    Object.assign(node, looks);
    applyLooks(editor.views.get(id).el, node);
  }
  editor.commit();
}

/** Context menu entries for a palette: [{label, action}] with a swatch in each label. */
export function colorEntries(apply, palette = NODE_COLORS) {
  return [{label: "No colour", action: () => apply(null)},
    ...Object.keys(palette).map((name) => ({label: name.replace("_", " "), swatch: swatchOf(palette[name]), action: () => apply(name)}))];
}

function swatchOf(entry) {
  return typeof entry === "string" ? entry : entry.bgcolor;
}
