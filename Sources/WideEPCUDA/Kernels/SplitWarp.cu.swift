/// `split_warp.cu`: the balanced replica split of one batch (Core's `ReplicaSplit.quotas(…, policy: .balanced)`) in
/// one warp, the production GPU split for placements with at most 128 multi-rank experts (`SplitWarpTables`).
///
/// The same steps as Core and as the level-parallel `SplitSource`, so the same quotas: the experts spanning two or
/// more ranks ("multi" experts) are visited heaviest first (ties by id) in passes of exact integer water-fills, and a
/// step depends only on earlier steps that share one of its ranks. Each lane owns up to MPL multi experts (lane,
/// lane + 32, …) with their ranks, replicas and old quotas in registers. An expert's predecessors are the earlier
/// experts among its conflict mask (multi experts sharing a rank, precomputed on the host); the levels are the rounds
/// of "all predecessors done" found by ballots. A pass runs the levels with one `__syncwarp` each: a lane water-fills
/// its experts of that level alone, reading and writing the ranks' loads in shared memory. Two ranks (most multi
/// experts) take a closed form: with d the heavier load minus the lighter, the heavier gets ⌊(c − d) / 2⌋ when d < c,
/// the lighter the rest (`SplitReference.waterFillPair`, tested against Core's fill). Three or four ranks take the
/// general fill's steps on four fixed entries (`SplitReference.waterFillQuad`: a 5-exchange sorting network, the
/// prefix test unrolled, divisors 1…4 as constants). More ranks take the general fill (k ≤ KMAX ranks sorted by the
/// key load·32 + run index in registers, the level from prefix sums, each rank's share by two key compares); a warp
/// runs a path only when a lane of the level needs it. After a pass
/// the warp sums the squared loads and
/// takes the peak for Core's stop rules (lower bound, no drop in the squared sum, STALL passes without a lower peak).
/// A single warp is latency-bound, so the passes run in 32-bit integers (warp reductions by `redux`) whenever the
/// batch has fewer than 2^26 tokens, else in 64-bit (shuffles); both give the same quotas.
///
/// Phases: every global read at once (counts, replica sources and homes to shared memory, the lane's own expert data
/// to registers) and the loads zeroed; barrier; single-rank experts add their counts to their rank by native 32-bit
/// shared atomics on two halves (an add that wraps the low half carries 1 into the high one: exact for any batch);
/// barrier; warps 1… write the fixed quotas and exit, warp 0 runs the split and writes the run quotas.
///
/// Defines: NE experts, NR ranks, NS slots, MPL multi experts per lane (MMAX = 32·MPL, NW = MPL mask words),
/// KMAX ≥ ranks of one expert, UNROLLK (KMAX when ≤ 8, else 1), PASSES, STALL. Table layout: `SplitWarpTables`.
/// Quotas are written per replica, aligned with `replicaSlots` (int32 [NS]). Counts must be ≥ 0. 256 threads.
/// `profile` is null, or 6 host-zeroed u64 that each launch adds to: SM cycles to the end of the prologue, SM
/// cycles in all, global-timer ns, 1, passes, levels.
enum SplitWarpSource {
    static let source = #"""
typedef long long i64;
typedef unsigned long long u64;
#define NT 256
#define FULL 0xffffffffu
#define MMAX (32 * MPL)
#define NW MPL
#define OFF_HOME NS
#define OFF_INFO (NS + NE)
#define OFF_RUN (OFF_INFO + MMAX)
#define OFF_CONF (OFF_RUN + MMAX * KMAX)
// Run entries 2 and 3 of the three/four-rank fill (never taken when KMAX = 2).
#define J2 (KMAX >= 4 ? 2 : 0)
#define J3 (KMAX >= 4 ? 3 : 0)
#define MAXKEY(T) ((T)((~0ull) >> (65 - 8 * sizeof(T))))

__device__ __forceinline__ u64 clk() { u64 c; asm volatile("mov.u64 %0, %%clock64;" : "=l"(c)); return c; }
__device__ __forceinline__ u64 gtime() { u64 t; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); return t; }

