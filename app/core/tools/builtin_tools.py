"""The app's own tools: they work offline and need no setup (each can be switched off).

- ``get_current_time``: the date, time and time zone of this computer;
- ``calculate``: arithmetic, by ``safe_calculator`` (never ``eval``);
- ``search_conversations``: the person's own chats, through the store's full-text index.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from app.core.domain.conversations import MATCH_END, MATCH_START, SearchHit
from app.core.tools.safe_calculator import CalculationError, calculate
from app.core.tools.tool_catalog import BUILT_IN, ToolDefinition, ToolOutput

SearchConversations = Callable[[str], list[SearchHit]]
"""The messages matching a query, best first (``ConversationStore.search`` on its owner's thread)."""

MAX_SEARCH_RESULTS = 10

CURRENT_TIME = ToolDefinition(
    BUILT_IN,
    "get_current_time",
    "Returns the current local date, time, weekday and time zone of the user's computer.",
    {"type": "object", "properties": {}},
)
CALCULATOR = ToolDefinition(
    BUILT_IN,
    "calculate",
    "Calculates an arithmetic expression exactly, e.g. '(17.5 * 3) / 4' or 'sqrt(2) ** 10'. Supports "
    "+ - * / // % ** and functions such as sqrt, log, sin, cos, factorial, and the constants pi and e.",
    {
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "The expression to calculate."}},
        "required": ["expression"],
    },
)
SEARCH_CONVERSATIONS = ToolDefinition(
    BUILT_IN,
    "search_conversations",
    "Searches the user's earlier conversations in this app for messages containing all the given words, "
    "and returns the best matches with their conversation titles and dates.",
    {
        "type": "object",
        "properties": {"query": {"type": "string", "description": "Words to look for."}},
        "required": ["query"],
    },
)
DEFINITIONS = (CURRENT_TIME, CALCULATOR, SEARCH_CONVERSATIONS)


class BuiltInTools:
    """Runs the built-in tools; ``search`` reaches the conversation store."""

    def __init__(self, search: SearchConversations, *, now: Callable[[], datetime] = lambda: datetime.now().astimezone()) -> None:
        self._search = search
        self._now = now

    def run(self, name: str, arguments: Mapping[str, Any]) -> ToolOutput:
        if name == CURRENT_TIME.name:
            now = self._now()
            return ToolOutput(f"{now:%A, %d %B %Y, %H:%M:%S} (time zone {now.tzname() or 'local'}, UTC{now:%z}); ISO 8601: {now.isoformat(timespec='seconds')}")
        if name == CALCULATOR.name:
            try:
                return ToolOutput(calculate(_text_argument(arguments, "expression")))
            except CalculationError as error:
                return ToolOutput(str(error), is_error=True)
        if name == SEARCH_CONVERSATIONS.name:
            return self._search_conversations(_text_argument(arguments, "query"))
        return ToolOutput(f"There is no built-in tool named {name!r}.", is_error=True)

    def _search_conversations(self, query: str) -> ToolOutput:
        if not query.strip():
            return ToolOutput("Give the words to search for.", is_error=True)
        hits = self._search(query)[:MAX_SEARCH_RESULTS]
        if not hits:
            return ToolOutput(f"No messages contain {query!r}.")
        lines = [f"{len(hits)} best matches for {query!r}:"]
        for hit in hits:
            when = datetime.fromtimestamp(hit.created_at).strftime("%Y-%m-%d")
            snippet = hit.snippet.replace(MATCH_START, "").replace(MATCH_END, "")
            lines.append(f"- \"{hit.conversation_title or 'Untitled'}\" ({when}, {hit.role}): {snippet}")
        return ToolOutput("\n".join(lines))


def _text_argument(arguments: Mapping[str, Any], name: str) -> str:
    value = arguments.get(name, "")
    return value if isinstance(value, str) else str(value)
