"""The message composer: a text box where Enter sends and Shift+Enter starts a new line, the
pictures attached to the message (a button, a paste or a drop; see ``attachments``), the
chat's tools (``chat_tools_button``), and, for a model on another computer, the notice that
messages go there. A pause in typing offers the message so far to be read ahead
(``sig_typing_paused``), so that sending it leaves little to read.

A paste or drop is measured before it is inserted: text that would make the message longer than
``MAX_MESSAGE_CHARACTERS`` is refused with a note, and nothing is inserted. Lines longer than
``LONG_LINE_CHARS`` are wrapped anywhere rather than at word boundaries: Qt's search for a word
boundary in a long run without one grows with the square of its length (a 200,000-character
line took 0.8 s to lay out; bench/README.md, "Hostile content").
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QMimeData, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QKeyEvent, QTextOption
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.domain.conversations import MAX_MESSAGE_CHARACTERS
from app.ui.attachments import (
    MAX_IMAGES_PER_MESSAGE,
    THUMBNAIL_SIZE,
    Attachment,
    AttachmentStrip,
    ImageIntake,
    ImageOffer,
    carries_images,
    image_offers,
)
from app.ui.chat_tools_button import ChatToolsButton
from app.ui.icons import themed_icon
from app.ui.reading_column import MAX_READING_WIDTH, SIDE_MARGIN

# Lines longer than this wrap anywhere: word-boundary wrapping of an unbroken run costs ~4 ms at
# this length and grows with its square.
LONG_LINE_CHARS = 10_000
# This long without an edit is a pause in typing: the message so far can be read ahead. Shorter
# than the gap after a word or a comma, longer than the gaps between a fluent typist's keys.
TYPING_PAUSE_MS = 350


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
    sig_images_offered = Signal(QMimeData)
    """A paste or drop carries pictures, not text (nothing inserted): read it during the call."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.textChanged.connect(self._fit_wrapping)

    def canInsertFromMimeData(self, source: QMimeData) -> bool:  # noqa: N802 (Qt API)
        return carries_images(source) or super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData) -> None:  # noqa: N802 (Qt API)
        """Pastes and drops: pictures go to the attachments; text is measured before anything
        is inserted or laid out."""
        if carries_images(source):
            self.sig_images_offered.emit(source)
            return
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


