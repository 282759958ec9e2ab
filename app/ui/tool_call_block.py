"""A tool call in a reply: a block that folds open to show what the model asked for (the
arguments) and what the tool answered (the result), and, while the call waits for the person,
the three answers they may give.

The block only shows what the chat session reports (the call, its approval request, that it
runs, its result); the answers go back through ``sig_answered``.
"""

from __future__ import annotations

import json
import math

from PySide6.QtCore import QCoreApplication, QEvent, Qt, Signal
from PySide6.QtGui import QFontDatabase, QTextOption
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.chat.chat_events import ToolApproval
from app.core.domain.conversations import ToolCallPart, ToolOutcome, ToolResultPart

# The tallest the arguments or the result grow before they scroll inside the block: a tool may
# answer 16,000 characters (the core's bound), which would push the reply far down otherwise.
MAX_TEXT_HEIGHT = 220
# Text one view lays out at most: a result read from an imported file may be far longer than
# the core lets a tool answer; laying it out costs ~1 ms per KB on the GUI thread.
MAX_SHOWN_CHARACTERS = 20_000


def _tr(text: str) -> str:
    return QCoreApplication.translate("ToolCallBlock", text)


def outcome_text(result: ToolResultPart) -> str:
    """How a call ended, as its header says it: "Allowed · 0.05 s", "Denied"…"""
    seconds = f"{result.duration_s:.2f} s"
    texts = {
        ToolOutcome.ALLOWED: _tr("Allowed · %1").replace("%1", seconds),
        ToolOutcome.ALWAYS_ALLOWED: _tr("Always allowed · %1").replace("%1", seconds),
        ToolOutcome.DENIED: _tr("Denied"),
        ToolOutcome.FAILED: _tr("Failed · %1").replace("%1", seconds) if result.duration_s else _tr("Failed"),
        ToolOutcome.TIMED_OUT: _tr("Timed out · %1").replace("%1", seconds),
        ToolOutcome.STOPPED: _tr("Stopped"),
        ToolOutcome.UNAVAILABLE: _tr("Not run"),
    }
    if result.outcome in texts:
        return texts[ToolOutcome(result.outcome)]
    return _tr("Failed") if result.is_error else _tr("Done")  # a file from before approvals


# The tone of a finished call, for its colour: the person should see at a glance what did not run.
_PROBLEM_OUTCOMES = {ToolOutcome.DENIED, ToolOutcome.FAILED, ToolOutcome.TIMED_OUT, ToolOutcome.UNAVAILABLE}


def _tone(result: ToolResultPart) -> str:
    if result.outcome == ToolOutcome.STOPPED:
        return "stopped"
    if result.outcome in _PROBLEM_OUTCOMES or (not result.outcome and result.is_error):
        return "problem"
    return "done"


def _bounded(text: str) -> str:
    hidden = len(text) - MAX_SHOWN_CHARACTERS
    if hidden <= 0:
        return text
    return text[:MAX_SHOWN_CHARACTERS] + _tr("\n[… %1 more characters not shown]").replace("%1", f"{hidden:,}")


