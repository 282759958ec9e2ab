"""The chat session, driven without Qt: a real store worker, a real engine host, the tiny model."""

from __future__ import annotations

from dataclasses import dataclass
import threading
from pathlib import Path

import pytest

from app.core.chat.chat_events import (
    AnswerDelta,
    ChatSettingsChanged,
    ConversationCreated,
    ConversationOpened,
    MessageAdded,
    NextTurnPrepared,
    PromptProgress,
    ReasoningDelta,
    TurnFailed,
    TurnFinished,
    TurnRefused,
    TurnStarted,
)
from app.core.chat.chat_session import ChatSession
from app.core.chat.chat_settings import ChatSettings
from app.core.conversations.store_worker import StoreWorker
from app.core.domain.conversations import MAX_MESSAGE_CHARACTERS, MessageState
from app.core.domain.generation import ChatMessage, LoadSettings, StopReason
from app.core.engines.engine_events import ModelLoaded
from app.core.engines.engine_host import EngineHost
from app.core.engines.llama.llama_engine import LlamaEngine
from app.core.engines.llama.self_test_model import CONTEXT_LENGTH, ENDLESS_CYCLE, THINKING_ANSWER, THINKING_REASONING
from tests.event_recorder import TIMEOUT_S, EventRecorder


@dataclass
class Chat:
    worker: StoreWorker
    host: EngineHost
    session: ChatSession
    events: EventRecorder

    def stored(self, conversation_id: int):
        return self.worker.submit(lambda store: store.messages(conversation_id)).result(TIMEOUT_S)

    def tree(self, conversation_id: int):
        return self.worker.submit(lambda store: store.conversation_tree(conversation_id)).result(TIMEOUT_S)

    def turn(self, text: str) -> TurnFinished:
        """Sends ``text`` and waits for its reply to end."""
        finished = len(self.events.of(TurnFinished))
        self.session.send(text)
        return self.events.wait_for(TurnFinished, count=finished + 1)

    def next_finished(self) -> TurnFinished:
        return self.events.wait_for(TurnFinished, count=len(self.events.of(TurnFinished)) + 1)

    def prompt_tokens(self, messages: list[ChatMessage], *, thinking: bool) -> int:
        """The length of the prompt the model's template makes of ``messages``."""
        return self.host.call(
            lambda engine: len(engine.tokenize(engine.render_prompt(messages, enable_thinking=thinking)))
        ).result(TIMEOUT_S)


def _start(tmp_path: Path, model: Path | None, *, projector: Path | None = None, context: int = CONTEXT_LENGTH) -> Chat:
    worker = StoreWorker(tmp_path / "conversations.sqlite3")
    host = EngineHost(LlamaEngine)
    if model is not None:
        models = EventRecorder()
        host.subscribe(models)
        host.load_model(model, LoadSettings(context_size=context, projector=projector))
        models.wait_for(ModelLoaded)
    session = ChatSession(worker, host)
    events = EventRecorder()
    session.subscribe(events)
    session.open_conversation(None)
    events.wait_for(ConversationOpened)
    return Chat(worker, host, session, events)


def _stop(chat: Chat) -> None:
    chat.session.shutdown()
    chat.host.shutdown()
    chat.worker.shutdown()


@pytest.fixture
def chat(tmp_path: Path, tiny_model: Path):
    chat = _start(tmp_path, tiny_model)
    yield chat
    _stop(chat)


def _plain(chat: Chat, max_tokens: int) -> None:
    """Thinking off (this model's plain replies never end) and a reply limit."""
    chat.session.set_thinking(False)
    chat.session.update_settings(ChatSettings(max_tokens=max_tokens), "")


