"""Which vision projector (``mmproj-*.gguf``) a model loads with, so that it reads images.

A projector is made for one text model: its ``clip.vision.projection_dim`` is that model's width
(``<architecture>.embedding_length``), and libmtmd feeds a projector of another width into the
model regardless. So a model's projector is, in this order:

1. the one the user paired with it (``Settings.projector_pairings``, model path → projector
   path), or none at all when the user chose text only (``TEXT_ONLY``);
2. its catalog download's own: the app keeps each Hub repository in a folder of its own
   (``<owner>/<repository>/``), so the ``mmproj-F16.gguf`` that every Qwen3.5 repository names
   alike lies beside the model of its size and never beside another size's;
3. another ``mmproj*.gguf`` in the model's folder (a Hugging Face cache snapshot, a folder the
   user filled), the first by name that fits.

Every candidate must be a projector (architecture ``clip``) whose projection size equals the
model's width; one that does not fit is never returned, and a pairing whose file is gone or no
longer fits counts as no pairing. The engine checks the chosen file in full before libmtmd sees it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from app.core.domain.gguf_header import GGUFHeaderError, read_gguf_header
from app.core.domain.model_files import gguf_file_problem
from app.core.models.local_models import is_projector
from app.core.models.model_catalog import PROJECTOR_FILENAME, QUANTIZATIONS, SIZES, filename_of, repository_of

TEXT_ONLY = ""  # paired with this, a model loads without a projector even when one is beside it


def pairing_key(model_path: Path) -> str:
    """How ``Settings.projector_pairings`` names a model."""
    return str(Path(model_path).absolute())


def find_projector(
    model_path: Path, paired: Mapping[str, str] | None = None, *, model_width: int | None = None
) -> Path | None:
    """The projector ``model_path`` loads with (see the module's docstring), None: text only.
    ``paired`` is ``Settings.projector_pairings``.

    Reads the candidates' headers (a few kilobytes each) and, when there is a candidate and
    ``model_width`` (its embedding length) is not given, the model's (a quarter of a second for
    a real model's vocabulary)."""
    model_path = Path(model_path)
    choice = (paired or {}).get(pairing_key(model_path))
    if choice == TEXT_ONLY:
        return None
    candidates = _candidates(model_path, Path(choice) if isinstance(choice, str) else None)
    first = next(candidates, None)
    if first is None:
        return None
    width = model_width or _model_width(model_path)
    if width is None:
        return None
    for candidate in (first, *candidates):
        if _fit_problem(candidate, width) is None:
            return candidate
    return None


def projector_problem(model_path: Path, projector_path: Path, *, model_width: int | None = None) -> str | None:
    """Why ``projector_path`` cannot give ``model_path`` image support, as a sentence for the
    user; None if it can. ``model_width`` as for :func:`find_projector`."""
    width = model_width or _model_width(Path(model_path))
    if width is None:
        return f"“{Path(model_path).name}” is not a model whose width can be read, so no projector can be paired with it."
    return _fit_problem(Path(projector_path), width)


def catalog_projector_path(model_path: Path) -> Path | None:
    """Where the projector of a catalog download of this model is kept (whether or not it is
    there yet); None for a file that is no catalog download."""
    model_path = Path(model_path)
    for size_label in SIZES:
        folder = repository_of(size_label).split("/")[1]
        names = {filename_of(size_label, quantization) for quantization in QUANTIZATIONS}
        if model_path.parent.name == folder and model_path.name in names:
            return model_path.parent / PROJECTOR_FILENAME
    return None


def projector_left_unused(model_path: Path, remaining_models: Iterable[Path]) -> Path | None:
    """The catalog projector that deleting ``model_path`` leaves without a model: None when it is
    not there, or another of ``remaining_models`` (another quantization of the same size) still
    lies beside it."""
    projector = catalog_projector_path(model_path)
    if projector is None or not projector.is_file():
        return None
    if any(Path(other).parent == projector.parent and Path(other) != Path(model_path) for other in remaining_models):
        return None
    return projector


def _candidates(model_path: Path, paired: Path | None) -> Iterator[Path]:
    """The pairing, the catalog's own, then the folder's projectors by name, each once."""
    seen: set[Path] = set()
    catalog_own = catalog_projector_path(model_path)
    try:
        beside = sorted(
            entry
            for entry in model_path.parent.iterdir()
            if is_projector(entry) and entry.suffix.lower() == ".gguf" and entry != model_path
        )
    except OSError:
        beside = []
    for candidate in (paired, catalog_own, *beside):
        if candidate is not None and candidate not in seen and candidate.exists():
            seen.add(candidate)
            yield candidate


def _model_width(model_path: Path) -> int | None:
    if gguf_file_problem(model_path) is not None:  # never opens a pipe or a device, which could block
        return None
    try:
        header = read_gguf_header(model_path)
    except GGUFHeaderError:
        return None
    width = header.metadata.get(f"{header.architecture}.embedding_length")
    return width if isinstance(width, int) and not isinstance(width, bool) and width > 0 else None


def _fit_problem(projector_path: Path, model_width: int) -> str | None:
    problem = gguf_file_problem(projector_path)
    if problem is not None:
        return problem
    try:
        header = read_gguf_header(projector_path)
    except GGUFHeaderError as error:
        return str(error)
    if header.architecture != "clip":
        return f"“{projector_path.name}” is not a vision projector (mmproj) file."
    projection = header.metadata.get("clip.vision.projection_dim")
    if projection != model_width:
        return (
            f"“{projector_path.name}” is made for a model {projection:,} wide, and this model is "
            f"{model_width:,} wide: choose the projector of the same model size."
            if isinstance(projection, int)
            else f"“{projector_path.name}” does not say which model it is made for."
        )
    return None
