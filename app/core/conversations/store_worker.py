"""The store worker: the one thread that owns the conversation store, and its queue of jobs.

SQLite work never runs on the GUI thread: a commit syncs the database to disk
(``synchronous = FULL``, so a power cut loses nothing committed) and takes tens of milliseconds
on a laptop disk; exporting or importing many chats takes far longer. So one long-lived thread
opens the store (its connection belongs to that thread; sqlite3 refuses any other) and runs the
jobs others hand it, one at a time, in the order they came. A job is a function of the store;
its result (or exception) arrives in the ``Future`` that ``submit`` returns.

After every job that changed what the conversation list shows (``ConversationStore.list_version``),
the worker reads the list once and hands it to every listener as ``ConversationsChanged``: this
is how screens learn that the list changed, whoever changed it. Listeners are called on the
worker thread and must only hand the event on (the Qt bridge queues a signal).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

from app.core.conversations.conversation_events import ConversationsChanged
from app.core.conversations.conversation_store import ConversationStore
from app.core.listeners import Listeners, deliver

logger = logging.getLogger(__name__)

T = TypeVar("T")
Job = Callable[[ConversationStore], T]

_STOP = object()


class StoreWorker:
    """Runs jobs on the conversation store from its own thread; every method is thread-safe."""

    def __init__(self, database: Path, *, clock: Callable[[], float] = time.time) -> None:
        """Opens ``database`` on the new thread; raises ``StoreError`` (from the thread) when the
        file cannot be used, after which the worker is stopped."""
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._listeners: Listeners[ConversationsChanged] = Listeners()
        self._lock = threading.Lock()  # guards _closed against a submit racing shutdown
        self._closed = False
        opened: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(database, clock, opened), name="conversation-store", daemon=True
        )
        self._thread.start()
        opened.result()  # raises what opening raised

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def submit(self, job: Job[T]) -> Future[T]:
        """Queues ``job(store)``; the future holds its result or exception. Unexpected exceptions
        are also logged, since fire-and-forget jobs (a reply's periodic save) have no reader."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the conversation store has been closed")
            self._jobs.put((job, future))
        return future

    def subscribe(self, listener: Callable[[ConversationsChanged], None]) -> None:
        """Calls ``listener`` with the conversation list now, then after every change to it."""

        def send_current(store: ConversationStore) -> None:
            self._listeners.add(listener)
            deliver(listener, ConversationsChanged(tuple(store.list_conversations())))

        self.submit(send_current)

    def shutdown(self) -> None:
        """Runs the jobs already queued, closes the store and joins the thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._jobs.put(_STOP)
        self._thread.join()

    def _run(self, database: Path, clock: Callable[[], float], opened: Future[None]) -> None:
        try:
            store = ConversationStore(database, clock=clock)
        except BaseException as error:
            with self._lock:
                self._closed = True
            opened.set_exception(error)
            return
        opened.set_result(None)
        published_version = store.list_version
        try:
            while (item := self._jobs.get()) is not _STOP:
                job, future = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(job(store))
                except BaseException as error:  # handed to whoever waits on the future
                    logger.exception("A conversation store job failed")
                    future.set_exception(error)
                if store.list_version != published_version:
                    published_version = store.list_version
                    self._listeners.emit(ConversationsChanged(tuple(store.list_conversations())))
        finally:
            store.close()
