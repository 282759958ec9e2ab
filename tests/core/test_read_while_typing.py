"""Reading the next message while it is typed: sending it leaves only what was not certain yet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.chat.chat_events import ConversationOpened, MessageAdded, NextTurnPrepared, TurnFinished
from app.core.chat.chat_session import ChatSession
from app.core.chat.chat_settings import ChatSettings
from app.core.conversations.store_worker import StoreWorker
from app.core.domain.generation import LoadSettings
from app.core.engines.engine_events import ModelLoaded
from app.core.engines.engine_host import EngineHost, Priority
from app.core.engines.llama.llama_engine import LlamaEngine
from tests.event_recorder import TIMEOUT_S, EventRecorder

QUESTION = "What about the rivers in the north of the country"


class Chat:
    def __init__(self, model: Path, folder: Path, *, thinking: bool) -> None:
        self.worker = StoreWorker(folder / "conversations.sqlite3")
        self.host = EngineHost(LlamaEngine)
        loaded = EventRecorder()
        self.host.subscribe(loaded)
        self.host.load_model(model, LoadSettings(context_size=2048))
        loaded.wait_for(ModelLoaded)
        self.battery = False  # whether the computer runs on its battery, as the session sees it
        self.session = ChatSession(self.worker, self.host, on_battery=lambda: self.battery)
        self.events = EventRecorder()
        self.session.subscribe(self.events)
        self.session.open_conversation(None)
        self.events.wait_for(ConversationOpened)
        self.set_thinking(thinking)

    def set_thinking(self, thinking: bool) -> None:
        self.thinking = thinking
        self.session.set_thinking(thinking)
        self.session.update_settings(ChatSettings(max_tokens=8, enable_thinking=thinking), "")

    def turn(self, text: str) -> TurnFinished:
        finished = len(self.events.of(TurnFinished))
        self.session.send(text)
        return self.events.wait_for(TurnFinished, count=finished + 1)

    def idle(self) -> None:
        """Until the session has handled what it was told (its jobs run on the store worker)
        and the engine has done what that queued, preparations included."""
        self.worker.submit(lambda _store: None).result(TIMEOUT_S)
        self.host.call(lambda _engine: None, Priority.PREPARATION).result(TIMEOUT_S)

    def typed(self, text: str, *, replacing: int | None = None) -> None:
        prepared = len(self.events.of(NextTurnPrepared))
        self.session.read_while_typing(text, replacing=replacing)
        self.events.wait_for(NextTurnPrepared, count=prepared + 1)

    def edit(self, question_id: int, text: str) -> TurnFinished:
        finished = len(self.events.of(TurnFinished))
        self.session.edit_and_resend(question_id, text)
        return self.events.wait_for(TurnFinished, count=finished + 1)

    def first_question(self) -> int:
        return next(event.message.id for event in self.events.of(MessageAdded) if event.message.role == "user")

    def close(self) -> None:
        self.session.shutdown()
        self.host.shutdown()
        self.worker.shutdown()


@pytest.fixture(params=[True, False], ids=["thinking", "not thinking"])
def chats(request, tiny_model: Path, tmp_path: Path) -> Iterator[tuple[Chat, Chat]]:
    """Two chats with one turn each, the next one prepared: one to type in, one to compare."""
    pair = []
    for name in ("typing", "sending"):
        (tmp_path / name).mkdir()
        chat = Chat(tiny_model, tmp_path / name, thinking=request.param)
        chat.turn("Tell me about rivers")
        chat.idle()
        pair.append(chat)
    yield pair[0], pair[1]
    for chat in pair:
        chat.close()


def test_a_message_read_while_it_was_typed_leaves_only_its_last_words_to_evaluate(chats: tuple[Chat, Chat]) -> None:
    typing, sending = chats
    for length in (10, 30, len(QUESTION)):  # pauses while typing
        typing.typed(QUESTION[:length])
    read_first = typing.turn(QUESTION + "?").reply.stats.evaluated_prompt_tokens
    sent_only = sending.turn(QUESTION + "?").reply.stats.evaluated_prompt_tokens
    assert sent_only > len(QUESTION)  # the tiny model's tokens are mostly bytes
    # Most of the question was read ahead: what is left is its last words (those a further
    # keystroke could still merge into other tokens), the "?" and the template's markup.
    assert sent_only - read_first >= len(QUESTION) * 2 // 3


def test_an_edit_behind_what_was_read_starts_again_from_the_messages_start(chats: tuple[Chat, Chat]) -> None:
    typing, sending = chats
    typing.typed("Tell me about cats and their habits")
    edited = typing.turn("Tell me about dogs").reply.stats
    sent = sending.turn("Tell me about dogs").reply.stats
    # Nothing read for the draft is used: the whole new text is evaluated, from the state at
    # the message's start, exactly as in the chat that never read a draft.
    assert edited.evaluated_prompt_tokens == sent.evaluated_prompt_tokens
    assert edited.prompt_tokens == sent.prompt_tokens


def test_switched_off_nothing_is_read_before_the_message_is_sent(chats: tuple[Chat, Chat]) -> None:
    typing, sending = chats
    typing.session.set_read_while_typing(False)
    typing.session.read_while_typing(QUESTION)
    typing.idle()
    assert typing.turn(QUESTION + "?").reply.stats.evaluated_prompt_tokens == (
        sending.turn(QUESTION + "?").reply.stats.evaluated_prompt_tokens
    )


def test_a_message_sent_as_it_was_at_the_last_pause_starts_its_reply_without_evaluating(chats: tuple[Chat, Chat]) -> None:
    typing, sending = chats
    typing.typed(QUESTION)
    read_whole = typing.turn(QUESTION).reply
    sent = sending.turn(QUESTION).reply
    assert read_whole.stats.evaluated_prompt_tokens == 0
    assert (read_whole.content, read_whole.reasoning) == (sent.content, sent.reasoning)  # the same reply


def test_typing_on_after_a_pause_goes_on_from_what_was_certain(chats: tuple[Chat, Chat]) -> None:
    typing, sending = chats
    typing.typed(QUESTION[:30])  # read as if sent, then typing goes on
    read_first = typing.turn(QUESTION + "?").reply.stats.evaluated_prompt_tokens
    sent_only = sending.turn(QUESTION + "?").reply.stats.evaluated_prompt_tokens
    assert read_first <= sent_only - 15  # the first 30 characters (less their last word) were kept


def test_a_message_read_whole_and_sent_after_a_settings_change_is_read_as_the_new_settings_make_it(
    chats: tuple[Chat, Chat],
) -> None:
    typing, sending = chats
    typing.typed(QUESTION)
    for chat in (typing, sending):
        chat.set_thinking(not chat.thinking)
    read_before = typing.turn(QUESTION).reply
    sent = sending.turn(QUESTION).reply
    assert read_before.stats.prompt_tokens == sent.stats.prompt_tokens  # the other template's prompt
    assert read_before.stats.evaluated_prompt_tokens > 0
    assert (read_before.content, read_before.reasoning) == (sent.content, sent.reasoning)


def test_an_edited_question_read_while_it_was_typed_leaves_only_its_last_words_to_evaluate(
    chats: tuple[Chat, Chat],
) -> None:
    typing, sending = chats
    typing.typed(QUESTION, replacing=typing.first_question())
    edited = typing.edit(typing.first_question(), QUESTION + "?").reply
    sent = sending.edit(sending.first_question(), QUESTION + "?").reply
    assert sent.stats.evaluated_prompt_tokens - edited.stats.evaluated_prompt_tokens >= len(QUESTION) * 2 // 3
    assert (edited.content, edited.reasoning) == (sent.content, sent.reasoning)


def test_on_battery_nothing_is_read_before_the_message_is_sent_unless_allowed(chats: tuple[Chat, Chat]) -> None:
    typing, sending = chats
    typing.battery = True
    typing.session.read_while_typing(QUESTION)
    typing.idle()
    on_battery = typing.turn(QUESTION + "?").reply.stats.evaluated_prompt_tokens
    assert on_battery == sending.turn(QUESTION + "?").reply.stats.evaluated_prompt_tokens

    typing.session.set_read_while_typing(True, on_battery=True)
    typing.typed(QUESTION)
    allowed = typing.turn(QUESTION + "?").reply.stats.evaluated_prompt_tokens
    assert allowed <= on_battery - len(QUESTION) * 2 // 3
