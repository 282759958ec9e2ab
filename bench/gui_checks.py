"""Measurements of the real main window (``app.main.build_main_window``), driven like a user.

Run with a QApplication on the offscreen platform; everything here happens on its GUI thread.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QAbstractEventDispatcher, QEvent, QEventLoop, QObject, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.core.chat.chat_events import NextTurnPrepared
from app.core.conversations.conversation_store import ConversationStore
from app.core.domain.conversations import Message, MessageState
from app.core.domain.generation import GenerationStats, StopReason
from app.core.profile.app_paths import AppPaths
from app.main import DesktopApp, build_app
from app.ui.main_window import MainWindow
from app.ui.transcript_view import TranscriptView

WAIT_S = 600.0
WORDS = (
    "the model reads each token once and keeps a small state for the next one so that a long "
    "conversation costs little memory while attention layers remember every position exactly "
    "weights quantized to four bits fit into ordinary laptops and run at reading speed"
).split()


def run_until(predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    """Runs the Qt event loop (as ``app.exec()`` would) until ``predicate`` holds."""
    loop = QEventLoop()
    poll = QTimer()
    poll.setInterval(5)
    poll.timeout.connect(lambda: predicate() and loop.quit())
    deadline = QTimer()
    deadline.setSingleShot(True)
    deadline.timeout.connect(loop.quit)
    poll.start()
    deadline.start(int(timeout_s * 1000))
    if not predicate():
        loop.exec()
    poll.stop()
    deadline.stop()
    if not predicate():
        raise TimeoutError("the window did not get there in time")


class TickRecorder(QObject):
    """A 1 ms timer on the GUI thread; the gaps between its ticks are how long input would wait."""

    def __init__(self) -> None:
        super().__init__()
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(1)
        self._timer.timeout.connect(self._tick)
        self.ticks: list[float] = []

    def start(self) -> None:
        self.ticks = [time.perf_counter()]
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self.ticks.append(time.perf_counter())

    def _tick(self) -> None:
        self.ticks.append(time.perf_counter())

    def gaps_ms(self, since: float = 0.0, until: float = float("inf")) -> list[float]:
        """Gaps that end after ``since`` and start before ``until`` (``time.perf_counter``)."""
        pairs = zip(self.ticks, self.ticks[1:])
        return [(later - earlier) * 1000 for earlier, later in pairs if later > since and earlier < until]


def open_app(profile_dir: Path) -> DesktopApp:
    """The app on ``profile_dir``, its window shown with its first conversation on screen."""
    app = build_app(AppPaths.under(profile_dir))
    app.window.show()
    run_until(lambda: app.window.is_ready)
    return app


def open_window(profile_dir: Path) -> MainWindow:
    return open_app(profile_dir).window


def load_model(window: MainWindow, model: Path) -> None:
    window.load_model(model)
    run_until(lambda: window.composer.send_button.isEnabled())


def streaming_responsiveness(window: MainWindow, prompt: str, stream_seconds: float) -> dict:
    """Sends ``prompt``, lets the reply stream for ``stream_seconds``, then presses Stop.

    Reports the longest gap between 1 ms ticks while the reply streamed and whether the window
    shows exactly the text the engine generated.
    """
    results: list[Message] = []
    # The window's own slots run too; this one keeps the stored reply: what was generated.
    window.chat.sig_reply_finished.connect(results.append)
    window.composer.thinking_switch.setChecked(False)  # the answer streams into the visible body
    ticks = TickRecorder()
    ticks.start()
    window.chat.send(prompt)
    run_until(lambda: bool(window.transcript.message_widgets()) and window.transcript.message_widgets()[-1].role == "assistant")
    reply = window.transcript.message_widgets()[-1]
    run_until(lambda: bool(reply.answer))
    streaming_from, cpu_from, waits_from = time.perf_counter(), time.thread_time(), _cpu_wait_seconds()
    run_until(lambda: time.perf_counter() - streaming_from >= stream_seconds or not window.is_generating)
    streaming_until = time.perf_counter()
    streamed = streaming_until - streaming_from
    cpu, waits = time.thread_time() - cpu_from, _cpu_wait_seconds() - waits_from
    window.chat.stop()
    run_until(lambda: not window.is_generating and bool(results))
    ticks.stop()
    window.chat.sig_reply_finished.disconnect(results.append)
    stored = results[0]
    gaps = ticks.gaps_ms(streaming_from, streaming_until)
    return {
        "generated_tokens": stored.stats.generated_tokens,
        "tokens_per_second": stored.stats.tokens_per_second,
        "shown_characters": len(reply.answer),
        "shown_equals_generated": reply.answer == stored.content,
        "longest_tick_gap_ms": max(gaps),
        "p99_tick_gap_ms": _percentile(gaps, 0.99),
        "ticks": len(gaps),
        # Not streaming, but shown for completeness: sending (storing the question, building the
        # reply's widget) and finishing (storing the reply, its statistics) block once each.
        "longest_tick_gap_sending_ms": max(ticks.gaps_ms(until=streaming_from)),
        "longest_tick_gap_finishing_ms": max(ticks.gaps_ms(since=streaming_until)),
        # Share of one core the GUI thread used (the 1 ms timer itself included), and the share of
        # time it was ready to run but waited for a core that the inference threads held.
        "gui_thread_cpu_share": cpu / streamed,
        "gui_thread_waiting_for_cpu_share": waits / streamed if waits_from >= 0 else None,
    }


def update_cost_by_length(lengths: list[int]) -> dict[str, float]:
    """Milliseconds the GUI thread is blocked when a streaming reply of each length (characters of
    Markdown prose) receives one more piece: the update, layout and painting of the transcript,
    measured on the app's transcript widget at the window's usual size."""
    rng = random.Random(1)
    message = Message(
        id=1, conversation_id=1, role="assistant", content="", reasoning="", state=MessageState.STREAMING,
        created_at=time.time(), stats=None, error=None,
    )
    view = TranscriptView()
    view.resize(760, 560)
    view.show()
    widget = view.add_message(message)
    costs = {}
    for length in sorted(lengths):
        text = []
        while len(widget.answer) + sum(map(len, text)) < length:
            text.append(" ".join(rng.choices(WORDS, k=12)) + (".\n\n" if rng.random() < 0.2 else " "))
        widget.append("", "".join(text))
        settle(0.2)
        started = time.perf_counter()
        widget.append("", " ".join(rng.choices(WORDS, k=3)) + " ")
        for _ in range(5):  # the update's events: the column's re-fit timer, layout, paint
            QApplication.processEvents()
        costs[str(length)] = (time.perf_counter() - started) * 1000
    view.close()
    return costs


# ------------------------------------------------------------------------ a long conversation


def write_long_conversation(database: Path, message_count: int, seed: int = 0) -> tuple[int, int]:
    """Stores a ``message_count``-message chat and, after it, a short one (the most recent).

    Replies are Markdown of a few hundred words, half with reasoning, all with statistics, like
    a long real chat. Returns the two conversation ids (long, short).
    """
    rng = random.Random(seed)

    def words(low: int, high: int) -> str:
        return " ".join(rng.choices(WORDS, k=rng.randint(low, high)))

    with ConversationStore(database) as store:
        long_chat = store.create_conversation(title="A long chat", model="Qwen3.5-0.8B")
        for turn in range(message_count // 2):
            store.add_message(long_chat.id, "user", f"Question {turn}: {words(15, 60)}?")
            answer = "\n\n".join(
                [words(40, 90), f"- **{words(2, 4)}**: {words(8, 20)}\n- {words(8, 20)}\n- {words(8, 20)}", words(30, 80)]
            )
            reply = store.add_message(long_chat.id, "assistant", answer, reasoning=words(40, 120) if turn % 2 else "")
            stats = GenerationStats(
                prompt_tokens=40 * turn + 200,
                evaluated_prompt_tokens=120,
                generated_tokens=300,
                time_to_first_token_s=0.8,
                tokens_per_second=29.5,
                stop_reason=StopReason.END_OF_TURN,
            )
            store.update_message(reply.id, stats=stats)
        short_chat = store.create_conversation(title="A short chat")
        store.add_message(short_chat.id, "user", "Hello")
        store.add_message(short_chat.id, "assistant", "Hello! How can I help?")
        return long_chat.id, short_chat.id


def select_conversation(window: MainWindow, conversation_id: int) -> None:
    """Selects the conversation in the list, as a click does: the list takes the keyboard focus
    too (else the composer, focused at start, keeps a blinking cursor that repaints the window
    twice a second and would count as part of opening the chat)."""
    sidebar = window.sidebar
    sidebar.list_view.setFocus()
    sidebar.list_view.setCurrentIndex(sidebar.model.index(sidebar.model.row_of(conversation_id)))


def write_many_conversations(database: Path, count: int, messages_each: int, seed: int = 0) -> None:
    """Stores ``count`` chats of ``messages_each`` messages, with statistics on the replies."""
    rng = random.Random(seed)
    with ConversationStore(database) as store:
        for number in range(count):
            chat = store.create_conversation(title=f"Chat {number}", model="Qwen3.5-0.8B")
            for turn in range(messages_each // 2):
                store.add_message(chat.id, "user", " ".join(rng.choices(WORDS, k=20)) + "?")
                reply = store.add_message(chat.id, "assistant", " ".join(rng.choices(WORDS, k=120)))
                store.update_message(reply.id, stats=GenerationStats(300, 40, 120, 0.4, 30.0, StopReason.END_OF_TURN))


def sending_into(window: MainWindow, conversation_id: int, text: str) -> dict:
    """Opens the conversation, sends ``text`` and lets the reply end: the GUI thread's longest
    stall from the key press to the end of the reply (storing the question, the reply's
    widget, the streamed text, the stored end)."""
    select_conversation(window, conversation_id)
    run_until(lambda: window.conversation_id == conversation_id)
    settle()
    ticks = TickRecorder()
    ticks.start()
    sent = time.perf_counter()
    window.chat.send(text)
    run_until(lambda: not window.is_generating)
    ticks.stop()
    gaps = ticks.gaps_ms(sent)
    return {"longest_tick_gap_ms": max(gaps), "p99_tick_gap_ms": _percentile(gaps, 0.99), "seconds": time.perf_counter() - sent}


PHRASE_PAUSE_S = 0.8  # a typist's pause at the end of a phrase, when the message is read


def typing_while_reading(app: DesktopApp, conversation_id: int, text: str, characters_per_second: float) -> dict:
    """Opens the conversation and types ``text`` into the message box at a person's pace, key
    by key, with a thinking pause after each phrase (``PHRASE_PAUSE_S`` after , . ?), while the
    engine reads in the pauses (at the first, the chat's history as well): the GUI thread's
    longest stall while typing, and what the engine read."""
    window = app.window
    select_conversation(window, conversation_id)
    run_until(lambda: window.conversation_id == conversation_id)
    settle()
    box = window.composer.edit
    box.setFocus()
    prepared: list[int] = []
    app.core.session.subscribe(lambda event: prepared.append(event.evaluated_tokens) if isinstance(event, NextTurnPrepared) else None)
    ticks = TickRecorder()
    ticks.start()
    started = due = time.perf_counter()
    for character in text:
        run_until(lambda: time.perf_counter() >= due)
        QTest.keyClicks(box, character)
        due += 1 / characters_per_second + (PHRASE_PAUSE_S if character in ",.?" else 0.0)
    typed = time.perf_counter()
    ticks.stop()
    gaps = ticks.gaps_ms(started, typed)
    run_until(lambda: sum(prepared) > 0 and not app.core.engine.running_priority, timeout_s=120)
    box.clear()
    return {
        "characters": len(text),
        "characters_per_second": characters_per_second,
        "typing_seconds": typed - started,
        "longest_tick_gap_ms": max(gaps),
        "p99_tick_gap_ms": _percentile(gaps, 0.99),
        "tokens_read_while_typing": sum(prepared),
    }


def exporting_all(app: DesktopApp, path: Path) -> dict:
    """Exports every chat as the File menu does; the GUI thread's longest stall until the
    window says it is done, and how long that took."""
    window = app.window
    window.info_banner.hide()
    ticks = TickRecorder()
    ticks.start()
    started = time.perf_counter()
    app.core.library.export_all(path)
    run_until(lambda: window.info_banner.isVisible())
    ticks.stop()
    gaps = ticks.gaps_ms(started)
    return {
        "longest_tick_gap_ms": max(gaps),
        "seconds": time.perf_counter() - started,
        "file_bytes": path.stat().st_size,
        "banner": window.info_banner.label.text(),
    }


class _RepaintWatcher(QObject):
    """Notes when the window last finished a repaint: an update request, then the event loop
    running out of work (only the top-level window is watched, so this costs next to nothing)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__()
        self._window = window
        self._pending = False
        self.last_repaint_done: float | None = None
        window.installEventFilter(self)
        QAbstractEventDispatcher.instance().aboutToBlock.connect(self._on_idle)

    def eventFilter(self, _watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.UpdateRequest:
            self._pending = True
        return False

    def _on_idle(self) -> None:
        if self._pending:
            self._pending = False
            self.last_repaint_done = time.perf_counter()

    def close(self) -> None:
        self._window.removeEventFilter(self)
        QAbstractEventDispatcher.instance().aboutToBlock.disconnect(self._on_idle)


def open_conversation_seconds(window: MainWindow, conversation_id: int, watch_s: float = 0.5) -> float:
    """Selects another conversation and times it until the window has finished repainting it
    (the last repaint in the ``watch_s`` that follow; a layout may take a second pass)."""
    watcher = _RepaintWatcher(window)
    started = time.perf_counter()
    select_conversation(window, conversation_id)
    settle(watch_s)
    watcher.close()
    if watcher.last_repaint_done is None:
        raise TimeoutError("the window did not repaint")
    return watcher.last_repaint_done - started


def settle(seconds: float = 0.3) -> None:
    """Lets pending layout and painting finish before the next measurement."""
    until = time.perf_counter() + seconds
    run_until(lambda: time.perf_counter() >= until)


def _cpu_wait_seconds() -> float:
    """Seconds this thread has been runnable but not running (Linux schedstat); -1 elsewhere."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat", encoding="ascii") as schedstat:
            return int(schedstat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return -1.0


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0
