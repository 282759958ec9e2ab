"""How fast this computer generates: measured, so "runs well" means the same here as it will feel.

Generating a token reads every weight once, so the speed is the memory bandwidth the model
gets divided by its size. The best measure is the app's own replies (tokens a second times the
model's size); before there is one, a memory-bandwidth test stands in (a few tenths of a second,
run once, off the start-up path, and remembered).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy

# Share of a parallel copy's bandwidth (bytes read plus written) that llama.cpp's CPU decoding
# reaches, measured on this project's 2-core machine: the copy ran at 26 GB/s, Qwen3.5 0.8B and
# 2B Q4_K_M decoded at 29.5 and 12 tokens a second, 15.5 GB/s of weights read.
COPY_TO_DECODE_EFFICIENCY = 0.6
_PROBE_BYTES_PER_THREAD = 64 * 1024 * 1024  # well beyond any CPU cache
_PROBE_ROUNDS = 4
REPLY_WEIGHT = 0.5  # how much one reply moves the calibration (replies vary with the load)
MINIMUM_MEASURED_TOKENS = 32  # shorter replies are dominated by their start
# Smaller models are limited by computing, not by reading memory, so their speed says nothing
# of a larger one's (the smallest Qwen3.5 file is 0.5 GB).
MINIMUM_MEASURED_WEIGHTS_BYTES = 256 * 1024 * 1024


FROM_REPLIES = "your replies"
FROM_MEMORY_TEST = "a quick memory test"


@dataclass(frozen=True)
class SpeedCalibration:
    bytes_per_second: float  # of weights read while generating
    source: str  # FROM_REPLIES or FROM_MEMORY_TEST, for the user


def probe_decode_bandwidth(threads: int) -> float:
    """Bytes a second CPU decoding can read here, estimated from a parallel memory copy on
    ``threads`` threads (numpy copies without holding the GIL). Slow enough to keep off the
    GUI thread."""
    threads = max(1, threads)
    sources = [numpy.ones(_PROBE_BYTES_PER_THREAD // 8) for _ in range(threads)]
    targets = [numpy.empty_like(source) for source in sources]
    for source, target in zip(sources, targets):
        numpy.copyto(target, source)  # touch every page first: only copying is timed
    start = threading.Barrier(threads + 1)

    def copy(index: int) -> None:
        start.wait()
        for _ in range(_PROBE_ROUNDS):
            numpy.copyto(targets[index], sources[index])

    workers = [threading.Thread(target=copy, args=(index,), name="memory-probe") for index in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - began
    copied = threads * _PROBE_ROUNDS * _PROBE_BYTES_PER_THREAD * 2  # read and written
    return COPY_TO_DECODE_EFFICIENCY * copied / seconds


def calibrate_from_reply(previous: float, tokens_per_second: float, generated_tokens: int, weights_bytes: int) -> float:
    """The calibration after a reply: ``previous`` (0: none yet) moved towards what it showed.
    Replies too short, or of models too small, to measure leave it as it was."""
    if generated_tokens < MINIMUM_MEASURED_TOKENS or tokens_per_second <= 0 or weights_bytes < MINIMUM_MEASURED_WEIGHTS_BYTES:
        return previous
    measured = tokens_per_second * weights_bytes
    return measured if not previous else previous + REPLY_WEIGHT * (measured - previous)
