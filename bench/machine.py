"""What the benchmark ran on, and how busy the machine was: shared machines make timings noisy.

Every measurement waits (up to a limit) until the other processes leave the CPUs nearly idle,
and records how busy they were, so a report says which figures were taken under load.
"""

from __future__ import annotations

import os
import platform
import time
from importlib.metadata import version

import llama_cpp
import psutil

from app.core.engines.llama.llama_runtime import compiled_backend

IDLE_PERCENT = 15.0  # whole-machine CPU use below which a measurement may start
SAMPLE_S = 0.5


def describe() -> dict:
    """The machine, the software versions and llama.cpp's build, for the report."""
    memory = psutil.virtual_memory()
    return {
        "cpu": _cpu_model(),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "memory_bytes": memory.total,
        "os": platform.platform(),
        "python": platform.python_version(),
        "llama_cpp_python": version("llama_cpp_python"),
        "pyside6": version("PySide6_Essentials"),
        "llama_cpp_backend": compiled_backend(),
        "llama_cpp_system_info": llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip(),
    }


def busy_percent() -> float:
    """Whole-machine CPU use over a short sample, while this process waits (so: by others)."""
    return psutil.cpu_percent(interval=SAMPLE_S)


def wait_until_quiet(max_wait_s: float) -> float:
    """Waits until the other processes use under ``IDLE_PERCENT`` of the CPUs, at most
    ``max_wait_s``; returns the last reading, which the report keeps with the measurement.
    With no time to wait it only reads the use since the previous reading."""
    if max_wait_s <= 0:
        return psutil.cpu_percent(interval=None)
    deadline = time.monotonic() + max_wait_s
    busy = busy_percent()
    while busy >= IDLE_PERCENT and time.monotonic() < deadline:
        busy = busy_percent()
    return busy


def load_average() -> float:
    return os.getloadavg()[0]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
