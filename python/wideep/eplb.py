"""DeepSeek-compatible EPLB entry points backed by libwideep.

``rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus)`` returns
``(phy2log, log2phy, logcnt)`` exactly as https://github.com/deepseek-ai/EPLB defines them:

* ``phy2log [layers, num_replicas]`` int64: the logical expert of each physical expert; GPU ``g``
  owns physical experts ``[g * num_replicas // num_gpus, (g + 1) * num_replicas // num_gpus)``;
* ``log2phy [layers, experts, X]`` int64: the physical experts of each logical expert, padded with
  -1, where ``X = logcnt.max()`` (rows list physical ids in ascending order);
* ``logcnt [layers, experts]`` int64: replicas per logical expert (always >= 1).

Torch tensors in give CPU torch tensors out; anything else gives numpy arrays. Every call returns new arrays; their
memory may come from earlier results that are no longer referenced anywhere (see ``_outputs``), which spares page
faults.
"""

from __future__ import annotations

import ctypes
import numbers
import threading
from dataclasses import dataclass

import numpy as np

from . import _lib, _outputs

__all__ = ["POLICIES", "rebalance_experts", "imbalance", "split", "ImbalanceReport"]

#: Planner policies: "balanced" (WideEP's default), "deepseek" (DeepSeek's published algorithm),
#: "greedy" (TensorRT-LLM's), "none" (identity; needs num_replicas == experts).
POLICIES = ("balanced", "deepseek", "greedy", "none")
SPLITS = ("balanced", "even")


def _is_torch(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach")


def _to_numpy(x, name: str) -> np.ndarray:
    if _is_torch(x):
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} must be an array of numbers: {exc}") from None
    if a.dtype.kind not in "iuf":  # signed, unsigned or floating (not bool, complex, object, ...)
        raise ValueError(f"{name} must have an integer or floating dtype, got {a.dtype}")
    return a


def _count(value, name: str, minimum: int = 1) -> int:
    if type(value) is int and value >= minimum:  # the common case, without the ABC check
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _loads(weight, name: str = "weight", ndim: int = 2, check_values: bool = True) -> np.ndarray:
    a = _to_numpy(weight, name)
    if a.ndim != ndim or 0 in a.shape:
        shape = "[layers, experts]" if ndim == 2 else "[experts]"
        raise ValueError(f"{name} must be a non-empty {ndim}-D array {shape}, got shape {tuple(a.shape)}")
    a = np.ascontiguousarray(a, dtype=np.float64)
    if not check_values:
        return a
    bad = ~np.isfinite(a) | (a < 0)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}{list(at)} = {a[at]}; loads must be finite and >= 0")
    return a


def _ids(x, name: str, shape: tuple[int, ...]) -> np.ndarray:
    a = _to_numpy(x, name)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must have an integer dtype, got {a.dtype}")
    if tuple(a.shape) != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(a.shape)}")
    return np.ascontiguousarray(a, dtype=np.int64)


def _ptr(a: np.ndarray, ctype):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


def _address(a: np.ndarray):
    """A C-contiguous array's data pointer for a ``c_void_p`` argument, about 3x cheaper than ``a.ctypes.data``."""
    if a.flags.writeable:
        return ctypes.byref(_BYTE.from_buffer(a))
    return a.ctypes.data


_BYTE = ctypes.c_char
_POLICY_NAMES = {p: p.encode() for p in POLICIES}


def _torch_like(template, *arrays):
    if not _is_torch(template):
        return arrays
    import torch

    return tuple(torch.from_numpy(a) for a in arrays)


# The log2phy allocation of the call in progress on this thread (the library calls back on the calling thread).
_pending = threading.local()


@_lib.LOG2PHY_ALLOCATOR
def _allocate_log2phy(_context, width):
    try:
        a = _outputs.empty_int64(_pending.shape + (width,))
    except BaseException as exc:  # noqa: BLE001 - re-raised by rebalance_experts after the call returns
        _pending.error = exc
        return None
    _pending.log2phy = a
    return ctypes.addressof(_BYTE.from_buffer(a))


