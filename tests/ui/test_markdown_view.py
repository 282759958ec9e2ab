"""Rendering replies: Markdown prose, highlighted code with Copy, live thinking, and safety."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from app.core.conversations.conversation_store import Message, MessageState
from app.ui.code_block import CodeBlock
from app.ui.markdown_segments import Segment, split_segments
from app.ui.markdown_view import MarkdownView
from app.ui.transcript_view import MessageWidget


def colours(block: CodeBlock, line: int) -> list[str]:
    """The colours Pygments gave a shown line of a code block, in order."""
    layout = block._body.document().findBlockByNumber(line).layout()
    return [format_range.format.foreground().color().name() for format_range in layout.formats()]


REPLY = "Intro with `code`.\n\n```python\nprint('hi')\n```\n\nOutro, see [docs](https://example.org).\n"


def test_a_reply_is_split_at_its_top_level_code_blocks() -> None:
    assert split_segments(REPLY) == [
        Segment("Intro with `code`.\n"),
        Segment("print('hi')\n", "python"),
        Segment("Outro, see [docs](https://example.org).\n"),
    ]


def test_prose_is_split_into_its_top_level_blocks() -> None:
    text = "# Title\nFirst paragraph,\nstill first.\n\n- one\n- two\n\n> quoted\n\nLast"
    assert split_segments(text) == [
        Segment("# Title\n"),
        Segment("First paragraph,\nstill first.\n"),
        Segment("- one\n- two\n\n"),
        Segment("> quoted\n"),
        Segment("Last"),
    ]


def test_streaming_re_renders_only_the_growing_paragraph(qtbot) -> None:
    view = MarkdownView()
    qtbot.addWidget(view)
    view.set_markdown("A finished paragraph.\n\nA growing")
    finished, growing = view.prose_labels()
    finished_text = finished.text()
    view.set_markdown("A finished paragraph.\n\nA growing paragraph")
    assert view.prose_labels() == [finished, growing] and finished.text() == finished_text
    assert growing.text() == "A growing paragraph"


def test_an_unclosed_fence_while_streaming_is_code_up_to_the_end() -> None:
    assert split_segments("Look:\n```js\nlet a = 1;\nlet b") == [Segment("Look:\n"), Segment("let a = 1;\nlet b", "js")]


def test_fences_inside_lists_stay_with_the_prose() -> None:
    text = "- step\n\n  ```\n  inside\n  ```\n"
    assert split_segments(text) == [Segment(text)]


def test_code_blocks_are_highlighted_and_copied_exactly(qtbot) -> None:
    view = MarkdownView()
    qtbot.addWidget(view)
    view.set_markdown(REPLY)
    [block] = view.code_blocks()
    assert block.language == "python" and colours(block, 0)  # coloured by Pygments
    block.copy_button.click()
    assert QGuiApplication.clipboard().text() == "print('hi')\n"
    assert block.copy_button.text() == "Copied"


def test_streaming_updates_only_the_part_that_changed(qtbot) -> None:
    view = MarkdownView()
    qtbot.addWidget(view)
    view.set_markdown("First paragraph.\n\n```python\nx = 1\n")
    prose, code = view.prose_labels()[0], view.code_blocks()[0]
    prose_text = prose.text()
    view.set_markdown("First paragraph.\n\n```python\nx = 1\ny = 2\n")
    assert view.prose_labels()[0] is prose and prose.text() == prose_text
    assert view.code_blocks()[0] is code and code.code == "x = 1\ny = 2\n"
    view.set_markdown("First paragraph.\n\n```python\nx = 1\ny = 2\n```\n\nDone.")
    assert [type(widget).__name__ for widget in view._widgets] == ["ProseLabel", "CodeBlock", "ProseLabel"]
    assert view._widgets[0] is prose and view._widgets[1] is code


class _RecordingHandler(BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        _RecordingHandler.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def image_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingHandler)
    _RecordingHandler.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_reply_with_remote_images_makes_no_request(qtbot, image_server) -> None:
    view = MarkdownView()
    qtbot.addWidget(view)
    view.show()
    view.set_markdown(
        f"![tracker]({image_server}/pixel.png)\n\n"
        f'<img src="{image_server}/raw.png">\n\n'
        f"[ref image]\n\n![again][ref]\n\n[ref]: {image_server}/ref.png\n"
    )
    view.grab()  # lays out and paints everything; Qt loads rich-text resources synchronously
    assert _RecordingHandler.requests == []
    assert "tracker" in view.prose_labels()[0].text()  # the alt text stays readable


def _streaming_reply() -> MessageWidget:
    return MessageWidget(Message(1, 1, "assistant", "", "", MessageState.STREAMING, time.time(), None, None))


def test_thinking_shows_live_then_folds_away_with_its_duration(qtbot) -> None:
    widget = _streaming_reply()
    qtbot.addWidget(widget)
    widget.show()
    widget.append("Let me consider", "")
    assert widget._thinking_toggle.text() == "Thinking…"
    assert widget._reasoning_label.isVisible()
    widget.append(" both sides.", "The answer.")
    assert not widget._reasoning_label.isVisible()
    assert widget._thinking_toggle.text().startswith("Thought for ")
    widget._thinking_toggle.click()  # the user opens it again
    widget.append("", " More answer.")
    assert widget._reasoning_label.isVisible()
    assert widget._reasoning_label.text() == "Let me consider both sides."


def test_a_table_is_drawn_with_single_borders(qtbot) -> None:
    view = MarkdownView()
    qtbot.addWidget(view)
    view.set_markdown("| Size | Speed |\n|---|--:|\n| 2B | 12 tok/s |\n")
    [table] = view.prose_labels()
    assert table.textFormat() == Qt.TextFormat.RichText
    assert "border-collapse: collapse" in table.text() and 'cellspacing="0"' in table.text()
    assert table.text().count("border: 1px solid") == 4  # every cell, once


def test_latex_math_is_shown_as_code_not_as_raw_dollars(qtbot) -> None:
    view = MarkdownView()
    qtbot.addWidget(view)
    view.set_markdown("Euler: $e^{i\\pi} + 1 = 0$, and it costs $5 or $6.\n\n$$\n\\int_0^1 x\\,dx\n$$\n")
    inline, block = view.prose_labels()
    assert '<code class="math">e^{i\\pi} + 1 = 0</code>' in inline.text()
    assert "$5 or $6" in inline.text()  # money is not math
    assert '<pre class="math">\\int_0^1 x\\,dx</pre>' in block.text()


def test_html_in_a_reply_with_a_table_stays_text(qtbot) -> None:
    view = MarkdownView()
    qtbot.addWidget(view)
    view.set_markdown("| a |\n|---|\n| <img src=http://example.invalid/x.png> |\n")
    [table] = view.prose_labels()
    assert "<img" not in table.text() and "&lt;img" in table.text()


def test_prose_without_tables_or_math_keeps_qts_markdown(qtbot) -> None:
    view = MarkdownView()
    qtbot.addWidget(view)
    view.set_markdown("Just **bold** words.")
    assert view.prose_labels()[0].textFormat() == Qt.TextFormat.MarkdownText


def test_code_is_highlighted_again_when_the_theme_changes(qtbot) -> None:
    from PySide6.QtWidgets import QApplication

    from app.ui.theme import set_color_scheme

    app = QApplication.instance()
    set_color_scheme(app, Qt.ColorScheme.Light)
    view = MarkdownView()
    qtbot.addWidget(view)
    view.set_markdown("```python\ndef f(x):\n    return x\n```\n")
    [block] = view.code_blocks()
    light = colours(block, 0)
    set_color_scheme(app, Qt.ColorScheme.Dark)
    try:
        assert colours(block, 0) and colours(block, 0) != light  # or the code would be light on light
    finally:
        set_color_scheme(app, None)
