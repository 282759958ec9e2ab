"""A process killed while it streams a reply leaves an intact file with the reply saved so far."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from app.core.conversations.conversation_store import ConversationStore
from app.core.domain.conversations import MessageState

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]

# Streams "a0 a1 a2 ..." forever into one STREAMING message, the way the chat session does: the
# recorder hands each save to the store worker's thread, which prints the length of the saved
# answer after the save has committed, so every printed number is a promise about what is on disk.
CHILD_SCRIPT = """
import sys
import time
from pathlib import Path

from app.core.chat.reply_recorder import ReplyRecorder
from app.core.conversations.store_worker import StoreWorker
from app.core.domain.conversations import MessageState


def start(store):
    conversation = store.create_conversation(title="crash test")
    store.add_message(conversation.id, "user", "Count forever.")
    return store.add_message(conversation.id, "assistant", state=MessageState.STREAMING).id


def save(content, reasoning):
    def job(store):
        store.update_message(reply_id, content=content, reasoning=reasoning)
        print(len(content), flush=True)

    worker.submit(job)


worker = StoreWorker(Path(sys.argv[1]))
reply_id = worker.submit(start).result()
recorder = ReplyRecorder(save, save_interval_s=0.01)
token_number = 0
while True:
    recorder.append(f"r{token_number} ", f"a{token_number} ")
    token_number += 1
    time.sleep(0.001)  # a token rate, so that each save holds a handful of tokens
"""

SAVES_BEFORE_KILL = 5
WHOLE_TEST_TIMEOUT_S = 60


def test_killed_while_streaming_keeps_an_intact_file_and_the_saved_reply(tmp_path: Path) -> None:
    database_path = tmp_path / "conversations.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_SCRIPT, str(database_path)],
        cwd=REPOSITORY_ROOT,  # `-c` puts the working directory on sys.path, so `app` imports
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # If the child stalls, killing it ends the blocking readline below with end-of-file.
    watchdog = threading.Timer(WHOLE_TEST_TIMEOUT_S, child.kill)
    watchdog.start()
    try:
        saved_lengths: list[int] = []
        while len(saved_lengths) < SAVES_BEFORE_KILL:
            line = child.stdout.readline()
            if not line:
                break
            saved_lengths.append(int(line))
        # Popen.kill is SIGKILL on POSIX (TerminateProcess on Windows): the child gets no chance
        # to finish a write, commit or close anything.
        child.kill()
        _, child_errors = child.communicate(timeout=WHOLE_TEST_TIMEOUT_S)
    finally:
        watchdog.cancel()
        child.kill()
    assert len(saved_lengths) == SAVES_BEFORE_KILL, f"child stopped early:\n{child_errors}"

    raw = sqlite3.connect(database_path)
    try:
        integrity = raw.execute("PRAGMA integrity_check").fetchall()
    finally:
        raw.close()
    assert integrity == [("ok",)]

    with ConversationStore(database_path) as store:
        (conversation,) = store.list_conversations()
        _, reply = store.messages(conversation.id)
    assert reply.state is MessageState.INTERRUPTED
    assert len(reply.content) >= saved_lengths[-1] > 0
    # Whatever made it to disk is a clean prefix of the stream, answer and reasoning alike.
    answer_words = reply.content.split()
    assert answer_words == [f"a{number}" for number in range(len(answer_words))]
    reasoning_words = reply.reasoning.split()
    assert reasoning_words == [f"r{number}" for number in range(len(answer_words))]
