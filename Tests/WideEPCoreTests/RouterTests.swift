import Testing
import WideEPCore
import WideEPTestSupport

@Suite struct RouterTests {
    /// Straightforward re-derivation of DeepSeek-V3 noaux_tc in Double, for comparison.
    static func referenceNoAux(_ logits: [Float], _ bias: [Float], _ c: MoEConfig) -> [(Int, Double)] {
        let s = logits.map { 1 / (1 + _exp(-Double($0))) }
        let choice = zip(s, bias).map { $0 + Double($1) }
        let per = c.numExperts / c.numGroups
        let gScore = (0..<c.numGroups).map { g -> Double in
            let top = choice[g * per..<(g + 1) * per].sorted(by: >)
            return top[0] + top[1]
        }
        let keptGroups = Set((0..<c.numGroups).sorted { gScore[$0] > gScore[$1] || (gScore[$0] == gScore[$1] && $0 < $1) }
            .prefix(c.topKGroup))
        let candidates = (0..<c.numExperts).filter { keptGroups.contains($0 / per) }
        let chosen = candidates.sorted { choice[$0] > choice[$1] || (choice[$0] == choice[$1] && $0 < $1) }
            .prefix(c.topK)
        let sum = chosen.reduce(0.0) { $0 + s[$1] }
        return chosen.map { ($0, s[$0] / sum * Double(c.routedScalingFactor)) }
    }

    static func _exp(_ x: Double) -> Double {
        var term = 1.0, sum = 1.0
        let n = (x / 0.6931471805599453).rounded()
        let r = x - n * 0.6931471805599453
        for i in 1...25 { term *= r / Double(i); sum += term }
        return sum * Double(sign: .plus, exponent: Int(n), significand: 1)
    }

    @Test func deepSeekNoAuxMatchesDoubleReference() {
        var rng = SplitMix64(seed: 7)
        let c = MoEConfig.deepseekV3Mini
        for _ in 0..<50 {
            let logits = (0..<c.numExperts).map { _ in Float.random(in: -3...3, using: &rng) }
            let bias = (0..<c.numExperts).map { _ in Float.random(in: -0.2...0.2, using: &rng) }
            let out = Router.route(logits: logits, tokens: 1, bias: bias, config: c)
            let ref = Self.referenceNoAux(logits, bias, c)
            #expect(out.experts.map(Int.init) == ref.map(\.0))
            for (w, r) in zip(out.weights, ref) { #expect(abs(Double(w) - r.1) < 1e-5) }
            let sum = out.weights.reduce(0, +)
            #expect(abs(sum - c.routedScalingFactor) < 1e-4)
        }
    }

    @Test func softmaxTiesBreakTowardLowerIndex() {
        var c = MoEConfig.mixtral8x7B
        c.normTopKProb = false
        let logits: [Float] = [1, 2, 2, 0, 2, -1, 0, 0]
        let out = Router.route(logits: logits, tokens: 1, bias: nil, config: c)
        #expect(out.experts == [1, 2])
        #expect(abs(out.weights[0] - out.weights[1]) < 1e-7)
        c.normTopKProb = true
        let norm = Router.route(logits: logits, tokens: 1, bias: nil, config: c)
        #expect(abs(norm.weights[0] - 0.5) < 1e-6)
    }
}
