"""The issue's targets checked against a benchmark run, and the run printed as a table."""

from __future__ import annotations

from dataclasses import dataclass

MB = 1_000_000  # targets are in SI megabytes


@dataclass(frozen=True)
class TargetCheck:
    name: str
    measured: str
    target: str
    met: bool


def check_targets(results: dict) -> list[TargetCheck]:
    """Every target of the performance issue that this run measured."""
    checks: list[TargetCheck] = []
    for model in results.get("models", []):
        label = model["label"]
        for section, name in (("generation", "generation tok/s vs C-API loop"), ("prompt", "prompt tok/s vs C-API batches")):
            if section in model:
                ratio = model[section]["ratio"]["median_of_rounds"]
                noise = model[section]["reference_against_itself"]["median"]
                measured = f"{ratio:.3f} (A/A {noise:.3f})"
                checks.append(TargetCheck(f"{label} {name}", measured, "≥ 0.98", ratio >= 0.98))
        if "multi_turn" in model:
            turns = model["multi_turn"]
            checks.append(
                TargetCheck(
                    f"{label} time to first token, turn {turns['turns']} vs turn 1",
                    f"{turns['ratio']:.2f}×",
                    "≤ 1.3×",
                    turns["ratio"] <= 1.3,
                )
            )
    if "local_api" in results:
        checks += _local_api_targets(results["local_api"])
    if "model_server" in results:
        server = results["model_server"]
        worst = server["stop"]["max_seconds"]
        checks.append(TargetCheck(
            f"{server['model']} model server: Stop ends the reply and closes its stream", f"{worst * 1000:.0f} ms", "≤ 200 ms", worst <= 0.2
        ))
    if "instant_follow_ups" in results:
        follow_ups = results["instant_follow_ups"]
        model, typed, reopened = follow_ups["model"], follow_ups["typed_ratio"], follow_ups["reopened_ratio"]
        checks += [
            TargetCheck(f"{model} time to first token, turn 10 vs turn 1, both typed", f"{typed:.2f}×", "≤ 1.1×", typed <= 1.1),
            TargetCheck(
                f"{model} first follow-up after reopening a chat after a restart vs one that stayed open",
                f"{reopened:.2f}×", "≤ 1.2×", reopened <= 1.2,
            ),
        ]
    if "vision" in results:
        checks += _vision_targets(results["vision"])
    for stream in results.get("gui_streaming", []):
        gap = stream["longest_tick_gap_ms"]
        checks.append(
            TargetCheck(f"GUI longest 1 ms-timer gap while streaming ({stream['model']})", f"{gap:.1f} ms", "≤ 16 ms", gap <= 16)
        )
        checks.append(
            TargetCheck(
                f"GUI shows the generated text exactly ({stream['model']})",
                "yes" if stream["shown_equals_generated"] else "no",
                "yes",
                stream["shown_equals_generated"],
            )
        )
    typing = results.get("gui_stalls", {}).get("typing")
    if typing is not None:
        gap = typing["longest_tick_gap_ms"]
        checks.append(TargetCheck("GUI longest 1 ms-timer gap while typing, the engine reading", f"{gap:.1f} ms", "≤ 16 ms", gap <= 16))
    if "open_conversation" in results:
        opened = results["open_conversation"]
        seconds = opened["seconds"]["median"]
        checks.append(
            TargetCheck(
                f"open a stored {opened['messages']:,}-message conversation until painted",
                f"{seconds * 1000:.0f} ms",
                "≤ 300 ms",
                seconds <= 0.3,
            )
        )
    if "gui_stalls" in results:
        stalls = results["gui_stalls"]
        for name, gap in (
            (f"GUI longest stall sending into a {stalls['send_into_messages']:,}-message chat", stalls["sending"]["longest_tick_gap_ms"]),
            (f"GUI longest stall exporting {stalls['exported_conversations']:,} chats", stalls["exporting"]["longest_tick_gap_ms"]),
        ):
            checks.append(TargetCheck(name, f"{gap:.1f} ms", "≤ 16 ms", gap <= 16))
    if "startup" in results:
        startup = results["startup"]
        shown = startup["shown_seconds"]["median"]
        checks.append(TargetCheck("cold start until the main window is shown", f"{shown:.2f} s", "≤ 1.5 s", shown <= 1.5))
        idle = startup["idle_rss_bytes"]
        checks.append(TargetCheck("idle memory without a model (RSS)", f"{idle / MB:.0f} MB", "≤ 250 MB", idle <= 250 * MB))
        if "loaded_rss_bytes" in startup:
            loaded, allowed = startup["loaded_rss_bytes"], startup["loaded_allowance_bytes"]
            checks.append(
                TargetCheck(
                    "memory with the model loaded (RSS)",
                    f"{loaded / MB:.0f} MB",
                    f"≤ {allowed / MB:.0f} MB (file + KV cache + 200 MB)",
                    loaded <= allowed,
                )
            )
    return checks


