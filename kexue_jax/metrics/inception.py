"""FID's Inception-v3 in pure JAX, loading the weights the user provides (never downloaded).

FID (Heusel et al. 2017) is the Fréchet distance (:mod:`kexue_jax.metrics.frechet`) between
Gaussians fitted to the 2048-d ``pool3`` features of one particular Inception-v3 network
(Szegedy et al. 2016): the TensorFlow graph ``inception-2015-12-05`` that the original TTUR code
used, ported to PyTorch by pytorch-fid (M. Seitzer) as ``pt_inception-2015-12-05-6726825d.pth``.
This module is that network as pure functions over a parameter pytree (NHWC, convolutions by
:func:`jax.lax.conv_general_dilated`), with the port's four deviations from torchvision's
Inception-v3 kept: ``Mixed_5b..d`` (``FIDInceptionA``), ``Mixed_6b..e`` (``FIDInceptionC``) and
``Mixed_7b`` (``FIDInceptionE_1``) average-pool their pool branch over the *valid* pixels only
(TF's ``count_include_pad=False``), and ``Mixed_7c`` (``FIDInceptionE_2``) max-pools it.

The pipeline is pytorch-fid's: images in $[0, 1]$, resized bilinearly to 299×299 (half-pixel
centres, no anti-aliasing: ``F.interpolate(..., mode="bilinear", align_corners=False)``), mapped
to $[-1, 1]$ by $2x - 1$; every convolution has no bias and is followed by inference-form
BatchNorm, $\\gamma (y - \\mu) / \\sqrt{\\sigma^2 + 10^{-3}} + \\beta$, and a ReLU; the features are
the global average of ``Mixed_7c``'s $8 \\times 8 \\times 2048$ output.

**Comparability.** A number computed here is comparable with published FIDs only with exactly
those weights (``pt_inception-2015-12-05-6726825d.pth``, or the same arrays as ``.npz``), 50,000
generated samples against the reference set's statistics, and this resizing. Other weights
(torchvision's ImageNet Inception-v3, random weights, a small classifier) give a Fréchet
distance in *their* feature space, which must be labelled as such. pytorch-fid itself differs
slightly from the TF original (TF1's ``ResizeBilinear`` samples at $i\\,h_{in}/h_{out}$, without
the half-pixel offset), and so does this port; convolutions run at ``Precision.HIGHEST`` so that
TF32 on a GPU adds no further difference.

Weights are read by :func:`load_inception_params` from (1) the ``.pth`` file, **without torch**:
both ``torch.save`` formats (the zip archive of PyTorch >= 1.6, and the legacy stream format,
which the file published by pytorch-fid in 2019 most likely uses) are parsed by a restricted
unpickler that only admits tensors, storages and ``OrderedDict`` and refuses any other global, so
a hostile pickle cannot run code; or (2) an ``.npz`` holding the same state-dict names
(``Conv2d_1a_3x3.conv.weight``, ``Mixed_5b.branch1x1.bn.running_mean``, ...; ``fc.*`` and
``*.num_batches_tracked`` are ignored).

References:
    M. Heusel, H. Ramsauer, T. Unterthiner, B. Nessler, S. Hochreiter, "GANs Trained by a Two
    Time-Scale Update Rule Converge to a Local Nash Equilibrium", NeurIPS 2017 (FID).
    C. Szegedy, V. Vanhoucke, S. Ioffe, J. Shlens, Z. Wojna, "Rethinking the Inception
    Architecture for Computer Vision", CVPR 2016 (Inception-v3).
    M. Seitzer, "pytorch-fid: FID Score for PyTorch", https://github.com/mseitzer/pytorch-fid
    (the port of the TF FID weights, its ``inception.py`` and ``fid_score.py``).
"""

from __future__ import annotations

import functools
import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from os import PathLike
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from kexue_jax._src.checks import check_positive
from kexue_jax._src.typing import Array, Float, Params, PRNGKey, Shaped
from kexue_jax.metrics.batched import apply_in_batches
from kexue_jax.metrics.frechet import feature_statistics, frechet_distance

__all__ = [
    "FID_FEATURE_DIM",
    "FID_IMAGE_SIZE",
    "extract_features",
    "fid",
    "fid_from_features",
    "inception_activations",
    "inception_features",
    "inception_params_from_state_dict",
    "load_inception_params",
    "preprocess_images",
    "random_inception_params",
    "random_inception_state_dict",
    "read_torch_state_dict",
    "resize_bilinear",
]

FID_IMAGE_SIZE = 299
FID_FEATURE_DIM = 2048
_BN_EPS = 1e-3
# The smallest square input whose Mixed_7c output is still >= 1x1 (no resize).
_MIN_SIZE = 75


# --------------------------------------------------------------------------------------------
# Architecture: every conv+BN+ReLU layer, named as in the state dict.


class _Conv(NamedTuple):
    cin: int
    cout: int
    kernel: tuple[int, int]
    stride: int
    padding: tuple[int, int]


