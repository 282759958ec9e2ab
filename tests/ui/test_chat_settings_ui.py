"""Per-conversation settings, the context window, and overflow, driven through the window."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.app_paths import AppPaths
from app.core.chat_template import ChatMessage
from app.core.conversation_store import ConversationStore
from app.core.inference_engine import InferenceEngine, LoadSettings
from app.core.self_test_model import CONTEXT_LENGTH, THINKING_ANSWER
from app.main import build_main_window

WAIT_MS = 30_000


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return AppPaths.under(tmp_path / "profile")


@pytest.fixture
def reference_engine(tiny_model: Path):
    """A second engine on the same model, to compute what a prompt must look like."""
    engine = InferenceEngine()
    engine.load(tiny_model, LoadSettings(context_size=CONTEXT_LENGTH))
    yield engine
    engine.unload()


def _open(qtbot, paths: AppPaths, tiny_model: Path):
    window = build_main_window(paths)
    qtbot.addWidget(window)
    window.show()
    window.load_model(tiny_model)
    qtbot.waitUntil(lambda: window.composer.send_button.isEnabled(), timeout=WAIT_MS)
    return window


def _send(qtbot, window, text: str) -> None:
    window.composer.edit.setPlainText(text)
    window.composer.send_button.click()
    qtbot.waitUntil(lambda: not window.is_generating, timeout=WAIT_MS)


def test_the_system_prompt_and_preset_of_a_chat_are_used_and_kept(qtbot, paths, tiny_model, reference_engine) -> None:
    window = _open(qtbot, paths, tiny_model)
    panel = window.chat_settings_panel
    window.chat_settings_button.click()
    assert window.chat_settings_dock.isVisible()
    panel.system_prompt.setPlainText("Answer like a pirate.")
    panel.preset.setCurrentIndex(panel.preset.findData("Precise coding"))
    panel.preset.activated.emit(panel.preset.currentIndex())
    assert panel.temperature.value() == pytest.approx(0.6)

    _send(qtbot, window, "Hello")

    stored = window._store.messages(window._conversation_id)[-1]
    expected = reference_engine.render_prompt(
        [ChatMessage("system", "Answer like a pirate."), ChatMessage("user", "Hello")], enable_thinking=True
    )
    assert stored.stats.prompt_tokens == len(reference_engine.tokenize(expected))
    conversation = window._store.get_conversation(window._conversation_id)
    assert conversation.system_prompt == "Answer like a pirate."
    assert conversation.generation_settings["preset"] == "Precise coding"

    window.new_conversation()
    assert panel.system_prompt.toPlainText() == ""  # a new chat starts clean
    window.conversation_list.setCurrentIndex(window.conversation_model.index(window.conversation_model.first_conversation_row()))
    assert panel.system_prompt.toPlainText() == "Answer like a pirate."
    assert panel.preset.currentData() == "Precise coding"
    window.close()


def test_the_thinking_switch_is_remembered_per_conversation(qtbot, paths, tiny_model) -> None:
    window = _open(qtbot, paths, tiny_model)
    window.composer.thinking_switch.setChecked(False)
    window.composer.edit.setPlainText("Plain one")
    window.composer.send_button.click()  # this model's plain replies never end: stop it
    window.stop_generation()
    qtbot.waitUntil(lambda: not window.is_generating, timeout=WAIT_MS)
    window.new_conversation()
    window.composer.thinking_switch.setChecked(True)
    _send(qtbot, window, "Thinking one")
    plain_row = next(row for row in range(window.conversation_model.rowCount()) if window.conversation_model.index(row).data() == "Plain one")
    window.conversation_list.setCurrentIndex(window.conversation_model.index(plain_row))
    assert not window.composer.thinking_switch.isChecked()
    window.close()


def test_an_overflowing_conversation_shows_where_the_model_stops_seeing_it(qtbot, paths, tiny_model) -> None:
    with ConversationStore(paths.database) as store:
        conversation = store.create_conversation(title="Long")
        for turn in range(12):
            store.add_message(conversation.id, "user", f"Question {turn}: " + "tell me more " * 40)
            store.add_message(conversation.id, "assistant", f"Answer {turn}.")
    window = _open(qtbot, paths, tiny_model)
    window.composer.thinking_switch.setChecked(True)
    _send(qtbot, window, "Last question")

    notice = window.transcript._context_notice
    assert notice is not None and "no longer fit in the model's context" in notice.text()
    stats = window._store.messages(conversation.id)[-1].stats
    assert stats.prompt_tokens < CONTEXT_LENGTH
    assert window.transcript.message_widgets()[-1].answer == THINKING_ANSWER
    assert f"/ {CONTEXT_LENGTH:,} tokens" in window.context_status.text()
    # The notice sits right above the first message the model still saw.
    column = window.transcript._column
    index = column.indexOf(notice)
    first_kept = column.itemAt(index + 1).widget().findChild(type(window.transcript.message_widgets()[0]))
    assert first_kept.role == "user" and first_kept.answer.startswith("Question ")
    assert not first_kept.answer.startswith("Question 0:")
    window.close()


def test_the_thinking_switch_changes_the_prompt_exactly_as_the_template_does(qtbot, paths, tiny_model, reference_engine) -> None:
    window = _open(qtbot, paths, tiny_model)
    window.composer.thinking_switch.setChecked(True)
    _send(qtbot, window, "Hi")
    thinking_stats = window._store.messages(window._conversation_id)[-1].stats
    expected = reference_engine.render_prompt([ChatMessage("user", "Hi")], enable_thinking=True)
    assert expected.endswith("<think>\n")
    assert thinking_stats.prompt_tokens == len(reference_engine.tokenize(expected))

    window.new_conversation()
    window.composer.thinking_switch.setChecked(False)
    window.chat_settings_panel.max_tokens.setValue(16)  # plain replies of this model never end
    _send(qtbot, window, "Hi")
    plain_stats = window._store.messages(window._conversation_id)[-1].stats
    expected = reference_engine.render_prompt([ChatMessage("user", "Hi")], enable_thinking=False)
    assert expected.endswith("<think>\n\n</think>\n\n")
    assert plain_stats.prompt_tokens == len(reference_engine.tokenize(expected))
    window.close()


def test_the_colour_scheme_can_be_chosen_and_switches_live(qtbot) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    from app.ui.theme import apply_theme, set_color_scheme

    app = QApplication.instance()
    apply_theme(app, Qt.ColorScheme.Dark)
    assert app.palette().color(QPalette.ColorRole.Base).lightness() < 80
    set_color_scheme(app, Qt.ColorScheme.Light)
    assert app.palette().color(QPalette.ColorRole.Base).lightness() > 200
    set_color_scheme(app, None)  # follow the system (light here, offscreen)
    assert app.palette().color(QPalette.ColorRole.Base).lightness() > 200
