"""Splits a streamed reply into reasoning (inside ``<think>…</think>``) and answer text.

Shared by every engine: Qwen3.5 writes its reasoning this way whatever runs it.

Text arrives in arbitrary pieces, so a tag can be cut in two (``"</thi"`` + ``"nk>"``): the
splitter holds back only a trailing piece that could still become a tag, and releases everything
else at once so the user sees each token as soon as it is generated.
"""

from __future__ import annotations

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def prompt_opens_reasoning(prompt: str) -> bool:
    """True when the prompt ends inside an open ``<think>`` block, so the reply starts as reasoning."""
    return prompt.rfind(THINK_OPEN) > prompt.rfind(THINK_CLOSE)


class ReasoningSplitter:
    """Feed text pieces in order; each call returns the ``(reasoning, answer)`` text now certain.

    ``starts_in_reasoning`` is true when the prompt itself opened the ``<think>`` block (Qwen3.5's
    thinking generation prompt ends with ``<think>\\n``). A reply that starts with its own
    ``<think>`` is also understood, in either case. Whitespace between the reasoning and the answer is dropped,
    as the chat template does when it renders the turn back.
    """

    def __init__(self, *, starts_in_reasoning: bool) -> None:
        self._in_reasoning = starts_in_reasoning
        self._pending = ""
        self._at_reasoning_start = starts_in_reasoning
        self._at_answer_start = not starts_in_reasoning
        # Only the very start of a reply may open a think block; later "<think>" is answer text.
        # A reply whose prompt opened it may still write its own (some servers send it back).
        self._may_open = True
        self.reasoning = ""
        self.answer = ""

    def feed(self, piece: str) -> tuple[str, str]:
        self._pending += piece
        reasoning_out: list[str] = []
        answer_out: list[str] = []
        while self._pending:
            if self._may_open:
                stripped = self._pending.lstrip()
                if stripped.startswith(THINK_OPEN):
                    self._pending = stripped[len(THINK_OPEN):]
                    self._in_reasoning = True
                    self._may_open = False
                    self._at_reasoning_start = True
                    continue
                if THINK_OPEN.startswith(stripped):
                    break  # could still become "<think>": wait for more text
                self._may_open = False
            if self._in_reasoning:
                index = self._pending.find(THINK_CLOSE)
                if index >= 0:
                    reasoning_out.append(self._pending[:index])
                    self._pending = self._pending[index + len(THINK_CLOSE):]
                    self._in_reasoning = False
                    self._at_answer_start = True
                    continue
                released = _release_unless_tag_prefix(self._pending, THINK_CLOSE)
                reasoning_out.append(released)
                self._pending = self._pending[len(released):]
                break
            answer_out.append(self._pending)
            self._pending = ""
        return self._emit("".join(reasoning_out), "".join(answer_out))

    def finish(self) -> tuple[str, str]:
        """Releases any held-back text at the end of the reply."""
        pending, self._pending = self._pending, ""
        if self._in_reasoning:
            return self._emit(pending, "")
        return self._emit("", pending)

    def _emit(self, reasoning: str, answer: str) -> tuple[str, str]:
        if self._at_reasoning_start and reasoning:
            reasoning = reasoning.lstrip("\n")
            self._at_reasoning_start = not reasoning
        if self._at_answer_start and answer:
            answer = answer.lstrip()
            self._at_answer_start = not answer
        self.reasoning += reasoning
        self.answer += answer
        return reasoning, answer


def _release_unless_tag_prefix(text: str, tag: str) -> str:
    """The part of ``text`` that cannot be the start of ``tag`` cut off at the end."""
    for keep in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-keep:]):
            return text[:-keep]
    return text
