"""Exact-input memoization of pure presentation work, bounded per process.

A :class:`Memo` maps a key (say, a pool id and a language) to the *exact
input* a value was computed from and the value. ``get(key, data)`` returns
the value only when the stored input equals ``data``, the input just read
from the database: the data is the cache key, so there is nothing to
invalidate. A pledge, a bid, a rename — any change to what was read — is a
miss, and the caller computes the value again and stores it.

Only pure functions of their input belong here (no viewer, no clock, no
request): whatever else the value depends on must be part of the key.
The bound keeps the least recently used entries out; each process (gunicorn
worker) has its own, so nothing is shared between workers or hosts.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

_MISSING = object()


class Memo:
    """A bounded LRU from key to (input, value); a hit needs the same key and an equal input."""

    def __init__(self, maxsize: int):
        if maxsize < 1:
            raise ValueError("a Memo holds at least one entry")
        self.maxsize = maxsize
        self._entries: OrderedDict[Hashable, tuple[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()  # gunicorn may run threaded workers

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, data: Any, default: Any = None) -> Any:
        """The value stored for ``key`` if it was computed from input equal to ``data``, else ``default``."""
        with self._lock:
            entry = self._entries.get(key, _MISSING)
            if entry is _MISSING or entry[0] != data:
                return default
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: Hashable, data: Any, value: Any) -> Any:
        """Store ``value`` as computed from ``data`` (replacing what ``key`` had); returns ``value``."""
        with self._lock:
            self._entries[key] = (data, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        return value

    def get_or_compute(self, key: Hashable, data: Any, compute: Callable[[], Any]) -> Any:
        value = self.get(key, data, _MISSING)
        if value is _MISSING:
            value = self.put(key, data, compute())
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
