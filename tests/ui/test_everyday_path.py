"""The everyday path from download to daily chat, driven like a user (pytest-qt, offscreen)."""

from __future__ import annotations

from pathlib import Path

import sqlite3

import huggingface_hub.constants
import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QSize, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QAbstractItemView, QApplication, QInputDialog, QLineEdit, QPushButton

from app.core.conversations.conversation_store import ConversationStore
from app.core.profile.app_paths import AppPaths
from app.ui.conversation_list_view import menu_button_rect
from app.ui.theme import set_color_scheme, set_font_size
from app.ui.reading_column import MAX_READING_WIDTH
from tests.ui.app_driver import WAIT_MS, close, load, open_app, select, send_and_wait, shown_texts, stored, stored_messages, titles


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return AppPaths.under(tmp_path / "profile")


def settle() -> None:
    """Runs what Qt left for later: deferred deletions (twice: a deleted message deletes its
    row), then the layout and paint requests they cause."""
    for _ in range(2):
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        QCoreApplication.processEvents()


def _write_long_conversations(paths: AppPaths, count: int, turns: int = 12) -> list[int]:
    ids = []
    with ConversationStore(paths.database) as store:
        for number in range(count):
            conversation = store.create_conversation(title=f"Chat {number}")
            for turn in range(turns):
                store.add_message(conversation.id, "user", f"Question {number}.{turn}: " + "why? " * 30)
                store.add_message(conversation.id, "assistant", f"Answer {number}.{turn}: " + "because. " * 60)
            ids.append(conversation.id)
    return ids


def _newest_message_is_on_screen(app) -> bool:
    transcript = app.window.transcript
    widgets = transcript.message_widgets()
    if not widgets:
        return False
    column = transcript.widget()
    last = widgets[-1]
    bottom = last.mapTo(column, last.rect().bottomLeft()).y()
    return (
        not last.visibleRegion().isEmpty()
        and column.height() - bottom < 40
        and transcript.verticalScrollBar().value() == transcript.verticalScrollBar().maximum()
    )


def test_switching_chats_shows_the_new_transcript_without_a_resize(qtbot, paths) -> None:
    first, second = _write_long_conversations(paths, 2)
    app = open_app(qtbot, paths)
    qtbot.waitUntil(lambda: _newest_message_is_on_screen(app), timeout=WAIT_MS)
    for conversation_id in (first, second, first):
        select(app, conversation_id)
        qtbot.waitUntil(lambda: app.window.conversation_id == conversation_id, timeout=WAIT_MS)
        settle()
        assert _newest_message_is_on_screen(app)
    close(app)


def test_deleting_a_chat_and_undoing_it_shows_each_transcript_without_a_resize(qtbot, paths) -> None:
    first, second = _write_long_conversations(paths, 2)
    app = open_app(qtbot, paths)
    window = app.window
    qtbot.waitUntil(lambda: window.conversation_id == second, timeout=WAIT_MS)
    window.delete_conversation(second)
    qtbot.waitUntil(lambda: window.conversation_id == first and window.info_banner.isVisible(), timeout=WAIT_MS)
    settle()
    assert _newest_message_is_on_screen(app)
    window.info_banner.action_button.click()  # Undo
    qtbot.waitUntil(lambda: window.conversation_id not in (None, first), timeout=WAIT_MS)
    settle()
    assert _newest_message_is_on_screen(app)
    close(app)


# ------------------------------------------------------------------------------- the model


def test_a_failed_open_changes_nothing(qtbot, paths, tiny_model, tmp_path) -> None:
    junk = tmp_path / "holiday-photos.gguf"
    junk.write_bytes(b"\x89PNG not a model at all")
    app = open_app(qtbot, paths)
    window = app.window
    load(qtbot, app, tiny_model)
    window.load_model(junk)
    qtbot.waitUntil(window.error_banner.isVisible, timeout=WAIT_MS)
    assert "“holiday-photos.gguf” is not a GGUF model file." in window.error_banner.label.text()
    assert f"Still using {tiny_model.stem}." in window.error_banner.label.text()
    assert window.composer.send_button.isEnabled()  # the model it had is still loaded
    assert window.model_picker.currentText() == tiny_model.stem
    assert [window.model_picker.itemText(row) for row in range(window.model_picker.count())] == [tiny_model.stem]
    assert window.model_status.text() == tiny_model.stem
    assert str(junk) not in window._settings.imported_models  # never listed as "Imported · Use"
    send_and_wait(qtbot, app, "Still there?")
    assert shown_texts(app)[-1]
    close(app)


