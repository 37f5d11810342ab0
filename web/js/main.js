// Start-up: fetch the catalogue, restore the last graph, and wire the toolbar, the side
// panel, the websocket and file drops to the editor.

import {api, inputUrl} from "./api_client.js";
import {CanvasInput, isTyping} from "./canvas_input.js";
import {Catalogue} from "./catalogue.js";
import {Editor} from "./editor.js";
import {Graph} from "./graph.js";
import {paintMask} from "./mask_painter.js";
import {NodeMenu} from "./menu.js";
import {RunMonitor} from "./run_monitor.js";
import {SidePanel} from "./side_panel.js";
import {toast} from "./toast.js";
import {downloadWorkflow, readWorkflowFile} from "./workflow_files.js";
import {LiveConnection} from "./ws_client.js";
import {Gallery} from "./gallery.js";
import {ModelDefaults} from "./model_defaults.js";
import {addLoadImage, dropKind} from "./file_drop.js";
import {AutoQueue} from "./auto_queue.js";
import {openImage} from "./lightbox.js";
import {GroupLayer} from "./groups.js";
import {NOTE_SPECS, NoteLayer} from "./notes.js";
import {REROUTE_SPEC, RerouteLayer} from "./reroutes.js";
import {Tabs} from "./tabs.js";
import {Minimap} from "./minimap.js";
import {WorkflowBrowser} from "./workflow_browser.js";

const WORKFLOW_KEY = "graphflow.workflow";
const CLIENT_KEY = "graphflow.client_id";
const DEFAULT_WORKFLOW = "/api/workflows/txt2img";  // workflows/txt2img.json, the README's main job

const $ = (id) => document.getElementById(id);

function clientId() {
  // per tab (sessionStorage): two tabs must not see or interrupt each other's runs
  let id = sessionStorage.getItem(CLIENT_KEY);
  if (!id) {
    id = `editor-${crypto.getRandomValues(new Uint32Array(2)).join("")}`;
    sessionStorage.setItem(CLIENT_KEY, id);
  }
  return id;
}

async function boot() {
  let catalogue;
  try {
    catalogue = new Catalogue(await api.nodes());
  } catch (e) {
    document.getElementById("empty-hint").hidden = false;
    document.getElementById("empty-hint").textContent = `Can't reach the graphflow server: ${e.message}. Reload when it runs.`;
    return;
  }
  const app = new App(catalogue);
  window.graphflow = app; // for debugging from the console
  await app.start();
}

class App {
  constructor(catalogue) {
    this.catalogue = catalogue;
    this.clientId = clientId();
    this.saveTimer = 0;
    this.editor = new Editor(
      {canvas: $("canvas"), world: $("world"), links: $("links"), nodes: $("nodes"),
       emptyHint: $("empty-hint"), zoomIndicator: $("zoom-indicator")},
      catalogue,
      {
        upload: (file, subfolder) => this.upload(file, subfolder),
        paintMask: (path) => this.paintMask(path),
        thumbnail: (path) => inputUrl(path, 256),
        openImage: (image) => this.openImage(image),
        nodeAdded: (node) => this.modelDefaults.nodeAdded(node),
        edited: () => this.autoQueue.changed(),
        changed: () => {
          this.scheduleSave();
          this.minimap?.schedule();
        },
        historyChanged: (history) => {
          $("btn-undo").disabled = !history.canUndo;
          $("btn-redo").disabled = !history.canRedo;
        },
      });
    this.modelDefaults = new ModelDefaults(this.editor);
    this.menu = new NodeMenu(catalogue, [...NOTE_SPECS, REROUTE_SPEC]);
    this.input = new CanvasInput(this.editor, this.menu, $("selection-box"));
    this.input.layers = {
      groups: new GroupLayer(this.editor, $("groups")),
      notes: new NoteLayer(this.editor, $("notes")),
      reroutes: new RerouteLayer(this.editor, $("reroutes"), this.input),
    };
    this.editor.layers.push(...Object.values(this.input.layers));
    this.minimap = new Minimap(this.editor, $("canvas"), $("btn-minimap"));
    this.editor.layers.push(this.minimap);
    this.tabs = new Tabs(this.editor, catalogue, $("tabs"), {changed: () => this.scheduleSave()});
    this.browser = new WorkflowBrowser(this.tabs, (workflow, name, saved) => this.openInTab(workflow, name, saved),
      () => this.editor.workflow());
    this.panel = new SidePanel($("panel"), {
      cancel: (id) => api.cancel(id).catch((e) => toast(e.message, {kind: "error"})),
      cancelAll: () => api.cancelAll().catch((e) => toast(e.message, {kind: "error"})),
      interrupt: () => this.interrupt(),
      loadRun: (id) => this.loadRun(id),
      refreshHistory: () => this.refreshHistory(),
      openImage: (image) => this.openImage(image),
    });
    this.gallery = new Gallery(this);
    this.autoQueue = new AutoQueue($("auto-queue"), () => this.queue());
    this.monitor = new RunMonitor(this.editor, this.panel, this.clientId, (data) => {
      this.autoQueue.finished(data.run_id);
      if ($("panel").querySelector('[data-pane="history"]').classList.contains("active")) this.refreshHistory();
    });
  }

