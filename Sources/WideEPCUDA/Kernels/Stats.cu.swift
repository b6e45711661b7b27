/// `stats.cu`: per-expert token counts of one batch, and a read-bandwidth probe for the roofline floor.
///
/// CPU twin of `count_experts`: `ExpertCount.count(experts:numExperts:)`. Define: NE experts.
enum StatsSource {
    static let source = CommonSource.prelude + #"""
extern "C" __global__ void count_experts(const int* __restrict__ experts, int n, int* __restrict__ counts) {
    __shared__ int h[NE];
    for (int i = threadIdx.x; i < NE; i += blockDim.x) h[i] = 0;
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        int e = experts[i];
        if (e >= 0 && e < NE) atomicAdd(&h[e], 1);
    }
    __syncthreads();
    for (int i = threadIdx.x; i < NE; i += blockDim.x) if (h[i]) atomicAdd(&counts[i], h[i]);
}
extern "C" __global__ void read_probe(const v16* __restrict__ p, long long n, u32* __restrict__ sink) {
    u32 acc = 0;
    const long long stride = (long long)gridDim.x * blockDim.x;
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    for (; i + 3 * stride < n; i += 4 * stride) {
        v16 a = p[i], b = p[i + stride], c = p[i + 2 * stride], d = p[i + 3 * stride];
        acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
    }
    for (; i < n; i += stride) { v16 a = p[i]; acc ^= a.x ^ a.y ^ a.z ^ a.w; }
    if (acc == 0x9e3779b9u) sink[0] = acc;
}
"""#
}
