/// CUDA C shared by every WideEP kernel source: bf16 bit helpers, a 16-byte vector and the fill hash.
///
/// No CUDA header is included, so the kernels compile with NVRTC alone; bf16 values travel as raw `unsigned short`
/// bits with round-to-nearest-even conversion (the same rule as `BF16.swift` on the host and PyTorch).
enum CommonSource {
    static let prelude = #"""
typedef unsigned short bf16_t;
typedef unsigned int u32;
typedef unsigned long long u64;
struct alignas(16) v16 { u32 x, y, z, w; };
#define NEG_INF (__int_as_float(0xff800000))
__device__ __forceinline__ float bf2f(bf16_t v) { return __uint_as_float(((u32)v) << 16); }
__device__ __forceinline__ float bflo(u32 v) { return __uint_as_float(v << 16); }
__device__ __forceinline__ float bfhi(u32 v) { return __uint_as_float(v & 0xffff0000u); }
__device__ __forceinline__ bf16_t f2bf(float f) {
    u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16_t)(u >> 16);
}
__device__ __forceinline__ u32 pack2(float lo, float hi) { return (u32)f2bf(lo) | ((u32)f2bf(hi) << 16); }
__device__ __forceinline__ u32 fmix32(u32 h) {
    h ^= h >> 16; h *= 0x85ebca6bu; h ^= h >> 13; h *= 0xc2b2ae35u; h ^= h >> 16; return h;
}
"""#
}
