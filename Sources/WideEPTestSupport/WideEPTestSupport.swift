@_exported import WideEPCore

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
