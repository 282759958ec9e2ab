"""A seeded mutation fuzzer for GGUF files: hostile copies of a valid model, as an attacker makes them.

Each variant changes one thing in a real tiny qwen35 file: a metadata value, an array's or a
string's declared length, a tensor's dimensions, type or offset, the header's counts, a few random
header bytes, a run of weights, or the file's length. Values are the ones that break parsers:
0, 1, -1, the type's extremes, powers of two, NaN and infinities.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from pathlib import Path

import gguf

_INTERESTING_INTEGERS = (0, 1, 2, 3, 7, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**62, 2**64 - 1)
_INTERESTING_FLOATS = (float("nan"), float("inf"), float("-inf"), 0.0, -1.0, 1e-45, 1e30, -1e30, 3.0e38)


@dataclass(frozen=True)
class _Site:
    offset: int
    size: int  # bytes
    is_float: bool
    label: str


@dataclass(frozen=True)
class Variant:
    path: Path
    description: str


def _sites(path: Path) -> tuple[list[_Site], int]:
    """Every field of the header worth changing (by file offset), and where tensor data starts."""
    reader = gguf.GGUFReader(path)
    sites: list[_Site] = []
    fields = [(name, field) for name, field in reader.fields.items()]
    fields += [(f"tensor {tensor.name}", tensor.field) for tensor in reader.tensors]
    for name, field in fields:
        offset = field.offset
        for index, part in enumerate(field.parts):
            size = part.nbytes
            if size in (1, 2, 4, 8):
                is_float = part.dtype.kind == "f"
                sites.append(_Site(offset, size, is_float, f"{name} part {index}"))
            offset += size
    return sites, reader.data_offset


def _packed(value, size: int, is_float: bool) -> bytes:
    if is_float:
        return struct.pack("<f" if size == 4 else "<d", value)
    return (value % (1 << (8 * size))).to_bytes(size, "little")


def mutate(original: Path, folder: Path, count: int, seed: int) -> list[Variant]:
    """``count`` hostile variants of ``original``, written into ``folder``; the same seed always
    writes the same files."""
    generator = random.Random(seed)
    data = original.read_bytes()
    sites, data_offset = _sites(original)
    variants = []
    for number in range(count):
        mutated = bytearray(data)
        kind = generator.choices(["field", "field-float", "header-bytes", "weights", "truncate"], [6, 1, 1, 1, 1])[0]
        if kind.startswith("field"):
            site = generator.choice([site for site in sites if site.is_float] if kind == "field-float" else sites)
            if site.is_float:
                value = generator.choice(_INTERESTING_FLOATS)
            else:
                value = generator.choice(_INTERESTING_INTEGERS + (generator.getrandbits(8 * site.size),))
            mutated[site.offset:site.offset + site.size] = _packed(value, site.size, site.is_float)
            description = f"{site.label} = {value!r}"
        elif kind == "header-bytes":
            positions = [generator.randrange(8, data_offset) for _ in range(generator.randint(1, 8))]
            for position in positions:
                mutated[position] = generator.randrange(256)
            description = f"header bytes at {positions} randomised"
        elif kind == "weights":
            start = generator.randrange(data_offset, len(data) - 64) & ~3
            value = generator.choice(_INTERESTING_FLOATS)
            mutated[start:start + 64] = struct.pack("<f", value) * 16
            description = f"16 weights at byte {start} = {value!r}"
        else:
            cut = generator.randrange(0, len(data))
            mutated = mutated[:cut]
            description = f"cut at byte {cut:,} of {len(data):,}"
        path = folder / f"variant-{number:03d}.gguf"
        path.write_bytes(bytes(mutated))
        variants.append(Variant(path, description))
    return variants


def declare_huge_tensor(path: Path, total_bytes: int) -> Path:
    """Makes the model at ``path`` declare weights of about ``total_bytes``: its last tensor is
    given that size in the header, and the file is extended to hold it, sparsely (no disk used).
    A consistent header, only far too large for this computer's memory."""
    reader = gguf.GGUFReader(path)
    last = max(reader.tensors, key=lambda tensor: tensor.data_offset)
    dims_offset = last.field.offset + sum(part.nbytes for part in last.field.parts[:3])
    element_bytes = last.data.itemsize
    first_dimension = int(last.shape[0])
    rows = max(total_bytes // (element_bytes * first_dimension), 1)
    shape = (first_dimension, rows)
    if len(last.shape) != 2:
        raise ValueError("the last tensor must have two dimensions")
    del reader  # its memory map must be closed before the file changes
    with path.open("r+b") as file:
        file.seek(dims_offset)
        file.write(struct.pack("<2Q", *shape))
        file.truncate(last.data_offset + element_bytes * first_dimension * rows)
    return path
