import Foundation
import WideEPCore

/// A deterministic SplitMix64 generator for synthetic weights and workloads (same seed, same numbers everywhere).
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var inner: SplitMix64
    public init(seed: UInt64) { inner = SplitMix64(seed: seed ^ 0x5DEE_CE66_D1CE_4E5B) }
    public mutating func next() -> UInt64 { inner.next() }

    /// A uniform float in [-a, a).
    public mutating func symmetric(_ a: Float) -> Float { Float.random(in: -a..<a, using: &self) }

    /// A standard normal sample (Box–Muller).
    public mutating func normal() -> Float {
        let u1 = Double.random(in: Double.ulpOfOne..<1, using: &self)
        let u2 = Double.random(in: 0..<1, using: &self)
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }
}

extension MoELayerWeights {
    /// Random weights for `config`, scaled so activations stay O(1): router and W13 rows ~ U(±1/√H) (router × 3 so
    /// routing is decisive), W2 rows ~ U(±1/√I), correction bias ~ U(±0.1).
    ///
    /// Each array is cut into `randomChunk`-float chunks with their own streams (seeded by the layer seed, the
    /// array and the chunk), filled concurrently: the values do not depend on the number of cores, and a full-size
    /// DeepSeek-V3 layer (11 G floats) takes seconds on a many-core host instead of most of a minute.
    public static func random(config: MoEConfig, seed: UInt64) -> MoELayerWeights {
        let h = config.hiddenSize, e = config.numExperts, i = config.moeIntermediateSize
        let si = config.numShared * config.sharedIntermediateSize
        let a = 1 / Float(h).squareRoot()
        var arrays: UInt64 = 0
        func fill(_ n: Int, _ s: Float) -> [Float] {
            arrays += 1
            return randomFloats(count: n, bound: s, seed: seed, stream: arrays)
        }
        let router = fill(e * h, 3 * a)
        let bias = config.hasCorrectionBias ? fill(e, 0.1) : nil
        let w13 = fill(e * 2 * i * h, a)
        let w2 = fill(e * h * i, 1 / Float(i).squareRoot())
        let s13 = si > 0 ? fill(2 * si * h, a) : nil
        let s2 = si > 0 ? fill(h * si, 1 / Float(si).squareRoot()) : nil
        let gate = config.sharedExpertGate ? fill(h, a) : nil
        return MoELayerWeights(
            config: config, routerWeight: router, correctionBias: bias, w13: w13, w2: w2, sharedW13: s13,
            sharedW2: s2, sharedGate: gate)
    }

    /// Floats per independently seeded chunk of `random`'s arrays.
    static let randomChunk = 1 << 20

    /// `count` floats uniform in [-bound, bound): chunk c of `randomChunk` floats comes from its own
    /// `SeededGenerator` seeded by (seed, stream, c), filled on all cores.
    static func randomFloats(count: Int, bound: Float, seed: UInt64, stream: UInt64) -> [Float] {
        let chunks = (count + randomChunk - 1) / randomChunk
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            let base = buffer.baseAddress!
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                var mixer = SplitMix64(seed: seed &+ stream &* 0x9E37_79B9_7F4A_7C15)
                var g = SeededGenerator(seed: mixer.next() &+ UInt64(c) &* 0xD6E8_FEB8_6659_FD93)
                let start = c * randomChunk, end = min(count, start + randomChunk)
                for j in start..<end { (base + j).initialize(to: g.symmetric(bound)) }
            }
            initialized = count
        }
    }

    /// Expert `expert`'s W13 block [2I, H] inside `w13`, as a float range.
    public func w13Range(expert: Int) -> Range<Int> { expert * w13PerExpert..<(expert + 1) * w13PerExpert }
    /// Expert `expert`'s W2 block [H, I] inside `w2`, as a float range.
    public func w2Range(expert: Int) -> Range<Int> { expert * w2PerExpert..<(expert + 1) * w2PerExpert }
}
