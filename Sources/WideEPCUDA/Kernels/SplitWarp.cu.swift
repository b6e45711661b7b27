/// `split_warp.cu`: the balanced replica split of one batch (Core's `ReplicaSplit.quotas(…, policy: .balanced)`) in
/// one warp, the production GPU split for placements with at most 128 multi-rank experts (`SplitWarpTables`).
///
/// Core's steps: the experts spanning two or more ranks ("multi" experts) re-water-fill their count over their ranks
/// against everyone else's load, in passes, each step an exact integer fill (`SplitWarpFillSource`), so every pass
/// lowers the sum of squared rank loads and never raises the peak. Steps that share no rank are independent and run
/// in the same level, one lane per expert: each lane owns up to MPL multi experts (lane, lane + 32, …) with their
/// ranks, replicas and old quotas in registers, and a level is one `__syncwarp`.
///
/// Two schedules (`shift` ≥ 0 and NR ≤ CERTMAXR: the first, else only the second):
/// - **Certified colored passes**: the levels are the host's coloring of the conflict graph (`SplitWarpTables`,
///   wide experts first; placement only, so nothing is derived per batch). After each pass but the first (whose fill
///   from the fixed loads is rarely close) the warp computes a lower bound on every split's max rank load
///   (`prefixBound`: the k heaviest ranks must carry their fixed loads and every expert that has all its ranks among
///   them) and stops once the peak is at most the best bound · (1 + 2^-shift): then the peak is within that factor of
///   the optimum, so of Core's. Passes that end without that certificate
///   (no change, no drop in the squared sum, STALL passes without a lower peak, PASSES) fall back to:
/// - **Core's passes**: the experts heaviest first (ties by id); an expert's predecessors are the earlier experts
///   among its conflict mask (host-precomputed), the levels the rounds of "all predecessors done" found by ballots;
///   Core's stop rules (no change, the mean/fixed bound, no drop in the squared sum, STALL passes without a lower
///   peak), from the fixed loads again: the quotas are Core's exactly.
///
/// After each pass the warp sums the squared loads and takes the peak. A single warp is latency-bound, so the passes
/// run in 32-bit integers (warp reductions by `redux`) whenever the batch has fewer than 2^26 tokens, else in 64-bit
/// (shuffles); both give the same quotas.
///
/// Phases: every global read at once (counts, replica sources and homes to shared memory, the lane's own expert data
/// to registers) and the loads zeroed; barrier; single-rank experts add their counts to their rank by native 32-bit
/// shared atomics on two halves (an add that wraps the low half carries 1 into the high one: exact for any batch);
/// barrier; warps 1… write the fixed quotas and exit, warp 0 runs the split and writes the run quotas.
///
/// Defines: NE experts, NR ranks, NS slots, MPL multi experts per lane (MMAX = 32·MPL, NW = MPL mask words),
/// KMAX ≥ ranks of one expert, UNROLLK (KMAX when ≤ 8, else 1), PASSES, STALL, CERTMAXR (most ranks of the certified
/// schedule, `SplitWarpTables.maxCertifiedRanks`). Table layout: `SplitWarpTables`.
/// Arguments: counts int32 [NE] (≥ 0), the packed tables, the multi expert count, `shift` (the certified schedule's
/// tolerance 2^-shift; < 0: Core's schedule only), quotas int32 [NS] written per replica (aligned with
/// `replicaSlots`), `profile`. 256 threads. `profile` is null, or 6 host-zeroed u64 that each launch adds to: SM
/// cycles to the end of the prologue, SM cycles in all, global-timer ns, 1, passes, levels of the last schedule
/// plus 2^32 per fallback to Core's.
enum SplitWarpSource {
    static let source = SplitWarpFillSource.source + SplitWarpScheduleSource.source + #"""
// The "memory" clobber keeps a read between the memory operations around it (a volatile asm without it may still
// move across them), so the prologue and total intervals measure what the code between the reads does.
__device__ __forceinline__ u64 clk() { u64 c; asm volatile("mov.u64 %0, %%clock64;" : "=l"(c) :: "memory"); return c; }
__device__ __forceinline__ u64 gtime() {
    u64 t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t) :: "memory");
    return t;
}

