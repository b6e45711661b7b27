import RealModule

/// The exact CPU routing reference: router logits → top-K experts and their combine weights.
///
/// Tie-breaking, everywhere (groups and experts): the higher score wins; on equal scores the lower index wins.
/// Output for each token is ordered by selection score, best first. This ordering is part of the contract that the
/// GPU kernels reproduce.
public enum Router {
    /// Routes `tokens` rows of `logits` ([tokens, E], row-major) into `experts` and `weights` ([tokens, K] each).
    ///
    /// - Parameter bias: the selection-only correction bias [E] (`e_score_correction_bias`), used when the config
    ///   has `hasCorrectionBias`; ignored otherwise.
    public static func route(
        logits: UnsafeBufferPointer<Float>, tokens: Int, bias: UnsafeBufferPointer<Float>?, config: MoEConfig,
        experts: UnsafeMutableBufferPointer<Int32>, weights: UnsafeMutableBufferPointer<Float>
    ) {
        let e = config.numExperts, k = config.topK
        precondition(logits.count >= tokens * e && experts.count >= tokens * k && weights.count >= tokens * k)
        var scratch = RouterScratch(config: config)
        for t in 0..<tokens {
            scratch.routeToken(
                logits: logits.baseAddress! + t * e, bias: config.hasCorrectionBias ? bias?.baseAddress : nil,
                config: config, experts: experts.baseAddress! + t * k, weights: weights.baseAddress! + t * k)
        }
    }

    /// Array convenience for `route(logits:tokens:bias:config:experts:weights:)`.
    public static func route(logits: [Float], tokens: Int, bias: [Float]?, config: MoEConfig)
        -> (experts: [Int32], weights: [Float])
    {
        var ex = [Int32](repeating: 0, count: tokens * config.topK)
        var w = [Float](repeating: 0, count: tokens * config.topK)
        logits.withUnsafeBufferPointer { lp in
            ex.withUnsafeMutableBufferPointer { ep in
                w.withUnsafeMutableBufferPointer { wp in
                    if let bias {
                        bias.withUnsafeBufferPointer { bp in
                            route(logits: lp, tokens: tokens, bias: bp, config: config, experts: ep, weights: wp)
                        }
                    } else {
                        route(logits: lp, tokens: tokens, bias: nil, config: config, experts: ep, weights: wp)
                    }
                }
            }
        }
        return (ex, w)
    }
}

/// Per-thread scratch for routing one token at a time without allocating.
struct RouterScratch {
    var scores: [Float]
    var choice: [Float]
    var groupScore: [Float]
    var groupKept: [Bool]

    init(config: MoEConfig) {
        scores = [Float](repeating: 0, count: config.numExperts)
        choice = scores
        groupScore = [Float](repeating: 0, count: config.numGroups)
        groupKept = [Bool](repeating: false, count: config.numGroups)
    }

    /// `a` beats `b` when its score is higher, or equal with a lower index.
    @inline(__always)
    static func beats(_ sa: Float, _ ia: Int, _ sb: Float, _ ib: Int) -> Bool {
        sa > sb || (sa == sb && ia < ib)
    }

    mutating func routeToken(
        logits: UnsafePointer<Float>, bias: UnsafePointer<Float>?, config: MoEConfig,
        experts: UnsafeMutablePointer<Int32>, weights: UnsafeMutablePointer<Float>
    ) {
        let e = config.numExperts, k = config.topK
        switch config.scoring {
        case .softmax:
            var m = -Float.infinity
            for i in 0..<e { m = max(m, logits[i]) }
            var sum: Float = 0
            for i in 0..<e {
                let x = Float.exp(logits[i] - m)
                scores[i] = x
                sum += x
            }
            for i in 0..<e {
                scores[i] /= sum
                choice[i] = scores[i]
            }
        case .sigmoid:
            for i in 0..<e {
                let s = 1 / (1 + Float.exp(-logits[i]))
                scores[i] = s
                choice[i] = s + (bias?[i] ?? 0)
            }
        }
        let g = config.numGroups
        if g > 1 {
            // DeepSeek-V3 group-limited routing: a group's score is the sum of its two best choice scores.
            let per = e / g
            for gi in 0..<g {
                var b1 = -Float.infinity, b2 = -Float.infinity
                for j in 0..<per {
                    let s = choice[gi * per + j]
                    if s > b1 { b2 = b1; b1 = s } else if s > b2 { b2 = s }
                }
                groupScore[gi] = b1 + b2
                groupKept[gi] = false
            }
            for _ in 0..<config.topKGroup {
                var best = -1
                for gi in 0..<g where !groupKept[gi] {
                    if best < 0 || Self.beats(groupScore[gi], gi, groupScore[best], best) { best = gi }
                }
                groupKept[best] = true
            }
            // Experts of dropped groups can never be chosen (DeepSeek's reference masks them to -inf).
            for gi in 0..<g where !groupKept[gi] {
                for j in 0..<per { choice[gi * per + j] = -.infinity }
            }
        }
        // Partial selection sort: K is small (≤ 8 in practice), E up to a few hundred. A chosen or masked expert
        // holds -inf in `choice`; topK ≤ topKGroup × experts per group guarantees enough finite candidates.
        var sum: Float = 0
        for slot in 0..<k {
            var best = -1
            var bestScore = -Float.infinity
            for i in 0..<e {
                let s = choice[i]
                if s == -.infinity { continue }
                if best < 0 || Self.beats(s, i, bestScore, best) {
                    best = i
                    bestScore = s
                }
            }
            experts[slot] = Int32(best)
            weights[slot] = scores[best]
            sum += scores[best]
            choice[best] = -.infinity
        }
        let scale: Float
        if config.normTopKProb {
            scale = config.routedScalingFactor / (sum + 1e-20)
        } else {
            scale = config.routedScalingFactor
        }
        for slot in 0..<k { weights[slot] *= scale }
    }
}

