"""Conversations and their messages as values: what the store keeps and every screen shows."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from app.core.domain.generation import GenerationStats


class MessageState(StrEnum):
    """Where a message is in its life."""

    STREAMING = "streaming"  # the reply is still being generated
    COMPLETE = "complete"
    STOPPED = "stopped"  # the user stopped the reply (Stop, or leaving its conversation)
    # The app ended while it streamed (closed, crashed, killed, power cut), or the model server's
    # connection broke (``Message.error`` says so; it can be continued).
    INTERRUPTED = "interrupted"
    FAILED = "failed"  # generation raised an error; ``Message.error`` says which


# Who a message is from: the roles the chat template knows. Anything else in a file is damage.
MESSAGE_ROLES = ("system", "user", "assistant", "tool")

# The longest message a person may send: ~50,000 tokens of prose or a 4,000-line source file,
# more than the default 8,192-token context holds many times over; the composer also refuses a
# paste that would exceed it, before laying the text out (bench/README.md, "Hostile content").
MAX_MESSAGE_CHARACTERS = 200_000

# Media types an image part may have: what the vision path will decode.
IMAGE_MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp"})


@dataclass(frozen=True)
class ImagePart:
    """An image that goes with the message's text: a file the store owns, named by its content's
    SHA-256 (hex), so the same picture attached twice is kept once."""

    sha256: str
    media_type: str


@dataclass(frozen=True)
class ToolCallPart:
    """A call the model asked for: ``arguments`` is a JSON object (already parsed)."""

    call_id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


class ToolOutcome(StrEnum):
    """What became of a tool call: whether the person let it run, and how it ended."""

    ALLOWED = "allowed"  # the person allowed it this once; it ran
    ALWAYS_ALLOWED = "always_allowed"  # it ran without asking: the tool is always allowed
    DENIED = "denied"  # the person said no; the model was told so
    FAILED = "failed"  # it ran and failed (the tool's own error, or its server crashed)
    TIMED_OUT = "timed_out"  # it ran past the time a tool may take
    STOPPED = "stopped"  # the person pressed Stop before or while it ran
    UNAVAILABLE = "unavailable"  # not run: no such tool now, or the turn's step limit was reached


@dataclass(frozen=True)
class ToolResultPart:
    """What a tool answered to the call ``call_id`` (``text``, an error message when
    ``is_error``): which ``server`` ran it, whether the person allowed it (``outcome``, a
    ``ToolOutcome`` value; "" in files from before approvals) and how long it ran."""

    call_id: str
    name: str
    text: str
    is_error: bool = False
    server: str = ""
    outcome: str = ""
    duration_s: float = 0.0


MessagePart = ImagePart | ToolCallPart | ToolResultPart


@dataclass(frozen=True)
class Conversation:
    """One conversation; timestamps are seconds since the epoch.

    ``updated_at`` is the time of the latest added message: it orders the conversation list by
    activity, so renaming, pinning or changing settings deliberately leaves it alone.
    """

    id: int
    title: str
    created_at: float
    updated_at: float
    model: str
    system_prompt: str
    generation_settings: dict[str, Any]
    pinned: bool


@dataclass(frozen=True)
class Message:
    """One message: its text (``content``), an assistant's ``reasoning``, and ``parts``, the
    images, tool calls and tool results that go with the text, in order. Images are shown (and
    given to the model) before the text, tool calls and results after it.

    ``stats`` is set only on assistant replies whose generation has ended.
    """

    id: int
    conversation_id: int
    role: str
    content: str
    reasoning: str
    state: MessageState
    created_at: float
    stats: GenerationStats | None
    error: str | None
    parent_id: int | None = None  # the message this one answers or follows; None for the first
    parts: tuple[MessagePart, ...] = ()


@dataclass(frozen=True)
class ConversationTree:
    """A whole conversation: every message of every branch (oldest first, each after its
    parent) and the one shown now, the end of the current branch. What undo and backups keep."""

    conversation: Conversation
    messages: tuple[Message, ...]
    current_message_id: int | None


# Markers that ``SearchHit.snippet`` puts around each matched word. They are control characters
# that typed or generated text does not contain, so the UI can escape the snippet as plain text
# and then turn the markers into highlighting without any risk of HTML injection.
MATCH_START = "\x02"
MATCH_END = "\x03"


@dataclass(frozen=True)
class SearchHit:
    """One message that matches a search, with the conversation it belongs to.

    ``snippet`` is a few words of the message's content or reasoning (whichever matched best)
    around the match, with ``MATCH_START`` and ``MATCH_END`` around each matched word and "…"
    where text was cut.
    """

    conversation_id: int
    conversation_title: str
    message_id: int
    role: str
    created_at: float
    snippet: str

    def snippet_parts(self) -> list[tuple[str, bool]]:
        """The snippet as ``(text, is_match)`` pieces in order, without the markers."""
        # snippet() always pairs the markers, so splitting on both alternates plain text (even
        # positions) with matched text (odd positions).
        pieces = re.split(f"[{MATCH_START}{MATCH_END}]", self.snippet)
        return [(piece, index % 2 == 1) for index, piece in enumerate(pieces) if piece]
