extension ReplicaSplit {
    /// Reusable buffers for `quotas(expertCounts:placement:policy:scratch:into:)`; grows to the largest shape seen and
    /// then never allocates again.
    public struct Scratch: Sendable {
        /// Tokens per rank, [R].
        var rankLoad: [Int64] = []
        /// Experts whose replicas span two or more ranks (the only ones with a choice).
        var multi: [Int32] = []
        /// Start of each `multi` expert's run in `active`, [multi].
        var activeStart: [Int32] = []
        /// End of each `multi` expert's run in `active`, [multi].
        var activeEnd: [Int32] = []
        /// For each `multi` expert, its first slot on each rank it occupies.
        var active: [Int32] = []
        /// The rank of each `active` slot (kept to avoid divisions in the passes).
        var activeRank: [Int32] = []
        /// Water-filling order, [R].
        var order: [Int32] = []

        /// Empty buffers; the first call sizes them.
        public init() {}

        mutating func reserve(numRanks: Int, numSlots: Int, numExperts: Int) {
            if rankLoad.count < numRanks { rankLoad = [Int64](repeating: 0, count: numRanks) }
            if order.count < numRanks { order = [Int32](repeating: 0, count: numRanks) }
            if multi.count < numExperts { multi = [Int32](repeating: 0, count: numExperts) }
            if activeStart.count < numExperts { activeStart = [Int32](repeating: 0, count: numExperts) }
            if activeEnd.count < numExperts { activeEnd = [Int32](repeating: 0, count: numExperts) }
            if active.count < numSlots { active = [Int32](repeating: 0, count: numSlots) }
            if activeRank.count < numSlots { activeRank = [Int32](repeating: 0, count: numSlots) }
        }
    }

    /// Passes of block coordinate descent over the replicated experts; each pass re-water-fills every such expert
    /// against the others. It usually settles in a handful of passes.
    static let maxBalancedPasses = 64
    /// Passes without a lower peak after which the search stops.
    static let stallPasses = 3

