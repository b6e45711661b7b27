extension PackingState {
    /// Longest-processing-time packing: replicas of `experts` (in the given order, `count[e]` each, weight
    /// `load[e] / count[e]`) each go to the least-loaded rank of `ranks` that has a free slot and does not hold the
    /// expert yet (ties to the lower rank).
    ///
    /// When every rank with a free slot already holds the expert, a placed replica of another expert moves into the
    /// free slot and the new replica takes its place (`repair`), so packing never fails while a valid placement
    /// exists for these counts. The experts must not be on `ranks` yet (each appears once in `experts`), so the
    /// first replica of each needs no check.
    func packLPT<C: Collection>(experts: C, ranks: Range<Int>, layer: Int?) throws where C.Element == Int32 {
        // Open ranks (free slots left) with their loads, ascending by (load, rank): the first one not holding the
        // expert wins. One array of (load, rank) pairs keeps the binary search on one contiguous run.
        let open = openList
        // First round: with every rank empty and replica weights positive and non-increasing, the k-th replica goes
        // to the k-th rank (each placed rank becomes the heaviest), so the first R placements need no search.
        var firstRound = firstRoundApplies(experts: experts, ranks: ranks) ? ranks.count : 0
        var n = firstRound > 0 ? 0 : openRanks(ranks)
        for x in experts {
            let e = Int(x)
            let c = Int(count[e])
            let w = c == 1 ? load[e] : load[e] / Double(c)
            for i in 0..<c {
                if firstRound > 0 {
                    let r = ranks.upperBound &- firstRound
                    put(expert: x, weight: w, slot: r &* slotsPerRank &+ rankFill[r], rank: r)
                    rankFill[r] &+= 1
                    firstRound &-= 1
                    if firstRound == 0 { n = openRanksAfterFirstRound(ranks) }
                    continue
                }
                // The experts are not on `ranks` before their turn, so the first replica is never blocked.
                var k = 0
                if i > 0 { while k < n && blocks(rank: Int(open[k].rank), expert: x) { k &+= 1 } }
                if k == n {
                    try repair(expert: x, weight: w, ranks: ranks, layer: layer)
                    n = openRanks(ranks)
                    continue
                }
                let r32 = open[k].rank
                let r = Int(r32)
                put(expert: x, weight: w, slot: r &* slotsPerRank &+ rankFill[r], rank: r)
                rankFill[r] &+= 1
                if rankFill[r] == slotsPerRank {
                    if k &+ 1 < n { Self.shiftLeft(open, from: k, count: n &- k &- 1) }
                    n &-= 1
                } else {
                    // The rank got heavier: binary-search its new place to the right and shift the run between.
                    // Branch-free lower bound: the first entry after k at or above (load, rank).
                    let lr = rankLoad[r]
                    var lo = k &+ 1, len = n &- lo
                    while len > 0 {
                        let half = len >> 1
                        let y = open[lo &+ half]
                        // 1 when (ly, y) < (lr, r), computed without branches (the outcome is unpredictable).
                        let below = (y.load < lr ? 1 : 0) | ((y.load == lr ? 1 : 0) & (y.rank < r32 ? 1 : 0))
                        lo &+= (half &+ 1) &* below
                        len = half &+ below &* (len &- 2 &* half &- 1)
                    }
                    let dest = lo &- 1
                    if dest > k { Self.shiftLeft(open, from: k, count: dest &- k) }
                    open[dest] = OpenRank(load: lr, rank: r32)
                }
            }
        }
    }

    /// Moves entries `from + 1 ..< from + 1 + count` one place left (memmove).
    @inline(__always)
    private static func shiftLeft(_ list: UnsafeMutablePointer<OpenRank>, from: Int, count: Int) {
        UnsafeMutableRawPointer(list + from).copyMemory(
            from: UnsafeRawPointer(list + from + 1), byteCount: count * MemoryLayout<OpenRank>.stride)
    }

    /// Whether `packLPT`'s first round can skip the search: every rank of `ranks` empty and the first `ranks.count`
    /// replica weights positive and non-increasing.
    private func firstRoundApplies<C: Collection>(experts: C, ranks: Range<Int>) -> Bool where C.Element == Int32 {
        for r in ranks where rankFill[r] != 0 || rankLoad[r] != 0 { return false }
        var left = ranks.count
        var previous = Double.infinity
        for x in experts {
            let e = Int(x)
            let c = Int(count[e])
            let w = load[e] / Double(c)
            if !(w > 0 && w <= previous) { return false }
            previous = w
            left -= c
            if left <= 0 { return true }
        }
        return false
    }

    /// `openRanks` after the first round: rank loads are non-increasing in rank order, so the list is the ranks in
    /// reverse order with equal loads put back in ascending rank order.
    private func openRanksAfterFirstRound(_ ranks: Range<Int>) -> Int {
        var n = 0
        for r in ranks.reversed() where rankFill[r] < slotsPerRank {
            let item = OpenRank(load: rankLoad[r], rank: Int32(r))
            var i = n
            while i > 0 {
                let y = openList[i &- 1]
                if y.load < item.load || (y.load == item.load && y.rank < item.rank) { break }
                openList[i] = y
                i &-= 1
            }
            openList[i] = item
            n &+= 1
        }
        return n
    }

    /// Writes the ranks of `ranks` with free slots and their loads into `openList`, ascending by (load, rank);
    /// returns how many.
    private func openRanks(_ ranks: Range<Int>) -> Int {
        var n = 0
        for r in ranks where rankFill[r] < slotsPerRank {
            var i = n
            let lr = rankLoad[r]
            while i > 0 {
                let y = openList[i &- 1]
                if y.load < lr || (y.load == lr && Int(y.rank) < r) { break }
                openList[i] = y
                i &-= 1
            }
            openList[i] = OpenRank(load: lr, rank: Int32(r))
            n &+= 1
        }
        return n
    }

    /// Places one replica of `expert` when every rank of `ranks` with a free slot already holds it: a replica `f`
    /// of another expert, on a rank without `expert`, moves to the free slot of the lightest open rank that does not
    /// hold `f`, and `expert` takes the freed slot. Picks the `f` closest in weight, to disturb the loads least.
    func repair(expert x: Int32, weight w: Double, ranks: Range<Int>, layer: Int?) throws {
        var openRanks: [Int] = []
        for r in ranks where rankFill[r] < slotsPerRank { openRanks.append(r) }
        openRanks.sort { rankLoad[$0] < rankLoad[$1] || (rankLoad[$0] == rankLoad[$1] && $0 < $1) }
        for r in openRanks {
            var bestSlot = -1
            var bestGap = Double.infinity
            for r2 in ranks where r2 != r && !blocks(rank: r2, expert: x) {
                let base = r2 &* slotsPerRank
                for s in base..<(base &+ rankFill[r2]) {
                    let f = slotExpert[s]
                    if f == x || blocks(rank: r, expert: f) { continue }
                    let gap = abs(slotWeight[s] - w)
                    if gap < bestGap { bestGap = gap; bestSlot = s }
                }
            }
            if bestSlot >= 0 {
                let f = slotExpert[bestSlot], wf = slotWeight[bestSlot]
                let r2 = bestSlot / slotsPerRank
                put(expert: f, weight: wf, slot: r &* slotsPerRank &+ rankFill[r])
                rankFill[r] += 1
                slotExpert[bestSlot] = x
                slotWeight[bestSlot] = w
                rankLoad[r2] += w - wf
                nodeLoad[r2 / ranksPerNode] += w - wf
                return
            }
        }
        throw PlacementError.invalidArgument(
            (layer.map { "layer \($0): " } ?? "")
                + "cannot place \(count[Int(x)]) replicas of expert \(x) on distinct ranks; "
                + "allow same-rank replicas or use fewer slots")
    }
}
