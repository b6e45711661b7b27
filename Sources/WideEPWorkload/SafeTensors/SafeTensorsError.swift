/// Why a safetensors file could not be read or written. Every message starts with the file (or tensor) concerned.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable {
    /// The file could not be opened or mapped.
    case cannotOpen(path: String, reason: String)
    /// The file is shorter than the 8-byte header length prefix.
    case truncated(path: String, size: Int)
    /// The header length prefix is zero, larger than the file, or past the 100 MB limit of the format.
    case badHeaderLength(path: String, length: UInt64, available: Int)
    /// The header is not a UTF-8 JSON object of tensor entries.
    case badHeader(path: String, reason: String)
    /// One tensor entry is malformed (dtype, shape or offsets).
    case badEntry(path: String, tensor: String, reason: String)
    /// A tensor's byte range lies outside the data section.
    case offsetsOutOfRange(path: String, tensor: String, begin: Int, end: Int, dataSize: Int)
    /// A tensor's byte range does not match shape × dtype size.
    case sizeMismatch(path: String, tensor: String, expected: Int, actual: Int)
    /// Two tensors share bytes.
    case overlap(path: String, tensor: String, other: String)
    /// The requested tensor is not in the file.
    case missingTensor(path: String, name: String, available: [String])
    /// A tensor handed to the writer is inconsistent (duplicate name, element count, dtype).
    case invalidTensor(name: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            return "\(path): cannot open safetensors file: \(reason)"
        case let .truncated(path, size):
            return "\(path): truncated safetensors file: \(size) bytes, need at least the 8-byte header length"
        case let .badHeaderLength(path, length, available):
            return "\(path): bad safetensors header length \(length): must be 1...\(min(available, SafeTensorsFile.maxHeaderLength)) "
                + "(the file has \(available) bytes after the 8-byte prefix)"
        case let .badHeader(path, reason):
            return "\(path): bad safetensors header: \(reason)"
        case let .badEntry(path, tensor, reason):
            return "\(path): tensor '\(tensor)': \(reason)"
        case let .offsetsOutOfRange(path, tensor, begin, end, dataSize):
            return "\(path): tensor '\(tensor)': data_offsets [\(begin), \(end)] outside the data section of \(dataSize) bytes"
        case let .sizeMismatch(path, tensor, expected, actual):
            return "\(path): tensor '\(tensor)': data_offsets span \(actual) bytes but shape × dtype needs \(expected)"
        case let .overlap(path, tensor, other):
            return "\(path): tensors '\(other)' and '\(tensor)' overlap in the data section"
        case let .missingTensor(path, name, available):
            let list = available.prefix(20).joined(separator: ", ") + (available.count > 20 ? ", …" : "")
            return "\(path): no tensor named '\(name)' (the file has: \(available.isEmpty ? "no tensors" : list))"
        case let .invalidTensor(name, reason):
            return "tensor '\(name)': \(reason)"
        }
    }
}
