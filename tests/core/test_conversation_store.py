"""Behaviour of the conversation store and the reply recorder, on real SQLite files."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.chat.reply_recorder import ReplyRecorder
from app.core.conversations.conversation_store import SCHEMA_VERSION, ConversationStore, NotFoundError, StoreError
from app.core.domain.conversations import Conversation, ConversationTree, Message, MessageState, ToolCallPart
from app.core.domain.generation import GenerationStats, StopReason


class FakeClock:
    """A clock that only moves when the test moves it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def database_path(tmp_path: Path) -> Path:
    # A folder that does not exist yet: the store must create it.
    return tmp_path / "data" / "conversations.db"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(database_path: Path, clock: FakeClock) -> Iterator[ConversationStore]:
    with ConversationStore(database_path, clock=clock) as opened:
        yield opened


STATS = GenerationStats(
    prompt_tokens=120,
    evaluated_prompt_tokens=30,
    generated_tokens=57,
    time_to_first_token_s=0.25,
    tokens_per_second=41.5,
    stop_reason=StopReason.END_OF_TURN,
)


def test_conversations_and_messages_round_trip_with_every_field(
    database_path: Path, clock: FakeClock
) -> None:
    settings = {"temperature": 0.7, "max_tokens": 2048, "thinking": True}
    with ConversationStore(database_path, clock=clock) as store:
        conversation = store.create_conversation(
            title="Rust lifetimes",
            model="Qwen3.5-4B-Q4_K_M.gguf",
            system_prompt="Be brief.",
            generation_settings=settings,
        )
        clock.now = 1001.0
        question = store.add_message(conversation.id, "user", "What is 'a?")
        clock.now = 1002.0
        reply = store.add_message(conversation.id, "assistant", state=MessageState.STREAMING)
        store.update_message(
            reply.id,
            content="A lifetime parameter.",
            reasoning="The user asks about syntax.",
            state=MessageState.COMPLETE,
            stats=STATS,
        )
        failed = store.add_message(conversation.id, "assistant", state=MessageState.STREAMING)
        store.update_message(failed.id, state=MessageState.FAILED, error="out of memory")

    with ConversationStore(database_path, clock=clock) as reopened:
        stored_conversation = reopened.get_conversation(conversation.id)
        stored_messages = reopened.messages(conversation.id)

    assert stored_conversation.title == "Rust lifetimes"
    assert stored_conversation.model == "Qwen3.5-4B-Q4_K_M.gguf"
    assert stored_conversation.system_prompt == "Be brief."
    assert stored_conversation.generation_settings == settings
    assert stored_conversation.created_at == 1000.0
    assert stored_conversation.updated_at == 1002.0
    assert stored_conversation.pinned is False
    assert [message.id for message in stored_messages] == [question.id, reply.id, failed.id]
    stored_question, stored_reply, stored_failure = stored_messages
    assert (stored_question.role, stored_question.content) == ("user", "What is 'a?")
    assert stored_question.state is MessageState.COMPLETE
    assert stored_question.stats is None
    assert stored_question.created_at == 1001.0
    assert stored_reply.conversation_id == conversation.id
    assert stored_reply.role == "assistant"
    assert stored_reply.content == "A lifetime parameter."
    assert stored_reply.reasoning == "The user asks about syntax."
    assert stored_reply.state is MessageState.COMPLETE
    assert stored_reply.stats == STATS
    assert stored_reply.error is None
    assert stored_failure.state is MessageState.FAILED
    assert stored_failure.error == "out of memory"
    assert stored_failure.stats is None


def test_list_conversations_puts_the_most_recently_active_first(
    store: ConversationStore, clock: FakeClock
) -> None:
    oldest = store.create_conversation(title="oldest")
    clock.now += 1
    middle = store.create_conversation(title="middle")
    clock.now += 1
    newest = store.create_conversation(title="newest")
    assert [c.id for c in store.list_conversations()] == [newest.id, middle.id, oldest.id]

    clock.now += 1
    store.add_message(oldest.id, "user", "back to this one")

    assert [c.id for c in store.list_conversations()] == [oldest.id, newest.id, middle.id]


