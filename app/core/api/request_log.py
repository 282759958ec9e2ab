"""The API's recent requests, kept in memory for the app's request log and ``serve``'s output.

Only what a request was, never what it said: API traffic is not the user's chat history, and
prompts may hold anything. The key is never part of a record.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from app.core.listeners import Listeners

MAX_RECORDS = 500


@dataclass(frozen=True)
class ApiRequestRecord:
    """One answered request. Token counts are 0 where no reply was generated."""

    finished_at: float  # time.time()
    client: str  # "address:port"
    method: str
    path: str
    status: int
    duration_s: float
    streamed: bool = False
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    problem: str = ""  # the error message sent, or why the reply ended early

    def summary(self) -> str:
        """One line: ``POST /v1/chat/completions 200 · 512 prompt (480 cached) → 64 tokens · 1.20 s``."""
        parts = [f"{self.method} {self.path} {self.status}"]
        if self.prompt_tokens:
            parts.append(
                f"{self.prompt_tokens:,} prompt ({self.cached_tokens:,} cached) → {self.completion_tokens:,} tokens"
            )
        parts.append(f"{self.duration_s:.2f} s")
        if self.problem:
            parts.append(self.problem)
        return " · ".join(parts)


class ApiRequestLog:
    """The last ``MAX_RECORDS`` requests, newest last; thread-safe."""

    def __init__(self) -> None:
        self._records: deque[ApiRequestRecord] = deque(maxlen=MAX_RECORDS)
        self._lock = threading.Lock()
        self._listeners: Listeners[ApiRequestRecord] = Listeners()

    def add(self, record: ApiRequestRecord) -> None:
        with self._lock:
            self._records.append(record)
        self._listeners.emit(record)

    def records(self) -> list[ApiRequestRecord]:
        with self._lock:
            return list(self._records)

    def subscribe(self, listener: Callable[[ApiRequestRecord], None]) -> None:
        """Calls ``listener(record)`` (on the server's thread) for every later request."""
        self._listeners.add(listener)
