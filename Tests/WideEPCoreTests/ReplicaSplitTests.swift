import PropertyBased
import Testing
import WideEPCore
import WideEPTestSupport

@Suite struct ReplicaSplitTests {
    /// A random valid placement and per-expert counts for a small shape.
    static func randomCase(_ rng: inout SplitMix64, scale: Int = 1000) -> (Placement, [Int]) {
        let s = PlanningFixtures.shape(&rng)
        let topo = try! Topology(numRanks: s.ranks, numNodes: s.nodes)
        let plan = try! Planner.planLayer(
            loads: PlanningFixtures.loads(s.experts, &rng), request: PlannerRequest(numSlots: s.slots, topology: topo))
        // Counts from different loads than the plan: the split must fix per-batch noise.
        let counts = PlanningFixtures.loads(s.experts, &rng).map { Int($0) * scale / 1000 }
        return (plan, counts)
    }

    /// Smallest integer max rank load of any split: bisection over T with a max-flow feasibility check.
    static func optimalPeak(_ p: Placement, _ counts: [Int]) -> Int {
        var lo = 0, hi = counts.reduce(0, +)
        while lo < hi {
            let mid = (lo + hi) / 2
            if MaxFlow.feasible(placement: p, counts: counts, rankCapacity: mid) { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    @Test(arguments: SplitPolicy.allCases)
    func splitConservesTokensAndRespectsReplicas(policy: SplitPolicy) async {
        await propertyCheck(count: 60, input: Gen.int(in: 0...1_000_000)) { seed in
            var rng = SplitMix64(seed: UInt64(seed))
            let (p, counts) = Self.randomCase(&rng)
            let q = ReplicaSplit.quotas(expertCounts: counts, placement: p, policy: policy)
            #expect(q.count == p.numSlots)
            #expect(q.allSatisfy { $0 >= 0 })
            for e in 0..<p.numExperts {
                #expect(p.replicas(of: e).reduce(0) { $0 + q[Int($1)] } == counts[e])
            }
            #expect(ReplicaSplit.rankLoads(quotas: q, placement: p).reduce(0, +) == Double(counts.reduce(0, +)))
        }
    }

    @Test func evenSplitIsRoundRobinWithRemainderFirst() throws {
        let p = try Placement(slotExpert: [0, 1, 0, 2, 0, 3], numExperts: 4, numRanks: 3)
        let q = ReplicaSplit.quotas(expertCounts: [10, 4, 5, 6], placement: p, policy: .even)
        #expect(q == [4, 4, 3, 5, 3, 6])
    }

    @Test func balancedSplitIsWithinOnePercentOfTheMaxFlowOptimum() async {
        await propertyCheck(count: 60, input: Gen.int(in: 0...1_000_000)) { seed in
            var rng = SplitMix64(seed: UInt64(seed))
            let (p, counts) = Self.randomCase(&rng)
            let even = ReplicaSplit.rankLoads(
                quotas: ReplicaSplit.quotas(expertCounts: counts, placement: p, policy: .even), placement: p).max()!
            let balanced = ReplicaSplit.rankLoads(
                quotas: ReplicaSplit.quotas(expertCounts: counts, placement: p, policy: .balanced), placement: p).max()!
            let optimum = Double(Self.optimalPeak(p, counts))
            #expect(balanced <= even)
            #expect(balanced >= optimum)
            #expect(balanced <= optimum * 1.01, "balanced \(balanced) vs optimum \(optimum)")
        }
    }

    @Test func balancedSplitIsNearOptimalAtDeepSeekScale() throws {
        // 256 experts on 32 ranks with 288 slots, placement planned on other loads: the split must fix the drift.
        var rng = SplitMix64(seed: 77)
        let topo = try Topology(numRanks: 32, numNodes: 4)
        for _ in 0..<3 {
            let p = try Planner.planLayer(
                loads: PlanningFixtures.loads(256, &rng, sigma: 0.8), request: PlannerRequest(numSlots: 288, topology: topo))
            let counts = PlanningFixtures.loads(256, &rng, sigma: 0.8).map { Int($0) }
            let q = ReplicaSplit.quotas(expertCounts: counts, placement: p, policy: .balanced)
            let peak = ReplicaSplit.rankLoads(quotas: q, placement: p).max()!
            let optimum = Double(Self.optimalPeak(p, counts))
            #expect(peak <= optimum * 1.01, "balanced \(peak) vs optimum \(optimum)")
        }
    }

    @Test func balancedSplitMovesTokensToTheLighterReplica() throws {
        // Expert 0 on ranks 0 and 1; rank 0 also carries expert 1's 100 tokens.
        let p = try Placement(slotExpert: [0, 1, 0, 2], numExperts: 3, numRanks: 2)
        let q = ReplicaSplit.quotas(expertCounts: [100, 100, 0], placement: p, policy: .balanced)
        #expect(q == [0, 100, 100, 0])
    }

    @Test func allocationFreeVariantMatchesTheArrayAPI() {
        var rng = SplitMix64(seed: 99)
        var scratch = ReplicaSplit.Scratch()
        for _ in 0..<20 {
            let (p, counts) = Self.randomCase(&rng)
            for policy in SplitPolicy.allCases {
                let expected = ReplicaSplit.quotas(expertCounts: counts, placement: p, policy: policy).map(Int32.init)
                var out = [Int32](repeating: -7, count: p.numSlots)
                let c32 = counts.map(Int32.init)
                c32.withUnsafeBufferPointer { c in
                    out.withUnsafeMutableBufferPointer { o in
                        ReplicaSplit.quotas(expertCounts: c, placement: p, policy: policy, scratch: &scratch, into: o)
                    }
                }
                #expect(out == expected)
            }
        }
    }

    @Test func mapTokensGivesEverySlotExactlyItsQuotaAcrossRanks() async {
        await propertyCheck(count: 40, input: Gen.int(in: 0...1_000_000)) { seed in
            var rng = SplitMix64(seed: UInt64(seed))
            let (p, _) = Self.randomCase(&rng)
            let ranks = p.numRanks, k = min(4, p.numExperts), tokens = Int.random(in: 1...40, using: &rng)
            // Random routing on each rank, K distinct experts per token.
            let routed: [[Int32]] = (0..<ranks).map { _ in
                (0..<tokens).flatMap { _ in Array((0..<p.numExperts).shuffled(using: &rng).prefix(k)).map(Int32.init) }
            }
            var perRank = [[Int32]](repeating: [Int32](repeating: 0, count: p.numExperts), count: ranks)
            for r in 0..<ranks { for e in routed[r] { perRank[r][Int(e)] += 1 } }
            let counts = (0..<p.numExperts).map { e in perRank.reduce(0) { $0 + Int($1[e]) } }
            let policy = Bool.random(using: &rng) ? SplitPolicy.balanced : .even
            let quotas = ReplicaSplit.quotas(expertCounts: counts, placement: p, policy: policy).map(Int32.init)
            var received = [Int32](repeating: 0, count: p.numSlots)
            var offsets = [Int32](repeating: 0, count: p.numExperts)
            for r in 0..<ranks {
                let slots = ReplicaSplit.mapTokens(
                    experts: routed[r], rankOffsets: offsets, quotas: quotas, placement: p)
                for (i, s) in slots.enumerated() {
                    #expect(p.slotExpert[Int(s)] == routed[r][i], "slot must hold the routed expert")
                    received[Int(s)] += 1
                }
                for e in 0..<p.numExperts { offsets[e] += perRank[r][e] }
            }
            #expect(received == quotas)
        }
    }

    @Test func mapTokensOrdersOccurrencesByRankThenTokenThenK() throws {
        // Expert 0 has replicas in slots 0 and 2 with quotas 3 and 2; this rank holds occurrences 2, 3, 4.
        let p = try Placement(slotExpert: [0, 1, 0, 2], numExperts: 3, numRanks: 2)
        let slots = ReplicaSplit.mapTokens(
            experts: [0, 1, 0, 2, 0, 1], rankOffsets: [2, 0, 0], quotas: [3, 2, 2, 1], placement: p)
        #expect(slots == [0, 1, 2, 3, 2, 1])
    }
}

/// Dinic max-flow for the split reference: source → expert (count) → ranks holding it → sink (capacity T).
enum MaxFlow {
    static func feasible(placement p: Placement, counts: [Int], rankCapacity: Int) -> Bool {
        let e = p.numExperts, r = p.numRanks
        let n = e + r + 2, src = e + r, dst = e + r + 1
        var to: [Int] = [], cap: [Int] = [], head = [Int](repeating: -1, count: n), next: [Int] = []
        func add(_ a: Int, _ b: Int, _ c: Int) {
            to.append(b); cap.append(c); next.append(head[a]); head[a] = to.count - 1
            to.append(a); cap.append(0); next.append(head[b]); head[b] = to.count - 1
        }
        let total = counts.reduce(0, +)
        for x in 0..<e {
            add(src, x, counts[x])
            for rank in Set(p.replicas(of: x).map { p.rank(ofSlot: Int($0)) }) { add(x, e + rank, total) }
        }
        for rank in 0..<r { add(e + rank, dst, rankCapacity) }
        var flow = 0
        while true {
            var level = [Int](repeating: -1, count: n)
            level[src] = 0
            var queue = [src], qi = 0
            while qi < queue.count {
                let v = queue[qi]; qi += 1
                var a = head[v]
                while a >= 0 {
                    if cap[a] > 0 && level[to[a]] < 0 { level[to[a]] = level[v] + 1; queue.append(to[a]) }
                    a = next[a]
                }
            }
            if level[dst] < 0 { break }
            var it = head
            func dfs(_ v: Int, _ f: Int) -> Int {
                if v == dst { return f }
                while it[v] >= 0 {
                    let a = it[v]
                    if cap[a] > 0 && level[to[a]] == level[v] + 1 {
                        let d = dfs(to[a], min(f, cap[a]))
                        if d > 0 { cap[a] -= d; cap[a ^ 1] += d; return d }
                    }
                    it[v] = next[a]
                }
                return 0
            }
            while true {
                let f = dfs(src, Int.max)
                if f == 0 { break }
                flow += f
            }
        }
        return flow == total
    }
}
