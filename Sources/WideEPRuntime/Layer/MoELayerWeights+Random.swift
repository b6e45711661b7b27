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
    public static func random(config: MoEConfig, seed: UInt64) -> MoELayerWeights {
        var g = SeededGenerator(seed: seed)
        let h = config.hiddenSize, e = config.numExperts, i = config.moeIntermediateSize
        let si = config.numShared * config.sharedIntermediateSize
        let a = 1 / Float(h).squareRoot()
        func fill(_ n: Int, _ s: Float) -> [Float] { (0..<n).map { _ in g.symmetric(s) } }
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

    /// Expert `expert`'s W13 block [2I, H] inside `w13`, as a float range.
    public func w13Range(expert: Int) -> Range<Int> { expert * w13PerExpert..<(expert + 1) * w13PerExpert }
    /// Expert `expert`'s W2 block [H, I] inside `w2`, as a float range.
    public func w2Range(expert: Int) -> Range<Int> { expert * w2PerExpert..<(expert + 1) * w2PerExpert }
}
