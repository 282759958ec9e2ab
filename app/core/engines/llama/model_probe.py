"""The first-use probe: a model file is loaded and used in a child process before the app loads it.

llama.cpp aborts the whole process on some malformed files (a ``GGML_ASSERT``, a division by
zero) and can loop forever on others; no check in Python can foresee all of them. So the first
time a file is used, a child process (``python -m app.core.engines.llama.model_probe``) does
what the app is about to do: load it with the same GPU settings, render its chat template with a
sample conversation, evaluate the prompt and generate a few tokens. The child reports each step
as a JSON line on its standard output; the parent gives each step a time limit and kills the
child when one runs over. A child that dies is reported with the assertion llama.cpp printed.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.core.domain.generation import ChatMessage, LoadSettings, ModelLoadCancelled

CHECK_MODEL_FLAG = "--check-model-file"  # how a bundled app (no "python -m") runs the child
PROBE_CONTEXT = 512
PROBE_REPLY_TOKENS = 4
PROBE_IMAGE_TOKENS = 16  # the projector's check encodes a small picture: it must not take long
SAMPLE_CONVERSATION = (
    ChatMessage("system", "You are a helpful assistant."),
    ChatMessage("user", "Hello! What can you do?"),
    ChatMessage("assistant", "I can answer questions.", reasoning="The user greets me."),
    ChatMessage("user", "Say one word."),
)


@dataclass(frozen=True)
class ProbeLimits:
    """Seconds each step may take. Loading is limited by the time without progress, since a
    large file on a slow disk takes long but keeps moving."""

    start: float = 30.0  # the child starting Python and llama.cpp
    loading_without_progress: float = 60.0
    rendering: float = 10.0
    generating: float = 60.0


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    message: str = ""  # for the user, when not ok
    definitive: bool = True  # a verdict on the file itself (not a time-out or a lack of memory)
    out_of_memory: bool = False  # llama.cpp could not allocate what the file needs


_TIMEOUT_MESSAGES = {
    "start": "The check of “{name}” could not start in time; try again.",
    "loading": "llama.cpp stopped making progress loading “{name}”.",
    "rendering": "“{name}” cannot be used for chat: its chat template takes too long to render.",
    "generating": "“{name}” does not finish a short reply in time: the model is damaged or unusable.",
}


def probe_model(
    path: Path,
    settings: LoadSettings,
    *,
    on_progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
    limits: ProbeLimits = ProbeLimits(),
) -> ProbeResult:
    """Loads and uses ``path`` in a child process; raises ``ModelLoadCancelled`` once ``cancel``
    is set (the child is killed)."""
    name = Path(path).name
    if settings.projector is not None:  # a crash may be either file's doing
        name = f"{name} + {Path(settings.projector).name}"
    child = subprocess.Popen(
        _child_command(path, settings),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # An assertion's own line is the reason; ggml would follow it with a backtrace from gdb.
        env={**os.environ, "GGML_NO_BACKTRACE": "1"},
        start_new_session=True,  # a Ctrl+C in the terminal goes to the app, which stops it
    )
    lines: queue.Queue[dict | None] = queue.Queue()
    errors: list[str] = []
    readers = [
        threading.Thread(target=_read_reports, args=(child.stdout, lines), daemon=True),
        threading.Thread(target=_read_tail, args=(child.stderr, errors), daemon=True),
    ]
    for reader in readers:
        reader.start()
    step, deadline = "start", time.monotonic() + limits.start
    try:
        while True:
            if cancel is not None and cancel.is_set():
                raise ModelLoadCancelled(f"Checking “{name}” was cancelled.")
            try:
                report = lines.get(timeout=min(0.1, max(deadline - time.monotonic(), 0)))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    return ProbeResult(False, _TIMEOUT_MESSAGES[step].format(name=name), definitive=step == "rendering")
                continue
            if report is None:  # the child closed its output: it ended
                break
            if "error" in report:
                memory = bool(report.get("memory"))
                return ProbeResult(False, str(report["error"]), definitive=not memory, out_of_memory=memory)
            if report.get("ok"):
                return ProbeResult(True)
            step = report["step"]
            deadline = time.monotonic() + {
                "loading": limits.loading_without_progress,
                "rendering": limits.rendering,
                "generating": limits.generating,
            }[step]
            if step == "loading" and on_progress is not None:
                on_progress(report.get("fraction", 0.0))
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        for reader in readers:
            reader.join(timeout=1)
    if child.returncode == -getattr(signal, "SIGKILL", 9):  # the system's out-of-memory killer, most likely
        message = f"The check of “{name}” was stopped by the system, most likely for lack of memory."
        return ProbeResult(False, message, definitive=False, out_of_memory=True)
    return ProbeResult(False, _death_message(name, child.returncode, errors))


def _child_command(path: Path, settings: LoadSettings) -> list[str]:
    arguments = [str(path), json.dumps(_settings_arguments(settings))]
    if getattr(sys, "frozen", False):  # a PyInstaller bundle: its executable is the app itself
        return [sys.executable, CHECK_MODEL_FLAG, *arguments]
    return [sys.executable, "-m", "app.core.engines.llama.model_probe", *arguments]


def _settings_arguments(settings: LoadSettings) -> dict:
    # The same GPU placement as the real load (a GPU backend has failures of its own), but one
    # CPU thread: llama.cpp's threads spin while they wait, and a probe competing with a reply
    # (or another probe) for every core would make both many times slower.
    projector = str(settings.projector) if settings.projector is not None else None
    return {"gpu_layers": settings.gpu_layers, "threads": 1, "main_gpu": settings.main_gpu, "projector": projector}


def _read_reports(stream, lines: queue.Queue) -> None:
    for raw in stream:
        try:
            report = json.loads(raw)
        except ValueError:
            continue  # something a library printed; not ours
        if isinstance(report, dict):
            lines.put(report)
    lines.put(None)


def _read_tail(stream, errors: list[str]) -> None:
    """Keeps the last lines of the child's error output (llama.cpp prints assertions there)."""
    for raw in stream:
        line = raw.decode("utf-8", "replace").strip()
        if line:
            errors[:] = (errors + [line])[-20:]


