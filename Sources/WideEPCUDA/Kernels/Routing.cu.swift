/// `routing.cu`: router logits → top-K experts and combine weights, one warp per token.
///
/// Implements both scoring modes of `Router.route` (the CPU twin) with the same contract: softmax top-k, or
/// DeepSeek-V3 `noaux_tc` (sigmoid, selection-only bias, group-limited to TOPKG of NG groups scored by their top-2
/// sum, renormalised and times the routed scaling factor). Higher score wins, equal scores go to the lower index, and
/// each token's K outputs are ordered best first.
///
/// Defines: NE experts, NK top-k, NG groups, TOPKG kept groups, SIGMOID, HAS_BIAS, NORM (0/1), WARPS per block.
enum RoutingSource {
    static let source = CommonSource.prelude + #"""
__device__ __forceinline__ bool beats(float sa, int ia, float sb, int ib) {
    return sa > sb || (sa == sb && ia < ib);
}
extern "C" __global__ void route_topk(const float* __restrict__ logits, const float* __restrict__ bias, int T,
                                      float scaling, int* __restrict__ experts, float* __restrict__ weights) {
    __shared__ float s_score[WARPS][NE];
    __shared__ float s_choice[WARPS][NE];
    __shared__ float s_group[WARPS][NG];
    __shared__ int s_kept[WARPS][NG];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int t = blockIdx.x * WARPS + warp;
    if (t >= T) return;
    const float* row = logits + (long long)t * NE;
    float* sc = s_score[warp];
    float* ch = s_choice[warp];
#if SIGMOID
    for (int i = lane; i < NE; i += 32) {
        float s = 1.0f / (1.0f + expf(-row[i]));
        sc[i] = s;
#if HAS_BIAS
        ch[i] = s + bias[i];
#else
        ch[i] = s;
#endif
    }
#else
    float m = NEG_INF;
    for (int i = lane; i < NE; i += 32) m = fmaxf(m, row[i]);
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    float sum = 0.0f;
    for (int i = lane; i < NE; i += 32) { float x = expf(row[i] - m); sc[i] = x; sum += x; }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    for (int i = lane; i < NE; i += 32) { float s = sc[i] / sum; sc[i] = s; ch[i] = s; }
#endif
    __syncwarp();
#if NG > 1
    const int per = NE / NG;
    for (int g = lane; g < NG; g += 32) {
        float b1 = NEG_INF, b2 = NEG_INF;
        for (int j = 0; j < per; ++j) {
            float s = ch[g * per + j];
            if (s > b1) { b2 = b1; b1 = s; } else if (s > b2) { b2 = s; }
        }
        s_group[warp][g] = b1 + b2;
        s_kept[warp][g] = 0;
    }
    __syncwarp();
    if (lane == 0) {
        for (int r = 0; r < TOPKG; ++r) {
            int best = -1;
            for (int g = 0; g < NG; ++g) {
                if (s_kept[warp][g]) continue;
                if (best < 0 || beats(s_group[warp][g], g, s_group[warp][best], best)) best = g;
            }
            s_kept[warp][best] = 1;
        }
    }
    __syncwarp();
    for (int i = lane; i < NE; i += 32) if (!s_kept[warp][i / per]) ch[i] = NEG_INF;
    __syncwarp();
#endif
    float chosen[NK];
    int chosenIdx[NK];
    float total = 0.0f;
#pragma unroll
    for (int k = 0; k < NK; ++k) {
        float bs = NEG_INF;
        int bi = 0x7fffffff;
        for (int i = lane; i < NE; i += 32) {
            float s = ch[i];
            if (s != NEG_INF && (bi == 0x7fffffff || beats(s, i, bs, bi))) { bs = s; bi = i; }
        }
        for (int o = 16; o > 0; o >>= 1) {
            float os = __shfl_xor_sync(0xffffffffu, bs, o);
            int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (oi != 0x7fffffff && (bi == 0x7fffffff || beats(os, oi, bs, bi))) { bs = os; bi = oi; }
        }
        chosenIdx[k] = bi;
        chosen[k] = sc[bi];
        total += chosen[k];
        __syncwarp();
        if (lane == 0) ch[bi] = NEG_INF;
        __syncwarp();
    }
    if (lane == 0) {
        float scale = NORM ? scaling / (total + 1e-20f) : scaling;
#pragma unroll
        for (int k = 0; k < NK; ++k) {
            experts[(long long)t * NK + k] = chosenIdx[k];
            weights[(long long)t * NK + k] = chosen[k] * scale;
        }
    }
}
"""#
}
