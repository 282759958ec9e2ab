"""``qwen-local-chat serve``: the API without a window, as a script or a home server runs it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest

from app.core.engines.llama.self_test_model import THINKING_ANSWER, write_tiny_qwen35_gguf

TIMEOUT_S = 120
_READY = re.compile(r"Serving the OpenAI-compatible API at (http://\S+/v1)")


def _command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "app", "serve", *arguments]


def _run(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(_command(*arguments), capture_output=True, text=True, timeout=TIMEOUT_S)


@contextmanager
def _serve(model: Path, profile: Path, *arguments: str, env: dict | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    process = subprocess.Popen(
        _command("--model", str(model), "--port", "0", "--profile", str(profile), *arguments),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
    )
    process.preamble = []  # what it printed before it was ready
    try:
        for line in process.stdout:
            process.preamble.append(line)
            ready = _READY.search(line)
            if ready:
                yield process, ready.group(1)
                return
        raise AssertionError(f"serve never got ready: {process.stderr.read()}")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(TIMEOUT_S)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_serve_answers_on_the_address_it_prints_and_stops_cleanly_on_a_signal(
    tiny_model: Path, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    with _serve(tiny_model, tmp_path / "profile") as (process, url):
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
        reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=16)
        assert reply.choices[0].message.content == THINKING_ANSWER
        process.send_signal(stop_signal)
        output, errors = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 0, errors
    assert "POST /v1/chat/completions 200" in output  # its request log
    assert output.rstrip().endswith("Stopped.")
    assert "Traceback" not in errors


def test_serve_asks_for_the_key_it_was_given_in_the_environment(tiny_model: Path, tmp_path: Path) -> None:
    with _serve(tiny_model, tmp_path, env={"QWEN_LOCAL_CHAT_API_KEY": "from-the-environment"}) as (process, url):
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url, api_key="guess", max_retries=0).models.list()
        models = openai.OpenAI(base_url=url, api_key="from-the-environment", max_retries=0).models.list()
        assert [model.id for model in models.data] == ["tiny-thinking"]
        process.terminate()
        output, _errors = process.communicate(timeout=TIMEOUT_S)
    assert "from-the-environment" not in output


def _refusal(result: subprocess.CompletedProcess) -> str:
    """The one line a refused ``serve`` writes: non-zero exit, no traceback, no signal."""
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("qwen-local-chat serve:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_serve_refuses_a_missing_model_file_in_one_line(tmp_path: Path) -> None:
    assert "does not exist" in _refusal(_run("--model", str(tmp_path / "nothing.gguf"), "--profile", str(tmp_path)))


def test_serve_refuses_a_file_that_is_no_gguf_model_in_one_line(tmp_path: Path) -> None:
    notes = tmp_path / "notes.gguf"
    notes.write_text("shopping list")
    assert "not a GGUF model" in _refusal(_run("--model", str(notes), "--profile", str(tmp_path)))


def test_serve_refuses_a_damaged_model_in_one_line_without_dying_of_it(tmp_path: Path) -> None:
    damaged = write_tiny_qwen35_gguf(tmp_path / "damaged.gguf", overrides={"qwen35.attention.head_count": 0})
    line = _refusal(_run("--model", str(damaged), "--port", "0", "--profile", str(tmp_path / "profile")))
    assert "damaged.gguf" in line


def test_serve_refuses_to_serve_other_computers_without_a_key(tiny_model: Path, tmp_path: Path) -> None:
    line = _refusal(_run("--model", str(tiny_model), "--host", "0.0.0.0", "--profile", str(tmp_path)))
    assert "needs an API key" in line


def test_serve_says_when_its_port_is_taken(tiny_model: Path, tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = str(taken.getsockname()[1])
        line = _refusal(_run("--model", str(tiny_model), "--port", port, "--profile", str(tmp_path)))
    finally:
        taken.close()
    assert f"Port {port} is already used" in line


def _picture_question(client: openai.OpenAI):
    import base64

    from tests.vision_fixtures import picture_bytes

    url = "data:image/png;base64," + base64.b64encode(picture_bytes(128, 96)).decode()
    return client.chat.completions.create(model="m", max_tokens=16, messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What is this?"},
    ]}])


def test_serve_reads_images_with_the_projector_given_or_found_beside_the_model(tmp_path: Path, tiny_projector: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    model = write_tiny_qwen35_gguf(folder / "tiny.gguf")
    for arguments in (("--mmproj", str(tiny_projector)), ()):
        if not arguments:  # now found beside the model
            (folder / "mmproj-tiny.gguf").write_bytes(tiny_projector.read_bytes())
        with _serve(model, tmp_path / "profile", *arguments) as (process, url):
            reply = _picture_question(openai.OpenAI(base_url=url, api_key="none", max_retries=0))
            assert reply.choices[0].message.content == THINKING_ANSWER and reply.usage.prompt_tokens > 40
            assert "Reads images with mmproj-tiny.gguf.\n" in process.preamble


def test_serve_without_a_projector_says_so_and_a_bad_one_stops_it_with_a_reason(tiny_model: Path, tmp_path: Path) -> None:
    with _serve(tiny_model, tmp_path / "profile") as (process, url):
        with pytest.raises(openai.BadRequestError) as refused:
            _picture_question(openai.OpenAI(base_url=url, api_key="none", max_retries=0))
        assert "--mmproj" in refused.value.body["message"]
        assert any(line.startswith("Text only") for line in process.preamble)

    result = _run("--model", str(tiny_model), "--mmproj", str(tiny_model), "--port", "0", "--profile", str(tmp_path / "profile"))
    assert result.returncode == 1 and "not a vision projector" in result.stderr and "Traceback" not in result.stderr
