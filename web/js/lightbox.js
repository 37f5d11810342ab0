// A full-size view of a result image, with its file and a way to load the graph it embeds.

export function openImage(url, name, loadWorkflow) {
  document.querySelectorAll(".lightbox").forEach((n) => n.remove());
  const overlay = document.createElement("div");
  overlay.className = "modal lightbox";
  overlay.setAttribute("role", "dialog");
  overlay.setAttribute("aria-label", name);
  const figure = document.createElement("figure");
  const img = document.createElement("img");
  img.src = url;
  img.alt = name;
  const caption = document.createElement("figcaption");
  const open = document.createElement("a");
  open.href = url;
  open.target = "_blank";
  open.rel = "noopener";
  open.textContent = name;
  const load = document.createElement("button");
  load.type = "button";
  load.textContent = "Load its workflow";
  const close = document.createElement("button");
  close.type = "button";
  close.textContent = "Close";
  caption.append(open, load, close);
  figure.append(img, caption);
  overlay.append(figure);
  document.body.append(overlay);
  const dismiss = () => {
    overlay.remove();
    document.removeEventListener("keydown", onKey, true);
  };
  const onKey = (e) => {
    if (e.key === "Escape") {
      e.stopPropagation();
      dismiss();
    }
  };
  document.addEventListener("keydown", onKey, true);
  overlay.addEventListener("click", (e) => { if (e.target === overlay) dismiss(); });
  close.addEventListener("click", dismiss);
  load.addEventListener("click", async () => {
    const blob = await (await fetch(url)).blob();
    dismiss();
    loadWorkflow(blob);
  });
}
