/// `split_busy.cu`: a load kernel for `wide-ep bench split`'s "loaded card" timing: each block spins on FMAs in
/// registers until `ns` of global time have passed, so the card runs at the clocks it has when serving, while the
/// split (one block) runs on the free SMs. Touches no memory except one unreachable store (keeps the loop alive).
/// Also `split_floor`: one block of 256 threads that reads one count and writes one quota, the floor a one-block
/// split launch cannot go under (graph node gap plus one global round trip), timed next to the split.
enum SplitBusySource {
    static let source = #"""
extern "C" __global__ void __launch_bounds__(256) split_busy(unsigned long long ns, float* __restrict__ sink)
{
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    float x = (float)threadIdx.x;
    do {
#pragma unroll 16
        for (int i = 0; i < 256; ++i) x = fmaf(x, 1.0000001f, 0.5f);
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    } while (t - t0 < ns);
    if (x == -1.0f) sink[0] = x;
}

extern "C" __global__ void __launch_bounds__(256) split_floor(const int* __restrict__ counts, int* __restrict__ quotas)
{
    if (threadIdx.x == 0) quotas[0] = counts[0];
}
"""#
}
