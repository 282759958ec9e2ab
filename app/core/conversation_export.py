"""Conversations as files: Markdown to read and share, JSON to back up and import again.

The JSON format, version 1. A file holds either one conversation::

    {"format": "qwen-local-chat/conversation", "version": 1, <conversation fields>}

or several, as ``export_all`` writes them::

    {"format": "qwen-local-chat/conversations", "version": 1, "conversations": [{<fields>}, ...]}

Conversation fields, in this order: ``title`` (text), ``created_at`` and ``updated_at`` (seconds
since the epoch), ``model``, ``system_prompt`` (text), ``generation_settings`` (an object),
``pinned`` (true/false) and ``messages``, a list in conversation order of objects with ``role``,
``content``, ``reasoning`` (text), ``state`` (one of ``MessageState``'s values), ``created_at``,
``stats`` (null, or an object with ``GenerationStats``'s fields, ``stop_reason`` being one of
``StopReason``'s values) and ``error`` (null or text). Ids are not part of the format: an
imported conversation gets new ones. Readers ignore fields they do not know.

Files are written canonically: fields in the order above, two-space indent, non-ASCII text as
is (UTF-8), a final newline. Exporting an imported file therefore gives back the same bytes.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from app.core.conversation_store import Conversation, ConversationStore, Message, MessageState
from app.core.generation_stats import GenerationStats, StopReason

_Choice = TypeVar("_Choice", MessageState, StopReason)

CONVERSATION_FORMAT = "qwen-local-chat/conversation"
ALL_CONVERSATIONS_FORMAT = "qwen-local-chat/conversations"
FORMAT_VERSION = 1

# How Markdown exports name the speaker of each role; other roles appear as they are stored.
_SPEAKERS = {"user": "You", "assistant": "Qwen"}

_STOP_REASON_NOTES = {
    StopReason.END_OF_TURN: None,
    StopReason.MAX_TOKENS: "stopped at the token limit",
    StopReason.CONTEXT_FULL: "stopped: the context was full",
    StopReason.CANCELLED: "stopped by the user",
}


class ConversationImportError(ValueError):
    """A file cannot be imported; the message says why in words meant for the user."""


# Markdown


def to_markdown(conversation: Conversation, messages: list[Message]) -> str:
    """The conversation as a Markdown document.

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
        notes.append("interrupted")
    if message.state is MessageState.FAILED:
        notes.append(f"failed: {message.error}" if message.error else "failed")
    return notes


# JSON out


def to_json(conversation: Conversation, messages: list[Message]) -> str:
    """One conversation as a JSON document in the format described in the module docstring."""
    return _dump(
        {
            "format": CONVERSATION_FORMAT,
            "version": FORMAT_VERSION,
            **_conversation_fields(conversation, messages),
        }
    )


def export_all(store: ConversationStore) -> str:
    """Every conversation of ``store`` as one JSON document, in the order they were created.

    Creation order (id order) is what importing recreates, so the round trip is exact.
    """
    conversations = sorted(store.list_conversations(), key=lambda conversation: conversation.id)
    return _dump(
        {
            "format": ALL_CONVERSATIONS_FORMAT,
            "version": FORMAT_VERSION,
            "conversations": [
                _conversation_fields(conversation, store.messages(conversation.id))
                for conversation in conversations
            ],
        }
    )


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def _conversation_fields(conversation: Conversation, messages: list[Message]) -> dict[str, Any]:
    return {
        "title": conversation.title,
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "model": conversation.model,
        "system_prompt": conversation.system_prompt,
        "generation_settings": conversation.generation_settings,
        "pinned": conversation.pinned,
        "messages": [_message_fields(message) for message in messages],
    }