def test_the_status_bar_names_the_model_as_the_picker_does_and_shows_the_figures_of_the_chat_on_screen(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    load(qtbot, app, tiny_model)
    context = app.core.engine.facts.context_size
    assert window.model_status.text() == window.model_picker.currentText() == tiny_model.stem
    assert window.context_status.text() == f"Context: 0 / {context:,} tokens"
    send_and_wait(qtbot, app, "Why is the sky blue?")
    first = window.conversation_id
    stats = window.transcript.message_widgets()[-1].stats
    assert window.speed_status.text() == f"{stats.tokens_per_second:.1f} tok/s"
    used = stats.prompt_tokens + stats.generated_tokens
    assert window.context_status.text() == f"Context: {used:,} / {context:,} tokens"

    window.new_conversation()  # a new chat has no figures of its own
    qtbot.waitUntil(lambda: window.conversation_id is None and not window.transcript.message_widgets())
    assert window.speed_status.text() == ""
    assert window.context_status.text() == f"Context: 0 / {context:,} tokens"
    select(app, first)  # back: its own last reply's figures
    qtbot.waitUntil(lambda: window.conversation_id == first, timeout=WAIT_MS)
    assert window.speed_status.text() == f"{stats.tokens_per_second:.1f} tok/s"
    assert "context" not in window.model_status.text().lower()  # the context is said once, on the right
    close(app)


# ----------------------------------------------------------------------------- the sidebar


def _sidebar_with_pinned_and_recent(paths: AppPaths) -> dict[str, int]:
    ids = {}
    with ConversationStore(paths.database) as store:
        for title in ("Pinned one", "Recent one", "Recent two"):
            conversation = store.create_conversation(title=title)
            store.add_message(conversation.id, "user", f"About {title}")
            ids[title] = conversation.id
        store.set_pinned(ids["Pinned one"], True)
    return ids


def _open_menu_and_read_it(qtbot, trigger) -> list[str]:
    """Runs ``trigger`` (which opens the chat menu) and returns the menu's entries, then closes it."""
    seen: list[str] = []

    def read() -> None:
        menu = QApplication.activePopupWidget()
        if menu is None:
            QTimer.singleShot(10, read)
            return
        seen.extend(action.text() for action in menu.actions() if action.text())
        menu.close()

    QTimer.singleShot(0, read)
    trigger()
    qtbot.waitUntil(lambda: bool(seen), timeout=WAIT_MS)
    return seen


def test_the_chat_list_works_from_the_keyboard(qtbot, paths) -> None:
    ids = _sidebar_with_pinned_and_recent(paths)
    app = open_app(qtbot, paths)
    window = app.window
    view = window.sidebar.list_view
    qtbot.waitUntil(lambda: titles(app) == ["Pinned one", "Recent two", "Recent one"])
    select(app, ids["Pinned one"])
    view.setFocus()
    # Down from the pinned chat skips the "Today" header and lands on the next chat.
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.currentIndex().data() == "Recent two"
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert view.currentIndex().data() == "Pinned one"
    qtbot.keyClick(view, Qt.Key.Key_Up)  # the "Pinned" header above is no stop either
    assert view.currentIndex().data() == "Pinned one"

    entries = _open_menu_and_read_it(qtbot, lambda: qtbot.keyClick(view, Qt.Key.Key_F10, Qt.KeyboardModifier.ShiftModifier))
    assert [entry.split("\t")[0] for entry in entries] == ["Rename", "Unpin", "Export as Markdown…", "Export as JSON…", "Delete"]
    entries = _open_menu_and_read_it(qtbot, lambda: qtbot.keyClick(view, Qt.Key.Key_Menu))
    assert entries[0].startswith("Rename")

    qtbot.keyClick(view, Qt.Key.Key_F2)
    assert view.state() == QAbstractItemView.State.EditingState
    editor = view.viewport().findChild(QLineEdit)
    editor.selectAll()
    qtbot.keyClicks(editor, "Renamed by keyboard")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: stored(app, lambda store: store.get_conversation(ids["Pinned one"]).title) == "Renamed by keyboard")

    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: "Renamed by keyboard" not in titles(app), timeout=WAIT_MS)
    assert window.info_banner.isVisible() and window.info_banner.action_button.text() == "Undo"
    window.info_banner.action_button.click()
    qtbot.waitUntil(lambda: "Renamed by keyboard" in titles(app), timeout=WAIT_MS)
    close(app)


