"""The conversation transcript: user and assistant messages, their pictures, streaming text,
thinking blocks, and the tool calls of replies with their results.

A ``tool`` message (a call's result) is shown in its call's block in the reply before it, not as
a message of its own; only a result whose call is not on screen gets a row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.domain.conversations import ImagePart, Message, MessageState, ToolCallPart, ToolResultPart
from app.core.domain.generation import GenerationStats, StopReason
from app.ui.icons import themed_icon
from app.ui.image_display import FlowLayout, ImageThumbnail, ThumbnailLoader
from app.ui.markdown_view import MarkdownView
from app.ui.reading_column import side_margin
from app.ui.tool_call_block import ToolCallBlock


# Plain text a label lays out at most: Qt wraps and lays a label out whole, on the GUI thread, at
# ~1 ms per KB (bench/README.md, "Hostile content"), so 32,000 characters keep the window's longest
# stall near 30 ms. A longer message (an import can hold megabytes) shows this much; Copy copies
# all of it.
MAX_LABEL_CHARS = 32_000
# How high a message's pictures are shown: one alone larger, several smaller, side by side.
SINGLE_PICTURE_HEIGHT = 200
PICTURE_HEIGHT = 120
MESSAGE_MARGIN = 10  # above and below a message's content


def bounded_for_label(text: str, *, keep_end: bool = False) -> str:
    """``text``, or its first (``keep_end``: last) MAX_LABEL_CHARS characters with a note of how
    many are not shown."""
    hidden = len(text) - MAX_LABEL_CHARS
    if hidden <= 0:
        return text
    if keep_end:
        return f"[… {hidden:,} earlier characters not shown]\n" + text[-MAX_LABEL_CHARS:]
    return text[:MAX_LABEL_CHARS] + f"\n[… {hidden:,} more characters not shown: Copy copies all of it]"


def _plain_label(object_name: str) -> QLabel:
    """Selectable plain text: what the user typed, or the model's reasoning, shown verbatim."""
    label = QLabel()
    label.setObjectName(object_name)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(
        Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard
    )
    label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
    return label


def _tr(text: str, count: int = -1) -> str:
    return QCoreApplication.translate("TranscriptView", text, None, count)


def describe_stats(stats: GenerationStats) -> str:
    """One unobtrusive line: tokens, speed, time to first token, prompt reuse."""
    tokens = stats.generated_tokens
    parts = [_tr("1 token") if tokens == 1 else _tr("%1 tokens").replace("%1", str(tokens))]
    if tokens:  # a reply stopped before its first token has neither
        parts += [
            _tr("%1 tok/s").replace("%1", f"{stats.tokens_per_second:.1f}"),
            _tr("%1 s to first token").replace("%1", f"{stats.time_to_first_token_s:.2f}"),
        ]
    if stats.prompt_tokens:
        reused = stats.prompt_tokens - stats.evaluated_prompt_tokens
        parts.append(
            _tr("prompt %1 tokens, %2 reused").replace("%1", str(stats.prompt_tokens)).replace("%2", str(reused))
        )
    return " · ".join(parts)


