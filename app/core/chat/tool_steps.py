"""What the chat session tells the model and the person about tool calls, and how a reply's
calls are kept: the texts of a turn's tool steps, apart from the session's state machine."""

from __future__ import annotations

import json
from collections.abc import Sequence

from app.core.domain.conversations import ToolCallPart
from app.core.domain.generation import ToolCall

UNREADABLE_CALL_NOTICE = (
    "The model wrote a tool call that could not be used (malformed, or a tool this chat does not offer); "
    "it is shown as text and nothing was run."
)
TOOL_RESULTS_TOO_LONG = (
    "The tool results do not leave room for a reply in this model's context window. Load the model "
    "with a larger context, switch off tools this chat does not need, or ask for less at a time."
)
DENIED_RESULT = "The user denied this tool call; it was not run."
STOPPED_BEFORE_RESULT = "The user stopped the reply before this tool call ran; it was not run."


def step_limit_notice(limit: int) -> str:
    return (
        f"This turn reached its limit of {limit} tool call{'s' if limit != 1 else ''} (Settings › Tools); "
        "the remaining calls were not run."
    )


def call_parts(calls: Sequence[ToolCall]) -> tuple[ToolCallPart, ...]:
    """The calls a reply made, as the message parts that keep them (arguments as a mapping)."""
    return tuple(ToolCallPart(call.id, call.name, _arguments(call.arguments)) for call in calls)


def _arguments(text: str) -> dict:
    """A call's arguments (JSON text from the parser, always an object) as a mapping."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
