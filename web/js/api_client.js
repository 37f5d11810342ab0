// The server's HTTP API (docs/api.md).

export class ApiError extends Error {
  constructor(status, body) {
    super((body && typeof body.error === "string" && body.error) || `request failed (HTTP ${status})`);
    this.status = status;
    this.body = body || {};
  }
}

async function request(method, path, body, isForm = false) {
  const init = {method, headers: {}};
  if (body !== undefined) {
    if (isForm) init.body = body;
    else {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = {error: text.slice(0, 300)};
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const api = {
  nodes: () => request("GET", "/api/nodes"),
  system: () => request("GET", "/api/system"),
  queueRun: (workflow, clientId) => request("POST", "/api/runs", {workflow, client_id: clientId}),
  queue: () => request("GET", "/api/queue"),
  cancel: (runId) => request("DELETE", `/api/queue/${encodeURIComponent(runId)}`),
  cancelAll: () => request("DELETE", "/api/queue"),
  interrupt: (runId) => request("POST", "/api/interrupt", runId ? {run_id: runId} : {}),
  history: (offset = 0, limit = 50) => request("GET", `/api/history?offset=${offset}&limit=${limit}`),
  run: (runId) => request("GET", `/api/history/${encodeURIComponent(runId)}`),
  convertWorkflow: (workflow, to = "graphflow") => request("POST", "/api/workflow/convert", {workflow, to}),
  modelInfo: (kind, name) => request("GET", `/api/models/${encodeURIComponent(kind)}/info?name=${encodeURIComponent(name)}`),
  convertPicture: (image, name) => request("POST", "/api/workflow/convert", {image, name}),
  templates: () => request("GET", "/api/workflows"),
  template: (name) => request("GET", `/api/workflows/${encodeURIComponent(name)}`),
  savedWorkflows: () => request("GET", "/api/userdata/workflows"),
  savedWorkflow: (name) => request("GET", `/api/userdata/workflows/${encodeURIComponent(name)}`),
  saveWorkflow: (name, workflow, overwrite = true) =>
    request("PUT", `/api/userdata/workflows/${encodeURIComponent(name)}${overwrite ? "" : "?overwrite=0"}`, workflow),
  deleteWorkflow: (name) => request("DELETE", `/api/userdata/workflows/${encodeURIComponent(name)}`),

  upload(file, name = file.name, subfolder = "") {
    const form = new FormData();
    form.append("image", file, name);
    if (subfolder) form.append("subfolder", subfolder);
    return request("POST", "/api/upload", form, true);
  },

  /** Upload a painted mask (alpha = kept) applied to the input image `original` (its path). */
  uploadMask(blob, original, name) {
    const form = new FormData();
    form.append("image", blob, name);
    const slash = original.lastIndexOf("/");
    form.append("original", JSON.stringify({
      filename: original.slice(slash + 1), subfolder: slash >= 0 ? original.slice(0, slash) : "", type: "input",
    }));
    return request("POST", "/api/upload/mask", form, true);
  },
};

/** URL of an image a node showed ({filename, subfolder, type}). */
export function viewUrl(image, thumbnail = 0) {
  const params = new URLSearchParams({filename: image.filename, subfolder: image.subfolder || "", type: image.type || "output"});
  if (thumbnail) params.set("thumbnail", String(thumbnail));
  return `/api/view?${params}`;
}

/** URL of a file in the inputs folder given its path (LoadImage's value). */
export function inputUrl(path, thumbnail = 0) {
  const slash = path.lastIndexOf("/");
  return viewUrl({filename: path.slice(slash + 1), subfolder: slash >= 0 ? path.slice(0, slash) : "", type: "input"}, thumbnail);
}