def test_long_titles_are_cut_with_an_ellipsis_and_each_chat_has_a_menu_button(qtbot, paths) -> None:
    long_title = "A very long title about planning the summer holiday in the mountains with the whole family " * 2
    with ConversationStore(paths.database) as store:
        conversation = store.create_conversation(title=long_title)
        store.add_message(conversation.id, "user", "hello")
    app = open_app(qtbot, paths)
    view = app.window.sidebar.list_view
    qtbot.waitUntil(lambda: titles(app) == [long_title])
    assert view.horizontalScrollBar().maximum() == 0  # no sideways scrolling, the title is elided
    row = view.visualRect(app.window.sidebar.model.index(1))
    assert row.width() <= view.viewport().width()
    button = menu_button_rect(row)
    entries = _open_menu_and_read_it(qtbot, lambda: qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=button.center()))
    assert [entry.split("\t")[0] for entry in entries] == ["Rename", "Pin", "Export as Markdown…", "Export as JSON…", "Delete"]
    close(app)


def test_the_first_start_shows_an_empty_chat_list_that_says_what_to_do(qtbot, paths) -> None:
    app = open_app(qtbot, paths)
    sidebar = app.window.sidebar
    assert sidebar.empty_label.isVisible() and not sidebar.list_view.isVisible()
    assert "No chats yet" in sidebar.empty_label.text()
    close(app)


