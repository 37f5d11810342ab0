// Live run state from the websocket: which node runs, sampler progress, previews, results
// and errors, shown on the nodes of this client's runs, in the toolbar and the side panel.

import {toast} from "./toast.js";

export class RunMonitor {
  constructor(editor, panel, clientId, onFinished) {
    this.editor = editor;
    this.panel = panel;
    this.clientId = clientId;
    this.onFinished = onFinished;
    this.current = null; // the run of ours being shown on the nodes
    this.total = 0;
    this.done = 0;
    this.statusBox = document.getElementById("run-status");
    this.statusLabel = this.statusBox.querySelector(".label");
    this.statusBar = this.statusBox.querySelector(".bar > div");
    this.interruptButton = document.getElementById("btn-interrupt");
  }

  ours(data) {
    return data.client_id === this.clientId;
  }

  view(id) {
    return this.editor.views.get(String(id));
  }

  label(id, type) {
    const view = this.view(id);
    return view && (!type || view.node.type === type) ? `${view.title} #${id}` : `${type || "node"} #${id}`;
  }

  handle(type, data) {
    const handler = this[`on_${type}`];
    if (handler) handler.call(this, data);
  }

  on_status(data) {
    // A (re)connect: our run may have finished while we were away, or still be running.
    this.clientId = data.client_id || this.clientId;
    const ours = (data.queue.running || []).find((run) => this.ours(run));
    this.current = ours ? ours.run_id : null;
    this.on_queue(data.queue);
    if (ours && ours.node) {
      this.view(ours.node)?.setStatus("running");
      if (ours.progress) this.on_progress({...ours.progress, run_id: ours.run_id, node: ours.node, node_type: ours.node_type});
      else this.setBar(0, this.label(ours.node, ours.node_type));
    }
    this.statusBox.hidden = !(data.queue.running || []).length;
  }

  on_queue(queue) {
    this.queue = queue;
    this.panel.setQueue(queue, (id, type) => this.label(id, type));
    const running = (queue.running || [])[0];
    this.interruptButton.disabled = !running;
    if (running && !this.current) {
      this.statusBox.hidden = false;
      this.statusLabel.textContent = `Run #${running.number} (another client)`;
      this.statusBar.style.width = "0";
    } else if (!running && !this.current) this.statusBox.hidden = true;
  }

  on_run_started(data) {
    if (!this.ours(data)) return;
    this.current = data.run_id;
    this.total = data.nodes.length;
    this.done = 0;
    this.editor.clearRunState();
    this.editor.clearProblems();
    this.statusBox.hidden = false;
    this.setBar(0, "Starting…");
  }

  /** The bar and its label say the same: the whole graph's progress, then what runs now. */
  setBar(fraction, text) {
    const percent = `${Math.round(fraction * 100)}%`;
    this.statusBar.style.width = percent;
    this.statusLabel.textContent = `${percent} · ${text}`;
    this.statusBox.title = `the whole graph: ${percent} done · ${text}`;
  }

  nodeDone() {
    this.done += 1;
    this.setBar(this.total ? this.done / this.total : 1, `${this.done}/${this.total} nodes`);
  }

  on_node_cached(data) {
    if (data.run_id !== this.current) return;
    const view = this.view(data.node);
    if (view) {
      view.setStatus("cached");
      if (data.ui && Object.keys(data.ui).length) this.showOutputs(view, data.node, data.ui, data.run_id);
    }
    this.nodeDone();
  }

  on_node_started(data) {
    if (data.run_id !== this.current) return;
    this.view(data.node)?.setStatus("running");
    this.setBar(this.total ? this.done / this.total : 0, `${this.label(data.node, data.node_type)}`);
  }

  on_progress(data) {
    if (data.run_id !== this.current) return;
    this.view(data.node)?.setProgress(data.value, data.max);
    const within = data.max ? data.value / data.max : 0;
    this.setBar(this.total ? (this.done + within) / this.total : within, `${this.label(data.node, data.node_type)} step ${data.value}/${data.max}`);
  }

  preview(meta, blob) {
    const url = URL.createObjectURL(blob);
    const live = meta.run_id === this.current && meta.run_id !== this.stopped;
    const view = live ? this.view(meta.node) : null;
    if (view) view.setPreview(url);
    else URL.revokeObjectURL(url);
  }

  on_node_finished(data) {
    if (data.run_id !== this.current) return;
    const view = this.view(data.node);
    if (view) {
      view.setStatus("done");
      view.setPreview(null);
      if (data.ui && Object.keys(data.ui).length) this.showOutputs(view, data.node, data.ui, data.run_id);
    }
    this.nodeDone();
  }

  showOutputs(view, id, ui, runId = null) {
    this.editor.showOutputs(id, ui);
    if (ui.images && ui.images.length) this.panel.addResults(ui.images, `${view.title} #${id}`, runId);
  }

  on_node_failed(data) {
    if (data.run_id !== this.current) return;
    const error = data.error || {};
    const view = this.view(data.node);
    const message = `${error.exception_type || "Error"}: ${error.message || "the node failed"}`;
    if (view) {
      view.setStatus("failed");
      view.setProblems([{input: error.input, message}]);
    }
    const where = `${this.label(data.node, data.node_type)}${error.input ? `, input '${error.input}'` : ""}`;
    toast(`${where} failed: ${message}`, {kind: "error", timeout: 10000, detail: error.traceback || ""});
  }

  on_run_interrupted(data) {
    if (data.run_id !== this.current) return;
    this.stopped = data.run_id;  // a preview frame still in flight must not come back
    this.clearPreviews();
    this.view(data.node)?.setStatus(null);
    toast(`Interrupted at ${this.label(data.node, data.node_type)}`, {kind: "warning"});
  }

  on_run_invalid(data) {
    if (!this.ours(data)) return;
    this.showProblems(data.problems || []);
  }

  showProblems(problems) {
    const general = this.editor.showProblems(problems);
    const count = problems.length;
    const lines = problems.map((p) => (p.node_id != null ? `${this.editor.label(p.node_id)}${p.input ? `, '${p.input}'` : ""}: ${p.message}` : p.message));
    toast(`The workflow has ${count} problem${count === 1 ? "" : "s"}${general.length ? "" : " (marked on the nodes)"}`,
          {kind: "error", timeout: 10000, detail: lines.join("\n")});
  }

  clearPreviews() {
    for (const view of this.editor.views.values()) view.setPreview(null);
  }

  on_run_finished(data) {
    if (data.run_id === this.current) {
      this.current = null;
      this.clearPreviews();
      this.statusBox.hidden = !(this.queue && (this.queue.running || []).length);
      if (data.status === "success") {
        toast(`Finished in ${Number(data.elapsed || 0).toFixed(1)} s`, {kind: "success", timeout: 2500});
      }
    }
    this.onFinished(data);
  }
}
