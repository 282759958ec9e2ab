"""What this computer offers for running a model: memory, CPU, the runtime's backend and GPUs, disk.

Cheap to call: it loads no model. The backend, instruction sets and GPUs come from the inference
runtime's own report (``AcceleratorReport``), so the numbers match what a load will see; this
module adds what the operating system says, and knows nothing of llama.cpp itself.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import psutil

from app.core.domain.hardware import AcceleratorReport, HardwareInfo
from app.core.models.speed_calibration import probe_decode_bandwidth

HardwareProbe = Callable[[Path | None], HardwareInfo]
"""Measures the computer now; the path is the folder whose free disk space to report."""


def probe_hardware(
    models_dir: Path | None, accelerators: AcceleratorReport, measured_decode_bytes_per_second: float = 0.0
) -> HardwareInfo:
    """This computer now; ``models_dir`` is the folder whose free disk space to report, and
    ``measured_decode_bytes_per_second`` the speed calibration from earlier replies (0: none)."""
    memory = psutil.virtual_memory()
    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    if measured_decode_bytes_per_second:
        bandwidth, source = measured_decode_bytes_per_second, "your replies"
    elif not accelerators.gpus:
        bandwidth, source = probe_decode_bandwidth(physical), "a quick memory test"
    else:
        bandwidth, source = None, ""  # a RAM test says nothing of a GPU's memory
    return HardwareInfo(
        total_ram_bytes=memory.total,
        available_ram_bytes=memory.available,
        physical_cores=physical,
        logical_cores=logical,
        cpu_features=accelerators.cpu_features,
        backend=accelerators.backend,
        gpus=accelerators.gpus,
        models_dir_free_bytes=_free_disk_bytes(models_dir),
        decode_bytes_per_second=bandwidth,
        decode_speed_source=source,
    )


def _free_disk_bytes(folder: Path | None) -> int | None:
    if folder is None:
        return None
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None
