/// Knobs of a generated trace (see `TrafficGenerator`).
public struct TrafficOptions: Sendable, Equatable, Codable {
    /// Steps to generate.
    public var steps: Int
    /// Tokens per step (each routed to K distinct experts in every layer).
    public var tokensPerStep: Int
    /// Seed of the deterministic generator.
    public var seed: UInt64
    /// Heavy-tail strength: the log-normal sigma of expert popularity (0 = uniform). 0.8 gives hottest-expert ratios
    /// of about 3–11× the mean, as in the real DeepSeek-R1 loads. For a generator built from real profiles it is an
    /// exponent on the profile instead (1 keeps the real skew).
    public var skew: Double
    /// Per-step standard deviation of the random walk of each expert's log-popularity (0 = no drift). The walk
    /// reverts to the mix's popularity at 1% per step, so its spread settles near drift × 7.
    public var drift: Double
    /// Steps between abrupt shifts to the next traffic mix (0 = never shift).
    public var shiftEvery: Int
    /// Distinct traffic mixes cycled by the shifts (e.g. prefill-like and decode-like); ignored for real profiles,
    /// where each profile is a mix.
    public var numMixes: Int

    /// Options with DeepSeek-R1-like defaults: skew 0.8, drift 0.02, no shifts, two mixes.
    public init(
        steps: Int = 100, tokensPerStep: Int = 8192, seed: UInt64 = 0, skew: Double = 0.8, drift: Double = 0.02,
        shiftEvery: Int = 0, numMixes: Int = 2
    ) {
        self.steps = steps
        self.tokensPerStep = tokensPerStep
        self.seed = seed
        self.skew = skew
        self.drift = drift
        self.shiftEvery = shiftEvery
        self.numMixes = numMixes
    }

    /// Throws `TrafficError.invalidOption` naming the first bad field.
    public func validate() throws {
        func check(_ ok: Bool, _ field: String, _ value: Any, _ expected: String) throws {
            if !ok { throw TrafficError.invalidOption(field: field, value: "\(value)", expected: expected) }
        }
        try check(steps >= 1, "steps", steps, ">= 1")
        try check(tokensPerStep >= 1, "tokensPerStep", tokensPerStep, ">= 1")
        try check(skew.isFinite && skew >= 0 && skew <= 4, "skew", skew, "a value in 0...4")
        try check(drift.isFinite && drift >= 0 && drift <= 1, "drift", drift, "a value in 0...1")
        try check(shiftEvery >= 0, "shiftEvery", shiftEvery, ">= 0 (0 = never)")
        try check(numMixes >= 1, "numMixes", numMixes, ">= 1")
    }
}

/// Why a traffic generator cannot be built.
public enum TrafficError: Error, CustomStringConvertible, Equatable {
    /// An option is out of range: its name, value and what is valid.
    case invalidOption(field: String, value: String, expected: String)
    /// A real profile has a bad shape or value.
    case invalidProfile(String)

    public var description: String {
        switch self {
        case let .invalidOption(field, value, expected):
            return "traffic option \(field) = \(value) is invalid: expected \(expected)"
        case let .invalidProfile(message):
            return "traffic profile: \(message)"
        }
    }
}
