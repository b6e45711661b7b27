import PropertyBased
import Testing
import WideEPCPU
import WideEPCore
import WideEPRuntime
import WideEPTestSupport

@Suite struct MoELayerPropertyTests {
    /// A random small MoE config: either scoring mode, groups, shared experts with or without the Qwen2 gate.
    static func randomConfig(_ g: inout SplitMix64) -> MoEConfig {
        let sigmoid = Bool.random(using: &g)
        let e = [4, 6, 8, 12, 16].randomElement(using: &g)!
        var groups = 1, keep = 1
        if sigmoid {
            let options = (1...e).filter { e % $0 == 0 && e / $0 >= 2 }
            groups = options.randomElement(using: &g)!
            keep = Int.random(in: 1...groups, using: &g)
        }
        let topK = Int.random(in: 1...min(6, keep * (e / groups)), using: &g)
        let shared = Int.random(in: 0...2, using: &g)
        return MoEConfig(
            name: "random", numExperts: e, topK: topK, numGroups: groups, topKGroup: keep, numShared: shared,
            hiddenSize: [8, 12, 16, 20].randomElement(using: &g)!,
            moeIntermediateSize: [4, 8, 12].randomElement(using: &g)!,
            sharedIntermediateSize: [4, 8].randomElement(using: &g)!, numMoELayers: 1,
            routedScalingFactor: sigmoid ? 2.5 : 1, scoring: sigmoid ? .sigmoid : .softmax,
            normTopKProb: Bool.random(using: &g), hasCorrectionBias: sigmoid && Bool.random(using: &g),
            sharedExpertGate: shared > 0 && Bool.random(using: &g))
    }

    @Test func expertParallelOutputEqualsDenseReference() async throws {
        await propertyCheck(count: 40, input: Gen.int(in: 0...1_000_000)) { seed in
            var g = SplitMix64(seed: UInt64(seed))
            let config = Self.randomConfig(&g)
            #expect(throws: Never.self) { try config.validate() }
            let weights = MoELayerWeights.random(config: config, seed: UInt64(seed))
            let r = Int.random(in: 1...8, using: &g)
            let spr = (config.numExperts + r - 1) / r + Int.random(in: 0...2, using: &g)
            let placement: Placement
            if Bool.random(using: &g) || spr > config.numExperts {
                placement = try EPHarness.randomPlacement(
                    numExperts: config.numExperts, numRanks: r, slotsPerRank: spr, using: &g)
            } else {
                let loads = (0..<config.numExperts).map { _ in Double.random(in: 0...10, using: &g) }
                placement = try Planner.planLayer(
                    loads: loads, request: PlannerRequest(numSlots: spr * r, topology: Topology(numRanks: r)))
            }
            let policy = SplitPolicy.allCases.randomElement(using: &g)!
            let h = config.hiddenSize
            let tokens = (0..<r).map { _ in Int.random(in: 0...10, using: &g) }
            let inputs = tokens.map { t in (0..<(t * h)).map { _ in Float.random(in: -2...2, using: &g) } }
            let offset: [Float]? = Bool.random(using: &g)
                ? (0..<config.numExperts).map { _ in Float.random(in: -1...1, using: &g) } : nil
            let outputs = try EPHarness.run(
                weights: weights, placement: placement, inputs: inputs, policy: policy, logitOffset: offset)
            let all = inputs.flatMap { $0 }
            let reference = DenseMoEReference.forward(
                weights: weights, hidden: all, tokens: all.count / h, logitOffset: offset)
            let ep = outputs.flatMap { $0 }
            #expect(ep.count == reference.count)
            let err = MoEMath.relativeError(ep, reference)
            #expect(err <= 1e-5, "seed \(seed): R=\(r) slots/rank=\(spr) \(policy) \(config) rel err \(err)")
        }
    }

    @Test func referenceIsNotTrivial() throws {
        // Guards the property above against a degenerate reference (all zeros would match a broken EP path).
        var g = SplitMix64(seed: 3)
        let c = Self.randomConfig(&g)
        let w = MoELayerWeights.random(config: c, seed: 3)
        let x = (0..<(4 * c.hiddenSize)).map { _ in Float.random(in: -1...1, using: &g) }
        let y = DenseMoEReference.forward(weights: w, hidden: x, tokens: 4)
        #expect(y.contains { abs($0) > 1e-3 })
    }
}