  async start() {
    this.wireToolbar();
    this.wireDrops();
    await this.restore();
    this.live = new LiveConnection(this.clientId, {
      onMessage: (type, data) => this.monitor.handle(type, data),
      onPreview: (meta, blob) => this.monitor.preview(meta, blob),
      onState: (state) => {
        const box = $("connection");
        box.textContent = state === "connected" ? "connected" : "reconnecting…";
        box.className = `connection ${state}`;
      },
    });
    if (this.catalogue.problems.length) {
      toast(`${this.catalogue.problems.length} plugin problem(s)`, {kind: "warning", timeout: 10000,
        detail: this.catalogue.problems.map((p) => p.message || JSON.stringify(p)).join("\n")});
    }
    this.gallery.load();  // not awaited: the editor is usable at once
    const showSystem = () => api.system().then((info) => {
      const device = info.device || {};
      $("device").textContent = [device.name || device.device, memorySummary(info.models),
        info.versions && `graphflow ${info.versions.graphflow || ""}`].filter(Boolean).join(" · ");
    }).catch(() => {});
    showSystem();
    setInterval(showSystem, 10000);  // what is resident changes with every run
    this.readyMs = performance.now();  // from the navigation's start: bench/editor_load.py
    document.body.classList.add("ready");
  }

  // --- loading and saving ---

  async restore() {
    if (this.tabs.restore()) return;
    this.tabs.add();
    const saved = localStorage.getItem(WORKFLOW_KEY);  // from before there were tabs
    if (saved) {
      try {
        this.load(JSON.parse(saved), true);
        return;
      } catch (e) {
        toast(`Couldn't restore the last workflow: ${e.message}`, {kind: "warning"});
      }
    }
    await this.loadDefault(true);
  }

  /** Whether the graph may be replaced: nothing unsaved, or the user agrees (Undo brings it back). */
  mayDiscard() {
    if (!this.tabs.isDirty()) return true;
    return confirm("Replace this workflow? Its unsaved changes are discarded (Ctrl+Z brings them back).");
  }

  markClean() {
    this.tabs.markClean();
  }

  /** Open a workflow in a tab of its own (the open one if it is empty and unchanged). */
  openInTab(workflow, name, saved = null) {
    const tab = this.tabs.current;
    if (this.tabs.isDirty(tab) || this.editor.graph.nodes.size || this.editor.graph.notes.size) this.tabs.add(name);
    if (!this.load(workflow, true)) return false;
    this.editor.history.reset(this.editor.graph.snapshot());  // a new tab's history starts here
    this.tabs.rename(name, saved);
    this.markClean();
    return true;
  }

  /** Replace the graph, asking first when it has unsaved changes; returns whether it did. */
  replace(graph, view = null) {
    if (!this.mayDiscard()) return false;
    this.editor.load(graph, view, true);
    this.markClean();
    return true;
  }

  /** Load our workflow JSON; `keepView` uses its saved pan/zoom. */
  load(workflow, keepView = true) {
    const {graph, view} = Graph.fromWorkflow(workflow, this.catalogue);
    if (!this.replace(graph, keepView ? view : null)) return false;
    const unknown = [...graph.nodes.values()].filter((n) => !this.catalogue.has(n.type));
    if (unknown.length) {
      const types = [...new Set(unknown.map((n) => n.type))].join(", ");
      this.editor.showProblems(unknown.map((n) => ({node_id: n.id, input: null, message: `unknown node type '${n.type}': no installed node or plugin defines it`})));
      toast(`This workflow uses node types that aren't installed: ${types}`, {kind: "warning", timeout: 8000});
    }
    return true;
  }

  async loadDefault(quiet = false) {
    try {
      const response = await fetch(DEFAULT_WORKFLOW);
      const workflow = await response.json();
      const missing = Object.values(workflow.nodes).filter((n) => !this.catalogue.has(n.type));
      if (quiet && missing.length) {
        this.replace(new Graph());
        return;
      }
      this.load(workflow, false);
    } catch (e) {
      if (!quiet) toast(`Couldn't load the default workflow: ${e.message}`, {kind: "error"});
      this.replace(new Graph());
    }
  }

