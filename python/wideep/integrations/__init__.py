"""Adapters that plug WideEP's planner into serving engines: ``vllm`` and ``sglang``."""
