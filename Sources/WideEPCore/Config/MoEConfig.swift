/// How a router turns logits into expert choices and weights.
public enum ScoringFunction: String, Codable, Sendable, CaseIterable {
    /// Softmax over all experts, then top-k (Mixtral, Qwen-MoE, OLMoE).
    case softmax
    /// DeepSeek-V3 `noaux_tc`: sigmoid scores, correction bias for selection only, group-limited top-k.
    case sigmoid
}

/// The shape of one MoE layer family: expert count, routing and FFN sizes.
///
/// Names follow DESIGN.md; the Hugging Face key each field is read from is given in `HFConfig` (WideEPWorkload).
public struct MoEConfig: Codable, Sendable, Equatable {
    /// Preset or model name, informational.
    public var name: String
    /// Routed experts per MoE layer (E).
    public var numExperts: Int
    /// Experts chosen per token (K).
    public var topK: Int
    /// Expert groups for group-limited routing (`n_group`); 1 disables grouping.
    public var numGroups: Int
    /// Groups kept per token (`topk_group`).
    public var topKGroup: Int
    /// Shared experts run on every token (0 for none). Their width is `numShared × sharedIntermediateSize`.
    public var numShared: Int
    /// Model hidden size (H).
    public var hiddenSize: Int
    /// Intermediate size of one routed expert (I).
    public var moeIntermediateSize: Int
    /// Intermediate size of one shared expert.
    public var sharedIntermediateSize: Int
    /// MoE layers in the model (L).
    public var numMoELayers: Int
    /// Factor applied to the routed weights after renormalisation (DeepSeek `routed_scaling_factor`).
    public var routedScalingFactor: Float
    /// How router logits become scores.
    public var scoring: ScoringFunction
    /// Renormalise the top-k weights to sum to 1 (`norm_topk_prob`).
    public var normTopKProb: Bool
    /// Whether the router has a selection-only correction bias (`e_score_correction_bias`).
    public var hasCorrectionBias: Bool
    /// Whether the shared expert output is scaled by `sigmoid(x · shared_expert_gate)` (Qwen2-MoE).
    public var sharedExpertGate: Bool

    public init(
        name: String, numExperts: Int, topK: Int, numGroups: Int = 1, topKGroup: Int = 1, numShared: Int = 0,
        hiddenSize: Int, moeIntermediateSize: Int, sharedIntermediateSize: Int? = nil, numMoELayers: Int,
        routedScalingFactor: Float = 1, scoring: ScoringFunction = .softmax, normTopKProb: Bool = true,
        hasCorrectionBias: Bool = false, sharedExpertGate: Bool = false
    ) {
        self.name = name
        self.numExperts = numExperts
        self.topK = topK
        self.numGroups = numGroups
        self.topKGroup = topKGroup
        self.numShared = numShared
        self.hiddenSize = hiddenSize
        self.moeIntermediateSize = moeIntermediateSize
        self.sharedIntermediateSize = sharedIntermediateSize ?? moeIntermediateSize
        self.numMoELayers = numMoELayers
        self.routedScalingFactor = routedScalingFactor
        self.scoring = scoring
        self.normTopKProb = normTopKProb
        self.hasCorrectionBias = hasCorrectionBias
        self.sharedExpertGate = sharedExpertGate
    }

    /// Bytes of one routed expert's weights (W1, W3, W2) at `bytesPerParam`.
    public func expertBytes(bytesPerParam: Int = 2) -> Int {
        3 * hiddenSize * moeIntermediateSize * bytesPerParam
    }
}

/// A configuration error, with the field, the bad value and what would be valid.
public enum ConfigError: Error, CustomStringConvertible, Equatable {
    case invalid(field: String, value: String, expected: String)
    case unknownPreset(String, known: [String])
    case unknownField(String, known: [String])

    public var description: String {
        switch self {
        case let .invalid(field, value, expected):
            return "config field \(field) = \(value) is invalid: expected \(expected)"
        case let .unknownPreset(name, known):
            return "unknown preset '\(name)': known presets are \(known.joined(separator: ", "))"
        case let .unknownField(name, known):
            return "unknown config field '\(name)': known fields are \(known.joined(separator: ", "))"
        }
    }
}