class PrivacyNotice(QFrame):
    """A line above the text box that says where messages go when it is not this computer."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("privacyNotice")
        self.icon = QLabel()
        self.icon.setObjectName("privacyNoticeIcon")
        self.label = QLabel()
        self.label.setObjectName("privacyNoticeText")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(8)
        layout.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.label, 1)
        self._show_icon()
        self.hide()

    def show_text(self, text: str) -> None:
        """Shows ``text``; "" hides the notice."""
        self.label.setText(text)
        self.setAccessibleName(text)
        self.setVisible(bool(text))

    def _show_icon(self) -> None:
        self.icon.setPixmap(themed_icon("globe", self.palette()).pixmap(QSize(16, 16), self.devicePixelRatioF()))

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._show_icon()  # the theme changed: the icon takes its colours


class ComposerWidget(QWidget):
    """Text box, attached pictures, the Tools button, "Think" switch and a Send button that
    turns into Stop while a reply streams; above them, the privacy notice when it applies."""

    sig_send = Signal(str, object)
    """The user sends a message: its text and its pictures (a tuple of ``Attachment``); the
    text is empty only when there are pictures."""
    sig_image_support_requested = Signal()
    """The user tried to attach a picture, and the model cannot read images: show where to add
    what it lacks (Models)."""
    sig_stop = Signal()
    """The user asks the streaming reply to stop."""
    sig_cancel_edit = Signal()
    """The user gives up editing a question (Cancel, or Esc)."""
    sig_typing_paused = Signal(str, object)
    """The user paused while writing the next message (or editing a question), or a picture
    was attached or removed: ``(text, pictures)``, the text so far as it would be sent and the
    ``tuple[Attachment, ...]`` ready to go with it (none while editing; never both empty; not
    while a picture is still being prepared: its preparation ends with another)."""

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
        self.edit.sig_images_offered.connect(self.offer_images)
        self.edit.textChanged.connect(self._hide_paste_refused)
        # Restarted by each edit, so a keystroke costs no more than that; it fires once typing stops.
        self._typing_pause = QTimer(self)
        self._typing_pause.setSingleShot(True)
        self._typing_pause.setInterval(TYPING_PAUSE_MS)
        self._typing_pause.timeout.connect(self._on_typing_paused)
        self.edit.textChanged.connect(self._typing_pause.start)
        self.privacy_notice = PrivacyNotice()
        self.attachment_strip = AttachmentStrip()
        self.attachment_strip.sig_removed.connect(self._clear_attach_notes)
        self.attachment_strip.sig_removed.connect(self._typing_pause.start)
        self._intake = ImageIntake(self)
        self._intake.sig_prepared.connect(self.attachment_strip.fill)
        self._intake.sig_prepared.connect(self._typing_pause.start)  # a picture can be read before its question
        self._intake.sig_rejected.connect(self._on_image_rejected)
        self._attach_notes: list[str] = []
        self.attach_note = QLabel()
        self.attach_note.setObjectName("warningText")
        self.attach_note.setWordWrap(True)
        self.attach_note.hide()
        self.attach_button = QToolButton()
        self.attach_button.setObjectName("attachButton")
        self.attach_button.setAutoRaise(True)
        self.attach_button.setIconSize(QSize(20, 20))
        self.attach_button.setAccessibleName(self.tr("Attach images"))
        self.attach_button.clicked.connect(self._on_attach_clicked)
        self._image_problem = ""  # why pictures cannot be attached now; "" when they can
        self._image_problem_on_server = False  # the server's model does not read them: Models cannot help
        self.tools_button = ChatToolsButton()
        self._last_image_folder = ""
        self._editing = False

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
        buttons.addWidget(self.attach_button)
        buttons.addWidget(self.tools_button)
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
        column_layout.addWidget(self.privacy_notice)
        column_layout.addWidget(self.attachment_strip)
        column_layout.addWidget(self.edit)
        column_layout.addWidget(self.paste_refused_label)
        column_layout.addWidget(self.attach_note)
        column_layout.addLayout(buttons)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(SIDE_MARGIN, 8, SIDE_MARGIN, 16)
        layout.addWidget(column)
        self._generating = False
        self.set_ready(False, self.tr("Open a model to start chatting."))
        self.set_image_support(model_loaded=False, reads_images=False)

    def show_privacy_notice(self, text: str) -> None:
        """What to say about where messages go ("" when they stay on this computer)."""
        self.privacy_notice.show_text(text)

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
        """An edited question keeps its own pictures: the message's are put aside meanwhile."""
        self._editing = editing
        self.editing_label.setVisible(editing)
        self.cancel_edit_button.setVisible(editing)
        self.attachment_strip.setVisible(not editing and bool(self.attachment_strip.count()))
        if not editing:
            self.edit.clear()

    # -------------------------------------------------------------------------- pictures

    def set_image_support(self, *, model_loaded: bool, reads_images: bool, server: str = "") -> None:
        """Whether the model can read pictures (``server``: the model server it runs on, if
        any); the attach button says what is missing if not."""
        self._image_problem_on_server = bool(server) and not reads_images
        if reads_images:
            self._image_problem = ""
        elif server:
            self._image_problem = self.tr(
                "%1 says this model does not read images: choose one of its models that does."
            ).replace("%1", server)
        elif model_loaded:
            self._image_problem = self.tr(
                "This model cannot read images: add its image support file (mmproj) in Models."
            )
        else:
            self._image_problem = self.tr(
                "Open a model that reads images first: one with its image support file (mmproj), in Models."
            )
        self._show_attach_icon()
        self.attach_button.setToolTip(
            self._image_problem
            or self.tr("Attach images (PNG, JPEG, WebP, GIF or BMP); you can also paste or drop them here")
        )

    def _show_attach_icon(self) -> None:
        icon = themed_icon("image-plus", self.palette())
        if self._image_problem:  # still clickable, to say why: drawn as if disabled
            icon = QIcon(icon.pixmap(QSize(20, 20), self.devicePixelRatioF(), QIcon.Mode.Disabled))
        self.attach_button.setIcon(icon)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._show_attach_icon()  # the theme changed: the icon takes its colours

    def _on_attach_clicked(self) -> None:
        if self._refuse_pictures():
            if self._image_problem and not self._image_problem_on_server:
                self.sig_image_support_requested.emit()
            return
        paths, _ = QFileDialog.getOpenFileNames(
            self, self.tr("Attach images"), self._last_image_folder,
            self.tr("Images (*.png *.jpg *.jpeg *.webp *.gif *.bmp);;All files (*)"),
        )
        if paths:
            self._last_image_folder = str(Path(paths[0]).parent)
            self.attach_files([Path(path) for path in paths])

    def attach_files(self, paths: list[Path]) -> None:
        """Attaches the picture files (what the attach button's file dialog returns)."""
        self._take_offers([ImageOffer(path.name, path=path) for path in paths])

    def offer_images(self, mime: QMimeData) -> bool:
        """Attaches the pictures a paste or drop carries; False when it carries none."""
        offers = image_offers(mime, self.tr("Pasted image"))
        if offers:
            self._take_offers(offers)
        return bool(offers)

    def attachments(self) -> tuple[Attachment, ...]:
        """The pictures ready to go with the message."""
        return self.attachment_strip.attachments()

    def give_back(self, attachments: tuple[Attachment, ...]) -> None:
        """Puts the pictures of a message that was not sent back (beside any attached since)."""
        room = MAX_IMAGES_PER_MESSAGE - self.attachment_strip.count()
        if attachments and room > 0:
            self.attachment_strip.add_ready(attachments[:room])
            self.attachment_strip.setVisible(not self._editing)

    def _refuse_pictures(self) -> bool:
        """Says why no pictures can be attached now, if so."""
        if self._editing:
            self._show_attach_notes([self.tr(
                "An edited question keeps the images it had; attach new ones to a new message."
            )])
        elif self._image_problem:
            self._show_attach_notes([self._image_problem])
        return self._editing or bool(self._image_problem)

    def _take_offers(self, offers: list[ImageOffer]) -> None:
        if self._refuse_pictures():
            return
        room = MAX_IMAGES_PER_MESSAGE - self.attachment_strip.count()
        notes = []
        left_out = len(offers) - max(room, 0)
        if left_out > 0:
            notes.append(
                (self.tr("A message holds at most %1 images: 1 was not attached.") if left_out == 1
                 else self.tr("A message holds at most %1 images: %2 were not attached.").replace("%2", str(left_out)))
                .replace("%1", str(MAX_IMAGES_PER_MESSAGE))
            )
        self._show_attach_notes(notes)
        ratio = self.devicePixelRatioF()
        box = QSize(round(THUMBNAIL_SIZE * ratio), round(THUMBNAIL_SIZE * ratio))
        for offer in offers[: max(room, 0)]:
            self.attachment_strip.add_pending(self._intake.prepare(offer, box), offer.name)

    def _on_image_rejected(self, ticket: int, message: str) -> None:
        tile = next((tile for tile in self.attachment_strip.tiles() if tile.ticket == ticket), None)
        if tile is None:
            return  # removed while it was being prepared
        self.attachment_strip.remove(ticket)
        self._show_attach_notes([
            *self._attach_notes, self.tr("“%1” was not attached: %2").replace("%1", tile.name).replace("%2", message)
        ])

    def _show_attach_notes(self, notes: list[str]) -> None:
        self._attach_notes = notes
        self.attach_note.setText("\n".join(notes))
        self.attach_note.setVisible(bool(notes))

    def _clear_attach_notes(self) -> None:
        self._show_attach_notes([])

    def set_ready(self, ready: bool, reason: str = "") -> None:
        """Whether a message can be sent now; ``reason`` explains why not, on the button."""
        self.send_button.setEnabled(ready or self._generating)
        self.send_button.setToolTip("" if ready else reason)

    def set_generating(self, generating: bool) -> None:
        self._generating = generating
        self.send_button.setText(self.tr("Stop") if generating else self.tr("Send"))
        self.send_button.setToolTip(self.tr("Stop the reply (Esc)") if generating else self.tr("Send (Enter)"))
        self.send_button.setEnabled(True)
        if not generating:
            self._typing_pause.start()  # a message written while the reply was can be read now

    def _on_typing_paused(self) -> None:
        if not self._editing and self.attachment_strip.preparing():
            return
        text = self.edit.toPlainText().strip()
        pictures = () if self._editing else self.attachments()
        if text or pictures:
            self.sig_typing_paused.emit(text, pictures)

    def _on_button(self) -> None:
        if self._generating:
            self.sig_stop.emit()
        else:
            self._submit()

    def _submit(self) -> None:
        text = self.edit.toPlainText().strip()
        attachments = () if self._editing else self.attachments()
        if self._generating or not self.send_button.isEnabled():
            return
        if not self._editing and self.attachment_strip.preparing():
            self._show_attach_notes([self.tr("One moment: an image is still being prepared. Send again when it shows.")])
            return
        if not text and not attachments:
            return
        self.edit.clear()
        if not self._editing:
            self.attachment_strip.clear()
            self._clear_attach_notes()
        self.sig_send.emit(text, attachments)
