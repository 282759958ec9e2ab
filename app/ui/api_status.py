"""The local API in the main window: the status-bar item that says whether it serves, how busy it
is, and why it is off when it should be on."""

from __future__ import annotations

from PySide6.QtWidgets import QToolButton, QWidget

from app.core.api.local_api_service import LocalApiState


class ApiStatusIndicator(QToolButton):
    """"API on", with "· 1 running, 2 queued" while programs use it; "API off" when it could not
    start (the reason in the tooltip); hidden while the API is off. Clicking it is the window's
    way to the request log."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("apiStatus")
        self.setAutoRaise(True)
        self.setAccessibleName(self.tr("Local API server"))
        self.show_state(LocalApiState(False))

    def show_state(self, state: LocalApiState) -> None:
        log_hint = self.tr("Click to see the request log.")
        if not state.running:
            self.setVisible(bool(state.problem))
            self.setText(self.tr("API off"))
            self.setToolTip(self.tr("The local API server could not start: %1").replace("%1", state.problem) + "\n" + log_hint)
            return
        busy = []
        if state.activity.running:
            busy.append(self.tr("%1 running").replace("%1", str(state.activity.running)))
        if state.activity.queued:
            busy.append(self.tr("%1 queued").replace("%1", str(state.activity.queued)))
        self.setText(" · ".join([self.tr("API on"), ", ".join(busy)] if busy else [self.tr("API on")]))
        access = self.tr("Programs must send the API key.") if state.needs_key else self.tr("No API key needed.")
        self.setToolTip(
            self.tr("Other programs can use the loaded model at %1").replace("%1", state.url) + "\n" + access + "\n" + log_hint
        )
        self.show()
