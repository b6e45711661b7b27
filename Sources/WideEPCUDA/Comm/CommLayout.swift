/// Host-side arithmetic of the multi-GPU dispatch and combine: receive offsets from exchanged count matrices and
/// DeepEP-style byte counting. The kernels compute the same numbers on the device; these are their reference.
public enum CommLayout {
    /// Where each source's rows land in each receiver's buffer, rank-major (normal mode, and `allToAllV`).
    ///
    /// - Parameter counts: `counts[s][d]` = rows rank s sends to rank d, [R][R], non-negative.
    /// - Returns: `offsets[s][d]` = first row of s's block in d's receive buffer = Σ_{s' < s} counts[s'][d].
    public static func receiveOffsets(counts: [[Int]]) throws -> [[Int]] {
        let r = try validateSquare(counts)
        var out = [[Int]](repeating: [Int](repeating: 0, count: r), count: r)
        for d in 0..<r {
            var acc = 0
            for s in 0..<r {
                out[s][d] = acc
                acc += counts[s][d]
            }
        }
        return out
    }

    /// Rows each rank receives: `Σ_s counts[s][d]`, [R].
    public static func receiveTotals(counts: [[Int]]) throws -> [Int] {
        let r = try validateSquare(counts)
        return (0..<r).map { d in counts.reduce(0) { $0 + $1[d] } }
    }

    /// Where each of a source's send rows sits in its own send order: `Σ_{d' < d} counts[s][d']` per destination.
    public static func sendOffsets(counts: [Int]) -> [Int] {
        var acc = 0
        return counts.map { c in defer { acc += c }; return acc }
    }

    /// Expert-major offsets on one receiver: entries of (local expert e, source s) start at
    /// `Σ_{e' < e} Σ_s c[s][e'] + Σ_{s' < s} c[s'][e]`.
    ///
    /// - Parameter counts: `counts[s][e]` = entries source s sends to local expert e of this receiver, [R][E_local].
    public static func expertMajorOffsets(counts: [[Int]]) throws -> [[Int]] {
        guard let e = counts.first?.count else { return [] }
        for (s, row) in counts.enumerated() {
            guard row.count == e else {
                throw CommLayoutError.shape("row \(s) of the expert count matrix has \(row.count) entries, expected \(e)")
            }
            if let bad = row.firstIndex(where: { $0 < 0 }) {
                throw CommLayoutError.shape("count [\(s)][\(bad)] is negative (\(row[bad]))")
            }
        }
        var out = [[Int]](repeating: [Int](repeating: 0, count: e), count: counts.count)
        var acc = 0
        for x in 0..<e {
            for s in 0..<counts.count {
                out[s][x] = acc
                acc += counts[s][x]
            }
        }
        return out
    }

    /// Destination ranks of one token (deduplicated, ascending) from its top-k global experts; −1 experts are skipped.
    public static func destinationRanks(experts: some Sequence<Int32>, expertsPerRank: Int) -> [Int] {
        var ranks: [Int] = []
        for e in experts where e >= 0 {
            let r = Int(e) / expertsPerRank
            if !ranks.contains(r) { ranks.append(r) }
        }
        return ranks.sorted()
    }

    /// Per-destination send counts of one rank, [R]: tokens with at least one top-k expert on each rank.
    ///
    /// - Parameter topk: int32 [tokens, K] global expert ids (−1 = none).
    public static func sendCounts(topk: [Int32], topK: Int, expertsPerRank: Int, numRanks: Int) -> [Int] {
        var counts = [Int](repeating: 0, count: numRanks)
        let tokens = topK == 0 ? 0 : topk.count / topK
        for t in 0..<tokens {
            for d in destinationRanks(experts: topk[(t * topK)..<((t + 1) * topK)], expertsPerRank: expertsPerRank) {
                counts[d] += 1
            }
        }
        return counts
    }

    static func validateSquare(_ counts: [[Int]]) throws -> Int {
        let r = counts.count
        for (s, row) in counts.enumerated() {
            guard row.count == r else {
                throw CommLayoutError.shape("row \(s) of the \(r)×\(r) count matrix has \(row.count) entries")
            }
            if let bad = row.firstIndex(where: { $0 < 0 }) {
                throw CommLayoutError.shape("count [\(s)][\(bad)] is negative (\(row[bad]))")
            }
        }
        return r
    }
}

/// Bytes moved by dispatch and combine, counted as DeepEP's benchmarks count them.
public enum CommBytes {
    /// Dispatch payload: rows actually sent (to other ranks and to itself) × H × 2 bytes in bf16, or
    /// × (H + 4·H/128) bytes in fp8 e4m3 with one float32 scale per 128 channels.
    public static func dispatch(rows: Int, hidden: Int, fp8: Bool) -> Int {
        fp8 ? rows * (hidden + 4 * (hidden / 128)) : rows * hidden * 2
    }

    /// Combine payload: the same rows back, always bf16: rows × H × 2.
    public static func combine(rows: Int, hidden: Int) -> Int { rows * hidden * 2 }

    /// GB/s (10⁹ bytes per second) of `bytes` moved in `microseconds`.
    public static func gigabytesPerSecond(bytes: Int, microseconds: Double) -> Double {
        microseconds > 0 ? Double(bytes) / (microseconds * 1e3) : 0
    }
}

/// A malformed count matrix or layout request.
public enum CommLayoutError: Error, CustomStringConvertible, Equatable {
    case shape(String)

    public var description: String {
        switch self {
        case let .shape(why): return "communication layout: \(why)"
        }
    }
}