  scheduleSave() {
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(() => this.saveLocal(), 250);
  }

  saveLocal() {
    clearTimeout(this.saveTimer);
    this.tabs.render();  // the unsaved-changes marks
    try {
      localStorage.setItem(WORKFLOW_KEY, JSON.stringify(this.editor.workflow()));
      this.tabs.save();
    } catch (e) {
      toast(`Couldn't keep the workflow in this browser: ${e.message}`, {kind: "warning"});
    }
  }

  async openFile(file) {
    try {
      const {workflow, problems} = await readWorkflowFile(file);
      if (!this.load(workflow, false)) return;
      this.tabs.rename(file.name.replace(/\.[^.]+$/, ""), null);
      if (problems.length) this.monitor.showProblems(problems);
      else toast(`Opened ${file.name}`, {kind: "success", timeout: 2500});
    } catch (e) {
      toast(`Couldn't open ${file.name}: ${e.message}`, {kind: "error", timeout: 10000,
        detail: e.body && e.body.problems ? e.body.problems.map((p) => p.message).join("\n") : ""});
    }
  }

  // --- running ---

  /** Queue the workflow, batch-count times (ComfyUI's "queue N times"): the seeds' control
   * after generate applies between the runs, so each run gets its own seed. */
  async queue() {
    const count = Math.max(1, Math.min(100, Math.round(Number($("batch-count").value)) || 1));
    const ids = [];
    this.editor.clearProblems();
    try {
      for (let i = 0; i < count; i += 1) {
        await this.editor.beforeQueue();
        const queued = await api.queueRun(this.editor.workflow(), this.clientId);
        ids.push(queued.run_id);
        this.editor.applyControls();
        toast(queued.position ? `Queued #${queued.number} (${queued.position} ahead)` : `Queued #${queued.number}`, {timeout: 1800});
      }
    } catch (e) {
      if (e.status === 400 && Array.isArray(e.body.problems)) this.monitor.showProblems(e.body.problems);
      else toast(`Couldn't queue the workflow: ${e.message}`, {kind: "error"});
    }
    return ids;
  }

  async interrupt() {
    try {
      // this tab's run only: another tab's run is not ours to stop
      if (this.monitor.current) await api.interrupt(this.monitor.current);
      else toast("Nothing queued from this tab is running", {timeout: 2000});
    } catch (e) {
      toast(e.message, {kind: "error"});
    }
  }

  async refreshHistory() {
    try {
      const page = await api.history(0, 50);
      this.panel.setHistory(page.items);
    } catch (e) {
      toast(`Couldn't read the history: ${e.message}`, {kind: "error"});
    }
  }

  async loadRun(runId) {
    try {
      const run = await api.run(runId);
      if (!this.load(run.workflow, true)) return;
      for (const [id, ui] of Object.entries(run.outputs || {})) {
        const view = this.editor.views.get(id);
        if (view) this.monitor.showOutputs(view, id, ui, run.run_id);
      }
      if (run.problems && run.problems.length) this.editor.showProblems(run.problems);
      if (run.error && run.error.node_id != null && run.status === "error") {
        this.editor.showProblems([{node_id: run.error.node_id, input: run.error.input,
          message: `${run.error.exception_type}: ${run.error.message}`}]);
      }
    } catch (e) {
      toast(`Couldn't load run ${runId}: ${e.message}`, {kind: "error"});
    }
  }

  // --- files for widgets ---

  async refreshCatalogue() {
    try {
      this.catalogue = new Catalogue(await api.nodes());
      this.editor.updateCatalogue(this.catalogue);
      this.menu.catalogue = this.catalogue;
    } catch { /* keep the old one */ }
  }

  async upload(file, subfolder = "") {
    try {
      const stored = await api.upload(file, file.name, subfolder);
      await this.refreshCatalogue();
      return stored.path;
    } catch (e) {
      toast(`Upload failed: ${e.message}`, {kind: "error"});
      return null;
    }
  }

  async paintMask(path) {
    if (!path) return null;
    try {
      // browsers don't show TIFF: the painter gets it as a PNG (alpha kept)
      const url = /\.tiff?$/i.test(path) ? `${inputUrl(path)}&preview=png` : inputUrl(path);
      const blob = await paintMask(url, path);
      if (!blob) return null;
      const stem = path.slice(path.lastIndexOf("/") + 1).replace(/\.[^.]+$/, "");
      const stored = await api.uploadMask(blob, path, `${stem.replace(/-mask$/, "")}-mask.png`);
      await this.refreshCatalogue();
      return stored.path;
    } catch (e) {
      toast(`Mask painting failed: ${e.message}`, {kind: "error"});
      return null;
    }
  }

