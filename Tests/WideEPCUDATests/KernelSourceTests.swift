import Testing
@testable import WideEPCUDA

@Suite("Kernel sources and the compile-cache key")
struct KernelSourceTests {
    @Test func keyIgnoresDefineOrderButNotValuesOrArchitecture() {
        let a = KernelKey(name: "routing.cu", source: "s", defines: ["NE": "256", "NK": "8"], architecture: "sm_90")
        let b = KernelKey(name: "routing.cu", source: "s", defines: ["NK": "8", "NE": "256"], architecture: "sm_90")
        let c = KernelKey(name: "routing.cu", source: "s", defines: ["NK": "6", "NE": "256"], architecture: "sm_90")
        let d = KernelKey(name: "routing.cu", source: "s", defines: ["NE": "256", "NK": "8"], architecture: "sm_100")
        let e = KernelKey(name: "routing.cu", source: "t", defines: ["NE": "256", "NK": "8"], architecture: "sm_90")
        #expect(a == b && a.hashValue == b.hashValue)
        #expect(a != c && a != d && a != e)
        #expect(Set([a, b, c, d, e]).count == 4)
    }

    @Test func optionsNameTheArchitectureDefinesAndInclude() {
        let k = KernelKey(name: "x.cu", source: "", defines: ["NK": "8"], architecture: "sm_90")
        let o = k.options(includeDirectory: "/usr/local/cuda/include")
        #expect(o.contains("--gpu-architecture=sm_90"))
        #expect(o.contains("-DNK=8"))
        #expect(o.contains("-I/usr/local/cuda/include"))
        #expect(!k.options(includeDirectory: nil).contains { $0.hasPrefix("-I") })
    }

    @Test(arguments: [
        ("routing.cu", RoutingSource.source, ["route_topk"]),
        ("stats.cu", StatsSource.source, ["count_experts", "read_probe"]),
        ("layout.cu", LayoutSource.source, ["map_slots", "permute_rows"]),
        ("swiglu.cu", SwiGLUSource.source, ["silu_mul"]),
        ("combine.cu", CombineSource.source, ["combine"]),
        ("random.cu", RandomSource.source, ["fill_uniform_bf16", "fill_uniform_f32"]),
    ])
    func everyLauncherKernelIsExportedUnmangled(name: String, source: String, kernels: [String]) {
        for k in kernels { #expect(source.contains("extern \"C\" __global__ void \(k)("), "\(name): \(k)") }
        // No CUDA header is needed, so NVRTC compiles the sources wherever the library is found.
        #expect(!source.contains("#include"))
    }
}