def _message_fields(message: Message) -> dict[str, Any]:
    stats = message.stats
    return {
        "role": message.role,
        "content": message.content,
        "reasoning": message.reasoning,
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


# JSON in


def from_json(text: str) -> list[tuple[Conversation, list[Message]]]:
    """The conversations of an exported file of either kind, checked field by field.

    The returned objects are not stored yet, so their ``id`` and ``conversation_id`` are 0;
    ``ConversationStore.restore_conversation`` ignores them. Raises ``ConversationImportError``
    when the text is not JSON, not this format, from a newer format version, or has a missing
    or wrongly typed field.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConversationImportError(
            "The file is not a Qwen Local Chat export: it is not valid JSON "
            f"({error.msg} at line {error.lineno}, column {error.colno})."
        ) from error
    file_format = document.get("format") if isinstance(document, dict) else None
    if file_format not in (CONVERSATION_FORMAT, ALL_CONVERSATIONS_FORMAT):
        raise ConversationImportError(
            "The file is not a Qwen Local Chat conversation export."
        )
    version = document.get("version")
    if _kind(version) != "a number" or version < 1 or version != int(version):
        raise ConversationImportError(
            "The file is a Qwen Local Chat export without a valid format version."
        )
    if version > FORMAT_VERSION:
        raise ConversationImportError(
            f"The file was exported by a newer version of Qwen Local Chat (format version "
            f"{int(version)}; this version reads up to {FORMAT_VERSION}). "
            "Update the app to import it."
        )
    if file_format == CONVERSATION_FORMAT:
        return [_read_conversation(document, "the conversation")]
    listed = _field(document, "conversations", list, "the file")
    return [
        _read_conversation(_as_object(entry, f"conversation {number}"), f"conversation {number}")
        for number, entry in enumerate(listed, start=1)
    ]


def import_conversations(store: ConversationStore, text: str) -> list[Conversation]:
    """Add the conversations of an exported file to ``store``; return them as stored.

    The whole file is checked before anything is stored, so a file with an error adds nothing.
    Each conversation gets new ids and keeps everything else, timestamps included.
    """
    return [
        store.restore_conversation(conversation, messages)
        for conversation, messages in from_json(text)
    ]


def _read_conversation(fields: dict[str, Any], where: str) -> tuple[Conversation, list[Message]]:
    conversation = Conversation(
        id=0,
        title=_field(fields, "title", str, where),
        created_at=_number(fields, "created_at", where),
        updated_at=_number(fields, "updated_at", where),
        model=_field(fields, "model", str, where),
        system_prompt=_field(fields, "system_prompt", str, where),
        generation_settings=_field(fields, "generation_settings", dict, where),
        pinned=_field(fields, "pinned", bool, where),
    )
    listed = _field(fields, "messages", list, where)
    messages = []
    for number, entry in enumerate(listed, start=1):
        message_where = f"{where}, message {number}"
        messages.append(_read_message(_as_object(entry, message_where), message_where))
    return conversation, messages


def _read_message(fields: dict[str, Any], where: str) -> Message:
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
        id=0,
        conversation_id=0,
        role=_field(fields, "role", str, where),
        content=_field(fields, "content", str, where),
        reasoning=_field(fields, "reasoning", str, where),
        state=_choice(fields, "state", MessageState, where),
        created_at=_number(fields, "created_at", where),
        stats=stats,
        error=_field(fields, "error", str, where, optional=True),
    )


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
    # bool is an int in Python, but true/false is not a number in JSON: compare JSON kinds.
    if _kind(value) != _KIND_NAMES[kind]:
        expected = _KIND_NAMES[kind] + (" or null" if optional else "")
        raise ConversationImportError(
            f'In {where}, "{name}" must be {expected}, not {_kind(value)}.'
        )
    return value


def _number(fields: dict[str, Any], name: str, where: str) -> float:
    return float(_field(fields, name, float, where))


def _count(fields: dict[str, Any], name: str, where: str) -> int:
    value = _number(fields, name, where)
    if not value.is_integer() or value < 0:
        raise ConversationImportError(
            f'In {where}, "{name}" must be a whole number of at least 0, not {value:g}.'
        )
    return int(value)


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


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, int) and not isinstance(value, bool):
        return _KIND_NAMES[float]
    return _KIND_NAMES[type(value)]
