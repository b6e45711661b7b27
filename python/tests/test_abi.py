"""The C ABI itself: status codes, thread-local errors, capacity checks, library discovery."""

import ctypes
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import README_ARGS, README_WEIGHT

from wideep import _lib, eplb, library_version

P64 = ctypes.POINTER(ctypes.c_int64)
PD = ctypes.POINTER(ctypes.c_double)


def _plan(lib, loads, max_replicas, phy2log, log2phy=None, logcnt=None, policy=b"balanced", loads_ptr=True):
    w = np.ascontiguousarray(loads, dtype=np.float64)
    return lib.wideep_plan(
        w.ctypes.data_as(PD) if loads_ptr else None, w.shape[0], w.shape[1], policy, 16, 4, 2, 8, 0, None,
        max_replicas, phy2log.ctypes.data_as(P64),
        None if log2phy is None else log2phy.ctypes.data_as(P64),
        None if logcnt is None else logcnt.ctypes.data_as(P64))


def test_versions(lib):
    assert lib.wideep_abi_version() == _lib.ABI_VERSION
    assert library_version().count(".") == 2


def test_null_pointer_is_a_status_not_a_crash(lib):
    phy2log = np.zeros((2, 16), np.int64)
    assert _plan(lib, README_WEIGHT, 5, phy2log, loads_ptr=False) == _lib.NULL_POINTER
    assert "loads is NULL" in _lib.last_error()
    assert lib.wideep_split(None, 12, None, 16, 8, b"even", None) == _lib.NULL_POINTER


def test_success_clears_the_last_error(lib):
    phy2log = np.zeros((2, 16), np.int64)
    assert _plan(lib, README_WEIGHT, 5, phy2log, policy=b"bogus") == _lib.INVALID_ARGUMENT
    assert "unknown policy" in _lib.last_error()
    assert _plan(lib, README_WEIGHT, 5, phy2log) == _lib.OK
    assert _lib.last_error() == ""


def test_too_small_log2phy_reports_capacity_and_writes_nothing(lib):
    weight = np.array([[1000.0] + [1.0] * 11, [1.0] * 12])  # expert 0 takes all 4 redundant slots of its node
    phy2log = np.full((2, 16), 77, np.int64)
    log2phy = np.full((2, 12, 2), 77, np.int64)
    logcnt = np.full((2, 12), 77, np.int64)
    status = _plan(lib, weight, 2, phy2log, log2phy, logcnt)
    assert status == _lib.CAPACITY, _lib.last_error()
    assert "max_replicas" in _lib.last_error()
    assert (phy2log == 77).all() and (log2phy == 77).all() and (logcnt == 77).all()
    full = np.empty((2, 12, 5), np.int64)
    assert _plan(lib, weight, 5, phy2log, full, logcnt) == _lib.OK
    assert logcnt[0, 0] > 2 and (full[0, 0] >= 0).sum() == logcnt[0, 0]
    assert (phy2log[0, full[0, 0, : logcnt[0, 0]]] == 0).all()


def test_optional_outputs_may_be_null(lib):
    phy2log = np.empty((2, 16), np.int64)
    assert _plan(lib, README_WEIGHT, 0, phy2log) == _lib.OK
    assert (phy2log == eplb.rebalance_experts(README_WEIGHT, **README_ARGS)[0]).all()


