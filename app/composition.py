"""The app's Qt-free services, built together and shut down in the one order that loses nothing.

``app.main`` (the window) builds them here; so can any other front end. Shutting down: the chat
session first (a reply being written is cancelled and will be kept as interrupted), then the
tools (MCP servers are stopped), then the engine host (its thread ends the reply, keeps the newest
model state on disk, frees the model and is joined), then the store worker
(it runs the saves still queued, the end of that reply among them, and closes the file). The
local API stops before all of them: its open replies are cancelled and its clients told.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.core.api.local_api_service import LocalApiService
from app.core.chat.chat_session import ChatSession
from app.core.conversations.conversation_library import ConversationLibrary
from app.core.conversations.store_worker import StoreWorker
from app.core.engines.engine_host import EngineHost
from app.core.engines.engine_switch import EngineSwitch
from app.core.engines.llama.llama_engine import LlamaEngine
from app.core.engines.llama.llama_runtime import accelerator_report
from app.core.engines.llama.model_gate import ModelGate
from app.core.engines.llama.state_files import StateFiles
from app.core.engines.remote.model_servers import ModelServers
from app.core.engines.remote.remote_engine import RemoteEngine
from app.core.models.hardware_probe import probe_hardware
from app.core.models.memory_fit import MemoryFit
from app.core.profile.app_paths import AppPaths
from app.core.profile.settings import Settings
from app.core.tools.tool_service import ToolService

SEARCH_TIMEOUT_S = 10.0  # the built-in search tool waits this long for the store


ENGINE_STOP_SECONDS = 3.0  # closing waits this long for a reply or load to end, then goes on
STATE_WRITE_SECONDS = 10.0  # and this long for the newest model state to reach the disk (~70 MB)


@dataclass(frozen=True)
class CoreServices:
    store: StoreWorker
    engine: EngineHost
    session: ChatSession
    library: ConversationLibrary
    api: LocalApiService
    tools: ToolService
    model_servers: ModelServers
    saved_states: StateFiles
    """The model states kept on disk for conversations resumed later (Settings shows their size)."""
    image_path: Callable[[str], Path]
    """Where the store keeps the picture with a given SHA-256 (``ConversationStore.image_path``;
    ValueError for a name that is no SHA-256), for screens to show."""

    @classmethod
    def start(cls, paths: AppPaths, settings: Settings) -> CoreServices:
        """Opens the conversation store and starts the engine thread; raises ``StoreError``
        when the conversation file cannot be used."""
        store = StoreWorker(paths.database)
        model_servers = ModelServers(paths.config_dir, offline=settings.offline_mode)
        saved_states = StateFiles(paths.saved_states, lambda: settings.saved_states_budget_bytes)
        try:
            engine = start_engine_host(paths.model_checks, saved_states, model_servers)
        except BaseException:
            store.shutdown()
            raise
        tools = ToolService(
            paths.config_dir,
            lambda query: store.submit(lambda opened: opened.search(query)).result(SEARCH_TIMEOUT_S),
            offline=settings.offline_mode,
        )
        session = ChatSession(store, engine, default_thinking=settings.enable_thinking, tools=tools)
        session.set_image_detail(settings.image_detail)
        session.set_read_while_typing(settings.read_while_typing, on_battery=settings.read_while_typing_on_battery)
        # The store's own method: it reads only the folder fixed when the store opened, never the
        # database, so the GUI thread may call it.
        image_path = store.submit(lambda opened: opened.image_path).result()
        return cls(
            store, engine, session, ConversationLibrary(store), LocalApiService(engine), tools, model_servers,
            saved_states, image_path,
        )

    def shutdown(self) -> bool:
        """Ends everything in order (see the module docstring); harmless twice. Returns whether
        the engine thread ended: when a native call is stuck it is left behind after
        ``ENGINE_STOP_SECONDS`` (the store is still flushed and closed), and the caller must
        end the process with ``os._exit``, since the interpreter's normal exit could wait on it."""
        self.api.shutdown()
        self.session.shutdown()
        self.tools.shutdown()
        engine_stopped = self.engine.shutdown(timeout=ENGINE_STOP_SECONDS)
        self.saved_states.wait_until_written(STATE_WRITE_SECONDS)  # the newest state, kept as the model was freed
        self.store.shutdown()
        return engine_stopped


def start_engine_host(
    model_checks: Path, saved_states: StateFiles, model_servers: ModelServers | None = None
) -> EngineHost:
    """The engine thread with the llama.cpp engine, behind the model gate (every model file is
    checked before llama.cpp opens it in this process; verdicts are kept in ``model_checks``),
    keeping states for later in ``saved_states``, and, given ``model_servers``, the engine for
    their models beside it."""
    gate = ModelGate(model_checks, MemoryFit(lambda: probe_hardware(None, accelerator_report())))
    if model_servers is None:
        return EngineHost(lambda: LlamaEngine(state_files=saved_states), admit_model=gate)
    servers = model_servers
    return EngineHost(
        lambda: EngineSwitch(LlamaEngine(state_files=saved_states), RemoteEngine(servers.connection_for)), admit_model=gate
    )
