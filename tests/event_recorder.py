"""Collects the events a core service reports from its threads, and waits for them (no sleeps)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

TIMEOUT_S = 60


class EventRecorder:
    """A listener for any core service: keeps every event, in order, and wakes waiters."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self._condition = threading.Condition()

    def __call__(self, event: object) -> None:
        with self._condition:
            self.events.append(event)
            self._condition.notify_all()

    def of(self, kind: type[T]) -> list[T]:
        with self._condition:
            return [event for event in self.events if isinstance(event, kind)]

    def wait_for(self, kind: type[T], predicate: Callable[[T], bool] = lambda _event: True, count: int = 1) -> T:
        """The ``count``-th event of ``kind`` that satisfies ``predicate``, waiting for it."""
        def found() -> list[T]:
            return [event for event in self.events if isinstance(event, kind) and predicate(event)]

        with self._condition:
            if not self._condition.wait_for(lambda: len(found()) >= count, timeout=TIMEOUT_S):
                raise TimeoutError(f"no {kind.__name__} came; got {[type(e).__name__ for e in self.events]}")
            return found()[count - 1]

    def clear(self) -> None:
        with self._condition:
            self.events.clear()
