import Foundation
import WideEPCore

/// One batch through one MoE layer over R EP ranks of a backend: what `wide-ep layer` does with a checkpoint layer.
///
/// The batch's T tokens are divided into R contiguous chunks (rank r gets rows `[r·T/R, (r+1)·T/R)`), every rank runs
/// `MoELayer.forward` on its chunk with the same placement, and the chunks' outputs are put back in order.
public enum LayerRun {
    /// The output and what the step measured.
    public struct Result: Sendable {
        /// Layer output, [T, H] float32, in input row order.
        public var output: [Float]
        /// Tokens routed to each expert, [E].
        public var expertCounts: [Int]
        /// Tokens each rank computed, [R].
        public var rankLoads: [Double]
        /// Realized imbalance ratio of `rankLoads`, (max − mean) / mean.
        public var imbalance: Double
        /// Slowest rank's time in each phase, seconds.
        public var times: PhaseTimes
        /// Input rows given to each rank, [R].
        public var tokensPerRank: [Int]
        /// Wall time to build the ranks' layers (upload dense weights, fill every slot), seconds.
        public var setupSeconds: Double
        /// Wall time of the forward on all ranks (upload of the inputs to download of the outputs), seconds.
        public var forwardSeconds: Double
    }

    /// Tokens routed to each expert for `hidden` [tokens, H] (the reference router on the layer's weights), [E].
    public static func expertCounts(weights: MoELayerWeights, hidden: [Float], tokens: Int) -> [Int] {
        let c = weights.config, e = c.numExperts
        var logits = [Float](repeating: 0, count: tokens * e)
        hidden.withUnsafeBufferPointer { x in
            weights.routerWeight.withUnsafeBufferPointer { r in
                logits.withUnsafeMutableBufferPointer { l in
                    MoEMath.routerLogits(
                        hidden: x.baseAddress!, tokens: 0..<tokens, hiddenSize: c.hiddenSize, router: r.baseAddress!,
                        numExperts: e, offset: nil, logits: l.baseAddress!)
                }
            }
        }
        let routed = Router.route(logits: logits, tokens: tokens, bias: weights.correctionBias, config: c)
        var counts = [Int](repeating: 0, count: e)
        for x in routed.experts { counts[Int(x)] += 1 }
        return counts
    }

    /// A placement of the layer's experts on `epSize` ranks and `numSlots` slots, planned by `policy` from `counts`.
    ///
    /// Replicas of one expert go to different ranks unless that is impossible (`numSlots > E × epSize`, e.g. EP 1).
    /// - Throws: `PlacementError` for a slot count that is not a multiple of `epSize`, smaller than E, or not E
    ///   under `none`.
    public static func plan(
        counts: [Int], config: MoEConfig, epSize: Int, numSlots: Int, policy: PlannerPolicy
    ) throws -> Placement {
        let request = try request(config: config, epSize: epSize, numSlots: numSlots, policy: policy)
        return try Planner.planLayer(loads: counts.map(Double.init), request: request)
    }

    /// The planner request `plan` uses, validated against the layer's expert count (so flags can be checked before
    /// any weights are loaded).
    public static func request(
        config: MoEConfig, epSize: Int, numSlots: Int, policy: PlannerPolicy
    ) throws -> PlannerRequest {
        let request = PlannerRequest(
            numSlots: numSlots, topology: try Topology(numRanks: epSize), policy: policy,
            numExpertGroups: config.numGroups, allowSameRankReplicas: numSlots > config.numExperts * epSize)
        try request.validate(numExperts: config.numExperts)
        return request
    }

