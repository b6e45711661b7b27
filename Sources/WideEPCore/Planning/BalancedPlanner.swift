/// WideEP's default policy: min–max replication, longest-processing-time packing, then local search.
///
/// 1. Replication gives every extra slot to the expert with the largest load per replica (capped at R replicas
///    unless same-rank replicas are allowed), which minimises the heaviest replica.
/// 2. Packing places replicas heaviest first on the least-loaded rank with room that does not hold the expert.
/// 3. Refinement exchanges slots between the heaviest rank and the others while that lowers the max rank load,
///    stopping at the lower bound max(mean rank load, heaviest replica) or a predicted imbalance of 0.003.
/// 4. Drift risk: a rank's load on later steps is uncertain by about `drift`·sqrt(Σ slot weight²), so a rank holding
///    one heavy expert and light ones is riskier than one with several medium experts at the same load. Exchanges
///    between the riskiest rank and the others lower the largest load + risk without raising the max rank load
///    (`PackingState.spreadRisk`): on the benchmark traces this lowers the realized imbalance with an even split.
/// 5. Every rank that holds only single-replica experts trades a slot for a replica of a replicated expert (never
///    raising the max rank load), so that each rank can shed tokens through the balanced ReplicaSplit when traffic
///    drifts: on drifting traces this cuts the realized imbalance with the balanced split by about a third.
/// 6. With several nodes, a last pass evens out node loads (so inter-node traffic is even) without raising the
///    max rank load, and the refinement never lets a node exceed the heaviest node.
enum BalancedPlanner {
    static func planLayer(loads: [Double], request: PlannerRequest, layer: Int?, state: PackingState) throws
        -> Placement
    {
        try state.placement(loads: loads, layer: layer) { try plan(layer: layer, state: $0) }
    }

    /// Plans the layer loaded in `state` (by `reset(loads:)`) into its slot table: greedy's replication and packing
    /// (steps 1–2), then the local search.
    static func plan(layer: Int?, state: PackingState) throws {
        try GreedyPlanner.plan(layer: layer, state: state)
        refine(state)
    }

    /// Predicted imbalance at which the local search stops: far below the per-step noise of real traffic
    /// (several percent), so searching further buys nothing measurable.
    static let tolerance = 3e-3

    /// Relative drift of each expert's load assumed between the window a plan is made from and the steps it serves
    /// (step 4 above); 0.1 is the drift of a log-normal random walk with σ = 0.02 per step over
    /// a window of about 25 steps, the magnitude seen on the real R1 profiles' benchmark traces.
    static let drift = 0.1

    /// Local search on a packed state; shared with the migration-aware planner.
    static func refine(_ state: PackingState) {
        let nodeAware = state.numNodes > 1
        var total = 0.0
        for e in 0..<state.numExperts { total += state.load[e] }
        let mean = total / Double(state.numRanks)
        let target = max(state.lowerBound, mean * (1 + tolerance))
        state.refineSwaps(maxRounds: 4 * state.numSlots, target: target, nodeAware: nodeAware)
        // The later passes never raise the max rank load the search reached.
        let peak = state.maxRankLoad
        // A bounded pass (half as many rounds as ranks, the four least risky partners): most of the gain at a few
        // microseconds per layer. Node loads are evened out by the node pass below.
        state.spreadRisk(
            kappa: drift, cap: peak, maxRounds: max(1, state.numRanks / 2), partners: 4, nodeAware: false)
        state.spreadFlexibility(cap: peak)
        if nodeAware {
            state.balanceNodes(maxRounds: 4 * state.numSlots, tolerance: tolerance * total / Double(state.numNodes))
        }
    }
}