class ToolText(QTextEdit):
    """Selectable monospace text, wrapped, as tall as its lines up to ``MAX_TEXT_HEIGHT``; longer
    text scrolls inside it."""

    def __init__(self, accessible_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("toolText")
        self.setReadOnly(True)
        self.setAcceptRichText(False)
        self.setAccessibleName(accessible_name)
        self.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().setDocumentMargin(6)
        self.document().setUndoRedoEnabled(False)  # never edited: no undo history to keep
        self._text = ""

    @property
    def text(self) -> str:
        """The text shown, or to be shown once the view is."""
        return self._text

    def show_text(self, text: str) -> None:
        self._text = _bounded(text)
        if self.isVisible():
            self._lay_out()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        self._lay_out()

    def _lay_out(self) -> None:
        # A folded block's text is laid out when it opens, not before: ~1 ms per KB, and a chat
        # opened with many results would pay for every one it never shows.
        if self.toPlainText() != self._text:
            self.setPlainText(self._text)
        self._fit_height()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        if self.isVisible():
            self._fit_height()

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit_height()

    def wheelEvent(self, event) -> None:  # noqa: N802 (Qt API)
        if self.verticalScrollBar().maximum() == 0:
            event.ignore()  # nothing to scroll here: the transcript scrolls
            return
        super().wheelEvent(event)

    def _fit_height(self) -> None:
        document = self.document()
        document.setTextWidth(self.viewport().width())
        frame = 2 * self.frameWidth()
        self.setFixedHeight(min(MAX_TEXT_HEIGHT, math.ceil(document.size().height()) + frame))


class ToolCallBlock(QFrame):
    """One call: a header (tool, server, state) that opens and closes the details.

    Open while the call waits for approval; once it has its result it folds away, unless the
    person opened or closed it by hand.
    """

    sig_answered = Signal(str, object)
    """The person answered the call's approval request: (call id, ``ToolApproval``)."""
    sig_layout_changed = Signal()
    """The block opened, closed or changed its text: its height may have changed."""

    def __init__(self, call: ToolCallPart, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("toolCall")
        self.call = call
        self.result: ToolResultPart | None = None
        self._user_toggled = False

        self.toggle = QToolButton()
        self.toggle.setObjectName("toolCallToggle")
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setText(call.name)
        self.toggle.toggled.connect(self._set_expanded)
        # A click means the person decides from now on; automatic folding stops.
        self.toggle.clicked.connect(lambda: setattr(self, "_user_toggled", True))
        self.server_label = QLabel()
        self.server_label.setObjectName("toolCallServer")
        self.server_label.setToolTip(self.tr("Where the tool comes from: the app itself, or the MCP server that provides it"))
        self.state_label = QLabel()
        self.state_label.setObjectName("toolCallState")
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.setSpacing(8)
        header.addWidget(self.toggle)
        header.addWidget(self.server_label)
        header.addStretch(1)
        header.addWidget(self.state_label)

        self.description_label = QLabel()
        self.description_label.setObjectName("secondaryText")
        self.description_label.setWordWrap(True)
        self.description_label.setTextFormat(Qt.TextFormat.PlainText)  # a server's text, never markup
        self.description_label.hide()
        arguments_caption = QLabel(self.tr("Arguments"))
        arguments_caption.setObjectName("toolCallCaption")
        self.arguments_view = ToolText(self.tr("Arguments of %1").replace("%1", call.name))
        self.arguments_view.show_text(
            json.dumps(call.arguments, indent=2, ensure_ascii=False) if call.arguments else self.tr("(none)")
        )
        self._result_caption = QLabel(self.tr("Result"))
        self._result_caption.setObjectName("toolCallCaption")
        self.result_view = ToolText(self.tr("Result of %1").replace("%1", call.name))
        self._result_caption.hide()
        self.result_view.hide()

        self.approval = QWidget()
        self.approval.setObjectName("toolApproval")
        question = QLabel(self.tr("The model wants to run this tool. Nothing runs until you answer."))
        question.setWordWrap(True)
        self.allow_once_button = QPushButton(self.tr("Allow once"))
        self.allow_once_button.setObjectName("allowToolButton")
        self.always_allow_button = QPushButton(self.tr("Always allow %1").replace("%1", call.name))
        self.always_allow_button.setToolTip(self.tr(
            "Run %1 without asking from now on, in every chat (Settings › Tools lists what is always allowed)"
        ).replace("%1", call.name))
        self.deny_button = QPushButton(self.tr("Deny"))
        self.deny_button.setToolTip(self.tr("Do not run it; the model is told that you said no"))
        for button, approval in (
            (self.allow_once_button, ToolApproval.ALLOW_ONCE),
            (self.always_allow_button, ToolApproval.ALWAYS_ALLOW),
            (self.deny_button, ToolApproval.DENY),
        ):
            button.setAutoDefault(False)  # Enter in the composer never answers for the person
            button.clicked.connect(lambda _checked=False, answer=approval: self._answer(answer))
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.allow_once_button)
        buttons.addWidget(self.always_allow_button)
        buttons.addWidget(self.deny_button)
        buttons.addStretch(1)
        approval_layout = QVBoxLayout(self.approval)
        approval_layout.setContentsMargins(0, 4, 0, 0)
        approval_layout.addWidget(question)
        approval_layout.addLayout(buttons)
        self.approval.hide()

        self.details = QWidget()
        details_layout = QVBoxLayout(self.details)
        details_layout.setContentsMargins(0, 4, 0, 0)
        details_layout.setSpacing(4)
        details_layout.addWidget(self.description_label)
        details_layout.addWidget(arguments_caption)
        details_layout.addWidget(self.arguments_view)
        details_layout.addWidget(self._result_caption)
        details_layout.addWidget(self.result_view)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 8)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(self.details)
        layout.addWidget(self.approval)
        self.show_not_run()
        self._set_expanded(False)

    # ------------------------------------------------------------------------------- states

    @property
    def state_text(self) -> str:
        return self.state_label.text()

    @property
    def is_expanded(self) -> bool:
        return self.toggle.isChecked()

    @property
    def waits_for_answer(self) -> bool:
        """The approval question and its buttons are shown."""
        return not self.approval.isHidden()

    def show_not_run(self) -> None:
        """The call has no result and none is coming: its turn ended before it was answered."""
        self.approval.hide()
        self._show_state(self.tr("Not run"), "stopped")

    def show_queued(self) -> None:
        """The call waits for the calls before it to be answered."""
        if self.result is None:
            self._show_state(self.tr("Waiting…"), "running")

    def show_approval(self, server: str, description: str) -> None:
        """The call waits for the person: the block opens on the question and its answers."""
        self._show_server(server)
        self.description_label.setText(description)
        self.description_label.setVisible(bool(description))
        self.approval.show()
        self._show_state(self.tr("Waiting for your approval"), "waiting")
        self._fold(expanded=True)

    def show_running(self, server: str) -> None:
        self.approval.hide()
        self._show_server(server)
        self._show_state(self.tr("Running…"), "running")

    def show_result(self, result: ToolResultPart) -> None:
        """The call ended (ran, or was answered without running): the block folds away."""
        self.result = result
        self.approval.hide()
        self._show_server(result.server)
        self._result_caption.show()
        self.result_view.show()
        self.result_view.show_text(result.text)
        self._show_state(outcome_text(result), _tone(result))
        self._fold(expanded=False)

    # ------------------------------------------------------------------------------ helpers

    def _answer(self, approval: ToolApproval) -> None:
        self.approval.hide()  # answered: the buttons go at once, the state follows the session
        self.sig_layout_changed.emit()
        self.sig_answered.emit(self.call.call_id, approval)

    def _show_server(self, server: str) -> None:
        if server:
            self.server_label.setText(server)

    def _show_state(self, text: str, tone: str) -> None:
        self.state_label.setText(text)
        self.toggle.setAccessibleName(self.tr("Tool call %1: %2").replace("%1", self.call.name).replace("%2", text))
        for widget in (self, self.state_label):
            widget.setProperty("tone", tone)
            widget.style().unpolish(widget)
            widget.style().polish(widget)
        self.sig_layout_changed.emit()

    def _fold(self, *, expanded: bool) -> None:
        if not self._user_toggled or (expanded and not self.toggle.isChecked()):
            self.toggle.setChecked(expanded)

    def _set_expanded(self, expanded: bool) -> None:
        self.details.setVisible(expanded)
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.sig_layout_changed.emit()
