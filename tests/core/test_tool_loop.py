"""The tool loop of the chat session: call → the person approves → run → result → the model goes
on. Real store, real engine on tiny models that call ``get_weather``, and the real MCP test
server over stdio (tests/mcp_test_server.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from app.core.chat.chat_events import (
    ConversationOpened,
    MessageAdded,
    ReplyCalledTools,
    ToolApproval,
    ToolApprovalRequested,
    ToolCallRunning,
    ToolsMeasured,
    ToolsStarting,
    TurnFailed,
    TurnFinished,
    TurnStarted,
)
from app.core.chat.chat_session import ChatSession
from app.core.chat.tool_steps import (
    DENIED_RESULT,
    STOPPED_BEFORE_RESULT,
    TOOL_RESULTS_TOO_LONG,
    UNREADABLE_CALL_NOTICE,
    step_limit_notice,
)
from app.core.conversations.store_worker import StoreWorker
from app.core.domain.conversations import MessageState, ToolResultPart
from app.core.domain.generation import LoadSettings
from app.core.engines.engine_events import ModelLoaded
from app.core.engines.engine_host import EngineHost
from app.core.engines.llama.llama_engine import LlamaEngine
from app.core.engines.llama.self_test_model import THINKING_ANSWER, TOOL_CALL_NAME, write_tiny_qwen35_gguf
from app.core.tools.mcp_servers import ServerState
from app.core.tools.tool_catalog import MAX_RESULT_CHARACTERS
from app.core.tools.tool_service import ToolService
from tests.event_recorder import TIMEOUT_S, EventRecorder
from tests.mcp_test_server import CITY_WEATHER
from tests.tool_fixtures import REAL_TEMPLATE, tool_service

WEATHER = CITY_WEATHER.format(city="Paris")
SERVER = "weather"


@dataclass
class ToolChat:
    worker: StoreWorker
    host: EngineHost
    tools: ToolService
    session: ChatSession
    events: EventRecorder

    def send(self, text: str = "What is the weather in Paris?") -> None:
        self.session.send(text)

    def approval(self, count: int = 1) -> ToolApprovalRequested:
        return self.events.wait_for(ToolApprovalRequested, count=count)

    def answer(self, approval: ToolApproval = ToolApproval.ALLOW_ONCE, count: int = 1) -> ToolApprovalRequested:
        """Answers the ``count``-th call that asked for approval; returns its request."""
        request = self.approval(count)
        self.session.answer_tool_call(request.call.call_id, approval)
        return request

    def finished(self, count: int = 1) -> TurnFinished:
        return self.events.wait_for(TurnFinished, count=count)

    def stored(self, conversation_id: int):
        return self.worker.submit(lambda store: store.messages(conversation_id)).result(TIMEOUT_S)

    def results(self, conversation_id: int) -> list[ToolResultPart]:
        return [message.parts[0] for message in self.stored(conversation_id) if message.role == "tool"]


def _open(tmp_path: Path, model: Path, tools: ToolService, *, thinking: bool = False) -> ToolChat:
    worker = StoreWorker(tmp_path / "conversations.sqlite3")
    host = EngineHost(LlamaEngine)
    loaded = EventRecorder()
    host.subscribe(loaded)
    host.load_model(model, LoadSettings(context_size=4096))
    loaded.wait_for(ModelLoaded)
    session = ChatSession(worker, host, tools=tools)
    events = EventRecorder()
    session.subscribe(events)
    session.open_conversation(None)
    events.wait_for(ConversationOpened)
    session.set_thinking(thinking)
    session.set_chat_tools(True)
    events.wait_for(ToolsMeasured)
    return ToolChat(worker, host, tools, session, events)


def _close(chat: ToolChat) -> None:
    chat.session.shutdown()
    chat.tools.shutdown()
    chat.host.shutdown()
    chat.worker.shutdown()


@pytest.fixture
def open_chat(tmp_path: Path):
    chats: list[ToolChat] = []

    def open_(model: Path, tools: ToolService | None = None, **options) -> ToolChat:
        chat = _open(tmp_path, model, tools or tool_service(tmp_path / "config", SERVER), **options)
        chats.append(chat)
        return chat

    yield open_
    for chat in chats:
        _close(chat)


def test_an_allowed_call_runs_and_the_model_answers_having_read_only_the_new_result(open_chat, tool_calling_model) -> None:
    chat = open_chat(tool_calling_model)
    chat.send()
    request = chat.approval()
    assert (request.call.name, request.call.arguments, request.server) == (TOOL_CALL_NAME, {"city": "Paris"}, SERVER)
    assert request.description == "The weather in a city."
    assert not chat.events.of(ToolCallRunning)  # nothing runs before the person answers

    chat.session.answer_tool_call(request.call.call_id, ToolApproval.ALLOW_ONCE)
    final = chat.finished().reply
    running = chat.events.wait_for(ToolCallRunning)
    assert (running.call_id, running.server, running.always_allowed) == (request.call.call_id, SERVER, False)

    question, calling, result, answer = chat.stored(final.conversation_id)
    assert calling.parts == (request.call,) and calling.state is MessageState.COMPLETE and not calling.error
    assert (result.role, result.content, result.parent_id) == ("tool", WEATHER, calling.id)
    (part,) = result.parts
    assert (part.call_id, part.server, part.outcome, part.is_error) == (request.call.call_id, SERVER, "allowed", False)
    assert part.duration_s > 0
    assert (answer.content, answer.parent_id, answer.id) == (THINKING_ANSWER, result.id, final.id)
    # The second step read the tool response and the generation prompt, nothing before them.
    assert answer.stats.prompt_tokens > calling.stats.prompt_tokens
    assert answer.stats.evaluated_prompt_tokens < 100 < calling.stats.evaluated_prompt_tokens


def test_the_turn_s_events_say_each_step_in_order(open_chat, tool_calling_model) -> None:
    chat = open_chat(tool_calling_model)
    chat.events.clear()
    chat.send()
    chat.answer()
    chat.finished()
    kinds = [type(event) for event in chat.events.events if not type(event).__name__.endswith(("Delta", "Progress"))]
    started = kinds.index(TurnStarted)
    assert kinds[started:] == [
        TurnStarted, ToolsStarting, ReplyCalledTools, ToolApprovalRequested, ToolCallRunning, MessageAdded,
        MessageAdded, TurnStarted, TurnFinished,
    ]


def test_a_denied_call_is_not_run_and_the_model_is_told_so(open_chat, tool_calling_model) -> None:
    chat = open_chat(tool_calling_model)
    chat.send()
    chat.answer(ToolApproval.DENY)
    final = chat.finished().reply
    (result,) = chat.results(final.conversation_id)
    assert (result.text, result.outcome, result.is_error) == (DENIED_RESULT, "denied", True)
    assert not chat.events.of(ToolCallRunning)
    assert final.content == THINKING_ANSWER  # the model went on with the refusal in front of it


def test_always_allow_is_remembered_per_server_tool_and_revoking_asks_again(open_chat, tool_calling_model, tmp_path) -> None:
    chat = open_chat(tool_calling_model)
    chat.send()
    chat.answer(ToolApproval.ALWAYS_ALLOW)
    chat.finished()
    assert chat.tools.preferences.always_allowed == [f"{SERVER}/{TOOL_CALL_NAME}"]
    assert ToolService(tmp_path / "config", lambda query: []).preferences.always_allowed == [f"{SERVER}/{TOOL_CALL_NAME}"]

    chat.send("And tomorrow?")
    second = chat.finished(count=2).reply
    assert len(chat.events.of(ToolApprovalRequested)) == 1  # it ran without asking
    # The first ran because the person allowed it; the second because the tool is always allowed.
    assert [result.outcome for result in chat.results(second.conversation_id)] == ["allowed", "always_allowed"]

    chat.tools.revoke(f"{SERVER}/{TOOL_CALL_NAME}")
    chat.send("And the day after?")
    chat.approval(count=2)


def test_a_multi_step_turn_runs_each_call_then_answers(open_chat, two_step_tool_model) -> None:
    chat = open_chat(two_step_tool_model)
    chat.send()
    chat.answer()
    chat.answer(count=2)
    final = chat.finished().reply
    roles = [message.role for message in chat.stored(final.conversation_id)]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert final.content == THINKING_ANSWER and len(chat.events.of(TurnFinished)) == 1


def test_the_step_limit_ends_a_turn_that_keeps_calling(open_chat, endless_tool_model, tmp_path) -> None:
    tools = tool_service(tmp_path / "config", SERVER)
    tools.set_limits(step_limit=3)
    tools.always_allow(next(tool for tool in _started(tools) if tool.name == TOOL_CALL_NAME))
    chat = open_chat(endless_tool_model, tools)
    chat.send()
    final = chat.finished().reply
    results = chat.results(final.conversation_id)
    assert [result.outcome for result in results] == ["always_allowed"] * 3 + ["unavailable"]
    assert results[-1].text == step_limit_notice(3) == final.error
    assert final.parts and final.state is MessageState.COMPLETE


def test_a_tool_that_hangs_times_out_and_the_model_goes_on(open_chat, tool_calling_model, tmp_path) -> None:
    tools = tool_service(tmp_path / "config", SERVER, weather="hang")
    tools.set_limits(timeout_s=1)
    chat = open_chat(tool_calling_model, tools)
    chat.send()
    chat.answer()
    final = chat.finished().reply
    (result,) = chat.results(final.conversation_id)
    assert (result.outcome, result.is_error) == ("timed_out", True) and "1 seconds" in result.text
    assert final.content == THINKING_ANSWER
    assert tools.server(SERVER).status.state is ServerState.READY  # the server itself is fine


def test_a_huge_result_is_cut_with_a_notice_and_one_that_still_does_not_fit_says_so(
    open_chat, tool_calling_model, tmp_path
) -> None:
    chat = open_chat(tool_calling_model, tool_service(tmp_path / "config", SERVER, weather="flood"))
    chat.send()
    chat.answer()
    failed = chat.events.wait_for(TurnFailed)
    (result,) = chat.results(failed.reply.conversation_id)
    assert result.text.startswith("y" * MAX_RESULT_CHARACTERS) and "[Result truncated: the tool returned 100,000" in result.text
    # 16,000 characters are 16,000 of this model's byte-sized tokens: more than its context.
    assert failed.message == TOOL_RESULTS_TOO_LONG == failed.reply.error


def test_a_server_that_dies_mid_call_is_marked_failed_with_its_stderr_and_the_chat_goes_on(
    open_chat, tool_calling_model, tmp_path
) -> None:
    chat = open_chat(tool_calling_model, tool_service(tmp_path / "config", SERVER, weather="crash"))
    chat.send()
    chat.answer()
    final = chat.finished().reply
    (result,) = chat.results(final.conversation_id)
    assert (result.outcome, result.is_error) == ("failed", True) and "stopped while running" in result.text
    assert final.content == THINKING_ANSWER
    status = chat.tools.server(SERVER).status
    assert status.state is ServerState.FAILED and "get_weather: exiting mid-call" in status.stderr


def test_a_server_that_fails_to_start_says_why_and_the_chat_goes_on_without_its_tools(
    open_chat, tool_calling_model, tmp_path
) -> None:
    chat = open_chat(tool_calling_model, tool_service(tmp_path / "config", SERVER, crash_at_start=(SERVER,)))
    chat.send()
    final = chat.finished().reply
    status = chat.tools.server(SERVER).status
    assert status.state is ServerState.FAILED and "cannot start, missing configuration" in status.stderr
    assert status.message == "The program ended before it finished starting."
    # Its get_weather was not offered, so the model's call of it stays text, with a notice.
    assert final.error == UNREADABLE_CALL_NOTICE and "<tool_call>" in final.content and not final.parts
    assert not chat.events.of(ToolApprovalRequested)


def test_a_malformed_call_is_shown_as_text_with_a_notice_and_nothing_runs(open_chat, malformed_call_model) -> None:
    chat = open_chat(malformed_call_model)
    chat.send()
    final = chat.finished().reply
    assert final.state is MessageState.COMPLETE and final.error == UNREADABLE_CALL_NOTICE
    assert final.content.startswith("<tool_call>") and not final.parts
    assert not chat.events.of(ToolApprovalRequested) and len(chat.events.of(TurnStarted)) == 1


def test_a_call_made_while_thinking_is_found_and_run(open_chat, tmp_path) -> None:
    model = write_tiny_qwen35_gguf(
        tmp_path / "thinking-caller.gguf", calls_tools_while_thinking=True, chat_template=REAL_TEMPLATE.read_text()
    )
    tools = tool_service(tmp_path / "config", SERVER)
    tools.set_limits(step_limit=1)
    chat = open_chat(model, tools, thinking=True)
    chat.send()
    request = chat.approval()
    assert request.call.arguments == {"city": "Paris"}
    chat.session.answer_tool_call(request.call.call_id, ToolApproval.ALLOW_ONCE)
    final = chat.finished(count=1).reply
    assert [result.text for result in chat.results(final.conversation_id)][0] == WEATHER


@pytest.mark.parametrize("phase", ["approval", "running"])
def test_stop_ends_the_turn_while_a_call_waits_or_runs_and_keeps_what_happened(
    open_chat, tool_calling_model, tmp_path, phase
) -> None:
    tools = tool_service(tmp_path / "config", SERVER, weather="hang")
    chat = open_chat(tool_calling_model, tools)
    chat.send()
    request = chat.approval()
    if phase == "running":
        chat.session.answer_tool_call(request.call.call_id, ToolApproval.ALLOW_ONCE)
        chat.events.wait_for(ToolCallRunning)
    chat.session.stop()
    final = chat.finished().reply
    (result,) = chat.results(final.conversation_id)
    if phase == "approval":
        assert (result.outcome, result.text) == ("stopped", STOPPED_BEFORE_RESULT)
    else:
        assert result.outcome == "stopped" and "stopped this call while it ran" in result.text
    assert final.parts == (request.call,)  # the turn ended on the reply that asked
    assert len(chat.events.of(TurnStarted)) == 1
    chat.send("Never mind.")  # the chat is free again
    chat.approval(count=2)


def test_stop_while_the_model_writes_ends_before_any_call(open_chat, tmp_path, tiny_model) -> None:
    chat = open_chat(tiny_model)  # without thinking this model writes forever
    chat.send()
    chat.events.wait_for(TurnStarted)
    chat.session.stop()
    final = chat.finished().reply
    assert final.state is MessageState.STOPPED and not final.parts


def test_regenerating_the_answer_after_a_result_runs_no_tool_again(open_chat, tool_calling_model) -> None:
    chat = open_chat(tool_calling_model)
    chat.send()
    chat.answer()
    first = chat.finished().reply
    chat.session.regenerate(first.id)
    again = chat.finished(count=2).reply
    assert again.content == THINKING_ANSWER and again.parent_id == first.parent_id
    assert len(chat.events.of(ToolApprovalRequested)) == 1 and again.stats.evaluated_prompt_tokens < 100


def test_editing_the_question_asks_for_the_calls_again_on_a_new_branch(open_chat, tool_calling_model) -> None:
    chat = open_chat(tool_calling_model)
    chat.send()
    chat.answer()
    first = chat.finished().reply
    question = chat.stored(first.conversation_id)[0]
    chat.session.edit_and_resend(question.id, "What about Lyon?")
    chat.answer(ToolApproval.DENY, count=2)
    chat.finished(count=2)
    tree = chat.worker.submit(lambda store: store.conversation_tree(first.conversation_id)).result(TIMEOUT_S)
    assert sum(message.role == "tool" for message in tree.messages) == 2  # both branches keep theirs


def test_tools_switched_off_for_the_chat_are_not_offered(open_chat, tool_calling_model) -> None:
    chat = open_chat(tool_calling_model)
    chat.session.set_chat_tools(True, [f"{SERVER}/{TOOL_CALL_NAME}"])
    chat.send()
    final = chat.finished().reply
    assert final.error == UNREADABLE_CALL_NOTICE and not chat.events.of(ToolApprovalRequested)


def test_the_token_cost_of_the_offered_tools_is_measured(open_chat, tool_calling_model) -> None:
    chat = open_chat(tool_calling_model)
    built_ins = chat.events.of(ToolsMeasured)[-1]
    assert built_ins.count == 3 and built_ins.tokens > 0
    chat.send()  # starts the server, whose tools are then known
    chat.approval()
    chat.session.measure_tools()
    with_server = chat.events.wait_for(ToolsMeasured, count=len(chat.events.of(ToolsMeasured)) + 1)
    assert with_server.count == 5 and with_server.tokens > built_ins.tokens
    chat.session.set_chat_tools(False)
    assert chat.events.wait_for(ToolsMeasured, lambda event: event.count == 0).tokens == 0


def _started(tools: ToolService):
    tools.start_server(SERVER).result(TIMEOUT_S)
    return tools.server(SERVER).status.tools


def test_stop_while_the_servers_start_ends_the_turn_without_a_reply(open_chat, tool_calling_model) -> None:
    chat = open_chat(tool_calling_model)
    chat.send()
    chat.events.wait_for(ToolsStarting)
    chat.session.stop()
    final = chat.finished().reply
    assert final.state is MessageState.STOPPED and not final.parts and not chat.events.of(ToolApprovalRequested)


def test_the_tools_count_against_the_context_like_the_rest_of_the_prompt(open_chat, tool_calling_model) -> None:
    chat = open_chat(tool_calling_model, thinking=True)  # thinking: this model answers without calling
    # 4,096 tokens of context, a quarter kept for the reply, ~2,600 for the tools' descriptions
    # (this model's tokens are bytes): about 450 are left for the conversation.
    for number in range(4):
        chat.send(f"Question {number}: " + "tell me more " * 10)
        with_tools = chat.finished(count=number + 1)
    assert with_tools.omitted_messages > 0
    chat.session.set_chat_tools(False)
    chat.session.regenerate(with_tools.reply.id)
    assert chat.finished(count=5).omitted_messages == 0
