"""``qwen-local-chat --smoke-test-mcp-server``: a one-tool MCP server over stdio, for the smoke
test's "tools" check. The installed app starts itself as the server, so the check runs the
client (the tool service, the ``mcp`` SDK in the bundle) against a real process, with no Python
or anything else on the machine."""

from __future__ import annotations

MCP_SERVER_FLAG = "--smoke-test-mcp-server"
ECHO_PREFIX = "smoke test server heard: "


def main() -> int:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("smoke-test")

    @server.tool()
    def echo(text: str) -> str:
        """Answers with the text it was given."""
        return ECHO_PREFIX + text

    server.run()
    return 0
