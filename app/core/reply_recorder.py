"""Saves an assistant reply to the conversation store while it is being generated.

Writing at every token would mean dozens of synced commits a second; writing only at the end
would lose the whole reply to a crash. The recorder sits in between: it saves the text so far
whenever ``save_interval_s`` has passed since its last save, so a crash or kill loses at most
that much of the reply. (Text that arrives just before a pause in generation waits for the next
token or for ``finish``.)

The caller creates the message with state ``STREAMING`` and uses the recorder from the store's
owning thread, like the store itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from app.core.conversation_store import ConversationStore, MessageState
from app.core.generation_stats import GenerationStats


class ReplyRecorder:
    """Accumulates one streaming reply and writes it to its message at most once per interval."""

    def __init__(
        self,
        store: ConversationStore,
        message_id: int,
        *,
        save_interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        initial: tuple[str, str] = ("", ""),
    ) -> None:
        """``clock`` returns seconds on a clock that never jumps; tests pass a controllable one.
        ``initial`` is the (reasoning, answer) already in the message, when a reply is continued."""
        self._store = store
        self._message_id = message_id
        self._save_interval_s = save_interval_s
        self._clock = clock
        # Lists, joined only when saving: repeated str += on an attribute copies the whole reply
        # at every token.
        self._reasoning_parts: list[str] = [initial[0]]
        self._content_parts: list[str] = [initial[1]]
        self._has_unsaved_text = False
        self._last_save_time = clock()
        self._finished = False

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
        if self._finished:
            raise RuntimeError("the reply has already been finished")
        if reasoning_delta:
            self._reasoning_parts.append(reasoning_delta)
            self._has_unsaved_text = True
        if answer_delta:
            self._content_parts.append(answer_delta)
            self._has_unsaved_text = True
        now = self._clock()
        if self._has_unsaved_text and now - self._last_save_time >= self._save_interval_s:
            self._store.update_message(
                self._message_id, content=self.content, reasoning=self.reasoning
            )
            self._has_unsaved_text = False
            self._last_save_time = now

    def finish(
        self,
        state: MessageState,
        stats: GenerationStats | None = None,
        error: str | None = None,
    ) -> None:
        """Write the complete text together with the final state, statistics and error."""
        if self._finished:
            raise RuntimeError("the reply has already been finished")
        self._store.update_message(
            self._message_id,
            content=self.content,
            reasoning=self.reasoning,
            state=state,
            stats=stats,
            error=error,
        )
        self._finished = True
