// Opening and saving workflow files: our JSON; ComfyUI's API-format and UI-format JSON, and
// pictures (PNG, WebP) carrying a graph (ours, ComfyUI's, A1111 parameters). The server owns
// the ComfyUI mapping (graphflow/comfy_format.py), so everything but our own JSON goes there.

import {api} from "./api_client.js";
import {readPngText} from "./png_metadata.js";

export class WorkflowFileError extends Error {}

function isComfyApiGraph(data) {
  return data && typeof data === "object" && !Array.isArray(data) && !("nodes" in data) &&
    Object.keys(data).length > 0 && Object.values(data).every((v) => v && typeof v === "object" && "class_type" in v);
}

function isOurs(data) {
  return data && typeof data === "object" && data.nodes && typeof data.nodes === "object" && !Array.isArray(data.nodes);
}

function isComfyUiGraph(data) {
  return data && typeof data === "object" && Array.isArray(data.nodes);
}

/** {workflow: ours, problems} from parsed data of any supported kind; problems come with a
 * converted graph (the server validates it; the editor opens it anyway, to be fixed). */
export async function toWorkflow(data, what) {
  if (isOurs(data)) return {workflow: data, problems: []};
  if (isComfyApiGraph(data) || isComfyUiGraph(data)) {
    const converted = await api.convertWorkflow(data);
    return {workflow: converted.workflow, problems: converted.problems || []};
  }
  throw new WorkflowFileError(`${what} is not a workflow: expected {"version": 1, "nodes": {...}} or a ComfyUI graph (API or UI format)`);
}

function base64Of(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new WorkflowFileError(`${what} is not valid JSON: ${e.message}`);
  }
}

/** Read a dropped or opened File: {workflow, problems}. */
export async function readWorkflowFile(file) {
  const what = file.name || "the file";
  const buffer = await file.arrayBuffer();
  const head = new Uint8Array(buffer, 0, Math.min(12, buffer.byteLength));
  const isPng = head[0] === 0x89 && head[1] === 0x50;
  const isWebp = String.fromCharCode(...head.subarray(0, 4)) === "RIFF" && String.fromCharCode(...head.subarray(8, 12)) === "WEBP";
  if (isPng) {
    const text = await readPngText(buffer);
    if (text.graphflow) return toWorkflow(parseJson(text.graphflow, what), what);
  }
  if (isPng || isWebp) {
    // ComfyUI's chunks, WebP EXIF and A1111 parameters: the server reads them.
    const converted = await api.convertPicture(base64Of(buffer), what);
    return {workflow: converted.workflow, problems: converted.problems || []};
  }
  return toWorkflow(parseJson(new TextDecoder().decode(buffer), what), what);
}

/** Offer `workflow` (any JSON) as a download named `name`. */
export function downloadWorkflow(workflow, name = "workflow.json") {
  const blob = new Blob([JSON.stringify(workflow, null, 2) + "\n"], {type: "application/json"});
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name.endsWith(".json") ? name : `${name}.json`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}
