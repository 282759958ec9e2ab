"""The performance suite in one command: measures, prints the tables, writes the JSON.

Full run (about half an hour on 2 cores, plus a few minutes to make any model the cache lacks):

    python -m bench.run_benchmarks --json bench-results.json

Smoke run, seconds long, on the tiny self-test model; CI runs it so the suite cannot rot:

    python -m bench.run_benchmarks --smoke --json smoke.json

Every speed is a ratio against raw llama.cpp measured in the same run on the same file with the
same threads and context settings (see ``bench/raw_reference.py``); the GUI measurements drive
the real main window on Qt's offscreen platform. ``bench/README.md`` explains each figure.
"""

from __future__ import annotations

import os

# Before Qt is imported: the benchmark needs no screen.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

from PySide6.QtWidgets import QApplication  # noqa: E402

from app.core.conversations.conversation_store import ConversationStore  # noqa: E402
from app.core.profile.app_paths import AppPaths  # noqa: E402
from app.core.models.fit_estimate import ModelShape, effective_context_size  # noqa: E402
from app.core.engines.llama.llama_runtime import default_thread_count  # noqa: E402
from app.core.engines.llama.self_test_model import write_tiny_qwen35_gguf  # noqa: E402
from app.core.profile.settings import Settings, save_settings  # noqa: E402
from app.main import THEMES  # noqa: E402
from app.ui.theme import apply_theme  # noqa: E402
from bench import gui_checks, hostile_content, instant_follow_ups, local_api, machine, make_models, model_server, report, vision  # noqa: E402
from app.core.engines.llama.self_test_projector import write_tiny_qwen35_projector  # noqa: E402
from bench.bandwidth import read_bandwidth  # noqa: E402
from bench.speed import SpeedBench, SpeedPlan, seconds  # noqa: E402

ALLOWANCE_BYTES = 200 * report.MB  # the allowance over file size and KV cache


@dataclass(frozen=True)
class Plan:
    """How much of everything to measure: the full run, or the seconds-long smoke run."""

    speed: SpeedPlan
    other_models_repeats: int = 7
    turns: int = 10
    turn_user_tokens: int = 100
    turn_reply_tokens: int = 330  # with the user messages: ~4,000 tokens of history at turn 10
    turn_repeats: int = 3
    stream_seconds: float = 15.0
    stress_seconds: float = 5.0
    conversation_messages: int = 1000
    exported_conversations: int = 500
    open_repeats: int = 5
    startup_repeats: int = 5
    bandwidth_buffer_bytes: int = 1 << 30
    update_lengths: tuple[int, ...] = (1000, 2000, 4000, 8000, 16000)
    hostile_content_rounds: int = 3  # bench/hostile_content.py's probes: hostile pastes and replies
    api_rounds: int = 7  # bench/local_api.py: streaming through the API against the engine alone
    api_tokens: int = 128
    api_disconnects: int = 5
    server_rounds: int = 7  # bench/model_server.py: the remote engine reading our own `serve`
    server_stops: int = 5
    follow_up_repeats: int = 5  # bench/instant_follow_ups.py: typed questions, chats resumed after a restart
    typed_characters: int = 240  # typed into a long chat while the engine reads it (GUI stalls)
    typing_chat_messages: int = 12  # the chat typed into: ~4,000 tokens with the real tokenizer
    typed_characters_per_second: float = 6.0  # about 70 words a minute
    vision_rounds: int = 3  # bench/vision.py: a picture's encoding, its follow-up, its memory
    models: tuple[str, ...] = ("0.8B:Q4_K_M", "0.8B:Q8_0", "2B:Q4_K_M", "2B:Q8_0")


