"""Shared fixtures: the DeepSeek README example and plan-checking helpers."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The published example of https://github.com/deepseek-ai/EPLB (README "Interface and Example").
README_WEIGHT = np.array([[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
                          [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]])
README_ARGS = dict(num_replicas=16, num_groups=4, num_nodes=2, num_gpus=8)
README_PHY2LOG = np.array([[5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
                           [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1]])


def check_plan(phy2log, log2phy, logcnt, layers, experts, num_replicas, num_gpus=None, same_rank_ok=True):
    """Asserts DeepSeek's output contract and that the three outputs agree with each other."""
    phy2log, log2phy, logcnt = (np.asarray(a) for a in (phy2log, log2phy, logcnt))
    assert phy2log.dtype == np.int64 and log2phy.dtype == np.int64 and logcnt.dtype == np.int64
    assert phy2log.shape == (layers, num_replicas)
    assert logcnt.shape == (layers, experts)
    assert log2phy.shape == (layers, experts, int(logcnt.max()))
    assert (logcnt >= 1).all(), "every logical expert needs a replica"
    assert (logcnt.sum(axis=1) == num_replicas).all()
    for l in range(layers):
        assert (np.bincount(phy2log[l], minlength=experts) == logcnt[l]).all()
        for e in range(experts):
            row = log2phy[l, e]
            ids = row[row >= 0]
            assert len(ids) == logcnt[l, e]
            assert (row[len(ids):] == -1).all(), "log2phy pads with -1 after the replicas"
            assert (phy2log[l, ids] == e).all(), "log2phy and phy2log disagree"
        if num_gpus is not None and not same_rank_ok:
            per = num_replicas // num_gpus
            for g in range(num_gpus):
                on = phy2log[l, g * per:(g + 1) * per]
                assert len(set(on.tolist())) == per, f"layer {l} GPU {g} holds two replicas of one expert"


def slot_loads(weight, phy2log):
    """Load of every physical expert when each expert's (float32-rounded) load is split evenly over its replicas."""
    w = np.asarray(weight).astype(np.float32).astype(np.float64)
    p = np.asarray(phy2log)
    cnt = np.stack([np.bincount(row, minlength=w.shape[1]) for row in p])
    return np.take_along_axis(w / cnt, p, axis=1)


def gpu_loads(weight, phy2log, num_gpus):
    s = slot_loads(weight, phy2log)
    return s.reshape(s.shape[0], num_gpus, -1).sum(-1)


@pytest.fixture(scope="session")
def lib():
    from wideep import _lib

    try:
        return _lib.load()
    except OSError as exc:
        if os.environ.get("WIDEEP_LIB"):
            raise
        pytest.fail(f"libwideep is not built: {exc}")
