"""The memory estimate against what real llama.cpp takes: generated models and projectors, loaded in fresh processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.engines.llama import self_test_model, self_test_projector
from app.core.models.fit_estimate import MIB, ModelShape, VisionProjector, estimate_memory
from tests.core.test_fit_estimate import write_qwen35_gguf

REPOSITORY = Path(__file__).resolve().parents[2]
TOLERANCE = 0.15

# Loads a model with the engine, evaluates a prompt longer than one batch (so the whole compute
# buffer is used) and generates two tokens; prints the growth of the resident set over all that.
# The baseline is taken after importing the engine: the app has llama_cpp loaded before it
# measures the available memory, and the estimate does not include the import.
_MEASURE = """
import json, sys, threading
from pathlib import Path
import psutil
from app.core.domain.generation import ChatMessage, LoadSettings, SamplingSettings
from app.core.engines.llama.llama_engine import LlamaEngine

path, context, batch = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
process = psutil.Process()
before = process.memory_info().rss
engine = LlamaEngine()
engine.load(path, LoadSettings(context_size=context, batch_size=batch, gpu_layers=0))
result = engine.generate(
    [ChatMessage("user", "a" * batch)],
    enable_thinking=False,
    sampling=SamplingSettings(max_tokens=2, seed=1),
    cancel=threading.Event(),
    on_text=lambda reasoning, answer: None,
)
print(json.dumps({"growth": process.memory_info().rss - before, "prompt_tokens": result.stats.prompt_tokens}))
"""

# Two shapes unlike each other, F16 weights (no repacking) of 60-80 MB each.
MODELS = {
    "0.8B-wide, 2 layers": {
        "sizes": {
            "hidden": 1024, "feed_forward": 3584, "layers": 2, "full_attention_interval": 2,
            "heads": 8, "kv_heads": 2, "head_dim": 256, "linear_key_heads": 16, "linear_value_heads": 16,
        },
        "context": 8192,
        "batch": 512,
    },
    "narrow, 4 layers": {
        "sizes": {
            "hidden": 768, "feed_forward": 1536, "layers": 4,
            "heads": 8, "kv_heads": 4, "head_dim": 128, "linear_key_heads": 8, "linear_value_heads": 16,
        },
        "context": 16384,
        "batch": 256,
    },
}


@pytest.mark.parametrize("name", MODELS)
def test_the_estimate_is_within_15_percent_of_the_memory_a_real_load_takes(tmp_path: Path, name: str) -> None:
    model = MODELS[name]
    path = write_qwen35_gguf(tmp_path / "model.gguf", with_data=True, **model["sizes"])
    context, batch = model["context"], model["batch"]

    measured = _measure_in_a_fresh_process(_MEASURE, path, context, batch)
    estimate = estimate_memory(ModelShape.from_gguf(path), path.stat().st_size, context, batch_size=batch)

    figures = (
        f"{name}: measured {measured['growth'] / MIB:.1f} MiB, estimated {estimate.total / MIB:.1f} MiB "
        f"(weights {estimate.weights / MIB:.1f}, KV {estimate.kv_cache / MIB:.1f}, "
        f"recurrent {estimate.recurrent_state / MIB:.1f}, compute {estimate.compute_buffers / MIB:.1f}, "
        f"runtime {estimate.runtime_overhead / MIB:.1f})"
    )
    assert measured["prompt_tokens"] > batch, figures
    assert abs(estimate.total - measured["growth"]) <= TOLERANCE * measured["growth"], figures


# ---------------------------------------------------------------------------- vision projectors

PROJECTOR_TOLERANCE = 0.10  # the benchmark's target for image support

# Loads the tiny model (with a projector, or without: "-") and answers one question (showing a
# picture of this size, with a projector), in a fresh process; prints the resident set's growth.
# What image support costs is the growth with it less the growth without.
_MEASURE_IMAGES = """
import json, sys, threading
from pathlib import Path
import psutil
from app.core.domain.generation import IMAGE_DETAIL_TOKENS, ChatMessage, LoadSettings, SamplingSettings
from app.core.engines.llama.llama_engine import LlamaEngine
from tests.vision_fixtures import chat_image

model, projector = Path(sys.argv[1]), None if sys.argv[2] == "-" else Path(sys.argv[2])
width, height = int(sys.argv[3]), int(sys.argv[4])
images = (chat_image(width, height),) if projector else ()
process = psutil.Process()
before = process.memory_info().rss
engine = LlamaEngine()
engine.load(model, LoadSettings(context_size=4096, gpu_layers=0, projector=projector))
result = engine.generate(
    [ChatMessage("user", "What is in it?", images=images)],
    enable_thinking=False,
    sampling=SamplingSettings(max_tokens=1, seed=1),
    cancel=threading.Event(),
    on_text=lambda reasoning, answer: None,
    image_token_limit=IMAGE_DETAIL_TOKENS["standard"],
)
print(json.dumps({"growth": process.memory_info().rss - before, "prompt_tokens": result.stats.prompt_tokens}))
"""

# Towers as wide as Qwen3.5-0.8B's and 4B's (two of their layers: layers reuse the compute buffer).
PROJECTORS = {
    "0.8B-wide": self_test_projector.ProjectorShape(768, 12, 3072, 2, self_test_model.EMBEDDING_LENGTH, 768, half=True),
    "4B-wide": self_test_projector.ProjectorShape(1024, 16, 4096, 2, self_test_model.EMBEDDING_LENGTH, 768, half=True),
}
PICTURES = {"640×480": (640, 480), "1600×1200": (1600, 1200)}  # about 300 and 1,000 image tokens


def _measure_images(model: Path, projector: Path | None, picture: tuple[int, int] = (0, 0)) -> dict:
    return _measure_in_a_fresh_process(_MEASURE_IMAGES, model, projector or "-", *picture)


def _measure_in_a_fresh_process(script: str, *arguments) -> dict:
    """What ``script`` prints as its last line (JSON), run in a new interpreter: memory figures
    of a process that did nothing else."""
    completed = subprocess.run(
        [sys.executable, "-c", script, *map(str, arguments)],
        cwd=REPOSITORY,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def text_only(tiny_model: Path) -> dict:
    return _measure_images(tiny_model, None)


@pytest.mark.parametrize("picture", PICTURES)
@pytest.mark.parametrize("name", PROJECTORS)
def test_the_image_support_estimate_is_within_10_percent_of_what_libmtmd_takes(
    tmp_path: Path, tiny_model: Path, text_only: dict, name: str, picture: str
) -> None:
    projector = self_test_projector.write_tiny_qwen35_projector(tmp_path / "mmproj-F16.gguf", shape=PROJECTORS[name])
    with_images = _measure_images(tiny_model, projector, PICTURES[picture])
    measured = with_images["growth"] - text_only["growth"]
    image_tokens = with_images["prompt_tokens"] - text_only["prompt_tokens"]
    vision = VisionProjector.from_gguf(projector)
    estimate = estimate_memory(
        ModelShape.from_gguf(tiny_model), tiny_model.stat().st_size, 4096, projector=vision, image_tokens=image_tokens
    )

    figures = (
        f"{name}, {picture} ({image_tokens} image tokens): measured {measured / MIB:.1f} MiB, estimated "
        f"{estimate.image_support / MIB:.1f} MiB (weights {estimate.projector_weights / MIB:.1f}, "
        f"encoder {estimate.image_encoder / MIB:.1f})"
    )
    assert image_tokens > 250, figures
    assert abs(estimate.image_support - measured) <= PROJECTOR_TOLERANCE * measured, figures
