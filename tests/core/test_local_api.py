"""The local API as programs use it: the official ``openai`` client against the real server."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

from app.core.api.api_server import ApiServerConfig
from app.core.engines.llama.self_test_model import (
    ENDLESS_CYCLE,
    THINKING_ANSWER,
    THINKING_REASONING,
    TOOL_CALL_NAME,
    write_tiny_qwen35_gguf,
)
from tests.api_fixtures import CONTEXT, NO_THINKING, QWEN35_TEMPLATE, WEATHER_TOOL, ServedModel, serving
from tests.vision_fixtures import picture_bytes

HELLO = [{"role": "user", "content": "Hello"}]


def test_the_models_endpoint_lists_the_loaded_model_by_its_file_name(served_tools: ServedModel) -> None:
    models = served_tools.client.models.list().data
    assert [model.id for model in models] == ["tiny-tools"]
    assert served_tools.client.models.retrieve("tiny-tools").id == "tiny-tools"
    # What another copy of the app, using this one as its model server, wants to know.
    assert (models[0].max_model_len, models[0].capabilities) == (CONTEXT, ["completion"])


def test_continue_final_message_carries_on_the_last_assistant_message(served_endless: ServedModel) -> None:
    reply = served_endless.client.chat.completions.create(
        model="any", max_tokens=3,
        messages=[*HELLO, {"role": "assistant", "content": ENDLESS_CYCLE[:-1]}],
        extra_body={**NO_THINKING, "continue_final_message": True, "add_generation_prompt": False},
    )
    # The cycle goes on where the message stopped: a fresh reply would start it again.
    assert reply.choices[0].message.content == ENDLESS_CYCLE[-1] + ENDLESS_CYCLE[:-1]
    with pytest.raises(openai.BadRequestError, match="continue_final_message needs the last message"):
        served_endless.client.chat.completions.create(
            model="any", messages=HELLO, extra_body={"continue_final_message": True}
        )


def test_a_reply_returns_its_reasoning_and_its_answer_apart_with_token_counts(served_tools: ServedModel) -> None:
    reply = served_tools.client.chat.completions.create(model="tiny-tools", messages=HELLO, max_tokens=32)
    choice = reply.choices[0]
    assert choice.message.content == THINKING_ANSWER
    assert choice.message.reasoning_content == THINKING_REASONING
    assert choice.finish_reason == "stop"
    assert reply.usage.completion_tokens == len(THINKING_REASONING) + 1 + len(THINKING_ANSWER)
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.prompt_tokens_details.cached_tokens == 0


def test_thinking_is_switched_off_with_chat_template_kwargs_and_a_length_limit_says_length(
    served_endless: ServedModel,
) -> None:
    reply = served_endless.client.chat.completions.create(
        model="any", messages=HELLO, max_tokens=6, extra_body=NO_THINKING
    )
    assert reply.choices[0].message.content == ENDLESS_CYCLE * 2
    assert getattr(reply.choices[0].message, "reasoning_content", None) is None
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 6


def test_a_streamed_reply_sends_reasoning_then_answer_deltas_and_the_usage_last(served_tools: ServedModel) -> None:
    chunks = list(served_tools.client.chat.completions.create(
        model="tiny-tools", messages=HELLO, max_tokens=32, stream=True, stream_options={"include_usage": True}
    ))
    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    assert deltas[0].role == "assistant"
    reasoning = "".join(getattr(delta, "reasoning_content", None) or "" for delta in deltas)
    answer = "".join(delta.content or "" for delta in deltas)
    assert (reasoning, answer) == (THINKING_REASONING, THINKING_ANSWER)
    first_answer = next(index for index, delta in enumerate(deltas) if delta.content)
    assert all(not getattr(delta, "reasoning_content", None) for delta in deltas[first_answer:])
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6


@pytest.mark.parametrize("thinking", [True, False], ids=["thinking", "not-thinking"])
def test_a_follow_up_request_evaluates_only_what_is_new_since_the_last_one(
    served_tools: ServedModel, thinking: bool
) -> None:
    """The client resends the whole conversation; the part the last request evaluated (a long
    system prompt and the first question) is reused, whatever the template did to the reply."""
    client = served_tools.client
    options = {"chat_template_kwargs": {"enable_thinking": thinking}}
    conversation = [
        {"role": "system", "content": "You are terse. " * 60},
        {"role": "user", "content": "First question"},
    ]
    first = client.chat.completions.create(model="m", messages=conversation, max_tokens=32, extra_body=options)
    message = first.choices[0].message
    conversation.append({
        "role": "assistant",
        "content": message.content,
        "tool_calls": [call.model_dump() for call in message.tool_calls or []] or None,
    })
    if message.tool_calls:
        conversation.append({"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "18 C"})
    conversation.append({"role": "user", "content": "Second question"})
    second = client.chat.completions.create(model="m", messages=conversation, max_tokens=32, extra_body=options)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= first.usage.prompt_tokens - 8  # all but the assistant header it re-renders
    assert second.usage.prompt_tokens - cached < 80  # the reply, the new turns and their markup


def test_offered_tools_come_back_as_tool_calls_with_arguments_as_json_text(served_tools: ServedModel) -> None:
    reply = served_tools.client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL],
        max_tokens=32, extra_body=NO_THINKING,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == TOOL_CALL_NAME
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert call.id.startswith("call_")


def test_a_streamed_tool_call_arrives_whole_in_one_delta_and_no_markup_leaks_into_the_content(
    served_tools: ServedModel,
) -> None:
    chunks = list(served_tools.client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER_TOOL],
        max_tokens=32, stream=True, extra_body=NO_THINKING,
    ))
    deltas = [chunk.choices[0].delta for chunk in chunks]
    assert "".join(delta.content or "" for delta in deltas) == ""
    (call,) = [call for delta in deltas for call in delta.tool_calls or []]
    assert call.index == 0 and call.function.name == TOOL_CALL_NAME
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_tool_called_while_still_thinking_is_a_tool_call_all_the_same(tmp_path) -> None:
    model = write_tiny_qwen35_gguf(tmp_path / "slip.gguf", calls_tools_while_thinking=True, chat_template=QWEN35_TEMPLATE)
    with serving(model) as served:
        reply = served.client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER_TOOL], max_tokens=32
        )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == TOOL_CALL_NAME and json.loads(call.function.arguments) == {"city": "Paris"}
    assert "<tool_call>" in choice.message.reasoning_content  # the thinking stays as it was written


def test_a_tool_result_sent_back_is_answered(served_tools: ServedModel) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": TOOL_CALL_NAME, "arguments": '{"city": "Paris"}'}}
    reply = served_tools.client.chat.completions.create(
        model="m",
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 °C and sunny"},
        ],
        tools=[WEATHER_TOOL],
        max_tokens=32,
    )
    assert reply.choices[0].message.content == THINKING_ANSWER
    assert reply.choices[0].finish_reason == "stop"


def test_tool_choice_none_offers_no_tools(served_tools: ServedModel) -> None:
    reply = served_tools.client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER_TOOL], tool_choice="none",
        max_tokens=32,
    )
    assert reply.choices[0].message.tool_calls is None
    assert reply.usage.prompt_tokens < 40  # without the tools' description in the system turn


def test_a_stop_sequence_cuts_the_answer_even_across_tokens(served_endless: ServedModel) -> None:
    reply = served_endless.client.chat.completions.create(
        model="m", messages=HELLO, max_tokens=50, stop=["ca", "zz"], extra_body=NO_THINKING
    )
    assert reply.choices[0].message.content == "ab"
    assert reply.choices[0].finish_reason == "stop"


def test_a_prompt_too_long_for_the_context_is_refused_saying_by_how_much(served_tools: ServedModel) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        served_tools.client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "word " * CONTEXT}], max_tokens=100
        )
    error = refused.value.body
    assert error["code"] == "context_length_exceeded"
    assert "shorten it by" in error["message"] and f"{CONTEXT:,} tokens" in error["message"]


def test_a_reply_limit_beyond_the_context_is_refused_for_what_it_is(served_tools: ServedModel) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        served_tools.client.chat.completions.create(model="m", messages=HELLO, max_tokens=CONTEXT * 10)
    assert refused.value.body["code"] == "context_length_exceeded"
    assert f"A reply of up to {CONTEXT * 10:,} tokens cannot fit" in refused.value.body["message"]


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "wizard", "content": "hi"}], "messages[0].role"),
        ([], "messages"),
        ([{"role": "user", "content": 42}], "messages[0].content"),
        ([{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]},
          {"role": "user", "content": "hi"}], "messages[0].tool_calls[0]"),
    ],
    ids=["unknown-role", "no-messages", "content-not-text", "arguments-not-an-object"],
)
def test_a_malformed_request_is_refused_with_400_naming_the_field(
    served_tools: ServedModel, messages: list, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        served_tools.client.chat.completions.create(model="m", messages=messages)
    assert refused.value.body["param"] == param


def test_a_conversation_the_template_refuses_is_a_400_with_the_template_s_reason(served_tools: ServedModel) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        served_tools.client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}, {"role": "system", "content": "late"}]
        )
    assert refused.value.body["message"] == "System message must be at the beginning."


class _RecordingHandler(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args) -> None:
        pass


def test_an_image_url_is_never_fetched_and_the_refusal_says_to_send_the_image_itself(served_tools: ServedModel) -> None:
    image_server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingHandler)
    thread = threading.Thread(target=image_server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{image_server.server_port}/cat.png"
        with pytest.raises(openai.BadRequestError) as refused:
            served_tools.client.chat.completions.create(model="m", messages=[{"role": "user", "content": [
                {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}},
            ]}])
    finally:
        image_server.shutdown()
    assert refused.value.body["code"] == "remote_image_refused" and "data: URL" in refused.value.body["message"]
    assert _RecordingHandler.hits == []


def test_text_parts_are_read_and_an_image_for_a_model_without_its_projector_says_what_to_load(served_tools: ServedModel) -> None:
    reply = served_tools.client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": [{"type": "text", "text": "Hello"}]}], max_tokens=32
    )
    assert reply.choices[0].message.content == THINKING_ANSWER
    with pytest.raises(openai.BadRequestError) as refused:
        served_tools.client.chat.completions.create(model="m", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(picture_bytes(64, 64)).decode()}},
        ]}])
    assert refused.value.body["code"] == "images_unsupported" and "--mmproj" in refused.value.body["message"]


def test_without_a_loaded_model_a_request_gets_503_with_retry_after() -> None:
    with serving(None) as served:
        assert served.client.models.list().data == []
        with pytest.raises(openai.InternalServerError) as refused:
            served.client.chat.completions.create(model="m", messages=HELLO)
    assert refused.value.status_code == 503
    assert refused.value.response.headers["Retry-After"] == "10"
    assert refused.value.body["code"] == "model_not_loaded"


def test_a_wrong_or_missing_key_is_refused_with_401_and_the_right_one_works(tool_model) -> None:
    with serving(tool_model, ApiServerConfig(port=0, api_key="sesame-1234"), api_key="sesame-1234") as served:
        assert served.client.chat.completions.create(model="m", messages=HELLO, max_tokens=32).choices
        for wrong in ("sesame-123", ""):
            client = openai.OpenAI(base_url=served.url, api_key=wrong or "none", max_retries=0)
            with pytest.raises(openai.AuthenticationError) as refused:
                client.models.list()
            assert refused.value.body["code"] == "invalid_api_key"


def test_api_requests_are_logged_by_their_counts_only(served_tools: ServedModel) -> None:
    served_tools.client.chat.completions.create(model="m", messages=[{"role": "user", "content": "secret plans"}], max_tokens=32)
    record = served_tools.wait_for_record()
    assert (record.method, record.path, record.status) == ("POST", "/v1/chat/completions", 200)
    assert record.completion_tokens == 6 and record.prompt_tokens > 0
    assert "secret" not in repr(record)
