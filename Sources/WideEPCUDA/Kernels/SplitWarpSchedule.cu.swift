/// The schedule parts of `balanced_split_warp` (`SplitWarpSource` includes this source after
/// `SplitWarpFillSource`): the levels of the two schedules and the prefix lower bound that certifies the colored one.
///
/// - `colorLevels`: the host's colors (`SplitWarpTables`; experts of one color share no rank) that hold a non-empty
///   expert, numbered densely: one ballot-free `redux` per mask word, nothing per batch beyond the counts.
/// - `coreLevels`: Core's visiting order (count descending, ties by id); an expert's predecessors are the earlier
///   non-empty experts among its conflict mask, the levels the rounds of "all predecessors done" found by ballots.
/// - `prefixBound`: a lower bound on the max rank load of *every* split from the current loads. Sort the ranks by load
///   (descending, ties by id); the k heaviest must carry their fixed loads plus every non-empty multi expert whose
///   ranks all lie among them, so some rank gets at least ⌈that / k⌉. The largest over k. At a converged split the
///   heaviest ranks form such a set and the bound meets the peak. Costs NR² / 32 compares per lane for the positions
///   (hence NR ≤ `SplitWarpTables.maxCertifiedRanks` for the certified schedule), one shared atomic per expert, a
///   warp scan and a division per lane. (A sort-free variant — lane r tests the ranks up to r against the least
///   certifying bound, no scan or division — ran 0.9 µs slower per layer on the H200: more instructions per lane.)
enum SplitWarpScheduleSource {
    static let source = #"""
// Adds v to a shared load (native 32-bit adds; the 64-bit path only runs for batches of >= 2^26 tokens).
__device__ __forceinline__ void addShared(int* a, int v) { atomicAdd(a, v); }
__device__ __forceinline__ void addShared(i64* a, i64 v) { atomicAdd((u64*)a, (u64)v); }

// Warp maximum of non-negative values (int: one redux).
__device__ __forceinline__ int warpMax(int v) { return (int)__reduce_max_sync(FULL, (unsigned)v); }
__device__ __forceinline__ i64 warpMax(i64 v) {
    for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(FULL, v, o));
    return v;
}

// A lower bound on the max rank load of every split, from the current loads: take the k heaviest ranks (by load,
// ties by id); their fixed loads plus the counts of the experts whose ranks all lie among them must fit on those k
// ranks, so some rank gets at least ceil(that / k). The largest over k, on every lane.
template <typename T>
__device__ __forceinline__ T prefixBound(
    const T* sL, const T* sF, T* sB, int* sPos, const int (&run)[MPL][KMAX], const int (&cnt)[MPL], int lane)
{
    for (int r = lane; r < NR; r += 32) {
        const T x = sL[r];
        // The rank's position: heavier ranks, and equal ones of lower id, come first (four independent counts).
        int pos[4] = {0, 0, 0, 0};
#pragma unroll
        for (int j = 0; j < NR; ++j) { const T y = sL[j]; pos[j & 3] += (y > x || (y == x && j < r)) ? 1 : 0; }
        const int p = (pos[0] + pos[1]) + (pos[2] + pos[3]);
        sPos[r] = p;
        sB[p] = sF[r];
    }
    __syncwarp();
#pragma unroll
    for (int j = 0; j < MPL; ++j) {
        if (cnt[j] == 0) continue;
        int last = 0;
#pragma unroll
        for (int i = 0; i < KMAX; ++i) last = max(last, sPos[run[j][i] >> 16]);  // entries past k repeat the first
        addShared(&sB[last], (T)cnt[j]);
    }
    __syncwarp();
    // Prefix sums over positions, CH consecutive positions per lane.
    const int CH = (NR + 31) / 32;
    T part = 0;
#pragma unroll
    for (int c = 0; c < CH; ++c) { const int p = lane * CH + c; if (p < NR) part += sB[p]; }
    T incl = part;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) { const T y = __shfl_up_sync(FULL, incl, o); if (lane >= o) incl += y; }
    T sum = incl - part, best = 0;
#pragma unroll
    for (int c = 0; c < CH; ++c) {
        const int p = lane * CH + c;
        if (p < NR) { sum += sB[p]; best = max(best, (sum + (T)p) / (T)(p + 1)); }
    }
    best = warpMax(best);
    __syncwarp();
    return best;
}

// Levels of the colored schedule: the host's colors (experts of one color share no rank) that hold a non-empty
// expert, numbered densely in color order; empty experts get none. Returns the number of levels.
__device__ __forceinline__ int colorLevels(const int (&color)[MPL], const int (&cnt)[MPL], int (&lvl)[MPL]) {
    unsigned used[NW];
#pragma unroll
    for (int w = 0; w < NW; ++w) {
        unsigned bits = 0u;
#pragma unroll
        for (int j = 0; j < MPL; ++j) if (cnt[j] > 0 && (color[j] >> 5) == w) bits |= 1u << (color[j] & 31);
        used[w] = __reduce_or_sync(FULL, bits);
    }
    int n = 0;
#pragma unroll
    for (int w = 0; w < NW; ++w) n += __popc(used[w]);
#pragma unroll
    for (int j = 0; j < MPL; ++j) {
        const int c = color[j];
        int below = 0;
#pragma unroll
        for (int w = 0; w < NW; ++w)
            below += w < (c >> 5) ? __popc(used[w]) : w == (c >> 5) ? __popc(used[w] & ((1u << (c & 31)) - 1u)) : 0;
        lvl[j] = cnt[j] > 0 ? below : -1;
    }
    return n;
}

// Levels of Core's order: an expert's predecessors are the earlier (count descending, ties by id) non-empty experts
// among its conflict mask; level t holds every expert whose predecessors are all in earlier levels.
__device__ __forceinline__ int coreLevels(
    const unsigned (&conf)[MPL][NW], const int (&cnt)[MPL], const int* sMC, int lane, int (&lvl)[MPL])
{
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
    unsigned done[NW];
#pragma unroll
    for (int w = 0; w < NW; ++w) done[w] = __ballot_sync(FULL, cnt[w] == 0);
#pragma unroll
    for (int j = 0; j < MPL; ++j) lvl[j] = -1;
    int n = 0;
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
            if (ready) lvl[j] = n;
            fresh[j] = __ballot_sync(FULL, ready);
        }
#pragma unroll
        for (int w = 0; w < NW; ++w) done[w] |= fresh[w];
        ++n;
    }
    return n;
}

"""#
}
