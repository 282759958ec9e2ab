"""The SQLite file that keeps every conversation and its messages.

Ownership: a ``ConversationStore`` is not thread-safe. The thread that creates it must be the
only one that uses it; sqlite3 enforces this by raising ``sqlite3.ProgrammingError`` when another
thread touches the connection. In the app that thread is the store worker's
(``app.core.conversations.store_worker``), never the GUI thread: a commit syncs the file to disk
(``synchronous = FULL``) and can take tens of milliseconds. Other code hands it work.

Every public write method runs in its own transaction and has committed before it returns, so
callers never call ``commit``; inside ``atomically()`` they all belong to one transaction instead,
kept or undone as a whole. Failures while opening are reported as ``StoreError``; ids that
do not exist are reported as ``NotFoundError`` (a ``KeyError``). Any other SQLite failure while
reading or writing (a full disk, for example) propagates as the ``sqlite3.Error`` it is.

Messages of a conversation are ordered by id: ``id`` is an ``INTEGER PRIMARY KEY``, for which
SQLite picks a value above every id already in the table, so id order is the order in which
messages were added. Nothing in the app inserts a message in the middle of a conversation, so a
separate position column would only be something to keep consistent.

Schema versions live in ``PRAGMA user_version``; ``_MIGRATIONS`` holds one step per version.

Search: the FTS5 table ``message_search`` indexes the content and reasoning of every message. It
is an external-content table (it stores only the index and reads the text from ``messages``), kept
in step by triggers on ``messages``, so every way a message changes (including the cascade when
its conversation is deleted) updates the index in the same transaction. The tokenizer is
``unicode61`` without diacritics: words are runs of letters and digits, matched case- and
accent-insensitively ("cafe" finds "Café"). Text in scripts written without spaces (Chinese,
Japanese) forms one long word per run, which only a search for its beginning finds.

Undoing a delete: keep the ``conversation_tree`` of the conversation before
``delete_conversation``, and hand it to ``restore_conversation``. The copy comes back complete,
every branch included, but under new ids, because SQLite may already have given a deleted id to
a newer row.

Parts (schema 5): the images, tool calls and tool results of a message are rows of
``message_parts`` in order; the message's text stays in ``messages.content``, where search and
the streaming reply's frequent saves find it. An image part names a file in the store's image
folder (``images/`` beside the database) by the SHA-256 of its bytes: ``save_image`` writes each
picture once, and files no message refers to any more are removed when the store opens (not at
once, so that undoing a delete finds them).

Damaged rows: a value that no version of the app writes (a hand edit, a damaged disk, an import
by an older version that checked less) is read as a stand-in, so that one odd row never stops
the app: a conversation's title then begins with ``DAMAGED_TITLE``, a message becomes a failed
one whose error says it is damaged (and so stays out of prompts), an unreadable part is left out.

Change tracking: ``list_version`` grows with every change that the conversation list shows
(created, renamed, pinned, deleted, restored, a message added), so the store's owner can tell
its listeners when the list needs showing again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from app.core.domain.conversations import (
    IMAGE_MEDIA_TYPES,
    MATCH_END,
    MATCH_START,
    MESSAGE_ROLES,
    Conversation,
    ConversationTree,
    ImagePart,
    Message,
    MessagePart,
    MessageState,
    SearchHit,
    ToolCallPart,
    ToolResultPart,
)
from app.core.domain.generation import GenerationStats, StopReason

logger = logging.getLogger(__name__)


class StoreError(Exception):
    """The conversation file cannot be opened or used as a conversation store."""


class NotFoundError(KeyError):
    """No conversation or message has the requested id."""


class _AfterCurrent:
    """The default of ``add_message``'s ``parent_id``: after the conversation's current message."""


AFTER_CURRENT = _AfterCurrent()


# One step per schema version: _MIGRATIONS[0] builds version 1 in an empty file,
# _MIGRATIONS[1] turns version 1 into version 2, and so on. Only ever append: files written by
# released versions must keep upgrading through exactly the steps they were written with.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            model TEXT NOT NULL DEFAULT ''
        )
        """,
        """
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL
                REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL,
            created_at REAL NOT NULL
        )
        """,
        "CREATE INDEX messages_by_conversation ON messages(conversation_id)",
    ),
    (
        "ALTER TABLE conversations ADD COLUMN system_prompt TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE conversations ADD COLUMN generation_settings TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE messages ADD COLUMN reasoning TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE messages ADD COLUMN prompt_tokens INTEGER NULL",
        "ALTER TABLE messages ADD COLUMN evaluated_prompt_tokens INTEGER NULL",
        "ALTER TABLE messages ADD COLUMN generated_tokens INTEGER NULL",
        "ALTER TABLE messages ADD COLUMN time_to_first_token_s REAL NULL",
        "ALTER TABLE messages ADD COLUMN tokens_per_second REAL NULL",
        "ALTER TABLE messages ADD COLUMN stop_reason TEXT NULL",
        "ALTER TABLE messages ADD COLUMN error TEXT NULL",
    ),
    (
        "ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0",
        """
        CREATE VIRTUAL TABLE message_search USING fts5(
            content, reasoning,
            content = 'messages', content_rowid = 'id',
            tokenize = 'unicode61 remove_diacritics 2'
        )
        """,
        # An external-content index must be told the old text to forget it, hence 'delete'
        # with the old values rather than a plain DELETE.
        """
        CREATE TRIGGER message_search_after_insert AFTER INSERT ON messages BEGIN
            INSERT INTO message_search (rowid, content, reasoning)
                VALUES (new.id, new.content, new.reasoning);
        END
        """,
        """
        CREATE TRIGGER message_search_after_delete AFTER DELETE ON messages BEGIN
            INSERT INTO message_search (message_search, rowid, content, reasoning)
                VALUES ('delete', old.id, old.content, old.reasoning);
        END
        """,
        # Only text changes re-index: state and statistics updates leave the index alone.
        """
        CREATE TRIGGER message_search_after_update AFTER UPDATE OF content, reasoning ON messages
        BEGIN
            INSERT INTO message_search (message_search, rowid, content, reasoning)
                VALUES ('delete', old.id, old.content, old.reasoning);
            INSERT INTO message_search (rowid, content, reasoning)
                VALUES (new.id, new.content, new.reasoning);
        END
        """,
        # Index the messages written before this version.
        "INSERT INTO message_search (message_search) VALUES ('rebuild')",
    ),
    # Version 4: alternatives. Messages form a tree (a regenerated reply or an edited question
    # is a sibling of the one it replaces) and the conversation shows the path to its current
    # leaf. Existing conversations become a single chain.
    (
        "ALTER TABLE messages ADD COLUMN parent_id INTEGER REFERENCES messages(id) ON DELETE SET NULL",
        """
        UPDATE messages SET parent_id = (
            SELECT MAX(previous.id) FROM messages AS previous
            WHERE previous.conversation_id = messages.conversation_id AND previous.id < messages.id
        )
        """,
        "CREATE INDEX messages_by_parent ON messages(parent_id)",
        "ALTER TABLE conversations ADD COLUMN current_leaf_id INTEGER",
        """
        UPDATE conversations SET current_leaf_id = (
            SELECT MAX(id) FROM messages WHERE messages.conversation_id = conversations.id
        )
        """,
    ),
    # Version 5: messages made of parts (images, tool calls, tool results beside the text), and
    # a state of its own for replies the user stopped. Version 4 wrote "interrupted" for both a
    # crash and Stop; a reply that ended through the engine (it has statistics) was stopped.
    (
        """
        CREATE TABLE message_parts (
            message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            kind TEXT NOT NULL,
            data TEXT NOT NULL,
            image_sha256 TEXT,
            PRIMARY KEY (message_id, position)
        )
        """,
        "CREATE INDEX message_parts_by_image ON message_parts(image_sha256) WHERE image_sha256 IS NOT NULL",
        "UPDATE messages SET state = 'stopped' WHERE state = 'interrupted' AND stop_reason = 'cancelled'",
    ),
)

