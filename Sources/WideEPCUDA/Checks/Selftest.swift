import CUDADriver
import WideEPCore
import WideEPRuntime

/// One line of `wide-ep selftest --device cuda`: a kernel checked against its CPU twin.
public struct SelftestRow: Codable, Sendable {
    /// Kernel or path checked ("route_topk noaux_tc").
    public let name: String
    /// Problem size in words ("T=777 E=256 K=8").
    public let shape: String
    /// "mismatches" (exact checks) or "rel err" (‖out − ref‖ / ‖ref‖).
    public let metric: String
    /// The measured value (NaN when an output was left unwritten).
    public let value: Double
    /// The largest value that passes.
    public let tolerance: Double
    /// value ≤ tolerance (NaN never passes).
    public var passed: Bool { value <= tolerance }
}

/// Every CUDA kernel against its CPU twin on fresh random inputs, outputs poisoned before each run, then the whole
/// layer against the dense float reference (METHOD.md: bf16 GEMM paths pass at rel err ≤ 1e-2).
public struct CUDASelftest {
    let gpu: GPU
    var rng: SplitMix64
    let progress: (String) -> Void

    public init(gpu: GPU, seed: UInt64, progress: @escaping (String) -> Void = { _ in }) {
        self.gpu = gpu
        rng = SplitMix64(seed: seed)
        self.progress = progress
    }

    /// Runs every check and returns one row each.
    public mutating func run() throws -> [SelftestRow] {
        var rows: [SelftestRow] = []
        func add(_ r: [SelftestRow]) {
            for x in r { progress("selftest: \(x.name) \(x.shape): \(x.metric) \(x.value) (≤ \(x.tolerance))") }
            rows += r
        }
        let v3 = MoEConfig.deepseekV3
        var softmaxCfg = MoEConfig.qwen3_30B
        softmaxCfg.numGroups = 1
        add(try routing(config: v3, tokens: 777, label: "noaux_tc"))
        add(try routing(config: softmaxCfg, tokens: 555, label: "softmax"))
        add(try routing(config: MoEConfig.deepseekV2Lite, tokens: 300, label: "softmax no-renorm"))
        add(try countAndMap(tokens: 1500))
        add(try localFirstMap())
        add(try siluMul(rows: 300, inter: 256))
        add(try slotGEMM(path: .loop, streams: 1))
        add(try slotGEMM(path: .loop, streams: SlotGEMM.maxStreams))
        add(try slotGEMM(path: .grouped, streams: 1))
        add(try routerGEMM())
        add(try combine(tokens: 200))
        let mini = MoEConfig.deepseekV3Mini
        for path in GroupedGEMMPath.allCases {
            add(try layer(config: mini, tokens: 96, replicas: 0, path: path))
        }
        add(try layer(config: mini, tokens: 80, replicas: 16, path: .loop))
        let small = MoEConfig(
            name: "softmax-small", numExperts: 16, topK: 4, hiddenSize: 128, moeIntermediateSize: 64, numMoELayers: 1,
            scoring: .softmax, normTopKProb: true)
        add(try layer(config: small, tokens: 64, replicas: 4, path: .grouped))
        add(try runtimeLayer(config: mini, tokens: 48, replicas: 8))
        add(try balancedSplit())
        return rows
    }

    // MARK: random inputs

    mutating func uniform(_ n: Int, _ lo: Float, _ hi: Float) -> [Float] {
        (0..<n).map { _ in lo + (hi - lo) * rng.unitFloat() }
    }

    mutating func bf16(_ n: Int, _ scale: Float) -> [UInt16] { uniform(n, -scale, scale).map(BF16.bits) }

    static func mismatches<T: Equatable>(_ a: [T], _ b: [T]) -> Double {
        Double(zip(a, b).reduce(0) { $0 + ($1.0 == $1.1 ? 0 : 1) } + abs(a.count - b.count))
    }

    // MARK: checks

    mutating func routing(config c: MoEConfig, tokens t: Int, label: String) throws -> [SelftestRow] {
        let e = c.numExperts, k = c.topK
        let logits = uniform(t * e, -4, 4)
        let bias: [Float]? = c.hasCorrectionBias ? uniform(e, -0.1, 0.1) : nil
        let dl = try DeviceArray(gpu, logits)
        let db = try bias.map { try DeviceArray(gpu, $0) }
        let ex = try DeviceArray<Int32>(gpu, count: t * k), w = try DeviceArray<Float>(gpu, count: t * k)
        try ex.poison(gpu)
        try w.poison(gpu)
        try CUDAKernels(gpu: gpu, config: c).route(logits: dl, bias: db, tokens: t, experts: ex, weights: w)
        let ref = Router.route(logits: logits, tokens: t, bias: bias, config: c)
        let shape = "T=\(t) E=\(e) K=\(k) groups=\(c.topKGroup)/\(c.numGroups)"
        return [
            SelftestRow(name: "route_topk \(label) experts", shape: shape, metric: "mismatches",
                        value: Self.mismatches(try ex.download(gpu), ref.experts), tolerance: 0),
            SelftestRow(name: "route_topk \(label) weights", shape: shape, metric: "rel err",
                        value: relativeError(try w.download(gpu), ref.weights), tolerance: 1e-5),
        ]
    }

