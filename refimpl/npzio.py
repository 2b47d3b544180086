"""Safe, deterministic ``.npz`` reading and writing.

Writing goes to a temporary file in the target directory, then ``os.replace``:
a crash or an error never leaves a half-written file, and an existing file
survives a failed write. Zip entries carry a fixed timestamp and arrays are
stored little-endian and C-ordered, so the same arrays always give the same
bytes (two golden exports are identical). Reading never unpickles.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

import numpy as np

_FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def little_endian(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return np.asarray(a, order="C")   # not ascontiguousarray: it turns a 0-d array into shape (1,)


#: The temporary name of an atomic write of ``NAME``: ``.NAME.<mkstemp's 8 characters>.tmp``.
TEMP_SUFFIX = ".tmp"
_MKSTEMP_PART = r"[a-z0-9_]{8}"


def temp_name_pattern(name: str) -> re.Pattern:
    """The names :func:`atomic_write_bytes` gives its temporary files for a target called ``name``."""
    return re.compile(rf"\.{re.escape(name)}\.{_MKSTEMP_PART}{re.escape(TEMP_SUFFIX)}")


def remove_stale_temp_files(directory, names) -> list:
    """Remove the temporary files an interrupted :func:`atomic_write_bytes` left in ``directory`` for the
    targets ``names`` (a kill -9 between write and rename); nothing else. Returns the removed paths.
    Call it where a command starts, before it writes, in a directory it owns."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    patterns = [temp_name_pattern(n) for n in names]
    removed = []
    for p in directory.iterdir():
        if p.is_file() and not p.is_symlink() and any(pat.fullmatch(p.name) for pat in patterns):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(fileobj)`` on a temporary file next to ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())     # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` (name -> array; names may contain '/') atomically and deterministically."""
    for name, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise ValueError(f"write_npz: array '{name}' has dtype object, which cannot be stored without pickle")

    def write(f: IO[bytes]) -> None:
        zf = zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED)
        try:
            for name in sorted(arrays):
                info = zipfile.ZipInfo(name + ".npy", date_time=_FIXED_DATE)
                info.compress_type = zipfile.ZIP_STORED
                with zf.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, little_endian(arrays[name]), allow_pickle=False)
        except BaseException:
            # The temporary file is discarded. Closing a half-written archive can raise
            # its own error ("open writing handle"), which would hide the first one
            # (a Ctrl-C the caller handles, a full disk): close quietly, re-raise the first.
            with contextlib.suppress(Exception):
                zf.close()
            zf.fp = None          # nothing left for ZipFile.__del__ to close
            raise
        zf.close()

    atomic_write_bytes(path, write)


def read_npz(path: str | os.PathLike, what: str = "file") -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` as a dict, loaded eagerly without pickle.

    A missing, corrupt, single-``.npy`` or pickled file raises one ValueError
    naming ``what``, the path and (for a bad entry) the entry.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {path}: no such file")
    where = f"{what} {path}"
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError:
        # neither .npy nor zip magic: np.load would only try pickle, which is refused
        raise ValueError(f"{where}: not a valid .npz file (no .npz or .npy header)") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{where}: not a valid .npz file ({type(exc).__name__}: {exc})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{where}: a single .npy array, not a valid .npz file")
    out = {}
    with loaded:
        for name in loaded.files:
            try:
                out[name] = loaded[name]
            except ValueError as exc:
                if "pickle" in str(exc).lower() or "object arrays" in str(exc).lower():
                    raise ValueError(f"{where}: entry '{name}' holds a pickled (object) array; "
                                     f"refusing to load it") from None
                raise ValueError(f"{where}: entry '{name}' is corrupt ({exc})") from None
            except (OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
                raise ValueError(f"{where}: entry '{name}' is corrupt ({type(exc).__name__}: {exc})") from None
    return out
