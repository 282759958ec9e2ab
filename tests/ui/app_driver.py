"""Driving the real app in tests: open it, wait on what the user would see, read what it stored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from app.core.domain.generation import LoadSettings
from app.core.profile.app_paths import AppPaths
from app.main import DesktopApp, build_app
from app.ui.settings_dialog import SettingsDialog

WAIT_MS = 30_000


def open_app(qtbot, paths: AppPaths) -> DesktopApp:
    """The whole app on ``paths``, its window shown with its first conversation on screen."""
    app = build_app(paths)
    qtbot.addWidget(app.window)
    app.window.show()
    qtbot.waitUntil(lambda: app.window.is_ready, timeout=WAIT_MS)
    return app


def close(app: DesktopApp) -> None:
    app.window.close()
    assert not app.core.engine.thread.is_alive() and not app.core.store.thread.is_alive()


def load(qtbot, app: DesktopApp, model: Path, *, projector: Path | None = None) -> None:
    """Loads ``model`` as the window does; with its vision ``projector``, through the engine
    host, whose events the window shows as for any load."""
    if projector is None:
        app.window.load_model(model)
    else:
        app.core.engine.load_model(model, LoadSettings(projector=projector))
    qtbot.waitUntil(lambda: app.window.composer.send_button.isEnabled(), timeout=WAIT_MS)


def type_and_send(qtbot, app: DesktopApp, text: str) -> None:
    composer = app.window.composer
    composer.edit.setFocus()
    qtbot.keyClicks(composer.edit, text)
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)


def send_and_wait(qtbot, app: DesktopApp, text: str) -> None:
    type_and_send(qtbot, app, text)
    assert app.window.is_generating
    wait_until_idle(qtbot, app)


def wait_until_idle(qtbot, app: DesktopApp) -> None:
    qtbot.waitUntil(lambda: not app.window.is_generating, timeout=WAIT_MS)


def stored(app: DesktopApp, job):
    """What ``job(store)`` returns, run where the store lives (after everything queued before)."""
    return app.core.store.submit(job).result(WAIT_MS / 1000)


def stored_messages(app: DesktopApp, conversation_id: int | None = None):
    conversation_id = app.window.conversation_id if conversation_id is None else conversation_id
    return stored(app, lambda store: store.messages(conversation_id))


def shown_texts(app: DesktopApp) -> list[str]:
    return [widget.answer for widget in app.window.transcript.message_widgets()]


def titles(app: DesktopApp) -> list[str]:
    return [conversation.title for conversation in app.window.sidebar.model.conversations()]


def select(app: DesktopApp, conversation_id: int) -> None:
    """Clicks the conversation in the sidebar."""
    sidebar = app.window.sidebar
    sidebar.list_view.setCurrentIndex(sidebar.model.index(sidebar.model.row_of(conversation_id)))


def in_settings(app: DesktopApp, change: Callable[[SettingsDialog], None], open_settings: Callable[[], None] | None = None) -> None:
    """Opens Settings (``open_settings``, else the window's command) and runs ``change(dialog)``
    while it is open; ``change`` saves or cancels. The dialog never outlives a failed check."""

    def act() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, SettingsDialog):
            QTimer.singleShot(10, act)
            return
        try:
            change(dialog)
        finally:
            if dialog.isVisible():
                dialog.reject()

    QTimer.singleShot(0, act)
    (open_settings or app.window.show_settings)()
