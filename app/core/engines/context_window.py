"""Which turns of a conversation fit in the model's context window: the oldest go first.

Plain logic over a measuring function, so every engine (and a test) can use it with its own
idea of a prompt's length: the llama.cpp engine counts the tokens of the rendered template.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from app.core.domain.generation import ChatMessage, PromptTooLongError

PromptLength = Callable[[list[ChatMessage]], int]
"""The length, in tokens, of the prompt these messages make."""


def fit_to_context(
    messages: Sequence[ChatMessage], budget: int, prompt_length: PromptLength
) -> tuple[list[ChatMessage], int]:
    """The messages whose prompt is at most ``budget`` long, and how many were left out.

    The oldest turns are left out first, cutting only before a user message so the kept
    history starts with a question; a leading system prompt is always kept. Raises
    :class:`PromptTooLongError` if even the last user message alone does not fit.
    ``prompt_length`` is called O(log n) times (the cut is found by bisection).
    """
    system = list(messages[:1]) if messages and messages[0].role == "system" else []
    turns = list(messages[len(system):])

    def length_from(start: int) -> int:
        return prompt_length(system + turns[start:])

    if length_from(0) <= budget:
        return list(messages), 0
    cuts = [index for index, message in enumerate(turns) if message.role == "user" and index > 0]
    if not cuts or length_from(cuts[-1]) > budget:
        raise PromptTooLongError(
            "Your message is too long for this model's context window. Shorten it, or load "
            "the model with a larger context."
        )
    low, high = 0, len(cuts) - 1  # later cuts give shorter prompts: find the earliest that fits
    while low < high:
        middle = (low + high) // 2
        if length_from(cuts[middle]) <= budget:
            high = middle
        else:
            low = middle + 1
    return system + turns[cuts[low]:], cuts[low]
