/// WideEP's default policy: min–max replication, longest-processing-time packing, then local search.
///
/// 1. Replication gives every extra slot to the expert with the largest load per replica (capped at R replicas
///    unless same-rank replicas are allowed), which minimises the heaviest replica.
/// 2. Packing places replicas heaviest first on the least-loaded rank with room that does not hold the expert.
/// 3. Refinement exchanges slots between the heaviest rank and the others while that lowers the max rank load,
///    stopping at the lower bound max(mean rank load, heaviest replica) or a predicted imbalance of 0.003.
/// 4. Every rank that holds only single-replica experts trades a slot for a replica of a replicated expert (never
///    raising the max rank load), so that each rank can shed tokens through the balanced ReplicaSplit when traffic
///    drifts: on drifting traces this cuts the realized imbalance with the balanced split by about a third.
/// 5. With several nodes, a last pass evens out node loads (so inter-node traffic is even) without raising the
///    max rank load, and the refinement never lets a node exceed the heaviest node.
enum BalancedPlanner {
    static func planLayer(loads: [Double], request: PlannerRequest, layer: Int?, state: PackingState) throws
        -> Placement
    {
        state.reset(loads: loads)
        try plan(layer: layer, state: state)
        return try state.makePlacement(layer: layer)
    }

    /// Plans the layer loaded in `state` (by `reset(loads:)`) into its slot table.
    static func plan(layer: Int?, state: PackingState) throws {
        let order = state.replicateOrdered(slots: state.numSlots, cap: state.replicaCap)
        try state.packLPT(experts: order, ranks: 0..<state.numRanks, layer: layer)
        refine(state)
    }

    /// Predicted imbalance at which the local search stops: far below the per-step noise of real traffic
    /// (several percent), so searching further buys nothing measurable.
    static let tolerance = 3e-3

    /// Local search on a packed state; shared with the migration-aware planner.
    static func refine(_ state: PackingState) {
        let nodeAware = state.numNodes > 1
        var total = 0.0
        for e in 0..<state.numExperts { total += state.load[e] }
        let mean = total / Double(state.numRanks)
        let target = max(state.lowerBound, mean * (1 + tolerance))
        state.refineSwaps(maxRounds: 4 * state.numSlots, target: target, nodeAware: nodeAware)
        state.spreadFlexibility(cap: max(state.maxRankLoad, target))
        if nodeAware {
            state.balanceNodes(maxRounds: 4 * state.numSlots, tolerance: tolerance * total / Double(state.numNodes))
        }
    }
}
