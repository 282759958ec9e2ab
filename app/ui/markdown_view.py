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
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound
from PySide6.QtCore import QEvent, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication, QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QMessageBox, QPushButton, QSizePolicy, QVBoxLayout, QWidget

_MARKDOWN = MarkdownIt("commonmark").enable("table")
# Prose with a table or LaTeX math is rendered to HTML here rather than by Qt's Markdown reader:
# Qt draws tables with double borders and shows $…$ as raw text. Raw HTML in a reply stays text.
_RICH_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table").use(
    dollarmath_plugin, double_inline=True, allow_space=False, allow_digits=False  # "$5 and $6" is money
)
_RICH_MARKDOWN.add_render_rule("math_inline", lambda self, tokens, index, options, env: _math_html(tokens[index].content, block=False))
_RICH_MARKDOWN.add_render_rule("math_inline_double", lambda self, tokens, index, options, env: _math_html(tokens[index].content, block=True))
_RICH_MARKDOWN.add_render_rule("math_block", lambda self, tokens, index, options, env: _math_html(tokens[index].content, block=True))
_RICH_BLOCKS = {"table_open", "math_block", "math_block_label"}
_RICH_INLINES = {"math_inline", "math_inline_double"}
_CELL = re.compile(r"<(th|td)( style=\"([^\"]*)\")?>")
# ![alt](url) and ![alt][ref]: replaced by their alt text, so no image is ever requested.
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)|!\[([^\]]*)\]\[[^\]]*\]")


@dataclass(frozen=True)
class Segment:
    """A run of prose (``language is None``) or one fenced code block."""

    text: str
    language: str | None = None

    @property
    def is_code(self) -> bool:
        return self.language is not None


def split_segments(markdown: str) -> list[Segment]:
    """Top-level blocks in order: each fenced code block, and each block of prose (a paragraph,
    a list, a heading, a table…) on its own, so that streaming text re-renders only the block it
    grows. An unclosed fence (still streaming) runs to the end of the text, as CommonMark says."""
    lines = markdown.splitlines(keepends=True)
    segments: list[Segment] = []
    for token in _MARKDOWN.parse(markdown):
        if token.level != 0 or token.map is None or token.nesting == -1:
            continue  # only the opening token of each top-level block carries its lines
        start, end = token.map
        if token.type == "fence":
            segments.append(Segment(token.content, token.info.split()[0] if token.info.strip() else ""))
        else:
            segments.append(Segment("".join(lines[start:end])))
    return [segment for segment in segments if segment.is_code or segment.text.strip()]


def without_images(markdown: str) -> str:
    return _IMAGE.sub(lambda match: match.group(1) or match.group(2) or "", markdown)


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


class CodeBlock(QFrame):
    """A highlighted code block with its language and a Copy button."""

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
        self._body = QLabel()
        self._body.setObjectName("codeBody")
        self._body.setTextFormat(Qt.TextFormat.RichText)
        self._body.setWordWrap(True)
        self._body.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 8)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(self._body)

    def show_code(self, code: str, language: str) -> None:
        self.code, self.language = code, language
        self._language_label.setText(language or self.tr("code"))
        self._body.setText(highlighted_html(code, language, dark=_is_dark()))

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and self.code:
            self.show_code(self.code, self.language)  # colours for the new theme

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.code)
        self.copy_button.setText(self.tr("Copied"))


def highlighted_html(code: str, language: str, *, dark: bool) -> str:
    """Pygments' HTML with inline styles (Qt's rich text has no style sheets for classes)."""
    try:
        lexer = get_lexer_by_name(language) if language else TextLexer()
    except ClassNotFound:
        lexer = TextLexer()
    formatter = HtmlFormatter(noclasses=True, nowrap=True, style="monokai" if dark else "friendly")
    body = highlight(code.rstrip("\n"), lexer, formatter) if code.strip() else html.escape(code)
    return f'<pre style="white-space: pre-wrap; margin: 6px 10px;">{body}</pre>'


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
        self.markdown = markdown
        segments = split_segments(markdown)
        for index, segment in enumerate(segments):
            if index < len(self._segments) and self._segments[index] == segment:
                continue
            if index < len(self._widgets) and self._segments[index].is_code == segment.is_code:
                widget = self._widgets[index]
            else:
                widget = CodeBlock() if segment.is_code else ProseLabel()
                if index < len(self._widgets):
                    old = self._widgets[index]
                    self._layout.replaceWidget(old, widget)
                    old.deleteLater()
                    self._widgets[index] = widget
                else:
                    self._layout.addWidget(widget)
                    self._widgets.append(widget)
            if segment.is_code:
                widget.show_code(segment.text, segment.language)
            else:
                widget.show_markdown(segment.text)
        for widget in self._widgets[len(segments):]:
            self._layout.removeWidget(widget)
            widget.deleteLater()
        del self._widgets[len(segments):]
        self._segments = segments
        self.sig_changed.emit()

    def code_blocks(self) -> list[CodeBlock]:
        return [widget for widget in self._widgets if isinstance(widget, CodeBlock)]

    def prose_labels(self) -> list[ProseLabel]:
        return [widget for widget in self._widgets if isinstance(widget, ProseLabel)]
