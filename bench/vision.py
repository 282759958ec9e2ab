"""Images: what reading a picture costs, and that a follow-up does not pay it again.

With a model and a projector (the benchmark's are shaped like Qwen3.5-0.8B's), for a 640×480
picture at the default detail, each round uses a new picture (so nothing is reused by accident):

* **encode**: the time between libmtmd's first and last layer of the vision tower;
* **turn 1**: time to first token of a question showing the picture (encode + evaluate);
* **turn 2 vs text**: time to first token of a follow-up in that chat, against the same
  follow-up in a text-only chat whose first question is as long in tokens as the picture and
  its question together. Only the new message should be evaluated in both: target ≤ 1.2×;
* **memory**: in fresh processes, the growth of the resident memory from before loading to after
  one answered question, with the picture (model and projector) minus without it (the model
  alone, a text question), against what the fit estimate counts for image support at that
  picture's token count (target within ±10 %).

Run alone: ``python -m bench.vision [--model FILE --projector FILE]``.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
from PIL import Image, ImageDraw

from app.core.domain.generation import IMAGE_DETAIL_TOKENS, ChatImage, ChatMessage, LoadSettings, SamplingSettings
from app.core.engines.llama.llama_engine import LlamaEngine
from app.core.engines.llama.self_test_projector import QWEN35_0_8B, write_tiny_qwen35_projector
from app.core.images.image_intake import prepare_image
from app.core.models.fit_estimate import ModelShape, VisionProjector, estimate_memory

SAMPLING = SamplingSettings(max_tokens=1, seed=0)
FIRST_QUESTION = "What is in this picture? Describe it."
FOLLOW_UP = "Which colour is the disc, and where is it?"


def ensure_projector(cache: Path) -> Path:
    """The 0.8B-shaped projector (random weights, ~200 MB), written once into ``cache``."""
    path = cache / "mmproj-qwen35-0.8b-shaped-f16.gguf"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        write_tiny_qwen35_projector(partial, shape=QWEN35_0_8B)
        partial.replace(path)
    return path


def _picture(seed: int, width: int = 640, height: int = 480) -> ChatImage:
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse((80 + seed, 60, 300, 280), fill=(200, (seed * 37) % 256, 40))
    draw.rectangle((340, 200, 600, 440), fill=(30, 90, 200))
    output = io.BytesIO()
    image.save(output, "JPEG", quality=90)
    prepared = prepare_image(output.getvalue())
    return ChatImage(prepared.sha256, prepared.data)


def _turn(engine: LlamaEngine, messages, on_image_progress=None):
    return engine.generate(
        messages,
        enable_thinking=False,
        sampling=SAMPLING,
        cancel=threading.Event(),
        on_text=lambda reasoning, answer: None,
        image_token_limit=IMAGE_DETAIL_TOKENS["standard"],
        on_image_progress=on_image_progress,
    )


def _prepare(engine: LlamaEngine, messages) -> None:
    engine.prepare_next_turn(
        messages, enable_thinking=False, sampling=SAMPLING, cancel=threading.Event(),
        image_token_limit=IMAGE_DETAIL_TOKENS["standard"],
    )


REPLY = "A gradient with a disc and a blue square."


def _follow_up(engine: LlamaEngine, first: ChatMessage, on_image_progress=None):
    """Turn 1 and its follow-up (evaluated ahead while the user would read, as the app does)."""
    one = _turn(engine, [first], on_image_progress)
    conversation = [first, ChatMessage("assistant", REPLY)]
    _prepare(engine, conversation)
    return one, _turn(engine, [*conversation, ChatMessage("user", FOLLOW_UP)])


def _padding_question(engine: LlamaEngine, target_tokens: int) -> str:
    """A text question as long in tokens as the picture and its question."""
    words = "the picture shows a soft grey gradient with shapes on it".split()
    text, index = FIRST_QUESTION, 0
    while len(engine.tokenize(text)) < target_tokens:
        text += " " + words[index % len(words)]
        index += 1
    return text


def measure(model: Path, projector: Path, *, rounds: int, context: int = 4096) -> dict:
    """The figures above."""
    engine = LlamaEngine()
    engine.load(model, LoadSettings(context_size=context, projector=projector))
    encode_seconds, first_turns, image_follow_ups, text_follow_ups, image_tokens = [], [], [], [], []
    try:
        for round_number in range(rounds):
            stamps: list[float] = []

            def on_progress(number: int, count: int, fraction: float) -> None:
                if fraction in (0.0, 1.0):
                    stamps.append(time.perf_counter())

            picture = _picture(round_number)
            one, two = _follow_up(engine, ChatMessage("user", FIRST_QUESTION, images=(picture,)), on_progress)
            encode_seconds.append(stamps[-1] - stamps[0])
            first_turns.append(one.stats.time_to_first_token_s)
            image_tokens.append(one.stats.prompt_tokens)
            image_follow_ups.append(two.stats.time_to_first_token_s)

            padded = f"{_padding_question(engine, one.stats.prompt_tokens - 20)} ({round_number})"
            _, text_two = _follow_up(engine, ChatMessage("user", padded))
            text_follow_ups.append(text_two.stats.time_to_first_token_s)
    finally:
        engine.unload()
    ratio = statistics.median(image / text for image, text in zip(image_follow_ups, text_follow_ups))
    with_picture = _memory_growth(model, projector, context)
    text_only = _memory_growth(model, None, context)
    estimate = estimate_memory(
        ModelShape.from_gguf(model), model.stat().st_size, context,
        batch_size=256, projector=VisionProjector.from_gguf(projector), image_tokens=with_picture["image_tokens"],
    )
    measured = with_picture["growth_bytes"] - text_only["growth_bytes"]
    return {
        "picture": "640×480 JPEG",
        "image_token_limit": IMAGE_DETAIL_TOKENS["standard"],
        "image_tokens": with_picture["image_tokens"],
        "prompt_tokens_turn_1": statistics.median(image_tokens),
        "encode_seconds": statistics.median(encode_seconds),
        "turn_1_time_to_first_token_s": statistics.median(first_turns),
        "turn_2_time_to_first_token_s": statistics.median(image_follow_ups),
        "text_turn_2_time_to_first_token_s": statistics.median(text_follow_ups),
        "turn_2_vs_text_ratio": ratio,
        "turn_2_vs_text_ratios": [image / text for image, text in zip(image_follow_ups, text_follow_ups)],
        "projector_file_bytes": projector.stat().st_size,
        "image_support_measured_bytes": measured,
        "image_support_estimated_bytes": estimate.image_support,
        "memory_vs_estimate": measured / estimate.image_support,
        "whole_measured_bytes": with_picture["growth_bytes"],
        "whole_estimated_bytes": estimate.total,
    }


def _memory_growth(model: Path, projector: Path | None, context: int) -> dict:
    """Resident-memory growth of a fresh process that loads and answers one question."""
    command = [sys.executable, "-m", "bench.vision", "--memory-probe", str(model), str(projector or ""), str(context)]
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=600).stdout
    return json.loads(output.strip().splitlines()[-1])


def _memory_probe(model: Path, projector: Path | None, context: int) -> dict:
    before = psutil.Process().memory_info().rss
    engine = LlamaEngine()
    engine.load(model, LoadSettings(context_size=context, projector=projector))
    images = (_picture(0),) if projector is not None else ()
    result = _turn(engine, [ChatMessage("user", FIRST_QUESTION, images=images)])
    growth = psutil.Process().memory_info().rss - before
    text_tokens = len(engine.tokenize(engine.render_prompt([ChatMessage("user", FIRST_QUESTION)], enable_thinking=False)))
    engine.unload()
    return {"growth_bytes": growth, "image_tokens": result.stats.prompt_tokens - text_tokens - 2}


def main(argv: list[str] | None = None) -> int:
    from bench import make_models

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="default: the cached 0.8B-shaped Q4_K_M model")
    parser.add_argument("--projector", type=Path, help="default: the cached 0.8B-shaped projector")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-probe", nargs=3, metavar=("MODEL", "PROJECTOR", "CONTEXT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        model, projector, context = args.memory_probe
        print(json.dumps(_memory_probe(Path(model), Path(projector) if projector else None, int(context))))
        return 0
    cache = make_models.default_cache_dir()
    model = args.model or make_models.ensure_model("0.8B", "Q4_K_M", cache)
    projector = args.projector or ensure_projector(cache)
    print(json.dumps(measure(model, projector, rounds=args.rounds), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