def test_a_turn_stores_the_question_and_the_reply_it_streams(chat: Chat) -> None:
    finished = chat.turn("Why is the sky blue?")

    created = chat.events.wait_for(ConversationCreated).conversation
    assert created.title == "Why is the sky blue?" and created.model
    question, reply = chat.stored(created.id)
    assert (question.role, question.content) == ("user", "Why is the sky blue?")
    assert (reply.content, reply.reasoning, reply.state) == (THINKING_ANSWER, THINKING_REASONING, MessageState.COMPLETE)
    assert finished.reply == reply and reply.stats.stop_reason is StopReason.END_OF_TURN
    streamed = [event for event in chat.events.events if isinstance(event, (ReasoningDelta, AnswerDelta))]
    assert "".join(event.text for event in streamed if isinstance(event, ReasoningDelta)) == THINKING_REASONING
    assert "".join(event.text for event in streamed if isinstance(event, AnswerDelta)) == THINKING_ANSWER
    assert {event.message_id for event in streamed} == {reply.id}


def test_a_turns_events_come_in_order(chat: Chat) -> None:
    chat.events.clear()
    chat.turn("Hello")
    kinds = [type(event) for event in chat.events.events]
    started, finished = kinds.index(TurnStarted), kinds.index(TurnFinished)
    assert kinds[: started + 1] == [ConversationCreated, MessageAdded, MessageAdded, TurnStarted]
    assert set(kinds[started + 1 : finished]) == {PromptProgress, ReasoningDelta, AnswerDelta}
    assert kinds.index(PromptProgress) < kinds.index(ReasoningDelta)
    assert not {ReasoningDelta, AnswerDelta, PromptProgress} & set(kinds[finished:])


def test_failed_and_empty_replies_are_not_sent_to_the_model(chat: Chat) -> None:
    def write(store) -> int:
        conversation = store.create_conversation(title="Earlier")
        store.add_message(conversation.id, "user", "First question")
        store.add_message(conversation.id, "assistant", "llama.cpp failed", state=MessageState.FAILED)
        store.add_message(conversation.id, "user", "Second question")
        store.add_message(conversation.id, "assistant", "", state=MessageState.STOPPED)
        return conversation.id

    conversation_id = chat.worker.submit(write).result(TIMEOUT_S)
    chat.session.open_conversation(conversation_id)
    finished = chat.turn("Third question")

    expected = [ChatMessage("user", text) for text in ("First question", "Second question", "Third question")]
    assert finished.reply.stats.prompt_tokens == chat.prompt_tokens(expected, thinking=True)


def test_regenerating_keeps_the_earlier_reply_as_an_alternative(chat: Chat) -> None:
    _plain(chat, 16)
    first = chat.turn("Count").reply
    chat.session.update_settings(ChatSettings(max_tokens=20), "")
    chat.session.regenerate(first.id)
    second = chat.next_finished().reply

    assert (first.content, second.content) == ((ENDLESS_CYCLE * 7)[:16], (ENDLESS_CYCLE * 7)[:20])
    shown = chat.events.of(ConversationOpened)[-1].view
    assert [message.id for message in shown.messages][-1] == second.id
    assert shown.alternative_position(second.id) == (1, 2)
    assert [m.content for m in chat.tree(first.conversation_id).messages] == ["Count", first.content, second.content]


def test_editing_a_question_asks_the_new_one_and_keeps_the_old_branch(chat: Chat) -> None:
    first = chat.turn("First question").reply
    chat.turn("Second question")
    question_id = chat.stored(first.conversation_id)[0].id
    chat.session.edit_and_resend(question_id, "Better first question")
    chat.next_finished()

    assert [m.content for m in chat.stored(first.conversation_id)] == ["Better first question", THINKING_ANSWER]
    assert len(chat.tree(first.conversation_id).messages) == 6
    shown = chat.events.of(ConversationOpened)[-1].view
    assert shown.alternative_position(shown.messages[0].id) == (1, 2)


def test_a_reply_stopped_at_its_limit_is_continued_in_the_same_message(chat: Chat) -> None:
    _plain(chat, 16)
    reply = chat.turn("Count").reply
    assert reply.stats.stop_reason is StopReason.MAX_TOKENS
    chat.session.continue_last_reply()
    continued = chat.next_finished().reply

    assert continued.id == reply.id and continued.content == (ENDLESS_CYCLE * 12)[:32]
    assert len(chat.stored(reply.conversation_id)) == 2


