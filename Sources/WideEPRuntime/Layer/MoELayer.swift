import WideEPCore

/// One MoE layer on one EP rank: the DESIGN §4 forward over any backend.
///
/// Holds the rank's fixed slot buffers (allocated once, rewritten in place by migration), the replicated router and
/// shared-expert weights, and reusable scratch. Every rank of the group calls `forward` for the same layer with the
/// same placement; each passes its own tokens.
public final class MoELayer<Kernels: MoEKernels, Comm: Communicator> where Comm.Buffer == Kernels.Buffer {
    public typealias Buffer = Kernels.Buffer

    /// Layer shape.
    public let config: MoEConfig
    /// This rank.
    public let rank: Int
    /// EP size R.
    public let numRanks: Int
    /// Local slots per rank.
    public let slotsPerRank: Int
    /// How each batch's tokens are split over replicas.
    public var splitPolicy: SplitPolicy
    /// The rank's kernels.
    public let kernels: Kernels
    /// The rank's communicator.
    public let comm: Comm
    /// Router and shared weights on the backend.
    public let dense: DenseWeights<Buffer>
    /// The rank's fixed slot buffers.
    public let slots: SlotWeights<Buffer>
    /// What each local slot holds (maintained by `loadSlot`).
    public let contents: SlotContents

    var scratch: LayerScratch<Kernels>
    var splitScratch = ReplicaSplit.Scratch()

    /// Uploads the dense weights and fills the slot buffers of `rank` from `weights` for `placement`.
    public init(
        weights: MoELayerWeights, placement: Placement, rank: Int, kernels: Kernels, comm: Comm,
        splitPolicy: SplitPolicy = .balanced
    ) throws {
        try weights.validate()
        let c = weights.config
        guard placement.numExperts == c.numExperts else {
            throw PlacementError.invalidArgument(
                "placement has \(placement.numExperts) experts but the layer has \(c.numExperts)")
        }
        guard placement.numRanks == comm.size else {
            throw PlacementError.invalidArgument(
                "placement is for \(placement.numRanks) ranks but the group has \(comm.size)")
        }
        config = c
        self.rank = rank
        numRanks = comm.size
        slotsPerRank = placement.slotsPerRank
        self.splitPolicy = splitPolicy
        self.kernels = kernels
        self.comm = comm
        func upload(_ a: [Float]?) throws -> Buffer? {
            guard let a else { return nil }
            let b = try kernels.allocate(.float32, count: max(a.count, 1))
            try a.withUnsafeBytes { try kernels.upload($0, to: b, offset: 0) }
            return b
        }
        dense = DenseWeights(
            router: try upload(weights.routerWeight)!,
            correctionBias: c.hasCorrectionBias ? try upload(weights.correctionBias) : nil,
            sharedW13: c.numShared > 0 ? try upload(weights.sharedW13) : nil,
            sharedW2: c.numShared > 0 ? try upload(weights.sharedW2) : nil,
            sharedGate: c.sharedExpertGate ? try upload(weights.sharedGate) : nil,
            sharedIntermediate: c.numShared > 0 ? weights.sharedIntermediate : 0)
        slots = SlotWeights(
            w13: try kernels.allocate(.float32, count: placement.slotsPerRank * weights.w13PerExpert),
            w2: try kernels.allocate(.float32, count: placement.slotsPerRank * weights.w2PerExpert),
            slotsPerRank: placement.slotsPerRank, hiddenSize: c.hiddenSize,
            intermediateSize: c.moeIntermediateSize)
        let mine = Array(placement.slots(ofRank: rank))
        contents = SlotContents(mine)
        scratch = LayerScratch(kernels: kernels)
        for (local, e) in mine.enumerated() { try loadSlot(local, expert: Int(e), from: weights) }
    }

    /// Copies expert `expert`'s weights from the host store into local slot `localSlot` (in place; the buffer
    /// does not move) and records it. The caller guarantees the layer is not running a forward meanwhile.
    public func loadSlot(_ localSlot: Int, expert: Int, from weights: MoELayerWeights) throws {
        try weights.w13.withUnsafeBufferPointer { a in
            try weights.w2.withUnsafeBufferPointer { b in
                let ra = weights.w13Range(expert: expert), rb = weights.w2Range(expert: expert)
                try kernels.writeSlot(
                    w13: UnsafeBufferPointer(rebasing: a[ra]), w2: UnsafeBufferPointer(rebasing: b[rb]),
                    into: slots, localSlot: localSlot)
            }
        }
        contents.set(localSlot, Int32(expert))
    }

