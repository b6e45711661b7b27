import WideEPCore

/// A small deterministic PRNG (SplitMix64) for fixtures: the same seed gives the same data on every platform.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Where the repository's shared data lives, for tests that read the real DeepSeek-R1 expert loads.
public enum TestData {
    /// `../shared/data/deepseek-r1-expert-load` relative to the package root, found from this file's path.
    public static var expertLoadDirectory: String {
        let file = #filePath
        var parts = file.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        // …/<repo>/Sources/WideEPTestSupport/WideEPTestSupport.swift → …/shared/data/deepseek-r1-expert-load
        parts.removeLast(4)
        return parts.joined(separator: "/") + "/shared/data/deepseek-r1-expert-load"
    }
}
