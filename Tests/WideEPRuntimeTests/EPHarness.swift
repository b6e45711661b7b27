import Foundation
import WideEPCPU
import WideEPCore
import WideEPRuntime
import WideEPTestSupport

/// Runs one EP layer over a CPU thread group and returns each rank's output, for comparison with the reference.
enum EPHarness {
    /// Per-rank outputs [R][tokens_r × H] of `weights` under `placement` for per-rank inputs.
    static func run(
        weights: MoELayerWeights, placement: Placement, inputs: [[Float]], policy: SplitPolicy,
        logitOffset: [Float]? = nil
    ) throws -> [[Float]] {
        let r = placement.numRanks, h = weights.config.hiddenSize
        let backend = try CPUBackend(options: BackendOptions(numRanks: r, workerThreads: 2))
        let layers = try (0..<r).map { rank in
            try MoELayer(weights: weights, placement: placement, rank: rank, kernels: backend.kernels(rank: rank),
                         comm: backend.communicator(rank: rank), splitPolicy: policy)
        }
        let outputs = ResultBox(count: r)
        try backend.runRanks { rank in
            let k = backend.kernels(rank: rank)
            let t = inputs[rank].count / h
            let x = try k.allocate(.float32, count: t * h)
            try inputs[rank].withUnsafeBytes { try k.upload($0, to: x, offset: 0) }
            var offset: HostBuffer?
            if let logitOffset {
                let b = try k.allocate(.float32, count: logitOffset.count)
                try logitOffset.withUnsafeBytes { try k.upload($0, to: b, offset: 0) }
                offset = b
            }
            let y = try k.allocate(.float32, count: t * h)
            _ = try layers[rank].forward(hidden: x, tokens: t, placement: placement, logitOffset: offset, output: y)
            var out = [Float](repeating: 0, count: t * h)
            try out.withUnsafeMutableBytes { try k.download(y, offset: 0, into: $0) }
            outputs.set(rank, out)
        }
        return outputs.values
    }

    /// A random valid slot table with `slotsPerRank` slots per rank: every expert once, the rest random replicas,
    /// shuffled (same-rank replicas allowed).
    static func randomPlacement(
        numExperts e: Int, numRanks r: Int, slotsPerRank: Int, using g: inout SplitMix64
    ) throws -> Placement {
        var table = (0..<e).map { Int32($0) }
        while table.count < r * slotsPerRank { table.append(Int32(Int.random(in: 0..<e, using: &g))) }
        table.shuffle(using: &g)
        return try Placement(slotExpert: table, numExperts: e, numRanks: r, allowSameRankReplicas: true)
    }
}

/// A lock-protected per-rank result collector.
final class ResultBox: @unchecked Sendable {
    private var slots: [[Float]]
    private let lock = NSLockShim()
    init(count: Int) { slots = Array(repeating: [], count: count) }
    func set(_ i: Int, _ v: [Float]) { lock.sync { slots[i] = v } }
    var values: [[Float]] { lock.sync { slots } }
}

/// NSLock with a closure helper.
final class NSLockShim: @unchecked Sendable {
    private let l = NSLock()
    func sync<T>(_ body: () -> T) -> T {
        l.lock()
        defer { l.unlock() }
        return body()
    }
}
