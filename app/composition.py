"""The app's Qt-free services, built together and shut down in the one order that loses nothing.

``app.main`` (the window) builds them here; so can any other front end. Shutting down: the chat
session first (a reply being written is cancelled and will be kept as interrupted), then the
engine host (its thread ends the reply, frees the model and is joined), then the store worker
(it runs the saves still queued, the end of that reply among them, and closes the file).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.chat.chat_session import ChatSession
from app.core.conversations.conversation_library import ConversationLibrary
from app.core.conversations.store_worker import StoreWorker
from app.core.engines.engine_host import EngineHost
from app.core.engines.llama.llama_engine import LlamaEngine
from app.core.profile.app_paths import AppPaths
from app.core.profile.settings import Settings


@dataclass(frozen=True)
class CoreServices:
    store: StoreWorker
    engine: EngineHost
    session: ChatSession
    library: ConversationLibrary

    @classmethod
    def start(cls, paths: AppPaths, settings: Settings) -> CoreServices:
        """Opens the conversation store and starts the engine thread; raises ``StoreError``
        when the conversation file cannot be used."""
        store = StoreWorker(paths.database)
        try:
            engine = EngineHost(LlamaEngine)
        except BaseException:
            store.shutdown()
            raise
        session = ChatSession(store, engine, default_thinking=settings.enable_thinking)
        return cls(store, engine, session, ConversationLibrary(store))

    def shutdown(self) -> None:
        """Ends everything in order (see the module docstring); harmless twice."""
        self.session.shutdown()
        self.engine.shutdown()
        self.store.shutdown()
