/// `split.cu`: the balanced replica split of one batch (Core's `ReplicaSplit.quotas(…, policy: .balanced)`) on the
/// GPU, in one thread block, with the passes spread over every warp.
///
/// Core visits the experts that span two or more ranks ("multi" experts) heaviest first (ties by id) in passes of
/// block coordinate descent, each step an exact integer water-fill of one expert's tokens over its ranks. A step
/// reads and writes only its own ranks' loads, so it depends only on the last earlier step that touched one of
/// those ranks. The kernel gives every multi expert a level (1 + the highest level of its predecessor on any of its
/// ranks) and runs each level's experts at once, one group of G lanes per expert, with a barrier between levels:
/// the same steps on the same inputs as Core's serial order, so the same quotas, in `levels` rounds per pass
/// instead of `multi` steps. A pass's squared load sum and peak are summed by the last writer of each rank.
///
/// Phases: (A) copy the placement tables to shared memory; (B) fixed loads (single-rank or empty experts on their
/// first replica) and each multi expert's position in the visiting order; (C) each run entry's predecessor on its
/// rank and whether it is that rank's last writer; (D) levels by relaxation to the fixpoint; (E) bucket the experts
/// by level; then the passes; then the quotas out.
///
/// Defines: NE experts, NR ranks, NS slots, G lanes per expert (a power of two ≥ the most ranks of one expert, ≤ 32),
/// MMAX ≥ multi experts, AMAX ≥ run entries, PASSES (maxBalancedPasses), STALL (stallPasses). Kernel arguments are
/// `SplitTables`' arrays; quotas are written per replica, aligned with `replicaSlots` (int32 [NS]). Counts must be
/// ≥ 0. 256 threads.
enum SplitSource {
    static let source = #"""
typedef long long i64;
typedef unsigned long long u64;
#define NT 256
#define NG (NT / G)
#define FULL 0xffffffffu

extern "C" __global__ void __launch_bounds__(NT) balanced_split(
    const int* __restrict__ counts, const int* __restrict__ replicaStart, const int* __restrict__ expertHome,
    const int* __restrict__ multiIndex, const int* __restrict__ runStart, const int* __restrict__ runReplica,
    const int* __restrict__ runRank, const int* __restrict__ runOwner, const int* __restrict__ rankStart,
    const int* __restrict__ rankMulti, int numMulti, int numEntries, int* __restrict__ quotas)
{
    __shared__ i64 sLoad[NR];
    __shared__ int sQ[NS];
    __shared__ int mCount[MMAX], mPos[MMAX], mLvl[MMAX], mIdx[MMAX];
    __shared__ int sRunStart[MMAX + 1];
    __shared__ int lvlCount[MMAX + 1], lvlStart[MMAX + 1];
    __shared__ int2 slotInfo[MMAX];
    __shared__ int sPred[AMAX];
    __shared__ int2 sRec[AMAX];
    __shared__ int sRankMulti[AMAX];
    __shared__ int sRankStart[NR + 1];
    __shared__ u64 accCost[3];
    __shared__ i64 accPeak[3];
    __shared__ u64 sTotal, sBaseCost;
    __shared__ i64 sFixedMax, sBasePeak;
    __shared__ int sLevels;
    const int tid = threadIdx.x;
    const int M = numMulti, A = numEntries;

    // (A) Zero the loads and quotas; copy the small placement tables.
    for (int r = tid; r < NR; r += NT) sLoad[r] = 0;
    for (int s = tid; s < NS; s += NT) sQ[s] = 0;
    for (int m = tid; m <= M; m += NT) { sRunStart[m] = runStart[m]; lvlCount[m] = 0; }
    for (int r = tid; r <= NR; r += NT) sRankStart[r] = rankStart[r];
    for (int i = tid; i < A; i += NT) sRankMulti[i] = rankMulti[i];
    for (int e = tid; e < NE; e += NT) { const int mi = multiIndex[e]; if (mi >= 0) mCount[mi] = counts[e]; }
    if (tid == 0) { sTotal = 0; sBaseCost = 0; sFixedMax = 0; sBasePeak = 0; sLevels = 0; }
    __syncthreads();

    // (B) Fixed loads and the total; visiting order of the non-empty multi experts (count descending, ties by id).
    u64 myTotal = 0;
    for (int e = tid; e < NE; e += NT) {
        const int c = counts[e];
        myTotal += (u64)c;
        if (multiIndex[e] < 0 || c == 0) {
            sQ[replicaStart[e]] = c;
            if (c > 0) atomicAdd((u64*)&sLoad[expertHome[e]], (u64)c);
        }
    }
    for (int o = 16; o > 0; o >>= 1) myTotal += __shfl_xor_sync(FULL, myTotal, o);
    if ((tid & 31) == 0 && myTotal) atomicAdd(&sTotal, myTotal);
    for (int m = tid; m < M; m += NT) {
        const int cm = mCount[m];
        int pos = 0;
        if (cm > 0)
            for (int j = 0; j < M; ++j) { const int cj = mCount[j]; pos += (cj > cm || (cj == cm && j < m)) ? 1 : 0; }
        mPos[m] = pos;
        mLvl[m] = 0;
    }
    __syncthreads();

    // (C) Per run entry: the previous multi expert in visiting order on the same rank, and whether none follows.
    for (int i = tid; i < A; i += NT) {
        const int m = runOwner[i], r = runRank[i], pm = mPos[m];
        int pred = -1, best = -1, last = 1;
        if (mCount[m] > 0) {
            for (int j = sRankStart[r]; j < sRankStart[r + 1]; ++j) {
                const int m2 = sRankMulti[j];
                if (mCount[m2] <= 0) continue;
                const int p2 = mPos[m2];
                if (p2 < pm && p2 > best) { best = p2; pred = m2; }
                if (p2 > pm) last = 0;
            }
        }
        sPred[i] = pred;
        sRec[i] = make_int2(r | (last << 30), 0);
    }
    // Per rank: the largest fixed load (for the bound), and the ranks no multi expert touches, whose loads never
    // change: their share of every pass's squared sum and peak.
    for (int r = tid; r < NR; r += NT) {
        const i64 L = sLoad[r];
        atomicMax(&sFixedMax, L);
        bool touched = false;
        for (int j = sRankStart[r]; j < sRankStart[r + 1]; ++j) touched |= mCount[sRankMulti[j]] > 0;
        if (!touched) { atomicAdd(&sBaseCost, (u64)L * (u64)L); atomicMax(&sBasePeak, L); }
    }
    __syncthreads();

    // (D) Levels: the longest chain of predecessors, by relaxation (values only rise, and every read is a lower
    // bound, so it stops at the unique fixpoint; the last round sees no change).
    for (;;) {
        int ch = 0;
        for (int m = tid; m < M; m += NT) {
            if (mCount[m] <= 0) continue;
            int lv = 0;
            for (int i = sRunStart[m]; i < sRunStart[m + 1]; ++i) {
                const int p = sPred[i];
                if (p >= 0) lv = max(lv, mLvl[p] + 1);
            }
            if (lv != mLvl[m]) { mLvl[m] = lv; ch = 1; }
        }
        if (!__syncthreads_or(ch)) break;
    }

    // (E) Bucket the experts by level: count, scan, place.
    for (int m = tid; m < M; m += NT) {
        if (mCount[m] <= 0) continue;
        mIdx[m] = atomicAdd(&lvlCount[mLvl[m]], 1);
        atomicMax(&sLevels, mLvl[m] + 1);
    }
    __syncthreads();
    if (tid < 32) {
        int carry = 0;
        for (int b = 0; b < sLevels; b += 32) {
            const int l = b + tid;
            const int v = l < sLevels ? lvlCount[l] : 0;
            int x = v;
            for (int o = 1; o < 32; o <<= 1) { const int y = __shfl_up_sync(FULL, x, o); if (tid >= o) x += y; }
            if (l < sLevels) lvlStart[l] = carry + x - v;
            carry += __shfl_sync(FULL, x, 31);
        }
    }
    if (tid == 0) { accCost[0] = accCost[1] = sBaseCost; accPeak[0] = accPeak[1] = sBasePeak; }
    __syncthreads();
    for (int m = tid; m < M; m += NT) {
        if (mCount[m] <= 0) continue;
        const int a = sRunStart[m], k = sRunStart[m + 1] - a;
        slotInfo[lvlStart[mLvl[m]] + mIdx[m]] = make_int2(a | (k << 16), mCount[m]);
    }
    __syncthreads();

    // Passes: each level's experts water-fill at once, one group of G lanes each (lane = rank of the run).
    const i64 bound = max((i64)((sTotal + NR - 1) / NR), sFixedMax);
    const u64 baseCost = sBaseCost;
    const i64 basePeak = sBasePeak;
    const int nLevels = sLevels;
    const int lane = tid % G, g = tid / G;
    const int warpGroup0 = (tid / 32) * (32 / G);
    const unsigned shift = (unsigned)((tid & 31) - lane);
    const unsigned gMask = (unsigned)((1ull << G) - 1ull);
    i64 bestCost = 0x7fffffffffffffffLL, bestPeak = 0x7fffffffffffffffLL;
    int stalled = 0;
    for (int pass = 0; pass <= PASSES; ++pass) {
        const int set = pass % 3;
        int changed = 0, any = 0;
        for (int l = 0; l < nLevels; ++l) {
            const int cnt = lvlCount[l], st = lvlStart[l];
            for (int b = 0; b < cnt; b += NG) {
                if (b + warpGroup0 >= cnt) break;  // the whole warp is idle (uniform)
                const int slot = b + g;
                int a = 0, k = 0;
                i64 c = 0;
                if (slot < cnt) { const int2 si = slotInfo[st + slot]; a = si.x & 0xffff; k = si.x >> 16; c = si.y; }
                const bool valid = lane < k;
                int rk = 0, old = 0, last = 0;
                i64 L = 0;
                if (valid) {
                    const int2 rec = sRec[a + lane];
                    rk = rec.x & 0x3fffffff; last = rec.x >> 30; old = rec.y;
                    L = sLoad[rk] - old;
                }
                // Position among the group's ranks by (load, run order) and the sum of the loads before it.
                int pos = 0;
                i64 prefix = 0;
#pragma unroll
                for (int j = 0; j < G; ++j) {
                    const i64 Lj = __shfl_sync(FULL, L, j, G);
                    if (j < k && (Lj < L || (Lj == L && j < lane))) { ++pos; prefix += Lj; }
                }
                // The lightest ranks up to the level (membership is monotone in position).
                const bool inc = valid && (pos == 0 || L * pos < c + prefix);
                const int mIn = __popc((__ballot_sync(FULL, inc) >> shift) & gMask);
                const unsigned lastMask = (__ballot_sync(FULL, inc && pos == mIn - 1) >> shift) & gMask;
                const i64 tot = __shfl_sync(FULL, c + prefix + L, lastMask ? __ffs(lastMask) - 1 : 0, G);
                if (valid) {
                    const i64 base = tot <= 0x7fffffffLL ? (i64)((unsigned)tot / (unsigned)mIn) : tot / mIn;
                    const i64 rem = tot - base * mIn;
                    const i64 nq = pos < mIn ? base - L + (pos < rem ? 1 : 0) : 0;
                    const i64 nl = L + nq;
                    sRec[a + lane].y = (int)nq;
                    sLoad[rk] = nl;
                    changed |= ((int)nq != old) ? 1 : 0;
                    if (last) { atomicAdd(&accCost[set], (u64)nl * (u64)nl); atomicMax(&accPeak[set], nl); }
                }
            }
            if (l + 1 < nLevels) __syncthreads();
            else any = __syncthreads_or(changed);
        }
        // Everyone has read the set of pass - 1 before this pass's barriers; the set of pass + 2 is written only
        // after the next pass's last barrier.
        if (tid == 0) { accCost[(pass + 2) % 3] = baseCost; accPeak[(pass + 2) % 3] = basePeak; }
        if (!any) break;
        const i64 cost = (i64)accCost[set], peak = accPeak[set];
        if (peak <= bound || cost >= bestCost) break;
        bestCost = cost;
        if (peak < bestPeak) { bestPeak = peak; stalled = 0; } else { ++stalled; }
        if (stalled >= STALL) break;
    }

    // Quotas out: the multi experts' run entries (every other replica keeps its fixed value or 0).
    for (int i = tid; i < A; i += NT) if (mCount[runOwner[i]] > 0) sQ[runReplica[i]] = sRec[i].y;
    __syncthreads();
    for (int s = tid; s < NS; s += NT) quotas[s] = sQ[s];
}
"""#
}
