// Auto-queue, ComfyUI's "Queue (Change)": while the toggle beside Queue is on, a changed widget
// value or link queues the graph. Changes made while a run of ours is on its way wait for it and
// then queue once; the seeds' control after generate doesn't count as a change (no endless loop).

const SETTLE_MS = 250; // a burst of edits (scrubbing a number) makes one run

export class AutoQueue {
  /** toggle: the checkbox; queue(): queues the graph, resolves to the run ids queued. */
  constructor(toggle, queue) {
    this.toggle = toggle;
    this.queue = queue;
    this.timer = 0;
    this.waiting = new Set(); // our auto-queued runs not finished yet
    this.pending = false; // a change arrived while one was on its way
    this.queuing = null; // while queuing: the runs that finished meanwhile
    toggle.addEventListener("change", () => { if (!toggle.checked) this.pending = false; });
  }

  get on() {
    return this.toggle.checked;
  }

  /** A widget value or a link changed. */
  changed() {
    if (!this.on) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.fire(), SETTLE_MS);
  }

  async fire() {
    if (this.waiting.size || this.queuing) {
      this.pending = true;
      return;
    }
    // A quick run can finish before the answer to its queuing arrives: remember what finished.
    this.queuing = new Set();
    try {
      const ids = await this.queue();
      for (const id of ids || []) if (!this.queuing.has(id)) this.waiting.add(id);
    } finally {
      this.queuing = null;
    }
    this.release();
  }

  /** A run finished (any client's): ours frees the way for the change that waited. */
  finished(runId) {
    this.queuing?.add(runId);
    if (this.waiting.delete(runId)) this.release();
  }

  release() {
    if (this.waiting.size || this.queuing || !this.pending) return;
    this.pending = false;
    if (this.on) this.fire();
  }
}