def test_pinned_conversations_come_first_and_keep_their_activity_order(
    store: ConversationStore, clock: FakeClock
) -> None:
    oldest = store.create_conversation(title="oldest")
    clock.now += 1
    middle = store.create_conversation(title="middle")
    clock.now += 1
    newest = store.create_conversation(title="newest")

    store.set_pinned(oldest.id, True)
    store.set_pinned(middle.id, True)

    assert [c.id for c in store.list_conversations()] == [middle.id, oldest.id, newest.id]
    assert [c.pinned for c in store.list_conversations()] == [True, True, False]
    clock.now += 1
    store.add_message(oldest.id, "user", "activity reorders within the pinned group")
    assert [c.id for c in store.list_conversations()] == [oldest.id, middle.id, newest.id]

    store.set_pinned(oldest.id, False)
    assert [c.id for c in store.list_conversations()] == [middle.id, oldest.id, newest.id]


def test_pinning_leaves_the_activity_time_alone(store: ConversationStore, clock: FakeClock) -> None:
    conversation = store.create_conversation()
    clock.now += 5

    store.set_pinned(conversation.id, True)

    pinned = store.get_conversation(conversation.id)
    assert pinned.pinned is True
    assert pinned.updated_at == conversation.updated_at


def test_pinned_survives_reopening(database_path: Path) -> None:
    with ConversationStore(database_path) as store:
        conversation = store.create_conversation()
        store.set_pinned(conversation.id, True)

    with ConversationStore(database_path) as reopened:
        assert reopened.get_conversation(conversation.id).pinned is True


def test_rename_conversation_changes_the_title_only(store: ConversationStore) -> None:
    conversation = store.create_conversation(title="Untitled", model="a.gguf")

    store.rename_conversation(conversation.id, "Trip to Lisbon")

    renamed = store.get_conversation(conversation.id)
    assert renamed.title == "Trip to Lisbon"
    assert renamed.model == "a.gguf"
    assert renamed.updated_at == conversation.updated_at


def test_update_conversation_changes_only_the_given_fields(store: ConversationStore) -> None:
    conversation = store.create_conversation(
        title="t", model="a.gguf", system_prompt="old prompt", generation_settings={"top_k": 20}
    )

    store.update_conversation(conversation.id, model="b.gguf")
    after_model = store.get_conversation(conversation.id)
    store.update_conversation(
        conversation.id, system_prompt="new prompt", generation_settings={"top_k": 40}
    )
    after_rest = store.get_conversation(conversation.id)

    assert (after_model.model, after_model.system_prompt) == ("b.gguf", "old prompt")
    assert after_model.generation_settings == {"top_k": 20}
    assert (after_rest.model, after_rest.system_prompt) == ("b.gguf", "new prompt")
    assert after_rest.generation_settings == {"top_k": 40}
    assert after_rest.title == "t"


def test_deleting_a_conversation_deletes_its_messages(
    store: ConversationStore, database_path: Path
) -> None:
    doomed = store.create_conversation(title="doomed")
    kept = store.create_conversation(title="kept")
    doomed_message = store.add_message(doomed.id, "user", "bye")
    kept_message = store.add_message(kept.id, "user", "hi")

    store.delete_conversation(doomed.id)

    with pytest.raises(NotFoundError):
        store.get_conversation(doomed.id)
    with pytest.raises(NotFoundError):
        store.get_message(doomed_message.id)
    assert store.messages(kept.id) == [kept_message]
    raw = sqlite3.connect(database_path)
    try:
        orphans = raw.execute(
            "SELECT COUNT(*) FROM messages WHERE conversation_id = ?", (doomed.id,)
        ).fetchone()[0]
    finally:
        raw.close()
    assert orphans == 0


def test_deleting_a_message_keeps_the_rest_in_order(store: ConversationStore) -> None:
    conversation = store.create_conversation()
    first = store.add_message(conversation.id, "user", "one")
    second = store.add_message(conversation.id, "assistant", "two")
    third = store.add_message(conversation.id, "user", "three")

    store.delete_message(second.id)
    fourth = store.add_message(conversation.id, "assistant", "four")

    assert [m.content for m in store.messages(conversation.id)] == ["one", "three", "four"]
    assert [m.id for m in store.messages(conversation.id)] == [first.id, third.id, fourth.id]


