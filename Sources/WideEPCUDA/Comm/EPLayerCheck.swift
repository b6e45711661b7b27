import CUDADriver
import Foundation
import WideEPCore
import WideEPRuntime

/// The expert-parallel MoE layer on R GPUs, one process each, checked against the single-GPU `CUDAMoELayer` (which
/// the single-GPU selftest checks against the dense CPU reference) on the same seeded weights.
///
/// Per rank: router and top-k (the single-GPU layer's own kernels, whose routing the check reuses) → NVLink
/// dispatch of each token once per destination rank (bf16 or FP8) → per local expert, gather its received rows
/// (expert-major, from the received metadata) → W13 GEMM → SiLU·mul → W2 GEMM → per received row, the weighted sum
/// over its local experts → NVLink combine back to the source → plus the shared expert computed locally.
public final class EPLayerCheck {
    /// The transport, shaped for the layer (H, E, K).
    public let ep: NVLinkEP
    /// The full single-GPU layer: the reference, and the source of this rank's expert weights.
    public let layer: CUDAMoELayer
    let kernels: CUDAKernels
    let slotGEMM: SlotGEMM

    /// Builds the reference layer from `seed` (identical on every rank) next to an EP transport of the same shape.
    public init(ep: NVLinkEP, config: MoEConfig, seed: UInt32) throws {
        let s = ep.shape
        guard s.hidden == config.hiddenSize, s.experts == config.numExperts, s.topK == config.topK else {
            throw CommLayoutError.shape(
                "the transport (H \(s.hidden), E \(s.experts), K \(s.topK)) does not match \(config.name) "
                    + "(H \(config.hiddenSize), E \(config.numExperts), K \(config.topK))")
        }
        self.ep = ep
        layer = try CUDAMoELayer(
            gpu: ep.gpu, config: config, placement: try Placement.identity(numExperts: config.numExperts, numRanks: 1),
            seed: seed)
        kernels = CUDAKernels(gpu: ep.gpu, config: config)
        slotGEMM = try SlotGEMM(gpu: ep.gpu, maxSlots: s.expertsPerRank)
    }

