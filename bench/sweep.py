"""Threads, batch size and flash attention for raw llama.cpp: the data behind the engine's defaults.

``python -m bench.sweep`` measures, on the 0.8B-shaped Q4_K_M model, prompt processing (a
512-token prompt), decoding (single tokens after it) and the compute buffer each setting costs,
one setting at a time in this process only (no engine, one computing thread; see
``bench/engine_path.py`` on why that matters). Settings are varied one at a time around the
engine's defaults, and every setting is measured ``--repeats`` times in turn, best kept.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import asdict, replace
from pathlib import Path

import llama_cpp
import psutil

from app.core.domain.generation import default_batch_size
from app.core.engines.llama.llama_runtime import compiled_backend, default_thread_count
from bench import machine, make_models, report
from bench.raw_reference import ComputeBufferLog, ContextSettings, RawLlama
from bench.speed import words_with_tokens

PROMPT_TOKENS = 512
DECODED_TOKENS = 32
CONTEXT_SIZE = 8192
FLASH_ATTENTION = {
    llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO: "auto",
    llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED: "off",
    llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED: "on",
}


def settings_to_try() -> list[ContextSettings]:
    base = ContextSettings(CONTEXT_SIZE, default_thread_count(), default_batch_size(compiled_backend()))
    thread_counts = sorted({1, default_thread_count(), psutil.cpu_count(logical=True) or 1})
    settings = [replace(base, threads=threads) for threads in thread_counts]
    settings += [replace(base, batch_size=batch) for batch in (64, 128, 256, 512, 1024) if batch != base.batch_size]
    settings += [replace(base, flash_attention=mode) for mode in FLASH_ATTENTION if mode != base.flash_attention]
    return settings


def measure(path: Path, settings: ContextSettings, prompt: list[int], log: ComputeBufferLog) -> dict:
    log.mebibytes.clear()
    with RawLlama(path, settings) as raw:
        prompt_seconds = raw.evaluate(prompt)
        decode_seconds = raw.decode_one_at_a_time(DECODED_TOKENS, prompt[-1])
    return {
        "prompt_tokens_per_second": len(prompt) / prompt_seconds,
        "decode_tokens_per_second": DECODED_TOKENS / decode_seconds,
        "compute_buffer_mib": sum(log.mebibytes.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="0.8B:Q4_K_M", help="SIZE:QUANT (default: %(default)s)")
    parser.add_argument("--cache", type=Path, default=make_models.default_cache_dir())
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    size, _, quantization = args.model.partition(":")
    path = make_models.ensure_model(size, quantization, args.cache)
    log = ComputeBufferLog()
    with RawLlama(path, ContextSettings(CONTEXT_SIZE, 1, 512)) as raw:
        prompt = raw.tokenize(words_with_tokens(raw.tokenize, PROMPT_TOKENS, random.Random(0)))

    candidates = settings_to_try()
    best: dict[ContextSettings, dict] = {}
    for _ in range(args.repeats):
        for settings in candidates:
            machine.wait_until_quiet(60)
            figures = measure(path, settings, prompt, log)
            kept = best.setdefault(settings, figures)
            for key in ("prompt_tokens_per_second", "decode_tokens_per_second"):
                kept[key] = max(kept[key], figures[key])
    rows = [
        [
            str(settings.threads),
            str(settings.batch_size),
            FLASH_ATTENTION[settings.flash_attention],
            f"{figures['prompt_tokens_per_second']:.1f}",
            f"{figures['decode_tokens_per_second']:.1f}",
            f"{figures['compute_buffer_mib']:.0f} MiB",
        ]
        for settings, figures in best.items()
    ]
    print(report.format_table(rows, ["Threads", "Batch", "Flash attention", "Prompt tok/s", "Decode tok/s", "Compute buffer"]))
    if args.json:
        entries = [{**asdict(settings), **figures} for settings, figures in best.items()]
        args.json.write_text(json.dumps({"machine": machine.describe(), "model": args.model, "settings": entries}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
