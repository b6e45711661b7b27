"""The vLLM and SGLang adapters, against stand-in modules with the engines' hook points."""

import sys
import types

import numpy as np
import pytest
from conftest import README_ARGS, README_PHY2LOG, README_WEIGHT, check_plan

from wideep import eplb
from wideep.integrations import sglang as sglang_adapter
from wideep.integrations import vllm as vllm_adapter


class _TripleDefault:
    @classmethod
    def rebalance_experts(cls, weight, num_replicas, num_groups, num_nodes, num_ranks) -> "tuple[Tensor, Tensor, Tensor]":
        raise AssertionError("replaced")


class _MapOnlyDefault:
    @classmethod
    def rebalance_experts(cls, weight, num_replicas, num_groups, num_nodes, num_ranks, old=None) -> "torch.Tensor":
        raise AssertionError("replaced")


def _install_fake_vllm(monkeypatch, default):
    names = ["vllm", "vllm.distributed", "vllm.distributed.eplb", "vllm.distributed.eplb.policy"]
    mods = {n: types.ModuleType(n) for n in names}
    mods["vllm.distributed.eplb.policy"].EPLB_POLICIES = {"default": default}
    for parent, child in zip(names, names[1:]):
        setattr(mods[parent], child.rsplit(".", 1)[1], mods[child])
    for n, m in mods.items():
        monkeypatch.setitem(sys.modules, n, m)
    return mods["vllm.distributed.eplb.policy"]


@pytest.fixture
def fake_vllm(monkeypatch):
    """vllm.distributed.eplb.policy with vLLM's EPLB_POLICIES table (policies return the DeepSeek triple)."""
    return _install_fake_vllm(monkeypatch, _TripleDefault)


def test_vllm_register_follows_a_map_only_contract(lib, monkeypatch):
    policies = _install_fake_vllm(monkeypatch, _MapOnlyDefault)
    cls = vllm_adapter.register("deepseek")
    assert policies.EPLB_POLICIES["default"] is cls and cls.map_only
    phy2log = cls.rebalance_experts(README_WEIGHT, 16, 4, 2, 8, None)
    assert isinstance(phy2log, np.ndarray) and phy2log.shape == (2, 16)
    assert (phy2log[0] == README_PHY2LOG[0]).all()


def test_vllm_register_replaces_the_default_policy(lib, fake_vllm):
    cls = vllm_adapter.register("deepseek")
    assert fake_vllm.EPLB_POLICIES["default"] is cls and not cls.map_only
    # vLLM's call: rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_ranks, old_map).
    phy2log, log2phy, logcnt = cls.rebalance_experts(README_WEIGHT, 16, 4, 2, 8, None)
    check_plan(phy2log, log2phy, logcnt, 2, 12, 16)
    assert (phy2log[0] == README_PHY2LOG[0]).all()


def test_vllm_register_hooks_eplb_state_in_older_vllm(lib, monkeypatch):
    names = ["vllm", "vllm.distributed", "vllm.distributed.eplb", "vllm.distributed.eplb.eplb_state"]
    mods = {n: types.ModuleType(n) for n in names}
    state = mods["vllm.distributed.eplb.eplb_state"]
    state.rebalance_experts = lambda *a: (_ for _ in ()).throw(AssertionError("replaced"))
    for parent, child in zip(names, names[1:]):
        setattr(mods[parent], child.rsplit(".", 1)[1], mods[child])
    for n, m in mods.items():
        monkeypatch.setitem(sys.modules, n, m)
    vllm_adapter.register("deepseek")
    phy2log, log2phy, logcnt = state.rebalance_experts(README_WEIGHT, 16, 4, 2, 8)
    check_plan(phy2log, log2phy, logcnt, 2, 12, 16)
    assert (phy2log[0] == README_PHY2LOG[0]).all()


def test_vllm_policy_uses_the_old_map_and_ignores_a_mismatching_one(lib):
    cls = vllm_adapter.policy_class("balanced")
    weight = np.random.default_rng(1).integers(10, 1000, size=(2, 12))
    first = cls.rebalance_experts(weight, 16, 4, 2, 8)
    direct = eplb.rebalance_experts(weight + 5, 16, 4, 2, 8, current=first[0])
    again = cls.rebalance_experts(weight + 5, 16, 4, 2, 8, first[0])
    assert (again[0] == direct[0]).all()
    scaled = cls.rebalance_experts(weight, 16, 4, 2, 8, np.zeros((2, 24), np.int64))  # EP size changed
    check_plan(*scaled, 2, 12, 16)


def test_vllm_plugin_acts_only_when_asked(lib, fake_vllm, monkeypatch):
    monkeypatch.delenv(vllm_adapter.ENV_POLICY, raising=False)
    vllm_adapter.plugin()
    assert fake_vllm.EPLB_POLICIES["default"] is _TripleDefault
    monkeypatch.setenv(vllm_adapter.ENV_POLICY, "greedy")
    vllm_adapter.plugin()
    assert fake_vllm.EPLB_POLICIES["default"].policy == "greedy"
    with pytest.raises(ValueError, match="unknown wideep policy"):
        vllm_adapter.register("fastest")


def _fake_sglang_module():
    mod = types.ModuleType("fake_sglang_eplb_algorithms")
    calls = []

    def compute_algorithm(raw_algorithm, num_groups, num_nodes):
        return ("sglang", raw_algorithm)

    def rebalance_experts(tokens_per_expert, num_physical_experts, num_local_physical_experts, num_groups,
                          num_nodes, algorithm, **kwargs):
        calls.append((algorithm, kwargs))
        return "sglang-result"

    mod.compute_algorithm = compute_algorithm
    mod.rebalance_experts = rebalance_experts
    return mod, calls


def test_sglang_register_routes_wideep_algorithms_and_keeps_the_others(lib):
    mod, calls = _fake_sglang_module()
    sglang_adapter.register(mod)
    assert sglang_adapter.register(mod) is mod  # idempotent
    algorithm = mod.compute_algorithm(raw_algorithm="wideep_deepseek", num_groups=4, num_nodes=2)
    assert algorithm.policy == "deepseek"
    # SGLang passes [windows, layers, experts] counts and GPUs as physical / local experts.
    windows = np.stack([README_WEIGHT // 2, README_WEIGHT - README_WEIGHT // 2])
    phy2log, log2phy, logcnt = mod.rebalance_experts(
        tokens_per_expert=windows, num_physical_experts=16, num_local_physical_experts=2, num_groups=4,
        num_nodes=2, algorithm=algorithm)
    check_plan(phy2log, log2phy, logcnt, 2, 12, 16)
    assert (phy2log[0] == README_PHY2LOG[0]).all()
    assert calls == []
    other = mod.compute_algorithm(raw_algorithm="deepseek", num_groups=4, num_nodes=2)
    assert mod.rebalance_experts(tokens_per_expert=windows, num_physical_experts=16, num_local_physical_experts=2,
                                 num_groups=4, num_nodes=2, algorithm=other, broken_ranks=None) == "sglang-result"
    assert calls == [(("sglang", "deepseek"), {"broken_ranks": None})]


def test_sglang_plan_accepts_missing_groups(lib):
    phy2log, log2phy, logcnt = sglang_adapter.plan(README_WEIGHT, 16, 2, None, 1)
    check_plan(phy2log, log2phy, logcnt, 2, 12, 16, README_ARGS["num_gpus"], same_rank_ok=False)
