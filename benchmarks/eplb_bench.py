#!/usr/bin/env python3
"""EPLB through Python: libwideep (ctypes) against the numpy DeepSeek reference, side by side.

For DeepSeek-V3/R1 shapes (58 MoE layers × 256 experts, 288 physical experts) at EP32 (4 nodes of 8
GPUs, hierarchical policy) and EP72 (9 nodes, global policy: 8 groups do not divide over 9 nodes):

* planning time of ``wideep.eplb.rebalance_experts`` (policies "balanced" and "deepseek") against
  ``wideep.reference.rebalance_experts`` (DeepSeek's algorithm in numpy, vectorized over layers), timed two ways:
  back-to-back calls of one function (warm caches) and rounds that call the three in turn (each call after the
  others, as a rebalance that runs now and then would find the machine);
* realized imbalance on generated traces: per-step counts are sampled multinomially from real
  DeepSeek-R1 expert-load profiles (SGLang's published statistics) with a log-normal popularity
  drift; each planner plans on the first half of the steps and is judged on every step of the
  second half. (max - mean) / mean of GPU loads, mean and p99 over (layer, step).

Usage: WIDEEP_LIB=.build/release/libwideep.so python3 benchmarks/eplb_bench.py [--steps 64] [--threads 1,16]
       [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

from wideep import _lib, eplb, reference  # noqa: E402

DATA = Path("/work/shared/data/deepseek-r1-expert-load")
CONFIGS = {  # name: (num_replicas, num_groups, num_nodes, num_gpus)
    "EP32": (288, 8, 4, 32),
    "EP72": (288, 8, 9, 72),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def profiles() -> dict[str, np.ndarray]:
    """Real per-layer expert popularity, [58, 256] each; a Zipf stand-in when the data folder is absent."""
    out = {}
    for f in sorted(DATA.glob("*.json")):
        load = np.asarray(json.loads(f.read_text())["expert_load"], dtype=np.float64)
        out[f.stem.replace("sglang_dsv3_", "")] = load
    if not out:
        rng = np.random.default_rng(0)
        out["zipf"] = np.stack([rng.permutation(1.0 / np.arange(1, 257) ** 0.9) for _ in range(58)])
    return out


def trace(profile: np.ndarray, steps: int, tokens: int, drift: float, seed: int) -> np.ndarray:
    """Per-step counts [steps, layers, experts]: multinomial at ``tokens`` routed tokens per layer and step,
    from a popularity that follows a log-normal random walk (``drift`` = per-step sigma)."""
    rng = np.random.default_rng(seed)
    layers, experts = profile.shape
    base = np.log(profile / profile.sum(1, keepdims=True) + 1e-12)
    walk = np.zeros_like(base)
    out = np.empty((steps, layers, experts), dtype=np.int64)
    for t in range(steps):
        walk += rng.normal(0.0, drift, size=walk.shape)
        p = np.exp(base + walk)
        p /= p.sum(1, keepdims=True)
        for l in range(layers):
            out[t, l] = rng.multinomial(tokens, p[l])
    return out


def realized(counts: np.ndarray, phy2log: np.ndarray, num_gpus: int) -> np.ndarray:
    """(max - mean) / mean of GPU loads for every (step, layer), even split over replicas: [steps × layers]."""
    steps, layers, experts = counts.shape
    logcnt = np.stack([np.bincount(r, minlength=experts) for r in phy2log])
    per_replica = counts / logcnt[None]
    slots = np.take_along_axis(per_replica, np.broadcast_to(phy2log[None], (steps,) + phy2log.shape), axis=2)
    gpu = slots.reshape(steps, layers, num_gpus, -1).sum(-1)
    mean = gpu.mean(-1)
    return ((gpu.max(-1) - mean) / np.where(mean > 0, mean, 1)).ravel()


def realized_balanced_split(counts: np.ndarray, phy2log: np.ndarray, num_gpus: int) -> np.ndarray:
    """The same with WideEP's per-batch ReplicaSplit (whole tokens, min-max GPU load) instead of the even split."""
    return np.concatenate([eplb.imbalance(c, phy2log, num_gpus, split="balanced").ratio for c in counts])


