"""WideEP as vLLM's EPLB policy.

vLLM (>= 0.11) picks its EPLB algorithm from ``--eplb-config '{"policy": ...}'`` through the
``EPLB_POLICIES`` table in ``vllm.distributed.eplb.policy``; older releases call
``rebalance_experts`` from ``vllm.distributed.eplb.rebalance_algo``. ``register()`` installs WideEP
in whichever exists, under the ``"default"`` entry (the only value vLLM's config accepts).
Recent vLLM policies return only ``phy2log`` (vLLM derives the rest); older ones return
``(phy2log, log2phy, logcnt)``. ``register()`` reads the installed contract from the return
annotation of vLLM's own policy and answers in kind.

This module is also a vLLM general plugin (entry point ``vllm.general_plugins``), which vLLM loads
in every process: with ``WIDEEP_EPLB_POLICY=balanced`` (or ``deepseek``/``greedy``) in the
environment it registers itself; without it, it does nothing.
"""

from __future__ import annotations

import inspect
import logging
import os

from .. import eplb

logger = logging.getLogger("wideep")

ENV_POLICY = "WIDEEP_EPLB_POLICY"

try:  # Subclass vLLM's abstract policy when it exists, so isinstance checks pass.
    from vllm.distributed.eplb.policy.abstract import AbstractEplbPolicy as _Base  # type: ignore
except Exception:  # vLLM absent or older
    _Base = object


class WideEPEplbPolicy(_Base):
    """vLLM EPLB policy that plans with libwideep (``policy`` picks the WideEP planner)."""

    policy: str = "balanced"
    #: Return only phy2log (recent vLLM) instead of the DeepSeek triple.
    map_only: bool = False

    @classmethod
    def rebalance_experts(cls, weight, num_replicas, num_groups, num_nodes, num_ranks,
                          old_global_expert_indices=None):
        """vLLM's policy interface: ``(phy2log, log2phy, logcnt)`` as CPU int64 tensors, or only ``phy2log``
        when ``map_only``.

        ``old_global_expert_indices`` (the ``[layers, num_replicas]`` map in use, newer vLLM) makes the
        balanced planner migration-aware; it is ignored when its shape does not match (EP scaling).
        """
        result = cls._plan(weight, num_replicas, num_groups, num_nodes, num_ranks, old_global_expert_indices)
        return result[0] if cls.map_only else result

    @classmethod
    def _plan(cls, weight, num_replicas, num_groups, num_nodes, num_ranks, current):
        if current is not None and tuple(current.shape) != (weight.shape[0], num_replicas):
            current = None
        if current is not None and cls.policy == "balanced":
            try:
                return eplb.rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_ranks,
                                              policy=cls.policy, current=current)
            except ValueError as exc:  # e.g. a current map with two replicas of an expert on one GPU
                logger.warning("wideep: planning without the current placement: %s", exc)
        return eplb.rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_ranks, policy=cls.policy)


def policy_class(policy: str = "balanced", map_only: bool = False) -> type:
    """A ``WideEPEplbPolicy`` subclass bound to one WideEP planner policy and return contract."""
    if policy not in eplb.POLICIES:
        raise ValueError(f"unknown wideep policy {policy!r}; valid policies: {', '.join(eplb.POLICIES)}")
    return type(f"WideEP{policy.capitalize()}EplbPolicy", (WideEPEplbPolicy,),
                {"policy": policy, "map_only": map_only})


def _returns_map_only(policies) -> bool:
    """True when the installed vLLM's policies return a single tensor (phy2log) rather than a tuple."""
    reference = getattr(policies, "AbstractEplbPolicy", None) or policies.EPLB_POLICIES.get("default")
    method = getattr(reference, "rebalance_experts", None)
    if method is None:
        return False
    annotation = inspect.signature(method).return_annotation
    if annotation is inspect.Signature.empty:
        return False
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return "tuple" not in text.lower()


def register(policy: str = "balanced", name: str = "default") -> type:
    """Makes vLLM's EPLB use WideEP's ``policy`` planner; returns the installed class.

    Raises ImportError when vLLM has no known EPLB hook.
    """
    if policy not in eplb.POLICIES:
        raise ValueError(f"unknown wideep policy {policy!r}; valid policies: {', '.join(eplb.POLICIES)}")
    try:
        from vllm.distributed.eplb import policy as policies  # type: ignore

        cls = policy_class(policy, map_only=_returns_map_only(policies))
        policies.EPLB_POLICIES[name] = cls
        logger.info("wideep: vLLM EPLB policy %r now plans with wideep %r", name, policy)
        return cls
    except ImportError:
        pass
    try:
        from vllm.distributed.eplb import eplb_state  # type: ignore
    except ImportError as exc:
        raise ImportError("vLLM's EPLB module (vllm.distributed.eplb) is not importable") from exc
    if not hasattr(eplb_state, "rebalance_experts"):
        raise ImportError("this vLLM has neither EPLB_POLICIES nor eplb_state.rebalance_experts to hook")
    cls = policy_class(policy)

    def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus, *args, **kwargs):
        return cls.rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus)

    eplb_state.rebalance_experts = rebalance_experts
    logger.info("wideep: vLLM eplb_state.rebalance_experts now plans with wideep %r", policy)
    return cls


def plugin() -> None:
    """vLLM general-plugin entry point: registers WideEP when ``WIDEEP_EPLB_POLICY`` is set."""
    policy = os.environ.get(ENV_POLICY, "").strip()
    if policy:
        register(policy)
