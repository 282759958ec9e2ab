"""The local API is safe by default: only this computer, only asked-for web pages, bounded bodies.

Raw HTTP (httpx) against the real server, since these are checks no well-behaved client trips.
"""

from __future__ import annotations

import json
import logging
import socket

import httpx2 as httpx
import pytest

from app.core.api.api_server import ApiServer, ApiServerConfig, ApiServerError
from app.core.engines.engine_host import EngineHost
from app.core.engines.llama.llama_engine import LlamaEngine
from tests.api_fixtures import ServedModel, serving

CHAT = {"model": "m", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 32}


def _port(served: ServedModel) -> int:
    return int(served.url.rsplit(":", 1)[1].split("/")[0])


@pytest.mark.parametrize("host_header", ["evil.example", "evil.example:{port}", "192.168.1.20:{port}", ""])
def test_a_request_addressed_to_another_name_is_refused_so_dns_rebinding_cannot_reach_the_model(
    served_tools: ServedModel, host_header: str
) -> None:
    response = httpx.post(
        f"{served_tools.url}/chat/completions", json=CHAT, headers={"Host": host_header.format(port=_port(served_tools))}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "foreign_host"
    record = served_tools.wait_for_record()
    assert record.status == 403 and record.prompt_tokens == 0  # logged, and the model never ran


@pytest.mark.parametrize("host_header", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "[::1]:{port}"])
def test_loopback_names_are_this_computer_s_own(served_tools: ServedModel, host_header: str) -> None:
    response = httpx.get(f"{served_tools.url}/models", headers={"Host": host_header.format(port=_port(served_tools))})
    assert response.status_code == 200


def test_a_web_page_from_a_foreign_origin_cannot_drive_the_model_even_with_a_simple_request(
    served_tools: ServedModel,
) -> None:
    """A page's ``fetch(…, {mode: "no-cors", body: "…"})`` sends text/plain with its Origin: a
    server that only withheld CORS headers would still run the model for it."""
    response = httpx.post(
        f"{served_tools.url}/chat/completions",
        content=json.dumps(CHAT),
        headers={"Origin": "https://evil.example", "Content-Type": "text/plain"},
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "foreign_origin"
    assert "access-control-allow-origin" not in response.headers
    record = served_tools.wait_for_record()
    assert record.status == 403 and "https://evil.example" in record.problem and record.prompt_tokens == 0


def test_an_allowed_origin_gets_its_preflight_and_cors_headers(tool_model) -> None:
    origin = "https://notes.example"
    with serving(tool_model, ApiServerConfig(port=0, allowed_origins=(origin,), api_key="k")) as served:
        preflight = httpx.options(
            f"{served.url}/chat/completions",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization, content-type"},
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        response = httpx.post(
            f"{served.url}/chat/completions", json=CHAT, headers={"Origin": origin, "Authorization": "Bearer k"}
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == origin


def test_a_body_larger_than_the_limit_is_refused_with_413_whether_or_not_it_says_its_length(tool_model) -> None:
    limit = 64 * 1024
    with serving(tool_model, ApiServerConfig(port=0, max_body_bytes=limit)) as served:
        declared = httpx.post(f"{served.url}/chat/completions", content=b" " * (limit + 1))
        assert declared.status_code == 413

        def chunks():  # sent chunked, with no Content-Length to check up front
            for _ in range(limit // 1024 + 1):
                yield b" " * 1024

        undeclared = httpx.post(f"{served.url}/chat/completions", content=chunks())
        assert undeclared.status_code == 413
        assert undeclared.json()["error"]["code"] == "body_too_large"


def test_a_body_that_is_not_json_is_a_400_and_deep_nesting_does_not_crash_the_server(served_tools: ServedModel) -> None:
    for body in (b"{not json", b"[" * 200_000 + b"]" * 200_000, b"[]"):
        response = httpx.post(f"{served_tools.url}/chat/completions", content=body)
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(f"{served_tools.url}/models").status_code == 200


def test_an_unknown_endpoint_answers_in_openai_s_error_form(served_tools: ServedModel) -> None:
    response = httpx.get(f"{served_tools.url}/embeddings")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_api_key_never_reaches_the_logs(tool_model, caplog: pytest.LogCaptureFixture) -> None:
    key = "never-log-this-key-0123"
    caplog.set_level(logging.DEBUG)
    with serving(tool_model, ApiServerConfig(port=0, api_key=key), api_key=key) as served:
        served.client.chat.completions.create(model="m", messages=CHAT["messages"], max_tokens=32)
        httpx.get(f"{served.url}/models", headers={"Authorization": "Bearer wrong-key"})
        records = [served.wait_for_record()]
    assert key not in caplog.text and "wrong-key" not in caplog.text
    assert all(key not in repr(record) for record in records)


def test_serving_other_computers_without_a_key_is_refused_before_listening() -> None:
    host = EngineHost(LlamaEngine)
    try:
        with pytest.raises(ApiServerError, match="needs an API key"):
            ApiServer(host, ApiServerConfig(host="0.0.0.0", port=0))
    finally:
        host.shutdown()


def test_a_port_in_use_is_refused_with_a_reason_and_nothing_left_running() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    host = EngineHost(LlamaEngine)
    try:
        server = ApiServer(host, ApiServerConfig(port=taken.getsockname()[1]))
        with pytest.raises(ApiServerError, match="already used by another program"):
            server.start()
    finally:
        host.shutdown()
        taken.close()


@pytest.mark.parametrize("origin", ["notes.example", "https://notes.example/app", "*"])
def test_an_allowed_origin_must_be_written_as_browsers_send_it(origin: str) -> None:
    assert "is not a web page's origin" in ApiServerConfig(allowed_origins=(origin,)).problem()
    assert ApiServerConfig(allowed_origins=("https://notes.example:8443",)).problem() is None