def _architecture() -> dict[str, _Conv]:
    """The layers of torchvision's ``Inception3`` (FID variant, no aux head), in order."""
    layers: dict[str, _Conv] = {}

    def add(
        name: str,
        cin: int,
        cout: int,
        k: int | tuple[int, int] = 1,
        *,
        stride: int = 1,
        pad: int | tuple[int, int] = 0,
    ) -> None:
        kernel = (k, k) if isinstance(k, int) else k
        padding = (pad, pad) if isinstance(pad, int) else pad
        layers[name] = _Conv(cin, cout, kernel, stride, padding)

    add("Conv2d_1a_3x3", 3, 32, 3, stride=2)
    add("Conv2d_2a_3x3", 32, 32, 3)
    add("Conv2d_2b_3x3", 32, 64, 3, pad=1)
    add("Conv2d_3b_1x1", 64, 80, 1)
    add("Conv2d_4a_3x3", 80, 192, 3)
    for name, cin, pool in (("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)):
        add(f"{name}.branch1x1", cin, 64)
        add(f"{name}.branch5x5_1", cin, 48)
        add(f"{name}.branch5x5_2", 48, 64, 5, pad=2)
        add(f"{name}.branch3x3dbl_1", cin, 64)
        add(f"{name}.branch3x3dbl_2", 64, 96, 3, pad=1)
        add(f"{name}.branch3x3dbl_3", 96, 96, 3, pad=1)
        add(f"{name}.branch_pool", cin, pool)
    add("Mixed_6a.branch3x3", 288, 384, 3, stride=2)
    add("Mixed_6a.branch3x3dbl_1", 288, 64)
    add("Mixed_6a.branch3x3dbl_2", 64, 96, 3, pad=1)
    add("Mixed_6a.branch3x3dbl_3", 96, 96, 3, stride=2)
    row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        add(f"{name}.branch1x1", 768, 192)
        add(f"{name}.branch7x7_1", 768, c7)
        add(f"{name}.branch7x7_2", c7, c7, row[0], pad=row[1])
        add(f"{name}.branch7x7_3", c7, 192, col[0], pad=col[1])
        add(f"{name}.branch7x7dbl_1", 768, c7)
        for i, (k, p) in enumerate((col, row, col), start=2):
            add(f"{name}.branch7x7dbl_{i}", c7, c7, k, pad=p)
        add(f"{name}.branch7x7dbl_5", c7, 192, row[0], pad=row[1])
        add(f"{name}.branch_pool", 768, 192)
    add("Mixed_7a.branch3x3_1", 768, 192)
    add("Mixed_7a.branch3x3_2", 192, 320, 3, stride=2)
    add("Mixed_7a.branch7x7x3_1", 768, 192)
    add("Mixed_7a.branch7x7x3_2", 192, 192, row[0], pad=row[1])
    add("Mixed_7a.branch7x7x3_3", 192, 192, col[0], pad=col[1])
    add("Mixed_7a.branch7x7x3_4", 192, 192, 3, stride=2)
    for name, cin in (("Mixed_7b", 1280), ("Mixed_7c", 2048)):
        add(f"{name}.branch1x1", cin, 320)
        add(f"{name}.branch3x3_1", cin, 384)
        add(f"{name}.branch3x3_2a", 384, 384, (1, 3), pad=(0, 1))
        add(f"{name}.branch3x3_2b", 384, 384, (3, 1), pad=(1, 0))
        add(f"{name}.branch3x3dbl_1", cin, 448)
        add(f"{name}.branch3x3dbl_2", 448, 384, 3, pad=1)
        add(f"{name}.branch3x3dbl_3a", 384, 384, (1, 3), pad=(0, 1))
        add(f"{name}.branch3x3dbl_3b", 384, 384, (3, 1), pad=(1, 0))
        add(f"{name}.branch_pool", cin, 192)
    return layers


_LAYERS = _architecture()
# state-dict suffix -> (leaf name in our pytree); BatchNorm's inference statistics and affine.
_BN_LEAVES = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
_FC_SHAPES = {"fc.weight": (1008, FID_FEATURE_DIM), "fc.bias": (1008,)}


def _state_dict_shapes() -> dict[str, tuple[int, ...]]:
    """Torch-layout shape of every state-dict entry the network uses (conv weights OIHW)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name, layer in _LAYERS.items():
        shapes[f"{name}.conv.weight"] = (layer.cout, layer.cin, *layer.kernel)
        for suffix in _BN_LEAVES:
            shapes[f"{name}.bn.{suffix}"] = (layer.cout,)
    return shapes


_STATE_SHAPES = _state_dict_shapes()


def _ignored_key(key: str) -> bool:
    # The 1008-way classifier is not part of the features; BatchNorm's step counter is not a weight.
    return key.startswith("fc.") or key.endswith(".num_batches_tracked")


# --------------------------------------------------------------------------------------------
# Parameters: state dict (torch layout) <-> pytree (NHWC / HWIO).


def _list_keys(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:5])
    return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def inception_params_from_state_dict(state_dict: Mapping[str, Any]) -> Params:
    """Convert a pytorch-fid Inception state dict (torch layout) to this module's pytree.

    Conv weights go from torch's OIHW to HWIO; each layer becomes
    ``{"kernel": [kh, kw, cin, cout], "scale", "bias", "mean", "var": [cout]}`` (BatchNorm's
    ``weight``, ``bias``, ``running_mean``, ``running_var``), nested as the state-dict names are:
    ``params["Mixed_5b"]["branch1x1"]["kernel"]`` comes from ``Mixed_5b.branch1x1.conv.weight``.
    All leaves are float32 ``jax.Array``.

    Args:
        state_dict: name -> array (NumPy, JAX, or anything ``np.asarray`` takes, e.g. a
            ``torch.Tensor`` on the CPU). ``fc.*`` and ``*.num_batches_tracked`` are ignored.

    Returns:
        The parameter pytree for :func:`inception_features`.

    Raises:
        ValueError: naming the key when one is missing, has the wrong shape (both shapes given),
            holds non-finite values, or is not part of this network.
    """
    missing = [k for k in _STATE_SHAPES if k not in state_dict]
    if missing:
        raise ValueError(
            f"state_dict: missing {len(missing)} key(s) of the FID Inception-v3: "
            f"{_list_keys(missing)}"
            f" (e.g. {missing[0]!r} of shape {_STATE_SHAPES[missing[0]]})"
        )
    unexpected = [k for k in state_dict if k not in _STATE_SHAPES and not _ignored_key(k)]
    if unexpected:
        raise ValueError(
            f"state_dict: unexpected key(s) {_list_keys(unexpected)}; expected the state dict of "
            "pytorch-fid's FID Inception-v3 (pt_inception-2015-12-05), which has no others"
        )
    arrays: dict[str, np.ndarray] = {}
    for key, shape in _STATE_SHAPES.items():
        a = np.asarray(state_dict[key])
        if a.shape != shape:
            raise ValueError(f"state_dict[{key!r}]: expected shape {shape}, got {a.shape}")
        a = a.astype(np.float32)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"state_dict[{key!r}]: expected finite values (shape {shape})")
        arrays[key] = a
    params: dict[str, Any] = {}
    for name in _LAYERS:
        # jax.device_put of C-contiguous host arrays: jnp.asarray compiles a staging program per
        # shape (53 compiles, seconds on a CPU).
        kernel = np.ascontiguousarray(arrays[f"{name}.conv.weight"].transpose(2, 3, 1, 0))
        leaf = {"kernel": jax.device_put(kernel)}
        for suffix, ours in _BN_LEAVES.items():
            leaf[ours] = jax.device_put(arrays[f"{name}.bn.{suffix}"])
        *outer, last = name.split(".")
        node = params
        for part in outer:
            node = node.setdefault(part, {})
        node[last] = leaf
    return params


def random_inception_state_dict(*, key: PRNGKey) -> dict[str, np.ndarray]:
    """**Test-only**: a state dict with every key and shape of the real file, random values.

    He-normal conv weights (so activations keep an O(1) scale through 94 ReLU layers), BatchNorm
    statistics near the identity, and the ``fc.*`` classifier the real file also holds. Features
    from these weights are meaningless for FID; they exist to test loading and the network.

    Args:
        key: PRNG key.

    Returns:
        name -> float32 NumPy array in torch layout (OIHW conv weights), as ``torch.load`` gives.
    """
    shapes = {**_STATE_SHAPES, **_FC_SHAPES}
    total = sum(int(np.prod(s)) for s in shapes.values())
    # Host data: a NumPy generator seeded by the key's bits draws the 24M numbers ~10x faster than
    # threefry on a CPU (and one draw per entry would compile ~400 programs).
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    normal = rng.standard_normal(total, np.float32)
    uniform = rng.random(total, np.float32)
    out: dict[str, np.ndarray] = {}
    start = 0
    for name, shape in shapes.items():
        size = int(np.prod(shape))
        z = normal[start : start + size].reshape(shape)
        u = uniform[start : start + size].reshape(shape)
        start += size
        if name.endswith(".conv.weight"):
            out[name] = z * np.float32(np.sqrt(2.0 / (shape[1] * shape[2] * shape[3])))
        elif name.endswith(".running_var"):
            out[name] = 0.5 + u
        elif name.endswith(".bn.weight"):
            out[name] = 0.8 + 0.4 * u
        elif name.startswith("fc."):
            out[name] = 0.01 * z
        else:  # bn.bias, bn.running_mean
            out[name] = 0.1 * z
    return out


def random_inception_params(*, key: PRNGKey) -> Params:
    """**Test-only**: :func:`random_inception_state_dict` converted to the parameter pytree."""
    return inception_params_from_state_dict(random_inception_state_dict(key=key))


# --------------------------------------------------------------------------------------------
# Reading torch.save files without torch.

_TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # the legacy format's leading pickle
_TORCH_LEGACY_PROTOCOL = 1001
# torch.<Name>Storage -> NumPy dtype code (byte order added when a file is read).
_STORAGE_DTYPES = {
    "FloatStorage": "f4",
    "DoubleStorage": "f8",
    "HalfStorage": "f2",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "b1",
}


class _StorageType(NamedTuple):
    name: str
    code: str


class _Storage(NamedTuple):
    code: str  # dtype code, e.g. "f4"
    root: str  # the key of the storage whose bytes hold it
    offset: int  # elements into the root (legacy views; 0 otherwise)
    numel: int


class _Tensor(NamedTuple):
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(
    storage: _Storage, storage_offset: int, size: Any, stride: Any, *_: Any
) -> _Tensor:
    # Stands in for torch._utils._rebuild_tensor(_v2): (storage, offset, size, stride,
    # requires_grad, backward_hooks[, metadata]); the data is read once all storages are known.
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"tensor rebuilt from {type(storage).__name__}, not a storage")
    return _Tensor(
        storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride)
    )


def _rebuild_parameter(data: _Tensor, *_: Any) -> _Tensor:
    return data  # torch._utils._rebuild_parameter(data, requires_grad, backward_hooks)


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, code) for name, code in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a state dict; any global outside :data:`_ALLOWED_GLOBALS` is refused."""

    def __init__(self, file: Any, persistent_load: Callable[[Any], Any] | None = None) -> None:
        super().__init__(file)
        self._persistent = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to unpickle the global {module}.{name}: a weights file may only hold "
                "tensors, storages and OrderedDicts (this reader never executes other code)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return self._persistent(pid)


def _storage_from_pid(pid: Any) -> _Storage:
    """``('storage', type, key, location, numel[, view])``: zip (4 fields) or legacy (5 fields)."""
    if not (isinstance(pid, tuple) and pid and pid[0] in ("storage", b"storage")):
        raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
    if len(pid) == 5:
        _, stype, key, _, numel = pid
        view = None
    elif len(pid) == 6:
        _, stype, key, _, numel, view = pid
    else:
        raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
    if not isinstance(stype, _StorageType):
        raise pickle.UnpicklingError(f"persistent id names {stype!r}, not a torch storage type")
    if view is None:
        return _Storage(stype.code, str(key), 0, int(numel))
    _, view_offset, view_numel = view  # (view_key, offset, numel) into the root storage
    return _Storage(stype.code, str(key), int(view_offset), int(view_numel))


def _materialize(name: str, t: _Tensor, roots: Mapping[str, np.ndarray]) -> np.ndarray:
    """Strided NumPy copy of a tensor's elements, bounds-checked against its storage."""
    s = t.storage
    buf = roots[s.root]
    if s.offset + s.numel > buf.size:
        raise ValueError(
            f"{name}: storage view [{s.offset}, {s.offset + s.numel}) exceeds its "
            f"root storage of {buf.size} elements"
        )
    buf = buf[s.offset : s.offset + s.numel]
    if len(t.size) != len(t.stride) or any(d < 0 for d in t.size + t.stride) or t.offset < 0:
        raise ValueError(f"{name}: invalid size {t.size} / stride {t.stride} / offset {t.offset}")
    if 0 in t.size:
        return np.zeros(t.size, buf.dtype.newbyteorder("="))
    last = t.offset + sum((d - 1) * st for d, st in zip(t.size, t.stride, strict=True))
    if last >= buf.size:
        raise ValueError(
            f"{name}: size {t.size}, stride {t.stride}, offset {t.offset} reach element "
            f"{last} of a storage of {buf.size}"
        )
    view = np.lib.stride_tricks.as_strided(
        buf[t.offset :],
        shape=t.size,
        strides=tuple(st * buf.itemsize for st in t.stride),
        writeable=False,
    )
    return view.astype(buf.dtype.newbyteorder("="), copy=True)


def _tensors_to_arrays(obj: Any, roots: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not isinstance(obj, Mapping):
        # a malformed file, not a wrong argument type: ValueError like every other content error
        raise ValueError(  # noqa: TRY004
            f"expected the file to hold a state dict (name -> tensor), got {type(obj).__name__}"
        )
    out: dict[str, np.ndarray] = {}
    for name, value in obj.items():
        if not isinstance(value, _Tensor):
            raise ValueError(  # noqa: TRY004
                f"state dict entry {name!r} is a {type(value).__name__}, not a tensor"
            )
        out[str(name)] = _materialize(str(name), value, roots)
    return out


def _read_zip(zf: zipfile.ZipFile, pkl_name: str) -> dict[str, np.ndarray]:
    prefix = pkl_name[: -len("data.pkl")]
    names = set(zf.namelist())
    byteorder = (
        zf.read(prefix + "byteorder").decode() if prefix + "byteorder" in names else "little"
    )
    if byteorder not in ("little", "big"):
        raise ValueError(f"unknown byte order {byteorder!r} in {prefix}byteorder")
    endian = "<" if byteorder == "little" else ">"
    storages: dict[str, _Storage] = {}

    def persistent_load(pid: Any) -> _Storage:
        s = _storage_from_pid(pid)
        storages.setdefault(s.root, s)
        return s

    obj = _RestrictedUnpickler(io.BytesIO(zf.read(pkl_name)), persistent_load).load()
    roots: dict[str, np.ndarray] = {}
    for key, s in storages.items():
        member = f"{prefix}data/{key}"
        if member not in names:
            raise ValueError(f"storage {key!r} has no record {member!r} in the archive")
        raw = zf.read(member)
        dtype = np.dtype(endian + s.code)
        if len(raw) < s.numel * dtype.itemsize:
            raise ValueError(
                f"record {member!r} holds {len(raw)} bytes, expected {s.numel * dtype.itemsize}"
            )
        roots[key] = np.frombuffer(raw, dtype, count=s.numel)
    return _tensors_to_arrays(obj, roots)


def _read_legacy(f: io.BufferedReader) -> dict[str, np.ndarray]:
    # torch.save(..., _use_new_zipfile_serialization=False): pickles of the magic number, the
    # protocol version and sys_info, then the object (storages as persistent ids), then the list of
    # storage keys; then, for each key in that order, an int64 element count and the raw elements.
    try:
        magic = _RestrictedUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, IndexError) as err:
        raise ValueError(f"not a torch.save file, a zip archive or an .npz ({err})") from None
    if magic != _TORCH_MAGIC:
        raise ValueError("not a torch.save file, a zip archive or an .npz (wrong magic number)")
    version = _RestrictedUnpickler(f).load()
    if version != _TORCH_LEGACY_PROTOCOL:
        raise ValueError(f"unsupported torch.save protocol version {version}")
    sys_info = _RestrictedUnpickler(f).load()
    endian = (
        "<" if not isinstance(sys_info, Mapping) or sys_info.get("little_endian", True) else ">"
    )
    storages: dict[str, _Storage] = {}
    numels: dict[str, int] = {}

    def persistent_load(pid: Any) -> _Storage:
        s = _storage_from_pid(pid)
        storages.setdefault(s.root, s)
        numels.setdefault(s.root, int(pid[4]))  # the root's size, also for views
        return s

    obj = _RestrictedUnpickler(f, persistent_load).load()
    keys = _RestrictedUnpickler(f).load()
    roots: dict[str, np.ndarray] = {}
    for key in keys:
        key = str(key)
        if key not in storages:
            raise ValueError(f"storage {key!r} is listed but no tensor uses it")
        dtype = np.dtype(endian + storages[key].code)
        (numel,) = struct.unpack(endian + "q", f.read(8))
        if numel != numels[key]:
            raise ValueError(
                f"storage {key!r}: {numel} elements in the file, {numels[key]} in the pickle"
            )
        raw = f.read(numel * dtype.itemsize)
        if len(raw) != numel * dtype.itemsize:
            raise ValueError(
                f"storage {key!r}: file ends after {len(raw)} of {numel * dtype.itemsize} bytes"
            )
        roots[key] = np.frombuffer(raw, dtype)
    absent = [k for k in storages if k not in roots]
    if absent:
        raise ValueError(f"storages {_list_keys(absent)} are used but have no data in the file")
    return _tensors_to_arrays(obj, roots)


def read_torch_state_dict(path: str | PathLike[str]) -> dict[str, np.ndarray]:
    """Read a ``torch.save``-d state dict into NumPy arrays, without importing torch.

    Handles the zip format (``<archive>/data.pkl`` plus raw little- or big-endian storages
    ``<archive>/data/<key>``) and the legacy stream format. Tensors are rebuilt from their storage,
    storage offset, size and stride (so views and transposed tensors come back right), copied to
    native byte order.

    Security: the pickle is read by a restricted unpickler whose only globals are
    ``collections.OrderedDict``, ``torch._utils._rebuild_tensor(_v2)``,
    ``torch._utils._rebuild_parameter`` and the ``torch.*Storage`` types, all mapped to local
    stand-ins; anything else (``os.system``, ``builtins.eval``, a model class) raises
    :class:`pickle.UnpicklingError`, so nothing in the file is executed.

    Args:
        path: the ``.pth`` / ``.pt`` file.

    Returns:
        name -> NumPy array, in the file's order.

    Raises:
        pickle.UnpicklingError: the pickle names a global outside the allowed set.
        ValueError: the file is not a ``torch.save`` file of a flat state dict, or is truncated.
    """
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            pkls = [n for n in zf.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if len(pkls) != 1:
                raise ValueError(
                    f"{path}: a zip archive without exactly one data.pkl, not a torch.save file"
                )
            return _read_zip(zf, pkls[0])
    with open(path, "rb") as f:
        return _read_legacy(f)


def load_inception_params(path: str | PathLike[str]) -> Params:
    """Load the FID Inception-v3 weights from the user's file; nothing is ever downloaded.

    Accepts pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (read by
    :func:`read_torch_state_dict`, without torch) or an ``.npz`` with the same state-dict names
    (torch layout, e.g. written by ``np.savez(path, **{k: v.numpy() for k, v in sd.items()})``).
    The format is recognised from the content: a zip with a ``data.pkl`` is a torch file, another
    zip an ``.npz``, anything else the legacy torch format.

    Args:
        path: the weights file.

    Returns:
        The parameter pytree of :func:`inception_params_from_state_dict`.

    Raises:
        ValueError: naming the key when one is missing or mis-shaped (both shapes), or when the
            file is not one of the formats above.
        pickle.UnpicklingError: a ``.pth`` whose pickle names a global outside the allowed set.
    """
    is_npz = False
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            is_npz = not any(n == "data.pkl" or n.endswith("/data.pkl") for n in zf.namelist())
    if is_npz:
        with np.load(path, allow_pickle=False) as npz:
            state_dict = {k: npz[k] for k in npz.files}
    else:
        state_dict = read_torch_state_dict(path)
    return inception_params_from_state_dict(state_dict)


# --------------------------------------------------------------------------------------------
# The network.


def _check_images(name: str, images: Any) -> None:
    shape = tuple(np.shape(images))
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"{name}: expected shape (n, h, w, 3) (NHWC RGB), got {shape}")


def _to_unit_range(images: Any) -> Array:
    dtype = jnp.result_type(images)
    if dtype == jnp.uint8:
        return jnp.asarray(images, jnp.float32) / 255.0
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            f"images: expected uint8 (0..255) or floats in [0, 1], got {dtype} "
            f"with shape {tuple(np.shape(images))}"
        )
    return jnp.asarray(images, jnp.float32)


def resize_bilinear(
    images: Float[Array, "n h w c"], size: int = FID_IMAGE_SIZE
) -> Float[Array, "n s s c"]:
    """Bilinear resize to ``size × size``, as torch's ``F.interpolate(align_corners=False)``.

    Output pixel $i$ samples the input at $(i + \\tfrac12)\\,h_{in}/h_{out} - \\tfrac12$ (half-pixel
    centres), interpolating its two neighbours per axis, with samples beyond the edge taking the
    edge pixel; no anti-aliasing filter when shrinking (torch has none either). This is
    :func:`jax.image.resize` with ``method="linear", antialias=False``; at the same size it is the
    identity.

    Args:
        images: ``[n, h, w, c]`` floats.
        size: output height and width.

    Returns:
        ``[n, size, size, c]`` in the input's float dtype.
    """
    if jnp.ndim(images) != 4:
        raise ValueError(f"images: expected shape (n, h, w, c), got {tuple(jnp.shape(images))}")
    check_positive("size", size)
    n, _, _, c = images.shape
    return jax.image.resize(images, (n, size, size, c), method="linear", antialias=False)


def preprocess_images(
    images: Shaped[Array, "n h w 3"], *, resize: bool = True
) -> Float[Array, "n hh ww 3"]:
    """pytorch-fid's input pipeline: to $[0, 1]$, bilinear resize to 299×299, then $2x - 1$.

    Args:
        images: ``[n, h, w, 3]`` RGB, either ``uint8`` in 0..255 (divided by 255 first, as
            ``ToTensor`` does to image files) or floats in $[0, 1]$.
        resize: resize to 299×299 (FID always does; ``False`` feeds the network the given size,
            which must be at least 75×75).

    Returns:
        float32 ``[n, 299, 299, 3]`` (or ``[n, h, w, 3]``) in $[-1, 1]$.
    """
    _check_images("images", images)
    x = _to_unit_range(images)
    if resize:
        x = resize_bilinear(x, FID_IMAGE_SIZE)
    elif min(x.shape[1:3]) < _MIN_SIZE:
        raise ValueError(
            f"images: without resize the network needs h, w >= {_MIN_SIZE}, "
            f"got shape {tuple(x.shape)}"
        )
    return 2.0 * x - 1.0


def _conv_bn_relu(params: Params, name: str, x: Array) -> Array:
    layer = _LAYERS[name]
    p = params
    for part in name.split("."):
        p = p[part]
    y = jax.lax.conv_general_dilated(
        x,
        p["kernel"],
        window_strides=(layer.stride, layer.stride),
        padding=tuple((q, q) for q in layer.padding),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=jax.lax.Precision.HIGHEST,
    )
    scale = p["scale"] * jax.lax.rsqrt(p["var"] + _BN_EPS)
    return jax.nn.relu(y * scale + (p["bias"] - p["mean"] * scale))


def _max_pool(x: Array, *, stride: int, pad: int) -> Array:
    """3×3 max pool; padding counts as $-\\infty$ (torch's ``max_pool2d``)."""
    return jax.lax.reduce_window(
        x,
        -jnp.inf,
        jax.lax.max,
        (1, 3, 3, 1),
        (1, stride, stride, 1),
        ((0, 0), (pad, pad), (pad, pad), (0, 0)),
    )


def _avg_pool_valid(x: Array) -> Array:
    """3×3 stride-1 average over the in-image pixels only (TF; ``count_include_pad=False``)."""
    window, strides, pads = (1, 3, 3, 1), (1, 1, 1, 1), ((0, 0), (1, 1), (1, 1), (0, 0))
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, pads)
    ones = jnp.ones((1, *x.shape[1:3], 1), x.dtype)
    count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, strides, pads)
    return total / count


