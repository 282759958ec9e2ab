"""The local API server in the window: turned on in Settings, shown in the status bar, its
requests in a log; driven over real HTTP against the real tiny model (pytest-qt, offscreen)."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import openai
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QLineEdit

from app.core.api.local_api_service import api_config, network_addresses
from app.core.engines.llama.self_test_model import THINKING_ANSWER
from app.core.profile.app_paths import AppPaths
from app.core.profile.secret_store import API_KEY_USERNAME, KEYRING_SERVICE
from app.core.profile.settings import Settings, save_settings
from app.main import DesktopApp
from app.ui.api_request_log_dialog import ApiRequestLogDialog
from app.ui.settings_dialog import SettingsDialog
from tests.hub_fixtures import MemoryKeyring
from tests.ui.app_driver import WAIT_MS, close, in_settings, load, open_app, stored, titles, type_and_send, wait_until_idle


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return AppPaths.under(tmp_path / "profile")


def _free_port() -> int:
    """A port nobody listens on now (the system picks it; the socket is closed again)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _turn_on(dialog: SettingsDialog, port: int) -> None:
    dialog.api_enabled.setChecked(True)
    dialog.api_port.setValue(port)


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}/v1"


def _wait_until_on(qtbot, app: DesktopApp) -> None:
    status = app.window.api_status
    qtbot.waitUntil(lambda: status.isVisible() and status.text() == "API on", timeout=WAIT_MS)


def _stored_conversations(app: DesktopApp) -> list:
    return stored(app, lambda store: store.list_conversations())


@contextmanager
def _endless_streams() -> Iterator[Callable[[int], socket.socket]]:
    """Opens streaming requests that this model answers with an endless "abc…" (thinking off);
    leaving the block closes their connections, which cancels them."""
    connections: list[socket.socket] = []

    def open_stream(port: int) -> socket.socket:
        body = json.dumps({
            "messages": [{"role": "user", "content": "Count forever"}],
            "stream": True,
            "chat_template_kwargs": {"enable_thinking": False},
        }).encode()
        connection = socket.create_connection(("127.0.0.1", port))
        connection.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
        connections.append(connection)
        return connection

    try:
        yield open_stream
    finally:
        for connection in connections:
            connection.close()


