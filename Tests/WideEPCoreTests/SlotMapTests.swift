import PropertyBased
import Testing
import WideEPCore
import WideEPTestSupport

@Suite struct SlotMapTests {
    /// A random placement on 1–8 ranks where several replicas of one expert may share a rank.
    static func randomPlacement(_ rng: inout SplitMix64) -> Placement {
        let ranks = Int.random(in: 1...8, using: &rng), experts = Int.random(in: 1...10, using: &rng)
        let perRank = max(1, (experts + ranks - 1) / ranks) + Int.random(in: 0...2, using: &rng)
        var table = (0..<experts).map(Int32.init)
        while table.count < ranks * perRank { table.append(Int32.random(in: 0..<Int32(experts), using: &rng)) }
        table.shuffle(using: &rng)
        return try! Placement(slotExpert: table, numExperts: experts, numRanks: ranks, allowSameRankReplicas: true)
    }

    /// Skewed routing on each rank (some ranks and experts empty); K distinct experts per token.
    static func randomRouting(_ p: Placement, _ rng: inout SplitMix64) -> [[Int32]] {
        let k = Int.random(in: 1...min(3, p.numExperts), using: &rng)
        let weights = (0..<p.numExperts).map { _ in 0.05 + Double.random(in: 0...1, using: &rng) * 3 }
        let total = weights.reduce(0, +)
        return (0..<p.numRanks).map { _ in
            let tokens = Bool.random(using: &rng) ? 0 : Int.random(in: 1...30, using: &rng)
            return (0..<tokens).flatMap { _ -> [Int32] in
                var picked: [Int32] = []
                while picked.count < k {
                    var x = Double.random(in: 0..<total, using: &rng), e = 0
                    while e < p.numExperts - 1 && x >= weights[e] { x -= weights[e]; e += 1 }
                    if !picked.contains(Int32(e)) { picked.append(Int32(e)) }
                }
                return picked
            }
        }
    }

    /// Quotas summing to the counts: the balanced or even split, or an arbitrary random split.
    static func randomQuotas(_ p: Placement, _ counts: [Int], _ rng: inout SplitMix64) -> [Int32] {
        switch Int.random(in: 0..<3, using: &rng) {
        case 0: return ReplicaSplit.quotas(expertCounts: counts, placement: p, policy: .balanced).map(Int32.init)
        case 1: return ReplicaSplit.quotas(expertCounts: counts, placement: p, policy: .even).map(Int32.init)
        default:
            var q = [Int32](repeating: 0, count: p.numSlots)
            for e in 0..<p.numExperts {
                let reps = p.replicas(of: e)
                var left = counts[e]
                for s in reps.dropLast() {
                    let take = Int.random(in: 0...left, using: &rng)
                    q[Int(s)] = Int32(take)
                    left -= take
                }
                q[Int(reps.last!)] = Int32(left)
            }
            return q
        }
    }

    static func perRankCounts(_ routed: [[Int32]], _ p: Placement) -> [Int32] {
        var c = [Int32](repeating: 0, count: p.numRanks * p.numExperts)
        for (r, list) in routed.enumerated() { for e in list { c[r * p.numExperts + Int(e)] += 1 } }
        return c
    }

    @Test func localFirstFillsEveryQuotaExactlyAndServesTheMostPairsLocally() async {
        await propertyCheck(count: 150, input: Gen.int(in: 0...1_000_000)) { seed in
            var rng = SplitMix64(seed: UInt64(seed))
            let p = Self.randomPlacement(&rng)
            let routed = Self.randomRouting(p, &rng)
            let counts = Self.perRankCounts(routed, p)
            let totals = (0..<p.numExperts).map { e in (0..<p.numRanks).reduce(0) { $0 + Int(counts[$1 * p.numExperts + e]) } }
            let quotas = Self.randomQuotas(p, totals, &rng)
            let mapped = ReplicaSplit.mapAllRanks(experts: routed, quotas: quotas, placement: p, policy: .localFirst)
            var received = [Int32](repeating: 0, count: p.numSlots)
            for r in 0..<p.numRanks {
                for (i, s) in mapped[r].enumerated() {
                    #expect(p.slotExpert[Int(s)] == routed[r][i], "slot must hold the routed expert")
                    received[Int(s)] += 1
                }
            }
            #expect(received == quotas, "every replica receives exactly its quota over all ranks")
            let local = ReplicaSplit.localPairs(slots: mapped, placement: p)
            let old = ReplicaSplit.localPairs(
                slots: ReplicaSplit.mapAllRanks(experts: routed, quotas: quotas, placement: p, policy: .prefixOrder),
                placement: p)
            #expect(local == ReplicaSplit.maxLocalPairs(counts: counts, quotas: quotas, placement: p))
            #expect(local >= old)
            // The tables agree with the mapping: localCount[e] pairs of rank r are served on rank r.
            for r in 0..<p.numRanks {
                let m = SlotMap.localFirst(counts: counts, quotas: quotas, placement: p, rank: r)
                let onRank = mapped[r].filter { Int($0) / p.slotsPerRank == r }.count
                #expect(onRank == m.localCount.reduce(0) { $0 + Int($1) })
                #expect(m.localServed.indices.allSatisfy { m.localServed[$0] <= quotas[Int(p.replicaSlots[$0])] })
            }
        }
    }

