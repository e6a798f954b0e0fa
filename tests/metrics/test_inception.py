"""FID Inception-v3: loading user weights (.npz; torch's zip and legacy .pth read without torch,
other pickled globals refused), the network checked against independent NumPy computations (first
conv+BN+ReLU, the valid-pixel average pool, global average pooling, torch's bilinear resize),
per-example features, FID(A, A) = 0 < FID(A, B), the few-sample FID against frechet_distance.

The .pth files are written here by a pickler that emits the opcodes ``torch.save`` emits (protocol
2; ``GLOBAL torch._utils _rebuild_tensor_v2``, ``GLOBAL torch FloatStorage``, ``BINPERSID`` of
``('storage', type, key, 'cpu', numel[, view])``, an ``OrderedDict``), since torch is not installed.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import struct
import zipfile
from collections import OrderedDict

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.metrics import (
    extract_features,
    feature_statistics,
    fid,
    fid_from_features,
    frechet_distance,
    inception_activations,
    inception_features,
    inception_params_from_state_dict,
    load_inception_params,
    preprocess_images,
    random_inception_state_dict,
    read_torch_state_dict,
    resize_bilinear,
)
from kexue_jax.metrics import inception as inception_module

# 107x107 is the smallest input (no resize) whose Mixed_7c output is 2x2, so that global pooling
# averages more than one position; every no-resize test uses this one shape (one compile).
SIZE = 107


@pytest.fixture(scope="module")
def state_dict():
    return random_inception_state_dict(key=jax.random.key(0))


@pytest.fixture(scope="module")
def params(state_dict):
    return inception_params_from_state_dict(state_dict)


@pytest.fixture(scope="module")
def images():
    ka, kb = jax.random.split(jax.random.key(1))
    a = np.asarray(jax.random.uniform(ka, (3, SIZE, SIZE, 3)))
    # B: another distribution (darker, lower contrast), so its features' Gaussian differs.
    b = 0.2 + 0.3 * np.asarray(jax.random.uniform(kb, (3, SIZE, SIZE, 3)))
    return a, b


@pytest.fixture(scope="module")
def features(params, images):
    a, b = images
    return (
        extract_features(params, a, batch_size=3, resize=False),
        extract_features(params, b, batch_size=3, resize=False),
    )


_activations = jax.jit(inception_activations, static_argnames="resize")


def _layer_names(state_dict):
    return [k[: -len(".conv.weight")] for k in state_dict if k.endswith(".conv.weight")]


def _leaf(params, name):
    for part in name.split("."):
        params = params[part]
    return params


def _assert_params_equal_state_dict(params, state_dict):
    for name in _layer_names(state_dict):
        leaf = _leaf(params, name)
        w = state_dict[f"{name}.conv.weight"]  # OIHW
        kernel = np.asarray(leaf["kernel"])
        assert kernel.shape == (w.shape[2], w.shape[3], w.shape[1], w.shape[0]), name
        # HWIO: kernel[h, w, i, o] = weight[o, i, h, w]
        np.testing.assert_array_equal(kernel, np.einsum("oihw->hwio", w), err_msg=name)
        for ours, theirs in (
            ("scale", "weight"),
            ("bias", "bias"),
            ("mean", "running_mean"),
            ("var", "running_var"),
        ):
            np.testing.assert_array_equal(np.asarray(leaf[ours]), state_dict[f"{name}.bn.{theirs}"])


# ---------------------------------------------------------------------------------------------
# A torch.save writer without torch.


class _TorchGlobal:
    """A global named in torch's pickles, e.g. ``torch._utils._rebuild_tensor_v2``."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # save_reduce wants a callable; it is only named, never called
        raise TypeError("placeholder")


_REBUILD = _TorchGlobal("torch._utils", "_rebuild_tensor_v2")
_STORAGE_TYPES = {
    np.dtype("float32"): _TorchGlobal("torch", "FloatStorage"),
    np.dtype("int64"): _TorchGlobal("torch", "LongStorage"),
}


class _Storage:
    def __init__(self, key, data, view=None):
        self.key, self.data, self.view = key, data, view  # view: (view_key, offset, numel), legacy


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = (
            storage,
            offset,
            tuple(size),
            tuple(stride),
        )