class MessageWidget(QFrame):
    """One message. Assistant messages can stream: call :meth:`append` as text arrives.

    While a reply is still thinking, its reasoning shows live; once the answer starts, the
    reasoning folds away under a "Thought for N s" header, unless the user opened it by hand.
    """

    sig_text_changed = Signal()
    """The message's visible text or layout changed, so its height may have changed."""
    sig_action = Signal(str, int)
    """The user asked for an action on this message: (action name, message id); actions are
    "copy", "delete" and, where offered, "edit", "regenerate", "continue", "previous" and
    "next" (switch between versions)."""
    sig_tool_call_answered = Signal(str, object)
    """The person answered a tool call's approval request: (call id, ``ToolApproval``)."""

    def __init__(self, message: Message, thumbnails: ThumbnailLoader | None = None, parent: QWidget | None = None) -> None:
        """``thumbnails`` decodes the message's pictures; without it they show as placeholders."""
        super().__init__(parent)
        self.message_id = message.id
        self.role = message.role
        is_user = message.role == "user"
        is_reply = message.role == "assistant"
        self.setObjectName("userMessage" if is_user else "assistantMessage" if is_reply else "toolMessage")
        self._reasoning = message.reasoning
        self._answer = message.content
        self._streaming = message.state == MessageState.STREAMING
        self._thinking_started: float | None = None
        self._thinking_seconds: float | None = None
        self._user_toggled_thinking = False
        self._can_continue = False  # it stopped at its length limit, or its server's connection broke
        self._is_last_reply = False
        self._turn_goes_on = False  # the reply called tools, and its turn has not ended yet
        self._alternative_position: tuple[int, int] = (0, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, MESSAGE_MARGIN, 14, MESSAGE_MARGIN)
        layout.setSpacing(6)

        if is_user:
            author_name = self.tr("You")
        elif is_reply:
            author_name = self.tr("Qwen")
        else:  # a tool's result whose call is not on screen
            names = [part.name for part in message.parts if isinstance(part, ToolResultPart)]
            author_name = self.tr("Result of %1").replace("%1", names[0] if names else self.tr("a tool"))
        self._author = QLabel(author_name)
        self._author.setObjectName("messageAuthor")
        layout.addWidget(self._author)

        pictures = [part.sha256 for part in message.parts if isinstance(part, ImagePart)]
        self.pictures: list[ImageThumbnail] = []
        if pictures:
            loader = thumbnails or ThumbnailLoader(None, self)
            height = SINGLE_PICTURE_HEIGHT if len(pictures) == 1 else PICTURE_HEIGHT
            row = FlowLayout(8)
            for sha256 in pictures:
                thumbnail = ImageThumbnail(loader, sha256, height)
                row.addWidget(thumbnail)
                self.pictures.append(thumbnail)
            layout.addLayout(row)

        self._thinking_toggle = QToolButton()
        self._thinking_toggle.setObjectName("thinkingToggle")
        self._thinking_toggle.setCheckable(True)
        self._thinking_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self._thinking_toggle.setAccessibleName(self.tr("Show or hide the model's thinking"))
        self._thinking_toggle.toggled.connect(self._set_thinking_expanded)
        # A click means the user decides from now on; automatic folding stops.
        self._thinking_toggle.clicked.connect(lambda: setattr(self, "_user_toggled_thinking", True))
        self._reasoning_label = _plain_label("reasoningText")
        layout.addWidget(self._thinking_toggle)
        layout.addWidget(self._reasoning_label)
        # What a reply still without text waits for (its model server), until the text comes.
        self.waiting_label = QLabel()
        self.waiting_label.setObjectName("replyWaiting")
        self.waiting_label.hide()
        layout.addWidget(self.waiting_label)

        if is_reply:
            self._body: QLabel | MarkdownView = MarkdownView()
            self._body.setAccessibleName(self.tr("Reply"))
            self._body.sig_changed.connect(self.sig_text_changed)
        else:
            self._body = _plain_label("messageBody")
            self._body.setAccessibleName(self.tr("Your message") if is_user else author_name)
        layout.addWidget(self._body)

        self._tool_calls = QVBoxLayout()
        self._tool_calls.setContentsMargins(0, 0, 0, 0)
        self._tool_calls.setSpacing(6)
        layout.addLayout(self._tool_calls)
        self._tool_blocks: list[ToolCallBlock] = []
        self.show_tool_calls(message.parts)
        # What the app says about a reply that ended well (a tool call it could not use, the
        # turn's tool call limit): information, not a failure.
        self.notice = QLabel()
        self.notice.setObjectName("replyNotice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        layout.addWidget(self.notice)

        self._footer = QLabel()
        self._footer.setObjectName("messageFooter")
        self._footer.setWordWrap(True)
        layout.addWidget(self._footer)

        self.action_buttons: dict[str, QToolButton] = {}
        actions = QHBoxLayout()
        actions.setContentsMargins(0, 0, 0, 0)
        self.alternatives_label = QLabel()
        self.alternatives_label.setObjectName("alternativesLabel")
        self._tips = {
            "previous": self.tr("Show the previous version"),
            "next": self.tr("Show the next version"),
            "copy": self.tr("Copy this message"),
            "edit": self.tr("Edit this question and ask again; the old version is kept"),
            "regenerate": self.tr("Write this reply again (Ctrl+R)"),
            "continue": self.tr("Continue this reply where it stopped (Ctrl+Shift+Enter)"),
            "delete": self.tr("Delete this message"),
        }
        for name, text in (
            ("previous", self.tr("Previous version")),
            ("next", self.tr("Next version")),
            ("copy", self.tr("Copy")),
            ("edit", self.tr("Edit")),
            ("regenerate", self.tr("Regenerate")),
            ("continue", self.tr("Continue")),
            ("delete", self.tr("Delete")),
        ):
            button = QToolButton()
            button.setObjectName("messageAction")
            button.setText(text)  # shown by screen readers, and beside the icon for "Copied"
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
            button.setToolTip(self._tips[name])
            button.setAccessibleName(self._tips[name])
            button.setAutoRaise(True)
            button.clicked.connect(lambda _checked=False, action=name: self.sig_action.emit(action, self.message_id))
            actions.addWidget(button)
            self.action_buttons[name] = button
            if name == "previous":
                actions.addWidget(self.alternatives_label)
        actions.addStretch(1)
        layout.addLayout(actions)
        self._copied_timer = QTimer(self)
        self._copied_timer.setSingleShot(True)
        self._copied_timer.setInterval(COPIED_FEEDBACK_MS)
        self._copied_timer.timeout.connect(self._end_copied_feedback)
        self._apply_icons()

        self.set_outcome(message.state, message.stats, message.error)

    @property
    def answer(self) -> str:
        return self._answer

    def show_tool_calls(self, parts) -> None:
        """Adds a block for each tool call among ``parts`` that has none yet."""
        for part in parts:
            if isinstance(part, ToolCallPart) and self.tool_block(part.call_id) is None:
                block = ToolCallBlock(part)
                block.sig_layout_changed.connect(self.sig_text_changed)
                block.sig_answered.connect(self.sig_tool_call_answered)
                self._tool_calls.addWidget(block)
                # Shown now, not at the next event-loop pass: the approval buttons must be
                # there the moment the block says it waits for an answer.
                block.show()
                self._tool_blocks.append(block)

    def tool_blocks(self) -> list[ToolCallBlock]:
        return list(self._tool_blocks)

    def tool_block(self, call_id: str) -> ToolCallBlock | None:
        return next((block for block in self._tool_blocks if block.call.call_id == call_id), None)

    def show_copied(self) -> None:
        """Confirms a copy on the button itself: a check mark and "Copied", for a moment."""
        button = self.action_buttons["copy"]
        button.setIcon(themed_icon("check", self.palette()))
        button.setText(self.tr("Copied"))
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        button.setToolTip(self.tr("Copied to the clipboard"))
        self._copied_timer.start()

    def _end_copied_feedback(self) -> None:
        button = self.action_buttons["copy"]
        button.setText(self.tr("Copy"))
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        button.setToolTip(self._tips["copy"])
        self._apply_icons()

    def set_editing(self, editing: bool) -> None:
        """Marks the question being edited in the composer."""
        self.setProperty("editing", editing)
        self.style().unpolish(self)
        self.style().polish(self)

    def set_model_ready(self, ready: bool, reason: str) -> None:
        """Regenerate and Continue need a model: without one they stay, disabled, saying why."""
        for name in ("regenerate", "continue"):
            button = self.action_buttons[name]
            button.setEnabled(ready)
            tip = self._tips[name] if ready else f"{self._tips[name]}: {reason}"
            button.setToolTip(tip)

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_icons()  # the theme changed: icons take its colours

    def _apply_icons(self) -> None:
        palette = self.palette()
        for name, icon in ACTION_ICONS.items():
            if name != "copy" or not self._copied_timer.isActive():
                self.action_buttons[name].setIcon(themed_icon(icon, palette))

    def set_continues_turn(self, continues: bool) -> None:
        """The reply follows its own turn's tool results: it goes on under the same name, which
        is not repeated, and it sits close under the calls it read."""
        self._author.setVisible(not continues)
        margins = self.layout().contentsMargins()
        self.layout().setContentsMargins(margins.left(), 0 if continues else MESSAGE_MARGIN, margins.right(), margins.bottom())

    def set_turn_goes_on(self, goes_on: bool) -> None:
        """The reply ended calling tools and its turn goes on: like a reply still being written,
        it offers no actions until the turn ends."""
        self._turn_goes_on = goes_on
        self.set_offered_actions(last_reply=self._is_last_reply)

    def set_offered_actions(self, *, last_reply: bool) -> None:
        """Regenerate and Continue make sense only on the conversation's last, finished reply."""
        self._is_last_reply = last_reply
        finished = not self._streaming and not self._turn_goes_on
        self.action_buttons["copy"].setVisible(finished and bool(self._answer))
        self.action_buttons["delete"].setVisible(finished)
        self.action_buttons["regenerate"].setVisible(finished and last_reply and self.role == "assistant")
        self.action_buttons["continue"].setVisible(
            finished and last_reply and self.role == "assistant" and self._can_continue
        )
        self.action_buttons["edit"].setVisible(finished and self.role == "user")
        index, count = self._alternative_position
        for name in ("previous", "next"):
            self.action_buttons[name].setVisible(finished and count > 1)
        self.action_buttons["previous"].setEnabled(index > 0)
        self.action_buttons["next"].setEnabled(index < count - 1)
        self.alternatives_label.setVisible(finished and count > 1)

    def set_alternatives(self, index: int, count: int) -> None:
        """This message is version ``index + 1`` of ``count`` (regenerated or edited)."""
        self._alternative_position = (index, count)
        self.alternatives_label.setText(f"{index + 1}/{count}")
        self.set_offered_actions(last_reply=self._is_last_reply)

    @property
    def markdown_view(self) -> MarkdownView | None:
        return self._body if isinstance(self._body, MarkdownView) else None

    def show_waiting(self, text: str) -> None:
        """The reply has no text yet and waits: ``text`` says for what, until its text comes."""
        self.waiting_label.setText(text)
        self.waiting_label.setVisible(self._streaming and not self._reasoning and not self._answer)
        self._refresh_text()

    def append(self, reasoning: str, answer: str) -> None:
        if reasoning or answer:
            self.waiting_label.hide()
        now = time.monotonic()
        if reasoning and self._thinking_started is None:
            self._thinking_started = now
        if answer and not self._answer and self._thinking_started is not None:
            self._thinking_seconds = now - self._thinking_started
        self._reasoning += reasoning
        self._answer += answer
        self._refresh_text()

    def set_outcome(self, state: MessageState, stats: GenerationStats | None, error: str | None) -> None:
        """Shows how the reply ended: stats, or that it was stopped or failed."""
        self._streaming = state == MessageState.STREAMING
        self.stats = stats
        connection_lost = bool(stats and stats.stop_reason == StopReason.CONNECTION_LOST)
        self._can_continue = bool(stats and stats.stop_reason == StopReason.MAX_TOKENS) or connection_lost
        if not self._streaming:
            self.waiting_label.hide()
        if not self._streaming and self._thinking_started is not None and self._thinking_seconds is None:
            self._thinking_seconds = time.monotonic() - self._thinking_started
        notes = []
        if state == MessageState.INTERRUPTED and connection_lost:
            notes.append(self.tr("Interrupted: Continue picks up where it stopped"))
        elif state == MessageState.INTERRUPTED:
            notes.append(self.tr("Interrupted: the app ended before the reply did"))
        elif state == MessageState.STOPPED or (stats and stats.stop_reason == StopReason.CANCELLED):
            notes.append(self.tr("Stopped"))
        elif stats and stats.stop_reason == StopReason.MAX_TOKENS:
            notes.append(self.tr("Reached the reply length limit"))
        elif stats and stats.stop_reason == StopReason.CONTEXT_FULL:
            notes.append(self.tr("The context window is full"))
        if state == MessageState.FAILED:
            notes.append(self.tr("Failed: %1").replace("%1", error or self.tr("unknown error")))
        # A reply that ended well may carry information; one cut off carries why.
        self.notice.setText(error or "")
        self.notice.setVisible(bool(error) and state in (MessageState.COMPLETE, MessageState.INTERRUPTED))
        self.notice.setProperty("tone", "problem" if state == MessageState.INTERRUPTED else "")
        self.notice.style().unpolish(self.notice)
        self.notice.style().polish(self.notice)
        if stats and self.role == "assistant":
            notes.append(describe_stats(stats))
        self._footer.setText(" — ".join(notes))
        self._footer.setVisible(bool(notes))
        self.set_offered_actions(last_reply=self._is_last_reply)
        self._refresh_text()

    def _refresh_text(self) -> None:
        has_reasoning = bool(self._reasoning.strip())
        thinking_now = self._streaming and has_reasoning and not self._answer
        if not self._user_toggled_thinking:
            self._thinking_toggle.setChecked(thinking_now)  # live while thinking, folded after
        self._thinking_toggle.setVisible(has_reasoning)
        if thinking_now:
            title = self.tr("Thinking…")
        elif self._thinking_seconds is not None:
            title = self.tr("Thought for %1 s").replace("%1", f"{self._thinking_seconds:.1f}")
        else:
            title = self.tr("Thinking")
        self._thinking_toggle.setText(title)
        self._update_arrow()
        self._reasoning_label.setText(bounded_for_label(self._reasoning.strip(), keep_end=True))  # the live end
        self._reasoning_label.setVisible(has_reasoning and self._thinking_toggle.isChecked())
        if isinstance(self._body, MarkdownView):
            waiting = self._streaming and not self.waiting_label.isHidden()
            placeholder = "" if has_reasoning or not self._streaming or waiting else "…"
            self._body.set_markdown(self._answer or placeholder)
            self._body.setVisible(bool(self._answer or placeholder))
        else:
            self._body.setText(bounded_for_label(self._answer))
            self._body.setVisible(bool(self._answer) or not self.pictures)  # a question may be pictures alone
        self.sig_text_changed.emit()

    def _set_thinking_expanded(self, expanded: bool) -> None:
        self._reasoning_label.setVisible(expanded and bool(self._reasoning.strip()))
        self._update_arrow()
        self.sig_text_changed.emit()

    def _update_arrow(self) -> None:
        expanded = self._thinking_toggle.isChecked()
        self._thinking_toggle.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)


