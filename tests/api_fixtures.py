"""A real API server on 127.0.0.1 over a real engine host and tiny model, for the API's tests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from app.core.api.api_server import ApiServer, ApiServerConfig
from app.core.api.request_log import ApiRequestRecord
from app.core.domain.generation import LoadSettings
from app.core.engines.engine_events import ModelLoaded
from app.core.engines.engine_host import EngineHost
from app.core.engines.llama.llama_engine import LlamaEngine
from app.core.engines.llama.self_test_model import write_tiny_qwen35_gguf
from tests.event_recorder import EventRecorder

QWEN35_TEMPLATE = (Path(__file__).parent / "qwen35_chat_template.jinja").read_text()
CONTEXT = 2048
ENDLESS_CONTEXT = 65_536  # a reply that runs until the context is full takes half a minute or more
NO_THINKING = {"chat_template_kwargs": {"enable_thinking": False}}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@dataclass
class ServedModel:
    server: ApiServer
    host: EngineHost
    client: openai.OpenAI
    records: EventRecorder  # every ApiRequestRecord, as the log gets it

    @property
    def url(self) -> str:
        return self.server.url

    def wait_for_record(self, predicate: Callable[[ApiRequestRecord], bool] = lambda _record: True) -> ApiRequestRecord:
        return self.records.wait_for(ApiRequestRecord, predicate)


@pytest.fixture(scope="session")
def tool_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model with the real Qwen3.5 template: it calls ``get_weather`` when it does not
    think, and answers "Ok" after thinking "Why" when it does."""
    path = tmp_path_factory.mktemp("models") / "tiny-tools.gguf"
    return write_tiny_qwen35_gguf(path, calls_tools=True, chat_template=QWEN35_TEMPLATE)


@contextlib.contextmanager
def serving(
    model: Path | None,
    config: ApiServerConfig | None = None,
    *,
    api_key: str = "unused",
    context: int = CONTEXT,
    projector: Path | None = None,
) -> Iterator[ServedModel]:
    """``model`` (None: no model; with ``projector``, reading images) served on a free port of
    127.0.0.1 until the block ends."""
    host = EngineHost(LlamaEngine)
    try:
        if model is not None:
            loaded = EventRecorder()
            host.subscribe(loaded)
            host.load_model(model, LoadSettings(context_size=context, projector=projector))
            loaded.wait_for(ModelLoaded)
        server = ApiServer(host, config or ApiServerConfig(port=0))
        records = EventRecorder()
        server.log.subscribe(records)
        server.start()
        try:
            client = openai.OpenAI(base_url=server.url, api_key=api_key, max_retries=0, timeout=60)
            yield ServedModel(server, host, client, records)
        finally:
            server.stop()
    finally:
        host.shutdown()


@pytest.fixture
def served_tools(tool_model: Path) -> Iterator[ServedModel]:
    with serving(tool_model) as served:
        yield served


@pytest.fixture(scope="session")
def endless_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with a context so long that its non-thinking reply ("abcabc…", which has
    no end of its own) lasts until the test stops it."""
    path = tmp_path_factory.mktemp("models") / "tiny-endless.gguf"
    return write_tiny_qwen35_gguf(path, overrides={"qwen35.context_length": ENDLESS_CONTEXT})


@contextlib.contextmanager
def serving_endless(model: Path, config: ApiServerConfig | None = None) -> Iterator[ServedModel]:
    with serving(model, config, context=ENDLESS_CONTEXT) as served:
        yield served


@pytest.fixture
def served_endless(endless_model: Path) -> Iterator[ServedModel]:
    """The tiny model whose non-thinking reply never ends by itself: for limits and cancelling."""
    with serving_endless(endless_model) as served:
        yield served
