#!/usr/bin/env python3
"""Baseline for `wide-ep bench dispatch`: torch.distributed.all_to_all_single over NCCL with the same payload.

Launched by rank 0 of the bench (or by hand) as
    python3 -m torch.distributed.run --nproc-per-node R benchmarks/torch_a2a_reference.py --spec counts.json --out torch.json

counts.json (written by the bench): {"hidden": H, "tokens": [T...], "counts": [[[c_sd]]...], "iterations": n, "warmup": w}
where counts[i][s][d] is the number of bf16 rows of H channels rank s sends to rank d at token count tokens[i] (the
deduplicated dispatch rows of the bench, self rows included). Dispatch = all_to_all_single with those splits;
combine = the reverse exchange. Each iteration starts with a barrier; times are CUDA-event medians, the slowest
rank's reported. Rank 0 writes {"world_size": R, "results": [{"tokens", "dispatch_us", "combine_us", "bytes"}]}.
"""
import argparse
import json
import os

import torch
import torch.distributed as dist


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True, help="counts.json written by wide-ep bench dispatch")
    ap.add_argument("--out", required=True, help="where rank 0 writes the results (JSON)")
    args = ap.parse_args()
    with open(args.spec) as f:
        spec = json.load(f)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    rank, world = dist.get_rank(), dist.get_world_size()
    hidden = spec["hidden"]
    results = []
    for tokens, matrix in zip(spec["tokens"], spec["counts"]):
        if len(matrix) != world:
            raise SystemExit(f"counts for {tokens} tokens are {len(matrix)}x{len(matrix)}, world size is {world}")
        send_splits = [int(c) for c in matrix[rank]]
        recv_splits = [int(matrix[s][rank]) for s in range(world)]
        gen = torch.Generator(device="cuda").manual_seed(1234 + rank)
        x = torch.randn(sum(send_splits), hidden, device="cuda", dtype=torch.bfloat16, generator=gen)
        recv = torch.empty(sum(recv_splits), hidden, device="cuda", dtype=torch.bfloat16)
        back = torch.empty_like(x)
        times = {"dispatch": [], "combine": []}
        for it in range(spec["warmup"] + spec["iterations"]):
            for phase in ("dispatch", "combine"):
                dist.barrier()
                torch.cuda.synchronize()
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                if phase == "dispatch":
                    dist.all_to_all_single(recv, x, recv_splits, send_splits)
                else:
                    dist.all_to_all_single(back, recv, send_splits, recv_splits)
                b.record()
                b.synchronize()
                if it >= spec["warmup"]:
                    times[phase].append(a.elapsed_time(b) * 1000.0)
        # The round trip must return the input exactly.
        if not torch.equal(back, x):
            raise SystemExit(f"rank {rank}: all_to_all_single round trip differs at {tokens} tokens")
        mine = torch.tensor([median(times["dispatch"]), median(times["combine"])], device="cuda")
        dist.all_reduce(mine, op=dist.ReduceOp.MAX)
        results.append({"tokens": tokens, "dispatch_us": mine[0].item(), "combine_us": mine[1].item(),
                        "bytes": sum(send_splits) * hidden * 2})
    if rank == 0:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"world_size": world, "results": results}, f, indent=1)
        os.replace(tmp, args.out)
        for r in results:
            print(f"torch all_to_all_single: {r['tokens']} tokens: dispatch {r['dispatch_us']:.1f} us, "
                  f"combine {r['combine_us']:.1f} us", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
