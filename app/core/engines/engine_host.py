"""The engine host: the one long-lived thread that owns the engine, and its queue of work.

The engine is created, used and freed on this thread only: llama.cpp's model and context belong
to one thread, and its CPU backend gives each computing thread a pool of OpenMP helpers of its
own, so a second computing thread would halve the speed of both (bench/engine_path.py).

Work comes from any thread (the window, the local API, tests) and waits in a priority queue:

1. ``Priority.PERSON``: someone is waiting in front of the window (a turn, loading a model);
2. ``Priority.API``: a program asked through the local API;
3. ``Priority.PREPARATION``: evaluating the next turn's prompt while the user reads and types.

Within a priority, work runs in the order it came. A preparation only uses idle time: any other
request cancels the running one (within one ``llama_decode`` step) and the queued ones. Nothing
preempts a reply once it runs; a person's turn waits for a running API reply to end.

Only cancel flags (``threading.Event``) cross threads. Results come back as events
(``engine_events``) through the callbacks given with each request, called on this thread: they
must be quick and must not call the engine.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import TypeVar

from app.core.domain.generation import (
    ChatMessage,
    GenerationRequest,
    GenerationError,
    LoadSettings,
    ModelFacts,
    ModelLoadCancelled,
    ModelLoadError,
    ModelSource,
    ModelWontFitError,
    PromptRejectedError,
    PromptTooLongError,
)
from app.core.engines.engine import Engine, ModelAdmission
from app.core.engines.engine_events import (
    GenerationEvent,
    GenerationFailed,
    GenerationFinished,
    GenerationStarted,
    ImageEncoding,
    ModelChecking,
    ModelEvent,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    PromptEvaluated,
    TextGenerated,
    WaitingForServer,
)
from app.core.listeners import Listeners, deliver

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Priority(IntEnum):
    """Which work runs first; lower runs earlier."""

    PERSON = 0
    API = 1
    PREPARATION = 2


_SHUTDOWN = 3  # after everything else, so queued work ends (cancelled) before the engine is freed

INFERENCE_NICENESS = 5  # see yield_cpu_to_the_interface


def yield_cpu_to_the_interface() -> bool:
    """Lowers the calling thread's scheduling priority, on Linux, for it and the threads it starts.

    Called on the engine thread before it first computes: llama.cpp's compute threads are
    started from there and inherit it. With every core computing, the window's thread otherwise
    waits for a core in line with them (bench/README.md: 10-16 % of the time while a reply
    streamed on 2 cores, ~3 % with this); a niceness of 5 gives it the next free slice while
    costing generation nothing measurable, since the window needs only a little CPU. macOS and
    Windows already favour the application's interface thread, and Linux is the one system where
    a thread has its own niceness. Returns whether it was lowered.
    """
    if not sys.platform.startswith("linux"):
        return False
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + INFERENCE_NICENESS)
    except OSError:
        return False
    return True


@dataclass(order=True)
class _Work:
    priority: int
    sequence: int
    run: Callable[[Engine], None] = field(compare=False)


class EngineHost:
    """Owns one engine on its own thread; every public method may be called from any thread."""

    def __init__(
        self,
        create_engine: Callable[[], Engine],
        *,
        admit_model: ModelAdmission | None = None,
        thread_name: str = "inference",
    ) -> None:
        """Starts the thread and creates the engine there with ``create_engine()``. Every model
        file passes ``admit_model`` first (the app's ``ModelGate``: nothing unverified reaches
        llama.cpp in this process); None trusts every file, for tests of known-good files."""
        self._admit_model = admit_model
        self._queue: queue.PriorityQueue[_Work] = queue.PriorityQueue()
        self._sequence = itertools.count()
        self._lock = threading.Lock()  # guards the sets of cancel flags
        self._model_listeners: Listeners[ModelEvent] = Listeners()
        self._preparations: set[threading.Event] = set()  # queued or running
        self._requests: set[threading.Event] = set()  # generation requests queued or running
        self._load_cancel = threading.Event()  # set by shutdown: a load in progress gives up
        self._closed = False
        self._running: Priority | None = None  # the priority of the work running now
        self._facts: ModelFacts | None = None
        self._load_settings: LoadSettings | None = None  # what the loaded model was loaded with
        started = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(create_engine, started, failure), name=thread_name, daemon=True
        )
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]

    # ------------------------------------------------------------------------------ the model

    @property
    def facts(self) -> ModelFacts | None:
        """The loaded model's facts, None while none is loaded (as of the last model event)."""
        return self._facts

    @property
    def running_priority(self) -> Priority | None:
        """Whose work the engine is doing now (None: none), as of this moment."""
        return self._running

    @property
    def thread(self) -> threading.Thread:
        """The engine thread (for checks that something runs there)."""
        return self._thread

    def subscribe(self, listener: Callable[[ModelEvent], None]) -> None:
        """Calls ``listener(event)`` on the engine thread for every later model event."""
        self._model_listeners.add(listener)

    def load_model(self, path: ModelSource, settings: LoadSettings, *, despite_memory: bool = False) -> None:
        """Loads ``path`` (a model file, or a model on a model server) in place of the current
        model; ends with ``ModelLoaded`` or ``ModelLoadFailed`` (after ``ModelChecking`` events
        the first time a file is used). A failed load changes nothing: the model loaded before
        stays, or is loaded again when the engine had to free it first. A model file the
        admission says does not fit in the free memory is refused (with its ``shortfall``)
        unless ``despite_memory``."""

        def load(engine: Engine) -> None:
            def progress(fraction: float) -> None:
                self._publish(ModelLoading(path, fraction))

            def checking(fraction: float) -> None:
                self._publish(ModelChecking(path, fraction))

            previous = self._facts, self._load_settings
            try:
                admitted = settings
                if self._admit_model is not None and isinstance(path, Path):
                    admitted = self._admit_model(
                        path, settings, loaded=self._facts, despite_memory=despite_memory,
                        on_checking=checking, cancel=self._load_cancel,
                    )
                facts = engine.load(path, admitted, progress, self._load_cancel)
            except ModelLoadCancelled:
                return  # only shutdown cancels a load: nobody is waiting for the answer
            except ModelWontFitError as error:
                self._publish(ModelLoadFailed(path, str(error), self._facts, error.shortfall))
                return
            except ModelLoadError as error:
                self._publish(ModelLoadFailed(path, str(error), self._restore(engine, *previous)))
                return
            except Exception as error:  # the app must survive anything a model file can do
                logger.exception("Loading %s failed", path)
                message = f"Loading the model failed unexpectedly: {error}"
                self._publish(ModelLoadFailed(path, message, self._restore(engine, *previous)))
                return
            self._facts, self._load_settings = facts, admitted
            self._publish(ModelLoaded(facts))

        self._submit(Priority.PERSON, load, cancels_preparation=True)

    def _restore(self, engine: Engine, facts: ModelFacts | None, settings: LoadSettings | None) -> ModelFacts | None:
        """After a failed load: the model that was loaded before, loaded again if it had to go."""
        if engine.facts is not None or facts is None or settings is None:
            self._facts = engine.facts
            return self._facts
        try:
            self._facts = engine.load(facts.source, settings, None, self._load_cancel)
        except Exception:  # noqa: BLE001 - gone or changed meanwhile: then no model is loaded
            logger.warning("Could not load %s again after a failed load", facts.source, exc_info=True)
            self._facts = None
        else:
            self._load_settings = settings
        return self._facts

    # ------------------------------------------------------------------------------- requests

    def generate(
        self, request: GenerationRequest, priority: Priority, on_event: Callable[[GenerationEvent], None]
    ) -> None:
        """Queues a reply; ``on_event`` gets ``GenerationStarted`` when it leaves the queue, its
        ``PromptEvaluated`` and ``TextGenerated`` events, then exactly one ``GenerationFinished``
        or ``GenerationFailed``. Set ``request.cancel`` to stop it, queued or running."""
        if priority is Priority.PREPARATION:
            raise ValueError("a reply is never background work; use prepare_next_turn")

        def generate(engine: Engine) -> None:
            try:
                on_event(GenerationStarted())
                on_event(_generate(engine, request, on_event))
            finally:
                with self._lock:
                    self._requests.discard(request.cancel)

        with self._lock:
            self._requests.add(request.cancel)
        self._submit(priority, generate, cancels_preparation=True)

    def prepare_next_turn(
        self, request: GenerationRequest, on_done: Callable[[int], None] | None = None, *,
        typed: ChatMessage | None = None, saved_only: bool = False,
    ) -> None:
        """Evaluates, when the engine is idle, what the next turn's prompt will start with:
        ``request.messages`` is the conversation as the next turn will send it, without the new
        user message; ``typed`` is that message as far as the person has written it, with its
        pictures (read as far as it is certain); ``saved_only`` restores a saved state and evaluates nothing (a
        chat opened again). ``on_done(evaluated_tokens)`` ends it (0 when cancelled before
        its first step or when there was nothing to gain)."""

        def prepare(engine: Engine) -> None:
            evaluated = 0
            try:
                if engine.is_loaded and not request.cancel.is_set():
                    evaluated = engine.prepare_next_turn(
                        request.messages,
                        enable_thinking=request.enable_thinking,
                        sampling=request.sampling,
                        cancel=request.cancel,
                        tools=request.tools,
                        image_token_limit=request.image_token_limit,
                        typed=typed,
                        saved_only=saved_only,
                    )
            except Exception:  # only speed is lost: the next turn evaluates its prompt in full
                logger.exception("Preparing the next turn failed")
            finally:
                with self._lock:
                    self._preparations.discard(request.cancel)
            if on_done is not None:
                deliver(on_done, evaluated)

        with self._lock:
            if typed is not None:  # it does what the earlier ones would, and more: they give way
                for earlier in self._preparations:
                    earlier.set()
            self._preparations.add(request.cancel)
        self._submit(Priority.PREPARATION, prepare)

    def keep_states(self) -> None:
        """Has the engine keep its newest state for later (on disk), once the work queued
        before is done, a preparation of the next turn included: called when a conversation is
        left, so that it resumes fast when it is opened again."""
        self._submit(Priority.PREPARATION, lambda engine: engine.keep_states())

    def call(self, function: Callable[[Engine], T], priority: Priority = Priority.PERSON) -> Future[T]:
        """Runs ``function(engine)`` on the engine thread between requests (benchmarks and checks
        that must compute where the engine does), after the work queued before it at
        ``priority`` and above; its result or exception arrives in the future."""
        future: Future[T] = Future()

        def run(engine: Engine) -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(function(engine))
                except BaseException as error:  # handed to the caller, who raises it
                    future.set_exception(error)

        self._submit(priority, run)
        return future

    def shutdown(self, timeout: float | None = None) -> bool:
        """Cancels queued and running work, frees the model on its thread, and joins the thread,
        waiting at most ``timeout`` seconds; returns whether the thread ended. It may not, when
        a native call does not return (the thread is a daemon: the process can still exit).

        Cancelled replies still end with ``GenerationFinished`` (stop reason: cancelled), so
        their clients keep what was written. Calling it twice is harmless.
        """
        with self._lock:
            if not self._closed:
                self._closed = True
                for cancel in self._requests | self._preparations:
                    cancel.set()
                self._load_cancel.set()
                self._queue.put(_Work(_SHUTDOWN, next(self._sequence), _free_engine))
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------------------------ internals

    def _submit(
        self,
        priority: Priority,
        run: Callable[[Engine], None],
        *,
        cancels_preparation: bool = False,
    ) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the engine host has been shut down")
            if cancels_preparation:
                for preparation in self._preparations:
                    preparation.set()
        self._queue.put(_Work(priority, next(self._sequence), run))

    def _run(self, create_engine: Callable[[], Engine], started: threading.Event, failure: list) -> None:
        yield_cpu_to_the_interface()
        try:
            engine = create_engine()
        except BaseException as error:
            failure.append(error)
            started.set()
            return
        started.set()
        while True:
            work = self._queue.get()
            self._running = work.priority if isinstance(work.priority, Priority) else None
            try:
                work.run(engine)
            except Exception:  # each piece of work reports its own failures; this is a last guard
                logger.exception("Work on the engine thread failed")
            finally:
                self._running = None
            if work.priority == _SHUTDOWN:
                return

    def _publish(self, event: ModelEvent) -> None:
        self._model_listeners.emit(event)


