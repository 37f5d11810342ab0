"""Debian's headless Chromium for the editor's browser tests: where it is, its flags, and the guards
that keep a hung or real-time browser from hanging the suite. Kept apart from test_editor_e2e (no
torch, no graphflow) so that the tests running these guards in a child process start it quickly."""

import contextlib
import os
import shutil
import signal
import threading
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("GRAPHFLOW_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# --no-zygote: renderers are started by the browser process, not forked by a zygote (whose reaping
# of them livelocked in this VM's kernel twice, hanging the suite); it needs --no-sandbox
CHROMIUM_ARGS = ["--no-sandbox", "--no-zygote", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 # a fake camera (a test pattern), granted without asking: WebcamCapture's widget
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
TEST_LIMIT_S = 150  # the slowest test takes ~6 s; one still running after this has a hung browser


def _browser_processes() -> list[int]:
    """Playwright's driver (node) and the Chromium processes it started: the processes under this
    one with those commands (read from /proc)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
        except (OSError, ValueError):
            continue
        command, fields = rest.rsplit(") ", 1)  # a command may hold spaces and brackets
        children.setdefault(int(fields.split()[1]), []).append((int(pid), command))
    found, todo = [], [os.getpid()]
    while todo:
        for pid, command in children.get(todo.pop(), ()):
            todo.append(pid)
            if command.startswith(("node", "chrom")):  # node-MainThread; chromium, chrome_crashpad_handler
                found.append(pid)
    return found


@contextlib.contextmanager
def hung_browser_watchdog(what: str, limit_s: float = TEST_LIMIT_S):
    """Past limit_s, kill Chromium and Playwright's driver: the Playwright call waiting on them then
    raises (the driver's connection closed), so the test fails where it would wait for ever. Some
    calls (new_page, close) have no timeout of their own, and Chromium hung this VM's suite for 25
    minutes (a kernel livelock reaping children). Other tests of the module then fail at once (no
    browser). The kill is reported as the test's error."""
    killed = threading.Event()

    def kill():
        killed.set()
        for pid in reversed(_browser_processes()):  # children before their parents: none left to reap
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    timer = threading.Timer(limit_s, kill)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        if killed.is_set():
            pytest.fail(f"{what} ran past {limit_s} s: the browser was taken to hang and killed")


def normal_scheduling() -> None:
    """Put this thread back on the normal time-sharing policy (SCHED_OTHER) if it is on a real-time
    one. A pytest worker in this VM was found under SCHED_FIFO priority 99 (set by SVT-AV1 in an
    earlier AV1 save, before graphflow.video put the policy back); Playwright's driver and Chromium,
    which inherit the policy of the thread that starts them, then spun at real-time priority and
    livelocked the kernel (load 80+). Kept as a second guard. Leaving a real-time policy needs no
    privilege."""
    if os.sched_getscheduler(0) != os.SCHED_OTHER:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