def _block_a(params: Params, name: str, x: Array) -> Array:  # FIDInceptionA
    c = functools.partial(_conv_bn_relu, params)
    b1 = c(f"{name}.branch1x1", x)
    b5 = c(f"{name}.branch5x5_2", c(f"{name}.branch5x5_1", x))
    b3 = c(f"{name}.branch3x3dbl_3", c(f"{name}.branch3x3dbl_2", c(f"{name}.branch3x3dbl_1", x)))
    bp = c(f"{name}.branch_pool", _avg_pool_valid(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


def _block_b(params: Params, name: str, x: Array) -> Array:  # InceptionB (Mixed_6a)
    c = functools.partial(_conv_bn_relu, params)
    b3 = c(f"{name}.branch3x3", x)
    bd = c(f"{name}.branch3x3dbl_3", c(f"{name}.branch3x3dbl_2", c(f"{name}.branch3x3dbl_1", x)))
    return jnp.concatenate([b3, bd, _max_pool(x, stride=2, pad=0)], axis=-1)


def _block_c(params: Params, name: str, x: Array) -> Array:  # FIDInceptionC
    c = functools.partial(_conv_bn_relu, params)
    b1 = c(f"{name}.branch1x1", x)
    b7 = x
    for i in (1, 2, 3):
        b7 = c(f"{name}.branch7x7_{i}", b7)
    bd = x
    for i in (1, 2, 3, 4, 5):
        bd = c(f"{name}.branch7x7dbl_{i}", bd)
    bp = c(f"{name}.branch_pool", _avg_pool_valid(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


def _block_d(params: Params, name: str, x: Array) -> Array:  # InceptionD (Mixed_7a)
    c = functools.partial(_conv_bn_relu, params)
    b3 = c(f"{name}.branch3x3_2", c(f"{name}.branch3x3_1", x))
    b7 = x
    for i in (1, 2, 3, 4):
        b7 = c(f"{name}.branch7x7x3_{i}", b7)
    return jnp.concatenate([b3, b7, _max_pool(x, stride=2, pad=0)], axis=-1)


def _block_e(params: Params, name: str, x: Array, *, pool: str) -> Array:  # FIDInceptionE_1 / _2
    c = functools.partial(_conv_bn_relu, params)
    b1 = c(f"{name}.branch1x1", x)
    h = c(f"{name}.branch3x3_1", x)
    b3 = jnp.concatenate([c(f"{name}.branch3x3_2a", h), c(f"{name}.branch3x3_2b", h)], axis=-1)
    h = c(f"{name}.branch3x3dbl_2", c(f"{name}.branch3x3dbl_1", x))
    bd = jnp.concatenate(
        [c(f"{name}.branch3x3dbl_3a", h), c(f"{name}.branch3x3dbl_3b", h)], axis=-1
    )
    # E_1 averages over valid pixels (TF); E_2 max-pools, a quirk of the TF graph kept by the port.
    pooled = _avg_pool_valid(x) if pool == "avg" else _max_pool(x, stride=1, pad=1)
    bp = c(f"{name}.branch_pool", pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


_MIXED: tuple[tuple[str, Callable[[Params, str, Array], Array]], ...] = (
    ("Mixed_5b", _block_a),
    ("Mixed_5c", _block_a),
    ("Mixed_5d", _block_a),
    ("Mixed_6a", _block_b),
    ("Mixed_6b", _block_c),
    ("Mixed_6c", _block_c),
    ("Mixed_6d", _block_c),
    ("Mixed_6e", _block_c),
    ("Mixed_7a", _block_d),
    ("Mixed_7b", functools.partial(_block_e, pool="avg")),
    ("Mixed_7c", functools.partial(_block_e, pool="max")),
)


def inception_activations(
    params: Params, images: Shaped[Array, "n h w 3"], *, resize: bool = True
) -> dict[str, Float[Array, "n ..."]]:
    """Every stage's output of the FID Inception-v3, by name (for features other than pool3).

    Keys, in order: ``Conv2d_1a_3x3``, ``Conv2d_2a_3x3``, ``Conv2d_2b_3x3``, ``maxpool1``
    (pytorch-fid's 64-d block), ``Conv2d_3b_1x1``, ``Conv2d_4a_3x3``, ``maxpool2`` (192-d),
    ``Mixed_5b`` ... ``Mixed_6e`` (768-d, before the aux head), ``Mixed_7a`` ... ``Mixed_7c``, and
    ``pool3`` ``[n, 2048]`` (the global average of ``Mixed_7c``: FID's features). Under ``jit``
    the outputs one does not use are not kept.

    Args:
        params: from :func:`load_inception_params`.
        images: see :func:`preprocess_images` (uint8 0..255 or floats in [0, 1], NHWC RGB).
        resize: see :func:`preprocess_images`.

    Returns:
        name -> float32 NHWC activation (``pool3``: ``[n, 2048]``).
    """
    x = preprocess_images(images, resize=resize)
    acts: dict[str, Array] = {}
    for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
        x = acts[name] = _conv_bn_relu(params, name, x)
    x = acts["maxpool1"] = _max_pool(x, stride=2, pad=0)
    for name in ("Conv2d_3b_1x1", "Conv2d_4a_3x3"):
        x = acts[name] = _conv_bn_relu(params, name, x)
    x = acts["maxpool2"] = _max_pool(x, stride=2, pad=0)
    for name, block in _MIXED:
        x = acts[name] = block(params, name, x)
    acts["pool3"] = jnp.mean(x, axis=(1, 2))
    return acts


def inception_features(
    params: Params, images: Shaped[Array, "n h w 3"], *, resize: bool = True
) -> Float[Array, "n 2048"]:
    """FID's 2048-d pool3 features: the FID Inception-v3 on pytorch-fid's preprocessing.

    Pure and jit-compatible (``jax.jit(inception_features, static_argnames="resize")``); each
    example's features depend on that example only.

    Args:
        params: from :func:`load_inception_params` (or :func:`random_inception_params` in tests).
        images: ``[n, h, w, 3]`` RGB, NHWC: ``uint8`` in 0..255, or floats in $[0, 1]$ (what a
            sampler's output becomes after $(x + 1) / 2$ and clipping).
        resize: bilinear resize to 299×299 first (FID: always).

    Returns:
        float32 ``[n, 2048]``.

    Raises:
        ValueError: ``images`` is not ``[n, h, w, 3]``, not uint8/float, or (``resize=False``)
            smaller than 75×75.
    """
    return inception_activations(params, images, resize=resize)["pool3"]


_features_jit = jax.jit(inception_features, static_argnames=("resize",))


def extract_features(
    params: Params, images: Any, *, batch_size: int = 50, resize: bool = True
) -> np.ndarray:
    """:func:`inception_features` over a large host array, ``batch_size`` images at a time.

    The last batch is padded (with copies of its first image, dropped afterwards) so that one
    compiled program serves every batch (:func:`~kexue_jax.metrics.batched.apply_in_batches`).

    Args:
        params: from :func:`load_inception_params`.
        images: ``[n, h, w, 3]`` host or device array, uint8 0..255 or floats in [0, 1].
        batch_size: images per device call.
        resize: see :func:`inception_features`.

    Returns:
        float32 NumPy ``[n, 2048]``.
    """
    _check_images("images", images)
    # _features_jit takes the weights as an argument: one compiled program for every call, and no
    # 90 MB of weights baked into it as constants (hence jit=False).
    features = apply_in_batches(
        lambda batch: _features_jit(params, batch, resize=resize), images, batch_size=batch_size, jit=False
    )
    return features.astype(np.float32, copy=False)


def fid_from_features(features_a: Any, features_b: Any) -> float:
    """Fréchet distance of two feature sets' Gaussians: FID when they are pool3 features.

    With $n$ and $m$ at least the feature dimension $d$ (FID's 50,000 samples) this is
    :func:`frechet_distance` of :func:`feature_statistics`. With fewer samples than dimensions
    the covariances $C_1 = X_1^\\top X_1 / (n - 1)$, $C_2 = X_2^\\top X_2 / (m - 1)$ ($X_i$ the
    centred features, one row per sample) have rank $< d$, and the same number comes exactly from
    the $n \\times m$ cross-Gram matrix instead of two $d \\times d$ eigendecompositions: the
    nonzero eigenvalues of $C_1^{1/2} C_2 C_1^{1/2}$ are those of $C_1 C_2$, hence of
    $M M^\\top$ with $M = X_1 X_2^\\top / \\sqrt{(n-1)(m-1)}$, so
    $\\mathrm{tr}(C_1^{1/2} C_2 C_1^{1/2})^{1/2} = \\|M\\|_*$ (the sum of $M$'s singular values),
    $\\mathrm{tr}\\,C_i = \\|X_i\\|_F^2 / (n_i - 1)$, all in float64.

    It is **FID** only for pool3 features of the real weights, on 50,000 samples (module docstring).

    Args:
        features_a: ``[n, d]``, $n \\ge 2$.
        features_b: ``[m, d]``, $m \\ge 2$.

    Returns:
        The squared Fréchet distance, a float $\\ge 0$.

    Raises:
        ValueError: shapes other than ``[n, d]``, ``[m, d]`` with $n, m \\ge 2$; non-finite values.
    """
    fa = np.asarray(features_a, np.float64)
    fb = np.asarray(features_b, np.float64)
    if (
        fa.ndim != 2
        or fb.ndim != 2
        or fa.shape[1] != fb.shape[1]
        or min(fa.shape[0], fb.shape[0]) < 2
    ):
        raise ValueError(
            f"features_a, features_b: expected shapes (n, d) and (m, d) with n, m >= 2, "
            f"got {fa.shape} and {fb.shape}"
        )
    n, d = fa.shape
    m = fb.shape[0]
    if max(n, m) >= d:
        return frechet_distance(*feature_statistics(fa), *feature_statistics(fb))
    if not (np.all(np.isfinite(fa)) and np.all(np.isfinite(fb))):
        raise ValueError("features_a, features_b: expected finite values")
    mu_a, mu_b = fa.mean(axis=0), fb.mean(axis=0)
    xa, xb = fa - mu_a, fb - mu_b
    cross = xa @ xb.T / np.sqrt((n - 1) * (m - 1))
    tr_sqrt = float(np.sum(np.linalg.svd(cross, compute_uv=False)))
    diff = mu_a - mu_b
    value = float(diff @ diff) + float(np.sum(xa * xa)) / (n - 1) + float(np.sum(xb * xb)) / (m - 1)
    return max(value - 2.0 * tr_sqrt, 0.0)


def fid(
    params: Params, images_a: Any, images_b: Any, *, batch_size: int = 50, resize: bool = True
) -> float:
    """FID between two image sets: pool3 features of both, then :func:`fid_from_features`.

    Args:
        params: from :func:`load_inception_params`.
        images_a: ``[n, h, w, 3]`` uint8 0..255 or floats in [0, 1] (e.g. 50,000 samples).
        images_b: ``[m, h', w', 3]`` likewise (e.g. the training set).
        batch_size: images per device call.
        resize: see :func:`inception_features` (FID: ``True``).

    Returns:
        The FID as a float. For a fixed reference set, compute its features once with
        :func:`extract_features` and reuse them with :func:`fid_from_features`.
    """
    fa = extract_features(params, images_a, batch_size=batch_size, resize=resize)
    fb = extract_features(params, images_b, batch_size=batch_size, resize=resize)
    return fid_from_features(fa, fb)
