/// `split_warp.cu`: the balanced replica split of one batch (Core's `ReplicaSplit.quotas(…, policy: .balanced)`) in
/// one warp, the production GPU split for placements with at most 128 multi-rank experts (`SplitWarpTables`).
///
/// The same steps as Core and as the level-parallel `SplitSource`, so the same quotas: the experts spanning two or
/// more ranks ("multi" experts) are visited heaviest first (ties by id) in passes of exact integer water-fills, and a
/// step depends only on earlier steps that share one of its ranks. Each lane owns up to MPL multi experts (lane,
/// lane + 32, …) with their ranks, replicas and old quotas in registers. An expert's predecessors are the earlier
/// experts among its conflict mask (multi experts sharing a rank, precomputed on the host); the levels are the rounds
/// of "all predecessors done" found by ballots. A pass runs the levels with one `__syncwarp` each: a lane water-fills
/// its experts of that level alone (k ≤ KMAX ranks, position counting, 32-bit division when the total fits), reading
/// and writing the ranks' loads in shared memory. After a pass the lanes sum the squared loads and take the peak by
/// shuffles for Core's stop rules (lower bound, no drop in the squared sum, 3 passes without a lower peak).
///
/// All global reads are issued in one phase by the whole block (counts and the packed tables into shared memory, the
/// lane's own expert data into registers), then one barrier; warps 1… write the fixed quotas and exit, warp 0 runs
/// the split and writes the multi experts' run quotas.
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
#define OFF_FSTART NS
#define OFF_FIXED (NS + NR + 1)
#define OFF_INFO (NS + NR + 1 + NE)
#define OFF_RUN (OFF_INFO + MMAX)
#define OFF_CONF (OFF_RUN + MMAX * KMAX)
#define NSHARED (NS + NR + 1 + NE)

extern "C" __global__ void __launch_bounds__(NT) balanced_split_warp(
    const int* __restrict__ counts, const int* __restrict__ tab, int numMulti, int* __restrict__ quotas,
    u64* __restrict__ profile)
{
    __shared__ int sCount[NE];
    __shared__ int sTab[NSHARED];
    __shared__ i64 sLoad[NR];
    __shared__ int sMC[MMAX];
    const int tid = threadIdx.x, lane = tid & 31;
    long long clock0 = 0;
    u64 time0 = 0;
    if (profile && tid == 0) { clock0 = clock64(); asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(time0)); }

    // Every global read, at once: counts and the replica/rank tables to shared memory; warp 0 also fetches its
    // experts' static data to registers.
    for (int i = tid; i < NE; i += NT) sCount[i] = counts[i];
    for (int i = tid; i < NSHARED; i += NT) sTab[i] = tab[i];
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
    if (tid >= 32) {
        // Fixed quotas: a single-rank expert's count on its first replica, 0 on other non-run replicas.
        for (int i = tid - 32; i < NS; i += NT - 32) {
            const int src = sTab[i];
            if (src != -2) quotas[i] = src >= 0 ? sCount[src] : 0;
        }
        return;
    }

    // Fixed rank loads (single-rank experts), the total and the lower bound.
    u64 total = 0;
    i64 fixedMax = 0;
    for (int r = lane; r < NR; r += 32) {
        i64 s = 0;
        const int b = sTab[OFF_FSTART + r + 1];
        for (int i = sTab[OFF_FSTART + r]; i < b; ++i) s += sCount[sTab[OFF_FIXED + i]];
        sLoad[r] = s;
        total += (u64)s;
        fixedMax = max(fixedMax, s);
    }
    int cnt[MPL], kk[MPL];
