"""Saved sequence states on disk: a conversation left (another chat opened, the model changed,
the app or ``serve`` closed) resumes later without evaluating its history again.

A state is what llama.cpp holds after evaluating exactly some tokens (and pictures) of one
model in one context configuration; restoring it is only correct for that same model file,
configuration and token prefix, and the bytes are handed to native code. So every file names
its **model key** (the model file's size, modification time and the hash of its first MiB, the
projector's likewise, the context size and the llama.cpp version) and its tokens, carries the
SHA-256 of its state, and is read strictly: a file that is truncated, altered, of another model
or not ours is ignored and removed, never loaded.

Format: ``MAGIC``, the header's length (8 bytes, little-endian), the header (JSON: version,
model key, the tokens, the position after them, the state's size and SHA-256), the state.

Files are written atomically on a writer thread of their own, newest first, so neither the
window nor a reply waits for the disk; the folder is kept under a size budget by removing the
least recently used files (a restore counts as a use).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.core.engines.llama.vision_projector import ImageSpan, PromptItem

logger = logging.getLogger(__name__)

MAGIC = b"QLC-STATE\x00\x01"
VERSION = 1
SUFFIX = ".state"
MAX_HEADER_BYTES = 64 << 20  # a header holds the tokens: ~10 bytes each
MAX_TOKENS = 4 << 20
HEADER_SAMPLE_BYTES = 1 << 20  # of the model file, hashed for its identity
DEFAULT_BUDGET_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class SavedState:
    """One file's header, read and checked: what restoring it gives."""

    path: Path
    tokens: tuple[PromptItem, ...]
    position: int
    size: int
    sha256: str


@dataclass(frozen=True)
class _Pending:
    """A state given to the writer; ``done`` is set once it is written or given up."""

    key: str
    tokens: tuple[PromptItem, ...]
    position: int
    data: memoryview | bytes
    done: threading.Event


def model_key(model: Path, projector: Path | None, context_size: int, runtime: str) -> str:
    """What a state depends on besides its tokens, as one hex string."""
    parts = [_file_identity(model), _file_identity(projector) if projector else "no projector", str(context_size), runtime]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class StateFiles:
    """The folder of saved states; its methods are called from the engine thread, the writing
    happens on a thread of its own."""

    def __init__(self, folder: Path, budget_bytes: Callable[[], int] = lambda: DEFAULT_BUDGET_BYTES) -> None:
        self._folder = folder
        self._budget_bytes = budget_bytes
        self._pending: queue.Queue[_Pending | None] = queue.Queue()
        self._idle = threading.Event()
        self._idle.set()
        self.files_written = 0  # counts up as files are written, so readers know to look again
        self._writer = threading.Thread(target=self._write_queued, name="state-writer", daemon=True)
        self._writer.start()

    @property
    def folder(self) -> Path:
        return self._folder

    # ------------------------------------------------------------------------------ reading

    def saved(self, key: str) -> list[SavedState]:
        """The states saved for ``key``, headers checked (their states are checked when read)."""
        found = []
        for path in self._files(key):
            state = _read_header(path, key)
            if state is None:
                _remove(path)
            else:
                found.append(state)
        return found

    def read_into(self, state: SavedState, buffer) -> bool:
        """Reads the state into ``buffer`` (writable, at least ``state.size`` bytes), where it is
        to be used, with no copy on the way; False (the file removed) unless the file still
        holds exactly the state its header names."""
        target = memoryview(buffer).cast("B")[: state.size]
        try:
            with state.path.open("rb") as file:
                file.seek(-state.size, os.SEEK_END)
                read = file.readinto(target)
        except OSError:
            read = 0
        if read != state.size or hashlib.sha256(target).hexdigest() != state.sha256:
            logger.warning("Ignoring the damaged saved state %s", state.path.name)
            _remove(state.path)
            return False
        try:
            os.utime(state.path)  # used now: evicted last
        except OSError:
            pass
        return True

    def forget(self, state: SavedState) -> None:
        """Removes a state llama.cpp refused."""
        _remove(state.path)

    # ------------------------------------------------------------------------------ writing

    def save(self, key: str, tokens: Sequence[PromptItem], position: int, data: memoryview | bytes) -> threading.Event:
        """Writes the state in the background (a newer one for the same tokens replaces it).
        ``data`` is read where it lies, not copied (a state is tens of megabytes): the caller
        leaves it unchanged until the returned event is set, once the file is written or
        given up."""
        self._idle.clear()
        pending = _Pending(key, tuple(tokens), position, data, threading.Event())
        self._pending.put(pending)
        return pending.done

    def wait_until_written(self, timeout: float | None = None) -> bool:
        """Whether everything given to ``save`` is on disk (or given up) within ``timeout``."""
        return self._idle.wait(timeout)

    # ------------------------------------------------------------------------- the folder

    def total_bytes(self) -> int:
        return sum(size for _path, size, _used in self._all_files())

    def clear(self) -> None:
        for path, _size, _used in self._all_files():
            _remove(path)

    # ------------------------------------------------------------------------------ internals

    def _write_queued(self) -> None:
        while True:
            item = self._pending.get()
            if item is not None:
                try:
                    self._write(item.key, item.tokens, item.position, item.data)
                    self.files_written += 1
                    self._keep_within_budget()
                except OSError as error:  # a full or read-only disk costs only speed later
                    logger.warning("Could not save a state to %s: %s", self._folder, error)
                finally:
                    item.done.set()
            if self._pending.empty():
                self._idle.set()

    def _write(self, key: str, tokens: tuple[PromptItem, ...], position: int, data: memoryview | bytes) -> None:
        header = json.dumps({
            "version": VERSION, "model": key, "tokens": [_token_field(item) for item in tokens],
            "position": position, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        }, separators=(",", ":")).encode()
        self._folder.mkdir(parents=True, exist_ok=True)
        name = f"{key[:24]}-{_tokens_hash(tokens)[:24]}{SUFFIX}"
        target = self._folder / name
        temporary = target.with_suffix(".partial")
        with temporary.open("wb") as file:
            file.write(MAGIC + len(header).to_bytes(8, "little") + header)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)

    def _keep_within_budget(self) -> None:
        files = sorted(self._all_files(), key=lambda item: item[2])  # least recently used first
        total = sum(size for _path, size, _used in files)
        budget = self._budget_bytes()
        for path, size, _used in files[:-1]:  # the newest is kept whatever its size
            if total <= budget:
                break
            _remove(path)
            total -= size

    def _files(self, key: str) -> list[Path]:
        try:
            return sorted(self._folder.glob(f"{key[:24]}-*{SUFFIX}"))
        except OSError:
            return []

    def _all_files(self) -> list[tuple[Path, int, float]]:
        found = []
        try:
            for path in self._folder.glob(f"*{SUFFIX}"):
                try:
                    status = path.stat()
                except OSError:
                    continue
                found.append((path, status.st_size, status.st_mtime))
        except OSError:
            pass
        return found


