"""Model servers in the window, driven like a user: Settings › Model servers (adding a server,
its key in the keyring, Test connection, Save refusing a mistake, removing), the model list's
server groups and loading a server's model from it, the status bar, the privacy notice, a
reply waiting for its server, and a reply whose connection broke (pytest-qt, offscreen).

The servers are real: a ``ModelServers`` on a temporary config folder with an in-memory
keyring, and ``ScriptedModelServer``, a real HTTP server on 127.0.0.1 that answers as a test
scripts it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QDeadlineTimer, Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialog, QLabel, QMessageBox, QWidget

from app.core.domain.conversations import MessageState
from app.core.domain.generation import RemoteModel, StopReason
from app.core.engines.remote.model_servers import CONFIG_FILE, ModelServer, ModelServers
from app.core.profile.app_paths import APP_NAME, AppPaths
from app.main import DesktopApp
from app.ui.event_bridges import ModelServersBridge
from app.ui import model_bar
from app.ui.model_bar import CLOSED_TEXT_ROLE
from app.ui.model_servers_page import ModelServerDialog, ModelServersPage
from app.ui.settings_dialog import SettingsDialog
from tests.model_server_fixtures import ScriptedModelServer, free_port, lan_address
from tests.ui.app_driver import WAIT_MS, close, in_settings, open_app, stored_messages, type_and_send, wait_until_idle

TWO_MODELS = [
    {"id": "big-model", "object": "model", "max_model_len": 32768},
    {"id": "small-model", "object": "model"},
]


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "config"
    folder.mkdir()
    return folder


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return AppPaths.under(tmp_path / "profile")


def _page(qtbot, servers: ModelServers) -> ModelServersPage:
    """The section as Settings shows it, following ``servers`` through a started bridge (which
    the servers keep, as a listener, as long as themselves)."""
    bridge = ModelServersBridge(servers)
    bridge.start()
    page = ModelServersPage(servers, bridge)
    qtbot.addWidget(page)
    page.show()
    return page


def _dialog(qtbot, servers: ModelServers, editing: ModelServer | None = None) -> ModelServerDialog:
    bridge = ModelServersBridge(servers)
    bridge.start()
    dialog = ModelServerDialog(servers, bridge, editing)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def _fill(dialog: ModelServerDialog, name: str, url: str, key: str = "") -> None:
    dialog.name_edit.setText(name)
    dialog.url_edit.setText(url)
    dialog.key_edit.setText(key)


def _click(qtbot, button: QWidget) -> None:
    assert button.isVisible() and button.isEnabled()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def _answer_next_dialog(kind: type[QDialog], respond: Callable[[QDialog], None]) -> list[QDialog]:
    """Answers the modal dialog of type ``kind`` that the next action opens with
    ``respond(dialog)``; one it leaves open is cancelled, so a failed check never leaves the test
    waiting. Returns the dialogs answered (empty until it came)."""
    answered: list[QDialog] = []
    deadline = QDeadlineTimer(WAIT_MS)

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, kind):
            if not deadline.hasExpired():
                QTimer.singleShot(10, answer)
            return
        answered.append(dialog)
        try:
            respond(dialog)
        finally:
            if dialog.isVisible():
                dialog.reject()

    QTimer.singleShot(0, answer)
    return answered


def _test_result(qtbot, dialog: ModelServerDialog) -> tuple[str, str]:
    """Clicks Test connection; the result's text and tone once it came."""
    _click(qtbot, dialog.test_button)
    assert not dialog.test_button.isEnabled() and dialog.test_button.text() == "Testing…"
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled(), timeout=WAIT_MS)
    assert dialog.test_result.isVisible()
    return dialog.test_result.text(), dialog.test_result.property("tone")


# --------------------------------------------------------------------- Settings › Model servers