// Passes of water-fills over the levels in integer type T on the loads sL. CERT = false: Core's stop rules (no
// change, the lower bound, no drop in the squared sum, STALL passes without a lower peak). CERT = true: after each
// pass but the first also the prefix bound; `certified` when the peak is within 2^-shift of the best bound so far
// (or at the bound), and a pass without a change or Core's other rules end it uncertified. Returns the passes run.
template <typename T, bool CERT>
__device__ __forceinline__ int passes(
    T* sL, const int (&run)[MPL][KMAX], const int (&kk)[MPL], const int (&cnt)[MPL], const int (&lvl)[MPL],
    int nLevels, i64 bound, int lane, int (&q)[MPL][KMAX], const T* sF, T* sB, int* sPos, int shift, bool& certified)
{
    i64 bestCost = 0x7fffffffffffffffLL, bestPeak = 0x7fffffffffffffffLL, bestBound = bound;
    int stalled = 0, passesRun = 0;
    certified = false;
    for (int pass = 0; pass <= PASSES; ++pass) {
        ++passesRun;
        bool changed = false;
        for (int t = 0; t < nLevels; ++t) {
            // A level with a three/four-rank expert runs its two-rank experts through that fill too (one path).
            bool quadHere = false;
#pragma unroll
            for (int j = 0; j < MPL; ++j) quadHere |= lvl[j] == t && kk[j] > 2 && kk[j] <= 4;
            const bool quad = KMAX >= 4 && __any_sync(FULL, quadHere);
#pragma unroll
            for (int j = 0; j < MPL; ++j) if (lvl[j] == t) changed |= fill<T>(sL, run[j], kk[j], cnt[j], q[j], quad);
            __syncwarp();
        }
        const bool any = __any_sync(FULL, changed);
        if (!CERT && !any) break;
        u64 cost;
        i64 peak;
        stats(sL, lane, cost, peak);
        __syncwarp();
        if (peak <= bound) { certified = true; break; }
        if (CERT) {
            // The first pass's fill from the fixed loads is rarely within the tolerance: no bound there.
            if (pass > 0) {
                bestBound = max(bestBound, (i64)prefixBound<T>(sL, sF, sB, sPos, run, cnt, lane));
                if (peak - bestBound <= (bestBound >> shift)) { certified = true; break; }
            }
            if (!any) break;
        }
        if ((i64)cost >= bestCost) break;
        bestCost = (i64)cost;
        if (peak < bestPeak) { bestPeak = peak; stalled = 0; } else { ++stalled; }
        if (stalled >= STALL) break;
    }
    return passesRun;
}

// The split on the loads sL (holding the fixed loads on entry) in type T: the certified colored passes when
// shift >= 0 and NR <= CERTMAXR, and Core's passes from scratch when those end uncertified (or right away
// otherwise).
// Returns the passes run; `nLevels` gets the levels per pass of the last schedule, `fellBack` whether Core's ran
// after colored passes.
template <typename T>
__device__ __forceinline__ int solve(
    T* sL, T* sF, T* sB, int* sPos, const int* sMC, const int (&run)[MPL][KMAX], const int (&kk)[MPL],
    const int (&cnt)[MPL], const int (&color)[MPL], const unsigned (&conf)[MPL][NW], i64 bound, int shift, int lane,
    int (&q)[MPL][KMAX], int& nLevels, bool& fellBack)
{
    for (int r = lane; r < NR; r += 32) sF[r] = sL[r];
    __syncwarp();
    int lvl[MPL], passesRun = 0;
    bool certified = false;
    fellBack = false;
    if (CERTIFIABLE && shift >= 0) {
        nLevels = colorLevels(color, cnt, lvl);
        passesRun = passes<T, true>(sL, run, kk, cnt, lvl, nLevels, bound, lane, q, sF, sB, sPos, shift, certified);
        if (certified) return passesRun;
        // Uncertified: Core's steps from the fixed loads, so the quotas are Core's.
        fellBack = true;
        for (int r = lane; r < NR; r += 32) sL[r] = sF[r];
#pragma unroll
        for (int j = 0; j < MPL; ++j)
#pragma unroll
            for (int i = 0; i < KMAX; ++i) q[j][i] = 0;
        __syncwarp();
    }
    nLevels = coreLevels(conf, cnt, sMC, lane, lvl);
    return passesRun + passes<T, false>(sL, run, kk, cnt, lvl, nLevels, bound, lane, q, sF, sB, sPos, shift, certified);
}

