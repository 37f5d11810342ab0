"""Picture files a client and the nodes hand each other by id, in memory (the ETN pack's image
cache: a client PUTs /api/etn/image/{id} and queues ETN_LoadImageCache with the id;
ETN_SaveImageCache stores its pictures and the client GETs them by the ids its "executed" message
names). Held in this process only: a run on another machine (graphflow.cluster) does not see them.

Entries go as the pack's do: 600 s after they were stored or last loaded, or 60 s after that once
they were fetched twice; and, beyond the pack, the oldest first whenever all of them together would
hold more than MAX_BYTES.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

MAX_BYTES = 512 * 2**20
KEEP_SECONDS, KEEP_FETCHED_SECONDS = 600.0, 60.0


@dataclass
class Entry:
    data: bytes
    content_type: str
    stored: float  # time.monotonic() when stored, or last loaded by a node
    fetched: int = 0


class ImageExchange:
    def __init__(self, max_bytes: int = MAX_BYTES):
        self.max_bytes = max_bytes
        self.entries: dict[str, Entry] = {}
        self.lock = threading.Lock()  # the server's loop and the executor's thread both use it

    def put(self, key: str, data: bytes, content_type: str) -> bool:
        """Store a picture under key; False (and nothing changed) where one is stored under it already,
        as the pack answers "cached"."""
        with self.lock:
            self._prune()
            if key in self.entries:
                return False
            self.entries[key] = Entry(bytes(data), content_type, time.monotonic())
            self._fit()
            return True

    def add(self, data: bytes, content_type: str) -> str:
        """Store a picture a node made; its new id."""
        key = uuid.uuid4().hex
        self.put(key, data, content_type)
        return key

    def get(self, key: str, loading: bool = False) -> Entry | None:
        """The entry under key, or None; a node loading it keeps it another KEEP_SECONDS (the pack's extend)."""
        with self.lock:
            entry = self.entries.get(key)
            if entry is not None:
                entry.fetched += 1
                if loading:
                    entry.stored = time.monotonic()
            self._prune()
            return entry

    def _prune(self) -> None:
        now = time.monotonic()
        for key in [k for k, e in self.entries.items()
                    if now - e.stored > KEEP_SECONDS or (e.fetched > 1 and now - e.stored > KEEP_FETCHED_SECONDS)]:
            del self.entries[key]

    def _fit(self) -> None:
        total = sum(len(e.data) for e in self.entries.values())
        for key in sorted(self.entries, key=lambda k: self.entries[k].stored):
            if total <= self.max_bytes:
                break
            total -= len(self.entries.pop(key).data)


image_exchange = ImageExchange()
