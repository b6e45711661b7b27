extension PackingState {
    /// Lowers the drift risk of the packing without raising the max rank load: traffic drifts between the window a
    /// plan is made from and the steps it serves, each expert's load by some relative amount `kappa`, independently,
    /// so a rank's load on a later step is about `L + kappa·sqrt(Σ w²)` (its slot weights `w`). Two ranks with the same
    /// `L` differ in risk when one holds a single heavy expert and the other several medium ones.
    ///
    /// Exchanges a slot of the rank with the largest `L + kappa·sqrt(Σ w²)` with a lighter slot of another rank when
    /// that lowers the larger of the pair's values, taking the best exchange with the `partners` least risky ranks each
    /// round, while no rank goes above `cap` and (with `nodeAware`) no node above the heaviest node. Stops when the
    /// riskiest rank has no such exchange or after `maxRounds`.
    func spreadRisk(kappa: Double, cap: Double, maxRounds: Int, partners: Int, nodeAware: Bool) {
        let p = slotsPerRank, nR = numRanks
        guard nR > 1 && p > 1 && kappa > 0 else { return }
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: p) { sortedBuffer in
        let sorted = sortedBuffer.baseAddress!
        withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * nR) { buffer in
            let squares = buffer.baseAddress!  // Σ w² per rank
            let risk = squares + nR  // L + κ·sqrt(Σ w²) per rank
            for r in 0..<nR {
                var q = 0.0
                for s in (r &* p)..<((r &+ 1) &* p) { q += slotWeight[s] * slotWeight[s] }
                squares[r] = q
                risk[r] = rankLoad[r] + kappa * q.squareRoot()
            }
            // Ranks by (risk, rank), ascending.
            let order = rankOrder
            for r in 0..<nR { order[r] = Int32(r) }
            for i in 1..<nR {
                let x = order[i], rx = risk[Int(x)]
                var j = i
                while j > 0 {
                    let y = order[j &- 1], ry = risk[Int(y)]
                    if ry < rx || (ry == rx && y < x) { break }
                    order[j] = y
                    j &-= 1
                }
                order[j] = x
            }
            for _ in 0..<maxRounds {
                let h = Int(order[nR &- 1])
                let jh = risk[h], lh = rankLoad[h], qh = squares[h]
                var maxNode = -Double.infinity
                if nodeAware { for n in 0..<numNodes where nodeLoad[n] > maxNode { maxNode = nodeLoad[n] } }
                let nh = Int(rankNode[h])
                var best = jh - 1e-9 * jh
                var bi = -1, bj = -1, bk = -1
                // No exchange can take the max below the next-riskiest rank this round.
                let enough = risk[Int(order[nR &- 2])]
                let hb = h &* p
                for k in 0..<min(nR &- 1, partners) {
                    let r = Int(order[k])
                    // h must shed weight (d > 0), which raises r's risk above its current value.
                    if risk[r] >= best || best <= enough { break }
                    let lr = rankLoad[r], qr = squares[r]
                    var limit = cap - lr
                    let nr = Int(rankNode[r])
                    if nodeAware && nr != nh { limit = min(limit, maxNode - nodeLoad[nr]) }
                    if limit <= 0 { continue }
                    let rb = r &* p
                    @inline(__always) func consider(_ i: Int, _ j: Int) {
                        let wi = slotWeight[i], wj = slotWeight[j]
                        let d = wi - wj
                        if d <= 0 || d > limit { return }
                        let swing = wi * wi - wj * wj
                        let jr = lr + d + kappa * (qr + swing).squareRoot()
                        if jr >= best { return }
                        let jhNew = lh - d + kappa * max(0, qh - swing).squareRoot()
                        let peak = max(jr, jhNew)
                        if peak >= best { return }
                        let ei = slotExpert[i], ej = slotExpert[j]
                        if ej == ei || blocks(rank: r, expert: ei) || blocks(rank: h, expert: ej) { return }
                        best = peak; bi = i; bj = j; bk = k
                    }
                    if p > 32 {
                        for i in hb..<(hb &+ p) { for j in rb..<(rb &+ p) { consider(i, j) } }
                        continue
                    }
                    // r's slots by weight, ascending: for each slot of h only the run with weights in
                    // [w − limit, w) can be exchanged, so two binary searches bound the inner loop.
                    for t in 0..<p {
                        let j = Int32(rb &+ t), wj = slotWeight[rb &+ t]
                        var u = t
                        while u > 0 && slotWeight[Int(sorted[u &- 1])] > wj {
                            sorted[u] = sorted[u &- 1]
                            u &-= 1
                        }
                        sorted[u] = j
                    }
                    @inline(__always) func firstAtLeast(_ w: Double) -> Int {
                        var lo = 0, len = p
                        while len > 0 {
                            let half = len >> 1
                            if slotWeight[Int(sorted[lo &+ half])] < w {
                                lo &+= half &+ 1
                                len &-= half &+ 1
                            } else {
                                len = half
                            }
                        }
                        return lo
                    }
                    for i in hb..<(hb &+ p) {
                        let wi = slotWeight[i]
                        var t = firstAtLeast(wi - limit)
                        while t < p && slotWeight[Int(sorted[t])] < wi {
                            consider(i, Int(sorted[t]))
                            t &+= 1
                        }
                    }
                }
                if bi < 0 { return }
                let r = Int(order[bk])
                let swing = slotWeight[bi] * slotWeight[bi] - slotWeight[bj] * slotWeight[bj]
                swapSlots(bi, bj)
                squares[h] = max(0, squares[h] - swing)
                squares[r] += swing
                risk[h] = rankLoad[h] + kappa * squares[h].squareRoot()
                risk[r] = rankLoad[r] + kappa * squares[r].squareRoot()
                reorder(order, by: risk, lowered: nR &- 1, raised: bk)
            }
        }
        }
    }
}
