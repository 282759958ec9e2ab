"""A dismissible, non-blocking message above the transcript, with optional actions."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget


class Banner(QFrame):
    def __init__(self, object_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._callbacks: list[Callable[[], None]] = []
        self._buttons: list[QPushButton] = []
        close = QToolButton()
        close.setText("✕")
        close.setAccessibleName(self.tr("Dismiss message"))
        close.clicked.connect(self.hide)
        self._close = close
        layout = self._layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        layout.addWidget(self.label, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.action_button = self._add_button()  # the first action's button
        self.hide()

    def _add_button(self) -> QPushButton:
        button = QPushButton()
        index = len(self._buttons)
        button.clicked.connect(lambda: self._callbacks[index]())
        button.hide()
        self._layout.insertWidget(self._layout.indexOf(self._close), button, 0, Qt.AlignmentFlag.AlignTop)
        self._buttons.append(button)
        return button

    def show_message(
        self,
        text: str,
        action_text: str = "",
        action: Callable[[], None] | None = None,
        *,
        actions: list[tuple[str, Callable[[], None]]] | None = None,
    ) -> None:
        """Shows ``text`` with one button per action (``action_text`` and ``action``, or
        ``actions`` as (label, callback) pairs), replacing what was shown."""
        self.label.setText(text)
        if actions is None:
            actions = [(action_text, action)] if action is not None else []
        while len(self._buttons) < len(actions):
            self._add_button()
        self._callbacks = [callback for _, callback in actions]
        for index, button in enumerate(self._buttons):
            button.setText(actions[index][0] if index < len(actions) else "")
            button.setVisible(index < len(actions))
        self.show()

    @property
    def action_buttons(self) -> list[QPushButton]:
        """The buttons shown now, in order."""
        return [button for button in self._buttons if not button.isHidden()]
