"""What happened to the stored conversations, as told to screens and other clients."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.core.domain.conversations import Conversation, SearchHit


@dataclass(frozen=True)
class ConversationsChanged:
    """The conversation list as it is now: pinned first, then the most recently active."""

    conversations: tuple[Conversation, ...]


@dataclass(frozen=True)
class ConversationDeleted:
    """``conversation`` was deleted, every branch; ``ConversationLibrary.undo_delete`` brings it back."""

    conversation: Conversation


@dataclass(frozen=True)
class ConversationRestored:
    """The last deleted conversation is back (under a new id)."""

    conversation: Conversation


@dataclass(frozen=True)
class ExportFinished:
    """``count`` conversations were written to ``path``."""

    path: Path
    count: int


@dataclass(frozen=True)
class ImportFinished:
    """These conversations were read from ``path`` and stored, in the file's order.
    ``already_here``: the stored conversations the file repeats (kept, replaced or copied
    as the import was told)."""

    path: Path
    conversations: tuple[Conversation, ...]
    already_here: tuple[Conversation, ...] = ()


@dataclass(frozen=True)
class ImportNeedsChoice:
    """Nothing was imported from ``path`` yet: these stored conversations are in it already,
    out of ``total``. Import again with a ``DuplicateChoice``."""

    path: Path
    already_here: tuple[Conversation, ...]
    total: int


@dataclass(frozen=True)
class SearchFinished:
    """The messages that match ``query``, best first."""

    query: str
    hits: tuple[SearchHit, ...]


@dataclass(frozen=True)
class LibraryOperationFailed:
    """Something the user asked for could not be done; ``message`` says what and why. Nothing
    was changed by it."""

    message: str


LibraryEvent = (
    ConversationsChanged
    | ConversationDeleted
    | ConversationRestored
    | ExportFinished
    | ImportFinished
    | ImportNeedsChoice
    | SearchFinished
    | LibraryOperationFailed
)
