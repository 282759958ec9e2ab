"""The MCP servers the person has set up, in the ``mcpServers`` JSON most apps share.

Claude Desktop, Cursor, LM Studio (``mcp.json``) and others write it the same way, so a person
can paste theirs::

    {"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me"],
                  "env": {"LOG": "1"}},
        "notes": {"url": "http://127.0.0.1:8765/mcp", "headers": {"Authorization": "Bearer …"}},
        "old":   {"command": "uvx", "args": ["some-server"], "disabled": true}
    }}

A server has either a ``command`` (started over stdio) or a ``url`` (streamable HTTP);
``"disabled": true`` keeps it set up but unused (Cline and Roo Code write that too). VS Code's
``{"servers": …}`` form is read as well. The text is untrusted: it is bounded, and each mistake
gets a message saying where it is.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from app.core.network_addresses import is_loopback_url

MAX_CONFIG_CHARACTERS = 200_000
MAX_SERVERS = 64
MAX_NAME_CHARACTERS = 64


class McpConfigError(ValueError):
    """The configuration cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class ServerConfig:
    """One MCP server: a program to start (``command``) or an address (``url``)."""

    name: str
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str = ""
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"

    @property
    def launch(self) -> str:
        """What runs, as the person should see it before it first does: the command line (with
        its working folder and environment names), or the address."""
        if self.transport == "http":
            return self.url
        text = shlex.join([self.command, *self.args])
        if self.env:
            text = " ".join(f"{name}=…" for name in self.env) + " " + text
        return text + (f"   (in {self.cwd})" if self.cwd else "")

    @property
    def launch_fingerprint(self) -> str:
        """Changes whenever what runs changes, so a changed command is shown again first."""
        identity = json.dumps(
            [self.command, list(self.args), sorted(self.env.items()), self.cwd, self.url], ensure_ascii=False
        )
        return hashlib.sha256(identity.encode()).hexdigest()

    @property
    def is_on_this_computer(self) -> bool:
        """A stdio server always is; an HTTP server when its address is a loopback one."""
        return self.transport == "stdio" or is_loopback_url(self.url)


def parse_config(text: str) -> tuple[ServerConfig, ...]:
    """The servers ``text`` sets up, in its order; raises ``McpConfigError``."""
    if len(text) > MAX_CONFIG_CHARACTERS:
        raise McpConfigError(f"The configuration is longer than {MAX_CONFIG_CHARACTERS:,} characters.")
    if not text.strip():
        return ()
    try:
        document = json.loads(text)
    except RecursionError:
        raise McpConfigError("The configuration nests too deeply.") from None
    except ValueError as error:
        raise McpConfigError(f"The configuration is not valid JSON: {error}.") from None
    if not isinstance(document, dict):
        raise McpConfigError('The configuration must be a JSON object with "mcpServers" in it.')
    servers = document.get("mcpServers", document.get("servers"))
    if servers is None:
        raise McpConfigError('The configuration has no "mcpServers" object.')
    if not isinstance(servers, dict):
        raise McpConfigError('"mcpServers" must be an object of servers by name.')
    if len(servers) > MAX_SERVERS:
        raise McpConfigError(f"The configuration sets up {len(servers)} servers; at most {MAX_SERVERS} can be used.")
    return tuple(_server(name, fields) for name, fields in servers.items())


def config_text(servers: tuple[ServerConfig, ...]) -> str:
    """``servers`` written back in the shared format (for the file and the editor)."""
    document: dict[str, Any] = {}
    for server in servers:
        fields: dict[str, Any] = {}
        if server.command:
            fields["command"] = server.command
            fields["args"] = list(server.args)
            if server.env:
                fields["env"] = dict(server.env)
            if server.cwd:
                fields["cwd"] = server.cwd
        else:
            fields["url"] = server.url
            if server.headers:
                fields["headers"] = dict(server.headers)
        if not server.enabled:
            fields["disabled"] = True
        document[server.name] = fields
    return json.dumps({"mcpServers": document}, indent=2, ensure_ascii=False) + "\n"


def _server(name: str, fields: Any) -> ServerConfig:
    where = f'Server "{name[:MAX_NAME_CHARACTERS]}"'
    if not name.strip() or len(name) > MAX_NAME_CHARACTERS or "/" in name or not name.isprintable():
        raise McpConfigError(
            f"{where}: a server's name must be 1 to {MAX_NAME_CHARACTERS} printable characters, without '/'."
        )
    if not isinstance(fields, dict):
        raise McpConfigError(f"{where} must be an object with a \"command\" or a \"url\".")
    enabled = not _flag(fields, "disabled", where)
    if "enabled" in fields:
        enabled = _flag(fields, "enabled", where)
    command, url = fields.get("command"), fields.get("url", fields.get("serverUrl"))
    if command is not None and url is not None:
        raise McpConfigError(f'{where} has both a "command" and a "url"; give one.')
    if command is not None:
        if not isinstance(command, str) or not command.strip():
            raise McpConfigError(f'{where}: "command" must be the program to run, as text.')
        return ServerConfig(
            name,
            command=command.strip(),
            args=tuple(_texts(fields.get("args", []), "args", where)),
            env=_text_mapping(fields.get("env", {}), "env", where),
            cwd=_text(fields.get("cwd", ""), "cwd", where),
            enabled=enabled,
        )
    if url is not None:
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise McpConfigError(f'{where}: "url" must be an http:// or https:// address.')
        return ServerConfig(
            name, url=url.strip(), headers=_text_mapping(fields.get("headers", {}), "headers", where), enabled=enabled
        )
    raise McpConfigError(f'{where} needs a "command" (a program to start) or a "url" (a server to reach).')


def _flag(fields: dict, key: str, where: str) -> bool:
    value = fields.get(key, False)
    if not isinstance(value, bool):
        raise McpConfigError(f'{where}: "{key}" must be true or false.')
    return value


def _text(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str):
        raise McpConfigError(f'{where}: "{key}" must be text.')
    return value


def _texts(value: Any, key: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise McpConfigError(f'{where}: "{key}" must be a list of texts.')
    return value


def _text_mapping(value: Any, key: str, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        raise McpConfigError(f'{where}: "{key}" must be an object of texts.')
    return dict(value)
