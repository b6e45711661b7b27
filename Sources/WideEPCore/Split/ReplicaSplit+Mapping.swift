extension ReplicaSplit {
    /// Assigns a global slot to each of this rank's (token, k) pairs so that every replica receives exactly its
    /// quota over all ranks. Every rank runs it on its own tokens and gets a consistent global assignment.
    ///
    /// The j-th global occurrence of expert e — ordered by source rank, then local token, then k — goes to the
    /// replica (in `replicaSlots` order) whose cumulative quota range contains j. Occurrences past the expert's total
    /// quota (only when the quotas do not match the counts) go to its last replica.
    ///
    /// - Parameters:
    ///   - experts: this rank's routed expert ids, [T × K] in (token, k) order, each in 0..<E.
    ///   - rankOffsets: occurrences of each expert on lower ranks, [E] (an exclusive prefix sum of the all-gathered
    ///     per-rank counts).
    ///   - quotas: tokens per global slot, [numSlots], from `quotas(…)` on the global counts.
    ///   - placement: the layer's placement.
    ///   - slots: output, the global slot of each (token, k), [T × K].
    public static func mapTokens(
        experts: UnsafeBufferPointer<Int32>, rankOffsets: UnsafeBufferPointer<Int32>,
        quotas: UnsafeBufferPointer<Int32>, placement: Placement, slots: UnsafeMutableBufferPointer<Int32>
    ) {
        let nE = placement.numExperts
        precondition(rankOffsets.count == nE, "rankOffsets must have one entry per expert")
        precondition(quotas.count == placement.numSlots, "quotas must have one entry per slot")
        precondition(slots.count == experts.count, "slots must have one entry per (token, k)")
        // Per expert: the next global occurrence index, the current replica and the end of its quota range.
        withUnsafeTemporaryAllocation(of: Int64.self, capacity: 3 * nE) { state in
            placement.replicaStart.withUnsafeBufferPointer { start in
                placement.replicaSlots.withUnsafeBufferPointer { replicas in
                    for e in 0..<nE {
                        let a = Int(start[e])
                        state[e] = Int64(rankOffsets[e])
                        state[nE &+ e] = Int64(a)
                        state[2 &* nE &+ e] = Int64(quotas[Int(replicas[a])])
                    }
                    for i in 0..<experts.count {
                        let e = Int(experts[i])
                        precondition(e >= 0 && e < nE, "expert id out of range")
                        let j = state[e]
                        state[e] = j &+ 1
                        var idx = Int(state[nE &+ e])
                        var end = state[2 &* nE &+ e]
                        let last = Int(start[e &+ 1]) &- 1
                        while j >= end && idx < last {
                            idx &+= 1
                            end &+= Int64(quotas[Int(replicas[idx])])
                        }
                        state[nE &+ e] = Int64(idx)
                        state[2 &* nE &+ e] = end
                        slots[i] = replicas[idx]
                    }
                }
            }
        }
    }

    /// Array convenience for `mapTokens(experts:rankOffsets:quotas:placement:slots:)`; returns [T × K] slots.
    public static func mapTokens(experts: [Int32], rankOffsets: [Int32], quotas: [Int32], placement: Placement)
        -> [Int32]
    {
        var out = [Int32](repeating: 0, count: experts.count)
        experts.withUnsafeBufferPointer { x in
            rankOffsets.withUnsafeBufferPointer { o in
                quotas.withUnsafeBufferPointer { q in
                    out.withUnsafeMutableBufferPointer { s in
                        mapTokens(experts: x, rankOffsets: o, quotas: q, placement: placement, slots: s)
                    }
                }
            }
        }
        return out
    }
}