def _without_ids(tree: ConversationTree) -> tuple[Conversation, list[Message], int | None]:
    """The tree with its ids numbered by position, so copies under new ids compare equal."""
    position = {message.id: index for index, message in enumerate(tree.messages)}
    return (
        dataclasses.replace(tree.conversation, id=0),
        [
            dataclasses.replace(message, id=0, conversation_id=0, parent_id=position.get(message.parent_id))
            for message in tree.messages
        ],
        position.get(tree.current_message_id),
    )


def test_undo_of_delete_restores_every_field_under_new_ids(
    store: ConversationStore, clock: FakeClock
) -> None:
    conversation = store.create_conversation(
        title="Trip to Lisbon",
        model="Qwen3.5-4B-Q4_K_M.gguf",
        system_prompt="Be brief.",
        generation_settings={"temperature": 0.7, "thinking": True},
    )
    store.set_pinned(conversation.id, True)
    clock.now += 1
    store.add_message(conversation.id, "user", "Where should I eat?")
    clock.now += 1
    reply = store.add_message(conversation.id, "assistant", state=MessageState.STREAMING)
    store.update_message(
        reply.id,
        content="Try the pastéis.",
        reasoning="Food.",
        state=MessageState.COMPLETE,
        stats=STATS,
    )
    clock.now += 1
    failed = store.add_message(conversation.id, "assistant", state=MessageState.STREAMING)
    store.update_message(failed.id, state=MessageState.FAILED, error="out of memory")
    other = store.create_conversation(title="other")
    before_delete = store.conversation_tree(conversation.id)

    store.delete_conversation(conversation.id)
    clock.now += 100  # the undo comes later; restoring must not stamp the current time
    restored = store.restore_conversation(before_delete)

    restored_messages = store.messages(restored.id)
    assert _without_ids(store.conversation_tree(restored.id)) == _without_ids(before_delete)
    assert restored == store.get_conversation(restored.id)
    assert all(message.conversation_id == restored.id for message in restored_messages)
    assert [c.id for c in store.list_conversations()] == [restored.id, other.id]
    assert [hit.message_id for hit in store.search("pastéis")] == [restored_messages[1].id]


def test_restoring_marks_a_message_still_streaming_as_interrupted(
    store: ConversationStore,
) -> None:
    conversation = store.create_conversation()
    store.add_message(conversation.id, "assistant", "half a sen", state=MessageState.STREAMING)
    before_delete = store.conversation_tree(conversation.id)
    store.delete_conversation(conversation.id)

    restored = store.restore_conversation(before_delete)

    [message] = store.messages(restored.id)
    assert (message.content, message.state) == ("half a sen", MessageState.INTERRUPTED)


def test_undo_of_delete_brings_back_every_branch_and_the_one_shown(store: ConversationStore) -> None:
    conversation = store.create_conversation(title="Branches")
    question = store.add_message(conversation.id, "user", "Q")
    first = store.add_message(conversation.id, "assistant", "A1")
    store.add_message(conversation.id, "assistant", "A2", parent_id=question.id)
    store.add_message(conversation.id, "user", "follow-up")
    store.switch_to(first.id)
    before_delete = store.conversation_tree(conversation.id)
    store.delete_conversation(conversation.id)

    restored = store.restore_conversation(before_delete)

    assert [m.content for m in store.messages(restored.id)] == ["Q", "A1"]
    reply = store.messages(restored.id)[-1]
    assert [m.content for m in store.alternatives(reply.id)] == ["A1", "A2"]
    assert store.alternative_positions(restored.id) == {
        reply.id: (0, 2),
        store.alternatives(reply.id)[1].id: (1, 2),
    }
    store.switch_to(store.alternatives(reply.id)[1].id)
    assert [m.content for m in store.messages(restored.id)] == ["Q", "A2", "follow-up"]


