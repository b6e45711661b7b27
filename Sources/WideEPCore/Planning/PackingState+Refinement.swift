extension PackingState {
    /// Swap local search on the heaviest rank: exchange one of its slots with a lighter slot of another rank when
    /// that lowers the larger of the two ranks' loads, taking the best exchange each round.
    ///
    /// Stops at `target` (nothing can beat the lower bound), when the heaviest rank has no improving exchange, or
    /// after `maxRounds`. With `nodeAware`, an exchange across nodes may not raise the receiving node above the
    /// heaviest node's load, so node balance never gets worse.
    func refineSwaps(maxRounds: Int, target: Double, nodeAware: Bool) {
        let p = slotsPerRank
        let nR = numRanks
        guard nR > 1 else { return }
        let order = rankOrder
        // Ranks by (load, rank), ascending; after each exchange only its two ranks move.
        for r in 0..<nR { order[r] = Int32(r) }
        for i in 1..<nR {
            let x = order[i]
            let lx = rankLoad[Int(x)]
            var j = i
            while j > 0 {
                let y = order[j &- 1]
                let ly = rankLoad[Int(y)]
                if ly < lx || (ly == lx && y < x) { break }
                order[j] = y
                j &-= 1
            }
            order[j] = x
        }
        for _ in 0..<maxRounds {
            let h = Int(order[nR &- 1])
            let lh = rankLoad[h]
            if lh <= target { return }
            let eps = 1e-12 * lh
            var maxNode = -Double.infinity
            if nodeAware { for n in 0..<numNodes where nodeLoad[n] > maxNode { maxNode = nodeLoad[n] } }
            let nh = Int(rankNode[h])
            var bestPeak = lh - eps
            var bi = -1, bj = -1, bk = -1
            let hb = h &* p
            // Once the pair's peak is at or below the next-heaviest rank (or the target), a better exchange for this
            // pair cannot lower the max any further this round.
            let enough = max(target, rankLoad[Int(order[nR &- 2])])
            for k in 0..<(nR &- 1) {
                let r = Int(order[k])
                let lr = rankLoad[r]
                // No exchange with this or any heavier rank can end below (lh + lr) / 2.
                if (lh + lr) * 0.5 >= bestPeak || bestPeak <= enough { break }
                let gap = lh - lr
                // Largest shift this pair may take without raising the heaviest node.
                var limit = gap
                let nr = Int(rankNode[r])
                if nodeAware && nr != nh { limit = min(limit, maxNode - nodeLoad[nr]) }
                let rb = r &* p
                for i in hb..<(hb &+ p) {
                    let wi = slotWeight[i]
                    let ei = slotExpert[i]
                    for j in rb..<(rb &+ p) {
                        let d = wi - slotWeight[j]
                        if d <= eps || d > limit { continue }
                        let peak = max(lh - d, lr + d)
                        if peak >= bestPeak { continue }
                        let ej = slotExpert[j]
                        if ej == ei || blocks(rank: r, expert: ei) || blocks(rank: h, expert: ej) { continue }
                        bestPeak = peak; bi = i; bj = j; bk = k
                    }
                }
            }
            if bi < 0 { return }
            swapSlots(bi, bj)
            reorder(order, heaviestTo: nR &- 1, raised: bk)
        }
    }

    /// Restores the (load, rank) order of `order[0..<R]` after an exchange that lowered the last entry's load and
    /// raised the load of the entry at `raised`; every other entry is still in place.
    func reorder(_ order: UnsafeMutableBufferPointer<Int32>, heaviestTo last: Int, raised k: Int) {
        reorder(order, by: rankLoad.baseAddress!, lowered: last, raised: k)
    }

    /// Restores the (value, rank) order of `order` after the value of its entry at `last` (the last one) went down and
    /// the value of its entry at `k` went up; every other entry is still in place. Both moves are a binary search and
    /// one block shift.
    func reorder(_ order: UnsafeMutableBufferPointer<Int32>, by value: UnsafeMutablePointer<Double>, lowered last: Int,
                 raised k: Int) {
        let base = order.baseAddress!
        let h = order[last], r = order[k]
        // r moved up: its place among k+1..<last (h, at `last`, is placed next).
        let to = Self.lowerBound(base, from: k &+ 1, to: last, value: value, key: value[Int(r)], rank: r)
        if to &- 1 > k { Self.move(base, from: k &+ 1, to: k, count: to &- 1 &- k) }
        base[to &- 1] = r
        // h moved down: its place among 0..<last.
        let at = Self.lowerBound(base, from: 0, to: last, value: value, key: value[Int(h)], rank: h)
        if at < last { Self.move(base, from: at, to: at &+ 1, count: last &- at) }
        base[at] = h
    }

    /// memmove of `count` entries of `buffer` from index `from` to index `to` (the ranges may overlap).
    @inline(__always)
    static func move(_ buffer: UnsafeMutablePointer<Int32>, from: Int, to: Int, count: Int) {
        UnsafeMutableRawPointer(buffer + to).copyMemory(
            from: UnsafeRawPointer(buffer + from), byteCount: count * MemoryLayout<Int32>.stride)
    }

    /// The first index in `from..<to` of `order` whose (value, rank) is not below (key, rank), without branches on
    /// the comparisons (their outcomes are unpredictable).
    @inline(__always)
    static func lowerBound(
        _ order: UnsafeMutablePointer<Int32>, from: Int, to: Int, value: UnsafeMutablePointer<Double>, key: Double,
        rank: Int32
    ) -> Int {
        var lo = from, len = to &- from
        while len > 0 {
            let half = len >> 1
            let y = order[lo &+ half]
            let vy = value[Int(y)]
            let below = (vy < key ? 1 : 0) | ((vy == key ? 1 : 0) & (y < rank ? 1 : 0))
            lo &+= (half &+ 1) &* below
            len = half &+ below &* (len &- 2 &* half &- 1)
        }
        return lo
    }

    /// Evens out node loads without raising the max rank load: exchanges slots between the heaviest and lightest
    /// node, moving as close to half their gap as the slot weights allow, while both ranks stay at or below the
    /// current max rank load. Stops once the node gap is at most `tolerance` tokens.
    func balanceNodes(maxRounds: Int, tolerance: Double) {
        guard numNodes > 1 else { return }
        let p = slotsPerRank
        for _ in 0..<maxRounds {
            var a = 0, b = 0
            for n in 1..<numNodes {
                if nodeLoad[n] > nodeLoad[a] { a = n }
                if nodeLoad[n] < nodeLoad[b] { b = n }
            }
            let gap = nodeLoad[a] - nodeLoad[b]
            let eps = 1e-9 * nodeLoad[a]
            if gap <= max(eps, tolerance) { return }
            let cap = maxRankLoad
            let half = gap / 2
            var bestErr = half - eps  // the exchange must shrink the node gap
            var bi = -1, bj = -1
            // An exchange leaving a node gap of 2·err ≤ tolerance finishes the job: take it without looking further.
            let goodEnough = tolerance * 0.5
            search: for ra in (a &* ranksPerNode)..<((a &+ 1) &* ranksPerNode) {
                for rb in (b &* ranksPerNode)..<((b &+ 1) &* ranksPerNode) {
                    if bestErr <= goodEnough { break search }
                    let room = cap - rankLoad[rb]
                    if room <= eps { continue }
                    for i in (ra &* p)..<((ra &+ 1) &* p) {
                        let wi = slotWeight[i]
                        let ei = slotExpert[i]
                        for j in (rb &* p)..<((rb &+ 1) &* p) {
                            let d = wi - slotWeight[j]
                            if d <= eps || d > room || d >= gap { continue }
                            let err = abs(half - d)
                            if err >= bestErr { continue }
                            let ej = slotExpert[j]
                            if ej == ei || blocks(rank: rb, expert: ei) || blocks(rank: ra, expert: ej) { continue }
                            bestErr = err; bi = i; bj = j
                        }
                    }
                }
            }
            if bi < 0 { return }
            swapSlots(bi, bj)
        }
    }
}

