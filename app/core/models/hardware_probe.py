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
from app.core.models.speed_calibration import SpeedCalibration

HardwareProbe = Callable[[Path | None, SpeedCalibration | None], HardwareInfo]
"""Measures the computer now: the path is the folder whose free disk space to report, the
calibration what was measured of its decoding speed so far."""


def probe_hardware(
    models_dir: Path | None, accelerators: AcceleratorReport, speed: SpeedCalibration | None = None
) -> HardwareInfo:
    """This computer now; ``models_dir`` is the folder whose free disk space to report, and
    ``speed`` what was measured of its decoding speed so far (None: nothing yet)."""
    memory = psutil.virtual_memory()
    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    return HardwareInfo(
        total_ram_bytes=memory.total,
        available_ram_bytes=memory.available,
        physical_cores=physical,
        logical_cores=logical,
        cpu_features=accelerators.cpu_features,
        backend=accelerators.backend,
        gpus=accelerators.gpus,
        models_dir_free_bytes=_free_disk_bytes(models_dir),
        decode_bytes_per_second=speed.bytes_per_second if speed else None,
        decode_speed_source=speed.source if speed else "",
    )


def _free_disk_bytes(folder: Path | None) -> int | None:
    if folder is None:
        return None
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def runs_on_battery() -> bool:
    """Whether the computer runs on its battery now (unplugged); False without a battery or
    when the system does not say."""
    try:
        battery = psutil.sensors_battery()
    except (OSError, RuntimeError, NotImplementedError):
        return False
    return battery is not None and battery.power_plugged is False
