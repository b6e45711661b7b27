/// CUDA C shared by the NVLink dispatch/combine kernels: bf16 bits, sys-scope flags with epochs, timed waits,
/// the last-CTA signal, and the layout of the symmetric (IPC-exchanged) buffer.
///
/// Memory ordering (GPU-EP-KERNELS.md §0): payload stores are plain; a CTA barrier, then one thread does
/// `fence.acq_rel.sys` and relaxed sys-scope flag stores. Flags hold monotonically increasing epochs kept in device
/// memory, so graph replays stay correct and nothing needs resetting. A rank with nothing to send still signals.
/// Every spin has a `clock64()` timeout that records (kind, peer, expected, seen) in host-mapped memory and returns.
enum EPKernelSource {
    static let common = #"""
typedef unsigned long long u64;
typedef long long i64;

#define K_NOTIFY 0
#define K_DISPATCH 1
#define K_COMBINE 2
#define K_LL_DISPATCH 3
#define K_LL_COMBINE 4
#define K_BARRIER 5
#define K_A2A 6
#define K_GATHER 7
#define NUM_KINDS 8

// Offsets (bytes) into the symmetric buffer, table L[] in device memory.
#define L_FLAGS 0
#define L_MATRIX 1
#define L_LLCOUNTS 2
#define L_RECV 3
#define L_META 4
#define L_COMB 5
#define L_LLRECV 6
#define L_LLHDR 7
#define L_LLCOMB 8

// info[] (local, written by ep_notify): [0,R) my first row at each receiver, [R,2R) first row of each source here,
// [2R,3R) rows from each source, [3R,4R) first row of my block in each source's send order, [4R,5R) first row of
// each destination in my send order, [5R] rows received.

__device__ __forceinline__ float bf2f(unsigned short h) { return __uint_as_float(((unsigned)h) << 16); }
__device__ __forceinline__ unsigned short f2bf(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}
__device__ __forceinline__ void unpack8(int4 v, float* f) {
    unsigned w[4] = {(unsigned)v.x, (unsigned)v.y, (unsigned)v.z, (unsigned)v.w};
    #pragma unroll
    for (int i = 0; i < 4; i++) { f[2 * i] = bf2f(w[i] & 0xffffu); f[2 * i + 1] = bf2f(w[i] >> 16); }
}
__device__ __forceinline__ int4 pack8(const float* f) {
    int4 v;
    v.x = (int)(f2bf(f[0]) | ((unsigned)f2bf(f[1]) << 16));
    v.y = (int)(f2bf(f[2]) | ((unsigned)f2bf(f[3]) << 16));
    v.z = (int)(f2bf(f[4]) | ((unsigned)f2bf(f[5]) << 16));
    v.w = (int)(f2bf(f[6]) | ((unsigned)f2bf(f[7]) << 16));
    return v;
}
#ifndef EP_PORTABLE
#define EP_PORTABLE 0
#endif
// Two floats to two e4m3 codes, round to nearest even, saturating: low byte = a.
#if EP_PORTABLE
__device__ __forceinline__ unsigned e4m3_sw(float x) {
    unsigned sign = (__float_as_uint(x) >> 24) & 0x80u;
    float a = fabsf(x);
    if (a != a) return 0x7fu;
    if (a >= 448.f) return sign | 0x7eu;
    if (a < 0.015625f) return sign | (unsigned)rintf(a * 512.f);
    int e = (int)((__float_as_uint(a) >> 23) & 0xffu) - 127;
    float m = rintf((a * __uint_as_float((unsigned)(127 - e) << 23) - 1.f) * 8.f);
    if (m >= 8.f) { e += 1; m = 0.f; }
    unsigned code = ((unsigned)(e + 7) << 3) | (unsigned)m;
    return sign | (code > 0x7eu ? 0x7eu : code);
}
__device__ __forceinline__ unsigned short f2e4m3x2(float a, float b) {
    return (unsigned short)(e4m3_sw(a) | (e4m3_sw(b) << 8));
}
#else
__device__ __forceinline__ unsigned short f2e4m3x2(float a, float b) {
    unsigned short r;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(b), "f"(a));
    return r;
}
#endif
__device__ __forceinline__ float e4m3tof(unsigned c) {
    unsigned s = (c & 0x80u) << 24, e = (c >> 3) & 15u, m = c & 7u;
    if (e == 0) return __uint_as_float(s) + (s ? -1.f : 1.f) * (float)m * 0.001953125f;
    return __uint_as_float(s | ((e + 120u) << 23) | (m << 20));
}