    /// A single-rank placement with `extra` random replicas on top of the identity.
    mutating func placement(experts e: Int, extra: Int) throws -> Placement {
        var table = (0..<e).map { Int32($0) }
        for _ in 0..<extra { table.append(Int32(rng.next() % UInt64(e))) }
        return try Placement(slotExpert: table, numExperts: e, numRanks: 1, allowSameRankReplicas: true)
    }

    /// Random quotas: each expert's count split at random over its replicas (exercises uneven splits).
    mutating func randomQuotas(counts: [Int32], placement p: Placement) -> [Int] {
        var q = [Int](repeating: 0, count: p.numSlots)
        for e in 0..<p.numExperts {
            let r0 = Int(p.replicaStart[e]), r1 = Int(p.replicaStart[e + 1])
            var left = Int(counts[e])
            for r in r0..<(r1 - 1) {
                let take = left == 0 ? 0 : Int(rng.next() % UInt64(left + 1))
                q[r] = take
                left -= take
            }
            q[r1 - 1] = left
        }
        return q
    }

    mutating func countAndMap(tokens t: Int) throws -> [SelftestRow] {
        let c = MoEConfig.deepseekV3Mini
        let e = c.numExperts, k = c.topK, h = c.hiddenSize, n = t * k
        // Skewed draws, so some experts are hot and some empty.
        let experts = (0..<n).map { _ in Int32(min(e - 1, Int(Float(e) * rng.unitFloat() * rng.unitFloat()))) }
        let kern = CUDAKernels(gpu: gpu, config: c)
        let dex = try DeviceArray(gpu, experts), counts = try DeviceArray<Int32>(gpu, count: e)
        try counts.poison(gpu)
        try kern.count(experts: dex, pairs: n, counts: counts)
        let refCounts = SlotMapReference.count(experts: experts, numExperts: e)
        let gotCounts = try counts.download(gpu)
        let p = try placement(experts: e, extra: 24)
        let quotas = randomQuotas(counts: refCounts, placement: p)
        let tb = SlotMapReference.tables(quotas: quotas, placement: p)
        let tables = try SlotTables(gpu: gpu, placement: p)
        try tables.update(gpu: gpu, quotaStart: tb.quotaStart, slotRowStart: tb.slotRowStart)
        let slot = try DeviceArray<Int32>(gpu, count: n), pos = try DeviceArray<Int32>(gpu, count: n)
        try slot.poison(gpu)
        try pos.poison(gpu)
        try kern.mapSlots(experts: dex, pairs: n, tables: tables, slot: slot, position: pos)
        let ref = SlotMapReference.map(experts: experts, quotas: quotas, placement: p)
        // The slot twin is Core's ReplicaSplit.mapTokens (quotas per global slot); positions come from ours.
        var perSlot = [Int32](repeating: 0, count: p.numSlots)
        for (r, s) in p.replicaSlots.enumerated() { perSlot[Int(s)] = Int32(quotas[r]) }
        let coreSlots = ReplicaSplit.mapTokens(
            experts: experts, rankOffsets: [Int32](repeating: 0, count: e), quotas: perSlot, placement: p)
        let gotPos = try pos.download(gpu)
        let x = bf16(t * h, 1)
        let dx = try DeviceArray(gpu, x), xs = try DeviceArray<UInt16>(gpu, count: n * h)
        try xs.poison(gpu)
        try kern.permute(x: dx, position: pos, pairs: n, xs: xs)
        let refXs = SlotMapReference.permute(x: x, position: ref.position, topK: k, hidden: h, rows: n)
        let shape = "T=\(t) E=\(e) K=\(k) slots=\(p.numSlots)"
        return [
            SelftestRow(name: "count_experts", shape: shape, metric: "mismatches",
                        value: Self.mismatches(gotCounts, refCounts), tolerance: 0),
            SelftestRow(name: "map_slots slot", shape: shape + " uneven split", metric: "mismatches",
                        value: Self.mismatches(try slot.download(gpu), coreSlots), tolerance: 0),
            SelftestRow(name: "map_slots position", shape: shape + " uneven split", metric: "mismatches",
                        value: Self.mismatches(gotPos, ref.position), tolerance: 0),
            SelftestRow(name: "permute_rows", shape: shape + " H=\(h)", metric: "mismatches",
                        value: Self.mismatches(try xs.download(gpu), refXs), tolerance: 0),
        ]
    }