def test_adding_a_server_in_settings_keeps_its_address_in_the_file_and_its_key_in_the_keyring(
    qtbot, config_dir, memory_keyring, scripted_server: ScriptedModelServer
) -> None:
    scripted_server.script.required_key = "the-secret-key"
    servers = ModelServers(config_dir)
    page = _page(qtbot, servers)
    assert page.no_servers.isVisible() and not page.rows

    def add(dialog: ModelServerDialog) -> None:
        assert dialog.url_edit.placeholderText() == "http://192.168.1.20:8080/v1"
        assert dialog.key_edit.echoMode() == dialog.key_edit.EchoMode.Password
        _fill(dialog, "Desktop", scripted_server.url, "the-secret-key")
        dialog.save_button.click()

    answered = _answer_next_dialog(ModelServerDialog, add)
    _click(qtbot, page.add_button)
    assert answered and not answered[0].isVisible()

    saved = (config_dir / CONFIG_FILE).read_text(encoding="utf-8")
    assert json.loads(saved) == {"servers": [{"name": "Desktop", "url": scripted_server.url, "ca_file": ""}]}
    assert "the-secret-key" not in saved
    assert memory_keyring.passwords == {(APP_NAME, "model-server/Desktop"): "the-secret-key"}
    qtbot.waitUntil(lambda: "Desktop" in page.rows, timeout=WAIT_MS)
    row = page.rows["Desktop"]
    assert row.address.text() == scripted_server.url and "key in the keyring" in row.details.text()
    # Saving asked the server for its models, with the key: it answered.
    qtbot.waitUntil(lambda: row.status.text() == "1 model: big-model", timeout=WAIT_MS)
    assert not page.no_servers.isVisible()


def test_test_connection_shows_the_models_the_server_lists(qtbot, config_dir, memory_keyring, scripted_server) -> None:
    scripted_server.script.models = TWO_MODELS
    dialog = _dialog(qtbot, ModelServers(config_dir))
    _fill(dialog, "Desktop", scripted_server.url)

    text, tone = _test_result(qtbot, dialog)

    assert (text, tone) == ("Connected. 2 models: big-model, small-model", "good")
    assert ModelServers(config_dir).servers == ()  # a test saves nothing


def test_test_connection_with_a_wrong_key_says_the_server_refused_it(qtbot, config_dir, memory_keyring, scripted_server) -> None:
    scripted_server.script.required_key = "the-right-key"
    dialog = _dialog(qtbot, ModelServers(config_dir))
    _fill(dialog, "Desktop", scripted_server.url, "a-wrong-key")

    assert _test_result(qtbot, dialog) == ("Desktop refused the key: check the key set for this server.", "problem")

    dialog.key_edit.setText("the-right-key")
    assert not dialog.test_result.isVisible()  # the answer was about the key typed before
    assert _test_result(qtbot, dialog)[1] == "good"


def test_test_connection_to_a_computer_where_no_server_runs_says_it_cannot_be_reached(qtbot, config_dir, memory_keyring) -> None:
    port = free_port()
    dialog = _dialog(qtbot, ModelServers(config_dir))
    _fill(dialog, "Desktop", f"http://127.0.0.1:{port}/v1")

    text, tone = _test_result(qtbot, dialog)

    assert tone == "problem"
    assert text == f"Desktop cannot be reached at 127.0.0.1:{port}: check that the server runs and that the address is right."


def test_save_refuses_an_address_without_http_and_keeps_the_dialog_open_with_the_reason(qtbot, config_dir, memory_keyring) -> None:
    servers = ModelServers(config_dir)
    page = _page(qtbot, servers)
    seen: list[tuple[bool, str, str]] = []

    def save_the_mistake(dialog: ModelServerDialog) -> None:
        _fill(dialog, "Desktop", "192.168.1.20:8080")
        dialog.save_button.click()
        seen.append((dialog.isVisible(), dialog.problem.text(), dialog.url_edit.text()))
        dialog.url_edit.setText("http://192.168.1.20:8080/v1")
        seen.append((dialog.problem.isVisible(), "", ""))  # typing again: the reason no longer applies

    _answer_next_dialog(ModelServerDialog, save_the_mistake)
    _click(qtbot, page.add_button)

    assert seen[0] == (
        True,
        "The address must start with http:// or https:// and name a computer, such as http://192.168.1.20:8080/v1.",
        "192.168.1.20:8080",
    )
    assert seen[1][0] is False
    assert servers.servers == () and not (config_dir / CONFIG_FILE).exists()


