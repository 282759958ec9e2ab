"""Markdown and JSON exports of conversations, and importing JSON exports, on real SQLite files."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.conversations.conversation_export import (
    MAX_CONVERSATIONS,
    MAX_MESSAGES,
    MAX_NESTING,
    MAX_OBJECTS,
    MAX_TEXT_CHARACTERS,
    ConversationImportError,
    DuplicateChoice,
    export_all,
    export_conversation,
    from_json,
    import_conversations,
    to_markdown,
)
from app.core.conversations.conversation_store import ConversationStore
from app.core.domain.conversations import Conversation, MessageState, ToolCallPart, ToolResultPart
from app.core.domain.generation import GenerationStats, StopReason
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


def _json(store: ConversationStore, conversation: Conversation) -> str:
    return export_conversation(store, conversation.id, "json")


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

    text = _json(store, conversation)
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
        "current_message",
        "messages",
    ]
    assert (document["format"], document["version"]) == ("qwen-local-chat/conversation", 2)
    assert document["title"] == "Trip to Lisbon"
    assert document["created_at"] == 1_700_000_000.25
    assert document["updated_at"] == 1_700_000_063.75
    assert document["pinned"] is True
    assert document["generation_settings"] == {
        "temperature": 0.7,
        "max_tokens": 2048,
        "thinking": True,
    }
    assert document["current_message"] == 4
    assert document["messages"][1] == {
        "id": 2,
        "parent": 1,
        "role": "assistant",
        "content": "Try **Manteigaria** in Chiado.",
        "reasoning": "The user wants a bakery.\nChiado is central.",
        "parts": [],
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
    assert document["messages"][0]["parent"] is None
    assert document["messages"][3]["state"] == "failed"
    assert document["messages"][3]["error"] == "out of memory"
    assert "id" not in document


def test_json_export_then_import_then_export_gives_the_same_bytes(
    store: ConversationStore, other_store: ConversationStore, clock: FakeClock
) -> None:
    other_store.create_conversation(title="already here")  # the import must not reuse ids
    conversation = _lisbon_conversation(store, clock)
    exported = _json(store, conversation)

    [imported] = import_conversations(other_store, exported).stored

    assert imported.id != conversation.id
    assert imported.created_at == conversation.created_at
    assert imported.updated_at == conversation.updated_at
    assert imported.pinned is True
    assert _json(other_store, imported) == exported


def _with_alternatives(store: ConversationStore) -> Conversation:
    """Q1 → A1 (regenerated: A1b), then an edited second question; the old branch is shown."""
    conversation = store.create_conversation(title="Branches")
    question = store.add_message(conversation.id, "user", "Q1")
    first = store.add_message(conversation.id, "assistant", "A1")
    store.add_message(conversation.id, "assistant", "A1b", parent_id=question.id)
    old_question = store.add_message(conversation.id, "user", "Q2")
    store.add_message(conversation.id, "assistant", "A2")
    store.add_message(conversation.id, "user", "Q2 edited", parent_id=old_question.parent_id)
    store.switch_to(first.id)
    return conversation


def test_every_branch_goes_into_the_backup_and_comes_back_with_the_one_shown(
    store: ConversationStore, other_store: ConversationStore
) -> None:
    conversation = _with_alternatives(store)
    assert [m.content for m in store.messages(conversation.id)] == ["Q1", "A1"]  # shown
    exported, count = export_all(store)

    [imported] = import_conversations(other_store, exported).stored

    assert count == 1
    assert len(json.loads(exported)["conversations"][0]["messages"]) == 6
    assert [m.content for m in other_store.messages(imported.id)] == ["Q1", "A1"]
    assert [m.content for m in other_store.conversation_tree(imported.id).messages] == [
        "Q1", "A1", "A1b", "Q2", "A2", "Q2 edited",
    ]
    assert export_all(other_store)[0] == exported
    shown_reply = other_store.messages(imported.id)[-1]
    assert [m.content for m in other_store.alternatives(shown_reply.id)] == ["A1", "A1b"]
    other_store.switch_to(other_store.alternatives(shown_reply.id)[1].id)
    assert [m.content for m in other_store.messages(imported.id)] == ["Q1", "A1b", "Q2 edited"]


def test_images_and_tool_calls_travel_with_their_messages(
    store: ConversationStore, other_store: ConversationStore
) -> None:
    picture = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    conversation = store.create_conversation(title="Parts")
    image = store.save_image(picture, "image/png")
    store.add_message(conversation.id, "user", "What is this?", parts=[image])
    call = ToolCallPart("call-1", "lookup", {"query": "png", "limit": 3})
    store.add_message(conversation.id, "assistant", "Let me look.", parts=[call])
    result = ToolResultPart("call-1", "lookup", "A picture format.", False, "docs", "always_allowed", 0.25)
    store.add_message(conversation.id, "tool", parts=[result])
    exported = _json(store, conversation)
    part = json.loads(exported)["messages"][0]["parts"][0]
    assert (part["type"], part["media_type"], part["sha256"]) == ("image", "image/png", image.sha256)

    [imported] = import_conversations(other_store, exported).stored

    messages = other_store.messages(imported.id)
    assert messages[0].parts == (image,)
    assert other_store.image_path(image.sha256).read_bytes() == picture
    assert messages[1].parts == (call,)
    assert messages[2].parts == (result,)  # who ran it, how it was allowed and how long it took
    assert _json(other_store, imported) == exported


def test_tool_results_from_before_approvals_are_read_and_a_made_up_outcome_is_refused() -> None:
    document = _valid_document()
    result = {"type": "tool_result", "tool_call_id": "c", "name": "lookup", "content": "ok", "is_error": False}
    document["messages"][0] = {**document["messages"][0], "role": "tool", "parts": [result]}
    [imported] = from_json(json.dumps(document))
    assert imported.tree.messages[0].parts == (ToolResultPart("c", "lookup", "ok"),)

    result["outcome"] = "approved by the model"
    with pytest.raises(ConversationImportError, match='"outcome" must be one of "allowed", "always_allowed"'):
        from_json(json.dumps(document))
    result["outcome"], result["duration_s"] = "allowed", -1
    with pytest.raises(ConversationImportError, match='"duration_s" must be a number of seconds'):
        from_json(json.dumps(document))


def test_a_version_1_file_is_read_as_one_chain_and_its_stopped_replies_are_stopped() -> None:
    document = _valid_document(version=1)
    stopped = {**document["messages"][0], "role": "assistant", "state": "interrupted"}
    stopped["stats"] = {
        "prompt_tokens": 1, "evaluated_prompt_tokens": 1, "generated_tokens": 1,
        "time_to_first_token_s": 0.1, "tokens_per_second": 9.0, "stop_reason": "cancelled",
    }
    crashed = {**document["messages"][0], "role": "assistant", "state": "interrupted"}
    for message in (document["messages"][0], stopped, crashed):
        for field in ("id", "parent", "parts"):
            message.pop(field, None)
    document["messages"] += [stopped, crashed]
    document.pop("current_message")

    [imported] = from_json(json.dumps(document))

    assert [(m.id, m.parent_id) for m in imported.tree.messages] == [(1, None), (2, 1), (3, 2)]
    assert imported.tree.current_message_id == 3
    assert [m.state for m in imported.tree.messages] == [
        MessageState.COMPLETE, MessageState.STOPPED, MessageState.INTERRUPTED,
    ]


def test_export_all_then_import_into_an_empty_store_gives_the_same_bytes(
    store: ConversationStore, tmp_path: Path, clock: FakeClock
) -> None:
    _lisbon_conversation(store, clock)
    # Two conversations active at the same moment: their order must survive too.
    store.create_conversation(title="tie one")
    store.create_conversation(title="tie two")
    clock.now += 10
    empty = store.create_conversation(title="no messages yet")
    exported, count = export_all(store)

    with ConversationStore(tmp_path / "fresh.db") as fresh:
        imported = import_conversations(fresh, exported).stored
        exported_again, _ = export_all(fresh)
        listed_titles = [c.title for c in fresh.list_conversations()]

    assert count == 4
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

    [imported] = import_conversations(other_store, _json(store, conversation)).stored

    [hit] = other_store.search("manteigaria")
    assert (hit.conversation_id, hit.conversation_title) == (imported.id, "Trip to Lisbon")


def _valid_document(version: int = 2) -> dict:
    return {
        "format": "qwen-local-chat/conversation",
        "version": version,
        "title": "t",
        "created_at": 1.0,
        "updated_at": 2.0,
        "model": "",
        "system_prompt": "",
        "generation_settings": {},
        "pinned": False,
        "current_message": 1,
        "messages": [
            {
                "id": 1,
                "parent": None,
                "role": "user",
                "content": "hi",
                "reasoning": "",
                "parts": [],
                "state": "complete",
                "created_at": 2.0,
                "stats": None,
                "error": None,
            }
        ],
    }


def test_a_valid_document_reads_back_as_unstored_objects() -> None:
    [imported] = from_json(json.dumps(_valid_document()))
    conversation, messages = imported.tree.conversation, imported.tree.messages

    assert (conversation.id, conversation.title, conversation.updated_at) == (0, "t", 2.0)
    assert [(m.id, m.conversation_id, m.content) for m in messages] == [(1, 0, "hi")]
    assert messages[0].state is MessageState.COMPLETE
    assert imported.tree.current_message_id == 1


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
            _broken(lambda d: d.update(version=3)),
            r"newer version of Qwen Local Chat \(format version 3; this version reads up to 2\)",
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
                '"state" must be one of "streaming", "complete", "stopped", "interrupted", '
                '"failed", not "thinking"'
            ),
        ),
        (
            _broken(lambda d: d["messages"][0].update(error=3)),
            '"error" must be text or null, not a number',
        ),
        (_broken(lambda d: d["messages"].append("hello")), "message 2, expected an object"),
        (
            _broken(lambda d: d["messages"][0].update(parent=7)),
            'message 1, "parent" must be the id of an earlier message, not 7',
        ),
        (_broken(lambda d: d["messages"].append(dict(d["messages"][0]))), "message 2, the id 1 is used twice"),
        (
            _broken(lambda d: d.update(current_message=9)),
            '"current_message" must be the id of one of its messages, not 9',
        ),
        (
            _broken(lambda d: d["messages"][0]["parts"].append({"type": "video"})),
            'part 1, "type" must be one of "image", "tool_call", "tool_result", not "video"',
        ),
        (
            _broken(
                lambda d: d["messages"][0]["parts"].append(
                    {"type": "image", "media_type": "image/png", "sha256": "0" * 64, "data": "aGVsbG8="}
                )
            ),
            "the image does not match its SHA-256: the file is damaged",
        ),
        (
            _broken(lambda d: d["messages"][0]["parts"].append({"type": "image", "media_type": "text/html"})),
            'images of type "text/html" are not supported',
        ),
        ('{"format": "qwen-local-chat/conversation", "version": 2, "title": "t", "created_at": Infinity}',
         '"created_at" must be a finite number, not inf'),
        (
            _broken(lambda d: d["messages"][0].update(stats={"prompt_tokens": 1})),
            'In the conversation, message 1, stats, the field "evaluated_prompt_tokens" is missing',
        ),
        (
            json.dumps(
                {"format": "qwen-local-chat/conversations", "version": 2, "conversations": {}}
            ),
            'In the file, "conversations" must be a list, not an object',
        ),
        (
            json.dumps(
                {
                    "format": "qwen-local-chat/conversations",
                    "version": 2,
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
            "version": 2,
            "conversations": [good, {**good, "messages": "oops"}],
        }
    )

    with pytest.raises(ConversationImportError, match="conversation 2"):
        import_conversations(other_store, text)
    assert other_store.list_conversations() == []


def _store_with_one_chat(path: Path) -> tuple[ConversationStore, str]:
    store = ConversationStore(path)
    conversation = store.create_conversation(title="Twice")
    store.add_message(conversation.id, "user", "Same question")
    store.add_message(conversation.id, "assistant", "Same answer")
    return store, export_all(store)[0]


def test_importing_a_file_twice_finds_the_chats_already_here_and_stores_nothing_until_told(tmp_path: Path) -> None:
    store, exported = _store_with_one_chat(tmp_path / "a.db")
    with store:
        outcome = import_conversations(store, exported, DuplicateChoice.ASK)
        assert outcome.stored == [] and [c.title for c in outcome.already_here] == ["Twice"] and outcome.total == 1
        assert len(store.list_conversations()) == 1

        skipped = import_conversations(store, exported, DuplicateChoice.SKIP)
        assert skipped.stored == [] and len(store.list_conversations()) == 1

        original_id = store.list_conversations()[0].id
        replaced = import_conversations(store, exported, DuplicateChoice.REPLACE)
        [kept] = store.list_conversations()
        assert kept.id == replaced.stored[0].id != original_id
        assert [m.content for m in store.messages(kept.id)] == ["Same question", "Same answer"]

        import_conversations(store, exported, DuplicateChoice.KEEP_BOTH)
        assert len(store.list_conversations()) == 2


def test_a_chat_that_changed_since_its_export_is_not_a_duplicate(tmp_path: Path) -> None:
    store, exported = _store_with_one_chat(tmp_path / "a.db")
    with store:
        conversation = store.list_conversations()[0]
        store.add_message(conversation.id, "user", "One more")
        outcome = import_conversations(store, exported, DuplicateChoice.ASK)
        assert outcome.already_here == [] and len(outcome.stored) == 1


def _hostile(**changes) -> str:
    document = _valid_document()
    message = document["messages"][0]
    for key, value in changes.items():
        if key.startswith("message_"):
            message[key.removeprefix("message_")] = value
        else:
            document[key] = value
    return json.dumps(document, allow_nan=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_hostile(created_at=float("inf")), '"created_at" must be a finite number'),
        (_hostile(updated_at=float("nan")), '"updated_at" must be a finite number'),
        (_hostile(created_at=1e300), '"created_at" must be a time between 1970 and 9999'),
        (_hostile(message_created_at=-1e12), '"created_at" must be a time between 1970 and 9999'),
        (_hostile(current_message=10**400), '"current_message" is far too large a number'),
        (_hostile(title="\ud800 half a character"), '"title" holds broken text'),
        (_hostile(message_content="ok \udfff"), '"content" holds broken text'),
        ("[" * 100_000 + "]" * 100_000, "nested far too deeply"),
        (_hostile(message_role="wizard"), '"role" must be one of "system", "user", "assistant", "tool", not "wizard"'),
    ],
    ids=["infinity", "nan", "year-3e292", "before-1970", "400-digit-count", "lone-surrogate-title", "lone-surrogate-content", "100k-deep", "unknown-role"],
)
def test_a_damaged_export_is_refused_with_a_reason_and_stores_nothing(other_store: ConversationStore, text: str, message: str) -> None:
    with pytest.raises(ConversationImportError, match=message):
        import_conversations(other_store, text)
    assert other_store.list_conversations() == []


def _conversations(*documents: dict) -> str:
    listed = [{key: value for key, value in document.items() if key not in ("format", "version")} for document in documents]
    return json.dumps({"format": "qwen-local-chat/conversations", "version": 2, "conversations": listed})


def _with(path: str, value) -> dict:
    """The valid document with the value at ``path`` ("messages.0.parts") replaced."""
    document = _valid_document()
    *parents, name = path.split(".")
    target = document
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[name] = value
    return document


def _nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" + "{}," * MAX_OBJECTS + "{}]", f"more than {MAX_OBJECTS:,} objects"),
        (_conversations(*[_valid_document()] * (MAX_CONVERSATIONS + 1)), f"at most {MAX_CONVERSATIONS:,} are imported"),
        (json.dumps(_with("messages", [{}] * (MAX_MESSAGES + 1))), f"a conversation holds at most {MAX_MESSAGES:,}"),
        (json.dumps(_with("messages.0.content", "a" * (MAX_TEXT_CHARACTERS + 1))), '"content" holds 2,000,001 characters'),
        (json.dumps(_with("generation_settings", {"deep": _nested(MAX_NESTING)})), f"nested more than {MAX_NESTING} levels"),
        (json.dumps(_with("generation_settings", {"temperature": float("nan")})), '"generation_settings" holds nan, not a finite number'),
        (json.dumps(_with("generation_settings", {"max_tokens": 10**30})), "a number too large to keep exactly"),
        (
            json.dumps(_with("messages.0.parts", [{"type": "tool_call", "id": "1", "name": "f", "arguments": {"x": "\ud800"}}])),
            '"arguments" holds broken text',
        ),
    ],
    ids=["a-million-objects", "too-many-conversations", "too-many-messages", "two-million-characters", "deep-settings", "nan-in-settings", "huge-number-in-settings", "broken-text-in-arguments"],
)
def test_a_file_beyond_the_bounds_is_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ConversationImportError, match=message):
        from_json(text)


def test_a_file_at_the_bounds_is_read() -> None:
    document = _with("messages.0.content", "a" * MAX_TEXT_CHARACTERS)
    document["generation_settings"] = {"deep": _nested(MAX_NESTING - 1), "max_tokens": 2**53}
    [imported] = from_json(json.dumps(document))
    assert len(imported.tree.messages[0].content) == MAX_TEXT_CHARACTERS


def test_three_good_chats_and_a_fourth_that_fails_to_store_store_none(tmp_path: Path) -> None:
    # A failure while storing (a full disk, say), made real by a trigger in the SQLite file.
    path = tmp_path / "store.db"
    with ConversationStore(path):
        pass
    with sqlite3.connect(path) as database:
        database.execute(
            "CREATE TRIGGER no_room BEFORE INSERT ON conversations WHEN new.title = 'Fourth'"
            " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    titles = ["First", "Second", "Third", "Fourth"]
    text = _conversations(*[_with("title", title) for title in titles])
    with ConversationStore(path) as store:
        with pytest.raises(sqlite3.IntegrityError, match="disk is full"):
            import_conversations(store, text)
        assert store.list_conversations() == []
        assert store.search("hi") == []
