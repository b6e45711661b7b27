/// `layout.cu`: slot mapping from a ReplicaSplit and the permutation into expert-major contiguous rows.
///
/// `map_slots_local` (the runtime layer's mapping, `SlotMap` contract) gives each (token, k) pair p its occurrence
/// index i among this rank's pairs of the same expert (token, k order). When i < `localCount[e]` the pair is served
/// on this rank by the replica whose `localStart` range holds i; otherwise its remaining index
/// `j = remoteOffset[e] + i − localCount[e]` goes to the replica whose `remoteStart` range holds j. It writes the
/// replica's global slot and its expert-major row: `slotRowStart[slot] + i − localStart` for a local pair,
/// `slotRowStart[slot] + localServed + j − remoteStart` otherwise (−1 when the slot is not local). The tables come
/// packed (`SlotMap.packed`: localCount [E], remoteOffset [E], localStart [S], localServed [S], remoteStart [S]).
/// CPU twin: `ReplicaSplit.mapTokens(experts:map:placement:slots:)`.
///
/// `map_slots` is the prefix-order special case (no local pass, `remoteOffset` = `rankOffset`, `remoteStart` =
/// `quotaStart`), used by the single-rank bf16 layer where both mappings coincide. CPU twin: `SlotMapReference.map`.
/// One block per expert scans the pairs with warp ballots, so the order is stable.
///
/// `permute_rows` copies token `p / NK`'s hidden row to row `position[p]` in 16-byte vectors.
/// CPU twin: `SlotMapReference.permute`. Defines: NK top-k.
enum LayoutSource {
    static let source = CommonSource.prelude + #"""
// One block maps every pair of expert blockIdx.x. localStart / localServed may be null (no local pass).
__device__ __forceinline__ void map_expert(const int* __restrict__ experts, int n, int localCount, int remoteOffset,
                                           int r0, int r1, const int* __restrict__ replicaSlot,
                                           const int* __restrict__ localStart, const int* __restrict__ localServed,
                                           const int* __restrict__ remoteStart, const int* __restrict__ slotRowStart,
                                           int* __restrict__ slotOut, int* __restrict__ position) {
    __shared__ int warpCount[32];
    __shared__ int warpPrefix[32];
    __shared__ int base;
    const int e = blockIdx.x;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (threadIdx.x == 0) base = 0;
    __syncthreads();
    for (int chunk = 0; chunk < n; chunk += blockDim.x) {
        const int i = chunk + threadIdx.x;
        const bool match = i < n && experts[i] == e;
        const unsigned m = __ballot_sync(0xffffffffu, match);
        const int before = __popc(m & ((1u << lane) - 1u));
        if (lane == 0) warpCount[warp] = __popc(m);
        __syncthreads();
        if (threadIdx.x == 0) {
            int acc = 0;
            for (int w = 0; w < nw; ++w) { warpPrefix[w] = acc; acc += warpCount[w]; }
        }
        __syncthreads();
        if (match) {
            const int j = base + warpPrefix[warp] + before;
            int r = r0, row;
            if (j < localCount) {
                while (r + 1 < r1 && j >= localStart[r + 1]) ++r;
                row = j - localStart[r];
            } else {
                const int jr = remoteOffset + (j - localCount);
                while (r + 1 < r1 && jr >= remoteStart[r + 1]) ++r;
                row = (localServed ? localServed[r] : 0) + (jr - remoteStart[r]);
            }
            const int s = replicaSlot[r];
            slotOut[i] = s;
            const int rs = slotRowStart[s];
            position[i] = rs < 0 ? -1 : rs + row;
        }
        __syncthreads();
        if (threadIdx.x == 0) base += warpPrefix[nw - 1] + warpCount[nw - 1];
        __syncthreads();
    }
}
extern "C" __global__ void map_slots(const int* __restrict__ experts, int n, const int* __restrict__ rankOffset,
                                     const int* __restrict__ replicaStart, const int* __restrict__ replicaSlot,
                                     const int* __restrict__ quotaStart, const int* __restrict__ slotRowStart,
                                     int* __restrict__ slotOut, int* __restrict__ position) {
    const int e = blockIdx.x;
    map_expert(experts, n, 0, rankOffset[e], replicaStart[e], replicaStart[e + 1], replicaSlot, nullptr, nullptr,
               quotaStart, slotRowStart, slotOut, position);
}
// tables: SlotMap.packed, localCount [numExperts], remoteOffset [numExperts], then localStart, localServed and
// remoteStart [numSlots] each.
extern "C" __global__ void map_slots_local(const int* __restrict__ experts, int n, const int* __restrict__ tables,
                                           int numExperts, int numSlots, const int* __restrict__ replicaStart,
                                           const int* __restrict__ replicaSlot, const int* __restrict__ slotRowStart,
                                           int* __restrict__ slotOut, int* __restrict__ position) {
    const int e = blockIdx.x;
    const int* localStart = tables + 2 * numExperts;
    map_expert(experts, n, tables[e], tables[numExperts + e], replicaStart[e], replicaStart[e + 1], replicaSlot,
               localStart, localStart + numSlots, localStart + 2 * numSlots, slotRowStart, slotOut, position);
}
extern "C" __global__ void permute_rows(const v16* __restrict__ x, const int* __restrict__ position, int vecPerRow,
                                        v16* __restrict__ xs) {
    const int p = blockIdx.x;
    const int dst = position[p];
    if (dst < 0) return;
    const v16* src = x + (long long)(p / NK) * vecPerRow;
    v16* d = xs + (long long)dst * vecPerRow;
    for (int v = threadIdx.x; v < vecPerRow; v += blockDim.x) d[v] = src[v];
}
"""#
}
