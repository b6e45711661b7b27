extension ReplicaSplit {
    /// Assigns a global slot to each of this rank's (token, k) pairs following `map` (see `SlotMap`): every replica
    /// receives exactly its quota over all ranks when every rank maps its own pairs with its own tables.
    ///
    /// This rank's i-th occurrence of expert e (in (token, k) order) is local when i < `localCount[e]`: it goes to
    /// the replica whose `localStart` range holds i. Otherwise its remaining index
    /// `j = remoteOffset[e] + i − localCount[e]` goes to the replica whose `remoteStart` range holds j (the last
    /// replica past the end).
    ///
    /// - Parameters:
    ///   - experts: this rank's routed expert ids, [T × K] in (token, k) order, each in 0..<E.
    ///   - map: this rank's tables (`SlotMap.localFirst` or `SlotMap.prefixOrder`).
    ///   - placement: the layer's placement.
    ///   - slots: output, the global slot of each (token, k), [T × K].
    public static func mapTokens(
        experts: UnsafeBufferPointer<Int32>, map: SlotMap, placement: Placement,
        slots: UnsafeMutableBufferPointer<Int32>
    ) {
        let nE = placement.numExperts
        precondition(map.localCount.count == nE && map.remoteOffset.count == nE, "map must have [E] expert tables")
        precondition(map.localStart.count == placement.numSlots && map.remoteStart.count == placement.numSlots,
                     "map must have [S] replica tables")
        precondition(slots.count == experts.count, "slots must have one entry per (token, k)")
        // Per expert: occurrences seen on this rank, the current local replica and the current remote replica.
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: 3 * nE) { state in
            placement.replicaStart.withUnsafeBufferPointer { start in
                placement.replicaSlots.withUnsafeBufferPointer { replicas in
                    map.localCount.withUnsafeBufferPointer { localCount in
                        map.remoteOffset.withUnsafeBufferPointer { remoteOffset in
                            map.localStart.withUnsafeBufferPointer { localStart in
                                map.remoteStart.withUnsafeBufferPointer { remoteStart in
                                    for e in 0..<nE {
                                        state[e] = 0
                                        state[nE &+ e] = start[e]
                                        state[2 &* nE &+ e] = start[e]
                                    }
                                    for i in 0..<experts.count {
                                        let e = Int(experts[i])
                                        precondition(e >= 0 && e < nE, "expert id out of range")
                                        let j = state[e]
                                        state[e] = j &+ 1
                                        let last = Int(start[e &+ 1]) &- 1
                                        if j < localCount[e] {
                                            var r = Int(state[nE &+ e])
                                            while r < last && j >= localStart[r &+ 1] { r &+= 1 }
                                            state[nE &+ e] = Int32(r)
                                            slots[i] = replicas[r]
                                        } else {
                                            let jr = remoteOffset[e] &+ (j &- localCount[e])
                                            var r = Int(state[2 &* nE &+ e])
                                            while r < last && jr >= remoteStart[r &+ 1] { r &+= 1 }
                                            state[2 &* nE &+ e] = Int32(r)
                                            slots[i] = replicas[r]
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Array convenience for `mapTokens(experts:map:placement:slots:)`; returns [T × K] slots.
    public static func mapTokens(experts: [Int32], map: SlotMap, placement: Placement) -> [Int32] {
        var out = [Int32](repeating: 0, count: experts.count)
        experts.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { s in mapTokens(experts: x, map: map, placement: placement, slots: s) }
        }
        return out
    }

    /// The prefix-order mapping (no local pass, `SlotMap.prefixOrder`): the j-th global occurrence of expert e —
    /// ordered by source rank, then local token, then k — goes to the replica (in `replicaSlots` order) whose
    /// cumulative quota range contains j. Kept as the single-rank twin of the CUDA `map_slots` kernel and as the
    /// locality baseline.
    ///
    /// - Parameters:
    ///   - experts: this rank's routed expert ids, [T × K] in (token, k) order, each in 0..<E.
    ///   - rankOffsets: occurrences of each expert on lower ranks, [E].
    ///   - quotas: tokens per global slot, [numSlots].
    ///   - placement: the layer's placement.
    /// - Returns: the global slot of each (token, k), [T × K].
    public static func mapTokens(experts: [Int32], rankOffsets: [Int32], quotas: [Int32], placement: Placement)
        -> [Int32]
    {
        mapTokens(
            experts: experts, map: SlotMap.prefixOrder(rankOffsets: rankOffsets, quotas: quotas, placement: placement),
            placement: placement)
    }
}