// Squared load sum (wrapping like Core's Int64) and peak over all ranks, on every lane.
__device__ __forceinline__ void stats(const int* sL, int lane, u64& cost, i64& peak) {
    u64 v = 0;
    unsigned pk = 0;
    for (int r = lane; r < NR; r += 32) { const unsigned x = (unsigned)sL[r]; v += (u64)x * x; pk = max(pk, x); }
    // v < 32 · 2^52: three 19-bit pieces whose warp sums fit 32 bits.
    const unsigned a = __reduce_add_sync(FULL, (unsigned)(v & 0x7ffff));
    const unsigned b = __reduce_add_sync(FULL, (unsigned)((v >> 19) & 0x7ffff));
    const unsigned c = __reduce_add_sync(FULL, (unsigned)(v >> 38));
    cost = (u64)a + ((u64)b << 19) + ((u64)c << 38);
    peak = (i64)__reduce_max_sync(FULL, pk);
}
__device__ __forceinline__ void stats(const i64* sL, int lane, u64& cost, i64& peak) {
    cost = 0;
    peak = 0;
    for (int r = lane; r < NR; r += 32) { const i64 x = sL[r]; cost += (u64)x * (u64)x; peak = max(peak, x); }
    for (int o = 16; o > 0; o >>= 1) {
        cost += __shfl_xor_sync(FULL, cost, o);
        peak = max(peak, __shfl_xor_sync(FULL, peak, o));
    }
}

