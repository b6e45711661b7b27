import Testing
import WideEPCore
import WideEPTestSupport

@Suite struct PlacementEvaluatorTests {
    @Test func realizedImbalanceMatchesAHandComputedStep() throws {
        // 2 ranks, expert 0 replicated on both; rank loads under even split: [50+30, 50+10] = [80, 60].
        let p = try Placement(slotExpert: [0, 1, 0, 2], numExperts: 3, numRanks: 2)
        let steps: [[[Double]]] = [[[100, 30, 10]]]
        let even = try PlacementEvaluator.evaluate(placements: [p], steps: steps, split: .even)
        #expect(abs(even.mean - (80.0 - 70.0) / 70.0) < 1e-12)
        #expect(abs(even.balancedness - 70.0 / 80.0) < 1e-12)
        // Balanced split evens the ranks: 40 + 30 and 60 + 10.
        let balanced = try PlacementEvaluator.evaluate(placements: [p], steps: steps, split: .balanced)
        #expect(balanced.mean == 0)
    }

    @Test func balancedSplitNeverRealizesWorseThanEven() throws {
        var rng = SplitMix64(seed: 17)
        let req = PlannerRequest(numSlots: 40, topology: try Topology(numRanks: 8))
        let plan = try Planner.plan(loads: [PlanningFixtures.loads(32, &rng)], request: req)
        let steps = (0..<20).map { _ in [PlanningFixtures.loads(32, &rng)] }
        let even = try PlacementEvaluator.evaluateLayers(placements: plan, steps: steps, split: .even)[0]
        let balanced = try PlacementEvaluator.evaluateLayers(placements: plan, steps: steps, split: .balanced)[0]
        #expect(balanced.count == 20)
        for (b, e) in zip(balanced.ratios, even.ratios) { #expect(b <= e + 1e-12) }
    }

    @Test func shapeMismatchesAndBadCountsThrow() throws {
        let p = try Placement.identity(numExperts: 4, numRanks: 2)
        #expect(throws: PlacementError.self) {
            try PlacementEvaluator.evaluate(placements: [p], steps: [[[1, 2, 3]]], split: .even)
        }
        #expect(throws: PlacementError.self) {
            try PlacementEvaluator.evaluate(placements: [p], steps: [[[1, 2, 3, 4], [1, 2, 3, 4]]], split: .even)
        }
        #expect(throws: PlacementError.self) {
            try PlacementEvaluator.evaluate(placements: [p], steps: [[[1, -2, 3, 4]]], split: .even)
        }
    }
}