def _death_message(name: str, return_code: int, errors: list[str]) -> str:
    assertion = next((line for line in reversed(errors) if "GGML_ASSERT" in line or "error" in line.lower()), "")
    if return_code < 0:
        try:
            cause = signal.Signals(-return_code).name
        except ValueError:
            cause = f"signal {-return_code}"
        what = f"llama.cpp crashed on “{name}” ({cause})"
    else:
        what = f"llama.cpp could not use “{name}” (exit status {return_code})"
    if assertion:
        what += f": {assertion.split(': ', 1)[-1] if 'GGML_ASSERT' in assertion else assertion}"
    return what + ". The file is damaged or not a model this version can run."


# ------------------------------------------------------------------------------- the child


def run_check(path: str, arguments: str) -> int:
    """The child's side: checks the model at ``path`` (``arguments``: the load settings as JSON)
    and reports each step on standard output. Always exits 0: the report says how it went, and
    a crash says it by the exit status."""
    # Imported here: the parent, which only starts children, never needs llama.cpp for it.
    from app.core.domain.generation import ModelLoadError, ModelMemoryError, SamplingSettings
    from app.core.domain.gguf_header import read_gguf_header
    from app.core.engines.llama.chat_template import ChatTemplate, ChatTemplateError
    from app.core.engines.llama.llama_engine import LlamaEngine

    def report(**values) -> None:
        print(json.dumps(values), flush=True)

    options = json.loads(arguments)
    projector = options.pop("projector", None)
    settings = LoadSettings(
        context_size=PROBE_CONTEXT, batch_size=PROBE_CONTEXT, projector=Path(projector) if projector else None, **options
    )
    engine = LlamaEngine(snapshot_budget_bytes=0)
    try:
        # The template first, on its own: loading renders it too, under the loading step's limit.
        report(step="rendering")
        source = read_gguf_header(Path(path)).metadata.get("tokenizer.chat_template")
        template = ChatTemplate(source if isinstance(source, str) else "")
        for thinking in (True, False, None):
            template.render(SAMPLE_CONVERSATION, enable_thinking=thinking)
        report(step="loading", fraction=0.0)
        engine.load(Path(path), settings, lambda fraction: report(step="loading", fraction=fraction))
        report(step="generating")
        engine.generate(
            SAMPLE_CONVERSATION,
            enable_thinking=False,
            sampling=SamplingSettings(max_tokens=PROBE_REPLY_TOKENS, seed=0),
            cancel=threading.Event(),
            on_text=lambda reasoning, answer: None,
        )
        if settings.projector is not None:
            engine.generate(
                _sample_image_question(),
                enable_thinking=False,
                sampling=SamplingSettings(max_tokens=PROBE_REPLY_TOKENS, seed=0),
                cancel=threading.Event(),
                on_text=lambda reasoning, answer: None,
                image_token_limit=PROBE_IMAGE_TOKENS,
            )
    except ModelLoadError as error:
        report(error=str(error), memory=isinstance(error, ModelMemoryError))
        return 0
    except ChatTemplateError as error:
        report(error=f"“{Path(path).name}” cannot be used for chat: {error}")
        return 0
    except Exception as error:  # noqa: BLE001 - whatever else the file causes is the file's verdict
        report(error=f"“{Path(path).name}” cannot be used: {error}")
        return 0
    engine.unload()
    report(ok=True)
    return 0


def _sample_image_question() -> tuple[ChatMessage, ...]:
    from app.core.domain.generation import ChatImage
    from app.core.images.image_intake import sample_picture

    picture = sample_picture()
    return (ChatMessage("user", "What is in this picture?", images=(ChatImage(picture.sha256, picture.data),)),)


if __name__ == "__main__":
    sys.exit(run_check(sys.argv[1], sys.argv[2]))
