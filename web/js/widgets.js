// Widget controls inside a node: numbers (drag to scrub, arrows to step, click to type), text
// and multiline prompts, toggles, dropdowns, an image picker with upload and mask painting, and a
// webcam (WebcamCapture's) that previews the camera and uploads a frame.
// Each widget row is also a link target: a widget input accepts a link of its own kind.

const SCRUB_PIXELS = 8; // pointer travel per step when dragging a number
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function el(tag, className, attrs = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function decimals(step) {
  const text = String(step);
  return text.includes(".") ? text.length - text.indexOf(".") - 1 : 0;
}

/**
 * A widget row for `input` (a catalogue input with a `kind`).
 * hooks: {change(value, commit), upload(file, subfolder) -> path, paintMask(path) -> path, thumbnail(path),
 *         values() -> the node's widget values}
 * The result may have beforeQueue() (awaited before the graph is queued) and capture() (webcam).
 */
export function createWidget(input, value, hooks) {
  const row = el("div", "widget-row", {"data-input": input.name, "data-kind": input.kind});
  if (input.description) row.title = input.description;
  const socket = el("span", "socket widget-socket", {"data-socket": "input"});
  const linked = el("div", "w-linked");
  const error = el("div", "w-error");
  const control = {
    INT: numberWidget, FLOAT: numberWidget, STRING: textWidget,
    BOOLEAN: toggleWidget, CHOICE: input.upload === "image" || input.upload === "video" ? imageWidget : choiceWidget,
  }[input.kind] || textWidget;
  const widget = (input.upload === "webcam" ? webcamWidget : control)(input, value, hooks);
  row.append(socket, widget.el, linked, error);
  return {
    el: row,
    input,
    setValue: widget.setValue,
    setOptions: widget.setOptions || (() => {}),
    beforeQueue: widget.beforeQueue,
    capture: widget.capture,
    uploadFrame: widget.uploadFrame,
    setLinked(label) {
      row.classList.toggle("linked", Boolean(label));
      linked.textContent = label ? `${input.name} ← ${label}` : "";
    },
    setError(message) {
      row.classList.toggle("error", Boolean(message));
      error.textContent = message || "";
    },
  };
}

function numberWidget(input, value, hooks) {
  const isInt = input.kind === "INT";
  const step = input.step || (isInt ? 1 : 0.01);
  const min = input.min ?? -Infinity;
  const max = Math.min(input.max ?? Infinity, isInt ? MAX_SAFE : Infinity);
  const places = decimals(step);
  const box = el("div", "w-number");
  const dec = el("button", "w-step", {type: "button", tabindex: "-1", "aria-label": `decrease ${input.name}`});
  dec.textContent = "‹";
  const inc = el("button", "w-step", {type: "button", tabindex: "-1", "aria-label": `increase ${input.name}`});
  inc.textContent = "›";
  const label = el("span", "w-label");
  label.textContent = input.name;
  const field = el("input", "w-value", {type: "text", inputmode: "decimal", spellcheck: "false", "aria-label": input.name});
  box.append(dec, label, field, inc);

  let current = value;
  const show = (v) => {
    field.value = v === null || v === undefined || Number.isNaN(v) ? "" : isInt ? String(v) : String(Number(Number(v).toFixed(Math.max(places, 6))));
  };
  const normalise = (v) => {
    let n = Math.min(max, Math.max(min, v));
    if (isInt && step > 1) {  // snap to the step, as the engine would at run time (height 100, step 8 -> 104)
      const origin = Number.isFinite(min) ? min : 0;
      n = origin + Math.round((n - origin) / step) * step;
      if (n > max) n -= step;
    }
    n = isInt ? Math.round(n) : Number(n.toFixed(Math.max(places, 6)));
    return n;
  };
  const set = (v, commit) => {
    current = normalise(v);
    show(current);
    hooks.change(current, commit);
  };
  const stepBy = (n, commit) => {
    const base = typeof current === "number" ? current : Number(input.default ?? 0);
    const v = isInt ? base + n * step : Number((base + n * step).toFixed(places));
    set(v, commit);
  };
  dec.addEventListener("click", () => stepBy(-1, true));
  inc.addEventListener("click", () => stepBy(1, true));

  const commitTyped = () => {
    const text = field.value.trim();
    const parsed = Number(text);
    if (text === "" || !Number.isFinite(parsed)) show(current);
    else set(parsed, true);
  };
  field.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      commitTyped();
      field.blur();
    } else if (e.key === "Escape") {
      show(current);
      field.blur();
    } else if (e.key === "ArrowUp" || e.key === "ArrowDown") {
      e.preventDefault();
      stepBy(e.key === "ArrowUp" ? 1 : -1, true);
    }
  });
  field.addEventListener("blur", commitTyped);

  // Drag anywhere on the pill to scrub; a click without movement types instead.
  box.addEventListener("pointerdown", (e) => {
    if (e.button !== 0 || e.target.closest(".w-step") || document.activeElement === field) return;
    e.preventDefault();
    e.stopPropagation();
    const startX = e.clientX;
    const start = typeof current === "number" ? current : 0;
    let moved = false;
    box.setPointerCapture(e.pointerId);
    const move = (ev) => {
      const dx = ev.clientX - startX;
      if (!moved && Math.abs(dx) < 3) return;
      moved = true;
      box.classList.add("scrubbing");
      const steps = Math.round(dx / SCRUB_PIXELS);
      set(isInt ? start + steps * step : Number((start + steps * step).toFixed(places)), false);
    };
    const up = () => {
      box.removeEventListener("pointermove", move);
      box.removeEventListener("pointerup", up);
      box.removeEventListener("pointercancel", up);
      box.classList.remove("scrubbing");
      if (moved) hooks.change(current, true);
      else {
        field.focus();
        field.select();
      }
    };
    box.addEventListener("pointermove", move);
    box.addEventListener("pointerup", up);
    box.addEventListener("pointercancel", up);
  });

  show(current);
  return {el: box, setValue: (v) => { current = v; show(v); }};
}

