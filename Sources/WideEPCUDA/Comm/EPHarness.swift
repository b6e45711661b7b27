import CUDADriver
import Foundation

/// Checks the NVLink dispatch and combine of one rank against host references rebuilt from every rank's
/// deterministic inputs (`EPTestData`): exact received rows and metadata (bf16 bits, or FP8 bytes equal to the
/// host twin), and combined outputs within bf16 rounding, with a stand-in expert whose factor depends on the owner.
public final class EPHarness {
    /// The transport under test.
    public let ep: NVLinkEP
    /// Seed of the inputs.
    public let seed: UInt64
    let x: DeviceArray<UInt16>, topk: DeviceArray<Int32>, weights: DeviceArray<Float>, out: DeviceArray<UInt16>
    let yNormal: DeviceArray<UInt16>, yLowLatency: DeviceArray<UInt16>
    var data: [Int: EPTestData] = [:]

    /// Allocates the inputs and outputs for `ep`'s shape.
    public init(ep: NVLinkEP, seed: UInt64 = 0x5EED) throws {
        self.ep = ep
        self.seed = seed
        let s = ep.shape, gpu = ep.gpu
        let maxT = max(s.maxTokens, s.lowLatencyTokens)
        x = try DeviceArray(gpu, count: maxT * s.hidden)
        topk = try DeviceArray(gpu, count: maxT * s.topK)
        weights = try DeviceArray(gpu, count: maxT * s.topK)
        out = try DeviceArray(gpu, count: maxT * s.hidden)
        yNormal = try DeviceArray(gpu, count: ep.layout.receiveRows * s.hidden)
        yLowLatency = try DeviceArray(gpu, count: max(1, s.expertsPerRank * s.ranks * s.lowLatencyTokens * s.hidden))
    }

    /// Every rank's inputs for `tokens` tokens (cached).
    func inputs(rank: Int, tokens: Int) -> EPTestData {
        if let d = data[rank], d.tokens == tokens { return d }
        let d = EPTestData(shape: ep.shape, rank: rank, tokens: tokens, seed: seed)
        data[rank] = d
        return d
    }

    /// Uploads this rank's inputs for `tokens` tokens.
    func upload(tokens: Int) throws -> EPTestData {
        let d = inputs(rank: ep.rank, tokens: tokens)
        try x.upload(d.hidden, gpu: ep.gpu)
        try topk.upload(d.topk, gpu: ep.gpu)
        try weights.upload(d.weights, gpu: ep.gpu)
        return d
    }

    func bytes(_ p: CUdeviceptr, _ n: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        if n == 0 { return out }
        let api = ep.gpu.context.api
        try out.withUnsafeMutableBytes { raw in
            try api.check(api.cuMemcpyDtoHAsync(raw.baseAddress, p, n, ep.gpu.stream.handle), "cuMemcpyDtoHAsync(\(n) bytes)")
        }
        try ep.checkHealth()
        return out
    }

    func ints(_ p: CUdeviceptr, _ n: Int) throws -> [Int32] {
        try bytes(p, n * 4).withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
    }

    static func close(_ a: Float, _ b: Float) -> Bool { abs(a - b) <= 0.01 * abs(b) + 1e-3 }

    /// Normal mode, `tokens` tokens per rank: returns failure lines (empty when everything matched).
    public func checkNormal(tokens: Int, fp8: Bool) throws -> [String] {
        let s = ep.shape, me = ep.rank, h = s.hidden
        let mine = try upload(tokens: tokens)
        try ep.computeLayout(topk: topk.pointer, tokens: tokens)
        try ep.dispatch(x: x.pointer, topk: topk.pointer, weights: weights.pointer, tokens: tokens, fp8: fp8)
        let total = try ep.receivedRows()
        var expected: [(src: Int, token: Int)] = []
        for src in 0..<s.ranks {
            let d = inputs(rank: src, tokens: tokens)
            for t in 0..<tokens where d.destinations(t, shape: s).contains(me) { expected.append((src, t)) }
        }
        var failures: [String] = []
        guard total == expected.count else {
            return ["rank \(me): received \(total) rows, expected \(expected.count)"]
        }
        let wire = fp8 ? h + 4 * (h / 128) : 2 * h, stride = ep.layout.rowStride, metaInts = 1 + 2 * s.topK
        let rows = try bytes(ep.localAddress(.receive), total * stride)
        let meta = try ints(ep.localAddress(.meta), total * metaInts)
        for (r, e) in expected.enumerated() where failures.count < 5 {
            let d = inputs(rank: e.src, tokens: tokens)
            if Array(rows[(r * stride)..<(r * stride + wire)]) != d.wireRow(e.token, shape: s, fp8: fp8) {
                failures.append("rank \(me): row \(r) (rank \(e.src) token \(e.token)) differs from the \(fp8 ? "FP8 twin" : "bf16 input")")
            }
            var m: [Int32] = [Int32(e.token)]
            for k in 0..<s.topK {
                let x = d.topk[e.token * s.topK + k]
                m.append(Int(x) / s.expertsPerRank == me ? x % Int32(s.expertsPerRank) : -1)
            }
            for k in 0..<s.topK { m.append(Int32(bitPattern: d.weights[e.token * s.topK + k].bitPattern)) }
            if Array(meta[(r * metaInts)..<((r + 1) * metaInts)]) != m {
                failures.append("rank \(me): metadata of row \(r) (rank \(e.src) token \(e.token)) is wrong")
            }
        }
        try ep.fakeExpert(rows: ep.localAddress(.receive), stride: stride, count: total, fp8: fp8, group: 1 << 30,
                          salt: me, y: yNormal.pointer)
        try ep.combine(y: yNormal.pointer, tokens: tokens, out: out.pointer)
        try ep.checkHealth()
        let got = try out.download(ep.gpu, count: tokens * h)
        for t in 0..<tokens where failures.count < 10 {
            var acc = [Float](repeating: 0, count: h)
            for d in mine.destinations(t, shape: s) {
                let y = mine.expertOutput(t, shape: s, fp8: fp8, factor: Float(1 + d % 7))
                for i in 0..<h { acc[i] += y[i] }
            }
            if let i = (0..<h).first(where: { !Self.close(BF16Bits.toFloat(got[t * h + $0]), acc[$0]) }) {
                failures.append("rank \(me): combined token \(t) channel \(i) is \(BF16Bits.toFloat(got[t * h + i])), expected \(acc[i])")
            }
        }
        return failures
    }

