"""Renders a reply's Markdown: prose through Qt's own Markdown, code blocks highlighted with a
Copy button, updated incrementally while the reply streams.

The reply is cut into segments at its top-level fenced code blocks (found with markdown-it-py,
so fences are recognised exactly as CommonMark defines them). Each segment has its own widget;
when streamed text arrives only the segments that changed, normally just the last one, are
rendered again, so a long reply never re-lays out as a whole per token.

Safety: model output is untrusted. Qt's rich text never fetches network resources, and images
are removed from the Markdown before it is rendered anyway, so a reply can never make the app
contact a server. Links open only when the user clicks them, only for web and e-mail addresses
(``file:``, custom schemes and the like could start programs), and only after a question that
shows the real target, which a link's text may hide.

Budgets: a reply can be anything, and Qt lays rich text out whole, on the GUI thread, at
~1 ms per KB of prose and ~0.25 ms per table cell (bench/README.md, "Hostile content"). So a
prose block that would take longer than the window may freeze (very long, a very large table,
lists nested very deep) is shown as preformatted text instead, in the same lazily laid-out view
as code; code is shown up to a bound and highlighted up to a bound, a slice per event-loop
pass; Copy always copies everything.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from itertools import accumulate

from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.dollarmath import dollarmath_plugin
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.style import StyleMeta
from pygments.styles import get_style_by_name
from pygments.token import _TokenType
from pygments.util import ClassNotFound
from PySide6.QtCore import QEvent, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QFont,
    QGuiApplication,
    QPalette,
    QTextCharFormat,
    QTextCursor,
    QTextLayout,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

# markdown-it's own bound on block nesting (it stops nesting there, so parsing stays quick and
# never recurses deep): 16 nested lists take 33 levels (a list and an item each, then the
# paragraph), so a block that reaches the bound is deeper than any real reply's.
_MAX_NESTING = 36
# Prose laid out by Qt's rich text at most: ~1 ms per KB of layout and paint (measured), so
# 32,000 characters stay well inside a 100 ms stall. One block longer (a wall of text with no
# paragraph break) is shown as preformatted text; ordinary replies are many shorter blocks.
MAX_RICH_PROSE_CHARS = 32_000
# Table cells laid out by Qt's rich text at most: ~0.25 ms a cell (measured), so 256 cells
# (a 30-column table of 8 rows, a 4-column one of 64) take ~65 ms. A larger table is shown as
# its Markdown text, aligned in monospace as the model wrote it.
MAX_TABLE_CELLS = 256

# Only block structure is needed to split a reply, so inline parsing (quadratic on hostile
# input such as thousands of "[") is left out, and so are tables: a table is one block either
# way (a paragraph without the rule), and the rule costs ~50 µs a cell.
_MARKDOWN = MarkdownIt("commonmark", {"maxNesting": _MAX_NESTING}).disable("inline")
# Prose with a table or LaTeX math is rendered to HTML here rather than by Qt's Markdown reader:
# Qt draws tables with double borders and shows $…$ as raw text. Raw HTML in a reply stays text.
_RICH_MARKDOWN = MarkdownIt("commonmark", {"html": False, "maxNesting": _MAX_NESTING}).enable("table").use(
    dollarmath_plugin, double_inline=True, allow_space=False, allow_digits=False  # "$5 and $6" is money
)
_RICH_MARKDOWN.add_render_rule("math_inline", lambda self, tokens, index, options, env: _math_html(tokens[index].content, block=False))
_RICH_MARKDOWN.add_render_rule("math_inline_double", lambda self, tokens, index, options, env: _math_html(tokens[index].content, block=True))
_RICH_MARKDOWN.add_render_rule("math_block", lambda self, tokens, index, options, env: _math_html(tokens[index].content, block=True))
_RICH_BLOCKS = {"table_open", "math_block", "math_block_label"}
_RICH_INLINES = {"math_inline", "math_inline_double"}
_CELL = re.compile(r"<(th|td)( style=\"([^\"]*)\")?>")
_NEWLINES = re.compile(r"\r\n?")  # what markdown-it reads as a line break, as it normalises the text
_LONG_BLOCK_END = re.compile(r"\n[ \t]*\n(?=[^ \t\n])")  # a blank line, then unindented text
# Text parsed at once when splitting a reply: ~6 ms of markdown-it (measured: ~90 ms a megabyte).
PARSE_STEP_CHARS = 64_000
# ![alt](url) and ![alt][ref]: replaced by their alt text, so no image is ever requested.
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)|!\[([^\]]*)\]\[[^\]]*\]")


@dataclass(frozen=True)
class Segment:
    """A run of prose (``language is None``) or one fenced code block.

    The other fields describe where it was found, for splitting streamed text again cheaply;
    segments compare by their text and language only."""

    text: str
    language: str | None = None
    start: int = field(default=0, compare=False)
    """Where the block's first line starts in the reply."""
    too_deep: bool = field(default=False, compare=False)
    """Nested as deep as the parser goes: too deep for Qt's rich text to lay out quickly."""
    open_fence: str = field(default="", compare=False)
    """An unclosed fence at the start of its line (still streaming): its backticks or tildes."""
    content_start: int = field(default=0, compare=False)
    """For a code block: where its code starts in the reply."""

    @property
    def is_code(self) -> bool:
        return self.language is not None