    /// Runs the layer on this rank's `tokens` rows of `hidden` ([tokens, H] float32) into `output` ([tokens, H]).
    ///
    /// - Parameters:
    ///   - placement: the placement to use; every rank must pass the same one, and the slot buffers must hold it.
    ///   - logitOffset: optional float32 [E] added to the router logits (workload steering).
    /// - Returns: the step's counts, rank loads and this rank's phase times.
    public func forward(
        hidden: Buffer, tokens: Int, placement: Placement, logitOffset: Buffer? = nil, output: Buffer
    ) throws -> LayerStepInfo {
        let c = config, k = c.topK, e = c.numExperts, h = c.hiddenSize, r = numRanks
        guard placement.numRanks == r, placement.slotsPerRank == slotsPerRank, placement.numExperts == e else {
            throw PlacementError.invalidArgument(
                "placement shape (\(placement.numRanks) ranks × \(placement.slotsPerRank) slots) does not match the "
                    + "layer (\(r) × \(slotsPerRank))")
        }
        var times = PhaseTimes()
        var t0 = monotonicSeconds()
        let stale = contents.mismatches(placement.slots(ofRank: rank))

        // 1. route + count
        let experts = try scratch.int(.experts, tokens * k)
        let weights = try scratch.float(.weights, tokens * k)
        try kernels.route(
            hidden: hidden, tokens: tokens, dense: dense, logitOffset: logitOffset, config: c, experts: experts,
            weights: weights)
        let countsBuf = try scratch.int(.counts, e)
        try kernels.countExperts(experts: experts, tokens: tokens, topK: k, numExperts: e, counts: countsBuf)
        var local = [Int32](repeating: 0, count: e)
        try local.withUnsafeMutableBytes { try kernels.download(countsBuf, offset: 0, into: $0) }
        var t1 = monotonicSeconds()
        times.route = t1 - t0
        t0 = t1

        // 2–3. exchange counts, split (identical on every rank), map to slots
        let all = try comm.allGather(local)
        var global = [Int32](repeating: 0, count: e)
        for src in 0..<r {
            for x in 0..<e { global[x] &+= all[src * e + x] }
        }
        var quotas = [Int32](repeating: 0, count: placement.numSlots)
        global.withUnsafeBufferPointer { g in
            quotas.withUnsafeMutableBufferPointer { q in
                ReplicaSplit.quotas(
                    expertCounts: g, placement: placement, policy: splitPolicy, scratch: &splitScratch, into: q)
            }
        }
        let split = SlotSplit(placement: placement, quotas: quotas, allCounts: all, rank: rank)
        let slotIds = try scratch.int(.slots, tokens * k)
        try kernels.mapToSlots(experts: experts, tokens: tokens, topK: k, split: split, slots: slotIds)

        // 4–5. layout, permute, dispatch rows and metadata
        let layout = try scratch.dispatchLayout(tokens: tokens, topK: k, numRanks: r)
        let sendCounts = try kernels.layout(
            slots: slotIds, weights: weights, tokens: tokens, topK: k, slotsPerRank: slotsPerRank, numRanks: r,
            into: layout)
        let recvCounts = try comm.exchangeCounts(sendCounts)
        let sent = sendCounts.reduce(0, +), received = recvCounts.reduce(0, +)
        let sendRows = try scratch.float(.sendRows, sent * h)
        try kernels.permute(hidden: hidden, hiddenSize: h, layout: layout, rows: sent, sendRows: sendRows)
        let recvRows = try scratch.float(.recvRows, received * h)
        try comm.allToAllV(send: sendRows, sendCounts: sendCounts, recv: recvRows, recvCounts: recvCounts,
                           rowBytes: h * 4)
        let recvMeta = try scratch.int(.recvMeta, received * 2 * k)
        try comm.allToAllV(send: layout.sendMeta, sendCounts: sendCounts, recv: recvMeta, recvCounts: recvCounts,
                           rowBytes: 8 * k)
        let expertLayout = try scratch.expertLayout(rows: received, topK: k)
        let slotCounts = try kernels.arrange(
            recvMeta: recvMeta, rows: received, topK: k, slotsPerRank: slotsPerRank, into: expertLayout)
        let entries = slotCounts.reduce(0, +)
        let x = try scratch.float(.expertRows, entries * h)
        try kernels.gatherExpertRows(recvRows: recvRows, hiddenSize: h, layout: expertLayout, entries: entries, x: x)
        t1 = monotonicSeconds()
        times.dispatch = t1 - t0
        t0 = t1

        // 6. grouped FFN
        let y = try scratch.float(.expertOut, entries * h)
        let ffnScratch = try scratch.float(.ffnScratch, entries * 2 * c.moeIntermediateSize)
        try kernels.groupedFFN(x: x, slotCounts: slotCounts, weights: slots, scratch: ffnScratch, y: y)
        t1 = monotonicSeconds()
        times.ffn = t1 - t0
        t0 = t1

        // 7. combine: per-row weighted reduce, reverse all-to-all, per-token sum, shared expert
        let partial = try scratch.float(.partial, received * h)
        try kernels.reduceExpertOutputs(
            y: y, recvMeta: recvMeta, layout: expertLayout, rows: received, topK: k, hiddenSize: h, out: partial)
        let returned = try scratch.float(.returned, sent * h)
        try comm.allToAllV(send: partial, sendCounts: recvCounts, recv: returned, recvCounts: sendCounts,
                           rowBytes: h * 4)
        try kernels.combine(returned: returned, layout: layout, tokens: tokens, hiddenSize: h, out: output)
        if c.numShared > 0 {
            let s = try scratch.float(.sharedScratch, tokens * 2 * dense.sharedIntermediate)
            try kernels.addSharedExpert(
                hidden: hidden, tokens: tokens, hiddenSize: h, dense: dense, scratch: s, out: output)
        }
        times.combine = monotonicSeconds() - t0

        return LayerStepInfo(
            expertCounts: global.map(Int.init), rankLoads: split.rankLoads, times: times, receivedRows: received,
            staleSlots: stale)
    }
}
