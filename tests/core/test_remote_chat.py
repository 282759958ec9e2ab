"""The chat session drives a model on a model server exactly as it drives a local one: turns,
history, faults, continue and regenerate; and the server's key stays in the keyring."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.core.chat.chat_events import (
    AnswerDelta,
    ConversationCreated,
    ConversationOpened,
    TurnFailed,
    TurnFinished,
    TurnWaitingForServer,
)
from app.core.chat.chat_session import ChatSession
from app.core.chat.chat_settings import ChatSettings
from app.core.conversations.conversation_export import export_all
from app.core.conversations.store_worker import StoreWorker
from app.core.domain.conversations import MessageState
from app.core.domain.generation import RemoteModel, StopReason
from app.core.engines.engine_events import ModelLoaded
from app.core.engines.llama.self_test_model import ENDLESS_CYCLE, THINKING_ANSWER, THINKING_REASONING
from tests.event_recorder import TIMEOUT_S, EventRecorder
from tests.model_server_fixtures import RemoteHost, ScriptedModelServer, free_port, serve_process


@dataclass
class RemoteChat:
    remote: RemoteHost
    worker: StoreWorker
    session: ChatSession
    events: EventRecorder

    def turn(self, text: str) -> TurnFinished:
        finished = len(self.events.of(TurnFinished))
        self.session.send(text)
        return self.events.wait_for(TurnFinished, count=finished + 1)

    def next_finished(self) -> TurnFinished:
        return self.events.wait_for(TurnFinished, count=len(self.events.of(TurnFinished)) + 1)

    def stored(self, conversation_id: int):
        return self.worker.submit(lambda store: store.messages(conversation_id)).result(TIMEOUT_S)


@pytest.fixture
def remote_chat(remote_host: RemoteHost, tmp_path: Path) -> Iterator[RemoteChat]:
    worker = StoreWorker(tmp_path / "conversations.sqlite3")
    session = ChatSession(worker, remote_host.host)
    events = EventRecorder()
    session.subscribe(events)
    session.open_conversation(None)
    events.wait_for(ConversationOpened)
    yield RemoteChat(remote_host, worker, session, events)
    session.shutdown()
    worker.shutdown()


def test_a_chat_with_a_model_on_our_own_serve_is_stored_like_a_local_one(
    remote_chat: RemoteChat, tiny_model: Path, tmp_path: Path
) -> None:
    with serve_process(tiny_model, tmp_path / "server-profile") as (_process, url):
        remote_chat.remote.add("Home server", url)
        assert isinstance(remote_chat.remote.load(RemoteModel("Home server", "tiny-thinking")), ModelLoaded)
        first = remote_chat.turn("Why is the sky blue?")
        second = remote_chat.turn("And at night?")
    conversation = remote_chat.events.wait_for(ConversationCreated).conversation
    assert conversation.model == "tiny-thinking"
    question, reply, follow_up, second_reply = remote_chat.stored(conversation.id)
    assert (reply.content, reply.reasoning, reply.state) == (THINKING_ANSWER, THINKING_REASONING, MessageState.COMPLETE)
    assert (first.reply, second.reply) == (reply, second_reply)
    assert remote_chat.events.wait_for(TurnWaitingForServer).server == "Home server"
    # The second turn sent the whole history, and the server reused what it had read for the first.
    assert 0 < second_reply.stats.evaluated_prompt_tokens < second_reply.stats.prompt_tokens


def test_a_server_that_dies_mid_reply_leaves_the_reply_interrupted_and_continue_works_once_it_is_back(
    remote_chat: RemoteChat, tiny_model: Path, tmp_path: Path
) -> None:
    port = free_port()
    profile = tmp_path / "server-profile"
    remote_chat.session.set_thinking(False)  # this model's plain replies go on until the limit
    remote_chat.session.update_settings(ChatSettings(max_tokens=3000), "")
    with serve_process(tiny_model, profile, "--context", "4096", port=port) as (process, url):
        remote_chat.remote.add("Home server", url)
        assert isinstance(remote_chat.remote.load(RemoteModel("Home server", "tiny-thinking")), ModelLoaded)
        remote_chat.session.send("Count for me")
        remote_chat.events.wait_for(AnswerDelta)
        process.kill()
        interrupted = remote_chat.next_finished().reply
    assert interrupted.state is MessageState.INTERRUPTED
    assert interrupted.error.startswith("The connection to Home server broke before the reply was complete")
    assert interrupted.stats.stop_reason is StopReason.CONNECTION_LOST
    kept = interrupted.content
    assert kept and ENDLESS_CYCLE.startswith(kept[: len(ENDLESS_CYCLE)])  # what came is kept
    stored = remote_chat.stored(interrupted.conversation_id)[-1]
    assert (stored.content, stored.state, stored.error) == (kept, MessageState.INTERRUPTED, interrupted.error)

    remote_chat.session.continue_reply(interrupted.id)  # the server is still down: one sentence, nothing lost
    failed = remote_chat.events.wait_for(TurnFailed)
    assert failed.message.startswith("Home server cannot be reached")
    still = remote_chat.stored(interrupted.conversation_id)[-1]
    assert (still.content, still.state, still.error, still.stats) == (kept, MessageState.INTERRUPTED, interrupted.error, interrupted.stats)

    remote_chat.session.update_settings(ChatSettings(max_tokens=len(kept) + 40), "")
    with serve_process(tiny_model, profile, "--context", "4096", port=port):  # back, at the same address
        remote_chat.session.continue_reply(interrupted.id)
        continued = remote_chat.next_finished().reply
        assert continued.id == interrupted.id and continued.state is MessageState.COMPLETE and continued.error is None
        assert continued.content.startswith(kept) and len(continued.content) > len(kept)
        remote_chat.session.regenerate(interrupted.id)
        regenerated = remote_chat.next_finished().reply
    assert regenerated.id != interrupted.id and regenerated.state is MessageState.COMPLETE


def test_the_servers_key_never_reaches_logs_the_conversation_file_or_exports(
    remote_chat: RemoteChat, scripted_server: ScriptedModelServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = "sk-the-secret-key-0123456789"
    scripted_server.script.required_key = key
    caplog.set_level(logging.DEBUG)
    remote_chat.remote.add("Desktop", scripted_server.url, key=key)
    assert isinstance(remote_chat.remote.load(RemoteModel("Desktop", "big-model")), ModelLoaded)
    finished = remote_chat.turn("Hello?")
    assert finished.reply.content == "Hello from the server."
    assert scripted_server.headers[-1]["authorization"] == f"Bearer {key}"  # it was sent, to the server only
    scripted_server.script.required_key = "another-key"
    remote_chat.session.regenerate(finished.reply.id)
    assert remote_chat.events.wait_for(TurnFailed).message == "Desktop refused the key: check the key set for this server."

    exported, _count = remote_chat.worker.submit(export_all).result(TIMEOUT_S)
    remote_chat.session.shutdown()
    remote_chat.worker.shutdown()
    assert key not in caplog.text and key not in exported
    for file in tmp_path.rglob("*"):
        if file.is_file():
            assert key.encode() not in file.read_bytes(), file
