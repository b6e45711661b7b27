import WideEPCore

/// CPU twin of `balanced_split_warp` written the kernel's way, from the same packed `SplitWarpTables`: fixed rank
/// loads from the single-rank experts' homes, then one or both of the kernel's schedules, each a sequence of levels
/// whose water-fills read and write disjoint ranks, with each pass's squared load sum and peak over all ranks:
/// - `.certified(shift:)` (placements the kernel certifies: ≤ 128 multi experts, ≤ 128 ranks): the levels are the
///   tables' colors that hold a non-empty expert; after each pass but the first the prefix lower bound
///   (`prefixBound`), and the passes stop once the peak is within 1 + 2^-shift of the best bound (or at the
///   mean/fixed bound). Passes that end otherwise fall back to
/// - Core's schedule: each multi expert's predecessors (earlier in visiting order, count descending then id) among its
///   conflict mask, levels as the rounds of "all predecessors done", Core's stop rules, from the fixed loads. These
///   are Core's steps in another order of independent steps, so the quotas equal Core's `ReplicaSplit`.
/// The selftest compares the GPU with this twin (identical quotas) and the twin with Core (tests, without a GPU).
public enum SplitReference {
    /// What one split computed, with the schedule the kernel would run.
    public struct Result: Equatable, Sendable {
        /// Per-replica quotas aligned with `placement.replicaSlots`, int32 [numSlots].
        public var quotas: [Int32]
        /// Levels (barriered rounds per pass) of the last schedule run.
        public var levels: Int
        /// Passes run over both schedules (a pass that changed nothing or met a stop rule counts).
        public var passes: Int
        /// Level rounds run over both schedules (Σ levels × passes).
        public var rounds: Int
        /// Non-empty multi-rank experts (water-fill steps per pass).
        public var steps: Int
        /// Whether the certified passes ended without their certificate and Core's schedule ran after them.
        public var fellBack: Bool
    }

    /// Per-replica quotas aligned with `placement.replicaSlots`, int32 [numSlots].
    public static func quotas(
        counts: [Int32], tables t: SplitTables, placement p: Placement, stop: SplitStop = .default
    ) -> [Int32] {
        solve(counts: counts, tables: t, placement: p, stop: stop).quotas
    }

