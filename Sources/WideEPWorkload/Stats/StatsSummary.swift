import WideEPCore

/// What `wide-ep stats` reports about a stats file: per-layer skew, hottest experts, and the imbalance of the
/// unbalanced (identity, contiguous) placement at an EP size.
public struct StatsSummary: Sendable, Codable, Equatable {
    /// One layer's numbers.
    public struct Layer: Sendable, Codable, Equatable {
        /// Row index in the file.
        public var index: Int
        /// The model's layer number (the file's layer id, else the index).
        public var layer: Int
        /// Tokens routed to the layer's experts, summed.
        public var tokens: Double
        /// Hottest expert's load / mean expert load.
        public var hottestRatio: Double
        /// Coefficient of variation of expert loads (population std / mean).
        public var cv: Double
        /// The hottest experts, hottest first, with load / mean.
        public var hottest: [Expert]
        /// (max − mean)/mean of rank loads with expert e on rank e / (E/R) and no replicas.
        public var imbalance: Double
        /// mean/max of the same rank loads.
        public var balancedness: Double
    }

    /// An expert and its load relative to the layer mean.
    public struct Expert: Sendable, Codable, Equatable {
        /// Expert id within the layer.
        public var expert: Int
        /// The expert's load / the layer's mean expert load.
        public var ratio: Double
    }

    /// Layers (L), experts (E) and steps (nil without a per-step axis).
    public var numLayers: Int, numExperts: Int, numSteps: Int?
    /// EP size the imbalance is computed at.
    public var epSize: Int
    /// Per-layer rows from the totals, [L].
    public var layers: [Layer]
    /// Mean over layers of the totals' imbalance.
    public var meanImbalance: Double
    /// Largest per-layer imbalance of the totals.
    public var maxImbalance: Double
    /// Mean over layers of balancedness.
    public var meanBalancedness: Double
    /// Smallest and largest hottest-expert ratio over layers.
    public var hottestRatioRange: [Double]
    /// With a per-step axis: the unbalanced placement's imbalance per layer × step (mean, p99, balancedness).
    public var perStepImbalance: Realized?

    /// Per-step imbalance figures.
    public struct Realized: Sendable, Codable, Equatable {
        /// Mean (max − mean)/mean over layers × steps.
        public var mean: Double
        /// 99th percentile of the same samples.
        public var p99: Double
        /// Mean of mean/max over the same samples.
        public var balancedness: Double
    }

    /// The largest EP size ≤ 32 that divides `numExperts` (32 for DeepSeek's 256 experts).
    public static func defaultEPSize(numExperts: Int) -> Int {
        (1...min(32, max(1, numExperts))).last { numExperts % $0 == 0 } ?? 1
    }

    /// Summarizes `stats` at EP size `epSize`, listing `top` hottest experts per layer.
    ///
    /// - Throws: `PlacementError.slotsNotDivisible` when E is not a multiple of `epSize`.
    public static func summarize(_ stats: StatsFile, epSize: Int, top: Int = 5) throws -> StatsSummary {
        let e = stats.numExperts
        let identity = try Placement.identity(numExperts: e, numRanks: epSize)
        var layers: [Layer] = []
        for (i, row) in stats.totals.enumerated() {
            let sum = row.reduce(0, +)
            let mean = sum / Double(e)
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(e)
            let order = row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }
            let ranks = identity.rankLoads(expertLoads: row)
            layers.append(Layer(
                index: i, layer: stats.metadata.layerIds?[i] ?? i, tokens: sum,
                hottestRatio: mean > 0 ? row[order[0]] / mean : 0, cv: mean > 0 ? variance.squareRoot() / mean : 0,
                hottest: order.prefix(top).map { Expert(expert: $0, ratio: mean > 0 ? row[$0] / mean : 0) },
                imbalance: Imbalance.ratio(ranks), balancedness: Imbalance.balancedness(ranks)))
        }
        let imb = layers.map(\.imbalance)
        var realized: Realized?
        if let steps = stats.perStep {
            let s = try PlacementEvaluator.evaluate(
                placements: Array(repeating: identity, count: stats.numLayers), steps: steps, split: .even)
            realized = Realized(mean: s.mean, p99: s.p99, balancedness: s.balancedness)
        }
        return StatsSummary(
            numLayers: stats.numLayers, numExperts: e, numSteps: stats.numSteps, epSize: epSize, layers: layers,
            meanImbalance: imb.reduce(0, +) / Double(imb.count), maxImbalance: imb.max() ?? 0,
            meanBalancedness: layers.map(\.balancedness).reduce(0, +) / Double(layers.count),
            hottestRatioRange: [layers.map(\.hottestRatio).min() ?? 0, layers.map(\.hottestRatio).max() ?? 0],
            perStepImbalance: realized)
    }
}