def test_parts_are_kept_in_order_with_their_message(database_path: Path) -> None:
    calls = [ToolCallPart("a", "weather", {"city": "Oslo"}), ToolCallPart("b", "time", {})]
    with ConversationStore(database_path) as store:
        conversation = store.create_conversation()
        reply = store.add_message(conversation.id, "assistant", "Checking.", parts=calls)
    with ConversationStore(database_path) as reopened:
        assert reopened.get_message(reply.id).parts == tuple(calls)
        assert reopened.messages(conversation.id)[0].parts == tuple(calls)
        reopened.delete_message(reply.id)
        raw = sqlite3.connect(database_path)
        assert raw.execute("SELECT COUNT(*) FROM message_parts").fetchone()[0] == 0
        raw.close()


def test_an_image_is_stored_once_by_its_content_and_removed_once_nothing_shows_it(database_path: Path) -> None:
    picture = b"GIF89a" + bytes(100)
    with ConversationStore(database_path) as store:
        conversation = store.create_conversation()
        image = store.save_image(picture, "image/gif")
        assert store.save_image(picture, "image/gif") == image  # the same bytes: the same file
        store.add_message(conversation.id, "user", "Look", parts=[image])
        store.add_message(conversation.id, "user", "Again", parts=[image])
        path = store.image_path(image.sha256)
        assert path.read_bytes() == picture and list(path.parent.iterdir()) == [path]
        with pytest.raises(ValueError):
            store.save_image(b"<svg/>", "image/svg+xml")
        with pytest.raises(ValueError):
            store.image_path("../../etc/passwd")
        store.delete_conversation(conversation.id)
        assert path.exists()  # kept while the app runs: undo may bring the messages back
    with ConversationStore(database_path):
        assert not path.exists()


def test_the_list_version_moves_only_with_what_the_list_shows(store: ConversationStore) -> None:
    versions = [store.list_version]
    conversation = store.create_conversation()
    versions.append(store.list_version)
    message = store.add_message(conversation.id, "user", "hi")  # the chat becomes the newest
    versions.append(store.list_version)
    store.update_message(message.id, content="hello")
    store.update_conversation(conversation.id, system_prompt="Be kind.")
    versions.append(store.list_version)
    store.rename_conversation(conversation.id, "Greetings")
    versions.append(store.list_version)
    store.set_pinned(conversation.id, True)
    versions.append(store.list_version)
    assert versions[2] == versions[3]  # text and settings changes are not on the list
    assert versions == sorted(versions) and len(set(versions)) == 5


def test_unknown_ids_raise_not_found(store: ConversationStore) -> None:
    conversation = store.create_conversation()
    for operation in (
        lambda: store.get_conversation(999),
        lambda: store.rename_conversation(999, "x"),
        lambda: store.update_conversation(999, model="x"),
        lambda: store.update_conversation(999),
        lambda: store.delete_conversation(999),
        lambda: store.set_pinned(999, True),
        lambda: store.messages(999),
        lambda: store.add_message(999, "user", "x"),
        lambda: store.get_message(999),
        lambda: store.update_message(999, content="x"),
        lambda: store.delete_message(999),
    ):
        with pytest.raises(NotFoundError):
            operation()
    assert isinstance(NotFoundError("x"), KeyError)
    assert store.messages(conversation.id) == []


def test_store_uses_write_ahead_logging(store: ConversationStore, database_path: Path) -> None:
    # WAL is recorded in the file itself, so a second connection sees it.
    raw = sqlite3.connect(database_path)
    try:
        journal_mode = raw.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        raw.close()
    assert journal_mode == "wal"


def test_messages_left_streaming_become_interrupted_on_reopen(database_path: Path) -> None:
    with ConversationStore(database_path) as store:
        conversation = store.create_conversation()
        finished = store.add_message(conversation.id, "assistant", "done")
        cut_short = store.add_message(
            conversation.id, "assistant", "half a sen", state=MessageState.STREAMING
        )

    with ConversationStore(database_path) as reopened:
        assert reopened.get_message(cut_short.id).state is MessageState.INTERRUPTED
        assert reopened.get_message(cut_short.id).content == "half a sen"
        assert reopened.get_message(finished.id).state is MessageState.COMPLETE