    @Test func planPlacementsWithDistinctRankReplicasServeMinOfCountAndQuotaLocally() async {
        await propertyCheck(count: 40, input: Gen.int(in: 0...1_000_000)) { seed in
            var rng = SplitMix64(seed: UInt64(seed))
            let (p, _) = ReplicaSplitTests.randomCase(&rng)
            let routed = Self.randomRouting(p, &rng)
            let counts = Self.perRankCounts(routed, p)
            let totals = (0..<p.numExperts).map { e in (0..<p.numRanks).reduce(0) { $0 + Int(counts[$1 * p.numExperts + e]) } }
            let quotas = ReplicaSplit.quotas(expertCounts: totals, placement: p, policy: .balanced).map(Int32.init)
            let mapped = ReplicaSplit.mapAllRanks(experts: routed, quotas: quotas, placement: p, policy: .localFirst)
            // Replicas are on distinct ranks: rank r serves min(n[r][e], quota of e's replica on r) of e locally.
            var expected = 0
            for s in 0..<p.numSlots {
                expected += min(Int(counts[(s / p.slotsPerRank) * p.numExperts + Int(p.slotExpert[s])]), Int(quotas[s]))
            }
            #expect(ReplicaSplit.localPairs(slots: mapped, placement: p) == expected)
            var received = [Int32](repeating: 0, count: p.numSlots)
            for list in mapped { for s in list { received[Int(s)] += 1 } }
            #expect(received == quotas)
        }
    }

    @Test func handCaseServesOwnTokensFirstThenFillsRemainingQuotaInRankOrder() throws {
        // Expert 0: replicas in slot 0 (rank 0, quota 1) and slot 3 (rank 1, quota 3); expert 1 in slot 1,
        // expert 2 in slot 2. Rank 0 routes expert 0 twice, rank 1 twice.
        let p = try Placement(slotExpert: [0, 1, 2, 0], numExperts: 3, numRanks: 2)
        let routed: [[Int32]] = [[0, 1, 0, 1], [2, 0, 0, 2]]
        let quotas: [Int32] = [1, 2, 2, 3]
        let mapped = ReplicaSplit.mapAllRanks(experts: routed, quotas: quotas, placement: p, policy: .localFirst)
        // Rank 0: its first expert-0 pair stays (quota 1), the second goes to rank 1's replica.
        // Rank 1: both expert-0 pairs stay on slot 3 (quota 3 holds them plus rank 0's leftover).
        #expect(mapped == [[0, 1, 3, 1], [2, 3, 3, 2]])
        let old = ReplicaSplit.mapAllRanks(experts: routed, quotas: quotas, placement: p, policy: .prefixOrder)
        #expect(old == [[0, 1, 3, 1], [2, 3, 3, 2]])
    }

    @Test func handCaseWherePrefixOrderSendsEveryPairAway() throws {
        // Expert 0 has replicas on rank 1 (slot 2) and rank 2 (slot 4), quota 2 each; ranks 0 and 1 route it twice.
        // Prefix order gives rank 0's pairs to rank 1's replica and pushes rank 1's own pairs to rank 2.
        let p = try Placement(slotExpert: [1, 2, 0, 3, 0, 3], numExperts: 4, numRanks: 3)
        let routed: [[Int32]] = [[0, 0], [0, 0], [1]]
        let quotas: [Int32] = [1, 0, 2, 0, 2, 0]
        let lf = ReplicaSplit.mapAllRanks(experts: routed, quotas: quotas, placement: p, policy: .localFirst)
        let po = ReplicaSplit.mapAllRanks(experts: routed, quotas: quotas, placement: p, policy: .prefixOrder)
        #expect(lf == [[4, 4], [2, 2], [0]])
        #expect(po == [[2, 2], [4, 4], [0]])
        #expect(ReplicaSplit.localPairs(slots: lf, placement: p) == 2)
        #expect(ReplicaSplit.localPairs(slots: po, placement: p) == 0)
    }

    @Test func sameRankReplicasFillInReplicaOrderBeforeAnyRemoteReplica() throws {
        // Expert 0 has two replicas on rank 0 (slots 0, 1, quotas 2 and 2) and one on rank 1 (slot 2, quota 1).
        let p = try Placement(
            slotExpert: [0, 0, 0, 1], numExperts: 2, numRanks: 2, allowSameRankReplicas: true)
        let routed: [[Int32]] = [[0, 0, 0], [0, 0]]
        let quotas: [Int32] = [2, 2, 1, 0]
        let m = SlotMap.localFirst(counts: [3, 0, 2, 0], quotas: quotas, placement: p, rank: 1)
        #expect(m.localServed == [2, 1, 1, 0])
        #expect(m.localCount == [1, 0])
        #expect(m.remoteOffset == [0, 0])
        let mapped = ReplicaSplit.mapAllRanks(experts: routed, quotas: quotas, placement: p, policy: .localFirst)
        #expect(mapped == [[0, 0, 1], [2, 1]])
    }

    @Test func singleRankLocalFirstEqualsPrefixOrder() async {
        await propertyCheck(count: 40, input: Gen.int(in: 0...1_000_000)) { seed in
            var rng = SplitMix64(seed: UInt64(seed))
            let experts = Int.random(in: 1...10, using: &rng)
            var table = (0..<experts).map(Int32.init)
            for _ in 0..<Int.random(in: 0...6, using: &rng) { table.append(Int32.random(in: 0..<Int32(experts), using: &rng)) }
            let p = try! Placement(slotExpert: table, numExperts: experts, numRanks: 1, allowSameRankReplicas: true)
            let routed = Self.randomRouting(p, &rng)
            let totals = Self.perRankCounts(routed, p).map(Int.init)
            let quotas = Self.randomQuotas(p, totals, &rng)
            #expect(ReplicaSplit.mapAllRanks(experts: routed, quotas: quotas, placement: p, policy: .localFirst)
                == ReplicaSplit.mapAllRanks(experts: routed, quotas: quotas, placement: p, policy: .prefixOrder))
        }
    }
}
