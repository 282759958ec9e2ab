"""``qwen-local-chat --smoke-test``: an installed app checks that it works, then exits.

Every installer test runs it on the installed app (see installers/README.md), and a user can run
it to see whether an installation is sound. It needs no screen, no network and no model:

1. llama.cpp: its native library loads, and its backend and compiled-in instruction sets are
   the ones the build promises (``app.core.engines.llama.build_info``);
2. a tiny Qwen3.5 model it writes itself loads, and replies exactly as scripted;
   vision: with a tiny projector it also writes, libmtmd reads a picture (decoded and checked
   with Pillow, which the bundle must carry) and the model replies about it;
3. the data folder (the real one, or ``--profile``'s) can be created and holds a working
   conversation database; the throwaway database, and the folders it had to create, are removed
   afterwards;
4. the local API (uvicorn and Starlette, which the bundle must carry) answers a chat request for
   the test model on 127.0.0.1 as an OpenAI client would send it; and the model-server engine
   (the ``openai`` client, httpx2 and certifi's authorities, which the bundle must carry)
   streams a reply from it, as it would from a server on another computer;
   tools: the app starts itself as an MCP server over stdio (``--smoke-test-mcp-server``) and
   the tool service lists and calls its tool through the ``mcp`` SDK the bundle must carry;
5. the keyring stores, returns and deletes a test secret; a system without a keyring service
   is reported, not failed, because the app then keeps working without saved secrets;
6. Qt: the main window opens on a temporary profile in offline mode, on Qt's offscreen
   platform unless ``QT_QPA_PLATFORM`` names another (``xcb`` under Xvfb checks the X11
   plugin), and ``--screenshot`` saves the screen with the window on it.

It prints one line per check and exits 0 when all pass; the first failure ends it with exit
status 1 and the reason. ``--report FILE`` also writes the lines to FILE, for builds whose
standard output goes nowhere (a windowed Windows executable).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

import llama_cpp

from app.core.conversations.conversation_store import ConversationStore
from app.core.domain.generation import ChatMessage, LoadSettings, ModelLoadError, SamplingSettings
from app.core.engines.llama.build_info import build_info, build_mismatches
from app.core.engines.llama.llama_engine import LlamaEngine
from app.core.engines.llama.model_gate import ModelGate
from app.core.engines.llama.self_test_model import (
    THINKING_ANSWER,
    THINKING_REASONING,
    write_tiny_qwen35_gguf,
)
from app.core.profile.app_paths import APP_NAME, AppPaths
from app.core.profile.settings import Settings, save_settings

KEYRING_SERVICE = f"{APP_NAME} smoke test"


class SmokeTestFailure(Exception):
    """A check found the installation broken; the message says how."""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="qwen-local-chat --smoke-test", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", type=Path, help="check this profile's data folder instead of the default one")
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the screen with the main window on it")
    parser.add_argument("--report", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)

    report_file = args.report.open("w", encoding="utf-8") if args.report else None

    def say(line: str) -> None:
        for stream in (sys.stdout, report_file):
            if stream is not None:  # a windowed Windows build has no standard output
                print(line, file=stream, flush=True)

    checks: list[tuple[str, Callable[[], str]]] = [
        ("llama.cpp", _check_llama_cpp),
        ("model", _check_model),
        ("vision", _check_vision),
        ("data folder", lambda: _check_data_folder(AppPaths.under(args.profile) if args.profile else AppPaths.default())),
        ("local API", _check_local_api),
        ("tools", _check_tools),
        ("keyring", _check_keyring),
        ("Qt", lambda: _check_qt(args.screenshot)),
    ]
    try:
        for name, check in checks:
            try:
                detail = check()
            except Exception as error:  # noqa: BLE001 (every failure is reported alike, whatever raised it)
                say(f"FAIL {name}: {error}")
                return 1
            say(f"ok   {name}: {detail}")
        say(f"{APP_NAME} smoke test passed")
        return 0
    finally:
        if report_file is not None:
            report_file.close()


def _check_llama_cpp() -> str:
    info = build_info()
    problems = build_mismatches(info)
    if problems:
        raise SmokeTestFailure(f"the {info.variant} build carries the wrong llama.cpp: " + "; ".join(problems))
    gpu = "GPU offload available" if llama_cpp.llama_supports_gpu_offload() else "no GPU device, runs on the CPU"
    return f"llama-cpp-python {llama_cpp.__version__}, {info.variant} build: {info.describe()}; {gpu}"


def _check_local_api() -> str:
    import json
    import urllib.request

    from app.core.api.api_server import ApiServer, ApiServerConfig
    from app.core.engines.engine_events import ModelLoaded, ModelLoadFailed
    from app.core.engines.engine_host import EngineHost

    with tempfile.TemporaryDirectory() as folder:
        model = write_tiny_qwen35_gguf(Path(folder) / "smoke-test.gguf")
        host = EngineHost(LlamaEngine)
        try:
            loaded = threading.Event()
            host.subscribe(lambda event: loaded.set() if isinstance(event, (ModelLoaded, ModelLoadFailed)) else None)
            host.load_model(model, LoadSettings(context_size=512))
            if not loaded.wait(60) or host.facts is None:
                raise SmokeTestFailure("the test model did not load for the local API")
            server = ApiServer(host, ApiServerConfig(port=0))
            server.start()
            try:
                body = json.dumps({"model": "smoke-test", "messages": [{"role": "user", "content": "Why?"}], "max_tokens": 16})
                request = urllib.request.Request(
                    f"{server.url}/chat/completions", body.encode(), {"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=60) as response:
                    answer = json.load(response)["choices"][0]["message"]
                streamed = _reply_through_the_model_server_engine(server.url)
            finally:
                server.stop()
        finally:
            host.shutdown()
    if answer.get("content") != THINKING_ANSWER:
        raise SmokeTestFailure(f"the local API answered {answer!r} instead of {THINKING_ANSWER!r}")
    if streamed != THINKING_ANSWER:
        raise SmokeTestFailure(f"the model-server engine got {streamed!r} instead of {THINKING_ANSWER!r}")
    return f"answered a chat completion at {server.url}, and streamed one to the model-server engine"


def _reply_through_the_model_server_engine(url: str) -> str:
    from app.core.domain.generation import RemoteModel
    from app.core.engines.remote.remote_engine import RemoteEngine
    from app.core.engines.remote.server_connection import ServerConnection, list_models

    connection = ServerConnection("the smoke test's server", url)
    engine = RemoteEngine(lambda _name: connection)
    try:
        model = list_models(connection)[0].id
        engine.load(RemoteModel(connection.name, model), LoadSettings())
        result = engine.generate(
            [ChatMessage("user", "Why?")], enable_thinking=True, sampling=SamplingSettings(max_tokens=16),
            cancel=threading.Event(), on_text=lambda _reasoning, _answer: None,
        )
    finally:
        engine.unload()
    return result.answer


def _check_tools() -> str:
    import json

    from app.core.tools.tool_service import ToolService
    from app.smoke_mcp_server import ECHO_PREFIX, MCP_SERVER_FLAG

    # The installed app is its own executable; from source it is this interpreter running the package.
    command = [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, "-m", "app"]
    config = {"mcpServers": {"smoke": {"command": command[0], "args": command[1:] + [MCP_SERVER_FLAG]}}}
    with tempfile.TemporaryDirectory() as folder:
        service = ToolService(Path(folder), lambda query: [])
        try:
            service.set_config_text(json.dumps(config))
            service.approve_launch("smoke")
            status = service.start_server("smoke").result(60)
            tool = next((tool for tool in status.tools if tool.name == "echo"), None)
            if tool is None:
                raise SmokeTestFailure(f"the app as an MCP server did not list its tool: {status.message} {status.stderr}")
            done: list = []
            finished = threading.Event()
            service.run(tool, {"text": "ping"}, lambda run: (done.append(run), finished.set()))
            if not finished.wait(60) or done[0].output.text != ECHO_PREFIX + "ping":
                raise SmokeTestFailure(f"the MCP tool call failed: {done[0].output.text if done else 'no answer'}")
        finally:
            service.shutdown()
    return f"called a tool of an MCP server over stdio in {done[0].duration_s * 1000:.0f} ms"


def _check_model() -> str:
    with tempfile.TemporaryDirectory() as folder:
        model = write_tiny_qwen35_gguf(Path(folder) / "smoke-test.gguf")
        settings = LoadSettings(context_size=512)
        try:
            ModelGate(None)(model, settings)  # the first-use check, in a child process of this build
        except ModelLoadError as error:
            raise SmokeTestFailure(f"the first-use check of the test model failed: {error}") from error
        engine = LlamaEngine()
        facts = engine.load(model, settings)
        try:
            result = engine.generate(
                [ChatMessage("user", "Why?")],
                enable_thinking=True,
                sampling=SamplingSettings.for_mode(thinking=True, max_tokens=16),
                cancel=threading.Event(),
                on_text=lambda reasoning, answer: None,
            )
        finally:
            engine.unload()  # before the folder goes: Windows cannot delete a mapped file
    if (result.reasoning, result.answer) != (THINKING_REASONING, THINKING_ANSWER):
        raise SmokeTestFailure(
            f"the test model replied {result.reasoning!r} / {result.answer!r} instead of "
            f"{THINKING_REASONING!r} / {THINKING_ANSWER!r}"
        )
    return (
        f"{facts.architecture} test model checked in a child process, loaded on {facts.backend} "
        f"({facts.gpu_layers} GPU layers) and "
        f"generated {result.stats.generated_tokens} tokens at {result.stats.tokens_per_second:.0f} tokens/s"
    )


def _check_vision() -> str:
    from app.core.domain.generation import ChatImage
    from app.core.engines.llama.self_test_projector import write_tiny_qwen35_projector
    from app.core.images.image_intake import prepare_image, sample_picture

    with tempfile.TemporaryDirectory() as folder:
        model = write_tiny_qwen35_gguf(Path(folder) / "smoke-test.gguf", thinks_by_default=False)
        projector = write_tiny_qwen35_projector(Path(folder) / "mmproj-smoke-test.gguf")
        picture = prepare_image(sample_picture(320, 240).data)
        engine = LlamaEngine()
        try:
            engine.load(model, LoadSettings(context_size=512, projector=projector))
            read: list[float] = []
            result = engine.generate(
                [ChatMessage("user", "What is this?", images=(ChatImage(picture.sha256, picture.data),))],
                enable_thinking=False,
                sampling=SamplingSettings(max_tokens=4, seed=0),
                cancel=threading.Event(),
                on_text=lambda reasoning, answer: None,
                on_image_progress=lambda number, count, fraction: read.append(fraction),
            )
        finally:
            engine.unload()
    if not read or read[-1] != 1.0 or result.stats.generated_tokens != 4:
        raise SmokeTestFailure(f"the test projector did not read the picture ({read!r}, {result.stats!r})")
    return (
        f"libmtmd read a {picture.width}×{picture.height} picture and the model replied "
        f"({result.stats.prompt_tokens} prompt tokens with the picture)"
    )


def _check_data_folder(paths: AppPaths) -> str:
    created = [folder for folder in (paths.data_dir, *paths.data_dir.parents) if not folder.exists()]  # deepest first
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    database = paths.data_dir / f"smoke-test-{os.getpid()}.sqlite3"
    try:
        with ConversationStore(database) as store:
            conversation = store.create_conversation("Smoke test")
            store.add_message(conversation.id, "user", "Why?")
        with ConversationStore(database) as store:  # reopened: the message was really written
            messages = store.messages(conversation.id)
        if [message.content for message in messages] != ["Why?"]:
            raise SmokeTestFailure(f"the test database in {paths.data_dir} did not keep its message")
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            database.with_name(database.name + suffix).unlink(missing_ok=True)
        for folder in created:
            folder.rmdir()
    return f"{paths.data_dir} holds a working conversation database"


def _check_keyring() -> str:
    import keyring
    import keyring.errors

    # keyring finds its backends through package metadata, which a bundle must carry along.
    known = sorted(entry.name for entry in entry_points(group="keyring.backends"))
    if not known:
        raise SmokeTestFailure("keyring's backends are missing from this installation")
    backend = keyring.get_keyring()
    user, secret = f"test-{os.getpid()}", secrets.token_hex(16)
    try:
        keyring.set_password(KEYRING_SERVICE, user, secret)
    except keyring.errors.NoKeyringError:
        return f"no keyring service on this system (tolerated: secrets are not saved); backends: {', '.join(known)}"
    try:
        stored = keyring.get_password(KEYRING_SERVICE, user)
    finally:
        keyring.delete_password(KEYRING_SERVICE, user)
    if stored != secret:
        raise SmokeTestFailure(f"{backend.name} returned a different secret than was stored")
    return f"{backend.name} stored, returned and deleted a test secret"


def _check_qt(screenshot: Path | None) -> str:
    # Headless unless the caller chose a platform: the smoke test must run without a display.
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QCoreApplication, QEvent
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from app.main import build_main_window
    from app.ui.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_theme(app)
    with tempfile.TemporaryDirectory() as profile:
        paths = AppPaths.under(Path(profile))
        save_settings(Settings(offline_mode=True), paths.settings_file)  # a check must not go online
        window = build_main_window(paths)
        try:
            window.show()
            if not QTest.qWaitForWindowExposed(window):
                raise SmokeTestFailure(f"the main window never appeared on Qt's {app.platformName()} platform")
            shot = ""
            if screenshot is not None:
                window.repaint()  # paint and flush now, so the grab sees the finished window
                if not window.screen().grabWindow(0).save(str(screenshot)):
                    raise SmokeTestFailure(f"could not save the screenshot to {screenshot}")
                shot = f"; screenshot saved to {screenshot}"
        finally:
            window.close()  # stops the engine thread and closes the database before the folder goes
            window.deleteLater()
            QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    return f"main window shown on Qt {app.platformName()} platform{shot}"
