// Pan and zoom: one CSS transform on the world layer (nodes and links together), so the
// browser composites a move instead of re-laying out the graph. Updates are batched per frame.

const MIN_ZOOM = 0.1;
const MAX_ZOOM = 3;
const GRID = 24;

export class Viewport {
  constructor(canvas, world, onChange = () => {}) {
    this.canvas = canvas;
    this.world = world;
    this.onChange = onChange;
    this.x = 0;
    this.y = 0;
    this.zoom = 1;
    this.frame = 0;
    this.apply();
  }

  get state() {
    return {x: Math.round(this.x), y: Math.round(this.y), zoom: Math.round(this.zoom * 1000) / 1000};
  }

  set(state) {
    if (!state) return;
    this.x = Number(state.x) || 0;
    this.y = Number(state.y) || 0;
    this.zoom = clamp(Number(state.zoom) || 1, MIN_ZOOM, MAX_ZOOM);
    this.schedule();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.apply();
    });
  }

  apply() {
    this.world.style.transform = `translate(${this.x}px, ${this.y}px) scale(${this.zoom})`;
    const size = GRID * this.zoom;
    this.canvas.style.backgroundSize = `${size}px ${size}px`;
    this.canvas.style.backgroundPosition = `${this.x}px ${this.y}px`;
    this.canvas.style.setProperty("--zoom", this.zoom);
    this.onChange(this);
  }

  /** World coordinates of a point given in client (page) pixels. */
  toWorld(clientX, clientY) {
    const r = this.canvas.getBoundingClientRect();
    return [(clientX - r.left - this.x) / this.zoom, (clientY - r.top - this.y) / this.zoom];
  }

  panBy(dx, dy) {
    this.x += dx;
    this.y += dy;
    this.schedule();
  }

  /** Zoom by `factor` keeping the world point under (clientX, clientY) fixed. */
  zoomAt(clientX, clientY, factor) {
    const r = this.canvas.getBoundingClientRect();
    const zoom = clamp(this.zoom * factor, MIN_ZOOM, MAX_ZOOM);
    const px = clientX - r.left, py = clientY - r.top;
    this.x = px - ((px - this.x) * zoom) / this.zoom;
    this.y = py - ((py - this.y) * zoom) / this.zoom;
    this.zoom = zoom;
    this.schedule();
  }

  /** Show the world rectangle {x, y, w, h} with a margin, zooming out as needed but not in past 1. */
  fit(rect, margin = 60) {
    const r = this.canvas.getBoundingClientRect();
    if (!rect || rect.w <= 0 || r.width <= 0) {
      this.set({x: r.width / 2, y: r.height / 3, zoom: 1});
      return;
    }
    const zoom = clamp(Math.min((r.width - 2 * margin) / rect.w, (r.height - 2 * margin) / rect.h, 1), MIN_ZOOM, MAX_ZOOM);
    this.zoom = zoom;
    this.x = (r.width - rect.w * zoom) / 2 - rect.x * zoom;
    this.y = (r.height - rect.h * zoom) / 2 - rect.y * zoom;
    this.schedule();
  }
}

function clamp(v, lo, hi) {
  return Math.min(hi, Math.max(lo, v));
}
