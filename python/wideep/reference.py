"""DeepSeek's EPLB algorithm in plain numpy, written from its published description.

This is the reference that ``policy="deepseek"`` is tested against, and the baseline of
``benchmarks/eplb_bench.py``. It follows https://github.com/deepseek-ai/EPLB:

* **hierarchical** (``num_groups % num_nodes == 0``): expert groups are packed onto nodes
  (balanced packing of group loads, the same number of groups per node); inside each node the
  redundant slots go one at a time to the expert with the largest load per replica; then the
  node's replicas are packed onto its GPUs (balanced packing, the same number per GPU);
* **global** (otherwise): the same with one group and one node.

Balanced packing sorts the items by load, heaviest first (ties: lower index first) and puts each
on the least-loaded pack that still has room (ties: the lower pack). Like DeepSeek, the loads
are converted to float32 first and every load sum and quotient is a float32 operation, so
tie-breaks match the published code.

Outputs use DeepSeek's layout: ``phy2log [layers, num_replicas]`` where GPU ``g`` owns physical
experts ``[g * R/G, (g+1) * R/G)``, ``log2phy [layers, experts, X]`` padded with -1 and ordered
by replica creation (the original first), and ``logcnt [layers, experts]``; all int64.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rebalance_experts", "balanced_packing", "replicate_experts"]


def balanced_packing(weight: np.ndarray, num_packs: int) -> tuple[np.ndarray, np.ndarray]:
    """Packs ``n`` items of each row into ``num_packs`` packs of ``n / num_packs`` items each.

    ``weight`` is ``[rows, n]`` float32. Returns ``(pack_index, rank_in_pack)``, both ``[rows, n]``
    int64. Rows are processed in lockstep: step ``k`` places every row's ``k``-th heaviest item.
    """
    rows, n = weight.shape
    if n % num_packs != 0:
        raise ValueError(f"balanced_packing: {n} items do not divide into {num_packs} packs")
    per_pack = n // num_packs
    if per_pack == 1:
        pack_index = np.broadcast_to(np.arange(n, dtype=np.int64), (rows, n)).copy()
        return pack_index, np.zeros((rows, n), dtype=np.int64)
    order = np.argsort(-weight, axis=-1, kind="stable")
    pack_index = np.full((rows, n), -1, dtype=np.int64)
    rank_in_pack = np.full((rows, n), -1, dtype=np.int64)
    pack_weight = np.zeros((rows, num_packs), dtype=np.float32)
    pack_items = np.zeros((rows, num_packs), dtype=np.int64)
    ar = np.arange(rows)
    full_penalty = np.float32(np.inf)
    for k in range(n):
        item = order[:, k]
        candidate = np.where(pack_items < per_pack, pack_weight, full_penalty)
        pack = np.argmin(candidate, axis=-1)  # first minimum: the lower pack on ties
        pack_index[ar, item] = pack
        rank_in_pack[ar, item] = pack_items[ar, pack]
        pack_weight[ar, pack] += weight[ar, item]
        pack_items[ar, pack] += 1
    return pack_index, rank_in_pack


def replicate_experts(weight: np.ndarray, num_phy: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gives each row's ``num_phy - n`` redundant slots, one at a time, to the expert with the largest
    load per replica (ties: the lower index).

    ``weight`` is ``[rows, n]`` float32. Returns ``phy2log [rows, num_phy]`` (the first ``n`` entries
    are the originals), ``rank [rows, num_phy]`` (replica ordinal) and ``logcnt [rows, n]``.
    """
    rows, n = weight.shape
    if num_phy < n:
        raise ValueError(f"replicate_experts: {num_phy} physical experts are fewer than {n} logical ones")
    phy2log = np.broadcast_to(np.arange(num_phy, dtype=np.int64), (rows, num_phy)).copy()
    rank = np.zeros((rows, num_phy), dtype=np.int64)
    logcnt = np.ones((rows, n), dtype=np.int64)
    ar = np.arange(rows)
    for i in range(n, num_phy):
        best = np.argmax(weight / logcnt.astype(np.float32), axis=-1)
        phy2log[:, i] = best
        rank[:, i] = logcnt[ar, best]
        logcnt[ar, best] += 1
    return phy2log, rank, logcnt


