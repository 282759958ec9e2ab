"""The app's local API server: on or off as the user's settings say, over the app's engine host.

Starting binds a socket and stopping waits for open replies to end, so both run on a worker
thread of this service, one change at a time, and the result arrives as a ``LocalApiState``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from app.core.api.api_server import ApiServer, ApiServerConfig, ApiServerError
from app.core.api.api_workload import ApiActivity
from app.core.api.request_log import ApiRequestLog
from app.core.engines.engine_host import EngineHost
from app.core.listeners import Listeners

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalApiState:
    """Whether the API is on, where, what it is doing, and why it is off when it was asked to be on."""

    running: bool
    url: str = ""
    problem: str = ""
    activity: ApiActivity = field(default_factory=lambda: ApiActivity(0, 0))
    needs_key: bool = False  # it answers only requests with the API key


def new_api_key() -> str:
    """A key nobody can guess (256 bits), in characters that survive copying into any client."""
    return "qlc-" + secrets.token_urlsafe(32)


def api_config(*, enabled: bool, port: int, allow_network: bool, api_key: str, allowed_origins: Sequence[str]) -> ApiServerConfig | None:
    """The server the user's settings ask for (None: off). Other computers reach it only on
    every address (0.0.0.0), never by default."""
    if not enabled:
        return None
    return ApiServerConfig(
        host="0.0.0.0" if allow_network else "127.0.0.1",
        port=port,
        api_key=api_key,
        allowed_origins=tuple(origin.strip().rstrip("/") for origin in allowed_origins if origin.strip()),
    )


class LocalApiService:
    """Runs at most one ``ApiServer``; every method may be called from any thread."""

    def __init__(self, host: EngineHost) -> None:
        self._host = host
        self.log = ApiRequestLog()
        self._listeners: Listeners[LocalApiState] = Listeners()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-api-control")
        self._server: ApiServer | None = None  # touched on the worker only
        self._state = LocalApiState(False)

    @property
    def state(self) -> LocalApiState:
        return self._state

    def subscribe(self, listener: Callable[[LocalApiState], None]) -> None:
        """Calls ``listener(state)`` (on a worker thread) whenever the API starts, stops, fails
        to start, or its running and queued counts change."""
        self._listeners.add(listener)

    def apply(self, config: ApiServerConfig | None) -> None:
        """Serves ``config`` from now on (None: stops serving); the outcome is a state event."""
        try:
            self._worker.submit(self._apply, config)
        except RuntimeError:  # shut down: the app is closing
            logger.debug("Ignored an API change after shutdown")

    def shutdown(self) -> None:
        """Stops serving (open replies are cancelled) and waits for it."""
        self.apply(None)
        self._worker.shutdown(wait=True)

    def _apply(self, config: ApiServerConfig | None) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if config is None:
            self._set(LocalApiState(False))
            return
        try:
            server = ApiServer(self._host, config, self.log)
            server.start()
        except ApiServerError as error:
            self._set(LocalApiState(False, problem=str(error)))
            return
        self._server = server
        server.workload.subscribe(lambda activity: self._activity(server, activity))
        self._set(LocalApiState(True, server.url, activity=server.workload.activity, needs_key=bool(config.api_key)))

    def _activity(self, server: ApiServer, activity: ApiActivity) -> None:
        state = self._state
        if state.running and self._server is server:
            self._set(LocalApiState(True, state.url, activity=activity, needs_key=state.needs_key))

    def _set(self, state: LocalApiState) -> None:
        self._state = state
        self._listeners.emit(state)