FULL = Plan(speed=SpeedPlan(repeats=15, generated_tokens=64, prompt_tokens=512))
SMOKE = Plan(
    speed=SpeedPlan(repeats=2, generated_tokens=16, prompt_tokens=48, quiet_wait_s=0),
    other_models_repeats=2,
    turn_user_tokens=12,
    turn_reply_tokens=24,
    turn_repeats=1,
    stream_seconds=0.5,
    stress_seconds=0.5,
    conversation_messages=40,
    exported_conversations=20,
    open_repeats=1,
    startup_repeats=1,
    bandwidth_buffer_bytes=1 << 24,
    update_lengths=(500, 1000),
    hostile_content_rounds=1,
    api_rounds=1,
    api_tokens=16,
    api_disconnects=1,
    server_rounds=1,
    server_stops=1,
    follow_up_repeats=1,
    typed_characters=20,
    typing_chat_messages=2,
    typed_characters_per_second=40.0,
    models=(),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="seconds-long run on the tiny self-test model")
    parser.add_argument(
        "--models", nargs="*", help=f"SIZE:QUANT to measure, the first one fully (default: {' '.join(FULL.models)})"
    )
    parser.add_argument("--cache", type=Path, default=make_models.default_cache_dir(), help="folder of the model files")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    if args.models is not None:
        plan = dataclasses.replace(plan, models=tuple(args.models))

    application = QApplication(sys.argv[:1])
    apply_theme(application, THEMES["system"])  # as app.main does: styles change layout costs
    with tempfile.TemporaryDirectory(prefix="qwen-bench-") as scratch:
        scratch_dir = Path(scratch)
        tiny = write_tiny_qwen35_gguf(scratch_dir / "tiny.gguf")
        models = [(label, _model_file(label, args.cache)) for label in plan.models] or [("tiny", tiny)]
        results = run(plan, models, tiny, scratch_dir)

    checks = report.check_targets(results)
    results["targets"] = [asdict(check) for check in checks]
    print()
    print(report.targets_table(checks))
    print()
    print(report.speeds_table(results))
    print(f"\nMachine: {results['machine']['cpu']}, {results['machine']['physical_cores']} cores, "
          f"{results['machine']['memory_bytes'] / 2**30:.0f} GiB, llama.cpp {results['machine']['llama_cpp_backend']}; "
          f"memory read bandwidth {results['bandwidth_bytes_per_second'] / 1e9:.1f} GB/s; "
          f"load average {results['load_average_before']:.2f} before, {results['load_average_after']:.2f} after")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"Results written to {args.json}")
    return 0


def _model_file(label: str, cache: Path) -> Path:
    size, _, quantization = label.partition(":")
    return make_models.ensure_model(size, quantization, cache)


def run(plan: Plan, models: list[tuple[str, Path]], tiny: Path, scratch: Path) -> dict:
    """Every measurement; ``models[0]`` gets all of them, the others only the speeds."""
    rng = random.Random(0)
    results: dict = {"machine": machine.describe(), "load_average_before": machine.load_average()}
    threads = default_thread_count()
    _progress(f"memory bandwidth with {threads} threads")
    results["bandwidth_bytes_per_second"] = read_bandwidth(threads, plan.bandwidth_buffer_bytes)

    results["models"] = []
    for index, (label, path) in enumerate(models):
        speed_plan = plan.speed if index == 0 else dataclasses.replace(plan.speed, repeats=plan.other_models_repeats)
        results["models"].append(_measure_model(label, path, speed_plan, plan, index == 0, results, rng))

    primary = models[0][1]
    _progress(f"{models[0][0]}: the local API (streaming, {plan.turns} turns, disconnects)")
    results["local_api"] = local_api.measure(
        primary, rounds=plan.api_rounds, tokens=plan.api_tokens, turns=plan.turns,
        user_tokens=plan.turn_user_tokens, reply_tokens=plan.turn_reply_tokens, repeats=plan.turn_repeats,
        disconnects=plan.api_disconnects,
    )
    results["local_api"]["model"] = models[0][0]
    _progress(f"{models[0][0]}: a model server (our own serve, read by the remote engine)")
    results["model_server"] = model_server.measure(
        primary, rounds=plan.server_rounds, tokens=plan.api_tokens, stops=plan.server_stops
    )
    results["model_server"]["model"] = models[0][0]
    _progress(f"{models[0][0]}: instant follow-ups (typed questions, a chat resumed after a restart)")
    results["instant_follow_ups"] = instant_follow_ups.measure(
        primary, repeats=plan.follow_up_repeats, turns=plan.turns - 1, user_tokens=plan.turn_user_tokens,
        reply_tokens=plan.turn_reply_tokens,
    )
    results["instant_follow_ups"]["model"] = models[0][0]
    # The real-shaped projector pairs with the 0.8B-shaped model; the tiny one with the tiny model.
    projector = vision.ensure_projector(primary.parent) if models[0][0].startswith("0.8B") else (
        write_tiny_qwen35_projector(scratch / "mmproj-tiny.gguf")
    )
    _progress(f"{models[0][0]}: images (encoding, the follow-up, memory)")
    results["vision"] = vision.measure(primary, projector, rounds=plan.vision_rounds)
    results["vision"]["model"] = models[0][0]
    _progress("GUI responsiveness while streaming")
    streams = [(models[0][0], primary, plan.stream_seconds), ("tiny, fastest possible", tiny, plan.stress_seconds)]
    results["gui_streaming"] = _gui_streaming(streams, scratch, rng)
    reference = results["models"][0]["generation"]["raw_tokens_per_second"]["best"]
    results["gui_streaming"][0]["tokens_per_second_vs_c_api"] = results["gui_streaming"][0]["tokens_per_second"] / reference
    results["gui_update_ms_by_reply_length"] = gui_checks.update_cost_by_length(list(plan.update_lengths))
    _progress(f"opening a {plan.conversation_messages:,}-message conversation")
    results["open_conversation"] = _open_conversation(plan, scratch)
    _progress(f"GUI stalls: sending into the {plan.conversation_messages:,}-message chat, exporting {plan.exported_conversations} chats")
    results["gui_stalls"] = _gui_stalls(plan, scratch, tiny)
    _progress(f"{models[0][0]}: GUI stalls while typing, the engine reading the message")
    results["gui_stalls"]["typing"] = _typing(plan, scratch, primary)
    _progress("GUI stalls: hostile pastes and replies")
    results["gui_hostile_content_ms"] = hostile_content.measure(rounds=plan.hostile_content_rounds)
    _progress("start-up and memory (fresh processes)")
    results["startup"] = _startup(plan, primary, scratch)
    results["load_average_after"] = machine.load_average()
    return results


