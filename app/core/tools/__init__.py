"""Tools the model may call: the app's own, and those of MCP servers, each run only with the person's approval."""