def split_segments(markdown: str, start: int = 0) -> list[Segment]:
    """Top-level blocks in order (of the text from ``start``, a block's start): each fenced code
    block, and each block of prose (a paragraph, a list, a heading, a table…) on its own, so that
    streaming text re-renders only the block it grows. An unclosed fence (still streaming) runs
    to the end of the text, as CommonMark says.

    The text is parsed a PARSE_STEP_CHARS head at a time: every block of a head but its last is
    final (more text only ever changes the last block), and a fence's end is found with one
    search instead of parsing its code, so a reply with a megabyte of code is split quickly."""
    segments: list[Segment] = []
    step = PARSE_STEP_CHARS
    while True:
        head_end = _line_end(markdown, start + step)
        head = _parse(markdown, start, head_end)
        if head_end == len(markdown) or not head:
            return segments + (head if head_end == len(markdown) else _parse(markdown, start, len(markdown)))
        *final, last = head
        segments += final
        if not last.open_fence and last.start == start:
            # One block longer than a head: far beyond what rich text may lay out, so it is shown
            # as text whatever its structure. Parsing it whole would cost a pass per character
            # of it (a list 1,000 deep is 1 MB of indentation); it ends, near enough, at the
            # first blank line followed by unindented text.
            end = _LONG_BLOCK_END.search(markdown, start + step)
            end_at = end.end() if end else len(markdown)
            segments.append(Segment(markdown[start:end_at], start=start))
            if end is None:
                return segments
            start, step = end_at, PARSE_STEP_CHARS
            continue
        if not last.open_fence:
            start, step = last.start, PARSE_STEP_CHARS
            continue
        closing = _closing_fence(last.open_fence).search(markdown, last.content_start)
        if closing is None:  # still streaming: the fence runs to the end
            return [*segments, replace(last, text=_normalised(markdown[last.content_start:]))]
        segments.append(replace(last, text=_normalised(markdown[last.content_start:closing.start()]), open_fence=""))
        start, step = _line_end(markdown, closing.end()), PARSE_STEP_CHARS


def split_extended(previous: list[Segment], markdown: str) -> list[Segment]:
    """``split_segments(markdown)`` for a reply that extends the one ``previous`` came from (it
    streams): only the text from the last two blocks is split again. More text changes only the
    last block, which may then join the one before (a paragraph "1" grows into "1. item", an
    item of the list above); blocks before those two are final."""
    redo = max(0, len(previous) - 2)
    return [*previous[:redo], *split_segments(markdown, previous[redo].start)]


def _parse(markdown: str, start: int, end: int) -> list[Segment]:
    """The top-level blocks of ``markdown[start:end]``, parsed whole."""
    text = markdown[start:end]
    lines = text.splitlines(keepends=True)
    offsets = list(accumulate(map(len, lines), initial=start))
    blocks: list[tuple[Token, int]] = []  # each top-level block's opening token, its deepest level
    for token in _MARKDOWN.parse(text):
        if token.level == 0 and token.map is not None and token.nesting != -1:
            blocks.append((token, token.level))  # only the opening token of a block has its lines
        elif blocks:
            blocks[-1] = (blocks[-1][0], max(blocks[-1][1], token.level))
    segments = [_segment(token, depth, lines, offsets) for token, depth in blocks]
    return [segment for segment in segments if segment.is_code or segment.text.strip()]


