import Foundation
import CUDADriver
import WideEPCore

/// Measured ceilings of the card, taken in the same run as the layer timings.
public struct DeviceCeilings: Codable, Sendable {
    /// Dense bf16 GEMM rate, 8192³ through cublasGemmEx, TFLOP/s.
    public let denseTFLOPS: Double
    /// Read bandwidth of a streaming 16-byte-load kernel over the expert weights, GB/s.
    public let readGBps: Double
}

/// One token count of `wide-ep bench moe`.
public struct MoEBenchRow: Codable, Sendable {
    /// Tokens in the batch.
    public let tokens: Int
    /// Whole-layer median time per path, ms.
    public let layerMs: [String: Double]
    /// The faster path's layer time, ms.
    public let bestMs: Double
    /// The faster path.
    public let bestPath: String
    /// Expert GEMMs alone (W13 and W2 of every slot) per path, TFLOP/s.
    public let expertGEMMTFLOPS: [String: Double]
    /// Roofline floor: max(FLOPs / dense rate, expert-weight bytes touched / read bandwidth), ms.
    public let floorMs: Double
    /// Which term sets the floor ("flops" or "bytes").
    public let floorBound: String
    /// Experts with at least one token.
    public let expertsTouched: Int
    /// Mean |out| of the layer output, a checksum to compare with the PyTorch reference.
    public let meanAbsOutput: Double
}

