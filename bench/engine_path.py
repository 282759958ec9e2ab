"""The app's generation path, driven the way the chat session drives it.

Requests reach the engine through the :class:`EngineHost`'s queue on its engine thread; text
comes back as the host's events, re-emitted there as a Qt signal (as the window's session bridge
does), queued into a :class:`StreamCoalescer` on this thread, which must be the thread running
Qt's event loop (the GUI thread in the app). Every timestamp is taken here, when a signal
arrives, so delivery is part of every figure.

The raw reference must run on the engine thread too (:meth:`EngineDriver.call_on_inference_thread`).
llama.cpp's CPU backend is built with OpenMP, and every thread that runs a computation owns its
own pool of OpenMP helper threads. Once the pools of a process hold more threads than there are
cores, libgomp stops spinning at barriers and sleeps instead, and llama.cpp synchronizes at a
barrier after every operation: both the engine and the reference then run at about half speed.
One computing thread, as in the app, keeps one pool.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from PySide6.QtCore import QEventLoop, QObject, QTimer, Signal, Slot

from app.core.domain.generation import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    LoadSettings,
    ModelFacts,
    SamplingSettings,
)
from app.core.engines.engine_events import (
    GenerationFailed,
    GenerationFinished,
    ModelLoaded,
    ModelLoadFailed,
    TextGenerated,
)
from app.core.engines.engine_host import EngineHost, Priority
from app.core.engines.llama.llama_engine import LlamaEngine
from app.ui.stream_coalescer import StreamCoalescer

TIMEOUT_MS = 600_000
T = TypeVar("T")


@dataclass(frozen=True)
class TimedReply:
    """One reply and when its signals arrived on this thread (``time.perf_counter`` seconds)."""

    result: GenerationResult
    sent_at: float
    first_text_at: float | None  # None if the reply showed no text at all
    finished_at: float
    shown_reasoning: str  # what the coalescer released, i.e. what a window would show
    shown_answer: str

    @property
    def time_to_first_text_s(self) -> float:
        """From the request to the first text on this thread (to the end if there was none)."""
        return (self.first_text_at or self.finished_at) - self.sent_at

    @property
    def streaming_tokens_per_second(self) -> float:
        """Generated tokens over the time from the first text's arrival to the end's arrival.

        In that span the engine samples the remaining tokens and decodes every one of them, so
        it compares with ``generated`` single-token decodes of a raw loop.
        """
        generated = self.result.stats.generated_tokens
        span = self.finished_at - (self.first_text_at or self.sent_at)
        return generated / span if span > 0 else 0.0


class _HostSignals(QObject):
    """The engine host's events as Qt signals, emitted on the engine thread, queued to this one."""

    sig_text = Signal(str, str)
    sig_outcome = Signal(object)


class EngineDriver(QObject):
    """Owns an :class:`EngineHost` and waits for its answers in a local event loop."""

    def __init__(self) -> None:
        super().__init__()
        self.host = EngineHost(LlamaEngine)
        self._signals = _HostSignals()
        self.host.subscribe(self._on_model_event)
        self._signals.sig_outcome.connect(self._finish)
        # The window's streaming path: every token's text is a queued signal into the coalescer.
        self._coalescer = StreamCoalescer(self)
        self._signals.sig_text.connect(self._coalescer.add)
        self._coalescer.sig_flushed.connect(self._on_flushed)
        self._loop = QEventLoop()
        self._timeout = QTimer(self)
        self._timeout.setSingleShot(True)
        self._timeout.setInterval(TIMEOUT_MS)
        self._timeout.timeout.connect(self._loop.quit)
        self._outcome: object = None
        self._first_text_at: float | None = None
        self._reasoning: list[str] = []
        self._answer: list[str] = []

    def load(self, path: Path, settings: LoadSettings = LoadSettings()) -> ModelFacts:
        self.host.load_model(path, settings)
        outcome = self._wait()
        if not isinstance(outcome, ModelFacts):
            raise RuntimeError(f"loading {path} failed: {outcome}")
        return outcome

    def reply(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, thinking: bool = False, seed: int = 1
    ) -> TimedReply:
        """Generates one reply with the model card's sampling preset (and a fixed seed)."""
        sampling = dataclasses.replace(SamplingSettings.for_mode(thinking=thinking, max_tokens=max_tokens), seed=seed)
        request = GenerationRequest(messages=tuple(messages), enable_thinking=thinking, sampling=sampling)
        self._first_text_at = None
        self._reasoning, self._answer = [], []
        # Connected for the first piece only, so the measurement adds no work per token.
        self._signals.sig_text.connect(self._on_first_text)
        sent_at = time.perf_counter()
        self.host.generate(request, Priority.PERSON, self._on_generation_event)
        outcome = self._wait()
        finished_at = time.perf_counter()
        if not isinstance(outcome, GenerationResult):
            raise RuntimeError(f"generation failed: {outcome}")
        self._coalescer.flush()  # as the window does when a reply ends
        return TimedReply(
            result=outcome,
            sent_at=sent_at,
            first_text_at=self._first_text_at,
            finished_at=finished_at,
            shown_reasoning="".join(self._reasoning),
            shown_answer="".join(self._answer),
        )

    def prepare_next_turn(self, messages: Sequence[ChatMessage], *, thinking: bool = False) -> int:
        """What the chat session asks for after each reply; returns the tokens evaluated ahead."""
        sampling = SamplingSettings.for_mode(thinking=thinking)
        request = GenerationRequest(messages=tuple(messages), enable_thinking=thinking, sampling=sampling)
        self.host.prepare_next_turn(request, self._signals.sig_outcome.emit)
        evaluated = self._wait()
        assert isinstance(evaluated, int)
        return evaluated

    def call_on_inference_thread(self, function: Callable[[], T]) -> T:
        """``function()`` run on the engine's thread, between requests; its result or exception."""
        return self.host.call(lambda _engine: function()).result(timeout=TIMEOUT_MS / 1000)

    def close(self) -> None:
        self.host.shutdown()

    def _on_generation_event(self, event) -> None:  # engine thread
        if isinstance(event, TextGenerated):
            self._signals.sig_text.emit(event.reasoning, event.answer)
        elif isinstance(event, GenerationFinished):
            self._signals.sig_outcome.emit(event.result)
        elif isinstance(event, GenerationFailed):
            self._signals.sig_outcome.emit(event.message)

    def _on_model_event(self, event) -> None:  # engine thread
        if isinstance(event, ModelLoaded):
            self._signals.sig_outcome.emit(event.facts)
        elif isinstance(event, ModelLoadFailed):
            self._signals.sig_outcome.emit(event.message)

    def _wait(self) -> object:
        self._outcome = None
        self._timeout.start()
        self._loop.exec()
        self._timeout.stop()
        if self._outcome is None:
            raise TimeoutError("the engine host did not answer")
        return self._outcome

    @Slot(str, str)
    def _on_first_text(self, _reasoning: str, _answer: str) -> None:
        if self._first_text_at is None:
            self._first_text_at = time.perf_counter()
        self._signals.sig_text.disconnect(self._on_first_text)

    @Slot(str, str)
    def _on_flushed(self, reasoning: str, answer: str) -> None:
        self._reasoning.append(reasoning)
        self._answer.append(answer)

    def _finish(self, outcome: object) -> None:
        self._outcome = outcome
        self._loop.quit()
