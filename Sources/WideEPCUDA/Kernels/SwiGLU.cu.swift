/// `swiglu.cu`: the fused SwiGLU activation between the two expert GEMMs.
///
/// `h[r, i] = silu(y[r, i]) · y[r, I + i]` with `silu(g) = g / (1 + e^−g)`, y = [rows, 2I] bf16 (W1 rows first, then
/// W3), h = [rows, I] bf16, computed in float32 and rounded once. 8 elements per thread (I % 8 == 0).
/// CPU twin: `SwiGLUReference.siluMul`.
enum SwiGLUSource {
    static let source = CommonSource.prelude + #"""
__device__ __forceinline__ float silu_mul1(float g, float u) { return g / (1.0f + expf(-g)) * u; }
extern "C" __global__ void silu_mul(const v16* __restrict__ y, long long rows, int inter, v16* __restrict__ h) {
    const int vecs = inter >> 3;
    const long long total = rows * vecs;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x) {
        const long long r = idx / vecs;
        const int v = (int)(idx - r * vecs);
        const v16 g = y[r * 2 * vecs + v];
        const v16 u = y[r * 2 * vecs + vecs + v];
        v16 o;
        o.x = pack2(silu_mul1(bflo(g.x), bflo(u.x)), silu_mul1(bfhi(g.x), bfhi(u.x)));
        o.y = pack2(silu_mul1(bflo(g.y), bflo(u.y)), silu_mul1(bfhi(g.y), bfhi(u.y)));
        o.z = pack2(silu_mul1(bflo(g.z), bflo(u.z)), silu_mul1(bfhi(g.z), bfhi(u.z)));
        o.w = pack2(silu_mul1(bflo(g.w), bflo(u.w)), silu_mul1(bfhi(g.w), bfhi(u.w)));
        h[idx] = o;
    }
}
"""#
}
