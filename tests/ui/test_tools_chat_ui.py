"""Tool calls in the chat window, driven like a user: the Tools button and its menu, a call's
block in the reply, the approval card and its three answers (mouse and keyboard), one busy span
for a turn of several steps, Stop while a call waits or runs, a call that fails, a result shown
on its own once its call is gone, the notice of a call the model wrote badly (pytest-qt,
offscreen).

The tiny models call ``get_weather`` (city "Paris"); the real MCP test server
(``tests/mcp_test_server.py``) provides it, as the server "weather".
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtWidgets import QApplication

from app.core.chat.tool_steps import UNREADABLE_CALL_NOTICE
from app.core.domain.conversations import MessageState, ToolCallPart, ToolOutcome, ToolResultPart
from app.core.engines.llama.self_test_model import THINKING_ANSWER, TOOL_CALL_NAME
from app.core.profile.app_paths import AppPaths
from app.main import DesktopApp
from app.ui.tool_call_block import ToolCallBlock
from tests.mcp_test_server import CITY_WEATHER
from tests.tool_fixtures import server_config
from tests.ui.app_driver import WAIT_MS, close, load, open_app, stored, stored_messages, type_and_send, wait_until_idle

WEATHER_KEY = f"weather/{TOOL_CALL_NAME}"
PARIS_WEATHER = CITY_WEATHER.format(city="Paris")


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return AppPaths.under(tmp_path / "profile")


def open_with_weather(qtbot, paths: AppPaths, model: Path, weather: str = "answer") -> DesktopApp:
    """The app with the weather server set up and allowed to start (its ``get_weather`` does
    ``weather``), ``model`` loaded, thinking off (the tiny models call tools only then) and
    tools switched on for the chat with the Tools button."""
    app = open_app(qtbot, paths)
    app.core.tools.set_config_text(server_config("weather", weather=weather))
    app.core.tools.approve_launch("weather")
    load(qtbot, app, model)
    composer = app.window.composer
    if composer.thinking_switch.isChecked():
        composer.thinking_switch.click()
    switch_tools_on(qtbot, app)
    return app


def switch_tools_on(qtbot, app: DesktopApp) -> None:
    button = app.window.composer.tools_button
    assert not button.isChecked()
    click_tools_button(qtbot, app)
    assert button.isChecked()
    qtbot.waitUntil(lambda: "tokens of every prompt" in button.measure_text, timeout=WAIT_MS)


def click_tools_button(qtbot, app: DesktopApp) -> None:
    """Clicks the button itself, not its menu arrow: tools on or off for the chat."""
    button = app.window.composer.tools_button
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton, pos=QPoint(button.width() // 4, button.height() // 2))


def blocks(app: DesktopApp) -> list[ToolCallBlock]:
    return [block for widget in app.window.transcript.message_widgets() for block in widget.tool_blocks()]


def wait_for_approval(qtbot, app: DesktopApp, count: int = 1) -> ToolCallBlock:
    """The ``count``-th call block of the transcript, once it asks for approval."""
    qtbot.waitUntil(lambda: len(blocks(app)) >= count and blocks(app)[count - 1].waits_for_answer, timeout=WAIT_MS)
    return blocks(app)[count - 1]


def results(app: DesktopApp) -> list[ToolResultPart]:
    return [part for message in stored_messages(app) for part in message.parts if isinstance(part, ToolResultPart)]


def test_allow_once_runs_the_tool_and_the_reply_follows_with_the_block_saying_allowed(qtbot, paths, tool_calling_model) -> None:
    app = open_with_weather(qtbot, paths, tool_calling_model)
    window = app.window
    busy_changes: list[bool] = []
    window.chat.sig_busy_changed.connect(busy_changes.append)
    activities: list[str] = []
    window.chat.sig_activity.connect(activities.append)
    type_and_send(qtbot, app, "What is the weather in Paris?")

    block = wait_for_approval(qtbot, app)
    assert block.call.name == TOOL_CALL_NAME and block.call.arguments == {"city": "Paris"}
    assert block.is_expanded and block.state_text == "Waiting for your approval"
    assert block.server_label.text() == "weather"
    assert block.description_label.text() == "The weather in a city."
    assert '"city": "Paris"' in block.arguments_view.text
    assert window.speed_status.text() == "Waiting for your approval"
    # Between the steps the window stays busy: Send is Stop, and nothing can be sent.
    assert window.is_generating and window.composer.send_button.text() == "Stop"
    assert window.composer.send_button.isEnabled()
    for button in (block.allow_once_button, block.always_allow_button, block.deny_button):
        assert button.isVisible() and button.focusPolicy() & Qt.FocusPolicy.TabFocus
    assert block.always_allow_button.text() == f"Always allow {TOOL_CALL_NAME}"

    window.composer.edit.setFocus()  # the answers are just before the message box
    for _answer in range(3):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier)
    assert QApplication.focusWidget() is block.allow_once_button
    qtbot.keyClick(block.allow_once_button, Qt.Key.Key_Space)  # the keyboard answers too
    assert not block.waits_for_answer  # the buttons go at once
    wait_until_idle(qtbot, app)

    assert busy_changes == [True, False]  # one busy span for the whole turn, however many steps
    said = [activity for activity in activities if not activity.startswith("Reading the conversation")]
    said = [activity for index, activity in enumerate(said) if index == 0 or said[index - 1] != activity]
    assert said == [
        "Generating…", "Starting tool servers…", "Waiting for your approval", f"Running {TOOL_CALL_NAME}…",
        "Generating…", "",
    ]
    assert block.state_text.startswith("Allowed · ") and block.state_text.endswith(" s")
    assert not block.is_expanded  # finished: folded away
    assert block.result_view.text == PARIS_WEATHER
    widgets = window.transcript.message_widgets()
    assert [widget.role for widget in widgets] == ["user", "assistant", "assistant"]  # no bubble for the result
    assert widgets[-1].answer == THINKING_ANSWER
    saved = stored_messages(app)
    assert [message.role for message in saved] == ["user", "assistant", "tool", "assistant"]
    assert saved[2].parts[0].outcome == ToolOutcome.ALLOWED

    block.toggle.click()  # opened by hand: the arguments and the result
    assert block.is_expanded and block.result_view.isVisible() and block.arguments_view.isVisible()
    close(app)


def test_a_chat_opened_again_shows_its_calls_in_their_blocks(qtbot, paths, tool_calling_model) -> None:
    app = open_with_weather(qtbot, paths, tool_calling_model)
    type_and_send(qtbot, app, "Weather?")
    wait_for_approval(qtbot, app).allow_once_button.click()
    wait_until_idle(qtbot, app)
    close(app)

    app = open_app(qtbot, paths)
    qtbot.waitUntil(lambda: len(app.window.transcript.message_widgets()) == 3, timeout=WAIT_MS)
    [block] = blocks(app)
    assert block.state_text.startswith("Allowed · ") and block.result_view.text == PARIS_WEATHER
    assert [widget.role for widget in app.window.transcript.message_widgets()] == ["user", "assistant", "assistant"]
    assert app.window.composer.tools_button.isChecked()  # the chat's own choice came back
    close(app)


def test_a_result_whose_call_is_gone_is_shown_on_its_own(qtbot, paths, tool_calling_model) -> None:
    app = open_with_weather(qtbot, paths, tool_calling_model)
    window = app.window
    type_and_send(qtbot, app, "Weather?")
    wait_for_approval(qtbot, app).allow_once_button.click()
    wait_until_idle(qtbot, app)

    calling = window.transcript.message_widgets()[1]
    qtbot.mouseClick(calling.action_buttons["delete"], Qt.MouseButton.LeftButton)  # the reply that held the call
    qtbot.waitUntil(lambda: [widget.role for widget in window.transcript.message_widgets()] == ["user", "tool", "assistant"], timeout=WAIT_MS)
    result = window.transcript.message_widgets()[1]
    assert result.answer == PARIS_WEATHER and not blocks(app)
    close(app)


def test_deny_shows_denied_and_the_model_goes_on_without_the_tool(qtbot, paths, tool_calling_model) -> None:
    app = open_with_weather(qtbot, paths, tool_calling_model)
    type_and_send(qtbot, app, "Weather?")
    block = wait_for_approval(qtbot, app)
    qtbot.mouseClick(block.deny_button, Qt.MouseButton.LeftButton)
    wait_until_idle(qtbot, app)

    assert block.state_text == "Denied"
    assert block.state_label.property("tone") == "problem"  # coloured as something that did not run
    assert app.window.transcript.message_widgets()[-1].answer == THINKING_ANSWER
    [result] = results(app)
    assert result.outcome == ToolOutcome.DENIED and result.is_error
    close(app)


def test_always_allow_lets_the_next_turn_call_the_tool_without_asking(qtbot, paths, tool_calling_model) -> None:
    app = open_with_weather(qtbot, paths, tool_calling_model)
    window = app.window
    type_and_send(qtbot, app, "Weather?")
    first = wait_for_approval(qtbot, app)
    qtbot.mouseClick(first.always_allow_button, Qt.MouseButton.LeftButton)
    wait_until_idle(qtbot, app)
    assert first.state_text.startswith("Allowed · ")  # the person allowed this one
    assert WEATHER_KEY in app.core.tools.preferences.always_allowed

    type_and_send(qtbot, app, "And tomorrow?")
    qtbot.waitUntil(lambda: len(blocks(app)) == 2, timeout=WAIT_MS)
    assert not blocks(app)[1].waits_for_answer
    wait_until_idle(qtbot, app)
    second = blocks(app)[1]
    assert second.state_text.startswith("Always allowed · ") and second.result_view.text == PARIS_WEATHER
    assert window.transcript.message_widgets()[-1].answer == THINKING_ANSWER
    assert [result.outcome for result in results(app)] == [ToolOutcome.ALLOWED, ToolOutcome.ALWAYS_ALLOWED]
    close(app)


def test_every_step_of_a_two_call_turn_keeps_the_window_busy(qtbot, paths, two_step_tool_model) -> None:
    app = open_with_weather(qtbot, paths, two_step_tool_model)
    window = app.window
    busy_changes: list[bool] = []
    window.chat.sig_busy_changed.connect(busy_changes.append)
    type_and_send(qtbot, app, "Weather twice?")
    wait_for_approval(qtbot, app).allow_once_button.click()
    second = wait_for_approval(qtbot, app, count=2)  # the second reply's call
    assert window.is_generating and window.composer.send_button.text() == "Stop"
    second.allow_once_button.click()
    wait_until_idle(qtbot, app)

    assert busy_changes == [True, False]
    assert [widget.role for widget in window.transcript.message_widgets()] == ["user", "assistant", "assistant", "assistant"]
    assert window.transcript.message_widgets()[-1].answer == THINKING_ANSWER
    close(app)


def test_stop_while_a_call_waits_for_approval_ends_the_turn_and_the_call_is_stopped(qtbot, paths, tool_calling_model) -> None:
    app = open_with_weather(qtbot, paths, tool_calling_model)
    window = app.window
    type_and_send(qtbot, app, "Weather?")
    block = wait_for_approval(qtbot, app)

    window.stop_action.trigger()  # Esc
    wait_until_idle(qtbot, app)
    assert block.state_text == "Stopped" and not block.waits_for_answer
    assert window.composer.send_button.text() == "Send"
    [result] = results(app)
    assert result.outcome == ToolOutcome.STOPPED
    assert [message.role for message in stored_messages(app)] == ["user", "assistant", "tool"]  # no reply after it
    close(app)


def test_stop_while_a_call_runs_ends_the_turn_and_the_call_is_stopped(qtbot, paths, tool_calling_model) -> None:
    app = open_with_weather(qtbot, paths, tool_calling_model, weather="hang")
    window = app.window
    type_and_send(qtbot, app, "Weather?")
    block = wait_for_approval(qtbot, app)
    block.allow_once_button.click()
    qtbot.waitUntil(lambda: block.state_text == "Running…", timeout=WAIT_MS)
    assert window.speed_status.text() == f"Running {TOOL_CALL_NAME}…"

    qtbot.mouseClick(window.composer.send_button, Qt.MouseButton.LeftButton)  # Stop
    wait_until_idle(qtbot, app)
    assert block.state_text == "Stopped"
    [result] = results(app)
    assert result.outcome == ToolOutcome.STOPPED
    close(app)


def test_a_call_whose_server_crashes_shows_failed_and_the_model_is_told(qtbot, paths, tool_calling_model) -> None:
    app = open_with_weather(qtbot, paths, tool_calling_model, weather="crash")
    type_and_send(qtbot, app, "Weather?")
    wait_for_approval(qtbot, app).allow_once_button.click()
    wait_until_idle(qtbot, app)

    [block] = blocks(app)
    assert block.state_text.startswith("Failed") and block.state_label.property("tone") == "problem"
    assert block.result_view.text == results(app)[0].text != ""
    assert app.window.transcript.message_widgets()[-1].answer == THINKING_ANSWER
    close(app)


def test_the_tools_menu_switches_a_tool_off_for_this_chat(qtbot, paths, tool_calling_model) -> None:
    app = open_with_weather(qtbot, paths, tool_calling_model)
    button = app.window.composer.tools_button
    assert "Every call asks for your approval" in button.toolTip()
    builtin_count = len(app.core.tools.built_in_tools())
    assert set(button.tool_actions) == {tool.key for tool in app.core.tools.built_in_tools()}
    assert any(action.text() == "Starts when a chat first needs it" for action in button.menu_of_tools.actions())
    assert button.measure_text.startswith(f"{builtin_count} tools · ~")

    type_and_send(qtbot, app, "Weather?")  # the first reply starts the weather server
    wait_for_approval(qtbot, app).allow_once_button.click()
    wait_until_idle(qtbot, app)
    qtbot.waitUntil(lambda: WEATHER_KEY in button.tool_actions, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: button.measure_text.startswith(f"{len(app.core.tools.known_tools())} tools · ~"), timeout=WAIT_MS)

    stayed_open: list[bool] = []

    def click_in_menu() -> None:
        menu = button.menu_of_tools
        try:
            qtbot.mouseClick(menu, Qt.MouseButton.LeftButton, pos=menu.actionGeometry(button.tool_actions[WEATHER_KEY]).center())
            stayed_open.append(menu.isVisible())  # several tools can be changed at once
        finally:
            menu.close()

    QTimer.singleShot(0, click_in_menu)
    button.showMenu()  # returns once the menu closes
    assert stayed_open == [True]
    conversation_id = app.window.conversation_id
    qtbot.waitUntil(
        lambda: stored(app, lambda store: store.get_conversation(conversation_id)).generation_settings["tools_switched_off"]
        == [WEATHER_KEY],
        timeout=WAIT_MS,
    )
    assert not button.tool_actions[WEATHER_KEY].isChecked()
    qtbot.waitUntil(lambda: button.measure_text.startswith(f"{len(app.core.tools.known_tools()) - 1} tools · ~"), timeout=WAIT_MS)
    assert app.core.tools.is_switched_on(WEATHER_KEY)  # only this chat leaves it out

    click_tools_button(qtbot, app)
    qtbot.waitUntil(
        lambda: not stored(app, lambda store: store.get_conversation(conversation_id)).generation_settings["tools_enabled"],
        timeout=WAIT_MS,
    )
    qtbot.waitUntil(lambda: button.measure_text == "Tools are off in this chat", timeout=WAIT_MS)
    assert not button.tool_actions[WEATHER_KEY].isEnabled()
    close(app)


def test_a_tool_call_the_model_wrote_badly_is_shown_as_text_with_a_notice(qtbot, paths, malformed_call_model) -> None:
    app = open_with_weather(qtbot, paths, malformed_call_model)
    type_and_send(qtbot, app, "Weather?")
    wait_until_idle(qtbot, app)

    reply = app.window.transcript.message_widgets()[-1]
    assert f"<function={TOOL_CALL_NAME}" in reply.answer and not reply.tool_blocks()
    assert reply.notice.isVisible() and reply.notice.text() == UNREADABLE_CALL_NOTICE
    assert "Failed" not in reply._footer.text()  # information, not a failure
    saved = stored_messages(app)[-1]
    assert saved.state == MessageState.COMPLETE and saved.error == UNREADABLE_CALL_NOTICE
    assert not any(isinstance(part, ToolCallPart) for part in saved.parts)
    close(app)
