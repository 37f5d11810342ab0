// Nodes grow when a run fills them (images, tables, previews): a grown node pushes the nodes
// below it down instead of covering them, and so on down the column. A graph laid out without
// positions (layout.js estimates heights) is spaced the same way once the real heights are known.

const GAP = 24; // world pixels kept between a node and the one it pushed

export class NodeSpacing {
  /** editor: {graph, views}; moved(ids): nodes were pushed (redraw links, save). */
  constructor(editor, moved) {
    this.editor = editor;
    this.moved = moved;
    this.heights = new Map(); // node id -> height last seen
    this.placed = new Set(); // ids placed by layout.js: spaced by their real height once seen
  }

  forget() {
    this.heights.clear();
  }

  /** Heights observed (ResizeObserver): push neighbours of nodes that grew. */
  observe(ids) {
    const grown = [];
    for (const id of ids) {
      const view = this.editor.views.get(id);
      if (!view) continue;
      const height = view.el.offsetHeight;
      const before = this.heights.get(id);
      this.heights.set(id, height);
      if ((before !== undefined && height > before) || (before === undefined && this.placed.delete(id))) grown.push(id);
    }
    if (!grown.length) return;
    const moved = this.push(grown);
    if (moved.size) this.moved(moved);
  }

  /** Push the nodes that the given ones now cover downwards, cascading; returns the ids moved. */
  push(ids) {
    const {graph, views} = this.editor;
    const moved = new Set();
    const queue = [...ids].sort((a, b) => graph.nodes.get(a).pos[1] - graph.nodes.get(b).pos[1]);
    let guard = 0;
    while (queue.length && guard++ < 10000) {
      const id = queue.shift();
      const a = graph.nodes.get(id);
      const view = views.get(id);
      if (!a || !view) continue;
      const bottom = a.pos[1] + view.el.offsetHeight;
      for (const b of graph.nodes.values()) {
        if (b === a || !views.has(b.id)) continue;
        const sideBySide = b.pos[0] >= a.pos[0] + a.width || a.pos[0] >= b.pos[0] + b.width;
        if (sideBySide || b.pos[1] < a.pos[1] || b.pos[1] >= bottom + GAP) continue;
        if (b.pos[1] === a.pos[1] && b.id < a.id) continue; // same top: the later one moves
        b.pos = [b.pos[0], Math.round(bottom + GAP)];
        views.get(b.id).setPosition();
        moved.add(b.id);
        queue.push(b.id);
      }
    }
    return moved;
  }
}
