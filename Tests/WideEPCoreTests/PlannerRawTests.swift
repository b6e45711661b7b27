import PropertyBased
import Testing
@testable import WideEPCore
import WideEPTestSupport

/// The C ABI's fast path (`RawLayerPlanner`) and the planners' sorting and DeepSeek kernels against plain references.
@Suite struct PlannerRawTests {
    /// Plans every layer with `RawLayerPlanner` into DeepSeek-layout rows.
    static func rawPlan(_ loads: [[Double]], _ req: PlannerRequest, current: [Placement]?) throws
        -> (phy2log: [[Int64]], logcnt: [[Int64]])
    {
        let e = loads[0].count
        let planner = try RawLayerPlanner(numExperts: e, request: req)
        var tables: [[Int64]] = [], counts: [[Int64]] = []
        for (l, row) in loads.enumerated() {
            var table = [Int64](repeating: -7, count: req.numSlots)
            var count = [Int64](repeating: -7, count: e)
            try row.withUnsafeBufferPointer { loadRow in
                try table.withUnsafeMutableBufferPointer { t in
                    try count.withUnsafeMutableBufferPointer { c in
                        try planner.plan(
                            loads: loadRow, current: current?[l], layer: l, phy2log: t.baseAddress!,
                            logcnt: c.baseAddress!)
                    }
                }
            }
            tables.append(table)
            counts.append(count)
        }
        return (tables, counts)
    }

    @Test func rawPlannerEqualsPlannerForEveryPolicyWithAndWithoutCurrent() async {
        await propertyCheck(count: 40, input: Gen.int(in: 0...1_000_000)) { seed in
            var rng = SplitMix64(seed: UInt64(seed))
            let s = PlanningFixtures.shape(&rng)
            let topo = try! Topology(numRanks: s.ranks, numNodes: s.nodes)
            let loads = (0..<3).map { _ in PlanningFixtures.loads(s.experts, &rng) }
            for policy in PlannerPolicy.allCases where policy != .none || s.slots == s.experts {
                for sameRank in [false, true] {
                    let req = PlannerRequest(
                        numSlots: s.slots, topology: topo, policy: policy, numExpertGroups: s.groups,
                        allowSameRankReplicas: sameRank)
                    guard let plan = try? Planner.plan(loads: loads, request: req) else {
                        #expect(Bool(false), "\(policy) failed on \(s)")
                        continue
                    }
                    for current in [nil, Array(plan.reversed())] {
                        let expected = current == nil ? plan : try! Planner.plan(
                            loads: loads, request: req, current: current)
                        let raw = try! Self.rawPlan(loads, req, current: current)
                        for l in 0..<loads.count {
                            #expect(raw.phy2log[l] == expected[l].slotExpert.map(Int64.init), "\(policy) \(s) l\(l)")
                            #expect(raw.logcnt[l] == expected[l].replicaCount.map(Int64.init))
                        }
                    }
                }
            }
        }
    }

    @Test func rawPlannerEqualsPlannerAtDeepSeekV3Shapes() throws {
        var rng = SplitMix64(seed: 5)
        let loads = (0..<4).map { _ in PlanningFixtures.loads(256, &rng, sigma: 1.5) }
        for (ranks, nodes) in [(32, 4), (72, 9)] {
            for policy in [PlannerPolicy.greedy, .deepseek, .balanced] {
                let req = PlannerRequest(
                    numSlots: 288, topology: try Topology(numRanks: ranks, numNodes: nodes), policy: policy,
                    numExpertGroups: 8, allowSameRankReplicas: policy == .deepseek)
                let expected = try Planner.plan(loads: loads, request: req)
                let raw = try Self.rawPlan(loads, req, current: nil)
                #expect(raw.phy2log == expected.map { $0.slotExpert.map(Int64.init) }, "\(policy) EP\(ranks)")
            }
        }
    }

    @Test func keySortOrdersLikeTheStandardSort() {
        var rng = SplitMix64(seed: 9)
        for n in [0, 1, 2, 17, 32, 33, 72, 128, 129, 256, 1000] {
            for pattern in 0..<5 {
                var keys: [UInt64] = (0..<n).map { i in
                    switch pattern {
                    case 0: return rng.next()
                    case 1: return (rng.next() & 0xFFFF_0000_0000_0000) | UInt64(i)  // high halves tie a lot
                    case 2: return UInt64(i) << 32 | UInt64(n - i)  // ascending
                    // Upper 16 bits in runs of 3 (few ties per bucket: the radix sort may skip the low digits and
                    // leave each run's order to the insertion pass).
                    case 3: return UInt64((i / 3) &* 40_503 & 0xFFFF) << 48 | (rng.next() & 0xFFFF_FFFF_FFFF)
                    default: return rng.next() % 5  // duplicates, high halves all zero
                    }
                }
                let expected = keys.sorted(by: >)
                keys.withUnsafeMutableBufferPointer { KeySort.descending($0.baseAddress!, count: n) }
                #expect(keys == expected, "n \(n) pattern \(pattern)")
            }
        }
    }

