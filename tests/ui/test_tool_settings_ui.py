"""Settings › Tools, driven like a user on a real tool service (its files in a temporary config
folder) and the real MCP test server started over stdio (pytest-qt, offscreen)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QDeadlineTimer, Qt, QTimer
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QApplication, QDialog, QWidget

from app.core.profile.app_paths import AppPaths
from app.core.tools.builtin_tools import CALCULATOR, CURRENT_TIME
from app.core.tools.mcp_config import McpConfigError, parse_config
from app.core.tools.mcp_servers import ServerState
from app.core.tools.tool_service import ToolService
from app.ui.event_bridges import ToolsBridge
from app.ui.tool_settings_page import LaunchApprovalDialog, ServerConfigDialog, ServerDetailsDialog, ToolSettingsPage
from app.ui.settings_dialog import SettingsDialog
from tests.tool_fixtures import server_config, tool_service
from tests.ui.app_driver import close, in_settings, open_app

WAIT_MS = 30_000
REMOTE_SERVER = '{"mcpServers": {"remote": {"url": "https://example.com/mcp"}}}'


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return tmp_path / "config"


@pytest.fixture
def services() -> Iterator[list[ToolService]]:
    """Every tool service a test makes; their servers are stopped when it ends."""
    made: list[ToolService] = []
    yield made
    for service in made:
        service.shutdown()


def _page(qtbot, service: ToolService) -> ToolSettingsPage:
    """The page as Settings shows it, following ``service`` through a started bridge (which the
    service keeps, as a listener, as long as itself)."""
    bridge = ToolsBridge(service)
    bridge.start()
    page = ToolSettingsPage(service, bridge)
    qtbot.addWidget(page)
    page.show()
    return page


def _click(qtbot, button: QWidget) -> None:
    assert button.isVisible() and button.isEnabled()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def _answer_dialogs(*steps: tuple[type[QDialog], Callable[[QDialog], None]]) -> list:
    """Answers the modal dialogs that the next action opens, in order: each step's function gets
    the dialog of its type once it is open. A dialog the function leaves open is cancelled, so
    a failed check never leaves the test waiting. Returns the steps not yet answered (empty
    once every dialog came)."""
    remaining = list(steps)
    answered: list[QDialog] = []
    deadline = QDeadlineTimer(WAIT_MS)

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        kind, respond = remaining[0]
        if not isinstance(dialog, kind) or any(dialog is seen for seen in answered):
            if not deadline.hasExpired():
                QTimer.singleShot(10, answer)  # not open yet
            return
        remaining.pop(0)
        answered.append(dialog)
        try:
            respond(dialog)
        finally:
            if dialog.isVisible():
                dialog.reject()
            if remaining:
                QTimer.singleShot(0, answer)

    QTimer.singleShot(0, answer)
    return remaining


def _save_config(text: str) -> Callable[[ServerConfigDialog], None]:
    def save(editor: ServerConfigDialog) -> None:
        editor.editor.setPlainText(text)
        editor.save_button.click()

    return save


def _is_monospace(widget: QWidget) -> bool:
    metrics = QFontMetrics(widget.font())
    return metrics.horizontalAdvance("iiii") == metrics.horizontalAdvance("WWWW")


def test_a_server_config_with_a_mistake_keeps_the_editor_open_with_the_message_and_the_text(
    qtbot, config_dir, services
) -> None:
    service = ToolService(config_dir, lambda query: [])
    services.append(service)
    page = _page(qtbot, service)
    mistaken = '{"mcpServers": {"files": {"command": "npx", "args": ["-y", "server-filesystem"],}}}'
    with pytest.raises(McpConfigError) as expected:
        parse_config(mistaken)
    seen: list[tuple[bool, str, str]] = []

    def save_the_mistake(editor: ServerConfigDialog) -> None:
        assert json.loads(editor.editor.toPlainText()) == {"mcpServers": {}}  # what is set up now: nothing
        assert _is_monospace(editor.editor) and "mcpServers" in editor.example.text()
        assert not editor.problem.isVisible()
        assert editor.secrets_note.text() == service.secrets_problem  # the tests' keyring is none
        _save_config(mistaken)(editor)
        seen.append((editor.isVisible(), editor.problem.text(), editor.editor.toPlainText()))
        assert editor.problem.isVisible()

    unanswered = _answer_dialogs((ServerConfigDialog, save_the_mistake))
    _click(qtbot, page.edit_servers)
    assert unanswered == []
    assert seen == [(True, str(expected.value), mistaken)]
    assert "not valid JSON" in str(expected.value)
    assert service.servers() == () and not (config_dir / "mcp.json").exists()  # nothing saved


def test_saving_a_new_server_asks_to_allow_its_exact_command_and_allowing_it_lets_it_start(
    qtbot, config_dir, services
) -> None:
    service = ToolService(config_dir, lambda query: [])
    services.append(service)
    page = _page(qtbot, service)
    asked: list[tuple[str, str, bool]] = []

    def allow(approval: LaunchApprovalDialog) -> None:
        asked.append((approval.question.text(), approval.launch.toPlainText(), _is_monospace(approval.launch)))
        assert approval.launch.isReadOnly() and approval.not_now_button.isDefault()
        approval.allow_button.click()

    def not_now(approval: LaunchApprovalDialog) -> None:
        asked.append((approval.question.text(), approval.launch.toPlainText(), _is_monospace(approval.launch)))
        approval.not_now_button.click()

    unanswered = _answer_dialogs(
        (ServerConfigDialog, _save_config(server_config("weather", "later"))),
        (LaunchApprovalDialog, allow),
        (LaunchApprovalDialog, not_now),
    )
    _click(qtbot, page.edit_servers)
    assert unanswered == []
    question = "Allow this server to run on your computer? It can do whatever this program can."
    weather, later = service.server("weather"), service.server("later")
    assert asked == [(question, weather.config.launch, True), (question, later.config.launch, True)]
    assert not weather.needs_approval and later.needs_approval

    qtbot.waitUntil(lambda: list(page.server_rows) == ["weather", "later"], timeout=WAIT_MS)
    allowed, waiting = page.server_rows["weather"], page.server_rows["later"]
    qtbot.waitUntil(lambda: allowed.start_button.isVisible(), timeout=WAIT_MS)
    assert allowed.start_button.text() == "Start" and not allowed.allow_button.isVisible()
    assert allowed.launch.text() == weather.config.launch
    assert waiting.status.text() == "Not started: its command has to be allowed first"
    assert waiting.allow_button.isVisible() and not waiting.start_button.isVisible()

    unanswered = _answer_dialogs((LaunchApprovalDialog, allow))
    _click(qtbot, waiting.allow_button)  # the same question, from the server's row
    assert unanswered == [] and asked[-1] == (question, later.config.launch, True)
    qtbot.waitUntil(lambda: waiting.start_button.isVisible(), timeout=WAIT_MS)
    assert not waiting.allow_button.isVisible() and not service.server("later").needs_approval


def test_starting_a_server_shows_it_ready_with_a_switch_for_each_of_its_tools(qtbot, config_dir, services) -> None:
    service = tool_service(config_dir, "weather")
    services.append(service)
    page = _page(qtbot, service)
    row = page.server_rows["weather"]
    assert row.status.text() == "Starts when a chat first needs it" and row.tool_checks == {}

    _click(qtbot, row.start_button)  # the real server, started over stdio
    qtbot.waitUntil(lambda: row.status.text().startswith("Ready"), timeout=WAIT_MS)
    ready = service.server("weather")
    assert ready.status.state is ServerState.READY and row.status.text() == ready.summary
    assert list(row.tool_checks) == [tool.name for tool in ready.status.tools] and "get_weather" in row.tool_checks
    assert all(check.isChecked() for check in row.tool_checks.values())
    assert row.start_button.text() == "Restart" and not row.details_button.isVisible()

    row.tool_checks["get_weather"].click()
    assert service.preferences.switched_off == ["weather/get_weather"]
    assert "weather/get_weather" not in [tool.key for tool in service.known_tools()]  # never offered now


def test_a_server_that_crashes_at_start_shows_failed_with_its_error_output_under_details(
    qtbot, config_dir, services
) -> None:
    service = tool_service(config_dir, "broken", crash_at_start=("broken",))
    services.append(service)
    page = _page(qtbot, service)
    row = page.server_rows["broken"]
    _click(qtbot, row.start_button)
    qtbot.waitUntil(lambda: row.status.text().startswith("Failed: "), timeout=WAIT_MS)
    failed = service.server("broken")
    assert row.status.text() == f"Failed: {failed.status.message}"
    assert row.start_button.text() == "Restart" and row.start_button.isVisible()
    shown: list[tuple[str, str]] = []

    def read(details: ServerDetailsDialog) -> None:
        assert details.errors.isReadOnly() and _is_monospace(details.errors)
        shown.append((details.message.text(), details.errors.toPlainText()))

    unanswered = _answer_dialogs((ServerDetailsDialog, read))
    _click(qtbot, row.details_button)
    assert unanswered == []
    assert shown == [(failed.status.message, failed.status.stderr)]
    assert "test server: cannot start, missing configuration" in shown[0][1]


def test_switching_a_built_in_tool_off_is_stored_for_the_next_start(qtbot, config_dir, services) -> None:
    service = ToolService(config_dir, lambda query: [])
    services.append(service)
    page = _page(qtbot, service)
    assert list(page.built_in_checks) == ["get_current_time", "calculate", "search_conversations"]
    assert all(check.isChecked() for check in page.built_in_checks.values())

    page.built_in_checks["calculate"].click()
    assert service.preferences.switched_off == [CALCULATOR.key]
    reopened = ToolService(config_dir, lambda query: [])
    services.append(reopened)
    assert reopened.preferences.switched_off == [CALCULATOR.key]
    reopened_page = _page(qtbot, reopened)
    assert not reopened_page.built_in_checks["calculate"].isChecked()

    page.built_in_checks["calculate"].click()
    assert service.preferences.switched_off == []


def test_the_limits_and_offering_tools_in_new_chats_are_stored(qtbot, config_dir, services) -> None:
    service = ToolService(config_dir, lambda query: [])
    services.append(service)
    page = _page(qtbot, service)
    assert (page.step_limit.value(), page.timeout.value(), page.offer_in_new_chats.isChecked()) == (10, 60, False)
    assert (page.step_limit.minimum(), page.step_limit.maximum()) == (1, 100)

    page.offer_in_new_chats.click()
    page.step_limit.setValue(3)
    page.timeout.setValue(15)
    stored = json.loads((config_dir / "tool-settings.json").read_text())
    assert (stored["offer_in_new_chats"], stored["step_limit"], stored["timeout_s"]) == (True, 3, 15)


def test_revoking_an_always_allowed_tool_makes_it_ask_again(qtbot, config_dir, services) -> None:
    service = ToolService(config_dir, lambda query: [])
    services.append(service)
    page = _page(qtbot, service)
    assert page.nothing_always_allowed.isVisible() and page.nothing_always_allowed.text() == "No tool runs without asking."

    service.always_allow(CURRENT_TIME)  # as an approval in a chat does
    service.always_allow(CALCULATOR)
    qtbot.waitUntil(lambda: list(page.revoke_buttons) == [CURRENT_TIME.key, CALCULATOR.key], timeout=WAIT_MS)
    assert not page.nothing_always_allowed.isVisible()

    _click(qtbot, page.revoke_buttons[CURRENT_TIME.key])
    assert service.preferences.always_allowed == [CALCULATOR.key]
    qtbot.waitUntil(lambda: list(page.revoke_buttons) == [CALCULATOR.key], timeout=WAIT_MS)
    _click(qtbot, page.revoke_buttons[CALCULATOR.key])
    qtbot.waitUntil(lambda: page.nothing_always_allowed.isVisible(), timeout=WAIT_MS)
    assert page.revoke_buttons == {} and not service.is_always_allowed(CALCULATOR)


def test_offline_mode_shows_a_server_on_another_computer_as_blocked_and_never_starts_it(
    qtbot, config_dir, services
) -> None:
    service = ToolService(config_dir, lambda query: [])
    services.append(service)
    service.set_config_text(REMOTE_SERVER)
    service.approve_launch("remote")
    page = _page(qtbot, service)
    row = page.server_rows["remote"]
    assert row.launch.text() == "https://example.com/mcp" and row.start_button.isVisible()

    service.set_offline(True)
    qtbot.waitUntil(lambda: row.status.text().startswith("Blocked"), timeout=WAIT_MS)
    assert row.status.text() == "Blocked: offline mode allows only servers on this computer"
    assert not row.start_button.isVisible() and not row.allow_button.isVisible()
    assert service.start_server("remote") is None  # what the button would have done: nothing
    assert service.server("remote").status.state is ServerState.STOPPED

    service.set_offline(False)
    qtbot.waitUntil(lambda: row.start_button.isVisible(), timeout=WAIT_MS)


def test_a_server_file_that_cannot_be_read_is_shown_at_the_top(qtbot, config_dir, services) -> None:
    config_dir.mkdir(parents=True)
    (config_dir / "mcp.json").write_text('{"mcpServers": {"files": {"args": []}}}')
    service = ToolService(config_dir, lambda query: [])
    services.append(service)
    page = _page(qtbot, service)
    assert page.config_problem.isVisible()
    assert page.config_problem.text() == service.config_problem
    assert page.config_problem.text().startswith("mcp.json cannot be used: ")

    unanswered = _answer_dialogs((ServerConfigDialog, _save_config(REMOTE_SERVER)), (LaunchApprovalDialog, lambda _: None))
    _click(qtbot, page.edit_servers)
    assert unanswered == []
    qtbot.waitUntil(lambda: not page.config_problem.isVisible(), timeout=WAIT_MS)
    assert list(page.server_rows) == ["remote"]


def test_the_settings_window_shows_the_tools_and_offline_mode_saved_there_blocks_a_server_elsewhere(
    qtbot, tmp_path
) -> None:
    app = open_app(qtbot, AppPaths.under(tmp_path / "profile"))
    tools = app.core.tools
    tools.set_config_text(REMOTE_SERVER)
    tools.approve_launch("remote")
    shown: list[str] = []

    def go_offline(dialog: SettingsDialog) -> None:
        row = dialog.tool_settings.server_rows["remote"]
        shown.append(row.status.text())
        assert row.start_button.isVisible() and dialog.tool_settings.isVisible()
        dialog.offline_check.setChecked(True)
        dialog.accept()

    in_settings(app, go_offline)
    assert tools.server("remote").blocked_offline
    in_settings(app, lambda dialog: shown.append(dialog.tool_settings.server_rows["remote"].status.text()))
    assert shown == ["Starts when a chat first needs it", "Blocked: offline mode allows only servers on this computer"]
    close(app)