#if EP_PORTABLE
// Portable forms (volatile accesses and __threadfence_system), used when WIDEEP_EP_PORTABLE=1.
__device__ __forceinline__ int ld_acquire_sys(const int* p) { int v = *(const volatile int*)p; __threadfence_system(); return v; }
__device__ __forceinline__ int ld_relaxed_sys(const int* p) { return *(const volatile int*)p; }
__device__ __forceinline__ void st_relaxed_sys(int* p, int v) { *(volatile int*)p = v; }
__device__ __forceinline__ void fence_sys() { __threadfence_system(); }
#else
__device__ __forceinline__ int ld_acquire_sys(const int* p) {
    int v;
    asm volatile("ld.acquire.sys.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ int ld_relaxed_sys(const int* p) {
    int v;
    asm volatile("ld.relaxed.sys.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void st_relaxed_sys(int* p, int v) {
    asm volatile("st.relaxed.sys.global.s32 [%0], %1;" :: "l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ void fence_sys() { asm volatile("fence.acq_rel.sys;" ::: "memory"); }

#endif

__device__ __forceinline__ char* peer_base(const u64* peers, int p) { return (char*)peers[p]; }
__device__ __forceinline__ int* flag_at(const u64* peers, const i64* L, int p, int kind, int src, int R) {
    return (int*)(peer_base(peers, p) + L[L_FLAGS]) + kind * R + src;
}

// One thread: publishes `epoch` of `kind` from `me` at every rank, after a sys-scope fence (split release).
__device__ void signal_all(const u64* peers, const i64* L, int me, int R, int kind, int epoch) {
    fence_sys();
    for (int p = 0; p < R; p++) st_relaxed_sys(flag_at(peers, L, p, kind, me, R), epoch);
}

// Whole block: waits until every source's `kind` flag here reached `epoch` (threads 0..R-1 poll one source each,
// acquire), then a barrier. On timeout records (kind, source, expected, seen) once in diag and returns false.
__device__ bool wait_all(const u64* peers, const i64* L, int me, int R, int kind, int epoch, i64 timeout,
                         volatile int* diag) {
    __shared__ int failed;
    if (threadIdx.x == 0) failed = 0;
    __syncthreads();
    for (int s = threadIdx.x; s < R; s += blockDim.x) {
        const int* f = flag_at(peers, L, me, kind, s, R);
        i64 start = clock64();
        while (true) {
            int v = ld_acquire_sys(f);
            if (v - epoch >= 0) break;
            if (clock64() - start > timeout) {
                if (diag[0] == 0) { diag[1] = kind; diag[2] = s; diag[3] = epoch; diag[4] = v; __threadfence_system(); diag[0] = 1; }
                failed = 1;
                break;
            }
        }
    }
    __syncthreads();
    return failed == 0;
}

// Whole block, after its stores: true in the CTA that arrives last (which then owns the signal). Each CTA orders its
// stores before its ticket with a sys fence; the last one fences again before it signals.
__device__ bool last_block(int* ticket) {
    __shared__ int isLast;
    __syncthreads();
    if (threadIdx.x == 0) {
        fence_sys();
        isLast = atomicAdd(ticket, 1) == (int)gridDim.x - 1;
        if (isLast) { fence_sys(); *ticket = 0; }
    }
    __syncthreads();
    return isLast != 0;
}

// One thread: the next epoch of `kind` (kept in device memory, so graph replays advance it).
__device__ __forceinline__ int bump_epoch(int* epochs, int kind) {
    int e = epochs[kind] + 1;
    epochs[kind] = e;
    return e;
}

// Grid-wide barrier of all ranks (one block): bumps K_BARRIER, signals, waits.
extern "C" __global__ void ep_barrier(const u64* peers, const i64* L, int me, int R, int* epochs, i64 timeout,
                                      volatile int* diag) {
    __shared__ int epoch;
    if (threadIdx.x == 0) { epoch = bump_epoch(epochs, K_BARRIER); signal_all(peers, L, me, R, K_BARRIER, epoch); }
    __syncthreads();
    wait_all(peers, L, me, R, K_BARRIER, epoch, timeout, diag);
}

// Copies n segments, table [n][3] of (destination, source, bytes), on the SMs: grid.y is the segment, grid.x × block
// threads stride over it in 16-byte vectors when destination, source and length allow, else bytes. Destinations
// may be peers' mapped buffers; the closing system fence publishes the stores before a later flag signal.
extern "C" __global__ void ep_copy_segments(const u64* table, int n) {
    int seg = blockIdx.y;
    if (seg >= n) return;
    char* dst = (char*)table[3 * seg];
    const char* src = (const char*)table[3 * seg + 1];
    u64 bytes = table[3 * seg + 2];
    u64 tid = (u64)blockIdx.x * blockDim.x + threadIdx.x, stride = (u64)gridDim.x * blockDim.x;
    if ((((u64)dst | (u64)src | bytes) & 15) == 0) {
        int4* d = (int4*)dst;
        const int4* s = (const int4*)src;
        u64 v = bytes / 16;
        for (u64 i = tid; i < v; i += stride) d[i] = s[i];
    } else {
        for (u64 i = tid; i < bytes; i += stride) dst[i] = src[i];
    }
    __threadfence_system();
}

// One block: bumps `kind` and signals it (after copy-engine writes issued earlier on the stream).
extern "C" __global__ void ep_signal(const u64* peers, const i64* L, int me, int R, int kind, int* epochs) {
    if (threadIdx.x == 0) signal_all(peers, L, me, R, kind, bump_epoch(epochs, kind));
}

// One block: waits for the current epoch of `kind` from every rank.
extern "C" __global__ void ep_wait(const u64* peers, const i64* L, int me, int R, int kind, const int* epochs,
                                   i64 timeout, volatile int* diag) {
    wait_all(peers, L, me, R, kind, epochs[kind], timeout, diag);
}

// Count exchange (normal mode, and the communicator's exchangeCounts): writes my counts[R] into row `me` of every
// rank's matrix (double-buffered by epoch parity, so a rank one epoch ahead never overwrites unread counts), signals,
// waits for all rows, and derives info[].
extern "C" __global__ void ep_notify(const u64* peers, const i64* L, int me, int R, const int* counts, int* epochs,
                                     int* info, i64 timeout, volatile int* diag) {
    __shared__ int epoch;
    if (threadIdx.x == 0) epoch = epochs[K_NOTIFY] + 1;
    __syncthreads();
    int half = (epoch & 1) * R * R;
    for (int i = threadIdx.x; i < R * R; i += blockDim.x) {
        int p = i / R, d = i % R;
        int* m = (int*)(peer_base(peers, p) + L[L_MATRIX]) + half;
        st_relaxed_sys(m + me * R + d, counts[d]);
    }
    __syncthreads();
    if (threadIdx.x == 0) { epochs[K_NOTIFY] = epoch; signal_all(peers, L, me, R, K_NOTIFY, epoch); }
    if (!wait_all(peers, L, me, R, K_NOTIFY, epoch, timeout, diag)) return;
    if (threadIdx.x == 0) {
        const int* M = (const int*)(peer_base(peers, me) + L[L_MATRIX]) + half;
        int acc = 0;
        for (int d = 0; d < R; d++) { int b = 0; for (int s = 0; s < me; s++) b += ld_relaxed_sys(M + s * R + d); info[d] = b; }
        for (int s = 0; s < R; s++) { int c = ld_relaxed_sys(M + s * R + me); info[R + s] = acc; info[2 * R + s] = c; acc += c; }
        for (int s = 0; s < R; s++) { int b = 0; for (int d = 0; d < me; d++) b += ld_relaxed_sys(M + s * R + d); info[3 * R + s] = b; }
        int pre = 0;
        for (int d = 0; d < R; d++) { info[4 * R + d] = pre; pre += ld_relaxed_sys(M + me * R + d); }
        info[5 * R] = acc;
    }
}

// Send layout (local): pos[t][d] = index of token t among the tokens sent to rank d (ascending t), or -1;
// counts[d] = tokens sent to d. One block per destination, a block-wide ballot scan over 1024-token chunks.
extern "C" __global__ void __launch_bounds__(1024) ep_layout(const int* topk, int T, int K, int epr, int R, int* pos,
                                                             int* counts) {
    __shared__ int warpSums[32];
    __shared__ int base;
    int d = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (threadIdx.x == 0) base = 0;
    __syncthreads();
    for (int t0 = 0; t0 < T; t0 += blockDim.x) {
        int t = t0 + threadIdx.x, f = 0;
        if (t < T) for (int k = 0; k < K; k++) { int e = topk[t * K + k]; if (e >= 0 && e / epr == d) f = 1; }
        unsigned m = __ballot_sync(0xffffffffu, f);
        if (lane == 0) warpSums[warp] = __popc(m);
        __syncthreads();
        int before = 0, total = 0;
        for (int w = 0; w < nw; w++) { int s = warpSums[w]; if (w < warp) before += s; total += s; }
        if (t < T) pos[t * R + d] = f ? base + before + __popc(m & ((1u << lane) - 1u)) : -1;
        __syncthreads();
        if (threadIdx.x == 0) base += total;
        __syncthreads();
    }
    if (threadIdx.x == 0) counts[d] = base;
}

// A stand-in expert for checks and benchmarks: y[r] = bf16(factor(r) · dequant(x[r])) over `rows` rows of stride
// `inStride` bytes (bf16, or with FP8 e4m3 codes followed by H/128 float scales); factor(r) = 1 + (r / group + salt) % 7.
extern "C" __global__ void ep_fake_expert(const char* x, int inStride, int rows, int H, int fp8, int group,
                                          int salt, unsigned short* y) {
    int lane = threadIdx.x & 31, warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int nwarps = (gridDim.x * blockDim.x) >> 5;
    for (int r = warp; r < rows; r += nwarps) {
        float factor = 1.f + (float)((r / group + salt) % 7);
        const char* row = x + (i64)r * inStride;
        int4* out = (int4*)(y + (i64)r * H);
        for (int i = lane; i < H / 8; i += 32) {
            float f[8];
            if (fp8) {
                uint2 c = *(const uint2*)(row + i * 8);
                float s = *(const float*)(row + H + (i * 8 / 128) * 4);
                unsigned w[2] = {c.x, c.y};
                for (int j = 0; j < 8; j++) f[j] = e4m3tof((w[j / 4] >> (8 * (j % 4))) & 0xffu) * s;
            } else {
                unpack8(((const int4*)row)[i], f);
            }
            for (int j = 0; j < 8; j++) f[j] *= factor;
            out[i] = pack8(f);
        }
    }
}
"""#
}
