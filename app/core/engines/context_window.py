"""Which turns of a conversation fit in the model's context window: the oldest go first.

Plain logic over a measuring function, so every engine (and a test) can use it with its own
idea of a prompt's length: the llama.cpp engine counts the tokens of the rendered template.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from app.core.domain.generation import ChatMessage, PromptTooLongError

PromptLength = Callable[[list[ChatMessage]], int]
"""The length, in tokens, of the prompt these messages make."""


WHOLE_FIRST_TURNS = 32  # chats of up to this many questions are measured whole before any search


def fit_to_context(
    messages: Sequence[ChatMessage], budget: int, prompt_length: PromptLength
) -> tuple[list[ChatMessage], int]:
    """The messages whose prompt is at most ``budget`` long, and how many were left out.

    The oldest turns are left out first, cutting only before a user message so the kept
    history starts with a question; a leading system prompt is always kept. Raises
    :class:`PromptTooLongError` if even the last user message alone does not fit.

    The search starts from the newest turns and doubles how many it tries, then bisects: a
    long conversation is measured only about as far back as what fits (measuring means
    rendering and tokenizing, ~130 ms for a 1,000-message chat), never whole over and over.
    A chat of a few dozen questions is measured whole first, since it usually fits.
    """
    system = list(messages[:1]) if messages and messages[0].role == "system" else []
    turns = list(messages[len(system):])
    # Where the kept history may start, oldest first: a later start gives a shorter prompt.
    starts = [0] + [index for index, message in enumerate(turns) if message.role == "user" and index > 0]

    def fits(position: int) -> bool:
        return prompt_length(system + turns[starts[position]:]) <= budget

    if len(starts) <= WHOLE_FIRST_TURNS and fits(0):
        # Most chats fit whole: one measurement, which the prompt then reuses (tokenized once).
        return system + turns, 0
    good = len(starts) - 1  # the latest start: the last question alone
    if not fits(good):
        raise PromptTooLongError(
            "Your message is too long for this model's context window. Shorten it, or load "
            "the model with a larger context."
        )
    bad, step = -1, 1  # bad: a start known not to fit (-1: none)
    while good > 0:
        probe = max(0, good - step)
        if not fits(probe):
            bad = probe
            break
        good, step = probe, step * 2
    while good - bad > 1:
        middle = (good + bad) // 2
        if fits(middle):
            good = middle
        else:
            bad = middle
    return system + turns[starts[good]:], starts[good]
