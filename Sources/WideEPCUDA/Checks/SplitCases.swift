import WideEPCore

/// Random inputs of the balanced split shared by the selftest, `wide-ep bench split` and the tests: placements with
/// hot experts replicated, skewed counts, and counts sampled from a real per-expert load profile.
public enum SplitCases {
    /// A random valid placement of `experts` over `ranks` × `slotsPerRank` slots: every expert once, the remaining
    /// slots replicas of random experts (low ids more often). Without `sameRank` an expert gets at most `ranks`
    /// copies, dealt to distinct ranks (experts in random order, copy k of the sequence to rank k mod ranks);
    /// with it the slots are shuffled freely. Throws when the slots exceed `experts` × `ranks` without `sameRank`.
    public static func hotPlacement(
        experts e: Int, ranks: Int, slotsPerRank p: Int, sameRank: Bool, rng: inout SplitMix64
    ) throws -> Placement {
        guard e >= 1, ranks >= 1, ranks * p >= e, sameRank || ranks * p <= e * ranks else {
            throw PlacementError.invalidArgument(
                "split cases: no valid placement of E=\(e) over \(ranks) ranks × \(p) slots (same-rank: \(sameRank))")
        }
        var copies = [Int](repeating: 1, count: e)
        var extra = ranks * p - e
        while extra > 0 {
            let x = min(e - 1, Int(Float(e) * rng.unitFloat() * rng.unitFloat()))
            if sameRank || copies[x] < ranks { copies[x] += 1; extra -= 1 }
        }
        var table: [Int32]
        if sameRank {
            table = (0..<e).flatMap { x in [Int32](repeating: Int32(x), count: copies[x]) }
            table.shuffle(using: &rng)
        } else {
            let items = (0..<e).shuffled(using: &rng).flatMap { x in [Int32](repeating: Int32(x), count: copies[x]) }
            table = [Int32](repeating: 0, count: ranks * p)
            for (k, x) in items.enumerated() { table[(k % ranks) * p + k / ranks] = x }
            for r in 0..<ranks { table[(r * p)..<((r + 1) * p)].shuffle(using: &rng) }
        }
        return try Placement(slotExpert: table, numExperts: e, numRanks: ranks, allowSameRankReplicas: sameRank)
    }

    /// Skewed per-expert counts over about `tokens` × 1.2 pairs: a few hot experts, about one in eight empty, one
    /// expert given `tokens` extra; never all zero.
    public static func skewedCounts(experts e: Int, tokens: Int, rng: inout SplitMix64) -> [Int32] {
        var c = (0..<e).map { _ -> Int32 in
            if rng.next() % 8 == 0 { return 0 }
            let u = rng.unitFloat()
            return Int32(Float(tokens) * u * u * u * u)
        }
        c[Int(rng.next() % UInt64(e))] += Int32(tokens)
        return c
    }

    /// `pairs` (token, k) draws from the distribution `profile` (non-negative weights, not all zero), int32 [E].
    public static func sampleCounts(profile: [Double], pairs: Int, rng: inout SplitMix64) -> [Int32] {
        var cum = [Double](repeating: 0, count: profile.count)
        var acc = 0.0
        for (i, w) in profile.enumerated() { acc += max(w, 0); cum[i] = acc }
        var counts = [Int32](repeating: 0, count: profile.count)
        for _ in 0..<pairs {
            let u = rng.unitDouble() * acc
            var lo = 0, hi = profile.count - 1
            while lo < hi {
                let mid = (lo + hi) / 2
                if cum[mid] > u { hi = mid } else { lo = mid + 1 }
            }
            counts[lo] += 1
        }
        return counts
    }

    /// The largest rank load of per-replica `quotas` (aligned with `replicaSlots`), tokens.
    public static func peak(replicaQuotas: [Int32], placement p: Placement) -> Int64 {
        var load = [Int64](repeating: 0, count: p.numRanks)
        for (i, s) in p.replicaSlots.enumerated() { load[Int(s) / p.slotsPerRank] += Int64(replicaQuotas[i]) }
        return load.max() ?? 0
    }

    /// Experts whose per-replica quotas are negative or do not sum to their count.
    public static func conservationErrors(replicaQuotas q: [Int32], counts: [Int32], placement p: Placement) -> Int {
        (0..<p.numExperts).filter { e in
            let r = Int(p.replicaStart[e])..<Int(p.replicaStart[e + 1])
            return q[r].contains { $0 < 0 } || q[r].reduce(Int64(0)) { $0 + Int64($1) } != Int64(counts[e])
        }.count
    }
}