def test_only_a_reply_stopped_at_its_limit_can_be_continued(chat: Chat) -> None:
    reply = chat.turn("Why?").reply  # ended by itself
    chat.session.continue_reply(reply.id)
    refused = chat.events.wait_for(TurnRefused)
    assert "length limit" in refused.reason
    assert chat.stored(reply.conversation_id)[-1] == reply


def test_a_message_longer_than_the_limit_is_refused_and_given_back_unstored(chat: Chat) -> None:
    text = "x" * (MAX_MESSAGE_CHARACTERS + 1)
    chat.session.send(text)
    refused = chat.events.wait_for(TurnRefused)
    assert f"at most {MAX_MESSAGE_CHARACTERS:,}" in refused.reason and refused.text == text
    assert not chat.events.of(ConversationCreated)


def test_stop_ends_the_reply_as_stopped_and_keeps_its_text(chat: Chat) -> None:
    _plain(chat, 100_000)
    chat.session.send("Count forever")
    chat.events.wait_for(AnswerDelta, count=3)
    chat.session.stop()
    reply = chat.next_finished().reply

    assert reply.state is MessageState.STOPPED and reply.stats.stop_reason is StopReason.CANCELLED
    assert reply.content and (ENDLESS_CYCLE * len(reply.content)).startswith(reply.content)
    assert chat.stored(reply.conversation_id)[-1] == reply


def test_stop_right_after_send_still_stops_that_reply(chat: Chat) -> None:
    _plain(chat, 100_000)
    chat.session.send("Count forever")
    chat.session.stop()  # before the session has even started the turn
    reply = chat.next_finished().reply
    assert reply.state is MessageState.STOPPED


def test_closing_mid_reply_keeps_it_as_interrupted(tmp_path: Path, tiny_model: Path) -> None:
    chat = _start(tmp_path, tiny_model)
    _plain(chat, 100_000)
    chat.session.send("Count forever")
    chat.events.wait_for(AnswerDelta)
    _stop(chat)  # the order the app shuts down in

    reply = chat.events.wait_for(TurnFinished).reply
    assert reply.state is MessageState.INTERRUPTED and reply.content.startswith(ENDLESS_CYCLE[:1])
    reopened = StoreWorker(tmp_path / "conversations.sqlite3")
    try:
        stored = reopened.submit(lambda store: store.get_message(reply.id)).result(TIMEOUT_S)
    finally:
        reopened.shutdown()
    assert stored == reply


def test_the_next_turn_is_prepared_so_a_follow_up_evaluates_only_itself(chat: Chat) -> None:
    chat.turn("A long opening question about many things. " * 10)
    assert chat.events.wait_for(NextTurnPrepared).evaluated_tokens > 0

    stats = chat.turn("And then?").reply.stats
    new_part = "And then?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    assert stats.evaluated_prompt_tokens == chat.host.call(lambda engine: len(engine.tokenize(new_part))).result(TIMEOUT_S)
    assert stats.prompt_tokens > 10 * stats.evaluated_prompt_tokens


def test_a_new_turn_cancels_the_preparation_of_the_last_one(chat: Chat) -> None:
    chat.session.send("A long opening question about many things. " * 10)
    chat.events.wait_for(TurnStarted)
    release = threading.Event()
    chat.host.call(lambda _engine: release.wait(TIMEOUT_S))  # runs after this reply, before its preparation
    chat.events.wait_for(TurnFinished)
    chat.session.send("And then?")
    chat.events.wait_for(TurnStarted, count=2)
    release.set()
    second = chat.events.wait_for(TurnFinished, count=2).reply

    assert chat.events.wait_for(NextTurnPrepared).evaluated_tokens == 0  # cancelled before it began
    assert second.content == THINKING_ANSWER
    assert chat.events.wait_for(NextTurnPrepared, count=2).evaluated_tokens > 0  # the new one's


