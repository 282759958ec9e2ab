"""The message composer: a text box where Enter sends and Shift+Enter starts a new line.

A paste or drop is measured before it is inserted: text that would make the message longer than
``MAX_MESSAGE_CHARACTERS`` is refused with a note, and nothing is inserted. Lines longer than
``LONG_LINE_CHARS`` are wrapped anywhere rather than at word boundaries: Qt's search for a word
boundary in a long run without one grows with the square of its length (a 200,000-character
line took 0.8 s to lay out; bench/README.md, "Hostile content").
"""

from __future__ import annotations

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QKeyEvent, QTextOption
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.domain.conversations import MAX_MESSAGE_CHARACTERS
from app.ui.reading_column import MAX_READING_WIDTH, SIDE_MARGIN

# Lines longer than this wrap anywhere: word-boundary wrapping of an unbroken run costs ~4 ms at
# this length and grows with its square.
LONG_LINE_CHARS = 10_000


def _has_long_line(text: str) -> bool:
    return len(text) > LONG_LINE_CHARS and any(len(line) > LONG_LINE_CHARS for line in text.split("\n"))


def _wrap_mode(text: str) -> QTextOption.WrapMode:
    """At word boundaries, as the eye expects, unless a line is long enough to make that slow."""
    return QTextOption.WrapMode.WrapAnywhere if _has_long_line(text) else QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere


class MessageEdit(QPlainTextEdit):
    sig_submit = Signal()
    """Enter was pressed without Shift: send the message."""
    sig_paste_refused = Signal(int)
    """A paste or drop was refused, nothing inserted: the length the message would have had."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.textChanged.connect(self._fit_wrapping)

    def insertFromMimeData(self, source: QMimeData) -> None:  # noqa: N802 (Qt API)
        """Pastes and drops: measured before anything is inserted or laid out."""
        text = source.text() if source.hasText() else ""
        cursor = self.textCursor()
        replaced = cursor.selectionEnd() - cursor.selectionStart()
        resulting = self.document().characterCount() - 1 - replaced + len(text)
        if resulting > MAX_MESSAGE_CHARACTERS:
            self.sig_paste_refused.emit(resulting)
            return
        if _has_long_line(text):
            self.setWordWrapMode(QTextOption.WrapMode.WrapAnywhere)  # before Qt lays the line out
        super().insertFromMimeData(source)

    def setPlainText(self, text: str) -> None:  # noqa: N802 (Qt API)
        """A question put back for editing: wrapped to suit before Qt lays it out."""
        self.setWordWrapMode(_wrap_mode(text))
        super().setPlainText(text)

    def _fit_wrapping(self) -> None:
        if self.document().characterCount() <= LONG_LINE_CHARS:
            mode = QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere  # the usual short message
        else:
            mode = _wrap_mode(self.toPlainText())
        if self.wordWrapMode() != mode:
            self.setWordWrapMode(mode)

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
        self.edit.sig_paste_refused.connect(self._show_paste_refused)
        self.edit.textChanged.connect(self._hide_paste_refused)

        self.paste_refused_label = QLabel()
        self.paste_refused_label.setObjectName("warningText")
        self.paste_refused_label.setWordWrap(True)
        self.paste_refused_label.hide()

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
        column_layout.addWidget(self.paste_refused_label)
        column_layout.addLayout(buttons)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(SIDE_MARGIN, 8, SIDE_MARGIN, 16)
        layout.addWidget(column)
        self._generating = False
        self.set_ready(False, self.tr("Open a model to start chatting."))

    def _show_paste_refused(self, length: int) -> None:
        self.paste_refused_label.setText(
            self.tr("Not pasted: the message would be %1 characters long, and a message holds at most %2.")
            .replace("%1", f"{length:,}")
            .replace("%2", f"{MAX_MESSAGE_CHARACTERS:,}")
        )
        self.paste_refused_label.show()

    def _hide_paste_refused(self) -> None:
        self.paste_refused_label.hide()  # the user moved on: the note no longer applies

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