extern "C" __global__ void __launch_bounds__(NT) balanced_split_warp(
    const int* __restrict__ counts, const int* __restrict__ tab, int numMulti, int shift, int* __restrict__ quotas,
    u64* __restrict__ profile)
{
    __shared__ int sCount[NE], sHome[NE], sSrc[NS], sMC[MMAX], sPos[NR];
    // Fixed rank loads as two 32-bit halves (native shared adds; a wrapped low half carries into the high one);
    // the 32-bit passes run on sLo itself, the 64-bit ones on sLoad. sFix keeps the fixed loads and sBin holds the
    // prefix bound's per-position sums (as int or i64).
    __shared__ unsigned sLo[NR], sHi[NR];
    __shared__ i64 sLoad[NR], sFix[NR], sBin[NR];
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
    int cnt[MPL], kk[MPL], color[MPL];
    if (tid < 32) {
#pragma unroll
        for (int j = 0; j < MPL; ++j) {
            const int m = lane + 32 * j;
            cnt[j] = 0; kk[j] = 0;
            if (m < numMulti) { cnt[j] = sCount[info[j] & 0xffff]; kk[j] = (info[j] >> 16) & 0xff; }
            color[j] = (info[j] >> 24) & 0x7f;
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

    // The total and the lower bound (the mean rounded up, every rank's fixed load), by 32-bit warp reductions on
    // pieces: a lane's share is below NE · 2^31 ≤ 2^47, so 24-bit pieces sum without overflow.
    u64 part = 0, pmax = 0;
    for (int r = lane; r < NR; r += 32) {
        const u64 s = ((u64)sHi[r] << 32) | sLo[r];
        part += s;
        pmax = max(pmax, s);
    }
#pragma unroll
    for (int j = 0; j < MPL; ++j) part += (u64)cnt[j];
    const unsigned t0 = __reduce_add_sync(FULL, (unsigned)(part & 0xffffff));
    const unsigned t1 = __reduce_add_sync(FULL, (unsigned)((part >> 24) & 0xffffff));
    const unsigned t2 = __reduce_add_sync(FULL, (unsigned)(part >> 48));
    const u64 total = (u64)t0 + ((u64)t1 << 24) + ((u64)t2 << 48);
    const unsigned mHi = __reduce_max_sync(FULL, (unsigned)(pmax >> 24));
    const unsigned mLo = __reduce_max_sync(FULL, (unsigned)(pmax >> 24) == mHi ? (unsigned)(pmax & 0xffffff) : 0u);
    const i64 fixedMax = (i64)(((u64)mHi << 24) | mLo);
    const i64 bound = max((i64)((total + NR - 1) / NR), fixedMax);
    const bool small = total < (1ull << 26);
    // Under 2^26 tokens every high half is 0 and sLo holds the loads; else widen them.
    if (!small) for (int r = lane; r < NR; r += 32) sLoad[r] = (i64)(((u64)sHi[r] << 32) | sLo[r]);
    int q[MPL][KMAX];
#pragma unroll
    for (int j = 0; j < MPL; ++j)
#pragma unroll
        for (int i = 0; i < KMAX; ++i) q[j][i] = 0;
    __syncwarp();
    u64 clock1 = 0;
    if (profile && tid == 0) clock1 = clk();

    int nLevels = 0;
    bool fellBack = false;
    const int passesRun = small
        ? solve<int>((int*)sLo, (int*)sFix, (int*)sBin, sPos, sMC, run, kk, cnt, color, conf, bound, shift, lane, q,
                     nLevels, fellBack)
        : solve<i64>(sLoad, sFix, sBin, sPos, sMC, run, kk, cnt, color, conf, bound, shift, lane, q, nLevels,
                     fellBack);

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
        atomicAdd(&profile[5], (u64)nLevels + (fellBack ? (1ull << 32) : 0ull));
    }
}
"""#
}
