import Dispatch
import WideEPCore

/// One engine step's outcome.
public struct EngineStepResult {
    /// Per layer [L]: the first local rank's view (counts and rank loads are the same on every rank).
    public var layers: [LayerStepInfo]
    /// Phase times summed over layers, max over local ranks per phase (the slowest rank sets the pace).
    public var times: PhaseTimes
    /// Seconds ranks waited for an unfinished slot copy, summed over layers (max over ranks).
    public var copyWait: Double
    /// Per layer [L]: seconds that layer's forward waited for its own unfinished slot copies (max over ranks).
    public var layerCopyWaits: [Double]
    /// Forwards (layer, local rank) that found their own slot copies unfinished and waited.
    public var copyWaitCount: Int
    /// With `capture`: per layer [L] and local rank, the MoE input (normed) and output rows.
    public var captured: [[(input: [Float], output: [Float])]]?
    /// Final hidden states per local rank, [tokens_r × H].
    public var hidden: [[Float]]
    /// Token rows the local ranks received in dispatch, summed over layers and local ranks (a token goes once to
    /// each rank holding one of its experts' chosen replicas: the all-to-all's volume).
    public var receivedRows: Int
}

extension Engine {
    /// Runs every layer once on each local rank's `hidden` rows ([tokens_r × H] per local rank).
    ///
    /// - Parameters:
    ///   - logitOffsets: per layer [L][E] router-logit offsets (workload steering), or nil.
    ///   - hooks: migration around each layer forward (`WeightMigrator`): waits for the layer's own unfinished
    ///     copies before it, starts its copies after it. Every forward uses the active placement (`placements`).
    ///   - capture: keep each layer's MoE input and output for verification.
    public func step(
        hidden: [[Float]], logitOffsets: [[Float]]?, hooks: LayerForwardHooks? = nil, capture: Bool = false
    ) throws -> EngineStepResult {
        let ranks = backend.localRanks, h = config.hiddenSize, nl = layers.count
        guard hidden.count == ranks.count else {
            throw PlacementError.invalidArgument("step needs inputs for \(ranks.count) local ranks, got \(hidden.count)")
        }
        let stepPlacement = placements
        let box = StepBox(ranks: ranks.count, layers: nl)
        let this = self
        try backend.runRanks { rank in
            let i = this.localIndex(rank)
            let k = this.backend.kernels(rank: rank)
            let t = hidden[i].count / h
            let rb = this.rankBuffers[i]
            if rb.capacity < t || rb.x == nil {
                let cap = max(t + t / 2, 1)
                rb.x = try k.allocate(.float32, count: cap * h)
                rb.normed = try k.allocate(.float32, count: cap * h)
                rb.out = try k.allocate(.float32, count: cap * h)
                rb.capacity = cap
            }
            if rb.offsets.count != nl {
                rb.offsets = try (0..<nl).map { _ in try k.allocate(.float32, count: this.config.numExperts) }
            }
            let x = rb.x!, normed = rb.normed!, out = rb.out!
            try hidden[i].withUnsafeBytes { try k.upload($0, to: x, offset: 0) }
            var infos: [LayerStepInfo] = []
            var waits = [Double](repeating: 0, count: nl)
            var waitCount = 0
            var caps: [(input: [Float], output: [Float])] = []
            for l in 0..<nl {
                if let w = try hooks?.beforeForward(layer: l, rankIndex: i) {
                    waits[l] = w
                    waitCount += 1
                }
                var offset: Buffer?
                if let o = logitOffsets?[l] {
                    try o.withUnsafeBytes { try k.upload($0, to: rb.offsets[l], offset: 0) }
                    offset = rb.offsets[l]
                }
                try k.rmsNorm(x: x, tokens: t, hiddenSize: h, eps: this.rmsEps, out: normed)
                let info = try this.layers[l][i].forward(
                    hidden: normed, tokens: t, placement: stepPlacement[l], logitOffset: offset, output: out)
                infos.append(info)
                try hooks?.afterForward(layer: l, rankIndex: i)
                if capture {
                    var a = [Float](repeating: 0, count: t * h), b = a
                    try a.withUnsafeMutableBytes { try k.download(normed, offset: 0, into: $0) }
                    try b.withUnsafeMutableBytes { try k.download(out, offset: 0, into: $0) }
                    caps.append((a, b))
                }
                try k.addInPlace(x, out, count: t * h)
            }
            var final = [Float](repeating: 0, count: t * h)
            try final.withUnsafeMutableBytes { try k.download(x, offset: 0, into: $0) }
            box.set(i, infos: infos, waits: waits, waitCount: waitCount, captured: caps, hidden: final)
        }
        var times = PhaseTimes()
        for l in 0..<nl {
            var m = PhaseTimes()
            for i in 0..<ranks.count {
                let p = box.infos[i][l].times
                m.route = max(m.route, p.route)
                m.dispatch = max(m.dispatch, p.dispatch)
                m.ffn = max(m.ffn, p.ffn)
                m.combine = max(m.combine, p.combine)
            }
            times = times + m
        }
        var layerInfos = box.infos[0]
        for l in 0..<nl { layerInfos[l].staleSlots = (0..<ranks.count).reduce(0) { $0 + box.infos[$1][l].staleSlots } }
        let captured: [[(input: [Float], output: [Float])]]? = capture
            ? (0..<nl).map { l in (0..<ranks.count).map { box.captured[$0][l] } } : nil
        let layerWaits = (0..<nl).map { l in box.waits.reduce(0) { max($0, $1[l]) } }
        return EngineStepResult(
            layers: layerInfos, times: times, copyWait: box.waits.map { $0.reduce(0, +) }.max() ?? 0,
            layerCopyWaits: layerWaits, copyWaitCount: box.waitCounts.reduce(0, +), captured: captured,
            hidden: box.hidden, receivedRows: box.infos.reduce(0) { $0 + $1.reduce(0) { $0 + $1.receivedRows } })
    }
}

/// Collects per-rank results from the rank threads.
final class StepBox: @unchecked Sendable {
    var infos: [[LayerStepInfo]]
    var waits: [[Double]]
    var waitCounts: [Int]
    var captured: [[(input: [Float], output: [Float])]]
    var hidden: [[Float]]
    private let lock = DispatchSemaphore(value: 1)

    init(ranks: Int, layers: Int) {
        infos = Array(repeating: [], count: ranks)
        waits = Array(repeating: Array(repeating: 0, count: layers), count: ranks)
        waitCounts = Array(repeating: 0, count: ranks)
        captured = Array(repeating: [], count: ranks)
        hidden = Array(repeating: [], count: ranks)
    }

    func set(_ i: Int, infos: [LayerStepInfo], waits: [Double], waitCount: Int,
             captured: [(input: [Float], output: [Float])], hidden: [Float]) {
        lock.wait()
        self.infos[i] = infos
        self.waits[i] = waits
        waitCounts[i] = waitCount
        self.captured[i] = captured
        self.hidden[i] = hidden
        lock.signal()
    }
}
