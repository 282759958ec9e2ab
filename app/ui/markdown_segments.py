"""How a reply's Markdown is cut into blocks for display, and which blocks are too costly to draw.

The reply is cut into segments at its top-level blocks (found with markdown-it-py, so fences are
recognised exactly as CommonMark defines them): each fenced code block, and each block of prose
on its own, so that streamed text re-renders only the block it grows. Plain Python: no Qt, so
the rules are cheap to test and to time.

Budgets: a reply can be anything, and Qt lays rich text out whole, on the GUI thread, at ~1 ms per
KB of prose and ~0.25 ms per table cell (bench/README.md, "Hostile content"). So a prose block
that would take longer than the window may freeze (very long, a very large table, lists nested
very deep) is marked to be shown as preformatted text instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from itertools import accumulate

from markdown_it import MarkdownIt
from markdown_it.token import Token

# markdown-it's own bound on block nesting (it stops nesting there, so parsing stays quick and
# never recurses deep): 16 nested lists take 33 levels (a list and an item each, then the
# paragraph), so a block that reaches the bound is deeper than any real reply's.
MAX_NESTING = 36
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
_MARKDOWN = MarkdownIt("commonmark", {"maxNesting": MAX_NESTING}).disable("inline")

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
        return Segment("".join(lines[first:end]), start=offsets[first], too_deep=depth >= MAX_NESTING - 1)
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