    /// Quotas minimising the max rank load: each replicated expert water-fills its tokens over the ranks holding it
    /// given everyone else's load, repeated until nothing changes.
    ///
    /// Each step is an exact integer water-fill, so the sum of squared rank loads never grows; at a fixed point the
    /// loads match the min-max (lexicographically optimal) split of the flow problem up to integer rounding (Fujishige,
    /// minimum-norm base of a polymatroid).
    static func balancedQuotas(
        expertCounts: UnsafeBufferPointer<Int32>, placement: Placement, scratch: inout Scratch,
        into quotas: UnsafeMutableBufferPointer<Int32>
    ) {
        let nR = placement.numRanks, nE = placement.numExperts, nS = placement.numSlots, p = placement.slotsPerRank
        scratch.reserve(numRanks: nR, numSlots: nS, numExperts: nE)
        var nMulti = 0
        scratch.rankLoad.withUnsafeMutableBufferPointer { load in
        scratch.multi.withUnsafeMutableBufferPointer { multi in
        scratch.activeStart.withUnsafeMutableBufferPointer { aStart in
        scratch.activeEnd.withUnsafeMutableBufferPointer { aEnd in
        scratch.active.withUnsafeMutableBufferPointer { active in
        scratch.activeRank.withUnsafeMutableBufferPointer { activeRank in
        scratch.order.withUnsafeMutableBufferPointer { order in
        placement.replicaStart.withUnsafeBufferPointer { start in
        placement.replicaSlots.withUnsafeBufferPointer { slots in
            for r in 0..<nR { load[r] = 0 }
            var nActive = 0
            var total: Int64 = 0
            for e in 0..<nE {
                let a = Int(start[e]), b = Int(start[e &+ 1])
                let c = expertCounts[e]
                precondition(c >= 0, "expert counts must be >= 0")
                for i in a..<b { quotas[Int(slots[i])] = 0 }
                let first = Int(slots[a])
                // Distinct ranks of this expert; replicas are ascending by slot, so equal ranks are adjacent.
                let begin = nActive
                var prevRank = -1
                for i in a..<b {
                    let s = Int(slots[i])
                    let r = s / p
                    if r != prevRank {
                        prevRank = r
                        active[nActive] = Int32(s)
                        activeRank[nActive] = Int32(r)
                        nActive &+= 1
                    }
                }
                total &+= Int64(c)
                if nActive &- begin <= 1 || c == 0 {
                    nActive = begin
                    quotas[first] = c
                    load[first / p] &+= Int64(c)
                } else {
                    multi[nMulti] = Int32(e)
                    aStart[nMulti] = Int32(begin)
                    aEnd[nMulti] = Int32(nActive)
                    nMulti &+= 1
                }
            }
            // Heaviest experts first for the initial fill (insertion sort, ties keep id order), then passes until
            // a fixed point. Runs move with their expert: the run of `multi[m]` is active[aStart[m]..<aEnd[m]].
            for i in 1..<max(nMulti, 1) {
                let e = multi[i], ra = aStart[i], rb = aEnd[i]
                var j = i
                while j > 0 && expertCounts[Int(multi[j &- 1])] < expertCounts[Int(e)] {
                    multi[j] = multi[j &- 1]; aStart[j] = aStart[j &- 1]; aEnd[j] = aEnd[j &- 1]
                    j &-= 1
                }
                multi[j] = e; aStart[j] = ra; aEnd[j] = rb
            }
            // Lower bound on any split's max: the mean (rounded up) and every rank's fixed, single-replica load.
            var bound = (total &+ Int64(nR) &- 1) / Int64(nR)
            for r in 0..<nR where load[r] > bound { bound = load[r] }
            // Stop at the bound (optimal), or at the first pass that does not strictly lower the (exact, integer)
            // sum of squared rank loads: equal-cost states can otherwise swap single tokens back and forth forever.
            var bestCost = Int64.max
            var bestPeak = Int64.max
            var stalled = 0
            for pass in 0...maxBalancedPasses {
                var changed = false
                for m in 0..<nMulti {
                    let e = Int(multi[m])
                    let a = Int(aStart[m]), b = Int(aEnd[m])
                    if pass > 0 {
                        for i in a..<b { load[Int(activeRank[i])] &-= Int64(quotas[Int(active[i])]) }
                    }
                    if waterFill(
                        count: expertCounts[e], slots: UnsafeBufferPointer(rebasing: active[a..<b]),
                        ranks: UnsafeBufferPointer(rebasing: activeRank[a..<b]), load: load, order: order,
                        quotas: quotas)
                    {
                        changed = true
                    }
                }
                if !changed { break }
                var cost: Int64 = 0, peak: Int64 = 0
                for r in 0..<nR {
                    cost &+= load[r] &* load[r]
                    if load[r] > peak { peak = load[r] }
                }
                if peak <= bound || cost >= bestCost { break }
                bestCost = cost
                // The peak, not the squared sum, is what matters: once it has not moved for a few passes the
                // remaining passes only polish lighter ranks.
                if peak < bestPeak { bestPeak = peak; stalled = 0 } else { stalled &+= 1 }
                if stalled >= stallPasses { break }
            }
        }}}}}}}}}
    }

    /// Integer water-fill of `count` tokens over `slots` (one per rank) given the other experts' rank loads: the
    /// lightest ranks rise to a common level, the remainder goes one token each to the lightest, ties to slot order.
    /// Adds the result into `load`, writes the quotas and returns whether any quota changed.
    @inline(__always)
    static func waterFill(
        count: Int32, slots: UnsafeBufferPointer<Int32>, ranks: UnsafeBufferPointer<Int32>,
        load: UnsafeMutableBufferPointer<Int64>, order: UnsafeMutableBufferPointer<Int32>,
        quotas: UnsafeMutableBufferPointer<Int32>
    ) -> Bool {
        let k = slots.count
        // Insertion sort of the (few) replicas by rank load, then slot (slots ascend within the run).
        for i in 0..<k {
            let li = load[Int(ranks[i])]
            var j = i
            while j > 0 {
                let t = Int(order[j &- 1])
                if load[Int(ranks[t])] <= li { break }
                order[j] = Int32(t)
                j &-= 1
            }
            order[j] = Int32(i)
        }
        let c = Int64(count)
        var m = 1
        var sum = load[Int(ranks[Int(order[0])])]
        while m < k {
            let next = load[Int(ranks[Int(order[m])])]
            // Include the next rank while it sits below the level (c + sum) / m.
            if next &* Int64(m) >= c &+ sum { break }
            sum &+= next
            m &+= 1
        }
        let total = c &+ sum
        let base = total / Int64(m)
        let rem = Int(total &- base &* Int64(m))
        var changed = false
        for i in 0..<k {
            let t = Int(order[i])
            let s = Int(slots[t])
            let r = Int(ranks[t])
            let q: Int64 = i < m ? base &- load[r] &+ (i < rem ? 1 : 0) : 0
            let q32 = Int32(truncatingIfNeeded: q)
            if quotas[s] != q32 { changed = true; quotas[s] = q32 }
            load[r] &+= q
        }
        return changed
    }
}
