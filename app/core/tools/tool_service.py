"""The tools a chat may use, and running them: the one owner of tool settings and MCP servers.

Every client goes through it: the chat session asks which tools a reply may call
(``prepare``) and runs the calls the person allowed (``run``); the window shows and edits the
same state (servers, their status and tools, what is switched off, what is always allowed).

Files (in the config folder): ``mcp.json``, the servers in the shared ``mcpServers`` format the
person may paste from other apps (their ``env`` values and ``headers`` go to the keyring:
``server_secrets``), and ``tool-settings.json``, the rest. Both are written atomically.

A server runs only once the person has seen its command (``approve_launch``; a changed command
must be approved again) and, in offline mode, only if it is on this computer.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from app.core.atomic_file import write_text_atomically
from app.core.domain.conversations import ToolOutcome
from app.core.listeners import Listeners
from app.core.tools.builtin_tools import DEFINITIONS as BUILT_IN_TOOLS
from app.core.tools.builtin_tools import BuiltInTools, SearchConversations
from app.core.tools.mcp_config import McpConfigError, ServerConfig, config_text, parse_config
from app.core.tools.mcp_servers import START_TIMEOUT_S, McpServers, ServerState, ServerStatus, ToolCallTimeout
from app.core.tools.server_secrets import ServerSecrets
from app.core.tools.tool_catalog import OfferedTools, ToolDefinition, ToolOutput, ToolRun, bounded_result, offer

logger = logging.getLogger(__name__)

DEFAULT_STEP_LIMIT = 10
DEFAULT_TIMEOUT_S = 60
MAX_STEP_LIMIT = 100


@dataclass
class ToolPreferences:
    """What the person chose about tools (``tool-settings.json``)."""

    offer_in_new_chats: bool = False  # new chats start with tools on
    switched_off: list[str] = field(default_factory=list)  # tool keys ("server/tool") never offered
    always_allowed: list[str] = field(default_factory=list)  # tool keys that run without asking
    approved_launches: dict[str, str] = field(default_factory=dict)  # server → launch fingerprint seen
    step_limit: int = DEFAULT_STEP_LIMIT  # tool calls one turn may make
    timeout_s: int = DEFAULT_TIMEOUT_S  # one call's longest run


@dataclass(frozen=True)
class ServerView:
    """A configured server as a screen shows it."""

    config: ServerConfig
    status: ServerStatus
    needs_approval: bool  # its command was never shown to the person: ask before it runs
    blocked_offline: bool  # offline mode, and the server is on another computer

    @property
    def summary(self) -> str:
        if not self.config.enabled:
            return "Off"
        if self.blocked_offline:
            return "Blocked: offline mode allows only servers on this computer"
        if self.needs_approval:
            what = "its command" if self.config.transport == "stdio" else "connecting to it"
            return f"Not started: {what} has to be allowed first"
        state = self.status.state
        if state is ServerState.READY:
            count = len(self.status.tools)
            return f"Ready · {count} tool{'s' if count != 1 else ''}"
        if state is ServerState.STARTING:
            return "Starting…"
        if state is ServerState.FAILED:
            return f"Failed: {self.status.message}"
        return "Starts when a chat first needs it"


@dataclass(frozen=True)
class ToolsChanged:
    """Servers, their status or tool settings changed: screens showing them read them again."""


class ToolCallHandle:
    """A call in progress; ``cancel`` ends it (reported as ``STOPPED``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancel: Callable[[], None] | None = None
        self.cancelled = False

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            cancel = self._cancel
        if cancel is not None:
            cancel()

    def _on_cancel(self, cancel: Callable[[], None]) -> None:
        with self._lock:
            self._cancel = cancel
            cancelled = self.cancelled
        if cancelled:
            cancel()


class ToolService:
    """Tool settings, MCP servers and tool calls; every method may be called from any thread.
    Listeners hear ``ToolsChanged`` on whichever thread made the change."""

    def __init__(
        self,
        config_dir: Path,
        search: SearchConversations,
        *,
        offline: bool = False,
        start_timeout_s: float = START_TIMEOUT_S,
        secrets: ServerSecrets | None = None,
    ) -> None:
        self._servers_file = config_dir / "mcp.json"
        self._preferences_file = config_dir / "tool-settings.json"
        self._lock = threading.RLock()
        self._listeners: Listeners[ToolsChanged] = Listeners()
        self._built_in = BuiltInTools(search)
        self._built_in_runner = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="built-in-tools")
        self._offline = offline
        self._preferences = _read_preferences(self._preferences_file)
        self._secrets = secrets or ServerSecrets()
        self._config_problem = ""
        try:
            self._configs = tuple(self._secrets.filled(config) for config in parse_config(_read_text(self._servers_file)))
        except McpConfigError as error:  # a hand-edited file: shown in Settings, servers unused
            self._configs, self._config_problem = (), f"mcp.json cannot be used: {error}"
        self._mcp = McpServers(lambda _status: self._changed(), start_timeout_s=start_timeout_s)

    def subscribe(self, listener: Callable[[ToolsChanged], None]) -> None:
        self._listeners.add(listener)

    # ------------------------------------------------------------------------ what there is

    @property
    def preferences(self) -> ToolPreferences:
        with self._lock:
            return replace(self._preferences)

    @property
    def config_problem(self) -> str:
        """Why the saved ``mcp.json`` could not be read ("" when it could)."""
        return self._config_problem

    @property
    def secrets_problem(self) -> str | None:
        """Why servers' secrets stay in ``mcp.json`` (None: they are in the keyring)."""
        return self._secrets.problem

    def config_text(self) -> str:
        """The servers as the editor shows them: secrets kept in the keyring are placeholders."""
        with self._lock:
            return self._file_text() if self._configs else '{\n  "mcpServers": {}\n}\n'

    def built_in_tools(self) -> tuple[ToolDefinition, ...]:
        return BUILT_IN_TOOLS

    def servers(self) -> tuple[ServerView, ...]:
        with self._lock:
            return tuple(self._view(config) for config in self._configs)

    def server(self, name: str) -> ServerView | None:
        return next((view for view in self.servers() if view.config.name == name), None)

    def is_switched_on(self, key: str) -> bool:
        with self._lock:
            return key not in self._preferences.switched_off

    def is_always_allowed(self, tool: ToolDefinition) -> bool:
        with self._lock:
            return tool.key in self._preferences.always_allowed

    def known_tools(self) -> tuple[ToolDefinition, ...]:
        """Every tool switched on, from the built-ins and the servers whose tools are known."""
        with self._lock:
            served = [
                tool for view in self.servers() if self._may_run(view) and view.status.state is ServerState.READY
                for tool in view.status.tools
            ]
            return tuple(tool for tool in list(BUILT_IN_TOOLS) + served if tool.key not in self._preferences.switched_off)

    # --------------------------------------------------------------------------- changing

    def set_config_text(self, text: str) -> tuple[str, ...]:
        """Replaces the servers by those ``text`` sets up (raises ``McpConfigError``, changing
        nothing); servers removed or changed are stopped. Returns the names of the servers whose
        command the person has not yet allowed."""
        with self._lock:
            old = {config.name: config for config in self._configs}
            configs = tuple(self._secrets.filled(config, old.get(config.name)) for config in parse_config(text))
            for config in configs:
                self._secrets.keep(config)
            for name in old.keys() - {config.name for config in configs}:
                self._secrets.forget(name)
            self._configs, self._config_problem = configs, ""
            write_text_atomically(self._servers_file, self._file_text())
        for name, config in old.items():
            if config not in configs:
                self._mcp.stop(name)
        self._changed()
        return tuple(view.config.name for view in self.servers() if view.needs_approval and view.config.enabled)

    def set_server_enabled(self, name: str, enabled: bool) -> None:
        with self._lock:
            self._configs = tuple(
                replace(config, enabled=enabled) if config.name == name else config for config in self._configs
            )
            write_text_atomically(self._servers_file, self._file_text())
        if not enabled:
            self._mcp.stop(name)
        self._changed()

    def approve_launch(self, name: str, shown: str | None = None) -> bool:
        """The person saw the server's command (``ServerConfig.launch``) and lets it run.
        ``shown`` is the ``launch_fingerprint`` of what they saw: when the configuration has
        changed since, nothing is approved (False)."""
        with self._lock:
            config = next((config for config in self._configs if config.name == name), None)
            if config is None or (shown is not None and shown != config.launch_fingerprint):
                return False
            self._preferences.approved_launches[name] = config.launch_fingerprint
            self._save_preferences()
        self._changed()
        return True

    def set_switched_on(self, key: str, on: bool) -> None:
        with self._lock:
            off = [item for item in self._preferences.switched_off if item != key]
            self._preferences.switched_off = off if on else off + [key]
            self._save_preferences()
        self._changed()

    def always_allow(self, tool: ToolDefinition) -> None:
        with self._lock:
            if tool.key not in self._preferences.always_allowed:
                self._preferences.always_allowed.append(tool.key)
                self._save_preferences()
        self._changed()

    def revoke(self, key: str) -> None:
        """``key`` asks again before each call."""
        with self._lock:
            self._preferences.always_allowed = [item for item in self._preferences.always_allowed if item != key]
            self._save_preferences()
        self._changed()

    def set_limits(self, *, step_limit: int | None = None, timeout_s: int | None = None) -> None:
        with self._lock:
            if step_limit is not None:
                self._preferences.step_limit = max(1, min(MAX_STEP_LIMIT, int(step_limit)))
            if timeout_s is not None:
                self._preferences.timeout_s = max(1, int(timeout_s))
            self._save_preferences()
        self._changed()

    def set_offer_in_new_chats(self, on: bool) -> None:
        with self._lock:
            self._preferences.offer_in_new_chats = on
            self._save_preferences()
        self._changed()

    def set_offline(self, offline: bool) -> None:
        """Offline mode: servers on other computers are stopped and not started."""
        with self._lock:
            if offline == self._offline:
                return
            self._offline = offline
            blocked = [config.name for config in self._configs if not config.is_on_this_computer]
        if offline:
            for name in blocked:
                self._mcp.stop(name)
        self._changed()

    def start_server(self, name: str) -> concurrent.futures.Future[ServerStatus] | None:
        """Starts (or restarts after a failure) the server ``name`` if it may run."""
        view = self.server(name)
        if view is None or not self._may_run(view):
            return None
        return self._mcp.start(view.config)

    def restart_server(self, name: str) -> concurrent.futures.Future[ServerStatus] | None:
        """Starts the server ``name`` afresh, running or not (it may have changed its tools)."""
        view = self.server(name)
        if view is None or not self._may_run(view):
            return None
        return self._mcp.restart(view.config)

    # ---------------------------------------------------------------------- for the session

    def prepare(self, switched_off_in_chat: Iterable[str], on_ready: Callable[[OfferedTools], None]) -> bool:
        """Starts the servers a reply may use that are not running yet, then calls
        ``on_ready`` (on another thread) with the tools it may call. Returns whether servers
        are being started (False: ``on_ready`` was already called)."""
        starting = [
            self._mcp.start(view.config)
            for view in self.servers()
            if self._may_run(view) and view.status.state in (ServerState.STOPPED, ServerState.STARTING)
        ]
        excluded = frozenset(switched_off_in_chat)

        def offered() -> OfferedTools:
            return offer(tool for tool in self.known_tools() if tool.key not in excluded)

        if not starting:
            on_ready(offered())
            return False
        remaining = [len(starting)]
        lock = threading.Lock()

        def settled(_future) -> None:
            with lock:
                remaining[0] -= 1
                done = remaining[0] == 0
            if done:
                on_ready(offered())

        for future in starting:
            future.add_done_callback(settled)
        return True

    def run(self, tool: ToolDefinition, arguments: Mapping[str, Any], on_done: Callable[[ToolRun], None]) -> ToolCallHandle:
        """Runs ``tool`` (already allowed) and calls ``on_done`` once, on another thread, with
        its output (cut to size), duration and outcome; the handle's ``cancel`` stops it."""
        handle = ToolCallHandle()
        started = time.monotonic()
        finished = threading.Event()

        def finish(output: ToolOutput, outcome: ToolOutcome) -> None:
            if finished.is_set():
                return
            finished.set()
            run = ToolRun(ToolOutput(bounded_result(output.text), output.is_error), time.monotonic() - started, outcome)
            on_done(run)

        def ended(future: concurrent.futures.Future) -> None:
            if future.cancelled() or handle.cancelled:
                finish(ToolOutput("The person stopped this call while it ran.", True), ToolOutcome.STOPPED)
                return
            error = future.exception()
            if isinstance(error, ToolCallTimeout):
                finish(ToolOutput(str(error), True), ToolOutcome.TIMED_OUT)
            elif isinstance(error, ConnectionError):
                finish(ToolOutput(str(error), True), ToolOutcome.FAILED)
            elif error is not None:
                logger.exception("Tool %s failed", tool.key, exc_info=error)
                finish(ToolOutput(f"The tool failed: {error}", True), ToolOutcome.FAILED)
            else:
                output = future.result()
                finish(output, ToolOutcome.FAILED if output.is_error else ToolOutcome.ALLOWED)

        if tool.is_built_in:
            future = self._built_in_runner.submit(self._built_in.run, tool.name, arguments)
        else:
            future = self._mcp.call(tool.server, tool.name, arguments, self.preferences.timeout_s)
        handle._on_cancel(lambda: (future.cancel(), ended(future)))
        future.add_done_callback(ended)
        return handle

    def shutdown(self) -> None:
        """Stops every server (the app is closing)."""
        self._mcp.shutdown()
        self._built_in_runner.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------------------ inside

    def _file_text(self) -> str:
        return config_text(tuple(self._secrets.masked(config) for config in self._configs))

    def _view(self, config: ServerConfig) -> ServerView:
        approved = self._preferences.approved_launches.get(config.name) == config.launch_fingerprint
        return ServerView(
            config,
            self._mcp.status(config.name),
            needs_approval=not approved,
            blocked_offline=self._offline and not config.is_on_this_computer,
        )

    @staticmethod
    def _may_run(view: ServerView) -> bool:
        return view.config.enabled and not view.needs_approval and not view.blocked_offline

    def _save_preferences(self) -> None:
        write_text_atomically(self._preferences_file, json.dumps(asdict(self._preferences), indent=2) + "\n")

    def _changed(self) -> None:
        self._listeners.emit(ToolsChanged())


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as error:
        logger.warning("Cannot read %s: %s", path, error)
        return ""


def _read_preferences(path: Path) -> ToolPreferences:
    try:
        raw = json.loads(_read_text(path) or "{}")
    except ValueError:
        raw = {}
    preferences = ToolPreferences()
    defaults = asdict(preferences)
    for item in fields(ToolPreferences):
        value = raw.get(item.name) if isinstance(raw, dict) else None
        if _same_kind(value, defaults[item.name]):
            setattr(preferences, item.name, value)
    preferences.switched_off = [key for key in preferences.switched_off if isinstance(key, str)]
    preferences.always_allowed = [key for key in preferences.always_allowed if isinstance(key, str)]
    preferences.approved_launches = {
        name: value for name, value in preferences.approved_launches.items() if isinstance(value, str)
    }
    preferences.step_limit = max(1, min(MAX_STEP_LIMIT, preferences.step_limit))
    preferences.timeout_s = max(1, preferences.timeout_s)
    return preferences


def _same_kind(value: Any, default: Any) -> bool:
    """Whether a value read from the file may replace ``default`` (true is no number here)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    return isinstance(value, type(default))