// The passes in integer type T over the loads sL (int when the batch has < 2^26 tokens, else i64).
template <typename T>
__device__ __forceinline__ int passes(
    T* sL, const int (&run)[MPL][KMAX], const int (&kk)[MPL], const int (&cnt)[MPL], const int (&lvl)[MPL],
    int nLevels, i64 bound, int lane, int (&q)[MPL][KMAX])
{
    i64 bestCost = 0x7fffffffffffffffLL, bestPeak = 0x7fffffffffffffffLL;
    int stalled = 0, passesRun = 0;
    for (int pass = 0; pass <= PASSES; ++pass) {
        ++passesRun;
        bool changed = false;
        for (int t = 0; t < nLevels; ++t) {
#pragma unroll
            for (int j = 0; j < MPL; ++j) {
                if (lvl[j] != t) continue;
                const int k = kk[j];
                const T c = (T)cnt[j];
                if (KMAX == 2 || k == 2) {
                    // Two ranks in closed form (Core's fill exactly): with d = heavier - lighter load (ties: run
                    // order 0 is the lighter), the heavier rank joins when d < c and gets floor((c - d) / 2), the
                    // lighter the rest (it also takes the odd remainder token).
                    const int r0 = run[j][0] >> 16, r1 = run[j][1] >> 16;
                    const T L0 = sL[r0] - (T)q[j][0], L1 = sL[r1] - (T)q[j][1];
                    const bool oneLighter = L1 < L0;
                    const T d = oneLighter ? L0 - L1 : L1 - L0;
                    const int heavy = c > d ? (int)((c - d) >> 1) : 0, light = cnt[j] - heavy;
                    const int n0 = oneLighter ? heavy : light, n1 = oneLighter ? light : heavy;
                    changed |= (n0 != q[j][0]) | (n1 != q[j][1]);
                    q[j][0] = n0;
                    q[j][1] = n1;
                    sL[r0] = L0 + (T)n0;
                    sL[r1] = L1 + (T)n1;
                    continue;
                }
                if (KMAX >= 4 && k <= 4) {
                    // Three or four ranks: the general fill below with four fixed entries (a 5-exchange sorting
                    // network on the same keys, the prefix test unrolled, constant divisors), so the same quotas.
                    const int r0 = run[j][0] >> 16, r1 = run[j][1] >> 16, r2 = run[j][J2] >> 16;
                    const int r3 = run[j][J3] >> 16;
                    const int q3o = q[j][J3];
                    const T L0 = sL[r0] - (T)q[j][0], L1 = sL[r1] - (T)q[j][1], L2 = sL[r2] - (T)q[j][J2];
                    const bool four = k == 4;
                    const T L3 = four ? sL[r3] - (T)q3o : (T)0;
                    const T k0 = L0 << 5, k1 = (L1 << 5) | (T)1, k2 = (L2 << 5) | (T)2;
                    const T k3 = four ? (L3 << 5) | (T)3 : MAXKEY(T);
                    T s0 = min(k0, k1), s1 = max(k0, k1), s2 = min(k2, k3), s3 = max(k2, k3);
                    { const T a = min(s0, s2), b = max(s0, s2); s0 = a; s2 = b; }
                    { const T a = min(s1, s3), b = max(s1, s3); s1 = a; s3 = b; }
                    { const T a = min(s1, s2), b = max(s1, s2); s1 = a; s2 = b; }
                    const T m1 = s1 >> 5, m2 = s2 >> 5, m3 = s3 >> 5;
                    const T p1 = c + (s0 >> 5), p2 = p1 + m1, p3 = p2 + m2;
                    const bool in2 = m1 < p1, in3 = in2 && m2 * (T)2 < p2, in4 = four && in3 && m3 * (T)3 < p3;
                    const T tot = in4 ? p3 + m3 : in3 ? p3 : in2 ? p2 : p1;
                    const T kIn = in4 ? s3 : in3 ? s2 : in2 ? s1 : s0;
                    const T base = in4 ? tot >> 2 : in3 ? tot / (T)3 : in2 ? tot >> 1 : tot;
                    const int rem = (int)(tot - (in4 ? base << 2 : in3 ? base * (T)3 : in2 ? base << 1 : base));
                    const T kRem = rem == 0 ? (T)-1 : rem == 1 ? s0 : rem == 2 ? s1 : s2;
                    const int n0 = k0 <= kIn ? (int)(base - L0) + (k0 <= kRem ? 1 : 0) : 0;
                    const int n1 = k1 <= kIn ? (int)(base - L1) + (k1 <= kRem ? 1 : 0) : 0;
                    const int n2 = k2 <= kIn ? (int)(base - L2) + (k2 <= kRem ? 1 : 0) : 0;
                    const int n3 = four && k3 <= kIn ? (int)(base - L3) + (k3 <= kRem ? 1 : 0) : 0;
                    changed |= (n0 != q[j][0]) | (n1 != q[j][1]) | (n2 != q[j][J2]) | (n3 != q3o);
                    q[j][0] = n0;
                    q[j][1] = n1;
                    q[j][J2] = n2;
                    sL[r0] = L0 + (T)n0;
                    sL[r1] = L1 + (T)n1;
                    sL[r2] = L2 + (T)n2;
                    if (four) { q[j][J3] = n3; sL[r3] = L3 + (T)n3; }
                    continue;
                }
                T L[KMAX], key[KMAX], sk[KMAX];
#pragma unroll
                for (int i = 0; i < KMAX; ++i) {
                    L[i] = sL[run[j][i] >> 16] - (T)q[j][i];  // entries past k repeat the first rank, q = 0
                    // Unique sort key: load, then run order; absent ranks sort last.
                    key[i] = i < k ? (L[i] << 5) | (T)i : MAXKEY(T);
                    sk[i] = key[i];
                }
                // Odd-even transposition sort of the keys (KMAX stages of compare-exchanges, all in registers).
#pragma unroll UNROLLK
                for (int st = 0; st < KMAX; ++st)
#pragma unroll UNROLLK
                    for (int i = st & 1; i + 1 < KMAX; i += 2) {
                        const T a = sk[i], b = sk[i + 1];
                        sk[i] = a < b ? a : b;
                        sk[i + 1] = a < b ? b : a;
                    }
                // The lightest ranks up to the level: position p joins while load_p · p < c + (loads before p).
                int mIn = 1;
                T pre = c + (sk[0] >> 5), tot = pre, kIn = sk[0];
#pragma unroll
                for (int p = 1; p < KMAX; ++p) {
                    const T Lp = sk[p] >> 5;
                    const bool inc = p < k && p == mIn && Lp * (T)p < pre;
                    pre += p < k ? Lp : (T)0;
                    if (inc) { mIn = p + 1; tot = pre; kIn = sk[p]; }
                }
                const T base = mIn == 1 ? tot : mIn == 2 ? tot >> 1 : tot / (T)mIn;
                const int rem = (int)(tot - base * (T)mIn);
                // The remainder goes one token each to the rem lowest positions: keys up to the rem-th smallest.
                T kRem = (T)-1;
#pragma unroll
                for (int p = 0; p < KMAX; ++p) if (p + 1 == rem) kRem = sk[p];
#pragma unroll
                for (int i = 0; i < KMAX; ++i) {
                    if (i >= k) continue;
                    const int nq = key[i] <= kIn ? (int)(base - L[i]) + (key[i] <= kRem ? 1 : 0) : 0;
                    changed |= nq != q[j][i];
                    q[j][i] = nq;
                    sL[run[j][i] >> 16] = L[i] + (T)nq;
                }
            }
            __syncwarp();
        }
        if (!__any_sync(FULL, changed)) break;
        u64 cost;
        i64 peak;
        stats(sL, lane, cost, peak);
        __syncwarp();
        if (peak <= bound || (i64)cost >= bestCost) break;
        bestCost = (i64)cost;
        if (peak < bestPeak) { bestPeak = peak; stalled = 0; } else { ++stalled; }
        if (stalled >= STALL) break;
    }
    return passesRun;
}

