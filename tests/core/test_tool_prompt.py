"""Tool calls and results in the prompt: stored parts become exactly what Qwen3.5's own template
renders for the same conversation, byte for byte."""

from __future__ import annotations

import json
from dataclasses import replace

from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.core.chat import prompt_assembly
from app.core.domain.conversations import Message, MessageState, ToolCallPart, ToolResultPart
from app.core.engines.llama.chat_template import ChatTemplate
from app.core.tools.builtin_tools import CALCULATOR
from app.core.tools.tool_catalog import ToolDefinition, offer
from tests.tool_fixtures import REAL_TEMPLATE

WEATHER = ToolDefinition("weather", "get_weather", "The weather in a city.", {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "units": {"type": "array"}},
    "required": ["city"],
})
ARGUMENTS = {"city": "Paris", "days": 3, "units": ["metric", "kelvin"]}


def _message(message_id: int, role: str, content: str = "", *, reasoning: str = "", parts=()) -> Message:
    return Message(message_id, 1, role, content, reasoning, MessageState.COMPLETE, 0.0, None, None, message_id - 1 or None, parts)


CONVERSATION = [
    _message(1, "user", "Weather in Paris, and what is 17 * 3?"),
    _message(2, "assistant", "", reasoning="I need two tools.", parts=(
        ToolCallPart("call_1", "get_weather", ARGUMENTS), ToolCallPart("call_2", "calculate", {"expression": "17 * 3"}),
    )),
    _message(3, "tool", "Sunny, 21 °C", parts=(ToolResultPart("call_1", "get_weather", "Sunny, 21 °C", server="weather"),)),
    _message(4, "tool", "51", parts=(ToolResultPart("call_2", "calculate", "51", server="Built-in"),)),
    _message(5, "assistant", "It is sunny and 17 × 3 = 51.", reasoning="Both answered."),
    _message(6, "user", "Thanks! And tomorrow?"),
    _message(7, "assistant", "Let me look.", parts=(ToolCallPart("call_3", "get_weather", {"city": "Paris", "days": 1}),)),
    _message(8, "tool", "Rain", parts=(ToolResultPart("call_3", "get_weather", "Rain", True, "weather", "failed"),)),
]


def _reference_render(messages: list[dict], tools: list[dict], enable_thinking: bool) -> str:
    """The template as Hugging Face's apply_chat_template renders it (transformers'
    environment and helpers), given the conversation in the OpenAI form."""
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    environment.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent)
    environment.globals["raise_exception"] = lambda message: (_ for _ in ()).throw(ValueError(message))
    return environment.from_string(REAL_TEMPLATE.read_text()).render(
        messages=messages, tools=tools, add_generation_prompt=True, enable_thinking=enable_thinking
    )


def _openai_form() -> list[dict]:
    def call(call_id, name, arguments):
        return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}

    return [
        {"role": "user", "content": "Weather in Paris, and what is 17 * 3?"},
        {"role": "assistant", "content": "", "reasoning_content": "I need two tools.", "tool_calls": [
            call("call_1", "get_weather", ARGUMENTS), call("call_2", "calculate", {"expression": "17 * 3"}),
        ]},
        {"role": "tool", "content": "Sunny, 21 °C", "tool_call_id": "call_1"},
        {"role": "tool", "content": "51", "tool_call_id": "call_2"},
        {"role": "assistant", "content": "It is sunny and 17 × 3 = 51.", "reasoning_content": "Both answered."},
        {"role": "user", "content": "Thanks! And tomorrow?"},
        {"role": "assistant", "content": "Let me look.", "reasoning_content": "", "tool_calls": [
            call("call_3", "get_weather", {"city": "Paris", "days": 1}),
        ]},
        {"role": "tool", "content": "Rain", "tool_call_id": "call_3"},
    ]


def test_stored_calls_and_results_render_byte_for_byte_as_the_template_does() -> None:
    messages, kept = prompt_assembly.prompt_messages("", CONVERSATION)
    assert kept == [message.id for message in CONVERSATION]  # a reply with only calls is kept
    schemas = offer([WEATHER, CALCULATOR]).schemas()
    for thinking in (True, False):
        ours = ChatTemplate(REAL_TEMPLATE.read_text()).render(messages, enable_thinking=thinking, tools=schemas)
        assert ours == _reference_render(_openai_form(), list(schemas), thinking)
    assert "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n" in ours
    assert '<parameter=units>\n["metric", "kelvin"]\n</parameter>' in ours
    assert "<|im_start|>user\n<tool_response>\nSunny, 21 °C\n</tool_response>\n<tool_response>\n51\n</tool_response><|im_end|>" in ours
    assert '"name": "get_weather"' in ours.split("</tools>")[0]


def test_a_tool_message_becomes_the_result_of_its_call() -> None:
    messages, _ = prompt_assembly.prompt_messages("", CONVERSATION[:4])
    call = messages[1].tool_calls[1]
    assert (call.id, call.name, json.loads(call.arguments)) == ("call_2", "calculate", {"expression": "17 * 3"})
    assert (messages[3].role, messages[3].content, messages[3].tool_call_id) == ("tool", "51", "call_2")


def test_a_failed_reply_is_left_out_even_with_calls() -> None:
    failed = replace(CONVERSATION[1], state=MessageState.FAILED)
    _, kept = prompt_assembly.prompt_messages("", [CONVERSATION[0], failed])
    assert kept == [1]
