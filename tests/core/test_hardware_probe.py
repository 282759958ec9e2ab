"""The hardware probe on this very machine, through real psutil and real llama.cpp."""

from __future__ import annotations

import shutil
from pathlib import Path

import llama_cpp
import psutil

from app.core.engines.llama import llama_runtime
from app.core.engines.llama.llama_runtime import accelerator_report, compiled_backend
from app.core.models.hardware_probe import probe_hardware
from app.core.models.speed_calibration import FROM_REPLIES, SpeedCalibration, calibrate_from_reply, probe_decode_bandwidth

GIB = 1024**3


def _probe(models_dir: Path | None = None):
    return probe_hardware(models_dir, accelerator_report())


def test_reports_the_memory_and_cores_of_this_machine() -> None:
    info = _probe()
    assert info.total_ram_bytes == psutil.virtual_memory().total
    assert 0 < info.available_ram_bytes <= info.total_ram_bytes
    assert 1 <= info.physical_cores <= info.logical_cores


def test_lists_the_instruction_sets_llama_cpp_reports_and_no_build_options() -> None:
    report = llama_cpp.llama_print_system_info().decode()
    features = _probe().cpu_features
    assert features
    assert all(f"{feature} = 1" in report for feature in features)
    assert not {"OPENMP", "LLAMAFILE", "REPACK"} & set(features)


def test_a_cpu_build_reports_the_cpu_backend_and_no_gpu() -> None:
    info = _probe()
    assert info.backend == compiled_backend() == "CPU"
    assert info.gpus == ()


def test_finds_llama_cpps_own_cpu_device_through_the_ggml_device_api() -> None:
    # The GPU list is only trustworthy if the binding works: here the CPU device must show up.
    api = llama_runtime._device_api()
    assert api is not None and api.count() >= 1
    assert api.name(api.get(0)) == b"CPU"


def test_a_missing_library_or_symbol_means_no_gpus_rather_than_an_error() -> None:
    assert llama_runtime._llama_cpp_library("no-such-library") is None
    assert llama_runtime._ggml_function("ggml_no_such_function") is None


def test_reports_the_free_disk_space_of_the_models_folder(tmp_path: Path) -> None:
    free = _probe(tmp_path).models_dir_free_bytes
    assert free is not None
    # Other programs write to the same disk meanwhile: compare loosely.
    assert abs(free - shutil.disk_usage(tmp_path).free) < GIB


def test_no_models_folder_means_unknown_disk_space(tmp_path: Path) -> None:
    assert _probe().models_dir_free_bytes is None
    assert _probe(tmp_path / "missing").models_dir_free_bytes is None


def test_the_memory_test_measures_a_real_decode_speed_and_the_probe_reports_what_was_measured() -> None:
    measured = probe_decode_bandwidth(2)
    assert 1e9 < measured < 1e12  # a real figure for any computer made this century
    assert _probe().decode_bytes_per_second is None  # nothing measured yet: a rule of thumb is used
    calibrated = probe_hardware(None, accelerator_report(), SpeedCalibration(15.5e9, FROM_REPLIES))
    assert (calibrated.decode_bytes_per_second, calibrated.decode_speed_source) == (15.5e9, "your replies")


def test_a_reply_moves_the_calibration_but_short_replies_and_tiny_models_do_not() -> None:
    model = 1_280_835_840  # Qwen3.5 2B Q4_K_M
    first = calibrate_from_reply(0.0, 12.0, 200, model)
    assert first == 12.0 * model
    assert first < calibrate_from_reply(first, 14.0, 200, model) < 14.0 * model  # halfway, replies vary
    assert calibrate_from_reply(first, 50.0, 10, model) == first  # ten tokens measure only the start
    assert calibrate_from_reply(first, 900.0, 200, 1_000_000) == first  # a 1 MB model is compute-bound