def _measure_model(label: str, path: Path, speed_plan: SpeedPlan, plan: Plan, primary: bool, results: dict, rng: random.Random) -> dict:
    bench = SpeedBench(path)
    try:
        entry: dict = {
            "label": label,
            "path": str(path),
            "file_bytes": path.stat().st_size,
            "threads": bench.facts.threads,
            "context_size": bench.facts.context_size,
            "batch_size": bench.context_settings.batch_size,
        }
        size, _, quantization = label.partition(":")
        if (size, quantization) in make_models.PUBLISHED_BYTES:
            entry["published_bytes"] = make_models.PUBLISHED_BYTES[(size, quantization)]
            entry["size_deviation"] = entry["file_bytes"] / entry["published_bytes"] - 1
        _progress(f"{label}: generation, engine vs C API")
        entry["generation"] = bench.generation(speed_plan, rng)
        _progress(f"{label}: prompt processing, engine vs C API")
        entry["prompt"] = bench.prompt_processing(speed_plan, rng)
        entry["bandwidth_bound"] = bench.bandwidth_bound(
            results["bandwidth_bytes_per_second"], entry["generation"]["context_position"] + speed_plan.generated_tokens // 2
        )
        if primary:
            _progress(f"{label}: time to first token on turn {plan.turns} vs turn 1")
            entry["multi_turn"] = bench.multi_turn(
                turns=plan.turns,
                user_tokens=plan.turn_user_tokens,
                reply_tokens=plan.turn_reply_tokens,
                repeats=plan.turn_repeats,
                quiet_wait_s=plan.speed.quiet_wait_s,
                rng=rng,
            )
        return entry
    finally:
        bench.close()


def _gui_streaming(runs: list[tuple[str, Path, float]], scratch: Path, rng: random.Random) -> list[dict]:
    window = gui_checks.open_window(scratch / "gui-profile")
    try:
        measured = []
        for label, path, stream_seconds in runs:
            gui_checks.load_model(window, path)
            window.new_conversation()
            gui_checks.settle()
            prompt = " ".join("".join(rng.choices("abcdefghij", k=5)) for _ in range(20))
            outcome = gui_checks.streaming_responsiveness(window, prompt, stream_seconds)
            measured.append({"model": label, "stream_seconds": stream_seconds, **outcome})
        return measured
    finally:
        window.close()


def _open_conversation(plan: Plan, scratch: Path) -> dict:
    paths = AppPaths.under(scratch / "long-chat-profile")
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    long_id, short_id = gui_checks.write_long_conversation(paths.database, plan.conversation_messages)
    window = gui_checks.open_window(scratch / "long-chat-profile")
    try:
        gui_checks.settle()
        timings = []
        for _ in range(plan.open_repeats):
            gui_checks.select_conversation(window, short_id)
            gui_checks.settle()
            machine.wait_until_quiet(plan.speed.quiet_wait_s)
            timings.append(gui_checks.open_conversation_seconds(window, long_id))
            gui_checks.settle()
        shown = len(window.transcript.message_widgets())
    finally:
        window.close()
    return {
        "messages": plan.conversation_messages,
        "messages_shown": shown,
        "seconds": seconds(timings),
    }


