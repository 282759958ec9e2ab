"""Tools for the tests (a pytest plugin): tiny models that call them, the real MCP test server
(``tests/mcp_test_server.py``) and a tool service around it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from app.core.engines.llama.self_test_model import write_tiny_qwen35_gguf
from app.core.tools.tool_service import ToolService

REAL_TEMPLATE = Path(__file__).with_name("qwen35_chat_template.jinja")
TEST_SERVER = Path(__file__).with_name("mcp_test_server.py")
_GENERATION_PROMPT = """    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}"""


def scripted_tool_template(answer_after: int) -> str:
    """The real Qwen3.5 template, except that its generation prompt opens the thinking block
    once the turn (since the last question) holds ``answer_after`` tool results: a model written with
    ``calls_tools`` then answers (``THINKING_ANSWER``) instead of calling again. The tiny model
    reads only the last token, so this is how a test scripts "call, read the result, answer"."""
    source = REAL_TEMPLATE.read_text(encoding="utf-8")
    assert _GENERATION_PROMPT in source
    scripted = (
        "    {%- if enable_thinking is defined and enable_thinking is false and "
        f"(messages[ns.last_query_index:] | selectattr('role', 'equalto', 'tool') | list | length) < {answer_after} %}}\n"
        "        {{- '<think>\\n\\n</think>\\n\\n' }}"
    )
    return source.replace(_GENERATION_PROMPT, scripted)


@pytest.fixture(scope="session")
def tool_calling_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Without thinking: calls ``get_weather`` (city "Paris"), then answers after one result."""
    return write_tiny_qwen35_gguf(
        tmp_path_factory.mktemp("models") / "tiny-tools-1.gguf", calls_tools=True, chat_template=scripted_tool_template(1)
    )


@pytest.fixture(scope="session")
def two_step_tool_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Calls ``get_weather`` twice, one reply after the other, then answers."""
    return write_tiny_qwen35_gguf(
        tmp_path_factory.mktemp("models") / "tiny-tools-2.gguf", calls_tools=True, chat_template=scripted_tool_template(2)
    )


@pytest.fixture(scope="session")
def endless_tool_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Qwen3.5 template: after every result it calls ``get_weather`` again."""
    return write_tiny_qwen35_gguf(
        tmp_path_factory.mktemp("models") / "tiny-tools-endless.gguf", calls_tools=True,
        chat_template=REAL_TEMPLATE.read_text(encoding="utf-8"),
    )


@pytest.fixture(scope="session")
def malformed_call_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Without thinking: writes a tool call no parser can read."""
    return write_tiny_qwen35_gguf(
        tmp_path_factory.mktemp("models") / "tiny-tools-malformed.gguf", writes_malformed_tool_call=True,
        chat_template=REAL_TEMPLATE.read_text(encoding="utf-8"),
    )


def server_config(*names: str, crash_at_start: tuple[str, ...] = (), weather: str = "answer") -> str:
    """``mcp.json`` text with the test server under each of ``names``; ``weather`` is what its
    ``get_weather`` does (see ``tests/mcp_test_server.py``)."""
    servers = {
        name: {
            "command": sys.executable,
            "args": [str(TEST_SERVER), f"--weather={weather}"] + (["--crash-at-start"] if name in crash_at_start else []),
        }
        for name in names
    }
    return json.dumps({"mcpServers": servers})


def tool_service(
    config_dir: Path, *names: str, search=lambda query: [], approve: bool = True, crash_at_start: tuple[str, ...] = (),
    weather: str = "answer", **options,
) -> ToolService:
    """A tool service whose config holds the test server under ``names`` (allowed to run
    unless ``approve`` is False)."""
    service = ToolService(config_dir, search, **options)
    service.set_config_text(server_config(*names, crash_at_start=crash_at_start, weather=weather))
    if approve:
        for name in names:
            service.approve_launch(name)
    return service
