"""Streamed text reaches the window in batches, and less often when showing it gets expensive."""

from __future__ import annotations

import time

from app.ui.stream_coalescer import BACKOFF, FLUSH_INTERVAL_MS, MAX_INTERVAL_MS, StreamCoalescer

SLOW_SLOT_CPU_S = 0.02


def _burn_cpu(seconds: float) -> None:
    started = time.thread_time()
    while time.thread_time() - started < seconds:
        pass


def test_pieces_arrive_together_and_in_order(qtbot) -> None:
    coalescer = StreamCoalescer()
    released: list[tuple[str, str]] = []
    coalescer.sig_flushed.connect(lambda reasoning, answer: released.append((reasoning, answer)))
    for piece in ("Hel", "lo", " world"):
        coalescer.add("", piece)
    coalescer.add("hmm", "")
    assert released == []  # nothing before the interval
    qtbot.waitUntil(lambda: bool(released))
    assert released == [("hmm", "Hello world")]


def test_when_showing_text_is_slow_it_is_shown_less_often_until_the_reply_ends(qtbot) -> None:
    coalescer = StreamCoalescer()
    released: list[str] = []

    def show(_reasoning: str, answer: str) -> None:
        released.append(answer)
        _burn_cpu(SLOW_SLOT_CPU_S)  # a long reply's re-layout

    coalescer.sig_flushed.connect(show)
    for piece in ("a", "b", "c"):
        coalescer.add("", piece)
        qtbot.waitUntil(lambda piece=piece: bool(released) and released[-1] == piece)
    # The GUI thread spent >= 20 ms per release: the next one waits BACKOFF times that long.
    assert BACKOFF * SLOW_SLOT_CPU_S * 1000 <= coalescer.interval_ms <= MAX_INTERVAL_MS

    coalescer.add("", "end")
    coalescer.flush()  # the reply ended: everything is shown, and the next reply starts quick
    assert released[-1] == "end"
    assert coalescer.interval_ms == FLUSH_INTERVAL_MS