class _TorchPickler(pickle._Pickler):  # the pure-Python pickler lets us write GLOBAL ourselves
    def __init__(self, file, *, legacy):
        super().__init__(file, protocol=2)
        self.legacy = legacy

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, _TorchGlobal):
            if id(obj) in self.memo:
                self.write(self.get(self.memo[id(obj)][0]))
            else:
                self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
                self.memoize(obj)
            return
        super().save(obj, save_persistent_id)

    def persistent_id(self, obj):
        if not isinstance(obj, _Storage):
            return None
        pid = ("storage", _STORAGE_TYPES[obj.data.dtype], obj.key, "cpu", obj.data.size)
        return pid + (obj.view,) if self.legacy else pid

    def reducer_override(self, obj):
        if isinstance(obj, _Tensor):
            args = (obj.storage, obj.offset, obj.size, obj.stride, False, OrderedDict())
            return _REBUILD, args
        return NotImplemented


def _storages(tensors):
    return {t.storage.key: t.storage.data for t in tensors.values()}


def write_torch_zip(path, tensors):
    """torch.save's zip format: archive/data.pkl, archive/data/<key>, byteorder, version."""
    buf = io.BytesIO()
    _TorchPickler(buf, legacy=False).dump(OrderedDict(tensors))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", buf.getvalue())
        zf.writestr("archive/byteorder", "little")
        for key, data in _storages(tensors).items():
            zf.writestr(f"archive/data/{key}", data.astype(data.dtype.newbyteorder("<")).tobytes())
        zf.writestr("archive/version", "3\n")


def write_torch_legacy(path, tensors):
    """torch.save(_use_new_zipfile_serialization=False): the format of pytorch-fid's 2019 file."""
    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump(
            {
                "protocol_version": 1001,
                "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4},
            },
            f,
            protocol=2,
        )
        _TorchPickler(f, legacy=True).dump(OrderedDict(tensors))
        roots = _storages(tensors)
        keys = sorted(roots)
        pickle.dump(keys, f, protocol=2)
        for key in keys:
            f.write(struct.pack("<q", roots[key].size))
            f.write(roots[key].astype(roots[key].dtype.newbyteorder("<")).tobytes())


WRITERS = {"zip": write_torch_zip, "legacy": write_torch_legacy}


