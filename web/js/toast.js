// Short notices in the corner: errors, confirmations, refused links.

export function toast(message, {kind = "info", timeout = 4000, detail = ""} = {}) {
  const box = document.getElementById("toasts");
  const item = document.createElement("div");
  item.className = `toast ${kind}`;
  item.setAttribute("role", kind === "error" ? "alert" : "status");
  const text = document.createElement("div");
  text.className = "toast-text";
  text.textContent = message;
  item.append(text);
  if (detail) {
    const more = document.createElement("pre");
    more.className = "toast-detail";
    more.textContent = detail;
    item.append(more);
  }
  const close = () => {
    item.classList.add("leaving");
    setTimeout(() => item.remove(), 200);
  };
  item.addEventListener("click", close);
  box.append(item);
  while (box.children.length > 5) box.firstElementChild.remove();
  if (timeout) setTimeout(close, timeout);
  return item;
}
