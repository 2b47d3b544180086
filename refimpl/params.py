"""theta and phi: names, shapes, initialisation, validation, save and load (SPEC 2, 9).

Both parameter sets are flat ``dict[name, ndarray]`` mappings whose names
are part of the public interface (SPEC 9), so files are portable between
backends. :func:`theta_shapes` and :func:`phi_shapes` list the names in SPEC
9 order; initialisation draws the random arrays in that order from one
``numpy.random.Generator``, so the same seed gives the same parameters.

Files are ``.npz`` archives holding the arrays under their SPEC 9 names plus
two string (never object) arrays: ``__config__`` (the :class:`Config` as
JSON text) and ``__kind__`` ("theta" or "phi"). They are written to a
temporary file in the target directory and renamed over the target, so a
reader never sees a half-written file and a failed save leaves the old file
intact; they are read with ``allow_pickle=False``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from refimpl.config import KERNEL, N_STATS, TOPD_KERNEL0, Config
from refimpl.npzio import read_npz, write_npz
from refimpl.validate import FLOAT_DTYPES

KINDS = ("theta", "phi")
CONFIG_KEY = "__config__"
KIND_KEY = "__kind__"

#: LowRR readouts of SPEC 5, in SPEC 9 order; the first three read (h_lo, h_up),
#: the "lower" ones (h_lo, h_lo) and the "upper" ones (h_up, h_up).
READOUTS = ("zero", "rbf", "first", "lin_lower", "sqr_lower", "lin_upper", "sqr_upper")
#: Number of weight-update planes P1..P10 (length of ``merge/w``).
N_PLANES = 10

# Init constants (SPEC 2 and 9; fixed, not config fields).
PHI_W_STD = 0.01     # W, V entries: N(0, 0.01^2) truncated at 2 std
PHI_B_STD = 0.1      # b entries: N(0, 0.1^2) truncated at 2 std
TRUNCATE_AT = 2.0    # in standard deviations
MERGE_W_INIT = 0.1


# ---------------------------------------------------------------------------------
# names and shapes
# ---------------------------------------------------------------------------------
def theta_shapes(config: Config) -> dict[str, tuple[int, ...]]:
    """SPEC 9 theta names -> shapes, in SPEC 9 order."""
    B, D, Hd, Hs, T, R = (config.batch_size, config.delta_dims, config.h_dims,
                          config.computeh_size, config.topd_size, config.readout_rank)
    K = KERNEL
    shapes: dict[str, tuple[int, ...]] = {}

    def conv_bn(prefix: str, i: int, w_shape: tuple[int, ...], bn_width: int) -> None:
        shapes[f"{prefix}/conv{i}/w"] = w_shape
        shapes[f"{prefix}/bn{i}/gamma"] = (bn_width,)
        shapes[f"{prefix}/bn{i}/beta"] = (bn_width,)

    conv_bn("topd", 0, (TOPD_KERNEL0, 1, T), T)    # ConvBatch
    conv_bn("topd", 1, (K, T, B), B)               # ConvUnit
    conv_bn("topd", 2, (K, B, B), B)               # ConvUnit
    conv_bn("topd", 3, (K, B, T), T)               # ConvBatch
    conv_bn("topd", 4, (K, T, T), T)               # ConvBatch
    shapes["topd/conv5/w"] = (K, T, D)
    shapes["topd/conv5/b"] = (D,)
    shapes["computeh/bn_in/gamma"] = (N_STATS + D,)
    shapes["computeh/bn_in/beta"] = (N_STATS + D,)
    conv_bn("computeh", 0, (K, 3 * N_STATS + 1 + D, Hs), Hs)   # ConvBatch, 13 + D in
    conv_bn("computeh", 1, (K, Hs, Hs), Hs)                     # ConvUnit
    conv_bn("computeh", 2, (K, Hs, Hs), Hs)                     # ConvBatch
    conv_bn("computeh", 3, (K, Hs, Hd), Hd)                     # ConvUnit
    shapes["errprop/w"] = (Hd, D)
    shapes["errprop/b"] = (D,)
    for p in READOUTS:
        shapes[f"readout/{p}/a"] = (Hd, R)
        shapes[f"readout/{p}/b"] = (Hd, R)
    shapes["merge/w"] = (N_PLANES,)
    shapes["bias/w"] = (Hd,)
    return shapes


def stage_theta_shapes(prefix: str, config: Config) -> dict[str, tuple[int, ...]]:
    """The SPEC 9 theta names starting with ``prefix + "/"`` -> shapes, in SPEC 9 order."""
    return {n: s for n, s in theta_shapes(config).items() if n.startswith(prefix + "/")}


def phi_shapes(config: Config) -> dict[str, tuple[int, ...]]:
    """SPEC 9 phi names -> shapes: layer<l>/W, layer<l>/V [N^{l-1}, N^l], layer<l>/b [N^l]."""
    shapes: dict[str, tuple[int, ...]] = {}
    sizes = config.layer_sizes
    for l in range(1, len(sizes)):
        shapes[f"layer{l}/W"] = (sizes[l - 1], sizes[l])
        shapes[f"layer{l}/V"] = (sizes[l - 1], sizes[l])
        shapes[f"layer{l}/b"] = (sizes[l],)
    return shapes


def param_shapes(kind: str, config: Config) -> dict[str, tuple[int, ...]]:
    _check_kind("param_shapes", kind)
    return theta_shapes(config) if kind == "theta" else phi_shapes(config)


# ---------------------------------------------------------------------------------
# initialisation
# ---------------------------------------------------------------------------------
def truncated_normal(rng: np.random.Generator, shape: int | tuple[int, ...], std: float,
                     at: float = TRUNCATE_AT) -> np.ndarray:
    """N(0, std^2) entries truncated at ``at`` std by redrawing the ones outside (float64).

    Vectorised: every round redraws all entries still out of range at once.
    """
    z = rng.standard_normal(shape)
    bad = np.abs(z) > at
    while bad.any():
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(z) > at
    return z * std


def _check_init_args(fn: str, config, rng, dtype) -> np.dtype:
    if not isinstance(config, Config):
        raise ValueError(f"{fn}: argument 'config' must be a Config, got {type(config).__name__}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"{fn}: argument 'rng' must be a numpy.random.Generator, got {type(rng).__name__}")
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"{fn}: argument 'dtype' must be float32 or float64, got {dtype}")
    return dtype


def init_theta(config: Config, rng: np.random.Generator, dtype: npt.DTypeLike = np.float64) -> dict[str, np.ndarray]:
    """A fresh theta, the rule's parameters, initialised as SPEC 9 says.

    Convolution weights are drawn from N(0, 1/(K Cin)); the readouts, ``errprop/w`` and
    ``bias/w`` from N(0, 1/Hd); ``errprop/b`` and ``topd/conv5/b`` are 0, batch-norm gammas 1
    and betas 0, ``merge/w`` 0.1. Drawn in SPEC 9 order, in float64 and then cast, so float32
    and float64 initialisations hold the same values.

    Parameters
    ----------
    config : Config
        The sizes (TopD's weights depend on B, so a theta belongs to one batch size).
    rng : numpy.random.Generator
        The source of the draws.
    dtype : dtype, default float64
        float32 or float64.

    Returns
    -------
    dict[str, ndarray]
        Every theta name of SPEC 9 (``topd/conv0/w``, ``readout/<p>/a``, ``merge/w``, ...),
        with its shape for ``config``.
    """
    dtype = _check_init_args("init_theta", config, rng, dtype)
    hd_std = np.sqrt(1.0 / config.h_dims)
    theta = {}
    for name, shape in theta_shapes(config).items():
        leaf = name.rsplit("/", 1)[1]
        if "/conv" in name and leaf == "w":
            k, c_in = shape[0], shape[1]
            value = rng.standard_normal(shape) * np.sqrt(1.0 / (k * c_in))
        elif name.startswith("readout/") or name in ("errprop/w", "bias/w"):
            value = rng.standard_normal(shape) * hd_std
        elif name == "merge/w":
            value = np.full(shape, MERGE_W_INIT)
        elif leaf == "gamma":
            value = np.ones(shape)
        elif leaf in ("beta", "b"):   # bn betas, errprop/b, topd/conv5/b
            value = np.zeros(shape)
        else:  # pragma: no cover - theta_shapes and this table are edited together
            raise AssertionError(f"init_theta: no init rule for {name}")
        theta[name] = value.astype(dtype)
    return theta


def init_phi(config: Config, rng: np.random.Generator, dtype: npt.DTypeLike = np.float64) -> dict[str, np.ndarray]:
    """A fresh phi, the base MLP's parameters, initialised as SPEC 2 says.

    W and V are drawn from N(0, 0.01^2) and b from N(0, 0.1^2), each truncated at 2 standard
    deviations by redrawing, in SPEC 9 order (``layer1/W``, ``layer1/V``, ``layer1/b``,
    ``layer2/W``, ...).

    Parameters
    ----------
    config : Config
        The sizes [N^0, ..., N^L].
    rng : numpy.random.Generator
        The source of the draws.
    dtype : dtype, default float64
        float32 or float64.

    Returns
    -------
    dict[str, ndarray]
        For each layer l = 1..L: ``layer<l>/W`` [N^{l-1}, N^l] (forward weights),
        ``layer<l>/V`` [N^{l-1}, N^l] (the backward weights the rule propagates through) and
        ``layer<l>/b`` [N^l].
    """
    dtype = _check_init_args("init_phi", config, rng, dtype)
    phi = {}
    for name, shape in phi_shapes(config).items():
        std = PHI_B_STD if name.endswith("/b") else PHI_W_STD
        phi[name] = truncated_normal(rng, shape, std).astype(dtype)
    return phi


# ---------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------
def _check_kind(fn: str, kind) -> None:
    if kind not in KINDS:
        raise ValueError(f"{fn}: argument 'kind' must be 'theta' or 'phi', got {kind!r}")


def validate_params(kind: str, arrays: Mapping[str, np.ndarray], config: Config, *, fn: str | None = None,
                    dtype: npt.DTypeLike | None = None, finite: bool = True) -> np.dtype:
    """Check a theta or phi mapping against ``config``; return its (common) dtype.

    Raises ValueError naming every missing name, every unexpected name, every
    wrong shape, a non-float or mixed dtype (or one other than ``dtype`` when
    given), and any NaN/Inf (when ``finite``). For theta, a batch size other
    than ``config.batch_size`` (the last axis of ``topd/conv1/w``) is reported
    as such, before the shape list.
    """
    _check_kind("validate_params", kind)
    fn = fn or f"validate_{kind}"
    if not isinstance(config, Config):
        raise ValueError(f"{fn}: argument 'config' must be a Config, got {type(config).__name__}")
    if not isinstance(arrays, Mapping):
        raise ValueError(f"{fn}: {kind} must be a mapping name -> array, got {type(arrays).__name__}")
    expected = param_shapes(kind, config)
    missing = [n for n in expected if n not in arrays]
    unexpected = sorted(str(n) for n in arrays if n not in expected)
    problems = []
    if missing:
        problems.append(f"missing name(s) {missing}")
    if unexpected:
        problems.append(f"unexpected name(s) {unexpected}")
    not_arrays = [n for n in expected if n in arrays and not isinstance(arrays[n], np.ndarray)]
    if not_arrays:
        problems.append(f"not numpy arrays: {not_arrays}")
    if problems:
        raise ValueError(f"{fn}: {kind} does not match the config: " + "; ".join(problems))

    if kind == "theta":
        conv1 = arrays["topd/conv1/w"]
        if conv1.ndim == 3 and conv1.shape[-1] != config.batch_size:
            raise ValueError(
                f"{fn}: theta was built for batch size {conv1.shape[-1]} (last axis of "
                f"'topd/conv1/w', shape {conv1.shape}), but the config's batch_size is "
                f"{config.batch_size}; TopD is tied to the batch size (SPEC 4)")
    wrong = [f"'{n}' {tuple(arrays[n].shape)} (expected {shape})"
             for n, shape in expected.items() if tuple(arrays[n].shape) != shape]
    if wrong:
        raise ValueError(f"{fn}: {kind} has wrong shape(s): " + ", ".join(wrong))

    dtypes = {n: arrays[n].dtype for n in expected}
    bad = [f"'{n}' {d}" for n, d in dtypes.items() if d not in FLOAT_DTYPES]
    if bad:
        raise ValueError(f"{fn}: {kind} arrays must be float32 or float64, got " + ", ".join(bad))
    seen = sorted({str(d) for d in dtypes.values()})
    if len(seen) > 1:
        first = next(iter(dtypes.values()))
        odd = [f"'{n}' {d}" for n, d in dtypes.items() if d != first]
        raise ValueError(f"{fn}: {kind} arrays must share one dtype, got {seen} "
                         f"(first '{next(iter(dtypes))}' is {first}; differing: {', '.join(odd)})")
    common = next(iter(dtypes.values()))
    if dtype is not None and common != np.dtype(dtype):
        raise ValueError(f"{fn}: {kind} arrays are {common}, expected {np.dtype(dtype)}")
    if finite:
        nonfinite = [n for n in expected if not np.isfinite(arrays[n]).all()]
        if nonfinite:
            raise ValueError(f"{fn}: {kind} contains NaN or Inf in {nonfinite}")
    return common


def validate_theta(theta: Mapping[str, np.ndarray], config: Config, **kwargs: Any) -> np.dtype:
    """:func:`validate_params` for theta (refuses a theta built for another batch size)."""
    return validate_params("theta", theta, config, **kwargs)


def validate_phi(phi: Mapping[str, np.ndarray], config: Config, **kwargs: Any) -> np.dtype:
    """:func:`validate_params` for phi."""
    return validate_params("phi", phi, config, **kwargs)


# ---------------------------------------------------------------------------------
# save / load
# ---------------------------------------------------------------------------------
def save_params(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], config: Config, kind: str) -> None:
    """Write a theta or phi to an ``.npz`` file, with its config and kind embedded.

    The arrays are validated against ``config`` first. The archive is written to a temporary
    file in the same directory and renamed over ``path`` (``os.replace``, atomic on POSIX),
    so ``path`` always holds either the old or the complete new file.

    Parameters
    ----------
    path : str or path-like
        The file to write (``.npz``).
    arrays : Mapping[str, ndarray]
        Every SPEC 9 name of ``kind`` for ``config``, one float dtype, finite.
    config : Config
        The configuration the arrays belong to; stored as JSON in the file.
    kind : str
        ``"theta"`` or ``"phi"``.

    Raises
    ------
    ValueError
        If an array is missing, unexpected, of the wrong shape or dtype, or not finite.
    """
    _check_kind("save_params", kind)
    validate_params(kind, arrays, config, fn="save_params")
    path = os.fspath(path)
    payload = {name: np.ascontiguousarray(arrays[name]) for name in param_shapes(kind, config)}
    payload[CONFIG_KEY] = np.array(config.to_json())
    payload[KIND_KEY] = np.array(kind)
    write_npz(path, payload)     # temporary file + rename: the old file survives any failure


def _read_string(path: str, data: dict, key: str, what: str) -> str:
    if key not in data:
        raise ValueError(f"load_params: '{path}' has no embedded {what} (entry '{key}')")
    value = data[key]
    if value.ndim != 0 or value.dtype.kind != "U":
        raise ValueError(f"load_params: '{path}' entry '{key}' must be a 0-d string array, "
                         f"got dtype {value.dtype} shape {value.shape}")
    return str(value[()])


def load_params(path: str | os.PathLike, kind: str | None = None,
                config: Config | None = None) -> tuple[dict[str, np.ndarray], Config]:
    """Read a theta or phi written by :func:`refimpl.save` (``save_params``).

    The arrays are checked against the stored config: names, shapes, dtypes, finiteness.
    Nothing is unpickled.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file.
    kind : {"theta", "phi"}, optional
        If given, the stored kind must be this one.
    config : Config, optional
        If given, the stored config must equal it (the differing fields are named).

    Returns
    -------
    arrays : dict[str, ndarray]
        The stored theta or phi.
    config : Config
        The stored configuration.

    Raises
    ------
    ValueError
        Naming the file and what does not match, for every failure.
    """
    if kind is not None:
        _check_kind("load_params", kind)
    path = os.fspath(path)
    data = read_npz(path, what="load_params:")
    stored_kind = _read_string(path, data, KIND_KEY, "kind")
    if stored_kind not in KINDS:
        raise ValueError(f"load_params: '{path}' has unknown kind {stored_kind!r}")
    if kind is not None and stored_kind != kind:
        raise ValueError(f"load_params: '{path}' holds {stored_kind}, expected {kind}")
    text = _read_string(path, data, CONFIG_KEY, "config")
    try:
        stored_config = Config.from_json(text)
    except ValueError as e:
        raise ValueError(f"load_params: '{path}' has an invalid embedded config ({e})") from None
    if config is not None:
        if not isinstance(config, Config):
            raise ValueError(f"load_params: argument 'config' must be a Config, got {type(config).__name__}")
        differing = config.diff(stored_config)
        if differing:
            detail = ", ".join(f"{n}: file {getattr(stored_config, n)!r} vs given {getattr(config, n)!r}"
                               for n in differing)
            raise ValueError(f"load_params: '{path}' was saved with another config ({detail})")
    arrays = {k: v for k, v in data.items() if k not in (CONFIG_KEY, KIND_KEY)}
    validate_params(stored_kind, arrays, stored_config, fn=f"load_params: '{path}'")
    order = param_shapes(stored_kind, stored_config)
    return {name: arrays[name] for name in order}, stored_config
