"""Fitting a conversation into the context window, measured in words instead of tokens."""

from __future__ import annotations

import pytest

from app.core.domain.generation import ChatMessage, PromptTooLongError
from app.core.engines.context_window import fit_to_context


def _words(messages: list[ChatMessage]) -> int:
    return sum(len(message.content.split()) for message in messages)


SYSTEM = ChatMessage("system", "be brief")
HISTORY = [
    ChatMessage("user", "one two three"),
    ChatMessage("assistant", "four five"),
    ChatMessage("user", "six seven"),
    ChatMessage("assistant", "eight"),
    ChatMessage("user", "nine ten"),
]


def test_a_conversation_that_fits_is_sent_whole() -> None:
    assert fit_to_context([SYSTEM, *HISTORY], 100, _words) == ([SYSTEM, *HISTORY], 0)


def test_the_oldest_turns_go_first_and_the_kept_history_starts_with_a_question() -> None:
    kept, omitted = fit_to_context([SYSTEM, *HISTORY], 7, _words)
    assert kept == [SYSTEM, *HISTORY[2:]]  # 2 + 2 + 1 + 2 = 7 words
    assert omitted == 2


def test_the_system_prompt_is_always_kept() -> None:
    kept, omitted = fit_to_context([SYSTEM, *HISTORY], 4, _words)
    assert kept == [SYSTEM, HISTORY[-1]] and omitted == 4


def test_a_last_question_too_long_alone_is_refused() -> None:
    with pytest.raises(PromptTooLongError, match="too long for this model's context window"):
        fit_to_context([SYSTEM, *HISTORY], 3, _words)


def test_a_long_conversation_is_measured_only_about_as_far_back_as_fits() -> None:
    history = [ChatMessage("user" if index % 2 == 0 else "assistant", "word") for index in range(1001)]
    calls: list[int] = []

    def measured(messages: list[ChatMessage]) -> int:
        calls.append(len(messages))
        return len(messages)

    kept, omitted = fit_to_context(history, 11, measured)
    assert len(kept) == 11 and omitted == 990 and kept[0].role == "user"
    assert len(calls) <= 8 and max(calls) <= 2 * len(kept) + 2  # never the whole 1,001 messages


def test_a_conversation_that_fits_is_found_to_fit_without_measuring_it_many_times() -> None:
    history = [ChatMessage("user" if index % 2 == 0 else "assistant", "word") for index in range(101)]
    calls: list[int] = []
    kept, omitted = fit_to_context(history, 1000, lambda messages: calls.append(len(messages)) or len(messages))
    assert (len(kept), omitted) == (101, 0)
    assert calls.count(101) == 1 and len(calls) <= 8
