"""The longest GUI-thread stall for hostile pastes and replies, on the real widgets offscreen.

Each probe runs inside the Qt event loop while a 1 ms timer ticks on the GUI thread; the longest
gap between ticks, from the probe's start until its text is shown (and highlighted) and the
window has been idle a moment, is how long input would have waited. A probe still not done
after ``--timeout`` seconds is reported as at least that.

    python -m bench.hostile_content            # every probe
    python -m bench.hostile_content code_1mb_once table_5000_columns

Runs on whatever ``app`` is importable: ``PYTHONPATH=/tmp/before`` measures another tree.
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop, QMimeData, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.core.domain.conversations import Message, MessageState  # noqa: E402
from app.ui import markdown_view  # noqa: E402
from app.ui.composer_widget import ComposerWidget  # noqa: E402
from app.ui.stream_coalescer import StreamCoalescer  # noqa: E402
from app.ui.transcript_view import TranscriptView  # noqa: E402
from bench.gui_checks import TickRecorder  # noqa: E402

ROUNDS = 3  # each probe's figure is the median of its rounds: the machine's other work varies
SETTLE_MS = 300  # idle time after a probe, so layout and painting it caused are counted
STREAM_CHUNK_CHARS = 4_000  # text the fake model adds per millisecond: 1 MB streams in ~0.3 s
MB = 1 << 20


def python_code(characters: int) -> str:
    """Real Python source (this app's Markdown view, repeated) of about ``characters``."""
    source = inspect.getsource(markdown_view)
    return (source * (characters // len(source) + 1))[:characters]


def code_reply(code: str) -> str:
    return f"Here is the file:\n\n```python\n{code}\n```\n\nThat is all.\n"


def table_reply(columns: int, rows: int) -> str:
    header = "|" + "|".join(f"col {index}" for index in range(columns)) + "|\n"
    rule = "|" + "---|" * columns + "\n"
    return header + rule + ("|" + "|".join(f"v{index}" for index in range(columns)) + "|\n") * rows


def _message(content: str, state: MessageState) -> Message:
    return Message(1, 1, "assistant", content, "", state, time.time(), None, None)


class Harness:
    """A transcript and a composer shown offscreen, as in the window, and a way to time probes."""

    def __init__(self) -> None:
        self.transcript = TranscriptView()
        self.transcript.resize(1000, 800)
        self.transcript.show()
        self.composer = ComposerWidget()
        self.composer.resize(1000, 160)
        self.composer.show()

    def busy(self) -> bool:
        """Whether shown code is still being highlighted (slices still to come)."""
        blocks = [block for widget in self.transcript.message_widgets() if widget.markdown_view
                  for block in widget.markdown_view.code_blocks()]
        return any(getattr(block, "is_highlighting", False) for block in blocks)

    def longest_stall_ms(self, probe: Callable[[], Callable[[], bool]], timeout_s: float) -> float:
        """Runs ``probe`` (which returns a "done" predicate) from the event loop; the longest tick gap."""
        self.transcript.set_messages([])
        QApplication.processEvents()
        ticks = TickRecorder()
        loop = QEventLoop()
        state: dict[str, Callable[[], bool] | float] = {}

        def start() -> None:
            state["done"] = probe()

        def poll() -> None:
            done = state.get("done")
            if done is None or not done() or self.busy():
                state.pop("idle_since", None)
                return
            state.setdefault("idle_since", time.perf_counter())
            if time.perf_counter() - state["idle_since"] > SETTLE_MS / 1000:
                loop.quit()

        poller = QTimer()
        poller.setInterval(5)
        poller.timeout.connect(poll)
        deadline = QTimer()
        deadline.setSingleShot(True)
        deadline.timeout.connect(loop.quit)
        ticks.start()
        poller.start()
        deadline.start(int(timeout_s * 1000))
        QTimer.singleShot(0, start)
        began = time.perf_counter()
        loop.exec()
        timed_out = time.perf_counter() - began >= timeout_s
        ticks.stop()
        poller.stop()
        longest = max(ticks.gaps_ms())
        return max(longest, timeout_s * 1000) if timed_out else longest

    # The probes: each starts its work and returns when it is done.

    def paste(self, text: str) -> Callable[[], bool]:
        self.composer.edit.clear()
        mime = QMimeData()
        mime.setText(text)
        self.composer.edit.insertFromMimeData(mime)
        return lambda: True

    def render_once(self, reply: str) -> Callable[[], bool]:
        self.transcript.add_message(_message(reply, MessageState.COMPLETE))
        return lambda: True

    def stream(self, reply: str) -> Callable[[], bool]:
        """Streams ``reply`` through the window's coalescer into a streaming reply's widget."""
        widget = self.transcript.add_message(_message("", MessageState.STREAMING))
        coalescer = StreamCoalescer(widget)
        coalescer.sig_flushed.connect(widget.append)
        producer = QTimer(widget)
        producer.setInterval(1)
        position = {"at": 0}

        def produce() -> None:
            start = position["at"]
            coalescer.add("", reply[start:start + STREAM_CHUNK_CHARS])
            position["at"] = start + STREAM_CHUNK_CHARS
            if position["at"] >= len(reply):
                producer.stop()
                coalescer.flush()

        producer.timeout.connect(produce)
        producer.start()
        return lambda: not producer.isActive() and widget.answer == reply


PROBES: dict[str, Callable[[Harness], Callable[[], bool]]] = {
    "paste_1mb_line": lambda harness: harness.paste("x" * MB),
    "paste_200kb_line": lambda harness: harness.paste("x" * 200_000),
    "code_1mb_once": lambda harness: harness.render_once(code_reply(python_code(MB))),
    "code_1mb_streamed": lambda harness: harness.stream(code_reply(python_code(MB))),
    "code_1mb_line_once": lambda harness: harness.render_once(code_reply("x" * MB)),
    "list_10000_deep": lambda harness: harness.render_once("- " * 10_000 + "deep"),
    "list_1000_deep_indented": lambda harness: harness.render_once(
        "".join("  " * level + "- item\n" for level in range(1_000))
    ),
    "quote_10000_deep": lambda harness: harness.render_once("> " * 10_000 + "deep"),
    "table_5000_columns": lambda harness: harness.render_once(table_reply(5_000, 3)),
    "prose_200kb_line": lambda harness: harness.render_once("x" * 200_000),
    "normal_code_2000_lines": lambda harness: harness.render_once(code_reply(python_code(88_000))),
    "normal_table_30x8": lambda harness: harness.render_once(table_reply(30, 8)),
}


def measure(probes: list[str] | None = None, *, rounds: int = ROUNDS, timeout_s: float = 120.0, report=None) -> dict[str, float]:
    """The median longest GUI stall of each probe, in milliseconds (a QApplication must exist).
    ``report(name, stalls)`` is told each probe's rounds as they finish."""
    harness = Harness()
    harness.longest_stall_ms(lambda: harness.render_once(code_reply("x = 1\n")), 10)  # imports, fonts
    medians = {}
    for name in probes or PROBES:
        stalls = [harness.longest_stall_ms(lambda name=name: PROBES[name](harness), timeout_s) for _round in range(rounds)]
        medians[name] = statistics.median(stalls)
        if report is not None:
            report(name, stalls)
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("probes", nargs="*", metavar="PROBE", help=f"any of: {', '.join(PROBES)} (default: all)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a probe may take")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds of each probe (the median is shown)")
    arguments = parser.parse_args()
    unknown = set(arguments.probes) - set(PROBES)
    if unknown:
        parser.error(f"no such probe: {', '.join(sorted(unknown))}")
    app = QApplication.instance() or QApplication([])

    def report(name: str, stalls: list[float]) -> None:
        rounds = ", ".join(f"{stall:.0f}" for stall in stalls)
        print(f"{name:24} longest GUI stall {statistics.median(stalls):9.1f} ms  (rounds: {rounds})", flush=True)

    measure(arguments.probes, rounds=arguments.rounds, timeout_s=arguments.timeout, report=report)
    del app


if __name__ == "__main__":
    main()