    /// Runs `hidden` [tokens, H] through `weights` under `placement` on every rank of `backend`.
    ///
    /// Rank r computes tokens `r·T/R ..< (r+1)·T/R`. When the backend drives only some ranks (one process per rank),
    /// every process must call this with the same arguments; the outputs are then gathered so every process returns
    /// the whole batch, and phase and forward times are the slowest process's.
    ///
    /// - Throws: `PlacementError` when the placement's rank count is not the backend's, and whatever the backend
    ///   throws.
    public static func run<B: MoEBackend>(
        backend: B, weights: MoELayerWeights, hidden: [Float], tokens: Int, placement: Placement,
        split: SplitPolicy
    ) throws -> Result {
        let r = backend.numRanks, h = weights.config.hiddenSize, local = backend.localRanks
        precondition(hidden.count == tokens * h, "hidden must be [tokens, H]")
        guard placement.numRanks == r else {
            throw PlacementError.invalidArgument("placement is for \(placement.numRanks) ranks but ep-size is \(r)")
        }
        let bounds = (0...r).map { $0 * tokens / r }
        let setupStart = monotonicSeconds()
        var layers: [Int: MoELayer<B.Kernels, B.Comm>] = [:]
        for rank in local {
            layers[rank] = try MoELayer(
                weights: weights, placement: placement, rank: rank, kernels: backend.kernels(rank: rank),
                comm: backend.communicator(rank: rank), splitPolicy: split)
        }
        let forwardStart = monotonicSeconds()
        let results = RankResults(count: r)
        try backend.runRanks { rank in
            let layer = layers[rank]!, k = layer.kernels
            let t = bounds[rank + 1] - bounds[rank]
            let x = try k.allocate(.float32, count: max(t * h, 1))
            if t > 0 {
                try hidden[(bounds[rank] * h)..<(bounds[rank + 1] * h)].withUnsafeBytes {
                    try k.upload($0, to: x, offset: 0)
                }
            }
            let y = try k.allocate(.float32, count: max(t * h, 1))
            let info = try layer.forward(hidden: x, tokens: t, placement: placement, output: y)
            var out = [Float](repeating: 0, count: t * h)
            if t > 0 { try out.withUnsafeMutableBytes { try k.download(y, offset: 0, into: $0) } }
            results.set(rank, out, info)
        }
        var end = monotonicSeconds()
        var times = PhaseTimes()
        let (outs, infos) = results.values
        for rank in local {
            let t = infos[rank]!.times
            times.route = max(times.route, t.route)
            times.dispatch = max(times.dispatch, t.dispatch)
            times.ffn = max(times.ffn, t.ffn)
            times.combine = max(times.combine, t.combine)
        }
        var output = [Float]()
        output.reserveCapacity(tokens * h)
        if local.count == r {
            for rank in 0..<r { output += outs[rank] }
        } else {
            // Each process fills its ranks' rows of a zero [T, H] matrix; the sum over processes is the whole output
            // (float32 → double → float32 is exact, and every other term is zero).
            var mine = [Double](repeating: 0, count: tokens * h)
            for rank in local {
                for (i, v) in outs[rank].enumerated() { mine[bounds[rank] * h + i] = Double(v) }
            }
            output = try CrossRank.sum(backend, mine).map { Float($0) }
            let worst = try CrossRank.max(
                backend, [end - forwardStart, times.route, times.dispatch, times.ffn, times.combine])
            end = forwardStart + worst[0]
            times.route = worst[1]
            times.dispatch = worst[2]
            times.ffn = worst[3]
            times.combine = worst[4]
        }
        let info = infos[local[0]]!
        return Result(
            output: output, expertCounts: info.expertCounts, rankLoads: info.rankLoads,
            imbalance: Imbalance.ratio(info.rankLoads), times: times,
            tokensPerRank: (0..<r).map { bounds[$0 + 1] - bounds[$0] }, setupSeconds: forwardStart - setupStart,
            forwardSeconds: end - forwardStart)
    }
}

/// Per-rank outputs and step infos, filled concurrently by the rank threads.
final class RankResults: @unchecked Sendable {
    // Each rank writes only its own index, under the lock.
    private var outputs: [[Float]]
    private var infos: [LayerStepInfo?]
    private let lock = NSLock()

    init(count: Int) {
        outputs = Array(repeating: [], count: count)
        infos = Array(repeating: nil, count: count)
    }

    func set(_ rank: Int, _ output: [Float], _ info: LayerStepInfo) {
        lock.lock()
        defer { lock.unlock() }
        outputs[rank] = output
        infos[rank] = info
    }

    var values: ([[Float]], [LayerStepInfo?]) {
        lock.lock()
        defer { lock.unlock() }
        return (outputs, infos)
    }
}
