import WideEPCore

/// CPU twin of `balanced_split` written the kernel's way: the packed `SplitTables`, per-replica quotas, the multi
/// experts scheduled in levels (each expert one level above its predecessor on any of its ranks), a level's
/// water-fills done from one snapshot of its ranks' loads by position counting (what the lane groups do), and each
/// pass's squared load sum and peak taken over all ranks after the pass. Tests compare it with Core's `ReplicaSplit`
/// (the same quotas) without a GPU; the selftest compares the GPU with it.
public enum SplitReference {
    /// What one split computed, with the schedule the kernel would run.
    public struct Result: Equatable, Sendable {
        /// Per-replica quotas aligned with `placement.replicaSlots`, int32 [numSlots].
        public var quotas: [Int32]
        /// Levels of the schedule (barriered rounds per pass).
        public var levels: Int
        /// Passes run (the last one found nothing to change or met a stop rule).
        public var passes: Int
        /// Non-empty multi-rank experts (water-fill steps per pass).
        public var steps: Int
    }

    /// Per-replica quotas aligned with `placement.replicaSlots`, int32 [numSlots].
    public static func quotas(counts: [Int32], tables t: SplitTables, placement p: Placement) -> [Int32] {
        solve(counts: counts, tables: t, placement: p).quotas
    }

    /// The split and its schedule; `counts` int32 [E], each ≥ 0.
    public static func solve(counts: [Int32], tables t: SplitTables, placement p: Placement) -> Result {
        precondition(counts.count == p.numExperts, "one count per expert")
        let nR = p.numRanks, nM = t.multiCount
        var q = [Int32](repeating: 0, count: p.numSlots)
        var load = [Int64](repeating: 0, count: nR)
        var total: Int64 = 0
        // (B) Fixed loads; order of the non-empty multi experts (count descending, ties by id).
        for e in 0..<p.numExperts {
            let c = counts[e]
            precondition(c >= 0, "expert counts must be >= 0")
            total += Int64(c)
            if t.multiIndex[e] < 0 || c == 0 {
                q[Int(p.replicaStart[e])] = c
                load[Int(t.expertHome[e])] += Int64(c)
            }
        }
        let mCount = t.multiExpert.map { counts[Int($0)] }
        let active = mCount.map { $0 > 0 }
        var pos = [Int](repeating: 0, count: nM)
        for m in 0..<nM where active[m] {
            for j in 0..<nM where mCount[j] > mCount[m] || (mCount[j] == mCount[m] && j < m) { pos[m] += 1 }
        }
        // (C) Predecessor on the entry's rank.
        let nA = t.runRank.count
        var pred = [Int](repeating: -1, count: nA)
        for i in 0..<nA where active[Int(t.runOwner[i])] {
            let m = Int(t.runOwner[i]), r = Int(t.runRank[i])
            var best = -1
            for j in Int(t.rankStart[r])..<Int(t.rankStart[r + 1]) {
                let m2 = Int(t.rankMulti[j])
                guard active[m2] else { continue }
                if pos[m2] < pos[m] && pos[m2] > best { best = pos[m2]; pred[i] = m2 }
            }
        }
        let bound = max((total + Int64(nR) - 1) / Int64(nR), load.max() ?? 0)
        // (D) Levels by relaxation to the fixpoint, (E) buckets (ascending id within a level).
        var level = [Int](repeating: 0, count: nM)
        var moved = true
        while moved {
            moved = false
            for m in 0..<nM where active[m] {
                var lv = 0
                for i in Int(t.runStart[m])..<Int(t.runStart[m + 1]) where pred[i] >= 0 { lv = max(lv, level[pred[i]] + 1) }
                if lv != level[m] { level[m] = lv; moved = true }
            }
        }
        let nLevels = (0..<nM).filter { active[$0] }.map { level[$0] + 1 }.max() ?? 0
        var buckets = [[Int]](repeating: [], count: nLevels)
        for m in 0..<nM where active[m] { buckets[level[m]].append(m) }
        // Passes: the water-fills of a level read their ranks' loads, then write them (disjoint ranks).
        var runQ = [Int32](repeating: 0, count: nA)
        var bestCost = Int64.max, bestPeak = Int64.max, stalled = 0, passes = 0
        for _ in 0...CUDAKernels.splitPasses {
            passes += 1
            var changed = false
            for bucket in buckets {
                for m in bucket {
                    let a = Int(t.runStart[m]), k = Int(t.runStart[m + 1]) - a
                    let lv = (0..<k).map { load[Int(t.runRank[a + $0])] - Int64(runQ[a + $0]) }
                    let fill = waterFill(count: Int64(mCount[m]), loads: lv)
                    for l in 0..<k {
                        if Int32(truncatingIfNeeded: fill[l]) != runQ[a + l] { changed = true }
                        runQ[a + l] = Int32(truncatingIfNeeded: fill[l])
                        load[Int(t.runRank[a + l])] = lv[l] + fill[l]
                    }
                }
            }
            if !changed { break }
            let cost = load.reduce(Int64(0)) { $0 &+ $1 &* $1 }, peak = max(0, load.max() ?? 0)
            if peak <= bound || cost >= bestCost { break }
            bestCost = cost
            if peak < bestPeak { bestPeak = peak; stalled = 0 } else { stalled += 1 }
            if stalled >= CUDAKernels.splitStallPasses { break }
        }
        for i in 0..<nA where active[Int(t.runOwner[i])] { q[Int(t.runReplica[i])] = runQ[i] }
        return Result(quotas: q, levels: nLevels, passes: passes, steps: active.filter { $0 }.count)
    }

    /// One lane group's water-fill of `count` tokens over ranks with the other experts' `loads` (in run order):
    /// each lane's position by (load, run order), membership of the lightest up to the level, the remainder one token
    /// each to the lowest positions. Returns the quota of each rank.
    static func waterFill(count c: Int64, loads lv: [Int64]) -> [Int64] {
        let k = lv.count
        var pos = [Int](repeating: 0, count: k), prefix = [Int64](repeating: 0, count: k)
        for l in 0..<k {
            for j in 0..<k where lv[j] < lv[l] || (lv[j] == lv[l] && j < l) {
                pos[l] += 1
                prefix[l] += lv[j]
            }
        }
        let inc = (0..<k).map { pos[$0] == 0 || lv[$0] * Int64(pos[$0]) < c + prefix[$0] }
        let mIn = inc.filter { $0 }.count
        let top = (0..<k).first { inc[$0] && pos[$0] == mIn - 1 }!
        let tot = c + prefix[top] + lv[top]
        let base = tot / Int64(mIn), rem = tot - base * Int64(mIn)
        return (0..<k).map { pos[$0] < mIn ? base - lv[$0] + (Int64(pos[$0]) < rem ? 1 : 0) : 0 }
    }
}
