"""Chats with pictures through the chat session, the store and the real engine with its projector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.chat.chat_events import (
    ConversationCreated,
    ConversationOpened,
    ImageReading,
    NextTurnPrepared,
    TurnFinished,
    TurnRefused,
)
from app.core.chat.chat_settings import ChatSettings
from app.core.chat.prompt_assembly import reply_request
from app.core.conversations import conversation_export
from app.core.domain.conversations import ImagePart
from app.core.domain.generation import NO_PROJECTOR_MESSAGE, ChatMessage, SamplingSettings
from app.core.images.image_intake import prepare_image
from tests.core.test_chat_session import Chat, _stop
from tests.core.test_chat_session import _start as start_chat
from tests.event_recorder import TIMEOUT_S
from tests.vision_fixtures import chat_image, picture_bytes


def _start(tmp_path: Path, model: Path, projector: Path | None) -> Chat:
    chat = start_chat(tmp_path, model, projector=projector, context=4096)
    chat.session.update_settings(ChatSettings(max_tokens=4), "")
    return chat


@pytest.fixture
def chat(tmp_path: Path, tiny_model_quiet: Path, tiny_projector: Path):
    chat = _start(tmp_path, tiny_model_quiet, tiny_projector)
    yield chat
    _stop(chat)


def _send(chat: Chat, text: str, images=()) -> TurnFinished:
    finished = len(chat.events.of(TurnFinished))
    chat.session.send(text, images)
    return chat.events.wait_for(TurnFinished, count=finished + 1)


def test_a_question_with_a_picture_keeps_the_picture_once_and_gets_a_reply(chat: Chat, tmp_path: Path) -> None:
    picture = prepare_image(picture_bytes())
    finished = _send(chat, "What is this?", [picture])

    conversation = chat.events.wait_for(ConversationCreated).conversation
    question, reply = chat.stored(conversation.id)
    assert question.parts == (ImagePart(picture.sha256, picture.media_type),)
    assert (tmp_path / "images" / picture.sha256).read_bytes() == picture.data
    assert reply.content and finished.reply.stats.prompt_tokens > 300
    readings = chat.events.of(ImageReading)
    assert readings and {event.message_id for event in readings} == {reply.id} and readings[-1].fraction == 1.0

    _send(chat, "Again, the same picture", [picture])
    assert [path.name for path in (tmp_path / "images").iterdir()] == [picture.sha256]


def test_a_follow_up_about_a_picture_does_not_read_it_again(chat: Chat) -> None:
    _send(chat, "What is this?", [prepare_image(picture_bytes())])
    chat.events.clear()
    follow_up = _send(chat, "And its colour?")
    assert chat.events.of(ImageReading) == []
    assert follow_up.reply.stats.evaluated_prompt_tokens < 60 < 300 < follow_up.reply.stats.prompt_tokens


def test_a_picture_attached_is_read_while_its_question_is_typed(chat: Chat) -> None:
    picture = prepare_image(picture_bytes())
    chat.session.read_while_typing("", [picture])  # attached, nothing typed yet
    assert chat.events.wait_for(NextTurnPrepared).evaluated_tokens > 300
    chat.events.clear()
    asked = _send(chat, "What is this?", [picture])
    assert chat.events.of(ImageReading) == []  # read before Enter
    assert asked.reply.stats.evaluated_prompt_tokens < 60 < 300 < asked.reply.stats.prompt_tokens


def test_a_picture_alone_makes_a_question_and_names_the_chat(chat: Chat) -> None:
    _send(chat, "", [prepare_image(picture_bytes())])
    assert chat.events.wait_for(ConversationCreated).conversation.title == "Image"


def test_editing_a_question_keeps_its_picture(chat: Chat) -> None:
    picture = prepare_image(picture_bytes())
    first = _send(chat, "What is this?", [picture])
    conversation = chat.events.wait_for(ConversationCreated).conversation
    question_id = chat.stored(conversation.id)[0].id
    chat.events.clear()

    chat.session.edit_and_resend(question_id, "Which shapes do you see?")
    edited = chat.events.wait_for(TurnFinished)

    question = chat.stored(conversation.id)[0]
    assert question.content == "Which shapes do you see?" and question.parts == (ImagePart(picture.sha256, picture.media_type),)
    assert chat.events.of(ImageReading) == []  # the state after the picture was kept
    assert edited.reply.stats.evaluated_prompt_tokens < 60 < 300 < first.reply.stats.evaluated_prompt_tokens


def test_a_model_without_its_projector_refuses_pictures_and_keeps_nothing(tmp_path: Path, tiny_model_quiet: Path) -> None:
    chat = _start(tmp_path, tiny_model_quiet, None)
    try:
        chat.session.send("What is this?", [prepare_image(picture_bytes())])
        refusal = chat.events.wait_for(TurnRefused)
        assert refusal.reason == NO_PROJECTOR_MESSAGE and refusal.text == "What is this?"
        assert chat.events.of(ConversationCreated) == []
        assert not (tmp_path / "images").exists() or not any((tmp_path / "images").iterdir())
    finally:
        _stop(chat)


def test_a_chat_with_a_picture_survives_a_restart_and_travels_in_an_export(chat: Chat, tmp_path: Path, tiny_model_quiet: Path, tiny_projector: Path) -> None:
    picture = prepare_image(picture_bytes())
    _send(chat, "What is this?", [picture])
    conversation = chat.events.wait_for(ConversationCreated).conversation
    exported = chat.worker.submit(lambda store: conversation_export.export_conversation(store, conversation.id, "json")).result(TIMEOUT_S)
    _stop(chat)

    image_part = json.loads(exported)["messages"][0]["parts"][0]
    assert (image_part["type"], image_part["sha256"]) == ("image", picture.sha256)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = _start(elsewhere, tiny_model_quiet, tiny_projector)
    try:
        imported = other.worker.submit(lambda store: conversation_export.import_conversations(store, exported)).result(TIMEOUT_S)
        assert (elsewhere / "images" / picture.sha256).read_bytes() == picture.data
        other.session.open_conversation(imported.stored[0].id)
        other.events.wait_for(ConversationOpened)
        follow_up = _send(other, "And now?")
        assert other.events.of(ImageReading), "the picture is shown to the model in the imported chat too"
        assert follow_up.reply.stats.prompt_tokens > 300
    finally:
        _stop(other)


def test_the_vision_preset_applies_to_pictures_when_the_preset_is_automatic() -> None:
    history = [ChatMessage("user", "What is this?", images=(chat_image(64, 64),))]
    vision = reply_request(history, ChatSettings(), thinking=False).sampling
    assert (vision.temperature, vision.top_p, vision.top_k, vision.presence_penalty) == (0.7, 0.8, 20, 1.5)
    assert reply_request(history, ChatSettings(), thinking=True).sampling == SamplingSettings.for_mode(thinking=True)
    assert reply_request([ChatMessage("user", "Hi")], ChatSettings(), thinking=False).sampling.temperature == 1.0
    chosen = ChatSettings(preset="", temperature=0.2)
    assert reply_request(history, chosen, thinking=False).sampling.temperature == 0.2
