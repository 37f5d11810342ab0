// The side panel: results of this session's runs, the queue (cancel pending runs) and the
// history (reload a past run's workflow and results).

import {viewUrl} from "./api_client.js";

function el(tag, className, attrs = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function ago(seconds) {
  const s = Date.now() / 1000 - seconds;
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(seconds * 1000).toLocaleString();
}

export class SidePanel {
  /** actions: {cancel(runId), cancelAll(), interrupt(), loadRun(runId), refreshHistory(), openImage(image)} */
  constructor(root, actions) {
    this.root = root;
    this.actions = actions;
    this.results = root.querySelector("#results");
    this.queueList = root.querySelector("#queue-list");
    this.historyList = root.querySelector("#history-list");
    this.count = document.getElementById("queue-count");
    this.seen = new Set();
    this.entries = []; // the results shown, newest first: {image, url, caption, runId}
    for (const tab of root.querySelectorAll(".tabs button")) {
      tab.addEventListener("click", () => this.show(tab.dataset.tab));
    }
    root.querySelector("#btn-clear-queue").addEventListener("click", () => actions.cancelAll());
    root.querySelector("#btn-refresh-history").addEventListener("click", () => actions.refreshHistory());
  }

  show(tab) {
    for (const button of this.root.querySelectorAll(".tabs button")) button.classList.toggle("active", button.dataset.tab === tab);
    for (const pane of this.root.querySelectorAll(".pane")) pane.classList.toggle("active", pane.dataset.pane === tab);
    if (tab === "history") this.actions.refreshHistory();
  }

  /** Add images a node showed in run `runId`: newest first, each once. */
  addResults(images, caption, runId = null) {
    for (const image of images.filter((i) => i.filename)) {  // none: sent over the websocket, not saved
      const url = viewUrl(image);
      if (this.seen.has(url)) continue;
      this.seen.add(url);
      this.entries.unshift({image, url, caption, runId});
      const figure = el("figure", "result", {"data-filename": image.filename});
      const img = el("img", "", {alt: image.filename, loading: "lazy", draggable: "false"});
      img.src = url;
      img.addEventListener("click", () => this.actions.openImage(image));
      const text = el("figcaption");
      text.textContent = caption;
      figure.append(img, text);
      this.results.prepend(figure);
    }
    this.results.parentElement.classList.toggle("has-items", this.results.children.length > 0);
  }

  setQueue(queue, label) {
    const running = queue.running || [];
    const pending = queue.pending || [];
    this.queueList.replaceChildren();
    for (const run of running) {
      const item = el("li", "run running", {"data-run-id": run.run_id});
      const title = el("div", "run-title");
      title.textContent = `#${run.number} running`;
      const detail = el("div", "run-detail");
      const progress = run.progress ? ` · ${run.progress.value}/${run.progress.max}` : "";
      detail.textContent = run.node ? `${label(run.node, run.node_type)}${progress}` : "starting…";
      const stop = el("button", "danger small", {type: "button"});
      stop.textContent = "Interrupt";
      stop.addEventListener("click", () => this.actions.interrupt());
      item.append(title, detail, stop);
      this.queueList.append(item);
    }
    for (const run of pending) {
      const item = el("li", "run pending", {"data-run-id": run.run_id});
      const title = el("div", "run-title");
      title.textContent = `#${run.number} pending`;
      const detail = el("div", "run-detail");
      detail.textContent = `position ${run.position + 1} · ${ago(run.submitted_at)}`;
      const cancel = el("button", "small", {type: "button"});
      cancel.textContent = "Cancel";
      cancel.addEventListener("click", () => this.actions.cancel(run.run_id));
      item.append(title, detail, cancel);
      this.queueList.append(item);
    }
    const total = running.length + (queue.pending_total ?? pending.length);
    this.count.textContent = total ? String(total) : "";
    this.queueList.parentElement.classList.toggle("has-items", total > 0);
  }

  setHistory(items) {
    this.historyList.replaceChildren();
    for (const run of items) {
      const item = el("li", `run ${run.status}`, {"data-run-id": run.run_id});
      const title = el("div", "run-title");
      const dot = el("span", "status-dot");
      title.append(dot, `#${run.number} ${run.status}`);
      const detail = el("div", "run-detail");
      const elapsed = run.elapsed != null ? ` · ${run.elapsed.toFixed(1)} s` : "";
      detail.textContent = `${ago(run.finished_at || run.submitted_at)}${elapsed}`;
      if (run.error && run.error.message) {
        const err = el("div", "run-error");
        err.textContent = `${run.error.node_type || ""} #${run.error.node_id}: ${run.error.message}`;
        detail.append(err);
      }
      const thumbs = el("div", "run-thumbs");
      for (const shown of Object.values(run.outputs || {})) {
        for (const image of (shown.images || []).filter((i) => i.filename).slice(0, 4)) {
          const img = el("img", "", {alt: image.filename, loading: "lazy"});
          img.src = viewUrl(image, 128);
          thumbs.append(img);
        }
      }
      const load = el("button", "small", {type: "button", title: "Load this run's workflow and results into the editor"});
      load.textContent = "Load";
      load.addEventListener("click", () => this.actions.loadRun(run.run_id));
      item.append(title, detail, thumbs, load);
      this.historyList.append(item);
    }
    this.historyList.parentElement.classList.toggle("has-items", items.length > 0);
  }
}
