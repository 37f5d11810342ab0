// How well a node spec matches what was typed in the add-node menu: its name, type and ComfyUI
// class names, multi-word ("vae decode" finds VAEDecode) and fuzzy ("ksmp" finds KSampler).

import {displayName} from "./catalogue.js";

/** "CLIPTextEncode" -> ["clip", "text", "encode"] */
function words(text) {
  return text.replace(/([a-z0-9])([A-Z])/g, "$1 $2").replace(/([A-Z]+)([A-Z][a-z])/g, "$1 $2")
    .toLowerCase().split(/[^a-z0-9]+/).filter(Boolean);
}

const squash = (text) => text.toLowerCase().replace(/[^a-z0-9]/g, "");

function subsequence(needle, haystack) {
  let i = 0;
  for (const ch of haystack) if (ch === needle[i]) i += 1;
  return i === needle.length;
}

// A spec's texts split and lowered once, not at every key for each of ~2000 specs (the menu scores all).
const searchTexts = new WeakMap();

function textsOf(spec) {
  let texts = searchTexts.get(spec);
  if (!texts) {
    texts = {names: [displayName(spec), spec.type, ...(spec.comfy || [])].map((name) => ({flat: squash(name), parts: words(name)})),
             category: (spec.category || "").toLowerCase(), description: (spec.description || "").toLowerCase()};
    searchTexts.set(spec, texts);
  }
  return texts;
}

/** Higher is better; 0: no match. */
export function score(spec, query) {
  const tokens = query.toLowerCase().split(/\s+/).filter(Boolean);
  const joined = tokens.join("");
  if (!joined) return 1;
  const {names, category, description} = textsOf(spec);
  let best = 0;
  for (const {flat, parts} of names) {
    // within a kind of match, the name the query covers more of first ("ksmplr": KSampler before
    // "KSampler //Inspire"), by less than one point so the kinds keep their order
    const closeness = flat ? joined.length / Math.max(flat.length, joined.length) : 0;
    if (flat === joined) best = Math.max(best, 100);
    else if (flat.startsWith(joined)) best = Math.max(best, 80 + closeness);
    else if (tokens.every((t) => parts.some((p) => p.startsWith(t)))) best = Math.max(best, 70 + closeness);
    else if (flat.includes(joined) || tokens.every((t) => flat.includes(t))) best = Math.max(best, 50 + closeness);
    else if (flat[0] === joined[0] && subsequence(joined, flat)) best = Math.max(best, 20 + closeness);
  }
  if (best) return best;
  if (tokens.every((t) => category.includes(t))) return 30;
  if (tokens.every((t) => description.includes(t))) return 10;
  return 0;
}