def test_version_1_database_is_upgraded_and_keeps_its_rows(database_path: Path) -> None:
    # The layout the first release wrote, spelled out here so that the test does not depend on
    # the store's own copy of it.
    database_path.parent.mkdir(parents=True)
    old = sqlite3.connect(database_path)
    old.executescript(
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            model TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX messages_by_conversation ON messages(conversation_id);
        INSERT INTO conversations VALUES (7, 'Old chat', 10.0, 20.0, 'old.gguf');
        INSERT INTO messages VALUES (1, 7, 'user', 'hello', 'complete', 11.0);
        INSERT INTO messages VALUES (2, 7, 'assistant', 'hi there', 'complete', 12.0);
        PRAGMA user_version = 1;
        """
    )
    old.close()

    with ConversationStore(database_path) as store:
        conversation = store.get_conversation(7)
        old_messages = store.messages(7)
        # The new columns must be writable too, not merely readable.
        store.update_message(2, reasoning="thought", stats=STATS)
        upgraded_reply = store.get_message(2)
        found = store.search("hello")  # messages written before search existed are indexed
    raw = sqlite3.connect(database_path)
    try:
        version = raw.execute("PRAGMA user_version").fetchone()[0]
    finally:
        raw.close()

    assert version == SCHEMA_VERSION
    assert (conversation.title, conversation.model) == ("Old chat", "old.gguf")
    assert (conversation.created_at, conversation.updated_at) == (10.0, 20.0)
    assert conversation.system_prompt == ""
    assert conversation.generation_settings == {}
    assert [(m.id, m.role, m.content) for m in old_messages] == [
        (1, "user", "hello"),
        (2, "assistant", "hi there"),
    ]
    assert all(m.reasoning == "" and m.stats is None and m.error is None for m in old_messages)
    assert upgraded_reply.reasoning == "thought"
    assert upgraded_reply.stats == STATS
    assert [hit.message_id for hit in found] == [1]


def test_version_2_database_is_upgraded_keeps_its_rows_and_indexes_them_for_search(
    database_path: Path,
) -> None:
    # The layout version 2 wrote, spelled out like the version 1 layout above.
    database_path.parent.mkdir(parents=True)
    old = sqlite3.connect(database_path)
    old.executescript(
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            system_prompt TEXT NOT NULL DEFAULT '',
            generation_settings TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL,
            created_at REAL NOT NULL,
            reasoning TEXT NOT NULL DEFAULT '',
            prompt_tokens INTEGER NULL,
            evaluated_prompt_tokens INTEGER NULL,
            generated_tokens INTEGER NULL,
            time_to_first_token_s REAL NULL,
            tokens_per_second REAL NULL,
            stop_reason TEXT NULL,
            error TEXT NULL
        );
        CREATE INDEX messages_by_conversation ON messages(conversation_id);
        INSERT INTO conversations
            VALUES (3, 'Fjords', 10.0, 20.0, 'b.gguf', 'Be brief.', '{"top_k": 20}');
        INSERT INTO messages (id, conversation_id, role, content, state, created_at)
            VALUES (1, 3, 'user', 'How deep is the Sognefjord?', 'complete', 11.0);
        INSERT INTO messages (id, conversation_id, role, content, state, created_at, reasoning,
                              prompt_tokens, evaluated_prompt_tokens, generated_tokens,
                              time_to_first_token_s, tokens_per_second, stop_reason)
            VALUES (2, 3, 'assistant', 'About 1300 metres.', 'complete', 12.0,
                    'Recall Norwegian geography.', 120, 30, 57, 0.25, 41.5, 'end_of_turn');
        PRAGMA user_version = 2;
        """
    )
    old.close()

    with ConversationStore(database_path) as store:
        conversation = store.get_conversation(3)
        old_messages = store.messages(3)
        found_in_content = store.search("sognefjord")
        found_in_reasoning = store.search("norwegian")
    raw = sqlite3.connect(database_path)
    try:
        version = raw.execute("PRAGMA user_version").fetchone()[0]
    finally:
        raw.close()

    assert version == SCHEMA_VERSION
    assert (conversation.title, conversation.model) == ("Fjords", "b.gguf")
    assert conversation.pinned is False
    assert conversation.system_prompt == "Be brief."
    assert conversation.generation_settings == {"top_k": 20}
    assert (conversation.created_at, conversation.updated_at) == (10.0, 20.0)
    assert [(m.id, m.role, m.content, m.reasoning) for m in old_messages] == [
        (1, "user", "How deep is the Sognefjord?", ""),
        (2, "assistant", "About 1300 metres.", "Recall Norwegian geography."),
    ]
    assert old_messages[1].stats == STATS
    assert [(hit.conversation_id, hit.message_id) for hit in found_in_content] == [(3, 1)]
    assert [(hit.conversation_id, hit.message_id) for hit in found_in_reasoning] == [(3, 2)]