SCHEMA_VERSION = len(_MIGRATIONS)

# Ids bound into one IN (...) list: well below SQLite's limit of bound parameters.
_IDS_PER_QUERY = 500

DAMAGED_TITLE = "Damaged conversation"


class ConversationStore:
    """Conversations and messages in one SQLite file; see the module docstring for the rules."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        """Open (creating if needed) the store at ``path`` and bring its schema up to date.

        ``clock`` supplies the timestamps; tests replace it to get distinct, known times.
        Raises ``StoreError`` when the file is not a SQLite database, was written by a newer
        version of the app, or cannot be opened or upgraded, and when this Python's SQLite
        library lacks the FTS5 full-text search that the store's search index needs.
        """
        self._clock = clock
        self.images_dir = path.parent / "images"
        self.list_version = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: transactions are begun explicitly in _transaction, not implicitly
            # by the sqlite3 module before some statements and not others.
            self._connection = sqlite3.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as error:
            raise StoreError(f"Cannot open the conversation file {path}: {error}") from error
        try:
            self._open(path)
        except BaseException:
            self._connection.close()
            raise

    def _open(self, path: Path) -> None:
        connection = self._connection
        connection.row_factory = sqlite3.Row
        # sqlite3 raises on a TEXT value that is not UTF-8, which would stop every read of its
        # table; such a value reads with replacement characters instead.
        connection.text_factory = _decoded_text
        try:
            # The first statement that reads the file; this is where a non-database fails.
            version = connection.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as error:
            raise StoreError(
                f"{path} is not a conversation file (it is not a SQLite database): {error}"
            ) from error
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{path} was created by a newer version of Qwen Local Chat (schema version "
                f"{version}; this version understands up to {SCHEMA_VERSION}). "
                "Update the app to open it."
            )
        # Without FTS5 a new file would fail to upgrade and an upgraded one would fail at its
        # first write (the index triggers need the module), so refuse it here, clearly.
        fts5_module = connection.execute("SELECT 1 FROM pragma_module_list WHERE name = 'fts5'")
        if fts5_module.fetchone() is None:
            raise StoreError(
                f"Cannot open {path}: the SQLite library of this Python ({sqlite3.sqlite_version}) "
                "was built without FTS5 full-text search, which the conversation store needs. "
                "Use a Python whose sqlite3 module includes FTS5."
            )
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            # In WAL mode, synchronous=NORMAL may lose already committed transactions on a power
            # cut; FULL syncs the log at every commit, so a power cut loses at most the save that
            # was in progress. Saves are a few per second at most, so the cost is negligible.
            connection.execute("PRAGMA synchronous = FULL")
            # SQLite ignores REFERENCES clauses (and so ON DELETE CASCADE) unless asked, per
            # connection; it must be set outside a transaction.
            connection.execute("PRAGMA foreign_keys = ON")
            self._migrate()
            # Nothing can still be streaming into a file that is only now being opened: such
            # messages were cut short by a crash or kill of the previous run.
            connection.execute(
                "UPDATE messages SET state = ? WHERE state = ?",
                (MessageState.INTERRUPTED, MessageState.STREAMING),
            )
        except sqlite3.Error as error:
            raise StoreError(f"Cannot prepare the conversation file {path}: {error}") from error
        self._delete_unreferenced_images()

    def _migrate(self) -> None:
        while True:
            with self._transaction():
                # Read inside the write lock: another instance may have upgraded the file since.
                version = self._connection.execute("PRAGMA user_version").fetchone()[0]
                if version >= SCHEMA_VERSION:
                    return
                for statement in _MIGRATIONS[version]:
                    self._connection.execute(statement)
                # PRAGMA takes no parameters; the value is an int computed here.
                self._connection.execute(f"PRAGMA user_version = {version + 1}")

    def close(self) -> None:
        """Close the file; the store cannot be used afterwards. Closing twice is harmless."""
        self._connection.close()

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(
        self,
        exception_type: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def atomically(self) -> Iterator[None]:
        """Every write inside the block is one transaction: all are kept, or none when the block
        raises. ``list_version`` may have grown for writes that were undone."""
        with self._transaction():
            yield

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._connection.in_transaction:
            with self._savepoint():
                yield
            return
        # IMMEDIATE takes the write lock up front, so a transaction that reads and then writes
        # cannot fail halfway with "database is locked".
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        # A write within atomically(): undone alone if it fails; the outer transaction decides
        # what is kept.
        self._connection.execute("SAVEPOINT write")
        try:
            yield
        except BaseException:
            self._connection.execute("ROLLBACK TO write")
            raise
        finally:
            self._connection.execute("RELEASE write")

    # Conversations

    def create_conversation(
        self,
        title: str = "",
        model: str = "",
        system_prompt: str = "",
        generation_settings: dict[str, Any] | None = None,
    ) -> Conversation:
        """Add an empty conversation and return it as stored."""
        now = self._clock()
        cursor = self._connection.execute(
            "INSERT INTO conversations"
            " (title, created_at, updated_at, model, system_prompt, generation_settings)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (title, now, now, model, system_prompt, json.dumps(generation_settings or {})),
        )
        self.list_version += 1
        return self.get_conversation(cursor.lastrowid)

    def list_conversations(self) -> list[Conversation]:
        """All conversations: pinned ones first, then most recently active first.

        Among equally recent conversations the one created later comes first.
        """
        rows = self._connection.execute(
            "SELECT * FROM conversations ORDER BY pinned DESC, updated_at DESC, id DESC"
        )
        return [_conversation_from_row(row) for row in rows]

    def get_conversation(self, conversation_id: int) -> Conversation:
        """The conversation with this id; ``NotFoundError`` if there is none."""
        row = self._connection.execute(
            "SELECT * FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no conversation with id {conversation_id}")
        return _conversation_from_row(row)

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        """Change the title; ``NotFoundError`` if there is no such conversation."""
        self._update_row("conversations", conversation_id, {"title": title})
        self.list_version += 1

    def set_pinned(self, conversation_id: int, pinned: bool) -> None:
        """Pin the conversation to the top of the list, or unpin it."""
        self._update_row("conversations", conversation_id, {"pinned": pinned})
        self.list_version += 1

    def update_conversation(
        self,
        conversation_id: int,
        *,
        model: str | None = None,
        system_prompt: str | None = None,
        generation_settings: dict[str, Any] | None = None,
    ) -> None:
        """Change the given fields and leave those passed as ``None`` as they are."""
        changes: dict[str, object] = {}
        if model is not None:
            changes["model"] = model
        if system_prompt is not None:
            changes["system_prompt"] = system_prompt
        if generation_settings is not None:
            changes["generation_settings"] = json.dumps(generation_settings)
        self._update_row("conversations", conversation_id, changes)

    def delete_conversation(self, conversation_id: int) -> None:
        """Delete the conversation and, through ON DELETE CASCADE, all its messages."""
        self._delete_row("conversations", conversation_id)
        self.list_version += 1

    def conversation_tree(self, conversation_id: int) -> ConversationTree:
        """The whole conversation: every message of every branch, and the current one."""
        conversation = self.get_conversation(conversation_id)
        rows = self._connection.execute(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
        ).fetchall()
        current = self._connection.execute(
            "SELECT current_leaf_id FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()["current_leaf_id"]
        return ConversationTree(conversation, tuple(self._with_parts(rows)), current)

    def restore_conversation(self, tree: ConversationTree) -> Conversation:
        """Store a copy of ``tree`` and return the stored conversation.

        Every field is kept (title, timestamps, model, prompt, settings, pinned; each message's
        role, texts, parts, state, time, statistics, error and place in the tree, and which
        message is current) except the ids: the copy gets new ones, in the order of
        ``tree.messages``, where each message must come after its parent. This undoes
        ``delete_conversation`` and stores imported conversations. A message still marked
        streaming is stored as interrupted, since nothing is generating into the copy.
        """
        conversation = tree.conversation
        with self._transaction():
            cursor = self._connection.execute(
                "INSERT INTO conversations (title, created_at, updated_at, model, system_prompt,"
                " generation_settings, pinned) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation.title,
                    conversation.created_at,
                    conversation.updated_at,
                    conversation.model,
                    conversation.system_prompt,
                    json.dumps(conversation.generation_settings),
                    conversation.pinned,
                ),
            )
            conversation_id = cursor.lastrowid
            new_ids: dict[int, int] = {}
            for message in tree.messages:
                state = MessageState(message.state)
                columns = {
                    "conversation_id": conversation_id,
                    "role": message.role,
                    "content": message.content,
                    "reasoning": message.reasoning,
                    "state": MessageState.INTERRUPTED if state is MessageState.STREAMING else state,
                    "created_at": message.created_at,
                    "error": message.error,
                    "parent_id": new_ids[message.parent_id] if message.parent_id is not None else None,
                }
                if message.stats is not None:
                    columns.update(_stats_columns(message.stats))
                new_ids[message.id] = self._connection.execute(
                    f"INSERT INTO messages ({', '.join(columns)})"
                    f" VALUES ({', '.join('?' for _ in columns)})",
                    tuple(columns.values()),
                ).lastrowid
                self._insert_parts(new_ids[message.id], message.parts)
            current = new_ids.get(tree.current_message_id) if tree.current_message_id is not None else None
            self._connection.execute(
                "UPDATE conversations SET current_leaf_id = ? WHERE id = ?", (current, conversation_id)
            )
        self.list_version += 1
        return self.get_conversation(conversation_id)

    # Messages

    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str = "",
        *,
        reasoning: str = "",
        state: MessageState = MessageState.COMPLETE,
        parent_id: int | None | _AfterCurrent = AFTER_CURRENT,
        parts: Sequence[MessagePart] = (),
    ) -> Message:
        """Add a message after the conversation's current last message (or after ``parent_id``,
        making it an alternative to that message's other children; None makes it a first
        message). The new message becomes the current one; the conversation becomes the newest.
        Image ``parts`` must name images saved with ``save_image``."""
        now = self._clock()
        with self._transaction():
            row = self._connection.execute(
                "SELECT current_leaf_id FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no conversation with id {conversation_id}")
            parent = row["current_leaf_id"] if isinstance(parent_id, _AfterCurrent) else parent_id
            cursor = self._connection.execute(
                "INSERT INTO messages"
                " (conversation_id, role, content, reasoning, state, created_at, parent_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, role, content, reasoning, MessageState(state), now, parent),
            )
            self._insert_parts(cursor.lastrowid, parts)
            self._connection.execute(
                "UPDATE conversations SET updated_at = ?, current_leaf_id = ? WHERE id = ?",
                (now, cursor.lastrowid, conversation_id),
            )
        self.list_version += 1
        return self.get_message(cursor.lastrowid)

    def update_message(
        self,
        message_id: int,
        *,
        content: str | None = None,
        reasoning: str | None = None,
        state: MessageState | None = None,
        stats: GenerationStats | None = None,
        error: str | None = None,
        parts: Sequence[MessagePart] | None = None,
    ) -> None:
        """Change the given fields and leave those passed as ``None`` as they are (an ``error``
        of ``""`` removes the message's error); ``parts`` replaces all of the message's parts (a
        reply's tool calls, known once it has ended).

        Does not touch the conversation's ``updated_at``: the reply being written was already
        counted as activity when it was added.
        """
        changes: dict[str, object] = {}
        if content is not None:
            changes["content"] = content
        if reasoning is not None:
            changes["reasoning"] = reasoning
        if state is not None:
            changes["state"] = MessageState(state)
        if stats is not None:
            changes.update(_stats_columns(stats))
        if error is not None:
            changes["error"] = error or None
        if parts is None:
            self._update_row("messages", message_id, changes)
            return
        with self._transaction():
            self._update_row("messages", message_id, changes)
            self._connection.execute("DELETE FROM message_parts WHERE message_id = ?", (message_id,))
            self._insert_parts(message_id, parts)

    def get_message(self, message_id: int) -> Message:
        """The message with this id; ``NotFoundError`` if there is none."""
        row = self._connection.execute(
            "SELECT * FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no message with id {message_id}")
        return self._with_parts([row])[0]

    def messages(self, conversation_id: int) -> list[Message]:
        """The conversation as shown: the path from its first message to its current one."""
        rows = self._connection.execute(
            "WITH RECURSIVE path(id) AS ("
            "  SELECT current_leaf_id FROM conversations WHERE id = ?"
            # UNION, not UNION ALL: a damaged file whose parents form a loop ends the walk
            # instead of running it forever.
            "  UNION"
            "  SELECT messages.parent_id FROM messages JOIN path ON messages.id = path.id"
            "  WHERE messages.parent_id IS NOT NULL"
            ") SELECT * FROM messages WHERE id IN (SELECT id FROM path) ORDER BY id",
            (conversation_id,),
        ).fetchall()
        if not rows:
            # Tell an empty conversation from a missing one.
            self.get_conversation(conversation_id)
        return self._with_parts(rows)

    def alternatives(self, message_id: int) -> list[Message]:
        """The message and its alternatives (the other answers to the same message), oldest first."""
        message = self.get_message(message_id)
        rows = self._connection.execute(
            "SELECT * FROM messages WHERE conversation_id = ? AND parent_id IS ? ORDER BY id",
            (message.conversation_id, message.parent_id),
        ).fetchall()
        return self._with_parts(rows)

    def alternative_positions(self, conversation_id: int) -> dict[int, tuple[int, int]]:
        """For each message of the conversation that has alternatives: (its index among them,
        how many there are). Messages without alternatives are left out."""
        siblings: dict[int | None, list[int]] = {}
        for row in self._connection.execute(
            "SELECT id, parent_id FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
        ):
            siblings.setdefault(row["parent_id"], []).append(row["id"])
        return {
            message_id: (index, len(group))
            for group in siblings.values()
            if len(group) > 1
            for index, message_id in enumerate(group)
        }

    def switch_to(self, message_id: int) -> None:
        """Shows ``message_id`` instead of its alternatives, with the latest turns that follow it."""
        message = self.get_message(message_id)
        with self._transaction():
            self._connection.execute(
                "UPDATE conversations SET current_leaf_id = ? WHERE id = ?",
                (self._latest_leaf_below(message.id), message.conversation_id),
            )

    def delete_message(self, message_id: int) -> None:
        """Delete one message; what followed it now follows the message before it.
        ``NotFoundError`` if there is none."""
        message = self.get_message(message_id)
        with self._transaction():
            self._connection.execute(
                "UPDATE messages SET parent_id = ? WHERE parent_id = ?", (message.parent_id, message_id)
            )
            self._connection.execute("DELETE FROM messages WHERE id = ?", (message_id,))
            leaf = self._connection.execute(
                "SELECT current_leaf_id FROM conversations WHERE id = ?", (message.conversation_id,)
            ).fetchone()["current_leaf_id"]
            if leaf == message_id:
                start = message.parent_id
                if start is None:
                    first = self._connection.execute(
                        "SELECT MAX(id) AS id FROM messages WHERE conversation_id = ? AND parent_id IS NULL",
                        (message.conversation_id,),
                    ).fetchone()["id"]
                    start = first
                self._connection.execute(
                    "UPDATE conversations SET current_leaf_id = ? WHERE id = ?",
                    (self._latest_leaf_below(start) if start is not None else None, message.conversation_id),
                )

    def _latest_leaf_below(self, message_id: int) -> int:
        """Follows the newest child down from ``message_id`` to a message without children (or,
        in a damaged file whose parent links loop, to where the walk would come round again)."""
        seen = {message_id}
        while True:
            child = self._connection.execute(
                "SELECT MAX(id) AS id FROM messages WHERE parent_id = ?", (message_id,)
            ).fetchone()["id"]
            if child is None or child in seen:
                return message_id
            seen.add(child)
            message_id = child

    # Images

    def save_image(self, data: bytes, media_type: str) -> ImagePart:
        """Keeps ``data`` as an image file of the store (once, however often it is saved) and
        returns the part that shows it. The caller has checked that the bytes are an image of
        ``media_type``; this only refuses types the app does not show."""
        if media_type not in IMAGE_MEDIA_TYPES:
            raise ValueError(f"images of type {media_type!r} are not kept")
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.image_path(sha256)
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            with temporary.open("wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)  # never a half-written image under its final name
        return ImagePart(sha256, media_type)

    def image_path(self, sha256: str) -> Path:
        """Where the image with this content hash is kept."""
        if len(sha256) != 64 or any(character not in "0123456789abcdef" for character in sha256):
            raise ValueError(f"{sha256!r} is not a SHA-256 in hex")
        return self.images_dir / sha256

    def _delete_unreferenced_images(self) -> None:
        if not self.images_dir.is_dir():
            return
        referenced = {
            row["image_sha256"]
            for row in self._connection.execute(
                "SELECT DISTINCT image_sha256 FROM message_parts WHERE image_sha256 IS NOT NULL"
            )
        }
        for path in self.images_dir.iterdir():
            if path.name not in referenced:
                try:
                    path.unlink()
                except OSError as error:  # tidying up is not worth failing to open for
                    logger.warning("Could not remove the unused image %s: %s", path, error)

    # Parts

    def _insert_parts(self, message_id: int, parts: Sequence[MessagePart]) -> None:
        for position, part in enumerate(parts):
            kind, data = _part_columns(part)
            self._connection.execute(
                "INSERT INTO message_parts (message_id, position, kind, data, image_sha256)"
                " VALUES (?, ?, ?, ?, ?)",
                (message_id, position, kind, json.dumps(data), part.sha256 if isinstance(part, ImagePart) else None),
            )

    def _with_parts(self, rows: Sequence[sqlite3.Row]) -> list[Message]:
        """Messages from their rows, each with its parts (one query per 500 messages)."""
        ids = [row["id"] for row in rows]
        parts: dict[int, list[MessagePart]] = {}
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start:start + _IDS_PER_QUERY]
            for part_row in self._connection.execute(
                f"SELECT * FROM message_parts WHERE message_id IN ({', '.join('?' for _ in chunk)})"
                " ORDER BY message_id, position",
                chunk,
            ):
                parts.setdefault(part_row["message_id"], []).append(_part_from_row(part_row))
        return [_message_from_row(row, parts.get(row["id"], [])) for row in rows]

    # Search

    def search(self, query: str, *, limit: int = 50) -> list[SearchHit]:
        """Messages whose content or reasoning contains every word of ``query``, best first.

        Each word of the query also matches longer words that start with it ("pyth" finds
        "Python"), and any text is a valid query: words are quoted before they reach FTS5, so
        quotes, ``*``, ``-``, ``:`` or parentheses are never read as query syntax. A query
        without any letters or digits finds nothing. Results are ranked by bm25 relevance,
        newer messages first among equally relevant ones, and at most ``limit`` are returned.
        """
        # FTS5 reads the expression as a C string, so a NUL would end it mid-quote. Each
        # whitespace-separated word becomes a quoted prefix phrase (a quote inside is doubled);
        # punctuation within it is dropped by the tokenizer, and a word made only of
        # punctuation becomes an empty phrase, which FTS5 ignores.
        words = query.replace("\0", " ").split()
        if not words:
            return []
        expression = " ".join('"' + word.replace('"', '""') + '"*' for word in words)
        rows = self._connection.execute(
            "SELECT messages.conversation_id, conversations.title, messages.id, messages.role,"
            " messages.created_at,"
            " snippet(message_search, -1, ?, ?, '…', 12) AS snippet"
            " FROM message_search"
            " JOIN messages ON messages.id = message_search.rowid"
            " JOIN conversations ON conversations.id = messages.conversation_id"
            " WHERE message_search MATCH ?"
            " ORDER BY bm25(message_search), messages.created_at DESC, messages.id DESC"
            " LIMIT ?",
            (MATCH_START, MATCH_END, expression, limit),
        )
        return [
            SearchHit(
                conversation_id=row["conversation_id"],
                conversation_title=row["title"],
                message_id=row["id"],
                role=row["role"],
                created_at=row["created_at"],
                snippet=row["snippet"],
            )
            for row in rows
        ]

    # Shared by the methods above; ``table`` and the column names are always literals of this
    # module, never caller input, so formatting them into the SQL is safe.

    def _update_row(self, table: str, row_id: int, changes: dict[str, object]) -> None:
        if not changes:
            self._require_row(table, row_id)
            return
        assignments = ", ".join(f"{column} = ?" for column in changes)
        cursor = self._connection.execute(
            f"UPDATE {table} SET {assignments} WHERE id = ?", (*changes.values(), row_id)
        )
        if cursor.rowcount == 0:
            raise NotFoundError(f"no row with id {row_id} in {table}")

    def _delete_row(self, table: str, row_id: int) -> None:
        cursor = self._connection.execute(f"DELETE FROM {table} WHERE id = ?", (row_id,))
        if cursor.rowcount == 0:
            raise NotFoundError(f"no row with id {row_id} in {table}")

    def _require_row(self, table: str, row_id: int) -> None:
        found = self._connection.execute(f"SELECT 1 FROM {table} WHERE id = ?", (row_id,))
        if found.fetchone() is None:
            raise NotFoundError(f"no row with id {row_id} in {table}")


def _conversation_from_row(row: sqlite3.Row) -> Conversation:
    damaged: list[str] = []
    title = _stored_text(row, "title", damaged)
    conversation = Conversation(
        id=row["id"],
        title=title,
        created_at=_stored_time(row, "created_at", damaged),
        updated_at=_stored_time(row, "updated_at", damaged),
        model=_stored_text(row, "model", damaged),
        system_prompt=_stored_text(row, "system_prompt", damaged),
        generation_settings=_stored_settings(row, damaged),
        pinned=bool(row["pinned"]),
    )
    if not damaged:
        return conversation
    logger.warning("Conversation %s is damaged: unreadable %s", row["id"], ", ".join(damaged))
    shown = DAMAGED_TITLE if "title" in damaged or not title else f"{DAMAGED_TITLE}: {title}"
    return replace(conversation, title=shown)


def _decoded_text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _stored_text(row: sqlite3.Row, column: str, damaged: list[str]) -> str:
    value = row[column]
    if isinstance(value, str):
        return value
    damaged.append(column)
    return _decoded_text(value) if isinstance(value, bytes) else ""


def _stored_time(row: sqlite3.Row, column: str, damaged: list[str]) -> float:
    value = row[column]
    # SQLite keeps whatever it is given in a REAL column: text, a blob, NULL for NaN.
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    damaged.append(column)
    return 0.0


def _stored_number(row: sqlite3.Row, column: str, kind: type[int] | type[float]) -> int | float | None:
    value = row[column]
    if isinstance(value, int | float) and math.isfinite(value) and (kind is float or isinstance(value, int)):
        return kind(value)
    return None


def _stored_settings(row: sqlite3.Row, damaged: list[str]) -> dict[str, Any]:
    try:
        settings = json.loads(row["generation_settings"])
    except (TypeError, ValueError, RecursionError):
        settings = None
    if isinstance(settings, dict):
        return settings
    damaged.append("generation_settings")
    return {}


def _stats_columns(stats: GenerationStats) -> dict[str, object]:
    return {
        "prompt_tokens": stats.prompt_tokens,
        "evaluated_prompt_tokens": stats.evaluated_prompt_tokens,
        "generated_tokens": stats.generated_tokens,
        "time_to_first_token_s": stats.time_to_first_token_s,
        "tokens_per_second": stats.tokens_per_second,
        "stop_reason": StopReason(stats.stop_reason),
    }


def _part_columns(part: MessagePart) -> tuple[str, dict[str, Any]]:
    if isinstance(part, ImagePart):
        return "image", {"sha256": part.sha256, "media_type": part.media_type}
    if isinstance(part, ToolCallPart):
        return "tool_call", {"call_id": part.call_id, "name": part.name, "arguments": part.arguments}
    if isinstance(part, ToolResultPart):
        return "tool_result", {
            "call_id": part.call_id, "name": part.name, "text": part.text, "is_error": part.is_error,
            "server": part.server, "outcome": part.outcome, "duration_s": part.duration_s,
        }
    raise TypeError(f"not a message part: {part!r}")


_PART_TYPES = {"image": ImagePart, "tool_call": ToolCallPart, "tool_result": ToolResultPart}


def _part_from_row(row: sqlite3.Row) -> MessagePart | None:
    """The part, or None when the row cannot be one (see "Damaged rows")."""
    try:
        return _PART_TYPES[row["kind"]](**json.loads(row["data"]))
    except (KeyError, TypeError, ValueError, RecursionError):
        return None


def _message_from_row(row: sqlite3.Row, parts: Sequence[MessagePart | None] = ()) -> Message:
    damaged: list[str] = []
    readable_parts = tuple(part for part in parts if part is not None)
    if len(readable_parts) != len(parts):
        damaged.append("parts")
    state = next((state for state in MessageState if state == row["state"]), None)
    if state is None:
        damaged.append("state")
    if row["role"] not in MESSAGE_ROLES:
        damaged.append("role")
    error = row["error"]
    message = Message(
        id=row["id"],
        conversation_id=row["conversation_id"],
        role=_stored_text(row, "role", damaged),
        content=_stored_text(row, "content", damaged),
        reasoning=_stored_text(row, "reasoning", damaged),
        state=state or MessageState.FAILED,
        created_at=_stored_time(row, "created_at", damaged),
        stats=_stored_stats(row, damaged),
        error=error if error is None or isinstance(error, str) else _stored_text(row, "error", damaged),
        parent_id=row["parent_id"],
        parts=readable_parts,
    )
    if not damaged:
        return message
    logger.warning("Message %s is damaged: unreadable %s", row["id"], ", ".join(damaged))
    return replace(
        message,
        state=MessageState.FAILED,
        error=f"This message is damaged in the conversation file (unreadable {', '.join(damaged)}).",
    )


def _stored_stats(row: sqlite3.Row, damaged: list[str]) -> GenerationStats | None:
    # update_message writes the statistics columns all together, so one stands for all.
    if row["stop_reason"] is None:
        return None
    values = {
        "prompt_tokens": _stored_number(row, "prompt_tokens", int),
        "evaluated_prompt_tokens": _stored_number(row, "evaluated_prompt_tokens", int),
        "generated_tokens": _stored_number(row, "generated_tokens", int),
        "time_to_first_token_s": _stored_number(row, "time_to_first_token_s", float),
        "tokens_per_second": _stored_number(row, "tokens_per_second", float),
    }
    stop_reason = next((reason for reason in StopReason if reason == row["stop_reason"]), None)
    if stop_reason is None or None in values.values():
        damaged.append("statistics")
        return None
    return GenerationStats(**values, stop_reason=stop_reason)
