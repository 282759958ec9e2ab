"""The tools there are, as the model is offered them, and what running one gives back.

Every tool has a home: ``BUILT_IN`` for the app's own, or the name of the MCP server that
provides it. Its ``key`` ("server/tool") names it in settings (switched off, always allowed);
the model knows it only by the name it is offered under, which is its own name unless two
servers offer the same one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.core.domain.conversations import ToolOutcome

BUILT_IN = "Built-in"  # the home of the app's own tools

# A tool result larger than this is cut (with a notice saying so): tools eat the context, and a
# server answering megabytes would push the whole conversation out of it.
MAX_RESULT_CHARACTERS = 16_000
MAX_DESCRIPTION_CHARACTERS = 2_000  # of a server's tool description: it goes into every prompt

_OFFERED_NAME = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class ToolDefinition:
    """One tool: where it lives (``server``), its name there, and its JSON-schema parameters."""

    server: str
    name: str
    description: str
    input_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    @property
    def key(self) -> str:
        return tool_key(self.server, self.name)

    @property
    def is_built_in(self) -> bool:
        return self.server == BUILT_IN


def tool_key(server: str, name: str) -> str:
    """How settings name the tool ``name`` of ``server``."""
    return f"{server}/{name}"


@dataclass(frozen=True)
class ToolOutput:
    """What a tool answered: text for the model; ``is_error`` when it is an error message."""

    text: str
    is_error: bool = False


@dataclass(frozen=True)
class ToolRun:
    """A finished call: its output, how long it ran, and how it ended."""

    output: ToolOutput
    duration_s: float
    outcome: ToolOutcome


@dataclass(frozen=True)
class OfferedTools:
    """The tools one reply may call, by the name the model is told."""

    by_name: Mapping[str, ToolDefinition] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.by_name)

    def schemas(self) -> tuple[dict[str, Any], ...]:
        """The function definitions for the chat template (OpenAI's form)."""
        return tuple(
            {
                "type": "function",
                "function": {"name": name, "description": tool.description, "parameters": dict(tool.input_schema)},
            }
            for name, tool in self.by_name.items()
        )

    def find(self, name: str) -> ToolDefinition | None:
        return self.by_name.get(name)


def offer(tools: Iterable[ToolDefinition]) -> OfferedTools:
    """Names every tool for the model: its own name, or "server_name" where two homes offer the
    same name (the first keeps the plain one)."""
    by_name: dict[str, ToolDefinition] = {}
    for tool in tools:
        name = tool.name
        if name in by_name:
            name = _OFFERED_NAME.sub("_", f"{tool.server}_{tool.name}")
        while name in by_name:
            name += "_"
        by_name[name] = tool
    return OfferedTools(by_name)


def bounded_result(text: str) -> str:
    """``text`` cut to ``MAX_RESULT_CHARACTERS``, saying so where it was cut."""
    if len(text) <= MAX_RESULT_CHARACTERS:
        return text
    return (
        text[:MAX_RESULT_CHARACTERS]
        + f"\n[Result truncated: the tool returned {len(text):,} characters; only the first "
        f"{MAX_RESULT_CHARACTERS:,} are shown.]"
    )
