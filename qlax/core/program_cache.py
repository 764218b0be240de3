"""A bounded cache of built programs, the least recently used dropped first.

Each compiled XLA program holds memory mappings of its own (about 900 for a small training
program with its population and evaluation, on the CPU), and a Linux process may hold only
`vm.max_map_count` of them (65,530 by default). Past that XLA's compiler aborts the process.
A process that builds programs for many static settings in turn (a notebook, a search over
network sizes, the test suite: it aborted at its 431st test with 65,021 mappings) must let
old ones go: dropping the last reference to a jitted function frees its programs.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

Value = TypeVar("Value")

KEPT = 8  # programs kept per cache: a sweep reuses one; a run its trainer, population and evaluation


class ProgramCache(Generic[Value]):
    """At most `size` values by key; `get` builds a missing one and marks it most recent."""

    def __init__(self, size: int = KEPT):
        self.size = size
        self._values: OrderedDict[Hashable, Value] = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], Value]) -> Value:
        if key in self._values:
            self._values.move_to_end(key)
        else:
            self._values[key] = build()
            while len(self._values) > self.size:
                self._values.popitem(last=False)
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)
