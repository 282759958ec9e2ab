"""Which stored messages a reply is asked with: the rules, without an engine or a store."""

from __future__ import annotations

from pathlib import Path

from app.core.chat import prompt_assembly
from app.core.chat.chat_settings import ChatSettings
from app.core.domain.conversations import Message, MessageState
from app.core.domain.generation import ChatMessage, GenerationStats, ModelFacts, SamplingSettings, StopReason

LIMIT = GenerationStats(10, 10, 16, 0.1, 20.0, StopReason.MAX_TOKENS)
DONE = GenerationStats(10, 10, 3, 0.1, 20.0, StopReason.END_OF_TURN)


def _message(message_id: int, role: str, content: str, state=MessageState.COMPLETE, *, reasoning="", stats=None) -> Message:
    return Message(message_id, 1, role, content, reasoning, state, 0.0, stats, None, message_id - 1 or None)


def _facts(thinks_by_default: bool) -> ModelFacts:
    return ModelFacts(Path("m.gguf"), "m", "qwen35", "", 0, 0, 4096, 4096, "", thinks_by_default, "CPU", 0, 2, 256)


def test_the_prompt_is_the_system_prompt_then_every_turn_that_said_something() -> None:
    path = [
        _message(1, "user", "Hi"),
        _message(2, "assistant", "Hello!", reasoning="greet back"),
        _message(3, "user", "Again"),
        _message(4, "assistant", "out of memory", MessageState.FAILED),
        _message(5, "assistant", "", MessageState.STOPPED),
        _message(6, "user", ""),
        _message(7, "assistant", "Half a", MessageState.STOPPED),
    ]
    messages, ids = prompt_assembly.prompt_messages("Be brief.", path)
    assert messages == [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Hello!", "greet back"),
        ChatMessage("user", "Again"),
        ChatMessage("user", ""),  # questions always go, so the turns still alternate
        ChatMessage("assistant", "Half a"),  # a stopped reply that said something is history
    ]
    assert ids == [1, 2, 3, 6, 7]


def test_a_blank_system_prompt_is_left_out() -> None:
    messages, _ = prompt_assembly.prompt_messages("  \n", [_message(1, "user", "Hi")])
    assert messages == [ChatMessage("user", "Hi")]


def test_thinking_follows_the_chat_then_the_model_then_yes() -> None:
    assert prompt_assembly.thinking_enabled(ChatSettings(), _facts(thinks_by_default=False)) is False
    assert prompt_assembly.thinking_enabled(ChatSettings(), _facts(thinks_by_default=True)) is True
    assert prompt_assembly.thinking_enabled(ChatSettings(enable_thinking=True), _facts(thinks_by_default=False))
    assert prompt_assembly.thinking_enabled(ChatSettings(), None) is True


def test_the_request_uses_the_preset_for_the_mode_and_the_reply_limit() -> None:
    history = [ChatMessage("user", "Hi")]
    request = prompt_assembly.reply_request(history, ChatSettings(max_tokens=100), thinking=True)
    assert request.sampling == SamplingSettings.for_mode(thinking=True, max_tokens=100)
    assert request.enable_thinking and request.messages == tuple(history) and request.continuation is None
    plain = prompt_assembly.reply_request(history, ChatSettings(), thinking=False)
    assert plain.sampling == SamplingSettings.for_mode(thinking=False)


def test_a_continued_reply_carries_what_it_already_said() -> None:
    reply = _message(2, "assistant", "Once upon", reasoning="a story", stats=LIMIT)
    request = prompt_assembly.reply_request([ChatMessage("user", "Tell")], ChatSettings(), thinking=True, continuation=reply)
    assert request.continuation == ChatMessage("assistant", "Once upon", "a story")


def test_only_the_last_reply_stopped_at_its_limit_can_be_continued() -> None:
    stopped = _message(2, "assistant", "Once upon", stats=LIMIT)
    path = [_message(1, "user", "Tell"), stopped]
    assert prompt_assembly.can_continue(path, 2)
    assert not prompt_assembly.can_continue([*path, _message(3, "user", "More")], 2)
    assert not prompt_assembly.can_continue([_message(1, "user", "Tell"), _message(2, "assistant", "The end.", stats=DONE)], 2)
    assert not prompt_assembly.can_continue([], 2)


def test_a_title_is_the_first_words_on_one_line() -> None:
    assert prompt_assembly.title_from("Plan a\ntrip   to Lisbon") == "Plan a trip to Lisbon"
    long = prompt_assembly.title_from("word " * 30)
    assert len(long) == prompt_assembly.TITLE_LENGTH and long.endswith("…")
