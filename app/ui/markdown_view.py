"""Renders a reply's Markdown: prose through Qt's own Markdown, code blocks highlighted with a
Copy button, updated incrementally while the reply streams.

The reply is cut into segments (``markdown_segments``). Each segment has its own widget; when
streamed text arrives only the segments that changed, normally just the last one, are rendered
again, so a long reply never re-lays out as a whole per token.

Safety: model output is untrusted. Qt's rich text never fetches network resources, and images
are removed from the Markdown before it is rendered anyway, so a reply can never make the app
contact a server. Links open only when the user clicks them, only for web and e-mail addresses
(``file:``, custom schemes and the like could start programs), and only after a question that
shows the real target, which a link's text may hide.

Budgets: a prose block too costly for Qt's rich text is shown as preformatted text in the same
lazily laid-out view as code (``code_block``).
"""

from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin
from PySide6.QtCore import QEvent, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QPalette
from PySide6.QtWidgets import QLabel, QMessageBox, QSizePolicy, QVBoxLayout, QWidget

from app.ui.code_block import CodeBlock
from app.ui.markdown_segments import (
    MAX_NESTING,
    Segment,
    split_extended,
    split_segments,
    too_costly_to_lay_out,
    without_images,
)

# Prose with a table or LaTeX math is rendered to HTML here rather than by Qt's Markdown reader:
# Qt draws tables with double borders and shows $…$ as raw text. Raw HTML in a reply stays text.
_RICH_MARKDOWN = MarkdownIt("commonmark", {"html": False, "maxNesting": MAX_NESTING}).enable("table").use(
    dollarmath_plugin, double_inline=True, allow_space=False, allow_digits=False  # "$5 and $6" is money
)
_RICH_MARKDOWN.add_render_rule("math_inline", lambda self, tokens, index, options, env: _math_html(tokens[index].content, block=False))
_RICH_MARKDOWN.add_render_rule("math_inline_double", lambda self, tokens, index, options, env: _math_html(tokens[index].content, block=True))
_RICH_MARKDOWN.add_render_rule("math_block", lambda self, tokens, index, options, env: _math_html(tokens[index].content, block=True))
_RICH_BLOCKS = {"table_open", "math_block", "math_block_label"}
_RICH_INLINES = {"math_inline", "math_inline_double"}
_CELL = re.compile(r"<(th|td)( style=\"([^\"]*)\")?>")


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
        elif event.type() == QEvent.Type.FontChange:
            # The style sheet's text size arrives once the label is polished, after its first
            # heights were measured in the default font: they would cut its last line short.
            self._heights.clear()
            self.updateGeometry()

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
