// A simple mask painter for inpainting: paint over an input image; the result goes to the
// server's /api/upload/mask, which stores a copy of the image whose alpha is 0 where painted
// (LoadImage's mask = 1 - alpha, so the painted area is the one to repaint).
// The picture zooms and pans (zoom_view.js): wheel or +/-, Fit, 1:1; pan with the middle
// button or Space+drag, since a plain drag paints.

import {ZoomView} from "./zoom_view.js";

const TINT = [255, 64, 112];

function el(tag, className, attrs = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`can't load ${url}`));
    img.src = url;
  });
}

/** Open the painter on `imageUrl`; resolves to a PNG Blob (alpha 0 = painted) or null if cancelled. */
export async function paintMask(imageUrl, title = "Paint mask") {
  const image = await loadImage(imageUrl);
  const w = image.naturalWidth, h = image.naturalHeight;

  // The mask: a tinted layer whose alpha is the mask value; starts from the image's own alpha.
  const mask = el("canvas");
  mask.width = w;
  mask.height = h;
  const mctx = mask.getContext("2d", {willReadFrequently: true});
  const source = el("canvas");
  source.width = w;
  source.height = h;
  const sctx = source.getContext("2d", {willReadFrequently: true});
  sctx.drawImage(image, 0, 0);
  const pixels = sctx.getImageData(0, 0, w, h);
  const initial = mctx.createImageData(w, h);
  for (let i = 0; i < pixels.data.length; i += 4) {
    initial.data.set(TINT, i);
    initial.data[i + 3] = 255 - pixels.data[i + 3];
  }
  mctx.putImageData(initial, 0, 0);

  return new Promise((resolve) => {
    const overlay = el("div", "modal", {role: "dialog", "aria-label": title});
    const panel = el("div", "modal-panel mask-painter");
    const head = el("div", "modal-head");
    head.textContent = `${title} — paint the area to repaint`;
    const view = el("canvas", "mask-view");
    view.width = w;
    view.height = h;
    const vctx = view.getContext("2d");
    let spaceHeld = false;
    const zoom = new ZoomView(view, {panWith: (ev) => ev.button === 1 || (ev.button === 0 && spaceHeld)});
    const tools = el("div", "mask-tools");
    const size = el("input", "", {type: "range", min: "2", max: String(Math.max(8, Math.round(Math.max(w, h) / 4))), value: String(Math.max(8, Math.round(Math.max(w, h) / 24))), "aria-label": "brush size"});
    const sizeLabel = el("label", "mask-size");
    sizeLabel.append("Brush ", size);
    const paint = el("button", "active", {type: "button"});
    paint.textContent = "Paint";
    const erase = el("button", "", {type: "button"});
    erase.textContent = "Erase";
    const clear = el("button", "", {type: "button"});
    clear.textContent = "Clear";
    const spacer = el("span", "spacer");
    const cancel = el("button", "", {type: "button"});
    cancel.textContent = "Cancel";
    const save = el("button", "primary", {type: "button", "data-action": "save-mask"});
    save.textContent = "Save mask";
    tools.append(sizeLabel, paint, erase, clear, zoom.controls(), spacer, cancel, save);
    panel.append(head, zoom.frame, tools);
    overlay.append(panel);
    document.body.append(overlay);

    let erasing = false;
    const redraw = () => {
      vctx.clearRect(0, 0, w, h);
      vctx.drawImage(image, 0, 0);
      vctx.globalAlpha = 0.55;
      vctx.drawImage(mask, 0, 0);
      vctx.globalAlpha = 1;
    };
    redraw();
    const setMode = (e) => {
      erasing = e;
      paint.classList.toggle("active", !e);
      erase.classList.toggle("active", e);
    };
    paint.onclick = () => setMode(false);
    erase.onclick = () => setMode(true);
    clear.onclick = () => {
      mctx.clearRect(0, 0, w, h);
      redraw();
    };

    const toImage = (ev) => {
      const r = view.getBoundingClientRect();
      return [((ev.clientX - r.left) * w) / r.width, ((ev.clientY - r.top) * h) / r.height];
    };
    const stroke = (from, to) => {
      mctx.globalCompositeOperation = erasing ? "destination-out" : "source-over";
      mctx.strokeStyle = `rgb(${TINT.join(",")})`;
      mctx.lineWidth = Number(size.value);
      mctx.lineCap = "round";
      mctx.beginPath();
      mctx.moveTo(...from);
      mctx.lineTo(...to);
      mctx.stroke();
      mctx.globalCompositeOperation = "source-over";
      redraw();
    };
    view.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0 || spaceHeld) return;
      ev.preventDefault();
      view.setPointerCapture(ev.pointerId);
      let last = toImage(ev);
      stroke(last, last);
      const move = (mv) => {
        const p = toImage(mv);
        stroke(last, p);
        last = p;
      };
      const up = () => {
        view.removeEventListener("pointermove", move);
        view.removeEventListener("pointerup", up);
      };
      view.addEventListener("pointermove", move);
      view.addEventListener("pointerup", up);
    });

    const close = (result) => {
      overlay.remove();
      document.removeEventListener("keydown", onKey, true);
      document.removeEventListener("keyup", onKeyUp, true);
      resolve(result);
    };
    const onKey = (ev) => {
      if (ev.key === "Escape") close(null);
      else if (ev.key === " ") spaceHeld = true;
      else if (!zoom.key(ev)) return;
      ev.preventDefault();
      ev.stopPropagation();
    };
    const onKeyUp = (ev) => { if (ev.key === " ") spaceHeld = false; };
    document.addEventListener("keydown", onKey, true);
    document.addEventListener("keyup", onKeyUp, true);
    tools.addEventListener("click", (ev) => ev.target.closest("button")?.blur());
    cancel.onclick = () => close(null);
    save.onclick = () => {
      // The upload's alpha is what LoadImage keeps: 255 - painted.
      const painted = mctx.getImageData(0, 0, w, h);
      const out = mctx.createImageData(w, h);
      for (let i = 0; i < painted.data.length; i += 4) out.data[i + 3] = 255 - painted.data[i + 3];
      const canvas = el("canvas");
      canvas.width = w;
      canvas.height = h;
      canvas.getContext("2d").putImageData(out, 0, 0);
      canvas.toBlob((blob) => close(blob), "image/png");
    };
  });
}
