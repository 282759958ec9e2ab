"""The model servers the person has added (Settings › Model servers): their addresses in
``model-servers.json`` in the config folder, their keys in the system keyring, and the models
each one lists.

This service is the one owner of that list. The engine asks it for a server's connection at each
use (``connection_for``), so offline mode counts at once: a server that is not on this computer
is then never contacted, for a test, a listing or a reply. Contacting servers runs on threads of
its own, never on the caller's; results come back to listeners as events.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from app.core.atomic_file import write_text_atomically
from app.core.engines.remote.server_connection import (
    ServerConnection,
    ServerModel,
    ServerProblem,
    check_url,
    list_models,
    tls_context,
)
from app.core.listeners import Listeners
from app.core.network_addresses import is_loopback_url
from app.core.profile.secret_store import SecretStore

logger = logging.getLogger(__name__)

CONFIG_FILE = "model-servers.json"
MAX_SERVERS = 32
MAX_NAME_CHARACTERS = 60
MAX_FILE_BYTES = 256_000


@dataclass(frozen=True)
class ModelServer:
    """A server as the person set it up: a name of their choosing, its address, and the CA
    file its certificate is signed with when that is not a public authority."""

    name: str
    url: str
    ca_file: str = ""

    @property
    def on_this_computer(self) -> bool:
        return is_loopback_url(self.url)

    @property
    def address(self) -> str:
        """Host and port, as the person would recognise the server."""
        return urlsplit(self.url).netloc


@dataclass(frozen=True)
class ServerListing:
    """What a server said when asked for its models: the models, or why it could not be used
    (``problem``, one sentence). ``checking`` while the answer is awaited; ``answered_at``
    (``time.monotonic()``) when it came, None while it never has."""

    server: str
    models: tuple[ServerModel, ...] = ()
    problem: str = ""
    checking: bool = False
    answered_at: float | None = None

    @property
    def answered(self) -> bool:
        return self.answered_at is not None


@dataclass(frozen=True)
class ServersChanged:
    """Servers were added, changed or removed, or offline mode changed: screens read them again."""


@dataclass(frozen=True)
class ServerListed:
    """``listing`` is what its server answers now (or that it is being asked)."""

    listing: ServerListing


ModelServersEvent = ServersChanged | ServerListed

OFFLINE_MESSAGE = "Offline mode is on, and {name} is not on this computer: it is not contacted until offline mode is off."


def blocked_offline_message(name: str) -> str:
    return OFFLINE_MESSAGE.format(name=name)


class ModelServers:
    """The servers and their models; every method may be called from any thread. Listeners
    hear ``ModelServersEvent``\\ s on the thread that made the change or got the answer."""

    def __init__(
        self,
        config_dir: Path,
        *,
        offline: bool = False,
        key_store: Callable[[str], SecretStore] | None = None,
    ) -> None:
        """``key_store(name)`` keeps the key of the server ``name`` (default: the system
        keyring, one entry per server)."""
        self._file = config_dir / CONFIG_FILE
        self._new_key_store = key_store or _keyring_entry
        self._key_stores: dict[str, SecretStore] = {}  # each reads the keyring once, then remembers
        self._lock = threading.Lock()
        self._offline = offline
        self._servers: list[ModelServer] = _read(self._file)
        self._listings: dict[str, ServerListing] = {}
        self._listeners: Listeners[ModelServersEvent] = Listeners()

    def subscribe(self, listener: Callable[[ModelServersEvent], None]) -> None:
        self._listeners.add(listener)

    # ------------------------------------------------------------------------------ the list

    @property
    def servers(self) -> tuple[ModelServer, ...]:
        with self._lock:
            return tuple(self._servers)

    def server(self, name: str) -> ModelServer | None:
        with self._lock:
            return next((server for server in self._servers if server.name == name), None)

    @property
    def offline(self) -> bool:
        return self._offline

    def blocked_offline(self, server: ModelServer) -> bool:
        """Offline mode keeps this server from being contacted."""
        return self._offline and not server.on_this_computer

    def has_key(self, name: str) -> bool:
        return bool(self._key_store(name).token())

    def keyring_problem(self, name: str) -> str | None:
        """Why ``name``'s key lasts only until the app quits (no usable keyring), or None."""
        return self._key_store(name).keyring_problem

    def save(self, server: ModelServer, *, key: str | None = None, replacing: str | None = None) -> ModelServer:
        """Adds ``server``, or puts it in place of the server ``replacing``; ``key`` replaces
        the key (``""`` removes it, None keeps it). Raises ``ServerProblem`` saying what is
        wrong with it; nothing changes then."""
        server = self._checked(server, replacing)
        with self._lock:
            index = next((i for i, known in enumerate(self._servers) if known.name == replacing), None)
            servers = list(self._servers)
            if index is None:
                servers.append(server)
            else:
                servers[index] = server
            self._write(servers)
            self._servers = servers
            self._listings.pop(replacing or server.name, None)
        if replacing and replacing != server.name:
            old = self._key_store(replacing)
            if key is None:
                key = old.token() or ""
            old.set_token(None)
        if key is not None:
            self._key_store(server.name).set_token(key)
        self._listeners.emit(ServersChanged())
        return server

    def remove(self, name: str) -> None:
        """Forgets the server ``name`` and its key."""
        with self._lock:
            servers = [server for server in self._servers if server.name != name]
            if len(servers) == len(self._servers):
                return
            self._write(servers)
            self._servers = servers
            self._listings.pop(name, None)
        self._key_store(name).set_token(None)
        self._listeners.emit(ServersChanged())

    def set_offline(self, offline: bool) -> None:
        with self._lock:
            if offline == self._offline:
                return
            self._offline = offline
        self._listeners.emit(ServersChanged())

    # --------------------------------------------------------------------------- contacting

    def connection_for(self, name: str) -> ServerConnection:
        """How to reach the server ``name`` now, key included; raises ``ServerProblem`` when
        there is no such server or offline mode keeps it from being contacted."""
        server = self.server(name)
        if server is None:
            raise ServerProblem(f"There is no model server named {name!r} any more: add it again in Settings › Model servers.")
        return self._connection(server, self._key_store(name).token())

    def test(
        self,
        server: ModelServer,
        key: str | None,
        on_done: Callable[[ServerListing], None],
        *,
        saved_key_of: str | None = None,
    ) -> None:
        """Asks ``server`` (as set up in a form, not yet saved) for its models on a thread of
        its own; ``on_done(listing)`` there, or at once when the form cannot be tried. ``key``
        None: the key saved for ``saved_key_of`` (a server being edited, perhaps renamed in
        the form), by default for ``server``'s name."""
        if key is None:
            key = self._key_store(saved_key_of or server.name).token()
        try:
            connection = self._connection(self._checked(server, server.name, saving=False), key)
        except ServerProblem as problem:
            on_done(ServerListing(server.name, problem=str(problem), answered_at=time.monotonic()))
            return
        threading.Thread(target=lambda: on_done(_listing(connection)), name="model-server-test", daemon=True).start()

    def refresh(self, names: Sequence[str] | None = None) -> None:
        """Asks the servers ``names`` (None: all) for their models again, each on a thread of
        its own; a ``ServerListed`` comes now (checking) and again with the answer."""
        for server in self.servers:
            if names is not None and server.name not in names:
                continue
            try:
                connection = self.connection_for(server.name)
            except ServerProblem as problem:
                self._publish(ServerListing(server.name, problem=str(problem), answered_at=time.monotonic()))
                continue
            before = self.listing(server.name)
            self._publish(ServerListing(server.name, before.models, checking=True, answered_at=before.answered_at))
            threading.Thread(
                target=lambda connection=connection: self._publish(_listing(connection)),
                name="model-server-listing", daemon=True,
            ).start()

    def listing(self, name: str) -> ServerListing:
        """What the server ``name`` answered last (nothing yet: no models, no problem)."""
        with self._lock:
            return self._listings.get(name, ServerListing(name))

    # ------------------------------------------------------------------------------ internals

    def _key_store(self, name: str) -> SecretStore:
        with self._lock:
            if name not in self._key_stores:
                self._key_stores[name] = self._new_key_store(name)
            return self._key_stores[name]

    def _connection(self, server: ModelServer, key: str | None) -> ServerConnection:
        if self.blocked_offline(server):
            raise ServerProblem(blocked_offline_message(server.name))
        return ServerConnection(server.name, server.url, key or None, Path(server.ca_file) if server.ca_file else None)

    def _checked(self, server: ModelServer, replacing: str | None, *, saving: bool = True) -> ModelServer:
        name = " ".join(server.name.split())
        if not name:
            raise ServerProblem("Give the server a name, such as “Desktop” or “GPU box”.")
        if len(name) > MAX_NAME_CHARACTERS:
            raise ServerProblem(f"The name is longer than {MAX_NAME_CHARACTERS} characters.")
        url = check_url(server.url)
        ca_file = server.ca_file.strip()
        if ca_file:
            tls_context(Path(ca_file))  # raises for a file that holds no certificates
        with self._lock:
            taken = {known.name.casefold() for known in self._servers if known.name != replacing}
            count = len(self._servers) + (replacing is None)
        if saving and name.casefold() in taken:
            raise ServerProblem(f"There is already a server named {name!r}.")
        if saving and count > MAX_SERVERS:
            raise ServerProblem(f"At most {MAX_SERVERS} model servers can be added.")
        return ModelServer(name, url, ca_file)

    def _publish(self, listing: ServerListing) -> None:
        with self._lock:
            if any(server.name == listing.server for server in self._servers):  # not removed meanwhile
                self._listings[listing.server] = listing
        self._listeners.emit(ServerListed(listing))

    def _write(self, servers: list[ModelServer]) -> None:
        document = {"servers": [{"name": s.name, "url": s.url, "ca_file": s.ca_file} for s in servers]}
        try:
            write_text_atomically(self._file, json.dumps(document, indent=2))
        except OSError as error:
            raise ServerProblem(f"The model servers could not be saved in {self._file}: {error.strerror or error}.") from None


