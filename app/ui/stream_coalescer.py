"""Coalesces streamed text so the GUI repaints at most once per frame, however fast the model.

Showing text can still get slow: the transcript lays out again the Markdown block that grows,
and one block can be long (a wall of text without paragraphs, a long code listing: ~2 ms per
1,000 characters on the 2-core machine of bench/README.md). At a fixed 25 ms interval such a
block would keep the GUI thread busy all the time. So at each
release the coalescer reads how much CPU time the GUI thread has used since the previous one
(the previous batch's slots, and the layout and painting Qt did after them) and waits ``BACKOFF``
times that long before the next: the GUI thread then spends at most about 1/(1 + ``BACKOFF``) of
its time showing text and keeps answering input. The end of a reply (:meth:`flush`) resets the
interval, so the next reply starts quick.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer, Signal

FLUSH_INTERVAL_MS = 25  # ~40 updates a second: smooth to the eye, cheap for the event loop
BACKOFF = 3  # wait three times as long as showing the last batch took: at most ~25 % busy
MAX_INTERVAL_MS = 500  # however slow showing text gets, it appears at least twice a second


class StreamCoalescer(QObject):
    """Buffers ``(reasoning, answer)`` deltas and releases them in one batch per interval."""

    sig_flushed = Signal(str, str)
    """Buffered text released: (reasoning delta, answer delta); either may be empty."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = FLUSH_INTERVAL_MS) -> None:
        super().__init__(parent)
        self._reasoning: list[str] = []
        self._answer: list[str] = []
        self._min_interval_ms = interval_ms
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._release)
        self._cpu_at_last_release: float | None = None  # this thread's CPU seconds then

    @property
    def interval_ms(self) -> int:
        """How long text waits now before it is released."""
        return self._timer.interval()

    def add(self, reasoning: str, answer: str) -> None:
        if reasoning:
            self._reasoning.append(reasoning)
        if answer:
            self._answer.append(answer)
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Releases everything buffered now; call it when the reply ends."""
        self._release()
        self._cpu_at_last_release = None
        self._timer.setInterval(self._min_interval_ms)

    def _release(self) -> None:
        self._timer.stop()
        if not self._reasoning and not self._answer:
            return
        reasoning, answer = "".join(self._reasoning), "".join(self._answer)
        self._reasoning.clear()
        self._answer.clear()
        cpu = time.thread_time()
        if self._cpu_at_last_release is not None:
            busy_ms = (cpu - self._cpu_at_last_release) * 1000
            self._timer.setInterval(min(MAX_INTERVAL_MS, max(self._min_interval_ms, round(BACKOFF * busy_ms))))
        self._cpu_at_last_release = cpu
        self.sig_flushed.emit(reasoning, answer)