def timed(fn, repeats: int) -> tuple[float, float]:
    """(best, median) wall seconds over ``repeats`` back-to-back calls after one warm-up (library load, page-in)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def timed_interleaved(fns, repeats: int) -> list[tuple[float, float]]:
    """(best, median) wall seconds of each function over ``repeats`` rounds that call every function once, in turn:
    each call finds the caches, the branch predictors and the allocator as the other functions left them (the
    numpy reference frees large temporaries, so the next call's output arrays page-fault afresh)."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [(min(ts), statistics.median(ts)) for ts in times]


def p99(x: np.ndarray) -> float:
    s = np.sort(x)
    return float(s[min(len(s) - 1, max(0, int(np.ceil(0.99 * len(s))) - 1))])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=64, help="trace steps (first half plans, second half judges)")
    ap.add_argument("--tokens", type=int, default=8192 * 8, help="routed tokens per layer and step")
    ap.add_argument("--drift", type=float, default=0.02, help="per-step sigma of the log popularity walk")
    ap.add_argument("--repeats", type=int, default=7, help="timed repetitions (median reported)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--threads", type=lambda t: [int(x) for x in t.split(",")],
                    help="comma-separated planning thread counts to time, e.g. 1,4,16 (each sets WIDEEP_NUM_THREADS; "
                         "default: the environment's setting, else all cores)")
    args = ap.parse_args()
    if args.steps < 2:
        ap.error("--steps must be >= 2")
    if args.threads is not None and any(t < 1 for t in args.threads):
        ap.error("--threads takes positive counts, e.g. 1,4,16")

    log(f"libwideep: {_lib.path()} (version {_lib.load().wideep_version().decode()})")
    profs = profiles()
    first = next(iter(profs.values()))
    results = {"timing": [], "imbalance": []}

    cell = lambda t: f"{t[0] * 1e3:.2f} ms ({t[1] * 1e3:.2f})"  # noqa: E731
    # Planning threads to time: the environment's WIDEEP_NUM_THREADS (or all cores) unless --threads lists some.
    thread_settings = [os.environ.get("WIDEEP_NUM_THREADS")] if args.threads is None else args.threads
    for setting in thread_settings:
        if setting is None:
            os.environ.pop("WIDEEP_NUM_THREADS", None)
        else:
            os.environ["WIDEEP_NUM_THREADS"] = str(setting)
        threads = str(setting) if setting is not None else f"{len(os.sched_getaffinity(0))} (all cores)"
        for mode in ("back-to-back", "interleaved"):
            print(f"## Planning time ({mode}), 58 layers x 256 experts, 288 physical experts; best of {args.repeats} "
                  f"(median in brackets); wideep threads: {threads}; load average {os.getloadavg()[0]:.1f}")
            print(f"{'config':<6} {'numpy reference':>22} {'wideep deepseek':>22} {'x':>6} "
                  f"{'wideep balanced':>22} {'x':>6}")
            for name, (replicas, groups, nodes, gpus) in CONFIGS.items():
                log(f"timing {name} ({mode}, threads {threads}) ...")
                weight = first
                fns = [
                    lambda: reference.rebalance_experts(weight, replicas, groups, nodes, gpus),
                    lambda: eplb.rebalance_experts(weight, replicas, groups, nodes, gpus, policy="deepseek"),
                    lambda: eplb.rebalance_experts(weight, replicas, groups, nodes, gpus),
                ]
                if mode == "back-to-back":
                    t_ref, t_ds, t_bal = (timed(fn, args.repeats) for fn in fns)
                else:
                    t_ref, t_ds, t_bal = timed_interleaved(fns, args.repeats)
                print(f"{name:<6} {cell(t_ref):>22} {cell(t_ds):>22} {t_ref[0] / t_ds[0]:>5.1f}x "
                      f"{cell(t_bal):>22} {t_ref[0] / t_bal[0]:>5.1f}x")
                results["timing"].append(dict(
                    config=name, mode=mode, numpy_ref_ms=t_ref[0] * 1e3, wideep_deepseek_ms=t_ds[0] * 1e3,
                    wideep_balanced_ms=t_bal[0] * 1e3, threads=threads))
            print()
    if args.threads is not None:
        os.environ.pop("WIDEEP_NUM_THREADS", None)

    half = args.steps // 2
    print(f"## Realized imbalance (max-mean)/mean, plan on steps [0,{half}), judged on steps [{half},{args.steps}); "
          f"{args.tokens} tokens/layer/step, drift {args.drift}")
    print(f"{'workload':<24} {'config':<6} {'deepseek (numpy)':>18} {'wideep deepseek':>18} "
          f"{'wideep balanced':>18} {'+ balanced split':>18}")
    for wname, prof in profs.items():
        counts = trace(prof, args.steps, args.tokens, args.drift, seed=len(wname))
        plan_on = counts[:half].sum(0)
        judge = counts[half:]
        for name, (replicas, groups, nodes, gpus) in CONFIGS.items():
            log(f"imbalance {wname} {name} ...")
            ref = reference.rebalance_experts(plan_on, replicas, groups, nodes, gpus)[0]
            ds = eplb.rebalance_experts(plan_on, replicas, groups, nodes, gpus, policy="deepseek")[0]
            bal = eplb.rebalance_experts(plan_on, replicas, groups, nodes, gpus)[0]
            r_ref, r_ds, r_bal = (realized(judge, p, gpus) for p in (ref, ds, bal))
            r_split = realized_balanced_split(judge, bal, gpus)
            cells = [f"{r.mean():.4f} / {p99(r):.3f}" for r in (r_ref, r_ds, r_bal, r_split)]
            print(f"{wname:<24} {name:<6} " + " ".join(f"{c:>18}" for c in cells))
            results["imbalance"].append(dict(
                workload=wname, config=name,
                deepseek_numpy=dict(mean=r_ref.mean(), p99=p99(r_ref)),
                wideep_deepseek=dict(mean=r_ds.mean(), p99=p99(r_ds)),
                wideep_balanced=dict(mean=r_bal.mean(), p99=p99(r_bal)),
                wideep_balanced_split=dict(mean=r_split.mean(), p99=p99(r_split))))
    print("(cells: mean / p99 over layers x judged steps; lower is better)")
    if args.json:
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps(results, indent=2))
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