def rebalance_experts(weight, num_replicas: int, num_groups: int, num_nodes: int, num_gpus: int,
                      policy: str = "balanced", *, allow_same_rank: bool | None = None, current=None):
    """Plans expert replicas and their GPUs for every layer (DeepSeek EPLB's interface).

    Parameters:
        weight: ``[layers, experts]`` expert loads (tokens), any integer or float dtype, numpy or torch.
        num_replicas: physical experts per layer, a multiple of ``num_gpus`` and >= experts.
        num_groups: expert groups (DeepSeek-V3: 8); experts must be a multiple of it.
        num_nodes: server nodes; ``num_gpus`` must be a multiple of it.
        num_gpus: EP ranks.
        policy: one of ``POLICIES``. ``"deepseek"`` reproduces DeepSeek's published algorithm
            (loads rounded to float32 as DeepSeek does).
        allow_same_rank: allow two replicas of one expert on one GPU. Default: True for "deepseek"
            (as DeepSeek does), else only when ``num_replicas > experts * num_gpus`` forces it.
        current: optional ``[layers, num_replicas]`` phy2log in use; the planner then keeps as
            many physical experts in place as it can (migration-aware re-planning).

    Returns:
        ``(phy2log, log2phy, logcnt)``, int64, torch tensors if ``weight`` is a torch tensor.

    Raises:
        ValueError: bad shapes, dtypes, values or an impossible request, with the reason.
    """
    # Shape and dtype here; values (finite, >= 0) are checked by the library in the same pass that reads them.
    loads = _loads(weight, check_values=False)
    layers, experts = loads.shape
    num_replicas = _count(num_replicas, "num_replicas")
    num_groups = _count(num_groups, "num_groups")
    num_nodes = _count(num_nodes, "num_nodes")
    num_gpus = _count(num_gpus, "num_gpus")
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; valid policies: {', '.join(POLICIES)}")
    if num_replicas < experts:
        raise ValueError(f"num_replicas {num_replicas} is smaller than the {experts} experts of weight")
    if allow_same_rank is None:
        allow_same_rank = policy == "deepseek" or num_replicas > experts * num_gpus
    if policy == "deepseek" and not allow_same_rank:
        # DeepSeek plans on weight.float(): round first so ties break the same way. (With same-rank replicas the
        # library follows DeepSeek exactly and rounds to float32 itself.)
        loads = loads.astype(np.float32).astype(np.float64)
    current_ids = None
    if current is not None:
        current_ids = _ids(current, "current", (layers, num_replicas))

    lib = _lib.load()
    phy2log = _outputs.empty_int64((layers, num_replicas))
    logcnt = _outputs.empty_int64((layers, experts))
    # One call: the library plans every layer, then asks _allocate_log2phy for log2phy as wide as the most
    # replicated expert and fills it on its threads.
    pending = _pending
    pending.shape = (layers, experts)
    pending.log2phy = pending.error = None
    status = lib.wideep_rebalance_experts(
        _address(loads), layers, experts, _POLICY_NAMES[policy], num_replicas, num_groups, num_nodes, num_gpus,
        1 if allow_same_rank else 0, None if current_ids is None else _address(current_ids),
        _address(phy2log), _address(logcnt), _allocate_log2phy, None)
    log2phy, error = pending.log2phy, pending.error
    pending.log2phy = pending.error = None
    if error is not None:
        raise error
    _lib.check(status)
    if log2phy is None:
        raise RuntimeError("libwideep returned without allocating log2phy")
    return _torch_like(weight, phy2log, log2phy, logcnt)


