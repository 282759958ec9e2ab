"""Saved states on disk: a conversation resumed later, also after a restart, evaluates only
what is new; a file that is damaged, foreign or stale is never loaded into llama.cpp."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import openai
import pytest

from app.core.chat.chat_events import ConversationCreated, ConversationOpened, NextTurnPrepared, TurnFinished
from app.core.chat.chat_session import ChatSession
from app.core.conversations.store_worker import StoreWorker
from app.core.domain.generation import ChatMessage, GenerationRequest, LoadSettings, SamplingSettings
from app.core.engines.engine_events import GenerationFinished, ModelLoaded
from app.core.engines.engine_host import EngineHost, Priority
from app.core.engines.llama.llama_engine import LlamaEngine
from app.core.engines.llama.self_test_model import THINKING_ANSWER, THINKING_REASONING
from app.core.engines.llama.state_files import MAGIC, StateFiles
from tests.event_recorder import TIMEOUT_S, EventRecorder
from tests.model_server_fixtures import serve_process

THINKING = SamplingSettings.for_mode(thinking=True, max_tokens=64)
HISTORY = (
    ChatMessage("user", "Tell me about rivers and the stones along them " * 12),
    ChatMessage("assistant", THINKING_ANSWER, THINKING_REASONING),
)
FOLLOW_UP = ChatMessage("user", "And lakes?")


class Engine:
    """An engine host over the llama.cpp engine that keeps its states in ``folder``."""

    def __init__(
        self, model: Path, folder: Path, *, budget: int = 1 << 30, snapshots: int = 8, files: StateFiles | None = None
    ) -> None:
        self.files = files if files is not None else StateFiles(folder, lambda: budget)
        self.host = EngineHost(lambda: LlamaEngine(state_files=self.files, max_snapshots=snapshots))
        loaded = EventRecorder()
        self.host.subscribe(loaded)
        self.host.load_model(model, LoadSettings(context_size=2048))
        loaded.wait_for(ModelLoaded)

    def reply(self, *messages: ChatMessage):
        events = EventRecorder()
        self.host.generate(GenerationRequest(messages, enable_thinking=True, sampling=THINKING), Priority.PERSON, events)
        return events.wait_for(GenerationFinished).result

    def prepare(self, *messages: ChatMessage) -> int:
        done = EventRecorder()
        self.host.prepare_next_turn(GenerationRequest(messages, enable_thinking=True, sampling=THINKING), done)
        return done.wait_for(int)

    def close(self) -> None:
        self.host.shutdown()
        assert self.files.wait_until_written(TIMEOUT_S)


def _chat_then_close(model: Path, folder: Path, *, snapshots: int = 8) -> None:
    """A first session: one turn, its follow-up prepared, the app closed."""
    first = Engine(model, folder, snapshots=snapshots)
    first.reply(HISTORY[0])
    assert first.prepare(*HISTORY) > 0
    first.close()


def _follow_up_evaluated(model: Path, folder: Path) -> tuple[int, int]:
    engine = Engine(model, folder)
    try:
        stats = engine.reply(*HISTORY, FOLLOW_UP).stats
    finally:
        engine.close()
    return stats.evaluated_prompt_tokens, stats.prompt_tokens


def test_a_chat_resumed_after_a_restart_evaluates_only_its_new_message(tiny_model: Path, tmp_path: Path) -> None:
    stayed_open = Engine(tiny_model, tmp_path / "open")
    stayed_open.reply(HISTORY[0])
    stayed_open.prepare(*HISTORY)
    in_the_open_chat = stayed_open.reply(*HISTORY, FOLLOW_UP).stats.evaluated_prompt_tokens
    stayed_open.close()

    _chat_then_close(tiny_model, tmp_path / "states")
    assert len(list((tmp_path / "states").glob("*.state"))) == 2  # the next turn's start, and the last turn's
    evaluated, prompt = _follow_up_evaluated(tiny_model, tmp_path / "states")
    without_files, _ = _follow_up_evaluated(tiny_model, tmp_path / "empty")
    assert without_files == prompt > 150  # the whole history, when nothing was kept
    assert evaluated == in_the_open_chat < 30  # the new question and its markup, as if it had stayed open


@pytest.mark.parametrize("damage", ["cut short", "one byte changed", "not ours", "a huge header", "the model changed"])
def test_a_damaged_foreign_or_stale_file_is_never_loaded(tiny_model: Path, tmp_path: Path, damage: str) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(tiny_model.read_bytes())
    folder = tmp_path / "states"
    _chat_then_close(model, folder)
    files = list(folder.glob("*.state"))
    for file in files:
        data = bytearray(file.read_bytes())
        if damage == "cut short":
            file.write_bytes(data[:-1000])
        elif damage == "one byte changed":
            data[-5000] ^= 0xFF
            file.write_bytes(data)
        elif damage == "not ours":
            file.write_bytes(b"GGUF" + os.urandom(4096))
        elif damage == "a huge header":
            file.write_bytes(MAGIC + (1 << 60).to_bytes(8, "little") + b"{}")
    if damage == "the model changed":
        os.utime(model, ns=(1_000_000_000, 1_000_000_000))  # the file is another one now, to us
    evaluated, prompt = _follow_up_evaluated(model, folder)
    assert evaluated == prompt  # started over
    if damage != "the model changed":  # a stale file is another model's: it waits for eviction
        assert not any(file.exists() for file in files)  # a bad file is removed


def test_the_folder_is_kept_within_its_budget_least_recently_used_first(tmp_path: Path) -> None:
    files = StateFiles(tmp_path, lambda: 2_500)
    for number in range(3):
        files.save("k" * 64, (1, 2, number + 3), number + 4, bytes([number]) * 1_000)
        assert files.wait_until_written(TIMEOUT_S)
    assert {state.tokens for state in files.saved("k" * 64)} == {(1, 2, 4), (1, 2, 5)}  # the oldest went
    assert files.total_bytes() <= 2_500
    files.clear()
    assert files.total_bytes() == 0 and not files.saved("k" * 64)


def test_serve_restarted_answers_a_resent_conversation_from_its_saved_state(tiny_model: Path, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    history = [
        {"role": "user", "content": "Tell me about rivers and the stones along them " * 12},
    ]
    with serve_process(tiny_model, profile) as (process, url):
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
        reply = client.chat.completions.create(model="m", messages=history, max_tokens=32)
        history.append({"role": "assistant", "content": reply.choices[0].message.content,
                        "reasoning_content": reply.choices[0].message.reasoning_content})
        process.send_signal(signal.SIGTERM)  # while the client reads the reply
        process.wait(TIMEOUT_S)
    assert list((profile / "cache" / "saved-states").glob("*.state"))
    with serve_process(tiny_model, profile) as (_process, url):
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
        again = client.chat.completions.create(model="m", messages=[*history, {"role": "user", "content": "And lakes?"}], max_tokens=8)
    assert again.usage.prompt_tokens_details.cached_tokens > again.usage.prompt_tokens // 2


def test_leaving_a_chat_keeps_its_state_on_disk_and_reopening_it_after_a_restart_reads_nothing_again(
    tiny_model: Path, tmp_path: Path
) -> None:
    def session(engine: Engine) -> tuple[StoreWorker, ChatSession, EventRecorder]:
        worker = StoreWorker(tmp_path / "conversations.sqlite3")
        chat = ChatSession(worker, engine.host)
        events = EventRecorder()
        chat.subscribe(events)
        return worker, chat, events

    engine = Engine(tiny_model, tmp_path / "states")
    worker, chat, events = session(engine)
    chat.open_conversation(None)
    chat.send(HISTORY[0].content)
    events.wait_for(NextTurnPrepared)
    conversation = events.wait_for(ConversationCreated).conversation.id
    chat.open_conversation(None)  # another chat: the one left is kept
    events.wait_for(ConversationOpened, count=2)
    engine.host.call(lambda _engine: None, Priority.PREPARATION).result(TIMEOUT_S)
    assert engine.files.wait_until_written(TIMEOUT_S)
    assert len(list((tmp_path / "states").glob("*.state"))) == 2
    chat.shutdown()
    engine.close()
    worker.shutdown()

    engine = Engine(tiny_model, tmp_path / "states")  # the app again
    worker, chat, events = session(engine)
    chat.open_conversation(conversation)
    events.wait_for(ConversationOpened)
    assert events.wait_for(NextTurnPrepared).evaluated_tokens == 0  # opening it computes nothing…
    assert engine.host.call(lambda engine: engine.saved_state_bytes).result(TIMEOUT_S) > 0  # …but reads its state
    chat.send(FOLLOW_UP.content)
    stats = events.wait_for(TurnFinished).reply.stats
    chat.shutdown()
    engine.close()
    worker.shutdown()
    assert stats.evaluated_prompt_tokens < 30 < stats.prompt_tokens - 150


def test_regenerating_the_last_reply_after_a_restart_reads_nothing_of_the_history_again(tiny_model: Path, tmp_path: Path) -> None:
    _chat_then_close(tiny_model, tmp_path / "states")
    assert len(list((tmp_path / "states").glob("*.state"))) == 2  # the next turn's start, and this turn's
    engine = Engine(tiny_model, tmp_path / "states")
    try:
        stats = engine.reply(HISTORY[0]).stats  # the same question again: its reply regenerated
    finally:
        engine.close()
    assert stats.evaluated_prompt_tokens < 10 < stats.prompt_tokens


def test_a_chat_whose_state_left_memory_resumes_from_the_file_kept_when_it_was_left(tiny_model: Path, tmp_path: Path) -> None:
    engine = Engine(tiny_model, tmp_path / "states", snapshots=2)
    try:
        engine.reply(HISTORY[0])
        engine.prepare(*HISTORY)
        engine.host.keep_states()  # the chat is left
        engine.host.call(lambda _engine: None, Priority.PREPARATION).result(TIMEOUT_S)
        assert engine.files.wait_until_written(TIMEOUT_S)
        for number in range(3):  # other chats push its states out of memory
            other = ChatMessage("user", f"Something else entirely, number {number}, " * 8)
            engine.reply(other)
            engine.prepare(other, ChatMessage("assistant", THINKING_ANSWER, THINKING_REASONING))
        stats = engine.reply(*HISTORY, FOLLOW_UP).stats
    finally:
        engine.close()
    assert stats.evaluated_prompt_tokens < 30 < stats.prompt_tokens - 150


def test_editing_the_last_question_after_a_restart_reads_only_the_edited_question(tiny_model: Path, tmp_path: Path) -> None:
    first = Engine(tiny_model, tmp_path / "states")
    first.reply(HISTORY[0])
    first.prepare(*HISTORY)
    first.reply(*HISTORY, FOLLOW_UP)
    first.prepare(*HISTORY, FOLLOW_UP, ChatMessage("assistant", THINKING_ANSWER, THINKING_REASONING))
    first.close()
    engine = Engine(tiny_model, tmp_path / "states")
    try:
        edited = ChatMessage("user", "And what about the seas?")
        stats = engine.reply(*HISTORY, edited).stats
    finally:
        engine.close()
    assert stats.evaluated_prompt_tokens <= len(edited.content) + 16 < stats.prompt_tokens - 150


class SlowDisk(StateFiles):
    """State files on a disk that takes its time: nothing is written until ``release`` is set."""

    def __init__(self, folder: Path) -> None:
        self.release = threading.Event()
        super().__init__(folder)

    def _write(self, *state) -> None:
        assert self.release.wait(TIMEOUT_S)
        super()._write(*state)


def _state_files(folder: Path) -> dict[str, bytes]:
    """Each state file's bytes, by its name (which names its model and tokens)."""
    return {file.name: file.read_bytes() for file in folder.glob("*.state")}