extension PackingState {
    /// Gives every rank a replica of a replicated expert where it can, without raising the max rank load above
    /// `cap`: a rank whose slots are all single-replica experts cannot shed tokens through the balanced split, so
    /// it trades one slot with a rank holding two or more replicated slots, choosing the closest weights.
    func spreadFlexibility(cap: Double) {
        let p = slotsPerRank, nR = numRanks
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: nR + 2 * numSlots) { buffer in
            let flex = buffer.baseAddress!
            let candidates = flex + nR
            let candidateRank = candidates + numSlots
            for r in 0..<nR {
                var f: Int32 = 0
                for s in (r &* p)..<((r &+ 1) &* p) where count[Int(slotExpert[s])] > 1 { f &+= 1 }
                flex[r] = f
            }
            var rigid = false
            for r in 0..<nR where flex[r] == 0 { rigid = true }
            guard rigid else { return }
            // Slots that can give a replica away: replicated slots on ranks with two or more, in slot order. No
            // rank gains a second flexible slot below, so the list only loses entries (checked when read).
            var nc = 0
            for b in 0..<nR where flex[b] >= 2 {
                for j in (b &* p)..<((b &+ 1) &* p) where count[Int(slotExpert[j])] > 1 {
                    candidates[nc] = Int32(j)
                    candidateRank[nc] = Int32(b)
                    nc &+= 1
                }
            }
            guard nc > 0 else { return }
            for a in 0..<nR where flex[a] == 0 {
                var best = Double.infinity
                var bi = -1, bj = -1
                let la = rankLoad[a]
                for c in 0..<nc {
                    let j = Int(candidates[c])
                    let b = Int(candidateRank[c])
                    let ej = slotExpert[j]
                    if flex[b] < 2 || count[Int(ej)] <= 1 { continue }
                    let wj = slotWeight[j], lb = rankLoad[b]
                    for i in (a &* p)..<((a &+ 1) &* p) {
                        let d = wj - slotWeight[i]
                        if la + d > cap || lb - d > cap { continue }
                        let cost = abs(d)
                        if cost >= best { continue }
                        let ei = slotExpert[i]
                        if blocks(rank: a, expert: ej) || blocks(rank: b, expert: ei) { continue }
                        best = cost; bi = i; bj = j
                    }
                }
                if bi >= 0 {
                    swapSlots(bi, bj)
                    flex[a] &+= 1
                    flex[bj / p] &-= 1
                }
            }
        }
    }
}