ACTION_ICONS = {
    "previous": "chevron-left",
    "next": "chevron-right",
    "copy": "copy",
    "edit": "pencil",
    "regenerate": "refresh-cw",
    "continue": "fast-forward",
    "delete": "trash-2",
}
COPIED_FEEDBACK_MS = 1500

# Messages built when a conversation opens: more than a window shows, few enough to open in a
# blink (each costs ~5 ms; bench/README.md). Scrolling up then builds PAGE_SIZE more at a time.
FIRST_PAGE_SIZE = 12
PAGE_SIZE = 30
# Text a page lays out at most (at least one message): a page costs ~3 ms per KB as it is built,
# fitted and painted (12 answers of 5 KB took 150-200 ms), so a page of long messages still opens
# in ~50 ms; scrolling up builds the rest.
PAGE_CHARACTERS = 16_000


def _shown_in_its_call(message: Message, call_ids: set[str]) -> bool:
    """A tool message whose call is among ``call_ids`` (a reply shown holds it): its result is
    shown in that call's block."""
    results = [part for part in message.parts if isinstance(part, ToolResultPart)]
    return message.role == "tool" and bool(results) and all(result.call_id in call_ids for result in results)


def _fitting_page(earlier: list[Message], count: int) -> int:
    """How many of the newest ``earlier`` messages make a page: up to ``count``, and no more than
    PAGE_CHARACTERS of text, but always at least one."""
    taken = characters = 0
    for message in reversed(earlier[-count:]):
        characters += min(len(message.content), MAX_LABEL_CHARS)  # reasoning starts folded away
        if taken and characters > PAGE_CHARACTERS:
            break
        taken += 1
    return taken


