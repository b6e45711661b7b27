/// The schedule parts of `balanced_split_warp` (`SplitWarpSource` includes this source after
/// `SplitWarpFillSource`): the levels of the two schedules and the prefix lower bound that certifies the colored one.
///
/// - `colorLevels`: the host's colors (`SplitWarpTables`; experts of one color share no rank) that hold a non-empty
///   expert, numbered densely: one ballot-free `redux` per mask word, nothing per batch beyond the counts.
/// - `coreLevels`: Core's visiting order (count descending, ties by id); an expert's predecessors are the earlier
///   non-empty experts among its conflict mask, the levels the rounds of "all predecessors done" found by ballots.
/// - `certifies`: whether the current loads prove the peak within 2^-shift of the optimum of *every* split. Order
///   the ranks by load (descending, ties by id); the k first must carry their fixed loads plus every non-empty multi
///   expert whose ranks all lie among them, so some rank carries at least ⌈that / k⌉ (the prefix bound,
///   `SplitReference.prefixBound`, is the largest over k). At a converged split the heaviest ranks form such a set
///   and the bound meets the peak. Lane r takes the set of the ranks up to r (k, their fixed loads, the experts whose
///   last rank — least load, ties the highest id — is among them): no sort, no scan, no division per lane; the
///   peak passes when some set reaches Lc, the least bound with Lc + (Lc >> shift) ≥ peak. NR·(NR + 32·MPL) / 32
///   compares per lane (hence NR ≤ `SplitWarpTables.maxCertifiedRanks` for the certified schedule).
enum SplitWarpScheduleSource {
    static let source = #"""
// Whether the loads sL (fixed part sF) prove `peak` within 2^-shift of every split's optimum: some set of the first
// ranks in load order (descending, ties by id) must carry ceil(S / k) >= Lc, with S their fixed loads plus the counts
// of the experts whose ranks all lie among them and Lc the least bound with Lc + (Lc >> shift) >= peak. sML / sMR
// get each expert's last rank (least load, ties: the highest id); sMC holds the counts (0 for empty slots).
template <typename T>
__device__ __forceinline__ bool certifies(
    const T* sL, const T* sF, T* sML, int* sMR, const int* sMC, const int (&run)[MPL][KMAX], int lane, i64 peak,
    int shift)
{
#pragma unroll
    for (int j = 0; j < MPL; ++j) {
        int mr = run[j][0] >> 16;
        T ml = sL[mr];
#pragma unroll
        for (int i = 1; i < KMAX; ++i) {
            const int r = run[j][i] >> 16;  // entries past k repeat the first
            const T l = sL[r];
            if (l < ml || (l == ml && r > mr)) { ml = l; mr = r; }
        }
        sML[lane + 32 * j] = ml;
        sMR[lane + 32 * j] = mr;
    }
    // Lc: at most a few steps above the real bound peak - peak / (2^shift + 1).
    const T pk = (T)peak;
    T lc = pk - pk / (((T)1 << shift) + (T)1) - (T)1;
    if (lc < (T)0) lc = 0;
    while (lc + (lc >> shift) < pk) ++lc;
    __syncwarp();
    bool ok = false;
    for (int r = lane; r < NR; r += 32) {
        const T x = sL[r];
        int k[4] = {0, 0, 0, 0};
        T f[4] = {0, 0, 0, 0}, e[4] = {0, 0, 0, 0};
#pragma unroll 8
        for (int j = 0; j < NR; ++j) {
            // Unconditional loads and bitwise tests: no branch per rank.
            const T y = sL[j], fj = sF[j];
            const bool in = (y > x) | ((y == x) & (j <= r));
            k[j & 3] += in ? 1 : 0;
            f[j & 3] += in ? fj : (T)0;
        }
#pragma unroll 8
        for (int m = 0; m < MMAX; ++m) {
            const T y = sML[m];
            const int last = sMR[m], c = sMC[m];
            const bool in = (y > x) | ((y == x) & (last <= r));
            e[m & 3] += in ? (T)c : (T)0;
        }
        const i64 sum = (i64)((f[0] + f[1]) + (f[2] + f[3])) + (i64)((e[0] + e[1]) + (e[2] + e[3]));
        ok |= sum > ((i64)lc - 1) * (i64)((k[0] + k[1]) + (k[2] + k[3]));
    }
    const bool any = __any_sync(FULL, ok);
    __syncwarp();
    return any;
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