def _inverse(perm: np.ndarray) -> np.ndarray:
    inv = np.empty_like(perm)
    np.put_along_axis(inv, perm, np.broadcast_to(np.arange(perm.shape[1], dtype=np.int64), perm.shape), axis=1)
    return inv


def _hierarchical(weight: np.ndarray, num_phy: int, num_groups: int, num_nodes: int, num_gpus: int):
    layers, num_log = weight.shape
    if num_log % num_groups != 0:
        raise ValueError(f"{num_log} experts do not divide into {num_groups} groups")
    group_size = num_log // num_groups
    if num_groups % num_nodes != 0:
        raise ValueError(f"{num_groups} groups do not divide over {num_nodes} nodes")
    groups_per_node = num_groups // num_nodes
    if num_gpus % num_nodes != 0:
        raise ValueError(f"{num_gpus} GPUs do not divide over {num_nodes} nodes")
    if num_phy % num_gpus != 0:
        raise ValueError(f"{num_phy} physical experts do not divide over {num_gpus} GPUs")
    phy_per_gpu = num_phy // num_gpus

    # Step 1: groups onto nodes. mlog is the node-major relabelling of logical experts.
    tokens_per_group = weight.reshape(layers, num_groups, group_size).sum(-1, dtype=np.float32)
    group_pack, group_rank = balanced_packing(tokens_per_group, num_nodes)
    log2mlog = (((group_pack * groups_per_node + group_rank) * group_size)[:, :, None]
                + np.arange(group_size, dtype=np.int64)).reshape(layers, num_log)
    mlog2log = _inverse(log2mlog)

    # Step 2: replicate inside each node; rows are (layer, node).
    tokens_per_mlog = np.take_along_axis(weight, mlog2log, axis=-1).reshape(-1, num_log // num_nodes)
    phy2mlog, phyrank, mlogcnt = replicate_experts(tokens_per_mlog, num_phy // num_nodes)

    # Step 3: the node's replicas onto its GPUs.
    tokens_per_phy = np.take_along_axis(tokens_per_mlog / mlogcnt.astype(np.float32), phy2mlog, axis=-1)
    pack_index, rank_in_pack = balanced_packing(tokens_per_phy, num_gpus // num_nodes)
    phy2pphy = pack_index * phy_per_gpu + rank_in_pack
    pphy2phy = _inverse(phy2pphy)

    pphy2mlog = np.take_along_axis(phy2mlog, pphy2phy, axis=-1)
    pphy2mlog = (pphy2mlog.reshape(layers, num_nodes, -1)
                 + np.arange(0, num_log, num_log // num_nodes, dtype=np.int64)[None, :, None]).reshape(layers, -1)
    pphy2log = np.take_along_axis(mlog2log, pphy2mlog, axis=-1)
    pphyrank = np.take_along_axis(phyrank, pphy2phy, axis=-1).reshape(layers, -1)
    logcnt = np.take_along_axis(mlogcnt.reshape(layers, -1), log2mlog, axis=-1)
    return pphy2log, pphyrank, logcnt


def rebalance_experts(weight, num_replicas: int, num_groups: int, num_nodes: int, num_gpus: int):
    """DeepSeek EPLB: ``weight [layers, experts]`` → ``(phy2log, log2phy, logcnt)``, int64 numpy arrays."""
    weight = np.asarray(weight).astype(np.float32)
    if weight.ndim != 2:
        raise ValueError(f"weight must be 2-D [layers, experts], got shape {weight.shape}")
    layers, num_log = weight.shape
    if num_groups % num_nodes == 0:
        phy2log, phyrank, logcnt = _hierarchical(weight, num_replicas, num_groups, num_nodes, num_gpus)
    else:
        phy2log, phyrank, logcnt = _hierarchical(weight, num_replicas, 1, 1, num_gpus)
    width = int(logcnt.max())
    log2phy = np.full((layers, num_log * width), -1, dtype=np.int64)
    np.put_along_axis(log2phy, phy2log * width + phyrank,
                      np.broadcast_to(np.arange(num_replicas, dtype=np.int64), (layers, num_replicas)), axis=-1)
    return phy2log, log2phy.reshape(layers, num_log, width), logcnt