def test_a_state_being_written_is_written_as_it_was_kept_while_other_chats_go_on(tiny_model: Path, tmp_path: Path) -> None:
    # The writer reads a state where the engine keeps it; other chats meanwhile must not have
    # that memory for their own states, or the file would hold theirs under this chat's name.
    slow = SlowDisk(tmp_path / "slow")
    engine = Engine(tiny_model, tmp_path / "slow", snapshots=2, files=slow)
    try:
        engine.reply(HISTORY[0])
        engine.prepare(*HISTORY)
        engine.host.keep_states()  # the chat is left; its states wait for the disk
        engine.host.call(lambda _engine: None, Priority.PREPARATION).result(TIMEOUT_S)
        for number in range(3):  # other chats push them out of memory, and keep states of their own
            other = ChatMessage("user", f"Something else entirely, number {number}, " * 8)
            engine.reply(other)
            engine.prepare(other, ChatMessage("assistant", THINKING_ANSWER, THINKING_REASONING))
        slow.release.set()
    finally:
        engine.close()
    _chat_then_close(tiny_model, tmp_path / "reference", snapshots=2)  # the same chat, written at once
    written, reference = _state_files(tmp_path / "slow"), _state_files(tmp_path / "reference")
    assert reference and {name: written.get(name) for name in reference} == reference
