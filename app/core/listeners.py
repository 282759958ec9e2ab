"""The listeners of a core service: added from any thread, each called safely on the service's.

Every service reports events to whoever subscribed; a listener that raises must neither stop the
service's thread nor keep the other listeners from hearing the event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Event = TypeVar("Event")


class Listeners(Generic[Event]):
    """A thread-safe list of callbacks; :meth:`emit` calls each with the event, in order."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()

    def add(self, listener: Callable[[Event], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def emit(self, event: Event) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            deliver(listener, event)


def deliver(listener: Callable[[Event], None], event: Event) -> None:
    """Calls ``listener(event)``; what it raises is logged, never passed on."""
    try:
        listener(event)
    except Exception:
        logger.exception("A listener failed on %s", type(event).__name__)
