/// Decides how many of each expert's tokens every replica computes, for one batch of one layer.
///
/// Quotas are integers per global slot, [numSlots], and each expert's quotas sum to its token count. A rank's load
/// is the sum of its slots' quotas (DESIGN.md §8). `mapTokens` then turns the quotas into a slot for every
/// (token, k) pair, identically on every rank.
public enum ReplicaSplit {
    /// Tokens per global slot, [numSlots].
    ///
    /// - Parameters:
    ///   - expertCounts: tokens routed to each expert in this batch, over all ranks, [E] (non-negative).
    ///   - placement: the layer's placement.
    ///   - policy: `even` (round-robin) or `balanced` (min max rank load).
    public static func quotas(expertCounts: [Int], placement: Placement, policy: SplitPolicy) -> [Int] {
        precondition(expertCounts.count == placement.numExperts, "expertCounts must have one entry per expert")
        let counts = expertCounts.map { Int32(clamping: $0) }
        var out = [Int32](repeating: 0, count: placement.numSlots)
        var scratch = Scratch()
        counts.withUnsafeBufferPointer { c in
            out.withUnsafeMutableBufferPointer { o in
                quotas(expertCounts: c, placement: placement, policy: policy, scratch: &scratch, into: o)
            }
        }
        return out.map(Int.init)
    }

    /// Allocation-free quotas for the per-step hot path: writes tokens per global slot into `quotas` [numSlots].
    ///
    /// `scratch` keeps its buffers between calls; after the first call with a given shape nothing is allocated.
    public static func quotas(
        expertCounts: UnsafeBufferPointer<Int32>, placement: Placement, policy: SplitPolicy,
        scratch: inout Scratch, into quotas: UnsafeMutableBufferPointer<Int32>
    ) {
        precondition(expertCounts.count == placement.numExperts, "expertCounts must have one entry per expert")
        precondition(quotas.count == placement.numSlots, "quotas must have one entry per slot")
        switch policy {
        case .even: evenQuotas(expertCounts: expertCounts, placement: placement, into: quotas)
        case .balanced: balancedQuotas(expertCounts: expertCounts, placement: placement, scratch: &scratch, into: quotas)
        }
    }

    /// Round-robin quotas: count / r per replica, remainder to the first replicas in `replicaSlots` order.
    static func evenQuotas(
        expertCounts: UnsafeBufferPointer<Int32>, placement: Placement, into quotas: UnsafeMutableBufferPointer<Int32>
    ) {
        placement.replicaStart.withUnsafeBufferPointer { start in
            placement.replicaSlots.withUnsafeBufferPointer { slots in
                for e in 0..<placement.numExperts {
                    let a = Int(start[e]), b = Int(start[e &+ 1])
                    let r = Int32(b &- a)
                    let c = expertCounts[e]
                    precondition(c >= 0, "expert counts must be >= 0")
                    let q = c / r, rem = Int(c % r)
                    for i in a..<b { quotas[Int(slots[i])] = q &+ (i &- a < rem ? 1 : 0) }
                }
            }
        }
    }

    /// Tokens computed by each rank (the sum of its slots' quotas), [R].
    public static func rankLoads(quotas: [Int], placement: Placement) -> [Double] {
        precondition(quotas.count == placement.numSlots, "quotas must have one entry per slot")
        var loads = [Double](repeating: 0, count: placement.numRanks)
        for s in 0..<quotas.count { loads[s / placement.slotsPerRank] += Double(quotas[s]) }
        return loads
    }

    /// Tokens computed by each rank from Int32 quotas, written into `loads` [R].
    public static func rankLoads(
        quotas: UnsafeBufferPointer<Int32>, placement: Placement, into loads: UnsafeMutableBufferPointer<Double>
    ) {
        precondition(quotas.count == placement.numSlots && loads.count == placement.numRanks)
        let p = placement.slotsPerRank
        for r in 0..<placement.numRanks {
            var sum: Int64 = 0
            for s in (r &* p)..<((r &+ 1) &* p) { sum &+= Int64(quotas[s]) }
            loads[r] = Double(sum)
        }
    }
}
