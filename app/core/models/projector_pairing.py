"""Which vision projector (``mmproj-*.gguf``) goes with a model file.

Every published Qwen3.5 GGUF repository ships its projector beside the quantized models, under a
name that does not say which model it belongs to (``mmproj-F16.gguf``). So a projector is paired
by what it is made for: the one the user chose, else one in the same folder whose projection size
equals the model's embedding length. A projector of another size is never paired: libmtmd would
feed its output into a model of another width.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from app.core.domain.gguf_header import GGUFHeaderError, read_gguf_header
from app.core.models.local_models import is_projector


def find_projector(model: Path, paired: Mapping[str, str] | None = None) -> Path | None:
    """The projector to load with ``model``: the one ``paired`` names for it (model path →
    projector path, the user's choice) if that file still exists, else the one beside it made
    for its width; None when it has none."""
    model = Path(model)
    chosen = (paired or {}).get(str(model))
    if chosen and Path(chosen).is_file():
        return Path(chosen)
    width = _model_width(model)
    if width is None:
        return None
    try:
        candidates = sorted(path for path in model.parent.glob("*.gguf") if is_projector(path) and path.is_file())
    except OSError:
        return None
    return next((path for path in candidates if _projection_width(path) == width), None)


def _model_width(model: Path) -> int | None:
    try:
        header = read_gguf_header(model)
    except (GGUFHeaderError, OSError):
        return None
    width = header.metadata.get(f"{header.architecture}.embedding_length")
    return width if isinstance(width, int) else None


def _projection_width(projector: Path) -> int | None:
    try:
        header = read_gguf_header(projector)
    except (GGUFHeaderError, OSError):
        return None
    width = header.metadata.get("clip.vision.projection_dim")
    return width if header.architecture == "clip" and isinstance(width, int) else None
