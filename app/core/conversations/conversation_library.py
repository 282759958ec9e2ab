"""The stored conversations as a whole: rename, pin, delete and undo, export, import, search.

Every operation is a job for the store worker, so none of them blocks the caller (the window
stays responsive while 500 chats are exported); each outcome comes back as an event
(``conversation_events``), on the worker thread. The list itself is announced by the worker
after any change (``ConversationsChanged``), so no screen ever asks for it again by hand.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from app.core.conversations.conversation_events import (
    ConversationDeleted,
    ConversationRestored,
    ExportFinished,
    ImportFinished,
    ImportNeedsChoice,
    LibraryEvent,
    LibraryOperationFailed,
    SearchFinished,
)
from app.core.conversations.conversation_export import (
    ConversationImportError,
    export_all,
    export_conversation,
    DuplicateChoice,
    import_conversations,
    read_export,
)
from app.core.conversations.conversation_store import ConversationStore, NotFoundError
from app.core.conversations.store_worker import StoreWorker
from app.core.domain.conversations import ConversationTree
from app.core.listeners import Listeners

logger = logging.getLogger(__name__)


class ConversationLibrary:
    """Operations on the stored conversations; call from any thread, results arrive as events."""

    def __init__(self, worker: StoreWorker) -> None:
        self._worker = worker
        self._listeners: Listeners[LibraryEvent] = Listeners()
        self._deleted: ConversationTree | None = None  # the last deleted one, for undo (worker thread)

    def subscribe(self, listener: Callable[[LibraryEvent], None]) -> None:
        """``listener`` gets the conversation list now and on every change, and every outcome."""
        self._listeners.add(listener)
        self._worker.subscribe(listener)

    def rename(self, conversation_id: int, title: str) -> None:
        self._run(lambda store: store.rename_conversation(conversation_id, title), "rename the chat")

    def set_pinned(self, conversation_id: int, pinned: bool) -> None:
        self._run(lambda store: store.set_pinned(conversation_id, pinned), "pin the chat")

    def delete(self, conversation_id: int) -> None:
        """Deletes the conversation with every branch; the last one deleted can be undone."""

        def delete(store: ConversationStore) -> None:
            tree = store.conversation_tree(conversation_id)
            store.delete_conversation(conversation_id)
            self._deleted = tree
            self._emit(ConversationDeleted(tree.conversation))

        self._run(delete, "delete the chat")

    def undo_delete(self) -> None:
        def undo(store: ConversationStore) -> None:
            if self._deleted is None:
                return
            restored = store.restore_conversation(self._deleted)
            self._deleted = None
            self._emit(ConversationRestored(restored))

        self._run(undo, "restore the chat")

    def export_conversation(self, conversation_id: int, kind: str, path: Path) -> None:
        """Writes one conversation to ``path``: ``kind`` "md" (Markdown, the branch shown) or
        "json" (everything, for importing again)."""

        def export(store: ConversationStore) -> None:
            _write(path, export_conversation(store, conversation_id, kind))
            self._emit(ExportFinished(path, 1))

        self._run(export, f"save “{path.name}”")

    def export_all(self, path: Path) -> None:
        """Writes every conversation, whole, to ``path`` as one JSON backup."""

        def export(store: ConversationStore) -> None:
            text, count = export_all(store)
            _write(path, text)
            self._emit(ExportFinished(path, count))

        self._run(export, f"save “{path.name}”")

    def import_file(self, path: Path, duplicates: DuplicateChoice = DuplicateChoice.ASK) -> None:
        """Adds the conversations of an exported file; a file with any error adds nothing. With
        ``ASK``, a file that repeats stored conversations imports nothing and reports
        ``ImportNeedsChoice``; import again with the user's choice. Reading, checking and
        storing all happen on the store worker (see ``conversation_export`` for the checks)."""

        def load(store: ConversationStore) -> None:
            text = read_export(path)
            outcome = import_conversations(store, text, duplicates)
            if outcome.already_here and duplicates is DuplicateChoice.ASK:
                self._emit(ImportNeedsChoice(path, tuple(outcome.already_here), outcome.total))
            else:
                self._emit(ImportFinished(path, tuple(outcome.stored), tuple(outcome.already_here)))

        self._run(load, f"import “{path.name}”")

    def search(self, query: str) -> None:
        """Finds the messages that contain every word of ``query`` (see ``ConversationStore.search``)."""
        self._run(lambda store: self._emit(SearchFinished(query, tuple(store.search(query)))), "search")

    def _run(self, job: Callable[[ConversationStore], None], action: str) -> None:
        """Queues ``job``; a failure the user can cause becomes a ``LibraryOperationFailed``."""

        def guarded(store: ConversationStore) -> None:
            try:
                job(store)
            except NotFoundError:
                self._emit(LibraryOperationFailed(f"Could not {action}: it no longer exists."))
            except ConversationImportError as error:
                self._emit(LibraryOperationFailed(f"Could not {action}: {error}"))
            except OSError as error:
                self._emit(LibraryOperationFailed(f"Could not {action}: {error.strerror or error}."))
            except sqlite3.Error as error:
                logger.exception("The conversation store failed")
                self._emit(LibraryOperationFailed(f"Could not {action}: the conversation file failed ({error})."))
            except Exception as error:  # noqa: BLE001 - whatever a file holds, the user hears of it
                logger.exception("Could not %s", action)
                self._emit(LibraryOperationFailed(f"Could not {action}: {type(error).__name__}: {error}."))

        self._worker.submit(guarded)

    def _emit(self, event: LibraryEvent) -> None:
        self._listeners.emit(event)


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
