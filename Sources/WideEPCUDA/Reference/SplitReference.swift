import WideEPCore

/// CPU twin of `balanced_split` written the kernel's way: the packed `SplitTables`, per-replica quotas, and each
/// water-fill done by position counting (what the warp lanes do) instead of a sort. Tests compare it with Core's
/// `ReplicaSplit` so the table packing and the lane formulation are checked without a GPU.
public enum SplitReference {
    /// Per-replica quotas aligned with `placement.replicaSlots`, int32 [numSlots].
    public static func quotas(counts: [Int32], tables t: SplitTables, placement p: Placement) -> [Int32] {
        let nR = p.numRanks
        var q = [Int32](repeating: 0, count: p.numSlots)
        var load = [Int64](repeating: 0, count: nR)
        var total: Int64 = 0
        for e in 0..<p.numExperts {
            let a = Int(p.replicaStart[e]), c = counts[e]
            total += Int64(c)
            if t.multiIndex[e] < 0 || c == 0 {
                q[a] = c
                load[Int(p.replicaSlots[a]) / p.slotsPerRank] += Int64(c)
            }
        }
        let m = t.multiCount
        var order = [Int](repeating: 0, count: m)
        var n = 0
        for i in 0..<m where counts[Int(t.multiExpert[i])] > 0 {
            let ci = counts[Int(t.multiExpert[i])]
            var pos = 0
            for j in 0..<m {
                let cj = counts[Int(t.multiExpert[j])]
                if cj > ci || (cj == ci && j < i) { pos += 1 }
            }
            order[pos] = i
            n += 1
        }
        let bound = max((total + Int64(nR) - 1) / Int64(nR), load.max() ?? 0)
        var bestCost = Int64.max, bestPeak = Int64.max, stalled = 0
        for pass in 0...CUDAKernels.splitPasses {
            var changed = false
            for i in order.prefix(n) {
                let a = Int(t.runStart[i]), k = Int(t.runStart[i + 1]) - a
                let c = Int64(counts[Int(t.multiExpert[i])])
                var lv = [Int64](repeating: 0, count: k), pos = [Int](repeating: 0, count: k)
                var prefix = [Int64](repeating: 0, count: k)
                for l in 0..<k {
                    let r = Int(t.runRank[a + l])
                    lv[l] = load[r] - (pass > 0 ? Int64(q[Int(t.runReplica[a + l])]) : 0)
                }
                for l in 0..<k {
                    for j in 0..<k where lv[j] < lv[l] || (lv[j] == lv[l] && j < l) {
                        pos[l] += 1
                        prefix[l] += lv[j]
                    }
                }
                let inc = (0..<k).map { pos[$0] == 0 || lv[$0] * Int64(pos[$0]) < c + prefix[$0] }
                let mIn = inc.filter { $0 }.count
                let last = (0..<k).first { inc[$0] && pos[$0] == mIn - 1 }!
                let tot = c + prefix[last] + lv[last]
                let base = tot / Int64(mIn), rem = tot - base * Int64(mIn)
                for l in 0..<k {
                    let nq = pos[l] < mIn ? base - lv[l] + (Int64(pos[l]) < rem ? 1 : 0) : 0
                    let rep = Int(t.runReplica[a + l])
                    if Int32(nq) != q[rep] { changed = true }
                    q[rep] = Int32(nq)
                    load[Int(t.runRank[a + l])] = lv[l] + nq
                }
            }
            if !changed { break }
            let cost = load.reduce(0) { $0 + $1 * $1 }, peak = load.max() ?? 0
            if peak <= bound || cost >= bestCost { break }
            bestCost = cost
            if peak < bestPeak { bestPeak = peak; stalled = 0 } else { stalled += 1 }
            if stalled >= CUDAKernels.splitStallPasses { break }
        }
        return q
    }
}