def _listing(connection: ServerConnection) -> ServerListing:
    try:
        models, problem = tuple(list_models(connection)), ""
    except ServerProblem as error:
        models, problem = (), str(error)
    return ServerListing(connection.name, models, problem, answered_at=time.monotonic())


def _keyring_entry(name: str) -> SecretStore:
    return SecretStore(f"model-server/{name}", label=f"key for {name}")


def _read(file: Path) -> list[ModelServer]:
    """The saved servers; a damaged file (hand-edited, cut short) counts as none, as settings do."""
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise ValueError("too large")
        document = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        logger.warning("Ignoring the unreadable model server list %s: %s", file, error)
        return []
    servers: list[ModelServer] = []
    entries = document.get("servers") if isinstance(document, dict) else None
    for entry in entries[:MAX_SERVERS] if isinstance(entries, list) else ():
        if isinstance(entry, dict) and all(isinstance(entry.get(key, ""), str) for key in ("name", "url", "ca_file")):
            try:
                check_url(entry.get("url", ""))
            except ServerProblem:
                continue
            if entry.get("name") and entry["name"] not in {server.name for server in servers}:
                servers.append(ModelServer(entry["name"][:MAX_NAME_CHARACTERS], entry["url"], entry.get("ca_file", "")))
    return servers


