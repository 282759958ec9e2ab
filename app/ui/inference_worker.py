"""The inference worker: the one object that owns the engine, on its own long-lived QThread.

Requests reach the worker only through queued signals and its results leave only through
signals, so the llama.cpp model is created, used and freed on the inference thread alone. The
single thing that crosses threads directly is a request's ``threading.Event`` cancel flag.

After each reply the window asks the worker to prepare the next turn (evaluate the conversation
so far while the user types); any new request cancels that first, so it only uses idle time.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from app.core.chat_template import ChatMessage
from app.core.inference_engine import (
    InferenceEngine,
    LoadSettings,
    ModelLoadCancelled,
    ModelLoadError,
    PromptTooLongError,
    SamplingSettings,
    yield_cpu_to_the_interface,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationRequest:
    """One reply to generate. Set ``cancel`` (from any thread) to stop it."""

    messages: tuple[ChatMessage, ...]
    enable_thinking: bool
    sampling: SamplingSettings
    continuation: ChatMessage | None = None  # an unfinished reply to carry on writing
    cancel: threading.Event = field(default_factory=threading.Event, compare=False)


class InferenceWorker(QObject):
    """Lives on the inference thread; every slot runs there."""

    sig_load_progress = Signal(float)
    """Model loading progress: fraction 0.0 … 1.0."""
    sig_model_loaded = Signal(object)
    """A model finished loading: its ``ModelFacts``."""
    sig_load_failed = Signal(str)
    """Loading failed: a message for the user. The previous model is unloaded."""
    sig_text = Signal(str, str)
    """A piece of the reply: (reasoning delta, answer delta); either may be empty."""
    sig_generation_finished = Signal(object)
    """The reply ended (end of turn, limit or cancel): its ``GenerationResult``."""
    sig_generation_failed = Signal(str)
    """The reply could not be generated: a message for the user."""
    sig_next_turn_prepared = Signal(int)
    """The work of preparing the next turn ended: how many prompt tokens were evaluated ahead
    of time (0 when there was nothing to gain, or when it was cancelled before its first step)."""

    def __init__(self, engine: InferenceEngine) -> None:
        super().__init__()
        self._engine = engine

    @Slot()
    def on_thread_started(self) -> None:
        yield_cpu_to_the_interface()

    @Slot(str, object, object)
    def load_model(self, path: str, settings: LoadSettings, cancel: threading.Event) -> None:
        def progress(value: float) -> None:
            self.sig_load_progress.emit(value)

        try:
            facts = self._engine.load(Path(path), settings, progress, cancel)
        except ModelLoadCancelled:
            return  # only shutdown cancels a load: nobody is waiting for the answer
        except ModelLoadError as error:
            self.sig_load_failed.emit(str(error))
            return
        except Exception as error:  # the app must survive anything a model file can do
            logger.exception("Loading %s failed", path)
            self.sig_load_failed.emit(f"Loading the model failed unexpectedly: {error}")
            return
        self.sig_model_loaded.emit(facts)

    @Slot(object)
    def generate(self, request: GenerationRequest) -> None:
        if not self._engine.is_loaded:
            self.sig_generation_failed.emit("No model is loaded.")
            return
        try:
            result = self._engine.generate(
                request.messages,
                enable_thinking=request.enable_thinking,
                sampling=request.sampling,
                cancel=request.cancel,
                on_text=self.sig_text.emit,
                continuation=request.continuation,
            )
        except PromptTooLongError as error:
            self.sig_generation_failed.emit(str(error))
            return
        except Exception as error:
            logger.exception("Generation failed")
            self.sig_generation_failed.emit(f"Generation failed: {error}")
            return
        self.sig_generation_finished.emit(result)

    @Slot(object)
    def prepare_next_turn(self, request: GenerationRequest) -> None:
        """Evaluates ``request.messages`` (a conversation that ends with a reply) ahead of the
        next user message; see :meth:`InferenceEngine.prepare_next_turn`."""
        evaluated = 0
        if self._engine.is_loaded and not request.cancel.is_set():
            try:
                evaluated = self._engine.prepare_next_turn(
                    request.messages,
                    enable_thinking=request.enable_thinking,
                    sampling=request.sampling,
                    cancel=request.cancel,
                )
            except Exception:  # only speed is lost: the next turn evaluates its prompt in full
                logger.exception("Preparing the next turn failed")
        self.sig_next_turn_prepared.emit(evaluated)

    @Slot()
    def unload(self) -> None:
        self._engine.unload()


class InferenceService(QObject):
    """GUI-side handle: starts the inference thread, sends it requests, shuts it down.

    Connect to the worker's ``sig_*`` signals through :attr:`worker`; they arrive queued on the
    GUI thread.
    """

    _sig_load = Signal(str, object, object)
    _sig_generate = Signal(object)
    _sig_prepare = Signal(object)
    _sig_unload = Signal()

    def __init__(self, engine: InferenceEngine, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("inference")
        self.worker = InferenceWorker(engine)
        self.worker.moveToThread(self._thread)
        # Direct: runs on the new thread as it starts, before any request.
        self._thread.started.connect(self.worker.on_thread_started, Qt.ConnectionType.DirectConnection)
        self._sig_load.connect(self.worker.load_model, Qt.ConnectionType.QueuedConnection)
        self._sig_generate.connect(self.worker.generate, Qt.ConnectionType.QueuedConnection)
        self._sig_prepare.connect(self.worker.prepare_next_turn, Qt.ConnectionType.QueuedConnection)
        # Blocking: shutdown must know the model is freed before the thread is stopped.
        self._sig_unload.connect(self.worker.unload, Qt.ConnectionType.BlockingQueuedConnection)
        self._current: GenerationRequest | None = None
        self._preparation: GenerationRequest | None = None
        self._load_cancel = threading.Event()
        self._thread.start()

    def load_model(self, path: Path, settings: LoadSettings) -> None:
        self._cancel_preparation()
        self._sig_load.emit(str(path), settings, self._load_cancel)

    def generate(self, request: GenerationRequest) -> None:
        self._cancel_preparation()  # the user is waiting now: background work gives way
        self._current = request
        self._sig_generate.emit(request)

    def prepare_next_turn(self, request: GenerationRequest) -> None:
        """Evaluates, in the background, the start of the next turn's prompt: ``request.messages``
        is the conversation as the next request will send it, without the new user message. Any
        later request cancels it, so it never delays what the user asked for by more than one
        ``llama_decode`` step. Ends with ``sig_next_turn_prepared``."""
        self._cancel_preparation()
        self._preparation = request
        self._sig_prepare.emit(request)

    def _cancel_preparation(self) -> None:
        if self._preparation is not None:
            self._preparation.cancel.set()
            self._preparation = None

    def stop_generation(self) -> None:
        """Asks the running reply to stop; it ends with ``sig_generation_finished`` as usual."""
        if self._current is not None:
            self._current.cancel.set()

    def shutdown(self) -> None:
        """Cancels work, frees the model on its own thread, then stops and joins the thread."""
        if not self._thread.isRunning():
            return
        self.stop_generation()
        self._cancel_preparation()
        self._load_cancel.set()
        self._sig_unload.emit()
        self._thread.quit()
        self._thread.wait()
