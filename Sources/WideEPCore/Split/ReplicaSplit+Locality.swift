/// Which `SlotMap` a batch's pairs are mapped with.
public enum SlotMapPolicy: String, CaseIterable, Sendable, Codable {
    /// Serve a rank's pairs on its own replicas first, up to their quotas (`SlotMap.localFirst`), the default.
    case localFirst = "local-first"
    /// The j-th global occurrence goes to the replica whose cumulative quota range holds j (`SlotMap.prefixOrder`).
    case prefixOrder = "prefix-order"
}

extension ReplicaSplit {
    /// Maps every rank's pairs the way the ranks of one layer forward do, each with its own tables.
    ///
    /// - Parameters:
    ///   - experts: each rank's routed expert ids, [R][T_r × K] in (token, k) order.
    ///   - quotas: tokens per global slot, [numSlots] (from the summed counts).
    ///   - placement: the layer's placement.
    ///   - policy: the mapping.
    /// - Returns: each rank's global slots, [R][T_r × K].
    public static func mapAllRanks(
        experts: [[Int32]], quotas: [Int32], placement p: Placement, policy: SlotMapPolicy
    ) -> [[Int32]] {
        precondition(experts.count == p.numRanks, "experts must have one array per rank")
        let nE = p.numExperts
        var counts = [Int32](repeating: 0, count: p.numRanks * nE)
        for (r, list) in experts.enumerated() {
            for e in list {
                precondition(e >= 0 && Int(e) < nE, "expert id out of range")
                counts[r * nE + Int(e)] += 1
            }
        }
        var offsets = [Int32](repeating: 0, count: nE)
        return (0..<p.numRanks).map { r in
            let map: SlotMap
            switch policy {
            case .localFirst: map = SlotMap.localFirst(counts: counts, quotas: quotas, placement: p, rank: r)
            case .prefixOrder: map = SlotMap.prefixOrder(rankOffsets: offsets, quotas: quotas, placement: p)
            }
            for e in 0..<nE { offsets[e] += counts[r * nE + e] }
            return mapTokens(experts: experts[r], map: map, placement: p)
        }
    }

    /// Pairs served on their own rank: entries of `slots[r]` whose slot lies on rank r.
    public static func localPairs(slots: [[Int32]], placement p: Placement) -> Int {
        var n = 0
        for (r, list) in slots.enumerated() { for s in list where Int(s) / p.slotsPerRank == r { n += 1 } }
        return n
    }

    /// The most pairs any mapping can serve on their own rank when every replica receives exactly its quota:
    /// Σ over ranks s and experts e of min(n[s][e], total quota of e's replicas on s).
    ///
    /// - Parameters:
    ///   - counts: per-rank expert counts, [R × E] row-major.
    ///   - quotas: tokens per global slot, [numSlots].
    public static func maxLocalPairs(counts: [Int32], quotas: [Int32], placement p: Placement) -> Int {
        precondition(counts.count == p.numRanks * p.numExperts && quotas.count == p.numSlots)
        var onRank = [Int](repeating: 0, count: p.numRanks * p.numExperts)
        for s in 0..<p.numSlots { onRank[(s / p.slotsPerRank) * p.numExperts + Int(p.slotExpert[s])] += Int(quotas[s]) }
        return zip(counts, onRank).reduce(0) { $0 + min(Int($1.0), $1.1) }
    }
}
