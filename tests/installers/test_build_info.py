"""Build facts: what the loaded llama.cpp reports, and how a bundle's promise is checked against it."""

from __future__ import annotations

from app.core.engines.llama.build_info import (
    BuildInfo,
    build_info,
    build_mismatches,
    compiled_backend,
    compiled_cpu_features,
)


def test_a_source_install_reports_the_llama_cpp_it_compiled() -> None:
    info = build_info()  # the source tree carries no build_info.json

    assert info.variant == "source"
    assert info.backend == compiled_backend()
    assert build_mismatches(info) == []
    assert info.describe().startswith(f"{info.backend} backend, compiled for the CPU it was built on")


def test_a_promise_the_build_does_not_keep_is_reported_in_full() -> None:
    compiled = compiled_cpu_features()
    promised = BuildInfo(
        variant="linux-cuda",
        backend="CUDA",
        cpu_baseline="an imaginary baseline",
        # One instruction set no build has, and all this one has but the first.
        cpu_features=("IMAGINARY_ISA", *sorted(compiled)[1:]),
    )

    problems = build_mismatches(promised)

    assert problems == [
        f"llama.cpp was compiled for {compiled_backend()}, not CUDA",
        "instruction sets of the baseline not compiled in: IMAGINARY_ISA",
        f"instruction sets beyond the baseline compiled in: {min(compiled)}",
    ]
