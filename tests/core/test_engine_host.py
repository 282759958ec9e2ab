"""The engine host: one thread owns the real llama.cpp engine and runs work by priority."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from app.core.domain.generation import ChatMessage, GenerationRequest, LoadSettings, SamplingSettings, StopReason
from app.core.engines.engine_events import (
    GenerationFailed,
    GenerationFinished,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    TextGenerated,
)
from app.core.engines.engine_host import INFERENCE_NICENESS, EngineHost, Priority
from app.core.engines.llama.llama_engine import LlamaEngine
from app.core.engines.llama.self_test_model import CONTEXT_LENGTH, THINKING_ANSWER, THINKING_REASONING
from tests.event_recorder import TIMEOUT_S, EventRecorder

THINKING = SamplingSettings.for_mode(thinking=True)
PLAIN = SamplingSettings.for_mode(thinking=False)


@pytest.fixture
def host(tiny_model: Path):
    host = EngineHost(LlamaEngine)
    models = EventRecorder()
    host.subscribe(models)
    host.load_model(tiny_model, LoadSettings(context_size=CONTEXT_LENGTH))
    models.wait_for(ModelLoaded)
    yield host
    host.shutdown()


def _request(text: str, *, thinking: bool = True, max_tokens: int = 64) -> GenerationRequest:
    sampling = SamplingSettings.for_mode(thinking=thinking, max_tokens=max_tokens)
    return GenerationRequest((ChatMessage("user", text),), enable_thinking=thinking, sampling=sampling)


def _hold_the_engine(host: EngineHost) -> threading.Event:
    """Keeps the engine thread busy until the returned flag is set, so work can queue up."""
    release, holding = threading.Event(), threading.Event()

    def hold(_engine) -> None:
        holding.set()
        release.wait(TIMEOUT_S)

    host.call(hold)
    holding.wait(TIMEOUT_S)
    return release


def test_a_reply_streams_its_text_then_finishes(host: EngineHost) -> None:
    events = EventRecorder()
    host.generate(_request("Why?"), Priority.PERSON, events)
    finished = events.wait_for(GenerationFinished)
    streamed = events.of(TextGenerated)
    assert "".join(event.reasoning for event in streamed) == THINKING_REASONING
    assert "".join(event.answer for event in streamed) == THINKING_ANSWER
    assert finished.result.answer == THINKING_ANSWER
    assert events.events[-1] is finished  # nothing after the end


def test_a_persons_turn_goes_before_an_api_request_before_preparation(host: EngineHost) -> None:
    order: list[str] = []
    release = _hold_the_engine(host)
    host.prepare_next_turn(_request("Earlier"), lambda _evaluated: order.append("preparation"))
    host.generate(_request("From a script"), Priority.API, lambda event: isinstance(event, GenerationFinished) and order.append("api"))
    host.generate(_request("From a person"), Priority.PERSON, lambda event: isinstance(event, GenerationFinished) and order.append("person"))
    done = threading.Event()
    host.call(lambda _engine: done.set())  # a person's priority too: after the person's turn
    release.set()
    done.wait(TIMEOUT_S)
    finished = threading.Event()
    host.prepare_next_turn(_request("Later"), lambda _evaluated: finished.set())
    finished.wait(TIMEOUT_S)
    # The preparation queued first was cancelled by the requests after it: it did nothing.
    assert order == ["person", "api", "preparation"]


class _WatchedCancel(threading.Event):
    """A cancel flag that tells when the engine has started checking it batch by batch."""

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0
        self.evaluating = threading.Event()

    def is_set(self) -> bool:
        self.checks += 1
        if self.checks >= 3:  # the host's check, then the engine's (before batches, between graph nodes)
            self.evaluating.set()
        return super().is_set()


def test_a_new_turn_cancels_a_running_preparation_at_once(host: EngineHost) -> None:
    long_history = (
        ChatMessage("user", "lorem ipsum dolor sit amet " * 100),
        ChatMessage("assistant", "Ok"),
    )
    cancel = _WatchedCancel()
    prepared: list[int] = []
    host.prepare_next_turn(
        GenerationRequest(long_history, enable_thinking=True, sampling=THINKING, cancel=cancel), prepared.append
    )
    cancel.evaluating.wait(TIMEOUT_S)

    events = EventRecorder()
    host.generate(_request("New question"), Priority.PERSON, events)
    finished = events.wait_for(GenerationFinished)

    assert cancel.is_set()
    assert finished.result.answer == THINKING_ANSWER
    assert prepared and prepared[0] < 2000  # stopped well before the ~2,100 tokens of history


def test_cancelling_a_queued_request_ends_it_without_generating(host: EngineHost) -> None:
    release = _hold_the_engine(host)
    events = EventRecorder()
    request = _request("Never mind", thinking=False, max_tokens=1000)
    host.generate(request, Priority.PERSON, events)
    request.cancel.set()
    release.set()
    finished = events.wait_for(GenerationFinished)
    assert finished.result.stats.stop_reason is StopReason.CANCELLED
    assert finished.result.stats.generated_tokens == 0


def test_without_a_model_a_request_fails_with_a_message() -> None:
    host = EngineHost(LlamaEngine)
    try:
        events = EventRecorder()
        host.generate(_request("Hello"), Priority.PERSON, events)
        assert events.wait_for(GenerationFailed).message == "No model is loaded."
    finally:
        host.shutdown()


def test_a_file_that_is_no_model_is_reported_and_the_loaded_model_stays(tmp_path: Path, host: EngineHost) -> None:
    loaded = host.facts
    bad = tmp_path / "notes.gguf"
    bad.write_text("not a model")
    models = EventRecorder()
    host.subscribe(models)
    host.load_model(bad, LoadSettings())
    failed = models.wait_for(ModelLoadFailed)
    assert failed.path == bad and "not a GGUF model file" in failed.message
    assert failed.still_loaded == loaded and host.facts == loaded
    assert not models.of(ModelLoading)  # refused before anything was read or freed


def test_a_model_file_llama_cpp_cannot_load_brings_the_previous_model_back(tmp_path: Path, host: EngineHost, tiny_model: Path) -> None:
    loaded = host.facts
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny_model.read_bytes()[:4096])  # a real header, cut off
    models = EventRecorder()
    host.subscribe(models)
    host.load_model(truncated, LoadSettings())
    failed = models.wait_for(ModelLoadFailed)
    assert failed.path == truncated
    assert failed.still_loaded is not None and failed.still_loaded.path == loaded.path
    assert host.facts.path == loaded.path
    reply = EventRecorder()
    host.generate(_request("Still there?"), Priority.PERSON, reply)
    assert reply.wait_for(GenerationFinished).result.stats.generated_tokens > 0


def test_loading_reports_progress_and_the_facts(tiny_model: Path) -> None:
    host = EngineHost(LlamaEngine)
    try:
        models = EventRecorder()
        host.subscribe(models)
        host.load_model(tiny_model, LoadSettings(context_size=1024))
        loaded = models.wait_for(ModelLoaded)
        assert loaded.facts == host.facts and loaded.facts.context_size == 1024
        progress = [event.fraction for event in models.of(ModelLoading)]
        assert progress and progress == sorted(progress) and progress[-1] == 1.0
    finally:
        host.shutdown()


def test_the_engine_lives_and_computes_on_the_host_thread_only(host: EngineHost) -> None:
    seen = host.call(lambda engine: (threading.current_thread(), engine.is_loaded)).result(TIMEOUT_S)
    assert seen == (host.thread, True)
    events = EventRecorder()
    threads: list[threading.Thread] = []
    host.generate(_request("Where?"), Priority.PERSON, lambda event: (threads.append(threading.current_thread()), events(event)))
    events.wait_for(GenerationFinished)
    assert set(threads) == {host.thread}


def test_the_engine_thread_and_the_threads_it_starts_yield_the_cpu_to_the_interface(host: EngineHost) -> None:
    def niceness_there(_engine) -> tuple[int, int]:
        helper: list[int] = []
        thread = threading.Thread(  # as llama.cpp's compute threads are started
            target=lambda: helper.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        )
        thread.start()
        thread.join()
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), helper[0]

    interface = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert host.call(niceness_there).result(TIMEOUT_S) == (interface + INFERENCE_NICENESS,) * 2


def test_shutdown_ends_a_running_reply_keeping_it_and_frees_the_model(host: EngineHost) -> None:
    events = EventRecorder()
    engine = host.call(lambda engine: engine).result(TIMEOUT_S)
    host.generate(_request("Count", thinking=False, max_tokens=100_000), Priority.PERSON, events)
    events.wait_for(TextGenerated)
    host.shutdown()
    finished = events.wait_for(GenerationFinished)
    assert finished.result.stats.stop_reason is StopReason.CANCELLED and finished.result.answer
    assert not host.thread.is_alive() and not engine.is_loaded
    with pytest.raises(RuntimeError):
        host.generate(_request("Too late"), Priority.PERSON, events)