    mutating func siluMul(rows: Int, inter: Int) throws -> [SelftestRow] {
        let y = bf16(rows * 2 * inter, 3)
        let dy = try DeviceArray(gpu, y), dh = try DeviceArray<UInt16>(gpu, count: rows * inter)
        try dh.poison(gpu)
        try CUDAKernels(gpu: gpu, config: .deepseekV3Mini).siluMul(
            y: dy.pointer, rows: rows, intermediate: inter, h: dh.pointer)
        let ref = FFNReference.siluMul(y: BF16.floats(y), rows: rows, intermediate: inter)
        return [SelftestRow(name: "silu_mul", shape: "rows=\(rows) I=\(inter)", metric: "rel err",
                            value: relativeError(BF16.floats(try dh.download(gpu)), ref), tolerance: 1e-2)]
    }

    mutating func slotGEMM(path: GroupedGEMMPath, streams: Int) throws -> [SelftestRow] {
        let slots = 12, n = 384, k = 256
        let rows = (0..<slots).map { i in i % 5 == 3 ? 0 : Int(rng.next() % 70) + 1 }
        let total = rows.reduce(0, +)
        let x = bf16(total * k, 1), w = bf16(slots * n * k, 0.1)
        let dx = try DeviceArray(gpu, x), dw = try DeviceArray(gpu, w), dy = try DeviceArray<UInt16>(gpu, count: total * n)
        try dy.poison(gpu)
        let g = try SlotGEMM(gpu: gpu, maxSlots: slots)
        g.streamCount = streams
        try g.run(x: dx.pointer, w: dw.pointer, y: dy.pointer, slotRows: rows, n: n, k: k, path: path)
        let xf = BF16.floats(x), wf = BF16.floats(w)
        var ref: [Float] = []
        var row = 0
        for (s, r) in rows.enumerated() where r > 0 {
            ref += FFNReference.matmulXWt(xf[row * k..<(row + r) * k], wf[s * n * k..<(s + 1) * n * k], m: r, n: n, k: k)
            row += r
        }
        return [SelftestRow(name: "slot GEMM (\(path.rawValue)×\(streams))", shape: "slots=\(slots) rows=\(total) n=\(n) k=\(k)",
                            metric: "rel err", value: relativeError(BF16.floats(try dy.download(gpu)), ref),
                            tolerance: 1e-2)]
    }

    mutating func routerGEMM() throws -> [SelftestRow] {
        let t = 64, e = 256, h = 512
        let x = bf16(t * h, 1), w = bf16(e * h, 0.05)
        let dx = try DeviceArray(gpu, x), dw = try DeviceArray(gpu, w), dl = try DeviceArray<Float>(gpu, count: t * e)
        try dl.poison(gpu)
        try gpu.gemmXWt(x: dx.pointer, w: dw.pointer, y: dl.pointer, rows: t, outFeatures: e, inFeatures: h,
                        floatOutput: true)
        let ref = FFNReference.matmulXWt(BF16.floats(x)[...], BF16.floats(w)[...], m: t, n: e, k: h)
        return [SelftestRow(name: "router GEMM (fp32 out)", shape: "T=\(t) E=\(e) H=\(h)", metric: "rel err",
                            value: relativeError(try dl.download(gpu), ref), tolerance: 1e-5)]
    }

    mutating func combine(tokens t: Int) throws -> [SelftestRow] {
        let c = MoEConfig.deepseekV3Mini
        let k = c.topK, h = c.hiddenSize, n = t * k
        var position = (0..<n).map { Int32($0) }
        position.shuffle(using: &rng)
        for i in stride(from: 0, to: n, by: 13) { position[i] = -1 }
        let ys = bf16(n * h, 2), sh = bf16(t * h, 1), w = uniform(n, 0, 1)
        let dys = try DeviceArray(gpu, ys), dpos = try DeviceArray(gpu, position), dw = try DeviceArray(gpu, w)
        let dsh = try DeviceArray(gpu, sh), out = try DeviceArray<UInt16>(gpu, count: t * h)
        try out.poison(gpu)
        try CUDAKernels(gpu: gpu, config: c).combine(
            ys: dys, position: dpos, weights: dw, shared: dsh.pointer, tokens: t, out: out)
        let ref = FFNReference.combine(
            ys: BF16.floats(ys), position: position, weights: w, shared: BF16.floats(sh), tokens: t, topK: k, hidden: h)
        return [SelftestRow(name: "combine (+shared)", shape: "T=\(t) K=\(k) H=\(h)", metric: "rel err",
                            value: relativeError(BF16.floats(try out.download(gpu)), ref), tolerance: 1e-2)]
    }

