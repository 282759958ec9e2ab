"""The function calls in a Qwen3.5 reply: found while it streams, parsed when it ends.

Qwen3.5 writes a call in the XML form its chat template teaches (``../shared/reference``)::

    <tool_call>
    <function=get_weather>
    <parameter=city>
    Paris
    </parameter>
    </function>
    </tool_call>

Smaller models sometimes fall back to the JSON form of Qwen2.5/Qwen3 (``<tool_call>{"name": …,
"arguments": {…}}</tool_call>``); both are read. Parameter values are text, converted by the
tool's JSON schema: a string parameter keeps the text as it is (``"42"`` stays a string), a
boolean takes true/false in any case, anything else (numbers, arrays, objects, or no declared
type) is decoded as JSON where it parses, the rule of llama.cpp's own Qwen3-Coder parser.

Model output is untrusted: what does not parse stays answer text, never an exception; so does a
call of a function that was not offered, when functions were.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence

from app.core.domain.generation import ToolCall

OPEN = "<tool_call>"
CLOSE = "</tool_call>"
MAX_CALLS = 64  # a reply asking for more is not a sensible plan: the rest stays text

_BLOCK = re.compile(re.escape(OPEN) + r"(.*?)" + re.escape(CLOSE), re.DOTALL)
_FUNCTION = re.compile(r"^\s*<function=([^>\n]+)>(.*?)(?:</function>\s*)?$", re.DOTALL)
_PARAMETER = re.compile(r"<parameter=([^>\n]+)>\n?(.*?)\n?</parameter>", re.DOTALL)


def new_call_id() -> str:
    """An id in OpenAI's form, unique enough to pair a call with its result."""
    return "call_" + secrets.token_hex(12)


def parse_tool_calls(text: str, tools: Sequence[Mapping] = ()) -> tuple[str, tuple[ToolCall, ...]]:
    """``text`` without its well-formed tool-call blocks, and the calls they make, in order."""
    calls: list[ToolCall] = []
    kept: list[str] = []
    position = 0
    types = _parameter_types(tools)
    for match in _BLOCK.finditer(text):
        call = _parse_block(match.group(1), types) if len(calls) < MAX_CALLS else None
        if call is None or (types and call.name not in types):
            continue  # left in the text: the reader sees what the model wrote
        calls.append(call)
        kept.append(text[position:match.start()])
        position = match.end()
    kept.append(text[position:])
    remaining = "".join(kept)
    return (remaining.strip() if calls else remaining), tuple(calls)


class ToolCallSplitter:
    """Streams a reply's answer text, holding back everything from the first ``<tool_call>`` on,
    so a client never shows the raw XML of a call; ``finish`` parses what was held."""

    def __init__(self, tools: Sequence[Mapping]) -> None:
        self._tools = tools
        self._held = ""  # text not yet let out: a call, or what may become one
        self._in_call = False
        self._streamed: list[str] = []

    def feed(self, delta: str) -> str:
        """The part of ``delta`` that is answer text for certain now."""
        if self._in_call:
            self._held += delta
            return ""
        text = self._held + delta
        start = text.find(OPEN)
        if start >= 0:
            self._in_call = True
            self._held = text[start:]
            return self._let_out(text[:start])
        keep = unfinished_marker_length(text, OPEN)
        self._held = text[len(text) - keep:] if keep else ""
        return self._let_out(text[: len(text) - keep])

    def finish(self) -> tuple[str, tuple[ToolCall, ...]]:
        """The rest of the answer text (a call that did not parse is given back as text) and
        the calls."""
        held, self._held = self._held, ""
        rest, calls = parse_tool_calls(held, self._tools)
        if calls:
            return rest, calls
        return self._let_out(held), ()

    @property
    def answer(self) -> str:
        """All the answer text let out so far."""
        return "".join(self._streamed)

    def _let_out(self, text: str) -> str:
        if text:
            self._streamed.append(text)
        return text


def unfinished_marker_length(text: str, marker: str) -> int:
    """How many trailing characters of ``text`` could be the start of ``marker``: text a stream
    must hold back until the next piece says whether the marker follows."""
    for length in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-length:]):
            return length
    return 0


def _parse_block(body: str, types: Mapping[str, Mapping[str, frozenset[str]]]) -> ToolCall | None:
    stripped = body.strip()
    if stripped.startswith("{"):
        return _parse_json_call(stripped)
    function = _FUNCTION.match(body)
    if function is None:
        return None
    name = function.group(1).strip()
    parameter_types = types.get(name, {})
    arguments = {
        key.strip(): _parameter_value(value, parameter_types.get(key.strip()))
        for key, value in _PARAMETER.findall(function.group(2))
    }
    return ToolCall(new_call_id(), name, json.dumps(arguments, ensure_ascii=False))


def _parse_json_call(text: str) -> ToolCall | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(new_call_id(), value["name"], json.dumps(arguments, ensure_ascii=False))


def _parameter_value(text: str, declared_types: frozenset[str] | None) -> object:
    if declared_types and "string" in declared_types:
        return text
    if declared_types and "boolean" in declared_types and text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def _parameter_types(tools: Sequence[Mapping]) -> dict[str, dict[str, frozenset[str]]]:
    """Each offered function's declared parameter types, by function and parameter name."""
    types: dict[str, dict[str, frozenset[str]]] = {}
    for tool in tools:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            continue
        parameters = function.get("parameters")
        properties = parameters.get("properties") if isinstance(parameters, Mapping) else None
        types[function["name"]] = {
            key: _declared_types(spec)
            for key, spec in (properties.items() if isinstance(properties, Mapping) else ())
            if isinstance(spec, Mapping)
        }
    return types


def _declared_types(spec: Mapping) -> frozenset[str]:
    """A schema's types: ``"type"`` as a name or a list, or those of its ``anyOf``/``oneOf``
    choices (how Pydantic writes ``int | None``)."""
    declared = spec.get("type")
    if isinstance(declared, str):
        return frozenset((declared,))
    if isinstance(declared, list):
        return frozenset(item for item in declared if isinstance(item, str))
    choices = spec.get("anyOf", spec.get("oneOf"))
    if isinstance(choices, list):
        return frozenset(
            item["type"] for item in choices if isinstance(item, Mapping) and isinstance(item.get("type"), str)
        )
    return frozenset()
