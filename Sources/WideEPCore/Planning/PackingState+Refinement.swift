extension PackingState {
    /// Swap local search on the heaviest rank: exchange one of its slots with a lighter slot of another rank when
    /// that lowers the larger of the two ranks' loads, taking the best exchange each round.
    ///
    /// Stops at `target` (nothing can beat the lower bound), when the heaviest rank has no improving exchange, or
    /// after `maxRounds`. With `nodeAware`, an exchange across nodes may not raise the receiving node above the
    /// heaviest node's load, so node balance never gets worse.
    func refineSwaps(maxRounds: Int, target: Double, nodeAware: Bool) {
        let p = slotsPerRank
        let order = rankOrder
        for r in 0..<numRanks { order[r] = Int32(r) }
        for _ in 0..<maxRounds {
            // Ranks by load, ascending (insertion sort: nearly sorted from the previous round).
            for i in 1..<max(numRanks, 1) {
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
            let h = Int(order[numRanks &- 1])
            let lh = rankLoad[h]
            if lh <= target { return }
            let eps = 1e-12 * lh
            var maxNode = -Double.infinity
            if nodeAware { for n in 0..<numNodes where nodeLoad[n] > maxNode { maxNode = nodeLoad[n] } }
            let nh = Int(rankNode[h])
            var bestPeak = lh - eps
            var bi = -1, bj = -1
            let hb = h &* p
            // Once the pair's peak is at or below the next-heaviest rank (or the target), a better exchange for this
            // pair cannot lower the max any further this round.
            let enough = max(target, numRanks > 1 ? rankLoad[Int(order[numRanks &- 2])] : 0)
            for k in 0..<(numRanks &- 1) {
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
                        bestPeak = peak; bi = i; bj = j
                    }
                }
            }
            if bi < 0 { return }
            swapSlots(bi, bj)
        }
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
        let p = slotsPerRank
        var flex = [Int](repeating: 0, count: numRanks)
        for s in 0..<numSlots where count[Int(slotExpert[s])] > 1 { flex[s / p] += 1 }
        for a in 0..<numRanks where flex[a] == 0 {
            var best = Double.infinity
            var bi = -1, bj = -1
            for b in 0..<numRanks where flex[b] >= 2 {
                for j in (b * p)..<((b + 1) * p) where count[Int(slotExpert[j])] > 1 {
                    let wj = slotWeight[j], ej = slotExpert[j]
                    for i in (a * p)..<((a + 1) * p) {
                        let d = wj - slotWeight[i]
                        if rankLoad[a] + d > cap || rankLoad[b] - d > cap { continue }
                        let cost = abs(d)
                        if cost >= best { continue }
                        let ei = slotExpert[i]
                        if blocks(rank: a, expert: ej) || blocks(rank: b, expert: ei) { continue }
                        best = cost; bi = i; bj = j
                    }
                }
            }
            if bi >= 0 {
                swapSlots(bi, bj)
                flex[a] += 1
                flex[bj / p] -= 1
            }
        }
    }
}
