"""The secrets in MCP server settings (``env`` values, HTTP ``headers``), kept in the system
keyring instead of ``mcp.json``.

People paste configs whose ``env`` holds API keys and whose ``headers`` hold bearer tokens; other
apps leave them in their JSON file. Here ``mcp.json`` keeps only the names, each value replaced
by ``PLACEHOLDER``, and the values live in the keyring, one entry per server. The editor shows
the placeholder too: saving it unchanged keeps the stored value, typing a new value replaces it.
Where the system has no usable keyring the values stay in ``mcp.json`` as written (and
``problem`` says so), because a server that loses its key at every restart would be worse.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace

from app.core.profile.secret_store import SecretStore
from app.core.tools.mcp_config import McpConfigError, ServerConfig

PLACEHOLDER = "<kept in the system keyring>"

SecretFor = Callable[[str], SecretStore]
"""The keyring entry holding one server's secrets."""


def keyring_entry(server: str) -> SecretStore:
    return SecretStore(f"mcp-server/{server}", f"settings of the MCP server {server!r}")


class ServerSecrets:
    """Moves server secrets between configs and the keyring. Thread-safe as ``SecretStore``."""

    def __init__(self, secret_for: SecretFor = keyring_entry) -> None:
        self._secret_for = secret_for
        self._entries: dict[str, SecretStore] = {}

    @property
    def problem(self) -> str | None:
        """Why secrets stay in ``mcp.json`` (None: they are in the keyring)."""
        # Whether the system has a usable keyring is the same for every entry: ask any one.
        return self._entry("").keyring_problem and (
            "This computer has no usable system keyring, so environment values and headers stay in "
            "mcp.json as you wrote them."
        )

    def masked(self, config: ServerConfig) -> ServerConfig:
        """``config`` as ``mcp.json`` and the editor show it: secret values replaced by the
        placeholder (unchanged without a keyring)."""
        if self.problem:
            return config
        return replace(
            config,
            env={name: PLACEHOLDER for name in config.env},
            headers={name: PLACEHOLDER for name in config.headers},
        )

    def filled(self, config: ServerConfig, known: ServerConfig | None = None) -> ServerConfig:
        """``config`` with each placeholder replaced by its value: from ``known`` (the server as
        it was) or the keyring. Raises ``McpConfigError`` for a placeholder with no value."""
        stored = self._stored(config.name)
        env = _filled(config.env, (known.env if known else {}) or stored.get("env", {}), config.name, "env")
        headers = _filled(
            config.headers, (known.headers if known else {}) or stored.get("headers", {}), config.name, "headers"
        )
        return replace(config, env=env, headers=headers)

    def keep(self, config: ServerConfig) -> None:
        """Stores ``config``'s secret values in the keyring (removes them when it has none)."""
        if self.problem:
            return
        secrets = {"env": dict(config.env), "headers": dict(config.headers)}
        self._entry(config.name).set_token(json.dumps(secrets) if config.env or config.headers else None)

    def forget(self, server: str) -> None:
        if not self.problem:
            self._entry(server).set_token(None)

    def _stored(self, server: str) -> dict[str, Mapping[str, str]]:
        if self.problem:
            return {}
        try:
            value = json.loads(self._entry(server).token() or "{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def _entry(self, server: str) -> SecretStore:
        if server not in self._entries:
            self._entries[server] = self._secret_for(server)
        return self._entries[server]


def _filled(values: Mapping[str, str], known: Mapping[str, str], server: str, field: str) -> dict[str, str]:
    filled = {}
    for name, value in values.items():
        if value == PLACEHOLDER:
            if not isinstance(known.get(name), str) or known[name] == PLACEHOLDER:
                raise McpConfigError(
                    f'Server "{server}": the value of {field} "{name}" is not in the keyring '
                    "(a renamed or new server); type the value itself."
                )
            value = known[name]
        filled[name] = value
    return filled
