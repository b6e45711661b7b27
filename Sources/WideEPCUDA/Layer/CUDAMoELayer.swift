import CUDADriver
import WideEPCore
import WideEPRuntime

/// One MoE layer on one GPU (EP = 1: every slot local, replicas allowed), bf16 weights and activations with float32
/// routing and accumulation. Same forward semantics as the CPU MoELayer (DESIGN.md §4) without the all-to-alls.
///
/// Steps of `forward`: router GEMM → `route_topk` → `count_experts` → (host) ReplicaSplit quotas → `map_slots` →
/// `permute_rows` → per-slot GEMM W13 → `silu_mul` → per-slot GEMM W2 → `combine`; the shared expert runs on a side
/// stream from the start and is joined before `combine`.
public final class CUDAMoELayer {
    /// The GPU it runs on.
    public let gpu: GPU
    /// Layer shape.
    public let config: MoEConfig
    /// Slot → expert table (one rank).
    public let placement: Placement
    /// How the per-slot expert GEMMs are issued.
    public var gemmPath: GroupedGEMMPath = .auto
    /// Streams the per-slot GEMM loop uses (1…`SlotGEMM.maxStreams`).
    public var gemmStreams: Int {
        get { slotGEMM.streamCount }
        set { slotGEMM.streamCount = max(1, min(newValue, SlotGEMM.maxStreams)) }
    }
    /// How each expert's tokens are split over its replicas (Core's `ReplicaSplit`).
    public var splitPolicy: SplitPolicy = .balanced
    let kernels: CUDAKernels
    let tables: SlotTables
    let slotGEMM: SlotGEMM
    /// Router weight, bf16 [E, H].
    public let router: DeviceArray<UInt16>
    /// Correction bias, float32 [E], when the config has one.
    public let bias: DeviceArray<Float>?
    /// Slot weights: W13 bf16 [S, 2I, H] and W2 bf16 [S, H, I].
    public let w13: DeviceArray<UInt16>, w2: DeviceArray<UInt16>
    /// Shared expert weights, bf16 [2·Is, H] and [H, Is], when the config has shared experts.
    public let sharedW13: DeviceArray<UInt16>?, sharedW2: DeviceArray<UInt16>?
    var work: LayerWorkspace?
    /// The shared expert runs on its own stream, overlapping routing, the count read-back and the routed GEMMs.
    let side: CUDAStream
    let sideBLAS: CUBLASHandle
    let sideFork: CUDAEvent, sideJoin: CUDAEvent
    let countsHost: PinnedBuffer<Int32>
    /// Rows each slot computed in the last forward, [S].
    public private(set) var lastSlotRows: [Int] = []
    /// Per-expert counts of the last forward, [E].
    public private(set) var lastCounts: [Int32] = []

    /// Uploads `weights` (float32, rounded to bf16) into slot buffers laid out by `placement` (numRanks must be 1).
    public convenience init(gpu: GPU, weights: MoELayerWeights, placement: Placement) throws {
        let c = weights.config
        try weights.validate()
        try Self.check(config: c, placement: placement)
        let h = c.hiddenSize, inter = c.moeIntermediateSize
        var slot13 = [UInt16](), slot2 = [UInt16]()
        slot13.reserveCapacity(placement.numSlots * 2 * inter * h)
        slot2.reserveCapacity(placement.numSlots * h * inter)
        for e32 in placement.slotExpert {
            let e = Int(e32)
            slot13 += weights.w13[e * 2 * inter * h..<(e + 1) * 2 * inter * h].map(BF16.bits)
            slot2 += weights.w2[e * h * inter..<(e + 1) * h * inter].map(BF16.bits)
        }
        try self.init(
            gpu: gpu, config: c, placement: placement, router: try DeviceArray(gpu, BF16.bits(weights.routerWeight)),
            bias: try weights.correctionBias.map { try DeviceArray(gpu, $0) },
            w13: try DeviceArray(gpu, slot13), w2: try DeviceArray(gpu, slot2),
            sharedW13: try weights.sharedW13.map { try DeviceArray(gpu, BF16.bits($0)) },
            sharedW2: try weights.sharedW2.map { try DeviceArray(gpu, BF16.bits($0)) })
    }

