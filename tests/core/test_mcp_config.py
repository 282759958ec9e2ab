"""Reading the ``mcpServers`` JSON other apps write, and saying what is wrong with a bad one."""

from __future__ import annotations

import json

import pytest

from app.core.network_addresses import is_loopback_url
from app.core.tools.mcp_config import McpConfigError, ServerConfig, config_text, parse_config

CLAUDE_DESKTOP = """{
  "mcpServers": {
    "filesystem": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"],
      "env": {"DEBUG": "1"}
    },
    "notes": {"url": "http://127.0.0.1:8765/mcp", "headers": {"Authorization": "Bearer abc"}},
    "old": {"command": "uvx", "args": ["mcp-server-time"], "disabled": true}
  }
}"""


def test_a_claude_desktop_or_lm_studio_config_is_read_as_it_is_pasted() -> None:
    files, notes, old = parse_config(CLAUDE_DESKTOP)
    assert (files.name, files.transport, files.command, files.args, dict(files.env)) == (
        "filesystem", "stdio", "npx", ("-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"), {"DEBUG": "1"}
    )
    assert (notes.transport, notes.url, dict(notes.headers), notes.enabled) == (
        "http", "http://127.0.0.1:8765/mcp", {"Authorization": "Bearer abc"}, True
    )
    assert (old.name, old.enabled) == ("old", False)


def test_the_vs_code_servers_form_is_read_too() -> None:
    (server,) = parse_config('{"servers": {"time": {"type": "stdio", "command": "uvx", "args": ["mcp-server-time"]}}}')
    assert (server.name, server.command) == ("time", "uvx")


def test_writing_the_config_back_reads_the_same_servers() -> None:
    servers = parse_config(CLAUDE_DESKTOP)
    assert parse_config(config_text(servers)) == servers
    assert json.loads(config_text(servers))["mcpServers"]["old"]["disabled"] is True


def test_the_command_shown_before_a_first_run_is_exactly_what_runs() -> None:
    server = ServerConfig("files", command="npx", args=("-y", "server with spaces"), env={"TOKEN": "secret"})
    assert server.launch == "TOKEN=… npx -y 'server with spaces'"  # names of variables, never their values
    changed = ServerConfig("files", command="npx", args=("-y", "another"), env={"TOKEN": "secret"})
    assert server.launch_fingerprint != changed.launch_fingerprint


@pytest.mark.parametrize("url, local", [
    ("http://127.0.0.1:8000/mcp", True),
    ("http://localhost/mcp", True),
    ("http://[::1]:9000/mcp", True),
    ("http://127.5.0.1/mcp", True),
    ("https://example.com/mcp", False),
    ("http://192.168.1.20:8000/mcp", False),
    ("http://localhost.example.com/mcp", False),
])
def test_a_server_is_on_this_computer_only_at_a_loopback_address(url: str, local: bool) -> None:
    assert is_loopback_url(url) is local
    assert ServerConfig("s", url=url).is_on_this_computer is local


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[]", 'must be a JSON object with "mcpServers"'),
    ('{"other": {}}', 'no "mcpServers" object'),
    ('{"mcpServers": {"x": {}}}', 'Server "x" needs a "command"'),
    ('{"mcpServers": {"x": {"command": "a", "url": "http://h/"}}}', 'both a "command" and a "url"'),
    ('{"mcpServers": {"x": {"command": "a", "args": "--flag"}}}', '"args" must be a list of texts'),
    ('{"mcpServers": {"x": {"command": "a", "env": {"A": 1}}}}', '"env" must be an object of texts'),
    ('{"mcpServers": {"x": {"url": "ftp://h/"}}}', "http:// or https://"),
    ('{"mcpServers": {"a/b": {"command": "a"}}}', "without '/'"),
    ('{"mcpServers": {"x": {"command": "a", "disabled": "yes"}}}', '"disabled" must be true or false'),
    ("[" * 100_000, "nests too deeply"),
])
def test_a_config_that_cannot_be_used_says_what_to_fix(text: str, message: str) -> None:
    with pytest.raises(McpConfigError) as raised:
        parse_config(text)
    assert message in str(raised.value)


def test_an_empty_config_sets_up_no_servers() -> None:
    assert parse_config("") == () == parse_config('{"mcpServers": {}}')
