"""Coalesces streamed text so the GUI repaints at most once per frame, however fast the model."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

FLUSH_INTERVAL_MS = 25  # ~40 updates a second: smooth to the eye, cheap for the event loop


class StreamCoalescer(QObject):
    """Buffers ``(reasoning, answer)`` deltas and releases them in one batch per interval."""

    sig_flushed = Signal(str, str)
    """Buffered text released: (reasoning delta, answer delta); either may be empty."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = FLUSH_INTERVAL_MS) -> None:
        super().__init__(parent)
        self._reasoning: list[str] = []
        self._answer: list[str] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.flush)

    def add(self, reasoning: str, answer: str) -> None:
        if reasoning:
            self._reasoning.append(reasoning)
        if answer:
            self._answer.append(answer)
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Releases everything buffered now (also called when the reply ends)."""
        self._timer.stop()
        if not self._reasoning and not self._answer:
            return
        reasoning, answer = "".join(self._reasoning), "".join(self._answer)
        self._reasoning.clear()
        self._answer.clear()
        self.sig_flushed.emit(reasoning, answer)
