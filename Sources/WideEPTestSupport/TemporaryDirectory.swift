import Foundation

/// A fresh folder under the system temporary directory for one test's files, removed when the value is released.
public final class TemporaryDirectory: @unchecked Sendable {
    // Immutable after init.
    /// Absolute path of the folder.
    public let path: String

    /// Creates `<tmp>/wideep-test-<random>`.
    public init() {
        let base = NSTemporaryDirectory().hasSuffix("/") ? NSTemporaryDirectory() : NSTemporaryDirectory() + "/"
        path = base + "wideep-test-\(UInt64.random(in: 0...UInt64.max))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// `path/name`.
    public func file(_ name: String) -> String { path + "/" + name }

    /// Writes `bytes` to `path/name` and returns the full path.
    @discardableResult
    public func write(_ name: String, bytes: [UInt8]) -> String {
        let p = file(name)
        precondition(FileManager.default.createFile(atPath: p, contents: Data(bytes)), "cannot create \(p)")
        return p
    }

    /// Writes UTF-8 `text` to `path/name` and returns the full path.
    @discardableResult
    public func write(_ name: String, text: String) -> String { write(name, bytes: Array(text.utf8)) }

    /// Names of the entries in the folder, sorted (to check that failures leave no files behind).
    public var entries: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }
}