    /// Generates hash-uniform weights on the GPU from `seed` (bit-identical to `benchmarks/torch_moe_reference.py`).
    ///
    /// Tensor seeds: router `seed+1`, bias `seed+2`, W13 `seed+3` (block = expert), W2 `seed+4` (block = expert),
    /// shared W13 `seed+5`, shared W2 `seed+6`. Scales: router 2/√H, bias 0.2, W13 2·√(3/H), W2 2·√(3/I).
    public convenience init(gpu: GPU, config c: MoEConfig, placement: Placement, seed: UInt32) throws {
        try Self.check(config: c, placement: placement)
        let k = CUDAKernels(gpu: gpu, config: c)
        let h = c.hiddenSize, inter = c.moeIntermediateSize, e = c.numExperts, s = placement.numSlots
        let si = c.numShared * c.sharedIntermediateSize
        let scales = Self.seededScales(c)
        let router = try DeviceArray<UInt16>(gpu, count: e * h)
        try k.fillUniform(bf16: router.pointer, count: e * h, blockLength: e * h, firstBlock: 0, seed: seed &+ 1,
                          scale: scales.router)
        var bias: DeviceArray<Float>?
        if c.hasCorrectionBias {
            let b = try DeviceArray<Float>(gpu, count: e)
            try k.fillUniform(f32: b.pointer, count: e, blockLength: e, firstBlock: 0, seed: seed &+ 2, scale: 0.2)
            bias = b
        }
        let w13 = try DeviceArray<UInt16>(gpu, count: s * 2 * inter * h)
        let w2 = try DeviceArray<UInt16>(gpu, count: s * h * inter)
        for slot in 0..<s {
            let ex = Int(placement.slotExpert[slot])
            try k.fillUniform(
                bf16: w13.address(at: slot * 2 * inter * h), count: 2 * inter * h, blockLength: 2 * inter * h,
                firstBlock: ex, seed: seed &+ 3, scale: scales.w13)
            try k.fillUniform(
                bf16: w2.address(at: slot * h * inter), count: h * inter, blockLength: h * inter, firstBlock: ex,
                seed: seed &+ 4, scale: scales.w2)
        }
        var s13: DeviceArray<UInt16>?, s2: DeviceArray<UInt16>?
        if si > 0 {
            let a = try DeviceArray<UInt16>(gpu, count: 2 * si * h), b = try DeviceArray<UInt16>(gpu, count: h * si)
            try k.fillUniform(bf16: a.pointer, count: 2 * si * h, blockLength: 2 * si * h, firstBlock: 0,
                              seed: seed &+ 5, scale: scales.w13)
            try k.fillUniform(bf16: b.pointer, count: h * si, blockLength: h * si, firstBlock: 0, seed: seed &+ 6,
                              scale: Float(2 * (3.0 / Double(si)).squareRoot()))
            s13 = a
            s2 = b
        }
        try gpu.synchronize()
        try self.init(
            gpu: gpu, config: c, placement: placement, router: router, bias: bias, w13: w13, w2: w2, sharedW13: s13,
            sharedW2: s2)
    }

    /// The fill scales of the seeded weights (see `init(gpu:config:placement:seed:)`).
    public static func seededScales(_ c: MoEConfig) -> (router: Float, w13: Float, w2: Float) {
        (Float(2 / Double(c.hiddenSize).squareRoot()), Float(2 * (3.0 / Double(c.hiddenSize)).squareRoot()),
         Float(2 * (3.0 / Double(c.moeIntermediateSize)).squareRoot()))
    }

    init(
        gpu: GPU, config: MoEConfig, placement: Placement, router: DeviceArray<UInt16>, bias: DeviceArray<Float>?,
        w13: DeviceArray<UInt16>, w2: DeviceArray<UInt16>, sharedW13: DeviceArray<UInt16>?,
        sharedW2: DeviceArray<UInt16>?
    ) throws {
        self.gpu = gpu
        self.config = config
        self.placement = placement
        self.router = router
        self.bias = bias
        self.w13 = w13
        self.w2 = w2
        self.sharedW13 = sharedW13
        self.sharedW2 = sharedW2
        kernels = CUDAKernels(gpu: gpu, config: config)
        tables = try SlotTables(gpu: gpu, placement: placement)
        slotGEMM = try SlotGEMM(gpu: gpu, maxSlots: placement.numSlots)
        countsHost = try PinnedBuffer(gpu, count: config.numExperts)
        side = try CUDAStream(context: gpu.context)
        sideBLAS = try CUBLASHandle(stream: side)
        sideFork = try CUDAEvent(context: gpu.context, timing: false)
        sideJoin = try CUDAEvent(context: gpu.context, timing: false)
    }

