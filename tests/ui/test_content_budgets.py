"""Hostile pastes and replies stay within what the window can lay out without freezing.

The speed itself is measured by bench/hostile_content.py; these check the behaviour that keeps
it: what is shown, highlighted, refused, and that nothing is lost to Copy.
"""

from __future__ import annotations

import inspect

import pytest
from PySide6.QtCore import QMimeData
from PySide6.QtGui import QGuiApplication, QTextOption

from app.core.domain.conversations import MAX_MESSAGE_CHARACTERS, Message, MessageState
from app.ui import markdown_view
from app.ui.code_block import HIGHLIGHTED_CHARS, SHOWN_CODE_CHARS, CodeBlock
from app.ui.composer_widget import LONG_LINE_CHARS, ComposerWidget
from app.ui.markdown_segments import MAX_TABLE_CELLS, split_extended, split_segments
from app.ui.markdown_view import MarkdownView
from app.ui.transcript_view import MAX_LABEL_CHARS, MessageWidget


def python_source(characters: int) -> str:
    source = inspect.getsource(markdown_view)
    return (source * (characters // len(source) + 1))[:characters]


def shown_view(qtbot, markdown: str) -> MarkdownView:
    view = MarkdownView()
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    view.set_markdown(markdown)
    return view


def highlighted_to_the_end(qtbot, block: CodeBlock) -> None:
    qtbot.waitUntil(lambda: not block.is_highlighting)  # a slice per event-loop pass


def coloured(block: CodeBlock, line: int) -> bool:
    return bool(block._body.document().findBlockByNumber(line).layout().formats())


def test_a_megabyte_code_block_shows_its_start_highlighted_and_copy_copies_all_of_it(qtbot) -> None:
    lines = [f"value_{number} = compute({number}, 'some text')  # note {number}\n" for number in range(20_000)]
    code = "".join(lines)
    view = shown_view(qtbot, f"```python\n{code}```\n")
    [block] = view.code_blocks()
    highlighted_to_the_end(qtbot, block)
    shown = block._body.toPlainText()
    assert code.startswith(shown) and HIGHLIGHTED_CHARS < len(shown) <= SHOWN_CODE_CHARS
    highlighted_lines = shown[:HIGHLIGHTED_CHARS].count("\n")
    assert all(coloured(block, line) for line in range(highlighted_lines))
    assert not any(coloured(block, line) for line in range(highlighted_lines + 1, shown.count("\n")))
    assert block.cut_note.isVisibleTo(view) and f"{len(code):,}" in block.cut_note.text()
    block.copy_button.click()
    assert QGuiApplication.clipboard().text() == code


def test_a_2000_line_code_file_is_shown_whole_and_highlighted_to_its_last_line(qtbot) -> None:
    lines = [f"def step_{number}(value):  # line {number}" for number in range(2_000)]
    view = shown_view(qtbot, "```python\n" + "\n".join(lines) + "\n```\n")
    [block] = view.code_blocks()
    highlighted_to_the_end(qtbot, block)
    assert block._body.toPlainText() == "\n".join(lines)  # without the empty line after the last
    assert not block.cut_note.isVisibleTo(view)
    assert all(coloured(block, line) for line in (0, 1_000, 1_999))


def test_a_code_block_is_as_tall_as_its_lines_and_never_scrolls_up_and_down(qtbot) -> None:
    view = shown_view(qtbot, "```python\n" + "x = 1\n" * 300 + "```\n")
    [block] = view.code_blocks()
    assert block._body.height() >= 300 * block._body.fontMetrics().lineSpacing()
    qtbot.waitExposed(view)  # the view has been laid out at its size
    qtbot.waitUntil(lambda: block._body.verticalScrollBar().maximum() == 0)


def test_a_megabyte_line_of_code_is_shown_cut_and_copied_whole(qtbot) -> None:
    line = "x" * (1 << 20)
    view = shown_view(qtbot, f"```\n{line}\n```\n")
    [block] = view.code_blocks()
    assert len(block._body.toPlainText()) == SHOWN_CODE_CHARS
    block.copy_button.click()
    assert QGuiApplication.clipboard().text() == line + "\n"


def test_a_code_block_streamed_past_its_bounds_keeps_every_character_for_copy(qtbot) -> None:
    code = python_source(SHOWN_CODE_CHARS * 2)
    view = shown_view(qtbot, "Start:\n\n```python\n")
    [block] = view.code_blocks()
    for end in range(0, len(code), 40_000):
        view.set_markdown("Start:\n\n```python\n" + code[:end])
        assert view.code_blocks() == [block]  # the same widget grows
    view.set_markdown("Start:\n\n```python\n" + code + "\n```\n\nDone.")
    assert block.code == code + "\n" and code.startswith(block._body.toPlainText())
    assert [type(widget).__name__ for widget in view._widgets] == ["ProseLabel", "CodeBlock", "ProseLabel"]


def test_a_10000_deep_list_is_shown_as_text_without_recursion_error(qtbot) -> None:
    deep = "- " * 10_000 + "bottom"
    view = shown_view(qtbot, deep)
    assert view.prose_labels() == []
    [block] = view.code_blocks()
    assert block._body.toPlainText() == deep.removesuffix("\n") and "Nested" in block._language_label.text()


def test_a_megabyte_list_is_shown_as_text_and_the_prose_after_it_as_prose(qtbot) -> None:
    deep = "".join("  " * level + "- item\n" for level in range(1_000))  # 1 MB, mostly indentation
    view = shown_view(qtbot, deep + "\nAfter the **list**.\n")
    [block] = view.code_blocks()
    assert block._body.toPlainText().startswith("- item\n  - item\n")
    assert [label.text() for label in view.prose_labels()][-1:] and "After the" in view.prose_labels()[-1].text()


def test_a_list_16_deep_is_still_drawn_as_a_list(qtbot) -> None:
    view = shown_view(qtbot, "- " * 16 + "bottom")
    assert view.code_blocks() == [] and len(view.prose_labels()) == 1


def test_a_5000_column_table_is_shown_as_its_text(qtbot) -> None:
    columns = 5_000
    table = "|" + "|".join(f"h{n}" for n in range(columns)) + "|\n|" + "---|" * columns + "\n"
    table += "|" + "|".join(f"v{n}" for n in range(columns)) + "|\n"
    view = shown_view(qtbot, table)
    assert view.prose_labels() == []
    [block] = view.code_blocks()
    assert block._body.toPlainText() == table.removesuffix("\n") and "Table" in block._language_label.text()


def test_a_30_column_table_within_the_cell_bound_is_drawn_as_a_table(qtbot) -> None:
    columns, rows = 30, MAX_TABLE_CELLS // 30 - 2  # the header and the rule count as rows too
    table = "|" + "|".join(f"h{n}" for n in range(columns)) + "|\n|" + "---|" * columns + "\n"
    table += ("|" + "|".join(f"v{n}" for n in range(columns)) + "|\n") * rows
    view = shown_view(qtbot, table)
    assert view.code_blocks() == []
    assert view.prose_labels()[0].text().count("border: 1px solid") == columns * (rows + 1)


def test_a_wall_of_prose_is_shown_as_plain_text(qtbot) -> None:
    wall = "word " * 20_000  # one paragraph of 100,000 characters
    view = shown_view(qtbot, wall)
    [block] = view.code_blocks()
    assert block._body.toPlainText() == wall.removesuffix("\n")


@pytest.mark.parametrize(
    ("reply", "step"),
    [
        # A character at a time: "1" grows into "1. second", an item of the list above.
        ("1. first\n\n    indented\n\n1. second\n\n~~~~\nnot the end:\n```\n~~~~\n\n> quoted\n\nDone.\n", 1),
        ("Code:\n\n```python\n" + "x = 1\n" * 12_000 + "```\n\nDone.\n", 997),  # longer than a parsed head
    ],
    ids=["a character at a time", "a fence longer than a parsed head"],
)
def test_splitting_streamed_text_again_gives_what_splitting_it_whole_does(reply: str, step: int) -> None:
    segments = split_segments(reply[:1])
    for end in [*range(2, len(reply), step), len(reply)]:
        segments = split_extended(segments, reply[:end])
        assert segments == split_segments(reply[:end])


def composer_with(qtbot, text: str) -> ComposerWidget:
    composer = ComposerWidget()
    qtbot.addWidget(composer)
    composer.show()
    composer.edit.setPlainText(text)
    return composer


def paste(composer: ComposerWidget, text: str) -> None:
    mime = QMimeData()
    mime.setText(text)
    composer.edit.insertFromMimeData(mime)


def test_a_megabyte_paste_is_refused_and_leaves_the_message_as_it_was(qtbot) -> None:
    composer = composer_with(qtbot, "my draft")
    paste(composer, "x" * (1 << 20))
    assert composer.edit.toPlainText() == "my draft"
    assert composer.paste_refused_label.isVisible()
    assert f"{MAX_MESSAGE_CHARACTERS:,}" in composer.paste_refused_label.text()
    composer.edit.insertPlainText(" goes on")  # typing on: the note has done its job
    assert not composer.paste_refused_label.isVisible()


def test_a_paste_that_fits_is_inserted_and_a_long_line_wraps_anywhere(qtbot) -> None:
    composer = composer_with(qtbot, "")
    line = "x" * (LONG_LINE_CHARS * 2)
    paste(composer, line)
    assert composer.edit.toPlainText() == line and not composer.paste_refused_label.isVisible()
    assert composer.edit.wordWrapMode() == QTextOption.WrapMode.WrapAnywhere
    composer.edit.clear()
    paste(composer, "an ordinary line of words")
    assert composer.edit.wordWrapMode() == QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere


def test_a_paste_replacing_a_selection_counts_only_what_the_message_becomes(qtbot) -> None:
    composer = composer_with(qtbot, "y" * (MAX_MESSAGE_CHARACTERS - 10))
    composer.edit.selectAll()
    paste(composer, "z" * MAX_MESSAGE_CHARACTERS)
    assert composer.edit.toPlainText() == "z" * MAX_MESSAGE_CHARACTERS


def _message(role: str, content: str, reasoning: str = "") -> Message:
    return Message(1, 1, role, content, reasoning, MessageState.COMPLETE, 0.0, None, None)


def test_a_megabyte_question_shows_its_start_and_copy_copies_all_of_it(qtbot) -> None:
    text = "question " * 120_000  # ~1 MB, as an imported chat may hold
    widget = MessageWidget(_message("user", text))
    qtbot.addWidget(widget)
    shown = widget._body.text()
    assert shown.startswith(text[:MAX_LABEL_CHARS]) and len(shown) < MAX_LABEL_CHARS + 100
    assert f"{len(text) - MAX_LABEL_CHARS:,} more characters not shown" in shown
    assert widget.answer == text  # what Copy copies


def test_endless_thinking_shows_its_latest_part(qtbot) -> None:
    reasoning = "".join(f"step {number}. " for number in range(100_000))
    widget = MessageWidget(_message("assistant", "", reasoning))
    qtbot.addWidget(widget)
    shown = widget._reasoning_label.text()
    assert shown.endswith(reasoning.strip()[-1000:]) and len(shown) < MAX_LABEL_CHARS + 100
    assert "earlier characters not shown" in shown
