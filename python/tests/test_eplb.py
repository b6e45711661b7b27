"""rebalance_experts, imbalance and split through the Python API."""

import numpy as np
import pytest
from conftest import README_ARGS, README_WEIGHT, check_plan, gpu_loads

from wideep import eplb, reference

POLICIES = ["balanced", "deepseek", "greedy"]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("shape", [(3, 16, 4, 2, 8, 24), (2, 64, 8, 4, 16, 80), (2, 60, 5, 2, 6, 72),
                                   (2, 32, 1, 1, 4, 32)])
def test_plans_keep_the_output_contract(lib, policy, shape):
    layers, experts, groups, nodes, gpus, replicas = shape
    rng = np.random.default_rng(11 * sum(shape))
    weight = rng.integers(0, 5000, size=(layers, experts)).astype(np.int32)
    phy2log, log2phy, logcnt = eplb.rebalance_experts(weight, replicas, groups, nodes, gpus, policy=policy)
    assert isinstance(phy2log, np.ndarray)
    check_plan(phy2log, log2phy, logcnt, layers, experts, replicas, gpus, same_rank_ok=policy == "deepseek")


def test_none_policy_is_the_identity(lib):
    weight = np.random.default_rng(1).random((2, 16))
    phy2log, log2phy, logcnt = eplb.rebalance_experts(weight, 16, 1, 1, 4, policy="none")
    assert (phy2log == np.arange(16)).all() and (logcnt == 1).all() and log2phy.shape == (2, 16, 1)


def test_balanced_is_no_worse_than_deepseek_on_skewed_loads(lib):
    rng = np.random.default_rng(3)
    weight = rng.zipf(1.6, size=(4, 64)).clip(max=10_000) * rng.integers(1, 50, size=(4, 64))
    ours = eplb.rebalance_experts(weight, 96, 8, 2, 16)
    ref = reference.rebalance_experts(weight, 96, 8, 2, 16)
    mine = gpu_loads(weight, ours[0], 16).max(axis=1)
    theirs = gpu_loads(weight, ref[0], 16).max(axis=1)
    assert (mine <= theirs * (1 + 1e-9)).all(), f"balanced max GPU load {mine} above deepseek's {theirs}"


def test_default_policy_keeps_replicas_of_an_expert_on_distinct_gpus(lib):
    weight = np.random.default_rng(5).gamma(0.5, 100.0, size=(3, 32))
    phy2log, log2phy, logcnt = eplb.rebalance_experts(weight, 48, 4, 2, 8)
    check_plan(phy2log, log2phy, logcnt, 3, 32, 48, 8, same_rank_ok=False)


def test_more_replicas_than_distinct_gpus_allow_needs_same_rank(lib):
    weight = np.array([[1000.0, 1.0, 1.0, 1.0]])
    phy2log, log2phy, logcnt = eplb.rebalance_experts(weight, 24, 1, 1, 4)  # 24 > 4 experts × 4 GPUs
    check_plan(phy2log, log2phy, logcnt, 1, 4, 24)
    with pytest.raises(ValueError, match="ep-size|same-rank|replicas"):
        eplb.rebalance_experts(weight, 24, 1, 1, 4, allow_same_rank=False)


def test_current_placement_guides_the_balanced_replan(lib):
    rng = np.random.default_rng(9)
    weight = rng.integers(100, 10_000, size=(3, 32))
    first = eplb.rebalance_experts(weight, 48, 4, 2, 8)
    drifted = weight + rng.integers(0, 200, size=weight.shape)
    again = eplb.rebalance_experts(drifted, 48, 4, 2, 8, current=first[0])
    check_plan(*again, 3, 32, 48, 8, same_rank_ok=False)
    fresh = eplb.rebalance_experts(drifted, 48, 4, 2, 8)
    assert (again[0] != first[0]).sum() <= (fresh[0] != first[0]).sum()


def test_imbalance_matches_a_numpy_computation(lib):
    rng = np.random.default_rng(2)
    weight = rng.integers(0, 1000, size=(3, 16)).astype(np.float64)
    phy2log = reference.rebalance_experts(weight, 24, 4, 2, 8)[0]
    report = eplb.imbalance(weight, phy2log, 8)
    loads = gpu_loads(weight, phy2log, 8)
    np.testing.assert_allclose(report.ratio, (loads.max(1) - loads.mean(1)) / loads.mean(1), rtol=1e-12)
    np.testing.assert_allclose(report.balancedness, loads.mean(1) / loads.max(1), rtol=1e-12)
    assert report.mean == pytest.approx(report.ratio.mean())
    assert report.p99 == pytest.approx(report.ratio.max())


def test_balanced_split_imbalance_is_at_most_the_even_one(lib):
    rng = np.random.default_rng(4)
    weight = rng.integers(0, 400, size=(4, 32))
    phy2log = eplb.rebalance_experts(weight, 48, 4, 2, 8)[0]
    batch = rng.integers(0, 400, size=(4, 32))
    even = eplb.imbalance(batch, phy2log, 8, split="even")
    balanced = eplb.imbalance(batch, phy2log, 8, split="balanced")
    # Whole tokens cost at most one token per GPU against the fractional even split.
    slack = 8 / batch.sum(axis=1)
    assert (balanced.ratio <= even.ratio + slack + 1e-12).all()