    static func check(config c: MoEConfig, placement: Placement) throws {
        try c.validate()
        guard placement.numRanks == 1, placement.numExperts == c.numExperts else {
            throw CUDAError.invalidRequest(
                "the one-GPU CUDA layer needs a placement with 1 rank and \(c.numExperts) experts; got "
                    + "\(placement.numRanks) ranks and \(placement.numExperts) experts")
        }
        if c.sharedExpertGate {
            throw CUDAError.invalidRequest("the CUDA layer does not implement the Qwen2 shared-expert gate (\(c.name))")
        }
        try CUDAKernels.requireVectorizable(c.hiddenSize, "hiddenSize")
        try CUDAKernels.requireVectorizable(c.moeIntermediateSize, "moeIntermediateSize")
        if c.numShared > 0 {
            try CUDAKernels.requireVectorizable(c.numShared * c.sharedIntermediateSize, "shared intermediate size")
        }
    }

    /// The activations of the last `forward`, for the self-test (valid until the next call).
    public var workspace: LayerWorkspace? { work }

    func workspace(tokens: Int) throws -> LayerWorkspace {
        if let w = work, w.maxTokens >= tokens { return w }
        work = nil
        let w = try LayerWorkspace(gpu: gpu, config: config, maxTokens: tokens)
        work = w
        return w
    }

    /// Runs the layer on `tokens` rows of `x` (bf16 [T, H]) into `out` (bf16 [T, H]).
    ///
    /// Synchronises once, to read the per-expert counts for the ReplicaSplit (prefill-style; DESIGN.md §4.2).
    public func forward(x: DeviceArray<UInt16>, tokens: Int, out: DeviceArray<UInt16>) throws {
        let c = config, h = c.hiddenSize, e = c.numExperts, k = c.topK, inter = c.moeIntermediateSize
        precondition(x.count >= tokens * h && out.count >= tokens * h)
        if tokens == 0 { return }
        let w = try workspace(tokens: tokens)
        let pairs = tokens * k
        let shared = try launchSharedExpert(x: x, tokens: tokens, work: w)
        try gpu.gemmXWt(
            x: x.pointer, w: router.pointer, y: w.logits.pointer, rows: tokens, outFeatures: e, inFeatures: h,
            floatOutput: true)
        try kernels.route(logits: w.logits, bias: bias, tokens: tokens, experts: w.experts, weights: w.weights)
        try kernels.count(experts: w.experts, pairs: pairs, counts: w.counts)
        try countsHost.copyAsync(from: w.counts, count: e, gpu: gpu)
        try gpu.synchronize()
        let counts = Array(countsHost.buffer)
        lastCounts = counts
        let quotas = SlotMapReference.replicaQuotas(counts: counts, placement: placement, policy: splitPolicy)
        let t = SlotMapReference.tables(quotas: quotas, placement: placement)
        lastSlotRows = t.slotRows
        try tables.update(gpu: gpu, quotaStart: t.quotaStart, slotRowStart: t.slotRowStart)
        try kernels.mapSlots(experts: w.experts, pairs: pairs, tables: tables, slot: w.slot, position: w.position)
        try kernels.permute(x: x, position: w.position, pairs: pairs, xs: w.xs)
        let kern = kernels
        try slotGEMM.ffn(
            xs: w.xs.pointer, w13: w13.pointer, w2: w2.pointer, y13: w.y13.pointer, act: w.act.pointer,
            ys: w.ys.pointer, slotRows: t.slotRows, hidden: h, inter: inter, path: gemmPath
        ) { y, a, rows, stream in
            try kern.siluMul(y: y, rows: rows, intermediate: inter, h: a, stream: stream)
        }
        if shared != nil { try gpu.stream.wait(sideJoin) }
        try kernels.combine(
            ys: w.ys, position: w.position, weights: w.weights, shared: shared, tokens: tokens, out: out)
    }
}

