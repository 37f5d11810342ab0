// Seed widgets' "control after generate", as in ComfyUI: after each queue the seed stays
// (fixed), steps up or down, or is drawn at random. Kept per node in ui.nodes[id].control.

export const CONTROL_MODES = ["fixed", "increment", "decrement", "randomize"];

export function hasControl(input) {
  return input.kind === "INT" && ["seed", "noise_seed"].includes(input.name);
}

/** The seed after a queue. */
export function nextValue(mode, value, input) {
  const min = input.min ?? 0;
  const max = Math.min(input.max ?? Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  const v = Number(value) || 0;
  if (mode === "increment") return v + 1 > max ? min : v + 1;
  if (mode === "decrement") return v - 1 < min ? max : v - 1;
  if (mode === "randomize") {
    const [hi, lo] = crypto.getRandomValues(new Uint32Array(2));
    return min + Number((BigInt(hi) * 2n ** 32n + BigInt(lo)) % BigInt(max - min + 1));
  }
  return v;
}

/** The select shown under a seed widget. */
export function controlSelect(mode, onChange) {
  const select = document.createElement("select");
  select.className = "w-control";
  select.setAttribute("aria-label", "control after generate");
  for (const m of CONTROL_MODES) select.append(new Option(`control after generate: ${m}`, m));
  select.value = CONTROL_MODES.includes(mode) ? mode : "fixed";
  select.addEventListener("change", () => onChange(select.value));
  return select;
}