    /// The split and its schedule; `counts` int32 [E], each ≥ 0. `stall`: passes without a lower peak before stopping.
    public static func solve(
        counts: [Int32], tables t: SplitTables, placement p: Placement, stall: Int = CUDAKernels.splitWarpStallPasses,
        stop: SplitStop = .default
    ) -> Result {
        precondition(counts.count == p.numExperts, "one count per expert")
        for c in counts { precondition(c >= 0, "expert counts must be >= 0") }
        let w = SplitWarpTables(tables: t, placement: p, limit: .max)!
        let tab = w.packed, nR = p.numRanks, nS = p.numSlots, nM = t.multiCount, mmax = w.multiCapacity
        let offHome = SplitWarpTables.homeOffset(p), offInfo = SplitWarpTables.infoOffset(p)
        let offRun = w.runOffset(p)
        // Fixed quotas and rank loads; the total and the lower bound.
        var q = [Int32](repeating: 0, count: nS)
        for i in 0..<nS where tab[i] >= 0 { q[i] = counts[Int(tab[i])] }
        var fixed = [Int64](repeating: 0, count: nR)
        for e in 0..<p.numExperts where tab[offHome + e] >= 0 { fixed[Int(tab[offHome + e])] += Int64(counts[e]) }
        let cnt = (0..<nM).map { counts[Int(tab[offInfo + $0] & 0xffff)] }
        let k = (0..<nM).map { Int(tab[offInfo + $0] >> 16 & 0xff) }
        let total = fixed.reduce(0, +) + cnt.reduce(Int64(0)) { $0 + Int64($1) }
        let bound = max((total + Int64(nR) - 1) / Int64(nR), fixed.max() ?? 0)
        let ranks = (0..<nM).map { m in (0..<k[m]).map { Int(tab[offRun + $0 * mmax + m] >> 16) } }
        func replica(_ m: Int, _ i: Int) -> Int { Int(tab[offRun + i * mmax + m] & 0xffff) }
        var load = fixed
        var runQ = (0..<nM).map { [Int32](repeating: 0, count: k[$0]) }
        var out = Result(quotas: [], levels: 0, passes: 0, rounds: 0, steps: cnt.filter { $0 > 0 }.count,
                         fellBack: false)
        // The passes over `buckets` (levels of multi experts); `shift` certifies (nil: Core's stop rules). Returns
        // whether a certificate (or the bound) ended them.
        func passes(_ buckets: [[Int]], certify shift: Int?) -> Bool {
            var bestCost = Int64.max, bestPeak = Int64.max, bestBound = bound, stalled = 0
            out.levels = buckets.count
            for pass in 0...CUDAKernels.splitPasses {
                out.passes += 1
                out.rounds += buckets.count
                var changed = false
                for bucket in buckets {
                    for m in bucket {
                        let lv = (0..<k[m]).map { load[ranks[m][$0]] - Int64(runQ[m][$0]) }
                        let c = Int64(cnt[m])
                        let fill = k[m] == 2 ? waterFillPair(count: c, loads: lv)
                            : k[m] <= 4 ? waterFillQuad(count: c, loads: lv) : waterFill(count: c, loads: lv)
                        for i in 0..<k[m] {
                            let nq = Int32(truncatingIfNeeded: fill[i])
                            if nq != runQ[m][i] { changed = true }
                            runQ[m][i] = nq
                            load[ranks[m][i]] = lv[i] + fill[i]
                        }
                    }
                }
                if shift == nil && !changed { return false }
                let cost = load.reduce(Int64(0)) { $0 &+ $1 &* $1 }, peak = max(0, load.max() ?? 0)
                if peak <= bound { return true }
                if let shift {
                    // Not after the first pass (its fill from the fixed loads is rarely within the tolerance).
                    if pass > 0 {
                        bestBound = max(bestBound, prefixBound(loads: load, fixed: fixed, ranks: ranks, counts: cnt))
                        if peak - bestBound <= bestBound >> Int64(shift) { return true }
                    }
                    if !changed { return false }
                }
                if cost >= bestCost { return false }
                bestCost = cost
                if peak < bestPeak { bestPeak = peak; stalled = 0 } else { stalled += 1 }
                if stalled >= stall { return false }
            }
            return false
        }
        let certifiable = nM <= SplitWarpTables.maxMultiExperts && nR <= SplitWarpTables.maxCertifiedRanks
        var done = false
        if case .certified(let shift) = stop, certifiable {
            // Levels: the colors holding a non-empty expert, in color order.
            let used = Set((0..<nM).filter { cnt[$0] > 0 }.map { w.colors[$0] }).sorted()
            done = passes(used.map { c in (0..<nM).filter { cnt[$0] > 0 && w.colors[$0] == c } }, certify: shift)
            if !done {
                out.fellBack = true
                load = fixed
                runQ = (0..<nM).map { [Int32](repeating: 0, count: k[$0]) }
            }
        }
        if !done {
            // Core's order: predecessors and levels.
            var pred = [[Int]](repeating: [], count: nM)
            for m in 0..<nM where cnt[m] > 0 {
                pred[m] = w.conflicts(of: m, placement: p).filter { o in
                    cnt[o] > cnt[m] || (cnt[o] == cnt[m] && o < m)
                }
            }
            var level = [Int](repeating: -1, count: nM)
            var isDone = cnt.map { $0 == 0 }
            var nLevels = 0
            while isDone.contains(false) {
                let ready = (0..<nM).filter { !isDone[$0] && pred[$0].allSatisfy { isDone[$0] } }
                for m in ready { level[m] = nLevels; isDone[m] = true }
                nLevels += 1
            }
            _ = passes((0..<nLevels).map { l in (0..<nM).filter { level[$0] == l } }, certify: nil)
        }
        for m in 0..<nM { for i in 0..<k[m] { q[replica(m, i)] = runQ[m][i] } }
        out.quotas = q
        return out
    }

