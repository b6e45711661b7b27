/// Predicted effect of a plan: per-layer imbalance of the loads it was planned from, before and after, and the
/// slot rewrites it needs.
///
/// "Predicted" means judged on the same loads the plan was made from, with each expert's load split evenly over its
/// replicas (DESIGN.md §8 calls the judgement on later steps "realized"; see `PlacementEvaluator`).
public struct PlanSummary: Sendable, Codable, Equatable {
    /// One layer's numbers.
    public struct Layer: Sendable, Codable, Equatable {
        /// Layer index.
        public var layer: Int
        /// (max − mean)/mean of the rank loads under the old placement.
        public var imbalanceBefore: Double
        /// (max − mean)/mean of the rank loads under the new placement.
        public var imbalanceAfter: Double
        /// mean/max under the old placement.
        public var balancednessBefore: Double
        /// mean/max under the new placement.
        public var balancednessAfter: Double
        /// Slots whose expert changes (rewrites).
        public var moves: Int
    }

    /// Per-layer rows, [L].
    public var layers: [Layer]

    /// Mean over layers of the imbalance before.
    public var meanImbalanceBefore: Double { mean(layers.map(\.imbalanceBefore)) }
    /// Mean over layers of the imbalance after.
    public var meanImbalanceAfter: Double { mean(layers.map(\.imbalanceAfter)) }
    /// Largest per-layer imbalance after.
    public var maxImbalanceAfter: Double { layers.map(\.imbalanceAfter).max() ?? 0 }
    /// Slot rewrites over all layers.
    public var totalMoves: Int { layers.reduce(0) { $0 + $1.moves } }

    /// A summary from per-layer rows.
    public init(layers: [Layer]) { self.layers = layers }

    /// Summarizes a plan.
    ///
    /// - Parameters:
    ///   - loads: the loads the plan was made from, [L][E].
    ///   - before: the placements in use, [L].
    ///   - after: the planned placements, [L], with the same slot count as `before`.
    /// - Throws: `PlacementError.invalidArgument` when the layer, expert or slot counts disagree.
    public static func summarize(loads: [[Double]], before: [Placement], after: [Placement]) throws -> PlanSummary {
        guard loads.count == before.count && loads.count == after.count else {
            throw PlacementError.invalidArgument(
                "plan summary needs one placement per layer: loads have \(loads.count) layers, before \(before.count), "
                    + "after \(after.count)")
        }
        var rows: [Layer] = []
        rows.reserveCapacity(loads.count)
        for l in 0..<loads.count {
            let b = before[l], a = after[l]
            guard loads[l].count == b.numExperts && loads[l].count == a.numExperts else {
                throw PlacementError.invalidArgument(
                    "layer \(l): loads have \(loads[l].count) experts, placements \(b.numExperts) and \(a.numExperts)")
            }
            guard b.numSlots == a.numSlots else {
                throw PlacementError.invalidArgument(
                    "layer \(l): before has \(b.numSlots) slots, after \(a.numSlots); moves need equal slot counts")
            }
            let lb = b.rankLoads(expertLoads: loads[l]), la = a.rankLoads(expertLoads: loads[l])
            rows.append(Layer(
                layer: l, imbalanceBefore: Imbalance.ratio(lb), imbalanceAfter: Imbalance.ratio(la),
                balancednessBefore: Imbalance.balancedness(lb), balancednessAfter: Imbalance.balancedness(la),
                moves: b.moves(to: a)))
        }
        return PlanSummary(layers: rows)
    }

    private func mean(_ xs: [Double]) -> Double { xs.isEmpty ? 0 : xs.reduce(0, +) / Double(xs.count) }
}
