/// `combine.cu`: the weighted sum of each token's K expert outputs, plus the shared expert.
///
/// `out[t] = shared[t] + Σ_k w[t,k] · ys[position[t,k]]` (positions < 0 skipped, `shared` may be null), float32
/// accumulation, bf16 output; one block per token, 16-byte vectors. CPU twin: `CombineReference.combine`.
/// Define: NK top-k.
enum CombineSource {
    static let source = CommonSource.prelude + #"""
__device__ __forceinline__ void acc8(float* a, const v16 v, float w) {
    a[0] += w * bflo(v.x); a[1] += w * bfhi(v.x); a[2] += w * bflo(v.y); a[3] += w * bfhi(v.y);
    a[4] += w * bflo(v.z); a[5] += w * bfhi(v.z); a[6] += w * bflo(v.w); a[7] += w * bfhi(v.w);
}
extern "C" __global__ void combine(const v16* __restrict__ ys, const int* __restrict__ position,
                                   const float* __restrict__ weights, const v16* __restrict__ shared, int vecPerRow,
                                   v16* __restrict__ out) {
    __shared__ int pos[NK];
    __shared__ float w[NK];
    const int t = blockIdx.x;
    if (threadIdx.x < NK) {
        pos[threadIdx.x] = position[(long long)t * NK + threadIdx.x];
        w[threadIdx.x] = weights[(long long)t * NK + threadIdx.x];
    }
    __syncthreads();
    for (int v = threadIdx.x; v < vecPerRow; v += blockDim.x) {
        float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
#pragma unroll
        for (int k = 0; k < NK; ++k) {
            if (pos[k] >= 0) acc8(a, ys[(long long)pos[k] * vecPerRow + v], w[k]);
        }
        if (shared) acc8(a, shared[(long long)t * vecPerRow + v], 1.0f);
        v16 o;
        o.x = pack2(a[0], a[1]); o.y = pack2(a[2], a[3]); o.z = pack2(a[4], a[5]); o.w = pack2(a[6], a[7]);
        out[(long long)t * vecPerRow + v] = o;
    }
}
"""#
}
