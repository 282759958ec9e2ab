"""A code block in a reply: its code in a plain-text view, highlighted a slice at a time, with Copy.

Also the view for prose too costly for rich text (``markdown_segments.too_costly_to_lay_out``),
shown as preformatted text with a caption. Code is shown up to a bound and highlighted up to a
bound, a slice per event-loop pass (bench/README.md, "Hostile content"); Copy always copies
everything.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.style import StyleMeta
from pygments.styles import get_style_by_name
from pygments.token import _TokenType
from pygments.util import ClassNotFound
from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPalette, QTextCharFormat, QTextCursor, QTextLayout
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QSizePolicy, QVBoxLayout, QWidget

# Code shown in a block at most; the rest is left to Copy. The view lays out every shown line
# (~11 µs each, measured) and an unwrapped line at ~0.2 ms per KB, so 2,500 lines (a 2,000-line
# file and a quarter more) or 128,000 characters (even as one line) stay under ~30 ms.
SHOWN_CODE_LINES = 2_500
SHOWN_CODE_CHARS = 128_000
# Code highlighted at most: Pygments lexes ~1.2 ms per KB (measured), so this bounds one block's
# highlighting to ~120 ms of CPU, done a slice at a time; it covers a 2,000-line file whole.
HIGHLIGHTED_CHARS = 100_000
# Code lexed per event-loop pass: ~10 ms, so input and painting go on while a block is coloured.
HIGHLIGHT_SLICE_CHARS = 8_000


def shown_part(code: str) -> str:
    """The start of ``code`` that a block shows: at most SHOWN_CODE_LINES and SHOWN_CODE_CHARS."""
    shown = code[:SHOWN_CODE_CHARS]
    end = -1
    for _line in range(SHOWN_CODE_LINES):
        end = shown.find("\n", end + 1)
        if end == -1:
            return shown
    return shown[: end + 1]


def _lexer_for(language: str) -> Lexer:
    try:
        return get_lexer_by_name(language) if language else TextLexer()
    except ClassNotFound:
        return TextLexer()


def _style(dark: bool) -> StyleMeta:
    return get_style_by_name("monokai" if dark else "friendly")


def _char_format(style: StyleMeta, token_type: _TokenType) -> QTextCharFormat | None:
    """Pygments' colour, weight and slant for a token; None where the style leaves it plain."""
    rule = style.style_for_token(token_type)
    if not (rule["color"] or rule["bold"] or rule["italic"]):
        return None
    char_format = QTextCharFormat()
    if rule["color"]:
        char_format.setForeground(QColor(f"#{rule['color']}"))
    if rule["bold"]:
        char_format.setFontWeight(QFont.Weight.Bold)
    if rule["italic"]:
        char_format.setFontItalic(True)
    return char_format


def line_formats(code: str, language: str, *, dark: bool) -> Iterator[tuple[int, int, list[QTextLayout.FormatRange]]]:
    """Each line's colours as Pygments lexes ``code``, lazily, line by line: (line number,
    characters lexed so far, colour ranges within the line)."""
    style = _style(dark)
    formats: dict[_TokenType, QTextCharFormat | None] = {}
    line, column, ranges = 0, 0, []
    for index, token_type, value in _lexer_for(language).get_tokens_unprocessed(code):
        if token_type not in formats:
            formats[token_type] = _char_format(style, token_type)
        char_format = formats[token_type]
        for number, part in enumerate(value.split("\n")):
            if number:
                yield line, index, ranges
                line, column, ranges = line + 1, 0, []
            if part and char_format is not None:
                ranges.append(_format_range(column, len(part), char_format))
            column += len(part)
    yield line, len(code), ranges


def _format_range(start: int, length: int, char_format: QTextCharFormat) -> QTextLayout.FormatRange:
    format_range = QTextLayout.FormatRange()
    format_range.start, format_range.length, format_range.format = start, length, char_format
    return format_range


