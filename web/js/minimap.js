// The minimap: the whole graph small in a corner of the canvas, with the part in view outlined;
// click or drag in it to move the view there. Toggled by its button; the choice is remembered.

const KEY = "graphflow.minimap";
const WIDTH = 220;
const HEIGHT = 150;
const MARGIN = 40; // world units around the graph

export class Minimap {
  constructor(editor, canvasEl, toggleButton) {
    this.editor = editor;
    this.canvasEl = canvasEl;
    this.box = document.createElement("div");
    this.box.id = "minimap";
    this.box.title = "Minimap: click or drag to move the view";
    this.surface = document.createElement("canvas");
    this.surface.width = WIDTH * devicePixelRatio;
    this.surface.height = HEIGHT * devicePixelRatio;
    this.surface.style.width = `${WIDTH}px`;
    this.surface.style.height = `${HEIGHT}px`;
    this.box.append(this.surface);
    canvasEl.append(this.box);
    this.toggleButton = toggleButton;
    this.frame = 0;
    this.transform = null;
    toggleButton.addEventListener("click", () => this.setShown(this.box.hidden));
    for (const type of ["pointerdown", "dblclick"]) toggleButton.addEventListener(type, (e) => e.stopPropagation());
    for (const type of ["dblclick", "contextmenu", "wheel"]) this.box.addEventListener(type, (e) => e.stopPropagation());
    this.box.addEventListener("pointerdown", (e) => this.pointerDown(e));
    this.setShown(localStorage.getItem(KEY) !== "off");
  }

  setShown(shown) {
    this.box.hidden = !shown;
    this.toggleButton.classList.toggle("active", shown);
    this.toggleButton.setAttribute("aria-pressed", String(shown));
    try {
      localStorage.setItem(KEY, shown ? "on" : "off");
    } catch { /* not remembered */ }
    this.schedule();
  }

  // the editor's layer hooks
  render() { this.schedule(); }
  changed() { this.schedule(); }

  schedule() {
    if (this.frame || this.box.hidden) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  /** The part of the world in view: {x, y, w, h}. */
  visible() {
    const v = this.editor.viewport;
    const r = this.canvasEl.getBoundingClientRect();
    return {x: -v.x / v.zoom, y: -v.y / v.zoom, w: r.width / v.zoom, h: r.height / v.zoom};
  }

  draw() {
    const editor = this.editor;
    const rects = [...editor.views.values()].map((view) => ({
      x: view.node.pos[0], y: view.node.pos[1], w: view.el.offsetWidth || view.node.width, h: view.el.offsetHeight || 100,
      color: view.node.bgcolor || (view.el.classList.contains("selected") ? "#5b8cff" : "#56607a"),
    }));
    const groups = editor.graph.groups.map((g) => ({x: g.bounding[0], y: g.bounding[1], w: g.bounding[2], h: g.bounding[3], color: g.color}));
    const view = this.visible();
    let x0 = view.x, y0 = view.y, x1 = view.x + view.w, y1 = view.y + view.h;
    for (const r of [...rects, ...groups]) {
      x0 = Math.min(x0, r.x - MARGIN); y0 = Math.min(y0, r.y - MARGIN);
      x1 = Math.max(x1, r.x + r.w + MARGIN); y1 = Math.max(y1, r.y + r.h + MARGIN);
    }
    const scale = Math.min(WIDTH / (x1 - x0), HEIGHT / (y1 - y0));
    const ox = (WIDTH - (x1 - x0) * scale) / 2 - x0 * scale, oy = (HEIGHT - (y1 - y0) * scale) / 2 - y0 * scale;
    this.transform = {scale, ox, oy};
    const ctx = this.surface.getContext("2d");
    ctx.setTransform(devicePixelRatio, 0, 0, devicePixelRatio, 0, 0);
    ctx.clearRect(0, 0, WIDTH, HEIGHT);
    const box = (r) => [r.x * scale + ox, r.y * scale + oy, Math.max(1, r.w * scale), Math.max(1, r.h * scale)];
    for (const g of groups) {
      ctx.globalAlpha = 0.35;
      ctx.fillStyle = g.color || "#3f789e";
      ctx.fillRect(...box(g));
    }
    ctx.globalAlpha = 1;
    for (const r of rects) {
      ctx.fillStyle = r.color;
      ctx.fillRect(...box(r));
    }
    ctx.strokeStyle = "#dfe3ea";
    ctx.lineWidth = 1.5;
    ctx.strokeRect(...box(view));
  }

  /** Centre the view on the world point under a minimap point. */
  moveTo(clientX, clientY) {
    if (!this.transform) this.draw();
    const r = this.surface.getBoundingClientRect();
    const {scale, ox, oy} = this.transform;
    const wx = (clientX - r.left - ox) / scale, wy = (clientY - r.top - oy) / scale;
    const v = this.editor.viewport;
    const c = this.canvasEl.getBoundingClientRect();
    v.x = c.width / 2 - wx * v.zoom;
    v.y = c.height / 2 - wy * v.zoom;
    v.schedule();
    this.schedule();
  }

  pointerDown(e) {
    if (e.button !== 0) return;
    e.stopPropagation();
    e.preventDefault();
    const transform = this.transform;  // fixed while dragging, so the map doesn't slide under the pointer
    this.moveTo(e.clientX, e.clientY);
    const move = (ev) => {
      this.transform = transform;
      this.moveTo(ev.clientX, ev.clientY);
    };
    const up = () => {
      removeEventListener("pointermove", move);
      removeEventListener("pointerup", up);
    };
    addEventListener("pointermove", move);
    addEventListener("pointerup", up);
  }
}