    /// DeepSeek's algorithm written the plain way (linear scans and a stable sort), as the exact kernel replaced.
    static func referenceDeepSeekTable(loads: [Double], slots: Int, groups: Int, nodes: Int, gpus: Int) -> [Int32] {
        func packing(_ items: [Float], _ packs: Int) -> ([Int], [Int]) {
            let per = items.count / packs
            if per == 1 { return (Array(items.indices), [Int](repeating: 0, count: items.count)) }
            let order = items.indices.sorted { items[$0] > items[$1] || (items[$0] == items[$1] && $0 < $1) }
            var weight = [Float](repeating: 0, count: packs), fill = [Int](repeating: 0, count: packs)
            var pack = [Int](repeating: 0, count: items.count), rank = pack
            for i in order {
                var best = -1
                for p in 0..<packs where fill[p] < per && (best < 0 || weight[p] < weight[best]) { best = p }
                pack[i] = best; rank[i] = fill[best]
                weight[best] += items[i]; fill[best] += 1
            }
            return (pack, rank)
        }
        let e = loads.count
        let g = groups % nodes == 0 ? groups : 1, n = groups % nodes == 0 ? nodes : 1
        let w = loads.map { Float($0) }
        let gs = e / g, epn = e / n, spn = slots / n
        var groupLoad = [Float](repeating: 0, count: g)
        for x in 0..<e { groupLoad[x / gs] += w[x] }
        let (gp, gr) = packing(groupLoad, n)
        var mlog2log = [Int](repeating: 0, count: e)
        for x in 0..<e { mlog2log[(gp[x / gs] * (g / n) + gr[x / gs]) * gs + x % gs] = x }
        var table = [Int32](repeating: -1, count: slots)
        for node in 0..<n {
            let local = (0..<epn).map { w[mlog2log[node * epn + $0]] }
            var phy = Array(0..<epn), count = [Float](repeating: 1, count: epn)
            for _ in epn..<spn {
                var best = 0
                for i in 1..<epn where local[i] / count[i] > local[best] / count[best] { best = i }
                phy.append(best)
                count[best] += 1
            }
            let (pack, rank) = packing(phy.map { local[$0] / count[$0] }, gpus / n)
            for (k, m) in phy.enumerated() {
                table[node * spn + pack[k] * (slots / gpus) + rank[k]] = Int32(mlog2log[node * epn + m])
            }
        }
        return table
    }

    @Test func exactDeepSeekKernelEqualsTheLinearScanAlgorithm() throws {
        var rng = SplitMix64(seed: 21)
        for (slots, ranks, nodes, experts) in [(288, 32, 4, 256), (288, 72, 9, 256), (40, 8, 2, 32), (24, 4, 1, 16)] {
            let req = PlannerRequest(
                numSlots: slots, topology: try Topology(numRanks: ranks, numNodes: nodes), policy: .deepseek,
                numExpertGroups: 8, allowSameRankReplicas: true)
            let state = PackingState(numExperts: experts, request: req)
            for trial in 0..<6 {
                // Continuous loads, then small integer counts full of ties.
                let loads = trial % 2 == 0
                    ? PlanningFixtures.loads(experts, &rng)
                    : (0..<experts).map { _ in Double(rng.next() % 4) }
                state.reset(loads: loads)
                DeepSeekPlanner.exactPlan(state: state, groups: 8)
                let expected = Self.referenceDeepSeekTable(
                    loads: loads, slots: slots, groups: 8, nodes: nodes, gpus: ranks)
                #expect(Array(state.slotExpert) == expected, "EP\(ranks) trial \(trial)")
            }
        }
    }

    @Test func spreadRiskLowersTheWorstRiskWithoutRaisingThePeak() throws {
        var rng = SplitMix64(seed: 33)
        func worstRisk(_ state: PackingState, _ kappa: Double) -> Double {
            var worst = 0.0
            for r in 0..<state.numRanks {
                var q = 0.0
                for s in (r * state.slotsPerRank)..<((r + 1) * state.slotsPerRank) { q += state.slotWeight[s] * state.slotWeight[s] }
                worst = max(worst, state.rankLoad[r] + kappa * q.squareRoot())
            }
            return worst
        }
        var improved = 0
        for (ranks, nodes) in [(72, 9), (32, 4), (8, 1)] {
            let req = PlannerRequest(numSlots: 288, topology: try Topology(numRanks: ranks, numNodes: nodes))
            let state = PackingState(numExperts: 256, request: req)
            for _ in 0..<5 {
                state.reset(loads: PlanningFixtures.loads(256, &rng, sigma: 1.2))
                let order = state.replicateOrdered(slots: 288, cap: state.replicaCap)
                try state.packLPT(experts: order, ranks: 0..<ranks, layer: nil)
                let peak = state.maxRankLoad, before = worstRisk(state, 0.1)
                let table = Array(state.slotExpert)
                state.spreadRisk(kappa: 0.1, cap: peak, maxRounds: 2 * ranks, partners: ranks, nodeAware: false)
                #expect(state.maxRankLoad <= peak * (1 + 1e-12))
                let after = worstRisk(state, 0.1)
                #expect(after <= before * (1 + 1e-12))
                if after < before { improved += 1 }
                // Only exchanges: every expert keeps its replica count, and no rank holds an expert twice.
                #expect(table.sorted() == Array(state.slotExpert).sorted())
                let placement = try state.makePlacement(layer: nil)
                #expect(PlanningFixtures.invariantsHold(placement, experts: 256, slots: 288, ranks: ranks))
            }
        }
        #expect(improved > 0)
    }
}