def _generate(engine: Engine, request: GenerationRequest, on_event: Callable[[GenerationEvent], None]):
    """Runs one request; its last event (finished or failed), the others sent on the way."""
    if not engine.is_loaded:
        return GenerationFailed("No model is loaded.")
    try:
        result = engine.generate(
            request.messages,
            enable_thinking=request.enable_thinking,
            sampling=request.sampling,
            cancel=request.cancel,
            on_text=lambda reasoning, answer: on_event(TextGenerated(reasoning, answer)),
            on_prompt_progress=lambda done, total: on_event(PromptEvaluated(done, total)),
            continuation=request.continuation,
            tools=request.tools,
            reply_room=request.reply_room,
            image_token_limit=request.image_token_limit,
            on_image_progress=lambda number, count, fraction: on_event(ImageEncoding(number, count, fraction)),
            on_waiting_for_server=lambda: on_event(WaitingForServer()),
        )
    except PromptTooLongError as error:
        return GenerationFailed(str(error), request_problem="context_length_exceeded")
    except PromptRejectedError as error:
        return GenerationFailed(str(error), request_problem="invalid_prompt")
    except GenerationError as error:
        return GenerationFailed(str(error))
    except Exception as error:
        logger.exception("Generation failed")
        return GenerationFailed(f"Generation failed: {error}")
    return GenerationFinished(result)


def _free_engine(engine: Engine) -> None:
    engine.unload()
