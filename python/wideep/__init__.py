"""WideEP's EPLB planner for Python: a drop-in for DeepSeek's ``rebalance_experts``.

``wideep.eplb.rebalance_experts`` has DeepSeek EPLB's signature and outputs; the planning runs in
libwideep (Swift, through ctypes). See docs/PYTHON.md.
"""

from . import eplb
from .eplb import imbalance, rebalance_experts, split

__version__ = "0.1.0"
__all__ = ["eplb", "rebalance_experts", "imbalance", "split", "library_version"]


def library_version() -> str:
    """Version string of the loaded libwideep."""
    from . import _lib

    return _lib.load().wideep_version().decode()