def format_table(rows: list[list[str]], header: list[str]) -> str:
    """A Markdown table (readable in a terminal too), columns padded to their widest cell."""
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (width + 2) for width in widths) + "|", *map(line, rows)])


def targets_table(checks: list[TargetCheck]) -> str:
    return format_table(
        [[check.name, check.measured, check.target, "met" if check.met else "NOT MET"] for check in checks],
        ["Target", "Measured", "Target", "Status"],
    )


def speeds_table(results: dict) -> str:
    """Absolute speeds per model and how close decoding comes to the memory-bandwidth bound."""
    rows = []
    for model in results.get("models", []):
        generation, prompt, bound = model.get("generation"), model.get("prompt"), model.get("bandwidth_bound")
        rows.append(
            [
                model["label"],
                f"{model['file_bytes'] / MB:,.0f} MB",
                _rate(generation, "raw_tokens_per_second"),
                _rate(generation, "engine_tokens_per_second"),
                _rate(prompt, "raw_tokens_per_second"),
                _rate(prompt, "engine_tokens_per_second"),
                f"{bound['bytes_read_per_token'] / MB:,.0f} MB" if bound else "-",
                f"{bound['bound_tokens_per_second']:.1f}" if bound else "-",
                f"{model['generation']['raw_tokens_per_second']['best'] / bound['bound_tokens_per_second']:.0%}"
                if bound and generation
                else "-",
            ]
        )
    return format_table(
        rows,
        [
            "Model",
            "File",
            "Decode tok/s C API",
            "Decode tok/s app",
            "Prompt tok/s C API",
            "Prompt tok/s app",
            "Read per token",
            "Bandwidth bound tok/s",
            "Of bound",
        ],
    )


def _rate(section: dict | None, key: str) -> str:
    if not section:
        return "-"
    values = section[key]
    return f"{values['best']:.1f} (median {values['median']:.1f}, {values['min']:.1f}–{values['max']:.1f})"


def _vision_targets(vision: dict) -> list[TargetCheck]:
    """A follow-up about a picture starts as fast as a text one; the estimate holds with a projector."""
    model, ratio = vision["model"], vision["turn_2_vs_text_ratio"]
    memory = vision["whole_measured_bytes"] / vision["whole_estimated_bytes"]
    return [
        TargetCheck(f"{model} time to first token, follow-up about a picture vs text-only", f"{ratio:.2f}×", "≤ 1.2×", ratio <= 1.2),
        TargetCheck(
            f"{model} memory with the projector, reading a picture, vs the fit estimate",
            f"{memory:.3f}", "within ±10 %", abs(memory - 1) <= 0.10,
        ),
    ]


def _local_api_targets(api: dict) -> list[TargetCheck]:
    """The local API's targets: its streaming speed, follow-up turns and disconnects."""
    model = api["model"]
    ratio = api["generation"]["ratio_median_of_rounds"]
    checks = [TargetCheck(f"{model} API generation tok/s vs the engine alone", f"{ratio:.3f}", "≥ 0.97", ratio >= 0.97)]
    # Only a client that reads each reply leaves the server time to evaluate it for the next turn;
    # the figures of one that asks at once are in the JSON, beside these.
    for turns in (chat for chat in api["multi_turn"] if chat["client"] == "reading"):
        last = max(int(key.split("_")[1]) for key in turns if key.startswith("turn_") and key.endswith("_seconds"))
        mode = "thinking" if turns["thinking"] else "not thinking"
        name = f"{model} API time to first token, turn {last} vs turn 1 ({mode})"
        checks.append(TargetCheck(name, f"{turns['ratio']:.2f}×", "≤ 1.3×", turns["ratio"] <= 1.3))
    worst = api["disconnect"]["max_seconds"]
    checks.append(TargetCheck(f"{model} API: a client that disconnects frees the engine", f"{worst * 1000:.0f} ms", "≤ 200 ms", worst <= 0.2))
    return checks
