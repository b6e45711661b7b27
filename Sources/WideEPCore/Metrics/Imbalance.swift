/// Load-balance metrics, with one definition everywhere (DESIGN.md §8).
public enum Imbalance {
    /// (max − mean) / mean of per-rank loads; 0 for all-zero loads.
    public static func ratio<C: Collection>(_ loads: C) -> Double where C.Element == Double {
        guard !loads.isEmpty else { return 0 }
        var mx = -Double.infinity, sum = 0.0
        for x in loads { mx = max(mx, x); sum += x }
        let mean = sum / Double(loads.count)
        return mean > 0 ? (mx - mean) / mean : 0
    }

    /// mean / max of per-rank loads (DeepSeek and SGLang's balancedness); 1 for all-zero loads.
    public static func balancedness<C: Collection>(_ loads: C) -> Double where C.Element == Double {
        guard !loads.isEmpty else { return 1 }
        var mx = -Double.infinity, sum = 0.0
        for x in loads { mx = max(mx, x); sum += x }
        return mx > 0 ? sum / Double(loads.count) / mx : 1
    }
}

/// Accumulates per-(layer, step) imbalance samples and reports mean and p99.
public struct ImbalanceSummary: Sendable, Codable, Equatable {
    /// Every (max − mean)/mean sample, in insertion order.
    public private(set) var ratios: [Double] = []
    /// Every mean/max sample, in insertion order.
    public private(set) var balancednessSamples: [Double] = []

    public init() {}

    /// Adds one layer-step sample from its per-rank loads.
    public mutating func add<C: Collection>(rankLoads: C) where C.Element == Double {
        ratios.append(Imbalance.ratio(rankLoads))
        balancednessSamples.append(Imbalance.balancedness(rankLoads))
    }

    /// Merges another summary's samples.
    public mutating func merge(_ other: ImbalanceSummary) {
        ratios += other.ratios
        balancednessSamples += other.balancednessSamples
    }

    /// Number of samples.
    public var count: Int { ratios.count }
    /// Mean imbalance ratio over samples.
    public var mean: Double { ratios.isEmpty ? 0 : ratios.reduce(0, +) / Double(ratios.count) }
    /// 99th percentile of the imbalance ratio (nearest rank).
    public var p99: Double { Self.percentile(ratios, 0.99) }
    /// Mean balancedness over samples.
    public var balancedness: Double {
        balancednessSamples.isEmpty ? 1 : balancednessSamples.reduce(0, +) / Double(balancednessSamples.count)
    }

    /// Nearest-rank percentile `q` in [0, 1] of `xs`.
    public static func percentile(_ xs: [Double], _ q: Double) -> Double {
        guard !xs.isEmpty else { return 0 }
        let sorted = xs.sorted()
        let idx = min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))
        return sorted[idx]
    }
}