extension MoEConfig {
    /// Checks every field and the relations between them, throwing the first violation.
    public func validate() throws {
        func check(_ ok: Bool, _ field: String, _ value: Any, _ expected: String) throws {
            if !ok { throw ConfigError.invalid(field: field, value: "\(value)", expected: expected) }
        }
        try check(numExperts >= 1, "numExperts", numExperts, ">= 1")
        try check(topK >= 1 && topK <= numExperts, "topK", topK, "1...numExperts (\(numExperts))")
        try check(numGroups >= 1 && numExperts % numGroups == 0, "numGroups", numGroups,
                  "a divisor of numExperts (\(numExperts))")
        try check(topKGroup >= 1 && topKGroup <= numGroups, "topKGroup", topKGroup, "1...numGroups (\(numGroups))")
        try check(topK <= topKGroup * (numExperts / numGroups), "topK", topK,
                  "<= topKGroup × experts per group (\(topKGroup * (numExperts / numGroups)))")
        if numGroups > 1 {
            try check(numExperts / numGroups >= 2, "numGroups", numGroups,
                      "at most numExperts/2 so each group has a top-2 score")
        }
        try check(numShared >= 0, "numShared", numShared, ">= 0")
        try check(hiddenSize >= 1, "hiddenSize", hiddenSize, ">= 1")
        try check(moeIntermediateSize >= 1, "moeIntermediateSize", moeIntermediateSize, ">= 1")
        try check(sharedIntermediateSize >= 1, "sharedIntermediateSize", sharedIntermediateSize, ">= 1")
        try check(numMoELayers >= 1, "numMoELayers", numMoELayers, ">= 1")
        try check(routedScalingFactor.isFinite && routedScalingFactor > 0, "routedScalingFactor",
                  routedScalingFactor, "a finite value > 0")
    }

    /// Field names accepted by `overriding(_:)`.
    public static let overridableFields = [
        "numExperts", "topK", "numGroups", "topKGroup", "numShared", "hiddenSize", "moeIntermediateSize",
        "sharedIntermediateSize", "numMoELayers", "routedScalingFactor", "scoring", "normTopKProb",
        "hasCorrectionBias", "sharedExpertGate", "name",
    ]

    /// Returns a copy with `field=value` overrides applied (e.g. `["numMoELayers": "4"]`), validated.
    public func overriding(_ overrides: [(String, String)]) throws -> MoEConfig {
        var c = self
        func int(_ f: String, _ v: String) throws -> Int {
            guard let x = Int(v) else { throw ConfigError.invalid(field: f, value: v, expected: "an integer") }
            return x
        }
        func bool(_ f: String, _ v: String) throws -> Bool {
            switch v.lowercased() {
            case "true", "1", "yes": return true
            case "false", "0", "no": return false
            default: throw ConfigError.invalid(field: f, value: v, expected: "true or false")
            }
        }
        for (field, value) in overrides {
            switch field {
            case "name": c.name = value
            case "numExperts": c.numExperts = try int(field, value)
            case "topK": c.topK = try int(field, value)
            case "numGroups": c.numGroups = try int(field, value)
            case "topKGroup": c.topKGroup = try int(field, value)
            case "numShared": c.numShared = try int(field, value)
            case "hiddenSize": c.hiddenSize = try int(field, value)
            case "moeIntermediateSize": c.moeIntermediateSize = try int(field, value)
            case "sharedIntermediateSize": c.sharedIntermediateSize = try int(field, value)
            case "numMoELayers": c.numMoELayers = try int(field, value)
            case "routedScalingFactor":
                guard let x = Float(value) else {
                    throw ConfigError.invalid(field: field, value: value, expected: "a number")
                }
                c.routedScalingFactor = x
            case "scoring":
                guard let s = ScoringFunction(rawValue: value) else {
                    throw ConfigError.invalid(field: field, value: value, expected: "softmax or sigmoid")
                }
                c.scoring = s
            case "normTopKProb": c.normTopKProb = try bool(field, value)
            case "hasCorrectionBias": c.hasCorrectionBias = try bool(field, value)
            case "sharedExpertGate": c.sharedExpertGate = try bool(field, value)
            default: throw ConfigError.unknownField(field, known: Self.overridableFields)
            }
        }
        try c.validate()
        return c
    }
}
