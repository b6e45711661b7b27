/// Why a placement, or the request that produced it, is invalid.
public enum PlacementError: Error, CustomStringConvertible, Equatable {
    case slotsNotDivisible(layer: Int?, numSlots: Int, numRanks: Int)
    case tooFewSlots(layer: Int?, numSlots: Int, numExperts: Int)
    case expertOutOfRange(layer: Int?, slot: Int, expert: Int, numExperts: Int)
    case expertMissing(layer: Int?, expert: Int)
    case duplicateOnRank(layer: Int?, expert: Int, rank: Int)
    case invalidArgument(String)

    private static func prefix(_ layer: Int?) -> String { layer.map { "layer \($0): " } ?? "" }

    public var description: String {
        switch self {
        case let .slotsNotDivisible(l, s, r):
            return Self.prefix(l) + "slot count \(s) is not divisible by ep-size \(r)"
        case let .tooFewSlots(l, s, e):
            return Self.prefix(l) + "slot count \(s) is smaller than the expert count \(e); need at least \(e)"
        case let .expertOutOfRange(l, slot, e, n):
            return Self.prefix(l) + "slot \(slot) holds expert \(e), outside the valid range 0..<\(n)"
        case let .expertMissing(l, e):
            return Self.prefix(l) + "expert \(e) has no slot; every expert needs at least one replica"
        case let .duplicateOnRank(l, e, r):
            return Self.prefix(l) + "expert \(e) has two replicas on rank \(r); replicas must be on distinct ranks"
        case let .invalidArgument(msg):
            return msg
        }
    }
}

extension Placement {
    /// Validates a slot → expert table; see `init(slotExpert:numExperts:numRanks:allowSameRankReplicas:layer:)`.
    public static func validate(
        slotExpert: [Int32], numExperts: Int, numRanks: Int, allowSameRankReplicas: Bool = false, layer: Int? = nil
    ) throws {
        guard numExperts >= 1 else { throw PlacementError.invalidArgument("expert count must be >= 1, got \(numExperts)") }
        guard numRanks >= 1 else { throw PlacementError.invalidArgument("ep-size must be >= 1, got \(numRanks)") }
        let n = slotExpert.count
        guard n % numRanks == 0 else {
            throw PlacementError.slotsNotDivisible(layer: layer, numSlots: n, numRanks: numRanks)
        }
        guard n >= numExperts else { throw PlacementError.tooFewSlots(layer: layer, numSlots: n, numExperts: numExperts) }
        let per = n / numRanks
        var seen = [Int32](repeating: -1, count: numExperts)  // last rank seen for each expert
        var present = [Bool](repeating: false, count: numExperts)
        for (s, e32) in slotExpert.enumerated() {
            let e = Int(e32)
            guard e >= 0 && e < numExperts else {
                throw PlacementError.expertOutOfRange(layer: layer, slot: s, expert: e, numExperts: numExperts)
            }
            let r = Int32(s / per)
            if !allowSameRankReplicas && seen[e] == r {
                throw PlacementError.duplicateOnRank(layer: layer, expert: e, rank: Int(r))
            }
            seen[e] = r
            present[e] = true
        }
        if let missing = present.firstIndex(of: false) {
            throw PlacementError.expertMissing(layer: layer, expert: missing)
        }
    }
}
