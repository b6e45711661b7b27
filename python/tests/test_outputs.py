"""Recycled output memory: a block is reused only after every array and view over it is gone."""

import gc

import numpy as np

from wideep import _outputs, eplb


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_memory_is_reused_only_after_every_view_is_gone(monkeypatch):
    monkeypatch.setattr(_outputs, "_free", {})  # room for this size whatever other tests left
    shape = (7, 13, 3)  # a size no other test uses
    a = _outputs.empty_int64(shape)
    a[...] = 5
    view = a[2:, 4]
    first = _address(a)
    del a
    gc.collect()
    b = _outputs.empty_int64(shape)
    assert not np.shares_memory(b, view), "a live view's memory was handed out again"
    b[...] = -1
    assert (view == 5).all()
    second = _address(b)
    del view, b
    gc.collect()
    c, d = _outputs.empty_int64(shape), _outputs.empty_int64(shape)  # both blocks are free again: reused
    assert {_address(c), _address(d)} == {first, second}
    assert c.shape == shape and c.dtype == np.int64 and c.flags.c_contiguous and c.flags.writeable


def test_free_blocks_per_size_and_sizes_are_bounded(monkeypatch):
    monkeypatch.setattr(_outputs, "_free", {})
    shape = (5, 11)
    arrays = [_outputs.empty_int64(shape) for _ in range(3 * _outputs.MAX_FREE_PER_SIZE)]
    del arrays
    gc.collect()
    assert len(_outputs._free[5 * 11 * 8]) == _outputs.MAX_FREE_PER_SIZE
    held = [_outputs.empty_int64((1, 100 + i)) for i in range(2 * _outputs.MAX_SIZES)]
    del held
    gc.collect()
    assert len(_outputs._free) == _outputs.MAX_SIZES


def test_results_of_earlier_calls_stay_intact_while_held():
    rng = np.random.default_rng(3)
    first_weight = rng.integers(0, 10_000, size=(16, 64))
    first = eplb.rebalance_experts(first_weight, 96, 8, 2, 16)
    kept = [a.copy() for a in first]
    for _ in range(3):  # later calls of the same shapes, whose own results are dropped at once
        eplb.rebalance_experts(rng.integers(0, 10_000, size=(16, 64)), 96, 8, 2, 16)
        eplb.rebalance_experts(rng.integers(0, 10_000, size=(16, 64)), 96, 8, 2, 16, policy="deepseek")
    for a, b in zip(first, kept):
        assert np.array_equal(a, b)
    assert np.array_equal(first[0], eplb.rebalance_experts(first_weight, 96, 8, 2, 16)[0])
