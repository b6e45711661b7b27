import Foundation

extension TrafficGenerator {
    /// Mean reversion of the drift walk per step.
    static let walkReversion = 0.01

    /// Samples one step for every layer, appends it ([L × E]) and advances the drift walk.
    mutating func appendNextStep(to out: inout [Double]) {
        let e = numExperts
        let logits = mixLogits[mix(atStep: nextStepIndex)]
        let tokens = options.tokensPerStep
        var pi = [Double](repeating: 0, count: e)
        var counts = [Int](repeating: 0, count: e)
        for l in 0..<numLayers {
            let base = l * e
            // Softmax of the layer's log-popularity.
            var mx = -Double.infinity
            for x in 0..<e { mx = max(mx, logits[base + x] + walk[base + x]) }
            var sum = 0.0
            for x in 0..<e {
                let v = Foundation.exp(logits[base + x] + walk[base + x] - mx)
                pi[x] = v
                sum += v
            }
            for x in 0..<e { pi[x] /= sum }
            Self.inclusionProbabilities(&pi, k: topK)
            sampleCounts(pi: pi, tokens: tokens, into: &counts)
            for x in 0..<e { out.append(Double(counts[x])) }
        }
        let drift = options.drift
        if drift > 0 {
            for i in 0..<walk.count { walk[i] = walk[i] * (1 - Self.walkReversion) + drift * rng.normal() }
        }
        nextStepIndex += 1
    }

    /// Turns popularity p (Σp = 1) into inclusion probabilities π = min(1, c·p) with Σπ = k, in place: an expert
    /// can be chosen by a token at most once.
    static func inclusionProbabilities(_ p: inout [Double], k: Int) {
        let e = p.count
        var capped = [Bool](repeating: false, count: e)
        var nCapped = 0
        while true {
            var free = 0.0
            for x in 0..<e where !capped[x] { free += p[x] }
            let c = free > 0 ? Double(k - nCapped) / free : 0
            var newlyCapped = false
            for x in 0..<e where !capped[x] && c * p[x] >= 1 {
                capped[x] = true
                nCapped += 1
                newlyCapped = true
            }
            if !newlyCapped {
                for x in 0..<e { p[x] = capped[x] ? 1 : c * p[x] }
                return
            }
        }
    }

    /// Multinomial of tokens × K draws over π / K by sequential binomials, each expert capped at `tokens`; the
    /// counts sum to exactly tokens × K.
    mutating func sampleCounts(pi: [Double], tokens: Int, into counts: inout [Int]) {
        let e = pi.count
        var remaining = tokens * topK
        var mass = 0.0
        for x in 0..<e { mass += pi[x] }
        for x in 0..<e {
            if remaining == 0 || mass <= 0 { counts[x] = 0; continue }
            let q = x == e - 1 ? 1 : min(1, pi[x] / mass)
            let n = min(tokens, rng.binomial(remaining, q))
            counts[x] = n
            remaining -= n
            mass -= pi[x]
        }
        // Leftovers (only when caps bit): to the experts with room, in id order.
        var x = 0
        while remaining > 0 && x < e {
            let add = min(remaining, tokens - counts[x])
            counts[x] += add
            remaining -= add
            x += 1
        }
    }
}