function textWidget(input, value, hooks) {
  const box = el("label", input.multiline ? "w-text multiline" : "w-text");
  const label = el("span", "w-label");
  label.textContent = input.name;
  const field = input.multiline
    ? el("textarea", "w-value", {rows: "4", spellcheck: "false", placeholder: input.name, "aria-label": input.name})
    : el("input", "w-value", {type: "text", spellcheck: "false", "aria-label": input.name});
  field.value = value ?? "";
  field.addEventListener("input", () => hooks.change(field.value, false));
  field.addEventListener("change", () => hooks.change(field.value, true));
  box.append(label, field);
  return {el: box, setValue: (v) => { if (field.value !== (v ?? "")) field.value = v ?? ""; }};
}

function toggleWidget(input, value, hooks) {
  const box = el("div", "w-toggle");
  const label = el("span", "w-label");
  label.textContent = input.name;
  const button = el("button", "w-switch", {type: "button", role: "switch", "aria-label": input.name});
  let current = Boolean(value);
  const show = () => {
    button.setAttribute("aria-checked", String(current));
    button.textContent = current ? "on" : "off";
  };
  button.addEventListener("click", () => {
    current = !current;
    show();
    hooks.change(current, true);
  });
  box.append(label, button);
  show();
  return {el: box, setValue: (v) => { current = Boolean(v); show(); }};
}

function fillSelect(select, options, value) {
  select.replaceChildren();
  const values = [...options];
  if (value !== undefined && value !== null && value !== "" && !values.includes(value)) values.unshift(value);
  for (const option of values) {
    const item = document.createElement("option");
    item.value = String(option);
    item.textContent = options.includes(option) ? String(option) : `${option} (missing)`;
    select.append(item);
  }
  if (!values.length) {
    const item = document.createElement("option");
    item.value = "";
    item.textContent = "(none available)";
    select.append(item);
  }
  select.value = value === undefined || value === null ? "" : String(value);
}

function choiceWidget(input, value, hooks) {
  const box = el("label", "w-choice");
  const label = el("span", "w-label");
  label.textContent = input.name;
  const select = el("select", "w-value", {"aria-label": input.name});
  let options = input.options || [];
  let current = value;
  // Options may be numbers; a <select> only holds strings, so map back on change.
  select.addEventListener("change", () => {
    const picked = [...options, current].find((o) => String(o) === select.value);
    current = picked === undefined ? select.value : picked;
    hooks.change(current, true);
  });
  box.append(label, select);
  fillSelect(select, options, current);
  return {
    el: box,
    select,
    setValue: (v) => { current = v; fillSelect(select, options, v); },
    setOptions: (o) => { options = o; fillSelect(select, options, current); },
  };
}