extern "C" __global__ void __launch_bounds__(NT) balanced_split_warp(
    const int* __restrict__ counts, const int* __restrict__ tab, int numMulti, int* __restrict__ quotas,
    u64* __restrict__ profile)
{
    __shared__ int sCount[NE], sHome[NE], sSrc[NS], sMC[MMAX];
    // Fixed rank loads as two 32-bit halves (native shared adds; a wrapped low half carries into the high one);
    // the 32-bit passes run on sLo itself, the 64-bit ones on sLoad.
    __shared__ unsigned sLo[NR], sHi[NR];
    __shared__ i64 sLoad[NR];
    const int tid = threadIdx.x, lane = tid & 31;
    u64 clock0 = 0, time0 = 0;
    if (profile && tid == 0) { clock0 = clk(); time0 = gtime(); }

    // Every global read at once; the loads zeroed.
    for (int e = tid; e < NE; e += NT) { sCount[e] = counts[e]; sHome[e] = tab[OFF_HOME + e]; }
    for (int i = tid; i < NS; i += NT) sSrc[i] = tab[i];
    for (int r = tid; r < NR; r += NT) { sLo[r] = 0u; sHi[r] = 0u; }
    int info[MPL], run[MPL][KMAX];
    unsigned conf[MPL][NW];
    if (tid < 32) {
#pragma unroll
        for (int j = 0; j < MPL; ++j) {
            const int m = lane + 32 * j;
            info[j] = tab[OFF_INFO + m];
#pragma unroll
            for (int i = 0; i < KMAX; ++i) run[j][i] = tab[OFF_RUN + i * MMAX + m];
#pragma unroll
            for (int w = 0; w < NW; ++w) conf[j][w] = (unsigned)tab[OFF_CONF + w * MMAX + m];
        }
    }
    __syncthreads();
    // Single-rank experts onto their rank; warp 0 takes its experts' counts.
    for (int e = tid; e < NE; e += NT) {
        const int h = sHome[e], c = sCount[e];
        if (h >= 0 && c > 0) {
            const unsigned old = atomicAdd(&sLo[h], (unsigned)c);
            if (old + (unsigned)c < old) atomicAdd(&sHi[h], 1u);
        }
    }
    int cnt[MPL], kk[MPL];
    if (tid < 32) {
#pragma unroll
        for (int j = 0; j < MPL; ++j) {
            const int m = lane + 32 * j;
            cnt[j] = 0; kk[j] = 0;
            if (m < numMulti) { cnt[j] = sCount[info[j] & 0xffff]; kk[j] = info[j] >> 16; }
            sMC[m] = cnt[j];
        }
    }
    __syncthreads();
    if (tid >= 32) {
        // Fixed quotas: a single-rank expert's count on its first replica, 0 on other non-run replicas.
        for (int i = tid - 32; i < NS; i += NT - 32) {
            const int src = sSrc[i];
            if (src != -2) quotas[i] = src >= 0 ? sCount[src] : 0;
        }
        return;
    }

    // The total and the lower bound (the mean rounded up, every rank's fixed load).
    u64 total = 0;
    i64 fixedMax = 0;
    for (int r = lane; r < NR; r += 32) {
        const i64 s = (i64)(((u64)sHi[r] << 32) | sLo[r]);
        total += (u64)s;
        fixedMax = max(fixedMax, s);
    }
#pragma unroll
    for (int j = 0; j < MPL; ++j) total += (u64)cnt[j];
    for (int o = 16; o > 0; o >>= 1) {
        total += __shfl_xor_sync(FULL, total, o);
        fixedMax = max(fixedMax, __shfl_xor_sync(FULL, fixedMax, o));
    }
    const i64 bound = max((i64)((total + NR - 1) / NR), fixedMax);
    const bool small = total < (1ull << 26);
    // Under 2^26 tokens every high half is 0 and sLo holds the loads; else widen them.
    if (!small) for (int r = lane; r < NR; r += 32) sLoad[r] = (i64)(((u64)sHi[r] << 32) | sLo[r]);

    // Predecessors: earlier (count descending, ties by id) non-empty experts among the conflict mask.
    unsigned pred[MPL][NW];
#pragma unroll
    for (int j = 0; j < MPL; ++j) {
        const int m = lane + 32 * j, c = cnt[j];
#pragma unroll
        for (int w = 0; w < NW; ++w) {
            unsigned x = c > 0 ? conf[j][w] : 0u, p = 0u;
            while (x) {
                const int b = __ffs(x) - 1;
                x &= x - 1;
                const int o = w * 32 + b, co = sMC[o];
                if (co > c || (co == c && o < m)) p |= 1u << b;
            }
            pred[j][w] = p;
        }
    }
    // Levels: round t takes every expert whose predecessors are all done (empty experts count as done).
    unsigned done[NW];
    int lvl[MPL];
#pragma unroll
    for (int w = 0; w < NW; ++w) done[w] = __ballot_sync(FULL, cnt[w] == 0);
#pragma unroll
    for (int j = 0; j < MPL; ++j) lvl[j] = -1;
    int nLevels = 0;
    for (;;) {
        bool all = true;
#pragma unroll
        for (int w = 0; w < NW; ++w) all = all && done[w] == FULL;
        if (all) break;
        unsigned fresh[NW];
#pragma unroll
        for (int j = 0; j < MPL; ++j) {
            bool ready = cnt[j] > 0 && lvl[j] < 0;
#pragma unroll
            for (int w = 0; w < NW; ++w) ready = ready && (pred[j][w] & ~done[w]) == 0u;
            if (ready) lvl[j] = nLevels;
            fresh[j] = __ballot_sync(FULL, ready);
        }
#pragma unroll
        for (int w = 0; w < NW; ++w) done[w] |= fresh[w];
        ++nLevels;
    }
    int q[MPL][KMAX];
#pragma unroll
    for (int j = 0; j < MPL; ++j)
#pragma unroll
        for (int i = 0; i < KMAX; ++i) q[j][i] = 0;
    __syncwarp();
    u64 clock1 = 0;
    if (profile && tid == 0) clock1 = clk();

    const int passesRun = small ? passes<int>((int*)sLo, run, kk, cnt, lvl, nLevels, bound, lane, q)
                                : passes<i64>(sLoad, run, kk, cnt, lvl, nLevels, bound, lane, q);

    // The multi experts' run quotas (0 for empty experts).
#pragma unroll
    for (int j = 0; j < MPL; ++j) {
        if (lane + 32 * j >= numMulti) continue;
#pragma unroll
        for (int i = 0; i < KMAX; ++i) if (i < kk[j]) quotas[run[j][i] & 0xffff] = q[j][i];
    }
    if (profile && tid == 0) {
        const u64 clock2 = clk(), time2 = gtime();
        atomicAdd(&profile[0], clock1 - clock0);
        atomicAdd(&profile[1], clock2 - clock0);
        atomicAdd(&profile[2], time2 - time0);
        atomicAdd(&profile[3], 1ull);
        atomicAdd(&profile[4], (u64)passesRun);
        atomicAdd(&profile[5], (u64)nLevels);
    }
}
"""#
}
