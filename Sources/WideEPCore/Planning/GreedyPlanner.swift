/// TensorRT-LLM's greedy EPLB policy.
///
/// Replication: each extra slot goes to the expert with the highest load per replica. Packing: replicas in
/// decreasing load order (longest processing time first), each onto the least-loaded rank that still has a free slot
/// and, unless allowed, no replica of the same expert. Where that leaves no rank, a repair exchange makes room (see
/// `PackingState.repair`), so the policy never fails on a feasible request.
enum GreedyPlanner {
    static func planLayer(loads: [Double], request: PlannerRequest, layer: Int?, state: PackingState) throws
        -> Placement
    {
        try state.placement(loads: loads, layer: layer) { try plan(layer: layer, state: $0) }
    }

    /// Plans the layer loaded in `state` (by `reset(loads:)`) into its slot table.
    static func plan(layer: Int?, state: PackingState) throws {
        let order = state.replicateOrdered(slots: state.numSlots, cap: state.replicaCap)
        try state.packLPT(experts: order, ranks: 0..<state.numRanks, layer: layer)
    }
}
