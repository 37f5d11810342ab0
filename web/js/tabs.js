// Several open workflows, one per tab above the canvas, each with its own graph, view, undo
// history and unsaved-changes mark (•). Closing a tab with unsaved changes asks first. The tabs
// are kept in local storage, so a reload brings all of them back (undo history aside).

import {Graph} from "./graph.js";
import {UndoHistory} from "./undo.js";

const TABS_KEY = "graphflow.tabs";
const UNTITLED = "Unsaved workflow";

export class Tabs {
  /** strip: the tab bar element; hooks: {changed()} after a switch */
  constructor(editor, catalogue, strip, hooks = {}) {
    this.editor = editor;
    this.catalogue = catalogue;
    this.strip = strip;
    this.hooks = hooks;
    this.tabs = [];
    this.index = -1;
    strip.addEventListener("click", (e) => {
      const button = e.target.closest("[data-tab-index]");
      if (e.target.closest(".tab-close")) this.close(Number(button.dataset.tabIndex));
      else if (e.target.closest(".tab-new")) this.add();
      else if (button) this.show(Number(button.dataset.tabIndex));
    });
    strip.addEventListener("auxclick", (e) => {  // middle-click closes, as in browsers
      const button = e.target.closest("[data-tab-index]");
      if (button && e.button === 1) this.close(Number(button.dataset.tabIndex));
    });
  }

  get current() {
    return this.tabs[this.index];
  }

  /** The graph a tab holds now: the editor's for the open one. */
  snapshotOf(tab) {
    return tab === this.current ? this.editor.graph.snapshot() : tab.snapshot;
  }

  isDirty(tab = this.current) {
    if (!tab) return false;
    const snap = this.snapshotOf(tab);
    if (!snap.nodes.length && !(snap.notes || []).length && tab.clean === null) return false;  // an empty new tab
    return JSON.stringify(snap) !== tab.clean;
  }

  markClean(tab = this.current) {
    tab.clean = JSON.stringify(this.snapshotOf(tab));
    this.render();
  }

  /** Keep the editor's state in the open tab before another is shown. */
  stash() {
    const tab = this.current;
    if (!tab) return;
    tab.snapshot = this.editor.graph.snapshot();
    tab.history = this.editor.history;
    tab.view = this.editor.viewport.state;
  }

  /** A new tab (empty, for a workflow to be loaded into it); shown at once. */
  add(name = UNTITLED) {
    this.stash();
    const history = new UndoHistory(this.editor.history.onChange);
    const tab = {name, saved: null, snapshot: new Graph().snapshot(), history, view: null, clean: null};
    this.tabs.push(tab);
    this.index = this.tabs.length - 1;
    this.editor.history = history;
    this.editor.load(new Graph());
    tab.clean = null;
    this.render();
    this.hooks.changed && this.hooks.changed();
    return tab;
  }

  show(index) {
    if (index === this.index || !this.tabs[index]) return;
    this.stash();
    this.index = index;
    this.restoreEditor(this.tabs[index]);
  }

  restoreEditor(tab) {
    const editor = this.editor;
    editor.graph = Graph.fromSnapshot(tab.snapshot);
    editor.history = tab.history;
    editor.history.onChange();
    editor.shown.clear();
    editor.problems = [];
    editor.selected.clear();
    editor.selectedLink = null;
    editor.rebuild();
    if (tab.view) editor.viewport.set(tab.view);
    else editor.fit();
    this.render();
    this.hooks.changed && this.hooks.changed();
  }

  /** Close a tab, asking first when it has unsaved changes; returns whether it closed. */
  close(index) {
    const tab = this.tabs[index];
    if (!tab) return false;
    if (this.isDirty(tab) && !confirm(`Close "${tab.name}"? Its unsaved changes will be lost.`)) return false;
    const wasOpen = index === this.index;
    if (!wasOpen) this.stash();
    this.tabs.splice(index, 1);
    if (!this.tabs.length) {
      this.index = -1;
      this.add();
      return true;
    }
    if (wasOpen) {
      this.index = Math.min(index, this.tabs.length - 1);
      this.restoreEditor(this.current);
    } else {
      if (index < this.index) this.index -= 1;
      this.render();
      this.hooks.changed && this.hooks.changed();
    }
    return true;
  }

  rename(name, saved = this.current.saved) {
    this.current.name = name;
    this.current.saved = saved;
    this.render();
  }

  render() {
    this.strip.replaceChildren();
    this.tabs.forEach((tab, i) => {
      const button = document.createElement("div");
      button.className = `tab${i === this.index ? " active" : ""}`;
      button.dataset.tabIndex = String(i);
      button.setAttribute("role", "tab");
      button.title = tab.saved ? `${tab.name} (saved on the server)` : tab.name;
      const label = document.createElement("span");
      label.className = "tab-label";
      label.textContent = tab.name;
      const dirty = document.createElement("span");
      dirty.className = "tab-dirty";
      dirty.textContent = this.isDirty(tab) ? "•" : "";
      const close = document.createElement("button");
      close.className = "tab-close";
      close.type = "button";
      close.title = "Close this workflow";
      close.textContent = "×";
      button.append(label, dirty, close);
      this.strip.append(button);
    });
    const add = document.createElement("button");
    add.className = "tab-new";
    add.type = "button";
    add.title = "A new, empty workflow in a new tab";
    add.textContent = "+";
    this.strip.append(add);
  }

  // --- kept across reloads ---

  save() {
    const tabs = this.tabs.map((tab) => {
      const graph = tab === this.current ? this.editor.graph : Graph.fromSnapshot(tab.snapshot);
      const view = tab === this.current ? this.editor.viewport.state : tab.view;
      return {name: tab.name, saved: tab.saved, dirty: this.isDirty(tab), workflow: graph.toWorkflow(this.catalogue, view)};
    });
    localStorage.setItem(TABS_KEY, JSON.stringify({index: this.index, tabs}));
  }

  /** Bring back the tabs of the last session; returns whether there were any. */
  restore() {
    let stored;
    try {
      stored = JSON.parse(localStorage.getItem(TABS_KEY) || "null");
    } catch {
      stored = null;
    }
    if (!stored || !Array.isArray(stored.tabs) || !stored.tabs.length) return false;
    for (const saved of stored.tabs) {
      const {graph, view} = Graph.fromWorkflow(saved.workflow || {nodes: {}}, this.catalogue);
      const snapshot = graph.snapshot();
      const history = new UndoHistory(this.editor.history.onChange);
      history.reset(snapshot);
      this.tabs.push({name: saved.name || UNTITLED, saved: saved.saved || null, snapshot, history, view,
        clean: saved.dirty ? "" : JSON.stringify(snapshot)});
    }
    this.index = Math.max(0, Math.min(this.tabs.length - 1, Number(stored.index) || 0));
    this.restoreEditor(this.current);
    return true;
  }
}
