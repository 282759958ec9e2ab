"""The message composer: a text box where Enter sends and Shift+Enter starts a new line."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from app.ui.reading_column import MAX_READING_WIDTH, SIDE_MARGIN


class MessageEdit(QPlainTextEdit):
    sig_submit = Signal()
    """Enter was pressed without Shift: send the message."""

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        is_enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if is_enter and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.sig_submit.emit()
            return
        super().keyPressEvent(event)


class ComposerWidget(QWidget):
    """Text box, "Think" switch and a Send button that turns into Stop while a reply streams."""

    sig_send = Signal(str)
    """The user sends a message: its text (never empty)."""
    sig_stop = Signal()
    """The user asks the streaming reply to stop."""
    sig_cancel_edit = Signal()
    """The user gives up editing a question (Cancel, or Esc)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("composer")
        self.edit = MessageEdit()
        self.edit.setObjectName("composerEdit")
        self.edit.setPlaceholderText(self.tr("Message Qwen…  (Enter to send, Shift+Enter for a new line)"))
        self.edit.setAccessibleName(self.tr("Message"))
        self.edit.setTabChangesFocus(True)
        self.edit.setFixedHeight(84)
        self.edit.sig_submit.connect(self._submit)

        self.thinking_switch = QCheckBox(self.tr("Think before answering"))
        self.thinking_switch.setToolTip(
            self.tr("Let the model reason step by step first: slower, better for hard questions.")
        )
        self.send_button = QPushButton(self.tr("Send"))
        self.send_button.setObjectName("sendButton")
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self._on_button)

        self.editing_label = QLabel(self.tr("Editing a question: sending keeps the old version as an alternative."))
        self.editing_label.setObjectName("secondaryText")
        self.editing_label.setWordWrap(True)
        self.editing_label.hide()
        self.cancel_edit_button = QPushButton(self.tr("Cancel"))
        self.cancel_edit_button.setToolTip(self.tr("Stop editing; the question stays as it was (Esc)"))
        self.cancel_edit_button.clicked.connect(self.sig_cancel_edit)
        self.cancel_edit_button.hide()
        buttons = QHBoxLayout()
        buttons.addWidget(self.thinking_switch)
        buttons.addWidget(self.editing_label, 1)
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_edit_button)
        buttons.addWidget(self.send_button)
        # Lined up with the transcript's reading column: as wide as it at most, centred. A
        # maximum width rather than margins, so a wide window can still be made small at once.
        column = QWidget()
        column.setMaximumWidth(MAX_READING_WIDTH)
        column_layout = QVBoxLayout(column)
        column_layout.setContentsMargins(0, 0, 0, 0)
        column_layout.addWidget(self.edit)
        column_layout.addLayout(buttons)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(SIDE_MARGIN, 8, SIDE_MARGIN, 16)
        layout.addWidget(column)
        self._generating = False
        self.set_ready(False, self.tr("Open a model to start chatting."))

    def set_editing(self, editing: bool) -> None:
        self.editing_label.setVisible(editing)
        self.cancel_edit_button.setVisible(editing)
        if not editing:
            self.edit.clear()

    def set_ready(self, ready: bool, reason: str = "") -> None:
        """Whether a message can be sent now; ``reason`` explains why not, on the button."""
        self.send_button.setEnabled(ready or self._generating)
        self.send_button.setToolTip("" if ready else reason)

    def set_generating(self, generating: bool) -> None:
        self._generating = generating
        self.send_button.setText(self.tr("Stop") if generating else self.tr("Send"))
        self.send_button.setToolTip(self.tr("Stop the reply (Esc)") if generating else self.tr("Send (Enter)"))
        self.send_button.setEnabled(True)

    def _on_button(self) -> None:
        if self._generating:
            self.sig_stop.emit()
        else:
            self._submit()

    def _submit(self) -> None:
        text = self.edit.toPlainText().strip()
        if not text or self._generating or not self.send_button.isEnabled():
            return
        self.edit.clear()
        self.sig_send.emit(text)
