// Groups: titled, coloured rectangles behind the nodes (ComfyUI's groups, kept in `ui.groups`
// in its shape: {title, bounding: [x, y, w, h], color}). Dragging the title moves the group and
// everything whose centre lies inside it; the corner resizes it; Ctrl+G groups the selection.

import {contextMenu} from "./menu.js";
import {GROUP_COLORS, colorEntries} from "./node_looks.js";
import {editInline, track} from "./pointer_drag.js";

const PADDING = 10;
const TITLE_HEIGHT = 34;
const MIN_SIZE = 80;

export class GroupLayer {
  constructor(editor, root) {
    this.editor = editor;
    this.root = root;
    root.addEventListener("pointerdown", (e) => this.pointerDown(e));
    root.addEventListener("dblclick", (e) => {
      const el = e.target.closest(".canvas-group-title");
      if (!el) return;
      e.stopPropagation();
      this.rename(Number(el.parentElement.dataset.groupIndex));
    });
    root.addEventListener("contextmenu", (e) => {
      const el = e.target.closest(".canvas-group-title");
      if (!el) return;
      e.preventDefault();
      e.stopPropagation();
      this.menu(Number(el.parentElement.dataset.groupIndex), e.clientX, e.clientY);
    });
  }

  get groups() {
    return this.editor.graph.groups;
  }

  render() {
    this.root.replaceChildren();
    this.groups.forEach((group, index) => {
      const box = document.createElement("div");
      box.className = "canvas-group";
      box.dataset.groupIndex = String(index);
      const title = document.createElement("div");
      title.className = "canvas-group-title";
      title.textContent = group.title || "Group";
      const resize = document.createElement("div");
      resize.className = "canvas-group-resize";
      box.append(title, resize);
      this.root.append(box);
      this.place(box, group);
    });
  }

  place(box, group) {
    const [x, y, w, h] = group.bounding;
    Object.assign(box.style, {left: `${x}px`, top: `${y}px`, width: `${w}px`, height: `${h}px`});
    box.style.setProperty("--group-color", group.color || GROUP_COLORS.pale_blue);
  }

  /** Group the selected nodes (Ctrl+G): a rectangle around them with room for the title. */
  groupSelection(title = "Group") {
    const rect = this.editor.bounds(this.editor.selected.size ? this.editor.selected : new Set());
    if (!rect) return null;
    const group = {title, bounding: [rect.x - PADDING, rect.y - PADDING - TITLE_HEIGHT, rect.w + 2 * PADDING,
      rect.h + 2 * PADDING + TITLE_HEIGHT].map(Math.round), color: GROUP_COLORS.pale_blue};
    this.groups.push(group);
    this.render();
    this.editor.commit();
    return group;
  }

  /** What lies inside a group: node ids, note ids and Reroute ids whose centre is in it. */
  contents(group) {
    const [x, y, w, h] = group.bounding;
    const inside = ([cx, cy]) => cx >= x && cx <= x + w && cy >= y && cy <= y + h;
    const editor = this.editor;
    const nodes = [...editor.views.values()].filter((v) => inside([v.node.pos[0] + v.el.offsetWidth / 2, v.node.pos[1] + v.el.offsetHeight / 2]))
      .map((v) => v.node.id);
    const notes = [...editor.graph.notes.values()].filter((n) => inside([n.pos[0] + (n.width || 0) / 2, n.pos[1] + (n.height || 0) / 2]));
    const reroutes = [...editor.graph.reroutes.values()].filter((r) => inside(r.pos));
    return {nodes, notes, reroutes};
  }

  pointerDown(e) {
    if (e.button !== 0) return;
    const box = e.target.closest(".canvas-group");
    if (!box || !(e.target.closest(".canvas-group-title") || e.target.closest(".canvas-group-resize"))) return;
    e.stopPropagation();
    e.preventDefault();
    const group = this.groups[Number(box.dataset.groupIndex)];
    const zoom = this.editor.viewport.zoom;
    const start = [...group.bounding];
    if (e.target.closest(".canvas-group-resize")) {
      track(e, (ev) => {
        group.bounding[2] = Math.max(MIN_SIZE, Math.round(start[2] + (ev.clientX - e.clientX) / zoom));
        group.bounding[3] = Math.max(MIN_SIZE, Math.round(start[3] + (ev.clientY - e.clientY) / zoom));
        this.place(box, group);
      }, (ev, moved) => { if (moved) this.editor.commit(); });
      return;
    }
    const editor = this.editor;
    const {nodes, notes, reroutes} = this.contents(group);
    const starts = new Map([...nodes.map((id) => [editor.graph.nodes.get(id), [...editor.graph.nodes.get(id).pos]]),
      ...notes.map((n) => [n, [...n.pos]]), ...reroutes.map((r) => [r, [...r.pos]])]);
    const moving = new Set([...nodes, ...reroutes.map((r) => r.id)]);
    track(e, (ev) => {
      const dx = Math.round((ev.clientX - e.clientX) / zoom), dy = Math.round((ev.clientY - e.clientY) / zoom);
      group.bounding[0] = start[0] + dx;
      group.bounding[1] = start[1] + dy;
      this.place(box, group);
      for (const [item, [x, y]] of starts) item.pos = [x + dx, y + dy];
      for (const id of nodes) editor.views.get(id).setPosition();
      for (const layer of editor.layers) if (layer !== this) layer.render();
      editor.updateLinksOf(moving);
    }, (ev, moved) => { if (moved) editor.commit(); });
  }

  async rename(index) {
    const group = this.groups[index];
    const title = this.root.querySelector(`.canvas-group[data-group-index="${index}"] .canvas-group-title`);
    const text = await editInline(title, group.title || "Group");
    if (text === null || text.trim() === group.title) return this.render();
    group.title = text.trim() || "Group";
    this.render();
    this.editor.commit();
  }

  menu(index, x, y) {
    const group = this.groups[index];
    contextMenu(x, y, [
      {label: "Rename group", action: () => this.rename(index)},
      {label: "Colour…", action: () => contextMenu(x, y, colorEntries((name) => {
        group.color = name ? GROUP_COLORS[name] : GROUP_COLORS.pale_blue;
        this.render();
        this.editor.commit();
      }, GROUP_COLORS))},
      {label: "Fit group to its nodes", action: () => this.fitToContents(index)},
      {label: "Select its nodes", action: () => this.editor.select(this.contents(group).nodes)},
      {label: "Remove group (keep nodes)", danger: true, action: () => {
        this.groups.splice(index, 1);
        this.render();
        this.editor.commit();
      }},
    ]);
  }

  fitToContents(index) {
    const group = this.groups[index];
    const rect = this.editor.bounds(new Set(this.contents(group).nodes));
    if (!rect) return;
    group.bounding = [rect.x - PADDING, rect.y - PADDING - TITLE_HEIGHT, rect.w + 2 * PADDING,
      rect.h + 2 * PADDING + TITLE_HEIGHT].map(Math.round);
    this.render();
    this.editor.commit();
  }
}
