"""WideEP as SGLang's ``--eplb-algorithm``.

SGLang resolves ``--eplb-algorithm`` with ``compute_algorithm`` and plans with
``rebalance_experts`` in ``sglang.srt.eplb.eplb_algorithms`` (``sglang.srt.managers.eplb_algorithms``
in older releases). ``register()`` wraps both so that the names in ``ALGORITHMS`` plan with
libwideep; every other name still reaches SGLang's own algorithms.

SGLang runs its schedulers in spawned processes, so the hook has to be installed in each of them:
launch through ``python -m wideep.integrations.sglang_server`` (same arguments as
``python -m sglang.launch_server``), which does that.
"""

from __future__ import annotations

import importlib
import logging

from .. import eplb

logger = logging.getLogger("wideep")

#: ``--eplb-algorithm`` value → WideEP planner policy.
ALGORITHMS = {
    "wideep": "balanced",
    "wideep_balanced": "balanced",
    "wideep_deepseek": "deepseek",
    "wideep_greedy": "greedy",
}

_MODULES = ("sglang.srt.eplb.eplb_algorithms", "sglang.srt.managers.eplb_algorithms")


class WideEPAlgorithm(str):
    """The resolved ``--eplb-algorithm`` for a WideEP planner; ``.policy`` is the planner policy."""

    @property
    def policy(self) -> str:
        return ALGORITHMS[str(self)]


def plan(tokens_per_expert, num_physical_experts: int, num_local_physical_experts: int, num_groups,
         num_nodes: int, policy: str = "balanced"):
    """SGLang's planning call: ``tokens_per_expert`` is ``[windows, layers, experts]`` or ``[layers, experts]``."""
    weight = tokens_per_expert
    if len(weight.shape) == 3:
        weight = weight.sum(0)
    return eplb.rebalance_experts(weight, num_physical_experts, num_groups or 1, num_nodes,
                                  num_physical_experts // num_local_physical_experts, policy=policy)


def register(module=None):
    """Hooks WideEP into SGLang's EPLB algorithm module (idempotent); returns that module."""
    if module is None:
        for name in _MODULES:
            try:
                module = importlib.import_module(name)
                break
            except ImportError:
                continue
        else:
            raise ImportError("SGLang's eplb_algorithms module is not importable (is sglang installed?)")
    if getattr(module, "_wideep_registered", False):
        return module
    original_compute = module.compute_algorithm
    original_rebalance = module.rebalance_experts

    def compute_algorithm(raw_algorithm, *args, **kwargs):
        if raw_algorithm in ALGORITHMS:
            return WideEPAlgorithm(raw_algorithm)
        return original_compute(raw_algorithm, *args, **kwargs)

    def rebalance_experts(tokens_per_expert, num_physical_experts, num_local_physical_experts, num_groups,
                          num_nodes, algorithm, **kwargs):
        if isinstance(algorithm, WideEPAlgorithm):
            return plan(tokens_per_expert, num_physical_experts, num_local_physical_experts, num_groups,
                        num_nodes, algorithm.policy)
        return original_rebalance(tokens_per_expert=tokens_per_expert, num_physical_experts=num_physical_experts,
                                  num_local_physical_experts=num_local_physical_experts, num_groups=num_groups,
                                  num_nodes=num_nodes, algorithm=algorithm, **kwargs)

    module.compute_algorithm = compute_algorithm
    module.rebalance_experts = rebalance_experts
    module._wideep_registered = True
    logger.info("wideep: SGLang --eplb-algorithm accepts %s", ", ".join(ALGORITHMS))
    return module
