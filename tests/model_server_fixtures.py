"""Model servers on 127.0.0.1 for the model-server engine's tests and screens.

Three kinds, all real servers on real sockets:

- ``ScriptedModelServer``: a small HTTP server a test scripts (statuses, a slow first token, a
  stream cut short, HTML instead of an API), for the faults real servers will not do on cue;
- ``serve_process``: our own ``qwen-local-chat serve`` as a child process, with the tiny model;
- ``llama_cpp_server``: llama-cpp-python's own OpenAI-compatible server
  (``python -m llama_cpp.server``), an implementation independent of ours, optionally over TLS.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from app.core.domain.generation import ChatMessage, GenerationRequest, LoadSettings, ModelSource, SamplingSettings
from app.core.engines.engine_events import GenerationFailed, GenerationFinished, ModelLoaded, ModelLoadFailed
from app.core.engines.engine_host import EngineHost, Priority
from app.core.engines.engine_switch import EngineSwitch
from app.core.engines.llama.llama_engine import LlamaEngine
from app.core.engines.remote.model_servers import ModelServer, ModelServers
from app.core.engines.remote.remote_engine import RemoteEngine
from tests.event_recorder import EventRecorder

START_TIMEOUT_S = 120
_SERVE_READY = re.compile(r"Serving the OpenAI-compatible API at (http://\S+/v1)")


# ---------------------------------------------------------------------------- the scripted one


@dataclass
class Script:
    """What the scripted server answers; a test changes it between requests."""

    models: list[dict] = field(default_factory=lambda: [{"id": "big-model", "object": "model", "max_model_len": 32768}])
    status: int | None = None  # answer every request with this error status
    error_message: str = "Something went wrong on the server."
    retry_after: str = ""
    not_an_api: bool = False  # answer with a web page instead
    required_key: str | None = None  # 401 unless the request carries it
    reasoning_field: str = "reasoning_content"  # "reasoning" (vLLM, Ollama) or "" (tags in the content)
    reasoning: list[str] = field(default_factory=lambda: ["Let me ", "think."])
    answer: list[str] = field(default_factory=lambda: ["Hello ", "from ", "the ", "server."])
    tool_calls: list[dict] = field(default_factory=list)  # streamed in OpenAI's fragments
    hold_first_chunk: threading.Event | None = None  # nothing is sent until it is set
    hold_after_chunks: tuple[int, threading.Event] | None = None  # sends N chunks, then waits
    cut_after_chunks: int | None = None  # closes the connection after N chunks, mid-stream
    usage: dict = field(default_factory=lambda: {"prompt_tokens": 120, "completion_tokens": 6, "total_tokens": 126,
                                                  "prompt_tokens_details": {"cached_tokens": 100}})


class ScriptedModelServer:
    """A real HTTP server on 127.0.0.1 that answers ``/v1/models`` and streamed
    ``/v1/chat/completions`` as ``script`` says, and records what it was sent."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        """Listens on ``host`` (this computer only by default; ``lan_address()`` for a server
        the app must treat as another computer's)."""
        self.script = Script()
        self.requests: list[dict] = []  # chat request bodies, in order
        self.headers: list[dict] = []  # every request's headers, names in lower case
        self.disconnected = threading.Event()  # a client closed a stream before its end
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # a body ends when the connection closes

            def log_message(self, *_args) -> None:
                pass

            def do_GET(self) -> None:
                outer.headers.append({name.lower(): value for name, value in self.headers.items()})
                if not self._allowed():
                    return
                if self.path.rstrip("/").endswith("/v1/models"):
                    self._json(200, {"object": "list", "data": outer.script.models})
                else:
                    self._json(404, {"error": {"message": "There is no such endpoint."}})

            def do_POST(self) -> None:
                outer.headers.append({name.lower(): value for name, value in self.headers.items()})
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if not self._allowed():
                    return
                if not self.path.rstrip("/").endswith("/v1/chat/completions"):
                    self._json(404, {"error": {"message": "There is no such endpoint."}})
                    return
                outer.requests.append(body)
                if body.get("model") not in {model["id"] for model in outer.script.models}:
                    self._json(404, {"error": {"message": f"The model {body.get('model')} does not exist."}})
                    return
                self._stream(outer.script)

            def _allowed(self) -> bool:
                script = outer.script
                if script.not_an_api:
                    page = b"<html><body>Welcome to my router</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.end_headers()
                    self.wfile.write(page)
                    return False
                if script.required_key is not None and self.headers.get("Authorization") != f"Bearer {script.required_key}":
                    self._json(401, {"error": {"message": "Invalid API key.", "type": "invalid_request_error"}})
                    return False
                if script.status is not None:
                    headers = {"Retry-After": script.retry_after} if script.retry_after else {}
                    self._json(script.status, {"error": {"message": script.error_message}}, headers)
                    return False
                return True

            def _json(self, status: int, document: dict, headers: dict | None = None) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, script: Script) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                try:
                    for number, delta in enumerate(_deltas(script)):
                        if number == 0 and script.hold_first_chunk is not None:
                            script.hold_first_chunk.wait(START_TIMEOUT_S)
                        if script.hold_after_chunks and number == script.hold_after_chunks[0]:
                            script.hold_after_chunks[1].wait(START_TIMEOUT_S)
                        if script.cut_after_chunks is not None and number == script.cut_after_chunks:
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return
                        self._event(delta)
                    self._event(None, finish="tool_calls" if script.tool_calls else "stop")
                    self._event(None, usage=script.usage)
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    outer.disconnected.set()

            def _event(self, delta: dict | None, *, finish: str | None = None, usage: dict | None = None) -> None:
                chunk = {
                    "id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": "big-model",
                    "choices": [] if usage else [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
                }
                if usage:
                    chunk["usage"] = usage
                self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.flush()

        self._server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="scripted-model-server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def close(self) -> None:
        script = self.script
        for event in (script.hold_first_chunk, script.hold_after_chunks[1] if script.hold_after_chunks else None):
            if event is not None:
                event.set()
        self._server.shutdown()
        self._server.server_close()


def _deltas(script: Script) -> Iterator[dict]:
    yield {"role": "assistant", "content": ""}
    if script.reasoning_field:
        for piece in script.reasoning:
            yield {script.reasoning_field: piece}
    elif script.reasoning:
        yield {"content": "<think>\n"}
        for piece in script.reasoning:
            yield {"content": piece}
        yield {"content": "\n</think>\n\n"}
    for piece in script.answer:
        yield {"content": piece}
    for index, call in enumerate(script.tool_calls):
        arguments = json.dumps(call["arguments"])
        yield {"tool_calls": [{"index": index, "id": f"call_{index}", "type": "function",
                               "function": {"name": call["name"], "arguments": arguments[:5]}}]}
        yield {"tool_calls": [{"index": index, "function": {"arguments": arguments[5:]}}]}


@pytest.fixture
def scripted_server() -> Iterator[ScriptedModelServer]:
    server = ScriptedModelServer()
    yield server
    server.close()


# ------------------------------------------------------------------------- real model servers


def lan_address() -> str:
    """This machine's first IPv4 address that is not loopback: to the app, another computer."""
    return next(
        item.address for items in psutil.net_if_addrs().values() for item in items
        if item.family == socket.AF_INET and not item.address.startswith("127.")
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve_process(model: Path, profile: Path, *arguments: str, port: int = 0) -> Iterator[tuple[subprocess.Popen, str]]:
    """``qwen-local-chat serve`` with ``model`` until the block ends; yields it and its API's URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--model", str(model), "--port", str(port), "--profile", str(profile), *arguments],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        for line in process.stdout:
            ready = _SERVE_READY.search(line)
            if ready:
                threading.Thread(target=process.stdout.read, daemon=True).start()  # never blocks on a full pipe
                yield process, ready.group(1)
                return
        raise AssertionError(f"serve never got ready: {process.stderr.read()}")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(START_TIMEOUT_S)


@contextlib.contextmanager
def llama_cpp_server(
    model: Path, *, alias: str = "tiny", certificate: tuple[Path, Path] | None = None
) -> Iterator[tuple[subprocess.Popen, str]]:
    """``python -m llama_cpp.server`` with ``model`` (named ``alias``), over TLS with
    ``certificate`` (its certificate and key files); yields it and its API's URL."""
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", alias,
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1", "--verbose", "False"]
    if certificate is not None:
        command += ["--ssl_certfile", str(certificate[0]), "--ssl_keyfile", str(certificate[1])]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ})
    try:
        for line in process.stderr:
            if "Uvicorn running on" in line:
                threading.Thread(target=process.stderr.read, daemon=True).start()
                scheme = "https" if certificate else "http"
                yield process, f"{scheme}://127.0.0.1:{port}/v1"
                return
        raise AssertionError("llama_cpp.server never got ready")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(START_TIMEOUT_S)


