/// The per-lane steps of `balanced_split_warp` (`SplitWarpSource` prepends this source): one multi expert's exact
/// integer water-fill against the other experts' rank loads in shared memory, and the per-pass squared load sum and
/// peak of the warp.
///
/// `fill` re-fills one expert: its k ranks' loads without its old quotas, then Core's fill (the lightest ranks rise to
/// a common level, the remainder one token each to the lightest, ties by run order), the new quotas added back.
/// Two ranks take a closed form: with d the heavier load minus the lighter (ties: run order 0 is the lighter), the
/// heavier gets ⌊(c − d) / 2⌋ when d < c, the lighter the rest (`SplitReference.waterFillPair`). Three or four ranks
/// take the general fill's steps on four fixed entries (`SplitReference.waterFillQuad`: a 5-exchange sorting network
/// on the keys load·32 + run index, the prefix test unrolled, divisors 1…4 as constants); in a level that has such
/// an expert, the two-rank experts take it too (absent entries keyed last), so the warp runs one path, not both.
/// More ranks take the general fill (KMAX keys sorted in registers by odd-even transposition, the level from prefix
/// sums, each rank's share by two key compares). A warp runs a path only when one of its lanes needs it.
///
/// Also opens the kernel's source: its types and derived defines (table offsets of `SplitWarpTables`, the certified
/// schedule's rank limit). Uses the defines of `SplitWarpSource` (NR, KMAX, UNROLLK, CERTMAXR) and runs in integer
/// type T (int below 2^26 tokens, else long long; the same quotas).
enum SplitWarpFillSource {
    static let source = #"""
typedef long long i64;
typedef unsigned long long u64;
#define FULL 0xffffffffu
#define NT 256
#define MMAX (32 * MPL)
#define NW MPL
#define OFF_HOME NS
#define OFF_INFO (NS + NE)
#define OFF_RUN (OFF_INFO + MMAX)
#define OFF_CONF (OFF_RUN + MMAX * KMAX)
// The certified colored passes need the prefix bound, whose rank positions cost NR^2 / 32 steps per lane.
#define CERTIFIABLE (NR <= CERTMAXR)
// Run entries 2 and 3 of the three/four-rank fill (never taken when KMAX = 2).
#define J2 (KMAX >= 4 ? 2 : 0)
#define J3 (KMAX >= 4 ? 3 : 0)
#define MAXKEY(T) ((T)((~0ull) >> (65 - 8 * sizeof(T))))

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

// Re-fills one expert of count cnt on its k ranks (run entries: replica | rank << 16; entries past k repeat the
// first) given the loads sL; q holds its old quotas and gets the new ones. `quad` (warp-uniform: some lane of the
// level has three or four ranks) sends two-rank experts through the three/four-rank fill too, so the warp runs one
// path instead of both. Returns whether a quota changed.
template <typename T>
__device__ __forceinline__ bool fill(T* sL, const int (&run)[KMAX], int k, int cnt, int (&q)[KMAX], bool quad) {
    const T c = (T)cnt;
    if (KMAX == 2 || (k == 2 && !quad)) {
        // Two ranks in closed form (Core's fill exactly): with d = heavier - lighter load (ties: run order 0 is the
        // lighter), the heavier rank joins when d < c and gets floor((c - d) / 2), the lighter the rest (it also
        // takes the odd remainder token).
        const int r0 = run[0] >> 16, r1 = run[1] >> 16;
        const T L0 = sL[r0] - (T)q[0], L1 = sL[r1] - (T)q[1];
        const bool oneLighter = L1 < L0;
        const T d = oneLighter ? L0 - L1 : L1 - L0;
        const int heavy = c > d ? (int)((c - d) >> 1) : 0, light = cnt - heavy;
        const int n0 = oneLighter ? heavy : light, n1 = oneLighter ? light : heavy;
        const bool changed = (n0 != q[0]) | (n1 != q[1]);
        q[0] = n0;
        q[1] = n1;
        sL[r0] = L0 + (T)n0;
        sL[r1] = L1 + (T)n1;
        return changed;
    }
    if (KMAX >= 4 && k <= 4) {
        // Two to four ranks: the general fill below with four fixed entries (a 5-exchange sorting network on the
        // same keys, absent entries keyed last, the prefix test unrolled, constant divisors), so the same quotas.
        // An absent entry's load (MAXKEY >> 5: 2^26 - 1 in int, whose batches have < 2^26 tokens) never joins.
        const int r0 = run[0] >> 16, r1 = run[1] >> 16, r2 = run[J2] >> 16, r3 = run[J3] >> 16;
        const int q2o = q[J2], q3o = q[J3];
        const bool three = k >= 3, four = k == 4;
        const T L0 = sL[r0] - (T)q[0], L1 = sL[r1] - (T)q[1];
        const T L2 = three ? sL[r2] - (T)q2o : (T)0, L3 = four ? sL[r3] - (T)q3o : (T)0;
        const T k0 = L0 << 5, k1 = (L1 << 5) | (T)1;
        const T k2 = three ? (L2 << 5) | (T)2 : MAXKEY(T), k3 = four ? (L3 << 5) | (T)3 : MAXKEY(T);
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
        const int n2 = three && k2 <= kIn ? (int)(base - L2) + (k2 <= kRem ? 1 : 0) : 0;
        const int n3 = four && k3 <= kIn ? (int)(base - L3) + (k3 <= kRem ? 1 : 0) : 0;
        const bool changed = (n0 != q[0]) | (n1 != q[1]) | (n2 != q2o) | (n3 != q3o);
        q[0] = n0;
        q[1] = n1;
        sL[r0] = L0 + (T)n0;
        sL[r1] = L1 + (T)n1;
        if (three) { q[J2] = n2; sL[r2] = L2 + (T)n2; }
        if (four) { q[J3] = n3; sL[r3] = L3 + (T)n3; }
        return changed;
    }
    T L[KMAX], key[KMAX], sk[KMAX];
#pragma unroll
    for (int i = 0; i < KMAX; ++i) {
        L[i] = sL[run[i] >> 16] - (T)q[i];  // entries past k repeat the first rank, q = 0
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
    bool changed = false;
#pragma unroll
    for (int i = 0; i < KMAX; ++i) {
        if (i >= k) continue;
        const int nq = key[i] <= kIn ? (int)(base - L[i]) + (key[i] <= kRem ? 1 : 0) : 0;
        changed |= nq != q[i];
        q[i] = nq;
        sL[run[i] >> 16] = L[i] + (T)nq;
    }
    return changed;
}
"""#
}
