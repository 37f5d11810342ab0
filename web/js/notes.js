// Notes: text boxes on the canvas that are not run (ComfyUI's Note and MarkdownNote nodes, and
// comfy_mtb's Note Plus read from a save), kept in `ui.notes`:
// [{id, pos, width, height, text, markdown?, type?, title?, color?, bgcolor?}] (type: the
// ComfyUI class a Note Plus is written back as).
// Added from the node menu ("Note"), moved by the header, removed from their context menu.

import {contextMenu} from "./menu.js";
import {NODE_COLORS, colorEntries} from "./node_looks.js";
import {track} from "./pointer_drag.js";

export const NOTE_SPECS = [
  {type: "Note", display_name: "Note", category: "utils", virtual: "note", inputs: [], outputs: [],
   description: "A text note on the canvas, for the people reading the graph. It is not run."},
  {type: "MarkdownNote", display_name: "Markdown Note", category: "utils", virtual: "note", markdown: true,
   inputs: [], outputs: [], description: "A note whose text is Markdown (ComfyUI's MarkdownNote). It is not run."},
];

export class NoteLayer {
  constructor(editor, root) {
    this.editor = editor;
    this.root = root;
    root.addEventListener("pointerdown", (e) => this.pointerDown(e));
    root.addEventListener("contextmenu", (e) => {
      const box = e.target.closest(".note");
      if (!box || e.target.closest("textarea")) return;
      e.preventDefault();
      e.stopPropagation();
      this.menu(box.dataset.noteId, e.clientX, e.clientY);
    });
    root.addEventListener("dblclick", (e) => { if (e.target.closest(".note")) e.stopPropagation(); });
  }

  render() {
    this.root.replaceChildren();
    for (const note of this.editor.graph.notes.values()) {
      const box = document.createElement("div");
      box.className = "note";
      box.dataset.noteId = note.id;
      Object.assign(box.style, {left: `${note.pos[0]}px`, top: `${note.pos[1]}px`,
        width: `${note.width || 400}px`, height: `${note.height || 100}px`});
      if (note.color) box.style.setProperty("--note-color", note.color);
      if (note.bgcolor) box.style.setProperty("--note-bgcolor", note.bgcolor);
      const header = document.createElement("div");
      header.className = "note-header";
      header.textContent = note.title
        || (note.type === "Note Plus (mtb)" ? "Note Plus" : note.markdown ? "Markdown Note" : "Note");
      const text = document.createElement("textarea");
      text.value = note.text || "";
      text.placeholder = "Write a note…";
      text.spellcheck = false;
      text.addEventListener("change", () => {
        note.text = text.value;
        this.editor.commit();
      });
      box.append(header, text);
      this.root.append(box);
    }
  }

  add(spec, pos) {
    const id = this.editor.graph.nextId();
    const note = {id, pos: pos.map(Math.round), width: 400, height: 100, text: ""};
    if (spec.markdown) note.markdown = true;
    this.editor.graph.notes.set(id, note);
    this.render();
    this.editor.commit();
    this.root.querySelector(`.note[data-note-id="${id}"] textarea`)?.focus();
    return note;
  }

  pointerDown(e) {
    const box = e.target.closest(".note");
    if (!box) return;
    e.stopPropagation();  // the canvas neither pans nor deselects
    if (e.button !== 0 || !e.target.closest(".note-header")) return;
    e.preventDefault();
    const note = this.editor.graph.notes.get(box.dataset.noteId);
    const zoom = this.editor.viewport.zoom;
    const [x0, y0] = note.pos;
    track(e, (ev) => {
      note.pos = [Math.round(x0 + (ev.clientX - e.clientX) / zoom), Math.round(y0 + (ev.clientY - e.clientY) / zoom)];
      box.style.left = `${note.pos[0]}px`;
      box.style.top = `${note.pos[1]}px`;
    }, (ev, moved) => { if (moved) this.editor.commit(); });
  }

  menu(id, x, y) {
    const note = this.editor.graph.notes.get(id);
    contextMenu(x, y, [
      {label: "Colour…", action: () => contextMenu(x, y, colorEntries((name) => {
        Object.assign(note, NODE_COLORS[name] || {color: undefined, bgcolor: undefined});
        if (!name) { delete note.color; delete note.bgcolor; }
        this.render();
        this.editor.commit();
      }))},
      {label: "Delete note", danger: true, action: () => {
        this.editor.graph.notes.delete(id);
        this.render();
        this.editor.commit();
      }},
    ]);
  }
}