class TranscriptView(QScrollArea):
    """A scrolling column of :class:`MessageWidget`; follows new text while at the bottom.

    A conversation opens with only its last ``FIRST_PAGE_SIZE`` messages as widgets; earlier ones
    are made, ``PAGE_SIZE`` at a time, when the user scrolls to the top (or clicks "Show earlier
    messages"), so a conversation of thousands of messages opens as fast as a short one.

    The column is sized by hand (:meth:`_fit_column`): a resizable scroll area sizes its widget
    from word-wrapped labels' minimum sizes, which are computed for a narrow width, and leaves
    a tall blank gap under the last message.
    """

    sig_message_action = Signal(str, int)
    """A message's action button was clicked: (action name, message id)."""
    sig_tool_call_answered = Signal(str, object)
    """The person answered a tool call's approval request: (call id, ``ToolApproval``)."""

    def __init__(self, image_path: Callable[[str], Path] | None = None, parent: QWidget | None = None) -> None:
        """``image_path(sha256)`` is where the stored picture with that hash is (see
        ``ThumbnailLoader``); without it pictures show as placeholders."""
        super().__init__(parent)
        self.setObjectName("transcript")
        self._thumbnails = ThumbnailLoader(image_path, self)
        self.setWidgetResizable(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        container = QWidget()
        container.setObjectName("transcriptContainer")
        self._column = QVBoxLayout(container)
        self._column.setContentsMargins(24, 16, 24, 16)
        self._column.setSpacing(12)
        self.earlier_button = QPushButton()
        self.earlier_button.setObjectName("earlierButton")
        self.earlier_button.clicked.connect(lambda: self._show_earlier(PAGE_SIZE))
        self.earlier_button.hide()
        self._column.addWidget(self.earlier_button, 0, Qt.AlignmentFlag.AlignHCenter)
        self._column.addStretch(1)
        self.setWidget(container)
        container.installEventFilter(self)
        # Coalesces many height changes (streamed text) into one re-fit per event-loop pass.
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(0)
        self._fit_timer.timeout.connect(self._fit_column)
        self._widgets: list[MessageWidget] = []
        self._earlier: list[Message] = []  # not shown yet, oldest first
        self._results: dict[str, ToolResultPart] = {}  # the open conversation's tool results, by call
        self._tool_message_ids: set[int] = set()  # its tool messages: a reply after one continues a turn
        self._alternatives_of: Callable[[int], tuple[int, int]] = lambda _message_id: (0, 1)
        self._context_notice: QLabel | None = None
        self._follow = True
        self._model_ready, self._not_ready_reason = True, ""
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # arrows and Page Up/Down scroll it
        self.setAccessibleName(self.tr("Conversation"))
        self.jump_button = QToolButton(self)
        self.jump_button.setObjectName("jumpToLatest")
        self.jump_button.setIcon(themed_icon("arrow-down", self.palette()))
        self.jump_button.setText(self.tr("Latest"))
        self.jump_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.jump_button.setToolTip(self.tr("Jump to the latest message"))
        self.jump_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.jump_button.clicked.connect(self.jump_to_latest)
        self.jump_button.hide()
        self.verticalScrollBar().valueChanged.connect(self._on_scrolled)
        self.verticalScrollBar().rangeChanged.connect(self._keep_following)

    def set_messages(
        self, messages: list[Message], alternatives_of: Callable[[int], tuple[int, int]] | None = None
    ) -> None:
        """Shows a conversation. ``alternatives_of(message_id)`` gives a message's version
        (index, count); it is asked only for the messages that get a widget."""
        self.show_context_boundary(None, 0)
        for widget in self._widgets:
            self._remove_row(widget)
        self._widgets = []
        self._alternatives_of = alternatives_of or (lambda _message_id: (0, 1))
        calls = {part.call_id for message in messages for part in message.parts if isinstance(part, ToolCallPart)}
        self._results = {
            part.call_id: part for message in messages for part in message.parts if isinstance(part, ToolResultPart)
        }
        self._tool_message_ids = {message.id for message in messages if message.role == "tool"}
        self._earlier = [message for message in messages if not _shown_in_its_call(message, calls)]
        self._show_earlier(FIRST_PAGE_SIZE)
        self._follow = True  # the re-fit then scrolls to the newest message

    def add_message(self, message: Message) -> MessageWidget:
        """Adds a message at the end (a new question or reply); a tool's result goes into its
        call's block, in the reply that holds it (that reply's widget is returned)."""
        if message.role == "tool":
            self._tool_message_ids.add(message.id)
        for result in (part for part in message.parts if isinstance(part, ToolResultPart)):
            self._results[result.call_id] = result
            holder = self._widget_with_call(result.call_id)
            if holder is not None:
                holder.tool_block(result.call_id).show_result(result)
                return holder
        widget = self._make_widget(message, self._column.count() - 1)
        if self._widgets:
            self._widgets[-1].set_offered_actions(last_reply=False)
        self._widgets.append(widget)
        widget.set_offered_actions(last_reply=True)
        self._follow = True
        self.fit_column_later()
        return widget

    def _remove_row(self, widget: MessageWidget) -> None:
        """Takes a message's row out of the column now; deleting it waits for the event loop,
        and a row left in the layout until then would keep its height in the column."""
        holder = widget.parentWidget()
        self._column.removeWidget(holder)
        holder.hide()
        holder.deleteLater()

    def set_model_ready(self, ready: bool, reason: str) -> None:
        """Whether replies can be asked for now (a model is loaded); ``reason`` says why not."""
        self._model_ready, self._not_ready_reason = ready, reason
        for widget in self._widgets:
            widget.set_model_ready(ready, reason)

    def jump_to_latest(self) -> None:
        self._follow = True
        self.verticalScrollBar().setValue(self.verticalScrollBar().maximum())

    def show_tool_calls(self, reply: Message) -> MessageWidget | None:
        """The reply ended with tool calls: its blocks appear, with any result already known."""
        widget = self.widget_for(reply.id)
        if widget is not None:
            widget.show_tool_calls(reply.parts)
            self._show_known_results(widget)
        return widget

    def tool_block(self, call_id: str) -> ToolCallBlock | None:
        holder = self._widget_with_call(call_id)
        return holder.tool_block(call_id) if holder is not None else None

    def _widget_with_call(self, call_id: str) -> MessageWidget | None:
        return next((widget for widget in reversed(self._widgets) if widget.tool_block(call_id) is not None), None)

    def _show_known_results(self, widget: MessageWidget) -> None:
        for block in widget.tool_blocks():
            result = self._results.get(block.call.call_id)
            if result is not None and block.result is None:
                block.show_result(result)

    def _make_widget(self, message: Message, position: int) -> MessageWidget:
        widget = MessageWidget(message, self._thumbnails)
        self._show_known_results(widget)
        widget.set_continues_turn(message.role == "assistant" and message.parent_id in self._tool_message_ids)
        widget.set_model_ready(self._model_ready, self._not_ready_reason)
        index, count = self._alternatives_of(message.id)
        if count > 1:
            widget.set_alternatives(index, count)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        # User messages sit to the right as bubbles; replies use the full width.
        if message.role == "user":
            row.addStretch(1)
            row.addWidget(widget, 4)
        else:
            row.addWidget(widget)
        holder = QWidget()
        holder.setLayout(row)
        self._column.insertWidget(position, holder)
        # Shown now rather than at the next event-loop pass (Qt's default for widgets added to a
        # visible layout), so the column's height, and the scroll position kept by
        # _show_earlier, account for it at once.
        holder.show()
        widget.sig_text_changed.connect(self.fit_column_later)
        widget.sig_action.connect(self.sig_message_action)
        widget.sig_tool_call_answered.connect(self.sig_tool_call_answered)
        return widget

    def _show_earlier(self, count: int) -> None:
        """Makes widgets for up to ``count`` more of the earlier messages, keeping the view still."""
        count = _fitting_page(self._earlier, count)
        batch, self._earlier = self._earlier[len(self._earlier) - count:], self._earlier[: len(self._earlier) - count]
        if not batch:
            return
        bar = self.verticalScrollBar()
        from_bottom = bar.maximum() - bar.value()
        widgets = [self._make_widget(message, 1 + offset) for offset, message in enumerate(batch)]
        was_empty = not self._widgets
        self._widgets[:0] = widgets
        if was_empty:
            widgets[-1].set_offered_actions(last_reply=True)
        remaining = len(self._earlier)
        self.earlier_button.setVisible(remaining > 0)
        self.earlier_button.setText(
            _tr("Show 1 earlier message") if remaining == 1 else _tr("Show %1 earlier messages").replace("%1", str(remaining))
        )
        if not was_empty:
            self._fit_column()
            bar.setValue(bar.maximum() - from_bottom)
        self.fit_column_later()

    def show_context_boundary(self, first_kept_message_id: int | None, omitted: int) -> None:
        """Marks where the model's view of the conversation begins: the ``omitted`` messages
        above ``first_kept_message_id`` no longer fit its context. None removes the mark."""
        if self._context_notice is not None:
            self._column.removeWidget(self._context_notice)
            self._context_notice.deleteLater()
            self._context_notice = None
        widget = self.widget_for(first_kept_message_id) if first_kept_message_id is not None else None
        if widget is None:
            return
        notice = QLabel(
            _tr("1 earlier message no longer fits in the model's context and was left out of its reply.")
            if omitted == 1
            else _tr("%1 earlier messages no longer fit in the model's context and were left out of its reply.")
            .replace("%1", str(omitted))
        )
        notice.setObjectName("contextNotice")
        notice.setAlignment(Qt.AlignmentFlag.AlignCenter)
        notice.setWordWrap(True)
        self._column.insertWidget(self._column.indexOf(widget.parentWidget()), notice)
        self._context_notice = notice
        self.fit_column_later()

    def reveal_message(self, message_id: int) -> None:
        """Scrolls to a message (a search result) and marks it until another is revealed."""
        waiting = [message.id for message in self._earlier]
        if message_id in waiting:
            self._show_earlier(len(waiting) - waiting.index(message_id))
        for widget in self._widgets:
            widget.setProperty("found", widget.message_id == message_id)
            widget.style().unpolish(widget)
            widget.style().polish(widget)
        target = self.widget_for(message_id)
        if target is not None:
            self._fit_column()  # the column must have its final height before scrolling in it
            self._follow = False
            self.ensureWidgetVisible(target, 0, 40)

    def refresh_actions(self) -> None:
        """Offers Regenerate and Continue on the last reply only."""
        for index, widget in enumerate(self._widgets):
            widget.set_offered_actions(last_reply=index == len(self._widgets) - 1)

    def message_widgets(self) -> list[MessageWidget]:
        """The messages that have widgets (the earliest of a long conversation may not yet)."""
        return list(self._widgets)

    def widget_for(self, message_id: int) -> MessageWidget | None:
        return next((widget for widget in self._widgets if widget.message_id == message_id), None)

    def fit_column_later(self) -> None:
        """Resizes the column once control returns to the event loop, however many changes came."""
        if not self._fit_timer.isActive():
            self._fit_timer.start()

    def _fit_column(self) -> None:
        width = self.viewport().width()
        side = side_margin(width)
        margins = self._column.contentsMargins()
        if margins.left() != side:
            self._column.setContentsMargins(side, margins.top(), side, margins.bottom())
        height = max(self._column.heightForWidth(width), self.viewport().height())
        self.widget().resize(width, height)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt API)
        # Any change of the column's layout (a row added, removed, grown) re-fits it: the column
        # is sized by hand, so nothing else would.
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.fit_column_later()
        return super().eventFilter(watched, event)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self._fit_column()
        self._place_jump_button()

    def _place_jump_button(self) -> None:
        button = self.jump_button
        button.adjustSize()
        viewport = self.viewport().geometry()
        button.move(viewport.center().x() - button.width() // 2, viewport.bottom() - button.height() - 12)

    def _on_scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._follow = value >= bar.maximum() - 24
        # Far enough up that the newest text is out of sight: offer the way back down.
        self.jump_button.setVisible(bar.maximum() - value > self.viewport().height() // 2)
        if self.jump_button.isVisible():
            self._place_jump_button()
            self.jump_button.raise_()
        if value == 0 and bar.maximum() > 0 and self._earlier:
            self._show_earlier(PAGE_SIZE)

    def _keep_following(self, _minimum: int, maximum: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(maximum)
