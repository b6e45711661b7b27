/// Deterministic dispatch inputs of every rank, so each rank can rebuild its peers' inputs on the host and check
/// what it received without any extra communication.
///
/// Values come from a SplitMix64 hash of (seed, rank, token, index): hidden rows uniform in [−2, 2) as bf16 bits,
/// top-k as K distinct experts, weights positive and normalised to sum 1 per token.
public struct EPTestData: Sendable {
    /// Source rank.
    public let rank: Int
    /// Tokens of this rank.
    public let tokens: Int
    /// bf16 bits [tokens, H].
    public let hidden: [UInt16]
    /// Global expert ids [tokens, K].
    public let topk: [Int32]
    /// Combine weights [tokens, K].
    public let weights: [Float]

    /// The inputs of `rank` for `shape` with `tokens` tokens.
    public init(shape: EPShape, rank: Int, tokens: Int, seed: UInt64) {
        self.rank = rank
        self.tokens = tokens
        let h = shape.hidden, k = shape.topK, e = shape.experts
        var hid = [UInt16](repeating: 0, count: tokens * h)
        var tk = [Int32](repeating: -1, count: tokens * k)
        var w = [Float](repeating: 0, count: tokens * k)
        for t in 0..<tokens {
            var state = Self.mix(seed ^ Self.mix(UInt64(rank) &* 0x9E37_79B9 &+ UInt64(t)))
            for i in 0..<h {
                state = Self.mix(state)
                let u = Float(state >> 40) * 0x1p-24  // [0, 1)
                hid[t * h + i] = BF16Bits.from(u * 4 - 2)
            }
            var chosen: [Int32] = []
            while chosen.count < k {
                state = Self.mix(state)
                let x = Int32(state % UInt64(e))
                if !chosen.contains(x) { chosen.append(x) }
            }
            var sum: Float = 0
            for j in 0..<k {
                state = Self.mix(state)
                let v = 0.1 + Float(state >> 40) * 0x1p-24
                w[t * k + j] = v
                sum += v
            }
            for j in 0..<k {
                tk[t * k + j] = chosen[j]
                w[t * k + j] /= sum
            }
        }
        hidden = hid
        topk = tk
        self.weights = w
    }

    /// SplitMix64's finaliser.
    static func mix(_ z0: UInt64) -> UInt64 {
        var z = z0 &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Row `t` as floats.
    public func row(_ t: Int, hidden h: Int) -> [Float] { hidden[(t * h)..<((t + 1) * h)].map(BF16Bits.toFloat) }

    /// Destination ranks of token `t`, ascending.
    public func destinations(_ t: Int, shape: EPShape) -> [Int] {
        CommLayout.destinationRanks(experts: topk[(t * shape.topK)..<((t + 1) * shape.topK)], expertsPerRank: shape.expertsPerRank)
    }

    /// The bytes of token `t`'s dispatched row: bf16 bits, or FP8 codes followed by float32 scales (little-endian).
    public func wireRow(_ t: Int, shape: EPShape, fp8: Bool) -> [UInt8] {
        let h = shape.hidden
        if !fp8 { return hidden[(t * h)..<((t + 1) * h)].withUnsafeBytes { Array($0) } }
        let (codes, scales) = FP8E4M3.quantize(row(t, hidden: h))
        return codes + scales.withUnsafeBytes { Array($0) }
    }

    /// What the stand-in expert returns for token `t` with factor `f`: bf16(f · dequant(wire row)) as floats.
    public func expertOutput(_ t: Int, shape: EPShape, fp8: Bool, factor: Float) -> [Float] {
        let h = shape.hidden
        let x: [Float]
        if fp8 {
            let (codes, scales) = FP8E4M3.quantize(row(t, hidden: h))
            x = FP8E4M3.dequantize(codes: codes, scales: scales)
        } else {
            x = row(t, hidden: h)
        }
        return x.map { BF16Bits.toFloat(BF16Bits.from($0 * factor)) }
    }
}
