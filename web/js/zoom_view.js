// Zoom and pan of one picture (an <img> or a <canvas>) inside a frame, for the lightbox and the
// mask painter: fitted by default (a 64×64 image is scaled up, drawn with square pixels), wheel or
// +/- to zoom at the pointer, 0 or "Fit" to fit, 1 or "1:1" for actual pixels, drag to pan.

const MIN_SCALE = 0.05;
const MAX_SCALE = 64;
const STEP = 1.25;

export class ZoomView {
  /** `content`: the picture; `panWith(ev)`: whether a pointerdown pans (default: any primary drag). */
  constructor(content, {panWith = (ev) => ev.button === 0 || ev.button === 1} = {}) {
    this.content = content;
    this.frame = document.createElement("div");
    this.frame.className = "zoom-frame";
    this.frame.append(content);
    content.classList.add("zoom-content");
    this.scale = 1;
    this.x = 0;
    this.y = 0;
    this.fitted = true;
    this.frame.addEventListener("wheel", (e) => {
      e.preventDefault();
      const delta = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaY;
      this.zoomAt(e.clientX, e.clientY, Math.exp(-delta * 0.002));
    }, {passive: false});
    this.frame.addEventListener("pointerdown", (e) => {
      if (!panWith(e)) return;
      e.preventDefault();
      e.stopPropagation();
      this.frame.setPointerCapture(e.pointerId);
      this.frame.classList.add("panning");
      let lastX = e.clientX, lastY = e.clientY;
      const move = (ev) => {
        this.panBy(ev.clientX - lastX, ev.clientY - lastY);
        lastX = ev.clientX;
        lastY = ev.clientY;
      };
      const up = () => {
        this.frame.classList.remove("panning");
        this.frame.removeEventListener("pointermove", move);
        this.frame.removeEventListener("pointerup", up);
        this.frame.removeEventListener("pointercancel", up);
      };
      this.frame.addEventListener("pointermove", move);
      this.frame.addEventListener("pointerup", up);
      this.frame.addEventListener("pointercancel", up);
    });
    new ResizeObserver(() => { if (this.fitted) this.fit(); }).observe(this.frame);
  }

  get naturalSize() {
    const c = this.content;
    return c instanceof HTMLImageElement ? [c.naturalWidth, c.naturalHeight] : [c.width, c.height];
  }

  apply() {
    const [w, h] = this.naturalSize;
    Object.assign(this.content.style, {width: `${w}px`, height: `${h}px`,
      transform: `translate(${this.x}px, ${this.y}px) scale(${this.scale})`});
    // Scaled up, a pixel stays a sharp square (what a 64×64 latent decode really holds).
    this.content.classList.toggle("pixelated", this.scale > 1);
    this.frame.dataset.scale = String(Math.round(this.scale * 1000) / 1000);
    this.onChange && this.onChange(this);
  }

  /** The whole picture in the frame, scaled up or down. */
  fit() {
    const [w, h] = this.naturalSize;
    const r = this.frame.getBoundingClientRect();
    if (!w || !h || !r.width || !r.height) return;
    this.scale = Math.min(MAX_SCALE, r.width / w, r.height / h);
    this.x = (r.width - w * this.scale) / 2;
    this.y = (r.height - h * this.scale) / 2;
    this.fitted = true;
    this.apply();
  }

  /** Actual pixels, centred. */
  actualSize() {
    const r = this.frame.getBoundingClientRect();
    this.zoomAt(r.left + r.width / 2, r.top + r.height / 2, 1 / this.scale);
  }

  /** Zoom by `factor` keeping the picture point under (clientX, clientY) in place. */
  zoomAt(clientX, clientY, factor) {
    const r = this.frame.getBoundingClientRect();
    const scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, this.scale * factor));
    const px = clientX - r.left, py = clientY - r.top;
    this.x = px - ((px - this.x) * scale) / this.scale;
    this.y = py - ((py - this.y) * scale) / this.scale;
    this.scale = scale;
    this.fitted = false;
    this.apply();
  }

  zoomBy(factor) {
    const r = this.frame.getBoundingClientRect();
    this.zoomAt(r.left + r.width / 2, r.top + r.height / 2, factor);
  }

  panBy(dx, dy) {
    this.x += dx;
    this.y += dy;
    this.fitted = false;
    this.apply();
  }

  /** The zoom keys: + / - / 0 (fit) / 1 (1:1); returns whether `e` was one. */
  key(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return false;
    if (e.key === "+" || e.key === "=") this.zoomBy(STEP);
    else if (e.key === "-" || e.key === "_") this.zoomBy(1 / STEP);
    else if (e.key === "0") this.fit();
    else if (e.key === "1") this.actualSize();
    else return false;
    return true;
  }

  /** "Fit", "1:1", "−" and "+" buttons. */
  controls() {
    const box = document.createElement("span");
    box.className = "zoom-controls";
    const button = (label, title, action, name) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.title = title;
      b.dataset.zoom = name;
      b.addEventListener("click", action);
      box.append(b);
    };
    button("−", "Zoom out (-)", () => this.zoomBy(1 / STEP), "out");
    button("+", "Zoom in (+)", () => this.zoomBy(STEP), "in");
    button("Fit", "Fit the picture (0)", () => this.fit(), "fit");
    button("1:1", "Actual pixels (1)", () => this.actualSize(), "actual");
    return box;
  }
}
