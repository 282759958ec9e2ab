"""The hardware probe on this very machine, through real psutil and real llama.cpp."""

from __future__ import annotations

import shutil
from pathlib import Path

import llama_cpp
import psutil

from app.core import hardware_probe
from app.core.hardware_probe import probe_hardware
from app.core.inference_engine import compiled_backend

GIB = 1024**3


def test_reports_the_memory_and_cores_of_this_machine() -> None:
    info = probe_hardware()
    assert info.total_ram_bytes == psutil.virtual_memory().total
    assert 0 < info.available_ram_bytes <= info.total_ram_bytes
    assert 1 <= info.physical_cores <= info.logical_cores


def test_lists_the_instruction_sets_llama_cpp_reports_and_no_build_options() -> None:
    report = llama_cpp.llama_print_system_info().decode()
    features = probe_hardware().cpu_features
    assert features
    assert all(f"{feature} = 1" in report for feature in features)
    assert not {"OPENMP", "LLAMAFILE", "REPACK"} & set(features)


def test_a_cpu_build_reports_the_cpu_backend_and_no_gpu() -> None:
    info = probe_hardware()
    assert info.backend == compiled_backend() == "CPU"
    assert info.gpus == ()


def test_finds_llama_cpps_own_cpu_device_through_the_ggml_device_api() -> None:
    # The GPU list is only trustworthy if the binding works: here the CPU device must show up.
    api = hardware_probe._device_api()
    assert api is not None and api.count() >= 1
    assert api.name(api.get(0)) == b"CPU"


def test_a_missing_library_or_symbol_means_no_gpus_rather_than_an_error() -> None:
    assert hardware_probe._llama_cpp_library("no-such-library") is None
    assert hardware_probe._ggml_function("ggml_no_such_function") is None


def test_reports_the_free_disk_space_of_the_models_folder(tmp_path: Path) -> None:
    free = probe_hardware(tmp_path).models_dir_free_bytes
    assert free is not None
    # Other programs write to the same disk meanwhile: compare loosely.
    assert abs(free - shutil.disk_usage(tmp_path).free) < GIB


def test_no_models_folder_means_unknown_disk_space(tmp_path: Path) -> None:
    assert probe_hardware().models_dir_free_bytes is None
    assert probe_hardware(tmp_path / "missing").models_dir_free_bytes is None
