"""Whether a regular expression from a workflow backtracks without end on its texts.

Python's `re` holds the interpreter until a match is done, and a pattern such as (a+)+$ on
"aaa...b" takes it minutes or years; no thread can stop it. So a pattern a stranger's workflow
brings is first run by `re` itself, over the same texts, in a child process that is stopped after
a time limit. Whoever then runs it here runs the same engine on the same texts: it ends too."""

from __future__ import annotations

import json
import re
import subprocess
import sys

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
    try:  # -I -S: no site packages or user paths, so the child starts in milliseconds
        subprocess.run([sys.executable, "-I", "-S", "-c", _TRIAL], input=job.encode(), check=True,
                       timeout=seconds + 0.5, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return True
    except (subprocess.CalledProcessError, OSError):
        pass
    return False
