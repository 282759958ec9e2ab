"""The Qwen3.5 catalog: what is offered, what is known offline, and what a refresh pins."""

from __future__ import annotations

import json
from pathlib import Path

from app.core.models.model_catalog import ModelCatalog


def test_every_size_is_offered_in_every_common_quantization(tmp_path: Path) -> None:
    catalog = ModelCatalog(tmp_path / "cache.json")
    names = {(entry.size_label, entry.quantization) for entry in catalog.entries()}
    assert names == {(size, quantization) for size in ("0.8B", "2B", "4B", "9B") for quantization in ("Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0")}
    entry = catalog.entry("4B", "Q4_K_M")
    assert (entry.model.repo_id, entry.model.filename) == ("unsloth/Qwen3.5-4B-GGUF", "Qwen3.5-4B-Q4_K_M.gguf")
    assert entry.projector is not None and entry.projector.filename == "mmproj-F16.gguf"
    assert entry.display_name == "Qwen3.5 4B · Q4_K_M"
    assert "Recommended" in entry.quality_hint


def test_the_shipped_snapshot_shows_published_sizes_offline(tmp_path: Path) -> None:
    catalog = ModelCatalog(tmp_path / "no-cache-yet.json")
    assert catalog.refreshed_at is None
    exact = catalog.entry("0.8B", "Q4_K_M").model
    assert (exact.size, exact.size_is_estimate) == (532_517_120, False)
    assert catalog.entry("9B", "Q8_0").model.size == 9_527_502_048
    # Sizes not published in the snapshot are estimated from the same model's Q4_K_M file.
    estimate = catalog.entry("2B", "Q8_0").model
    assert estimate.size_is_estimate and 1_280_835_840 < estimate.size < 2 * 1_280_835_840
    # Nothing is pinned until the Hub has been asked: downloads fetch the hash first.
    assert not exact.is_pinned


def test_a_cached_refresh_takes_precedence_over_the_snapshot(tmp_path: Path) -> None:
    cache = tmp_path / "cache.json"
    cache.write_text(
        json.dumps(
            {
                "format": 1,
                "fetched_at": 1_700_000_000.0,
                "repositories": {
                    "unsloth/Qwen3.5-2B-GGUF": {
                        "revision": "a" * 40,
                        "files_complete": True,
                        "files": {"Qwen3.5-2B-Q8_0.gguf": {"size": 2_000_000_000, "sha256": "b" * 64}},
                    }
                },
            }
        )
    )
    catalog = ModelCatalog(cache)
    pinned = catalog.entry("2B", "Q8_0")
    assert pinned.model.is_pinned and pinned.model.size == 2_000_000_000 and not pinned.model.size_is_estimate
    assert pinned.projector is None  # the full listing had no projector
    assert catalog.refreshed_at == 1_700_000_000.0


def test_a_damaged_cache_falls_back_to_the_snapshot(tmp_path: Path) -> None:
    cache = tmp_path / "cache.json"
    cache.write_text("{ not json")
    assert ModelCatalog(cache).entry("0.8B", "Q4_K_M").model.size == 532_517_120