class CodeView(QPlainTextEdit):
    """Read-only, unwrapped text exactly as tall as its lines, scrolling sideways only.

    QPlainTextEdit rather than a rich-text label: its height is its line count (no layout of
    the whole text needed to know it), it paints only what is exposed, and text streamed onto
    the end is appended rather than laid out again from scratch.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("codeBody")
        self.setReadOnly(True)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setStyleSheet("background: transparent;")  # the code block's own background shows
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().setUndoRedoEnabled(False)  # never edited: no undo history to keep
        self.document().setDocumentMargin(6)
        self.setTabStopDistance(self.fontMetrics().horizontalAdvance(" ") * 4)
        self.horizontalScrollBar().rangeChanged.connect(self._fit_height)
        self._fit_height()

    def show_text(self, text: str) -> None:
        """Shows ``text``; text that extends what is shown (a streaming reply) is appended."""
        shown = self.toPlainText()
        if text == shown:
            return
        if shown and text.startswith(shown):
            cursor = QTextCursor(self.document())
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertText(text[len(shown):])
        else:
            self.setPlainText(text)
        self._fit_height()

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit_height()

    def wheelEvent(self, event) -> None:  # noqa: N802 (Qt API)
        if abs(event.angleDelta().y()) > abs(event.angleDelta().x()):
            event.ignore()  # up and down scroll the transcript around the block
            return
        super().wheelEvent(event)

    def _fit_height(self) -> None:
        # Unwrapped, every line is as tall as the first (laid out alone, it says how tall: Qt
        # rounds a line's height up, so the font's line spacing can be a pixel short).
        line_height = math.ceil(self.blockBoundingRect(self.document().firstBlock()).height())
        margin = math.ceil(2 * self.document().documentMargin())
        scroll_bar = self.horizontalScrollBar().sizeHint().height() if self.horizontalScrollBar().maximum() else 0
        self.setFixedHeight(self.document().blockCount() * line_height + margin + scroll_bar + 2)


class CodeBlock(QFrame):
    """A highlighted code block with its language and a Copy button.

    Also shows prose too costly for rich text, as preformatted text: ``caption`` then says so.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("codeBlock")
        self.code = ""
        self.language = ""
        self._language_label = QLabel()
        self._language_label.setObjectName("codeLanguage")
        self.copy_button = QPushButton(self.tr("Copy"))
        self.copy_button.setObjectName("codeCopy")
        self.copy_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.copy_button.setAccessibleName(self.tr("Copy code"))
        self.copy_button.clicked.connect(self.copy)
        header = QHBoxLayout()
        header.setContentsMargins(10, 4, 6, 0)
        header.addWidget(self._language_label)
        header.addStretch(1)
        header.addWidget(self.copy_button)
        self._body = CodeView()
        self.cut_note = QLabel()
        self.cut_note.setObjectName("codeLanguage")
        self.cut_note.setContentsMargins(10, 0, 10, 0)
        self.cut_note.setWordWrap(True)
        self.cut_note.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 8)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(self._body)
        layout.addWidget(self.cut_note)
        self._highlighted = ""  # the code the colours shown are (being) computed for
        self._pending: Iterator[tuple[int, int, list[QTextLayout.FormatRange]]] | None = None
        self._highlight_timer = QTimer(self)
        self._highlight_timer.setSingleShot(True)
        self._highlight_timer.setInterval(0)  # the next slice as soon as the event loop is free
        self._highlight_timer.timeout.connect(self._highlight_slice)
        self._slice_end = 0  # where, in the code, the slice being lexed ends

    def show_code(self, code: str, language: str, caption: str = "") -> None:
        language_changed = language != self.language
        self.code, self.language = code, language
        self._language_label.setText(caption or language or self.tr("code"))
        shown = shown_part(code)
        self._body.show_text(shown.removesuffix("\n"))  # code ends with a line break: no empty line after it
        self._show_cut_note(len(shown), len(code))
        to_highlight = shown[:HIGHLIGHTED_CHARS]
        if language_changed or to_highlight != self._highlighted:
            self._start_highlighting(to_highlight)

    @property
    def is_highlighting(self) -> bool:
        """Colours are still being computed (a slice per event-loop pass)."""
        return self._pending is not None

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and self._highlighted:
            self._start_highlighting(self._highlighted)  # colours for the new theme

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.code)
        self.copy_button.setText(self.tr("Copied"))

    def _show_cut_note(self, shown: int, total: int) -> None:
        self.cut_note.setVisible(shown < total)
        if shown < total:
            self.cut_note.setText(
                self.tr("Only the first %1 of %2 characters are shown here; Copy copies all of it.")
                .replace("%1", f"{shown:,}")
                .replace("%2", f"{total:,}")
            )

    def _start_highlighting(self, code: str) -> None:
        self._highlighted = code
        self._pending = line_formats(code, self.language, dark=_is_dark())
        self._slice_end = HIGHLIGHT_SLICE_CHARS
        if len(code) <= HIGHLIGHT_SLICE_CHARS:
            self._highlight_slice()  # a short block is coloured at once, with no plain flash
        else:
            self._highlight_timer.start()  # after the block is shown: that pass has enough to do

    def _highlight_slice(self) -> None:
        """Applies the colours of the next HIGHLIGHT_SLICE_CHARS of code; schedules the rest."""
        if self._pending is None:
            return
        document = self._body.document()
        coloured = []
        for line, lexed, ranges in self._pending:
            block = document.findBlockByNumber(line)
            if block.isValid():
                block.layout().setFormats(ranges)
                coloured.append(block)
            if lexed >= self._slice_end:
                break
        else:
            self._pending = None
        if coloured:  # laid out again, in their colours
            start = coloured[0].position()
            document.markContentsDirty(start, coloured[-1].position() + coloured[-1].length() - start)
        self._slice_end += HIGHLIGHT_SLICE_CHARS
        if self._pending is not None:
            self._highlight_timer.start()


def _is_dark() -> bool:
    return QGuiApplication.palette().color(QPalette.ColorRole.Base).lightness() < 128
