/// `runtime.cu`: the float32 glue kernels behind `CUDAMoEKernels` (the `MoEKernels` protocol works on float32
/// buffers): row gather, SwiGLU in place, weighted reduction of expert outputs, CSR combine, RMSNorm, add, logit
/// offset and row scaling. CPU twins: the same-named methods of `WideEPCPU.CPUKernels`.
enum RuntimeSource {
    static let source = CommonSource.prelude + #"""
// dst[r] = src[index[r]] for rows of `width` floats (index < 0: zeros).
extern "C" __global__ void gather_rows_f32(const float* __restrict__ src, const int* __restrict__ index, int rows,
                                           int width, float* __restrict__ dst) {
    const int r = blockIdx.x;
    if (r >= rows) return;
    const int s = index[r];
    for (int i = threadIdx.x; i < width; i += blockDim.x)
        dst[(long long)r * width + i] = s < 0 ? 0.0f : src[(long long)s * width + i];
}
// In place on rows of [gate | up] (2I wide): row[i] = silu(gate) * up * (scale ? scale[r] : 1) for i < I.
extern "C" __global__ void silu_mul_f32(float* __restrict__ y, long long rows, int inter,
                                        const float* __restrict__ scale) {
    const long long total = rows * inter;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x) {
        const long long r = idx / inter;
        const int i = (int)(idx - r * inter);
        float* row = y + r * 2 * inter;
        const float g = row[i];
        float v = g / (1.0f + expf(-g)) * row[inter + i];
        if (scale) v *= scale[r];
        row[i] = v;
    }
}
// out[r] = sum_j w(meta[r,j]) * y[pos[r,j]] over pos >= 0; meta holds (slot, weight bits) int pairs.
extern "C" __global__ void reduce_expert_f32(const float* __restrict__ y, const int* __restrict__ meta,
                                             const int* __restrict__ pos, int rows, int k, int width,
                                             float* __restrict__ out) {
    const int r = blockIdx.x;
    if (r >= rows) return;
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < k; ++j) {
            const int p = pos[r * k + j];
            if (p < 0) continue;
            acc += __int_as_float(meta[(r * k + j) * 2 + 1]) * y[(long long)p * width + i];
        }
        out[(long long)r * width + i] = acc;
    }
}
// out[t] = sum of returned rows rowIds[starts[t]..<starts[t+1]].
extern "C" __global__ void combine_csr_f32(const float* __restrict__ returned, const int* __restrict__ starts,
                                           const int* __restrict__ rowIds, int tokens, int width,
                                           float* __restrict__ out) {
    const int t = blockIdx.x;
    if (t >= tokens) return;
    const int a = starts[t], b = starts[t + 1];
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        float acc = 0.0f;
        for (int q = a; q < b; ++q) acc += returned[(long long)rowIds[q] * width + i];
        out[(long long)t * width + i] = acc;
    }
}
// out[t] = x[t] / sqrt(mean(x[t]^2) + eps); one block of 256 threads per row.
extern "C" __global__ void rms_norm_f32(const float* __restrict__ x, int rows, int width, float eps,
                                        float* __restrict__ out) {
    __shared__ float part[256];
    const int t = blockIdx.x;
    if (t >= rows) return;
    const float* row = x + (long long)t * width;
    float s = 0.0f;
    for (int i = threadIdx.x; i < width; i += blockDim.x) s += row[i] * row[i];
    part[threadIdx.x] = s;
    __syncthreads();
    for (int o = blockDim.x / 2; o > 0; o >>= 1) {
        if (threadIdx.x < o) part[threadIdx.x] += part[threadIdx.x + o];
        __syncthreads();
    }
    const float inv = 1.0f / sqrtf(part[0] / (float)width + eps);
    for (int i = threadIdx.x; i < width; i += blockDim.x) out[(long long)t * width + i] = row[i] * inv;
}
extern "C" __global__ void add_f32(float* __restrict__ x, const float* __restrict__ y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        x[i] += y[i];
}
// logits[t, e] += offset[e].
extern "C" __global__ void add_row_offset_f32(float* __restrict__ x, const float* __restrict__ offset, int rows,
                                              int width) {
    const long long n = (long long)rows * width;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        x[i] += offset[i % width];
}
// g[t] = sigmoid(g[t]) (the shared-expert gate after its dot product).
extern "C" __global__ void sigmoid_f32(float* __restrict__ g, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) g[i] = 1.0f / (1.0f + expf(-g[i]));
}
"""#
}