# ------------------------------------------------------------- the app's side: servers, engine


@pytest.fixture
def model_servers(tmp_path: Path, memory_keyring) -> ModelServers:
    """The app's model server list, in a fresh config folder, keys in an in-memory keyring."""
    return ModelServers(tmp_path / "config")


class RemoteHost:
    """The app's engine host (llama.cpp and model servers behind the engine switch), with a
    recorder of its model events and helpers to load and ask."""

    def __init__(self, servers: ModelServers) -> None:
        self.servers = servers
        self.host = EngineHost(lambda: EngineSwitch(LlamaEngine(), RemoteEngine(servers.connection_for)))
        self.models = EventRecorder()
        self.host.subscribe(self.models)

    def add(self, name: str, url: str, *, key: str | None = None, ca_file: str = "") -> ModelServer:
        return self.servers.save(ModelServer(name, url, ca_file), key=key)

    def load(self, source: ModelSource) -> ModelLoaded | ModelLoadFailed:
        self.models.clear()
        self.host.load_model(source, LoadSettings(context_size=2048))
        return self.models.wait_for((ModelLoaded, ModelLoadFailed))

    def ask(self, text: str = "Hi", *, thinking: bool = True, max_tokens: int = 64, **request) -> tuple[object, EventRecorder]:
        """Generates a reply; its last event (finished or failed) and all its events."""
        events = EventRecorder()
        sampling = SamplingSettings.for_mode(thinking=thinking, max_tokens=max_tokens)
        self.host.generate(
            GenerationRequest((ChatMessage("user", text),), enable_thinking=thinking, sampling=sampling, **request),
            Priority.PERSON, events,
        )
        return events.wait_for((GenerationFinished, GenerationFailed)), events


@pytest.fixture
def remote_host(model_servers: ModelServers) -> Iterator[RemoteHost]:
    remote = RemoteHost(model_servers)
    yield remote
    remote.host.shutdown()