def test_removing_a_server_asks_first_and_then_forgets_it_and_its_key(qtbot, config_dir, memory_keyring, scripted_server) -> None:
    servers = ModelServers(config_dir)
    servers.save(ModelServer("Desktop", scripted_server.url), key="the-secret-key")
    page = _page(qtbot, servers)
    questions: list[str] = []

    def answer(button_text: str) -> Callable[[QMessageBox], None]:
        def click(box: QMessageBox) -> None:
            questions.append(box.text())
            next(button for button in box.buttons() if button.text() == button_text).click()

        return click

    _answer_next_dialog(QMessageBox, answer("Cancel"))
    _click(qtbot, page.rows["Desktop"].remove_button)
    assert [server.name for server in servers.servers] == ["Desktop"]

    _answer_next_dialog(QMessageBox, answer("Remove"))
    _click(qtbot, page.rows["Desktop"].remove_button)

    assert "Its key is deleted from the system keyring" in questions[0] and questions[0] == questions[1]
    assert servers.servers == () and memory_keyring.passwords == {}
    qtbot.waitUntil(lambda: not page.rows and page.no_servers.isVisible(), timeout=WAIT_MS)


def test_editing_a_server_keeps_its_saved_key_when_the_key_field_is_left_empty(
    qtbot, config_dir, memory_keyring, scripted_server
) -> None:
    scripted_server.script.required_key = "the-secret-key"
    servers = ModelServers(config_dir)
    servers.save(ModelServer("Desktop", scripted_server.url), key="the-secret-key")
    dialog = _dialog(qtbot, servers, servers.server("Desktop"))
    assert dialog.key_edit.text() == "" and dialog.key_edit.placeholderText() == "Saved: leave empty to keep it"
    assert dialog.remove_key.isVisible()

    dialog.name_edit.setText("Big desktop")
    assert _test_result(qtbot, dialog)[1] == "good"  # the saved key, though the name changed
    dialog.save_button.click()

    assert [server.name for server in servers.servers] == ["Big desktop"]
    assert memory_keyring.passwords == {(APP_NAME, "model-server/Big desktop"): "the-secret-key"}


def test_offline_mode_says_the_servers_on_other_computers_are_not_contacted(qtbot, config_dir, memory_keyring) -> None:
    servers = ModelServers(config_dir, offline=True)
    servers.save(ModelServer("GPU box", "http://192.0.2.50:8080/v1"))
    page = _page(qtbot, servers)

    assert page.offline_note.isVisible()
    status = page.rows["GPU box"].status
    assert status.text() == "Not contacted in offline mode" and status.objectName() == "warningText"


# ---------------------------------------------------------------------------- the model list


def _rows(app: DesktopApp) -> list[tuple[str, bool]]:
    """The model list as shown: each row's text and whether it can be chosen."""
    picker = app.window.model_picker
    rows = []
    for index in range(picker.count()):
        item = picker.model().item(index)
        if item.data(Qt.ItemDataRole.AccessibleDescriptionRole) != "separator":
            rows.append((picker.itemText(index), bool(item.flags() & Qt.ItemFlag.ItemIsEnabled)))
    return rows


def _go_offline(dialog: SettingsDialog) -> None:
    dialog.offline_check.setChecked(True)
    dialog.accept()


def _add_server(app: DesktopApp, url: str, name: str = "Desktop") -> None:
    app.core.model_servers.save(ModelServer(name, url))
    app.core.model_servers.refresh([name])


def _choose_in_the_list(qtbot, app: DesktopApp, text: str) -> None:
    """Opens the model list and chooses the row ``text`` with the arrow keys and Enter (rows
    that cannot be chosen are skipped, as for the person)."""
    picker = app.window.model_picker
    target = picker.findText(text)
    assert target >= 0, text
    picker.showPopup()
    view = picker.view()
    qtbot.waitUntil(view.isVisible, timeout=WAIT_MS)
    for _ in range(picker.count()):
        if view.currentIndex().row() == target:
            break
        qtbot.keyClick(view, Qt.Key.Key_Down)
    qtbot.keyClick(view, Qt.Key.Key_Return)