def _gui_stalls(plan: Plan, scratch: Path, tiny: Path) -> dict:
    """The GUI thread's longest stall while the store works: a message sent into the long chat
    (on the tiny model, whose reply takes no time), and a backup of many chats."""
    paths = AppPaths.under(scratch / "long-chat-profile")  # written by _open_conversation
    with ConversationStore(paths.database) as store:
        long_id = max(store.list_conversations(), key=lambda chat: len(store.messages(chat.id))).id
    app = gui_checks.open_app(scratch / "long-chat-profile")
    try:
        gui_checks.load_model(app.window, tiny)
        sending = gui_checks.sending_into(app.window, long_id, "And one more question?")
    finally:
        app.window.close()
    export_paths = AppPaths.under(scratch / "many-chats-profile")
    export_paths.data_dir.mkdir(parents=True, exist_ok=True)
    gui_checks.write_many_conversations(export_paths.database, plan.exported_conversations, 10)
    app = gui_checks.open_app(scratch / "many-chats-profile")
    try:
        gui_checks.settle()
        exporting = gui_checks.exporting_all(app, scratch / "backup.json")
    finally:
        app.window.close()
    return {
        "send_into_messages": plan.conversation_messages,
        "sending": sending,
        "exported_conversations": plan.exported_conversations,
        "exporting": exporting,
    }


def _typing(plan: Plan, scratch: Path, model: Path) -> dict:
    """Typing into a chat of long messages at a person's pace: at the first pause the engine
    reads the history, then the message as typed."""
    profile = scratch / "typing-profile"
    paths = AppPaths.under(profile)
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    chat, _short = gui_checks.write_long_conversation(paths.database, plan.typing_chat_messages)
    app = gui_checks.open_app(profile)
    try:
        gui_checks.load_model(app.window, model)
        text = ("Could you compare the two plans above and tell me which one is cheaper over a year? " * 4)
        return gui_checks.typing_while_reading(app, chat, text[: plan.typed_characters], plan.typed_characters_per_second)
    finally:
        app.window.close()


def _startup(plan: Plan, model: Path, scratch: Path) -> dict:
    """Cold start and idle memory in fresh processes, then the memory with ``model`` loaded."""
    profile = scratch / "startup-profile"
    # Offline: a first start would otherwise ask the Hub for the model catalog.
    save_settings(Settings(offline_mode=True), AppPaths.under(profile).settings_file)
    shown, idle = [], []
    for _ in range(plan.startup_repeats):
        machine.wait_until_quiet(plan.speed.quiet_wait_s)
        events = _probe(profile)
        shown.append(events["shown"]["wall_seconds"])
        idle.append(events["idle"]["rss_bytes"])
    loaded = _probe(profile, model)["loaded"]
    shape = ModelShape.from_gguf(model)
    context = effective_context_size(shape, Settings().context_size)
    cache = shape.kv_bytes_per_token * context + shape.recurrent_state_bytes
    return {
        "shown_seconds": seconds(shown),
        "idle_rss_bytes": statistics.median(idle),
        "idle_rss_values": idle,
        "loaded_rss_bytes": loaded["rss_bytes"],
        "loaded_anonymous_bytes": loaded["anonymous_bytes"],
        "model_file_bytes": model.stat().st_size,
        "kv_cache_and_state_bytes": cache,
        "context_size": context,
        "loaded_allowance_bytes": model.stat().st_size + cache + ALLOWANCE_BYTES,
    }


def _probe(profile: Path, model: Path | None = None) -> dict:
    """Runs ``bench.startup_probe`` in a new interpreter; its events, timed from the spawn."""
    command = [sys.executable, "-m", "bench.startup_probe", str(profile)] + (["--model", str(model)] if model else [])
    root = Path(__file__).resolve().parent.parent
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True)
    events = {}
    assert process.stdout is not None
    for line in process.stdout:
        event = json.loads(line)
        event["wall_seconds"] = time.perf_counter() - started
        events[event["event"]] = event
    if process.wait() != 0:
        raise RuntimeError(f"the start-up probe failed with exit code {process.returncode}")
    return events


def _progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
