"""The performance benchmark (bench/) runs end to end on the tiny model, so it cannot rot.

It checks that every section runs and reports what the README's table needs, and what must hold
at any speed (the window shows exactly the generated text); never how fast anything was, since
timings depend on the machine and its load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_benchmark_smoke_run_measures_every_section(tmp_path: Path) -> None:
    output = tmp_path / "smoke.json"
    # The start-up probe builds the real window, which opens the keyring: never the user's.
    environment = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    completed = subprocess.run(
        [sys.executable, "-m", "bench.run_benchmarks", "--smoke", "--json", str(output)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "| Target" in completed.stdout  # the table was printed

    results = json.loads(output.read_text())
    (model,) = results["models"]
    for section in ("generation", "prompt"):
        assert model[section]["ratio"]["median_of_rounds"] > 0
        assert model[section]["raw_tokens_per_second"]["best"] > 0
    assert model["generation"]["delivered_text_equals_generated"]
    assert set(results["gui_hostile_content_ms"]) >= {"paste_1mb_line", "code_1mb_streamed", "table_5000_columns"}
    assert all(stall > 0 for stall in results["gui_hostile_content_ms"].values())
    assert model["prompt"]["engine_evaluated_tokens"] == model["prompt"]["prompt_tokens"]  # nothing reused
    turns = model["multi_turn"]
    # The history was evaluated ahead of time: turn 10 evaluates no more than a new chat's turn 1.
    assert turns["turn_10_evaluated_tokens"] <= turns["turn_1_evaluated_tokens"] < turns["history_tokens"]
    assert model["bandwidth_bound"]["bound_tokens_per_second"] > 0
    api = results["local_api"]
    assert api["generation"]["api_tokens_per_second"] > 0 and api["generation"]["engine_tokens_per_second"] > 0
    for chat in api["multi_turn"]:
        # Each follow-up reused what the request before it evaluated.
        assert all(cached > 0 for cached in chat["cached_tokens_by_turn"][1:]), chat
        assert chat["turn_10_cached_tokens"] > chat["turn_1_cached_tokens"] == 0
    reading = [chat for chat in api["multi_turn"] if chat["client"] == "reading"]
    assert all(chat["turn_10_evaluated_tokens"] < chat["history_tokens"] // 4 for chat in reading)
    assert api["disconnect"]["max_seconds"] > 0
    server = results["model_server"]
    assert server["streaming"]["engine_tokens_per_second"] > 0 and server["streaming"]["raw_client_tokens_per_second"] > 0
    assert server["stop"]["max_seconds"] > 0
    follow_ups = results["instant_follow_ups"]
    assert follow_ups["turn_10_typed_seconds"]["best"] > 0 and follow_ups["reopened_after_restart_seconds"] > 0
    assert follow_ups["state_file_bytes"] > 0 and follow_ups["state_write_seconds"] > follow_ups["leaving_engine_seconds"] > 0
    pictures = results["vision"]
    assert pictures["encode_seconds"] > 0 and pictures["image_tokens"] > 0
    assert pictures["turn_2_time_to_first_token_s"] > 0 and pictures["text_turn_2_time_to_first_token_s"] > 0
    assert pictures["image_support_estimated_bytes"] > pictures["projector_file_bytes"] > 0

    for stream in results["gui_streaming"]:
        assert stream["generated_tokens"] > 0
        assert stream["shown_equals_generated"], stream
    assert results["gui_update_ms_by_reply_length"]
    assert results["open_conversation"]["messages_shown"] > 0
    stalls = results["gui_stalls"]
    assert stalls["sending"]["longest_tick_gap_ms"] > 0
    assert stalls["typing"]["longest_tick_gap_ms"] > 0 and stalls["typing"]["tokens_read_while_typing"] > 0
    assert stalls["exporting"]["banner"].startswith(f"Saved {stalls['exported_conversations']} chats to ")
    assert stalls["exporting"]["banner"].endswith("backup.json.")
    assert stalls["exporting"]["file_bytes"] > 0
    startup = results["startup"]
    assert startup["shown_seconds"]["best"] > 0
    assert startup["loaded_rss_bytes"] > startup["idle_rss_bytes"] > 0

    names = {target["name"] for target in results["targets"]}
    assert len(names) == len(results["targets"]) == 23  # every target of the issues is checked