function imageWidget(input, value, hooks) {
  const video = input.upload === "video";  // LoadVideo's file: uploads videos; no mask, no thumbnail
  const choice = choiceWidget(input, value, {change: (v, commit) => { showThumb(v); hooks.change(v, commit); }});
  const box = el("div", "w-image");
  const actions = el("div", "w-image-actions");
  const upload = el("button", "w-button", {type: "button", "data-action": "upload"});
  upload.textContent = "Upload…";
  const mask = el("button", "w-button", {type: "button", "data-action": "paint-mask"});
  mask.textContent = "Paint mask";
  const file = el("input", "", {type: "file", accept: video ? "video/*" : "image/*", hidden: ""});
  const thumb = el("img", "w-thumb", {alt: "", draggable: "false"});
  actions.append(...(video ? [upload, file] : [upload, mask, file]));
  box.append(choice.el, actions, thumb);

  let current = value;
  const showThumb = (v) => {
    current = v;
    thumb.hidden = !v || video;
    if (v && !video) thumb.src = hooks.thumbnail(v);
    mask.disabled = !v;
  };
  const adopt = (path) => {
    if (!path) return;
    choice.setValue(path);
    showThumb(path);
    hooks.change(path, true);
  };
  upload.addEventListener("click", () => file.click());
  file.addEventListener("change", async () => {
    if (file.files[0]) adopt(await hooks.upload(file.files[0]));
    file.value = "";
  });
  mask.addEventListener("click", async () => adopt(await hooks.paintMask(current)));
  // Drop an image (video) file onto the picker to upload it.
  box.addEventListener("dragover", (e) => { e.preventDefault(); e.stopPropagation(); });
  box.addEventListener("drop", async (e) => {
    const dropped = [...(e.dataTransfer.files || [])].find((f) => f.type.startsWith(video ? "video/" : "image/"));
    if (!dropped) return;
    e.preventDefault();
    e.stopPropagation();
    adopt(await hooks.upload(dropped));
  });
  showThumb(value);
  return {
    el: box,
    setValue: (v) => { choice.setValue(v); showThumb(v); },
    setOptions: choice.setOptions,
  };
}

/** A camera's frame as the value: live preview (getUserMedia), a frame taken by the capture button
 * or, with the node's capture_on_queue on, before each queue; drawn at the node's width x height
 * (0: the camera's own), uploaded as PNG to the inputs' webcam/ folder. Without a camera (none,
 * refused, no secure page) it says so, and the earlier capture stays the value. */
function webcamWidget(input, value, hooks) {
  const box = el("div", "w-image w-webcam");
  const video = el("video", "w-webcam-video", {playsinline: "", "aria-label": "camera preview"});
  video.muted = true;
  const status = el("div", "w-webcam-status", {role: "status"});
  status.textContent = "Waiting for the camera…";
  const actions = el("div", "w-image-actions");
  const button = el("button", "w-button", {type: "button", "data-action": "capture"});
  button.textContent = "Capture";
  button.disabled = true;
  const thumb = el("img", "w-thumb", {alt: "the last capture", draggable: "false"});
  actions.append(button);
  box.append(video, status, actions, thumb);

  let current = value;
  const showThumb = () => {
    thumb.hidden = !current;
    if (current) thumb.src = hooks.thumbnail(current);
  };
  let stream = null;
  const open = async () => {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error(window.isSecureContext ? "this browser gives no camera access"
        : "camera access needs a secure page (https, or localhost)");
    }
    stream = await navigator.mediaDevices.getUserMedia({video: true, audio: false});
    video.srcObject = stream;
    const metadata = new Promise((resolve) => video.addEventListener("loadedmetadata", resolve, {once: true}));
    await video.play();
    if (!video.videoWidth) await metadata;
  };
  const ready = open().then(() => {
    status.textContent = "";
    button.disabled = false;
    return true;
  }, (e) => {
    video.hidden = true;
    box.classList.add("no-camera");
    status.textContent = `No camera: ${e.message || e.name}.` + (current ? " Keeping the last capture." : "");
    return false;
  });
  // Let the camera go once the node is gone (deleted, or the graph replaced).
  let shown = false;
  const watch = setInterval(() => {
    if (box.isConnected) shown = true;
    else if (shown) {
      clearInterval(watch);
      if (stream) for (const track of stream.getTracks()) track.stop();
    }
  }, 1000);

  /** Upload a canvas as the new capture; its path, or null when the upload failed. */
  const uploadFrame = async (canvas) => {
    const blob = await new Promise((resolve, reject) => canvas.toBlob(
      (b) => (b ? resolve(b) : reject(new Error("the frame could not be encoded"))), "image/png"));
    const path = await hooks.upload(new File([blob], `${Date.now()}.png`, {type: "image/png"}), "webcam");
    if (!path) return null;
    current = path;
    showThumb();
    hooks.change(path, true);
    return path;
  };
  /** Take a frame now; null (the earlier capture kept) without a camera. */
  const capture = async () => {
    if (!(await ready)) return null;
    const values = hooks.values ? hooks.values() : {};
    const canvas = document.createElement("canvas");
    canvas.width = Number(values.width) || video.videoWidth;
    canvas.height = Number(values.height) || video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    return uploadFrame(canvas);
  };
  button.addEventListener("click", () => capture());
  showThumb();
  return {
    el: box,
    setValue: (v) => { current = v; showThumb(); },
    beforeQueue: async () => {
      const values = hooks.values ? hooks.values() : {};
      if (values.capture_on_queue !== false) await capture();
    },
    capture,
    uploadFrame,
  };
}
