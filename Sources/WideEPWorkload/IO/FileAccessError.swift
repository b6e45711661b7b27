import Foundation

/// A file that could not be read or written at all (before any format is checked).
public enum FileAccessError: Error, CustomStringConvertible, Equatable {
    /// Reading failed: missing file, permissions, a folder instead of a file.
    case cannotRead(path: String, reason: String)
    /// Writing failed: missing folder, permissions, full disk.
    case cannotWrite(path: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotRead(path, reason): return "\(path): cannot read: \(reason)"
        case let .cannotWrite(path, reason): return "\(path): cannot write: \(reason)"
        }
    }

    /// Reads a whole file, mapping Foundation's error to a one-line reason.
    static func read(_ path: String) throws -> Data {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw FileAccessError.cannotRead(path: path, reason: "no such file")
        }
        guard !isDir.boolValue else { throw FileAccessError.cannotRead(path: path, reason: "is a folder, not a file") }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw FileAccessError.cannotRead(path: path, reason: error.localizedDescription)
        }
    }

    /// The first `count` bytes of a file and its size, without reading the rest.
    static func head(_ path: String, count: Int) throws -> (bytes: [UInt8], size: Int) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw FileAccessError.cannotRead(path: path, reason: "no such file")
        }
        guard !isDir.boolValue else { throw FileAccessError.cannotRead(path: path, reason: "is a folder, not a file") }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw FileAccessError.cannotRead(path: path, reason: "permission denied")
        }
        defer { try? handle.close() }
        do {
            let bytes = [UInt8](try handle.read(upToCount: count) ?? Data())
            let size = Int(try handle.seekToEnd())
            return (bytes, size)
        } catch {
            throw FileAccessError.cannotRead(path: path, reason: error.localizedDescription)
        }
    }
}
