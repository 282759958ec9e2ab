"""The main window driven like a user would, on the real tiny model (pytest-qt, offscreen)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QObject, QPointF, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from app.core.conversations.conversation_store import ConversationStore
from app.core.domain.conversations import MessageState
from app.core.engines.llama.self_test_model import ENDLESS_CYCLE, THINKING_ANSWER, THINKING_REASONING
from app.core.profile.app_paths import AppPaths
from app.ui.main_window import about_text
from app.ui.markdown_view import MarkdownView, is_safe_link
from app.ui.transcript_view import FIRST_PAGE_SIZE, PAGE_CHARACTERS, PAGE_SIZE
from tests.ui.app_driver import (
    WAIT_MS,
    close,
    load,
    open_app,
    send_and_wait,
    shown_texts,
    stored,
    stored_messages,
    titles,
    type_and_send,
    wait_until_idle,
)


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return AppPaths.under(tmp_path / "profile")


def _start_an_endless_reply(qtbot, app):
    """Sends a question this model answers with an endless "abc…" (thinking off); its widget."""
    window = app.window
    window.composer.thinking_switch.setChecked(False)
    type_and_send(qtbot, app, "Count forever")
    qtbot.waitUntil(lambda: len(window.transcript.message_widgets()) == 2, timeout=WAIT_MS)
    return window.transcript.message_widgets()[-1]


def test_send_a_message_and_see_the_reply_with_collapsed_thinking(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    assert not window.composer.send_button.isEnabled()  # no model yet
    load(qtbot, app, tiny_model)
    qtbot.waitUntil(window.composer.thinking_switch.isChecked)  # this template thinks by default
    assert "CPU" in window.backend_status.text()

    type_and_send(qtbot, app, "Why is the sky blue?")
    assert window.composer.send_button.text() == "Stop"  # at once, before the question is stored
    wait_until_idle(qtbot, app)
    assert window.composer.send_button.text() == "Send"

    user, reply = window.transcript.message_widgets()
    assert user.answer == "Why is the sky blue?"
    assert reply.answer == THINKING_ANSWER
    assert reply._thinking_toggle.isVisible() and not reply._thinking_toggle.isChecked()
    assert not reply._reasoning_label.isVisible()
    qtbot.mouseClick(reply._thinking_toggle, Qt.MouseButton.LeftButton)
    assert reply._reasoning_label.isVisible() and reply._reasoning_label.text() == THINKING_REASONING
    assert "tok/s" in reply._footer.text()
    assert "tok/s" in window.speed_status.text()
    assert window.composer.edit.toPlainText() == ""
    assert titles(app) == ["Why is the sky blue?"]
    assert window.sidebar.list_view.currentIndex().data() == "Why is the sky blue?"
    close(app)


def test_shift_enter_adds_a_line_instead_of_sending(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    load(qtbot, app, tiny_model)
    qtbot.keyClicks(window.composer.edit, "first line")
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(window.composer.edit, "second line")
    assert window.composer.edit.toPlainText() == "first line\nsecond line"
    assert not window.is_generating
    close(app)


def test_tokens_appear_while_streaming_and_stop_ends_the_reply(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    load(qtbot, app, tiny_model)
    reply = _start_an_endless_reply(qtbot, app)
    qtbot.waitUntil(lambda: len(reply.answer) >= 6, timeout=WAIT_MS)
    assert window.is_generating  # text shows up before the reply ends

    qtbot.mouseClick(window.composer.send_button, Qt.MouseButton.LeftButton)
    wait_until_idle(qtbot, app)
    assert window.composer.send_button.text() == "Send"
    assert reply.answer.startswith(ENDLESS_CYCLE)
    assert "Stopped" in reply._footer.text()

    saved = stored_messages(app)[-1]
    assert saved.state == MessageState.STOPPED
    assert saved.content == reply.answer
    close(app)


def test_closing_mid_generation_exits_cleanly_and_keeps_the_partial_reply(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    load(qtbot, app, tiny_model)
    reply = _start_an_endless_reply(qtbot, app)
    qtbot.waitUntil(lambda: len(reply.answer) >= 3, timeout=WAIT_MS)
    conversation_id = window.conversation_id

    close(app)

    with ConversationStore(paths.database) as store:
        saved = store.messages(conversation_id)[-1]
    assert saved.state == MessageState.INTERRUPTED
    assert saved.content.startswith(ENDLESS_CYCLE)
    assert len(saved.content) >= len(reply.answer)


def test_reopening_shows_the_conversation_and_the_last_model(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    load(qtbot, app, tiny_model)
    send_and_wait(qtbot, app, "Remember me")
    close(app)

    reopened = open_app(qtbot, paths)
    assert titles(reopened) == ["Remember me"]
    assert shown_texts(reopened) == ["Remember me", THINKING_ANSWER]
    assert reopened.window.last_model_if_present() == tiny_model
    assert reopened.window.model_picker.currentText() == tiny_model.stem
    close(reopened)


def test_a_follow_up_in_the_window_evaluates_only_the_new_question(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    load(qtbot, app, tiny_model)
    # After the reply, the history is evaluated in the background while the user types.
    with qtbot.waitSignal(app.window._session_bridge.sig_next_turn_prepared, timeout=WAIT_MS) as prepared:
        send_and_wait(qtbot, app, "A long opening question about many things. " * 10)
    assert prepared.args[0].evaluated_tokens > 0

    send_and_wait(qtbot, app, "And then?")
    stats = stored_messages(app)[-1].stats
    new_part = "And then?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    tokens = app.core.engine.call(lambda engine: len(engine.local.tokenize(new_part))).result()
    assert stats.evaluated_prompt_tokens == tokens
    assert stats.prompt_tokens > 10 * stats.evaluated_prompt_tokens
    close(app)


def test_dropping_a_gguf_file_on_the_window_loads_it(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tiny_model))])
    position = QPointF(window.rect().center())
    enter = QDragEnterEvent(position.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(position, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    qtbot.waitUntil(lambda: window.composer.send_button.isEnabled(), timeout=WAIT_MS)
    assert window.model_picker.currentText() == tiny_model.stem
    close(app)


def test_dropping_another_kind_of_file_says_why_it_cannot_be_opened(qtbot, paths, tmp_path) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "notes.txt"))])
    position = QPointF(window.rect().center())
    enter = QDragEnterEvent(position.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert window.centralWidget().property("dropTarget")  # the window shows where a drop goes
    drop = QDropEvent(position, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    assert not window.centralWidget().property("dropTarget")
    assert window.error_banner.isVisible()
    assert "“notes.txt” cannot be opened here" in window.error_banner.label.text()
    assert ".gguf" in window.error_banner.label.text()
    assert window.model_picker.count() == 0
    close(app)


def test_a_bad_model_file_shows_a_message_and_the_window_stays_usable(qtbot, paths, tiny_model, tmp_path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_text("not a model")
    app = open_app(qtbot, paths)
    window = app.window
    window.load_model(bad)
    qtbot.waitUntil(lambda: window.error_banner.isVisible(), timeout=WAIT_MS)
    assert "not a GGUF model" in window.error_banner.label.text()
    assert not window.composer.send_button.isEnabled()

    load(qtbot, app, tiny_model)
    assert not window.error_banner.isVisible()
    close(app)


def test_conversations_can_be_created_renamed_deleted_and_restored(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    load(qtbot, app, tiny_model)
    send_and_wait(qtbot, app, "First chat")
    window.new_conversation()
    qtbot.waitUntil(lambda: window.conversation_id is None and window.transcript.message_widgets() == [])
    assert titles(app) == ["First chat"]  # an empty chat is not stored yet
    send_and_wait(qtbot, app, "Second chat")
    qtbot.waitUntil(lambda: titles(app) == ["Second chat", "First chat"])
    assert window.sidebar.model.index(0).data() == "Today"  # grouped by date

    model = window.sidebar.model
    first_id = model.conversations()[1].id
    assert model.setData(model.index(model.row_of(first_id)), "Trip plans")
    assert titles(app) == ["Second chat", "Trip plans"]  # shown at once
    qtbot.waitUntil(lambda: stored(app, lambda store: store.get_conversation(first_id).title) == "Trip plans")

    second_id = window.conversation_id
    window.delete_conversation(second_id)
    qtbot.waitUntil(lambda: window.info_banner.isVisible() and titles(app) == ["Trip plans"])
    assert "Deleted “Second chat”" in window.info_banner.label.text()
    qtbot.waitUntil(lambda: shown_texts(app) == ["First chat", THINKING_ANSWER])  # the next chat opens
    window.info_banner.action_button.click()  # Undo
    qtbot.waitUntil(lambda: titles(app) == ["Second chat", "Trip plans"])
    qtbot.waitUntil(lambda: shown_texts(app) == ["Second chat", THINKING_ANSWER])
    assert window.sidebar.list_view.currentIndex().data() == "Second chat"
    close(app)


def test_undo_of_a_delete_brings_back_every_version_of_every_reply(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    load(qtbot, app, tiny_model)
    send_and_wait(qtbot, app, "Tell me")
    window.regenerate_action.trigger()
    qtbot.waitUntil(lambda: window.transcript.message_widgets()[-1].alternatives_label.text() == "2/2", timeout=WAIT_MS)
    wait_until_idle(qtbot, app)

    window.delete_conversation(window.conversation_id)
    qtbot.waitUntil(window.info_banner.isVisible)
    window.info_banner.action_button.click()
    qtbot.waitUntil(lambda: len(window.transcript.message_widgets()) == 2)
    reply = window.transcript.message_widgets()[-1]
    assert reply.alternatives_label.text() == "2/2"
    assert len(stored(app, lambda store: store.conversation_tree(window.conversation_id).messages)) == 3
    close(app)


def test_a_pinned_conversation_stays_on_top(qtbot, paths) -> None:
    with ConversationStore(paths.database) as store:
        old = store.create_conversation(title="Old but important")
        store.add_message(old.id, "user", "hello")
        newer = store.create_conversation(title="Newer")
        store.add_message(newer.id, "user", "hi")
    app = open_app(qtbot, paths)
    qtbot.waitUntil(lambda: titles(app) == ["Newer", "Old but important"])
    app.core.library.set_pinned(old.id, True)  # as the sidebar's menu does
    qtbot.waitUntil(lambda: titles(app) == ["Old but important", "Newer"])
    assert app.window.sidebar.model.index(0).data() == "Pinned"
    close(app)


def test_search_finds_a_word_in_an_old_conversation_and_jumps_to_it(qtbot, paths) -> None:
    with ConversationStore(paths.database) as store:
        old = store.create_conversation(title="Gardening")
        store.add_message(old.id, "user", "When should I plant tomatoes?")
        store.add_message(old.id, "assistant", "Plant tomatoes after the last frost.")
        for turn in range(15):
            store.add_message(old.id, "user", f"Filler question {turn}")
            store.add_message(old.id, "assistant", "Filler answer. " * 20)
        recent = store.create_conversation(title="Recent")
        store.add_message(recent.id, "user", "Unrelated")
    app = open_app(qtbot, paths)
    window, sidebar = app.window, app.window.sidebar
    assert window.conversation_id == recent.id
    window.activateWindow()
    window.search_action.trigger()
    qtbot.waitUntil(sidebar.search_edit.hasFocus)
    qtbot.keyClicks(sidebar.search_edit, "frost")
    qtbot.waitUntil(lambda: sidebar.search_results.isVisible() and sidebar.search_results.count() == 1)
    item = sidebar.search_results.item(0)
    qtbot.waitUntil(lambda: sidebar.search_results.itemWidget(item) is not None)
    label = sidebar.search_results.itemWidget(item)
    assert "Gardening" in label.text() and "<b style=" in label.text() and "frost</b>" in label.text()
    sidebar.search_results.itemClicked.emit(item)
    qtbot.waitUntil(lambda: window.conversation_id == old.id)
    found = [widget for widget in window.transcript.message_widgets() if widget.property("found")]
    assert len(found) == 1 and "frost" in found[0].answer
    qtbot.waitUntil(lambda: not found[0].visibleRegion().isEmpty())
    sidebar.search_edit.clear()
    qtbot.waitUntil(lambda: sidebar.list_view.isVisible())
    close(app)


def test_export_then_import_of_a_conversation_is_exact(qtbot, paths, tmp_path, monkeypatch) -> None:
    with ConversationStore(paths.database) as store:
        original = store.create_conversation(title="Round trip", system_prompt="Be kind.")
        question = store.add_message(original.id, "user", "Tell me **something**")
        store.add_message(original.id, "assistant", "Something.", reasoning="Thinking about it.")
        store.add_message(original.id, "assistant", "Something else.", parent_id=question.id)
    app = open_app(qtbot, paths)
    window = app.window
    exported = tmp_path / "out.json"
    # The user's choice in the save and open dialogs.
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(exported), ""))
    window.conversation_files.export_conversation(original.id, "json")
    qtbot.waitUntil(lambda: f"Saved the chat to {exported}." == window.info_banner.label.text())
    seen: list[str] = []
    _click_in_next_dialog("Import copies", seen)  # it is the same chat: the user wants a copy
    window.conversation_files.import_file(exported)
    qtbot.waitUntil(lambda: "Imported 1 chat." == window.info_banner.label.text())
    assert seen == ["1 of the 1 chats in “out.json” are already here."]
    qtbot.waitUntil(lambda: window.conversation_id not in (None, original.id))
    imported_id = window.conversation_id
    again = tmp_path / "again.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(again), ""))
    window.conversation_files.export_conversation(imported_id, "json")
    qtbot.waitUntil(again.exists)
    qtbot.waitUntil(lambda: again.read_bytes() == exported.read_bytes())

    markdown = tmp_path / "out.md"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(markdown), ""))
    window.conversation_files.export_conversation(original.id, "md")
    qtbot.waitUntil(markdown.exists)
    assert markdown.read_text().startswith("# Round trip")

    broken = tmp_path / "broken.json"
    broken.write_text("{ nope")
    window.conversation_files.import_file(broken)
    qtbot.waitUntil(lambda: window.error_banner.isVisible() and "Could not import" in window.error_banner.label.text())
    close(app)


def test_exporting_every_chat_says_where_and_importing_it_again_duplicates_nothing(qtbot, paths, tmp_path, monkeypatch) -> None:
    with ConversationStore(paths.database) as store:
        for number in range(3):
            store.add_message(store.create_conversation(title=f"Chat {number}").id, "user", "hi")
    app = open_app(qtbot, paths)
    backup = tmp_path / "backup.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(backup), ""))
    app.window.conversation_files.export_all()
    qtbot.waitUntil(lambda: f"Saved 3 chats to {backup}." == app.window.info_banner.label.text())
    assert backup.read_text().count('"title"') == 3
    catcher = _LinkCatcher()
    QDesktopServices.setUrlHandler("file", catcher, "open")
    try:
        assert app.window.info_banner.action_button.text() == "Show in folder"
        app.window.info_banner.action_button.click()
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert catcher.opened == [QUrl.fromLocalFile(str(tmp_path)).toString()]

    # Importing the backup into the same app finds every chat already here: skipping adds none.
    seen: list[str] = []
    _click_in_next_dialog("Skip them", seen)
    app.window.conversation_files.import_file(backup)
    qtbot.waitUntil(lambda: app.window.info_banner.label.text() == "Nothing new to import: every chat in “backup.json” is already here.")
    assert seen == ["3 of the 3 chats in “backup.json” are already here."]
    assert sorted(titles(app)) == ["Chat 0", "Chat 1", "Chat 2"]
    close(app)


def test_a_long_conversation_opens_scrolled_to_the_newest_message_without_a_blank_gap(qtbot, paths) -> None:
    with ConversationStore(paths.database) as store:
        conversation = store.create_conversation(title="Long")
        for turn in range(30):
            store.add_message(conversation.id, "user", f"Question {turn}: " + "why? " * 30)
            store.add_message(conversation.id, "assistant", f"Answer {turn}: " + "because. " * 60)
    app = open_app(qtbot, paths)
    transcript = app.window.transcript
    last = transcript.message_widgets()[-1]
    bar = transcript.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum())
    column = transcript.widget()
    last_bottom = last.mapTo(column, last.rect().bottomLeft()).y()
    assert column.height() - last_bottom < 40  # only the column's bottom margin below it
    assert last.visibleRegion().boundingRect().height() > 0
    close(app)


def test_a_reply_can_be_copied_continued_and_deleted(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    load(qtbot, app, tiny_model)
    window.composer.thinking_switch.setChecked(False)
    window.chat_settings_panel.max_tokens.setValue(16)  # this model's plain replies never end
    send_and_wait(qtbot, app, "Count")
    reply = window.transcript.message_widgets()[-1]
    assert reply.answer == (ENDLESS_CYCLE * 6)[:16]
    assert reply.action_buttons["continue"].isVisible() and "length limit" in reply._footer.text()

    reply.action_buttons["copy"].click()
    assert QApplication.clipboard().text() == reply.answer

    reply.action_buttons["continue"].click()
    assert window.is_generating
    wait_until_idle(qtbot, app)
    saved = stored_messages(app)
    assert saved[-1].content == (ENDLESS_CYCLE * 12)[:32] == window.transcript.message_widgets()[-1].answer
    assert len(saved) == 2  # the same message grew

    user = window.transcript.message_widgets()[0]
    assert not user.action_buttons["regenerate"].isVisible()
    user.action_buttons["delete"].click()
    qtbot.waitUntil(lambda: len(window.transcript.message_widgets()) == 1)
    assert [message.role for message in stored_messages(app)] == ["assistant"]
    close(app)


def test_the_continue_shortcut_does_nothing_for_a_reply_that_ended_by_itself(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    load(qtbot, app, tiny_model)
    send_and_wait(qtbot, app, "Why?")
    before = stored_messages(app)
    window.continue_action.trigger()
    window.regenerate_action.trigger()  # a later request: it runs once the shortcut's has been decided
    wait_until_idle(qtbot, app)
    qtbot.waitUntil(lambda: window.transcript.message_widgets()[-1].alternatives_label.text() == "2/2", timeout=WAIT_MS)
    wait_until_idle(qtbot, app)
    tree = stored(app, lambda store: store.conversation_tree(window.conversation_id).messages)
    assert tree[1] == before[1]  # the first reply was not continued
    close(app)


def test_regenerate_keeps_the_earlier_reply_as_an_alternative(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    load(qtbot, app, tiny_model)
    window.composer.thinking_switch.setChecked(False)
    window.chat_settings_panel.max_tokens.setValue(16)
    send_and_wait(qtbot, app, "Count")
    window.chat_settings_panel.max_tokens.setValue(20)
    window.regenerate_action.trigger()
    qtbot.waitUntil(lambda: window.is_generating, timeout=WAIT_MS)
    wait_until_idle(qtbot, app)

    user, reply = window.transcript.message_widgets()
    assert reply.answer == (ENDLESS_CYCLE * 7)[:20] and reply.alternatives_label.text() == "2/2"
    assert reply.action_buttons["previous"].isEnabled() and not reply.action_buttons["next"].isEnabled()
    reply.action_buttons["previous"].click()
    qtbot.waitUntil(lambda: window.transcript.message_widgets()[-1].alternatives_label.text() == "1/2")
    user, reply = window.transcript.message_widgets()
    assert reply.answer == (ENDLESS_CYCLE * 7)[:16]

    close(app)
    reopened = open_app(qtbot, paths)  # the choice and both versions are stored
    assert reopened.window.transcript.message_widgets()[-1].alternatives_label.text() == "1/2"
    close(reopened)


def test_editing_a_question_replaces_later_turns_and_keeps_the_old_branch(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    load(qtbot, app, tiny_model)
    send_and_wait(qtbot, app, "First question")
    send_and_wait(qtbot, app, "Second question")
    first_question = window.transcript.message_widgets()[0]
    first_question.action_buttons["edit"].click()
    assert window.composer.edit.toPlainText() == "First question" and window.composer.editing_label.isVisible()
    window.composer.edit.setPlainText("Better first question")
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)
    wait_until_idle(qtbot, app)

    assert shown_texts(app) == ["Better first question", THINKING_ANSWER]  # the later turns are replaced
    edited = window.transcript.message_widgets()[0]
    assert edited.alternatives_label.text() == "2/2"
    edited.action_buttons["previous"].click()
    expected = ["First question", THINKING_ANSWER, "Second question", THINKING_ANSWER]
    qtbot.waitUntil(lambda: shown_texts(app) == expected)
    close(app)


def test_a_message_sent_while_a_reply_is_written_elsewhere_is_not_lost(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    load(qtbot, app, tiny_model)
    _start_an_endless_reply(qtbot, app)
    app.core.session.send("Sent from elsewhere")  # another client of the same session
    qtbot.waitUntil(window.error_banner.isVisible)
    assert "still being written" in window.error_banner.label.text()
    window.stop_action.trigger()
    wait_until_idle(qtbot, app)
    close(app)


def test_a_conversation_of_long_messages_opens_with_a_page_bounded_by_its_text(qtbot, paths) -> None:
    with ConversationStore(paths.database) as store:
        conversation = store.create_conversation(title="Long answers")
        for turn in range(20):
            store.add_message(conversation.id, "user", f"Question {turn}")
            store.add_message(conversation.id, "assistant", f"Answer {turn}: " + "words " * 2_000)  # 12 KB
    app = open_app(qtbot, paths)
    transcript = app.window.transcript
    shown = transcript.message_widgets()
    assert len(shown) < FIRST_PAGE_SIZE and sum(len(widget.answer) for widget in shown) <= PAGE_CHARACTERS + 12_100
    assert shown[-1].answer.startswith("Answer 19:")
    assert transcript.earlier_button.text() == f"Show {40 - len(shown)} earlier messages"
    close(app)


def test_a_thousand_message_conversation_opens_with_only_its_last_page_built(qtbot, paths) -> None:
    with ConversationStore(paths.database) as store:
        conversation = store.create_conversation(title="Very long")
        for turn in range(500):
            store.add_message(conversation.id, "user", f"Question {turn}")
            store.add_message(conversation.id, "assistant", f"Answer **{turn}**")
    app = open_app(qtbot, paths)
    transcript = app.window.transcript
    assert len(transcript.message_widgets()) == FIRST_PAGE_SIZE
    assert transcript.message_widgets()[-1].answer == "Answer **499**"
    assert transcript.earlier_button.isVisible()
    assert transcript.earlier_button.text() == f"Show {1000 - FIRST_PAGE_SIZE} earlier messages"

    bar = transcript.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum())
    newest = transcript.message_widgets()[-1]
    bar.setValue(0)  # scrolling to the top brings the next page, without moving what was shown
    assert len(transcript.message_widgets()) == FIRST_PAGE_SIZE + PAGE_SIZE
    assert not newest.visibleRegion().isEmpty() or bar.value() > 0

    # A search result far back is built on demand.
    hit = next(message for message in stored_messages(app, conversation.id) if message.content == "Question 3")
    transcript.reveal_message(hit.id)
    assert transcript.widget_for(hit.id) is not None and transcript.widget_for(hit.id).property("found")
    close(app)


class _LinkCatcher(QObject):
    """Receives the URLs the app asks the system to open (QDesktopServices' handler for a scheme)."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.opened.append(url.toString())


def _click_in_next_dialog(text: str, seen: list[str]) -> None:
    """Clicks the button called ``text`` in the next message box; ``seen`` gets its text."""

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            QTimer.singleShot(10, answer)  # not open yet
            return
        seen.append(dialog.text())
        next(button for button in dialog.buttons() if button.text() == text).click()

    QTimer.singleShot(0, answer)


def _answer_next_dialog(button: QMessageBox.StandardButton, seen: list[str]) -> None:
    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        seen.append(dialog.text())
        dialog.button(button).click()

    QTimer.singleShot(0, answer)


def test_a_link_in_a_reply_opens_only_after_showing_its_real_target(qtbot) -> None:
    catcher = _LinkCatcher()
    QDesktopServices.setUrlHandler("https", catcher, "open")
    try:
        view = MarkdownView()
        qtbot.addWidget(view)
        view.set_markdown("See [the docs](https://example.org/docs).")
        label = view.prose_labels()[0]
        seen: list[str] = []
        _answer_next_dialog(QMessageBox.StandardButton.Cancel, seen)
        label.linkActivated.emit("https://example.org/docs")
        assert catcher.opened == [] and "https://example.org/docs" in seen[0]
        _answer_next_dialog(QMessageBox.StandardButton.Open, seen)
        label.linkActivated.emit("https://example.org/docs")
        assert catcher.opened == ["https://example.org/docs"]
    finally:
        QDesktopServices.unsetUrlHandler("https")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "javascript:alert(1)", "smb://server/share", "ms-settings:", "x"])
