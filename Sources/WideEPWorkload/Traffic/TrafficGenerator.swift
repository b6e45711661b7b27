import Foundation
import WideEPCore

/// Synthetic MoE routing traffic: per-step expert counts with heavy-tailed popularity, slow drift and abrupt shifts
/// between traffic mixes.
///
/// Model, per layer l and expert e at step t:
/// - a mix m(t) = (t / shiftEvery) mod mixes is active (always mix 0 without shifts);
/// - log-popularity = mixLogit[m][l][e] + walk[l][e], where the walk moves by drift × N(0, 1) per step and reverts
///   1% per step towards 0;
/// - popularity p = softmax over experts; each token picks K distinct experts, so expert e's inclusion probability is
///   π_e = min(1, c·p_e) with Σπ = K;
/// - counts are a multinomial of T·K draws over π/K (sequential binomials), capped at T per expert: they sum to
///   exactly tokensPerStep × K. This is the fast stand-in for sampling K distinct experts per token.
///
/// Synthetic mixes draw log-popularity as sigma_l × (√0.6·shared + √0.4·own) with N(0, 1) parts, sigma_l =
/// skew × U(0.6, 1.4) per layer, so mixes correlate like prefill vs decode traffic. Real profiles (counts [L][E])
/// use log(count) × skew instead.
public struct TrafficGenerator: Sendable {
    /// MoE layers (L).
    public let numLayers: Int
    /// Experts per layer (E).
    public let numExperts: Int
    /// Distinct experts per token (K).
    public let topK: Int
    /// The options it was built with.
    public let options: TrafficOptions
    /// Log-popularity of each mix, [mixes][L × E].
    let mixLogits: [[Double]]
    /// Drift walk of log-popularity, [L × E].
    var walk: [Double]
    var rng: TrafficRandom
    /// Next step to produce.
    public internal(set) var nextStepIndex = 0

    /// A synthetic generator for `config`'s layers, experts and top-k.
    public init(config: MoEConfig, options: TrafficOptions) throws {
        try options.validate()
        try config.validate()
        var rng = TrafficRandom(seed: options.seed)
        let l = config.numMoELayers, e = config.numExperts
        var sigma = [Double](repeating: 0, count: l)
        for i in 0..<l { sigma[i] = options.skew * (0.6 + 0.8 * rng.uniform()) }
        let shared = (0..<(l * e)).map { _ in rng.normal() }
        var mixes: [[Double]] = []
        for m in 0..<options.numMixes {
            var logits = [Double](repeating: 0, count: l * e)
            for i in 0..<(l * e) {
                let own = m == 0 && options.numMixes == 1 ? 0 : rng.normal()
                let z = options.numMixes == 1 ? shared[i] : 0.6.squareRoot() * shared[i] + 0.4.squareRoot() * own
                logits[i] = sigma[i / e] * z
            }
            mixes.append(logits)
        }
        self.init(layers: l, experts: e, topK: config.topK, options: options, mixLogits: mixes, rng: rng)
    }

    /// A generator that samples from real profiles: each profile is one traffic mix, tokens per expert [L][E]
    /// (e.g. the DeepSeek-R1 prefill and decode statistics). `options.numMixes` is ignored.
    public init(profiles: [[[Double]]], topK: Int, options: TrafficOptions) throws {
        try options.validate()
        guard let first = profiles.first, let row = first.first, !row.isEmpty else {
            throw TrafficError.invalidProfile("need at least one profile with at least one layer and expert")
        }
        let l = first.count, e = row.count
        guard topK >= 1 && topK <= e else {
            throw TrafficError.invalidProfile("top-k \(topK) must be in 1...\(e) (the expert count)")
        }
        var mixes: [[Double]] = []
        for (m, profile) in profiles.enumerated() {
            guard profile.count == l else {
                throw TrafficError.invalidProfile("profile \(m) has \(profile.count) layers, profile 0 has \(l)")
            }
            var logits = [Double](repeating: 0, count: l * e)
            for (li, counts) in profile.enumerated() {
                guard counts.count == e else {
                    throw TrafficError.invalidProfile(
                        "profile \(m), layer \(li) has \(counts.count) experts, expected \(e)")
                }
                for (x, c) in counts.enumerated() {
                    guard c.isFinite && c >= 0 else {
                        throw TrafficError.invalidProfile(
                            "profile \(m), layer \(li), expert \(x): count \(c) must be finite and >= 0")
                    }
                    // Half a token for experts never seen keeps them possible but rare.
                    logits[li * e + x] = options.skew * Foundation.log(max(c, 0.5))
                }
            }
            mixes.append(logits)
        }
        var opts = options
        opts.numMixes = profiles.count
        self.init(layers: l, experts: e, topK: topK, options: opts, mixLogits: mixes,
                  rng: TrafficRandom(seed: options.seed))
    }

    private init(layers: Int, experts: Int, topK: Int, options: TrafficOptions, mixLogits: [[Double]], rng: TrafficRandom) {
        numLayers = layers
        numExperts = experts
        self.topK = topK
        self.options = options
        self.mixLogits = mixLogits
        walk = [Double](repeating: 0, count: layers * experts)
        self.rng = rng
    }

    /// The mix active at step `t`.
    public func mix(atStep t: Int) -> Int {
        options.shiftEvery > 0 ? (t / options.shiftEvery) % mixLogits.count : 0
    }

    /// All `options.steps` steps from the start (this generator is not advanced).
    public func generate() -> TrafficTrace {
        var g = self
        var counts = [Double]()
        counts.reserveCapacity(options.steps * numLayers * numExperts)
        for _ in 0..<options.steps { g.appendNextStep(to: &counts) }
        return TrafficTrace(steps: options.steps, layers: numLayers, experts: numExperts, counts: counts)
    }

    /// The next step's counts, [L][E]; each layer sums to tokensPerStep × K.
    public mutating func nextStep() -> [[Double]] {
        var flat: [Double] = []
        flat.reserveCapacity(numLayers * numExperts)
        appendNextStep(to: &flat)
        return (0..<numLayers).map { Array(flat[($0 * numExperts)..<(($0 + 1) * numExperts)]) }
    }
}
