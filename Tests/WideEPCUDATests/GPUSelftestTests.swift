import CUDADriver
import Testing
import WideEPCUDA

/// Runs only where a CUDA driver and GPU are present (the GPU machine, via scripts/gpu-check.sh).
@Suite("CUDA kernels on the GPU", .enabled(if: CUDA.isAvailable))
struct GPUSelftestTests {
    @Test func everyKernelMatchesItsCPUTwin() throws {
        var test = CUDASelftest(gpu: try GPU(ordinal: 0), seed: 0xC0DA)
        let rows = try test.run()
        #expect(!rows.isEmpty)
        for r in rows { #expect(r.passed, "\(r.name) \(r.shape): \(r.metric) \(r.value) > \(r.tolerance)") }
    }
}
