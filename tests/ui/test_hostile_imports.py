"""Nothing a file holds stops the app: odd rows already in the conversation file, and files given
to Import Chats (pytest-qt, offscreen, the real app on real SQLite files)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.core.conversations.conversation_store import DAMAGED_TITLE, ConversationStore
from app.core.profile.app_paths import AppPaths
from tests.ui.app_driver import WAIT_MS, close, open_app, select, shown_texts, titles


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return AppPaths.under(tmp_path / "profile")


def _two_chats(paths: AppPaths) -> int:
    """A fine chat and, newer, the one a test damages (the one the window opens first); its id."""
    with ConversationStore(paths.database) as store:
        for title in ("Fine", "Odd"):
            conversation = store.create_conversation(title=title)
            store.add_message(conversation.id, "user", f"{title} question")
            store.add_message(conversation.id, "assistant", f"{title} answer")
    return conversation.id


# Each as an earlier version, a hand edit or a damaged disk could leave it; written with sqlite3.
DAMAGED_CONVERSATIONS = {
    "blob-title": "UPDATE conversations SET title = x'00ff' WHERE id = ?",
    "text-times": "UPDATE conversations SET created_at = 'yesterday', updated_at = 'soon' WHERE id = ?",
    "nan-time": "UPDATE conversations SET updated_at = 'NaN' WHERE id = ?",
    "garbage-settings": "UPDATE conversations SET generation_settings = '{nope' WHERE id = ?",
}
DAMAGED_MESSAGES = {
    "unknown-state": "UPDATE messages SET state = 'thinking' WHERE conversation_id = ?",
    "unknown-role": "UPDATE messages SET role = 'wizard' WHERE conversation_id = ?",
    "blob-content": "UPDATE messages SET content = x'4f6464ff' WHERE conversation_id = ?",
    "text-time": "UPDATE messages SET created_at = 'noon' WHERE conversation_id = ?",
    "unknown-stop-reason": "UPDATE messages SET stop_reason = 'boom', prompt_tokens = 'x' WHERE conversation_id = ?",
    "unreadable-part": (
        "INSERT INTO message_parts (message_id, position, kind, data)"
        " SELECT id, 0, 'video', '{' FROM messages WHERE conversation_id = ?"
    ),
}


def _damage(paths: AppPaths, statement: str, conversation_id: int) -> None:
    with sqlite3.connect(paths.database) as database:
        database.execute(statement, (conversation_id,))


@pytest.mark.parametrize("statement", DAMAGED_CONVERSATIONS.values(), ids=DAMAGED_CONVERSATIONS.keys())
def test_a_damaged_conversation_row_is_listed_as_damaged_and_the_rest_works(qtbot, paths, statement: str) -> None:
    odd = _two_chats(paths)
    _damage(paths, statement, odd)
    app = open_app(qtbot, paths)
    assert "Fine" in titles(app)
    assert [title for title in titles(app) if title.startswith(DAMAGED_TITLE)]
    select(app, odd)
    qtbot.waitUntil(lambda: shown_texts(app) == ["Odd question", "Odd answer"], timeout=WAIT_MS)
    select(app, next(c.id for c in app.window.sidebar.model.conversations() if c.title == "Fine"))
    qtbot.waitUntil(lambda: shown_texts(app) == ["Fine question", "Fine answer"], timeout=WAIT_MS)
    close(app)


@pytest.mark.parametrize("statement", DAMAGED_MESSAGES.values(), ids=DAMAGED_MESSAGES.keys())
def test_a_damaged_message_row_is_shown_as_damaged_and_the_rest_works(qtbot, paths, statement: str) -> None:
    odd = _two_chats(paths)
    _damage(paths, statement, odd)
    app = open_app(qtbot, paths)
    assert titles(app) == ["Odd", "Fine"]
    assert app.window.conversation_id == odd
    footers = [widget._footer.text() for widget in app.window.transcript.message_widgets()]
    assert footers and all("damaged in the conversation file" in footer for footer in footers)
    select(app, next(c.id for c in app.window.sidebar.model.conversations() if c.title == "Fine"))
    qtbot.waitUntil(lambda: shown_texts(app) == ["Fine question", "Fine answer"], timeout=WAIT_MS)
    close(app)


def test_messages_whose_parents_form_a_loop_do_not_lock_the_app(qtbot, paths) -> None:
    odd = _two_chats(paths)
    _damage(paths, "UPDATE messages SET parent_id = id WHERE conversation_id = ?", odd)
    app = open_app(qtbot, paths)
    assert titles(app) == ["Odd", "Fine"]
    assert shown_texts(app) == ["Odd answer"]
    close(app)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "it is not UTF-8 text (byte 0 is not part of any character)"),
        (b"", "The file is empty."),
        (b"# Trip to Lisbon\n\n**You**\n\nHello\n", "The file is a Markdown export, which is for reading"),
    ],
    ids=["binary-renamed-json", "empty", "markdown"],
)
def test_a_file_that_is_not_an_export_is_refused_in_the_error_banner(qtbot, paths, tmp_path, content: bytes, reason: str) -> None:
    _two_chats(paths)
    app = open_app(qtbot, paths)
    chosen = tmp_path / "chats.json"
    chosen.write_bytes(content)
    app.window.conversation_files.import_file(chosen)
    banner = app.window.error_banner
    qtbot.waitUntil(banner.isVisible, timeout=WAIT_MS)
    assert banner.label.text().startswith("Could not import “chats.json”: ") and reason in banner.label.text()
    assert titles(app) == ["Odd", "Fine"]
    close(app)