def test_database_from_a_newer_version_is_refused(database_path: Path) -> None:
    with ConversationStore(database_path):
        pass
    raw = sqlite3.connect(database_path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()

    with pytest.raises(StoreError, match="created by a newer version of Qwen Local Chat"):
        ConversationStore(database_path)


def test_file_that_is_not_a_database_is_refused(database_path: Path) -> None:
    database_path.parent.mkdir(parents=True)
    database_path.write_bytes(b"These are my notes, not a database.\n" * 200)

    with pytest.raises(StoreError, match="not a SQLite database"):
        ConversationStore(database_path)
    assert database_path.read_bytes().startswith(b"These are my notes")


def test_recorder_saves_at_most_once_per_interval(clock: FakeClock) -> None:
    saves: list[tuple[str, str]] = []
    recorder = ReplyRecorder(lambda content, reasoning: saves.append((content, reasoning)), save_interval_s=0.5, clock=clock)

    recorder.append("", "Hel")
    clock.now += 0.3
    recorder.append("", "lo")
    assert saves == []  # 0.3 s since the recorder started: too early to save

    clock.now += 0.2
    recorder.append("hmm", ",")
    assert saves == [("Hello,", "hmm")]  # 0.5 s: saved, everything so far

    clock.now += 0.4
    recorder.append("", " wor")
    assert len(saves) == 1  # 0.4 s since that save: not yet

    clock.now += 0.1
    recorder.append("", "ld")
    assert saves[-1] == ("Hello, world", "hmm")
    assert (recorder.content, recorder.reasoning) == ("Hello, world", "hmm")


def test_a_continued_reply_is_recorded_after_what_it_already_said(clock: FakeClock) -> None:
    saves: list[tuple[str, str]] = []
    recorder = ReplyRecorder(lambda *text: saves.append(text), clock=clock, initial=("Thinking.", "Once upon"))
    clock.now += 1
    recorder.append("", " a time")
    assert saves == [("Once upon a time", "Thinking.")]
    recorder.append("", "")  # nothing new: nothing to save
    assert len(saves) == 1


# ---------------------------------------------------------------------------- alternatives


def _contents(store: ConversationStore, conversation_id: int) -> list[str]:
    return [message.content for message in store.messages(conversation_id)]


def test_a_regenerated_reply_is_kept_as_an_alternative(store: ConversationStore) -> None:
    conversation = store.create_conversation()
    question = store.add_message(conversation.id, "user", "Q")
    first = store.add_message(conversation.id, "assistant", "A1")
    second = store.add_message(conversation.id, "assistant", "A2", parent_id=question.id)
    assert _contents(store, conversation.id) == ["Q", "A2"]
    assert [message.id for message in store.alternatives(second.id)] == [first.id, second.id]
    store.switch_to(first.id)
    assert _contents(store, conversation.id) == ["Q", "A1"]


def test_editing_a_question_keeps_the_old_branch_with_its_later_turns(store: ConversationStore) -> None:
    conversation = store.create_conversation()
    store.add_message(conversation.id, "user", "Q1")
    answer = store.add_message(conversation.id, "assistant", "A1")
    old_question = store.add_message(conversation.id, "user", "Q2")
    store.add_message(conversation.id, "assistant", "A2")
    store.add_message(conversation.id, "user", "Q3")

    edited = store.add_message(conversation.id, "user", "Q2 edited", parent_id=answer.id)
    store.add_message(conversation.id, "assistant", "A2 new")
    assert _contents(store, conversation.id) == ["Q1", "A1", "Q2 edited", "A2 new"]

    store.switch_to(old_question.id)  # back to the old branch, with everything that followed it
    assert _contents(store, conversation.id) == ["Q1", "A1", "Q2", "A2", "Q3"]
    assert [message.content for message in store.alternatives(edited.id)] == ["Q2", "Q2 edited"]


def test_deleting_a_message_in_the_middle_keeps_what_followed(store: ConversationStore) -> None:
    conversation = store.create_conversation()
    store.add_message(conversation.id, "user", "Q1")
    middle = store.add_message(conversation.id, "assistant", "A1")
    store.add_message(conversation.id, "user", "Q2")
    store.delete_message(middle.id)
    assert _contents(store, conversation.id) == ["Q1", "Q2"]
    last = store.messages(conversation.id)[-1]
    store.delete_message(last.id)
    assert _contents(store, conversation.id) == ["Q1"]
    store.add_message(conversation.id, "assistant", "A again")
    assert _contents(store, conversation.id) == ["Q1", "A again"]


def test_version_4_replies_the_user_stopped_become_stopped_and_crashed_ones_stay_interrupted(
    database_path: Path,
) -> None:
    cancelled = dataclasses.replace(STATS, stop_reason=StopReason.CANCELLED)
    with ConversationStore(database_path) as store:
        conversation = store.create_conversation()
        stopped = store.add_message(conversation.id, "assistant", "Stopped here", state=MessageState.STREAMING)
        store.update_message(stopped.id, state=MessageState.INTERRUPTED, stats=cancelled)
        crashed = store.add_message(conversation.id, "assistant", "Cut", state=MessageState.INTERRUPTED)
    raw = sqlite3.connect(database_path)
    raw.execute("DROP TABLE message_parts")
    raw.execute("PRAGMA user_version = 4")
    raw.commit()
    raw.close()
    with ConversationStore(database_path) as store:
        assert store.get_message(stopped.id).state is MessageState.STOPPED
        assert store.get_message(crashed.id).state is MessageState.INTERRUPTED
        assert store.get_message(crashed.id).parts == ()


def test_version_3_conversations_become_one_chain(database_path: Path) -> None:
    with ConversationStore(database_path) as store:
        conversation = store.create_conversation()
        for text in ("Q1", "A1", "Q2"):
            store.add_message(conversation.id, "user", text)
    raw = sqlite3.connect(database_path)
    raw.execute("PRAGMA foreign_keys = OFF")
    raw.execute("UPDATE messages SET parent_id = NULL")
    raw.execute("UPDATE conversations SET current_leaf_id = NULL")
    raw.execute("DROP INDEX messages_by_parent")
    raw.execute("ALTER TABLE messages DROP COLUMN parent_id")
    raw.execute("ALTER TABLE conversations DROP COLUMN current_leaf_id")
    raw.execute("DROP TABLE message_parts")
    raw.execute("PRAGMA user_version = 3")
    raw.commit()
    raw.close()
    with ConversationStore(database_path) as store:
        assert _contents(store, conversation.id) == ["Q1", "A1", "Q2"]
        assert store.messages(conversation.id)[1].parent_id == store.messages(conversation.id)[0].id


def test_writes_made_atomically_are_all_undone_when_one_fails(tmp_path: Path) -> None:
    with ConversationStore(tmp_path / "store.db") as store:
        kept = store.create_conversation(title="Kept")
        with pytest.raises(KeyError), store.atomically():
            store.rename_conversation(kept.id, "Renamed")
            store.add_message(kept.id, "user", "Hello")
            store.delete_conversation(404)
        assert [c.title for c in store.list_conversations()] == ["Kept"]
        assert store.messages(kept.id) == []
        with store.atomically():
            store.add_message(kept.id, "user", "Hello")
        assert [m.content for m in store.messages(kept.id)] == ["Hello"]


def test_switching_to_a_message_whose_parent_link_loops_ends(store: ConversationStore) -> None:
    conversation = store.create_conversation(title="Damaged")
    question = store.add_message(conversation.id, "user", "Hi")
    answer = store.add_message(conversation.id, "assistant", "Hello", parent_id=question.id)
    store._connection.execute("UPDATE messages SET parent_id = id WHERE id = ?", (answer.id,))  # a damaged file
    store.switch_to(answer.id)  # walked down from the answer to itself, forever, before
    leaf = store._connection.execute("SELECT current_leaf_id FROM conversations WHERE id = ?", (conversation.id,))
    assert leaf.fetchone()["current_leaf_id"] == answer.id
