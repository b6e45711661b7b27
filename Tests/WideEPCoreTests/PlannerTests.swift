import PropertyBased
import Testing
@testable import WideEPCore
import WideEPTestSupport

@Suite struct PlannerTests {
    static let policies: [PlannerPolicy] = [.greedy, .deepseek, .balanced]

    @Test func everyPolicyKeepsEveryExpertReachableWithExactSlots() async {
        await propertyCheck(count: 60, input: Gen.int(in: 0...1_000_000)) { seed in
            var rng = SplitMix64(seed: UInt64(seed))
            let s = PlanningFixtures.shape(&rng)
            let topo = try! Topology(numRanks: s.ranks, numNodes: s.nodes)
            let loads = (0..<3).map { _ in PlanningFixtures.loads(s.experts, &rng) }
            for policy in Self.policies {
                let req = PlannerRequest(numSlots: s.slots, topology: topo, policy: policy, numExpertGroups: s.groups)
                let plan = try? Planner.plan(loads: loads, request: req)
                #expect(plan != nil, "\(policy) failed on \(s)")
                for p in plan ?? [] {
                    #expect(PlanningFixtures.invariantsHold(p, experts: s.experts, slots: s.slots, ranks: s.ranks))
                }
                // Re-planning from the previous layers' placements (migration-aware for balanced).
                guard let current = plan else { continue }
                let replanned = try? Planner.plan(loads: loads.reversed(), request: req, current: current)
                #expect(replanned != nil, "\(policy) re-planning failed on \(s)")
                for p in replanned ?? [] {
                    #expect(PlanningFixtures.invariantsHold(p, experts: s.experts, slots: s.slots, ranks: s.ranks))
                }
            }
        }
    }

    @Test(arguments: [PlannerPolicy.greedy, .deepseek, .balanced])
    func plannersAreDeterministic(policy: PlannerPolicy) throws {
        var rng = SplitMix64(seed: 11)
        let loads = (0..<4).map { _ in PlanningFixtures.loads(64, &rng) }
        let req = PlannerRequest(
            numSlots: 80, topology: try Topology(numRanks: 8, numNodes: 2), policy: policy, numExpertGroups: 8)
        let a = try Planner.plan(loads: loads, request: req)
        let b = try Planner.plan(loads: loads, request: req)
        #expect(a == b)
        let c = try Planner.planLayer(loads: loads[2], request: req, layer: 2)
        #expect(c == a[2])
    }

    @Test func noneIsTheIdentity() throws {
        let req = PlannerRequest(numSlots: 16, topology: try Topology(numRanks: 4), policy: .none)
        let p = try Planner.planLayer(loads: (0..<16).map(Double.init), request: req)
        #expect(p.slotExpert == (0..<16).map(Int32.init))
    }

    @Test func balancedNeverLosesToGreedyOnPredictedPeak() async {
        await propertyCheck(count: 40, input: Gen.int(in: 0...1_000_000)) { seed in
            var rng = SplitMix64(seed: UInt64(seed))
            let s = PlanningFixtures.shape(&rng)
            let topo = try! Topology(numRanks: s.ranks, numNodes: s.nodes)
            let loads = PlanningFixtures.loads(s.experts, &rng)
            let g = try! Planner.planLayer(loads: loads, request: PlannerRequest(numSlots: s.slots, topology: topo, policy: .greedy))
            let b = try! Planner.planLayer(loads: loads, request: PlannerRequest(numSlots: s.slots, topology: topo))
            #expect(PlanningFixtures.peak(b, loads) <= PlanningFixtures.peak(g, loads) * (1 + 1e-9))
        }
    }

    @Test func balancedReachesTheLowerBoundOnRealisticShapes() throws {
        var rng = SplitMix64(seed: 5)
        let topo = try Topology(numRanks: 32, numNodes: 4)
        var worst = 0.0
        for _ in 0..<5 {
            let loads = PlanningFixtures.loads(256, &rng, sigma: 0.8)
            let p = try Planner.planLayer(loads: loads, request: PlannerRequest(numSlots: 288, topology: topo))
            let mean = loads.reduce(0, +) / 32
            worst = max(worst, PlanningFixtures.peak(p, loads) / mean - 1)
        }
        #expect(worst < 0.01, "predicted imbalance \(worst) should be near 0 with 32 spare slots")
    }