    /// Low-latency mode, `tokens` ≤ capacity per rank: returns failure lines (empty when everything matched).
    public func checkLowLatency(tokens: Int, fp8: Bool) throws -> [String] {
        let s = ep.shape, me = ep.rank, h = s.hidden, epr = s.expertsPerRank, cap = s.lowLatencyTokens
        let mine = try upload(tokens: tokens)
        try ep.dispatchLowLatency(x: x.pointer, topk: topk.pointer, tokens: tokens, fp8: fp8)
        try ep.checkHealth()
        let counts = try ints(ep.localAddress(.lowLatencyCounts), epr * s.ranks)
        let headers = try ints(ep.localAddress(.lowLatencyHeaders), epr * s.ranks * cap * 2)
        let wire = fp8 ? h + 4 * (h / 128) : 2 * h, stride = ep.layout.rowStride
        var failures: [String] = []
        for el in 0..<epr {
            for src in 0..<s.ranks where failures.count < 10 {
                let d = inputs(rank: src, tokens: tokens), eg = Int32(me * epr + el)
                var want: [[Int]] = []
                for t in 0..<tokens { for k in 0..<s.topK where d.topk[t * s.topK + k] == eg { want.append([t, k]) } }
                let es = el * s.ranks + src, n = Int(counts[es])
                guard n == want.count else {
                    failures.append("rank \(me): expert \(eg) got \(n) entries from rank \(src), expected \(want.count)")
                    continue
                }
                if n == 0 { continue }
                let base = es * cap
                var have: [[Int]] = []
                let rows = try bytes(ep.localAddress(.lowLatencyReceive) + UInt64(base * stride), n * stride)
                for i in 0..<n {
                    let t = Int(headers[(base + i) * 2]), k = Int(headers[(base + i) * 2 + 1])
                    have.append([t, k])
                    guard t >= 0 && t < tokens else { failures.append("rank \(me): bad token \(t) in a header"); break }
                    if Array(rows[(i * stride)..<(i * stride + wire)]) != d.wireRow(t, shape: s, fp8: fp8) {
                        failures.append("rank \(me): expert \(eg) slot \(i) (rank \(src) token \(t)) holds the wrong row")
                    }
                }
                if have.sorted(by: { $0.lexicographicallyPrecedes($1) }) != want {
                    failures.append("rank \(me): expert \(eg) from rank \(src) has entries \(have.prefix(4)), expected \(want.prefix(4))")
                }
            }
        }
        try ep.fakeExpert(rows: ep.localAddress(.lowLatencyReceive), stride: stride, count: epr * s.ranks * cap,
                          fp8: fp8, group: s.ranks * cap, salt: me * epr, y: yLowLatency.pointer)
        try ep.combineLowLatency(y: yLowLatency.pointer, topk: topk.pointer, weights: weights.pointer, tokens: tokens,
                                 out: out.pointer)
        try ep.checkHealth()
        let got = try out.download(ep.gpu, count: tokens * h)
        let room = max(0, 10 - failures.count)
        failures += mine.combineMismatches(got, tokens: tokens, shape: s, fp8: fp8, limit: room)
            .map { "rank \(me): low-latency \($0)" }
        return failures
    }
}

extension EPTestData {
    /// Tokens whose combined output differs from `out[t] = Σ_k w[t,k] · f(e) · x[t]` beyond bf16 rounding (the stand-in
    /// expert scales row x by f(e) = 1 + e mod 7), one line each, at most `limit`.
    func combineMismatches(_ got: [UInt16], tokens: Int, shape s: EPShape, fp8: Bool, limit: Int) -> [String] {
        let h = s.hidden
        var bad: [String] = []
        for t in 0..<tokens where bad.count < limit {
            var acc = [Float](repeating: 0, count: h)
            for k in 0..<s.topK {
                let e = Int(topk[t * s.topK + k]), w = weights[t * s.topK + k]
                let y = expertOutput(t, shape: s, fp8: fp8, factor: Float(1 + e % 7))
                for i in 0..<h { acc[i] += w * y[i] }
            }
            if let i = (0..<h).first(where: { !EPHarness.close(BF16Bits.toFloat(got[t * h + $0]), acc[$0]) }) {
                bad.append("combined token \(t) channel \(i) is \(BF16Bits.toFloat(got[t * h + i])), expected \(acc[i])")
            }
        }
        return bad
    }
}