def test_errors_stay_on_their_thread(lib):
    failures, successes = [], []
    barrier = threading.Barrier(2)

    def failing():
        barrier.wait()
        for _ in range(200):
            status = lib.wideep_split(None, 12, None, 16, 8, b"even", None)
            failures.append((status, _lib.last_error()))

    def succeeding():
        counts = np.arange(12, dtype=np.int64)
        ids = (np.arange(16) % 12).astype(np.int64)
        out = np.empty(16, np.int64)
        barrier.wait()
        for _ in range(200):
            status = lib.wideep_split(counts.ctypes.data_as(P64), 12, ids.ctypes.data_as(P64), 16, 8, b"balanced",
                                      out.ctypes.data_as(P64))
            successes.append((status, _lib.last_error(), int(out.sum())))

    threads = [threading.Thread(target=failing), threading.Thread(target=succeeding)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(s == _lib.NULL_POINTER and "counts is NULL" in m for s, m in failures)
    assert all(s == _lib.OK and m == "" and total == 66 for s, m, total in successes)


def test_concurrent_plans_agree(lib):
    rng = np.random.default_rng(12)
    weight = rng.integers(0, 10_000, size=(8, 64))
    expected = eplb.rebalance_experts(weight, 96, 8, 2, 16)[0]
    results = [None] * 4

    def run(i):
        results[i] = eplb.rebalance_experts(weight, 96, 8, 2, 16)[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all((r == expected).all() for r in results)


def test_wideep_lib_env_is_searched_first(tmp_path, monkeypatch):
    monkeypatch.setenv("WIDEEP_LIB", str(tmp_path))
    first = _lib.candidates()[0]
    assert first.parent == tmp_path and first.name.startswith("libwideep")
    monkeypatch.setenv("WIDEEP_LIB", str(tmp_path / "custom.so"))
    assert _lib.candidates()[0] == tmp_path / "custom.so"
    monkeypatch.delenv("WIDEEP_LIB")
    names = [str(p) for p in _lib.candidates()]
    assert any(n.endswith(".build/release/libwideep.so") for n in names)
    assert any(n.endswith(".build/debug/libwideep.so") for n in names)


def test_internal_status_maps_to_runtime_error():
    with pytest.raises(RuntimeError):
        _lib.check(_lib.INTERNAL)
    with pytest.raises(ValueError):
        _lib.check(_lib.INFEASIBLE)


def test_random_requests_plan_or_raise_value_error_never_crash(lib):
    """Odd shapes, zero loads, forced same-rank packing, bogus current maps: a plan or a ValueError, nothing else."""
    rng = np.random.default_rng(2024)
    planned = 0
    for _ in range(150):
        experts = int(rng.choice([1, 2, 3, 4, 6, 8, 12, 16]))
        groups = int(rng.choice([1, 2, 4]))
        nodes = int(rng.choice([1, 2, 3]))
        gpus = nodes * int(rng.integers(1, 4))
        replicas = gpus * int(rng.integers(1, 6))
        layers = int(rng.integers(1, 3))
        policy = str(rng.choice(eplb.POLICIES))
        same_rank = [None, True, False][int(rng.integers(0, 3))]
        weight = [rng.integers(0, 4, (layers, experts)), rng.gamma(0.5, 100, (layers, experts)),
                  np.zeros((layers, experts))][int(rng.integers(0, 3))]
        current = None
        if rng.random() < 0.3 and replicas >= experts:
            current = np.stack([rng.permutation(np.concatenate([np.arange(experts),
                                                                rng.integers(0, experts, replicas - experts)]))
                                for _ in range(layers)])
        try:
            phy2log, log2phy, logcnt = eplb.rebalance_experts(weight, replicas, groups, nodes, gpus, policy=policy,
                                                              allow_same_rank=same_rank, current=current)
        except ValueError as exc:
            assert str(exc), "errors carry a message"
            continue
        planned += 1
        assert (logcnt >= 1).all() and phy2log.shape == (layers, replicas)
        counts = rng.integers(0, 50, experts)
        assert (np.bincount(phy2log[0], weights=eplb.split(counts, phy2log[0], gpus), minlength=experts)
                == counts).all()
    assert planned >= 30


@pytest.mark.parametrize("policy", ["balanced", "deepseek", "greedy"])
def test_layer_parallel_planning_equals_sequential(lib, monkeypatch, policy):
    rng = np.random.default_rng(31)
    weight = rng.integers(0, 20_000, size=(40, 64))
    current = eplb.rebalance_experts(rng.integers(0, 20_000, size=(40, 64)), 96, 8, 2, 16)[0]
    monkeypatch.setenv("WIDEEP_NUM_THREADS", "1")
    sequential = eplb.rebalance_experts(weight, 96, 8, 2, 16, policy=policy)
    sequential_migrating = eplb.rebalance_experts(weight, 96, 8, 2, 16, policy=policy, current=current)
    for threads in ("4", "16"):  # 16: more planning threads than this machine has cores
        monkeypatch.setenv("WIDEEP_NUM_THREADS", threads)
        parallel = eplb.rebalance_experts(weight, 96, 8, 2, 16, policy=policy)
        parallel_migrating = eplb.rebalance_experts(weight, 96, 8, 2, 16, policy=policy, current=current)
        for a, b in zip(sequential + sequential_migrating, parallel + parallel_migrating):
            assert np.array_equal(a, b)


def _fork_and_check(fn, timeout: float = 60.0) -> None:
    """Runs ``fn`` in a forked child; asserts it returned True there within ``timeout`` seconds (a child stuck on a
    lock inherited from the parent is killed and fails the test)."""
    import os
    import signal
    import time

    pid = os.fork()
    if pid == 0:  # child: exit code 0 only if fn() is True
        code = 1
        try:
            code = 0 if fn() else 3
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"forked child did not finish within {timeout} s")
        time.sleep(0.005)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_planning_works_in_a_forked_child_after_the_parent_planned(lib, monkeypatch):
    """Hosts like vLLM fork workers: the child has none of the parent's planning threads and must start its own,
    also in a grandchild, while the parent's threads keep working."""
    import os

    monkeypatch.setenv("WIDEEP_NUM_THREADS", "3")
    rng = np.random.default_rng(41)
    weight = rng.integers(0, 10_000, size=(24, 32))
    expected = [eplb.rebalance_experts(weight, 48, 4, 2, 8, policy=p) for p in ("balanced", "deepseek")]

    def plans_agree() -> bool:
        got = [eplb.rebalance_experts(weight, 48, 4, 2, 8, policy=p) for p in ("balanced", "deepseek")]
        return all(np.array_equal(a, b) for g, e in zip(got, expected) for a, b in zip(g, e))

    def threads() -> int:
        return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 0

    def child() -> bool:
        before = threads()
        if not plans_agree():
            return False
        if before and threads() < before + 2:  # the child plans on threads of its own again
            return False
        _fork_and_check(plans_agree)  # a grandchild forked after the child started its own threads
        return plans_agree()

    _fork_and_check(child)
    assert plans_agree()


def test_rebalance_experts_allocates_log2phy_once_at_the_widest_replica_count(lib):
    rng = np.random.default_rng(8)
    weight = np.ascontiguousarray(rng.gamma(0.4, 1000, size=(20, 64)), dtype=np.float64)
    phy2log = np.empty((20, 96), np.int64)
    logcnt = np.empty((20, 64), np.int64)
    calls = []

    @_lib.LOG2PHY_ALLOCATOR
    def allocate(context, width):
        calls.append((context, width))
        calls.append(np.full((20, 64, width), 77, np.int64))
        return calls[-1].ctypes.data

    status = lib.wideep_rebalance_experts(weight.ctypes.data, 20, 64, b"balanced", 96, 8, 2, 16, 0, None,
                                          phy2log.ctypes.data, logcnt.ctypes.data, allocate, 1234)
    assert status == _lib.OK, _lib.last_error()
    assert len(calls) == 2 and calls[0] == (1234, int(logcnt.max()))
    expected = eplb.rebalance_experts(weight, 96, 8, 2, 16)
    assert np.array_equal(phy2log, expected[0]) and np.array_equal(calls[1], expected[1])
    assert np.array_equal(logcnt, expected[2])

    refused = _lib.LOG2PHY_ALLOCATOR(lambda context, width: None)
    status = lib.wideep_rebalance_experts(weight.ctypes.data, 20, 64, b"balanced", 96, 8, 2, 16, 0, None,
                                          phy2log.ctypes.data, logcnt.ctypes.data, refused, None)
    assert status == _lib.NULL_POINTER and "allocate_log2phy" in _lib.last_error()
    status = lib.wideep_rebalance_experts(weight.ctypes.data, 20, 64, b"balanced", 96, 8, 2, 16, 0, None,
                                          phy2log.ctypes.data, None, allocate, None)
    assert status == _lib.NULL_POINTER and "logcnt is NULL" in _lib.last_error()
    weight[3, 5] = -1.0
    status = lib.wideep_rebalance_experts(weight.ctypes.data, 20, 64, b"balanced", 96, 8, 2, 16, 0, None,
                                          phy2log.ctypes.data, logcnt.ctypes.data, allocate, None)
    assert status == _lib.INVALID_ARGUMENT and "loads[3][5]" in _lib.last_error() and len(calls) == 2


def test_log2phy_lists_each_experts_slots_in_order_and_checks_capacity(lib):
    rng = np.random.default_rng(4)
    phy2log = np.ascontiguousarray(rng.integers(0, 6, size=(3, 20)), dtype=np.int64)
    width = int(max(np.bincount(row, minlength=7).max() for row in phy2log))
    out = np.full((3, 7, width), 77, np.int64)
    assert lib.wideep_log2phy(phy2log.ctypes.data, 3, 7, 20, width, out.ctypes.data) == _lib.OK, _lib.last_error()
    for l in range(3):
        for e in range(7):
            slots = np.flatnonzero(phy2log[l] == e)  # ascending; expert 6 has none
            assert (out[l, e, : len(slots)] == slots).all() and (out[l, e, len(slots):] == -1).all()
    small = np.full((3, 7, width - 1), 77, np.int64)
    assert lib.wideep_log2phy(phy2log.ctypes.data, 3, 7, 20, width - 1, small.ctypes.data) == _lib.CAPACITY
    assert "max_replicas" in _lib.last_error() and (small == 77).all()
    bad = phy2log.copy()
    bad[1, 3] = 7
    assert lib.wideep_log2phy(bad.ctypes.data, 3, 7, 20, width, out.ctypes.data) == _lib.INVALID_ARGUMENT
    assert "phy2log[1][3] = 7" in _lib.last_error()


def test_rebalance_log2phy_is_as_wide_as_the_most_replicated_expert(lib):
    weight = np.array([[1000.0] + [1.0] * 11, [1.0] * 12])
    phy2log, log2phy, logcnt = eplb.rebalance_experts(weight, **README_ARGS)
    assert log2phy.shape == (2, 12, int(logcnt.max()))
    for l in range(2):
        for e in range(12):
            assert (log2phy[l, e, : logcnt[l, e]] == np.flatnonzero(phy2log[l] == e)).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), -1.0, -5e-324, -1e308])
