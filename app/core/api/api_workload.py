"""API replies on their way through the engine host: queued in order, bounded, cancellable.

Each request becomes one engine-host request at ``Priority.API``: after a person's own turn,
before background preparation, in the order they came. The engine host calls back on its own
thread; a ``Completion`` hands each event to the server's asyncio loop, the only place the
request is answered from.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from app.core.domain.generation import GenerationRequest
from app.core.engines.engine_events import GenerationEvent, GenerationFailed, GenerationFinished, GenerationStarted
from app.core.engines.engine_host import EngineHost, Priority
from app.core.listeners import Listeners

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiActivity:
    """How many API replies the engine is writing (0 or 1) and how many wait for it."""

    running: int
    queued: int


class QueueFullError(Exception):
    """As many API requests as allowed are already waiting."""


class Completion:
    """One API reply: its engine events, delivered into the asyncio loop that answers it."""

    def __init__(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop, on_end: Callable[[Completion, GenerationEvent], None]) -> None:
        self.request = request
        self.started = False  # it left the queue (read on the loop, written on the engine thread)
        self._loop = loop
        self._events: asyncio.Queue[GenerationEvent] = asyncio.Queue()
        self._on_end = on_end

    async def next_event(self) -> GenerationEvent:
        return await self._events.get()

    def cancel(self) -> None:
        """Stops the reply, queued or running (from any thread)."""
        self.request.cancel.set()

    def deliver(self, event: GenerationEvent) -> None:
        """Engine thread: hands ``event`` to the loop."""
        if isinstance(event, GenerationStarted):
            self.started = True
        if isinstance(event, (GenerationStarted, GenerationFinished, GenerationFailed)):
            self._on_end(self, event)
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, event)
        except RuntimeError:  # the server's loop has closed: nobody waits for this reply any more
            self.cancel()


class ApiWorkload:
    """The API's requests to the engine host, at most ``limit`` at once; thread-safe."""

    def __init__(self, host: EngineHost, limit: int) -> None:
        self._host = host
        self._limit = limit
        self._lock = threading.Lock()
        self._emit_lock = threading.Lock()  # counts reach listeners in the order they were taken
        self._pending: set[Completion] = set()  # queued or running
        self._listeners: Listeners[ApiActivity] = Listeners()

    @property
    def host(self) -> EngineHost:
        return self._host

    @property
    def activity(self) -> ApiActivity:
        with self._lock:
            running = sum(1 for completion in self._pending if completion.started)
            return ApiActivity(running, len(self._pending) - running)

    def subscribe(self, listener: Callable[[ApiActivity], None]) -> None:
        """Calls ``listener(activity)`` (on any thread) whenever the counts change."""
        self._listeners.add(listener)

    def submit(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop) -> Completion:
        """Queues ``request``; raises ``QueueFullError`` when ``limit`` requests are pending and
        ``RuntimeError`` when the engine host has shut down."""
        completion = Completion(request, loop, self._changed)
        with self._lock:
            if len(self._pending) >= self._limit:
                raise QueueFullError
            self._pending.add(completion)
        try:
            self._host.generate(request, Priority.API, completion.deliver)
        except RuntimeError:
            with self._lock:
                self._pending.discard(completion)
            raise
        self._emit()
        return completion

    def cancel_all(self) -> None:
        with self._lock:
            pending = list(self._pending)
        for completion in pending:
            completion.cancel()

    def _changed(self, completion: Completion, event: GenerationEvent) -> None:
        if not isinstance(event, GenerationStarted):
            with self._lock:
                self._pending.discard(completion)
        self._emit()

    def _emit(self) -> None:
        with self._emit_lock:
            self._listeners.emit(self.activity)
