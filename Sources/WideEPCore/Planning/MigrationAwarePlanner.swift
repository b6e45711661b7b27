/// Migration-aware re-planning for the `balanced` policy: start from the placement in use and rewrite only the
/// slots that must change.
///
/// 1. Plan from scratch once, to learn the replica counts and the max rank load that are reachable.
/// 2. From the current table, free surplus replicas (experts that now need fewer), heaviest ranks first, and write
///    the missing replicas (experts that now need more) into the freed slots, heaviest replica onto the lightest rank.
/// 3. Exchange slots between the heaviest rank and the others, choosing the exchange with the largest drop of the
///    peak per rewritten slot, until the predicted imbalance is within `request.migrationTolerance` of the
///    from-scratch plan or nothing improves.
/// 4. Give ranks without a replicated-expert slot one, as the balanced planner does (within the same target).
enum MigrationAwarePlanner {
    static func replan(
        loads: [Double], request: PlannerRequest, current: Placement, layer: Int?, state: PackingState
    ) throws -> Placement {
        let fresh = try BalancedPlanner.planLayer(loads: loads, request: request, layer: layer, state: state)
        let e = loads.count
        let freshPeak = state.maxRankLoad
        let mean = loads.reduce(0, +) / Double(state.numRanks)
        let target = max(freshPeak, mean * (1 + 1e-12)) + request.migrationTolerance * mean
        let wanted = (0..<e).map { state.count[$0] }
        state.reset(loads: loads)
        state.adopt(current)
        if state.maxRankLoad <= target { return current }

        try recount(wanted: wanted, current: current, state: state, layer: layer)
        improve(current: current, target: target, state: state)
        if state.maxRankLoad <= target { state.spreadFlexibility(cap: target) }
        let out = try state.makePlacement(layer: layer)
        // Never worse than planning from scratch: if the search could not get close, take the fresh plan aligned.
        if state.maxRankLoad > target {
            return try PlacementAlignment.align(fresh, to: current, topology: request.topology)
        }
        return out
    }

    /// Moves the replica counts from the current ones to `wanted`, rewriting one slot per changed replica.
    static func recount(wanted: [Int32], current: Placement, state: PackingState, layer: Int?) throws {
        let e = state.numExperts, p = state.slotsPerRank
        // Free surplus replicas, taking the slots on the heaviest ranks first.
        var freed: [Int] = []
        for x in 0..<e where state.count[x] > wanted[x] {
            var slots = current.replicas(of: x).map(Int.init)
            slots.sort { state.rankLoad[$0 / p] > state.rankLoad[$1 / p] || (state.rankLoad[$0 / p] == state.rankLoad[$1 / p] && $0 < $1) }
            for s in slots.prefix(Int(state.count[x] - wanted[x])) {
                state.rankLoad[s / p] -= state.slotWeight[s]
                state.slotExpert[s] = -1
                state.slotWeight[s] = 0
                freed.append(s)
            }
        }
        guard !freed.isEmpty else { return }
        for x in 0..<e { state.count[x] = wanted[x] }
        state.recomputeWeights()
        // Missing replicas, heaviest first, into the freed slot on the lightest rank without the expert.
        var missing: [Int32] = []
        for x in 0..<e {
            let have = current.replicaCount[x]
            if wanted[x] > have { missing += [Int32](repeating: Int32(x), count: Int(wanted[x] - have)) }
        }
        missing = missing.sorted {
            let a = state.load[Int($0)] / Double(wanted[Int($0)]), b = state.load[Int($1)] / Double(wanted[Int($1)])
            return a > b || (a == b && $0 < $1)
        }
        for x in missing {
            let w = state.load[Int(x)] / Double(state.count[Int(x)])
            var best = -1
            for (i, s) in freed.enumerated() where !state.blocks(rank: s / p, expert: x) {
                if best < 0 || state.rankLoad[s / p] < state.rankLoad[freed[best] / p] { best = i }
            }
            if best >= 0 {
                state.put(expert: x, weight: w, slot: freed[best])
                freed.remove(at: best)
                continue
            }
            // Every free slot's rank holds x: move another expert g from a rank without x into a free slot.
            var done = false
            outer: for (i, f) in freed.enumerated() {
                for s in 0..<state.numSlots where state.slotExpert[s] >= 0 && state.slotExpert[s] != x {
                    let g = state.slotExpert[s]
                    if state.blocks(rank: s / p, expert: x) || state.blocks(rank: f / p, expert: g) { continue }
                    let wg = state.slotWeight[s]
                    state.rankLoad[s / p] -= wg
                    state.slotExpert[s] = -1
                    state.put(expert: g, weight: wg, slot: f)
                    state.put(expert: x, weight: w, slot: s)
                    freed.remove(at: i)
                    done = true
                    break outer
                }
            }
            if !done {
                throw PlacementError.invalidArgument(
                    (layer.map { "layer \($0): " } ?? "") + "cannot place replicas of expert \(x) on distinct ranks")
            }
        }
        state.recomputeNodeLoads()
    }

    /// Exchange search with a rewrite cost: each round takes the exchange (heaviest rank ↔ any other) with the
    /// largest drop of the pair's peak per net rewritten slot, until the max rank load reaches `target`.
    static func improve(current: Placement, target: Double, state: PackingState) {
        let p = state.slotsPerRank, rCount = state.numRanks
        let cur = current.slotExpert
        let order = state.rankOrder
        for r in 0..<rCount { order[r] = Int32(r) }
        for _ in 0..<(4 * state.numSlots) {
            // Ranks by load, ascending (nearly sorted from the previous round).
            for i in 1..<max(rCount, 1) {
                let x = order[i], lx = state.rankLoad[Int(x)]
                var j = i
                while j > 0 {
                    let y = order[j - 1], ly = state.rankLoad[Int(y)]
                    if ly < lx || (ly == lx && y < x) { break }
                    order[j] = y
                    j -= 1
                }
                order[j] = x
            }
            let h = Int(order[rCount - 1])
            let lh = state.rankLoad[h]
            if lh <= target { return }
            let eps = 1e-12 * lh
            var bestScore = 0.0
            var bi = -1, bj = -1
            for k in 0..<(rCount - 1) {
                let r = Int(order[k])
                let lr = state.rankLoad[r]
                let gap = lh - lr
                // An exchange with this rank drops the peak by at most gap / 2, at a cost of at least one.
                if gap * 0.5 <= bestScore { break }
                for i in (h * p)..<((h + 1) * p) {
                    let wi = state.slotWeight[i], ei = state.slotExpert[i]
                    for j in (r * p)..<((r + 1) * p) {
                        let d = wi - state.slotWeight[j]
                        if d <= eps || d >= gap { continue }
                        let drop = lh - max(lh - d, lr + d)
                        let ej = state.slotExpert[j]
                        let before = (ei != cur[i] ? 1 : 0) + (ej != cur[j] ? 1 : 0)
                        let after = (ej != cur[i] ? 1 : 0) + (ei != cur[j] ? 1 : 0)
                        let score = drop / Double(max(after - before, 0) + 1)
                        if score <= bestScore { continue }
                        if ej == ei || state.blocks(rank: r, expert: ei) || state.blocks(rank: h, expert: ej) { continue }
                        bestScore = score; bi = i; bj = j
                    }
                }
            }
            if bi < 0 { return }
            state.swapSlots(bi, bj)
        }
    }
}
