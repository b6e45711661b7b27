import PropertyBased
import Testing
import WideEPCore
import WideEPTestSupport

@Suite struct MigrationTests {
    /// Loads that drift from `base` by a random factor per expert.
    static func drifted(_ base: [Double], _ rng: inout SplitMix64, by spread: Double) -> [Double] {
        base.map { ($0 * Double.random(in: (1 - spread)...(1 + spread), using: &rng)).rounded() }
    }

    @Test func migrationAwareNeedsFewerMovesThanFromScratch() async {
        await propertyCheck(count: 30, input: Gen.int(in: 0...1_000_000)) { seed in
            var rng = SplitMix64(seed: UInt64(seed))
            let topo = try! Topology(numRanks: 8, numNodes: 2)
            let req = PlannerRequest(numSlots: 72, topology: topo)
            let old = PlanningFixtures.loads(64, &rng, sigma: 0.8)
            let current = try! Planner.planLayer(loads: old, request: req)
            let new = Self.drifted(old, &rng, by: 0.3)
            let scratch = try! Planner.planLayer(loads: new, request: req)
            let aware = try! Planner.planLayer(loads: new, request: req, current: current)
            #expect(PlanningFixtures.invariantsHold(aware, experts: 64, slots: 72, ranks: 8))
            #expect(current.moves(to: aware) <= current.moves(to: scratch))
            let mean = new.reduce(0, +) / 8
            let gap = (PlanningFixtures.peak(aware, new) - PlanningFixtures.peak(scratch, new)) / mean
            #expect(gap <= req.migrationTolerance + 1e-9, "imbalance gap \(gap) beyond the tolerance")
        }
    }

    @Test func unchangedLoadsNeedNoMoves() throws {
        var rng = SplitMix64(seed: 4)
        let loads = [PlanningFixtures.loads(32, &rng), PlanningFixtures.loads(32, &rng)]
        let req = PlannerRequest(numSlots: 40, topology: try Topology(numRanks: 4))
        let current = try Planner.plan(loads: loads, request: req)
        let again = try Planner.plan(loads: loads, request: req, current: current)
        #expect(again == current)
        let summary = try PlanSummary.summarize(loads: loads, before: current, after: again)
        #expect(summary.totalMoves == 0)
        #expect(summary.meanImbalanceAfter == summary.meanImbalanceBefore)
    }

    @Test(arguments: [PlannerPolicy.greedy, .deepseek])
    func baselinesWithCurrentKeepRankContentsButAlignSlots(policy: PlannerPolicy) throws {
        var rng = SplitMix64(seed: 21)
        let req = PlannerRequest(numSlots: 40, topology: try Topology(numRanks: 4, numNodes: 2), policy: policy,
                                 numExpertGroups: 4)
        let old = PlanningFixtures.loads(32, &rng)
        let current = try Planner.planLayer(loads: old, request: req)
        let new = Self.drifted(old, &rng, by: 0.2)
        let fresh = try Planner.planLayer(loads: new, request: req)
        let aligned = try Planner.planLayer(loads: new, request: req, current: current)
        #expect(current.moves(to: aligned) <= current.moves(to: fresh))
        // Same multiset of rank loads: alignment only permutes ranks and slots.
        #expect(fresh.rankLoads(expertLoads: new).sorted() == aligned.rankLoads(expertLoads: new).sorted())
    }

    @Test func summaryReportsPredictedImbalanceBeforeAndAfter() throws {
        let loads: [[Double]] = [[400, 100, 100, 100, 100, 100, 100, 100]]
        let req = PlannerRequest(numSlots: 12, topology: try Topology(numRanks: 4))
        // Even split: ranks carry 300, 250, 400, 150 (mean 275).
        let before = [try Placement(slotExpert: [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3], numExperts: 8, numRanks: 4)]
        let after = try Planner.plan(loads: loads, request: req)
        let s = try PlanSummary.summarize(loads: loads, before: before, after: after)
        #expect(abs(s.layers[0].imbalanceBefore - 125.0 / 275.0) < 1e-12)
        #expect(abs(s.layers[0].balancednessBefore - 275.0 / 400.0) < 1e-12)
        #expect(s.layers[0].imbalanceAfter < s.layers[0].imbalanceBefore)
        #expect(s.totalMoves == before[0].moves(to: after[0]))
        #expect(throws: PlacementError.self) { try PlanSummary.summarize(loads: loads, before: before, after: []) }
    }

    @Test func migrationPlanCopiesFromStablePeersFirst() throws {
        // 3 slots per rank; nodes: {r0, r1}, {r2, r3}.
        let topo = try Topology(numRanks: 4, numNodes: 2)
        let old = try Placement(slotExpert: [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3], numExperts: 8, numRanks: 4)
        let new = try Placement(slotExpert: [0, 1, 2, 0, 4, 5, 6, 7, 0, 4, 6, 3], numExperts: 8, numRanks: 4)
        let plan = try MigrationPlan.between(old: [old], new: [new], topology: topo, bytesPerSlot: 100)
        #expect(plan.moves == 3 && plan.moves == old.moves(to: new))
        #expect(plan.bytes == 300)
        let bySlot = Dictionary(uniqueKeysWithValues: plan.copies.map { ($0.slot, $0) })
        #expect(bySlot[3] == MigrationPlan.Copy(layer: 0, slot: 3, newExpert: 0, source: .peer(slot: 0)))
        #expect(bySlot[9]?.source == .host)  // expert 4 lives only on node 0
        #expect(bySlot[10]?.source == .peer(slot: 6))
        #expect(plan.peerCopies == 2)
        #expect(plan.byLayer.count == 1 && plan.byLayer[0].count == plan.moves)
        #expect(throws: PlacementError.self) {
            try MigrationPlan.between(old: [old], new: [], topology: topo, bytesPerSlot: 1)
        }
    }
}
