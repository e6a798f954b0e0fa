"""``pysrc``: a byte-level corpus made of the running Python's standard-library source files.

Embedded in the sense that every Python installation carries it: no network, no download. The
corpus depends on the interpreter's version (it is the stdlib of *this* Python), which
``DatasetInfo.description`` records.

Which files: every ``*.py`` file under ``sysconfig.get_paths()["stdlib"]``, recursively, skipping
the directories named ``site-packages`` and ``dist-packages`` (third-party code that varies from one
environment to the next), ``test``, ``tests`` and ``idle_test`` (test suites: as large as the rest
together, repetitive, and holding deliberately malformed or oddly encoded fixtures) and
``__pycache__``. Files are taken in sorted order of their POSIX relative paths.

Split rule, by file: a file belongs to ``"validation"`` (alias ``"test"``) when the first 8 bytes of
``sha256(relative_path)``, read as a big-endian integer, are ``0 mod 20`` (about 5% of files),
and to ``"train"`` otherwise. The rule depends only on the path, so it is stable across machines and
Python versions for the files they share.

Concatenation: the bytes of the split's files, each followed by the separator byte ``0x00``
(:data:`SEPARATOR`), so that it marks document boundaries; a file that itself contains ``0x00`` is
skipped to keep the marker unambiguous (CPython 3.11's stdlib, tests excluded, has none).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import sysconfig
from pathlib import Path

import numpy as np

from kexue_jax.data.dataset import ArrayDataset
from kexue_jax.data.info import DatasetInfo

SEPARATOR = b"\x00"
SKIPPED_DIRS = frozenset(
    {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
)
SPLITS = ("train", "validation")
SPLIT_ALIASES = {"test": "validation"}
VALIDATION_MODULUS = 20
DEFAULT_SEQ_LEN = 513


def resolve_split(split: str) -> str:
    """Map ``"test"`` to ``"validation"``; raise ``ValueError`` naming ``split`` when unknown."""
    split = SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        raise ValueError(
            f"split: expected one of {list(SPLITS) + list(SPLIT_ALIASES)} for 'pysrc', "
            f"got {split!r}"
        )
    return split


def split_of_path(relative_path: str) -> str:
    """The split of a file from its POSIX path relative to the stdlib root (see the module rule)."""
    digest = hashlib.sha256(relative_path.encode("utf-8")).digest()
    return "validation" if int.from_bytes(digest[:8], "big") % VALIDATION_MODULUS == 0 else "train"


def stdlib_root() -> Path:
    """The standard-library directory of the running Python."""
    return Path(sysconfig.get_paths()["stdlib"])


@functools.lru_cache(maxsize=1)
def source_files() -> tuple[str, ...]:
    """Sorted POSIX relative paths of the corpus's files (see the module docstring for the rule)."""
    root = stdlib_root()
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS]
        for f in filenames:
            if f.endswith(".py"):
                found.append(Path(dirpath, f).relative_to(root).as_posix())
    return tuple(sorted(found))


@functools.lru_cache(maxsize=len(SPLITS))
def _split_bytes(split: str) -> bytes:
    root = stdlib_root()
    parts = []
    for rel in source_files():
        if split_of_path(rel) == split:
            data = (root / rel).read_bytes()
            # The separator must stay unambiguous: drop a file that would contain it.
            if SEPARATOR not in data:
                parts.append(data + SEPARATOR)
    return b"".join(parts)


def load_bytes(name: str, split: str = "train") -> np.ndarray:
    """The whole byte stream of a split of a byte-level corpus, as ``uint8 [num_bytes]``.

    Args:
        name: ``"pysrc"`` (the only byte corpus).
        split: ``"train"`` or ``"validation"`` (alias ``"test"``).

    Returns:
        Read-only ``uint8 [num_bytes]``: the split's files concatenated, each followed by ``0x00``.
        Cached per process (reading ~700 files takes a noticeable fraction of a second).

    Raises:
        ValueError: naming ``name`` or ``split`` when unknown.
    """
    if name != "pysrc":
        raise ValueError(f"name: expected one of ['pysrc'] (the byte corpora), got {name!r}")
    out = np.frombuffer(_split_bytes(resolve_split(split)), dtype=np.uint8)
    return out  # frombuffer over bytes is read-only


def load_pysrc_split(split: str, *, seq_len: int = DEFAULT_SEQ_LEN) -> ArrayDataset:
    """``pysrc`` as non-overlapping windows of ``seq_len`` bytes.

    Window ``i`` is bytes ``[i * seq_len, (i + 1) * seq_len)`` of :func:`load_bytes`; the tail
    shorter than ``seq_len`` is dropped. Windows cross file boundaries (marked by ``0x00``). The
    default 513 is 512 inputs plus one shifted target.

    Args:
        split: ``"train"`` or ``"validation"`` (alias ``"test"``).
        seq_len: window length, an int >= 2.

    Returns:
        :class:`ArrayDataset` with ``tokens`` ``uint8 [num_bytes // seq_len, seq_len]``
        (``num_classes=256``: the byte vocabulary).

    Raises:
        ValueError: naming ``split`` when unknown or ``seq_len`` when not an int >= 2 or longer than
        the split.
    """
    split = resolve_split(split)
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < 2:
        raise ValueError(f"seq_len: expected an int >= 2, got {seq_len!r}")
    seq_len = int(seq_len)
    data = load_bytes("pysrc", split)
    n = len(data) // seq_len
    if n == 0:
        raise ValueError(
            f"seq_len: {seq_len} is longer than the {len(data)} bytes of split {split!r}"
        )
    tokens = data[: n * seq_len].reshape(n, seq_len)
    version = ".".join(str(v) for v in sys.version_info[:3])
    info = DatasetInfo(
        name="pysrc",
        split=split,
        num_examples=n,
        features={"tokens": ((seq_len,), np.dtype(np.uint8))},
        num_classes=256,
        description=(
            f"Python {version} standard-library *.py files under {stdlib_root()} (without "
            f"{', '.join(sorted(SKIPPED_DIRS))}), sorted by relative path; a file is 'validation' "
            f"when int(sha256(path)[:8]) % {VALIDATION_MODULUS} == 0, else 'train'; files "
            f"concatenated, each followed by byte 0x00; non-overlapping windows of {seq_len} "
            f"bytes, tail dropped."
        ),
    )
    return ArrayDataset({"tokens": tokens}, info)
