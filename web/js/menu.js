// The add-node menu (searchable, grouped by category, with each node's help text) and small
// context menus for nodes and links.

import {displayName} from "./catalogue.js";
import {score} from "./node_search.js";

function el(tag, className, attrs = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

// One collator for every comparison (localeCompare makes one per call: ~10x slower over ~2000 names).
const collator = new Intl.Collator();
// Matches drawn for a query: building and laying out all ~2000 rows at every key made typing lag;
// the best ones are drawn, and a last row says how many more a longer query would narrow down.
export const MOST_SHOWN = 150;

function place(box, clientX, clientY) {
  document.body.append(box);
  const r = box.getBoundingClientRect();
  box.style.left = `${Math.max(4, Math.min(clientX, innerWidth - r.width - 4))}px`;
  box.style.top = `${Math.max(4, Math.min(clientY, innerHeight - r.height - 4))}px`;
}

export class NodeMenu {
  /** extras: specs the editor itself provides (notes, Reroutes), offered with the catalogue's. */
  constructor(catalogue, extras = []) {
    this.catalogue = catalogue;
    this.extras = extras;
    this.box = null;
  }

  get isOpen() {
    return Boolean(this.box);
  }

  /** Show the menu at a client point; resolves to the chosen node spec, or null. */
  open(clientX, clientY, {filter = null, title = "Add node"} = {}) {
    this.close();
    return new Promise((resolve) => {
      this.resolve = resolve;
      const box = el("div", "node-menu", {role: "dialog", "aria-label": title});
      const head = el("div", "menu-head");
      const search = el("input", "menu-search", {type: "search", placeholder: `${title}: search nodes…`, spellcheck: "false", "aria-label": "search nodes"});
      head.append(search);
      const body = el("div", "menu-body");
      const list = el("div", "menu-list", {role: "listbox"});
      const help = el("div", "menu-help");
      body.append(list, help);
      box.append(head, body);
      this.box = box;

      const specs = [...Object.values(this.catalogue.nodes), ...this.extras].filter((s) => !filter || filter(s))
        .sort((a, b) => collator.compare(a.category, b.category) || collator.compare(displayName(a), displayName(b)));
      let items = [];
      let active = 0;
      const activate = (i) => {
        active = Math.max(0, Math.min(items.length - 1, i));
        items.forEach((item, j) => item.el.classList.toggle("active", j === active));
        if (items[active]) {
          items[active].el.scrollIntoView({block: "nearest"});
          this.showHelp(help, items[active].spec);
        } else help.replaceChildren();
      };
      const render = () => {
        const query = search.value.trim().toLowerCase();
        list.replaceChildren();
        items = [];
        let shown = specs, more = 0;
        if (query) {
          shown = specs.map((s) => [score(s, query), s]).filter(([sc]) => sc > 0)
            .sort((a, b) => b[0] - a[0] || collator.compare(displayName(a[1]), displayName(b[1]))).map(([, s]) => s);
          more = Math.max(0, shown.length - MOST_SHOWN);
          shown = shown.slice(0, MOST_SHOWN);
        }
        let category = null;
        for (const spec of shown) {
          if (!query && spec.category !== category) {
            category = spec.category;
            const header = el("div", "menu-category");
            header.textContent = category;
            list.append(header);
          }
          const item = el("div", "menu-item", {role: "option", "data-node-type": spec.type});
          const name = el("span", "menu-item-name");
          name.textContent = displayName(spec);
          item.append(name);
          if (query) {
            const cat = el("span", "menu-item-category");
            cat.textContent = spec.category;
            item.append(cat);
          }
          const index = items.length;
          item.addEventListener("pointerenter", () => activate(index));
          item.addEventListener("click", () => this.finish(spec));
          items.push({el: item, spec});
          list.append(item);
        }
        if (more) {
          const rest = el("div", "menu-more");
          rest.textContent = `${more} more: type more to narrow the search`;
          list.append(rest);
        }
        if (!items.length) {
          const none = el("div", "menu-empty");
          none.textContent = specs.length ? "No node matches." : "No node fits here.";
          list.append(none);
        }
        activate(0);
      };
      search.addEventListener("input", render);
      search.addEventListener("keydown", (e) => {
        if (e.key === "ArrowDown") { e.preventDefault(); activate(active + 1); }
        else if (e.key === "ArrowUp") { e.preventDefault(); activate(active - 1); }
        else if (e.key === "Enter") { e.preventDefault(); if (items[active]) this.finish(items[active].spec); }
        else if (e.key === "Escape") { e.preventDefault(); this.finish(null); }
      });
      box.addEventListener("pointerdown", (e) => e.stopPropagation());
      box.addEventListener("wheel", (e) => e.stopPropagation());
      this.outside = (e) => { if (!box.contains(e.target)) this.finish(null); };
      setTimeout(() => document.addEventListener("pointerdown", this.outside), 0);
      render();
      place(box, clientX, clientY);
      search.focus();
    });
  }

  showHelp(help, spec) {
    help.replaceChildren();
    const title = el("div", "help-title");
    title.textContent = displayName(spec);
    const meta = el("div", "help-meta");
    meta.textContent = `${spec.category}${spec.source && spec.source !== "builtin" ? ` · ${spec.source}` : ""}`;
    help.append(title, meta);
    // Docstrings wrap at ~100 columns: rejoin lines, keep blank-line paragraphs.
    for (const paragraph of (spec.description || "No description.").split(/\n\s*\n/)) {
      const text = el("p", "help-text");
      text.textContent = paragraph.replace(/\s*\n\s*/g, " ");
      help.append(text);
    }
    const io = el("div", "help-io");
    const sockets = spec.inputs.filter((i) => !i.kind).map((i) => `${i.name} (${i.type})`);
    const outs = spec.outputs.map((o) => `${o.name} (${o.type})`);
    if (sockets.length) io.append(line("In", sockets.join(", ")));
    if (outs.length) io.append(line("Out", outs.join(", ")));
    help.append(io);
    function line(label, value) {
      const row = el("div");
      const b = el("b");
      b.textContent = `${label}: `;
      row.append(b, value);
      return row;
    }
  }

  finish(spec) {
    const resolve = this.resolve;
    this.resolve = null;
    this.close();
    if (resolve) resolve(spec);
  }

  close() {
    if (this.outside) document.removeEventListener("pointerdown", this.outside);
    this.outside = null;
    if (this.box) this.box.remove();
    this.box = null;
    const resolve = this.resolve;
    this.resolve = null;
    if (resolve) resolve(null);
  }
}

/** A small menu of actions: [{label, action, danger?, disabled?, swatch? (a colour)}]. */
export function contextMenu(clientX, clientY, entries) {
  document.querySelectorAll(".context-menu").forEach((m) => m.remove());
  const box = el("div", "context-menu", {role: "menu"});
  const close = () => {
    box.remove();
    document.removeEventListener("pointerdown", outside);
    document.removeEventListener("keydown", escape);
  };
  const outside = (e) => { if (!box.contains(e.target)) close(); };
  const escape = (e) => { if (e.key === "Escape") close(); };
  for (const entry of entries) {
    const item = el("button", `context-item${entry.danger ? " danger" : ""}`, {type: "button", role: "menuitem"});
    item.textContent = entry.label;
    if (entry.swatch) {
      const swatch = el("span", "swatch");
      swatch.style.background = entry.swatch;
      item.prepend(swatch);
    }
    item.disabled = Boolean(entry.disabled);
    item.addEventListener("click", () => {
      close();
      entry.action();
    });
    box.append(item);
  }
  place(box, clientX, clientY);
  setTimeout(() => {
    document.addEventListener("pointerdown", outside);
    document.addEventListener("keydown", escape);
  }, 0);
}