@pytest.mark.parametrize("policy", ["balanced", "even"])
def test_split_conserves_each_experts_tokens(lib, policy):
    rng = np.random.default_rng(6)
    weight = rng.integers(1, 1000, size=(1, 32))
    phy2log = eplb.rebalance_experts(weight, 48, 4, 2, 8)[0][0]
    counts = rng.integers(0, 500, size=32)
    quotas = eplb.split(counts, phy2log, 8, policy=policy)
    assert quotas.dtype == np.int64 and quotas.shape == (48,) and (quotas >= 0).all()
    assert (np.bincount(phy2log, weights=quotas, minlength=32) == counts).all()
    if policy == "even":
        for e in range(32):
            q = quotas[phy2log == e]
            assert q.max() - q.min() <= 1


def test_balanced_split_lowers_the_busiest_gpu(lib):
    rng = np.random.default_rng(8)
    phy2log = eplb.rebalance_experts(rng.integers(1, 1000, size=(1, 32)), 48, 4, 2, 8)[0][0]
    counts = rng.integers(0, 2000, size=32)
    per_gpu = {p: eplb.split(counts, phy2log, 8, policy=p).reshape(8, -1).sum(1) for p in ("even", "balanced")}
    assert per_gpu["balanced"].sum() == per_gpu["even"].sum() == counts.sum()
    assert per_gpu["balanced"].max() <= per_gpu["even"].max()


@pytest.mark.parametrize("call, message", [
    (lambda: eplb.rebalance_experts(np.ones(12), 16, 4, 2, 8), "2-D"),
    (lambda: eplb.rebalance_experts(np.ones((2, 12), dtype=bool), 16, 4, 2, 8), "dtype"),
    (lambda: eplb.rebalance_experts(np.array([["a"] * 12] * 2), 16, 4, 2, 8), "dtype"),
    (lambda: eplb.rebalance_experts(np.full((2, 12), np.nan), 16, 4, 2, 8), "finite"),
    (lambda: eplb.rebalance_experts(-np.ones((2, 12)), 16, 4, 2, 8), ">= 0"),
    (lambda: eplb.rebalance_experts(README_WEIGHT, 10, 4, 2, 8), "smaller than"),
    (lambda: eplb.rebalance_experts(README_WEIGHT, 18, 4, 2, 8), "multiple of num_gpus"),
    (lambda: eplb.rebalance_experts(README_WEIGHT, 16, 5, 2, 8), "num_groups"),
    (lambda: eplb.rebalance_experts(README_WEIGHT, 16, 4, 3, 8), "num_nodes"),
    (lambda: eplb.rebalance_experts(README_WEIGHT, 16.0, 4, 2, 8), "must be an int"),
    (lambda: eplb.rebalance_experts(README_WEIGHT, 16, 4, 2, 0), ">= 1"),
    (lambda: eplb.rebalance_experts(README_WEIGHT, **README_ARGS, policy="magic"), "unknown policy"),
    (lambda: eplb.rebalance_experts(README_WEIGHT, **README_ARGS, current=np.zeros((2, 15), np.int64)), "shape"),
    (lambda: eplb.rebalance_experts(README_WEIGHT, **README_ARGS, current=np.zeros((2, 16), np.float32)), "integer"),
    (lambda: eplb.rebalance_experts(README_WEIGHT, **README_ARGS, current=np.zeros((2, 16), np.int64)),
     "two replicas on rank 0"),
    (lambda: eplb.rebalance_experts(README_WEIGHT, **README_ARGS, policy="deepseek",
                                    current=np.zeros((2, 16), np.int64)), "expert 1 has no slot"),
    (lambda: eplb.imbalance(README_WEIGHT, np.zeros((3, 16), np.int64), 8), "shape"),
    (lambda: eplb.imbalance(README_WEIGHT, np.full((2, 16), 12), 8), "not a logical expert"),
    (lambda: eplb.imbalance(README_WEIGHT + 0.5, np.tile(np.arange(16) % 12, (2, 1)), 8, split="balanced"),
     "whole token counts"),
    (lambda: eplb.split(np.ones(12, np.int64), np.arange(16) % 12, 8, policy="fair"), "unknown split"),
    (lambda: eplb.split(-np.ones(12, np.int64), np.arange(16) % 12, 8), "negative"),
    (lambda: eplb.split(np.ones((2, 12), np.int64), np.arange(16) % 12, 8), "1-D"),
    (lambda: eplb.split(np.ones(12, np.int64), np.arange(16) % 12, 5), "multiple of num_gpus"),
])
def test_bad_input_raises_value_error_with_the_reason(lib, call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_array_types_round_trip(lib):
    """numpy in gives numpy out; a torch tensor in (when torch is installed) gives CPU torch tensors out."""
    ref = eplb.rebalance_experts(README_WEIGHT.tolist(), **README_ARGS, policy="deepseek")
    assert all(isinstance(a, np.ndarray) and a.dtype == np.int64 for a in ref)
    quotas = eplb.split([5] * 12, ref[0][0], 8)
    assert isinstance(quotas, np.ndarray) and int(quotas.sum()) == 60
    try:
        import torch
    except ImportError:
        return
    phy2log, log2phy, logcnt = eplb.rebalance_experts(torch.tensor(README_WEIGHT), **README_ARGS, policy="deepseek")
    assert all(isinstance(t, torch.Tensor) and t.dtype == torch.int64 for t in (phy2log, log2phy, logcnt))
    assert (phy2log.numpy() == ref[0]).all() and (logcnt.numpy() == ref[2]).all()
    quotas = eplb.split(torch.tensor([5] * 12), phy2log[0], 8)
    assert isinstance(quotas, torch.Tensor) and int(quotas.sum()) == 60
