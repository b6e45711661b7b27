import CUDADriver
import Foundation

/// What `EPGraphCheck.run` found on one rank.
public struct EPGraphCheckResult: Sendable {
    /// Failure lines (empty when every replay matched).
    public var failures: [String]
    /// Graph replays checked.
    public var replays: Int
    /// Median GPU time of one eager low-latency dispatch + expert + combine, µs (events on the stream).
    public var eagerMicros: Double
    /// Median GPU time of one replay of the captured graph of the same work, µs.
    public var graphMicros: Double
    /// Median host time to enqueue the eager work (kernel launches), µs.
    public var eagerEnqueueMicros: Double
    /// Median host time to enqueue one graph replay (`cuGraphLaunch`), µs.
    public var graphEnqueueMicros: Double
}

/// Proves that the low-latency dispatch/combine is capturable: captures one low-latency dispatch, the stand-in
/// expert and the combine on the rank's stream into a CUDA graph, then replays it on fresh random inputs (a new seed
/// per replay, written into the captured input buffers; outputs poisoned with NaN first) and checks every replay's
/// received entries, headers and counts against the host reference, its combined output against the host
/// reference and bit-for-bit against the eager path on the same inputs, and that the device epochs advanced by
/// exactly one per dispatch and combine. Collective: every rank runs it with the same arguments.
public final class EPGraphCheck {
    let h: EPHarness
    var ep: NVLinkEP { h.ep }

    /// Uses `harness`'s input and output buffers (the graph captures their addresses).
    public init(harness: EPHarness) { h = harness }

    /// Issues one low-latency dispatch + stand-in expert + combine of `tokens` tokens on the stream (no host sync).
    func issue(tokens: Int, fp8: Bool) throws {
        let s = ep.shape
        try ep.dispatchLowLatency(x: h.x.pointer, topk: h.topk.pointer, tokens: tokens, fp8: fp8)
        try ep.fakeExpert(rows: ep.localAddress(.lowLatencyReceive), stride: ep.layout.rowStride,
                          count: s.expertsPerRank * s.ranks * s.lowLatencyTokens, fp8: fp8,
                          group: s.ranks * s.lowLatencyTokens, salt: ep.rank * s.expertsPerRank, y: h.yLowLatency.pointer)
        try ep.combineLowLatency(y: h.yLowLatency.pointer, topk: h.topk.pointer, weights: h.weights.pointer,
                                 tokens: tokens, out: h.out.pointer)
    }

    func upload(_ d: EPTestData) throws {
        try h.x.upload(d.hidden, gpu: ep.gpu)
        try h.topk.upload(d.topk, gpu: ep.gpu)
        try h.weights.upload(d.weights, gpu: ep.gpu)
    }

    /// The eight device epochs (synchronises).
    func epochs() throws -> [Int32] {
        try ep.checkHealth()
        return Array(try ep.control.download(ep.gpu, count: 8))
    }

    /// Checks `tokens` ≤ the low-latency capacity with `replays` graph replays, then times eager and graph over
    /// `iterations` (after `warmup`) barrier-separated runs.
    public func run(tokens: Int, fp8: Bool, replays: Int = 5, iterations: Int = 20, warmup: Int = 3) throws
        -> EPGraphCheckResult {
        let s = ep.shape, me = ep.rank, n = tokens * s.hidden
        try ep.checkTokens(tokens, limit: s.lowLatencyTokens, mode: "low-latency")
        // Eager warm-up: kernels compiled and loaded, nothing lazy left for the capture.
        try upload(EPTestData(shape: s, rank: me, tokens: tokens, seed: h.seed))
        try ep.barrier()
        try issue(tokens: tokens, fp8: fp8)
        try ep.checkHealth()
        let graph = try CUDAGraph(stream: ep.gpu.stream) { try self.issue(tokens: tokens, fp8: fp8) }
        var failures: [String] = []
        let tag = "rank \(me): graph \(fp8 ? "fp8" : "bf16")"
        for r in 0..<replays {
            let seed = h.seed ^ (0xC0FFEE &+ UInt64(r + 1) &* 0x9E37_79B9_7F4A_7C15)
            let all = (0..<s.ranks).map { EPTestData(shape: s, rank: $0, tokens: tokens, seed: seed) }
            try upload(all[me])
            // Eager reference on the same inputs.
            try h.out.poison(ep.gpu)
            try h.yLowLatency.poison(ep.gpu)
            try ep.barrier()
            let e0 = try epochs()
            try issue(tokens: tokens, fp8: fp8)
            let e1 = try epochs()
            let eager = try h.out.download(ep.gpu, count: n)
            // The replay, outputs poisoned again.
            try h.out.poison(ep.gpu)
            try h.yLowLatency.poison(ep.gpu)
            try ep.barrier()
            let e2 = try epochs()
            try graph.launch(on: ep.gpu.stream)
            let e3 = try epochs()
            for (k, name) in [(3, "low-latency dispatch"), (4, "low-latency combine")] {
                if e1[k] != e0[k] + 1 || e3[k] != e2[k] + 1 {
                    failures.append("\(tag) replay \(r): \(name) epoch went \(e0[k])→\(e1[k]) eager, \(e2[k])→\(e3[k]) in the graph (expected +1 each)")
                }
            }
            var bad = try verifyReceived(tokens: tokens, fp8: fp8, all: all)
            let got = try h.out.download(ep.gpu, count: n)
            bad += all[me].combineMismatches(got, tokens: tokens, shape: ep.shape, fp8: fp8, limit: 5)
            if let i = (0..<n).first(where: { got[$0] != eager[$0] }) {
                bad.append("combined element \(i) is \(BF16Bits.toFloat(got[i])) in the graph, \(BF16Bits.toFloat(eager[i])) eager")
            }
            failures += bad.prefix(5).map { "\(tag) replay \(r) (seed \(String(seed, radix: 16))): " + $0 }
            // Nobody dispatches the next round into this rank's receive region before it has read it back.
            try ep.barrier()
        }
        let timing = try time(graph: graph, tokens: tokens, fp8: fp8, iterations: iterations, warmup: warmup)
        return EPGraphCheckResult(failures: failures, replays: replays, eagerMicros: timing[0], graphMicros: timing[1],
                                  eagerEnqueueMicros: timing[2], graphEnqueueMicros: timing[3])
    }

