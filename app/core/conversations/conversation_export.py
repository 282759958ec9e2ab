"""Conversations as files: Markdown to read and share, JSON to back up and import again.

The JSON format, version 2. A file holds either one conversation::

    {"format": "qwen-local-chat/conversation", "version": 2, <conversation fields>}

or several, as ``export_all`` writes them::

    {"format": "qwen-local-chat/conversations", "version": 2, "conversations": [{<fields>}, ...]}

Conversation fields, in this order: ``title`` (text), ``created_at`` and ``updated_at`` (seconds
since the epoch), ``model``, ``system_prompt`` (text), ``generation_settings`` (an object),
``pinned`` (true/false), ``current_message`` (the ``id`` of the message shown last, or null) and
``messages``: every message of every branch (a regenerated reply and an edited question keep
their alternatives), each after its parent, as objects with ``id`` (a number, unique in the
conversation), ``parent`` (the ``id`` of the message it follows, or null for a first one),
``role``, ``content``, ``reasoning`` (text), ``parts`` (a list, see below), ``state`` (one of
``MessageState``'s values), ``created_at``, ``stats`` (null, or an object with
``GenerationStats``'s fields, ``stop_reason`` being one of ``StopReason``'s values) and
``error`` (null or text). Ids are numbered 1, 2, … in each conversation; an imported
conversation gets new ones. Readers ignore fields they do not know.

Parts, each an object with a ``type``: ``{"type": "image", "media_type", "sha256", "data"}``
(the bytes in base64, checked against the SHA-256 on import), ``{"type": "tool_call", "id",
"name", "arguments"}`` (arguments an object) and ``{"type": "tool_result", "tool_call_id",
"name", "content", "is_error", "server", "outcome", "duration_s"}`` (the last three optional:
who ran it, ``ToolOutcome``'s value, seconds).

Version 1 files (the first release) are still read: their messages have no ``id``, ``parent``
or ``parts`` and form one chain, the last message being the current one.

Files are written canonically: fields in the order above, two-space indent, non-ASCII text as
is (UTF-8), a final newline. Exporting an imported file therefore gives back the same bytes.

Importing trusts nothing in the file: ``read_export`` refuses a file over ``MAX_IMPORT_BYTES``
before reading it and text that is not UTF-8; ``from_json`` checks every field (kinds, finite
numbers, times in range, whole Unicode text) and the bounds below, naming the first problem;
``import_conversations`` stores all of the file in one transaction or nothing. All of it runs on
the store worker, never the GUI thread (``ConversationLibrary.import_file``).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from app.core.conversations.conversation_store import ConversationStore
from app.core.domain.conversations import (
    IMAGE_MEDIA_TYPES,
    MESSAGE_ROLES,
    Conversation,
    ConversationTree,
    ImagePart,
    Message,
    MessagePart,
    MessageState,
    ToolCallPart,
    ToolOutcome,
    ToolResultPart,
)
from app.core.domain.generation import GenerationStats, StopReason

_Choice = TypeVar("_Choice", MessageState, StopReason)

CONVERSATION_FORMAT = "qwen-local-chat/conversation"
ALL_CONVERSATIONS_FORMAT = "qwen-local-chat/conversations"
FORMAT_VERSION = 2

# How Markdown exports name the speaker of each role; other roles appear as they are stored.
_SPEAKERS = {"user": "You", "assistant": "Qwen"}

_STOP_REASON_NOTES = {
    StopReason.END_OF_TURN: None,
    StopReason.MAX_TOKENS: "stopped at the token limit",
    StopReason.CONTEXT_FULL: "stopped: the context was full",
    StopReason.CANCELLED: "stopped by the user",
    StopReason.CONNECTION_LOST: None,  # the state's note says it, with the reason
}

ReadImage = Callable[[str], bytes]
"""The bytes of the stored image with this SHA-256."""

# Bounds on one imported file, far above what the app itself writes, so that a backup always
# comes back, and low enough that no file can exhaust memory or freeze the window.
#
# 256 MiB of file: parsed, a file takes about four times its size in memory (the text, then
# Python objects for every value), 1 GiB at this bound, beside a loaded model. A text-only
# backup of a thousand long chats is about 200 MB; images are what make files bigger.
MAX_IMPORT_BYTES = 256 * 1024 * 1024
# JSON objects (messages, parts, statistics, ...) in one file: a thousand chats of forty
# messages hold about 80,000. Counted while parsing, so a file of tiny objects stops early.
MAX_OBJECTS = 1_000_000
MAX_CONVERSATIONS = 100_000
MAX_MESSAGES = 100_000  # in one conversation, every branch counted
# Characters in one text field: the largest context (262,144 tokens) holds about a million
# characters, so nothing the app wrote comes near; the window shows a message this long slowly.
MAX_TEXT_CHARACTERS = 2_000_000
# Levels of objects and lists in free-form values (generation settings, tool-call arguments).
MAX_NESTING = 32
# Numbers in free-form values: beyond 2**53 integers are no longer exact as JSON numbers and
# overflow the integers of SQLite and Qt.
_LARGEST_FREE_NUMBER = 2**53

_READ_CHUNK_BYTES = 4 * 1024 * 1024


class ConversationImportError(ValueError):
    """A file cannot be imported; the message says why in words meant for the user."""


@dataclass(frozen=True)
class ImportedConversation:
    """A conversation read from a file, not stored yet: its tree (ids as in the file) and the
    bytes of the images its parts show."""

    tree: ConversationTree
    images: dict[ImagePart, bytes]


# Markdown


def to_markdown(conversation: Conversation, messages: Sequence[Message]) -> str:
    """The conversation (the branch shown) as a Markdown document.

    The title is a heading; each message follows a bold "You" or "Qwen" line, with the model's
    reasoning folded into a ``<details>`` block titled "Thinking" and the reply's statistics in
    a small line under it.
    """
    blocks = [f"# {conversation.title or 'New chat'}"]
    if conversation.model:
        blocks.append(f"Model: `{conversation.model}`")
    if conversation.system_prompt:
        blocks.append(f"**System prompt**\n\n{conversation.system_prompt}")
    for message in messages:
        blocks.append(f"**{_SPEAKERS.get(message.role, message.role)}**")
        if message.reasoning:
            blocks.append(
                f"<details><summary>Thinking</summary>\n\n{message.reasoning}\n\n</details>"
            )
        if message.content:
            blocks.append(message.content)
        notes = _message_notes(message)
        if notes:
            blocks.append(f"<sub>{' · '.join(notes)}</sub>")
    return "\n\n".join(blocks) + "\n"


def _message_notes(message: Message) -> list[str]:
    notes = []
    if message.stats is not None:
        notes += [
            f"{message.stats.generated_tokens} tokens",
            f"{message.stats.tokens_per_second:.1f} tokens/s",
            f"{message.stats.time_to_first_token_s:.2f} s to first token",
        ]
        stop_note = _STOP_REASON_NOTES[message.stats.stop_reason]
        if stop_note:
            notes.append(stop_note)
    if message.state is MessageState.INTERRUPTED:
        notes.append(f"interrupted: {message.error}" if message.error else "interrupted")
    if message.state is MessageState.FAILED:
        notes.append(f"failed: {message.error}" if message.error else "failed")
    return notes


# JSON out


def to_json(tree: ConversationTree, read_image: ReadImage) -> str:
    """One whole conversation as a JSON document in the format of the module docstring."""
    return _dump(
        {"format": CONVERSATION_FORMAT, "version": FORMAT_VERSION, **_conversation_fields(tree, read_image)}
    )


def export_all(store: ConversationStore) -> tuple[str, int]:
    """Every conversation of ``store``, whole, as one JSON document in the order they were
    created (the order importing recreates, so the round trip is exact); and how many."""
    conversations = sorted(store.list_conversations(), key=lambda conversation: conversation.id)
    document = {
        "format": ALL_CONVERSATIONS_FORMAT,
        "version": FORMAT_VERSION,
        "conversations": [
            _conversation_fields(store.conversation_tree(conversation.id), _image_reader(store))
            for conversation in conversations
        ],
    }
    return _dump(document), len(conversations)


def export_conversation(store: ConversationStore, conversation_id: int, kind: str) -> str:
    """One conversation of ``store`` as Markdown (``kind`` "md": the branch shown) or JSON
    ("json": the whole tree)."""
    if kind == "md":
        return to_markdown(store.get_conversation(conversation_id), store.messages(conversation_id))
    return to_json(store.conversation_tree(conversation_id), _image_reader(store))


def _image_reader(store: ConversationStore) -> ReadImage:
    return lambda sha256: store.image_path(sha256).read_bytes()


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def _conversation_fields(tree: ConversationTree, read_image: ReadImage) -> dict[str, Any]:
    conversation = tree.conversation
    numbers = {message.id: number for number, message in enumerate(tree.messages, start=1)}
    return {
        "title": conversation.title,
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "model": conversation.model,
        "system_prompt": conversation.system_prompt,
        "generation_settings": conversation.generation_settings,
        "pinned": conversation.pinned,
        "current_message": numbers.get(tree.current_message_id),
        "messages": [_message_fields(message, numbers, read_image) for message in tree.messages],
    }


def _message_fields(message: Message, numbers: dict[int, int], read_image: ReadImage) -> dict[str, Any]:
    stats = message.stats
    return {
        "id": numbers[message.id],
        "parent": numbers.get(message.parent_id),
        "role": message.role,
        "content": message.content,
        "reasoning": message.reasoning,
        "parts": [_part_fields(part, read_image) for part in message.parts],
        "state": str(message.state),
        "created_at": message.created_at,
        "stats": None
        if stats is None
        else {
            "prompt_tokens": stats.prompt_tokens,
            "evaluated_prompt_tokens": stats.evaluated_prompt_tokens,
            "generated_tokens": stats.generated_tokens,
            "time_to_first_token_s": stats.time_to_first_token_s,
            "tokens_per_second": stats.tokens_per_second,
            "stop_reason": str(stats.stop_reason),
        },
        "error": message.error,
    }


def _part_fields(part: MessagePart, read_image: ReadImage) -> dict[str, Any]:
    if isinstance(part, ImagePart):
        data = base64.b64encode(read_image(part.sha256)).decode("ascii")
        return {"type": "image", "media_type": part.media_type, "sha256": part.sha256, "data": data}
    if isinstance(part, ToolCallPart):
        return {"type": "tool_call", "id": part.call_id, "name": part.name, "arguments": part.arguments}
    return {
        "type": "tool_result",
        "tool_call_id": part.call_id,
        "name": part.name,
        "content": part.text,
        "is_error": part.is_error,
        "server": part.server,
        "outcome": part.outcome,
        "duration_s": part.duration_s,
    }


# JSON in


def read_export(path: Path) -> str:
    """The text of the file at ``path``, for ``from_json``. Raises ``ConversationImportError``
    for a file over ``MAX_IMPORT_BYTES`` (before reading any of it), an empty one and one that
    is not UTF-8 text (a picture or a program renamed .json), and ``OSError`` as reading does."""
    size = path.stat().st_size
    if size > MAX_IMPORT_BYTES:
        raise ConversationImportError(
            f"The file is {_megabytes(size)}; files over {_megabytes(MAX_IMPORT_BYTES)} are not imported."
        )
    if size == 0:
        raise ConversationImportError("The file is empty.")
    # Decoded a piece at a time: one decode of the whole file would hold the interpreter for
    # a quarter of a second, during which the window could not draw (joining the pieces still
    # copies the text at once: ~0.1 s for 200 MB, bench/README.md). "-sig": a file saved by
    # Notepad starts with a byte-order mark, which is no part of the JSON.
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pieces = []
    offset = 0
    with path.open("rb") as file:
        while chunk := file.read(_READ_CHUNK_BYTES):
            pieces.append(_decoded(decoder, chunk, offset))
            offset += len(chunk)
            if "\0" in pieces[-1]:  # valid UTF-8 but no text file holds a NUL: a binary file
                raise ConversationImportError("The file is not a Qwen Local Chat export: it is binary data, not text.")
    pieces.append(_decoded(decoder, b"", offset, final=True))
    return "".join(pieces)


def _decoded(decoder: codecs.IncrementalDecoder, chunk: bytes, offset: int, *, final: bool = False) -> str:
    try:
        return decoder.decode(chunk, final)
    except UnicodeDecodeError as error:
        raise ConversationImportError(
            "The file is not a Qwen Local Chat export: it is not UTF-8 text "
            f"(byte {offset + error.start:,} is not part of any character)."
        ) from None


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):,.0f} MB"


def from_json(text: str) -> list[ImportedConversation]:
    """The conversations of an exported file of either kind and version, checked field by field.

    The returned trees are not stored yet: their ids are the file's. Raises
    ``ConversationImportError`` when the text is not JSON, not this format, from a newer format
    version, or has a missing, wrongly typed or inconsistent field.
    """
    try:
        document = json.loads(text, object_hook=_ObjectCounter())
    except json.JSONDecodeError as error:
        if text.lstrip().startswith("#"):
            raise ConversationImportError(
                "The file is a Markdown export, which is for reading: import a JSON export instead."
            ) from None
        raise ConversationImportError(
            "The file is not a Qwen Local Chat export: it is not valid JSON "
            f"({error.msg} at line {error.lineno}, column {error.colno})."
        ) from error
    except RecursionError:
        raise ConversationImportError("The file is not a Qwen Local Chat export: it is nested far too deeply.") from None
    file_format = document.get("format") if isinstance(document, dict) else None
    if file_format not in (CONVERSATION_FORMAT, ALL_CONVERSATIONS_FORMAT):
        raise ConversationImportError(
            "The file is not a Qwen Local Chat conversation export."
        )
    version = document.get("version")
    if _kind(version) != "a number" or not math.isfinite(version) or version < 1 or version != int(version):
        raise ConversationImportError(
            "The file is a Qwen Local Chat export without a valid format version."
        )
    if version > FORMAT_VERSION:
        raise ConversationImportError(
            f"The file was exported by a newer version of Qwen Local Chat (format version "
            f"{int(version)}; this version reads up to {FORMAT_VERSION}). "
            "Update the app to import it."
        )
    reader = _Reader(int(version))
    if file_format == CONVERSATION_FORMAT:
        return [reader.conversation(document, "the conversation")]
    listed = _field(document, "conversations", list, "the file")
    if len(listed) > MAX_CONVERSATIONS:
        raise ConversationImportError(
            f"The file holds {len(listed):,} conversations; at most {MAX_CONVERSATIONS:,} are imported at once."
        )
    return [
        reader.conversation(_as_object(entry, f"conversation {number}"), f"conversation {number}")
        for number, entry in enumerate(listed, start=1)
    ]


class _ObjectCounter:
    """An ``object_hook`` that stops the parse past ``MAX_OBJECTS`` objects. Being Python, it
    also lets the GUI thread run between objects: the parser alone would hold the interpreter
    for half a second on a large file."""

    def __init__(self) -> None:
        self._count = 0

    def __call__(self, value: dict[str, Any]) -> dict[str, Any]:
        self._count += 1
        if self._count > MAX_OBJECTS:
            raise ConversationImportError(
                f"The file holds more than {MAX_OBJECTS:,} objects (messages, parts, statistics); "
                "it is not a Qwen Local Chat export, or far larger than one."
            )
        return value


class DuplicateChoice(StrEnum):
    """What an import does with conversations that are already in the store."""

    ASK = "ask"  # store nothing if there are any; report them (``find_duplicates``) instead
    SKIP = "skip"  # keep the stored ones, import only the others
    REPLACE = "replace"  # the imported ones take the stored ones' place
    KEEP_BOTH = "keep_both"  # import them as copies


def fingerprint(tree: ConversationTree) -> tuple:
    """What makes two conversations the same one: title, creation time and every message of
    every branch (ids differ between stores, so messages count by their order)."""
    conversation = tree.conversation
    return (
        conversation.title,
        conversation.created_at,
        tuple((message.role, message.content, message.reasoning, message.created_at) for message in tree.messages),
    )


def find_duplicates(store: ConversationStore, imported: list[ImportedConversation]) -> dict[int, int]:
    """``{index in imported: id of the stored conversation it duplicates}``."""
    candidates: dict[tuple[str, float], list[int]] = {}
    for conversation in store.list_conversations():
        candidates.setdefault((conversation.title, conversation.created_at), []).append(conversation.id)
    duplicates = {}
    for index, item in enumerate(imported):
        key = (item.tree.conversation.title, item.tree.conversation.created_at)
        wanted = fingerprint(item.tree)
        for stored_id in candidates.get(key, ()):
            if fingerprint(store.conversation_tree(stored_id)) == wanted:
                duplicates[index] = stored_id
                break
    return duplicates


@dataclass(frozen=True)
class ImportOutcome:
    stored: list[Conversation]  # as stored, in the file's order
    already_here: list[Conversation]  # the stored conversations the file repeats
    total: int  # conversations in the file


def import_conversations(
    store: ConversationStore, text: str, duplicates: DuplicateChoice = DuplicateChoice.KEEP_BOTH
) -> ImportOutcome:
    """Add the conversations of an exported file to ``store``. With ``ASK``, nothing is stored
    while the file repeats stored conversations; the outcome names them.

    The whole file is checked before anything is stored, and stored in one transaction, so a
    file with an error, or a failure while storing it (a full disk), adds nothing. Each
    conversation gets new ids and keeps everything else, timestamps and branches included.
    """
    imported = from_json(text)
    found = find_duplicates(store, imported) if duplicates is not DuplicateChoice.KEEP_BOTH else {}
    already_here = [store.get_conversation(stored_id) for stored_id in found.values()]
    if found and duplicates is DuplicateChoice.ASK:
        return ImportOutcome([], already_here, len(imported))
    stored = []
    with store.atomically():
        for index, conversation in enumerate(imported):
            if index in found and duplicates is DuplicateChoice.SKIP:
                continue
            # Image files left by a rolled-back import are removed when the store next opens.
            for part, data in conversation.images.items():
                store.save_image(data, part.media_type)
            stored.append(store.restore_conversation(conversation.tree))
            if index in found and duplicates is DuplicateChoice.REPLACE:
                store.delete_conversation(found[index])
    return ImportOutcome(stored, already_here, len(imported))


class _Reader:
    """Reads conversations of one format version."""

    def __init__(self, version: int) -> None:
        self._version = version

    def conversation(self, fields: dict[str, Any], where: str) -> ImportedConversation:
        conversation = Conversation(
            id=0,
            title=_field(fields, "title", str, where),
            created_at=_timestamp(fields, "created_at", where),
            updated_at=_timestamp(fields, "updated_at", where),
            model=_field(fields, "model", str, where),
            system_prompt=_field(fields, "system_prompt", str, where),
            generation_settings=_free_form(fields, "generation_settings", where),
            pinned=_field(fields, "pinned", bool, where),
        )
        listed = _field(fields, "messages", list, where)
        if len(listed) > MAX_MESSAGES:
            raise ConversationImportError(
                f"In {where}, there are {len(listed):,} messages; a conversation holds at most {MAX_MESSAGES:,}."
            )
        messages: list[Message] = []
        ids: set[int] = set()
        images: dict[ImagePart, bytes] = {}
        for number, entry in enumerate(listed, start=1):
            message_where = f"{where}, message {number}"
            entry = _as_object(entry, message_where)
            if self._version == 1:  # one chain, numbered in order
                message_id, parent_id, parts = number, (number - 1 or None), ()
            else:
                message_id = _count(entry, "id", message_where)
                parent_id = _optional_count(entry, "parent", message_where)
                if message_id in ids:
                    raise ConversationImportError(f'In {message_where}, the id {message_id} is used twice.')
                if parent_id is not None and parent_id not in ids:
                    raise ConversationImportError(
                        f'In {message_where}, "parent" must be the id of an earlier message, not {parent_id}.'
                    )
                parts = tuple(
                    _read_part(_as_object(part, f"{message_where}, part {index}"), f"{message_where}, part {index}", images)
                    for index, part in enumerate(_field(entry, "parts", list, message_where), start=1)
                )
            message = _read_message(entry, message_where, message_id, parent_id, parts)
            if (
                self._version == 1
                and message.state is MessageState.INTERRUPTED
                and message.stats is not None
                and message.stats.stop_reason is StopReason.CANCELLED
            ):
                # Version 1 had no state for a reply the user stopped; such a reply ended
                # through the engine, cancelled (as the schema 5 migration reads it too).
                message = replace(message, state=MessageState.STOPPED)
            messages.append(message)
            ids.add(message_id)
        if self._version == 1:
            current = messages[-1].id if messages else None
        else:
            current = _optional_count(fields, "current_message", where)
            if current is not None and current not in ids:
                raise ConversationImportError(
                    f'In {where}, "current_message" must be the id of one of its messages, not {current}.'
                )
        return ImportedConversation(ConversationTree(conversation, tuple(messages), current), images)


def _read_message(
    fields: dict[str, Any], where: str, message_id: int, parent_id: int | None, parts: tuple[MessagePart, ...]
) -> Message:
    stats_fields = _field(fields, "stats", dict, where, optional=True)
    stats = None
    if stats_fields is not None:
        stats_where = f"{where}, stats"
        stats = GenerationStats(
            prompt_tokens=_count(stats_fields, "prompt_tokens", stats_where),
            evaluated_prompt_tokens=_count(stats_fields, "evaluated_prompt_tokens", stats_where),
            generated_tokens=_count(stats_fields, "generated_tokens", stats_where),
            time_to_first_token_s=_number(stats_fields, "time_to_first_token_s", stats_where),
            tokens_per_second=_number(stats_fields, "tokens_per_second", stats_where),
            stop_reason=_choice(stats_fields, "stop_reason", StopReason, stats_where),
        )
    return Message(
        id=message_id,
        conversation_id=0,
        role=_role(fields, where),
        content=_field(fields, "content", str, where),
        reasoning=_field(fields, "reasoning", str, where),
        state=_choice(fields, "state", MessageState, where),
        created_at=_timestamp(fields, "created_at", where),
        stats=stats,
        error=_field(fields, "error", str, where, optional=True),
        parent_id=parent_id,
        parts=parts,
    )


def _read_part(fields: dict[str, Any], where: str, images: dict[ImagePart, bytes]) -> MessagePart:
    kind = _field(fields, "type", str, where)
    if kind == "image":
        media_type = _field(fields, "media_type", str, where)
        if media_type not in IMAGE_MEDIA_TYPES:
            raise ConversationImportError(f'In {where}, images of type "{media_type}" are not supported.')
        sha256 = _field(fields, "sha256", str, where).lower()
        try:
            data = base64.b64decode(_field(fields, "data", str, where), validate=True)
        except binascii.Error:
            raise ConversationImportError(f'In {where}, "data" is not base64.') from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ConversationImportError(f"In {where}, the image does not match its SHA-256: the file is damaged.")
        part = ImagePart(sha256, media_type)
        images[part] = data
        return part
    if kind == "tool_call":
        return ToolCallPart(
            _field(fields, "id", str, where), _field(fields, "name", str, where), _free_form(fields, "arguments", where)
        )
    if kind == "tool_result":
        return ToolResultPart(
            _field(fields, "tool_call_id", str, where),
            _field(fields, "name", str, where),
            _field(fields, "content", str, where),
            _field(fields, "is_error", bool, where),
            # Files written before approvals existed have none of these three.
            _field(fields, "server", str, where) if "server" in fields else "",
            _tool_outcome(fields, where),
            _duration(fields, where),
        )
    raise ConversationImportError(
        f'In {where}, "type" must be one of "image", "tool_call", "tool_result", not "{kind}".'
    )


def _tool_outcome(fields: dict[str, Any], where: str) -> str:
    if fields.get("outcome", "") == "":
        return ""
    return _choice(fields, "outcome", ToolOutcome, where).value


def _duration(fields: dict[str, Any], where: str) -> float:
    if "duration_s" not in fields:
        return 0.0
    value = _field(fields, "duration_s", float, where)
    if not math.isfinite(value) or not 0 <= value <= _LARGEST_FREE_NUMBER:
        raise ConversationImportError(f'In {where}, "duration_s" must be a number of seconds of at least 0.')
    return float(value)


def _as_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConversationImportError(f"In {where}, expected an object but found {_kind(value)}.")
    return value


def _field(
    fields: dict[str, Any], name: str, kind: type, where: str, *, optional: bool = False
) -> Any:
    if name not in fields:
        raise ConversationImportError(f'In {where}, the field "{name}" is missing.')
    value = fields[name]
    if value is None and optional:
        return None
    if isinstance(value, str):
        _check_text(value, name, where)
    # bool is an int in Python, but true/false is not a number in JSON: compare JSON kinds.
    if _kind(value) != _KIND_NAMES[kind]:
        expected = _KIND_NAMES[kind] + (" or null" if optional else "")
        raise ConversationImportError(
            f'In {where}, "{name}" must be {expected}, not {_kind(value)}.'
        )
    return value


def _check_text(text: str, name: str, where: str) -> None:
    if len(text) > MAX_TEXT_CHARACTERS:
        raise ConversationImportError(
            f'In {where}, "{name}" holds {len(text):,} characters; a text holds at most {MAX_TEXT_CHARACTERS:,}.'
        )
    if not _is_unicode(text):
        raise ConversationImportError(f'In {where}, "{name}" holds broken text (not valid Unicode).')


def _free_form(fields: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    """An object of any content, stored as JSON and read back by code that trusts it: checked
    for depth, finite numbers in range and text as any field is."""
    value = _field(fields, name, dict, where)
    _check_free_value(value, name, where, 1)
    return value


def _check_free_value(value: Any, name: str, where: str, depth: int) -> None:
    """``depth``: the levels of objects and lists ``value`` is in, itself included if it is one."""
    if isinstance(value, str):
        _check_text(value, name, where)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConversationImportError(f'In {where}, "{name}" holds {value}, not a finite number.')
    elif isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > _LARGEST_FREE_NUMBER:
        raise ConversationImportError(f'In {where}, "{name}" holds a number too large to keep exactly.')
    elif isinstance(value, dict | list):
        if depth > MAX_NESTING:
            raise ConversationImportError(f'In {where}, "{name}" is nested more than {MAX_NESTING} levels deep.')
        for key in value if isinstance(value, dict) else ():
            _check_text(key, name, where)
        for item in value.values() if isinstance(value, dict) else value:
            _check_free_value(item, name, where, depth + 1)


def _number(fields: dict[str, Any], name: str, where: str) -> float:
    raw = _field(fields, name, float, where)
    try:
        value = float(raw)
    except OverflowError:  # an integer of hundreds of digits
        raise ConversationImportError(f'In {where}, "{name}" is far too large a number.') from None
    if not math.isfinite(value):
        raise ConversationImportError(f'In {where}, "{name}" must be a finite number, not {value}.')
    return value


# Times are seconds since 1970; anything outside years 1970–9999 is damage, and would break every
# date shown for it.
LATEST_TIMESTAMP = 253_402_300_799.0  # 9999-12-31 23:59:59 UTC


def _timestamp(fields: dict[str, Any], name: str, where: str) -> float:
    value = _number(fields, name, where)
    if not 0 <= value <= LATEST_TIMESTAMP:
        raise ConversationImportError(
            f'In {where}, "{name}" must be a time between 1970 and 9999 (seconds since 1970), not {value:g}.'
        )
    return value


def _count(fields: dict[str, Any], name: str, where: str) -> int:
    value = _number(fields, name, where)
    if not value.is_integer() or value < 0:
        raise ConversationImportError(
            f'In {where}, "{name}" must be a whole number of at least 0, not {value:g}.'
        )
    return int(value)


def _optional_count(fields: dict[str, Any], name: str, where: str) -> int | None:
    if _field(fields, name, float, where, optional=True) is None:
        return None
    return _count(fields, name, where)


def _role(fields: dict[str, Any], where: str) -> str:
    role = _field(fields, "role", str, where)
    if role not in MESSAGE_ROLES:
        allowed = ", ".join(f'"{known}"' for known in MESSAGE_ROLES)
        raise ConversationImportError(f'In {where}, "role" must be one of {allowed}, not "{role}".')
    return role


def _choice(fields: dict[str, Any], name: str, choices: type[_Choice], where: str) -> _Choice:
    value = _field(fields, name, str, where)
    try:
        return choices(value)
    except ValueError:
        allowed = ", ".join(f'"{choice}"' for choice in choices)
        raise ConversationImportError(
            f'In {where}, "{name}" must be one of {allowed}, not "{value}".'
        ) from None


# What each JSON value is called in error messages, by the Python type json.loads gives it.
_KIND_NAMES = {
    str: "text",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "an object",
}


def _is_unicode(text: str) -> bool:
    """JSON can carry half of a character ("\\ud800"), which no file or database can store."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, int) and not isinstance(value, bool):
        return _KIND_NAMES[float]
    return _KIND_NAMES[type(value)]
