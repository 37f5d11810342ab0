// Links drawn as bezier curves in an SVG layer that shares the world transform with the nodes,
// coloured by the type of the output they carry.

const SVG = "http://www.w3.org/2000/svg";

export function curve([x1, y1], [x2, y2]) {
  const dx = Math.max(40, Math.abs(x2 - x1) * 0.5);
  return `M ${x1} ${y1} C ${x1 + dx} ${y1}, ${x2 - dx} ${y2}, ${x2} ${y2}`;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

export class LinkLayer {
  constructor(root) {
    this.root = root;
    this.paths = new Map(); // "dst\ninput" -> {group, hit, line}
    this.draft = svg("path", {class: "link-draft"});
    this.draft.style.display = "none";
    root.append(this.draft);
  }

  static key(dst, input) {
    return `${dst}\n${input}`;
  }

  /** Draw `links` ({src, out, dst, input, from: [x, y], to: [x, y], color}); removes the rest. */
  sync(links) {
    const seen = new Set();
    for (const link of links) {
      const key = LinkLayer.key(link.dst, link.input);
      seen.add(key);
      let entry = this.paths.get(key);
      if (!entry) {
        const group = svg("g", {class: "link", "data-link-dst": link.dst, "data-link-input": link.input});
        const hit = svg("path", {class: "link-hit"});
        const line = svg("path", {class: "link-line"});
        group.append(hit, line);
        this.root.insertBefore(group, this.draft);
        entry = {group, hit, line};
        this.paths.set(key, entry);
      }
      this.place(entry, link);
    }
    for (const [key, entry] of this.paths) {
      if (!seen.has(key)) {
        entry.group.remove();
        this.paths.delete(key);
      }
    }
  }

  /** Move only the given links (while dragging nodes). */
  update(links) {
    for (const link of links) {
      const entry = this.paths.get(LinkLayer.key(link.dst, link.input));
      if (entry) this.place(entry, link);
    }
  }

  place(entry, link) {
    // Through Reroute points (link.via: [[x, y], ...]): one curve per leg, in one path.
    const points = [link.from, ...(link.via || []), link.to];
    const d = points.slice(1).map((p, i) => curve(points[i], p)).join(" ");
    entry.hit.setAttribute("d", d);
    entry.line.setAttribute("d", d);
    entry.line.style.stroke = link.color;
    entry.group.dataset.linkSrc = link.src;
    entry.group.dataset.linkOut = String(link.out);
  }

  select(key) {
    for (const [k, entry] of this.paths) entry.group.classList.toggle("selected", k === key);
  }

  highlight(keys) {
    for (const [k, entry] of this.paths) entry.group.classList.toggle("highlight", keys.has(k));
  }

  /** The link being dragged: from an output (or to an input) to the pointer. */
  showDraft(from, to, color) {
    this.draft.style.display = "";
    this.draft.setAttribute("d", curve(from, to));
    this.draft.style.stroke = color;
  }

  hideDraft() {
    this.draft.style.display = "none";
  }
}