    /// Medians of [eager GPU, graph GPU, eager enqueue, graph enqueue] in µs; eager and graph alternate.
    func time(graph: CUDAGraph, tokens: Int, fp8: Bool, iterations: Int, warmup: Int) throws -> [Double] {
        var samples = [[Double]](repeating: [], count: 4)
        let ctx = ep.gpu.context
        for i in 0..<(warmup + max(1, iterations)) {
            for useGraph in [false, true] {
                try ep.barrier()
                let a = try CUDAEvent(context: ctx), b = try CUDAEvent(context: ctx)
                try a.record(on: ep.gpu.stream)
                let t0 = DispatchTime.now().uptimeNanoseconds
                if useGraph { try graph.launch(on: ep.gpu.stream) } else { try issue(tokens: tokens, fp8: fp8) }
                let t1 = DispatchTime.now().uptimeNanoseconds
                try b.record(on: ep.gpu.stream)
                try ep.checkHealth()
                if i >= warmup {
                    samples[useGraph ? 1 : 0].append(try b.elapsed(since: a) * 1000)
                    samples[useGraph ? 3 : 2].append(Double(t1 - t0) / 1000)
                }
            }
        }
        return samples.map { v in let v = v.sorted(); return v[v.count / 2] }
    }

    /// Received counts, (token, k) headers and rows of every local expert from every source against `all`.
    func verifyReceived(tokens: Int, fp8: Bool, all: [EPTestData]) throws -> [String] {
        let s = ep.shape, me = ep.rank, h = s.hidden, epr = s.expertsPerRank, cap = s.lowLatencyTokens
        let counts = try self.h.ints(ep.localAddress(.lowLatencyCounts), epr * s.ranks)
        let headers = try self.h.ints(ep.localAddress(.lowLatencyHeaders), epr * s.ranks * cap * 2)
        let wire = fp8 ? h + 4 * (h / 128) : 2 * h, stride = ep.layout.rowStride
        var bad: [String] = []
        for el in 0..<epr {
            for src in 0..<s.ranks where bad.count < 5 {
                let d = all[src], eg = Int32(me * epr + el)
                var want: [[Int]] = []
                for t in 0..<tokens { for k in 0..<s.topK where d.topk[t * s.topK + k] == eg { want.append([t, k]) } }
                let es = el * s.ranks + src, n = Int(counts[es])
                guard n == want.count else {
                    bad.append("expert \(eg) got \(n) entries from rank \(src), expected \(want.count)")
                    continue
                }
                if n == 0 { continue }
                let base = es * cap
                let rows = try self.h.bytes(ep.localAddress(.lowLatencyReceive) + UInt64(base * stride), n * stride)
                var have: [[Int]] = []
                for i in 0..<n {
                    let t = Int(headers[(base + i) * 2]), k = Int(headers[(base + i) * 2 + 1])
                    guard t >= 0 && t < tokens else { bad.append("bad token \(t) in a header of expert \(eg)"); break }
                    have.append([t, k])
                    if Array(rows[(i * stride)..<(i * stride + wire)]) != d.wireRow(t, shape: s, fp8: fp8) {
                        bad.append("expert \(eg) slot \(i) (rank \(src) token \(t)) holds the wrong row")
                    }
                }
                if have.sorted(by: { $0.lexicographicallyPrecedes($1) }) != want {
                    bad.append("expert \(eg) from rank \(src) has entries \(have.prefix(4)), expected \(want.prefix(4))")
                }
            }
        }
        return bad
    }
}