def _segment(token: Token, depth: int, lines: list[str], offsets: list[int]) -> Segment:
    first, end = token.map
    if token.type != "fence":
        return Segment("".join(lines[first:end]), start=offsets[first], too_deep=depth >= _MAX_NESTING - 1)
    language = token.info.split()[0] if token.info.strip() else ""
    closed = end - first > 1 and _closing_fence(token.markup).match(lines[end - 1])
    open_fence = token.markup if not closed and lines[first].startswith(token.markup) else ""
    return Segment(token.content, language, offsets[first], open_fence=open_fence, content_start=offsets[first + 1])


def _line_end(markdown: str, position: int) -> int:
    """Where the line holding ``position`` ends, after its line break; the text's end at most."""
    newline = markdown.find("\n", position) if position < len(markdown) else -1
    return len(markdown) if newline == -1 else newline + 1


def _closing_fence(fence: str) -> re.Pattern[str]:
    """A line that closes a fence opened with ``fence`` (CommonMark: as long at least, alone)."""
    return re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*\r?$", re.MULTILINE)


def _normalised(code: str) -> str:
    """Code as markdown-it gives it: line breaks as "\\n", NUL as U+FFFD."""
    return _NEWLINES.sub("\n", code).replace("\0", "\ufffd")


def without_images(markdown: str) -> str:
    return _IMAGE.sub(lambda match: match.group(1) or match.group(2) or "", markdown)


def too_costly_to_lay_out(segment: Segment) -> str | None:
    """Why a prose block would take Qt's rich text too long to lay out (so it is shown as
    preformatted text): "text", "table" or "nesting"; None when it is fine."""
    if _table_cells_at_most(segment.text) > MAX_TABLE_CELLS:
        return "table"
    if segment.too_deep:
        return "nesting"
    if len(segment.text) > MAX_RICH_PROSE_CHARS:
        return "text"
    return None


def _table_cells_at_most(markdown: str) -> int:
    """An upper bound on the table cells in prose, counted from its pipes without parsing: a
    parser takes ~50 µs a cell (a 5,000-column table: a quarter of a second)."""
    return sum(line.count("|") + 1 for line in markdown.splitlines() if "|" in line)


def needs_rich_rendering(markdown: str) -> bool:
    """Whether prose holds a table or LaTeX math, which Qt's own Markdown reader shows badly."""
    for token in _RICH_MARKDOWN.parse(markdown):
        if token.type in _RICH_BLOCKS or any(child.type in _RICH_INLINES for child in token.children or ()):
            return True
    return False


def rich_prose_html(markdown: str, border_color: str) -> str:
    """Prose as Qt rich text: tables with single-line borders, math shown as code (Qt cannot
    typeset LaTeX; as code it stays readable and copyable exactly)."""
    rendered = _RICH_MARKDOWN.render(markdown)
    rendered = rendered.replace("<table>", '<table cellspacing="0" cellpadding="6" style="border-collapse: collapse;">')
    return _CELL.sub(
        lambda match: f'<{match[1]} style="border: 1px solid {border_color};{match[3] or ""}">', rendered
    )


def _math_html(latex: str, *, block: bool) -> str:
    code = html.escape(latex.strip())
    if block:
        return f'<pre class="math">{code}</pre>\n'
    return f'<code class="math">{code}</code>'


SAFE_LINK_SCHEMES = frozenset({"http", "https", "mailto"})


def is_safe_link(url: str) -> bool:
    """Whether a link in a reply may be opened at all: a web or e-mail address."""
    target = QUrl(url)
    return target.isValid() and target.scheme().lower() in SAFE_LINK_SCHEMES and bool(target.path() or target.host())


