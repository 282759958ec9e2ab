"""The tool service: which servers may run, offline mode, HTTP servers, typed arguments, files
and the built-in tools. Real MCP servers (tests/mcp_test_server.py) over stdio and HTTP."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from app.core.conversations.store_worker import StoreWorker
from app.core.domain.conversations import ToolOutcome
from app.core.engines.tool_calls import parse_tool_calls
from app.core.tools.builtin_tools import CALCULATOR, CURRENT_TIME, SEARCH_CONVERSATIONS
from app.core.tools.mcp_config import McpConfigError
from app.core.tools.mcp_servers import ServerState
from app.core.tools.tool_catalog import BUILT_IN, ToolDefinition, offer
from app.core.tools.tool_service import ToolService
from tests.event_recorder import TIMEOUT_S
from tests.mcp_test_server import CITY_WEATHER
from tests.tool_fixtures import TEST_SERVER, server_config, tool_service


def _run(service: ToolService, tool: ToolDefinition, arguments: dict):
    done: list = []
    finished = threading.Event()
    service.run(tool, arguments, lambda run: (done.append(run), finished.set()))
    assert finished.wait(TIMEOUT_S)
    return done[0]


def _offered(service: ToolService):
    ready: list = []
    finished = threading.Event()
    service.prepare((), lambda offered: (ready.append(offered), finished.set()))
    assert finished.wait(TIMEOUT_S)
    return ready[0]


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return tmp_path / "config"


def test_a_server_never_runs_before_the_person_has_seen_its_command(config_dir: Path) -> None:
    service = tool_service(config_dir, "weather", approve=False)
    try:
        assert service.server("weather").needs_approval
        assert service.start_server("weather") is None
        assert set(_offered(service).by_name) == {tool.name for tool in service.built_in_tools()}
        assert service.server("weather").status.state is ServerState.STOPPED and not _children()

        service.approve_launch("weather")
        assert service.start_server("weather").result(TIMEOUT_S).state is ServerState.READY
        # A changed command is a new program: it is shown again first.
        assert service.set_config_text(server_config("weather", weather="hang")) == ("weather",)
        assert service.server("weather").needs_approval
    finally:
        service.shutdown()


def test_servers_start_when_a_reply_first_needs_them_and_stop_with_the_app(config_dir: Path) -> None:
    service = tool_service(config_dir, "weather")
    assert service.server("weather").status.state is ServerState.STOPPED and not _children()
    offered = _offered(service)
    assert offered.find("get_weather").server == "weather" and service.server("weather").summary == "Ready · 2 tools"
    assert _children()
    service.shutdown()
    assert not _children()


def test_offline_mode_never_contacts_a_server_on_another_computer(config_dir: Path) -> None:
    address = next(
        item.address for items in psutil.net_if_addrs().values() for item in items
        if item.family == socket.AF_INET and not item.address.startswith("127.")
    )
    listener = socket.create_server((address, 0))
    listener.settimeout(0)
    url = f"http://{address}:{listener.getsockname()[1]}/mcp"
    service = ToolService(config_dir, lambda query: [], offline=True, start_timeout_s=1)
    try:
        service.set_config_text(json.dumps({"mcpServers": {"desk": {"url": url}}}))
        service.approve_launch("desk")
        assert service.server("desk").blocked_offline and "offline mode" in service.server("desk").summary
        assert service.start_server("desk") is None
        _offered(service)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing tried to connect
        service.set_offline(False)  # the same server, online: it is tried (so the check above means something)
        service.start_server("desk").result(TIMEOUT_S)
        listener.settimeout(TIMEOUT_S)
        listener.accept()[0].close()
    finally:
        service.shutdown()
        listener.close()


def test_a_streamable_http_server_on_this_computer_works_also_offline(config_dir: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, str(TEST_SERVER), "--http", str(port)], stderr=subprocess.PIPE, text=True
    )
    try:
        for line in server.stderr:  # uvicorn says when it listens
            if "Uvicorn running" in line:
                break
        service = ToolService(config_dir, lambda query: [], offline=True)
        service.set_config_text(json.dumps({"mcpServers": {"local-http": {"url": f"http://127.0.0.1:{port}/mcp"}}}))
        service.approve_launch("local-http")
        tool = _offered(service).find("get_weather")
        run = _run(service, tool, {"city": "Oslo"})
        assert (run.output.text, run.outcome) == (CITY_WEATHER.format(city="Oslo"), ToolOutcome.ALLOWED)
        service.shutdown()
    finally:
        server.kill()
        server.wait()


def test_arguments_the_model_writes_are_converted_by_the_tool_s_own_schema(config_dir: Path) -> None:
    service = tool_service(config_dir, "weather")
    try:
        offered = _offered(service)
        xml = (
            "<tool_call>\n<function=describe_arguments>\n"
            "<parameter=count>\n3\n</parameter>\n<parameter=ratio>\n0.5\n</parameter>\n"
            "<parameter=enabled>\nTrue\n</parameter>\n<parameter=tags>\n[\"a\", \"b\"]\n</parameter>\n"
            "<parameter=options>\n{\"depth\": 2}\n</parameter>\n<parameter=label>\n007\n</parameter>\n"
            "</function>\n</tool_call>"
        )
        _, (call,) = parse_tool_calls(xml, offered.schemas())
        run = _run(service, offered.find(call.name), json.loads(call.arguments))
        assert run.output.text == (
            "count=3:int, ratio=0.5:float, enabled=True:bool, tags=['a', 'b']:list, options={'depth': 2}:dict, label='007':str"
        )
    finally:
        service.shutdown()


def test_a_tool_error_is_reported_as_failed_with_the_server_s_message(config_dir: Path) -> None:
    service = tool_service(config_dir, "weather")
    try:
        run = _run(service, _offered(service).find("describe_arguments"), {"count": "many"})
        assert run.outcome is ToolOutcome.FAILED and run.output.is_error and "count" in run.output.text
    finally:
        service.shutdown()


def test_choices_are_kept_in_the_config_folder_and_damaged_files_fall_back_to_defaults(config_dir: Path) -> None:
    service = tool_service(config_dir, "weather")
    service.set_switched_on(f"{BUILT_IN}/calculate", False)
    service.set_limits(step_limit=4, timeout_s=9)
    again = ToolService(config_dir, lambda query: [])
    assert again.preferences.switched_off == [f"{BUILT_IN}/calculate"] and again.preferences.step_limit == 4
    assert not again.server("weather").needs_approval
    assert "calculate" not in {tool.name for tool in again.known_tools()}

    (config_dir / "tool-settings.json").write_text('{"step_limit": "lots", "always_allowed": [1, "a/b"]}')
    (config_dir / "mcp.json").write_text('{"mcpServers": {"x": {}}}')
    damaged = ToolService(config_dir, lambda query: [])
    assert damaged.preferences.step_limit == 10 and damaged.preferences.always_allowed == ["a/b"]
    assert damaged.servers() == () and 'Server "x" needs a "command"' in damaged.config_problem


def test_two_servers_offering_the_same_tool_name_are_told_apart() -> None:
    first, second = ToolDefinition("one", "search", "a"), ToolDefinition("two servers", "search", "b")
    offered = offer([first, second])
    assert offered.find("search") is first and offered.find("two_servers_search") is second


def test_the_built_in_tools_tell_the_time_calculate_and_search_the_person_s_chats(tmp_path: Path) -> None:
    worker = StoreWorker(tmp_path / "chats.sqlite3")

    def remember(store) -> None:
        conversation = store.create_conversation(title="Sourdough starter")
        store.add_message(conversation.id, "user", "How often should I feed the starter?")

    worker.submit(remember).result(TIMEOUT_S)
    # As the app wires it: the search runs on the store's own worker.
    service = ToolService(tmp_path / "config", lambda query: worker.submit(lambda store: store.search(query)).result(TIMEOUT_S))
    try:
        assert _run(service, CALCULATOR, {"expression": "2 ** 10 / 4"}).output.text == "256"
        refused = _run(service, CALCULATOR, {"expression": "__import__('os').system('true')"})
        assert refused.output.is_error and refused.outcome is ToolOutcome.FAILED
        assert re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", _run(service, CURRENT_TIME, {}).output.text)
        found = _run(service, SEARCH_CONVERSATIONS, {"query": "starter feed"}).output.text
        assert '"Sourdough starter"' in found and "How often should I feed the starter?" in found
        assert "No messages contain" in _run(service, SEARCH_CONVERSATIONS, {"query": "volcano"}).output.text
    finally:
        service.shutdown()
        worker.shutdown()


def _children() -> list[psutil.Process]:
    """This process's MCP test servers still running."""
    return [
        child for child in psutil.Process().children(recursive=True)
        if child.is_running() and child.status() != psutil.STATUS_ZOMBIE and str(TEST_SERVER) in " ".join(child.cmdline())
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_failed_server_starts_again_when_asked(config_dir: Path) -> None:
    service = tool_service(config_dir, "weather", weather="crash")
    try:
        tool = _offered(service).find("get_weather")
        assert _run(service, tool, {"city": "Rome"}).outcome is ToolOutcome.FAILED
        assert service.server("weather").status.state is ServerState.FAILED
        assert service.start_server("weather").result(TIMEOUT_S).state is ServerState.READY
    finally:
        service.shutdown()


def _with_secrets(name: str = "weather") -> str:
    config = json.loads(server_config(name))
    config["mcpServers"][name]["env"] = {"WEATHER_SUFFIX": " (api key sk-123)"}
    return json.dumps(config)


def test_a_server_s_environment_values_are_kept_in_the_keyring_not_in_mcp_json(config_dir: Path, memory_keyring) -> None:
    service = ToolService(config_dir, lambda query: [])
    service.set_config_text(_with_secrets())
    service.approve_launch("weather")
    service.shutdown()
    assert "sk-123" not in (config_dir / "mcp.json").read_text() and "WEATHER_SUFFIX" in (config_dir / "mcp.json").read_text()
    assert "sk-123" not in ToolService(config_dir, lambda query: []).config_text()  # the editor shows a placeholder

    restarted = ToolService(config_dir, lambda query: [])
    try:
        # Saved again as the editor shows it, the value stays; the server gets the real one.
        restarted.set_config_text(restarted.config_text())
        run = _run(restarted, _offered(restarted).find("get_weather"), {"city": "Oslo"})
        assert run.output.text == CITY_WEATHER.format(city="Oslo") + " (api key sk-123)"
    finally:
        restarted.shutdown()


def test_without_a_keyring_environment_values_stay_in_mcp_json_and_the_app_says_so(config_dir: Path) -> None:
    service = ToolService(config_dir, lambda query: [])  # the tests' own keyring is the null one
    service.set_config_text(_with_secrets())
    assert "sk-123" in (config_dir / "mcp.json").read_text() and "no usable system keyring" in service.secrets_problem


def test_a_placeholder_for_a_value_the_keyring_does_not_hold_is_refused_with_the_reason(config_dir: Path, memory_keyring) -> None:
    service = ToolService(config_dir, lambda query: [])
    service.set_config_text(_with_secrets("weather"))
    renamed = service.config_text().replace('"weather"', '"forecast"')
    with pytest.raises(McpConfigError, match='Server "forecast": the value of env "WEATHER_SUFFIX" is not in the keyring'):
        service.set_config_text(renamed)
    assert [view.config.name for view in service.servers()] == ["weather"]  # nothing changed


def test_a_server_switched_off_is_stopped_and_its_tools_are_not_offered(config_dir: Path) -> None:
    service = tool_service(config_dir, "weather")
    try:
        assert _offered(service).find("get_weather") is not None and _children()
        service.set_server_enabled("weather", False)
        assert service.server("weather").summary == "Off"
        assert _offered(service).find("get_weather") is None
        assert '"disabled": true' in (config_dir / "mcp.json").read_text()
        service.shutdown()
        assert not _children()
    finally:
        service.shutdown()


def test_approving_a_command_approves_only_the_one_that_was_shown(config_dir: Path) -> None:
    service = tool_service(config_dir, "weather", approve=False)
    shown = service.server("weather").config.launch_fingerprint
    service.set_config_text(server_config("weather", weather="crash"))  # changed behind the dialog
    assert service.approve_launch("weather", shown) is False and service.server("weather").needs_approval
    assert service.approve_launch("weather", service.server("weather").config.launch_fingerprint) is True
    assert not service.server("weather").needs_approval


def test_restarting_a_running_server_starts_a_new_process(config_dir: Path) -> None:
    service = tool_service(config_dir, "weather")
    try:
        _offered(service)
        (first,) = _children()
        assert service.restart_server("weather").result(TIMEOUT_S).state is ServerState.READY
        (second,) = _children()
        assert second.pid != first.pid and not first.is_running()
    finally:
        service.shutdown()
