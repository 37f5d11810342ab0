"""The run store: queue and history in one SQLite table, so a restart loses nothing.

A run is a row that moves pending -> running -> success | error | interrupted | invalid
(or pending -> cancelled). The queue is the pending rows in (priority, number) order. All
access happens on the server's event-loop thread; commits are small and WAL keeps them cheap.
"""

import json
import sqlite3
import threading
import time
from pathlib import Path

PENDING, RUNNING = "pending", "running"
FINISHED = ("success", "error", "interrupted", "cancelled", "invalid")
MAX_ATTEMPTS = 2  # a run that was running when the server died twice is not tried a third time

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    number INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT UNIQUE NOT NULL,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    client_id TEXT,
    workflow TEXT NOT NULL,
    targets TEXT,
    submitted_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    elapsed REAL,
    outputs TEXT,
    error TEXT,
    problems TEXT,
    timings TEXT,
    executed TEXT,
    cached TEXT,
    placement TEXT,
    extra TEXT
);
CREATE INDEX IF NOT EXISTS runs_queue ON runs (status, priority, number);
"""

JSON_COLUMNS = ("workflow", "targets", "outputs", "error", "problems", "timings", "executed", "cached", "placement",
                "extra")


def _dumps(value) -> str | None:
    return None if value is None else json.dumps(value, default=str)


class RunStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()  # the loop thread is the only user; the lock guards misuse
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
            if "placement" not in columns:  # a database from before placements were recorded
                self._db.execute("ALTER TABLE runs ADD COLUMN placement TEXT")
            if "extra" not in columns:  # a database from before ComfyUI's extra_data was kept
                self._db.execute("ALTER TABLE runs ADD COLUMN extra TEXT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _execute(self, sql: str, params=()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, params)

    def recover(self) -> list[str]:
        """After a restart: runs left `running` go back to the head of the queue (or fail if this
        already happened MAX_ATTEMPTS times, so a run that kills the server can't loop forever)."""
        # Each requeued run goes ahead of the queue: the latest first, so they keep their order.
        rows = self._execute("SELECT run_id, attempts FROM runs WHERE status = ? ORDER BY priority DESC, number DESC",
                             (RUNNING,)).fetchall()
        requeued = []
        for row in rows:
            if row["attempts"] >= MAX_ATTEMPTS:
                error = {"node_id": None, "node_type": None, "source": None, "input": None,
                         "exception_type": "ServerStopped",
                         "message": f"the server stopped during this run {row['attempts']} times; not retried",
                         "traceback": ""}
                self._execute("UPDATE runs SET status = 'error', finished_at = ?, error = ? WHERE run_id = ?",
                              (time.time(), _dumps(error), row["run_id"]))
            else:
                self.requeue(row["run_id"])
                requeued.append(row["run_id"])
        return requeued[::-1]

    def add(self, run_id: str, workflow: dict, *, client_id=None, targets=None, front=False, extra=None) -> int:
        """`extra`: what a ComfyUI client sent beside its prompt (extra_data), given back in its
        queue and history."""
        priority = 0
        if front:
            row = self._execute("SELECT MIN(priority) FROM runs WHERE status = ?", (PENDING,)).fetchone()
            priority = min(row[0] or 0, 0) - 1
        cursor = self._execute(
            "INSERT INTO runs (run_id, status, priority, client_id, workflow, targets, submitted_at, extra) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, PENDING, priority, client_id, _dumps(workflow), _dumps(targets), time.time(), _dumps(extra)))
        return cursor.lastrowid

    def pending(self, limit: int | None = None) -> list[dict]:
        """The queue in the order it runs (the first `limit` of it)."""
        rows = self._execute(
            "SELECT run_id, number, client_id, submitted_at FROM runs WHERE status = ? ORDER BY priority, number "
            "LIMIT ?", (PENDING, -1 if limit is None else limit)).fetchall()
        return [dict(row, position=i) for i, row in enumerate(rows)]

    def queued_in_front(self, run_id: str) -> bool:
        """Whether the run was put ahead of the queue (submitted with `front`, or requeued)."""
        row = self._execute("SELECT priority FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row is not None and row["priority"] < 0

    def count_pending(self) -> int:
        return self._execute("SELECT COUNT(*) FROM runs WHERE status = ?", (PENDING,)).fetchone()[0]

    def position(self, run_id: str) -> int | None:
        """How many pending runs are ahead of this one (None if it isn't pending)."""
        row = self._execute("SELECT priority, number FROM runs WHERE run_id = ? AND status = ?",
                            (run_id, PENDING)).fetchone()
        if row is None:
            return None
        return self._execute(
            "SELECT COUNT(*) FROM runs WHERE status = ? AND (priority < ? OR (priority = ? AND number < ?))",
            (PENDING, row["priority"], row["priority"], row["number"])).fetchone()[0]

    def claim_next(self) -> dict | None:
        """The next pending run, marked running (the caller runs it)."""
        row = self._execute(
            "SELECT run_id FROM runs WHERE status = ? ORDER BY priority, number LIMIT 1", (PENDING,)).fetchone()
        if row is None:
            return None
        self._execute("UPDATE runs SET status = ?, started_at = ?, attempts = attempts + 1 WHERE run_id = ?",
                      (RUNNING, time.time(), row["run_id"]))
        return self.get(row["run_id"])

    def claim(self, run_id: str) -> dict | None:
        """This pending run, marked running (a dispatcher picked it); None if it isn't pending."""
        cursor = self._execute("UPDATE runs SET status = ?, started_at = ?, attempts = attempts + 1 "
                               "WHERE run_id = ? AND status = ?", (RUNNING, time.time(), run_id, PENDING))
        return self.get(run_id) if cursor.rowcount == 1 else None

    def requeue(self, run_id: str, attempt_counts: bool = True) -> None:
        """Back to the head of the queue (the server died or is stopping while it runs). A clean
        stop passes attempt_counts=False: only deaths count towards MAX_ATTEMPTS."""
        row = self._execute("SELECT MIN(priority) FROM runs WHERE status = ?", (PENDING,)).fetchone()
        priority = min(row[0] or 0, 0) - 1
        self._execute("UPDATE runs SET status = ?, priority = ?, started_at = NULL, attempts = attempts - ? "
                      "WHERE run_id = ?", (PENDING, priority, 0 if attempt_counts else 1, run_id))

    def finish(self, run_id: str, status: str, *, outputs=None, error=None, problems=None,
               timings=None, executed=None, cached=None, elapsed=None, placement=None) -> None:
        """`placement`: where and when it ran (worker, device, queue_wait and run_seconds)."""
        assert status in FINISHED, status
        self._execute(
            "UPDATE runs SET status = ?, finished_at = ?, outputs = ?, error = ?, problems = ?, timings = ?, "
            "executed = ?, cached = ?, elapsed = ?, placement = ? WHERE run_id = ?",
            (status, time.time(), _dumps(outputs or {}), _dumps(error), _dumps(problems or []),
             _dumps(timings or {}), _dumps(executed or []), _dumps(cached or []), elapsed, _dumps(placement),
             run_id))

    def cancel(self, run_id: str) -> bool:
        """Cancel a pending run; False if it isn't pending."""
        cursor = self._execute("UPDATE runs SET status = 'cancelled', finished_at = ? WHERE run_id = ? AND status = ?",
                               (time.time(), run_id, PENDING))
        return cursor.rowcount == 1

    def delete(self, run_id: str) -> bool:
        placeholders = ",".join("?" * len(FINISHED))
        cursor = self._execute(f"DELETE FROM runs WHERE run_id = ? AND status IN ({placeholders})",
                               (run_id, *FINISHED))
        return cursor.rowcount == 1

    def get(self, run_id: str) -> dict | None:
        row = self._execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _record(row) if row is not None else None

    def status_of(self, run_id: str) -> str | None:
        row = self._execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row["status"] if row is not None else None

    def history(self, offset: int = 0, limit: int = 50, status: str | None = None,
                ran: bool = False) -> tuple[int, list[dict]]:
        """Finished runs, newest first, without their workflows (`ran`: only those that started)."""
        statuses = (status,) if status else tuple(s for s in FINISHED if not ran or s != "cancelled")
        placeholders = ",".join("?" * len(statuses))
        total = self._execute(f"SELECT COUNT(*) FROM runs WHERE status IN ({placeholders})", statuses).fetchone()[0]
        rows = self._execute(
            "SELECT run_id, number, status, client_id, submitted_at, started_at, finished_at, elapsed, outputs, error, "
            "placement "
            f"FROM runs WHERE status IN ({placeholders}) ORDER BY finished_at DESC, number DESC LIMIT ? OFFSET ?",
            (*statuses, limit, offset)).fetchall()
        return total, [_record(row) for row in rows]


def _record(row: sqlite3.Row) -> dict:
    record = dict(row)
    for key in JSON_COLUMNS:
        if key in record:
            record[key] = json.loads(record[key]) if record[key] is not None else None
    record.pop("priority", None)
    record.pop("attempts", None)
    if "targets" in record and record["targets"] is None:
        record.pop("targets")
    return record