def test_turning_the_api_on_in_settings_serves_the_loaded_model_on_localhost(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    load(qtbot, app, tiny_model)
    assert not window.api_status.isVisible()  # off by default
    port = _free_port()
    shown: list[str] = []

    def turn_on(dialog: SettingsDialog) -> None:
        assert not dialog.api_enabled.isChecked() and not dialog.api_port.isEnabled()
        _turn_on(dialog, port)
        shown.append(dialog.api_address.text())
        qtbot.mouseClick(dialog.api_copy_address, Qt.MouseButton.LeftButton)
        dialog.accept()

    in_settings(app, turn_on)
    assert shown == [_url(port)] and QGuiApplication.clipboard().text() == _url(port)
    _wait_until_on(qtbot, app)
    assert _url(port) in window.api_status.toolTip() and "No API key needed" in window.api_status.toolTip()
    stored_settings = json.loads(paths.settings_file.read_text())
    assert stored_settings["api_server_enabled"] is True and stored_settings["api_server_port"] == port

    client = openai.OpenAI(base_url=_url(port), api_key="not-needed")
    assert [model.id for model in client.models.list()] == [tiny_model.stem]
    reply = client.chat.completions.create(model=tiny_model.stem, messages=[{"role": "user", "content": "Why is the sky blue?"}])
    assert reply.choices[0].message.content == THINKING_ANSWER
    assert titles(app) == [] and _stored_conversations(app) == []  # not the user's chat history

    in_settings(app, lambda dialog: (dialog.api_enabled.setChecked(False), dialog.accept()))
    qtbot.waitUntil(lambda: not window.api_status.isVisible(), timeout=WAIT_MS)
    assert not app.core.api.state.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(_url(port) + "/models")
    close(app)


def test_the_api_key_is_kept_in_the_keyring_and_never_in_the_settings_file(
    qtbot, paths, tiny_model, memory_keyring: MemoryKeyring, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    app = open_app(qtbot, paths)
    load(qtbot, app, tiny_model)
    port = _free_port()
    keys: list[str] = []

    def turn_on_with_a_new_key(dialog: SettingsDialog) -> None:
        _turn_on(dialog, port)
        assert dialog.api_key_edit.echoMode() == QLineEdit.EchoMode.Password
        qtbot.mouseClick(dialog.api_generate_key, Qt.MouseButton.LeftButton)
        assert dialog.api_key_edit.echoMode() == QLineEdit.EchoMode.Normal  # shown, to be copied
        keys.append(dialog.api_key_edit.text())
        dialog.accept()

    in_settings(app, turn_on_with_a_new_key)
    [key] = keys
    assert key.startswith("qlc-") and len(key) > 40
    _wait_until_on(qtbot, app)
    assert "must send the API key" in app.window.api_status.toolTip()
    assert memory_keyring.passwords == {(KEYRING_SERVICE, API_KEY_USERNAME): key}
    assert key not in paths.settings_file.read_text()

    assert httpx.get(_url(port) + "/models").status_code == 401
    assert httpx.get(_url(port) + "/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(_url(port) + "/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200

    prefilled: list[str] = []
    in_settings(app, lambda dialog: prefilled.append(dialog.api_key_edit.text()))  # and cancelled
    assert prefilled == [key]
    close(app)
    assert key not in caplog.text and key not in paths.settings_file.read_text()


def test_an_api_left_on_starts_with_the_app_and_still_asks_for_its_key(
    qtbot, paths, memory_keyring: MemoryKeyring
) -> None:
    port = _free_port()
    save_settings(Settings(api_server_enabled=True, api_server_port=port), paths.settings_file)
    memory_keyring.passwords[(KEYRING_SERVICE, API_KEY_USERNAME)] = "qlc-kept-from-last-time"
    app = open_app(qtbot, paths)
    _wait_until_on(qtbot, app)
    assert httpx.get(_url(port) + "/models").status_code == 401
    answer = httpx.get(_url(port) + "/models", headers={"Authorization": "Bearer qlc-kept-from-last-time"})
    assert answer.status_code == 200 and answer.json()["data"] == []  # no model loaded yet
    close(app)


def test_allowing_other_computers_without_a_key_is_refused_with_a_reason(qtbot, paths) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    port = _free_port()
    reason = api_config(enabled=True, port=port, allow_network=True, api_key="", allowed_origins=()).problem()
    assert reason  # the rule is the core's; the dialog only shows it
    seen: list[tuple] = []

    def allow_the_network_then_remove_the_key(dialog: SettingsDialog) -> None:
        _turn_on(dialog, port)
        qtbot.mouseClick(dialog.api_allow_network, Qt.MouseButton.LeftButton)
        generated = dialog.api_key_edit.text()  # allowing other computers made a key at once
        assert not dialog.api_problem.isVisible()
        addresses = network_addresses()  # where the others reach this computer, said as URLs
        assert all(f"http://{address}:{port}/v1" in dialog.api_address_note.text() for address in addresses)
        assert addresses or "no network address" in dialog.api_address_note.text()
        dialog.api_key_edit.clear()
        dialog.accept()
        seen.append((generated, dialog.isVisible(), dialog.api_problem.isVisible(), dialog.api_problem.text()))
        assert dialog.focusWidget() is dialog.api_key_edit

    in_settings(app, allow_the_network_then_remove_the_key)
    [(generated, still_open, problem_shown, problem)] = seen
    assert generated.startswith("qlc-")
    assert still_open and problem_shown and problem == reason
    assert not window._settings.api_server_enabled and not window._settings.api_allow_network
    assert not paths.settings_file.exists() or '"api_server_enabled": true' not in paths.settings_file.read_text()
    assert not app.core.api.state.running and not window.api_status.isVisible()
    close(app)


def _serving(qtbot, paths: AppPaths, model: Path) -> tuple[DesktopApp, int]:
    """The app with ``model`` loaded and the API turned on in Settings, and the API's port."""
    app = open_app(qtbot, paths)
    load(qtbot, app, model)
    port = _free_port()
    in_settings(app, lambda dialog: (_turn_on(dialog, port), dialog.accept()))
    _wait_until_on(qtbot, app)
    return app, port


def test_the_status_bar_counts_running_and_queued_api_requests(qtbot, paths, endless_model) -> None:
    app, port = _serving(qtbot, paths, endless_model)
    status = app.window.api_status
    with _endless_streams() as open_stream:
        open_stream(port)
        qtbot.waitUntil(lambda: status.text() == "API on · 1 running", timeout=WAIT_MS)
        open_stream(port)
        qtbot.waitUntil(lambda: status.text() == "API on · 1 running, 1 queued", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: status.text() == "API on", timeout=WAIT_MS)  # both cancelled as their clients left
    assert app.core.api.state.activity.running == app.core.api.state.activity.queued == 0
    close(app)


def test_a_question_asked_while_an_api_reply_is_written_says_it_waits_then_is_answered(
    qtbot, paths, endless_model
) -> None:
    app, port = _serving(qtbot, paths, endless_model)
    status = app.window.api_status
    with _endless_streams() as open_stream:
        open_stream(port)
        qtbot.waitUntil(lambda: status.text() == "API on · 1 running", timeout=WAIT_MS)
        type_and_send(qtbot, app, "My own question")
        activity = app.window.speed_status
        qtbot.waitUntil(lambda: activity.text().startswith("Waiting for a reply to another program"), timeout=WAIT_MS)
    wait_until_idle(qtbot, app)  # its client left, so the API reply ended and the question ran
    (question, reply) = stored(app, lambda store: store.messages(store.list_conversations()[0].id))
    assert (question.content, reply.content) == ("My own question", THINKING_ANSWER)
    close(app)


def _request_log_dialogs() -> list[ApiRequestLogDialog]:
    return [widget for widget in QApplication.topLevelWidgets() if isinstance(widget, ApiRequestLogDialog) and widget.isVisible()]


def _rows(dialog: ApiRequestLogDialog) -> list[dict[str, str]]:
    model = dialog.model
    headers = [model.headerData(column, Qt.Orientation.Horizontal) for column in range(model.columnCount())]
    return [
        {headers[column]: model.data(model.index(row, column)) for column in range(model.columnCount())}
        for row in range(model.rowCount())
    ]


def test_the_request_log_lists_api_requests_without_their_content(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    load(qtbot, app, tiny_model)
    port = _free_port()
    in_settings(app, lambda dialog: (_turn_on(dialog, port), dialog.accept()))
    _wait_until_on(qtbot, app)
    secret = "Meet me at the old mill at midnight"
    client = openai.OpenAI(base_url=_url(port), api_key="not-needed")
    client.chat.completions.create(
        model=tiny_model.stem, messages=[{"role": "user", "content": secret}], max_tokens=5,
        extra_body={"chat_template_kwargs": {"enable_thinking": False}},
    )
    refused = httpx.post(_url(port) + "/chat/completions", json={"messages": [{"role": "user", "content": secret}], "n": 2})
    assert refused.status_code == 400

    qtbot.mouseClick(app.window.api_status, Qt.MouseButton.LeftButton)
    [dialog] = _request_log_dialogs()
    assert not dialog.empty_note.isVisible()
    newest, answered = _rows(dialog)
    assert (newest["Request"], newest["Status"], newest["Prompt tokens"]) == ("POST /v1/chat/completions", "400", "")
    assert newest["Problem"] == refused.json()["error"]["message"]
    assert (answered["Request"], answered["Status"], answered["Reply tokens"], answered["Problem"]) == (
        "POST /v1/chat/completions", "200", "5", ""
    )
    assert int(answered["Prompt tokens"]) > 0 and answered["Client"].startswith("127.0.0.1:")

    streamed = client.chat.completions.create(
        model=tiny_model.stem, messages=[{"role": "user", "content": secret}], max_tokens=3, stream=True,
        extra_body={"chat_template_kwargs": {"enable_thinking": False}},
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices) == "abc"
    qtbot.waitUntil(lambda: dialog.model.rowCount() == 3, timeout=WAIT_MS)  # live, while it is open
    assert _rows(dialog)[0]["Request"] == "POST /v1/chat/completions · streamed"
    model = dialog.model
    everything_shown = [
        str(model.data(model.index(row, column), role))
        for row in range(model.rowCount()) for column in range(model.columnCount())
        for role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole)
    ]
    assert not any("mill" in text or "midnight" in text for text in everything_shown)
    assert titles(app) == [] and _stored_conversations(app) == []
    close(app)


def test_a_port_in_use_is_reported_and_the_api_stays_off(qtbot, paths) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    port = _free_port()
    taken = socket.socket()
    taken.bind(("127.0.0.1", port))
    taken.listen()
    try:
        in_settings(app, lambda dialog: (_turn_on(dialog, port), dialog.accept()))
        status = window.api_status
        qtbot.waitUntil(lambda: status.isVisible() and status.text() == "API off", timeout=WAIT_MS)
        assert f"Port {port} is already used by another program" in status.toolTip()
        assert window.error_banner.isVisible() and f"Port {port} is already used" in window.error_banner.label.text()
        assert not app.core.api.state.running
    finally:
        taken.close()

    # The banner leads back to Settings, where the reason is shown; saving again tries again.
    reasons: list[str] = []

    def save_again(dialog: SettingsDialog) -> None:
        reasons.append(dialog.api_problem.text())
        dialog.accept()

    [settings_button] = window.error_banner.action_buttons
    in_settings(app, save_again, lambda: qtbot.mouseClick(settings_button, Qt.MouseButton.LeftButton))
    assert reasons and f"Port {port} is already used" in reasons[0]
    _wait_until_on(qtbot, app)
    assert httpx.get(_url(port) + "/models").status_code == 200
    close(app)
