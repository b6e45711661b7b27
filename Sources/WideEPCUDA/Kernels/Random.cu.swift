/// `random.cu`: deterministic uniform fills, so the GPU benchmark and `benchmarks/torch_moe_reference.py` build
/// bit-identical weights and inputs from a seed without shipping gigabytes.
///
/// Element `j` of block `b` (an expert, or 0 for a plain tensor) is
/// `((fmix32(j ^ fmix32(seed ^ b·0x9E3779B9)) >> 8) · 2⁻²⁴ − 0.5) · scale`, rounded to bf16 (or kept as float32).
/// CPU twin: `RandomFill.value(seed:block:index:scale:)`.
enum RandomSource {
    static let source = CommonSource.prelude + #"""
__device__ __forceinline__ float hash_uniform(u32 seed, long long b, long long j, float scale) {
    u32 key = fmix32(seed ^ ((u32)b * 0x9e3779b9u));
    u32 h = fmix32((u32)j ^ key);
    return ((float)(h >> 8) * 5.9604644775390625e-08f - 0.5f) * scale;
}
extern "C" __global__ void fill_uniform_bf16(bf16_t* out, long long n, long long blockLen, long long firstBlock,
                                             u32 seed, float scale) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        long long b = i / blockLen;
        out[i] = f2bf(hash_uniform(seed, firstBlock + b, i - b * blockLen, scale));
    }
}
extern "C" __global__ void fill_uniform_f32(float* out, long long n, long long blockLen, long long firstBlock,
                                            u32 seed, float scale) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        long long b = i / blockLen;
        out[i] = hash_uniform(seed, firstBlock + b, i - b * blockLen, scale);
    }
}
"""#
}
