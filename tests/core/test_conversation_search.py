"""Full-text search over stored messages, on real SQLite files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.conversations.conversation_store import (
    MATCH_END,
    MATCH_START,
    ConversationStore,
    MessageState,
)
from tests.core.test_conversation_store import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[ConversationStore]:
    with ConversationStore(tmp_path / "conversations.db", clock=clock) as opened:
        yield opened


def _found_ids(store: ConversationStore, query: str) -> list[int]:
    return [hit.message_id for hit in store.search(query)]


def test_search_finds_a_word_in_an_old_conversation_and_says_where(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "conversations.db"
    with ConversationStore(path, clock=clock) as store:
        old = store.create_conversation(title="Snakes")
        question = store.add_message(old.id, "user", "Is a python venomous?")
        clock.now += 1
        store.add_message(old.id, "assistant", "No, it constricts its prey.")
        clock.now += 86_400
        recent = store.create_conversation(title="Dinner")
        store.add_message(recent.id, "user", "A recipe for risotto, please.")

    with ConversationStore(path, clock=clock) as reopened:
        [hit] = reopened.search("venomous")

    assert hit.conversation_id == old.id
    assert hit.conversation_title == "Snakes"
    assert hit.message_id == question.id
    assert hit.role == "user"
    assert hit.created_at == question.created_at


def test_search_matches_word_beginnings_regardless_of_case_and_accents(
    store: ConversationStore,
) -> None:
    conversation = store.create_conversation()
    python = store.add_message(conversation.id, "user", "I write Python every day.")
    cafe = store.add_message(conversation.id, "user", "Meet me at the CAFÉ.")

    assert _found_ids(store, "pyth") == [python.id]
    assert _found_ids(store, "PYTHON") == [python.id]
    assert _found_ids(store, "cafe") == [cafe.id]
    assert _found_ids(store, "ython") == []  # words match from their start only


def test_search_needs_every_word_of_the_query(store: ConversationStore) -> None:
    conversation = store.create_conversation()
    both = store.add_message(conversation.id, "user", "Rust and Python both have iterators.")
    store.add_message(conversation.id, "user", "Python only.")

    assert _found_ids(store, "python rust") == [both.id]


def test_search_looks_in_the_reasoning_too(store: ConversationStore) -> None:
    conversation = store.create_conversation()
    reply = store.add_message(
        conversation.id, "assistant", "Forty-two.", reasoning="Deep Thought computed it."
    )

    [hit] = store.search("computed")

    assert hit.message_id == reply.id
    assert hit.snippet_parts() == [("Deep Thought ", False), ("computed", True), (" it.", False)]


@pytest.mark.parametrize(
    "query",
    [
        '"python',
        'python"',
        '"python"',
        "python*",
        "-python",
        "python:",
        "(python",
        "python)",
        "^python",
        "python + -",
        "python\x00",
    ],
)
def test_punctuation_in_a_query_is_text_not_syntax(store: ConversationStore, query: str) -> None:
    conversation = store.create_conversation()
    python = store.add_message(conversation.id, "user", "Python is fun.")
    store.add_message(conversation.id, "user", "Rust is fun.")

    assert _found_ids(store, query) == [python.id]


@pytest.mark.parametrize("query", ["content:python", "python NOT", "NEAR(python", "python OR"])
def test_query_operators_are_searched_as_plain_words(store: ConversationStore, query: str) -> None:
    conversation = store.create_conversation()
    message = store.add_message(conversation.id, "user", "Content: python or not, near python.")
    store.add_message(conversation.id, "user", "Python alone.")

    assert _found_ids(store, query) == [message.id]


@pytest.mark.parametrize("query", ["", "   ", '"', '""', "*", "-", ":", "(", "\x00", "- * :"])
def test_a_query_without_letters_or_digits_finds_nothing(
    store: ConversationStore, query: str
) -> None:
    conversation = store.create_conversation()
    store.add_message(conversation.id, "user", 'Quotes " and stars * and dashes - here.')

    assert store.search(query) == []


def test_search_finds_words_joined_by_punctuation(store: ConversationStore) -> None:
    conversation = store.create_conversation()
    message = store.add_message(conversation.id, "user", "Set up a pre-commit hook in C++.")

    assert _found_ids(store, "pre-commit") == [message.id]
    assert _found_ids(store, "c++ hook") == [message.id]


def test_snippet_marks_each_matched_word_and_shortens_long_text(store: ConversationStore) -> None:
    conversation = store.create_conversation()
    filler = " ".join(f"word{number}" for number in range(60))
    store.add_message(conversation.id, "user", f"{filler} <b>Python</b> pythonic {filler}")

    [hit] = store.search("pyth")

    assert f"{MATCH_START}Python{MATCH_END}" in hit.snippet
    assert f"{MATCH_START}pythonic{MATCH_END}" in hit.snippet
    assert hit.snippet.startswith("…") and hit.snippet.endswith("…")
    assert len(hit.snippet) < 200
    matched = [text for text, is_match in hit.snippet_parts() if is_match]
    assert matched == ["Python", "pythonic"]
    # The message's own markup is plain text in the snippet, for the UI to escape.
    assert ("</b> ", False) in hit.snippet_parts()
    assert "".join(text for text, _ in hit.snippet_parts()) == hit.snippet.replace(
        MATCH_START, ""
    ).replace(MATCH_END, "")


def test_more_relevant_messages_come_first(store: ConversationStore, clock: FakeClock) -> None:
    conversation = store.create_conversation()
    passing = store.add_message(
        conversation.id,
        "assistant",
        "Lisbon has trams, hills, bakeries, a castle, a river and, somewhere, a python exhibit.",
    )
    clock.now += 1
    focused = store.add_message(conversation.id, "user", "Python, python: python.")

    assert _found_ids(store, "python") == [focused.id, passing.id]


def test_equally_relevant_messages_come_newest_first(
    store: ConversationStore, clock: FakeClock
) -> None:
    first = store.create_conversation(title="first")
    older = store.add_message(first.id, "user", "What is a monad?")
    clock.now += 1
    second = store.create_conversation(title="second")
    newer = store.add_message(second.id, "user", "What is a monad?")

    assert _found_ids(store, "monad") == [newer.id, older.id]


def test_search_returns_at_most_the_limit(store: ConversationStore, clock: FakeClock) -> None:
    conversation = store.create_conversation()
    for _ in range(5):
        clock.now += 1
        store.add_message(conversation.id, "user", "again")

    assert len(store.search("again", limit=3)) == 3
    assert len(store.search("again")) == 5


def test_deleted_messages_and_conversations_are_no_longer_found(
    store: ConversationStore,
) -> None:
    conversation = store.create_conversation()
    deleted_message = store.add_message(conversation.id, "user", "ephemeral thought")
    kept_message = store.add_message(conversation.id, "user", "ephemeral but kept")
    doomed = store.create_conversation()
    store.add_message(doomed.id, "user", "ephemeral too", reasoning="ephemeral reasoning")

    store.delete_message(deleted_message.id)
    store.delete_conversation(doomed.id)

    assert _found_ids(store, "ephemeral") == [kept_message.id]


def test_changed_text_is_searched_as_it_is_now(store: ConversationStore) -> None:
    conversation = store.create_conversation()
    reply = store.add_message(conversation.id, "assistant", state=MessageState.STREAMING)
    store.update_message(reply.id, content="Draft about giraffes")
    assert _found_ids(store, "giraffes") == [reply.id]

    store.update_message(
        reply.id, content="Final answer about zebras", reasoning="Think of stripes"
    )
    store.update_message(reply.id, state=MessageState.COMPLETE)

    assert _found_ids(store, "giraffes") == []
    assert _found_ids(store, "zebras") == [reply.id]
    assert _found_ids(store, "stripes") == [reply.id]
