/// Per-step expert counts, [steps][layers][experts], stored flat and row-major.
public struct TrafficTrace: Sendable, Equatable {
    /// Steps (S).
    public let steps: Int
    /// MoE layers (L).
    public let layers: Int
    /// Experts per layer (E).
    public let experts: Int
    /// Tokens routed to each expert, [steps × layers × experts] row-major (whole numbers).
    public var counts: [Double]

    /// A trace over flat counts, [steps × layers × experts].
    public init(steps: Int, layers: Int, experts: Int, counts: [Double]) {
        precondition(counts.count == steps * layers * experts, "counts must be [steps × layers × experts]")
        self.steps = steps
        self.layers = layers
        self.experts = experts
        self.counts = counts
    }

    /// Counts of step `t`, [L][E].
    public func step(_ t: Int) -> [[Double]] {
        (0..<layers).map { l in
            let base = (t * layers + l) * experts
            return Array(counts[base..<(base + experts)])
        }
    }

    /// Every step, [steps][L][E].
    public var nested: [[[Double]]] { (0..<steps).map(step) }

    /// Counts summed over `range` of steps, [L][E] (what an offline planner plans from).
    public func summed(steps range: Range<Int>) -> [[Double]] {
        var out = [[Double]](repeating: [Double](repeating: 0, count: experts), count: layers)
        for t in range {
            for l in 0..<layers {
                let base = (t * layers + l) * experts
                for e in 0..<experts { out[l][e] += counts[base + e] }
            }
        }
        return out
    }
}
