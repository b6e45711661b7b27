import WideEPCore

/// CPU twins of `stats.cu` (counting) and `layout.cu` (slot mapping, permutation), and the host tables they need.
public enum SlotMapReference {
    /// Pairs routed to each expert, [E]. Twin of `count_experts`.
    public static func count(experts: [Int32], numExperts: Int) -> [Int32] {
        var c = [Int32](repeating: 0, count: numExperts)
        for e in experts where e >= 0 && Int(e) < numExperts { c[Int(e)] += 1 }
        return c
    }

    /// Core's `ReplicaSplit.quotas` (tokens per global slot) realigned with `placement.replicaSlots`, the order the
    /// `map_slots` tables use.
    public static func replicaQuotas(counts: [Int32], placement: Placement, policy: SplitPolicy = .even) -> [Int] {
        let perSlot = ReplicaSplit.quotas(expertCounts: counts.map(Int.init), placement: placement, policy: policy)
        return placement.replicaSlots.map { perSlot[Int($0)] }
    }

    /// The per-batch tables of `map_slots` for the slots of `rank`: the cumulative quota before each replica inside
    /// its expert ([S], aligned with `replicaSlots`), the first expert-major row of each global slot ([S], −1 for
    /// other ranks' slots) and the rows per local slot ([slotsPerRank]).
    public static func tables(quotas: [Int], placement: Placement, rank: Int = 0)
        -> (quotaStart: [Int32], slotRowStart: [Int32], slotRows: [Int])
    {
        var quotaStart = [Int32](repeating: 0, count: placement.numSlots)
        var slotRows = [Int](repeating: 0, count: placement.slotsPerRank)
        for e in 0..<placement.numExperts {
            var acc = 0
            for r in Int(placement.replicaStart[e])..<Int(placement.replicaStart[e + 1]) {
                quotaStart[r] = Int32(acc)
                acc += quotas[r]
                let s = Int(placement.replicaSlots[r])
                if placement.rank(ofSlot: s) == rank { slotRows[s - rank * placement.slotsPerRank] = quotas[r] }
            }
        }
        var slotRowStart = [Int32](repeating: -1, count: placement.numSlots)
        var row = 0
        for local in 0..<placement.slotsPerRank {
            slotRowStart[rank * placement.slotsPerRank + local] = Int32(row)
            row += slotRows[local]
        }
        return (quotaStart, slotRowStart, slotRows)
    }

    /// Twin of `map_slots`: the global slot and expert-major row (−1 when not local) of each (token, k) pair.
    public static func map(
        experts: [Int32], quotas: [Int], placement: Placement, rankOffsets: [Int]? = nil, rank: Int = 0
    ) -> (slot: [Int32], position: [Int32]) {
        let t = tables(quotas: quotas, placement: placement, rank: rank)
        var seen = rankOffsets ?? [Int](repeating: 0, count: placement.numExperts)
        var slot = [Int32](repeating: -1, count: experts.count)
        var position = [Int32](repeating: -1, count: experts.count)
        for (p, e32) in experts.enumerated() {
            let e = Int(e32)
            let j = seen[e]
            seen[e] += 1
            var r = Int(placement.replicaStart[e])
            let r1 = Int(placement.replicaStart[e + 1])
            while r + 1 < r1 && j >= Int(t.quotaStart[r + 1]) { r += 1 }
            let s = Int(placement.replicaSlots[r])
            slot[p] = Int32(s)
            let rs = Int(t.slotRowStart[s])
            position[p] = rs < 0 ? -1 : Int32(rs + j - Int(t.quotaStart[r]))
        }
        return (slot, position)
    }

    /// Twin of `permute_rows`: row `position[p]` of the result is token `p / topK`'s row of `x` ([T, H]).
    public static func permute(x: [UInt16], position: [Int32], topK: Int, hidden: Int, rows: Int) -> [UInt16] {
        var xs = [UInt16](repeating: 0, count: rows * hidden)
        for (p, d) in position.enumerated() where d >= 0 {
            let src = (p / topK) * hidden, dst = Int(d) * hidden
            for i in 0..<hidden { xs[dst + i] = x[src + i] }
        }
        return xs
    }
}