def test_without_a_model_the_message_is_refused_and_given_back(tmp_path: Path) -> None:
    chat = _start(tmp_path, None)
    try:
        chat.session.send("Hello?")
        refused = chat.events.wait_for(TurnRefused)
        assert (refused.reason, refused.text) == ("Open a model to start chatting.", "Hello?")
        assert chat.worker.submit(lambda store: store.list_conversations()).result(TIMEOUT_S) == []
    finally:
        _stop(chat)


def test_a_second_message_while_a_reply_is_written_is_refused_and_given_back(chat: Chat) -> None:
    _plain(chat, 100_000)
    chat.session.send("Count forever")
    chat.events.wait_for(AnswerDelta)
    chat.session.send("And this?")
    refused = chat.events.wait_for(TurnRefused)
    assert refused.text == "And this?" and "still being written" in refused.reason
    chat.session.stop()
    conversation_id = chat.next_finished().reply.conversation_id
    assert [m.content for m in chat.stored(conversation_id)][0] == "Count forever"
    assert len(chat.stored(conversation_id)) == 2


def test_opening_another_chat_stops_the_reply_and_shows_that_chat(chat: Chat) -> None:
    chat.turn("Old chat")
    old_id = chat.events.wait_for(ConversationCreated).conversation.id
    chat.session.open_conversation(None)
    _plain(chat, 100_000)
    chat.session.send("Count forever")
    chat.events.wait_for(AnswerDelta)
    chat.session.open_conversation(old_id)

    stopped = chat.next_finished().reply
    shown = chat.events.of(ConversationOpened)[-1].view
    assert stopped.state is MessageState.STOPPED
    assert shown.conversation.id == old_id and [m.content for m in shown.messages] == ["Old chat", THINKING_ANSWER]


def test_thinking_and_settings_belong_to_each_chat(chat: Chat) -> None:
    chat.session.set_thinking(False)
    chat.session.update_settings(ChatSettings(max_tokens=16), "Answer like a pirate.")
    plain = chat.turn("Plain one").reply
    chat.session.open_conversation(None)
    chat.session.set_thinking(True)
    thinking = chat.turn("Thinking one").reply

    chat.session.open_conversation(plain.conversation_id)
    shown = chat.events.wait_for(ConversationOpened, lambda e: e.view.conversation and e.view.conversation.id == plain.conversation_id)
    settings = chat.events.of(ChatSettingsChanged)[-1]
    assert shown is not None and (settings.thinking, settings.system_prompt) == (False, "Answer like a pirate.")
    assert settings.settings.max_tokens == 16
    assert plain.content == (ENDLESS_CYCLE * 6)[:16] and thinking.content == THINKING_ANSWER


def test_deleting_a_message_and_switching_versions_show_the_new_branch(chat: Chat) -> None:
    _plain(chat, 8)
    first = chat.turn("Count").reply
    chat.session.regenerate(first.id)
    second = chat.next_finished().reply
    shown_before = len(chat.events.of(ConversationOpened))
    chat.session.switch_alternative(second.id, -1)
    shown = chat.events.wait_for(ConversationOpened, count=shown_before + 1)
    assert shown.view.messages[-1].id == first.id and shown.view.alternative_position(first.id) == (0, 2)

    chat.session.delete_message(first.id)
    after = chat.events.wait_for(ConversationOpened, count=shown_before + 2)
    assert after.view.messages[-1].id == second.id
    assert after.view.alternatives == {}


def test_a_reply_that_cannot_be_written_is_stored_as_failed_with_the_reason(chat: Chat) -> None:
    chat.session.send("lorem ipsum " * CONTEXT_LENGTH)  # far more than the context holds
    failed = chat.events.wait_for(TurnFailed)
    assert "too long for this model's context window" in failed.message
    assert failed.reply.state is MessageState.FAILED and failed.reply.error == failed.message
    assert chat.stored(failed.reply.conversation_id)[-1] == failed.reply