def _load_remote(qtbot, app: DesktopApp, server: ScriptedModelServer, model_id: str = "big-model") -> None:
    _add_server(app, server.url)
    app.window.load_model(RemoteModel("Desktop", model_id))
    qtbot.waitUntil(lambda: app.window.composer.send_button.isEnabled(), timeout=WAIT_MS)


def test_the_model_list_shows_a_servers_models_under_its_name_and_choosing_one_loads_it(
    qtbot, paths, memory_keyring, scripted_server, tiny_model
) -> None:
    scripted_server.script.models = TWO_MODELS
    app = open_app(qtbot, paths)
    window = app.window
    window.load_model(tiny_model)
    qtbot.waitUntil(lambda: window.composer.send_button.isEnabled(), timeout=WAIT_MS)
    address = scripted_server.url.split("/")[2]

    _add_server(app, scripted_server.url)
    qtbot.waitUntil(lambda: ("small-model", True) in _rows(app), timeout=WAIT_MS)

    assert _rows(app) == [
        ("On this computer", False), ("tiny-thinking", True),
        (f"Desktop · {address}", False), ("big-model", True), ("small-model", True),
    ]
    picker = window.model_picker
    assert picker.itemData(picker.findText("big-model"), Qt.ItemDataRole.ToolTipRole) == (
        f"Runs on Desktop at {address}, on this computer"
    )
    with qtbot.waitSignal(window.model_bar.sig_model_chosen, timeout=WAIT_MS) as chosen:
        _choose_in_the_list(qtbot, app, "small-model")
    assert chosen.args == [RemoteModel("Desktop", "small-model")]
    assert window.model_status.text() == "Connecting to Desktop…"
    qtbot.waitUntil(lambda: window.model_status.text() == "small-model on Desktop", timeout=WAIT_MS)

    assert app.core.engine.facts.remote == RemoteModel("Desktop", "small-model")
    assert picker.currentText() == "small-model" and picker.currentData(CLOSED_TEXT_ROLE) == "small-model · Desktop"
    assert window.backend_status.text() == "This computer · Desktop"
    assert "on this computer: nothing leaves it" in window.backend_status.toolTip()
    assert window.context_status.text().startswith("Context: ") and window.context_status.text().endswith(" / unknown")
    assert not window.composer.privacy_notice.isVisible()  # the server is on this computer
    close(app)


def test_the_model_list_says_why_a_server_offers_no_models(qtbot, paths, memory_keyring) -> None:
    app = open_app(qtbot, paths)
    port = free_port()
    _add_server(app, f"http://127.0.0.1:{port}/v1", "Desktop")
    in_settings(app, _go_offline)
    _add_server(app, "http://192.0.2.50:8080/v1", "GPU box")  # never contacted: no test reaches the network
    unreachable = f"Desktop cannot be reached at 127.0.0.1:{port}: check that the server runs and that the address is right."

    qtbot.waitUntil(lambda: (unreachable[:89] + "…", False) in _rows(app), timeout=WAIT_MS)

    assert _rows(app) == [
        (f"Desktop · 127.0.0.1:{port}", False), (unreachable[:89] + "…", False),
        ("GPU box · 192.0.2.50:8080", False), ("Not contacted in offline mode", False),
    ]
    picker = app.window.model_picker
    assert picker.itemData(picker.findText(unreachable[:89] + "…"), Qt.ItemDataRole.ToolTipRole) == unreachable
    assert picker.placeholderText() == "No model yet"
    close(app)


def test_a_model_the_server_no_longer_has_is_refused_with_the_reason_and_nothing_changes(
    qtbot, paths, memory_keyring, scripted_server
) -> None:
    app = open_app(qtbot, paths)
    _add_server(app, scripted_server.url)

    app.window.load_model(RemoteModel("Desktop", "gone-model"))
    qtbot.waitUntil(lambda: app.window.error_banner.isVisible(), timeout=WAIT_MS)

    assert app.window.error_banner.label.text() == "Desktop has no model 'gone-model' (it lists: big-model)."
    assert app.window.model_status.text() == "No model loaded" and not app.window.load_progress.isVisible()
    close(app)


