"""Per-conversation settings, the context window, and overflow, driven through the window."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.conversations.conversation_store import ConversationStore
from app.core.domain.generation import ChatMessage, LoadSettings
from app.core.engines.llama.llama_engine import LlamaEngine
from app.core.engines.llama.self_test_model import CONTEXT_LENGTH, THINKING_ANSWER
from app.core.profile.app_paths import AppPaths
from app.main import DesktopApp
from tests.ui.app_driver import load, open_app, select, stored, stored_messages, wait_until_idle


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return AppPaths.under(tmp_path / "profile")


@pytest.fixture
def reference_engine(tiny_model: Path):
    """A second engine on the same model, to compute what a prompt must look like."""
    engine = LlamaEngine()
    engine.load(tiny_model, LoadSettings(context_size=CONTEXT_LENGTH))
    yield engine
    engine.unload()


def _open(qtbot, paths: AppPaths, tiny_model: Path) -> DesktopApp:
    app = open_app(qtbot, paths)
    load(qtbot, app, tiny_model)
    return app


def _send(qtbot, app: DesktopApp, text: str) -> None:
    app.window.composer.edit.setPlainText(text)
    app.window.composer.send_button.click()
    wait_until_idle(qtbot, app)


def _new_chat(qtbot, app: DesktopApp) -> None:
    app.window.new_conversation()
    qtbot.waitUntil(lambda: app.window.conversation_id is None and not app.window.transcript.message_widgets())


def test_the_system_prompt_and_preset_of_a_chat_are_used_and_kept(qtbot, paths, tiny_model, reference_engine) -> None:
    app = _open(qtbot, paths, tiny_model)
    window = app.window
    panel = window.chat_settings_panel
    window.model_bar.chat_settings_button.click()
    assert window.chat_settings_dock.isVisible()
    panel.system_prompt.setPlainText("Answer like a pirate.")
    panel.preset.setCurrentIndex(panel.preset.findData("Precise coding"))
    panel.preset.activated.emit(panel.preset.currentIndex())
    assert panel.temperature.value() == pytest.approx(0.6)

    _send(qtbot, app, "Hello")

    reply = stored_messages(app)[-1]
    expected = reference_engine.render_prompt(
        [ChatMessage("system", "Answer like a pirate."), ChatMessage("user", "Hello")], enable_thinking=True
    )
    assert reply.stats.prompt_tokens == len(reference_engine.tokenize(expected))
    conversation_id = window.conversation_id
    conversation = stored(app, lambda store: store.get_conversation(conversation_id))
    assert conversation.system_prompt == "Answer like a pirate."
    assert conversation.generation_settings["preset"] == "Precise coding"

    _new_chat(qtbot, app)
    qtbot.waitUntil(lambda: panel.system_prompt.toPlainText() == "")  # a new chat starts clean
    select(app, conversation_id)
    qtbot.waitUntil(lambda: panel.system_prompt.toPlainText() == "Answer like a pirate.")
    assert panel.preset.currentData() == "Precise coding"
    window.close()


def test_the_thinking_switch_is_remembered_per_conversation(qtbot, paths, tiny_model) -> None:
    app = _open(qtbot, paths, tiny_model)
    window = app.window
    window.composer.thinking_switch.setChecked(False)
    window.composer.edit.setPlainText("Plain one")
    window.composer.send_button.click()  # this model's plain replies never end: stop it
    window.stop_action.trigger()
    wait_until_idle(qtbot, app)
    plain_id = window.conversation_id
    _new_chat(qtbot, app)
    qtbot.waitUntil(lambda: not window.composer.thinking_switch.isChecked())  # the last choice goes on
    window.composer.thinking_switch.setChecked(True)
    _send(qtbot, app, "Thinking one")
    select(app, plain_id)
    qtbot.waitUntil(lambda: window.conversation_id == plain_id)
    qtbot.waitUntil(lambda: not window.composer.thinking_switch.isChecked())
    window.close()


def test_an_overflowing_conversation_shows_where_the_model_stops_seeing_it(qtbot, paths, tiny_model) -> None:
    with ConversationStore(paths.database) as store:
        conversation = store.create_conversation(title="Long")
        for turn in range(12):
            store.add_message(conversation.id, "user", f"Question {turn}: " + "tell me more " * 40)
            store.add_message(conversation.id, "assistant", f"Answer {turn}.")
    app = _open(qtbot, paths, tiny_model)
    window = app.window
    window.composer.thinking_switch.setChecked(True)
    _send(qtbot, app, "Last question")

    notice = window.transcript._context_notice
    assert notice is not None and "no longer fit in the model's context" in notice.text()
    stats = stored_messages(app, conversation.id)[-1].stats
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
    app = _open(qtbot, paths, tiny_model)
    window = app.window
    window.composer.thinking_switch.setChecked(True)
    _send(qtbot, app, "Hi")
    thinking_stats = stored_messages(app)[-1].stats
    expected = reference_engine.render_prompt([ChatMessage("user", "Hi")], enable_thinking=True)
    assert expected.endswith("<think>\n")
    assert thinking_stats.prompt_tokens == len(reference_engine.tokenize(expected))

    _new_chat(qtbot, app)
    window.composer.thinking_switch.setChecked(False)
    window.chat_settings_panel.max_tokens.setValue(16)  # plain replies of this model never end
    _send(qtbot, app, "Hi")
    plain_stats = stored_messages(app)[-1].stats
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
