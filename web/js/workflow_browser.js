// The workflow browser (the Workflows button): save the open workflow under a name on the
// server (<home>/user/workflows, graphflow/server/user_workflows.py), and open the shipped
// examples as templates, the recently used ones and the saved ones, each in a tab of its own.

import {api} from "./api_client.js";
import {toast} from "./toast.js";

const RECENT_KEY = "graphflow.recent";
const RECENT_MAX = 8;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function recentWorkflows() {
  try {
    const list = JSON.parse(localStorage.getItem(RECENT_KEY) || "[]");
    return Array.isArray(list) ? list.filter((r) => r && (r.kind === "template" || r.kind === "saved")) : [];
  } catch {
    return [];
  }
}

function remember(kind, name) {
  const list = [{kind, name}, ...recentWorkflows().filter((r) => !(r.kind === kind && r.name === name))];
  try {
    localStorage.setItem(RECENT_KEY, JSON.stringify(list.slice(0, RECENT_MAX)));
  } catch { /* storage full: no recent list */ }
}

export class WorkflowBrowser {
  /** tabs: tabs.js; openWorkflow(workflow, name, saved): loads it into a tab (main.js) */
  constructor(tabs, openWorkflow, workflowOf) {
    this.tabs = tabs;
    this.openWorkflow = openWorkflow;
    this.workflowOf = workflowOf;
    this.modal = null;
  }

  /** Save the open workflow under `name`; asks before replacing another saved one. */
  async save(name) {
    name = name.trim();
    if (!name) return false;
    const replacing = this.tabs.current.saved === name;
    try {
      await api.saveWorkflow(name, this.workflowOf(), replacing);
    } catch (e) {
      if (e.status !== 409) {
        toast(`Couldn't save: ${e.message}`, {kind: "error"});
        return false;
      }
      if (!confirm(`A saved workflow named "${name}" exists. Replace it?`)) return false;
      await api.saveWorkflow(name, this.workflowOf(), true);
    }
    this.tabs.rename(name, name);
    this.tabs.markClean();
    remember("saved", name);
    toast(`Saved as "${name}"`, {kind: "success", timeout: 2000});
    return true;
  }

  async open(kind, name) {
    try {
      const workflow = kind === "template" ? await api.template(name) : await api.savedWorkflow(name);
      this.openWorkflow(workflow, name, kind === "saved" ? name : null);
      remember(kind, name);
      this.close();
    } catch (e) {
      toast(`Couldn't open "${name}": ${e.message}`, {kind: "error"});
    }
  }

  close() {
    if (this.modal) this.modal.remove();
    this.modal = null;
  }

  async show() {
    this.close();
    const modal = el("div", "modal workflow-browser");
    const panel = el("div", "modal-panel");
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", "Workflows");
    const head = el("div", "modal-head", "Workflows");
    const saveRow = el("form", "browser-save");
    const field = el("input");
    field.name = "workflow-name";
    field.placeholder = "Name to save this workflow as";
    field.value = this.tabs.current.saved || (this.tabs.current.name === "Unsaved workflow" ? "" : this.tabs.current.name);
    const saveButton = el("button", "primary", "Save");
    saveButton.type = "submit";
    saveRow.append(field, saveButton);
    saveRow.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (await this.save(field.value)) this.close();
    });
    const body = el("div", "browser-body");
    const closeButton = el("button", "", "Close");
    closeButton.type = "button";
    closeButton.addEventListener("click", () => this.close());
    panel.append(head, saveRow, body, closeButton);
    modal.append(panel);
    modal.addEventListener("pointerdown", (e) => { if (e.target === modal) this.close(); });
    modal.addEventListener("keydown", (e) => { if (e.key === "Escape") this.close(); e.stopPropagation(); });
    document.body.append(modal);
    this.modal = modal;
    field.focus();

    const [templates, saved] = await Promise.all([
      api.templates().then((r) => r.workflows).catch(() => []),
      api.savedWorkflows().then((r) => r.workflows).catch(() => []),
    ]);
    const section = (title, kind, items, removable = false) => {
      const box = el("section", `browser-section browser-${kind === "saved" && !removable ? "recent" : kind}`);
      box.append(el("h3", "", title));
      const list = el("ul", "list");
      for (const item of items) {
        const row = el("li", "browser-item");
        row.dataset.kind = item.kind || kind;
        row.dataset.name = item.name;
        const open = el("button", "browser-open", item.name);
        open.type = "button";
        open.addEventListener("click", () => this.open(item.kind || kind, item.name));
        row.append(open);
        if (item.modified) row.append(el("span", "muted", new Date(item.modified * 1000).toLocaleString()));
        if (removable) {
          const remove = el("button", "browser-delete danger", "Delete");
          remove.type = "button";
          remove.addEventListener("click", async () => {
            if (!confirm(`Delete the saved workflow "${item.name}"?`)) return;
            await api.deleteWorkflow(item.name).catch((e) => toast(e.message, {kind: "error"}));
            this.show();
          });
          row.append(remove);
        }
        list.append(row);
      }
      if (!items.length) list.append(el("li", "muted", "None yet."));
      box.append(list);
      return box;
    };
    const savedNames = new Set(saved.map((s) => s.name));
    const recent = recentWorkflows().filter((r) => r.kind === "template" ? templates.includes(r.name) : savedNames.has(r.name));
    body.append(section("Recent", "recent", recent), section("Saved", "saved", saved, true),
      section("Templates (the shipped examples)", "template", templates.map((name) => ({name}))));
  }
}
