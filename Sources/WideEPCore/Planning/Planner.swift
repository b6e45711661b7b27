/// The EPLB planner: expert loads → a placement per layer (DESIGN.md §3).
///
/// Every policy is deterministic: the same loads and request give the same placements on every platform. With a
/// `current` placement the `balanced` policy re-plans migration-aware (few slot rewrites, see `MigrationAwarePlanner`);
/// `greedy` and `deepseek` plan from scratch and then only reorder ranks and slots to keep as many slots as possible
/// unchanged; `none` ignores it.
public enum Planner {
    /// Plans every layer.
    ///
    /// - Parameters:
    ///   - loads: tokens routed to each expert, [L][E] (non-negative, finite; any scale).
    ///   - request: slots, topology, policy and constraints.
    ///   - current: the placements in use, [L], each with E experts and `request.numSlots` slots; non-nil asks for
    ///     migration-aware re-planning from them.
    /// - Returns: one placement per layer, [L].
    /// - Throws: `PlacementError` for a bad request, bad loads or a `current` that does not match.
    public static func plan(loads: [[Double]], request: PlannerRequest, current: [Placement]? = nil) throws
        -> [Placement]
    {
        guard let first = loads.first else {
            throw PlacementError.invalidArgument("loads have no layers; expected [layers][experts]")
        }
        if let current, current.count != loads.count {
            throw PlacementError.invalidArgument(
                "current placement has \(current.count) layers but the loads have \(loads.count)")
        }
        for (l, row) in loads.enumerated() where row.count != first.count {
            throw PlacementError.invalidArgument(
                "layer \(l): loads have \(row.count) experts but layer 0 has \(first.count)")
        }
        try request.validate(numExperts: first.count)
        var out: [Placement] = []
        out.reserveCapacity(loads.count)
        let workspace = PackingState(numExperts: first.count, request: request)
        for l in 0..<loads.count {
            out.append(try planLayer(loads: loads[l], request: request, current: current?[l], layer: l, workspace: workspace))
        }
        return out
    }

    /// Plans one layer.
    ///
    /// - Parameters:
    ///   - loads: tokens routed to each expert, [E].
    ///   - request: slots, topology, policy and constraints.
    ///   - current: the placement in use; non-nil asks for migration-aware re-planning.
    ///   - layer: layer index used in error messages.
    /// - Throws: `PlacementError` for a bad request, bad loads or a mismatching `current`.
    public static func planLayer(
        loads: [Double], request: PlannerRequest, current: Placement? = nil, layer: Int? = nil
    ) throws -> Placement {
        try request.validate(numExperts: loads.count)
        let workspace = PackingState(numExperts: loads.count, request: request)
        return try planLayer(loads: loads, request: request, current: current, layer: layer, workspace: workspace)
    }

    static func planLayer(
        loads: [Double], request: PlannerRequest, current: Placement?, layer: Int?, workspace: PackingState
    ) throws -> Placement {
        try validate(loads: loads, layer: layer)
        if let current { try validate(current: current, numExperts: loads.count, request: request, layer: layer) }
        switch request.policy {
        case .none:
            return try Placement.identity(numExperts: loads.count, numRanks: request.topology.numRanks)
        case .greedy:
            let p = try GreedyPlanner.planLayer(loads: loads, request: request, layer: layer, state: workspace)
            return try current.map { try PlacementAlignment.align(p, to: $0, topology: request.topology) } ?? p
        case .deepseek:
            let p = try DeepSeekPlanner.planLayer(loads: loads, request: request, layer: layer, state: workspace)
            return try current.map { try PlacementAlignment.align(p, to: $0, topology: request.topology) } ?? p
        case .balanced:
            if let current {
                return try MigrationAwarePlanner.replan(
                    loads: loads, request: request, current: current, layer: layer, state: workspace)
            }
            return try BalancedPlanner.planLayer(loads: loads, request: request, layer: layer, state: workspace)
        }
    }

    /// Throws unless every load is finite and non-negative.
    static func validate(loads: [Double], layer: Int?) throws {
        for (e, x) in loads.enumerated() where !(x.isFinite && x >= 0) {
            throw PlacementError.invalidArgument(
                (layer.map { "layer \($0): " } ?? "") + "load of expert \(e) is \(x); loads must be finite and >= 0")
        }
    }

    /// Throws unless `current` has the request's shape.
    static func validate(current: Placement, numExperts: Int, request: PlannerRequest, layer: Int?) throws {
        let where_ = layer.map { "layer \($0): " } ?? ""
        guard current.numExperts == numExperts else {
            throw PlacementError.invalidArgument(
                where_ + "current placement has \(current.numExperts) experts but the loads have \(numExperts)")
        }
        guard current.numSlots == request.numSlots && current.numRanks == request.topology.numRanks else {
            throw PlacementError.invalidArgument(
                where_ + "current placement has \(current.numSlots) slots on \(current.numRanks) ranks but the "
                    + "request asks for \(request.numSlots) slots on \(request.topology.numRanks) ranks")
        }
    }
}