def _read_header(path: Path, key: str) -> SavedState | None:
    """The file's header if it is one of ours for ``key`` and whole; None otherwise."""
    try:
        with path.open("rb") as file:
            if file.read(len(MAGIC)) != MAGIC:
                return None
            length = int.from_bytes(file.read(8), "little")
            if not 0 < length <= MAX_HEADER_BYTES:
                return None
            header = json.loads(file.read(length))
            file_size = os.fstat(file.fileno()).st_size
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(header, dict) or header.get("version") != VERSION or header.get("model") != key:
        return None
    size, position, sha256, tokens = header.get("size"), header.get("position"), header.get("sha256"), header.get("tokens")
    if not (_count(size) and _count(position) and isinstance(sha256, str) and len(sha256) == 64):
        return None
    if file_size != len(MAGIC) + 8 + length + size:  # cut short, or something appended
        return None
    if not isinstance(tokens, list) or not 0 < len(tokens) <= MAX_TOKENS:
        return None
    items = [_token_item(item) for item in tokens]
    if any(item is None for item in items):
        return None
    return SavedState(path, tuple(items), position, size, sha256)


def _token_field(item: PromptItem) -> int | list:
    if isinstance(item, ImageSpan):
        return [item.sha256, item.token_limit, item.tokens, item.positions]
    return item


def _token_item(field: object) -> PromptItem | None:
    if isinstance(field, int) and not isinstance(field, bool) and 0 <= field < 1 << 31:
        return field
    if (
        isinstance(field, list) and len(field) == 4 and isinstance(field[0], str) and len(field[0]) == 64
        and all(_count(value) for value in field[1:])
    ):
        return ImageSpan(field[0], field[1], field[2], field[3])
    return None


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 40


def _tokens_hash(tokens: Sequence[PromptItem]) -> str:
    return hashlib.sha256(json.dumps([_token_field(item) for item in tokens]).encode()).hexdigest()


def _file_identity(path: Path) -> str:
    """Size, modification time and the hash of the first MiB: a changed file is another model."""
    status = path.stat()
    with path.open("rb") as file:
        sample = hashlib.sha256(file.read(HEADER_SAMPLE_BYTES)).hexdigest()
    return f"{status.st_size}:{status.st_mtime_ns}:{sample}"


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
