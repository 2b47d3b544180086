"""Reading and writing IDX files (the MNIST / Fashion-MNIST container format).

Layout (all sizes big-endian)::

    byte 0, 1   0x00 0x00                     (magic, part 1)
    byte 2      data type code                (magic, part 2; see DTYPE_CODES)
    byte 3      number of dimensions d >= 1   (magic, part 3)
    4 * d       the d sizes, unsigned 32-bit big-endian
    ...         prod(sizes) items of the data type, big-endian, C order

A file may be gzip-compressed; that is detected from its first two bytes
(0x1f 0x8b), not from its name. Every problem with a file (bad magic, unknown
type code, truncated header or data, trailing bytes, unexpected number of
dimensions, corrupt gzip stream) raises :class:`IDXFormatError`, a
``ValueError`` whose message starts with the file's path and names the
problem.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

#: IDX data type code -> big-endian NumPy dtype.
DTYPE_CODES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF = {dt.newbyteorder("="): code for code, dt in DTYPE_CODES.items()}

_GZIP_MAGIC = b"\x1f\x8b"


class IDXFormatError(ValueError):
    """A malformed IDX file. The message names the file and the problem."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: malformed IDX file: {problem}")


def _read_bytes(path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise IDXFormatError(path, f"corrupt or truncated gzip stream ({e})") from None
    return raw


def parse_idx(raw: bytes, path="<bytes>", expect_ndim: int | None = None) -> np.ndarray:
    """Parse the (already decompressed) bytes of an IDX file; ``path`` only labels errors."""
    if len(raw) < 4:
        raise IDXFormatError(path, f"truncated header: {len(raw)} bytes, the magic number alone needs 4")
    if raw[0] != 0 or raw[1] != 0:
        magic = int.from_bytes(raw[:4], "big")
        raise IDXFormatError(
            path, f"bad magic number 0x{magic:08x}: the first two bytes must be zero")
    code, ndim = raw[2], raw[3]
    if code not in DTYPE_CODES:
        known = ", ".join(f"0x{c:02x}" for c in DTYPE_CODES)
        raise IDXFormatError(path, f"unknown data type code 0x{code:02x} (known: {known})")
    if ndim == 0:
        raise IDXFormatError(path, "number of dimensions is 0")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXFormatError(
            path, f"truncated header: {ndim} dimensions need {header} header bytes, file has {len(raw)}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if expect_ndim is not None and ndim != expect_ndim:
        raise IDXFormatError(
            path, f"wrong number of dimensions: expected {expect_ndim}, found {ndim} (sizes {dims})")
    dtype = DTYPE_CODES[code]
    n_items = int(np.prod(dims, dtype=np.int64)) if dims else 0
    need = n_items * dtype.itemsize
    have = len(raw) - header
    if have < need:
        raise IDXFormatError(
            path, f"truncated data: sizes {dims} of {dtype.name} need {need} bytes, found {have}")
    if have > need:
        raise IDXFormatError(
            path, f"{have - need} trailing bytes after the data (sizes {dims} of {dtype.name} need {need})")
    arr = np.frombuffer(raw, dtype=dtype, count=n_items, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path, expect_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed) into a native-byte-order array.

    ``expect_ndim``, if given, is the number of dimensions the file must have.
    Raises ``FileNotFoundError`` for a missing file and :class:`IDXFormatError`
    (a ``ValueError``) for a malformed one.
    """
    return parse_idx(_read_bytes(path), path=path, expect_ndim=expect_ndim)


def encode_idx(array) -> bytes:
    """The IDX bytes of ``array`` (uncompressed)."""
    a = np.asarray(array)
    if a.ndim == 0 or a.ndim > 255:
        raise ValueError(f"encode_idx: need 1 to 255 dimensions, got {a.ndim}")
    native = a.dtype.newbyteorder("=")
    if native not in _CODE_OF:
        raise ValueError(f"encode_idx: dtype {a.dtype} has no IDX type code "
                         "(uint8, int8, int16, int32, float32, float64)")
    if any(s >= 2 ** 32 for s in a.shape):
        raise ValueError(f"encode_idx: sizes {a.shape} do not fit in 32 bits")
    code = _CODE_OF[native]
    head = bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, dtype=">u4").tobytes()
    return head + np.ascontiguousarray(a, dtype=DTYPE_CODES[code]).tobytes()


def write_idx(path, array, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzip it if ``compress`` (default: the name ends in ``.gz``)."""
    path = Path(path)
    data = encode_idx(array)
    if compress is None:
        compress = path.name.endswith(".gz")
    if compress:
        data = gzip.compress(data, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path