def _contiguous(state_dict):
    out = {}
    for i, (name, a) in enumerate(state_dict.items()):
        a = np.array(a, order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)
        out[name] = _Tensor(
            _Storage(str(i), a.ravel()), 0, a.shape, tuple(s // a.itemsize for s in a.strides)
        )
    return out


# ---------------------------------------------------------------------------------------------
# Loading.


def test_npz_round_trip_gives_hwio_kernels_and_the_same_values(tmp_path, state_dict):
    path = tmp_path / "inception.npz"
    np.savez(path, **state_dict)
    params = load_inception_params(path)
    _assert_params_equal_state_dict(params, state_dict)
    # torchvision's Mixed_6b.branch7x7_2 is a (1, 7) conv from c7 = 128 to 128 channels.
    assert params["Mixed_6b"]["branch7x7_2"]["kernel"].shape == (1, 7, 128, 128)
    assert params["Mixed_6b"]["branch7x7_2"]["kernel"].dtype == np.float32


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_full_pth_loads_without_torch(tmp_path, state_dict, fmt):
    path = tmp_path / f"pt_inception_{fmt}.pth"
    sd = dict(state_dict)
    sd["Conv2d_1a_3x3.bn.num_batches_tracked"] = np.array(0, np.int64)  # present in torch files
    WRITERS[fmt](path, _contiguous(sd))
    _assert_params_equal_state_dict(load_inception_params(path), state_dict)


def test_missing_wrong_shape_and_unexpected_keys_are_named(tmp_path, state_dict):
    missing = dict(state_dict)
    del missing["Mixed_6e.branch7x7dbl_4.bn.running_var"]
    with pytest.raises(ValueError, match=r"Mixed_6e\.branch7x7dbl_4\.bn\.running_var"):
        inception_params_from_state_dict(missing)
    path = tmp_path / "missing.npz"
    np.savez(path, **missing)
    with pytest.raises(ValueError, match=r"Mixed_6e\.branch7x7dbl_4\.bn\.running_var"):
        load_inception_params(path)

    wrong = dict(state_dict)
    wrong["Mixed_7c.branch_pool.conv.weight"] = np.zeros((192, 2048, 3, 3), np.float32)
    with pytest.raises(
        ValueError,
        match=r"Mixed_7c\.branch_pool\.conv\.weight.*"
        r"\(192, 2048, 1, 1\).*\(192, 2048, 3, 3\)",
    ):
        inception_params_from_state_dict(wrong)

    # torchvision's ImageNet Inception has an aux head: not the FID network.
    extra = dict(state_dict, **{"AuxLogits.fc.weight": np.zeros((1000, 768), np.float32)})
    with pytest.raises(ValueError, match=r"AuxLogits\.fc\.weight"):
        inception_params_from_state_dict(extra)

    nonfinite = dict(state_dict)
    nonfinite["Conv2d_2a_3x3.bn.bias"] = np.full((32,), np.nan, np.float32)
    with pytest.raises(ValueError, match=r"Conv2d_2a_3x3\.bn\.bias"):
        inception_params_from_state_dict(nonfinite)


@st.composite
def _strided_tensors(draw):
    """A tensor viewing a storage through a random offset and a random (permuted) stride."""
    ndim = draw(st.integers(0, 3))
    size = tuple(draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    order = draw(st.permutations(range(ndim)))
    stride = [0] * ndim
    step = 1
    for axis in reversed(order):  # contiguous in the permuted order, e.g. a transpose
        stride[axis] = step
        step *= size[axis] + draw(st.integers(0, 1))  # optionally a gap (a slice's view)
    offset = draw(st.integers(0, 5))
    extent = offset + sum((d - 1) * s for d, s in zip(size, stride, strict=True)) + 1
    numel = extent + draw(st.integers(0, 3))
    return size, tuple(stride), offset, numel


@given(
    layouts=st.lists(_strided_tensors(), min_size=1, max_size=3),
    fmt=st.sampled_from(["zip", "legacy"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_pth_reader_rebuilds_offsets_and_strides(tmp_path_factory, layouts, fmt, seed):
    rng = np.random.default_rng(seed)
    tensors, expected = {}, {}
    for i, (size, stride, offset, numel) in enumerate(layouts):
        dtype = np.float32 if i % 2 == 0 else np.int64
        data = (rng.normal(size=numel) * 100).astype(dtype)
        tensors[f"t{i}"] = _Tensor(_Storage(str(i), data), offset, size, stride)
        # element [idx] = data[offset + sum(idx * stride)], by explicit index arithmetic
        idx = np.indices(size).reshape(len(size), -1) if size else np.zeros((0, 1), int)
        flat = offset + (np.asarray(stride, int)[:, None] * idx).sum(axis=0)
        expected[f"t{i}"] = data[flat].reshape(size)
    path = tmp_path_factory.mktemp("pth") / "t.pth"
    WRITERS[fmt](path, tensors)
    got = read_torch_state_dict(path)
    assert list(got) == list(expected)
    for name, want in expected.items():
        assert got[name].dtype == want.dtype
        np.testing.assert_array_equal(got[name], want)


def test_legacy_storage_views_and_shared_storages(tmp_path):
    root = np.arange(20, dtype=np.float32)
    view = _Storage("0", root, view=("7", 10, 6))  # legacy view: elements 10..15 of storage "0"
    whole = _Storage("0", root)
    tensors = {"v": _Tensor(view, 1, (5,), (1,)), "w": _Tensor(whole, 2, (3, 4), (1, 3))}
    path = tmp_path / "views.pth"
    write_torch_legacy(path, tensors)
    got = read_torch_state_dict(path)
    np.testing.assert_array_equal(got["v"], root[11:16])
    np.testing.assert_array_equal(got["w"], root[2 + np.arange(3)[:, None] + 3 * np.arange(4)])


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_a_tensor_outside_its_storage_is_an_error(tmp_path, fmt):
    path = tmp_path / "bad.pth"
    WRITERS[fmt](path, {"x": _Tensor(_Storage("0", np.zeros(6, np.float32)), 1, (2, 3), (3, 1))})
    with pytest.raises(ValueError, match="x"):
        read_torch_state_dict(path)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_other_globals_are_refused_and_never_run(tmp_path, fmt):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(OrderedDict(x=_Evil(marker)), protocol=2)
    path = tmp_path / "evil.pth"
    if fmt == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("archive/data.pkl", payload)
    else:
        path.write_bytes(
            b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, {}))
            + payload
        )
    with pytest.raises(pickle.UnpicklingError, match=r"refusing.*system"):
        load_inception_params(path)
    assert not marker.exists()


def test_not_a_weights_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ValueError, match="not a torch.save file"):
        load_inception_params(path)


# ---------------------------------------------------------------------------------------------
# Preprocessing.


def _torch_bilinear_matrix(n_in, n_out):
    """Rows of torch's bilinear F.interpolate (align_corners=False) on one axis, by its formula."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = min(int(np.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        lam = src - i0
        m[i, i0] += 1.0 - lam
        m[i, i1] += lam
    return m


@pytest.mark.parametrize("shape", [(2, 13, 9, 3), (1, 320, 301, 2)])  # up (CIFAR-like) and down
def test_resize_matches_torch_bilinear_formula(shape):
    x = np.asarray(jax.random.uniform(jax.random.key(2), shape), np.float64)
    rows, cols = _torch_bilinear_matrix(shape[1], 299), _torch_bilinear_matrix(shape[2], 299)
    expected = np.einsum("ih,jw,nhwc->nijc", rows, cols, x, optimize=True)
    got = np.asarray(resize_bilinear(x.astype(np.float32), 299))
    # Sample positions (i + 1/2) n_in / 299 - 1/2 are float32 in JAX (and in torch): off by up to
    # ~n_in * eps_f32 pixels, times an intensity slope <= 1 between neighbouring pixels in [0, 1].
    np.testing.assert_allclose(
        got, expected, rtol=0, atol=2 * max(shape[1:3]) * np.finfo(np.float32).eps
    )


def test_resize_is_the_identity_at_299():
    x = np.asarray(jax.random.uniform(jax.random.key(3), (1, 299, 299, 3)))
    np.testing.assert_array_equal(np.asarray(resize_bilinear(x, 299)), x)


def test_preprocess_maps_uint8_and_unit_floats_to_minus_one_one():
    u = np.asarray(jax.random.randint(jax.random.key(4), (2, 80, 76, 3), 0, 256), np.uint8)
    from_uint8 = np.asarray(preprocess_images(u, resize=False))
    np.testing.assert_allclose(from_uint8, 2.0 * u / 255.0 - 1.0, rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(preprocess_images(u.astype(np.float32) / 255.0, resize=False)),
        from_uint8,
        rtol=0,
        atol=1e-6,
    )
    assert preprocess_images(u).shape == (2, 299, 299, 3)


def test_bad_images_are_rejected(params):
    for bad, match in [
        (np.zeros((SIZE, SIZE, 3)), r"\(n, h, w, 3\)"),
        (np.zeros((1, SIZE, SIZE, 1)), r"\(n, h, w, 3\)"),
        (np.zeros((1, SIZE, SIZE, 3), np.int32), "uint8"),
        (np.zeros((1, 60, 60, 3)), ">= 75"),
    ]:
        with pytest.raises(ValueError, match=match):
            inception_features(params, bad, resize=False)
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(params, np.zeros((1, SIZE, SIZE, 3)), batch_size=0)


# ---------------------------------------------------------------------------------------------
# The network.


def test_first_layer_and_global_pool_match_numpy(params, state_dict, images):
    x = images[0]
    acts = _activations(params, x, resize=False)
    # Conv2d_1a_3x3: 3x3, stride 2, no padding, no bias, on 2x - 1; BatchNorm eps 1e-3; ReLU.
    xin = 2.0 * x.astype(np.float64) - 1.0
    windows = np.lib.stride_tricks.sliding_window_view(xin, (3, 3), axis=(1, 2))[:, ::2, ::2]
    w = state_dict["Conv2d_1a_3x3.conv.weight"].astype(np.float64)  # OIHW
    y = np.einsum("nijcab,ocab->nijo", windows, w)
    bn = {
        k: state_dict[f"Conv2d_1a_3x3.bn.{k}"]
        for k in ("weight", "bias", "running_mean", "running_var")
    }
    y = (y - bn["running_mean"]) / np.sqrt(bn["running_var"] + 1e-3) * bn["weight"] + bn["bias"]
    expected = np.maximum(y, 0.0)
    assert acts["Conv2d_1a_3x3"].shape == expected.shape == (3, 53, 53, 32)
    np.testing.assert_allclose(np.asarray(acts["Conv2d_1a_3x3"]), expected, rtol=1e-5, atol=1e-5)

    last = np.asarray(acts["Mixed_7c"], np.float64)
    assert last.shape == (3, 2, 2, 2048)
    np.testing.assert_allclose(
        np.asarray(acts["pool3"]), last.mean(axis=(1, 2)), rtol=1e-6, atol=1e-6
    )
    # pytorch-fid's other feature blocks: 64 (maxpool1), 192 (maxpool2), 768 (Mixed_6e) channels.
    assert [acts[k].shape[-1] for k in ("maxpool1", "maxpool2", "Mixed_6e")] == [64, 192, 768]


def test_pools_count_only_pixels_inside_the_image():
    x = np.asarray(jax.random.normal(jax.random.key(5), (1, 4, 5, 2)), np.float64)
    avg = np.asarray(inception_module._avg_pool_valid(x.astype(np.float32)))
    mx = np.asarray(inception_module._max_pool(x.astype(np.float32), stride=1, pad=1))
    for i in range(4):
        for j in range(5):
            # the in-image part of the 3x3 window
            win = x[0, max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2]
            np.testing.assert_allclose(avg[0, i, j], win.mean(axis=(0, 1)), rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(mx[0, i, j], win.max(axis=(0, 1)), rtol=1e-6, atol=1e-6)


def test_features_are_per_example(params, images, features):
    x = images[0]
    f = features[0]
    assert f.shape == (3, 2048) and f.dtype == np.float32
    assert np.all(np.isfinite(f))
    assert np.max(np.abs(f[0] - f[1])) > 1e-2 * np.max(np.abs(f))  # depends on the image
    # XLA's CPU convolution may sum in another order at another batch position: float32 round-off
    # through 94 layers, measured up to 3e-6 on features of size ~2. Mixing examples (batch
    # statistics, a pooling over the wrong axis) would move them by O(1).
    atol = 1e-5 * np.max(np.abs(f))
    perm = np.array([2, 0, 1])
    np.testing.assert_allclose(
        extract_features(params, x[perm], batch_size=3, resize=False), f[perm], rtol=0, atol=atol
    )
    # 4 images in batches of 3: the second batch is padded; the copy of x[1] gets x[1]'s features.
    four = np.concatenate([x, x[1:2]])
    f4 = extract_features(params, four, batch_size=3, resize=False)
    np.testing.assert_allclose(f4, np.concatenate([f, f[1:2]]), rtol=0, atol=atol)


def test_fid_zero_on_the_same_set_and_positive_between_sets(params, images, features):
    fa, fb = features
    d_ab = fid_from_features(fa, fb)
    assert d_ab > 0.0
    # Identical statistics: only round-off remains, far below the FID between the two sets.
    assert 0.0 <= fid_from_features(fa, fa) <= 1e-9 * d_ab
    assert fid_from_features(fa, fa[::-1]) <= 1e-9 * d_ab  # the order of the samples is irrelevant
    assert fid(params, images[0], images[1], batch_size=3, resize=False) == pytest.approx(
        d_ab, rel=1e-6
    )


@given(
    n=st.integers(2, 15),
    m=st.integers(2, 15),
    shift=st.floats(0.0, 2.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_few_sample_fid_equals_frechet_distance_of_the_statistics(n, m, shift, seed):
    # fewer samples than dimensions: fid_from_features takes the cross-Gram route; frechet_distance
    # takes d x d eigendecompositions. Tolerance: frechet_distance clips the round-off eigenvalues
    # of the rank-deficient covariances (sqrt of ~1e-16 relative), measured 1.4e-8 of the traces.
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, 16)) * rng.uniform(0.1, 3.0)
    b = rng.normal(size=(m, 16)) * rng.uniform(0.1, 3.0) + shift * rng.normal(size=16)
    (mu_a, cov_a), (mu_b, cov_b) = feature_statistics(a), feature_statistics(b)
    expected = frechet_distance(mu_a, cov_a, mu_b, cov_b)
    scale = np.trace(cov_a) + np.trace(cov_b)
    assert fid_from_features(a, b) == pytest.approx(expected, rel=0, abs=1e-7 * scale)


def test_full_pipeline_at_299(params):
    u = np.asarray(jax.random.randint(jax.random.key(6), (2, 32, 32, 3), 0, 256), np.uint8)
    f = extract_features(params, u, batch_size=2)
    assert f.shape == (2, 2048) and np.all(np.isfinite(f))
    assert np.max(np.abs(f[0] - f[1])) > 1e-2 * np.max(np.abs(f))


def test_writer_emits_torch_opcodes():
    """The test's pickles carry the opcodes torch.save writes, so the reader is tested on those."""
    buf = io.BytesIO()
    _TorchPickler(buf, legacy=False).dump(
        OrderedDict(w=_Tensor(_Storage("0", np.zeros(2, np.float32)), 0, (2,), (1,)))
    )
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(buf.getvalue())]
    assert ("PROTO", 2) in ops
    assert ("GLOBAL", "collections OrderedDict") in ops
    assert ("GLOBAL", "torch._utils _rebuild_tensor_v2") in ops
    assert ("GLOBAL", "torch FloatStorage") in ops
    assert ("BINPERSID", None) in ops