extension CUDAMoELayer {
    /// Issues the shared expert `W2s · SwiGLU(W13s · x)` on the side stream (forked from the GPU's stream) and returns
    /// its output rows, or nil without shared experts. The caller joins with `sideJoin` before reading them.
    func launchSharedExpert(x: DeviceArray<UInt16>, tokens: Int, work w: LayerWorkspace) throws -> CUdeviceptr? {
        guard let s13 = sharedW13, let s2 = sharedW2, let sh13 = w.shared13, let shAct = w.sharedAct,
            let shOut = w.sharedOut
        else { return nil }
        let c = config, h = c.hiddenSize, si = c.numShared * c.sharedIntermediateSize
        try sideFork.record(on: gpu.stream)
        try side.wait(sideFork)
        try gpu.gemmXWt(x: x.pointer, w: s13.pointer, y: sh13.pointer, rows: tokens, outFeatures: 2 * si, inFeatures: h,
                        handle: sideBLAS)
        try kernels.siluMul(y: sh13.pointer, rows: tokens, intermediate: si, h: shAct.pointer, stream: side)
        try gpu.gemmXWt(x: shAct.pointer, w: s2.pointer, y: shOut.pointer, rows: tokens, outFeatures: h,
                        inFeatures: si, handle: sideBLAS)
        try sideJoin.record(on: side)
        return shOut.pointer
    }
}

/// Device activations of one forward, sized for `maxTokens` (reused across calls).
public final class LayerWorkspace {
    /// Token capacity.
    public let maxTokens: Int
    /// Router logits, float32 [T, E].
    public let logits: DeviceArray<Float>
    /// Chosen experts int32 [T, K] and their weights float32 [T, K].
    public let experts: DeviceArray<Int32>, weights: DeviceArray<Float>
    /// Per-expert counts, int32 [E].
    public let counts: DeviceArray<Int32>
    /// Global slot and expert-major row of each pair, int32 [T·K].
    public let slot: DeviceArray<Int32>, position: DeviceArray<Int32>
    /// Permuted rows bf16 [T·K, H], W13 output [T·K, 2I], activation [T·K, I], W2 output [T·K, H].
    public let xs: DeviceArray<UInt16>, y13: DeviceArray<UInt16>, act: DeviceArray<UInt16>, ys: DeviceArray<UInt16>
    /// Shared expert buffers: [T, 2·Is], [T, Is], [T, H]; nil without shared experts.
    public let shared13: DeviceArray<UInt16>?, sharedAct: DeviceArray<UInt16>?, sharedOut: DeviceArray<UInt16>?

    init(gpu: GPU, config c: MoEConfig, maxTokens t: Int) throws {
        maxTokens = t
        let p = t * c.topK, h = c.hiddenSize, inter = c.moeIntermediateSize
        logits = try DeviceArray(gpu, count: t * c.numExperts)
        experts = try DeviceArray(gpu, count: p)
        weights = try DeviceArray(gpu, count: p)
        counts = try DeviceArray(gpu, count: c.numExperts)
        slot = try DeviceArray(gpu, count: p)
        position = try DeviceArray(gpu, count: p)
        xs = try DeviceArray(gpu, count: p * h)
        y13 = try DeviceArray(gpu, count: p * 2 * inter)
        act = try DeviceArray(gpu, count: p * inter)
        ys = try DeviceArray(gpu, count: p * h)
        let si = c.numShared * c.sharedIntermediateSize
        if si > 0 {
            shared13 = try DeviceArray(gpu, count: t * 2 * si)
            sharedAct = try DeviceArray(gpu, count: t * si)
            sharedOut = try DeviceArray(gpu, count: t * h)
        } else {
            shared13 = nil
            sharedAct = nil
            sharedOut = nil
        }
    }

    /// Fills every activation with NaN/−1 so that an unwritten element fails the self-test.
    public func poison(_ gpu: GPU) throws {
        try logits.poison(gpu); try experts.poison(gpu); try weights.poison(gpu); try slot.poison(gpu)
        try position.poison(gpu); try xs.poison(gpu); try y13.poison(gpu); try act.poison(gpu); try ys.poison(gpu)
        try shared13?.poison(gpu); try sharedAct?.poison(gpu); try sharedOut?.poison(gpu)
    }
}
