/// `split_serial.cu`: the first GPU balanced split, kept as the baseline of `wide-ep bench split` (the production
/// kernel is `SplitSource`, which computes the same quotas with the passes spread over the whole block).
///
/// Same algorithm and order as the CPU: single-rank (or empty) experts put all their tokens on their first replica;
/// the experts spanning two or more ranks are visited heaviest first (ties by id) in passes of block coordinate
/// descent, each an exact integer water-fill of the expert's tokens over its ranks given everyone else's load. The
/// passes stop at the lower bound, at the first pass whose squared rank-load sum does not drop, or after 3 passes
/// without a lower peak. Warp 0 runs the passes; its lanes hold one rank of the current expert each (≤ 32 ranks per
/// expert, checked on the host by `SplitTables`), so a water-fill is a handful of shuffles, not a sort.
///
/// Defines: NE experts, NR ranks, NS slots, P slots per rank, PASSES (maxBalancedPasses), STALL (stallPasses).
/// Quotas are written per replica, aligned with `replicaSlots` (int32 [NS]).
enum SplitSerialSource {
    static let source = #"""
typedef long long i64;

extern "C" __global__ void __launch_bounds__(256) balanced_split_serial(
    const int* __restrict__ counts, const int* __restrict__ replicaStart, const int* __restrict__ replicaSlots,
    const int* __restrict__ multiIndex, const int* __restrict__ multiExpert, const int* __restrict__ runStart,
    const int* __restrict__ runReplica, const int* __restrict__ runRank, int numMulti, int* __restrict__ quotas)
{
    __shared__ i64 load[NR];
    __shared__ int q[NS];
    __shared__ int order[NE];
    // Shared copies of the multi experts' runs and counts: the passes touch only shared memory.
    __shared__ int sStart[NE + 1];
    __shared__ int sCount[NE];
    __shared__ int sRank[NS];
    __shared__ int sRep[NS];
    __shared__ i64 total;
    __shared__ int nActive;
    const int tid = threadIdx.x;
    for (int r = tid; r < NR; r += blockDim.x) load[r] = 0;
    if (tid == 0) { total = 0; nActive = 0; }
    __syncthreads();
    // Fixed loads: every replica 0, single-rank or empty experts all on their first replica.
    for (int e = tid; e < NE; e += blockDim.x) {
        const int a = replicaStart[e], b = replicaStart[e + 1], c = counts[e];
        for (int i = a; i < b; ++i) q[i] = 0;
        if (c > 0) atomicAdd((unsigned long long*)&total, (unsigned long long)c);
        if (multiIndex[e] < 0 || c == 0) {
            q[a] = c;
            if (c > 0) atomicAdd((unsigned long long*)&load[replicaSlots[a] / P], (unsigned long long)c);
        }
    }
    // Visiting order of the non-empty multi-rank experts: count descending, ties by id (the CPU's stable sort).
    for (int m = tid; m <= numMulti; m += blockDim.x) sStart[m] = runStart[m];
    for (int m = tid; m < numMulti; m += blockDim.x) sCount[m] = counts[multiExpert[m]];
    for (int i = tid; i < runStart[numMulti]; i += blockDim.x) { sRank[i] = runRank[i]; sRep[i] = runReplica[i]; }
    __syncthreads();
    for (int m = tid; m < numMulti; m += blockDim.x) {
        const int cm = sCount[m];
        if (cm == 0) continue;
        int pos = 0;
        for (int j = 0; j < numMulti; ++j) {
            const int cj = sCount[j];
            pos += (cj > cm || (cj == cm && j < m)) ? 1 : 0;
        }
        order[pos] = m;
        atomicAdd(&nActive, 1);
    }
    __syncthreads();
    if (tid < 32) {
        const int lane = tid;
        const int n = nActive;
        // Lower bound: the rounded-up mean and every rank's fixed load.
        i64 bound = (total + NR - 1) / NR;
        for (int r = lane; r < NR; r += 32) bound = max(bound, load[r]);
        for (int o = 16; o > 0; o >>= 1) bound = max(bound, __shfl_xor_sync(0xffffffffu, bound, o));
        i64 bestCost = 0x7fffffffffffffffLL, bestPeak = 0x7fffffffffffffffLL;
        int stalled = 0;
        for (int pass = 0; pass <= PASSES; ++pass) {
            unsigned changed = 0;
            for (int t = 0; t < n; ++t) {
                const int m = order[t];
                const int a = sStart[m], k = sStart[m + 1] - a;
                const i64 c = sCount[m];
                const bool on = lane < k;
                int rk = 0, rep = 0, old = 0;
                i64 L = 0;
                if (on) {
                    rk = sRank[a + lane]; rep = sRep[a + lane]; old = q[rep];
                    L = load[rk];
                    if (pass > 0) L -= old;
                }
                // Position among the k ranks by (load, run order) and the sum of the loads before it.
                int pos = 0;
                i64 prefix = 0;
                for (int j = 0; j < k; ++j) {
                    const i64 Lj = __shfl_sync(0xffffffffu, L, j);
                    if (Lj < L || (Lj == L && j < lane)) { ++pos; prefix += Lj; }
                }
                // The lightest ranks up to the level: membership is monotone in position (see the CPU twin).
                const bool inc = on && (pos == 0 || L * pos < c + prefix);
                const unsigned incMask = __ballot_sync(0xffffffffu, inc);
                const int mIn = __popc(incMask);
                const unsigned lastMask = __ballot_sync(0xffffffffu, inc && pos == mIn - 1);
                const i64 tot = __shfl_sync(0xffffffffu, c + prefix + L, __ffs(lastMask) - 1);
                // 32-bit division whenever the level fits (always, for real token counts).
                const i64 base = tot <= 0x7fffffffLL ? (i64)((unsigned)tot / (unsigned)mIn) : tot / mIn;
                const i64 rem = tot - base * mIn;
                if (on) {
                    const int nq = pos < mIn ? (int)(base - L + (pos < rem ? 1 : 0)) : 0;
                    q[rep] = nq;
                    load[rk] = L + nq;
                    changed |= (nq != old) ? 1u : 0u;
                }
                __syncwarp();
            }
            if (!__any_sync(0xffffffffu, changed)) break;
            i64 cost = 0, peak = 0;
            for (int r = lane; r < NR; r += 32) { const i64 x = load[r]; cost += x * x; peak = max(peak, x); }
            for (int o = 16; o > 0; o >>= 1) {
                cost += __shfl_xor_sync(0xffffffffu, cost, o);
                peak = max(peak, __shfl_xor_sync(0xffffffffu, peak, o));
            }
            if (peak <= bound || cost >= bestCost) break;
            bestCost = cost;
            if (peak < bestPeak) { bestPeak = peak; stalled = 0; } else { ++stalled; }
            if (stalled >= STALL) break;
        }
    }
    __syncthreads();
    for (int i = tid; i < NS; i += blockDim.x) quotas[i] = q[i];
}
"""#
}
