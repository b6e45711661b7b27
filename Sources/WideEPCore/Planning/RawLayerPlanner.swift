/// Plans layers from raw float64 rows straight into DeepSeek-layout output rows: the fast path of the C ABI.
///
/// Gives the same slot tables as `Planner.plan` for every policy (the planners run on the same `PackingState`),
/// but reads loads in place and writes `phy2log` / `logcnt` rows directly, without building a validated
/// `Placement` per layer. With a `current` placement it re-plans through `Planner` (migration-aware), then writes.
///
/// One instance holds one layer's workspace; use one per thread.
package final class RawLayerPlanner {
    /// The request every layer is planned for.
    package let request: PlannerRequest
    /// Logical experts per layer (E).
    package let numExperts: Int
    private let state: PackingState

    /// A planner for layers of `numExperts` experts.
    ///
    /// - Throws: `PlacementError` when the request is invalid for this expert count.
    package init(numExperts: Int, request: PlannerRequest) throws {
        try request.validate(numExperts: numExperts)
        self.request = request
        self.numExperts = numExperts
        state = PackingState(numExperts: numExperts, request: request)
    }

    /// Plans one layer.
    ///
    /// - Parameters:
    ///   - loads: the layer's expert loads, [E], finite and >= 0 (the caller has checked them).
    ///   - current: the placement in use (migration-aware re-planning), or nil.
    ///   - layer: layer index for error messages.
    ///   - phy2log: out, [S]: the expert of each slot.
    ///   - logcnt: out, [E]: replicas of each expert; nil to skip.
    /// - Throws: `PlacementError` when no valid placement exists (e.g. no distinct-rank packing) or `current`
    ///   does not match the request.
    package func plan(
        loads: UnsafeBufferPointer<Double>, current: Placement?, layer: Int, phy2log: UnsafeMutablePointer<Int64>,
        logcnt: UnsafeMutablePointer<Int64>?
    ) throws {
        precondition(loads.count == numExperts, "RawLayerPlanner: \(loads.count) loads for \(numExperts) experts")
        let slots = request.numSlots
        if let current {
            let placement = try Planner.planLayer(
                loads: Array(loads), request: request, current: current, layer: layer, workspace: state)
            for s in 0..<slots { phy2log[s] = Int64(placement.slotExpert[s]) }
            if let logcnt { for e in 0..<numExperts { logcnt[e] = Int64(placement.replicaCount[e]) } }
            return
        }
        switch request.policy {
        case .none:
            for s in 0..<slots { phy2log[s] = Int64(s) }
            if let logcnt { for e in 0..<numExperts { logcnt[e] = 1 } }
            return
        case .greedy:
            state.reset(loads: loads)
            try GreedyPlanner.plan(layer: layer, state: state)
        case .deepseek:
            state.reset(loads: loads)
            try DeepSeekPlanner.plan(request: request, layer: layer, state: state)
        case .balanced:
            state.reset(loads: loads)
            try BalancedPlanner.plan(layer: layer, state: state)
        }
        let table = state.slotExpert
        for s in 0..<slots { phy2log[s] = Int64(table[s]) }
        if let logcnt {
            for e in 0..<numExperts { logcnt[e] = 0 }
            for s in 0..<slots { logcnt[Int(table[s])] &+= 1 }
        }
    }
}
