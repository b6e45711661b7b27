"""Loads libwideep (the Swift C ABI) with ctypes and declares its functions.

Search order: ``$WIDEEP_LIB`` (a file, or a folder holding the library), the package folder itself,
then the SwiftPM build folders of the repository this package sits in: ``.build/release``,
``.build/debug``, ``.build/<triple>/release|debug``, then any ``.build-*/`` scratch folder (newest first).
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from pathlib import Path

ABI_VERSION = 4
_LIB_NAMES = ("libwideep.dylib", "libwideep.so") if sys.platform == "darwin" else ("libwideep.so",)

# Status codes, as in include/wideep.h.
OK, INVALID_ARGUMENT, NULL_POINTER, CAPACITY, INFEASIBLE, INTERNAL = range(6)

_i64 = ctypes.c_int64
_i32 = ctypes.c_int32
_pd = ctypes.POINTER(ctypes.c_double)
_pi64 = ctypes.POINTER(ctypes.c_int64)
_str = ctypes.c_char_p
_vp = ctypes.c_void_p  # accepts ctypes pointers, None and plain addresses (ndarray.ctypes.data: the cheapest)
#: ``wideep_log2phy_allocator``: (context, width) -> address of a [layers, experts, width] int64 buffer, or 0.
LOG2PHY_ALLOCATOR = ctypes.CFUNCTYPE(_vp, _vp, _i64)

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


def _newest_first(paths):
    return sorted(paths, key=lambda p: p.stat().st_mtime, reverse=True)


def candidates() -> list[Path]:
    """Every path that is tried, in order."""
    out: list[Path] = []
    env = os.environ.get("WIDEEP_LIB")
    if env:
        p = Path(env)
        out += [p / n for n in _LIB_NAMES] if p.is_dir() else [p]
    here = Path(__file__).resolve().parent
    out += [here / n for n in _LIB_NAMES]
    repo = here.parent.parent
    for n in _LIB_NAMES:
        out += [repo / ".build" / "release" / n, repo / ".build" / "debug" / n]
        out += _newest_first(p for p in repo.glob(f".build/*/release/{n}") if p.is_file())
        out += _newest_first(p for p in repo.glob(f".build/*/debug/{n}") if p.is_file())
        out += _newest_first(p for p in repo.glob(f".build-*/*/release/{n}") if p.is_file())
        out += _newest_first(p for p in repo.glob(f".build-*/*/debug/{n}") if p.is_file())
    return out


def _declare(lib: ctypes.CDLL) -> None:
    lib.wideep_abi_version.restype = _i32
    lib.wideep_abi_version.argtypes = []
    lib.wideep_version.restype = _str
    lib.wideep_version.argtypes = []
    lib.wideep_last_error.restype = _str
    lib.wideep_last_error.argtypes = []
    lib.wideep_plan.restype = _i32
    lib.wideep_plan.argtypes = [_vp, _i64, _i64, _str, _i64, _i64, _i64, _i64, _i32, _vp, _i64, _vp, _vp, _vp]
    lib.wideep_rebalance_experts.restype = _i32
    lib.wideep_rebalance_experts.argtypes = [_vp, _i64, _i64, _str, _i64, _i64, _i64, _i64, _i32, _vp, _vp, _vp,
                                             LOG2PHY_ALLOCATOR, _vp]
    lib.wideep_log2phy.restype = _i32
    lib.wideep_log2phy.argtypes = [_vp, _i64, _i64, _i64, _i64, _vp]
    lib.wideep_split.restype = _i32
    lib.wideep_split.argtypes = [_pi64, _i64, _pi64, _i64, _i64, _str, _pi64]
    lib.wideep_imbalance.restype = _i32
    lib.wideep_imbalance.argtypes = [_pd, _i64, _i64, _pi64, _i64, _i64, _str, _pd, _pd]


def load() -> ctypes.CDLL:
    """Returns the loaded library, loading it on first use; raises OSError listing every place tried."""
    global _lib
    with _lock:
        if _lib is not None:
            return _lib
        tried = candidates()
        for path in tried:
            if not path.is_file():
                continue
            lib = ctypes.CDLL(str(path))
            lib.wideep_abi_version.restype = _i32
            lib.wideep_abi_version.argtypes = []
            version = lib.wideep_abi_version()
            if version != ABI_VERSION:
                raise OSError(f"{path} has wideep C ABI version {version}, this package needs {ABI_VERSION}; "
                              "rebuild it with `swift build -c release --product wideep`")
            _declare(lib)
            _lib = lib
            return lib
        listed = "\n  ".join(str(p) for p in tried)
        raise OSError("libwideep not found. Build it with `swift build -c release --product wideep` in the "
                      "repository, or set WIDEEP_LIB to the library's path. Tried:\n  " + listed)


def path() -> str:
    """File name of the loaded library."""
    return load()._name


def last_error() -> str:
    return (load().wideep_last_error() or b"").decode("utf-8", "replace")


def check(status: int) -> None:
    """Raises the Python exception that matches a wideep status code, with the library's message."""
    if status == OK:
        return
    message = last_error() or f"wideep call failed with status {status}"
    if status in (INVALID_ARGUMENT, NULL_POINTER, CAPACITY, INFEASIBLE):
        raise ValueError(message)
    raise RuntimeError(message)
