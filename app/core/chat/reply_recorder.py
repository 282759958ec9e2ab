"""Collects an assistant reply while it is generated, and has it saved every so often.

Writing at every token would mean dozens of synced commits a second; writing only at the end
would lose the whole reply to a crash. The recorder sits in between: it hands the text so far to
``save`` whenever ``save_interval_s`` has passed since its last save, so a crash or kill loses at
most that much of the reply. (Text that arrives just before a pause in generation waits for the
next token or for the end, which the chat session writes itself.)

Threading: text is appended on the engine thread, as it is generated; ``save`` is called there
too and must only hand the text over (the chat session queues a store job), never wait. Read
:attr:`content` and :attr:`reasoning` once the reply has ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable

SaveReply = Callable[[str, str], None]
"""Keeps the reply's (content, reasoning) so far."""


class ReplyRecorder:
    """Accumulates one streaming reply and saves it at most once per interval."""

    def __init__(
        self,
        save: SaveReply,
        *,
        save_interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        initial: tuple[str, str] = ("", ""),
    ) -> None:
        """``clock`` returns seconds on a clock that never jumps; tests pass a controllable one.
        ``initial`` is the (reasoning, answer) already in the message, when a reply is continued."""
        self._save = save
        self._save_interval_s = save_interval_s
        self._clock = clock
        # Lists, joined only when saving: repeated str += on an attribute copies the whole reply
        # at every token.
        self._reasoning_parts: list[str] = [initial[0]]
        self._content_parts: list[str] = [initial[1]]
        self._has_unsaved_text = False
        self._last_save_time = clock()

    @property
    def content(self) -> str:
        """The answer text received so far."""
        return "".join(self._content_parts)

    @property
    def reasoning(self) -> str:
        """The reasoning ("thinking") text received so far."""
        return "".join(self._reasoning_parts)

    def append(self, reasoning_delta: str, answer_delta: str) -> None:
        """Add newly generated text and save it if the interval since the last save has passed."""
        if reasoning_delta:
            self._reasoning_parts.append(reasoning_delta)
            self._has_unsaved_text = True
        if answer_delta:
            self._content_parts.append(answer_delta)
            self._has_unsaved_text = True
        now = self._clock()
        if self._has_unsaved_text and now - self._last_save_time >= self._save_interval_s:
            self._save(self.content, self.reasoning)
            self._has_unsaved_text = False
            self._last_save_time = now
