import CUDADriver
import Foundation

/// One measured configuration of `wide-ep bench dispatch` on one rank.
public struct EPBenchSample: Codable, Sendable, Equatable {
    /// "normal", "low-latency", "nccl" or "p2p-copy".
    public var mode: String
    /// Tokens per rank.
    public var tokens: Int
    /// FP8 dispatch.
    public var fp8: Bool
    /// Median dispatch time in µs (for p2p-copy: the copy).
    public var dispatchMicros: Double
    /// Median combine time in µs (0 for p2p-copy).
    public var combineMicros: Double
    /// Dispatch bytes counted as DeepEP does (rows actually sent × row bytes).
    public var dispatchBytes: Int
    /// Combine bytes (the same rows in bf16).
    public var combineBytes: Int
}

/// Times dispatch and combine on one rank: every iteration starts with a device barrier of all ranks, and the
/// median over iterations is reported (each phase bracketed by events on the rank's stream).
public final class EPBenchmark {
    let harness: EPHarness
    var ep: NVLinkEP { harness.ep }
    /// Timed iterations (after `warmup` untimed ones).
    public var iterations: Int
    public var warmup: Int

    public init(harness: EPHarness, iterations: Int = 20, warmup: Int = 3) {
        self.harness = harness
        self.iterations = iterations
        self.warmup = warmup
    }

    /// Runs `phases` (each a closure issuing work on the stream) `warmup + iterations` times after a barrier and
    /// returns the median of each phase in µs. `between` runs untimed between phases (then another barrier).
    func time(_ phases: [() throws -> Void], between: [() throws -> Void]) throws -> [Double] {
        let ctx = ep.gpu.context
        var samples = [[Double]](repeating: [], count: phases.count)
        for i in 0..<(warmup + iterations) {
            for (p, phase) in phases.enumerated() {
                try ep.barrier()
                let a = try CUDAEvent(context: ctx), b = try CUDAEvent(context: ctx)
                try a.record(on: ep.gpu.stream)
                try phase()
                try b.record(on: ep.gpu.stream)
                if p < between.count { try between[p]() }
                try ep.checkHealth()
                if i >= warmup { samples[p].append(try b.elapsed(since: a) * 1000) }
            }
        }
        return samples.map { s in let v = s.sorted(); return v[v.count / 2] }
    }

    /// Normal mode (layout untimed, as DeepEP's `get_dispatch_layout`; dispatch includes the count exchange).
    public func normal(tokens: Int, fp8: Bool) throws -> EPBenchSample {
        let d = try harness.upload(tokens: tokens)
        let s = ep.shape, h = harness
        try ep.computeLayout(topk: h.topk.pointer, tokens: tokens)
        var rows = 0
        let us = try time(
            [{ try self.ep.dispatch(x: h.x.pointer, topk: h.topk.pointer, weights: h.weights.pointer, tokens: tokens, fp8: fp8) },
             { try self.ep.combine(y: h.yNormal.pointer, tokens: tokens, out: h.out.pointer) }],
            between: [{
                rows = try self.ep.receivedRows()
                try self.ep.fakeExpert(rows: self.ep.localAddress(.receive), stride: self.ep.layout.rowStride,
                                       count: rows, fp8: fp8, group: 1 << 30, salt: self.ep.rank, y: h.yNormal.pointer)
            }])
        let sent = CommLayout.sendCounts(topk: d.topk, topK: s.topK, expertsPerRank: s.expertsPerRank, numRanks: s.ranks)
            .reduce(0, +)
        return EPBenchSample(
            mode: "normal", tokens: tokens, fp8: fp8, dispatchMicros: us[0], combineMicros: us[1],
            dispatchBytes: CommBytes.dispatch(rows: sent, hidden: s.hidden, fp8: fp8),
            combineBytes: CommBytes.combine(rows: sent, hidden: s.hidden))
    }

    /// Low-latency mode (`tokens` ≤ the capacity).
    public func lowLatency(tokens: Int, fp8: Bool) throws -> EPBenchSample {
        let d = try harness.upload(tokens: tokens)
        let s = ep.shape, h = harness
        let us = try time(
            [{ try self.ep.dispatchLowLatency(x: h.x.pointer, topk: h.topk.pointer, tokens: tokens, fp8: fp8) },
             { try self.ep.combineLowLatency(y: h.yLowLatency.pointer, topk: h.topk.pointer, weights: h.weights.pointer,
                                             tokens: tokens, out: h.out.pointer) }],
            between: [{
                try self.ep.fakeExpert(
                    rows: self.ep.localAddress(.lowLatencyReceive), stride: self.ep.layout.rowStride,
                    count: s.expertsPerRank * s.ranks * s.lowLatencyTokens, fp8: fp8, group: s.ranks * s.lowLatencyTokens,
                    salt: self.ep.rank * s.expertsPerRank, y: h.yLowLatency.pointer)
            }])
        let selections = d.topk.filter { $0 >= 0 }.count
        return EPBenchSample(
            mode: "low-latency", tokens: tokens, fp8: fp8, dispatchMicros: us[0], combineMicros: us[1],
            dispatchBytes: CommBytes.dispatch(rows: selections, hidden: s.hidden, fp8: fp8),
            combineBytes: CommBytes.combine(rows: selections, hidden: s.hidden))
    }

    /// The ceiling: this rank's off-rank dispatch payload copied by the copy engine into each peer's buffer, all
    /// ranks at once.
    public func p2pCopy(tokens: Int) throws -> EPBenchSample {
        let d = try harness.upload(tokens: tokens)
        let s = ep.shape
        let counts = CommLayout.sendCounts(topk: d.topk, topK: s.topK, expertsPerRank: s.expertsPerRank, numRanks: s.ranks)
        let bytes = (0..<s.ranks).filter { $0 != ep.rank }.map { counts[$0] * s.hidden * 2 }
        let source = harness.yNormal
        let us = try time([{
            for (i, p) in (0..<s.ranks).filter({ $0 != self.ep.rank }).enumerated() where bytes[i] > 0 {
                try self.ep.copyToPeer(source.pointer, bytes: min(bytes[i], source.byteCount), peer: p)
            }
        }], between: [])
        let total = bytes.reduce(0, +)
        return EPBenchSample(mode: "p2p-copy", tokens: tokens, fp8: false, dispatchMicros: us[0], combineMicros: 0,
                             dispatchBytes: total, combineBytes: 0)
    }
}