def test_renaming_the_server_of_the_loaded_model_says_so_at_once(qtbot, paths, memory_keyring, scripted_server) -> None:
    app = open_app(qtbot, paths)
    _add_server(app, scripted_server.url)
    app.window.load_model(RemoteModel("Desktop", "big-model"))
    qtbot.waitUntil(lambda: app.window.model_status.text() == "big-model on Desktop", timeout=WAIT_MS)

    app.core.model_servers.save(ModelServer("Workstation", scripted_server.url), replacing="Desktop")
    qtbot.waitUntil(lambda: app.window.error_banner.isVisible(), timeout=WAIT_MS)
    assert app.window.error_banner.label.text() == (
        "The model server Desktop was removed or renamed: choose its model again in the model list."
    )
    close(app)


def test_opening_the_model_list_asks_again_only_the_servers_whose_answer_is_old(
    qtbot, paths, memory_keyring, scripted_server, monkeypatch
) -> None:
    app = open_app(qtbot, paths)
    _add_server(app, scripted_server.url)
    qtbot.waitUntil(lambda: ("big-model", True) in _rows(app), timeout=WAIT_MS)
    scripted_server.script.models = TWO_MODELS
    picker = app.window.model_picker
    asked = len(scripted_server.headers)

    picker.showPopup()  # just answered: its answer stands
    picker.hidePopup()
    assert len(scripted_server.headers) == asked and ("small-model", True) not in _rows(app)

    monkeypatch.setattr(model_bar, "LISTING_FRESH_SECONDS", 0)  # every answer is old now
    picker.showPopup()
    qtbot.waitUntil(lambda: ("small-model", True) in _rows(app), timeout=WAIT_MS)
    picker.hidePopup()
    assert len(scripted_server.headers) == asked + 1
    close(app)


def test_offline_mode_switched_on_in_settings_stops_contacting_servers_on_other_computers(
    qtbot, paths, memory_keyring
) -> None:
    app = open_app(qtbot, paths)

    in_settings(app, _go_offline)
    _add_server(app, "http://192.0.2.50:8080/v1", "GPU box")  # never contacted: no test reaches the network

    assert app.core.model_servers.offline
    qtbot.waitUntil(lambda: ("Not contacted in offline mode", False) in _rows(app), timeout=WAIT_MS)
    close(app)


# ------------------------------------------------------------------------------------ chatting


@pytest.fixture
def server_elsewhere() -> Iterator[ScriptedModelServer]:
    """A scripted server on this machine's network address: to the app, another computer."""
    server = ScriptedModelServer(lan_address())
    yield server
    server.close()


def test_a_model_on_another_computer_shows_the_privacy_notice_and_where_replies_come_from(
    qtbot, paths, memory_keyring, server_elsewhere, tiny_model
) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    address = server_elsewhere.url.split("/")[2]
    _load_remote(qtbot, app, server_elsewhere)

    notice = window.composer.privacy_notice
    assert notice.isVisible() and window.empty_hint.isVisible()  # before the first message
    assert notice.label.text() == (
        f"Messages in this chat are sent to Desktop ({address}) and answered there: they leave this computer."
    )
    assert window.empty_hint.text() == "Ask anything. Replies come from Desktop, on another computer."
    assert window.model_status.text() == "big-model on Desktop"
    assert window.backend_status.text() == f"Remote · {address}"
    assert window.backend_status.toolTip() == f"Replies come from the model server Desktop at {address}: your messages are sent there."
    assert window.context_status.text() == "Context: 0 / 32,768 tokens"

    type_and_send(qtbot, app, "Hello there")
    wait_until_idle(qtbot, app)
    assert notice.isVisible()  # while the next message is written too
    assert server_elsewhere.requests[-1]["messages"][-1] == {"role": "user", "content": "Hello there"}

    window.load_model(tiny_model)
    qtbot.waitUntil(lambda: window.model_status.text() == "tiny-thinking", timeout=WAIT_MS)
    assert not notice.isVisible()  # a model file: nothing leaves this computer
    close(app)


