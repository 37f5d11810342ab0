// A full-size view of result images: zoom and pan (zoom_view.js), previous/next through the
// results (← → keys and buttons), the file, and a way to load the graph that made the image.

import {ZoomView} from "./zoom_view.js";

function button(label, attrs = {}) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  for (const [key, value] of Object.entries(attrs)) b.setAttribute(key, value);
  return b;
}

/** Show `items[index]` ({url, name}); `loadWorkflow(item)` loads the graph behind an image. */
export function openImage(items, index, loadWorkflow) {
  document.querySelectorAll(".lightbox").forEach((n) => n.remove());
  const overlay = document.createElement("div");
  overlay.className = "modal lightbox";
  overlay.setAttribute("role", "dialog");
  const figure = document.createElement("figure");
  const img = document.createElement("img");
  img.draggable = false;
  const zoom = new ZoomView(img);
  const caption = document.createElement("figcaption");
  const prev = button("‹", {"data-action": "previous", title: "Previous image (←)", "aria-label": "previous image"});
  const next = button("›", {"data-action": "next", title: "Next image (→)", "aria-label": "next image"});
  const position = document.createElement("span");
  position.className = "lightbox-position";
  const open = document.createElement("a");
  open.target = "_blank";
  open.rel = "noopener";
  const load = button("Load its workflow", {"data-action": "load-workflow"});
  const close = button("Close");
  caption.append(prev, position, next, open, zoom.controls(), load, close);
  figure.append(zoom.frame, caption);
  overlay.append(figure);
  document.body.append(overlay);

  const show = (i) => {
    index = (i + items.length) % items.length;
    const item = items[index];
    img.onload = () => zoom.fit();
    img.src = item.url;
    img.alt = item.name;
    overlay.setAttribute("aria-label", item.name);
    overlay.dataset.index = String(index);
    open.href = item.url;
    open.textContent = item.name;
    position.textContent = `${index + 1} / ${items.length}`;
    prev.disabled = next.disabled = items.length < 2;
  };
  const dismiss = () => {
    overlay.remove();
    document.removeEventListener("keydown", onKey, true);
  };
  const onKey = (e) => {
    if (e.key === "Escape") dismiss();
    else if (e.key === "ArrowLeft") show(index - 1);
    else if (e.key === "ArrowRight") show(index + 1);
    else if (!zoom.key(e)) return;
    e.preventDefault();
    e.stopPropagation();
  };
  document.addEventListener("keydown", onKey, true);
  overlay.addEventListener("click", (e) => { if (e.target === overlay) dismiss(); });
  caption.addEventListener("click", (e) => e.target.closest("button")?.blur());  // keys stay with the viewer
  prev.addEventListener("click", () => show(index - 1));
  next.addEventListener("click", () => show(index + 1));
  close.addEventListener("click", dismiss);
  load.addEventListener("click", () => {
    const item = items[index];
    dismiss();
    loadWorkflow(item);
  });
  show(index);
}
