"""The app's local API server: on or off as the user's settings say, over the app's engine host.

Starting binds a socket and stopping waits for open replies to end, so both run on a worker
thread of this service, one change at a time, and the result arrives as a ``LocalApiState``.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psutil

from app.core.api.api_server import ApiServer, ApiServerConfig, ApiServerError
from app.core.api.api_workload import ApiActivity
from app.core.api.request_log import ApiRequestLog
from app.core.engines.engine_host import EngineHost
from app.core.listeners import Listeners
from app.core.profile.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalApiState:
    """Whether the API is on, where, what it is doing, and why it is off when it was asked to be on."""

    running: bool
    url: str = ""
    problem: str = ""
    activity: ApiActivity = field(default_factory=lambda: ApiActivity(0, 0))
    needs_key: bool = False  # it answers only requests with the API key


def network_addresses() -> list[str]:
    """This computer's IPv4 addresses that other computers may reach it at (interfaces that are
    up; loopback and link-local left out), for telling the user what to type on the others."""
    statistics = psutil.net_if_stats()
    found = []
    for interface, addresses in psutil.net_if_addrs().items():
        if interface in statistics and not statistics[interface].isup:
            continue
        for address in addresses:
            if address.family != socket.AF_INET:
                continue
            ip = ipaddress.ip_address(address.address)
            if not ip.is_loopback and not ip.is_link_local:
                found.append(address.address)
    return found


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


def configured_api(settings: Settings, api_key: str | None) -> ApiServerConfig | None:
    """The server the saved ``settings`` ask for, with ``api_key`` from the keyring (None: off)."""
    return api_config(
        enabled=settings.api_server_enabled,
        port=settings.api_server_port,
        allow_network=settings.api_allow_network,
        api_key=api_key or "",
        allowed_origins=settings.api_allowed_origins,
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
        self._state_lock = threading.Lock()  # a state and its event, one at a time, in order

    @property
    def state(self) -> LocalApiState:
        return self._state

    def subscribe(self, listener: Callable[[LocalApiState], None]) -> None:
        """Calls ``listener(state)`` (on a worker thread) whenever the API starts, stops, fails
        to start, or its running and queued counts change."""
        self._listeners.add(listener)

    def apply(self, config: ApiServerConfig | None) -> None:
        """Serves ``config`` from now on (None: stops serving); the outcome is a state event."""
        self.apply_later(lambda: config)

    def apply_later(self, make_config: Callable[[], ApiServerConfig | None]) -> None:
        """As ``apply``, with the config made on the service's worker: at start-up the key comes
        from the keyring, which may wait on the system's password store."""
        try:
            self._worker.submit(lambda: self._apply(make_config()))
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
            server = ApiServer(self._host, config, self.log, on_failure=lambda message: self._failed(server, message))
            server.start()
        except ApiServerError as error:
            self._set(LocalApiState(False, problem=str(error)))
            return
        self._server = server
        server.workload.subscribe(lambda activity: self._activity(server, activity))
        self._set(LocalApiState(True, server.url, activity=server.workload.activity, needs_key=bool(config.api_key)))

    def _activity(self, server: ApiServer, activity: ApiActivity) -> None:
        with self._state_lock:
            state = self._state
            if state.running and self._server is server:
                self._set_locked(LocalApiState(True, state.url, activity=activity, needs_key=state.needs_key))

    def _failed(self, server: ApiServer, message: str) -> None:
        with self._state_lock:
            if self._server is server:
                self._set_locked(LocalApiState(False, problem=message))

    def _set(self, state: LocalApiState) -> None:
        with self._state_lock:
            self._set_locked(state)

    def _set_locked(self, state: LocalApiState) -> None:
        self._state = state
        self._listeners.emit(state)
