"""The main window driven like a user would, on the real tiny model (pytest-qt, offscreen)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog

from app.core.app_paths import AppPaths
from app.core.conversation_store import ConversationStore, MessageState
from app.core.self_test_model import ENDLESS_CYCLE, THINKING_ANSWER, THINKING_REASONING
from app.main import build_main_window
from app.ui.conversation_list_model import IS_HEADER_ROLE
from app.ui.main_window import MainWindow, about_text
from app.ui.transcript_view import FIRST_PAGE_SIZE, PAGE_SIZE

WAIT_MS = 30_000


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return AppPaths.under(tmp_path / "profile")


def _open_window(qtbot, paths: AppPaths) -> MainWindow:
    window = build_main_window(paths)
    qtbot.addWidget(window)
    window.show()
    return window


def _load(qtbot, window: MainWindow, model: Path) -> None:
    window.load_model(model)
    qtbot.waitUntil(lambda: window.composer.send_button.isEnabled(), timeout=WAIT_MS)


def _type_and_send(qtbot, window: MainWindow, text: str) -> None:
    window.composer.edit.setFocus()
    qtbot.keyClicks(window.composer.edit, text)
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)


def _send_and_wait(qtbot, window: MainWindow, text: str) -> None:
    _type_and_send(qtbot, window, text)
    assert window.is_generating
    qtbot.waitUntil(lambda: not window.is_generating, timeout=WAIT_MS)


def _close(qtbot, window: MainWindow) -> None:
    window.close()
    assert not window._inference._thread.isRunning()


def test_send_a_message_and_see_the_reply_with_collapsed_thinking(qtbot, paths, tiny_model) -> None:
    window = _open_window(qtbot, paths)
    assert not window.composer.send_button.isEnabled()  # no model yet
    _load(qtbot, window, tiny_model)
    assert window.composer.thinking_switch.isChecked()  # this template thinks by default
    assert "CPU" in window.backend_status.text()

    _type_and_send(qtbot, window, "Why is the sky blue?")
    assert window.composer.send_button.text() == "Stop"
    qtbot.waitUntil(lambda: not window.is_generating, timeout=WAIT_MS)
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
    _close(qtbot, window)


def test_shift_enter_adds_a_line_instead_of_sending(qtbot, paths, tiny_model) -> None:
    window = _open_window(qtbot, paths)
    _load(qtbot, window, tiny_model)
    qtbot.keyClicks(window.composer.edit, "first line")
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(window.composer.edit, "second line")
    assert window.composer.edit.toPlainText() == "first line\nsecond line"
    assert not window.is_generating
    _close(qtbot, window)


def test_tokens_appear_while_streaming_and_stop_ends_the_reply(qtbot, paths, tiny_model) -> None:
    window = _open_window(qtbot, paths)
    _load(qtbot, window, tiny_model)
    window.composer.thinking_switch.setChecked(False)  # the endless "abc…" reply
    _type_and_send(qtbot, window, "Count forever")
    reply = window.transcript.message_widgets()[-1]
    qtbot.waitUntil(lambda: len(reply.answer) >= 6, timeout=WAIT_MS)
    assert window.is_generating  # text shows up before the reply ends

    qtbot.mouseClick(window.composer.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.is_generating, timeout=WAIT_MS)
    assert window.composer.send_button.text() == "Send"
    assert reply.answer.startswith(ENDLESS_CYCLE)
    assert "Stopped" in reply._footer.text()

    stored = window._store.messages(window._conversation_id)[-1]
    assert stored.state == MessageState.INTERRUPTED
    assert stored.content == reply.answer
    _close(qtbot, window)


def test_closing_mid_generation_exits_cleanly_and_keeps_the_partial_reply(qtbot, paths, tiny_model) -> None:
    window = _open_window(qtbot, paths)
    _load(qtbot, window, tiny_model)
    window.composer.thinking_switch.setChecked(False)
    _type_and_send(qtbot, window, "Count forever")
    reply = window.transcript.message_widgets()[-1]
    qtbot.waitUntil(lambda: len(reply.answer) >= 3, timeout=WAIT_MS)
    conversation_id = window._conversation_id

    _close(qtbot, window)

    with ConversationStore(paths.database) as store:
        stored = store.messages(conversation_id)[-1]
    assert stored.state == MessageState.INTERRUPTED
    assert stored.content.startswith(ENDLESS_CYCLE)


def test_reopening_shows_the_conversation_and_the_last_model(qtbot, paths, tiny_model) -> None:
    window = _open_window(qtbot, paths)
    _load(qtbot, window, tiny_model)
    _send_and_wait(qtbot, window, "Remember me")
    _close(qtbot, window)

    reopened = _open_window(qtbot, paths)
    assert _titles(reopened) == ["Remember me"]
    texts = [widget.answer for widget in reopened.transcript.message_widgets()]
    assert texts == ["Remember me", THINKING_ANSWER]
    assert reopened.last_model_if_present() == tiny_model
    assert reopened.model_picker.currentText() == tiny_model.stem
    _close(qtbot, reopened)


def test_a_follow_up_in_the_window_evaluates_only_the_new_question(qtbot, paths, tiny_model) -> None:
    window = _open_window(qtbot, paths)
    _load(qtbot, window, tiny_model)
    # After the reply, the history is evaluated in the background while the user types.
    with qtbot.waitSignal(window._inference.worker.sig_next_turn_prepared, timeout=WAIT_MS) as prepared:
        _send_and_wait(qtbot, window, "A long opening question about many things. " * 10)
    assert prepared.args[0] > 0

    _send_and_wait(qtbot, window, "And then?")
    stats = window._store.messages(window._conversation_id)[-1].stats
    engine = window._inference.worker._engine  # idle now: reading its vocabulary is safe
    assert stats.evaluated_prompt_tokens == len(engine.tokenize("And then?<|im_end|>\n<|im_start|>assistant\n<think>\n"))
    assert stats.prompt_tokens > 10 * stats.evaluated_prompt_tokens
    _close(qtbot, window)


def test_dropping_a_gguf_file_on_the_window_loads_it(qtbot, paths, tiny_model) -> None:
    window = _open_window(qtbot, paths)
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
    _close(qtbot, window)


def test_dragging_other_files_over_the_window_is_refused(qtbot, paths, tmp_path) -> None:
    window = _open_window(qtbot, paths)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "notes.txt"))])
    enter = QDragEnterEvent(window.rect().center(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    enter.ignore()
    QApplication.sendEvent(window, enter)
    assert not enter.isAccepted()
    _close(qtbot, window)


def test_a_bad_model_file_shows_a_message_and_the_window_stays_usable(qtbot, paths, tiny_model, tmp_path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_text("not a model")
    window = _open_window(qtbot, paths)
    window.load_model(bad)
    qtbot.waitUntil(lambda: window.error_banner.isVisible(), timeout=WAIT_MS)
    assert "not a GGUF model" in window.error_banner.label.text()
    assert not window.composer.send_button.isEnabled()

    _load(qtbot, window, tiny_model)
    assert not window.error_banner.isVisible()
    _close(qtbot, window)


def _titles(window: MainWindow) -> list[str]:
    model = window.conversation_model
    return [model.index(row).data() for row in range(model.rowCount()) if not model.index(row).data(IS_HEADER_ROLE)]


def test_conversations_can_be_created_renamed_deleted_and_restored(qtbot, paths, tiny_model) -> None:
    window = _open_window(qtbot, paths)
    _load(qtbot, window, tiny_model)
    _send_and_wait(qtbot, window, "First chat")
    window.new_conversation()
    assert window.transcript.message_widgets() == []
    assert _titles(window) == ["First chat"]  # an empty chat is not stored yet
    _send_and_wait(qtbot, window, "Second chat")
    assert _titles(window) == ["Second chat", "First chat"]
    assert window.conversation_model.index(0).data() == "Today"  # grouped by date

    first_row = window.conversation_model.row_of(window._store.list_conversations()[1].id)
    assert window.conversation_model.setData(window.conversation_model.index(first_row), "Trip plans")
    assert _titles(window) == ["Second chat", "Trip plans"]

    second_id = window._conversation_id
    window.delete_conversation(second_id)
    assert [c.title for c in window._store.list_conversations()] == ["Trip plans"]
    assert [widget.answer for widget in window.transcript.message_widgets()] == ["First chat", THINKING_ANSWER]
    assert window.info_banner.isVisible() and "Deleted “Second chat”" in window.info_banner.label.text()
    window.info_banner.action_button.click()  # Undo
    assert _titles(window) == ["Second chat", "Trip plans"]
    assert [widget.answer for widget in window.transcript.message_widgets()] == ["Second chat", THINKING_ANSWER]
    _close(qtbot, window)


def test_a_pinned_conversation_stays_on_top(qtbot, paths) -> None:
    with ConversationStore(paths.database) as store:
        old = store.create_conversation(title="Old but important")
        store.add_message(old.id, "user", "hello")
        newer = store.create_conversation(title="Newer")
        store.add_message(newer.id, "user", "hi")
    window = _open_window(qtbot, paths)
    assert _titles(window) == ["Newer", "Old but important"]
    window.set_pinned(old.id, True)
    assert window.conversation_model.index(0).data() == "Pinned"
    assert _titles(window) == ["Old but important", "Newer"]
    _close(qtbot, window)


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
    window = _open_window(qtbot, paths)
    assert window._conversation_id == recent.id
    window.activateWindow()
    window.search_action.trigger()
    qtbot.waitUntil(window.search_edit.hasFocus)
    qtbot.keyClicks(window.search_edit, "frost")
    qtbot.waitUntil(lambda: window.search_results.isVisible() and window.search_results.count() == 1)
    item = window.search_results.item(0)
    label = window.search_results.itemWidget(item)
    assert "Gardening" in label.text() and "<b style=" in label.text() and "frost</b>" in label.text()
    window.search_results.itemClicked.emit(item)
    assert window._conversation_id == old.id
    found = [widget for widget in window.transcript.message_widgets() if widget.property("found")]
    assert len(found) == 1 and "frost" in found[0].answer
    qtbot.waitUntil(lambda: not found[0].visibleRegion().isEmpty())
    window.search_edit.clear()
    qtbot.waitUntil(lambda: window.conversation_list.isVisible())
    _close(qtbot, window)


def test_export_then_import_of_a_conversation_is_exact(qtbot, paths, tmp_path, monkeypatch) -> None:
    with ConversationStore(paths.database) as store:
        original = store.create_conversation(title="Round trip", system_prompt="Be kind.")
        store.add_message(original.id, "user", "Tell me **something**")
        store.add_message(original.id, "assistant", "Something.", reasoning="Thinking about it.")
    window = _open_window(qtbot, paths)
    exported = tmp_path / "out.json"
    # The user's choice in the save and open dialogs.
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(exported), ""))
    window.export_conversation(original.id, "json")
    window.import_conversations(exported)
    imported_id = window._conversation_id
    assert imported_id != original.id and "Imported 1" in window.info_banner.label.text()
    again = tmp_path / "again.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(again), ""))
    window.export_conversation(imported_id, "json")
    assert again.read_bytes() == exported.read_bytes()

    markdown = tmp_path / "out.md"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(markdown), ""))
    window.export_conversation(original.id, "md")
    assert markdown.read_text().startswith("# Round trip")

    broken = tmp_path / "broken.json"
    broken.write_text("{ nope")
    window.import_conversations(broken)
    assert window.error_banner.isVisible() and "Could not import" in window.error_banner.label.text()
    _close(qtbot, window)


def test_a_long_conversation_opens_scrolled_to_the_newest_message_without_a_blank_gap(qtbot, paths) -> None:
    with ConversationStore(paths.database) as store:
        conversation = store.create_conversation(title="Long")
        for turn in range(30):
            store.add_message(conversation.id, "user", f"Question {turn}: " + "why? " * 30)
            store.add_message(conversation.id, "assistant", f"Answer {turn}: " + "because. " * 60)
    window = _open_window(qtbot, paths)
    transcript = window.transcript
    last = transcript.message_widgets()[-1]
    bar = transcript.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum())
    column = transcript.widget()
    last_bottom = last.mapTo(column, last.rect().bottomLeft()).y()
    assert column.height() - last_bottom < 40  # only the column's bottom margin below it
    assert last.visibleRegion().boundingRect().height() > 0
    _close(qtbot, window)


def test_a_reply_can_be_copied_continued_and_deleted(qtbot, paths, tiny_model) -> None:
    window = _open_window(qtbot, paths)
    _load(qtbot, window, tiny_model)
    window.composer.thinking_switch.setChecked(False)
    window.chat_settings_panel.max_tokens.setValue(16)  # this model's plain replies never end
    _send_and_wait(qtbot, window, "Count")
    reply = window.transcript.message_widgets()[-1]
    assert reply.answer == (ENDLESS_CYCLE * 6)[:16]
    assert reply.action_buttons["continue"].isVisible() and "length limit" in reply._footer.text()

    reply.action_buttons["copy"].click()
    assert QApplication.clipboard().text() == reply.answer

    reply.action_buttons["continue"].click()
    assert window.is_generating
    qtbot.waitUntil(lambda: not window.is_generating, timeout=WAIT_MS)
    stored = window._store.messages(window._conversation_id)[-1]
    assert stored.content == (ENDLESS_CYCLE * 12)[:32] == window.transcript.message_widgets()[-1].answer
    assert len(window._store.messages(window._conversation_id)) == 2  # the same message grew

    user = window.transcript.message_widgets()[0]
    assert not user.action_buttons["regenerate"].isVisible()
    user.action_buttons["delete"].click()
    assert [message.role for message in window._store.messages(window._conversation_id)] == ["assistant"]
    assert len(window.transcript.message_widgets()) == 1
    _close(qtbot, window)


def test_regenerate_keeps_the_earlier_reply_as_an_alternative(qtbot, paths, tiny_model) -> None:
    window = _open_window(qtbot, paths)
    _load(qtbot, window, tiny_model)
    window.composer.thinking_switch.setChecked(False)
    window.chat_settings_panel.max_tokens.setValue(16)
    _send_and_wait(qtbot, window, "Count")
    window.chat_settings_panel.max_tokens.setValue(20)
    window.regenerate_action.trigger()
    qtbot.waitUntil(lambda: not window.is_generating, timeout=WAIT_MS)

    user, reply = window.transcript.message_widgets()
    assert reply.answer == (ENDLESS_CYCLE * 7)[:20] and reply.alternatives_label.text() == "2/2"
    assert reply.action_buttons["previous"].isEnabled() and not reply.action_buttons["next"].isEnabled()
    reply.action_buttons["previous"].click()
    user, reply = window.transcript.message_widgets()
    assert reply.answer == (ENDLESS_CYCLE * 7)[:16] and reply.alternatives_label.text() == "1/2"

    _close(qtbot, window)
    reopened = _open_window(qtbot, paths)  # the choice and both versions are stored
    assert reopened.transcript.message_widgets()[-1].alternatives_label.text() == "1/2"
    _close(qtbot, reopened)


def test_editing_a_question_replaces_later_turns_and_keeps_the_old_branch(qtbot, paths, tiny_model) -> None:
    window = _open_window(qtbot, paths)
    _load(qtbot, window, tiny_model)
    _send_and_wait(qtbot, window, "First question")
    _send_and_wait(qtbot, window, "Second question")
    first_question = window.transcript.message_widgets()[0]
    first_question.action_buttons["edit"].click()
    assert window.composer.edit.toPlainText() == "First question" and window.composer.editing_label.isVisible()
    window.composer.edit.setPlainText("Better first question")
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not window.is_generating, timeout=WAIT_MS)

    texts = [widget.answer for widget in window.transcript.message_widgets()]
    assert texts == ["Better first question", THINKING_ANSWER]  # the later turns are replaced
    edited = window.transcript.message_widgets()[0]
    assert edited.alternatives_label.text() == "2/2"
    edited.action_buttons["previous"].click()
    texts = [widget.answer for widget in window.transcript.message_widgets()]
    assert texts == ["First question", THINKING_ANSWER, "Second question", THINKING_ANSWER]
    _close(qtbot, window)


def test_a_thousand_message_conversation_opens_with_only_its_last_page_built(qtbot, paths) -> None:
    with ConversationStore(paths.database) as store:
        conversation = store.create_conversation(title="Very long")
        for turn in range(500):
            store.add_message(conversation.id, "user", f"Question {turn}")
            store.add_message(conversation.id, "assistant", f"Answer **{turn}**")
    window = _open_window(qtbot, paths)
    transcript = window.transcript
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
    hit = next(message for message in window._store.messages(conversation.id) if message.content == "Question 3")
    transcript.reveal_message(hit.id)
    assert transcript.widget_for(hit.id) is not None and transcript.widget_for(hit.id).property("found")
    _close(qtbot, window)


def test_about_names_the_llama_cpp_backend_and_cpu_baseline() -> None:
    text = about_text()
    assert "CPU backend, compiled for" in text and "llama-cpp-python 0.3.36" in text
