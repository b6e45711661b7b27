import Foundation

/// The real DeepSeek-R1 expert loads of `../shared/data/deepseek-r1-expert-load` for the split tests.
enum SplitLoadFile {
    /// The data folder, found from this file's path (…/<repo>/Tests/WideEPCUDATests/SplitLoadFile.swift).
    static var directory: String {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        parts.removeLast(4)
        return parts.joined(separator: "/") + "/shared/data/deepseek-r1-expert-load"
    }

    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    /// `expert_load` [layers][experts] of one stats JSON file.
    static func read(_ path: String) throws -> [[Double]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let rows = object["expert_load"] as? [[NSNumber]]
        else { throw Malformed(description: "\(path): no expert_load [layers][experts] array of numbers") }
        return rows.map { $0.map(\.doubleValue) }
    }
}
