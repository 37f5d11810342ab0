// Undo/redo by snapshots of the graph: each committed edit records the whole (small) graph,
// so every kind of edit undoes the same way and nothing can get out of step.

const LIMIT = 200;

export class UndoHistory {
  constructor(onChange = () => {}) {
    this.states = [];
    this.index = -1;
    this.onChange = onChange;
  }

  /** Start over from `state` (after loading a workflow). */
  reset(state) {
    this.states = [JSON.stringify(state)];
    this.index = 0;
    this.onChange();
  }

  /** Record `state` if it differs from the current one; returns whether it did. */
  record(state) {
    const text = JSON.stringify(state);
    if (text === this.states[this.index]) return false;
    this.states.splice(this.index + 1);
    this.states.push(text);
    if (this.states.length > LIMIT) this.states.shift();
    this.index = this.states.length - 1;
    this.onChange();
    return true;
  }

  /** Fold `state` into the current one (a layout fix-up, not an edit of its own). */
  amend(state) {
    if (this.index >= 0) this.states[this.index] = JSON.stringify(state);
  }

  get canUndo() {
    return this.index > 0;
  }

  get canRedo() {
    return this.index < this.states.length - 1;
  }

  undo() {
    if (!this.canUndo) return null;
    this.index -= 1;
    this.onChange();
    return JSON.parse(this.states[this.index]);
  }

  redo() {
    if (!this.canRedo) return null;
    this.index += 1;
    this.onChange();
    return JSON.parse(this.states[this.index]);
  }
}
