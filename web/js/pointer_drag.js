// Following one pointer from press to release, for the canvas layers' own drags.

/** onMove(ev) after the pointer has moved 3 px; onUp(ev, moved) on release. */
export function track(e, onMove, onUp) {
  const startX = e.clientX, startY = e.clientY;
  let moved = false;
  const move = (ev) => {
    if (!moved && Math.hypot(ev.clientX - startX, ev.clientY - startY) < 3) return;
    moved = true;
    onMove(ev);
  };
  const up = (ev) => {
    removeEventListener("pointermove", move);
    removeEventListener("pointerup", up);
    removeEventListener("pointercancel", up);
    onUp(ev, moved);
  };
  addEventListener("pointermove", move);
  addEventListener("pointerup", up);
  addEventListener("pointercancel", up);
}

/** An inline text field over `host` (a title): resolves to the new text, or null if cancelled. */
export function editInline(host, value) {
  return new Promise((resolve) => {
    const old = [...host.childNodes];
    const field = document.createElement("input");
    field.className = "title-edit";
    field.value = value;
    host.replaceChildren(field);
    field.focus();
    field.select();
    let done = false;
    const finish = (save) => {
      if (done) return;
      done = true;
      host.replaceChildren(...old);
      resolve(save ? field.value : null);
    };
    field.addEventListener("keydown", (e) => {
      if (e.key === "Enter") finish(true);
      else if (e.key === "Escape") finish(false);
      e.stopPropagation();
    });
    field.addEventListener("pointerdown", (e) => e.stopPropagation());
    field.addEventListener("blur", () => finish(true));
  });
}
