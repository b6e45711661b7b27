extension EPKernelSource {
    /// The whole module as NVRTC compiles it (Swift's multi-line literals end without a newline, so the parts are
    /// joined with one: a directive must start its own line).
    static let module = common + "\n" + dispatch + "\n"

    /// Dispatch and combine kernels, normal (throughput) and low-latency modes. Compiled with `-DFP8=0|1`.
    ///
    /// Normal: after `ep_notify`, a warp per token writes its row **once per destination rank** straight into that
    /// rank's receive buffer at `info[d] + pos[t][d]` (rows of each source contiguous, sources in rank order), with
    /// metadata `[source token, K local expert ids (−1 elsewhere), K weights]`; combine sends each received row back
    /// to its source's row in send order, and the source sums its rows over destinations.
    ///
    /// Low-latency: no count exchange; a warp per token takes a slot per (token, k) with an atomic on the expert's
    /// counter and writes into the owner's expert-major buffer `[local expert][source][cap]` with a (token, k)
    /// header; the last CTA publishes per-expert counts and the flags. Combine writes each expert output to its
    /// source's `[token][k]` slot, and the source takes the weighted sum over top-k. No host sync; graph-capturable.
    static let dispatch = #"""
#ifndef FP8
#define FP8 0
#endif
#define UNROLL 4

// Writes `row` (bf16 [H]) to every destination in `dst[0..n)` (byte addresses of the destination rows): bf16 as
// 16-byte vectors, or FP8 e4m3 codes [H] followed by float scales [H/128] (one per 128 channels, amax/448).
__device__ __forceinline__ void store_row(const unsigned short* row, int H, char* const* dst, int n, int lane) {
#if FP8
    for (int c = 0; c < H; c += 256) {
        int ch = c + lane * 8;
        float f[8];
        if (ch < H) unpack8(((const int4*)row)[ch / 8], f); else for (int j = 0; j < 8; j++) f[j] = 0.f;
        float amax = 0.f;
        for (int j = 0; j < 8; j++) amax = fmaxf(amax, fabsf(f[j]));
        for (int o = 8; o >= 1; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
        amax = fmaxf(amax, 1e-4f);
        float scale = 448.f / amax;
        uint2 q;
        q.x = (unsigned)f2e4m3x2(f[0] * scale, f[1] * scale) | ((unsigned)f2e4m3x2(f[2] * scale, f[3] * scale) << 16);
        q.y = (unsigned)f2e4m3x2(f[4] * scale, f[5] * scale) | ((unsigned)f2e4m3x2(f[6] * scale, f[7] * scale) << 16);
        if (ch < H) {
            for (int d = 0; d < n; d++) {
                *(uint2*)(dst[d] + ch) = q;
                if ((lane & 15) == 0) *(float*)(dst[d] + H + (ch / 128) * 4) = amax / 448.f;
            }
        }
    }
#else
    const int4* src = (const int4*)row;
    int n16 = H / 8;
    for (int i0 = 0; i0 < n16; i0 += 32 * UNROLL) {
        int4 v[UNROLL];
        #pragma unroll
        for (int u = 0; u < UNROLL; u++) { int i = i0 + u * 32 + lane; if (i < n16) v[u] = __ldg(src + i); }
        for (int d = 0; d < n; d++) {
            int4* o = (int4*)dst[d];
            #pragma unroll
            for (int u = 0; u < UNROLL; u++) { int i = i0 + u * 32 + lane; if (i < n16) o[i] = v[u]; }
        }
    }
#endif
}

#define MAX_DST 8

extern "C" __global__ void __launch_bounds__(256) ep_dispatch(
    const u64* peers, const i64* L, int me, int R, int T, int H, int K, int epr, const unsigned short* x,
    const int* topk, const float* weights, const int* pos, const int* info, int rowStride, int* epochs, int* tickets) {
    int lane = threadIdx.x & 31, warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int nwarps = (gridDim.x * blockDim.x) >> 5, metaInts = 1 + 2 * K;
    for (int t = warp; t < T; t += nwarps) {
        // Destinations in chunks of MAX_DST, so any R works.
        for (int d0 = 0; d0 < R; d0 += MAX_DST) {
            char* dst[MAX_DST];
            int n = 0;
            for (int d = d0; d < R && d < d0 + MAX_DST; d++) {
                int p = pos[t * R + d];
                if (p < 0) continue;
                i64 row = (i64)info[d] + p;
                dst[n++] = peer_base(peers, d) + L[L_RECV] + row * rowStride;
                int* meta = (int*)(peer_base(peers, d) + L[L_META]) + row * metaInts;
                for (int i = lane; i < metaInts; i += 32) {
                    int v;
                    if (i == 0) v = t;
                    else if (i <= K) { int e = topk[t * K + i - 1]; v = (e >= 0 && e / epr == d) ? e % epr : -1; }
                    else v = __float_as_int(weights[t * K + i - 1 - K]);
                    meta[i] = v;
                }
            }
            if (n > 0) store_row(x + (i64)t * H, H, dst, n, lane);
        }
    }
    if (last_block(tickets + K_DISPATCH) && threadIdx.x == 0)
        signal_all(peers, L, me, R, K_DISPATCH, bump_epoch(epochs, K_DISPATCH));
}

// Owner side: sends each received row r (bf16 y[r], H) back to its source, at the source's send-order row.
extern "C" __global__ void __launch_bounds__(256) ep_combine(
    const u64* peers, const i64* L, int me, int R, int H, const unsigned short* y, const int* info, int* epochs,
    int* tickets) {
    int lane = threadIdx.x & 31, warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int nwarps = (gridDim.x * blockDim.x) >> 5, total = info[5 * R];
    for (int r = warp; r < total; r += nwarps) {
        int s = 0;
        while (s + 1 < R && r >= info[R + s + 1]) s++;
        i64 srow = (i64)info[3 * R + s] + (r - info[R + s]);
        char* dst[1] = {peer_base(peers, s) + L[L_COMB] + srow * H * 2};
        const int4* src = (const int4*)(y + (i64)r * H);
        int n16 = H / 8;
        for (int i = lane; i < n16; i += 32) ((int4*)dst[0])[i] = __ldg(src + i);
    }
    if (last_block(tickets + K_COMBINE) && threadIdx.x == 0)
        signal_all(peers, L, me, R, K_COMBINE, bump_epoch(epochs, K_COMBINE));
}

// Source side: waits for every owner's combine, then out[t] = Σ_d returned row of (t, d), fp32 sum, bf16 out.
extern "C" __global__ void __launch_bounds__(256) ep_combine_recv(
    const u64* peers, const i64* L, int me, int R, int T, int H, const int* pos, const int* info,
    unsigned short* out, const int* epochs, i64 timeout, volatile int* diag) {
    if (!wait_all(peers, L, me, R, K_COMBINE, epochs[K_COMBINE], timeout, diag)) return;
    const char* comb = peer_base(peers, me) + L[L_COMB];
    int lane = threadIdx.x & 31, warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int nwarps = (gridDim.x * blockDim.x) >> 5;
    for (int t = warp; t < T; t += nwarps) {
        for (int i = lane; i < H / 8; i += 32) {
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, f[8];
            for (int d = 0; d < R; d++) {
                int p = pos[t * R + d];
                if (p < 0) continue;
                unpack8(__ldcg((const int4*)(comb + ((i64)info[4 * R + d] + p) * H * 2) + i), f);
                for (int j = 0; j < 8; j++) acc[j] += f[j];
            }
            ((int4*)(out + (i64)t * H))[i] = pack8(acc);
        }
    }
}

// Low-latency dispatch (send half; ep_wait(K_LL_DISPATCH) is the receive half). One warp per (token, k) pair, so
// a decode batch of T tokens spreads over T·K warps: lane 0 takes the slot and writes the header, the warp the row.
extern "C" __global__ void __launch_bounds__(256) ep_ll_dispatch(
    const u64* peers, const i64* L, int me, int R, int T, int H, int K, int epr, int cap, const unsigned short* x,
    const int* topk, int rowStride, int* counters, int* epochs, int* tickets) {
    int lane = threadIdx.x & 31, warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int nwarps = (gridDim.x * blockDim.x) >> 5;
    for (int p = warp; p < T * K; p += nwarps) {
        int e = topk[p];
        if (e < 0) continue;  // warp-uniform: every lane read the same id
        int t = p / K, k = p % K, d = e / epr, el = e % epr, slot = 0;
        if (lane == 0) {
            slot = atomicAdd(counters + e, 1);
            int* hdr = (int*)(peer_base(peers, d) + L[L_LLHDR]) + ((i64)(el * R + me) * cap + slot) * 2;
            hdr[0] = t;
            hdr[1] = k;
        }
        slot = __shfl_sync(0xffffffffu, slot, 0);
        char* dst[1] = {peer_base(peers, d) + L[L_LLRECV] + ((i64)(el * R + me) * cap + slot) * rowStride};
        store_row(x + (i64)t * H, H, dst, 1, lane);
    }
    if (last_block(tickets + K_LL_DISPATCH)) {
        for (int e = threadIdx.x; e < epr * R; e += blockDim.x) {
            int c = atomicExch(counters + e, 0);
            int d = e / epr, el = e % epr;
            st_relaxed_sys((int*)(peer_base(peers, d) + L[L_LLCOUNTS]) + el * R + me, c);
        }
        __syncthreads();
        if (threadIdx.x == 0) signal_all(peers, L, me, R, K_LL_DISPATCH, bump_epoch(epochs, K_LL_DISPATCH));
    }
}

// Low-latency combine (owner side): each valid entry (local expert, source, slot) of y ([epr][R][cap][H] bf16) goes
// to its source's [token][k] slot.
extern "C" __global__ void __launch_bounds__(256) ep_ll_combine(
    const u64* peers, const i64* L, int me, int R, int H, int K, int epr, int cap, const unsigned short* y,
    int* epochs, int* tickets) {
    int lane = threadIdx.x & 31, warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int nwarps = (gridDim.x * blockDim.x) >> 5;
    const int* counts = (const int*)(peer_base(peers, me) + L[L_LLCOUNTS]);
    const int* hdr = (const int*)(peer_base(peers, me) + L[L_LLHDR]);
    int items = epr * R * cap;
    for (int it = warp; it < items; it += nwarps) {
        int slot = it % cap, es = it / cap;  // es = el * R + s
        if (slot >= ld_relaxed_sys(counts + es)) continue;
        int s = es % R;
        int t = __ldcg(hdr + (i64)it * 2), k = __ldcg(hdr + (i64)it * 2 + 1);
        int4* dst = (int4*)(peer_base(peers, s) + L[L_LLCOMB] + ((i64)t * K + k) * H * 2);
        const int4* src = (const int4*)(y + (i64)it * H);
        for (int i = lane; i < H / 8; i += 32) dst[i] = __ldg(src + i);
    }
    if (last_block(tickets + K_LL_COMBINE) && threadIdx.x == 0)
        signal_all(peers, L, me, R, K_LL_COMBINE, bump_epoch(epochs, K_LL_COMBINE));
}

// Low-latency combine (source side): waits, then out[t] = Σ_k w[t,k] · returned[t][k] over k with an expert.
extern "C" __global__ void __launch_bounds__(256) ep_ll_combine_recv(
    const u64* peers, const i64* L, int me, int R, int T, int H, int K, const int* topk, const float* weights,
    unsigned short* out, const int* epochs, i64 timeout, volatile int* diag) {
    if (!wait_all(peers, L, me, R, K_LL_COMBINE, epochs[K_LL_COMBINE], timeout, diag)) return;
    const char* comb = peer_base(peers, me) + L[L_LLCOMB];
    int lane = threadIdx.x & 31, warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int nwarps = (gridDim.x * blockDim.x) >> 5;
    for (int t = warp; t < T; t += nwarps) {
        for (int i = lane; i < H / 8; i += 32) {
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, f[8];
            for (int k = 0; k < K; k++) {
                if (topk[t * K + k] < 0) continue;
                float w = weights[t * K + k];
                unpack8(__ldcg((const int4*)(comb + ((i64)t * K + k) * H * 2) + i), f);
                for (int j = 0; j < 8; j++) acc[j] += w * f[j];
            }
            ((int4*)(out + (i64)t * H))[i] = pack8(acc);
        }
    }
}

// Gathers send rows for the NCCL path: send[info[4R+d] + pos[t][d]] = x[t] for each destination.
extern "C" __global__ void __launch_bounds__(256) ep_pack(
    int R, int T, int H, const unsigned short* x, const int* pos, const int* prefix, unsigned short* send) {
    int lane = threadIdx.x & 31, warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int nwarps = (gridDim.x * blockDim.x) >> 5;
    for (int t = warp; t < T; t += nwarps)
        for (int d = 0; d < R; d++) {
            int p = pos[t * R + d];
            if (p < 0) continue;
            int4* o = (int4*)(send + ((i64)prefix[d] + p) * H);
            const int4* s = (const int4*)(x + (i64)t * H);
            for (int i = lane; i < H / 8; i += 32) o[i] = __ldg(s + i);
        }
}

// Sums returned rows per token for the NCCL path: out[t] = Σ_d rows[prefix[d] + pos[t][d]].
extern "C" __global__ void __launch_bounds__(256) ep_unpack_sum(
    int R, int T, int H, const unsigned short* rows, const int* pos, const int* prefix, unsigned short* out) {
    int lane = threadIdx.x & 31, warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int nwarps = (gridDim.x * blockDim.x) >> 5;
    for (int t = warp; t < T; t += nwarps)
        for (int i = lane; i < H / 8; i += 32) {
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, f[8];
            for (int d = 0; d < R; d++) {
                int p = pos[t * R + d];
                if (p < 0) continue;
                unpack8(__ldg((const int4*)(rows + ((i64)prefix[d] + p) * H) + i), f);
                for (int j = 0; j < 8; j++) acc[j] += f[j];
            }
            ((int4*)(out + (i64)t * H))[i] = pack8(acc);
        }
}
// EP layer glue: dst[i] = src[idx[i]] (bf16 rows of H).
extern "C" __global__ void __launch_bounds__(256) ep_gather_rows(const unsigned short* src, const int* idx, int n, int H,
                                                                 unsigned short* dst) {
    int lane = threadIdx.x & 31, warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int nwarps = (gridDim.x * blockDim.x) >> 5;
    for (int i = warp; i < n; i += nwarps) {
        const int4* s = (const int4*)(src + (i64)idx[i] * H);
        int4* o = (int4*)(dst + (i64)i * H);
        for (int j = lane; j < H / 8; j += 32) o[j] = __ldg(s + j);
    }
}

// EP layer glue: y[r] = Σ_{e in start[r]..start[r+1]} w[e] · ys[pos[e]] (fp32 sum, bf16 out); rows with no entry get 0.
extern "C" __global__ void __launch_bounds__(256) ep_rows_weighted_sum(
    const unsigned short* ys, const int* start, const int* pos, const float* w, int rows, int H, unsigned short* y) {
    int lane = threadIdx.x & 31, warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int nwarps = (gridDim.x * blockDim.x) >> 5;
    for (int r = warp; r < rows; r += nwarps)
        for (int j = lane; j < H / 8; j += 32) {
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, f[8];
            for (int e = start[r]; e < start[r + 1]; e++) {
                unpack8(__ldg((const int4*)(ys + (i64)pos[e] * H) + j), f);
                for (int q = 0; q < 8; q++) acc[q] += w[e] * f[q];
            }
            ((int4*)(y + (i64)r * H))[j] = pack8(acc);
        }
}

// EP layer glue: out += add over n bf16 values (n a multiple of 8).
extern "C" __global__ void ep_add_rows(unsigned short* out, const unsigned short* add, i64 n) {
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n / 8; i += (i64)gridDim.x * blockDim.x) {
        float a[8], b[8];
        unpack8(((int4*)out)[i], a);
        unpack8(((const int4*)add)[i], b);
        for (int q = 0; q < 8; q++) a[q] += b[q];
        ((int4*)out)[i] = pack8(a);
    }
}
"""#
}
