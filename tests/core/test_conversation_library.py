"""The conversation library: operations on stored chats, run off the caller's thread, told as events."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from app.core.conversations.conversation_events import (
    ConversationDeleted,
    ConversationRestored,
    ConversationsChanged,
    ExportFinished,
    ImportFinished,
    ImportNeedsChoice,
    LibraryOperationFailed,
    SearchFinished,
)
from app.core.conversations.conversation_library import ConversationLibrary
from app.core.conversations.conversation_export import DuplicateChoice
from app.core.conversations.store_worker import StoreWorker
from tests.event_recorder import TIMEOUT_S, EventRecorder


@pytest.fixture
def worker(tmp_path: Path):
    worker = StoreWorker(tmp_path / "conversations.sqlite3")
    yield worker
    worker.shutdown()


@pytest.fixture
def library(worker: StoreWorker):
    return ConversationLibrary(worker)


@pytest.fixture
def events(library: ConversationLibrary) -> EventRecorder:
    events = EventRecorder()
    library.subscribe(events)
    events.wait_for(ConversationsChanged)
    return events


def _chat_with_alternatives(worker: StoreWorker, title: str) -> int:
    def write(store) -> int:
        conversation = store.create_conversation(title=title)
        question = store.add_message(conversation.id, "user", f"{title} question")
        store.add_message(conversation.id, "assistant", "first answer")
        store.add_message(conversation.id, "assistant", "second answer", parent_id=question.id)
        return conversation.id

    return worker.submit(write).result(TIMEOUT_S)


def _titles(event: ConversationsChanged) -> list[str]:
    return [conversation.title for conversation in event.conversations]


def test_renaming_and_pinning_show_in_the_next_list(library, events, worker) -> None:
    first = _chat_with_alternatives(worker, "First")
    _chat_with_alternatives(worker, "Second")
    library.rename(first, "Trip plans")
    library.set_pinned(first, True)
    latest = events.wait_for(ConversationsChanged, lambda event: any(c.pinned for c in event.conversations))
    assert _titles(latest) == ["Trip plans", "Second"]


def test_undo_brings_a_deleted_chat_back_with_every_branch(library, events, worker) -> None:
    doomed = _chat_with_alternatives(worker, "Doomed")
    library.delete(doomed)
    deleted = events.wait_for(ConversationDeleted)
    assert deleted.conversation.title == "Doomed"
    assert _titles(events.wait_for(ConversationsChanged, lambda event: not event.conversations)) == []

    library.undo_delete()
    restored = events.wait_for(ConversationRestored).conversation
    assert restored.title == "Doomed"
    tree = worker.submit(lambda store: store.conversation_tree(restored.id)).result(TIMEOUT_S)
    assert [message.content for message in tree.messages] == ["Doomed question", "first answer", "second answer"]
    assert tree.current_message_id == tree.messages[-1].id


def test_export_and_import_run_off_the_callers_thread_and_report_back(library, events, worker, tmp_path) -> None:
    for number in range(3):
        _chat_with_alternatives(worker, f"Chat {number}")
    caller = threading.current_thread()
    threads: list[threading.Thread] = []
    library.subscribe(lambda _event: threads.append(threading.current_thread()))
    backup = tmp_path / "backup.json"

    library.export_all(backup)
    exported = events.wait_for(ExportFinished)
    assert (exported.path, exported.count) == (backup, 3)
    assert len(json.loads(backup.read_text())["conversations"]) == 3

    library.import_file(backup)  # the same chats again: the user is asked first
    asked = events.wait_for(ImportNeedsChoice)
    assert (asked.total, [c.title for c in asked.already_here]) == (3, ["Chat 0", "Chat 1", "Chat 2"])
    library.import_file(backup, DuplicateChoice.KEEP_BOTH)
    imported = events.wait_for(ImportFinished)
    assert [conversation.title for conversation in imported.conversations] == ["Chat 0", "Chat 1", "Chat 2"]
    assert len(events.wait_for(ConversationsChanged, lambda event: len(event.conversations) == 6).conversations) == 6
    assert caller not in threads


def test_one_chat_exports_as_markdown_with_the_branch_shown(library, events, worker, tmp_path) -> None:
    chat = _chat_with_alternatives(worker, "Notes")
    target = tmp_path / "notes.md"
    library.export_conversation(chat, "md", target)
    events.wait_for(ExportFinished)
    text = target.read_text()
    assert text.startswith("# Notes") and "second answer" in text and "first answer" not in text


def test_what_cannot_be_done_is_said_and_changes_nothing(library, events, worker, tmp_path) -> None:
    _chat_with_alternatives(worker, "Kept")
    broken = tmp_path / "broken.json"
    broken.write_text("{ nope")
    library.import_file(broken)
    library.import_file(tmp_path / "missing.json")
    library.export_all(tmp_path / "no-such-folder" / "backup.json")
    library.rename(404, "Ghost")
    failures = [events.wait_for(LibraryOperationFailed, count=count).message for count in range(1, 5)]
    assert failures[0].startswith("Could not import “broken.json”: The file is not a Qwen Local Chat export")
    assert failures[1].startswith("Could not import “missing.json”: No such file")
    assert failures[2].startswith("Could not save “backup.json”: No such file")
    assert failures[3] == "Could not rename the chat: it no longer exists."
    titles = worker.submit(lambda store: [c.title for c in store.list_conversations()]).result(TIMEOUT_S)
    assert titles == ["Kept"]


def test_search_answers_with_its_query(library, events, worker) -> None:
    _chat_with_alternatives(worker, "Gardening")
    library.search("garden")
    found = events.wait_for(SearchFinished)
    assert found.query == "garden"
    assert [hit.conversation_title for hit in found.hits] == ["Gardening"]


def _export_of(titles: list[str], broken_last: bool = False) -> str:
    chats = [
        {
            "title": title, "created_at": 1.0, "updated_at": 2.0, "model": "", "system_prompt": "",
            "generation_settings": {}, "pinned": False, "current_message": None, "messages": [],
        }
        for title in titles
    ]
    if broken_last:
        chats[-1]["updated_at"] = 1e300
    return json.dumps({"format": "qwen-local-chat/conversations", "version": 2, "conversations": chats})


def _stored_titles(worker: StoreWorker) -> list[str]:
    return worker.submit(lambda store: [c.title for c in store.list_conversations()]).result(TIMEOUT_S)


def test_three_good_chats_and_a_bad_fourth_import_none_and_the_message_names_the_fourth(library, events, worker, tmp_path) -> None:
    backup = tmp_path / "backup.json"
    backup.write_text(_export_of(["One", "Two", "Three", "Four"], broken_last=True))
    library.import_file(backup)
    failure = events.wait_for(LibraryOperationFailed).message
    assert failure.startswith("Could not import “backup.json”: In conversation 4, \"updated_at\" must be a time")
    assert _stored_titles(worker) == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (_export_of(["Café"]).encode()[:40] + b"\xff\xfe" + _export_of(["Café"]).encode()[40:], "it is not UTF-8 text (byte 40 is not part of any character)."),
        (b"\x00\x01\x02 not text", "it is binary data, not text."),
        (b"", "The file is empty."),
        (b"# Trip\n\n**You**\n\nHello\n", "The file is a Markdown export, which is for reading: import a JSON export instead."),
    ],
    ids=["invalid-utf8", "binary", "empty", "markdown"],
)
def test_a_file_that_is_not_an_export_is_refused_with_a_reason(library, events, worker, tmp_path, content: bytes, reason: str) -> None:
    chosen = tmp_path / "chats.json"
    chosen.write_bytes(content)
    library.import_file(chosen)
    failure = events.wait_for(LibraryOperationFailed).message
    assert failure.startswith("Could not import “chats.json”: The file ") and failure.endswith(reason)
    assert _stored_titles(worker) == []


def test_a_file_over_256_mb_is_refused_by_its_size_before_it_is_read(library, events, worker, tmp_path) -> None:
    huge = tmp_path / "huge.json"
    with huge.open("wb") as file:
        file.truncate(300 * 1024 * 1024)  # sparse: no disk used, and reading it would take seconds
    library.import_file(huge)
    failure = events.wait_for(LibraryOperationFailed).message
    assert failure == "Could not import “huge.json”: The file is 300 MB; files over 256 MB are not imported."


def test_a_file_saved_with_a_byte_order_mark_imports(library, events, worker, tmp_path) -> None:
    backup = tmp_path / "edited-in-notepad.json"
    backup.write_bytes(b"\xef\xbb\xbf" + _export_of(["Kept"]).encode())
    library.import_file(backup)
    assert [c.title for c in events.wait_for(ImportFinished).conversations] == ["Kept"]
