/// Realized imbalance of placements on per-step expert counts (DESIGN.md §8).
///
/// For every step and layer the step's counts are split over the replicas with a `SplitPolicy`; a rank's load is the
/// tokens it computes (the sum of its slots' quotas), and the sample is (max − mean)/mean of those rank loads.
public enum PlacementEvaluator {
    /// Mean and p99 imbalance and balancedness over all layers × steps.
    ///
    /// - Parameters:
    ///   - placements: one placement per layer, [L].
    ///   - steps: tokens per expert for each step, [steps][L][E] (non-negative, finite; rounded to whole tokens).
    ///   - split: how each step's counts are divided over replicas.
    /// - Throws: `PlacementError.invalidArgument` when the shapes disagree or a count is negative or not finite.
    public static func evaluate(placements: [Placement], steps: [[[Double]]], split: SplitPolicy) throws
        -> ImbalanceSummary
    {
        var total = ImbalanceSummary()
        for layer in try evaluateLayers(placements: placements, steps: steps, split: split) { total.merge(layer) }
        return total
    }

    /// Like `evaluate`, but one summary per layer, [L], each over the steps.
    public static func evaluateLayers(placements: [Placement], steps: [[[Double]]], split: SplitPolicy) throws
        -> [ImbalanceSummary]
    {
        let nL = placements.count
        var out = [ImbalanceSummary](repeating: ImbalanceSummary(), count: nL)
        var scratch = ReplicaSplit.Scratch()
        for (t, step) in steps.enumerated() {
            guard step.count == nL else {
                throw PlacementError.invalidArgument(
                    "step \(t): counts have \(step.count) layers but there are \(nL) placements")
            }
            for l in 0..<nL {
                let p = placements[l]
                guard step[l].count == p.numExperts else {
                    throw PlacementError.invalidArgument(
                        "step \(t), layer \(l): counts have \(step[l].count) experts but the placement has "
                            + "\(p.numExperts)")
                }
                var counts = [Int32](repeating: 0, count: p.numExperts)
                for (e, x) in step[l].enumerated() {
                    guard x.isFinite && x >= 0 && x < Double(Int32.max) else {
                        throw PlacementError.invalidArgument(
                            "step \(t), layer \(l): count of expert \(e) is \(x); counts must be finite, >= 0 and "
                                + "below 2^31")
                    }
                    counts[e] = Int32(x.rounded())
                }
                out[l].add(rankLoads: rankLoads(counts: counts, placement: p, split: split, scratch: &scratch))
            }
        }
        return out
    }

    /// Rank loads of one layer-step: the counts split with `split`, summed per rank, [R].
    public static func rankLoads(
        counts: [Int32], placement: Placement, split: SplitPolicy, scratch: inout ReplicaSplit.Scratch
    ) -> [Double] {
        var quotas = [Int32](repeating: 0, count: placement.numSlots)
        var loads = [Double](repeating: 0, count: placement.numRanks)
        counts.withUnsafeBufferPointer { c in
            quotas.withUnsafeMutableBufferPointer { q in
                ReplicaSplit.quotas(expertCounts: c, placement: placement, policy: split, scratch: &scratch, into: q)
                loads.withUnsafeMutableBufferPointer { l in
                    ReplicaSplit.rankLoads(quotas: UnsafeBufferPointer(q), placement: placement, into: l)
                }
            }
        }
        return loads
    }
}