    @Test func balancedLeavesNoRankWithoutAReplicatedSlot() throws {
        // A rank holding only single-replica experts cannot shed tokens through the balanced split.
        var rng = SplitMix64(seed: 12)
        let topo = try Topology(numRanks: 32, numNodes: 4)
        func rigidRanks(_ p: Placement) -> Int {
            (0..<32).filter { r in p.slots(ofRank: r).allSatisfy { p.replicaCount[Int($0)] == 1 } }.count
        }
        var greedyRigid = 0, balancedRigid = 0
        for _ in 0..<4 {
            let loads = PlanningFixtures.loads(256, &rng, sigma: 0.8)
            let g = try Planner.planLayer(loads: loads, request: PlannerRequest(numSlots: 288, topology: topo, policy: .greedy))
            let b = try Planner.planLayer(loads: loads, request: PlannerRequest(numSlots: 288, topology: topo))
            greedyRigid += rigidRanks(g)
            balancedRigid += rigidRanks(b)
            #expect(PlanningFixtures.peak(b, loads) <= PlanningFixtures.peak(g, loads) * (1 + 1e-9))
        }
        #expect(balancedRigid == 0, "balanced left \(balancedRigid) rigid ranks (greedy \(greedyRigid))")
        #expect(greedyRigid > 0)
    }

    @Test func greedyRepairsWhenOnlyRanksHoldingTheExpertHaveRoom() throws {
        // 2 ranks × 3 slots, 4 experts: expert 0 is hot and needs 2 replicas, expert 1 too; LPT fills one rank
        // with the light experts first in some orders. Every slot count must still come out valid.
        let topo = try Topology(numRanks: 2)
        for loads in [[100.0, 90, 1, 1], [100, 1, 1, 1], [5, 5, 5, 100], [0, 0, 0, 0]] {
            for policy in Self.policies {
                let req = PlannerRequest(numSlots: 6, topology: topo, policy: policy)
                let p = try Planner.planLayer(loads: loads, request: req)
                #expect(PlanningFixtures.invariantsHold(p, experts: 4, slots: 6, ranks: 2))
            }
        }
    }

    @Test func packingRepairFindsRoomOnRanksThatAlreadyHoldTheExpert() throws {
        // Rank 0 = [e0, free], rank 1 = [e1, e2] full; the second replica of e0 has only rank 0 open, which holds e0.
        let req = PlannerRequest(numSlots: 4, topology: try Topology(numRanks: 2))
        let state = PackingState(numExperts: 3, request: req)
        state.reset(loads: [10, 10, 10])
        state.count[0] = 2
        state.put(expert: 0, weight: 5, slot: 0); state.rankFill[0] = 1
        state.put(expert: 1, weight: 10, slot: 2); state.put(expert: 2, weight: 10, slot: 3); state.rankFill[1] = 2
        try state.packLPT(experts: [Int32](), ranks: 0..<2, layer: nil)  // nothing pending: no change
        try state.repair(expert: 0, weight: 5, ranks: 0..<2, layer: nil)
        let p = try state.makePlacement(layer: nil)
        #expect(PlanningFixtures.invariantsHold(p, experts: 3, slots: 4, ranks: 2))
        #expect(p.replicaCount[0] == 2)
        #expect(p.rankLoads(expertLoads: [10, 10, 10]) == [15, 15])
    }

    @Test func deepseekHierarchicalKeepsEachGroupOnOneNode() throws {
        var rng = SplitMix64(seed: 3)
        let loads = PlanningFixtures.loads(64, &rng)
        let topo = try Topology(numRanks: 8, numNodes: 4)
        let req = PlannerRequest(numSlots: 80, topology: topo, policy: .deepseek, numExpertGroups: 8)
        let p = try Planner.planLayer(loads: loads, request: req)
        for e in 0..<64 {
            let nodes = Set(p.replicas(of: e).map { topo.node(ofRank: p.rank(ofSlot: Int($0))) })
            #expect(nodes.count == 1, "expert \(e) spans nodes \(nodes)")
        }
        // Two groups per node.
        var groupsPerNode = [Set<Int>](repeating: [], count: 4)
        for s in 0..<80 { groupsPerNode[topo.node(ofRank: p.rank(ofSlot: s))].insert(Int(p.slotExpert[s]) / 8) }
        #expect(groupsPerNode.allSatisfy { $0.count == 2 })
    }