    /// Runs `tokens` tokens per rank through the EP layer and the reference; returns the relative L2 error of the
    /// EP output against the single-GPU output on this rank's tokens.
    public func run(tokens: Int, fp8: Bool) throws -> Double {
        let gpu = ep.gpu, c = layer.config, h = c.hiddenSize, k = c.topK, inter = c.moeIntermediateSize
        let epr = ep.shape.expertsPerRank, me = ep.rank
        let data = EPTestData(shape: ep.shape, rank: me, tokens: tokens, seed: 0xE9)
        let x = try DeviceArray(gpu, data.hidden.map { BF16Bits.from(BF16Bits.toFloat($0) * 0.5) })
        let ref = try DeviceArray<UInt16>(gpu, count: tokens * h), out = try DeviceArray<UInt16>(gpu, count: tokens * h)
        try layer.forward(x: x, tokens: tokens, out: ref)
        guard let w = layer.workspace else { throw CommunicatorError.aborted("rank \(me): the reference layer has no workspace") }
        try ep.computeLayout(topk: w.experts.pointer, tokens: tokens)
        try ep.dispatch(x: x.pointer, topk: w.experts.pointer, weights: w.weights.pointer, tokens: tokens, fp8: fp8)
        let rows = try ep.receivedRows()
        let metaInts = 1 + 2 * k
        var meta = [Int32](repeating: 0, count: max(1, rows * metaInts))
        if rows > 0 {
            try meta.withUnsafeMutableBytes { raw in
                try gpu.context.api.check(
                    gpu.context.api.cuMemcpyDtoHAsync(raw.baseAddress, ep.localAddress(.meta), rows * metaInts * 4,
                                                      gpu.stream.handle), "cuMemcpyDtoHAsync(meta)")
            }
            try ep.checkHealth()
        }
        // Expert-major entries and, per received row, its entries (position, weight).
        var perExpert = [[(row: Int, weight: Float)]](repeating: [], count: epr)
        for r in 0..<rows {
            for j in 0..<k {
                let el = Int(meta[r * metaInts + 1 + j])
                if el >= 0 { perExpert[el].append((r, Float(bitPattern: UInt32(bitPattern: meta[r * metaInts + 1 + k + j])))) }
            }
        }
        var index: [Int32] = [], slotRows: [Int] = [], rowEntries = [[(pos: Int32, weight: Float)]](repeating: [], count: rows)
        for el in 0..<epr {
            slotRows.append(perExpert[el].count)
            for e in perExpert[el] {
                rowEntries[e.row].append((Int32(index.count), e.weight))
                index.append(Int32(e.row))
            }
        }
        var start: [Int32] = [0], pos: [Int32] = [], weights: [Float] = []
        for r in rowEntries {
            pos += r.map(\.pos)
            weights += r.map(\.weight)
            start.append(Int32(pos.count))
        }
        let entries = index.count
        let xr: CUdeviceptr
        let deq = try DeviceArray<UInt16>(gpu, count: max(1, rows) * h)
        if fp8 {
            try ep.fakeExpert(rows: ep.localAddress(.receive), stride: ep.layout.rowStride, count: rows, fp8: true,
                              group: 1 << 30, salt: 0, y: deq.pointer)
            xr = deq.pointer
        } else {
            xr = ep.localAddress(.receive)
        }
        let xs = try DeviceArray<UInt16>(gpu, count: max(1, entries) * h)
        let y13 = try DeviceArray<UInt16>(gpu, count: max(1, entries) * 2 * inter)
        let act = try DeviceArray<UInt16>(gpu, count: max(1, entries) * inter)
        let ys = try DeviceArray<UInt16>(gpu, count: max(1, entries) * h)
        let yRecv = try DeviceArray<UInt16>(gpu, count: max(1, rows) * h)
        let idx = try DeviceArray(gpu, index.isEmpty ? [0] : index)
        let st = try DeviceArray(gpu, start), ps = try DeviceArray(gpu, pos.isEmpty ? [0] : pos)
        let wt = try DeviceArray(gpu, weights.isEmpty ? [0] : weights)
        let blocks = max(1, min(4 * gpu.multiprocessors, (max(entries, rows) + 7) / 8))
        try gpu.launch(try ep.function("ep_gather_rows"), grid: (blocks, 1, 1), block: (256, 1, 1),
                       args: [.ptr(xr), .ptr(idx.pointer), .int(entries), .int(h), .ptr(xs.pointer)], name: "ep_gather_rows")
        try slotGEMM.run(x: xs.pointer, w: layer.w13.address(at: me * epr * 2 * inter * h), y: y13.pointer,
                         slotRows: slotRows, n: 2 * inter, k: h, path: .loop)
        if entries > 0 { try kernels.siluMul(y: y13.pointer, rows: entries, intermediate: inter, h: act.pointer) }
        try slotGEMM.run(x: act.pointer, w: layer.w2.address(at: me * epr * h * inter), y: ys.pointer,
                         slotRows: slotRows, n: h, k: inter, path: .loop)
        try gpu.launch(try ep.function("ep_rows_weighted_sum"), grid: (blocks, 1, 1), block: (256, 1, 1),
                       args: [.ptr(ys.pointer), .ptr(st.pointer), .ptr(ps.pointer), .ptr(wt.pointer), .int(rows), .int(h),
                              .ptr(yRecv.pointer)], name: "ep_rows_weighted_sum")
        try ep.combine(y: yRecv.pointer, tokens: tokens, out: out.pointer)
        if let shared = w.sharedOut, tokens > 0 {
            try gpu.launch(try ep.function("ep_add_rows"), grid: (max(1, min(1024, tokens * h / 8 / 256 + 1)), 1, 1),
                           block: (256, 1, 1), args: [.ptr(out.pointer), .ptr(shared.pointer), .i64(Int64(tokens * h))],
                           name: "ep_add_rows")
        }
        try ep.checkHealth()
        let a = try out.download(gpu, count: tokens * h).map(BF16Bits.toFloat)
        let b = try ref.download(gpu, count: tokens * h).map(BF16Bits.toFloat)
        var num = 0.0, den = 0.0
        for i in 0..<a.count {
            let d = Double(a[i] - b[i])
            num += d * d
            den += Double(b[i]) * Double(b[i])
        }
        if a.contains(where: { !$0.isFinite }) { return .infinity }
        return den > 0 ? (num / den).squareRoot() : num.squareRoot()
    }
}
