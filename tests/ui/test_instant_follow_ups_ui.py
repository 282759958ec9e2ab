"""Instant follow-ups in the window, driven like a user with the real tiny model (pytest-qt,
offscreen): a pause in typing lets the model read the message before it is sent (a new one, a
question being edited, a picture attached before its question is typed), Settings ›
Speed switches that off, and shows and clears the chat states kept on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QMessageBox

from app.core.chat.chat_events import NextTurnPrepared
from app.core.engines.engine_host import Priority
from app.core.models.fit_estimate import GIB
from app.core.profile.app_paths import AppPaths
from app.core.profile.settings import load_settings
from app.main import DesktopApp
from app.ui.formatting import format_binary_bytes
from app.ui.settings_dialog import SettingsDialog
from tests.ui.app_driver import WAIT_MS, close, in_settings, load, open_app, stored, stored_messages, wait_until_idle
from tests.vision_fixtures import picture_bytes

QUESTION = "What about the rivers in the north of the country"


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return AppPaths.under(tmp_path / "profile")


class ReadAhead:
    """The ``NextTurnPrepared`` events the window receives, in order."""

    def __init__(self, app: DesktopApp) -> None:
        self.events: list[NextTurnPrepared] = []
        app.window._session_bridge.sig_next_turn_prepared.connect(lambda event: self.events.append(event))


def _type(qtbot, app: DesktopApp, text: str) -> None:
    composer = app.window.composer
    composer.edit.setFocus()
    qtbot.keyClicks(composer.edit, text)


def _send_and_wait_for_the_read_ahead(qtbot, app: DesktopApp, read_ahead: ReadAhead) -> int:
    """Presses Enter on what the composer holds, waits for the reply and for the conversation
    to be read ahead of the next question; the prompt tokens the reply had to evaluate."""
    before = len(read_ahead.events)
    qtbot.keyClick(app.window.composer.edit, Qt.Key.Key_Return)
    assert app.window.is_generating
    wait_until_idle(qtbot, app)
    qtbot.waitUntil(lambda: len(read_ahead.events) > before, timeout=WAIT_MS)
    return stored_messages(app)[-1].stats.evaluated_prompt_tokens


def _ask_right_away(qtbot, app: DesktopApp, read_ahead: ReadAhead, text: str) -> int:
    """Types ``text`` and sends it without a pause."""
    _type(qtbot, app, text)
    return _send_and_wait_for_the_read_ahead(qtbot, app, read_ahead)


def _wait_for_what_a_pause_started(app: DesktopApp) -> None:
    """Until the session has handled the pause (its jobs run on the store worker) and the engine
    has done whatever that queued, at the lowest priority."""
    stored(app, lambda _store: None)
    app.core.engine.call(lambda _engine: None, Priority.PREPARATION).result(WAIT_MS / 1000)


def test_a_question_read_during_a_pause_in_typing_leaves_only_its_last_words_to_evaluate(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    load(qtbot, app, tiny_model)
    read_ahead = ReadAhead(app)
    _ask_right_away(qtbot, app, read_ahead, "Tell me about rivers")
    sent_at_once = _ask_right_away(qtbot, app, read_ahead, QUESTION + "?")

    before = len(read_ahead.events)
    _type(qtbot, app, QUESTION)
    qtbot.waitUntil(lambda: len(read_ahead.events) > before, timeout=WAIT_MS)  # the pause, and its reading
    assert read_ahead.events[-1].evaluated_tokens > 0
    _type(qtbot, app, "?")
    read_while_typed = _send_and_wait_for_the_read_ahead(qtbot, app, read_ahead)

    assert sent_at_once > len(QUESTION)  # the tiny model's tokens are mostly bytes
    # What is left is the question's last words (which a further keystroke could still have
    # merged into other tokens), the "?" and the template's markup.
    assert sent_at_once - read_while_typed >= len(QUESTION) * 2 // 3
    close(app)


def _edit(qtbot, app: DesktopApp, question_index: int) -> None:
    """Clicks Edit on a question: the composer holds it, selected to be typed over."""
    question = [widget for widget in app.window.transcript.message_widgets() if widget.role == "user"][question_index]
    qtbot.mouseClick(question.action_buttons["edit"], Qt.MouseButton.LeftButton)
    qtbot.keyClick(app.window.composer.edit, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)


def test_an_edited_question_read_during_a_pause_leaves_only_its_last_words_to_evaluate(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    load(qtbot, app, tiny_model)
    read_ahead = ReadAhead(app)
    _ask_right_away(qtbot, app, read_ahead, "Tell me about rivers")
    _ask_right_away(qtbot, app, read_ahead, "And lakes?")
    _edit(qtbot, app, 1)
    sent_at_once = _ask_right_away(qtbot, app, read_ahead, QUESTION + "?")

    _edit(qtbot, app, 1)
    before = len(read_ahead.events)
    _type(qtbot, app, QUESTION)
    qtbot.waitUntil(lambda: len(read_ahead.events) > before, timeout=WAIT_MS)  # the pause, and its reading
    assert read_ahead.events[-1].evaluated_tokens > 0
    _type(qtbot, app, "?")
    read_while_typed = _send_and_wait_for_the_read_ahead(qtbot, app, read_ahead)

    questions = [message for message in stored_messages(app) if message.role == "user"]
    assert [message.content for message in questions] == ["Tell me about rivers", QUESTION + "?"]
    assert sent_at_once - read_while_typed >= len(QUESTION) * 2 // 3
    close(app)


def test_a_pasted_picture_is_read_before_its_question_is_typed(qtbot, paths, tiny_model, tiny_projector) -> None:
    app = open_app(qtbot, paths)
    load(qtbot, app, tiny_model, projector=tiny_projector)
    read_ahead = ReadAhead(app)
    composer = app.window.composer
    composer.edit.setFocus()
    QGuiApplication.clipboard().setImage(QImage.fromData(picture_bytes(800, 600)))
    qtbot.keyClick(composer.edit, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: bool(read_ahead.events), timeout=WAIT_MS)  # once it is ready, the pause reads it
    assert read_ahead.events[-1].evaluated_tokens > 300
    _type(qtbot, app, "What is this?")
    _send_and_wait_for_the_read_ahead(qtbot, app, read_ahead)

    question, reply = stored_messages(app)
    assert question.content == "What is this?" and len(question.parts) == 1
    assert reply.stats.evaluated_prompt_tokens < 60 < 300 < reply.stats.prompt_tokens
    close(app)


def test_switched_off_in_settings_a_pause_in_typing_reads_nothing(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    load(qtbot, app, tiny_model)

    def switch_off(dialog: SettingsDialog) -> None:
        assert dialog.read_while_typing.isChecked()  # on unless switched off
        dialog.read_while_typing.click()
        dialog.accept()

    in_settings(app, switch_off)
    assert load_settings(paths.settings_file).read_while_typing is False
    read_ahead = ReadAhead(app)
    _ask_right_away(qtbot, app, read_ahead, "Tell me about rivers")
    sent_at_once = _ask_right_away(qtbot, app, read_ahead, QUESTION + "?")

    before = len(read_ahead.events)
    with qtbot.waitSignal(app.window.composer.sig_typing_paused, timeout=WAIT_MS):
        _type(qtbot, app, QUESTION)
    _wait_for_what_a_pause_started(app)
    assert len(read_ahead.events) == before
    _type(qtbot, app, "?")

    assert _send_and_wait_for_the_read_ahead(qtbot, app, read_ahead) == sent_at_once
    close(app)


def test_reading_on_battery_is_a_choice_kept_in_settings_and_offered_only_while_reading_is_on(qtbot, paths) -> None:
    app = open_app(qtbot, paths)

    def allow_on_battery(dialog: SettingsDialog) -> None:
        on_battery = dialog.read_while_typing_on_battery
        assert on_battery.isEnabled() and not on_battery.isChecked()  # off unless allowed
        on_battery.click()
        dialog.read_while_typing.click()
        assert not on_battery.isEnabled()  # nothing is read at all: nothing to allow
        dialog.read_while_typing.click()
        assert on_battery.isEnabled() and on_battery.isChecked()
        dialog.accept()

    in_settings(app, allow_on_battery)
    saved = load_settings(paths.settings_file)
    assert saved.read_while_typing and saved.read_while_typing_on_battery
    close(app)


def test_settings_show_the_space_the_saved_chat_states_use_and_clear_empties_their_folder(
    qtbot, paths, tiny_model, monkeypatch
) -> None:
    app = open_app(qtbot, paths)
    load(qtbot, app, tiny_model)
    read_ahead = ReadAhead(app)
    _ask_right_away(qtbot, app, read_ahead, "Tell me about rivers")
    app.window.new_conversation()  # the chat left keeps its state on disk
    saved_states = app.core.saved_states
    qtbot.waitUntil(lambda: saved_states.total_bytes() > 0, timeout=WAIT_MS)
    assert saved_states.wait_until_written(WAIT_MS / 1000)
    used = saved_states.total_bytes()
    questions: list[str] = []
    monkeypatch.setattr(
        QMessageBox, "question", lambda _parent, _title, text, *args: questions.append(text) or QMessageBox.StandardButton.Yes
    )
    shown: list[tuple[str, bool]] = []

    def clear(dialog: SettingsDialog) -> None:
        shown.append((dialog.saved_states_use.text(), dialog.clear_saved_states.isEnabled()))
        qtbot.mouseClick(dialog.clear_saved_states, Qt.MouseButton.LeftButton)
        shown.append((dialog.saved_states_use.text(), dialog.clear_saved_states.isEnabled()))
        dialog.reject()

    in_settings(app, clear)

    assert shown == [(f"Using {format_binary_bytes(used)} of 2 GB", True), ("None saved now (room for 2 GB)", False)]
    assert len(questions) == 1 and format_binary_bytes(used) in questions[0]  # asked first, with the size
    assert not list(saved_states.folder.iterdir())
    close(app)


def test_declining_to_clear_keeps_the_saved_chat_states(qtbot, paths, tiny_model, monkeypatch) -> None:
    app = open_app(qtbot, paths)
    load(qtbot, app, tiny_model)
    read_ahead = ReadAhead(app)
    _ask_right_away(qtbot, app, read_ahead, "Tell me about rivers")
    app.window.new_conversation()
    saved_states = app.core.saved_states
    qtbot.waitUntil(lambda: saved_states.total_bytes() > 0, timeout=WAIT_MS)
    assert saved_states.wait_until_written(WAIT_MS / 1000)
    used = saved_states.total_bytes()
    monkeypatch.setattr(QMessageBox, "question", lambda *args: QMessageBox.StandardButton.Cancel)

    def decline(dialog: SettingsDialog) -> None:
        qtbot.mouseClick(dialog.clear_saved_states, Qt.MouseButton.LeftButton)
        dialog.reject()

    in_settings(app, decline)

    assert saved_states.total_bytes() == used
    close(app)


def test_the_space_for_saved_chat_states_is_set_in_gigabytes_and_kept_with_the_settings(qtbot, paths) -> None:
    app = open_app(qtbot, paths)
    shown: list[str] = []

    def set_budget(dialog: SettingsDialog) -> None:
        dialog.saved_states_budget.setValue(0.5)
        shown.append(dialog.saved_states_use.text())
        dialog.accept()

    in_settings(app, set_budget)

    assert shown == ["None saved now (room for 512 MB)"]
    assert load_settings(paths.settings_file).saved_states_budget_bytes == GIB // 2
    close(app)
