/// Per-layer, per-expert token counts over recent steps: a sliding window plus an exponential decay.
///
/// TensorRT-LLM decays its statistics by 0.9 per step; `decay` is that factor. The window keeps the last
/// `windowSize` steps exactly so that a planner can also use plain sums.
public struct LoadStatistics: Sendable, Equatable {
    /// MoE layers (L).
    public let numLayers: Int
    /// Experts per layer (E).
    public let numExperts: Int
    /// Steps kept exactly.
    public let windowSize: Int
    /// Per-step multiplier of the decayed loads, in (0, 1].
    public let decay: Double

    /// Ring of per-step counts, [windowSize][L × E].
    private var ring: [[Double]]
    /// Next ring index to write.
    private var head = 0
    /// Steps recorded so far (not capped by the window).
    public private(set) var stepsRecorded = 0
    /// Running sum of the steps in the window, [L × E].
    private var windowTotal: [Double]
    /// Exponentially decayed loads, [L × E].
    private var decayedTotal: [Double]

    public init(numLayers: Int, numExperts: Int, windowSize: Int = 100, decay: Double = 0.9) {
        precondition(numLayers >= 1 && numExperts >= 1 && windowSize >= 1 && decay > 0 && decay <= 1)
        self.numLayers = numLayers
        self.numExperts = numExperts
        self.windowSize = windowSize
        self.decay = decay
        ring = []
        windowTotal = [Double](repeating: 0, count: numLayers * numExperts)
        decayedTotal = windowTotal
    }

    /// Records one step's counts for every layer, [L × E] row-major (layer-major).
    public mutating func record<C: Collection>(step counts: C) where C.Element == Double {
        precondition(counts.count == numLayers * numExperts, "step counts must be [layers × experts]")
        let row = Array(counts)
        if ring.count < windowSize {
            ring.append(row)
        } else {
            let old = ring[head]
            for i in 0..<row.count { windowTotal[i] -= old[i] }
            ring[head] = row
        }
        head = (head + 1) % windowSize
        for i in 0..<row.count {
            windowTotal[i] += row[i]
            decayedTotal[i] = decayedTotal[i] * decay + row[i]
        }
        stepsRecorded += 1
    }

    /// Sum of the counts in the window, [L][E].
    public var windowLoads: [[Double]] { split(windowTotal) }

    /// Exponentially decayed loads, [L][E].
    public var decayedLoads: [[Double]] { split(decayedTotal) }

    /// The most recent step's counts, [L][E], or nil before the first step.
    public var lastStep: [[Double]]? {
        guard !ring.isEmpty else { return nil }
        return split(ring[(head - 1 + ring.count) % ring.count])
    }

    /// Clears the window and the decayed loads.
    public mutating func reset() {
        ring = []
        head = 0
        stepsRecorded = 0
        for i in 0..<windowTotal.count { windowTotal[i] = 0; decayedTotal[i] = 0 }
    }

    private func split(_ flat: [Double]) -> [[Double]] {
        (0..<numLayers).map { Array(flat[$0 * numExperts..<($0 + 1) * numExperts]) }
    }
}