/// `wide-ep bench moe --device cuda`: the DeepSeek-V3 layer on one GPU with seeded weights (identical to
/// `benchmarks/torch_moe_reference.py`), timed per token count, with the card's ceilings and the roofline floor.
public enum MoEBenchmark {
    /// Runs the benchmark. `progress` receives one line per step (stderr in the CLI).
    public static func run(
        gpu: GPU, config c: MoEConfig, tokens: [Int], seed: UInt32, repeats: Int,
        dumpOutput: ((Int, [UInt16]) throws -> Void)? = nil, progress: (String) -> Void
    ) throws -> (ceilings: DeviceCeilings, rows: [MoEBenchRow]) {
        let kern = CUDAKernels(gpu: gpu, config: c)
        progress("bench: measuring the dense bf16 GEMM rate (8192³)")
        let dense = try denseRate(gpu: gpu, kernels: kern, repeats: repeats)
        progress(String(format: "bench: dense bf16 GEMM %.1f TFLOP/s", dense))
        progress("bench: generating seeded weights for \(c.numExperts) experts")
        let placement = try Placement.identity(numExperts: c.numExperts, numRanks: 1)
        let layer = try CUDAMoELayer(gpu: gpu, config: c, placement: placement, seed: seed)
        let sink = try DeviceArray<Int32>(gpu, count: 4)
        let probeBytes = min(layer.w13.byteCount, 8 << 30)
        let readMs = try gpu.time(warmup: 2, repeats: repeats) {
            try kern.readProbe(pointer: layer.w13.pointer, bytes: probeBytes, sink: sink)
        }
        let readGBps = Double(probeBytes) / (readMs * 1e-3) / 1e9
        progress(String(format: "bench: read bandwidth %.0f GB/s", readGBps))
        let maxT = tokens.max() ?? 0
        let h = c.hiddenSize, inter = c.moeIntermediateSize
        let x = try DeviceArray<UInt16>(gpu, count: maxT * h)
        try kern.fillUniform(bf16: x.pointer, count: maxT * h, blockLength: maxT * h, firstBlock: 0, seed: seed,
                             scale: 2)
        let out = try DeviceArray<UInt16>(gpu, count: maxT * h)
        var rows: [MoEBenchRow] = []
        var variants: [(label: String, path: GroupedGEMMPath, streams: Int)] = [
            ("loop×1", .loop, 1), ("loop×4", .loop, 4), ("loop×\(SlotGEMM.maxStreams)", .loop, SlotGEMM.maxStreams),
        ]
        if layer.slotGEMM.groupedAvailable { variants += [("grouped", .grouped, 1), ("auto", .auto, 4)] }
        for t in tokens.sorted() {
            var layerMs: [String: Double] = [:], gemm: [String: Double] = [:]
            for v in variants {
                layer.gemmPath = v.path
                layer.gemmStreams = v.streams
                layerMs[v.label] = try gpu.time(warmup: 2, repeats: repeats) {
                    try layer.forward(x: x, tokens: t, out: out)
                }
                let w = layer.workspace!
                let slotRows = layer.lastSlotRows
                let ms = try gpu.time(warmup: 1, repeats: repeats) {
                    try layer.slotGEMM.run(x: w.xs.pointer, w: layer.w13.pointer, y: w.y13.pointer,
                                           slotRows: slotRows, n: 2 * inter, k: h, path: v.path)
                    try layer.slotGEMM.run(x: w.act.pointer, w: layer.w2.pointer, y: w.ys.pointer,
                                           slotRows: slotRows, n: h, k: inter, path: v.path)
                }
                gemm[v.label] = 6.0 * Double(t * c.topK) * Double(h * inter) / (ms * 1e-3) / 1e12
                if v.label == "loop×4" {
                    // Per GEMM and orientation: tokens on cuBLAS's N side (what the layer runs) or on its M side
                    // (feature-major output; W2 then reads W13's output with the slot's rows as leading dimension).
                    let f1 = 2.0 * Double(t * c.topK) * Double(2 * inter * h), f2 = f1 / 2
                    func rate(_ flops: Double, _ body: () throws -> Void) throws -> Double {
                        flops / (try gpu.time(warmup: 1, repeats: repeats, body) * 1e-3) / 1e12
                    }
                    let g = layer.slotGEMM
                    gemm["w13 tokens-on-N"] = try rate(f1) {
                        try g.run(x: w.xs.pointer, w: layer.w13.pointer, y: w.y13.pointer, slotRows: slotRows,
                                  n: 2 * inter, k: h, path: .loop)
                    }
                    gemm["w2 tokens-on-N"] = try rate(f2) {
                        try g.run(x: w.act.pointer, w: layer.w2.pointer, y: w.ys.pointer, slotRows: slotRows, n: h,
                                  k: inter, path: .loop)
                    }
                    gemm["w13 tokens-on-M"] = try rate(f1) {
                        try g.runSwapped(x: w.xs.pointer, w: layer.w13.pointer, y: w.y13.pointer, slotRows: slotRows,
                                         n: 2 * inter, k: h, featureMajorInput: false, ldxStride: 0)
                    }
                    gemm["w2 tokens-on-M"] = try rate(f2) {
                        try g.runSwapped(x: w.y13.pointer, w: layer.w2.pointer, y: w.ys.pointer, slotRows: slotRows,
                                         n: h, k: inter, featureMajorInput: true, ldxStride: 2 * inter)
                    }
                    progress("bench: T=\(t) per-GEMM TFLOP/s " + ["w13 tokens-on-N", "w2 tokens-on-N",
                        "w13 tokens-on-M", "w2 tokens-on-M"].map { "\($0) " + String(format: "%.1f", gemm[$0]!) }
                        .joined(separator: ", "))
                }
                progress("bench: T=\(t) \(v.label) layer " + String(format: "%.3f ms, expert GEMMs %.1f TFLOP/s",
                                layerMs[v.label]!, gemm[v.label]!))
            }
            layer.gemmPath = .auto
            layer.gemmStreams = 4
            try layer.forward(x: x, tokens: t, out: out)
            let o = try out.download(gpu, count: t * h)
            try dumpOutput?(t, o)
            let meanAbs = o.reduce(0.0) { $0 + Double(abs(BF16.float($1))) } / Double(max(1, o.count))
            let touched = layer.lastCounts.filter { $0 > 0 }.count
            let si = c.numShared * c.sharedIntermediateSize
            let flops = 6.0 * Double(t) * Double(h) * (Double(c.topK * inter) + Double(si))
                + 2.0 * Double(t * h * c.numExperts)
            let bytes = Double(touched) * Double(3 * h * inter * 2) + Double(3 * h * si * 2)
            let fMs = flops / (dense * 1e12) * 1e3, bMs = bytes / (readGBps * 1e9) * 1e3
            let best = layerMs.min { $0.value < $1.value }!
            rows.append(MoEBenchRow(
                tokens: t, layerMs: layerMs, bestMs: best.value, bestPath: best.key, expertGEMMTFLOPS: gemm,
                floorMs: max(fMs, bMs), floorBound: fMs >= bMs ? "flops" : "bytes", expertsTouched: touched,
                meanAbsOutput: meanAbs))
        }
        return (DeviceCeilings(denseTFLOPS: dense, readGBps: readGBps), rows)
    }

    static func denseRate(gpu: GPU, kernels: CUDAKernels, repeats: Int) throws -> Double {
        let n = 8192
        let a = try DeviceArray<UInt16>(gpu, count: n * n), b = try DeviceArray<UInt16>(gpu, count: n * n)
        let y = try DeviceArray<UInt16>(gpu, count: n * n)
        try kernels.fillUniform(bf16: a.pointer, count: n * n, blockLength: n * n, firstBlock: 0, seed: 11, scale: 2)
        try kernels.fillUniform(bf16: b.pointer, count: n * n, blockLength: n * n, firstBlock: 0, seed: 12, scale: 2)
        let ms = try gpu.time(warmup: 3, repeats: repeats) {
            try gpu.gemmXWt(x: a.pointer, w: b.pointer, y: y.pointer, rows: n, outFeatures: n, inFeatures: n)
        }
        return 2.0 * Double(n) * Double(n) * Double(n) / (ms * 1e-3) / 1e12
    }
}