def test_tab_goes_from_writing_to_sending_to_reading_to_the_chats(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    load(qtbot, app, tiny_model)
    send_and_wait(qtbot, app, "Hello")
    window.composer.edit.setFocus()
    order = []
    for _ in range(4):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        order.append(QApplication.focusWidget())
    assert order == [window.composer.send_button, window.transcript, window.sidebar.new_chat_button, window.sidebar.search_edit]
    close(app)


def test_the_keyboard_shortcuts_window_lists_every_key(qtbot, paths) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    rows: list[list[str]] = []

    def read() -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            QTimer.singleShot(10, read)
            return
        table = dialog.table
        rows.extend([table.topLevelItem(row).text(column) for column in range(3)] for row in range(table.topLevelItemCount()))
        dialog.reject()

    QTimer.singleShot(0, read)
    window.shortcuts_action.trigger()
    assert window.shortcuts_action.shortcut().toString() == "Ctrl+/"
    assert ["Anywhere", "Regenerate Reply", "Ctrl+R"] in rows
    assert ["Chat list", "Rename the chat", "F2"] in rows
    assert any(row[1] == "Keyboard Shortcuts" and row[2] == "Ctrl+/" for row in rows)
    close(app)


# ------------------------------------------------------------------------ message actions


def _one_stored_turn(paths: AppPaths, question: str, answer: str) -> int:
    """A conversation of one question and its answer, stored before the app starts; its id."""
    with ConversationStore(paths.database) as store:
        conversation = store.create_conversation(title=question)
        store.add_message(conversation.id, "user", question)
        store.add_message(conversation.id, "assistant", answer)
    return conversation.id


def test_message_actions_are_icons_with_tooltips_and_copy_confirms(qtbot, paths) -> None:
    _one_stored_turn(paths, "Question", "An answer to copy")
    app = open_app(qtbot, paths)
    window = app.window
    reply = window.transcript.message_widgets()[-1]
    for name in ("copy", "regenerate", "delete"):
        button = reply.action_buttons[name]
        assert not button.icon().isNull() and button.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonIconOnly
        assert button.toolTip()
    # No model loaded: Regenerate is there but disabled, and says why.
    regenerate = reply.action_buttons["regenerate"]
    assert regenerate.isVisible() and not regenerate.isEnabled()
    assert "Open a model to start chatting." in regenerate.toolTip()

    qtbot.mouseClick(reply.action_buttons["copy"], Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == "An answer to copy"
    copy = reply.action_buttons["copy"]
    assert copy.text() == "Copied" and copy.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonTextBesideIcon
    qtbot.waitUntil(lambda: copy.text() == "Copy", timeout=WAIT_MS)  # the confirmation goes away
    close(app)


def test_editing_a_question_marks_it_and_esc_cancels_keeping_the_draft(qtbot, paths) -> None:
    conversation_id = _one_stored_turn(paths, "Original question", "Answer")
    app = open_app(qtbot, paths)
    window = app.window
    window.composer.edit.setPlainText("a draft I was writing")
    question = window.transcript.message_widgets()[0]
    qtbot.mouseClick(question.action_buttons["edit"], Qt.MouseButton.LeftButton)
    assert question.property("editing") is True
    assert window.composer.edit.toPlainText() == "Original question"
    assert window.composer.cancel_edit_button.isVisible()
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Escape)
    assert not question.property("editing")
    assert not window.composer.cancel_edit_button.isVisible()
    assert window.composer.edit.toPlainText() == "a draft I was writing"
    assert [message.content for message in stored_messages(app, conversation_id)] == ["Original question", "Answer"]
    close(app)


# ---------------------------------------------------------------------------- reading comfort


def test_a_wide_window_keeps_a_centred_reading_column_and_offers_a_jump_to_the_latest(qtbot, paths) -> None:
    _write_long_conversations(paths, 1, turns=20)
    app = open_app(qtbot, paths)
    window = app.window
    window.resize(1600, 1000)
    qtbot.waitUntil(lambda: _newest_message_is_on_screen(app), timeout=WAIT_MS)
    transcript = window.transcript
    reply = transcript.message_widgets()[-1]
    left = reply.mapTo(transcript.widget(), reply.rect().topLeft()).x()
    assert reply.width() <= MAX_READING_WIDTH
    assert abs(left - (transcript.viewport().width() - reply.width() - left)) < 60  # centred
    composer = window.composer.edit
    qtbot.waitUntil(lambda: composer.width() <= MAX_READING_WIDTH)  # the composer lines up with the column
    assert not transcript.jump_button.isVisible()

    transcript.verticalScrollBar().setValue(0)
    assert transcript.jump_button.isVisible()
    qtbot.mouseClick(transcript.jump_button, Qt.MouseButton.LeftButton)
    assert _newest_message_is_on_screen(app) and not transcript.jump_button.isVisible()

    window.resize(800, 600)  # nothing laid out for the wide window keeps it from getting small
    qtbot.waitUntil(lambda: window.size() == QSize(800, 600))
    close(app)


# ------------------------------------------------------------------------------ settings


def test_the_chat_settings_say_what_each_field_does_and_which_apply_to_every_chat(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    load(qtbot, app, tiny_model)
    context = app.core.engine.facts.context_size
    panel = window.chat_settings_panel
    for field in (panel.temperature, panel.top_p, panel.top_k, panel.min_p, panel.presence_penalty, panel.max_tokens, panel.system_prompt):
        assert field.toolTip()
    assert f"Context window: {context:,} tokens, the same for every chat" in panel.context_note.text()
    panel.max_tokens.setValue(context + 512)
    assert panel.limit_warning.isVisibleTo(panel)
    assert f"larger than the context window ({context:,} tokens)" in panel.limit_warning.text()
    panel.max_tokens.setValue(256)
    assert not panel.limit_warning.isVisibleTo(panel)
    close(app)


def test_own_presets_can_be_renamed_and_deleted(qtbot, paths, monkeypatch) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    panel = window.chat_settings_panel
    names = iter(["Careful", "Very careful"])
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: (next(names), True))
    panel.temperature.setValue(0.3)
    next(button for button in panel.findChildren(QPushButton) if button.text() == "Save as preset…").click()
    assert panel.preset.currentText() == "Careful" and panel.rename_preset_button.isEnabled()
    assert [preset["name"] for preset in window._settings.user_presets] == ["Careful"]
    panel.rename_preset_button.click()
    assert panel.preset.currentText() == "Very careful"
    assert [preset["name"] for preset in window._settings.user_presets] == ["Very careful"]
    panel.delete_preset_button.click()
    assert window._settings.user_presets == []
    assert panel.preset.findText("Very careful") == -1 and panel.temperature.value() == pytest.approx(0.3)
    panel.preset.setCurrentIndex(panel.preset.findText("Thinking"))
    assert not panel.delete_preset_button.isEnabled()  # built-in presets stay
    close(app)


def test_opening_the_chat_settings_never_grows_a_small_window(qtbot, paths) -> None:
    set_color_scheme(QApplication.instance(), None)  # the app's style sheet, as the real app has it
    app = open_app(qtbot, paths)
    window = app.window
    window.resize(800, 600)
    qtbot.waitUntil(lambda: window.size() == QSize(800, 600))
    window.model_bar.chat_settings_button.click()
    qtbot.waitUntil(window.chat_settings_dock.isVisible)
    QCoreApplication.processEvents()
    assert window.size() == QSize(800, 600)
    close(app)


def test_settings_hold_threads_gpu_text_size_and_context_and_show_the_hub_in_use(qtbot, paths, monkeypatch) -> None:
    # As if the app had been started with HF_ENDPOINT set: huggingface_hub reads it at import.
    monkeypatch.setenv("HF_ENDPOINT", "https://mirror.example")
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "https://mirror.example")
    app = open_app(qtbot, paths)
    window = app.window
    shown: list[str] = []

    def change_and_save() -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            QTimer.singleShot(10, change_and_save)
            return
        shown.append(dialog.endpoint_in_use.text())
        assert not dialog.gpu_layers.isEnabled() and "CPU" in dialog.gpu_layers.toolTip()  # this build has no GPU
        dialog.threads.setValue(1)
        dialog.font_size.setValue(13)
        dialog.context_size.setValue(4096)
        dialog.accept()

    QTimer.singleShot(0, change_and_save)
    window.show_settings()
    assert shown == ["Empty: downloads come from https://mirror.example (set by the HF_ENDPOINT environment variable)."]
    settings = window._settings
    assert (settings.threads, settings.font_size, settings.context_size) == (1, 13, 4096)
    assert QApplication.font().pointSize() == 13
    assert settings.load_settings(4096).threads == 1
    set_font_size(QApplication.instance(), 0)
    close(app)


def test_the_error_banner_takes_dark_colours_in_the_dark_theme(qtbot, paths) -> None:
    application = QApplication.instance()
    set_color_scheme(application, Qt.ColorScheme.Dark)
    try:
        assert "#3b1d1b" in application.styleSheet()  # no light pink banner on a dark window
        set_color_scheme(application, Qt.ColorScheme.Light)
        assert "#3b1d1b" not in application.styleSheet()
    finally:
        set_color_scheme(application, None)


def test_a_chat_with_a_damaged_time_in_the_database_does_not_stop_the_app(qtbot, paths) -> None:
    # Stored by an earlier version that imported a year-3e292 timestamp.
    conversation_id = _one_stored_turn(paths, "From the far future", "Still readable")
    with sqlite3.connect(paths.database) as database:
        database.execute("UPDATE conversations SET updated_at = 1e300, created_at = -1e12 WHERE id = ?", (conversation_id,))
    app = open_app(qtbot, paths)
    assert titles(app) == ["From the far future"]
    assert shown_texts(app) == ["From the far future", "Still readable"]
    close(app)