    @Test func nodeAwareBalancedKeepsNodeLoadsEven() throws {
        var rng = SplitMix64(seed: 8)
        let topo = try Topology(numRanks: 16, numNodes: 4)
        for _ in 0..<4 {
            let loads = PlanningFixtures.loads(128, &rng, sigma: 1.0)
            let p = try Planner.planLayer(loads: loads, request: PlannerRequest(numSlots: 144, topology: topo))
            let ranks = p.rankLoads(expertLoads: loads)
            let nodes = (0..<4).map { n in ranks[(n * 4)..<((n + 1) * 4)].reduce(0, +) }
            #expect(Imbalance.ratio(nodes) < 0.0035, "node imbalance \(Imbalance.ratio(nodes))")
        }
    }

    @Test func sameRankReplicasOnlyWhenAllowed() throws {
        // One dominant expert on 2 ranks × 4 slots: allowing same-rank replicas lets it take more than 2 slots.
        let topo = try Topology(numRanks: 2)
        let loads = [1000.0, 1, 1, 1]
        let strict = try Planner.planLayer(loads: loads, request: PlannerRequest(numSlots: 8, topology: topo))
        #expect(strict.replicaCount[0] == 2)
        let loose = try Planner.planLayer(
            loads: loads, request: PlannerRequest(numSlots: 8, topology: topo, allowSameRankReplicas: true))
        #expect(loose.replicaCount[0] == 5)
        #expect(PlanningFixtures.invariantsHold(loose, experts: 4, slots: 8, ranks: 2, allowSameRank: true))
    }

    @Test func badRequestsAndLoadsThrowClearErrors() throws {
        let topo = try Topology(numRanks: 4)
        let loads = [[Double]](repeating: [1, 2, 3, 4, 5, 6, 7, 8], count: 2)
        #expect(throws: PlacementError.slotsNotDivisible(layer: nil, numSlots: 10, numRanks: 4)) {
            try Planner.plan(loads: loads, request: PlannerRequest(numSlots: 10, topology: topo))
        }
        #expect(throws: PlacementError.tooFewSlots(layer: nil, numSlots: 4, numExperts: 8)) {
            try Planner.plan(loads: loads, request: PlannerRequest(numSlots: 4, topology: topo))
        }
        let negative = PlannerRequest(numSlots: 8, topology: topo)
        #expect(throws: PlacementError.invalidArgument("layer 1: load of expert 2 is -1.0; loads must be finite and >= 0")) {
            try Planner.plan(loads: [loads[0], [1, 2, -1, 4, 5, 6, 7, 8]], request: negative)
        }
        #expect(throws: PlacementError.self) { try Planner.plan(loads: [loads[0], [1, .nan, 1, 1, 1, 1, 1, 1]], request: negative) }
        #expect(throws: PlacementError.invalidArgument("layer 1: loads have 3 experts but layer 0 has 8")) {
            try Planner.plan(loads: [loads[0], [1, 2, 3]], request: negative)
        }
        let current = try Planner.plan(loads: loads, request: negative)
        #expect(throws: PlacementError.invalidArgument("current placement has 1 layers but the loads have 2")) {
            try Planner.plan(loads: loads, request: negative, current: [current[0]])
        }
        #expect(throws: PlacementError.self) {
            try Planner.plan(loads: loads, request: PlannerRequest(numSlots: 12, topology: topo, policy: .none))
        }
        #expect(throws: PlacementError.self) { try Planner.plan(loads: [], request: negative) }
        let description = PlacementError.slotsNotDivisible(layer: 3, numSlots: 290, numRanks: 32).description
        #expect(description == "layer 3: slot count 290 is not divisible by ep-size 32")
    }
}
