"""The store worker: one thread owns the SQLite connection and runs every job, in order."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from app.core.conversations.conversation_events import ConversationsChanged
from app.core.conversations.conversation_store import NotFoundError, StoreError
from app.core.conversations.store_worker import StoreWorker
from tests.event_recorder import TIMEOUT_S, EventRecorder


@pytest.fixture
def worker(tmp_path: Path):
    worker = StoreWorker(tmp_path / "data" / "conversations.sqlite3")
    yield worker
    worker.shutdown()


def test_jobs_run_in_order_on_the_workers_own_thread(worker: StoreWorker) -> None:
    threads, order = [], []
    futures = [
        worker.submit(lambda store, number=number: (threads.append(threading.current_thread()), order.append(number)))
        for number in range(20)
    ]
    for future in futures:
        future.result(TIMEOUT_S)
    assert order == list(range(20))
    assert set(threads) == {worker.thread} and worker.thread is not threading.current_thread()


def test_the_connection_refuses_every_other_thread(worker: StoreWorker) -> None:
    store = worker.submit(lambda store: store).result(TIMEOUT_S)
    with pytest.raises(sqlite3.ProgrammingError):
        store.list_conversations()  # this thread is not the owner


def test_a_failing_job_hands_its_error_to_the_caller_and_the_next_job_runs(worker: StoreWorker) -> None:
    failing = worker.submit(lambda store: store.get_conversation(404))
    with pytest.raises(NotFoundError):
        failing.result(TIMEOUT_S)
    assert worker.submit(lambda store: store.list_conversations()).result(TIMEOUT_S) == []


def test_listeners_get_the_list_at_once_then_after_each_change_only(worker: StoreWorker) -> None:
    events = EventRecorder()
    worker.subscribe(events)
    assert events.wait_for(ConversationsChanged).conversations == ()
    conversation = worker.submit(lambda store: store.create_conversation(title="First")).result(TIMEOUT_S)
    worker.submit(lambda store: store.update_conversation(conversation.id, system_prompt="quiet")).result(TIMEOUT_S)
    worker.submit(lambda store: store.rename_conversation(conversation.id, "Renamed")).result(TIMEOUT_S)
    renamed = events.wait_for(ConversationsChanged, count=3)
    assert [c.title for c in renamed.conversations] == ["Renamed"]
    assert len(events.of(ConversationsChanged)) == 3  # the settings change was not a list change


def test_shutdown_runs_what_was_queued_then_closes_the_file(tmp_path: Path) -> None:
    database = tmp_path / "conversations.sqlite3"
    worker = StoreWorker(database)
    release = threading.Event()
    worker.submit(lambda store: release.wait(TIMEOUT_S))
    queued = worker.submit(lambda store: store.create_conversation(title="Queued before closing"))
    release.set()
    worker.shutdown()
    assert queued.result(0).title == "Queued before closing"
    assert not worker.thread.is_alive()
    with pytest.raises(RuntimeError):
        worker.submit(lambda store: None)
    reopened = StoreWorker(database)
    try:
        titles = reopened.submit(lambda store: [c.title for c in store.list_conversations()]).result(TIMEOUT_S)
    finally:
        reopened.shutdown()
    assert titles == ["Queued before closing"]


def test_a_file_that_is_not_a_database_is_refused_with_the_reason(tmp_path: Path) -> None:
    database = tmp_path / "notes.sqlite3"
    database.write_bytes(b"my notes, not a database\n" * 100)
    with pytest.raises(StoreError, match="not a SQLite database"):
        StoreWorker(database)
