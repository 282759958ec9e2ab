"""A real MCP server for the tests, written with the SDK's MCPServer (FastMCP before mcp 2.x)
and started over stdio by them: ``python tests/mcp_test_server.py [--crash-at-start]``.

Its tools behave in the ways a test needs: answer, answer with typed arguments, never answer,
answer too much, and kill the server mid-call.
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import MCPServer

CITY_WEATHER = "Sunny, 21 °C in {city}"

server = MCPServer("test-tools")


@server.tool()
def get_weather(city: str) -> str:
    """The weather in a city."""
    return CITY_WEATHER.format(city=city)


@server.tool()
def describe_arguments(count: int, ratio: float, enabled: bool, tags: list[str], options: dict, label: str) -> str:
    """Echoes its arguments with their Python types, to check schema conversion."""
    values = {"count": count, "ratio": ratio, "enabled": enabled, "tags": tags, "options": options, "label": label}
    return ", ".join(f"{name}={value!r}:{type(value).__name__}" for name, value in values.items())


@server.tool()
async def wait_forever() -> str:
    """Never answers."""
    await asyncio.Event().wait()
    return "never"


@server.tool()
def flood(characters: int) -> str:
    """Answers with that many characters."""
    return "x" * characters


@server.tool()
def crash() -> str:
    """Ends the server's process in the middle of the call."""
    print("crash tool: exiting now", file=sys.stderr, flush=True)
    os._exit(7)


if __name__ == "__main__":
    if "--crash-at-start" in sys.argv:
        print("test server: cannot start, missing configuration", file=sys.stderr, flush=True)
        sys.exit(3)
    server.run()
