"""A real MCP server for the tests, written with the SDK's MCPServer (FastMCP before mcp 2.x)
and started over stdio by them: ``python tests/mcp_test_server.py [--crash-at-start]
[--weather=answer|hang|crash|flood] [--http PORT]``.

The tiny test models always call ``get_weather``, so ``--weather`` picks what that call does:
answer, never answer, answer too much, or kill the server mid-call. ``describe_arguments``
echoes typed arguments. (Few tools, and short: with the tiny model's byte-sized tokens each
description costs hundreds of tokens of its 4,096-token context.) ``--http PORT`` serves streamable
HTTP on 127.0.0.1 instead of stdio.
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import MCPServer

CITY_WEATHER = "Sunny, 21 °C in {city}"

server = MCPServer("test-tools")


FLOOD_CHARACTERS = 100_000
_WEATHER = next((arg.split("=", 1)[1] for arg in sys.argv if arg.startswith("--weather=")), "answer")


@server.tool()
async def get_weather(city: str) -> str:
    """The weather in a city."""
    if _WEATHER == "hang":
        await asyncio.Event().wait()
    if _WEATHER == "crash":
        print("get_weather: exiting mid-call", file=sys.stderr, flush=True)
        os._exit(7)
    if _WEATHER == "flood":
        return "y" * FLOOD_CHARACTERS
    return CITY_WEATHER.format(city=city) + os.environ.get("WEATHER_SUFFIX", "")


@server.tool()
def describe_arguments(count: int, ratio: float, enabled: bool, tags: list[str], options: dict, label: str) -> str:
    """Echoes its arguments with their Python types, to check schema conversion."""
    values = {"count": count, "ratio": ratio, "enabled": enabled, "tags": tags, "options": options, "label": label}
    return ", ".join(f"{name}={value!r}:{type(value).__name__}" for name, value in values.items())


if __name__ == "__main__":
    if "--crash-at-start" in sys.argv:
        print("test server: cannot start, missing configuration", file=sys.stderr, flush=True)
        sys.exit(3)
    if "--http" in sys.argv:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[sys.argv.index("--http") + 1]))
    else:
        server.run()
