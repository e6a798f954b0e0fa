"""pysrc: the standard library as a byte corpus, split by file."""

from __future__ import annotations

import hashlib
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from kexue_jax.data import load, load_bytes, pysrc


def _split_by_rule(path: str) -> str:
    # the documented rule, re-derived here rather than imported
    digest = hashlib.sha256(path.encode()).digest()
    return "validation" if int.from_bytes(digest[:8], "big") % 20 == 0 else "train"


def test_files_are_the_stdlib_sources_without_tests_and_site_packages():
    files = pysrc.source_files()
    assert list(files) == sorted(files) and len(files) > 100
    assert "os.py" in files and "json/decoder.py" in files
    for f in files:
        parts = f.split("/")
        assert f.endswith(".py")
        assert not {"site-packages", "dist-packages", "test", "tests", "idle_test"} & set(
            parts[:-1]
        ), f
    root = Path(sysconfig.get_paths()["stdlib"])
    assert pysrc.stdlib_root() == root and (root / files[0]).is_file()


def test_split_is_by_file_and_follows_the_documented_rule():
    files = pysrc.source_files()
    by_split = {s: [f for f in files if _split_by_rule(f) == s] for s in ("train", "validation")}
    assert all(pysrc.split_of_path(f) == _split_by_rule(f) for f in files)
    assert 0.01 < len(by_split["validation"]) / len(files) < 0.12  # ~5% of the files
    for split, chosen in by_split.items():
        data = load_bytes("pysrc", split)
        # one separator per file, and the files appear whole and in sorted order
        assert int(np.sum(data == 0)) == len(chosen)
        raw = data.tobytes()
        pieces = raw.split(b"\x00")[:-1]
        assert len(pieces) == len(chosen)
        for f, piece in zip(
            chosen[:: max(1, len(chosen) // 25)], pieces[:: max(1, len(chosen) // 25)], strict=True
        ):
            assert piece == (pysrc.stdlib_root() / f).read_bytes(), f


def test_train_and_validation_share_no_file():
    train = set(load_bytes("pysrc", "train").tobytes().split(b"\x00"))
    validation = set(load_bytes("pysrc", "validation").tobytes().split(b"\x00"))
    shared = (train & validation) - {b""}
    # identical files can exist under two paths (e.g. empty __init__.py files), only those may match
    assert all(len(p) < 200 for p in shared), [len(p) for p in shared]


def test_load_bytes_is_cached_read_only_uint8():
    a, b = load_bytes("pysrc", "train"), load_bytes("pysrc", "train")
    assert a.dtype == np.uint8 and a.ndim == 1 and not a.flags.writeable
    assert np.shares_memory(a, b)  # the second call reads no file
    np.testing.assert_array_equal(load_bytes("pysrc", "test"), load_bytes("pysrc", "validation"))


@pytest.mark.parametrize("seq_len", [2, 100, 513])
def test_windows_are_the_byte_stream_cut_in_non_overlapping_pieces(seq_len):
    ds = load("pysrc", split="validation", seq_len=seq_len)
    data = load_bytes("pysrc", "validation")
    n = len(data) // seq_len
    assert len(ds) == n and ds.info.features == {"tokens": ((seq_len,), np.dtype(np.uint8))}
    assert ds.info.num_classes == 256
    batch = ds.get_batch(np.array([0, n - 1]))["tokens"]
    assert batch.shape == (2, seq_len) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch[0], data[:seq_len])
    np.testing.assert_array_equal(batch[1], data[(n - 1) * seq_len : n * seq_len])


def test_default_window_and_splits():
    train = load("pysrc")
    assert train.info.features["tokens"][0] == (513,) and train.info.split == "train"
    assert load("pysrc", split="test").info.split == "validation"
    assert len(train) > 10 * len(load("pysrc", split="validation"))


def test_load_bytes_rejects_other_names_and_splits():
    with pytest.raises(ValueError, match="name: expected one of"):
        load_bytes("pysrc3", "train")
    with pytest.raises(ValueError, match="split: expected one of"):
        load_bytes("pysrc", "dev")
