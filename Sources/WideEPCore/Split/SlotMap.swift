/// One rank's tables for turning a batch's replica quotas into a global slot for each of its (token, k) pairs.
///
/// **Local-first** (`localFirst`, the default): for expert e, the replicas of e on rank s (in `replicaSlots` order)
/// first serve rank s's own occurrences of e, each replica up to its quota:
/// `localServed[r] = min(quota[r], max(0, n[s][e] − quota of the earlier replicas of e on s))`. So rank s serves
/// `min(n[s][e], Q[s][e])` of its pairs locally (Q = the total quota of e's replicas on s), which is the most any
/// mapping can when every replica must receive exactly its quota. A replica only takes its own rank's tokens
/// locally, so no quota is ever exceeded. The remaining occurrences of all ranks (rank s's are its occurrences after
/// the first `localCount`), ordered by source rank, token, k, then fill the remaining quotas `quota − localServed`
/// in `replicaSlots` order. Rank loads are unchanged, because every replica still receives exactly its quota.
///
/// **Prefix order** (`prefixOrder`, the previous mapping): no local pass; the j-th global occurrence goes to the
/// replica whose cumulative quota range holds j.
///
/// Every rank computes its tables from the all-gathered counts, so the global assignment is consistent. Per-replica
/// arrays are aligned with `placement.replicaSlots` ([S]); per-expert arrays are [E]. Occurrences past an expert's
/// total quota (only when the quotas do not sum to the counts) go to its last replica.
public struct SlotMap: Sendable, Equatable {
    /// This rank's occurrences of each expert served on this rank: its first `localCount[e]` occurrences of e in
    /// (token, k) order, [E].
    public var localCount: [Int32]
    /// Where this rank's remaining occurrences of each expert start in that expert's remaining order, [E].
    public var remoteOffset: [Int32]
    /// Start of each replica's range among this rank's local occurrences of its expert, [S] (`replicaSlots` order).
    /// Ranges are contiguous; a replica on another rank has an empty range.
    public var localStart: [Int32]
    /// Occurrences each replica serves from its own rank (the same on every rank), [S] (`replicaSlots` order).
    public var localServed: [Int32]
    /// Start of each replica's range in its expert's remaining order (cumulative `quota − localServed`), [S].
    public var remoteStart: [Int32]

    /// Builds the tables from their parts (see the property docs for shapes).
    public init(
        localCount: [Int32], remoteOffset: [Int32], localStart: [Int32], localServed: [Int32], remoteStart: [Int32]
    ) {
        self.localCount = localCount
        self.remoteOffset = remoteOffset
        self.localStart = localStart
        self.localServed = localServed
        self.remoteStart = remoteStart
    }

    /// The local-first tables of `rank`.
    ///
    /// - Parameters:
    ///   - counts: the all-gathered per-rank expert counts, [R × E] row-major (source rank, expert), each ≥ 0.
    ///   - quotas: tokens per global slot, [numSlots] (`ReplicaSplit.quotas` on the summed counts).
    ///   - placement: the layer's placement.
    ///   - rank: the rank whose tables to build, in 0..<R.
    public static func localFirst(
        counts: UnsafeBufferPointer<Int32>, quotas: UnsafeBufferPointer<Int32>, placement p: Placement, rank: Int
    ) -> SlotMap {
        let nE = p.numExperts, nS = p.numSlots, perRank = p.slotsPerRank
        precondition(counts.count == p.numRanks * nE, "counts must be [ranks × experts]")
        precondition(quotas.count == nS, "quotas must have one entry per slot")
        precondition(rank >= 0 && rank < p.numRanks, "rank out of range")
        var m = SlotMap(
            localCount: [Int32](repeating: 0, count: nE), remoteOffset: [Int32](repeating: 0, count: nE),
            localStart: [Int32](repeating: 0, count: nS), localServed: [Int32](repeating: 0, count: nS),
            remoteStart: [Int32](repeating: 0, count: nS))
        // Quota already taken on each rank by earlier replicas of the current expert (reset per expert).
        var used = [Int32](repeating: 0, count: p.numRanks)
        p.replicaStart.withUnsafeBufferPointer { start in
            p.replicaSlots.withUnsafeBufferPointer { replicas in
                for e in 0..<nE {
                    let r0 = Int(start[e]), r1 = Int(start[e &+ 1])
                    for r in r0..<r1 { used[Int(replicas[r]) / perRank] = 0 }
                    var own: Int32 = 0, lowerServed: Int64 = 0, remaining: Int32 = 0
                    for r in r0..<r1 {
                        let slot = Int(replicas[r]), owner = slot / perRank
                        let q = quotas[slot], n = counts[owner &* nE &+ e]
                        precondition(n >= 0 && q >= 0, "counts and quotas must be >= 0")
                        let served = min(q, max(0, n &- used[owner]))
                        used[owner] &+= served
                        m.localServed[r] = served
                        m.localStart[r] = own
                        if owner == rank { own &+= served } else if owner < rank { lowerServed &+= Int64(served) }
                        m.remoteStart[r] = remaining
                        remaining &+= q &- served
                    }
                    var lower: Int64 = 0
                    for src in 0..<rank { lower &+= Int64(counts[src &* nE &+ e]) }
                    m.localCount[e] = own
                    m.remoteOffset[e] = Int32(lower &- lowerServed)
                }
            }
        }
        return m
    }

    /// Array convenience for `localFirst(counts:quotas:placement:rank:)`.
    public static func localFirst(counts: [Int32], quotas: [Int32], placement: Placement, rank: Int) -> SlotMap {
        counts.withUnsafeBufferPointer { c in
            quotas.withUnsafeBufferPointer { q in localFirst(counts: c, quotas: q, placement: placement, rank: rank) }
        }
    }

    /// The prefix-order tables (no local pass): this rank's occurrences of e start at `rankOffsets[e]` in the
    /// global (source rank, token, k) order, and replica ranges are the cumulative quotas.
    ///
    /// - Parameters:
    ///   - rankOffsets: occurrences of each expert on lower ranks, [E].
    ///   - quotas: tokens per global slot, [numSlots].
    ///   - placement: the layer's placement.
    public static func prefixOrder(rankOffsets: [Int32], quotas: [Int32], placement p: Placement) -> SlotMap {
        precondition(rankOffsets.count == p.numExperts, "rankOffsets must have one entry per expert")
        precondition(quotas.count == p.numSlots, "quotas must have one entry per slot")
        var cumulative = [Int32](repeating: 0, count: p.numSlots)
        for e in 0..<p.numExperts {
            var acc: Int32 = 0
            for r in Int(p.replicaStart[e])..<Int(p.replicaStart[e + 1]) {
                cumulative[r] = acc
                acc &+= quotas[Int(p.replicaSlots[r])]
            }
        }
        let zeros = [Int32](repeating: 0, count: p.numSlots)
        return SlotMap(
            localCount: [Int32](repeating: 0, count: p.numExperts), remoteOffset: rankOffsets, localStart: zeros,
            localServed: zeros, remoteStart: cumulative)
    }

    /// The tables packed into one int32 array for a single device upload: `localCount` [E], `remoteOffset` [E],
    /// `localStart` [S], `localServed` [S], `remoteStart` [S], in that order ([2E + 3S]).
    public var packed: [Int32] { localCount + remoteOffset + localStart + localServed + remoteStart }
}
