"""Whether a regular expression from a workflow backtracks without end on its texts.

Python's `re` holds the interpreter until a match is done, and a pattern such as (a+)+$ on
"aaa...b" takes it minutes or years; no thread can stop it. So a pattern a stranger's workflow
brings is first run by `re` itself, over the same texts, in a child process that is stopped after
a time limit. Whoever then runs it here runs the same engine on the same texts: it ends too.

A trial that ended is remembered (a digest of the job, the last _REMEMBERED of them): the same
pattern on the same texts ends again, so a workflow run again, or several nodes running one
pattern over one text, start one child, not one each (a child costs some 50 ms). A trial that
ended over every match also answers for the first match, which `re` finds on the way. A stopped
trial is not remembered: it may have been stopped only because the machine was busy."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import threading
from collections import OrderedDict

_TRIAL = """
import json, re, sys
job = json.load(sys.stdin)
pattern = re.compile(job["pattern"], job["flags"])
for text in job["texts"]:
    if job["every_match"]:
        for _ in pattern.finditer(text):
            pass
    else:
        pattern.search(text)
"""


def backtracks(pattern: re.Pattern, texts: list[str], seconds: float, every_match: bool = False) -> bool:
    """True when `re` takes longer than `seconds` to search `texts` with `pattern` (every match of
    each, or its first). A child that fails otherwise (its memory, say) is no verdict: False."""
    job = json.dumps({"pattern": pattern.pattern, "flags": pattern.flags, "texts": texts, "every_match": every_match})
    if _ended(job, every_match, pattern, texts):
        return False
    try:  # -I -S: no site packages or user paths, so the child starts in milliseconds
        subprocess.run([sys.executable, "-I", "-S", "-c", _TRIAL], input=job.encode(), check=True,
                       timeout=seconds + 0.5, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return True
    except (subprocess.CalledProcessError, OSError):
        return False
    _remember(job)
    return False


_REMEMBERED = 256
_ended_jobs: OrderedDict[bytes, None] = OrderedDict()
_ended_lock = threading.Lock()  # nodes of a run may judge patterns from several threads


def _digest(job: str) -> bytes:
    return hashlib.sha256(job.encode()).digest()


def _ended(job: str, every_match: bool, pattern: re.Pattern, texts: list[str]) -> bool:
    keys = [_digest(job)]
    if not every_match:
        keys.append(_digest(json.dumps({"pattern": pattern.pattern, "flags": pattern.flags, "texts": texts,
                                        "every_match": True})))
    with _ended_lock:
        for key in keys:
            if key in _ended_jobs:
                _ended_jobs.move_to_end(key)
                return True
    return False


def _remember(job: str) -> None:
    key = _digest(job)
    with _ended_lock:
        _ended_jobs[key] = None
        if len(_ended_jobs) > _REMEMBERED:
            _ended_jobs.popitem(last=False)