#pragma unroll
    for (int j = 0; j < MPL; ++j) {
        const int m = lane + 32 * j;
        cnt[j] = 0; kk[j] = 0;
        if (m < numMulti) { cnt[j] = sCount[info[j] & 0xffff]; kk[j] = info[j] >> 16; }
        sMC[m] = cnt[j];
        total += (u64)cnt[j];
    }
    for (int o = 16; o > 0; o >>= 1) {
        total += __shfl_xor_sync(FULL, total, o);
        fixedMax = max(fixedMax, __shfl_xor_sync(FULL, fixedMax, o));
    }
    const i64 bound = max((i64)((total + NR - 1) / NR), fixedMax);
    __syncwarp();

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
                if (co > c || (co == c && co > 0 && o < m)) p |= 1u << b;
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
    long long clock1 = 0;
    if (profile && tid == 0) clock1 = clock64();

    // Passes of Core's block coordinate descent, one warp barrier per level.
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
                const i64 c = cnt[j];
                i64 L[KMAX];
                int pos[KMAX];
#pragma unroll
                for (int i = 0; i < KMAX; ++i) L[i] = i < k ? sLoad[run[j][i] >> 16] - q[j][i] : 0;
                // Position by (load, run order) among the expert's ranks, and the lightest ranks up to the level.
                int mIn = 0;
                i64 tot = c;
#pragma unroll UNROLLK
                for (int i = 0; i < KMAX; ++i) {
                    if (i >= k) continue;
                    int p = 0;
                    i64 pre = 0;
#pragma unroll UNROLLK
                    for (int h = 0; h < KMAX; ++h)
                        if (h < k && (L[h] < L[i] || (L[h] == L[i] && h < i))) { ++p; pre += L[h]; }
                    const bool inc = p == 0 || L[i] * p < c + pre;
                    pos[i] = inc ? p : KMAX;
                    if (inc) { ++mIn; tot += L[i]; }
                }
                const i64 base = mIn == 1 ? tot
                    : tot <= 0x7fffffffLL ? (i64)((unsigned)tot / (unsigned)mIn) : tot / mIn;
                const i64 rem = tot - base * mIn;
#pragma unroll
                for (int i = 0; i < KMAX; ++i) {
                    if (i >= k) continue;
                    const int nq = pos[i] < mIn ? (int)(base - L[i] + (pos[i] < rem ? 1 : 0)) : 0;
                    changed |= nq != q[j][i];
                    q[j][i] = nq;
                    sLoad[run[j][i] >> 16] = L[i] + nq;
                }
            }
            __syncwarp();
        }
        if (!__any_sync(FULL, changed)) break;
        // Squared load sum (wrapping like Core's Int64) and peak, on every lane.
        u64 cost = 0;
        i64 peak = 0;
        for (int r = lane; r < NR; r += 32) { const i64 x = sLoad[r]; cost += (u64)x * (u64)x; peak = max(peak, x); }
        for (int o = 16; o > 0; o >>= 1) {
            cost += __shfl_xor_sync(FULL, cost, o);
            peak = max(peak, __shfl_xor_sync(FULL, peak, o));
        }
        __syncwarp();
        if (peak <= bound || (i64)cost >= bestCost) break;
        bestCost = (i64)cost;
        if (peak < bestPeak) { bestPeak = peak; stalled = 0; } else { ++stalled; }
        if (stalled >= STALL) break;
    }

    // The multi experts' run quotas (0 for empty experts).
#pragma unroll
    for (int j = 0; j < MPL; ++j) {
        if (lane + 32 * j >= numMulti) continue;
#pragma unroll
        for (int i = 0; i < KMAX; ++i) if (i < kk[j]) quotas[run[j][i] & 0xffff] = q[j][i];
    }
    if (profile && tid == 0) {
        const long long clock2 = clock64();
        u64 time2;
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(time2));
        atomicAdd(&profile[0], (u64)(clock1 - clock0));
        atomicAdd(&profile[1], (u64)(clock2 - clock0));
        atomicAdd(&profile[2], time2 - time0);
        atomicAdd(&profile[3], 1ull);
        atomicAdd(&profile[4], (u64)passesRun);
        atomicAdd(&profile[5], (u64)nLevels);
    }
}
"""#
}
