"""Output arrays whose memory is recycled once every array and view over it is gone.

A planning call returns about 0.8 MB of fresh int64 arrays (DeepSeek-V3: ``phy2log``, ``logcnt``, ``log2phy``).
Memory that fresh usually comes straight from the kernel (the host's allocator gives large blocks back when they are
freed, e.g. after numpy's temporaries), and each of its ~200 pages then costs a page fault on first write: about
0.5 ms per call on a virtual machine, more than the planning itself. This pool keeps the pages of arrays that are
no longer referenced and hands them to the next call of the same size instead.

Every array returned is new and shares memory with no array still alive: a block goes back to the pool only when
the ctypes object exporting it dies, which is after the last array or view over it (numpy views keep their base
alive). Arrays are C-contiguous and writable, with ``owndata`` False.
"""

from __future__ import annotations

import ctypes
import weakref

import numpy as np

#: Free blocks kept per block size, and distinct sizes kept (memory held is bounded by both).
MAX_FREE_PER_SIZE = 4
MAX_SIZES = 16

_INT64 = np.dtype(np.int64)
_exporter_types: dict[int, type] = {}  # block bytes -> ctypes char array type
_free: dict[int, list[np.ndarray]] = {}  # block bytes -> free backing arrays (uint8)
# id(exporter weakref) -> (the weakref, its backing array), while arrays over the exporter live.
_live: dict[int, tuple[weakref.ref, np.ndarray]] = {}


def _recycle(ref: weakref.ref) -> None:
    # Runs when the exporter dies (any thread, under the GIL): list and dict operations here are atomic.
    try:
        entry = _live.pop(id(ref), None)
        if entry is None:
            return
        back = entry[1]
        blocks = _free.get(back.nbytes)
        if blocks is None:
            if len(_free) >= MAX_SIZES:
                return
            blocks = _free.setdefault(back.nbytes, [])
        if len(blocks) < MAX_FREE_PER_SIZE:
            blocks.append(back)
    except (AttributeError, TypeError):  # interpreter exit: module globals already cleared; nothing to keep
        return


def empty_int64(shape: tuple[int, ...]) -> np.ndarray:
    """A new uninitialized C-contiguous int64 array of ``shape`` (every dimension >= 1), on recycled memory when
    a block of that size is free."""
    nbytes = 8
    for d in shape:
        nbytes *= d
    blocks = _free.get(nbytes)
    try:
        back = blocks.pop() if blocks else None
    except IndexError:  # another thread took the last one
        back = None
    if back is None:
        back = np.empty(nbytes, dtype=np.uint8)
    exporter_type = _exporter_types.get(nbytes)
    if exporter_type is None:
        exporter_type = _exporter_types.setdefault(nbytes, ctypes.c_char * nbytes)
    exporter = exporter_type.from_buffer(back)
    ref = weakref.ref(exporter, _recycle)
    _live[id(ref)] = (ref, back)
    return np.ndarray(shape, _INT64, exporter)