def test_a_link_to_anything_but_the_web_or_mail_is_never_opened(qtbot, url: str) -> None:
    scheme = url.partition(":")[0] or "x"
    catcher = _LinkCatcher()
    QDesktopServices.setUrlHandler(scheme, catcher, "open")
    try:
        view = MarkdownView()
        qtbot.addWidget(view)
        view.set_markdown(f"[harmless]({url})")
        seen: list[str] = []
        _answer_next_dialog(QMessageBox.StandardButton.Ok, seen)
        view.prose_labels()[0].linkActivated.emit(url)
        assert catcher.opened == [] and "Only web and e-mail links" in seen[0]
        assert not is_safe_link(url)
    finally:
        QDesktopServices.unsetUrlHandler(scheme)


def test_web_and_mail_links_are_the_safe_ones() -> None:
    assert is_safe_link("https://example.org") and is_safe_link("http://example.org/a?b")
    assert is_safe_link("mailto:someone@example.org")
    assert not is_safe_link("https:") and not is_safe_link("file:///home")


def test_about_names_the_llama_cpp_backend_and_cpu_baseline() -> None:
    from app.core.engines.llama.build_info import build_info

    text = about_text(build_info().describe())
    assert "CPU backend, compiled for" in text and "llama-cpp-python 0.3.36" in text
