#!/usr/bin/env python3
"""PyTorch baselines for `wide-ep bench moe --device cuda` (DeepSeek-V3 MoE layer, bf16, one GPU).

Two layers on identical weights and inputs (the same hash-uniform fill as WideEP's random.cu, from --seed):
  * loop:       the usual Hugging Face way: router, top-k, a Python loop over experts with bf16 matmuls, index_add_;
  * grouped_mm: tokens sorted by expert, one torch._grouped_mm for W13 and one for W2.
Also measures torch.matmul's dense bf16 rate (8192^3). With --ours (the JSON of `wide-ep bench moe --json`) it prints
ours next to both baselines with the ratios; with --compare DIR it checks our dumped output rows against the loop's.
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

M32 = 0xFFFFFFFF


def fmix32_int(h):
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    h ^= h >> 16
    return h


def fmix32(h):
    h = h ^ (h >> 16)
    h = (h * 0x85EBCA6B) & M32
    h = h ^ (h >> 13)
    h = (h * 0xC2B2AE35) & M32
    h = h ^ (h >> 16)
    return h


def uniform(n, seed, block, scale, dtype=torch.bfloat16):
    """Element j of `block`: ((fmix32(j ^ fmix32(seed ^ block*0x9E3779B9)) >> 8) * 2^-24 - 0.5) * scale."""
    key = fmix32_int((seed ^ ((block * 0x9E3779B9) & M32)) & M32)
    j = torch.arange(n, device="cuda", dtype=torch.int64)
    h = fmix32(j ^ key)
    v = ((h >> 8).to(torch.float32) * (2.0 ** -24) - 0.5) * scale
    return v.to(dtype)


class Layer:
    def __init__(self, seed, H=7168, I=2048, E=256, K=8, G=8, TG=4, scaling=2.5, shared=2048, max_tokens=16384):
        self.H, self.I, self.E, self.K, self.G, self.TG, self.scaling, self.SI = H, I, E, K, G, TG, scaling, shared
        s = lambda k: (seed + k) & M32
        self.x = uniform(max_tokens * H, s(0), 0, 2.0).view(max_tokens, H)
        self.wr = uniform(E * H, s(1), 0, 2 / math.sqrt(H)).view(E, H)
        self.bias = uniform(E, s(2), 0, 0.2, torch.float32)
        w13s, w2s = 2 * math.sqrt(3 / H), 2 * math.sqrt(3 / I)
        self.w13 = torch.stack([uniform(2 * I * H, s(3), e, w13s).view(2 * I, H) for e in range(E)])
        self.w2 = torch.stack([uniform(H * I, s(4), e, w2s).view(H, I) for e in range(E)])
        if shared:
            self.s13 = uniform(2 * shared * H, s(5), 0, w13s).view(2 * shared, H)
            self.s2 = uniform(H * shared, s(6), 0, 2 * math.sqrt(3 / shared)).view(H, shared)

    def route(self, x):
        T = x.shape[0]
        logits = F.linear(x.float(), self.wr.float())
        scores = logits.sigmoid()
        choice = scores + self.bias
        gs = choice.view(T, self.G, -1).topk(2, dim=-1)[0].sum(-1)
        gidx = gs.topk(self.TG, dim=-1, sorted=False)[1]
        gmask = torch.zeros_like(gs).scatter_(1, gidx, 1).bool()
        smask = gmask.unsqueeze(-1).expand(T, self.G, self.E // self.G).reshape(T, self.E)
        idx = choice.masked_fill(~smask, float("-inf")).topk(self.K, dim=-1, sorted=False)[1]
        w = scores.gather(1, idx)
        w = w / (w.sum(-1, keepdim=True) + 1e-20) * self.scaling
        return idx, w

    def shared(self, x):
        if not self.SI:
            return 0
        g, u = F.linear(x, self.s13).chunk(2, dim=-1)
        return F.linear(F.silu(g) * u, self.s2)

    def forward_loop(self, x):
        idx, w = self.route(x)
        final = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        for e in range(self.E):
            tok, kk = torch.where(idx == e)
            if tok.numel() == 0:
                continue
            g, u = F.linear(x[tok], self.w13[e]).chunk(2, dim=-1)
            y = F.linear(F.silu(g) * u, self.w2[e])
            final.index_add_(0, tok, y.float() * w[tok, kk, None])
        return final.to(torch.bfloat16) + self.shared(x)

    def forward_grouped(self, x, pad=False):
        T = x.shape[0]
        idx, w = self.route(x)
        flat = idx.reshape(-1)
        order = torch.argsort(flat, stable=True)
        tok = order // self.K
        counts = torch.bincount(flat, minlength=self.E)
        xs = x[tok]
        if pad:
            pc = (counts + 15) // 16 * 16
            start, pstart = torch.cumsum(counts, 0) - counts, torch.cumsum(pc, 0) - pc
            es = flat[order]
            dest = pstart[es] + torch.arange(flat.numel(), device=x.device) - start[es]
            xp = torch.zeros(int(pc.sum()), self.H, dtype=x.dtype, device=x.device)
            xp[dest] = xs
            offs = torch.cumsum(pc, 0).to(torch.int32)
        else:
            xp, offs = xs, torch.cumsum(counts, 0).to(torch.int32)
        y13 = torch._grouped_mm(xp, self.w13.transpose(-2, -1), offs=offs)
        g, u = y13.chunk(2, dim=-1)
        ys = torch._grouped_mm(F.silu(g) * u, self.w2.transpose(-2, -1), offs=offs)
        if pad:
            ys = ys[dest]
        y = torch.empty_like(ys)
        y[order] = ys
        out = (y.view(T, self.K, self.H).float() * w.unsqueeze(-1)).sum(1).to(torch.bfloat16)
        return out + self.shared(x)


def time_ms(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        samples.append(a.elapsed_time(b))
    samples.sort()
    return samples[len(samples) // 2]


def rel(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", default="128,4096,16384")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--ours", help="JSON from `wide-ep bench moe --json`")
    ap.add_argument("--compare", help="folder with ours_T<n>.bin dumps from `wide-ep bench moe --dump`")
    ap.add_argument("--json-out", help="write the baseline numbers here")
    a = ap.parse_args()
    tokens = [int(t) for t in a.tokens.split(",")]
    torch.manual_seed(0)
    n = 8192
    A = uniform(n * n, 11, 0, 2.0).view(n, n)
    B = uniform(n * n, 12, 0, 2.0).view(n, n)
    dense = 2 * n ** 3 / (time_ms(lambda: A @ B.t(), 3, a.repeats) * 1e-3) / 1e12
    del A, B
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}: dense bf16 matmul {dense:.1f} TFLOP/s",
          file=sys.stderr)
    L = Layer(a.seed, max_tokens=max(tokens))
    pad = False
    rows = []
    for T in sorted(tokens):
        x = L.x[:T]
        with torch.no_grad():
            ref = L.forward_loop(x)
            g, grouped_ms = None, float("nan")
            for attempt in ([pad] if pad else [False, True]):
                try:
                    g = L.forward_grouped(x, attempt)
                    pad = attempt
                    break
                except RuntimeError as err:
                    print(f"grouped_mm (pad={attempt}) failed: {err}", file=sys.stderr)
            loop_ms = time_ms(lambda: L.forward_loop(x), 1, max(3, a.repeats // 2))
            if g is not None:
                grouped_ms = time_ms(lambda: L.forward_grouped(x, pad), 2, a.repeats)
        row = {"tokens": T, "loop_ms": loop_ms, "grouped_mm_ms": grouped_ms,
               "grouped_vs_loop_rel_err": rel(g.float(), ref.float()) if g is not None else float("nan"),
               "mean_abs_out": float(ref.float().abs().mean())}
        if a.compare:
            p = os.path.join(a.compare, f"ours_T{T}.bin")
            if os.path.exists(p):
                ours = torch.frombuffer(bytearray(open(p, "rb").read()), dtype=torch.bfloat16).view(-1, L.H).cuda()
                row["ours_vs_loop_rel_err"] = rel(ours.float(), ref[: ours.shape[0]].float())
        print(f"T={T}: loop {loop_ms:.3f} ms, grouped_mm {grouped_ms:.3f} ms, {row}", file=sys.stderr)
        rows.append(row)
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(), "dense_tflops": dense, "rows": rows}
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(out, f, indent=1)
    hdr = ["tokens", "loop ms", "grouped_mm ms", "mean|out|", "grouped vs loop", "ours vs loop"]
    table = [hdr] + [[str(r["tokens"]), f"{r['loop_ms']:.3f}", f"{r['grouped_mm_ms']:.3f}", f"{r['mean_abs_out']:.5f}",
                      f"{r['grouped_vs_loop_rel_err']:.2e}", f"{r.get('ours_vs_loop_rel_err', float('nan')):.2e}"]
                     for r in rows]
    print(f"PyTorch baselines ({out['device']}, torch {out['torch']}), dense bf16 matmul {dense:.1f} TFLOP/s")
    print_table(table)
    if a.ours:
        ours = json.load(open(a.ours))
        by_t = {r["tokens"]: r for r in ours["rows"]}
        t2 = [["tokens", "ours ms", "path", "loop ms", "x loop", "grouped_mm ms", "x grouped_mm", "floor ms",
               "ours/floor", "expert GEMM % of dense (ours rate / torch dense)"]]
        for r in rows:
            o = by_t.get(r["tokens"])
            if not o:
                continue
            best_tf = max(v for k, v in o["expertGEMMTFLOPS"].items() if "tokens-on" not in k)
            t2.append([str(r["tokens"]), f"{o['bestMs']:.3f}", o["bestPath"], f"{r['loop_ms']:.3f}",
                       f"{r['loop_ms'] / o['bestMs']:.2f}", f"{r['grouped_mm_ms']:.3f}",
                       f"{r['grouped_mm_ms'] / o['bestMs']:.2f}", f"{o['floorMs']:.3f}",
                       f"{o['bestMs'] / o['floorMs']:.2f}",
                       f"{best_tf:.0f} / {dense:.0f} = {100 * best_tf / dense:.0f}%"])
        print("ours vs PyTorch (same weights and inputs, same run)")
        print_table(t2)


def print_table(rows):
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())


if __name__ == "__main__":
    main()
