/// `layout.cu`: slot mapping from a ReplicaSplit and the permutation into expert-major contiguous rows.
///
/// `map_slots` gives each (token, k) pair p its occurrence index j among the pairs of the same expert (ordered by
/// source rank, then token, then k, via `rankOffset`), the replica whose cumulative quota range holds j (the
/// `SlotSplit` contract), that replica's global slot, and its expert-major row `slotRowStart[slot] + j − quotaStart`
/// (−1 when the slot is not local). One block per expert scans the pairs with warp ballots, so the order is stable.
/// CPU twin: `SlotMapReference.map`.
///
/// `permute_rows` copies token `p / NK`'s hidden row to row `position[p]` in 16-byte vectors.
/// CPU twin: `SlotMapReference.permute`. Defines: NK top-k.
enum LayoutSource {
    static let source = CommonSource.prelude + #"""
extern "C" __global__ void map_slots(const int* __restrict__ experts, int n, const int* __restrict__ rankOffset,
                                     const int* __restrict__ replicaStart, const int* __restrict__ replicaSlot,
                                     const int* __restrict__ quotaStart, const int* __restrict__ slotRowStart,
                                     int* __restrict__ slotOut, int* __restrict__ position) {
    __shared__ int warpCount[32];
    __shared__ int warpPrefix[32];
    __shared__ int base;
    const int e = blockIdx.x;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (threadIdx.x == 0) base = rankOffset[e];
    const int r0 = replicaStart[e], r1 = replicaStart[e + 1];
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
            int r = r0;
            while (r + 1 < r1 && j >= quotaStart[r + 1]) ++r;
            const int s = replicaSlot[r];
            slotOut[i] = s;
            const int rs = slotRowStart[s];
            position[i] = rs < 0 ? -1 : rs + (j - quotaStart[r]);
        }
        __syncthreads();
        if (threadIdx.x == 0) base += warpPrefix[nw - 1] + warpCount[nw - 1];
        __syncthreads();
    }
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