    /// The kernel's lower bound on every split's max rank load from `loads` [R]: ranks by load descending (ties by
    /// id); the k heaviest carry their `fixed` loads plus the `counts` of the multi experts whose `ranks` all lie
    /// among them, so ⌈that / k⌉; the largest over k.
    static func prefixBound(loads: [Int64], fixed: [Int64], ranks: [[Int]], counts: [Int32]) -> Int64 {
        let nR = loads.count
        var pos = [Int](repeating: 0, count: nR)
        for r in 0..<nR {
            for j in 0..<nR where loads[j] > loads[r] || (loads[j] == loads[r] && j < r) { pos[r] += 1 }
        }
        var bin = [Int64](repeating: 0, count: nR)
        for r in 0..<nR { bin[pos[r]] = fixed[r] }
        for (m, rs) in ranks.enumerated() where counts[m] > 0 { bin[rs.map { pos[$0] }.max()!] += Int64(counts[m]) }
        var sum: Int64 = 0, best: Int64 = 0
        for i in 0..<nR {
            sum += bin[i]
            best = max(best, (sum + Int64(i)) / Int64(i + 1))
        }
        return best
    }

    /// The kernel's closed-form water-fill of `count` tokens over exactly two ranks with the other experts' `loads`
    /// (in run order, each ≥ 0): with d the heavier load minus the lighter (on a tie run order 0 is the lighter), the
    /// heavier rank joins only when d < count and gets ⌊(count − d) / 2⌋, the lighter the rest (so the odd remainder
    /// token too). Equals `waterFill` and Core's water-fill for k = 2. Returns the quota of each rank.
    static func waterFillPair(count c: Int64, loads lv: [Int64]) -> [Int64] {
        precondition(lv.count == 2, "two ranks")
        let oneLighter = lv[1] < lv[0]
        let d = oneLighter ? lv[0] - lv[1] : lv[1] - lv[0]
        let heavy = c > d ? (c - d) >> 1 : 0, light = c - heavy
        return oneLighter ? [heavy, light] : [light, heavy]
    }

    /// The kernel's water-fill of `count` tokens over three or four ranks with the other experts' `loads` (in run
    /// order, each ≥ 0), step for step: keys load·32 + run index (an absent fourth rank sorts last), sorted by the
    /// 5-exchange network (0,1) (2,3) (0,2) (1,3) (1,2); the sorted ranks 2, 3, 4 join while their load times the
    /// ranks before them is below the count plus those ranks' loads; the level divides by 1…4; the remainder goes one
    /// token each to the keys up to the rem-th smallest. Equals `waterFill` and Core's fill. Returns each rank's quota.
    static func waterFillQuad(count c: Int64, loads lv: [Int64]) -> [Int64] {
        precondition(lv.count == 3 || lv.count == 4, "three or four ranks")
        let four = lv.count == 4
        let key = [lv[0] << 5, lv[1] << 5 | 1, lv[2] << 5 | 2, four ? lv[3] << 5 | 3 : Int64.max]
        var s = key
        for (x, y) in [(0, 1), (2, 3), (0, 2), (1, 3), (1, 2)] where s[y] < s[x] { s.swapAt(x, y) }
        let m1 = s[1] >> 5, m2 = s[2] >> 5, m3 = s[3] >> 5
        let p1 = c + (s[0] >> 5), p2 = p1 + m1, p3 = p2 + m2
        let in2 = m1 < p1, in3 = in2 && m2 * 2 < p2, in4 = four && in3 && m3 * 3 < p3
        let n: Int64 = in4 ? 4 : in3 ? 3 : in2 ? 2 : 1
        let tot = in4 ? p3 + m3 : in3 ? p3 : in2 ? p2 : p1
        let kIn = s[Int(n) - 1]
        let base = tot / n, rem = Int(tot - base * n)
        let kRem = rem == 0 ? -1 : s[rem - 1]
        return (0..<lv.count).map { key[$0] <= kIn ? base - lv[$0] + (key[$0] <= kRem ? 1 : 0) : 0 }
    }

    /// One expert's water-fill of `count` tokens over ranks with the other experts' `loads` (in run order): each
    /// rank's position by (load, run order), membership of the lightest up to the level, the remainder one token
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
        let tot = c + (0..<k).filter { inc[$0] }.reduce(Int64(0)) { $0 + lv[$1] }
        let base = tot / Int64(mIn), rem = tot - base * Int64(mIn)
        return (0..<k).map { inc[$0] ? base - lv[$0] + (Int64(pos[$0]) < rem ? 1 : 0) : 0 }
    }
}
