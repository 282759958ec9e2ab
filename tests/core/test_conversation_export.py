"""Markdown and JSON exports of conversations, and importing JSON exports, on real SQLite files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.conversation_export import (
    ConversationImportError,
    export_all,
    from_json,
    import_conversations,
    to_json,
    to_markdown,
)
from app.core.conversation_store import Conversation, ConversationStore, MessageState
from app.core.generation_stats import GenerationStats, StopReason
from tests.core.test_conversation_store import STATS, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.25)


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[ConversationStore]:
    with ConversationStore(tmp_path / "source.db", clock=clock) as opened:
        yield opened


@pytest.fixture
def other_store(tmp_path: Path) -> Iterator[ConversationStore]:
    with ConversationStore(tmp_path / "destination.db") as opened:
        yield opened


def _lisbon_conversation(store: ConversationStore, clock: FakeClock) -> Conversation:
    """A conversation that uses every field: settings, pin, reasoning, stats, a failure."""
    conversation = store.create_conversation(
        title="Trip to Lisbon",
        model="Qwen3.5-4B-Q4_K_M.gguf",
        system_prompt="Be brief.",
        generation_settings={"temperature": 0.7, "max_tokens": 2048, "thinking": True},
    )
    store.set_pinned(conversation.id, True)
    clock.now += 1.5
    store.add_message(conversation.id, "user", "Where should I eat pastéis de nata? 🥧")
    clock.now += 1
    reply = store.add_message(conversation.id, "assistant", state=MessageState.STREAMING)
    store.update_message(
        reply.id,
        content="Try **Manteigaria** in Chiado.",
        reasoning="The user wants a bakery.\nChiado is central.",
        state=MessageState.COMPLETE,
        stats=STATS,
    )
    clock.now += 60
    store.add_message(conversation.id, "user", "And dinner?")
    clock.now += 1
    failed = store.add_message(conversation.id, "assistant", state=MessageState.STREAMING)
    store.update_message(
        failed.id, content="Tasca", state=MessageState.FAILED, error="out of memory"
    )
    return store.get_conversation(conversation.id)


def test_markdown_export_reads_like_the_conversation(
    store: ConversationStore, clock: FakeClock
) -> None:
    conversation = _lisbon_conversation(store, clock)

    markdown = to_markdown(conversation, store.messages(conversation.id))

    assert markdown == (
        "# Trip to Lisbon\n"
        "\n"
        "Model: `Qwen3.5-4B-Q4_K_M.gguf`\n"
        "\n"
        "**System prompt**\n"
        "\n"
        "Be brief.\n"
        "\n"
        "**You**\n"
        "\n"
        "Where should I eat pastéis de nata? 🥧\n"
        "\n"
        "**Qwen**\n"
        "\n"
        "<details><summary>Thinking</summary>\n"
        "\n"
        "The user wants a bakery.\n"
        "Chiado is central.\n"
        "\n"
        "</details>\n"
        "\n"
        "Try **Manteigaria** in Chiado.\n"
        "\n"
        "<sub>57 tokens · 41.5 tokens/s · 0.25 s to first token</sub>\n"
        "\n"
        "**You**\n"
        "\n"
        "And dinner?\n"
        "\n"
        "**Qwen**\n"
        "\n"
        "Tasca\n"
        "\n"
        "<sub>failed: out of memory</sub>\n"
    )


def test_markdown_export_notes_why_a_reply_stopped_early(store: ConversationStore) -> None:
    conversation = store.create_conversation()
    reply = store.add_message(conversation.id, "assistant", "Half", state=MessageState.STREAMING)
    stopped = GenerationStats(10, 10, 3, 0.5, 12.0, StopReason.CANCELLED)
    store.update_message(reply.id, state=MessageState.COMPLETE, stats=stopped)
    store.add_message(conversation.id, "assistant", "Cut", state=MessageState.INTERRUPTED)

    markdown = to_markdown(conversation, store.messages(conversation.id))

    assert markdown.startswith("# New chat\n\n**Qwen**\n\nHalf\n\n")
    notes = "3 tokens · 12.0 tokens/s · 0.50 s to first token · stopped by the user"
    assert f"<sub>{notes}</sub>" in markdown
    assert markdown.endswith("**Qwen**\n\nCut\n\n<sub>interrupted</sub>\n")


def test_json_export_is_a_versioned_document_with_every_field(
    store: ConversationStore, clock: FakeClock
) -> None:
    conversation = _lisbon_conversation(store, clock)

    text = to_json(conversation, store.messages(conversation.id))
    document = json.loads(text)

    assert text.endswith("}\n")
    assert "pastéis de nata? 🥧" in text  # UTF-8 as is, not \\u escapes
    assert list(document) == [
        "format",
        "version",
        "title",
        "created_at",
        "updated_at",
        "model",
        "system_prompt",
        "generation_settings",
        "pinned",
        "messages",
    ]
    assert (document["format"], document["version"]) == ("qwen-local-chat/conversation", 1)
    assert document["title"] == "Trip to Lisbon"
    assert document["created_at"] == 1_700_000_000.25
    assert document["updated_at"] == 1_700_000_063.75
    assert document["pinned"] is True
    assert document["generation_settings"] == {
        "temperature": 0.7,
        "max_tokens": 2048,
        "thinking": True,
    }
    assert document["messages"][1] == {
        "role": "assistant",
        "content": "Try **Manteigaria** in Chiado.",
        "reasoning": "The user wants a bakery.\nChiado is central.",
        "state": "complete",
        "created_at": 1_700_000_002.75,
        "stats": {
            "prompt_tokens": 120,
            "evaluated_prompt_tokens": 30,
            "generated_tokens": 57,
            "time_to_first_token_s": 0.25,
            "tokens_per_second": 41.5,
            "stop_reason": "end_of_turn",
        },
        "error": None,
    }
    assert document["messages"][3]["state"] == "failed"
    assert document["messages"][3]["error"] == "out of memory"
    assert "id" not in document and all("id" not in m for m in document["messages"])


def test_json_export_then_import_then_export_gives_the_same_bytes(
    store: ConversationStore, other_store: ConversationStore, clock: FakeClock
) -> None:
    other_store.create_conversation(title="already here")  # the import must not reuse ids
    conversation = _lisbon_conversation(store, clock)
    exported = to_json(conversation, store.messages(conversation.id))

    [imported] = import_conversations(other_store, exported)

    assert imported.id != conversation.id
    assert imported.created_at == conversation.created_at
    assert imported.updated_at == conversation.updated_at
    assert imported.pinned is True
    assert to_json(imported, other_store.messages(imported.id)) == exported


def test_export_all_then_import_into_an_empty_store_gives_the_same_bytes(
    store: ConversationStore, tmp_path: Path, clock: FakeClock
) -> None:
    _lisbon_conversation(store, clock)
    # Two conversations active at the same moment: their order must survive too.
    store.create_conversation(title="tie one")
    store.create_conversation(title="tie two")
    clock.now += 10
    empty = store.create_conversation(title="no messages yet")
    exported = export_all(store)

    with ConversationStore(tmp_path / "fresh.db") as fresh:
        imported = import_conversations(fresh, exported)
        exported_again = export_all(fresh)
        listed_titles = [c.title for c in fresh.list_conversations()]

    assert json.loads(exported)["format"] == "qwen-local-chat/conversations"
    assert [c.title for c in imported] == [
        "Trip to Lisbon",
        "tie one",
        "tie two",
        empty.title,
    ]
    assert exported_again == exported
    assert listed_titles == [c.title for c in store.list_conversations()]


def test_imported_messages_are_searchable(
    store: ConversationStore, other_store: ConversationStore, clock: FakeClock
) -> None:
    conversation = _lisbon_conversation(store, clock)

    [imported] = import_conversations(
        other_store, to_json(conversation, store.messages(conversation.id))
    )

    [hit] = other_store.search("manteigaria")
    assert (hit.conversation_id, hit.conversation_title) == (imported.id, "Trip to Lisbon")


def _valid_document() -> dict:
    return {
        "format": "qwen-local-chat/conversation",
        "version": 1,
        "title": "t",
        "created_at": 1.0,
        "updated_at": 2.0,
        "model": "",
        "system_prompt": "",
        "generation_settings": {},
        "pinned": False,
        "messages": [
            {
                "role": "user",
                "content": "hi",
                "reasoning": "",
                "state": "complete",
                "created_at": 2.0,
                "stats": None,
                "error": None,
            }
        ],
    }


def test_a_valid_document_reads_back_as_unstored_objects() -> None:
    [(conversation, messages)] = from_json(json.dumps(_valid_document()))

    assert (conversation.id, conversation.title, conversation.updated_at) == (0, "t", 2.0)
    assert [(m.id, m.conversation_id, m.content) for m in messages] == [(0, 0, "hi")]
    assert messages[0].state is MessageState.COMPLETE


def _broken(change) -> str:
    document = _valid_document()
    change(document)
    return json.dumps(document)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", r"not valid JSON \(Expecting property name .* line 1, column 2\)"),
        ("[]", "not a Qwen Local Chat conversation export"),
        ('{"format": "something-else", "version": 1}', "not a Qwen Local Chat conversation"),
        (
            _broken(lambda d: d.update(version=2)),
            r"newer version of Qwen Local Chat \(format version 2; this version reads up to 1\)",
        ),
        (_broken(lambda d: d.pop("version")), "without a valid format version"),
        (_broken(lambda d: d.update(version="1")), "without a valid format version"),
        (_broken(lambda d: d.pop("title")), 'In the conversation, the field "title" is missing'),
        (
            _broken(lambda d: d.update(pinned=1)),
            'In the conversation, "pinned" must be true or false, not a number',
        ),
        (
            _broken(lambda d: d.update(created_at=True)),
            '"created_at" must be a number, not true or false',
        ),
        (
            _broken(lambda d: d["messages"][0].pop("content")),
            'In the conversation, message 1, the field "content" is missing',
        ),
        (
            _broken(lambda d: d["messages"][0].update(state="thinking")),
            (
                '"state" must be one of "streaming", "complete", "interrupted", "failed", '
                'not "thinking"'
            ),
        ),
        (
            _broken(lambda d: d["messages"][0].update(error=3)),
            '"error" must be text or null, not a number',
        ),
        (_broken(lambda d: d["messages"].append("hello")), "message 2, expected an object"),
        (
            _broken(lambda d: d["messages"][0].update(stats={"prompt_tokens": 1})),
            'In the conversation, message 1, stats, the field "evaluated_prompt_tokens" is missing',
        ),
        (
            json.dumps(
                {"format": "qwen-local-chat/conversations", "version": 1, "conversations": {}}
            ),
            'In the file, "conversations" must be a list, not an object',
        ),
        (
            json.dumps(
                {
                    "format": "qwen-local-chat/conversations",
                    "version": 1,
                    "conversations": [{"title": "no more"}],
                }
            ),
            'In conversation 1, the field "created_at" is missing',
        ),
    ],
)
def test_import_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConversationImportError, match=message):
        from_json(text)


def test_whole_number_stats_must_be_whole() -> None:
    stats = {
        "prompt_tokens": 1.5,
        "evaluated_prompt_tokens": 1,
        "generated_tokens": 1,
        "time_to_first_token_s": 1,
        "tokens_per_second": 1,
        "stop_reason": "end_of_turn",
    }
    text = _broken(lambda d: d["messages"][0].update(stats=stats))

    with pytest.raises(ConversationImportError, match='"prompt_tokens" must be a whole number'):
        from_json(text)


def test_a_file_with_an_error_imports_nothing(other_store: ConversationStore) -> None:
    good = {
        key: value for key, value in _valid_document().items() if key not in ("format", "version")
    }
    text = json.dumps(
        {
            "format": "qwen-local-chat/conversations",
            "version": 1,
            "conversations": [good, {**good, "messages": "oops"}],
        }
    )

    with pytest.raises(ConversationImportError, match="conversation 2"):
        import_conversations(other_store, text)
    assert other_store.list_conversations() == []
