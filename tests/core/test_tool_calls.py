"""Reading Qwen3.5's function calls out of its replies, and never choking on what is not one."""

from __future__ import annotations

import json

import pytest

from app.core.api.chat_response import StopSequences
from app.core.engines.tool_calls import ToolCallSplitter, parse_tool_calls

TOOLS = [{
    "type": "function",
    "function": {"name": "search", "parameters": {"type": "object", "properties": {
        "query": {"type": "string"}, "limit": {"type": "integer"}, "filters": {"type": "object"},
    }}},
}, {"type": "function", "function": {"name": "fetch", "parameters": {"type": "object", "properties": {}}}}]
XML_CALL = (
    "<tool_call>\n<function=search>\n<parameter=query>\n42\n</parameter>\n<parameter=limit>\n5\n</parameter>\n"
    "<parameter=filters>\n{\"site\": \"example.org\"}\n</parameter>\n</function>\n</tool_call>"
)


def test_xml_parameters_are_typed_by_the_tool_s_schema() -> None:
    text, (call,) = parse_tool_calls("Let me look.\n\n" + XML_CALL, TOOLS)
    assert text == "Let me look."
    assert call.name == "search"
    assert json.loads(call.arguments) == {"query": "42", "limit": 5, "filters": {"site": "example.org"}}


def test_the_json_form_of_older_qwen_models_is_read_too() -> None:
    _, (call,) = parse_tool_calls('<tool_call>\n{"name": "search", "arguments": {"query": "cats"}}\n</tool_call>')
    assert (call.name, json.loads(call.arguments)) == ("search", {"query": "cats"})


def test_several_calls_come_back_in_order_with_distinct_ids() -> None:
    _, calls = parse_tool_calls(XML_CALL + "\n" + XML_CALL.replace("search", "fetch"), TOOLS)
    assert [call.name for call in calls] == ["search", "fetch"]
    assert calls[0].id != calls[1].id


@pytest.mark.parametrize("text", [
    "<tool_call>\n<function=search>\n<parameter=query>\ncats",  # cut off by the token limit
    "<tool_call>{not json}</tool_call>",
    "<tool_call>\nno function here\n</tool_call>",
    "I would use <tool_call> tags.",
])
def test_what_does_not_parse_as_a_call_stays_text(text: str) -> None:
    assert parse_tool_calls(text, TOOLS) == (text, ())
    splitter = ToolCallSplitter(TOOLS)
    shown = "".join(splitter.feed(piece) for piece in text)
    rest, calls = splitter.finish()
    assert (shown + rest, calls) == (text, ())


def test_streaming_holds_back_a_call_even_when_its_tag_arrives_in_pieces() -> None:
    splitter = ToolCallSplitter(TOOLS)
    shown = "".join(splitter.feed(piece) for piece in ["Sure. <to", "ol_c", "all>\n<function=search>", "\n</function>\n</tool_call>"])
    rest, (call,) = splitter.finish()
    assert shown == "Sure. " and rest == "" and call.name == "search"
    assert splitter.answer == "Sure. "


def test_stop_sequences_are_found_across_pieces_and_nothing_after_them_is_let_out() -> None:
    stops = StopSequences(("END",))
    pieces = [stops.feed(piece) for piece in ["one E", "N", "D two"]]
    assert "".join(pieces) == "one " and stops.stopped and stops.finish() == ""
    unfinished = StopSequences(("END",))
    assert unfinished.feed("one EN") == "one " and unfinished.finish() == "EN"