  openImage(image) {
    this.gallery.open(image);
  }

  // --- wiring ---

  wireToolbar() {
    $("btn-new").addEventListener("click", () => { if (this.replace(new Graph())) this.tabs.rename("Unsaved workflow", null); });
    $("btn-workflows").addEventListener("click", () => this.browser.show());
    for (const type of ["pointerdown", "dblclick", "contextmenu", "wheel"]) {
      $("tabs").addEventListener(type, (e) => e.stopPropagation());  // the tab bar is not canvas
    }
    $("btn-default").addEventListener("click", () => this.loadDefault());
    $("btn-open").addEventListener("click", () => $("file-open").click());
    $("file-open").addEventListener("change", () => {
      const file = $("file-open").files[0];
      if (file) this.openFile(file);
      $("file-open").value = "";
    });
    $("btn-save").addEventListener("click", () => this.download());
    $("export-format").addEventListener("change", (e) => {
      const format = e.target.value;
      e.target.value = "";
      this.exportAs(format);
    });
    $("btn-undo").addEventListener("click", () => this.editor.undo());
    $("btn-redo").addEventListener("click", () => this.editor.redo());
    $("btn-fit").addEventListener("click", () => this.editor.fit());
    $("btn-queue").addEventListener("click", () => this.queue());
    $("btn-interrupt").addEventListener("click", () => this.interrupt());
    // Narrow windows start with the panel folded away (style.css), so ☰ opens it there.
    $("btn-panel").addEventListener("click", () => document.body.classList.toggle(matchMedia("(max-width: 640px)").matches ? "panel-open" : "panel-hidden"));
    // Toolbar buttons give focus back, so Space/Enter don't repeat the last click.
    $("toolbar").addEventListener("click", (e) => e.target.closest("button")?.blur());
    document.addEventListener("keydown", (e) => {
      const ctrl = e.ctrlKey || e.metaKey;
      if (ctrl && e.key === "Enter") this.queue();
      else if (ctrl && e.key.toLowerCase() === "s") this.download();
      else if (ctrl && e.key.toLowerCase() === "o" && !isTyping()) $("file-open").click();
      else return;
      e.preventDefault();
    });
    addEventListener("beforeunload", () => this.saveLocal());
  }

  download() {
    this.saveLocal();
    this.markClean();
    const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
    downloadWorkflow(this.editor.workflow(), `workflow-${stamp}.json`);
  }

  /** Download the workflow in a ComfyUI format (the server converts: graphflow/comfy_format.py). */
  async exportAs(format) {
    try {
      const converted = await api.convertWorkflow(this.editor.workflow(), format);
      const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
      downloadWorkflow(converted.workflow, `workflow-${stamp}-${format}.json`);
    } catch (e) {
      toast(`Couldn't export the workflow: ${e.message}`, {kind: "error"});
    }
  }

  wireDrops() {
    const canvas = $("canvas");
    canvas.addEventListener("dragover", (e) => {
      if ([...e.dataTransfer.types].includes("Files")) {
        e.preventDefault();
        canvas.classList.add("drop-target");
      }
    });
    canvas.addEventListener("dragleave", () => canvas.classList.remove("drop-target"));
    canvas.addEventListener("drop", (e) => {
      canvas.classList.remove("drop-target");
      const file = e.dataTransfer.files && e.dataTransfer.files[0];
      if (!file) return;
      e.preventDefault();
      this.dropFile(file, this.editor.viewport.toWorld(e.clientX, e.clientY));
    });
  }

  /** A picture with a graph opens it; any other picture becomes a LoadImage node (file_drop.js). */
  async dropFile(file, at) {
    if (await dropKind(file) === "image") await addLoadImage(this, file, at);
    else await this.openFile(file);
  }
}

boot();

// "2 models on device, 4.1/8.0 GB": the memory manager's view (graphflow/memory.py).
function memorySummary(models) {
  if (!models || !models.components) return "";
  const gb = (n) => (n / 2 ** 30).toFixed(1);
  const resident = models.components.filter((c) => c.state !== "offloaded");
  const split = resident.filter((c) => c.state === "partial").length;
  let text = `${resident.length} model${resident.length === 1 ? "" : "s"} on device${split ? ` (${split} partly)` : ""}`;
  if (models.capacity != null) text += `, ${gb(models.used)}/${gb(models.capacity)} GB`;
  return text;
}
