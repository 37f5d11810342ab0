// Placement for graphs that arrive without positions (ComfyUI API graphs, hand-written JSON):
// columns by depth (longest chain of links from a source), stacked top to bottom.

const COLUMN_GAP = 90;
const ROW_GAP = 40;

function estimatedHeight(node, catalogue) {
  const spec = catalogue.get(node.type);
  if (!spec) return 120;
  let rows = Math.max(spec.outputs.length, 0);
  for (const input of spec.inputs) rows += input.multiline ? 3 : 1;
  return 48 + rows * 30 + (spec.output_node ? 120 : 0);
}

/** Place the nodes that have no position (all of them, or a block below the placed ones). */
export function autoLayout(graph, catalogue) {
  const unplaced = new Set([...graph.nodes.values()].filter((n) => !n.pos).map((n) => n.id));
  let top = 0, left = 0;
  for (const node of graph.nodes.values()) {
    if (unplaced.has(node.id)) continue;
    left = Math.min(left, node.pos[0]);
    top = Math.max(top, node.pos[1] + estimatedHeight(node, catalogue) + ROW_GAP * 2);
  }
  const depth = new Map();
  const visiting = new Set();
  const depthOf = (id) => {
    if (depth.has(id)) return depth.get(id);
    if (visiting.has(id)) return 0; // a cycle: validation reports it; just place it somewhere
    visiting.add(id);
    const node = graph.nodes.get(id);
    let d = 0;
    for (const [src] of Object.values(node.links)) if (graph.nodes.has(src)) d = Math.max(d, depthOf(src) + 1);
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  const columns = [];
  for (const id of unplaced) {
    const d = depthOf(id);
    (columns[d] = columns[d] || []).push(id);
  }
  let x = left;
  for (const column of columns) {
    if (!column) continue;
    let y = top;
    let widest = 0;
    for (const id of column) {
      const node = graph.nodes.get(id);
      node.pos = [x, y];
      y += estimatedHeight(node, catalogue) + ROW_GAP;
      widest = Math.max(widest, node.width);
    }
    x += widest + COLUMN_GAP;
  }
}
