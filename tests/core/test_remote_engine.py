"""The model-server engine: replies from an OpenAI-compatible server behind the engine interface.

Against real servers on 127.0.0.1: a scripted one for the faults servers will not produce on
cue, our own ``qwen-local-chat serve`` and llama-cpp-python's server with the tiny model.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.core.domain.generation import ChatImage, ChatMessage, GenerationRequest, RemoteModel, SamplingSettings, StopReason, ToolCall
from app.core.engines.engine_events import (
    GenerationFailed,
    GenerationFinished,
    ModelLoaded,
    ModelLoadFailed,
    TextGenerated,
    WaitingForServer,
)
from app.core.engines.engine_host import Priority
from app.core.engines.llama.self_test_model import THINKING_ANSWER, THINKING_REASONING
from tests.event_recorder import TIMEOUT_S, EventRecorder
from tests.model_server_fixtures import RemoteHost, ScriptedModelServer, llama_cpp_server, serve_process

WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "The weather now.",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}
PNG = b"\x89PNG\r\n\x1a\n" + b"picture bytes"


@pytest.fixture
def connected(remote_host: RemoteHost, scripted_server: ScriptedModelServer) -> RemoteHost:
    """The scripted server added as "Desktop", its model loaded."""
    remote_host.add("Desktop", scripted_server.url)
    loaded = remote_host.load(RemoteModel("Desktop", "big-model"))
    assert isinstance(loaded, ModelLoaded), loaded
    return remote_host


@pytest.mark.parametrize("reasoning_field", ["reasoning_content", "reasoning", ""], ids=["llama-server", "vllm-ollama", "think-tags"])
def test_reasoning_and_answer_are_told_apart_however_the_server_sends_them(
    connected: RemoteHost, scripted_server: ScriptedModelServer, reasoning_field: str
) -> None:
    scripted_server.script.reasoning_field = reasoning_field
    finished, events = connected.ask()
    assert isinstance(finished, GenerationFinished), finished
    result = finished.result
    assert (result.reasoning.strip(), result.answer) == ("Let me think.", "Hello from the server.")
    streamed = events.of(TextGenerated)
    assert "".join(event.answer for event in streamed) == "Hello from the server."
    assert len(streamed) >= 4  # streamed piece by piece, not at the end
    assert result.stats.stop_reason is StopReason.END_OF_TURN


def test_usage_gives_the_stats_line_its_counts_and_cached_tokens(connected: RemoteHost) -> None:
    finished, _events = connected.ask()
    stats = finished.result.stats
    assert (stats.prompt_tokens, stats.evaluated_prompt_tokens, stats.generated_tokens) == (120, 20, 6)
    assert stats.tokens_per_second > 0 and stats.time_to_first_token_s > 0


def test_the_loaded_model_has_the_facts_the_server_gives(connected: RemoteHost, scripted_server: ScriptedModelServer) -> None:
    facts = connected.host.facts
    assert facts.remote == RemoteModel("Desktop", "big-model") and facts.path is None
    assert facts.context_size == 32768 and facts.backend == "Desktop"
    assert facts.server_address == scripted_server.url.split("/")[2]
    assert not facts.leaves_this_computer  # 127.0.0.1


def test_the_request_carries_sampling_and_the_thinking_switch(connected: RemoteHost, scripted_server: ScriptedModelServer) -> None:
    connected.ask(thinking=False, max_tokens=500)
    sent = scripted_server.requests[-1]
    plain = SamplingSettings.for_mode(thinking=False)
    assert sent["chat_template_kwargs"] == {"enable_thinking": False}
    assert (sent["temperature"], sent["top_p"], sent["top_k"], sent["min_p"], sent["presence_penalty"]) == (
        plain.temperature, plain.top_p, plain.top_k, plain.min_p, plain.presence_penalty
    )
    assert sent["max_tokens"] == 500 and sent["stream"] is True and sent["model"] == "big-model"


def test_a_reply_limit_longer_than_the_servers_context_is_left_to_the_server(
    connected: RemoteHost, scripted_server: ScriptedModelServer
) -> None:
    connected.ask(max_tokens=32768)  # the model card's default; vLLM refuses more than its context
    assert "max_tokens" not in scripted_server.requests[-1]


def test_waiting_for_the_server_is_reported_until_its_first_token(connected: RemoteHost, scripted_server: ScriptedModelServer) -> None:
    release = scripted_server.script.hold_first_chunk = threading.Event()
    events = EventRecorder()
    request = GenerationRequest((ChatMessage("user", "Hi"),), enable_thinking=True, sampling=SamplingSettings())
    connected.host.generate(request, Priority.PERSON, events)
    events.wait_for(WaitingForServer)
    assert not events.of(TextGenerated)
    release.set()
    assert isinstance(events.wait_for((GenerationFinished, GenerationFailed)), GenerationFinished)
    assert events.events.index(events.of(WaitingForServer)[0]) < events.events.index(events.of(TextGenerated)[0])


def test_stop_closes_the_stream_at_once_without_waiting_for_the_server(
    connected: RemoteHost, scripted_server: ScriptedModelServer
) -> None:
    held = threading.Event()  # never set before the end: the server would wait forever
    scripted_server.script.hold_after_chunks = (3, held)
    events = EventRecorder()
    request = GenerationRequest((ChatMessage("user", "Hi"),), enable_thinking=True, sampling=SamplingSettings())
    connected.host.generate(request, Priority.PERSON, events)
    events.wait_for(TextGenerated)
    request.cancel.set()
    finished = events.wait_for(GenerationFinished)
    assert finished.result.stats.stop_reason is StopReason.CANCELLED
    assert not held.is_set()  # it ended while the server still held the rest
    held.set()
    assert scripted_server.disconnected.wait(TIMEOUT_S)  # the connection was closed, not left open


def test_a_stream_cut_mid_reply_keeps_what_came_and_says_why(connected: RemoteHost, scripted_server: ScriptedModelServer) -> None:
    scripted_server.script.cut_after_chunks = 5  # role, two of reasoning, two of answer
    finished, _events = connected.ask()
    result = finished.result
    assert result.stats.stop_reason is StopReason.CONNECTION_LOST
    assert (result.reasoning, result.answer) == ("Let me think.", "Hello from ")
    assert result.problem.startswith("Desktop ended the reply before it was complete")


@pytest.mark.parametrize(
    ("status", "retry_after", "sentence"),
    [
        (401, "", "Desktop refused the key: check the key set for this server."),
        (403, "", "Desktop does not let this key use it."),
        (429, "12", "Desktop is busy with other requests: try again in 12 seconds."),
        (500, "", "Desktop failed while answering (error 500: Something went wrong on the server.)."),
        (503, "", "Desktop failed while answering (error 503: Something went wrong on the server.)."),
    ],
)
def test_each_refusal_is_one_clear_sentence(
    connected: RemoteHost, scripted_server: ScriptedModelServer, status: int, retry_after: str, sentence: str
) -> None:
    scripted_server.script.status, scripted_server.script.retry_after = status, retry_after
    failed, _events = connected.ask()
    assert isinstance(failed, GenerationFailed) and failed.message == sentence
    assert len(scripted_server.headers) == 2  # the listing, then one attempt: never retried behind the person's back


def test_a_model_that_disappears_from_the_server_is_named(connected: RemoteHost, scripted_server: ScriptedModelServer) -> None:
    scripted_server.script.models = [{"id": "other-model", "object": "model"}]
    failed, _events = connected.ask()
    assert failed.message == "Desktop no longer has the model 'big-model': choose another one of its models."
    again = connected.load(RemoteModel("Desktop", "big-model"))
    assert isinstance(again, ModelLoadFailed)
    assert again.message == "Desktop has no model 'big-model' (it lists: other-model)."
    assert again.still_loaded is not None  # a failed load changes nothing


def test_a_long_server_error_is_cut_to_one_short_line(connected: RemoteHost, scripted_server: ScriptedModelServer) -> None:
    scripted_server.script.status = 500
    scripted_server.script.error_message = "Traceback\n" + "x" * 5000
    failed, _events = connected.ask()
    assert "\n" not in failed.message and len(failed.message) < 320


def test_calls_streamed_in_fragments_come_back_whole(connected: RemoteHost, scripted_server: ScriptedModelServer) -> None:
    scripted_server.script.tool_calls = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    finished, _events = connected.ask(tools=(WEATHER_TOOL,))
    assert finished.result.tool_calls == (ToolCall("call_0", "get_weather", '{"city": "Paris"}'),)
    assert scripted_server.requests[-1]["tools"] == [WEATHER_TOOL]


def test_calls_the_server_leaves_as_qwen_text_are_read_and_not_shown(
    connected: RemoteHost, scripted_server: ScriptedModelServer
) -> None:
    scripted_server.script.answer = ["<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n", "</parameter>\n</function>\n</tool_call>"]
    finished, events = connected.ask(tools=(WEATHER_TOOL,))
    (call,) = finished.result.tool_calls
    assert (call.name, call.arguments) == ("get_weather", '{"city": "Paris"}')
    assert "tool_call" not in "".join(event.answer for event in events.of(TextGenerated))


def test_a_call_of_a_tool_not_offered_is_not_made(connected: RemoteHost, scripted_server: ScriptedModelServer) -> None:
    scripted_server.script.tool_calls = [{"name": "delete_everything", "arguments": {}}]
    finished, _events = connected.ask(tools=(WEATHER_TOOL,))
    assert finished.result.tool_calls == ()


def test_history_pictures_calls_and_results_go_out_in_openais_form(
    connected: RemoteHost, scripted_server: ScriptedModelServer
) -> None:
    call = ToolCall("call_7", "get_weather", '{"city": "Oslo"}')
    messages = (
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "What is this?", images=(ChatImage("ab" * 32, PNG),)),
        ChatMessage("assistant", "", reasoning="Look it up.", tool_calls=(call,)),
        ChatMessage("tool", "Sunny", tool_call_id="call_7"),
    )
    events = EventRecorder()
    connected.host.generate(
        GenerationRequest(messages, enable_thinking=True, sampling=SamplingSettings()), Priority.PERSON, events
    )
    events.wait_for(GenerationFinished)
    system, user, assistant, tool = scripted_server.requests[-1]["messages"]
    assert system == {"role": "system", "content": "Be brief."}
    picture, text = user["content"]
    assert picture["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGg") and text == {"type": "text", "text": "What is this?"}
    assert assistant["tool_calls"] == [{"id": "call_7", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]
    assert assistant["reasoning_content"] == "Look it up."
    assert tool == {"role": "tool", "content": "Sunny", "tool_call_id": "call_7"}


def test_continuing_a_reply_asks_the_server_to_carry_on_the_last_message(
    connected: RemoteHost, scripted_server: ScriptedModelServer
) -> None:
    finished, _events = connected.ask(continuation=ChatMessage("assistant", "Hello from "))
    assert isinstance(finished, GenerationFinished)
    sent = scripted_server.requests[-1]
    assert sent["messages"][-1] == {"role": "assistant", "content": "Hello from "}
    assert (sent["continue_final_message"], sent["add_generation_prompt"]) == (True, False)


def test_a_remote_model_replaces_the_local_one_only_once_its_server_answers(
    remote_host: RemoteHost, scripted_server: ScriptedModelServer, tiny_model: Path
) -> None:
    assert isinstance(remote_host.load(tiny_model), ModelLoaded)
    remote_host.add("Gone", "http://127.0.0.1:9/v1")
    failed = remote_host.load(RemoteModel("Gone", "big-model"))
    assert isinstance(failed, ModelLoadFailed) and failed.still_loaded.path == tiny_model
    assert failed.message.startswith("Gone cannot be reached at 127.0.0.1:9")
    assert remote_host.host.call(lambda engine: engine.local.is_loaded).result(TIMEOUT_S)

    remote_host.add("Desktop", scripted_server.url)
    assert isinstance(remote_host.load(RemoteModel("Desktop", "big-model")), ModelLoaded)
    assert not remote_host.host.call(lambda engine: engine.local.is_loaded).result(TIMEOUT_S)  # its memory is free
    assert isinstance(remote_host.load(tiny_model), ModelLoaded)  # and back
    finished, _events = remote_host.ask()
    assert finished.result.answer == THINKING_ANSWER and not scripted_server.requests


# --------------------------------------------------------------------- real model servers


def test_our_own_serve_answers_through_it_and_reuses_its_saved_state(remote_host: RemoteHost, tiny_model: Path, tmp_path: Path) -> None:
    with serve_process(tiny_model, tmp_path / "server-profile") as (_process, url):
        remote_host.add("Home server", url)
        loaded = remote_host.load(RemoteModel("Home server", "tiny-thinking"))
        assert isinstance(loaded, ModelLoaded) and loaded.facts.context_size > 0
        first, _events = remote_host.ask("Why?")
        assert (first.result.reasoning, first.result.answer) == (THINKING_REASONING, THINKING_ANSWER)
        again, _events = remote_host.ask("Why?")
    stats = again.result.stats
    assert stats.prompt_tokens > 0 and stats.evaluated_prompt_tokens < stats.prompt_tokens  # cached_tokens counted


def test_llama_cpp_python_s_own_server_answers_through_it_too(remote_host: RemoteHost, tiny_model: Path) -> None:
    with llama_cpp_server(tiny_model, alias="tiny") as (_process, url):
        remote_host.add("Other server", url)
        assert isinstance(remote_host.load(RemoteModel("Other server", "tiny")), ModelLoaded)
        finished, events = remote_host.ask("Why?")
    result = finished.result
    # It leaves the reasoning in the content, after the prompt's open <think>: still told apart.
    assert (result.reasoning.strip(), result.answer) == (THINKING_REASONING, THINKING_ANSWER)
    assert result.stats.generated_tokens > 0


def test_a_server_that_ends_the_stream_before_any_text_fails_with_a_sentence(
    connected: RemoteHost, scripted_server: ScriptedModelServer
) -> None:
    scripted_server.script.cut_after_chunks = 1  # only the role, then the connection closes
    failed, _events = connected.ask()
    assert isinstance(failed, GenerationFailed)
    assert failed.message == "Desktop ended the reply before sending any of it (it may have stopped or restarted)."
