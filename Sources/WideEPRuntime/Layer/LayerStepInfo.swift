import Foundation
import WideEPCore

/// Wall time of one rank's layer forward, split by DESIGN §4 phase, in seconds.
public struct PhaseTimes: Sendable, Codable, Equatable {
    /// Router GEMM, top-K and counting.
    public var route: Double = 0
    /// Count all-gather, split, map, layout, permute, dispatch all-to-all and the expert-major arrangement.
    public var dispatch: Double = 0
    /// Grouped SwiGLU FFN over the local slots.
    public var ffn: Double = 0
    /// Per-row weighted reduce, the reverse all-to-all, the per-token sum and the shared expert.
    public var combine: Double = 0

    public init() {}

    /// Sum of the phases.
    public var total: Double { route + dispatch + ffn + combine }

    /// Element-wise sum.
    public static func + (a: PhaseTimes, b: PhaseTimes) -> PhaseTimes {
        var r = a
        r.route += b.route
        r.dispatch += b.dispatch
        r.ffn += b.ffn
        r.combine += b.combine
        return r
    }
}

/// What one rank learned from one layer forward (identical on every rank except `times` and `receivedRows`).
public struct LayerStepInfo: Sendable {
    /// Tokens routed to each expert over all ranks, [E].
    public var expertCounts: [Int]
    /// Tokens each rank computed (sum of its slots' quotas), [R].
    public var rankLoads: [Double]
    /// This rank's phase times.
    public var times: PhaseTimes
    /// Rows this rank received in the dispatch (tokens, each once per destination).
    public var receivedRows: Int
    /// Local slots whose weights did not hold the placement's expert when the forward ran (must be 0: a non-zero
    /// value means a half-updated layer was visible).
    public var staleSlots: Int
}

/// Monotonic seconds for phase timing.
@inline(__always)
func monotonicSeconds() -> Double {
    Double(DispatchTime.now().uptimeNanoseconds) * 1e-9
}
