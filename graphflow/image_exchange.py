"""Picture files a client and the nodes hand each other by id, in memory (the ETN pack's image
cache: a client PUTs /api/etn/image/{id} and queues ETN_LoadImageCache with the id;
ETN_SaveImageCache stores its pictures and the client GETs them by the ids its "executed" message
names). Held in this process only: a run on another machine (graphflow.cluster's Ray workers) does
not see them, so a server running on Ray refuses the routes.

Entries go as the pack's do: 600 s after they were stored or last loaded, or 60 s after that once
they were fetched twice; and, beyond the pack, the oldest first whenever all of them together would
hold more than max_bytes or number more than max_entries. A picture over max_bytes is refused, as
is a node's batch of pictures over it (storing it would drop its own first pictures).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

MAX_BYTES = 512 * 2**20
MAX_ENTRIES = 4096
KEEP_SECONDS, KEEP_FETCHED_SECONDS = 600.0, 60.0


class TooLarge(ValueError):
    """Pictures over the exchange's byte cap."""


@dataclass
class Entry:
    data: bytes
    content_type: str
    stored: float  # time.monotonic() when stored, or last loaded by a node
    fetched: int = 0
    version: str = field(default_factory=lambda: uuid.uuid4().hex)  # new with every put, for the output cache


class ImageExchange:
    def __init__(self, max_bytes: int = MAX_BYTES, max_entries: int = MAX_ENTRIES):
        self.max_bytes, self.max_entries = max_bytes, max_entries
        self.entries: OrderedDict[str, Entry] = OrderedDict()  # oldest `stored` first
        self.total = 0  # bytes held
        self.lock = threading.Lock()  # the server's loop and the executor's thread both use it

    def put(self, key: str, data: bytes, content_type: str) -> bool:
        """Store a picture under key; False (and nothing changed) where one is stored under it already,
        as the pack answers "cached". TooLarge where it is over max_bytes."""
        with self.lock:
            self._prune()
            if key in self.entries:
                return False
            self._store([(key, data, content_type)])
            return True

    def add_all(self, pictures: list[tuple[bytes, str]]) -> list[str]:
        """Store the pictures a node made (data, content type) under new ids, which it returns.
        TooLarge where together they are over max_bytes."""
        keys = [uuid.uuid4().hex for _ in pictures]
        with self.lock:
            self._prune()
            self._store([(key, data, content_type) for key, (data, content_type) in zip(keys, pictures)])
        return keys

    def holds(self, key: str) -> bool:
        with self.lock:
            self._prune()
            return key in self.entries

    def version(self, key: str) -> str | None:
        """The version of the picture under key (new with each put), or None; not a fetch."""
        with self.lock:
            self._prune()
            entry = self.entries.get(key)
            return entry.version if entry is not None else None

    def get(self, key: str, loading: bool = False) -> Entry | None:
        """The entry under key, or None; a node loading it keeps it another KEEP_SECONDS (the pack's extend)."""
        with self.lock:
            self._prune()
            entry = self.entries.get(key)
            if entry is not None:
                entry.fetched += 1
                if loading:
                    entry.stored = time.monotonic()
                    self.entries.move_to_end(key)
            return entry

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.total = 0

    def _store(self, pictures: list[tuple[str, bytes, str]]) -> None:
        size = sum(len(data) for _, data, _ in pictures)
        if len(pictures) > self.max_entries:
            raise TooLarge(f"{len(pictures)} pictures, over the {self.max_entries} the image cache holds")
        if size > self.max_bytes:
            raise TooLarge(f"{size} bytes of pictures, over the {self.max_bytes} the image cache holds")
        now = time.monotonic()
        for key, data, content_type in pictures:
            self.entries[key] = Entry(bytes(data), content_type, now)
        self.total += size
        # the new pictures are last and fit together, so only older ones go
        while self.total > self.max_bytes or len(self.entries) > self.max_entries:
            self.total -= len(self.entries.popitem(last=False)[1].data)

    def _prune(self) -> None:
        """Drop expired entries: only those older than KEEP_FETCHED_SECONDS can be, and they are first."""
        now = time.monotonic()
        expired = []
        for key, entry in self.entries.items():
            age = now - entry.stored
            if age <= KEEP_FETCHED_SECONDS:
                break
            if age > KEEP_SECONDS or entry.fetched > 1:
                expired.append(key)
        for key in expired:
            self.total -= len(self.entries.pop(key).data)


image_exchange = ImageExchange()
