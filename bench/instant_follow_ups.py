"""Instant follow-ups: the next message read while it is typed, and chats resumed from the
states kept on disk, also after a restart. Through the real chat session, store and engine.

``python -m bench.instant_follow_ups MODEL.gguf`` prints the figures; ``run_benchmarks``
includes them as ``instant_follow_ups``.

* **Turn 10 vs turn 1, typed**: a 9-turn chat of ~4,000 tokens (stored, as a long chat is), its
  last reply's follow-up prepared, then a ~100-token question typed word by word: after each
  word the session is told (``read_while_typing``) and the engine given the time a typist
  would, then the question is sent. Against the same kind of question typed as turn 1 of a
  new chat. Time to the first token of each reply; also turn 10 sent without typing.
* **Reopened after a restart vs stayed open**: the same chat's follow-up with the engine that
  evaluated it, against a follow-up after the chat was left, the engine and session closed and
  started again, and the chat opened again (its state read from disk); and what reopening cost
  before states were kept (the whole chat evaluated).
* **The state file**: its size per 1,000 tokens of history, the time to write it (from leaving
  the chat until it is on disk), how long leaving keeps the engine (handing the states to the
  writer) and the time to read and check a file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from app.core.chat.chat_events import ConversationOpened, TurnFinished
from app.core.chat.chat_session import ChatSession
from app.core.chat.chat_settings import ChatSettings
from app.core.conversations.conversation_store import ConversationStore
from app.core.conversations.store_worker import StoreWorker
from app.core.domain.generation import LoadSettings
from app.core.engines.engine_events import ModelLoaded
from app.core.engines.engine_host import EngineHost, Priority
from app.core.engines.llama.llama_engine import LlamaEngine
from app.core.engines.llama.state_files import StateFiles
from bench.speed import seconds, words_with_tokens

TIMEOUT_S = 900


class Session:
    """The app's chat path on one model, its states kept in ``states``."""

    def __init__(self, model: Path, folder: Path, *, context: int, states: Path | None) -> None:
        self.files = StateFiles(states) if states is not None else None
        self.host = EngineHost(lambda: LlamaEngine(state_files=self.files))
        loaded = Recorder()
        self.host.subscribe(loaded)
        self.host.load_model(model, LoadSettings(context_size=context))
        loaded.wait(ModelLoaded)
        self.worker = StoreWorker(folder / "conversations.sqlite3")
        self.session = ChatSession(self.worker, self.host)
        self.events = Recorder()
        self.session.subscribe(self.events)

    def tokenize(self, text: str) -> list[int]:
        return self.host.call(lambda engine: engine.tokenize(text)).result(TIMEOUT_S)

    def open(self, conversation_id: int | None) -> None:
        count = len(self.events.of(ConversationOpened))
        self.session.open_conversation(conversation_id)
        self.events.wait(ConversationOpened, count + 1)
        # Short replies, thinking off: a random-weight model's would run to the limit.
        self.session.update_settings(ChatSettings(max_tokens=16, enable_thinking=False), "")

    def turn(self, text: str, *, typed: bool = False):
        """Sends ``text`` (typed word by word first, if ``typed``); its reply's statistics."""
        if typed:
            words = text.split(" ")
            for end in range(1, len(words) + 1):
                self.session.read_while_typing(" ".join(words[:end]))
                self.idle()  # a typist is slower than the engine reads: it keeps up
        self.idle()
        count = len(self.events.of(TurnFinished))
        self.session.send(text)
        reply = self.events.wait(TurnFinished, count + 1).reply
        self.idle()  # the follow-up prepared, as while the person reads the reply
        return reply.stats

    def idle(self) -> None:
        self.host.call(lambda _engine: None, Priority.PREPARATION).result(TIMEOUT_S)

    def close(self) -> None:
        self.session.shutdown()
        self.host.shutdown()
        self.worker.shutdown()
        if self.files is not None:
            self.files.wait_until_written(TIMEOUT_S)