@dataclass(frozen=True)
class ImbalanceReport:
    """Per-layer GPU load balance of a placement.

    ``ratio [layers]``: (max - mean) / mean of GPU loads (TensorRT-LLM's imbalance ratio);
    ``balancedness [layers]``: mean / max (DeepSeek's and SGLang's).
    """

    ratio: np.ndarray
    balancedness: np.ndarray

    @property
    def mean(self) -> float:
        """Mean imbalance ratio over layers."""
        return float(self.ratio.mean())

    @property
    def p99(self) -> float:
        """99th percentile (nearest rank) of the imbalance ratio over layers."""
        s = np.sort(self.ratio)
        return float(s[min(len(s) - 1, max(0, int(np.ceil(0.99 * len(s))) - 1))])


def imbalance(weight, phy2log, num_gpus: int, split: str = "even") -> ImbalanceReport:
    """GPU load imbalance of ``phy2log [layers, num_replicas]`` under loads ``weight [layers, experts]``.

    ``split="even"`` gives each replica ``load / logcnt`` (DeepSeek's model); ``split="balanced"``
    routes whole tokens with WideEP's ReplicaSplit (``weight`` must hold whole token counts).
    """
    loads = _loads(weight)
    layers, experts = loads.shape
    num_gpus = _count(num_gpus, "num_gpus")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    p = _to_numpy(phy2log, "phy2log")
    if p.ndim != 2 or p.shape[0] != layers:
        raise ValueError(f"phy2log must have shape [{layers}, num_replicas], got {list(p.shape)}")
    ids = _ids(p, "phy2log", tuple(p.shape))
    ratio = np.empty(layers, dtype=np.float64)
    bal = np.empty(layers, dtype=np.float64)
    status = _lib.load().wideep_imbalance(
        _ptr(loads, ctypes.c_double), layers, experts, _ptr(ids, ctypes.c_int64), ids.shape[1], num_gpus,
        split.encode(), _ptr(ratio, ctypes.c_double), _ptr(bal, ctypes.c_double))
    _lib.check(status)
    return ImbalanceReport(ratio=ratio, balancedness=bal)


def split(counts, phy2log, num_gpus: int, policy: str = "balanced"):
    """Tokens for each physical expert of one layer in one batch (WideEP's ReplicaSplit).

    ``counts [experts]``: this batch's tokens per logical expert (whole numbers >= 0);
    ``phy2log [num_replicas]``: the layer's placement. Returns ``quotas [num_replicas]`` int64; the
    quotas of an expert's replicas sum to its count. ``policy="balanced"`` minimizes the largest GPU
    load; ``"even"`` is round-robin.
    """
    c = _to_numpy(counts, "counts")
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"counts must be a non-empty 1-D array [experts], got shape {list(c.shape)}")
    if np.issubdtype(c.dtype, np.floating):
        if not np.all(np.isfinite(c)) or np.any(c != np.round(c)):
            raise ValueError("counts must hold whole token counts")
    c = np.ascontiguousarray(c, dtype=np.int64)
    if (c < 0).any():
        raise ValueError(f"counts[{int(np.argmax(c < 0))}] is negative; token counts must be >= 0")
    p = _to_numpy(phy2log, "phy2log")
    if p.ndim != 1:
        raise ValueError(f"phy2log must be 1-D [num_replicas] (one layer), got shape {list(p.shape)}")
    ids = _ids(p, "phy2log", tuple(p.shape))
    num_gpus = _count(num_gpus, "num_gpus")
    if policy not in SPLITS:
        raise ValueError(f"unknown split policy {policy!r}; valid: {', '.join(SPLITS)}")
    quotas = np.empty(ids.shape[0], dtype=np.int64)
    status = _lib.load().wideep_split(
        _ptr(c, ctypes.c_int64), c.shape[0], _ptr(ids, ctypes.c_int64), ids.shape[0], num_gpus, policy.encode(),
        _ptr(quotas, ctypes.c_int64))
    _lib.check(status)
    return _torch_like(counts, quotas)[0]
