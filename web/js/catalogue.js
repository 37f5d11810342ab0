// The node catalogue from GET /api/nodes: node specs, socket colours and which links fit.

// What each widget kind accepts from a link. Mirrors WIDGET_LINK_TYPES in
// graphflow/validation.py (tests/test_editor_e2e.py checks that the two agree).
export const WIDGET_LINK_TYPES = {"INT": ["INT"], "FLOAT": ["FLOAT", "INT"], "STRING": ["STRING"], "BOOLEAN": ["BOOLEAN"], "CHOICE": ["STRING", "INT", "FLOAT"]};
const ANY = "*";
const FALLBACK_COLOR = "#9e9e9e";

export class Catalogue {
  constructor(data) {
    this.nodes = data.nodes || {};
    this.sockets = data.sockets || {};
    this.problems = data.problems || [];
  }

  get(type) {
    return this.nodes[type] || null;
  }

  has(type) {
    return type in this.nodes;
  }

  input(type, name) {
    const spec = this.get(type);
    return spec ? spec.inputs.find((i) => i.name === name) || null : null;
  }

  color(socketType) {
    return (this.sockets[socketType] && this.sockets[socketType].color) || FALLBACK_COLOR;
  }

  /** Whether an output of type `outType` may be linked into `input`, and if not, why. */
  accepts(input, outType) {
    if (!input) return {ok: false, reason: "no such input"};
    const accepted = isWidget(input) ? WIDGET_LINK_TYPES[input.kind] || [] : [input.type];
    if (outType === ANY || input.type === ANY || accepted.includes(outType)) return {ok: true};
    const expected = accepted.join(" or ");
    return {ok: false, reason: `'${input.name}' takes ${expected}, not ${outType}`};
  }

  /** Node specs grouped by category (sorted), for the add-node menu. */
  byCategory() {
    const groups = new Map();
    const collator = new Intl.Collator();  // one for all comparisons (localeCompare makes one per call)
    const specs = Object.values(this.nodes).sort((a, b) =>
      collator.compare(a.category, b.category) || collator.compare(displayName(a), displayName(b)));
    for (const spec of specs) {
      if (!groups.has(spec.category)) groups.set(spec.category, []);
      groups.get(spec.category).push(spec);
    }
    return groups;
  }
}

export function isWidget(input) {
  return input && typeof input.kind === "string";
}

export function displayName(spec) {
  return spec.display_name || spec.type;
}

/** A stable accent colour for a category (the node header strip). */
export function categoryColor(category) {
  const top = (category || "misc").split("/")[0];
  let hash = 0;
  for (const ch of top) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${hash % 360} 45% 55%)`;
}