class ProseLabel(QLabel):
    """Markdown prose, selectable, with links that open only on click."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBody")
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.MarkdownText)
        self.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
            | Qt.TextInteractionFlag.LinksAccessibleByMouse
        )
        self.setOpenExternalLinks(False)
        self.linkActivated.connect(self._open_link)
        self.linkHovered.connect(self.setToolTip)  # the real target, whatever the link's text says
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
        self._heights: dict[int, int] = {}
        self._markdown = ""

    def _open_link(self, url: str) -> None:
        if not is_safe_link(url):
            QMessageBox.information(
                self,
                self.tr("Link not opened"),
                self.tr("This reply links to “%1”. Only web and e-mail links are opened from replies.").replace("%1", url),
            )
            return
        answer = QMessageBox.question(
            self,
            self.tr("Open link?"),
            self.tr("Open this address in your browser?\n\n%1").replace("%1", url),
            QMessageBox.StandardButton.Open | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Open,
        )
        if answer == QMessageBox.StandardButton.Open:
            QDesktopServices.openUrl(QUrl(url))

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and self.textFormat() == Qt.TextFormat.RichText:
            self.show_markdown(self._markdown)  # table borders in the new theme's colour

    def show_markdown(self, markdown: str) -> None:
        self._heights.clear()
        self._markdown = markdown
        markdown = without_images(markdown)
        if needs_rich_rendering(markdown):
            border = self.palette().color(QPalette.ColorRole.Mid).name()
            self.setTextFormat(Qt.TextFormat.RichText)
            self.setText(rich_prose_html(markdown, border))
        else:
            self.setTextFormat(Qt.TextFormat.MarkdownText)
            self.setText(markdown)

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt API)
        height = self._heights.get(width)
        if height is None:
            height = self._heights[width] = super().heightForWidth(width)
        return height

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        width = self.width()
        return QSize(width, self.heightForWidth(width))

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(self.fontMetrics().averageCharWidth() * 8, self.heightForWidth(self.width()))


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


class MarkdownView(QWidget):
    """A reply as prose and code-block widgets; :meth:`set_markdown` updates only what changed."""

    sig_changed = Signal()
    """The rendered content changed (its height may have too)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(6)
        self._segments: list[Segment] = []
        self._widgets: list[QWidget] = []
        self.markdown = ""

    def set_markdown(self, markdown: str) -> None:
        if markdown == self.markdown:
            return
        streamed = bool(self._segments) and markdown.startswith(self.markdown)
        self.markdown = markdown
        segments = split_extended(self._segments, markdown) if streamed else split_segments(markdown)
        for index, segment in enumerate(segments):
            if index >= len(self._segments) or self._segments[index] != segment:
                self._show_segment(index, segment)
        for widget in self._widgets[len(segments):]:
            self._layout.removeWidget(widget)
            widget.deleteLater()
        del self._widgets[len(segments):]
        self._segments = segments
        self.sig_changed.emit()

    def _show_segment(self, index: int, segment: Segment) -> None:
        """Shows a changed segment in the widget at ``index``, replaced if of the wrong kind."""
        too_costly = None if segment.is_code else too_costly_to_lay_out(segment)
        kind = CodeBlock if segment.is_code or too_costly else ProseLabel
        widget = self._widget_of_kind(index, kind)
        if segment.is_code:
            widget.show_code(segment.text, segment.language)
        elif too_costly:
            widget.show_code(segment.text, "", self._captions()[too_costly])
        else:
            widget.show_markdown(segment.text)

    def _widget_of_kind(self, index: int, kind: type[QWidget]) -> QWidget:
        if index < len(self._widgets) and type(self._widgets[index]) is kind:
            return self._widgets[index]
        widget = kind()
        if index < len(self._widgets):
            old = self._widgets[index]
            self._layout.replaceWidget(old, widget)
            old.deleteLater()
            self._widgets[index] = widget
        else:
            self._layout.addWidget(widget)
            self._widgets.append(widget)
        return widget

    def _captions(self) -> dict[str, str]:
        """What a prose block shown as preformatted text says above it, by reason."""
        return {
            "text": self.tr("Long text, shown plain"),
            "table": self.tr("Table too large to draw, shown as text"),
            "nesting": self.tr("Nested too deeply to draw, shown as text"),
        }

    def code_blocks(self) -> list[CodeBlock]:
        return [widget for widget in self._widgets if isinstance(widget, CodeBlock)]

    def prose_labels(self) -> list[ProseLabel]:
        return [widget for widget in self._widgets if isinstance(widget, ProseLabel)]