    /// Random logical weights, rounded to bf16 so the GPU and the reference see the same values.
    mutating func weights(_ c: MoEConfig) -> MoELayerWeights {
        let h = c.hiddenSize, inter = c.moeIntermediateSize, e = c.numExperts
        let si = c.numShared * c.sharedIntermediateSize
        func r(_ n: Int, _ s: Float) -> [Float] { uniform(n, -s, s).map(BF16.round) }
        let sh = Float((3.0 / Double(h)).squareRoot()), si_ = Float((3.0 / Double(max(inter, 1))).squareRoot())
        return MoELayerWeights(
            config: c, routerWeight: r(e * h, 1 / Float(h).squareRoot()),
            correctionBias: c.hasCorrectionBias ? uniform(e, -0.1, 0.1) : nil,
            w13: r(e * 2 * inter * h, sh), w2: r(e * h * inter, si_),
            sharedW13: si > 0 ? r(2 * si * h, sh) : nil,
            sharedW2: si > 0 ? r(h * si, Float((3.0 / Double(max(si, 1))).squareRoot())) : nil, sharedGate: nil)
    }

    mutating func layer(config c: MoEConfig, tokens t: Int, replicas: Int, path: GroupedGEMMPath) throws
        -> [SelftestRow]
    {
        let w = weights(c)
        let p = try placement(experts: c.numExperts, extra: replicas)
        let layer = try CUDAMoELayer(gpu: gpu, weights: w, placement: p)
        layer.gemmPath = path
        let x = bf16(t * c.hiddenSize, 1)
        let dx = try DeviceArray(gpu, x), out = try DeviceArray<UInt16>(gpu, count: t * c.hiddenSize)
        try out.poison(gpu)
        _ = try layer.workspace(tokens: t)
        try layer.workspace?.poison(gpu)
        try layer.forward(x: dx, tokens: t, out: out)
        let got = BF16.floats(try out.download(gpu))
        // Route the reference from the GPU's logits: a near-tie flipped by GEMM summation order is not a bug.
        let logits = try layer.workspace!.logits.download(gpu, count: t * c.numExperts)
        let ref = FFNReference.denseLayer(x: BF16.floats(x), logits: logits, tokens: t, weights: w)
        let shape = "T=\(t) E=\(c.numExperts) slots=\(p.numSlots) H=\(c.hiddenSize) I=\(c.moeIntermediateSize)"
        return [SelftestRow(name: "MoE layer vs dense (\(c.name), \(path.rawValue))", shape: shape, metric: "rel err",
                            value: relativeError(got, ref), tolerance: 1e-2)]
    }
}

extension CUDASelftest {
    /// The runtime's `MoELayer` on `CUDABackend` (what `wide-ep run --device cuda` executes) against
    /// `DenseMoEReference` on the same float32 weights.
    mutating func runtimeLayer(config c: MoEConfig, tokens t: Int, replicas: Int) throws -> [SelftestRow] {
        let w = MoELayerWeights.random(config: c, seed: rng.next())
        let p = try placement(experts: c.numExperts, extra: replicas)
        let k = try CUDAMoEKernels(gpu: gpu)
        let layer = try MoELayer(weights: w, placement: p, rank: 0, kernels: k, comm: SingleRankCommunicator(gpu: gpu))
        let x = uniform(t * c.hiddenSize, -1, 1)
        let hb = try k.allocate(.float32, count: x.count), ob = try k.allocate(.float32, count: x.count)
        try x.withUnsafeBytes { try k.upload($0, to: hb, offset: 0) }
        try ob.storage.poison(gpu)
        _ = try layer.forward(hidden: hb, tokens: t, placement: p, output: ob)
        var got = [Float](repeating: 0, count: x.count)
        try got.withUnsafeMutableBytes { try k.download(ob, offset: 0, into: $0) }
        let ref = DenseMoEReference.forward(weights: w, hidden: x, tokens: t)
        return [SelftestRow(
            name: "runtime MoELayer on CUDABackend vs dense", shape: "T=\(t) E=\(c.numExperts) slots=\(p.numSlots)",
            metric: "rel err", value: relativeError(got, ref), tolerance: 1e-2)]
    }
}