def test_a_model_on_a_server_used_last_is_loaded_again_at_the_next_start_or_the_last_file_offered(
    qtbot, paths, memory_keyring, scripted_server, tiny_model
) -> None:
    app = open_app(qtbot, paths)
    app.window.load_model(tiny_model)
    qtbot.waitUntil(lambda: app.window.composer.send_button.isEnabled(), timeout=WAIT_MS)
    _load_remote(qtbot, app, scripted_server)
    close(app)

    app = open_app(qtbot, paths)
    assert app.window.last_model_if_present() == RemoteModel("Desktop", "big-model")
    app.window.load_model(app.window.last_model_if_present())  # as the app does at start
    qtbot.waitUntil(lambda: app.window.model_status.text() == "big-model on Desktop", timeout=WAIT_MS)
    close(app)

    scripted_server.close()  # the server is off the next time
    app = open_app(qtbot, paths)
    window = app.window
    window.load_model(window.last_model_if_present())
    qtbot.waitUntil(lambda: window.error_banner.isVisible(), timeout=WAIT_MS)
    assert "Desktop cannot be reached" in window.error_banner.label.text()
    (use_file,) = window.error_banner.action_buttons
    assert use_file.text() == "Use tiny-thinking"

    use_file.click()
    qtbot.waitUntil(lambda: window.model_status.text() == "tiny-thinking", timeout=WAIT_MS)
    close(app)


def test_a_reply_says_it_waits_for_the_server_until_its_first_text_comes(qtbot, paths, memory_keyring, scripted_server) -> None:
    first_chunk = threading.Event()
    scripted_server.script.hold_first_chunk = first_chunk
    app = open_app(qtbot, paths)
    _load_remote(qtbot, app, scripted_server)
    window = app.window

    type_and_send(qtbot, app, "Hello there")
    qtbot.waitUntil(lambda: len(window.transcript.message_widgets()) == 2, timeout=WAIT_MS)
    reply = window.transcript.message_widgets()[-1]
    qtbot.waitUntil(lambda: reply.waiting_label.isVisible(), timeout=WAIT_MS)

    assert reply.waiting_label.text() == "Waiting for Desktop…"
    assert window.speed_status.text() == "Waiting for Desktop…"
    first_chunk.set()
    wait_until_idle(qtbot, app)

    assert not reply.waiting_label.isVisible()
    assert reply.answer == "Hello from the server."
    close(app)


def test_a_reply_whose_connection_broke_shows_why_and_continue_finishes_it(qtbot, paths, memory_keyring, scripted_server) -> None:
    scripted_server.script.cut_after_chunks = 4  # the role, the reasoning's two pieces, "Hello "
    app = open_app(qtbot, paths)
    _load_remote(qtbot, app, scripted_server)
    window = app.window

    type_and_send(qtbot, app, "Hello there")
    wait_until_idle(qtbot, app)

    reply = window.transcript.message_widgets()[-1]
    stored = stored_messages(app)[-1]
    assert stored.state == MessageState.INTERRUPTED and stored.stats.stop_reason == StopReason.CONNECTION_LOST
    assert reply.answer == "Hello "
    assert reply.notice.isVisible() and reply.notice.text() == stored.error
    assert "Desktop" in reply.notice.text() and "before it was complete" in reply.notice.text()
    assert reply.notice.property("tone") == "problem"
    footer = reply.findChild(QLabel, "messageFooter")
    assert footer.text().startswith("Interrupted: Continue picks up where it stopped")
    for action in ("continue", "regenerate"):
        assert reply.action_buttons[action].isVisible()

    scripted_server.script.cut_after_chunks = None
    _click(qtbot, reply.action_buttons["continue"])
    wait_until_idle(qtbot, app)

    finished = stored_messages(app)[-1]
    assert finished.id == stored.id and finished.state == MessageState.COMPLETE
    assert finished.content.startswith("Hello ") and finished.content.endswith("server.")
    assert finished.error is None and not reply.notice.isVisible()  # the old reason went with it
    assert "Interrupted" not in footer.text() and not reply.action_buttons["continue"].isVisible()
    close(app)