class Recorder:
    """Session and model events, waited for without sleeping."""

    def __init__(self) -> None:
        self.events: list = []
        self._condition = threading.Condition()

    def __call__(self, event) -> None:
        with self._condition:
            self.events.append(event)
            self._condition.notify_all()

    def of(self, kind) -> list:
        with self._condition:
            return [event for event in self.events if isinstance(event, kind)]

    def wait(self, kind, count: int = 1):
        with self._condition:
            if not self._condition.wait_for(lambda: len(self.of(kind)) >= count, timeout=TIMEOUT_S):
                raise TimeoutError(kind.__name__)
            return self.of(kind)[count - 1]


def _write_chat(database: Path, tokenize, rng: random.Random, *, turns: int, user_tokens: int, reply_tokens: int) -> int:
    with ConversationStore(database) as store:
        chat = store.create_conversation(title="A long chat", model="bench")
        for _ in range(turns):
            store.add_message(chat.id, "user", words_with_tokens(tokenize, user_tokens, rng))
            store.add_message(chat.id, "assistant", words_with_tokens(tokenize, reply_tokens, rng))
        return chat.id


def measure(path: Path, *, repeats: int = 3, turns: int = 9, user_tokens: int = 100, reply_tokens: int = 330,
            context: int = 8192, seed: int = 0) -> dict:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as scratch:
        folder, states = Path(scratch), Path(scratch) / "states"
        first = Session(path, folder, context=context, states=states)
        chat = _write_chat(folder / "conversations.sqlite3", first.tokenize, rng, turns=turns,
                           user_tokens=user_tokens, reply_tokens=reply_tokens)
        questions = [words_with_tokens(first.tokenize, user_tokens, rng) for _ in range(3 * repeats + 3)]
        first.open(chat)
        cold = first.turn(questions.pop()).time_to_first_token_s  # reopening before: the whole chat read
        typed_10, sent_10 = [], []
        for _ in range(repeats):
            typed_10.append(first.turn(questions.pop(), typed=True).time_to_first_token_s)
            sent_10.append(first.turn(questions.pop()).time_to_first_token_s)
        stayed = first.turn(questions.pop())
        left = time.perf_counter()
        first.open(None)  # the chat is left: its states go to disk
        first.idle()  # the engine has handed them to the writer
        handed_over_seconds = time.perf_counter() - left
        first.files.wait_until_written(TIMEOUT_S)
        write_seconds = time.perf_counter() - left
        typed_1 = []
        for _ in range(repeats):
            first.open(None)
            typed_1.append(first.turn(questions.pop(), typed=True).time_to_first_token_s)
        first.close()
        biggest = max(states.glob("*.state"), key=lambda file: file.stat().st_size)
        started = time.perf_counter()
        data = biggest.read_bytes()
        file_bytes = len(data)
        hashlib.sha256(data).hexdigest()  # what checking it costs on top of reading it
        read_seconds = time.perf_counter() - started

        again = Session(path, folder, context=context, states=states)  # the app started again
        again.open(chat)
        reopened_stats = again.turn(questions.pop())
        reopened = reopened_stats.time_to_first_token_s
        again.close()
    history_tokens = stayed.prompt_tokens
    return {
        "history_tokens": history_tokens,
        "turn_1_typed_seconds": seconds(typed_1),
        "turn_10_typed_seconds": seconds(typed_10),
        "turn_10_sent_without_typing_seconds": seconds(sent_10),
        "typed_ratio": min(typed_10) / min(typed_1),
        "typed_median_ratio": statistics.median(typed_10) / statistics.median(typed_1),
        "reopened_cold_seconds": cold,
        "stayed_open_seconds": stayed.time_to_first_token_s,
        "reopened_after_restart_seconds": reopened,
        "reopened_ratio": reopened / stayed.time_to_first_token_s,
        "stayed_open_evaluated_tokens": stayed.evaluated_prompt_tokens,
        "reopened_evaluated_tokens": reopened_stats.evaluated_prompt_tokens,
        "state_file_bytes": file_bytes,
        "state_file_bytes_per_1000_tokens": file_bytes / (history_tokens / 1000),
        "state_write_seconds": write_seconds,
        "leaving_engine_seconds": handed_over_seconds,
        "state_read_seconds": read_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(measure(args.model, repeats=args.repeats), indent=2))


if __name__ == "__main__":
    main()
