import WideEPCore

/// Per-layer placements as stored in a TensorRT-LLM `moe_config.load_balancer` YAML file (DESIGN.md §7).
///
/// Layer keys are the model's layer numbers (TensorRT-LLM looks assignments up by its MoE module's `layer_idx`); they
/// default to 0..<L. `placements[i]` belongs to `layerIds[i]`, keys ascending.
public struct PlacementFile: Sendable, Equatable {
    /// One placement per MoE layer, in ascending layer-key order, [layers].
    public let placements: [Placement]
    /// The YAML key of each placement, ascending, [layers].
    public let layerIds: [Int]
    /// TensorRT-LLM `layer_updates_per_iter`: layers the online balancer may update per iteration (0 = static).
    public var layerUpdatesPerIter: Int

    /// Total slots per layer (S).
    public var numSlots: Int { placements[0].numSlots }
    /// EP ranks (R).
    public var numRanks: Int { placements[0].numRanks }
    /// Logical experts per layer (E).
    public var numExperts: Int { placements[0].numExperts }
    /// MoE layers (L).
    public var numLayers: Int { placements.count }

    /// Bundles placements that share S, R and E.
    ///
    /// - Throws: `PlacementFileError.inconsistent` for no layers, differing shapes, or layer ids that are not
    ///   strictly ascending or not one per placement.
    public init(placements: [Placement], layerIds: [Int]? = nil, layerUpdatesPerIter: Int = 0) throws {
        guard let first = placements.first else {
            throw PlacementFileError.inconsistent(path: nil, reason: "a placement file needs at least one layer")
        }
        let ids = layerIds ?? Array(0..<placements.count)
        guard ids.count == placements.count else {
            throw PlacementFileError.inconsistent(
                path: nil, reason: "\(ids.count) layer ids for \(placements.count) placements")
        }
        guard zip(ids, ids.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw PlacementFileError.inconsistent(path: nil, reason: "layer ids must be strictly ascending, got \(ids)")
        }
        for (i, p) in placements.enumerated()
        where p.numSlots != first.numSlots || p.numRanks != first.numRanks || p.numExperts != first.numExperts {
            throw PlacementFileError.inconsistent(
                path: nil,
                reason: "layer \(ids[i]) has \(p.numSlots) slots / ep-size \(p.numRanks) / \(p.numExperts) experts, "
                    + "layer \(ids[0]) has \(first.numSlots) / \(first.numRanks) / \(first.numExperts)")
        }
        guard layerUpdatesPerIter >= 0 else {
            throw PlacementFileError.inconsistent(
                path: nil, reason: "layer_updates_per_iter must be >= 0, got \(layerUpdatesPerIter)")
        }
        self.placements = placements
        self.layerIds = ids
        self.layerUpdatesPerIter = layerUpdatesPerIter
    }
}

/// Why a placement file cannot be read or built. Messages name the file, and the line or layer where known.
public enum PlacementFileError: Error, CustomStringConvertible, Equatable {
    /// The text is not valid YAML.
    case yaml(path: String, reason: String)
    /// A required key is absent.
    case missingKey(path: String, key: String)
    /// A value has the wrong kind (e.g. a string where a list of expert ids belongs).
    case wrongValue(path: String, key: String, line: Int?, expected: String)
    /// The EP size is neither given by the caller nor recorded in the file.
    case missingEPSize(path: String)
    /// The caller's EP size or expert count disagrees with the file.
    case mismatch(path: String, what: String, file: Int, given: Int)
    /// A layer's placement is invalid (wraps `PlacementError`, which names the layer).
    case placement(path: String, PlacementError)
    /// Placements that cannot form one file (no layers, differing shapes, unordered ids).
    case inconsistent(path: String?, reason: String)

    public var description: String {
        switch self {
        case let .yaml(path, reason):
            return "\(path): invalid YAML: \(reason)"
        case let .missingKey(path, key):
            return "\(path): missing key '\(key)' (expected TensorRT-LLM load_balancer keys num_slots, "
                + "layer_updates_per_iter, initial_global_assignments)"
        case let .wrongValue(path, key, line, expected):
            return "\(path)\(line.map { ":\($0)" } ?? ""): \(key) must be \(expected)"
        case let .missingEPSize(path):
            return "\(path): the ep-size is not recorded in the file; pass --ep-size"
        case let .mismatch(path, what, file, given):
            return "\(path): the file's \(what) is \(file) but \(given) was given"
        case let .placement(path, error):
            return "\(path): \(error)"
        case let .inconsistent(path, reason):
            return (path.map { "\($0): " } ?? "") + reason
        }
    }
}
