"""The output cache: node outputs keyed by signature, bounded by entry count and bytes (LRU)."""

import threading
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class CacheEntry:
    outputs: tuple
    ui: dict = field(default_factory=dict)
    nbytes: int = 0


def estimate_nbytes(value) -> int:
    """Bytes held by a value: tensors, arrays, modules (their parameters), containers of them.
    Walked with a stack, not recursion, so a value nested however deep (parsed JSON, say) is
    counted rather than crashing the run that caches it."""
    seen, total, stack = set(), 0, [value]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, (str, bytes, int, float, bool)) or item is None:
            continue
        seen.add(id(item))
        if hasattr(item, "untyped_storage"):  # torch.Tensor
            total += item.numel() * item.element_size()
        elif hasattr(item, "nbytes") and isinstance(item.nbytes, int):  # numpy, or objects that know their size
            total += item.nbytes
        elif hasattr(item, "parameters") and hasattr(item, "buffers"):  # torch.nn.Module
            stack.extend(list(item.parameters()) + list(item.buffers()))
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set)):
            stack.extend(item)
        elif hasattr(item, "__dict__"):
            stack.extend(vars(item).values())
    return total


class OutputCache:
    def __init__(self, max_entries: int = 10_000, max_bytes: int | None = 16 * 2**30):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, signature: str) -> CacheEntry | None:
        with self._lock:
            entry = self._entries.get(signature)
            if entry is not None:
                self._entries.move_to_end(signature)
            return entry

    def put(self, signature: str, outputs: tuple, ui: dict | None = None) -> None:
        entry = CacheEntry(outputs, ui or {}, estimate_nbytes(outputs))
        with self._lock:
            old = self._entries.pop(signature, None)
            if old is not None:
                self.nbytes -= old.nbytes
            self._entries[signature] = entry
            self.nbytes += entry.nbytes
            # Keep the newest entry even if it alone exceeds the byte bound: the run needs it.
            while len(self._entries) > 1 and (
                len(self._entries) > self.max_entries or (self.max_bytes is not None and self.nbytes > self.max_bytes)
            ):
                _, evicted = self._entries.popitem(last=False)
                self.nbytes -= evicted.nbytes

    def discard(self, predicate) -> int:
        """Drop the entries whose outputs satisfy `predicate(outputs)` (e.g. those holding models)."""
        with self._lock:
            doomed = [signature for signature, entry in self._entries.items() if predicate(entry.outputs)]
            for signature in doomed:
                self.nbytes -= self._entries.pop(signature).nbytes
        return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.nbytes = 0

    def __contains__(self, signature: str) -> bool:
        return signature in self._entries

    def __len__(self) -> int:
        return len(self._entries)
