// Opening and saving workflow files: our JSON, ComfyUI API-format JSON (converted by the
// server, which owns the ComfyUI name mapping) and PNGs made by SaveImage (graph embedded).

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

/** {workflow: ours, problems} from parsed data of any supported kind; problems come with a
 * converted graph (the server validates it; the editor opens it anyway, to be fixed). */
export async function toWorkflow(data, what) {
  if (isOurs(data)) return {workflow: data, problems: []};
  if (isComfyApiGraph(data)) {
    const converted = await api.convertWorkflow(data);
    return {workflow: converted.workflow, problems: converted.problems || []};
  }
  if (data && Array.isArray(data.nodes) && Array.isArray(data.links)) {
    throw new WorkflowFileError(`${what} is a ComfyUI editor graph; export it from ComfyUI with "Save (API)" and open that instead`);
  }
  throw new WorkflowFileError(`${what} is not a workflow: expected {"version": 1, "nodes": {...}} or a ComfyUI API-format graph`);
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
  const head = new Uint8Array(buffer, 0, Math.min(8, buffer.byteLength));
  if (head[0] === 0x89 && head[1] === 0x50) {
    const text = await readPngText(buffer);
    if (text.graphflow) return toWorkflow(parseJson(text.graphflow, what), what);
    if (text.prompt) return toWorkflow(parseJson(text.prompt, what), what);
    if (text.workflow) return toWorkflow(parseJson(text.workflow, what), what);
    throw new WorkflowFileError(`${what} holds no workflow (only PNGs saved by SaveImage do)`);
  }
  return toWorkflow(parseJson(new TextDecoder().decode(buffer), what), what);
}

/** Offer `workflow` as a download named `name`. */
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
