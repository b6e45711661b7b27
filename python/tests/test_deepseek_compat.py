"""policy="deepseek" against DeepSeek's published example and the numpy reference."""

import numpy as np
import pytest
from conftest import README_ARGS, README_PHY2LOG, README_WEIGHT, check_plan

from wideep import eplb, reference


def test_reference_reproduces_the_published_readme_example():
    phy2log, log2phy, logcnt = reference.rebalance_experts(README_WEIGHT, **README_ARGS)
    assert (phy2log == README_PHY2LOG).all()
    check_plan(phy2log, log2phy, logcnt, 2, 12, 16)


def test_deepseek_policy_reproduces_the_published_readme_example(lib):
    phy2log, log2phy, logcnt = eplb.rebalance_experts(README_WEIGHT, **README_ARGS, policy="deepseek")
    check_plan(phy2log, log2phy, logcnt, 2, 12, 16)
    # Slot for slot, including layer 1's tie between three replicas of load 86.
    assert (phy2log == README_PHY2LOG).all()
    expected_cnt = np.stack([np.bincount(r, minlength=12) for r in README_PHY2LOG])
    assert (logcnt == expected_cnt).all()


def _same_log2phy_sets(a, b):
    return all(sorted(x[x >= 0].tolist()) == sorted(y[y >= 0].tolist())
               for x, y in zip(a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])))


# (layers, experts, groups, nodes, gpus, replicas): hierarchical, global (groups % nodes != 0), one node.
SHAPES = [(3, 16, 4, 2, 8, 24), (3, 32, 8, 2, 8, 40), (2, 64, 8, 4, 16, 96), (2, 64, 8, 3, 12, 72),
          (2, 64, 8, 1, 8, 80), (2, 256, 8, 4, 32, 288)]


@pytest.mark.parametrize("shape", SHAPES)
def test_deepseek_policy_equals_reference_on_continuous_random_loads(lib, shape):
    layers, experts, groups, nodes, gpus, replicas = shape
    rng = np.random.default_rng(sum(shape))
    for _ in range(3):
        weight = rng.gamma(0.7, 1000.0, size=(layers, experts))  # no ties: the plan is unique
        ours = eplb.rebalance_experts(weight, replicas, groups, nodes, gpus, policy="deepseek")
        ref = reference.rebalance_experts(weight, replicas, groups, nodes, gpus)
        check_plan(*ours, layers, experts, replicas)
        assert (ours[0] == ref[0]).all(), "phy2log differs from DeepSeek's algorithm"
        assert (ours[2] == ref[2]).all(), "logcnt differs from DeepSeek's algorithm"
        assert _same_log2phy_sets(ours[1], ref[1])


@pytest.mark.parametrize("shape", SHAPES)
def test_deepseek_policy_equals_reference_on_tied_integer_counts(lib, shape):
    layers, experts, groups, nodes, gpus, replicas = shape
    rng = np.random.default_rng(7 * sum(shape))
    for high in (100_000, 300):  # token counts; the small range makes many ties
        weight = rng.integers(0, high, size=(layers, experts))
        ours = eplb.rebalance_experts(weight, replicas, groups, nodes, gpus, policy="deepseek")
        ref = reference.rebalance_experts(weight, replicas, groups, nodes, gpus)
        check_plan(*ours, layers, experts, replicas)
        # Ties are broken exactly as DeepSeek breaks them.
        assert (ours[0] == ref[0]).all(), "phy2log differs from DeepSeek's algorithm on tied loads"
        assert (ours[2] == ref[2]).all()
        assert _same_log2phy_sets(ours[1], ref[1])
