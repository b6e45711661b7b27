/// `split.cu`: the balanced replica split of one batch (Core's `ReplicaSplit.quotas(…, policy: .balanced)`) on the
/// GPU, in one thread block, with the passes spread over every warp.
///
/// Core visits the experts that span two or more ranks ("multi" experts) heaviest first (ties by id) in passes of
/// block coordinate descent, each step an exact integer water-fill of one expert's tokens over its ranks. A step
/// reads and writes only its own ranks' loads, so it depends only on the last earlier step that touched one of
/// those ranks. The kernel gives every multi expert a level (1 + the highest level of its predecessor on any of its
/// ranks) and runs each level's experts at once, one group of G lanes per expert, with a barrier between levels:
/// the same steps on the same inputs as Core's serial order, so the same quotas, in `levels` rounds per pass
/// instead of `multi` steps. A thread serves the same run entry every pass, so the next round's static data and its
/// own old quota are fetched before each barrier and only the rank's load after it. After a pass every warp sums
/// the squared loads and takes the peak for Core's stop rules.
///
/// Phases: (A) copy the placement tables to shared memory; (B) fixed loads (single-rank or empty experts on their
/// first replica) and each multi expert's position in the visiting order; (C) each run entry's predecessor on its
/// rank; (D) levels by relaxation to the fixpoint; (E) bucket the experts by level; then the passes; then the quotas
/// out.
///
/// Defines: NE experts, NR ranks, NS slots, G lanes per expert (a power of two ≥ the most ranks of one expert, ≤ 32),
/// MMAX ≥ multi experts, AMAX ≥ run entries, PASSES (maxBalancedPasses), STALL (stallPasses). Kernel arguments are
/// `SplitTables`' arrays; quotas are written per replica, aligned with `replicaSlots` (int32 [NS]). Counts must be
/// ≥ 0. 256 threads. `profile` is null, or 6 host-zeroed u64 that each launch adds to: SM cycles to the end of the
/// prologue, SM cycles in all, global-timer ns, 1, passes, levels (for `wide-ep bench split`).
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
    const int* __restrict__ rankMulti, int numMulti, int numEntries, int* __restrict__ quotas,
    u64* __restrict__ profile)
{
    __shared__ i64 sLoad[NR];
    __shared__ int sQ[NS];
    __shared__ int sCount[NE];
    __shared__ int2 sInfo[NE];  // {first replica, home rank | multi << 30}
    __shared__ int sOwner[AMAX], sRank[AMAX], sRep[AMAX];
    __shared__ int mCount[MMAX], mPos[MMAX], mLvl[MMAX], mIdx[MMAX];
    __shared__ int sRunStart[MMAX + 1];
    __shared__ int lvlCount[MMAX + 1], lvlStart[MMAX + 1];
    __shared__ int2 slotInfo[MMAX];
    __shared__ int sPred[AMAX];
    __shared__ int2 sRec[AMAX];
    __shared__ int sRankMulti[AMAX];
    __shared__ int sRankStart[NR + 1];
    __shared__ u64 sTotal;
    __shared__ i64 sFixedMax;
    __shared__ int sLevels;
    const int tid = threadIdx.x;
    const int M = numMulti, A = numEntries;
    long long clock0 = 0;
    u64 time0 = 0;
    if (profile && tid == 0) { clock0 = clock64(); asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(time0) :: "memory"); }

    // (A) Zero the loads and quotas; copy the counts and every placement table to shared memory (all global reads
    // of the kernel are issued here, together).
    for (int r = tid; r < NR; r += NT) sLoad[r] = 0;
    for (int s = tid; s < NS; s += NT) sQ[s] = 0;
    for (int m = tid; m <= M; m += NT) { sRunStart[m] = runStart[m]; lvlCount[m] = 0; }
    for (int r = tid; r <= NR; r += NT) sRankStart[r] = rankStart[r];
    for (int i = tid; i < A; i += NT) {
        sRankMulti[i] = rankMulti[i]; sOwner[i] = runOwner[i]; sRank[i] = runRank[i]; sRep[i] = runReplica[i];
    }
    for (int e = tid; e < NE; e += NT) {
        const int c = counts[e], mi = multiIndex[e];
        sCount[e] = c;
        sInfo[e] = make_int2(replicaStart[e], expertHome[e] | (mi >= 0 ? 1 << 30 : 0));
        if (mi >= 0) mCount[mi] = c;
    }
    if (tid == 0) { sTotal = 0; sFixedMax = 0; sLevels = 0; }
    __syncthreads();

    // (B) Fixed loads and the total; visiting order of the non-empty multi experts (count descending, ties by id).
    u64 myTotal = 0;
    for (int e = tid; e < NE; e += NT) {
        const int c = sCount[e];
        const int2 info = sInfo[e];
        myTotal += (u64)c;
        if (!(info.y >> 30) || c == 0) {
            sQ[info.x] = c;
            if (c > 0) atomicAdd((u64*)&sLoad[info.y & 0x3fffffff], (u64)c);
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

    // (C) Per run entry: the previous multi expert in visiting order on the same rank.
    for (int i = tid; i < A; i += NT) {
        const int m = sOwner[i], r = sRank[i], pm = mPos[m];
        int pred = -1, best = -1;
        if (mCount[m] > 0) {
            for (int j = sRankStart[r]; j < sRankStart[r + 1]; ++j) {
                const int m2 = sRankMulti[j];
                if (mCount[m2] <= 0) continue;
                const int p2 = mPos[m2];
                if (p2 < pm && p2 > best) { best = p2; pred = m2; }
            }
        }
        sPred[i] = pred;
        sRec[i] = make_int2(r, 0);
    }
    // The largest fixed load (for the bound).
    for (int r = tid; r < NR; r += NT) atomicMax(&sFixedMax, sLoad[r]);
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
    __syncthreads();
    for (int m = tid; m < M; m += NT) {
        if (mCount[m] <= 0) continue;
        const int a = sRunStart[m], k = sRunStart[m + 1] - a;
        slotInfo[lvlStart[mLvl[m]] + mIdx[m]] = make_int2(a | (k << 16), mCount[m]);
    }
    __syncthreads();
    long long clock1 = 0;
    if (profile && tid == 0) clock1 = clock64();

    // Passes: each level's experts water-fill at once, one group of G lanes each (lane = rank of the run). A
    // thread serves the same run entry of a level in every pass, so only it writes that entry's quota: the static
    // part of the next round and its own old quota are fetched before the barrier, the rank's load after it.
    const i64 bound = max((i64)((sTotal + NR - 1) / NR), sFixedMax);
    const int nLevels = sLevels;
    const int lane = tid % G, g = tid / G;
    const int warpGroup0 = (tid / 32) * (32 / G);
    const unsigned shift = (unsigned)((tid & 31) - lane);
    const unsigned gMask = (unsigned)((1ull << G) - 1ull);
    struct Step { int cnt, a, k, rk, old; i64 c; };
    auto fetch = [&](int l, int b) {
        Step p = {lvlCount[l], 0, 0, 0, 0, 0};
        const int slot = b + g;
        if (slot < p.cnt) {
            const int2 si = slotInfo[lvlStart[l] + slot];
            p.a = si.x & 0xffff; p.k = si.x >> 16; p.c = si.y;
        }
        if (lane < p.k) { const int2 rec = sRec[p.a + lane]; p.rk = rec.x; p.old = rec.y; }
        return p;
    };
    Step cur = {0, 0, 0, 0, 0, 0};
    if (nLevels > 0) cur = fetch(0, 0);
    i64 bestCost = 0x7fffffffffffffffLL, bestPeak = 0x7fffffffffffffffLL;
    int stalled = 0, passesRun = 0;
    for (int pass = 0; pass <= PASSES; ++pass) {
        ++passesRun;
        int changed = 0, any = 0;
        for (int l = 0; l < nLevels; ++l) {
            const int cnt = cur.cnt;
            for (int b = 0; b < cnt; b += NG) {
                if (b > 0) cur = fetch(l, b);
                if (b + warpGroup0 >= cnt) break;  // the whole warp is idle (uniform)
                const bool valid = lane < cur.k;
                const i64 L = valid ? sLoad[cur.rk] - cur.old : 0;
                const i64 c = cur.c;
                // Position among the group's ranks by (load, run order) and the sum of the loads before it.
                int pos = 0;
                i64 prefix = 0;
#pragma unroll
                for (int j = 0; j < G; ++j) {
                    const i64 Lj = __shfl_sync(FULL, L, j, G);
                    if (j < cur.k && (Lj < L || (Lj == L && j < lane))) { ++pos; prefix += Lj; }
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
                    sRec[cur.a + lane].y = (int)nq;
                    sLoad[cur.rk] = L + nq;
                    changed |= ((int)nq != cur.old) ? 1 : 0;
                }
            }
            cur = fetch(l + 1 < nLevels ? l + 1 : 0, 0);
            if (l + 1 < nLevels) __syncthreads();
            else any = __syncthreads_or(changed);
        }
        if (!any) break;
        // Every warp sums the squared loads and takes the peak (wrapping like Core's Int64), then a barrier so
        // that no warp writes a load of the next pass before all have read this one.
        u64 cost = 0;
        i64 peak = 0;
        for (int r = tid & 31; r < NR; r += 32) { const i64 x = sLoad[r]; cost += (u64)x * (u64)x; peak = max(peak, x); }
        for (int o = 16; o > 0; o >>= 1) {
            cost += __shfl_xor_sync(FULL, cost, o);
            peak = max(peak, __shfl_xor_sync(FULL, peak, o));
        }
        __syncthreads();
        if (peak <= bound || (i64)cost >= bestCost) break;
        bestCost = (i64)cost;
        if (peak < bestPeak) { bestPeak = peak; stalled = 0; } else { ++stalled; }
        if (stalled >= STALL) break;
    }

    // Quotas out: the multi experts' run entries (every other replica keeps its fixed value or 0).
    for (int i = tid; i < A; i += NT) if (mCount[sOwner[i]] > 0) sQ[sRep[i]] = sRec[i].y;
    __syncthreads();
    for (int s = tid; s < NS; s += NT) quotas[s] = sQ[s];
    // Optional profile (host-zeroed, summed over launches): prologue and total SM cycles, global-timer ns, launches,
    // passes, levels.
    if (profile && tid == 0) {
        const long long clock2 = clock64();
        u64 time2;
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(time2) :: "memory");
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