def test_load_check_finds_the_first_bad_value_anywhere(lib, bad):
    """The library's vectorized load check: every kind of bad value, in any block, reported at its first position;
    -0.0, subnormals and the largest finite value are valid."""
    rng = np.random.default_rng(17)
    phy2log = np.empty((21, 64), np.int64)
    for flat in (0, 511, 512, 21 * 48 - 1, int(rng.integers(0, 21 * 48))):
        weight = rng.gamma(1.0, 100.0, size=(21, 48))
        weight.flat[[3, 700, 1000]] = [-0.0, 5e-324, np.finfo(np.float64).max / 1e4]
        assert _plan_full(lib, weight, phy2log) == _lib.OK, _lib.last_error()
        weight.flat[flat] = bad
        if flat + 1 < weight.size:
            weight.flat[-1] = float("nan")  # a later bad value must not be the one reported
        assert _plan_full(lib, weight, phy2log) == _lib.INVALID_ARGUMENT
        l, e = divmod(flat, 48)
        assert f"loads[{l}][{e}] = " in _lib.last_error()


def _plan_full(lib, weight, phy2log):
    w = np.ascontiguousarray(weight, dtype=np.float64)
    return lib.wideep_plan(w.ctypes.data, w.shape[0], w.shape[1], b"greedy", 64, 1, 1, 8, 0, None, 0,
                           phy2log.ctypes.data, None, None)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_planning_threads_block_signals_so_the_host_handles_them(lib):
    """The library's planning threads outlive a call; signals (SIGINT for Python's KeyboardInterrupt) must keep going
    to the host's threads, so the planning threads block them all."""
    code = f"""
import os, sys, signal
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
import numpy as np
from wideep import eplb
def tasks():
    return set(os.listdir("/proc/self/task"))
before = tasks()
eplb.rebalance_experts(np.random.default_rng(1).integers(0, 1000, (24, 32)), 48, 4, 2, 8)
new = tasks() - before
assert len(new) >= 2, new
for t in new:
    line = next(l for l in open(f"/proc/self/task/{{t}}/status") if l.startswith("SigBlk:"))
    mask = int(line.split()[1], 16)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        assert mask >> (sig - 1) & 1, (t, hex(mask), sig)
print("ok")
"""
    env = dict(os.environ, WIDEEP_NUM_THREADS="3", WIDEEP_LIB=_lib.path())
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
